//! What a crowd saw in one period (a soak minute, or an abuse run's warm-up / attack / after):
//! latency histogram and counters, and their serialisable summary.
//!
//! Counters are attributed to the period in which the crowd *noticed* them (receive time);
//! latencies to the period of receipt or, for `abuse`, of the intended send time (so a message
//! sent during an attack and delivered seconds later still counts against the attack).

use hdrhistogram::Histogram;
use serde::Serialize;
use std::ops::{Deref, DerefMut};

use crate::stats::{new_hist, Percentiles};

/// Declares [`Counts`] and its field-by-field sum from one list, so a new counter is
/// written once and cannot be left out of the sum.
macro_rules! counts {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The counters of a [`Tally`] (and of its [`TallySummary`]).
        #[derive(Debug, Clone, Default, Serialize)]
        pub struct Counts {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Counts {
            /// Adds every counter of `o` into `self`.
            pub fn add(&mut self, o: &Counts) {
                $(self.$name += o.$name;)*
            }
        }
    };
}

counts! {
    /// Live messages received (each counted once per subscription), latency recorded.
    deliveries,
    /// Messages received from history after a resume (not in `lat`: their delay is the outage).
    replayed,
    duplicates,
    /// Messages that never arrived and were not announced by a `gap` notice (silent holes,
    /// plus what was still missing when the drain ended).
    lost,
    gap_notices,
    gap_messages,
    resets,
    /// Subscribers closed by the crowd that came back resuming with `since` (mux), or any
    /// subscriber reconnecting after the server closed it.
    reconnects,
    /// Subscribers that left for good, and the fresh ones that joined in their place.
    leaves,
    joins,
    /// Room subscriptions resumed with `since` (a `/ws` subscriber resumes each of its rooms).
    resumes,
    resumes_verified,
    resumes_via_gap,
    resume_failures,
    /// `sub` with `since` above the room's seq accepted without `reset` (DESIGN §3 / issue 7).
    since_ahead,
    /// Connections of well-behaved clients the server closed (or that broke).
    disconnects,
    publishes,
    /// Publishes the server refused (HTTP status ≠ 200, or an `error` reply to `pub`).
    publish_refusals,
    /// Publishes not sent because the publisher's connection was down.
    send_skipped,
    /// `error` replies to subscribers.
    server_errors,
    /// Frames that were neither a known reply nor a stamped message.
    unparsed,
}

/// A period's latency histograms and [`Counts`]; the counters read as fields of the tally
/// itself (`tally.lost`) through `Deref`.
#[derive(Clone)]
pub struct Tally {
    /// Delivery latency (receive − intended send, ns) of live messages.
    pub lat: Histogram<u64>,
    /// How late the publishers actually sent (actual − intended, ns): large = loadgen trouble.
    pub send_lag: Histogram<u64>,
    pub counts: Counts,
}

impl Tally {
    pub fn new() -> Tally {
        Tally { lat: new_hist(), send_lag: new_hist(), counts: Counts::default() }
    }

    /// Adds `o` into `self` (histograms merged, counters summed).
    pub fn absorb(&mut self, o: &Tally) {
        self.lat.add(&o.lat).ok();
        self.send_lag.add(&o.send_lag).ok();
        self.counts.add(&o.counts);
    }

    pub fn summary(&self) -> TallySummary {
        TallySummary {
            latency: Percentiles::of(&self.lat),
            send_lag: Percentiles::of(&self.send_lag),
            counts: self.counts.clone(),
        }
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Deref for Tally {
    type Target = Counts;
    fn deref(&self) -> &Counts {
        &self.counts
    }
}

impl DerefMut for Tally {
    fn deref_mut(&mut self) -> &mut Counts {
        &mut self.counts
    }
}

/// [`Tally`] with percentiles instead of histograms (µs), for JSON and tables; the counters
/// serialise beside them, as fields of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct TallySummary {
    pub latency: Percentiles,
    pub send_lag: Percentiles,
    #[serde(flatten)]
    pub counts: Counts,
}

impl Deref for TallySummary {
    type Target = Counts;
    fn deref(&self) -> &Counts {
        &self.counts
    }
}

impl DerefMut for TallySummary {
    fn deref_mut(&mut self) -> &mut Counts {
        &mut self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorb_sums_every_counter_and_the_summary_keeps_them_flat() {
        let mut a = Tally::new();
        a.lost = 2;
        a.unparsed = 1;
        let mut b = Tally::new();
        b.lost = 3;
        b.deliveries = 7;
        a.absorb(&b);
        assert_eq!((a.lost, a.deliveries, a.unparsed), (5, 7, 1));
        // Counters serialise beside the percentiles, as they did before `Counts` existed.
        let v = serde_json::to_value(a.summary()).unwrap();
        assert_eq!((v["lost"].as_u64(), v["deliveries"].as_u64()), (Some(5), Some(7)));
        assert!(v["latency"].is_object() && v.get("counts").is_none());
    }
}
