//! Datagram relays: UDP and Unix `--dgram`, client and server, boundaries kept both ways.
//!
//! One stdin read (or one line with `--lines`) is one datagram; one datagram received is one
//! write to stdout. Receives use MSG_TRUNC, so a datagram larger than the buffer is reported
//! with its real size (on stderr, and in the `-v` summary), never cut silently. The client
//! uses a connected socket, so the kernel filters strangers and ICMP port-unreachable comes
//! back as ECONNREFUSED; after stdin EOF it keeps printing replies until `-q` of silence. The
//! server prints every datagram, sends stdin to the last peer heard (holding it, one datagram,
//! until a peer is heard), and with `-e/-c` runs a program per datagram whose output is the
//! reply (`programs`: how many at once, and the queue for the rest). What a server loses
//! (a full queue, a program that fails, a datagram the socket refuses) is reported on stderr
//! without `-v` (`losses`), since nothing tells the peer. A Unix sender that never bound an
//! address cannot be replied to at all: that is said once per run, with the fix. Everything here works on
//! `socket2::Socket`, whatever the address family.

pub mod batch;
pub mod losses;
mod programs;

use std::fs::File;
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use socket2::{SockAddr, Socket};

use crate::exit::StdoutClosed;
use crate::net::addr::display_sockaddr;
use crate::net::deadline::format_duration;
use crate::net::exec::ExecSpec;
use crate::net::unix::AllowUids;
use crate::wire::hexdump::{self, Mark};
use crate::{debug, info};
use losses::{Loss, LossLog};
use programs::Programs;

/// Largest UDP payload over IPv4 (65535 − 20 − 8); over IPv6 it is 65527.
pub const MAX_UDP_PAYLOAD_V4: usize = 65507;
/// Largest UDP payload over IPv6 (65535 − 8).
pub const MAX_UDP_PAYLOAD_V6: usize = 65527;
/// Default receive buffer: holds any UDP datagram.
pub const DEFAULT_BUFFER: usize = 65536;
/// How often blocking receives wake to look at stdin's state and the clocks.
const TICK: Duration = Duration::from_millis(50);
/// Receive buffer asked of the kernel for servers: bursts are queued, not dropped.
const SERVER_RCVBUF: usize = 4 << 20;

/// How a datagram relay behaves.
#[derive(Clone)]
pub struct DatagramOptions {
    /// `-b`: the receive buffer; larger datagrams are reported as truncated.
    pub buffer: usize,
    /// The largest datagram this socket can send (stdin reads are capped to it).
    pub max_payload: usize,
    /// `--lines`: one datagram per line (the newline kept) instead of one per read.
    pub lines: bool,
    /// Client: how long to keep printing replies after stdin EOF.
    pub quit_after_eof: Duration,
    /// `-i`: end when no datagram moved either way for this long.
    pub idle: Option<Duration>,
    /// Server `-k`: serve every peer, not only the first.
    pub keep: bool,
    /// Server `-e/-c`: a program per datagram.
    pub exec: Option<ExecSpec>,
    /// NK_PROTO for programs: `udp` or `unix`.
    pub proto: &'static str,
    /// `-x`: hex dump of every datagram.
    pub hexdump: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
    /// Unix server `--allow-uid`: datagrams from other uids are dropped unread (the socket
    /// must have SO_PASSCRED set before bind, so that every datagram carries credentials).
    pub allow_uids: Option<AllowUids>,
}

impl std::fmt::Debug for DatagramOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramOptions")
            .field("buffer", &self.buffer)
            .field("lines", &self.lines)
            .field("keep", &self.keep)
            .field("exec", &self.exec)
            .finish()
    }
}

/// What became of the datagrams: counts each way for the `-v` summary, and the losses that
/// stderr reports without `-v`. Shared with the SIGINT/SIGTERM handler, which reports what
/// the end of the server leaves unanswered.
#[derive(Debug, Default)]
pub struct DatagramStats {
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    received: AtomicU64,
    received_bytes: AtomicU64,
    truncated: AtomicU64,
    /// Received, never given to a program.
    dropped: AtomicU64,
    /// Given to a program (running or queued) whose reply is not settled yet.
    unanswered: AtomicU64,
    losses: LossLog,
    /// The end's report is written once, whether by the server or by a signal.
    end_reported: AtomicBool,
    /// Datagrams (stdin's, programs' replies) not sent: their peer was an unnamed Unix socket.
    to_unnamed: AtomicU64,
}

impl DatagramStats {
    /// `sent 3 datagrams (12 bytes), received 3 datagrams (12 bytes), 0 truncated`.
    pub fn summary(&self, elapsed: Duration) -> String {
        let dropped = self.dropped.load(Ordering::Relaxed);
        let mut dropped = if dropped > 0 {
            format!(", {dropped} dropped")
        } else {
            String::new()
        };
        match self.to_unnamed.load(Ordering::Relaxed) {
            0 => {}
            1 => dropped.push_str(", 1 reply to an unnamed sender dropped"),
            n => dropped.push_str(&format!(", {n} replies to unnamed senders dropped")),
        }
        let count = |c: &AtomicU64, noun| crate::log::count(c.load(Ordering::Relaxed), noun);
        format!(
            "sent {} ({}), received {} ({}), {} truncated{dropped} in {}",
            count(&self.sent, "datagram"),
            count(&self.sent_bytes, "byte"),
            count(&self.received, "datagram"),
            count(&self.received_bytes, "byte"),
            self.truncated.load(Ordering::Relaxed),
            format_duration(elapsed)
        )
    }

    /// A datagram for an unnamed Unix socket (a client that never bound an address) is not
    /// sent: the kernel has no address to deliver it to (sendto fails with ENOTCONN, which
    /// says nothing useful). Said once per run, without -v, since the cause is the client's
    /// and the same for every datagram; the -v summary counts them.
    fn unsent_to_unnamed(&self) {
        if self.to_unnamed.fetch_add(1, Ordering::Relaxed) == 0 {
            crate::log::warn(format_args!(
                "replies to an unnamed Unix datagram sender are dropped: it never bound an \
                 address, so there is nowhere to send them (said once; -v counts them); \
                 hint: the client must bind an address (`nk unix --dgram` binds one \
                 automatically; socat UNIX-SENDTO needs bind=PATH)"
            ));
        }
    }

    fn count_sent(&self, n: usize) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.sent_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// At the end (of the server, or on SIGINT/SIGTERM): reports on stderr the losses not
    /// reported yet, and the datagrams whose programs were still running or queued.
    pub fn report_losses_at_end(&self) {
        if self.end_reported.swap(true, Ordering::SeqCst) {
            return;
        }
        self.losses.flush_all();
        match self.unanswered.load(Ordering::SeqCst) {
            0 => {}
            1 => crate::log::warn(format_args!(
                "no reply to a datagram: nk ended with its program running or queued"
            )),
            n => crate::log::warn(format_args!(
                "no reply to {n} datagrams: nk ended with their programs running or queued"
            )),
        }
    }
}

/// Reads datagrams from stdin: one read each, or one line each with `--lines`.
struct StdinDatagrams {
    stdin: File,
    lines: bool,
    max: usize,
    pending: Vec<u8>,
    eof: bool,
}

impl StdinDatagrams {
    fn new(lines: bool, max: usize) -> io::Result<StdinDatagrams> {
        let stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
        Ok(StdinDatagrams {
            stdin,
            lines,
            max,
            pending: Vec::new(),
            eof: false,
        })
    }

    /// The next datagram, or `None` at EOF.
    fn next(&mut self) -> Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; self.max];
        loop {
            if self.lines {
                if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                    return Ok(Some(self.pending.drain(..=end).collect()));
                }
                if self.pending.len() >= self.max {
                    return Err(anyhow!(
                        "a line of stdin is longer than the largest datagram ({} bytes)",
                        self.max
                    ));
                }
                if self.eof {
                    return Ok(
                        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
                    );
                }
            }
            let room = if self.lines {
                self.max - self.pending.len()
            } else {
                self.max
            };
            let n = match self.stdin.read(&mut buf[..room]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("read stdin"),
            };
            if !self.lines {
                return Ok((n > 0).then(|| buf[..n].to_vec()));
            }
            if n == 0 {
                self.eof = true;
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }
}

/// Receives one datagram with MSG_TRUNC: the bytes that fit, the datagram's real length, and
/// the sender.
pub fn receive(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, usize, SockAddr)> {
    // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, and recv only writes bytes into
    // the buffer, so viewing initialised bytes as possibly-uninitialised is sound.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    let (len, from) = socket.recv_from_with_flags(uninit, libc::MSG_TRUNC)?;
    Ok((len.min(buf.len()), len, from))
}

/// [`receive`] through recvmsg(2), with the sender's SCM_CREDENTIALS (on a socket with
/// SO_PASSCRED): `None` when the datagram carried none.
fn receive_with_cred(
    socket: &Socket,
    buf: &mut [u8],
) -> io::Result<(usize, usize, SockAddr, Option<libc::ucred>)> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for the credentials and a few passed descriptors, aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: recvmsg writes at most `*addrlen` bytes of address into `storage`, at most
    // `iov_len` bytes into `buf` and at most `msg_controllen` bytes into `control`; the
    // CMSG_* walk stays within `msg_controllen` as the kernel set it; ucred is read
    // unaligned; every descriptor received (SCM_RIGHTS, which nk never wants) is closed.
    let ((len, cred), from) = unsafe {
        SockAddr::try_init(|storage, addrlen| {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = storage.cast();
            msg.msg_namelen = *addrlen;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control) as _;
            let n = libc::recvmsg(fd, &mut msg, libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            *addrlen = msg.msg_namelen;
            let mut cred = None;
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let data = libc::CMSG_DATA(cmsg);
                let data_len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                    (libc::SOL_SOCKET, libc::SCM_CREDENTIALS)
                        if data_len >= std::mem::size_of::<libc::ucred>() =>
                    {
                        cred = Some(std::ptr::read_unaligned(data.cast::<libc::ucred>()));
                    }
                    (libc::SOL_SOCKET, libc::SCM_RIGHTS) => {
                        for i in 0..data_len / std::mem::size_of::<libc::c_int>() {
                            let fd = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                            libc::close(fd);
                        }
                    }
                    _ => {}
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            Ok((n as usize, cred))
        })
    }?;
    Ok((len.min(buf.len()), len, from, cred))
}

/// Whether `addr` is an unnamed Unix socket's. recvfrom(2) gives such a sender as an empty
/// address (length 0, not even the family); an AF_UNIX address with no path or name after
/// its family is the same thing. No IP address is that short.
fn is_unnamed(addr: &SockAddr) -> bool {
    addr.len() as usize <= std::mem::size_of::<libc::sa_family_t>()
}

/// Writes one datagram to stdout in one write (boundaries are the point).
fn write_datagram(out: &mut File, data: &[u8]) -> Result<()> {
    match out.write_all(data) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(e).context("write stdout"),
    }
}

fn dump(opts: &DatagramOptions, mark: Mark, data: &[u8]) {
    if let Some(out) = &opts.hexdump {
        let text = hexdump::format(mark, 0, data);
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

fn report_truncated(stats: &DatagramStats, from: &str, real: usize, buffer: usize) {
    stats.truncated.fetch_add(1, Ordering::Relaxed);
    crate::log::warn(format_args!(
        "datagram from {from} truncated: {real} bytes, buffer {buffer} (raise it with -b)"
    ));
}

/// Sets a large receive buffer on a server socket (forcing it past net.core.rmem_max where
/// the process may), so that bursts queue instead of being dropped.
pub fn enlarge_receive_buffer(socket: &Socket) {
    if socket.set_recv_buffer_size(SERVER_RCVBUF).is_ok()
        && socket.recv_buffer_size().unwrap_or(0) >= SERVER_RCVBUF
    {
        return;
    }
    let size = SERVER_RCVBUF as libc::c_int;
    // SAFETY: SO_RCVBUFFORCE reads one int from `size`; failure (no CAP_NET_ADMIN) is harmless.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The datagram client: `socket` is connected to `peer`.
pub fn client(
    socket: Socket,
    peer: &str,
    opts: &DatagramOptions,
    stats: &Arc<DatagramStats>,
) -> Result<()> {
    let socket = Arc::new(socket);
    let stdin_done = Arc::new(AtomicBool::new(false));
    let eof_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let last_activity = Arc::new(Mutex::new(Instant::now()));
    {
        let (socket, stdin_done, eof_at) = (
            Arc::clone(&socket),
            Arc::clone(&stdin_done),
            Arc::clone(&eof_at),
        );
        let last_activity = Arc::clone(&last_activity);
        let peer = peer.to_string();
        send_stdin(
            opts,
            stats,
            move |datagram| {
                *last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                match socket.send(datagram) {
                    Ok(_) => Ok(true),
                    // An earlier datagram drew ICMP port unreachable; the receive side reports it.
                    // Keep sending: the peer may come up.
                    Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => Ok(false),
                    Err(e) => Err(e).with_context(|| format!("send to {peer}")),
                }
            },
            move || {
                *eof_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                stdin_done.store(true, Ordering::SeqCst);
            },
        )?;
    }
    let mut out = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let mut buf = vec![0u8; opts.buffer];
    let mut unreachable = false;
    socket
        .set_read_timeout(Some(TICK))
        .context("set receive timeout")?;
    loop {
        match receive(&socket, &mut buf) {
            Ok((kept, real, _)) => {
                stats.received.fetch_add(1, Ordering::Relaxed);
                stats
                    .received_bytes
                    .fetch_add(real as u64, Ordering::Relaxed);
                if real > kept {
                    report_truncated(stats, peer, real, buf.len());
                }
                dump(opts, Mark::Received, &buf[..kept]);
                write_datagram(&mut out, &buf[..kept])?;
                *last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                if let Some(at) = eof_at.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    // Silence is measured from the last reply after EOF.
                    *at = Instant::now();
                }
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                if !unreachable {
                    info!("{peer}: port unreachable (ICMP)");
                }
                unreachable = true;
            }
            Err(e) if crate::net::deadline::is_retry(&e) => {}
            Err(e) => return Err(e).with_context(|| format!("receive from {peer}")),
        }
        if stdin_done.load(Ordering::SeqCst) {
            let since = eof_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map_or(Duration::ZERO, |t| t.elapsed());
            if since >= opts.quit_after_eof {
                break;
            }
        }
        if let Some(idle) = opts.idle {
            if last_activity
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed()
                >= idle
            {
                return Err(anyhow!(
                    "idle timeout: no datagram either way for {}",
                    format_duration(idle)
                ));
            }
        }
    }
    if unreachable && stats.received.load(Ordering::Relaxed) == 0 {
        return Err(anyhow!(
            "{peer}: port unreachable (ICMP): nothing is listening there"
        ));
    }
    Ok(())
}

/// Starts the thread that turns stdin into datagrams: `send` sends one (`Ok(false)`: not
/// sent, not counted), `at_end` runs when stdin is over (or failed, which is reported).
fn send_stdin(
    opts: &DatagramOptions,
    stats: &Arc<DatagramStats>,
    mut send: impl FnMut(&[u8]) -> Result<bool> + Send + 'static,
    at_end: impl FnOnce() + Send + 'static,
) -> Result<()> {
    let (opts, stats) = (opts.clone(), Arc::clone(stats));
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let result = (|| -> Result<()> {
                let mut input = StdinDatagrams::new(opts.lines, opts.max_payload)?;
                while let Some(datagram) = input.next()? {
                    dump(&opts, Mark::Sent, &datagram);
                    if send(&datagram)? {
                        stats.count_sent(datagram.len());
                    }
                }
                Ok(())
            })();
            if let Err(err) = result {
                crate::log::warn(format_args!("{err:#}"));
            }
            at_end();
        })
        .context("start stdin thread")?;
    Ok(())
}

/// Where stdin's datagrams go on a server: the last peer heard, once there is one.
#[derive(Default)]
struct LastPeer {
    peer: Mutex<Option<SockAddr>>,
    heard: Condvar,
}

impl LastPeer {
    fn set(&self, addr: &SockAddr) {
        let mut peer = self.peer.lock().unwrap_or_else(|e| e.into_inner());
        // Only a new peer is news: waking the condvar costs a syscall per datagram otherwise.
        if peer.as_ref() != Some(addr) {
            *peer = Some(addr.clone());
            self.heard.notify_all();
        }
    }

    fn wait(&self) -> SockAddr {
        let mut peer = self.peer.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(addr) = peer.as_ref() {
                return addr.clone();
            }
            peer = self.heard.wait(peer).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The datagram server on a bound socket; runs until SIGINT/SIGTERM or `-i` idle.
pub fn server(socket: Socket, opts: &DatagramOptions, stats: &Arc<DatagramStats>) -> Result<()> {
    let socket = Arc::new(socket);
    let local = socket.local_addr().context("getsockname")?;
    let last_peer = Arc::new(LastPeer::default());
    let programs = opts
        .exec
        .clone()
        .map(|spec| Programs::new(spec, Arc::clone(&socket), local, opts, stats));
    if programs.is_none() {
        let (socket, last_peer) = (Arc::clone(&socket), Arc::clone(&last_peer));
        let counts = Arc::clone(stats);
        // One datagram is held until a peer is heard; stdin is not read further meanwhile.
        send_stdin(
            opts,
            stats,
            move |datagram| {
                let peer = last_peer.wait();
                if is_unnamed(&peer) {
                    counts.unsent_to_unnamed();
                    return Ok(false);
                }
                match socket.send_to(datagram, &peer) {
                    Ok(_) => Ok(true),
                    Err(e) => {
                        counts.losses.record(Loss::unsent(e.to_string()), &peer);
                        Ok(false)
                    }
                }
            },
            || {},
        )?;
    }
    let result = receive_loop(&socket, opts, stats, &last_peer, programs.as_ref());
    stats.report_losses_at_end();
    result
}

/// The server's receiving side: every datagram to stdout or to a program, until `-i` idle
/// or an error.
fn receive_loop(
    socket: &Socket,
    opts: &DatagramOptions,
    stats: &Arc<DatagramStats>,
    last_peer: &LastPeer,
    programs: Option<&Programs>,
) -> Result<()> {
    let mut out = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let mut buf = vec![0u8; opts.buffer];
    let mut first_peer: Option<SockAddr> = None;
    let mut seq = 0u64;
    let mut last_activity = Instant::now();
    // -i is "no datagram either way" (cli.md): a datagram sent (stdin to the last peer, a
    // program's reply) is activity too, seen as a change of the sent count.
    let mut sent_seen = stats.sent.load(Ordering::Relaxed);
    // Woken every tick, even with no traffic, to end on -i and to report the losses counted
    // whose interval is over.
    socket
        .set_read_timeout(Some(TICK))
        .context("set receive timeout")?;
    loop {
        stats.losses.flush_due();
        let received = match &opts.allow_uids {
            None => receive(socket, &mut buf),
            Some(allow) => match receive_with_cred(socket, &mut buf) {
                Ok((kept, real, from, cred)) => match cred {
                    Some(cred) if allow.permits(cred.uid) => Ok((kept, real, from)),
                    // Dropped unread, as a denied connection is closed before a byte moves.
                    _ => {
                        if crate::log::verbosity() >= 1 {
                            let who = cred.map_or_else(
                                || "no credentials".to_string(),
                                |c| format!("uid {}, pid {}", c.uid, c.pid),
                            );
                            info!(
                                "denied a datagram from {} ({who}): uid not in --allow-uid",
                                display_sockaddr(&from)
                            );
                        }
                        continue;
                    }
                },
                Err(e) => Err(e),
            },
        };
        let (kept, real, from) = match received {
            Ok(got) => got,
            Err(e) if crate::net::deadline::is_retry(&e) => {
                let sent = stats.sent.load(Ordering::Relaxed);
                if sent != sent_seen {
                    sent_seen = sent;
                    last_activity = Instant::now();
                }
                if let Some(idle) = opts.idle {
                    if last_activity.elapsed() >= idle {
                        return Err(anyhow!(
                            "idle timeout: no datagram either way for {}",
                            format_duration(idle)
                        ));
                    }
                }
                continue;
            }
            // A reply we sent drew ICMP unreachable; it says nothing about this socket.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => continue,
            Err(e) => return Err(e).context("receive"),
        };
        // Formatting the sender costs more than receiving: only when something will show it.
        let verbose = crate::log::verbosity() >= 1;
        let from_text = if verbose || real > kept {
            display_sockaddr(&from)
        } else {
            String::new()
        };
        if !opts.keep {
            match &first_peer {
                None => first_peer = Some(from.clone()),
                Some(first) if *first != from => {
                    debug!(
                        "ignoring a datagram from {}: serving {} only (-k serves all)",
                        display_sockaddr(&from),
                        display_sockaddr(first)
                    );
                    continue;
                }
                Some(_) => {}
            }
        }
        last_activity = Instant::now();
        seq += 1;
        stats.received.fetch_add(1, Ordering::Relaxed);
        stats
            .received_bytes
            .fetch_add(real as u64, Ordering::Relaxed);
        if real > kept {
            report_truncated(stats, &from_text, real, buf.len());
        }
        if verbose {
            info!("datagram from {from_text} ({real} bytes)");
        }
        dump(opts, Mark::Received, &buf[..kept]);
        match programs {
            Some(programs) => programs.submit(&buf[..kept], &from, seq),
            None => {
                last_peer.set(&from);
                write_datagram(&mut out, &buf[..kept])?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};

    #[test]
    fn truncation_is_detected_with_the_real_size() {
        let a = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        a.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        let b = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        b.send_to(&[7u8; 3000], &a.local_addr().unwrap()).unwrap();
        let mut small = [0u8; 1000];
        let (kept, real, _) = receive(&a, &mut small).unwrap();
        assert_eq!((kept, real), (1000, 3000));
    }

    #[test]
    fn unnamed_unix_senders_are_told_apart() {
        let server = Socket::new(Domain::UNIX, Type::DGRAM, None).unwrap();
        server
            .bind(&SockAddr::unix("").unwrap()) // autobind: an abstract name
            .unwrap();
        let to = server.local_addr().unwrap();
        let unnamed = Socket::new(Domain::UNIX, Type::DGRAM, None).unwrap();
        unnamed.send_to(b"u", &to).unwrap();
        let named = Socket::new(Domain::UNIX, Type::DGRAM, None).unwrap();
        named.bind(&SockAddr::unix("").unwrap()).unwrap();
        named.send_to(b"n", &to).unwrap();
        let mut buf = [0u8; 8];
        let (_, _, from_unnamed) = receive(&server, &mut buf).unwrap();
        let (_, _, from_named) = receive(&server, &mut buf).unwrap();
        assert!(is_unnamed(&from_unnamed));
        assert!(!is_unnamed(&from_named));
        assert!(!is_unnamed(
            &"127.0.0.1:1"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into()
        ));
        let stats = DatagramStats::default();
        stats.unsent_to_unnamed();
        stats.unsent_to_unnamed();
        assert!(stats
            .summary(Duration::ZERO)
            .contains(", 2 replies to unnamed senders dropped"));
    }

    #[test]
    fn summary_counts_everything() {
        let stats = DatagramStats::default();
        stats.count_sent(5);
        stats.truncated.fetch_add(1, Ordering::Relaxed);
        let text = stats.summary(Duration::from_millis(20));
        assert!(
            text.starts_with(
                "sent 1 datagram (5 bytes), received 0 datagrams (0 bytes), 1 truncated"
            ),
            "{text}"
        );
    }
}
