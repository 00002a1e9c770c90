//! Issue 17, items 18 and 19: every command reads a HOST one way.
//!
//! An IPv4 literal in any form inet_aton(3) takes (`127.1`, `2130706433`, `0x7f.1`) reaches
//! 127.0.0.1 from every client command, and `-v` says what it was read as; an IDN
//! (`bücher.test`) is converted by UTS 46 and reaches the address /etc/hosts gives its ASCII
//! form (a private mount namespace with its own /etc/hosts, so nothing on the host changes).
//! Peers are scripted here, in threads, on 127.0.0.1 ports the kernel handed out.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use common::{hosts_command, require_mountns, run_nk, Finished, In, Out, Proc, Server, NK};

/// The short forms of 127.0.0.1 the issue names.
const FORMS: [&str; 3] = ["127.1", "2130706433", "0x7f.1"];

/// Reads one request head (up to the blank line) and answers 204; returns the head.
fn http_peer(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    String::from_utf8_lossy(&head).into_owned()
}

/// A minimal SMTP server: banner, 250 to every command, 354 to DATA, 221 to QUIT.
fn smtp_peer(s: TcpStream) -> Vec<String> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = s.try_clone().unwrap();
    let mut lines = Vec::new();
    let _ = out.write_all(b"220 peer.test ESMTP\r\n");
    let mut reader = BufReader::new(s);
    let mut in_data = false;
    let mut line = String::new();
    while lines.len() < 1000 {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = line.trim_end().to_string();
        lines.push(text.clone());
        let reply: &[u8] = if in_data {
            if text != "." {
                continue;
            }
            in_data = false;
            b"250 queued\r\n"
        } else if text.eq_ignore_ascii_case("DATA") {
            in_data = true;
            b"354 go on\r\n"
        } else if text.eq_ignore_ascii_case("QUIT") {
            let _ = out.write_all(b"221 bye\r\n");
            break;
        } else {
            b"250 ok\r\n"
        };
        if out.write_all(reply).is_err() {
            break;
        }
    }
    lines
}

/// Echoes everything until EOF.
fn echo_peer(mut s: TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        if s.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// Says `text` and closes (daytime, qotd).
fn saying_peer(text: &'static str) -> impl FnOnce(TcpStream, std::net::SocketAddr) + Send {
    move |mut s, _| {
        let _ = s.write_all(text.as_bytes());
    }
}

/// Checks the `-v` line that says how `host` was read.
fn expect_explained(out: &Finished, host: &str, used: &str) {
    out.expect_stderr_contains(&format!("nk: {host} is {used}"));
}

#[test]
fn every_client_command_reaches_loopback_through_each_short_ipv4_form() {
    for host in FORMS {
        // dial: a relay both ways.
        let peer = Server::start(|mut s, _| {
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            let _ = s.write_all(b"pong\n");
            got
        });
        let port = peer.port().to_string();
        let out = run_nk(
            ["dial", "-v", host, &port],
            In::Bytes(b"ping\n".to_vec()),
            10.0,
        );
        out.expect_code(0).expect_stdout(b"pong\n");
        expect_explained(&out, host, "127.0.0.1");
        assert_eq!(peer.join(), b"ping\n", "dial {host}");

        // dial -z: the scan reports the canonical address.
        let peer = Server::start(|_, _| ());
        let port = peer.port();
        let out = run_nk(
            ["dial", "-z", "-v", host, &port.to_string()],
            In::Null,
            10.0,
        );
        out.expect_code(0)
            .expect_stdout_contains(&format!("127.0.0.1 {port}/tcp open"));
        expect_explained(&out, host, "127.0.0.1");
        peer.join();

        // udp: one datagram there, the reply back.
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let port = sock.local_addr().unwrap().port().to_string();
        let udp_peer = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = sock.recv_from(&mut buf).expect("a datagram from nk udp");
            sock.send_to(b"pong", from).unwrap();
            buf[..n].to_vec()
        });
        let out = run_nk(
            ["udp", "-v", "-q", "1s", host, &port],
            In::Bytes(b"ping".to_vec()),
            10.0,
        );
        out.expect_code(0).expect_stdout(b"pong");
        expect_explained(&out, host, "127.0.0.1");
        assert_eq!(udp_peer.join().unwrap(), b"ping");

        // head: the Host header carries the address as four numbers, as curl sends it.
        let peer = Server::start(|s, _| http_peer(s));
        let port = peer.port();
        let out = run_nk(
            ["head", "-v", &format!("http://{host}:{port}/x")],
            In::Null,
            10.0,
        );
        out.expect_code(0)
            .expect_stdout_contains("HTTP/1.1 204 No Content");
        expect_explained(&out, host, "127.0.0.1");
        let request = peer.join();
        assert!(
            request.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
            "head {host}: request was\n{request}"
        );

        // smtp: a whole transaction.
        let peer = Server::start(|s, _| smtp_peer(s));
        let server = format!("{host}:{}", peer.port());
        let out = run_nk(
            [
                "smtp", "-v", "--from", "a@x.test", "--to", "b@y.test", "--body", "hi", &server,
            ],
            In::Null,
            10.0,
        );
        out.expect_code(0);
        expect_explained(&out, host, "127.0.0.1");
        let dialogue = peer.join();
        assert!(
            dialogue.iter().any(|l| l == "RCPT TO:<b@y.test>"),
            "smtp {host}: {dialogue:?}"
        );

        // echo, daytime, qotd.
        let peer = Server::start(|s, _| echo_peer(s));
        let out = run_nk(
            ["echo", "-v", &format!("{host}:{}", peer.port()), "hello"],
            In::Null,
            10.0,
        );
        out.expect_code(0).expect_stdout_contains("hello");
        expect_explained(&out, host, "127.0.0.1");
        peer.join();
        for (command, said) in [
            ("daytime", "Mon Jan  1 00:00:00 2029\r\n"),
            ("qotd", "A quote for the test.\r\n"),
        ] {
            let peer = Server::start(saying_peer(said));
            let out = run_nk(
                [command, "-v", &format!("{host}:{}", peer.port())],
                In::Null,
                10.0,
            );
            out.expect_code(0).expect_stdout_contains(said.trim_end());
            expect_explained(&out, host, "127.0.0.1");
            peer.join();
        }

        // resolve: the literal, printed canonically, no lookup.
        let out = run_nk(["resolve", "-v", host], In::Null, 10.0);
        out.expect_code(0).expect_stdout(b"127.0.0.1\n");
        expect_explained(&out, host, "127.0.0.1");

        // ping: the kernel's own ICMP on loopback; the header names the host as typed, as
        // iputils does.
        let out = run_nk(["ping", "-v", "-c", "1", "-W", "5", host], In::Null, 15.0);
        out.expect_code(0)
            .expect_stdout_contains(&format!("PING {host} (127.0.0.1)"))
            .expect_stdout_contains("from 127.0.0.1");
        expect_explained(&out, host, "127.0.0.1");
    }
}

#[test]
fn listeners_take_the_short_forms_as_their_host() {
    for host in FORMS {
        let mut listener = Proc::nk(["listen", "-v", &format!("{host}:0")], In::Null, Out::Pipe);
        let line = listener.wait_stderr_line(10.0, |l| l.contains("listening on"));
        assert!(line.contains("127.0.0.1:"), "listen {host}: {line}");
        let port = common::parse_listening_port(&line).expect("a port in the listening line");
        let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        client.write_all(b"hi\n").unwrap();
        drop(client);
        let out = listener.wait(10.0);
        out.expect_code(0).expect_stdout(b"hi\n");
        expect_explained(&out, host, "127.0.0.1");
    }
}

#[test]
fn a_malformed_number_is_a_usage_error_everywhere_before_any_traffic() {
    for bad in ["256.1", "1.16777216", "4294967296", "127.1."] {
        for args in [
            vec!["dial", bad, "9"],
            vec!["udp", bad, "9"],
            vec!["dial", "-z", bad, "9"],
            vec!["head", "http://BAD:9/"],
            vec!["smtp", "--from", "a@x.test", "--to", "b@y.test", bad],
            vec!["echo", bad, "9"],
            vec!["daytime", bad],
            vec!["resolve", bad],
            vec!["ping", "-c", "1", bad],
            vec!["listen", "BAD:0"],
        ] {
            let args: Vec<String> = args.iter().map(|a| a.replace("BAD", bad)).collect();
            let out = run_nk(&args, In::Null, 10.0);
            out.expect_code(2)
                .expect_stderr_contains(&format!("invalid IPv4 address \"{bad}\""));
        }
    }
}

#[test]
fn mask_refuses_short_forms_and_says_what_inet_aton_reads() {
    let out = run_nk(["mask", "127.1/8"], In::Null, 10.0);
    out.expect_code(2)
        .expect_stderr_contains("a short form is ambiguous in network notation")
        .expect_stderr_contains("reads it as 127.0.0.1")
        .expect_stderr_contains("hint: write 127.0.0.1");
    let out = run_nk(["mask", "010.1.2.3"], In::Null, 10.0);
    out.expect_code(2)
        .expect_stderr_contains("reads it as 8.1.2.3")
        .expect_stderr_contains("hint: write 8.1.2.3 (inet_aton's reading) or 10.1.2.3");
}

// ---------------------------------------------------------------------------
// IDN (item 19)
// ---------------------------------------------------------------------------

/// Runs `nk ARGS` where /etc/hosts gives `xn--bcher-kva.test` (bücher.test) 127.0.0.1.
fn with_idn_hosts(dir: &Path, args: &[&str], stdin: In) -> Finished {
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 xn--bcher-kva.test\n").unwrap();
    let mut argv = vec![NK];
    argv.extend_from_slice(args);
    Proc::spawn(
        &format!(
            "unshare -m (xn--bcher-kva.test = 127.0.0.1): nk {}",
            args.join(" ")
        ),
        hosts_command(&hosts, &argv),
        stdin,
        Out::Pipe,
    )
    .wait(15.0)
}

#[test]
fn an_idn_reaches_the_address_of_its_punycode_form() {
    require_mountns();
    let dir = tempfile::tempdir().unwrap();
    let explained = "nk: bücher.test is xn--bcher-kva.test";

    let out = with_idn_hosts(dir.path(), &["resolve", "-v", "bücher.test"], In::Null);
    out.expect_code(0)
        .expect_stdout(b"127.0.0.1\n")
        .expect_stderr_contains(explained);
    // Upper case and a full-width dot are the same name (UTS 46 mapping).
    let out = with_idn_hosts(dir.path(), &["resolve", "BÜCHER\u{ff0e}test"], In::Null);
    out.expect_code(0).expect_stdout(b"127.0.0.1\n");

    let peer = Server::start(|mut s, _| {
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        got
    });
    let port = peer.port().to_string();
    let out = with_idn_hosts(
        dir.path(),
        &["dial", "-v", "bücher.test", &port],
        In::Bytes(b"hallo\n".to_vec()),
    );
    out.expect_code(0).expect_stderr_contains(explained);
    assert_eq!(peer.join(), b"hallo\n");

    let peer = Server::start(|s, _| http_peer(s));
    let port = peer.port();
    let url = format!("http://bücher.test:{port}/");
    let out = with_idn_hosts(dir.path(), &["head", "-v", &url], In::Null);
    out.expect_code(0)
        .expect_stdout_contains("HTTP/1.1 204 No Content")
        .expect_stderr_contains(explained);
    let request = peer.join();
    assert!(
        request.contains(&format!("\r\nHost: xn--bcher-kva.test:{port}\r\n")),
        "the Host header must carry the ASCII form; request was\n{request}"
    );

    let out = with_idn_hosts(
        dir.path(),
        &["ping", "-c", "1", "-W", "5", "bücher.test"],
        In::Null,
    );
    out.expect_code(0)
        .expect_stdout_contains("PING bücher.test (127.0.0.1)");
}

#[test]
fn a_name_that_is_no_idn_is_a_usage_error_before_any_traffic() {
    for args in [
        vec!["dial", "a b.ü", "9"],
        vec!["resolve", "ü/x.test"],
        vec!["head", "http://-ü.test/"],
        vec!["echo", "ü..test", "9"],
    ] {
        let out = run_nk(&args, In::Null, 10.0);
        out.expect_code(2).expect_stderr_contains("invalid host");
    }
}
