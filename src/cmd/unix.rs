//! `nk unix`: Unix domain sockets, with the same relay, server core and flags as TCP.
//!
//! Stream (default) and `--seqpacket` connections go through the one relay (seqpacket keeps
//! message boundaries: the relay uses read/write with a message-sized buffer for it) and, with
//! `-l`, through the one accept loop: `-k`, `-e/-c` (NK_PROTO=unix), `--broker`, `--chat`, `-m`.
//! `--dgram` uses the datagram machinery shared with `nk udp`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::cli::{ExecArgs, RelayArgs};
use crate::cmd::listen::{serve_connections, Serve};
use crate::cmd::{relay_stdio, summary_on_interrupt};
use crate::info;
use crate::net::addr::display_sockaddr;
use crate::net::datagram::{self, DatagramOptions, DatagramStats};
use crate::net::deadline::parse_timeout;
use crate::net::exec::{self, ConnInfo};
use crate::net::relay::AfterPeerEof;
use crate::net::server::{Server, ServerOptions};
use crate::net::unix::{self, parse_mode, parse_uid, AllowUids, UnixAddr};
use crate::signals;
use socket2::Type;

/// Backlog of a Unix listener.
const BACKLOG: i32 = 1024;

/// Connect to or listen on a Unix domain socket and relay it with stdin/stdout.
#[derive(Debug, Args)]
#[command(
    long_about = "Connect to (or with -l listen on) a Unix domain socket and relay it with \
        stdin/stdout exactly as `nk dial` / `nk listen` do for TCP. PATH is a filesystem path, \
        or @NAME for the Linux abstract namespace (no file). Paths are limited to 107 bytes.\n\n\
        Listening on a path that exists: a socket something still listens on is \"in use\" \
        (exit 1); a stale socket is replaced; anything that is not a socket is never touched \
        (exit 1). The socket file is removed on every exit, signals included (SIGINT, SIGTERM, \
        SIGHUP, SIGQUIT), but only while it is still the socket this server bound (same device \
        and inode): another server's socket that took over the path is left alone. \
        --mode sets its permissions through the umask at bind time, so it never exists with \
        wider ones. An @abstract name has no file and no permissions: any local user can \
        connect, so --mode with @NAME is a usage error. --allow-uid UID (repeatable; a number \
        or a user name) lets in only peers of those uids, as the kernel reports them \
        (SO_PEERCRED per connection, SCM_CREDENTIALS per datagram with --dgram), abstract or \
        not; any other peer is closed (a datagram dropped) before a byte moves, and -v says \
        so.\n\n\
        --seqpacket keeps message boundaries (one stdin read = one message). --dgram sends \
        and receives datagrams as `nk udp` does (the client binds an autobound abstract \
        address so the server can reply; -l prints each datagram, sends stdin to the last \
        peer heard, -k serves every peer, -e/-c run a program per datagram). A client that \
        never bound an address (socat UNIX-SENDTO without bind=) cannot be replied to: the \
        server says so once on stderr and the -v summary counts the replies dropped.",
    after_long_help = "Examples:\n  \
        nk unix -l -v /tmp/nk.sock > received.bin\n  \
        nk unix /tmp/nk.sock < file.bin\n  \
        nk unix -l -k --allow-uid \"$(id -u)\" -e /bin/cat @echo   # abstract echo server, yours only\n  \
        nk unix -l -k --mode 600 -e /bin/cat /tmp/echo.sock   # the same on a path\n  \
        printf 'GET /_ping HTTP/1.0\\r\\n\\r\\n' | nk unix /var/run/docker.sock"
)]
pub struct UnixArgs {
    /// The socket: a path, or @NAME in the abstract namespace.
    #[arg(value_name = "PATH|@NAME")]
    pub path: String,
    /// Listen on PATH instead of connecting to it.
    #[arg(short = 'l', long = "listen")]
    pub listen: bool,
    /// SOCK_SEQPACKET: connection-oriented, message boundaries kept.
    #[arg(long, conflicts_with = "dgram")]
    pub seqpacket: bool,
    /// SOCK_DGRAM: datagrams, as `nk udp` (the client autobinds an abstract address).
    #[arg(long)]
    pub dgram: bool,
    /// With --dgram: receive buffer in bytes; larger datagrams are reported as truncated.
    #[arg(short = 'b', long = "buffer", value_name = "SIZE", value_parser = crate::cli::parse_size, requires = "dgram")]
    pub buffer: Option<usize>,
    /// With -l: permissions of the socket file, in octal (e.g. 600); a path only (an
    /// @abstract name has no permissions: see --allow-uid).
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode, requires = "listen")]
    pub mode: Option<u32>,
    /// With -l: serve only peers whose uid (as the kernel reports it) is UID, a number or a
    /// user name (repeatable); others are closed before a byte moves (-v says so).
    #[arg(long = "allow-uid", value_name = "UID", value_parser = parse_uid, requires = "listen")]
    pub allow_uid: Vec<u32>,
    /// With -l: keep accepting, serve clients concurrently (as `nk listen -k`).
    #[arg(short = 'k', long = "keep-open", requires = "listen")]
    pub keep_open: bool,
    /// With -l: serve at most N connections at once; more are closed at once.
    #[arg(short = 'm', long = "max-conns", value_name = "N", requires = "listen",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_conns: Option<u64>,
    /// With -l: pass each client's data to every other client (implies -k); stdin goes to
    /// every client, stdout shows every client's lines.
    #[arg(long, requires = "listen", conflicts_with_all = ["exec", "shell"])]
    pub broker: bool,
    /// With -l: like --broker, with `<user N>` prefixes (stdin is `<user 0>`) and join/leave
    /// notices.
    #[arg(long, requires = "listen", conflicts_with_all = ["exec", "shell", "broker"])]
    pub chat: bool,
    #[command(flatten)]
    pub hub: crate::cli::HubArgs,
    /// With -l: give up when no client has connected within DUR (exit 1; without -k).
    #[arg(short = 'w', long = "accept-timeout", value_name = "DUR", value_parser = parse_timeout,
          requires = "listen", conflicts_with_all = ["keep_open", "broker", "chat"])]
    pub accept_timeout: Option<Duration>,

    #[command(flatten)]
    pub exec: ExecArgs,
    #[command(flatten)]
    pub relay: RelayArgs,
}

/// Runs `nk unix`.
pub fn run(args: UnixArgs) -> Result<()> {
    let addr = UnixAddr::parse(&args.path)?;
    if args.mode.is_some() && matches!(addr, UnixAddr::Abstract(_)) {
        // Ignoring it would leave the user believing the socket is private: any local user
        // can connect to an abstract name.
        return Err(anyhow::Error::new(
            crate::exit::UsageError::new(format!(
                "--mode has no effect on {addr}: an abstract socket has no file, hence no \
                 permissions, and any local user can connect to it"
            ))
            .with_hint("use --allow-uid UID to choose who may connect, or a path with --mode"),
        ));
    }
    let allow_uids = AllowUids::new(&args.allow_uid);
    if args.dgram && args.relay.output.is_some() {
        // Checked before options() creates the file.
        return Err(crate::exit::usage(
            "-o records stream sessions; with --dgram use -x for a dump of each datagram",
        ));
    }
    let relay_template = args.relay.options()?;
    let exec = args.exec.spec()?;
    let many = args.listen && !args.dgram && exec.is_none();
    let hub = args.hub.options(
        many && (args.keep_open || args.broker || args.chat),
        &args.relay,
    )?;
    let ty = unix::socket_type(args.dgram, args.seqpacket);
    // From here on, every signal that ends nk removes the socket file before exiting; SIGQUIT
    // too, which would otherwise leave the file behind (and a core).
    signals::end_on_quit();
    if args.dgram {
        return run_datagrams(&args, &addr, exec, allow_uids);
    }
    if !args.listen {
        let socket = unix::connect(&addr, ty)?;
        let peer = addr.to_string();
        summary_on_interrupt(&relay_template.counters)?;
        let result = match exec {
            Some(spec) => {
                let local = socket.local_addr().context("getsockname")?;
                let remote = socket.peer_addr().context("getpeername")?;
                let info = ConnInfo::new(&remote, &local, "unix", 1);
                exec::relay_child(
                    Arc::new(socket),
                    &peer,
                    &spec,
                    &info,
                    &relay_template,
                    |_| {},
                )
            }
            None => relay_stdio(
                Arc::new(socket),
                &peer,
                &relay_template,
                AfterPeerEof::UntilEnd,
            ),
        };
        info!("{}", relay_template.counters.summary());
        return result;
    }
    let keep = args.keep_open || args.broker || args.chat;
    let serve = Serve::choose(exec, args.chat, args.broker, keep, hub)?;
    let (listener, bound) = unix::listen(&addr, ty, args.mode, BACKLOG, false)?;
    let local = listener.local_addr().context("getsockname")?;
    // As `nk listen`: signals are handled before the listening line is said.
    signals::install();
    info!("listening on {} (unix)", display_sockaddr(&local));
    let server = Server::new(ServerOptions {
        keep_accepting: keep,
        max_conns: args.max_conns.map(|n| n as usize),
        access: Default::default(),
        allow_uids,
        accept_timeout: args.accept_timeout,
    });
    let result = serve_connections(&server, listener, serve, relay_template, None, None, "unix");
    drop(bound);
    result
}

/// Largest datagram read from stdin for a Unix datagram socket (the kernel's limit is the
/// send buffer, about 208 KiB by default).
const MAX_UNIX_DATAGRAM: usize = 64 * 1024;

/// `--dgram`: the datagram client or server shared with `nk udp`.
fn run_datagrams(
    args: &UnixArgs,
    addr: &UnixAddr,
    exec: Option<exec::ExecSpec>,
    allow_uids: Option<AllowUids>,
) -> Result<()> {
    if exec.is_some() && !args.listen {
        return Err(crate::exit::usage(
            "-e/-c run a program per datagram received: they need -l",
        ));
    }
    let stats = Arc::new(DatagramStats::default());
    let started = std::time::Instant::now();
    let summary_stats = Arc::clone(&stats);
    signals::on_interrupt(move || {
        summary_stats.report_losses_at_end();
        info!("{}", summary_stats.summary(started.elapsed()));
    })?;
    let opts = DatagramOptions {
        buffer: args.buffer.unwrap_or(datagram::DEFAULT_BUFFER),
        max_payload: MAX_UNIX_DATAGRAM,
        lines: false,
        quit_after_eof: args.relay.quit_after_eof.unwrap_or(Duration::from_secs(1)),
        idle: args.relay.idle,
        keep: args.keep_open,
        exec,
        proto: "unix",
        hexdump: crate::cli::open_hexdump(args.relay.hexdump.as_deref())?,
        allow_uids,
    };
    let result = if args.listen {
        let passcred = opts.allow_uids.is_some();
        let (socket, bound) = unix::listen(addr, Type::DGRAM, args.mode, BACKLOG, passcred)?;
        info!("listening on {addr} (unix)");
        let result = datagram::server(socket, &opts, &stats);
        drop(bound);
        result
    } else {
        let socket = unix::connect(addr, Type::DGRAM)?;
        datagram::client(socket, &addr.to_string(), &opts, &stats)
    };
    info!("{}", stats.summary(started.elapsed()));
    result
}
