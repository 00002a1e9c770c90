//! Proxies as a client (`--proxy`, nc's `-X/-x`, ncat's `--proxy-type`, curl's `-x` and
//! environment) against real proxies on loopback: tinyproxy (HTTP CONNECT, with and without
//! Basic auth), dante (`danted`, SOCKS4 and SOCKS5), microsocks (SOCKS5 with RFC 1929
//! username/password), ncat as an HTTPS proxy (`ncat -l --ssl --proxy-type http`), chains of
//! two and three of them; and proxies in threads here for what a real one will not do on
//! demand: close mid-handshake, answer garbage, stay silent, pipeline the target's bytes right
//! after its reply, and SOCKS4a (dante 1.4 does not implement it: it connects to 0.0.0.1).
//!
//! The daemons run unprivileged (as nobody when the tests run as root), with their
//! configuration in a temp dir, on a port that was free a moment ago; they are ready once the
//! port accepts (bounded wait). Every nk run is bounded by `run_nk`.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------
// the daemons
// ---------------------------------------------------------------------------

/// A proxy daemon, killed on drop (with its temp dir).
struct Daemon {
    port: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

/// A temp dir every user can read (the daemons run as nobody under root).
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// `argv` as nobody when we are root (setpriv), as ourselves otherwise.
fn unprivileged(argv: &[String]) -> Command {
    let root = real_uid() == 0;
    if root {
        require_tool("setpriv", "util-linux");
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        cmd.args(argv);
        cmd
    } else {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }
}

/// The real uid, from /proc (no libc in the tests).
fn real_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .expect("Uid: line")
}

/// Starts `argv(port)` on a port that was free a moment ago (3 tries), ready once it accepts.
fn daemon(name: &str, dir: tempfile::TempDir, argv: impl Fn(u16, &Path) -> Vec<String>) -> Daemon {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port("127.0.0.1");
        let args = argv(port, dir.path());
        require_tool(&args[0], name);
        let mut p = Proc::spawn(name, unprivileged(&args), In::Null, Out::Pipe);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Daemon {
                    port,
                    _proc: p,
                    _dir: dir,
                };
            }
            if !p.is_running() || Instant::now() >= deadline {
                last = p.stderr_so_far();
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    panic!("{name} did not start: {last}");
}

/// tinyproxy, with Basic auth when `auth` is given; its Via header left on (the origin sees
/// the request came through it).
fn tinyproxy(auth: Option<(&str, &str)>) -> Daemon {
    let dir = open_tempdir();
    let auth_line = auth
        .map(|(u, p)| format!("BasicAuth {u} {p}\n"))
        .unwrap_or_default();
    daemon("tinyproxy", dir, move |port, d| {
        let conf = d.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 50\nLogLevel Error\n\
                 Allow 127.0.0.1\n{auth_line}"
            ),
        )
        .expect("write tinyproxy.conf");
        vec![
            "tinyproxy".into(),
            "-d".into(),
            "-c".into(),
            conf.display().to_string(),
        ]
    })
}

/// danted, SOCKS4 and SOCKS5 without authentication, connecting out from 127.0.0.1.
fn danted() -> Daemon {
    let dir = open_tempdir();
    daemon("dante-server", dir, |port, d| {
        let conf = d.join("danted.conf");
        std::fs::write(
            &conf,
            format!(
                "logoutput: stderr\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
                 socksmethod: none\nclientmethod: none\n\
                 client pass {{\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n}}\n\
                 socks pass {{\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  command: connect\n}}\n"
            ),
        )
        .expect("write danted.conf");
        vec![
            "danted".into(),
            "-f".into(),
            conf.display().to_string(),
            "-N".into(),
            "1".into(),
            "-p".into(),
            d.join("danted.pid").display().to_string(),
        ]
    })
}

/// microsocks (SOCKS5), with username/password when `auth` is given.
fn microsocks(auth: Option<(&str, &str)>) -> Daemon {
    let dir = open_tempdir();
    let auth: Option<(String, String)> = auth.map(|(u, p)| (u.into(), p.into()));
    daemon("microsocks", dir, move |port, _| {
        let mut argv: Vec<String> = vec![
            "microsocks".into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        if let Some((u, p)) = &auth {
            argv.extend(["-u".into(), u.clone(), "-P".into(), p.clone()]);
        }
        argv
    })
}

// ---------------------------------------------------------------------------
// targets
// ---------------------------------------------------------------------------

/// A target that sends `greeting`, then reads everything until EOF and returns it.
fn greeting_target(greeting: &'static [u8]) -> Server<Vec<u8>> {
    Server::start(move |mut s, _| {
        s.write_all(greeting).expect("greet");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        got
    })
}

/// A target that echoes everything back, then closes.
fn echo_target() -> Server<()> {
    Server::start(|s, _| {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut reader = s.try_clone().expect("clone");
        let mut writer = s;
        let _ = std::io::copy(&mut reader, &mut writer);
        let _ = writer.shutdown(Shutdown::Write);
    })
}

/// `nk dial -v --proxy P... EXTRA... 127.0.0.1 PORT`.
fn dial_args(proxies: &[&str], extra: &[&str], port: u16) -> Vec<String> {
    let mut args = vec!["dial".to_string(), "-v".into()];
    for p in proxies {
        args.push("--proxy".into());
        args.push(p.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("127.0.0.1".into());
    args.push(port.to_string());
    args
}

fn dial_via(proxies: &[&str], extra: &[&str], port: u16, stdin: In) -> Finished {
    run_nk(dial_args(proxies, extra, port), stdin, 20.0)
}

/// One byte-exact exchange with a greeting target through `proxies`. stdin ends only once
/// the greeting has arrived: tinyproxy and microsocks end the whole tunnel at a half-close.
fn exchange_through(proxies: &[&str], extra: &[&str]) -> Finished {
    let target = greeting_target(b"hello from the target\n");
    let args = dial_args(proxies, extra, target.port());
    let mut p = Proc::nk(&args, In::Pipe, Out::Pipe);
    p.stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"hello from nk\n")
        .expect("write stdin");
    p.wait_stdout_line(15.0, |l| l == "hello from the target");
    drop(p.stdin.take());
    let out = p.wait(15.0);
    out.expect_code(0).expect_stdout(b"hello from the target\n");
    assert_eq!(target.join(), b"hello from nk\n", "{}", out.describe());
    out
}

// ---------------------------------------------------------------------------
// real proxies
// ---------------------------------------------------------------------------

#[test]
fn dial_through_tinyproxy_connect() {
    let proxy = tinyproxy(None);
    let out = exchange_through(&[&proxy.url("http")], &[]);
    out.expect_stderr_contains(&format!(
        "proxy http://127.0.0.1:{}: tunnel to 127.0.0.1:",
        proxy.port
    ));
}

#[test]
fn dial_through_tinyproxy_with_basic_auth() {
    let proxy = tinyproxy(Some(("alice", "s3cret")));
    let url = format!("http://alice:s3cret@127.0.0.1:{}", proxy.port);
    exchange_through(&[&url], &[]);
    // --proxy-auth gives the same credentials to a URL without them (ncat's spelling).
    exchange_through(
        &[&format!("127.0.0.1:{}", proxy.port)],
        &["--proxy-type", "http", "--proxy-auth", "alice:s3cret"],
    );

    let out = dial_via(&[&proxy.url("http")], &[], 9, In::Null);
    out.expect_code(1)
        .expect_stderr_contains("authentication required: the proxy answered HTTP/1.")
        .expect_stderr_contains("407")
        .expect_stderr_contains("hint: give --proxy-auth");
    let bad = format!("http://alice:wrong@127.0.0.1:{}", proxy.port);
    let out = dial_via(&[&bad], &[], 9, In::Null);
    out.expect_code(1)
        .expect_stderr_contains(&format!(
            "through proxy http://alice@127.0.0.1:{}: authentication failed: the proxy answered HTTP/1.",
            proxy.port
        ));
    assert!(
        !out.stderr.contains("wrong"),
        "the password is never shown\n{}",
        out.describe()
    );
}

#[test]
fn dial_through_danted_socks5_and_socks4() {
    let proxy = danted();
    exchange_through(&[&proxy.url("socks5")], &[]);
    exchange_through(&[&proxy.url("socks5h")], &[]);
    exchange_through(&[&proxy.url("socks4")], &[]);
}

#[test]
fn dial_through_microsocks_with_username_and_password() {
    let proxy = microsocks(Some(("bob", "pw")));
    exchange_through(&[&format!("socks5://bob:pw@127.0.0.1:{}", proxy.port)], &[]);
    exchange_through(&[&proxy.url("socks5")], &["--proxy-auth", "bob:pw"]);

    let out = dial_via(
        &[&format!("socks5://bob:nope@127.0.0.1:{}", proxy.port)],
        &[],
        9,
        In::Null,
    );
    out.expect_code(1).expect_stderr_contains(
        "authentication failed: the proxy refused the username and password (RFC 1929 status",
    );
    let out = dial_via(&[&proxy.url("socks5")], &[], 9, In::Null);
    out.expect_code(1)
        .expect_stderr_contains("authentication required")
        .expect_stderr_contains("hint: ");
}

#[test]
fn nc_and_ncat_spellings_reach_the_same_proxies() {
    let http = tinyproxy(None);
    let socks = danted();
    // nc: -X connect / -X 5 / -X 4 with -x HOST:PORT.
    exchange_through(
        &[],
        &["-X", "connect", "-x", &format!("127.0.0.1:{}", http.port)],
    );
    exchange_through(
        &[],
        &["-X", "5", "-x", &format!("127.0.0.1:{}", socks.port)],
    );
    exchange_through(
        &[],
        &["-X", "4", "-x", &format!("127.0.0.1:{}", socks.port)],
    );
    // ncat: --proxy HOST:PORT --proxy-type, --proxy-dns.
    exchange_through(
        &[&format!("127.0.0.1:{}", socks.port)],
        &["--proxy-type", "socks5", "--proxy-dns", "local"],
    );
    // Without -X, -x is still the hex dump.
    let target = greeting_target(b"dumped\n");
    let out = dial_via(&[], &["-x", "-"], target.port(), In::Null);
    out.expect_code(0).expect_stderr_contains("dumped");
    target.join();
    // -X without -x says what is missing.
    let out = run_nk(["dial", "-X", "5", "127.0.0.1", "9"], In::Null, 10.0);
    out.expect_code(2)
        .expect_stderr_contains("-X 5 needs -x HOST:PORT");
}

#[test]
fn a_chain_of_two_and_of_three_mixed_proxies() {
    let http = tinyproxy(None);
    let socks = danted();
    let auth = microsocks(Some(("bob", "pw")));
    let out = exchange_through(
        &[&auth.url("socks5"), &http.url("http")],
        &["--proxy-auth", "bob:pw"],
    );
    out.expect_stderr_contains("proxy 1 of 2 (socks5://bob@127.0.0.1:")
        .expect_stderr_contains("proxy 2 of 2 (http://bob@127.0.0.1:");

    let micro = format!("socks5://bob:pw@127.0.0.1:{}", auth.port);
    let out = exchange_through(&[&http.url("http"), &socks.url("socks4"), &micro], &[]);
    for i in 1..=3 {
        out.expect_stderr_contains(&format!("proxy {i} of 3 ("));
    }
    out.expect_stderr_contains(" ms)");
}

#[test]
fn a_chain_mixing_nk_own_proxy_server_with_the_daemons() {
    let http = tinyproxy(None);
    let socks = danted();
    let micro = microsocks(Some(("bob", "pw")));
    let args = ["listen", "-v", "--proxy", "http,socks", "127.0.0.1:0"];
    let mut server = Proc::nk(args, In::Null, Out::Pipe);
    let port = server.nk_listening_port();
    let nk_socks5h = format!("socks5h://127.0.0.1:{port}");
    let nk_socks4a = format!("socks4a://127.0.0.1:{port}");
    let nk_http = format!("http://127.0.0.1:{port}");
    let micro_url = format!("socks5://bob:pw@127.0.0.1:{}", micro.port);
    // nk's server first, then each daemon; then nk's server between and after them.
    exchange_through(
        &[
            &nk_socks5h,
            &http.url("http"),
            &socks.url("socks4"),
            &micro_url,
        ],
        &[],
    );
    exchange_through(
        &[
            &http.url("http"),
            &nk_http,
            &socks.url("socks5"),
            &nk_socks4a,
        ],
        &[],
    );
    let out = signal_and_wait(server, "TERM", 143);
    // Three tunnels through nk's server (once in the first chain, twice in the second), each
    // ended by FINs both ways.
    assert_eq!(out.stderr.matches("; fin").count(), 3, "{}", out.describe());
}

/// A target that reads exactly `len` bytes, sends them back and closes: it needs no
/// half-close to know the end (tinyproxy and microsocks end a tunnel at a half-close).
fn sized_echo_target(len: usize) -> Server<()> {
    Server::start(move |mut s, _| {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut data = vec![0u8; len];
        s.read_exact(&mut data).expect("read everything");
        s.write_all(&data).expect("echo everything");
    })
}

#[test]
fn sixty_four_mib_byte_exact_through_a_chain() {
    let http = tinyproxy(None);
    let socks = microsocks(None);
    let target = sized_echo_target(64 * MIB);
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    let data = write_random_file(&input, 64 * MIB, 21);
    let args = [
        "dial".to_string(),
        "--no-shutdown".into(),
        "--proxy".into(),
        socks.url("socks5"),
        "--proxy".into(),
        http.url("http"),
        "127.0.0.1".into(),
        target.port().to_string(),
    ];
    let out = Proc::nk(&args, In::File(input), Out::File(output.clone())).wait(120.0);
    out.expect_code(0);
    target.join();
    assert_same_bytes(
        "64 MiB echoed through socks5 + http",
        &read_file(&output),
        &data,
    );
}

/// The issue's "1 GiB sha256 through a chain": microsocks, then tinyproxy, then nk's own
/// SOCKS5 server. One way only, with the default half-close at stdin's EOF: microsocks and
/// tinyproxy end the whole tunnel there, after writing what they hold, so the sink's EOF
/// comes after the last byte.
#[test]
fn one_gib_sha256_through_a_chain_of_three() {
    let micro = microsocks(None);
    let http = tinyproxy(None);
    let mut server = Proc::nk(
        ["listen", "-v", "--proxy", "socks5", "127.0.0.1:0"],
        In::Null,
        Out::Null,
    );
    let nk_port = server.nk_listening_port();
    let flags = format!(
        "--proxy {} --proxy {} --proxy socks5h://127.0.0.1:{nk_port}",
        micro.url("socks5"),
        http.url("http")
    );
    one_gib_hashed_through(
        &flags,
        "127.0.0.1",
        "through microsocks, tinyproxy and nk's SOCKS5 server",
    );
    signal_and_wait(server, "TERM", 143)
        .expect_stderr_contains("1073741824 bytes up, 0 bytes down");
}

#[test]
fn a_refused_target_is_said_in_socks5_words() {
    let proxy = danted();
    let closed = closed_port();
    let out = dial_via(&[&proxy.url("socks5")], &[], closed.port, In::Null);
    out.expect_code(1).expect_stderr_contains(&format!(
        "through proxy socks5://127.0.0.1:{}: the proxy could not connect: connection refused by the target (SOCKS5 reply 5)",
        proxy.port
    ));
    // Through a chain, the hop is named.
    let http = tinyproxy(None);
    let out = dial_via(
        &[&http.url("http"), &proxy.url("socks5")],
        &[],
        closed.port,
        In::Null,
    );
    out.expect_code(1)
        .expect_stderr_contains("through proxy 2 of 2 (socks5://")
        .expect_stderr_contains("(SOCKS5 reply 5)");
    // tinyproxy says it in HTTP: its status line is quoted.
    let out = dial_via(&[&http.url("http")], &[], closed.port, In::Null);
    out.expect_code(1)
        .expect_stderr_contains("the proxy refused the tunnel: it answered HTTP/1.");
}

// ---------------------------------------------------------------------------
// proxies that misbehave (threads here)
// ---------------------------------------------------------------------------

/// Reads up to the end of an HTTP head (bounded), returning it.
fn read_head(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// Holds the connection until nk closes it (bounded).
fn hold(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

#[test]
fn a_proxy_that_closes_mid_handshake() {
    let proxy = Server::start(|mut s, _| {
        let mut greeting = [0u8; 3];
        s.read_exact(&mut greeting).expect("greeting");
        // One byte of the method selection, then the end.
        s.write_all(&[5]).unwrap();
    });
    let url = format!("socks5://127.0.0.1:{}", proxy.port());
    let out = dial_via(&[&url], &[], 9, In::Null);
    out.expect_code(1).expect_stderr_contains(
        "the proxy closed the connection before its SOCKS5 method selection was complete",
    );
    proxy.join();

    let proxy = Server::start(|mut s, _| {
        read_head(&mut s);
        s.write_all(b"HTTP/1.1 200 Conn").unwrap();
    });
    let out = dial_via(
        &[&format!("http://127.0.0.1:{}", proxy.port())],
        &[],
        9,
        In::Null,
    );
    out.expect_code(1).expect_stderr_contains(
        "the proxy closed the connection before its response head was complete",
    );
    proxy.join();
}

#[test]
fn a_proxy_that_answers_garbage_is_named() {
    for (scheme, words) in [
        (
            "socks5",
            "the proxy does not speak SOCKS5: it answered 53 53 (\"SS\")",
        ),
        (
            "socks4",
            "the proxy does not speak SOCKS4: it answered 53 53 48 2d",
        ),
        (
            "http",
            "the proxy does not speak HTTP: it answered 53 53 48 2d",
        ),
    ] {
        let proxy = Server::start(|mut s, _| {
            s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
            hold(&mut s);
        });
        let url = format!("{scheme}://127.0.0.1:{}", proxy.port());
        let out = dial_via(&[&url], &[], 9, In::Null);
        out.expect_code(1).expect_stderr_contains(words);
        proxy.join();
    }
    // An HTTP head that never ends is cut at 64 KiB.
    let proxy = Server::start(|mut s, _| {
        read_head(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
        for _ in 0..80 {
            if s.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
        hold(&mut s);
    });
    let out = dial_via(
        &[&format!("http://127.0.0.1:{}", proxy.port())],
        &[],
        9,
        In::Null,
    );
    out.expect_code(1)
        .expect_stderr_contains("the proxy's response head is longer than 64 KiB");
    proxy.join();
}

#[test]
fn a_silent_proxy_is_bounded_by_w() {
    for scheme in ["socks5", "http"] {
        let proxy = Server::start(|mut s, _| hold(&mut s));
        let url = format!("{scheme}://127.0.0.1:{}", proxy.port());
        let out = dial_via(&[&url], &["-w", "1"], 9, In::Null);
        out.expect_code(1)
            .expect_stderr_contains("timed out after 1s (-w bounds the whole chain)");
        proxy.join();
    }
}

#[test]
fn dial_names_the_target_not_the_proxy_in_what_the_target_does() {
    // Through a proxy the socket's peer is the proxy: a TLS failure of the target must not
    // be blamed on it.
    let socks = microsocks(None);
    let target = greeting_target(b"HTTP/1.0 400 not TLS\r\n\r\n");
    let out = dial_via(
        &[&socks.url("socks5")],
        &["--tls", "-w", "5"],
        target.port(),
        In::Null,
    );
    out.expect_code(1)
        .expect_stderr_contains(&format!("TLS handshake with 127.0.0.1:{}", target.port()));
    assert!(
        !out.stderr
            .contains(&format!("with 127.0.0.1:{}", socks.port)),
        "{}",
        out.describe()
    );
}

#[test]
fn a_proxy_that_trickles_its_reply_is_bounded_by_w_as_a_whole() {
    // SOCKS4's 8-byte reply, a byte every 400 ms (3.2 s in all), then a greeting. Each
    // byte comes well within -w 1, so only a bound on the whole reply ends this.
    let proxy = Server::start(|mut s, _| {
        let mut request = [0u8; 9];
        let _ = s.read_exact(&mut request);
        for b in [0u8, 0x5a, 0, 80, 127, 0, 0, 1] {
            if s.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(400));
        }
        let _ = s.write_all(b"past the deadline\n");
    });
    let url = format!("socks4://127.0.0.1:{}", proxy.port());
    let out = dial_via(&[&url], &["-w", "1"], 80, In::Null);
    out.expect_code(1)
        .expect_stderr_contains("timed out after 1s (-w bounds the whole chain)");
    assert!(
        !out.stdout_text().contains("past the deadline"),
        "{}",
        out.describe()
    );
    proxy.join();
}

#[test]
fn a_proxy_silent_in_its_handshake_is_given_up_after_i_without_w() {
    // -i bounds every silence of a session; a proxy that accepts and then says nothing
    // would otherwise hold `nk dial -i 1` for ever when no -w is given.
    for scheme in ["socks5", "http"] {
        let proxy = Server::start(|mut s, _| hold(&mut s));
        let url = format!("{scheme}://127.0.0.1:{}", proxy.port());
        let out = dial_via(&[&url], &["-i", "1"], 9, In::Null);
        out.expect_code(1)
            .expect_stderr_contains("the proxy sent nothing for 1s while nk waited for the")
            .expect_stderr_contains("(-i)");
        proxy.join();
    }
    // An https:// proxy silent in its TLS handshake: -i bounds that too (it waited 30 s).
    let proxy = Server::start(|mut s, _| hold(&mut s));
    let url = format!("https://127.0.0.1:{}", proxy.port());
    dial_via(&[&url], &["-i", "1"], 9, In::Null)
        .expect_code(1)
        .expect_stderr_contains("TLS handshake with https://127.0.0.1:")
        .expect_stderr_contains("timed out after 1s");
    proxy.join();
}

#[test]
fn bytes_a_proxy_pipelines_after_its_reply_are_kept() {
    // HTTP: the 200 and the target's banner in one write.
    let proxy = Server::start(|mut s, _| {
        let head = read_head(&mut s);
        s.write_all(b"HTTP/1.1 200 Connection established\r\nX-A: b\r\n\r\nBANNER 220 ready\r\n")
            .unwrap();
        let _ = s.shutdown(Shutdown::Write);
        hold(&mut s);
        head
    });
    let out = dial_via(
        &[&format!("http://127.0.0.1:{}", proxy.port())],
        &[],
        25,
        In::Null,
    );
    out.expect_code(0).expect_stdout(b"BANNER 220 ready\r\n");
    let head = String::from_utf8_lossy(&proxy.join()).into_owned();
    assert!(
        head.starts_with("CONNECT 127.0.0.1:25 HTTP/1.1\r\nHost: 127.0.0.1:25\r\n"),
        "{head}"
    );

    // SOCKS5: the reply (with a domain-name BND.ADDR) and the banner in one write.
    let proxy = Server::start(|mut s, _| {
        let mut greeting = [0u8; 3];
        s.read_exact(&mut greeting).unwrap();
        s.write_all(&[5, 0]).unwrap();
        let mut request = [0u8; 10];
        s.read_exact(&mut request).unwrap();
        let mut reply = vec![5, 0, 0, 3, 4];
        reply.extend_from_slice(b"host");
        reply.extend_from_slice(&[0, 25]);
        reply.extend_from_slice(b"SSH-2.0-banner\r\n");
        s.write_all(&reply).unwrap();
        let _ = s.shutdown(Shutdown::Write);
        hold(&mut s);
    });
    let out = dial_via(
        &[&format!("socks5://127.0.0.1:{}", proxy.port())],
        &[],
        22,
        In::Null,
    );
    out.expect_code(0).expect_stdout(b"SSH-2.0-banner\r\n");
    proxy.join();
}

#[test]
fn socks4a_sends_the_name_to_the_proxy() {
    let target = greeting_target(b"via 4a\n");
    let port = target.port();
    // A SOCKS4a server: checks the request carries the name, then relays to the target.
    let proxy = Server::start(move |mut s, _| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut fixed = [0u8; 8];
        s.read_exact(&mut fixed).unwrap();
        let mut rest = Vec::new();
        let mut byte = [0u8; 1];
        while rest.iter().filter(|&&b| b == 0).count() < 2 && rest.len() < 600 {
            s.read_exact(&mut byte).unwrap();
            rest.push(byte[0]);
        }
        assert_eq!(&fixed[..2], &[4, 1]);
        assert_eq!(u16::from_be_bytes([fixed[2], fixed[3]]), port);
        assert_eq!(&fixed[4..8], &[0, 0, 0, 1], "a 4a request");
        assert_eq!(rest, b"\0localhost\0", "no user id, then the name");
        let mut up = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(&[0, 90, 0, 0, 0, 0, 0, 0]).unwrap();
        let mut down = up.try_clone().unwrap();
        let mut client = s.try_clone().unwrap();
        let t = thread::spawn(move || {
            let _ = std::io::copy(&mut down, &mut client);
            let _ = client.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut s, &mut up);
        let _ = up.shutdown(Shutdown::Write);
        t.join().unwrap();
    });
    let url = format!("socks4a://127.0.0.1:{}", proxy.port());
    let out = run_nk(
        ["dial", "--proxy", &url, "localhost", &port.to_string()],
        In::Bytes(b"x\n".to_vec()),
        20.0,
    );
    out.expect_code(0).expect_stdout(b"via 4a\n");
    proxy.join();
    assert_eq!(target.join(), b"x\n");
}

// ---------------------------------------------------------------------------
// https:// proxies, the other commands, usage errors
// ---------------------------------------------------------------------------

/// A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem).
fn self_signed(dir: &Path) -> (String, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("self-signed certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn dial_through_an_https_proxy() {
    let dir = open_tempdir();
    let (cert, key) = self_signed(dir.path());
    let proxy = daemon("ncat", tempfile::tempdir().unwrap(), {
        let (cert, key) = (cert.clone(), key.clone());
        move |port, _| {
            vec![
                "ncat".into(),
                "-l".into(),
                "-k".into(),
                "--ssl".into(),
                "--ssl-cert".into(),
                cert.clone(),
                "--ssl-key".into(),
                key.clone(),
                "--proxy-type".into(),
                "http".into(),
                "127.0.0.1".into(),
                port.to_string(),
            ]
        }
    });
    exchange_through(&[&proxy.url("https")], &["--proxy-ca", &cert]);
    // Unverified: refused, with the reason.
    let out = dial_via(&[&proxy.url("https")], &[], 9, In::Null);
    out.expect_code(1).expect_stderr_contains("TLS");
}

#[test]
fn the_service_clients_smtp_and_resolve_go_through_proxies() {
    let socks = danted();
    let echo = echo_target();
    let out = run_nk(
        [
            "echo",
            "-v",
            "--proxy",
            &socks.url("socks5"),
            &format!("127.0.0.1:{}", echo.port()),
            "through a proxy",
        ],
        In::Null,
        20.0,
    );
    // Replies are named by the target, not by the proxy that relayed them.
    out.expect_code(0)
        .expect_stdout_contains("through a proxy")
        .expect_stderr_contains(&format!("reply from 127.0.0.1:{} (tcp)", echo.port()));
    echo.join();
    let echo = echo_target();
    let out = run_nk(
        [
            "echo",
            "-c",
            "1",
            "--proxy",
            &socks.url("socks5"),
            &format!("127.0.0.1:{}", echo.port()),
        ],
        In::Null,
        20.0,
    );
    out.expect_code(0)
        .expect_stdout_contains(&format!("ECHO 127.0.0.1:{} (tcp)", echo.port()))
        .expect_stdout_contains(&format!("bytes from 127.0.0.1:{} (tcp)", echo.port()));
    echo.join();
    let out = run_nk(
        ["echo", "-u", "--proxy", "socks5://127.0.0.1:1", "127.0.0.1"],
        In::Null,
        10.0,
    );
    out.expect_code(2)
        .expect_stderr_contains("--proxy carries TCP only");

    let smtp = Server::start(|mut s, _| {
        s.write_all(b"220 test ESMTP\r\n").unwrap();
        let mut line = [0u8; 512];
        let _ = s.read(&mut line);
        s.write_all(b"221 bye\r\n").unwrap();
    });
    let out = run_nk(
        [
            "smtp",
            "--proxy",
            &socks.url("socks5"),
            "--quit-after",
            "banner",
            "--from",
            "a@example.com",
            "--to",
            "b@example.com",
            &format!("127.0.0.1:{}", smtp.port()),
        ],
        In::Null,
        20.0,
    );
    out.expect_code(0);
    smtp.join();

    let out = run_nk(
        [
            "resolve",
            "--proxy",
            &socks.url("socks5"),
            "-t",
            "A",
            "example.com",
            "--server",
            "127.0.0.1",
        ],
        In::Null,
        10.0,
    );
    out.expect_code(2)
        .expect_stderr_contains("--proxy needs --tcp");
}

#[test]
fn forward_reaches_its_target_through_a_proxy() {
    let socks = microsocks(None);
    let target = greeting_target(b"forwarded\n");
    let mut fwd = Proc::nk(
        [
            "forward".to_string(),
            "-v".into(),
            "--proxy".into(),
            socks.url("socks5"),
            "127.0.0.1:0".into(),
            format!("127.0.0.1:{}", target.port()),
        ],
        In::Null,
        Out::Pipe,
    );
    let port = fwd.nk_listening_port();
    let mut client = connect_local(port);
    client.write_all(b"up\n").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = [0u8; 10];
    client.read_exact(&mut got).expect("the target's greeting");
    assert_eq!(&got, b"forwarded\n", "{}", fwd.stderr_so_far());
    client.shutdown(Shutdown::Write).unwrap();
    // The lines name the target and the route, not the proxy's address as if it were the
    // target.
    let route = format!("127.0.0.1:{} via {}", target.port(), socks.url("socks5"));
    assert_eq!(target.join(), b"up\n");
    drop(client);
    let line = fwd.wait_stderr_line(10.0, |l| l.contains(" -> "));
    assert!(line.contains(&format!(" -> {route}: ")), "{line}");
    terminate(fwd).expect_stderr_contains(&format!("forwarding to {route}"));

    // A target the proxy cannot reach: the connection's line names the route too.
    let closed_guard = closed_port();
    let closed = closed_guard.port;
    let mut fwd = Proc::nk(
        [
            "forward".to_string(),
            "-v".into(),
            "--proxy".into(),
            socks.url("socks5"),
            "127.0.0.1:0".into(),
            format!("127.0.0.1:{closed}"),
        ],
        In::Null,
        Out::Pipe,
    );
    let port = fwd.nk_listening_port();
    drop(connect_local(port));
    let line = fwd.wait_stderr_line(10.0, |l| l.contains(" -> "));
    let route = format!(" -> 127.0.0.1:{closed} via {}: ", socks.url("socks5"));
    assert!(line.contains(&route) && line.contains("refused"), "{line}");
}

#[test]
fn usage_errors_say_why_before_any_traffic() {
    let cases: [(&[&str], &str); 11] = [
        (
            &[
                "dial",
                "-z",
                "--proxy",
                "socks5://127.0.0.1:1",
                "127.0.0.1",
                "80",
            ],
            "--proxy cannot be used with -z: a scan probes every port",
        ),
        (
            &["dial", "--proxy", "gopher://127.0.0.1:1", "127.0.0.1", "80"],
            "unknown scheme (use socks4, socks4a, socks5, socks5h, http, https)",
        ),
        (
            &["dial", "--proxy-auth", "a:b", "127.0.0.1", "80"],
            "--proxy-auth needs --proxy",
        ),
        (
            &[
                "dial",
                "--proxy",
                "http://u:hunter2@127.0.0.1:99999",
                "127.0.0.1",
                "80",
            ],
            "proxy http://127.0.0.1:99999",
        ),
        (
            &["dial", "--proxy", "env", "127.0.0.1", "80"],
            "--proxy env: all_proxy and ALL_PROXY are unset or empty",
        ),
        (
            &[
                "dial",
                "--proxy",
                "socks5://127.0.0.1:1",
                "--proxy-dns",
                "sideways",
                "127.0.0.1",
                "80",
            ],
            "expected local, remote, both or none",
        ),
        // A companion no proxy of the chain would take: refused, never silently ignored.
        (
            &[
                "dial",
                "--proxy",
                "socks5://127.0.0.1:1",
                "--proxy-type",
                "http",
                "127.0.0.1",
                "80",
            ],
            "--proxy-type: it gives the kind of a --proxy written HOST:PORT",
        ),
        (
            &[
                "dial",
                "--proxy",
                "socks5://u:p@127.0.0.1:1",
                "--proxy-auth",
                "x:y",
                "127.0.0.1",
                "80",
            ],
            "--proxy-auth: it is for a proxy whose URL has no credentials",
        ),
        (
            &[
                "dial",
                "--proxy",
                "http://127.0.0.1:1",
                "--proxy-ca",
                "/dev/null",
                "127.0.0.1",
                "80",
            ],
            "--proxy-ca: it verifies an https:// proxy, and no proxy here is one",
        ),
        (
            &[
                "dial",
                "--proxy",
                "socks5://127.0.0.1:1",
                "--proxy-insecure",
                "127.0.0.1",
                "80",
            ],
            "--proxy-insecure: it is about an https:// proxy",
        ),
        (
            &[
                "head",
                "-x",
                "socks5h://127.0.0.1:1",
                "--proxy-type",
                "http",
                "http://127.0.0.1:1/",
            ],
            "--proxy-type: it gives the kind of a --proxy written HOST:PORT",
        ),
    ];
    for (args, words) in cases {
        let out = run_nk(args, In::Null, 10.0);
        out.expect_code(2).expect_stderr_contains(words);
        assert!(!out.stderr.contains("hunter2"), "{}", out.describe());
    }
}

#[test]
fn dial_reads_all_proxy_only_with_proxy_env() {
    let dead = closed_port();
    let dead_proxy = || format!("http://127.0.0.1:{}", dead.port);
    // `nk ARGS...` with the proxy variables `env` set.
    let nk_with = |args: &[&str], env: &[(&str, String)]| {
        let mut cmd = common::nk(args);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        Proc::spawn(&format!("nk {}", args.join(" ")), cmd, In::Null, Out::Pipe).wait(20.0)
    };
    let dial_proxy_env = |port: u16, env: &[(&str, String)]| {
        nk_with(
            &[
                "dial",
                "-v",
                "--proxy",
                "env",
                "127.0.0.1",
                &port.to_string(),
            ],
            env,
        )
    };
    // dante, which passes a half-close on (nk's stdin is empty: it half-closes at once).
    let proxy = danted();
    let target = greeting_target(b"env\n");
    let env = [("all_proxy", proxy.url("socks5"))];
    dial_proxy_env(target.port(), &env)
        .expect_code(0)
        .expect_stdout(b"env\n")
        .expect_stderr_contains("tunnel to");
    target.join();

    // Without --proxy env, all_proxy is not read: a dead proxy there changes nothing.
    let target = greeting_target(b"direct\n");
    let env = [("all_proxy", dead_proxy())];
    nk_with(&["dial", "127.0.0.1", &target.port().to_string()], &env)
        .expect_code(0)
        .expect_stdout(b"direct\n");
    target.join();

    // --proxy env honours no_proxy as curl does: a listed host goes direct (the proxy in
    // all_proxy is dead: through it, the dial would fail).
    for list in ["127.0.0.1", "localhost,127.0.0.0/8", "*"] {
        let target = greeting_target(b"bypassed\n");
        let env = [("all_proxy", dead_proxy()), ("no_proxy", list.to_string())];
        dial_proxy_env(target.port(), &env)
            .expect_code(0)
            .expect_stdout(b"bypassed\n")
            .expect_stderr_contains("is in no_proxy: connecting directly");
        target.join();
    }

    // A service client that goes direct names the address that answered, as without a proxy
    // (through one, it names the target as typed).
    let echo = echo_target();
    let env = [
        ("all_proxy", dead_proxy()),
        ("no_proxy", "localhost".into()),
    ];
    let target = format!("localhost:{}", echo.port());
    nk_with(
        &["echo", "-v", "-4", "--proxy", "env", &target, "hello"],
        &env,
    )
    .expect_code(0)
    .expect_stderr_contains(&format!("reply from 127.0.0.1:{} (tcp)", echo.port()));
    echo.join();
}

// ---------------------------------------------------------------------------
// head
// ---------------------------------------------------------------------------

/// An origin that answers one request with 200 and returns the request head.
fn origin() -> Server<String> {
    Server::start(|mut s, _| {
        let head = read_head(&mut s);
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Origin: yes\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&head).into_owned()
    })
}

#[test]
fn head_asks_an_http_proxy_in_absolute_form() {
    // A recording proxy: what reaches it is the absolute form, with Proxy-Authorization.
    let proxy = Server::start(|mut s, _| {
        let head = read_head(&mut s);
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Proxy: yes\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&head).into_owned()
    });
    let out = run_nk(
        [
            "head",
            "-x",
            &format!("http://u:p@127.0.0.1:{}", proxy.port()),
            "http://example.test:8080/a/b?c=d",
        ],
        In::Null,
        10.0,
    );
    out.expect_code(0).expect_stdout_contains("X-Proxy: yes");
    let request = proxy.join();
    assert!(
        request.starts_with("HEAD http://example.test:8080/a/b?c=d HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains("\r\nProxy-Authorization: Basic dTpw\r\n"),
        "{request}"
    );
    assert!(
        request.contains("\r\nHost: example.test:8080\r\n"),
        "{request}"
    );

    // Through tinyproxy for real: the origin sees the request tinyproxy made of it (Via).
    let tiny = tinyproxy(None);
    let web = origin();
    let out = run_nk(
        [
            "head",
            "-x",
            &tiny.url("http"),
            &format!("http://127.0.0.1:{}/p", web.port()),
        ],
        In::Null,
        20.0,
    );
    out.expect_code(0).expect_stdout_contains("X-Origin: yes");
    let request = web.join();
    assert!(request.starts_with("HEAD /p HTTP/1.1\r\n"), "{request}");
    assert!(
        request.to_ascii_lowercase().contains("\r\nvia: "),
        "{request}"
    );
}

#[test]
fn head_follows_http_proxy_and_no_proxy_from_the_environment() {
    let tiny = tinyproxy(None);
    let web = origin();
    let url = format!("http://127.0.0.1:{}/env", web.port());
    let mut cmd = common::nk(["head", "-v", &url]);
    cmd.env("http_proxy", tiny.url("http"));
    let out = Proc::spawn("nk head", cmd, In::Null, Out::Pipe).wait(20.0);
    out.expect_code(0)
        .expect_stderr_contains("from $http_proxy");
    assert_eq!(
        out.stderr.matches("from $http_proxy").count(),
        1,
        "said once\n{}",
        out.describe()
    );
    assert!(web.join().to_ascii_lowercase().contains("\r\nvia: "));

    // no_proxy lists the host: straight to the origin although http_proxy is dead.
    let web = origin();
    let url = format!("http://127.0.0.1:{}/direct", web.port());
    let closed = closed_port();
    let dead = format!("http://127.0.0.1:{}", closed.port);
    let mut cmd = common::nk(["head", &url]);
    cmd.env("http_proxy", &dead)
        .env("no_proxy", "localhost,127.0.0.0/8");
    Proc::spawn("nk head", cmd, In::Null, Out::Pipe)
        .wait(20.0)
        .expect_code(0);
    assert!(!web.join().to_ascii_lowercase().contains("\r\nvia: "));
    // --noproxy overrides: with an empty no_proxy list... and '*' bypasses everything.
    let web = origin();
    let url = format!("http://127.0.0.1:{}/star", web.port());
    let mut cmd = common::nk(["head", "--noproxy", "*", &url]);
    cmd.env("http_proxy", &dead);
    Proc::spawn("nk head", cmd, In::Null, Out::Pipe)
        .wait(20.0)
        .expect_code(0);
    web.join();
    // As curl: no_proxy applies to -x's proxy too, and -x '' means no proxy at all (it was
    // "proxy http://: invalid address"), whatever the environment says.
    let web = origin();
    let url = format!("http://127.0.0.1:{}/x-bypassed", web.port());
    let mut cmd = common::nk(["head", "-x", &dead, &url]);
    cmd.env("no_proxy", "127.0.0.1");
    Proc::spawn("nk head", cmd, In::Null, Out::Pipe)
        .wait(20.0)
        .expect_code(0);
    web.join();
    let web = origin();
    let url = format!("http://127.0.0.1:{}/x-empty", web.port());
    let mut cmd = common::nk(["head", "-x", "", &url]);
    cmd.env("http_proxy", &dead);
    Proc::spawn("nk head", cmd, In::Null, Out::Pipe)
        .wait(20.0)
        .expect_code(0);
    web.join();
    // HTTP_PROXY (upper case) is not read, as curl does not.
    let web = origin();
    let url = format!("http://127.0.0.1:{}/upper", web.port());
    let mut cmd = common::nk(["head", &url]);
    cmd.env("HTTP_PROXY", &dead);
    Proc::spawn("nk head", cmd, In::Null, Out::Pipe)
        .wait(20.0)
        .expect_code(0);
    web.join();
}

#[test]
fn head_reaches_https_through_connect() {
    let dir = open_tempdir();
    let (cert, key) = self_signed(dir.path());
    let tls_origin = Proc::nk(
        [
            "listen",
            "-v",
            "--tls",
            "--cert",
            &cert,
            "--key",
            &key,
            "127.0.0.1:0",
            "-c",
            "printf 'HTTP/1.1 204 No Content\\r\\nX-Tls-Origin: yes\\r\\n\\r\\n'; cat >/dev/null",
        ],
        In::Null,
        Out::Null,
    );
    let mut tls_origin = tls_origin;
    let port = tls_origin.nk_listening_port();
    let tiny = tinyproxy(None);
    let mut cmd = common::nk([
        "head",
        "-v",
        "--ca",
        &cert,
        &format!("https://127.0.0.1:{port}/"),
    ]);
    cmd.env("https_proxy", tiny.url("http"));
    let out = Proc::spawn("nk head", cmd, In::Null, Out::Pipe).wait(20.0);
    out.expect_code(0)
        .expect_stdout_contains("HTTP/1.1 204 No Content")
        .expect_stderr_contains(&format!("tunnel to 127.0.0.1:{port} open"));
    assert_eq!(
        out.stderr.matches("from $https_proxy").count(),
        1,
        "said once\n{}",
        out.describe()
    );
}

#[test]
fn head_follows_redirects_through_the_same_proxy() {
    // A recording HTTP proxy serving two requests: a redirect, then the page.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let proxy = thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        while seen.len() < 2 && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let head = String::from_utf8_lossy(&read_head(&mut s)).into_owned();
                    let answer: &[u8] = if seen.is_empty() {
                        b"HTTP/1.1 301 Moved\r\nLocation: http://next.test/two\r\nContent-Length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                    };
                    s.write_all(answer).unwrap();
                    seen.push(head);
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
        seen
    });
    let out = run_nk(
        [
            "head",
            "-L",
            "-x",
            &format!("127.0.0.1:{port}"),
            "http://first.test/one",
        ],
        In::Null,
        15.0,
    );
    out.expect_code(0).expect_stdout_contains("HTTP/1.1 200 OK");
    let seen = proxy.join().expect("proxy thread");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].starts_with("HEAD http://first.test/one HTTP/1.1\r\n"),
        "{seen:?}"
    );
    assert!(
        seen[1].starts_with("HEAD http://next.test/two HTTP/1.1\r\n"),
        "{seen:?}"
    );
}

// ---------------------------------------------------------------------------
// which hop failed, and why
// ---------------------------------------------------------------------------

/// A SOCKS5 proxy (no authentication) that answers every CONNECT with reply `code`, and
/// returns the request's address field (ATYP 3: the name it was asked to resolve).
fn refusing_socks5(code: u8) -> Server<Vec<u8>> {
    Server::start(move |mut s, _| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut greeting = [0u8; 3];
        s.read_exact(&mut greeting).expect("greeting");
        s.write_all(&[5, 0]).unwrap();
        let mut fixed = [0u8; 5];
        s.read_exact(&mut fixed).expect("request");
        let rest = match fixed[3] {
            3 => fixed[4] as usize + 2,
            4 => 15 + 2,
            _ => 3 + 2,
        };
        let mut address = vec![0u8; rest];
        s.read_exact(&mut address).expect("request address");
        s.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
        hold(&mut s);
        let mut all = fixed.to_vec();
        all.extend_from_slice(&address);
        all
    })
}

#[test]
fn a_hop_that_cannot_reach_the_next_proxy_names_it() {
    // microsocks cannot reach proxy 2 (nothing listens): its reply 5 is about proxy 2.
    let micro = microsocks(None);
    let closed = closed_port();
    let dead = closed.port;
    let out = dial_via(
        &[&micro.url("socks5"), &format!("http://127.0.0.1:{dead}")],
        &[],
        9,
        In::Null,
    );
    out.expect_code(1).expect_stderr_contains(&format!(
        "through proxy 1 of 2 (socks5://127.0.0.1:{}): the proxy could not reach proxy 2 of 2 \
         (http://127.0.0.1:{dead}): connection refused (SOCKS5 reply 5)",
        micro.port
    ));
    assert!(!out.stderr.contains("by the target"), "{}", out.describe());

    // socks5h: proxy 2's name went to proxy 1, which was to resolve it (nk did not).
    let proxy = refusing_socks5(4);
    let out = dial_via(
        &[
            &format!("socks5h://127.0.0.1:{}", proxy.port()),
            "http://nosuch.test:3128",
        ],
        &[],
        9,
        In::Null,
    );
    out.expect_code(1).expect_stderr_contains(
        "the proxy could not reach proxy 2 of 2 (http://nosuch.test:3128), whose name \
         nosuch.test it was to resolve: host unreachable (SOCKS5 reply 4)",
    );
    let request = proxy.join();
    assert_eq!(
        &request[3..5],
        &[3, 11],
        "a name in the request: {request:?}"
    );
    assert_eq!(&request[5..16], b"nosuch.test");
}

#[test]
fn nk_own_proxy_server_refusal_shows_its_reason() {
    let mut server = Proc::nk(
        ["listen", "-v", "--proxy", "http", "127.0.0.1:0"],
        In::Null,
        Out::Pipe,
    );
    let port = server.nk_listening_port();
    let closed = closed_port();
    let dead = closed.port;
    let url = format!("http://127.0.0.1:{port}");
    let out = dial_via(&[&url], &[], dead, In::Null);
    out.expect_code(1).expect_stderr_contains(&format!(
        "the proxy refused the tunnel: it answered HTTP/1.1 502 Bad Gateway (body: \"connect \
         127.0.0.1:{dead}: "
    ));
    // As the first hop of a chain: proxy 2 is what it could not reach.
    let out = dial_via(
        &[&url, &format!("socks5://127.0.0.1:{dead}")],
        &[],
        9,
        In::Null,
    );
    out.expect_code(1).expect_stderr_contains(&format!(
        "the proxy could not reach proxy 2 of 2 (socks5://127.0.0.1:{dead}): it answered \
         HTTP/1.1 502 Bad Gateway (body: \"connect 127.0.0.1:{dead}: "
    ));
    signal_and_wait(server, "TERM", 143);
}

#[test]
fn a_proxy_that_resets_or_is_not_there_is_named_as_the_proxy() {
    // Reads the CONNECT, then resets (SO_LINGER 0).
    let proxy = Server::start(|mut s, _| {
        read_head(&mut s);
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    });
    let url = format!("http://127.0.0.1:{}", proxy.port());
    let out = dial_via(&[&url], &[], 9, In::Null);
    out.expect_code(1).expect_stderr_contains(&format!(
        "through proxy {url}: the proxy reset the connection during its CONNECT handshake"
    ));
    proxy.join();

    // Nothing listens: the proxy is what could not be reached, on dial and on head.
    let closed = closed_port();
    let dead = format!("http://127.0.0.1:{}", closed.port);
    let out = dial_via(&[&dead], &[], 9, In::Null);
    out.expect_code(1).expect_stderr_contains(&format!(
        "through proxy {dead}: could not reach the proxy: connect 127.0.0.1:"
    ));
    let out = run_nk(
        ["head", "-x", &dead, "http://example.test/"],
        In::Null,
        10.0,
    );
    out.expect_code(1).expect_stderr_contains(&format!(
        "connect example.test through proxy {dead}: could not reach the proxy: connect 127.0.0.1:"
    ));
}

#[test]
fn socks5_credentials_too_long_or_empty_are_usage_errors_on_every_command() {
    // A SOCKS5 proxy that wants no authentication: the credentials would never be sent.
    let micro = microsocks(None);
    let long = "u".repeat(256);
    let in_url = format!("socks5://{long}:pw@127.0.0.1:{}", micro.port);
    let with_auth = format!("{long}:pw");
    let long_pass = format!("user:{}", "p".repeat(256));
    let (socks5, socks5h) = (micro.url("socks5"), micro.url("socks5h"));
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec!["dial", "--proxy", &in_url, "127.0.0.1", "9"],
            "the SOCKS5 username is 256 bytes; RFC 1929 allows at most 255",
        ),
        (
            vec![
                "dial",
                "--proxy-auth",
                &long_pass,
                "--proxy",
                &socks5h,
                "127.0.0.1",
                "9",
            ],
            "the SOCKS5 password is 256 bytes; RFC 1929 allows at most 255",
        ),
        (
            vec![
                "dial",
                "--proxy-auth",
                ":pw",
                "--proxy",
                &socks5,
                "127.0.0.1",
                "9",
            ],
            "the SOCKS5 username is empty; RFC 1929 needs 1-255 bytes",
        ),
        (
            vec!["head", "-x", &in_url, "http://example.test/"],
            "RFC 1929 allows at most 255",
        ),
        (
            vec![
                "echo",
                "--proxy-auth",
                &with_auth,
                "--proxy",
                &socks5,
                "127.0.0.1:9",
                "x",
            ],
            "RFC 1929 allows at most 255",
        ),
    ];
    for (args, words) in cases {
        let out = run_nk(&args, In::Null, 10.0);
        out.expect_code(2).expect_stderr_contains(words);
        assert!(!out.stderr.contains(&long), "{}", out.describe());
    }
}

#[test]
fn nc_upper_case_x_connect_is_accepted() {
    let http = tinyproxy(None);
    exchange_through(
        &[],
        &["-X", "CONNECT", "-x", &format!("127.0.0.1:{}", http.port)],
    );
}

#[test]
fn https_proxy_tls_failures_name_the_proxy_flags() {
    let dir = open_tempdir();
    let (cert, key) = self_signed(dir.path());
    let mut server = Proc::nk(
        [
            "listen",
            "-v",
            "--proxy",
            "http",
            "--tls",
            "--cert",
            &cert,
            "--key",
            &key,
            "127.0.0.1:0",
        ],
        In::Null,
        Out::Pipe,
    );
    let port = server.nk_listening_port();
    let url = format!("https://127.0.0.1:{port}");
    let out = dial_via(&[&url], &[], 9, In::Null);
    out.expect_code(1)
        .expect_stderr_contains("hint: ")
        .expect_stderr_contains("--proxy-ca FILE");
    assert!(
        !out.stderr.contains(" --ca ") && !out.stderr.contains(" --insecure"),
        "{}",
        out.describe()
    );
    // Following the hint works (no "--insecure needs --tls"), and its warning names it.
    let target = greeting_target(b"through tls\n");
    let out = dial_via(&[&url], &["--proxy-insecure"], target.port(), In::Null);
    out.expect_code(0)
        .expect_stdout(b"through tls\n")
        .expect_stderr_contains(
            "warning: --proxy-insecure: the proxy's certificate is not checked",
        );
    target.join();
    signal_and_wait(server, "TERM", 143);
}

#[test]
fn head_with_resolve_still_goes_through_an_http_proxy() {
    // --resolve pins the origin's name; in absolute form the proxy is what is dialled.
    let origin = NoConnect::new();
    let proxy = Server::start(|mut s, _| {
        let head = read_head(&mut s);
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Proxy: yes\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&head).into_owned()
    });
    let port = origin.port;
    let out = run_nk(
        [
            "head",
            "-x",
            &format!("http://127.0.0.1:{}", proxy.port()),
            "--resolve",
            &format!("pinned.test:{port}:127.0.0.1"),
            &format!("http://pinned.test:{port}/r"),
        ],
        In::Null,
        10.0,
    );
    out.expect_code(0).expect_stdout_contains("X-Proxy: yes");
    let request = proxy.join();
    assert!(
        request.starts_with(&format!("HEAD http://pinned.test:{port}/r HTTP/1.1\r\n")),
        "{request}"
    );
    origin.expect_none(0.0, "head -x with --resolve");
}
