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
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_string();
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
    let out = head(&["-v", "--ca", &pki.ca(), "--connect-to", &detour, "https://localhost/"]);
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
