//! Delivering what a broken connection still holds for the side that did not break.
//!
//! When one side of a forwarded connection resets (or a TLS side is cut short without its
//! close_notify), the other side must see a reset too: nobody may take a cut stream for a
//! clean end. But a reset at once (SO_LINGER 0) destroys the bytes the forwarder had read
//! from the broken side and not yet delivered: its carrier and the socket's send queue. A
//! TLS server that closes without close_notify (ncat, many HTTP servers) lost a download's
//! tail that way. So the surviving side is handed here with the flow toward it: its carrier
//! is written out, its TLS records flushed, and once its peer has acknowledged every byte
//! (SIOCOUTQ empty; a Unix socket keeps its queue readable after a close, so it is closed at
//! once) it is reset. A peer that takes nothing for [`DRAIN_LIMIT`] is reset anyway, with a
//! line saying how many bytes it did not get; one that reads, however slowly, is drained to
//! the end.
//!
//! Each event loop drains its own connections ([`Drains`], stepped by the loop while it has
//! any): sockets are non-blocking and a step never waits. The survivor's socket is set to
//! reset when closed (SO_LINGER 0) as it is handed over, so however the process ends (a
//! signal, a fatal error in another loop), a draining stream is never closed with a FIN.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::conn::{self, Flow, PipePool};
use super::side::Side;
use crate::net::relay::{tcp_delivery, Delivery};

/// How long a surviving peer has to take what was owed to it.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// How often a loop steps its drains while it has any.
pub const STEP: Duration = Duration::from_millis(2);
/// Connections one loop drains at once; more are reset at once (and said so).
const MAX_JOBS: usize = 1024;

/// One surviving side and the flow that still owes it bytes.
struct Job {
    side: Side,
    flow: Flow,
    /// [`DRAIN_LIMIT`] after the peer last took something.
    deadline: Instant,
    /// What it was still owed then.
    owed: u64,
    /// `#12 127.0.0.1:5000 (client)`: for the line said when it cannot finish.
    what: String,
}

/// The surviving sides a loop is draining.
#[derive(Default)]
pub struct Drains {
    jobs: Vec<Job>,
}

impl std::fmt::Debug for Drains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drains")
            .field("jobs", &self.jobs.len())
            .finish()
    }
}

impl Drains {
    /// Delivers what `flow` holds to `side`, then resets `side` (see the module doc).
    /// Without anything owed (and a peer that has everything), the reset is at once.
    pub fn deliver_then_reset(
        &mut self,
        side: Side,
        mut flow: Flow,
        what: String,
        pool: &mut PipePool,
    ) {
        flow.tap = None;
        // From now on any close of this socket is a reset, even the process's exit.
        let _ = side.socket.set_linger(Some(Duration::ZERO));
        let job = Job {
            side,
            flow,
            deadline: Instant::now() + DRAIN_LIMIT,
            owed: u64::MAX,
            what,
        };
        let Some(job) = step(job, Instant::now(), pool) else {
            return;
        };
        if self.jobs.len() >= MAX_JOBS {
            give_up(job, "too many connections draining at once");
            return;
        }
        self.jobs.push(job);
    }

    /// Whether any side is draining (the loop then wakes every [`STEP`]).
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Moves every drain on as far as it goes without waiting.
    pub fn step_all(&mut self, pool: &mut PipePool) {
        let now = Instant::now();
        let jobs = std::mem::take(&mut self.jobs);
        self.jobs = jobs
            .into_iter()
            .filter_map(|job| step(job, now, pool))
            .collect();
    }

    /// Resets every side still draining, saying what each did not get: the loop stops.
    pub fn abort_all(&mut self) {
        for job in std::mem::take(&mut self.jobs) {
            give_up(job, "nk is stopping");
        }
    }
}

/// Moves a job on as far as it goes without waiting; `None` once its side is reset.
fn step(mut job: Job, now: Instant, pool: &mut PipePool) -> Option<Job> {
    if let Err(err) = job.flow.deliver(&mut job.side, pool) {
        give_up(job, &format!("it failed too ({err})"));
        return None;
    }
    job.side.flush_quietly();
    if !job.flow.pending() && !job.side.wants_flush() {
        match tcp_delivery(job.side.socket.as_raw_fd()) {
            Delivery::Done | Delivery::Unknown => {
                conn::reset(job.side.socket);
                return None;
            }
            Delivery::Reset => {
                give_up(job, "it reset too");
                return None;
            }
            Delivery::Pending(_) => {}
        }
    }
    // A peer that reads, however slowly, keeps its drain going: the limit is on silence.
    let owed = owed_by(&job);
    if owed < job.owed {
        job.owed = owed;
        job.deadline = now + DRAIN_LIMIT;
    }
    if now >= job.deadline {
        give_up(
            job,
            &format!(
                "it took nothing for {}",
                crate::net::deadline::format_duration(DRAIN_LIMIT)
            ),
        );
        return None;
    }
    Some(job)
}

/// What the side has not taken yet: held by its flow, and in its socket's send queue.
fn owed_by(job: &Job) -> u64 {
    let queued = match tcp_delivery(job.side.socket.as_raw_fd()) {
        Delivery::Pending(n) => n as u64,
        _ => 0,
    };
    job.flow.bytes_held() as u64 + queued
}

/// Resets the side now, saying what it did not get.
fn give_up(job: Job, why: &str) {
    let owed = owed_by(&job);
    if owed > 0 {
        crate::log::warn(format_args!(
            "{}: reset with {} it had not taken: {why}",
            job.what,
            crate::log::count(owed, "byte")
        ));
    }
    conn::reset(job.side.socket);
}
