//! The healthy neighbours of the abuse tests: a publisher sending a timestamped message every
//! 20 ms and two subscribers (one on `/ws`, one on `/ws/<room>`) that record each message's
//! delivery latency, plus the server's RSS. Each attack runs beside a probe; the test then
//! asserts the neighbours lost nothing, were not held up for long, and memory stayed bounded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::*;

/// What the neighbours saw.
#[derive(Debug)]
pub struct Seen {
    pub published: u64,
    /// Per subscriber: messages received (in order, no duplicate).
    pub received: [u64; 2],
    pub max_latency: Duration,
    pub rss_growth_kib: i64,
}

/// A running probe (see the module documentation).
pub struct Probe {
    stop: Arc<AtomicBool>,
    publisher: JoinHandle<u64>,
    readers: Vec<JoinHandle<(u64, Duration)>>,
    rss_before: i64,
    rss_peak: Arc<Mutex<i64>>,
    sampler: JoinHandle<()>,
}

/// The server's resident set in KiB.
pub fn rss_kib(pid: i32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn micros(t0: Instant) -> u64 {
    t0.elapsed().as_micros() as u64
}

impl Probe {
    pub fn start(server: &Server) -> Probe {
        let room = unique("probe:");
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let mut mux = server.ws();
        assert_eq!(mux.sub(&room, 1), 0);
        let mut raw = server.connect(&format!("/ws/{room}"));
        wait_subscribers(server, &room, 2);
        let mut publisher = server.ws();
        let readers = vec![
            thread::spawn(move || read_all(t0, |timeout| mux.next_frame(timeout), true)),
            thread::spawn(move || read_all(t0, |timeout| raw.next_frame(timeout), false)),
        ];
        let (s, r) = (stop.clone(), room.clone());
        let publisher = thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let data = format!(r#"{{"t":{},"n":{n}}}"#, micros(t0));
                assert_eq!(publisher.publish(&r, &data, n), n, "probe seq");
                thread::sleep(Duration::from_millis(20));
            }
            // The end marker tells the readers to stop.
            publisher.publish(&r, r#"{"t":0,"n":0}"#, n + 1);
            n
        });
        let pid = server.pid();
        let rss_before = rss_kib(pid);
        let rss_peak = Arc::new(Mutex::new(rss_before));
        let (s, peak) = (stop.clone(), rss_peak.clone());
        let sampler = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let now = rss_kib(pid);
                let mut p = peak.lock().unwrap();
                *p = (*p).max(now);
                drop(p);
                thread::sleep(Duration::from_millis(50));
            }
        });
        Probe { stop, publisher, readers, rss_before, rss_peak, sampler }
    }

    /// Stops publishing and waits (bounded) for the subscribers to see everything.
    pub fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let published = self.publisher.join().expect("probe publisher");
        let mut received = [0; 2];
        let mut max_latency = Duration::ZERO;
        for (i, r) in self.readers.into_iter().enumerate() {
            let (n, max) = r.join().expect("probe reader");
            received[i] = n;
            max_latency = max_latency.max(max);
        }
        self.sampler.join().unwrap();
        let peak = *self.rss_peak.lock().unwrap();
        Seen { published, received, max_latency, rss_growth_kib: peak - self.rss_before }
    }
}

/// Reads until the end marker; returns (messages in order, max latency). Panics on a gap,
/// a duplicate or silence longer than the client timeout.
fn read_all(
    t0: Instant,
    mut next: impl FnMut(Duration) -> Result<Option<Frame>, String>,
    envelope: bool,
) -> (u64, Duration) {
    let (mut expected, mut max) = (1u64, Duration::ZERO);
    loop {
        let text = match next(Duration::from_secs(10)) {
            Ok(Some(Frame::Text(t))) => t,
            other => panic!("probe subscriber: {other:?} while waiting for message {expected}"),
        };
        let now = micros(t0);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let data = if envelope { &v["data"] } else { &v };
        let n = data["n"].as_u64().unwrap_or_else(|| panic!("not a probe message: {text}"));
        if n == 0 {
            return (expected - 1, max);
        }
        assert_eq!(n, expected, "probe subscriber lost or reordered messages");
        max = max.max(Duration::from_micros(now.saturating_sub(data["t"].as_u64().unwrap())));
        expected += 1;
    }
}

/// The limits every attack is held to in CI: nothing lost, no neighbour held up for long,
/// memory bounded. Generous on purpose (timing belongs to benchmarks, `shardcast-loadgen
/// abuse`); before the hardening these attacks held neighbours up for seconds and grew RSS
/// by hundreds of MiB.
pub fn assert_unharmed(what: &str, seen: &Seen) {
    eprintln!("{what}: {seen:?}");
    assert!(seen.published >= 10, "{what}: the probe published too little: {seen:?}");
    assert_eq!(seen.received, [seen.published; 2], "{what}: neighbours lost messages");
    assert!(seen.max_latency < Duration::from_millis(1000), "{what}: neighbours held up: {seen:?}");
    assert!(seen.rss_growth_kib < 64 * 1024, "{what}: RSS grew by {} KiB", seen.rss_growth_kib);
}
