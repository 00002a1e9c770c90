//! `nk udp` (and `nk dial -u` / `nk listen -u`): datagram client and server on loopback,
//! against `socat` (UDP-LISTEN, UDP-RECVFROM, UDP-SENDTO), OpenBSD `nc -u`, and the test's own
//! `std::net::UdpSocket`s where a datagram's boundary or source port has to be observed.
//!
//! Ports come from the kernel: nk's own listeners report theirs with `-v`; socat UDP-LISTEN
//! and `nc -u -l -v` report theirs; only socat UDP-RECVFROM (which cannot) gets a port that
//! was free a moment ago. Every wait is bounded; a missing peer tool fails the test.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// `nk udp -l -v ARGS`: waits for `nk: listening on ADDR:PORT (udp)`, checks its form and
/// returns the real port.
fn nk_listen(args: &[&str], stdin: In, stdout: Out) -> (Proc, u16) {
    let mut full = vec!["udp", "-l", "-v"];
    full.extend_from_slice(args);
    let mut p = Proc::nk(&full, stdin, stdout);
    let line = p.wait_stderr_line(10.0, |l| l.starts_with("nk: listening on "));
    assert!(
        line.ends_with(" (udp)"),
        "listening report of {full:?} should end with (udp): {line:?}"
    );
    let port = parse_listening_port(&line)
        .unwrap_or_else(|| panic!("no port in the listening report {line:?}"));
    assert_ne!(port, 0, "listening report shows port 0: {line:?}");
    (p, port)
}

/// `socat UDP-LISTEN:0,bind=127.0.0.1 EXEC:cat` (one peer, echoed) and its port.
fn socat_udp_echo() -> (Proc, u16) {
    let mut p = socat(
        &["UDP-LISTEN:0,bind=127.0.0.1", "EXEC:cat"],
        In::Null,
        Out::Null,
    );
    let port = last_port(&p.wait_stderr_line(10.0, |l| l.contains("listening on")));
    (p, port)
}

/// Does stderr report a truncated datagram (a line with "truncated", other than a summary's
/// "0 truncated")?
fn reports_truncation(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        let l = l.to_lowercase();
        l.contains("truncated") && !l.contains(" 0 truncated")
    })
}

// ---------------------------------------------------------------------------
// 1. client against socat and nc
// ---------------------------------------------------------------------------

#[test]
fn client_echo_through_socat_udp_listen() {
    // Seed 000: `echo hello | nk udp 127.0.0.1 PORT` against an echo service.
    let (_socat, port) = socat_udp_echo();
    let out = run_nk(
        ["udp", "127.0.0.1", &port.to_string()],
        In::Bytes(b"hello\n".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"hello\n");
}

#[test]
fn client_echo_through_socat_udp_recvfrom_fork() {
    let port = free_udp_port();
    let mut socat = socat(
        &[
            &format!("UDP-RECVFROM:{port},bind=127.0.0.1,fork"),
            "EXEC:cat",
        ],
        In::Null,
        Out::Null,
    );
    socat.wait_stderr_line(10.0, |l| l.contains("receiving on"));
    for word in ["hello\n", "again\n"] {
        let out = run_nk(
            ["udp", &format!("127.0.0.1:{port}")],
            In::Bytes(word.as_bytes().to_vec()),
            10.0,
        );
        out.expect_code(0).expect_stdout(word.as_bytes());
    }
}

#[test]
fn client_with_openbsd_nc_u_listener_both_directions() {
    require_openbsd_nc();
    let mut nc = nc(
        &["-u", "-l", "-v", "-n", "127.0.0.1", "0"],
        In::Pipe,
        Out::Pipe,
    );
    let port = last_port(&nc.wait_stderr_line(10.0, |l| l.starts_with("Bound on")));
    let mut nk = Proc::nk(["udp", "127.0.0.1", &port.to_string()], In::Pipe, Out::Pipe);
    write_stdin(&mut nk, b"from nk\n");
    nc.wait_stdout_line(10.0, |l| l == "from nk");
    write_stdin(&mut nc, b"from nc\n");
    nk.wait_stdout_line(10.0, |l| l == "from nc");
    nk.stdin.take();
    let out = nk.wait(10.0);
    out.expect_code(0).expect_stdout(b"from nc\n");
}

// ---------------------------------------------------------------------------
// 2. server against socat and nc
// ---------------------------------------------------------------------------

/// The `nk udp -l` server `nk` and its client `peer`, both with stdin and stdout piped:
/// the line `from_peer` reaches nk's stdout, then `from_nk` reaches the peer's; nk ends
/// on SIGTERM (143) having printed only `from_peer`.
fn both_directions(mut nk: Proc, mut peer: Proc, from_peer: &str, from_nk: &str) {
    write_stdin(&mut peer, format!("{from_peer}\n").as_bytes());
    nk.wait_stdout_line(10.0, |l| l == from_peer);
    write_stdin(&mut nk, format!("{from_nk}\n").as_bytes());
    peer.wait_stdout_line(10.0, |l| l == from_nk);
    drop(peer);
    signal_and_wait(nk, "TERM", 143).expect_stdout(format!("{from_peer}\n").as_bytes());
}

#[test]
fn server_with_socat_udp_sendto_both_directions() {
    let (nk, port) = nk_listen(&["127.0.0.1:0"], In::Pipe, Out::Pipe);
    let sc = socat(
        &["-t", "5", "-", &format!("UDP-SENDTO:127.0.0.1:{port}")],
        In::Pipe,
        Out::Pipe,
    );
    both_directions(nk, sc, "ping", "pong");
}

#[test]
fn server_receives_socat_one_way_and_exits_130_on_sigint() {
    let (mut nk, port) = nk_listen(&["127.0.0.1:0"], In::Null, Out::Pipe);
    socat(
        &["-u", "-", &format!("UDP-SENDTO:127.0.0.1:{port}")],
        In::Bytes(b"hello\n".to_vec()),
        Out::Null,
    )
    .wait(10.0)
    .expect_code(0);
    nk.wait_stdout_line(10.0, |l| l == "hello");
    signal_and_wait(nk, "INT", 130).expect_stdout(b"hello\n");
}

#[test]
fn server_with_openbsd_nc_u_client_both_directions() {
    require_openbsd_nc();
    let (nk, port) = nk_listen(&["127.0.0.1:0"], In::Pipe, Out::Pipe);
    let nc = nc(&["-u", "127.0.0.1", &port.to_string()], In::Pipe, Out::Pipe);
    both_directions(nk, nc, "from nc", "from nk");
}

#[test]
fn server_on_ipv6_loopback() {
    let (mut nk, port) = nk_listen(&["[::1]:0"], In::Pipe, Out::Pipe);
    let c = udp("::1");
    c.send_to(b"six\n", ("::1", port)).unwrap();
    nk.wait_stdout_line(10.0, |l| l == "six");
    write_stdin(&mut nk, b"back\n");
    let (got, from) = recv(&c, "reply over ::1");
    assert_eq!(got, b"back\n");
    assert_eq!(
        from,
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
    );
    signal_and_wait(nk, "TERM", 143);
}

// ---------------------------------------------------------------------------
// 3. boundaries, sizes, truncation
// ---------------------------------------------------------------------------

#[test]
fn server_prints_100_datagrams_of_1_to_65000_bytes_whole() {
    let (mut nk, port) = nk_listen(&["127.0.0.1:0"], In::Null, Out::Pipe);
    let c = udp("127.0.0.1");
    let mut total = 0;
    for i in 0..100usize {
        let n = 1 + i * (65000 - 1) / 99;
        let data = prng_bytes(n, 0xda7a_0000 + i as u64);
        c.send_to(&data, ("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("send datagram {i} ({n} bytes): {e}"));
        // Lock-step: the next datagram leaves only once this one is on stdout, whole.
        total += n;
        let out = nk.wait_stdout_len(total, 10.0);
        assert_same_bytes(
            &format!("datagram {i} ({n} bytes) on stdout"),
            &out[total - n..],
            &data,
        );
    }
    let out = signal_and_wait(nk, "TERM", 143);
    assert_eq!(out.stdout.len(), total, "extra bytes on stdout");
    assert!(
        !reports_truncation(&out.stderr),
        "no datagram was over 65000 bytes, yet stderr says:\n{}",
        out.stderr
    );
}

#[test]
fn client_sends_one_datagram_per_stdin_read_and_prints_replies_whole() {
    let srv = udp("127.0.0.1");
    let port = srv.local_addr().unwrap().port();
    let mut nk = Proc::nk(["udp", "127.0.0.1", &port.to_string()], In::Pipe, Out::Pipe);
    let mut peer = None;
    for (i, &n) in [1usize, 2, 10, 100, 1000, 1500, 4096, 8192]
        .iter()
        .enumerate()
    {
        let data = prng_bytes(n, 0x51d_0000 + i as u64);
        write_stdin(&mut nk, &data);
        let (got, from) = recv(&srv, &format!("stdin chunk {i} ({n} bytes)"));
        assert!(
            got == data,
            "stdin chunk {i} of {n} bytes arrived as a datagram of {} bytes (or other bytes)",
            got.len()
        );
        peer = Some(from);
    }
    let peer = peer.unwrap();
    let mut total = 0;
    for (i, &n) in [1usize, 3, 512, 9000, 33333, 65000].iter().enumerate() {
        let data = prng_bytes(n, 0x4e_0000 + i as u64);
        srv.send_to(&data, peer).unwrap();
        total += n;
        let out = nk.wait_stdout_len(total, 10.0);
        assert_same_bytes(&format!("reply {i} ({n} bytes)"), &out[total - n..], &data);
    }
    nk.stdin.take();
    let out = nk.wait(10.0);
    out.expect_code(0);
    assert_eq!(out.stdout.len(), total);
}

#[test]
fn client_lines_sends_one_datagram_per_line_newline_kept() {
    let srv = udp("127.0.0.1");
    let port = srv.local_addr().unwrap().port();
    let nk = Proc::nk(
        ["udp", "--lines", "127.0.0.1", &port.to_string()],
        In::Bytes(b"a\nbb\nccc\n".to_vec()),
        Out::Pipe,
    );
    for want in [&b"a\n"[..], b"bb\n", b"ccc\n"] {
        let (got, _) = recv(&srv, "--lines datagram");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "--lines: one datagram per line, newline kept\n{}",
            nk.stderr_so_far()
        );
    }
    expect_silence(&srv, 0.3, "--lines: a fourth datagram");
    nk.wait(10.0).expect_code(0);
}

#[test]
fn server_reports_a_datagram_larger_than_the_buffer() {
    let (mut nk, port) = nk_listen(&["-b", "1000", "127.0.0.1:0"], In::Null, Out::Pipe);
    let c = udp("127.0.0.1");
    c.send_to(&prng_bytes(3000, 3000), ("127.0.0.1", port))
        .unwrap();
    assert!(
        wait_until(10.0, || reports_truncation(&nk.stderr_so_far())),
        "a 3000-byte datagram into -b 1000 was not reported as truncated:\n{}",
        nk.stderr_so_far()
    );
    // The server goes on.
    let before = nk.stdout_so_far().len();
    c.send_to(b"after\n", ("127.0.0.1", port)).unwrap();
    let out = nk.wait_stdout_len(before + 6, 10.0);
    assert!(out.ends_with(b"after\n"), "the datagram after the big one");
    signal_and_wait(nk, "TERM", 143);
}

#[test]
fn client_reports_a_reply_larger_than_the_buffer() {
    let srv = udp("127.0.0.1");
    let port = srv.local_addr().unwrap().port();
    let answer = thread::spawn(move || {
        let (_, from) = recv(&srv, "nk's request");
        srv.send_to(&prng_bytes(3000, 7), from).unwrap();
    });
    let out = run_nk(
        ["udp", "-b", "1000", "127.0.0.1", &port.to_string()],
        In::Bytes(b"give me 3000\n".to_vec()),
        10.0,
    );
    answer.join().expect("server thread");
    assert!(
        reports_truncation(&out.stderr),
        "a 3000-byte reply into -b 1000 was not reported as truncated\n{}",
        out.describe()
    );
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "exit 0 or 1 expected\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 4. programs per datagram
// ---------------------------------------------------------------------------

#[test]
fn random_number_server_answers_three_clients() {
    // Seed 003: a random number per datagram, to whoever asked.
    let (nk, port) = nk_listen(
        &["-k", "127.0.0.1:0", "-c", "shuf -i 1-1000 -n 1"],
        In::Null,
        Out::Pipe,
    );
    let clients: Vec<UdpSocket> = (0..3).map(|_| udp("127.0.0.1")).collect();
    let ports: std::collections::HashSet<u16> = clients
        .iter()
        .map(|c| c.local_addr().unwrap().port())
        .collect();
    assert_eq!(ports.len(), 3);
    for (i, c) in clients.iter().enumerate() {
        c.send_to(b"number please\n", ("127.0.0.1", port)).unwrap();
        let (got, from) = recv(c, &format!("client {i}: {}", nk.stderr_so_far()));
        assert_eq!(from.port(), port, "reply from another port");
        let text = String::from_utf8_lossy(&got);
        let n: u32 = text
            .strip_suffix('\n')
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("client {i}: reply {text:?} is not a number and a newline"));
        assert!((1..=1000).contains(&n), "client {i}: {n} not in 1-1000");
    }
    signal_and_wait(nk, "TERM", 143).expect_stdout(b"");
}

#[test]
fn sh_exec_gets_the_datagram_and_the_environment_and_replies_once() {
    let (nk, port) = nk_listen(
        &[
            "-k",
            "-c",
            "printf '%s %s %s\\n' \"$NK_PROTO\" \"$NK_REMOTE_ADDR\" \"$NK_REMOTE_PORT\"; cat",
            "127.0.0.1:0",
        ],
        In::Null,
        Out::Pipe,
    );
    let c = udp("127.0.0.1");
    let me = c.local_addr().unwrap().port();
    for payload in ["payload one\n", "two\n"] {
        c.send_to(payload.as_bytes(), ("127.0.0.1", port)).unwrap();
        let (got, _) = recv(&c, &format!("reply to {payload:?}: {}", nk.stderr_so_far()));
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("udp 127.0.0.1 {me}\n{payload}"),
            "the program's whole output as one reply datagram"
        );
    }
    expect_silence(&c, 0.3, "a second reply datagram");
    signal_and_wait(nk, "TERM", 143).expect_stdout(b"");
}

#[test]
fn exec_cat_echoes_each_datagram_of_each_peer() {
    let (nk, port) = nk_listen(
        &["-k", "-e", "/bin/cat", "127.0.0.1:0"],
        In::Null,
        Out::Pipe,
    );
    let a = udp("127.0.0.1");
    let b = udp("127.0.0.1");
    for round in 0..2 {
        for (name, c) in [("A", &a), ("B", &b)] {
            let msg = format!("{name} round {round}\n");
            c.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
            let (got, _) = recv(c, &format!("{name}'s echo: {}", nk.stderr_so_far()));
            assert_eq!(String::from_utf8_lossy(&got), msg);
        }
    }
    signal_and_wait(nk, "TERM", 143).expect_stdout(b"");
}

#[test]
fn exec_answers_100_peers_at_once_queueing_beyond_64_programs() {
    // Issue 16 item 5: 64 programs run at once; the 36 datagrams beyond must wait for a free
    // slot, not vanish (socat answers all 100). The program outlives the burst, so the
    // 65th datagram arrives while 64 programs are running.
    const PEERS: usize = 100;
    let (nk, port) = nk_listen(
        &["-k", "-c", "sleep 0.3; cat", "127.0.0.1:0"],
        In::Null,
        Out::Pipe,
    );
    let clients: Vec<UdpSocket> = (0..PEERS).map(|_| udp("127.0.0.1")).collect();
    for (i, c) in clients.iter().enumerate() {
        c.send_to(format!("peer {i}\n").as_bytes(), ("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("peer {i}: send: {e}"));
    }
    // One deadline for all: the replies come in waves of 64, whatever the machine's speed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut missing = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        c.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 64];
        match c.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from.port(), port, "peer {i}: reply from another port");
                assert_eq!(
                    String::from_utf8_lossy(&buf[..n]),
                    format!("peer {i}\n"),
                    "peer {i}: its own datagram back"
                );
            }
            Err(_) => missing.push(i),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {PEERS} peers got no reply: {missing:?}\n{}",
        missing.len(),
        nk.stderr_so_far()
    );
    let out = signal_and_wait(nk, "TERM", 143);
    out.expect_stdout(b"");
    assert!(
        !out.stderr.contains("warning"),
        "nothing was lost, yet stderr warns:\n{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------
// 5. peers: first only without -k, every one with -k, stdin to the last heard
// ---------------------------------------------------------------------------

#[test]
fn server_without_k_serves_only_the_first_peer() {
    let (mut nk, port) = nk_listen(&["127.0.0.1:0"], In::Pipe, Out::Pipe);
    let a = udp("127.0.0.1");
    let b = udp("127.0.0.1");
    a.send_to(b"a1\n", ("127.0.0.1", port)).unwrap();
    nk.wait_stdout_line(10.0, |l| l == "a1");
    b.send_to(b"b1\n", ("127.0.0.1", port)).unwrap();
    a.send_to(b"a2\n", ("127.0.0.1", port)).unwrap();
    nk.wait_stdout_line(10.0, |l| l == "a2");
    write_stdin(&mut nk, b"to a\n");
    let (got, _) = recv(&a, "A, the first peer");
    assert_eq!(got, b"to a\n");
    expect_silence(&b, 0.5, "B, a second peer without -k");
    signal_and_wait(nk, "TERM", 143).expect_stdout(b"a1\na2\n");
}

#[test]
fn server_k_prints_every_peer_and_answers_the_last_heard() {
    let (mut nk, port) = nk_listen(&["-k", "127.0.0.1:0"], In::Pipe, Out::Pipe);
    let a = udp("127.0.0.1");
    let b = udp("127.0.0.1");
    a.send_to(b"a1\n", ("127.0.0.1", port)).unwrap();
    nk.wait_stdout_line(10.0, |l| l == "a1");
    b.send_to(b"b1\n", ("127.0.0.1", port)).unwrap();
    nk.wait_stdout_line(10.0, |l| l == "b1");
    write_stdin(&mut nk, b"r1\n");
    assert_eq!(recv(&b, "B, the last peer heard").0, b"r1\n");
    a.send_to(b"a2\n", ("127.0.0.1", port)).unwrap();
    nk.wait_stdout_line(10.0, |l| l == "a2");
    write_stdin(&mut nk, b"r2\n");
    assert_eq!(recv(&a, "A, now the last peer heard").0, b"r2\n");
    expect_silence(&b, 0.3, "B after A spoke last");
    // -v names each datagram's peer.
    let err = nk.stderr_so_far();
    for (name, c) in [("A", &a), ("B", &b)] {
        let addr = c.local_addr().unwrap().to_string();
        assert!(
            err.contains(&addr),
            "-v does not name peer {name} ({addr}):\n{err}"
        );
    }
    signal_and_wait(nk, "TERM", 143).expect_stdout(b"a1\nb1\na2\n");
}

#[test]
fn server_holds_stdin_until_a_peer_is_heard() {
    let (nk, port) = nk_listen(&["127.0.0.1:0"], In::Bytes(b"early\n".to_vec()), Out::Pipe);
    let c = udp("127.0.0.1");
    c.send_to(b"hi\n", ("127.0.0.1", port)).unwrap();
    let (got, _) = recv(&c, &format!("held stdin: {}", nk.stderr_so_far()));
    assert_eq!(got, b"early\n");
    signal_and_wait(nk, "TERM", 143).expect_stdout(b"hi\n");
}

// ---------------------------------------------------------------------------
// 6. client ending: -q silence, ICMP port unreachable
// ---------------------------------------------------------------------------

#[test]
fn client_exits_1_when_the_port_is_unreachable() {
    let port = free_udp_port();
    let out = run_nk(
        ["udp", "-v", "127.0.0.1", &port.to_string()],
        In::Bytes(b"anyone?\n".to_vec()),
        10.0,
    );
    out.expect_code(1).expect_stdout(b"");
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("refused") || err.contains("unreachable"),
        "-v should report the ICMP port unreachable\n{}",
        out.describe()
    );
}

#[test]
fn client_exits_0_when_a_live_peer_stays_silent() {
    let srv = udp("127.0.0.1");
    let port = srv.local_addr().unwrap().port();
    let out = run_nk(
        ["udp", "127.0.0.1", &port.to_string()],
        In::Bytes(b"quiet?\n".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"");
    assert_eq!(recv(&srv, "nk's datagram").0, b"quiet?\n");
}

#[test]
fn client_keeps_printing_replies_after_stdin_eof_until_q_of_silence() {
    let srv = udp("127.0.0.1");
    let port = srv.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (_, from) = recv(&srv, "nk's request");
        for (i, r) in ["r1\n", "r2\n", "r3\n"].iter().enumerate() {
            if i > 0 {
                thread::sleep(Duration::from_millis(500));
            }
            srv.send_to(r.as_bytes(), from).unwrap();
        }
    });
    let out = run_nk(
        ["udp", "-q", "2", "127.0.0.1", &port.to_string()],
        In::Bytes(b"go\n".to_vec()),
        15.0,
    );
    server.join().expect("server thread");
    out.expect_code(0).expect_stdout(b"r1\nr2\nr3\n");
}

#[test]
fn client_q_short_stops_before_a_late_reply() {
    let srv = udp("127.0.0.1");
    let port = srv.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (_, from) = recv(&srv, "nk's request");
        srv.send_to(b"early\n", from).unwrap();
        // Late: only after nk has exited (or 10 s).
        let _ = rx.recv_timeout(Duration::from_secs(10));
        let _ = srv.send_to(b"late\n", from);
    });
    let started = Instant::now();
    let out = run_nk(
        ["udp", "-q", "300ms", "127.0.0.1", &port.to_string()],
        In::Bytes(b"go\n".to_vec()),
        8.0,
    );
    let _ = tx.send(());
    server.join().expect("server thread");
    out.expect_code(0).expect_stdout(b"early\n");
    assert!(started.elapsed() < Duration::from_secs(8));
}

// ---------------------------------------------------------------------------
// 7. aliases, usage errors, idle timeout
// ---------------------------------------------------------------------------

#[test]
fn dial_u_and_listen_u_are_aliases() {
    let (_socat, port) = socat_udp_echo();
    run_nk(
        ["dial", "-u", "127.0.0.1", &port.to_string()],
        In::Bytes(b"via dial -u\n".to_vec()),
        10.0,
    )
    .expect_code(0)
    .expect_stdout(b"via dial -u\n");

    let mut nk = Proc::nk(["listen", "-u", "-v", "127.0.0.1:0"], In::Pipe, Out::Pipe);
    let line = nk.wait_stderr_line(10.0, |l| l.starts_with("nk: listening on "));
    assert!(line.ends_with(" (udp)"), "listen -u report: {line:?}");
    let port = parse_listening_port(&line).expect("port");
    let c = udp("127.0.0.1");
    c.send_to(b"to listen -u\n", ("127.0.0.1", port)).unwrap();
    nk.wait_stdout_line(10.0, |l| l == "to listen -u");
    write_stdin(&mut nk, b"from listen -u\n");
    assert_eq!(recv(&c, "listen -u reply").0, b"from listen -u\n");
    signal_and_wait(nk, "TERM", 143);
}

#[test]
fn listening_report_names_the_address_and_the_real_port() {
    let mut nk = Proc::nk(["udp", "-l", "-v", "127.0.0.1:0"], In::Null, Out::Pipe);
    let line = nk.wait_stderr_line(10.0, |l| l.starts_with("nk: listening on "));
    let port = parse_listening_port(&line).unwrap_or(0);
    assert_ne!(port, 0);
    assert_eq!(line, format!("nk: listening on 127.0.0.1:{port} (udp)"));
    // The port is really nk's: a datagram there shows up.
    udp("127.0.0.1")
        .send_to(b"x\n", ("127.0.0.1", port))
        .unwrap();
    nk.wait_stdout_line(10.0, |l| l == "x");
    signal_and_wait(nk, "TERM", 143);
}

#[test]
fn server_idle_timeout_ends_it() {
    let (nk, port) = nk_listen(&["-i", "500ms", "127.0.0.1:0"], In::Pipe, Out::Pipe);
    udp("127.0.0.1")
        .send_to(b"one\n", ("127.0.0.1", port))
        .unwrap();
    let out = nk.wait(10.0);
    assert!(
        out.status.code().is_some(),
        "-i should end nk by itself\n{}",
        out.describe()
    );
    assert_eq!(out.stdout, b"one\n");
}

#[test]
fn malformed_udp_commands_are_usage_errors() {
    let guard = udp("127.0.0.1");
    let p = guard.local_addr().unwrap().port().to_string();
    let cases: Vec<Vec<String>> = vec![
        words(&["udp"]),
        words(&["udp", "127.0.0.1"]),
        words(&["udp", "127.0.0.1:70000"]),
        words(&["udp", "127.0.0.1:0"]),
        words(&["udp", "-q", "soon", "127.0.0.1", &p]),
        words(&["udp", "-b", "lots", "127.0.0.1", &p]),
        words(&["udp", "--ttl", "0", "127.0.0.1", &p]),
        words(&["udp", "--ttl", "256", "127.0.0.1", &p]),
        words(&["udp", "--join", "10.0.0.1", "-l", "0"]),
        words(&["udp", "-l", "70000"]),
        words(&["udp", "-l", "[::1"]),
        words(&["dial", "-u", "127.0.0.1:70000"]),
    ];
    expect_usage_errors(
        &cases,
        || In::Bytes(b"must not be sent\n".to_vec()),
        || {
            guard.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 64];
            guard.recv_from(&mut buf).is_ok()
        },
        "a malformed command sent a datagram",
    );
}

#[test]
fn ttl_option_still_delivers_on_loopback() {
    let srv = udp("127.0.0.1");
    let port = srv.local_addr().unwrap().port();
    let out = run_nk(
        ["udp", "--ttl", "1", "127.0.0.1", &port.to_string()],
        In::Bytes(b"ttl 1\n".to_vec()),
        10.0,
    );
    out.expect_code(0);
    assert_eq!(recv(&srv, "datagram with --ttl 1").0, b"ttl 1\n");
}

// ---------------------------------------------------------------------------
// 8. multicast and broadcast, inside a private network namespace (only its loopback exists,
//    so binding 0.0.0.0 and sending to 127.255.255.255 or 239.0.0.0/8 reach nothing else)
// ---------------------------------------------------------------------------

/// Shell helpers for the namespace scripts: `$1` is nk, `$2` a private temp dir.
/// `wait_for FILE PATTERN` polls (bounded, 10 s) for a readiness line nk wrote.
const NS_PRELUDE: &str = r#"
NK=$1; dir=$2
wait_for() { i=0; until grep -q "$2" "$1" 2>/dev/null; do i=$((i+1)); [ $i -lt 200 ] || return 1; sleep 0.05; done; }
"#;

/// In a fresh network namespace whose loopback is up and multicast-capable, after
/// [`NS_PRELUDE`]: `nk udp -l -v -k -i 20s LISTENER` in the background (stdout to
/// `$dir/out`), once it reports listening the `senders` script, then SIGTERM to the
/// listener; bounded at 30 s. Expects the script to exit 0, the listener's stdout to be
/// `want_stdout` (`what` names it) and its exit 143.
fn run_in_netns(listener: &str, senders: &str, want_stdout: &str, what: &str) -> Finished {
    require_netns();
    require_python3();
    let dir = tempfile::tempdir().unwrap();
    let full = format!(
        r#"{NS_PRELUDE}
"$NK" udp -l -v -k -i 20s {listener} >"$dir/out" 2>"$dir/err" & nk=$!
wait_for "$dir/err" 'listening on' || echo "no listening report" >&2
{senders}kill -TERM $nk; wait $nk; echo "receiver-exit=$?" >&2
cat "$dir/out"; cat "$dir/err" >&2
"#
    );
    let argv = [
        "sh".to_string(),
        "-c".to_string(),
        full,
        "sh".to_string(),
        NK.to_string(),
        dir.path().to_string_lossy().into_owned(),
    ];
    let cmd = netns_command(
        "ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo",
        &argv,
    );
    let out = Proc::spawn("netns script", cmd, In::Null, Out::Pipe).wait(30.0);
    out.expect_code(0);
    assert_eq!(out.stdout_text(), want_stdout, "{what}\n{}", out.describe());
    out.expect_stderr_contains("receiver-exit=143");
    out
}

#[test]
fn multicast_join_receives_the_group_and_iface_sends_to_it() {
    let out = run_in_netns(
        "--join 239.1.2.3 --iface lo 5000",
        r#"python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
s.sendto(b"from python\n", ("239.1.2.3", 5000))'
wait_for "$dir/out" 'from python' || echo "python's group datagram not received" >&2
printf 'from nk\n' | "$NK" udp -q 200ms --iface lo --ttl 1 239.1.2.3 5000; echo "sender-exit=$?" >&2
wait_for "$dir/out" 'from nk' || echo "nk's group datagram not received" >&2
"#,
        "from python\nfrom nk\n",
        "the --join listener's stdout",
    );
    out.expect_stderr_contains("sender-exit=0");
}

#[test]
fn broadcast_needs_the_flag() {
    let out = run_in_netns(
        "0.0.0.0:5002",
        r#"printf 'without flag\n' | "$NK" udp -q 200ms 127.255.255.255 5002; echo "noflag-exit=$?" >&2
printf 'with flag\n' | "$NK" udp -q 200ms --broadcast 127.255.255.255 5002; echo "flag-exit=$?" >&2
wait_for "$dir/out" 'with flag' || echo "broadcast datagram not received" >&2
"#,
        "with flag\n",
        "only the --broadcast datagram arrives",
    );
    out.expect_stderr_contains("noflag-exit=1")
        .expect_stderr_contains("flag-exit=0");
    // The refusal is user-fixable: it says which flag fixes it.
    let refusal = out
        .stderr
        .lines()
        .find(|l| l.contains("127.255.255.255") && l.starts_with("nk: "))
        .unwrap_or("");
    assert!(
        out.stderr.contains("--broadcast"),
        "the refusal should hint at --broadcast (got {refusal:?})\n{}",
        out.describe()
    );
}

/// `-i` on a server is "no datagram either way" (cli.md): datagrams it sends (stdin to the
/// last peer) keep it alive, not only those it receives.
#[test]
fn server_idle_timeout_counts_datagrams_sent_too() {
    let (mut nk, port) = nk_listen(&["-i", "700ms", "127.0.0.1:0"], In::Pipe, Out::Pipe);
    let peer = udp("127.0.0.1");
    peer.send_to(b"hello\n", ("127.0.0.1", port)).unwrap();
    nk.wait_stdout_line(10.0, |l| l == "hello");
    // Six replies 250 ms apart: 1.5 s in all, twice the idle timeout, never 700 ms idle.
    for n in 0..6 {
        std::thread::sleep(Duration::from_millis(250));
        write_stdin(&mut nk, format!("reply {n}\n").as_bytes());
    }
    for n in 0..6 {
        let (got, _) = recv(&peer, "a reply from stdin");
        assert_eq!(got, format!("reply {n}\n").as_bytes());
    }
    let out = nk.wait(10.0);
    out.expect_code(1)
        .expect_stderr_contains("no datagram either way");
}
