//! `dial -z`: a concurrent TCP connect scan that never reports a port it did not find open.
//!
//! Each worker keeps many non-blocking connects in flight and polls them; the results are
//! handed back in any order and [`Scan::run`] emits them in port order, as soon as every lower
//! port is settled. A connect that succeeds only because the kernel picked the target port
//! as our ephemeral port (TCP simultaneous open with itself, which `nc -z` reports as an open
//! port on loopback) is recognised by its local address equalling its remote address, closed,
//! and counted as closed.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::exit::usage;
use crate::net::addr::parse_port;
use crate::net::service_names::Proto;

/// Connects in flight across all workers when `--parallel` is not given. On loopback a scan
/// is bound by syscalls, not by waiting; on a LAN, filtered ports are waited out in parallel.
pub const DEFAULT_PARALLEL: usize = 1024;
/// Descriptors kept free for everything else the process needs.
const FD_RESERVE: u64 = 64;
/// Ports a worker takes from the shared list at a time.
const BATCH: usize = 64;

/// What a connect attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortState {
    /// Something accepted the connection.
    Open,
    /// Refused (RST), or a self-connect.
    Closed,
    /// No answer within the timeout (filtered, or a host that drops SYNs).
    TimedOut,
    /// Another error (unreachable network, no route...).
    Failed(String),
}

/// Parses `22`, `22,80,443`, `8000-8100`, `ssh`, or any comma-separated mix, into sorted,
/// de-duplicated ports; service names are looked up for `proto`. Each bad piece is a usage
/// error naming it.
///
/// Service names may contain hyphens (`http-alt`, `ftp-data`), so a piece with a hyphen is
/// read by one rule: a piece that is exactly a service name is that service; otherwise it is
/// `LOW-HIGH`, split at the one hyphen that leaves a port number or service name on each side
/// (`ftp-data-ssh` is 20-22). A piece that splits more than one way is refused as ambiguous.
pub fn parse_ports(spec: &str, proto: Proto) -> Result<Vec<u16>> {
    if spec.trim().is_empty() {
        return Err(usage(
            "invalid port list \"\": expected ports such as 22,80,8000-8100",
        ));
    }
    // A bitset of the 65,536 port numbers: memory and work stay bounded whatever the text
    // (`1-65535,` repeated ten thousand times is ten thousand word-wide fills, not 655 million
    // pushes).
    let mut ports = PortSet::default();
    for piece in spec.split(',') {
        let piece = piece.trim();
        if piece.is_empty() {
            return Err(usage(format!(
                "invalid port list \"{spec}\": empty item between commas"
            )));
        }
        let (low, high) = parse_piece(piece, proto)?;
        if low > high {
            return Err(usage(format!(
                "invalid port range \"{piece}\": {low} is above {high}"
            )));
        }
        ports.insert_range(low, high);
    }
    Ok(ports.to_vec())
}

/// The set of ports a list names, one bit each.
struct PortSet([u64; 1024]);

impl Default for PortSet {
    fn default() -> PortSet {
        PortSet([0; 1024])
    }
}

impl PortSet {
    fn insert_range(&mut self, low: u16, high: u16) {
        let (low, high) = (usize::from(low), usize::from(high));
        for word in low / 64..=high / 64 {
            let from = low.max(word * 64) - word * 64;
            let to = high.min(word * 64 + 63) - word * 64;
            let bits = (u64::MAX >> (63 - to)) & (u64::MAX << from);
            self.0[word] |= bits;
        }
    }

    fn to_vec(&self) -> Vec<u16> {
        (0..=u16::MAX)
            .filter(|&p| self.0[usize::from(p) / 64] & (1 << (p % 64)) != 0)
            .collect()
    }
}

/// Hyphens looked at in one piece: no service name has more than a few, and the pieces come
/// from the user's argument, so the ways of splitting stay few.
const MAX_HYPHENS: usize = 8;

/// One piece of a port list: a port or service (LOW == HIGH), or a range. See [`parse_ports`].
fn parse_piece(piece: &str, proto: Proto) -> Result<(u16, u16)> {
    let hyphens: Vec<usize> = piece.match_indices('-').map(|(at, _)| at).collect();
    if hyphens.is_empty() {
        let port = parse_port(piece, proto, false)?;
        return Ok((port, port));
    }
    if let Some(port) = crate::net::service_names::system().port(piece, proto) {
        return Ok((port, port));
    }
    if let [at] = hyphens[..] {
        let (low, high) = (&piece[..at], &piece[at + 1..]);
        if low.is_empty() || high.is_empty() {
            return Err(usage(format!(
                "invalid port range \"{piece}\": expected LOW-HIGH"
            )));
        }
        return Ok((
            parse_port(low, proto, false)?,
            parse_port(high, proto, false)?,
        ));
    }
    if hyphens.len() > MAX_HYPHENS {
        return Err(usage(format!(
            "invalid port range \"{}\": more than {MAX_HYPHENS} hyphens",
            piece.escape_debug()
        )));
    }
    let splits: Vec<(u16, u16)> = hyphens
        .iter()
        .filter_map(|&at| {
            let low = parse_port(&piece[..at], proto, false).ok()?;
            let high = parse_port(&piece[at + 1..], proto, false).ok()?;
            Some((low, high))
        })
        .collect();
    match splits[..] {
        [one] => Ok(one),
        [] => Err(usage(format!(
            "invalid port range \"{}\": not a {} service, and no hyphen splits it into \
             two ports or services",
            piece.escape_debug(),
            proto.as_str()
        ))),
        _ => Err(usage(format!(
            "ambiguous port range \"{}\": it splits into LOW-HIGH more than one way; \
             write the ports as numbers",
            piece.escape_debug()
        ))),
    }
}

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Connects in flight at once (all workers together).
    pub parallel: usize,
    /// How long one port may take to answer.
    pub timeout: Duration,
    /// `-s`: the source address to connect from.
    pub source: Option<IpAddr>,
}

/// The largest `--parallel` the descriptor limit allows.
pub fn parallel_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass; nothing else is touched.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let current = if ok { limit.rlim_cur } else { 1024 };
    current
        .saturating_sub(FD_RESERVE)
        .max(1)
        .min(usize::MAX as u64) as usize
}

/// One scan of a list of ports on one address.
#[derive(Debug)]
pub struct Scan {
    /// The address scanned; its port is ignored. A socket address rather than an IP, so that
    /// an IPv6 link-local target keeps its scope (`fe80::1%eth0`): without it every connect
    /// fails with EINVAL.
    pub addr: SocketAddr,
    ports: Arc<Vec<u16>>,
}

/// `addr` with `port`, scope and flow info kept.
pub fn with_port(mut addr: SocketAddr, port: u16) -> SocketAddr {
    addr.set_port(port);
    addr
}

/// The address to bind for `-s SOURCE` toward `target`: a link-local IPv6 source takes the
/// target's scope, as it must name the same link (binding it with no scope is EINVAL).
pub fn source_addr(source: IpAddr, target: SocketAddr) -> SocketAddr {
    match (source, target) {
        (IpAddr::V6(ip), SocketAddr::V6(to)) if ip.is_unicast_link_local() => {
            SocketAddr::V6(std::net::SocketAddrV6::new(ip, 0, 0, to.scope_id()))
        }
        _ => SocketAddr::new(source, 0),
    }
}

/// How a scan shows its target: the IP, with `%IFACE` (or `%INDEX` when the interface has no
/// name) for a scoped IPv6 address, as `ping` and `ip` show them and as the user can type it back.
pub fn host_text(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => {
            format!("{}%{}", v6.ip(), interface_name(v6.scope_id()))
        }
        _ => addr.ip().to_string(),
    }
}

/// The name of interface `index`, or the number when it has none (any more).
fn interface_name(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write, NUL included.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if name.is_null() {
        return index.to_string();
    }
    // SAFETY: on success the kernel wrote a NUL-terminated name into `buf`.
    let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    text.to_string_lossy().into_owned()
}

impl Scan {
    /// A scan of `ports` (sorted) on `addr` (its port ignored).
    pub fn new(addr: SocketAddr, ports: Vec<u16>) -> Scan {
        Scan {
            addr,
            ports: Arc::new(ports),
        }
    }

    /// Runs the scan; `report` sees every port with its state, in port order.
    pub fn run(&self, opts: &ScanOptions, mut report: impl FnMut(u16, &PortState)) -> Result<()> {
        let workers = thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        let per_worker = (opts.parallel / workers).max(1);
        let next = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel::<Vec<(usize, PortState)>>();
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (ports, next, tx) = (Arc::clone(&self.ports), Arc::clone(&next), tx.clone());
            let (addr, timeout, source) = (self.addr, opts.timeout, opts.source);
            handles.push(thread::spawn(move || {
                Worker {
                    addr,
                    timeout,
                    source,
                    capacity: per_worker,
                    ports,
                    next,
                    tx,
                }
                .run()
            }));
        }
        drop(tx);
        let mut states: Vec<Option<PortState>> = vec![None; self.ports.len()];
        let mut emitted = 0;
        for (index, state) in rx.into_iter().flatten() {
            states[index] = Some(state);
            while let Some(Some(state)) = states.get(emitted) {
                report(self.ports[emitted], state);
                emitted += 1;
            }
        }
        for handle in handles {
            if let Ok(Err(err)) = handle.join() {
                return Err(err.into());
            }
        }
        Ok(())
    }
}

/// One connect in flight.
struct Probe {
    socket: Socket,
    index: usize,
    started: Instant,
}

/// A worker: takes batches of ports from the shared list, keeps `capacity` connects in flight.
struct Worker {
    addr: SocketAddr,
    timeout: Duration,
    source: Option<IpAddr>,
    capacity: usize,
    ports: Arc<Vec<u16>>,
    next: Arc<AtomicUsize>,
    /// Results go back in batches, one per poll round: a channel wake-up per port would cost
    /// more than the connect itself.
    tx: mpsc::Sender<Vec<(usize, PortState)>>,
}

impl Worker {
    fn run(self) -> io::Result<()> {
        let mut results = Vec::with_capacity(self.capacity);
        let result = self.scan(&mut results);
        self.flush(&mut results);
        result
    }

    fn scan(&self, results: &mut Vec<(usize, PortState)>) -> io::Result<()> {
        let mut in_flight: Vec<Probe> = Vec::with_capacity(self.capacity);
        let mut pending: std::ops::Range<usize> = 0..0;
        let mut capacity = self.capacity;
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.capacity);
        loop {
            // Fill up to capacity.
            while in_flight.len() < capacity {
                if pending.is_empty() {
                    let start = self.next.fetch_add(BATCH, Ordering::Relaxed);
                    if start >= self.ports.len() {
                        break;
                    }
                    pending = start..(start + BATCH).min(self.ports.len());
                }
                let index = pending.start;
                match self.start(self.ports[index]) {
                    Ok(Started::Done(state)) => results.push((index, state)),
                    Ok(Started::InFlight(socket)) => in_flight.push(Probe {
                        socket,
                        index,
                        started: Instant::now(),
                    }),
                    Err(err) if is_out_of_descriptors(&err) && !in_flight.is_empty() => {
                        // Fewer at once, then retry this port when a slot frees up.
                        capacity = in_flight.len();
                        break;
                    }
                    Err(err) => results.push((index, PortState::Failed(err.to_string()))),
                }
                pending.start += 1;
            }
            if in_flight.is_empty() {
                return Ok(());
            }
            self.flush(results);
            fds.clear();
            fds.extend(in_flight.iter().map(|p| libc::pollfd {
                fd: p.socket.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            }));
            let oldest = in_flight
                .iter()
                .map(|p| p.started)
                .min()
                .unwrap_or_else(Instant::now);
            let wait = (oldest + self.timeout).saturating_duration_since(Instant::now());
            let wait_ms = i32::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            // SAFETY: `fds` is a valid slice of initialised pollfd for the call's duration.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
            if ready < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let now = Instant::now();
            let mut kept = 0;
            for slot in 0..in_flight.len() {
                let revents = fds[slot].revents;
                let probe = &in_flight[slot];
                let outcome = if revents != 0 {
                    Some(settle(&probe.socket, self.addr, self.ports[probe.index]))
                } else if now.duration_since(probe.started) >= self.timeout {
                    Some(PortState::TimedOut)
                } else {
                    None
                };
                match outcome {
                    Some(state) => results.push((probe.index, state)),
                    None => {
                        in_flight.swap(kept, slot);
                        kept += 1;
                    }
                }
            }
            // Dropping the settled probes closes their sockets.
            in_flight.truncate(kept);
        }
    }

    fn flush(&self, results: &mut Vec<(usize, PortState)>) {
        if !results.is_empty() {
            let _ = self.tx.send(std::mem::take(results));
        }
    }

    fn start(&self, port: u16) -> io::Result<Started> {
        let target = with_port(self.addr, port);
        let socket = Socket::new(
            Domain::for_address(target),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        if let Some(source) = self.source {
            socket.bind(&SockAddr::from(source_addr(source, target)))?;
        }
        match socket.connect(&SockAddr::from(target)) {
            Ok(()) => Ok(Started::Done(verify_open(&socket, target))),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(Started::InFlight(socket)),
            Err(e) => Ok(Started::Done(failed_state(&e))),
        }
    }
}

enum Started {
    Done(PortState),
    InFlight(Socket),
}

/// The state of a connect that poll says has finished.
fn settle(socket: &Socket, addr: SocketAddr, port: u16) -> PortState {
    match socket.take_error() {
        Ok(None) => verify_open(socket, with_port(addr, port)),
        Ok(Some(err)) | Err(err) => failed_state(&err),
    }
}

/// A connect that succeeded: open, unless it is a connection with itself.
pub fn verify_open(socket: &Socket, target: SocketAddr) -> PortState {
    let local = socket.local_addr().ok().and_then(|a| a.as_socket());
    match socket.peer_addr() {
        Ok(_) if local == Some(target) => PortState::Closed,
        Ok(_) => PortState::Open,
        Err(err) => failed_state(&err),
    }
}

fn failed_state(err: &io::Error) -> PortState {
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) | Some(libc::ECONNRESET) => PortState::Closed,
        Some(libc::ETIMEDOUT) => PortState::TimedOut,
        _ => PortState::Failed(err.to_string()),
    }
}

/// Out of descriptors or buffers: the scan waits for probes in flight to end, then goes on
/// (shared with the UDP scan).
pub(crate) fn is_out_of_descriptors(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{classify, Status};
    use std::net::TcpListener;

    #[test]
    fn port_lists_are_bounded_by_the_port_space() {
        // Issue 19 item 9: 131 KB of `1-65535,` took 2.1 GB and 26 s.
        let spec = "1-65535,".repeat(16_400) + "22";
        let ports = parse_ports(&spec, Proto::Tcp).unwrap();
        assert_eq!(ports.len(), 65535);
        assert_eq!((ports[0], ports[65534]), (1, 65535));
        assert_eq!(
            parse_ports("80,22,63-65,64,22", Proto::Tcp).unwrap(),
            [22, 63, 64, 65, 80]
        );
        assert_eq!(
            parse_ports("60-70", Proto::Tcp).unwrap(),
            (60..=70).collect::<Vec<u16>>()
        );
        assert_eq!(parse_ports("65535", Proto::Tcp).unwrap(), [65535]);
        assert_eq!(parse_ports("1-64,128", Proto::Tcp).unwrap().len(), 65);
    }

    #[test]
    fn port_lists_parse_and_sort() {
        let tcp = |spec| parse_ports(spec, Proto::Tcp);
        assert_eq!(tcp("22").unwrap(), vec![22]);
        assert_eq!(
            tcp("80,22,22,8000-8002").unwrap(),
            vec![22, 80, 8000, 8001, 8002]
        );
        assert_eq!(tcp("ssh,http").unwrap(), vec![22, 80]);
        assert_eq!(tcp("1-65535").unwrap().len(), 65535);
        assert_eq!(tcp("5-5").unwrap(), vec![5]);
    }

    #[test]
    fn a_service_name_with_a_hyphen_is_that_service() {
        let services = crate::net::service_names::system();
        let (Some(alt), Some(data), Some(ssh)) = (
            services.port("http-alt", Proto::Tcp),
            services.port("ftp-data", Proto::Tcp),
            services.port("ssh", Proto::Tcp),
        ) else {
            panic!("http-alt, ftp-data and ssh must be known tcp services");
        };
        let tcp = |spec| parse_ports(spec, Proto::Tcp);
        assert_eq!(tcp("http-alt").unwrap(), vec![alt]);
        assert_eq!(tcp("http-alt-http-alt").unwrap(), vec![alt]);
        assert_eq!(
            tcp("ftp-data-ssh").unwrap(),
            (data..=ssh).collect::<Vec<_>>()
        );
        assert_eq!(tcp("ftp-data-22").unwrap(), (data..=22).collect::<Vec<_>>());
        assert_eq!(
            tcp("ssh-http-alt").unwrap().len(),
            usize::from(alt - ssh) + 1
        );
        // Service names are per protocol: domain is 53 for both, http-alt is tcp only.
        assert_eq!(parse_ports("domain", Proto::Udp).unwrap(), vec![53]);
        let err = parse_ports("http-alt", Proto::Udp).unwrap_err();
        assert_eq!(classify(&err), Status::Usage, "{err:#}");
    }

    #[test]
    fn bad_port_lists_are_usage_errors() {
        for bad in [
            "",
            "0",
            "70000",
            "9-3",
            "a-b",
            "1-",
            "-5",
            ",",
            "22,",
            "1-0",
            " ",
            "1-2-3",
            "ssh--http",
            "-",
            "--",
            "a-b-c-d-e-f-g-h-i-j-k",
            "ssh-http-",
        ] {
            let err = parse_ports(bad, Proto::Tcp).unwrap_err();
            assert_eq!(classify(&err), Status::Usage, "{bad:?}: {err:#}");
        }
    }

    #[test]
    fn a_self_connect_is_not_an_open_port() {
        // Deterministic simultaneous open: a socket bound to 127.0.0.1:P connecting to itself.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        socket.bind(&SockAddr::from(target)).unwrap();
        socket
            .connect(&SockAddr::from(target))
            .expect("self-connect succeeds at the TCP level");
        assert_eq!(verify_open(&socket, target), PortState::Closed);
    }

    #[test]
    fn a_scan_reports_open_and_closed_in_port_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut ports = vec![open, closed];
        ports.sort_unstable();
        let scan = Scan::new("127.0.0.1:0".parse().unwrap(), ports.clone());
        let opts = ScanOptions {
            parallel: 8,
            timeout: Duration::from_secs(2),
            source: None,
        };
        let mut seen = Vec::new();
        scan.run(&opts, |port, state| seen.push((port, state.clone())))
            .unwrap();
        let expected: Vec<(u16, PortState)> = ports
            .iter()
            .map(|&p| {
                (
                    p,
                    if p == open {
                        PortState::Open
                    } else {
                        PortState::Closed
                    },
                )
            })
            .collect();
        assert_eq!(seen, expected);
    }
}
