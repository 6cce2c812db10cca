//! One listening socket per shard on the same address (`SO_REUSEPORT`), so the kernel
//! spreads new connections over the shards without any user-space hand-off.
//!
//! All sockets are bound here, before the shards start: with `--listen 127.0.0.1:0` the
//! first bind picks the port and the others reuse it, and a bind error is reported before
//! anything else runs.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// How long a busy port is probed again before start-up fails (see [`bind_reuseport`]).
pub const RESTART_GRACE: Duration = Duration::from_secs(2);

/// Binds `n` listeners on `addr` with `SO_REUSEPORT`; returns them and the bound address.
///
/// `SO_REUSEPORT` would also let a second process (same user) join the group and silently
/// take part of the connections, so an exclusive probe bind comes first: it fails with
/// "address in use" while anything listens on the port. The probe sets `SO_REUSEADDR`, so
/// a restart right after the previous process exited still binds despite TIME_WAIT.
///
/// A process killed with SIGKILL leaves its listening sockets open for a moment after it is
/// gone: its io_uring rings still hold the files until the kernel tears them down in the
/// background. So a busy port is probed again for up to [`RESTART_GRACE`] before giving up:
/// a restart right after a crash binds as soon as the port is free, and a second live
/// process on the port still fails, [`RESTART_GRACE`] later.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> std::io::Result<(Vec<TcpListener>, SocketAddr)> {
    let deadline = std::time::Instant::now() + RESTART_GRACE;
    let mut bound = loop {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        match probe.bind(&addr.into()) {
            Ok(()) => break probe.local_addr()?.as_socket().unwrap_or(addr),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Socket::new(Domain::for_address(bound), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        // Accepted sockets inherit it: every frame goes out at once, never held by Nagle.
        s.set_tcp_nodelay(true)?;
        s.bind(&bound.into())?;
        s.listen(4096)?;
        let l: TcpListener = s.into();
        bound = l.local_addr()?;
        out.push(l);
    }
    Ok((out, bound))
}

#[cfg(test)]
mod tests {
    #[test]
    fn port_zero_binds_every_shard_to_one_port() {
        let (ls, addr) = super::bind_reuseport("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_ne!(addr.port(), 0);
        assert!(ls.iter().all(|l| l.local_addr().unwrap() == addr));
    }

    #[test]
    fn a_second_bind_on_a_taken_port_fails() {
        let (_first, addr) = super::bind_reuseport("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let err = super::bind_reuseport(addr, 2).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    }

    #[test]
    fn rebinding_after_close_works_at_once() {
        let (first, addr) = super::bind_reuseport("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        drop(first);
        assert!(super::bind_reuseport(addr, 2).is_ok());
    }
}
