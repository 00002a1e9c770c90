//! `nk forward` with TLS on either side (`--tls-listen`, `--tls-connect`, both) and with the
//! PROXY protocol toward the target, against real peers on loopback: `nk dial --tls` and a
//! rustls client of the test's own as clients; socat OPENSSL-LISTEN, `nk listen --tls` and
//! nginx (`listen ... proxy_protocol`) as targets; plain sockets where a test must see the
//! exact bytes the target receives.
//!
//! Every wait is bounded; nothing asserts on timing.

mod common;

use common::forwarder::*;
use common::http::{nginx_with, NginxSite};
use common::pki::{text, Pki};
use common::*;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// `nk dial --tls --ca CA EXTRA localhost PORT` with `input` on stdin.
fn dial_tls(pki: &Pki, extra: &[&str], port: u16, input: Vec<u8>) -> Finished {
    let ca = pki.ca();
    let port = port.to_string();
    let mut args = vec!["dial", "--tls", "--ca", &ca];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["localhost", &port]);
    Proc::nk(&args, In::Bytes(input), Out::Pipe).wait(60.0)
}

/// The `--json` object of the connection that ended.
fn json_line(fwd: &mut Proc) -> serde_json::Value {
    let line = fwd.wait_stdout_line(20.0, |l| l.contains("\"end\""));
    serde_json::from_str(&line).expect("a JSON object")
}

#[test]
fn sixty_four_mib_both_ways_through_tls_listen() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf();
    let (_echo, eport) = socat_echo();
    let target = format!("127.0.0.1:{eport}");
    let (mut fwd, port) = forward(&[
        "--json",
        "--tls-listen",
        "--cert",
        &cert,
        "--key",
        &key,
        "127.0.0.1:0",
        &target,
    ]);
    let data = prng_bytes(64 * MIB, 31);
    let out = dial_tls(&pki, &[], port, data.clone());
    out.expect_code(0);
    assert_same_bytes("64 MiB echoed through --tls-listen", &out.stdout, &data);
    let v = json_line(&mut fwd);
    assert_eq!(v["bytes_up"], 64 * MIB as u64, "{v}");
    assert_eq!(v["bytes_down"], 64 * MIB as u64, "{v}");
    assert_eq!(v["end"], "fin", "{v}");
    assert!(
        v["client_tls"].as_str().unwrap().starts_with("TLS 1.3, "),
        "{v}"
    );
    assert!(v["target_tls"].is_null(), "{v}");
    terminate(fwd);
}

#[test]
fn sixty_four_mib_both_ways_through_tls_connect() {
    let pki = Pki::new();
    let (_echo, eport) = socat_tls_echo(&pki);
    let target = format!("localhost:{eport}");
    let (fwd, port) = forward(&["--tls-connect", "--ca", &pki.ca(), "127.0.0.1:0", &target]);
    let data = Arc::new(prng_bytes(64 * MIB, 32));
    let got = round_trip(client(port), Arc::clone(&data));
    assert_same_bytes("64 MiB echoed through --tls-connect", &got, &data);
    let mut fwd = fwd;
    let line = fwd.wait_stderr_line(20.0, |l| l.contains("bytes up"));
    assert!(
        line.contains("[TLS 1.3, ") && line.ends_with("fin"),
        "{line}"
    );
    terminate(fwd);
}

#[test]
fn tls_on_both_sides_at_once() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf();
    let (_echo, eport) = socat_tls_echo(&pki);
    // An IP literal: the loop connects it itself; the leaf carries IP:127.0.0.1.
    let target = format!("127.0.0.1:{eport}");
    let (mut fwd, port) = forward(&[
        "--json",
        "--tls-listen",
        "--cert",
        &cert,
        "--key",
        &key,
        "--tls-connect",
        "--connect-ca",
        &pki.ca(),
        "127.0.0.1:0",
        &target,
    ]);
    let data = prng_bytes(16 * MIB, 33);
    let out = dial_tls(&pki, &[], port, data.clone());
    out.expect_code(0);
    assert_same_bytes("16 MiB through TLS on both sides", &out.stdout, &data);
    let v = json_line(&mut fwd);
    assert_eq!(v["end"], "fin", "{v}");
    assert!(
        v["client_tls"].is_string() && v["target_tls"].is_string(),
        "{v}"
    );
    terminate(fwd);
}

#[test]
fn the_tls_clients_half_close_reaches_the_target_and_the_answer_comes_back() {
    let pki = Pki::new();
    let target = Server::start(|mut s, _| {
        let (got, _) = read_all(&mut s);
        // The client's close_notify arrived as a FIN: now answer on the other direction.
        s.write_all(b"answer\n").unwrap();
        got
    });
    let (fwd, port) = tls_listen_to(&pki, target.port());
    let out = dial_tls(&pki, &[], port, b"question\n".to_vec());
    out.expect_code(0).expect_stdout(b"answer\n");
    assert_eq!(target.join(), b"question\n");
    let mut fwd = fwd;
    fwd.wait_stderr_line(10.0, |l| {
        l.contains("9 bytes up, 7 bytes down") && l.ends_with("fin")
    });
    terminate(fwd);
}

#[test]
fn the_tls_targets_half_close_reaches_the_client_which_keeps_sending() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf();
    // nk listen --tls: its stdin (the banner) ends first, so it sends close_notify and a FIN
    // and keeps reading until the client's end.
    let mut target = Proc::nk(
        [
            "listen",
            "-v",
            "--tls",
            "--cert",
            &cert,
            "--key",
            &key,
            "127.0.0.1",
            "0",
        ],
        In::Bytes(b"banner\n".to_vec()),
        Out::Pipe,
    );
    let tport = target.nk_listening_port();
    let (fwd, port) = forward(&[
        "--tls-connect",
        "--ca",
        &pki.ca(),
        "127.0.0.1:0",
        &format!("localhost:{tport}"),
    ]);
    let mut c = client(port);
    let (banner, err) = read_all(&mut c);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(banner, b"banner\n");
    let data = prng_bytes(MIB, 34);
    c.write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (rest, err) = read_all(&mut c);
    assert!(rest.is_empty() && err.is_none(), "{err:?}");
    let done = target.wait(20.0);
    done.expect_code(0);
    assert_same_bytes("sent after the target's close_notify", &done.stdout, &data);
    let mut fwd = fwd;
    fwd.wait_stderr_line(10.0, |l| l.ends_with("fin"));
    terminate(fwd);
}

#[test]
fn a_client_certificate_is_required_refused_without_one_and_logged() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf();
    let nobody = NoConnect::new();
    let tls = [
        "--tls-listen",
        "--cert",
        &cert,
        "--key",
        &key,
        "--ca",
        &pki.ca(),
    ];
    let nobody_addr = nobody.server();
    let mut args = tls.to_vec();
    args.extend_from_slice(&["127.0.0.1:0", &nobody_addr]);
    let (mut fwd, port) = forward(&args);
    let out = dial_tls(&pki, &[], port, b"hello\n".to_vec());
    out.expect_code(1)
        .expect_stderr_contains("certificate required");
    let line = fwd.wait_stderr_line(10.0, |l| l.contains("TLS handshake with the client"));
    assert!(line.contains("no certificates"), "{line}");
    nobody.expect_none(0.3, "a client refused in the handshake");
    terminate(fwd);

    // With the certificate, the same forwarder lets the client through.
    let (_echo, eport) = socat_echo();
    let mut args = tls.to_vec();
    let target = format!("127.0.0.1:{eport}");
    args.extend_from_slice(&["127.0.0.1:0", &target]);
    let (fwd, port) = forward(&args);
    let out = dial_tls(
        &pki,
        &["--cert", &cert, "--key", &key],
        port,
        b"hi\n".to_vec(),
    );
    out.expect_code(0).expect_stdout(b"hi\n");
    terminate(fwd);
}

#[test]
fn a_target_with_an_untrusted_certificate_is_refused_and_the_client_reset() {
    let pki = Pki::new();
    let (_echo, eport) = socat_tls_echo(&pki);
    // No --ca: the system store does not know the test's CA.
    let (fwd, port) = forward(&[
        "--tls-connect",
        "127.0.0.1:0",
        &format!("localhost:{eport}"),
    ]);
    expect_no_service(port, "a target with an untrusted certificate", true);
    let mut fwd = fwd;
    let line = fwd.wait_stderr_line(10.0, |l| l.contains("client reset"));
    assert!(line.contains("unknown issuer"), "{line}");
    terminate(fwd);
}

/// A rustls client of the test's own, trusting the PKI's CA, handshaken with `port`.
fn rustls_client(pki: &Pki, port: u16) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(pki.rustls_client_config(), name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, client(port));
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    stream
}

/// `nk forward -v --tls-listen` with the PKI's leaf, to a plain target on 127.0.0.1.
fn tls_listen_to(pki: &Pki, target_port: u16) -> (Proc, u16) {
    let (cert, key) = pki.leaf();
    forward(&[
        "--tls-listen",
        "--cert",
        &cert,
        "--key",
        &key,
        "127.0.0.1:0",
        &format!("127.0.0.1:{target_port}"),
    ])
}

#[test]
fn a_tls_client_cut_short_without_close_notify_resets_the_target() {
    let pki = Pki::new();
    let (arrived, seen) = std::sync::mpsc::channel();
    let target = Server::start(move |mut s, _| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut first = [0u8; 7];
        s.read_exact(&mut first).unwrap();
        let _ = arrived.send(());
        read_all(&mut s)
    });
    let (fwd, port) = tls_listen_to(&pki, target.port());
    let mut tls = rustls_client(&pki, port);
    tls.write_all(b"partial").unwrap();
    tls.flush().unwrap();
    seen.recv_timeout(Duration::from_secs(10)).unwrap();
    // A FIN with no close_notify before it: a truncation, not an end.
    tls.sock.shutdown(Shutdown::Write).unwrap();
    let (_, err) = target.join();
    assert_eq!(
        err.map(|e| e.kind()),
        Some(io::ErrorKind::ConnectionReset),
        "the target must see a reset, not a FIN"
    );
    let mut fwd = fwd;
    fwd.wait_stderr_line(10.0, |l| l.contains("reset (client: TLS stream cut short"));
    terminate(fwd);
}

/// The same cut after 3 MiB, to a target that is slow to read: what the forwarder had read
/// before the cut (in its buffer and its socket's send queue) still reaches the target, and
/// the reset comes after it. A reset at once destroyed that tail (ncat --ssl servers close
/// without close_notify: downloads through --tls-connect lost their last megabytes).
#[test]
fn a_tls_stream_cut_short_delivers_every_byte_before_the_reset() {
    let pki = Pki::new();
    let target = Server::start(move |mut s, _| {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // Not reading for a while: the bytes pile up in the forwarder meanwhile.
        thread::sleep(Duration::from_millis(300));
        read_all(&mut s)
    });
    let (fwd, port) = tls_listen_to(&pki, target.port());
    let data = prng_bytes(3 * MIB, 77);
    let mut tls = rustls_client(&pki, port);
    tls.write_all(&data).unwrap();
    tls.flush().unwrap();
    tls.sock.shutdown(Shutdown::Write).unwrap();
    let (got, err) = target.join();
    assert_same_bytes("what the target got before the reset", &got, &data);
    assert_eq!(
        err.map(|e| e.kind()),
        Some(io::ErrorKind::ConnectionReset),
        "then a reset, not a FIN"
    );
    let mut fwd = fwd;
    fwd.wait_stderr_line(10.0, |l| l.contains("reset (client: TLS stream cut short"));
    terminate(fwd);
}

#[test]
fn a_client_that_does_not_speak_tls_is_reset_and_logged() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf();
    let nobody = NoConnect::new();
    let (fwd, port) = forward(&[
        "--tls-listen",
        "--cert",
        &cert,
        "--key",
        &key,
        "127.0.0.1:0",
        &nobody.server(),
    ]);
    let mut c = client(port);
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let (got, _) = read_all(&mut c);
    // At most a TLS alert, never a byte from a target.
    assert!(got.len() <= 7, "{got:?}");
    let mut fwd = fwd;
    fwd.wait_stderr_line(10.0, |l| l.contains("does not speak TLS"));
    nobody.expect_none(0.3, "a client that failed its handshake");
    terminate(fwd);
}

/// A target on 127.0.0.1 that records what each of `n` connections sends until its EOF.
fn recorder(n: usize) -> (u16, thread::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        (0..n)
            .map(|_| {
                let (mut s, _) = listener.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                read_all(&mut s).0
            })
            .collect()
    });
    (port, handle)
}

/// The v2 block for a TCP client `c` that reached `d`, written out by hand from the spec.
fn v2_header(c: SocketAddr, d: SocketAddr) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    match (c, d) {
        (SocketAddr::V4(c), SocketAddr::V4(d)) => {
            out.extend_from_slice(&[0x21, 0x11, 0, 12]);
            out.extend_from_slice(&c.ip().octets());
            out.extend_from_slice(&d.ip().octets());
        }
        (SocketAddr::V6(c), SocketAddr::V6(d)) => {
            out.extend_from_slice(&[0x21, 0x21, 0, 36]);
            out.extend_from_slice(&c.ip().octets());
            out.extend_from_slice(&d.ip().octets());
        }
        _ => unreachable!("one family"),
    }
    out.extend_from_slice(&c.port().to_be_bytes());
    out.extend_from_slice(&d.port().to_be_bytes());
    out
}

#[test]
fn proxy_headers_v1_and_v2_for_ipv4_and_ipv6_clients_byte_for_byte() {
    for version in ["v1", "v2"] {
        let (tport, recorded) = recorder(2);
        // No host: IPv6 and IPv4 both.
        let (fwd, port) = forward(&[
            "--proxy-protocol",
            version,
            "0",
            &format!("127.0.0.1:{tport}"),
        ]);
        let mut want = Vec::new();
        for ip in ["127.0.0.1", "::1"] {
            let mut c = TcpStream::connect((ip, port)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let (me, it) = (c.local_addr().unwrap(), c.peer_addr().unwrap());
            let mut header = match version {
                "v1" => {
                    let family = if me.is_ipv4() { "TCP4" } else { "TCP6" };
                    format!(
                        "PROXY {family} {} {} {} {}\r\n",
                        me.ip(),
                        it.ip(),
                        me.port(),
                        it.port()
                    )
                    .into_bytes()
                }
                _ => v2_header(me, it),
            };
            c.write_all(b"client bytes").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let (back, err) = read_all(&mut c);
            assert!(back.is_empty() && err.is_none(), "{err:?}");
            header.extend_from_slice(b"client bytes");
            want.push(header);
        }
        let got = recorded.join().unwrap();
        for (got, want) in got.iter().zip(&want) {
            assert_eq!(lossy(got), lossy(want), "--proxy-protocol {version}");
            assert_eq!(got, want, "--proxy-protocol {version}");
        }
        terminate(fwd);
    }
}

#[test]
fn proxy_header_for_a_unix_client_is_v1_unknown_and_v2_local() {
    let dir = tempfile::tempdir().unwrap();
    for (version, header) in [
        ("v1", b"PROXY UNKNOWN\r\n".to_vec()),
        ("v2", b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec()),
    ] {
        let (tport, recorded) = recorder(1);
        let path = dir.path().join(format!("{version}.sock"));
        let mut fwd = Proc::nk(
            [
                "forward",
                "-v",
                "--proxy-protocol",
                version,
                &format!("unix:{}", text(&path)),
                &format!("127.0.0.1:{tport}"),
            ],
            In::Null,
            Out::Pipe,
        );
        fwd.wait_stderr_line(10.0, |l| l.contains("listening on"));
        let mut c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"hi").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let _ = read_all(&mut c);
        let mut want = header;
        want.extend_from_slice(b"hi");
        assert_eq!(
            recorded.join().unwrap(),
            vec![want],
            "--proxy-protocol {version}"
        );
        terminate(fwd);
    }
}

#[test]
fn proxy_header_goes_in_clear_before_the_tls_handshake_with_the_target() {
    let pki = Pki::new();
    let config = pki.rustls_server_config();
    let target = Server::start(move |mut s, _| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") && line.len() < 108 {
            s.read_exact(&mut byte).unwrap();
            line.push(byte[0]);
        }
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, s);
        let (plain, err) = read_all(&mut tls);
        (line, plain, err.map(|e| e.kind()))
    });
    let (fwd, port) = forward(&[
        "--proxy-protocol",
        "v1",
        "--tls-connect",
        "--ca",
        &pki.ca(),
        "127.0.0.1:0",
        &format!("localhost:{}", target.port()),
    ]);
    let c = client(port);
    let me = c.local_addr().unwrap();
    (&c).write_all(b"over tls").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (line, plain, err) = target.join();
    let want = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\n", me.port());
    assert_eq!(lossy(&line), want);
    assert_eq!(plain, b"over tls");
    assert_eq!(err, None, "the target sees close_notify, a clean end");
    terminate(fwd);
}

#[test]
fn nginx_reads_the_client_address_from_the_proxy_header() {
    let site = NginxSite {
        listen_options: "proxy_protocol",
        http_extra:
            "location = /who { return 200 \"$proxy_protocol_addr $proxy_protocol_port\\n\"; }",
        ..NginxSite::default()
    };
    let nginx = nginx_with(|_| {}, &site);
    for version in ["v1", "v2"] {
        let (fwd, port) = forward(&[
            "--proxy-protocol",
            version,
            "127.0.0.1:0",
            &format!("127.0.0.1:{}", nginx.port),
        ]);
        let mut c = client(port);
        let me = c.local_addr().unwrap();
        c.write_all(b"GET /who HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let (answer, err) = read_all(&mut c);
        assert!(err.is_none(), "{err:?}");
        let answer = lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with(&format!("\r\n\r\n127.0.0.1 {}\n", me.port())),
            "--proxy-protocol {version}: {answer}"
        );
        terminate(fwd);
    }
}

#[test]
fn tls_and_proxy_usage_errors_exit_2() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--cert", "c.pem", "--key", "k.pem"],
            "--cert needs --tls-listen or --tls-connect",
        ),
        (
            &["--tls-listen", "--insecure"],
            "--insecure needs --tls-connect",
        ),
        (&["--tls-listen", "--sni", "x"], "--sni needs --tls-connect"),
        (&["--proxy-protocol", "v3"], "v3"),
        (
            &["--tls-connect", "--ca", "/nonexistent/ca.pem"],
            "/nonexistent/ca.pem",
        ),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["forward"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["127.0.0.1:0", "127.0.0.1:9"]);
        run_nk(&args, In::Null, 10.0)
            .expect_code(2)
            .expect_stderr_contains(needle);
    }
    run_nk(
        [
            "forward",
            "--tls-connect",
            "127.0.0.1:0",
            "unix:/tmp/nk-no.sock",
        ],
        In::Null,
        10.0,
    )
    .expect_code(2)
    .expect_stderr_contains("--sni");
}

#[test]
fn a_target_that_never_answers_the_tls_handshake_resets_the_client_within_w() {
    // Accepts, then says nothing: the TCP connect succeeds, the handshake never ends.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = silent.local_addr().unwrap().port();
    let holder = thread::spawn(move || {
        let (s, _) = silent.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The ClientHello arrives; then the forwarder gives up and resets.
        read_all(&mut &s).1.map(|e| e.kind())
    });
    let (fwd, port) = forward(&[
        "--tls-connect",
        "--insecure",
        "-w",
        "1",
        "127.0.0.1:0",
        &format!("localhost:{tport}"),
    ]);
    expect_no_service(port, "a silent TLS target", true);
    assert_eq!(holder.join().unwrap(), Some(io::ErrorKind::ConnectionReset));
    let mut fwd = fwd;
    let line = fwd.wait_stderr_line(10.0, |l| l.contains("client reset"));
    assert!(
        line.contains("TLS handshake") && line.contains("timed out"),
        "{line}"
    );
    terminate(fwd);
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_reset_after_ten_seconds() {
    let nobody = NoConnect::new();
    let (fwd, port) = forward(&["--tls-listen", "127.0.0.1:0", &nobody.server()]);
    let mut c = connect_local(port);
    // Half a ClientHello's record header, then nothing.
    c.write_all(&[0x16, 0x03]).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (got, err) = read_all(&mut c);
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::ConnectionReset));
    let mut fwd = fwd;
    fwd.wait_stderr_line(10.0, |l| {
        l.contains("TLS handshake did not finish within 10s") && l.ends_with("; reset")
    });
    nobody.expect_none(0.1, "a client that never finished its handshake");
    terminate(fwd);
}

#[test]
fn tls_over_a_unix_socket_between_two_forwarders() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf();
    let (_echo, eport) = socat_echo();
    let dir = tempfile::tempdir().unwrap();
    let sock = format!("unix:{}", text(&dir.path().join("tls.sock")));
    // Terminates TLS on a Unix socket ...
    let mut inner = Proc::nk(
        [
            "forward",
            "-v",
            "--tls-listen",
            "--cert",
            &cert,
            "--key",
            &key,
            &sock,
            &format!("127.0.0.1:{eport}"),
        ],
        In::Null,
        Out::Pipe,
    );
    inner.wait_stderr_line(10.0, |l| l.contains("listening on"));
    // ... which this one reaches with TLS (a Unix target's name comes from --sni).
    let (outer, port) = forward(&[
        "--tls-connect",
        "--ca",
        &pki.ca(),
        "--sni",
        "localhost",
        "127.0.0.1:0",
        &sock,
    ]);
    let data = Arc::new(prng_bytes(4 * MIB, 35));
    let got = round_trip(client(port), Arc::clone(&data));
    assert_same_bytes("TLS over a Unix socket", &got, &data);
    inner.wait_stderr_line(10.0, |l| {
        l.contains("unix client [TLS 1.3") && l.ends_with("fin")
    });
    terminate(outer);
    terminate(inner);
}

/// `-x` and `--pcap` record what the flows carry: the plaintext, not the TLS records, on a
/// `--tls-listen` connection.
#[test]
fn the_recordings_of_a_tls_connection_hold_its_plaintext() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf();
    let (_echo, eport) = socat_echo();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.txt");
    let dump = dump.to_str().unwrap();
    let target = format!("127.0.0.1:{eport}");
    let (mut fwd, port) = forward(&[
        "--tls-listen",
        "--cert",
        &cert,
        "--key",
        &key,
        "-x",
        dump,
        "127.0.0.1:0",
        &target,
    ]);
    let out = dial_tls(&pki, &[], port, b"plaintext-marker\n".to_vec());
    out.expect_code(0);
    assert_eq!(out.stdout, b"plaintext-marker\n");
    fwd.wait_stderr_line(20.0, |l| l.contains("bytes up"));
    terminate(fwd);
    let text = std::fs::read_to_string(dump).unwrap();
    // The dump's ASCII column shows the bytes both ways.
    assert!(
        text.matches("plaintext-marke").count() >= 2,
        "the plaintext is not in the dump:\n{text}"
    );
}

/// A deterministic byte stream (xorshift64), produced in 64 KiB blocks: the writer sends it,
/// the checker regenerates it and compares every byte, so no copy of a GiB is held.
struct Stream {
    state: u64,
    block: Vec<u8>,
    at: usize,
}

impl Stream {
    const BLOCK: usize = 64 * 1024;

    fn new(seed: u64) -> Stream {
        Stream {
            state: seed | 1,
            block: vec![0; Stream::BLOCK],
            at: Stream::BLOCK,
        }
    }

    fn next_block(&mut self) -> &[u8] {
        for word in self.block.chunks_exact_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            word.copy_from_slice(&self.state.to_le_bytes());
        }
        self.at = 0;
        &self.block
    }

    /// Compares `got` with what comes next; the offset (from `base`) of a difference.
    fn check(&mut self, got: &[u8], base: u64) -> Result<(), u64> {
        let mut done = 0;
        while done < got.len() {
            if self.at == Stream::BLOCK {
                self.next_block();
            }
            let n = (Stream::BLOCK - self.at).min(got.len() - done);
            if got[done..done + n] != self.block[self.at..self.at + n] {
                return Err(base + done as u64);
            }
            self.at += n;
            done += n;
        }
        Ok(())
    }
}

/// Runs `nk CLIENT...` with `GIB` bytes of [`Stream`] on stdin and checks that its stdout
/// (the echo that came back through the forwarder) is the same stream, byte for byte, and
/// ends there; every wait bounded.
fn one_gib_echoed(what: &str, client: &[&str]) {
    const GIB: u64 = 1 << 30;
    let mut child = Command::new(NK)
        .args(client)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the client");
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        let mut stream = Stream::new(0x5eed);
        for _ in 0..GIB / Stream::BLOCK as u64 {
            if stdin.write_all(stream.next_block()).is_err() {
                return;
            }
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let checker = thread::spawn(move || {
        let mut expected = Stream::new(0x5eed);
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match stdout.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    if total + n as u64 > GIB {
                        return Err(format!("more than 1 GiB came back ({})", total + n as u64));
                    }
                    expected
                        .check(&buf[..n], total)
                        .map_err(|at| format!("the echo differs at byte {at}"))?;
                    total += n as u64;
                }
                Err(e) => return Err(format!("read the echo: {e}")),
            }
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let said = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = std::time::Instant::now();
    while !checker.is_finished() && started.elapsed() < Duration::from_secs(240) {
        thread::sleep(Duration::from_millis(50));
    }
    if !checker.is_finished() {
        let _ = child.kill();
    }
    let checked = checker.join().unwrap();
    let status = child.wait().unwrap();
    writer.join().unwrap();
    let said = said.join().unwrap();
    assert_eq!(checked, Ok(GIB), "{what}: {status}\n{said}");
    assert!(status.success(), "{what}: {status}\n{said}");
}

#[test]
fn one_gib_both_ways_byte_exact_through_tcp_unix_and_tls_on_either_side() {
    // One after another: each moves 2 GiB through the forwarder and socat's echo.
    let pki = Pki::new();
    let ca = pki.ca();
    let (_echo, eport) = socat_echo();
    let plain_target = format!("127.0.0.1:{eport}");

    let (fwd, port) = forward(&["127.0.0.1:0", &plain_target]);
    one_gib_echoed("TCP", &["dial", "127.0.0.1", &port.to_string()]);
    terminate(fwd);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fwd.sock");
    let listen = format!("unix:{}", path.display());
    let mut fwd = Proc::nk(
        ["forward", "-v", &listen, &plain_target],
        In::Null,
        Out::Pipe,
    );
    fwd.wait_stderr_line(10.0, |l| l.contains("listening on"));
    one_gib_echoed("Unix -> TCP", &["unix", path.to_str().unwrap()]);
    terminate(fwd);

    let (fwd, port) = tls_listen_to(&pki, eport);
    let port = port.to_string();
    one_gib_echoed(
        "--tls-listen",
        &["dial", "--tls", "--ca", &ca, "localhost", &port],
    );
    terminate(fwd);

    let (_tls_echo, tport) = socat_tls_echo(&pki);
    let tls_target = format!("localhost:{tport}");
    let (fwd, port) = forward(&["--tls-connect", "--ca", &ca, "127.0.0.1:0", &tls_target]);
    one_gib_echoed("--tls-connect", &["dial", "127.0.0.1", &port.to_string()]);
    terminate(fwd);
}
