//! One measurement: expand the scenario, spread connections over pinned worker threads, set
//! up, run warm-up + measurement on an open-loop schedule, drain, stop, merge.

use std::net::{Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::nodes::Placement;
use crate::scenario::{Plan, Scenario};
use crate::stats::{self, NodeSummary, Percentiles, Summary, ThreadUsage};
use crate::sys;
use crate::worker::{self, ConnSpec, Proto, Ring, Shared, WorkerInit, PHASE_RUN, PHASE_SETUP, PHASE_STOP};
use crate::ws::WsUrl;

/// Where to connect and which protocol to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// shardcast multiplexed endpoint, e.g. `ws://127.0.0.1:8080/ws`.
    Mux(String),
    /// Room-per-URL template containing `{room}`, e.g. `ws://127.0.0.1:8000/ws/{room}/`.
    PerRoom(String),
}

impl Target {
    /// A string with `{room}` is a per-room template, anything else a multiplexed URL.
    pub fn parse(s: &str) -> Target {
        if s.contains("{room}") {
            Target::PerRoom(s.to_string())
        } else {
            Target::Mux(s.to_string())
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Target::Mux(s) | Target::PerRoom(s) => s,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOpts {
    /// One target, or a cluster's nodes (numbered in this order); all the same protocol.
    pub targets: Vec<Target>,
    /// Which node each publisher and subscriber client connects to.
    pub placement: Placement,
    pub scenario: Scenario,
    pub warmup: Duration,
    pub duration: Duration,
    /// How long to wait after the last send for in-flight deliveries.
    pub drain: Duration,
    pub connect_timeout: Duration,
    /// CPUs for worker threads (one thread each); empty = one unpinned thread.
    pub cpus: Vec<usize>,
    /// Source addresses 127.0.0.1..N; None = automatic.
    pub source_ips: Option<u32>,
    pub server_pid: Option<u32>,
    pub progress: bool,
    /// `connections` mode: hold the idle connections for `duration`, no publishing window.
    pub hold_only: bool,
}

/// One target, resolved: where its connections go and what they ask for.
#[derive(Debug, Clone)]
pub struct Node {
    pub target: Target,
    pub dst: SocketAddr,
    /// `Host` header of the upgrade request.
    pub host: String,
}

impl Node {
    /// Resolves `target` to an IPv4 address and checks that something listens there, so a
    /// wrong port fails fast and clearly instead of as thousands of connect errors.
    pub fn resolve(target: &Target) -> Result<Node> {
        let url = WsUrl::parse(&target.as_str().replace("{room}", "x"))?;
        let dst: SocketAddr = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", url.host))?
            .find(|a| a.is_ipv4())
            .with_context(|| format!("{} has no IPv4 address", url.host))?;
        TcpStream::connect_timeout(&dst, Duration::from_secs(2))
            .with_context(|| format!("cannot reach the server at {dst} ({})", target.as_str()))?;
        Ok(Node { target: target.clone(), dst, host: url.host })
    }

    /// The request path for a connection about `room` (the `/ws` path for a multiplexed target).
    fn path(&self, room: &str) -> Result<String> {
        Ok(WsUrl::parse(&self.target.as_str().replace("{room}", room))?.path)
    }
}

/// The connections of one worker thread and the publishers it drives.
type ThreadWork = (Vec<ConnSpec>, Vec<crate::scenario::PubSpec>);

/// Connection specs for every publisher and subscriber client of `plan`, on their nodes
/// (`placement`), dealt round-robin over `threads` workers; also the total connections and
/// subscription slots. A publisher's connections stay on its worker (it drives them).
pub fn conn_specs(
    plan: &Plan,
    proto: &Proto,
    nodes: &[Node],
    placement: &Placement,
    threads: usize,
) -> Result<(Vec<ThreadWork>, usize, usize)> {
    let mut per_thread: Vec<ThreadWork> = vec![(vec![], vec![]); threads.max(1)];
    let n_threads = per_thread.len();
    let (mut total_conns, mut total_slots) = (0usize, 0usize);
    // Mux: one connection carries all of a client's rooms; room-per-URL: one per room.
    let mut add = |t: &mut ThreadWork, publisher: Option<u32>, rooms: &[u32], node: usize| -> Result<()> {
        let n = &nodes[node];
        match proto {
            Proto::Mux => {
                t.0.push(ConnSpec { publisher, rooms: rooms.to_vec(), path: n.path("")?, src: None, node });
                total_conns += 1;
            }
            Proto::PerRoom => {
                for &r in rooms {
                    let path = n.path(&plan.rooms[r as usize])?;
                    t.0.push(ConnSpec { publisher, rooms: vec![r], path, src: None, node });
                    total_conns += 1;
                }
            }
        }
        Ok(())
    };
    for (i, p) in plan.publishers.iter().enumerate() {
        let t = &mut per_thread[i % n_threads];
        add(t, Some(p.id), &p.rooms, placement.publisher(i))?;
        t.1.push(p.clone());
    }
    for (i, rooms) in plan.clients.iter().enumerate() {
        total_slots += rooms.len();
        add(&mut per_thread[i % n_threads], None, rooms, placement.subscriber(i))?;
    }
    Ok((per_thread, total_conns, total_slots))
}

/// The targets' protocol: every target must speak the same one.
fn protocol(targets: &[Target]) -> Result<Proto> {
    let per_room = targets.iter().filter(|t| matches!(t, Target::PerRoom(_))).count();
    match per_room {
        0 => Ok(Proto::Mux),
        n if n == targets.len() => Ok(Proto::PerRoom),
        _ => bail!("all targets must be /ws URLs or all room-per-URL templates, not a mix"),
    }
}

/// All targets as one string, for reports: `A` or `A + B + C`.
pub fn targets_label(targets: &[Target]) -> String {
    targets.iter().map(Target::as_str).collect::<Vec<_>>().join(" + ")
}

/// Runs one measurement.
pub fn run_once(o: &RunOpts) -> Result<Summary> {
    let nofile = sys::raise_nofile();
    let plan = Plan::build(&o.scenario)?;
    let proto = protocol(&o.targets)?;
    if o.placement.nodes != o.targets.len() {
        bail!("placement for {} nodes, but {} targets", o.placement.nodes, o.targets.len());
    }
    let nodes = o.targets.iter().map(Node::resolve).collect::<Result<Vec<Node>>>()?;
    let threads = o.cpus.len().max(1);
    let (mut per_thread, total_conns, total_slots) =
        conn_specs(&plan, &proto, &nodes, &o.placement, threads)?;
    if total_conns as u64 + 64 > nofile {
        bail!(
            "{total_conns} connections need more file descriptors than RLIMIT_NOFILE allows ({nofile}); \
             raise it (ulimit -n) or shrink the scenario"
        );
    }
    // Source addresses: ~28k ephemeral ports per (source, destination) pair.
    let loopback = nodes.iter().all(|n| matches!(n.dst, SocketAddr::V4(a) if a.ip().is_loopback()));
    let n_src = o.source_ips.unwrap_or(if loopback { total_conns.div_ceil(25_000).max(1) as u32 } else { 1 });
    if n_src > 1 {
        if !loopback {
            bail!("--source-ips > 1 needs 127.x.x.x targets");
        }
        let mut k = 0u32;
        for t in &mut per_thread {
            for c in &mut t.0 {
                c.src = Some(Ipv4Addr::new(127, 0, 0, 1 + (k % n_src.min(250)) as u8));
                k += 1;
            }
        }
    }

    let conns_per_node = count_per_node(&per_thread, nodes.len());
    let nodes = Arc::new(nodes);
    let rss_before = o.server_pid.and_then(sys::pid_rss_kib);
    let rings = plan.publishers.iter().map(|p| Ring::new(p.rate)).collect();
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(PHASE_SETUP),
        epoch: epoch(),
        t0: AtomicU64::new(0),
        win_start: AtomicU64::new(0),
        win_end: AtomicU64::new(0),
        conns_done: AtomicUsize::new(0),
        conns_ok: AtomicUsize::new(0),
        slots_done: AtomicUsize::new(0),
        nodes: nodes.len(),
        room_subs: (0..plan.rooms.len() * nodes.len()).map(|_| AtomicU32::new(0)).collect(),
        max_acked: (0..plan.rooms.len()).map(|_| AtomicU64::new(0)).collect(),
        rings,
        live_sent: AtomicU64::new(0),
        live_expected: AtomicU64::new(0),
        live_received: AtomicU64::new(0),
    });
    let room_names = Arc::new(plan.rooms.clone());
    let mut handles = Vec::new();
    for (idx, (conns, publishers)) in per_thread.into_iter().enumerate() {
        let init = WorkerInit {
            cpu: o.cpus.get(idx).copied(),
            index: idx,
            shared: shared.clone(),
            proto: proto.clone(),
            nodes: nodes.clone(),
            room_names: room_names.clone(),
            conns,
            publishers,
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("loadgen-{idx}"))
                .spawn(move || worker::run(init))
                .context("spawning worker thread")?,
        );
    }
    let stop_and_join = |handles: Vec<std::thread::JoinHandle<(stats::Stats, u64)>>| {
        shared.phase.store(PHASE_STOP, SeqCst);
        handles.into_iter().map(|h| h.join().expect("worker thread panicked")).collect::<Vec<_>>()
    };

    let bar = progress_bar(o.progress);
    // Setup: connections, then subscription confirmations.
    let setup_deadline = sys::mono_ns() + o.connect_timeout.as_nanos() as u64;
    loop {
        let (done, ok, slots) =
            (shared.conns_done.load(SeqCst), shared.conns_ok.load(SeqCst), shared.slots_done.load(SeqCst));
        bar.set_message(format!("setup: {ok}/{total_conns} connected, {slots}/{total_slots} subscriptions"));
        if (done >= total_conns && slots >= total_slots) || sys::mono_ns() > setup_deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if shared.conns_ok.load(SeqCst) == 0 && total_conns > 0 {
        let results = stop_and_join(handles);
        bar.finish_and_clear();
        let err = results.iter().find_map(|r| r.0.first_error.clone()).unwrap_or_default();
        bail!("no connection to {} could be established: {err}", targets_label(&o.targets));
    }
    std::thread::sleep(Duration::from_millis(100)); // let the server settle subscriptions

    let warm = o.warmup.as_nanos() as u64;
    let dur = o.duration.as_nanos() as u64;
    let t0 = sys::mono_ns() + 20_000_000;
    let (ws_, we) = if o.hold_only { (t0, t0) } else { (t0 + warm, t0 + warm + dur) };
    shared.t0.store(t0, SeqCst);
    shared.win_start.store(ws_, SeqCst);
    shared.win_end.store(we, SeqCst);
    shared.phase.store(PHASE_RUN, SeqCst);

    let total_ns = warm + dur;
    let mut cpu_start = None;
    let mut srv_start = None;
    let mut rss_after = None;
    loop {
        let now = sys::mono_ns();
        if cpu_start.is_none() && now >= ws_ {
            cpu_start = Some((sys::process_cpu_ns(), now));
            srv_start = o.server_pid.and_then(sys::pid_cpu_ns);
        }
        let el = now.saturating_sub(t0);
        let (s, r) = (shared.live_sent.load(Relaxed), shared.live_received.load(Relaxed));
        let phase = if now < ws_ { "warm-up" } else { "measuring" };
        bar.set_message(format!(
            "{phase} {:.1}/{:.1}s  sent {s}  received {r}  connected {}",
            el as f64 / 1e9,
            total_ns.max(dur) as f64 / 1e9,
            shared.conns_ok.load(Relaxed)
        ));
        if now >= t0 + total_ns.max(if o.hold_only { dur } else { 0 }) {
            break;
        }
        std::thread::sleep(
            Duration::from_millis(50)
                .min(Duration::from_nanos((t0 + total_ns).saturating_sub(now).max(1_000_000))),
        );
    }
    let cpu_end = sys::process_cpu_ns();
    let wall_end = sys::mono_ns();
    let srv_end = o.server_pid.and_then(sys::pid_cpu_ns);
    if o.hold_only {
        rss_after = o.server_pid.and_then(sys::pid_rss_kib);
    }
    // Drain: wait for in-flight deliveries (or the drain limit).
    let drain_deadline = sys::mono_ns() + o.drain.as_nanos() as u64;
    while sys::mono_ns() < drain_deadline {
        // Workers publish their counters every loop iteration (≤ 5 ms).
        std::thread::sleep(Duration::from_millis(10));
        if shared.live_received.load(SeqCst) >= shared.live_expected.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            if shared.live_received.load(SeqCst) >= shared.live_expected.load(SeqCst) {
                break;
            }
        }
    }
    if !o.hold_only {
        rss_after = o.server_pid.and_then(sys::pid_rss_kib);
    }
    let results = stop_and_join(handles);
    bar.finish_and_clear();

    let all: Vec<stats::Stats> = results.iter().map(|r| r.0.clone()).collect();
    let tracked: u64 = results.iter().map(|r| r.1).sum();
    let (m, cpu_series) = stats::merge(&all);
    let (cs, wall_start) = cpu_start.unwrap_or(((0, 0), wall_end));
    let win_wall = (wall_end - wall_start).max(1) as f64;
    let loadgen_cpu_ns = (cpu_end.0 + cpu_end.1).saturating_sub(cs.0 + cs.1);
    let threads_usage: Vec<ThreadUsage> = all
        .iter()
        .enumerate()
        .map(|(i, s)| ThreadUsage {
            cpu: o.cpus.get(i).copied().unwrap_or(usize::MAX),
            utilisation: if s.window_wall_ns > 0 {
                s.window_cpu_ns as f64 / s.window_wall_ns as f64
            } else {
                0.0
            },
        })
        .collect();
    let warm_secs = (warm / 1_000_000_000) as usize;
    let intervals = m
        .intervals
        .iter()
        .enumerate()
        .map(|(sec, iv)| {
            let p = Percentiles::of(&iv.lat);
            stats::IntervalRow {
                second: sec,
                warmup: sec < warm_secs,
                sent: iv.sent,
                received: iv.received,
                p50_us: p.p50_us,
                p99_us: p.p99_us,
                max_us: p.max_us,
                thread_util: cpu_series
                    .iter()
                    .map(|series| {
                        // series[0] = CPU at the run's start, series[k + 1] = at the end of second k.
                        match (series.get(sec), series.get(sec + 1)) {
                            (Some(&p), Some(&c)) if c >= p && c > 0 && p > 0 => (c - p) as f64 / 1e9,
                            _ => 0.0,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let max_acked: Vec<u64> = shared.max_acked.iter().map(|a| a.load(SeqCst)).collect();
    let node_sums = node_summaries(&nodes, &conns_per_node, &m, &max_acked);
    let connected = shared.conns_ok.load(SeqCst);
    let rss_per_conn = match (rss_before, rss_after, o.hold_only) {
        (Some(b), Some(a), true) if connected > 0 => Some((a as f64 - b as f64) * 1024.0 / connected as f64),
        _ => None,
    };
    let lost = m.expected.saturating_sub(m.received);
    let server_cpu_ns = match (srv_start, srv_end) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Ok(Summary {
        scenario: o.scenario.name.clone(),
        target: targets_label(&o.targets),
        placement: o.placement.describe(),
        nodes: node_sums.clone(),
        acked: m.acked,
        acked_per_s: m.acked as f64 / o.duration.as_secs_f64().max(1e-9),
        seq_holes: m.seq_holes,
        acked_unseen: node_sums.iter().map(|n| n.acked_unseen).sum(),
        offered_rate_hz: o.scenario.offered_rate(),
        warmup_s: o.warmup.as_secs_f64(),
        duration_s: o.duration.as_secs_f64(),
        publishers: plan.publishers.len(),
        subscriber_clients: plan.clients.len(),
        connections: total_conns,
        connected,
        connect_failures: m.connect_failures,
        sub_failures: m.sub_failures,
        disconnects: m.disconnects,
        sent: m.sent,
        expected: m.expected,
        received: m.received,
        lost,
        duplicated: m.duplicated,
        reordered: m.reordered,
        server_errors: m.server_errors,
        gap_notices: m.gap_notices,
        gap_messages: m.gap_messages,
        unparsed: m.unparsed,
        send_skipped: m.send_skipped,
        incomplete_fanouts: tracked.saturating_sub(m.completion.len()),
        delivered_per_s: m.received as f64 / o.duration.as_secs_f64().max(1e-9),
        latency: Percentiles::of(&m.lat),
        fanout_completion: Percentiles::of(&m.completion),
        send_lag: Percentiles::of(&m.send_lag),
        loadgen_saturated: threads_usage.iter().any(|t| t.utilisation > 0.85),
        loadgen_threads: threads_usage,
        loadgen_cpu_s: loadgen_cpu_ns as f64 / 1e9,
        loadgen_cpu_us_per_delivery: if m.received > 0 {
            loadgen_cpu_ns as f64 / 1e3 / m.received as f64
        } else {
            0.0
        },
        server_cpu_cores: server_cpu_ns.map(|ns| ns as f64 / win_wall),
        server_cpu_s: server_cpu_ns.map(|ns| ns as f64 / 1e9),
        server_cpu_us_per_delivery: server_cpu_ns
            .filter(|_| m.received > 0)
            .map(|ns| ns as f64 / 1e3 / m.received as f64),
        server_rss_kib_before: rss_before,
        server_rss_kib_after: rss_after,
        rss_bytes_per_connection: rss_per_conn,
        first_error: m.first_error.clone(),
        intervals,
        latency_curve: stats::curve(&m.lat),
    })
}

/// Per node: (publishers, subscriber connections) placed on it.
fn count_per_node(per_thread: &[ThreadWork], nodes: usize) -> Vec<(usize, usize)> {
    let mut v = vec![(0, 0); nodes];
    let mut pubs = std::collections::HashSet::new();
    for c in per_thread.iter().flat_map(|t| &t.0) {
        match c.publisher {
            Some(p) if pubs.insert(p) => v[c.node].0 += 1,
            Some(_) => {}
            None => v[c.node].1 += 1,
        }
    }
    v
}

/// Each node's figures from the merged stats; `max_acked` = per room, the highest
/// acknowledged seq.
fn node_summaries(
    nodes: &[Node],
    counts: &[(usize, usize)],
    m: &stats::Stats,
    max_acked: &[u64],
) -> Vec<NodeSummary> {
    nodes
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let none = stats::NodeStats::new(); // no worker saw this node
            let s = m.nodes.get(k).unwrap_or(&none);
            let finals = m.finals.iter().filter(|f| f.0 == k);
            let live = finals.clone().count() as u64;
            let unseen = finals
                .map(|&(_, room, last)| max_acked[room as usize].saturating_sub(last.unwrap_or(0)))
                .sum();
            NodeSummary {
                node: k,
                url: n.target.as_str().to_string(),
                publishers: counts[k].0,
                subscriber_connections: counts[k].1,
                expected: s.expected,
                received: s.received,
                lost: s.expected.saturating_sub(s.received),
                seq_holes: s.seq_holes,
                live_subscriptions: live,
                acked_unseen: unseen,
                latency: Percentiles::of(&s.lat),
            }
        })
        .collect()
}

/// Monotonic ns at the first call: the loadgen's start, origin of payload `t`.
pub fn epoch() -> u64 {
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(sys::mono_ns)
}

fn progress_bar(enabled: bool) -> ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Default worker CPUs: the CPUs this process may use minus the server's (if `server_pid`
/// is known and leaves some free), else the upper half of ours (assumes the server was
/// pinned to the lower ones, e.g. `taskset -c 0`).
pub fn default_cpus(server_pid: Option<u32>) -> Vec<usize> {
    let mine = sys::affinity_of(0).unwrap_or_else(|| (0..sys::online_cpus()).collect());
    if let Some(srv) = server_pid.and_then(sys::affinity_of) {
        let free: Vec<usize> = mine.iter().copied().filter(|c| !srv.contains(c)).collect();
        if !free.is_empty() {
            return free;
        }
    }
    if mine.len() >= 2 {
        mine[mine.len() / 2..].to_vec()
    } else {
        mine
    }
}

/// Parses `--cpus`: a count (`2` = the last two of our CPUs) or a list (`1,3`, `2-5`).
pub fn parse_cpus(s: &str) -> Result<Vec<usize>> {
    let mine = sys::affinity_of(0).unwrap_or_else(|| (0..sys::online_cpus()).collect());
    if !s.contains([',', '-']) {
        let n: usize =
            s.parse().with_context(|| format!("--cpus {s:?}: a count or a list like 1,3 or 2-5"))?;
        if n == 0 || n > mine.len() {
            bail!("--cpus {n}: this process may use {} CPUs", mine.len());
        }
        return Ok(mine[mine.len() - n..].to_vec());
    }
    let mut v = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (usize, usize) = (a.trim().parse()?, b.trim().parse()?);
            v.extend(a..=b);
        } else {
            v.push(part.trim().parse()?);
        }
    }
    if v.is_empty() {
        bail!("--cpus {s:?}: empty list");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::PublishOn;
    use crate::scenario::{preset, Overrides};

    fn nodes(targets: &[&str]) -> Vec<Node> {
        targets
            .iter()
            .enumerate()
            .map(|(i, t)| Node {
                target: Target::parse(t),
                dst: SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)),
                host: "127.0.0.1".into(),
            })
            .collect()
    }

    /// (publisher connections, subscriber connections) per node.
    fn per_node(work: &[ThreadWork], n: usize) -> Vec<(usize, usize)> {
        let mut v = vec![(0, 0); n];
        for c in work.iter().flat_map(|t| &t.0) {
            if c.publisher.is_some() {
                v[c.node].0 += 1;
            } else {
                v[c.node].1 += 1;
            }
        }
        v
    }

    #[test]
    fn cross_node_puts_publishers_on_one_node_and_subscribers_on_the_others() {
        let plan = Plan::build(&preset("rooms-500", &Overrides::default()).unwrap()).unwrap();
        let ns = nodes(&["ws://a:1/ws", "ws://b:2/ws", "ws://c:3/ws"]);
        let p = Placement::new(3, PublishOn::Node(0), vec![1, 2]).unwrap();
        let (work, conns, slots) = conn_specs(&plan, &Proto::Mux, &ns, &p, 2).unwrap();
        assert_eq!((conns, slots), (2500, 2000));
        assert_eq!(per_node(&work, 3), [(500, 0), (0, 1000), (0, 1000)]);
        // A publisher's connections stay with the worker that drives it.
        for (conns, pubs) in &work {
            let ids: Vec<u32> = pubs.iter().map(|p| p.id).collect();
            assert!(conns.iter().filter_map(|c| c.publisher).all(|p| ids.contains(&p)));
        }
    }

    #[test]
    fn spread_deals_everything_round_robin() {
        let plan = Plan::build(&preset("rooms-500", &Overrides::default()).unwrap()).unwrap();
        let ns = nodes(&["ws://a:1/ws", "ws://b:2/ws", "ws://c:3/ws"]);
        let p = Placement::new(3, PublishOn::Spread, vec![]).unwrap();
        let (work, _, _) = conn_specs(&plan, &Proto::Mux, &ns, &p, 1).unwrap();
        assert_eq!(per_node(&work, 3), [(167, 667), (167, 667), (166, 666)]);
        assert!(work[0].0.iter().all(|c| c.path == "/ws"));
    }

    #[test]
    fn room_per_url_paths_come_from_each_nodes_template() {
        let plan = Plan::build(
            &preset("fanout-1k", &Overrides { subscribers: Some(4), ..Default::default() }).unwrap(),
        )
        .unwrap();
        let ns = nodes(&["ws://a:1/x/{room}/", "ws://b:2/y/{room}/"]);
        let p = Placement::new(2, PublishOn::Node(1), vec![0]).unwrap();
        let (work, conns, _) = conn_specs(&plan, &Proto::PerRoom, &ns, &p, 1).unwrap();
        assert_eq!(conns, 5);
        let paths: Vec<(usize, &str)> = work[0].0.iter().map(|c| (c.node, c.path.as_str())).collect();
        assert_eq!(paths[0], (1, "/y/fanout/"));
        assert!(paths[1..].iter().all(|&p| p == (0, "/x/fanout/")));
    }

    #[test]
    fn targets_must_share_a_protocol() {
        assert_eq!(protocol(&[Target::parse("ws://a/ws"), Target::parse("ws://b/ws")]).unwrap(), Proto::Mux);
        assert!(protocol(&[Target::parse("ws://a/ws"), Target::parse("ws://b/{room}")]).is_err());
        assert_eq!(
            targets_label(&[Target::parse("ws://a/ws"), Target::parse("ws://b/ws")]),
            "ws://a/ws + ws://b/ws"
        );
    }
}
