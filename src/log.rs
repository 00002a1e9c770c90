//! Diagnostics on stderr, gated by `-v` / `-vv`.
//!
//! cli.md keeps stdout for payload alone, so everything nk says about what it is doing goes
//! here: one line per event, prefixed `nk: `, with a chrono timestamp from `-vv` on so that a
//! transcript can be correlated with a packet capture. The verbosity is process-wide because
//! every layer (resolution, Happy Eyeballs, the relay) reports into the same stream.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

static VERBOSITY: AtomicU8 = AtomicU8::new(0);

/// Sets the verbosity from the number of `-v` flags.
pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

/// The verbosity: 0 quiet, 1 `-v`, 2 `-vv`.
pub fn verbosity() -> u8 {
    VERBOSITY.load(Ordering::Relaxed)
}

/// Writes one diagnostic line if the verbosity is at least `level`.
pub fn at(level: u8, message: std::fmt::Arguments<'_>) {
    if verbosity() < level {
        return;
    }
    let line = if verbosity() >= 2 {
        format!(
            "nk: {} {message}\n",
            chrono::Local::now().format("%H:%M:%S%.6f")
        )
    } else {
        format!("nk: {message}\n")
    };
    // One write per line so that lines from concurrent threads never interleave; a closed
    // stderr is nothing we can report anywhere.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `1 datagram`, `3 datagrams`: a count with its noun, singular or plural as English wants.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Unconditional warning (shown without `-v`): something the user should know.
pub fn warn(message: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("nk: warning: {message}\n").as_bytes());
}

/// `-v` diagnostics: connections, peers, summaries.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::at(1, format_args!($($arg)*)) };
}

/// `-vv` diagnostics: every attempt, every option.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::at(2, format_args!($($arg)*)) };
}

/// A client turned away (`--allow`/`--deny`, `-m`, `--allow-uid`): said with `-v` each time;
/// without it said too (a dropped client is never silent), at most once a second, the ones
/// held back counted in the next line, so a flood of refused clients cannot flood stderr.
pub fn turned_away(message: std::fmt::Arguments<'_>) {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    /// When the last line was said, and how many were held back since.
    static LAST: Mutex<(Option<Instant>, u64)> = Mutex::new((None, 0));
    if verbosity() >= 1 {
        at(1, message);
        return;
    }
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if last
        .0
        .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
    {
        last.1 += 1;
        return;
    }
    let held = std::mem::take(&mut last.1);
    last.0 = Some(now);
    drop(last);
    if held == 0 {
        warn(message);
    } else {
        warn(format_args!(
            "{message} (and {held} more turned away in the second before)"
        ));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(super::count(1, "datagram"), "1 datagram");
        assert_eq!(super::count(0, "datagram"), "0 datagrams");
        assert_eq!(super::count(3, "byte"), "3 bytes");
    }
}
