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
//! once) it is reset. A peer that takes nothing for [`DRAIN_LIMIT`] is reset anyway, with
//! a line saying how many bytes it did not get.
//!
//! One thread does this for every loop: sockets are non-blocking and a step never waits, so
//! the thread polls its few jobs every [`STEP`] while it has any and sleeps otherwise. When
//! the process ends ([`abort_all`]), what is still draining is reset, never closed: a plain
//! close at exit would end those streams with a FIN.

use std::os::fd::AsRawFd;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::conn::{self, Flow, PipePool};
use super::side::Side;
use crate::net::relay::{tcp_delivery, Delivery};

/// How long a surviving peer has to take what was owed to it.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// How often the jobs are stepped while there are any.
const STEP: Duration = Duration::from_millis(2);
/// Connections draining at once; more are reset at once (and said so).
const MAX_JOBS: usize = 1024;

/// One surviving side and the flow that still owes it bytes.
struct Job {
    side: Side,
    flow: Flow,
    deadline: Instant,
    /// `#12 127.0.0.1:5000 (client)`: for the line said when it cannot finish.
    what: String,
}

#[derive(Default)]
struct Drainer {
    jobs: Mutex<Vec<Job>>,
    more: Condvar,
}

/// The drainer, once its thread runs (`None`: it could not be started).
static DRAINER: OnceLock<Option<&'static Drainer>> = OnceLock::new();

fn drainer() -> Option<&'static Drainer> {
    *DRAINER.get_or_init(|| {
        let drainer: &'static Drainer = Box::leak(Box::default());
        match std::thread::Builder::new()
            .name("forward-drain".into())
            .spawn(move || run(drainer))
        {
            Ok(_) => Some(drainer),
            Err(err) => {
                crate::log::warn(format_args!(
                    "cannot start the drain thread ({err}): a reset cannot wait for delivery"
                ));
                None
            }
        }
    })
}

/// Delivers what `flow` holds to `side`, then resets `side` (see the module doc). Without
/// anything owed (and a peer that has everything), the reset is at once.
pub fn deliver_then_reset(side: Side, mut flow: Flow, what: String) {
    flow.tap = None;
    let mut pool = PipePool::default();
    let job = Job {
        side,
        flow,
        deadline: Instant::now() + DRAIN_LIMIT,
        what,
    };
    let Some(job) = step(job, Instant::now(), &mut pool) else {
        return;
    };
    let Some(drainer) = drainer() else {
        give_up(job, "no drain thread");
        return;
    };
    let mut jobs = drainer.jobs.lock().unwrap_or_else(|e| e.into_inner());
    if jobs.len() >= MAX_JOBS {
        drop(jobs);
        give_up(job, "too many connections draining at once");
        return;
    }
    jobs.push(job);
    drainer.more.notify_one();
}

/// Resets every side still draining: the process is ending.
pub fn abort_all() {
    let Some(Some(drainer)) = DRAINER.get() else {
        return;
    };
    let jobs = std::mem::take(&mut *drainer.jobs.lock().unwrap_or_else(|e| e.into_inner()));
    for job in jobs {
        give_up(job, "nk is stopping");
    }
}

fn run(drainer: &'static Drainer) {
    let mut pool = PipePool::default();
    loop {
        {
            let mut jobs = drainer.jobs.lock().unwrap_or_else(|e| e.into_inner());
            while jobs.is_empty() {
                jobs = drainer.more.wait(jobs).unwrap_or_else(|e| e.into_inner());
            }
            let now = Instant::now();
            let pending = std::mem::take(&mut *jobs);
            jobs.extend(
                pending
                    .into_iter()
                    .filter_map(|job| step(job, now, &mut pool)),
            );
        }
        std::thread::sleep(STEP);
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

/// Resets the side now, saying what it did not get.
fn give_up(job: Job, why: &str) {
    let queued = match tcp_delivery(job.side.socket.as_raw_fd()) {
        Delivery::Pending(n) => n as u64,
        _ => 0,
    };
    let owed = job.flow.bytes_held() as u64 + queued;
    if owed > 0 {
        crate::log::warn(format_args!(
            "{}: reset with {} it had not taken: {why}",
            job.what,
            crate::log::count(owed, "byte")
        ));
    }
    conn::reset(job.side.socket);
}
