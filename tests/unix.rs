//! `nk unix`: Unix domain sockets (stream, `--dgram`, `--seqpacket`, `@abstract` names), as
//! client and as server, against real peers: `socat` (UNIX-CONNECT / UNIX-LISTEN,
//! UNIX-SENDTO / UNIX-RECVFROM, ABSTRACT-CONNECT / ABSTRACT-LISTEN, `socktype=5` for
//! SOCK_SEQPACKET), OpenBSD `nc -U`, and the test's own `std::os::unix::net` / `socket2`
//! sockets where a message boundary has to be observed.
//!
//! Every socket file lives in a fresh temp dir, every abstract name carries the test's pid and
//! a counter, so the tests run in parallel. Every wait is bounded. A missing peer tool fails.

mod common;

use common::*;
use socket2::{Domain, SockAddr, Socket, Type};
use std::fs;
use std::io::{self, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const KIB: usize = 1024;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// A fresh temp dir and a socket path `NAME` inside it.
fn sock_path(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    (dir, path)
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A unique abstract name (without the `@`).
fn abstract_name(tag: &str) -> String {
    unique_name(tag)
}

/// `socat ARGS` that listens (or receives): returns once socat reports it is ready.
fn socat_server(args: &[&str], stdin: In, stdout: Out) -> Proc {
    let mut p = socat(args, stdin, stdout);
    p.wait_stderr_line(10.0, |l| {
        l.contains("listening on") || l.contains("receiving on")
    });
    p
}

/// `nk unix -l -v ARGS... ADDR`; waits for `nk: listening on ADDR (unix...)` and returns
/// the process and the line (its exact form is checked by
/// `listening_report_is_addr_unix_for_every_socket_type`).
fn nk_listen_line(args: &[&str], addr: &str, stdin: In, stdout: Out) -> (Proc, String) {
    let mut full = vec!["unix", "-l", "-v"];
    full.extend_from_slice(args);
    full.push(addr);
    let mut p = Proc::nk(&full, stdin, stdout);
    let line = p.wait_stderr_line(10.0, |l| l.starts_with("nk: listening on "));
    assert!(
        line.starts_with(&format!("nk: listening on {addr} (unix")),
        "listening report of {full:?}: {line:?}\n{}",
        p.stderr_so_far()
    );
    (p, line)
}

/// [`nk_listen_line`] without the line.
fn nk_listen(args: &[&str], addr: &str, stdin: In, stdout: Out) -> Proc {
    nk_listen_line(args, addr, stdin, stdout).0
}

/// Does anything (file, socket, dangling link) exist at `p`?
fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

fn is_socket(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// Reads until EOF or an error/timeout (the timeout is the socket's own).
fn read_all(r: &mut impl Read) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * KIB];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return (got, false),
        }
    }
}

/// A stream client on `path` with a 5 s read timeout.
fn connect(path: &Path) -> UnixStream {
    let c = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// Writes `data` from a thread, half-closes, and reads everything back until EOF.
fn exchange(c: UnixStream, data: Vec<u8>) -> (Vec<u8>, bool) {
    let mut w = c.try_clone().expect("try_clone");
    let writer = thread::spawn(move || {
        let _ = w.write_all(&data);
        let _ = w.shutdown(std::net::Shutdown::Write);
    });
    let mut c = c;
    let back = read_all(&mut c);
    writer.join().expect("writer thread");
    back
}

/// Accepts one connection on `l` within `secs` (nonblocking poll).
fn accept_within(l: &UnixListener, secs: f64) -> UnixStream {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        match l.accept() {
            Ok((c, _)) => {
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                return c;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection within {secs}s");
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A test-side stream server on `path`: runs `f` on the first connection (in a thread).
fn serve<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce(UnixStream) -> T + Send + 'static,
) -> JoinHandle<T> {
    let l = UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
    thread::spawn(move || f(accept_within(&l, 10.0)))
}

fn join_thread<T>(h: JoinHandle<T>) -> T {
    match h.join() {
        Ok(v) => v,
        Err(e) => panic!("test server thread failed: {}", panic_text(&e)),
    }
}

/// A SOCK_SEQPACKET listener of the test's own on `path`.
fn seqpacket_listener(path: &Path) -> UnixListener {
    let sock = Socket::new(Domain::UNIX, Type::SEQPACKET, None).expect("seqpacket socket");
    sock.bind(&SockAddr::unix(path).unwrap())
        .unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
    sock.listen(8).expect("listen");
    sock.into()
}

/// A SOCK_SEQPACKET connection to `path` (read/write move whole messages).
fn seqpacket_connect(path: &Path) -> UnixStream {
    let sock = Socket::new(Domain::UNIX, Type::SEQPACKET, None).expect("seqpacket socket");
    sock.connect(&SockAddr::unix(path).unwrap())
        .unwrap_or_else(|e| panic!("connect seqpacket {}: {e}", path.display()));
    let c: UnixStream = sock.into();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// Message sizes for boundary checks, peer → nk (nk prints each whole).
const PEER_SIZES: &[usize] = &[1, 2, 17, 100, 1000, 1500, 4096, 8192, 20000, 60000];
/// Chunk sizes for boundary checks, nk's stdin → peer (one pipe write, one read, one message).
const STDIN_SIZES: &[usize] = &[1, 2, 10, 100, 1000, 1500, 4096, 8192];

/// Peer → nk in lock-step: sends each message with `send`, waits until it is on nk's stdout,
/// checks it arrived whole and in order.
fn lockstep_to_stdout(nk: &mut Proc, mut send: impl FnMut(&[u8])) {
    let mut total = 0;
    for (i, &n) in PEER_SIZES.iter().enumerate() {
        let msg = prng_bytes(n, 0xd6_0000 + i as u64);
        send(&msg);
        total += n;
        let out = nk.wait_stdout_len(total, 10.0);
        assert_same_bytes(
            &format!("message {i} ({n} bytes) on nk's stdout"),
            &out[total - n..],
            &msg,
        );
    }
    assert_eq!(
        nk.stdout_so_far().len(),
        total,
        "extra bytes on nk's stdout"
    );
}

/// nk's stdin → peer in lock-step: one pipe write per chunk, `recv` must return it as one
/// message of exactly that size.
fn lockstep_from_stdin(nk: &mut Proc, mut recv: impl FnMut() -> Vec<u8>) {
    for (i, &n) in STDIN_SIZES.iter().enumerate() {
        let msg = prng_bytes(n, 0x5d_0000 + i as u64);
        nk.stdin
            .as_mut()
            .expect("nk stdin pipe")
            .write_all(&msg)
            .expect("write nk stdin");
        let got = recv();
        assert!(
            got == msg,
            "stdin chunk {i} of {n} bytes arrived as a message of {} bytes (or different bytes)\n{}",
            got.len(),
            nk.stderr_so_far()
        );
    }
}

/// Receives one message on a seqpacket/dgram-like stream within its read timeout.
fn recv_msg(c: &mut UnixStream) -> Vec<u8> {
    let mut buf = vec![0u8; 128 * KIB];
    match c.read(&mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(e) => panic!("recv message: {e}"),
    }
}

// ---------------------------------------------------------------------------
// 1. stream, against socat, both roles
// ---------------------------------------------------------------------------

#[test]
fn stream_client_echo_through_socat_unix_listen() {
    let (dir, path) = sock_path("echo.sock");
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    let data = write_random_file(&input, 512 * KIB, 0x0a11_0001);
    let socat = socat_server(
        &["-t", "10", &format!("UNIX-LISTEN:{}", s(&path)), "EXEC:cat"],
        In::Null,
        Out::Null,
    );
    let out = Proc::nk(
        ["unix", &s(&path)],
        In::File(input),
        Out::File(output.clone()),
    )
    .wait(20.0);
    out.expect_code(0);
    assert_same_bytes(
        "echo through socat UNIX-LISTEN EXEC:cat",
        &read_file(&output),
        &data,
    );
    drop(socat);
}

#[test]
fn stream_server_both_directions_with_socat_unix_connect() {
    let (dir, path) = sock_path("srv.sock");
    let to_socat = write_random_file(&dir.path().join("a.bin"), 300 * KIB, 0x0a11_0002);
    let to_nk = write_random_file(&dir.path().join("b.bin"), 300 * KIB, 0x0a11_0003);
    let nk_out = dir.path().join("nk.out");
    let socat_out = dir.path().join("socat.out");
    let nk = nk_listen(
        &[],
        &s(&path),
        In::File(dir.path().join("a.bin")),
        Out::File(nk_out.clone()),
    );
    assert!(
        is_socket(&path),
        "no socket file at {} while listening",
        path.display()
    );
    let sc = socat(
        &["-t", "10", "-", &format!("UNIX-CONNECT:{}", s(&path))],
        In::File(dir.path().join("b.bin")),
        Out::File(socat_out.clone()),
    )
    .wait(20.0);
    sc.expect_code(0);
    let out = nk.wait(10.0);
    out.expect_code(0);
    assert_same_bytes(
        "nk unix -l received from socat",
        &read_file(&nk_out),
        &to_nk,
    );
    assert_same_bytes(
        "socat received from nk unix -l",
        &read_file(&socat_out),
        &to_socat,
    );
    assert!(
        !exists(&path),
        "socket file {} left behind after a normal end\n{}",
        path.display(),
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 2. abstract names
// ---------------------------------------------------------------------------

#[test]
fn abstract_client_echo_through_socat_abstract_listen() {
    let name = abstract_name("abs-echo");
    let _socat = socat_server(
        &["-t", "10", &format!("ABSTRACT-LISTEN:{name}"), "EXEC:cat"],
        In::Null,
        Out::Null,
    );
    let out = run_nk(
        ["unix", &format!("@{name}")],
        In::Bytes(b"hello abstract\n".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"hello abstract\n");
}

#[test]
fn abstract_server_with_socat_abstract_connect() {
    let name = abstract_name("abs-srv");
    let addr = format!("@{name}");
    let nk = nk_listen(&[], &addr, In::Bytes(b"from nk\n".to_vec()), Out::Pipe);
    let sc = socat(
        &["-t", "10", "-", &format!("ABSTRACT-CONNECT:{name}")],
        In::Bytes(b"from socat\n".to_vec()),
        Out::Pipe,
    )
    .wait(10.0);
    sc.expect_code(0).expect_stdout(b"from nk\n");
    nk.wait(10.0).expect_code(0).expect_stdout(b"from socat\n");
    // No file appears anywhere for an abstract name; the name is free again.
    assert!(!exists(Path::new(&addr)), "a file named {addr} was created");
    let again = UnixListener::bind_addr(&UnixAddr::from_abstract_name(name.as_bytes()).unwrap());
    assert!(
        again.is_ok(),
        "abstract name @{name} still taken after nk ended: {again:?}"
    );
}

// ---------------------------------------------------------------------------
// 3. seqpacket
// ---------------------------------------------------------------------------

#[test]
fn seqpacket_client_echo_through_socat_socktype_5() {
    let (_dir, path) = sock_path("seq.sock");
    let _socat = socat_server(
        &[
            "-t",
            "10",
            &format!("UNIX-LISTEN:{},socktype=5", s(&path)),
            "EXEC:cat",
        ],
        In::Null,
        Out::Null,
    );
    let out = run_nk(
        ["unix", "--seqpacket", &s(&path)],
        In::Bytes(b"one\ntwo\n".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"one\ntwo\n");
}

#[test]
fn seqpacket_server_with_socat_socktype_5_client() {
    let (_dir, path) = sock_path("seqsrv.sock");
    let nk = nk_listen(
        &["--seqpacket"],
        &s(&path),
        In::Bytes(b"from nk\n".to_vec()),
        Out::Pipe,
    );
    let sc = socat(
        &[
            "-t",
            "10",
            "-",
            &format!("UNIX-CONNECT:{},socktype=5", s(&path)),
        ],
        In::Bytes(b"from socat\n".to_vec()),
        Out::Pipe,
    )
    .wait(10.0);
    sc.expect_code(0).expect_stdout(b"from nk\n");
    nk.wait(10.0).expect_code(0).expect_stdout(b"from socat\n");
    assert!(!exists(&path), "socket file left behind after a normal end");
}

#[test]
fn seqpacket_server_keeps_message_boundaries_both_ways() {
    let (_dir, path) = sock_path("seqb.sock");
    let mut nk = nk_listen(&["--seqpacket"], &s(&path), In::Pipe, Out::Pipe);
    let mut c = seqpacket_connect(&path);
    let mut w = c.try_clone().unwrap();
    lockstep_to_stdout(&mut nk, |m| {
        w.write_all(m).expect("send message");
    });
    lockstep_from_stdin(&mut nk, || recv_msg(&mut c));
    // stdin EOF: nk half-closes, the peer sees the end of the stream.
    nk.stdin.take();
    assert_eq!(recv_msg(&mut c), b"", "no EOF after nk's stdin ended");
    drop((c, w));
    let out = nk.wait(10.0);
    out.expect_code(0);
    assert!(!exists(&path), "socket file left behind after a normal end");
}

#[test]
fn seqpacket_client_keeps_message_boundaries_both_ways() {
    let (_dir, path) = sock_path("seqc.sock");
    let l = seqpacket_listener(&path);
    let mut nk = Proc::nk(["unix", "--seqpacket", &s(&path)], In::Pipe, Out::Pipe);
    let mut c = accept_within(&l, 10.0);
    let mut w = c.try_clone().unwrap();
    lockstep_from_stdin(&mut nk, || recv_msg(&mut c));
    lockstep_to_stdout(&mut nk, |m| {
        w.write_all(m).expect("send message");
    });
    nk.stdin.take();
    assert_eq!(recv_msg(&mut c), b"", "no EOF after nk's stdin ended");
    drop((c, w));
    nk.wait(10.0).expect_code(0);
}

// ---------------------------------------------------------------------------
// 4. datagrams
// ---------------------------------------------------------------------------

#[test]
fn dgram_client_echo_through_socat_unix_recvfrom() {
    let (_dir, path) = sock_path("dg.sock");
    let _socat = socat_server(
        &[&format!("UNIX-RECVFROM:{},fork", s(&path)), "EXEC:cat"],
        In::Null,
        Out::Null,
    );
    let out = run_nk(
        ["unix", "--dgram", &s(&path)],
        In::Bytes(b"hello dgram\n".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"hello dgram\n");
}

#[test]
fn dgram_server_with_socat_unix_sendto_both_directions() {
    let (dir, path) = sock_path("dgsrv.sock");
    let client = dir.path().join("client.sock");
    let mut nk = nk_listen(&["--dgram"], &s(&path), In::Pipe, Out::Pipe);
    let mut sc = socat(
        &[
            "-t",
            "5",
            "-",
            &format!("UNIX-SENDTO:{},bind={}", s(&path), s(&client)),
        ],
        In::Pipe,
        Out::Pipe,
    );
    sc.stdin.as_mut().unwrap().write_all(b"ping\n").unwrap();
    nk.wait_stdout_line(10.0, |l| l == "ping");
    nk.stdin.as_mut().unwrap().write_all(b"pong\n").unwrap();
    sc.wait_stdout_line(10.0, |l| l == "pong");
    drop(sc);
    let out = signal_and_wait(nk, "TERM", 143);
    out.expect_stdout(b"ping\n");
    assert!(!exists(&path), "socket file left behind after SIGTERM");
}

#[test]
fn dgram_server_keeps_boundaries_and_answers_the_last_peer() {
    let (dir, path) = sock_path("dgk.sock");
    let mut nk = nk_listen(&["--dgram", "-k"], &s(&path), In::Pipe, Out::Pipe);
    let a = UnixDatagram::bind(dir.path().join("a.sock")).unwrap();
    let b = UnixDatagram::bind(dir.path().join("b.sock")).unwrap();
    for sock in [&a, &b] {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    lockstep_to_stdout(&mut nk, |m| {
        a.send_to(m, &path).expect("send datagram");
    });
    // A's turn: nk's stdin goes to A, one chunk one datagram.
    let mut buf = vec![0u8; 128 * KIB];
    lockstep_from_stdin(&mut nk, || {
        let n = a.recv(&mut buf).expect("A: recv from nk");
        buf[..n].to_vec()
    });
    // B speaks last: stdin now goes to B only.
    let before = nk.stdout_so_far().len();
    b.send_to(b"b here\n", &path).unwrap();
    nk.wait_stdout_len(before + 7, 10.0);
    nk.stdin.as_mut().unwrap().write_all(b"to b\n").unwrap();
    let n = b.recv(&mut buf).expect("B: recv from nk");
    assert_eq!(&buf[..n], b"to b\n");
    a.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        a.recv(&mut buf).is_err(),
        "A received {:?} after B was the last peer heard",
        String::from_utf8_lossy(&buf)
    );
    let out = signal_and_wait(nk, "TERM", 143);
    assert!(out.stdout.ends_with(b"b here\n"));
    assert!(!exists(&path), "socket file left behind after SIGTERM");
}

#[test]
fn dgram_client_autobinds_keeps_boundaries_and_prints_replies() {
    let (_dir, path) = sock_path("dgc.sock");
    let srv = UnixDatagram::bind(&path).unwrap();
    srv.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut nk = Proc::nk(["unix", "--dgram", &s(&path)], In::Pipe, Out::Pipe);
    let mut peer = None;
    let mut buf = vec![0u8; 128 * KIB];
    lockstep_from_stdin(&mut nk, || {
        let (n, from) = srv.recv_from(&mut buf).expect("recv from nk");
        peer = Some(from);
        buf[..n].to_vec()
    });
    let peer = peer.unwrap();
    assert!(
        peer.as_abstract_name().is_some() || peer.as_pathname().is_some(),
        "nk's datagrams come from an unnamed socket ({peer:?}): no reply can reach it"
    );
    lockstep_to_stdout(&mut nk, |m| {
        srv.send_to_addr(m, &peer).expect("reply to nk");
    });
    // stdin EOF: nk keeps listening for -q (default 1 s) of silence, then ends with 0.
    nk.stdin.take();
    let total = nk.stdout_so_far().len();
    srv.send_to_addr(b"late reply\n", &peer).unwrap();
    let out = nk.wait(10.0);
    out.expect_code(0);
    assert_eq!(
        &out.stdout[total..],
        b"late reply\n",
        "reply after stdin EOF not printed"
    );
}

#[test]
fn dgram_server_runs_a_program_per_datagram() {
    let (dir, path) = sock_path("dgx.sock");
    let nk = nk_listen(
        &["--dgram", "-k", "-c", "tr a-z A-Z"],
        &s(&path),
        In::Null,
        Out::Pipe,
    );
    let c = UnixDatagram::bind(dir.path().join("c.sock")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 64 * KIB];
    for word in ["hello\n", "second datagram\n", "x"] {
        c.send_to(word.as_bytes(), &path).unwrap();
        let n = c
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no reply to {word:?}: {e}\n{}", nk.stderr_so_far()));
        assert_eq!(
            String::from_utf8_lossy(&buf[..n]),
            word.to_uppercase(),
            "reply of -c 'tr a-z A-Z' to {word:?}"
        );
    }
    let out = signal_and_wait(nk, "TERM", 143);
    out.expect_stdout(b"");
    assert!(!exists(&path));
}

#[test]
fn dgram_server_exec_cat_on_an_abstract_name() {
    let name = abstract_name("abs-dg");
    let nk = nk_listen(
        &["--dgram", "-k", "-e", "/bin/cat"],
        &format!("@{name}"),
        In::Null,
        Out::Pipe,
    );
    let c = UnixDatagram::bind_addr(
        &UnixAddr::from_abstract_name(format!("{name}-client").as_bytes()).unwrap(),
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    let mut buf = vec![0u8; 64 * KIB];
    for msg in [&b"abc"[..], b"two\nlines\n"] {
        c.send_to_addr(msg, &to).unwrap();
        let n = c
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no echo: {e}\n{}", nk.stderr_so_far()));
        assert_eq!(&buf[..n], msg);
    }
    signal_and_wait(nk, "INT", 130);
}

#[test]
fn dgram_server_reports_a_datagram_larger_than_the_buffer() {
    let (dir, path) = sock_path("dgbig.sock");
    let mut nk = nk_listen(&["--dgram", "-b", "1000"], &s(&path), In::Null, Out::Pipe);
    let c = UnixDatagram::bind(dir.path().join("c.sock")).unwrap();
    c.send_to(&prng_bytes(3000, 3000), &path).unwrap();
    // A report, never a silent cut (a summary's "0 truncated" does not count).
    let reported = wait_until(10.0, || {
        nk.stderr_so_far().lines().any(|l| {
            let l = l.to_lowercase();
            l.contains("truncated") && !l.contains(" 0 truncated")
        })
    });
    assert!(
        reported,
        "3000 bytes into -b 1000 not reported:\n{}",
        nk.stderr_so_far()
    );
    let before = nk.stdout_so_far().len();
    c.send_to(b"after\n", &path).unwrap();
    let out = nk.wait_stdout_len(before + 6, 10.0);
    assert!(
        out.ends_with(b"after\n"),
        "the server goes on after a truncated datagram"
    );
    signal_and_wait(nk, "TERM", 143);
    assert!(!exists(&path));
}

/// Sends `count` datagrams `dN\n` to `path` from a Python socket that never binds an
/// address (an unnamed sender, as `socat UNIX-SENDTO` without `bind=`).
fn send_unnamed(path: &Path, count: usize) {
    require_python3();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import socket, sys\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         for i in range(int(sys.argv[2])):\n    s.sendto(b'd%d\\n' % i, sys.argv[1])\n",
    ])
    .arg(path)
    .arg(count.to_string());
    let out = Proc::spawn("python3 unnamed sender", cmd, In::Null, Out::Pipe).wait(10.0);
    out.expect_code(0);
}

/// The lines of `stderr` that warn about unnamed senders.
fn unnamed_warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("nk: warning:") && l.contains("unnamed"))
        .collect()
}

#[test]
fn dgram_server_says_once_that_replies_to_an_unnamed_sender_are_dropped() {
    // stdin goes to the last peer heard: here an unnamed one, for every datagram.
    let (dir, path) = sock_path("unnamed.sock");
    let hex = dir.path().join("dump.hex");
    let mut nk = nk_listen(
        &["--dgram", "-k", "-x", &s(&hex)],
        &s(&path),
        In::Pipe,
        Out::Pipe,
    );
    send_unnamed(&path, 5);
    nk.wait_stdout_len(15, 10.0);
    for i in 1..=4 {
        write_stdin(&mut nk, format!("reply-{i}\n").as_bytes());
        // The hex dump shows each stdin datagram just before nk tries to send it, so once
        // reply-N is there, replies 1 to N-1 have met their fate: one read at a time.
        let mark = format!("|reply-{i}.|");
        assert!(
            wait_until(10.0, || lossy(&fs::read(&hex).unwrap_or_default())
                .contains(&mark)),
            "reply-{i} never reached the socket\n{}",
            nk.stderr_so_far()
        );
    }
    let out = signal_and_wait(nk, "TERM", 143);
    let warned = unnamed_warnings(&out.stderr);
    assert_eq!(warned.len(), 1, "one warning wanted\n{}", out.describe());
    assert!(
        warned[0].contains("bind") && warned[0].contains("nk unix --dgram"),
        "the warning should say how to fix the client: {}",
        warned[0]
    );

    // -e: each datagram's program runs, its reply has nowhere to go.
    let (_dir, path) = sock_path("unnamed-e.sock");
    let mut nk = nk_listen(
        &["--dgram", "-k", "-e", "/bin/cat"],
        &s(&path),
        In::Null,
        Out::Pipe,
    );
    send_unnamed(&path, 5);
    nk.wait_stderr_contains("unnamed", 10.0);
    // Bounded: whatever is left running is reported at the end, not as another warning.
    let pid = nk.pid();
    wait_until(10.0, || descendants(pid).is_empty());
    let out = signal_and_wait(nk, "TERM", 143);
    let warned = unnamed_warnings(&out.stderr);
    assert_eq!(warned.len(), 1, "one warning wanted\n{}", out.describe());
}

#[test]
fn dgram_client_to_a_missing_path_fails() {
    let (_dir, path) = sock_path("nobody.sock");
    let out = run_nk(
        ["unix", "--dgram", &s(&path)],
        In::Bytes(b"x\n".to_vec()),
        10.0,
    );
    out.expect_code(1);
    assert!(
        out.stderr.starts_with("nk: ") && out.stderr.contains(&s(&path)),
        "error should name the path\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 5. existing paths: stale socket, live socket, not a socket
// ---------------------------------------------------------------------------

#[test]
fn listen_replaces_a_stale_socket() {
    let (_dir, path) = sock_path("stale.sock");
    drop(UnixListener::bind(&path).unwrap());
    assert!(is_socket(&path), "setup: no stale socket file");
    assert!(
        UnixStream::connect(&path).is_err(),
        "setup: the stale socket answers"
    );
    let nk = nk_listen(&[], &s(&path), In::Bytes(b"fresh\n".to_vec()), Out::Pipe);
    let (back, eof) = exchange(connect(&path), b"hi\n".to_vec());
    assert!(eof, "no EOF from nk\n{}", nk.stderr_so_far());
    assert_eq!(back, b"fresh\n");
    let out = nk.wait(10.0);
    out.expect_code(0).expect_stdout(b"hi\n");
    assert!(!exists(&path), "socket file left behind after a normal end");
}

#[test]
fn listen_on_a_live_socket_is_in_use() {
    let (_dir, path) = sock_path("live.sock");
    let live = UnixListener::bind(&path).unwrap();
    let out = run_nk(["unix", "-l", &s(&path)], In::Null, 10.0);
    out.expect_code(1)
        .expect_stderr_contains("in use")
        .expect_stdout(b"");
    assert!(out.stderr.starts_with("nk: "), "{}", out.describe());
    // The other server is untouched and still reachable.
    assert!(is_socket(&path), "nk removed the live socket file");
    let _c = UnixStream::connect(&path).expect("the live server no longer answers");
    accept_within(&live, 5.0);
}

#[test]
fn listen_on_a_live_abstract_name_is_in_use() {
    let name = abstract_name("abs-live");
    let _live =
        UnixListener::bind_addr(&UnixAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    let out = run_nk(["unix", "-l", &format!("@{name}")], In::Null, 10.0);
    out.expect_code(1).expect_stderr_contains("in use");
}

#[test]
fn listen_refuses_a_regular_file_and_a_directory() {
    let (dir, file) = sock_path("precious.txt");
    fs::write(&file, b"precious\n").unwrap();
    let out = run_nk(["unix", "-l", &s(&file)], In::Null, 10.0);
    out.expect_code(1).expect_stdout(b"");
    assert!(out.stderr.starts_with("nk: "), "{}", out.describe());
    let meta = fs::symlink_metadata(&file).expect("the regular file is gone");
    assert!(meta.file_type().is_file(), "the regular file was replaced");
    assert_eq!(
        read_file(&file),
        b"precious\n",
        "the regular file was changed"
    );

    let sub = dir.path().join("subdir");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("inside"), b"x").unwrap();
    let out = run_nk(["unix", "-l", &s(&sub)], In::Null, 10.0);
    out.expect_code(1).expect_stdout(b"");
    assert!(sub.join("inside").is_file(), "the directory was touched");
}

// ---------------------------------------------------------------------------
// 6. the socket file goes on every exit; --mode; the 107-byte limit
// ---------------------------------------------------------------------------

#[test]
fn socket_file_removed_after_sigterm() {
    let (_dir, path) = sock_path("term.sock");
    let nk = nk_listen(&[], &s(&path), In::Pipe, Out::Pipe);
    assert!(is_socket(&path));
    signal_and_wait(nk, "TERM", 143);
    assert!(!exists(&path), "socket file left behind after SIGTERM");
}

#[test]
fn socket_file_removed_after_sigint_with_clients_connected() {
    let (_dir, path) = sock_path("int.sock");
    let mut nk = nk_listen(&["-k"], &s(&path), In::Pipe, Out::Pipe);
    let mut a = connect(&path);
    let mut b = connect(&path);
    a.write_all(b"a\n").unwrap();
    b.write_all(b"b\n").unwrap();
    nk.wait_stdout_len(4, 10.0);
    let out = signal_and_wait(nk, "INT", 130);
    assert!(!exists(&path), "socket file left behind after SIGINT");
    for (name, c) in [("a", &mut a), ("b", &mut b)] {
        let (got, eof) = read_all(c);
        assert!(
            eof && got.is_empty(),
            "client {name}: no EOF after SIGINT\n{}",
            out.describe()
        );
    }
}

#[test]
fn socket_file_removed_after_sigterm_dgram_and_seqpacket() {
    for kind in ["--dgram", "--seqpacket"] {
        let (_dir, path) = sock_path("kind.sock");
        let nk = nk_listen(&[kind], &s(&path), In::Pipe, Out::Pipe);
        assert!(is_socket(&path), "{kind}: no socket file while listening");
        signal_and_wait(nk, "TERM", 143);
        assert!(
            !exists(&path),
            "{kind}: socket file left behind after SIGTERM"
        );
    }
}

#[test]
fn socket_file_removed_after_sighup_and_sigquit() {
    // cli.md: removed on every exit; a closed terminal sends SIGHUP, ^\ SIGQUIT.
    for (sig, code) in [("HUP", 129), ("QUIT", 131)] {
        for kind in [None, Some("--dgram")] {
            let (_dir, path) = sock_path("hup.sock");
            let args: Vec<&str> = kind.into_iter().collect();
            let nk = nk_listen(&args, &s(&path), In::Pipe, Out::Pipe);
            assert!(is_socket(&path));
            signal_and_wait(nk, sig, code);
            assert!(
                !exists(&path),
                "{kind:?}: socket file left behind after SIG{sig}"
            );
        }
    }
}

#[test]
fn a_server_leaves_alone_the_socket_that_replaced_its_own() {
    // Ended by a signal.
    let (_dir, path) = sock_path("taken.sock");
    let first = nk_listen(&["-k"], &s(&path), In::Pipe, Out::Pipe);
    // Someone removes the first server's file and binds a new server at the same path.
    fs::remove_file(&path).unwrap();
    let second = nk_listen(&[], &s(&path), In::Bytes(b"second\n".to_vec()), Out::Pipe);
    let out = signal_and_wait(first, "TERM", 143);
    assert!(
        is_socket(&path),
        "the first server removed the second one's socket on SIGTERM\n{}",
        out.describe()
    );
    // The second server still answers there, and removes its own file when it ends.
    let (back, eof) = exchange(connect(&path), b"hi\n".to_vec());
    assert!(eof && back == b"second\n", "{}", lossy(&back));
    second.wait(10.0).expect_code(0).expect_stdout(b"hi\n");
    assert!(!exists(&path), "the second server left its socket file");

    // Ended normally: its one client was connected before the path was taken over.
    let first = nk_listen(&[], &s(&path), In::Bytes(b"first\n".to_vec()), Out::Pipe);
    let client = connect(&path);
    fs::remove_file(&path).unwrap();
    let second = nk_listen(&[], &s(&path), In::Null, Out::Pipe);
    let (back, eof) = exchange(client, b"1\n".to_vec());
    assert!(eof && back == b"first\n", "{}", lossy(&back));
    let out = first.wait(10.0);
    out.expect_code(0).expect_stdout(b"1\n");
    assert!(
        is_socket(&path),
        "the first server removed the second one's socket at its end\n{}",
        out.describe()
    );
    let (_, eof) = exchange(connect(&path), b"2\n".to_vec());
    assert!(eof);
    second.wait(10.0).expect_code(0).expect_stdout(b"2\n");
    assert!(!exists(&path));
}

#[test]
fn listening_report_is_addr_unix_for_every_socket_type() {
    // cli.md: every listener prints `listening on ADDR (tcp|udp|unix)` with -v.
    let mut wrong = Vec::new();
    for kind in [None, Some("--seqpacket"), Some("--dgram")] {
        for abstract_ns in [false, true] {
            let (_dir, path) = sock_path("report.sock");
            let addr = if abstract_ns {
                format!("@{}", abstract_name("report"))
            } else {
                s(&path)
            };
            let args: Vec<&str> = kind.into_iter().collect();
            let (nk, line) = nk_listen_line(&args, &addr, In::Pipe, Out::Pipe);
            let want = format!("nk: listening on {addr} (unix)");
            if line != want {
                wrong.push(format!("{kind:?} {addr}: got {line:?}, want {want:?}"));
            }
            signal_and_wait(nk, "TERM", 143);
        }
    }
    assert!(wrong.is_empty(), "listening reports:\n{}", wrong.join("\n"));
}

#[test]
fn mode_sets_the_socket_file_permissions() {
    for (mode, want) in [("600", 0o600), ("660", 0o660)] {
        let (_dir, path) = sock_path("mode.sock");
        let nk = nk_listen(&["--mode", mode], &s(&path), In::Pipe, Out::Pipe);
        let meta = fs::symlink_metadata(&path).expect("socket file");
        assert!(meta.file_type().is_socket());
        let got = meta.permissions().mode() & 0o7777;
        let stat = Command::new("stat")
            .args(["-c", "%a"])
            .arg(&path)
            .output()
            .expect("run stat");
        assert_eq!(
            got,
            want,
            "--mode {mode}: socket file mode {got:o} (stat says {})",
            String::from_utf8_lossy(&stat.stdout).trim()
        );
        // Still a working server.
        let (_, eof) = exchange(connect(&path), b"m\n".to_vec());
        assert!(eof);
        nk.wait(10.0).expect_code(0).expect_stdout(b"m\n");
        assert!(!exists(&path));
    }
}

#[test]
fn mode_on_an_abstract_name_is_a_usage_error() {
    // An abstract socket has no permissions: --mode would be silently ignored.
    let name = abstract_name("abs-mode");
    for extra in [None, Some("--dgram"), Some("--seqpacket")] {
        let mut args = vec!["unix", "-l", "-k", "--mode", "600"];
        args.extend(extra);
        let addr = format!("@{name}");
        args.push(&addr);
        let out = run_nk(&args, In::Null, 5.0);
        out.expect_code(2)
            .expect_stderr_contains("--mode")
            .expect_stderr_contains("--allow-uid")
            .expect_stdout(b"");
        assert!(out.stderr.starts_with("nk: "), "{}", out.describe());
    }
    // Nothing was bound: the name is free.
    let _free = UnixListener::bind_addr(&UnixAddr::from_abstract_name(name.as_bytes()).unwrap())
        .expect("nk left something bound to the name");
}

/// `nk unix ARGS` as uid and gid 65534 (nobody) with no supplementary groups.
fn nk_as_nobody(args: &[&str], stdin: In) -> Finished {
    let setpriv = require_tool("setpriv", "util-linux");
    let mut cmd = Command::new(setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_nk"))
        .arg("unix")
        .args(args)
        .env("NO_COLOR", "1");
    Proc::spawn("nk unix as uid 65534", cmd, stdin, Out::Pipe).wait(10.0)
}

#[test]
fn allow_uid_serves_root_and_closes_other_uids_before_a_byte_moves() {
    // Stream and seqpacket, on abstract names (which have no other access control) and on a
    // path that everyone may open (so only --allow-uid stands in the way).
    let (dir, path) = sock_path("uid.sock");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let cases = [
        (None, format!("@{}", abstract_name("uid")), "0"),
        (
            Some("--seqpacket"),
            format!("@{}", abstract_name("uid-sp")),
            "root",
        ),
        (None, s(&path), "0"),
    ];
    for (kind, addr, uid) in cases {
        let mut server_args = vec!["-k", "--allow-uid", "4242", "--allow-uid", uid];
        if !addr.starts_with('@') {
            server_args.extend(["--mode", "666"]);
        }
        server_args.extend(kind);
        server_args.extend(["-e", "/bin/cat"]);
        let mut nk = nk_listen(&server_args, &addr, In::Null, Out::Pipe);
        let mut client_args: Vec<&str> = kind.into_iter().collect();
        client_args.push(&addr);

        let nobody = nk_as_nobody(&client_args, In::Bytes(b"from nobody\n".to_vec()));
        assert!(
            nobody.stdout.is_empty(),
            "{kind:?} {addr}: uid 65534 was served\n{}",
            nobody.describe()
        );
        let said = nk.wait_stderr_contains("uid 65534", 10.0);
        let line = said.lines().find(|l| l.contains("uid 65534")).unwrap_or("");
        assert!(
            line.starts_with("nk: denied") && line.contains("--allow-uid"),
            "{kind:?} {addr}: -v line {line:?}"
        );

        let mut root_args = vec!["unix"];
        root_args.extend(&client_args);
        run_nk(&root_args, In::Bytes(b"from root\n".to_vec()), 10.0)
            .expect_code(0)
            .expect_stdout(b"from root\n");

        let out = signal_and_wait(nk, "TERM", 143);
        assert!(
            !out.stderr.contains("#2"),
            "{kind:?} {addr}: more than the root client was served\n{}",
            out.describe()
        );
    }
}

#[test]
fn allow_uid_on_a_datagram_server_drops_other_uids_unread() {
    let addr = format!("@{}", abstract_name("uid-dg"));
    let mut nk = nk_listen(
        &["--dgram", "-k", "--allow-uid", "0"],
        &addr,
        In::Null,
        Out::Pipe,
    );
    nk_as_nobody(
        &["--dgram", "-q", "0.2", &addr],
        In::Bytes(b"from nobody\n".to_vec()),
    );
    let said = nk.wait_stderr_contains("uid 65534", 10.0);
    let line = said.lines().find(|l| l.contains("uid 65534")).unwrap_or("");
    assert!(
        line.starts_with("nk: denied") && line.contains("--allow-uid"),
        "-v line {line:?}"
    );
    run_nk(
        ["unix", "--dgram", "-q", "0.2", &addr],
        In::Bytes(b"from root\n".to_vec()),
        10.0,
    )
    .expect_code(0);
    let got = nk.wait_stdout_len(10, 10.0);
    assert_eq!(lossy(&got), "from root\n", "only root's datagram is served");
    signal_and_wait(nk, "TERM", 143);
}

#[test]
fn bad_mode_is_a_usage_error() {
    for bad in ["9x", "800", "rw-"] {
        let (_dir, path) = sock_path("badmode.sock");
        let out = run_nk(["unix", "-l", "--mode", bad, &s(&path)], In::Null, 5.0);
        out.expect_code(2);
        assert!(out.stderr.starts_with("nk: "), "{}", out.describe());
        assert!(!exists(&path), "--mode {bad}: a socket file was created");
    }
}

#[test]
fn path_limit_is_107_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let base = s(dir.path());
    let at = |len: usize| -> PathBuf {
        let name = "x".repeat(len - base.len() - 1);
        let p = dir.path().join(name);
        assert_eq!(s(&p).len(), len);
        p
    };
    // 108 bytes: a usage error naming the limit, as server and as client, nothing created.
    let long = at(108);
    for args in [
        vec!["unix".to_string(), "-l".to_string(), s(&long)],
        vec!["unix".to_string(), s(&long)],
        vec![
            "unix".to_string(),
            "--dgram".to_string(),
            "-l".to_string(),
            s(&long),
        ],
    ] {
        let out = run_nk(&args, In::Null, 5.0);
        out.expect_code(2)
            .expect_stderr_contains("107")
            .expect_stdout(b"");
        assert!(out.stderr.starts_with("nk: "), "{}", out.describe());
        assert!(!exists(&long), "{args:?} created {}", long.display());
    }
    // 107 bytes: fine.
    let max = at(107);
    let nk = nk_listen(&[], &s(&max), In::Null, Out::Pipe);
    let (_, eof) = exchange(connect(&max), b"107\n".to_vec());
    assert!(eof);
    nk.wait(10.0).expect_code(0).expect_stdout(b"107\n");
    assert!(!exists(&max));
}

// ---------------------------------------------------------------------------
// 7. servers: -k -e, -c with NK_PROTO, --broker
// ---------------------------------------------------------------------------

#[test]
fn keep_open_exec_cat_echoes_concurrent_clients() {
    let (_dir, path) = sock_path("cat.sock");
    let nk = nk_listen(&["-k", "-e", "/bin/cat"], &s(&path), In::Null, Out::Pipe);
    let clients: Vec<_> = (0..5)
        .map(|i| {
            let c = connect(&path);
            let data = prng_bytes(100 * KIB + i * 7, 0xca7_0000 + i as u64);
            thread::spawn(move || (exchange(c, data.clone()), data))
        })
        .collect();
    for (i, h) in clients.into_iter().enumerate() {
        let ((back, eof), data) = h.join().expect("client thread");
        assert!(eof, "client {i}: no EOF\n{}", nk.stderr_so_far());
        assert_same_bytes(&format!("client {i} echo"), &back, &data);
    }
    let out = signal_and_wait(nk, "TERM", 143);
    out.expect_stdout(b"");
    assert!(!exists(&path));
}

#[test]
fn sh_exec_sees_nk_proto_unix() {
    let (_dir, path) = sock_path("env.sock");
    let nk = nk_listen(
        &["-c", "echo \"$NK_PROTO $NK_CONN_SEQ\"; cat"],
        &s(&path),
        In::Null,
        Out::Pipe,
    );
    let (back, eof) = exchange(connect(&path), b"body\n".to_vec());
    assert!(eof, "no EOF\n{}", nk.stderr_so_far());
    assert_eq!(String::from_utf8_lossy(&back), "unix 1\nbody\n");
    nk.wait(10.0).expect_code(0).expect_stdout(b"");
    assert!(!exists(&path));
}

#[test]
fn max_conns_closes_the_excess_client_at_once() {
    let (_dir, path) = sock_path("maxc.sock");
    let nk = nk_listen(
        &["-k", "-m", "1", "-e", "/bin/cat"],
        &s(&path),
        In::Null,
        Out::Pipe,
    );
    let mut a = connect(&path);
    a.write_all(b"first\n").unwrap();
    let mut got = [0u8; 6];
    a.read_exact(&mut got).expect("the first client is served");
    assert_eq!(&got, b"first\n");
    // A second client while the first is still connected: closed without a byte.
    let mut b = connect(&path);
    let (back, eof) = read_all(&mut b);
    assert!(
        eof && back.is_empty(),
        "-m 1: the excess client got {back:?} (eof={eof})\n{}",
        nk.stderr_so_far()
    );
    // The first is unaffected.
    a.write_all(b"still\n").unwrap();
    a.read_exact(&mut got)
        .expect("the first client still served");
    assert_eq!(&got, b"still\n");
    drop((a, b));
    signal_and_wait(nk, "TERM", 143).expect_stdout(b"");
    assert!(!exists(&path));
}

/// A line reader over a unix stream that remembers every line it saw.
struct Lines {
    c: UnixStream,
    pending: Vec<u8>,
    seen: Vec<String>,
}

impl Lines {
    fn new(c: UnixStream) -> Self {
        Lines {
            c,
            pending: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Reads lines for up to `secs` until one satisfies `pred`.
    fn until(&mut self, secs: f64, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                self.seen.push(text.clone());
                if pred(&text) {
                    return true;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.c.set_read_timeout(Some(left)).unwrap();
            let mut buf = [0u8; 4096];
            match self.c.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    }

    fn send(&mut self, text: &str) {
        self.c.write_all(text.as_bytes()).expect("send");
    }
}

#[test]
fn broker_relays_between_unix_clients() {
    let (_dir, path) = sock_path("broker.sock");
    let nk = nk_listen(&["--broker"], &s(&path), In::Null, Out::Pipe);
    let mut a = Lines::new(connect(&path));
    let mut b = Lines::new(connect(&path));
    // B repeats its hello until A has it (A's registration has no event the test can see).
    let mut got = false;
    for i in 0..25 {
        b.send(&format!("hello {i} from B\n"));
        if a.until(0.3, |l| l.ends_with("from B")) {
            got = true;
            break;
        }
    }
    assert!(
        got,
        "A never got B's data through --broker\n{}",
        nk.stderr_so_far()
    );
    a.send("reply from A\n");
    assert!(
        b.until(5.0, |l| l == "reply from A"),
        "B never got A's line; B saw {:?}\n{}",
        b.seen,
        nk.stderr_so_far()
    );
    assert!(
        !b.seen.iter().any(|l| l.ends_with("from B")),
        "B got its own data back: {:?}",
        b.seen
    );
    drop((a, b));
    let out = signal_and_wait(nk, "TERM", 143);
    // The operator's stdout shows the clients' lines, whole.
    let shown = out.stdout_text();
    assert!(shown.ends_with("reply from A\n"), "{shown}");
    assert!(
        shown
            .lines()
            .all(|l| l == "reply from A" || (l.starts_with("hello ") && l.ends_with(" from B"))),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------
// 8. client relay flags: -C, -x, -q, -i, --recv-only
// ---------------------------------------------------------------------------

#[test]
fn client_crlf_translates_lf() {
    let (_dir, path) = sock_path("crlf.sock");
    let srv = serve(&path, |mut c| read_all(&mut c).0);
    let out = run_nk(
        ["unix", "-C", &s(&path)],
        In::Bytes(b"a\nb\n".to_vec()),
        10.0,
    );
    out.expect_code(0);
    assert_eq!(String::from_utf8_lossy(&join_thread(srv)), "a\r\nb\r\n");
}

#[test]
fn client_hex_dump_marks_both_directions() {
    let (_dir, path) = sock_path("hex.sock");
    let srv = serve(&path, |mut c| {
        let got = read_all(&mut c).0;
        c.write_all(b"HELLO").unwrap();
        got
    });
    let out = run_nk(
        ["unix", "-x", "-", &s(&path)],
        In::Bytes(b"GET /x\n".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"HELLO");
    let has = |mark: &str, hex: &str| {
        out.stderr
            .lines()
            .any(|l| l.starts_with(&format!("{mark} 00000000")) && l.to_lowercase().contains(hex))
    };
    assert!(
        has(">", "47 45 54 20 2f 78 0a"),
        "no `> 00000000  47 45 54 ...` line\n{}",
        out.describe()
    );
    assert!(
        has("<", "48 45 4c 4c 4f"),
        "no `< 00000000  48 45 4c 4c 4f` line\n{}",
        out.describe()
    );
    assert_eq!(join_thread(srv), b"GET /x\n");
}

#[test]
fn client_q_exits_after_stdin_eof_while_the_server_stays_open() {
    let (_dir, path) = sock_path("q.sock");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let srv = serve(&path, move |mut c| {
        let mut buf = [0u8; 16];
        let n = c.read(&mut buf).unwrap_or(0);
        // Stay open, silent, until the test is done.
        let _ = rx.recv_timeout(Duration::from_secs(15));
        buf[..n].to_vec()
    });
    let out = run_nk(
        ["unix", "--no-shutdown", "-q", "300ms", &s(&path)],
        In::Bytes(b"x".to_vec()),
        10.0,
    );
    out.expect_code(0);
    let _ = tx.send(());
    assert_eq!(join_thread(srv), b"x");
}

#[test]
fn client_idle_timeout_exits_1() {
    let (_dir, path) = sock_path("idle.sock");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let srv = serve(&path, move |_c| {
        let _ = rx.recv_timeout(Duration::from_secs(15));
    });
    let nk = Proc::nk(["unix", "-i", "500ms", &s(&path)], In::Pipe, Out::Pipe);
    let out = nk.wait(10.0);
    let _ = tx.send(());
    out.expect_code(1).expect_stdout(b"");
    join_thread(srv);
}

#[test]
fn client_recv_only_never_sends_stdin() {
    let (_dir, path) = sock_path("ro.sock");
    let srv = serve(&path, |mut c| {
        c.write_all(b"data\n").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        read_all(&mut c).0
    });
    let out = run_nk(
        ["unix", "--recv-only", &s(&path)],
        In::Bytes(b"secret\n".to_vec()),
        10.0,
    );
    out.expect_code(0).expect_stdout(b"data\n");
    assert_eq!(join_thread(srv), b"", "--recv-only sent stdin");
}

// ---------------------------------------------------------------------------
// 9. -U aliases and OpenBSD nc -U
// ---------------------------------------------------------------------------

#[test]
fn dial_u_and_listen_u_are_aliases() {
    let (_dir, path) = sock_path("alias-dial.sock");
    let _socat = socat_server(
        &["-t", "10", &format!("UNIX-LISTEN:{}", s(&path)), "EXEC:cat"],
        In::Null,
        Out::Null,
    );
    run_nk(
        ["dial", "-U", &s(&path)],
        In::Bytes(b"via dial -U\n".to_vec()),
        10.0,
    )
    .expect_code(0)
    .expect_stdout(b"via dial -U\n");

    let (_dir2, path2) = sock_path("alias-listen.sock");
    let mut nk = Proc::nk(
        ["listen", "-U", "-v", &s(&path2)],
        In::Bytes(b"from listen -U\n".to_vec()),
        Out::Pipe,
    );
    let line = nk.wait_stderr_line(10.0, |l| l.starts_with("nk: listening on "));
    assert_eq!(line, format!("nk: listening on {} (unix)", s(&path2)));
    let (back, eof) = exchange(connect(&path2), b"to listen -U\n".to_vec());
    assert!(eof);
    assert_eq!(back, b"from listen -U\n");
    nk.wait(10.0)
        .expect_code(0)
        .expect_stdout(b"to listen -U\n");
    assert!(!exists(&path2));
}

#[test]
fn client_with_openbsd_nc_u_listener() {
    require_openbsd_nc();
    let (_dir, path) = sock_path("nc.sock");
    let mut nc = Proc::spawn(
        "nc -N -l -v -U PATH",
        {
            let mut c = Command::new("nc");
            c.args(["-N", "-l", "-v", "-U"]).arg(&path);
            c
        },
        In::Bytes(b"from nc\n".to_vec()),
        Out::Pipe,
    );
    nc.wait_stderr_line(10.0, |l| l.starts_with("Listening on"));
    let out = run_nk(["unix", &s(&path)], In::Bytes(b"from nk\n".to_vec()), 10.0);
    out.expect_code(0).expect_stdout(b"from nc\n");
    nc.wait(10.0).expect_code(0).expect_stdout(b"from nk\n");
}

#[test]
fn server_with_openbsd_nc_u_client() {
    require_openbsd_nc();
    let (_dir, path) = sock_path("ncc.sock");
    let nk = nk_listen(&[], &s(&path), In::Bytes(b"from nk\n".to_vec()), Out::Pipe);
    let nc = Proc::spawn(
        "nc -N -U PATH",
        {
            let mut c = Command::new("nc");
            c.args(["-N", "-U"]).arg(&path);
            c
        },
        In::Bytes(b"from nc\n".to_vec()),
        Out::Pipe,
    )
    .wait(10.0);
    nc.expect_code(0).expect_stdout(b"from nk\n");
    nk.wait(10.0).expect_code(0).expect_stdout(b"from nc\n");
    assert!(!exists(&path));
}
