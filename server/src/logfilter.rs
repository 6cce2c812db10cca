//! The `--log` filter, parsed safely.
//!
//! tracing-subscriber 0.3.23 parses each comma-separated directive with offsets taken from
//! the *trimmed* directive but slices the untrimmed one. Whitespace around a directive
//! therefore shifts every slice: `" info"` silently becomes a filter for a target named
//! `" info"`, `"info, warn"` turns `warn` into a target, and with a multi-byte character
//! (`"info, ü["`) the slice lands inside it and the parser panics — at start-up, from a
//! flag, an environment variable or the config file. Found by the `config_toml` fuzz
//! target. We trim every directive (and drop empty ones) before the parser sees them.

use tracing_subscriber::filter::{EnvFilter, ParseError};

/// Parses a filter in tracing's `EnvFilter` syntax, ignoring whitespace around directives.
pub fn log_filter(spec: &str) -> Result<EnvFilter, ParseError> {
    let directives: Vec<&str> = spec.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    EnvFilter::try_new(directives.join(","))
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use crate::config::Config;

    #[test]
    fn whitespace_around_directives_is_ignored() {
        assert_eq!(log_filter(" info").unwrap().to_string(), "info");
        assert_eq!(
            log_filter("info, shardcast_server=debug ,").unwrap().to_string(),
            "shardcast_server=debug,info"
        );
    }

    /// The `config_toml` fuzz target's crash: a panic inside tracing-subscriber instead of
    /// an "invalid log" error.
    #[test]
    fn a_multibyte_filter_is_an_error_not_a_panic() {
        assert!(log_filter("info, ü[").is_err());
        let e = Config::from_toml_str("log = \"info, ü[\"").unwrap_err();
        assert!(e.to_string().contains("invalid log"), "{e}");
        assert_eq!(Config::from_toml_str("log = \" info, warn\"").unwrap().log, " info, warn");
    }
}
