//! Diagnostics on stderr, gated by `-v` / `-vv`.
//!
//! cli.md keeps stdout for payload alone, so everything nk says about what it is doing goes
//! here: one line per event, prefixed `nk: `, with a chrono timestamp from `-vv` on so that a
//! transcript can be correlated with a packet capture. The verbosity is process-wide because
//! every layer (resolution, Happy Eyeballs, the relay) reports into the same stream.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

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
/// held back counted in the next line (or, when no other comes, in a line of their own a
/// second later, and at a signal's exit), so a flood of refused clients cannot flood stderr.
pub fn turned_away(message: std::fmt::Arguments<'_>) {
    if verbosity() >= 1 {
        at(1, message);
        return;
    }
    let mut throttle = lock_turned_away();
    let now = Instant::now();
    if throttle
        .said
        .is_some_and(|at| now.duration_since(at) < TURNED_AWAY_EVERY)
    {
        throttle.held += 1;
        if throttle.held == 1 {
            // No later refusal may come to carry the count: a line of its own will.
            let wait =
                TURNED_AWAY_EVERY.saturating_sub(now.duration_since(throttle.said.unwrap_or(now)));
            let _ = std::thread::Builder::new()
                .name("turned-away".into())
                .spawn(move || {
                    std::thread::sleep(wait);
                    flush_turned_away();
                });
        }
        return;
    }
    let held = std::mem::take(&mut throttle.held);
    throttle.said = Some(now);
    drop(throttle);
    if held == 0 {
        warn(message);
    } else {
        warn(format_args!(
            "{message} (and {held} more turned away in the second before)"
        ));
    }
}

/// Says the clients [`turned_away`] held back and no line has counted yet (a second after
/// the last line, and before a signal ends nk).
pub fn flush_turned_away() {
    let mut throttle = lock_turned_away();
    let held = std::mem::take(&mut throttle.held);
    if held == 0 {
        return;
    }
    throttle.said = Some(Instant::now());
    drop(throttle);
    warn(format_args!(
        "{} turned away in the second after the last such line",
        count(held, "more client")
    ));
}

/// At most one [`turned_away`] line per this.
const TURNED_AWAY_EVERY: Duration = Duration::from_secs(1);

/// When a turned-away line was last said, and how many clients were held back since.
#[derive(Default)]
struct Throttle {
    said: Option<Instant>,
    held: u64,
}

fn lock_turned_away() -> std::sync::MutexGuard<'static, Throttle> {
    static THROTTLE: std::sync::Mutex<Throttle> = std::sync::Mutex::new(Throttle {
        said: None,
        held: 0,
    });
    THROTTLE.lock().unwrap_or_else(|e| e.into_inner())
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
