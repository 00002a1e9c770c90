//! Ancillary data (control messages) and the int socket options socket2 does not wrap:
//! shared by the ICMP socket (TTL, error queue) and the UDP services (IP_PKTINFO).
//!
//! A UDP server bound to a wildcard address must answer from the address the request was
//! sent to: a client whose socket is connected (ours, dig's, most resolvers') drops a reply
//! from any other address, and on a host with several addresses the kernel's choice of
//! source may differ. IP_PKTINFO / IPV6_RECVPKTINFO tell us where each datagram was sent;
//! the same structures in sendmsg choose the reply's source. They also tell us when a
//! request was sent to a broadcast or multicast address, which a service must not answer.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};

use socket2::Socket;

/// setsockopt with an int value, for the options socket2 does not wrap.
pub(crate) fn set_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option reads one int of the size given; `fd` is an open socket.
    let result = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The received part of a buffer as bytes.
pub(crate) fn assume_init(buf: &[MaybeUninit<u8>]) -> &[u8] {
    // SAFETY: the kernel wrote these bytes (the caller passes only the received length).
    unsafe { &*(buf as *const [MaybeUninit<u8>] as *const [u8]) }
}

/// One control message: (level, type, data).
pub(crate) fn control_messages(control: &[MaybeUninit<u8>]) -> Vec<(i32, i32, &[u8])> {
    let bytes = assume_init(control);
    let header = std::mem::size_of::<libc::cmsghdr>();
    let align = std::mem::size_of::<usize>();
    let mut found = Vec::new();
    let mut offset = 0;
    while offset + header <= bytes.len() {
        let at = &bytes[offset..];
        let len = usize::from_ne_bytes(at[..align].try_into().unwrap_or_default());
        let level = i32::from_ne_bytes(at[align..align + 4].try_into().unwrap_or_default());
        let kind = i32::from_ne_bytes(at[align + 4..align + 8].try_into().unwrap_or_default());
        if len < header || offset + len > bytes.len() {
            break;
        }
        found.push((level, kind, &at[header..len]));
        offset += len.div_ceil(align) * align;
    }
    found
}

/// One control message as sendmsg wants it: header, data, padding to the alignment.
pub(crate) fn encode(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
    let header = std::mem::size_of::<libc::cmsghdr>();
    let align = std::mem::size_of::<usize>();
    let len = header + data.len();
    let mut out = Vec::with_capacity(len.div_ceil(align) * align);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&level.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.resize(header, 0);
    out.extend_from_slice(data);
    out.resize(len.div_ceil(align) * align, 0);
    out
}

/// Asks the kernel to report each datagram's destination address (both families on a
/// dual-stack socket).
pub(crate) fn report_destinations(socket: &Socket, ipv6: bool) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    set_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
    if ipv6 {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
    }
    Ok(())
}

/// The destination address of a received datagram, from IP_PKTINFO / IPV6_PKTINFO.
pub(crate) fn destination(control: &[MaybeUninit<u8>]) -> Option<IpAddr> {
    control_messages(control)
        .into_iter()
        .find_map(|(level, kind, data)| match (level, kind) {
            // struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                let octets: [u8; 4] = data.get(8..12)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(octets)))
            }
            // struct in6_pktinfo { in6_addr addr; int ifindex; }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                let octets: [u8; 16] = data.get(..16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(octets)).to_canonical())
            }
            _ => None,
        })
}

/// The control message that makes sendmsg send from `source` (IPv4 also on a dual-stack
/// socket, where Linux takes IP_PKTINFO for IPv4-mapped destinations).
pub(crate) fn send_from(source: IpAddr) -> Vec<u8> {
    match source.to_canonical() {
        IpAddr::V4(v4) => {
            let mut data = [0u8; 12];
            data[4..8].copy_from_slice(&v4.octets());
            encode(libc::IPPROTO_IP, libc::IP_PKTINFO, &data)
        }
        IpAddr::V6(v6) => {
            let mut data = [0u8; 20];
            data[..16].copy_from_slice(&v6.octets());
            encode(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &data)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn uninit(bytes: &[u8]) -> Vec<MaybeUninit<u8>> {
        bytes.iter().map(|b| MaybeUninit::new(*b)).collect()
    }

    #[test]
    fn destinations_are_read_from_pktinfo() {
        let mut v4 = [0u8; 12];
        v4[8..12].copy_from_slice(&[127, 0, 0, 2]);
        let control = encode(libc::IPPROTO_IP, libc::IP_PKTINFO, &v4);
        assert_eq!(
            destination(&uninit(&control)),
            Some("127.0.0.2".parse().unwrap())
        );
        let mut v6 = [0u8; 20];
        v6[15] = 1;
        let control = encode(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &v6);
        assert_eq!(destination(&uninit(&control)), Some("::1".parse().unwrap()));
        assert_eq!(destination(&uninit(&[])), None);
    }

    #[test]
    fn a_source_round_trips_through_its_control_message() {
        for ip in ["127.0.0.2", "::1", "::ffff:10.0.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let control = send_from(ip);
            let mut as_received = control.clone();
            if ip.to_canonical().is_ipv4() {
                // The kernel reports the header's destination in the third field.
                as_received[16 + 8..16 + 12].copy_from_slice(&control[16 + 4..16 + 8]);
            }
            assert_eq!(destination(&uninit(&as_received)), Some(ip.to_canonical()));
        }
    }
}
