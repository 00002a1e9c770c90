//! TLS on loopback: `nk dial --tls` / `nk listen --tls` against each other, openssl
//! s_server / s_client and nmap's ncat --ssl (byte-exact both ways, half-closes); certificate
//! checks (unknown CA, name, expired / not yet valid leaves made with rcgen); `nk head
//! https://` against nginx with TLS and against a rustls server of the test's own that closes
//! without close_notify; `nk smtp --starttls` / `--tls` against aiosmtpd, and STARTTLS against
//! a scripted server that injects plaintext after its 220 or does not offer STARTTLS.
//!
//! A CA and a leaf for localhost / 127.0.0.1 are made by the openssl CLI for each test.
//! Ports come from the kernel where the peer can report them (nk -v, aiosmtpd, the test's own
//! servers); ncat, s_server and nginx get one that was free a moment ago. Every wait is
//! bounded; a missing peer tool fails the test.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::{ServerConnection, StreamOwned};
use serde_json::Value;

use common::aiosmtpd::{Aiosmtpd, SmtpTls, Stored};
use common::http::{
    expect_ok_head, expect_timing_line, head, nginx_with, split_heads, Nginx, NginxSite,
};
use common::pki::{text, Pki};
use common::*;

/// `openssl s_server` on a kernel-chosen port with the leaf; its stdin is `greeting`.
fn s_server(pki: &Pki, greeting: &[u8]) -> (Proc, u16) {
    s_server_with(&pki.path("leaf.pem"), &pki.path("leaf.key"), greeting)
}

/// `openssl s_server` on a port that was free a moment ago with `cert` and `key`; its stdin
/// is `greeting`.
fn s_server_with(cert: &Path, key: &Path, greeting: &[u8]) -> (Proc, u16) {
    let port = free_port("127.0.0.1");
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-naccept", "1", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", &text(cert), "-key", &text(key)]);
    let mut server = Proc::spawn("openssl s_server", cmd, In::Pipe, Out::Pipe);
    // s_server says ACCEPT once it listens (connecting to check would use up -naccept 1).
    server.wait_stdout_line(10.0, |l| l.contains("ACCEPT"));
    server
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(greeting)
        .expect("write greeting");
    (server, port)
}

/// Writes `data` to `p`'s stdin pipe from a thread (it blocks while nk is not reading), then
/// closes it (EOF).
fn feed_stdin(p: &mut Proc, data: &[u8]) -> thread::JoinHandle<std::io::Result<()>> {
    let mut stdin = p.stdin.take().expect("stdin is a pipe");
    let input = data.to_vec();
    thread::spawn(move || stdin.write_all(&input))
}

/// Writes `data` to `p`'s stdin pipe, then closes it (EOF).
fn finish_input(p: &mut Proc, data: &[u8]) {
    let mut stdin = p.stdin.take().expect("stdin is a pipe");
    stdin.write_all(data).expect("write nk's input");
}

/// `nk [-v] dial --tls OPTS HOST PORT` (10 s bound); a `-v` first in `opts` goes before `dial`.
fn dial_tls(opts: &[&str], host: &str, port: u16, stdin: In) -> Finished {
    let (global, opts) = match opts {
        ["-v", rest @ ..] => (&["-v"][..], rest),
        _ => (&[][..], opts),
    };
    let port = port.to_string();
    let args = [global, &["dial", "--tls"], opts, &[host, &port]].concat();
    run_nk(&args, stdin, 10.0)
}

/// `nk -v listen --tls` with the Pki's leaf on a kernel-chosen port, stdin and stdout piped.
fn nk_listen_with_leaf(pki: &Pki) -> (Proc, u16) {
    nk_listen_tls(pki, In::Pipe, Out::Pipe)
}

/// `nk -v listen --tls` with the Pki's leaf on a kernel-chosen port.
fn nk_listen_tls(pki: &Pki, stdin: In, stdout: Out) -> (Proc, u16) {
    let (cert, key) = pki.leaf();
    let mut server = Proc::nk(
        [
            "-v",
            "listen",
            "--tls",
            "--cert",
            &cert,
            "--key",
            &key,
            "127.0.0.1:0",
        ],
        stdin,
        stdout,
    );
    let port = server.nk_listening_port();
    (server, port)
}

/// `openssl s_client OPTS -servername localhost -connect 127.0.0.1:PORT`, its stdin `input`.
fn s_client(opts: &[&str], port: u16, input: &[u8]) -> Proc {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .args(opts)
        .args(["-servername", "localhost", "-connect"])
        .arg(format!("127.0.0.1:{port}"));
    let name = format!("openssl s_client {}", opts.join(" "));
    Proc::spawn(&name, cmd, In::Bytes(input.to_vec()), Out::Pipe)
}

/// `s_client` (sending `hello from s_client`) against nk listen `server` (sending `hello from
/// nk` once s_client's bytes are in: nk's close_notify ends s_client): each gets the other's
/// bytes and nk exits 0. Returns s_client's end.
fn hello_both_ways(mut server: Proc, s_client: Proc) -> Finished {
    server.wait_stdout_len(b"hello from s_client\n".len(), 10.0);
    finish_input(&mut server, b"hello from nk\n");
    let client = s_client.wait(10.0);
    client.expect_stdout_contains("hello from nk");
    let server = server.wait(10.0);
    server.expect_code(0);
    server.expect_stdout_contains("hello from s_client");
    client
}

#[test]
fn nk_dial_tls_to_nk_listen_tls_both_ways() {
    let mut server = Proc::nk(
        ["-v", "listen", "--tls", "127.0.0.1:0"],
        In::Bytes(b"from the server\n".to_vec()),
        Out::Pipe,
    );
    let port = server.nk_listening_port();
    let client = dial_tls(
        &["--insecure"],
        "127.0.0.1",
        port,
        In::Bytes(b"from the client\n".to_vec()),
    );
    client.expect_code(0).expect_stdout(b"from the server\n");
    client.expect_stderr_contains("--insecure");
    let server = server.wait(10.0);
    server.expect_code(0).expect_stdout(b"from the client\n");
    server.expect_stderr_contains("self-signed, made for this run");
}

#[test]
fn nk_dial_tls_verifies_openssl_s_server_with_the_ca() {
    let pki = Pki::new();
    let (server, port) = s_server(&pki, b"hello from s_server\n");
    let client = dial_tls(
        &["-v", "--ca", &pki.ca()],
        "localhost",
        port,
        In::Bytes(b"hello from nk\n".to_vec()),
    );
    client
        .expect_code(0)
        .expect_stdout(b"hello from s_server\n");
    client.expect_stderr_contains("TLS 1.3");
    let server = server.wait(10.0);
    server.expect_stdout_contains("hello from nk");
}

#[test]
fn openssl_s_client_reaches_nk_listen_tls_with_a_given_certificate() {
    let pki = Pki::new();
    let (server, port) = nk_listen_with_leaf(&pki);
    let client = s_client(
        &["-quiet", "-verify_return_error", "-CAfile", &pki.ca()],
        port,
        b"hello from s_client\n",
    );
    hello_both_ways(server, client);
}

#[test]
fn an_unknown_ca_fails_with_the_reason_and_insecure_passes() {
    let pki = Pki::new();
    let (_server, port) = s_server(&pki, b"");
    let out = dial_tls(&[], "localhost", port, In::Null);
    out.expect_code(1).expect_stdout(b"");
    out.expect_stderr_contains("unknown issuer")
        .expect_stderr_contains("hint: ");

    let (_server, port) = s_server(&pki, b"insecure but here\n");
    let out = dial_tls(&["--insecure"], "localhost", port, In::Null);
    out.expect_code(0).expect_stdout(b"insecure but here\n");
}

#[test]
fn a_wrong_host_name_fails_with_the_reason() {
    let pki = Pki::new();
    let (_server, port) = s_server(&pki, b"");
    let out = dial_tls(
        &["--ca", &pki.ca(), "--sni", "wrong.example"],
        "127.0.0.1",
        port,
        In::Null,
    );
    out.expect_code(1).expect_stderr_contains(
        "name mismatch: the certificate is for localhost, 127.0.0.1, not wrong.example",
    );
}

#[test]
fn a_certificate_with_only_a_cn_is_named_as_such() {
    let pki = Pki::new();
    for (v3, says) in [
        (true, "names no host in subjectAltName"),
        (false, "the certificate is X.509 v1"),
    ] {
        let (cert, key) = pki.cn_only_leaf(v3);
        let (_server, port) = s_server_with(&cert, &key, b"");
        let out = dial_tls(
            &["--ca", &pki.ca(), "--sni", "localhost"],
            "127.0.0.1",
            port,
            In::Null,
        );
        out.expect_code(1)
            .expect_stderr_contains(says)
            .expect_stderr_contains("hint: reissue it with");
    }
}

#[test]
fn tls_usage_errors_exit_2() {
    for args in [
        vec!["dial", "--ca", "/nonexistent", "127.0.0.1", "1"],
        vec!["dial", "--tls", "--ca", "/nonexistent", "127.0.0.1", "1"],
        vec!["listen", "--tls", "--cert", "/nonexistent", "0"],
        // -k is listen's keep-open to an nc user: dial takes only --insecure.
        vec!["dial", "--tls", "-k", "127.0.0.1", "1"],
    ] {
        let out = run_nk(&args, In::Null, 10.0);
        out.expect_code(2);
    }
}

// ---------------------------------------------------------------------------
// ncat --ssl (nmap's ncat) both ways, byte-exact, with half-closes
// ---------------------------------------------------------------------------

/// `ncat ARGS`.
fn ncat(args: &[&str], stdin: In, stdout: Out) -> Proc {
    require_tool("ncat", "ncat");
    let mut c = Command::new("ncat");
    c.args(args);
    Proc::spawn(&format!("ncat {}", args.join(" ")), c, stdin, stdout)
}

/// After a peer's close_notify/FIN has been seen on the wire, the time given nk to act on it
/// before input is written: an nk that closed the whole connection on the peer's EOF has done
/// so by then (nk dial keeps sending until its stdin ends).
const AFTER_PEER_EOF: Duration = Duration::from_millis(200);

/// Waits for the peer's `peer_sent` bytes on `nk`'s stdout (the peer's EOF follows them),
/// gives nk [`AFTER_PEER_EOF`] to act on that EOF, then writes `input` to nk and closes it.
fn input_after_peer_eof(nk: &mut Proc, peer_sent: usize, input: &[u8]) {
    nk.wait_stdout_len(peer_sent, 10.0);
    thread::sleep(AFTER_PEER_EOF);
    finish_input(nk, input);
}

#[test]
fn nk_dial_tls_to_ncat_ssl_server_both_ways_after_its_half_close() {
    let pki = Pki::new();
    let from_server = prng_bytes(300_000, 11);
    let from_client = prng_bytes(1 << 20, 12);
    let port = free_port("127.0.0.1").to_string();
    let got_by_ncat = pki.path("ncat.out");
    let (cert, key) = pki.leaf();
    // ncat sends its stdin, then (at its stdin's EOF) ends its side, and keeps reading.
    let mut server = ncat(
        &[
            "-v",
            "--ssl",
            "--ssl-cert",
            &cert,
            "--ssl-key",
            &key,
            "-l",
            "127.0.0.1",
            &port,
        ],
        In::Bytes(from_server.clone()),
        Out::File(got_by_ncat.clone()),
    );
    server.wait_stderr_line(10.0, |l| l.contains("Listening on"));
    let mut client = Proc::nk(
        ["dial", "--tls", "--ca", &pki.ca(), "localhost", &port],
        In::Pipe,
        Out::Pipe,
    );
    // Everything ncat had, then its EOF; only then does nk get input to send.
    input_after_peer_eof(&mut client, from_server.len(), &from_client);
    let client = client.wait(10.0);
    client.expect_code(0);
    assert_same_bytes("nk's stdout (ncat's stdin)", &client.stdout, &from_server);
    let server = server.wait(10.0);
    assert_same_bytes(
        &format!(
            "ncat's output (nk's stdin, sent after ncat's EOF)\n{}",
            server.describe()
        ),
        &read_file(&got_by_ncat),
        &from_client,
    );
}

#[test]
fn ncat_ssl_verify_client_to_nk_listen_tls_both_ways_after_its_half_close() {
    let pki = Pki::new();
    let from_client = prng_bytes(300_000, 21);
    let from_server = prng_bytes(1 << 20, 22);
    let (mut server, port) = nk_listen_with_leaf(&pki);
    let port = port.to_string();
    let got_by_ncat = pki.path("ncat.out");
    // nk's input is flowing when ncat's EOF arrives (a listener whose stdin is idle then ends
    // at the client's EOF, as `nc -l` does): all of it must still reach ncat.
    let writer = feed_stdin(&mut server, &from_server);
    // ncat verifies nk's certificate (CA and the name localhost), sends its stdin, then (at
    // its stdin's EOF) ends its side with a bare TCP shutdown (no close_notify: ncat 7.93),
    // and keeps reading.
    let client = ncat(
        &[
            "-v",
            "--ssl",
            "--ssl-verify",
            "--ssl-trustfile",
            &pki.ca(),
            "localhost",
            &port,
        ],
        In::Bytes(from_client.clone()),
        Out::File(got_by_ncat.clone()),
    );
    let client = client.wait(10.0);
    let server = server.wait(10.0);
    let _ = writer.join();
    assert_same_bytes(
        &format!(
            "ncat's output (nk's stdin, sent after ncat's EOF)\n{}\n{}",
            client.describe(),
            server.describe()
        ),
        &read_file(&got_by_ncat),
        &from_server,
    );
    client.expect_code(0);
    server.expect_code(0);
    assert_same_bytes("nk's stdout (ncat's stdin)", &server.stdout, &from_client);
}

/// The ncat case with a client of the test's own: it ends its side with a bare TCP FIN (as
/// ncat does at its stdin's EOF), then reads slowly through a small receive buffer, so that
/// nk's input is still on its way inside nk (in the TLS bridge) when that input ends. All of
/// it must still arrive, ended by close_notify, before nk exits.
#[test]
fn nk_listen_tls_delivers_all_input_after_the_peers_eof_to_a_slow_reader() {
    let pki = Pki::new();
    // Several MiB: a slow read of it lasts long enough for nk's input to end meanwhile.
    let from_server = prng_bytes(6 << 20, 31);
    let (mut server, port) = nk_listen_with_leaf(&pki);
    // A small receive buffer: the reader's pace is the pace of the connection.
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    sock.connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)).into(),
        Duration::from_secs(5),
    )
    .expect("connect to nk");
    let tcp = TcpStream::from(sock);
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set_read_timeout");
    let name = "localhost".try_into().expect("server name");
    let conn =
        rustls::ClientConnection::new(pki.rustls_client_config(), name).expect("client connection");
    let mut c = StreamOwned::new(conn, tcp);
    // nk's input is flowing when the client's EOF arrives, so the listener sends all of it.
    let writer = feed_stdin(&mut server, &from_server);
    c.write_all(b"hello from a slow reader\n")
        .expect("send over TLS");
    c.flush().expect("flush");
    // Proof that nk's input flows before the EOF goes (the feeder thread could lag, and a
    // listener whose stdin has given nothing yet stops at its peer's EOF, as nc -l).
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let n = c.read(&mut buf).expect("the first bytes of nk's input");
    got.extend_from_slice(&buf[..n]);
    c.sock.shutdown(Shutdown::Write).expect("shutdown");
    server.wait_stdout_len(25, 10.0);
    // About 16 MB/s at most.
    let started = Instant::now();
    let end = loop {
        match c.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still reading after 15 s"
        );
        thread::sleep(Duration::from_millis(1));
    };
    let _ = writer.join();
    let server = server.wait(10.0);
    assert_same_bytes(
        &format!("what the slow reader got\n{}", server.describe()),
        &got,
        &from_server,
    );
    assert!(
        end.is_ok(),
        "the stream did not end with close_notify: {end:?}\n{}",
        server.describe()
    );
    server.expect_code(0);
    assert_eq!(lossy(&server.stdout), "hello from a slow reader\n");
}

// ---------------------------------------------------------------------------
// the ephemeral certificate's fingerprint, as openssl s_client sees it
// ---------------------------------------------------------------------------

/// The first PEM certificate in `out`.
fn first_pem_certificate(out: &str) -> Option<String> {
    let begin = out.find("-----BEGIN CERTIFICATE-----")?;
    let end_tag = "-----END CERTIFICATE-----";
    let end = begin + out[begin..].find(end_tag)? + end_tag.len();
    Some(format!("{}\n", &out[begin..end]))
}

/// `openssl x509 -noout -fingerprint -sha256` of a PEM certificate: `AB:CD:...`.
fn openssl_fingerprint(pem: &[u8]) -> String {
    let out = Proc::spawn(
        "openssl x509 -fingerprint",
        {
            let mut c = Command::new("openssl");
            c.args(["x509", "-noout", "-fingerprint", "-sha256"]);
            c
        },
        In::Bytes(pem.to_vec()),
        Out::Pipe,
    )
    .wait(10.0);
    out.expect_code(0);
    // "sha256 Fingerprint=AB:CD:..." (the case of the label varies between versions)
    out.stdout_text()
        .trim()
        .split_once('=')
        .unwrap_or_else(|| panic!("no fingerprint in\n{}", out.describe()))
        .1
        .to_ascii_uppercase()
}

#[test]
fn openssl_s_client_sees_the_ephemeral_certificate_listen_v_fingerprints() {
    require_tool("openssl", "openssl");
    let mut server = Proc::nk(
        ["-v", "listen", "--tls", "127.0.0.1:0"],
        In::Pipe,
        Out::Pipe,
    );
    // nk: TLS certificate SHA-256 AB:CD:... (self-signed, made for this run)
    let line = server.wait_stderr_line(10.0, |l| l.contains("SHA-256 "));
    let announced = line
        .split("SHA-256 ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    assert!(
        announced.len() == 32 * 3 - 1
            && announced
                .split(':')
                .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit())),
        "not a SHA-256 fingerprint in {line:?}"
    );
    assert!(line.contains("self-signed"), "{line:?}");
    let port = server.nk_listening_port();
    let client = s_client(&["-showcerts", "-ign_eof"], port, b"hello from s_client\n");
    let client = hello_both_ways(server, client);
    let pem = first_pem_certificate(&client.stdout_text())
        .unwrap_or_else(|| panic!("s_client showed no certificate\n{}", client.describe()));
    assert_eq!(
        openssl_fingerprint(pem.as_bytes()),
        announced,
        "the certificate s_client got vs nk listen -v's fingerprint"
    );
}

// ---------------------------------------------------------------------------
// validity dates: expired, not valid yet (certificates made with rcgen)
// ---------------------------------------------------------------------------

/// An rcgen CA (valid) and a leaf for localhost / 127.0.0.1 signed by it, valid only from
/// `not_before` to `not_after`: (ca.pem, leaf.pem, leaf.key) in `dir`.
fn rcgen_pki(
    dir: &Path,
    not_before: (i32, u8, u8),
    not_after: (i32, u8, u8),
) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nk rcgen test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("leaf params");
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let leaf = params.signed_by(&leaf_key, &ca).expect("leaf certificate");
    let write = |name: &str, data: String| {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    };
    (
        write("rcgen-ca.pem", ca.pem()),
        write("rcgen-leaf.pem", leaf.pem()),
        write("rcgen-leaf.key", leaf_key.serialize_pem()),
    )
}

/// `nk dial --tls` to an s_server with a leaf valid only from `not_before` to `not_after`:
/// with the CA it fails with `reason`, with --insecure it passes (and warns).
fn dates_fail_with(not_before: (i32, u8, u8), not_after: (i32, u8, u8), reason: &str) {
    require_tool("openssl", "openssl");
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = rcgen_pki(dir.path(), not_before, not_after);
    let (server, port) = s_server_with(&cert, &key, b"");
    let out = dial_tls(&["--ca", &text(&ca)], "localhost", port, In::Null);
    out.expect_code(1).expect_stdout(b"");
    out.expect_stderr_contains(reason)
        .expect_stderr_contains("hint: ");
    drop(server);

    let (server, port) = s_server_with(&cert, &key, b"dates unchecked\n");
    let out = dial_tls(&["--insecure"], "localhost", port, In::Null);
    out.expect_code(0).expect_stdout(b"dates unchecked\n");
    out.expect_stderr_contains("--insecure");
    drop(server);
}

#[test]
fn an_expired_certificate_fails_with_the_reason_and_insecure_passes() {
    // Control: the same kind of chain with dates around now passes, so what fails below is
    // the dates.
    require_tool("openssl", "openssl");
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = rcgen_pki(dir.path(), (2020, 1, 1), (2090, 1, 1));
    let (_server, port) = s_server_with(&cert, &key, b"valid dates\n");
    let out = dial_tls(&["--ca", &text(&ca)], "localhost", port, In::Null);
    out.expect_code(0).expect_stdout(b"valid dates\n");

    dates_fail_with((2020, 1, 1), (2021, 1, 1), "expired");
}

#[test]
fn a_not_yet_valid_certificate_fails_with_the_reason_and_insecure_passes() {
    dates_fail_with((2090, 1, 1), (2091, 1, 1), "not valid yet");
}

// ---------------------------------------------------------------------------
// helpers: a TLS server of the test's own (rustls), for what real servers cannot be made to
// do on demand (close without close_notify, inject bytes before a STARTTLS handshake)
// ---------------------------------------------------------------------------

type TlsStream = StreamOwned<ServerConnection, TcpStream>;

/// The server side of a handshake over `tcp` (10 s read and write timeouts).
fn tls_accept(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> TlsStream {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set_read_timeout");
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("set_write_timeout");
    let mut s = StreamOwned::new(
        ServerConnection::new(config).expect("server connection"),
        tcp,
    );
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .unwrap_or_else(|e| panic!("test TLS server: handshake: {e}"));
    }
    s
}

/// Sends everything rustls holds for the wire.
fn flush_tls(s: &mut TlsStream) {
    while s.conn.wants_write() {
        s.conn.write_tls(&mut s.sock).expect("write TLS records");
    }
}

/// One line (up to LF, without CR LF), read a byte at a time (so that nothing past it is
/// consumed). `None` at EOF, an error or a timeout.
fn read_line_raw(r: &mut impl Read) -> Option<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => return None,
            Ok(_) => {
                if b[0] == b'\n' {
                    break;
                }
                line.push(b[0]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(
        String::from_utf8_lossy(&line)
            .trim_end_matches('\r')
            .to_string(),
    )
}

// ---------------------------------------------------------------------------
// head https:// against nginx with TLS, and a plain server block that redirects to it
// ---------------------------------------------------------------------------

const INDEX_HTML: &str = "<!doctype html>\n<p>hello over TLS</p>\n";

/// Size of the web root's random file big.bin.
const BIG: usize = 1 << 20;

/// nginx (tests/common/http.rs) with the Pki's leaf: its TLS port serves the web root
/// (index.html, big.bin) and /back: a 302 to `http://127.0.0.1:PORT/plain`; its plain `port`
/// answers /plain with 200 and every other request with a 301 to
/// `https://localhost:TLS_PORT` + the same path. Returns nginx and big.bin.
fn nginx_tls(pki: &Pki) -> (Nginx, Vec<u8>) {
    let big = prng_bytes(BIG, 41);
    let www = |www: &Path| {
        std::fs::write(www.join("index.html"), INDEX_HTML).expect("write index.html");
        std::fs::write(www.join("big.bin"), &big).expect("write big.bin");
    };
    let (cert, key) = (pki.path("leaf.pem"), pki.path("leaf.key"));
    let site = NginxSite {
        tls: Some((&cert, &key)),
        http_extra: "location / { return 301 https://localhost:{https_port}$request_uri; }\n\
                     location = /plain { return 200 \"plain\\n\"; }",
        https_extra: "location = /back { return 302 http://127.0.0.1:{http_port}/plain; }",
        ..NginxSite::default()
    };
    (nginx_with(www, &site), big)
}

/// `https://localhost:PORT` + `path` (the Pki's leaf is for localhost).
fn https_url(port: u16, path: &str) -> String {
    format!("https://localhost:{port}{path}")
}

/// `openssl x509` dates of a certificate as nk prints them: `2026-11-21 16:00:00 UTC`.
fn openssl_dates(cert: &Path) -> (String, String) {
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-startdate",
            "-enddate",
            "-dateopt",
            "iso_8601",
            "-in",
        ])
        .arg(cert)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl x509");
    assert!(out.status.success(), "openssl x509 -startdate: {out:?}");
    let text = lossy(&out.stdout);
    // notBefore=2026-11-21 16:46:58Z
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.strip_suffix('Z'))
            .map(|v| format!("{v} UTC"))
            .unwrap_or_else(|| panic!("no {key} in {text:?}"))
    };
    (get("notBefore="), get("notAfter="))
}

/// stdout as one JSON value.
fn json(out: &Finished) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON: {e}\n{}", out.describe()))
}

#[test]
fn head_https_against_nginx_trust_get_and_verbose() {
    let pki = Pki::new();
    let (ng, big) = nginx_tls(&pki);
    let ca = pki.ca();
    let url = https_url(ng.https_port(), "/");

    // With the CA: the head as nginx sent it.
    let out = head(&["--ca", &ca, &url]);
    expect_ok_head(&out, "HTTP/1.1 200 OK");
    assert!(
        lossy(&out.stdout).contains(&format!("\r\nContent-Length: {}\r\n", INDEX_HTML.len())),
        "{}",
        out.describe()
    );

    // The system store does not know the test CA.
    let out = head(&[&url]);
    out.expect_code(1).expect_stdout(b"");
    out.expect_stderr_contains("unknown issuer");

    // -k / --insecure: no check, a warning.
    for flag in ["-k", "--insecure"] {
        let out = head(&[flag, &url]);
        out.expect_code(0);
        assert!(
            out.stdout.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{flag}\n{}",
            out.describe()
        );
        out.expect_stderr_contains("insecure");
    }

    // --get: 1 MiB body byte-exact after the head.
    let big_url = https_url(ng.https_port(), "/big.bin");
    let out = head(&["--get", "--ca", &ca, &big_url]);
    out.expect_code(0);
    let i = find(&out.stdout, b"\r\n\r\n").expect("a head") + 4;
    assert!(
        lossy(&out.stdout[..i]).starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        out.describe()
    );
    assert_same_bytes("the body of big.bin", &out.stdout[i..], &big);

    // -v: the handshake (TLS 1.3, ALPN http/1.1 offered by default), the tls timing field.
    let out = head(&["-v", "--ca", &ca, &url]);
    out.expect_code(0);
    out.expect_stderr_contains("TLS 1.3, ")
        .expect_stderr_contains("ALPN http/1.1");
    expect_timing_line(&out, &["resolve", "connect", "tls", "first byte", "total"]);

    // --json: timing.tls_ms for https, null for http.
    let out = head(&["--json", "--ca", &ca, &url]);
    out.expect_code(0);
    let v = json(&out);
    assert_eq!(v["status"], 200, "{v}");
    assert!(
        v["timing"]["tls_ms"].as_f64().is_some_and(|x| x >= 0.0),
        "timing.tls_ms should be a number >= 0 in {v}"
    );
    let out = head(&["--json", &format!("http://127.0.0.1:{}/", ng.port)]);
    out.expect_code(0);
    let v = json(&out);
    assert_eq!(v["status"], 301, "{v}");
    assert!(v["timing"]["tls_ms"].is_null(), "tls_ms for http: {v}");
}

/// Panics unless `out`'s stderr has the contract's certificate line for the Pki's leaf:
/// `peer certificate: subject CN=localhost, issuer CN=nk test CA, valid A UTC to B UTC,
/// SHA-256 AB:CD:...`, the dates and fingerprint as openssl reads them from leaf.pem.
fn expect_peer_certificate_line(pki: &Pki, out: &Finished) {
    let fp = openssl_fingerprint(&read_file(&pki.path("leaf.pem")));
    let (not_before, not_after) = openssl_dates(&pki.path("leaf.pem"));
    let want = format!(
        "peer certificate: subject CN=localhost, issuer CN=nk test CA, valid {not_before} to {not_after}, SHA-256 {fp}"
    );
    assert!(
        out.stderr.lines().any(|l| l.ends_with(&want)),
        "no stderr line ending {want:?}\n{}",
        out.describe()
    );
}

#[test]
fn verbose_clients_print_the_peer_certificate_subject_issuer_validity_and_fingerprint() {
    let pki = Pki::new();
    let (ng, _) = nginx_tls(&pki);
    let ca = pki.ca();
    let out = head(&["-v", "--ca", &ca, &https_url(ng.https_port(), "/")]);
    out.expect_code(0);
    expect_peer_certificate_line(&pki, &out);

    let (_server, port) = s_server(&pki, b"hello\n");
    let out = dial_tls(&["-v", "--ca", &ca], "localhost", port, In::Null);
    out.expect_code(0);
    expect_peer_certificate_line(&pki, &out);
}

/// Panics unless `out` is a successful `-L` run of two heads: `status` with `Location:
/// location`, then a 200. Returns the heads.
fn expect_redirect_then_200(out: &Finished, status: &str, location: &str) -> Vec<String> {
    out.expect_code(0);
    let heads: Vec<String> = split_heads(&out.stdout).iter().map(|h| lossy(h)).collect();
    assert_eq!(
        heads.len(),
        2,
        "the {status} and the 200\n{}",
        out.describe()
    );
    assert!(
        heads[0].starts_with(&format!("HTTP/1.1 {status} "))
            && heads[0].contains(&format!("\r\nLocation: {location}\r\n")),
        "{}",
        out.describe()
    );
    assert!(
        heads[1].starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        out.describe()
    );
    heads
}

#[test]
fn head_follows_redirects_from_http_to_https_and_back() {
    let pki = Pki::new();
    let (ng, _) = nginx_tls(&pki);
    let ca = pki.ca();
    let url = format!("http://127.0.0.1:{}/index.html", ng.port);
    let out = head(&["-L", "--ca", &ca, &url]);
    let https = https_url(ng.https_port(), "/index.html");
    expect_redirect_then_200(&out, "301", &https);
    // Without the CA the https hop fails verification.
    let out = head(&["-L", &format!("http://127.0.0.1:{}/", ng.port)]);
    out.expect_code(1).expect_stderr_contains("unknown issuer");

    // And back: https -> http.
    let url = https_url(ng.https_port(), "/back");
    let out = head(&["-L", "--ca", &ca, &url]);
    let plain = format!("http://127.0.0.1:{}/plain", ng.port);
    let heads = expect_redirect_then_200(&out, "302", &plain);
    assert!(
        heads[1].contains("\r\nContent-Length: 6\r\n"),
        "{}",
        out.describe()
    );
}

/// An https -> http redirect (a downgrade, and another origin) carries none of the user's
/// credentials: the https server gets Authorization and Cookie, the http one neither.
#[test]
fn head_https_to_http_redirect_never_carries_credentials() {
    let pki = Pki::new();
    let plain = Server::start(|mut tcp, _| {
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set_read_timeout");
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while find(&req, b"\r\n\r\n").is_none() {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let _ = read_until_eof(&mut tcp, 5.0);
        req
    });
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{}/plain\r\nContent-Length: 0\r\n\r\n",
        plain.port()
    );
    let secure = https_once(&pki, redirect.as_bytes(), true);
    let url = https_url(secure.port(), "/");
    let ca = pki.ca();
    let out = head(&[
        "-L",
        "--ca",
        &ca,
        "-H",
        "Authorization: Bearer s3cret",
        "-H",
        "Cookie: session=abc",
        &url,
    ]);
    out.expect_code(0);
    let sent_secure = lossy(&secure.join());
    let sent_plain = lossy(&plain.join());
    assert!(
        sent_secure.contains("\r\nAuthorization: Bearer s3cret\r\n")
            && sent_secure.contains("\r\nCookie: session=abc\r\n"),
        "the https origin gets the credentials: {sent_secure:?}"
    );
    let lower = sent_plain.to_ascii_lowercase();
    assert!(
        sent_plain.starts_with("HEAD /plain HTTP/1.1\r\n")
            && !lower.contains("authorization")
            && !lower.contains("cookie"),
        "the http hop must not carry them: {sent_plain:?}"
    );
}

/// A one-connection HTTPS server (rustls): reads the request head, sends `response`, then
/// closes the TCP connection, with or without close_notify first. Returns the request.
fn https_once(pki: &Pki, response: &[u8], close_notify: bool) -> Server<Vec<u8>> {
    let config = pki.rustls_server_config();
    let response = response.to_vec();
    Server::start(move |tcp, _| {
        let mut s = tls_accept(tcp, config);
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while find(&req, b"\r\n\r\n").is_none() {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s.write_all(&response);
        if close_notify {
            s.conn.send_close_notify();
        }
        flush_tls(&mut s);
        let _ = s.sock.shutdown(Shutdown::Write);
        // The client's end (its own close_notify, FIN); bounded.
        let _ = read_until_eof(&mut s.sock, 5.0);
        req
    })
}

#[test]
fn head_https_a_close_without_close_notify_after_a_complete_response_is_not_an_error() {
    let pki = Pki::new();
    let ca = pki.ca();
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world";
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

    // The server really closes without close_notify: OpenSSL calls that an unexpected EOF;
    // with close_notify it does not.
    let srv = https_once(&pki, response, false);
    let probe = s_client(&["-quiet", "-CAfile", &ca], srv.port(), request).wait(10.0);
    srv.join();
    assert!(
        probe.stdout.ends_with(b"hello world")
            && probe.stderr.to_lowercase().contains("unexpected eof"),
        "openssl should see the response, then an EOF without close_notify\n{}",
        probe.describe()
    );
    let srv = https_once(&pki, response, true);
    let probe = s_client(&["-quiet", "-CAfile", &ca], srv.port(), request).wait(10.0);
    srv.join();
    assert!(
        probe.stdout.ends_with(b"hello world")
            && !probe.stderr.to_lowercase().contains("unexpected eof"),
        "with close_notify openssl should see a clean end\n{}",
        probe.describe()
    );

    // nk: the response was complete (Content-Length), so the missing close_notify is no error.
    for args in [vec!["--get"], vec![]] {
        let srv = https_once(&pki, response, false);
        let url = https_url(srv.port(), "/");
        let mut full = args.clone();
        full.extend(["--ca", &ca, &url]);
        let out = head(&full);
        let req = srv.join();
        out.expect_code(0);
        let want: &[u8] = if args.is_empty() {
            &response[..response.len() - b"hello world".len()]
        } else {
            response
        };
        out.expect_stdout(want);
        assert!(
            lossy(&req).starts_with(if args.is_empty() { "HEAD / " } else { "GET / " }),
            "request: {:?}",
            lossy(&req)
        );
    }

    // Control: a body cut short by such a close is an error.
    let srv = https_once(
        &pki,
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nhello world",
        false,
    );
    let out = head(&["-v", "--get", "--ca", &ca, &https_url(srv.port(), "/")]);
    srv.join();
    out.expect_code(1);
    // -v says the close came without close_notify (a cut can't be told from an end by TLS).
    out.expect_stderr_contains("without close_notify");
}

// ---------------------------------------------------------------------------
// smtp --starttls / --tls against aiosmtpd
// ---------------------------------------------------------------------------

/// aiosmtpd (tests/common/aiosmtpd.rs) speaking TLS (`mode`) with the Pki's leaf.
fn aiosmtpd_tls(pki: &Pki, mode: SmtpTls) -> Aiosmtpd {
    Aiosmtpd::start_tls(mode, &pki.path("leaf.pem"), &pki.path("leaf.key"))
}

/// `nk smtp --from a@example.test --to b@example.test ARGS SERVER` (15 s bound).
fn smtp(args: &[&str], server: &str) -> Finished {
    let mut full = vec!["smtp", "--from", "a@example.test", "--to", "b@example.test"];
    full.extend_from_slice(args);
    full.push(server);
    run_nk(&full, In::Null, 15.0)
}

/// A body with dot lines, as given and as it must arrive (CRLF).
const BODY: &str = "over TLS\n.leading dot\n..two dots\n.\nlast\n";

/// `nk smtp FLAGS --subject "tls test" --body BODY` to `srv`, which must store it, over TLS.
fn deliver_over_tls(srv: &Aiosmtpd, flags: &[&str]) -> Finished {
    let args = [flags, &["--subject", "tls test", "--body", BODY]].concat();
    let out = smtp(&args, &srv.server());
    out.expect_code(0);
    assert_eq!(
        out.stdout_text().trim_end(),
        "250 2.0.0 Ok: queued as TLS1",
        "the final reply on stdout\n{}",
        out.describe()
    );
    let Stored { content, meta } = srv.message(1);
    assert_eq!(meta["mail_from"], "a@example.test", "{meta}");
    assert_eq!(
        meta["rcpt_tos"],
        serde_json::json!(["b@example.test"]),
        "{meta}"
    );
    assert_eq!(meta["tls"], true, "the message came in clear: {meta}");
    let at = find(&content, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header/body split in {:?}", lossy(&content)));
    assert_same_bytes(
        "the body as aiosmtpd stored it",
        &content[at + 4..],
        BODY.replace('\n', "\r\n").as_bytes(),
    );
    assert!(
        lossy(&content[..at]).contains("\r\nSubject: tls test")
            || content.starts_with(b"Subject: tls test"),
        "the header section: {:?}",
        lossy(&content[..at])
    );
    assert_eq!(srv.count(), 1);
    out
}

#[test]
fn smtp_starttls_to_aiosmtpd_delivers_and_plain_is_refused() {
    let pki = Pki::new();
    let ca = pki.ca();
    let srv = aiosmtpd_tls(&pki, SmtpTls::StartTls);
    let out = deliver_over_tls(&srv, &["-v", "--starttls", "--ca", &ca]);
    let lines = out.stderr_lines_unprefixed();
    let pos = |p: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no stderr line starting {p:?}\n{}", out.describe()))
    };
    let (starttls, tls, mail) = (pos("-> STARTTLS"), pos("TLS 1."), pos("-> MAIL FROM:"));
    assert!(
        starttls < tls && tls < mail && lines[starttls + 1].starts_with("<- 220"),
        "-> STARTTLS, <- 220, the handshake, then MAIL\n{}",
        out.describe()
    );
    assert!(
        lines[tls..mail].iter().any(|l| l.starts_with("-> EHLO ")),
        "EHLO again after the handshake\n{}",
        out.describe()
    );

    // Without --starttls the server refuses MAIL (530): nothing delivered.
    let srv = aiosmtpd_tls(&pki, SmtpTls::StartTls);
    let out = smtp(&["--body", BODY], &srv.server());
    out.expect_code(1).expect_stderr_contains("530");
    assert_eq!(srv.count(), 0, "a message was stored");

    // An unknown CA: the handshake fails, nothing delivered.
    let out = smtp(&["--starttls", "--body", BODY], &srv.server());
    out.expect_code(1).expect_stderr_contains("unknown issuer");
    assert_eq!(srv.count(), 0, "a message was stored");
}

#[test]
fn smtp_implicit_tls_to_aiosmtpd_delivers() {
    let pki = Pki::new();
    let srv = aiosmtpd_tls(&pki, SmtpTls::Implicit);
    deliver_over_tls(&srv, &["--tls", "--ca", &pki.ca()]);
}

// ---------------------------------------------------------------------------
// STARTTLS: injected plaintext, and a server that does not offer it (scripted server)
// ---------------------------------------------------------------------------

/// What the scripted server saw.
#[derive(Debug, Default)]
struct Seen {
    /// Command lines before the handshake.
    clear: Vec<String>,
    /// Command lines over TLS.
    tls: Vec<String>,
    /// The message between 354 and `.` (dot-stuffed).
    message: Option<Vec<u8>>,
}

fn verbs(cmds: &[String]) -> Vec<String> {
    cmds.iter()
        .map(|c| {
            c.split([' ', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_uppercase()
        })
        .collect()
}

/// The next command line from `r` (see [`read_line_raw`]), logged in `log`, in upper case.
fn next_command(r: &mut impl Read, log: &mut Vec<String>) -> Option<String> {
    let cmd = read_line_raw(r)?;
    let up = cmd.to_ascii_uppercase();
    log.push(cmd);
    Some(up)
}

/// A scripted SMTP server. In clear: banner; EHLO gets `250 STARTTLS` when `offer`; STARTTLS
/// gets `220 go ahead` followed, in the same write, by `inject`; anything else but QUIT gets
/// 530. Over TLS (leaf of `pki`) it serves EHLO/MAIL/RCPT/DATA/QUIT honestly.
fn starttls_server(pki: &Pki, offer: bool, inject: &'static [u8]) -> Server<Seen> {
    let config = pki.rustls_server_config();
    Server::start(move |mut tcp, _| {
        let mut seen = Seen::default();
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set_read_timeout");
        if tcp.write_all(b"220 scripted.test ESMTP ready\r\n").is_err() {
            return seen;
        }
        loop {
            let Some(up) = next_command(&mut tcp, &mut seen.clear) else {
                return seen;
            };
            let reply: &[u8] = if up.starts_with("EHLO") {
                if offer {
                    b"250-scripted.test\r\n250 STARTTLS\r\n"
                } else {
                    b"250-scripted.test\r\n250 PIPELINING\r\n"
                }
            } else if up == "STARTTLS" && offer {
                let mut r = b"220 go ahead\r\n".to_vec();
                r.extend_from_slice(inject);
                // One write: the injected bytes travel with the 220.
                if tcp.write_all(&r).is_err() {
                    return seen;
                }
                break;
            } else if up == "QUIT" {
                let _ = tcp.write_all(b"221 bye\r\n");
                return seen;
            } else {
                b"530 5.7.0 Must issue a STARTTLS command first\r\n"
            };
            if tcp.write_all(reply).is_err() {
                return seen;
            }
        }
        let mut s = tls_accept(tcp, config);
        loop {
            let Some(up) = next_command(&mut s, &mut seen.tls) else {
                return seen;
            };
            let reply: &[u8] = if up.starts_with("EHLO") {
                b"250-scripted.test\r\n250 8BITMIME\r\n"
            } else if up.starts_with("MAIL FROM:") {
                b"250 2.1.0 Ok\r\n"
            } else if up.starts_with("RCPT TO:") {
                b"250 2.1.5 Ok\r\n"
            } else if up == "DATA" {
                let _ = s.write_all(b"354 go on\r\n");
                flush_tls(&mut s);
                let mut msg = Vec::new();
                loop {
                    let Some(l) = read_line_raw(&mut s) else {
                        seen.message = Some(msg);
                        return seen;
                    };
                    if l == "." {
                        break;
                    }
                    msg.extend_from_slice(l.as_bytes());
                    msg.extend_from_slice(b"\r\n");
                }
                seen.message = Some(msg);
                b"250 2.0.0 Ok: queued as INJ1\r\n"
            } else if up == "QUIT" {
                let _ = s.write_all(b"221 2.0.0 Bye\r\n");
                s.conn.send_close_notify();
                flush_tls(&mut s);
                let _ = s.sock.shutdown(Shutdown::Write);
                return seen;
            } else {
                b"500 5.5.2 unrecognized\r\n"
            };
            if s.write_all(reply).is_err() {
                return seen;
            }
            flush_tls(&mut s);
        }
    })
}

/// `nk smtp ... ARGS` (see [`smtp`]) against a fresh [`starttls_server`]: nk's end and what
/// the server saw.
fn smtp_to_scripted(
    pki: &Pki,
    offer: bool,
    inject: &'static [u8],
    args: &[&str],
) -> (Finished, Seen) {
    let srv = starttls_server(pki, offer, inject);
    let out = smtp(args, &format!("127.0.0.1:{}", srv.port()));
    (out, srv.join())
}

#[test]
fn smtp_starttls_discards_injected_plaintext_and_says_ehlo_again() {
    let pki = Pki::new();
    let ca = pki.ca();
    let args = [
        "-v",
        "--starttls",
        "--ca",
        &ca,
        "--body",
        "after injection\n",
    ];
    let (out, seen) = smtp_to_scripted(&pki, true, b"250 injected\r\n", &args);
    out.expect_code(0);
    assert_eq!(
        out.stdout_text().trim_end(),
        "250 2.0.0 Ok: queued as INJ1",
        "{}",
        out.describe()
    );
    out.expect_stderr_contains("discarded");
    assert!(
        !out.stderr.contains("<- 250 injected"),
        "the injected reply was read as a reply\n{}",
        out.describe()
    );
    assert_eq!(verbs(&seen.clear), ["EHLO", "STARTTLS"], "{seen:?}");
    assert_eq!(
        verbs(&seen.tls),
        ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"],
        "over TLS: EHLO first, then one command per reply: {seen:?}"
    );
    assert_eq!(
        seen.message
            .as_deref()
            .map(|m| m.ends_with(b"\r\n\r\nafter injection\r\n")),
        Some(true),
        "{seen:?}"
    );

    // Nothing injected: no warning; --quit-after tls stops after the second EHLO.
    let args = ["--starttls", "--ca", &ca, "--quit-after", "tls"];
    let (out, seen) = smtp_to_scripted(&pki, true, b"", &args);
    out.expect_code(0);
    assert!(
        !out.stderr.to_lowercase().contains("discarded"),
        "{}",
        out.describe()
    );
    assert_eq!(verbs(&seen.clear), ["EHLO", "STARTTLS"], "{seen:?}");
    assert_eq!(verbs(&seen.tls), ["EHLO", "QUIT"], "{seen:?}");
}

#[test]
fn smtp_starttls_not_offered_stops_before_mail() {
    let pki = Pki::new();
    let args = ["--starttls", "--ca", &pki.ca(), "--body", "x\n"];
    let (out, seen) = smtp_to_scripted(&pki, false, b"", &args);
    out.expect_code(1)
        .expect_stderr_contains("does not offer STARTTLS");
    let v = verbs(&seen.clear);
    assert!(
        v.first().map(String::as_str) == Some("EHLO") && v[1..].iter().all(|c| c == "QUIT"),
        "in clear only EHLO (and QUIT): {seen:?}"
    );
    assert!(seen.tls.is_empty(), "{seen:?}");
}

// ---------------------------------------------------------------------------
// usage errors: exit 2, nothing sent
// ---------------------------------------------------------------------------

#[test]
fn tls_client_usage_errors_exit_2_without_connecting() {
    let pki = Pki::new();
    let (ca, (leaf, _)) = (pki.ca(), pki.leaf());
    let nobody = NoConnect::new();
    let server = nobody.server();
    let url = https_url(nobody.port, "/");
    let from_to = ["smtp", "--from", "a@example.test", "--to", "b@example.test"];
    let cases: Vec<Vec<&str>> = vec![
        [&from_to[..], &["--ca", &ca, "--body", "x\n", &server]].concat(),
        [&from_to[..], &["--insecure", "--body", "x\n", &server]].concat(),
        [
            &from_to[..],
            &["--tls", "--starttls", "--body", "x\n", &server],
        ]
        .concat(),
        [&from_to[..], &["--quit-after", "tls", &server]].concat(),
        vec!["head", "--cert", &leaf, &url],
        vec!["head", "--ca", &ca, "--insecure", &url],
    ];
    for args in cases {
        let out = run_nk(&args, In::Null, 10.0);
        out.expect_code(2);
        assert!(!out.stderr.trim().is_empty(), "{}", out.describe());
        nobody.expect_none(0.1, &args.join(" "));
    }
}

// ---------------------------------------------------------------------------
// lossless or loud over TLS: a reset, a fatal alert, a send-only upload
// ---------------------------------------------------------------------------

/// `nk dial --tls --ca CA localhost PORT`, its stdin a pipe the test holds.
fn dial_tls_trusting(pki: &Pki, port: u16) -> Proc {
    let port = port.to_string();
    let args = ["dial", "--tls", "--ca", &pki.ca(), "localhost", &port];
    Proc::nk(args, In::Pipe, Out::Pipe)
}

/// A TLS peer that sends 100 KB, then resets the connection: nk dial --tls exits 1 naming the
/// reset (it used to exit 0 without a word, as if the stream had ended).
#[test]
fn a_tls_peer_that_resets_is_an_error_not_an_end() {
    let pki = Pki::new();
    let config = pki.rustls_server_config();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        let raw = tcp.try_clone().expect("clone");
        let mut s = tls_accept(tcp, config);
        s.write_all(&vec![b'x'; 100_000]).expect("send");
        flush_tls(&mut s);
        thread::sleep(Duration::from_millis(100));
        // SO_LINGER 0: close() sends a reset instead of a FIN.
        socket2::SockRef::from(&raw)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER");
        drop(raw);
        drop(s);
    });
    let mut nk = dial_tls_trusting(&pki, port);
    server.join().expect("server");
    nk.wait_stderr_contains("reset", 10.0);
    let out = nk.wait(10.0);
    out.expect_code(1);
}

/// A server that wants a client certificate sends a fatal alert after the TLS 1.3 handshake
/// (certificate_required): nk dial --tls without one exits 1 (it used to print it and exit 0).
#[test]
fn a_fatal_alert_after_the_handshake_is_an_error() {
    let pki = Pki::new();
    let port = free_port("127.0.0.1");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_server", "-naccept", "1", "-tls1_3", "-Verify", "1", "-accept",
    ])
    .arg(format!("127.0.0.1:{port}"))
    .args(["-cert", &pki.leaf().0, "-key", &pki.leaf().1])
    .args(["-CAfile", &pki.ca()]);
    let mut server = Proc::spawn("openssl s_server -Verify 1", cmd, In::Pipe, Out::Pipe);
    server.wait_stdout_line(10.0, |l| l.contains("ACCEPT"));
    let out = dial_tls_trusting(&pki, port).wait(10.0);
    out.expect_code(1)
        .expect_stderr_contains("the peer sent a fatal alert: certificate required")
        .expect_stderr_contains("--cert FILE --key FILE");
    server.stdin.take();
    let _ = server.wait(10.0);
}

/// `socat -u FILE OPENSSL:...`, a client that only sends and closes: every byte reaches
/// `nk listen --tls` (nk's TLS 1.3 session tickets, which such a client never reads, used to
/// turn its close into a reset that lost megabytes of 20 MB, with exit 0).
#[test]
fn a_send_only_tls_upload_arrives_whole() {
    require_tool("socat", "socat");
    let pki = Pki::new();
    let input = pki.path("upload.bin");
    let data = write_random_file(&input, 20 << 20, 0x71c4);
    for run in 0..2 {
        let output = pki.path(&format!("got-{run}.bin"));
        let (server, port) = nk_listen_tls(&pki, In::Null, Out::File(output.clone()));
        let client = socat(
            &[
                "-u",
                &format!("FILE:{}", input.display()),
                &format!(
                    "OPENSSL:127.0.0.1:{port},cafile={},commonname=localhost",
                    pki.ca()
                ),
            ],
            In::Null,
            Out::Null,
        );
        let client = client.wait(20.0);
        let server = server.wait(20.0);
        server.expect_code(0);
        assert_same_bytes(
            &format!("upload {run}\n{}\n{}", client.describe(), server.describe()),
            &read_file(&output),
            &data,
        );
    }
}

// ---------------------------------------------------------------------------
// --ca with the very certificate the server uses (`openssl req -x509`: CA:TRUE)
// ---------------------------------------------------------------------------

/// A self-signed certificate as `openssl req -x509` makes it (CA:TRUE) for localhost and
/// 127.0.0.1, in the Pki's directory: (certificate, key).
fn self_signed_ca_true(pki: &Pki) -> (PathBuf, PathBuf) {
    let (cert, key) = (pki.path("self.pem"), pki.path("self.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost", "-addext"])
        .arg("subjectAltName=DNS:localhost,IP:127.0.0.1")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl req");
    assert!(out.status.success(), "{}", lossy(&out.stderr));
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl x509");
    assert!(
        lossy(&text.stdout).contains("CA:TRUE"),
        "the test needs a CA:TRUE certificate"
    );
    (cert, key)
}

/// curl and swaks accept the certificate `openssl req -x509` makes when it is the file given
/// with --ca; nk refused it (`Other(OtherError(CaUsedAsEndEntity))`). The name is still
/// checked, and the refusal reads as words.
#[test]
fn dial_tls_trusts_the_very_certificate_given_with_ca_and_still_checks_the_name() {
    let pki = Pki::new();
    let (cert, key) = self_signed_ca_true(&pki);
    let (server, port) = s_server_with(&cert, &key, b"hello from a CA:TRUE leaf\n");
    let port = port.to_string();
    let ca = text(&cert);
    let mut nk = Proc::nk(
        ["dial", "--tls", "--ca", &ca, "localhost", &port],
        In::Pipe,
        Out::Pipe,
    );
    nk.wait_stdout_line(10.0, |l| l == "hello from a CA:TRUE leaf");
    nk.stdin.take();
    drop(server);
    let (server, port) = s_server_with(&cert, &key, b"");
    let out = run_nk(
        [
            "dial",
            "--tls",
            "--ca",
            &ca,
            "--sni",
            "other.example",
            "127.0.0.1",
            &port.to_string(),
        ],
        In::Null,
        10.0,
    );
    out.expect_code(1)
        .expect_stderr_contains("name mismatch")
        .expect_stderr_contains("hint: ");
    assert!(!out.stderr.contains("Other("), "{}", out.stderr);
    drop(server);
}

#[test]
fn head_trusts_the_very_certificate_given_with_ca() {
    let pki = Pki::new();
    let (cert, key) = self_signed_ca_true(&pki);
    let site = NginxSite {
        tls: Some((&cert, &key)),
        ..NginxSite::default()
    };
    let nginx = nginx_with(
        |www| std::fs::write(www.join("index.html"), INDEX_HTML).expect("write index.html"),
        &site,
    );
    let url = format!("https://localhost:{}/", nginx.https_port());
    let out = run_nk(["head", "--ca", &text(&cert), &url], In::Null, 10.0);
    out.expect_code(0).expect_stdout_contains("200 OK");
}

#[test]
fn smtp_trusts_the_very_certificate_given_with_ca() {
    let pki = Pki::new();
    let (cert, key) = self_signed_ca_true(&pki);
    let srv = Aiosmtpd::start_tls(SmtpTls::Implicit, &cert, &key);
    let out = smtp(&["--tls", "--ca", &text(&cert)], &srv.server());
    out.expect_code(0);
    assert_eq!(srv.count(), 1);
}

/// A server that drips its TLS handshake a byte at a time: `--timeout` bounds the handshake
/// as a whole (rustls's complete_io gave every byte a fresh socket timeout).
#[test]
fn a_handshake_dripped_a_byte_at_a_time_is_bounded_as_a_whole() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().expect("accept");
        // A handshake record header announcing 16 KiB, then its body one byte every 200 ms:
        // never complete within the test's bounds.
        let _ = tcp.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]);
        for _ in 0..100 {
            thread::sleep(Duration::from_millis(200));
            if tcp.write_all(&[0x02]).is_err() {
                break;
            }
        }
    });
    let url = format!("https://127.0.0.1:{port}/");
    let out = run_nk(["head", "-k", "--timeout", "1s", &url], In::Null, 10.0);
    out.expect_code(1).expect_stderr_contains("timed out");
    let _ = server.join();
}

/// `-w` bounds connecting as a whole, the TLS handshake included: a server that accepts and
/// says nothing costs `-w`, not the 30 s handshake limit (ncat -w: the same), and the message
/// says how long.
#[test]
fn dial_w_bounds_the_handshake_of_a_silent_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port().to_string();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        // Silent until nk gives up and closes.
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = (&tcp)
            .read(&mut [0u8; 4096])
            .and_then(|_| (&tcp).read(&mut [0u8; 1]));
    });
    let out = run_nk(
        ["dial", "--tls", "--insecure", "-w", "1", "127.0.0.1", &port],
        In::Null,
        10.0,
    );
    out.expect_code(1)
        .expect_stderr_contains("timed out after 1s");
    let _ = server.join();
}

// ---------------------------------------------------------------------------
// listen --tls --ca (client certificates), --tls-min, --ciphers
// ---------------------------------------------------------------------------

/// `listen --tls --ca CA`: a client with a certificate from CA is served, and a program gets
/// its subject in NK_TLS_PEER_SUBJECT (-v prints it too); a client without one is refused and
/// told so (ncat --ssl-verify on a listener, socat's verify with cafile).
#[test]
fn listen_tls_ca_requires_client_certificates_and_names_the_subject() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf();
    let ca = pki.ca();
    let mut server = Proc::nk(
        [
            "-v",
            "listen",
            "-k",
            "--tls",
            "--cert",
            &cert,
            "--key",
            &key,
            "--ca",
            &ca,
            "-c",
            "echo \"subject=$NK_TLS_PEER_SUBJECT\"",
            "127.0.0.1:0",
        ],
        In::Null,
        Out::Pipe,
    );
    let port = server.nk_listening_port().to_string();
    let with_cert = run_nk(
        [
            "dial",
            "--tls",
            "--ca",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "localhost",
            &port,
        ],
        In::Null,
        10.0,
    );
    with_cert
        .expect_code(0)
        .expect_stdout(b"subject=CN=localhost\n");
    server.wait_stderr_contains("subject CN=localhost", 10.0);
    let without = run_nk(
        ["dial", "--tls", "--ca", &ca, "localhost", &port],
        In::Pipe,
        10.0,
    );
    without
        .expect_code(1)
        .expect_stderr_contains("certificate required")
        .expect_stderr_contains("--cert FILE --key FILE");
    signal_and_wait(server, "TERM", 143);
}

/// A self-signed client certificate (`openssl req -x509`: a CA certificate, which webpki
/// refuses as an end entity) given to the listener as --ca is trusted as itself, as socat's
/// `verify=1,cafile=` and ncat's `--ssl-trustfile` trust it; it was refused ("a CA
/// certificate, not a server's").
#[test]
fn listen_tls_ca_trusts_the_very_self_signed_client_certificate_it_is_given() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf();
    let (own, own_key) = (pki.ca(), pki.path("ca.key"));
    let own_key = own_key.to_str().unwrap();
    let mut server = Proc::nk(
        [
            "listen",
            "--tls",
            "--cert",
            &cert,
            "--key",
            &key,
            "--ca",
            &own,
            "-c",
            "echo \"subject=$NK_TLS_PEER_SUBJECT\"",
            "-v",
            "127.0.0.1:0",
        ],
        In::Null,
        Out::Pipe,
    );
    let port = server.nk_listening_port().to_string();
    run_nk(
        [
            "dial",
            "--tls",
            "--ca",
            &own,
            "--cert",
            &own,
            "--key",
            own_key,
            "localhost",
            &port,
        ],
        In::Null,
        10.0,
    )
    .expect_code(0)
    .expect_stdout(b"subject=CN=nk test CA\n");
    server.wait(10.0).expect_code(0);
}

/// `--tls-min 1.3` refuses a TLS 1.2-only server, in words; `--ciphers` picks the suite (IANA
/// or OpenSSL names); an unknown suite is a usage error naming the known ones.
#[test]
fn tls_min_and_ciphers_choose_what_is_offered() {
    let pki = Pki::new();
    let (leaf, key) = (pki.path("leaf.pem"), pki.path("leaf.key"));
    let port = free_port("127.0.0.1");
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-naccept", "1", "-tls1_2", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", &text(&leaf), "-key", &text(&key)]);
    let mut old = Proc::spawn("openssl s_server -tls1_2", cmd, In::Pipe, Out::Pipe);
    old.wait_stdout_line(10.0, |l| l.contains("ACCEPT"));
    let port = port.to_string();
    let out = run_nk(
        [
            "dial",
            "--tls",
            "--tls-min",
            "1.3",
            "--ca",
            &pki.ca(),
            "localhost",
            &port,
        ],
        In::Null,
        10.0,
    );
    out.expect_code(1)
        .expect_stderr_contains("TLS handshake with");
    assert!(
        !out.stderr.contains("Debug") && !out.stderr.contains("("),
        "{}",
        out.stderr
    );
    old.stdin.take();
    let _ = old.wait(10.0);

    for (asked, seen) in [
        ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
        (
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ),
    ] {
        let (server, port) = s_server(&pki, b"hello\n");
        let out = run_nk(
            [
                "-v",
                "dial",
                "--tls",
                "--ciphers",
                asked,
                "--ca",
                &pki.ca(),
                "localhost",
                &port.to_string(),
            ],
            In::Null,
            10.0,
        );
        out.expect_code(0).expect_stderr_contains(seen);
        drop(server);
    }
    let out = run_nk(
        ["dial", "--tls", "--ciphers", "RC4-MD5", "127.0.0.1", "1"],
        In::Null,
        10.0,
    );
    out.expect_code(2)
        .expect_stderr_contains("unknown cipher suite \"RC4-MD5\"");
}

/// Library words never reach the user: a key that is not the certificate's, an encrypted key
/// (rustls-pki-types says "no items found"), and a plain-text client on a TLS listener (told
/// from the server's side).
#[test]
fn tls_errors_read_as_words_with_hints() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf();
    let other = pki.path("other.key");
    let made = Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&other)
        .status()
        .expect("openssl ecparam");
    assert!(made.success());
    let out = run_nk(
        [
            "listen",
            "--tls",
            "--cert",
            &cert,
            "--key",
            &text(&other),
            "0",
        ],
        In::Null,
        10.0,
    );
    out.expect_code(2).expect_stderr_contains("do not match");
    assert!(!out.stderr.contains("KeyMismatch"), "{}", out.stderr);

    let encrypted = pki.path("encrypted.key");
    let made = Command::new("openssl")
        .args([
            "pkey",
            "-aes256",
            "-passout",
            "pass:secret",
            "-in",
            &key,
            "-out",
        ])
        .arg(&encrypted)
        .status()
        .expect("openssl pkey");
    assert!(made.success());
    let out = run_nk(
        [
            "listen",
            "--tls",
            "--cert",
            &cert,
            "--key",
            &text(&encrypted),
            "0",
        ],
        In::Null,
        10.0,
    );
    out.expect_code(2)
        .expect_stderr_contains("encrypted private key")
        .expect_stderr_contains("hint: decrypt it once: openssl pkey");

    let (mut server, port) = nk_listen_with_leaf(&pki);
    let mut plain = connect_local(port);
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    server.wait_stderr_contains("the client does not speak TLS", 10.0);
    server.stdin.take();
    let out = server.wait(10.0);
    out.expect_code(1)
        .expect_stderr_contains("hint: the client must use TLS");
}

#[test]
fn listen_tls_says_the_client_refused_its_certificate_and_how_to_trust_it() {
    let pki = Pki::new();
    let (server, port) = nk_listen_tls(&pki, In::Null, Out::Pipe);
    // No --ca: the client does not trust the test CA, refuses the certificate (unknown CA).
    let client = run_nk(
        ["dial", "--tls", "localhost", &port.to_string()],
        In::Null,
        10.0,
    );
    client
        .expect_code(1)
        .expect_stderr_contains("unknown issuer");
    let server = server.wait(10.0);
    server
        .expect_code(1)
        .expect_stderr_contains("the client refused our certificate: unknown CA")
        .expect_stderr_contains("must trust the CA of --cert");
    assert!(
        !server.stderr.contains("our client certificate"),
        "{}",
        server.stderr
    );
}
