//! One module per subcommand: its clap `Args` and a `run` that returns `Result`.
//!
//! What the stream commands share once they hold a connection, relaying it with stdin and
//! stdout under the relay flags and reporting the `-v` summary (also on SIGINT), is
//! [`relay_stdio`], so dial and listen cannot drift apart.

pub mod completions;
pub mod dial;
pub mod listen;

use anyhow::Result;

use crate::cli::RelayArgs;
use crate::info;
use crate::net::relay::{self, Remote, Sink, Source, SplitStream};
use crate::signals;

/// Relays a connected stream with stdin/stdout under the user's relay flags; `peer` names it.
pub fn relay_stdio<S: SplitStream>(stream: S, peer: &str, args: &RelayArgs) -> Result<()> {
    let opts = args.options()?;
    let counters = std::sync::Arc::clone(&opts.counters);
    let summary_counters = std::sync::Arc::clone(&counters);
    signals::on_interrupt(move || info!("{}", summary_counters.summary()))?;
    let remote = Remote::from_stream(stream, peer)?;
    let source = if args.recv_only {
        None
    } else {
        Some(Source::stdin()?)
    };
    let result = relay::relay(source, Sink::stdout()?, remote, &opts);
    info!("{}", counters.summary());
    result
}
