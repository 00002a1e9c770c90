//! `nk listen`: the netcat server. One connection relayed with stdin/stdout by default; with
//! `-k` a concurrent server (stdin to every client, every client to stdout), with `-e`/`-c` a
//! program per connection, with `--broker`/`--chat` a relay between clients. All of it runs on
//! the one accept loop of `net::server` and the one relay of `net::relay`.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::cli::{ExecArgs, FamilyArgs, RelayArgs, SockArgs};
use crate::cmd::{relay_stdio, summary_on_interrupt};
use crate::info;
use crate::net::addr::{self, display_addr, display_sockaddr, ListenSpec};
use crate::net::deadline::parse_timeout;
use crate::net::exec::{self, ConnInfo, ExecSpec};
use crate::net::hub::{self, Hub, HubOptions, QueueReader};
use crate::net::relay::{self, AfterPeerEof, RelayOptions, Remote, Sink, Source};
use crate::net::server::{bind_tcp, Connection, Server, ServerOptions};
use crate::net::service_names::Proto;
use crate::net::sockopt::SockOpts;
use crate::net::tls::MaybeTls;
use crate::signals;

/// Listen for TCP connections and relay them with stdin/stdout, a program, or each other.
#[derive(Debug, Args)]
#[command(
    long_about = "Listen on a TCP port. By default: accept one connection, relay it with \
        stdin/stdout as `nk dial` does (half-close at stdin EOF, exit when the client closes), \
        then exit; later clients are refused. When the client closes its side first, stdout is \
        closed at once; if stdin has delivered nothing by then, the session ends there (as \
        `nc -l` does: a listener's stdin is often an idle pipe), otherwise what stdin delivers \
        is sent until its EOF, and a client that had really gone (a reset) is an error naming \
        the bytes lost. -o FILE records what clients send (with -k all of them, into the one \
        file), --append-output adds to it.\n\n\
        -k keeps accepting and serves clients concurrently: every client's data goes to stdout \
        in whole lines (a line up to --max-line bytes, 64 KiB by default, is never split by \
        another client's bytes; a longer one is written in pieces and stderr says so), stdin \
        goes to every connected client. Stdin is not read while no client is connected, and \
        it is read no faster than the slowest client takes it (back-pressure, as ncat does); \
        --drop-slow instead drops a client more than 4 MiB behind, with a reset and a stderr \
        line. At stdin EOF every client is half-closed (unless --no-shutdown) and may go on \
        sending. A client that closes first leaves once what stdin gave it is sent, freeing \
        its -m place (as ncat drops it); later input no longer goes to it.\n\n\
        -e/-c run a program per connection with the socket as its stdin/stdout (environment \
        NK_REMOTE_ADDR, NK_REMOTE_PORT, NK_LOCAL_ADDR, NK_LOCAL_PORT, NK_PROTO, NK_CONN_SEQ). \
        --broker passes each client's data to every other client; --chat does the same with \
        `<user N>` prefixes and join/leave notices. The listener's own stdin and stdout take \
        part as one more participant, as in ncat: stdin goes to every client (in chat as \
        `<user 0>`; not read while no client is connected), and stdout shows what clients \
        send, whole lines (ncat shows nothing there). --recv-only: the operator only watches \
        (stdin is not read); --send-only: only talks (stdout stays empty); the clients always \
        talk to one another (ncat's --recv-only silences the whole broker). Denied (--allow/--deny) and excess (-m) \
        clients are closed before a byte moves. SIGINT/SIGTERM close every client, stop every \
        program, and print a summary with -v.\n\n\
        With no host, nk listens on IPv6 and IPv4 both. Port 0 lets the kernel choose; -v \
        prints `listening on ADDR:PORT (tcp)` with the real port on stderr. SO_REUSEADDR is \
        always set.\n\n\
        --proxy KINDS makes the listener a proxy server (http: HTTP CONNECT; socks5; socks4, \
        which includes 4a; socks: both SOCKS versions; comma-separated), for debugging: each \
        client names its target, and once it is reached the tunnel is relayed by the engine \
        of `nk forward` (one event loop per core, splice, half-close passed on, a reset on one \
        side resets the other, back-pressure). Host names are resolved off the event loop. A \
        client has 10 s (or -i) and 8 KiB for its request; one still incomplete then is \
        answered in its protocol (HTTP 408, a SOCKS failure reply) and closed. --proxy-auth USER:PASS is then required \
        (SOCKS5 username/password, HTTP Basic; SOCKS4, which has no password, is refused). \
        --allow/--deny choose the clients, --allow-target/--deny-target the destinations (by \
        address, after resolution: a name is connected only on its allowed addresses). \
        Refusals are answered in each protocol's terms: SOCKS5 per RFC 1928 (0x02 rules, \
        0x03/0x04 unreachable, 0x05 refused, 0x06 no answer within --connect-timeout), \
        SOCKS4 0x5B, HTTP 403, 407 with Proxy-Authenticate: Basic, 502, 504, and 405 for \
        anything but CONNECT (plain-HTTP proxying, GET http://..., is not served), each with \
        a reason line. -v reports each request as it ends (client, target, bytes each way, \
        how it ended), --json as objects; -m and -i are those of -k; SIGINT/SIGTERM reset \
        every tunnel and print the summary with -v. Listening beyond loopback without \
        --proxy-auth prints a warning: anyone who reaches the port may connect anywhere \
        through it. --tls makes it an HTTPS proxy (curl --proxy https://).",
    after_long_help = "Examples:\n  \
        nk listen -v 127.0.0.1:0 > upload.bin     # one upload; -v tells the port\n  \
        nk listen -k -e /bin/cat 7000             # an echo server\n  \
        nk listen -k -c 'echo you are client $NK_CONN_SEQ' -m 50 --allow 10.0.0.0/8 8000\n  \
        nk listen --chat -v 6667                  # a chat room for nk dial / nc clients\n  \
        nk listen --proxy http,socks5 -v 127.0.0.1:1080   # a debugging proxy, a line per request\n  \
        curl -x http://127.0.0.1:1080 https://example.org/   # ...used by curl, or:\n  \
        nk dial --proxy socks5h://127.0.0.1:1080 example.org 80\n  \
        nk listen --proxy socks5 --proxy-auth me:secret --allow-target 10.0.0.0/8 1080"
)]
pub struct ListenArgs {
    /// PORT, :PORT, HOST:PORT, [V6]:PORT, or HOST followed by PORT (0 = any free port).
    #[arg(value_name = "[HOST:]PORT")]
    pub address: Option<String>,
    /// The port, when the host is given as its own argument.
    #[arg(value_name = "PORT")]
    pub port: Option<String>,

    /// The port to listen on (netcat's `nc -l -p PORT`).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port_flag: Option<String>,
    /// The local address to listen on (netcat's `nc -l -s ADDR`).
    #[arg(short = 's', long = "source", value_name = "ADDR")]
    pub host_flag: Option<String>,
    /// Accepted for netcat habits (`nk listen -l`); listening is what this command does.
    #[arg(short = 'l', hide = true)]
    pub listen_flag: bool,
    #[command(flatten)]
    pub family: FamilyArgs,
    /// Keep accepting: serve clients concurrently until interrupted.
    #[arg(short = 'k', long = "keep-open")]
    pub keep_open: bool,
    /// Serve at most N connections at once; more are closed at once.
    #[arg(short = 'm', long = "max-conns", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_conns: Option<u64>,
    #[command(flatten)]
    pub access: crate::cli::AccessArgs,
    /// Pass each client's data to every other client (implies -k); stdin goes to every
    /// client and stdout shows every client's lines, as one more participant.
    #[arg(long, conflicts_with_all = ["exec", "shell"])]
    pub broker: bool,
    /// Like --broker, with `<user N>` prefixes (stdin is `<user 0>`), join/leave notices,
    /// control bytes escaped.
    #[arg(long, conflicts_with_all = ["exec", "shell", "broker"])]
    pub chat: bool,
    /// Give up when no client has connected within DUR (exit 1; a one-shot listener only).
    #[arg(short = 'w', long = "accept-timeout", value_name = "DUR", value_parser = parse_timeout,
          conflicts_with_all = ["keep_open", "broker", "chat"])]
    pub accept_timeout: Option<Duration>,
    /// Set SO_REUSEPORT, so several listeners can share the port.
    #[arg(long)]
    pub reuseport: bool,

    #[command(flatten)]
    pub hub: crate::cli::HubArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
    #[command(flatten)]
    pub relay: RelayArgs,
    #[command(flatten)]
    pub tls: crate::cli::TlsServerArgs,
    #[command(flatten)]
    pub sock: SockArgs,
    #[command(flatten)]
    pub proxy: ProxyServeArgs,
}

/// `--proxy`: a SOCKS / HTTP CONNECT proxy server on the forwarding engine.
#[derive(Debug, Args)]
#[command(next_help_heading = "Proxy server")]
pub struct ProxyServeArgs {
    /// Serve as a proxy: KINDS is a comma-separated list of http (CONNECT), socks5, socks4
    /// (with 4a), socks (both SOCKS versions).
    #[arg(long = "proxy", value_name = "KINDS", conflicts_with_all = [
        "exec", "shell", "broker", "chat", "accept_timeout", "quit_after_eof", "no_shutdown",
        "shutdown_at_eof", "send_only", "recv_only", "end_at_peer_eof", "crlf", "hexdump",
        "output", "drop_slow", "max_line", "nodelay", "keepalive", "tos", "ttl", "sndbuf",
        "rcvbuf", "alpn"])]
    pub kinds: Option<String>,
    /// Require these credentials of every client (SOCKS5 username/password, HTTP Basic).
    ///
    /// SOCKS4 clients, who have no password, are then refused (socks4 alone: a usage error).
    #[arg(long = "proxy-auth", value_name = "USER:PASS", requires = "kinds")]
    pub auth: Option<String>,
    /// Serve only destinations in these addresses or CIDR blocks (repeatable, or
    /// comma-separated); checked on the resolved addresses.
    #[arg(long = "allow-target", value_name = "SPEC", requires = "kinds")]
    pub allow_target: Vec<String>,
    /// Never connect to destinations in this address or CIDR block (wins over
    /// --allow-target).
    #[arg(long = "deny-target", value_name = "SPEC", requires = "kinds")]
    pub deny_target: Vec<String>,
    /// Give up on reaching a client's target after DUR (default 10s): SOCKS5 reply 6, HTTP
    /// 504.
    #[arg(long = "connect-timeout", value_name = "DUR", value_parser = parse_timeout,
          requires = "kinds")]
    pub connect_timeout: Option<Duration>,
    /// One JSON object per request on stdout as it ends (as `nk forward --json`).
    #[arg(long, requires = "kinds")]
    pub json: bool,
}

impl ListenArgs {
    /// The listening address from the positional forms, `-p` and `-s`.
    fn spec(&self) -> Result<ListenSpec> {
        let host_flag = self
            .host_flag
            .as_deref()
            .map(addr::parse_host)
            .transpose()?;
        addr::listen_spec(
            self.address.as_deref(),
            self.port.as_deref(),
            self.port_flag.as_deref(),
            host_flag,
            Proto::Tcp,
        )
    }
}

/// How each served connection is handled.
#[derive(Debug)]
pub enum Serve {
    /// One connection with stdin/stdout.
    Stdio,
    /// A program per connection.
    Exec(ExecSpec),
    /// Several clients through a hub.
    Hub(Arc<Hub>),
}

impl Serve {
    /// The mode the flags ask for; `keep` is `-k` (implied by broker and chat).
    pub fn choose(
        exec: Option<ExecSpec>,
        chat: bool,
        broker: bool,
        keep: bool,
        hub: HubOptions,
    ) -> Result<Serve> {
        Ok(match (exec, chat, broker, keep) {
            (Some(spec), ..) => Serve::Exec(spec),
            (None, true, ..) => Serve::Hub(Hub::new(hub::Mode::Chat, hub)?),
            (None, false, true, _) => Serve::Hub(Hub::new(hub::Mode::Broker, hub)?),
            (None, false, false, true) => Serve::Hub(Hub::new(hub::Mode::Broadcast, hub)?),
            (None, false, false, false) => Serve::Stdio,
        })
    }
}

/// Runs `nk listen`.
pub fn run(args: ListenArgs) -> Result<()> {
    if args.proxy.kinds.is_some() {
        return run_proxy(args);
    }
    let spec = args.spec()?;
    let relay_template = args.relay.options()?;
    let keep = args.keep_open || args.broker || args.chat;
    let exec = args.exec.spec()?;
    let hub = args.hub.options(keep && exec.is_none(), &args.relay)?;
    let serve = Serve::choose(exec, args.chat, args.broker, keep, hub)?;
    let access = args.access.list()?;
    let tls = args.tls.config()?;
    let mut sockopts = args.sock.options();
    sockopts.reuseport = args.reuseport;

    // Before `listening on` is said: from then on SIGINT/SIGTERM end nk as documented
    // (130/143), even in the moment before the summary is armed.
    signals::install();
    let listener = bind_tcp(&spec, args.family.family(), &sockopts)?;
    let local = listener.local_addr().context("getsockname")?;
    // Signals are handled before the port is announced: whoever acts on the listening line
    // (a script, a test) may send SIGTERM at once, and must get the 143 cli.md promises.
    signals::install();
    info!(
        "listening on {} (tcp){}",
        display_sockaddr(&local),
        crate::net::server::stack_note(&listener)
    );
    let server = Server::new(ServerOptions {
        keep_accepting: keep,
        max_conns: args.max_conns.map(|n| n as usize),
        access,
        allow_uids: None,
        accept_timeout: args.accept_timeout,
    });
    // Listener-only options were applied at bind time; the rest apply to each connection.
    sockopts.reuseaddr = false;
    sockopts.reuseport = false;
    serve_connections(
        &server,
        listener,
        serve,
        relay_template,
        Some(sockopts),
        tls,
        "tcp",
    )
}

/// Connect timeout toward a proxy client's target, when --connect-timeout is not given.
const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `nk listen --proxy`: the forwarding engine, each client's target taken from its request.
fn run_proxy(args: ListenArgs) -> Result<()> {
    use crate::net::forward::{self, connector::TargetSpec};
    use crate::net::proxy::{server::ProxyService, Credentials};
    let spec = args.spec()?;
    let kinds = args.proxy.kinds.as_deref().unwrap_or_default();
    let mut service = ProxyService::kinds(kinds).map_err(crate::exit::usage)?;
    service.credentials = args.proxy.auth.as_deref().map(Credentials::parse);
    if service
        .credentials
        .as_ref()
        .is_some_and(|c| c.user.is_empty() || c.user.len() > 255 || c.pass.len() > 255)
    {
        return Err(crate::exit::usage(
            "--proxy-auth USER:PASS: a user of 1-255 bytes and a password of at most 255 \
             (SOCKS5's limits)",
        ));
    }
    if service.credentials.is_some() && !service.socks5 && !service.http {
        // SOCKS4 carries no password: every client would be refused.
        return Err(crate::exit::usage(
            "--proxy-auth: SOCKS4 has no password, so with socks4 alone every client would be \
             refused; serve socks5 or http too",
        ));
    }
    service.targets = crate::net::acl::AccessList::new(
        &args.proxy.allow_target,
        &args.proxy.deny_target,
        &[],
        &[],
    )?;
    let family = args.family.family();
    let tls_listen = args.tls.config()?;
    let opts = forward::Options {
        target: TargetSpec::Requested(Arc::new(service.clone())),
        connect: crate::net::connect::ConnectOptions {
            family,
            timeout: Some(args.proxy.connect_timeout.unwrap_or(PROXY_CONNECT_TIMEOUT)),
            quiet: true,
            ..Default::default()
        },
        max_conns: args.max_conns.map(|n| n as usize),
        access: args.access.list()?,
        idle: crate::net::deadline::idle_limit(args.relay.idle),
        json: args.proxy.json,
        tls_listen,
        tls_connect: None,
        proxy_protocol: None,
        tap: None,
        splice: false,
        spin: Duration::ZERO,
    };
    crate::net::inetd::raise_descriptor_limit();
    // Before `listening on` is said: whoever acts on that line may send SIGTERM at once.
    signals::install();
    let sockopts = SockOpts {
        reuseport: args.reuseport,
        ..SockOpts::default()
    };
    let listener = bind_tcp(&spec, family, &sockopts)?;
    let local = listener.local_addr().context("getsockname")?;
    let stop = crate::cmd::forward::stop_on_signals()?;
    info!(
        "listening on {} (tcp){}; a proxy: {}{}",
        display_sockaddr(&local),
        crate::net::server::stack_note(&listener),
        service.describe(),
        if opts.tls_listen.is_some() {
            " over TLS"
        } else {
            ""
        }
    );
    let loopback = local.as_socket().is_some_and(|a| a.ip().is_loopback());
    if !loopback && service.credentials.is_none() {
        crate::log::warn(format_args!(
            "an open proxy: anyone who reaches {} may connect anywhere through it (give \
             --proxy-auth, --allow or --allow-target, or listen on 127.0.0.1)",
            display_sockaddr(&local)
        ));
    }
    forward::run(listener, opts, stop)
}

/// Runs the accept loop with the chosen mode: shared by `listen` and `unix -l`. `sockopts`
/// (TCP only) are applied to each accepted connection; `proto` is NK_PROTO.
pub fn serve_connections(
    server: &Arc<Server>,
    listener: socket2::Socket,
    serve: Serve,
    relay_template: RelayOptions,
    sockopts: Option<SockOpts>,
    tls: Option<Arc<rustls::ServerConfig>>,
    proto: &'static str,
) -> Result<()> {
    // Socket options on the TCP connection, then (with --tls) the handshake: the stream
    // served is the connection itself or the plaintext side of its TLS bridge.
    let configure = move |conn: Connection| -> Result<(Connection, Arc<MaybeTls>)> {
        if let (Some(opts), Some(peer)) = (&sockopts, conn.peer.as_socket()) {
            opts.apply(&conn.stream, peer.is_ipv6())
                .with_context(|| format!("configure connection from {}", display_addr(peer)))?;
        }
        let stream = match &tls {
            Some(config) => {
                let tcp = conn.stream.try_clone().context("clone the socket")?;
                let peer = display_sockaddr(&conn.peer);
                MaybeTls::Tls(crate::net::tls::accept(
                    tcp.into(),
                    Arc::clone(config),
                    &peer,
                )?)
            }
            None => MaybeTls::Plain(Arc::clone(&conn.stream)),
        };
        Ok((conn, Arc::new(stream)))
    };
    match serve {
        Serve::Stdio => {
            summary_on_interrupt(&relay_template.counters)?;
            let opts = relay_template;
            server.run(listener, move |conn| {
                let (conn, stream) = configure(conn)?;
                let peer = display_sockaddr(&conn.peer);
                let result = relay_stdio(stream, &peer, &opts, AfterPeerEof::WhenIdle);
                info!("{}", opts.counters.summary());
                result
            })
        }
        Serve::Exec(spec) => {
            stop_on_interrupt(server)?;
            let template = relay_template;
            server.run(listener, move |conn| {
                let (conn, stream) = configure(conn)?;
                let mut info = ConnInfo::new(&conn.peer, &conn.local, proto, conn.seq);
                info.tls_peer_subject = stream.peer_subject().map(str::to_string);
                let mut opts = template.clone();
                opts.counters = Arc::clone(&conn.live.counters);
                let live = Arc::clone(&conn.live);
                let peer = display_sockaddr(&conn.peer);
                exec::relay_child(stream, &peer, &spec, &info, &opts, |pid| {
                    live.set_child(pid)
                })
            })
        }
        Serve::Hub(hub) => {
            let flushing = Arc::clone(&hub);
            stop_on_interrupt_then(server, move || flushing.flush_shown(STDOUT_GRACE))?;
            // --recv-only: the operator only watches (listen -k: clients get no stdin).
            if !relay_template.receive_only {
                // Duplicated here, before the first accept: once clients have taken every
                // descriptor, a duplicate made later fails (EMFILE) and no client would ever
                // be given the EOF of its input.
                match io::stdin().as_fd().try_clone_to_owned() {
                    Ok(fd) => {
                        let stdin = std::fs::File::from(fd);
                        let pump = Arc::clone(&hub);
                        thread::Builder::new()
                            .name("stdin".into())
                            .spawn(move || {
                                if let Err(err) = pump.pump_stdin(stdin) {
                                    crate::log::warn(format_args!("read stdin: {err}"));
                                }
                            })
                            .context("start stdin thread")?;
                    }
                    Err(err) => {
                        // A closed stdin is an empty stdin (cli.md): the clients get their EOF.
                        crate::info!("stdin unusable ({err}): read as empty");
                        hub.close_input_if_broadcast();
                    }
                }
            } else {
                hub.close_input_if_broadcast();
            }
            let template = relay_template;
            let joining = Arc::clone(&hub);
            // Members join as they are accepted, so whatever anyone sends after that reaches
            // them, even before their own thread runs (or their TLS handshake ends).
            server.run_admitting(
                listener,
                move |conn| join_hub(&joining, conn),
                move |conn| {
                    let (conn, stream) = configure(conn)?;
                    serve_hub_client(&hub, conn, stream, &template)
                },
            )
        }
    }
}

/// How long SIGINT/SIGTERM wait for what clients sent to reach the operator's stdout.
const STDOUT_GRACE: Duration = Duration::from_secs(2);

/// SIGINT/SIGTERM: close every client, stop every program, print the summary.
fn stop_on_interrupt(server: &Arc<Server>) -> Result<()> {
    stop_on_interrupt_then(server, || {})
}

/// [`stop_on_interrupt`], with `then` run once the clients are closed (before the summary).
fn stop_on_interrupt_then(server: &Arc<Server>, then: impl Fn() + Send + 'static) -> Result<()> {
    let server = Arc::clone(server);
    signals::on_interrupt(move || {
        // Long enough for each program to get SIGTERM, then SIGKILL after its grace.
        server.shutdown_and_wait(Duration::from_secs(3));
        then();
        info!("{}", server.summary());
    })
}

/// Makes a just-accepted client a member of the hub; dropping it resets its connection, so
/// the client cannot mistake the cut for the end of the data.
fn join_hub(hub: &Hub, conn: &Connection) {
    let kick = Arc::clone(&conn.stream);
    hub.join(
        conn.seq,
        &display_sockaddr(&conn.peer),
        Box::new(move || crate::net::sockopt::abort(&kick)),
    );
}

/// One client of a hub: its queue is its input, the hub (stdout or the others) its output.
fn serve_hub_client(
    hub: &Arc<Hub>,
    conn: Connection,
    stream: Arc<MaybeTls>,
    template: &RelayOptions,
) -> Result<()> {
    let id = conn.seq;
    let peer = display_sockaddr(&conn.peer);
    let Some(queue) = hub.queue(id) else {
        // Dropped (too slow) before its thread started: the socket is already shut down.
        return Ok(());
    };
    let readiness: Arc<dyn relay::Readiness> = queue.clone();
    // A client that has closed leaves once what it was given is sent: it frees its -m slot
    // (as ncat drops it) instead of waiting for stdin's EOF.
    let source = Source::from_queue(QueueReader(Arc::clone(&queue)), readiness, "read stdin")
        .after_peer_eof(AfterPeerEof::WhenDrained);
    let mut sink = Sink::from_writer(
        hub.writer_for(id),
        if hub.is_broadcast() {
            "write stdout"
        } else {
            "forward to clients"
        },
    );
    if hub.is_broadcast() {
        sink = sink.writes_to_stdout();
    }
    let mut opts = template.clone();
    opts.counters = Arc::clone(&conn.live.counters);
    if !hub.is_broadcast() {
        // Broker and chat: --send-only/--recv-only are the operator's (stdin/stdout), not
        // the clients', who always talk to one another.
        opts.send_only = false;
        opts.receive_only = false;
    }
    let result = Remote::from_shared(stream, &peer)
        .map_err(anyhow::Error::from)
        .and_then(|remote| relay::relay(Some(source), sink, remote, &opts));
    hub.leave(id);
    queue.close();
    result
}
