//! SIGINT/SIGTERM → the engine's stop flag. Everything after that (stop accepting, drain
//! the shards, close clients with 1001, flush, exit 0) happens on the shards themselves, in
//! [`crate::server`].

use shardcast_engine::StopFlag;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Starts a thread that sets `stop` on the first SIGINT or SIGTERM. A second signal exits
/// at once, for the impatient operator.
pub fn on_signals(stop: StopFlag) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let mut seen = 0;
        for sig in signals.forever() {
            seen += 1;
            if seen > 1 {
                tracing::warn!(sig, "second signal: exiting immediately");
                std::process::exit(130);
            }
            tracing::info!(sig, "signal received: shutting down gracefully");
            stop.stop();
        }
    })?;
    Ok(())
}
