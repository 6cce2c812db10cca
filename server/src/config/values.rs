//! Human-friendly values: durations with a unit, sizes with a unit, TTLs that may be "off";
//! parsed the same way from flags, environment and TOML.

use serde::Deserialize;
use std::time::Duration;

use super::Ttl;

/// Parses `500ms`, `5s`, `2m`, `1h` (a whole number and a unit; the unit is mandatory so
/// that `5` never silently means 5 ms to one reader and 5 s to another).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 5s, 2m, 1h"))?;
    let mult = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("invalid duration {s:?}: unit must be ms, s, m or h")),
    };
    n.checked_mul(mult).map(Duration::from_millis).ok_or_else(|| format!("duration {s:?} is too large"))
}

pub fn parse_ttl(s: &str) -> Result<Ttl, String> {
    match s.trim() {
        "off" | "none" => Ok(Ttl(None)),
        s => parse_duration(s).map(|d| Ttl(Some(d))),
    }
}

/// Parses a byte size: `65536`, `64KiB`, `1MiB`, `1GiB` (also KB/MB/GB = powers of 1000).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize =
        num.parse().map_err(|_| format!("invalid size {s:?}: expected e.g. 65536, 64KiB, 1MiB"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("invalid size {s:?}: unit must be B, KiB, MiB, GiB, KB, MB or GB")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"))
}

/// A listen address: `IP:PORT`, or `HOST:PORT` resolved now (`localhost:8080` is
/// 127.0.0.1:8080: an IPv4 address is preferred, since the server binds one address).
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = s.trim().parse() {
        return Ok(a);
    }
    let addrs: Vec<_> = s
        .trim()
        .to_socket_addrs()
        .map_err(|e| format!("invalid address {s:?}: expected IP:PORT or HOST:PORT ({e})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// A listen address in TOML (see [`parse_listen`]).
#[derive(Debug, Clone, Copy)]
pub struct Listen(pub std::net::SocketAddr);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected an address such as \"127.0.0.1:8080\""))?;
        parse_listen(&s).map(Listen).map_err(serde::de::Error::custom)
    }
}

/// A size in TOML: an integer (bytes) or a string with a unit.
#[derive(Debug, Clone, Copy)]
pub struct Size(pub usize);
/// A duration in TOML: a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Human(pub Duration);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a size such as 65536 or \"64KiB\""))?
        {
            Raw::N(n) => usize::try_from(n).map(Size).map_err(serde::de::Error::custom),
            Raw::S(s) => parse_size(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for Human {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a duration string such as \"5s\""))?;
        parse_duration(&s).map(Human).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a duration such as \"10m\" or \"off\""))?;
        parse_ttl(&s).map_err(serde::de::Error::custom)
    }
}
