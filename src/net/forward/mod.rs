//! The forwarding engine behind `nk forward`: accept clients on one endpoint, give each its
//! own connection to the target, relay both ways.
//!
//! Where things are:
//! - the event loops are started by [`run`] in this file: one per core, each a thread running
//!   `net::poller::serve` (the loop the inetd services run too) with an `Engine` as its
//!   handler, its own epoll instance (level-triggered, so a flow that stops after
//!   [`conn`]'s round limit is simply reported again), its own connections, pipe pool and
//!   connector, and the one listener registered in every loop with EPOLLEXCLUSIVE (the
//!   kernel wakes one loop per incoming client, not all). A connection stays in the loop
//!   that accepted it. Tokens are `slot * 2 + side` (0 client, 1 target). What the loops
//!   share is [`Shared`]: the `-m` count, connection numbers and the summary's totals.
//! - a connection's state is [`conn::Conn`]: its two sockets and a [`conn::Flow`] each way;
//!   the bytes in flight live in the flow (a bounded pooled buffer, or a pooled pipe with
//!   `--splice`).
//! - reaching the target is [`connector`]: a small thread pool running `net::connect` (names,
//!   Happy Eyeballs, `-w`), so the loop never blocks on a resolver. A target given as an IP
//!   literal needs neither: the loop connects it itself, non-blocking (no thread hand-off
//!   and wake-up per client, which is most of a short connection's cost), and `-w` is
//!   checked by the sweep.
//! - a protocol plugs in at [`side::Side`] (one end of a connection) or [`conn::Flow`]: TLS
//!   is a side (a rustls connection over the non-blocking socket, its handshake stepped by
//!   this loop, its flows on the buffer carrier); the PROXY header is a side's preface, the
//!   first bytes written to the target (before its TLS handshake, if any); a pcap/hex-dump tap
//!   records each chunk a flow moves.
//! - the order on a connection: accept, the client's TLS handshake (`--tls-listen`; within
//!   [`CLIENT_HANDSHAKE`], a client that fails it never costs the target a connection), the
//!   target is reached, the PROXY header and the target's TLS handshake (`--tls-connect`;
//!   within what is left of `-w`), then the flows.
//! - `nk listen --proxy` is this engine with [`TargetSpec::Requested`]: each connection first
//!   goes through a stage where the client names its target (`Engine::negotiate`, driving the
//!   pure SOCKS / HTTP CONNECT state machine of `net::proxy::server` with what the client sent,
//!   capped at its `REQUEST_CAP` bytes and bounded by [`CLIENT_HANDSHAKE`] or a shorter `-i`).
//!   An IP literal is then connected by the loop, a name by the connector (which resolves it
//!   and applies `--allow-target`/`--deny-target` to the addresses); the success reply goes to
//!   the client before any byte of the target's, a failure is answered in the client's
//!   protocol and closed with a FIN, and the tunnel is relayed like any forwarded connection.
//! - `-x` and `--pcap` are [`tap`]: a tapped flow hands each chunk it reads (plaintext, on a
//!   TLS side) to the recordings; the loop tells them of openings, resets and ends.
//!
//! Rules (README, "Nothing is lost"): a FIN from one side becomes shutdown(SHUT_WR) on the
//! other once its bytes are written, and the other direction keeps flowing; a reset or an
//! error on one side resets the other (SO_LINGER 0), so nobody takes a cut stream for a clean
//! end, once it has what was read for it ([`drain`]); a target that refuses or stays silent past `-w` resets its client at once, with a
//! stderr line. Nothing is buffered beyond one carrier per direction. `-i` and SIGINT/SIGTERM
//! also end connections with resets, for the same reason.

pub mod conn;
pub mod connector;
pub mod drain;
pub mod side;
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
use crate::net::poller::{self, AcceptStop, Handler, Interest, LoopPlan, Poller, SpinRule};
use crate::net::server::{accept_nonblocking, Accepted};
use crate::wire::proxy_protocol::Proxied;

use crate::net::addr::Target;
use crate::net::proxy::server::{Action, Cause, Handshake, REQUEST_CAP};
use conn::{Broken, Conn, End, Negotiation, PipePool, Survivor};
use connector::{cause_of, Connector, Outcome, TargetSpec, Waker};
use side::{OpenFailure, Side};

/// How long a client has to finish its TLS handshake (`--tls-listen`); `-i`, if shorter,
/// applies too.
pub const CLIENT_HANDSHAKE: Duration = Duration::from_secs(10);

const LISTENER: u64 = u64::MAX;
const WAKE: u64 = u64::MAX - 1;
/// Clients accepted per readiness report of the listener: a burst is taken in a few rounds,
/// interleaved with the traffic of connections already served.
const ACCEPTS_PER_WAKE: usize = 16;
/// How long the signal thread waits for the loop to close everything and report.
const STOP_WAIT: Duration = Duration::from_secs(3);
/// How long accepting stays paused after a client last found no descriptor.
const SHORTAGE_GRACE: Duration = Duration::from_millis(500);
/// How often clients waiting for a descriptor are dialled again when no connection of their
/// loop closes (another loop's, or another process's, may free one).
const DESCRIPTOR_RETRY: Duration = Duration::from_millis(100);
/// At exit, how long the recordings' writers get to write what they hold (a reader of
/// `-x -` that takes nothing must not hold the exit for ever).
const TAP_FINISH: Duration = Duration::from_secs(2);

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
    /// `--tls-listen`: TLS with every client.
    pub tls_listen: Option<Arc<rustls::ServerConfig>>,
    /// `--tls-connect`: TLS toward the target.
    pub tls_connect: Option<TlsConnect>,
    /// `--proxy-protocol`: the PROXY header to send the target first.
    pub proxy_protocol: Option<crate::wire::proxy_protocol::Version>,
    /// `-x` / `--pcap`: the recordings every connection is tapped into.
    pub tap: Option<tap::SharedTap>,
    /// `--splice`: plain TCP and Unix bytes move by splice(2) through a pipe, not through a
    /// buffer (the default: measured faster on loopback; see [`conn`]).
    pub splice: bool,
    /// `--spin`: the longest a loop polls before sleeping (see [`Spin`]).
    pub spin: Duration,
}

/// `--spin` when not given, with `-u`: about two wake-ups of a sleeping thread on an idle
/// virtual machine (the cost the poll saves). TCP does not poll unless asked: there the peers
/// of a bulk transfer need the CPU a polling loop takes (256 MiB nc -> nk -> nc, quiet
/// machine: 1672 MB/s polling for 50 us, 1909 not).
pub const DEFAULT_UDP_SPIN: Duration = Duration::from_micros(50);

/// `--tls-connect`: the client configuration and the name the target's certificate must
/// carry (sent as SNI).
#[derive(Debug, Clone)]
pub struct TlsConnect {
    /// Trust, client certificate, versions and suites.
    pub config: Arc<rustls::ClientConfig>,
    /// The target's name (or `--sni`).
    pub server_name: rustls::pki_types::ServerName<'static>,
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
        tap::sink::finish_all(TAP_FINISH);
    }

    fn enlist(&self, waker: Arc<Waker>) {
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(waker);
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    /// A loop is done; the last one runs `last` (the summary) before the signal thread may
    /// go on: that thread exits the process as soon as no loop is running, so what must be
    /// said is said under the lock it waits on. The caller then waits with [`park`].
    fn finish(&self, last: impl FnOnce()) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        if *running == 0 {
            last();
        }
        self.finished.notify_all();
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
    /// Connections reset by SIGINT/SIGTERM while open.
    interrupted: AtomicU64,
    /// Connections whose target could not be reached (or whose proxy request was refused).
    unreached: AtomicU64,
    /// Connections that ended with a reset (one side's, or `-i`).
    cut: AtomicU64,
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
    /// SIGINT/SIGTERM: the loop closes everything and reports when it is woken with this set.
    stop: Arc<Stop>,
    /// Connections (slot, id) with a flow a recording holds back: stepped again when the
    /// recording's writer wakes the loop.
    held_by_tap: std::collections::HashSet<(usize, u64)>,
    /// Clients (slot, id) whose target could not be dialled for want of a descriptor: they
    /// wait, and are dialled again each time a connection of this loop closes (or at the
    /// sweep), until `-w` from their first try. No client is accepted while any waits.
    short_of_descriptors: std::collections::VecDeque<(usize, u64)>,
    /// When the waiting clients are dialled again if no connection of this loop closes first.
    next_descriptor_retry: Instant,
    /// A connection closed since the waiting clients were last tried.
    descriptor_freed: bool,
    /// Surviving sides of broken connections, getting what they are owed before their reset.
    drains: drain::Drains,
    /// Clients have been waiting for a descriptor since the shortage was said.
    shortage_began: bool,
    /// When a shortage was last said.
    shortage_said: Option<Instant>,
    /// When a client last found no descriptor: accepting stays paused a while after, so the
    /// waiting clients' dials in flight on the connector threads get the descriptors that
    /// free up, not new clients.
    shortage_seen: Option<Instant>,
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
        interrupted: AtomicU64::new(0),
        unreached: AtomicU64::new(0),
        cut: AtomicU64::new(0),
        up: AtomicU64::new(0),
        down: AtomicU64::new(0),
        started: Instant::now(),
    });
    let (failed, failure) = mpsc::channel();
    // Every loop's descriptors are made before any loop runs: once one accepts, clients may
    // take every descriptor left (ulimit -n), and a loop that could not start would end the
    // forwarder.
    let mut prepared = Vec::new();
    for _ in 0..loop_count() {
        let waker = Arc::new(Waker::new().context("create a wake-up pipe")?);
        let poller = watching(&listener, &waker)?;
        prepared.push((waker, poller));
    }
    for (n, (waker, poller)) in prepared.into_iter().enumerate() {
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
                let err = run_loop(&listener, poller, opts, stop, waker, shared);
                let _ = failed.send(err);
            })
            .context("start an event loop thread")?;
    }
    drop(failed);
    // The loops run until the signal thread ends the process; one that fails ends it here.
    let failed = failure.recv();
    tap::sink::finish_all(TAP_FINISH);
    match failed {
        Ok(Err(err)) => Err(err),
        Ok(Ok(())) | Err(_) => Err(anyhow::anyhow!("the event loops stopped")),
    }
}

/// One event loop: accepts its share of the clients and carries their connections.
fn run_loop(
    listener: &Socket,
    poller: Poller,
    opts: Options,
    stop: Arc<Stop>,
    waker: Arc<Waker>,
    shared: Arc<Shared>,
) -> Result<()> {
    let (connector, outcomes) = Connector::new(
        opts.target.clone(),
        opts.connect.clone(),
        Arc::clone(&waker),
    );
    let direct = match &opts.target {
        TargetSpec::Tcp(target) => connect::literal_addr(target, &opts.connect),
        TargetSpec::Unix(_) | TargetSpec::Requested(_) => None,
    };
    // A proxy's clients name their targets: the loop connects the IP literals itself.
    let requested = matches!(opts.target, TargetSpec::Requested(_));
    // The sweep also bounds the loop's own connects by -w, and the TLS handshakes.
    let connect_limit = opts
        .connect
        .timeout
        .filter(|_| direct.is_some() || requested);
    let tls = opts.tls_listen.is_some() || opts.tls_connect.is_some();
    // Proxy clients have a deadline for their request.
    let sweeps = opts.idle.is_some() || connect_limit.is_some() || tls || requested;
    let plan = LoopPlan {
        listener_token: LISTENER,
        shared_listener: true,
        sweep_every: sweeps.then(|| {
            poller::sweep_interval([opts.idle, connect_limit].into_iter().flatten())
                .unwrap_or(poller::SWEEP)
        }),
        spin: SpinRule::Adaptive(opts.spin),
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
        stop,
        held_by_tap: std::collections::HashSet::new(),
        short_of_descriptors: std::collections::VecDeque::new(),
        next_descriptor_retry: Instant::now(),
        descriptor_freed: false,
        drains: drain::Drains::default(),
        shortage_began: false,
        shortage_said: None,
        shortage_seen: None,
    };
    if let Some(tap) = &engine.opts.tap {
        tap::wake_on_room(tap, &engine.waker);
    }
    poller::serve(listener, &mut engine, &plan)
}

impl Handler for Engine {
    fn poller(&mut self) -> &mut Poller {
        &mut self.poller
    }

    fn accept(&mut self, listener: &Socket) -> std::result::Result<(), AcceptStop> {
        Engine::accept(self, listener)
    }

    fn ready(&mut self, token: u64) -> Result<()> {
        if token != WAKE {
            self.step((token / 2) as usize);
            return Ok(());
        }
        self.waker.drain();
        if self.stop.requested.load(Ordering::Acquire) {
            self.stop_all();
            self.stop.finish(|| self.summary());
            park();
        }
        self.connected();
        self.resume_held();
        Ok(())
    }

    fn live(&self) -> usize {
        self.table.live
    }

    fn sweep(&mut self, now: Instant) {
        Engine::sweep(self, now);
    }

    fn wake_by(&self) -> Deadline {
        let mut deadline = Deadline::NEVER;
        if !self.short_of_descriptors.is_empty() {
            // Another loop, or another process, may free one: try again now and then.
            deadline = deadline.min(Deadline::at(self.next_descriptor_retry));
        }
        if !self.drains.is_empty() {
            deadline = deadline.min(Deadline::after(Some(drain::STEP)));
        }
        // Wake when the grace ends, to watch the listener again (never for a past one: a
        // deadline in the past would spin the loop).
        if let Some(at) = self
            .shortage_seen
            .filter(|at| at.elapsed() < SHORTAGE_GRACE)
        {
            deadline = deadline.min(Deadline::at(at + SHORTAGE_GRACE));
        }
        deadline
    }

    fn after_round(&mut self, now: Instant) {
        if !self.drains.is_empty() {
            self.drains.step_all(&mut self.pool);
        }
        if !self.short_of_descriptors.is_empty()
            && (self.descriptor_freed || now >= self.next_descriptor_retry)
        {
            self.retry_short_of_descriptors();
            self.next_descriptor_retry = now + DESCRIPTOR_RETRY;
        }
    }

    /// Not while clients already accepted wait for a descriptor, nor for a while after one
    /// last found none: new ones wait in the backlog meanwhile.
    fn accepting(&self, now: Instant) -> bool {
        let shortage_lately = self
            .shortage_seen
            .is_some_and(|at| now.saturating_duration_since(at) < SHORTAGE_GRACE);
        self.short_of_descriptors.is_empty() && !shortage_lately
    }
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
                crate::log::turned_away(format_args!("denied {name} (--allow/--deny)"));
                conn::reset(socket);
                continue;
            }
            let live = self.shared.live.fetch_add(1, Ordering::AcqRel);
            if let Some(max) = self.opts.max_conns {
                if live >= max {
                    self.shared.live.fetch_sub(1, Ordering::AcqRel);
                    self.shared.turned_away.fetch_add(1, Ordering::Relaxed);
                    crate::log::turned_away(format_args!(
                        "refused {name}: {} already (-m {max})",
                        crate::log::count(live as u64, "connection")
                    ));
                    conn::reset(socket);
                    continue;
                }
            }
            if peer.as_socket().is_some() {
                let _ = socket.set_nodelay(true);
            }
            // The client's address and the one it reached (the listener's), for the target.
            let preface = self.opts.proxy_protocol.map(|version| {
                let local = socket.local_addr().ok().and_then(|a| a.as_socket());
                let proxied = Proxied::from_addresses(peer.as_socket(), local);
                crate::wire::proxy_protocol::encode(version, &proxied)
            });
            let client = match &self.opts.tls_listen {
                Some(config) => match rustls::ServerConnection::new(Arc::clone(config)) {
                    Ok(tls) => Side::tls(
                        socket,
                        rustls::Connection::Server(tls),
                        Instant::now() + CLIENT_HANDSHAKE,
                    ),
                    Err(err) => {
                        self.shared.live.fetch_sub(1, Ordering::AcqRel);
                        crate::log::warn(format_args!("{name}: start TLS: {err}; reset"));
                        conn::reset(socket);
                        continue;
                    }
                },
                None => Side::plain(socket),
            };
            let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            self.shared.accepted.fetch_add(1, Ordering::Relaxed);
            // Through proxies a connection's line names its route, reached or not.
            let target_name = match &self.opts.target {
                TargetSpec::Tcp(t) if !self.opts.connect.proxies.is_empty() => {
                    self.opts.connect.proxies.route_to(t)
                }
                target => target.to_string(),
            };
            let mut conn = Conn::new(id, client, name, target_name);
            conn.preface = preface.unwrap_or_default();
            let handshake_first = conn.client.is_tls();
            if let TargetSpec::Requested(service) = &self.opts.target {
                conn.target_name = "-".to_string();
                conn.negotiation = Some(Box::new(Negotiation {
                    handshake: Handshake::new(Arc::clone(service)),
                    received: Vec::new(),
                    deadline: Instant::now() + self.request_limit(),
                }));
            }
            let negotiating = conn.negotiation.is_some();
            let slot = self.table.insert(conn);
            if handshake_first {
                crate::debug!("#{id} accepted; TLS handshake with the client");
                self.step(slot);
            } else if negotiating {
                // The target is known once the client has said it.
                self.register(slot, [Some(Interest::Read), None]);
            } else {
                self.dial(slot, id);
            }
        }
        Ok(())
    }

    /// Starts reaching the target for the client in `slot`: by the loop itself for an IP
    /// literal, by the connector's threads otherwise.
    fn dial(&mut self, slot: usize, id: u64) {
        let Some(conn) = self.table.get(slot) else {
            return;
        };
        // A client dialled again after a shortage of descriptors keeps its first start: -w
        // bounds its whole wait.
        conn.connect_started.get_or_insert_with(Instant::now);
        crate::debug!(
            "#{id} {} accepted; connecting to {}",
            conn.client_name,
            conn.target_name
        );
        let requested = conn.request.as_ref().map(|r| r.target.clone());
        if let (TargetSpec::Requested(service), Some(target)) = (&self.opts.target, requested) {
            match connect::literal_addr(&target, &self.opts.connect) {
                Some(addr) if !service.targets.permits(addr.ip()) => {
                    let text = format!("{target}: refused by --allow-target/--deny-target");
                    self.target_failed(slot, text, Cause::Denied);
                }
                Some(addr) => self.connect_literal(slot, addr, &target),
                // A name: resolved by the connector's threads, never by the loop.
                None => self.connector.start_to(slot, id, target),
            }
            return;
        }
        let (Some(addr), TargetSpec::Tcp(target)) = (self.direct, &self.opts.target) else {
            self.connector.start(slot, id);
            return;
        };
        let target = target.clone();
        self.connect_literal(slot, addr, &target);
    }

    /// Starts the loop's own non-blocking connect to `addr`, the one address of `target`.
    fn connect_literal(&mut self, slot: usize, addr: std::net::SocketAddr, target: &Target) {
        match connect::start_attempt(addr, &self.opts.connect) {
            Ok((socket, done)) => {
                if let Some(conn) = self.table.get(slot) {
                    conn.target_name = display_addr(addr);
                    if done {
                        self.reached(slot, socket);
                    } else {
                        // A plain side while the connect is under way; TLS and the preface
                        // come with the connection.
                        conn.target = Some(Side::plain(socket));
                        conn.connecting = Some(addr);
                    }
                }
                self.step(slot);
            }
            Err(err) if crate::net::scan::is_out_of_descriptors(&err) => {
                self.wait_for_descriptor(slot, err.to_string());
            }
            Err(err) => {
                let cause = cause_of(&err);
                let text = format!("{:#}", connect::literal_failed(target, addr, err, None));
                self.target_failed(slot, text, cause);
            }
        }
    }

    /// The target of the client in `slot` could not be dialled for want of a descriptor
    /// (`why`): the client waits for one (see [`Engine::short_of_descriptors`]), unless its
    /// `-w` is already over.
    fn wait_for_descriptor(&mut self, slot: usize, why: String) {
        let limit = self.opts.connect.timeout.unwrap_or(Duration::MAX);
        let Some(conn) = self.table.get(slot) else {
            return;
        };
        let started = conn.connect_started.unwrap_or(conn.opened);
        if started.elapsed() >= limit {
            let text = format!(
                "no descriptor to reach the target within {} ({why}; raise ulimit -n)",
                format_duration(limit)
            );
            self.target_failed(slot, text, Cause::Failed);
            return;
        }
        // Said when a shortage begins (once a second at most, should shortages come and go).
        let said_lately = self
            .shortage_said
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1));
        if !self.shortage_began && !said_lately {
            crate::log::warn(format_args!(
                "out of descriptors ({why}): clients wait for a connection to close (-w at \
                 most), new ones in the listener's backlog; raise ulimit -n"
            ));
            self.shortage_said = Some(Instant::now());
        }
        self.shortage_began = true;
        self.shortage_seen = Some(Instant::now());
        self.short_of_descriptors.push_back((slot, conn.id));
    }

    /// Dials again the clients that wait for a descriptor (each once: one that fails again
    /// waits again).
    fn retry_short_of_descriptors(&mut self) {
        self.descriptor_freed = false;
        for (slot, id) in std::mem::take(&mut self.short_of_descriptors) {
            if self.table.get(slot).is_some_and(|c| c.id == id) {
                self.dial(slot, id);
            }
        }
        self.shortage_began = !self.short_of_descriptors.is_empty();
    }

    /// How long a proxy client has for its request: [`CLIENT_HANDSHAKE`], or `-i` if shorter.
    fn request_limit(&self) -> Duration {
        self.opts
            .idle
            .map_or(CLIENT_HANDSHAKE, |idle| idle.min(CLIENT_HANDSHAKE))
    }

    /// The TCP target of a connection: the one a proxy client asked for, or the forwarder's.
    fn tcp_target(&self, conn: &Conn) -> Option<Target> {
        match (&conn.request, &self.opts.target) {
            (Some(request), _) => Some(request.target.clone()),
            (None, TargetSpec::Tcp(target)) => Some(target.clone()),
            _ => None,
        }
    }

    /// The target could not be reached: the client is reset at once, with a stderr line; a
    /// proxy client is answered with the reply code for `cause` instead (and its -v line).
    fn target_failed(&mut self, slot: usize, text: String, cause: Cause) {
        let timed_out = cause == Cause::TimedOut;
        if let Some(mut conn) = self.table.take(slot) {
            if let Some(request) = conn.request.take() {
                let reply = request.failure(cause, &text);
                conn.answered = answer(&mut conn.client, &reply).is_ok();
                let end = End::Refused(text);
                self.close(conn, end);
                return;
            }
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

    /// The target of the connection in `slot` is connected: its side (TLS with
    /// `--tls-connect`, its handshake within what is left of `-w`; the PROXY header first)
    /// and the flows between it and the client.
    fn reached(&mut self, slot: usize, socket: Socket) {
        let limit = self.opts.connect.timeout.unwrap_or(Duration::MAX);
        let Some(conn) = self.table.get(slot) else {
            return;
        };
        let side = match &self.opts.tls_connect {
            Some(tls) => {
                let started = conn.connect_started.unwrap_or(conn.opened);
                let deadline = started
                    .checked_add(limit)
                    .unwrap_or(started + poller::SWEEP);
                match rustls::ClientConnection::new(
                    Arc::clone(&tls.config),
                    tls.server_name.clone(),
                ) {
                    Ok(c) => Side::tls(socket, rustls::Connection::Client(c), deadline),
                    Err(err) => {
                        self.target_failed(slot, format!("start TLS: {err}"), Cause::Failed);
                        return;
                    }
                }
            }
            None => Side::plain(socket),
        };
        if let Some(request) = &conn.request {
            // The tunnel is open: the client hears so before any byte of the target's.
            let bound = side.socket.local_addr().ok().and_then(|a| a.as_socket());
            if let Err(err) = answer(&mut conn.client, &request.success(bound)) {
                if let Some(conn) = self.table.take(slot) {
                    self.close(conn, End::Reset(format!("the client: {err}")));
                }
                return;
            }
        }
        let preface = std::mem::take(&mut conn.preface);
        // Bytes a proxy client sent after its request go first (they are the tunnel's).
        let early = if conn.request.is_some() {
            preface.len()
        } else {
            0
        };
        conn.attach(side.with_preface(preface), self.opts.splice);
        conn.up.bytes += early as u64;
        conn.last_active = Instant::now();
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
                        // A proxy client's name, and the address that answered for it.
                        conn.target_name = match &conn.request {
                            Some(request) => format!("{} ({name})", request.target),
                            None => name,
                        };
                    }
                    self.reached(slot, socket);
                    self.step(slot);
                }
                Err(failure) if failure.out_of_descriptors => {
                    self.wait_for_descriptor(slot, failure.text);
                }
                Err(failure) => self.target_failed(slot, failure.text, failure.cause),
            }
        }
    }

    /// Steps again the connections a recording held back: its writer woke the loop because
    /// there is room now (each asks again, and is held again if there is not).
    fn resume_held(&mut self) {
        for (slot, id) in std::mem::take(&mut self.held_by_tap) {
            if self.table.get(slot).is_some_and(|c| c.id == id) {
                self.step(slot);
            }
        }
    }

    /// Moves the connection in `slot` on as far as its sockets allow: the openings (the
    /// client's TLS handshake; the connect, the PROXY header and the target's TLS handshake),
    /// then both flows; then registers what each socket waits for, or ends the connection.
    fn step(&mut self, slot: usize) {
        let Some(conn) = self.table.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if !conn.client.is_open() {
            match conn.client.open("the client", true) {
                Ok(true) => {
                    let id = conn.id;
                    crate::debug!(
                        "#{id} {}: {}",
                        conn.client_name,
                        conn.client.tls_summary().unwrap_or_default()
                    );
                    if conn.negotiation.is_some() {
                        // A proxy client over TLS: its request comes next.
                        return self.negotiate(slot);
                    }
                    // The client is read again once the target is there.
                    if self.register(slot, [None, None]) {
                        self.dial(slot, id);
                    }
                }
                Ok(false) => {
                    let want = conn.client.opening_interest();
                    self.register(slot, [Some(want), None]);
                }
                Err(OpenFailure(text)) => {
                    if let Some(conn) = self.table.take(slot) {
                        // The connection's own line (a reset: always said on stderr) tells it.
                        self.close(conn, End::Reset(text));
                    }
                }
            }
            return;
        }
        if conn.negotiation.is_some() {
            return self.negotiate(slot);
        }
        let Some(target) = conn.target.as_ref() else {
            return;
        };
        if let Some(addr) = conn.connecting {
            match connect::attempt_state(&target.socket) {
                AttemptState::Pending => {
                    self.register(slot, [None, Some(Interest::Write)]);
                    return;
                }
                AttemptState::Connected => {
                    conn.connecting = None;
                    // As the connector does: the forwarder must not add latency.
                    let _ = target.socket.set_nodelay(true);
                    if let Some(plain) = conn.target.take() {
                        self.reached(slot, plain.into_socket());
                    }
                    return self.step(slot);
                }
                AttemptState::Failed(err) => {
                    let Some(spec) = self.table.slots[slot]
                        .as_ref()
                        .and_then(|c| self.tcp_target(c))
                    else {
                        return;
                    };
                    let cause = cause_of(&err);
                    let text = format!("{:#}", connect::literal_failed(&spec, addr, err, None));
                    self.target_failed(slot, text, cause);
                    return;
                }
            }
        }
        let Some(target) = conn.target.as_mut() else {
            return;
        };
        if !target.is_open() {
            match target.open(&conn.target_name, false) {
                Ok(true) => {
                    if let Some(summary) = target.tls_summary() {
                        crate::debug!("#{} {}: {summary}", conn.id, conn.target_name);
                    }
                }
                Ok(false) => {
                    let want = target.opening_interest();
                    self.register(slot, [None, Some(want)]);
                    return;
                }
                Err(OpenFailure(text)) => {
                    // The client has not been relayed a byte: as for a refused connect.
                    self.target_failed(slot, text, Cause::Failed);
                    return;
                }
            }
        }
        if let (Some(tap), None) = (&self.opts.tap, &conn.up.tap) {
            // The target just answered: record the opening, tap both flows.
            let (up, down) = tap::attach(tap, conn);
            (conn.up.tap, conn.down.tap) = (Some(up), Some(down));
        }
        let Conn {
            client,
            target: Some(target),
            up,
            down,
            last_active,
            ..
        } = conn
        else {
            return;
        };
        let mut moved = false;
        let mut broken = None;
        match up.pump(client, target, &mut self.pool) {
            Ok(m) => moved |= m,
            Err(Broken::Source(e)) => broken = Some(("client", e)),
            Err(Broken::Destination(e)) => broken = Some(("target", e)),
        }
        if broken.is_none() {
            match down.pump(target, client, &mut self.pool) {
                Ok(m) => moved |= m,
                Err(Broken::Source(e)) => broken = Some(("target", e)),
                Err(Broken::Destination(e)) => broken = Some(("client", e)),
            }
        }
        if let Some((side, _)) = &broken {
            conn.survivor = Some(if *side == "client" {
                Survivor::Target
            } else {
                Survivor::Client
            });
        }
        if moved {
            *last_active = Instant::now();
        }
        if let Some((side, err)) = broken {
            if let Some(tap) = &self.opts.tap {
                tap::reset_by(tap, conn, side);
            }
            let why = if crate::net::relay::peer_reset(&err) {
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
        if conn.up.held_by_tap || conn.down.held_by_tap {
            self.held_by_tap.insert((slot, conn.id));
        }
        let wants = [
            interest(
                conn.up.wants_read(),
                conn.down.wants_write() || conn.client.wants_flush(),
            ),
            interest(
                conn.down.wants_read(),
                conn.up.wants_write() || conn.target.as_ref().is_some_and(Side::wants_flush),
            ),
        ];
        self.register(slot, wants);
    }

    /// `nk listen --proxy`: reads what the client sent (once per wake-up, up to
    /// [`REQUEST_CAP`] bytes in all) and answers it as far as it goes: method and auth
    /// replies, then the connect to what it asked for; a refusal is sent and the client
    /// closed.
    fn negotiate(&mut self, slot: usize) {
        let Some(conn) = self.table.get(slot) else {
            return;
        };
        let Some(negotiation) = conn.negotiation.as_mut() else {
            return;
        };
        let room = REQUEST_CAP.saturating_sub(negotiation.received.len());
        let mut chunk = [0u8; REQUEST_CAP];
        let eof = match conn.client.read_into(&mut chunk[..room.max(1)]) {
            Ok(Some(0)) => true,
            Ok(Some(n)) => {
                negotiation.received.extend_from_slice(&chunk[..n]);
                false
            }
            Ok(None) => false,
            Err(err) => {
                let why = match err.kind() {
                    io::ErrorKind::ConnectionReset => "the client reset during its request".into(),
                    _ => format!("the client: {err}"),
                };
                if let Some(conn) = self.table.take(slot) {
                    self.close(conn, End::Reset(why));
                }
                return;
            }
        };
        loop {
            let full = negotiation.received.len() >= REQUEST_CAP;
            match negotiation.handshake.advance(&negotiation.received, full) {
                Action::Need => break,
                Action::Reply { consumed, bytes } => {
                    negotiation
                        .received
                        .drain(..consumed.min(negotiation.received.len()));
                    if let Err(err) = answer(&mut conn.client, &bytes) {
                        if let Some(conn) = self.table.take(slot) {
                            self.close(conn, End::Reset(format!("the client: {err}")));
                        }
                        return;
                    }
                }
                Action::Connect { consumed, request } => {
                    let early = negotiation
                        .received
                        .split_off(consumed.min(negotiation.received.len()));
                    conn.negotiation = None;
                    conn.preface = early;
                    conn.target_name = request.target.to_string();
                    crate::debug!(
                        "#{} {} asks for {} ({:?})",
                        conn.id,
                        conn.client_name,
                        conn.target_name,
                        request.protocol
                    );
                    conn.request = Some(request);
                    let id = conn.id;
                    // The client is read again once the target is there.
                    if self.register(slot, [None, None]) {
                        self.dial(slot, id);
                    }
                    return;
                }
                Action::Refuse { bytes, why } => {
                    if let Some(mut conn) = self.table.take(slot) {
                        conn.answered = answer(&mut conn.client, &bytes).is_ok();
                        self.close(conn, End::Rejected(why));
                    }
                    return;
                }
            }
        }
        if eof {
            if let Some(mut conn) = self.table.take(slot) {
                // Nothing was lost: its FIN is answered with ours.
                conn.answered = true;
                let why = "the client closed before its request was complete".to_string();
                self.close(conn, End::Rejected(why));
            }
            return;
        }
        self.register(slot, [Some(Interest::Read), None]);
    }

    /// Registers each socket of the connection in `slot` for what it waits for (`None`: out
    /// of epoll). Returns false when that failed and the connection was ended.
    fn register(&mut self, slot: usize, wants: [Option<Interest>; 2]) -> bool {
        let Some(conn) = self.table.slots.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let fds = [
            conn.client.socket.as_raw_fd(),
            conn.target.as_ref().map_or(-1, |t| t.socket.as_raw_fd()),
        ];
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
                return false;
            }
            conn.registered[side] = wants[side];
        }
        true
    }

    /// Ends a connection: a clean one is simply closed (both FINs already passed on); any
    /// other is reset both ways (after any TLS alert waiting to go). Then its report.
    fn close(&mut self, mut conn: Conn, end: End) {
        // The side that survives a broken connection is drained: it gets what was read for
        // it, or a line says how much it did not take. Those bytes count as forwarded, in the
        // report and the totals (they were left out, up to a carrier's worth: 64 KiB, or a
        // pipe's).
        let drained = conn
            .survivor
            .filter(|_| !conn.answered && end != End::Fin && conn.target.is_some());
        match drained {
            Some(Survivor::Client) => conn.down.bytes += conn.down.bytes_held() as u64,
            Some(Survivor::Target) => conn.up.bytes += conn.up.bytes_held() as u64,
            None => {}
        }
        for (side, registered) in conn.registered.iter().enumerate() {
            if registered.is_some() {
                let fd = if side == 0 {
                    conn.client.socket.as_raw_fd()
                } else {
                    conn.target.as_ref().map_or(-1, |t| t.socket.as_raw_fd())
                };
                let _ = self.poller.remove(fd);
            }
        }
        self.shared.live.fetch_sub(1, Ordering::AcqRel);
        self.descriptor_freed = true;
        match end {
            End::Refused(_) | End::Rejected(_) => {
                self.shared.unreached.fetch_add(1, Ordering::Relaxed);
            }
            End::Reset(_) | End::Timeout => {
                self.shared.cut.fetch_add(1, Ordering::Relaxed);
            }
            End::Fin | End::Interrupted => {}
        }
        self.shared.up.fetch_add(conn.up.bytes, Ordering::Relaxed);
        self.shared
            .down
            .fetch_add(conn.down.bytes, Ordering::Relaxed);
        self.report(&conn, &end);
        if let Some(tap) = &self.opts.tap {
            tap::ended(tap, &conn, &end);
        }
        let answered = conn.answered;
        let label = |side: &str, name: &str| format!("#{} {name} ({side})", conn.id);
        let (client_label, target_label) = (
            label("client", &conn.client_name),
            label("target", &conn.target_name),
        );
        let Conn {
            mut client,
            target,
            up,
            down,
            ..
        } = conn;
        if answered {
            // A refusal was sent: a FIN after it, so the client reads it rather than a
            // reset. What the client sent and we did not read would turn the close into a
            // reset, so that is read first (a bounded amount).
            let mut sink = [0u8; 4096];
            for _ in 0..16 {
                if !matches!(client.read_into(&mut sink), Ok(Some(n)) if n > 0) {
                    break;
                }
            }
            let _ = client.close_write();
            drop(client);
            drop(target);
        } else if end == End::Fin {
            drop(client);
            drop(target);
        } else {
            match (drained, target) {
                // One side broke: the other gets what was read for it, then its reset.
                (Some(Survivor::Client), Some(target)) => {
                    conn::reset(target.socket);
                    self.drains
                        .deliver_then_reset(client, down, client_label, &mut self.pool);
                }
                (Some(Survivor::Target), Some(target)) => {
                    conn::reset(client.socket);
                    self.drains
                        .deliver_then_reset(target, up, target_label, &mut self.pool);
                }
                (_, target) => {
                    client.flush_quietly();
                    conn::reset(client.socket);
                    if let Some(mut target) = target {
                        target.flush_quietly();
                        conn::reset(target.socket);
                    }
                }
            }
        }
    }

    /// The `-v` line (or `--json` object) of a connection that ended; a reset is said
    /// without `-v` too.
    fn report(&self, conn: &Conn, end: &End) {
        let elapsed = conn.opened.elapsed();
        let client_tls = conn.client.tls_summary();
        let target_tls = conn.target.as_ref().and_then(Side::tls_summary);
        let tls = |summary: Option<&str>| summary.map(|s| format!(" [{s}]")).unwrap_or_default();
        report_end(
            self.opts.json,
            // A reset (`-i` included): bytes in flight may be lost.
            matches!(end, End::Reset(_) | End::Timeout),
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
                    "client_tls": client_tls,
                    "target_tls": target_tls,
                })
            },
            || {
                format!(
                    "#{} {}{} -> {}{}: {} up, {} down in {}; {}",
                    conn.id,
                    conn.client_name,
                    tls(client_tls),
                    conn.target_name,
                    tls(target_tls),
                    crate::log::count(conn.up.bytes, "byte"),
                    crate::log::count(conn.down.bytes, "byte"),
                    format_duration(elapsed),
                    end.word()
                )
            },
            end.detail(),
        );
        // A proxy client refused (bad request, failed authentication, a target denied or
        // unreachable) got its reply, but the operator hears of it too, without -v:
        // throttled, as every turned-away client is.
        let requested = matches!(self.opts.target, TargetSpec::Requested(_));
        let said = !self.opts.json && crate::log::verbosity() > 0;
        if requested && !said && matches!(end, End::Rejected(_) | End::Refused(_)) {
            crate::log::turned_away(format_args!(
                "#{} {}: {} ({})",
                conn.id,
                conn.client_name,
                end.word(),
                end.detail()
            ));
        }
    }

    /// `-i`: resets the connections where no byte moved for the limit; `-w`: resets the
    /// clients whose target (connected by the loop) did not answer in time, or whose TLS
    /// handshake with the target is not over by then; and the clients that have not finished
    /// their own TLS handshake within [`CLIENT_HANDSHAKE`].
    fn sweep(&mut self, now: Instant) {
        if let Some(limit) = self.opts.connect.timeout {
            for slot in 0..self.table.slots.len() {
                let late = self.table.slots[slot].as_ref().and_then(|c| {
                    let started = c.connect_started.unwrap_or(c.opened);
                    let addr = c
                        .connecting
                        .filter(|_| now.saturating_duration_since(started) >= limit)?;
                    Some((addr, self.tcp_target(c)?))
                });
                if let Some((addr, target)) = late {
                    let timed_out = io::Error::new(io::ErrorKind::TimedOut, "timed out");
                    let waited = Some(format_duration(limit));
                    let text = format!(
                        "{:#}",
                        connect::literal_failed(&target, addr, timed_out, waited)
                    );
                    self.target_failed(slot, text, Cause::TimedOut);
                }
            }
        }
        let idle = self.opts.idle;
        let wait = self.opts.connect.timeout.unwrap_or_default();
        for slot in 0..self.table.slots.len() {
            let Some(conn) = self.table.slots[slot].as_ref() else {
                continue;
            };
            let past = |deadline: Option<Instant>| deadline.is_some_and(|d| now >= d);
            if past(conn.negotiation.as_ref().map(|n| n.deadline)) {
                if let Some(mut conn) = self.table.take(slot) {
                    let text = format!(
                        "no complete proxy request within {}",
                        format_duration(self.request_limit())
                    );
                    // Answered in its protocol's terms, then a FIN (not a bare reset).
                    if let Some(negotiation) = conn.negotiation.as_mut() {
                        let bytes = negotiation.handshake.expired(&negotiation.received, &text);
                        conn.answered =
                            !bytes.is_empty() && answer(&mut conn.client, &bytes).is_ok();
                    }
                    self.close(conn, End::Rejected(text));
                }
            } else if past(conn.client.handshake_deadline()) {
                if let Some(conn) = self.table.take(slot) {
                    let text = format!(
                        "the client's TLS handshake did not finish within {}",
                        format_duration(CLIENT_HANDSHAKE)
                    );
                    crate::log::warn(format_args!(
                        "#{} {}: {text}; reset",
                        conn.id, conn.client_name
                    ));
                    self.close(conn, End::Reset(text));
                }
            } else if past(conn.target.as_ref().and_then(Side::handshake_deadline)) {
                let text = format!(
                    "TLS handshake with {}: timed out after {}",
                    conn.target_name,
                    format_duration(wait)
                );
                self.target_failed(slot, text, Cause::TimedOut);
            } else if idle
                .is_some_and(|limit| now.saturating_duration_since(self.active_at(conn)) >= limit)
            {
                if let Some(conn) = self.table.take(slot) {
                    self.close(conn, End::Timeout);
                }
            }
        }
    }

    /// When `conn` last moved: its own bytes, or, while a recording holds it back, that
    /// recording's writer (a slow reader of `-x -` is not an idle connection; one that takes
    /// nothing leaves it idle).
    fn active_at(&self, conn: &Conn) -> Instant {
        let held = conn.up.held_by_tap || conn.down.held_by_tap;
        match (&self.opts.tap, held) {
            (Some(tap), true) => {
                tap::progress(tap).map_or(conn.last_active, |at| at.max(conn.last_active))
            }
            _ => conn.last_active,
        }
    }

    /// SIGINT/SIGTERM: every connection of this loop reset and reported.
    fn stop_all(&mut self) {
        for slot in 0..self.table.slots.len() {
            if let Some(conn) = self.table.take(slot) {
                self.shared.interrupted.fetch_add(1, Ordering::Relaxed);
                self.close(conn, End::Interrupted);
            }
        }
        self.drains.abort_all();
    }

    /// The `-v` summary, by the last loop to stop. Without `-v`, the connections the stop
    /// cut are said in one line on stderr: their lines were not (or only on stdout).
    fn summary(&self) {
        let total = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let cut = total(&self.shared.interrupted);
        if cut > 0 && crate::log::verbosity() == 0 {
            crate::log::warn(format_args!(
                "stopped: {} reset while open (bytes in flight may be lost)",
                crate::log::count(cut, "connection")
            ));
        }
        crate::info!(
            "forwarded {} ({} turned away, {} not reached, {} reset, {} cut by the stop); \
             {} up, {} down in {}",
            crate::log::count(total(&self.shared.accepted), "connection"),
            total(&self.shared.turned_away),
            total(&self.shared.unreached),
            total(&self.shared.cut),
            cut,
            crate::log::count(total(&self.shared.up), "byte"),
            crate::log::count(total(&self.shared.down), "byte"),
            format_duration(self.shared.started.elapsed())
        );
    }
}

/// The end of a connection (or UDP session): with `--json` its object on stdout, else with
/// `-v` its line on stderr, followed by `detail` in parentheses when there is one. A `loud`
/// end (a connection cut by a reset: bytes in flight may be lost) is said on stderr in any
/// case: without `-v`, and with `--json` too (stdout may be a file nobody watches). The
/// object and the line are only built when they are shown.
fn report_end(
    json: bool,
    loud: bool,
    object: impl FnOnce() -> serde_json::Value,
    line: impl FnOnce() -> String,
    detail: &str,
) {
    let text = || match detail {
        "" => line(),
        why => format!("{} ({why})", line()),
    };
    let on_stderr = !json && crate::log::verbosity() > 0;
    if json {
        json_line(&object().to_string());
    }
    if on_stderr {
        crate::info!("{}", text());
    } else if loud {
        crate::log::warn(format_args!("{}", text()));
    }
}

/// One JSON object per line on stdout, flushed at once so `| jq` sees each connection as it
/// ends. A reader that went away costs the reports, not the forwarding.
fn json_line(line: &str) {
    use std::io::Write;
    /// Set once a write failed: the reports stop there (said once), the forwarding goes on.
    static FAILED: AtomicBool = AtomicBool::new(false);
    if FAILED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if !FAILED.swap(true, Ordering::Relaxed) {
            crate::log::warn(format_args!(
                "write --json to stdout: {err}; the reports stop, the forwarding goes on"
            ));
        }
    }
}

/// Sends a proxy handshake reply whole. It is a few hundred bytes at most, written to a
/// socket with nothing else queued, so it fits; a client whose buffer is full anyway (it sent
/// greetings and never read the replies) is given up on.
fn answer(client: &mut Side, reply: &[u8]) -> io::Result<()> {
    let mut sent = 0;
    while sent < reply.len() {
        match client.write_from(&reply[sent..])? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "it does not read the proxy's replies",
                ))
            }
            n => sent += n,
        }
    }
    Ok(())
}

fn interest(read: bool, write: bool) -> Option<Interest> {
    match (read, write) {
        (true, true) => Some(Interest::Both),
        (true, false) => Some(Interest::Read),
        (false, true) => Some(Interest::Write),
        (false, false) => None,
    }
}
