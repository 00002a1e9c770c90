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
    TURNED_AWAY.say(message);
}

/// A datagram a UDP server leaves unanswered (refused, over the rate, or its reply not
/// sent): said as [`turned_away`] says a client, with its own throttle and count, so that
/// a flood of datagrams neither floods stderr nor is counted as clients.
pub fn unanswered(message: std::fmt::Arguments<'_>) {
    UNANSWERED.say(message);
}

/// Says what [`turned_away`] and [`unanswered`] held back and no line has counted yet (a
/// second after the last line, and before a signal ends nk).
pub fn flush_turned_away() {
    TURNED_AWAY.flush();
    UNANSWERED.flush();
}

/// At most one line of a [`Throttle`] per this.
const THROTTLE_EVERY: Duration = Duration::from_secs(1);

static TURNED_AWAY: Throttle = Throttle::new("client", "turned away");
static UNANSWERED: Throttle = Throttle::new("datagram", "left unanswered");

/// One kind of drop said at most once a second without `-v`: when its last line was said,
/// and how many drops were held back since.
struct Throttle {
    noun: &'static str,
    verb: &'static str,
    state: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    const fn new(noun: &'static str, verb: &'static str) -> Throttle {
        Throttle {
            noun,
            verb,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<Instant>, u64)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn say(&'static self, message: std::fmt::Arguments<'_>) {
        if verbosity() >= 1 {
            at(1, message);
            return;
        }
        let mut state = self.lock();
        let (said, held) = &mut *state;
        let now = Instant::now();
        if let Some(at) = said.filter(|at| now.duration_since(*at) < THROTTLE_EVERY) {
            *held += 1;
            if *held == 1 {
                // No later drop may come to carry the count: a line of its own will.
                let wait = THROTTLE_EVERY.saturating_sub(now.duration_since(at));
                let _ = std::thread::Builder::new()
                    .name("throttled-log".into())
                    .spawn(move || {
                        std::thread::sleep(wait);
                        self.flush();
                    });
            }
            return;
        }
        let held = std::mem::take(held);
        *said = Some(now);
        drop(state);
        if held == 0 {
            warn(message);
        } else {
            warn(format_args!(
                "{message} (and {held} more {} in the second before)",
                self.verb
            ));
        }
    }

    fn flush(&self) {
        let mut state = self.lock();
        let held = std::mem::take(&mut state.1);
        if held == 0 {
            return;
        }
        state.0 = Some(Instant::now());
        drop(state);
        warn(format_args!(
            "{} {} in the second after the last such line",
            count(held, &format!("more {}", self.noun)),
            self.verb
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
