//! A small safe wrapper over epoll(7), and the one event loop run by the servers that hold
//! thousands of connections on a thread (the inetd services, the forwarder and the proxy
//! server): [`serve`] accepts, pauses on descriptor exhaustion, sweeps and polls the same way
//! for each of them, and a [`Handler`] is what one server does with what the loop reports.
//!
//! A thread per connection costs a stack and a scheduler entry per idle client; the services
//! must hold 10,000 clients in well under 150 MB, so they keep each connection as a few words
//! of state in one event loop instead. socket2 has no epoll, hence libc here. Interest is
//! level-triggered: a handler that leaves bytes unread is woken again, so no event is lost.
//! [`Spin`] lets a loop poll briefly before it sleeps, where wake-ups are the cost that
//! matters (a UDP forwarder in a request/response exchange).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::Socket;

use crate::net::deadline::Deadline;
use crate::net::server::Backoff;

/// What a registration waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Bytes to read (or the peer's FIN, or an error).
    Read,
    /// Room to write (or an error).
    Write,
    /// Either (the forwarder's sockets carry a direction each way).
    Both,
}

impl Interest {
    fn bits(self) -> u32 {
        // EPOLLRDHUP only with reading: it stays reported once the peer has sent its FIN, so a
        // handler that only waits for room to write (a half-closed peer that reads slowly)
        // would otherwise be woken again and again for nothing.
        let base = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
        let read = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        match self {
            Interest::Read => base | read,
            Interest::Write => base | libc::EPOLLOUT as u32,
            Interest::Both => base | read | libc::EPOLLOUT as u32,
        }
    }
}

/// One readiness report: the registration's token and whether it can make progress.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// The token given at registration.
    pub token: u64,
    /// Readable, writable, hung up or in error: in every case the handler should try its
    /// operation and learn the outcome from the syscall.
    pub flags: u32,
}

/// An epoll instance.
#[derive(Debug)]
pub struct Poller {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    /// A poller that reports at most `batch` events per wait.
    pub fn new(batch: usize) -> io::Result<Poller> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Poller {
            epoll,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; batch.max(1)],
        })
    }

    fn control(
        &self,
        op: libc::c_int,
        fd: RawFd,
        interest: Interest,
        token: u64,
    ) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: interest.bits(),
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        let status = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        if status < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Starts watching `fd`.
    pub fn add(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, interest, token)
    }

    /// Starts watching a listener shared by several pollers (one per event loop) for
    /// readability, with EPOLLEXCLUSIVE: a new client wakes one of them, not every one.
    /// Such a registration cannot be modified, only removed.
    pub fn add_exclusive(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32,
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        let status =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if status < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Changes what `fd` is watched for.
    pub fn modify(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, interest, token)
    }

    /// Stops watching `fd` (closing it does the same; this is for descriptors kept open).
    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        let status = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        if status < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until something is ready or `deadline` passes; a signal ends the wait early
    /// with no events.
    pub fn wait(&mut self, deadline: Deadline) -> io::Result<impl Iterator<Item = Event> + '_> {
        let count = self.epoll_wait(deadline.poll_timeout_ms())?;
        Ok(self.events(count))
    }

    /// [`Poller::wait`], polling without sleeping for `spin`'s window first (see [`Spin`]).
    pub fn wait_spinning(
        &mut self,
        deadline: Deadline,
        spin: &mut Spin,
    ) -> io::Result<impl Iterator<Item = Event> + '_> {
        let start = Instant::now();
        if spin.after_work {
            spin.window = if spin.busy {
                spin.limit
            } else {
                Duration::ZERO
            };
        }
        if !spin.window.is_zero() && (spin.after_work || spin.idle.spare()) {
            loop {
                let count = self.epoll_wait(0)?;
                if count > 0 {
                    spin.busy = true;
                    return Ok(self.events(count));
                }
                if start.elapsed() >= spin.window || deadline.expired() {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        let count = self.epoll_wait(deadline.poll_timeout_ms())?;
        spin.after_sleep(start.elapsed(), count > 0);
        spin.busy = count > 0;
        Ok(self.events(count))
    }

    /// One epoll_wait(2) into the event buffer; a signal counts as no events.
    fn epoll_wait(&mut self, timeout_ms: i32) -> io::Result<usize> {
        let capacity = i32::try_from(self.events.len()).unwrap_or(i32::MAX);
        // SAFETY: the buffer holds `capacity` epoll_event entries and outlives the call.
        let ready = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                capacity,
                timeout_ms,
            )
        };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
            return Ok(0);
        }
        Ok(ready as usize)
    }

    fn events(&self, count: usize) -> impl Iterator<Item = Event> + '_ {
        self.events[..count].iter().map(|e| Event {
            token: e.u64,
            flags: e.events,
        })
    }
}

/// How long an event loop goes on polling, without sleeping, once its work is done; the window
/// adapts to the traffic as KVM's halt-polling does.
///
/// A sleeping thread's wake-up costs tens of microseconds on an idle virtual machine, and a
/// forwarder in a request/response exchange sleeps twice per round trip (once for the request,
/// once for the reply): with one client, those wake-ups are most of its time. Polling a little
/// before sleeping catches the next event on a CPU that is still running. The window starts at
/// zero; when a sleep ends with an event within `limit` of the work before it (a longer poll
/// would have caught it), the window grows (a quarter of `limit`, then doubling up to
/// `limit`); when a sleep lasts longer than `limit`, or ends with no event, it drops back to
/// zero: the traffic is sparse and polling would only burn CPU. A loop that always finds
/// events waiting never polls; an idle one polls at most once per burst.
///
/// Polling pays only where a CPU would otherwise halt: on a busy machine waking is cheap, and
/// a polling loop takes CPU its peers need (measured with a fuzzer on the other core: 58,580
/// round trips/s polling against 81,746 not). So the loop polls only while the machine has
/// had idle time lately ([`IdleGauge`]). Two rules that looked simpler were measured and
/// fail: yielding the CPU inside the poll (the peer a forwarder has just woken is often
/// placed on the forwarder's own CPU, so every yield runs it there and the poll gains
/// nothing), and stopping after an involuntary context switch (a nice 19 job on the other
/// CPU never preempts, yet the loss is the same).
///
/// [`Spin::after_work`] is the simpler rule of a server whose clients come one after the
/// other (the inetd services): after a wait that found work, poll for the full limit,
/// whatever the machine's idle time. There the client runs on the other CPU between two of
/// the server's events, so the poll rarely takes CPU from anyone, and the adaptive rule never
/// polled (the gauge saw no idle CPU): `nk echo -l` made 9,734 connections/s with it against
/// 11,891 with this rule (bench/09_services.sh, part 1).
#[derive(Debug)]
pub struct Spin {
    limit: Duration,
    window: Duration,
    idle: IdleGauge,
    /// [`Spin::after_work`]'s rule.
    after_work: bool,
    /// The last wait found work.
    busy: bool,
}

impl Spin {
    /// Polls for at most `limit` before sleeping; zero never polls, nor does a process that
    /// may run on one CPU only.
    pub fn new(limit: Duration) -> Spin {
        // On one CPU a polling loop only keeps its peers from running.
        let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
        Spin::exactly(if one_cpu { Duration::ZERO } else { limit })
    }

    /// Polls for `limit` after each wait that found work (none on one CPU).
    pub fn after_work(limit: Duration) -> Spin {
        Spin {
            after_work: true,
            ..Spin::new(limit)
        }
    }

    fn exactly(limit: Duration) -> Spin {
        Spin {
            limit,
            window: Duration::ZERO,
            idle: IdleGauge::default(),
            after_work: false,
            busy: false,
        }
    }

    /// Adapts the window after a wait that slept: `gap` is the time since the wait began
    /// (polling included), `event` whether something became ready.
    fn after_sleep(&mut self, gap: Duration, event: bool) {
        self.window = if !event || gap > self.limit {
            Duration::ZERO
        } else if self.window.is_zero() {
            self.limit / 4
        } else {
            (self.window * 2).min(self.limit)
        };
    }
}

/// Whether the machine has had CPU time to spare lately: the share of idle time over all CPUs
/// in /proc/stat, sampled at most every [`IdleGauge::EVERY`].
#[derive(Debug)]
struct IdleGauge {
    /// The last sample: when, and the idle and total ticks then.
    last: Option<(Instant, u64, u64)>,
    spare: bool,
}

impl Default for IdleGauge {
    fn default() -> IdleGauge {
        // Until two samples are in, assume a spare CPU: a wrong guess costs one interval.
        IdleGauge {
            last: None,
            spare: true,
        }
    }
}

impl IdleGauge {
    const EVERY: Duration = Duration::from_millis(100);
    /// Idle share (in percent of all CPUs' time) above which a CPU counts as spare. A loop
    /// polling on one of two CPUs leaves about a third idle; a busy machine leaves none.
    const SPARE_PERCENT: u64 = 10;

    fn spare(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|(at, _, _)| now.duration_since(at) < Self::EVERY)
        {
            return self.spare;
        }
        let Some((idle, total)) = read_cpu_ticks() else {
            return self.spare;
        };
        if let Some((_, idle_before, total_before)) = self.last {
            let (idle, total) = (
                idle - idle_before.min(idle),
                total - total_before.min(total),
            );
            if total > 0 {
                self.spare = idle * 100 >= total * Self::SPARE_PERCENT;
            }
        }
        self.last = Some((now, idle, total));
        self.spare
    }
}

/// The idle and total ticks of all CPUs, from the first line of /proc/stat.
fn read_cpu_ticks() -> Option<(u64, u64)> {
    use std::io::Read;
    let mut buf = [0u8; 256];
    let n = std::fs::File::open("/proc/stat")
        .and_then(|mut f| f.read(&mut buf))
        .ok()?;
    cpu_ticks(std::str::from_utf8(&buf[..n]).ok()?)
}

/// Parses "cpu  user nice system idle iowait irq softirq steal ..." into (idle + iowait, total).
fn cpu_ticks(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().next()?;
    let mut fields = line.split_ascii_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = fields.take(8).map_while(|f| f.parse().ok()).collect();
    if ticks.len() < 5 {
        return None;
    }
    let idle = ticks[3].saturating_add(ticks[4]);
    let total = ticks.iter().fold(0u64, |sum, t| sum.saturating_add(*t));
    Some((idle, total))
}

/// The connections of an event loop, by slot: a slot's index is its epoll token, and freed
/// slots are reused, so tokens stay small and a lookup is an index. Shared by the services'
/// loop and the forwarder's.
#[derive(Debug)]
pub struct SlotTable<T> {
    /// The slots; `None` is free.
    pub slots: Vec<Option<T>>,
    free: Vec<usize>,
    /// How many slots are taken.
    pub live: usize,
}

impl<T> Default for SlotTable<T> {
    fn default() -> SlotTable<T> {
        SlotTable {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T> SlotTable<T> {
    /// Stores `item` in a free slot (or a new one) and returns its index.
    pub fn insert(&mut self, item: T) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(item);
                slot
            }
            None => {
                self.slots.push(Some(item));
                self.slots.len() - 1
            }
        }
    }

    /// Takes the item out of `slot`, freeing it.
    pub fn take(&mut self, slot: usize) -> Option<T> {
        let item = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        self.live -= 1;
        Some(item)
    }

    /// The item in `slot`, if any.
    pub fn get(&mut self, slot: usize) -> Option<&mut T> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }
}

/// Why a [`Handler`] stopped accepting before the listener's queue was empty.
#[derive(Debug)]
pub enum AcceptStop {
    /// Out of descriptors: [`serve`] stops watching the listener for a while (the clients
    /// wait in its backlog) instead of spinning on it.
    Exhausted(io::Error),
    /// The listener failed for good: the loop ends with this.
    Fatal(anyhow::Error),
}

/// What one server does with what its event loop ([`serve`]) reports. The loop owns the
/// rhythm (waiting, accepting, pausing, sweeping); the handler owns the connections.
pub trait Handler {
    /// The loop's poller, where the handler registers its connections.
    fn poller(&mut self) -> &mut Poller;
    /// Takes the clients the listener has queued (a batch at most), applying the server's
    /// admission rules.
    fn accept(&mut self, listener: &Socket) -> Result<(), AcceptStop>;
    /// Something is ready on `token` (any token but the listener's).
    fn ready(&mut self, token: u64) -> anyhow::Result<()>;
    /// Connections open in this loop: the sweep is only scheduled while there are some.
    fn live(&self) -> usize;
    /// Ends what is past its time (`-i`, handshake and connect limits).
    fn sweep(&mut self, now: Instant);
    /// The latest the loop may sleep to, for the handler's own timers.
    fn wake_by(&self) -> Deadline {
        Deadline::NEVER
    }
    /// Work after each round of events (retries, drains).
    fn after_round(&mut self, _now: Instant) {}
    /// Whether new clients may be accepted now; the loop also pauses after exhaustion.
    fn accepting(&self, _now: Instant) -> bool {
        true
    }
}

/// How [`serve`] runs one loop.
#[derive(Debug, Clone)]
pub struct LoopPlan {
    /// The listener's token; it is registered (for reading) before the loop starts.
    pub listener_token: u64,
    /// Whether the listener is shared by several loops (EPOLLEXCLUSIVE: one is woken per
    /// client), which decides how it is registered again after a pause.
    pub shared_listener: bool,
    /// How often [`Handler::sweep`] runs while connections are open; `None`: never.
    pub sweep_every: Option<Duration>,
    /// How the loop polls before sleeping.
    pub spin: SpinRule,
}

/// Which of [`Spin`]'s rules a loop follows, and its limit.
#[derive(Debug, Clone, Copy)]
pub enum SpinRule {
    /// [`Spin::new`]: a window that adapts to the traffic, only while a CPU is spare.
    Adaptive(Duration),
    /// [`Spin::after_work`].
    AfterWork(Duration),
}

/// How often a loop looks for connections past their limits: a quarter of the shortest limit,
/// between 10 ms and [`SWEEP`]; `None` without limits.
pub fn sweep_interval(limits: impl IntoIterator<Item = Duration>) -> Option<Duration> {
    limits
        .into_iter()
        .map(|d| (d / 4).clamp(Duration::from_millis(10), SWEEP))
        .min()
}

/// The longest between two sweeps (when the limits are long, or only some connections have
/// one).
pub const SWEEP: Duration = Duration::from_millis(250);

/// Runs one event loop on `listener` (non-blocking, registered in `handler`'s poller under
/// `plan.listener_token`) until a fatal error: the accept rules of every server that holds
/// many connections. Out of descriptors, accepting pauses (doubling from 10 ms to 500 ms,
/// said once on stderr) and the clients wait in the backlog; the handler may hold accepting
/// too ([`Handler::accepting`]).
pub fn serve<H: Handler>(
    listener: &Socket,
    handler: &mut H,
    plan: &LoopPlan,
) -> anyhow::Result<()> {
    let mut backoff = Backoff::default();
    let mut paused_until: Option<Instant> = None;
    let mut next_sweep = plan.sweep_every.map(|every| Instant::now() + every);
    let mut ready: Vec<Event> = Vec::with_capacity(256);
    let mut spin = match plan.spin {
        SpinRule::Adaptive(limit) => Spin::new(limit),
        SpinRule::AfterWork(limit) => Spin::after_work(limit),
    };
    let mut listening = true;
    loop {
        let mut deadline = handler.wake_by();
        if let Some(at) = paused_until {
            deadline = deadline.min(Deadline::at(at));
        }
        if let Some(at) = next_sweep.filter(|_| handler.live() > 0) {
            deadline = deadline.min(Deadline::at(at));
        }
        ready.clear();
        ready.extend(
            handler
                .poller()
                .wait_spinning(deadline, &mut spin)
                .context("epoll_wait")?,
        );
        let now = Instant::now();
        if paused_until.is_some_and(|at| now >= at) {
            paused_until = None;
        }
        for event in &ready {
            if event.token != plan.listener_token {
                handler.ready(event.token)?;
                continue;
            }
            match handler.accept(listener) {
                Ok(()) => backoff.reset(),
                Err(AcceptStop::Exhausted(err)) => {
                    paused_until = Some(now + backoff.next_pause(listener, &err));
                }
                Err(AcceptStop::Fatal(err)) => return Err(err),
            }
        }
        if let (Some(every), Some(at)) = (plan.sweep_every, next_sweep) {
            if now >= at {
                handler.sweep(now);
                next_sweep = Some(now + every);
            }
        }
        handler.after_round(now);
        let accept = paused_until.is_none() && handler.accepting(now);
        if accept != listening {
            let (fd, token) = (listener.as_raw_fd(), plan.listener_token);
            let poller = handler.poller();
            match (accept, plan.shared_listener) {
                (true, true) => poller.add_exclusive(fd, token),
                (true, false) => poller.add(fd, Interest::Read, token),
                (false, _) => poller.remove(fd),
            }
            .context("epoll_ctl")?;
            listening = accept;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reports_a_readable_socket_by_its_token() {
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut poller = Poller::new(8).unwrap();
        poller.add(b.as_raw_fd(), Interest::Read, 42).unwrap();
        let idle: Vec<Event> = poller
            .wait(Deadline::after(Some(Duration::from_millis(10))))
            .unwrap()
            .collect();
        assert!(idle.is_empty());
        a.write_all(b"x").unwrap();
        let ready: Vec<Event> = poller.wait(Deadline::NEVER).unwrap().collect();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].token, 42);
        poller.remove(b.as_raw_fd()).unwrap();
        let after: Vec<Event> = poller
            .wait(Deadline::after(Some(Duration::ZERO)))
            .unwrap()
            .collect();
        assert!(after.is_empty());
    }

    #[test]
    fn the_spin_window_grows_on_close_events_and_drops_on_sparse_ones() {
        let limit = Duration::from_micros(80);
        let mut spin = Spin::exactly(limit);
        assert_eq!(spin.window, Duration::ZERO);
        spin.after_sleep(Duration::from_micros(30), true);
        assert_eq!(spin.window, Duration::from_micros(20));
        spin.after_sleep(Duration::from_micros(30), true);
        assert_eq!(spin.window, Duration::from_micros(40));
        spin.after_sleep(Duration::from_micros(30), true);
        spin.after_sleep(Duration::from_micros(30), true);
        assert_eq!(spin.window, limit);
        spin.after_sleep(Duration::from_millis(5), true);
        assert_eq!(spin.window, Duration::ZERO);
        spin.after_sleep(Duration::from_micros(10), true);
        spin.after_sleep(Duration::from_micros(10), false);
        assert_eq!(spin.window, Duration::ZERO, "a timeout is not traffic");
        let mut never = Spin::exactly(Duration::ZERO);
        never.after_sleep(Duration::ZERO, true);
        assert_eq!(never.window, Duration::ZERO);
    }

    #[test]
    fn cpu_ticks_read_the_first_line_of_proc_stat() {
        let text = "cpu  10 2 30 400 5 6 7 8 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        assert_eq!(cpu_ticks(text), Some((405, 468)));
        assert_eq!(cpu_ticks("cpu0 1 2 3 4 5\n"), None);
        assert_eq!(cpu_ticks("cpu 1 2\n"), None);
        assert_eq!(cpu_ticks(""), None);
        assert!(read_cpu_ticks().is_some(), "Linux has /proc/stat");
    }

    #[test]
    fn a_spinning_wait_sees_what_a_sleeping_one_does() {
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut poller = Poller::new(8).unwrap();
        poller.add(b.as_raw_fd(), Interest::Read, 7).unwrap();
        let mut spin = Spin::exactly(Duration::from_millis(50));
        spin.window = Duration::from_millis(50);
        let idle: Vec<Event> = poller
            .wait_spinning(Deadline::after(Some(Duration::from_millis(1))), &mut spin)
            .unwrap()
            .collect();
        assert!(idle.is_empty(), "the deadline bounds the poll too");
        assert_eq!(spin.window, Duration::ZERO);
        a.write_all(b"x").unwrap();
        let ready: Vec<Event> = poller
            .wait_spinning(Deadline::NEVER, &mut spin)
            .unwrap()
            .collect();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].token, 7);
    }
}
