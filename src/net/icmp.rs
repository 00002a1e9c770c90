//! ICMP sockets for `nk ping`: an unprivileged datagram socket where the system allows one,
//! a raw socket otherwise, behind one small trait so that the ping logic (matching replies,
//! statistics) is tested without privileges.
//!
//! The two kinds differ in ways the caller must not have to know:
//! - a datagram socket (`socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`, allowed by
//!   net.ipv4.ping_group_range) gets ICMP messages without the IP header and with the
//!   identifier rewritten to the socket's "port"; the TTL comes from an IP_TTL control message,
//!   and ICMP errors about our requests arrive on the error queue (IP_RECVERR);
//! - a raw socket (CAP_NET_RAW) sees every ICMP message the host receives, with the IPv4
//!   header (its TTL is ours to read), our own requests looped back on lo, and errors as
//!   ordinary ICMP messages.
//!
//! For IPv6 both kinds deliver the message without the header; the hop limit comes from an
//! IPV6_HOPLIMIT control message and the kernel fills in the checksum.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use socket2::{Domain, MaybeUninitSlice, MsgHdrMut, Protocol, SockAddr, Socket, Type};

use crate::exit::UsageError;
use crate::net::cmsg::{assume_init, control_messages, set_int};
use crate::net::deadline::{wait_readable, Deadline};
use crate::wire::icmp::{self, ErrorReport, Incoming};

/// Which kind of socket carries the pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// SOCK_DGRAM + IPPROTO_ICMP(V6): unprivileged, the kernel owns the identifier.
    Datagram,
    /// SOCK_RAW: needs CAP_NET_RAW; we own the identifier and see everyone's ICMP.
    Raw,
}

/// One ICMP message received, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The sender (the destination for replies, a router for errors).
    pub from: IpAddr,
    /// The sender's IPv6 scope (interface index; 0 when none): a link-local address means
    /// nothing without it, and iputils prints it as `%iface`.
    pub scope_id: u32,
    /// TTL / hop limit of the packet, when the socket could tell.
    pub ttl: Option<u8>,
    /// What the message is.
    pub message: Incoming,
}

/// What the ping logic needs of a socket.
pub trait EchoSocket {
    /// The kind of socket (decides how replies are matched).
    fn kind(&self) -> SocketKind;
    /// The identifier replies carry: ours on a raw socket, the kernel's on a datagram socket.
    fn identifier(&self) -> u16;
    /// Sends one ICMP message to the destination.
    fn send(&mut self, message: &[u8]) -> io::Result<()>;
    /// Waits until `deadline` for one message; `Ok(None)` when the deadline passes first.
    fn receive(&mut self, deadline: Deadline) -> io::Result<Option<Received>>;
    /// How long the last message received waited in the kernel before it was read (from
    /// its SO_TIMESTAMPNS receive time), when the socket keeps receive times.
    fn last_queue_delay(&self) -> Option<Duration> {
        None
    }
}

/// Options of the socket itself.
#[derive(Debug, Clone, Default)]
pub struct IcmpOptions {
    /// `-t`: TTL / hop limit of our requests.
    pub ttl: Option<u32>,
    /// The identifier a raw socket puts in requests.
    pub identifier: u16,
    /// `-b`: SO_BROADCAST, without which the kernel refuses to send to a broadcast address.
    pub broadcast: bool,
    /// The IPv6 scope (interface index) of a link-local destination, 0 for none.
    pub scope_id: u32,
    /// The options iputils' ping sets beyond these (`-I -B -e -Q -m -M -r`, receive times).
    pub tuning: SocketTuning,
}

/// Socket options ping takes from its command line, each set with the option named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketTuning {
    /// SO_BINDTODEVICE: send and receive through this interface only (`-I IFACE`).
    pub device: Option<String>,
    /// bind(2) to this source address (`-I ADDR`, `-B`).
    pub source: Option<IpAddr>,
    /// The identifier asked for (`-e`): a datagram socket binds it as its port (the kernel
    /// writes the port into the identifier field); a raw one writes it itself.
    pub port: Option<u16>,
    /// IP_TOS / IPV6_TCLASS (`-Q`).
    pub tos: Option<u8>,
    /// SO_MARK (`-m`).
    pub mark: Option<u32>,
    /// IP_MTU_DISCOVER / IPV6_MTU_DISCOVER (`-M`).
    pub pmtu: Option<libc::c_int>,
    /// SO_DONTROUTE (`-r`).
    pub dont_route: bool,
    /// SO_TIMESTAMPNS: the kernel stamps each message's arrival (iputils' default; `-U` not).
    pub kernel_timestamps: bool,
}

/// An open ICMP socket towards one destination.
#[derive(Debug)]
pub struct IcmpSocket {
    socket: Socket,
    destination: SockAddr,
    v6: bool,
    kind: SocketKind,
    identifier: u16,
    buf: Vec<MaybeUninit<u8>>,
    control: Vec<MaybeUninit<u8>>,
    /// How long the last message read had waited since the kernel stamped it.
    last_delay: Option<Duration>,
}

/// Large enough for any IP packet we accept, header included.
const RECV_BUF: usize = 65_536 + 60;
/// Room for the control messages we ask for (TTL, hop limit, an extended error + address).
const CONTROL_BUF: usize = 512;
/// Queue room for flood pings: bursts of replies must not be dropped before we read them.
const RCVBUF: usize = 256 * 1024;

/// Opens a datagram ICMP socket, or a raw one when datagram sockets are not allowed. Neither
/// allowed is a usage-class error (exit 2, as iputils) with a hint naming both fixes.
pub fn open(destination: IpAddr, opts: IcmpOptions) -> anyhow::Result<IcmpSocket> {
    let v6 = destination.is_ipv6();
    let (domain, protocol) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let (socket, kind) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(socket) => (socket, SocketKind::Datagram),
        Err(dgram_err) if is_permission(&dgram_err) => {
            match Socket::new(domain, Type::RAW, Some(protocol)) {
                Ok(socket) => (socket, SocketKind::Raw),
                Err(raw_err) if is_permission(&raw_err) => {
                    return Err(anyhow::Error::new(
                        UsageError::new(format!(
                            "open an ICMP socket: {dgram_err} (datagram), {raw_err} (raw)"
                        ))
                        .with_hint(
                            "allow unprivileged ICMP with `sysctl -w net.ipv4.ping_group_range=\"0 \
                             2147483647\"`, or give nk CAP_NET_RAW (`setcap cap_net_raw+ep $(which nk)`)",
                        ),
                    ))
                }
                Err(raw_err) => return Err(anyhow::Error::new(raw_err).context("open raw ICMP socket")),
            }
        }
        Err(err) => return Err(anyhow::Error::new(err).context("open ICMP socket")),
    };
    let fd = socket.as_raw_fd();
    apply_tuning(&socket, v6, &opts.tuning)?;
    if let Some(ttl) = opts.ttl {
        let result = if v6 {
            socket.set_unicast_hops_v6(ttl)
        } else {
            socket.set_ttl(ttl)
        };
        result.map_err(|e| anyhow::Error::new(e).context(format!("set TTL {ttl}")))?;
    }
    if v6 {
        socket.set_recv_hoplimit_v6(true)?;
        if kind == SocketKind::Datagram {
            set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)?;
        }
    } else if kind == SocketKind::Datagram {
        set_int(fd, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
        set_int(fd, libc::IPPROTO_IP, libc::IP_RECVERR, 1)?;
    }
    if opts.broadcast {
        socket
            .set_broadcast(true)
            .map_err(|e| anyhow::Error::new(e).context("cannot set broadcasting"))?;
    }
    let _ = socket.set_recv_buffer_size(RCVBUF);
    // -e asks for an identifier; a raw socket writes it (and filters on it) itself.
    let raw_identifier = opts.tuning.port.unwrap_or(opts.identifier);
    if kind == SocketKind::Raw {
        // Best effort: without the filter the parser still rejects what is not ours.
        let _ = socket.attach_filter(&raw_filter(v6, raw_identifier));
    }
    let source = opts.tuning.source.unwrap_or(if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    });
    let source = match source {
        IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, opts.scope_id)),
        IpAddr::V4(_) => SocketAddr::new(source, 0),
    };
    let bind = |port: u16| {
        let mut at = source;
        at.set_port(port);
        socket
            .bind(&at.into())
            .map_err(|e| anyhow::Error::new(UsageError::new(format!("bind: {}", os_words(&e)))))
    };
    let identifier = match kind {
        SocketKind::Raw => {
            if opts.tuning.source.is_some() {
                bind(0)?;
            }
            raw_identifier
        }
        // The kernel puts the socket's "port" in the identifier field; bind to learn it.
        SocketKind::Datagram => {
            bind(opts.tuning.port.unwrap_or(0))?;
            socket
                .local_addr()?
                .as_socket()
                .map_or(0, |addr| addr.port())
        }
    };
    let destination = match destination {
        IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, opts.scope_id)),
        IpAddr::V4(_) => SocketAddr::new(destination, 0),
    };
    Ok(IcmpSocket {
        socket,
        destination: destination.into(),
        v6,
        kind,
        identifier,
        buf: vec![MaybeUninit::uninit(); RECV_BUF],
        control: vec![MaybeUninit::uninit(); CONTROL_BUF],
        last_delay: None,
    })
}

/// A classic BPF program for a raw socket: keep echo replies with our identifier and every
/// ICMP error; drop echo requests (our own, looped back on lo, and everyone else's) and other
/// programs' replies, so a flood wakes us once per reply instead of twice.
fn raw_filter(v6: bool, identifier: u16) -> Vec<libc::sock_filter> {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let (reply, request) = if v6 { (129, 128) } else { (0, 8) };
    // IPv4 raw sockets deliver the IP header: X = its length; IPv6 ones start at the ICMPv6 header.
    let header = if v6 {
        op(libc::BPF_LDX | libc::BPF_IMM, 0, 0, 0)
    } else {
        op(libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH, 0, 0, 0)
    };
    vec![
        header,
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_IND, 0, 0, 0), // type
        op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 2, 0, reply),
        op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 4, 0, request),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0xffff), // an error or other ICMP: keep
        op(libc::BPF_LD | libc::BPF_H | libc::BPF_IND, 0, 0, 4), // identifier
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            u32::from(identifier),
        ),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0xffff),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
    ]
}

/// Sets what `tuning` asks for on a new socket. A device that does not exist and an option
/// the kernel refuses are usage-class errors (exit 2, as iputils), except SO_MARK, which
/// iputils only warns about (it needs CAP_NET_ADMIN).
fn apply_tuning(socket: &Socket, v6: bool, tuning: &SocketTuning) -> anyhow::Result<()> {
    let fd = socket.as_raw_fd();
    let refused = |what: String| {
        move |e: io::Error| anyhow::Error::new(UsageError::new(format!("{what}: {}", os_words(&e))))
    };
    if let Some(device) = &tuning.device {
        socket
            .bind_device(Some(device.as_bytes()))
            .map_err(refused(format!("SO_BINDTODEVICE {device}")))?;
    }
    if let Some(tos) = tuning.tos {
        let (level, name) = if v6 {
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
        } else {
            (libc::IPPROTO_IP, libc::IP_TOS)
        };
        set_int(fd, level, name, libc::c_int::from(tos))
            .map_err(refused("error setting QOS sockopts".into()))?;
    }
    if let Some(mark) = tuning.mark {
        if let Err(err) = socket.set_mark(mark) {
            crate::log::warn(format_args!(
                "failed to set mark: {mark}: {}",
                os_words(&err)
            ));
        }
    }
    if let Some(pmtu) = tuning.pmtu {
        let (level, name) = if v6 {
            (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER)
        } else {
            (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)
        };
        set_int(fd, level, name, pmtu).map_err(refused("IP_MTU_DISCOVER".into()))?;
    }
    if tuning.dont_route {
        set_int(fd, libc::SOL_SOCKET, libc::SO_DONTROUTE, 1)
            .map_err(refused("SO_DONTROUTE".into()))?;
    }
    if tuning.kernel_timestamps {
        // Best effort: without it replies are timed when read (as with -U).
        let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
    }
    Ok(())
}

/// The system's words for an OS error, without Rust's ` (os error N)`, as iputils prints it.
fn os_words(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The MTU the kernel holds for the path to `destination` (IP_MTU of a connected UDP socket,
/// with the device and mark of `tuning`): what a local `message too long` was measured
/// against, cached path MTU included.
pub fn path_mtu(destination: SocketAddr, tuning: &SocketTuning) -> io::Result<u32> {
    let probe = probe_socket(destination, false, tuning)?;
    probe.connect(&with_port(destination).into())?;
    let (level, name) = if destination.is_ipv6() {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU)
    };
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: mtu and len are valid for writes of the sizes given; the fd is open.
    let rc = unsafe {
        libc::getsockopt(
            probe.as_raw_fd(),
            level,
            name,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u32::try_from(mtu).unwrap_or(0))
}

/// A UDP socket set up as the ICMP socket will be where it changes the route: device, mark,
/// source address. Not SO_DONTROUTE: iputils' probe does not set it either, so `-r` towards
/// a host that is not on a link is sent (and goes unanswered) rather than refused.
fn probe_socket(
    destination: SocketAddr,
    broadcast: bool,
    tuning: &SocketTuning,
) -> io::Result<Socket> {
    let domain = if destination.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let probe = Socket::new(domain, Type::DGRAM, None)?;
    if broadcast {
        probe.set_broadcast(true)?;
    }
    // Errors name the step, as iputils does (`SO_BINDTODEVICE eth9: No such device`).
    let step = |what: String| {
        move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {}", os_words(&e)))
    };
    if let Some(device) = &tuning.device {
        probe
            .bind_device(Some(device.as_bytes()))
            .map_err(step(format!("SO_BINDTODEVICE {device}")))?;
    }
    if let Some(mark) = tuning.mark {
        // Without CAP_NET_ADMIN the route is the unmarked one, as for the requests.
        let _ = probe.set_mark(mark);
    }
    if let Some(source) = tuning.source {
        let at = match (source, destination) {
            (IpAddr::V6(ip), SocketAddr::V6(dest)) => {
                SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, dest.scope_id()))
            }
            _ => SocketAddr::new(source, 0),
        };
        probe.bind(&at.into()).map_err(step("bind".into()))?;
    }
    Ok(probe)
}

/// Whether interface `device` holds address `ip` (getifaddrs(3)): with SO_BINDTODEVICE the
/// kernel may still pick a source address of another interface, which iputils warns about.
pub fn device_has_address(device: &str, ip: IpAddr) -> bool {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return true; // Cannot tell: no warning.
    }
    let mut found = false;
    let mut entry = list;
    while !entry.is_null() && !found {
        // SAFETY: `entry` is a node of the list getifaddrs returned, not yet freed.
        let node = unsafe { &*entry };
        entry = node.ifa_next;
        if node.ifa_addr.is_null() || node.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated interface name.
        let name = unsafe { std::ffi::CStr::from_ptr(node.ifa_name) };
        if name.to_bytes() != device.as_bytes() {
            continue;
        }
        // SAFETY: a non-null ifa_addr points to a sockaddr whose family says its size.
        let addr = unsafe {
            SockAddr::try_init(|storage, len| {
                let size = match i32::from((*node.ifa_addr).sa_family) {
                    libc::AF_INET => std::mem::size_of::<libc::sockaddr_in>(),
                    libc::AF_INET6 => std::mem::size_of::<libc::sockaddr_in6>(),
                    _ => 0,
                };
                std::ptr::copy_nonoverlapping(
                    node.ifa_addr.cast::<u8>(),
                    storage.cast::<u8>(),
                    size,
                );
                *len = size as libc::socklen_t;
                Ok(())
            })
        };
        found = addr
            .ok()
            .and_then(|(_, addr)| addr.as_socket())
            .is_some_and(|addr| addr.ip() == ip);
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// `destination` with the port iputils' route probe uses (any port would do).
fn with_port(destination: SocketAddr) -> SocketAddr {
    let mut target = destination;
    target.set_port(1025);
    target
}

/// Asks the kernel which source address it would use towards `destination`, by connecting a
/// UDP socket (no packet is sent), as iputils does before its first request. A destination
/// the kernel will not route (no route; an unreachable, blackhole or prohibit route; a
/// broadcast address without SO_BROADCAST; ::1 with lo down) fails here with the errno every
/// request would get, so the caller can stop at once instead of failing once per packet.
pub fn route_source(destination: SocketAddr, broadcast: bool) -> io::Result<SocketAddr> {
    route_source_with(destination, broadcast, &SocketTuning::default())
}

/// [`route_source`] for a socket with `tuning`'s device, mark and source.
pub fn route_source_with(
    destination: SocketAddr,
    broadcast: bool,
    tuning: &SocketTuning,
) -> io::Result<SocketAddr> {
    let probe = probe_socket(destination, broadcast, tuning)?;
    probe.connect(&with_port(destination).into())?;
    probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "getsockname: not an IP address"))
}

fn is_permission(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

impl EchoSocket for IcmpSocket {
    fn kind(&self) -> SocketKind {
        self.kind
    }

    fn identifier(&self) -> u16 {
        self.identifier
    }

    fn last_queue_delay(&self) -> Option<Duration> {
        self.last_delay
    }

    fn send(&mut self, message: &[u8]) -> io::Result<()> {
        loop {
            match self.socket.send_to(message, &self.destination) {
                Ok(_) => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    fn receive(&mut self, deadline: Deadline) -> io::Result<Option<Received>> {
        // On loopback the reply is often queued before send() returns: read first, and poll
        // only when nothing is there (one syscall per reply instead of two in a flood).
        match self.receive_message() {
            Ok(received) => return Ok(received),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
        loop {
            // A timeout or a signal returns to the caller, which decides what is due.
            let Some(revents) = wait_readable(self.socket.as_raw_fd(), deadline)? else {
                return Ok(None);
            };
            if revents & libc::POLLERR != 0 && self.kind == SocketKind::Datagram {
                if let Some(error) = self.receive_error()? {
                    return Ok(Some(error));
                }
                continue;
            }
            match self.receive_message() {
                Ok(received) => return Ok(received),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(None),
                Err(err) => return Err(err),
            }
        }
    }
}

impl std::os::fd::AsRawFd for IcmpSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

impl IcmpSocket {
    /// Sends one ICMP message to `destination` rather than the socket's own: `nk ping`'s
    /// multi-target mode pings every target of a family through one socket.
    pub fn send_to(&mut self, message: &[u8], destination: SocketAddr) -> io::Result<()> {
        let destination = SockAddr::from(destination);
        loop {
            match self.socket.send_to(message, &destination) {
                Ok(_) => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    fn receive_message(&mut self) -> io::Result<Option<Received>> {
        let (len, (from, scope_id), control) = self.recvmsg(libc::MSG_DONTWAIT)?;
        self.last_delay = control_timestamp(&self.control[..control])
            .and_then(|stamped| SystemTime::now().duration_since(stamped).ok());
        let bytes = assume_init(&self.buf[..len]);
        let mut ttl = control_ttl(&self.control[..control]);
        let message = if self.kind == SocketKind::Raw && !self.v6 {
            let Some((header_ttl, icmp_bytes)) = icmp::strip_ipv4(bytes) else {
                return Ok(Some(Received {
                    from,
                    scope_id,
                    ttl,
                    message: Incoming::Other,
                }));
            };
            ttl = Some(header_ttl);
            icmp_bytes
        } else {
            bytes
        };
        Ok(Some(Received {
            from,
            scope_id,
            ttl,
            message: icmp::parse(self.v6, message),
        }))
    }

    /// Reads one ICMP error from the error queue of a datagram socket: the data is our
    /// request, the control message says what happened and who said it.
    fn receive_error(&mut self) -> io::Result<Option<Received>> {
        let (len, _, control) = match self.recvmsg(libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) {
            Ok(got) => got,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(err) => return Err(err),
        };
        let request = assume_init(&self.buf[..len]);
        let Some(extended) = control_error(&self.control[..control]) else {
            return Ok(None);
        };
        if request.len() < icmp::HEADER_LEN {
            return Ok(None);
        }
        let Some(text) = icmp::error_text(self.v6, extended.kind, extended.code, extended.info)
        else {
            return Ok(None);
        };
        Ok(Some(Received {
            from: extended
                .offender
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            scope_id: extended.offender_scope,
            ttl: None,
            message: Incoming::Error(ErrorReport {
                identifier: u16::from_be_bytes([request[4], request[5]]),
                sequence: u16::from_be_bytes([request[6], request[7]]),
                text,
            }),
        }))
    }

    /// recvmsg into our buffers: (data length, (sender, its IPv6 scope), control length).
    fn recvmsg(&mut self, flags: libc::c_int) -> io::Result<(usize, (IpAddr, u32), usize)> {
        // SAFETY: an all-zero sockaddr_storage is a valid (unspecified) address buffer.
        let mut from = unsafe { SockAddr::try_init(|_, _| Ok(())) }?.1;
        let mut bufs = [MaybeUninitSlice::new(&mut self.buf)];
        let mut msg = MsgHdrMut::new()
            .with_addr(&mut from)
            .with_buffers(&mut bufs)
            .with_control(&mut self.control);
        let len = self.socket.recvmsg(&mut msg, flags)?;
        let control = msg.control_len();
        let sender = match from.as_socket() {
            Some(SocketAddr::V6(a)) => (IpAddr::V6(*a.ip()), a.scope_id()),
            Some(a) => (a.ip(), 0),
            None => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        };
        Ok((len, sender, control))
    }
}

/// The TTL (IP_TTL) or hop limit (IPV6_HOPLIMIT) control message, as an int.
fn control_ttl(control: &[MaybeUninit<u8>]) -> Option<u8> {
    control_messages(control)
        .into_iter()
        .find(|(level, kind, _)| {
            (*level == libc::IPPROTO_IP && *kind == libc::IP_TTL)
                || (*level == libc::IPPROTO_IPV6 && *kind == libc::IPV6_HOPLIMIT)
        })
        .and_then(|(_, _, data)| data.get(..4))
        .map(|data| i32::from_ne_bytes([data[0], data[1], data[2], data[3]]))
        .and_then(|ttl| u8::try_from(ttl).ok())
}

/// The kernel's receive time (SO_TIMESTAMPNS: a struct timespec of CLOCK_REALTIME).
fn control_timestamp(control: &[MaybeUninit<u8>]) -> Option<SystemTime> {
    let (_, _, data) = control_messages(control)
        .into_iter()
        .find(|(level, kind, _)| *level == libc::SOL_SOCKET && *kind == libc::SO_TIMESTAMPNS)?;
    let secs = i64::from_ne_bytes(data.get(..8)?.try_into().ok()?);
    let nanos = i64::from_ne_bytes(data.get(8..16)?.try_into().ok()?);
    let since_epoch = Duration::new(
        u64::try_from(secs).ok()?,
        u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000)?,
    );
    SystemTime::UNIX_EPOCH.checked_add(since_epoch)
}

/// What an IP_RECVERR / IPV6_RECVERR control message says.
#[derive(Debug)]
struct ExtendedError {
    kind: u8,
    code: u8,
    info: u32,
    offender: Option<IpAddr>,
    /// The offender's IPv6 scope (sin6_scope_id), 0 when none.
    offender_scope: u32,
}

/// Parses `struct sock_extended_err` and the offender address after it (SO_EE_OFFENDER).
fn control_error(control: &[MaybeUninit<u8>]) -> Option<ExtendedError> {
    const ORIGIN_ICMP: u8 = 2;
    const ORIGIN_ICMP6: u8 = 3;
    let (_, _, data) = control_messages(control)
        .into_iter()
        .find(|(level, kind, _)| {
            (*level == libc::IPPROTO_IP && *kind == libc::IP_RECVERR)
                || (*level == libc::IPPROTO_IPV6 && *kind == libc::IPV6_RECVERR)
        })?;
    // struct sock_extended_err { u32 errno; u8 origin, type, code, pad; u32 info, data; }
    let fixed = data.get(..16)?;
    let origin = fixed[4];
    if origin != ORIGIN_ICMP && origin != ORIGIN_ICMP6 {
        return None;
    }
    let info = u32::from_ne_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    let offender = data.get(16..).and_then(sockaddr_ip);
    let offender_scope = data.get(16..).and_then(sockaddr_scope).unwrap_or(0);
    Some(ExtendedError {
        kind: fixed[5],
        code: fixed[6],
        info,
        offender,
        offender_scope,
    })
}

/// The sin6_scope_id of a raw sockaddr_in6.
fn sockaddr_scope(raw: &[u8]) -> Option<u32> {
    let family = u16::from_ne_bytes([*raw.first()?, *raw.get(1)?]);
    if i32::from(family) != libc::AF_INET6 {
        return None;
    }
    let bytes: [u8; 4] = raw.get(24..28)?.try_into().ok()?;
    Some(u32::from_ne_bytes(bytes))
}

/// The IP of a raw sockaddr_in / sockaddr_in6.
fn sockaddr_ip(raw: &[u8]) -> Option<IpAddr> {
    let family = u16::from_ne_bytes([*raw.first()?, *raw.get(1)?]);
    match i32::from(family) {
        libc::AF_INET => {
            let octets: [u8; 4] = raw.get(4..8)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        libc::AF_INET6 => {
            let octets: [u8; 16] = raw.get(8..24)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::cmsg::encode as cmsg;
    use crate::net::cmsg::tests::uninit;

    #[test]
    fn control_messages_give_ttl_and_errors() {
        let mut control = cmsg(libc::IPPROTO_IP, libc::IP_TTL, &64i32.to_ne_bytes());
        let mut ee = vec![0u8; 16];
        ee[0..4].copy_from_slice(&113u32.to_ne_bytes());
        ee[4] = 2; // SO_EE_ORIGIN_ICMP
        ee[5] = 3; // destination unreachable
        ee[6] = 1; // host unreachable
        let mut sin = vec![0u8; 16];
        sin[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        sin[4..8].copy_from_slice(&[10, 0, 0, 1]);
        ee.extend_from_slice(&sin);
        control.extend(cmsg(libc::IPPROTO_IP, libc::IP_RECVERR, &ee));
        let control = uninit(&control);
        assert_eq!(control_ttl(&control), Some(64));
        let error = control_error(&control).unwrap();
        assert_eq!((error.kind, error.code), (3, 1));
        assert_eq!(error.offender, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        // A truncated control buffer is read as far as it is whole, never further.
        assert_eq!(control_ttl(&control[..10]), None);
    }
}
