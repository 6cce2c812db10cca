//! SIGTERM / SIGINT: stop accepting, close every WebSocket client with 1001, exit 0.

mod common;

use std::time::Duration;

use common::*;

fn graceful(sig: i32) {
    let mut server = Server::start(&["--shards", "2"]);
    let mut mux = server.ws();
    assert_eq!(mux.sub("bye:room", 1), 0);
    let mut url = server.connect("/ws/bye:room/");
    let mut idle = server.ws();
    idle.ping(1);
    wait_subscribers(&server, "bye:room", 2);
    // A message published just before the signal is still delivered before the close.
    let r = server.publish(r#"{"room":"bye:room","data":{"last":true}}"#, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(mux.recv_text(), envelope("bye:room", 1, r#"{"last":true}"#));
    assert_eq!(url.recv_text(), r#"{"last":true}"#);

    server.signal(sig);
    for (name, c) in [("mux", &mut mux), ("room url", &mut url), ("idle", &mut idle)] {
        let (code, _reason) = c.expect_close(Duration::from_secs(5));
        assert_eq!(code, 1001, "{name}");
        let _ = c.ws.close(None);
        let _ = c.ws.flush();
    }
    let status = server.wait_exit(Duration::from_secs(10)).expect("server did not exit within 10 s");
    assert!(status.success(), "exit status {status:?}; stderr:\n{}", server.stderr());
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(server.addr).is_err(), "still accepting after exit");
}

#[test]
fn sigterm_closes_clients_with_1001_and_exits_0() {
    graceful(libc::SIGTERM);
}

#[test]
fn sigint_closes_clients_with_1001_and_exits_0() {
    graceful(libc::SIGINT);
}

#[test]
fn sigterm_with_no_clients_exits_0() {
    let mut server = Server::start(&["--shards", "1"]);
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10)).expect("server did not exit within 10 s");
    assert!(status.success(), "exit status {status:?}");
}
