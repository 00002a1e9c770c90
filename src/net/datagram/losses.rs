//! Lost datagrams, reported on stderr without flooding it.
//!
//! cli.md asks for "lossless or loud", and UDP has no reset to tell a peer that its datagram
//! went nowhere: when a server cannot serve a datagram (its queue is full, its program could
//! not start or ran too long, its reply could not be sent), stderr is the only place that can
//! say so, hence without `-v`. But a burst loses datagrams by the thousand, and a line each
//! would bury everything else on stderr and slow down a server that is already behind. So each
//! kind of loss (the same words and reason) gets at most one line per [`REPORT_EVERY`]: the
//! first loss is reported at once, later ones are counted and reported together, with their
//! number and their peers, once the interval is over. Every loss is counted in some line: the
//! server calls [`LossLog::flush_due`] on every turn of its loop (which wakes at least every
//! tick), and [`LossLog::flush_all`] when it ends.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use socket2::SockAddr;

use crate::net::addr::display_sockaddr;

/// At most one line per kind of loss this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Kinds of loss tracked at once; a kind beyond (a pathological variety of errors) is
/// reported at once, line by line, rather than forgotten.
const MAX_KINDS: usize = 64;
/// Distinct peers counted per line; beyond, the line says "over N".
const MAX_PEERS: usize = 1024;

/// What happened to the datagrams: the first words of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// Received, never given to a program: "dropped N datagrams from PEER".
    Dropped,
    /// Given to a program, but no reply went back: "no reply to N datagrams from PEER".
    Unanswered,
    /// Ours (stdin's), not sent: "could not send N datagrams to PEER".
    Unsent,
}

/// One kind of loss: reports of the same kind and reason are counted together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    kind: LossKind,
    reason: String,
}

impl Loss {
    /// A datagram dropped before its program: `reason` says why.
    pub fn dropped(reason: impl Into<String>) -> Loss {
        Loss {
            kind: LossKind::Dropped,
            reason: reason.into(),
        }
    }

    /// A datagram whose program gave no reply through no choice of its own.
    pub fn unanswered(reason: impl Into<String>) -> Loss {
        Loss {
            kind: LossKind::Unanswered,
            reason: reason.into(),
        }
    }

    /// A datagram of ours that could not be sent.
    pub fn unsent(reason: impl Into<String>) -> Loss {
        Loss {
            kind: LossKind::Unsent,
            reason: reason.into(),
        }
    }
}

/// The text of one report (without `nk: warning: `): `count` datagrams, the first from
/// `first_peer`, with `other_peers` more distinct peers (`more_peers`: at least that many).
pub fn line(
    loss: &Loss,
    count: u64,
    first_peer: &str,
    other_peers: usize,
    more_peers: bool,
) -> String {
    let (verb, preposition) = match loss.kind {
        LossKind::Dropped => ("dropped", "from"),
        LossKind::Unanswered => ("no reply to", "from"),
        LossKind::Unsent => ("could not send", "to"),
    };
    let datagrams = if count == 1 {
        "a datagram".to_string()
    } else {
        format!("{count} datagrams")
    };
    let others = match (other_peers, more_peers) {
        (0, false) => String::new(),
        (1, false) => " and 1 other peer".to_string(),
        (n, false) => format!(" and {n} other peers"),
        (n, true) => format!(" and over {n} other peers"),
    };
    format!(
        "{verb} {datagrams} {preposition} {first_peer}{others}: {}",
        loss.reason
    )
}

/// Losses counted and reported, shared by the threads of a server.
#[derive(Debug, Default)]
pub struct LossLog {
    table: Mutex<Table>,
    /// Some loss is counted but not yet reported: lets [`LossLog::flush_due`] skip the lock
    /// on the common path, once per datagram.
    pending: AtomicBool,
}

impl LossLog {
    /// Counts one lost datagram and reports it now, or with the next line of its kind.
    pub fn record(&self, loss: Loss, peer: &SockAddr) {
        let line = {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            let line = table.record(loss, peer, Instant::now());
            self.pending.store(table.pending(), Ordering::Relaxed);
            line
        };
        // Written outside the lock: a slow stderr delays this thread only.
        if let Some(line) = line {
            crate::log::warn(format_args!("{line}"));
        }
    }

    /// Reports the losses counted whose interval is over.
    pub fn flush_due(&self) {
        if self.pending.load(Ordering::Relaxed) {
            self.flush(false);
        }
    }

    /// Whether some loss is counted and not yet reported: a loop that sleeps must wake in
    /// time to call [`LossLog::flush_due`].
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// Reports every loss counted and not yet reported (at the end).
    pub fn flush_all(&self) {
        self.flush(true);
    }

    fn flush(&self, all: bool) {
        let lines = {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            let lines = table.flush(Instant::now(), all);
            self.pending.store(table.pending(), Ordering::Relaxed);
            lines
        };
        for line in lines {
            crate::log::warn(format_args!("{line}"));
        }
    }
}

/// The losses of one kind since its last line.
#[derive(Debug)]
struct Tally {
    loss: Loss,
    /// When this kind's last line was written.
    last_line: Instant,
    /// Losses counted since then.
    count: u64,
    /// The first of their peers, named in the line.
    first: Option<SockAddr>,
    /// Their distinct peers (the first included), at most [`MAX_PEERS`].
    peers: HashSet<SockAddr>,
    /// A peer did not fit in `peers`.
    more_peers: bool,
}

impl Tally {
    fn add(&mut self, peer: &SockAddr) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(peer.clone());
        }
        if !self.peers.contains(peer) {
            if self.peers.len() < MAX_PEERS {
                self.peers.insert(peer.clone());
            } else {
                self.more_peers = true;
            }
        }
    }

    /// The line for what was counted, which starts a new interval.
    fn take_line(&mut self, now: Instant) -> String {
        let first = self
            .first
            .take()
            .map_or_else(String::new, |p| display_sockaddr(&p));
        let text = line(
            &self.loss,
            self.count,
            &first,
            self.peers.len().saturating_sub(1),
            self.more_peers,
        );
        self.count = 0;
        self.peers.clear();
        self.more_peers = false;
        self.last_line = now;
        text
    }

    fn due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_line) >= REPORT_EVERY
    }
}

/// The rate-limiting state, apart from locks and clocks so that it can be tested.
#[derive(Debug, Default)]
struct Table {
    tallies: Vec<Tally>,
}

impl Table {
    /// Counts a loss at `now`; returns its line if it is to be written now.
    fn record(&mut self, loss: Loss, peer: &SockAddr, now: Instant) -> Option<String> {
        self.prune(now);
        if let Some(tally) = self.tallies.iter_mut().find(|t| t.loss == loss) {
            tally.add(peer);
            return tally.due(now).then(|| tally.take_line(now));
        }
        let mut tally = Tally {
            loss,
            last_line: now,
            count: 0,
            first: None,
            peers: HashSet::new(),
            more_peers: false,
        };
        tally.add(peer);
        let text = tally.take_line(now);
        if self.tallies.len() < MAX_KINDS {
            self.tallies.push(tally);
        }
        Some(text)
    }

    /// The lines of the kinds whose interval is over (`all`: of every kind with a count).
    fn flush(&mut self, now: Instant, all: bool) -> Vec<String> {
        let lines = self
            .tallies
            .iter_mut()
            .filter(|t| t.count > 0 && (all || t.due(now)))
            .map(|t| t.take_line(now))
            .collect();
        self.prune(now);
        lines
    }

    /// Forgets the kinds with nothing counted whose interval is over: their next loss is
    /// reported at once anyway.
    fn prune(&mut self, now: Instant) {
        self.tallies.retain(|t| t.count > 0 || !t.due(now));
    }

    fn pending(&self) -> bool {
        self.tallies.iter().any(|t| t.count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SockAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()
    }

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn lines_name_the_count_the_peers_and_the_reason() {
        let full = Loss::dropped("64 programs running, queue of 1024 full");
        assert_eq!(
            line(&full, 1, "127.0.0.1:5000", 0, false),
            "dropped a datagram from 127.0.0.1:5000: 64 programs running, queue of 1024 full"
        );
        assert_eq!(
            line(&full, 37, "127.0.0.1:5000", 0, false),
            "dropped 37 datagrams from 127.0.0.1:5000: 64 programs running, queue of 1024 full"
        );
        assert_eq!(
            line(&full, 37, "[::1]:5000", 1, false),
            "dropped 37 datagrams from [::1]:5000 and 1 other peer: \
             64 programs running, queue of 1024 full"
        );
        assert_eq!(
            line(&full, 5000, "127.0.0.1:5000", 1023, true),
            "dropped 5000 datagrams from 127.0.0.1:5000 and over 1023 other peers: \
             64 programs running, queue of 1024 full"
        );
        assert_eq!(
            line(
                &Loss::unanswered("sh -c stopped after 10s"),
                2,
                "127.0.0.1:9",
                1,
                false
            ),
            "no reply to 2 datagrams from 127.0.0.1:9 and 1 other peer: sh -c stopped after 10s"
        );
        assert_eq!(
            line(
                &Loss::unsent("Network is unreachable"),
                1,
                "10.0.0.1:53",
                0,
                false
            ),
            "could not send a datagram to 10.0.0.1:53: Network is unreachable"
        );
    }

    #[test]
    fn a_burst_is_one_line_then_one_line_a_second_counting_every_loss() {
        let start = Instant::now();
        let full = Loss::dropped("queue full");
        let mut table = Table::default();
        // The first loss is reported at once.
        assert_eq!(
            table.record(full.clone(), &peer(1), start).as_deref(),
            Some("dropped a datagram from 127.0.0.1:1: queue full")
        );
        // The next ones within the second are counted, not written.
        for (i, port) in [2, 3, 2, 4].into_iter().enumerate() {
            assert_eq!(
                table.record(full.clone(), &peer(port), at(start, 100 + i as u64)),
                None
            );
        }
        assert!(table.pending());
        assert!(table.flush(at(start, 999), false).is_empty());
        // Once the second is over, one line counts them all.
        assert_eq!(
            table.flush(at(start, 1000), false),
            ["dropped 4 datagrams from 127.0.0.1:2 and 2 other peers: queue full"]
        );
        assert!(!table.pending());
        // A loss during the next interval waits for it to end, or for the end of the server.
        assert_eq!(table.record(full.clone(), &peer(5), at(start, 1500)), None);
        assert_eq!(
            table.flush(at(start, 1600), true),
            ["dropped a datagram from 127.0.0.1:5: queue full"]
        );
        // After a quiet interval, the next loss is reported at once again.
        assert!(table.flush(at(start, 5000), false).is_empty());
        assert_eq!(
            table.record(full, &peer(6), at(start, 5000)).as_deref(),
            Some("dropped a datagram from 127.0.0.1:6: queue full")
        );
    }

    #[test]
    fn a_loss_after_its_interval_is_written_with_those_counted() {
        let start = Instant::now();
        let failed = Loss::unanswered("run /nope: No such file or directory (os error 2)");
        let mut table = Table::default();
        assert!(table.record(failed.clone(), &peer(1), start).is_some());
        assert_eq!(table.record(failed.clone(), &peer(1), at(start, 10)), None);
        assert_eq!(
            table.record(failed, &peer(1), at(start, 1010)).as_deref(),
            Some(
                "no reply to 2 datagrams from 127.0.0.1:1: \
                 run /nope: No such file or directory (os error 2)"
            )
        );
    }

    #[test]
    fn kinds_are_limited_separately() {
        let start = Instant::now();
        let mut table = Table::default();
        assert!(table
            .record(Loss::dropped("queue full"), &peer(1), start)
            .is_some());
        assert!(table
            .record(Loss::unanswered("sh -c stopped after 10s"), &peer(1), start)
            .is_some());
        assert!(table
            .record(Loss::dropped("queue full"), &peer(1), start)
            .is_none());
        assert_eq!(table.flush(at(start, 1000), false).len(), 1);
    }

    #[test]
    fn too_many_kinds_are_reported_line_by_line_and_peers_are_capped() {
        let start = Instant::now();
        let mut table = Table::default();
        for i in 0..MAX_KINDS + 3 {
            let loss = Loss::unanswered(format!("error {i}"));
            assert!(table.record(loss.clone(), &peer(1), start).is_some());
            if i >= MAX_KINDS {
                // Untracked: every loss of it is a line of its own.
                assert!(table.record(loss, &peer(1), start).is_some());
            }
        }
        assert_eq!(table.tallies.len(), MAX_KINDS);
        let full = Loss::dropped("queue full");
        let mut table = Table::default();
        for port in 0..=MAX_PEERS as u16 + 10 {
            table.record(full.clone(), &peer(port), start);
        }
        assert_eq!(
            table.flush(at(start, 1000), false),
            [format!(
                "dropped {} datagrams from 127.0.0.1:1 and over {} other peers: queue full",
                MAX_PEERS + 10,
                MAX_PEERS - 1
            )]
        );
    }
}
