//! `nk ping --tcp` / `--udp`: a ping that needs no privilege and passes firewalls that drop
//! ICMP, by timing what a service port does instead of an echo.
//!
//! TCP: each probe is a non-blocking connect, timed from the SYN to the connection's
//! completion (poll for writability, bounded by -W and -w), then closed with a reset
//! (SO_LINGER 0): the server's next read of an accepted probe fails at once instead of its
//! holding an idle connection, and no TIME_WAIT socket is left behind per probe. (Linux keeps
//! even a reset connection in the accept queue until the server accepts it: a server that never
//! accepts sees its queue fill, as with any connect; only a half-open SYN probe, which needs
//! privilege, avoids that.) UDP: each probe is one datagram on a fresh connected socket (so a late
//! reply to an earlier probe is never taken for this one), timed to the first reply; the ICMP
//! port unreachable the kernel reports as ECONNREFUSED is a `closed` port.
//!
//! Lines and the summary follow ping's shape (`seq=`, `time=` with iputils' decimals rule, the
//! `--- ... ping statistics ---` block and its rtt arithmetic from [`super::stats`]). Exit
//! status: 0 when a probe connected (TCP) or was answered (UDP), 1 otherwise: a refused or
//! closed port is an answer from the host but not the service, and scripts wait for the
//! service (`until nk ping --tcp -c 1 db:5432; do ...`), as tcping and nping's "successful
//! connections" count only completed handshakes.

use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::pinger::{summary_printer, timestamp_prefix, write_flushed, Rules};
use super::stats::{reply_time, Stats};
use crate::net::addr::{self, Family, Target};
use crate::net::deadline::{format_duration, wait_readable, Deadline};

/// Which transport probes the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `--tcp`: connect and reset.
    Tcp,
    /// `--udp`: a datagram and its reply.
    Udp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--tcp` or `--udp`.
    pub transport: Transport,
    /// HOST:PORT as typed (the header and the summary name it).
    pub target_text: String,
    /// The address probed.
    pub destination: SocketAddr,
    /// -c, -i, -W (the longest one probe waits), -w, -q, -D, --json, as ICMP ping has them.
    pub rules: Rules,
    /// `-s`: UDP payload bytes.
    pub size: usize,
    /// `-t`: IP TTL / hop limit of the probes.
    pub ttl: Option<u32>,
}

/// How one probe ended.
#[derive(Debug)]
enum Outcome {
    /// TCP connected / UDP reply of this many bytes, after µs.
    Answered { micros: i64, bytes: usize },
    /// TCP refused (RST) / UDP port unreachable, after µs.
    Refused { micros: i64 },
    /// Nothing within the probe's wait.
    Timeout { waited: Duration },
    /// Anything else the kernel said (no route, host unreachable...).
    Failed(io::Error),
}

/// The figures the summary (and the SIGINT handler) prints.
#[derive(Debug, Default)]
struct Shared {
    stats: Stats,
    refused: u64,
    timeouts: u64,
    elapsed_us: u64,
}

/// Resolves `target` to the one address probed: the first of the family asked.
pub fn destination(target: &Target, family: Family) -> Result<SocketAddr> {
    let found = addr::resolve(
        target,
        family,
        Deadline::after(Some(Duration::from_secs(30))),
    )?;
    Ok(found[0])
}

/// One run of probes, printing to `out`.
#[derive(Debug)]
pub struct Prober<W> {
    config: Config,
    out: W,
    shared: Arc<Mutex<Shared>>,
}

impl<W: Write> Prober<W> {
    /// A run as `config` says, printing to `out`.
    pub fn new(config: Config, out: W) -> Prober<W> {
        let shared = Shared {
            stats: Stats {
                timing: true,
                ..Stats::default()
            },
            ..Shared::default()
        };
        Prober {
            config,
            out,
            shared: Arc::new(Mutex::new(shared)),
        }
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What SIGINT prints before the exit: the summary so far.
    pub fn summary_printer(&self) -> impl Fn() + Send + 'static {
        summary_printer(&self.shared, &self.config, summary_text)
    }

    /// Probes until -c or -w says stop; true when a probe was answered.
    pub fn run(&mut self) -> Result<bool> {
        if !self.config.rules.json {
            let line = format!(
                "PING {} ({}) over {}\n",
                self.config.target_text,
                addr::display_addr(self.config.destination),
                self.config.transport.name().to_uppercase()
            );
            self.write(line.as_bytes())?;
        }
        let start = Instant::now();
        let run_deadline = Deadline::after(self.config.rules.deadline);
        let mut seq: u64 = 0;
        loop {
            let (sent, answered) = {
                let shared = self.shared();
                (shared.stats.transmitted, shared.stats.received)
            };
            // iputils' rule: with -w, -c counts answers; without, requests.
            let done = match (self.config.rules.count, self.config.rules.deadline) {
                (Some(count), Some(_)) => answered >= count,
                (Some(count), None) => sent >= count,
                (None, _) => false,
            };
            if done || run_deadline.expired() {
                break;
            }
            if seq > 0 {
                // The next probe is due an interval after this one's start, at the earliest.
                let due = start + self.config.rules.interval.saturating_mul(seq as u32);
                let until = Deadline::at(due).min(run_deadline);
                if let Some(wait) = until.remaining().ok().flatten() {
                    std::thread::sleep(wait);
                }
                if run_deadline.expired() {
                    break;
                }
            }
            seq += 1;
            let probe_deadline = Deadline::after(Some(self.config.rules.linger)).min(run_deadline);
            let probe_start = Instant::now();
            self.shared().stats.transmitted += 1;
            let outcome = match self.config.transport {
                Transport::Tcp => tcp_probe(&self.config, probe_deadline),
                Transport::Udp => udp_probe(&self.config, seq, probe_deadline),
            };
            let outcome = outcome.unwrap_or_else(Outcome::Failed);
            let outcome = match outcome {
                Outcome::Timeout { .. } => Outcome::Timeout {
                    waited: probe_start.elapsed(),
                },
                other => other,
            };
            {
                let mut shared = self.shared();
                match &outcome {
                    Outcome::Answered { micros, .. } => {
                        shared.stats.received += 1;
                        shared.stats.add_rtt(*micros);
                    }
                    Outcome::Refused { .. } => shared.refused += 1,
                    Outcome::Timeout { .. } => shared.timeouts += 1,
                    Outcome::Failed(_) => shared.stats.errors += 1,
                }
                shared.elapsed_us = start.elapsed().as_micros() as u64;
            }
            self.print_probe(seq, &outcome)?;
        }
        let text = summary_text(&self.config, &self.shared());
        self.write(text.as_bytes())?;
        Ok(self.shared().stats.received > 0)
    }

    fn print_probe(&mut self, seq: u64, outcome: &Outcome) -> Result<()> {
        if self.config.rules.quiet {
            return Ok(());
        }
        let to = addr::display_addr(self.config.destination);
        let tcp = self.config.transport == Transport::Tcp;
        if self.config.rules.json {
            let (result, micros, error) = match outcome {
                Outcome::Answered { micros, .. } => {
                    (if tcp { "connected" } else { "reply" }, Some(*micros), None)
                }
                Outcome::Refused { micros } => {
                    (if tcp { "refused" } else { "closed" }, Some(*micros), None)
                }
                Outcome::Timeout { .. } => ("timeout", None, None),
                Outcome::Failed(err) => ("error", None, Some(os_text(err))),
            };
            let mut object = serde_json::json!({
                "type": "probe",
                "proto": self.config.transport.name(),
                "seq": seq,
                "to": to,
                "result": result,
                "time_ms": micros.map(|us| us as f64 / 1000.0),
            });
            if let Outcome::Answered { bytes, .. } = outcome {
                if !tcp {
                    object["bytes"] = (*bytes).into();
                }
            }
            if let Some(error) = error {
                object["error"] = error.into();
            }
            return self.write(format!("{object}\n").as_bytes());
        }
        let body = match outcome {
            Outcome::Answered { micros, .. } if tcp => {
                format!(
                    "connected to {to}: seq={seq} time={} ms",
                    reply_time(*micros)
                )
            }
            Outcome::Answered { micros, bytes } => format!(
                "{bytes} bytes from {to}: seq={seq} time={} ms",
                reply_time(*micros)
            ),
            Outcome::Refused { micros } if tcp => format!(
                "{to}: seq={seq} Connection refused time={} ms",
                reply_time(*micros)
            ),
            Outcome::Refused { micros } => format!(
                "{to}: seq={seq} closed (port unreachable) time={} ms",
                reply_time(*micros)
            ),
            Outcome::Timeout { waited } => format!(
                "{to}: seq={seq} timeout: no answer within {}",
                format_duration(*waited)
            ),
            Outcome::Failed(err) => format!("{to}: seq={seq} {}", os_text(err)),
        };
        let line = format!("{}{body}\n", timestamp_prefix(self.config.rules.timestamps));
        self.write(line.as_bytes())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        write_flushed(&mut self.out, bytes)
    }
}

/// One TCP probe: a non-blocking connect, waited for until `deadline`, then a reset.
fn tcp_probe(config: &Config, deadline: Deadline) -> io::Result<Outcome> {
    let dest = config.destination;
    let socket = Socket::new(Domain::for_address(dest), Type::STREAM, Some(Protocol::TCP))?;
    set_ttl(&socket, dest, config.ttl)?;
    socket.set_nonblocking(true)?;
    // A reset on close: the server does not keep an idle connection, and no TIME_WAIT.
    socket.set_linger(Some(Duration::ZERO))?;
    let start = Instant::now();
    match socket.connect(&SockAddr::from(dest)) {
        Ok(()) => return Ok(answered(start, 0)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Ok(failed(e, start)),
    }
    loop {
        let mut pollfd = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, deadline.poll_timeout_ms()) };
        let micros = start.elapsed().as_micros() as i64;
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if ready == 0 {
            if deadline.expired() {
                return Ok(Outcome::Timeout {
                    waited: start.elapsed(),
                });
            }
            continue;
        }
        return Ok(match socket.take_error()? {
            None => Outcome::Answered { micros, bytes: 0 },
            Some(err) => failed(err, start),
        });
    }
}

/// One UDP probe: `size` bytes on a fresh connected socket, and the first reply before
/// `deadline`.
fn udp_probe(config: &Config, seq: u64, deadline: Deadline) -> io::Result<Outcome> {
    let dest = config.destination;
    let local = SocketAddr::new(addr::unspecified(dest.is_ipv6()), 0);
    let socket = UdpSocket::bind(local)?;
    set_ttl(&socket2::SockRef::from(&socket), dest, config.ttl)?;
    socket.connect(dest)?;
    socket.set_nonblocking(true)?;
    let mut payload = format!("nk ping seq={seq}\n").into_bytes();
    payload.resize(config.size, b'.');
    let start = Instant::now();
    if let Err(err) = socket.send(&payload) {
        return Ok(failed(err, start));
    }
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv(&mut buf) {
            Ok(bytes) => return Ok(answered(start, bytes)),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Ok(failed(err, start)),
        }
        if deadline.expired() {
            return Ok(Outcome::Timeout {
                waited: start.elapsed(),
            });
        }
        wait_readable(socket.as_raw_fd(), deadline)?;
    }
}

fn answered(start: Instant, bytes: usize) -> Outcome {
    Outcome::Answered {
        micros: start.elapsed().as_micros() as i64,
        bytes,
    }
}

/// A refusal (TCP RST, ICMP port unreachable) is the port's answer; other errors are failures.
fn failed(err: io::Error, start: Instant) -> Outcome {
    if err.raw_os_error() == Some(libc::ECONNREFUSED) {
        Outcome::Refused {
            micros: start.elapsed().as_micros() as i64,
        }
    } else {
        Outcome::Failed(err)
    }
}

fn set_ttl(socket: &Socket, dest: SocketAddr, ttl: Option<u32>) -> io::Result<()> {
    match ttl {
        None => Ok(()),
        Some(ttl) if dest.is_ipv6() => socket.set_unicast_hops_v6(ttl),
        Some(ttl) => socket.set_ttl(ttl),
    }
}

/// The system's words for an OS error, without Rust's ` (os error N)`, as ping prints them.
fn os_text(err: &io::Error) -> String {
    super::os_text(err)
}

/// The summary: ping's block with refused and timed-out probes counted apart, or one JSON
/// object.
fn summary_text(config: &Config, shared: &Shared) -> String {
    let stats = &shared.stats;
    let tcp = config.transport == Transport::Tcp;
    if config.rules.json {
        let mut object = stats.json_figures(shared.elapsed_us);
        object["proto"] = config.transport.name().into();
        object["host"] = config.target_text.clone().into();
        object["address"] = addr::display_addr(config.destination).into();
        object["timeouts"] = shared.timeouts.into();
        let (answered, refused) = if tcp {
            ("connected", "refused")
        } else {
            ("received", "closed")
        };
        object[answered] = stats.received.into();
        object[refused] = shared.refused.into();
        return format!("{object}\n");
    }
    let mut text = format!(
        "\n--- {} {} ping statistics ---\n{} probes transmitted, {} {}",
        config.target_text,
        config.transport.name(),
        stats.transmitted,
        stats.received,
        if tcp { "connected" } else { "received" },
    );
    if shared.refused > 0 {
        let word = if tcp { "refused" } else { "closed" };
        text.push_str(&format!(", {} {word}", shared.refused));
    }
    if shared.timeouts > 0 {
        text.push_str(&format!(", {} timed out", shared.timeouts));
    }
    if stats.errors > 0 {
        text.push_str(&format!(", +{} errors", stats.errors));
    }
    text.push_str(&format!(
        ", {}% loss, time {}ms\n",
        stats.loss_text(),
        (shared.elapsed_us + 500) / 1000
    ));
    if let Some(line) = stats.rtt_line() {
        text.push_str(&line);
        text.push('\n');
    }
    text
}
