//! One module per subcommand: its clap `Args` and a `run` that returns `Result`.
//!
//! What the stream commands share once they hold a connection, relaying it with stdin and
//! stdout under the relay flags and reporting the `-v` summary (also on SIGINT), is
//! [`relay_stdio`], so dial and listen cannot drift apart. What the batch commands (`mask`,
//! `resolve`) share, reading one item per line of stdin and writing to a stdout that may close
//! under them, is [`stdin_items`] and [`stdout_error`].

pub mod completions;
pub mod dial;
pub mod forward;
pub mod head;
pub mod inetd;
pub mod listen;
pub mod mask;
pub mod ping;
pub mod resolve;
pub mod scan;
pub mod smtp;
pub mod udp;
pub mod unix;

use std::io::{self, BufRead, Read};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::exit::{usage, StdoutClosed};

use crate::info;
use crate::net::relay::{
    self, AfterPeerEof, Counters, RelayOptions, Remote, Sink, Source, SplitStream,
};
use crate::signals;

/// Relays a connected stream with stdin/stdout under the relay options; `peer` names it.
/// `after_peer_eof` is the side's habit: a client sends until stdin ends (nc), a listener
/// ends at the client's EOF once stdin has nothing waiting (`nc -l`).
pub fn relay_stdio<S: SplitStream>(
    stream: Arc<S>,
    peer: &str,
    opts: &RelayOptions,
    after_peer_eof: AfterPeerEof,
) -> Result<()> {
    let remote = Remote::from_shared(stream, peer)?;
    let source = if opts.receive_only {
        None
    } else {
        Some(Source::stdin()?.after_peer_eof(after_peer_eof))
    };
    relay::relay(source, Sink::stdout()?, remote, opts)
}

/// Prints the `-v` summary of `counters` on SIGINT/SIGTERM before exiting 130/143.
pub fn summary_on_interrupt(counters: &Arc<Counters>) -> Result<()> {
    let counters = Arc::clone(counters);
    signals::on_interrupt(move || info!("{}", counters.summary()))
}

/// Calls `each(line_number, item)` for every item of stdin: one per line, trimmed, with blank
/// lines and `#` comments skipped. A line over `max_line` bytes is a usage error (exit 2), so a
/// stdin without newlines cannot grow a buffer without bound.
pub fn stdin_items(max_line: usize, mut each: impl FnMut(usize, &str) -> Result<()>) -> Result<()> {
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        number += 1;
        line.clear();
        let got = (&mut stdin)
            .take(max_line as u64 + 1)
            .read_until(b'\n', &mut line)
            .context("read stdin")?;
        if got == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && got > max_line {
            return Err(usage(format!(
                "stdin line {number} is longer than {max_line} bytes"
            )));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        each(number, text)?;
    }
}

/// The error for a failed write to stdout: a reader that went away (EPIPE) ends nk quietly.
pub fn stdout_error(err: io::Error) -> anyhow::Error {
    if err.kind() == io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(err).context("write stdout")
    }
}
