//! End-to-end: the real `shardcast-loadgen` binary against small in-test servers on port 0
//! (a room-per-URL broadcast server and a minimal multiplexed `/ws` server, both plain std
//! threads), and against the `baseline` binary when it has been built. No timing assertions.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use shardcast_loadgen::ws::accept_key;

mod common;

type Rooms = Arc<Mutex<HashMap<String, Vec<TcpStream>>>>;

fn server_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x81];
    let n = payload.len();
    if n < 126 {
        f.push(n as u8);
    } else if n <= 65535 {
        f.push(126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

/// Reads one masked client frame: (opcode, payload).
fn read_client_frame(r: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).ok()?;
    let mut len = (h[1] & 0x7f) as u64;
    if len == 126 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b).ok()?;
        len = u16::from_be_bytes(b) as u64;
    } else if len == 127 {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).ok()?;
        len = u64::from_be_bytes(b);
    }
    assert!(h[1] & 0x80 != 0, "client frames must be masked");
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask).ok()?;
    let mut p = vec![0u8; len as usize];
    r.read_exact(&mut p).ok()?;
    for (i, b) in p.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
    Some((h[0] & 0x0f, p))
}

/// Thread-per-connection server: `/ws/<room>/` = room-per-URL, `/ws` = multiplexed.
fn start_server() -> u16 {
    start_cluster(1)[0]
}

/// `n` listening ports sharing one set of rooms and seqs: a stand-in for a cluster, where a
/// publish on any node reaches subscribers on every node with one seq.
fn start_cluster(n: usize) -> Vec<u16> {
    let rooms: Rooms = Arc::default();
    let seqs: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    (0..n)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let (rooms, seqs) = (rooms.clone(), seqs.clone());
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    let (rooms, seqs) = (rooms.clone(), seqs.clone());
                    std::thread::spawn(move || serve(s, rooms, seqs));
                }
            });
            port
        })
        .collect()
}

fn broadcast(rooms: &Rooms, room: &str, frame: &[u8]) {
    let mut map = rooms.lock().unwrap();
    if let Some(v) = map.get_mut(room) {
        v.retain_mut(|s| s.write_all(frame).is_ok());
    }
}

fn serve(s: TcpStream, rooms: Rooms, seqs: Arc<Mutex<HashMap<String, u64>>>) {
    s.set_nodelay(true).ok();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut key = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("sec-websocket-key") {
                key = v.trim().to_string();
            }
        }
    }
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    w.write_all(resp.as_bytes()).unwrap();
    let per_room = path.strip_prefix("/ws/").map(|r| r.trim_end_matches('/').to_string());
    if let Some(room) = &per_room {
        rooms.lock().unwrap().entry(room.clone()).or_default().push(w.try_clone().unwrap());
    }
    while let Some((op, payload)) = read_client_frame(&mut r) {
        match op {
            1 => match &per_room {
                Some(room) => broadcast(&rooms, room, &server_frame(&payload)),
                None => {
                    #[derive(serde::Deserialize)]
                    struct Op<'a> {
                        op: &'a str,
                        room: String,
                        #[serde(borrow)]
                        data: Option<&'a serde_json::value::RawValue>,
                        id: Option<u64>,
                    }
                    let m: Op = serde_json::from_slice(&payload).expect("valid op");
                    let mut seqs = seqs.lock().unwrap();
                    let seq = seqs.entry(m.room.clone()).or_insert(0);
                    if m.op == "sub" {
                        rooms.lock().unwrap().entry(m.room.clone()).or_default().push(w.try_clone().unwrap());
                    } else if m.op == "pub" {
                        *seq += 1;
                        let env = format!(
                            r#"{{"room":"{}","seq":{},"data":{}}}"#,
                            m.room,
                            seq,
                            m.data.unwrap().get()
                        );
                        broadcast(&rooms, &m.room, &server_frame(env.as_bytes()));
                    }
                    let ok = format!(
                        r#"{{"op":"ok","id":{},"room":"{}","seq":{}}}"#,
                        m.id.unwrap_or(0),
                        m.room,
                        seq
                    );
                    drop(seqs);
                    let _ = w.write_all(&server_frame(ok.as_bytes()));
                }
            },
            8 => break,
            _ => {}
        }
    }
}

fn run_loadgen(args: &[&str]) -> serde_json::Value {
    run_loadgen_json(args).0["runs"][0].clone()
}

/// Runs the loadgen with `--json`; returns the whole JSON and stdout.
fn run_loadgen_json(args: &[&str]) -> (serde_json::Value, String) {
    let dir =
        std::env::temp_dir().join(format!("loadgen-test-{}-{}", std::process::id(), args.join("_").len()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join(format!("out-{}.json", rand_suffix()));
    let out = Command::new(env!("CARGO_BIN_EXE_shardcast-loadgen"))
        .args(args)
        .args(["--quiet", "--cpus", "1", "--json", json.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadgen failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    println!("{stdout}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (v, stdout.into_owned())
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

const SCENARIO: &str = r#"
name = "mini"
[[publishers]]
kind = "vehicle"
count = 3
rate = 20.0
rooms = ["vehicle:{id}", "fleet:test/all"]
[[subscribers]]
count = 6
room = "vehicle:{id}"
ids = 3
per_client = 1
stride = 1
[[subscribers]]
count = 4
room = "fleet:test/all"
"#;

fn scenario_file() -> String {
    let p = std::env::temp_dir().join(format!("loadgen-mini-{}.toml", rand_suffix()));
    std::fs::write(&p, SCENARIO).unwrap();
    p.to_string_lossy().into_owned()
}

fn assert_clean(s: &serde_json::Value) {
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {s}"));
    assert!(n("sent") > 0, "{s}");
    assert_eq!(n("received"), n("expected"), "{s}");
    assert_eq!(n("lost"), 0);
    assert_eq!(n("duplicated"), 0);
    assert_eq!(n("connect_failures"), 0);
    // 3 vehicles × (2 watchers of their room + 4 dashboards on the shared room).
    assert_eq!(n("expected"), n("sent") * 6);
}

#[test]
fn per_room_template_against_test_server() {
    let port = start_server();
    let url = format!("ws://127.0.0.1:{port}/ws/{{room}}/");
    let f = scenario_file();
    let s = run_loadgen(&[
        "run",
        "--url-template",
        &url,
        "--scenario-file",
        &f,
        "--warmup",
        "500ms",
        "--duration",
        "1500ms",
    ]);
    assert_clean(&s);
}

#[test]
fn multiplexed_ws_against_test_server() {
    let port = start_server();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let f = scenario_file();
    let s = run_loadgen(&[
        "run",
        "--url",
        &url,
        "--scenario-file",
        &f,
        "--warmup",
        "500ms",
        "--duration",
        "1500ms",
    ]);
    assert_clean(&s);
}

/// Three nodes, publishers on node 0, subscribers on nodes 1 and 2: every delivery crosses
/// nodes; the report names every node and each node's share adds up.
#[test]
fn several_targets_with_publishers_on_one_node() {
    let ports = start_cluster(3);
    let urls: Vec<String> = ports.iter().map(|p| format!("ws://127.0.0.1:{p}/ws")).collect();
    let f = scenario_file();
    let (v, stdout) = run_loadgen_json(&[
        "run",
        "--url",
        &urls[0],
        "--url",
        &format!("{},{}", urls[1], urls[2]),
        "--publish-node",
        "0",
        "--subscribe-nodes",
        "1-2",
        "--scenario-file",
        &f,
        "--warmup",
        "500ms",
        "--duration",
        "1500ms",
    ]);
    let s = &v["runs"][0];
    assert_clean(s);
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"));
    assert_eq!(s["target"].as_str().unwrap(), urls.join(" + "));
    let nodes = s["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for (k, node) in nodes.iter().enumerate() {
        assert_eq!(node["url"].as_str().unwrap(), urls[k]);
        assert!(stdout.contains(&urls[k]), "{stdout}");
        assert_eq!((n(node, "lost"), n(node, "seq_holes"), n(node, "acked_unseen")), (0, 0, 0), "{node}");
    }
    assert_eq!((n(&nodes[0], "publishers"), n(&nodes[0], "subscriber_connections")), (3, 0));
    assert_eq!((n(&nodes[1], "publishers"), n(&nodes[1], "subscriber_connections")), (0, 5));
    assert_eq!((n(&nodes[2], "publishers"), n(&nodes[2], "subscriber_connections")), (0, 5));
    assert_eq!(n(&nodes[0], "expected"), 0);
    assert_eq!(n(&nodes[1], "received") + n(&nodes[2], "received"), n(s, "received"));
    assert_eq!(n(&nodes[1], "live_subscriptions") + n(&nodes[2], "live_subscriptions"), 10);
    // Each publish goes to two rooms and is acknowledged once per room.
    assert!(n(s, "acked") > 0 && n(s, "seq_holes") == 0 && n(s, "acked_unseen") == 0, "{s}");
}

/// `--compare` with `--server-pids` (the in-test server runs in this process) and `--repeat`:
/// per-side server CPU and RSS, the side-by-side table and the runs-in-a-row lines.
#[test]
fn compare_with_server_pids_and_repeat() {
    let port = start_server();
    let url = format!("ws://127.0.0.1:{port}/ws/{{room}}/");
    let f = scenario_file();
    let pid = std::process::id();
    let short = ["--scenario-file", &f, "--warmup", "300ms", "--duration", "700ms"];
    let pids = format!("{pid},{pid}");
    let mut args = vec!["run", "--compare", &url, &url, "--server-pids", &pids, "--rounds", "2"];
    args.extend(short);
    let (j, out) = run_loadgen_json(&args);
    assert_eq!(j["mode"], "compare");
    assert_eq!(j["a_server_pid"], pid);
    for side in ["a_runs", "b_runs"] {
        let runs = j[side].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        for r in runs {
            assert_clean(r);
            assert!(r["server_cpu_us_per_delivery"].as_f64().unwrap() >= 0.0, "{r}");
            assert!(r["server_rss_kib_after"].as_u64().unwrap() > 0, "{r}");
        }
    }
    assert!(j["medians"]["server RSS after MiB"]["b"].as_f64().unwrap() > 0.0);
    assert_eq!(j["in_a_row"]["a"]["p999_us"].as_array().unwrap().len(), 2);
    for needle in ["round 2 B: delivered", "server CPU µs/delivery", "runs in a row", "last/first"] {
        assert!(out.contains(needle), "{needle:?} missing in\n{out}");
    }

    let pid = pid.to_string();
    let mut args = vec!["run", "--url-template", &url, "--server-pid", &pid, "--repeat", "2"];
    args.extend(short);
    let (j, out) = run_loadgen_json(&args);
    assert_eq!(j["mode"], "repeat");
    assert_eq!(j["runs"].as_array().unwrap().len(), 2);
    assert!(j["in_a_row"]["last_over_first_p999"].as_f64().is_some(), "{}", j["in_a_row"]);
    assert!(out.contains("run 2: delivered") && out.contains("2 runs in a row: p99.9 last/first"), "{out}");
}

#[test]
fn flag_misuse_is_a_clean_error() {
    for (args, msg) in [
        (&["run", "--rounds", "2"][..], "--rounds is for --compare"),
        (
            &["run", "--compare", "ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws", "--server-pids", "1"][..],
            "two process ids",
        ),
        (
            &["run", "--compare", "ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws", "--server-pid", "1"][..],
            "--server-pids",
        ),
        (&["run", "--server-pids", "1,2"][..], "--compare"),
        (
            &["run", "--url", "ws://127.0.0.1:1/ws,ws://127.0.0.1:2/ws", "--publish-node", "2"][..],
            "there are 2 targets",
        ),
        (
            &["run", "--url", "ws://127.0.0.1:1/ws", "--subscribe-nodes", "0,1"][..],
            "there is 1 target, node 0",
        ),
        (
            &[
                "run",
                "--compare",
                "ws://127.0.0.1:1/ws",
                "ws://127.0.0.1:2/ws",
                "--url",
                "ws://a/ws,ws://b/ws",
            ][..],
            "one target per side",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_shardcast-loadgen")).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

#[test]
fn unreachable_server_is_a_clean_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let out = Command::new(env!("CARGO_BIN_EXE_shardcast-loadgen"))
        .args(["run", "--quiet", "--url", &format!("ws://127.0.0.1:{port}/ws"), "--duration", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the server"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Against the real `baseline` binary if it was built (`cargo build -p shardcast-benches
/// --bin baseline`); skipped otherwise, since cargo does not build other packages' binaries
/// for this test.
#[test]
fn per_room_template_against_baseline_if_built() {
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_shardcast-loadgen"));
    let Some(baseline) = exe.parent().map(|d| d.join("baseline")).filter(|p| p.exists()) else {
        eprintln!("baseline binary not built; skipping");
        return;
    };
    let server = common::Server::spawn(&baseline, &["--listen", "127.0.0.1:0"]);
    let url = format!("ws://{}/ws/{{room}}/", server.addr);
    let f = scenario_file();
    let s = run_loadgen(&[
        "run",
        "--url-template",
        &url,
        "--scenario-file",
        &f,
        "--warmup",
        "500ms",
        "--duration",
        "1500ms",
    ]);
    drop(server);
    assert_clean(&s);
}
