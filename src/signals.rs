//! SIGINT and SIGTERM: print what the user would want to know, then exit 130 / 143.
//!
//! cli.md asks for the command's summary on SIGINT before exiting 130. The default action would
//! kill the process mid-relay without a word, so a helper thread waits for the signals
//! (signal-hook's self-pipe, nothing unsafe in a handler) and runs the command's last words.

use std::process;
use std::thread;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::exit::Status;

/// On SIGINT or SIGTERM, runs `last_words` and exits with 130 or 143. A signal the parent
/// set to be ignored (a background job's SIGINT, `nohup`) stays ignored.
pub fn on_interrupt(last_words: impl Fn() + Send + 'static) -> Result<()> {
    let wanted: Vec<i32> = [SIGINT, SIGTERM]
        .into_iter()
        .filter(|&s| !is_ignored(s))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut signals = Signals::new(&wanted).context("install signal handlers")?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                last_words();
                let status = if signal == SIGTERM {
                    Status::Terminated
                } else {
                    Status::Interrupted
                };
                process::exit(status.code().into());
            }
        })
        .context("start signal thread")?;
    Ok(())
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
