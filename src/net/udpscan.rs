//! `dial -z -u`: a UDP probe scan, reporting only what UDP can tell.
//!
//! Each port gets its own connected UDP socket and an empty datagram (nmap's default probe:
//! a service that answers anything answers it, and no service is fed bytes it may act on).
//! A connected socket is told of the ICMP error its probe caused, so:
//! - a reply (any datagram) → [`UdpState::Open`];
//! - ICMP port unreachable (ECONNREFUSED) → [`UdpState::Closed`];
//! - silence through every try → [`UdpState::OpenFiltered`]: a service that ignored the probe,
//!   or a firewall that dropped it, or an ICMP error the target's kernel did not send.
//!
//! That last case is why probes are paced and silent ports retried. Linux answers at most
//! `net.ipv4.icmp_msgs_per_sec` (1000) ICMP errors per second with a burst of
//! `icmp_msgs_burst` (50) for packets that come from the network (loopback is exempt), and,
//! toward one peer, one per `icmp_ratelimit` (1000 ms) with a burst of 6. A probe whose error
//! was rate-limited is silent, exactly like a filtered port. So: probes leave at
//! [`DEFAULT_RATE`] per second at most (retries included) in bursts below the kernel's, a
//! silent port is probed [`TRIES`] times `-w` apart before it is called open|filtered, and an
//! ICMP error that answers a retry (proof that an earlier one was dropped) halves the rate.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::net::scan::{is_out_of_descriptors, source_addr, with_port};

/// Probes per second (first tries and retries together) when `--rate` is not given: half the
/// kernel's default global ICMP error rate, so that its bucket never runs dry on our account.
pub const DEFAULT_RATE: u32 = 500;
/// Probes sent to a port that stays silent before it is reported open|filtered.
pub const TRIES: u32 = 3;
/// The most probes sent back to back: below the kernel's ICMP burst of 50.
const MAX_BURST: f64 = 20.0;
/// Bytes of a reply read: its arrival is what counts, not its content.
const REPLY_BUF: usize = 512;

/// What probing a UDP port found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpState {
    /// A datagram came back.
    Open,
    /// ICMP port unreachable (or our own socket held the port: nothing else can).
    Closed,
    /// No answer to any try.
    OpenFiltered,
    /// Another error (host or network unreachable, administratively prohibited...).
    Failed(String),
}

impl UdpState {
    /// The word the scan prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            UdpState::Open => "open",
            UdpState::Closed => "closed",
            UdpState::OpenFiltered => "open|filtered",
            UdpState::Failed(_) => "failed",
        }
    }
}

/// How to probe.
#[derive(Debug, Clone)]
pub struct UdpScanOptions {
    /// Sockets open at once (ports being probed).
    pub parallel: usize,
    /// How long to wait for an answer to each try.
    pub timeout: Duration,
    /// `-s`: the source address.
    pub source: Option<IpAddr>,
    /// Probes per second at most, retries included.
    pub rate: u32,
}

/// A token bucket: at most `rate` probes a second, `burst` back to back.
struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
    /// When the rate was last halved: once per `-w` at most, as the errors of one round of
    /// probes all show the same excess.
    slowed: Option<Instant>,
}

impl Pacer {
    fn new(rate: u32) -> Pacer {
        let rate = f64::from(rate.max(1));
        let burst = (rate / 50.0).clamp(1.0, MAX_BURST);
        Pacer {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
            slowed: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.at = now;
    }

    fn take(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Until the next token.
    fn wait(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(0.0))
    }

    /// The target dropped an ICMP error: go at half the pace, one probe at a time.
    fn slow_down(&mut self, now: Instant, every: Duration) {
        if self
            .slowed
            .is_some_and(|t| now.saturating_duration_since(t) < every)
        {
            return;
        }
        self.slowed = Some(now);
        self.rate = (self.rate / 2.0).max(1.0);
        self.burst = 1.0;
        self.tokens = self.tokens.min(self.burst);
    }
}

/// A port being probed.
struct Probe {
    socket: UdpSocket,
    index: usize,
    sends: u32,
    last: Instant,
}

/// Probes every port of `ports` (sorted) on `addr` (its port ignored); `report` sees each
/// port with its state, in port order. Returns the rate the scan ended at: below the one asked
/// when the target was seen dropping ICMP errors.
pub fn scan(
    addr: SocketAddr,
    ports: &[u16],
    opts: &UdpScanOptions,
    mut report: impl FnMut(u16, &UdpState),
) -> Result<u32> {
    let mut states: Vec<Option<UdpState>> = vec![None; ports.len()];
    let mut emitted = 0;
    let mut next = 0;
    let mut capacity = opts.parallel.max(1);
    let mut in_flight: Vec<Probe> = Vec::with_capacity(capacity.min(ports.len()));
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(in_flight.capacity());
    let mut pacer = Pacer::new(opts.rate);
    let mut buf = [0u8; REPLY_BUF];
    loop {
        let now = Instant::now();
        pacer.refill(now);
        // Tries whose wait is over: another try while tries and tokens remain.
        let mut waiting_for_token = false;
        in_flight.retain_mut(|probe| {
            if now.duration_since(probe.last) < opts.timeout {
                return true;
            }
            if probe.sends >= TRIES {
                states[probe.index] = Some(UdpState::OpenFiltered);
                return false;
            }
            if !pacer.take() {
                waiting_for_token = true;
                return true;
            }
            match probe.socket.send(&[]) {
                Ok(_) => {
                    probe.sends += 1;
                    probe.last = now;
                    true
                }
                Err(err) => {
                    states[probe.index] = Some(error_state(&err));
                    false
                }
            }
        });
        // New ports, as far as sockets and tokens allow.
        while in_flight.len() < capacity && next < ports.len() {
            if !pacer.take() {
                waiting_for_token = true;
                break;
            }
            let target = with_port(addr, ports[next]);
            match start(target, opts.source) {
                Ok(Some(socket)) => in_flight.push(Probe {
                    socket,
                    index: next,
                    sends: 1,
                    last: Instant::now(),
                }),
                Ok(None) => states[next] = Some(UdpState::Closed),
                Err(err) if is_out_of_descriptors(&err) && !in_flight.is_empty() => {
                    // Fewer at once; this port is tried again when a socket frees up.
                    capacity = in_flight.len();
                    break;
                }
                Err(err) => states[next] = Some(error_state(&err)),
            }
            next += 1;
        }
        while let Some(Some(state)) = states.get(emitted) {
            report(ports[emitted], state);
            emitted += 1;
        }
        if in_flight.is_empty() && next >= ports.len() {
            // The rate is 1 to u32::MAX, halved at most: it fits.
            return Ok(pacer.rate as u32);
        }
        // Sleep until an answer, the end of the oldest wait, or (when probes are held back)
        // the next token.
        let oldest = in_flight.iter().map(|p| p.last).min();
        let mut wait = oldest.map_or(opts.timeout, |t| {
            (t + opts.timeout).saturating_duration_since(Instant::now())
        });
        if waiting_for_token {
            wait = wait.min(pacer.wait());
        }
        fds.clear();
        fds.extend(in_flight.iter().map(|p| libc::pollfd {
            fd: p.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        let wait_ms = i32::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid slice of initialised pollfd for the call's duration.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err.into());
        }
        if ready == 0 {
            continue;
        }
        let mut slot = 0;
        in_flight.retain(|probe| {
            let revents = fds.get(slot).map_or(0, |f| f.revents);
            slot += 1;
            if revents == 0 {
                return true;
            }
            let state = match probe.socket.recv(&mut buf) {
                Ok(_) => UdpState::Open,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return true,
                Err(err) => error_state(&err),
            };
            if state == UdpState::Closed && probe.sends > 1 {
                // The error for an earlier try never came: the target is rate-limiting.
                pacer.slow_down(Instant::now(), opts.timeout);
            }
            states[probe.index] = Some(state);
            false
        });
    }
}

/// A socket connected to `target` with its first probe sent; `None` when the kernel gave the
/// socket `target` itself as its address (the probe would come back to us and read as a
/// reply; the kernel only picks a port that nothing else holds, so the port is closed).
fn start(target: SocketAddr, source: Option<IpAddr>) -> io::Result<Option<UdpSocket>> {
    let local = match source {
        Some(source) => source_addr(source, target),
        None if target.is_ipv4() => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        None => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = UdpSocket::bind(local)?;
    socket.set_nonblocking(true)?;
    socket.connect(target)?;
    let bound = socket.local_addr()?;
    if bound.ip() == target.ip() && bound.port() == target.port() {
        return Ok(None);
    }
    socket.send(&[])?;
    Ok(Some(socket))
}

fn error_state(err: &io::Error) -> UdpState {
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) => UdpState::Closed,
        _ => UdpState::Failed(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(timeout_ms: u64) -> UdpScanOptions {
        UdpScanOptions {
            parallel: 16,
            timeout: Duration::from_millis(timeout_ms),
            source: None,
            rate: DEFAULT_RATE,
        }
    }

    #[test]
    fn open_closed_and_silent_ports_in_port_order() {
        let answering = UdpSocket::bind("127.0.0.1:0").unwrap();
        answering
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let closed = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let open = answering.local_addr().unwrap().port();
        let quiet = silent.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            // One answer is all the scan needs; a later try may come too.
            if let Ok((_, from)) = answering.recv_from(&mut buf) {
                let _ = answering.send_to(b"hi", from);
            }
        });
        let mut ports = vec![open, quiet, closed];
        ports.sort_unstable();
        let mut seen = Vec::new();
        scan(
            "127.0.0.1:0".parse().unwrap(),
            &ports,
            &opts(200),
            |p, s| seen.push((p, s.clone())),
        )
        .unwrap();
        server.join().unwrap();
        let want: Vec<(u16, UdpState)> = ports
            .iter()
            .map(|&p| {
                let state = match p {
                    p if p == open => UdpState::Open,
                    p if p == quiet => UdpState::OpenFiltered,
                    _ => UdpState::Closed,
                };
                (p, state)
            })
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn the_pacer_holds_back_and_slows_down() {
        let mut pacer = Pacer::new(100);
        assert_eq!(pacer.burst, 2.0);
        assert!(pacer.take() && pacer.take());
        assert!(!pacer.take());
        assert!(pacer.wait() <= Duration::from_millis(10));
        let (t0, every) = (Instant::now(), Duration::from_secs(1));
        pacer.slow_down(t0, every);
        assert_eq!((pacer.rate, pacer.burst), (50.0, 1.0));
        pacer.slow_down(t0 + every / 2, every);
        assert_eq!(pacer.rate, 50.0, "twice within one -w");
        for i in 1..=20 {
            pacer.slow_down(t0 + every * i, every);
        }
        assert_eq!(pacer.rate, 1.0);
        let mut fast = Pacer::new(u32::MAX);
        assert_eq!(fast.burst, MAX_BURST);
        fast.refill(Instant::now() + Duration::from_secs(3600));
        assert_eq!(fast.tokens, MAX_BURST);
    }
}
