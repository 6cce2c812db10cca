//! What a crowd is asked to do ([`CrowdSpec`]: rooms, publishers, subscribers, churn,
//! periods) and how its controlling thread drives it ([`Control`]: setup → run → stop) and
//! gets its results ([`CrowdResult`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use super::Tally;
use crate::sim::Rng;

pub const SETUP: u8 = 0;
pub const RUN: u8 = 1;
pub const STOP: u8 = 2;

/// How a publisher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Keep-alive, pipelined `POST /api/publish` (a backend).
    Http,
    /// `{"op":"pub"}` over `/ws` (a device).
    Ws,
}

/// What a publisher's payload looks like (both start with the `t`/`p`/`s` stamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// `{"t":..,"p":..,"s":..,"kind":"probe"}`: small, for measuring.
    Probe,
    /// A simulated vehicle's GPS report (~200 bytes), see [`crate::sim`].
    Vehicle { entity: u64 },
}

#[derive(Debug, Clone)]
pub struct PublisherSpec {
    pub via: Via,
    /// Room ids (indexes into [`CrowdSpec::rooms`]); every tick goes to each of them.
    pub rooms: Vec<u32>,
    pub rate_hz: f64,
    pub payload: Payload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `/ws`, one `sub` per room, may resume with `since`.
    Mux,
    /// `/ws/<room>`: exactly one room, joined at the handshake.
    PerRoom,
}

#[derive(Debug, Clone)]
pub struct SubscriberSpec {
    pub proto: Proto,
    pub rooms: Vec<u32>,
}

/// Makes the spec of a fresh subscriber joining in place of one that left.
pub type Joiner = Box<dyn FnMut(&mut Rng, &SubscriberSpec) -> SubscriberSpec + Send>;

/// Connection churn: once a second, `per_second` live subscribers close; a mux one comes back
/// resuming with `since` with probability `resume_share`, every other one is replaced by a
/// fresh subscriber from `join`, so the population stays constant.
pub struct Churn {
    pub per_second: u32,
    pub resume_share: f64,
    pub join: Joiner,
}

pub struct CrowdSpec {
    pub dst: SocketAddr,
    pub rooms: Vec<String>,
    pub publishers: Vec<PublisherSpec>,
    pub subscribers: Vec<SubscriberSpec>,
    pub churn: Option<Churn>,
    /// Subscribers the server closes come back (resuming when they can); else they stay
    /// closed and what they miss counts as lost (abuse: a neighbour the attack got
    /// disconnected has lost those messages).
    pub reconnect: bool,
    /// Period starts in ns after the run's start (first = 0); the last period is open-ended.
    pub periods_ns: Vec<u64>,
    /// Attribute latency to the period of the intended send time (else of receipt).
    pub latency_by_send: bool,
    pub publish_for_ns: u64,
    /// Longest wait after publishing stops for what is still in flight.
    pub drain_ns: u64,
    /// Each period but the last is sent here as soon as it is over (soak's minute lines).
    pub periods_out: Option<Sender<(usize, Tally)>>,
    pub seed: u64,
}

/// What the controlling thread and the crowd share.
pub struct Control {
    pub phase: AtomicU8,
    /// Start of the run (monotonic ns), stored before `phase` becomes RUN.
    pub t0: AtomicU64,
    /// Subscribers with every room confirmed, and publishers connected, during setup.
    pub subs_ready: AtomicUsize,
    pub pubs_ready: AtomicUsize,
    pub setup_failures: AtomicUsize,
    pub first_error: Mutex<Option<String>>,
}

impl Control {
    pub fn new() -> Arc<Control> {
        Arc::new(Control {
            phase: AtomicU8::new(SETUP),
            t0: AtomicU64::new(0),
            subs_ready: AtomicUsize::new(0),
            pubs_ready: AtomicUsize::new(0),
            setup_failures: AtomicUsize::new(0),
            first_error: Mutex::new(None),
        })
    }

    pub fn error(&self, msg: impl FnOnce() -> String) {
        let mut e = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if e.is_none() {
            *e = Some(msg());
        }
    }

    /// Starts the run at `t0` (monotonic ns).
    pub fn start(&self, t0: u64) {
        self.t0.store(t0, SeqCst);
        self.phase.store(RUN, SeqCst);
    }
}

/// What a finished crowd returns: one [`Tally`] per period (those already sent on
/// `periods_out` are empty here) and how its drain ended.
pub struct CrowdResult {
    pub periods: Vec<Tally>,
    /// Every live subscription had every acknowledged message when the crowd stopped.
    pub drained: bool,
    pub drain_ns: u64,
}
