//! The ping loop: when to send, which replies are ours, what to print, and when to stop, with
//! iputils' rules, over any [`EchoSocket`] and any output, so the matching and statistics are
//! tested with a scripted socket and no privileges.
//!
//! Matching: on a raw socket every ICMP message of the host arrives, so a reply must carry our
//! identifier; on a datagram socket the kernel already delivers only ours. Either way the
//! sequence must be one we sent, and a payload long enough to carry a send time must carry a
//! plausible one (not before the run, not in the future). A sequence answered twice is a
//! duplicate, as iputils' 65536-bit table decides. Replies must come from the destination,
//! except for `-b` (every host on the link answers a broadcast) and `::` (the local host
//! answers from its own address).
//!
//! Stopping: `-c N` stops at N replies (plus errors), or after the N-th request and a final
//! wait (twice the longest round trip, at least the interval, or `-W` when nothing came
//! back); `-w` ends the run at its deadline and lets requests go on past `-c` until then; the
//! first ICMP error ends a `-w` run.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::options::{adaptive_interval, pattern_line, payload_fill, RunOptions};
use super::stats::{reply_time, Stats};
use crate::exit::StdoutClosed;
use crate::net::addr;
use crate::net::deadline::Deadline;
use crate::net::icmp::{self as icmp_socket, EchoSocket, Received, SocketKind, SocketTuning};
use crate::wire::icmp::{self, Incoming, HEADER_LEN, TIMESTAMP_LEN};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The host as typed (the header and the summary name it).
    pub hostname: String,
    /// The address pinged.
    pub destination: IpAddr,
    /// When to send, wait and stop, and how to print.
    pub rules: Rules,
    /// `-s`.
    pub size: usize,
    /// `-f`.
    pub flood: bool,
    /// `-n` (and literal targets, and floods).
    pub numeric: bool,
    /// The IPv6 scope (interface index) of a link-local destination, 0 for none; shown as
    /// `%iface` in the header, as iputils does.
    pub scope_id: u32,
    /// Take replies from any sender: a broadcast (`-b`) is answered by every host on the
    /// link, and a request to `::` by the local host from its own address.
    pub any_source: bool,
    /// `-p -a -l -A -O -U` and the header's source (see [`super::options`]).
    pub options: RunOptions,
    /// The socket's options, to ask the kernel the path MTU a `message too long` met.
    pub tuning: SocketTuning,
}

/// The options ICMP ping and its TCP/UDP probes share, with the same meanings.
#[derive(Debug, Clone)]
pub struct Rules {
    /// `-c`: requests (with -w: replies).
    pub count: Option<u64>,
    /// `-i` (zero for a flood).
    pub interval: Duration,
    /// `-W`: how long a reply is waited for.
    pub linger: Duration,
    /// `-w`: the whole run.
    pub deadline: Option<Duration>,
    /// `-q`.
    pub quiet: bool,
    /// `-D`.
    pub timestamps: bool,
    /// `--json`.
    pub json: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// iputils' exit rule: a reply came (and with -c and -w, N of them).
    pub success: bool,
}

/// What the signal threads need to print the summary or the status line.
#[derive(Debug, Default)]
struct Shared {
    stats: Stats,
    /// From the start to the last request sent, in µs (iputils' `time`).
    elapsed_us: u64,
    /// The most requests ever outstanding when a reply came (iputils' `pipe`).
    pipe: u32,
}

/// Sends a flood no faster than this when replies stop coming (iputils' MININTERVAL).
const FLOOD_MIN_GAP: Duration = Duration::from_millis(10);
/// The most queued messages read in one go before a request is sent.
const MAX_QUEUED_READ: usize = 64;
/// The longest a wait lasts with nothing scheduled, so a stalled loop still looks around.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// One ping run.
#[derive(Debug)]
pub struct Pinger<S, W> {
    socket: S,
    out: W,
    config: Config,
    shared: Arc<Mutex<Shared>>,
    /// Send times are carried in the payload relative to this instant.
    base: Instant,
    answered: Box<[u64; 1024]>,
    /// The highest sequence acknowledged (iputils' `acked`), for in-flight counting.
    acked: u16,
    names: HashMap<IpAddr, String>,
    /// The payload of every request before its send time is written in (`-p`).
    fill: Vec<u8>,
}

impl<S: EchoSocket, W: Write> Pinger<S, W> {
    /// A run over `socket`, printing to `out`.
    pub fn new(socket: S, out: W, config: Config) -> Pinger<S, W> {
        let shared = Shared {
            stats: Stats {
                timing: config.size >= TIMESTAMP_LEN,
                ..Stats::default()
            },
            ..Shared::default()
        };
        let fill = payload_fill(config.options.pattern.as_ref(), config.size);
        Pinger {
            socket,
            out,
            config,
            shared: Arc::new(Mutex::new(shared)),
            base: Instant::now(),
            answered: Box::new([0; 1024]),
            acked: 0,
            names: HashMap::new(),
            fill,
        }
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A closure that prints the summary from wherever the run has got to (for SIGINT).
    pub fn summary_printer(&self) -> impl Fn() + Send + 'static {
        summary_printer(&self.shared, &self.config, summary_text)
    }

    /// Prints iputils' status line on stderr at each SIGQUIT, while the run goes on.
    pub fn status_on_sigquit(&self) {
        let shared = Arc::clone(&self.shared);
        let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGQUIT])
        else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("sigquit".into())
            .spawn(move || {
                for _ in signals.forever() {
                    let line = shared
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .stats
                        .status();
                    crate::eprintln_safe!("\r{line}");
                }
            });
    }

    /// Runs until -c, -w, the final wait, or an error ends it, then prints the summary.
    pub fn run(&mut self) -> Result<Outcome> {
        self.header()?;
        let start = Instant::now();
        let deadline_at = self.config.rules.deadline.map(|d| start + d);
        let mut next_send = start;
        let mut last_send = start;
        // -l: this many more requests leave at once after the first.
        let mut burst_left = self.config.options.preload.saturating_sub(1);
        let mut exit_at: Option<Instant> = None;
        loop {
            let (transmitted, received, errors, tmax) = {
                let s = &self.shared().stats;
                (s.transmitted, s.received, s.errors, s.tmax)
            };
            if self
                .config
                .rules
                .count
                .is_some_and(|n| received + errors >= n)
            {
                break;
            }
            if deadline_at.is_some() && errors > 0 {
                break;
            }
            let now = Instant::now();
            if deadline_at.is_some_and(|d| now >= d) || exit_at.is_some_and(|e| now >= e) {
                break;
            }
            let may_send = !(deadline_at.is_none()
                && self.config.rules.count.is_some_and(|n| transmitted >= n));
            if may_send && now >= next_send {
                // Replies that came while nk was not running (a stall of the machine) are
                // read before the next request leaves, so they count as answered in time and
                // `pipe` stays what the network did.
                let in_preload = transmitted < u64::from(self.config.options.preload);
                if !self.config.rules.interval.is_zero()
                    && !in_preload
                    && self.read_queued(start)?
                {
                    continue;
                }
                self.send(transmitted, start)?;
                last_send = now;
                next_send = if burst_left > 0 {
                    burst_left -= 1;
                    now
                } else if self.config.rules.interval.is_zero() {
                    now + FLOOD_MIN_GAP
                } else {
                    // Keep the cadence, but never burst to catch up after a stall.
                    (next_send + self.config.rules.interval).max(now)
                };
                let sent = transmitted + 1;
                if deadline_at.is_none() && self.config.rules.count == Some(sent) {
                    // The final wait, armed once at the last request (iputils' rule).
                    let wait = if received > 0 {
                        Duration::from_micros(2 * tmax.max(0) as u64)
                            .max(self.config.rules.interval)
                    } else {
                        self.config.rules.linger
                    };
                    exit_at = Some(now + wait);
                }
                continue;
            }
            let mut wake = now + MAX_WAIT;
            if may_send {
                wake = wake.min(next_send);
            }
            for limit in [exit_at, deadline_at].into_iter().flatten() {
                wake = wake.min(limit);
            }
            let received = self
                .socket
                .receive(Deadline::at(wake))
                .context("receive ICMP")?;
            if let Some(message) = received {
                let answered = self.handle(message, start)?;
                let in_flight = u32::from(self.in_flight());
                if answered && self.config.options.adaptive {
                    // -A: the interval has followed the round trip; the next request is due
                    // that long after the last one (or at once, as a flood, when it is 0).
                    next_send = last_send + self.config.rules.interval;
                }
                // A flood sends the next request as soon as fewer than -l are in flight.
                if answered
                    && self.config.rules.interval.is_zero()
                    && in_flight < self.config.options.preload
                    && burst_left == 0
                {
                    next_send = Instant::now();
                }
            }
        }
        let text = summary_text(&self.config, &self.shared());
        self.write(text.as_bytes())?;
        let stats = &self.shared().stats;
        let short_of_count = self.config.rules.deadline.is_some()
            && self.config.rules.count.is_some_and(|n| stats.received < n);
        Ok(Outcome {
            success: stats.received > 0 && !short_of_count,
        })
    }

    /// Handles the messages already queued on the socket (a bounded number, without
    /// waiting); true if one of them answered a request.
    fn read_queued(&mut self, start: Instant) -> Result<bool> {
        let mut answered = false;
        for _ in 0..MAX_QUEUED_READ {
            let now = Deadline::at(Instant::now());
            match self.socket.receive(now).context("receive ICMP")? {
                Some(message) => answered |= self.handle(message, start)?,
                None => break,
            }
        }
        Ok(answered)
    }

    fn in_flight(&self) -> u16 {
        let transmitted = self.shared().stats.transmitted as u16;
        transmitted.wrapping_sub(self.acked)
    }

    fn header(&mut self) -> Result<()> {
        if self.config.rules.json {
            return Ok(());
        }
        if let Some(pattern) = &self.config.options.pattern {
            // iputils prints it while reading its options, before the header.
            if !self.config.rules.quiet {
                let line = pattern_line(pattern);
                self.write(line.as_bytes())?;
            }
        }
        let from = self.config.options.from.clone().unwrap_or_default();
        let line = match self.config.destination {
            IpAddr::V4(ip) => format!(
                "PING {} ({ip}) {from}{}({}) bytes of data.\n",
                self.config.hostname,
                self.config.size,
                self.config.size + HEADER_LEN + 20
            ),
            // iputils shows the IPv6 address as it shows repliers: `name (address)` for names.
            IpAddr::V6(ip) => {
                let shown = self.display_name(IpAddr::V6(ip), self.config.scope_id);
                format!(
                    "PING {}({shown}) {from}{} data bytes\n",
                    self.config.hostname, self.config.size
                )
            }
        };
        self.write(line.as_bytes())
    }

    fn send(&mut self, transmitted: u64, start: Instant) -> Result<()> {
        let sequence = (transmitted + 1) as u16;
        if self.config.options.outstanding && transmitted > 0 {
            self.report_outstanding(transmitted as u16)?;
        }
        self.answered[usize::from(sequence / 64)] &= !(1u64 << (sequence % 64));
        let since_base = self.base.elapsed();
        let packet = icmp::echo_request_filled(
            self.config.destination.is_ipv6(),
            self.socket.identifier(),
            sequence,
            &self.fill,
            (since_base.as_secs(), since_base.subsec_nanos()),
        );
        let result = self.socket.send(&packet);
        {
            let mut shared = self.shared();
            shared.stats.transmitted += 1;
            shared.elapsed_us = start.elapsed().as_micros() as u64;
        }
        match result {
            Ok(()) => {
                if self.config.flood {
                    self.write(b".")?;
                }
                Ok(())
            }
            // A firewall's refusal comes back as an ICMP error too, which is what counts (and is
            // printed), as in iputils.
            Err(err) if matches!(err.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
                Ok(())
            }
            // Any other local error (no route, message too long) counts as an error.
            Err(err) => {
                self.shared().stats.errors += 1;
                if self.config.flood {
                    self.write(b"E")?;
                } else if self.config.rules.json {
                    if self.config.rules.quiet {
                        // -q --json: the summary object only.
                        return Ok(());
                    }
                    let object = serde_json::json!({
                        "type": "error", "seq": sequence, "error": err.to_string()
                    });
                    self.write(format!("{object}\n").as_bytes())?;
                } else if err.raw_os_error() == Some(libc::EMSGSIZE) {
                    // -M do: larger than the MTU of the path, as the kernel knows it.
                    if !self.config.rules.quiet {
                        let destination = SocketAddr::new(self.config.destination, 0);
                        match icmp_socket::path_mtu(destination, &self.config.tuning) {
                            Ok(mtu) => crate::eprintln_safe!(
                                "nk: local error: message too long, mtu={mtu}"
                            ),
                            Err(_) => crate::eprintln_safe!("nk: local error: message too long"),
                        }
                    }
                } else {
                    crate::log::warn(format_args!("local error: {err}"));
                }
                Ok(())
            }
        }
    }

    /// -O: says so when request `sequence` (the last one sent) has had no reply yet. iputils
    /// prints it even with -q.
    fn report_outstanding(&mut self, sequence: u16) -> Result<()> {
        let answered = self.answered[usize::from(sequence / 64)] & (1u64 << (sequence % 64)) != 0;
        if answered {
            return Ok(());
        }
        if self.config.rules.json {
            if self.config.rules.quiet {
                return Ok(());
            }
            let object = serde_json::json!({"type": "no_answer_yet", "seq": sequence});
            return self.write(format!("{object}\n").as_bytes());
        }
        let line = format!(
            "{}no answer yet for icmp_seq={sequence}\n",
            self.timestamp()
        );
        self.write(line.as_bytes())
    }

    /// Whether a sequence is one of ours that has been sent (within the last 65536).
    fn was_sent(&self, sequence: u16) -> bool {
        let transmitted = self.shared().stats.transmitted;
        if transmitted >= 65_536 {
            return true;
        }
        sequence != 0 && u64::from(sequence) <= transmitted
    }

    /// Handles one message; returns whether it answered one of our requests.
    fn handle(&mut self, message: Received, start: Instant) -> Result<bool> {
        let raw = self.socket.kind() == SocketKind::Raw;
        let our_id = self.socket.identifier();
        match message.message {
            Incoming::Reply {
                identifier,
                sequence,
                checksum_ok,
                payload,
            } => {
                if (raw && identifier != our_id)
                    || (message.from != self.config.destination && !self.config.any_source)
                    || !self.was_sent(sequence)
                {
                    return Ok(false);
                }
                let now = Instant::now();
                let rtt = match icmp::payload_time(&payload) {
                    Some((secs, nanos)) if self.config.size >= TIMESTAMP_LEN => {
                        let sent = self.base + Duration::new(secs, nanos);
                        // Not a time we could have sent at: not our payload.
                        if sent > now || sent + Duration::from_secs(1) < start {
                            return Ok(false);
                        }
                        let mut trip = now.duration_since(sent);
                        if !self.config.options.user_latency {
                            // Not -U: the round trip ends when the kernel received the reply,
                            // as iputils times it (SO_TIMESTAMP), not when nk read it.
                            let queued = self.socket.last_queue_delay().unwrap_or_default();
                            trip = trip.saturating_sub(queued);
                        }
                        Some(trip.as_micros() as i64)
                    }
                    _ => None,
                };
                self.acknowledge(sequence, true);
                let bit = 1u64 << (sequence % 64);
                let slot = usize::from(sequence / 64);
                let duplicate = checksum_ok && self.answered[slot] & bit != 0;
                let mut ewma8 = None;
                {
                    let mut shared = self.shared();
                    let stats = &mut shared.stats;
                    if !checksum_ok {
                        stats.corrupted += 1;
                    } else {
                        if let Some(rtt) = rtt {
                            stats.add_rtt(rtt);
                        }
                        if rtt.is_some() {
                            ewma8 = Some(stats.ewma8);
                        }
                        if duplicate {
                            stats.duplicates += 1;
                        } else {
                            stats.received += 1;
                        }
                    }
                }
                if checksum_ok && !duplicate {
                    self.answered[slot] |= bit;
                }
                if let Some(ewma8) = ewma8.filter(|_| self.config.options.adaptive) {
                    self.config.rules.interval =
                        adaptive_interval(ewma8, self.config.options.min_interval);
                }
                let len = HEADER_LEN + payload.len();
                self.print_reply(
                    &message.from,
                    message.scope_id,
                    sequence,
                    message.ttl,
                    len,
                    rtt,
                    duplicate,
                    checksum_ok,
                )?;
                Ok(true)
            }
            Incoming::Error(report) => {
                if (raw && report.identifier != our_id) || !self.was_sent(report.sequence) {
                    return Ok(false);
                }
                // iputils counts an ICMPv6 error towards the in-flight figure but not towards
                // `pipe`: its summary has no pipe line for them.
                let v4 = !self.config.destination.is_ipv6();
                self.acknowledge(report.sequence, v4);
                self.shared().stats.errors += 1;
                if self.config.rules.quiet {
                    return Ok(true);
                }
                if self.config.flood {
                    self.write(b"\x08E")?;
                } else if self.config.rules.json {
                    let object = serde_json::json!({
                        "type": "error",
                        "seq": report.sequence,
                        "from": message.from.to_string(),
                        "error": report.text,
                    });
                    self.write(format!("{object}\n").as_bytes())?;
                } else {
                    let from = self.display_name(message.from, message.scope_id);
                    let line = format!(
                        "{}From {from} icmp_seq={} {}\n",
                        self.timestamp(),
                        report.sequence,
                        report.text
                    );
                    self.write(line.as_bytes())?;
                }
                Ok(true)
            }
            Incoming::Other => Ok(false),
        }
    }

    /// Marks `sequence` answered; `pipe` says whether it counts towards iputils' `pipe`.
    fn acknowledge(&mut self, sequence: u16, pipe: bool) {
        let transmitted = self.shared().stats.transmitted as u16;
        let outstanding = transmitted.wrapping_sub(sequence);
        let pipe = if pipe { u32::from(outstanding) + 1 } else { 0 };
        {
            let mut shared = self.shared();
            shared.pipe = shared.pipe.max(pipe);
        }
        // Newer than the last acknowledged (in 16-bit sequence arithmetic)?
        if sequence.wrapping_sub(self.acked) < 0x8000 {
            self.acked = sequence;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn print_reply(
        &mut self,
        from: &IpAddr,
        scope_id: u32,
        sequence: u16,
        ttl: Option<u8>,
        len: usize,
        rtt: Option<i64>,
        duplicate: bool,
        checksum_ok: bool,
    ) -> Result<()> {
        if self.config.rules.quiet {
            return Ok(());
        }
        let bell: &[u8] = if self.config.options.audible {
            b"\x07"
        } else {
            b""
        };
        if self.config.flood {
            let mark: &[u8] = if checksum_ok { b"\x08 \x08" } else { b"\x08C" };
            return self.write(&[mark, bell].concat());
        }
        let truncated = len < self.config.size + HEADER_LEN;
        if self.config.rules.json {
            let object = serde_json::json!({
                "type": "reply",
                "seq": sequence,
                "from": from.to_string(),
                "bytes": len,
                "ttl": ttl,
                "time_ms": rtt.map(|us| us as f64 / 1000.0),
                "dup": duplicate,
                "bad_checksum": !checksum_ok,
                "truncated": truncated,
            });
            return self.write(format!("{object}\n").as_bytes());
        }
        let mut line = format!(
            "{}{len} bytes from {}: icmp_seq={sequence}",
            self.timestamp(),
            self.display_name(*from, scope_id)
        );
        if let Some(ttl) = ttl {
            line.push_str(&format!(" ttl={ttl}"));
        }
        if truncated {
            line.push_str(" (truncated)");
        } else {
            if let Some(rtt) = rtt {
                line.push_str(&format!(" time={} ms", reply_time(rtt)));
            }
            if duplicate {
                line.push_str(" (DUP!)");
            }
            if !checksum_ok {
                line.push_str(" (BAD CHECKSUM!)");
            }
            if self.config.options.audible {
                // -a: iputils rings before the end of the line (not for a truncated reply).
                line.push('\x07');
            }
        }
        line.push('\n');
        self.write(line.as_bytes())
    }

    fn timestamp(&self) -> String {
        timestamp_prefix(self.config.rules.timestamps)
    }

    /// `name (address)` for a name target, as iputils prints repliers; the address alone with
    /// -n, floods and literal targets. Looked up once per address. A link-local IPv6 address
    /// carries its `%iface`, as getnameinfo (and so iputils) prints it.
    fn display_name(&mut self, ip: IpAddr, scope_id: u32) -> String {
        if self.config.numeric {
            return addr_with_scope(ip, scope_id);
        }
        let shown = addr_with_scope(ip, scope_id);
        self.names
            .entry(ip)
            .or_insert_with(|| {
                match addr::lookup_name(ip, Deadline::after(Some(Duration::from_secs(2)))) {
                    Ok(name) if name != ip.to_string() => format!("{name} ({shown})"),
                    _ => shown,
                }
            })
            .clone()
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        write_flushed(&mut self.out, bytes)
    }
}

/// A closure printing `summary(config, figures so far)` on stdout, for the SIGINT handler
/// (ICMP and TCP/UDP runs alike).
pub fn summary_printer<C, T>(
    shared: &Arc<Mutex<T>>,
    config: &C,
    summary: fn(&C, &T) -> String,
) -> impl Fn() + Send + 'static
where
    C: Clone + Send + 'static,
    T: Send + 'static,
{
    let shared = Arc::clone(shared);
    let config = config.clone();
    move || {
        let shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        let text = summary(&config, &shared);
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
}

/// `-D`'s `[seconds.micros] ` prefix, from the wall clock (empty without -D).
pub fn timestamp_prefix(enabled: bool) -> String {
    if !enabled {
        return String::new();
    }
    let now = chrono::Utc::now();
    format!(
        "[{}.{:06}] ",
        now.timestamp(),
        now.timestamp_subsec_micros()
    )
}

/// Writes and flushes output: a closed stdout ends the run quietly (exit 0).
pub fn write_flushed(out: &mut impl Write, bytes: &[u8]) -> Result<()> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(err) => Err(anyhow::Error::new(err).context("write stdout")),
    }
}

/// `ip`, with `%iface` for a link-local IPv6 address that came with a scope (the interface
/// index when it has no name), as glibc's getnameinfo writes it.
fn addr_with_scope(ip: IpAddr, scope_id: u32) -> String {
    let IpAddr::V6(v6) = ip else {
        return ip.to_string();
    };
    let segments = v6.segments();
    let link_local = segments[0] & 0xffc0 == 0xfe80 || segments[0] & 0xff0f == 0xff02;
    if scope_id == 0 || !link_local {
        return ip.to_string();
    }
    format!("{v6}%{}", interface_name(scope_id))
}

/// The name of interface `index`, or the number when it has none (any more).
pub fn interface_name(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has the IF_NAMESIZE bytes if_indextoname may write; the result is either
    // null or buf, NUL-terminated.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if name.is_null() {
        return index.to_string();
    }
    // SAFETY: if_indextoname returned buf, which now holds a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

/// The summary: iputils' text, or one JSON object.
fn summary_text(config: &Config, shared: &Shared) -> String {
    let stats = &shared.stats;
    let ipg = config.rules.interval.is_zero() || config.flood || config.options.adaptive;
    if config.rules.json {
        let mut object = stats.json_figures(shared.elapsed_us);
        object["host"] = config.hostname.clone().into();
        object["address"] = config.destination.to_string().into();
        object["received"] = stats.received.into();
        object["duplicates"] = stats.duplicates.into();
        object["corrupted"] = stats.corrupted.into();
        return format!("{object}\n");
    }
    format!(
        "\n--- {} ping statistics ---\n{}",
        config.hostname,
        stats.summary(shared.elapsed_us, ipg, shared.pipe)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::io;
    use std::net::Ipv4Addr;

    /// A socket that answers each request from a script: `Some(delay)` replies after the
    /// delay (as the kernel would echo it), `None` stays silent; `extra` messages are
    /// delivered before the reply (foreign traffic, duplicates).
    struct Scripted {
        kind: SocketKind,
        script: VecDeque<Option<Duration>>,
        pending: VecDeque<(Instant, Received)>,
        duplicate_first: bool,
        foreign_first: bool,
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    impl EchoSocket for Scripted {
        fn kind(&self) -> SocketKind {
            self.kind
        }
        fn identifier(&self) -> u16 {
            4242
        }
        fn send(&mut self, message: &[u8]) -> io::Result<()> {
            let mut reply = message.to_vec();
            reply[0] = 0;
            reply[2] = 0;
            reply[3] = 0;
            let sum = icmp::checksum(&reply);
            reply[2..4].copy_from_slice(&sum.to_be_bytes());
            if let Some(Some(delay)) = self.script.pop_front() {
                let at = Instant::now() + delay;
                if self.foreign_first {
                    let mut foreign = reply.clone();
                    foreign[4] ^= 0xff; // another program's identifier
                    let sum = icmp::checksum(&{
                        let mut f = foreign.clone();
                        f[2] = 0;
                        f[3] = 0;
                        f
                    });
                    foreign[2..4].copy_from_slice(&sum.to_be_bytes());
                    self.pending.push_back((at, received(&foreign)));
                }
                self.pending.push_back((at, received(&reply)));
                if self.duplicate_first {
                    self.duplicate_first = false;
                    self.pending.push_back((at, received(&reply)));
                }
            }
            Ok(())
        }
        fn receive(&mut self, deadline: Deadline) -> io::Result<Option<Received>> {
            let Some((at, _)) = self.pending.front() else {
                let left = deadline.remaining().ok().flatten().unwrap_or_default();
                std::thread::sleep(left.min(Duration::from_millis(50)));
                return Ok(None);
            };
            let wait = at.saturating_duration_since(Instant::now());
            let left = deadline.remaining().ok().flatten().unwrap_or_default();
            if wait > left {
                std::thread::sleep(left);
                return Ok(None);
            }
            std::thread::sleep(wait);
            Ok(self.pending.pop_front().map(|(_, r)| r))
        }
    }

    fn received(bytes: &[u8]) -> Received {
        Received {
            from: LOCAL,
            scope_id: 0,
            ttl: Some(64),
            message: icmp::parse(false, bytes),
        }
    }

    fn config(count: u64) -> Config {
        Config {
            hostname: "127.0.0.1".into(),
            destination: LOCAL,
            rules: Rules {
                count: Some(count),
                interval: Duration::from_millis(20),
                linger: Duration::from_millis(200),
                deadline: None,
                quiet: false,
                timestamps: false,
                json: false,
            },
            size: 56,
            flood: false,
            numeric: true,
            scope_id: 0,
            any_source: false,
            options: RunOptions::default(),
            tuning: SocketTuning::default(),
        }
    }

    fn run(socket: Scripted, config: Config) -> (Outcome, String) {
        let mut out = Vec::new();
        let outcome = Pinger::new(socket, &mut out, config).run().unwrap();
        (outcome, String::from_utf8(out).unwrap())
    }

    fn scripted(script: &[Option<u64>]) -> Scripted {
        Scripted {
            kind: SocketKind::Raw,
            script: script
                .iter()
                .map(|ms| ms.map(Duration::from_millis))
                .collect(),
            pending: VecDeque::new(),
            duplicate_first: false,
            foreign_first: false,
        }
    }

    #[test]
    fn replies_are_printed_and_counted() {
        let mut socket = scripted(&[Some(1), Some(1), Some(1)]);
        socket.foreign_first = true;
        let (outcome, text) = run(socket, config(3));
        assert!(outcome.success);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.");
        for (i, line) in lines[1..4].iter().enumerate() {
            let prefix = format!("64 bytes from 127.0.0.1: icmp_seq={} ttl=64 time=", i + 1);
            assert!(line.starts_with(&prefix), "{line}");
        }
        assert_eq!(lines[4], "");
        assert_eq!(lines[5], "--- 127.0.0.1 ping statistics ---");
        assert!(lines[6].starts_with("3 packets transmitted, 3 received, 0% packet loss"));
        assert!(lines[7].starts_with("rtt min/avg/max/mdev = "));
    }

    #[test]
    fn duplicates_are_marked_and_lost_replies_counted() {
        let mut socket = scripted(&[Some(1), None, Some(1), None]);
        socket.duplicate_first = true;
        let (outcome, text) = run(socket, config(4));
        assert!(outcome.success);
        assert!(text.contains("icmp_seq=1 ttl=64 time=") && text.contains("ms (DUP!)\n"));
        assert!(
            text.contains("4 packets transmitted, 2 received, +1 duplicates, 50% packet loss"),
            "{text}"
        );
    }

    #[test]
    fn silence_ends_after_the_linger_time_with_failure() {
        let started = Instant::now();
        let (outcome, text) = run(scripted(&[None, None]), config(2));
        assert!(!outcome.success);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(text.contains("2 packets transmitted, 0 received, 100% packet loss"));
        assert!(text.ends_with("ms\n\n"), "{text:?}");
    }

    #[test]
    fn deadline_keeps_sending_past_the_count() {
        let mut cfg = config(2);
        cfg.rules.deadline = Some(Duration::from_millis(150));
        let (outcome, text) = run(scripted(&[None; 20]), cfg);
        assert!(!outcome.success);
        let sent: u64 = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(sent > 2, "{text}");
    }

    #[test]
    fn outstanding_audible_and_preload() {
        let mut cfg = config(3);
        cfg.options.outstanding = true;
        cfg.options.audible = true;
        let (_, text) = run(scripted(&[None, Some(1), None]), cfg);
        assert!(text.contains("\nno answer yet for icmp_seq=1\n"), "{text}");
        assert!(!text.contains("no answer yet for icmp_seq=2"), "{text}");
        // The last request is not reported: no request follows it.
        assert!(!text.contains("no answer yet for icmp_seq=3"), "{text}");
        assert!(
            text.contains(" ms\x07\n"),
            "-a rings at the end of the reply line: {text:?}"
        );

        // -l 3: three requests leave before the first reply comes back.
        let mut cfg = config(3);
        cfg.options.preload = 3;
        cfg.rules.interval = Duration::from_millis(200);
        let (outcome, text) = run(scripted(&[Some(30), Some(30), Some(30)]), cfg);
        assert!(outcome.success);
        assert!(text.contains(" ms, pipe 3\n"), "{text}");

        // -p: the pattern line comes first.
        let mut cfg = config(1);
        cfg.options.pattern = Some(super::super::options::Pattern(vec![0xab, 0x0c]));
        let (_, text) = run(scripted(&[Some(1)]), cfg);
        assert!(text.starts_with("PATTERN: 0xab0c\nPING "), "{text}");
    }

    #[test]
    fn short_payloads_have_no_times() {
        let mut cfg = config(2);
        cfg.size = 8;
        let (_, text) = run(scripted(&[Some(1), Some(1)]), cfg);
        assert!(
            text.contains("16 bytes from 127.0.0.1: icmp_seq=1 ttl=64\n"),
            "{text}"
        );
        assert!(!text.contains("rtt min"));
    }
}
