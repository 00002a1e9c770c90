//! Dialing a TCP target: resolution, Happy Eyeballs, source binding, one deadline for it all.
//!
//! A name often resolves to several addresses, some of which may be dead (an IPv6 route that
//! black-holes, a stale A record). Trying them one after another makes the user wait a full
//! timeout per dead address; RFC 8305 (Happy Eyeballs v2) instead starts the next attempt
//! 250 ms after the previous one, or at once when it fails, keeps every attempt in flight, and
//! takes the first that completes. `-w` bounds the whole thing, resolution included. When
//! every address fails, the error names each address with its own cause.
//!
//! With proxies ([`crate::net::proxy`]), the first hop is what gets dialled this way; the
//! chain is then walked under the same deadline, and the stream returned is the tunnel.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::debug;
use crate::exit::Hinted;
use crate::net::addr::{self, display_addr, Family, Target};
use crate::net::deadline::{format_duration, Deadline};
use crate::net::sockopt::SockOpts;

/// RFC 8305 §5 "Connection Attempt Delay": the recommended 250 ms.
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// How to dial.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `-4` / `-6`.
    pub family: Family,
    /// `-w`: bounds resolution and every connection attempt together.
    pub timeout: Option<Duration>,
    /// `-s ADDR`: the local address to bind before connecting.
    pub source_addr: Option<IpAddr>,
    /// `-p PORT`: the local port to bind before connecting.
    pub source_port: Option<u16>,
    /// Options applied to each socket before it connects.
    pub sockopts: SockOpts,
    /// Say "connected to" only at -vv: for callers that report each connection their own
    /// way (the forwarder's one line per connection).
    pub quiet: bool,
    /// `--proxy`: the proxies to go through (none: a direct connection).
    pub proxies: crate::net::proxy::Chain,
    /// `-i`: the longest a proxy may stay silent during its handshake (the session's idle
    /// bound applies from its first byte; `-w` bounds the whole).
    pub idle: Option<Duration>,
}

/// A connected stream and both of its ends.
#[derive(Debug)]
pub struct Connected {
    /// The connected socket, in blocking mode.
    pub stream: TcpStream,
    /// The address that answered (through proxies, the first proxy's).
    pub peer: SocketAddr,
    /// Our end.
    pub local: SocketAddr,
    /// The other end as messages name it: the address that answered, or through proxies
    /// the target as given (the proxy's address would blame it for the target's doings).
    pub name: String,
}

/// Resolves `target` and connects to the first of its addresses that answers.
pub fn connect(target: &Target, opts: &ConnectOptions) -> Result<Connected> {
    let deadline = Deadline::after(opts.timeout);
    let Some(first) = opts.proxies.hops.first() else {
        return connect_direct(target, opts, deadline);
    };
    let host = target.host.to_string();
    if opts.proxies.bypassed_for(&host) {
        crate::info!("{host} is in no_proxy: connecting directly, not through {first}");
        return connect_direct(target, opts, deadline);
    }
    let mut connected = connect_direct(&first.target, opts, deadline)
        .map_err(|err| crate::net::proxy::first_hop_failed(err, first))
        .with_context(|| match opts.proxies.hops.len() {
            1 => format!("connect {target} through proxy {first}"),
            n => format!("connect {target} through proxy 1 of {n} ({first})"),
        })?;
    connected.stream = crate::net::proxy::walk(connected.stream, target, opts, deadline)?;
    connected.name = target.to_string();
    Ok(connected)
}

/// Resolves `target` and races its addresses, under `deadline`.
fn connect_direct(target: &Target, opts: &ConnectOptions, deadline: Deadline) -> Result<Connected> {
    let mut addrs = addr::resolve(target, opts.family, deadline)?;
    if let Some(source) = opts.source_addr {
        addrs.retain(|a| a.is_ipv4() == source.is_ipv4());
        if addrs.is_empty() {
            let family = if source.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(anyhow::Error::new(Hinted {
                message: format!(
                    "connect {target}: it has no {family} address to match -s {source}"
                ),
                hint: "give a source address of the target's family, or drop -s".into(),
            }));
        }
    }
    debug!("{target} resolved to {}", list(&addrs));
    happy_eyeballs(target, &addrs, opts, deadline)
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One connection attempt in flight.
struct Attempt {
    socket: Socket,
    addr: SocketAddr,
}

/// Runs the RFC 8305 race over `addrs` (already in preference order).
pub fn happy_eyeballs(
    target: &Target,
    addrs: &[SocketAddr],
    opts: &ConnectOptions,
    deadline: Deadline,
) -> Result<Connected> {
    let mut in_flight: Vec<Attempt> = Vec::new();
    let mut failures: Vec<(SocketAddr, io::Error)> = Vec::new();
    let mut next = 0;
    let mut next_start = Instant::now();
    loop {
        let more = next < addrs.len();
        if more && (in_flight.is_empty() || Instant::now() >= next_start) {
            let addr = addrs[next];
            next += 1;
            next_start = Instant::now() + ATTEMPT_DELAY;
            debug!("trying {addr}");
            match start_attempt(addr, opts) {
                Ok((socket, true)) => return finish(socket, addr, opts.quiet),
                Ok((socket, false)) => in_flight.push(Attempt { socket, addr }),
                Err(err) => {
                    debug!("{addr}: {err}");
                    failures.push((addr, err));
                }
            }
            continue;
        }
        if in_flight.is_empty() {
            return Err(all_failed(target, failures, None));
        }
        if deadline.expired() {
            let waited = opts.timeout.map(format_duration).unwrap_or_default();
            for attempt in &in_flight {
                failures.push((
                    attempt.addr,
                    io::Error::new(io::ErrorKind::TimedOut, "timed out"),
                ));
            }
            return Err(all_failed(target, failures, Some(waited)));
        }
        let wake = if more {
            deadline.min(Deadline::after(Some(remaining_until(next_start))))
        } else {
            deadline
        };
        wait_writable(&in_flight, wake)?;
        let mut still = Vec::with_capacity(in_flight.len());
        for attempt in in_flight.drain(..) {
            match attempt_state(&attempt.socket) {
                AttemptState::Pending => still.push(attempt),
                AttemptState::Connected => {
                    // Dropping `still` and the rest of the drain closes the losers.
                    return finish(attempt.socket, attempt.addr, opts.quiet);
                }
                AttemptState::Failed(err) => {
                    debug!("{}: {err}", attempt.addr);
                    failures.push((attempt.addr, err));
                }
            }
        }
        in_flight = still;
    }
}

/// The one address of a target given as an IP literal (no resolution, no race), allowed by
/// `-4`/`-6`: an event loop may then connect it without blocking ([`start_attempt`],
/// [`attempt_state`]) instead of handing it to a thread. `None` for names, and when the
/// connection goes through proxies (the first hop is then what is dialed, and the chain is
/// walked with blocking reads).
pub fn literal_addr(target: &Target, opts: &ConnectOptions) -> Option<SocketAddr> {
    if !opts.proxies.is_empty() {
        return None;
    }
    match target.host {
        addr::Host::Ip(ip) if opts.family.allows(ip) => Some(SocketAddr::new(ip, target.port)),
        _ => None,
    }
}

/// The error of a failed attempt on a [`literal_addr`], worded as [`connect`] words it.
pub fn literal_failed(
    target: &Target,
    addr: SocketAddr,
    err: io::Error,
    timed_out: Option<String>,
) -> anyhow::Error {
    all_failed(target, vec![(addr, err)], timed_out)
}

fn remaining_until(at: Instant) -> Duration {
    at.saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// Creates, configures, binds and starts connecting one socket. `true` when the connection
/// completed at once.
pub fn start_attempt(addr: SocketAddr, opts: &ConnectOptions) -> io::Result<(Socket, bool)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    let mut sockopts = opts.sockopts.clone();
    // Several attempts of one family may bind the same source port at once.
    sockopts.reuseaddr |= opts.source_port.is_some();
    sockopts
        .apply(&socket, addr.is_ipv6())
        .map_err(io::Error::other)?;
    if opts.source_addr.is_some() || opts.source_port.is_some() {
        let ip = opts
            .source_addr
            .unwrap_or_else(|| addr::unspecified(addr.is_ipv6()));
        let local = SocketAddr::new(ip, opts.source_port.unwrap_or(0));
        socket
            .bind(&SockAddr::from(local))
            .map_err(|e| io::Error::new(e.kind(), format!("bind {local}: {e}")))?;
    }
    socket.set_nonblocking(true)?;
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => Ok((socket, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((socket, false)),
        Err(e) => Err(e),
    }
}

/// Where a non-blocking connection attempt stands.
#[derive(Debug)]
pub enum AttemptState {
    /// Still connecting.
    Pending,
    /// Connected: the socket is ready for bytes.
    Connected,
    /// Refused, unreachable, or another error.
    Failed(io::Error),
}

/// Asks a non-blocking attempt (once writable, or at any time) where it stands.
pub fn attempt_state(socket: &Socket) -> AttemptState {
    match socket.take_error() {
        Ok(Some(err)) | Err(err) => AttemptState::Failed(err),
        Ok(None) => match socket.peer_addr() {
            Ok(_) => AttemptState::Connected,
            Err(e) if e.kind() == io::ErrorKind::NotConnected => AttemptState::Pending,
            Err(e) => AttemptState::Failed(e),
        },
    }
}

/// Blocks until one attempt is writable (connected or failed) or `until` passes.
fn wait_writable(attempts: &[Attempt], until: Deadline) -> Result<()> {
    let mut fds: Vec<libc::pollfd> = attempts
        .iter()
        .map(|a| libc::pollfd {
            fd: a.socket.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `fds` is a valid, initialised slice of pollfd for the duration of the call.
        let ready = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                until.poll_timeout_ms(),
            )
        };
        if ready >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err).context("poll connection attempts");
        }
    }
}

fn finish(socket: Socket, addr: SocketAddr, quiet: bool) -> Result<Connected> {
    socket
        .set_nonblocking(false)
        .context("set socket blocking")?;
    let stream: TcpStream = socket.into();
    let local = stream.local_addr().context("getsockname")?;
    crate::log::at(
        if quiet { 2 } else { 1 },
        format_args!(
            "connected to {} (tcp) from {}",
            display_addr(addr),
            display_addr(local)
        ),
    );
    Ok(Connected {
        stream,
        peer: addr,
        local,
        name: display_addr(addr),
    })
}

/// An IPv6 link-local address (fe80::/10) given without a scope.
fn is_unscoped_link_local(addr: SocketAddr) -> bool {
    match addr {
        SocketAddr::V6(v6) => v6.scope_id() == 0 && v6.ip().segments()[0] & 0xffc0 == 0xfe80,
        SocketAddr::V4(_) => false,
    }
}

/// One error for the whole attempt, naming each address and its cause.
fn all_failed(
    target: &Target,
    failures: Vec<(SocketAddr, io::Error)>,
    timed_out: Option<String>,
) -> anyhow::Error {
    let single_literal = failures.len() == 1 && matches!(target.host, addr::Host::Ip(_));
    if single_literal {
        let (addr, err) = failures.into_iter().next().expect("one failure");
        return match timed_out {
            Some(after) if err.kind() == io::ErrorKind::TimedOut => {
                anyhow!("connect {}: timed out after {after}", display_addr(addr))
            }
            // A link-local IPv6 address means nothing without its interface: the kernel says
            // only "Invalid argument".
            _ if is_unscoped_link_local(addr) => anyhow::Error::new(crate::exit::Hinted {
                message: format!("connect {}: {err}", display_addr(addr)),
                hint: format!(
                    "a link-local address needs its interface: {}%eth0 (ip -6 addr shows which)",
                    addr.ip()
                ),
            }),
            _ => anyhow::Error::new(err).context(format!("connect {}", display_addr(addr))),
        };
    }
    let causes: Vec<String> = failures
        .iter()
        .map(|(addr, err)| format!("{}: {err}", display_addr(*addr)))
        .collect();
    let summary = match timed_out {
        Some(after) => format!("timed out after {after}"),
        None if failures.len() == 1 => "failed".to_string(),
        None => format!("all {} addresses failed", failures.len()),
    };
    anyhow!("connect {target}: {summary}: {}", causes.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn connects_to_the_address_that_listens() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let live: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let target = Target {
            host: addr::Host::Name("test".into()),
            port,
        };
        let opts = ConnectOptions::default();
        let connected = happy_eyeballs(&target, &[dead, live], &opts, Deadline::NEVER).unwrap();
        assert_eq!(connected.peer, live);
    }

    #[test]
    fn every_failure_is_named() {
        let a: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let b: SocketAddr = format!("127.0.0.2:{}", free_port()).parse().unwrap();
        let target = Target {
            host: addr::Host::Name("test".into()),
            port: a.port(),
        };
        let err = happy_eyeballs(
            &target,
            &[a, b],
            &ConnectOptions::default(),
            Deadline::NEVER,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("all 2 addresses failed"), "{err}");
        assert!(err.contains(&format!("{a}: Connection refused")), "{err}");
        assert!(err.contains(&format!("{b}: Connection refused")), "{err}");
    }

    #[test]
    fn a_single_literal_reads_like_netcat() {
        let port = free_port();
        let target = Target {
            host: addr::Host::Ip("127.0.0.1".parse().unwrap()),
            port,
        };
        let err = connect(&target, &ConnectOptions::default()).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!("connect 127.0.0.1:{port}: Connection refused (os error 111)")
        );
    }

    #[test]
    fn source_address_and_port_are_bound() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let source_port = free_port();
        let target = Target {
            host: addr::Host::Ip("127.0.0.1".parse().unwrap()),
            port,
        };
        let opts = ConnectOptions {
            source_addr: Some("127.0.0.2".parse().unwrap()),
            source_port: Some(source_port),
            ..ConnectOptions::default()
        };
        let connected = connect(&target, &opts).unwrap();
        assert_eq!(
            connected.local,
            format!("127.0.0.2:{source_port}").parse().unwrap()
        );
        let (_, seen) = listener.accept().unwrap();
        assert_eq!(seen, connected.local);
    }
}
