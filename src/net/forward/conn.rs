//! One forwarded connection's state: its two sockets and a [`Flow`] each way.
//!
//! A flow moves bytes from one socket to the other. Its bytes in flight sit in a buffer of
//! [`BUFFER`] bytes, or with `--splice` in a pipe (splice(2): socket → pipe → socket, no copy
//! through user space; the buffer again when splice is refused for this pair of sockets or
//! no pipe can be made). Both come from the [`PipePool`] and go back to it, and either is
//! held only while it has bytes in it: an idle connection costs its two sockets and a few
//! words, nothing more.
//!
//! Why the buffer by default: measured on loopback (Linux 6.18, 1 GiB nc → nk → nc, 9
//! interleaved runs on a quiet machine), copying gave 2060 MB/s against 1449 with splice
//! (haproxy, which copies: 1870), and less CPU in all: with spliced pages the receiving
//! process's share of the CPU doubled (9.7 against 4.0 ticks per 256 MiB), more than the
//! copy splice saves here. Between real NICs splice may win; `--splice` is there for that.
//!
//! A flow reads only when its carrier is empty, so it never holds more than one carrier's
//! worth: a destination that does not read leaves the bytes in the source's socket buffer,
//! and TCP flow control pushes back on the sender. At the source's EOF, once every byte has
//! been written, the destination is half-closed (shutdown(SHUT_WR)); the other flow goes on.
//!
//! Each end is a [`Side`]: a socket, or a TLS connection over one. A flow with TLS at either
//! end takes the buffer (the bytes must pass through rustls); the side reads and writes
//! plaintext and passes the EOF on (close_notify, then the FIN).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::side::Side;

/// Size of the fallback buffer (and what one read asks for).
pub const BUFFER: usize = 64 * 1024;
/// Bytes one splice from a socket asks for: the kernel's default pipe capacity (16 pages), so
/// pipes are made at their default size. Measured against 1 MiB pipes (1 GiB nc -> nk -> nc,
/// 9 runs each, interleaved): the default size was faster (median 1341 against 1186 MB/s):
/// a chunk is whatever the receive queue holds, rarely more than 64 KiB on loopback, and a
/// small pipe keeps the pages in flight few and warm.
const PIPE_CAPACITY: usize = 64 * 1024;
/// Chunks moved per flow per wake-up: one busy connection must not starve the others.
const ROUNDS: usize = 8;

/// A non-blocking pipe: (read end, write end).
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Pipe { read, write })
    }
}

/// Empty pipes kept for the next busy connection, so a burst of transfers does not cost two
/// syscalls per chunk to make and close pipes. Capped: the pool never holds more than
/// [`PipePool::KEEP`] idle pipes (two descriptors each).
#[derive(Debug, Default)]
pub struct PipePool {
    free: Vec<Pipe>,
    /// Idle buffers, for the same reason: a busy copying flow takes one per chunk.
    buffers: Vec<Box<[u8]>>,
}

impl PipePool {
    const KEEP: usize = 32;

    fn take(&mut self) -> io::Result<Pipe> {
        match self.free.pop() {
            Some(pipe) => Ok(pipe),
            None => Pipe::new(),
        }
    }

    /// Only empty pipes come back: a pipe with bytes in it belongs to its flow.
    fn give(&mut self, pipe: Pipe) {
        if self.free.len() < Self::KEEP {
            self.free.push(pipe);
        }
    }

    fn take_buffer(&mut self) -> Box<[u8]> {
        self.buffers
            .pop()
            .unwrap_or_else(|| vec![0u8; BUFFER].into_boxed_slice())
    }

    /// A buffer whose bytes are all written comes back (at most [`PipePool::KEEP`] kept).
    fn give_buffer(&mut self, buf: Box<[u8]>) {
        if self.buffers.len() < Self::KEEP {
            self.buffers.push(buf);
        }
    }
}

/// Where a flow's bytes in flight are.
#[derive(Debug, Default)]
enum Carrier {
    /// Nothing in flight.
    #[default]
    Empty,
    /// `len` bytes in a pipe.
    Pipe { pipe: Pipe, len: usize },
    /// `buf[start..end]` still to write.
    Buffer {
        buf: Box<[u8]>,
        start: usize,
        end: usize,
    },
}

/// What stopped a flow: the source broke, or the destination did.
#[derive(Debug)]
pub enum Broken {
    /// Reading the source failed (a reset, most often).
    Source(io::Error),
    /// Writing the destination failed (a reset, or it closed while bytes were in flight).
    Destination(io::Error),
}

/// One direction of a connection.
#[derive(Debug, Default)]
pub struct Flow {
    carrier: Carrier,
    /// splice(2) was refused for this source (EINVAL and the like): use the buffer.
    no_splice: bool,
    /// The source's EOF was read.
    eof: bool,
    /// The destination was half-closed after the EOF: this flow is done.
    pub shut: bool,
    /// Bytes written to the destination.
    pub bytes: u64,
    /// `-x`/`--pcap`: what is read goes to the recordings too (so never through splice).
    pub tap: Option<super::tap::FlowTap>,
    /// A recording had no room for more: the flow reads nothing until its loop is woken.
    pub held_by_tap: bool,
}

impl Flow {
    /// A flow between these two sides: one with TLS at either end never splices.
    pub fn between(from: &Side, to: &Side, splice: bool) -> Flow {
        Flow {
            no_splice: !splice || from.is_tls() || to.is_tls(),
            ..Flow::default()
        }
    }

    /// Whether bytes read from the source still wait to be written.
    pub fn pending(&self) -> bool {
        !matches!(self.carrier, Carrier::Empty)
    }

    /// How many bytes read from the source still wait to be written.
    pub fn bytes_held(&self) -> usize {
        match &self.carrier {
            Carrier::Empty => 0,
            Carrier::Pipe { len, .. } => *len,
            Carrier::Buffer { start, end, .. } => end - start,
        }
    }

    /// Writes what the flow holds to `to` until it is empty or `to` would block (the
    /// source is done with: nothing more is read).
    pub fn deliver(&mut self, to: &mut Side, pool: &mut PipePool) -> io::Result<()> {
        while self.pending() {
            match self.write_out(to, pool)? {
                0 => break,
                n => self.bytes += n as u64,
            }
        }
        Ok(())
    }

    /// Whether the flow waits for its source to be readable (not while a recording holds
    /// it back: the recording's writer wakes the loop instead).
    pub fn wants_read(&self) -> bool {
        !self.pending() && !self.eof && !self.held_by_tap
    }

    /// Whether the flow waits for its destination to be writable (bytes to write, or the EOF
    /// still to pass on: a TLS close_notify waiting for room).
    pub fn wants_write(&self) -> bool {
        self.pending() || (self.eof && !self.shut)
    }

    /// Moves bytes until a socket would block, the flow is done, or [`ROUNDS`] chunks moved.
    /// Returns whether any byte moved.
    pub fn pump(
        &mut self,
        from: &mut Side,
        to: &mut Side,
        pool: &mut PipePool,
    ) -> Result<bool, Broken> {
        let mut moved = false;
        for _ in 0..ROUNDS {
            if self.pending() {
                match self.write_out(to, pool) {
                    Ok(0) => return Ok(moved),
                    Ok(n) => {
                        moved = true;
                        self.bytes += n as u64;
                        if self.pending() {
                            continue;
                        }
                    }
                    Err(e) => return Err(Broken::Destination(e)),
                }
            }
            if self.eof {
                if !self.shut {
                    // Every byte of this direction is out: pass the FIN on, the other
                    // direction keeps flowing.
                    self.shut = to.close_write().map_err(Broken::Destination)?;
                }
                return Ok(moved);
            }
            match self.read_in(from, pool) {
                Ok(Some(0)) => self.eof = true,
                Ok(Some(_)) => moved = true,
                Ok(None) => return Ok(moved),
                Err(e) => return Err(Broken::Source(e)),
            }
        }
        if self.eof && !self.pending() && !self.shut {
            // The EOF came in the last round: pass it on now. Left for later, the flow would
            // wait for neither reading nor writing, and nothing would wake it again.
            self.shut = to.close_write().map_err(Broken::Destination)?;
        }
        Ok(moved)
    }

    /// Fills the empty carrier from `from`: `Some(0)` at EOF, `None` when nothing is there.
    fn read_in(&mut self, from: &mut Side, pool: &mut PipePool) -> io::Result<Option<usize>> {
        // A tapped flow must see every byte, so it never splices.
        if !self.no_splice && self.tap.is_none() {
            let from = from.socket.as_raw_fd();
            // Out of descriptors for a pipe: this chunk goes through the buffer instead.
            if let Ok(pipe) = pool.take() {
                match splice(from, pipe.write.as_raw_fd(), PIPE_CAPACITY) {
                    Ok(0) => {
                        pool.give(pipe);
                        return Ok(Some(0));
                    }
                    Ok(len) => {
                        self.carrier = Carrier::Pipe { pipe, len };
                        return Ok(Some(len));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        pool.give(pipe);
                        return Ok(None);
                    }
                    Err(e) if crate::net::relay::splice_refused(&e) => {
                        pool.give(pipe);
                        self.no_splice = true;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if let Some(tap) = &self.tap {
            // Read nothing the recordings cannot take yet: the source pushes back instead.
            self.held_by_tap = !tap.has_room();
            if self.held_by_tap {
                return Ok(None);
            }
        }
        let mut buf = pool.take_buffer();
        let end = match from.read_into(&mut buf) {
            Ok(Some(end)) => end,
            other => {
                pool.give_buffer(buf);
                return other;
            }
        };
        // The recordings get what the flow carries: the plaintext of a TLS side.
        if let Some(tap) = &mut self.tap {
            tap.record(&buf[..end]);
        }
        if end > 0 {
            self.carrier = Carrier::Buffer { buf, start: 0, end };
        } else {
            pool.give_buffer(buf);
        }
        Ok(Some(end))
    }

    /// Writes from the carrier to `to`: the bytes written, 0 when `to` would block.
    fn write_out(&mut self, to: &mut Side, pool: &mut PipePool) -> io::Result<usize> {
        let (written, emptied) = match &mut self.carrier {
            Carrier::Empty => return Ok(0),
            Carrier::Pipe { pipe, len } => {
                match splice(pipe.read.as_raw_fd(), to.socket.as_raw_fd(), *len) {
                    Ok(n) => {
                        *len -= n;
                        (n, *len == 0)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                    Err(e) => return Err(e),
                }
            }
            Carrier::Buffer { buf, start, end } => match to.write_from(&buf[*start..*end])? {
                0 => return Ok(0),
                n => {
                    *start += n;
                    (n, start == end)
                }
            },
        };
        if emptied {
            // The carrier goes back (a pipe to the pool, a buffer freed): an idle flow holds
            // neither.
            match std::mem::take(&mut self.carrier) {
                Carrier::Pipe { pipe, .. } => pool.give(pipe),
                Carrier::Buffer { buf, .. } => pool.give_buffer(buf),
                Carrier::Empty => {}
            }
        }
        Ok(written)
    }
}

/// splice(2) without blocking, through the relay's one wrapper (EINTR restarted there).
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    crate::net::relay::splice(from, to, len, libc::SPLICE_F_NONBLOCK)
}

/// Closes a socket with a reset (SO_LINGER 0): the peer must see that the stream was cut,
/// not take it for a clean end. A Unix socket has no reset: it is closed (its peer sees a
/// reset only if this end had bytes it never read).
pub fn reset(socket: Socket) {
    let _ = socket.set_linger(Some(Duration::ZERO));
    drop(socket);
}

/// How a connection ended, for its `-v` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Both sides sent their FIN and every byte was delivered.
    Fin,
    /// One side reset (or failed); the other was reset in turn.
    Reset(String),
    /// `-i`: no byte moved for that long; both sides were reset.
    Timeout,
    /// The target refused, did not answer within `-w`, or could not be reached.
    Refused(String),
    /// SIGINT/SIGTERM: both sides were reset.
    Interrupted,
    /// `nk listen --proxy`: the client's request was answered with a refusal (bad request,
    /// credentials, rules), or it never finished one.
    Rejected(String),
}

impl End {
    /// The word for JSON and the line: fin, reset, timeout, refused, interrupted.
    pub fn word(&self) -> &'static str {
        match self {
            End::Fin => "fin",
            End::Reset(_) => "reset",
            End::Timeout => "timeout",
            End::Refused(_) => "refused",
            End::Interrupted => "interrupted",
            End::Rejected(_) => "rejected",
        }
    }

    /// What happened, in words (empty when the word says it all).
    pub fn detail(&self) -> &str {
        match self {
            End::Reset(why) | End::Refused(why) | End::Rejected(why) => why,
            _ => "",
        }
    }
}

/// A client and, once connected, its target.
#[derive(Debug)]
pub struct Conn {
    /// 1 for the first client accepted, 2 for the next...
    pub id: u64,
    /// The client's address, as shown.
    pub client_name: String,
    /// The target's address once connected (the one that answered), or as given.
    pub target_name: String,
    /// The accepted socket (with TLS on it for `--tls-listen`).
    pub client: Side,
    /// The target: once reached, or (a plain side) while the loop's own non-blocking connect
    /// is under way (`connecting`).
    pub target: Option<Side>,
    /// The address the loop is connecting `target` to, until the connection is made.
    pub connecting: Option<std::net::SocketAddr>,
    /// When the connector was asked for the target (`-w` counts from here, TLS included).
    pub connect_started: Option<Instant>,
    /// What goes to the target first, raw (the PROXY header).
    pub preface: Vec<u8>,
    /// Client → target.
    pub up: Flow,
    /// Target → client.
    pub down: Flow,
    /// What each socket is registered for in epoll (`None`: not registered).
    pub registered: [Option<crate::net::poller::Interest>; 2],
    /// When it was accepted.
    pub opened: Instant,
    /// When a byte last moved (for `-i`).
    pub last_active: Instant,
    /// `nk listen --proxy`: the client's request, while it is being read.
    pub negotiation: Option<Box<Negotiation>>,
    /// `nk listen --proxy`: what the client asked for, once it has (its reply is owed).
    pub request: Option<crate::net::proxy::server::Request>,
    /// The client was sent a refusal (or closed before its request was complete): it is
    /// closed with a FIN, so the reply reaches it.
    pub answered: bool,
    /// The side that did not break when the other one did: it gets what it is owed before
    /// its reset (`drain`).
    pub survivor: Option<Survivor>,
}

/// Which side of a connection outlived the other's reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivor {
    Client,
    Target,
}

/// A proxy client's handshake in progress: what it sent that is not consumed yet (at most
/// [`crate::net::proxy::server::REQUEST_CAP`] bytes), and by when it must be over.
#[derive(Debug)]
pub struct Negotiation {
    /// The protocol state.
    pub handshake: crate::net::proxy::server::Handshake,
    /// Bytes received and not yet consumed.
    pub received: Vec<u8>,
    /// When the request must be complete.
    pub deadline: Instant,
}

impl Conn {
    /// A client waiting for its target.
    pub fn new(id: u64, client: Side, client_name: String, target_name: String) -> Conn {
        let now = Instant::now();
        Conn {
            id,
            client_name,
            target_name,
            client,
            target: None,
            connecting: None,
            connect_started: None,
            preface: Vec::new(),
            up: Flow::default(),
            down: Flow::default(),
            registered: [None, None],
            opened: now,
            last_active: now,
            negotiation: None,
            request: None,
            answered: false,
            survivor: None,
        }
    }

    /// Both directions have passed their FIN on: the connection is over, cleanly.
    pub fn finished(&self) -> bool {
        self.up.shut && self.down.shut
    }

    /// The target is reached: the flows between it and the client can be set up.
    /// `splice`: move plain bytes with splice(2) instead of the buffer (`--splice`).
    pub fn attach(&mut self, target: Side, splice: bool) {
        self.up = Flow::between(&self.client, &target, splice);
        self.down = Flow::between(&target, &self.client, splice);
        self.target = Some(target);
    }
}
