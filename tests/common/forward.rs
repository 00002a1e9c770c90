//! `nk forward` under test (tests/forward.rs, tests/forward_tap.rs): start it, reach it, stop it.

use std::net::TcpStream;
use std::time::Duration;

use std::io::{Read, Write};

use super::{connect_local, send_signal, Finished, In, Out, Proc, Server};

/// `nk forward -v ARGS` and the port it listens on.
pub fn forward(args: &[&str]) -> (Proc, u16) {
    let mut full = vec!["forward", "-v"];
    full.extend_from_slice(args);
    let mut p = Proc::nk(&full, In::Null, Out::Pipe);
    let port = p.nk_listening_port();
    (p, port)
}

/// Sends SIGTERM; nk must exit 143.
pub fn terminate(p: Proc) -> Finished {
    send_signal(p.pid(), "TERM");
    let done = p.wait(10.0);
    done.expect_code(143);
    done
}

/// A client of the forwarder on 127.0.0.1:`port`, reads bounded to 10 s.
pub fn client(port: u16) -> TcpStream {
    let s = connect_local(port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A target that reads 5 bytes, sends `partial` and resets the connection.
pub fn resetting_target() -> Server<()> {
    Server::start(|mut s, _| {
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"partial").unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    })
}
