//! The tungstenite configuration of every WebSocket session, in one place so that the
//! session ([`crate::ws`]) and the `ws_frames` fuzz target decode with the same limits.

use tungstenite::protocol::WebSocketConfig;

/// Decoder settings for a session whose largest accepted message is `max_frame` bytes.
///
/// * `read_buffer_size` 512: tungstenite allocates it per connection up front (it grows on
///   demand), so idle connections stay small.
/// * `write_buffer_size` 0: the only frames tungstenite writes are its automatic pong and
///   close replies; the session collects them at once instead of buffering.
/// * `max_message_size` = `max_frame_size` = `max_frame`: no single frame, and no message
///   reassembled from fragments, may exceed the limit; a larger one is a protocol error
///   (close 1009) before its payload is buffered.
pub fn ws_config(max_frame: usize) -> WebSocketConfig {
    let mut c = WebSocketConfig::default();
    c.read_buffer_size = 512;
    c.write_buffer_size = 0;
    c.max_message_size = Some(max_frame);
    c.max_frame_size = Some(max_frame);
    c
}

#[cfg(test)]
mod tests {
    use super::ws_config;

    #[test]
    fn limits_follow_max_frame() {
        let c = ws_config(65536);
        assert_eq!((c.max_message_size, c.max_frame_size), (Some(65536), Some(65536)));
        assert_eq!((c.read_buffer_size, c.write_buffer_size), (512, 0));
    }
}
