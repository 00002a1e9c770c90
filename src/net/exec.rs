//! `-e PROG ARGS` / `-c 'SHELL CMD'`: a child process whose stdin and stdout are the connection.
//!
//! The child gets pipes, not the socket itself, so the one relay carries its bytes with every
//! rule of cli.md (half-close, `-i`, counters, `-x`): the peer's EOF closes the child's stdin,
//! and the child's end of output closes the connection after its last byte has been sent.
//! It learns who it talks to from the `NK_*` environment. The child runs in its own process
//! group and is always reaped; a group still running when its connection is over is asked to
//! stop (SIGTERM), then killed.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use socket2::SockAddr;

use crate::debug;
use crate::exit::usage;
use crate::net::addr::display_sockaddr;
use crate::net::relay::{
    self, AfterPeerEof, AtEof, RelayOptions, Remote, Sink, Source, SplitStream,
};

/// How long a child may take to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(1);

/// What to run for each connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecSpec {
    /// `-e`: a program and its arguments, split by [`split_exec_line`], no shell.
    Program(Vec<String>),
    /// `-c`: a command line for `/bin/sh -c`.
    Shell(String),
}

/// Splits `-e`'s line into the program and its arguments as ncat's `--exec` does: ASCII
/// whitespace separates words, a backslash makes the next character literal (`\ ` keeps a
/// space inside a word, `\\` is one backslash), a trailing backslash is dropped. No shell
/// and no quotes. (ncat also skips whitespace right after an escaped character, joining two
/// words; that quirk is not copied: `a\b c` is two words here.)
pub fn split_exec_line(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            in_word = true;
            word.extend(chars.next());
        } else if c.is_ascii_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut word));
                in_word = false;
            }
        } else {
            word.push(c);
            in_word = true;
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

impl ExecSpec {
    /// From the `-e` / `-c` options; an empty command is a usage error.
    pub fn from_args(exec: Option<&str>, shell: Option<&str>) -> Result<Option<ExecSpec>> {
        match (exec, shell) {
            (Some(line), _) => {
                let words = split_exec_line(line);
                if words.first().is_none_or(String::is_empty) {
                    return Err(usage("-e needs a program to run"));
                }
                Ok(Some(ExecSpec::Program(words)))
            }
            (None, Some(command)) if command.trim().is_empty() => {
                Err(usage("-c needs a command to run"))
            }
            (None, Some(command)) => Ok(Some(ExecSpec::Shell(command.to_string()))),
            (None, None) => Ok(None),
        }
    }

    /// The name used in messages: the program, or `sh -c`.
    pub fn name(&self) -> String {
        match self {
            ExecSpec::Program(words) => words[0].clone(),
            ExecSpec::Shell(_) => "sh -c".to_string(),
        }
    }

    fn command(&self) -> Command {
        match self {
            ExecSpec::Program(words) => {
                let mut command = Command::new(&words[0]);
                command.args(&words[1..]);
                command
            }
            ExecSpec::Shell(line) => {
                let mut command = Command::new("/bin/sh");
                command.arg("-c").arg(line);
                command
            }
        }
    }
}

/// Who the child talks to: the `NK_*` environment.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// NK_REMOTE_ADDR: the peer's address (a path, or empty, for Unix sockets).
    pub remote_addr: String,
    /// NK_REMOTE_PORT (empty for Unix sockets).
    pub remote_port: String,
    /// NK_LOCAL_ADDR: our address.
    pub local_addr: String,
    /// NK_LOCAL_PORT (empty for Unix sockets).
    pub local_port: String,
    /// NK_PROTO: `tcp`, `udp`, `unix`.
    pub proto: &'static str,
    /// NK_CONN_SEQ: 1 for the first connection accepted, 2 for the next...
    pub seq: u64,
    /// NK_TLS_PEER_SUBJECT: the subject of the certificate the TLS peer presented, if any.
    pub tls_peer_subject: Option<String>,
}

impl ConnInfo {
    /// The environment for a connection between `remote` and `local`.
    pub fn new(remote: &SockAddr, local: &SockAddr, proto: &'static str, seq: u64) -> ConnInfo {
        let (remote_addr, remote_port) = addr_and_port(remote);
        let (local_addr, local_port) = addr_and_port(local);
        ConnInfo {
            remote_addr,
            remote_port,
            local_addr,
            local_port,
            proto,
            seq,
            tls_peer_subject: None,
        }
    }
}

/// An IP address (IPv4-mapped shown as IPv4) and port, or a Unix path and no port.
fn addr_and_port(addr: &SockAddr) -> (String, String) {
    match addr.as_socket() {
        Some(ip) => (ip.ip().to_canonical().to_string(), ip.port().to_string()),
        None if addr.is_unnamed() => (String::new(), String::new()),
        None => (display_sockaddr(addr), String::new()),
    }
}

/// Starts the child with piped stdin/stdout, inherited stderr, and the `NK_*` environment.
pub fn spawn(spec: &ExecSpec, info: &ConnInfo) -> Result<Child> {
    let mut command = spec.command();
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env("NK_REMOTE_ADDR", &info.remote_addr)
        .env("NK_REMOTE_PORT", &info.remote_port)
        .env("NK_LOCAL_ADDR", &info.local_addr)
        .env("NK_LOCAL_PORT", &info.local_port)
        .env("NK_PROTO", info.proto)
        .env("NK_CONN_SEQ", info.seq.to_string())
        .env(
            "NK_TLS_PEER_SUBJECT",
            info.tls_peer_subject.as_deref().unwrap_or_default(),
        )
        // Its own process group, so that stopping it also stops what it started (a shell's
        // children), and a terminal's Ctrl-C reaches nk, which stops it in turn.
        .process_group(0);
    command
        .spawn()
        .with_context(|| format!("run {}", spec.name()))
}

/// Runs the child for one connection and relays the connection through it; returns once the
/// connection is over and the child has been reaped. `on_spawn` learns the child's pid (so a
/// server can stop every child on SIGTERM).
pub fn relay_child<S: SplitStream>(
    stream: Arc<S>,
    peer: &str,
    spec: &ExecSpec,
    info: &ConnInfo,
    opts: &RelayOptions,
    on_spawn: impl FnOnce(u32),
) -> Result<()> {
    let mut child = spawn(spec, info)?;
    on_spawn(child.id());
    let name = spec.name();
    let result = (|| {
        let stdout = child.stdout.take().context("child stdout")?;
        let stdin = child.stdin.take().context("child stdin")?;
        let source = Source::from_fd(stdout, format!("read from {name}"))
            .after_peer_eof(AfterPeerEof::UntilEnd);
        let sink = Sink::from_fd(stdin, format!("write to {name}")).at_eof(AtEof::Close);
        let remote = Remote::from_shared(stream, peer)?;
        let mut opts = opts.clone();
        // The child's end of output ends the connection (after its last byte is sent).
        opts.quit_after_eof = Some(Duration::ZERO);
        relay::relay(Some(source), sink, remote, &opts)
    })();
    reap(&mut child, &name);
    result
}

/// Waits for the child; one that outlives its connection is terminated, then killed.
pub fn reap(child: &mut Child, name: &str) {
    let started = Instant::now();
    let mut termed = false;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                debug!("{name} (pid {}) exited: {status}", child.id());
                return;
            }
            Ok(None) => {}
            Err(err) => {
                debug!("wait for {name}: {err}");
                return;
            }
        }
        if !termed {
            signal_group(child.id(), libc::SIGTERM);
            termed = true;
        } else if started.elapsed() > TERM_GRACE {
            signal_group(child.id(), libc::SIGKILL);
            let _ = child.wait();
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to a child's process group (the child and everything it started).
pub fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) on the group led by a child we spawned with process_group(0); at worst
    // the group is already gone (ESRCH).
    let result = unsafe { libc::kill(-pid, signal) };
    if result != 0 {
        debug!("kill -{signal} -{pid}: {}", io::Error::last_os_error());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_specs_split_without_a_shell() {
        let spec = ExecSpec::from_args(Some("/bin/cat -u"), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            spec,
            ExecSpec::Program(vec!["/bin/cat".into(), "-u".into()])
        );
        assert_eq!(spec.name(), "/bin/cat");
        let shell = ExecSpec::from_args(None, Some("echo $NK_CONN_SEQ"))
            .unwrap()
            .unwrap();
        assert_eq!(shell, ExecSpec::Shell("echo $NK_CONN_SEQ".into()));
        assert!(ExecSpec::from_args(Some("  "), None).is_err());
        assert!(ExecSpec::from_args(None, Some("")).is_err());
        assert_eq!(ExecSpec::from_args(None, None).unwrap(), None);
    }

    #[test]
    fn exec_lines_split_with_ncat_backslash_escapes() {
        let cases: &[(&str, &[&str])] = &[
            ("ncat -l -k", &["ncat", "-l", "-k"]),
            (" prog  a\\tb ", &["prog", "atb"]),
            (
                "t\\ p\\ s hello how\\ are you?",
                &["t p s", "hello", "how are", "you?"],
            ),
            ("ncat\\", &["ncat"]),
            ("ncat\\\\ a", &["ncat\\", "a"]),
            ("ncat\\ \\", &["ncat "]),
            (
                "perl -e while(<>)\\{print\\}",
                &["perl", "-e", "while(<>){print}"],
            ),
            ("", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(split_exec_line(line), *want, "{line:?}");
        }
        assert!(ExecSpec::from_args(Some("\\"), None).is_err());
    }

    #[test]
    fn a_child_sees_its_connection_in_the_environment() {
        let remote: std::net::SocketAddr = "[::ffff:127.0.0.2]:4000".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:7".parse().unwrap();
        let info = ConnInfo::new(&remote.into(), &local.into(), "tcp", 3);
        let spec = ExecSpec::Shell("echo $NK_REMOTE_ADDR $NK_REMOTE_PORT $NK_LOCAL_ADDR $NK_LOCAL_PORT $NK_PROTO $NK_CONN_SEQ".into());
        let child = spawn(&spec, &info).unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "127.0.0.2 4000 127.0.0.1 7 tcp 3\n"
        );
    }
}
