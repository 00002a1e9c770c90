//! Descriptor limits for the tests of servers that run out of them (`nk forward`, `nk echo
//! -l`): a running server is left an exact number of free descriptors, and its clients are
//! asked whether they were served, are waiting, or were cut.

use super::*;
use std::io::{self, Read, Write};
use std::net::TcpStream;

/// Waits (at most 5 s) until the process's count of open descriptors has not changed for
/// 0.3 s: its threads have made theirs (event loops open theirs after the listening line).
pub fn wait_for_descriptors_to_settle(pid: u32) {
    let count = || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let mut settled = 0;
    let mut last = count();
    for _ in 0..100 {
        thread::sleep(Duration::from_millis(50));
        let now = count();
        settled = if now == last { settled + 1 } else { 0 };
        last = now;
        if settled == 6 {
            break;
        }
    }
}

/// Lowers a running process's descriptor limit so that exactly `free` descriptor numbers are
/// left below it (descriptors numbered above the new limit, handed down by the test runner,
/// take none of them).
pub fn leave_free_descriptors(pid: u32, free: usize) {
    let mut open: Vec<usize> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the server's /proc/PID/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    open.sort_unstable();
    // The smallest limit with `free` numbers below it that no open descriptor holds.
    let mut limit = free;
    for fd in &open {
        if *fd < limit {
            limit += 1;
        }
    }
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // Only the soft limit is lowered: the hard one is kept as it was.
    // SAFETY: prlimit reads into `old`, a valid rlimit; a null new limit changes nothing.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0, "prlimit: read the server's limit");
    let new = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: old.rlim_max,
    };
    // SAFETY: `new` is a valid rlimit that outlives the call; no old limit is asked for.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(
        rc, 0,
        "prlimit: lower the server's limit to {limit} (open: {open:?})"
    );
}

/// What a client sees within `secs`: `Some(true)` its line echoed, `Some(false)` an EOF or a
/// reset, `None` nothing yet.
pub fn echoed_within(s: &mut TcpStream, line: &[u8], secs: f64) -> Option<bool> {
    // Peeked until the whole line is there, so that a line arriving in pieces around the
    // deadline is not half consumed (a later call would then wait for bytes already read).
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut got = vec![0u8; line.len()];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.peek(&mut got) {
            Ok(0) => return Some(false),
            Ok(n) if n == line.len() => {
                s.read_exact(&mut got).unwrap();
                return Some(got == line);
            }
            // Part of the line: give the rest a moment (bounded by the deadline).
            Ok(_) => thread::sleep(Duration::from_millis(5).min(left)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(false),
        }
    }
}

/// `n` clients of 127.0.0.1:`port`, each having sent its own line (`{label} {i:02}\n`), for
/// [`echoed_within`] to ask about.
pub fn clients_with_lines(port: u16, label: &str, n: usize) -> Vec<(TcpStream, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let mut s = connect_local(port);
            let line = format!("{label} {i:02}\n").into_bytes();
            s.write_all(&line).unwrap();
            (s, line)
        })
        .collect()
}
