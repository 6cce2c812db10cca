//! tungstenite configured as the sessions' decoder was before [`crate::wsframe`] replaced
//! it: the `ws_frames` fuzz target and corpus replay decode every input with both and
//! check the session's decoder against this reference.

use std::io::{self, Read, Write};
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

/// Input bytes for tungstenite, and a sink for what it writes (pong and close replies).
pub struct Feed<'a> {
    pub input: &'a [u8],
    pub output: Vec<u8>,
}

impl Read for Feed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Feed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
