//! Many datagrams in one system call: recvmmsg(2) into a set of buffers, for the event loops
//! that relay datagrams (`forward -u`).
//!
//! Why: a loop woken for a readable socket used to read with recvfrom until EAGAIN, so every
//! wake-up cost one failed call more than the datagrams it carried; with one request in
//! flight (a DNS query, a ping-pong) that is a third of the forwarder's system calls. One
//! recvmmsg returns every datagram queued (up to [`Batch::SLOTS`]) and, when it returns fewer
//! than it asked for, says by that alone that the queue is empty: no failed call at all.
//! Each datagram is received with MSG_TRUNC, as `datagram::receive` does, so one that did
//! not fit is seen with its real length, never passed on cut.

use std::io;
use std::os::fd::AsRawFd;

use socket2::{SockAddr, Socket};

/// Buffers for up to [`Batch::SLOTS`] datagrams of up to `size` bytes each, and what the last
/// [`Batch::receive`] put in them. Made once per loop: the buffers are untouched memory
/// (zeroed lazily by the kernel) until a datagram lands in one.
/// `Default` is a batch without buffers, which receives nothing: a placeholder while the
/// real one is lent out.
#[derive(Debug, Default)]
pub struct Batch {
    bufs: Vec<Box<[u8]>>,
    addrs: Vec<libc::sockaddr_storage>,
    /// Per slot: the datagram's real length, its sender's address length.
    got: Vec<(usize, libc::socklen_t)>,
    count: usize,
}

impl Batch {
    /// Datagrams one call may return: enough that a burst from many clients is read in few
    /// calls, few enough that one busy socket yields to the others soon.
    pub const SLOTS: usize = 16;

    pub fn new(size: usize) -> Batch {
        Batch {
            bufs: (0..Self::SLOTS)
                .map(|_| vec![0u8; size].into_boxed_slice())
                .collect(),
            // SAFETY: sockaddr_storage is plain data: all zeroes is a valid (empty) value.
            addrs: vec![unsafe { std::mem::zeroed() }; Self::SLOTS],
            got: vec![(0, 0); Self::SLOTS],
            count: 0,
        }
    }

    /// Receives what `socket` has queued, without waiting: the number of datagrams (at least
    /// one; WouldBlock when there were none). Fewer than [`Batch::SLOTS`] means the queue was
    /// empty when the call returned.
    pub fn receive(&mut self, socket: &Socket) -> io::Result<usize> {
        self.count = 0;
        // Only the placeholder has no buffers: it has nowhere to put a datagram.
        let slots = self.bufs.len().min(Self::SLOTS);
        if slots == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut iovs: [libc::iovec; Self::SLOTS] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; Self::SLOTS];
        // SAFETY: mmsghdr is plain data: all zeroes is a valid value (null pointers, 0 lengths).
        let mut hdrs: [libc::mmsghdr; Self::SLOTS] = unsafe { std::mem::zeroed() };
        for i in 0..slots {
            iovs[i].iov_base = self.bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = self.bufs[i].len();
            hdrs[i].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at its own live iovec (into a buffer of `iov_len`
        // bytes) and its own sockaddr_storage of `msg_namelen` bytes, all outliving the call;
        // the kernel writes at most those lengths and fills `msg_len` for each returned.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                slots as libc::c_uint,
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (got, hdr) in self.got.iter_mut().zip(&hdrs).take(n) {
            // With MSG_TRUNC, msg_len is the datagram's real length, even when it did not fit.
            *got = (hdr.msg_len as usize, hdr.msg_hdr.msg_namelen);
        }
        self.count = n;
        Ok(n)
    }

    /// Datagram `i` of the last receive: the bytes that fit, its real length (longer than
    /// the bytes when it was cut), and its sender.
    pub fn get(&self, i: usize) -> Option<(&[u8], usize, SockAddr)> {
        if i >= self.count {
            return None;
        }
        let (len, addr_len) = self.got[i];
        let buf = &self.bufs[i];
        // SAFETY: the kernel wrote a sockaddr of `addr_len` bytes (at most the storage's
        // size) into this slot's storage in the last receive.
        let from = unsafe { SockAddr::new(self.addrs[i], addr_len) };
        Some((&buf[..len.min(buf.len())], len, from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};

    fn udp_pair() -> (Socket, Socket) {
        let a = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        a.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        let b = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        b.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        (a, b)
    }

    #[test]
    fn the_placeholder_receives_nothing() {
        let (rx, tx) = udp_pair();
        tx.send_to(b"x", &rx.local_addr().unwrap()).unwrap();
        let mut placeholder = Batch::default();
        let err = placeholder.receive(&rx).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(placeholder.get(0).is_none());
    }

    #[test]
    fn one_call_returns_every_queued_datagram_with_its_sender_and_real_length() {
        let (rx, tx) = udp_pair();
        let to = rx.local_addr().unwrap();
        let mut batch = Batch::new(8);
        assert_eq!(
            batch.receive(&rx).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        tx.send_to(b"one", &to).unwrap();
        tx.send_to(b"", &to).unwrap();
        tx.send_to(b"longer than eight", &to).unwrap();
        // Loopback delivers at once, but give the kernel a moment all the same.
        let mut n = 0;
        for _ in 0..100 {
            n = batch.receive(&rx).unwrap_or(0);
            if n > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(n, 3);
        let (bytes, len, from) = batch.get(0).unwrap();
        assert_eq!((bytes, len), (&b"one"[..], 3));
        assert_eq!(from.as_socket(), tx.local_addr().unwrap().as_socket());
        assert_eq!(batch.get(1).unwrap().1, 0);
        let (bytes, len, _) = batch.get(2).unwrap();
        assert_eq!((bytes, len), (&b"longer t"[..], 17), "cut, and seen as cut");
        assert!(batch.get(3).is_none());
    }
}
