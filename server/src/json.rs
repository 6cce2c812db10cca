//! JSON validation and parsing with simd-json's scratch kept per thread.
//!
//! Why: `simd_json::to_borrowed_value` builds a fresh `Buffers` (structural indexes, string
//! and input buffers, stage-2 stack) for every call: counted at rooms-500, that was 3
//! `malloc` and 3 `realloc` of the ~35 allocator calls a published message cost, and a
//! room-per-URL message needed no value at all, only the answer "is it JSON". Here each
//! thread (a shard) keeps one `Buffers` and one input copy, and validation stops at
//! simd-json's tape.
//!
//! Invariants: which inputs are accepted, and the error for the others, are exactly
//! `simd_json::to_borrowed_value`'s: both paths run the same two stages on the same bytes
//! (the value is built from a tape those stages already validated). Memory: the scratch
//! grows to the largest input this thread parsed, which the callers bound (the message and
//! body size limits), and is kept for the thread's life — a few times the largest message,
//! per shard.

use std::cell::RefCell;

use simd_json::{BorrowedValue, Buffers};

thread_local! {
    /// This thread's simd-json buffers and its copy of the input being validated.
    static SCRATCH: RefCell<(Buffers, Vec<u8>)> = RefCell::new((Buffers::default(), Vec::new()));
}

/// Whether `bytes` is one JSON text, as [`parse`] would decide, without building a value
/// (and without touching `bytes`: simd-json rewrites its input, so it runs on a copy).
pub fn validate(bytes: &[u8]) -> Result<(), simd_json::Error> {
    SCRATCH.with(|s| {
        let (buffers, copy) = &mut *s.borrow_mut();
        copy.clear();
        copy.extend_from_slice(bytes);
        simd_json::to_tape_with_buffers(copy, buffers).map(drop)
    })
}

/// Parses `text` in place (simd-json unescapes strings into it) into a value borrowing it:
/// `simd_json::to_borrowed_value`, with this thread's buffers.
pub fn parse(text: &mut [u8]) -> Result<BorrowedValue<'_>, simd_json::Error> {
    SCRATCH.with(|s| simd_json::to_borrowed_value_with_buffers(text, &mut s.borrow_mut().0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same verdict and error as a fresh simd-json parse, on inputs that pass and fail
    /// in different stages, in an order that makes the scratch grow and shrink.
    #[test]
    fn agrees_with_a_fresh_parse() {
        let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
        let inputs: Vec<Vec<u8>> = [
            &br#"{"lat":52.5,"lon":13.4,"id":"v1"}"#[..],
            br#"{"a":"\u00e9\n","b":[1,2,{"c":null}]}"#,
            b"",
            b"   ",
            b"{",
            br#"{"a":1,}"#,
            b"[1,2",
            b"nul",
            br#""\ud800""#,
            b"1e400",
            b"18446744073709551616",
            br#"{"a":1} {"b":2}"#,
            b"\xff",
            deep.as_bytes(),
            br#"{"x":[true,false,null]}"#,
        ]
        .iter()
        .map(|b| b.to_vec())
        .collect();
        for input in &inputs {
            let fresh =
                simd_json::to_borrowed_value(&mut input.clone()).map(|_| ()).map_err(|e| e.to_string());
            let ours = validate(input).map_err(|e| e.to_string());
            assert_eq!(ours, fresh, "validate({:?})", String::from_utf8_lossy(input));
            let mut a = input.clone();
            let mut b = input.clone();
            let parsed = parse(&mut a).map_err(|e| e.to_string());
            let fresh_value = simd_json::to_borrowed_value(&mut b).map_err(|e| e.to_string());
            assert_eq!(parsed, fresh_value, "parse({:?})", String::from_utf8_lossy(input));
        }
    }

    /// Validation leaves its input as it was (simd-json unescapes in place).
    #[test]
    fn validate_does_not_touch_its_input() {
        let input = br#"{"s":"a\nb\u0041"}"#.to_vec();
        let before = input.clone();
        validate(&input).unwrap();
        assert_eq!(input, before);
    }
}
