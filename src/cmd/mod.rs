//! One module per subcommand: its clap `Args` and a `run` that returns `Result`.
//!
//! What the stream commands share once they hold a connection, relaying it with stdin and
//! stdout under the relay flags and reporting the `-v` summary (also on SIGINT), is
//! [`relay_stdio`], so dial and listen cannot drift apart.

pub mod completions;
pub mod dial;
pub mod listen;
pub mod mask;
pub mod scan;
pub mod udp;
pub mod unix;

use std::sync::Arc;

use anyhow::Result;

use crate::info;
use crate::net::relay::{self, Counters, RelayOptions, Remote, Sink, Source, SplitStream};
use crate::signals;

/// Relays a connected stream with stdin/stdout under the relay options; `peer` names it.
pub fn relay_stdio<S: SplitStream>(stream: Arc<S>, peer: &str, opts: &RelayOptions) -> Result<()> {
    let remote = Remote::from_shared(stream, peer)?;
    let source = if opts.receive_only {
        None
    } else {
        Some(Source::stdin()?)
    };
    relay::relay(source, Sink::stdout()?, remote, opts)
}

/// Prints the `-v` summary of `counters` on SIGINT/SIGTERM before exiting 130/143.
pub fn summary_on_interrupt(counters: &Arc<Counters>) -> Result<()> {
    let counters = Arc::clone(counters);
    signals::on_interrupt(move || info!("{}", counters.summary()))
}
