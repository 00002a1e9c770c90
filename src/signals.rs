//! SIGINT, SIGTERM, SIGHUP (and SIGQUIT where nothing else claims it): print what the user
//! would want to know, clean up, exit 128 + the signal's number (130, 143, 129, 131).
//!
//! cli.md asks for the command's summary on SIGINT before exiting 130, and for the Unix socket
//! file to go on every exit. The default action of any of these signals would kill the process
//! mid-relay without a word and leave the socket file behind (a closed terminal sends SIGHUP,
//! ^\ SIGQUIT), so one helper thread waits for them (signal-hook's self-pipe, nothing unsafe
//! in a handler), runs the command's current last words (which also end the connections and
//! programs of a server), removes what nk created, and exits. SIGQUIT is added by the
//! commands that bind socket files ([`end_on_quit`]): `ping` keeps iputils' SIGQUIT.
//! Commands replace the last words as they go (a listener first, then its connection).

use std::process;
use std::sync::{Mutex, Once, OnceLock};
use std::thread;

use anyhow::Result;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::exit::Status;

type LastWords = Box<dyn Fn() + Send>;

static LAST_WORDS: Mutex<Option<LastWords>> = Mutex::new(None);
static INSTALL: Once = Once::new();
/// The signal thread's handle, to add SIGQUIT where it ends nk ([`end_on_quit`]).
static HANDLE: OnceLock<Handle> = OnceLock::new();

/// Signals that end every command; SIGQUIT joins them only through [`end_on_quit`], since
/// `ping` gives it iputils' meaning (a status line, and the run goes on).
const ALWAYS_ENDING: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// The signals that end nk after cleaning up, and the status each one exits with.
const ENDING: [(i32, Status); 4] = [
    (SIGINT, Status::Interrupted),
    (SIGTERM, Status::Terminated),
    (SIGHUP, Status::HungUp),
    (SIGQUIT, Status::Quit),
];

/// On SIGINT, SIGTERM or SIGHUP (and SIGQUIT after [`end_on_quit`]), runs `last_words`
/// (replacing any earlier ones), removes the files nk created, and exits with 128 + the
/// signal's number. A signal the parent set to be ignored (a background job's SIGINT,
/// `nohup`'s SIGHUP) stays ignored.
pub fn on_interrupt(last_words: impl Fn() + Send + 'static) -> Result<()> {
    *LAST_WORDS.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(last_words));
    install();
    Ok(())
}

/// Makes sure the ending signals clean up before exiting, even with nothing to say.
pub fn install() {
    INSTALL.call_once(|| {
        let wanted: Vec<i32> = ALWAYS_ENDING
            .into_iter()
            .filter(|&s| !is_ignored(s))
            .collect();
        // Even with all three ignored, the thread is started: end_on_quit may add SIGQUIT.
        let Ok(mut signals) = Signals::new(&wanted) else {
            crate::log::warn(format_args!(
                "cannot install signal handlers; ^C will not clean up"
            ));
            return;
        };
        let _ = HANDLE.set(signals.handle());
        let spawned = thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    // Clients turned away and not yet counted on stderr are said first.
                    crate::log::flush_turned_away();
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

/// Makes SIGQUIT end nk as SIGTERM does (cleanup, exit 131): for commands that leave
/// something behind otherwise (a Unix socket file), and give SIGQUIT no other meaning.
pub fn end_on_quit() {
    install();
    if is_ignored(SIGQUIT) {
        return;
    }
    let added = HANDLE.get().map(|handle| handle.add_signal(SIGQUIT));
    if !matches!(added, Some(Ok(()))) {
        crate::log::warn(format_args!("cannot handle SIGQUIT; it will not clean up"));
    }
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
