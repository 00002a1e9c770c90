//! `nk listen` as a server: `-k` with many concurrent clients, `-e`/`-c` programs per
//! connection (and `nk dial -e/-c`), `-m`, `--allow`/`--deny`, `-i`, `--broker`/`--chat`,
//! descriptor exhaustion, slowloris, SIGTERM/SIGINT.
//!
//! Clients are plain `std::net` sockets in the test (and `socket2` for a 127.0.0.2 source
//! address); the server is always the real binary, on a port the kernel gave it (`-v` reports
//! it). Every wait is bounded; where a state has no event to wait on (a file's size, /proc),
//! it is polled under a deadline.

mod common;

use common::*;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// `nk listen -v ARGS` with the port it reports.
fn listen(args: &[&str], stdin: In, stdout: Out) -> (Proc, u16) {
    let mut full = vec!["listen", "-v"];
    full.extend_from_slice(args);
    let mut p = Proc::nk(&full, stdin, stdout);
    let port = p.nk_listening_port();
    (p, port)
}

/// Sends SIGTERM and expects nk to exit 143 within 10 s.
fn terminate(p: Proc) -> Finished {
    send_signal(p.pid(), "TERM");
    let out = p.wait(10.0);
    out.expect_code(143);
    out
}

/// A TCP connection from `src` (e.g. 127.0.0.2) to 127.0.0.1:`port`.
fn connect_from(src: &str, port: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let from: SocketAddr = format!("{src}:0").parse().expect("source address");
    sock.bind(&from.into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    sock.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {to} from {src}: {e}"));
    sock.into()
}

/// Sends `data` from a second thread (then half-closes) while reading everything back until
/// EOF (at most `secs` of silence). Returns (bytes back, EOF seen).
fn echo_exchange(s: TcpStream, data: Vec<u8>, secs: f64) -> (Vec<u8>, bool) {
    let mut w = s.try_clone().expect("try_clone");
    let writer = thread::spawn(move || {
        let r = w.write_all(&data);
        let _ = w.shutdown(Shutdown::Write);
        r
    });
    let mut s = s;
    let back = read_until_eof(&mut s, secs);
    let _ = writer.join().expect("writer thread");
    back
}

/// Reads exactly `n` bytes within `secs`, or returns what came before EOF / error / timeout.
fn read_n(s: &mut TcpStream, n: usize, secs: f64) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut got = Vec::new();
    let mut buf = vec![0u8; n.max(1)];
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        s.set_read_timeout(Some(left)).expect("set_read_timeout");
        match s.read(&mut buf[..n - got.len()]) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    got
}

/// A client that reads whole lines with deadlines and remembers every line it saw.
struct LineClient {
    name: String,
    s: TcpStream,
    pending: Vec<u8>,
    seen: Vec<String>,
    eof: bool,
}

impl LineClient {
    fn connect(name: &str, port: u16) -> Self {
        LineClient {
            name: name.to_string(),
            s: connect_local(port),
            pending: Vec::new(),
            seen: Vec::new(),
            eof: false,
        }
    }

    fn local_port(&self) -> u16 {
        self.s.local_addr().expect("local_addr").port()
    }

    fn send(&mut self, text: &str) {
        self.s
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{}: send {text:?}: {e}", self.name));
    }

    /// The next line (lossy, without the newline), `None` at EOF, panics past `deadline`.
    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                self.seen.push(text.clone());
                return Some(text);
            }
            if self.eof {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: no complete line in time; lines so far: {:?}, partial: {:?}",
                self.name,
                self.seen,
                String::from_utf8_lossy(&self.pending)
            );
            self.s
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            let mut buf = [0u8; 16 * 1024];
            match self.s.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{}: read: {e}; lines so far: {:?}", self.name, self.seen),
            }
        }
    }

    /// Waits up to `secs` until every line of `wants` has been seen, in any order.
    fn wait_all(&mut self, secs: f64, wants: &[String]) {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        while !wants.iter().all(|w| self.seen.contains(w)) {
            if self.next_line(deadline).is_none() {
                panic!(
                    "{}: EOF before all of {wants:?}; lines seen: {:?}",
                    self.name, self.seen
                );
            }
        }
    }

    /// Waits up to `secs` for a line for which `pred` holds and returns it.
    fn wait_line(&mut self, secs: f64, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            match self.next_line(deadline) {
                Some(l) if pred(&l) => return l,
                Some(_) => {}
                None => panic!(
                    "{}: EOF before {what}; lines seen: {:?}",
                    self.name, self.seen
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 1. -k: 200 concurrent clients, 1 MiB of lines each, to stdout without a torn line
// ---------------------------------------------------------------------------

const LINE_LEN: usize = 128;
const LINES_PER_CLIENT: usize = MIB / LINE_LEN;

/// Line `j` of client `i`: `client-III line-JJJJJJ <fill>\n`, LINE_LEN bytes.
fn client_line(i: usize, j: usize, out: &mut Vec<u8>) {
    let start = out.len();
    write!(out, "client-{i:03} line-{j:06} ").unwrap();
    let fill = b'a' + ((i * 7 + j) % 26) as u8;
    out.resize(start + LINE_LEN - 1, fill);
    out.push(b'\n');
}

/// Runs `client(i, stream, barrier)` in `n` threads, each on its own connection to
/// 127.0.0.1:`port` (connected within 10 s); `barrier` waits for all `n`. Returns the
/// clients' errors.
fn parallel_clients<F>(n: usize, port: u16, client: F) -> Vec<String>
where
    F: Fn(usize, TcpStream, &Barrier) -> Result<(), String> + Send + Sync + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let client = Arc::new(client);
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let client = Arc::clone(&client);
            thread::spawn(move || -> Result<(), String> {
                let s = TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], port)),
                    Duration::from_secs(10),
                )
                .map_err(|e| format!("client {i}: connect: {e}"))?;
                client(i, s, &barrier)
            })
        })
        .collect();
    clients
        .into_iter()
        .filter_map(|t| t.join().expect("client thread").err())
        .collect()
}

#[test]
fn keep_open_200_clients_1mib_each_lines_never_torn() {
    const CLIENTS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.txt");
    let (nk, port) = listen(&["-k", "127.0.0.1:0"], In::Null, Out::File(output.clone()));

    let errors = parallel_clients(CLIENTS, port, |i, mut s, barrier| {
        let mut data = Vec::with_capacity(MIB);
        for j in 0..LINES_PER_CLIENT {
            client_line(i, j, &mut data);
        }
        // Every client connected before any sends: they are all served at once.
        barrier.wait();
        // Writes of uneven sizes, so lines straddle writes (and TCP segments).
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut off = 0;
        while off < data.len() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (1 + (x % 9000) as usize).min(data.len() - off);
            s.write_all(&data[off..off + n])
                .map_err(|e| format!("client {i}: write at {off}: {e}"))?;
            off += n;
        }
        s.shutdown(Shutdown::Write)
            .map_err(|e| format!("client {i}: shutdown: {e}"))?;
        // stdin is /dev/null: nk half-closed at once and sends nothing.
        let (back, eof) = read_until_eof(&mut s, 30.0);
        if !back.is_empty() || !eof {
            return Err(format!(
                "client {i}: expected EOF and no data, got {} bytes, eof={eof}",
                back.len()
            ));
        }
        Ok(())
    });

    // All clients closed; the last bytes may still be on their way to the file.
    let want = (CLIENTS * MIB) as u64;
    let size = || std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    wait_until(40.0, || size() >= want);
    let out = terminate(nk);
    assert!(
        errors.is_empty(),
        "clients failed: {errors:?}\n{}",
        out.describe()
    );

    // Every line of every client exactly once, in the client's order, none torn.
    let mut r = BufReader::with_capacity(MIB, File::open(&output).unwrap());
    let mut next = vec![0usize; CLIENTS];
    let mut line = Vec::with_capacity(LINE_LEN);
    let mut expect = Vec::with_capacity(LINE_LEN);
    let mut examples = Vec::new();
    let (mut lineno, mut torn, mut out_of_order) = (0usize, 0usize, 0usize);
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        lineno += 1;
        let parsed = (line.len() == LINE_LEN && line.starts_with(b"client-"))
            .then(|| {
                let i: usize = std::str::from_utf8(&line[7..10]).ok()?.parse().ok()?;
                let j: usize = std::str::from_utf8(&line[16..22]).ok()?.parse().ok()?;
                (i < CLIENTS).then_some((i, j))
            })
            .flatten();
        let whole = parsed.filter(|&(i, j)| {
            expect.clear();
            client_line(i, j, &mut expect);
            line == expect
        });
        match whole {
            Some((i, j)) => {
                if j != next[i] {
                    out_of_order += 1;
                    if examples.len() < 10 {
                        examples.push(format!(
                            "output line {lineno}: client {i} line {j}, expected its line {}",
                            next[i]
                        ));
                    }
                }
                next[i] = j + 1;
            }
            None => {
                torn += 1;
                if examples.len() < 10 {
                    examples.push(format!(
                        "output line {lineno} is torn: {:?}",
                        String::from_utf8_lossy(&line[..line.len().min(300)])
                    ));
                }
            }
        }
    }
    let short: Vec<String> = next
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n != LINES_PER_CLIENT)
        .map(|(i, &n)| format!("client {i} ends at line {n}"))
        .collect();
    let tail: Vec<&str> = out.stderr.lines().rev().take(10).collect();
    assert!(
        torn == 0 && out_of_order == 0 && short.is_empty(),
        "stdout ({} bytes, want {want}, {lineno} lines) is wrong: {torn} torn lines, \
         {out_of_order} out of order (or following a torn line), {} clients short of {LINES_PER_CLIENT} lines {:?}\n\
         examples:\n{}\n--- last lines of nk stderr:\n{}",
        size(),
        short.len(),
        &short[..short.len().min(5)],
        examples.join("\n"),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

// ---------------------------------------------------------------------------
// 2. -k -e /bin/cat: 100 parallel echo clients
// ---------------------------------------------------------------------------

#[test]
fn keep_open_exec_cat_echoes_100_parallel_clients() {
    const CLIENTS: usize = 100;
    let (nk, port) = listen(
        &["-k", "-e", "/bin/cat", "127.0.0.1:0"],
        In::Null,
        Out::Pipe,
    );
    let errors = parallel_clients(CLIENTS, port, |i, s, barrier| {
        let data = prng_bytes(64 * KIB, 0xec40_0000 + i as u64);
        barrier.wait();
        let (back, eof) = echo_exchange(s, data.clone(), 20.0);
        if back != data || !eof {
            let first = back.iter().zip(&data).position(|(a, b)| a != b);
            return Err(format!(
                "client {i}: got {} of {} bytes back (first difference {first:?}), eof={eof}",
                back.len(),
                data.len()
            ));
        }
        Ok(())
    });
    let out = terminate(nk);
    assert!(
        errors.is_empty(),
        "clients failed: {errors:?}\n{}",
        out.describe()
    );
    out.expect_stdout(b"");
}

// ---------------------------------------------------------------------------
// 3. seeds: -c / -e programs, their environment; one-shot listen; dial -e / -c
// ---------------------------------------------------------------------------

#[test]
fn counting_server_numbers_successive_clients() {
    let (nk, port) = listen(
        &["-k", "-c", "echo $NK_CONN_SEQ", "127.0.0.1:0"],
        In::Null,
        Out::Pipe,
    );
    for want in ["1\n", "2\n", "3\n"] {
        let mut s = connect_local(port);
        let (got, eof) = read_until_eof(&mut s, 5.0);
        assert!(
            got == want.as_bytes() && eof,
            "client {want:?}: got {:?}, eof={eof}\n{}",
            String::from_utf8_lossy(&got),
            nk.stderr_so_far()
        );
    }
    terminate(nk).expect_stdout(b"");
}

#[test]
fn line_server_answers_each_line_with_the_time_and_stops_on_stop() {
    let (nk, port) = listen(
        &[
            "-k",
            "-c",
            "while read l; do [ \"$l\" = STOP ] && break; date -u +%Y-%m-%dT%H:%M:%SZ; done",
            "127.0.0.1:0",
        ],
        In::Null,
        Out::Pipe,
    );
    for round in 0..2 {
        let mut c = LineClient::connect(&format!("client {round}"), port);
        for q in ["what time is it?\n", "and now?\n", "once more\n"] {
            c.send(q);
            let deadline = Instant::now() + Duration::from_secs(5);
            let line = c
                .next_line(deadline)
                .unwrap_or_else(|| panic!("EOF instead of a time after {q:?}"));
            let t = chrono::DateTime::parse_from_rfc3339(&line)
                .unwrap_or_else(|e| panic!("{line:?} is not an RFC 3339 time: {e}"));
            let skew = (chrono::Utc::now().timestamp() - t.timestamp()).abs();
            assert!(skew < 120, "{line:?} is {skew}s away from now");
            assert!(line.ends_with('Z'), "{line:?} is not UTC");
        }
        c.send("STOP\n");
        // No half-close from the client: the program ending closes the connection.
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            c.next_line(deadline),
            None,
            "expected EOF after STOP; lines: {:?}",
            c.seen
        );
    }
    terminate(nk).expect_stdout(b"");
}

#[test]
fn exec_environment_names_both_ends_of_the_connection() {
    // -c, IPv4, with the program's stderr going to nk's stderr.
    let (nk, port) = listen(
        &[
            "-k",
            "-c",
            "echo $NK_REMOTE_ADDR $NK_REMOTE_PORT $NK_LOCAL_ADDR $NK_LOCAL_PORT $NK_PROTO $NK_CONN_SEQ; echo to-stderr-$NK_CONN_SEQ >&2",
            "127.0.0.1:0",
        ],
        In::Null,
        Out::Pipe,
    );
    let mut s = connect_local(port);
    let me = s.local_addr().unwrap();
    let (got, eof) = read_until_eof(&mut s, 5.0);
    assert!(eof, "no EOF after the program ended");
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("127.0.0.1 {} 127.0.0.1 {port} tcp 1\n", me.port())
    );
    let out = terminate(nk);
    out.expect_stdout(b"").expect_stderr_contains("to-stderr-1");

    // -e (no shell), IPv6: the whole environment, through /usr/bin/env.
    let mut nk6 = Proc::nk(
        ["listen", "-v", "-e", "/usr/bin/env", "[::1]:0"],
        In::Null,
        Out::Pipe,
    );
    let port6 = nk6.nk_listening_port();
    let mut s = TcpStream::connect_timeout(
        &SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port6)),
        Duration::from_secs(5),
    )
    .expect("connect [::1]");
    let me = s.local_addr().unwrap();
    let (got, eof) = read_until_eof(&mut s, 5.0);
    assert!(eof, "no EOF after env ended");
    let text = String::from_utf8_lossy(&got);
    let vars: Vec<&str> = text.lines().filter(|l| l.starts_with("NK_")).collect();
    for want in [
        "NK_REMOTE_ADDR=::1".to_string(),
        format!("NK_REMOTE_PORT={}", me.port()),
        "NK_LOCAL_ADDR=::1".to_string(),
        format!("NK_LOCAL_PORT={port6}"),
        "NK_PROTO=tcp".to_string(),
        "NK_CONN_SEQ=1".to_string(),
    ] {
        assert!(
            vars.contains(&want.as_str()),
            "env lacks {want}; NK_ vars: {vars:?}"
        );
    }
    // One-shot listen: after its one client, nk exits 0.
    nk6.wait(5.0).expect_code(0).expect_stdout(b"");
}

#[test]
fn one_shot_listen_exec_cat_echoes_and_exits() {
    let (nk, port) = listen(&["-e", "/bin/cat", "127.0.0.1:0"], In::Null, Out::Pipe);
    let data = prng_bytes(2 * MIB, 0xec40_1000);
    let (back, eof) = echo_exchange(connect_local(port), data.clone(), 10.0);
    assert!(eof, "no EOF after cat ended");
    assert_same_bytes("one-shot -e /bin/cat echo", &back, &data);
    nk.wait(5.0).expect_code(0).expect_stdout(b"");
}

#[test]
fn exec_line_backslash_escapes_as_ncat() {
    // ncat --exec's splitting: `\ ` keeps a space inside a word, `\\` is a backslash. sh gets
    // `printf '[%s]\n' "$1" "$2"` as one word, then its $0, $1 and $2.
    let line = r#"/bin/sh -c printf\ '[%s]\\n'\ "$1"\ "$2" zero one\ word back\\slash"#;
    let (nk, port) = listen(&["-e", line, "127.0.0.1:0"], In::Null, Out::Pipe);
    let mut s = connect_local(port);
    s.shutdown(Shutdown::Write).expect("half-close");
    let (got, eof) = read_until_eof(&mut s, 5.0);
    assert!(eof, "no EOF after the program ended");
    assert_eq!(lossy(&got), "[one word]\n[back\\slash]\n");
    nk.wait(5.0).expect_code(0).expect_stdout(b"");
}

/// `nk dial -c/-e` against a server that sends `data`, half-closes, and reads until EOF.
fn check_dial_program(args: &[&str]) {
    let data = prng_bytes(MIB, 0xd1a1_0000 + args.len() as u64);
    let sent = data.clone();
    let server = Server::start(move |s, _| echo_exchange(s, sent, 10.0));
    let port = server.port().to_string();
    let mut full = vec!["dial"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["127.0.0.1", &port]);
    let out = run_nk(&full, In::Null, 20.0);
    let (back, eof) = server.join();
    out.expect_code(0).expect_stdout(b"");
    assert!(
        eof,
        "nk dial {args:?}: the server never saw EOF\n{}",
        out.describe()
    );
    assert_same_bytes(&format!("nk dial {args:?} echo"), &back, &data);
}

#[test]
fn dial_c_cat_echoes_the_server() {
    check_dial_program(&["-c", "cat"]);
}

#[test]
fn dial_e_cat_echoes_the_server() {
    check_dial_program(&["-e", "/bin/cat"]);
}

// ---------------------------------------------------------------------------
// 4. -m: connections past the limit are closed at once
// ---------------------------------------------------------------------------

/// Sends `tag` and expects it echoed within 5 s.
fn assert_echo(s: &mut TcpStream, tag: &str, nk: &Proc) {
    s.write_all(tag.as_bytes())
        .unwrap_or_else(|e| panic!("send {tag:?}: {e}\n{}", nk.stderr_so_far()));
    let got = read_n(s, tag.len(), 5.0);
    assert_eq!(
        String::from_utf8_lossy(&got),
        tag,
        "no echo\n{}",
        nk.stderr_so_far()
    );
}

/// An interactive program: each line goes to it as it arrives, not at the client's EOF.
#[test]
fn exec_program_gets_input_as_it_arrives() {
    let (nk, port) = listen(
        &["-k", "-e", "/bin/cat", "127.0.0.1:0"],
        In::Null,
        Out::Pipe,
    );
    let mut s = connect_local(port);
    for round in 0..3 {
        assert_echo(&mut s, &format!("round {round}\n"), &nk);
    }
    let (back, eof) = echo_exchange(s, b"last\n".to_vec(), 5.0);
    assert!(back == b"last\n" && eof, "got {back:?} eof={eof}");
    terminate(nk).expect_stdout(b"");
}

#[test]
fn max_conns_serves_five_and_closes_the_rest_at_once() {
    // A served client is greeted at once (no input needed), then echoed.
    let (mut nk, port) = listen(
        &[
            "-k",
            "-m",
            "5",
            "-c",
            "echo served $NK_CONN_SEQ; exec cat",
            "127.0.0.1:0",
        ],
        In::Null,
        Out::Pipe,
    );
    let mut served = Vec::new();
    for i in 1..=5 {
        let mut s = connect_local(port);
        let greeting = format!("served {i}\n");
        let got = read_n(&mut s, greeting.len(), 5.0);
        assert_eq!(
            String::from_utf8_lossy(&got),
            greeting,
            "client {i} of the first five was not served\n{}",
            nk.stderr_so_far()
        );
        served.push(s);
    }
    for i in 6..=10 {
        let mut s = connect_local(port);
        let (got, eof) = read_until_eof(&mut s, 5.0);
        assert!(
            got.is_empty() && eof,
            "client {i} over -m 5: expected EOF without data, got {:?} eof={eof}\n{}",
            String::from_utf8_lossy(&got),
            nk.stderr_so_far()
        );
    }
    nk.wait_stderr_line(5.0, |l| l.starts_with("nk: refused"));
    // The five were kept: each still gets its data echoed (sent with a half-close).
    for (i, s) in served.into_iter().enumerate() {
        let msg = format!("still served {}\n", i + 1);
        let (back, eof) = echo_exchange(s, msg.clone().into_bytes(), 5.0);
        assert!(
            back == msg.as_bytes() && eof,
            "client {}: expected {msg:?} back and EOF, got {:?} eof={eof}\n{}",
            i + 1,
            String::from_utf8_lossy(&back),
            nk.stderr_so_far()
        );
    }
    // Their places are free again: a newcomer is served once nk has seen them go.
    let got_in = wait_until(10.0, || {
        let mut s = connect_local(port);
        read_n(&mut s, 7, 5.0) == b"served "
    });
    assert!(
        got_in,
        "no new client was served after the five left\n{}",
        nk.stderr_so_far()
    );
    terminate(nk).expect_stdout(b"");
}

/// `ncat -lk -m 1` (Nmap's Ncat test suite, "--max-conns 1 --keep-open"): a client that
/// closes leaves and frees its place, even after stdin has sent it something. nk used to keep
/// such a client until stdin's EOF, so the next one was refused for as long as stdin was open.
fn check_closed_client_frees_its_place(mode: &str) {
    let (mut nk, port) = listen(&[mode, "-m", "1", "127.0.0.1:0"], In::Pipe, Out::Pipe);
    let mut first = connect_local(port);
    nk.wait_stderr_line(5.0, |l| l.contains("connection from"));
    write_stdin(&mut nk, b"hello\n");
    let got = read_n(&mut first, 6, 5.0);
    assert_eq!(
        got, b"hello\n",
        "{mode}: stdin did not reach the first client"
    );
    drop(first);
    nk.wait_stderr_line(5.0, |l| l.contains("connection #1 closed"));
    let mut second = connect_local(port);
    second.write_all(b"second\n").expect("send");
    nk.wait_stdout_line(5.0, |l| l == "second");
    terminate(nk);
}

#[test]
fn keep_open_client_that_closes_frees_its_max_conns_place() {
    check_closed_client_frees_its_place("-k");
}

#[test]
fn broker_client_that_closes_frees_its_max_conns_place() {
    check_closed_client_frees_its_place("--broker");
}

// ---------------------------------------------------------------------------
// 5. --allow / --deny / --allowfile / --denyfile
// ---------------------------------------------------------------------------

/// Every loopback peer is denied: EOF, no byte either way.
fn check_all_denied(acl: &[&str]) {
    let mut args = vec!["-k"];
    args.extend_from_slice(acl);
    args.push("127.0.0.1:0");
    let (mut nk, port) = listen(&args, In::Pipe, Out::Pipe);
    // Input waiting before the client comes must not reach it.
    let mut stdin = nk.stdin.take().expect("stdin");
    stdin.write_all(b"from-stdin\n").unwrap();
    stdin.flush().unwrap();

    let mut quiet = connect_local(port);
    let (got, eof) = read_until_eof(&mut quiet, 5.0);
    assert!(
        got.is_empty() && eof,
        "{acl:?}: denied client: expected EOF without data, got {:?} eof={eof}\n{}",
        String::from_utf8_lossy(&got),
        nk.stderr_so_far()
    );
    // A denied client that talks at once: nothing reaches stdout (EOF or reset, no data).
    let mut talker = connect_local(port);
    let _ = talker.write_all(b"from-denied-client\n");
    let (got, _) = read_until_eof(&mut talker, 5.0);
    assert!(got.is_empty(), "{acl:?}: denied client received {got:?}");
    drop((quiet, talker));
    let out = terminate(nk);
    drop(stdin);
    out.expect_stdout(b"");
}

/// Only 127.0.0.2 may connect: it is served both ways; 127.0.0.1 is closed untouched.
fn check_only_127_0_0_2_allowed(acl: &[&str]) {
    let mut args = vec!["-k"];
    args.extend_from_slice(acl);
    args.push("127.0.0.1:0");
    let (mut nk, port) = listen(&args, In::Pipe, Out::Pipe);
    let mut stdin = nk.stdin.take().expect("stdin");

    let mut one = connect_local(port); // accepted (and refused) before `two`
    let mut two = connect_from("127.0.0.2", port);
    two.write_all(b"from-two\n").unwrap();
    nk.wait_stdout_line(5.0, |l| l == "from-two");
    stdin.write_all(b"to-clients\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_n(&mut two, 11, 5.0)),
        "to-clients\n",
        "{acl:?}: the allowed client did not get stdin\n{}",
        nk.stderr_so_far()
    );
    let (got, eof) = read_until_eof(&mut one, 5.0);
    assert!(
        got.is_empty() && eof,
        "{acl:?}: client from 127.0.0.1: expected EOF without data, got {:?} eof={eof}",
        String::from_utf8_lossy(&got)
    );
    drop((one, two));
    let out = terminate(nk);
    drop(stdin);
    out.expect_stdout(b"from-two\n");
}

#[test]
fn deny_cidr_closes_before_a_byte_moves() {
    check_all_denied(&["--deny", "127.0.0.0/8"]);
}

#[test]
fn allow_one_address_refuses_the_others() {
    check_only_127_0_0_2_allowed(&["--allow", "127.0.0.2"]);
}

#[test]
fn denyfile_and_allowfile_with_comments() {
    let dir = tempfile::tempdir().unwrap();
    let deny = dir.path().join("deny.txt");
    std::fs::write(&deny, "# every loopback client\n127.0.0.0/8\n").unwrap();
    check_all_denied(&["--denyfile", deny.to_str().unwrap()]);

    let allow = dir.path().join("allow.txt");
    std::fs::write(&allow, "# the second loopback address only\n127.0.0.2\n").unwrap();
    check_only_127_0_0_2_allowed(&["--allowfile", allow.to_str().unwrap()]);
}

/// An allow list that came out empty (a file of comments) admits nobody, as ncat's does, and
/// -v says so at start; `--allow A,B` is a list; `--deny ::ffff:127.0.0.1` denies the IPv4
/// client 127.0.0.1; an unreadable list file is a usage error before any traffic.
#[test]
fn an_empty_allowfile_fails_closed_and_lists_take_commas() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("allow.txt");
    std::fs::write(&empty, "# nobody yet\n\n").unwrap();
    check_all_denied(&["--allowfile", empty.to_str().unwrap()]);
    let (nk, _) = listen(
        &["--allowfile", empty.to_str().unwrap(), "127.0.0.1:0"],
        In::Null,
        Out::Null,
    );
    let said = nk.stderr_so_far();
    terminate(nk);
    assert!(said.contains("the allow list is empty"), "{said}");

    check_only_127_0_0_2_allowed(&["--allow", "10.0.0.0/8,127.0.0.2"]);
    check_all_denied(&["--deny", "::ffff:127.0.0.1"]);
    let out = run_nk(
        [
            "listen",
            "--allowfile",
            "/nonexistent/allow.txt",
            "127.0.0.1:0",
        ],
        In::Null,
        10.0,
    );
    out.expect_code(2)
        .expect_stderr_contains("/nonexistent/allow.txt");
    let out = run_nk(
        ["listen", "-x", "/nonexistent/dir/dump", "127.0.0.1:0"],
        In::Null,
        10.0,
    );
    out.expect_code(2).expect_stderr_contains("hex dump file");
}

// ---------------------------------------------------------------------------
// 6. --broker and --chat
// ---------------------------------------------------------------------------

/// Connects a client and waits for nk -v to report its connection.
fn join(nk: &mut Proc, name: &str, port: u16) -> LineClient {
    let c = LineClient::connect(name, port);
    let peer = format!("127.0.0.1:{}", c.local_port());
    nk.wait_stderr_line(5.0, |l| {
        l.starts_with("nk: connection from") && l.contains(&peer)
    });
    c
}

#[test]
fn broker_relays_each_client_to_the_others_only() {
    let (mut nk, port) = listen(&["--broker", "127.0.0.1:0"], In::Null, Out::Pipe);
    let mut a = join(&mut nk, "A", port);
    let mut b = join(&mut nk, "B", port);
    // Clients join the broker as they are accepted: B's first line reaches A at once.
    b.send("hello from B\n");
    a.wait_line(5.0, "B's hello", |l| l == "hello from B");
    let mut c = join(&mut nk, "C", port);
    c.send("hello from C\n");
    a.wait_line(5.0, "C's hello", |l| l == "hello from C");
    b.wait_line(5.0, "C's hello", |l| l == "hello from C");

    a.send("message from A\n");
    b.send("message from B\n");
    c.send("message from C\n");
    for (me, others) in [
        (&mut a, ["B", "C"]),
        (&mut b, ["A", "C"]),
        (&mut c, ["A", "B"]),
    ] {
        let wants: Vec<String> = others.iter().map(|o| format!("message from {o}")).collect();
        me.wait_all(5.0, &wants);
    }
    // A last round in turn, so anything echoed back to its sender has arrived by now.
    for name in ["A", "B", "C"] {
        let msg = format!("end from {name}");
        let clients = [&mut a, &mut b, &mut c];
        let (senders, receivers): (Vec<_>, Vec<_>) =
            clients.into_iter().partition(|cl| cl.name == name);
        for s in senders {
            s.send(&format!("{msg}\n"));
        }
        for r in receivers {
            r.wait_line(5.0, &msg, |l| l == msg);
        }
    }
    for cl in [&a, &b, &c] {
        let own = format!("from {}", cl.name);
        assert!(
            !cl.seen.iter().any(|l| l.ends_with(&own)),
            "{} got its own message back: {:?}",
            cl.name,
            cl.seen
        );
        let foreign: Vec<&String> = cl
            .seen
            .iter()
            .filter(|l| {
                let mut w = l.split(' ');
                !(matches!(w.next(), Some("hello" | "message" | "end"))
                    && w.next() == Some("from")
                    && matches!(w.next(), Some("A" | "B" | "C"))
                    && w.next().is_none())
            })
            .collect();
        assert!(foreign.is_empty(), "{}: garbled lines {foreign:?}", cl.name);
    }
    drop((a, b, c));
    let out = terminate(nk);
    // The operator's stdout shows every client's lines, each whole, once.
    let mut shown: Vec<String> = out.stdout_text().lines().map(String::from).collect();
    shown.sort();
    let mut sent: Vec<String> = ["hello from B", "hello from C"]
        .into_iter()
        .map(String::from)
        .chain(
            ["message", "end"]
                .iter()
                .flat_map(|kind| ["A", "B", "C"].map(move |who| format!("{kind} from {who}"))),
        )
        .collect();
    sent.sort();
    assert_eq!(shown, sent);
}

/// A notice (`<announce>`) that names `<user N>`.
fn announces(line: &str, n: u64) -> bool {
    line.contains("<announce>") && line.contains(&format!("<user {n}>"))
}

#[test]
fn chat_prefixes_users_announces_joins_and_escapes_control_bytes() {
    let (mut nk, port) = listen(&["--chat", "127.0.0.1:0"], In::Null, Out::Pipe);
    let mut one = join(&mut nk, "user 1", port);
    let mut two = LineClient::connect("user 2", port);
    one.wait_line(5.0, "user 2's join notice", |l| announces(l, 2));

    two.send("hi \x1b[31mred\x07 there\tnow\n");
    let line = one.wait_line(5.0, "user 2's message", |l| !l.contains("<announce>"));
    assert_eq!(line, "<user 2> hi \\x1b[31mred\\x07 there\tnow");

    one.send("hello two\n");
    let line = two.wait_line(5.0, "user 1's message", |l| !l.contains("<announce>"));
    assert_eq!(line, "<user 1> hello two");

    let mut three = join(&mut nk, "user 3", port);
    one.wait_line(5.0, "user 3's join notice", |l| announces(l, 3));
    two.wait_line(5.0, "user 3's join notice", |l| announces(l, 3));
    three.send("third\n");
    assert_eq!(
        one.wait_line(5.0, "user 3's message", |l| !l.contains("<announce>")),
        "<user 3> third"
    );
    assert_eq!(
        two.wait_line(5.0, "user 3's message", |l| !l.contains("<announce>")),
        "<user 3> third"
    );

    drop(three);
    one.wait_line(5.0, "user 3's leave notice", |l| announces(l, 3));
    two.wait_line(5.0, "user 3's leave notice", |l| announces(l, 3));
    for cl in [&one, &two] {
        let own = format!("<{}>", cl.name);
        assert!(
            !cl.seen.iter().any(|l| l.starts_with(&own)),
            "{} got its own message back: {:?}",
            cl.name,
            cl.seen
        );
    }
    drop((one, two));
    terminate(nk)
        .expect_stdout_contains("<user 2> hi \\x1b[31mred\\x07 there\tnow\n<user 1> hello two\n");
}

/// `ncat ARGS` (nmap's ncat, the reference for --broker and --chat).
fn ncat(args: &[&str], stdin: In, stdout: Out) -> Proc {
    require_tool("ncat", "ncat");
    let mut c = Command::new("ncat");
    c.args(args);
    Proc::spawn(&format!("ncat {}", args.join(" ")), c, stdin, stdout)
}

/// Connects a client and waits for the server's `-v` line about it (nk: `nk: connection from
/// 127.0.0.1:P (#N)`, ncat: `Ncat: Connection from 127.0.0.1:P.`).
fn join_any(server: &mut Proc, name: &str, port: u16) -> LineClient {
    let c = LineClient::connect(name, port);
    let from = format!("onnection from 127.0.0.1:{}", c.local_port());
    server.wait_stderr_line(5.0, |l| l.contains(&from));
    c
}

/// Writes `text` to the server's stdin (a pipe).
fn operator_says(server: &mut Proc, text: &str) {
    let stdin = server.stdin.as_mut().expect("stdin is a pipe");
    stdin
        .write_all(text.as_bytes())
        .expect("write the server's stdin");
    stdin.flush().expect("flush the server's stdin");
}

/// The operator of a broker (its stdin, a pipe): stdin is not read before a client is there,
/// then goes to every client; a client's data goes to the other clients. Returns the lines
/// clients A and B saw (`prefix` is how the server marks the operator's lines in chat).
fn broker_operator_round(server: &mut Proc, port: u16, chat: bool) -> (Vec<String>, Vec<String>) {
    let mine = |l: &str| !l.starts_with("<announce>");
    // Written while nobody is connected: it waits in the pipe for the first client.
    operator_says(server, "early line\n");
    let mut a = join_any(server, "A", port);
    a.wait_line(5.0, "the early line", |l| l.ends_with("early line"));
    let mut b = join_any(server, "B", port);
    operator_says(server, "operator says hi\n");
    a.wait_line(5.0, "the operator's line", |l| {
        l.ends_with("operator says hi")
    });
    b.wait_line(5.0, "the operator's line", |l| {
        l.ends_with("operator says hi")
    });
    a.send("from A\n");
    b.wait_line(5.0, "A's line", |l| l.ends_with("from A"));
    // A sees nothing of its own; a last line from B closes the round.
    b.send("from B\n");
    a.wait_line(5.0, "B's line", |l| l.ends_with("from B"));
    let keep = |c: &LineClient| -> Vec<String> {
        c.seen
            .iter()
            .filter(|l| !chat || mine(l))
            .cloned()
            .collect()
    };
    (keep(&a), keep(&b))
}

#[test]
fn broker_operator_stdin_reaches_clients_and_stdout_shows_them_as_ncat() {
    let (mut nk, port) = listen(&["--broker", "127.0.0.1:0"], In::Pipe, Out::Pipe);
    let (a, b) = broker_operator_round(&mut nk, port, false);
    assert_eq!(a, ["early line", "operator says hi", "from B"]);
    assert_eq!(b, ["operator says hi", "from A"]);
    // The operator watches: both clients' lines, whole (ncat shows nothing there).
    nk.wait_stdout_line(5.0, |l| l == "from B");
    assert_eq!(nk.stdout_so_far(), b"from A\nfrom B\n");
    terminate(nk);

    // ncat --broker: the clients see the same.
    let port = free_port("127.0.0.1");
    let mut reference = ncat(
        &["-v", "--broker", "-l", "127.0.0.1", &port.to_string()],
        In::Pipe,
        Out::Pipe,
    );
    reference.wait_stderr_line(10.0, |l| l.contains("Listening on"));
    let (ncat_a, ncat_b) = broker_operator_round(&mut reference, port, false);
    assert_eq!((ncat_a, ncat_b), (a, b), "nk and ncat --broker differ");
}

#[test]
fn chat_operator_speaks_as_user_0_and_watches_as_ncat() {
    let (mut nk, port) = listen(&["--chat", "127.0.0.1:0"], In::Pipe, Out::Pipe);
    let (a, b) = broker_operator_round(&mut nk, port, true);
    assert_eq!(
        a,
        [
            "<user 0> early line",
            "<user 0> operator says hi",
            "<user 2> from B"
        ]
    );
    assert_eq!(b, ["<user 0> operator says hi", "<user 1> from A"]);
    nk.wait_stdout_line(5.0, |l| l == "<user 2> from B");
    let shown = String::from_utf8(nk.stdout_so_far()).unwrap();
    let said: Vec<&str> = shown
        .lines()
        .filter(|l| !l.starts_with("<announce>"))
        .collect();
    assert_eq!(said, ["<user 1> from A", "<user 2> from B"], "{shown}");
    assert!(shown.contains("is connected as <user 2>."), "{shown}");
    terminate(nk);

    // ncat --chat: the operator is <user0> (its stdin's descriptor), clients likewise.
    let port = free_port("127.0.0.1");
    let mut reference = ncat(
        &["-v", "--chat", "-l", "127.0.0.1", &port.to_string()],
        In::Pipe,
        Out::Pipe,
    );
    reference.wait_stderr_line(10.0, |l| l.contains("Listening on"));
    let (ncat_a, _) = broker_operator_round(&mut reference, port, true);
    assert_eq!(
        ncat_a[..2],
        ["<user0> early line", "<user0> operator says hi"]
    );
}

#[test]
fn broker_recv_only_operator_watches_send_only_operator_talks() {
    // --recv-only: stdin is never read; clients still talk, and stdout shows them.
    let (mut nk, port) = listen(
        &["--broker", "--recv-only", "127.0.0.1:0"],
        In::Pipe,
        Out::Pipe,
    );
    operator_says(&mut nk, "not to be sent\n");
    let mut a = join(&mut nk, "A", port);
    let mut b = join(&mut nk, "B", port);
    a.send("from A\n");
    b.wait_line(5.0, "A's line", |l| l == "from A");
    b.send("from B\n");
    a.wait_line(5.0, "B's line", |l| l == "from B");
    nk.wait_stdout_line(5.0, |l| l == "from B");
    assert_eq!(a.seen, ["from B"]);
    assert_eq!(b.seen, ["from A"]);
    assert_eq!(nk.stdout_so_far(), b"from A\nfrom B\n");
    terminate(nk);

    // --send-only: stdin goes to the clients; stdout stays empty; clients still talk.
    let (mut nk, port) = listen(
        &["--broker", "--send-only", "127.0.0.1:0"],
        In::Pipe,
        Out::Pipe,
    );
    let mut a = join(&mut nk, "A", port);
    let mut b = join(&mut nk, "B", port);
    operator_says(&mut nk, "operator line\n");
    a.wait_line(5.0, "the operator's line", |l| l == "operator line");
    b.wait_line(5.0, "the operator's line", |l| l == "operator line");
    a.send("from A\n");
    b.wait_line(5.0, "A's line", |l| l == "from A");
    terminate(nk).expect_stdout(b"");
}

// ---------------------------------------------------------------------------
// 7. descriptor exhaustion: no exit, no spin, service resumes
// ---------------------------------------------------------------------------

#[test]
fn fd_exhaustion_neither_ends_nor_spins_the_server() {
    const CLIENTS: usize = 100;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 64 || exit 99; exec \"$0\" listen -k -v 127.0.0.1:0")
        .arg(NK)
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE");
    let mut nk = Proc::spawn(
        "sh -c 'ulimit -n 64; exec nk listen -k -v 127.0.0.1:0'",
        cmd,
        In::Null,
        Out::Pipe,
    );
    let port = nk.nk_listening_port();
    let pid = nk.pid();

    let mut conns = Vec::new();
    for i in 0..CLIENTS {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .and_then(|mut s| {
                s.write_all(format!("fd-client-{i:03}\n").as_bytes())?;
                Ok(s)
            })
            .unwrap_or_else(|e| panic!("client {i}: connect {addr}: {e}\n{}", nk.stderr_so_far()));
        conns.push(s);
    }
    // nk has taken what its 64 descriptors allow (each accepted client's line is out) ...
    let mut lines = HashSet::new();
    while lines.len() < 20 {
        lines.insert(nk.wait_stdout_line(15.0, |l| l.starts_with("fd-client-")));
    }
    // ... and the rest wait in the backlog, the listening socket readable all along.
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(1));
    let cpu = cpu_seconds(pid) - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    assert!(
        nk.is_running(),
        "nk ended at descriptor exhaustion\n{}",
        nk.stderr_so_far()
    );
    assert!(
        cpu < 0.3 * wall,
        "nk used {cpu:.2}s of CPU in {wall:.2}s while out of descriptors (an accept spin?)\n{}",
        nk.stderr_so_far()
    );
    let accepted = String::from_utf8_lossy(&nk.stdout_so_far())
        .lines()
        .filter(|l| l.starts_with("fd-client-"))
        .count();
    assert!(
        accepted < CLIENTS,
        "test setup: nk served all {CLIENTS} clients under `ulimit -n 64`; no exhaustion happened"
    );

    drop(conns);
    let mut s = connect_local(port);
    s.write_all(b"after-exhaustion\n").unwrap();
    nk.wait_stdout_line(15.0, |l| l == "after-exhaustion");
    // The EOF comes from stdin's: when the stdin thread made its duplicate of fd 0 only once
    // the clients had taken every descriptor, that failed (EMFILE, "read stdin: Too many open
    // files") and no client ever got an EOF. This failed in CI twice before the fix.
    let (_, eof) = read_until_eof(&mut s, 15.0);
    assert!(
        eof,
        "the client after exhaustion saw no EOF within 15 s (stdin is /dev/null)\n{}",
        nk.stderr_so_far()
    );
    drop(s);
    terminate(nk);
}

// ---------------------------------------------------------------------------
// 8. slowloris: -i closes silent connections, others are served meanwhile
// ---------------------------------------------------------------------------

#[test]
fn idle_timeout_drops_500_silent_connections_and_serves_others() {
    const SILENT: usize = 500;
    // stdin stays open (and silent): no half-close, only -i can end a connection.
    let (mut nk, port) = listen(&["-k", "-i", "1", "127.0.0.1:0"], In::Pipe, Out::Pipe);
    let silent: Vec<TcpStream> = (0..SILENT).map(|_| connect_local(port)).collect();

    let mut normal = connect_local(port);
    normal.write_all(b"normal client\n").unwrap();
    nk.wait_stdout_line(5.0, |l| l == "normal client");

    let deadline = Instant::now() + Duration::from_secs(8);
    let mut open = 0;
    for mut s in silent {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        s.set_read_timeout(Some(left)).unwrap();
        let mut b = [0u8; 16];
        match s.read(&mut b) {
            Ok(0) => {}
            Ok(n) => panic!("a silent client received {:?}", &b[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                open += 1
            }
            Err(_) => {} // reset: closed too
        }
    }
    assert_eq!(
        open,
        0,
        "{open} of {SILENT} silent connections still open 8 s later with -i 1\n{}",
        nk.stderr_so_far()
    );
    let (_, eof) = read_until_eof(&mut normal, 5.0);
    assert!(
        eof,
        "the normal client, idle afterwards, was not closed by -i 1"
    );

    assert!(nk.is_running(), "nk ended\n{}", nk.stderr_so_far());
    let mut later = connect_local(port);
    later.write_all(b"later client\n").unwrap();
    nk.wait_stdout_line(5.0, |l| l == "later client");
    drop(later);
    terminate(nk);
}

// ---------------------------------------------------------------------------
// 9. SIGTERM / SIGINT with clients and programs running
// ---------------------------------------------------------------------------

/// Starts nk with `args`, connects `n` clients (each reads `greeting` first, when given),
/// waits until `programs` live descendants run, sends `sig`, and checks: exit `code`, every
/// client sees EOF, every descendant (grandchildren included) is gone.
fn check_signal_ends_everything(
    args: &[&str],
    n: usize,
    greeting: Option<&str>,
    programs: usize,
    sig: &str,
    code: i32,
) {
    let (nk, port) = listen(args, In::Null, Out::Pipe);
    let pid = nk.pid();
    let mut clients: Vec<TcpStream> = (0..n).map(|_| connect_local(port)).collect();
    if let Some(greeting) = greeting {
        for (i, s) in clients.iter_mut().enumerate() {
            let got = read_n(s, greeting.len(), 5.0);
            assert_eq!(
                String::from_utf8_lossy(&got),
                greeting,
                "client {i}: no greeting\n{}",
                nk.stderr_so_far()
            );
        }
    }
    let mut kids = Vec::new();
    let all_up = wait_until(10.0, || {
        kids = descendants(pid);
        kids.len() >= programs
    });
    assert!(
        all_up,
        "{args:?}: {} of {programs} programs running\n{}",
        kids.len(),
        nk.stderr_so_far()
    );
    send_signal(pid, sig);
    let out = nk.wait(10.0);
    out.expect_code(code).expect_stdout(b"");
    for (i, s) in clients.iter_mut().enumerate() {
        let (got, eof) = read_until_eof(s, 5.0);
        assert!(
            eof && got.is_empty(),
            "{args:?} SIG{sig}: client {i}: expected EOF, got {} bytes, eof={eof}\n{}",
            got.len(),
            out.describe()
        );
    }
    let gone = wait_until(5.0, || kids.iter().all(|&k| !process_alive(k)));
    let left: Vec<u32> = kids.iter().copied().filter(|&k| process_alive(k)).collect();
    assert!(
        gone,
        "{args:?} SIG{sig}: programs still running after nk exited: {left:?}\n{}",
        out.describe()
    );
}

#[test]
fn sigterm_closes_clients_and_kills_exec_programs() {
    check_signal_ends_everything(
        &["-k", "-e", "/bin/sleep 60", "127.0.0.1:0"],
        3,
        None,
        3,
        "TERM",
        143,
    );
}

#[test]
fn sigint_closes_clients_and_kills_shell_programs() {
    // `cat` is not the shell's last command, so it runs as a grandchild: it must go too.
    check_signal_ends_everything(
        &["-k", "-c", "echo up; cat; echo never", "127.0.0.1:0"],
        2,
        Some("up\n"),
        4,
        "INT",
        130,
    );
}

#[test]
fn sigterm_closes_plain_keep_open_clients() {
    // No programs: stdin stays open so the clients are not half-closed before the signal.
    let (nk, port) = listen(&["-k", "127.0.0.1:0"], In::Pipe, Out::Pipe);
    let mut a = connect_local(port);
    let mut b = connect_local(port);
    a.write_all(b"a\n").unwrap();
    b.write_all(b"b\n").unwrap();
    let mut nk = nk;
    let mut seen = HashSet::new();
    while seen.len() < 2 {
        seen.insert(nk.wait_stdout_line(5.0, |l| l == "a" || l == "b"));
    }
    let out = terminate(nk);
    for (name, s) in [("a", &mut a), ("b", &mut b)] {
        let (got, eof) = read_until_eof(s, 5.0);
        assert!(
            eof && got.is_empty(),
            "client {name}: expected EOF after SIGTERM, got {got:?} eof={eof}\n{}",
            out.describe()
        );
    }
}
