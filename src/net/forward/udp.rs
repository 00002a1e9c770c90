//! UDP sessions for `nk forward -u`: every client address gets its own session, with its own
//! upstream socket connected to the target, so each reply goes back to the client that caused
//! it (socat's `UDP-LISTEN:P,fork UDP:HOST:Q`, without a process per client).
//!
//! Where things are:
//! - the loop is [`run`]: one thread, one epoll instance (`net::poller`, level-triggered, so a
//!   socket left with datagrams after [`BATCH`] reads is simply reported again), holding the
//!   listening socket, the wake-up pipe of SIGINT/SIGTERM and every session's upstream socket.
//!   A readable socket is read with recvmmsg (`datagram::batch`): one call for all it holds.
//!   A session's token is its slot in the [`SlotTable`]; sessions are found by client
//!   address through a map beside it.
//! - a session's state is [`Session`]: its upstream socket and its counters.
//! - the target is resolved once, at start (within `-w`): the loop never waits for a
//!   resolver, and every session goes to the same address.
//!
//! Rules (README, "Nothing is lost"): a datagram is forwarded whole or not at all, and one
//! that is not is said on stderr (the client has no other way to learn of it): too large for
//! the other side (EMSGSIZE: 65507 bytes over IPv4, 65527 over IPv6), a full send buffer, a
//! client over `-m`, no descriptor for a new session. Those lines are rate-limited (one per
//! kind and second, with counts: `net::datagram::losses`), so a flood does not flood stderr.
//! Receives use MSG_TRUNC into a 64 KiB buffer (more than any UDP payload), so a cut datagram
//! would be seen, never passed on cut. An ICMP port unreachable from the target comes back as
//! ECONNREFUSED on the session's connected socket: the session ends as `refused`, and the
//! client's next datagram opens a new one. `--session-timeout` (or `-i`) ends a session that
//! moved no datagram for that long. Nothing is queued in nk: a datagram is sent as soon as it
//! is read, or dropped and reported.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::net::acl::AccessList;
use crate::net::addr::display_addr;
use crate::net::datagram::batch::Batch;
use crate::net::datagram::losses::{Loss, LossLog, REPORT_EVERY};
use crate::net::datagram::{self, MAX_UDP_PAYLOAD_V4, MAX_UDP_PAYLOAD_V6};
use crate::net::deadline::{format_duration, Deadline};
use crate::net::poller::{Interest, Poller, SlotTable, Spin};

use super::connector::Waker;
use super::{park, report_end, watching, Stop, LISTENER, WAKE};

/// Datagrams read from one socket per readiness report (a multiple of [`Batch::SLOTS`]): a
/// busy client or target is served in turns with the others.
const BATCH: usize = 32;
/// Receive buffer: larger than any UDP payload, so with MSG_TRUNC a datagram that did not fit
/// (which UDP cannot send) would still be seen as cut.
const BUFFER: usize = 64 * 1024 + 1;
/// How often idle sessions are looked for (at most; less when the timeout is longer).
const SWEEP: Duration = Duration::from_millis(250);

/// What the UDP forwarder does.
#[derive(Debug, Clone)]
pub struct UdpOptions {
    /// Where every session goes (resolved at start).
    pub target: SocketAddr,
    /// `--session-timeout` / `-i`: a session with no datagram either way for this long ends.
    pub session_timeout: Option<Duration>,
    /// `-m`: sessions at once; a datagram from a new client beyond is dropped and reported.
    pub max_sessions: Option<usize>,
    /// `--allow` / `--deny`, checked on every datagram before a session is made.
    pub access: AccessList,
    /// `--json`: the per-session reports as JSON objects on stdout.
    pub json: bool,
    /// `--spin`: the longest the loop polls before sleeping (see [`Spin`]).
    pub spin: Duration,
}

/// Datagrams and bytes one way.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    datagrams: u64,
    bytes: u64,
}

impl Count {
    fn add(&mut self, len: usize) {
        self.datagrams += 1;
        self.bytes += len as u64;
    }

    fn merge(&mut self, other: Count) {
        self.datagrams += other.datagrams;
        self.bytes += other.bytes;
    }

    /// `3 datagrams (192 bytes)`.
    fn words(self) -> String {
        format!(
            "{} ({})",
            crate::log::count(self.datagrams, "datagram"),
            crate::log::count(self.bytes, "byte")
        )
    }
}

/// One client address and its upstream socket.
#[derive(Debug)]
struct Session {
    /// 1 for the first session, 2 for the next...
    id: u64,
    client: SocketAddr,
    /// The client's address as the kernel takes it for sendto (kept, not rebuilt per reply).
    client_addr: SockAddr,
    client_name: String,
    /// Connected to the target: only its datagrams come in, and ICMP errors come back.
    upstream: Socket,
    up: Count,
    down: Count,
    /// Datagrams of this session not delivered, either way.
    dropped: u64,
    opened: Instant,
    last_active: Instant,
}

/// How a session ended, for its `-v` line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// No datagram either way for the session timeout.
    Timeout,
    /// The target answered with ICMP port unreachable (ECONNREFUSED).
    Refused,
    /// Another error on the upstream socket (host or network unreachable...).
    Error(String),
    /// SIGINT/SIGTERM.
    Interrupted,
}

impl End {
    fn word(&self) -> &'static str {
        match self {
            End::Timeout => "timeout",
            End::Refused => "refused",
            End::Error(_) => "error",
            End::Interrupted => "interrupted",
        }
    }

    fn detail(&self) -> &str {
        match self {
            End::Refused => "ICMP port unreachable from the target",
            End::Error(why) => why,
            _ => "",
        }
    }
}

/// Totals for the summary.
#[derive(Debug, Default)]
struct Totals {
    sessions: u64,
    /// Datagrams from clients denied or over `-m`, never given a session.
    turned_away: u64,
    up: Count,
    down: Count,
    dropped: u64,
}

/// The loop and everything it owns.
struct Forwarder {
    poller: Poller,
    listener: Socket,
    table: SlotTable<Session>,
    by_client: HashMap<SocketAddr, usize>,
    opts: UdpOptions,
    target_name: String,
    target_max: usize,
    losses: LossLog,
    totals: Totals,
    /// Where datagrams land, both ways (one recvmmsg per wake-up and socket).
    batch: Batch,
    started: Instant,
}

/// Runs the UDP forwarder on `listener` (a bound UDP socket) until SIGINT/SIGTERM, which
/// `stop` reports. Returns only on an unrecoverable error of the listening socket.
pub fn run(listener: Socket, opts: UdpOptions, stop: Arc<Stop>) -> Result<()> {
    let waker = Arc::new(Waker::new().context("create the wake-up pipe")?);
    stop.enlist(Arc::clone(&waker));
    listener
        .set_nonblocking(true)
        .context("set the listening socket non-blocking")?;
    // Bursts from many clients queue in the kernel instead of being dropped there unseen.
    datagram::enlarge_receive_buffer(&listener);
    ask_for_short_slices();
    let poller = watching(&listener, &waker)?;
    let mut fwd = Forwarder {
        poller,
        listener,
        table: SlotTable::default(),
        by_client: HashMap::new(),
        target_name: display_addr(opts.target),
        target_max: max_payload(opts.target),
        opts,
        losses: LossLog::default(),
        totals: Totals::default(),
        batch: Batch::new(BUFFER),
        started: Instant::now(),
    };
    let timeout = fwd.opts.session_timeout;
    let sweep_every = timeout.map_or(SWEEP, |t| (t / 4).clamp(Duration::from_millis(10), SWEEP));
    let mut next_sweep = Instant::now() + sweep_every;
    let mut ready = Vec::with_capacity(256);
    let mut spin = Spin::new(fwd.opts.spin);
    loop {
        let mut deadline = Deadline::NEVER;
        if timeout.is_some() && fwd.table.live > 0 {
            deadline = deadline.min(Deadline::at(next_sweep));
        }
        if fwd.losses.is_pending() {
            // Counted losses are reported within their interval even if nothing else moves.
            deadline = deadline.min(Deadline::after(Some(REPORT_EVERY)));
        }
        ready.clear();
        ready.extend(
            fwd.poller
                .wait_spinning(deadline, &mut spin)
                .context("epoll_wait")?,
        );
        for event in &ready {
            match event.token {
                LISTENER => fwd.relay_up()?,
                WAKE => {
                    waker.drain();
                    if stop.requested.load(Ordering::Acquire) {
                        fwd.stop_all();
                        stop.finish(|| {});
                        park();
                    }
                }
                token => fwd.relay_down(token as usize),
            }
        }
        fwd.losses.flush_due();
        let now = Instant::now();
        if timeout.is_some() && now >= next_sweep {
            fwd.sweep(now);
            next_sweep = now + sweep_every;
        }
    }
}

/// sched_attr(7), as sched_setattr(2) takes it (the first version, 48 bytes).
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// Asks the scheduler for short time slices for this thread (Linux >= 6.12, EEVDF: a
/// SCHED_OTHER thread's `sched_runtime` is its slice). The loop does a few microseconds of
/// work per wake-up; with the default slice (about 3 ms) a wake-up on a busy CPU waits for
/// the running task's slice to end, and every datagram pays that wait. A short slice gives
/// the woken loop an early deadline, so it runs at once, and costs nothing else (the loop
/// never runs long). Older kernels ignore the field or refuse the call: either is harmless.
fn ask_for_short_slices() {
    // The nice value is part of the call: the one nk runs with is kept. getpriority can
    // return -1 as a value, so errno tells an error apart.
    // SAFETY: errno is this thread's; getpriority takes no pointers.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
        if nice == -1 && *libc::__errno_location() != 0 {
            return;
        }
        nice
    };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: 100_000,
        deadline: 0,
        period: 0,
    };
    // SAFETY: sched_setattr reads `size` bytes of a valid, initialised sched_attr; pid 0 is
    // the calling thread.
    let _ = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
}

/// The largest UDP payload toward `addr`'s family (an IPv4-mapped address is IPv4: a client
/// of a dual-stack socket).
fn max_payload(addr: SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => MAX_UDP_PAYLOAD_V4,
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => MAX_UDP_PAYLOAD_V4,
        SocketAddr::V6(_) => MAX_UDP_PAYLOAD_V6,
    }
}

/// What a send error means for the datagram, in words for the loss line. No sizes or
/// addresses in it: losses are counted together by their words.
fn send_failure(err: &io::Error, largest: usize) -> String {
    match err.raw_os_error() {
        Some(libc::EMSGSIZE) => {
            format!("larger than the {largest} bytes a datagram can carry there ({err})")
        }
        Some(libc::EAGAIN) | Some(libc::ENOBUFS) => format!("the send buffer is full ({err})"),
        _ => err.to_string(),
    }
}

impl Forwarder {
    /// Reads what the clients sent (up to [`BATCH`] datagrams) and passes each datagram to its
    /// session's upstream socket, opening sessions as new clients appear.
    fn relay_up(&mut self) -> Result<()> {
        for _ in 0..BATCH / Batch::SLOTS {
            let count = match self.batch.receive(&self.listener) {
                Ok(count) => count,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors for replies sent to clients that went away (with IP_RECVERR
                // set by nobody, these are rare): they concern one client, not the listener.
                Err(e) if is_icmp_error(&e) => continue,
                Err(e) => return Err(e).context("receive from clients"),
            };
            // The datagrams stay in the batch while each is passed on.
            let batch = std::mem::take(&mut self.batch);
            for i in 0..count {
                if let Some((bytes, len, from)) = batch.get(i) {
                    self.up_one(bytes, len, &from);
                }
            }
            self.batch = batch;
            if count < Batch::SLOTS {
                // The queue was empty when the call returned: no call to learn it again.
                return Ok(());
            }
        }
        Ok(())
    }

    /// Passes one datagram from a client (`len`: its real length, more than `bytes` when it
    /// was cut) to its session, opening the session when the client is new.
    fn up_one(&mut self, bytes: &[u8], len: usize, from: &SockAddr) {
        let Some(client) = from.as_socket() else {
            return;
        };
        let slot = match self.by_client.get(&client) {
            Some(&slot) => slot,
            None => match self.open(client, from) {
                Some(slot) => slot,
                None => return,
            },
        };
        let Some(session) = self.table.get(slot) else {
            return;
        };
        if bytes.len() < len {
            session.dropped += 1;
            self.losses.record(
                Loss::dropped("cut short by the receive buffer (MSG_TRUNC)"),
                from,
            );
            return;
        }
        session.last_active = Instant::now();
        match session.upstream.send(bytes) {
            Ok(_) => session.up.add(len),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                // The ICMP answer to an earlier datagram: this one was not sent either.
                session.dropped += 1;
                self.refused(slot);
            }
            Err(e) => {
                session.dropped += 1;
                let why = send_failure(&e, self.target_max);
                self.losses.record(
                    Loss::dropped(format!("not forwarded to {}: {why}", self.target_name)),
                    from,
                );
            }
        }
    }

    /// A session for a new client, or `None` (said on stderr) when it may not have one.
    fn open(&mut self, client: SocketAddr, from: &SockAddr) -> Option<usize> {
        if !self.opts.access.permits(client.ip()) {
            self.totals.turned_away += 1;
            // A datagram dropped unread is said even without -v (lossless or loud): the
            // client cannot tell, as a TCP client can from its reset. Rate-limited like the
            // other losses.
            self.losses
                .record(Loss::dropped("denied by --allow/--deny"), from);
            return None;
        }
        if let Some(max) = self.opts.max_sessions {
            if self.table.live >= max {
                self.totals.turned_away += 1;
                self.losses.record(
                    Loss::dropped(format!(
                        "a new client, and {} open already (-m {max})",
                        crate::log::count(max as u64, "session")
                    )),
                    from,
                );
                return None;
            }
        }
        let upstream = match self.connect_upstream() {
            Ok(socket) => socket,
            Err(e) => {
                self.totals.turned_away += 1;
                self.losses.record(
                    Loss::dropped(format!("no socket for a new session: {e}")),
                    from,
                );
                return None;
            }
        };
        self.totals.sessions += 1;
        let now = Instant::now();
        let session = Session {
            id: self.totals.sessions,
            client,
            client_addr: from.clone(),
            client_name: display_addr(client),
            upstream,
            up: Count::default(),
            down: Count::default(),
            dropped: 0,
            opened: now,
            last_active: now,
        };
        let fd = session.upstream.as_raw_fd();
        crate::debug!(
            "#{} {} new session -> {}",
            session.id,
            session.client_name,
            self.target_name
        );
        let slot = self.table.insert(session);
        if let Err(e) = self.poller.add(fd, Interest::Read, slot as u64) {
            self.table.take(slot);
            self.losses.record(
                Loss::dropped(format!("no room in epoll for a new session: {e}")),
                from,
            );
            return None;
        }
        self.by_client.insert(client, slot);
        Some(slot)
    }

    /// A non-blocking UDP socket connected to the target (the kernel picks its port).
    fn connect_upstream(&self) -> io::Result<Socket> {
        let target = self.opts.target;
        let socket = Socket::new(Domain::for_address(target), Type::DGRAM, None)?;
        socket.set_nonblocking(true)?;
        socket.connect(&SockAddr::from(target))?;
        Ok(socket)
    }

    /// Reads what the target sent to the session in `slot` (up to [`BATCH`] datagrams) and
    /// passes each datagram back to its client.
    fn relay_down(&mut self, slot: usize) {
        for _ in 0..BATCH / Batch::SLOTS {
            let Some(session) = self.table.get(slot) else {
                return;
            };
            let count = match self.batch.receive(&session.upstream) {
                Ok(count) => count,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    self.refused(slot);
                    return;
                }
                Err(e) => {
                    let why = format!("receive from {}: {e}", self.target_name);
                    self.end(slot, End::Error(why));
                    return;
                }
            };
            let batch = std::mem::take(&mut self.batch);
            for i in 0..count {
                if let Some((bytes, len, _)) = batch.get(i) {
                    self.down_one(slot, bytes, len);
                }
            }
            self.batch = batch;
            if count < Batch::SLOTS {
                return;
            }
        }
    }

    /// Passes one datagram from the target back to the client of the session in `slot`.
    fn down_one(&mut self, slot: usize, bytes: &[u8], len: usize) {
        let Some(session) = self.table.get(slot) else {
            return;
        };
        if bytes.len() < len {
            session.dropped += 1;
            self.losses.record(
                Loss::unsent(format!(
                    "a reply from {} was cut short by the receive buffer (MSG_TRUNC)",
                    self.target_name
                )),
                &session.client_addr,
            );
            return;
        }
        session.last_active = Instant::now();
        match self.listener.send_to(bytes, &session.client_addr) {
            Ok(_) => session.down.add(len),
            Err(e) => {
                session.dropped += 1;
                let why = send_failure(&e, max_payload(session.client));
                self.losses.record(
                    Loss::unsent(format!("a reply from {}: {why}", self.target_name)),
                    &session.client_addr,
                );
            }
        }
    }

    /// The target answered the session in `slot` with ICMP port unreachable: said on stderr
    /// (rate-limited: the client cannot learn it otherwise), and the session ends; the
    /// client's next datagram opens a new one, in case the target has come back.
    fn refused(&mut self, slot: usize) {
        if let Some(session) = self.table.get(slot) {
            self.losses.record(
                Loss::unanswered(format!(
                    "{} answered ICMP port unreachable",
                    self.target_name
                )),
                &session.client_addr,
            );
        }
        self.end(slot, End::Refused);
    }

    /// Ends the session in `slot`: out of epoll and the map, counted, reported.
    fn end(&mut self, slot: usize, end: End) {
        let Some(session) = self.table.take(slot) else {
            return;
        };
        let _ = self.poller.remove(session.upstream.as_raw_fd());
        self.by_client.remove(&session.client);
        self.totals.up.merge(session.up);
        self.totals.down.merge(session.down);
        self.totals.dropped += session.dropped;
        self.report(&session, &end);
    }

    /// The `-v` line (or `--json` object) of a session that ended.
    fn report(&self, session: &Session, end: &End) {
        let elapsed = session.opened.elapsed();
        report_end(
            self.opts.json,
            // A session's losses are said as they happen (rate-limited), not at its end.
            false,
            || {
                serde_json::json!({
                    "session": session.id,
                    "proto": "udp",
                    "client": session.client_name,
                    "target": self.target_name,
                    "datagrams_up": session.up.datagrams,
                    "bytes_up": session.up.bytes,
                    "datagrams_down": session.down.datagrams,
                    "bytes_down": session.down.bytes,
                    "dropped": session.dropped,
                    "duration_s": elapsed.as_secs_f64(),
                    "end": end.word(),
                    "detail": end.detail(),
                })
            },
            || {
                let dropped = match session.dropped {
                    0 => String::new(),
                    n => format!(", {n} dropped"),
                };
                format!(
                    "#{} {} -> {}: {} up, {} down{dropped} in {}; {}",
                    session.id,
                    session.client_name,
                    self.target_name,
                    session.up.words(),
                    session.down.words(),
                    format_duration(elapsed),
                    end.word()
                )
            },
            end.detail(),
        );
    }

    /// Ends the sessions where no datagram moved for the session timeout.
    fn sweep(&mut self, now: Instant) {
        let Some(limit) = self.opts.session_timeout else {
            return;
        };
        for slot in 0..self.table.slots.len() {
            let expired = self.table.slots[slot]
                .as_ref()
                .is_some_and(|s| now.saturating_duration_since(s.last_active) >= limit);
            if expired {
                self.end(slot, End::Timeout);
            }
        }
    }

    /// SIGINT/SIGTERM: every session ended and reported, the losses not yet said, then the
    /// summary.
    fn stop_all(&mut self) {
        for slot in 0..self.table.slots.len() {
            self.end(slot, End::Interrupted);
        }
        self.losses.flush_all();
        let t = &self.totals;
        let dropped = match (t.dropped, t.turned_away) {
            (0, 0) => String::new(),
            (d, 0) => format!(", {d} dropped"),
            (d, a) => format!(", {d} dropped, {a} from clients turned away"),
        };
        crate::info!(
            "forwarded {}; {} up, {} down{dropped} in {}",
            crate::log::count(t.sessions, "UDP session"),
            t.up.words(),
            t.down.words(),
            format_duration(self.started.elapsed())
        );
    }
}

/// Errors a UDP socket reports for an ICMP message about an earlier datagram.
fn is_icmp_error(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::EPROTO
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_payload_follows_the_target_family() {
        assert_eq!(max_payload("127.0.0.1:53".parse().unwrap()), 65507);
        assert_eq!(max_payload("[::1]:53".parse().unwrap()), 65527);
        assert_eq!(max_payload("[::ffff:127.0.0.1]:53".parse().unwrap()), 65507);
    }

    #[test]
    fn a_send_failure_says_why_in_words() {
        let too_big = io::Error::from_raw_os_error(libc::EMSGSIZE);
        let text = send_failure(&too_big, 65507);
        assert!(text.starts_with("larger than the 65507 bytes"), "{text}");
        assert!(text.contains("Message too long"), "{text}");
        let full = io::Error::from_raw_os_error(libc::ENOBUFS);
        assert!(send_failure(&full, 1).contains("send buffer is full"));
    }
}
