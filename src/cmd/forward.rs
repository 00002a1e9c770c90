//! `nk forward`: socat's `TCP-LISTEN,fork TCP:...` as one command. Parses LISTEN and TARGET,
//! binds the listener (the rules of `nk listen` and `nk unix -l`), and hands everything to the
//! engine in `net::forward`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use socket2::Type;

use crate::cli::{AccessArgs, FamilyArgs};
use crate::info;
use crate::net::addr::{self, display_sockaddr};
use crate::net::connect::ConnectOptions;
use crate::net::deadline::{idle_limit, parse_duration, parse_timeout};
use crate::net::forward::connector::{TargetSpec, Waker};
use crate::net::forward::{self, Options, Stop};
use crate::net::server::bind_tcp;
use crate::net::services::Proto;
use crate::net::sockopt::SockOpts;
use crate::net::unix::{self, UnixAddr};
use crate::signals;

/// Connect timeout when `-w` is not given.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Backlog of a Unix listener (a TCP one gets `net::server`'s).
const UNIX_BACKLOG: i32 = 1024;

/// Forward every client of LISTEN to its own connection to TARGET.
#[derive(Debug, Args)]
#[command(
    long_about = "Accept clients on LISTEN and give each its own connection to TARGET, relaying \
        both ways until both sides are done (socat's TCP-LISTEN,fork TCP:HOST:PORT, in one \
        process).\n\n\
        LISTEN: PORT, HOST:PORT, [V6]:PORT (no host: IPv6 and IPv4 both), or unix:PATH / \
        unix:@name (a stale socket file is replaced, a live one or any other file is refused, \
        as with `nk unix -l`). TARGET: HOST:PORT (names and service names resolved for each \
        client, Happy Eyeballs across addresses) or unix:PATH / unix:@name.\n\n\
        One event loop (epoll) carries every connection; bytes move socket to socket through \
        splice(2) and a pipe held only while bytes are in flight, or a 64 KiB buffer where \
        splice is refused. Nothing is buffered beyond that: a side that does not read pushes \
        back on the other through TCP flow control. A FIN from one side is passed on as a \
        half-close once its bytes are delivered, and the other direction keeps flowing. A reset \
        on one side resets the other (socat turns it into a FIN, which hides the failure). A \
        target that refuses, or does not answer within -w (10 s), resets the client at once, \
        with a line on stderr; the forwarder keeps serving. -i resets a connection where no \
        byte moved for that long; SIGINT/SIGTERM stop accepting, reset every connection, print \
        the summary with -v and exit 130/143.\n\n\
        -v prints one line per connection as it ends: client, target, bytes each way, duration, \
        and how it ended (fin, reset, timeout, refused, interrupted); --json prints those as \
        JSON objects on stdout instead. --allow/--deny are checked before the target is \
        contacted; -m caps the connections at once (more are reset at once).\n\n\
        Not yet: TLS on either side, UDP, -x/--pcap and the PROXY protocol.",
    after_long_help = "Examples:\n  \
        nk forward 8080 10.0.0.5:80                   # every client its own upstream connection\n  \
        nk forward -v 127.0.0.1:5433 db.lan:postgresql # local only, a line per connection\n  \
        nk forward unix:/run/app-debug.sock 127.0.0.1:9000   # Unix -> TCP (and the other way)\n  \
        nk forward --json -m 100 --allow 10.0.0.0/8 2222 git.lan:22 | jq .\n  \
        nk forward --proxy socks5h://127.0.0.1:1080 8022 git.lan:22   # each client via SOCKS5"
)]
pub struct ForwardArgs {
    /// Where to accept clients: PORT, HOST:PORT, [V6]:PORT, unix:PATH or unix:@name.
    #[arg(value_name = "LISTEN")]
    pub listen: String,
    /// Where each client goes: HOST:PORT, unix:PATH or unix:@name.
    #[arg(value_name = "TARGET")]
    pub target: String,
    #[command(flatten)]
    pub family: FamilyArgs,
    /// Give up on reaching the target after DUR (resolution included); the client is reset.
    #[arg(short = 'w', long = "connect-timeout", value_name = "DUR", value_parser = parse_timeout)]
    pub connect_timeout: Option<Duration>,
    /// Reset a connection where no byte moved either way for DUR; 0 means never.
    #[arg(short = 'i', long = "idle-timeout", value_name = "DUR", value_parser = parse_duration)]
    pub idle: Option<Duration>,
    /// Forward at most N connections at once; more are reset at once.
    #[arg(short = 'm', long = "max-conns", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_conns: Option<u64>,
    /// Set SO_REUSEPORT on a TCP listener, so several forwarders can share the port.
    #[arg(long)]
    pub reuseport: bool,
    /// One JSON object per connection on stdout as it ends (client, target, bytes_up,
    /// bytes_down, duration_s, end, detail).
    #[arg(long)]
    pub json: bool,
    // Last: its help heading ("Access") would otherwise take the flags after it.
    #[command(flatten)]
    pub access: AccessArgs,
    /// A TCP target through proxies (--proxy URL, repeatable): each client's connection.
    #[command(flatten)]
    pub proxy: crate::cli::ProxyArgs,
}

enum ListenOn {
    Tcp(addr::ListenSpec),
    Unix(UnixAddr),
}

fn parse_listen(text: &str) -> Result<ListenOn> {
    match text.strip_prefix("unix:") {
        Some(path) => Ok(ListenOn::Unix(UnixAddr::parse(path)?)),
        None => Ok(ListenOn::Tcp(addr::parse_listen(text, None, Proto::Tcp)?)),
    }
}

fn parse_target(text: &str) -> Result<TargetSpec> {
    match text.strip_prefix("unix:") {
        Some(path) => Ok(TargetSpec::Unix(UnixAddr::parse(path)?)),
        None => Ok(TargetSpec::Tcp(addr::parse_target(text, None, Proto::Tcp)?)),
    }
}

/// Runs `nk forward`.
pub fn run(args: ForwardArgs) -> Result<()> {
    let listen = parse_listen(&args.listen)?;
    let target = parse_target(&args.target)?;
    if args.proxy.given() && matches!(target, TargetSpec::Unix(_)) {
        return Err(crate::exit::usage("--proxy is for a TCP target"));
    }
    if args.reuseport && matches!(listen, ListenOn::Unix(_)) {
        return Err(crate::exit::usage("--reuseport is for a TCP listener"));
    }
    let access = args.access.list()?;
    let family = args.family.family();
    let opts = Options {
        target: target.clone(),
        connect: ConnectOptions {
            family,
            timeout: Some(args.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)),
            quiet: true,
            proxies: args.proxy.chain()?,
            ..ConnectOptions::default()
        },
        max_conns: args.max_conns.map(|n| n as usize),
        access,
        idle: idle_limit(args.idle),
        json: args.json,
    };
    crate::net::service::raise_descriptor_limit();
    // Before `listening on` is said: whoever acts on that line may send SIGTERM at once.
    signals::install();
    let (listener, _bound) = match &listen {
        ListenOn::Tcp(spec) => {
            let sockopts = SockOpts {
                reuseport: args.reuseport,
                ..SockOpts::default()
            };
            (bind_tcp(spec, family, &sockopts)?, None)
        }
        ListenOn::Unix(addr) => {
            // The socket file goes on every way out, SIGQUIT included.
            signals::end_on_quit();
            let (socket, bound) = unix::listen(addr, Type::STREAM, None, UNIX_BACKLOG, false)?;
            (socket, Some(bound))
        }
    };
    let local = listener.local_addr().context("getsockname")?;
    let (kind, stack) = match listen {
        ListenOn::Tcp(_) => ("tcp", crate::net::server::stack_note(&listener)),
        ListenOn::Unix(_) => ("unix", ""),
    };
    let waker = Arc::new(Waker::new().context("create the wake-up pipe")?);
    let stop = Arc::new(Stop::default());
    {
        let (stop, waker) = (Arc::clone(&stop), Arc::clone(&waker));
        signals::on_interrupt(move || stop.request_and_wait(&waker))?;
    }
    info!(
        "listening on {} ({kind}){stack}; forwarding to {target}",
        display_sockaddr(&local)
    );
    forward::run(listener, opts, stop, waker)
}
