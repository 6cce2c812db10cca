//! Engine errors. Expected hot-path outcomes (a full outbox, a stopped peer) are cheap
//! variants; nothing here allocates on the fast path.

/// Errors the engine reports to its caller.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A configuration value is out of range.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// An executor could not be started (io_uring unavailable, memlock too low, ...).
    #[error("cannot start shard {shard}: {reason}")]
    Start { shard: usize, reason: String },
    /// The shard that owns the room has stopped; happens only during shutdown.
    #[error("shard {0} has stopped")]
    ShardStopped(usize),
    /// The locked-memory limit is too low for io_uring (see [`crate::memlock`]).
    #[error(
        "the locked-memory limit (ulimit -l) is {have_kib} KiB but each shard's io_uring needs about \
         {need_kib} KiB: raise it (`ulimit -l {need_kib}` or more; systemd LimitMEMLOCK=; docker \
         --ulimit memlock=-1)"
    )]
    Memlock { have_kib: u64, need_kib: u64 },
    /// A publish or subscribe would have created a room beyond the room limit.
    #[error(transparent)]
    TooManyRooms(#[from] crate::rooms::TooManyRooms),
    /// A shard thread panicked.
    #[error("shard {0} panicked")]
    Panicked(usize),
}
