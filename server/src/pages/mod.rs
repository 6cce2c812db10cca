//! The web pages: an index at `/` and one small app per demo (`/vehicles`, `/flights`,
//! `/traffic`, `/orders`, `/orders/<id>`, `/iot`), plus the original canvas map at `/map`.
//!
//! Everything is compiled into the binary (`include_bytes!`), so a bare `shardcast` shows live
//! apps with no files to deploy and no network: the pages import the real JavaScript client
//! from `/static/client/` (the files of `clients/js`), draw maps with a vendored Leaflet and,
//! unless told `?tiles=osm`, an offline base layer (the demo's street grid, world outlines).
//! No page references anything outside this server except those optional OSM tiles.

mod assets;

pub use assets::static_asset;

/// `static/map.html`: the original self-contained canvas map of `fleet:demo` (or `?room=`).
pub const MAP_HTML: &str = include_str!("../../static/map.html");

/// Content type of every HTML page.
pub const HTML: &str = "text/html; charset=utf-8";

/// `static/favicon.svg`, served at `/favicon.svg` and `/favicon.ico` (browsers ask for the
/// latter on their own; a 404 there is an error in every page's console).
pub const FAVICON_SVG: &str = include_str!("../../static/favicon.svg");

/// Content type to serve [`FAVICON_SVG`] with.
pub const FAVICON_CONTENT_TYPE: &str = "image/svg+xml";

const INDEX_HTML: &str = include_str!("../../static/index.html");
const VEHICLES_HTML: &str = include_str!("../../static/vehicles.html");
const FLIGHTS_HTML: &str = include_str!("../../static/flights.html");
const TRAFFIC_HTML: &str = include_str!("../../static/traffic.html");
const ORDERS_HTML: &str = include_str!("../../static/orders.html");
const ORDER_HTML: &str = include_str!("../../static/order.html");
const IOT_HTML: &str = include_str!("../../static/iot.html");

/// The HTML page at `path` (without the query), if there is one.
pub fn page(path: &str) -> Option<&'static str> {
    Some(match path {
        "/" | "/index.html" => INDEX_HTML,
        "/map" => MAP_HTML,
        "/vehicles" => VEHICLES_HTML,
        "/flights" => FLIGHTS_HTML,
        "/traffic" => TRAFFIC_HTML,
        "/orders" => ORDERS_HTML,
        "/iot" => IOT_HTML,
        p => {
            let id = p.strip_prefix("/orders/")?;
            let ok = !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            return ok.then_some(ORDER_HTML);
        }
    })
}

/// Every page route (for tests and the index).
pub const PAGES: [&str; 8] =
    ["/", "/map", "/vehicles", "/flights", "/traffic", "/orders", "/orders/1001", "/iot"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_self_contained() {
        for p in PAGES {
            let html = page(p).unwrap();
            assert!(html.starts_with("<!doctype html>"), "{p}");
            // Nothing fetched from elsewhere: every reference is a path on this server.
            for needle in ["http://", "https://", "//cdn", "src=\"//", "href=\"//"] {
                assert!(!html.contains(needle), "{p}: external reference {needle:?}");
            }
            assert!(html.lines().count() < 250, "{p}");
        }
        for (path, body) in assets::ASSETS {
            if path.ends_with(".js") && !path.starts_with("vendor/") {
                let js = std::str::from_utf8(body).unwrap();
                // The one external URL: OpenStreetMap tiles, used only when asked (`?tiles=osm`).
                let external = js.matches("https://").count();
                let osm = js.matches("https://tile.openstreetmap.org/").count()
                    + js.matches("https://www.openstreetmap.org/copyright").count();
                assert_eq!(external, osm, "{path}");
            }
        }
    }

    #[test]
    fn unknown_pages_and_bad_order_ids_are_not_pages() {
        assert!(page("/nope").is_none());
        assert!(page("/orders/").is_none());
        assert!(page("/orders/a/b").is_none());
        assert!(page("/orders/<x>").is_none());
        assert_eq!(page("/orders/1042"), Some(ORDER_HTML));
    }

    #[test]
    fn old_map_speaks_the_wire_contract() {
        assert!(MAP_HTML.contains("<canvas"));
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
