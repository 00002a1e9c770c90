//! A small safe wrapper over epoll(7), for the servers that hold thousands of connections on
//! one thread (the RFC 862/867/865 services).
//!
//! A thread per connection costs a stack and a scheduler entry per idle client; the services
//! must hold 10,000 clients in well under 150 MB, so they keep each connection as a few words
//! of state in one event loop instead. socket2 has no epoll, hence libc here. Interest is
//! level-triggered: a handler that leaves bytes unread is woken again, so no event is lost.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::net::deadline::Deadline;

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
        let capacity = i32::try_from(self.events.len()).unwrap_or(i32::MAX);
        // SAFETY: the buffer holds `capacity` epoll_event entries and outlives the call.
        let ready = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                capacity,
                deadline.poll_timeout_ms(),
            )
        };
        let count = if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
            0
        } else {
            ready as usize
        };
        Ok(self.events[..count].iter().map(|e| Event {
            token: e.u64,
            flags: e.events,
        }))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

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
}
