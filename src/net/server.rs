//! Listening sockets and the one accept loop every stream listener runs (TCP and Unix).
//!
//! [`Server::run`] serves one client (`listen`) or many at once (`listen -k`), closes denied
//! (`--allow`/`--deny`, and `--allow-uid` on Unix) and excess (`-m`) clients before a byte
//! moves, survives accept errors
//! (out of descriptors: pause and retry, said once per burst, never a spin), and keeps a
//! registry of live connections so SIGINT/SIGTERM can end them all and print a summary.
//!
//! A listener with no host serves IPv6 and IPv4 both, through one dual-stack socket
//! (`[::]` with IPV6_V6ONLY off), falling back to `0.0.0.0` where IPv6 is disabled.
//! SO_REUSEADDR is always set, so a restarted listener does not wait out TIME_WAIT.
//! Accepting goes through poll(2) so that `-w` can bound the wait for a client.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::net::acl::AccessList;
use crate::net::addr::{self, display_addr, display_sockaddr, Family, ListenSpec, Target};
use crate::net::deadline::{format_duration, wait_readable, Deadline};
use crate::net::exec;
use crate::net::relay::Counters;
use crate::net::sockopt::SockOpts;
use crate::net::unix::{peer_cred, AllowUids};

/// Backlog of pending connections: generous, so a burst of clients is queued, not dropped.
const BACKLOG: i32 = 1024;

/// Binds a TCP listener for `spec` under the family restriction and socket options.
pub fn bind_tcp(spec: &ListenSpec, family: Family, sockopts: &SockOpts) -> Result<Socket> {
    bind(spec, family, sockopts, Type::STREAM)
}

/// Binds a UDP server socket the same way (the services answer TCP and UDP on one port).
pub fn bind_udp(spec: &ListenSpec, family: Family, sockopts: &SockOpts) -> Result<Socket> {
    bind(spec, family, sockopts, Type::DGRAM)
}

fn bind(spec: &ListenSpec, family: Family, sockopts: &SockOpts, kind: Type) -> Result<Socket> {
    let mut opts = sockopts.clone();
    opts.reuseaddr = true;
    let addr = match &spec.host {
        Some(host) => {
            let target = Target {
                host: host.clone(),
                port: spec.port,
            };
            let addrs = addr::resolve(&target, family, Deadline::NEVER)?;
            let addr = addrs
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("resolve {host}: no address"))?;
            // `[::]:P` as `nc -l :: P` and socat's TCP6-LISTEN on Linux take it: the kernel's
            // default (net.ipv6.bindv6only, dual stack unless changed), IPv6 only with -6.
            if addr.ip().is_unspecified() && addr.is_ipv6() {
                return bind_one(addr, (family == Family::V6).then_some(true), &opts, kind);
            }
            addr
        }
        None => {
            if family != Family::V4 {
                match bind_one(
                    SocketAddr::new(addr::unspecified(true), spec.port),
                    Some(family == Family::V6),
                    &opts,
                    kind,
                ) {
                    Ok(listener) => return Ok(listener),
                    Err(err) if family == Family::Any && ipv6_unavailable(&err) => {}
                    Err(err) => return Err(err),
                }
            }
            SocketAddr::new(addr::unspecified(false), spec.port)
        }
    };
    bind_one(addr, Some(true), &opts, kind)
}

/// How an IPv6 wildcard listener takes clients, for the `-v` listening line: "" for any other.
pub fn stack_note(listener: &Socket) -> &'static str {
    let wildcard_v6 = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .is_some_and(|a| a.is_ipv6() && a.ip().is_unspecified());
    match (wildcard_v6, listener.only_v6()) {
        (true, Ok(true)) => "; IPv6 only",
        (true, Ok(false)) => "; IPv6 and IPv4",
        _ => "",
    }
}

fn ipv6_unavailable(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| {
            matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
            )
        })
}

/// Binds one socket; `v6_only` is IPV6_V6ONLY to set, or `None` for the kernel's default.
fn bind_one(
    addr: SocketAddr,
    v6_only: Option<bool>,
    opts: &SockOpts,
    kind: Type,
) -> Result<Socket> {
    let stream = kind == Type::STREAM;
    let context = || {
        let proto = if stream { "" } else { " (udp)" };
        format!("listen on {}{proto}", display_addr(addr))
    };
    let protocol = if stream { Protocol::TCP } else { Protocol::UDP };
    let socket =
        Socket::new(Domain::for_address(addr), kind, Some(protocol)).with_context(context)?;
    if let (true, Some(v6_only)) = (addr.is_ipv6(), v6_only) {
        socket.set_only_v6(v6_only).with_context(context)?;
    }
    opts.apply(&socket, addr.is_ipv6()).with_context(context)?;
    if let Err(err) = socket.bind(&SockAddr::from(addr)) {
        if err.kind() == io::ErrorKind::PermissionDenied && addr.port() < 1024 {
            return Err(anyhow::Error::new(crate::exit::Hinted {
                message: format!("{}: {err}", context()),
                hint: format!(
                    "ports below 1024 need privilege: run as root, give nk \
                     CAP_NET_BIND_SERVICE (setcap cap_net_bind_service+ep), lower \
                     net.ipv4.ip_unprivileged_port_start, or use a port above 1023 (not {})",
                    addr.port()
                ),
            }));
        }
        return Err(err).with_context(context);
    }
    if stream {
        socket.listen(BACKLOG).with_context(context)?;
    }
    Ok(socket)
}

/// The outcome of one accept attempt.
pub(crate) enum Accepted {
    Client(Socket, SockAddr),
    /// A transient error (the client reset first, a signal): try again at once.
    Retry,
    /// Out of descriptors or memory: try again after a pause, never in a tight loop.
    Exhausted(io::Error),
}

fn accept_with_deadline(listener: &Socket, deadline: Deadline) -> Result<Accepted> {
    if wait_readable(listener.as_raw_fd(), deadline)
        .context("poll listener")?
        .is_none()
    {
        if deadline.expired() {
            let local = display_sockaddr(&listener.local_addr().context("getsockname")?);
            return Err(anyhow!("accept on {local}: timed out waiting for a client"));
        }
        return Ok(Accepted::Retry);
    }
    accept_ready(listener)
}

/// Accepts one client from a listener that poll or epoll found readable, sorting the errors
/// into the transient (retry), the exhausting (pause) and the fatal. On a non-blocking
/// listener an empty queue is `Retry`.
fn accept_ready(listener: &Socket) -> Result<Accepted> {
    classify_accept(listener, listener.accept())
}

/// [`accept_ready`] for event loops: the client socket comes back non-blocking already
/// (accept4 with SOCK_NONBLOCK, which socket2 does not expose), one syscall fewer per client.
pub(crate) fn accept_nonblocking(listener: &Socket) -> Result<Accepted> {
    // SAFETY: accept4 writes at most `len` bytes of address into the storage try_init gives it
    // and sets `len`; the descriptor it returns is new and owned by nothing else.
    let accepted = unsafe {
        SockAddr::try_init(|storage, len| {
            let fd = libc::accept4(
                listener.as_raw_fd(),
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(fd)
            }
        })
    }
    .map(|(fd, peer)| {
        // SAFETY: see above: `fd` is a fresh descriptor we now own.
        (
            unsafe { <Socket as std::os::fd::FromRawFd>::from_raw_fd(fd) },
            peer,
        )
    });
    classify_accept(listener, accepted)
}

fn classify_accept(
    listener: &Socket,
    accepted: io::Result<(Socket, SockAddr)>,
) -> Result<Accepted> {
    match accepted {
        Ok((stream, peer)) => Ok(Accepted::Client(stream, canonical(peer))),
        Err(e) => match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                Ok(Accepted::Exhausted(e))
            }
            Some(libc::ECONNABORTED | libc::EINTR | libc::EAGAIN | libc::EPROTO | libc::EPERM) => {
                Ok(Accepted::Retry)
            }
            _ => {
                let local = listener
                    .local_addr()
                    .map(|a| display_sockaddr(&a))
                    .unwrap_or_default();
                Err(e).with_context(|| format!("accept on {local}"))
            }
        },
    }
}

/// Pauses between accepts while the process is out of descriptors: the pending client stays
/// in the backlog until a connection ends, and the loop sleeps instead of spinning on a
/// listener that is always readable. Said once per shortage: a server that stays at its
/// limit, each ended connection letting one more client in, is one shortage until
/// [`Backoff::QUIET`] passes without one (it said two lines per ended connection).
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    pause: Option<Duration>,
    /// When accept last found no descriptor.
    last_shortage: Option<Instant>,
    /// The shortage was said, and its end has not been.
    said: bool,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const LONGEST: Duration = Duration::from_millis(500);
    /// How long without a shortage ends one.
    const QUIET: Duration = Duration::from_secs(10);

    fn wait(&mut self, listener: &Socket, err: &io::Error) {
        thread::sleep(self.next_pause(listener, err));
    }

    /// How long to leave the listener alone after `err` (an event loop stops watching it
    /// for that long instead of sleeping).
    pub(crate) fn next_pause(&mut self, listener: &Socket, err: &io::Error) -> Duration {
        let now = Instant::now();
        let new_shortage = self
            .last_shortage
            .is_none_or(|at| now.duration_since(at) >= Self::QUIET);
        self.last_shortage = Some(now);
        if new_shortage && !self.said {
            let local = listener
                .local_addr()
                .map(|a| display_sockaddr(&a))
                .unwrap_or_default();
            crate::log::warn(format_args!(
                "accept on {local}: {err}; waiting for connections to end"
            ));
            self.said = true;
        }
        let pause = self
            .pause
            .map_or(Self::FIRST, |previous| (previous * 2).min(Self::LONGEST));
        self.pause = Some(pause);
        pause
    }

    /// A client was accepted: the next shortage starts with the shortest pause.
    pub(crate) fn reset(&mut self) {
        if self.pause.take().is_some() && self.said {
            self.said = false;
            crate::info!("accepting again");
        }
    }
}

/// An IPv4-mapped IPv6 peer (seen on dual-stack listeners) as the IPv4 address it is.
fn canonical(peer: SockAddr) -> SockAddr {
    match peer.as_socket() {
        Some(ip) => SockAddr::from(SocketAddr::new(ip.ip().to_canonical(), ip.port())),
        None => peer,
    }
}

/// How a listener chooses whom to serve.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// `-k`: keep accepting and serve clients concurrently; otherwise serve one and stop.
    pub keep_accepting: bool,
    /// `-m`: at most this many connections at once; more are closed at once.
    pub max_conns: Option<usize>,
    /// `--allow` / `--deny`.
    pub access: AccessList,
    /// `--allow-uid` (Unix listeners): the peer's uid (SO_PEERCRED) must be one of these.
    pub allow_uids: Option<AllowUids>,
    /// `-w` on listen: give up when no client came within this time (one-shot only).
    pub accept_timeout: Option<Duration>,
}

/// A client the server has decided to serve.
#[derive(Debug)]
pub struct Connection {
    /// The accepted socket (shared with the registry, which shuts it down on SIGTERM).
    pub stream: Arc<Socket>,
    /// The client's address (IPv4-mapped addresses made IPv4; a path or nothing for Unix).
    pub peer: SockAddr,
    /// Our end.
    pub local: SockAddr,
    /// 1 for the first connection served, 2 for the next... (NK_CONN_SEQ).
    pub seq: u64,
    /// Its entry in the server's registry: counters, child pid.
    pub live: Arc<LiveConn>,
}

/// What the server knows of a connection in progress, so SIGTERM can end it.
#[derive(Debug)]
pub struct LiveConn {
    /// Bytes moved, for the summary.
    pub counters: Arc<Counters>,
    socket: Arc<Socket>,
    child: Mutex<Option<u32>>,
}

impl LiveConn {
    /// Records the child process serving this connection.
    pub fn set_child(&self, pid: u32) {
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(pid);
    }

    fn end(&self, signal: libc::c_int) {
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(pid) = *self.child.lock().unwrap_or_else(|e| e.into_inner()) {
            exec::signal_group(pid, signal);
        }
    }
}

/// Stack of a connection thread: it supervises a relay and holds no large locals.
const CONNECTION_STACK: usize = 256 * 1024;

/// The accept loop every TCP listener runs, and the registry of its live connections.
#[derive(Debug, Default)]
pub struct Server {
    options: ServerOptions,
    live: Mutex<HashMap<u64, Arc<LiveConn>>>,
    served: AtomicU64,
    finished_sent: AtomicU64,
    finished_received: AtomicU64,
    started: Mutex<Option<Instant>>,
}

impl Server {
    /// A server with the given admission rules.
    pub fn new(options: ServerOptions) -> Arc<Server> {
        Arc::new(Server {
            options,
            ..Server::default()
        })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<LiveConn>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accepts clients and runs `handler` for each served one: on its own thread with `-k`,
    /// on this thread otherwise (then its result is the server's). Denied and excess clients
    /// are closed before a byte moves.
    pub fn run<H>(self: &Arc<Self>, listener: Socket, handler: H) -> Result<()>
    where
        H: Fn(Connection) -> Result<()> + Send + Sync + 'static,
    {
        self.run_admitting(listener, |_| {}, handler)
    }

    /// [`Server::run`], with `admit` run for each served client on the accepting thread
    /// before its handler starts: what must hold by the time the next client is accepted
    /// (a broker's member list) goes there.
    pub fn run_admitting<A, H>(
        self: &Arc<Self>,
        listener: Socket,
        admit: A,
        handler: H,
    ) -> Result<()>
    where
        A: Fn(&Connection),
        H: Fn(Connection) -> Result<()> + Send + Sync + 'static,
    {
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let handler = Arc::new(handler);
        let local = listener.local_addr().context("getsockname")?;
        let deadline = if self.options.keep_accepting {
            Deadline::NEVER
        } else {
            Deadline::after(self.options.accept_timeout)
        };
        let mut backoff = Backoff::default();
        loop {
            let (stream, peer) = match accept_with_deadline(&listener, deadline)? {
                Accepted::Client(stream, peer) => {
                    backoff.reset();
                    (stream, peer)
                }
                Accepted::Retry => continue,
                Accepted::Exhausted(err) => {
                    backoff.wait(&listener, &err);
                    continue;
                }
            };
            let peer_text = display_sockaddr(&peer);
            let permitted = peer
                .as_socket()
                .is_none_or(|ip| self.options.access.permits(ip.ip()));
            if !permitted {
                crate::log::turned_away(format_args!("denied {peer_text} (--allow/--deny)"));
                continue;
            }
            let mut peer_text = peer_text;
            if let Some(allow) = &self.options.allow_uids {
                // The credentials the kernel took at connect(2): the peer cannot choose them.
                match peer_cred(&stream) {
                    Ok(cred) if allow.permits(cred.uid) => {
                        peer_text = format!("{peer_text} (uid {}, pid {})", cred.uid, cred.pid);
                    }
                    Ok(cred) => {
                        crate::log::turned_away(format_args!(
                            "denied {peer_text} (uid {}, pid {}): uid not in --allow-uid",
                            cred.uid, cred.pid
                        ));
                        continue;
                    }
                    Err(err) => {
                        crate::log::turned_away(format_args!(
                            "denied {peer_text}: its credentials are unknown ({err})"
                        ));
                        continue;
                    }
                }
            }
            if let Some(max) = self.options.max_conns {
                let active = self.live().len();
                if active >= max {
                    crate::log::turned_away(format_args!(
                        "refused {peer_text}: {} already (-m {max})",
                        crate::log::count(active as u64, "connection")
                    ));
                    continue;
                }
            }
            let seq = self.served.fetch_add(1, Ordering::SeqCst) + 1;
            let stream = Arc::new(stream);
            let live = Arc::new(LiveConn {
                counters: Arc::default(),
                socket: Arc::clone(&stream),
                child: Mutex::new(None),
            });
            self.live().insert(seq, Arc::clone(&live));
            let connection = Connection {
                stream,
                peer,
                local: local.clone(),
                seq,
                live,
            };
            admit(&connection);
            // Said once admitted: whoever reads `-v` (a test, an operator typing to a broker)
            // knows the client now receives what is sent.
            crate::info!("connection from {peer_text} (#{seq})");
            if !self.options.keep_accepting {
                drop(listener);
                let result = handler(connection);
                self.finish(seq);
                return result;
            }
            let server = Arc::clone(self);
            let handler = Arc::clone(&handler);
            let peer_name = peer_text.clone();
            let spawned = thread::Builder::new()
                .name(format!("conn-{seq}"))
                .stack_size(CONNECTION_STACK)
                .spawn(move || {
                    if let Err(err) = handler(connection) {
                        if crate::exit::is_silent(&err) {
                            // Whoever read our stdout has gone: so has the point of serving.
                            server.shutdown();
                            crate::signals::exit(crate::exit::Status::Success);
                        }
                        crate::info!("connection #{seq} from {peer_name}: {err:#}");
                    }
                    server.finish(seq);
                });
            if let Err(err) = spawned {
                crate::log::warn(format_args!("cannot serve {peer_text}: {err}"));
                self.finish(seq);
                thread::sleep(Backoff::FIRST);
            }
        }
    }

    fn finish(&self, seq: u64) {
        if let Some(live) = self.live().remove(&seq) {
            let sent = live.counters.sent.load(Ordering::Relaxed);
            let received = live.counters.received.load(Ordering::Relaxed);
            self.finished_sent.fetch_add(sent, Ordering::Relaxed);
            self.finished_received
                .fetch_add(received, Ordering::Relaxed);
            if self.options.keep_accepting {
                crate::info!(
                    "connection #{seq} closed: sent {sent} bytes, received {received} bytes"
                );
            }
        }
    }

    /// Ends every connection (clients see EOF) and stops every child: SIGINT/SIGTERM.
    pub fn shutdown(&self) {
        self.signal_all(libc::SIGTERM);
    }

    fn signal_all(&self, signal: libc::c_int) {
        for live in self.live().values() {
            live.end(signal);
        }
    }

    /// [`Server::shutdown`], then waits (at most `limit`) for the connection threads to
    /// finish, so that every child has been reaped (or killed) before the process exits.
    pub fn shutdown_and_wait(&self, limit: Duration) {
        self.shutdown();
        let deadline = Instant::now() + limit;
        let kill_at = Instant::now() + limit / 2;
        let mut killed = false;
        while !self.live().is_empty() && Instant::now() < deadline {
            if !killed && Instant::now() >= kill_at {
                // Programs that ignored SIGTERM (and whatever they started) are killed.
                self.signal_all(libc::SIGKILL);
                killed = true;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `served N connections (M open); sent X bytes, received Y bytes in T`.
    pub fn summary(&self) -> String {
        let live = self.live();
        let (mut sent, mut received) = (
            self.finished_sent.load(Ordering::Relaxed),
            self.finished_received.load(Ordering::Relaxed),
        );
        for conn in live.values() {
            sent += conn.counters.sent.load(Ordering::Relaxed);
            received += conn.counters.received.load(Ordering::Relaxed);
        }
        let elapsed = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| t.elapsed())
            .unwrap_or_default();
        format!(
            "served {} ({} open); sent {}, received {} in {}",
            crate::log::count(self.served.load(Ordering::Relaxed), "connection"),
            live.len(),
            crate::log::count(sent, "byte"),
            crate::log::count(received, "byte"),
            format_duration(elapsed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn no_host_listens_on_both_families() {
        let listener = bind_tcp(
            &ListenSpec {
                host: None,
                port: 0,
            },
            Family::Any,
            &SockOpts::default(),
        )
        .unwrap();
        let port = listener.local_addr().unwrap().as_socket().unwrap().port();
        assert!(port > 0);
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::net::TcpStream::connect(("::1", port)).unwrap();
    }

    #[test]
    fn accept_gives_up_at_the_deadline() {
        let spec = ListenSpec {
            host: Some(addr::Host::Ip("127.0.0.1".parse().unwrap())),
            port: 0,
        };
        let listener = bind_tcp(&spec, Family::Any, &SockOpts::default()).unwrap();
        let server = Server::new(ServerOptions {
            accept_timeout: Some(Duration::from_millis(50)),
            ..ServerOptions::default()
        });
        let err = server.run(listener, |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
    }
}
