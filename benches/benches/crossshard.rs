//! The cost of the cross-shard hop, on real pinned glommio shards.
//!
//! One subscriber and one publisher live on shard 0. With 1 shard the room is owned by
//! shard 0 (no hop: sequence, encode and fan-out happen inside `publish`); with 2 shards the
//! room is owned by shard 1, so each message goes shard 0 → owner (request channel) → shard 0
//! (event channel) before it reaches the outbox. Same process, same binary, same run: the
//! 2-shard/1-shard ratio is the figure that carries across machines.
//!
//! Measured per configuration:
//! * **ping-pong latency**: publish one message, wait until it is taken from the outbox,
//!   repeat; the time from just before `publish().await` to the take.
//! * **burst throughput**: publish `BURST` messages back to back (yielding to the executor
//!   every 64, as a connection's reader yields between reads), with the subscriber's writer
//!   task draining concurrently; time from the first publish to the last take, and each
//!   message's publish→take latency (queueing included).
//!
//! `cargo bench -p shardcast-benches --bench crossshard` (env: `PINGPONG`, `BURST`, `REPS`)

use bytes::Bytes;
use futures_lite::future;
use hdrhistogram::Histogram;
use shardcast_engine::outbox::Entry;
use shardcast_engine::{
    owner_of, Ack, DeliveryMode, Engine, EngineConfig, Reply, Shard, StopFlag, Subscriber,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GPS: &[u8] = br#"{"id":"v42","lat":52.520008,"lon":13.404954,"speed":31.2,"heading":270,"alt":34.5,"acc":3.9,"sat":11,"battery":87,"odometer":128734.2,"driver":"d-1187","route":"M41","status":"in_service","ts":1732300000000}"#;

/// Most frames a writer takes per wake-up.
const TAKE_MAX: usize = 4096;
/// Publishes between two yields of the publisher task.
const YIELD_EVERY: u64 = 64;

/// What the subscriber's writer saw during one burst.
struct BurstWriter {
    h: Histogram<u64>,
    got: u64,
    /// Messages whose seq was not the one after the previous message's.
    misordered: u64,
    /// Messages that had not arrived 5 s after the last one did.
    lost: u64,
}

struct Outcome {
    pingpong: Histogram<u64>,
    burst: Vec<(Duration, BurstWriter)>,
    delivered: u64,
    dropped: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

fn room_owned_by(owner: usize, shards: usize) -> String {
    (0..).map(|i| format!("vehicle:{i}")).find(|r| owner_of(r, shards) == owner).expect("a room")
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Takes at least one frame from `sub` (waiting if none) into `out`; returns when it did.
async fn take(sub: &Subscriber, out: &mut Vec<Entry>) {
    let more = future::poll_fn(|cx| sub.poll_take(cx, out, TAKE_MAX)).await;
    assert!(more, "outbox closed");
}

fn seq_of(e: &Entry) -> u64 {
    match e {
        Entry::Msg(m) => m.seq,
        Entry::Ctrl(c) => panic!("unexpected control frame {c:?}"),
    }
}

async fn measure(shard: Rc<Shard>, room: String, pingpong: u64, burst: u64, reps: u64) -> Outcome {
    let data = Bytes::from_static(GPS);
    let sub = shard.new_subscriber(DeliveryMode::Envelope);
    shard.subscribe(&sub, &room, None, false, Ack::Ok(None)).await;
    let mut out = Vec::with_capacity(TAKE_MAX);
    take(&sub, &mut out).await; // the `ok`: the subscription is live
    out.clear();

    // Ping-pong: one message in flight at a time.
    let mut pp = histogram();
    let mut seq = 0u64;
    for _ in 0..pingpong {
        let t = Instant::now();
        shard.publish(&room, data.clone(), None, Reply::None).await;
        take(&sub, &mut out).await;
        let ns = t.elapsed().as_nanos() as u64;
        seq += 1;
        assert_eq!(seq_of(&out[0]), seq);
        assert_eq!(out.len(), 1);
        out.clear();
        pp.saturating_record(ns);
    }

    // Bursts: publisher and writer run as two tasks of the shard.
    let mut bursts = Vec::new();
    let sub = Rc::new(sub);
    for _ in 0..reps {
        let sent: Rc<RefCell<Vec<Instant>>> = Rc::new(RefCell::new(Vec::with_capacity(burst as usize)));
        let base = seq;
        let writer = {
            let (sub, sent) = (sub.clone(), sent.clone());
            glommio::spawn_local(async move {
                let mut w = BurstWriter { h: histogram(), got: 0, misordered: 0, lost: 0 };
                let mut out = Vec::with_capacity(TAKE_MAX);
                let mut last = Instant::now();
                let mut expected = 0u64;
                while w.got < burst {
                    // A message that never comes must not hang the run: count it lost.
                    let taken = future::or(
                        async {
                            take(&sub, &mut out).await;
                            true
                        },
                        async {
                            glommio::timer::sleep(Duration::from_secs(5)).await;
                            false
                        },
                    )
                    .await;
                    if !taken {
                        w.lost = burst - w.got;
                        break;
                    }
                    last = Instant::now();
                    let sent = sent.borrow();
                    for e in out.drain(..) {
                        let Some(i) = seq_of(&e).checked_sub(base + 1) else {
                            w.misordered += 1; // a straggler from an earlier burst
                            continue;
                        };
                        // Per-room order is a contract (DESIGN §2): report any violation.
                        if i != expected {
                            w.misordered += 1;
                        }
                        expected = i + 1;
                        w.h.saturating_record(last.duration_since(sent[i as usize]).as_nanos() as u64);
                        w.got += 1;
                    }
                }
                (w, last)
            })
        };
        let start = Instant::now();
        for i in 0..burst {
            sent.borrow_mut().push(Instant::now());
            shard.publish(&room, data.clone(), None, Reply::None).await;
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                future::yield_now().await;
            }
        }
        let (w, last) = writer.await;
        seq += burst;
        bursts.push((last.duration_since(start), w));
    }
    let stats = shard.stats();
    Outcome { pingpong: pp, burst: bursts, delivered: stats.delivered, dropped: stats.dropped }
}

fn run(shards: usize, spin: Option<Duration>, pingpong: u64, burst: u64, reps: u64) -> Outcome {
    let cfg = EngineConfig {
        shards,
        pin: true,
        outbox_bytes: 1 << 30, // a burst must never hit the slow-consumer policy
        spin_before_park: spin,
        ..EngineConfig::default()
    };
    let room = room_owned_by(shards - 1, shards);
    let done = Arc::new(AtomicBool::new(false));
    let result: Arc<Mutex<Option<Outcome>>> = Arc::default();
    let (done2, result2) = (done.clone(), result.clone());
    let engine = Engine::start(cfg, StopFlag::new(), move |shard: Rc<Shard>| {
        let (room, done, result) = (room.clone(), done2.clone(), result2.clone());
        async move {
            if shard.id() != 0 {
                // Keep serving the mesh until shard 0 is done.
                while !done.load(Ordering::Acquire) {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                return;
            }
            let o = measure(shard, room, pingpong, burst, reps).await;
            *result.lock().unwrap() = Some(o);
            done.store(true, Ordering::Release);
        }
    })
    .expect("engine starts");
    engine.join().expect("shards exit cleanly");
    let o = result.lock().unwrap().take();
    o.expect("shard 0 reported")
}

fn pct(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:>7}  p90 {:>7}  p99 {:>7}  p99.9 {:>8}  max {:>9}  mean {:>9.0}",
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.mean()
    )
}

/// Returns (median ns/message of the bursts, median p50 of ping-pong).
fn report(label: &str, o: &Outcome, burst: u64) -> (f64, f64) {
    println!("== {label} ==");
    println!("  ping-pong  {:>7} msgs, publish→outbox ns: {}", o.pingpong.len(), pct(&o.pingpong));
    let mut per_msg: Vec<f64> = Vec::new();
    for (i, (d, w)) in o.burst.iter().enumerate() {
        let ns = d.as_nanos() as f64 / burst as f64;
        per_msg.push(ns);
        println!(
            "  burst #{i}  {burst} msgs in {:>8.2} ms: {:>7.1} ns/msg, {:>10.0} msgs/s; latency ns: {}",
            d.as_secs_f64() * 1e3,
            ns,
            1e9 / ns,
            pct(&w.h)
        );
        if w.misordered > 0 || w.lost > 0 {
            println!(
                "  !! ORDER/LOSS VIOLATION in burst #{i}: {} out of order, {} lost (received {})",
                w.misordered, w.lost, w.got
            );
        }
    }
    per_msg.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = per_msg[per_msg.len() / 2];
    println!(
        "  burst median {med:.1} ns/msg ({:.0} msgs/s), best {:.1} ns/msg; delivered {} dropped {}",
        1e9 / med,
        per_msg[0],
        o.delivered,
        o.dropped
    );
    (med, o.pingpong.value_at_quantile(0.5) as f64)
}

fn main() {
    // `cargo bench` passes `--bench`; this main takes no arguments.
    let pingpong = env("PINGPONG", 20_000);
    let burst = env("BURST", 200_000);
    let reps = env("REPS", 5);
    println!(
        "crossshard: ping-pong {pingpong}, burst {burst} x {reps}, payload {} B, cpus {:?}",
        GPS.len(),
        shardcast_engine::affinity::allowed_cpus()
    );
    for (spin, name) in [(None, "park (default)"), (Some(Duration::from_micros(200)), "spin 200us")] {
        let one = run(1, spin, pingpong, burst, reps);
        let (t1, l1) = report(&format!("1 shard, room owned by shard 0 (no hop), {name}"), &one, burst);
        let two = run(2, spin, pingpong, burst, reps);
        let (t2, l2) = report(&format!("2 shards, room owned by shard 1 (hop 0→1→0), {name}"), &two, burst);
        println!(
            "  RATIO 2-shard/1-shard ({name}): burst ns/msg {:.2}x ({t2:.1} / {t1:.1}); ping-pong p50 {:.2}x ({l2:.0} / {l1:.0})\n",
            t2 / t1,
            l2 / l1
        );
    }
}
