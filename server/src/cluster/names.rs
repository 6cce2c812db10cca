//! How rooms map onto the broker: subjects and message headers. Pure
//! functions, no I/O.
//!
//! Room names are 1–200 bytes of `A-Z a-z 0-9 _ - : . / @` (DESIGN §3). A NATS subject token
//! may hold any of those but `.` (the token separator), so a room is one token with `.`
//! written as `~` — a character no room name contains, so the mapping is one-to-one.
//!
//! Subjects: `sc.in.<room>` is what publishers append to (the stream's subjects),
//! `sc.out.<room>` is where the stream re-publishes what it accepted (what nodes subscribe
//! to, by interest), `sc.key.<room>.<key>` the latest message of each key (snapshots), and
//! `sc.epoch.<room>` the room's epoch.

/// The stream that sequences and keeps every room's messages.
pub const STREAM: &str = "SHARDCAST";
/// The stream holding each room's epoch (one message per room).
pub const EPOCHS: &str = "SHARDCAST_EPOCHS";
/// Subjects of the epochs stream.
pub const EPOCH_PREFIX: &str = "sc.epoch.";
/// Subjects publishers append to.
pub const IN_PREFIX: &str = "sc.in.";
/// Subjects the stream re-publishes accepted messages on.
pub const OUT_PREFIX: &str = "sc.out.";
/// The stream holding the latest message of each key of each room (snapshots).
pub const KEYS: &str = "SHARDCAST_KEYS";
/// Subjects of the keys stream.
pub const KEY_PREFIX: &str = "sc.key.";
/// Header: the room's sequence number of this message.
pub const SEQ: &str = "Sc-Seq";
/// Header: the room's epoch this message belongs to.
pub const EPOCH: &str = "Sc-Epoch";

/// The subject token of `room`.
pub fn token(room: &str) -> String {
    room.replace('.', "~")
}

/// The room a subject token names.
pub fn room_of_token(token: &str) -> String {
    token.replace('~', ".")
}

/// `sc.in.<room>`.
pub fn in_subject(room: &str) -> String {
    format!("{IN_PREFIX}{}", token(room))
}

/// `sc.out.<room>`.
pub fn out_subject(room: &str) -> String {
    format!("{OUT_PREFIX}{}", token(room))
}

/// `sc.key.<room>.<key>`, the key in unpadded URL-safe base64 (a key is any JSON string;
/// that alphabet is always one subject token). `None` for an empty key.
pub fn key_subject(room: &str, key: &str) -> Option<String> {
    use base64::Engine as _;
    (!key.is_empty()).then(|| {
        format!(
            "{KEY_PREFIX}{}.{}",
            token(room),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
        )
    })
}

/// The key a key subject's last token names.
pub fn key_of_token(token: &str) -> Option<Box<str>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes).ok().map(String::into_boxed_str)
}

/// `sc.key.<room>.>`: every key of the room.
pub fn keys_of(room: &str) -> String {
    format!("{KEY_PREFIX}{}.>", token(room))
}

/// `sc.count.<room>`: nodes receiving the room answer requests here with their number of
/// subscribers of it (for `GET /api/rooms/<room>`).
pub fn count_subject(room: &str) -> String {
    format!("sc.count.{}", token(room))
}

/// `sc.epoch.<room>`.
pub fn epoch_subject(room: &str) -> String {
    format!("{EPOCH_PREFIX}{}", token(room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_room_character_maps_one_to_one() {
        let room = "fleet:berlin.north/v@1_x-Y9";
        assert_eq!(token(room), "fleet:berlin~north/v@1_x-Y9");
        assert_eq!(room_of_token(&token(room)), room);
        assert_eq!(in_subject(room), "sc.in.fleet:berlin~north/v@1_x-Y9");
        assert_eq!(out_subject("a.b"), "sc.out.a~b");
        assert_eq!(epoch_subject("fleet:v@1.2"), "sc.epoch.fleet:v@1~2");
        assert_eq!(key_subject("f.x", "v 1.>").as_deref(), Some("sc.key.f~x.diAxLj4"));
        assert_eq!(key_subject("f", ""), None);
        assert_eq!(key_of_token("diAxLj4").as_deref(), Some("v 1.>"));
        assert_eq!(keys_of("f.x"), "sc.key.f~x.>");
    }
}
