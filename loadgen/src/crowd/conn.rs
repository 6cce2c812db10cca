//! One connection of the crowd and its socket side: non-blocking connect, the upgrade request,
//! buffered writes, and reads that keep only an incomplete tail between calls.
//!
//! Invariant: `leftover` holds at most one incomplete frame or HTTP response (the tail of the
//! last read); complete ones are always consumed by the caller before the next read.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use crate::sim::Rng;
use crate::sys;
use crate::ws;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CSt {
    Connecting,
    /// Upgrade request sent, waiting for `101`.
    Handshake,
    Open,
}

/// Whose connection this is (index into the crowd's subscribers or publishers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Sub(usize),
    Pub(usize),
}

pub(super) struct Conn {
    pub(super) fd: RawFd,
    pub(super) st: CSt,
    pub(super) role: Role,
    /// Plain HTTP (backend publisher), no upgrade.
    pub(super) http: bool,
    /// Request path of the upgrade (`/ws` or `/ws/<room>`).
    pub(super) path: String,
    pub(super) accept: String,
    pub(super) out: Vec<u8>,
    pub(super) leftover: Vec<u8>,
    /// Payload of a fragmented message being reassembled.
    pub(super) frag: Vec<u8>,
    /// Registered for EPOLLOUT (there is unsent output).
    pub(super) want_out: bool,
}

/// Outcome of one read.
pub(super) enum ReadOutcome {
    /// `rb[..n]` holds the previous tail followed by the new bytes.
    Data(usize),
    WouldBlock,
    Eof,
    Failed(io::Error),
}

impl Conn {
    /// Starts a non-blocking connect; the connection is usable once it is writable.
    pub(super) fn start(dst: SocketAddr, role: Role, http: bool, path: String) -> io::Result<Conn> {
        let fd = sys::connect_nonblocking(dst, None)?;
        Ok(Conn {
            fd,
            st: CSt::Connecting,
            role,
            http,
            path,
            accept: String::new(),
            out: Vec::new(),
            leftover: Vec::new(),
            frag: Vec::new(),
            want_out: true,
        })
    }

    /// The TCP connect finished: queue the upgrade request (WebSocket) or become usable (HTTP).
    pub(super) fn connected(&mut self, host: &str, port: u16, rng: &mut Rng) -> io::Result<()> {
        sys::socket_error(self.fd)?;
        if self.http {
            self.st = CSt::Open;
            return Ok(());
        }
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        key[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let url = ws::WsUrl { host: host.to_string(), port, path: self.path.clone() };
        let (req, accept) = ws::handshake_request(&url, key);
        self.accept = accept;
        self.out.extend_from_slice(&req);
        self.st = CSt::Handshake;
        Ok(())
    }

    /// Writes as much queued output as the socket takes.
    pub(super) fn write_out(&mut self) -> io::Result<()> {
        sys::send_pending(self.fd, &mut self.out)
    }

    /// Reads once into `rb` after the kept tail (growing `rb` when a frame needs it).
    pub(super) fn read_into(&mut self, rb: &mut Vec<u8>) -> ReadOutcome {
        let l = self.leftover.len();
        if l + 16 * 1024 > rb.len() {
            rb.resize((l + 16 * 1024).max(rb.len() * 2), 0);
        }
        rb[..l].copy_from_slice(&self.leftover);
        self.leftover.clear();
        loop {
            match sys::read(self.fd, &mut rb[l..]) {
                Ok(0) => return ReadOutcome::Eof,
                Ok(n) => return ReadOutcome::Data(l + n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.leftover.extend_from_slice(&rb[..l]);
                    return ReadOutcome::WouldBlock;
                }
                Err(e) => return ReadOutcome::Failed(e),
            }
        }
    }

    /// Queues a masked text frame whose payload `fill` appends.
    pub(super) fn send_text(&mut self, rng: &mut Rng, fill: impl FnOnce(&mut Vec<u8>)) {
        let mask = (rng.next_u64() as u32).to_ne_bytes();
        ws::encode_client_text_with(&mut self.out, mask, fill);
    }

    /// Queues a masked control or data frame.
    pub(super) fn send_frame(&mut self, rng: &mut Rng, opcode: u8, payload: &[u8]) {
        let mask = (rng.next_u64() as u32).to_ne_bytes();
        ws::encode_client_frame(&mut self.out, opcode, payload, mask);
    }
}

impl Drop for Conn {
    /// RST, not FIN: churned and finished clients leave no TIME_WAIT behind.
    fn drop(&mut self) {
        if self.fd >= 0 {
            sys::close_abort(self.fd);
        }
    }
}
