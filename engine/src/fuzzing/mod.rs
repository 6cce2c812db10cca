//! Fuzz harnesses: plain functions that take the fuzzer's bytes, drive pure engine logic and
//! panic when an invariant breaks.
//!
//! They live in the crate (not in `fuzz/`) so that one definition serves both the libFuzzer
//! targets (`fuzz/fuzz_targets/*.rs`, nightly, each a one-liner) and the corpus replay that CI
//! runs on stable (`engine/tests/fuzz_corpus.rs`). Inputs are decoded by hand with [`Input`]
//! so the crate gains no dependency. Not part of the public API.

mod client;
mod model;
mod seeds;

pub use model::engine_model;
pub use seeds::engine_model_seeds;

use std::path::Path;

/// A cursor over fuzzer bytes. Reads past the end yield zeros, so every input decodes to
/// something and the fuzzer can grow an input from any prefix.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// No bytes left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Bytes left.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn byte(&mut self) -> u8 {
        let (&b, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        b
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A value in `0..n` from one byte (`n` ≤ 256; 0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let b = self.byte() as usize;
        if n == 0 {
            0
        } else {
            b % n
        }
    }

    /// Little-endian, from two bytes.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Little-endian, from eight bytes.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        b.iter_mut().for_each(|x| *x = self.byte());
        u64::from_le_bytes(b)
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A length-prefixed byte string: one length byte (at most `max`), then the bytes.
    pub fn string(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1);
        self.bytes(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Runs `harness` on every file of the corpus directory `dir` (CI's regression replay of
/// `fuzz/corpus/<target>`), then on `seeds`. Panics naming every input that failed, after
/// trying them all; also panics if `dir` holds no inputs, so a moved corpus cannot pass
/// silently.
pub fn replay_dir(dir: &Path, seeds: &[(&str, Vec<u8>)], harness: fn(&[u8])) {
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|f| {
            let path = f.expect("corpus entry").path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), data)
        })
        .collect();
    assert!(!inputs.is_empty(), "corpus {} is empty", dir.display());
    inputs.sort();
    inputs.extend(seeds.iter().map(|(name, data)| (format!("built-in seed {name}"), data.clone())));
    let failed: Vec<&str> = inputs
        .iter()
        .filter(|(_, data)| std::panic::catch_unwind(|| harness(data)).is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(failed.is_empty(), "{} of {} inputs failed:\n{}", failed.len(), inputs.len(), failed.join("\n"));
}

/// Writes `seeds` into `dir` as `seed-<name>` (see `fuzz/README.md`).
pub fn write_seeds(dir: &Path, seeds: &[(&str, Vec<u8>)]) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (name, data) in seeds {
        let path = dir.join(format!("seed-{name}"));
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::Input;

    #[test]
    fn input_reads_zeros_past_the_end() {
        let mut i = Input::new(&[1, 2, 3]);
        assert_eq!(i.u16(), 0x0201);
        assert_eq!(i.bytes(5), &[3]);
        assert!(i.is_empty());
        assert_eq!((i.byte(), i.u64(), i.below(7)), (0, 0, 0));
    }
}
