//! End-to-end: `shardcast-loadgen tracking` in each mode, tiny (a few clients, 2–3 s),
//! against the real `shardcast` server (from `common`, built there if missing or stale).
//! No timing assertions: the loadgen's own correctness counts (misses, extras, the final
//! presence state) must be clean.

mod common;

use common::{loadgen, tmp_dir, Server};

const CONFIG: &str = r#"
[namespaces.fleet]
key = "id"
geo = { lat = "lat", lon = "lon" }

[namespaces.chat]
presence = true
presence_members = 5000
presence_window = "300ms"
"#;

/// The real server with the tracking namespaces, and its `/ws` URL.
fn server() -> (Server, String) {
    let cfg = tmp_dir("tracking-config").join("shardcast.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let srv = Server::start(&["--config", cfg.to_str().unwrap()]);
    let url = format!("ws://{}/ws", srv.addr);
    (srv, url)
}

/// `shardcast-loadgen tracking <args>` against `srv`; its JSON report.
fn tracking(srv: &(Server, String), args: &[&str]) -> serde_json::Value {
    let json = tmp_dir("tracking").join("out.json");
    let pid = srv.0.pid().to_string();
    let mut all = vec!["tracking", "--url", &srv.1, "--server-pid", &pid, "--json", json.to_str().unwrap()];
    all.extend_from_slice(args);
    loadgen(&all);
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[test]
fn every_tracking_mode_tiny_against_the_real_server() {
    let srv = server();
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
