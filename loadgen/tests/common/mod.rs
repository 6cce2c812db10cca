//! Shared by the loadgen's end-to-end tests: the real `shardcast` binary (found, and if need
//! be built, once per run), a server process on a free loopback port stopped by its PID, the
//! loadgen binary run to completion, scratch folders.
//!
//! Cargo builds only this package's binaries for its tests, so the server binary is found
//! here: `SHARDCAST_BIN` if set, else `target/<profile>/shardcast` — built here with
//! `cargo build -p shardcast-server` (same profile and target dir) only when it is missing or
//! older than the server's and engine's sources. Under `cargo test --workspace` it is fresh,
//! so nothing is rebuilt: a rebuild there would swap the binary under the server's own tests
//! (`-p` resolves features differently from the workspace build).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `shardcast` binary, checked (and if need be built) once per test run.
pub fn server_bin() -> &'static Path {
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
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    /// `shardcast --shards 1 --no-demo --listen 127.0.0.1:0 <extra>`.
    pub fn start(extra: &[&str]) -> Server {
        let mut args = vec!["--shards", "1", "--no-demo", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Server::spawn(server_bin(), &args)
    }

    /// Any server binary that prints `listening on ADDR` as its first line (`bin args`).
    pub fn spawn(bin: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(bin)
            .args(args)
            .env_remove("SHARDCAST_CONFIG")
            .env_remove("SHARDCAST_JWT_SECRET")
            .env_remove("SHARDCAST_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
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

    pub fn pid(&self) -> u32 {
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

pub fn tmp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let d = std::env::temp_dir().join(format!("loadgen-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the loadgen; returns stdout, asserting success.
pub fn loadgen(args: &[&str]) -> String {
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
