//! The web apps over real HTTP: every page and every embedded file answers 200 with its
//! content type; what is not there is a 404.

mod common;

use common::*;

#[test]
fn every_page_and_static_file_is_served_with_its_content_type() {
    let s = Server::start(&["--shards", "1"]);
    let html = "text/html; charset=utf-8";
    let js = "text/javascript; charset=utf-8";
    for (path, content_type) in [
        ("/", html),
        ("/index.html", html),
        ("/map", html),
        ("/vehicles", html),
        ("/flights", html),
        ("/traffic", html),
        ("/orders", html),
        ("/orders/1042", html),
        ("/orders/1042?tiles=osm", html),
        ("/iot", html),
        ("/static/app.css", "text/css; charset=utf-8"),
        ("/static/apps/common.js", js),
        ("/static/apps/vehicles.js", js),
        ("/static/apps/flights.js", js),
        ("/static/apps/traffic.js", js),
        ("/static/apps/orders.js", js),
        ("/static/apps/order.js", js),
        ("/static/apps/iot.js", js),
        ("/static/client/index.js", js),
        ("/static/client/src/client.js", js),
        ("/static/client/src/room.js", js),
        ("/static/vendor/leaflet/leaflet.js", js),
        ("/static/vendor/leaflet/leaflet.css", "text/css; charset=utf-8"),
        ("/static/vendor/leaflet/images/marker-icon.png", "image/png"),
        ("/static/vendor/world/countries-110m.geojson", "application/geo+json"),
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        assert!(!r.body.is_empty(), "{path}");
    }
    // The pages import the real client, whose modules import each other relatively.
    assert!(s.get("/static/client/index.js").text().contains("from './src/client.js'"));
    assert!(s.get("/vehicles").text().contains(r#"src="/static/apps/vehicles.js""#));
    for path in ["/static/nope.js", "/static/../Cargo.toml", "/orders/", "/orders/a/b", "/vehicles/x"] {
        assert_eq!(s.get(path).status, 404, "{path}");
    }
}
