//! `nk head` with the curl options people use beyond -I (issue 22 items 8-11): --resolve and
//! --connect-to, credentials, methods and bodies, -m, -o/-D, --retry, --unix-socket,
//! --compressed, --write-out, interim heads and trailers. Against nginx (the real peer) and
//! curl side by side where they apply, and against one-connection servers in threads here that
//! record the request bytes. Every wait is bounded (nk is killed after 10 s, the servers give
//! up after 10 s).

mod common;

use common::http::{head, nginx_with, NginxSite};
use common::pki::Pki;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// Reads a request head, and its body when it has a Content-Length, from `s` (10 s bound).
fn read_request(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set_read_timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = find(&got, b"\r\n\r\n") {
            let head = lossy(&got[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return got;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A one-connection server: reads the request, writes `response`, closes; returns the
/// request bytes.
fn serve_once(response: impl AsRef<[u8]> + Send + 'static) -> Server<Vec<u8>> {
    Server::start(move |mut s, _| {
        let got = read_request(&mut s);
        let _ = s.write_all(response.as_ref());
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = read_until_eof(&mut s, 5.0);
        got
    })
}

/// The request curl sends with `args` to a one-connection server (whose port replaces
/// `{port}` in the arguments, and is masked as `{port}` in the request), its response being
/// `response`.
fn curl_request(args: &[&str], response: &'static [u8]) -> Vec<u8> {
    require_tool("curl", "curl");
    let srv = serve_once(response);
    let port = srv.port().to_string();
    let args: Vec<String> = args.iter().map(|a| a.replace("{port}", &port)).collect();
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "10"])
        .args(&args)
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    mask_port(srv.join(), &port)
}

/// `request` with the server's port written `{port}`, for comparing two runs.
fn mask_port(request: Vec<u8>, port: &str) -> Vec<u8> {
    lossy(&request).replace(port, "{port}").into_bytes()
}

/// The request nk sends with `args` (`{port}` as in [`curl_request`], and masked likewise);
/// nk must exit 0.
fn nk_request(args: &[&str], response: &'static [u8]) -> (Vec<u8>, Finished) {
    let srv = serve_once(response);
    let port = srv.port().to_string();
    let args: Vec<String> = args.iter().map(|a| a.replace("{port}", &port)).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = head(&args);
    out.expect_code(0);
    (mask_port(srv.join(), &port), out)
}

/// The value of the request's `name` field.
fn field(request: &[u8], name: &str) -> Option<String> {
    let text = lossy(request);
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string();
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

const OK_EMPTY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

// ---------------------------------------------------------------------------
// item 8: --resolve and --connect-to
// ---------------------------------------------------------------------------

#[test]
fn resolve_and_connect_to_keep_the_host_header_as_curl_does() {
    for args in [
        [
            "--resolve",
            "vhost.invalid:{port}:127.0.0.1",
            "http://vhost.invalid:{port}/r",
        ],
        [
            "--connect-to",
            "vhost.invalid:80:127.0.0.1:{port}",
            "http://vhost.invalid/r",
        ],
        [
            "--connect-to",
            "::127.0.0.1:{port}",
            "http://Vhost.invalid:81/r",
        ],
    ] {
        let (ours, out) = nk_request(&args, OK_EMPTY);
        let theirs = curl_request(&args, OK_EMPTY);
        assert_eq!(field(&ours, "host"), field(&theirs, "host"), "{args:?}");
        assert!(
            lossy(&ours).starts_with("HEAD /r HTTP/1.1\r\n"),
            "{}",
            lossy(&ours)
        );
        assert!(out.stdout_text().starts_with("HTTP/1.1 200 OK"));
    }
}

#[test]
fn connect_to_an_https_backend_keeps_sni_and_the_name_check() {
    let pki = Pki::new();
    let (cert, key) = (pki.path("leaf.pem"), pki.path("leaf.key"));
    let site = NginxSite {
        tls: Some((&cert, &key)),
        ..NginxSite::default()
    };
    let nginx = nginx_with(
        |www| std::fs::write(www.join("index.html"), "hi\n").expect("write"),
        &site,
    );
    let tls_port = nginx.https_port();
    // The certificate names localhost: the check passes only if SNI and the name checked are
    // the URL's host, not the address dialled.
    let detour = format!("localhost:443:127.0.0.1:{tls_port}");
    let out = head(&[
        "-v",
        "--ca",
        &pki.ca(),
        "--connect-to",
        &detour,
        "https://localhost/",
    ]);
    out.expect_code(0).expect_stdout_contains("HTTP/1.1 200 OK");
    out.expect_stderr_contains(&format!(
        "--connect-to: localhost is dialled at 127.0.0.1:{tls_port}"
    ));
    let pin = format!("localhost:{tls_port}:127.0.0.2,127.0.0.1");
    let url = format!("https://localhost:{tls_port}/");
    // 127.0.0.2 refuses (nginx listens on 127.0.0.1): the next address is tried.
    let out = head(&["--ca", &pki.ca(), "--resolve", &pin, &url]);
    out.expect_code(0).expect_stdout_contains("HTTP/1.1 200 OK");
    // Dialled by address, checked by name: an address the certificate does not name is
    // still refused when it is the URL's host.
    let url = format!("https://127.0.0.2:{tls_port}/");
    let detour = format!("127.0.0.2:{tls_port}:127.0.0.1:");
    let out = head(&["--ca", &pki.ca(), "--connect-to", &detour, &url]);
    out.expect_code(1);
}

#[test]
fn bad_resolve_and_connect_to_specs_are_usage_errors() {
    let none = NoConnect::new();
    let url = format!("http://{}/", none.server());
    for (flag, spec) in [
        ("--resolve", "h:80"),
        ("--resolve", "h:80:example.com"),
        ("--resolve", "h:0:127.0.0.1"),
        ("--connect-to", "h:80:x"),
        ("--connect-to", "h:80:a b:1"),
    ] {
        let out = head(&[flag, spec, &url]);
        out.expect_code(2);
        assert!(out.stderr.contains(flag), "{}", out.describe());
    }
    none.expect_none(0.2, "bad specs");
}

// ---------------------------------------------------------------------------
// item 9: credentials, methods and bodies
// ---------------------------------------------------------------------------

#[test]
fn basic_credentials_match_curl_and_are_refused_over_http_without_the_flag() {
    let none = NoConnect::new();
    let url = format!("http://{}/", none.server());
    let out = head(&["-u", "user:s3cret", &url]);
    out.expect_code(2)
        .expect_stderr_contains("--basic-over-http");
    assert!(!out.stderr.contains("s3cret"), "{}", out.describe());
    let out = head(&[&url.replace("http://", "http://user:s3cret@")]);
    out.expect_code(2);
    assert!(!out.stderr.contains("s3cret"), "{}", out.describe());
    none.expect_none(0.2, "Basic over http without --basic-over-http");

    for (ours, theirs) in [
        (
            vec![
                "--basic-over-http",
                "-u",
                "user:pa:ss",
                "http://127.0.0.1:{port}/",
            ],
            vec!["-u", "user:pa:ss", "http://127.0.0.1:{port}/"],
        ),
        (
            vec![
                "--basic-over-http",
                "http://us%40er:p%3Ass@127.0.0.1:{port}/",
            ],
            vec!["http://us%40er:p%3Ass@127.0.0.1:{port}/"],
        ),
    ] {
        let (request, _) = nk_request(&ours, OK_EMPTY);
        let curl = curl_request(&theirs, OK_EMPTY);
        let auth = field(&request, "authorization");
        assert!(auth.as_deref().is_some_and(|a| a.starts_with("Basic ")));
        assert_eq!(auth, field(&curl, "authorization"), "{ours:?}");
    }
}

#[test]
fn the_urls_password_never_shows_and_basic_auth_stays_with_its_origin() {
    // The second server is another origin (another port): it must not get the credentials.
    let second = serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
    let location = format!("http://127.0.0.1:{}/elsewhere", second.port());
    let first = serve_once(
        format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
            .into_bytes(),
    );
    let url = format!("http://user:s3cret@127.0.0.1:{}/", first.port());
    let out = head(&["-vv", "-L", "--json", "--fail", "--basic-over-http", &url]);
    out.expect_code(1);
    let shown = format!("{}{}", out.stdout_text(), out.stderr);
    assert!(!shown.contains("s3cret"), "{}", out.describe());
    assert!(!shown.contains("user:"), "{}", out.describe());
    let first = first.join();
    let second = second.join();
    assert!(
        field(&first, "authorization").is_some(),
        "{}",
        lossy(&first)
    );
    assert_eq!(field(&second, "authorization"), None, "{}", lossy(&second));
    out.expect_stderr_contains("not sending Authorization");
}

#[test]
fn methods_and_bodies_are_sent_as_curl_sends_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("form");
    std::fs::write(&file, "a=1\r\nb=2\n").expect("write");
    let at_file = format!("@{}", file.display());
    for args in [
        vec!["-d", "x=1", "-d", "y=2", "http://127.0.0.1:{port}/p"],
        vec!["-X", "PUT", "-d", &at_file, "http://127.0.0.1:{port}/p"],
        vec!["-X", "DELETE", "http://127.0.0.1:{port}/p"],
        vec![
            "-H",
            "Content-Type: application/json",
            "-d",
            "{}",
            "http://127.0.0.1:{port}/p",
        ],
    ] {
        let (ours, _) = nk_request(&args, OK_EMPTY);
        let theirs = curl_request(&args, OK_EMPTY);
        let line = |r: &[u8]| lossy(r).lines().next().unwrap_or_default().to_string();
        let body = |r: &[u8]| {
            let i = find(r, b"\r\n\r\n").expect("a head") + 4;
            r[i..].to_vec()
        };
        assert_eq!(line(&ours), line(&theirs), "{args:?}");
        assert_eq!(body(&ours), body(&theirs), "{args:?}");
        for name in ["content-type", "content-length"] {
            assert_eq!(field(&ours, name), field(&theirs, name), "{name} {args:?}");
        }
    }
    let out = head(&["-X", "GET /x", "http://127.0.0.1:1/"]);
    out.expect_code(2)
        .expect_stderr_contains("not a method name");
}

#[test]
fn a_post_redirected_by_303_becomes_a_get_without_its_body() {
    let second = serve_once(OK_EMPTY);
    let first = serve_once(
        format!(
            "HTTP/1.1 303 See Other\r\nLocation: http://127.0.0.1:{}/done\r\nContent-Length: 0\r\n\r\n",
            second.port()
        )
        .into_bytes(),
    );
    let url = format!("http://127.0.0.1:{}/form", first.port());
    head(&["-L", "-d", "k=v", &url]).expect_code(0);
    let first = first.join();
    let second = second.join();
    assert!(lossy(&first).starts_with("POST /form HTTP/1.1\r\n"));
    assert!(lossy(&first).ends_with("\r\n\r\nk=v"), "{}", lossy(&first));
    assert!(lossy(&second).starts_with("GET /done HTTP/1.1\r\n"));
    assert_eq!(field(&second, "content-length"), None);
}

/// A server that sends a head announcing 1000 bytes, then one byte every 100 ms (for at most
/// 10 s): only -m ends such a body, whose every read comes in time.
fn dribbling_server() -> Server<()> {
    Server::start(|mut s, _| {
        let _ = read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            if s.write_all(b"x").is_err() {
                break;
            }
        }
    })
}

#[test]
fn max_time_bounds_a_body_that_keeps_coming_and_a_silent_server() {
    let srv = dribbling_server();
    let url = format!("http://127.0.0.1:{}/", srv.port());
    let out = head(&["--get", "-m", "1s", &url]);
    out.expect_code(1)
        .expect_stderr_contains("-m/--max-time 1s reached");
    srv.join();
    let silent = Server::start(|mut s, _| {
        let _ = read_request(&mut s);
        let _ = read_until_eof(&mut s, 10.0);
    });
    let url = format!("http://127.0.0.1:{}/", silent.port());
    let out = head(&["-m", "500ms", "--timeout", "30s", &url]);
    out.expect_code(1)
        .expect_stderr_contains("-m/--max-time 500ms reached");
    silent.join();
}

#[test]
fn output_and_dump_header_files_hold_what_curl_puts_there() {
    let nginx = common::http::nginx(|www| {
        std::fs::write(www.join("index.html"), "hello body\n").expect("write")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let body = dir.path().join("body");
    let heads = dir.path().join("heads");
    let url = format!("http://127.0.0.1:{}/", nginx.port);
    let out = head(&[
        "--get",
        "-o",
        &body.display().to_string(),
        "-D",
        &heads.display().to_string(),
        &url,
    ]);
    out.expect_code(0);
    assert!(out.stdout.is_empty(), "{}", out.describe());
    assert_eq!(std::fs::read(&body).expect("the -o file"), b"hello body\n");
    let ours = std::fs::read(&heads).expect("the -D file");
    assert!(lossy(&ours).starts_with("HTTP/1.1 200 OK\r\n") && ours.ends_with(b"\r\n\r\n"));
    let curl_heads = dir.path().join("curl-heads");
    let status = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-D"])
        .arg(&curl_heads)
        .arg(&url)
        .status()
        .expect("run curl");
    assert!(status.success());
    let names = |h: &[u8]| -> Vec<String> {
        lossy(h)
            .lines()
            .map(|l| l.split(':').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(names(&ours), names(&std::fs::read(&curl_heads).unwrap()));
    // -D alone: the heads in the file, the body on stdout.
    let out = head(&["--get", "-D", &heads.display().to_string(), &url]);
    out.expect_code(0).expect_stdout(b"hello body\n");
    let out = head(&["-o", &body.display().to_string(), &url]);
    out.expect_code(2);
}

// ---------------------------------------------------------------------------
// item 9: --retry, --unix-socket, --compressed, --write-out
// ---------------------------------------------------------------------------

/// A server that answers each connection in turn with the next of `responses`, returning
/// the requests (10 s bound per accept).
fn serve_each(responses: Vec<Vec<u8>>) -> (u16, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        listener.set_nonblocking(true).expect("nonblocking");
        let mut got = Vec::new();
        for response in responses {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut s = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => return got,
                }
            };
            s.set_nonblocking(false).expect("blocking");
            got.push(read_request(&mut s));
            let _ = s.write_all(&response);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = read_until_eof(&mut s, 5.0);
        }
        got
    });
    (port, handle)
}

#[test]
fn retry_after_503_and_a_refused_connection() {
    let busy = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n";
    let (port, server) = serve_each(vec![busy.to_vec(), busy.to_vec(), OK_EMPTY.to_vec()]);
    let url = format!("http://127.0.0.1:{port}/");
    let out = head(&["--retry", "3", &url]);
    out.expect_code(0).expect_stdout(OK_EMPTY);
    assert_eq!(
        out.stderr.matches("503 Service Unavailable: try").count(),
        2
    );
    out.expect_stderr_contains("try 3 of 4 in 0ms");
    assert_eq!(server.join().expect("server").len(), 3);
    // Out of tries: the last answer is printed and --fail judges it.
    let (port, server) = serve_each(vec![busy.to_vec(), busy.to_vec()]);
    let url = format!("http://127.0.0.1:{port}/");
    let out = head(&["--retry", "1", "--fail", &url]);
    out.expect_code(1).expect_stdout(busy);
    assert_eq!(server.join().expect("server").len(), 2);
    // A refused connection is tried again (1 s later): still refused, exit 1.
    let none = NoConnect::new();
    drop(none);
    let closed = closed_port();
    let port = closed.port;
    let out = head(&["--retry", "1", &format!("http://127.0.0.1:{port}/")]);
    out.expect_code(1)
        .expect_stderr_contains("try 2 of 2 in 1s");
}

#[test]
fn unix_socket_requests_are_the_urls_and_match_curl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s");
    let serve = |path: std::path::PathBuf| {
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while find(&got, b"\r\n\r\n").is_none() {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(OK_EMPTY);
            got
        })
    };
    let server = serve(path.clone());
    let sock = path.display().to_string();
    let out = head(&["--unix-socket", &sock, "http://vhost.invalid/x"]);
    out.expect_code(0).expect_stdout(OK_EMPTY);
    let ours = server.join().expect("server");
    std::fs::remove_file(&path).expect("rm");
    let server = serve(path.clone());
    let status = Command::new("curl")
        .args([
            "-sI",
            "--max-time",
            "10",
            "--unix-socket",
            &sock,
            "http://vhost.invalid/x",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("curl");
    assert!(status.success());
    let theirs = server.join().expect("server");
    assert_eq!(field(&ours, "host"), field(&theirs, "host"));
    assert_eq!(lossy(&ours).lines().next(), lossy(&theirs).lines().next());
    let out = head(&["--unix-socket", "/nonexistent/nk.sock", "http://h/"]);
    out.expect_code(1).expect_stderr_contains("--unix-socket");
}

#[test]
fn compressed_bodies_are_decoded_as_curl_decodes_them() {
    let text: String = (0..4000).map(|i| format!("line {i}\n")).collect();
    let nginx = nginx_with(
        |www| std::fs::write(www.join("t.txt"), &text).expect("write"),
        &NginxSite {
            http_extra: "gzip on; gzip_types text/plain; gzip_min_length 1;",
            ..NginxSite::default()
        },
    );
    let url = format!("http://127.0.0.1:{}/t.txt", nginx.port);
    let out = head(&[
        "--compressed",
        "--get",
        "--write-out",
        "%{size_download}",
        &url,
    ]);
    out.expect_code(0)
        .expect_stdout_contains("Content-Encoding: gzip");
    let i = find(&out.stdout, b"\r\n\r\n").expect("a head") + 4;
    let sent: usize = lossy(&out.stdout[i + text.len()..]).parse().expect("size");
    assert_eq!(lossy(&out.stdout[i..i + text.len()]), text);
    assert!(sent < text.len() / 2, "gzip on the wire: {sent} bytes");
    let curl = Command::new("curl")
        .args(["-s", "--max-time", "10", "--compressed", &url])
        .output()
        .expect("curl");
    assert_eq!(lossy(&curl.stdout), text);
    // Without --compressed, nothing is asked for and nothing is decoded.
    let out = head(&["--get", &url]);
    out.expect_code(0);
    assert!(!out.stdout_text().contains("Content-Encoding"));

    // br, from a server in a thread (Debian's nginx has no brotli module).
    require_tool("brotli", "brotli");
    let mut brotli = Command::new("brotli")
        .args(["-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("brotli");
    brotli
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let encoded = brotli.wait_with_output().expect("brotli").stdout;
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: {}\r\n\r\n",
        encoded.len()
    )
    .into_bytes();
    response.extend_from_slice(&encoded);
    let srv = serve_once(response);
    let url = format!("http://127.0.0.1:{}/", srv.port());
    let out = head(&["--compressed", "--get", "--json", &url]);
    out.expect_code(0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["body"].as_str(), Some(text.as_str()));
    let request = srv.join();
    assert_eq!(
        field(&request, "accept-encoding").as_deref(),
        Some("gzip, br")
    );
}

#[test]
fn a_decompression_bomb_is_refused() {
    // 64 MiB of zeros: about 64 KiB of gzip.
    let mut gzip = Command::new("sh")
        .args(["-c", "head -c 67108864 /dev/zero | gzip -9"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut bomb = Vec::new();
    gzip.stdout.take().unwrap().read_to_end(&mut bomb).unwrap();
    assert!(gzip.wait().unwrap().success());
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    )
    .into_bytes();
    response.extend_from_slice(&bomb);
    let srv = serve_once(response);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("out");
    let url = format!("http://127.0.0.1:{}/", srv.port());
    let out = head(&[
        "--compressed",
        "--get",
        "-o",
        &file.display().to_string(),
        &url,
    ]);
    out.expect_code(1)
        .expect_stderr_contains("refused as a decompression bomb");
    assert!(std::fs::metadata(&file).unwrap().len() <= 32 << 20);
    srv.join();
}

#[test]
fn write_out_gives_what_curl_gives() {
    let nginx = common::http::nginx(|www| {
        std::fs::write(www.join("index.html"), "twelve bytes").expect("write");
        std::fs::create_dir(www.join("d")).expect("mkdir");
        std::fs::write(www.join("d/index.html"), "x").expect("write");
    });
    let url = format!("http://127.0.0.1:{}/d", nginx.port);
    let format = "%{http_code} %{size_download} %{remote_ip} %{num_redirects} %{url_effective}\\n";
    // A GET that follows redirects and shows nothing but the --write-out text.
    let write_out_only = |format: &str| {
        head(&[
            "-L",
            "--get",
            "-o",
            "/dev/null",
            "-D",
            "/dev/null",
            "--write-out",
            format,
            &url,
        ])
    };
    let out = write_out_only(format);
    out.expect_code(0);
    let curl = Command::new("curl")
        .args([
            "-s",
            "-L",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "--write-out",
            format,
            &url,
        ])
        .output()
        .expect("curl");
    assert_eq!(out.stdout_text(), lossy(&curl.stdout));
    assert_eq!(out.stdout_text(), format!("200 1 127.0.0.1 1 {url}/\n"));
    let times = "%{time_connect} %{time_starttransfer} %{time_total}";
    let out = head(&["--write-out", times, &url]);
    let figures: Vec<f64> = out
        .stdout_text()
        .rsplit("\r\n\r\n")
        .next()
        .unwrap()
        .split(' ')
        .map(|f| f.parse().expect("seconds"))
        .collect();
    assert!(
        figures[0] <= figures[1] && figures[1] <= figures[2],
        "{figures:?}"
    );
    // A failed run still writes out, with 000 as curl does.
    let closed = closed_port();
    let port = closed.port;
    let out = head(&[
        "--write-out",
        "[%{http_code}]",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    out.expect_code(1).expect_stdout(b"[000]");
    head(&["--write-out", "%{nope}", &url])
        .expect_code(2)
        .expect_stderr_contains("unknown variable %{nope}");
    // @FILE reads the format from a file, as curl's does.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("format");
    std::fs::write(&file, "code=%{http_code}\n").expect("write");
    let at_file = format!("@{}", file.display());
    write_out_only(&at_file)
        .expect_code(0)
        .expect_stdout(b"code=200\n");
}

// ---------------------------------------------------------------------------
// item 11: interim heads and trailers with -v
// ---------------------------------------------------------------------------

#[test]
fn interim_heads_and_trailers_are_shown_with_v() {
    let response = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
        HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
        5\r\nhello\r\n0\r\nX-Sum: abc\r\n\r\n";
    let srv = serve_once(response.to_vec());
    let url = format!("http://127.0.0.1:{}/", srv.port());
    let out = head(&["--get", "-v", &url]);
    out.expect_code(0);
    assert!(out.stdout_text().starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(out.stdout_text().ends_with("\r\n\r\nhello"));
    let lines = out.stderr_lines_unprefixed();
    for want in [
        "< HTTP/1.1 103 Early Hints",
        "< Link: </s.css>; rel=preload",
        "< X-Sum: abc (trailer)",
    ] {
        assert!(lines.contains(&want), "{want:?}\n{}", out.describe());
    }
    srv.join();
    // Without -v, neither shows.
    let srv = serve_once(response.to_vec());
    let url = format!("http://127.0.0.1:{}/", srv.port());
    let out = head(&["--get", &url]);
    out.expect_code(0);
    assert!(out.stderr.is_empty(), "{}", out.describe());
    srv.join();
}

// ---------------------------------------------------------------------------
// item 10: HTTP/2
// ---------------------------------------------------------------------------

/// The head's lines with Date's value masked, for comparing two runs.
fn masked_lines(head: &[u8]) -> Vec<String> {
    lossy(head)
        .split("\r\n")
        .map(
            |l| match l.starts_with("date: ") || l.starts_with("Date: ") {
                true => "date: <masked>".to_string(),
                false => l.to_string(),
            },
        )
        .collect()
}

#[test]
fn http2_heads_and_bodies_match_curl_over_tls_and_prior_knowledge() {
    let pki = Pki::new();
    let (cert, key) = (pki.path("leaf.pem"), pki.path("leaf.key"));
    let site = NginxSite {
        tls: Some((&cert, &key)),
        listen_options: "http2",
        tls_listen_options: "http2",
        http_extra: "location /r { return 301 /; }",
        ..NginxSite::default()
    };
    let nginx = nginx_with(
        |www| std::fs::write(www.join("index.html"), "hello h2\n").expect("write"),
        &site,
    );
    let https = format!("https://localhost:{}/", nginx.https_port());
    let clear = format!("http://127.0.0.1:{}/", nginx.port);
    for (url, curl_flag) in [(&https, "--http2"), (&clear, "--http2-prior-knowledge")] {
        let ca = pki.ca();
        let trust: Vec<&str> = match url.starts_with("https") {
            true => vec!["--ca", &ca],
            false => vec![],
        };
        let with = |more: &[&str]| {
            let mut args = vec!["--http2"];
            args.extend_from_slice(&trust);
            args.extend_from_slice(more);
            args.push(url);
            head(&args)
        };
        let out = with(&[]);
        out.expect_code(0);
        assert!(
            out.stdout_text()
                .starts_with("HTTP/2 200 \r\nserver: nginx"),
            "{}",
            out.describe()
        );
        let curl = Command::new("curl")
            .args([
                "-sI",
                "--max-time",
                "10",
                curl_flag,
                "--cacert",
                &pki.ca(),
                url,
            ])
            .output()
            .expect("curl");
        assert_eq!(
            masked_lines(&out.stdout),
            masked_lines(&curl.stdout),
            "{url}"
        );
        let out = with(&["--get"]);
        out.expect_code(0);
        assert!(
            out.stdout_text().ends_with("\r\n\r\nhello h2\n"),
            "{}",
            out.describe()
        );
    }
    // A redirect over HTTP/2, and --json's version.
    let out = head(&["--http2", "-L", "--json", &format!("{clear}r")]);
    out.expect_code(0);
    let lines: Vec<serde_json::Value> = out
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines[0]["status"], 301);
    assert_eq!(lines[1]["status"], 200);
    assert_eq!(lines[1]["version"], "HTTP/2");
    // A server that speaks only HTTP/1.1 over TLS: ALPN falls back, as curl does.
    let plain_tls = nginx_with(
        |www| std::fs::write(www.join("index.html"), "x").expect("write"),
        &NginxSite {
            tls: Some((&cert, &key)),
            ..NginxSite::default()
        },
    );
    let url = format!("https://localhost:{}/", plain_tls.https_port());
    let out = head(&["-v", "--http2", "--ca", &pki.ca(), &url]);
    out.expect_code(0).expect_stdout_contains("HTTP/1.1 200 OK");
    out.expect_stderr_contains("did not choose h2");
}
