//! Exit statuses, in one place, so that every command fails the same way.
//!
//! cli.md fixes the contract scripts rely on: 0 success, 1 the operation failed, 2 a usage error
//! found before any traffic, 130 after SIGINT. A broken pipe on stdout (`nk ... | head -1`) is
//! the reader saying "enough", not a failure, so it ends quietly with 0.
//!
//! Commands return `anyhow::Error`; the few errors that change the status are marker types at
//! the root of the chain ([`UsageError`], [`StdoutClosed`]) and [`classify`] finds them by
//! walking `err.chain()`, whatever context was added on the way up.

use std::fmt;
use std::process::ExitCode;

/// The statuses nk exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The operation did what was asked.
    Success,
    /// The operation failed: refused, timed out, unresolved, rejected by the peer, no reply.
    Failure,
    /// The command line was wrong; nothing was sent.
    Usage,
    /// Ended by SIGINT (128 + 2, as shells report it).
    Interrupted,
    /// Ended by SIGTERM (128 + 15).
    Terminated,
    /// Ended by SIGHUP (128 + 1): the terminal went away.
    HungUp,
    /// Ended by SIGQUIT (128 + 3).
    Quit,
}

impl Status {
    /// The numeric process status.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failure => 1,
            Status::Usage => 2,
            Status::Interrupted => 130,
            Status::Terminated => 143,
            Status::HungUp => 129,
            Status::Quit => 131,
        }
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// A mistake in what the user typed: exit 2, reported before any traffic.
#[derive(Debug)]
pub struct UsageError {
    message: String,
    hint: Option<String>,
}

impl UsageError {
    /// A usage error with the given one-line message.
    pub fn new(message: impl Into<String>) -> UsageError {
        UsageError {
            message: message.into(),
            hint: None,
        }
    }

    /// Adds the `hint: ...` line that tells the user how to fix it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> UsageError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand: `Err(usage("..."))?` in any function returning `anyhow::Result`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError::new(message))
}

/// Whoever reads our stdout has gone away (EPIPE): stop quietly with status 0.
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout closed by the reader")
    }
}

impl std::error::Error for StdoutClosed {}

/// Failures a batch command (one item per argument or stdin line) has already reported on
/// stderr one line each: exit with the status, print nothing more.
#[derive(Debug)]
pub struct Reported(pub Status);

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failures reported above")
    }
}

impl std::error::Error for Reported {}

/// An error that should carry a `hint:` line on stderr (a fix the user can apply).
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong.
    pub message: String,
    /// What the user can do about it.
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// The exit status an error deserves.
pub fn classify(err: &anyhow::Error) -> Status {
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return Status::Usage;
        }
        if cause.is::<StdoutClosed>() {
            return Status::Success;
        }
        if let Some(Reported(status)) = cause.downcast_ref::<Reported>() {
            return *status;
        }
    }
    Status::Failure
}

/// Whether the error should be printed at all (a closed stdout is not news to anyone).
pub fn is_silent(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.is::<StdoutClosed>() || cause.is::<Reported>())
}

/// The `hint:` line for an error, if any part of its chain carries one.
pub fn hint(err: &anyhow::Error) -> Option<&str> {
    err.chain().find_map(|cause| {
        if let Some(usage) = cause.downcast_ref::<UsageError>() {
            usage.hint.as_deref()
        } else {
            cause.downcast_ref::<Hinted>().map(|h| h.hint.as_str())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_are_the_documented_ones() {
        assert_eq!(Status::Success.code(), 0);
        assert_eq!(Status::Failure.code(), 1);
        assert_eq!(Status::Usage.code(), 2);
        assert_eq!(Status::Interrupted.code(), 130);
        assert_eq!(Status::Terminated.code(), 143);
    }

    #[test]
    fn usage_error_is_found_under_context() {
        let err = Err::<(), _>(usage("invalid port \"0\""))
            .context("dial")
            .unwrap_err();
        assert_eq!(classify(&err), Status::Usage);
        assert_eq!(format!("{err:#}"), "dial: invalid port \"0\"");
    }

    #[test]
    fn closed_stdout_is_success_and_silent() {
        let err = anyhow::Error::new(StdoutClosed).context("write stdout");
        assert_eq!(classify(&err), Status::Success);
        assert!(is_silent(&err));
    }

    #[test]
    fn reported_failures_keep_their_status_and_stay_silent() {
        let err = anyhow::Error::new(Reported(Status::Failure));
        assert_eq!(classify(&err), Status::Failure);
        assert!(is_silent(&err));
    }

    #[test]
    fn io_errors_are_failures() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = anyhow::Error::new(io).context("connect 127.0.0.1:9");
        assert_eq!(classify(&err), Status::Failure);
        assert!(!is_silent(&err));
        assert_eq!(hint(&err), None);
    }

    #[test]
    fn hints_are_found() {
        let err = anyhow::Error::new(UsageError::new("bad").with_hint("try this"));
        assert_eq!(hint(&err), Some("try this"));
        let err = anyhow::Error::new(Hinted {
            message: "m".into(),
            hint: "h".into(),
        })
        .context("c");
        assert_eq!(hint(&err), Some("h"));
    }
}
