//! Parsing one typical GPS publish: simd-json (borrowed, in place) vs serde_json (`Value`)
//! vs the server's real parser `parse_client_op` (raw-span scan + simd-json validation +
//! typed fields + copying `data` out, byte-exact).
//!
//! Both in-place parsers need a fresh mutable copy each time (they rewrite the buffer), so
//! their figures include a ~130-byte `copy_from_slice`; `copy_only` measures that alone.
//!
//! `cargo bench -p shardcast-benches --bench parse`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardcast_server::protocol::{parse_client_op, ClientOp};
use std::hint::black_box;
use std::time::Duration;

const PUB: &[u8] = br#"{"op":"pub","room":"vehicle:42","data":{"id":"v42","lat":52.52,"lon":13.405,"speed":31.2,"heading":270,"ts":1732300000000},"id":7}"#;

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse/gps_pub");
    g.throughput(Throughput::Bytes(PUB.len() as u64));
    let mut buf = PUB.to_vec();

    g.bench_function(BenchmarkId::from_parameter("copy_only"), |b| {
        b.iter(|| {
            buf.copy_from_slice(black_box(PUB));
            black_box(&mut buf);
        })
    });
    g.bench_function(BenchmarkId::from_parameter("simd_json_borrowed"), |b| {
        b.iter(|| {
            buf.copy_from_slice(black_box(PUB));
            let v = simd_json::to_borrowed_value(&mut buf).unwrap();
            black_box(&v);
        })
    });
    // Reusing simd-json's scratch buffers (one set per shard) instead of allocating them
    // per call: what the server could do.
    let mut buffers = simd_json::Buffers::new(PUB.len());
    g.bench_function(BenchmarkId::from_parameter("simd_json_borrowed_reused_buffers"), |b| {
        b.iter(|| {
            buf.copy_from_slice(black_box(PUB));
            let v = simd_json::to_borrowed_value_with_buffers(&mut buf, &mut buffers).unwrap();
            black_box(&v);
        })
    });
    g.bench_function(BenchmarkId::from_parameter("serde_json_value"), |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(PUB)).unwrap())
    });
    g.bench_function(BenchmarkId::from_parameter("server_parse_client_op"), |b| {
        b.iter(|| {
            buf.copy_from_slice(black_box(PUB));
            let op = parse_client_op(&mut buf).unwrap();
            debug_assert!(matches!(op, ClientOp::Pub { .. }));
            op
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

criterion_group! { name = benches; config = config(); targets = parse }
criterion_main!(benches);
