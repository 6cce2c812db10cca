//! The server's resident memory over time: a thread reading VmRSS from /proc/PID/status at a
//! fixed interval, so a short spike between two reports is not missed (peak = max sample).
//!
//! Without a pid the sampler does nothing and every figure is `None`: memory is only ever
//! reported when it was measured.

use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sys;

/// (monotonic ns, VmRSS KiB).
pub type Sample = (u64, u64);

pub struct RssSampler {
    pid: Option<u32>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    handle: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: Option<u32>, every: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let handle = pid.map(|pid| {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::Builder::new()
                .name("rss-sampler".into())
                .spawn(move || {
                    while !stop.load(Relaxed) {
                        if let Some(kib) = sys::pid_rss_kib(pid) {
                            samples.lock().unwrap_or_else(|p| p.into_inner()).push((sys::mono_ns(), kib));
                        }
                        std::thread::sleep(every);
                    }
                })
                .expect("spawning the RSS sampler")
        });
        RssSampler { pid, stop, samples, handle }
    }

    /// RSS right now (KiB), read directly rather than from the last sample.
    pub fn now(&self) -> Option<u64> {
        self.pid.and_then(sys::pid_rss_kib)
    }

    /// Highest sample taken in `[from, to]` (monotonic ns).
    pub fn peak_between(&self, from: u64, to: u64) -> Option<u64> {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.iter().filter(|(t, _)| (from..=to).contains(t)).map(|&(_, k)| k).max()
    }

    /// Samples taken in `[from, to]`.
    pub fn between(&self, from: u64, to: u64) -> Vec<Sample> {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.iter().filter(|(t, _)| (from..=to).contains(t)).copied().collect()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
