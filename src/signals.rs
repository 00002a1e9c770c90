//! SIGINT, SIGTERM, SIGHUP, SIGQUIT: print what the user would want to know, clean up, exit
//! 128 + the signal's number (130, 143, 129, 131).
//!
//! cli.md asks for the command's summary on SIGINT before exiting 130, and for the Unix socket
//! file to go on every exit. The default action of any of these four signals would kill the
//! process mid-relay without a word and leave the socket file behind (a closed terminal sends
//! SIGHUP, ^\ SIGQUIT), so one helper thread waits for them all (signal-hook's self-pipe,
//! nothing unsafe in a handler), runs the command's current last words (which also end the
//! connections and programs of a server), removes what nk created, and exits.
//! Commands replace the last words as they go (a listener first, then its connection).

use std::process;
use std::sync::{Mutex, Once};
use std::thread;

use anyhow::Result;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::exit::Status;

type LastWords = Box<dyn Fn() + Send>;

static LAST_WORDS: Mutex<Option<LastWords>> = Mutex::new(None);
static INSTALL: Once = Once::new();

/// The signals that end nk after cleaning up, and the status each one exits with.
const ENDING: [(i32, Status); 4] = [
    (SIGINT, Status::Interrupted),
    (SIGTERM, Status::Terminated),
    (SIGHUP, Status::HungUp),
    (SIGQUIT, Status::Quit),
];

/// On SIGINT, SIGTERM, SIGHUP or SIGQUIT, runs `last_words` (replacing any earlier ones),
/// removes the files nk created, and exits with 128 + the signal's number. A signal the
/// parent set to be ignored (a background job's SIGINT, `nohup`'s SIGHUP) stays ignored.
pub fn on_interrupt(last_words: impl Fn() + Send + 'static) -> Result<()> {
    *LAST_WORDS.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(last_words));
    install();
    Ok(())
}

/// Makes sure the ending signals clean up before exiting, even with nothing to say.
pub fn install() {
    INSTALL.call_once(|| {
        let wanted: Vec<i32> = ENDING
            .iter()
            .map(|&(signal, _)| signal)
            .filter(|&s| !is_ignored(s))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let Ok(mut signals) = Signals::new(&wanted) else {
            crate::log::warn(format_args!(
                "cannot install signal handlers; ^C will not clean up"
            ));
            return;
        };
        let spawned = thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    if let Some(words) = LAST_WORDS
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_ref()
                    {
                        words();
                    }
                    let status = ENDING
                        .iter()
                        .find(|&&(s, _)| s == signal)
                        .map_or(Status::Terminated, |&(_, status)| status);
                    exit(status);
                }
            });
        if spawned.is_err() {
            crate::log::warn(format_args!(
                "cannot start the signal thread; ^C will not clean up"
            ));
        }
    });
}

/// Exits the process after removing what nk created (Unix socket files).
pub fn exit(status: Status) -> ! {
    crate::net::unix::remove_bound_paths();
    process::exit(status.code().into());
}

/// Whether the signal's disposition is SIG_IGN (inherited from the parent).
fn is_ignored(signal: i32) -> bool {
    // SAFETY: `current` is plain data for sigaction to fill; a null new action only queries.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}
