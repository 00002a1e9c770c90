//! The servers behind `nk echo -l`, `nk discard -l`, `nk chargen -l`, `nk daytime -l`,
//! `nk qotd -l` and `nk time -l`: RFC 862/863/864/867/865/868 over TCP and UDP, built to be
//! left running on a LAN.
//!
//! TCP runs on the event loop every many-client server runs on (`net::poller::serve`, the
//! forwarder's too), with this file's [`Handler`] deciding what each connection does: a
//! connection is a few words of state plus a buffer only while its echo cannot be written,
//! so 10,000 idle clients cost little, and a client is never waiting on a thread to be
//! created. The accept rules are the loop's (the accept error classes, the out-of-descriptors
//! pause, IPv4-mapped peers made IPv4) and `--allow/--deny`, `-m` and `-i` mean what they
//! mean for the listen server.
//! Echo reads at most [`CHUNK`] bytes ahead of what the client has taken back: when its echo
//! cannot be written the connection stops being read, and TCP flow control pushes back on the
//! client instead of memory growing. Half-closes are honoured: after the client's FIN the
//! rest of its echo is written, then the connection closes. Daytime, qotd and time write their
//! text, half-close, and read (and drop) whatever the client sends until it closes, so closing
//! never turns into a reset that could destroy the reply in flight. Discard drops what comes
//! in the kernel (MSG_TRUNC, up to 256 KiB a call) until the client's FIN, then closes: that close tells the client every
//! byte was read. Chargen writes only when the socket has room, from one shared copy of the
//! pattern (no buffer per client, so a client that never reads costs nothing but its socket),
//! reads and drops what the client sends, and after the client's FIN goes on writing (a
//! half-closed client may still read) until a write fails, as inetd's chargen does.
//!
//! UDP runs as a plain receive/answer loop on its own thread, behind `net::udp_guard`. Discard
//! never answers. Chargen answers with RFC 864's random 0-512 characters, but never more than
//! the request's own length: a forged request cannot draw more bytes than it sent. On a
//! wildcard address each reply leaves from the address its request was sent to (IP_PKTINFO,
//! see `net::cmsg`), so clients with connected sockets accept it on multi-address hosts.

use std::io::{self, IoSlice, Read};
use std::mem::MaybeUninit;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::Rng;
use socket2::{MaybeUninitSlice, MsgHdr, MsgHdrMut, SockAddr, Socket};

use crate::net::acl::AccessList;
use crate::net::addr::{display_addr, display_sockaddr};
use crate::net::cmsg;
use crate::net::datagram;
use crate::net::deadline::format_duration;
use crate::net::poller::{self, AcceptStop, Handler, Interest, LoopPlan, Poller, SpinRule};
use crate::net::server::{accept_nonblocking, Accepted};
use crate::net::udp_guard::{Guard, RateLimit, Verdict};
use crate::wire::chargen;

/// The most echo bytes held for one connection (what one read may take ahead of the client).
pub const CHUNK: usize = 16 * 1024;

/// Bytes a discard or chargen connection reads at once (they keep none of it; discard's
/// never even reach the buffer, so its pages are never touched).
const DRAIN_CHUNK: usize = 256 * 1024;

/// The most one chargen send offers the kernel (it takes what its buffer has room for).
const CHARGEN_SEND: usize = 64 * 1024;

/// How long a daytime/qotd/time client may keep its connection open after the reply.
const LINGER: Duration = Duration::from_secs(5);

/// The longest the loop polls for its next event before it sleeps (see `net::poller::Spin`):
/// under load the next client is usually microseconds away.
const SPIN: Duration = Duration::from_micros(50);

const LISTENER: u64 = u64::MAX;
/// One accept per readiness report: the listener is level-triggered, so a queue of clients
/// keeps it reported, and a lone client costs no extra accept that fails with EAGAIN.
const ACCEPTS_PER_WAKE: usize = 1;
const ROUNDS_PER_WAKE: usize = 16;

/// What the service says.
#[derive(Clone)]
pub enum Behaviour {
    /// RFC 862: every byte back.
    Echo,
    /// RFC 867 / 865 / 868: a text made per client (or per datagram), whatever was sent.
    Announce(Arc<dyn Fn() -> Vec<u8> + Send + Sync>),
    /// RFC 863: everything read and dropped, nothing ever sent.
    Discard,
    /// RFC 864: the character stream (TCP) or 0-512 characters per datagram (UDP).
    Chargen,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Behaviour::Echo => f.write_str("Echo"),
            Behaviour::Announce(_) => f.write_str("Announce"),
            Behaviour::Discard => f.write_str("Discard"),
            Behaviour::Chargen => f.write_str("Chargen"),
        }
    }
}

/// Admission and limits, shared by the TCP and UDP sides.
#[derive(Debug, Clone, Default)]
pub struct ServiceOptions {
    /// `-m`: TCP connections at once; more are closed at once.
    pub max_conns: Option<usize>,
    /// `-i`: a TCP client that moves no byte for this long is closed.
    pub idle: Option<Duration>,
    /// `--allow` / `--deny`, for both protocols.
    pub access: AccessList,
    /// `--rate` / `--burst` for UDP; `None` is no limit.
    pub rate: Option<RateLimit>,
}

/// Counters for the `-v` summary.
#[derive(Debug, Default)]
pub struct ServiceStats {
    started: std::sync::OnceLock<Instant>,
    connections: AtomicU64,
    turned_away: AtomicU64,
    open: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    datagrams: AtomicU64,
    answered: AtomicU64,
    refused: AtomicU64,
    limited: AtomicU64,
    unsent: AtomicU64,
    /// The protocols served: the summary speaks of those only.
    tcp: bool,
    udp: bool,
}

impl ServiceStats {
    /// The counters of a server on TCP, UDP or both.
    pub fn serving(tcp: bool, udp: bool) -> ServiceStats {
        ServiceStats {
            tcp,
            udp,
            ..ServiceStats::default()
        }
    }

    /// `tcp: N connections (M open, K turned away), X bytes in, Y out; udp: ...; in T`, each
    /// protocol only when it is served.
    pub fn summary(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let elapsed = self.started.get().map(|t| t.elapsed()).unwrap_or_default();
        let count = |c: &AtomicU64, noun| crate::log::count(load(c), noun);
        let mut parts = Vec::new();
        if self.tcp {
            parts.push(format!(
                "tcp: {} ({} open, {} turned away), {} in, {} out",
                count(&self.connections, "connection"),
                load(&self.open),
                load(&self.turned_away),
                count(&self.bytes_in, "byte"),
                count(&self.bytes_out, "byte"),
            ));
        }
        if self.udp {
            parts.push(format!(
                "udp: {}, {} answered, {} refused, {} over the rate, {} replies not sent",
                count(&self.datagrams, "datagram"),
                load(&self.answered),
                load(&self.refused),
                load(&self.limited),
                load(&self.unsent),
            ));
        }
        parts.push(format!("in {}", format_duration(elapsed)));
        parts.join("; ")
    }

    /// Without `-v`, the last word on the datagrams left unanswered (refused, over the rate,
    /// reply not sent), when there were any: the throttled lines may have said only some.
    pub fn unanswered(&self) -> Option<String> {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (refused, limited, unsent) =
            (load(&self.refused), load(&self.limited), load(&self.unsent));
        let total = refused + limited + unsent;
        (total > 0).then(|| {
            format!(
                "udp: {total} of {} left unanswered ({refused} refused, {limited} over the \
                 rate, {unsent} replies not sent)",
                crate::log::count(load(&self.datagrams), "datagram"),
            )
        })
    }

    fn start(&self) {
        let _ = self.started.set(Instant::now());
    }
}

/// Raises the soft limit on open descriptors to the hard limit, as a server holding
/// thousands of clients needs (the usual soft limit is 1024); a failure leaves it as it was.
pub fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills one rlimit; setrlimit reads one.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A `-v` line about one client, with a wall-clock timestamp so a log can be lined up with
/// others. The arguments are not even evaluated without `-v`: the clock and the formatting
/// would otherwise cost every connection and every datagram.
macro_rules! event {
    ($($arg:tt)*) => {
        if $crate::log::verbosity() >= 1 {
            $crate::log::at(1, format_args!("{} {}", stamp(), format_args!($($arg)*)));
        }
    };
}

fn stamp() -> String {
    chrono::Local::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Echo: reading and writing back.
    Echoing,
    /// Daytime/qotd: the text is being written.
    Replying,
    /// Daytime/qotd: the text is out and our side shut; reading until the client closes.
    Lingering,
    /// Discard: reading and dropping until the client closes.
    Discarding,
    /// Chargen: writing the pattern while there is room; `offset` is where the next byte
    /// is in the pattern's cycle.
    Generating { offset: usize },
}

#[derive(Debug)]
struct Conn {
    socket: Socket,
    peer: SocketAddr,
    seq: u64,
    phase: Phase,
    pending: Vec<u8>,
    written: usize,
    peer_closed: bool,
    interest: Interest,
    opened: Instant,
    last_active: Instant,
    received: u64,
    sent: u64,
}

/// What a connection needs next.
enum Next {
    Wait(Interest),
    Close,
}

impl Conn {
    /// Moves bytes until the socket would block, the client is done, or the round limit
    /// (fairness: one busy client cannot starve the others of the loop).
    fn progress(&mut self, buf: &mut [u8]) -> io::Result<Next> {
        if let Phase::Generating { offset } = self.phase {
            return self.generate(offset, buf);
        }
        // socket2's send passes MSG_NOSIGNAL: a vanished client is an error, not SIGPIPE.
        for _ in 0..ROUNDS_PER_WAKE {
            while self.written < self.pending.len() {
                match self.socket.send(&self.pending[self.written..]) {
                    Ok(n) => {
                        self.written += n;
                        self.sent += n as u64;
                        self.last_active = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(Next::Wait(Interest::Write))
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if !self.pending.is_empty() {
                // Free it: most connections never need one, and 10,000 idle ones must not
                // each keep a buffer.
                self.pending = Vec::new();
                self.written = 0;
            }
            if self.phase == Phase::Replying {
                self.socket.shutdown(Shutdown::Write)?;
                self.phase = Phase::Lingering;
            }
            if self.peer_closed {
                return Ok(Next::Close);
            }
            let read = if self.phase == Phase::Discarding {
                // SAFETY: u8 and MaybeUninit<u8> have the same layout, and recv only ever
                // stores initialised bytes into the buffer (with MSG_TRUNC on TCP, none).
                let view = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
                // MSG_TRUNC on a TCP socket drops the bytes in the kernel without copying
                // them out (tcp(7)): discard reads at the speed of the socket, not memcpy.
                self.socket.recv_with_flags(view, libc::MSG_TRUNC)
            } else {
                (&self.socket).read(buf)
            };
            match read {
                Ok(0) => self.peer_closed = true,
                Ok(n) => {
                    let drained = n < buf.len();
                    self.received += n as u64;
                    // A lingering client's bytes are dropped and do not extend its time: the
                    // linger limit counts from the reply.
                    match self.phase {
                        Phase::Echoing => {
                            self.last_active = Instant::now();
                            self.echo(&buf[..n])?;
                        }
                        Phase::Discarding => self.last_active = Instant::now(),
                        _ => {}
                    }
                    if drained && self.pending.is_empty() {
                        // A short read emptied the socket: wait instead of reading again for
                        // an EAGAIN (level-triggered epoll reports anything that came since).
                        return Ok(Next::Wait(Interest::Read));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Next::Wait(Interest::Read))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Next::Wait(if self.pending.is_empty() {
            Interest::Read
        } else {
            Interest::Write
        }))
    }

    /// Chargen: drops what the client sent, then writes the pattern until the socket is full
    /// (flow control: a client that does not read stops the writing, never grows a buffer),
    /// the client is gone, or the round limit.
    fn generate(&mut self, mut offset: usize, buf: &mut [u8]) -> io::Result<Next> {
        if !self.peer_closed {
            match (&self.socket).read(buf) {
                Ok(0) => self.peer_closed = true,
                Ok(n) => {
                    self.received += n as u64;
                    self.last_active = Instant::now();
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // After the client's FIN only room to write matters (a half-closed client may still
        // read); EPOLLRDHUP would otherwise keep waking the loop.
        let interest = if self.peer_closed {
            Interest::Write
        } else {
            Interest::Both
        };
        let text = chargen_text();
        for _ in 0..ROUNDS_PER_WAKE {
            match self.socket.send(&text[offset..offset + CHARGEN_SEND]) {
                Ok(n) => {
                    offset = (offset + n) % chargen::CYCLE;
                    self.phase = Phase::Generating { offset };
                    self.sent += n as u64;
                    self.last_active = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Next::Wait(interest))
    }

    /// Writes `data` back at once, keeping what does not fit.
    fn echo(&mut self, data: &[u8]) -> io::Result<()> {
        let done = match self.socket.send(data) {
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                0
            }
            Err(e) => return Err(e),
        };
        self.sent += done as u64;
        if done < data.len() {
            self.pending = data[done..].to_vec();
            self.written = 0;
        }
        Ok(())
    }

    fn idle_limit(&self, idle: Option<Duration>) -> Option<Duration> {
        match self.phase {
            Phase::Echoing | Phase::Discarding | Phase::Generating { .. } => idle,
            Phase::Replying | Phase::Lingering => Some(idle.map_or(LINGER, |i| i.min(LINGER))),
        }
    }
}

/// The connections of the loop, by slot (its epoll token).
type Table = crate::net::poller::SlotTable<Conn>;

/// The TCP side's event loop: what `net::poller::serve` reports, done for one service.
struct ServiceLoop<'a> {
    poller: Poller,
    table: Table,
    /// The one read buffer of the loop.
    buf: Vec<u8>,
    behaviour: &'a Behaviour,
    opts: &'a ServiceOptions,
    stats: &'a ServiceStats,
    /// The last connection's number.
    seq: u64,
}

/// The TCP side: runs until an unrecoverable listener error.
pub fn serve_tcp(
    listener: Socket,
    behaviour: &Behaviour,
    opts: &ServiceOptions,
    stats: &ServiceStats,
) -> Result<()> {
    stats.start();
    listener
        .set_nonblocking(true)
        .context("set the listener non-blocking")?;
    if matches!(behaviour, Behaviour::Echo) {
        // Echo is interactive: each echo should leave at once, not wait for an ACK. Accepted
        // sockets inherit the option from the listener, so it is set once.
        listener.set_nodelay(true).context("set TCP_NODELAY")?;
    }
    let poller = Poller::new(256).context("epoll_create")?;
    poller
        .add(listener.as_raw_fd(), Interest::Read, LISTENER)
        .context("epoll_ctl")?;
    // Echo holds back at most what one read took.
    let buf_len = match behaviour {
        Behaviour::Echo => CHUNK,
        _ => DRAIN_CHUNK,
    };
    let sweeps = opts.idle.is_some() || matches!(behaviour, Behaviour::Announce(_));
    let plan = LoopPlan {
        listener_token: LISTENER,
        shared_listener: false,
        sweep_every: sweeps.then(|| poller::sweep_interval(opts.idle).unwrap_or(poller::SWEEP)),
        spin: SpinRule::AfterWork(SPIN),
    };
    let mut service = ServiceLoop {
        poller,
        table: Table::default(),
        buf: vec![0u8; buf_len],
        behaviour,
        opts,
        stats,
        seq: 0,
    };
    poller::serve(&listener, &mut service, &plan)
}

impl Handler for ServiceLoop<'_> {
    fn poller(&mut self) -> &mut Poller {
        &mut self.poller
    }

    /// Accepts what the listener has queued (up to a batch), applying the admission rules.
    fn accept(&mut self, listener: &Socket) -> std::result::Result<(), AcceptStop> {
        for _ in 0..ACCEPTS_PER_WAKE {
            let (socket, peer) = match accept_nonblocking(listener) {
                Ok(Accepted::Client(socket, peer)) => (socket, peer),
                Ok(Accepted::Retry) => break,
                Ok(Accepted::Exhausted(err)) => return Err(AcceptStop::Exhausted(err)),
                Err(err) => return Err(AcceptStop::Fatal(err)),
            };
            let Some(peer) = peer.as_socket() else {
                continue;
            };
            if let Some(conn) = self.admission(socket, peer) {
                let slot = self.table.insert(conn);
                // A first attempt at progress before registering: a daytime or qotd client
                // gets its text at once, and an echo client's first bytes have usually
                // arrived already.
                step(
                    &mut self.poller,
                    &mut self.table,
                    slot,
                    &mut self.buf,
                    self.stats,
                    true,
                );
            }
        }
        Ok(())
    }

    fn ready(&mut self, token: u64) -> Result<()> {
        step(
            &mut self.poller,
            &mut self.table,
            token as usize,
            &mut self.buf,
            self.stats,
            false,
        );
        Ok(())
    }

    fn live(&self) -> usize {
        self.table.live
    }

    fn sweep(&mut self, now: Instant) {
        sweep(&mut self.table, self.opts.idle, self.stats, now);
    }
}

impl ServiceLoop<'_> {
    /// The connection a new client becomes, or `None` (said on stderr) when `--allow/--deny`
    /// or `-m` turns it away.
    fn admission(&mut self, socket: Socket, peer: SocketAddr) -> Option<Conn> {
        let (opts, stats) = (self.opts, self.stats);
        if !opts.access.permits(peer.ip()) {
            stats.turned_away.fetch_add(1, Ordering::Relaxed);
            crate::log::turned_away(format_args!(
                "tcp {} denied (--allow/--deny)",
                display_addr(peer)
            ));
            return None;
        }
        if let Some(max) = opts.max_conns {
            if self.table.live >= max {
                stats.turned_away.fetch_add(1, Ordering::Relaxed);
                crate::log::turned_away(format_args!(
                    "tcp {} refused: {} already (-m {max})",
                    display_addr(peer),
                    crate::log::count(max as u64, "connection")
                ));
                return None;
            }
        }
        self.seq += 1;
        let now = Instant::now();
        let (phase, pending) = match self.behaviour {
            Behaviour::Echo => (Phase::Echoing, Vec::new()),
            Behaviour::Announce(text) => (Phase::Replying, text()),
            Behaviour::Discard => (Phase::Discarding, Vec::new()),
            Behaviour::Chargen => (Phase::Generating { offset: 0 }, Vec::new()),
        };
        stats.connections.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        event!("tcp {} connected (#{})", display_addr(peer), self.seq);
        Some(Conn {
            socket,
            peer,
            seq: self.seq,
            phase,
            pending,
            written: 0,
            peer_closed: false,
            interest: Interest::Read,
            opened: now,
            last_active: now,
            received: 0,
            sent: 0,
        })
    }
}

/// Lets the connection in `slot` make progress, then registers what it waits for or closes it.
fn step(
    poller: &mut Poller,
    table: &mut Table,
    slot: usize,
    buf: &mut [u8],
    stats: &ServiceStats,
    new: bool,
) {
    let Some(conn) = table.slots.get_mut(slot).and_then(Option::as_mut) else {
        return;
    };
    let outcome = match conn.progress(buf) {
        Ok(Next::Wait(interest)) => {
            let fd = conn.socket.as_raw_fd();
            let registered = if new {
                poller.add(fd, interest, slot as u64)
            } else if interest != conn.interest {
                poller.modify(fd, interest, slot as u64)
            } else {
                Ok(())
            };
            conn.interest = interest;
            registered.map_err(|e| format!("epoll_ctl: {e}"))
        }
        Ok(Next::Close) => Err(String::new()),
        Err(err) => Err(err.to_string()),
    };
    if let Err(reason) = outcome {
        if let Some(conn) = table.take(slot) {
            close(conn, stats, &reason);
        }
    }
}

fn close(conn: Conn, stats: &ServiceStats, reason: &str) {
    stats.open.fetch_sub(1, Ordering::Relaxed);
    stats.bytes_in.fetch_add(conn.received, Ordering::Relaxed);
    stats.bytes_out.fetch_add(conn.sent, Ordering::Relaxed);
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    };
    let elapsed = conn.opened.elapsed();
    // The bulk services are used to measure links: their clients get a rate.
    let rate = match conn.phase {
        Phase::Discarding | Phase::Generating { .. } => format!(
            " ({:.1} MB/s)",
            (conn.received + conn.sent) as f64 / elapsed.as_secs_f64().max(1e-6) / 1e6
        ),
        _ => String::new(),
    };
    event!(
        "tcp {} closed (#{}): {} bytes in, {} bytes out in {}{rate}{why}",
        display_addr(conn.peer),
        conn.seq,
        conn.received,
        conn.sent,
        format_duration(elapsed)
    );
}

/// Closes the connections idle past their limit.
fn sweep(table: &mut Table, idle: Option<Duration>, stats: &ServiceStats, now: Instant) {
    for slot in 0..table.slots.len() {
        let expired = table.slots[slot].as_ref().is_some_and(|conn| {
            conn.idle_limit(idle)
                .is_some_and(|limit| now.saturating_duration_since(conn.last_active) >= limit)
        });
        if expired {
            if let Some(conn) = table.take(slot) {
                let limit = conn.idle_limit(idle).unwrap_or_default();
                close(conn, stats, &format!("idle for {}", format_duration(limit)));
            }
        }
    }
}

/// The UDP side: answers datagrams the guard lets through; runs until a socket error.
pub fn serve_udp(
    socket: Socket,
    behaviour: &Behaviour,
    opts: &ServiceOptions,
    stats: &ServiceStats,
) -> Result<()> {
    stats.start();
    let local = socket.local_addr().context("getsockname")?;
    let own_port = local.as_socket().map_or(0, |a| a.port());
    let mut guard = Guard::new(own_port, opts.rate);
    let wildcard = local.as_socket().is_some_and(|a| a.ip().is_unspecified());
    if wildcard {
        let v6 = local.as_socket().is_some_and(|a| a.is_ipv6());
        cmsg::report_destinations(&socket, v6).context("set IP_PKTINFO")?;
    }
    datagram::enlarge_receive_buffer(&socket);
    let mut buf = vec![MaybeUninit::<u8>::uninit(); datagram::MAX_UDP_PAYLOAD_V6 + 1];
    let mut control = [MaybeUninit::<u8>::uninit(); 128];
    let mut answered_at: Option<Instant> = None;
    // Chargen: each datagram starts one line further along the pattern.
    let mut next_line = chargen::FIRST_LINE;
    loop {
        // Right after an answer the next request is likely microseconds away: poll for it
        // (up to SPIN) before sleeping, as the TCP loop does.
        let mut received = Err(io::Error::from(io::ErrorKind::WouldBlock));
        if let Some(at) = answered_at.take() {
            while Instant::now() < at + SPIN {
                received = receive_addressed(&socket, &mut buf, &mut control, libc::MSG_DONTWAIT);
                if !matches!(&received, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                    break;
                }
            }
        }
        if matches!(&received, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            received = receive_addressed(&socket, &mut buf, &mut control, 0);
        }
        let (len, from, destination) = match received {
            Ok(received) => received,
            Err(e) if udp_transient(&e) => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("receive on {}", display_sockaddr(&local)))
            }
        };
        let Some(source) = from.as_socket() else {
            continue;
        };
        let source = SocketAddr::new(source.ip().to_canonical(), source.port());
        stats.datagrams.fetch_add(1, Ordering::Relaxed);
        if !opts.access.permits(source.ip()) {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            // Said without -v, as a refused TCP client is: throttled, so a flood of
            // datagrams cannot flood stderr.
            crate::log::unanswered(format_args!(
                "udp {} denied (--allow/--deny)",
                display_addr(source)
            ));
            continue;
        }
        if matches!(behaviour, Behaviour::Discard) {
            event!("udp {} {len} bytes discarded", display_addr(source));
            continue;
        }
        match guard.check(source, destination, Instant::now()) {
            Verdict::Answer => {}
            Verdict::Resumed { dropped } => crate::log::unanswered(format_args!(
                "udp {} back under --rate: {} before this one left unanswered",
                display_addr(source),
                crate::log::count(dropped, "datagram")
            )),
            Verdict::Refused(reason) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                crate::log::unanswered(format_args!(
                    "udp {} not answered: {reason}",
                    display_addr(source)
                ));
                continue;
            }
            Verdict::Limited { first } => {
                stats.limited.fetch_add(1, Ordering::Relaxed);
                if first {
                    crate::log::unanswered(format_args!(
                        "udp {} over --rate: not answered until it slows down",
                        display_addr(source)
                    ));
                }
                continue;
            }
        }
        let text;
        let reply: &[u8] = match behaviour {
            Behaviour::Echo => cmsg::assume_init(&buf[..len]),
            Behaviour::Announce(make) => {
                text = make();
                &text
            }
            Behaviour::Chargen => {
                text = chargen_datagram(len, next_line);
                next_line = (next_line + 1) % chargen::RING;
                &text
            }
            Behaviour::Discard => continue,
        };
        let sent = match destination.filter(|_| wildcard) {
            // Answer from the address the client wrote to: a connected client drops anything else.
            Some(ours) => socket.sendmsg(
                &MsgHdr::new()
                    .with_addr(&from)
                    .with_buffers(&[IoSlice::new(reply)])
                    .with_control(&cmsg::send_from(ours)),
                0,
            ),
            None => socket.send_to(reply, &from),
        };
        match sent {
            Ok(_) => {
                answered_at = Some(Instant::now());
                stats.answered.fetch_add(1, Ordering::Relaxed);
                event!(
                    "udp {} {len} bytes in, {} bytes out",
                    display_addr(source),
                    reply.len()
                );
            }
            Err(e) => {
                stats.unsent.fetch_add(1, Ordering::Relaxed);
                crate::log::unanswered(format_args!(
                    "udp {}: the reply was not sent: {e}",
                    display_addr(source)
                ));
            }
        }
    }
}

/// The pattern, long enough that a send of [`CHARGEN_SEND`] bytes may start anywhere in its
/// first cycle: one copy for every connection.
fn chargen_text() -> &'static [u8] {
    static TEXT: OnceLock<Vec<u8>> = OnceLock::new();
    TEXT.get_or_init(|| chargen::repeated(CHARGEN_SEND.div_ceil(chargen::CYCLE) + 1, 0))
}

/// A chargen UDP reply to a request of `request_len` bytes: RFC 864's random 0-512 characters,
/// cut to the request's length (no amplification: the reply is never larger than the
/// request), starting at line `first_line` of the pattern.
fn chargen_datagram(request_len: usize, first_line: usize) -> Vec<u8> {
    let len = rand::rng()
        .random_range(0..=chargen::MAX_DATAGRAM)
        .min(request_len);
    let mut text = vec![0u8; len];
    chargen::fill(first_line, &mut text);
    text
}

/// recvmsg: the datagram's length, its sender, and where it was sent (with IP_PKTINFO on).
fn receive_addressed(
    socket: &Socket,
    buf: &mut [MaybeUninit<u8>],
    control: &mut [MaybeUninit<u8>],
    flags: libc::c_int,
) -> io::Result<(usize, SockAddr, Option<IpAddr>)> {
    // SAFETY: an all-zero sockaddr_storage is a valid (unspecified) address buffer.
    let mut from = unsafe { SockAddr::try_init(|_, _| Ok(())) }?.1;
    let mut bufs = [MaybeUninitSlice::new(buf)];
    let mut msg = MsgHdrMut::new()
        .with_addr(&mut from)
        .with_buffers(&mut bufs)
        .with_control(control);
    let len = socket.recvmsg(&mut msg, flags)?;
    let control_len = msg.control_len();
    Ok((len, from, cmsg::destination(&control[..control_len])))
}

/// Errors a UDP server socket reports about earlier datagrams (an ICMP error for a reply we
/// sent) or signals: none of them stops the service.
fn udp_transient(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::EINTR
                | libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::ECONNRESET
                | libc::ENOBUFS
                | libc::ENOMEM
        )
    )
}
