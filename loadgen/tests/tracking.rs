//! End-to-end: `shardcast-loadgen tracking` in each mode, tiny (a few clients, 2–3 s),
//! against the real `shardcast` server when it has been built (`cargo build -p
//! shardcast-server`: the binary next to this test's loadgen, or `$SHARDCAST_BIN`); skipped
//! otherwise, since cargo does not build other packages' binaries for this test. No timing
//! assertions: the loadgen's own correctness counts (misses, extras, the final presence
//! state) must be clean.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const CONFIG: &str = r#"
[namespaces.fleet]
key = "id"
geo = { lat = "lat", lon = "lon" }

[namespaces.chat]
presence = true
presence_members = 5000
presence_window = "300ms"
"#;

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn server() -> Option<Server> {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_shardcast-loadgen"));
    let bin = std::env::var_os("SHARDCAST_BIN")
        .map(PathBuf::from)
        .or_else(|| exe.parent().map(|d| d.join("shardcast")))
        .filter(|p| p.exists());
    let Some(bin) = bin else {
        eprintln!("shardcast binary not built (cargo build -p shardcast-server); skipping");
        return None;
    };
    let cfg = std::env::temp_dir().join(format!("loadgen-tracking-{}.toml", std::process::id()));
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut child = Command::new(bin)
        .args(["--shards", "1", "--no-demo", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").expect("listening line").to_string();
    Some(Server { child, url: format!("ws://{addr}/ws") })
}

fn tracking(srv: &Server, args: &[&str]) -> serde_json::Value {
    let json = std::env::temp_dir().join(format!(
        "loadgen-tracking-{}-{}.json",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    let pid = srv.child.id().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_shardcast-loadgen"))
        .args(["tracking", "--url", &srv.url, "--server-pid", &pid, "--json", json.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadgen failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    println!("{stdout}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[test]
fn every_tracking_mode_tiny_against_the_real_server() {
    let Some(srv) = server() else { return };
    let short = ["--warmup", "500ms", "--duration", "2s", "--drain", "1s"];

    // Viewports: 200 vehicles at 2 Hz, 20 subscribers with 5–20% boxes, half panning each second.
    let mut args = vec!["--mode", "viewports", "--vehicles", "200", "--rate", "2", "--subscribers", "20"];
    args.extend(["--view-min", "0.05", "--view-max", "0.2", "--pan-share", "0.5", "--pan-every", "1s"]);
    args.extend(["--whole-rate", "0.5"]);
    args.extend(short);
    let v = tracking(&srv, &args);
    assert_eq!(n(&v, "subscribed"), 20, "{v}");
    let phases = v["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    for p in phases {
        assert!(n(p, "published") > 0 && n(p, "delivered") > 0, "{p}");
        assert_eq!((n(p, "missed"), n(p, "extra"), n(p, "duplicated")), (0, 0, 0), "{p}");
        assert!(p["server_us_per_publish"].as_f64().unwrap() > 0.0, "{p}");
    }
    assert!(n(&phases[0], "pans_ok") > 0, "{}", phases[0]);
    assert!(n(&phases[0], "leaves") > 0, "{}", phases[0]);
    assert_eq!(n(&phases[1], "delivered"), n(&phases[1], "published") * 20);
    assert!(v["cpu_per_publish_ratio"].as_f64().is_some());

    // Pacing: 40 vehicles at 2 Hz in 4 rooms, 8 phones; max_rate 0.5 and a dead-band.
    let mut args =
        vec!["--mode", "pacing", "--vehicles", "40", "--rate", "2", "--phones", "8", "--rooms", "4"];
    args.extend(["--max-rate", "0.5", "--min-move-m", "5", "--max-silence-s", "2"]);
    args.extend(short);
    let p = tracking(&srv, &args);
    assert_eq!(n(&p, "subscribed"), 8, "{p}");
    let phases = p["phases"].as_array().unwrap();
    assert_eq!(phases[0]["name"], "unfiltered");
    for ph in phases {
        assert!(n(ph, "published") > 0 && n(ph, "positions") > 0, "{ph}");
        assert_eq!((n(ph, "never"), n(ph, "errors")), (0, 0), "{ph}");
    }
    // Unfiltered: every window publish reaches each of its room's two phones.
    assert_eq!(n(&phases[0], "frames"), n(&phases[0], "published") * 2, "{}", phases[0]);
    assert!(p["frames_ratio"].as_f64().unwrap() < 0.6, "{p}");

    // Presence: 50 members joining within 1 s.
    let args = ["--mode", "presence", "--members", "50", "--join-over", "1s", "--settle", "1500ms"];
    let r = tracking(&srv, &args);
    assert_eq!((n(&r, "joined_ok"), n(&r, "final_count"), n(&r, "final_members")), (50, 50, 50), "{r}");
    assert_eq!(n(&r, "converged_members"), 50, "{r}");
    assert!(n(&r, "diff_frames") >= 50 && n(&r, "diff_frames") < n(&r, "uncoalesced_frames"), "{r}");
    assert_eq!(n(&r, "uncoalesced_frames"), 50 * 51 / 2);
}
