//! Room epochs: a short random name for one run of a room's sequence.
//!
//! Why: a room's `seq` restarts at 1 whenever the room is created again — after it was
//! evicted (retained-bytes budget), expired (room TTL) or the server restarted (no
//! persistence). A client that resumes with `since` must be able to tell "seq 40 of the room
//! I knew" from "seq 40 of a new room of the same name". Every room therefore carries an
//! [`Epoch`], fixed when the room is created and never changed while it lives; a client
//! sends the epoch it knows next to `since`, and a mismatch earns it a `reset` notice instead
//! of a silent, wrong "up to date".
//!
//! Invariants: an epoch is exactly [`Epoch::LEN`] bytes of `0-9 A-Z a-z` (so it needs no
//! JSON escaping and is compared byte for byte); two epochs of the same room name differ
//! except with probability about 62⁻¹⁰. Epochs are not secrets: a cheap per-shard
//! generator ([`EpochRng`], splitmix64 seeded from the clock, the process id and the shard
//! id) is enough, and no dependency is needed.

use std::fmt;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The epoch of one room incarnation: [`Epoch::LEN`] base62 characters, stored inline
/// (no heap), `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch([u8; Epoch::LEN]);

impl Epoch {
    /// Characters in an epoch.
    pub const LEN: usize = 10;

    /// The epoch spelled by the low bits of `x` (62¹⁰ ≈ 2⁵⁹·⁶ values).
    pub fn from_u64(mut x: u64) -> Self {
        let mut b = [0u8; Self::LEN];
        for c in b.iter_mut() {
            *c = ALPHABET[(x % 62) as usize];
            x /= 62;
        }
        Epoch(b)
    }

    /// The epoch as text.
    pub fn as_str(&self) -> &str {
        // The bytes come from ALPHABET only: always ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The epoch spelled by `text`, if it is one (exactly [`Epoch::LEN`] base62
    /// characters): how a node reads an epoch another node chose (cluster mode).
    pub fn parse(text: &str) -> Option<Self> {
        let b: [u8; Self::LEN] = text.as_bytes().try_into().ok()?;
        b.iter().all(|c| c.is_ascii_alphanumeric()).then_some(Epoch(b))
    }

    /// Whether a client's epoch text names this epoch.
    pub fn matches(&self, text: &str) -> bool {
        self.0 == text.as_bytes()
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epoch({})", self.as_str())
    }
}

/// A splitmix64 generator: one per shard, so drawing an epoch is a few arithmetic
/// operations and never crosses cores.
#[derive(Debug, Clone)]
pub struct EpochRng(u64);

impl EpochRng {
    /// A generator with a fixed seed (tests).
    pub fn with_seed(seed: u64) -> Self {
        EpochRng(seed)
    }

    /// A generator seeded from the wall clock, the process id and `shard`, so restarts and
    /// shards draw different sequences.
    pub fn for_shard(shard: usize) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let pid = std::process::id() as u64;
        let mut rng =
            EpochRng(nanos ^ pid.rotate_left(32) ^ (shard as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        rng.next_u64(); // mix the seed once
        rng
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A fresh epoch.
    pub fn epoch(&mut self) -> Epoch {
        Epoch::from_u64(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_ten_base62_chars_and_differ() {
        let mut rng = EpochRng::with_seed(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let e = rng.epoch();
            assert_eq!(e.as_str().len(), Epoch::LEN);
            assert!(e.as_str().bytes().all(|b| b.is_ascii_alphanumeric()), "{e}");
            assert!(seen.insert(e), "repeated epoch {e}");
        }
    }

    #[test]
    fn matching_is_exact() {
        let e = Epoch::from_u64(0);
        assert_eq!(e.as_str(), "0000000000");
        assert!(e.matches("0000000000"));
        assert!(!e.matches("000000000"));
        assert!(!e.matches("00000000000"));
        assert_eq!(Epoch::from_u64(61).as_str(), "z000000000");
    }

    #[test]
    fn shards_draw_different_sequences() {
        let (mut a, mut b) = (EpochRng::for_shard(0), EpochRng::for_shard(1));
        assert_ne!(a.epoch(), b.epoch());
    }
}
