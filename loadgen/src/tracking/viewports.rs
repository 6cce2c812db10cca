//! `--mode viewports`: vehicles publishing positions into one city room; every subscriber
//! follows it with its own random viewport (`bbox`, a share of the city's area) and some pan
//! every few seconds (`view`). Phase 1 measures that; phase 2 publishes (at its own rate)
//! into a second room the same connections follow without a box, for server CPU per
//! *published* message with every subscriber matching.
//!
//! Correctness under load: for every publish in the window the loadgen lists the subscribers
//! whose box contains the position ([`geo::Grid`]), and counts deliveries outside that list
//! (extras) and entries of it never delivered (misses). Around a pan the server may use
//! either box: from [`PAN_MARGIN`] before the `view` is sent until its `ok` arrives, a
//! position inside exactly one of the two boxes is "ambiguous" (counted, neither miss nor
//! extra). After a pan the server replays the snapshot entries newly inside: an old message
//! arriving after a pan's `ok`, inside the new box, is a "pan replay".

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;

use super::geo::{self, BBox, Grid, CITY};
use super::net::{Net, NetCounters};
use super::{now_rel, op_of, publisher_conns, CpuMeter, Fleet, Opts, Published, Timing};
use crate::payload::{classify_mux, MuxMsg};
use crate::sim::Rng;
use crate::stats::Percentiles;

/// How long before a `view` is sent the loadgen starts treating the pan as in flight.
pub const PAN_MARGIN: u64 = 100_000_000;

#[derive(Debug, Clone)]
pub struct ViewportOpts {
    pub vehicles: usize,
    /// Per-vehicle publish rate in the viewport phase (Hz).
    pub rate_hz: f64,
    pub subscribers: usize,
    /// Viewport area as a share of the city's: uniform in [min, max].
    pub view_min: f64,
    pub view_max: f64,
    /// Share of subscribers that pan, each every `pan_every`.
    pub pan_share: f64,
    pub pan_every: Duration,
    /// Per-vehicle rate of the whole-room phase (Hz); None = no whole-room phase.
    pub whole_rate_hz: Option<f64>,
    pub room: String,
    pub whole_room: String,
    /// Seconds of driving per publish (1 = positions move as in a 1 Hz fleet, whatever the rate).
    pub step_s: f64,
}

struct Sub {
    b: BBox,
    /// A pan in flight: the new box, whether its `view` went out.
    pending: Option<(BBox, bool)>,
    last_pan_ok: u64,
    pans: bool,
    next_id: u64,
}

/// What the loadgen expects of one publish in the window.
struct Rec {
    t: u64,
    lat: f64,
    lon: f64,
    /// Whole-room phase: everyone.
    all: bool,
    /// Sorted subscriber indices, and whether each got it.
    expected: Vec<u32>,
    got: Vec<bool>,
    ambiguous: Vec<u32>,
    got_all: u32,
}

/// One phase's figures.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub room: String,
    pub rate_hz_per_vehicle: f64,
    pub published: u64,
    pub published_per_s: f64,
    /// Deliveries of window publishes (expected ones, counted once) per second of window.
    pub delivered_per_s: f64,
    pub expected: u64,
    pub delivered: u64,
    pub missed: u64,
    pub extra: u64,
    pub duplicated: u64,
    pub ambiguous_expected: u64,
    pub ambiguous_received: u64,
    pub pan_replays: u64,
    pub untracked_received: u64,
    pub leaves: u64,
    pub errors: HashMap<String, u64>,
    pub pans_sent: u64,
    pub pans_ok: u64,
    /// Mean subscribers whose box contains a publish (expected + ambiguous).
    pub matching_per_publish: f64,
    pub data_bytes: u64,
    pub other_frames: u64,
    pub other_bytes: u64,
    pub bytes_per_publish: f64,
    pub latency: Percentiles,
    pub server_cpu_s: Option<f64>,
    pub server_cores: Option<f64>,
    pub loadgen_cores: f64,
    pub server_us_per_publish: Option<f64>,
    pub server_us_per_delivery: Option<f64>,
    pub extra_samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub vehicles: usize,
    pub subscribers: usize,
    pub subscribed: usize,
    pub publisher_connections: usize,
    pub view_share: (f64, f64),
    pub panning_subscribers: usize,
    pub pan_every_s: f64,
    pub phases: Vec<Phase>,
    pub net: NetCounters,
    /// Server CPU (cores) over 2 s with every subscription in place and nothing published:
    /// the floor under each phase's figure.
    pub server_idle_cores: Option<f64>,
    /// Viewport phase over whole-room phase.
    pub cpu_per_publish_ratio: Option<f64>,
    pub matching_ratio: Option<f64>,
    pub bytes_saved: Option<f64>,
}

struct State {
    subs: Vec<Sub>,
    grid: Grid,
    recs: HashMap<(u32, u64), Rec>,
    first_sub: usize,
    ph: Phase,
    timing: Timing,
    oks: Vec<u8>,
    lat: hdrhistogram::Histogram<u64>,
}

impl State {
    fn on_frame(&mut self, client: usize, payload: &[u8], wire: usize, now_abs: u64) {
        if client < self.first_sub {
            if op_of(payload) == Some(b"error") {
                *self
                    .ph
                    .errors
                    .entry(format!("publisher: {}", String::from_utf8_lossy(payload)))
                    .or_default() += 1;
            }
            return;
        }
        let j = client - self.first_sub;
        let now = now_abs.saturating_sub(crate::runner::epoch());
        let live = now >= self.timing.win_start && now < self.timing.end;
        match classify_mux(payload) {
            MuxMsg::Data { stamp: Some(st), .. } => {
                let Some(r) = self.recs.get_mut(&(st.p, st.s)) else {
                    self.ph.untracked_received += 1;
                    return;
                };
                self.ph.data_bytes += wire as u64;
                let lat_ns = now.saturating_sub(r.t);
                if r.all {
                    r.got_all += 1;
                    self.ph.delivered += 1;
                    let _ = self.lat.record(lat_ns.max(1));
                } else if let Ok(k) = r.expected.binary_search(&(j as u32)) {
                    if r.got[k] && self.subs[j].last_pan_ok > r.t {
                        // Shown, panned away (leave), panned back: the snapshot entry again.
                        self.ph.pan_replays += 1;
                    } else if r.got[k] {
                        self.ph.duplicated += 1;
                    } else {
                        r.got[k] = true;
                        self.ph.delivered += 1;
                        let _ = self.lat.record(lat_ns.max(1));
                    }
                } else if r.ambiguous.binary_search(&(j as u32)).is_ok() {
                    self.ph.ambiguous_received += 1;
                } else if self.subs[j].last_pan_ok > r.t && self.subs[j].b.contains(r.lat, r.lon) {
                    self.ph.pan_replays += 1;
                } else {
                    self.ph.extra += 1;
                    if self.ph.extra_samples.len() < 5 {
                        self.ph.extra_samples.push(format!(
                            "sub {j} box {:?} got v{} s{} at ({}, {}) sent {} ms before",
                            self.subs[j].b,
                            st.p,
                            st.s,
                            r.lat,
                            r.lon,
                            lat_ns / 1_000_000
                        ));
                    }
                }
            }
            MuxMsg::Ok { id: Some(id), .. } => {
                if live {
                    self.ph.other_frames += 1;
                    self.ph.other_bytes += wire as u64;
                }
                if id == 1 || id == 2 {
                    self.oks[j] |= id as u8;
                } else if id >= 100 {
                    self.pan_ok(j, now);
                }
            }
            _ => {
                if live {
                    self.ph.other_frames += 1;
                    self.ph.other_bytes += wire as u64;
                }
                match op_of(payload) {
                    Some(b"leave") => self.ph.leaves += 1,
                    Some(b"error") => {
                        let s = String::from_utf8_lossy(payload);
                        let code =
                            s.split("\"code\":\"").nth(1).and_then(|x| x.split('"').next()).unwrap_or("?");
                        *self.ph.errors.entry(code.to_string()).or_default() += 1;
                    }
                    _ => {}
                }
            }
        }
    }

    fn pan_ok(&mut self, j: usize, now: u64) {
        let s = &mut self.subs[j];
        if let Some((nb, true)) = s.pending {
            let old = s.b;
            s.b = nb;
            s.pending = None;
            s.last_pan_ok = now;
            self.grid.remove(j as u32, &old);
            self.ph.pans_ok += 1;
        }
    }

    /// What the loadgen expects of publish `p` (window only).
    fn expect(&mut self, p: Published, all: bool) {
        if !self.timing.in_window(p.t) {
            return;
        }
        self.ph.published += 1;
        let mut expected = Vec::new();
        let mut ambiguous = Vec::new();
        if !all {
            for &j in self.grid.candidates(p.lat, p.lon) {
                let s = &self.subs[j as usize];
                let cur = s.b.contains(p.lat, p.lon);
                match s.pending {
                    Some((nb, _)) => {
                        let new = nb.contains(p.lat, p.lon);
                        if cur && new {
                            expected.push(j);
                        } else if cur || new {
                            ambiguous.push(j);
                        }
                    }
                    None if cur => expected.push(j),
                    None => {}
                }
            }
            expected.sort_unstable();
            expected.dedup();
            ambiguous.sort_unstable();
            ambiguous.dedup();
            self.ph.expected += expected.len() as u64;
            self.ph.ambiguous_expected += ambiguous.len() as u64;
        } else {
            self.ph.expected += self.subs.len() as u64;
        }
        let got = vec![false; expected.len()];
        self.recs.insert(
            (p.v, p.s),
            Rec { t: p.t, lat: p.lat, lon: p.lon, all, expected, got, ambiguous, got_all: 0 },
        );
    }
}

pub fn run(o: &Opts, v: &ViewportOpts) -> Result<Report> {
    if v.subscribers == 0 || v.vehicles == 0 {
        bail!("viewports needs vehicles and subscribers");
    }
    let mut rng = Rng::new(o.seed);
    let per_s = v.vehicles as f64 * v.rate_hz.max(v.whole_rate_hz.unwrap_or(0.0));
    let npub = publisher_conns(per_s);
    let mut net = Net::new(&o.url)?;
    let first_pub = net.add(npub);
    let first_sub = net.add(v.subscribers);
    let mut fleet = Fleet::new(v.vehicles, 0.0, o.seed ^ 0x5eed, (first_pub..first_pub + npub).collect());
    let mut grid = Grid::new(CITY, 32);
    let mut subs = Vec::with_capacity(v.subscribers);
    for j in 0..v.subscribers {
        let share = rng.range(v.view_min, v.view_max);
        let b = geo::random_viewport(&mut rng, &CITY, share);
        grid.insert(j as u32, &b);
        subs.push(Sub { b, pending: None, last_pan_ok: 0, pans: rng.f64() < v.pan_share, next_id: 100 });
    }
    let panning = subs.iter().filter(|s| s.pans).count();
    let mut st = State {
        subs,
        grid,
        recs: HashMap::new(),
        first_sub,
        ph: Phase::default(),
        timing: Timing { t0: 0, win_start: u64::MAX, win_end: u64::MAX, end: u64::MAX },
        oks: vec![0; v.subscribers],
        lat: super::hist(),
    };
    net.connect_all(o.connect_timeout, &mut |c, p, w, t| st.on_frame(c, p, w, t))?;
    for j in 0..v.subscribers {
        let b = st.subs[j].b.json();
        let a = format!(r#"{{"op":"sub","room":"{}","bbox":{b},"id":1}}"#, v.room);
        net.send_text(first_sub + j, a.as_bytes());
        if v.whole_rate_hz.is_some() {
            let w = format!(r#"{{"op":"sub","room":"{}","id":2}}"#, v.whole_room);
            net.send_text(first_sub + j, w.as_bytes());
        }
    }
    let want: u8 = if v.whole_rate_hz.is_some() { 3 } else { 1 };
    let end = now_rel() + o.connect_timeout.as_nanos() as u64;
    while st.oks.iter().any(|&k| k != want) && now_rel() < end {
        net.poll(20, &mut |c, p, w, t| st.on_frame(c, p, w, t), &mut |_| {});
    }
    let subscribed = st.oks.iter().filter(|&&k| k == want).count();
    if subscribed == 0 {
        bail!("no subscription confirmed: {:?} {:?}", st.ph.errors, net.counters.first_error);
    }
    // Idle: the subscriptions held, nothing published (pings answered).
    let idle = {
        let t0 = now_rel();
        let t = Timing { t0, win_start: t0, win_end: t0 + 2_000_000_000, end: t0 + 2_000_000_000 };
        let mut cpu = CpuMeter::default();
        while now_rel() < t.end {
            cpu.tick(&t, o.server_pid);
            net.poll(50, &mut |c, p, w, t| st.on_frame(c, p, w, t), &mut |_| {});
        }
        cpu.tick(&t, o.server_pid);
        cpu.result().server_cores
    };

    let mut phases = Vec::new();
    // Phase 1: viewports, with pans.
    {
        st.timing = Timing::start(o);
        st.ph = Phase {
            name: "viewports".into(),
            room: v.room.clone(),
            rate_hz_per_vehicle: v.rate_hz,
            ..Default::default()
        };
        st.lat = super::hist();
        fleet.start(st.timing.t0, v.rate_hz, v.step_s);
        let every = v.pan_every.as_nanos() as u64;
        // (time, subscriber, 0 = announce / 1 = send the view)
        let mut pans: BinaryHeap<Reverse<(u64, u32, u8)>> = BinaryHeap::new();
        for (j, s) in st.subs.iter().enumerate() {
            if s.pans {
                let at = st.timing.t0 + PAN_MARGIN + rng.below(every.max(1));
                pans.push(Reverse((at - PAN_MARGIN, j as u32, 0)));
            }
        }
        let room = v.room.clone();
        let mut cpu = CpuMeter::default();
        loop {
            let now = now_rel();
            cpu.tick(&st.timing, o.server_pid);
            if now >= st.timing.end {
                break;
            }
            fleet.fire(&mut net, now, st.timing.win_end, &|_| room.clone(), &mut |p| st.expect(p, false));
            while let Some(&Reverse((at, j, kind))) = pans.peek() {
                if at > now {
                    break;
                }
                pans.pop();
                if at >= st.timing.win_end {
                    continue;
                }
                let j = j as usize;
                let s = &mut st.subs[j];
                if kind == 0 {
                    if s.pending.is_some() {
                        // The last pan is not confirmed yet: skip this one.
                        pans.push(Reverse((at + every, j as u32, 0)));
                        continue;
                    }
                    let nb = geo::panned(&mut rng, &CITY, &s.b);
                    s.pending = Some((nb, false));
                    st.grid.insert(j as u32, &nb);
                    pans.push(Reverse((at + PAN_MARGIN, j as u32, 1)));
                } else if let Some((nb, false)) = s.pending {
                    s.pending = Some((nb, true));
                    let id = s.next_id;
                    s.next_id += 1;
                    let msg =
                        format!(r#"{{"op":"view","room":"{}","bbox":{},"id":{id}}}"#, v.room, nb.json());
                    net.send_text(first_sub + j, msg.as_bytes());
                    st.ph.pans_sent += 1;
                    pans.push(Reverse((at + every - PAN_MARGIN, j as u32, 0)));
                }
            }
            let mut next = fleet.due().min(now + 50_000_000).min(st.timing.end);
            if let Some(&Reverse((at, _, _))) = pans.peek() {
                next = next.min(at);
            }
            net.arm(next.max(now + 1) + crate::runner::epoch());
            net.poll(50, &mut |c, p, w, t| st.on_frame(c, p, w, t), &mut |_| {});
        }
        phases.push(finish(&mut st, cpu, v.subscribers));
    }
    // Phase 2: the same subscribers on a room without boxes.
    if let Some(rate) = v.whole_rate_hz {
        // Unconfirmed pans would leave stale boxes: they are not used in this phase.
        st.timing = Timing::start(o);
        st.ph = Phase {
            name: "whole room".into(),
            room: v.whole_room.clone(),
            rate_hz_per_vehicle: rate,
            ..Default::default()
        };
        st.lat = super::hist();
        fleet.start(st.timing.t0, rate, v.step_s);
        let room = v.whole_room.clone();
        let mut cpu = CpuMeter::default();
        loop {
            let now = now_rel();
            cpu.tick(&st.timing, o.server_pid);
            if now >= st.timing.end {
                break;
            }
            fleet.fire(&mut net, now, st.timing.win_end, &|_| room.clone(), &mut |p| st.expect(p, true));
            let next = fleet.due().min(now + 50_000_000).min(st.timing.end);
            net.arm(next.max(now + 1) + crate::runner::epoch());
            net.poll(50, &mut |c, p, w, t| st.on_frame(c, p, w, t), &mut |_| {});
        }
        phases.push(finish(&mut st, cpu, subscribed));
    }
    net.close_all();
    let (a, b) = (phases.first(), phases.get(1));
    let ratio = |f: &dyn Fn(&Phase) -> Option<f64>| match (a.and_then(f), b.and_then(f)) {
        (Some(x), Some(y)) if y > 0.0 => Some(x / y),
        _ => None,
    };
    let cpu_per_publish_ratio = ratio(&|p| p.server_us_per_publish);
    let matching_ratio = ratio(&|p| Some(p.matching_per_publish));
    let bytes_saved = ratio(&|p| Some(p.bytes_per_publish)).map(|r| 1.0 - r);
    Ok(Report {
        mode: "viewports",
        vehicles: v.vehicles,
        subscribers: v.subscribers,
        subscribed,
        publisher_connections: npub,
        view_share: (v.view_min, v.view_max),
        panning_subscribers: panning,
        pan_every_s: v.pan_every.as_secs_f64(),
        phases,
        net: net.counters.clone(),
        server_idle_cores: idle,
        cpu_per_publish_ratio,
        matching_ratio,
        bytes_saved,
    })
}

fn finish(st: &mut State, cpu: CpuMeter, subscribed: usize) -> Phase {
    let c = cpu.result();
    let mut ph = std::mem::take(&mut st.ph);
    let mut missed = 0u64;
    for r in st.recs.values() {
        if r.all {
            missed += (subscribed as u64).saturating_sub(r.got_all as u64);
        } else {
            missed += r.got.iter().filter(|g| !**g).count() as u64;
        }
    }
    if ph.expected > 0 && st.recs.values().any(|r| r.all) {
        // Expected = the subscriptions confirmed, not the clients asked for.
        ph.expected = ph.published * subscribed as u64;
    }
    st.recs.clear();
    let w = st.timing.window_s();
    ph.missed = missed;
    ph.published_per_s = ph.published as f64 / w;
    ph.delivered_per_s = ph.delivered as f64 / w;
    ph.matching_per_publish = if ph.published > 0 {
        (ph.expected + ph.ambiguous_expected) as f64 / ph.published as f64
    } else {
        0.0
    };
    ph.bytes_per_publish =
        if ph.published > 0 { (ph.data_bytes + ph.other_bytes) as f64 / ph.published as f64 } else { 0.0 };
    ph.latency = Percentiles::of(&st.lat);
    ph.server_cpu_s = c.server_cpu_s;
    ph.server_cores = c.server_cores;
    ph.loadgen_cores = c.loadgen_cores;
    ph.server_us_per_publish =
        c.server_cpu_s.filter(|_| ph.published > 0).map(|s| s * 1e6 / ph.published as f64);
    ph.server_us_per_delivery =
        c.server_cpu_s.filter(|_| ph.delivered > 0).map(|s| s * 1e6 / ph.delivered as f64);
    ph
}

impl Report {
    /// The figures as a Markdown table.
    pub fn table(&self) -> String {
        let mut o = String::from(
            "| phase | published/s | matching subs/publish | delivered/s | p50 | p99 | p99.9 | missed | extra | ambiguous (pans) | pan replays | leaves | server cores | server µs/publish | server µs/delivery | bytes/publish | loadgen cores |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for p in &self.phases {
            o.push_str(&format!(
                "| {} (`{}`, {} Hz/vehicle) | {:.0} | {:.1} | {:.0} | {} | {} | {} | {} | {} | {} exp / {} recv | {} | {} | {} | {} | {} | {:.0} | {:.2} |\n",
                p.name,
                p.room,
                p.rate_hz_per_vehicle,
                p.published_per_s,
                p.matching_per_publish,
                p.delivered_per_s,
                super::ms(p.latency.p50_us),
                super::ms(p.latency.p99_us),
                super::ms(p.latency.p999_us),
                p.missed,
                p.extra,
                p.ambiguous_expected,
                p.ambiguous_received,
                p.pan_replays,
                p.leaves,
                p.server_cores.map_or("—".into(), |c| format!("{c:.2}")),
                p.server_us_per_publish.map_or("—".into(), |c| format!("{c:.1}")),
                p.server_us_per_delivery.map_or("—".into(), |c| format!("{c:.2}")),
                p.bytes_per_publish,
                p.loadgen_cores,
            ));
        }
        if let (Some(c), Some(m)) = (self.cpu_per_publish_ratio, self.matching_ratio) {
            o.push_str(&format!(
                "\nviewports / whole room: server CPU per published message {c:.3}×, matching subscribers per message {m:.3}×; bytes to subscribers per published message saved: {:.1}%\n",
                self.bytes_saved.unwrap_or(0.0) * 100.0
            ));
        }
        o.push_str(&format!(
            "\nserver CPU with every subscription held and nothing published: {} cores\n{} vehicles, {} subscribers ({} confirmed), viewports {:.0}–{:.0}% of the city, {} panning every {:.0} s ({} pans sent, {} confirmed); connect failures {}, disconnects {}\n",
            self.server_idle_cores.map_or("—".into(), |c| format!("{c:.3}")),
            self.vehicles,
            self.subscribers,
            self.subscribed,
            self.view_share.0 * 100.0,
            self.view_share.1 * 100.0,
            self.panning_subscribers,
            self.pan_every_s,
            self.phases.first().map_or(0, |p| p.pans_sent),
            self.phases.first().map_or(0, |p| p.pans_ok),
            self.net.connect_failures,
            self.net.disconnects
        ));
        for p in &self.phases {
            if !p.errors.is_empty() {
                o.push_str(&format!("{} errors: {:?}\n", p.name, p.errors));
            }
            for s in &p.extra_samples {
                o.push_str(&format!("{} extra: {s}\n", p.name));
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(boxes: &[BBox]) -> State {
        let mut grid = Grid::new(CITY, 8);
        let subs = boxes
            .iter()
            .enumerate()
            .map(|(j, b)| {
                grid.insert(j as u32, b);
                Sub { b: *b, pending: None, last_pan_ok: 0, pans: false, next_id: 100 }
            })
            .collect();
        State {
            subs,
            grid,
            recs: HashMap::new(),
            first_sub: 0,
            ph: Phase::default(),
            timing: Timing { t0: 0, win_start: 0, win_end: u64::MAX / 2, end: u64::MAX / 2 },
            oks: vec![0; boxes.len()],
            lat: crate::stats::new_hist(),
        }
    }

    fn data(p: u32, s: u64) -> Vec<u8> {
        format!(r#"{{"room":"fleet:city","seq":{s},"data":{{"t":1,"p":{p},"s":{s},"id":"v{p}"}}}}"#)
            .into_bytes()
    }

    #[test]
    fn expectations_misses_extras_and_pans() {
        let west = BBox { w: 13.30, s: 52.46, e: 13.35, n: 52.50 };
        let east = BBox { w: 13.40, s: 52.46, e: 13.45, n: 52.50 };
        let mut st = state(&[west, east]);
        let e0 = crate::runner::epoch();
        // Inside the west box only.
        st.expect(Published { v: 0, s: 1, t: 1, lat: 52.48, lon: 13.32 }, false);
        assert_eq!((st.ph.published, st.ph.expected), (1, 1));
        st.on_frame(0, &data(0, 1), 50, e0 + 10);
        st.on_frame(0, &data(0, 1), 50, e0 + 11);
        assert_eq!((st.ph.delivered, st.ph.duplicated), (1, 1));
        // The east subscriber was not meant to get it.
        st.on_frame(1, &data(0, 1), 50, e0 + 12);
        assert_eq!(st.ph.extra, 1);
        // Subscriber 1 pans west: in flight, a point in the west box is ambiguous for it.
        st.subs[1].pending = Some((west, true));
        st.grid.insert(1, &west);
        st.expect(Published { v: 1, s: 1, t: 5, lat: 52.47, lon: 13.31 }, false);
        assert_eq!((st.ph.expected, st.ph.ambiguous_expected), (2, 1));
        st.on_frame(1, &data(1, 1), 50, e0 + 20);
        assert_eq!(st.ph.ambiguous_received, 1);
        // The pan's ok; then an old message inside the new box is a replay, not an extra.
        st.on_frame(1, br#"{"op":"ok","id":100,"room":"fleet:city"}"#, 40, e0 + 30);
        assert_eq!((st.subs[1].b, st.ph.pans_ok), (west, 1));
        st.on_frame(1, &data(0, 1), 50, e0 + 31);
        assert_eq!((st.ph.pan_replays, st.ph.extra), (1, 1));
        // Subscriber 0 panned away and back since v0 s1: receiving it again is a replay.
        st.subs[0].last_pan_ok = 25;
        st.on_frame(0, &data(0, 1), 50, e0 + 32);
        assert_eq!((st.ph.pan_replays, st.ph.duplicated), (2, 1));
        // Never delivered: subscriber 0's copy of v1 s1.
        let ph = finish(&mut st, CpuMeter::default(), 2);
        assert_eq!(ph.missed, 1);
        assert_eq!(ph.matching_per_publish, 1.5);
        assert!(st.grid.candidates(52.47, 13.42).is_empty(), "the old east box left the grid");
    }

    #[test]
    fn whole_room_expects_everyone() {
        let b = BBox { w: 13.30, s: 52.46, e: 13.35, n: 52.50 };
        let mut st = state(&[b, b, b]);
        let e0 = crate::runner::epoch();
        st.expect(Published { v: 2, s: 9, t: 1, lat: 52.56, lon: 13.49 }, true);
        st.on_frame(0, &data(2, 9), 50, e0 + 5);
        st.on_frame(2, &data(2, 9), 50, e0 + 5);
        st.on_frame(1, br#"{"op":"leave","room":"fleet:city","key":"v3"}"#, 30, e0 + 5);
        let ph = finish(&mut st, CpuMeter::default(), 3);
        assert_eq!((ph.expected, ph.delivered, ph.missed, ph.leaves), (3, 2, 1, 1));
    }
}
