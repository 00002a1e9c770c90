//! Socket options, set through socket2 before the socket is used.
//!
//! Options that shape the connection (buffer sizes, which decide the TCP window scale) must be
//! set before `connect`/`listen`, so they are applied to the bare [`socket2::Socket`] and not to
//! a std stream afterwards. Each field says which option it sets.

use std::io;

use anyhow::{Context, Result};
use socket2::Socket;

/// The socket options a user can ask for on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SockOpts {
    /// TCP_NODELAY: send small writes at once (no Nagle).
    pub nodelay: bool,
    /// SO_KEEPALIVE: probe an idle connection so a dead peer is noticed.
    pub keepalive: bool,
    /// IP_TOS (IPv4) / IPV6_TCLASS (IPv6): the traffic class byte.
    pub tos: Option<u32>,
    /// IP_TTL (IPv4) / IPV6_UNICAST_HOPS (IPv6): hop limit of outgoing packets.
    pub ttl: Option<u32>,
    /// SO_SNDBUF: send buffer size in bytes (the kernel doubles it for bookkeeping).
    pub sndbuf: Option<usize>,
    /// SO_RCVBUF: receive buffer size in bytes; set before connect/listen to affect window scale.
    pub rcvbuf: Option<usize>,
    /// SO_REUSEADDR: bind a port still in TIME_WAIT (listeners always set it).
    pub reuseaddr: bool,
    /// SO_REUSEPORT: several sockets bound to one port share incoming connections.
    pub reuseport: bool,
}

impl SockOpts {
    /// Applies every requested option to a socket of the given family.
    pub fn apply(&self, socket: &Socket, ipv6: bool) -> Result<()> {
        let set =
            |name: &str, result: io::Result<()>| result.with_context(|| format!("set {name}"));
        if self.reuseaddr {
            set("SO_REUSEADDR", socket.set_reuse_address(true))?;
        }
        if self.reuseport {
            set("SO_REUSEPORT", socket.set_reuse_port(true))?;
        }
        if let Some(size) = self.sndbuf {
            set("SO_SNDBUF", socket.set_send_buffer_size(size))?;
        }
        if let Some(size) = self.rcvbuf {
            set("SO_RCVBUF", socket.set_recv_buffer_size(size))?;
        }
        if self.nodelay {
            set("TCP_NODELAY", socket.set_nodelay(true))?;
        }
        if self.keepalive {
            set("SO_KEEPALIVE", socket.set_keepalive(true))?;
        }
        if let Some(tos) = self.tos {
            if ipv6 {
                set("IPV6_TCLASS", socket.set_tclass_v6(tos))?;
            } else {
                set("IP_TOS", socket.set_tos(tos))?;
            }
        }
        if let Some(ttl) = self.ttl {
            if ipv6 {
                set("IPV6_UNICAST_HOPS", socket.set_unicast_hops_v6(ttl))?;
            } else {
                set("IP_TTL", socket.set_ttl(ttl))?;
            }
        }
        Ok(())
    }
}

/// Ends a connection with a reset rather than a FIN (a client dropped for falling behind
/// must not take the cut for the end of the data), and wakes every thread blocked on it.
/// `connect(AF_UNSPEC)` disconnects a TCP socket with an RST while the descriptor stays
/// open for those threads; a Unix socket, which has no reset, is shut down.
pub fn abort(socket: &Socket) {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC is a valid argument to connect, which
    // reads at most `size_of::<sockaddr>()` bytes of it.
    let unspec: libc::sockaddr = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the call; the address is valid as above.
    unsafe {
        libc::connect(
            socket.as_raw_fd(),
            &unspec,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    let _ = socket.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol, Type};

    #[test]
    fn every_option_reads_back() {
        let opts = SockOpts {
            nodelay: true,
            keepalive: true,
            tos: Some(0x10),
            ttl: Some(7),
            sndbuf: Some(65536),
            rcvbuf: Some(65536),
            reuseaddr: true,
            reuseport: true,
        };
        let v4 = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        opts.apply(&v4, false).unwrap();
        assert!(v4.nodelay().unwrap());
        assert!(v4.keepalive().unwrap());
        assert_eq!(v4.tos().unwrap(), 0x10);
        assert_eq!(v4.ttl().unwrap(), 7);
        assert!(v4.send_buffer_size().unwrap() >= 65536);
        assert!(v4.reuse_address().unwrap());
        assert!(v4.reuse_port().unwrap());
        let v6 = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)).unwrap();
        opts.apply(&v6, true).unwrap();
        assert_eq!(v6.tclass_v6().unwrap(), 0x10);
        assert_eq!(v6.unicast_hops_v6().unwrap(), 7);
    }
}
