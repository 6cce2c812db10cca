//! Meaningful starting inputs for `engine_model`, written in its byte format by a small
//! builder that mirrors the decoder in [`super::model`] (so the seeds stay readable and
//! keep decoding to what their names say).

/// Builds an `engine_model` input: the world header, then ops.
struct Script(Vec<u8>);

/// `since` of a subscribe, as the decoder reads it.
#[derive(Clone, Copy)]
enum Since {
    None,
    /// `since = n % (last_seq + 3)`.
    Seq(u8),
    /// `since = u64::MAX`.
    Max,
}

struct RoomSpec {
    ttl: u8,
    history: u8,
    key: bool,
    policy: u8,
    max_keys: u8,
}

const DROP: u8 = 0;
const CONFLATE: u8 = 1;
const DISCONNECT: u8 = 2;

impl Script {
    /// Rooms, then subscribers as (raw delivery, budget = 32 + 4 × byte).
    fn new(rooms: &[RoomSpec], subs: &[(bool, u8)]) -> Self {
        let mut b = vec![rooms.len() as u8 - 1];
        for r in rooms {
            b.extend([r.ttl, r.history, r.key as u8, r.policy, r.max_keys]);
        }
        b.push(subs.len() as u8 - 1);
        for &(raw, budget) in subs {
            b.extend([raw as u8, budget]);
        }
        Script(b)
    }

    fn op(&mut self, r: u8, s: u8, op: u8, args: &[u8]) -> &mut Self {
        self.0.extend([r, s, op]);
        self.0.extend(args);
        self
    }

    /// Key `k0`..=`k3` or none; data of `len + 1` bytes.
    fn publish(&mut self, r: u8, key: Option<u8>, len: u8) -> &mut Self {
        self.op(r, 0, 0, &[key.map_or(0, |k| k + 1), len])
    }

    /// `n` messages cycling through no key, `k0`..=`k3`.
    fn publish_n(&mut self, r: u8, n: u8, len: u8) -> &mut Self {
        for i in 0..n {
            self.op(r, 0, 0, &[i % 5, len]);
        }
        self
    }

    fn subscribe(&mut self, r: u8, s: u8, since: Since, snapshot: bool) -> &mut Self {
        let args = match since {
            Since::None => vec![0],
            Since::Seq(n) => vec![2, n],
            Since::Max => vec![4, 0],
        };
        self.op(r, s, 2, &args);
        self.0.push(snapshot as u8);
        self
    }

    fn unsubscribe(&mut self, r: u8, s: u8) -> &mut Self {
        self.op(r, s, 3, &[])
    }

    /// Takes up to `[0, 1, 2, 4, 16, all][which]` frames.
    fn take(&mut self, s: u8, which: u8) -> &mut Self {
        self.op(0, s, 4, &[which])
    }

    fn tick(&mut self, ms: u8) -> &mut Self {
        self.op(0, 0, 6, &[ms, 0])
    }

    fn expire(&mut self, r: u8) -> &mut Self {
        self.op(r, 0, 7, &[1])
    }

    fn close(&mut self, s: u8, discard: bool) -> &mut Self {
        self.op(0, s, 7, &[0, discard as u8])
    }

    fn done(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

fn room(ttl: u8, history: u8, key: bool, policy: u8, max_keys: u8) -> RoomSpec {
    RoomSpec { ttl, history, key, policy, max_keys }
}

/// Named seeds for `fuzz/corpus/engine_model`.
pub fn engine_model_seeds() -> Vec<(&'static str, Vec<u8>)> {
    const ALL: u8 = 5;
    vec![
        (
            "drop-then-gap",
            Script::new(&[room(0, 8, false, DROP, 0)], &[(false, 10)])
                .subscribe(0, 0, Since::None, false)
                .publish_n(0, 6, 20)
                .take(0, 1)
                .publish(0, None, 20)
                .take(0, ALL)
                .done(),
        ),
        (
            "since-inside-and-beyond-history",
            Script::new(&[room(0, 4, false, DROP, 0)], &[(false, 200), (true, 200)])
                .publish_n(0, 8, 10)
                .subscribe(0, 0, Since::Seq(6), false)
                .subscribe(0, 1, Since::Seq(2), false)
                .take(0, ALL)
                .take(1, ALL)
                .done(),
        ),
        (
            "since-and-snapshot-beyond-history",
            Script::new(&[room(0, 2, true, DROP, 4)], &[(false, 200)])
                .publish(0, Some(0), 5)
                .publish(0, Some(1), 5)
                .publish(0, Some(2), 5)
                .publish(0, Some(3), 5)
                .publish(0, Some(3), 5)
                .publish(0, Some(3), 5)
                .subscribe(0, 0, Since::Seq(2), true)
                .take(0, ALL)
                .done(),
        ),
        (
            "snapshot-key-eviction",
            Script::new(&[room(0, 3, true, CONFLATE, 2)], &[(false, 100)])
                .publish_n(0, 9, 8)
                .subscribe(0, 0, Since::None, true)
                .take(0, 2)
                .publish_n(0, 7, 30)
                .take(0, ALL)
                .done(),
        ),
        (
            "conflate-under-pressure",
            Script::new(&[room(0, 8, true, CONFLATE, 4)], &[(false, 30)])
                .subscribe(0, 0, Since::None, false)
                .publish_n(0, 12, 40)
                .take(0, 1)
                .publish_n(0, 5, 40)
                .take(0, ALL)
                .done(),
        ),
        (
            "disconnect-slow-consumer",
            Script::new(&[room(0, 8, false, DISCONNECT, 0)], &[(false, 5), (true, 250)])
                .subscribe(0, 0, Since::None, false)
                .subscribe(0, 1, Since::None, false)
                .publish_n(0, 6, 60)
                .take(0, ALL)
                .take(1, ALL)
                .done(),
        ),
        (
            "history-ttl",
            Script::new(&[room(1, 8, true, DROP, 4)], &[(false, 200)])
                .publish_n(0, 3, 5)
                .tick(4)
                .publish_n(0, 3, 5)
                .tick(3)
                .expire(0)
                .subscribe(0, 0, Since::Seq(0), true)
                .take(0, ALL)
                .done(),
        ),
        (
            "resubscribe-with-pending-gap",
            Script::new(&[room(0, 8, false, DROP, 0)], &[(false, 42)])
                .subscribe(0, 0, Since::None, false)
                .publish_n(0, 5, 30)
                .unsubscribe(0, 0)
                .take(0, 1)
                .subscribe(0, 0, Since::Seq(1), false)
                .take(0, ALL)
                .publish(0, None, 3)
                .take(0, ALL)
                .done(),
        ),
        (
            "three-rooms-three-subs",
            Script::new(
                &[
                    room(0, 4, false, DROP, 0),
                    room(2, 6, true, CONFLATE, 3),
                    room(3, 0, false, DISCONNECT, 0),
                ],
                &[(false, 40), (true, 90), (false, 255)],
            )
            .subscribe(0, 0, Since::None, false)
            .subscribe(1, 0, Since::None, true)
            .subscribe(1, 1, Since::Seq(0), false)
            .subscribe(2, 2, Since::None, false)
            .publish_n(0, 4, 50)
            .publish_n(1, 6, 20)
            .publish_n(2, 3, 10)
            .take(0, 3)
            .take(1, 2)
            .unsubscribe(1, 1)
            .publish_n(1, 3, 20)
            .subscribe(0, 2, Since::Max, false)
            .close(1, false)
            .take(2, ALL)
            .done(),
        ),
    ]
}
