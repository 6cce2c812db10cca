//! The locked-memory check made before any shard starts.
//!
//! Each shard's io_uring registers `io_memory` bytes of buffers plus its rings, all locked
//! memory. Under a low `RLIMIT_MEMLOCK` (`ulimit -l 64` is a common default in containers)
//! the ring setup fails inside the shard's thread, after the server has already said it is
//! listening, and all one sees is "shard 0 panicked". Checking the limit up front turns that
//! into an error that says what to raise.

use crate::error::EngineError;

/// Locked memory one shard needs beyond its `io_memory` (rings and their bookkeeping),
/// measured: 256 KiB of io_memory failed under a 448 KiB limit and ran under 512 KiB.
pub const RING_OVERHEAD: usize = 256 << 10;

/// The soft `RLIMIT_MEMLOCK` in bytes; `None` when unlimited or unknown.
pub fn memlock_limit() -> Option<u64> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid out-pointer for a resource the kernel always knows.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0 || r.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(r.rlim_cur)
}

/// Fails with [`EngineError::Memlock`] when `limit` is below what a shard with `io_memory`
/// bytes of io_uring buffers needs.
pub fn check(limit: Option<u64>, io_memory: usize) -> Result<(), EngineError> {
    let need = (io_memory + RING_OVERHEAD) as u64;
    match limit {
        Some(have) if have < need => Err(EngineError::Memlock { have_kib: have >> 10, need_kib: need >> 10 }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_low_limit_is_refused_with_both_figures() {
        let e = check(Some(64 << 10), 256 << 10).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("64 KiB") && text.contains("512 KiB") && text.contains("ulimit -l"), "{text}");
        assert!(check(Some(512 << 10), 256 << 10).is_ok());
        assert!(check(None, 256 << 10).is_ok());
    }
}
