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
use crate::net::addr::{self, display_sockaddr, Host};
use crate::net::connect::ConnectOptions;
use crate::net::deadline::{idle_limit, parse_duration, parse_timeout, Deadline};
use crate::net::forward::connector::TargetSpec;
use crate::net::forward::tap::Tap;
use crate::net::forward::udp::{self, UdpOptions};
use crate::net::forward::{self, Options, Stop};
use crate::net::server::{bind_tcp, bind_udp};
use crate::net::service_names::Proto;
use crate::net::sockopt::SockOpts;
use crate::net::unix::{self, UnixAddr};
use crate::signals;
use crate::wire::proxy_protocol::Version;

/// Connect timeout when `-w` is not given.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Backlog of a Unix listener (a TCP one gets `net::server`'s).
const UNIX_BACKLOG: i32 = 1024;
/// `-u`: how long a session with no datagram either way lasts, when not given.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);

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
        One event loop (epoll) per core carries the connections; bytes move socket to socket through \
        splice(2) and a pipe held only while bytes are in flight, or a 64 KiB buffer where \
        splice is refused. Nothing is buffered beyond that: a side that does not read pushes \
        back on the other through TCP flow control. A FIN from one side is passed on as a \
        half-close once its bytes are delivered, and the other direction keeps flowing. A reset \
        on one side resets the other (socat turns it into a FIN, which hides the failure), \
        once the other has taken every byte read for it (a peer that takes nothing for 10 s is \
        reset anyway, and that is said). A \
        target that refuses, or does not answer within -w (10 s), resets the client at once, \
        with a line on stderr; the forwarder keeps serving. -i resets a connection where no \
        byte moved for that long; SIGINT/SIGTERM stop accepting, reset every connection, print \
        the summary with -v and exit 130/143.\n\n\
        -u (--udp): UDP, a session per client address, each with its own socket connected to \
        TARGET, so replies go back to the client they answer; datagrams pass whole, one for \
        one. TARGET is resolved once, at start (its first address; -4/-6 choose the family; \
        -w bounds the lookup). A session ends after --session-timeout (-i is the same; \
        default 60s, 0 never) with no datagram either way, or when the target answers with \
        ICMP port unreachable (the client's next datagram opens a new session). -m caps the \
        sessions: a datagram from a new client beyond is dropped. A datagram that is not \
        forwarded (over -m, larger than the other side carries: 65507 bytes over IPv4, 65527 \
        over IPv6, a full send buffer) is said on stderr without -v, at most one line a \
        second per cause with the count. -v and --json report each session as it ends: \
        datagrams and bytes each way, those dropped, and how it ended (timeout, refused, error, \
        interrupted). Unix datagram sockets are not forwarded.\n\n\
        -v prints one line per connection as it ends: client, target, bytes each way, duration, \
        and how it ended (fin, reset, timeout, refused, interrupted); a connection cut by a \
        reset, or a target refused, is said on stderr without -v too; --json prints those as \
        JSON objects on stdout instead (resets still said on stderr). --allow/--deny are checked before the target is \
        contacted; -m caps the connections at once (more are reset at once).\n\n\
        TLS: --tls-listen terminates TLS from clients (--cert/--key, --ca to require client \
        certificates; a client has 10 s for its handshake, and the target is reached only \
        after it), --tls-connect originates TLS to the target (--ca or the system store, \
        --sni, --insecure; the handshake counts in -w); both at once, the target's \
        certificate options are --connect-ca/--connect-cert/--connect-key. The handshakes run \
        in the event loop. A plaintext EOF becomes close_notify then a FIN (the other way \
        keeps flowing); a FIN without close_notify, or a fatal alert, resets the other side. \
        --proxy-protocol v1|v2 sends the target HAProxy's PROXY header first (before its TLS \
        handshake too): the client's address and the listener's (a Unix client: v1 UNKNOWN, \
        v2 LOCAL).\n\n\
        -x FILE|- writes the hex dump of `nk dial -x` for every connection ('-': stdout, not \
        with --json): a header line per chunk with the connection number, local time and \
        direction ('>' client->target, '<' target->client), and lines for the opening, each \
        FIN or RST and the end. --pcap FILE writes a pcapng file with each connection as one \
        TCP stream from the client's address to the target's (synthesised Ethernet/IP/TCP \
        headers, sequence numbers and checksums right, FIN or RST as it really ended; a Unix \
        side is shown as 198.18.0.1 (client, port 1024 + connection number) or 198.18.0.2 \
        (target, on the listener's port)), for Wireshark or `tshark -z follow,tcp,raw,N`. A \
        tapped connection goes through the buffer, not splice. Recording is lossless: a slow \
        disk or a reader of -x - that stops reading holds the tapped connections back (4 MiB \
        queued at most), never the forwarder (-i, new clients and SIGTERM go on; at exit what \
        was not written is said); a failed write is said once on stderr and that recording \
        stops, the forwarding goes on. Not with -u.",
    after_long_help = "Examples:\n  \
        nk forward 8080 10.0.0.5:80                   # every client its own upstream connection\n  \
        nk forward -v 127.0.0.1:5433 db.lan:postgresql # local only, a line per connection\n  \
        nk forward unix:/run/app-debug.sock 127.0.0.1:9000   # Unix -> TCP (and the other way)\n  \
        nk forward --json -m 100 --allow 10.0.0.0/8 2222 git.lan:22 | jq .\n  \
        nk forward -u -v 5353 10.0.0.1:53             # UDP: a session per client\n  \
        nk forward --tls-listen --cert c.pem --key k.pem 8443 127.0.0.1:8080   # TLS termination\n  \
        nk forward 6380 --tls-connect --ca ca.pem redis.lan:6380   # TLS origination\n  \
        nk forward --proxy-protocol v2 443 10.0.0.5:443   # the backend sees the client's address\n  \
        nk forward --proxy socks5h://127.0.0.1:1080 8022 git.lan:22   # each client via SOCKS5\n  \
        nk forward -x - 127.0.0.1:5433 db.lan:5432     # hex dump of both directions\n  \
        nk forward --pcap db.pcapng 5433 db.lan:5432   # the same traffic, for Wireshark"
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
    /// Give up on reaching the target after DUR (resolution and, with --tls-connect, the TLS
    /// handshake included); the client is reset (with -u: the bound on resolving TARGET at
    /// start).
    #[arg(short = 'w', long = "connect-timeout", value_name = "DUR", value_parser = parse_timeout)]
    pub connect_timeout: Option<Duration>,
    /// Reset a connection where no byte moved either way for DUR; 0 means never (with -u:
    /// the session timeout).
    #[arg(short = 'i', long = "idle-timeout", value_name = "DUR", value_parser = parse_duration)]
    pub idle: Option<Duration>,
    /// Forward at most N connections at once; more are reset at once (-u: N sessions).
    #[arg(short = 'm', long = "max-conns", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_conns: Option<u64>,
    /// Set SO_REUSEPORT on a TCP listener, so several forwarders can share the port.
    #[arg(long)]
    pub reuseport: bool,
    /// One JSON object per connection on stdout as it ends (client, target, bytes_up,
    /// bytes_down, duration_s, end, detail, client_tls, target_tls).
    #[arg(long)]
    pub json: bool,
    /// UDP: a session per client address, each with its own socket toward TARGET.
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
    /// With -u: end a session where no datagram moved either way for DUR (default 60s; 0
    /// means never).
    #[arg(long = "session-timeout", value_name = "DUR", value_parser = parse_duration)]
    pub session_timeout: Option<Duration>,
    /// Send the target HAProxy's PROXY header first (v1: the text line, v2: the binary
    /// block), carrying the client's address and the one it reached; a Unix client is sent
    /// as v1 UNKNOWN / v2 LOCAL.
    #[arg(long = "proxy-protocol", value_name = "VERSION", value_parser = ["v1", "v2"])]
    pub proxy_protocol: Option<String>,
    /// Move plain TCP/Unix bytes with splice(2) through a pipe per busy connection instead
    /// of a 64 KiB buffer. On loopback the buffer is faster (1 GiB nc -> nk -> nc: 2060
    /// against 1449 MB/s, the receiver's share of the CPU doubling with spliced pages); try
    /// it between real NICs. TLS and -x/--pcap flows always use the buffer.
    #[arg(long = "splice", conflicts_with = "udp")]
    pub splice: bool,
    /// Once its work is done, an event loop polls for up to DUR before it sleeps (default:
    /// 50us with -u, 0 for TCP; 0: never). The window adapts: it opens only while events
    /// come closer together than DUR (request/response traffic, where each wake-up of a
    /// sleeping loop costs tens of microseconds on an idle machine) and closes after the
    /// first longer gap, so an idle forwarder spends no CPU on it; and it stays shut while
    /// the machine has no idle CPU (or nk may use only one), where waking is cheap and
    /// polling would take CPU from others. UDP, one client, 64-byte round trips: 27,449/s
    /// against 13,982 for socat (bench 14).
    #[arg(long = "spin", value_name = "DUR", value_parser = parse_duration)]
    pub spin: Option<Duration>,
    #[command(flatten)]
    pub tls: ForwardTlsArgs,
    /// Hex dump of every connection to FILE ('-': stdout): a header line per chunk with the
    /// connection number, time and direction ('>' client->target, '<' target->client).
    #[arg(short = 'x', long = "hex-dump", value_name = "FILE|-")]
    pub hexdump: Option<String>,
    /// Record every connection as a TCP stream in a pcapng FILE, for Wireshark and tshark.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<String>,
    // Last: its help heading ("Access") would otherwise take the flags after it.
    #[command(flatten)]
    pub access: AccessArgs,
    /// A TCP target through proxies (--proxy URL, repeatable): each client's connection.
    #[command(flatten)]
    pub proxy: crate::cli::ProxyArgs,
}

/// TLS on either side. The certificate options keep the names `nk listen --tls` and `nk
/// dial --tls` give them; with TLS on both sides the plain ones are the listener's and the
/// target's take a `--connect-` prefix.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
pub struct ForwardTlsArgs {
    /// Speak TLS with each client (terminate TLS), with --cert/--key (without them an
    /// ephemeral self-signed certificate for localhost is made); --ca FILE requires client
    /// certificates signed by a CA in FILE. A client has 10 s to finish its handshake.
    #[arg(long = "tls-listen")]
    pub tls_listen: bool,
    /// Speak TLS to the target (originate TLS): its certificate is checked against the
    /// system store, or --ca FILE (--connect-ca with --tls-listen too), for the target's host
    /// or --sni NAME; the handshake counts in -w.
    #[arg(long = "tls-connect")]
    pub tls_connect: bool,
    /// A certificate chain (PEM), with --key: the one shown to clients with --tls-listen, or
    /// presented to the target with --tls-connect alone.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<String>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<String>,
    /// CA certificates (PEM): with --tls-listen, clients must present a certificate they
    /// signed (or one of them itself: a self-signed client certificate); with --tls-connect alone, the only ones the target's certificate is checked
    /// against.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<String>,
    /// With both --tls-listen and --tls-connect: trust only these certificates (PEM) for the
    /// target.
    #[arg(long = "connect-ca", value_name = "FILE")]
    pub connect_ca: Option<String>,
    /// With both: a client certificate (PEM) presented to the target, with --connect-key.
    #[arg(long = "connect-cert", value_name = "FILE", requires = "connect_key")]
    pub connect_cert: Option<String>,
    /// The private key (PEM) of --connect-cert.
    #[arg(long = "connect-key", value_name = "FILE", requires = "connect_cert")]
    pub connect_key: Option<String>,
    /// Do not check the target's certificate at all (a warning is printed).
    #[arg(long)]
    pub insecure: bool,
    /// The name to send the target (SNI) and verify its certificate by, instead of its host
    /// (needed for a Unix target).
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    #[command(flatten)]
    pub protocol: crate::cli::TlsProtocolArgs,
}

/// The TLS configurations `ForwardTlsArgs` asks for, built by the code `nk listen --tls` and
/// `nk dial --tls` use.
fn tls_configs(
    args: &ForwardTlsArgs,
    target: &TargetSpec,
) -> Result<(
    Option<Arc<rustls::ServerConfig>>,
    Option<forward::TlsConnect>,
)> {
    use crate::exit::usage;
    let either = "--tls-listen or --tls-connect";
    let given = [
        (args.cert.is_some(), "--cert", either),
        (args.ca.is_some(), "--ca", either),
        (
            args.protocol.given().is_some(),
            args.protocol.given().unwrap_or(""),
            either,
        ),
        (args.insecure, "--insecure", "--tls-connect"),
        (args.sni.is_some(), "--sni", "--tls-connect"),
        (args.connect_ca.is_some(), "--connect-ca", "--tls-connect"),
        (
            args.connect_cert.is_some(),
            "--connect-cert",
            "--tls-connect",
        ),
    ];
    for (present, flag, needs) in given {
        let missing = match needs {
            "--tls-connect" => !args.tls_connect,
            _ => !args.tls_listen && !args.tls_connect,
        };
        if present && missing {
            return Err(usage(format!("{flag} needs {needs}")));
        }
    }
    let listen = if args.tls_listen {
        let server = crate::cli::TlsServerArgs {
            tls: true,
            cert: args.cert.clone(),
            key: args.key.clone(),
            alpn: Vec::new(),
            ca: args.ca.clone(),
            protocol: args.protocol.clone(),
        };
        server.config()?
    } else {
        None
    };
    if !args.tls_connect {
        return Ok((listen, None));
    }
    // The plain names belong to the target when the listener has no TLS.
    let pick = |prefixed: &Option<String>, plain: &Option<String>, flag: &str| match (
        prefixed,
        plain,
        args.tls_listen,
    ) {
        (Some(_), Some(_), false) => Err(usage(format!("--{flag} and --connect-{flag}: give one"))),
        (Some(p), _, _) => Ok(Some(p.clone())),
        (None, Some(p), false) => Ok(Some(p.clone())),
        (None, _, _) => Ok(None),
    };
    let ca = pick(&args.connect_ca, &args.ca, "ca")?;
    if ca.is_some() && args.insecure {
        return Err(usage("--insecure and a CA file for the target: give one"));
    }
    let trust = crate::cli::TlsTrustArgs {
        ca,
        insecure: args.insecure,
        sni: args.sni.clone(),
        alpn: Vec::new(),
        cert: pick(&args.connect_cert, &args.cert, "cert")?,
        key: pick(&args.connect_key, &args.key, "key")?,
        protocol: args.protocol.clone(),
    };
    let host = match target {
        TargetSpec::Tcp(target) => match &target.host {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        },
        // Nothing to check a certificate against but --sni (any name does with --insecure).
        TargetSpec::Unix(_) if args.sni.is_none() && !args.insecure => return Err(usage(
            "--tls-connect to a Unix target needs --sni NAME (the name its certificate carries)",
        )),
        TargetSpec::Unix(_) | TargetSpec::Requested(_) => "localhost".to_string(),
    };
    let name = trust.server_name(&host);
    let server_name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|_| {
        usage(format!(
            "\"{name}\" is not a name TLS can verify (give --sni NAME)"
        ))
    })?;
    let config = trust.config(&[])?;
    Ok((
        listen,
        Some(forward::TlsConnect {
            config,
            server_name,
        }),
    ))
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
    if args.udp && (args.hexdump.is_some() || args.pcap.is_some()) {
        // No flag is ignored: the recordings tap stream connections only.
        return Err(crate::exit::usage(
            "-x and --pcap record TCP and Unix stream connections, not UDP sessions (-u)",
        ));
    }
    if args.udp {
        return run_udp(args);
    }
    if args.session_timeout.is_some() {
        return Err(crate::exit::usage(
            "--session-timeout is for UDP sessions (-u); a TCP connection's is -i",
        ));
    }
    let listen = parse_listen(&args.listen)?;
    let target = parse_target(&args.target)?;
    if args.proxy.given() && matches!(target, TargetSpec::Unix(_)) {
        return Err(crate::exit::usage("--proxy is for a TCP target"));
    }
    if args.reuseport && matches!(listen, ListenOn::Unix(_)) {
        return Err(crate::exit::usage("--reuseport is for a TCP listener"));
    }
    if args.json && args.hexdump.as_deref() == Some("-") {
        let clash = crate::exit::UsageError::new("-x - and --json both write to stdout")
            .with_hint("give -x a file (-x dump.txt), or -x /dev/stderr");
        return Err(clash.into());
    }
    if args.hexdump.is_some() && args.hexdump == args.pcap {
        return Err(crate::exit::usage("-x and --pcap name the same file"));
    }
    let access = args.access.list()?;
    let family = args.family.family();
    let (tls_listen, tls_connect) = tls_configs(&args.tls, &target)?;
    let proxy_protocol = args.proxy_protocol.as_deref().map(|v| match v {
        "v1" => Version::V1,
        _ => Version::V2,
    });
    let mut opts = Options {
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
        tls_listen,
        tls_connect,
        proxy_protocol,
        tap: None, // opened below, once the listener's port is known
        splice: args.splice,
        spin: args.spin.unwrap_or(Duration::ZERO),
    };
    // Created now: a file that cannot be is a usage error, before any traffic.
    let tap = Tap::open(args.hexdump.as_deref(), args.pcap.as_deref())?;
    crate::net::inetd::raise_descriptor_limit();
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
    opts.tap = tap.map(|mut tap| {
        // A Unix target is shown on this port in the capture.
        tap.set_listen_port(local.as_socket().map(|a| a.port()));
        tap.shared()
    });
    let (kind, stack) = match listen {
        ListenOn::Tcp(_) => ("tcp", crate::net::server::stack_note(&listener)),
        ListenOn::Unix(_) => ("unix", ""),
    };
    let stop = stop_on_signals()?;
    info!(
        "listening on {} ({kind}){stack}; forwarding to {}",
        display_sockaddr(&local),
        opts.connect.proxies.route_to(&target)
    );
    forward::run(listener, opts, stop)
}

/// SIGINT/SIGTERM ask the loops to end every connection and say the summary; each loop
/// enlists its wake-up pipe in the returned [`Stop`].
pub fn stop_on_signals() -> Result<Arc<Stop>> {
    let stop = Arc::new(Stop::default());
    {
        let stop = Arc::clone(&stop);
        signals::on_interrupt(move || stop.request_and_wait())?;
    }
    Ok(stop)
}

/// `nk forward -u`: the target resolved once, the UDP socket bound, then `net::forward::udp`.
fn run_udp(args: ForwardArgs) -> Result<()> {
    let tls = &args.tls;
    let tls_given = tls.tls_listen
        || tls.tls_connect
        || tls.cert.is_some()
        || tls.ca.is_some()
        || tls.connect_ca.is_some()
        || tls.connect_cert.is_some()
        || tls.insecure
        || tls.sni.is_some()
        || tls.protocol.given().is_some();
    if tls_given || args.proxy_protocol.is_some() || args.proxy.given() {
        return Err(crate::exit::usage(
            "TLS, --proxy-protocol and --proxy are for TCP and Unix streams, not -u (UDP)",
        ));
    }
    if args.listen.starts_with("unix:") || args.target.starts_with("unix:") {
        return Err(crate::exit::usage(
            "unix: with -u: Unix datagram sockets are not forwarded (-u is UDP)",
        ));
    }
    let session_timeout = match (args.session_timeout, args.idle) {
        (Some(_), Some(_)) => {
            return Err(crate::exit::usage(
                "-i and --session-timeout are the same with -u: give one",
            ))
        }
        (Some(limit), None) | (None, Some(limit)) => idle_limit(Some(limit)),
        (None, None) => Some(DEFAULT_SESSION_TIMEOUT),
    };
    let spec = addr::parse_listen(&args.listen, None, Proto::Udp)?;
    let target = addr::parse_target(&args.target, None, Proto::Udp)?;
    let access = args.access.list()?;
    let family = args.family.family();
    let lookup = Deadline::after(Some(
        args.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
    ));
    let resolved = addr::resolve(&target, family, lookup)?
        .into_iter()
        .next()
        .with_context(|| format!("resolve {target}: no address"))?;
    crate::net::inetd::raise_descriptor_limit();
    // Before `listening on` is said: whoever acts on that line may send SIGTERM at once.
    signals::install();
    let sockopts = SockOpts {
        reuseport: args.reuseport,
        ..SockOpts::default()
    };
    let listener = bind_udp(&spec, family, &sockopts)?;
    let local = listener.local_addr().context("getsockname")?;
    let stack = crate::net::server::stack_note(&listener);
    let stop = stop_on_signals()?;
    let shown = addr::display_addr(resolved);
    let target_note = if shown == target.to_string() {
        shown
    } else {
        format!("{target} ({shown})")
    };
    info!(
        "listening on {} (udp){stack}; forwarding to {target_note}, a session per client",
        display_sockaddr(&local)
    );
    let opts = UdpOptions {
        target: resolved,
        session_timeout,
        max_sessions: args.max_conns.map(|n| n as usize),
        access,
        json: args.json,
        spin: args.spin.unwrap_or(crate::net::forward::DEFAULT_UDP_SPIN),
    };
    udp::run(listener, opts, stop)
}
