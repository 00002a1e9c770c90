//! The bidirectional relay: local source → remote, remote → local sink, until the work is done.
//!
//! Every stream command ends here (dial, listen, unix, `-e` children, TLS through its bridge),
//! so the rules of cli.md live in one place. The first of them: nothing is lost. A relay ends
//! in one of two ways: every byte it read was delivered (`Ok`), or it fails saying what was not
//! delivered and why. A FIN is not a reset, a reset is never a clean end, and bytes sent after
//! the peer's EOF count as delivered only once the peer has acknowledged them. Then:
//! - each direction runs on its own thread with blocking I/O, so a direction that is stuck
//!   (the peer not reading) never stops the other from draining: two sides that both write more
//!   than the socket buffers hold cannot deadlock, as they can with a single poll loop that
//!   blocks in `write`;
//! - local EOF half-closes the remote (`shutdown(SHUT_WR)`) unless `--no-shutdown`, and the
//!   relay keeps receiving; the remote's EOF closes the local sink at once, and the sending
//!   side follows its [`AfterPeerEof`] policy (a client sends until its input ends, as nc
//!   does); `-q` bounds the wait after local EOF, `-i` ends a relay where no byte moved
//!   either way for that long;
//! - bytes move with splice(2) when an end is a pipe (through a private pipe when neither is),
//!   sendfile(2) from a regular file, and read/write otherwise (ttys, `-C`, `-x`), except into
//!   a TCP socket, which is always written from a buffer (see [`choose_path`]). Whatever path,
//!   every byte read is written: a fast path that is refused falls back without losing data.
//!
//! The ends are [`Source`]s and [`Sink`]s built from anything readable or writable; when they
//! expose a file descriptor the zero-copy paths apply.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use crate::exit::StdoutClosed;
use crate::net::deadline::format_duration;
use crate::wire::frame::CrlfEncoder;
use crate::wire::hexdump::{self, Mark};

/// Largest buffer of the read/write path: a bulk copy is a few syscalls per MiB.
const COPY_BUFFER: usize = 128 * 1024;
/// Buffer for message sockets: larger than any seqpacket message the default socket buffers
/// let through, so a message is never cut.
const MESSAGE_BUFFER: usize = 256 * 1024;
/// The buffer a direction starts with, doubled while reads fill it.
const FIRST_COPY_BUFFER: usize = 4 * 1024;
/// Stack of a relay thread: they hold no large locals, and servers run thousands of them.
const RELAY_STACK: usize = 256 * 1024;
/// Bytes asked of one splice/sendfile call.
const ZERO_COPY_CHUNK: usize = 1 << 20;
/// Pipe capacity asked for (the default /proc/sys/fs/pipe-max-size); fewer, larger moves.
const PIPE_CAPACITY: libc::c_int = 1 << 20;

/// Something the relay reads from: stdin, a socket's read side, a child's stdout.
pub struct Source {
    reader: Box<dyn Read + Send>,
    fd: Option<RawFd>,
    /// "read stdin", "receive from 127.0.0.1:80": the operation named in errors.
    what: String,
    /// For inputs without a descriptor that can block (a per-client queue): how to wait for
    /// them and ask whether bytes are pending.
    readiness: Option<Arc<dyn Readiness>>,
    /// What the relay does with this input after the peer's EOF.
    after_peer_eof: AfterPeerEof,
}

/// An input without a file descriptor that can still block: a queue fed by another thread.
pub trait Readiness: Send + Sync {
    /// Blocks until a read would return at once (bytes or the end).
    fn wait(&self);
    /// Whether a read would return at once right now.
    fn pending(&self) -> bool;
}

/// What happens to the sending side once the peer has sent its EOF. A FIN only says "the
/// peer sends no more", not "the peer reads no more", so no policy drops a byte already read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPeerEof {
    /// Keep sending until the input ends (OpenBSD nc's client; a child's output: the child
    /// decides when it is done). A peer that has really gone answers with a reset, which is
    /// reported with the bytes it cost.
    UntilEnd,
    /// Stop at once if, when the peer's EOF arrives, the input has delivered nothing yet and
    /// has nothing waiting (`nc -l`: a listener's stdin is often an idle pipe or a service
    /// manager's, which may never end); an input that has delivered something is sent until
    /// it ends, as with [`AfterPeerEof::UntilEnd`] (a producer such as `tar` is never cut at
    /// a pause).
    WhenIdle,
    /// Stop once the input has nothing waiting and nothing read is in flight: what it already
    /// holds is sent first, later input is not (a `listen -k` or broker client that has
    /// closed leaves, freeing its `-m` slot, as ncat drops it; the bytes it was given are
    /// still delivered).
    WhenDrained,
    /// Stop as soon as nothing read is in flight (a terminal; `--end-at-peer-eof`, Ncat 7.96's
    /// habit).
    AtOnce,
}

/// Something the relay writes to: stdout, a socket's write side, a child's stdin.
pub struct Sink {
    writer: Option<Box<dyn Write + Send>>,
    fd: Option<RawFd>,
    what: String,
    at_eof: AtEof,
    /// A broken pipe here means the user's reader went away (`| head`): exit 0 quietly.
    is_stdout: bool,
}

/// What a sink does when its source has ended.
pub enum AtEof {
    /// Nothing (stdout, `--no-shutdown`).
    Nothing,
    /// Half-close: a socket's `shutdown(SHUT_WR)`.
    Shutdown(Box<dyn Fn() -> io::Result<()> + Send>),
    /// Close the writer (a child's stdin pipe).
    Close,
    /// Close the process's stdout for good (fd 1 and our duplicate), so a reader downstream
    /// sees the end of the data at the peer's EOF, not when nk exits.
    CloseStdout,
}

impl fmt::Debug for AtEof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AtEof::Nothing => "Nothing",
            AtEof::Shutdown(_) => "Shutdown",
            AtEof::Close => "Close",
            AtEof::CloseStdout => "CloseStdout",
        })
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("fd", &self.fd)
            .field("what", &self.what)
            .finish()
    }
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("fd", &self.fd)
            .field("what", &self.what)
            .finish()
    }
}

impl Source {
    /// A source with a file descriptor (zero-copy capable).
    pub fn from_fd<R: Read + AsFd + Send + 'static>(reader: R, what: impl Into<String>) -> Source {
        let fd = reader.as_fd().as_raw_fd();
        Source {
            reader: Box::new(reader),
            fd: Some(fd),
            what: what.into(),
            readiness: None,
            after_peer_eof: AfterPeerEof::UntilEnd,
        }
    }

    /// A source without a file descriptor (read/write path only).
    pub fn from_reader<R: Read + Send + 'static>(reader: R, what: impl Into<String>) -> Source {
        Source {
            reader: Box::new(reader),
            fd: None,
            what: what.into(),
            readiness: None,
            after_peer_eof: AfterPeerEof::UntilEnd,
        }
    }

    /// A source fed by another thread, whose readiness the relay can wait on and probe.
    pub fn from_queue<R: Read + Send + 'static>(
        reader: R,
        readiness: Arc<dyn Readiness>,
        what: impl Into<String>,
    ) -> Source {
        let mut source = Source::from_reader(reader, what);
        source.readiness = Some(readiness);
        source
    }

    /// Sets what the relay does with this input after the peer's EOF.
    pub fn after_peer_eof(mut self, policy: AfterPeerEof) -> Source {
        self.after_peer_eof = policy;
        self
    }

    /// Standard input, unbuffered (a duplicate of fd 0, so splice and read see the same bytes).
    pub fn stdin() -> io::Result<Source> {
        let fd = io::stdin().as_fd().try_clone_to_owned()?;
        Ok(Source::from_fd(File::from(fd), "read stdin"))
    }
}

impl Sink {
    /// A sink with a file descriptor (zero-copy capable) and nothing to do at EOF.
    pub fn from_fd<W: Write + AsFd + Send + 'static>(writer: W, what: impl Into<String>) -> Sink {
        let fd = writer.as_fd().as_raw_fd();
        Sink {
            writer: Some(Box::new(writer)),
            fd: Some(fd),
            what: what.into(),
            at_eof: AtEof::Nothing,
            is_stdout: false,
        }
    }

    /// A sink without a file descriptor.
    pub fn from_writer<W: Write + Send + 'static>(writer: W, what: impl Into<String>) -> Sink {
        Sink {
            writer: Some(Box::new(writer)),
            fd: None,
            what: what.into(),
            at_eof: AtEof::Nothing,
            is_stdout: false,
        }
    }

    /// Standard output, unbuffered: every byte is written through before the relay ends.
    pub fn stdout() -> io::Result<Sink> {
        let fd = io::stdout().as_fd().try_clone_to_owned()?;
        let mut sink = Sink::from_fd(File::from(fd), "write stdout").at_eof(AtEof::CloseStdout);
        sink.is_stdout = true;
        Ok(sink)
    }

    /// A sink that drops everything (`--send-only` still drains the socket to see it close).
    pub fn discard() -> Sink {
        Sink::from_writer(io::sink(), "discard")
    }

    /// A broken pipe on this sink means the user's stdout reader went away (exit 0 quietly),
    /// as for [`Sink::stdout`]: for writers that end up on stdout through another layer.
    pub fn writes_to_stdout(mut self) -> Sink {
        self.is_stdout = true;
        self
    }

    /// Sets what happens when the source feeding this sink ends.
    pub fn at_eof(mut self, action: AtEof) -> Sink {
        self.at_eof = action;
        self
    }

    fn finish(&mut self) -> io::Result<()> {
        match &self.at_eof {
            AtEof::Nothing => Ok(()),
            AtEof::Shutdown(shutdown) => match shutdown() {
                // The peer may already be gone; there is nothing left to tell it.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
                other => other,
            },
            AtEof::Close => {
                self.writer = None;
                self.fd = None;
                Ok(())
            }
            AtEof::CloseStdout => {
                self.writer = None;
                self.fd = None;
                crate::stdio::close_stdout();
                Ok(())
            }
        }
    }

    fn writer(&mut self) -> &mut (dyn Write + Send) {
        self.writer.as_deref_mut().expect("writer used after close")
    }
}

/// A connected stream the relay reads and writes through shared references, so both
/// directions and every control handle use one descriptor (a server with a thousand clients
/// holds a thousand sockets, not several thousand duplicates).
pub trait SplitStream: AsFd + Send + Sync + 'static {
    /// read(2) through a shared reference.
    fn read_shared(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// write(2) through a shared reference.
    fn write_shared(&self, buf: &[u8]) -> io::Result<usize>;
    /// shutdown(2).
    fn shutdown_stream(&self, how: Shutdown) -> io::Result<()>;
    /// SO_ERROR: a reset the kernel has recorded for the socket, if any.
    fn pending_error(&self) -> io::Result<Option<io::Error>>;
    /// Whether what was written has reached the peer (TCP: acknowledged), for the end of a
    /// relay that sent after the peer's EOF.
    fn delivery(&self) -> Delivery {
        tcp_delivery(self.as_fd().as_raw_fd())
    }
    /// Bytes the peer has acknowledged so far (TCP), `None` where the stream cannot tell.
    fn acknowledged(&self) -> Option<u64> {
        tcp_bytes_acked(self.as_fd().as_raw_fd())
    }
    /// A failure behind the stream that its EOF would hide (a TLS bridge whose connection
    /// was reset): the relay asks before calling an EOF clean.
    fn failure(&self) -> Option<io::Error> {
        None
    }
}

/// Where the bytes written to a stream stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// All acknowledged by the peer.
    Done,
    /// This many bytes (and perhaps our FIN) not acknowledged yet.
    Pending(usize),
    /// The peer reset the connection.
    Reset,
    /// Not a stream that can tell (a Unix socket refuses writes at once when its peer is gone).
    Unknown,
}

/// [`Delivery`] of a TCP socket, from TCP_INFO's state and SIOCOUTQ.
pub(crate) fn tcp_delivery(fd: RawFd) -> Delivery {
    if !is_tcp(fd) {
        return Delivery::Unknown;
    }
    // SAFETY: tcp_info is plain data the kernel fills in; zeroed is a valid start.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: TCP_INFO writes at most `len` bytes into `info`.
    let ok = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    } == 0;
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int: bytes (and FIN) not yet acknowledged.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) } != 0 {
        return Delivery::Unknown;
    }
    match queued {
        0 => Delivery::Done,
        // Closed with bytes never acknowledged: the peer reset the connection.
        _ if ok && info.tcpi_state == TCP_CLOSE => Delivery::Reset,
        n => Delivery::Pending(n.max(0) as usize),
    }
}

fn is_tcp(fd: RawFd) -> bool {
    socket_int_option(fd, libc::SO_PROTOCOL) == Some(libc::IPPROTO_TCP)
}

/// TCP_INFO's `tcpi_bytes_acked` (Linux >= 4.1): the bytes the peer has acknowledged. libc's
/// `tcp_info` stops before that field, so it is read from the kernel's layout
/// (include/uapi/linux/tcp.h: 8 one-byte fields, 24 u32, two u64 pacing rates, then it).
fn tcp_bytes_acked(fd: RawFd) -> Option<u64> {
    const BYTES_ACKED: usize = 8 + 24 * 4 + 2 * 8;
    if !is_tcp(fd) {
        return None;
    }
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: TCP_INFO writes at most `len` bytes into `info` and says how many in `len`.
    let status = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if status != 0 || (len as usize) < BYTES_ACKED + 8 {
        return None;
    }
    let bytes = info.get(BYTES_ACKED..BYTES_ACKED + 8)?;
    Some(u64::from_ne_bytes(bytes.try_into().ok()?))
}

/// TCP_CLOSE in `tcp_info.tcpi_state` (include/net/tcp_states.h).
const TCP_CLOSE: u8 = 7;

macro_rules! split_stream {
    ($stream:ty) => {
        impl SplitStream for $stream {
            fn read_shared(&self, buf: &mut [u8]) -> io::Result<usize> {
                (&*self).read(buf)
            }
            fn write_shared(&self, buf: &[u8]) -> io::Result<usize> {
                (&*self).write(buf)
            }
            fn shutdown_stream(&self, how: Shutdown) -> io::Result<()> {
                self.shutdown(how)
            }
            fn pending_error(&self) -> io::Result<Option<io::Error>> {
                self.take_error()
            }
        }
    };
}

split_stream!(TcpStream);
split_stream!(socket2::Socket);

/// One direction's handle on a shared stream.
struct Shared<S>(Arc<S>);

impl<S: SplitStream> Read for Shared<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_shared(buf)
    }
}

impl<S: SplitStream> Write for Shared<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_shared(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: SplitStream> AsFd for Shared<S> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// The remote end of a relay: a source, a sink that half-closes at EOF, and a way to close
/// both directions when the relay is over (which unblocks a thread still waiting on it).
pub struct Remote {
    source: Source,
    sink: Sink,
    close: Box<dyn Fn() + Send>,
    /// Where the bytes written stand (acknowledged, pending, reset).
    delivery: Box<dyn Fn() -> Delivery + Send>,
    /// A failure behind the stream that its EOF would hide ([`SplitStream::failure`]).
    failure: Box<dyn Fn() -> Option<io::Error> + Send>,
    /// Bytes the peer has acknowledged ([`SplitStream::acknowledged`]).
    acknowledged: Box<dyn Fn() -> Option<u64> + Send>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("source", &self.source)
            .field("sink", &self.sink)
            .finish()
    }
}

impl Remote {
    /// Splits a stream others also hold (a server's registry, to end it on SIGTERM).
    pub fn from_shared<S: SplitStream>(stream: Arc<S>, peer: &str) -> io::Result<Remote> {
        let shutdown_handle = Arc::clone(&stream);
        let close_handle = Arc::clone(&stream);
        let delivery_handle = Arc::clone(&stream);
        let failure_handle = Arc::clone(&stream);
        let acknowledged_handle = Arc::clone(&stream);
        let sink = Sink::from_fd(Shared(Arc::clone(&stream)), format!("send to {peer}")).at_eof(
            AtEof::Shutdown(Box::new(move || {
                shutdown_handle.shutdown_stream(Shutdown::Write)
            })),
        );
        Ok(Remote {
            source: Source::from_fd(Shared(stream), format!("receive from {peer}")),
            sink,
            close: Box::new(move || {
                let _ = close_handle.shutdown_stream(Shutdown::Both);
            }),
            delivery: Box::new(move || match delivery_handle.pending_error() {
                Ok(Some(_)) => Delivery::Reset,
                _ => delivery_handle.delivery(),
            }),
            failure: Box::new(move || failure_handle.failure()),
            acknowledged: Box::new(move || acknowledged_handle.acknowledged()),
        })
    }
}

/// How the relay behaves (the flags shared by dial, listen and unix).
#[derive(Clone, Default)]
pub struct RelayOptions {
    /// Half-close the remote when the local source ends (off with `--no-shutdown`).
    pub half_close: bool,
    /// `-q`: end at the latest this long after the local source ended.
    pub quit_after_eof: Option<Duration>,
    /// `-i`: end with an error when no byte moved either way for this long.
    pub idle_timeout: Option<Duration>,
    /// `--recv-only`: never read the local source.
    pub receive_only: bool,
    /// `--send-only`: never write received bytes locally (they are drained and dropped).
    pub send_only: bool,
    /// `-C`: send bare LF as CRLF.
    pub crlf: bool,
    /// `--end-at-peer-eof`: stop sending at the peer's EOF (input still to come is not read).
    pub end_at_peer_eof: bool,
    /// `-x`: where the hex dump of both directions goes.
    pub hexdump: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
    /// `-o`: the recording of the session's data.
    pub output: Option<Arc<Recorder>>,
    /// Counters the caller can read at any time (for a summary on SIGINT).
    pub counters: Arc<Counters>,
}

impl fmt::Debug for RelayOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayOptions")
            .field("half_close", &self.half_close)
            .field("quit_after_eof", &self.quit_after_eof)
            .field("idle_timeout", &self.idle_timeout)
            .field("receive_only", &self.receive_only)
            .field("send_only", &self.send_only)
            .field("crlf", &self.crlf)
            .field("end_at_peer_eof", &self.end_at_peer_eof)
            .field("hexdump", &self.hexdump.is_some())
            .field("output", &self.output.is_some())
            .finish()
    }
}

/// `-o FILE`: a recording of the session, taken while relaying (ncat's `-o`). By default it
/// holds what was received, byte for byte; with `--output-both`, what was sent too, each line
/// marked `> ` (sent) or `< ` (received), a line cut by other data ended there and its rest
/// marked anew (a record to read, not to replay). Connections of a server share one
/// recorder: each chunk is written whole, under its lock. Like `-x` it is a diagnostic: a
/// write that fails is said once on stderr, the recording stops, the payload flows on.
pub struct Recorder {
    state: Mutex<RecorderState>,
    both: bool,
    /// The file's name, for the stderr line.
    path: String,
}

struct RecorderState {
    out: Box<dyn Write + Send>,
    /// A write failed (and was said): record nothing more.
    failed: bool,
    /// Bytes recorded so far, for the stderr line.
    written: u64,
    /// `--output-both`: the next byte starts a line.
    at_line_start: bool,
    /// `--output-both`: the pump whose bytes were recorded last.
    last: Option<u64>,
}

/// Numbers each pump, so a recording knows when another one's bytes cut a line.
static NEXT_PUMP: AtomicU64 = AtomicU64::new(1);

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("both", &self.both)
            .finish()
    }
}

impl Recorder {
    /// A recorder writing to `out` (named `path` in messages); `both` is `--output-both`.
    pub fn new(out: Box<dyn Write + Send>, path: &str, both: bool) -> Recorder {
        Recorder {
            state: Mutex::new(RecorderState {
                out,
                failed: false,
                written: 0,
                at_line_start: true,
                last: None,
            }),
            both,
            path: path.to_string(),
        }
    }

    /// Whether bytes going `direction` are recorded.
    fn records(&self, direction: Direction) -> bool {
        self.both || direction == Direction::Receive
    }

    /// Records `data`, which pump `pump` moved `direction`.
    fn record(&self, pump: u64, direction: Direction, data: &[u8]) {
        if data.is_empty() || !self.records(direction) {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.failed {
            return;
        }
        let marked;
        let bytes = if self.both {
            let mark: &[u8] = match direction {
                Direction::Send => b"> ",
                Direction::Receive => b"< ",
            };
            let mut text = Vec::with_capacity(data.len() + 16);
            if !state.at_line_start && state.last != Some(pump) {
                text.push(b'\n');
                state.at_line_start = true;
            }
            for &byte in data {
                if state.at_line_start {
                    text.extend_from_slice(mark);
                }
                text.push(byte);
                state.at_line_start = byte == b'\n';
            }
            state.last = Some(pump);
            marked = text;
            &marked[..]
        } else {
            data
        };
        match state.out.write_all(bytes).and_then(|()| state.out.flush()) {
            Ok(()) => state.written += bytes.len() as u64,
            Err(e) => {
                state.failed = true;
                crate::log::warn(format_args!(
                    "write output file {}: {e}; the recording (-o) stops after {} bytes, the session goes on",
                    self.path, state.written
                ));
            }
        }
    }
}

/// Bytes moved each way, and when the relay started.
#[derive(Debug)]
pub struct Counters {
    /// Bytes written to the remote.
    pub sent: AtomicU64,
    /// Bytes received from the remote (and written locally, or dropped with `--send-only`).
    pub received: AtomicU64,
    /// Bytes the sender had taken from its input when a write to the remote failed.
    unwritten: AtomicU64,
    started: Mutex<Instant>,
    /// Milliseconds since `started` at which a byte last moved either way.
    last_activity_ms: AtomicU64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            unwritten: AtomicU64::new(0),
            started: Mutex::new(Instant::now()),
            last_activity_ms: AtomicU64::new(0),
        }
    }
}

impl Counters {
    fn started(&self) -> Instant {
        *self.started.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn restart(&self) {
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.last_activity_ms.store(0, Ordering::Relaxed);
    }

    fn touch(&self) {
        let ms = self.started().elapsed().as_millis() as u64;
        self.last_activity_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.started().elapsed().saturating_sub(last)
    }

    /// The one-line `-v` summary: bytes each way, duration, rate.
    pub fn summary(&self) -> String {
        let sent = self.sent.load(Ordering::Relaxed);
        let received = self.received.load(Ordering::Relaxed);
        let elapsed = self.started().elapsed();
        let rate = (sent + received) as f64 / elapsed.as_secs_f64().max(1e-6) / 1e6;
        format!(
            "sent {}, received {} in {} ({rate:.1} MB/s)",
            crate::log::count(sent, "byte"),
            crate::log::count(received, "byte"),
            format_duration(elapsed)
        )
    }
}

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Local source → remote.
    Send,
    /// Remote → local sink.
    Receive,
}

/// How a direction ended.
enum Event {
    Ended(Direction, Result<u64>),
}

/// Relays between a local source/sink and a remote until the rules above say stop.
/// `local_source` is `None` when there is nothing to send (`--recv-only`).
pub fn relay(
    local_source: Option<Source>,
    local_sink: Sink,
    remote: Remote,
    opts: &RelayOptions,
) -> Result<()> {
    let counters = Arc::clone(&opts.counters);
    counters.restart();
    let (events, ended) = mpsc::channel();
    let Remote {
        source: remote_source,
        sink: mut remote_sink,
        close,
        delivery,
        failure,
        acknowledged,
    } = remote;
    // What this relay sent, as the peer acknowledges it: bytes before it (a proxy's
    // handshake) are not its input.
    let before = Tally {
        sent: counters.sent.load(Ordering::Relaxed),
        acknowledged: acknowledged(),
    };
    if !opts.half_close {
        remote_sink.at_eof = AtEof::Nothing;
    }
    let local_source = if opts.receive_only {
        None
    } else {
        local_source
    };
    let local_sink = if opts.send_only {
        Sink::discard()
    } else {
        local_sink
    };

    let mut sender = None;
    if let Some(source) = local_source {
        let gate = Arc::new(Mutex::new(()));
        // A duplicate of the input descriptor, so the supervisor can ask "is input pending?"
        // even after the sending thread has closed its own.
        let probe = match (&source.readiness, source.fd) {
            (Some(readiness), _) => Probe::Queue(Arc::clone(readiness)),
            (None, Some(fd)) => dup(fd).map(Probe::Fd).unwrap_or(Probe::Finite),
            (None, None) => Probe::Finite,
        };
        let policy = match (source.after_peer_eof, &probe) {
            _ if opts.end_at_peer_eof => AfterPeerEof::AtOnce,
            // Nobody will type more for a peer that sends no more.
            (_, Probe::Fd(fd)) if is_tty(fd.as_raw_fd()) => AfterPeerEof::AtOnce,
            (policy, _) => policy,
        };
        let mut pump = Pump::new(Direction::Send, opts, &counters);
        pump.gate = Some(Arc::clone(&gate));
        spawn_direction(pump, source, remote_sink, events.clone())?;
        sender = Some(SenderWatch {
            gate,
            probe,
            policy,
        });
    }
    let pump = Pump::new(Direction::Receive, opts, &counters);
    spawn_direction(pump, remote_source, local_sink, events)?;

    let result = supervise(
        &ended,
        sender.as_ref(),
        (&*failure, &*delivery),
        opts,
        &counters,
    )
    .map_err(|err| {
        // The sending thread may be in a write the reset is failing right now: its end
        // (bounded) makes the count of what was sent include that last chunk, which the
        // peer may have read (the count lagged what the peer had read by a chunk).
        if sender.is_some() && is_peer_gone(&err) {
            let _ = ended.recv_timeout(SENDER_SETTLE);
        }
        let now = Tally {
            sent: counters.sent.load(Ordering::Relaxed),
            acknowledged: acknowledged(),
        };
        let unwritten = counters.unwritten.load(Ordering::Relaxed);
        what_a_reset_lost(err, &before, &now, unwritten)
    });
    let result = result.and_then(|peer_eof| {
        let Some(sent_after_eof) = peer_eof else {
            return Ok(());
        };
        if counters.sent.load(Ordering::Relaxed) == before.sent {
            return Ok(());
        }
        // The peer closed its side: a peer that closed for good answers what reaches it
        // after that with a reset, maybe after our input ended, and that includes bytes we
        // wrote just before its FIN was seen. The end waits for the acknowledgement of all
        // of them (or the reset), so exit 0 means they were delivered.
        confirm_delivery(&*delivery, CONFIRM_LIMIT).map_err(|refused| {
            let now = Tally {
                sent: counters.sent.load(Ordering::Relaxed),
                acknowledged: acknowledged(),
            };
            match refused {
                Some(unacknowledged) => {
                    let lost = match (before.acknowledged, now.acknowledged) {
                        (Some(first), Some(last)) => {
                            let sent = now.sent.saturating_sub(before.sent);
                            sent.saturating_sub(last.saturating_sub(first))
                        }
                        _ => unacknowledged.max(sent_after_eof),
                    };
                    reset_after_eof(lost)
                }
                None => anyhow!(
                    "the peer closed its side and has not acknowledged the last bytes sent \
                     within {}: they may not have been delivered",
                    format_duration(CONFIRM_LIMIT)
                ),
            }
        })
    });
    close();
    result
}

/// Bytes sent to the peer and acknowledged by it, at one moment.
struct Tally {
    sent: u64,
    acknowledged: Option<u64>,
}

/// A relay cut by the peer's reset while it sent: the error gains what was not delivered
/// (lossless or loud), from the bytes sent and those the peer's TCP acknowledged. Bytes it
/// acknowledged but its program had not read are lost too, and nobody can count them.
fn what_a_reset_lost(
    err: anyhow::Error,
    before: &Tally,
    now: &Tally,
    unwritten: u64,
) -> anyhow::Error {
    let sent = now.sent.saturating_sub(before.sent);
    // After the peer's EOF the error already counts what was refused.
    let counted = err.chain().any(|e| e.is::<ResetAfterEof>());
    if !is_peer_gone(&err) || counted || sent + unwritten == 0 {
        return err;
    }
    let count = |n| crate::log::count(n, "byte");
    let never_sent = if unwritten > 0 {
        format!(", and {} read were never sent", count(unwritten))
    } else {
        String::new()
    };
    let how = match (before.acknowledged, now.acknowledged) {
        (Some(first), Some(last)) => {
            let acknowledged = last.saturating_sub(first).min(sent);
            format!(
                "{} of the {} sent were never acknowledged{never_sent} (what it acknowledged \
                 but had not read yet is lost with the reset too)",
                count(sent - acknowledged),
                count(sent)
            )
        }
        _ => format!(
            "{} sent, the last of them perhaps lost{never_sent}",
            count(sent)
        ),
    };
    err.context(format!("the peer reset the connection: {how}"))
}

/// How long a relay cut by a reset waits for its sending thread to end, so that what it sent
/// is counted whole (a write the reset fails ends at once; one blocked on input does not).
const SENDER_SETTLE: Duration = Duration::from_millis(200);

/// How long the end of a relay waits for the peer to acknowledge bytes sent after its EOF.
pub const CONFIRM_LIMIT: Duration = Duration::from_secs(10);

/// The error for input the peer refused after its EOF (it had closed, not half-closed).
fn reset_after_eof(not_delivered: u64) -> anyhow::Error {
    anyhow::Error::new(ResetAfterEof(not_delivered))
}

/// Input the peer refused with a reset after its EOF: the bytes not delivered, already
/// counted (so [`what_a_reset_lost`] adds nothing).
#[derive(Debug)]
struct ResetAfterEof(u64);

impl fmt::Display for ResetAfterEof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the peer reset the connection after its EOF: {} bytes of input not delivered",
            self.0
        )
    }
}

impl std::error::Error for ResetAfterEof {}

/// Waits until the peer has acknowledged everything sent. Fails with `Some(bytes not
/// acknowledged)` when it reset the connection, `None` when `limit` passed first.
fn confirm_delivery(delivery: &dyn Fn() -> Delivery, limit: Duration) -> Result<(), Option<u64>> {
    let deadline = Instant::now() + limit;
    let mut left = 0;
    loop {
        match delivery() {
            Delivery::Done | Delivery::Unknown => return Ok(()),
            Delivery::Reset => return Err(Some(left as u64)),
            Delivery::Pending(_) if Instant::now() >= deadline => return Err(None),
            Delivery::Pending(n) => {
                left = n;
                thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

fn spawn_direction(
    mut pump: Pump,
    mut source: Source,
    mut sink: Sink,
    events: mpsc::Sender<Event>,
) -> Result<()> {
    let direction = pump.direction;
    thread::Builder::new()
        .name(format!("relay-{direction:?}").to_lowercase())
        .stack_size(RELAY_STACK)
        .spawn(move || {
            let result = pump.run(&mut source, &mut sink);
            let _ = events.send(Event::Ended(direction, result));
        })
        .context("start relay thread")?;
    Ok(())
}

/// What the supervisor needs to tell whether the sending side may stop.
struct SenderWatch {
    /// Held by the sender from the moment it takes bytes from its input until they are
    /// written: while it is free, no byte is in flight.
    gate: Arc<Mutex<()>>,
    /// How to see whether bytes are waiting in the input.
    probe: Probe,
    /// What the peer's EOF means for the sending side.
    policy: AfterPeerEof,
}

/// Ways to ask an input whether it has bytes pending.
enum Probe {
    /// A duplicate of its descriptor, polled.
    Fd(OwnedFd),
    /// A queue's own answer.
    Queue(Arc<dyn Readiness>),
    /// An in-memory or otherwise finite reader: always has something (its end, at least).
    Finite,
}

impl SenderWatch {
    /// After the peer's EOF: whether the sender may stop now without losing a byte it read.
    fn may_stop(&self) -> bool {
        if self.policy == AfterPeerEof::UntilEnd {
            return false;
        }
        let Ok(_held) = self.gate.try_lock() else {
            return false;
        };
        if self.policy == AfterPeerEof::AtOnce {
            return true;
        }
        match &self.probe {
            Probe::Fd(fd) => !readable_now(fd.as_raw_fd()),
            Probe::Queue(queue) => !queue.pending(),
            Probe::Finite => false,
        }
    }
}

/// How often a relay whose peer has closed first checks whether its sender may stop, or the
/// peer has reset the connection; the interval doubles up to [`IDLE_CHECK_MAX`], so a long
/// wait for stdin costs few wake-ups.
const IDLE_CHECK: Duration = Duration::from_millis(5);
const IDLE_CHECK_MAX: Duration = Duration::from_millis(100);

/// Waits for the directions to end and applies the end-of-relay rules, `-q` and `-i`.
/// Returns, when the peer sent its EOF, how many bytes were sent after it was seen (what
/// was sent is then confirmed: [`confirm_delivery`]); `None` when the relay ended first.
///
/// Nothing is lost: every byte read is delivered, or the relay fails saying what was not.
/// When the remote closes its side first, the sender's [`AfterPeerEof`] policy decides when
/// to stop: never while it holds bytes it has read. A reset after that EOF is an error naming
/// the bytes it cost.
fn supervise(
    ended: &mpsc::Receiver<Event>,
    sender: Option<&SenderWatch>,
    (failure, delivery): (&dyn Fn() -> Option<io::Error>, &dyn Fn() -> Delivery),
    opts: &RelayOptions,
    counters: &Counters,
) -> Result<Option<u64>> {
    let mut send_running = sender.is_some();
    let mut send_done_at: Option<Instant> = None;
    let mut send_failure: Option<anyhow::Error> = None;
    let mut peer_closed = false;
    let mut sent_at_peer_eof = 0;
    // The input was flowing at the peer's EOF: it is sent until it ends.
    let mut until_input_ends = false;
    let mut check_every = IDLE_CHECK;
    let sent_since = |at: u64| counters.sent.load(Ordering::Relaxed).saturating_sub(at);
    loop {
        let mut wait = Duration::MAX;
        if let Some(idle) = opts.idle_timeout {
            wait = wait.min(idle.saturating_sub(counters.idle_for()));
        }
        if let (Some(quit), Some(done)) = (opts.quit_after_eof, send_done_at) {
            wait = wait.min(quit.saturating_sub(done.elapsed()));
        }
        if peer_closed {
            wait = wait.min(check_every);
            check_every = (check_every * 2).min(IDLE_CHECK_MAX);
        }
        let event = if wait == Duration::MAX {
            ended.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            ended.recv_timeout(wait)
        };
        match event {
            Ok(Event::Ended(Direction::Receive, Ok(_))) => {
                if let Some(err) = failure() {
                    return Err(anyhow::Error::new(err));
                }
                if let Some(err) = send_failure {
                    return Err(err);
                }
                // The sending side may have taken the reset (the kernel reports it once, to
                // whichever call comes first) and left this side only an EOF. A socket closed
                // with bytes never acknowledged was reset, not closed: say it as the reset it
                // was, with the sender's own error when it comes.
                if send_running && delivery() == Delivery::Reset {
                    return Err(match ended.recv_timeout(SENDER_SETTLE) {
                        Ok(Event::Ended(Direction::Send, Err(err))) if is_peer_gone(&err) => err,
                        _ => anyhow::Error::new(io::Error::from(io::ErrorKind::ConnectionReset))
                            .context("the connection"),
                    });
                }
                if !send_running {
                    return Ok(Some(0));
                }
                peer_closed = true;
                sent_at_peer_eof = counters.sent.load(Ordering::Relaxed);
                crate::debug!("the peer sent its EOF");
                match sender {
                    None => return Ok(Some(0)),
                    Some(watch) if watch.policy == AfterPeerEof::WhenIdle => {
                        if sent_at_peer_eof == 0 && watch.may_stop() {
                            return Ok(Some(0));
                        }
                        until_input_ends = true;
                    }
                    Some(watch) if watch.may_stop() => return Ok(Some(0)),
                    Some(_) => {}
                }
            }
            Ok(Event::Ended(Direction::Receive, Err(err))) => {
                // A send failure seen first explains a reset better than the reset does.
                return match send_failure {
                    Some(send_err) if !crate::exit::is_silent(&err) => Err(send_err),
                    _ => Err(err),
                };
            }
            Ok(Event::Ended(Direction::Send, Ok(_))) => {
                send_running = false;
                send_done_at = Some(Instant::now());
                if peer_closed || opts.send_only || opts.quit_after_eof == Some(Duration::ZERO) {
                    return Ok(peer_closed.then(|| sent_since(sent_at_peer_eof)));
                }
            }
            Ok(Event::Ended(Direction::Send, Err(err))) => {
                send_running = false;
                if let Some(behind) = failure() {
                    return Err(anyhow::Error::new(behind));
                }
                if peer_closed && is_peer_gone(&err) {
                    let lost =
                        sent_since(sent_at_peer_eof) + counters.unwritten.load(Ordering::Relaxed);
                    return Err(reset_after_eof(lost));
                }
                if peer_closed || !is_peer_gone(&err) {
                    return Err(err);
                }
                // The peer went away while we were sending: the receive side will see the
                // close or the reset in a moment; let it drain what arrived first.
                send_failure = Some(err);
                send_done_at.get_or_insert_with(Instant::now);
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some(idle) = opts.idle_timeout {
                    if counters.idle_for() >= idle {
                        return Err(anyhow!(
                            "idle timeout: no data either way for {}",
                            format_duration(idle)
                        ));
                    }
                }
                if let (Some(quit), Some(done)) = (opts.quit_after_eof, send_done_at) {
                    if done.elapsed() >= quit {
                        return Ok(None);
                    }
                }
                if peer_closed && !until_input_ends && sender.is_none_or(SenderWatch::may_stop) {
                    return Ok(Some(sent_since(sent_at_peer_eof)));
                }
                // Input sent after the peer's EOF drew a reset: the peer had closed for good,
                // and nk need not wait for stdin to find out (OpenBSD nc does not either).
                if peer_closed && sent_since(sent_at_peer_eof) > 0 && delivery() == Delivery::Reset
                {
                    return Err(reset_after_eof(sent_since(sent_at_peer_eof)));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(anyhow!("relay threads ended without a result"));
            }
        }
    }
}

fn is_peer_gone(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(peer_reset)
}

/// An error that means the peer reset the connection: the reset itself (ECONNRESET,
/// ECONNABORTED), or a write (EPIPE) or shutdown (ENOTCONN) after the kernel took it in,
/// when the reset is not reported again. Every relay (dial/listen, forward) reads it so.
pub(crate) fn peer_reset(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
    )
}

/// Which end of a transfer an error belongs to.
#[derive(Debug, Clone, Copy)]
enum Side {
    Read,
    Write,
}

/// One direction's copy machinery and state.
struct Pump {
    direction: Direction,
    counters: Arc<Counters>,
    crlf: Option<CrlfEncoder>,
    hexdump: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
    /// `-o`, when it records this direction.
    output: Option<Arc<Recorder>>,
    /// This pump's number, for the recording.
    id: u64,
    /// Sending side only: held while bytes taken from the input are not yet written.
    gate: Option<Arc<Mutex<()>>>,
    total: u64,
}

impl Pump {
    fn new(direction: Direction, opts: &RelayOptions, counters: &Arc<Counters>) -> Pump {
        Pump {
            direction,
            counters: Arc::clone(counters),
            crlf: (opts.crlf && direction == Direction::Send).then(CrlfEncoder::default),
            hexdump: opts.hexdump.clone(),
            output: opts
                .output
                .clone()
                .filter(|recorder| recorder.records(direction)),
            id: NEXT_PUMP.fetch_add(1, Ordering::Relaxed),
            gate: None,
            total: 0,
        }
    }

    fn run(&mut self, source: &mut Source, sink: &mut Sink) -> Result<u64> {
        match self.transfer(source, sink) {
            // A child that exits without reading all its input: what it did not read has no
            // reader any more; this direction is over, and the child's output decides the rest.
            Err((Side::Write, err))
                if err.kind() == io::ErrorKind::BrokenPipe
                    && matches!(sink.at_eof, AtEof::Close) =>
            {
                crate::debug!("{}: the reader has gone ({err})", sink.what);
            }
            result => result.map_err(|(side, err)| describe(side, err, source, sink))?,
        }
        sink.finish()
            .with_context(|| format!("{}: shutdown", sink.what))?;
        Ok(self.total)
    }

    fn account(&mut self, n: usize) {
        self.total += n as u64;
        let counter = match self.direction {
            Direction::Send => &self.counters.sent,
            Direction::Receive => &self.counters.received,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        self.counters.touch();
    }

    /// On the sending side: waits until the input has bytes (or its end) without holding the
    /// gate, then takes the gate for the read-and-write that follows.
    fn take_gate<'g>(
        &self,
        gate: Option<&'g Mutex<()>>,
        input: Option<RawFd>,
        readiness: Option<&Arc<dyn Readiness>>,
    ) -> Result<Option<MutexGuard<'g, ()>>, (Side, io::Error)> {
        let Some(gate) = gate else { return Ok(None) };
        if let Some(fd) = input {
            wait_ready(fd, libc::POLLIN).map_err(|e| (Side::Read, e))?;
        } else if let Some(readiness) = readiness {
            readiness.wait();
        }
        Ok(Some(gate.lock().unwrap_or_else(|e| e.into_inner())))
    }

    fn transfer(&mut self, source: &mut Source, sink: &mut Sink) -> Result<(), (Side, io::Error)> {
        // -C, -x and -o need to see the bytes: they take the read/write path.
        let plain = self.crlf.is_none() && self.hexdump.is_none() && self.output.is_none();
        if let (true, Some(from), Some(to)) = (plain, source.fd, sink.fd) {
            match choose_path(from, to) {
                Path::Splice => {
                    if self.splice_direct(from, to)? {
                        return Ok(());
                    }
                }
                Path::SpliceViaPipe => {
                    if self.splice_via_pipe(from, sink)? {
                        return Ok(());
                    }
                }
                Path::Sendfile => {
                    if self.sendfile(from, to)? {
                        return Ok(());
                    }
                }
                Path::Copy => {}
            }
        }
        self.copy(source, sink)
    }

    /// The read/write path, with `-C`, `-x` and `-o` applied.
    fn copy(&mut self, source: &mut Source, sink: &mut Sink) -> Result<(), (Side, io::Error)> {
        // Start small and grow while reads fill the buffer: a thousand idle connections then
        // cost a thousand small buffers, a bulk transfer soon gets the large one.
        // A message socket hands over whole messages: the buffer must hold the largest at once.
        let first = if source.fd.is_some_and(is_message_socket) {
            MESSAGE_BUFFER
        } else {
            FIRST_COPY_BUFFER
        };
        let mut buf = vec![0u8; first];
        let mut converted = Vec::new();
        loop {
            let gate = self.gate.clone();
            let _held = self.take_gate(gate.as_deref(), source.fd, source.readiness.as_ref())?;
            let n = read_retrying(&mut *source.reader, source.fd, &mut buf)
                .map_err(|e| (Side::Read, e))?;
            if n == 0 {
                return Ok(());
            }
            let filled = n == buf.len();
            let chunk = match &mut self.crlf {
                Some(encoder) => {
                    converted.clear();
                    encoder.encode(&buf[..n], &mut converted);
                    &converted[..]
                }
                None => &buf[..n],
            };
            if let Some(dump) = &self.hexdump {
                let mark = match self.direction {
                    Direction::Send => Mark::Sent,
                    Direction::Receive => Mark::Received,
                };
                let text = hexdump::format(mark, self.total, chunk);
                let mut out = dump.lock().unwrap_or_else(|e| e.into_inner());
                // The dump is a diagnostic: failing to write it must not stop the payload.
                let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            }
            if let Some(recorder) = &self.output {
                recorder.record(self.id, self.direction, chunk);
            }
            let fd = sink.fd;
            if let Err(e) = write_all_retrying(sink.writer(), fd, chunk) {
                if self.direction == Direction::Send {
                    let lost = &self.counters.unwritten;
                    lost.store(chunk.len() as u64, Ordering::Relaxed);
                }
                return Err((Side::Write, e));
            }
            let len = chunk.len();
            self.account(len);
            if filled && buf.len() < COPY_BUFFER {
                buf.resize(buf.len() * 2, 0);
            }
        }
    }

    /// splice(2) straight from `from` to `to` (one of them is a pipe). `Ok(false)`: the kernel
    /// refused before any byte moved; use another path.
    fn splice_direct(&mut self, from: RawFd, to: RawFd) -> Result<bool, (Side, io::Error)> {
        grow_pipe(from);
        grow_pipe(to);
        let mut first = true;
        // Never block inside splice waiting for input: a splice blocked on an empty socket
        // holds the destination pipe's lock, so whoever reads that pipe (a `-e` program, the
        // `cat` after `nk listen |`) could not take the bytes already in it. So: wait for input
        // with poll (outside the gate, if any), then move what is there without blocking.
        loop {
            let gate = self.gate.clone();
            if gate.is_none() {
                wait_ready(from, libc::POLLIN).map_err(|e| (Side::Read, e))?;
            }
            let _held = self.take_gate(gate.as_deref(), Some(from), None)?;
            match splice(from, to, ZERO_COPY_CHUNK, libc::SPLICE_F_NONBLOCK) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    first = false;
                    self.account(n);
                }
                Err(e) if first && splice_refused(&e) => return Ok(false),
                // Input drained (polled again at the top) or output full: wait for room.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_ready(to, libc::POLLOUT).map_err(|e| (Side::Write, e))?;
                }
                Err(e) => return Err((attribute(&e), e)),
            }
        }
    }

    /// splice(2) from a socket into a private pipe and from there to the sink (a file,
    /// /dev/null, another socket). If the second leg is refused, what is already in the pipe
    /// is copied out by read/write before falling back, so nothing is lost.
    fn splice_via_pipe(&mut self, from: RawFd, sink: &mut Sink) -> Result<bool, (Side, io::Error)> {
        let Some(to) = sink.fd else { return Ok(false) };
        let (pipe_out, pipe_in) = match make_pipe() {
            Ok(pair) => pair,
            Err(_) => return Ok(false),
        };
        grow_pipe(pipe_in.as_raw_fd());
        let mut first = true;
        loop {
            let n = match splice(from, pipe_in.as_raw_fd(), ZERO_COPY_CHUNK, 0) {
                Ok(0) => return Ok(true),
                Ok(n) => n,
                Err(e) if first && splice_refused(&e) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_ready(from, libc::POLLIN).map_err(|e| (Side::Read, e))?;
                    continue;
                }
                Err(e) => return Err((Side::Read, e)),
            };
            let mut left = n;
            while left > 0 {
                match splice(pipe_out.as_raw_fd(), to, left, 0) {
                    Ok(0) => return Err((Side::Write, io::ErrorKind::WriteZero.into())),
                    Ok(moved) => {
                        left -= moved;
                        self.account(moved);
                    }
                    Err(e) if first && splice_refused(&e) => {
                        // The sink cannot take splice: hand over the bytes already in the pipe.
                        let mut stranded = vec![0u8; left];
                        let mut pipe = File::from(pipe_out);
                        pipe.read_exact(&mut stranded)
                            .map_err(|e| (Side::Read, e))?;
                        write_all_retrying(sink.writer(), Some(to), &stranded)
                            .map_err(|e| (Side::Write, e))?;
                        self.account(left);
                        return Ok(false);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        wait_ready(to, libc::POLLOUT).map_err(|e| (Side::Write, e))?;
                    }
                    Err(e) => return Err((Side::Write, e)),
                }
                first = false;
            }
        }
    }

    /// sendfile(2) from a regular file (stdin redirected from a file) to a socket or pipe.
    fn sendfile(&mut self, from: RawFd, to: RawFd) -> Result<bool, (Side, io::Error)> {
        let mut first = true;
        loop {
            let gate = self.gate.clone();
            let _held = self.take_gate(gate.as_deref(), None, None)?;
            // SAFETY: both descriptors are open for the duration of the call (owned by the
            // source and sink this pump borrows); a null offset means "use and advance the
            // file position", which keeps a later read/write fallback in step.
            let n = unsafe { libc::sendfile(to, from, std::ptr::null_mut(), ZERO_COPY_CHUNK) };
            if n > 0 {
                first = false;
                self.account(n as usize);
                continue;
            }
            if n == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    wait_ready(to, libc::POLLOUT).map_err(|e| (Side::Write, e))?;
                }
                _ if first && splice_refused(&e) => return Ok(false),
                _ => return Err((attribute(&e), e)),
            }
        }
    }
}

/// Turns a transfer error into the message the user sees, naming the operation.
fn describe(side: Side, err: io::Error, source: &Source, sink: &Sink) -> anyhow::Error {
    match side {
        Side::Write if sink.is_stdout && err.kind() == io::ErrorKind::BrokenPipe => {
            anyhow::Error::new(StdoutClosed)
        }
        Side::Write => anyhow::Error::new(err).context(sink.what.clone()),
        Side::Read => anyhow::Error::new(err).context(source.what.clone()),
    }
}

/// An errno from splice/sendfile that is about a socket or the writing end, not the reader.
fn attribute(err: &io::Error) -> Side {
    match err.kind() {
        io::ErrorKind::BrokenPipe => Side::Write,
        _ => match err.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) => Side::Write,
            _ => Side::Read,
        },
    }
}

/// An errno meaning "this kind of descriptor does not do that": fall back to read/write.
pub(crate) fn splice_refused(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
    )
}

/// What kind of file a descriptor is, which decides the zero-copy path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FdKind {
    Pipe,
    /// A TCP socket (a stream socket of the IPv4 or IPv6 family).
    TcpSocket,
    /// Any other stream socket (Unix).
    Socket,
    Regular,
    CharDevice,
    Other,
}

fn fd_kind(fd: RawFd) -> FdKind {
    // SAFETY: `stat` is plain data that fstat fills in; a zeroed value is a valid start.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for the duration of the call and `stat` is a valid out-pointer.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return FdKind::Other;
    }
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFIFO => FdKind::Pipe,
        // Message sockets (seqpacket, datagram) keep boundaries only through read/write.
        libc::S_IFSOCK if is_message_socket(fd) => FdKind::Other,
        libc::S_IFSOCK if is_ip_socket(fd) => FdKind::TcpSocket,
        libc::S_IFSOCK => FdKind::Socket,
        libc::S_IFREG => FdKind::Regular,
        // A terminal is a character device too, but splice to a tty is refused by the kernel
        // (EINVAL), which the fallback handles; /dev/null takes splice happily.
        libc::S_IFCHR if !is_tty(fd) => FdKind::CharDevice,
        _ => FdKind::Other,
    }
}

/// Whether the socket `fd` is of the IPv4 or IPv6 family.
fn is_ip_socket(fd: RawFd) -> bool {
    socket_int_option(fd, libc::SO_DOMAIN)
        .is_some_and(|domain| matches!(domain, libc::AF_INET | libc::AF_INET6))
}

/// Whether `fd` is a socket whose reads and writes are whole messages (seqpacket, datagram).
fn is_message_socket(fd: RawFd) -> bool {
    socket_int_option(fd, libc::SO_TYPE)
        .is_some_and(|kind| matches!(kind, libc::SOCK_SEQPACKET | libc::SOCK_DGRAM))
}

/// An integer SOL_SOCKET option of `fd` (`None` when it is not a socket).
fn socket_int_option(fd: RawFd, option: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the option writes one int into `value`, whose size `len` states.
    let status = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (status == 0).then_some(value)
}

fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The zero-copy path for a pair of descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Splice,
    SpliceViaPipe,
    Sendfile,
    Copy,
}

fn choose_path(from: RawFd, to: RawFd) -> Path {
    use FdKind::*;
    match (fd_kind(from), fd_kind(to)) {
        // Into TCP, always from a buffer. Pages handed over by sendfile or splice reach a
        // loopback reader as page-sized fragments, and a reader that copies (nc, a proxy, most
        // servers) then spends more than the copy saves here: 1 GiB through tinyproxy went at
        // 794 MB/s written from a buffer against 640 with sendfile (bench/16_proxy.sh), and
        // `cat file | nk dial` at 1517 against 1295 (bench/01_bulk.sh). Unix sockets keep the
        // zero-copy paths: there the pages go to the reader whole.
        (_, TcpSocket) => Path::Copy,
        (Pipe, Socket | Pipe | Regular | CharDevice) => Path::Splice,
        (Socket | TcpSocket, Pipe) => Path::Splice,
        (Regular, Socket | Pipe) => Path::Sendfile,
        (Socket | TcpSocket, Socket | Regular | CharDevice) => Path::SpliceViaPipe,
        _ => Path::Copy,
    }
}

/// splice(2) with `flags` (and SPLICE_F_MOVE), restarted on EINTR; shared with the forwarder.
pub(crate) fn splice(from: RawFd, to: RawFd, len: usize, flags: libc::c_uint) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are open for the call; null offsets make the kernel use
        // the descriptors' own positions (pipes and sockets have none).
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | flags,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
fn make_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Asks for a larger pipe so each splice moves more; a refusal (limits) is harmless.
fn grow_pipe(fd: RawFd) {
    if fd_kind(fd) == FdKind::Pipe {
        // SAFETY: F_SETPIPE_SZ takes an int and only resizes the pipe's buffer.
        unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_CAPACITY) };
    }
}

/// A close-on-exec duplicate of a descriptor.
fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC only creates a new descriptor; the result is checked below.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Whether reading `fd` would return at once (bytes, end of file, or an error waiting).
fn readable_now(fd: RawFd) -> bool {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut pollfd, 1, 0) };
    n != 0
}

/// Waits until `fd` is ready for `events`, for descriptors someone left non-blocking.
fn wait_ready(fd: RawFd, events: libc::c_short) -> io::Result<()> {
    let mut pollfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pollfd, 1, -1) };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn read_retrying(reader: &mut dyn Read, fd: Option<RawFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && fd.is_some() => {
                wait_ready(fd.unwrap_or(-1), libc::POLLIN)?;
            }
            Err(e) => return Err(e),
        }
    }
}

fn write_all_retrying(
    writer: &mut dyn Write,
    fd: Option<RawFd>,
    mut data: &[u8],
) -> io::Result<()> {
    while !data.is_empty() {
        match writer.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && fd.is_some() => {
                wait_ready(fd.unwrap_or(-1), libc::POLLOUT)?;
            }
            Err(e) => return Err(e),
        }
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    /// A sink whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Relays `source` to the peer behind `client`, dropping whatever comes back.
    fn send_only_to(client: TcpStream, source: Source, o: &RelayOptions) -> Result<()> {
        relay(
            Some(source),
            Sink::discard(),
            Remote::from_shared(Arc::new(client), "peer").unwrap(),
            o,
        )
    }

    fn opts() -> RelayOptions {
        RelayOptions {
            half_close: true,
            ..RelayOptions::default()
        }
    }

    /// What `supervise` returns when the directions end in this order.
    fn ending(events: &[Event], o: &RelayOptions) -> Result<Option<u64>> {
        ending_as(events, o, Delivery::Unknown)
    }

    /// [`ending`] on a stream whose delivery reads `delivered`.
    fn ending_as(events: &[Event], o: &RelayOptions, delivered: Delivery) -> Result<Option<u64>> {
        let (tx, rx) = mpsc::channel();
        for Event::Ended(direction, result) in events {
            let result = match result {
                Ok(n) => Ok(*n),
                Err(e) => Err(anyhow!("{e}")),
            };
            tx.send(Event::Ended(*direction, result)).unwrap();
        }
        let watch = SenderWatch {
            gate: Arc::new(Mutex::new(())),
            probe: Probe::Finite,
            policy: AfterPeerEof::UntilEnd,
        };
        let failure = || None;
        let delivery = || delivered;
        supervise(&rx, Some(&watch), (&failure, &delivery), o, &o.counters)
    }

    #[test]
    fn a_peer_eof_after_the_input_ended_still_asks_for_every_byte_to_be_confirmed() {
        // The input ended (and was sent) before the peer's FIN was seen: those bytes may have
        // crossed the FIN and been refused, so the end must confirm them (it did not: a peer
        // that closed at once turned `echo hi | nk dial` into a silent exit 0).
        let o = opts();
        let send_first = [
            Event::Ended(Direction::Send, Ok(3)),
            Event::Ended(Direction::Receive, Ok(0)),
        ];
        assert_eq!(ending(&send_first, &o).unwrap(), Some(0));
        // -q ends the relay while the peer is still open: nothing of its EOF to confirm.
        let mut quick = opts();
        quick.quit_after_eof = Some(Duration::from_millis(1));
        assert_eq!(
            ending(&[Event::Ended(Direction::Send, Ok(3))], &quick).unwrap(),
            None
        );
    }

    #[test]
    fn an_eof_left_by_a_reset_the_sender_took_is_the_reset() {
        // The kernel reports a reset once: when the sending thread's write took it, the
        // receiving thread read an EOF. When that EOF reached the supervisor first (seen
        // once in CI), the reset was said as one "after its EOF", which it was not.
        let o = opts();
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let eof_first = [
            Event::Ended(Direction::Receive, Ok(0)),
            Event::Ended(Direction::Send, Err(anyhow::Error::new(reset))),
        ];
        let err = ending_as(&eof_first, &o, Delivery::Reset).unwrap_err();
        assert!(is_peer_gone(&err), "{err:#}");
        assert!(
            !err.chain().any(|e| e.is::<ResetAfterEof>()),
            "a reset said as after the EOF: {err:#}"
        );
        // A FIN (nothing left unacknowledged) is still an EOF.
        let fin = [
            Event::Ended(Direction::Receive, Ok(0)),
            Event::Ended(Direction::Send, Ok(3)),
        ];
        assert!(ending_as(&fin, &o, Delivery::Pending(3)).is_ok());
    }

    #[test]
    fn half_close_then_answer_is_relayed() {
        let (client, mut server) = pair();
        let peer = thread::spawn(move || {
            let mut request = Vec::new();
            server.read_to_end(&mut request).unwrap();
            server.write_all(b"answer to ").unwrap();
            server.write_all(&request).unwrap();
        });
        let out = Shared::default();
        let source = Source::from_reader(&b"question"[..], "read input");
        let sink = Sink::from_writer(out.clone(), "write output");
        let o = opts();
        relay(
            Some(source),
            sink,
            Remote::from_shared(Arc::new(client), "peer").unwrap(),
            &o,
        )
        .unwrap();
        peer.join().unwrap();
        assert_eq!(&*out.0.lock().unwrap(), b"answer to question");
        assert_eq!(o.counters.sent.load(Ordering::Relaxed), 8);
        assert_eq!(o.counters.received.load(Ordering::Relaxed), 18);
        assert!(o
            .counters
            .summary()
            .starts_with("sent 8 bytes, received 18 bytes in "));
    }

    #[test]
    fn crlf_and_hexdump_apply_to_what_is_sent() {
        let (client, mut server) = pair();
        let peer = thread::spawn(move || {
            let mut request = Vec::new();
            server.read_to_end(&mut request).unwrap();
            request
        });
        let dump = Shared::default();
        let mut o = opts();
        o.crlf = true;
        o.hexdump = Some(Arc::new(Mutex::new(Box::new(dump.clone()))));
        let source = Source::from_reader(&b"a\nb\r\n"[..], "read input");
        send_only_to(client, source, &o).unwrap();
        assert_eq!(peer.join().unwrap(), b"a\r\nb\r\n");
        let text = String::from_utf8(dump.0.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("> 00000000  61 0d 0a 62 0d 0a"), "{text}");
    }

    #[test]
    fn recordings_keep_received_bytes_or_mark_both_directions() {
        let file = Shared::default();
        let plain = Recorder::new(Box::new(file.clone()), "plain", false);
        plain.record(1, Direction::Receive, b"ab");
        plain.record(2, Direction::Send, b"not recorded");
        plain.record(1, Direction::Receive, b"\x00c\n");
        assert_eq!(&*file.0.lock().unwrap(), b"ab\x00c\n");

        let file = Shared::default();
        let both = Recorder::new(Box::new(file.clone()), "both", true);
        both.record(1, Direction::Receive, b"ab");
        both.record(1, Direction::Receive, b"c\nd");
        // Another pump's bytes cut the line: it ends there, the rest is marked anew.
        both.record(2, Direction::Send, b"x\ny\n");
        both.record(1, Direction::Receive, b"e\n");
        let text = String::from_utf8(file.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "< abc\n< d\n> x\n> y\n< e\n");
    }

    #[test]
    fn a_failing_recording_stops_and_the_rest_is_not_tried() {
        struct Full(Arc<AtomicU64>);
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                self.0.fetch_add(1, Ordering::Relaxed);
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let tries = Arc::new(AtomicU64::new(0));
        let recorder = Recorder::new(Box::new(Full(Arc::clone(&tries))), "full", false);
        recorder.record(1, Direction::Receive, b"a");
        recorder.record(1, Direction::Receive, b"b");
        assert_eq!(tries.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn idle_timeout_ends_a_silent_relay() {
        let (client, _server) = pair();
        let (_keep_open, reader) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut o = opts();
        o.idle_timeout = Some(Duration::from_millis(200));
        let source = Source::from_fd(reader, "read input");
        let err = send_only_to(client, source, &o).unwrap_err();
        assert!(err.to_string().contains("idle timeout"), "{err}");
    }

    #[test]
    fn quit_after_eof_ends_when_the_peer_stays_open() {
        let (client, _server) = pair();
        let mut o = opts();
        o.quit_after_eof = Some(Duration::from_millis(100));
        let source = Source::from_reader(&b""[..], "read input");
        send_only_to(client, source, &o).unwrap();
    }

    #[test]
    fn paths_follow_descriptor_kinds() {
        let (reader, writer) = make_pipe().unwrap();
        let (socket, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        let (tcp, _peer) = pair();
        let file = tempfile::tempfile().unwrap();
        let (r, w, s, f) = (
            reader.as_raw_fd(),
            writer.as_raw_fd(),
            socket.as_raw_fd(),
            file.as_raw_fd(),
        );
        assert_eq!(choose_path(r, s), Path::Splice);
        assert_eq!(choose_path(s, w), Path::Splice);
        assert_eq!(choose_path(f, s), Path::Sendfile);
        assert_eq!(choose_path(s, f), Path::SpliceViaPipe);
        assert_eq!(choose_path(s, s), Path::SpliceViaPipe);
        // Into TCP from a buffer; out of TCP still zero-copy.
        let t = tcp.as_raw_fd();
        assert_eq!(choose_path(f, t), Path::Copy);
        assert_eq!(choose_path(r, t), Path::Copy);
        assert_eq!(choose_path(s, t), Path::Copy);
        assert_eq!(choose_path(t, w), Path::Splice);
        assert_eq!(choose_path(t, f), Path::SpliceViaPipe);
    }
}
