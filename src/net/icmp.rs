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
}

/// Options of the socket itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct IcmpOptions {
    /// `-t`: TTL / hop limit of our requests.
    pub ttl: Option<u32>,
    /// The identifier a raw socket puts in requests.
    pub identifier: u16,
    /// `-b`: SO_BROADCAST, without which the kernel refuses to send to a broadcast address.
    pub broadcast: bool,
    /// The IPv6 scope (interface index) of a link-local destination, 0 for none.
    pub scope_id: u32,
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
    if kind == SocketKind::Raw {
        // Best effort: without the filter the parser still rejects what is not ours.
        let _ = socket.attach_filter(&raw_filter(v6, opts.identifier));
    }
    let identifier = match kind {
        SocketKind::Raw => opts.identifier,
        // The kernel puts the socket's "port" in the identifier field; bind to learn it.
        SocketKind::Datagram => {
            let any: IpAddr = if v6 {
                Ipv6Addr::UNSPECIFIED.into()
            } else {
                Ipv4Addr::UNSPECIFIED.into()
            };
            socket.bind(&SocketAddr::new(any, 0).into())?;
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

/// Asks the kernel which source address it would use towards `destination`, by connecting a
/// UDP socket (no packet is sent), as iputils does before its first request. A destination
/// the kernel will not route (no route; an unreachable, blackhole or prohibit route; a
/// broadcast address without SO_BROADCAST; ::1 with lo down) fails here with the errno every
/// request would get, so the caller can stop at once instead of failing once per packet.
pub fn route_source(destination: SocketAddr, broadcast: bool) -> io::Result<SocketAddr> {
    let domain = if destination.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let probe = Socket::new(domain, Type::DGRAM, None)?;
    if broadcast {
        probe.set_broadcast(true)?;
    }
    // Any port will do; iputils uses 1025.
    let mut target = destination;
    target.set_port(1025);
    probe.connect(&target.into())?;
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
