//! `nk listen --proxy`: nk as a SOCKS4/4a/5 and HTTP CONNECT proxy server, used by the
//! clients people really use (curl -x / --socks*, OpenBSD `nc -X`, `ncat --proxy`, nk's own
//! `dial --proxy`), and by raw clients that misbehave: refused and forbidden targets, bad
//! credentials, plain-HTTP requests, garbage, a client that closes mid-request and a silent
//! one. Everything on 127.0.0.1, every child bounded.

mod common;

use common::forwarder::{read_all, socat_echo};
use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// `nk listen -v --proxy KINDS EXTRA... 127.0.0.1:0` and its port.
fn proxy(kinds: &str, extra: &[&str]) -> (Proc, u16) {
    let mut args = vec!["listen", "-v", "--proxy", kinds];
    args.extend_from_slice(extra);
    args.push("127.0.0.1:0");
    let mut p = Proc::nk(&args, In::Null, Out::Pipe);
    let port = p.nk_listening_port();
    (p, port)
}

const BODY: &[u8] = b"hello through the proxy\n";

/// An HTTP origin on 127.0.0.1 answering every request with [`BODY`] (for 60 s at most).
fn http_origin() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, _)) => {
                    thread::spawn(move || {
                        s.set_nonblocking(false).expect("blocking");
                        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                            head.push(byte[0]);
                        }
                        let reply =
                            format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", BODY.len());
                        let _ = s.write_all(&[reply.as_bytes(), BODY].concat());
                    });
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    port
}

/// Runs `program ARGS` with `stdin`, bounded to 20 s.
fn run_tool(program: &str, package: &str, args: &[String], stdin: In) -> Finished {
    require_tool(program, package);
    let mut cmd = Command::new(program);
    cmd.args(args);
    Proc::spawn(program, cmd, stdin, Out::Pipe).wait(20.0)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn curl_nc_and_ncat_through_every_kind() {
    let origin = http_origin();
    let (p, port) = proxy("http,socks", &[]);
    let proxy_addr = format!("127.0.0.1:{port}");
    let url_ip = format!("http://127.0.0.1:{origin}/");
    // A name: the proxy resolves it (SOCKS4a, SOCKS5 with a domain, CONNECT).
    let url_name = format!("http://localhost:{origin}/");
    let curls: [Vec<String>; 5] = [
        strings(&["-x", &format!("http://{proxy_addr}"), "-p", &url_name]),
        strings(&["--socks5-hostname", &proxy_addr, &url_name]),
        strings(&["--socks5", &proxy_addr, &url_ip]),
        strings(&["--socks4a", &proxy_addr, &url_name]),
        strings(&["--socks4", &proxy_addr, &url_ip]),
    ];
    for args in &curls {
        let mut all = strings(&["-sS", "--max-time", "10"]);
        all.extend_from_slice(args);
        let out = run_tool("curl", "curl", &all, In::Null);
        out.expect_code(0).expect_stdout(BODY);
    }
    let request = b"GET / HTTP/1.0\r\n\r\n".to_vec();
    require_openbsd_nc();
    for (kind, host) in [
        ("5", "localhost"),
        ("4", "127.0.0.1"),
        ("connect", "localhost"),
    ] {
        let args = strings(&["-X", kind, "-x", &proxy_addr, host, &origin.to_string()]);
        let out = run_tool("nc", "netcat-openbsd", &args, In::Bytes(request.clone()));
        out.expect_code(0);
        assert!(
            out.stdout.ends_with(BODY),
            "nc -X {kind}: {}",
            out.describe()
        );
    }
    for kind in ["socks5", "socks4", "http"] {
        let host = if kind == "socks4" {
            "127.0.0.1"
        } else {
            "localhost"
        };
        let args = strings(&[
            "--proxy",
            &proxy_addr,
            "--proxy-type",
            kind,
            host,
            &origin.to_string(),
        ]);
        let out = run_tool("ncat", "ncat", &args, In::Bytes(request.clone()));
        out.expect_code(0);
        assert!(
            out.stdout.ends_with(BODY),
            "ncat {kind}: {}",
            out.describe()
        );
    }
    let out = signal_and_wait(p, "TERM", 143);
    // -v: a line per request, with the name asked for and the address that answered.
    out.expect_stderr_contains(&format!(
        "-> localhost:{origin} (127.0.0.1:{origin}): 18 bytes up, "
    ))
    .expect_stderr_contains("; fin")
    .expect_stderr_contains("forwarded 11 connections");
}

#[test]
fn nk_dial_through_nk_proxy_keeps_half_close_and_every_byte() {
    let (_echo, echo_port) = socat_echo();
    let (p, port) = proxy("socks5,http", &["--proxy-auth", "me:secret"]);
    let data: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    for url in [
        format!("socks5h://me:secret@127.0.0.1:{port}"),
        format!("http://me:secret@127.0.0.1:{port}"),
    ] {
        let args = strings(&["dial", "--proxy", &url, "localhost", &echo_port.to_string()]);
        // stdin's EOF is a half-close through the tunnel; the echo's answer still comes back.
        let out = run_nk(&args, In::Bytes(data.clone()), 30.0);
        out.expect_code(0);
        assert_same_bytes(&format!("echo through {url}"), &out.stdout, &data);
    }
    let out = signal_and_wait(p, "TERM", 143);
    out.expect_stderr_contains(&format!(
        "{} bytes up, {} bytes down",
        data.len(),
        data.len()
    ));
}

#[test]
fn one_gib_sha256_through_nk_socks5() {
    let (p, port) = proxy("socks5", &[]);
    let flags = format!("--proxy socks5h://127.0.0.1:{port}");
    one_gib_hashed_through(&flags, "localhost", "through nk's SOCKS5 server");
    signal_and_wait(p, "TERM", 143).expect_stderr_contains("1073741824 bytes up, 0 bytes down");
}

/// A raw client of the proxy on `port`, reads bounded to 10 s.
fn raw(port: u16) -> TcpStream {
    let s = connect_local(port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends `request` and reads the whole answer: the proxy closes after a refusal (a FIN, so
/// the answer is read whole, never a reset).
fn refused_with(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = raw(port);
    s.write_all(request).expect("send the request");
    let (got, err) = read_all(&mut s);
    assert!(
        err.is_none(),
        "the proxy's close after {got:?} was {err:?}, not a FIN"
    );
    got
}

fn socks5_connect(ip: [u8; 4], port: u16) -> Vec<u8> {
    let mut req = vec![5, 1, 0, 5, 1, 0, 1];
    req.extend_from_slice(&ip);
    req.extend_from_slice(&port.to_be_bytes());
    req
}

#[test]
fn refusals_are_answered_in_each_protocols_terms() {
    let closed_guard = closed_port();
    let closed = closed_guard.port;
    let (p, port) = proxy("http,socks", &["--deny-target", "127.0.0.2"]);
    // Refused by the target: SOCKS5 0x05, SOCKS4 0x5b, HTTP 502.
    let got = refused_with(port, &socks5_connect([127, 0, 0, 1], closed));
    assert_eq!(&got[..4], &[5, 0, 5, 5], "{got:?}");
    let mut socks4 = vec![4, 1];
    socks4.extend_from_slice(&closed.to_be_bytes());
    socks4.extend_from_slice(&[127, 0, 0, 1, 0]);
    assert_eq!(refused_with(port, &socks4), vec![0, 0x5b, 0, 0, 0, 0, 0, 0]);
    let connect = format!("CONNECT 127.0.0.1:{closed} HTTP/1.1\r\nHost: x\r\n\r\n");
    let got = String::from_utf8_lossy(&refused_with(port, connect.as_bytes())).into_owned();
    assert!(got.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{got}");
    assert!(got.contains("Connection refused"), "{got}");
    // Forbidden by --deny-target: SOCKS5 0x02, HTTP 403.
    let got = refused_with(port, &socks5_connect([127, 0, 0, 2], 80));
    assert_eq!(&got[..4], &[5, 0, 5, 2], "{got:?}");
    let got = refused_with(port, b"CONNECT 127.0.0.2:80 HTTP/1.1\r\n\r\n");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 403 Forbidden\r\n"));
    // A name that resolves only to denied addresses is refused after resolution.
    let mut by_name = vec![5, 1, 0, 5, 1, 0, 3, 9];
    by_name.extend_from_slice(b"127.0.0.2");
    by_name.extend_from_slice(&80u16.to_be_bytes());
    assert_eq!(&refused_with(port, &by_name)[..4], &[5, 0, 5, 2]);
    // Plain-HTTP proxying: 405 with the reason.
    let got = refused_with(
        port,
        b"GET http://example.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{text}"
    );
    assert!(text.contains("plain-HTTP proxying is not served"), "{text}");
    // BIND and UDP ASSOCIATE: 0x07.
    let got = refused_with(port, &[5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80]);
    assert_eq!(&got[..4], &[5, 0, 5, 7], "{got:?}");
    let out = signal_and_wait(p, "TERM", 143);
    out.expect_stderr_contains("; refused (connect 127.0.0.1:")
        .expect_stderr_contains("refused by --allow-target/--deny-target")
        .expect_stderr_contains("; rejected (GET http://example.test/: plain-HTTP");
}

#[test]
fn credentials_are_required_of_every_client() {
    let (_echo, echo_port) = socat_echo();
    let (p, port) = proxy("http,socks", &["--proxy-auth", "me:secret"]);
    // SOCKS5: no "username/password" offered -> 0xff; a wrong password -> 1 1.
    assert_eq!(refused_with(port, &[5, 1, 0]), vec![5, 0xff]);
    assert_eq!(
        refused_with(port, &[5, 1, 2, 1, 2, b'm', b'e', 1, b'x']),
        vec![5, 2, 1, 1]
    );
    // HTTP: 407 with Proxy-Authenticate, without and with wrong credentials.
    for header in ["", "Proxy-Authorization: Basic bWU6eA==\r\n"] {
        let req = format!("CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\n{header}\r\n");
        let got = String::from_utf8_lossy(&refused_with(port, req.as_bytes())).into_owned();
        assert!(got.starts_with("HTTP/1.1 407 "), "{got}");
        assert!(
            got.contains("\r\nProxy-Authenticate: Basic realm=\"nk\"\r\n"),
            "{got}"
        );
    }
    // SOCKS4 has no password: refused.
    let mut socks4 = vec![4, 1];
    socks4.extend_from_slice(&echo_port.to_be_bytes());
    socks4.extend_from_slice(&[127, 0, 0, 1, b'm', b'e', 0]);
    assert_eq!(refused_with(port, &socks4)[1], 0x5b);
    // curl with the right ones gets through, with the wrong ones is told 407.
    let url = format!("http://127.0.0.1:{port}");
    let target = format!("telnet://127.0.0.1:{echo_port}");
    let out = run_tool(
        "curl",
        "curl",
        &strings(&[
            "-sS",
            "--max-time",
            "10",
            "-p",
            "-x",
            &url,
            "-U",
            "me:wrong",
            &target,
        ]),
        In::Null,
    );
    out.expect_code(56).expect_stderr_contains("407");
    let out = signal_and_wait(p, "TERM", 143);
    out.expect_stderr_contains("bad credentials for user \"me\"")
        .expect_stderr_contains("bad Proxy-Authorization credentials")
        .expect_stderr_contains("--proxy-auth requires a password");
}

#[test]
fn garbage_a_client_that_leaves_mid_request_and_a_silent_one() {
    let (_echo, echo_port) = socat_echo();
    let (p, port) = proxy("http,socks5", &["-i", "1s"]);
    // Garbage: closed without a word (no protocol to answer in).
    assert_eq!(refused_with(port, &[0x16, 3, 1, 0, 0xff]), Vec::<u8>::new());
    // A client that sends half a greeting and closes.
    let mut s = raw(port);
    s.write_all(&[5, 3, 0]).expect("half a greeting");
    s.shutdown(Shutdown::Write).expect("shutdown");
    let (got, err) = read_all(&mut s);
    assert!(got.is_empty() && err.is_none(), "{got:?} {err:?}");
    // A client that resets mid-request.
    let s = raw(port);
    (&s).write_all(b"CONNECT 127.0.0.1:1 HT")
        .expect("half a head");
    drop(s); // nothing unread: a FIN, then the process goes
             // A silent client: dropped at the request deadline (-i 1s is shorter than 10 s).
    let mut silent = raw(port);
    let (got, _) = read_all(&mut silent);
    assert!(got.is_empty(), "{got:?}");
    // Requests still incomplete at the deadline are answered in their protocol, then a FIN
    // (they were reset without a word): an HTTP head, a SOCKS5 greeting, a SOCKS5 request.
    let mut s = raw(port);
    s.write_all(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n")
        .expect("half a head");
    let (got, err) = read_all(&mut s);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text:?}"
    );
    assert!(
        text.ends_with("no complete proxy request within 1s\n") && err.is_none(),
        "{text:?} {err:?}"
    );
    let mut s = raw(port);
    s.write_all(&[5, 2, 0]).expect("half a greeting");
    let (got, err) = read_all(&mut s);
    assert_eq!((got, err.is_none()), (vec![5, 0xff], true));
    let mut s = raw(port);
    s.write_all(&[5, 1, 0, 5, 1, 0, 1, 127])
        .expect("half a request");
    let (got, err) = read_all(&mut s);
    assert_eq!(got, [&[5, 0][..], &[5, 1, 0, 1, 0, 0, 0, 0, 0, 0]].concat());
    assert!(err.is_none(), "{err:?}");
    // An address type SOCKS5 does not define is answered at once, its length unknown.
    let mut s = raw(port);
    s.write_all(&[5, 1, 0, 5, 1, 0, 9])
        .expect("a request of address type 9");
    let (got, _) = read_all(&mut s);
    assert_eq!(got, [&[5, 0][..], &[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]].concat());
    // A head past the 8 KiB cap: 431.
    let huge = format!(
        "CONNECT 127.0.0.1:1 HTTP/1.1\r\nX-Padding: {}\r\n",
        "a".repeat(9000)
    );
    let mut s = raw(port);
    let _ = s.write_all(huge.as_bytes());
    let (got, _) = read_all(&mut s);
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 431 "),
        "{got:?}"
    );
    // And the proxy still serves.
    let mut s = raw(port);
    s.write_all(format!("CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\n\r\nping").as_bytes())
        .expect("request and early data");
    let want = b"HTTP/1.1 200 Connection established\r\n\r\nping".to_vec();
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).expect("the 200 then the echo");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    s.shutdown(Shutdown::Write).expect("shutdown");
    let (rest, err) = read_all(&mut s);
    assert!(rest.is_empty() && err.is_none(), "{rest:?} {err:?}");
    let out = signal_and_wait(p, "TERM", 143);
    out.expect_stderr_contains("rejected (not a proxy request (first bytes 16 03 01 00 ff))")
        .expect_stderr_contains("rejected (the client closed before its request was complete)")
        .expect_stderr_contains("rejected (no complete proxy request within 1s)")
        .expect_stderr_contains("rejected (the request is longer than 8192 bytes)")
        .expect_stderr_contains("4 bytes up, 4 bytes down");
}

#[test]
fn usage_errors_come_before_any_traffic() {
    for (args, needle) in [
        (
            vec!["listen", "--proxy", "ftp", "0"],
            "unknown proxy kind \"ftp\"",
        ),
        (vec!["listen", "--proxy-auth", "a:b", "0"], "--proxy"),
        (
            vec!["listen", "--proxy", "http", "-e", "cat", "0"],
            "cannot be used with",
        ),
        (
            vec!["listen", "--proxy", "http", "--allow-target", "10.1/8", "0"],
            "10.1/8",
        ),
        (
            vec!["listen", "--proxy", "socks5", "--proxy-auth", ":x", "0"],
            "a user of 1-255",
        ),
        (
            vec!["listen", "--proxy", "socks4", "--proxy-auth", "a:b", "0"],
            "SOCKS4 has no password",
        ),
    ] {
        run_nk(&args, In::Null, 10.0)
            .expect_code(2)
            .expect_stderr_contains(needle);
    }
}

#[test]
fn an_open_proxy_beyond_loopback_is_warned_about() {
    require_netns();
    let nk = env!("CARGO_BIN_EXE_nk");
    // In a private network namespace: listening on every address exposes nothing.
    let script = format!(
        "ip link set lo up; {nk} listen --proxy socks5 -v 0.0.0.0:0 & pid=$!; sleep 1; \
         kill -TERM $pid; wait $pid"
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "sh", "-c", &script]);
    let out = Proc::spawn("unshare", cmd, In::Null, Out::Pipe).wait(20.0);
    out.expect_code(143)
        .expect_stderr_contains("an open proxy: anyone who reaches 0.0.0.0:");
    // On loopback, no warning.
    let (p, _) = proxy("socks5", &[]);
    let out = signal_and_wait(p, "TERM", 143);
    assert!(!out.stderr.contains("open proxy"), "{}", out.describe());
}

#[test]
fn with_tls_it_is_an_https_proxy() {
    let origin = http_origin();
    // An ephemeral self-signed certificate: curl is told not to check it.
    let (p, port) = proxy("http", &["--tls"]);
    let args = strings(&[
        "-sS",
        "--max-time",
        "10",
        "--proxy-insecure",
        "-p",
        "-x",
        &format!("https://127.0.0.1:{port}"),
        &format!("http://localhost:{origin}/"),
    ]);
    run_tool("curl", "curl", &args, In::Null)
        .expect_code(0)
        .expect_stdout(BODY);
    let done = signal_and_wait(p, "TERM", 143);
    done.expect_stderr_contains("a proxy: HTTP CONNECT over TLS")
        .expect_stderr_contains(&format!(
            "[TLS 1.3, TLS13_AES_256_GCM_SHA384] -> localhost:{origin} (127.0.0.1:{origin})"
        ));
    // curl closes the tunnel once it has the body; a TLS 1.3 record still unread on its side
    // (a session ticket, our close_notify) then makes its kernel answer with a reset, so the
    // connection ends with a FIN or, now and then, as reset by the client: either is said.
    assert!(
        done.stderr.contains("; fin") || done.stderr.contains("; reset (reset by the client)"),
        "{}",
        done.describe()
    );
}

#[test]
fn a_refused_client_is_said_without_v() {
    // The client gets its refusal in protocol terms; the operator hears of it on stderr too,
    // without -v (throttled to a line a second).
    let port = free_port("127.0.0.1");
    let addr = format!("127.0.0.1:{port}");
    let mut server = Proc::nk(
        [
            "listen",
            "--proxy",
            "socks5",
            "--deny-target",
            "127.0.0.0/8",
            &addr,
        ],
        In::Null,
        Out::Pipe,
    );
    // No probe connection (it would be a client turned away too): dial until the proxy is
    // there to refuse.
    let url = format!("socks5://{addr}");
    wait_until(10.0, || {
        let out = run_nk(["dial", "--proxy", &url, "127.0.0.1", "9"], In::Null, 10.0);
        out.stderr.contains("SOCKS5 reply 2")
    });
    let line = server.wait_stderr_line(10.0, |l| l.contains("refused"));
    assert!(
        line.contains("refused by --allow-target/--deny-target"),
        "{line}"
    );
    terminate(server);
}
