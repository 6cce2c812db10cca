//! `--mode presence`: `members` connections open first, then each subscribes to one room of
//! a `presence = true` namespace, the joins spread evenly over `join_over` (open loop). Every
//! member counts the `presence_diff` frames and bytes it receives until `settle` after the
//! last join; then one `presence` request checks the final state.
//!
//! Without coalescing every join would be one event to every member present (the joiner
//! included, as the server tells a joiner about its own join): N·(N+1)/2 frames for N joins.
//! That figure is *computed* ([`uncoalesced_frames`], [`uncoalesced_bytes`]), not measured.

use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;

use super::net::{Net, NetCounters};
use super::{now_rel, op_of, CpuMeter, Opts, Timing};
use crate::payload::uint_of;
use crate::stats::Percentiles;

#[derive(Debug, Clone)]
pub struct PresenceOpts {
    pub members: usize,
    pub join_over: Duration,
    pub settle: Duration,
    pub room: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub members: usize,
    pub room: String,
    pub join_over_s: f64,
    pub joined_ok: usize,
    /// `presence_diff` frames and wire bytes received by all members (measured).
    pub diff_frames: u64,
    pub diff_bytes: u64,
    pub diffs_per_member: Percentiles,
    pub max_diffs_per_member: u64,
    /// One event per join to every member present (computed).
    pub uncoalesced_frames: u64,
    pub uncoalesced_bytes: u64,
    pub frames_ratio: f64,
    /// From the last join sent until a member saw `count` = members (per member, µs).
    pub converged: Percentiles,
    pub converged_members: usize,
    /// The `presence` reply after the settle: count and number of member names.
    pub final_count: Option<u64>,
    pub final_members: Option<usize>,
    pub mean_member_name_bytes: f64,
    pub server_cpu_s: Option<f64>,
    pub loadgen_cores: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub net: NetCounters,
}

/// Frames without coalescing: join k (1-based) is announced to the k members then present.
pub fn uncoalesced_frames(n: u64) -> u64 {
    n * (n + 1) / 2
}

/// Wire bytes of those frames: each `{"op":"presence_diff","room":R,"count":k,"joined":[name],"left":[]}`
/// plus its WebSocket header, with member names of `name_len` bytes.
pub fn uncoalesced_bytes(n: u64, room: &str, name_len: usize) -> u64 {
    let name = "x".repeat(name_len);
    let mut total = 0u64;
    for k in 1..=n {
        let body =
            format!(r#"{{"op":"presence_diff","room":"{room}","count":{k},"joined":["{name}"],"left":[]}}"#);
        let hdr = if body.len() < 126 { 2 } else { 4 };
        total += k * (body.len() + hdr) as u64;
    }
    total
}

struct State {
    joined: Vec<bool>,
    diffs: Vec<u64>,
    reached: Vec<Option<u64>>,
    frames: u64,
    bytes: u64,
    n: u64,
    errors: u64,
    first_error: Option<String>,
    reply: Option<serde_json::Value>,
}

impl State {
    fn on_frame(&mut self, i: usize, payload: &[u8], wire: usize, now_abs: u64) {
        let now = now_abs.saturating_sub(crate::runner::epoch());
        match op_of(payload) {
            Some(b"presence_diff") => {
                self.frames += 1;
                self.bytes += wire as u64;
                self.diffs[i] += 1;
                if uint_of(payload, b"\"count\"") == Some(self.n) && self.reached[i].is_none() {
                    self.reached[i] = Some(now);
                }
            }
            Some(b"ok") if uint_of(payload, b"\"id\"") == Some(1) => self.joined[i] = true,
            Some(b"presence") => self.reply = serde_json::from_slice(payload).ok(),
            Some(b"error") => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| String::from_utf8_lossy(payload).into_owned());
            }
            _ => {}
        }
    }
}

pub fn run(o: &Opts, p: &PresenceOpts) -> Result<Report> {
    let n = p.members;
    if n == 0 {
        bail!("presence needs members");
    }
    let mut net = Net::new(&o.url)?;
    net.add(n);
    let mut st = State {
        joined: vec![false; n],
        diffs: vec![0; n],
        reached: vec![None; n],
        frames: 0,
        bytes: 0,
        n: n as u64,
        errors: 0,
        first_error: None,
        reply: None,
    };
    net.connect_all(o.connect_timeout, &mut |c, b, w, t| st.on_frame(c, b, w, t))?;
    let t0 = now_rel() + 20_000_000;
    let over = p.join_over.as_nanos() as u64;
    let step = over / n as u64;
    let last_join = t0 + step * (n as u64 - 1);
    let end = last_join + p.settle.as_nanos() as u64;
    // Server CPU over the joins and the settle.
    let timing = Timing { t0, win_start: t0, win_end: end, end };
    let mut cpu = CpuMeter::default();
    let sub = format!(r#"{{"op":"sub","room":"{}","id":1}}"#, p.room);
    let mut next = 0usize;
    loop {
        let now = now_rel();
        cpu.tick(&timing, o.server_pid);
        while next < n && t0 + step * next as u64 <= now {
            net.send_text(next, sub.as_bytes());
            next += 1;
        }
        if now >= timing.end {
            break;
        }
        let due = if next < n { t0 + step * next as u64 } else { timing.end };
        net.arm(due.min(now + 50_000_000).max(now + 1) + crate::runner::epoch());
        net.poll(50, &mut |c, b, w, t| st.on_frame(c, b, w, t), &mut |_| {});
    }
    let c = cpu.result();
    let (frames, bytes) = (st.frames, st.bytes);
    // The state on request.
    let ask = format!(r#"{{"op":"presence","room":"{}","id":"q"}}"#, p.room);
    let asker = (0..n).find(|&i| net.is_open(i)).unwrap_or(0);
    net.send_text(asker, ask.as_bytes());
    let end = now_rel() + 5_000_000_000;
    while st.reply.is_none() && now_rel() < end {
        net.poll(20, &mut |c, b, w, t| st.on_frame(c, b, w, t), &mut |_| {});
    }
    net.close_all();
    let final_count = st.reply.as_ref().and_then(|r| r["count"].as_u64());
    let names: Vec<String> = st
        .reply
        .as_ref()
        .and_then(|r| r["members"].as_array())
        .map(|m| m.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let name_len = if names.is_empty() {
        8.0
    } else {
        names.iter().map(|s| s.len()).sum::<usize>() as f64 / names.len() as f64
    };
    let mut h = super::hist();
    for &d in &st.diffs {
        let _ = h.record(d.max(1));
    }
    let mut conv = super::hist();
    let mut converged = 0;
    for r in st.reached.iter().flatten() {
        converged += 1;
        let _ = conv.record(r.saturating_sub(last_join).max(1));
    }
    let un_f = uncoalesced_frames(n as u64);
    let un_b = uncoalesced_bytes(n as u64, &p.room, name_len.round() as usize);
    // `diffs_per_member` is a count, not a time: Percentiles reports it in "µs" = count / 1000.
    let mut dpm = Percentiles::of(&h);
    for x in [
        &mut dpm.p50_us,
        &mut dpm.p90_us,
        &mut dpm.p99_us,
        &mut dpm.p999_us,
        &mut dpm.max_us,
        &mut dpm.mean_us,
    ] {
        *x *= 1000.0;
    }
    Ok(Report {
        mode: "presence",
        members: n,
        room: p.room.clone(),
        join_over_s: p.join_over.as_secs_f64(),
        joined_ok: st.joined.iter().filter(|x| **x).count(),
        diff_frames: frames,
        diff_bytes: bytes,
        max_diffs_per_member: st.diffs.iter().copied().max().unwrap_or(0),
        diffs_per_member: dpm,
        uncoalesced_frames: un_f,
        uncoalesced_bytes: un_b,
        frames_ratio: frames as f64 / un_f as f64,
        converged: Percentiles::of(&conv),
        converged_members: converged,
        final_count,
        final_members: st.reply.as_ref().map(|_| names.len()),
        mean_member_name_bytes: name_len,
        server_cpu_s: c.server_cpu_s,
        loadgen_cores: c.loadgen_cores,
        errors: st.errors,
        first_error: st.first_error,
        net: net.counters.clone(),
    })
}

impl Report {
    pub fn table(&self) -> String {
        let mut o = String::from(
            "| members joining | over | presence_diff frames (measured) | bytes (measured) | diffs per member p50 / max | one event per join to every member (computed) | bytes (computed) | measured / computed frames | last join → count = N seen, p50 / p99 / max | server CPU-s |\n|---|---|---|---|---|---|---|---|---|---|\n",
        );
        o.push_str(&format!(
            "| {} ({} ok) | {:.1} s | {} | {} | {:.0} / {} | {} | {} | {:.5} | {} / {} / {} ({} of {}) | {} |\n",
            self.members,
            self.joined_ok,
            self.join_over_s,
            self.diff_frames,
            self.diff_bytes,
            self.diffs_per_member.p50_us,
            self.max_diffs_per_member,
            self.uncoalesced_frames,
            self.uncoalesced_bytes,
            self.frames_ratio,
            super::ms(self.converged.p50_us),
            super::ms(self.converged.p99_us),
            super::ms(self.converged.max_us),
            self.converged_members,
            self.members,
            self.server_cpu_s.map_or("—".into(), |c| format!("{c:.2}")),
        ));
        o.push_str(&format!(
            "\nfinal `presence` reply: count {:?}, {:?} member names (mean {:.1} bytes); errors {}; connect failures {}, disconnects {}\n",
            self.final_count,
            self.final_members,
            self.mean_member_name_bytes,
            self.errors,
            self.net.connect_failures,
            self.net.disconnects
        ));
        if let Some(e) = &self.first_error {
            o.push_str(&format!("first error: {e}\n"));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncoalesced_figures() {
        assert_eq!(uncoalesced_frames(1), 1);
        assert_eq!(uncoalesced_frames(2000), 2_001_000);
        // One join: one frame of `{"op":"presence_diff","room":"r","count":1,"joined":["ab"],"left":[]}`.
        let body = r#"{"op":"presence_diff","room":"r","count":1,"joined":["ab"],"left":[]}"#;
        assert_eq!(uncoalesced_bytes(1, "r", 2), body.len() as u64 + 2);
        // Two joins: 1 frame with count 1, 2 with count 2.
        assert_eq!(uncoalesced_bytes(2, "r", 2), 3 * (body.len() as u64 + 2));
    }

    #[test]
    fn diffs_are_counted_and_convergence_noted() {
        let mut st = State {
            joined: vec![false; 2],
            diffs: vec![0; 2],
            reached: vec![None; 2],
            frames: 0,
            bytes: 0,
            n: 2,
            errors: 0,
            first_error: None,
            reply: None,
        };
        let e = crate::runner::epoch();
        st.on_frame(0, br#"{"op":"ok","id":1,"room":"chat:x"}"#, 30, e + 1);
        st.on_frame(
            0,
            br#"{"op":"presence_diff","room":"chat:x","count":1,"joined":["c0.1"],"left":[]}"#,
            70,
            e + 2,
        );
        st.on_frame(
            0,
            br#"{"op":"presence_diff","room":"chat:x","count":2,"joined":["c0.2"],"left":[]}"#,
            70,
            e + 3,
        );
        assert_eq!((st.frames, st.bytes, st.diffs[0]), (2, 140, 2));
        assert_eq!((st.joined[0], st.reached[0]), (true, Some(3)));
        st.on_frame(
            1,
            br#"{"op":"presence","id":"q","room":"chat:x","count":2,"members":["c0.1","c0.2"]}"#,
            80,
            e + 4,
        );
        assert_eq!(st.reply.as_ref().unwrap()["count"], 2);
    }
}
