//! `nk dial` and `nk listen` against real peers on loopback: OpenBSD `nc`,
//! `socat`, Python and plain `std::net` servers, and each other.
//!
//! Every test bounds its children with a deadline (see `common::Proc::wait`),
//! uses only ports the kernel handed to it, and asserts what a user sees: the
//! bytes that arrived, the exit status, the stderr line. A missing peer tool
//! fails the test with an install hint.

mod common;

use common::*;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// A server that reads until EOF (at most `secs` of silence), then writes
/// `reply` and closes. Returns (bytes received, EOF seen, peer address).
fn serve_read_then_reply(secs: f64, reply: &'static [u8]) -> Server<(Vec<u8>, bool, SocketAddr)> {
    Server::start(move |mut s, peer| {
        let (got, eof) = read_until_eof(&mut s, secs);
        let _ = s.write_all(reply);
        (got, eof, peer)
    })
}

// ---------------------------------------------------------------------------
// 1. bulk transfer against OpenBSD nc, both roles
// ---------------------------------------------------------------------------

#[test]
fn dial_sends_64mib_to_openbsd_nc_listener() {
    require_openbsd_nc();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    let data = write_random_file(&input, 64 * MIB, 0x5eed_0001);

    let mut nc = Proc::spawn(
        "nc -n -v -l 127.0.0.1 0",
        {
            let mut c = Command::new("nc");
            c.args(["-n", "-v", "-l", "127.0.0.1", "0"]);
            c
        },
        In::Null,
        Out::File(output.clone()),
    );
    let port = last_port(&nc.wait_stderr_line(10.0, |l| l.starts_with("Listening on")));

    let dial = Proc::nk(
        ["dial", "127.0.0.1", &port.to_string()],
        In::File(input),
        Out::Pipe,
    )
    .wait(40.0);
    dial.expect_code(0).expect_stdout(b"");
    nc.wait(10.0).expect_code(0);
    assert_same_bytes("nc -l received", &read_file(&output), &data);
}

#[test]
fn listen_receives_64mib_from_openbsd_nc() {
    require_openbsd_nc();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    let data = write_random_file(&input, 64 * MIB, 0x5eed_0002);

    let mut listen = Proc::nk(["listen", "-v", "0"], In::Null, Out::File(output.clone()));
    let port = listen.nk_listening_port();

    let nc = Proc::spawn(
        "nc -N 127.0.0.1 PORT",
        {
            let mut c = Command::new("nc");
            c.args(["-N", "127.0.0.1", &port.to_string()]);
            c
        },
        In::File(input),
        Out::Pipe,
    )
    .wait(40.0);
    nc.expect_code(0).expect_stdout(b"");
    listen.wait(10.0).expect_code(0);
    assert_same_bytes("nk listen received", &read_file(&output), &data);
}

// ---------------------------------------------------------------------------
// 2. both directions at once, more than the socket buffers hold
// ---------------------------------------------------------------------------

#[test]
fn dial_full_duplex_through_socat_cat() {
    require_tool("socat", "socat");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    let data = write_random_file(&input, 32 * MIB, 0x5eed_0003);

    // -t 10: after nk's EOF reaches socat, give cat time to drain before
    // socat closes (its default 0.5 s could cut the echo short on a busy host).
    let mut socat = Proc::spawn(
        "socat TCP-LISTEN:0 EXEC:cat",
        {
            let mut c = Command::new("socat");
            c.args([
                "-d",
                "-d",
                "-t",
                "10",
                "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr",
                "EXEC:cat",
            ]);
            c
        },
        In::Null,
        Out::Null,
    );
    let port = last_port(&socat.wait_stderr_line(10.0, |l| l.contains("listening on")));

    let dial = Proc::nk(
        ["dial", "127.0.0.1", &port.to_string()],
        In::File(input),
        Out::File(output.clone()),
    )
    .wait(40.0);
    dial.expect_code(0);
    assert_same_bytes("echo through socat EXEC:cat", &read_file(&output), &data);
    socat.wait(15.0);
}

// ---------------------------------------------------------------------------
// 3. half-close, --no-shutdown, -q
// ---------------------------------------------------------------------------

const REQUEST: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

#[test]
fn dial_half_closes_at_stdin_eof_and_prints_the_answer() {
    let server = Server::start(|mut s, _| {
        let (got, eof) = read_until_eof(&mut s, 5.0);
        let _ = s.write_all(if eof {
            b"HTTP/1.0 200 OK\r\n\r\nhello\n"
        } else {
            b"no-eof"
        });
        got
    });
    let out = run_nk(
        ["dial", "127.0.0.1", &server.port().to_string()],
        In::Bytes(REQUEST.to_vec()),
        10.0,
    );
    out.expect_code(0)
        .expect_stdout(b"HTTP/1.0 200 OK\r\n\r\nhello\n");
    assert_eq!(server.join(), REQUEST);
}

#[test]
fn dial_no_shutdown_keeps_the_write_side_open() {
    let server = Server::start(|mut s, _| {
        // Wait ~1 s for an EOF that must not come.
        let (got, eof) = read_until_eof(&mut s, 1.0);
        let _ = s.write_all(if eof { b"eof" } else { b"no-eof" });
        (got, eof)
    });
    let out = run_nk(
        [
            "dial",
            "--no-shutdown",
            "127.0.0.1",
            &server.port().to_string(),
        ],
        In::Bytes(REQUEST.to_vec()),
        10.0,
    );
    let (got, eof) = server.join();
    assert!(
        !eof,
        "server saw EOF despite --no-shutdown\n{}",
        out.describe()
    );
    assert_eq!(got, REQUEST);
    out.expect_code(0).expect_stdout(b"no-eof");
}

#[test]
fn dial_q_exits_after_stdin_eof_while_the_peer_stays_open() {
    let server = Server::start(|mut s, _| {
        let (_, eof) = read_until_eof(&mut s, 5.0);
        let _ = s.write_all(if eof { b"answer\n" } else { b"no-eof\n" });
        // Keep the connection open until nk goes away (bounded).
        let _ = read_until_eof(&mut s, 10.0);
    });
    let out = run_nk(
        ["dial", "-q", "1", "127.0.0.1", &server.port().to_string()],
        In::Bytes(REQUEST.to_vec()),
        6.0,
    );
    out.expect_code(0).expect_stdout(b"answer\n");
    server.join();
}

// ---------------------------------------------------------------------------
// 4. the peer closes first while stdin stays open
// ---------------------------------------------------------------------------

/// A peer that closed for good while stdin stays open and silent: like OpenBSD nc, nk waits
/// for stdin (more may come for a peer that only half-closed); stdin's EOF ends it, exit 0.
#[test]
fn dial_waits_for_stdin_when_the_peer_closes_while_stdin_stays_open() {
    let server = Server::start(|mut s, _| {
        s.write_all(b"bye\n").unwrap();
        // dropping `s` closes the connection
    });
    let mut nk = Proc::nk(
        ["dial", "127.0.0.1", &server.port().to_string()],
        In::Pipe,
        Out::Pipe,
    );
    nk.wait_stdout_len(4, 5.0);
    server.join();
    thread_sleep_ms(300);
    assert!(nk.is_running(), "nk ended before its stdin did");
    nk.stdin.take();
    let out = nk.wait(5.0);
    out.expect_code(0).expect_stdout(b"bye\n");
}

fn thread_sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

// ---------------------------------------------------------------------------
// 5. Happy Eyeballs: ::1 refused, 127.0.0.1 listening
// ---------------------------------------------------------------------------

#[test]
fn dial_happy_eyeballs_falls_back_to_ipv4() {
    require_tool("unshare", "util-linux");
    let probe = Command::new("unshare")
        .args(["-m", "true"])
        .output()
        .expect("run unshare");
    assert!(
        probe.status.success(),
        "this test needs a private mount namespace (`unshare -m`, i.e. root or CAP_SYS_ADMIN) \
         to give the name `dualhost` both ::1 and 127.0.0.1; `unshare -m true` failed: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "::1 dualhost\n127.0.0.1 dualhost\n").unwrap();

    let server = serve_read_then_reply(5.0, b"v4-ok\n");
    let port = server.port().to_string();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        r#"mount --bind "$1" /etc/hosts && exec "$2" dial -v dualhost "$3""#,
        "sh",
    ])
    .arg(&hosts)
    .arg(NK)
    .arg(&port)
    .env("NO_COLOR", "1");
    let out = Proc::spawn(
        "unshare -m ... nk dial -v dualhost PORT",
        cmd,
        In::Bytes(b"hi\n".to_vec()),
        Out::Pipe,
    )
    .wait(10.0);
    out.expect_code(0)
        .expect_stdout(b"v4-ok\n")
        .expect_stderr_contains(&format!("connected to 127.0.0.1:{port}"));
    let (got, eof, _) = server.join();
    assert_eq!(got, b"hi\n");
    assert!(eof);
}

// ---------------------------------------------------------------------------
// 6. -w connect timeout, -i idle timeout
// ---------------------------------------------------------------------------

#[test]
fn dial_w_times_out_against_a_full_accept_queue() {
    let (py, port) = full_queue_listener();

    let out = run_nk(
        ["dial", "-w", "1", "127.0.0.1", &port.to_string()],
        In::Null,
        5.0,
    );
    out.expect_code(1).expect_stderr_contains("timed out");
    assert!(out.stderr.starts_with("nk: "), "{}", out.describe());
    assert!(
        out.elapsed >= Duration::from_millis(800),
        "gave up before -w 1 elapsed\n{}",
        out.describe()
    );
    drop(py);
}

#[test]
fn dial_i_idle_timeout_against_a_silent_server() {
    let server = Server::start(|mut s, _| {
        // Accept and hold, silent, until nk goes away (bounded).
        read_until_eof(&mut s, 10.0).0
    });
    let nk = Proc::nk(
        ["dial", "-i", "1", "127.0.0.1", &server.port().to_string()],
        In::Pipe,
        Out::Pipe,
    );
    let out = nk.wait(5.0);
    out.expect_code(1)
        .expect_stderr_contains("idle")
        .expect_stdout(b"");
    assert!(out.stderr.starts_with("nk: "), "{}", out.describe());
    assert!(
        out.elapsed >= Duration::from_millis(800),
        "gave up before -i 1 elapsed\n{}",
        out.describe()
    );
    assert_eq!(server.join(), b"");
}

// ---------------------------------------------------------------------------
// 7. errors: refused, usage, closed stdout
// ---------------------------------------------------------------------------

#[test]
fn dial_connection_refused() {
    let closed = closed_port();
    let port = closed.port;
    let want = format!("nk: connect 127.0.0.1:{port}: Connection refused");
    for args in [
        vec![
            "dial".to_string(),
            "127.0.0.1".to_string(),
            port.to_string(),
        ],
        vec!["dial".to_string(), format!("127.0.0.1:{port}")],
    ] {
        let out = run_nk(&args, In::Null, 5.0);
        out.expect_code(1).expect_stdout(b"");
        assert!(
            out.stderr_first_line().starts_with(&want),
            "expected stderr to start with {want:?}\n{}",
            out.describe()
        );
    }
}

#[test]
fn malformed_addresses_and_values_are_usage_errors() {
    // A listener the malformed commands would reach if parsed leniently: it
    // must see no connection at all.
    let guard = TcpListener::bind("127.0.0.1:0").unwrap();
    guard.set_nonblocking(true).unwrap();
    let p = guard.local_addr().unwrap().port().to_string();
    let cases: Vec<Vec<String>> = vec![
        words(&["dial", "127.0.0.1:70000"]),
        words(&["dial", "127.0.0.1", "70000"]),
        words(&["dial", "127.0.0.1:0"]),
        words(&["dial", "127.0.0.1", "0"]),
        words(&["dial", "abc:"]),
        words(&["dial", "localhost:"]),
        words(&["dial", "[::1"]),
        vec!["dial".into(), format!("[::1:{p}")],
        words(&["dial", ""]),
        words(&["dial", "-w", "5x", "127.0.0.1", &p]),
        words(&["dial", "-i", "5x", "127.0.0.1", &p]),
        words(&["dial", "-q", "soon", "127.0.0.1", &p]),
        words(&["listen", "70000"]),
        words(&["listen", "127.0.0.1:70000"]),
        words(&["listen", "abc:"]),
        words(&["listen", "[::1"]),
        words(&["listen", "-w", "5x", "127.0.0.1:0"]),
    ];
    expect_usage_errors(
        &cases,
        || In::Null,
        || guard.accept().is_ok(),
        "a malformed command connected to the guard listener",
    );
}

#[test]
fn dial_exits_zero_quietly_when_stdout_closes_early() {
    require_tool("bash", "bash");
    require_tool("head", "coreutils");
    let data = prng_bytes(10 * MIB, 0x5eed_0007);
    let first10 = data[..10].to_vec();
    let server = Server::start(move |mut s, _| {
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        // nk goes away after head does: the write then fails, as expected.
        let _ = s.write_all(&data);
    });
    let mut cmd = Command::new("bash");
    cmd.args([
        "-c",
        r#""$0" dial 127.0.0.1 "$1" </dev/null | head -c 10; echo "nk-exit=${PIPESTATUS[0]}" >&2"#,
        NK,
        &server.port().to_string(),
    ])
    .env("NO_COLOR", "1");
    let out = Proc::spawn("nk dial ... | head -c 10", cmd, In::Null, Out::Pipe).wait(10.0);
    out.expect_code(0).expect_stdout(&first10);
    let nk_stderr: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.starts_with("nk-exit="))
        .collect();
    assert!(
        out.stderr.lines().any(|l| l == "nk-exit=0") && nk_stderr.is_empty(),
        "nk must exit 0 without a message when stdout closes\n{}",
        out.describe()
    );
    server.join();
}

// ---------------------------------------------------------------------------
// 8. options: -x, -C, --send-only, --recv-only, -s/-p
// ---------------------------------------------------------------------------

fn hex_line<'a>(text: &'a str, mark: &str, hex: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(&format!("{mark} 00000000")) && l.to_lowercase().contains(hex))
}

#[test]
fn dial_x_hex_dump_to_stderr_marks_both_directions() {
    let server = serve_read_then_reply(5.0, b"HELLO");
    let out = run_nk(
        ["dial", "-x", "-", "127.0.0.1", &server.port().to_string()],
        In::Bytes(b"GET /x\n".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"HELLO");
    let sent = hex_line(&out.stderr, ">", "47 45 54 20 2f 78 0a");
    assert!(
        sent.is_some_and(|l| l.contains("|GET /x")),
        "no `> 00000000  47 45 54 ...  |GET /x` line\n{}",
        out.describe()
    );
    let recv = hex_line(&out.stderr, "<", "48 45 4c 4c 4f");
    assert!(
        recv.is_some_and(|l| l.contains("|HELLO|")),
        "no `< 00000000  48 45 4c 4c 4f  |HELLO|` line\n{}",
        out.describe()
    );
    assert_eq!(server.join().0, b"GET /x\n");
}

#[test]
fn dial_x_hex_dump_to_file() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.txt");
    let server = serve_read_then_reply(5.0, b"HELLO");
    let dump_arg = dump.to_string_lossy().into_owned();
    let out = run_nk(
        [
            "dial",
            "-x",
            &dump_arg,
            "127.0.0.1",
            &server.port().to_string(),
        ],
        In::Bytes(b"GET /x\n".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"HELLO");
    let text = String::from_utf8_lossy(&read_file(&dump)).into_owned();
    assert!(
        hex_line(&text, ">", "47 45 54").is_some(),
        "dump file lacks the sent line:\n{text}"
    );
    assert!(
        hex_line(&text, "<", "48 45 4c 4c 4f").is_some(),
        "dump file lacks the received line:\n{text}"
    );
    server.join();
}

#[test]
fn dial_crlf_translates_lf_only() {
    for (input, want) in [
        (&b"a\nb\n"[..], &b"a\r\nb\r\n"[..]),
        (&b"x\r\ny\n"[..], &b"x\r\ny\r\n"[..]),
    ] {
        let server = serve_read_then_reply(5.0, b"");
        let out = run_nk(
            ["dial", "-C", "127.0.0.1", &server.port().to_string()],
            In::Bytes(input.to_vec()),
            10.0,
        );
        out.expect_code(0);
        let got = server.join().0;
        assert_eq!(
            got,
            want,
            "-C: input {:?}: server got {:?}, want {:?}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want)
        );
    }
}

#[test]
fn dial_send_only_never_prints_socket_data() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |mut s, _| {
        s.write_all(b"SECRET\n").unwrap();
        let _ = tx.send(());
        read_until_eof(&mut s, 5.0).0
    });
    let mut nk = Proc::nk(
        [
            "dial",
            "--send-only",
            "127.0.0.1",
            &server.port().to_string(),
        ],
        In::Pipe,
        Out::Pipe,
    );
    rx.recv_timeout(Duration::from_secs(10))
        .expect("server never got a connection");
    let mut stdin = nk.stdin.take().unwrap();
    stdin.write_all(b"to-server\n").unwrap();
    drop(stdin);
    let out = nk.wait(5.0);
    out.expect_code(0).expect_stdout(b"");
    assert_eq!(server.join(), b"to-server\n");
}

#[test]
fn dial_recv_only_never_sends_stdin() {
    let server = Server::start(|mut s, _| {
        s.write_all(b"from-server\n").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        read_until_eof(&mut s, 5.0).0
    });
    let out = run_nk(
        [
            "dial",
            "--recv-only",
            "127.0.0.1",
            &server.port().to_string(),
        ],
        In::Bytes(b"should-not-arrive\n".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"from-server\n");
    let got = server.join();
    assert!(
        got.is_empty(),
        "--recv-only sent {:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn dial_source_address_and_port() {
    let src_port = free_port("127.0.0.2");
    let server = serve_read_then_reply(5.0, b"ok\n");
    let out = run_nk(
        [
            "dial",
            "-s",
            "127.0.0.2",
            "-p",
            &src_port.to_string(),
            "127.0.0.1",
            &server.port().to_string(),
        ],
        In::Bytes(b"x".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"ok\n");
    let (_, _, peer) = server.join();
    assert_eq!(
        peer,
        SocketAddr::from(([127, 0, 0, 2], src_port)),
        "server saw the wrong peer address"
    );
}

// ---------------------------------------------------------------------------
// listen: end to end with dial, address forms, IPv6, -w
// ---------------------------------------------------------------------------

#[test]
fn listen_receives_from_dial_end_to_end() {
    let data = prng_bytes(MIB, 0x5eed_0009);
    let mut listen = Proc::nk(["listen", "-v", "0"], In::Null, Out::Pipe);
    let port = listen.nk_listening_port();
    let dial = run_nk(
        ["dial", "-v", "127.0.0.1", &port.to_string()],
        In::Bytes(data.clone()),
        20.0,
    );
    let listen = listen.wait(10.0);
    dial.expect_code(0)
        .expect_stdout(b"")
        .expect_stderr_contains(&format!("nk: connected to 127.0.0.1:{port} (tcp)"));
    assert!(
        dial.stderr.lines().any(|l| l.starts_with("nk: sent ")),
        "dial -v has no `nk: sent ` summary\n{}",
        dial.describe()
    );
    listen.expect_code(0);
    assert_same_bytes("nk listen received from nk dial", &listen.stdout, &data);
    assert!(
        listen
            .stderr
            .lines()
            .any(|l| l.starts_with("nk: connection from ") && l.contains("127.0.0.1")),
        "listen -v has no `nk: connection from 127.0.0.1:PORT` line\n{}",
        listen.describe()
    );
}

/// Runs `nk listen ARGS` (with -v), connects to `connect_ip`, sends a line and
/// checks it arrives and everything ends cleanly.
fn check_listen_form(args: &[&str], connect_ip: &str) {
    let mut full = vec!["listen", "-v"];
    full.extend_from_slice(args);
    let mut listen = Proc::nk(&full, In::Null, Out::Pipe);
    let port = listen.nk_listening_port();
    let payload = format!("form {args:?}\n");
    let mut s = TcpStream::connect((connect_ip, port)).unwrap_or_else(|e| {
        panic!(
            "nk listen {args:?}: connect {connect_ip} port {port}: {e}\n{}",
            listen.stderr_so_far()
        )
    });
    s.write_all(payload.as_bytes()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (back, eof) = read_until_eof(&mut s, 5.0);
    drop(s);
    let out = listen.wait(5.0);
    out.expect_code(0).expect_stdout(payload.as_bytes());
    assert!(
        back.is_empty() && eof,
        "nk listen {args:?}: expected a clean EOF and no data back, got {back:?} eof={eof}"
    );
}

#[test]
fn listen_address_forms() {
    check_listen_form(&["-p", "0"], "127.0.0.1");
    check_listen_form(&["127.0.0.1", "0"], "127.0.0.1");
    check_listen_form(&["127.0.0.1:0"], "127.0.0.1");
    check_listen_form(&[":0"], "127.0.0.1");
    // No host: IPv6 and IPv4 both (IPv4 is covered by the nc test above).
    check_listen_form(&["0"], "::1");
    check_listen_form(&["[::]:0"], "::1");
}

#[test]
fn listen_on_ipv6_loopback() {
    let mut listen = Proc::nk(
        ["listen", "-v", "[::1]:0"],
        In::Bytes(b"to-client\n".to_vec()),
        Out::Pipe,
    );
    let line = listen.wait_stderr_line(10.0, |l| l.starts_with("nk: listening on "));
    assert!(
        line.starts_with("nk: listening on [::1]:"),
        "listening line does not name [::1]: {line:?}"
    );
    let port = parse_listening_port(&line).expect("port");
    let mut s = TcpStream::connect(("::1", port)).expect("connect [::1]");
    s.write_all(b"to-server\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (back, eof) = read_until_eof(&mut s, 5.0);
    drop(s);
    let out = listen.wait(5.0);
    out.expect_code(0).expect_stdout(b"to-server\n");
    assert_eq!(back, b"to-client\n");
    assert!(eof);
    out.expect_stderr_contains("nk: connection from [::1]:");
}

#[test]
fn listen_w_gives_up_without_a_client() {
    let mut listen = Proc::nk(
        ["listen", "-v", "-w", "1", "127.0.0.1:0"],
        In::Null,
        Out::Pipe,
    );
    listen.nk_listening_port();
    let out = listen.wait(5.0);
    out.expect_code(1).expect_stdout(b"");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("nk: ") && !l.starts_with("nk: listening on ")),
        "no error line\n{}",
        out.describe()
    );
    assert!(
        out.elapsed >= Duration::from_millis(800),
        "gave up before -w 1 elapsed\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 10. the peer half-closes first: nothing the user sends is lost
// ---------------------------------------------------------------------------

/// `nk listen` with stdin at EOF half-closes at once (as `nc -N -l` does); a piped sender
/// must still deliver every byte, not stop at the listener's FIN.
#[test]
fn dial_delivers_a_pipe_in_full_when_the_listener_half_closes_at_once() {
    let data = prng_bytes(16 * MIB, 0x5eed_0010);
    let mut listen = Proc::nk(["listen", "-v", "127.0.0.1:0"], In::Null, Out::Pipe);
    let port = listen.nk_listening_port();
    let mut dial = Proc::nk(
        ["dial", "127.0.0.1", &port.to_string()],
        In::Pipe,
        Out::Pipe,
    );
    let mut stdin = dial.stdin.take().expect("dial stdin");
    let feeder = std::thread::spawn({
        let data = data.clone();
        move || {
            // Small writes with pauses: the pipe is empty between them, as with a real producer.
            for chunk in data.chunks(256 * 1024) {
                stdin.write_all(chunk).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    feeder.join().unwrap();
    dial.wait(20.0).expect_code(0);
    let listen = listen.wait(10.0);
    listen.expect_code(0);
    assert_same_bytes("listener output", &listen.stdout, &data);
}

/// Input that pauses for longer than the 1 s grace after the peer's EOF is still delivered
/// once bytes sent after that EOF have proved the peer is reading.
#[test]
fn dial_keeps_sending_across_a_pause_to_a_peer_that_half_closed() {
    let server = Server::start(|mut s, _| {
        s.shutdown(Shutdown::Write).unwrap();
        read_until_eof(&mut s, 8.0)
    });
    let mut dial = Proc::nk(
        ["dial", "-v", "127.0.0.1", &server.port().to_string()],
        In::Pipe,
        Out::Pipe,
    );
    let mut stdin = dial.stdin.take().expect("dial stdin");
    std::thread::sleep(Duration::from_millis(300));
    stdin.write_all(b"first ").unwrap();
    std::thread::sleep(Duration::from_millis(1800));
    stdin.write_all(b"second").unwrap();
    drop(stdin);
    dial.wait(10.0).expect_code(0);
    let (got, eof) = server.join();
    assert_eq!(String::from_utf8_lossy(&got), "first second");
    assert!(eof, "the server never saw EOF");
}

/// nc's spellings: `-N` (nk half-closes at stdin EOF anyway) and `-T` with nc's keywords, DSCP
/// names and hex as well as numbers; the byte is on the socket (`ss --tos` shows it).
#[test]
fn nc_n_and_t_keywords_are_accepted() {
    require_tool("ss", "iproute2");
    for (tos, want) in [
        ("lowdelay", "tos:0x10"),
        ("af21", "tos:0x48"),
        ("0x20", "tos:0x20"),
    ] {
        let server = serve_read_then_reply(10.0, b"ok\n");
        let port = server.port().to_string();
        let mut nk = Proc::nk(
            ["dial", "-N", "-T", tos, "127.0.0.1", &port],
            In::Pipe,
            Out::Pipe,
        );
        let filter = format!("dport = :{port}");
        let mut seen = String::new();
        wait_until(5.0, || {
            let out = Command::new("ss")
                .args(["-tn", "--tos", &filter])
                .output()
                .expect("run ss");
            seen = String::from_utf8_lossy(&out.stdout).into_owned();
            seen.contains("ESTAB")
        });
        assert!(seen.contains(want), "-T {tos}: want {want} in\n{seen}");
        nk.stdin.take();
        nk.wait(10.0).expect_code(0).expect_stdout(b"ok\n");
        server.join();
    }
    let out = run_nk(["dial", "-T", "fastest", "127.0.0.1", "1"], In::Null, 10.0);
    out.expect_code(2).expect_stderr_contains("DSCP name");
}

/// Durations mean one thing everywhere: `-i 0` is "never" (dial used to time out at once),
/// and `-w 0`, `--timeout 0` are usage errors (0 would give up before trying).
#[test]
fn i_zero_is_never_and_w_zero_is_a_usage_error() {
    let server = Server::start(|mut s, _| {
        // Silent for a while: an idle timeout of 0 taken literally would end nk at once.
        std::thread::sleep(Duration::from_millis(500));
        s.write_all(b"late\n").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        read_until_eof(&mut s, 10.0)
    });
    let port = server.port().to_string();
    let mut nk = Proc::nk(["dial", "-i", "0", "127.0.0.1", &port], In::Pipe, Out::Pipe);
    nk.wait_stdout_len(5, 10.0);
    nk.stdin.take();
    nk.wait(10.0).expect_code(0).expect_stdout(b"late\n");
    server.join();
    for args in [
        vec!["dial", "-w", "0", "127.0.0.1", "1"],
        vec!["listen", "-w", "0", "127.0.0.1:0"],
        vec!["head", "--timeout", "0", "http://127.0.0.1:1/"],
        vec![
            "smtp",
            "-w",
            "0",
            "--from",
            "a@b.c",
            "--to",
            "d@e.f",
            "127.0.0.1:1",
        ],
        vec!["daytime", "-w", "0", "127.0.0.1:1"],
    ] {
        let out = run_nk(&args, In::Null, 10.0);
        out.expect_code(2)
            .expect_stderr_contains("0 would give up before trying");
    }
}

/// `nk listen '[::]:P'` takes IPv4 clients too, as `nc -l :: P` and socat's TCP6-LISTEN do
/// on Linux (the kernel's default), and `-v` says so; with `-6` it is IPv6 only.
#[test]
fn listen_on_the_ipv6_wildcard_is_dual_stack_unless_6() {
    let mut nk = Proc::nk(["-v", "listen", "[::]:0"], In::Null, Out::Pipe);
    let line = nk.wait_stderr_line(10.0, |l| l.starts_with("nk: listening on "));
    assert!(line.ends_with("(tcp); IPv6 and IPv4"), "{line}");
    let port = parse_listening_port(&line).unwrap();
    let mut s = connect_local(port);
    s.write_all(b"over IPv4\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    nk.wait(10.0).expect_code(0).expect_stdout(b"over IPv4\n");

    let mut nk = Proc::nk(["-v", "listen", "-6", "[::]:0"], In::Null, Out::Pipe);
    let line = nk.wait_stderr_line(10.0, |l| l.starts_with("nk: listening on "));
    assert!(line.ends_with("(tcp); IPv6 only"), "{line}");
    let port = parse_listening_port(&line).unwrap();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    let mut s = TcpStream::connect(("::1", port)).expect("connect over IPv6");
    s.write_all(b"over IPv6\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    nk.wait(10.0).expect_code(0).expect_stdout(b"over IPv6\n");
}

/// What the kernel says in one word gets a hint: a link-local address without its interface
/// ("Invalid argument"), a port below 1024 without privilege ("Permission denied"); and a
/// scoped address keeps its %iface wherever nk prints it.
#[test]
fn kernel_refusals_get_hints_and_scopes_are_kept() {
    let out = run_nk(["dial", "fe80::1", "9"], In::Null, 10.0);
    out.expect_code(1)
        .expect_stderr_contains("hint: a link-local address needs its interface: fe80::1%");
    let out = run_nk(["dial", "-w", "1", "fe80::1%lo", "9"], In::Null, 10.0);
    out.expect_code(1).expect_stderr_contains("[fe80::1%lo]:9");
    require_tool("setpriv", "util-linux");
    let out = Proc::spawn(
        "setpriv nk listen 127.0.0.1:80",
        {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", NK])
                .args(["listen", "127.0.0.1:80"]);
            cmd
        },
        In::Null,
        Out::Pipe,
    )
    .wait(10.0);
    out.expect_code(1)
        .expect_stderr_contains("hint: ports below 1024 need privilege");
}

/// A flag that would have no effect is a usage error (exit 2, nothing sent), never silently
/// ignored.
#[test]
fn flags_without_effect_are_usage_errors() {
    let guard = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = guard.local_addr().unwrap().port().to_string();
    let cases: Vec<Vec<String>> = vec![
        words(&["listen", "-k", "-w", "1", "127.0.0.1:0"]),
        words(&["listen", "--broker", "-w", "1", "127.0.0.1:0"]),
        words(&["listen", "--drop-slow", "127.0.0.1:0"]),
        words(&[
            "listen",
            "-k",
            "-e",
            "/bin/cat",
            "--max-line",
            "10",
            "127.0.0.1:0",
        ]),
        words(&["dial", "-z", "--tls", "127.0.0.1", &port]),
        words(&["dial", "-z", "-C", "127.0.0.1", &port]),
        words(&["dial", "-z", "-x", "-", "127.0.0.1", &port]),
        words(&["dial", "-z", "--nodelay", "127.0.0.1", &port]),
        words(&["udp", "--join", "239.1.2.3", "127.0.0.1", &port]),
        words(&["unix", "--drop-slow", "/tmp/nk-no-such.sock"]),
    ];
    for args in &cases {
        let out = run_nk(args, In::Null, 10.0);
        out.expect_code(2);
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Nothing reached the guard: a scan refused before connecting leaves no connection.
    guard.set_nonblocking(true).unwrap();
    assert!(guard.accept().is_err(), "a refused command connected");
}

// ---------------------------------------------------------------------------
// 12. -o FILE / --append-output / --output-both: a recording of the session
// ---------------------------------------------------------------------------

/// A server that sends `reply` while reading until EOF (both at once, as a full-duplex
/// peer does), then closes. Returns what it read.
fn serve_duplex(reply: Vec<u8>) -> Server<Vec<u8>> {
    Server::start(move |mut s, _| {
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&reply).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let (got, eof) = read_until_eof(&mut s, 20.0);
        assert!(eof, "no EOF from nk");
        writer.join().unwrap();
        got
    })
}

/// `nk dial -o` against a full-duplex server: the file holds exactly what the server sent
/// (3 MiB), stdout too, and the server got all of stdin; `--append-output` adds a second session
/// after the first; `--output-both` marks each line with its direction.
#[test]
fn dial_o_records_received_bytes_exactly_and_append_output_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let record = path("session.bin");
    let record_arg = record.to_string_lossy().into_owned();
    let mut recorded = Vec::new();
    for (round, extra) in [(1u64, None), (2, Some("--append-output"))] {
        let from_server = write_random_file(&path("server.bin"), 3 * MIB, 0x0e_0000 + round);
        let from_client = write_random_file(&path("client.bin"), MIB, 0x0e_0010 + round);
        let server = serve_duplex(from_server.clone());
        let mut args = vec!["dial", "-o", &record_arg];
        args.extend(extra);
        let port = server.port().to_string();
        args.extend(["127.0.0.1", &port]);
        let dial = Proc::nk(
            &args,
            In::File(path("client.bin")),
            Out::File(path("out.bin")),
        );
        dial.wait(40.0).expect_code(0);
        assert_same_bytes("the server received", &server.join(), &from_client);
        assert_same_bytes("nk stdout", &read_file(&path("out.bin")), &from_server);
        recorded.extend_from_slice(&from_server);
        assert_same_bytes(
            &format!("the recording after round {round}"),
            &read_file(&record),
            &recorded,
        );
    }

    // Without --append-output the file starts over; --output-both marks both directions.
    let server = serve_read_then_reply(5.0, b"HELLO\nWORLD");
    let out = run_nk(
        [
            "dial",
            "-o",
            &record_arg,
            "--output-both",
            "127.0.0.1",
            &server.port().to_string(),
        ],
        In::Bytes(b"GET /x\n".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"HELLO\nWORLD");
    assert_eq!(lossy(&read_file(&record)), "> GET /x\n< HELLO\n< WORLD");
    server.join();
}

/// `nk listen -o`: one-shot (4 MiB from nc, byte-exact), `-k` with clients at once (every
/// client's bytes in the one file), a Unix socket, and TLS (the plaintext is recorded).
#[test]
fn listen_o_records_one_shot_keep_open_unix_and_tls_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let record = path("session.bin");
    let record_arg = record.to_string_lossy().into_owned();

    // One-shot, from OpenBSD nc.
    let data = write_random_file(&path("in.bin"), 4 * MIB, 0x0e_0100);
    let mut listen = Proc::nk(
        ["listen", "-v", "-o", &record_arg, "127.0.0.1:0"],
        In::Null,
        Out::File(path("out.bin")),
    );
    let port = listen.nk_listening_port().to_string();
    nc(
        &["-N", "127.0.0.1", &port],
        In::File(path("in.bin")),
        Out::Null,
    )
    .wait(40.0)
    .expect_code(0);
    listen.wait(10.0).expect_code(0);
    assert_same_bytes("nk listen stdout", &read_file(&path("out.bin")), &data);
    assert_same_bytes("the one-shot recording", &read_file(&record), &data);

    // -k: four clients at once, each its own letter in 64-byte lines.
    const CLIENTS: u8 = 4;
    const LINES: usize = 4096;
    let mut listen = Proc::nk(
        ["listen", "-v", "-k", "-o", &record_arg, "127.0.0.1:0"],
        In::Null,
        Out::Null,
    );
    let port = listen.nk_listening_port();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = connect_local(port);
                let mut line = vec![b'a' + i; 63];
                line.push(b'\n');
                for _ in 0..LINES {
                    s.write_all(&line).unwrap();
                }
                s.shutdown(Shutdown::Write).unwrap();
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let total = usize::from(CLIENTS) * LINES * 64;
    assert!(
        wait_until(20.0, || std::fs::metadata(&record)
            .is_ok_and(|m| m.len() as usize >= total)),
        "the -k recording never reached {total} bytes"
    );
    signal_and_wait(listen, "TERM", 143);
    let got = read_file(&record);
    assert_eq!(got.len(), total);
    for i in 0..CLIENTS {
        let count = got.iter().filter(|&&b| b == b'a' + i).count();
        assert_eq!(count, LINES * 63, "bytes of client {i} in the recording");
    }

    // A Unix socket.
    let sock = path("s.sock");
    let sock_arg = sock.to_string_lossy().into_owned();
    let listen = Proc::nk(
        ["unix", "-l", "-o", &record_arg, &sock_arg],
        In::Null,
        Out::Pipe,
    );
    assert!(wait_until(10.0, || sock.exists()), "no socket file");
    run_nk(
        ["unix", &sock_arg],
        In::Bytes(b"over unix\n".to_vec()),
        10.0,
    )
    .expect_code(0);
    listen
        .wait(10.0)
        .expect_code(0)
        .expect_stdout(b"over unix\n");
    assert_eq!(read_file(&record), b"over unix\n");

    // TLS: what is recorded is the plaintext, byte for byte.
    let data = write_random_file(&path("in.bin"), 2 * MIB, 0x0e_0200);
    let mut listen = Proc::nk(
        ["listen", "-v", "--tls", "-o", &record_arg, "127.0.0.1:0"],
        In::Null,
        Out::Null,
    );
    let port = listen.nk_listening_port().to_string();
    Proc::nk(
        ["dial", "--tls", "--insecure", "127.0.0.1", &port],
        In::File(path("in.bin")),
        Out::Null,
    )
    .wait(30.0)
    .expect_code(0);
    listen.wait(10.0).expect_code(0);
    assert_same_bytes("the TLS recording", &read_file(&record), &data);
}

/// An -o path that cannot be written is a usage error before any traffic; a recording that
/// fails mid-session (/dev/full) is said once on stderr and the payload still flows.
#[test]
fn o_unwritable_is_a_usage_error_and_a_failing_recording_is_said_once() {
    let server = NoConnect::new();
    let out = run_nk(
        [
            "dial",
            "-o",
            "/nonexistent-dir/rec",
            "127.0.0.1",
            &server.port.to_string(),
        ],
        In::Null,
        10.0,
    );
    out.expect_code(2)
        .expect_stderr_contains("open output file /nonexistent-dir/rec");
    server.expect_none(0.2, "nk dial -o /nonexistent-dir/rec");

    let reply = prng_bytes(MIB, 0x0e_0300);
    let sent = reply.clone();
    let server = Server::start(move |mut s, _| {
        let _ = s.write_all(&sent);
    });
    let out = run_nk(
        [
            "dial",
            "-o",
            "/dev/full",
            "127.0.0.1",
            &server.port().to_string(),
        ],
        In::Null,
        20.0,
    );
    out.expect_code(0);
    assert_same_bytes("nk stdout", out.stdout.as_slice(), &reply);
    let said = out.stderr.matches("the recording (-o) stops").count();
    assert_eq!(said, 1, "{}", out.describe());
    server.join();
}
