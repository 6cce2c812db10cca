//! A real `nats-server -js` for the cluster tests: its own free loopback port and store
//! directory, stopped by its own PID when dropped. `scripts/install-deps.sh` installs it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// A running `nats-server` with JetStream.
pub struct Broker {
    child: Option<Child>,
    pub host: String,
    pub port: u16,
    store: TempDir,
}

/// A port nobody listens on right now (the kernel's choice).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Broker {
    /// Starts a broker on a free port with a fresh store.
    pub fn start() -> Broker {
        Broker::start_on("127.0.0.1")
    }

    /// Starts a broker listening on `host` (an address of this host) on a free port.
    pub fn start_on(host: &str) -> Broker {
        let port = TcpListener::bind((host, 0)).unwrap().local_addr().unwrap().port();
        let mut b = Broker { child: None, host: host.into(), port, store: TempDir::new() };
        b.restart();
        b
    }

    /// `nats://<host>:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}:{}", self.host, self.port)
    }

    /// Stops the broker (SIGKILL by PID), keeping its store.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the broker, deletes its store (every stream with it) and starts it again empty.
    pub fn restart_empty(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(self.store.0.join("js"));
        self.restart();
    }

    /// Starts it again on the same port and store (kills a running one first).
    pub fn restart(&mut self) {
        self.kill();
        let store = self.store.0.join("js");
        let child = Command::new("nats-server")
            .args(["-js", "-a", &self.host, "-p", &self.port.to_string(), "-sd"])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server not found: run scripts/install-deps.sh (Debian package nats-server)");
        self.child = Some(child);
        let addr: SocketAddr = format!("{}:{}", self.host, self.port).parse().unwrap();
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "nats-server did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
