//! The hub of a multi-client listener without `-e`: stdin to every client, every client to
//! stdout (`listen -k`), or clients to each other (`--broker`, `--chat`).
//!
//! In broker and chat mode the operator (the listener's own stdin and stdout) is one more
//! participant, as in ncat: what stdin delivers goes to every client (in chat as `<user 0>`,
//! ncat's `<user0>`), and what clients send to one another is shown on stdout, whole lines at
//! a time (ncat shows nothing there; nk does so the operator can watch). The operator's
//! stdout has a queue like a client's, drained by its own thread, so the accept loop never
//! waits on it; it is never dropped, even with `--drop-slow`: a stdout that does not keep up
//! slows the room down, as any reader does by default.
//!
//! Each client has a queue of shared chunks, drained into its socket by its own relay. Nothing
//! given to the hub is lost: by default a queue holding more than [`QUEUE_LIMIT`] bytes makes
//! its sender wait (back-pressure, as ncat does: stdin is read no faster than the slowest
//! client takes it, and a client's bytes to the others no faster than they read), and stdin
//! is not read at all while no client is connected to receive it. With `--drop-slow` such a
//! client is dropped instead, with a reset (so it cannot mistake the cut for the end) and a
//! stderr line. Output to stdout is written whole lines at a time under one lock, so lines
//! from different clients never interleave; a partial line is held (up to `--max-line`,
//! [`MAX_HELD_LINE`] by default) until its newline arrives or its client ends, and a longer
//! line is written in pieces with a stderr line saying so.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::net::relay::Readiness;

/// How far past [`QUEUE_LIMIT`] chat's join/leave notices may take a queue when slow clients
/// are waited for rather than dropped.
const ANNOUNCE_SLACK: usize = 1 << 20;
/// Bytes a client may have waiting before it is dropped as too slow.
pub const QUEUE_LIMIT: usize = 4 << 20;
/// The longest partial line held back from stdout by default (`--max-line`); a longer one is
/// written in pieces, and stderr says so.
pub const MAX_HELD_LINE: usize = 64 * 1024;
/// Read size for stdin.
const STDIN_CHUNK: usize = 64 * 1024;
/// The member id of the operator (stdin/stdout) in broker and chat mode; clients count from 1.
pub const OPERATOR: u64 = 0;

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
    /// Signalled when the reader takes bytes (a sender waiting for room) or the queue closes.
    room: Condvar,
}

impl ClientQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a chunk. `false` when it would take the queue past `limit` (the client is too
    /// slow and is to be dropped); `None`: no limit here (the sender waits for room after).
    fn push(&self, chunk: &Arc<[u8]>, limit: Option<usize>) -> bool {
        let mut state = self.lock();
        if state.closed {
            return true;
        }
        if limit.is_some_and(|limit| state.bytes + chunk.len() > limit) {
            return false;
        }
        state.bytes += chunk.len();
        state.chunks.push_back(Arc::clone(chunk));
        self.ready.notify_all();
        true
    }

    /// Back-pressure: waits while the queue holds more than [`QUEUE_LIMIT`] bytes (and is
    /// open).
    fn wait_for_room(&self) {
        let mut state = self.lock();
        while state.bytes > QUEUE_LIMIT && !state.closed {
            state = self.room.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// No more data: the reader sees EOF once the queue is drained.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.room.notify_all();
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
                if state.bytes <= QUEUE_LIMIT {
                    queue.room.notify_all();
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
    /// Drops the client: resets its connection.
    kick: Box<dyn Fn() + Send + Sync>,
    peer: String,
}

/// How a hub treats clients that fall behind and long lines.
#[derive(Debug, Clone, Copy)]
pub struct HubOptions {
    /// `--drop-slow`: drop (reset) a client more than [`QUEUE_LIMIT`] behind instead of
    /// making its senders wait.
    pub drop_slow: bool,
    /// `--max-line`: the longest partial line held back so lines never interleave.
    pub max_line: usize,
    /// Broker and chat: show what clients send on stdout (off with `--send-only`: the
    /// operator only talks).
    pub show_on_stdout: bool,
}

impl Default for HubOptions {
    fn default() -> HubOptions {
        HubOptions {
            drop_slow: false,
            max_line: MAX_HELD_LINE,
            show_on_stdout: false,
        }
    }
}

/// The clients of one listener and what connects them.
pub struct Hub {
    mode: Mode,
    options: HubOptions,
    members: Mutex<BTreeMap<u64, Member>>,
    /// Signalled when a client joins (stdin waits for one before it is read).
    joined: Condvar,
    stdin_done: AtomicBool,
    stdout: Mutex<Option<File>>,
    /// Broker and chat: what the operator's stdout is to show, drained by the stdout thread.
    shown: Option<Arc<ClientQueue>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("mode", &self.mode).finish()
    }
}

impl Hub {
    /// A hub; in broadcast mode it writes to (a duplicate of) stdout, in broker and chat mode
    /// (with `show_on_stdout`) a thread of its own does.
    pub fn new(mode: Mode, options: HubOptions) -> io::Result<Arc<Hub>> {
        let duplicate = || io::stdout().as_fd().try_clone_to_owned().map(File::from);
        let (stdout, shown) = match mode {
            Mode::Broadcast => (Some(duplicate()?), None),
            _ if options.show_on_stdout => {
                let queue = Arc::new(ClientQueue::default());
                let out = duplicate()?;
                let reader = QueueReader(Arc::clone(&queue));
                std::thread::Builder::new()
                    .name("stdout".into())
                    .spawn(move || show_until_closed(reader, out))?;
                (None, Some(queue))
            }
            _ => (None, None),
        };
        Ok(Arc::new(Hub {
            mode,
            options,
            members: Mutex::new(BTreeMap::new()),
            joined: Condvar::new(),
            stdin_done: AtomicBool::new(false),
            stdout: Mutex::new(stdout),
            shown,
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
            queue.push(&welcome, None);
            self.announce(format!("<announce> {peer} is connected as <user {id}>.\n").as_bytes());
        }
        self.members().insert(
            id,
            Member {
                queue: Arc::clone(&queue),
                kick,
                peer: peer.to_string(),
            },
        );
        self.joined.notify_all();
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
            self.announce(format!("<announce> <user {id}> is disconnected.\n").as_bytes());
        }
    }

    /// Queues `data` for every client but `except`. Then, by default, waits until each of
    /// them is back within [`QUEUE_LIMIT`] (back-pressure on whoever called); with
    /// `--drop-slow`, a client already over the limit is dropped instead.
    pub fn send(&self, data: &[u8], except: Option<u64>) {
        let limit = self.options.drop_slow.then_some(QUEUE_LIMIT);
        let receivers = self.queue_for_all(data, except, limit);
        if !self.options.drop_slow {
            for queue in receivers {
                queue.wait_for_room();
            }
        }
    }

    /// Chat notices, queued from the accept loop, which must never wait for a slow client.
    /// They may take a queue [`ANNOUNCE_SLACK`] past its limit (by default a slow client is
    /// waited for, not dropped); a client that is further behind still is dropped, with a
    /// reset and a stderr line, so that memory stays bounded.
    fn announce(&self, data: &[u8]) {
        let limit = match self.options.drop_slow {
            true => QUEUE_LIMIT,
            false => QUEUE_LIMIT + ANNOUNCE_SLACK,
        };
        self.queue_for_all(data, None, Some(limit));
        if let Some(shown) = &self.shown {
            shown.push(&Arc::from(data), Some(QUEUE_LIMIT + ANNOUNCE_SLACK));
        }
    }

    /// Broker and chat: whole lines for the operator's stdout. Waits while more than
    /// [`QUEUE_LIMIT`] is waiting there (the operator is never dropped, so a stuck stdout
    /// holds its senders back, as a slow client does by default).
    fn show(&self, lines: &[u8]) {
        if let (Some(shown), false) = (&self.shown, lines.is_empty()) {
            shown.push(&Arc::from(lines), None);
            shown.wait_for_room();
        }
    }

    /// At SIGINT/SIGTERM: gives the stdout thread up to `limit` to write what it was given.
    pub fn flush_shown(&self, limit: std::time::Duration) {
        let Some(shown) = &self.shown else { return };
        let deadline = std::time::Instant::now() + limit;
        while shown.lock().bytes > 0 && !shown.lock().closed {
            if std::time::Instant::now() >= deadline {
                crate::log::warn(format_args!(
                    "{} bytes for stdout were not written before the end",
                    shown.lock().bytes
                ));
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Queues `data` for every member but `except`; returns their queues. A member that it
    /// would take past `limit` is dropped (reset, and said on stderr) instead.
    fn queue_for_all(
        &self,
        data: &[u8],
        except: Option<u64>,
        limit: Option<usize>,
    ) -> Vec<Arc<ClientQueue>> {
        if data.is_empty() {
            return Vec::new();
        }
        let chunk: Arc<[u8]> = Arc::from(data);
        let mut members = self.members();
        let mut receivers = Vec::with_capacity(members.len());
        let mut slow = Vec::new();
        for (id, member) in members.iter() {
            if Some(*id) == except {
                continue;
            }
            if member.queue.push(&chunk, limit) {
                receivers.push(Arc::clone(&member.queue));
            } else {
                slow.push(*id);
            }
        }
        for id in slow {
            if let Some(member) = members.remove(&id) {
                let why = match self.options.drop_slow {
                    true => "--drop-slow",
                    false => "even the room's notices no longer fit",
                };
                crate::log::warn(format_args!(
                    "dropped {} (client {id}) with a reset: it fell more than {} MiB behind \
                     ({why}); the bytes queued for it were not delivered",
                    member.peer,
                    QUEUE_LIMIT >> 20
                ));
                member.queue.close();
                (member.kick)();
            }
        }
        receivers
    }

    /// Blocks until at least one client is connected (or stdin's reader should give up
    /// because input is closed): stdin is not read while nobody can receive it.
    fn wait_for_a_member(&self) {
        let mut members = self.members();
        while members.is_empty() {
            members = self.joined.wait(members).unwrap_or_else(|e| e.into_inner());
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

    /// Reads stdin until EOF and queues it for every client, never while no client is
    /// connected (what it read would have nowhere to go). In broadcast mode stdin's EOF ends
    /// every client's input; in broker and chat mode the operator just falls silent (the
    /// clients still talk to one another), its last partial line delivered.
    /// `stdin` is a duplicate of fd 0 made by the caller before clients are accepted: made
    /// here, it could fail for want of a descriptor (EMFILE under a low `ulimit -n`), and
    /// then no client would ever get the EOF of its input.
    pub fn pump_stdin(self: &Arc<Hub>, mut stdin: File) -> io::Result<()> {
        let mut buf = vec![0u8; STDIN_CHUNK];
        // Broker and chat: the operator speaks through a writer like a client's, so chat
        // lines are held whole, prefixed and escaped the same way.
        let mut operator = (!self.is_broadcast()).then(|| self.writer_for(OPERATOR));
        let result = loop {
            self.wait_for_a_member();
            match stdin.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => match &mut operator {
                    Some(writer) => {
                        if let Err(e) = writer.write_all(&buf[..n]) {
                            break Err(e);
                        }
                    }
                    None => self.send(&buf[..n], None),
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        drop(operator);
        self.close_input_if_broadcast();
        result
    }

    /// The writer a client's received bytes go to.
    pub fn writer_for(self: &Arc<Hub>, id: u64) -> HubWriter {
        let peer = match id {
            OPERATOR => Some("stdin".to_string()),
            _ => self.members().get(&id).map(|m| m.peer.clone()),
        };
        HubWriter {
            hub: Arc::clone(self),
            id,
            peer: peer.unwrap_or_default(),
            held: Vec::new(),
            cut_reported: false,
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
    /// The client's address, for the stderr line about a cut line.
    peer: String,
    /// A partial line not yet written (broadcast and chat).
    held: Vec<u8>,
    /// A line of this client's was already said to be cut (said once per client).
    cut_reported: bool,
}

impl HubWriter {
    /// Takes the complete lines out of `held` (all of it when `everything`).
    fn complete_lines(&mut self, everything: bool) -> Vec<u8> {
        let last_newline = self.held.iter().rposition(|&b| b == b'\n');
        let cut = match last_newline {
            _ if everything => self.held.len(),
            Some(i) => i + 1,
            // One line longer than the cap: written in pieces rather than held without bound,
            // and said, since another client's line may now fall inside it.
            None if self.held.len() > self.hub.options.max_line => {
                if !self.cut_reported {
                    self.cut_reported = true;
                    crate::log::warn(format_args!(
                        "{} (client {}): a line longer than {} bytes is written in pieces; other \
                         clients' lines may fall between them (--max-line)",
                        self.peer, self.id, self.hub.options.max_line
                    ));
                }
                self.held.len()
            }
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
            // The clients get the bytes as they come, in `write`.
            Mode::Broker => {
                self.hub.show(&lines);
                Ok(())
            }
            Mode::Chat => {
                let mut out = Vec::with_capacity(lines.len() + 16);
                for line in lines.split_inclusive(|&b| b == b'\n') {
                    out.extend_from_slice(format!("<user {}> ", self.id).as_bytes());
                    escape_line(line, &mut out);
                }
                // Shown before it is sent: whatever a client answers comes after it on stdout.
                if self.id != OPERATOR {
                    self.hub.show(&out);
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
            // Clients get a broker's bytes as they come; only stdout needs whole lines, and
            // they are shown first, so whatever a client answers comes after them there.
            if self.hub.shown.is_some() && self.id != OPERATOR {
                self.held.extend_from_slice(buf);
                let lines = self.complete_lines(false);
                self.deliver(lines)?;
            }
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

/// The stdout thread of broker and chat mode: writes what the hub shows until the hub ends.
/// A stdout that fails (its reader gone, a full disk) is said once on stderr; the clients go
/// on talking, and what would have been shown is dropped (it reached the clients).
fn show_until_closed(mut reader: QueueReader, mut out: File) {
    let queue = Arc::clone(&reader.0);
    let mut buf = vec![0u8; STDIN_CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Err(e) = out.write_all(&buf[..n]) {
            let left = queue.lock().bytes;
            crate::log::warn(format_args!(
                "write stdout: {e}; clients' data is no longer shown there ({} bytes not \
                 shown; the clients still get everything)",
                n + left
            ));
            queue.close();
            // Nothing will read what is left: free it.
            let mut state = queue.lock();
            state.chunks.clear();
            state.bytes = 0;
            state.offset = 0;
            return;
        }
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
        queue.push(&Arc::from(&b"hello "[..]), None);
        queue.push(&Arc::from(&b"world"[..]), None);
        assert!(queue.pending());
        queue.close();
        assert_eq!(drain(&mut QueueReader(Arc::clone(&queue))), b"hello world");
    }

    #[test]
    fn a_full_queue_refuses_more() {
        let queue = ClientQueue::default();
        let big: Arc<[u8]> = vec![0u8; QUEUE_LIMIT].into();
        assert!(queue.push(&big, Some(QUEUE_LIMIT)));
        assert!(!queue.push(&Arc::from(&b"x"[..]), Some(QUEUE_LIMIT)));
        // Without dropping, the queue takes it (its sender then waits for room).
        assert!(queue.push(&Arc::from(&b"x"[..]), None));
    }

    #[test]
    fn broker_sends_to_others_only_and_drops_the_slow() {
        let dropping = HubOptions {
            drop_slow: true,
            ..HubOptions::default()
        };
        let hub = Hub::new(Mode::Broker, dropping).unwrap();
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
        let hub = Hub::new(Mode::Chat, HubOptions::default()).unwrap();
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
        let hub = Hub::new(Mode::Broker, HubOptions::default()).unwrap();
        let mut writer = HubWriter {
            hub,
            id: 9,
            peer: "peer".into(),
            held: Vec::new(),
            cut_reported: false,
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
        assert!(writer.cut_reported, "a cut line is said on stderr");
    }

    #[test]
    fn a_join_notice_does_not_drop_a_slow_chat_client_by_default() {
        let hub = Hub::new(Mode::Chat, HubOptions::default()).unwrap();
        let kicked = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&kicked);
        let slow = hub.join(
            1,
            "slow",
            Box::new(move || flag.store(true, Ordering::SeqCst)),
        );
        let full: Arc<[u8]> = vec![b'x'; QUEUE_LIMIT].into();
        assert!(slow.push(&full, None));
        hub.join(2, "newcomer", Box::new(|| {}));
        assert!(
            !kicked.load(Ordering::SeqCst),
            "back-pressure is the default: a notice may not drop a client"
        );
    }

    #[test]
    fn a_sender_waits_for_a_slow_reader_and_loses_nothing() {
        let hub = Hub::new(Mode::Broker, HubOptions::default()).unwrap();
        let slow = hub.join(2, "slow", Box::new(|| {}));
        hub.join(1, "sender", Box::new(|| {}));
        let total = 3 * QUEUE_LIMIT;
        let sender = {
            let hub = Arc::clone(&hub);
            std::thread::spawn(move || {
                let mut writer = hub.writer_for(1);
                for _ in 0..total / 65536 {
                    writer.write_all(&[7u8; 65536]).unwrap();
                }
            })
        };
        let mut reader = QueueReader(Arc::clone(&slow));
        let mut got = 0;
        let mut buf = vec![0u8; 65536];
        while got < total {
            got += reader.read(&mut buf).unwrap();
            // The sender never runs more than one chunk past the limit.
            assert!(slow.lock().bytes <= QUEUE_LIMIT + 65536);
        }
        sender.join().unwrap();
        assert_eq!(got, total);
    }
}
