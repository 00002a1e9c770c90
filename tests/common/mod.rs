//! Shared helpers for the integration tests: run the real `nk` binary and the
//! reference peers (OpenBSD `nc`, `socat`, `python3`) under hard deadlines, on
//! loopback only, on ports the kernel handed out to the test itself.
//!
//! Every child process is owned by a [`Proc`], which kills it when dropped, so
//! a failing assertion never leaves a peer behind. Waiting is always bounded:
//! when a deadline passes the child is killed and the test panics with the
//! child's stdout and stderr, so the failure explains itself.
//!
//! A missing peer tool is a test failure with an install hint, never a skip.

#![allow(dead_code)]

/// aiosmtpd, the real peer of `nk smtp` (in clear, STARTTLS, implicit TLS).
pub mod aiosmtpd;
/// Leaving a server an exact number of free descriptors.
pub mod descriptors;
/// `nk forward` and its peers (tests/forward.rs, tests/forward_tls.rs).
pub mod forwarder;
/// `nk head` helpers and nginx, its real peer (optionally with a TLS server block).
pub mod http;
/// nk's service servers and xinetd's internal services (echo, chargen, time ...).
pub mod inetd;
/// A CA and a leaf certificate made by openssl for a test.
pub mod pki;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const NK: &str = env!("CARGO_BIN_EXE_nk");

/// A `Command` for the binary under test with `args`.
pub fn nk<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(NK);
    cmd.args(args);
    // Diagnostics must be plain text whatever the environment says.
    cmd.env("NO_COLOR", "1");
    cmd.env_remove("RUST_BACKTRACE");
    // `nk head` reads proxies from the environment as curl does: a test sets them itself.
    for var in [
        "http_proxy",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Fails the test unless `tool` is on PATH. `package` names what to install.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(tool);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "required test peer `{tool}` is not installed (not found in PATH); \
         install it: apt-get install {package}"
    );
}

/// Fails the test unless `nc` is OpenBSD netcat (the flags used here, `-N`
/// among them, are OpenBSD netcat's).
pub fn require_openbsd_nc() {
    require_tool("nc", "netcat-openbsd");
    let out = Command::new("nc")
        .arg("-h")
        .stdin(Stdio::null())
        .output()
        .expect("run nc -h");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("OpenBSD netcat"),
        "`nc` on PATH is not OpenBSD netcat (install netcat-openbsd); `nc -h` said:\n{text}"
    );
}

/// Fails the test unless `python3` runs.
pub fn require_python3() {
    require_tool("python3", "python3");
}

/// A port that was free a moment ago on `ip` (bound then released). Only for
/// tools that cannot report the port they bound, and for "nothing listens here".
/// A port on 127.0.0.1 that refuses connections for as long as this lives: bound, so that no
/// other test's listener and no connect's ephemeral source port can take it (a self-connect
/// would answer), but not listening. A port from [`free_port`] is free only when looked at.
pub struct ClosedPort {
    _bound: socket2::Socket,
    pub port: u16,
}

pub fn closed_port() -> ClosedPort {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any_port.into()).expect("bind 127.0.0.1:0");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("local_addr")
        .port();
    ClosedPort {
        _bound: socket,
        port,
    }
}

pub fn free_port(ip: &str) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    l.local_addr().expect("local_addr").port()
}

/// Where a child's stdin comes from.
#[derive(Debug)]
pub enum In {
    /// /dev/null: EOF at once.
    Null,
    /// These bytes, then EOF (written by a thread, errors ignored).
    Bytes(Vec<u8>),
    /// This file.
    File(PathBuf),
    /// A pipe the test holds in [`Proc::stdin`]; EOF only when the test drops it.
    Pipe,
}

/// Where a child's stdout goes.
#[derive(Debug)]
pub enum Out {
    /// Captured in memory (also split into lines for [`Proc::wait_stdout_line`]).
    Pipe,
    /// Written to this file (for large payloads).
    File(PathBuf),
    /// Discarded.
    Null,
}

/// The end of a child that was waited for.
#[derive(Debug)]
pub struct Finished {
    pub name: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    /// stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// A description for panic messages.
    pub fn describe(&self) -> String {
        describe(
            &self.name,
            &format!("{:?} after {:.2?}", self.status, self.elapsed),
            &self.stdout,
            &self.stderr,
        )
    }

    /// Panics unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit status {code}\n{}",
            self.describe()
        );
        self
    }

    /// Panics unless stderr contains `needle` (case-insensitive).
    pub fn expect_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "expected stderr to contain {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Panics unless stdout (as text, lossy) contains `needle` (case-sensitive).
    pub fn expect_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout_text().contains(needle),
            "expected stdout to contain {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Panics unless stdout is exactly `want`.
    pub fn expect_stdout(&self, want: &[u8]) -> &Self {
        assert!(
            self.stdout == want,
            "expected stdout {:?}\n{}",
            String::from_utf8_lossy(want),
            self.describe()
        );
        self
    }

    /// The lines of stderr, each without nk's usual `nk: ` prefix.
    pub fn stderr_lines_unprefixed(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .map(|l| l.strip_prefix("nk: ").unwrap_or(l))
            .collect()
    }

    /// The first line of stderr.
    pub fn stderr_first_line(&self) -> &str {
        self.stderr.lines().next().unwrap_or("")
    }
}

fn describe(name: &str, state: &str, stdout: &[u8], stderr: &str) -> String {
    const MAX: usize = 4000;
    let out = String::from_utf8_lossy(&stdout[..stdout.len().min(MAX)]);
    let more = if stdout.len() > MAX {
        format!("... ({} bytes in all)", stdout.len())
    } else {
        String::new()
    };
    format!(
        "--- {name}: {state}\n--- stdout ({} bytes):\n{out}{more}\n--- stderr:\n{stderr}---",
        stdout.len()
    )
}

/// A running child, killed on drop.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    /// The stdin pipe when spawned with [`In::Pipe`]; drop it to send EOF.
    pub stdin: Option<ChildStdin>,
    stdout_buf: Arc<Mutex<Vec<u8>>>,
    stderr_buf: Arc<Mutex<Vec<u8>>>,
    stdout_lines: Option<Receiver<String>>,
    stderr_lines: Receiver<String>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
}

/// Copies `r` into `buf` and sends each complete line (lossy, without the
/// newline) down `tx`.
fn pump(
    mut r: impl Read + Send + 'static,
    buf: Arc<Mutex<Vec<u8>>>,
    tx: mpsc::Sender<String>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut line = Vec::new();
        loop {
            match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    buf.lock().unwrap().extend_from_slice(&chunk[..n]);
                    for &b in &chunk[..n] {
                        if b == b'\n' {
                            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                            line.clear();
                        } else if line.len() < 64 * 1024 {
                            line.push(b);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if !line.is_empty() {
            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
        }
    })
}

impl Proc {
    /// Spawns `cmd` with the given stdin and stdout; stderr is always captured.
    pub fn spawn(name: &str, mut cmd: Command, stdin: In, stdout: Out) -> Proc {
        let mut feed = None;
        match &stdin {
            In::Null => {
                cmd.stdin(Stdio::null());
            }
            // What fits a pipe's buffer is in it, EOF included, before the child starts: a
            // feeding thread could lag, and a listener whose stdin is still idle when its peer
            // ends stops without sending (nc -l's rule), which made tests flaky.
            In::Bytes(b) if b.len() <= 60_000 => {
                let mut fds = [0; 2];
                // SAFETY: pipe2 fills the two-descriptor array it is given.
                assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
                // SAFETY: both descriptors were just made, and each is owned once.
                let (reader, mut writer) = unsafe {
                    use std::os::fd::FromRawFd;
                    (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
                };
                writer.write_all(b).expect("fill the stdin pipe");
                drop(writer);
                cmd.stdin(Stdio::from(reader));
            }
            In::Bytes(b) => {
                cmd.stdin(Stdio::piped());
                feed = Some(b.clone());
            }
            In::File(p) => {
                let f = File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
                cmd.stdin(Stdio::from(f));
            }
            In::Pipe => {
                cmd.stdin(Stdio::piped());
            }
        }
        match &stdout {
            Out::Pipe => {
                cmd.stdout(Stdio::piped());
            }
            Out::File(p) => {
                let f = File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
                cmd.stdout(Stdio::from(f));
            }
            Out::Null => {
                cmd.stdout(Stdio::null());
            }
        }
        cmd.stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        let started = Instant::now();
        let mut threads = Vec::new();

        let mut held_stdin = None;
        if let Some(bytes) = feed {
            let mut w = child.stdin.take().expect("stdin pipe");
            threads.push(thread::spawn(move || {
                // The child may legitimately stop reading (exit, --recv-only):
                // a broken pipe here is not the test's business.
                let _ = w.write_all(&bytes);
            }));
        } else if matches!(stdin, In::Pipe) {
            held_stdin = child.stdin.take();
        }

        let stdout_buf = Arc::new(Mutex::new(Vec::new()));
        let mut stdout_lines = None;
        if let Some(out) = child.stdout.take() {
            let (tx, rx) = mpsc::channel();
            threads.push(pump(out, Arc::clone(&stdout_buf), tx));
            stdout_lines = Some(rx);
        }
        let stderr_buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, stderr_lines) = mpsc::channel();
        let err = child.stderr.take().expect("stderr pipe");
        threads.push(pump(err, Arc::clone(&stderr_buf), tx));

        Proc {
            name: name.to_string(),
            child: Some(child),
            stdin: held_stdin,
            stdout_buf,
            stderr_buf,
            stdout_lines,
            stderr_lines,
            threads,
            started,
        }
    }

    /// Convenience: spawn `nk ARGS`.
    pub fn nk<I, S>(args: I, stdin: In, stdout: Out) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let name = format!(
            "nk {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        Proc::spawn(&name, nk(&args), stdin, stdout)
    }

    /// Everything on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr_buf.lock().unwrap()).into_owned()
    }

    /// Everything on (piped) stdout so far.
    pub fn stdout_so_far(&self) -> Vec<u8> {
        self.stdout_buf.lock().unwrap().clone()
    }

    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        self.join_threads();
        let stdout = self.stdout_so_far();
        let stderr = self.stderr_so_far();
        panic!(
            "{why}\n{}",
            describe(&self.name, "killed", &stdout, &stderr)
        );
    }

    /// Waits up to `secs` for a stderr line for which `pred` holds, and returns it.
    pub fn wait_stderr_line(&mut self, secs: f64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no awaited stderr line within {secs}s"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail("stderr closed (process ended?) before the awaited line")
                }
            }
        }
    }

    /// Waits up to `secs` for a stdout line for which `pred` holds (stdout must be [`Out::Pipe`]).
    pub fn wait_stdout_line(&mut self, secs: f64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let rx = self.stdout_lines.as_ref().expect("stdout is not piped");
            match rx.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no awaited stdout line within {secs}s"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail("stdout closed (process ended?) before the awaited line")
                }
            }
        }
    }

    /// For `nk listen -v`: waits for `nk: listening on ADDR:PORT (tcp)` and
    /// returns the port.
    pub fn nk_listening_port(&mut self) -> u16 {
        let line = self.wait_stderr_line(10.0, |l| l.starts_with("nk: listening on "));
        parse_listening_port(&line).unwrap_or_else(|| {
            self.fail(&format!(
                "cannot parse the port from listening line {line:?}"
            ))
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// Is the child still running?
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn kill(&mut self) {
        self.stdin.take();
        if let Some(c) = self.child.as_mut() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    fn join_threads(&mut self) {
        // Reader threads end when the child's pipes close; a grandchild that
        // inherited a pipe could hold it, so bound the wait.
        let deadline = Instant::now() + Duration::from_secs(2);
        for t in self.threads.drain(..) {
            while !t.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }

    /// Waits up to `secs` for the child to exit. Past the deadline the child is
    /// killed and the test panics with its output.
    pub fn wait(mut self, secs: f64) -> Finished {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let status = loop {
            let c = self.child.as_mut().expect("child");
            match c.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => self.fail(&format!("wait: {e}")),
            }
            if Instant::now() >= deadline {
                self.fail(&format!("still running after the {secs}s deadline"));
            }
            thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        self.stdin.take();
        self.join_threads();
        Finished {
            name: self.name.clone(),
            status,
            stdout: self.stdout_so_far(),
            stderr: self.stderr_so_far(),
            elapsed,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends SIGTERM to a server that must end with its summary: it must exit 143.
pub fn terminate(p: Proc) -> Finished {
    send_signal(p.pid(), "TERM");
    let done = p.wait(10.0);
    done.expect_code(143);
    done
}

/// Port of an `nk: listening on ADDR:PORT (tcp)` line.
pub fn parse_listening_port(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("nk: listening on ")?;
    let addr = rest.split_whitespace().next()?;
    addr.rsplit(':').next()?.parse().ok()
}

/// Runs `nk ARGS` to completion with `stdin`, killing it after `secs`.
pub fn run_nk<I, S>(args: I, stdin: In, secs: f64) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Proc::nk(args, stdin, Out::Pipe).wait(secs)
}

/// A one-connection TCP server in a thread, on 127.0.0.1 with a kernel port.
#[derive(Debug)]
pub struct Server<T> {
    pub addr: SocketAddr,
    handle: JoinHandle<T>,
}

impl<T: Send + 'static> Server<T> {
    /// Binds `ip:0` and runs `f` on the first accepted connection. The accept
    /// waits at most `secs` (then the thread panics and [`Server::join`] reports it).
    pub fn start_on(
        ip: &str,
        secs: f64,
        f: impl FnOnce(TcpStream, SocketAddr) -> T + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
        let addr = listener.local_addr().expect("local_addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            loop {
                match listener.accept() {
                    Ok((s, peer)) => {
                        s.set_nonblocking(false).expect("blocking");
                        return f(s, peer);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(
                            Instant::now() < deadline,
                            "test server on {addr}: no connection within {secs}s"
                        );
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept on {addr}: {e}"),
                }
            }
        });
        Server { addr, handle }
    }

    /// [`Server::start_on`] 127.0.0.1 with a 10 s accept deadline.
    pub fn start(f: impl FnOnce(TcpStream, SocketAddr) -> T + Send + 'static) -> Self {
        Self::start_on("127.0.0.1", 10.0, f)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The server's result; the server bounds itself, so this ends.
    pub fn join(self) -> T {
        match self.handle.join() {
            Ok(v) => v,
            Err(e) => panic!("test server thread failed: {}", panic_text(&e)),
        }
    }
}

/// A listener on 127.0.0.1 nobody should connect to (for "nothing is sent" cases).
#[derive(Debug)]
pub struct NoConnect {
    listener: TcpListener,
    pub port: u16,
}

impl NoConnect {
    pub fn new() -> NoConnect {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().unwrap().port();
        NoConnect { listener, port }
    }

    /// `127.0.0.1:PORT`.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Panics if a connection arrives within `secs` (after `what` has run).
    pub fn expect_none(&self, secs: f64, what: &str) {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            match self.listener.accept() {
                Ok((_, peer)) => panic!("{what}: nk connected to the server (from {peer})"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
            if Instant::now() >= deadline {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Reads until EOF, an error, or `secs` of silence. Returns the bytes and
/// whether EOF was seen.
pub fn read_until_eof(s: &mut TcpStream, secs: f64) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_secs_f64(secs)))
        .expect("set_read_timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return (got, false),
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), fast enough for tens of MiB.
pub fn prng_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `len` pseudo-random bytes to `path` and returns them.
pub fn write_random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let data = prng_bytes(len, seed);
    std::fs::write(path, &data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    data
}

/// Sends 1 GiB with `nk dial DIAL_FLAGS SINK_HOST PORT` into a one-shot `nk listen` and
/// panics unless the sha256 of what the sink wrote out equals that of what was sent. The
/// GiB is 16 passes over a 64 MiB file, hashed on the way in and on the way out, so it is
/// never held in memory. The dial half-closes at its stdin's EOF (nk's default); the sink
/// never does (`--recv-only`): tinyproxy and microsocks end the whole tunnel at the first
/// half-close from either side.
pub fn one_gib_hashed_through(dial_flags: &str, sink_host: &str, what: &str) {
    require_tool("sha256sum", "coreutils");
    let dir = tempfile::tempdir().expect("tempdir");
    let chunk = dir.path().join("chunk.bin");
    write_random_file(&chunk, 64 * 1024 * 1024, 19);
    let nk = env!("CARGO_BIN_EXE_nk");
    let mut sink_cmd = Command::new("sh");
    let d = dir.path().display();
    sink_cmd.args([
        "-c",
        &format!("{nk} listen -v --recv-only 127.0.0.1:0 | sha256sum > {d}/sink.sha"),
    ]);
    let mut sink = Proc::spawn("sink", sink_cmd, In::Null, Out::Null);
    let sink_port = sink.nk_listening_port();
    let source = format!(
        "for i in $(seq 16); do cat {c}; done | tee >(sha256sum > {d}/source.sha) | \
         {nk} dial {dial_flags} {sink_host} {sink_port}; rc=$?; wait; exit $rc",
        c = chunk.display(),
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &source]);
    Proc::spawn("source", cmd, In::Null, Out::Null)
        .wait(300.0)
        .expect_code(0);
    sink.wait(60.0).expect_code(0);
    let read_sha = |name: &str| {
        let text = std::fs::read_to_string(dir.path().join(name)).expect(name);
        text.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let (sent, got) = (read_sha("source.sha"), read_sha("sink.sha"));
    assert_eq!(sent.len(), 64, "source sha256: {sent:?}");
    assert_eq!(sent, got, "1 GiB {what}");
}

/// Panics unless `got` equals `want`, naming the lengths and the first difference
/// instead of dumping megabytes.
pub fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: output differs from input: got {} bytes, want {} bytes, first difference at offset {first}",
        got.len(),
        want.len()
    );
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Bytes as text (lossy).
pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads a whole file.
pub fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// Processes: signals and /proc inspection (Linux), for the server tests
// ---------------------------------------------------------------------------

/// Sends signal `sig` ("TERM", "INT", ...) to `pid` with kill(1).
pub fn send_signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed: {status:?}");
}

/// The fields of /proc/PID/stat after the command name (index 0 is the state,
/// 1 the parent pid, 11 utime, 12 stime); `None` when the process is gone.
fn proc_stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Is `pid` a live process (present, and neither a zombie nor dead)?
pub fn process_alive(pid: u32) -> bool {
    proc_stat_fields(pid)
        .and_then(|f| f.first().cloned())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Clock ticks per second of /proc's CPU times.
fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// CPU time (user + system, all threads) that `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let f = proc_stat_fields(pid).unwrap_or_else(|| panic!("/proc/{pid}/stat: no such process"));
    let ticks = |i: usize| -> f64 {
        f.get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("/proc/{pid}/stat: bad field {i}: {f:?}")) as f64
    };
    (ticks(11) + ticks(12)) / clk_tck()
}

/// Every live (non-zombie) descendant of `pid`: children, grandchildren...
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(f) = proc_stat_fields(p) {
                let live = f.first().is_some_and(|s| s != "Z" && s != "X");
                if let (true, Some(pp)) = (live, f.get(1).and_then(|s| s.parse::<u32>().ok())) {
                    parent_of.push((p, pp));
                }
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp) in &parent_of {
            if pp == parent && !found.contains(&p) {
                found.push(p);
                frontier.push(p);
            }
        }
    }
    found
}

/// Polls `cond` every 10 ms for up to `secs`; true as soon as it holds. For
/// states with no event to wait on (a file's size, /proc).
pub fn wait_until(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Connects to 127.0.0.1:`port` within 5 s, or panics naming the port.
pub fn connect_local(port: u16) -> TcpStream {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

// ---------------------------------------------------------------------------
// Private namespaces (Linux; root or CAP_SYS_ADMIN): whole-range scans run in
// a network namespace of their own, so they only ever meet the test's ports;
// a private mount namespace lets a test bind-mount its own /etc/hosts.
// ---------------------------------------------------------------------------

/// Fails the test (never skips) unless `unshare -n` works and `ip` can bring
/// the namespace's loopback up.
pub fn require_netns() {
    require_tool("unshare", "util-linux");
    require_tool("ip", "iproute2");
    let probe = Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up"])
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    assert!(
        probe.status.success(),
        "this test needs a private network namespace (`unshare -n`, i.e. root or \
         CAP_SYS_ADMIN) so that it scans only its own ports; \
         `unshare -n sh -c 'ip link set lo up'` failed ({:?}): {}",
        probe.status,
        String::from_utf8_lossy(&probe.stderr)
    );
}

/// Fails the test (never skips) unless `unshare -m` works.
pub fn require_mountns() {
    require_tool("unshare", "util-linux");
    let probe = Command::new("unshare")
        .args(["-m", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    assert!(
        probe.status.success(),
        "this test needs a private mount namespace (`unshare -m`, i.e. root or CAP_SYS_ADMIN) \
         to give itself its own /etc/hosts; `unshare -m true` failed: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

/// A `Command` that runs `argv` in a fresh private network namespace whose
/// loopback is up, after the shell commands `setup` (e.g. a sysctl write under
/// /proc/sys/net, which is per namespace; "" for none). `argv` replaces the
/// shell (exec), so the returned command's pid is `argv[0]`'s: killing it ends
/// the namespace's only process.
pub fn netns_command<S: AsRef<OsStr>>(setup: &str, argv: &[S]) -> Command {
    let script = if setup.is_empty() {
        r#"ip link set lo up && exec "$@""#.to_string()
    } else {
        format!(r#"ip link set lo up && {setup} && exec "$@""#)
    };
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "sh", "-c", &script, "sh"]);
    cmd.args(argv);
    cmd.env("NO_COLOR", "1");
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

/// A `Command` that runs `argv` in a private mount namespace where `hosts`
/// is bind-mounted over /etc/hosts (exec'd, like [`netns_command`]).
pub fn hosts_command<S: AsRef<OsStr>>(hosts: &Path, argv: &[S]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#,
        "sh",
    ]);
    cmd.arg(hosts);
    cmd.args(argv);
    cmd.env("NO_COLOR", "1");
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

// ---------------------------------------------------------------------------
// Unique names and byte-count waits (unix and udp tests)
// ---------------------------------------------------------------------------

/// A name unique to this test process and call (`TAG-PID-N`), for abstract
/// socket names and temp files shared by tests that run in parallel.
pub fn unique_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("nk-{tag}-{}-{n}", std::process::id())
}

impl Proc {
    /// Waits up to `secs` until at least `n` bytes have arrived on (piped)
    /// stdout, and returns everything so far. Panics with the output otherwise.
    pub fn wait_stdout_len(&mut self, n: usize, secs: f64) -> Vec<u8> {
        let ok = wait_until(secs, || self.stdout_buf.lock().unwrap().len() >= n);
        if !ok {
            let have = self.stdout_buf.lock().unwrap().len();
            self.fail(&format!(
                "stdout: {have} bytes within {secs}s, expected at least {n}"
            ));
        }
        self.stdout_so_far()
    }

    /// Waits up to `secs` until stderr contains `needle` (case-insensitive).
    pub fn wait_stderr_contains(&mut self, needle: &str, secs: f64) -> String {
        let lower = needle.to_lowercase();
        let ok = wait_until(secs, || {
            String::from_utf8_lossy(&self.stderr_buf.lock().unwrap())
                .to_lowercase()
                .contains(&lower)
        });
        if !ok {
            self.fail(&format!(
                "stderr does not mention {needle:?} within {secs}s"
            ));
        }
        self.stderr_so_far()
    }
}

/// A Python listener whose accept queue is full, so further SYNs to it are dropped (a connect
/// can only time out). Prints its port once the queue is full, then holds for 30 s.
const FULL_QUEUE_PY: &str = r#"
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
addr = s.getsockname()
held = []
for _ in range(8):
    c = socket.socket()
    c.settimeout(0.3)
    held.append(c)
    try:
        c.connect(addr)
    except (socket.timeout, OSError):
        break
else:
    raise SystemExit("could not fill the accept queue")
print(addr[1], flush=True)
time.sleep(30)
"#;

/// Starts the [`FULL_QUEUE_PY`] listener: the process (keep it alive) and its port.
#[allow(dead_code)]
pub fn full_queue_listener() -> (Proc, u16) {
    require_python3();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", FULL_QUEUE_PY]);
    let mut py = Proc::spawn("python3 full accept queue", cmd, In::Null, Out::Pipe);
    let port = py
        .wait_stdout_line(10.0, |l| !l.trim().is_empty())
        .trim()
        .parse()
        .expect("port from python");
    (py, port)
}

/// What a panicking thread said (for re-panicking with context in the test's thread).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// A UDP socket of the test's own on `ip`, with a 5 s read timeout.
pub fn udp(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0/udp: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A UDP port on 127.0.0.1 that was free a moment ago (for socat UDP-RECVFROM, and for
/// "nothing listens here").
pub fn free_udp_port() -> u16 {
    udp("127.0.0.1").local_addr().unwrap().port()
}

/// Receives one datagram within the socket's read timeout, or panics with `what`.
pub fn recv(s: &UdpSocket, what: &str) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 70000];
    match s.recv_from(&mut buf) {
        Ok((n, from)) => (buf[..n].to_vec(), from),
        Err(e) => panic!("{what}: no datagram: {e}"),
    }
}

/// Expects no datagram on `s` for `secs` (then restores the 5 s read timeout).
pub fn expect_silence(s: &UdpSocket, secs: f64, what: &str) {
    s.set_read_timeout(Some(Duration::from_secs_f64(secs)))
        .unwrap();
    let mut buf = vec![0u8; 70000];
    if let Ok((n, from)) = s.recv_from(&mut buf) {
        panic!(
            "{what}: unexpected datagram {:?} from {from}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
}

/// `socat -d -d ARGS` (the `-d -d` makes it report readiness on stderr).
pub fn socat(args: &[&str], stdin: In, stdout: Out) -> Proc {
    require_tool("socat", "socat");
    let mut c = Command::new("socat");
    c.args(["-d", "-d"]);
    c.args(args);
    Proc::spawn(&format!("socat {}", args.join(" ")), c, stdin, stdout)
}

/// `nc ARGS` (OpenBSD netcat).
pub fn nc(args: &[&str], stdin: In, stdout: Out) -> Proc {
    require_openbsd_nc();
    let mut c = Command::new("nc");
    c.args(args);
    Proc::spawn(&format!("nc {}", args.join(" ")), c, stdin, stdout)
}

/// The port after the last `:` of a readiness line's last word: `socat -d -d` ("listening on
/// AF=2 127.0.0.1:PORT") and `nc -v` ("Listening on 127.0.0.1 PORT").
pub fn last_port(line: &str) -> u16 {
    let tok = line.split_whitespace().last().unwrap_or("");
    tok.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// Sends `sig` (TERM, INT, ...) and expects exit `code` within 10 s.
pub fn signal_and_wait(p: Proc, sig: &str, code: i32) -> Finished {
    send_signal(p.pid(), sig);
    let out = p.wait(10.0);
    out.expect_code(code);
    out
}

/// Writes `data` to the child's stdin pipe ([`In::Pipe`]).
pub fn write_stdin(p: &mut Proc, data: &[u8]) {
    p.stdin
        .as_mut()
        .expect("stdin pipe")
        .write_all(data)
        .expect("write the child's stdin");
}

/// `words` as owned strings (a command line).
pub fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Runs nk with each of `cases` (stdin from `stdin()`): every one must exit 2 with stderr
/// starting `nk: ` and nothing on stdout. After all have run, `leaked()` says whether any
/// reached the peer it must not reach (`leak_msg` is the failure then).
#[track_caller]
pub fn expect_usage_errors(
    cases: &[Vec<String>],
    stdin: impl Fn() -> In,
    leaked: impl FnOnce() -> bool,
    leak_msg: &str,
) {
    let mut failures = Vec::new();
    for args in cases {
        let out = run_nk(args, stdin(), 5.0);
        if out.status.code() != Some(2) || !out.stderr.starts_with("nk: ") || !out.stdout.is_empty()
        {
            failures.push(format!(
                "nk {args:?}: want exit 2 and stderr starting \"nk: \"\n{}",
                out.describe()
            ));
        }
    }
    let leaked = leaked();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(!leaked, "{leak_msg}");
}

/// Exit `code`, nothing on stdout, and a first stderr line that is an `nk: ` message.
#[track_caller]
pub fn expect_nk_error(out: &Finished, code: i32) {
    out.expect_code(code).expect_stdout(b"");
    let first = out.stderr_first_line();
    assert!(first.starts_with("nk: "), "{}", out.describe());
}
