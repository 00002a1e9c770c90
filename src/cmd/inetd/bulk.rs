//! The clients of the two bulk services: `nk discard` (stdin to the server, delivery
//! confirmed) and `nk chargen` (the server's stream to stdout, optionally checked).
//!
//! They are apart from [`client`](super::client) because they move streams, not one reply:
//! what they promise is about every byte. Discard over TCP counts a byte delivered only when
//! the server has read it, which it shows by closing after our half-close (a discard server
//! reads to our FIN before it closes; a reset instead means bytes were left unread). Chargen
//! copies the stream to stdout as it comes, bounded by `-c`, the idle limit and the reader
//! of stdout; `--check` runs every byte through [`wire::chargen::Checker`].
//!
//! [`wire::chargen::Checker`]: crate::wire::chargen::Checker

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use super::client::{max_datagram, print_reply, refused_or, udp_exchange, Channel, Config, Peer};
use crate::cmd::stdout_error;
use crate::net::deadline::{format_duration, read_before, Deadline};
use crate::net::relay::{Delivery, SplitStream};
use crate::signals;
use crate::wire::chargen::{self, Checker, Shape};

/// Bytes read from stdin (or the server) at once.
const CHUNK: usize = 128 * 1024;

/// How long a UDP discard client listens, after its last datagram, for the host's refusal
/// (ICMP port unreachable arrives within a round trip; this is for a LAN).
const REFUSAL_WAIT: Duration = Duration::from_millis(200);

/// How often the wait for the server's close looks at the acknowledgements.
const DELIVERY_POLL: Duration = Duration::from_millis(100);

/// `N bytes ... in T (R MB/s)`: the rate part of the result lines.
fn rate(bytes: u64, elapsed: Duration) -> String {
    format!(
        "in {} ({:.1} MB/s)",
        format_duration(elapsed),
        bytes as f64 / elapsed.as_secs_f64().max(1e-6) / 1e6
    )
}

/// On SIGINT/SIGTERM, the `-v` line: `WHAT: interrupted: N bytes DONE in T (R MB/s)`.
fn summary_on_interrupt(bytes: &Arc<AtomicU64>, what: String, done: &'static str) -> Result<()> {
    let bytes = Arc::clone(bytes);
    let started = Instant::now();
    signals::on_interrupt(move || {
        let bytes = bytes.load(Ordering::Relaxed);
        crate::info!(
            "{what}: interrupted: {bytes} bytes {done} {}",
            rate(bytes, started.elapsed())
        )
    })
}

/// The result line on stdout, or its JSON form.
fn print_result(config: &Config, line: String, json: serde_json::Value) -> Result<()> {
    let mut out = io::stdout().lock();
    let written = if config.json {
        writeln!(out, "{json}")
    } else {
        writeln!(out, "{line}")
    };
    written.and_then(|()| out.flush()).map_err(stdout_error)
}

/// Reads stdin into `buf`: an unreadable or closed stdin is an empty one (cli.md).
fn read_stdin(stdin: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    loop {
        match stdin.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Ok(0),
            Err(e) => return Err(anyhow::Error::new(e).context("read stdin")),
        }
    }
}

/// `nk discard HOST`: stdin to the server; the bytes delivered on stdout.
pub fn discard(config: &Config) -> Result<()> {
    discard_inner(config).map_err(|e| config.prefixed(e))
}

fn discard_inner(config: &Config) -> Result<()> {
    let channel = Channel::open(config)?;
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    summary_on_interrupt(
        &sent,
        config.describe(channel.peer()),
        "sent (the last ones unconfirmed)",
    )?;
    match &channel {
        Channel::Tcp(stream, peer) => discard_tcp(config, stream, peer, &sent, started),
        Channel::Udp(socket, peer) => discard_udp(config, socket, peer, &sent, started),
    }
}

fn discard_tcp(
    config: &Config,
    stream: &TcpStream,
    peer: &Peer,
    sent: &AtomicU64,
    started: Instant,
) -> Result<()> {
    let what = config.describe(peer);
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; CHUNK];
    let lost = |sent: u64, err: io::Error| {
        let unacked = match stream.delivery() {
            Delivery::Pending(n) => format!(" ({n} of them never acknowledged)"),
            _ => String::new(),
        };
        anyhow!(
            "{what}: the server ended the connection ({err}) after {sent} bytes were sent{unacked}: \
             the rest of stdin was not delivered"
        )
    };
    loop {
        let n = read_stdin(&mut stdin, &mut buf)?;
        if n == 0 {
            break;
        }
        let mut stream = stream;
        if let Err(err) = stream.write_all(&buf[..n]) {
            return Err(lost(sent.load(Ordering::Relaxed), err));
        }
        sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    let total = sent.load(Ordering::Relaxed);
    stream
        .shutdown(Shutdown::Write)
        .map_err(|err| lost(total, err))?;
    wait_for_close(config, stream, &what, total)?;
    let elapsed = started.elapsed();
    crate::info!("{what}: the server read every byte and closed");
    print_result(
        config,
        format!(
            "{total} bytes delivered to {} (tcp) {}",
            peer.name,
            rate(total, elapsed)
        ),
        serde_json::json!({
            "server": peer.name,
            "proto": "tcp",
            "bytes": total,
            "seconds": elapsed.as_secs_f64(),
            "delivered": true,
        }),
    )
}

/// After our half-close: waits for the server's close, which says it read everything. The
/// wait ends -W after the last byte was acknowledged (a slow link may take long to carry
/// what the socket buffers still hold; as long as acknowledgements come, nk waits).
fn wait_for_close(config: &Config, stream: &TcpStream, what: &str, total: u64) -> Result<()> {
    let mut buf = [0u8; 4096];
    let mut unexpected = 0u64;
    let mut last_pending = usize::MAX;
    let mut quiet_since = Instant::now();
    loop {
        match stream.delivery() {
            Delivery::Pending(n) if n < last_pending => {
                last_pending = n;
                quiet_since = Instant::now();
            }
            Delivery::Done if last_pending != 0 => {
                last_pending = 0;
                quiet_since = Instant::now();
            }
            _ => {}
        }
        if quiet_since.elapsed() >= config.timeout {
            return Err(anyhow!(
                "{what}: the server did not close within {} after the end of input: {total} \
                 bytes sent, {}",
                format_duration(config.timeout),
                match stream.delivery() {
                    Delivery::Pending(n) => format!("{n} never acknowledged"),
                    _ => "all acknowledged, but not confirmed as read".into(),
                }
            ));
        }
        let slice = Deadline::after(Some(DELIVERY_POLL));
        match read_before(stream, slice, |mut s| s.read(&mut buf)) {
            Ok(Some(0)) => break,
            Ok(Some(n)) => unexpected += n as u64,
            Ok(None) => {}
            Err(err) => {
                return Err(anyhow!(
                    "{what}: the server reset the connection ({err}) instead of closing: of the \
                     {total} bytes sent, some were not read"
                ))
            }
        }
    }
    if unexpected > 0 {
        crate::log::warn(format_args!(
            "{what}: the server sent {unexpected} bytes (dropped); a discard server sends nothing"
        ));
    }
    Ok(())
}

fn discard_udp(
    config: &Config,
    socket: &UdpSocket,
    peer: &Peer,
    sent: &AtomicU64,
    started: Instant,
) -> Result<()> {
    let what = config.describe(peer);
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; max_datagram(peer.addr)];
    let mut datagrams = 0u64;
    loop {
        let n = read_stdin(&mut stdin, &mut buf)?;
        if n == 0 {
            break;
        }
        socket.send(&buf[..n]).map_err(|e| refused_or(e, &what))?;
        datagrams += 1;
        sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    // A host with nothing on the port answers with ICMP port unreachable, which the
    // connected socket reports on its next call.
    let mut reply = [0u8; 2048];
    let deadline = Deadline::after(Some(REFUSAL_WAIT.min(config.timeout)));
    while let Some(n) =
        read_before(socket, deadline, |s| s.recv(&mut reply)).map_err(|e| refused_or(e, &what))?
    {
        crate::log::warn(format_args!(
            "{what}: the server answered with {n} bytes (dropped); a discard server never answers"
        ));
    }
    let total = sent.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    print_result(
        config,
        format!(
            "{total} bytes in {} sent to {} (udp) {}; UDP confirms no delivery",
            crate::log::count(datagrams, "datagram"),
            peer.name,
            rate(total, elapsed)
        ),
        serde_json::json!({
            "server": peer.name,
            "proto": "udp",
            "bytes": total,
            "datagrams": datagrams,
            "seconds": elapsed.as_secs_f64(),
            "delivered": serde_json::Value::Null,
        }),
    )
}

/// The size of a chargen UDP request: RFC 864 ignores the content, and a server that never
/// answers with more than it was sent (nk's) can then send its longest reply.
const CHARGEN_REQUEST: usize = chargen::MAX_DATAGRAM;

/// `nk chargen HOST`: the stream to stdout (or one datagram's reply).
pub fn chargen(config: &Config, count: Option<u64>, check: bool) -> Result<()> {
    chargen_inner(config, count, check).map_err(|e| config.prefixed(e))
}

fn chargen_inner(config: &Config, count: Option<u64>, check: bool) -> Result<()> {
    let channel = Channel::open(config)?;
    match &channel {
        Channel::Udp(socket, peer) => {
            let what = config.describe(peer);
            let request = [0u8; CHARGEN_REQUEST];
            let (reply, rtt) = udp_exchange(socket, config, peer, &request, |_| true)?
                .ok_or_else(|| super::client::no_reply(config, peer))?;
            let checked = check.then(|| Checker::new(Shape::Datagram).feed(&reply));
            if config.json {
                print_result(
                    config,
                    String::new(),
                    serde_json::json!({
                        "server": peer.name,
                        "proto": "udp",
                        "rtt_ms": super::client::rtt_ms(rtt),
                        "bytes": reply.len(),
                        "text": String::from_utf8_lossy(&reply),
                        "checked": checked.as_ref().map(Result::is_ok),
                    }),
                )?;
            } else if reply.is_empty() {
                crate::info!("{what}: an empty reply (0 characters)");
            } else {
                print_reply(config, peer, rtt, &reply)?;
            }
            match checked {
                Some(Err(mismatch)) => Err(anyhow!(
                    "{what}: the reply is not the RFC 864 pattern: {mismatch}"
                )),
                _ => Ok(()),
            }
        }
        Channel::Tcp(stream, peer) => chargen_tcp(config, stream, peer, count, check),
    }
}

fn chargen_tcp(
    config: &Config,
    stream: &TcpStream,
    peer: &Peer,
    count: Option<u64>,
    check: bool,
) -> Result<()> {
    let what = config.describe(peer);
    let received = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    summary_on_interrupt(&received, what.clone(), "received")?;
    let silence = config.idle.unwrap_or(config.timeout);
    let mut checker = check.then(|| Checker::new(Shape::Stream));
    let mut buf = vec![0u8; CHUNK];
    let mut out = io::stdout().lock();
    let wanted = count.unwrap_or(u64::MAX);
    let mut got = 0u64;
    let ended = loop {
        if got >= wanted {
            break None;
        }
        let room = (wanted - got).min(buf.len() as u64) as usize;
        let read = read_before(stream, Deadline::after(Some(silence)), |mut s| {
            s.read(&mut buf[..room])
        });
        let n = match read {
            Ok(Some(0)) => break Some("the server closed the stream".to_string()),
            Ok(Some(n)) => n,
            Ok(None) => {
                break Some(format!(
                    "no data for {} (the server stopped sending)",
                    format_duration(silence)
                ))
            }
            Err(err) => break Some(format!("the connection failed ({err})")),
        };
        let piece = &buf[..n];
        let mismatch = checker.as_mut().and_then(|c| c.feed(piece).err());
        if !config.json {
            out.write_all(piece).map_err(stdout_error)?;
        }
        got += n as u64;
        received.store(got, Ordering::Relaxed);
        if let Some(mismatch) = mismatch {
            out.flush().map_err(stdout_error)?;
            return Err(anyhow!(
                "{what}: the stream is not the RFC 864 pattern: {mismatch}"
            ));
        }
    };
    out.flush().map_err(stdout_error)?;
    drop(out);
    let elapsed = started.elapsed();
    crate::info!("{what}: received {got} bytes {}", rate(got, elapsed));
    if let Some(checker) = &checker {
        crate::info!(
            "{what}: all {} bytes follow the RFC 864 pattern",
            checker.checked()
        );
    }
    if config.json {
        print_result(
            config,
            String::new(),
            serde_json::json!({
                "server": peer.name,
                "proto": "tcp",
                "bytes": got,
                "seconds": elapsed.as_secs_f64(),
                "checked": checker.as_ref().map(|_| true),
            }),
        )?;
    }
    match (ended, count) {
        (None, _) => Ok(()),
        // No -c: the stream is the answer, and a FIN is a clean end of it.
        (Some(why), None) if why.starts_with("the server closed") => {
            crate::info!("{what}: {why}");
            Ok(())
        }
        (Some(why), Some(count)) => Err(anyhow!(
            "{what}: {why} after {got} of the {count} bytes asked (-c)"
        )),
        (Some(why), None) => Err(anyhow!("{what}: {why} after {got} bytes")),
    }
}
