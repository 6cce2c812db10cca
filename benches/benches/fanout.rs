//! Fan-out on one shard: one `Arc<Message>` pushed into the outbox of every local
//! subscriber of a room, exactly what `Shard::deliver_local` does per message (a refcount
//! increment, a queue push, a writer wake-up if the outbox was empty, and the push counted).
//!
//! Outboxes are drained outside the timed section, the way each connection's writer takes
//! everything queued between scheduler ticks; the drain also re-registers the writer's waker,
//! so the first push after it pays the wake-up, as in the server. The waker here is
//! `Waker::noop()`: a real glommio waker additionally schedules the writer task.
//!
//! `cargo bench -p shardcast-benches --bench fanout`
//! Target (DESIGN): ≥ 10 million subscriber deliveries/s per core with 10k subscribers.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardcast_engine::outbox::{Entry, Pushed};
use shardcast_engine::{DeliveryMode, Message, Policy, Subscriber};
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

const GPS: &[u8] = br#"{"id":"v42","lat":52.520008,"lon":13.404954,"speed":31.2,"heading":270,"alt":34.5,"acc":3.9,"sat":11,"battery":87,"odometer":128734.2,"driver":"d-1187","route":"M41","status":"in_service","ts":1732300000000}"#;

/// The per-message loop of `Shard::deliver_local` + `count_pushes`: push to each local
/// subscriber and count what was delivered.
#[inline(never)]
fn deliver_local(subs: &[Rc<Subscriber>], msg: &Arc<Message>) -> u64 {
    let mut delivered = 0u64;
    for s in subs {
        if let Pushed::Queued { .. } = s.push_msg(msg) {
            delivered += 1;
        }
    }
    delivered
}

/// What each connection's writer does between ticks: take everything, then park (which
/// stores its waker in the subscriber).
fn drain(subs: &[Rc<Subscriber>], out: &mut Vec<Entry>) {
    let mut cx = Context::from_waker(Waker::noop());
    for s in subs {
        while let Poll::Ready(true) = s.poll_take(&mut cx, out, usize::MAX) {}
        out.clear();
    }
}

fn messages(room: &Arc<str>, first_seq: u64, n: usize) -> Vec<Arc<Message>> {
    (0..n as u64)
        .map(|i| {
            Arc::new(Message::new(
                room.clone(),
                first_seq + i,
                Bytes::from_static(GPS),
                Some("v42".into()),
                Policy::Drop,
                Instant::now(),
            ))
        })
        .collect()
}

/// `per_drain` messages are fanned out between two drains.
fn bench_fanout(c: &mut Criterion, group: &str, per_drain: impl Fn(usize) -> usize) {
    let mut g = c.benchmark_group(group);
    for n in [1usize, 100, 10_000] {
        // Large budget: nothing is ever dropped, every push is a delivery.
        let subs: Vec<Rc<Subscriber>> =
            (0..n as u64).map(|i| Rc::new(Subscriber::new(i, DeliveryMode::Envelope, 1 << 30))).collect();
        let room: Arc<str> = Arc::from("fleet:berlin");
        let batch = per_drain(n);
        let mut out = Vec::with_capacity(batch + 8);
        drain(&subs, &mut out);
        let mut seq = 1u64;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    let k = batch.min((iters - done) as usize);
                    let msgs = messages(&room, seq, k);
                    seq += k as u64;
                    let t = Instant::now();
                    let mut delivered = 0;
                    for m in &msgs {
                        delivered += deliver_local(black_box(&subs), m);
                    }
                    total += t.elapsed();
                    assert_eq!(delivered, (k * n) as u64);
                    drain(&subs, &mut out);
                    done += k as u64;
                }
                total
            })
        });
    }
    g.finish();
}

/// Steady state under load: many messages arrive between two writer runs (the event loop
/// drains the cross-shard channel before yielding), ~256k pushes per drain.
fn fanout_batched(c: &mut Criterion) {
    bench_fanout(c, "fanout/push_msg", |n| ((1 << 18) / n).clamp(16, 4096));
}

/// Worst case: every subscriber's writer is parked before every message, so every push
/// also takes and fires its waker.
fn fanout_wake_each(c: &mut Criterion) {
    bench_fanout(c, "fanout/push_msg_wake_each", |_| 1);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = fanout_batched, fanout_wake_each }
criterion_main!(benches);
