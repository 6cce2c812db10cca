//! Command-line pieces of the `shardcast-loadgen` binary that are not the measurement itself:
//! the `abuse` and `soak` commands' flags and handlers, and helpers shared by all commands.
//! Bin-only (declared by main.rs, not lib.rs), so the library stays free of argument parsing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

pub mod abuse;
pub mod soak;
pub mod tracking;

/// The measurement window of `run` and `tracking`: warm-up, window, drain, connect limit.
#[derive(clap::Args, Debug, Clone)]
pub struct Window {
    /// Warm-up excluded from the figures (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Measurement window after the warm-up (the run always ends by itself).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// After the window, wait at most this long for in-flight deliveries; later ones count as lost.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Give up on connections not set up (handshake + subscriptions) within this time.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

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

/// `--json`, `--record` and `--note`: where every command's results go.
#[derive(clap::Args, Clone)]
pub struct Output {
    /// Write everything as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Record into DIR/<date>-<name>/: README.md with command, commit, machine and the
    /// printed results; summary.json; the command's CSV and plots. Usually `--record results`.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// A note for the recorded README (repeatable), e.g. how each server was started.
    #[arg(long = "note", value_name = "TEXT")]
    pub notes: Vec<String>,
}

impl Output {
    /// Writes `json` to `--json`; with `--record DIR`, calls `record(DIR, command line,
    /// notes as Markdown)` and says which folder it wrote.
    pub fn emit(
        &self,
        json: &serde_json::Value,
        record: impl FnOnce(&Path, &str, &str) -> Result<PathBuf>,
    ) -> Result<()> {
        if let Some(path) = &self.json {
            std::fs::write(path, serde_json::to_string_pretty(json)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(dir) = &self.record {
            let out = record(dir, &command_line(), &notes_md(&self.notes))?;
            println!("recorded in {}", out.display());
        }
        Ok(())
    }
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
