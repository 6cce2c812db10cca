//! A host of its own for one node: a network namespace the test creates, reached over two
//! veth pairs — one for the node's broker traffic, one for its clients — so the broker link
//! can be cut (`ip link set .. down`) while the test still talks to the node. Removed (with
//! its interfaces) when dropped. Needs root and iproute2 (`ip`), as CI has.

use std::process::Command;

/// A network namespace with a broker link and a client link.
pub struct Host {
    pub ns: String,
    broker_if: String,
    client_if: String,
    /// The host side of the broker link (where the broker must listen).
    pub broker_ip: String,
    /// The namespace's address on the client link (where the node listens).
    pub node_ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip (iproute2) not found");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Host {
    /// Creates the namespace and both links (names and subnets chosen from the test's PID
    /// and a count of the hosts this process made, so that tests running at once in one
    /// process do not share them).
    pub fn new() -> Host {
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
        let id = std::process::id() % 10_000 * 10 + n;
        let x = id % 250;
        let ns = format!("scns{id}");
        let h = Host {
            ns: ns.clone(),
            broker_if: format!("scb{id}"),
            client_if: format!("scc{id}"),
            broker_ip: format!("10.201.{x}.1"),
            node_ip: format!("10.202.{x}.2"),
        };
        let _ = Command::new("ip").args(["netns", "del", &ns]).output(); // a leftover of a crash
        ip(&["netns", "add", &ns]);
        ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        for (host_if, net) in [(&h.broker_if, "10.201"), (&h.client_if, "10.202")] {
            let peer = format!("{host_if}n");
            let _ = Command::new("ip").args(["link", "del", host_if]).output();
            ip(&["link", "add", host_if, "type", "veth", "peer", "name", &peer]);
            ip(&["link", "set", &peer, "netns", &ns]);
            ip(&["addr", "add", &format!("{net}.{x}.1/30"), "dev", host_if]);
            ip(&["link", "set", host_if, "up"]);
            ip(&["netns", "exec", &ns, "ip", "addr", "add", &format!("{net}.{x}.2/30"), "dev", &peer]);
            ip(&["netns", "exec", &ns, "ip", "link", "set", &peer, "up"]);
        }
        h
    }

    /// Cuts the node off from the broker (its client link stays up).
    pub fn cut(&self) {
        ip(&["link", "set", &self.broker_if, "down"]);
    }

    /// Restores the broker link.
    pub fn heal(&self) {
        ip(&["link", "set", &self.broker_if, "up"]);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        for i in [&self.broker_if, &self.client_if] {
            let _ = Command::new("ip").args(["link", "del", i]).output();
        }
    }
}
