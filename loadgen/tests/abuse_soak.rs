//! End-to-end: `abuse` (every attack, 1 s each) and `soak` (2 × 3 s) against the real
//! `shardcast` binary on a free loopback port, stopped by its PID afterwards.
//!
//! The server binary and process come from `common` (built there if missing or stale).
//!
//! These tests check that the commands run, print and record well-formed output and that the
//! neighbours received messages. They assert no timing and none of issue 7's thresholds: the
//! server is being hardened separately, and timing belongs to benchmarks.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{loadgen, tmp_dir, Server};
use serde_json::Value;

/// The single folder `--record` created under `dir`.
fn recorded(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[test]
fn abuse_runs_every_attack_against_the_real_server() {
    let server = Server::start(&["--log", "warn"]);
    let dir = tmp_dir("abuse");
    let json = dir.join("out.json");
    let rec = dir.join("rec");
    let stdout = loadgen(&[
        "abuse",
        "--url",
        &format!("ws://{}", server.addr),
        "--attack",
        "all",
        "--duration",
        "1s",
        "--warmup",
        "300ms",
        "--drain",
        "3s",
        "--zero-window-wait",
        "1s",
        "--neighbours",
        "5",
        "--garbage-rate",
        "50",
        "--server-pid",
        &server.pid().to_string(),
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--record",
        rec.to_str().unwrap(),
    ]);
    let names = ["ping-flood", "ctrl-ping-flood", "pub-flood", "room-churn", "zero-window", "garbage"];
    assert!(stdout.contains("| attack | neighbours' latency"), "{stdout}");
    for n in names {
        assert!(stdout.contains(&format!("| {n} |")), "no row for {n}:\n{stdout}");
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["mode"], "abuse");
    let attacks = v["attacks"].as_array().expect("attacks array");
    assert_eq!(attacks.len(), names.len());
    for (a, n) in attacks.iter().zip(names) {
        assert_eq!(a["attack"], n);
        let u = |p: &str| {
            a.pointer(p).and_then(Value::as_u64).unwrap_or_else(|| panic!("{n}: {p} missing in {a}"))
        };
        // Every neighbour kind received messages, before and during the attack.
        assert!(u("/quiet/deliveries") > 0, "{n}: no deliveries before the attack: {a}");
        assert!(u("/during/deliveries") > 0, "{n}: no deliveries during the attack: {a}");
        assert!(u("/during/latency/count") > 0, "{n}");
        for k in ["/rss_kib_before", "/rss_kib_peak", "/rss_kib_after"] {
            assert!(u(k) > 0, "{n}: {k}");
        }
        assert!(a["attacker"]["error"].is_null(), "{n}: attacker stopped early: {a}");
        assert!(u("/attacker/connections") >= 1, "{n}");
    }
    let by = |n: &str| &attacks[names.iter().position(|x| *x == n).unwrap()]["attacker"];
    for n in ["ping-flood", "ctrl-ping-flood", "pub-flood"] {
        assert!(by(n)["sent"].as_u64().unwrap() > 0, "{n} sent nothing");
    }
    let churn = by("room-churn");
    assert!(churn["replies_read"].as_u64().unwrap() > 0, "room-churn got no answers: {churn}");
    assert!(churn["rooms_created"].is_u64());
    let zw = by("zero-window");
    assert!(zw["server_unsent_max"].is_u64() && zw["watched_ms"].is_u64(), "{zw}");
    let garbage = by("garbage");
    assert!(garbage["connections"].as_u64().unwrap() > 1, "{garbage}");
    assert!(!garbage["outcomes"].as_object().unwrap().is_empty(), "{garbage}");
    let folder = recorded(&rec);
    let readme = std::fs::read_to_string(folder.join("README.md")).unwrap();
    assert!(readme.contains("git commit") && readme.contains("abuse --url"), "{readme}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["attacks"].as_array().unwrap().len(), names.len());
    let csv = std::fs::read_to_string(folder.join("rss.csv")).unwrap();
    assert!(
        csv.starts_with("attack,seconds_since_attack_start,rss_kib\n") && csv.lines().count() > 6,
        "{csv}"
    );
}

#[test]
fn soak_runs_two_short_minutes_against_the_real_server() {
    let server = Server::start(&["--log", "warn"]);
    let dir = tmp_dir("soak");
    let json = dir.join("out.json");
    let rec = dir.join("rec");
    let stdout = loadgen(&[
        "soak",
        "--url",
        &format!("ws://{}", server.addr),
        "--minutes",
        "2",
        "--minute",
        "3s",
        "--vehicles",
        "60",
        "--fleets",
        "3",
        "--mux-subscribers",
        "30",
        "--room-subscribers",
        "15",
        "--churn",
        "3",
        "--drain",
        "3s",
        "--server-pid",
        &server.pid().to_string(),
        "--json",
        json.to_str().unwrap(),
        "--record",
        rec.to_str().unwrap(),
    ]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("minute  1/2: deliveries")), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("minute  2/2: deliveries")), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("verdict: RSS ")), "{stdout}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let minutes = v["result"]["minutes"].as_array().expect("minutes");
    assert_eq!(minutes.len(), 2);
    for m in minutes {
        assert!(m["crowd"]["deliveries"].as_u64().unwrap() > 0, "{m}");
        assert!(m["crowd"]["publishes"].as_u64().unwrap() > 0, "{m}");
        assert!(m["rss_kib_end"].as_u64().unwrap() > 0, "{m}");
        assert!(m["misbehaving"]["garbage_connections"].is_u64(), "{m}");
    }
    let total = |k: &str| minutes.iter().map(|m| m["crowd"][k].as_u64().unwrap()).sum::<u64>();
    assert!(total("joins") + total("reconnects") > 0, "no churn happened: {v}");
    assert!(v["result"]["verdict"]["line"].as_str().unwrap().starts_with("verdict:"));
    let folder = recorded(&rec);
    for f in ["README.md", "summary.json", "minutes.csv"] {
        assert!(folder.join(f).exists(), "{f} missing in {}", folder.display());
    }
    let csv = std::fs::read_to_string(folder.join("minutes.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
}

#[test]
fn abuse_and_soak_refuse_bad_arguments_cleanly() {
    for args in [
        &["abuse", "--url", "ws://127.0.0.1:9", "--attack", "nope"][..],
        &["abuse", "--url", "ws://192.0.2.1:9"][..],
        &["soak", "--url", "ws://192.0.2.1:9"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_shardcast-loadgen")).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("error: ") && !err.contains("panicked"), "{args:?}: {err}");
    }
}
