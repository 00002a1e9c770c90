//! `-e/-c` on a datagram server: a program per datagram, a bounded number at once, and a
//! bounded queue for the datagrams beyond.
//!
//! Every program is a process and threads, so a flood must not start them without limit: at
//! most [`MAX_RUNNING`] run at once. Yet a burst of more peers than that is ordinary (socat,
//! which forks per datagram, answers 100 peers that speak at once), so the datagrams beyond
//! wait in a FIFO queue of [`QUEUE_DATAGRAMS`] ([`QUEUE_BYTES`] of payload at most, which only
//! binds for Unix datagrams larger than 64 KiB) and each gets its program as soon as one ends,
//! in arrival order. Only a full queue (or a thread that cannot start) drops a datagram. That
//! drop, a program that gives no reply through no choice of its own (it could not start, ran
//! too long, wrote more than a datagram) and a reply the socket refused are each reported on stderr by the server's
//! [`LossLog`](super::losses::LossLog); a program that writes nothing chose not to answer.
//!
//! A thread per running program (a runner) takes the next queued datagram when its program
//! ends, so no slot sits idle while datagrams wait, and no thread is left when nothing runs.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use socket2::{SockAddr, Socket};

use super::losses::Loss;
use super::{dump, DatagramOptions, DatagramStats};
use crate::net::deadline::format_duration;
use crate::net::exec::{self, ConnInfo, ExecSpec};
use crate::wire::hexdump::Mark;

/// Programs running at once.
pub const MAX_RUNNING: usize = 64;
/// Datagrams waiting for a program when [`MAX_RUNNING`] run.
pub const QUEUE_DATAGRAMS: usize = 1024;
/// Bytes of datagrams waiting: 1024 datagrams of the default 64 KiB buffer. No UDP datagram
/// is larger, so for UDP the count binds first.
pub const QUEUE_BYTES: usize = QUEUE_DATAGRAMS * super::DEFAULT_BUFFER;
const _: () = assert!(QUEUE_DATAGRAMS * super::MAX_UDP_PAYLOAD_V6 <= QUEUE_BYTES);
/// How long a program may run before it is killed and its reply given up.
const CHILD_TIMEOUT: Duration = Duration::from_secs(10);

/// The bounds of [`Slots`] (constants in the server, small numbers in tests).
#[derive(Debug, Clone, Copy)]
struct Limits {
    running: usize,
    datagrams: usize,
    bytes: usize,
}

const LIMITS: Limits = Limits {
    running: MAX_RUNNING,
    datagrams: QUEUE_DATAGRAMS,
    bytes: QUEUE_BYTES,
};

/// A datagram waiting for, or given to, its program.
#[derive(Debug)]
struct Job {
    datagram: Vec<u8>,
    from: SockAddr,
    /// NK_CONN_SEQ: its place among the datagrams received.
    seq: u64,
}

/// What becomes of a datagram received.
#[derive(Debug)]
enum Admission {
    /// A slot is free: start a runner for it.
    Run(Job),
    /// Queued: a runner will take it when a program ends.
    Queued,
    /// The queue is full: the datagram is dropped, for this reason.
    Full(Job, String),
}

/// The programs running and the datagrams waiting: the bookkeeping alone, under one lock.
/// Datagrams wait only while every slot is taken (a runner leaves only when the queue is
/// empty), so taking them from the front keeps the arrival order.
#[derive(Debug)]
struct Slots {
    limits: Limits,
    running: usize,
    queue: VecDeque<Job>,
    queued_bytes: usize,
}

impl Slots {
    fn new(limits: Limits) -> Slots {
        Slots {
            limits,
            running: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    fn admit(&mut self, job: Job) -> Admission {
        if self.running < self.limits.running {
            self.running += 1;
            return Admission::Run(job);
        }
        let len = job.datagram.len();
        let bound = if self.queue.len() >= self.limits.datagrams {
            self.limits.datagrams.to_string()
        } else if self.queued_bytes.saturating_add(len) > self.limits.bytes {
            format_bytes(self.limits.bytes)
        } else {
            self.queued_bytes += len;
            self.queue.push_back(job);
            return Admission::Queued;
        };
        let reason = format!(
            "{} programs running, queue of {bound} full",
            self.limits.running
        );
        Admission::Full(job, reason)
    }

    /// The next datagram for a runner whose program ended; `None` frees its slot.
    fn next(&mut self) -> Option<Job> {
        match self.queue.pop_front() {
            Some(job) => {
                self.queued_bytes = self.queued_bytes.saturating_sub(job.datagram.len());
                Some(job)
            }
            None => {
                self.release();
                None
            }
        }
    }

    /// Frees a slot whose runner never started.
    fn release(&mut self) {
        self.running = self.running.saturating_sub(1);
    }
}

/// `1024` bytes as `1 KiB`, a round number of MiB as `N MiB`.
fn format_bytes(n: usize) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// The per-datagram programs of one server.
#[derive(Debug)]
pub(super) struct Programs {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    slots: Mutex<Slots>,
    spec: ExecSpec,
    socket: Arc<Socket>,
    local: SockAddr,
    opts: DatagramOptions,
    stats: Arc<DatagramStats>,
}

impl Programs {
    /// Runs `spec` for the datagrams that `socket` (bound to `local`) receives.
    pub(super) fn new(
        spec: ExecSpec,
        socket: Arc<Socket>,
        local: SockAddr,
        opts: &DatagramOptions,
        stats: &Arc<DatagramStats>,
    ) -> Programs {
        Programs {
            shared: Arc::new(Shared {
                slots: Mutex::new(Slots::new(LIMITS)),
                spec,
                socket,
                local,
                opts: opts.clone(),
                stats: Arc::clone(stats),
            }),
        }
    }

    /// Hands a datagram from `from` to a program: now if a slot is free, else when one frees;
    /// dropped (and reported) if the queue is full.
    pub(super) fn submit(&self, datagram: &[u8], from: &SockAddr, seq: u64) {
        let job = Job {
            datagram: datagram.to_vec(),
            from: from.clone(),
            seq,
        };
        let stats = &self.shared.stats;
        // Counted before a runner can see it, so that the count never goes below zero.
        stats.unanswered.fetch_add(1, Ordering::SeqCst);
        let admission = self.shared.slots().admit(job);
        let job = match admission {
            Admission::Run(job) => job,
            Admission::Queued => return,
            Admission::Full(job, reason) => {
                stats.unanswered.fetch_sub(1, Ordering::SeqCst);
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                stats.losses.record(Loss::dropped(reason), &job.from);
                return;
            }
        };
        let from = job.from.clone();
        let shared = Arc::clone(&self.shared);
        let spawned = thread::Builder::new()
            .name("dgram-runner".into())
            .spawn(move || shared.run(job));
        if let Err(err) = spawned {
            // Only this thread queues, and the slot was free: the queue is empty, so no
            // datagram waits for the slot given back.
            self.shared.slots().release();
            stats.unanswered.fetch_sub(1, Ordering::SeqCst);
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            stats.losses.record(
                Loss::dropped(format!("cannot start a thread: {err}")),
                &from,
            );
        }
    }
}

impl Shared {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A runner: `job`, then every datagram queued meanwhile, until the queue is empty.
    fn run(&self, mut job: Job) {
        loop {
            self.serve(job);
            let next = self.slots().next();
            match next {
                Some(queued) => job = queued,
                None => return,
            }
        }
    }

    /// Runs the program for one datagram and sends its reply.
    fn serve(&self, job: Job) {
        let info = ConnInfo::new(&job.from, &self.local, self.opts.proto, job.seq);
        let from = job.from;
        let result = run_child(&self.spec, &info, job.datagram, self.opts.max_payload);
        // Settled before the reply leaves: a peer that got its reply and stops nk finds no
        // datagram counted as unanswered.
        self.stats.unanswered.fetch_sub(1, Ordering::SeqCst);
        match result {
            // The program chose not to answer.
            Ok(reply) if reply.is_empty() => {}
            Ok(_) if super::is_unnamed(&from) => self.stats.unsent_to_unnamed(),
            Ok(reply) => {
                dump(&self.opts, Mark::Sent, &reply);
                match self.socket.send_to(&reply, &from) {
                    Ok(_) => self.stats.count_sent(reply.len()),
                    Err(err) => self
                        .stats
                        .losses
                        .record(Loss::unanswered(format!("send the reply: {err}")), &from),
                }
            }
            Err(err) => self
                .stats
                .losses
                .record(Loss::unanswered(format!("{err:#}")), &from),
        }
    }
}

/// Runs the program for one datagram: the datagram on its stdin, its stdout (at most `max`
/// bytes, else no reply) returned; killed after [`CHILD_TIMEOUT`].
fn run_child(spec: &ExecSpec, info: &ConnInfo, datagram: Vec<u8>, max: usize) -> Result<Vec<u8>> {
    let name = spec.name();
    let mut child = exec::spawn(spec, info)?;
    let mut watchdog = None;
    let mut writer = None;
    let mut reply = Vec::new();
    let talked = (|| -> Result<()> {
        watchdog = Some(Watchdog::start(child.id())?);
        let mut stdin = child.stdin.take().context("the program's stdin")?;
        // Written by a thread of its own: a program may write before it has read it all.
        writer = Some(
            thread::Builder::new()
                .name("dgram-stdin".into())
                .spawn(move || {
                    // A program that does not read its datagram is free not to.
                    let _ = stdin.write_all(&datagram);
                })
                .context("cannot start a thread")?,
        );
        let mut stdout = child.stdout.take().context("the program's stdout")?;
        (&mut stdout)
            .take(max as u64 + 1)
            .read_to_end(&mut reply)
            .with_context(|| format!("read the output of {name}"))?;
        Ok(())
    })();
    // Whatever happened, the program's group ends here, which also frees a writer blocked on
    // a program that stopped reading.
    exec::reap(&mut child, &name);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    if watchdog.is_some_and(Watchdog::stop) {
        return Err(anyhow!(
            "{name} stopped after {}",
            format_duration(CHILD_TIMEOUT)
        ));
    }
    talked?;
    if reply.len() > max {
        return Err(anyhow!(
            "the output of {name} is larger than one datagram ({max} bytes)"
        ));
    }
    Ok(reply)
}

/// Kills a program's process group once it has run for [`CHILD_TIMEOUT`].
struct Watchdog {
    done: Arc<AtomicBool>,
    thread: JoinHandle<bool>,
}

impl Watchdog {
    fn start(pid: u32) -> Result<Watchdog> {
        let done = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + CHILD_TIMEOUT;
        let thread = {
            let done = Arc::clone(&done);
            thread::Builder::new()
                .name("dgram-watchdog".into())
                .spawn(move || loop {
                    if done.load(Ordering::SeqCst) {
                        return false;
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        exec::signal_group(pid, libc::SIGKILL);
                        return true;
                    }
                    // Woken early by stop(); spurious wake-ups go round the loop.
                    thread::park_timeout(left);
                })
                .context("cannot start a thread")?
        };
        Ok(Watchdog { done, thread })
    }

    /// Stops watching; whether the program had been killed for running too long.
    fn stop(self) -> bool {
        self.done.store(true, Ordering::SeqCst);
        self.thread.thread().unpark();
        self.thread.join().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(seq: u64, len: usize) -> Job {
        Job {
            datagram: vec![0; len],
            from: std::net::SocketAddr::from(([127, 0, 0, 1], 1000 + seq as u16)).into(),
            seq,
        }
    }

    fn seq_of(admission: Admission) -> Result<u64, String> {
        match admission {
            Admission::Run(job) => Ok(job.seq),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn datagrams_beyond_the_running_programs_wait_in_arrival_order() {
        let mut slots = Slots::new(Limits {
            running: 2,
            datagrams: 3,
            bytes: 1000,
        });
        assert_eq!(seq_of(slots.admit(job(1, 10))), Ok(1));
        assert_eq!(seq_of(slots.admit(job(2, 10))), Ok(2));
        for seq in 3..=5 {
            assert!(matches!(slots.admit(job(seq, 10)), Admission::Queued));
        }
        match slots.admit(job(6, 10)) {
            Admission::Full(job, reason) => {
                assert_eq!(job.seq, 6);
                assert_eq!(reason, "2 programs running, queue of 3 full");
            }
            other => panic!("a fourth datagram queued: {other:?}"),
        }
        // A program ends: its runner takes the oldest waiting datagram, and room is made.
        assert_eq!(slots.next().map(|j| j.seq), Some(3));
        assert!(matches!(slots.admit(job(7, 10)), Admission::Queued));
        let order: Vec<u64> = std::iter::from_fn(|| slots.next().map(|j| j.seq)).collect();
        assert_eq!(order, [4, 5, 7]);
        // The queue is empty: that runner's slot is free, and the other runner's next.
        assert_eq!(slots.running, 1);
        assert_eq!(seq_of(slots.admit(job(8, 10))), Ok(8));
        assert!(slots.next().is_none());
        assert!(slots.next().is_none());
        assert_eq!((slots.running, slots.queued_bytes), (0, 0));
        // Never below zero, whatever the calls.
        slots.release();
        assert_eq!(slots.running, 0);
    }

    #[test]
    fn queued_bytes_are_bounded_too() {
        let mut slots = Slots::new(Limits {
            running: 2,
            datagrams: 10,
            bytes: 2048,
        });
        assert!(matches!(slots.admit(job(0, 5000)), Admission::Run(_)));
        assert!(matches!(slots.admit(job(1, 5000)), Admission::Run(_)));
        assert!(matches!(slots.admit(job(2, 2000)), Admission::Queued));
        match slots.admit(job(3, 100)) {
            Admission::Full(_, reason) => {
                assert_eq!(reason, "2 programs running, queue of 2 KiB full")
            }
            other => panic!("over the byte bound: {other:?}"),
        }
        assert!(matches!(slots.admit(job(4, 48)), Admission::Queued));
        assert_eq!(slots.queued_bytes, 2048);
        assert_eq!(slots.next().map(|j| j.seq), Some(2));
        assert_eq!(slots.queued_bytes, 48);
    }

    #[test]
    fn the_servers_bounds_and_the_report_of_a_full_queue() {
        assert_eq!((MAX_RUNNING, QUEUE_DATAGRAMS), (64, 1024));
        let mut slots = Slots::new(LIMITS);
        for seq in 0..(MAX_RUNNING + QUEUE_DATAGRAMS) as u64 {
            assert!(!matches!(slots.admit(job(seq, 65507)), Admission::Full(..)));
        }
        let Admission::Full(job, reason) = slots.admit(job(9999, 1)) else {
            panic!("the 1089th datagram was not dropped");
        };
        assert_eq!(
            super::super::losses::line(
                &Loss::dropped(reason),
                37,
                &crate::net::addr::display_sockaddr(&job.from),
                0,
                false
            ),
            "dropped 37 datagrams from 127.0.0.1:10999: 64 programs running, queue of 1024 full"
        );
        assert_eq!(format_bytes(QUEUE_BYTES), "64 MiB");
    }

    #[test]
    fn a_program_that_cannot_start_or_says_too_much_gives_no_reply() {
        let remote: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let info = ConnInfo::new(&remote.into(), &remote.into(), "udp", 1);
        let echo = ExecSpec::Program(vec!["/bin/cat".into()]);
        assert_eq!(
            run_child(&echo, &info, b"hi\n".to_vec(), 100).unwrap(),
            b"hi\n"
        );
        let err = run_child(&echo, &info, vec![7; 200], 100).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "the output of /bin/cat is larger than one datagram (100 bytes)"
        );
        let missing = ExecSpec::Program(vec!["/nonexistent/nk-test".into()]);
        let err = run_child(&missing, &info, b"hi\n".to_vec(), 100).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("run /nonexistent/nk-test: "),
            "{err:#}"
        );
        // A program that does not read its datagram still answers.
        let silent = ExecSpec::Shell("echo 42".into());
        assert_eq!(
            run_child(&silent, &info, vec![1; 100_000], 100).unwrap(),
            b"42\n"
        );
    }
}
