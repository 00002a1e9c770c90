//! `nk forward -u` against real peers on loopback: a socat UDP echo target, and in-test UDP
//! targets where a test must see which source port a datagram came from, or answer with a
//! datagram of a chosen size.
//!
//! Every wait is bounded (socket read timeouts, `Proc::wait`); nothing asserts on timing: a
//! session timeout is checked by its `-v` line, a refusal by the line nk writes for it.

mod common;

use common::*;
use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// `nk forward -u -v ARGS` and the port it listens on.
fn forward_udp(args: &[&str]) -> (Proc, u16) {
    let mut full = vec!["forward", "-u", "-v"];
    full.extend_from_slice(args);
    let mut p = Proc::nk(&full, In::Null, Out::Pipe);
    let port = p.nk_listening_port();
    (p, port)
}

/// A UDP socket on `ip` connected to `port` there, with a bounded read.
fn client_on(ip: &str, port: u16) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.connect((ip, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn client(port: u16) -> UdpSocket {
    client_on("127.0.0.1", port)
}

/// Sends `data` and returns the one reply (up to 64 KiB + 1, so a merged or cut reply shows).
fn exchange(s: &UdpSocket, data: &[u8]) -> Vec<u8> {
    s.send(data).unwrap();
    let mut buf = vec![0u8; 65536 + 1];
    let n = s.recv(&mut buf).unwrap_or_else(|e| panic!("no reply: {e}"));
    buf.truncate(n);
    buf
}

/// An echo target on `ip` run by a test thread: every datagram goes back to its sender, and
/// each sender's address and the datagram's size are reported on the channel.
fn echo_target(ip: &str) -> (u16, mpsc::Receiver<(SocketAddr, usize)>) {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    let port = s.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        // Ends when the test (the receiver) is gone.
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
            if tx.send((from, n)).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// A UDP port on 127.0.0.1 where nothing listens (bound a moment ago, then released).
fn dead_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn socat_udp_echo_target_gets_each_datagram_whole() {
    require_tool("socat", "socat");
    let tport = dead_udp_port();
    let mut cmd = Command::new("socat");
    // -T 5: socat's fork child for our client ends 5 s after its last datagram; without it,
    // it outlived the test (killing the parent does not end it).
    cmd.args([
        "-b65536",
        "-T",
        "5",
        &format!("UDP-LISTEN:{tport},bind=127.0.0.1,reuseaddr,fork"),
        "PIPE",
    ]);
    let _socat = Proc::spawn("socat udp echo", cmd, In::Null, Out::Null);
    wait_udp_bound(tport);
    let (fwd, port) = forward_udp(&["127.0.0.1:0", &format!("127.0.0.1:{tport}")]);
    let c = client(port);
    let sizes = [1usize, 2, 3, 64, 1000, 1472, 9000, 40000];
    for (i, &size) in sizes.iter().enumerate() {
        let data = prng_bytes(size, i as u64);
        let back = exchange(&c, &data);
        assert_same_bytes(&format!("the {size}-byte datagram echoed"), &back, &data);
    }
    let total: usize = sizes.iter().sum();
    let done = terminate(fwd);
    done.expect_stderr_contains(&format!(
        "8 datagrams ({total} bytes) up, 8 datagrams ({total} bytes) down"
    ))
    .expect_stderr_contains("interrupted");
}

#[test]
fn back_to_back_datagrams_keep_their_boundaries() {
    let (tport, seen) = echo_target("127.0.0.1");
    let (fwd, port) = forward_udp(&["127.0.0.1:0", &format!("127.0.0.1:{tport}")]);
    let c = client(port);
    // Sent without waiting: a forwarder that read them as a stream would merge them.
    let sizes: Vec<usize> = (1..=20).map(|i| i * 37).collect();
    for &size in &sizes {
        c.send(&vec![size as u8; size]).unwrap();
    }
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65537];
    for _ in &sizes {
        let n = c.recv(&mut buf).expect("a reply for every datagram");
        assert!(
            buf[..n].iter().all(|&b| b == n as u8),
            "a reply of {n} bytes is not one of the datagrams sent"
        );
        got.push(n);
    }
    // Loopback keeps the order; what matters is that sizes came through one for one.
    assert_eq!(got, sizes, "reply sizes");
    let at_target: Vec<usize> = sizes
        .iter()
        .map(|_| seen.recv_timeout(Duration::from_secs(5)).unwrap().1)
        .collect();
    assert_eq!(at_target, sizes, "datagram sizes at the target");
    terminate(fwd);
}

#[test]
fn a_hundred_source_ports_each_get_their_own_replies() {
    const N: usize = 100;
    let (tport, seen) = echo_target("127.0.0.1");
    let (fwd, port) = forward_udp(&["127.0.0.1:0", &format!("127.0.0.1:{tport}")]);
    let clients: Vec<UdpSocket> = (0..N).map(|_| client(port)).collect();
    // Every client speaks before any reads, so all the sessions are open at once.
    for (i, c) in clients.iter().enumerate() {
        c.send(format!("client {i}").as_bytes()).unwrap();
    }
    let mut buf = [0u8; 64];
    for (i, c) in clients.iter().enumerate() {
        let n = c
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(
            lossy(&buf[..n]),
            format!("client {i}"),
            "client {i}'s reply"
        );
        // A second round on the same session: still its own.
        let back = exchange(c, format!("again {i}").as_bytes());
        assert_eq!(
            lossy(&back),
            format!("again {i}"),
            "client {i}'s second reply"
        );
    }
    let sources: HashSet<SocketAddr> = (0..2 * N)
        .map(|_| seen.recv_timeout(Duration::from_secs(5)).unwrap().0)
        .collect();
    assert_eq!(sources.len(), N, "one upstream socket per client");
    let done = terminate(fwd);
    done.expect_stderr_contains("forwarded 100 UDP sessions; 200 datagrams");
}

#[test]
fn an_idle_session_ends_after_the_session_timeout() {
    let (tport, _seen) = echo_target("127.0.0.1");
    let (mut fwd, port) = forward_udp(&[
        "--session-timeout",
        "300ms",
        "127.0.0.1:0",
        &format!("127.0.0.1:{tport}"),
    ]);
    let c = client(port);
    assert_eq!(exchange(&c, b"hello"), b"hello");
    let line = fwd.wait_stderr_line(10.0, |l| l.starts_with("nk: #1 "));
    assert!(
        line.contains("1 datagram (5 bytes) up, 1 datagram (5 bytes) down")
            && line.ends_with("; timeout"),
        "{line}"
    );
    // The same client again: a new session, served as before.
    assert_eq!(exchange(&c, b"back"), b"back");
    let line = fwd.wait_stderr_line(10.0, |l| l.starts_with("nk: #2 "));
    assert!(line.ends_with("; timeout"), "{line}");
    terminate(fwd);
}

#[test]
fn max_sessions_drops_a_new_client_and_says_so_without_flooding() {
    let (tport, _seen) = echo_target("127.0.0.1");
    // Without -v there is no listening line: a port chosen here, awaited in the socket table.
    let port = dead_udp_port();
    let mut p = Proc::nk(
        [
            "forward",
            "-u",
            "-m",
            "1",
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{tport}"),
        ],
        In::Null,
        Out::Null,
    );
    wait_udp_bound(port);
    let first = client(port);
    assert_eq!(exchange(&first, b"one"), b"one");
    let second = client(port);
    const FLOOD: usize = 200;
    for _ in 0..FLOOD {
        second.send(b"over the cap").unwrap();
    }
    p.wait_stderr_line(10.0, |l| l.contains("(-m 1)"));
    // The first client is still served.
    assert_eq!(exchange(&first, b"still"), b"still");
    let done = terminate(p);
    // Every dropped datagram is counted in some line, in far fewer lines than datagrams.
    let lines: Vec<&str> = done
        .stderr
        .lines()
        .filter(|l| l.contains("(-m 1)"))
        .collect();
    let counted: usize = lines.iter().map(|l| datagrams_in(l)).sum();
    assert_eq!(counted, FLOOD, "{lines:#?}");
    assert!(lines.len() < 10, "{} lines for one flood", lines.len());
}

/// The datagram count of a loss line: `dropped a datagram from` or `dropped 199 datagrams`.
fn datagrams_in(line: &str) -> usize {
    let after = line.split("dropped ").nth(1).unwrap_or("");
    if after.starts_with("a datagram") {
        return 1;
    }
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

/// Waits (bounded) until a UDP socket is bound to 127.0.0.1:`port`.
fn wait_udp_bound(port: u16) {
    assert!(
        wait_until(5.0, || std::fs::read_to_string("/proc/net/udp")
            .is_ok_and(|t| t.contains(&format!("0100007F:{port:04X}")))),
        "nothing bound UDP port {port}"
    );
}

#[test]
fn an_oversized_datagram_is_reported_both_ways_never_cut() {
    // IPv6 clients can send 65527 bytes, an IPv4 target takes at most 65507.
    let (tport, seen) = echo_target("127.0.0.1");
    let (fwd, port) = forward_udp(&["[::1]:0", &format!("127.0.0.1:{tport}")]);
    let c = client_on("::1", port);
    c.send(&vec![7u8; 65520]).unwrap();
    assert_eq!(exchange(&c, b"small"), b"small", "served after the big one");
    let (_, size) = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(size, 5, "only the small datagram reaches the target");
    let done = terminate(fwd);
    done.expect_stderr_contains("not forwarded to 127.0.0.1:")
        .expect_stderr_contains("larger than the 65507 bytes")
        .expect_stderr_contains("1 datagram (5 bytes) up, 1 datagram (5 bytes) down, 1 dropped");

    // The other way: an IPv6 target answers an IPv4 client with more than IPv4 carries.
    let target = UdpSocket::bind("[::1]:0").unwrap();
    let tport = target.local_addr().unwrap().port();
    let answer = thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (_, from) = target.recv_from(&mut buf).unwrap();
        target.send_to(&vec![9u8; 65520], from).unwrap();
        target.send_to(b"after", from).unwrap();
    });
    let (fwd, port) = forward_udp(&["127.0.0.1:0", &format!("[::1]:{tport}")]);
    let c = client(port);
    let back = exchange(&c, b"give me a big one");
    assert_eq!(back, b"after", "the big reply is not passed on cut");
    answer.join().unwrap();
    let done = terminate(fwd);
    done.expect_stderr_contains("a reply from [::1]:")
        .expect_stderr_contains("larger than the 65507 bytes");
}

#[test]
fn a_target_that_refuses_ends_the_session_and_is_said() {
    let dead = dead_udp_port();
    let (mut fwd, port) = forward_udp(&["127.0.0.1:0", &format!("127.0.0.1:{dead}")]);
    let c = client(port);
    c.send(b"anyone?").unwrap();
    let line = fwd.wait_stderr_line(10.0, |l| l.starts_with("nk: #1 "));
    assert!(
        line.ends_with("refused (ICMP port unreachable from the target)"),
        "{line}"
    );
    let done = terminate(fwd);
    done.expect_stderr_contains(&format!(
        "no reply to a datagram from 127.0.0.1:{}: 127.0.0.1:{dead} answered ICMP port unreachable",
        c.local_addr().unwrap().port()
    ));
}

#[test]
fn deny_drops_a_client_before_any_session() {
    let (tport, seen) = echo_target("127.0.0.1");
    let (fwd, port) = forward_udp(&[
        "--deny",
        "127.0.0.0/8",
        "127.0.0.1:0",
        &format!("127.0.0.1:{tport}"),
    ]);
    let mut fwd = fwd;
    let c = client(port);
    c.send(b"let me in").unwrap();
    fwd.wait_stderr_line(10.0, |l| l.contains("denied by --allow/--deny"));
    assert!(
        seen.recv_timeout(Duration::from_millis(300)).is_err(),
        "a denied client's datagram reached the target"
    );
    let done = terminate(fwd);
    done.expect_stderr_contains("forwarded 0 UDP sessions");
}

/// Without -v too: the client cannot tell its datagram was dropped, so stderr must.
#[test]
fn a_denied_datagram_is_said_without_v() {
    let (tport, seen) = echo_target("127.0.0.1");
    // A port that was free a moment ago (without -v nk does not print the one it got).
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port();
    let fwd = Proc::nk(
        [
            "forward",
            "-u",
            "--deny",
            "127.0.0.1",
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{tport}"),
        ],
        In::Null,
        Out::Pipe,
    );
    let c = client(port);
    // Until nk is bound, a datagram is refused or lost: send until stderr tells of one.
    let said = wait_until(10.0, || {
        let _ = c.send(b"let me in");
        std::thread::sleep(Duration::from_millis(50));
        fwd.stderr_so_far().contains("denied by --allow/--deny")
    });
    assert!(said, "no denial on stderr: {}", fwd.stderr_so_far());
    assert!(
        seen.recv_timeout(Duration::from_millis(300)).is_err(),
        "a denied client's datagram reached the target"
    );
    terminate(fwd);
}

#[test]
fn sigterm_ends_every_session_with_the_summary_and_json() {
    let (tport, _seen) = echo_target("::1");
    let mut p = Proc::nk(
        [
            "forward",
            "-u",
            "-v",
            "--json",
            "[::1]:0",
            &format!("[::1]:{tport}"),
        ],
        In::Null,
        Out::Pipe,
    );
    let port = p.nk_listening_port();
    let c = client_on("::1", port);
    assert_eq!(exchange(&c, b"ping"), b"ping");
    send_signal(p.pid(), "TERM");
    let line = p.wait_stdout_line(10.0, |l| l.contains("\"end\""));
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(v["end"], "interrupted", "{line}");
    assert_eq!(v["datagrams_up"], 1, "{line}");
    assert_eq!(v["bytes_down"], 4, "{line}");
    assert_eq!(
        v["client"],
        format!("[::1]:{}", c.local_addr().unwrap().port())
    );
    let done = p.wait(10.0);
    done.expect_code(143).expect_stderr_contains(
        "forwarded 1 UDP session; 1 datagram (4 bytes) up, 1 datagram (4 bytes) down",
    );
}

#[test]
fn flags_without_effect_on_udp_are_usage_errors() {
    for args in [
        vec!["forward", "-u", "unix:/tmp/nk-x.sock", "127.0.0.1:9"],
        vec!["forward", "-u", "127.0.0.1:0", "unix:@nk-x"],
        vec![
            "forward",
            "--session-timeout",
            "5",
            "127.0.0.1:0",
            "127.0.0.1:9",
        ],
        vec![
            "forward",
            "-u",
            "-i",
            "5",
            "--session-timeout",
            "5",
            "0",
            "127.0.0.1:9",
        ],
        vec![
            "forward",
            "-u",
            "--tls-connect",
            "127.0.0.1:0",
            "127.0.0.1:9",
        ],
        vec![
            "forward",
            "-u",
            "--tls-min",
            "1.3",
            "127.0.0.1:0",
            "127.0.0.1:9",
        ],
        vec![
            "forward",
            "-u",
            "--proxy-protocol",
            "v1",
            "127.0.0.1:0",
            "127.0.0.1:9",
        ],
    ] {
        let done = run_nk(&args, In::Null, 10.0);
        done.expect_code(2);
        assert_eq!(done.stderr.lines().count(), 1, "{args:?}: {}", done.stderr);
    }
}

#[test]
fn a_spin_that_is_not_a_duration_is_a_usage_error() {
    let done = run_nk(
        [
            "forward",
            "-u",
            "--spin",
            "fast",
            "127.0.0.1:0",
            "127.0.0.1:9",
        ],
        In::Null,
        10.0,
    );
    done.expect_code(2);
    assert!(
        done.stderr
            .starts_with("nk: invalid value 'fast' for '--spin"),
        "{}",
        done.stderr
    );
}

/// The polling loop (`--spin`) loses nothing and mixes nothing up: strict ping-pong (where the
/// window opens), a pause longer than the window (where it closes), and again; with polling
/// off the same exchange gives the same replies.
#[test]
fn ping_pong_with_and_without_polling_gets_every_reply() {
    let (tport, _seen) = echo_target("127.0.0.1");
    for spin in ["2ms", "0"] {
        let (fwd, port) =
            forward_udp(&["--spin", spin, "127.0.0.1:0", &format!("127.0.0.1:{tport}")]);
        let c = client(port);
        for round in 0..2u32 {
            for i in 0..300u32 {
                let request = format!("{spin} {round} {i}");
                assert_eq!(
                    exchange(&c, request.as_bytes()),
                    request.as_bytes(),
                    "--spin {spin}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let done = terminate(fwd);
        assert!(
            done.stderr.contains("600 datagrams"),
            "--spin {spin}: {}",
            done.stderr
        );
    }
}
