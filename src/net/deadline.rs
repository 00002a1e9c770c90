//! Deadlines: absolute instants that every blocking call measures itself against.
//!
//! A timeout given as a duration drifts when an operation is made of several blocking calls
//! (resolve, then connect to three addresses, then read): each call would get the full duration
//! again. A [`Deadline`] is fixed once, and each call asks [`Deadline::remaining`] just before it
//! blocks, so `-w 2s` bounds the whole attempt, as socket2's `connect_timeout` does per loop.
//! This module also parses the duration syntax every command shares (`5`, `1.5`, `500ms`, `2s`,
//! `3m`).

use std::io;
use std::time::{Duration, Instant};

/// An absolute point in time after which an operation gives up, or none ("no limit").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    /// No limit: blocking calls wait as long as it takes (the user asked for it).
    pub const NEVER: Deadline = Deadline { at: None };

    /// `timeout` from now, or no limit for `None`.
    pub fn after(timeout: Option<Duration>) -> Deadline {
        Deadline {
            at: timeout.map(|t| Instant::now() + t),
        }
    }

    /// A deadline at a given instant (loops that schedule several events pick the nearest).
    pub fn at(instant: Instant) -> Deadline {
        Deadline { at: Some(instant) }
    }

    /// Time left before the deadline: `Ok(None)` without a limit, a `TimedOut` error once it
    /// has passed (never a zero duration, which std's `set_read_timeout` would reject).
    pub fn remaining(self) -> io::Result<Option<Duration>> {
        match self.at {
            None => Ok(None),
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(io::Error::from(io::ErrorKind::TimedOut)),
            },
        }
    }

    /// Whether the deadline has passed.
    pub fn expired(self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }

    /// The earlier of two deadlines.
    pub fn min(self, other: Deadline) -> Deadline {
        match (self.at, other.at) {
            (Some(a), Some(b)) => Deadline { at: Some(a.min(b)) },
            (a, b) => Deadline { at: a.or(b) },
        }
    }

    /// Milliseconds left, in the form poll(2) takes: -1 for no limit, 0 once expired, and
    /// rounded up so that a poll never wakes just before the deadline and spins.
    pub fn poll_timeout_ms(self) -> i32 {
        match self.at {
            None => -1,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                let ms = left.as_micros().div_ceil(1000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        }
    }
}

/// Waits until `fd` is readable (or has an error pending), at most until `deadline`:
/// `Ok(Some(revents))` when ready, `Ok(None)` when the deadline passed or a signal interrupted
/// the wait (the caller looks around and decides), an error only when poll(2) itself fails.
pub fn wait_readable(fd: std::os::fd::RawFd, deadline: Deadline) -> io::Result<Option<i16>> {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut pollfd, 1, deadline.poll_timeout_ms()) };
    if ready < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(None);
        }
        return Err(err);
    }
    Ok((ready > 0).then_some(pollfd.revents))
}

/// A socket whose reads SO_RCVTIMEO can bound: std's TCP and UDP sockets, socket2's.
pub trait ReadTimeout {
    /// Sets SO_RCVTIMEO (`None`: block).
    fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()>;
}

macro_rules! read_timeout {
    ($socket:ty) => {
        impl ReadTimeout for $socket {
            fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
                <$socket>::set_read_timeout(self, timeout)
            }
        }
    };
}

read_timeout!(std::net::TcpStream);
read_timeout!(std::net::UdpSocket);
read_timeout!(socket2::Socket);

/// Whether a socket call stopped at its timeout: a read timeout shows as WouldBlock (EAGAIN)
/// on Linux, TimedOut elsewhere.
pub fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Whether a socket call is simply to be made again: it timed out, or a signal cut it short.
pub fn is_retry(err: &io::Error) -> bool {
    is_timeout(err) || err.kind() == io::ErrorKind::Interrupted
}

/// Calls `read` on `socket` (a read, a recv) with the socket's read timeout set to what is
/// left of `deadline`: `Ok(Some(n))` with what it returned, `Ok(None)` once the deadline has
/// passed. Interrupted reads, and timeouts that fire a little early, are tried again.
pub fn read_before<S: ReadTimeout>(
    socket: &S,
    deadline: Deadline,
    mut read: impl FnMut(&S) -> io::Result<usize>,
) -> io::Result<Option<usize>> {
    loop {
        let left = match deadline.remaining() {
            Ok(left) => left,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(None),
            Err(e) => return Err(e),
        };
        socket.set_read_timeout(left)?;
        match read(socket) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if is_retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Formats a duration compactly: `500ms`, `1.5s`, `2s`, `3m`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        if ms == 0 && !d.is_zero() {
            return format!("{}us", d.as_micros());
        }
        return format!("{ms}ms");
    }
    if ms % 60_000 == 0 {
        return format!("{}m", ms / 60_000);
    }
    let secs = d.as_secs_f64();
    let text = format!("{secs:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}s")
}

/// The longest duration accepted, a year: far beyond any useful timeout, and small enough
/// that `Instant + d` can never overflow.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// `-w DUR` and the other bounds on a wait for a peer: a duration above zero (0 would give up
/// before trying; leaving the option out is how to wait as long as it takes).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!(
            "invalid timeout \"{text}\": 0 would give up before trying (leave the option out \
             to wait as long as it takes)"
        )),
        d => Ok(d),
    }
}

/// `-i DUR`, an idle timeout, on every command: 0 means never.
pub fn idle_limit(idle: Option<Duration>) -> Option<Duration> {
    idle.filter(|d| !d.is_zero())
}

/// Parses `5`, `1.5`, `500ms`, `2s`, `3m`, `1h` (a bare number is seconds, as in nc and ping).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "us" => 0.000_001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "invalid duration \"{text}\": unknown unit \"{unit}\" (use us, ms, s, m or h, e.g. 500ms, 2s, 1.5)"
            ))
        }
    };
    if number.is_empty() || number.starts_with('.') && number.len() == 1 {
        return Err(format!(
            "invalid duration \"{text}\": expected a number such as 5, 1.5, 500ms"
        ));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration \"{text}\": \"{number}\" is not a number"))?;
    let seconds = value * scale;
    if !seconds.is_finite() || seconds > MAX_DURATION.as_secs_f64() {
        return Err(format!("invalid duration \"{text}\": longer than a year"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_before_gives_up_at_the_deadline_and_returns_what_came() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 16];
        let deadline = Deadline::after(Some(Duration::from_millis(30)));
        let got = read_before(&socket, deadline, |s| s.recv(&mut buf)).unwrap();
        assert_eq!(got, None);
        assert!(deadline.expired());
        socket.send_to(b"hi", socket.local_addr().unwrap()).unwrap();
        let deadline = Deadline::after(Some(Duration::from_secs(5)));
        let got = read_before(&socket, deadline, |s| s.recv(&mut buf)).unwrap();
        assert_eq!(got, Some(2));
    }

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for bad in [
            "",
            "s",
            "5x",
            "-1",
            "1.2.3",
            "ms",
            ".",
            "1e400",
            "99999999999999h",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.starts_with("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_secs(180)), "3m");
    }

    #[test]
    fn deadline_counts_down_and_expires() {
        assert_eq!(Deadline::NEVER.remaining().unwrap(), None);
        assert_eq!(Deadline::NEVER.poll_timeout_ms(), -1);
        let soon = Deadline::after(Some(Duration::from_secs(60)));
        let left = soon.remaining().unwrap().unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(59));
        let past = Deadline::after(Some(Duration::ZERO));
        assert!(past.expired());
        assert_eq!(
            past.remaining().unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(past.poll_timeout_ms(), 0);
        assert_eq!(soon.min(past), past);
        assert_eq!(Deadline::NEVER.min(soon), soon);
    }
}
