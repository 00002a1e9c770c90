//! `nk forward` helpers shared by tests/forward.rs, tests/forward_tls.rs and
//! tests/forward_tap.rs: the forwarder itself, socat echo targets (in clear or with TLS), a
//! target that resets, clients that read to the end.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::pki::Pki;
use super::*;

/// `nk forward -v ARGS` and the port it listens on.
pub fn forward(args: &[&str]) -> (Proc, u16) {
    let mut full = vec!["forward", "-v"];
    full.extend_from_slice(args);
    let mut p = Proc::nk(&full, In::Null, Out::Pipe);
    let port = p.nk_listening_port();
    (p, port)
}

/// A socat echo server (a `cat` per connection) on 127.0.0.1 and its port.
pub fn socat_echo() -> (Proc, u16) {
    socat_echo_on(None)
}

/// [`socat_echo`] with TLS (OPENSSL-LISTEN with the PKI's leaf, no client certificate).
pub fn socat_tls_echo(pki: &Pki) -> (Proc, u16) {
    socat_echo_on(Some(pki))
}

fn socat_echo_on(tls: Option<&Pki>) -> (Proc, u16) {
    require_tool("socat", "socat");
    let port = free_port("127.0.0.1");
    let common = format!("{port},bind=127.0.0.1,reuseaddr,fork,backlog=512");
    let listen = match tls {
        None => format!("TCP-LISTEN:{common}"),
        Some(pki) => {
            let (cert, key) = pki.leaf();
            format!("OPENSSL-LISTEN:{common},cert={cert},key={key},verify=0")
        }
    };
    let mut cmd = Command::new("socat");
    cmd.args([&listen, "EXEC:cat"]);
    let p = Proc::spawn("socat echo", cmd, In::Null, Out::Null);
    assert!(
        wait_until(5.0, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "socat did not listen on {port}"
    );
    (p, port)
}

/// Reads until EOF or an error (the socket's read timeout): the bytes and the error, if any.
pub fn read_all(s: &mut impl Read) -> (Vec<u8>, Option<io::Error>) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (got, Some(e)),
        }
    }
}

/// A client of 127.0.0.1:`port` whose reads give up after 10 s.
pub fn client(port: u16) -> TcpStream {
    let s = connect_local(port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Writes `data` and half-closes from one thread while this one reads everything back.
pub fn round_trip(mut s: TcpStream, data: Arc<Vec<u8>>) -> Vec<u8> {
    let mut writer = s.try_clone().unwrap();
    let feed = thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let (got, err) = read_all(&mut s);
    assert!(err.is_none(), "read: {err:?}");
    feed.join().unwrap();
    got
}

/// The client's read ends in a reset (not EOF, not a timeout).
pub fn expect_reset(s: &mut TcpStream, what: &str) {
    let (_, err) = read_all(s);
    let kind = err.as_ref().map(|e| e.kind());
    assert_eq!(
        kind,
        Some(io::ErrorKind::ConnectionReset),
        "{what}: the client saw {err:?}, not a reset"
    );
}

/// A client the forwarder must turn away or reset: it gets no byte, and its connection ends in
/// a reset (or EOF, for a turned-away client). The reset can beat the connect's own report
/// (the forwarder resets at once), so a connect that fails with ECONNRESET counts too.
pub fn expect_no_service(port: u16, what: &str, reset_required: bool) {
    let mut s = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
        Err(e) => panic!("{what}: connect: {e}"),
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (got, err) = read_all(&mut s);
    assert!(got.is_empty(), "{what}: the client got {got:?}");
    let kind = err.as_ref().map(|e| e.kind());
    if reset_required {
        assert_eq!(
            kind,
            Some(io::ErrorKind::ConnectionReset),
            "{what}: {err:?}"
        );
    } else {
        assert!(
            kind.is_none() || kind == Some(io::ErrorKind::ConnectionReset),
            "{what}: {err:?}"
        );
    }
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
