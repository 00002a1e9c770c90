//! nk's service servers (`nk echo -l`, `nk chargen -l` ...) and xinetd's internal services,
//! started for a test on ports of 127.0.0.1, with the small socket helpers that ask them
//! something: shared by tests/services.rs and tests/inetd_services.rs.

use super::*;
use std::io::Write;
use std::net::{Shutdown, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running `nk SERVICE -v ... -l ADDR` and the ports of its `listening on` lines.
pub struct Service {
    pub nk: Proc,
    pub tcp: Option<u16>,
    pub udp: Option<u16>,
}

impl Service {
    pub fn tcp(&self) -> u16 {
        self.tcp.expect("this server has no TCP listener")
    }

    pub fn udp(&self) -> u16 {
        self.udp.expect("this server has no UDP listener")
    }
}

/// `nk SERVICE -v ARGS -l 127.0.0.1:0`, ready (every expected listening line seen).
pub fn serve(service: &str, args: &[&str]) -> Service {
    serve_with(service, args, "127.0.0.1:0", &[])
}

/// `nk SERVICE -v ARGS -l ADDR` with extra environment variables. Waits for
/// `nk: listening on ADDR:PORT (tcp)` and `(udp)` (only the one asked for with `--tcp` / `-u`).
pub fn serve_with(service: &str, args: &[&str], addr: &str, env: &[(&str, &str)]) -> Service {
    let mut full = vec![service, "-v"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-l", addr]);
    let want_tcp = !args.iter().any(|a| *a == "-u" || *a == "--udp");
    let want_udp = !args.contains(&"--tcp");
    let mut cmd = nk(&full);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn(&format!("nk {}", full.join(" ")), cmd, In::Null, Out::Pipe);
    let (mut tcp, mut udp) = (None, None);
    while (want_tcp && tcp.is_none()) || (want_udp && udp.is_none()) {
        let line = p.wait_stderr_line(10.0, |l| l.starts_with("nk: listening on "));
        let port = parse_listening_port(&line)
            .unwrap_or_else(|| panic!("no port in the listening report {line:?}"));
        assert_ne!(port, 0, "listening report shows port 0: {line:?}");
        if line.ends_with(" (tcp)") {
            tcp = Some(port);
        } else if line.ends_with(" (udp)") {
            udp = Some(port);
        } else {
            panic!("listening report of {full:?} ends neither with (tcp) nor (udp): {line:?}");
        }
    }
    Service { nk: p, tcp, udp }
}

/// A port free for both TCP and UDP on 127.0.0.1 a moment ago (for xinetd, which cannot
/// report the ports it bound).
pub fn free_tcp_udp_port() -> u16 {
    for _ in 0..100 {
        let t = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0/tcp");
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP on 127.0.0.1 in 100 tries");
}

/// One datagram to 127.0.0.1:`port` from a fresh socket; the answer (from that port).
pub fn ask_udp(port: u16, payload: &[u8], what: &str) -> Vec<u8> {
    let s = udp("127.0.0.1");
    s.send_to(payload, ("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("{what}: send: {e}"));
    let (got, from) = recv(&s, what);
    assert_eq!(from.port(), port, "{what}: answer from another port");
    got
}

/// Connects to 127.0.0.1:`port`, sends `payload`, half-closes, reads to EOF (5 s of silence
/// at most). Returns the bytes and whether EOF was seen.
pub fn ask_tcp(port: u16, payload: &[u8]) -> (Vec<u8>, bool) {
    let mut s = connect_local(port);
    s.write_all(payload).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown(Write)");
    read_until_eof(&mut s, 5.0)
}

/// xinetd running its internal `NAME-stream` and `NAME-dgram` services on one port of
/// 127.0.0.1, in the foreground, with its own configuration and log in a temporary directory.
/// Dropping it stops xinetd (SIGTERM, then SIGKILL).
pub struct Xinetd {
    proc: Option<Proc>,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Xinetd {
    /// Starts xinetd with the internal `name` service (`echo`, `daytime`, `chargen`, ...), TCP and UDP, on a
    /// free port; returns once its log says both services are working.
    pub fn start(name: &str) -> Xinetd {
        require_tool("xinetd", "xinetd");
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("xinetd.conf");
        let log = dir.path().join("xinetd.log");
        let pidfile = dir.path().join("xinetd.pid");
        let port = free_tcp_udp_port();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let user = if root { "\tuser = root\n" } else { "" };
        // UNLISTED: /etc/services ties the names echo and daytime to ports 7 and 13, and xinetd
        // refuses another port for a listed service; INTERNAL services are found by name.
        let mut text = String::from("defaults\n{\n\tinstances = UNLIMITED\n}\n");
        for (socket_type, protocol, wait) in [("stream", "tcp", "no"), ("dgram", "udp", "yes")] {
            text.push_str(&format!(
                "service {name}\n{{\n\ttype = INTERNAL UNLISTED\n\tid = {name}-{socket_type}\n\
                 \tsocket_type = {socket_type}\n\tprotocol = {protocol}\n\twait = {wait}\n\
                 {user}\tbind = 127.0.0.1\n\tport = {port}\n\tflags = NOLIBWRAP\n}}\n"
            ));
        }
        std::fs::write(&conf, &text).expect("write xinetd.conf");
        let mut cmd = Command::new("xinetd");
        cmd.arg("-dontfork")
            .arg("-f")
            .arg(&conf)
            .arg("-pidfile")
            .arg(&pidfile)
            .arg("-filelog")
            .arg(&log);
        let mut p = Proc::spawn(
            &format!("xinetd -dontfork -f {}", conf.display()),
            cmd,
            In::Null,
            Out::Pipe,
        );
        let log_text = |log: &Path| std::fs::read_to_string(log).unwrap_or_default();
        let started = wait_until(10.0, || {
            log_text(&log).contains("Started working") || !p.is_running()
        });
        let text_now = log_text(&log);
        let working = text_now
            .split("Started working: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok());
        assert!(
            started && working == Some(2),
            "xinetd did not start its two {name} services on port {port}\n--- config:\n{text}\
             --- log:\n{text_now}--- stderr:\n{}",
            p.stderr_so_far()
        );
        Xinetd {
            proc: Some(p),
            port,
            log,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Xinetd {
    fn drop(&mut self) {
        if let Some(p) = self.proc.take() {
            let pid = p.pid();
            // SAFETY: kill(2) on our own child's pid (not yet reaped, so not reused).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
            wait_until(5.0, || !process_alive(pid));
            drop(p); // SIGKILL if still there, and reap
        }
    }
}
