//! `nk head` and its real peer, nginx (tests/head.rs, tests/tls.rs).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::{find, free_port, lossy, require_tool, run_nk, Finished, In, Out, Proc};

/// `nk head ARGS`, killed after 10 s: far below nginx's 65 s keep-alive and the test servers'
/// 20 s hold, so an nk that waits for the server to close fails the test.
pub fn head(args: &[&str]) -> Finished {
    let mut full = vec!["head"];
    full.extend_from_slice(args);
    run_nk(&full, In::Null, 10.0)
}

/// Panics unless `out` exited 0 with a head on stdout that starts with `status_line` and
/// ends with the blank line.
pub fn expect_ok_head(out: &Finished, status_line: &str) {
    out.expect_code(0);
    assert!(
        out.stdout
            .starts_with(format!("{status_line}\r\n").as_bytes())
            && out.stdout.ends_with(b"\r\n\r\n"),
        "expected a head starting {status_line:?}, ending with a blank line\n{}",
        out.describe()
    );
}

/// Splits the concatenated heads of a `-L` run (each ends with `\r\n\r\n`) into heads.
pub fn split_heads(out: &[u8]) -> Vec<Vec<u8>> {
    let mut heads = Vec::new();
    let mut rest = out;
    while let Some(i) = find(rest, b"\r\n\r\n") {
        heads.push(rest[..i + 4].to_vec());
        rest = &rest[i + 4..];
    }
    assert!(
        rest.is_empty(),
        "output does not end with a complete head: trailing {:?}",
        lossy(rest)
    );
    heads
}

/// Panics unless `out`'s stderr has the `-v` timing line, `nk: timing: NAME X ms, ...` with
/// exactly the figures `names` in order, each a number >= 0.
pub fn expect_timing_line(out: &Finished, names: &[&str]) {
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("nk: timing: "))
        .unwrap_or_else(|| panic!("no `nk: timing:` line on stderr\n{}", out.describe()));
    let parts: Vec<&str> = line["nk: timing: ".len()..].split(", ").collect();
    assert_eq!(
        parts.len(),
        names.len(),
        "{} figures in {line:?}",
        names.len()
    );
    for (part, name) in parts.iter().zip(names) {
        let num = part
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|r| r.strip_suffix(" ms"))
            .and_then(|n| n.parse::<f64>().ok());
        assert!(num.is_some_and(|n| n >= 0.0), "`{name} X ms` in {line:?}");
    }
}

/// What [`nginx_with`] serves besides the web root. In the extra directives `{http_port}` and
/// `{https_port}` stand for the ports nginx got.
#[derive(Debug, Default)]
pub struct NginxSite<'a> {
    /// A second server block, on a port of its own, with TLS (1.2 and 1.3) and this
    /// (certificate, key).
    pub tls: Option<(&'a Path, &'a Path)>,
    /// Extra directives of the plain server block (e.g. `location`s).
    pub http_extra: &'a str,
    /// Extra parameters of the plain server block's `listen` (e.g. `proxy_protocol`).
    pub listen_options: &'a str,
    /// Extra directives of the TLS server block.
    pub https_extra: &'a str,
    /// Extra parameters of the TLS server block's `listen` (e.g. `http2`).
    pub tls_listen_options: &'a str,
}

/// nginx in the foreground, one process (`master_process off`, so killing it leaves no
/// worker behind), every path inside a temp dir, keepalive_timeout 65. Every server block
/// serves the web root (`index index.html`).
#[derive(Debug)]
pub struct Nginx {
    /// The plain server block's port.
    pub port: u16,
    /// The TLS server block's port, if there is one.
    pub tls_port: Option<u16>,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// The TLS server block's port (panics without one).
    pub fn https_port(&self) -> u16 {
        self.tls_port.expect("this nginx has no TLS server block")
    }
}

/// [`nginx_with`] one plain server block and nothing else.
pub fn nginx(www: impl FnOnce(&Path)) -> Nginx {
    nginx_with(www, &NginxSite::default())
}

/// nginx on 127.0.0.1, on ports that were free a moment ago (5 tries, in case one was taken
/// meanwhile), ready once every port accepts. `www` fills the (existing, empty) web root.
pub fn nginx_with(www: impl FnOnce(&Path), site: &NginxSite) -> Nginx {
    let bin = require_tool("nginx", "nginx-light");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("www")).expect("mkdir www");
    www(&d.join("www"));
    let mut last_err = String::new();
    for _ in 0..5 {
        let port = free_port("127.0.0.1");
        let tls_port = site.tls.map(|_| free_port("127.0.0.1"));
        if tls_port == Some(port) {
            continue;
        }
        let extra = |directives: &str| {
            directives
                .replace("{http_port}", &port.to_string())
                .replace("{https_port}", &tls_port.unwrap_or(0).to_string())
        };
        let root = format!("root {}/www; index index.html;", d.display());
        let mut servers = format!(
            "server {{ listen 127.0.0.1:{port} {}; {root} {} }}\n",
            site.listen_options,
            extra(site.http_extra)
        );
        if let (Some((cert, key)), Some(tls_port)) = (site.tls, tls_port) {
            servers += &format!(
                "server {{\n\
                   listen 127.0.0.1:{tls_port} ssl {};\n\
                   ssl_certificate {};\n\
                   ssl_certificate_key {};\n\
                   ssl_protocols TLSv1.2 TLSv1.3;\n\
                   {root} {}\n\
                 }}\n",
                site.tls_listen_options,
                cert.display(),
                key.display(),
                extra(site.https_extra)
            );
        }
        let conf = format!(
            "master_process off;\n\
             worker_processes 1;\n\
             error_log {d}/error.log;\n\
             pid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log {d}/access.log;\n\
               client_body_temp_path {d}/client_body;\n\
               proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               keepalive_timeout 65;\n\
               default_type text/html;\n\
               {servers}\
             }}\n",
            d = d.display()
        );
        let conf_path = d.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let mut cmd = Command::new(&bin);
        cmd.arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(d)
            .args(["-g", "daemon off;"]);
        let mut p = Proc::spawn("nginx", cmd, In::Null, Out::Null);
        let ports: Vec<u16> = std::iter::once(port).chain(tls_port).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let up = loop {
            let ready = ports.iter().all(|&port| {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            });
            if ready {
                break true;
            }
            if !p.is_running() || Instant::now() >= deadline {
                break false;
            }
            thread::sleep(Duration::from_millis(10));
        };
        if up {
            return Nginx {
                port,
                tls_port,
                _proc: p,
                _dir: dir,
            };
        }
        last_err = format!(
            "{}{}",
            p.stderr_so_far(),
            std::fs::read_to_string(d.join("error.log")).unwrap_or_default()
        );
    }
    panic!("nginx did not start in 5 tries; last error:\n{last_err}");
}
