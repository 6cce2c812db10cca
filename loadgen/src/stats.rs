//! Per-thread measurements and their merge into a [`Summary`].
//!
//! Each worker owns a [`Stats`] (no sharing on the hot path); the run merges them at the end.
//! Latencies are in nanoseconds in HdrHistograms with 3 significant digits.

use hdrhistogram::Histogram;
use serde::Serialize;

pub const HIST_MAX_NS: u64 = 120_000_000_000;

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid histogram bounds")
}

/// One second of a worker's activity (index = seconds since the run's start, warm-up included).
#[derive(Clone)]
pub struct Interval {
    /// Messages whose intended send time fell in this second.
    pub sent: u64,
    /// Deliveries received in this second (measurement window only).
    pub received: u64,
    pub lat: Histogram<u64>,
    /// Thread CPU time at the end of the second (ns), for utilisation.
    pub cpu_ns: u64,
}

/// One target's (cluster node's) share: deliveries to subscribers connected to it.
#[derive(Clone)]
pub struct NodeStats {
    /// Σ over in-window publishes of the subscriptions confirmed on this node for its rooms.
    pub expected: u64,
    pub received: u64,
    pub lat: Histogram<u64>,
    /// Room seqs that never reached a subscription here (holes between two deliveries).
    pub seq_holes: u64,
}

impl NodeStats {
    pub fn new() -> NodeStats {
        NodeStats { expected: 0, received: 0, lat: new_hist(), seq_holes: 0 }
    }
}

impl Default for NodeStats {
    fn default() -> Self {
        NodeStats::new()
    }
}

#[derive(Clone)]
pub struct Stats {
    pub lat: Histogram<u64>,
    pub completion: Histogram<u64>,
    pub send_lag: Histogram<u64>,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub incomplete_fanouts: u64,
    pub server_errors: u64,
    pub gap_notices: u64,
    pub gap_messages: u64,
    pub unparsed: u64,
    pub connect_failures: u64,
    pub sub_failures: u64,
    pub disconnects: u64,
    pub send_skipped: u64,
    pub intervals: Vec<Interval>,
    /// Thread CPU (ns) and wall (ns) during the measurement window.
    pub window_cpu_ns: u64,
    pub window_wall_ns: u64,
    pub first_error: Option<String>,
    /// Thread CPU time when the run started (origin of the per-second utilisation).
    pub run_cpu0: u64,
    /// `/ws` publishes acknowledged (`ok`) during the window, and over the whole run.
    pub acked: u64,
    pub acked_total: u64,
    /// Room seqs that never reached a `/ws` subscription (holes between two deliveries).
    pub seq_holes: u64,
    /// Per node, indexed by node.
    pub nodes: Vec<NodeStats>,
    /// `/ws` subscriptions still live at the end: (node, room, last seq seen).
    pub finals: Vec<(usize, u32, Option<u64>)>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            lat: new_hist(),
            completion: new_hist(),
            send_lag: new_hist(),
            sent: 0,
            expected: 0,
            received: 0,
            duplicated: 0,
            reordered: 0,
            incomplete_fanouts: 0,
            server_errors: 0,
            gap_notices: 0,
            gap_messages: 0,
            unparsed: 0,
            connect_failures: 0,
            sub_failures: 0,
            disconnects: 0,
            send_skipped: 0,
            intervals: Vec::new(),
            window_cpu_ns: 0,
            window_wall_ns: 0,
            first_error: None,
            run_cpu0: 0,
            acked: 0,
            acked_total: 0,
            seq_holes: 0,
            nodes: Vec::new(),
            finals: Vec::new(),
        }
    }

    /// Node `k`'s share (created on first use).
    pub fn node(&mut self, k: usize) -> &mut NodeStats {
        while self.nodes.len() <= k {
            self.nodes.push(NodeStats::new());
        }
        &mut self.nodes[k]
    }

    pub fn interval(&mut self, sec: usize) -> &mut Interval {
        while self.intervals.len() <= sec {
            self.intervals.push(Interval { sent: 0, received: 0, lat: new_hist(), cpu_ns: 0 });
        }
        &mut self.intervals[sec]
    }

    pub fn error(&mut self, msg: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(msg());
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

/// Percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |v: u64| v as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IntervalRow {
    pub second: usize,
    pub warmup: bool,
    pub sent: u64,
    pub received: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Per worker thread: share of one core used in this second.
    pub thread_util: Vec<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ThreadUsage {
    pub cpu: usize,
    pub utilisation: f64,
}

/// One target's figures: what the subscribers connected to it saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeSummary {
    /// Position in the target list (`--url` order).
    pub node: usize,
    pub url: String,
    pub publishers: usize,
    pub subscriber_connections: usize,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    /// Room seqs that never reached a `/ws` subscription here (holes between deliveries).
    pub seq_holes: u64,
    /// `/ws` subscriptions here still live at the end.
    pub live_subscriptions: u64,
    /// Σ over those of (the room's highest acknowledged seq − the last seq the
    /// subscription saw): acknowledged publishes it never got. Must be 0.
    pub acked_unseen: u64,
    pub latency: Percentiles,
}

/// Everything one measurement produced. (`Default` only so tests can build one by hand.)
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub scenario: String,
    /// The target, or every node's joined with ` + ` (details in `nodes`).
    pub target: String,
    /// Where publishers and subscribers were placed over the nodes.
    pub placement: String,
    /// Per target (node), in `--url` order.
    pub nodes: Vec<NodeSummary>,
    /// `/ws` publishes acknowledged during the window, and per second of it.
    pub acked: u64,
    pub acked_per_s: f64,
    /// Room seqs that never reached a `/ws` subscription, and acknowledged publishes a
    /// subscription live at the end never got (all nodes).
    pub seq_holes: u64,
    pub acked_unseen: u64,
    pub offered_rate_hz: f64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub publishers: usize,
    pub subscriber_clients: usize,
    pub connections: usize,
    pub connected: usize,
    pub connect_failures: u64,
    pub sub_failures: u64,
    pub disconnects: u64,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub server_errors: u64,
    pub gap_notices: u64,
    pub gap_messages: u64,
    pub unparsed: u64,
    pub send_skipped: u64,
    pub incomplete_fanouts: u64,
    pub delivered_per_s: f64,
    pub latency: Percentiles,
    pub fanout_completion: Percentiles,
    pub send_lag: Percentiles,
    pub loadgen_threads: Vec<ThreadUsage>,
    pub loadgen_cpu_s: f64,
    pub loadgen_cpu_us_per_delivery: f64,
    pub loadgen_saturated: bool,
    pub server_cpu_cores: Option<f64>,
    /// Server CPU-seconds (utime + stime) over the window.
    pub server_cpu_s: Option<f64>,
    /// Server CPU per delivery in µs: `server_cpu_s` ÷ `received` — the figure that compares
    /// servers at a fixed offered load, where "cores" alone hides how much work each did.
    pub server_cpu_us_per_delivery: Option<f64>,
    pub server_rss_kib_before: Option<u64>,
    pub server_rss_kib_after: Option<u64>,
    pub rss_bytes_per_connection: Option<f64>,
    pub first_error: Option<String>,
    pub intervals: Vec<IntervalRow>,
    /// Latency percentile curve (quantile, µs) for plots.
    pub latency_curve: Vec<(f64, f64)>,
}

impl Summary {
    pub fn ok(&self, slo_ms: Option<f64>) -> bool {
        self.lost == 0
            && self.connect_failures == 0
            && self.sent > 0
            && slo_ms.is_none_or(|slo| self.latency.p99_us <= slo * 1000.0)
    }
}

/// Merges worker stats (histograms summed, counters added, intervals aligned by second).
pub fn merge(all: &[Stats]) -> (Stats, Vec<Vec<u64>>) {
    let mut m = Stats::new();
    let mut cpu_series = Vec::new();
    for s in all {
        m.lat.add(&s.lat).ok();
        m.completion.add(&s.completion).ok();
        m.send_lag.add(&s.send_lag).ok();
        m.sent += s.sent;
        m.expected += s.expected;
        m.received += s.received;
        m.duplicated += s.duplicated;
        m.reordered += s.reordered;
        m.incomplete_fanouts += s.incomplete_fanouts;
        m.server_errors += s.server_errors;
        m.gap_notices += s.gap_notices;
        m.gap_messages += s.gap_messages;
        m.unparsed += s.unparsed;
        m.connect_failures += s.connect_failures;
        m.sub_failures += s.sub_failures;
        m.disconnects += s.disconnects;
        m.send_skipped += s.send_skipped;
        m.acked += s.acked;
        m.acked_total += s.acked_total;
        m.seq_holes += s.seq_holes;
        for (k, n) in s.nodes.iter().enumerate() {
            let dst = m.node(k);
            dst.expected += n.expected;
            dst.received += n.received;
            dst.seq_holes += n.seq_holes;
            dst.lat.add(&n.lat).ok();
        }
        m.finals.extend_from_slice(&s.finals);
        for (i, iv) in s.intervals.iter().enumerate() {
            let dst = m.interval(i);
            dst.sent += iv.sent;
            dst.received += iv.received;
            dst.lat.add(&iv.lat).ok();
        }
        cpu_series.push(std::iter::once(s.run_cpu0).chain(s.intervals.iter().map(|iv| iv.cpu_ns)).collect());
        if m.first_error.is_none() {
            m.first_error.clone_from(&s.first_error);
        }
    }
    (m, cpu_series)
}

/// Quantile curve for plotting: 0..99.999% on a "nines" scale.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return vec![];
    }
    let mut v = Vec::new();
    let mut nines = 0.0f64;
    while nines <= 5.0 {
        let q = 1.0 - 10f64.powf(-nines);
        v.push((q, h.value_at_quantile(q) as f64 / 1000.0));
        nines += 0.05;
    }
    v.push((1.0, h.max() as f64 / 1000.0));
    v
}
