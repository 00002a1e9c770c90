//! Where a recording's bytes go: a bounded queue and a writer thread of its own, so that a
//! reader of `-x -` that stops reading (a pager left alone, a terminal paused with ^S, a
//! full pipe) or a slow disk never blocks an event loop.
//!
//! Blocking writes in the loop froze the whole forwarder on a stalled stdout: no client was
//! accepted, `-i` never fired, SIGTERM waited. Now the loops only queue. When a recording has
//! [`SOFT_LIMIT`] bytes waiting, tapped flows stop reading ([`Sink::has_room`] says no) and
//! their sockets push back on the peers through TCP flow control, exactly as a slow target
//! does; the loop goes on with everything else, and the writer wakes the loops once the queue
//! is down to [`RESUME_BELOW`]. Events (a connection's opening, FIN, reset, end) are queued
//! even when the data is held, so what the loop does is always recorded; only if the queue
//! reaches [`HARD_LIMIT`] does the recording stop, said on stderr. The recording stays
//! complete: no data block is ever dropped to make room.
//!
//! At exit, [`finish_all`] gives the writers a bounded time to empty their queues and says
//! how many bytes of which recording were never written.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::net::forward::connector::Waker;

/// Data waiting beyond this holds the tapped flows back.
pub const SOFT_LIMIT: usize = 4 * 1024 * 1024;
/// The held flows resume once the queue is down to this.
pub const RESUME_BELOW: usize = 1024 * 1024;
/// Events alone (openings, FINs, ends of connections that did not wait) past this mean the
/// reader has gone for good: the recording stops.
pub const HARD_LIMIT: usize = 64 * 1024 * 1024;
/// How much the writer hands the kernel at once.
const WRITE_BUFFER: usize = 256 * 1024;

/// Every sink of the process, for [`finish_all`].
static SINKS: Mutex<Vec<Arc<Queue>>> = Mutex::new(Vec::new());

/// A recording's destination, as the loops see it.
pub struct Sink {
    queue: Arc<Queue>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.queue.name)
            .finish()
    }
}

/// What the loops and the writer share.
struct Queue {
    /// How the user named it, for the failure line: `-x stdout`, `--pcap db.pcapng`.
    name: String,
    state: Mutex<State>,
    /// The writer waits here for bytes.
    filled: Condvar,
    /// [`finish_all`] waits here for the writer to be done.
    emptied: Condvar,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes in `chunks` and in the writer's hands.
    queued: usize,
    /// A write failed, or the reader fell [`HARD_LIMIT`] behind: nothing more is queued.
    stopped: bool,
    /// Bytes the recording lost once stopped (said at exit).
    lost: u64,
    /// A loop found no room: the writer wakes every loop once there is.
    held: bool,
    wakers: Vec<Arc<Waker>>,
    /// When the writer last got a chunk out: a connection held back by a recording that is
    /// still being read is not idle (`-i`).
    progress: Option<Instant>,
}

impl Sink {
    /// Creates `path` (truncating it); `-` is stdout. Failing is a usage error. Starts the
    /// writer thread.
    pub fn create(flag: &str, path: &str) -> Result<Sink> {
        use std::os::unix::fs::FileTypeExt;
        // A FIFO's open waits for a reader: done by the writer thread, so the forwarder
        // listens meanwhile (its tapped connections wait for the reader, as socat does).
        let fifo = path != "-" && std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
        let (out, name): (Opener, String) = if path == "-" {
            let out: Box<dyn Write + Send> = Box::new(std::io::stdout());
            (Box::new(move || Ok(out)), format!("{flag} stdout"))
        } else if fifo {
            let owned = path.to_string();
            let open = move || -> std::io::Result<Box<dyn Write + Send>> {
                Ok(Box::new(
                    std::fs::OpenOptions::new().write(true).open(&owned)?,
                ))
            };
            (Box::new(open), format!("{flag} {path}"))
        } else {
            let file = File::create(path)
                .map_err(|e| crate::exit::usage(format!("create {flag} file {path}: {e}")))?;
            let out: Box<dyn Write + Send> = Box::new(file);
            (Box::new(move || Ok(out)), format!("{flag} {path}"))
        };
        if fifo {
            crate::info!("{name} is a FIFO: the recording starts once a reader opens it");
        }
        let queue = Arc::new(Queue {
            name,
            state: Mutex::new(State::default()),
            filled: Condvar::new(),
            emptied: Condvar::new(),
        });
        let writer = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("forward-tap".into())
            .spawn(move || match out() {
                Ok(out) => write_out(&writer, BufWriter::with_capacity(WRITE_BUFFER, out)),
                Err(err) => failed(&writer, &err),
            })
            .map_err(|e| anyhow::anyhow!("start the {} writer: {e}", queue.name))?;
        SINKS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&queue));
        Ok(Sink { queue })
    }

    /// Queues `bytes` whole (the file never ends inside them unless the writer fails), or
    /// nothing once the recording has stopped.
    pub fn write(&self, bytes: &[u8]) {
        let mut state = self.queue.lock();
        if state.stopped {
            state.lost += bytes.len() as u64;
            return;
        }
        if state.queued + bytes.len() > HARD_LIMIT {
            crate::log::warn(format_args!(
                "{}: {} MiB of the recording wait for a reader that takes nothing; the \
                 recording stops here, forwarding goes on",
                self.queue.name,
                HARD_LIMIT >> 20
            ));
            state.stopped = true;
            state.lost += bytes.len() as u64;
            wake_held(&mut state);
            return;
        }
        state.queued += bytes.len();
        state.chunks.push_back(bytes.to_vec());
        self.queue.filled.notify_one();
    }

    /// Whether a flow may read more for this recording; when not, the loops that asked are
    /// woken once there is room (through the wakers given to [`Sink::wake_on_room`]).
    pub fn has_room(&self) -> bool {
        let mut state = self.queue.lock();
        if state.stopped || state.queued < SOFT_LIMIT {
            return true;
        }
        state.held = true;
        false
    }

    /// Wakes `waker` whenever flows held back by this recording may read again.
    pub fn wake_on_room(&self, waker: Arc<Waker>) {
        self.queue.lock().wakers.push(waker);
    }

    /// When the writer last got bytes out (`None`: never yet).
    pub fn progress(&self) -> Option<Instant> {
        self.queue.lock().progress
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Opens a recording's destination (in the writer thread: a FIFO's open waits).
type Opener = Box<dyn FnOnce() -> std::io::Result<Box<dyn Write + Send>> + Send>;

/// The writer failed (`err`): said once; what it holds and what comes is lost, the loops are
/// woken (their flows no longer wait for it).
fn failed(queue: &Queue, err: &std::io::Error) {
    crate::log::warn(format_args!(
        "write {}: {err}; the recording stops here, forwarding goes on",
        queue.name
    ));
    let mut state = queue.lock();
    state.stopped = true;
    state.lost += state.queued as u64;
    state.queued = 0;
    state.chunks.clear();
    wake_held(&mut state);
    queue.emptied.notify_all();
}

/// Wakes the loops whose flows wait for room (room came, or the recording stopped).
fn wake_held(state: &mut State) {
    if std::mem::take(&mut state.held) {
        for waker in &state.wakers {
            waker.wake();
        }
    }
}

/// The writer thread: takes everything queued, writes it, flushes when the queue is empty
/// (the dump is read while it grows), and so on until the process ends.
fn write_out(queue: &Queue, mut out: BufWriter<Box<dyn Write + Send>>) {
    loop {
        let chunks = {
            let mut state = queue.lock();
            while state.chunks.is_empty() {
                state = queue.filled.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            std::mem::take(&mut state.chunks)
        };
        let mut result = Ok(());
        for chunk in &chunks {
            result = out.write_all(chunk);
            if result.is_err() {
                break;
            }
            // Counted chunk by chunk: a slow reader frees room (and shows progress) as it
            // reads, not only once the whole batch is out.
            let mut state = queue.lock();
            state.queued -= chunk.len();
            state.progress = Some(Instant::now());
            if state.queued <= RESUME_BELOW {
                wake_held(&mut state);
            }
        }
        let mut state = queue.lock();
        if result.is_ok() && state.chunks.is_empty() {
            drop(state);
            result = out.flush();
            state = queue.lock();
        }
        if let Err(err) = result {
            drop(state);
            failed(queue, &err);
            return;
        }
        if state.queued <= RESUME_BELOW {
            wake_held(&mut state);
        }
        if state.queued == 0 {
            queue.emptied.notify_all();
        }
    }
}

/// At exit: waits (until `limit` at most, for every recording together) for the writers to
/// empty their queues, and says what each recording did not get.
pub fn finish_all(limit: Duration) {
    let until = Instant::now() + limit;
    let sinks: Vec<Arc<Queue>> = SINKS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for queue in sinks {
        let mut state = queue.lock();
        while state.queued > 0 && !state.stopped {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = queue
                .emptied
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let unwritten = state.lost + state.queued as u64;
        if unwritten > 0 {
            crate::log::warn(format_args!(
                "{}: {} of the recording never written{}",
                queue.name,
                crate::log::count(unwritten, "byte"),
                if state.stopped {
                    String::new()
                } else {
                    format!(
                        " (not taken within {} of the end)",
                        crate::net::deadline::format_duration(limit)
                    )
                }
            ));
        }
    }
}
