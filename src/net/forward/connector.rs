//! Reaching the target for each client, off the event loop.
//!
//! Connecting means resolving a name (getaddrinfo blocks, and has no non-blocking form in
//! libc) and racing addresses (Happy Eyeballs, `net::connect`), all under `-w`. Doing that in
//! the loop would stall every other connection while a resolver answers, so a small pool of
//! connector threads does it with the same code `nk dial` uses, and hands each connected
//! socket back through a channel, waking the loop through its [`Waker`]. The pool grows on
//! demand up to [`MAX_WORKERS`] threads (a silent target holds a worker for `-w`); clients
//! beyond that wait in the queue, their own sockets held by the loop. Workers are never
//! per connection: relaying stays on the loop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::net::addr::{self, display_addr, Target};
use crate::net::connect::{self, ConnectOptions};
use crate::net::deadline::Deadline;
use crate::net::proxy::server::{Cause, ProxyService};
use crate::net::unix::UnixAddr;

/// Most connector threads at once.
pub const MAX_WORKERS: usize = 32;
/// Stack of a connector thread: getaddrinfo and the Happy Eyeballs race, no large locals.
const STACK: usize = 256 * 1024;
/// How often a Unix target whose queue is full (EAGAIN) is tried again within `-w`.
const UNIX_RETRY: Duration = Duration::from_millis(5);

/// Where each client is forwarded to.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// `HOST:PORT`.
    Tcp(Target),
    /// `unix:PATH` or `unix:@name`.
    Unix(UnixAddr),
    /// `nk listen --proxy`: each client names its own target in a SOCKS or HTTP CONNECT
    /// request, served under these rules.
    Requested(Arc<ProxyService>),
}

impl std::fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetSpec::Tcp(target) => write!(f, "{target}"),
            TargetSpec::Unix(addr) => write!(f, "unix:{addr}"),
            TargetSpec::Requested(_) => write!(f, "the target each client asks for"),
        }
    }
}

/// Why the target was not reached.
#[derive(Debug)]
pub struct Failure {
    /// Whether it was the `-w` limit (rather than a refusal or another error).
    pub timed_out: bool,
    /// What kind of failure, for a proxy client's reply code.
    pub cause: Cause,
    /// The whole story, as `nk dial` would tell it.
    pub text: String,
    /// The process was out of descriptors (EMFILE and the like): worth trying again once a
    /// connection closes, within `-w`.
    pub out_of_descriptors: bool,
}

/// A finished attempt, for the connection in `slot` numbered `id`.
#[derive(Debug)]
pub struct Outcome {
    /// The loop's slot.
    pub slot: usize,
    /// The connection's number (a slot is reused; the number says whether it is still ours).
    pub id: u64,
    /// The connected socket (non-blocking) and the address that answered, or why not.
    pub result: Result<(Socket, String), Failure>,
}

#[derive(Debug)]
struct Job {
    slot: usize,
    id: u64,
    /// The target a proxy client asked for (with [`TargetSpec::Requested`]).
    to: Option<Target>,
}

/// Wakes the event loop from another thread: a byte written to a non-blocking pipe that the
/// loop watches.
#[derive(Debug)]
pub struct Waker {
    read: OwnedFd,
    write: OwnedFd,
}

impl Waker {
    /// A new pipe pair.
    pub fn new() -> io::Result<Waker> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both descriptors are fresh and ours.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Waker { read, write })
    }

    /// The descriptor the loop watches.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.read.as_raw_fd()
    }

    /// Wakes the loop. A full pipe already holds a wake-up, so EAGAIN is fine.
    pub fn wake(&self) {
        // SAFETY: one byte from a valid buffer to an open descriptor.
        unsafe { libc::write(self.write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }

    /// Empties the pipe (level-triggered epoll would report it again otherwise).
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a valid buffer of its own length.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
    }
}

/// The pool: jobs in, outcomes out.
#[derive(Debug)]
pub struct Connector {
    jobs: Sender<Job>,
    queue: Arc<Mutex<Receiver<Job>>>,
    outcomes: Sender<Outcome>,
    target: Arc<TargetSpec>,
    options: Arc<ConnectOptions>,
    waker: Arc<Waker>,
    workers: usize,
    idle: Arc<AtomicUsize>,
}

impl Connector {
    /// A pool with no thread yet; outcomes arrive on the returned receiver.
    pub fn new(
        target: TargetSpec,
        options: ConnectOptions,
        waker: Arc<Waker>,
    ) -> (Connector, Receiver<Outcome>) {
        let (jobs, queue) = mpsc::channel();
        let (outcomes, done) = mpsc::channel();
        (
            Connector {
                jobs,
                queue: Arc::new(Mutex::new(queue)),
                outcomes,
                target: Arc::new(target),
                options: Arc::new(options),
                waker,
                workers: 0,
                idle: Arc::new(AtomicUsize::new(0)),
            },
            done,
        )
    }

    /// Queues a connection attempt for the client in `slot`.
    pub fn start(&mut self, slot: usize, id: u64) {
        self.queue_job(Job { slot, id, to: None });
    }

    /// Queues a connection attempt toward what a proxy client asked for: its name is
    /// resolved here, off the loop, and every address checked against the target rules.
    pub fn start_to(&mut self, slot: usize, id: u64, to: Target) {
        self.queue_job(Job {
            slot,
            id,
            to: Some(to),
        });
    }

    fn queue_job(&mut self, job: Job) {
        if self.idle.load(Ordering::Acquire) == 0 && self.workers < MAX_WORKERS {
            self.spawn();
        }
        // The receiver lives as long as a worker or this pool: a send cannot fail while we
        // hold `queue`.
        let _ = self.jobs.send(job);
    }

    fn spawn(&mut self) {
        let queue = Arc::clone(&self.queue);
        let outcomes = self.outcomes.clone();
        let target = Arc::clone(&self.target);
        let options = Arc::clone(&self.options);
        let waker = Arc::clone(&self.waker);
        let idle = Arc::clone(&self.idle);
        let spawned = thread::Builder::new()
            .name("connector".into())
            .stack_size(STACK)
            .spawn(move || loop {
                idle.fetch_add(1, Ordering::AcqRel);
                let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                idle.fetch_sub(1, Ordering::AcqRel);
                let Ok(job) = job else { return };
                let result = match (&*target, &job.to) {
                    (TargetSpec::Requested(service), Some(to)) => {
                        reach_requested(to, service, &options)
                    }
                    (target, _) => reach(target, &options),
                };
                if outcomes
                    .send(Outcome {
                        slot: job.slot,
                        id: job.id,
                        result,
                    })
                    .is_err()
                {
                    return;
                }
                waker.wake();
            });
        match spawned {
            Ok(_) => self.workers += 1,
            // The workers there are will take the job; with none, the loop would wait for
            // ever, so say it (the queue is still served if any worker exists).
            Err(err) if self.workers == 0 => {
                crate::log::warn(format_args!("cannot start a connector thread: {err}"))
            }
            Err(_) => {}
        }
    }
}

/// Connects to the target (blocking, under `-w`); the socket comes back non-blocking.
fn reach(target: &TargetSpec, options: &ConnectOptions) -> Result<(Socket, String), Failure> {
    match target {
        TargetSpec::Tcp(target) => {
            let connected = connect::connect(target, options).map_err(failure)?;
            let (socket, answered) = for_the_loop(connected)?;
            // Through proxies, the address that answered is the first proxy's: the line
            // names the target and the route instead.
            match options.proxies.is_empty() {
                true => Ok((socket, answered)),
                false => Ok((socket, options.proxies.route_to(target))),
            }
        }
        TargetSpec::Unix(addr) => reach_unix(addr, options.timeout).map_err(failure),
        TargetSpec::Requested(_) => Err(failure(anyhow::anyhow!("no target was requested"))),
    }
}

/// A connection failure in words, with its cause.
fn failure(err: anyhow::Error) -> Failure {
    let cause = cause_in(&err);
    let out_of_descriptors = err
        .chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(crate::net::scan::is_out_of_descriptors);
    Failure {
        timed_out: cause == Cause::TimedOut,
        cause,
        text: format!("{err:#}"),
        out_of_descriptors,
    }
}

/// Reaches what a proxy client asked for: resolved (blocking: this is a connector thread),
/// its addresses filtered by `--allow-target`/`--deny-target`, then raced as `nk dial` does.
fn reach_requested(
    to: &Target,
    service: &ProxyService,
    options: &ConnectOptions,
) -> Result<(Socket, String), Failure> {
    let deadline = Deadline::after(options.timeout);
    let mut addrs = addr::resolve(to, options.family, deadline).map_err(|err| Failure {
        timed_out: false,
        cause: Cause::HostUnreachable,
        text: format!("{err:#}"),
        out_of_descriptors: false,
    })?;
    addrs.retain(|a| service.targets.permits(a.ip()));
    if addrs.is_empty() {
        return Err(Failure {
            timed_out: false,
            cause: Cause::Denied,
            text: format!("{to}: refused by --allow-target/--deny-target"),
            out_of_descriptors: false,
        });
    }
    let connected = connect::happy_eyeballs(to, &addrs, options, deadline).map_err(failure)?;
    for_the_loop(connected)
}

/// A connected target as the loop takes it: non-blocking, without Nagle, and the address
/// that answered.
fn for_the_loop(connected: connect::Connected) -> Result<(Socket, String), Failure> {
    let socket = Socket::from(connected.stream);
    socket
        .set_nonblocking(true)
        .map_err(|e| failure(anyhow::Error::new(e).context("set non-blocking")))?;
    // The forwarder must not add latency: the sender's own writes already decided the
    // segments, and Nagle would hold the small ones back for an ACK.
    let _ = socket.set_nodelay(true);
    Ok((socket, display_addr(connected.peer)))
}

/// The cause of a failed connect: from the OS error when the chain holds one, else from the
/// words (a race over several addresses is summed up in text).
pub fn cause_in(err: &anyhow::Error) -> Cause {
    if let Some(io) = err.chain().find_map(|e| e.downcast_ref::<io::Error>()) {
        return cause_of(io);
    }
    let text = format!("{err:#}").to_ascii_lowercase();
    if text.contains("timed out") {
        Cause::TimedOut
    } else if text.contains("refused") {
        Cause::Refused
    } else if text.contains("network is unreachable") {
        Cause::NetUnreachable
    } else if text.contains("unreachable") {
        Cause::HostUnreachable
    } else {
        Cause::Failed
    }
}

/// The cause of one failed connect attempt.
pub fn cause_of(err: &io::Error) -> Cause {
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) => Cause::Refused,
        Some(libc::ENETUNREACH) => Cause::NetUnreachable,
        Some(libc::EHOSTUNREACH) => Cause::HostUnreachable,
        _ if err.kind() == io::ErrorKind::TimedOut => Cause::TimedOut,
        _ => Cause::Failed,
    }
}

fn reach_unix(addr: &UnixAddr, timeout: Option<Duration>) -> anyhow::Result<(Socket, String)> {
    use anyhow::Context;
    let context = || format!("connect unix:{addr}");
    let sockaddr = addr.sockaddr()?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).with_context(context)?;
    socket.set_nonblocking(true).with_context(context)?;
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        match socket.connect(&sockaddr) {
            Ok(()) => return Ok((socket, format!("unix:{addr}"))),
            // A Unix listener's queue is full: the kernel says EAGAIN at once rather than
            // waiting as TCP does, so wait here, within -w.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(anyhow::anyhow!(
                        "{}: timed out (its queue stayed full)",
                        context()
                    ));
                }
                thread::sleep(UNIX_RETRY);
            }
            Err(e) => return Err(anyhow::Error::new(e).context(context())),
        }
    }
}
