//! Meaningful starting inputs for the server targets, in each target's input layout: what
//! real clients send (valid heads, masked frames, ops, signed tokens, the example config)
//! and the classic malformed cases next to them.

use super::jwt::{NOW, SECRET};
use crate::auth::sign;
use crate::config::EXAMPLE_TOML;

type Seeds = Vec<(&'static str, Vec<u8>)>;

/// Named seeds of `target` (empty for an unknown name).
pub fn seeds(target: &str) -> Seeds {
    match target {
        "http_head" => http_head(),
        "ws_frames" => ws_frames(),
        "client_op" => client_op(),
        "jwt" => jwt(),
        "config_toml" => config_toml(),
        _ => Vec::new(),
    }
}

const UPGRADE: &str = "GET /ws?token=a%2Eb+c&room=fleet%3Ademo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\nOrigin: http://localhost:3000\r\n\r\n";

fn http_head() -> Seeds {
    let split = |cut: u16, text: &str| [&cut.to_le_bytes()[..], text.as_bytes()].concat();
    let body = r#"{"room":"fleet:a","data":{"n":1}}"#;
    let publish = format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k-0123456789abcdef\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    vec![
        ("upgrade", split(0, UPGRADE)),
        ("upgrade-split-in-header", split(40, UPGRADE)),
        ("upgrade-room-url", split(9, &UPGRADE.replace("/ws?", "/ws/tracker/42/?"))),
        ("upgrade-version-8", split(3, &UPGRADE.replace("Version: 13", "Version: 8"))),
        ("upgrade-short-key", split(1, &UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="))),
        ("get-root", split(5, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
        ("http10-keep-alive", split(0, "GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")),
        ("publish-with-body", split(60, &publish)),
        ("pipelined", split(20, &format!("{publish}GET /api/rooms/fleet:a HTTP/1.1\r\nHost: x\r\n\r\n"))),
        ("chunked-refused", split(0, "POST /api/publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")),
        ("conflicting-length", split(0, "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")),
        ("bare-newlines", split(7, "GET /?a=%zz&b=%C3%BC HTTP/1.1\nHost: x\n\n")),
        ("garbage-method", split(2, "\x00\x01 / HTTP/1.1\r\n\r\n")),
    ]
}

/// A client frame: FIN/opcode byte, masked with `mask`, 7/16/64-bit length as needed.
pub(crate) fn frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut f = vec![b0];
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n < 65536 => {
            f.push(m | 126);
            f.extend((n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend((n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            f.extend(k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend(payload),
    }
    f
}

fn ws_frames() -> Seeds {
    const K: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);
    // max_frame selector, piece sizes, then the stream.
    let feed = |max: u8, sizes: &[u8], frames: &[Vec<u8>]| {
        [&[max, sizes.len() as u8][..], sizes, &frames.concat()].concat()
    };
    let text = |s: &str| frame(0x81, s.as_bytes(), K);
    let close = |code: u16, why: &str| frame(0x88, &[&code.to_be_bytes()[..], why.as_bytes()].concat(), K);
    let ops = [r#"{"op":"sub","room":"fleet:demo","since":10,"snapshot":true,"id":1}"#, r#"{"op":"ping"}"#];
    let big = "x".repeat(300);
    vec![
        ("masked-text", feed(0, &[], &[text(ops[0]), text(ops[1])])),
        ("text-byte-by-byte", feed(0, &[1], &[text(ops[1])])),
        (
            "ping-pong-close",
            feed(2, &[3, 7], &[frame(0x89, b"hb", K), frame(0x8A, b"", K), close(1000, "bye")]),
        ),
        ("fragmented-with-ping", {
            let parts = [frame(0x01, b"{\"op\":", K), frame(0x89, b"", K), frame(0x80, b"\"ping\"}", K)];
            feed(4, &[5], &parts)
        }),
        ("text-16-bit-length", feed(40, &[200, 13], &[text(&big)])),
        ("text-over-max-frame", feed(0, &[], &[text(&big)])),
        ("fragments-over-max", feed(0, &[], &[frame(0x01, &[b'a'; 100], K), frame(0x80, &[b'a'; 100], K)])),
        ("binary", feed(1, &[], &[frame(0x82, b"\x00\x01", K)])),
        ("unmasked-text", feed(0, &[], &[frame(0x81, b"{}", None)])),
        ("invalid-utf8-then-text", feed(0, &[], &[frame(0x81, b"\xff\xfe", K), text(ops[1])])),
        ("close-1005", feed(0, &[], &[close(1005, "")])),
        ("text-after-close", feed(0, &[], &[close(1001, "away"), text(ops[1])])),
        ("reserved-bits", feed(0, &[], &[frame(0xC1, b"{}", K)])),
    ]
}

fn client_op() -> Seeds {
    let ops: [(&str, &str); 20] = [
        ("sub-full", r#"{"op":"sub","room":"fleet:berlin","since":1234,"snapshot":true,"id":1}"#),
        ("sub", r#"{"op":"sub","room":"a"}"#),
        ("unsub", r#"{"op":"unsub","room":"fleet:berlin","id":"x-2"}"#),
        ("ping-spaces", r#" { "op" : "ping" , "id" : 4 } "#),
        (
            "pub-nested",
            r#"{"id":3,"data": {"b" : 1.50, "s":"}\"{[", "n":[1,{"x":[]}]} ,"op":"pub","room":"vehicle:42"}"#,
        ),
        ("pub-scalar", r#"{"op":"pub","room":"r","data":-1.5e3}"#),
        ("pub-escaped-key", r#"{"op":"pub","room":"r","\u0064ata":[1]}"#),
        ("duplicate-data", r#"{"op":"pub","room":"r","data":1,"data":2}"#),
        ("bad-room", r#"{"op":"sub","room":"no spaces","id":2}"#),
        ("bad-since", r#"{"op":"sub","room":"r","since":-1}"#),
        ("object-id", r#"{"op":"ping","id":{"a":1}}"#),
        ("trailing-comma", r#"{"op":"ping",}"#),
        ("unknown-op", r#"{"op":"jump","id":1}"#),
        ("key-extract", r#"{"lat":52.5,"id":"v\"17","n":{"id":"inner"}}"#),
        (
            "sub-tracking",
            r#"{"op":"sub","room":"fleet:b","bbox":[170,-10,-170,10.5],"max_rate":0.5,"min_move_m":10,"max_silence_s":30,"id":1}"#,
        ),
        ("sub-bad-bbox", r#"{"op":"sub","room":"fleet:b","bbox":[0,5,1,-5],"id":2}"#),
        ("view", r#"{"op":"view","room":"fleet:b","bbox":[-180,-90,180,90],"id":"pan"}"#),
        ("presence", r#"{"op":"presence","room":"chat:lobby","id":3}"#),
        (
            "pub-position",
            r#"{"op":"pub","room":"fleet:b","data":{"id":"v1","lat":-90,"lon":180.0,"stopped":true}}"#,
        ),
        ("pub-bad-position", r#"{"op":"pub","room":"fleet:b","data":{"lat":1e999,"lon":"x","status":[1]}}"#),
    ];
    ops.iter().map(|(n, t)| (*n, t.as_bytes().to_vec())).collect()
}

fn jwt() -> Seeds {
    let raw = |t: &str| [&[0u8][..], t.as_bytes()].concat();
    let exp = NOW + 100;
    let full = format!(
        r#"{{"sub":"u1","exp":{exp},"nbf":{NOW},"sub_rooms":["fleet:*"],"pub_rooms":["vehicle:4?"]}}"#
    );
    vec![
        ("valid", raw(&sign(&full, SECRET))),
        ("valid-minimal", raw(&sign(&format!(r#"{{"exp":{exp}}}"#), SECRET))),
        ("expired", raw(&sign(&format!(r#"{{"exp":{NOW}}}"#), SECRET))),
        ("not-yet-valid", raw(&sign(&format!(r#"{{"exp":{exp},"nbf":{}}}"#, NOW + 1), SECRET))),
        ("other-secret", raw(&sign(&full, b"another-secret-of-some-length!!"))),
        ("alg-none", raw("eyJhbGciOiJub25lIn0.eyJleHAiOjE4MDAwMDAwMDB9.")),
        ("four-segments", raw("a.b.c.d")),
        // Differential: secret "k", clock NOW, then fields (name index, value kind, value).
        ("claims-exp-near-now", [&[1, 1, b'k', 0, 2][..], &[0, 0, 5], &[2, 5, 2, b'u', b'1']].concat()),
        (
            "claims-all-fields",
            [&[1, 3, b'a', b'b', b'c', 0, 4][..], &[0, 0, 9, 1, 6, 2, 5, 0, 3, 8, 1, 2, b'a', b'*']].concat(),
        ),
        ("claims-duplicate-exp", [&[1, 0, 0, 2][..], &[0, 0, 9, 0, 0, 10]].concat()),
    ]
}

fn config_toml() -> Seeds {
    vec![
        ("example", EXAMPLE_TOML.as_bytes().to_vec()),
        ("empty", Vec::new()),
        (
            "sizes-and-durations",
            b"max_frame = 1000\noutbox_bytes = \"2KiB\"\nping_interval = \"500ms\"\nidle_timeout = \"1s\"\n"
                .to_vec(),
        ),
        ("public-bind", b"listen = \"0.0.0.0:8080\"\nallow_anonymous = true\n".to_vec()),
        (
            "namespace-conflate",
            b"[namespaces.pos]\npolicy = \"conflate\"\nkey = \"id\"\nhistory_ttl = \"off\"\n".to_vec(),
        ),
        ("bad-namespace-name", b"[namespaces.\"a:b\"]\nkey = \"id\"\n".to_vec()),
        ("outbox-below-frame", b"max_frame = \"64KiB\"\noutbox_bytes = 1000\n".to_vec()),
        ("bad-log-filter", b"log = \"[[[\"\n".to_vec()),
    ]
}
