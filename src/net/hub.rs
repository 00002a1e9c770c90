//! The hub of a multi-client listener without `-e`: stdin to every client, every client to
//! stdout (`listen -k`), or clients to each other (`--broker`, `--chat`).
//!
//! Each client has a bounded queue of shared chunks, drained into its socket by its own relay,
//! so one slow client never stalls the others: when its queue holds more than
//! [`QUEUE_LIMIT`] bytes it is dropped (its socket shut down), with a `-v` note. Output to
//! stdout is written whole lines at a time under one lock, so lines from different clients
//! never interleave; a partial line is held (up to [`MAX_HELD_LINE`]) until its newline
//! arrives or its client ends.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::info;
use crate::net::relay::Readiness;

/// Bytes a client may have waiting before it is dropped as too slow.
pub const QUEUE_LIMIT: usize = 4 << 20;
/// The longest partial line held back from stdout; a longer one is written as it is.
pub const MAX_HELD_LINE: usize = 64 * 1024;
/// Read size for stdin in broadcast mode.
const STDIN_CHUNK: usize = 64 * 1024;

#[derive(Debug, Default)]
struct QueueState {
    chunks: VecDeque<Arc<[u8]>>,
    /// Bytes of the front chunk already read.
    offset: usize,
    bytes: usize,
    closed: bool,
}

/// One client's pending bytes, filled by the hub and read by the client's relay.
#[derive(Debug, Default)]
pub struct ClientQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

impl ClientQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a chunk; `false` when the client is over its limit (it must be dropped).
    fn push(&self, chunk: &Arc<[u8]>) -> bool {
        let mut state = self.lock();
        if state.closed {
            return true;
        }
        if state.bytes + chunk.len() > QUEUE_LIMIT {
            return false;
        }
        state.bytes += chunk.len();
        state.chunks.push_back(Arc::clone(chunk));
        self.ready.notify_all();
        true
    }

    /// No more data: the reader sees EOF once the queue is drained.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

impl Readiness for ClientQueue {
    fn wait(&self) {
        let mut state = self.lock();
        while state.chunks.is_empty() && !state.closed {
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn pending(&self) -> bool {
        let state = self.lock();
        !state.chunks.is_empty() || state.closed
    }
}

/// The read side of a [`ClientQueue`], the source of a client's relay.
#[derive(Debug)]
pub struct QueueReader(pub Arc<ClientQueue>);

impl Read for QueueReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let queue = &self.0;
        let mut state = queue.lock();
        loop {
            if let Some(front) = state.chunks.front().cloned() {
                let start = state.offset;
                let n = buf.len().min(front.len() - start);
                buf[..n].copy_from_slice(&front[start..start + n]);
                state.offset += n;
                state.bytes -= n;
                if state.offset == front.len() {
                    state.chunks.pop_front();
                    state.offset = 0;
                }
                return Ok(n);
            }
            if state.closed {
                return Ok(0);
            }
            state = queue.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What the hub does with what clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `listen -k`: clients to stdout, stdin to every client.
    Broadcast,
    /// `--broker`: each client's data to every other client.
    Broker,
    /// `--chat`: broker with `<user N>` prefixes, join/leave notices, control bytes escaped.
    Chat,
}

struct Member {
    queue: Arc<ClientQueue>,
    /// Drops the client: shuts its socket down.
    kick: Box<dyn Fn() + Send + Sync>,
    peer: String,
}

/// The clients of one listener and what connects them.
pub struct Hub {
    mode: Mode,
    members: Mutex<BTreeMap<u64, Member>>,
    stdin_done: AtomicBool,
    stdout: Mutex<Option<File>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("mode", &self.mode).finish()
    }
}

impl Hub {
    /// A hub; in broadcast mode it writes to (a duplicate of) stdout.
    pub fn new(mode: Mode) -> io::Result<Arc<Hub>> {
        let stdout = match mode {
            Mode::Broadcast => Some(File::from(io::stdout().as_fd().try_clone_to_owned()?)),
            _ => None,
        };
        Ok(Arc::new(Hub {
            mode,
            members: Mutex::new(BTreeMap::new()),
            stdin_done: AtomicBool::new(false),
            stdout: Mutex::new(stdout),
        }))
    }

    fn members(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Member>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds client `id`; returns its queue. `kick` must shut its socket down.
    pub fn join(&self, id: u64, peer: &str, kick: Box<dyn Fn() + Send + Sync>) -> Arc<ClientQueue> {
        let queue = Arc::new(ClientQueue::default());
        if self.mode == Mode::Broadcast && self.stdin_done.load(Ordering::SeqCst) {
            queue.close();
        }
        if self.mode == Mode::Chat {
            let others: Vec<String> = self
                .members()
                .keys()
                .map(|n| format!("<user {n}>"))
                .collect();
            let present = if others.is_empty() {
                "nobody".to_string()
            } else {
                others.join(", ")
            };
            let welcome: Arc<[u8]> =
                format!("<announce> you are <user {id}>; already connected: {present}.\n")
                    .into_bytes()
                    .into();
            queue.push(&welcome);
            self.send(
                format!("<announce> {peer} is connected as <user {id}>.\n").as_bytes(),
                None,
            );
        }
        self.members().insert(
            id,
            Member {
                queue: Arc::clone(&queue),
                kick,
                peer: peer.to_string(),
            },
        );
        queue
    }

    /// The queue of member `id`, while it is a member.
    pub fn queue(&self, id: u64) -> Option<Arc<ClientQueue>> {
        self.members().get(&id).map(|m| Arc::clone(&m.queue))
    }

    /// Removes client `id` (its connection is over).
    pub fn leave(&self, id: u64) {
        let left = self.members().remove(&id);
        if let (Some(member), Mode::Chat) = (left, self.mode) {
            member.queue.close();
            self.send(
                format!("<announce> <user {id}> is disconnected.\n").as_bytes(),
                None,
            );
        }
    }

    /// Queues `data` for every client but `except`; clients over their limit are dropped.
    pub fn send(&self, data: &[u8], except: Option<u64>) {
        if data.is_empty() {
            return;
        }
        let chunk: Arc<[u8]> = Arc::from(data);
        let mut members = self.members();
        let slow: Vec<u64> = members
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .filter(|(_, member)| !member.queue.push(&chunk))
            .map(|(id, _)| *id)
            .collect();
        for id in slow {
            if let Some(member) = members.remove(&id) {
                info!(
                    "dropping {} (client {id}): it could not keep up ({} MiB queued)",
                    member.peer,
                    QUEUE_LIMIT >> 20
                );
                member.queue.close();
                (member.kick)();
            }
        }
    }

    /// Stdin has ended: every client's queue ends once drained, and new clients start ended.
    pub fn close_input(&self) {
        self.stdin_done.store(true, Ordering::SeqCst);
        for member in self.members().values() {
            member.queue.close();
        }
    }

    /// Whether clients' data goes to stdout and stdin to the clients (`listen -k`).
    pub fn is_broadcast(&self) -> bool {
        self.mode == Mode::Broadcast
    }

    /// Broadcast mode without stdin to send (`--send-only` makes no sense for it, and broker
    /// and chat read none): clients start with nothing to receive from stdin.
    pub fn close_input_if_broadcast(&self) {
        if self.is_broadcast() {
            self.close_input();
        }
    }

    /// Broadcast mode: reads stdin until EOF and queues it for every client.
    pub fn pump_stdin(self: &Arc<Hub>) -> io::Result<()> {
        let mut stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
        let mut buf = vec![0u8; STDIN_CHUNK];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.send(&buf[..n], None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_input();
                    return Err(e);
                }
            }
        }
        self.close_input();
        Ok(())
    }

    /// The writer a client's received bytes go to.
    pub fn writer_for(self: &Arc<Hub>, id: u64) -> HubWriter {
        HubWriter {
            hub: Arc::clone(self),
            id,
            held: Vec::new(),
        }
    }

    fn write_stdout(&self, bytes: &[u8]) -> io::Result<()> {
        let mut stdout = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
        match stdout.as_mut() {
            Some(out) => out.write_all(bytes),
            None => Ok(()),
        }
    }
}

/// Where one client's bytes go: stdout (whole lines), or the other clients.
#[derive(Debug)]
pub struct HubWriter {
    hub: Arc<Hub>,
    id: u64,
    /// A partial line not yet written (broadcast and chat).
    held: Vec<u8>,
}

impl HubWriter {
    /// Takes the complete lines out of `held` (all of it when `everything`).
    fn complete_lines(&mut self, everything: bool) -> Vec<u8> {
        let last_newline = self.held.iter().rposition(|&b| b == b'\n');
        let cut = match last_newline {
            _ if everything => self.held.len(),
            Some(i) => i + 1,
            // One line longer than the cap: written as it is rather than held without bound.
            None if self.held.len() > MAX_HELD_LINE => self.held.len(),
            None => 0,
        };
        self.held.drain(..cut).collect()
    }

    fn deliver(&mut self, lines: Vec<u8>) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        match self.hub.mode {
            Mode::Broadcast => self.hub.write_stdout(&lines),
            Mode::Broker => {
                self.hub.send(&lines, Some(self.id));
                Ok(())
            }
            Mode::Chat => {
                let mut out = Vec::with_capacity(lines.len() + 16);
                for line in lines.split_inclusive(|&b| b == b'\n') {
                    out.extend_from_slice(format!("<user {}> ", self.id).as_bytes());
                    escape_line(line, &mut out);
                }
                self.hub.send(&out, Some(self.id));
                Ok(())
            }
        }
    }
}

impl Write for HubWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.hub.mode == Mode::Broker {
            self.hub.send(buf, Some(self.id));
            return Ok(buf.len());
        }
        self.held.extend_from_slice(buf);
        let lines = self.complete_lines(false);
        self.deliver(lines)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for HubWriter {
    /// The client has ended: its last partial line is delivered too (every byte read is
    /// written).
    fn drop(&mut self) {
        let rest = self.complete_lines(true);
        let _ = self.deliver(rest);
    }
}

/// Chat lines: control bytes other than tab shown as `\xNN`, a CR before the LF dropped, and
/// the line always ended with LF.
fn escape_line(line: &[u8], out: &mut Vec<u8>) {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    for &byte in body {
        if (byte < 0x20 && byte != b'\t') || byte == 0x7f {
            out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
        } else {
            out.push(byte);
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(reader: &mut QueueReader) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn queues_deliver_in_order_and_end_when_closed() {
        let queue = Arc::new(ClientQueue::default());
        assert!(!queue.pending());
        queue.push(&Arc::from(&b"hello "[..]));
        queue.push(&Arc::from(&b"world"[..]));
        assert!(queue.pending());
        queue.close();
        assert_eq!(drain(&mut QueueReader(Arc::clone(&queue))), b"hello world");
    }

    #[test]
    fn a_full_queue_refuses_more() {
        let queue = ClientQueue::default();
        let big: Arc<[u8]> = vec![0u8; QUEUE_LIMIT].into();
        assert!(queue.push(&big));
        assert!(!queue.push(&Arc::from(&b"x"[..])));
    }

    #[test]
    fn broker_sends_to_others_only_and_drops_the_slow() {
        let hub = Hub::new(Mode::Broker).unwrap();
        let kicked = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&kicked);
        let a = hub.join(1, "a", Box::new(|| {}));
        let b = hub.join(2, "b", Box::new(move || flag.store(true, Ordering::SeqCst)));
        hub.writer_for(1).write_all(b"from a").unwrap();
        assert!(!a.pending());
        assert!(b.pending());
        let big = vec![0u8; QUEUE_LIMIT];
        hub.writer_for(1).write_all(&big).unwrap();
        assert!(
            kicked.load(Ordering::SeqCst),
            "client 2 should have been dropped"
        );
    }

    #[test]
    fn chat_prefixes_escapes_and_announces() {
        let hub = Hub::new(Mode::Chat).unwrap();
        let first = hub.join(1, "127.0.0.1:1000", Box::new(|| {}));
        let second = hub.join(2, "127.0.0.1:2000", Box::new(|| {}));
        {
            let mut writer = hub.writer_for(2);
            writer.write_all(b"hi \x1b[31mthere\r\nand").unwrap();
        }
        hub.leave(2);
        first.close();
        second.close();
        let seen = String::from_utf8(drain(&mut QueueReader(first))).unwrap();
        assert_eq!(
            seen,
            "<announce> you are <user 1>; already connected: nobody.\n\
             <announce> 127.0.0.1:2000 is connected as <user 2>.\n\
             <user 2> hi \\x1b[31mthere\n\
             <user 2> and\n\
             <announce> <user 2> is disconnected.\n"
        );
        let own = String::from_utf8(drain(&mut QueueReader(second))).unwrap();
        assert_eq!(
            own,
            "<announce> you are <user 2>; already connected: <user 1>.\n"
        );
    }

    #[test]
    fn broadcast_holds_partial_lines() {
        let hub = Hub::new(Mode::Broker).unwrap();
        let mut writer = HubWriter {
            hub,
            id: 9,
            held: Vec::new(),
        };
        writer.held.extend_from_slice(b"one\ntw");
        assert_eq!(writer.complete_lines(false), b"one\n");
        assert_eq!(writer.held, b"tw");
        assert_eq!(writer.complete_lines(true), b"tw");
        // Past the cap, whole lines still go out whole; the partial one stays held.
        writer.held = [vec![b'a'; MAX_HELD_LINE], b"\nb".to_vec()].concat();
        assert_eq!(writer.complete_lines(false).len(), MAX_HELD_LINE + 1);
        assert_eq!(writer.held, b"b");
        writer.held = vec![b'x'; MAX_HELD_LINE + 1];
        assert_eq!(writer.complete_lines(false).len(), MAX_HELD_LINE + 1);
    }
}
