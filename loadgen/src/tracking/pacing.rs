//! `--mode pacing`: phones following a fleet with `max_rate` / `min_move_m` /
//! `max_silence_s`, against the same phones following it unfiltered. The fleet is split into
//! `rooms` rooms (vehicle `v` in room `v % rooms`, phone `i` on room `i % rooms`), and every
//! phone subscribes both `fleet:p<k>` (with the options) and `fleet:r<k>` (without): phase 1
//! publishes into the `r` rooms, phase 2 into the `p` rooms, on the same connections.
//!
//! Figures per phase: data frames and their bytes as the phones received them (= written by
//! the server: loopback, one process) for the publishes of the window, and the
//! *last-position delay*: for each phone, vehicle and position published in the window, the
//! time from its publication to the phone receiving it or a newer position of that vehicle.
//! Positions not covered by the end of the drain are counted ("never"). The vehicles keep
//! publishing through the drain (only window positions are counted): a fleet that stops at the
//! window's end would leave each vehicle's last position to the dead-band and `max_silence_s`,
//! which measures the stop rather than the steady state (parked vehicles measure that case).

use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;

use super::net::{Net, NetCounters};
use super::{now_rel, op_of, publisher_conns, CpuMeter, Fleet, Opts, Published, Timing};
use crate::payload::{classify_mux, MuxMsg};
use crate::stats::Percentiles;

#[derive(Debug, Clone)]
pub struct PacingOpts {
    pub vehicles: usize,
    pub rate_hz: f64,
    pub phones: usize,
    pub rooms: usize,
    pub max_rate: Option<f64>,
    pub min_move_m: Option<f64>,
    pub max_silence_s: Option<f64>,
    pub parked_share: f64,
}

impl PacingOpts {
    /// The `sub` options of the filtered subscription, as JSON fields.
    pub fn options_json(&self) -> String {
        let mut s = String::new();
        if let Some(r) = self.max_rate {
            s.push_str(&format!(",\"max_rate\":{r}"));
        }
        if let Some(m) = self.min_move_m {
            s.push_str(&format!(",\"min_move_m\":{m}"));
        }
        if let Some(t) = self.max_silence_s {
            s.push_str(&format!(",\"max_silence_s\":{t}"));
        }
        s
    }
    /// Vehicles in room `room`.
    pub fn vehicles_in(&self, room: usize) -> usize {
        (self.vehicles + self.rooms - 1 - room) / self.rooms
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub options: String,
    pub published: u64,
    pub published_per_s: f64,
    /// Data frames of window publishes received by the phones, and their wire bytes.
    pub frames: u64,
    pub bytes: u64,
    pub frames_per_s: f64,
    /// Every frame the phones received from the window's start to the drain's end.
    pub all_frames: u64,
    pub all_bytes: u64,
    pub delay_all: Percentiles,
    pub delay_moving: Percentiles,
    pub delay_parked: Percentiles,
    /// Window positions (phone × vehicle × position) never covered by the drain's end.
    pub never: u64,
    pub positions: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub server_cpu_s: Option<f64>,
    pub server_cores: Option<f64>,
    pub loadgen_cores: f64,
    pub drain_s: f64,
    /// The first few positions of moving vehicles covered only after more than 3 s.
    pub slow_samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub vehicles: usize,
    pub parked: usize,
    pub rate_hz: f64,
    pub phones: usize,
    pub rooms: usize,
    pub subscribed: usize,
    pub phases: Vec<Phase>,
    pub net: NetCounters,
    pub frames_ratio: Option<f64>,
    pub bytes_ratio: Option<f64>,
}

/// Per phone and vehicle of its room: the highest seq received (the positions covered).
pub struct Coverage {
    rooms: usize,
    /// Per vehicle: intended send time of seq `s` at `[s - 1]`.
    pub times: Vec<Vec<u64>>,
    covered: Vec<Vec<u64>>,
    pub parked: Vec<bool>,
}

impl Coverage {
    pub fn new(vehicles: usize, phones: usize, rooms: usize, parked: Vec<bool>) -> Coverage {
        let per = |room: usize| (vehicles + rooms - 1 - room) / rooms;
        Coverage {
            rooms,
            times: vec![Vec::new(); vehicles],
            covered: (0..phones).map(|i| vec![0; per(i % rooms)]).collect(),
            parked,
        }
    }

    pub fn published(&mut self, p: Published) {
        let t = &mut self.times[p.v as usize];
        if t.len() < p.s as usize {
            t.resize(p.s as usize, 0);
        }
        t[p.s as usize - 1] = p.t;
    }

    /// Starts a phase: earlier positions count as covered.
    pub fn reset(&mut self, seq: &[u64]) {
        for (i, c) in self.covered.iter_mut().enumerate() {
            for (l, x) in c.iter_mut().enumerate() {
                *x = seq[l * self.rooms + i % self.rooms];
            }
        }
    }

    /// Phone `i` received vehicle `v`'s seq `s` at `now`: records the delay of every
    /// window position it covers first.
    pub fn received(
        &mut self,
        i: usize,
        v: usize,
        s: u64,
        now: u64,
        t: &Timing,
        mut rec: impl FnMut(u64, bool, u64),
    ) {
        let Some(c) = self.covered.get_mut(i).and_then(|c| c.get_mut(v / self.rooms)) else {
            return;
        };
        if v % self.rooms != i % self.rooms || s <= *c {
            return;
        }
        let times = &self.times[v];
        for k in *c + 1..=s.min(times.len() as u64) {
            let tk = times[k as usize - 1];
            if t.in_window(tk) {
                rec(now.saturating_sub(tk), self.parked[v], k);
            }
        }
        *c = s;
    }

    /// Window positions not covered: (never, all).
    pub fn never(&self, t: &Timing) -> (u64, u64) {
        let (mut never, mut all) = (0, 0);
        for (i, c) in self.covered.iter().enumerate() {
            for (l, &cov) in c.iter().enumerate() {
                let v = l * self.rooms + i % self.rooms;
                for (k, &tk) in self.times[v].iter().enumerate() {
                    if t.in_window(tk) {
                        all += 1;
                        if k as u64 + 1 > cov {
                            never += 1;
                        }
                    }
                }
            }
        }
        (never, all)
    }
}

struct State {
    first_phone: usize,
    speeds: Vec<f64>,
    cov: Coverage,
    timing: Timing,
    ph: Phase,
    oks: Vec<u8>,
    h_all: hdrhistogram::Histogram<u64>,
    h_moving: hdrhistogram::Histogram<u64>,
    h_parked: hdrhistogram::Histogram<u64>,
}

impl State {
    fn on_frame(&mut self, client: usize, payload: &[u8], wire: usize, now_abs: u64) {
        let now = now_abs.saturating_sub(crate::runner::epoch());
        if client < self.first_phone {
            if op_of(payload) == Some(b"error") {
                self.ph.errors += 1;
                self.ph.first_error.get_or_insert_with(|| String::from_utf8_lossy(payload).into_owned());
            }
            return;
        }
        let i = client - self.first_phone;
        if now >= self.timing.win_start && now < self.timing.end {
            self.ph.all_frames += 1;
            self.ph.all_bytes += wire as u64;
        }
        match classify_mux(payload) {
            MuxMsg::Data { stamp: Some(st), .. } => {
                if self.timing.in_window(st.t) {
                    self.ph.frames += 1;
                    self.ph.bytes += wire as u64;
                }
                let (ha, hm, hp) = (&mut self.h_all, &mut self.h_moving, &mut self.h_parked);
                let (slow, speeds) = (&mut self.ph.slow_samples, &self.speeds);
                self.cov.received(i, st.p as usize, st.s, now, &self.timing, |d, parked, k| {
                    if !parked && d > 3_000_000_000 && slow.len() < 10 {
                        slow.push(format!(
                            "phone {i} vehicle {} ({}) position {k} covered by {} after {} ms",
                            st.p,
                            if parked {
                                "parked".to_string()
                            } else {
                                format!("{:.1} m/s", speeds[st.p as usize])
                            },
                            st.s,
                            d / 1_000_000
                        ));
                    }
                    let _ = ha.record(d.max(1));
                    let _ = if parked { hp.record(d.max(1)) } else { hm.record(d.max(1)) };
                });
            }
            MuxMsg::Ok { id: Some(id @ (1 | 2)), .. } => self.oks[i] |= id as u8,
            MuxMsg::Error { .. } => {
                self.ph.errors += 1;
                self.ph.first_error.get_or_insert_with(|| String::from_utf8_lossy(payload).into_owned());
            }
            _ => {}
        }
    }
}

pub fn run(o: &Opts, p: &PacingOpts) -> Result<Report> {
    if p.rooms == 0 || p.phones == 0 || p.vehicles < p.rooms {
        bail!("pacing needs phones, and at least one vehicle per room");
    }
    let npub = publisher_conns(p.vehicles as f64 * p.rate_hz);
    let mut net = Net::new(&o.url)?;
    let first_pub = net.add(npub);
    let first_phone = net.add(p.phones);
    let mut fleet =
        Fleet::new(p.vehicles, p.parked_share, o.seed ^ 0xfa57, (first_pub..first_pub + npub).collect());
    let parked: Vec<bool> = fleet.vehicles.iter().map(|v| v.parked.is_some()).collect();
    let nparked = parked.iter().filter(|x| **x).count();
    let mut st = State {
        first_phone,
        speeds: fleet.vehicles.iter().map(|v| v.speed).collect(),
        cov: Coverage::new(p.vehicles, p.phones, p.rooms, parked),
        timing: Timing { t0: 0, win_start: u64::MAX, win_end: u64::MAX, end: u64::MAX },
        ph: Phase::default(),
        oks: vec![0; p.phones],
        h_all: super::hist(),
        h_moving: super::hist(),
        h_parked: super::hist(),
    };
    net.connect_all(o.connect_timeout, &mut |c, b, w, t| st.on_frame(c, b, w, t))?;
    let opts = p.options_json();
    for i in 0..p.phones {
        let k = i % p.rooms;
        net.send_text(
            first_phone + i,
            format!(r#"{{"op":"sub","room":"fleet:p{k}"{opts},"id":1}}"#).as_bytes(),
        );
        net.send_text(first_phone + i, format!(r#"{{"op":"sub","room":"fleet:r{k}","id":2}}"#).as_bytes());
    }
    let end = now_rel() + o.connect_timeout.as_nanos() as u64;
    while st.oks.iter().any(|&k| k != 3) && now_rel() < end {
        net.poll(20, &mut |c, b, w, t| st.on_frame(c, b, w, t), &mut |_| {});
    }
    let subscribed = st.oks.iter().filter(|&&k| k == 3).count();
    if subscribed == 0 {
        bail!("no phone subscription confirmed: {:?} {:?}", st.ph.first_error, net.counters.first_error);
    }
    std::thread::sleep(Duration::from_millis(100));
    // The filtered phase drains long enough for an interval's end and a silence confirmation.
    let slow = p.max_rate.map_or(0.0, |r| 1.0 / r).max(p.max_silence_s.unwrap_or(0.0)) + 2.0;
    let mut phases = Vec::new();
    for (name, prefix, options) in [("unfiltered", "r", String::new()), ("filtered", "p", opts.clone())] {
        let mut po = o.clone();
        if prefix == "p" {
            po.drain = po.drain.max(Duration::from_secs_f64(slow));
        }
        st.timing = Timing::start(&po);
        st.ph = Phase { name: name.into(), options, drain_s: po.drain.as_secs_f64(), ..Default::default() };
        st.h_all = super::hist();
        st.h_moving = super::hist();
        st.h_parked = super::hist();
        st.cov.reset(&fleet.seq);
        fleet.start(st.timing.t0, p.rate_hz, 1.0 / p.rate_hz);
        let rooms = p.rooms;
        let room = move |v: u32| format!("fleet:{prefix}{}", v as usize % rooms);
        let mut cpu = CpuMeter::default();
        loop {
            let now = now_rel();
            cpu.tick(&st.timing, o.server_pid);
            if now >= st.timing.end {
                break;
            }
            let (cov, ph, timing) = (&mut st.cov, &mut st.ph, st.timing);
            fleet.fire(&mut net, now, st.timing.end, &room, &mut |x| {
                cov.published(x);
                if timing.in_window(x.t) {
                    ph.published += 1;
                }
            });
            let next = fleet.due().min(now + 50_000_000).min(st.timing.end);
            net.arm(next.max(now + 1) + crate::runner::epoch());
            net.poll(50, &mut |c, b, w, t| st.on_frame(c, b, w, t), &mut |_| {});
        }
        let c = cpu.result();
        let mut ph = std::mem::take(&mut st.ph);
        let w = st.timing.window_s();
        ph.published_per_s = ph.published as f64 / w;
        ph.frames_per_s = ph.frames as f64 / w;
        ph.delay_all = Percentiles::of(&st.h_all);
        ph.delay_moving = Percentiles::of(&st.h_moving);
        ph.delay_parked = Percentiles::of(&st.h_parked);
        (ph.never, ph.positions) = st.cov.never(&st.timing);
        ph.server_cpu_s = c.server_cpu_s;
        ph.server_cores = c.server_cores;
        ph.loadgen_cores = c.loadgen_cores;
        phases.push(ph);
    }
    net.close_all();
    let ratio = |f: fn(&Phase) -> u64| match (phases.first(), phases.get(1)) {
        (Some(a), Some(b)) if f(a) > 0 => Some(f(b) as f64 / f(a) as f64),
        _ => None,
    };
    let frames_ratio = ratio(|p| p.frames);
    let bytes_ratio = ratio(|p| p.bytes);
    Ok(Report {
        mode: "pacing",
        vehicles: p.vehicles,
        parked: nparked,
        rate_hz: p.rate_hz,
        phones: p.phones,
        rooms: p.rooms,
        subscribed,
        phases,
        net: net.counters.clone(),
        frames_ratio,
        bytes_ratio,
    })
}

impl Report {
    pub fn table(&self) -> String {
        let mut o = String::from(
            "| phase | sub options | published/s | data frames/s to phones | frames (window) | bytes (window) | last-position delay p50 / p99 / max (all) | moving p99 | parked p99 | never covered | server cores | loadgen cores |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for p in &self.phases {
            o.push_str(&format!(
                "| {} | `{}` | {:.0} | {:.0} | {} | {} | {} / {} / {} | {} | {} | {} of {} | {} | {:.2} |\n",
                p.name,
                if p.options.is_empty() {
                    "—".to_string()
                } else {
                    p.options.trim_start_matches(',').to_string()
                },
                p.published_per_s,
                p.frames_per_s,
                p.frames,
                p.bytes,
                super::ms(p.delay_all.p50_us),
                super::ms(p.delay_all.p99_us),
                super::ms(p.delay_all.max_us),
                super::ms(p.delay_moving.p99_us),
                super::ms(p.delay_parked.p99_us),
                p.never,
                p.positions,
                p.server_cores.map_or("—".into(), |c| format!("{c:.2}")),
                p.loadgen_cores,
            ));
        }
        if let (Some(f), Some(b)) = (self.frames_ratio, self.bytes_ratio) {
            o.push_str(&format!("\nfiltered / unfiltered: frames {f:.3}×, bytes {b:.3}×\n"));
        }
        o.push_str(&format!(
            "\n{} vehicles ({} parked, ±{} m jitter) at {} Hz in {} rooms; {} phones ({} with both subscriptions confirmed), each on one room ({} vehicles); connect failures {}, disconnects {}\n",
            self.vehicles,
            self.parked,
            super::geo::JITTER_M,
            self.rate_hz,
            self.rooms,
            self.phones,
            self.subscribed,
            self.vehicles / self.rooms.max(1),
            self.net.connect_failures,
            self.net.disconnects
        ));
        for p in &self.phases {
            for s in &p.slow_samples {
                o.push_str(&format!("{}, moving vehicle covered after > 3 s: {s}\n", p.name));
            }
            if let Some(e) = &p.first_error {
                o.push_str(&format!("{}: {} errors, first: {e}\n", p.name, p.errors));
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_position_delay_counts_each_covered_position_once() {
        // 4 vehicles in 2 rooms; phone 0 on room 0 (vehicles 0 and 2), phone 1 on room 1.
        let mut c = Coverage::new(4, 2, 2, vec![false, false, true, false]);
        let t = Timing { t0: 0, win_start: 100, win_end: 1_000, end: 2_000 };
        for s in 1..=3 {
            c.published(Published { v: 0, s, t: 100 * s, lat: 0.0, lon: 0.0 });
            c.published(Published { v: 2, s, t: 100 * s + 50, lat: 0.0, lon: 0.0 });
        }
        let mut got = vec![];
        // Phone 0 gets v0 s3 only (s1, s2 replaced): three positions covered at once.
        c.received(0, 0, 3, 400, &t, |d, p, _| got.push((d, p)));
        assert_eq!(got, vec![(300, false), (200, false), (100, false)]);
        got.clear();
        c.received(0, 0, 2, 500, &t, |d, p, _| got.push((d, p))); // older: nothing new
        c.received(1, 0, 3, 500, &t, |d, p, _| got.push((d, p))); // not phone 1's room
        assert!(got.is_empty());
        c.received(0, 2, 1, 600, &t, |d, p, _| got.push((d, p)));
        assert_eq!(got, vec![(450, true)]);
        // v2 s2, s3 never reached phone 0.
        assert_eq!(c.never(&t), (2, 6));
        // A new phase: what was published before counts as covered.
        c.reset(&[3, 0, 3, 0]);
        assert_eq!(c.never(&t), (0, 6));
    }

    #[test]
    fn options_and_room_sizes() {
        let p = PacingOpts {
            vehicles: 10,
            rate_hz: 1.0,
            phones: 3,
            rooms: 4,
            max_rate: Some(0.5),
            min_move_m: Some(10.0),
            max_silence_s: None,
            parked_share: 0.0,
        };
        assert_eq!(p.options_json(), r#","max_rate":0.5,"min_move_m":10"#);
        assert_eq!((0..4).map(|r| p.vehicles_in(r)).collect::<Vec<_>>(), vec![3, 3, 2, 2]);
    }
}
