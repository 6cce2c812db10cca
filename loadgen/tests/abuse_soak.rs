//! End-to-end: `abuse` (every attack, 1 s each) and `soak` (2 × 3 s) against the real
//! `shardcast` binary on a free loopback port, stopped by its PID afterwards.
//!
//! Cargo builds only this package's binaries for its tests, so the server binary is found
//! here: `SHARDCAST_BIN` if set, else `target/<profile>/shardcast` — built here with
//! `cargo build -p shardcast-server` (same profile and target dir) only when it is missing or
//! older than the server's and engine's sources. Under `cargo test --workspace` it is fresh,
//! so nothing is rebuilt: a rebuild there would swap the binary under the server's own tests
//! (`-p` resolves features differently from the workspace build).
//!
//! These tests check that the commands run, print and record well-formed output and that the
//! neighbours received messages. They assert no timing and none of issue 7's thresholds: the
//! server is being hardened separately, and timing belongs to benchmarks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `shardcast` binary, checked (and if need be built) once per test run.
fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("SHARDCAST_BIN") {
            return PathBuf::from(p);
        }
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_shardcast-loadgen"));
        let profile_dir = exe.parent().expect("target/<profile>").to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let bin = profile_dir.join("shardcast");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let sources = ["server/src", "server/Cargo.toml", "engine/src", "engine/Cargo.toml", "Cargo.lock"];
        let newest_source = sources.iter().filter_map(|p| newest_mtime(&root.join(p))).max();
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        if built.is_some() && built >= newest_source {
            return bin;
        }
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "shardcast-server", "--bin", "shardcast", "--target-dir"])
            .arg(&target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the server");
        assert!(status.success(), "building the shardcast server failed");
        bin
    })
}

/// Latest modification time of a file or of anything under a directory.
fn newest_mtime(p: &Path) -> Option<std::time::SystemTime> {
    let m = std::fs::metadata(p).ok()?;
    if !m.is_dir() {
        return m.modified().ok();
    }
    std::fs::read_dir(p).ok()?.filter_map(|e| newest_mtime(&e.ok()?.path())).max()
}

/// A `shardcast --shards 1 --no-demo` on a free loopback port; SIGTERM then SIGKILL by PID
/// when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(server_bin())
            .args(["--shards", "1", "--no-demo", "--listen", "127.0.0.1:0", "--log", "warn"])
            .env_remove("SHARDCAST_CONFIG")
            .env_remove("SHARDCAST_JWT_SECRET")
            .env_remove("SHARDCAST_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn shardcast");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read the listening line");
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while matches!(out.read_line(&mut sink), Ok(n) if n > 0) {
                sink.clear();
            }
        });
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected {line:?}"))
            .to_string();
        Server { child, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by its PID (not reaped yet).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tmp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let d = std::env::temp_dir().join(format!("loadgen-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the loadgen; returns stdout, asserting success.
fn loadgen(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shardcast-loadgen"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "loadgen {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    println!("{stdout}");
    stdout.into_owned()
}

/// The single folder `--record` created under `dir`.
fn recorded(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[test]
fn abuse_runs_every_attack_against_the_real_server() {
    let server = Server::start();
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
    let server = Server::start();
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
