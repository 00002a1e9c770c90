//! nk's own standard descriptors, made safe before any command runs.
//!
//! "Lossless or loud" and "never a panic" depend on them: a stdin that cannot be read (fd 0
//! write-only, as `nohup` leaves it, or a directory) is an empty stdin rather than an error
//! halfway through a transfer; a stream command closes stdout at the peer's EOF so that a
//! reader downstream sees the end at once; and nothing written to stderr or stdout may panic
//! when its reader has gone (Rust's `eprintln!`/`println!` do). Closed descriptors 0-2 are
//! already reopened on /dev/null by Rust's runtime, so a socket can never take their numbers.

use std::io::Write;
use std::os::fd::AsRawFd;

/// Makes fd 0 readable: a write-only or otherwise unreadable stdin becomes /dev/null (an
/// empty input), with a `-v` note. Call once, after the verbosity is known.
pub fn prepare() {
    let Some(why) = unreadable_stdin() else {
        return;
    };
    if replace_with_null(0, libc::O_RDONLY) {
        crate::info!("stdin is {why}: read as empty");
    }
}

/// Why fd 0 cannot be read, if it cannot.
fn unreadable_stdin() -> Option<&'static str> {
    // SAFETY: F_GETFL only inspects the descriptor.
    let flags = unsafe { libc::fcntl(0, libc::F_GETFL) };
    if flags < 0 {
        return Some("closed");
    }
    if flags & libc::O_ACCMODE == libc::O_WRONLY {
        return Some("open for writing only");
    }
    // SAFETY: `stat` is plain data that fstat fills in; a zeroed value is a valid start.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd 0 is open (F_GETFL succeeded) and `stat` is a valid out-pointer.
    if unsafe { libc::fstat(0, &mut stat) } == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Some("a directory");
    }
    None
}

/// Puts /dev/null (opened with `mode`) on `fd`. False if that failed (fd left as it was).
fn replace_with_null(fd: libc::c_int, mode: libc::c_int) -> bool {
    let Ok(null) = std::fs::OpenOptions::new()
        .read(mode == libc::O_RDONLY)
        .write(mode != libc::O_RDONLY)
        .open("/dev/null")
    else {
        return false;
    };
    // SAFETY: dup2 onto a standard descriptor; `null` stays open for the call and is closed
    // when dropped, leaving only `fd`.
    unsafe { libc::dup2(null.as_raw_fd(), fd) >= 0 }
}

/// Closes stdout for good: its reader sees EOF now. Later writes to fd 1 go to /dev/null
/// (the number stays taken, so no socket can land on it).
pub fn close_stdout() {
    let _ = std::io::stdout().lock().flush();
    replace_with_null(1, libc::O_WRONLY);
}

/// Writes `text` and a newline to stderr; a stderr nobody reads is not an error worth a panic.
pub fn stderr_line(text: std::fmt::Arguments<'_>) {
    let line = format!("{text}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `eprintln!` that never panics (a closed or broken stderr drops the line).
#[macro_export]
macro_rules! eprintln_safe {
    ($($arg:tt)*) => { $crate::stdio::stderr_line(format_args!($($arg)*)) };
}
