//! A boundary scanner for the top-level members of a JSON object, and field lookups on it.
//!
//! Why here: the server reads a few top-level fields of every published payload (the
//! namespace `key`; the owner reads the `geo` and status fields) without building a tree —
//! the payload is forwarded as the exact bytes published, so a scan that finds spans is all
//! it needs. The scanner finds boundaries only (strings with escapes, nested containers,
//! scalars) and does not fully validate: the server validates whole texts with simd-json
//! before anything reaches the engine. Fuzzed by the server's `client_op` target.

use std::ops::Range;

/// Whether the raw key span (with quotes) equals `name` once unescaped.
pub fn key_is(text: &[u8], key: &Range<usize>, name: &str) -> bool {
    let raw = &text[key.clone()];
    if !raw.contains(&b'\\') {
        return &raw[1..raw.len() - 1] == name.as_bytes();
    }
    serde_json::from_slice::<String>(raw).is_ok_and(|k| k == name)
}

/// A member of an object: (key span including quotes, value span).
pub type Member = (Range<usize>, Range<usize>);

/// Iterator over the top-level members of a JSON object: `(key span incl. quotes, value span)`.
///
/// It finds boundaries only — strings (with escapes), nested containers, scalars — and does
/// not fully validate; callers validate the whole text with simd-json.
pub struct Fields<'a> {
    b: &'a [u8],
    i: usize,
    state: u8, // 0 = before '{', 1 = in object, 2 = done
}

impl<'a> Fields<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Fields { b, i: 0, state: 0 }
    }

    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), &'static str> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err("unexpected character")
        }
    }

    fn member(&mut self) -> Result<Option<Member>, &'static str> {
        if self.state == 0 {
            self.expect(b'{').map_err(|_| "expected a JSON object")?;
            self.state = 1;
            self.ws();
            if self.b.get(self.i) == Some(&b'}') {
                return Ok(None);
            }
        } else {
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => return Ok(None),
                _ => return Err("expected ',' or '}'"),
            }
        }
        self.ws();
        if self.b.get(self.i) != Some(&b'"') {
            return Err("expected a string key");
        }
        let k0 = self.i;
        self.i = skip_value(self.b, self.i)?;
        let key = k0..self.i;
        self.expect(b':')?;
        self.ws();
        let v0 = self.i;
        self.i = skip_value(self.b, self.i)?;
        Ok(Some((key, v0..self.i)))
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<Member, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state == 2 {
            return None;
        }
        match self.member() {
            Ok(Some(kv)) => Some(Ok(kv)),
            Ok(None) => {
                self.state = 2;
                None
            }
            Err(e) => {
                self.state = 2;
                Some(Err(e))
            }
        }
    }
}

/// Returns the end (exclusive) of the JSON value starting at `b[start]`.
pub fn skip_value(b: &[u8], start: usize) -> Result<usize, &'static str> {
    let mut i = start;
    let mut depth = 0usize;
    loop {
        let c = *b.get(i).ok_or("unexpected end of input")?;
        match c {
            b'"' => {
                i += 1;
                loop {
                    match *b.get(i).ok_or("unterminated string")? {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                if depth == 0 {
                    return Err("unbalanced bracket");
                }
                depth -= 1;
                i += 1;
            }
            _ if depth > 0 => i += 1,
            _ => {
                // Scalar at top level: number or literal, up to a delimiter.
                while b
                    .get(i)
                    .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                {
                    i += 1;
                }
                return if i == start { Err("expected a value") } else { Ok(i) };
            }
        }
        if depth == 0 {
            return Ok(i);
        }
    }
}
