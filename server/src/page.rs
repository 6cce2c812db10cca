//! The live map page served at `GET /`.
//!
//! Compiled into the binary so a bare `shardcast` shows something moving with no files to
//! deploy. The page is self-contained (no CDN, no map tiles): it must work offline, in tests,
//! and behind a strict Content-Security-Policy.

/// `static/map.html`: subscribes to `fleet:demo` (or `?room=`) over `/ws` and draws it.
pub const MAP_HTML: &str = include_str!("../static/map.html");

/// Content type to serve [`MAP_HTML`] with.
pub const MAP_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// `static/favicon.svg`, served at `/favicon.svg` and `/favicon.ico` (browsers ask for the
/// latter on their own; a 404 there is an error in every page's console).
pub const FAVICON_SVG: &str = include_str!("../static/favicon.svg");

/// Content type to serve [`FAVICON_SVG`] with.
pub const FAVICON_CONTENT_TYPE: &str = "image/svg+xml";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained() {
        assert!(MAP_HTML.starts_with("<!doctype html>"));
        assert!(MAP_HTML.contains("<canvas"));
        // No external resources: nothing fetched over the network but our own /ws.
        for needle in ["http://", "https://", "//cdn", "<link", "src="] {
            assert!(!MAP_HTML.contains(needle), "external reference {needle:?}");
        }
        assert!(MAP_HTML.lines().count() < 250);
    }

    #[test]
    fn speaks_the_wire_contract() {
        for needle in [
            r#""fleet:demo""#,
            r#"op: "sub""#,
            "snapshot = true",
            "op.since = lastSeq",
            r#"msg.op === "gap""#,
            r#"msg.op === "reset""#,
            "op.epoch = epoch",
            r#"location.host + "/ws""#,
            r#"params.get("room")"#,
        ] {
            assert!(MAP_HTML.contains(needle), "missing {needle:?}");
        }
    }
}
