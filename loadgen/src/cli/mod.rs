//! Command-line pieces of the `shardcast-loadgen` binary that are not the measurement itself:
//! the `abuse` and `soak` commands' flags and handlers, and helpers shared by all commands.
//! Bin-only (declared by main.rs, not lib.rs), so the library stays free of argument parsing.

use std::time::Duration;

pub mod abuse;
pub mod soak;

/// Durations as people type them: `10s`, `500ms`, `2m`, `1.5` (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len()));
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?} (use e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" | "µs" => v / 1e6,
        "m" | "min" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (s, ms, us, m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// The command as typed, shell-quoted where needed, for recorded READMEs: a recorded run
/// can be repeated by pasting it.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@".contains(c)) {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `--note`s as a Markdown list for a recorded README.
pub fn notes_md(notes: &[String]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let mut md = String::from("Notes:\n");
    for n in notes {
        md.push_str(&format!("- {n}\n"));
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("3h").is_err() && parse_duration("s").is_err());
    }
}
