//! `nk head` (HTTP HEAD / GET probe) on loopback: against nginx (HTTP/1.1, keep-alive) and
//! `python3 -m http.server` (HTTP/1.0, closes), compared with a raw socket exchange of the same
//! request and with `curl -sI`; and against test servers in threads here that record the
//! request bytes and answer what a case needs (a body after a HEAD response, 1xx interim
//! responses, chunked / Content-Length / until-close bodies, redirects, malformed or oversized
//! heads, silence).
//!
//! Ports come from the kernel: the test servers and `python3 -m http.server` bind port 0;
//! nginx, which cannot report its port, gets one that was free a moment ago (retried if it
//! cannot bind it) and is ready once the port accepts. Every wait is bounded (`run_nk` kills nk
//! after 10 s, the servers give up after 20-30 s); a missing peer tool fails the test. Nothing
//! asserts a speed: that a HEAD against a keep-alive server "returns at once" is asserted only
//! as "exits within run_nk's 10 s while the server would hold the connection for 65 s".

mod common;

use common::http::{expect_ok_head, expect_timing_line, head, nginx, split_heads};
use common::*;
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// nk's default User-Agent value.
const UA: &str = "nk/0.1.0";

// ---------------------------------------------------------------------------
// helpers: requests and heads
// ---------------------------------------------------------------------------

/// The default request nk sends (contract): `HEAD`/`GET` TARGET, Host, User-Agent, Accept,
/// Connection: close.
fn default_request(method: &str, target: &str, host: &str) -> Vec<u8> {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {UA}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Reads from `s` until the bytes so far hold a blank line (`\r\n\r\n`), EOF, an error or 10 s
/// of silence; returns every byte read (a request head, plus whatever came with it).
fn read_head(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set_read_timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while find(&got, b"\r\n\r\n").is_none() {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    got
}

/// The head as text with every `Date:` header's value masked (it may tick between two
/// requests), for comparing two responses of the same server.
/// `req` must be exactly nk's default request (see `default_request`).
#[track_caller]
fn expect_default_request(req: &[u8], method: &str, target: &str, host: &str) {
    assert_eq!(lossy(req), lossy(&default_request(method, target, host)));
}

/// `HTTP/1.1 200 OK` and `X-Pad-NN` fields of 4000 characters until the head is at least
/// `min_len` bytes long (no blank line yet).
fn padded_head(min_len: usize) -> Vec<u8> {
    let mut hd = b"HTTP/1.1 200 OK\r\n".to_vec();
    let mut i = 0;
    while hd.len() < min_len {
        hd.extend_from_slice(format!("X-Pad-{i:02}: {}\r\n", "p".repeat(4000)).as_bytes());
        i += 1;
    }
    hd
}

/// Panics unless what follows the first blank line of `out`'s stdout is `INDEX_HTML`;
/// returns where the body starts.
#[track_caller]
fn expect_index_body(out: &Finished) -> usize {
    let i = find(&out.stdout, b"\r\n\r\n").expect("a head") + 4;
    assert_eq!(
        lossy(&out.stdout[i..]),
        INDEX_HTML,
        "the body after the head\n{}",
        out.describe()
    );
    i
}

fn mask_date(head: &[u8]) -> String {
    lossy(head)
        .split("\r\n")
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("date:") {
                "Date: <masked>".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn status_line(head: &[u8]) -> String {
    lossy(head).split("\r\n").next().unwrap_or("").to_string()
}

/// Sends `request` on a fresh connection to 127.0.0.1:`port` and reads until the server
/// closes (at most 10 s of silence).
fn raw_exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = connect_local(port);
    s.write_all(request).expect("write raw request");
    let (got, eof) = read_until_eof(&mut s, 10.0);
    assert!(
        eof,
        "raw request to port {port}: the server did not close; got {:?}",
        lossy(&got)
    );
    got
}

/// Runs curl with `args` (10 s bound) and returns its stdout; curl must exit 0.
fn curl(args: &[&str]) -> Vec<u8> {
    require_tool("curl", "curl");
    let mut cmd = Command::new("curl");
    cmd.args(args);
    let out = Proc::spawn(
        &format!("curl {}", args.join(" ")),
        cmd,
        In::Null,
        Out::Pipe,
    )
    .wait(10.0);
    out.expect_code(0);
    out.stdout
}

// ---------------------------------------------------------------------------
// helpers: test servers in threads
// ---------------------------------------------------------------------------

/// A TCP server on `ip`:0 that hands every accepted connection to `f` in a thread of its own,
/// until [`HttpServer::finish`] (or 30 s). `finish` returns `f`'s results in accept order.
struct HttpServer<T: Send + 'static> {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<thread::Result<T>>>>,
}

impl<T: Send + 'static> HttpServer<T> {
    fn start(f: impl Fn(TcpStream) -> T + Send + Sync + 'static) -> Self {
        Self::start_on("127.0.0.1", f)
    }

    fn start_on(ip: &str, f: impl Fn(TcpStream) -> T + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
        let addr = listener.local_addr().expect("local_addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let f = Arc::new(f);
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut conns = Vec::new();
            loop {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).expect("blocking");
                        let f = Arc::clone(&f);
                        conns.push(thread::spawn(move || f(s)));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Connections nk made before it exited are queued already: they are
                        // accepted before the stop flag is looked at.
                        if stop2.load(Ordering::SeqCst) || Instant::now() > deadline {
                            break;
                        }
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => panic!("accept on {addr}: {e}"),
                }
            }
            conns.into_iter().map(|h| h.join()).collect()
        });
        HttpServer {
            addr,
            stop,
            handle: Some(handle),
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops accepting and returns every connection's result, in accept order. Call it once nk
    /// has exited: the handlers end when nk's connections are closed (or at their own bound).
    fn finish(mut self) -> Vec<T> {
        self.stop.store(true, Ordering::SeqCst);
        let results = self
            .handle
            .take()
            .expect("handle")
            .join()
            .unwrap_or_else(|_| panic!("test server on {}: accept thread failed", self.addr));
        results
            .into_iter()
            .map(|r| match r {
                Ok(v) => v,
                Err(e) => panic!("test server connection handler failed: {}", panic_text(&e)),
            })
            .collect()
    }
}

impl<T: Send + 'static> Drop for HttpServer<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A handler: reads the request head, writes `response` (in one write), then holds the
/// connection open until the client closes it (at most 20 s, i.e. past run_nk's deadline), as
/// a keep-alive server would. Returns every byte the client sent on the connection.
fn respond_hold(response: Vec<u8>) -> impl Fn(TcpStream) -> Vec<u8> + Send + Sync + 'static {
    move |mut s: TcpStream| {
        let mut got = read_head(&mut s);
        let _ = s.write_all(&response);
        let (more, _) = read_until_eof(&mut s, 20.0);
        got.extend_from_slice(&more);
        got
    }
}

/// A handler: reads the request head, writes `response`, closes. Returns the request bytes.
fn respond_close(response: Vec<u8>) -> impl Fn(TcpStream) -> Vec<u8> + Send + Sync + 'static {
    move |mut s: TcpStream| {
        let got = read_head(&mut s);
        let _ = s.write_all(&response);
        let _ = s.shutdown(Shutdown::Write);
        // Let nk close first (no RST on unread bytes), bounded.
        let _ = read_until_eof(&mut s, 5.0);
        got
    }
}

/// The only request sent on the only connection a server got.
fn only_request(conns: Vec<Vec<u8>>) -> Vec<u8> {
    assert_eq!(
        conns.len(),
        1,
        "expected exactly one connection, got {}: {:?}",
        conns.len(),
        conns.iter().map(|c| lossy(c)).collect::<Vec<_>>()
    );
    conns.into_iter().next().unwrap()
}

/// Panics unless nobody has connected to `l` (nk has exited already, so any connection it
/// made would be queued by now; a short grace period anyway).
fn assert_no_connection(l: &TcpListener, what: &str) {
    l.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        match l.accept() {
            Ok((_, peer)) => {
                panic!("{what}: nk connected to the server (from {peer}) but must not")
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// helpers: real peers
// ---------------------------------------------------------------------------

const INDEX_HTML: &str = "<!doctype html>\n<html><head><title>nk head test</title></head>\n<body><p>hello from the test's web root</p></body></html>\n";

/// A web root with index.html and sub/index.html.
fn web_root(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir www/sub");
    std::fs::write(dir.join("index.html"), INDEX_HTML).expect("write index.html");
    std::fs::write(dir.join("sub/index.html"), "sub\n").expect("write sub/index.html");
}

/// `python3 -m http.server` on 127.0.0.1:0 (HTTP/1.0: one response per connection, then it
/// closes) serving a temp web root; ready once it prints its port.
struct PyHttp {
    port: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

fn py_http() -> PyHttp {
    require_python3();
    let dir = tempfile::tempdir().expect("tempdir");
    web_root(dir.path());
    let mut cmd = Command::new("python3");
    cmd.args([
        "-u",
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "0",
        "--directory",
    ])
    .arg(dir.path());
    let mut p = Proc::spawn("python3 -m http.server", cmd, In::Null, Out::Pipe);
    // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
    let line = p.wait_stdout_line(10.0, |l| l.starts_with("Serving HTTP on"));
    let port = line
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    PyHttp {
        port,
        _proc: p,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------
// real peers: python http.server (HTTP/1.0) and nginx (HTTP/1.1 keep-alive)
// ---------------------------------------------------------------------------

#[test]
fn python_http10_head_is_the_head_as_received() {
    let py = py_http();
    let p = py.port;
    let url = format!("http://127.0.0.1:{p}/index.html");
    let out = head(&[&url]);
    expect_ok_head(&out, "HTTP/1.0 200 OK");
    assert_eq!(
        split_heads(&out.stdout).len(),
        1,
        "one head only\n{}",
        out.describe()
    );
    // The same request on a raw socket: python sends only the head for HEAD, then closes.
    let raw = raw_exchange(
        p,
        &default_request("HEAD", "/index.html", &format!("127.0.0.1:{p}")),
    );
    assert_eq!(
        mask_date(&out.stdout),
        mask_date(&raw),
        "nk's output vs a raw exchange of the same request"
    );
    // And curl -sI.
    let c = curl(&["-sI", &url]);
    assert_eq!(
        mask_date(&out.stdout),
        mask_date(&c),
        "nk's output vs curl -sI"
    );
    assert!(
        lossy(&out.stdout).contains(&format!("Content-Length: {}\r\n", INDEX_HTML.len())),
        "{}",
        out.describe()
    );
}

#[test]
fn python_http10_get_and_seed_requests() {
    let py = py_http();
    let p = py.port;
    let out = head(&["--get", &format!("127.0.0.1:{p}/index.html")]);
    out.expect_code(0);
    expect_index_body(&out);
    assert!(
        out.stdout.starts_with(b"HTTP/1.0 200 OK\r\n"),
        "{}",
        out.describe()
    );

    // The seeds' HTTP/1.0 requests work against an HTTP/1.0 server.
    let out = head(&["--http1.0", &format!("127.0.0.1:{p}")]);
    expect_ok_head(&out, "HTTP/1.0 200 OK");
    let out = head(&["--get", "--http1.0", &format!("127.0.0.1:{p}")]);
    out.expect_code(0);
    assert!(
        out.stdout.ends_with(INDEX_HTML.as_bytes()),
        "GET / serves index.html\n{}",
        out.describe()
    );
}

#[test]
fn nginx_keepalive_head_returns_at_once_and_matches_raw_and_curl() {
    let ng = nginx(web_root);
    let p = ng.port;
    let url = format!("http://127.0.0.1:{p}/");

    // Default request (Connection: close) vs the same bytes on a raw socket and vs curl.
    let out = head(&[&url]);
    expect_ok_head(&out, "HTTP/1.1 200 OK");
    assert_eq!(split_heads(&out.stdout).len(), 1, "{}", out.describe());
    let raw = raw_exchange(p, &default_request("HEAD", "/", &format!("127.0.0.1:{p}")));
    assert_eq!(
        mask_date(&out.stdout),
        mask_date(&raw),
        "nk's output vs a raw exchange of the same request"
    );
    let c = curl(&["-sI", "-H", "Connection: close", &url]);
    assert_eq!(
        mask_date(&out.stdout),
        mask_date(&c),
        "nk's output vs curl -sI -H 'Connection: close'"
    );

    // Keep-alive: nginx would hold the connection for 65 s after the head; nk must stop at
    // the blank line, i.e. exit within run_nk's 10 s.
    let out = head(&["-H", "Connection: keep-alive", &url]);
    out.expect_code(0);
    assert!(
        lossy(&out.stdout).contains("\r\nConnection: keep-alive\r\n"),
        "nginx should have answered keep-alive\n{}",
        out.describe()
    );
    let c = curl(&["-sI", &url]);
    assert_eq!(
        mask_date(&out.stdout),
        mask_date(&c),
        "nk -H 'Connection: keep-alive' vs curl -sI"
    );

    // HTTP/1.0 seed against nginx.
    let out = head(&["--http1.0", &format!("127.0.0.1:{p}")]);
    out.expect_code(0);
    assert!(
        out.stdout.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        out.describe()
    );
}

#[test]
fn nginx_get_keepalive_stops_at_content_length() {
    let ng = nginx(web_root);
    let p = ng.port;
    let out = head(&[
        "--get",
        "-H",
        "Connection: keep-alive",
        &format!("http://127.0.0.1:{p}/"),
    ]);
    out.expect_code(0);
    let i = expect_index_body(&out);
    assert!(
        lossy(&out.stdout[..i]).contains(&format!("Content-Length: {}\r\n", INDEX_HTML.len())),
        "{}",
        out.describe()
    );
}

#[test]
fn nginx_redirect_followed_like_curl_il() {
    let ng = nginx(web_root);
    let p = ng.port;
    let url = format!("http://127.0.0.1:{p}/sub");
    let out = head(&["-L", &url]);
    out.expect_code(0);
    let heads = split_heads(&out.stdout);
    assert_eq!(
        heads.len(),
        2,
        "the 301 head and the 200 head\n{}",
        out.describe()
    );
    assert_eq!(
        status_line(&heads[0]),
        "HTTP/1.1 301 Moved Permanently",
        "{}",
        out.describe()
    );
    assert!(
        lossy(&heads[0]).contains(&format!("\r\nLocation: http://127.0.0.1:{p}/sub/\r\n")),
        "{}",
        out.describe()
    );
    assert_eq!(
        status_line(&heads[1]),
        "HTTP/1.1 200 OK",
        "{}",
        out.describe()
    );
    let c = curl(&["-sIL", "-H", "Connection: close", &url]);
    assert_eq!(mask_date(&out.stdout), mask_date(&c), "nk -L vs curl -sIL");
    // Without -L: only the 301.
    let out = head(&[&url]);
    out.expect_code(0);
    assert_eq!(split_heads(&out.stdout).len(), 1, "{}", out.describe());
    assert_eq!(
        status_line(&out.stdout),
        "HTTP/1.1 301 Moved Permanently",
        "{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// the head: stop at the blank line, skip 1xx
// ---------------------------------------------------------------------------

#[test]
fn head_prints_only_the_head_when_a_body_follows() {
    let hd =
        b"HTTP/1.1 200 OK\r\nServer: t\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n";
    let mut resp = hd.to_vec();
    // A misbehaving server sends a body after a HEAD response, in the same write, and keeps
    // the connection open.
    resp.extend_from_slice(b"hello, and more bytes that are not part of any head\r\n\r\n");
    let srv = HttpServer::start(respond_hold(resp));
    let out = head(&[&format!("127.0.0.1:{}", srv.port())]);
    out.expect_code(0);
    out.expect_stdout(hd);
    only_request(srv.finish());
}

#[test]
fn head_skips_1xx_interim_responses() {
    let final_head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Final: yes\r\n\r\n";
    // In one write.
    let mut resp = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    resp.extend_from_slice(final_head);
    let srv = HttpServer::start(respond_hold(resp));
    let out = head(&[&format!("127.0.0.1:{}", srv.port())]);
    out.expect_code(0);
    out.expect_stdout(final_head);
    srv.finish();

    // In separate writes, with a 103 carrying headers in between.
    let srv = HttpServer::start(move |mut s: TcpStream| {
        let got = read_head(&mut s);
        s.set_nodelay(true).unwrap();
        let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        thread::sleep(Duration::from_millis(30));
        let _ = s.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
        thread::sleep(Duration::from_millis(30));
        let _ = s.write_all(final_head);
        let _ = read_until_eof(&mut s, 20.0);
        got
    });
    let out = head(&[&format!("127.0.0.1:{}", srv.port())]);
    out.expect_code(0);
    out.expect_stdout(final_head);
    srv.finish();
}

#[test]
fn head_up_to_48k_is_printed_whole() {
    // Few long fields (not many short ones): this is about the size of the head.
    let mut hd = padded_head(48 * 1024);
    hd.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let srv = HttpServer::start(respond_hold(hd.clone()));
    let out = head(&[&format!("127.0.0.1:{}", srv.port())]);
    out.expect_code(0);
    assert_same_bytes("48 KiB head", &out.stdout, &hd);
    srv.finish();
}

#[test]
fn head_larger_than_64k_fails() {
    // 18 fields of 4 KB (far below any limit on the number of fields), complete.
    let mut many = padded_head(70 * 1024);
    let mut unterminated = many.clone();
    many.extend_from_slice(b"\r\n");
    // One 70 KiB field, complete.
    let one = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70 * 1024)
    )
    .into_bytes();
    // 70 KiB and no blank line yet, connection held open: nk must give up at the limit, not
    // wait for more (run_nk's 10 s < the default 30 s --timeout).
    unterminated.extend_from_slice(b"X-Still-Going: 1\r\n");
    for (what, resp) in [
        ("18 x 4 KB fields", many),
        ("one 70 KiB field", one),
        ("unterminated", unterminated),
    ] {
        let srv = HttpServer::start(respond_hold(resp));
        let out = head(&[&format!("127.0.0.1:{}", srv.port())]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: a head over 64 KiB must fail\n{}",
            out.describe()
        );
        assert!(
            out.stdout.is_empty(),
            "{what}: nothing printed\n{}",
            out.describe()
        );
        assert!(
            !out.stderr.trim().is_empty(),
            "{what}: an error on stderr\n{}",
            out.describe()
        );
        srv.finish();
    }
}

// ---------------------------------------------------------------------------
// GET bodies
// ---------------------------------------------------------------------------

/// Writes `data` in pieces of awkward sizes (1, 2, 3, 7 bytes... with short pauses at first),
/// so that chunk sizes, CRLFs and the blank line arrive split.
fn write_dribbled(s: &mut TcpStream, data: &[u8]) {
    s.set_nodelay(true).unwrap();
    let sizes = [1usize, 2, 3, 7, 1000, 4096, 5, 16384];
    let (mut at, mut k) = (0, 0);
    while at < data.len() {
        let n = sizes[k % sizes.len()].min(data.len() - at);
        if s.write_all(&data[at..at + n]).is_err() {
            return;
        }
        at += n;
        if k < 40 {
            thread::sleep(Duration::from_millis(1));
        }
        k += 1;
    }
}

#[test]
fn get_chunked_body_decoded_with_trailer() {
    let body = prng_bytes(200_000, 9);
    let hd = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n";
    let mut resp = hd.to_vec();
    // Chunk sizes: 1, 0x1A (upper case hex, with an extension), a leading-zero size, big ones.
    let cuts = [1usize, 0x1a, 0x100, 4096, 65_536, 100_000];
    let mut at = 0;
    for (k, &c) in cuts.iter().enumerate() {
        let n = c.min(body.len() - at);
        let size = match k {
            1 => format!("{n:X};name=value"),
            2 => format!("000{n:x}"),
            _ => format!("{n:x}"),
        };
        resp.extend_from_slice(size.as_bytes());
        resp.extend_from_slice(b"\r\n");
        resp.extend_from_slice(&body[at..at + n]);
        resp.extend_from_slice(b"\r\n");
        at += n;
    }
    let rest = body.len() - at;
    resp.extend_from_slice(format!("{rest:x}\r\n").as_bytes());
    resp.extend_from_slice(&body[at..]);
    resp.extend_from_slice(b"\r\n0\r\nX-Sum: 42\r\n\r\n");
    let srv = HttpServer::start(move |mut s: TcpStream| {
        let got = read_head(&mut s);
        write_dribbled(&mut s, &resp);
        // Keep-alive: the body's end is the last chunk, not the close.
        let _ = read_until_eof(&mut s, 20.0);
        got
    });
    let p = srv.port();
    let out = head(&["--get", &format!("http://127.0.0.1:{p}/chunked")]);
    out.expect_code(0);
    assert!(
        out.stdout.starts_with(hd),
        "the head as received first\n{}",
        out.describe()
    );
    assert_same_bytes("decoded chunked body", &out.stdout[hd.len()..], &body);
    let req = only_request(srv.finish());
    expect_default_request(&req, "GET", "/chunked", &format!("127.0.0.1:{p}"));
}

#[test]
fn get_content_length_body_exactly() {
    let body = prng_bytes(100_000, 5);
    let hd = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    let mut resp = hd.clone();
    resp.extend_from_slice(&body);
    // Bytes past Content-Length (as a broken or pipelining server might send) are not body.
    resp.extend_from_slice(b"EXTRA BYTES AFTER THE BODY");
    let srv = HttpServer::start(move |mut s: TcpStream| {
        let got = read_head(&mut s);
        write_dribbled(&mut s, &resp);
        let _ = read_until_eof(&mut s, 20.0);
        got
    });
    let out = head(&["--get", &format!("127.0.0.1:{}/cl", srv.port())]);
    out.expect_code(0);
    assert!(out.stdout.starts_with(&hd), "{}", out.describe());
    assert_same_bytes("Content-Length body", &out.stdout[hd.len()..], &body);
    srv.finish();
}

#[test]
fn get_http10_body_until_close() {
    let body = prng_bytes(50_000, 7);
    let hd = b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";
    let mut resp = hd.to_vec();
    resp.extend_from_slice(&body);
    let srv = HttpServer::start(respond_close(resp));
    let out = head(&["--get", &format!("127.0.0.1:{}/", srv.port())]);
    out.expect_code(0);
    assert!(out.stdout.starts_with(hd), "{}", out.describe());
    assert_same_bytes("body read until close", &out.stdout[hd.len()..], &body);
    srv.finish();
}

// ---------------------------------------------------------------------------
// redirects, --fail
// ---------------------------------------------------------------------------

/// The path of a request's first line (`HEAD /x HTTP/1.1` -> `/x`).
fn request_target(req: &[u8]) -> String {
    lossy(req)
        .split("\r\n")
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string()
}

#[test]
fn redirects_followed_with_l_relative_locations_resolved() {
    // /a/b -301-> /c/d?q=1 -302-> e (= /c/e) -307-> http://127.0.0.1:P/f -> 200
    let port_cell = Arc::new(std::sync::OnceLock::<u16>::new());
    let pc = Arc::clone(&port_cell);
    let srv = HttpServer::start(move |mut s: TcpStream| {
        let got = read_head(&mut s);
        let port = *pc.get().expect("port set");
        let resp = match request_target(&got).as_str() {
            "/a/b" => "HTTP/1.1 301 Moved Permanently\r\nLocation: /c/d?q=1\r\nContent-Length: 0\r\n\r\n".to_string(),
            "/c/d?q=1" => "HTTP/1.1 302 Found\r\nLocation: e\r\nContent-Length: 0\r\n\r\n".to_string(),
            "/c/e" => format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{port}/f\r\nContent-Length: 0\r\n\r\n"),
            "/f" => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-End: 1\r\n\r\n".to_string(),
            _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
        };
        let _ = s.write_all(resp.as_bytes());
        let (more, _) = read_until_eof(&mut s, 20.0);
        let mut all = got;
        all.extend_from_slice(&more);
        all
    });
    let p = srv.port();
    port_cell.set(p).unwrap();
    let out = head(&["-L", &format!("http://127.0.0.1:{p}/a/b")]);
    out.expect_code(0);
    let heads = split_heads(&out.stdout);
    let statuses: Vec<String> = heads.iter().map(|h| status_line(h)).collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 301 Moved Permanently",
            "HTTP/1.1 302 Found",
            "HTTP/1.1 307 Temporary Redirect",
            "HTTP/1.1 200 OK"
        ],
        "every head of the chain, in order\n{}",
        out.describe()
    );
    assert_eq!(
        lossy(&heads[3]),
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-End: 1\r\n\r\n"
    );
    let reqs = srv.finish();
    let host = format!("127.0.0.1:{p}");
    let got: Vec<String> = reqs.iter().map(|r| lossy(r)).collect();
    let want: Vec<String> = ["/a/b", "/c/d?q=1", "/c/e", "/f"]
        .iter()
        .map(|t| lossy(&default_request("HEAD", t, &host)))
        .collect();
    assert_eq!(got, want, "the requests of the chain, byte for byte");
}

#[test]
fn redirect_not_followed_without_l() {
    let hd = b"HTTP/1.1 301 Moved Permanently\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n";
    let srv = HttpServer::start(respond_hold(hd.to_vec()));
    let out = head(&[&format!("127.0.0.1:{}/", srv.port())]);
    out.expect_code(0);
    out.expect_stdout(hd);
    only_request(srv.finish());
}

#[test]
fn redirect_loop_exceeds_max_redirs() {
    let resp = b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n".to_vec();
    let srv = HttpServer::start(respond_hold(resp.clone()));
    let out = head(&[
        "-L",
        "--max-redirs",
        "1",
        &format!("http://127.0.0.1:{}/loop", srv.port()),
    ]);
    out.expect_code(1);
    out.expect_stderr_contains("redirect");
    let n = srv.finish().len();
    assert_eq!(
        n, 2,
        "--max-redirs 1: the first request and one redirect followed, then stop"
    );

    // The default limit is 10 redirects: 11 requests.
    let srv = HttpServer::start(respond_hold(resp));
    let out = head(&["-L", &format!("http://127.0.0.1:{}/loop", srv.port())]);
    out.expect_code(1);
    out.expect_stderr_contains("redirect");
    let n = srv.finish().len();
    assert_eq!(
        n, 11,
        "default --max-redirs 10: the first request and 10 redirects followed"
    );
}

#[test]
fn status_404_with_and_without_fail() {
    let hd = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 9\r\n\r\n";
    let srv = HttpServer::start(respond_hold(hd.to_vec()));
    let out = head(&["--fail", &format!("127.0.0.1:{}/missing", srv.port())]);
    out.expect_code(1);
    out.expect_stdout(hd);
    srv.finish();

    let srv = HttpServer::start(respond_hold(hd.to_vec()));
    let out = head(&[&format!("127.0.0.1:{}/missing", srv.port())]);
    out.expect_code(0);
    out.expect_stdout(hd);
    srv.finish();
}

// ---------------------------------------------------------------------------
// the request bytes
// ---------------------------------------------------------------------------

const OK_EMPTY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

/// Runs `nk head ARGS...` (URL built from the server's port) against a recording server and
/// returns the bytes nk sent on its only connection. nk must exit 0.
fn sent_by(args: impl Fn(u16) -> Vec<String>) -> (Vec<u8>, u16) {
    let srv = HttpServer::start(respond_hold(OK_EMPTY.to_vec()));
    let p = srv.port();
    let a = args(p);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = head(&a);
    out.expect_code(0);
    out.expect_stdout(OK_EMPTY);
    (only_request(srv.finish()), p)
}

#[test]
fn request_http10_seed_byte_for_byte() {
    let (req, _) = sent_by(|p| vec!["--http1.0".into(), format!("127.0.0.1:{p}")]);
    assert_eq!(lossy(&req), "HEAD / HTTP/1.0\r\n\r\n");
}

#[test]
fn request_http10_get_seed_byte_for_byte() {
    let (req, p) = sent_by(|p| vec!["--get".into(), "--http1.0".into(), format!("127.0.0.1:{p}")]);
    assert_eq!(
        lossy(&req),
        format!("GET / HTTP/1.0\r\nHost: 127.0.0.1:{p}\r\nUser-Agent: {UA}\r\n\r\n")
    );
}

#[test]
fn request_http10_with_header() {
    let (req, _) = sent_by(|p| {
        vec![
            "--http1.0".into(),
            "-H".into(),
            "X-Test: 1".into(),
            format!("127.0.0.1:{p}"),
        ]
    });
    assert_eq!(lossy(&req), "HEAD / HTTP/1.0\r\nX-Test: 1\r\n\r\n");
}

#[test]
fn request_default_byte_for_byte() {
    let (req, p) = sent_by(|p| vec![format!("http://127.0.0.1:{p}/x/y?a=b&c")]);
    expect_default_request(&req, "HEAD", "/x/y?a=b&c", &format!("127.0.0.1:{p}"));
    // host:port form, path default "/".
    let (req, p) = sent_by(|p| vec![format!("127.0.0.1:{p}")]);
    expect_default_request(&req, "HEAD", "/", &format!("127.0.0.1:{p}"));
    // A percent-encoded CR is not a CR: sent as is.
    let (req, p) = sent_by(|p| vec![format!("127.0.0.1:{p}/a%0d")]);
    expect_default_request(&req, "HEAD", "/a%0d", &format!("127.0.0.1:{p}"));
    // GET.
    let (req, p) = sent_by(|p| vec!["--get".into(), format!("http://127.0.0.1:{p}/g")]);
    expect_default_request(&req, "GET", "/g", &format!("127.0.0.1:{p}"));
}

#[test]
fn request_ipv6_host_bracketed() {
    let srv = HttpServer::start_on("::1", respond_hold(OK_EMPTY.to_vec()));
    let p = srv.port();
    let out = head(&[&format!("http://[::1]:{p}/v6")]);
    out.expect_code(0);
    out.expect_stdout(OK_EMPTY);
    let req = only_request(srv.finish());
    expect_default_request(&req, "HEAD", "/v6", &format!("[::1]:{p}"));
}

#[test]
fn request_headers_replace_and_append() {
    let (req, p) = sent_by(|p| {
        vec![
            "-H".into(),
            "User-Agent: probe/2".into(),
            "-H".into(),
            "X-Test: 1".into(),
            "-H".into(),
            "X-Other: two words".into(),
            format!("127.0.0.1:{p}/h"),
        ]
    });
    assert_eq!(
        lossy(&req),
        format!(
            "HEAD /h HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nUser-Agent: probe/2\r\nAccept: */*\r\nConnection: close\r\nX-Test: 1\r\nX-Other: two words\r\n\r\n"
        )
    );
    // The name matches case-insensitively: one User-Agent, the given one.
    let (req, _) = sent_by(|p| {
        vec![
            "-H".into(),
            "user-agent: probe/3".into(),
            format!("127.0.0.1:{p}"),
        ]
    });
    let text = lossy(&req);
    let uas: Vec<&str> = text
        .split("\r\n")
        .filter(|l| l.to_ascii_lowercase().starts_with("user-agent:"))
        .collect();
    assert_eq!(uas.len(), 1, "exactly one User-Agent header in {text:?}");
    assert!(
        uas[0].ends_with("probe/3"),
        "the given User-Agent in {text:?}"
    );
}

// ---------------------------------------------------------------------------
// usage errors: nothing sent
// ---------------------------------------------------------------------------

#[test]
fn cr_lf_injection_is_a_usage_error_and_nothing_is_sent() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().unwrap().port();
    let cases: Vec<Vec<String>> = vec![
        vec![format!("http://127.0.0.1:{p}/a\r\nX-Injected: 1")],
        vec![format!("127.0.0.1:{p}/a\nb")],
        vec![format!("127.0.0.1:{p}/a\rb")],
        vec![format!("http://127.0.0.1:{p}/?q=a\r\nX-Injected: 1")],
        vec![
            "-H".into(),
            "X-Test: a\r\nX-Evil: 1".into(),
            format!("127.0.0.1:{p}"),
        ],
        vec!["-H".into(), "X-Test: a\nb".into(), format!("127.0.0.1:{p}")],
        vec!["-H".into(), "X-Te\rst: a".into(), format!("127.0.0.1:{p}")],
        vec![
            "-H".into(),
            "User-Agent: x\r\n\r\nGET /smuggled HTTP/1.1".into(),
            format!("127.0.0.1:{p}"),
        ],
        vec![format!("http://127.0.0.1\r\n:{p}/")],
        vec![format!("127.0.0.1\n:{p}")],
    ];
    for args in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = head(&a);
        out.expect_code(2);
        assert!(
            out.stdout.is_empty(),
            "nothing on stdout\n{}",
            out.describe()
        );
        assert!(
            !out.stderr.trim().is_empty(),
            "a usage error on stderr\n{}",
            out.describe()
        );
        assert_no_connection(&l, &format!("nk head {a:?}"));
    }
}

#[test]
fn unsupported_scheme_is_a_usage_error() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().unwrap().port();
    for url in [
        format!("ftp://127.0.0.1:{p}/"),
        format!("gopher://127.0.0.1:{p}/"),
    ] {
        let out = head(&[&url]);
        out.expect_code(2);
        out.expect_stderr_contains("http");
        assert!(out.stdout.is_empty(), "{}", out.describe());
        assert_no_connection(&l, &format!("nk head {url}"));
    }
}

// ---------------------------------------------------------------------------
// failures: exit 1
// ---------------------------------------------------------------------------

#[test]
fn refused_port_fails() {
    let closed = closed_port();
    let p = closed.port;
    let out = head(&[&format!("http://127.0.0.1:{p}/")]);
    out.expect_code(1);
    assert!(out.stdout.is_empty(), "{}", out.describe());
    assert!(!out.stderr.trim().is_empty(), "{}", out.describe());
}

#[test]
fn silent_server_times_out() {
    let srv = HttpServer::start(|mut s: TcpStream| {
        let got = read_head(&mut s);
        // Never answer; hold until nk gives up.
        let _ = read_until_eof(&mut s, 20.0);
        got
    });
    let out = head(&["--timeout", "500ms", &format!("127.0.0.1:{}/", srv.port())]);
    out.expect_code(1);
    assert!(out.stdout.is_empty(), "{}", out.describe());
    assert!(!out.stderr.trim().is_empty(), "{}", out.describe());
    srv.finish();
}

#[test]
fn connect_timeout_fails() {
    let (_py, port) = full_queue_listener();
    let out = head(&["-w", "300ms", &format!("127.0.0.1:{port}/")]);
    out.expect_code(1);
    assert!(out.stdout.is_empty(), "{}", out.describe());
}

#[test]
fn malformed_responses_fail() {
    let cases: [&[u8]; 5] = [
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nthis line has no colon\r\n\r\n",
        // Closed before the head ends.
        b"HTTP/1.1 200 OK\r\nServer: t\r\n",
    ];
    for resp in cases {
        let srv = HttpServer::start(respond_close(resp.to_vec()));
        let out = head(&[&format!("127.0.0.1:{}/", srv.port())]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "response {:?} should be rejected (exit 1)\n{}",
            lossy(resp),
            out.describe()
        );
        srv.finish();
    }
}

// ---------------------------------------------------------------------------
// --json, -v
// ---------------------------------------------------------------------------

/// Every JSON value on stdout, in order.
fn json_values(out: &Finished) -> Vec<Value> {
    serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", out.describe()))
}

fn check_timing(v: &Value, out: &Finished) {
    for k in ["resolve_ms", "connect_ms", "first_byte_ms", "total_ms"] {
        let x = v["timing"][k].as_f64();
        assert!(
            x.is_some_and(|x| x >= 0.0),
            "timing.{k} should be a number >= 0 in {v}\n{}",
            out.describe()
        );
    }
}

#[test]
fn json_output() {
    let hd = b"HTTP/1.1 404 Not Found\r\nServer: t\r\nX-Multi: a\r\nX-Multi: b\r\nContent-Length: 0\r\n\r\n";
    let srv = HttpServer::start(respond_hold(hd.to_vec()));
    let p = srv.port();
    let url = format!("http://127.0.0.1:{p}/j");
    let out = head(&["--json", &url]);
    out.expect_code(0);
    let vals = json_values(&out);
    assert_eq!(vals.len(), 1, "one object\n{}", out.describe());
    let v = &vals[0];
    assert_eq!(v["version"], "HTTP/1.1", "{v}");
    assert_eq!(v["status"], 404, "{v}");
    assert_eq!(v["reason"], "Not Found", "{v}");
    assert_eq!(
        v["headers"],
        serde_json::json!([
            ["Server", "t"],
            ["X-Multi", "a"],
            ["X-Multi", "b"],
            ["Content-Length", "0"]
        ]),
        "{v}"
    );
    assert!(
        v["url"]
            .as_str()
            .is_some_and(|u| u.contains(&format!("127.0.0.1:{p}")) && u.ends_with("/j")),
        "{v}"
    );
    check_timing(v, &out);
    srv.finish();

    // With -L: one object per response of the chain.
    let srv = HttpServer::start(|mut s: TcpStream| {
        let got = read_head(&mut s);
        let resp: &[u8] = if request_target(&got) == "/r" {
            b"HTTP/1.1 302 Found\r\nLocation: /final\r\nContent-Length: 0\r\n\r\n"
        } else {
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"
        };
        let _ = s.write_all(resp);
        let _ = read_until_eof(&mut s, 20.0);
        got
    });
    let out = head(&[
        "--json",
        "-L",
        &format!("http://127.0.0.1:{}/r", srv.port()),
    ]);
    out.expect_code(0);
    let vals = json_values(&out);
    assert_eq!(vals.len(), 2, "one object per response\n{}", out.describe());
    assert_eq!(vals[0]["status"], 302, "{}", out.describe());
    assert!(
        vals[0]["url"].as_str().is_some_and(|u| u.ends_with("/r")),
        "{}",
        out.describe()
    );
    assert_eq!(vals[1]["status"], 200, "{}", out.describe());
    assert_eq!(vals[1]["version"], "HTTP/1.0", "{}", out.describe());
    assert_eq!(vals[1]["reason"], "OK", "{}", out.describe());
    assert!(
        vals[1]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/final")),
        "{}",
        out.describe()
    );
    check_timing(&vals[1], &out);
    assert_eq!(srv.finish().len(), 2);
}

#[test]
fn verbose_timing_line() {
    let srv = HttpServer::start(respond_hold(OK_EMPTY.to_vec()));
    let out = head(&["-v", &format!("127.0.0.1:{}/", srv.port())]);
    out.expect_code(0);
    out.expect_stdout(OK_EMPTY);
    // nk: timing: resolve X ms, connect X ms, first byte X ms, total X ms
    expect_timing_line(&out, &["resolve", "connect", "first byte", "total"]);
    srv.finish();
}

// ---------------------------------------------------------------------------
// more of the contract: port 80, Host on redirects, bodies that must not be read, bad bodies
// ---------------------------------------------------------------------------

/// Run inside a private network namespace (so port 80 is ours whatever the host runs): for
/// each URL, listen on port 80, run `nk head URL`, record the request, answer 200, and print
/// one JSON list of {url, request, rc, stdout, stderr}.
const PORT80_PY: &str = r#"
import json, socket, subprocess, sys
nk = sys.argv[1]
res = []
for fam, ip, url in [(socket.AF_INET, "127.0.0.1", "http://127.0.0.1/p80"),
                     (socket.AF_INET, "127.0.0.1", "http://127.0.0.1:80/explicit"),
                     (socket.AF_INET, "127.0.0.1", "127.0.0.1"),
                     (socket.AF_INET6, "::1", "http://[::1]/v6")]:
    s = socket.socket(fam)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, 80))
    s.listen(4)
    s.settimeout(5)
    p = subprocess.Popen([nk, "head", url], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    req = None
    try:
        c, _ = s.accept()
        c.settimeout(5)
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(65536)
            if not d:
                break
            req += d
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    except OSError as e:
        req = None
    try:
        out, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    s.close()
    res.append({"url": url, "request": None if req is None else req.decode("latin-1"),
                "rc": p.returncode, "stdout": out.decode("latin-1"), "stderr": err.decode("latin-1")})
print(json.dumps(res), flush=True)
"#;

#[test]
fn host_header_has_no_port_for_port_80() {
    require_netns();
    require_python3();
    let cmd = netns_command("", &["python3", "-c", PORT80_PY, NK]);
    let out = Proc::spawn(
        "python3 port-80 recorder in a netns",
        cmd,
        In::Null,
        Out::Pipe,
    )
    .wait(30.0);
    out.expect_code(0);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("recorder output is not JSON: {e}\n{}", out.describe()));
    let want = [
        ("/p80", "127.0.0.1"),
        ("/explicit", "127.0.0.1"),
        ("/", "127.0.0.1"),
        ("/v6", "[::1]"),
    ];
    let runs = v.as_array().expect("a list");
    assert_eq!(runs.len(), want.len());
    for (run, (target, host)) in runs.iter().zip(want) {
        assert_eq!(run["rc"], 0, "nk head {}: {run}", run["url"]);
        assert_eq!(
            run["request"].as_str().unwrap_or("<no connection>"),
            lossy(&default_request("HEAD", target, host)),
            "nk head {}: Host carries no port when it is 80; {run}",
            run["url"]
        );
    }
}

#[test]
fn redirect_to_another_server_changes_host() {
    // Server B answers 200; server A redirects (absolute Location) to B.
    let b = HttpServer::start(respond_hold(OK_EMPTY.to_vec()));
    let bp = b.port();
    let a = HttpServer::start(respond_hold(
        format!("HTTP/1.1 308 Permanent Redirect\r\nLocation: http://127.0.0.1:{bp}/there?x=y\r\nContent-Length: 0\r\n\r\n")
            .into_bytes(),
    ));
    let ap = a.port();
    let out = head(&["-L", &format!("http://127.0.0.1:{ap}/here")]);
    out.expect_code(0);
    let heads = split_heads(&out.stdout);
    assert_eq!(heads.len(), 2, "{}", out.describe());
    assert_eq!(heads[1], OK_EMPTY, "{}", out.describe());
    let ra = only_request(a.finish());
    let rb = only_request(b.finish());
    expect_default_request(&ra, "HEAD", "/here", &format!("127.0.0.1:{ap}"));
    expect_default_request(&rb, "HEAD", "/there?x=y", &format!("127.0.0.1:{bp}"));
}

#[test]
fn nginx_get_with_redirect_like_curl() {
    let ng = nginx(web_root);
    let url = format!("http://127.0.0.1:{}/sub", ng.port);
    for extra in [&[][..], &["-H", "Connection: keep-alive"][..]] {
        let mut args = vec!["--get", "-L"];
        args.extend_from_slice(extra);
        args.push(&url);
        let out = head(&args);
        out.expect_code(0);
        let mut cargs = vec!["-sL", "-D", "-"];
        if extra.is_empty() {
            cargs.extend_from_slice(&["-H", "Connection: close"]);
        }
        cargs.push(&url);
        let c = curl(&cargs);
        assert_eq!(
            mask_date(&out.stdout),
            mask_date(&c),
            "nk head {args:?} vs curl {cargs:?}"
        );
        assert!(out.stdout.ends_with(b"\r\n\r\nsub\n"), "{}", out.describe());
    }
}

#[test]
fn get_no_body_for_204_and_304() {
    // A keep-alive server: if nk believed Content-Length here, it would wait for 10 bytes.
    for hd in [
        &b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"[..],
        &b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n"[..],
    ] {
        let srv = HttpServer::start(respond_hold(hd.to_vec()));
        let out = head(&["--get", &format!("127.0.0.1:{}/", srv.port())]);
        out.expect_code(0);
        out.expect_stdout(hd);
        srv.finish();
    }
}

#[test]
fn get_bad_bodies_fail() {
    // Content-Length promises 10 bytes, the server closes after 3.
    let srv = HttpServer::start(respond_close(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
    ));
    let out = head(&["--get", &format!("127.0.0.1:{}/", srv.port())]);
    out.expect_code(1);
    assert!(!out.stderr.trim().is_empty(), "{}", out.describe());
    srv.finish();
    // A chunk size that is not hex.
    let srv = HttpServer::start(respond_hold(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
    ));
    let out = head(&["--get", &format!("127.0.0.1:{}/", srv.port())]);
    out.expect_code(1);
    srv.finish();
    // Chunked body cut by the close before the last chunk.
    let srv = HttpServer::start(respond_close(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nwo".to_vec(),
    ));
    let out = head(&["--get", &format!("127.0.0.1:{}/", srv.port())]);
    out.expect_code(1);
    srv.finish();
}

#[test]
fn head_with_bare_lf_line_ends_printed_as_received() {
    let hd = b"HTTP/1.1 200 OK\nServer: old\nContent-Length: 0\n\n";
    let srv = HttpServer::start(move |mut s: TcpStream| {
        let got = read_head(&mut s);
        let _ = s.write_all(hd);
        let _ = read_until_eof(&mut s, 20.0);
        got
    });
    let out = head(&[&format!("127.0.0.1:{}/", srv.port())]);
    out.expect_code(0);
    out.expect_stdout(hd);
    srv.finish();
}

#[test]
fn request_target_forms() {
    // A fragment is not sent; a query without a path gets "/".
    let (req, p) = sent_by(|p| vec![format!("http://127.0.0.1:{p}/p?q=1#frag")]);
    expect_default_request(&req, "HEAD", "/p?q=1", &format!("127.0.0.1:{p}"));
    let (req, p) = sent_by(|p| vec![format!("127.0.0.1:{p}?x=1")]);
    expect_default_request(&req, "HEAD", "/?x=1", &format!("127.0.0.1:{p}"));
    // `-H 'Name:'` removes a default header (nk head --help).
    let (req, p) = sent_by(|p| vec!["-H".into(), "Accept:".into(), format!("127.0.0.1:{p}")]);
    assert_eq!(
        lossy(&req),
        format!("HEAD / HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nUser-Agent: {UA}\r\nConnection: close\r\n\r\n")
    );
}

#[test]
fn header_without_colon_is_a_usage_error() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().unwrap().port();
    let out = head(&["-H", "NoColon", &format!("127.0.0.1:{p}")]);
    out.expect_code(2);
    assert!(out.stdout.is_empty(), "{}", out.describe());
    assert_no_connection(&l, "nk head -H NoColon");
}

// ---------------------------------------------------------------------------
// issue 17: redirects across origins, Location forms, folds, TLS options, JSON bodies
// ---------------------------------------------------------------------------

/// A recording server that answers each request by its target: `answer(target, own_port)`,
/// then holds the connection as `respond_hold` does. Returns every byte each client sent.
fn routed(answer: impl Fn(&str, u16) -> Vec<u8> + Send + Sync + 'static) -> HttpServer<Vec<u8>> {
    let cell = Arc::new(std::sync::OnceLock::<u16>::new());
    let c = Arc::clone(&cell);
    let srv = HttpServer::start(move |mut s: TcpStream| {
        let mut got = read_head(&mut s);
        let port = *c.get().expect("port set before nk runs");
        let _ = s.write_all(&answer(&request_target(&got), port));
        let (more, _) = read_until_eof(&mut s, 20.0);
        got.extend_from_slice(&more);
        got
    });
    cell.set(srv.port()).expect("set once");
    srv
}

#[test]
fn relative_location_with_a_url_in_its_query_is_followed() {
    let srv = routed(|target, _| match target {
        "/start" => {
            b"HTTP/1.1 302 Found\r\nLocation: /login?next=https://x/\r\nContent-Length: 0\r\n\r\n"
                .to_vec()
        }
        "/login?next=https://x/" => OK_EMPTY.to_vec(),
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
    });
    let out = head(&["-L", &format!("http://127.0.0.1:{}/start", srv.port())]);
    out.expect_code(0);
    let heads = split_heads(&out.stdout);
    assert_eq!(
        heads.last().map(|h| status_line(h)).as_deref(),
        Some("HTTP/1.1 200 OK"),
        "{}",
        out.describe()
    );
    let targets: Vec<String> = srv.finish().iter().map(|r| request_target(r)).collect();
    assert_eq!(targets, ["/start", "/login?next=https://x/"]);
}

#[test]
fn url_without_scheme_with_a_url_in_its_query() {
    let (req, p) = sent_by(|p| vec![format!("127.0.0.1:{p}/ok?x=http://y")]);
    expect_default_request(&req, "HEAD", "/ok?x=http://y", &format!("127.0.0.1:{p}"));
}

#[test]
fn empty_location_is_reported_and_not_followed() {
    // An empty reference is the current URL (RFC 3986 §5.2): curl does not follow it, nor does nk.
    let hd = b"HTTP/1.1 301 Moved Permanently\r\nLocation:\r\nContent-Length: 0\r\n\r\n";
    let srv = HttpServer::start(respond_hold(hd.to_vec()));
    let out = head(&["-L", &format!("http://127.0.0.1:{}/same", srv.port())]);
    out.expect_code(0);
    out.expect_stdout(hd);
    out.expect_stderr_contains("empty Location");
    only_request(srv.finish());
}

#[test]
fn folded_header_is_accepted_printed_as_received_and_unfolded_in_json() {
    let hd =
        b"HTTP/1.1 200 OK\r\nX-Folded: first\r\n   second\r\n\tthird\r\nContent-Length: 0\r\n\r\n";
    let srv = HttpServer::start(respond_hold(hd.to_vec()));
    let out = head(&[&format!("127.0.0.1:{}/", srv.port())]);
    out.expect_code(0);
    out.expect_stdout(hd);
    srv.finish();

    let srv = HttpServer::start(respond_hold(hd.to_vec()));
    let out = head(&["--json", &format!("127.0.0.1:{}/", srv.port())]);
    out.expect_code(0);
    let v = &json_values(&out)[0];
    assert_eq!(
        v["headers"],
        serde_json::json!([["X-Folded", "first second third"], ["Content-Length", "0"]]),
        "RFC 9112 §5.2: each fold becomes a space\n{}",
        out.describe()
    );
    srv.finish();
}

#[test]
fn malformed_head_errors_quote_the_line_at_fault() {
    let long = format!(
        "HTTP/1.1 200 OK\r\nServer: t\r\n{}\r\n\r\n",
        "x".repeat(5000)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"HTTP/1.1 200 OK\r\nServer: t\r\nthis line has no colon\r\n\r\n".to_vec(),
            "\"this line has no colon\"",
        ),
        (
            b"HTTP/1.1 200 OK\r\nServer: t\r\nBad Name: v\r\n\r\n".to_vec(),
            "\"Bad Name: v\"",
        ),
        (
            b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "\"HTTP/1.1 2000 OK\"",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n".to_vec(),
            "\"X: a\\u{1}b\"",
        ),
        (long.into_bytes(), "\"xxxxxxxx"),
    ];
    for (resp, quoted) in cases {
        let srv = HttpServer::start(respond_close(resp.clone()));
        let out = head(&[&format!("127.0.0.1:{}/", srv.port())]);
        out.expect_code(1);
        out.expect_stderr_contains(quoted);
        assert!(
            out.stderr.len() < 400,
            "the quoted line is bounded in length\n{}",
            out.describe()
        );
        if !quoted.starts_with("\"HTTP/") {
            assert!(
                !out.stderr.contains("HTTP/1.1 200 OK"),
                "the error quotes the bad line, not the status line\n{}",
                out.describe()
            );
        }
        srv.finish();
    }
}

#[test]
fn url_syntax_errors_are_usage_errors_without_traffic() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().unwrap().port();
    for (url, said) in [
        (format!("http://127.0.0.1:+{p}/"), "port"),
        (format!("127.0.0.1:+{p}/"), "port"),
        (format!("http:/127.0.0.1:{p}/"), "\"//\""),
        (format!("http://127.0.0.1:{p}x/"), "port"),
    ] {
        let out = head(&[&url]);
        out.expect_code(2);
        out.expect_stderr_contains(said);
        assert!(out.stdout.is_empty(), "{}", out.describe());
        assert_no_connection(&l, &format!("nk head {url}"));
    }
}

#[test]
fn location_with_spaces_and_raw_bytes_is_percent_encoded_and_followed() {
    let srv = routed(|target, _| match target {
        "/start" => {
            b"HTTP/1.1 302 Found\r\nLocation: /a b/caf\xe9?q=x y\r\nContent-Length: 0\r\n\r\n"
                .to_vec()
        }
        "/a%20b/caf%E9?q=x%20y" => OK_EMPTY.to_vec(),
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
    });
    let out = head(&[
        "-L",
        "--fail",
        &format!("http://127.0.0.1:{}/start", srv.port()),
    ]);
    out.expect_code(0);
    let targets: Vec<String> = srv.finish().iter().map(|r| request_target(r)).collect();
    assert_eq!(targets, ["/start", "/a%20b/caf%E9?q=x%20y"]);
}

/// The value of the first request header `name` (case-insensitive) in `req`, if any.
fn request_header(req: &[u8], name: &str) -> Option<String> {
    let text = lossy(req);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The user's credentials for a host, as -H gives them.
const CREDENTIALS: [&str; 3] = [
    "Authorization: Bearer s3cret",
    "Cookie: session=abc",
    "Proxy-Authorization: Basic cHJveHk6cHc=",
];

#[test]
fn redirect_to_another_origin_drops_credentials_and_the_user_host() {
    // A (127.0.0.1:ap) redirects to B (127.0.0.1:bp): another port is another origin, as
    // curl sees it. B must not get the Authorization, Cookie, Proxy-Authorization nor the
    // Host meant for A; other user headers follow.
    let b = HttpServer::start(respond_hold(OK_EMPTY.to_vec()));
    let bp = b.port();
    let a = HttpServer::start(respond_hold(
        format!("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{bp}/there\r\nContent-Length: 0\r\n\r\n")
            .into_bytes(),
    ));
    let ap = a.port();
    let url = format!("http://127.0.0.1:{ap}/here");
    let mut args = vec!["-L", "-H", "Host: vhost.test", "-H", "X-Keep: 1"];
    for c in CREDENTIALS {
        args.extend(["-H", c]);
    }
    args.push(&url);
    let out = head(&args);
    out.expect_code(0);
    let ra = only_request(a.finish());
    let rb = only_request(b.finish());
    for (name, want) in [
        ("Authorization", "Bearer s3cret"),
        ("Cookie", "session=abc"),
        ("Proxy-Authorization", "Basic cHJveHk6cHc="),
        ("Host", "vhost.test"),
    ] {
        assert_eq!(
            request_header(&ra, name).as_deref(),
            Some(want),
            "A: {}",
            lossy(&ra)
        );
    }
    for name in ["Authorization", "Cookie", "Proxy-Authorization"] {
        assert_eq!(
            request_header(&rb, name),
            None,
            "{name} leaked to another origin: {}",
            lossy(&rb)
        );
    }
    assert_eq!(
        request_header(&rb, "Host").as_deref(),
        Some(format!("127.0.0.1:{bp}").as_str()),
        "Host follows the new URL: {}",
        lossy(&rb)
    );
    assert_eq!(
        request_header(&rb, "X-Keep").as_deref(),
        Some("1"),
        "{}",
        lossy(&rb)
    );
}

#[test]
fn redirect_within_the_origin_keeps_credentials_and_the_user_host() {
    let srv = routed(|target, port| {
        match target {
        "/here" => format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:{port}/there\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes(),
        _ => OK_EMPTY.to_vec(),
    }
    });
    let url = format!("http://127.0.0.1:{}/here", srv.port());
    let mut args = vec!["-L", "-H", "Host: vhost.test"];
    for c in CREDENTIALS {
        args.extend(["-H", c]);
    }
    args.push(&url);
    head(&args).expect_code(0);
    let reqs = srv.finish();
    assert_eq!(reqs.len(), 2);
    for req in &reqs {
        assert_eq!(request_header(req, "Host").as_deref(), Some("vhost.test"));
        assert_eq!(
            request_header(req, "Authorization").as_deref(),
            Some("Bearer s3cret"),
            "{}",
            lossy(req)
        );
        assert_eq!(
            request_header(req, "Cookie").as_deref(),
            Some("session=abc")
        );
    }
}

#[test]
fn tls_options_on_http_without_l_are_a_usage_error() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{p}/");
    for flags in [
        &["-k"][..],
        &["--ca", "/nonexistent/ca.pem"][..],
        &["--sni", "example.test"][..],
        &["--alpn", "h2"][..],
    ] {
        let mut args = flags.to_vec();
        args.push(&url);
        let out = head(&args);
        out.expect_code(2);
        out.expect_stderr_contains("https://");
        assert!(out.stdout.is_empty(), "{}", out.describe());
        assert_no_connection(&l, &format!("nk head {args:?}"));
    }
}

#[test]
fn tls_options_on_http_with_l_are_allowed() {
    // The chain may reach https://: the options are kept for it.
    let (req, _) = sent_by(|p| vec!["-L".into(), "-k".into(), format!("http://127.0.0.1:{p}/")]);
    assert_eq!(request_target(&req), "/");
}

/// `nk head --get --json ARGS URL` against a server that answers `response` once.
fn get_json(response: &[u8], args: &[&str]) -> (Finished, Value) {
    let srv = HttpServer::start(respond_hold(response.to_vec()));
    let url = format!("http://127.0.0.1:{}/b", srv.port());
    let mut all = vec!["--get", "--json"];
    all.extend_from_slice(args);
    all.push(&url);
    let out = head(&all);
    srv.finish();
    let vals = json_values(&out);
    assert_eq!(vals.len(), 1, "one object\n{}", out.describe());
    let v = vals[0].clone();
    (out, v)
}

#[test]
fn get_json_carries_the_body() {
    let (out, v) = get_json(
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nh\xc3\xa9llo",
        &[],
    );
    out.expect_code(0);
    assert_eq!(v["body"], "héllo", "{v}");
    assert_eq!(v["body_encoding"], "utf-8", "{v}");
    assert_eq!(v["body_truncated"], false, "{v}");

    let (out, v) = get_json(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n\xff\x00\x01\r\n0\r\n\r\n",
        &[],
    );
    out.expect_code(0);
    assert_eq!(v["body"], "/wAB", "{v}");
    assert_eq!(v["body_encoding"], "base64", "{v}");
}

#[test]
fn get_json_body_over_max_body_is_truncated_and_said() {
    let body = "0123456789".repeat(10);
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (out, v) = get_json(resp.as_bytes(), &["--max-body", "15"]);
    out.expect_code(0);
    assert_eq!(v["body"], "012345678901234", "{v}");
    assert_eq!(v["body_truncated"], true, "{v}");
    out.expect_stderr_contains("--max-body");
}

#[test]
fn max_body_needs_get_and_json() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://127.0.0.1:{}/", l.local_addr().unwrap().port());
    for args in [
        vec!["--max-body", "10", &url],
        vec!["--get", "--max-body", "10", &url],
    ] {
        let out = head(&args);
        out.expect_code(2);
        assert_no_connection(&l, &format!("nk head {args:?}"));
    }
}
