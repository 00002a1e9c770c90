//! The forwarding engine behind `nk forward`: accept clients on one endpoint, give each its
//! own connection to the target, relay both ways.
//!
//! Where things are:
//! - the event loops are started by [`run`] in this file: one per core, each a thread with
//!   its own epoll instance (`net::poller`, level-triggered, so a flow that stops after
//!   [`conn`]'s round limit is simply reported again), its own connections, pipe pool and
//!   connector, and the one listener registered in every loop with EPOLLEXCLUSIVE (the
//!   kernel wakes one loop per incoming client, not all). A connection stays in the loop
//!   that accepted it. Tokens are `slot * 2 + side` (0 client, 1 target). What the loops
//!   share is [`Shared`]: the `-m` count, connection numbers and the summary's totals.
//! - a connection's state is [`conn::Conn`]: its two sockets and a [`conn::Flow`] each way;
//!   the bytes in flight live in the flow (a pooled pipe for splice, or a bounded buffer).
//! - reaching the target is [`connector`]: a small thread pool running `net::connect` (names,
//!   Happy Eyeballs, `-w`), so the loop never blocks on a resolver. A target given as an IP
//!   literal needs neither: the loop connects it itself, non-blocking (no thread hand-off
//!   and wake-up per client, which is most of a short connection's cost), and `-w` is
//!   checked by the sweep.
//! - a protocol plugs in at [`conn::Flow`]: TLS, a PROXY header or a pcap/hex-dump tap are
//!   flows that must see the bytes, so they would take the buffer carrier (not splice) and
//!   transform or record each chunk between `read_in` and `write_out`; a PROXY header is a
//!   first chunk put in the up flow's buffer when the target connects.
//! - `-x` and `--pcap` are [`tap`]: a tapped flow hands each chunk it reads to the recordings;
//!   the loop tells them of openings, resets and ends.
//!
//! Rules (README, "Nothing is lost"): a FIN from one side becomes shutdown(SHUT_WR) on the
//! other once its bytes are written, and the other direction keeps flowing; a reset or an
//! error on one side resets the other (SO_LINGER 0), so nobody takes a cut stream for a clean
//! end; a target that refuses or stays silent past `-w` resets its client at once, with a
//! stderr line. Nothing is buffered beyond one carrier per direction. `-i` and SIGINT/SIGTERM
//! also end connections with resets, for the same reason.

pub mod conn;
pub mod connector;
pub mod tap;
pub mod udp;

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use socket2::Socket;

use crate::net::acl::AccessList;
use crate::net::addr::{display_addr, display_sockaddr};
use crate::net::connect::{self, AttemptState, ConnectOptions};
use crate::net::deadline::{format_duration, Deadline};
use crate::net::poller::{Interest, Poller};
use crate::net::server::{accept_nonblocking, Accepted, Backoff};

use conn::{Broken, Conn, End, PipePool};
use connector::{Connector, Outcome, TargetSpec, Waker};

const LISTENER: u64 = u64::MAX;
const WAKE: u64 = u64::MAX - 1;
/// Clients accepted per readiness report of the listener: a burst is taken in a few rounds,
/// interleaved with the traffic of connections already served.
const ACCEPTS_PER_WAKE: usize = 16;
/// How often idle connections are looked for (at most; less when `-i` is longer).
const SWEEP: Duration = Duration::from_millis(250);
/// How long the signal thread waits for the loop to close everything and report.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// What the forwarder does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where every client goes.
    pub target: TargetSpec,
    /// How to reach it (`-4`/`-6`, `-w`).
    pub connect: ConnectOptions,
    /// `-m`: clients at once (connecting or relaying); more are reset at once.
    pub max_conns: Option<usize>,
    /// `--allow` / `--deny`, checked before the target is contacted.
    pub access: AccessList,
    /// `-i`: a connection where no byte moved for this long is reset both ways.
    pub idle: Option<Duration>,
    /// `--json`: the per-connection reports as JSON objects on stdout.
    pub json: bool,
    /// `-x` / `--pcap`: the recordings every connection is tapped into.
    pub tap: Option<tap::SharedTap>,
}

/// Set by SIGINT/SIGTERM; every loop answers by closing its connections, and the last one
/// to finish prints the summary.
#[derive(Debug, Default)]
pub struct Stop {
    requested: AtomicBool,
    /// The wake-up pipe of every loop.
    wakers: Mutex<Vec<Arc<Waker>>>,
    /// Loops still running.
    running: Mutex<usize>,
    finished: Condvar,
}

impl Stop {
    /// Asks every loop to stop (from the signal thread) and waits, bounded, until they have.
    pub fn request_and_wait(&self) {
        self.requested.store(true, Ordering::Release);
        for waker in self.wakers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            waker.wake();
        }
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .finished
            .wait_timeout_while(running, STOP_WAIT, |running| *running > 0);
    }

    fn enlist(&self, waker: Arc<Waker>) {
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(waker);
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    /// A loop is done; true for the last one. The signal thread exits the process once
    /// every loop is done, so the caller says what it must and then waits with [`park`].
    fn finish(&self) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        self.finished.notify_all();
        *running == 0
    }
}

/// What every loop shares: the `-m` count, connection numbers, the summary's totals.
#[derive(Debug)]
struct Shared {
    /// Connections at once, across the loops (connecting or relaying).
    live: AtomicUsize,
    next_id: AtomicU64,
    accepted: AtomicU64,
    turned_away: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
    started: Instant,
}

/// A loop that has finished waits here for the signal thread to exit the process with the
/// signal's status.
fn park() -> ! {
    loop {
        std::thread::park();
    }
}

/// A loop's epoll instance, watching the listening socket (shared by every loop, so with
/// EPOLLEXCLUSIVE: one loop is woken per client) and its wake-up pipe (tokens [`LISTENER`]
/// and [`WAKE`]).
fn watching(listener: &Socket, waker: &Waker) -> Result<Poller> {
    let poller = Poller::new(256).context("epoll_create")?;
    poller
        .add_exclusive(listener.as_raw_fd(), LISTENER)
        .context("epoll_ctl")?;
    poller
        .add(waker.fd(), Interest::Read, WAKE)
        .context("epoll_ctl")?;
    Ok(poller)
}

/// The connections of the loop, by slot (its epoll token).
type Table = crate::net::poller::SlotTable<Conn>;

/// The event loop and everything it owns.
struct Engine {
    poller: Poller,
    table: Table,
    pool: PipePool,
    connector: Connector,
    outcomes: Receiver<Outcome>,
    waker: Arc<Waker>,
    opts: Options,
    /// The target's one address when it is an IP literal: connected by the loop itself.
    direct: Option<std::net::SocketAddr>,
    shared: Arc<Shared>,
}

/// How many event loops: one per core the process may run on.
fn loop_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(64))
}

/// Runs the forwarder on `listener` (bound, listening) until SIGINT/SIGTERM, which `stop`
/// reports: one event loop per core, each on its own thread. Returns only on an
/// unrecoverable error of one of them.
pub fn run(listener: Socket, opts: Options, stop: Arc<Stop>) -> Result<()> {
    listener
        .set_nonblocking(true)
        .context("set the listener non-blocking")?;
    let listener = Arc::new(listener);
    let shared = Arc::new(Shared {
        live: AtomicUsize::new(0),
        next_id: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        turned_away: AtomicU64::new(0),
        up: AtomicU64::new(0),
        down: AtomicU64::new(0),
        started: Instant::now(),
    });
    let (failed, failure) = mpsc::channel();
    for n in 0..loop_count() {
        let waker = Arc::new(Waker::new().context("create a wake-up pipe")?);
        stop.enlist(Arc::clone(&waker));
        let (listener, opts, stop, shared) = (
            Arc::clone(&listener),
            opts.clone(),
            Arc::clone(&stop),
            Arc::clone(&shared),
        );
        let failed = failed.clone();
        std::thread::Builder::new()
            .name(format!("forward-{n}"))
            .spawn(move || {
                let err = run_loop(&listener, opts, &stop, waker, shared);
                let _ = failed.send(err);
            })
            .context("start an event loop thread")?;
    }
    drop(failed);
    // The loops run until the signal thread ends the process; one that fails ends it here.
    match failure.recv() {
        Ok(Err(err)) => Err(err),
        Ok(Ok(())) | Err(_) => Err(anyhow::anyhow!("the event loops stopped")),
    }
}

/// One event loop: accepts its share of the clients and carries their connections.
fn run_loop(
    listener: &Socket,
    opts: Options,
    stop: &Stop,
    waker: Arc<Waker>,
    shared: Arc<Shared>,
) -> Result<()> {
    let poller = watching(listener, &waker)?;
    let (connector, outcomes) = Connector::new(
        opts.target.clone(),
        opts.connect.clone(),
        Arc::clone(&waker),
    );
    let direct = match &opts.target {
        TargetSpec::Tcp(target) => connect::literal_addr(target, &opts.connect),
        TargetSpec::Unix(_) => None,
    };
    let mut engine = Engine {
        direct,
        poller,
        table: Table::default(),
        pool: PipePool::default(),
        connector,
        outcomes,
        waker,
        opts,
        shared,
    };
    let mut backoff = Backoff::default();
    let mut paused_until: Option<Instant> = None;
    let idle = engine.opts.idle;
    // The sweep also bounds the loop's own connects by -w.
    let connect_limit = engine.direct.and(engine.opts.connect.timeout);
    let sweeps = idle.is_some() || connect_limit.is_some();
    let sweep_every = [idle, connect_limit]
        .into_iter()
        .flatten()
        .map(|d| (d / 4).clamp(Duration::from_millis(10), SWEEP))
        .min()
        .unwrap_or(SWEEP);
    let mut next_sweep = Instant::now() + sweep_every;
    let mut ready = Vec::with_capacity(256);
    loop {
        let mut deadline = Deadline::NEVER;
        if let Some(at) = paused_until {
            deadline = deadline.min(Deadline::at(at));
        }
        if sweeps && engine.table.live > 0 {
            deadline = deadline.min(Deadline::at(next_sweep));
        }
        ready.clear();
        ready.extend(engine.poller.wait(deadline).context("epoll_wait")?);
        let now = Instant::now();
        if paused_until.is_some_and(|at| now >= at) {
            paused_until = None;
            engine
                .poller
                .add_exclusive(listener.as_raw_fd(), LISTENER)
                .context("epoll_ctl")?;
        }
        for event in &ready {
            match event.token {
                LISTENER => match engine.accept(listener) {
                    Ok(()) => backoff.reset(),
                    Err(AcceptStop::Exhausted(err)) => {
                        // Out of descriptors: stop watching the listener for a while (the
                        // clients wait in its backlog) instead of spinning on it.
                        let pause = backoff.next_pause(listener, &err);
                        engine
                            .poller
                            .remove(listener.as_raw_fd())
                            .context("epoll_ctl")?;
                        paused_until = Some(now + pause);
                    }
                    Err(AcceptStop::Fatal(err)) => return Err(err),
                },
                WAKE => {
                    engine.waker.drain();
                    if stop.requested.load(Ordering::Acquire) {
                        engine.stop_all();
                        if stop.finish() {
                            engine.summary();
                        }
                        park();
                    }
                    engine.connected();
                }
                token => engine.step((token / 2) as usize),
            }
        }
        if sweeps && now >= next_sweep {
            engine.sweep(now);
            next_sweep = now + sweep_every;
        }
    }
}

enum AcceptStop {
    Exhausted(io::Error),
    Fatal(anyhow::Error),
}

impl Engine {
    /// Accepts what the listener has queued (up to a batch), applying the admission rules
    /// before the target hears of the client.
    fn accept(&mut self, listener: &Socket) -> std::result::Result<(), AcceptStop> {
        for _ in 0..ACCEPTS_PER_WAKE {
            let (socket, peer) = match accept_nonblocking(listener) {
                Ok(Accepted::Client(socket, peer)) => (socket, peer),
                Ok(Accepted::Retry) => return Ok(()),
                Ok(Accepted::Exhausted(err)) => return Err(AcceptStop::Exhausted(err)),
                Err(err) => return Err(AcceptStop::Fatal(err)),
            };
            let name = match peer.as_socket() {
                Some(_) => display_sockaddr(&peer),
                None => "unix client".to_string(),
            };
            if !peer
                .as_socket()
                .is_none_or(|p| self.opts.access.permits(p.ip()))
            {
                self.shared.turned_away.fetch_add(1, Ordering::Relaxed);
                crate::info!("denied {name} (--allow/--deny)");
                conn::reset(socket);
                continue;
            }
            let live = self.shared.live.fetch_add(1, Ordering::AcqRel);
            if let Some(max) = self.opts.max_conns {
                if live >= max {
                    self.shared.live.fetch_sub(1, Ordering::AcqRel);
                    self.shared.turned_away.fetch_add(1, Ordering::Relaxed);
                    crate::info!("refused {name}: {live} connections already (-m {max})");
                    conn::reset(socket);
                    continue;
                }
            }
            if peer.as_socket().is_some() {
                let _ = socket.set_nodelay(true);
            }
            let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            self.shared.accepted.fetch_add(1, Ordering::Relaxed);
            crate::debug!("#{id} {name} accepted; connecting to {}", self.opts.target);
            let conn = Conn::new(id, socket, name, self.opts.target.to_string());
            let slot = self.table.insert(conn);
            self.dial(slot, id);
        }
        Ok(())
    }

    /// Starts reaching the target for the client in `slot`: by the loop itself for an IP
    /// literal, by the connector's threads otherwise.
    fn dial(&mut self, slot: usize, id: u64) {
        let (Some(addr), TargetSpec::Tcp(target)) = (self.direct, &self.opts.target) else {
            self.connector.start(slot, id);
            return;
        };
        match connect::start_attempt(addr, &self.opts.connect) {
            Ok((socket, done)) => {
                if let Some(conn) = self.table.get(slot) {
                    conn.target = Some(socket);
                    conn.target_name = display_addr(addr);
                    conn.connecting = (!done).then_some(addr);
                }
                self.step(slot);
            }
            Err(err) => {
                let text = format!("{:#}", connect::literal_failed(target, addr, err, None));
                self.target_failed(slot, text, false);
            }
        }
    }

    /// The target could not be reached: the client is reset at once, with a stderr line.
    fn target_failed(&mut self, slot: usize, text: String, timed_out: bool) {
        if let Some(conn) = self.table.take(slot) {
            crate::log::warn(format_args!(
                "#{} {}: {}; client reset",
                conn.id, conn.client_name, text
            ));
            let end = if timed_out {
                End::Refused(format!("no answer within -w: {text}"))
            } else {
                End::Refused(text)
            };
            self.close(conn, end);
        }
    }

    /// Takes the connector's outcomes: a reached target starts relaying; a failure resets
    /// the client at once.
    fn connected(&mut self) {
        while let Ok(outcome) = self.outcomes.try_recv() {
            let slot = outcome.slot;
            let ours = self
                .table
                .get(slot)
                .is_some_and(|c| c.id == outcome.id && c.target.is_none());
            if !ours {
                // The client went (interrupted, -i) while its target was being reached.
                continue;
            }
            match outcome.result {
                Ok((socket, name)) => {
                    if let Some(conn) = self.table.get(slot) {
                        conn.target = Some(socket);
                        conn.target_name = name;
                        conn.last_active = Instant::now();
                    }
                    self.step(slot);
                }
                Err(failure) => self.target_failed(slot, failure.text, failure.timed_out),
            }
        }
    }

    /// Lets both flows of the connection in `slot` move what they can, then registers what
    /// each socket waits for, or ends the connection.
    fn step(&mut self, slot: usize) {
        let Some(conn) = self.table.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let Some(target) = conn.target.as_ref() else {
            return;
        };
        if let Some(addr) = conn.connecting {
            match connect::attempt_state(target) {
                AttemptState::Pending => {
                    if conn.registered[1].is_none() {
                        let token = (slot * 2 + 1) as u64;
                        if let Err(err) =
                            self.poller.add(target.as_raw_fd(), Interest::Write, token)
                        {
                            let text = format!("epoll_ctl: {err}");
                            self.target_failed(slot, text, false);
                            return;
                        }
                        conn.registered[1] = Some(Interest::Write);
                    }
                    return;
                }
                AttemptState::Connected => {
                    conn.connecting = None;
                    // As the connector does: the forwarder must not add latency.
                    let _ = target.set_nodelay(true);
                }
                AttemptState::Failed(err) => {
                    let TargetSpec::Tcp(spec) = &self.opts.target else {
                        return;
                    };
                    let text = format!("{:#}", connect::literal_failed(spec, addr, err, None));
                    self.target_failed(slot, text, false);
                    return;
                }
            }
        }
        if let (Some(tap), None) = (&self.opts.tap, &conn.up.tap) {
            // The target just answered: record the opening, tap both flows.
            let (up, down) = tap::attach(tap, conn, target);
            (conn.up.tap, conn.down.tap) = (Some(up), Some(down));
        }
        let mut moved = false;
        let mut broken = None;
        match conn.up.pump(&conn.client, target, &mut self.pool) {
            Ok(m) => moved |= m,
            Err(Broken::Source(e)) => broken = Some(("client", e)),
            Err(Broken::Destination(e)) => broken = Some(("target", e)),
        }
        if broken.is_none() {
            match conn.down.pump(target, &conn.client, &mut self.pool) {
                Ok(m) => moved |= m,
                Err(Broken::Source(e)) => broken = Some(("target", e)),
                Err(Broken::Destination(e)) => broken = Some(("client", e)),
            }
        }
        if moved {
            conn.last_active = Instant::now();
        }
        if let Some((side, err)) = broken {
            if let Some(tap) = &self.opts.tap {
                tap::reset_by(tap, conn, side);
            }
            let why = if err.raw_os_error() == Some(libc::ECONNRESET) {
                format!("reset by the {side}")
            } else {
                format!("{side}: {err}")
            };
            if let Some(conn) = self.table.take(slot) {
                self.close(conn, End::Reset(why));
            }
            return;
        }
        if conn.finished() {
            if let Some(conn) = self.table.take(slot) {
                self.close(conn, End::Fin);
            }
            return;
        }
        let wants = [
            interest(conn.up.wants_read(), conn.down.wants_write()),
            interest(conn.down.wants_read(), conn.up.wants_write()),
        ];
        let fds = [conn.client.as_raw_fd(), target.as_raw_fd()];
        for side in 0..2 {
            if wants[side] == conn.registered[side] {
                continue;
            }
            let token = (slot * 2 + side) as u64;
            // A socket with nothing to wait for leaves epoll: a half-closed socket would
            // otherwise be reported (HUP) again and again while the other side works.
            let result = match (conn.registered[side], wants[side]) {
                (None, Some(want)) => self.poller.add(fds[side], want, token),
                (Some(_), Some(want)) => self.poller.modify(fds[side], want, token),
                (Some(_), None) => self.poller.remove(fds[side]),
                (None, None) => Ok(()),
            };
            if let Err(err) = result {
                if let Some(conn) = self.table.take(slot) {
                    self.close(conn, End::Reset(format!("epoll_ctl: {err}")));
                }
                return;
            }
            conn.registered[side] = wants[side];
        }
    }

    /// Ends a connection: a clean one is simply closed (both FINs already passed on); any
    /// other is reset both ways. Then its report.
    fn close(&mut self, conn: Conn, end: End) {
        for (side, registered) in conn.registered.iter().enumerate() {
            if registered.is_some() {
                let fd = if side == 0 {
                    conn.client.as_raw_fd()
                } else {
                    conn.target.as_ref().map_or(-1, |t| t.as_raw_fd())
                };
                let _ = self.poller.remove(fd);
            }
        }
        self.shared.live.fetch_sub(1, Ordering::AcqRel);
        self.shared.up.fetch_add(conn.up.bytes, Ordering::Relaxed);
        self.shared
            .down
            .fetch_add(conn.down.bytes, Ordering::Relaxed);
        self.report(&conn, &end);
        if let Some(tap) = &self.opts.tap {
            tap::ended(tap, &conn, &end);
        }
        let Conn { client, target, .. } = conn;
        if end == End::Fin {
            drop(client);
            drop(target);
        } else {
            conn::reset(client);
            if let Some(target) = target {
                conn::reset(target);
            }
        }
    }

    /// The `-v` line (or `--json` object) of a connection that ended.
    fn report(&self, conn: &Conn, end: &End) {
        let elapsed = conn.opened.elapsed();
        report_end(
            self.opts.json,
            || {
                serde_json::json!({
                    "conn": conn.id,
                    "client": conn.client_name,
                    "target": conn.target_name,
                    "bytes_up": conn.up.bytes,
                    "bytes_down": conn.down.bytes,
                    "duration_s": elapsed.as_secs_f64(),
                    "end": end.word(),
                    "detail": end.detail(),
                })
            },
            || {
                format!(
                    "#{} {} -> {}: {} up, {} down in {}; {}",
                    conn.id,
                    conn.client_name,
                    conn.target_name,
                    crate::log::count(conn.up.bytes, "byte"),
                    crate::log::count(conn.down.bytes, "byte"),
                    format_duration(elapsed),
                    end.word()
                )
            },
            end.detail(),
        );
    }

    /// `-i`: resets the connections where no byte moved for the limit; `-w`: resets the
    /// clients whose target (connected by the loop) did not answer in time.
    fn sweep(&mut self, now: Instant) {
        if let (Some(limit), TargetSpec::Tcp(target)) =
            (self.opts.connect.timeout, self.opts.target.clone())
        {
            for slot in 0..self.table.slots.len() {
                let late = self.table.slots[slot].as_ref().and_then(|c| {
                    c.connecting
                        .filter(|_| now.saturating_duration_since(c.opened) >= limit)
                });
                if let Some(addr) = late {
                    let timed_out = io::Error::new(io::ErrorKind::TimedOut, "timed out");
                    let waited = Some(format_duration(limit));
                    let text = format!(
                        "{:#}",
                        connect::literal_failed(&target, addr, timed_out, waited)
                    );
                    self.target_failed(slot, text, true);
                }
            }
        }
        let Some(limit) = self.opts.idle else { return };
        for slot in 0..self.table.slots.len() {
            let expired = self.table.slots[slot]
                .as_ref()
                .is_some_and(|c| now.saturating_duration_since(c.last_active) >= limit);
            if expired {
                if let Some(conn) = self.table.take(slot) {
                    self.close(conn, End::Timeout);
                }
            }
        }
    }

    /// SIGINT/SIGTERM: every connection of this loop reset and reported.
    fn stop_all(&mut self) {
        for slot in 0..self.table.slots.len() {
            if let Some(conn) = self.table.take(slot) {
                self.close(conn, End::Interrupted);
            }
        }
    }

    /// The `-v` summary, by the last loop to stop.
    fn summary(&self) {
        let total = |n: &AtomicU64| n.load(Ordering::Relaxed);
        crate::info!(
            "forwarded {} ({} turned away); {} up, {} down in {}",
            crate::log::count(total(&self.shared.accepted), "connection"),
            total(&self.shared.turned_away),
            crate::log::count(total(&self.shared.up), "byte"),
            crate::log::count(total(&self.shared.down), "byte"),
            format_duration(self.shared.started.elapsed())
        );
    }
}

/// The end of a connection (or UDP session): with `--json` its object on stdout, else with
/// `-v` its line on stderr, followed by `detail` in parentheses when there is one. The object
/// and the line are only built when they are shown.
fn report_end(
    json: bool,
    object: impl FnOnce() -> serde_json::Value,
    line: impl FnOnce() -> String,
    detail: &str,
) {
    if json {
        json_line(&object().to_string());
    } else if crate::log::verbosity() > 0 {
        match detail {
            "" => crate::info!("{}", line()),
            why => crate::info!("{} ({why})", line()),
        }
    }
}

/// One JSON object per line on stdout, flushed at once so `| jq` sees each connection as it
/// ends. A reader that went away costs the reports, not the forwarding.
fn json_line(line: &str) {
    use std::io::Write;
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn interest(read: bool, write: bool) -> Option<Interest> {
    match (read, write) {
        (true, true) => Some(Interest::Both),
        (true, false) => Some(Interest::Read),
        (false, true) => Some(Interest::Write),
        (false, false) => None,
    }
}
