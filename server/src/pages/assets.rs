//! Files served under `/static/`: the apps' JavaScript and CSS, vendored Leaflet and world
//! outlines (`static/vendor/*`, versions and licenses beside them), and the JavaScript client
//! itself (`/static/client/` is `clients/js`), all embedded in the binary.

macro_rules! embed {
    ($($url:literal => $file:literal),* $(,)?) => {
        &[$(($url, include_bytes!($file) as &[u8])),*]
    };
}

/// `(path under /static/, bytes)`.
pub(super) const ASSETS: &[(&str, &[u8])] = embed! {
    "app.css" => "../../static/app.css",
    "apps/common.js" => "../../static/apps/common.js",
    "apps/vehicles.js" => "../../static/apps/vehicles.js",
    "apps/flights.js" => "../../static/apps/flights.js",
    "apps/traffic.js" => "../../static/apps/traffic.js",
    "apps/orders.js" => "../../static/apps/orders.js",
    "apps/order.js" => "../../static/apps/order.js",
    "apps/iot.js" => "../../static/apps/iot.js",
    "vendor/leaflet/leaflet.js" => "../../static/vendor/leaflet/leaflet.js",
    "vendor/leaflet/leaflet.css" => "../../static/vendor/leaflet/leaflet.css",
    "vendor/leaflet/images/marker-icon.png" => "../../static/vendor/leaflet/images/marker-icon.png",
    "vendor/leaflet/images/marker-icon-2x.png" => "../../static/vendor/leaflet/images/marker-icon-2x.png",
    "vendor/leaflet/images/marker-shadow.png" => "../../static/vendor/leaflet/images/marker-shadow.png",
    "vendor/leaflet/images/layers.png" => "../../static/vendor/leaflet/images/layers.png",
    "vendor/leaflet/images/layers-2x.png" => "../../static/vendor/leaflet/images/layers-2x.png",
    "vendor/world/countries-110m.geojson" => "../../static/vendor/world/countries-110m.geojson",
    "client/index.js" => "../../../clients/js/index.js",
    "client/src/backoff.js" => "../../../clients/js/src/backoff.js",
    "client/src/client.js" => "../../../clients/js/src/client.js",
    "client/src/emitter.js" => "../../../clients/js/src/emitter.js",
    "client/src/errors.js" => "../../../clients/js/src/errors.js",
    "client/src/heartbeat.js" => "../../../clients/js/src/heartbeat.js",
    "client/src/room.js" => "../../../clients/js/src/room.js",
    "client/src/token.js" => "../../../clients/js/src/token.js",
};

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("geojson") => "application/geo+json",
        _ => "application/octet-stream",
    }
}

/// The file at `/static/<path>`: its content type and bytes.
pub fn static_asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(p, body)| (content_type(p), *body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(static_asset("apps/vehicles.js").unwrap().0, "text/javascript; charset=utf-8");
        assert_eq!(static_asset("client/index.js").unwrap().0, "text/javascript; charset=utf-8");
        assert_eq!(static_asset("vendor/leaflet/leaflet.css").unwrap().0, "text/css; charset=utf-8");
        assert_eq!(static_asset("vendor/leaflet/images/marker-icon.png").unwrap().0, "image/png");
        assert!(static_asset("../Cargo.toml").is_none());
        assert!(static_asset("nope.js").is_none());
    }
}
