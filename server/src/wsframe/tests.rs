use super::*;

/// A masked client frame (the fuzz seeds' encoder).
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    crate::fuzzing::seeds::frame((u8::from(fin) << 7) | opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

fn decode(max: usize, input: &[u8]) -> (Vec<WsMessage>, Result<(), WsError>) {
    let mut d = Decoder::new(max);
    let mut out = Vec::new();
    let r = d.feed(input, &mut out);
    (out, r)
}

/// Feeds `input` one byte at a time: the result must not depend on how reads split it.
fn decode_bytewise(max: usize, input: &[u8]) -> (Vec<WsMessage>, Result<(), WsError>) {
    let mut d = Decoder::new(max);
    let mut out = Vec::new();
    for b in input {
        if let Err(e) = d.feed(std::slice::from_ref(b), &mut out) {
            return (out, Err(e));
        }
    }
    (out, Ok(()))
}

#[test]
fn text_binary_ping_pong_in_one_read_and_byte_by_byte() {
    let mut input = frame(true, OP_TEXT, br#"{"op":"ping"}"#);
    input.extend(frame(true, OP_BINARY, &[1, 2, 3]));
    input.extend(frame(true, OP_PING, b"hi"));
    input.extend(frame(true, OP_PONG, b""));
    let want = vec![
        WsMessage::Text(br#"{"op":"ping"}"#.to_vec()),
        WsMessage::Binary(vec![1, 2, 3]),
        WsMessage::Ping(b"hi".to_vec()),
        WsMessage::Pong(Vec::new()),
    ];
    assert_eq!(decode(1024, &input), (want.clone(), Ok(())));
    assert_eq!(decode_bytewise(1024, &input), (want, Ok(())));
}

#[test]
fn lengths_of_16_and_64_bits() {
    let mid = vec![b'a'; 300];
    let big = vec![b'b'; 70_000];
    let mut input = frame(true, OP_TEXT, &mid);
    input.extend(frame(true, OP_TEXT, &big));
    let (out, r) = decode(100_000, &input);
    assert_eq!(r, Ok(()));
    assert_eq!(out, vec![WsMessage::Text(mid), WsMessage::Text(big)]);
}

#[test]
fn fragments_with_a_control_frame_between_them() {
    let mut input = frame(false, OP_TEXT, b"hel");
    input.extend(frame(true, OP_PING, b"p"));
    input.extend(frame(false, OP_CONT, b"lo "));
    input.extend(frame(true, OP_CONT, "wörld".as_bytes()));
    let want = vec![WsMessage::Ping(b"p".to_vec()), WsMessage::Text("hello wörld".as_bytes().to_vec())];
    assert_eq!(decode(1024, &input), (want.clone(), Ok(())));
    assert_eq!(decode_bytewise(1024, &input), (want, Ok(())));
}

#[test]
fn a_character_split_across_fragments_is_valid() {
    let e = "é".as_bytes();
    let mut input = frame(false, OP_TEXT, &e[..1]);
    input.extend(frame(true, OP_CONT, &e[1..]));
    assert_eq!(decode(64, &input), (vec![WsMessage::Text(e.to_vec())], Ok(())));
}

#[test]
fn invalid_utf8_is_1007_even_before_the_message_ends() {
    let (_, r) = decode(64, &frame(true, OP_TEXT, &[0xff, b'a']));
    assert_eq!(r.unwrap_err().close_code(), 1007);
    // The invalid prefix fails on the first fragment.
    let (_, r) = decode(64, &frame(false, OP_TEXT, &[b'a', 0xc0, 0x80]));
    assert_eq!(r, Err(WsError::Utf8));
    // A truncated character at the end of a final frame.
    let (_, r) = decode(64, &frame(true, OP_TEXT, &"é".as_bytes()[..1]));
    assert_eq!(r, Err(WsError::Utf8));
    // Binary is not checked.
    assert_eq!(decode(64, &frame(true, OP_BINARY, &[0xff])).1, Ok(()));
}

#[test]
fn protocol_violations_are_1002() {
    let unmasked = [0x81, 0x01, b'a'];
    let mut rsv = frame(true, OP_TEXT, b"a");
    rsv[0] |= 0x40;
    let mut reserved_op = frame(true, OP_TEXT, b"a");
    reserved_op[0] = 0x83;
    let mut reserved_ctl = frame(true, OP_PING, b"");
    reserved_ctl[0] = 0x8B;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked", unmasked.to_vec()),
        ("rsv", rsv),
        ("reserved data opcode", reserved_op),
        ("reserved control opcode", reserved_ctl),
        ("fragmented ping", frame(false, OP_PING, b"")),
        ("ping of 126 bytes", frame(true, OP_PING, &[0; 126])),
        ("continuation first", frame(true, OP_CONT, b"a")),
        (
            "new message inside a fragmented one",
            [frame(false, OP_TEXT, b"a"), frame(true, OP_TEXT, b"b")].concat(),
        ),
        ("close of one byte", frame(true, OP_CLOSE, &[3])),
    ];
    for (name, input) in cases {
        let (out, r) = decode(1024, &input);
        assert!(out.is_empty(), "{name}: {out:?}");
        assert_eq!(r.as_ref().map_err(WsError::close_code), Err(1002), "{name}: {r:?}");
    }
    let mut top_bit = vec![0x82, 0x80 | 127];
    top_bit.extend_from_slice(&(1u64 << 63).to_be_bytes());
    top_bit.extend_from_slice(&[0; 4]);
    assert_eq!(decode(1024, &top_bit).1.map_err(|e| e.close_code()), Err(1002));
}

#[test]
fn too_large_is_1009_on_the_header_and_across_fragments() {
    // Announced larger than the limit: refused before any payload arrives.
    let head = &frame(true, OP_TEXT, &[b'a'; 200])[..8];
    assert_eq!(decode(100, head).1, Err(WsError::TooLarge { size: 200, max: 100 }));
    // Fragments that together exceed it.
    let input = [frame(false, OP_TEXT, &[b'a'; 60]), frame(true, OP_CONT, &[b'a'; 60])].concat();
    assert_eq!(decode(100, &input).1, Err(WsError::TooLarge { size: 120, max: 100 }));
    // Exactly the limit is fine.
    assert_eq!(decode(100, &frame(true, OP_TEXT, &[b'a'; 100])).1, Ok(()));
}

#[test]
fn close_codes_reasons_and_nothing_after_close() {
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"bye");
    let mut input = frame(true, OP_CLOSE, &p);
    input.extend(frame(true, OP_TEXT, b"ignored"));
    let mut d = Decoder::new(64);
    let mut out = Vec::new();
    assert_eq!(d.feed(&input, &mut out), Ok(()));
    assert_eq!(out, vec![WsMessage::Close(Some((1000, "bye".into())))]);
    assert!(d.is_done());
    assert_eq!(d.feed(&frame(true, OP_TEXT, b"more"), &mut out), Ok(()));
    assert_eq!(out.len(), 1, "nothing after a Close");

    assert_eq!(decode(64, &frame(true, OP_CLOSE, b"")).0, vec![WsMessage::Close(None)]);
    for (code, want) in [
        (999, 1002),
        (1004, 1002),
        (1005, 1002),
        (1006, 1002),
        (1014, 1002),
        (1015, 1002),
        (2999, 1002),
        (5000, 1002),
        (1001, 1001),
        (1013, 1013),
        (3000, 3000),
        (4999, 4999),
    ] {
        let out = decode(64, &frame(true, OP_CLOSE, &u16::to_be_bytes(code))).0;
        let WsMessage::Close(Some((got, _))) = &out[0] else { panic!("{out:?}") };
        assert_eq!(*got, want, "close code {code}");
    }
    let bad_reason = [&1000u16.to_be_bytes()[..], &[0xff]].concat();
    assert_eq!(decode(64, &frame(true, OP_CLOSE, &bad_reason)).1, Err(WsError::Utf8));
}

#[test]
fn an_error_ends_the_stream_and_frees_buffers() {
    let mut d = Decoder::new(1 << 20);
    let mut out = Vec::new();
    // Half of a large frame is buffered...
    let f = frame(true, OP_BINARY, &vec![7; 10_000]);
    assert_eq!(d.feed(&f[..5_000], &mut out), Ok(()));
    assert!(d.data.capacity() >= 4_990);
    // ...then a complete frame frees it.
    assert_eq!(d.feed(&f[5_000..], &mut out), Ok(()));
    assert_eq!(d.data.capacity(), 0, "a finished message takes its buffer with it");
    assert!(d.feed(&[0x81, 0x01, b'a'], &mut out).is_err());
    assert!(d.is_done());
    assert_eq!(d.feed(&frame(true, OP_TEXT, b"x"), &mut out), Ok(()));
    assert_eq!(out.len(), 1);
}

#[test]
fn an_idle_decoder_is_small_and_holds_no_heap() {
    let mut d = Decoder::new(65536);
    let mut out = Vec::new();
    d.feed(&frame(true, OP_TEXT, &[b'a'; 1000]), &mut out).unwrap();
    d.feed(&frame(true, OP_PING, b"x"), &mut out).unwrap();
    assert_eq!((d.data.capacity(), d.control.is_none()), (0, true));
    assert!(std::mem::size_of::<Decoder>() <= 80, "{}", std::mem::size_of::<Decoder>());
}
