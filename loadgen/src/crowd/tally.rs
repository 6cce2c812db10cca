//! What a crowd saw in one period (a soak minute, or an abuse run's warm-up / attack / after):
//! latency histogram and counters, and their serialisable summary.
//!
//! Counters are attributed to the period in which the crowd *noticed* them (receive time);
//! latencies to the period of receipt or, for `abuse`, of the intended send time (so a message
//! sent during an attack and delivered seconds later still counts against the attack).

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::{new_hist, Percentiles};

#[derive(Clone)]
pub struct Tally {
    /// Delivery latency (receive − intended send, ns) of live messages.
    pub lat: Histogram<u64>,
    /// How late the publishers actually sent (actual − intended, ns): large = loadgen trouble.
    pub send_lag: Histogram<u64>,
    /// Live messages received (each counted once per subscription), latency recorded.
    pub deliveries: u64,
    /// Messages received from history after a resume (not in `lat`: their delay is the outage).
    pub replayed: u64,
    pub duplicates: u64,
    /// Messages that never arrived and were not announced by a `gap` notice (silent holes,
    /// plus what was still missing when the drain ended).
    pub lost: u64,
    pub gap_notices: u64,
    pub gap_messages: u64,
    pub resets: u64,
    /// Subscribers closed by the crowd that came back resuming with `since` (mux), or any
    /// subscriber reconnecting after the server closed it.
    pub reconnects: u64,
    /// Subscribers that left for good, and the fresh ones that joined in their place.
    pub leaves: u64,
    pub joins: u64,
    /// Room subscriptions resumed with `since` (a `/ws` subscriber resumes each of its rooms).
    pub resumes: u64,
    pub resumes_verified: u64,
    pub resumes_via_gap: u64,
    pub resume_failures: u64,
    /// `sub` with `since` above the room's seq accepted without `reset` (DESIGN §3 / issue 7).
    pub since_ahead: u64,
    /// Connections of well-behaved clients the server closed (or that broke).
    pub disconnects: u64,
    pub publishes: u64,
    /// Publishes the server refused (HTTP status ≠ 200, or an `error` reply to `pub`).
    pub publish_refusals: u64,
    /// Publishes not sent because the publisher's connection was down.
    pub send_skipped: u64,
    /// `error` replies to subscribers.
    pub server_errors: u64,
    /// Frames that were neither a known reply nor a stamped message.
    pub unparsed: u64,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            lat: new_hist(),
            send_lag: new_hist(),
            deliveries: 0,
            replayed: 0,
            duplicates: 0,
            lost: 0,
            gap_notices: 0,
            gap_messages: 0,
            resets: 0,
            reconnects: 0,
            leaves: 0,
            joins: 0,
            resumes: 0,
            resumes_verified: 0,
            resumes_via_gap: 0,
            resume_failures: 0,
            since_ahead: 0,
            disconnects: 0,
            publishes: 0,
            publish_refusals: 0,
            send_skipped: 0,
            server_errors: 0,
            unparsed: 0,
        }
    }

    /// Adds `o` into `self` (histograms merged, counters summed).
    pub fn absorb(&mut self, o: &Tally) {
        self.lat.add(&o.lat).ok();
        self.send_lag.add(&o.send_lag).ok();
        let pairs: [(&mut u64, u64); 21] = [
            (&mut self.deliveries, o.deliveries),
            (&mut self.replayed, o.replayed),
            (&mut self.duplicates, o.duplicates),
            (&mut self.lost, o.lost),
            (&mut self.gap_notices, o.gap_notices),
            (&mut self.gap_messages, o.gap_messages),
            (&mut self.resets, o.resets),
            (&mut self.reconnects, o.reconnects),
            (&mut self.leaves, o.leaves),
            (&mut self.joins, o.joins),
            (&mut self.resumes, o.resumes),
            (&mut self.resumes_verified, o.resumes_verified),
            (&mut self.resumes_via_gap, o.resumes_via_gap),
            (&mut self.resume_failures, o.resume_failures),
            (&mut self.since_ahead, o.since_ahead),
            (&mut self.disconnects, o.disconnects),
            (&mut self.publishes, o.publishes),
            (&mut self.publish_refusals, o.publish_refusals),
            (&mut self.send_skipped, o.send_skipped),
            (&mut self.server_errors, o.server_errors),
            (&mut self.unparsed, o.unparsed),
        ];
        for (a, b) in pairs {
            *a += b;
        }
    }

    pub fn summary(&self) -> TallySummary {
        TallySummary {
            latency: Percentiles::of(&self.lat),
            send_lag: Percentiles::of(&self.send_lag),
            deliveries: self.deliveries,
            replayed: self.replayed,
            duplicates: self.duplicates,
            lost: self.lost,
            gap_notices: self.gap_notices,
            gap_messages: self.gap_messages,
            resets: self.resets,
            reconnects: self.reconnects,
            leaves: self.leaves,
            joins: self.joins,
            resumes: self.resumes,
            resumes_verified: self.resumes_verified,
            resumes_via_gap: self.resumes_via_gap,
            resume_failures: self.resume_failures,
            since_ahead: self.since_ahead,
            disconnects: self.disconnects,
            publishes: self.publishes,
            publish_refusals: self.publish_refusals,
            send_skipped: self.send_skipped,
            server_errors: self.server_errors,
            unparsed: self.unparsed,
        }
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

/// [`Tally`] with percentiles instead of histograms (µs), for JSON and tables.
#[derive(Debug, Clone, Serialize)]
pub struct TallySummary {
    pub latency: Percentiles,
    pub send_lag: Percentiles,
    pub deliveries: u64,
    pub replayed: u64,
    pub duplicates: u64,
    pub lost: u64,
    pub gap_notices: u64,
    pub gap_messages: u64,
    pub resets: u64,
    pub reconnects: u64,
    pub leaves: u64,
    pub joins: u64,
    pub resumes: u64,
    pub resumes_verified: u64,
    pub resumes_via_gap: u64,
    pub resume_failures: u64,
    pub since_ahead: u64,
    pub disconnects: u64,
    pub publishes: u64,
    pub publish_refusals: u64,
    pub send_skipped: u64,
    pub server_errors: u64,
    pub unparsed: u64,
}
