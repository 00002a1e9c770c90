//! The client side of echo, daytime, qotd and time: one request, one reply, checked.
//!
//! UDP requests are retried (`--tries`, `-W` apart) on a connected socket, so the kernel
//! drops datagrams from anyone but the server and a refused port is reported as refused
//! instead of timing out. A TCP reply is read under one deadline, `-W` from the request (each
//! read waits only for what is left of it: a server that trickles a byte at a time cannot
//! stretch the wait), an optional idle limit between bytes (`-i`), and a 64 KiB cap: a server
//! that never closes or never stops talking cannot hold the client. Every error names the
//! service, the server and the protocol first (`echo 127.0.0.1:7 (tcp): ...`).

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use super::ServiceArgs;
use crate::cmd::stdout_error;
use crate::exit::{usage, Reported, Status, StdoutClosed, UsageError};
use crate::net::addr::{self, display_addr, Family, Target};
use crate::net::connect::{self, ConnectOptions};
use crate::net::datagram::{MAX_UDP_PAYLOAD_V4, MAX_UDP_PAYLOAD_V6};
use crate::net::deadline::{format_duration, read_before, Deadline};

/// The most a TCP daytime/qotd reply (or one echo line) may be.
pub const MAX_REPLY: usize = 64 * 1024;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the client flags ask for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server.
    pub target: Target,
    /// `-u`.
    pub udp: bool,
    /// `-4` / `-6`.
    pub family: Family,
    /// `-w`.
    pub connect_timeout: Duration,
    /// `-W`: the wait for each whole reply (each UDP try).
    pub timeout: Duration,
    /// `-i` outside probe mode: the longest silence between two bytes of a TCP reply.
    pub idle: Option<Duration>,
    /// `--tries`.
    pub tries: u32,
    /// `--json`.
    pub json: bool,
    /// "echo", "daytime", "qotd": for messages.
    pub service: &'static str,
    explicit_timeout: bool,
    /// `--proxy`: the TCP client's proxies.
    pub proxies: crate::net::proxy::Chain,
}

impl Config {
    /// The configuration from the shared flags.
    pub fn new(common: &ServiceArgs, target: Target, service: &'static str) -> Result<Config> {
        if common.access.given() {
            return Err(usage(
                "--allow/--deny choose whom a server serves: use them with -l",
            ));
        }
        if common.udp && common.proxy.given() {
            return Err(usage(
                "--proxy carries TCP only: drop -u to ask the service over TCP through the proxy",
            ));
        }
        let proxies = common.proxy.chain()?;
        let timeout = common.timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT);
        if timeout.is_zero() {
            return Err(usage("-W 0 would never wait for a reply"));
        }
        Ok(Config {
            target,
            udp: common.udp,
            family: common.family.family(),
            connect_timeout: common.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            timeout,
            tries: common.tries,
            json: common.json,
            service,
            explicit_timeout: common.timeout.is_some(),
            idle: None,
            proxies,
        })
    }

    /// `-i` outside probe mode: cli.md's idle timeout, which for a request and its reply is
    /// the longest wait for the server's next byte. `-W` still bounds the whole reply; when
    /// `-W` is not given it is at least `-i`, so that `-i 10s` alone waits for a slow server.
    pub fn use_idle_timeout(&mut self, idle: Option<Duration>) {
        let Some(idle) = idle.filter(|i| !i.is_zero()) else {
            return;
        };
        self.idle = Some(idle);
        if !self.explicit_timeout {
            self.timeout = self.timeout.max(idle);
        }
    }

    /// "tcp" or "udp".
    pub fn proto(&self) -> &'static str {
        if self.udp {
            "udp"
        } else {
            "tcp"
        }
    }

    /// What errors name: `echo 127.0.0.1:7 (udp)`.
    pub fn describe(&self, peer: &Peer) -> String {
        format!("{} {} ({})", self.service, peer.name, self.proto())
    }

    /// What errors name before an address is known: the target as typed.
    pub fn describe_target(&self) -> String {
        format!("{} {} ({})", self.service, self.target, self.proto())
    }

    /// `err` with cli.md's `SERVICE HOST:PORT (PROTO): ` in front, unless it has it already
    /// (errors made once the peer is known name its address) or is no error of the exchange
    /// (a usage error, a failure already reported, stdout closed).
    pub fn prefixed(&self, err: anyhow::Error) -> anyhow::Error {
        let not_ours = err
            .chain()
            .any(|c| c.is::<Reported>() || c.is::<UsageError>() || c.is::<StdoutClosed>());
        if not_ours || err.to_string().starts_with(&format!("{} ", self.service)) {
            return err;
        }
        err.context(self.describe_target())
    }
}

/// The server an exchange talks to.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The address that answered (through proxies, the first proxy's).
    pub addr: SocketAddr,
    /// The server as replies and errors name it: [`connect::Connected::name`], so that through
    /// proxies the target as typed is named, not the proxy.
    pub name: String,
}

/// A connection (TCP) or a connected socket (UDP) to the server.
#[derive(Debug)]
pub enum Channel {
    /// A TCP connection.
    Tcp(TcpStream, Peer),
    /// A UDP socket connected to the server.
    Udp(UdpSocket, Peer),
}

impl Channel {
    /// Connects to the server under `-w`.
    pub fn open(config: &Config) -> Result<Channel> {
        if !config.udp {
            let connected = connect::connect(
                &config.target,
                &ConnectOptions {
                    family: config.family,
                    timeout: Some(config.connect_timeout),
                    proxies: config.proxies.clone(),
                    ..ConnectOptions::default()
                },
            )?;
            let peer = Peer {
                addr: connected.peer,
                name: connected.name,
            };
            return Ok(Channel::Tcp(connected.stream, peer));
        }
        let deadline = Deadline::after(Some(config.connect_timeout));
        let peer = addr::resolve(&config.target, config.family, deadline)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("resolve {}: no address", config.target.host))?;
        let context = || format!("connect {} (udp)", display_addr(peer));
        let local = SocketAddr::new(addr::unspecified(peer.is_ipv6()), 0);
        let socket = UdpSocket::bind(local).with_context(context)?;
        socket.connect(peer).with_context(context)?;
        crate::info!("sending to {} (udp)", display_addr(peer));
        let name = display_addr(peer);
        Ok(Channel::Udp(socket, Peer { addr: peer, name }))
    }

    /// The server: its address, and the name messages give it.
    pub fn peer(&self) -> &Peer {
        match self {
            Channel::Tcp(_, peer) | Channel::Udp(_, peer) => peer,
        }
    }
}

/// The largest datagram the UDP client may send to `peer`.
pub fn max_datagram(peer: SocketAddr) -> usize {
    if peer.is_ipv6() {
        MAX_UDP_PAYLOAD_V6
    } else {
        MAX_UDP_PAYLOAD_V4
    }
}

/// Sends `request` up to `--tries` times and waits `-W` after each for a datagram that
/// `accept` takes: `Some((reply, rtt since the last send))`, or `None` when no try got one.
pub fn udp_exchange(
    socket: &UdpSocket,
    config: &Config,
    peer: &Peer,
    request: &[u8],
    mut accept: impl FnMut(&[u8]) -> bool,
) -> Result<Option<(Vec<u8>, Duration)>> {
    let mut buf = vec![0u8; MAX_UDP_PAYLOAD_V6 + 1];
    let what = || config.describe(peer);
    for attempt in 1..=config.tries {
        let sent_at = Instant::now();
        socket.send(request).map_err(|e| refused_or(e, &what()))?;
        if attempt > 1 {
            crate::info!("{}: try {attempt} of {}", what(), config.tries);
        }
        let deadline = Deadline::at(sent_at + config.timeout);
        while let Some(len) = read_before(socket, deadline, |s| s.recv(&mut buf))
            .map_err(|e| refused_or(e, &what()))?
        {
            if accept(&buf[..len]) {
                return Ok(Some((buf[..len].to_vec(), sent_at.elapsed())));
            }
        }
    }
    Ok(None)
}

/// A socket error as the user should read it: a refused UDP port is an ICMP answer.
pub fn refused_or(err: io::Error, what: &str) -> anyhow::Error {
    if err.kind() == io::ErrorKind::ConnectionRefused {
        anyhow!("{what}: connection refused (nothing listens on that port)")
    } else {
        anyhow::Error::new(err).context(what.to_string())
    }
}

/// Why no reply came, in words (without the `SERVICE HOST (PROTO): ` prefix).
fn no_reply_text(config: &Config) -> String {
    if config.udp {
        format!(
            "no reply after {} {} of {}",
            config.tries,
            if config.tries == 1 { "try" } else { "tries" },
            format_duration(config.timeout)
        )
    } else {
        format!("no reply within {}", format_duration(config.timeout))
    }
}

/// The error when every try went unanswered.
pub fn no_reply(config: &Config, peer: &Peer) -> anyhow::Error {
    anyhow!("{}: {}", config.describe(peer), no_reply_text(config))
}

/// The error when the server closed the connection before a byte of its reply.
fn closed_without_reply(config: &Config, peer: &Peer) -> anyhow::Error {
    anyhow!(
        "{}: the server closed without a reply",
        config.describe(peer)
    )
}

/// Why [`read_up_to`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It had the bytes it wanted.
    Full,
    /// The server closed the connection (or reset it).
    Closed,
    /// The whole-reply deadline (`-W`) passed.
    Deadline,
    /// The server said nothing for the idle limit (`-i`).
    Idle,
}

/// Reads up to `want` bytes from a TCP stream before `deadline`, and with no silence longer
/// than `idle` between reads: fewer when the server closed or went quiet (`End` tells why).
/// The deadline is the caller's, fixed once: it bounds the whole reply, not each read.
pub fn read_up_to(
    stream: &TcpStream,
    want: usize,
    deadline: Deadline,
    idle: Option<Duration>,
) -> Result<(Vec<u8>, End)> {
    let mut got = Vec::with_capacity(want.min(MAX_REPLY));
    let mut chunk = [0u8; 16 * 1024];
    while got.len() < want {
        let room = (want - got.len()).min(chunk.len());
        let this_read = match idle {
            Some(idle) => deadline.min(Deadline::after(Some(idle))),
            None => deadline,
        };
        let read = read_before(stream, this_read, |mut s| s.read(&mut chunk[..room]));
        match read {
            Ok(None) if deadline.expired() => return Ok((got, End::Deadline)),
            Ok(None) => return Ok((got, End::Idle)),
            Ok(Some(0)) => return Ok((got, End::Closed)),
            Ok(Some(n)) => got.extend_from_slice(&chunk[..n]),
            // A reset after the server's last byte is a close as far as the reply goes.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok((got, End::Closed)),
            Err(e) => return Err(anyhow::Error::new(e).context("read the reply")),
        }
    }
    Ok((got, End::Full))
}

/// Prints one reply: as received (a newline added if it lacks one), or as a JSON object.
pub fn print_reply(config: &Config, peer: &Peer, rtt: Duration, reply: &[u8]) -> Result<()> {
    crate::info!(
        "reply from {} ({}): {} bytes in {:.3} ms",
        peer.name,
        config.proto(),
        reply.len(),
        rtt.as_secs_f64() * 1000.0
    );
    let mut out = io::stdout().lock();
    let written = if config.json {
        let text = String::from_utf8_lossy(reply);
        let object = serde_json::json!({
            "server": peer.name,
            "proto": config.proto(),
            "rtt_ms": rtt_ms(rtt),
            "text": text.trim_end_matches(['\r', '\n']),
        });
        writeln!(out, "{object}")
    } else {
        out.write_all(reply).and_then(|()| {
            if reply.last() == Some(&b'\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
    };
    written.and_then(|()| out.flush()).map_err(stdout_error)
}

fn crlf_to_lf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for (i, &byte) in text.iter().enumerate() {
        if !(byte == b'\r' && text.get(i + 1) == Some(&b'\n')) {
            out.push(byte);
        }
    }
    out
}

/// Milliseconds with microsecond precision, for JSON.
pub fn rtt_ms(rtt: Duration) -> f64 {
    (rtt.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Where `got` differs from `sent`, in words, or `None` when it is the same.
pub fn difference(sent: &[u8], got: &[u8]) -> Option<String> {
    if let Some(at) = sent.iter().zip(got).position(|(a, b)| a != b) {
        return Some(format!(
            "the reply differs from what was sent at byte {} (sent {}, got {})",
            at + 1,
            show_byte(sent[at]),
            show_byte(got[at])
        ));
    }
    match got.len().cmp(&sent.len()) {
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Less => Some(format!(
            "the reply is {} bytes, {} were sent",
            got.len(),
            sent.len()
        )),
        std::cmp::Ordering::Greater => Some(format!(
            "the reply is {} bytes, {} were sent (extra bytes from byte {})",
            got.len(),
            sent.len(),
            sent.len() + 1
        )),
    }
}

fn show_byte(byte: u8) -> String {
    if byte.is_ascii_graphic() || byte == b' ' {
        format!("'{}'", byte as char)
    } else {
        format!("0x{byte:02x}")
    }
}

/// The most of a reply an error message quotes (escaped); stdout has all of it.
const QUOTED_REPLY: usize = 120;

/// A reply as an error message quotes it: escaped, and cut at [`QUOTED_REPLY`] characters
/// with the full length said.
fn quote_reply(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    let escaped: String = text.escape_debug().collect();
    if escaped.chars().count() <= QUOTED_REPLY {
        return format!("\"{escaped}\"");
    }
    let cut: String = escaped.chars().take(QUOTED_REPLY).collect();
    format!("\"{cut}...\" ({} bytes)", reply.len())
}

/// `nk echo HOST MESSAGE`: send it, print the reply, fail if it differs.
pub fn echo_message(config: &Config, message: &[u8]) -> Result<()> {
    echo_message_inner(config, message).map_err(|e| config.prefixed(e))
}

fn echo_message_inner(config: &Config, message: &[u8]) -> Result<()> {
    let channel = Channel::open(config)?;
    let peer = channel.peer();
    let (reply, rtt) = match exchange_echo(config, &channel, message)? {
        Exchange::Reply(reply, rtt) => (reply, rtt),
        Exchange::Silent => return Err(no_reply(config, peer)),
        Exchange::Closed => return Err(closed_without_reply(config, peer)),
    };
    print_reply(config, peer, rtt, &reply)?;
    match difference(message, &reply) {
        None => Ok(()),
        Some(diff) => Err(anyhow!(
            "{}: {diff}; the reply: {}",
            config.describe(peer),
            quote_reply(&reply)
        )),
    }
}

/// What one echo round trip gave.
#[derive(Debug)]
enum Exchange {
    /// A reply (complete, short, long or different) and its round-trip time.
    Reply(Vec<u8>, Duration),
    /// Nothing came back in time.
    Silent,
    /// The server closed the connection before a byte came back.
    Closed,
}

/// One echo round trip on the channel.
fn exchange_echo(config: &Config, channel: &Channel, message: &[u8]) -> Result<Exchange> {
    match channel {
        Channel::Udp(socket, peer) => {
            if message.len() > max_datagram(peer.addr) {
                return Err(usage(format!(
                    "the message is {} bytes; one UDP datagram holds at most {}",
                    message.len(),
                    max_datagram(peer.addr)
                )));
            }
            Ok(
                match udp_exchange(socket, config, peer, message, |_| true)? {
                    Some((reply, rtt)) => Exchange::Reply(reply, rtt),
                    None => Exchange::Silent,
                },
            )
        }
        Channel::Tcp(stream, peer) => {
            let mut stream = stream;
            let started = Instant::now();
            // -W bounds the whole reply, from the request on.
            let deadline = Deadline::after(Some(config.timeout));
            stream
                .write_all(message)
                .with_context(|| format!("{}: send", config.describe(peer)))?;
            let read = |want, reply: &mut Vec<u8>| -> Result<End> {
                let (got, end) = read_up_to(stream, want, deadline, config.idle)
                    .with_context(|| config.describe(peer))?;
                reply.extend_from_slice(&got);
                Ok(end)
            };
            let mut reply = Vec::new();
            let mut end = read(message.len(), &mut reply)?;
            // A reply that already differs is read on (to the server's close, -W or the cap)
            // so that it is shown whole, not cut at the length sent.
            let room = MAX_REPLY.saturating_sub(reply.len());
            if end == End::Full && reply != message && room > 0 {
                end = read(room, &mut reply)?;
            }
            if reply.is_empty() && !message.is_empty() {
                return Ok(if end == End::Closed {
                    Exchange::Closed
                } else {
                    Exchange::Silent
                });
            }
            Ok(Exchange::Reply(reply, started.elapsed()))
        }
    }
}

/// `nk echo HOST` with no MESSAGE: each stdin line is one request (UDP: without its newline),
/// and each reply is printed; mismatches and lost replies are reported and the rest go on.
pub fn echo_lines(config: &Config) -> Result<()> {
    echo_lines_inner(config).map_err(|e| config.prefixed(e))
}

fn echo_lines_inner(config: &Config) -> Result<()> {
    let channel = Channel::open(config)?;
    let peer = channel.peer();
    let what = config.describe(peer);
    let cap = if config.udp {
        max_datagram(peer.addr)
    } else {
        MAX_REPLY
    };
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    let mut failures = 0u64;
    for number in 1u64.. {
        line.clear();
        let got = (&mut stdin)
            .take(cap as u64 + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("{what}: read stdin"))?;
        if got == 0 {
            break;
        }
        if got > cap {
            return Err(usage(format!(
                "{what}: stdin line {number} is longer than {cap} bytes"
            )));
        }
        let request: &[u8] = if config.udp && line.last() == Some(&b'\n') {
            &line[..line.len() - 1]
        } else {
            &line
        };
        match exchange_echo(config, &channel, request)? {
            Exchange::Reply(reply, rtt) => {
                print_reply(config, peer, rtt, &reply)?;
                if let Some(diff) = difference(request, &reply) {
                    failures += 1;
                    crate::eprintln_safe!(
                        "nk: {what}: line {number}: {diff}; the reply: {}",
                        quote_reply(&reply)
                    );
                    if !config.udp {
                        // The stream is out of step with what we sent: later lines cannot be
                        // matched to their replies.
                        return Err(Reported(Status::Failure).into());
                    }
                }
            }
            Exchange::Silent if config.udp => {
                failures += 1;
                crate::eprintln_safe!("nk: {what}: line {number}: {}", no_reply_text(config));
            }
            Exchange::Silent => {
                return Err(anyhow!("{what}: line {number}: {}", no_reply_text(config)))
            }
            Exchange::Closed => {
                return Err(anyhow!(
                    "{what}: line {number}: the server closed without a reply"
                ))
            }
        }
    }
    if failures > 0 {
        return Err(Reported(Status::Failure).into());
    }
    Ok(())
}

/// Reads a TCP reply of at most `cap` bytes, all within -W (one deadline for the whole reply:
/// a server that trickles a byte at a time cannot hold the client past it) and with no
/// silence over -i; nothing at all is an error (closed without a reply, or no reply).
fn read_reply(
    config: &Config,
    stream: &TcpStream,
    peer: &Peer,
    cap: usize,
) -> Result<(Vec<u8>, End)> {
    let deadline = Deadline::after(Some(config.timeout));
    let (reply, end) =
        read_up_to(stream, cap, deadline, config.idle).with_context(|| config.describe(peer))?;
    if reply.is_empty() {
        return Err(if end == End::Closed {
            closed_without_reply(config, peer)
        } else {
            no_reply(config, peer)
        });
    }
    Ok((reply, end))
}

/// daytime / qotd: ask and print what the server says (TCP: until it closes, at most 64 KiB,
/// all within -W; UDP: one datagram).
pub fn announcement(config: &Config) -> Result<()> {
    announcement_inner(config).map_err(|e| config.prefixed(e))
}

fn announcement_inner(config: &Config) -> Result<()> {
    let channel = Channel::open(config)?;
    let peer = channel.peer();
    let (reply, rtt) = match &channel {
        // RFC 867/865: the content of the request datagram is ignored; an empty one is enough.
        Channel::Udp(socket, peer) => udp_exchange(socket, config, peer, b"", |_| true)?
            .ok_or_else(|| no_reply(config, peer))?,
        Channel::Tcp(stream, peer) => {
            let what = config.describe(peer);
            let started = Instant::now();
            let (reply, end) = read_reply(config, stream, peer, MAX_REPLY + 1)?;
            if reply.len() > MAX_REPLY {
                let text = crlf_to_lf(&reply[..MAX_REPLY]);
                print_reply(config, peer, started.elapsed(), &text)?;
                return Err(anyhow!(
                    "{what}: the reply is longer than {} KiB; stopped reading",
                    MAX_REPLY / 1024
                ));
            }
            let rtt = started.elapsed();
            match end {
                End::Closed | End::Full => {}
                // A whole line came and the server kept the connection: that is the answer.
                _ if reply.ends_with(b"\n") => crate::info!(
                    "{what}: the server did not close within {}; printing what came",
                    format_duration(config.timeout)
                ),
                // Cut in the middle of a line: print it, but do not pass it off as the answer.
                _ => {
                    print_reply(config, peer, rtt, &crlf_to_lf(&reply))?;
                    let limit = if end == End::Idle {
                        format!(
                            "-i {} of silence",
                            format_duration(config.idle.unwrap_or_default())
                        )
                    } else {
                        format!("-W {} for the whole reply", format_duration(config.timeout))
                    };
                    return Err(anyhow!(
                        "{what}: the reply was still incomplete (no line end, no close) after \
                         {limit}; printed the {} bytes that came",
                        reply.len()
                    ));
                }
            }
            (reply, rtt)
        }
    };
    // Text services end their lines with CRLF; a terminal and a pipeline want LF.
    print_reply(config, peer, rtt, &crlf_to_lf(&reply))
}

/// The most of a TCP time reply read: enough to tell a 4-byte answer from a text one.
const MAX_TIME_REPLY: usize = 64;

/// `nk time`: ask, print the server's time (RFC 3339), and with -v its offset from ours.
pub fn time(config: &Config, utc: bool) -> Result<()> {
    time_inner(config, utc).map_err(|e| config.prefixed(e))
}

fn time_inner(config: &Config, utc: bool) -> Result<()> {
    let channel = Channel::open(config)?;
    let peer = channel.peer();
    let what = config.describe(peer);
    // The local clock when the question left: the server's answer is compared with it plus
    // half the round trip.
    let asked = chrono::Utc::now();
    let (reply, rtt) = match &channel {
        // RFC 868: an empty datagram asks.
        Channel::Udp(socket, peer) => udp_exchange(socket, config, peer, b"", |_| true)?
            .ok_or_else(|| no_reply(config, peer))?,
        Channel::Tcp(stream, peer) => {
            let started = Instant::now();
            let (reply, end) = read_reply(config, stream, peer, MAX_TIME_REPLY + 1)?;
            if reply.len() == crate::wire::time::LEN && end != End::Closed {
                crate::info!(
                    "{what}: the server did not close within {}; using the 4 bytes that came",
                    format_duration(config.timeout)
                );
            }
            (reply, started.elapsed())
        }
    };
    let (value, when) = crate::wire::time::decode(&reply).map_err(|e| anyhow!("{what}: {e}"))?;
    let local_then = asked + chrono::Duration::from_std(rtt / 2).unwrap_or_default();
    // The server counts whole seconds: its clock read somewhere in [when, when + 1 s).
    let offset = (when - local_then).num_milliseconds() as f64 / 1000.0 + 0.5;
    crate::info!(
        "reply from {} ({}): {value} ({} bytes) in {:.3} ms",
        peer.name,
        config.proto(),
        reply.len(),
        rtt.as_secs_f64() * 1000.0
    );
    crate::info!(
        "offset: the server's clock is {:.1} s {} this host's (+/- {:.1} s: RFC 868 counts \
         whole seconds)",
        offset.abs(),
        if offset >= 0.0 { "ahead of" } else { "behind" },
        0.5 + rtt.as_secs_f64() / 2.0
    );
    let text = if utc {
        when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    } else {
        when.with_timezone(&chrono::Local)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    };
    let mut out = io::stdout().lock();
    let written = if config.json {
        let object = serde_json::json!({
            "server": peer.name,
            "proto": config.proto(),
            "rtt_ms": rtt_ms(rtt),
            "time": text,
            "value": value,
            "offset_s": (offset * 10.0).round() / 10.0,
        });
        writeln!(out, "{object}")
    } else {
        writeln!(out, "{text}")
    };
    written.and_then(|()| out.flush()).map_err(stdout_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_located() {
        assert_eq!(difference(b"cau", b"cau"), None);
        assert_eq!(
            difference(b"cau", b"caX").unwrap(),
            "the reply differs from what was sent at byte 3 (sent 'u', got 'X')"
        );
        assert_eq!(
            difference(b"cau", b"ca").unwrap(),
            "the reply is 2 bytes, 3 were sent"
        );
        assert!(difference(b"ca", b"cau")
            .unwrap()
            .contains("extra bytes from byte 3"));
        assert!(difference(b"a\n", b"a\r")
            .unwrap()
            .contains("(sent 0x0a, got 0x0d)"));
    }

    #[test]
    fn crlf_becomes_lf_and_lone_cr_stays() {
        assert_eq!(crlf_to_lf(b"a\r\nb\rc\r\n"), b"a\nb\rc\n");
    }

    #[test]
    fn quoted_replies_are_escaped_and_capped() {
        assert_eq!(quote_reply(b"ERR\r\n"), "\"ERR\\r\\n\"");
        let long = quote_reply(&[b'x'; 1000]);
        assert!(long.ends_with("...\" (1000 bytes)"), "{long}");
        assert!(long.len() < QUOTED_REPLY + 30);
    }

    #[test]
    fn rtt_is_rounded_to_microseconds() {
        assert_eq!(rtt_ms(Duration::from_nanos(1_234_567)), 1.235);
    }
}
