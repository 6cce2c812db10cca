//! Encode-once costs: the WebSocket header + payload frame, the room-message envelope, and
//! the whole per-message encode `Message::new` that the owner shard does once per publish.
//!
//! `cargo bench -p shardcast-benches --bench frame`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardcast_engine::{envelope, frame, Message, Policy};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A typical GPS update, about 200 bytes of JSON.
const GPS: &[u8] = br#"{"id":"v42","lat":52.520008,"lon":13.404954,"speed":31.2,"heading":270,"alt":34.5,"acc":3.9,"sat":11,"battery":87,"odometer":128734.2,"driver":"d-1187","route":"M41","status":"in_service","ts":1732300000000}"#;

fn text_frame(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame/text_frame");
    for size in [16usize, 125, 126, 1024, 64 << 10] {
        let payload = vec![b'x'; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| frame::text_frame(black_box(p)))
        });
    }
    g.finish();
}

fn message_frame(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("message_frame", GPS.len()), |b| {
        b.iter(|| envelope::message_frame(black_box("vehicle:42"), black_box(1_234_567), black_box(GPS)))
    });
    g.finish();
}

fn message_new(c: &mut Criterion) {
    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Elements(1));
    let room: Arc<str> = Arc::from("vehicle:42");
    let data = Bytes::from_static(GPS);
    let at = Instant::now();
    // What the owner does per publish: clone the room name and the data handle, build the
    // frame, wrap it in an Arc for fan-out; dropping it is part of a message's life too.
    g.bench_function(BenchmarkId::new("new_arc", GPS.len()), |b| {
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            Arc::new(Message::new(
                room.clone(),
                black_box(seq),
                data.clone(),
                Some("v42".into()),
                Policy::Conflate,
                at,
            ))
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = text_frame, message_frame, message_new }
criterion_main!(benches);
