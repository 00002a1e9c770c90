//! `nk ping --tcp` / `--udp`: probes of real listeners on loopback (std sockets owned by the
//! test), a closed port, and silent targets (a TCP listener whose accept queue is full, so the
//! kernel drops the SYN; a UDP socket that never answers). Times are checked for their shape
//! (ping's decimals rule), never their value.

mod common;

use common::*;
use serde_json::Value;
use std::io::{ErrorKind, Read};
use std::net::{TcpListener, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

fn ping(args: &[&str], secs: f64) -> Finished {
    let mut full = vec!["ping"];
    full.extend_from_slice(args);
    run_nk(full, In::Null, secs)
}

/// Whether `line` ends with ` time=T ms` where T has ping's decimals (0.123, 1.23, 12.3, 123).
fn has_ping_time(line: &str) -> bool {
    let Some((_, time)) = line.rsplit_once(" time=") else {
        return false;
    };
    let Some(number) = time.strip_suffix(" ms") else {
        return false;
    };
    number.parse::<f64>().is_ok() && !number.starts_with('-')
}

/// A listener that accepts `n` connections (within 10 s) and reports, for each, how its first
/// read ended: a reset, an EOF, or bytes.
fn accepting_listener(n: usize) -> (u16, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handle = thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while seen.len() < n && Instant::now() < until {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut buf = [0u8; 16];
                    seen.push(match stream.read(&mut buf) {
                        Ok(0) => "eof".to_string(),
                        Ok(k) => format!("{k} bytes"),
                        Err(e) if e.kind() == ErrorKind::ConnectionReset => "reset".into(),
                        Err(e) => format!("error {e}"),
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        seen
    });
    (port, handle)
}

#[test]
fn tcp_probes_connect_and_close_with_a_reset() {
    let (port, listener) = accepting_listener(3);
    let target = format!("127.0.0.1:{port}");
    let run = ping(&["--tcp", "-c", "3", "-i", "0.05", &target], 20.0);
    run.expect_code(0);
    let out = run.stdout_text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("PING {target} ({target}) over TCP"),
        "{out}"
    );
    for (seq, line) in lines.iter().enumerate().skip(1).take(3) {
        let want = format!("connected to {target}: seq={seq} time=");
        assert!(line.starts_with(&want), "line {seq}: {line}\n{out}");
        assert!(has_ping_time(line), "{line}");
    }
    assert_eq!(lines[5], format!("--- {target} tcp ping statistics ---"));
    assert!(
        lines[6].starts_with("3 probes transmitted, 3 connected, 0% loss, time "),
        "{out}"
    );
    assert!(lines[7].starts_with("rtt min/avg/max/mdev = "), "{out}");
    assert_eq!(lines.len(), 8, "{out}");
    // Each probe ended with a reset, never a FIN the server would take for a clean close.
    assert_eq!(listener.join().unwrap(), vec!["reset"; 3]);
}

#[test]
fn tcp_host_and_port_as_two_arguments_and_ipv6() {
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let run = ping(&["--tcp", "-6", "-c", "1", "::1", &port], 20.0);
    run.expect_code(0);
    run.expect_stdout_contains(&format!("connected to [::1]:{port}: seq=1 time="));
    let run = ping(&["--tcp", "-c", "1", &format!("[::1]:{port}")], 20.0);
    run.expect_code(0);
    run.expect_stdout_contains(&format!("--- [::1]:{port} tcp ping statistics ---"));
}

#[test]
fn tcp_refused_port_is_named_and_exits_1() {
    let closed = closed_port();
    let port = closed.port;
    let target = format!("127.0.0.1:{port}");
    let run = ping(&["--tcp", "-c", "2", "-i", "0.05", &target], 20.0);
    run.expect_code(1);
    let out = run.stdout_text();
    assert!(
        out.contains(&format!("{target}: seq=1 Connection refused time=")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{target}: seq=2 Connection refused time=")),
        "{out}"
    );
    assert!(
        out.contains("2 probes transmitted, 0 connected, 2 refused, 100% loss, time "),
        "{out}"
    );
    assert!(!out.contains("rtt min/avg/max/mdev"), "{out}");
}

#[test]
fn tcp_silent_target_times_out_within_w() {
    // The accept queue is full: the kernel drops each SYN, as a filtering firewall would.
    let (_py, port) = full_queue_listener();
    let target = format!("127.0.0.1:{port}");
    let run = ping(
        &["--tcp", "-c", "2", "-i", "0.05", "-W", "0.3", &target],
        20.0,
    );
    run.expect_code(1);
    let out = run.stdout_text();
    assert!(
        out.contains(&format!("{target}: seq=1 timeout: no answer within 3")),
        "{out}"
    );
    assert!(
        out.contains("2 probes transmitted, 0 connected, 2 timed out, 100% loss"),
        "{out}"
    );
}

#[test]
fn tcp_deadline_with_count_waits_for_count_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // -w with -c: as iputils, -c counts answers; the deadline is not reached.
    let target = format!("127.0.0.1:{port}");
    let run = ping(
        &["--tcp", "-c", "2", "-w", "10", "-i", "0.05", "-q", &target],
        20.0,
    );
    run.expect_code(0);
    let out = run.stdout_text();
    assert!(out.contains("2 probes transmitted, 2 connected"), "{out}");
    assert!(!out.contains("seq="), "-q prints no probe lines: {out}");
}

#[test]
fn tcp_json_lines_and_summary() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let run = ping(
        &[
            "--tcp",
            "--json",
            "-c",
            "2",
            "-i",
            "0.05",
            &format!("127.0.0.1:{open}"),
        ],
        20.0,
    );
    run.expect_code(0);
    let objects: Vec<Value> = run
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 3);
    assert_eq!(objects[0]["result"], "connected");
    assert_eq!(objects[1]["seq"], 2);
    assert!(objects[0]["time_ms"].as_f64().is_some());
    assert_eq!(objects[2]["type"], "summary");
    assert_eq!(objects[2]["connected"], 2);
    assert_eq!(objects[2]["transmitted"], 2);
    assert_eq!(objects[2]["refused"], 0);
}

#[test]
fn tcp_and_udp_usage_errors_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--tcp", "-s", "100", "127.0.0.1:80"],
            "'--tcp' cannot be used with '-s",
        ),
        (&["--tcp", "-f", "127.0.0.1:80"], "cannot be used with '-f'"),
        (&["--udp", "-b", "127.0.0.1:80"], "cannot be used with '-b'"),
        (&["--tcp", "--udp", "127.0.0.1:80"], "cannot be used with"),
        (&["--tcp", "127.0.0.1"], "missing port in \"127.0.0.1\""),
        (&["--tcp", "127.0.0.1:80", "81"], "the port is given twice"),
        (&["--tcp", "127.0.0.1:0"], "port"),
        (
            &["-c", "1", "127.0.0.1", "80"],
            "a PORT is taken only with --tcp or --udp",
        ),
        (&["--udp", "-s", "70000", "127.0.0.1:7"], "-s"),
    ];
    for (args, want) in cases {
        let run = ping(args, 10.0);
        run.expect_code(2);
        assert!(
            run.stderr.contains(want),
            "{args:?}: want {want:?} in {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: no traffic, no output");
    }
}

/// A UDP echo peer on loopback answering up to `n` datagrams (within 10 s).
fn udp_echo(n: usize) -> (u16, thread::JoinHandle<Vec<usize>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let handle = thread::spawn(move || {
        let mut sizes = Vec::new();
        let mut buf = [0u8; 2048];
        while sizes.len() < n {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                break;
            };
            socket.send_to(&buf[..len], from).unwrap();
            sizes.push(len);
        }
        sizes
    });
    (port, handle)
}

#[test]
fn udp_probes_time_the_echo() {
    let (port, echo) = udp_echo(2);
    let target = format!("127.0.0.1:{port}");
    let run = ping(
        &["--udp", "-c", "2", "-i", "0.05", "-s", "20", &target],
        20.0,
    );
    run.expect_code(0);
    let out = run.stdout_text();
    for seq in 1..=2 {
        let want = format!("20 bytes from {target}: seq={seq} time=");
        let line = out.lines().find(|l| l.starts_with(&want));
        assert!(line.is_some_and(has_ping_time), "{want}\n{out}");
    }
    assert!(
        out.contains("2 probes transmitted, 2 received, 0% loss"),
        "{out}"
    );
    assert_eq!(echo.join().unwrap(), vec![20, 20]);
}

#[test]
fn udp_closed_port_and_silent_port() {
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let target = format!("127.0.0.1:{port}");
    let run = ping(&["--udp", "-c", "1", "-W", "2", &target], 20.0);
    run.expect_code(1);
    run.expect_stdout_contains(&format!("{target}: seq=1 closed (port unreachable) time="));
    run.expect_stdout_contains("1 probes transmitted, 0 received, 1 closed, 100% loss");

    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    let run = ping(&["--udp", "-c", "1", "-W", "0.2", &target], 20.0);
    run.expect_code(1);
    run.expect_stdout_contains(&format!("{target}: seq=1 timeout: no answer within 2"));
    run.expect_stdout_contains("1 probes transmitted, 0 received, 1 timed out, 100% loss");
}

#[test]
fn tcp_sigint_prints_the_summary_and_exits_130() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut p = Proc::nk(
        ["ping", "--tcp", "-i", "0.2", target.as_str()],
        In::Null,
        Out::Pipe,
    );
    p.wait_stdout_line(10.0, |l| l.contains(": seq=2 time="));
    let out = signal_and_wait(p, "INT", 130);
    let text = out.stdout_text();
    assert!(
        text.contains(&format!("--- {target} tcp ping statistics ---")),
        "{text}"
    );
    assert!(text.contains(" connected, 0% loss, time "), "{text}");
    assert!(text.contains("rtt min/avg/max/mdev = "), "{text}");
}

#[test]
fn tcp_keeps_the_shared_options_d_n_t() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let run = ping(&["--tcp", "-D", "-n", "-t", "64", "-c", "1", &target], 20.0);
    run.expect_code(0);
    let out = run.stdout_text();
    let line = out.lines().nth(1).unwrap_or_default();
    // -D: `[seconds.micros] ` before the probe line, as ICMP ping prints it.
    let (stamp, rest) = line.split_once("] ").unwrap_or_else(|| panic!("{out}"));
    let (secs, micros) = stamp.trim_start_matches('[').split_once('.').unwrap();
    assert!(secs.parse::<u64>().is_ok() && micros.len() == 6, "{line}");
    assert!(
        rest.starts_with(&format!("connected to {target}: seq=1 time=")),
        "{line}"
    );
}
