//! `nk discard`, `nk chargen` and `nk time` (RFC 863, 864, 868), both roles, on loopback:
//! nk's clients against xinetd's internal services; nk's servers against OpenBSD `nc`,
//! `socat` and the test's own sockets, compared with what xinetd's servers give the same
//! client; the UDP safety rules (the loop ports, the rate limit, a chargen reply never longer
//! than its request); a chargen server with many clients that never read; and servers of the
//! test's own that misbehave (a reply of the wrong length, a corrupted pattern, a discard
//! server that stops reading).
//!
//! Ports come from the kernel (nk reports its own with -v); xinetd gets ports that were free
//! a moment ago. Every wait is bounded; no assertion is about speed. Times are compared with
//! the test's clock within a few seconds (RFC 868 counts whole seconds).

mod common;

use chrono::{DateTime, Utc};
use common::inetd::*;
use common::*;
use netkit::wire::chargen::{self, Checker, Shape};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

/// 22 lines: as far as xinetd's chargen and RFC 864's pattern agree (xinetd leaves out the
/// space and `~`, which line 23 reaches).
const SAME_AS_XINETD: usize = 22 * chargen::LINE_BYTES;

/// The time nk printed (RFC 3339), which must be within 5 s of the test's clock.
fn printed_time(out: &Finished) -> DateTime<Utc> {
    let text = out.stdout_text();
    let t = DateTime::parse_from_rfc3339(text.trim())
        .unwrap_or_else(|e| panic!("not an RFC 3339 time ({e})\n{}", out.describe()))
        .with_timezone(&Utc);
    let off = (Utc::now() - t).num_seconds().abs();
    assert!(
        off <= 5,
        "{t} is {off} s from the test's clock\n{}",
        out.describe()
    );
    t
}

/// A file of `mib` MiB of zeros in `dir`.
fn zeros(dir: &tempfile::TempDir, mib: usize) -> std::path::PathBuf {
    let path = dir.path().join(format!("zeros-{mib}M"));
    std::fs::write(&path, vec![0u8; mib << 20]).expect("write the input file");
    path
}

/// The first `n` bytes a TCP server sends to `nc 127.0.0.1 PORT` (stdin /dev/null: nc
/// half-closes at once, and a chargen server goes on sending).
fn nc_first_bytes(port: u16, n: usize) -> Vec<u8> {
    let mut p = nc(&["-N", "127.0.0.1", &port.to_string()], In::Null, Out::Pipe);
    let got = p.wait_stdout_len(n, 10.0);
    got[..n].to_vec()
}

// ---------------------------------------------------------------------------
// 1. nk's clients against xinetd
// ---------------------------------------------------------------------------

#[test]
fn discard_client_delivers_64_mib_to_xinetd_tcp_and_sends_udp() {
    let x = Xinetd::start("discard");
    let dir = tempfile::tempdir().unwrap();
    let input = zeros(&dir, 64);
    let target = format!("127.0.0.1:{}", x.port);
    let out = run_nk(["discard", &target], In::File(input), 60.0);
    out.expect_code(0).expect_stdout_contains(&format!(
        "67108864 bytes delivered to 127.0.0.1:{} (tcp)",
        x.port
    ));
    let out = run_nk(
        ["discard", "-u", "--json", &target],
        In::Bytes(b"one datagram".to_vec()),
        10.0,
    );
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["bytes"], 12, "{}", out.describe());
    assert_eq!(v["datagrams"], 1, "{}", out.describe());
}

#[test]
fn chargen_client_reads_and_checks_xinetds_stream_and_datagram() {
    let x = Xinetd::start("chargen");
    let target = format!("127.0.0.1:{}", x.port);
    let out = run_nk(
        ["chargen", "-c", "100000", "--check", &target],
        In::Null,
        20.0,
    );
    out.expect_code(0);
    assert_eq!(out.stdout.len(), 100_000, "{}", out.describe());
    assert_eq!(
        out.stdout[..SAME_AS_XINETD],
        chargen::repeated(1, 0)[..SAME_AS_XINETD],
        "xinetd's first lines as nk printed them are not RFC 864's"
    );
    // The UDP reply (xinetd sends 1024 bytes whatever the request) passes --check too.
    let out = run_nk(["chargen", "-u", "--check", &target], In::Null, 20.0);
    out.expect_code(0);
    assert!(out.stdout.len() > 100, "{}", out.describe());
    assert!(out.stdout.starts_with(b"!\"#$"), "{}", out.describe());
}

#[test]
fn time_client_tcp_and_udp_against_xinetd() {
    let x = Xinetd::start("time");
    let target = format!("127.0.0.1:{}", x.port);
    for proto in [&[][..], &["-u"][..]] {
        let mut args = vec!["time"];
        args.extend_from_slice(proto);
        args.push(&target);
        printed_time(run_nk(&args, In::Null, 10.0).expect_code(0));
        args.insert(1, "--utc");
        let out = run_nk(&args, In::Null, 10.0);
        assert!(
            out.stdout_text().trim_end().ends_with('Z'),
            "{}",
            out.describe()
        );
        printed_time(&out);
    }
    // -v: the offset; --json: its fields.
    let out = run_nk(["time", "-v", "--json", &target], In::Null, 10.0);
    out.expect_code(0)
        .expect_stderr_contains("offset: the server's clock is");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(v["offset_s"].as_f64().unwrap().abs() <= 5.0, "{v}");
    assert!(v["value"].as_u64().unwrap() > 1 << 31, "{v}");
}

// ---------------------------------------------------------------------------
// 2. nk's servers against nc/socat, side by side with xinetd's
// ---------------------------------------------------------------------------

#[test]
fn chargen_server_first_lines_match_xinetds_through_nc() {
    let x = Xinetd::start("chargen");
    let svc = serve("chargen", &[]);
    let theirs = nc_first_bytes(x.port, SAME_AS_XINETD);
    let ours = nc_first_bytes(svc.tcp(), 20 * chargen::CYCLE);
    assert_eq!(
        ours[..SAME_AS_XINETD],
        theirs[..],
        "nk's first 22 lines differ from xinetd's"
    );
    // And nk's stream is RFC 864's, across the cycle boundary.
    Checker::new(Shape::Stream).feed(&ours).unwrap();
    assert_eq!(
        ours[..chargen::CYCLE],
        ours[chargen::CYCLE..2 * chargen::CYCLE]
    );
}

#[test]
fn time_server_agrees_with_xinetd_through_socat_and_udp() {
    let x = Xinetd::start("time");
    let svc = serve("time", &[]);
    let read_time = |port: u16| -> i64 {
        let out = socat(
            &["-u", &format!("TCP:127.0.0.1:{port}"), "-"],
            In::Null,
            Out::Pipe,
        )
        .wait(10.0);
        out.expect_code(0);
        assert_eq!(out.stdout.len(), 4, "{}", out.describe());
        netkit::wire::time::decode(&out.stdout)
            .unwrap()
            .1
            .timestamp()
    };
    let (ours, theirs) = (read_time(svc.tcp()), read_time(x.port));
    assert!((ours - theirs).abs() <= 2, "nk {ours}, xinetd {theirs}");
    // UDP: an empty datagram gets 4 bytes from both.
    let ours = ask_udp(svc.udp(), b"", "nk time (udp)");
    let theirs = ask_udp(x.port, b"", "xinetd time (udp)");
    let decode = |b: &[u8]| netkit::wire::time::decode(b).unwrap().1.timestamp();
    assert!((decode(&ours) - decode(&theirs)).abs() <= 2);
}

#[test]
fn discard_server_takes_64_mib_from_nc_as_xinetd_does_and_counts_them() {
    let x = Xinetd::start("discard");
    let mut svc = serve("discard", &[]);
    let dir = tempfile::tempdir().unwrap();
    let input = zeros(&dir, 64);
    for port in [x.port, svc.tcp()] {
        let out = nc(
            &["-N", "127.0.0.1", &port.to_string()],
            In::File(input.clone()),
            Out::Pipe,
        )
        .wait(60.0);
        out.expect_code(0).expect_stdout(b"");
    }
    let line = svc
        .nk
        .wait_stderr_line(10.0, |l| l.contains(" closed (#1)"));
    assert!(
        line.contains("67108864 bytes in, 0 bytes out") && line.contains("MB/s"),
        "{line}"
    );
    // UDP: dropped, never answered.
    let s = udp("127.0.0.1");
    s.send_to(b"into the void", ("127.0.0.1", svc.udp()))
        .unwrap();
    expect_silence(&s, 0.5, "nk discard answered a datagram");
    svc.nk
        .wait_stderr_line(10.0, |l| l.contains("13 bytes discarded"));
}

// ---------------------------------------------------------------------------
// 3. UDP safety
// ---------------------------------------------------------------------------

#[test]
fn chargen_udp_reply_is_never_longer_than_its_request() {
    let svc = serve("chargen", &["-u", "--rate", "off"]);
    let s = udp("127.0.0.1");
    let mut longest = 0;
    for size in [0usize, 1, 5, 100, 512, 600, 2000] {
        for _ in 0..10 {
            s.send_to(&vec![b'x'; size], ("127.0.0.1", svc.udp()))
                .unwrap();
            let (got, _) = recv(&s, "chargen reply");
            assert!(
                got.len() <= size.min(512),
                "a {size}-byte request got {} bytes",
                got.len()
            );
            Checker::new(Shape::Datagram).feed(&got).unwrap();
            longest = longest.max(got.len());
        }
    }
    assert!(
        longest > 100,
        "no reply over 100 bytes in 70 tries: {longest}"
    );
}

#[test]
fn chargen_and_time_udp_refuse_loop_ports_and_keep_the_rate() {
    for service in ["chargen", "time"] {
        let svc = serve(service, &["-u", "--rate", "20/s", "--burst", "20"]);
        // A source on a port of a service that answers everything (chargen's first; another
        // test, of this run or another, may hold it for a moment).
        let mut errors = Vec::new();
        let (looped, port) = [19u16, 7, 9, 13, 17, 37]
            .into_iter()
            .find_map(|p| match UdpSocket::bind(("127.0.0.1", p)) {
                Ok(s) => Some((s, p)),
                Err(e) => {
                    errors.push(format!("{p}: {e}"));
                    None
                }
            })
            .unwrap_or_else(|| panic!("cannot bind a loop port (needs root): {errors:?}"));
        looped
            .send_to(&[0u8; 512], ("127.0.0.1", svc.udp()))
            .unwrap();
        // An ordinary source, after it, is answered: the first was surely judged.
        ask_udp(svc.udp(), &[0u8; 512], "ordinary source");
        expect_silence(
            &looped,
            0.3,
            &format!("{service} answered source port {port}"),
        );
        // One source sending 500 at once gets about the burst, not 500.
        let a = udp("127.0.0.2");
        for _ in 0..500 {
            let _ = a.send_to(&[0u8; 64], ("127.0.0.1", svc.udp()));
        }
        a.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut answers = 0;
        let mut buf = [0u8; 2048];
        while answers < 500 && a.recv_from(&mut buf).is_ok() {
            answers += 1;
        }
        assert!(
            (1..=60).contains(&answers),
            "{service} --rate 20/s --burst 20: 500 datagrams drew {answers} answers\n{}",
            svc.nk.stderr_so_far()
        );
        let stderr = svc.nk.stderr_so_far();
        assert!(
            stderr.contains(&format!("not answered: source port {port}")),
            "{stderr}"
        );
    }
}

// ---------------------------------------------------------------------------
// 4. chargen's TCP server: clients that never read, half-closed clients
// ---------------------------------------------------------------------------

/// VmRSS of a process in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
fn chargen_clients_that_never_read_do_not_stall_others_or_grow_memory() {
    let svc = serve("chargen", &["--tcp"]);
    let port = svc.tcp();
    let stalled: Vec<TcpStream> = (0..200).map(|_| connect_local(port)).collect();
    // Let their socket buffers fill (each stalled client holds the kernel's buffers, nk none).
    let full = wait_until(10.0, || {
        stalled.iter().all(|s| {
            let mut b = [0u8; 1];
            s.peek(&mut b).map(|n| n == 1).unwrap_or(false)
        })
    });
    assert!(full, "not every stalled client got bytes");
    let before = rss_kb(svc.nk.pid());
    // A reading client gets 8 MiB of a correct stream all the same.
    let out = run_nk(
        [
            "chargen",
            "-c",
            "8M",
            "--check",
            "--json",
            &format!("127.0.0.1:{port}"),
        ],
        In::Null,
        60.0,
    );
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["bytes"], 8 << 20, "{}", out.describe());
    assert_eq!(v["checked"], true);
    let after = rss_kb(svc.nk.pid());
    assert!(
        after < 64 * 1024 && after < before + 16 * 1024,
        "nk's RSS went from {before} kB to {after} kB with 200 clients that never read"
    );
    drop(stalled);
}

#[test]
fn chargen_goes_on_after_the_clients_half_close() {
    let svc = serve("chargen", &["--tcp"]);
    let mut s = connect_local(svc.tcp());
    s.shutdown(Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = vec![0u8; 100_000];
    s.read_exact(&mut got).expect("the stream after our FIN");
    Checker::new(Shape::Stream).feed(&got).unwrap();
}

// ---------------------------------------------------------------------------
// 5. servers of the test's own: what the clients report
// ---------------------------------------------------------------------------

/// A TCP server on 127.0.0.1:0 that runs `serve` for its first client, in a thread.
fn one_shot_server(serve: impl FnOnce(TcpStream) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        if let Ok((s, _)) = listener.accept() {
            serve(s);
        }
    });
    port
}

#[test]
fn chargen_check_names_the_first_corrupted_byte() {
    let port = one_shot_server(|mut s| {
        let mut text = chargen::repeated(2, 0);
        text[5000] = b'#';
        let _ = s.write_all(&text);
    });
    let out = run_nk(
        ["chargen", "--check", &format!("127.0.0.1:{port}")],
        In::Null,
        10.0,
    );
    out.expect_code(1)
        .expect_stderr_contains("not the RFC 864 pattern: byte 5001 (line 68) is '#'");
    assert_eq!(out.stdout.len(), 2 * chargen::CYCLE, "{}", out.describe());
}

#[test]
fn chargen_client_end_of_stream_before_c_is_exit_1() {
    let port = one_shot_server(|mut s| {
        let _ = s.write_all(&chargen::repeated(0, 1000));
    });
    let out = run_nk(
        ["chargen", "-c", "5000", &format!("127.0.0.1:{port}")],
        In::Null,
        10.0,
    );
    out.expect_code(1)
        .expect_stderr_contains("after 1000 of the 5000 bytes asked (-c)");
    assert_eq!(out.stdout.len(), 1000);
}

#[test]
fn time_client_reads_past_the_2036_wrap_and_refuses_other_lengths() {
    let port = one_shot_server(|mut s| {
        let _ = s.write_all(&[0, 0, 0, 5]);
    });
    let out = run_nk(
        ["time", "--utc", &format!("127.0.0.1:{port}")],
        In::Null,
        10.0,
    );
    out.expect_code(0).expect_stdout(b"2036-02-07T06:28:21Z\n");
    // A daytime server is no time server.
    let svc = serve("daytime", &["--tcp"]);
    let out = run_nk(
        ["time", &format!("127.0.0.1:{}", svc.tcp())],
        In::Null,
        10.0,
    );
    expect_nk_error(&out, 1);
    out.expect_stderr_contains("RFC 868 time is 4 (is it a time server?)");
}

#[test]
fn discard_client_is_loud_when_the_server_stops_reading() {
    let port = one_shot_server(|mut s| {
        let mut buf = vec![0u8; 1000];
        let _ = s.read_exact(&mut buf);
        // Closing with unread bytes sends a reset.
    });
    let dir = tempfile::tempdir().unwrap();
    let out = run_nk(
        ["discard", &format!("127.0.0.1:{port}")],
        In::File(zeros(&dir, 32)),
        30.0,
    );
    expect_nk_error(&out, 1);
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("not delivered") || err.contains("were not read"),
        "{}",
        out.describe()
    );
}

#[test]
fn usage_errors_and_generated_docs() {
    for args in [
        &["chargen", "-u", "-c", "10", "127.0.0.1"][..],
        &["chargen", "-c", "0", "127.0.0.1"],
        &["chargen", "-c", "5T", "127.0.0.1"],
        &["discard", "-i", "5", "127.0.0.1"],
        &["time", "-l", "--utc", "3737"],
        &["discard"],
    ] {
        expect_nk_error(&run_nk(args, In::Null, 10.0), 2);
    }
    for command in ["discard", "chargen", "time"] {
        let out = run_nk(["man", command], In::Null, 10.0);
        out.expect_code(0)
            .expect_stdout_contains(&format!("nk-{command}"));
        run_nk([command, "--help"], In::Null, 10.0)
            .expect_code(0)
            .expect_stdout_contains("Examples:");
    }
    run_nk(["completions", "bash"], In::Null, 10.0)
        .expect_code(0)
        .expect_stdout_contains("chargen");
}
