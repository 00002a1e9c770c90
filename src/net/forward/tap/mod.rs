//! Recording what forwarded connections carry: `-x` writes a hex dump ([`hexdump`]),
//! `--pcap` a pcapng capture with each connection as one TCP stream ([`pcap`]).
//!
//! How it plugs into the engine: once a connection's target answers, [`attach`] records the
//! opening and gives both flows a [`FlowTap`]. A tapped flow never splices (the bytes must be
//! seen): it reads into its buffer and hands every chunk, and its EOF, to [`FlowTap::record`]
//! before writing it on. The engine tells the tap which side reset ([`reset_by`]) and when the
//! connection is over ([`ended`]). Nothing else in the engine knows a tap exists.
//!
//! The loops never write a recording themselves: they queue its bytes for the recording's
//! own writer thread ([`sink`]), bounded. The recording is complete: when a reader of `-x -`
//! (or a disk) falls behind, the tapped flows stop reading until it catches up, which slows
//! their forwarding as a slow target would, while the loop goes on accepting, timing out
//! (`-i`) and stopping (SIGTERM) as usual. A write that fails is said once on stderr; that
//! recording stops there and the forwarding goes on. The writer flushes whenever its queue
//! empties (the dump is read live); the capture only ever holds whole blocks, so even a
//! killed forwarder leaves a file tshark reads. At exit the writers get a bounded time to
//! finish, and what they could not write is said.

pub mod hexdump;
pub mod pcap;
pub mod sink;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use anyhow::Result;

use super::conn::{Conn, End};
use super::connector::Waker;
pub use crate::wire::synthetic_tcp::Side;
use sink::Sink;

/// The recordings asked for, shared by the engine and the flows it tapped.
pub type SharedTap = Arc<Mutex<Tap>>;

/// `-x` and `--pcap`, either or both.
#[derive(Debug)]
pub struct Tap {
    dump: Option<hexdump::Dump>,
    capture: Option<pcap::Capture>,
}

impl Tap {
    /// Creates the files (`-x -` is stdout). A file that cannot be made is a usage error,
    /// before any traffic. `None` when neither is asked for.
    pub fn open(dump: Option<&str>, capture: Option<&str>) -> Result<Option<Tap>> {
        if dump.is_none() && capture.is_none() {
            return Ok(None);
        }
        Ok(Some(Tap {
            dump: dump.map(hexdump::Dump::create).transpose()?,
            capture: capture.map(pcap::Capture::create).transpose()?,
        }))
    }

    /// The listener's TCP port: the port a Unix target is shown on in the capture.
    pub fn set_listen_port(&mut self, port: Option<u16>) {
        if let Some(capture) = &mut self.capture {
            capture.listen_port = port;
        }
    }

    /// Shares it between the engine and the flows.
    pub fn shared(self) -> SharedTap {
        Arc::new(Mutex::new(self))
    }

    fn sinks(&self) -> impl Iterator<Item = &Sink> {
        let dump = self.dump.as_ref().map(hexdump::Dump::sink);
        let capture = self.capture.as_ref().map(pcap::Capture::sink);
        dump.into_iter().chain(capture)
    }
}

/// When the slowest recording last got bytes out: a connection it holds back is busy, not
/// idle, while that moves (`None`: some recording has written nothing yet).
pub fn progress(tap: &SharedTap) -> Option<std::time::Instant> {
    lock(tap).sinks().map(Sink::progress).min().flatten()
}

/// Wakes `waker` (an event loop's) when flows held back by a recording may read again.
pub fn wake_on_room(tap: &SharedTap, waker: &Arc<Waker>) {
    for sink in lock(tap).sinks() {
        sink.wake_on_room(Arc::clone(waker));
    }
}

fn lock(tap: &SharedTap) -> MutexGuard<'_, Tap> {
    // A panic elsewhere while holding it leaves nothing half-written that matters more than
    // the recording going on.
    tap.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records the opening of `conn`, whose `target` just answered; the taps of its two flows
/// (client → target, target → client).
pub fn attach(tap: &SharedTap, conn: &Conn) -> (FlowTap, FlowTap) {
    let client_addr = conn
        .client
        .socket
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket());
    let target_addr = conn
        .target
        .as_ref()
        .and_then(|t| t.socket.peer_addr().ok())
        .and_then(|a| a.as_socket());
    let now = SystemTime::now();
    {
        let mut tap = lock(tap);
        if let Some(dump) = &mut tap.dump {
            dump.opened(conn.id, &conn.client_name, &conn.target_name, now);
        }
        if let Some(capture) = &mut tap.capture {
            capture.opened(conn.id, client_addr, target_addr, now);
        }
    }
    (
        FlowTap::new(tap, conn.id, Side::Client),
        FlowTap::new(tap, conn.id, Side::Target),
    )
}

/// `from` (`"client"` or `"target"`, as the engine names them) reset connection `conn`.
pub fn reset_by(tap: &SharedTap, conn: &Conn, from: &str) {
    if conn.up.tap.is_none() {
        return;
    }
    let from = if from == "client" {
        Side::Client
    } else {
        Side::Target
    };
    let now = SystemTime::now();
    let mut tap = lock(tap);
    if let Some(dump) = &mut tap.dump {
        dump.flag(conn.id, from, "RST", now);
    }
    if let Some(capture) = &mut tap.capture {
        capture.reset(conn.id, from, now);
    }
}

/// `conn` is over, as `end` says: the dump's last line, and in the capture the resets the
/// forwarder sent if it cut the connection itself (`-i`, SIGTERM).
pub fn ended(tap: &SharedTap, conn: &Conn, end: &End) {
    if conn.up.tap.is_none() {
        return;
    }
    let now = SystemTime::now();
    let mut tap = lock(tap);
    if let Some(dump) = &mut tap.dump {
        dump.ended(conn.id, end, conn.up.bytes, conn.down.bytes, now);
    }
    if let Some(capture) = &mut tap.capture {
        capture.ended(conn.id, *end == End::Fin, now);
    }
}

/// One direction of a tapped connection: what its flow read goes to the recordings.
#[derive(Debug)]
pub struct FlowTap {
    tap: SharedTap,
    conn: u64,
    from: Side,
    /// Bytes recorded so far this way: the dump's offsets.
    offset: u64,
}

impl FlowTap {
    fn new(tap: &SharedTap, conn: u64, from: Side) -> FlowTap {
        FlowTap {
            tap: Arc::clone(tap),
            conn,
            from,
            offset: 0,
        }
    }

    /// Whether every recording has room for what the flow would read next; when not, the
    /// flow waits (its loop is woken once there is room).
    pub fn has_room(&self) -> bool {
        lock(&self.tap).sinks().all(Sink::has_room)
    }

    /// A chunk the flow read from its source, or its EOF (an empty chunk).
    pub fn record(&mut self, chunk: &[u8]) {
        let now = SystemTime::now();
        let mut tap = lock(&self.tap);
        if let Some(dump) = &mut tap.dump {
            if chunk.is_empty() {
                dump.flag(self.conn, self.from, "FIN", now);
            } else {
                dump.data(self.conn, self.from, self.offset, chunk, now);
            }
        }
        if let Some(capture) = &mut tap.capture {
            if chunk.is_empty() {
                capture.fin(self.conn, self.from, now);
            } else {
                capture.data(self.conn, self.from, chunk, now);
            }
        }
        self.offset += chunk.len() as u64;
    }
}

/// Microseconds since the Unix epoch (0 for a clock before it).
fn micros(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(u128::from(u64::MAX)) as u64)
}
