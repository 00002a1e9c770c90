//! `nk dial`: the netcat client. Connect (Happy Eyeballs, `-w` for the whole attempt), then
//! relay stdin/stdout with half-close, exactly as `nk listen` does once it has a client.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::cli::{ExecArgs, FamilyArgs, ProxyArgs, RelayArgs, SockArgs};
use crate::cmd::{relay_stdio, summary_on_interrupt};
use crate::info;
use crate::net::addr;
use crate::net::connect::{connect, ConnectOptions};
use crate::net::deadline::parse_timeout;
use crate::net::exec::{self, ConnInfo};
use crate::net::relay::AfterPeerEof;
use crate::net::service_names::Proto;

/// Connect to a TCP server and relay stdin/stdout.
#[derive(Debug, Args)]
#[command(
    // nc users read -k as "keep open" (listen's); on dial, --insecure has no short form
    // (curl's -k stays on head and smtp).
    mut_arg("insecure", |arg| arg.short(None)),
    long_about = "Connect to a TCP server and relay stdin to it and its replies to stdout.\n\n\
        At stdin EOF the connection is half-closed (the peer sees EOF) and nk keeps printing \
        until the peer closes, then exits 0. When the peer closes first, nk closes its stdout at \
        once (a reader downstream sees the end) and, as OpenBSD nc does, keeps sending what \
        stdin delivers until stdin's EOF: a FIN only says the peer sends no more. On a \
        terminal the peer's EOF ends the session at once; --end-at-peer-eof does so whatever \
        stdin is (Ncat 7.96's habit). A peer that had really gone answers with a reset: nk \
        exits 1 saying how many bytes of input were not delivered. Nothing is lost silently: \
        exit 0 means every byte read was delivered (bytes sent after the peer's EOF are \
        confirmed acknowledged first); otherwise stderr says what was not, and nk exits 1. \
        An unreadable stdin (closed, write-only) is an empty one. \
        HOST is read as by every nk command: IPv4 in any form inet_aton takes (127.1, \
        2130706433, 0x7f.1 are 127.0.0.1), a name with non-ASCII characters in its UTS 46 ASCII \
        form (bücher.example is xn--bcher-kva.example); -v shows what it was read as. \
        A name with several addresses is dialled with Happy Eyeballs (RFC 8305): IPv6 first, \
        a new attempt every 250 ms, first success wins. Received data is the only thing on \
        stdout; -v diagnostics and -x - dumps go to stderr. With -e/-c a program takes the place of \
        stdin/stdout (its stderr stays nk's; NK_REMOTE_ADDR, NK_REMOTE_PORT, NK_LOCAL_ADDR, \
        NK_LOCAL_PORT, NK_PROTO, NK_CONN_SEQ describe the connection).\n\n\
        -z scans instead: `nk dial -z HOST PORTS` connects to every port of PORTS (`22`, \
        `22,80,443`, `8000-8100`, service names, any mix; `1-65535` for all), many at once, \
        and prints `HOST PORT/tcp open SERVICE` for each open port in port order; every address \
        of HOST is scanned. A connection with itself (possible on loopback when the kernel picks \
        the target port as the source port) is never reported. A link-local target keeps its \
        scope (fe80::1%eth0). Exit 0 if any port is open, 1 if none.\n\n\
        -z -u (nc's -zu) probes with UDP: an empty datagram per port; `open` (a reply came), \
        `open|filtered` (silence: most services ignore an empty datagram, firewalls drop it) \
        and `closed` (ICMP port unreachable). Open and open|filtered ports are printed, as \
        nmap does (`HOST PORT/udp open|filtered SERVICE`); exit 0 if any was, as nc -zu \
        succeeds for every port that did not refuse. Linux rate-limits ICMP errors (1000/s \
        per host, 1/s per peer), and a dropped error looks like silence: probes go at --rate \
        N per second (default 500), a silent port is tried 3 times -w apart, and an error that \
        answers a retry halves the rate. Scanning another Linux host, use --rate 1 for an \
        exact closed/open|filtered split.\n\n\
        A piece of PORTS with a hyphen: exactly a service name is that service (`http-alt` is \
        8080); otherwise it is LOW-HIGH, split at the one hyphen that leaves a port or service \
        on each side (`ftp-data-ssh` is 20-22); a piece that splits more than one way is an \
        error.\n\n\
        --proxy URL connects through a proxy (socks4, socks4a, socks5, socks5h, http and https \
        CONNECT; repeat it for a chain, each proxy reached through the one before); -w bounds \
        the whole chain, -v prints each hop as it opens, and a failure names the hop and the \
        cause (the SOCKS reply in words, the proxy's HTTP status line). Bytes the proxy sends \
        right after its reply are the target's and are kept. nc's -X 4|5|connect makes -x the \
        proxy's HOST:PORT (without -X, -x is the hex dump); ncat's --proxy HOST:PORT \
        --proxy-type --proxy-auth --proxy-dns work too. $all_proxy is read only with \
        --proxy env. A scan (-z) cannot go through a proxy.\n\n\
        Many proxies (tinyproxy, microsocks, ncat's HTTP proxy) end the whole tunnel when the \
        client half-closes: through them, `nk dial --proxy ... < /dev/null` (or any input that \
        ends before the answer) can end early with exit 0 and nothing received. Give \
        --no-shutdown (no half-close at stdin EOF) or --recv-only (stdin never read). dante and \
        nk's own `listen --proxy` pass the half-close on.",
    after_long_help = "Examples:\n  \
        nk dial 127.0.0.1 8080 < request.bin > reply.bin\n  \
        printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nk dial -v example.com:http\n  \
        nk dial -C -x - [::1]:25                  # type SMTP by hand, see every byte\n  \
        nk dial -w 2 -i 30 -s 127.0.0.2 -p 40000 127.0.0.1:9000\n  \
        nk dial -c 'echo hello; cat > reply.txt' 127.0.0.1 9000\n  \
        printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' | nk dial --tls -v --ca ca.pem localhost 8443\n  \
        nk dial -z -v 127.0.0.1 22,80,8000-8100   # which ports are open?\n  \
        nk dial -zu -v 127.0.0.1 53,123,5353      # UDP: open, open|filtered, closed\n  \
        nk dial --proxy socks5h://127.0.0.1:1080 db.internal 5432\n  \
        nk dial -X connect -x proxy.lan:3128 git.example 22         # nc's spelling\n  \
        nk dial -v --proxy http://bastion:3128 --proxy socks5://u:p@10.1.0.9 10.2.0.7 22  # a chain"
)]
pub struct DialArgs {
    /// HOST:PORT, [V6]:PORT, or HOST followed by PORT; PORT may be a service name (http).
    #[arg(value_name = "HOST[:PORT]")]
    pub target: String,
    /// The port, when not given with the host.
    #[arg(value_name = "PORT")]
    pub port: Option<String>,

    #[command(flatten)]
    pub family: FamilyArgs,
    /// Give up connecting after DUR, resolution, every address and the TLS handshake included
    /// (exit 1); with -z, the time each port may take (default 1s).
    #[arg(short = 'w', long = "connect-timeout", value_name = "DUR", value_parser = parse_timeout)]
    pub connect_timeout: Option<Duration>,
    /// Local source address to connect from.
    #[arg(short = 's', long = "source", value_name = "ADDR", value_parser = addr::parse_ip_arg)]
    pub source_addr: Option<std::net::IpAddr>,
    /// Local source port to connect from.
    #[arg(short = 'p', long = "source-port", value_name = "PORT")]
    pub source_port: Option<String>,

    /// Scan: report which of PORTS are open (`22,80,8000-8100`, service names); no data sent.
    #[arg(short = 'z', long = "scan", help_heading = "Port scan")]
    pub scan: bool,
    /// Scan: ports probed at once (default 1024, at most the descriptor limit allows).
    #[arg(long, value_name = "N", requires = "scan", help_heading = "Port scan",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub parallel: Option<u64>,
    /// Scan: one JSON object per port printed, on stdout.
    #[arg(long, requires = "scan", help_heading = "Port scan")]
    pub json: bool,
    /// Scan with UDP probes (nc -zu): open (a reply), open|filtered (silence), closed (ICMP).
    #[arg(
        short = 'u',
        long = "udp",
        requires = "scan",
        help_heading = "Port scan"
    )]
    pub udp: bool,
    /// UDP scan: probes per second at most, retries included (default 500).
    #[arg(long, value_name = "N", requires = "udp", help_heading = "Port scan",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: Option<u32>,

    #[command(flatten)]
    pub exec: ExecArgs,
    #[command(flatten)]
    pub relay: RelayArgs,
    #[command(flatten)]
    pub tls: crate::cli::TlsClientArgs,
    #[command(flatten)]
    pub sock: SockArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// nc's proxy protocol: 4 (SOCKS4), 5 (SOCKS5, names resolved by the proxy) or connect
    /// (HTTP CONNECT, in any case as OpenBSD nc: CONNECT too); -x then gives the proxy's
    /// HOST:PORT instead of a hex dump file.
    #[arg(short = 'X', value_name = "4|5|connect", value_parser = ["4", "5", "connect"],
          ignore_case = true, conflicts_with = "proxy_type", help_heading = "Proxy")]
    pub nc_proxy: Option<String>,
}

/// Relays the connection (or the plaintext side of its TLS bridge) with stdin/stdout or a program.
fn relay<S: crate::net::relay::SplitStream>(
    stream: Arc<S>,
    exec: Option<crate::net::exec::ExecSpec>,
    peer: &str,
    info: &ConnInfo,
    relay_opts: &crate::net::relay::RelayOptions,
) -> Result<()> {
    match exec {
        Some(spec) => exec::relay_child(stream, peer, &spec, info, relay_opts, |_| {}),
        None => relay_stdio(stream, peer, relay_opts, AfterPeerEof::UntilEnd),
    }
}

/// A flag that would have no effect on a scan is a usage error, not silently ignored: a scan
/// connects and closes, moving no data, without TLS or socket options.
fn refuse_what_a_scan_ignores(args: &DialArgs) -> Result<()> {
    let relay = &args.relay;
    let sock = &args.sock;
    let ignored = [
        (args.tls.tls, "--tls"),
        (args.tls.trust.given().is_some(), "TLS options"),
        (relay.idle.is_some(), "-i"),
        (relay.quit_after_eof.is_some(), "-q"),
        (
            relay.no_shutdown || relay.shutdown_at_eof,
            "--no-shutdown/-N",
        ),
        (
            relay.send_only || relay.recv_only,
            "--send-only/--recv-only",
        ),
        (relay.crlf, "-C"),
        (relay.hexdump.is_some(), "-x"),
        (relay.output.is_some(), "-o"),
        (relay.end_at_peer_eof, "--end-at-peer-eof"),
        (sock.nodelay || sock.keepalive, "--nodelay/--keepalive"),
        (sock.tos.is_some() || sock.ttl.is_some(), "-T/--tos/--ttl"),
        (
            sock.sndbuf.is_some() || sock.rcvbuf.is_some(),
            "--sndbuf/--rcvbuf",
        ),
    ];
    match ignored.iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(crate::exit::usage(format!(
            "{flag} has no effect with -z: a scan only connects and closes"
        ))),
        None => Ok(()),
    }
}

/// nc's `-X 4|5|connect -x HOST:PORT`: with -X, -x is the proxy address (it is taken out of
/// the hex dump option and added to the front of the --proxy chain).
fn take_nc_proxy(args: &mut DialArgs) -> Result<()> {
    let Some(kind) = args.nc_proxy.as_deref() else {
        return Ok(());
    };
    let scheme = match kind {
        "4" => "socks4",
        "5" => "socks5h",
        _ => "http",
    };
    let address = args.relay.hexdump.take().ok_or_else(|| {
        crate::exit::usage(format!("-X {kind} needs -x HOST:PORT, the proxy's address"))
    })?;
    args.proxy.proxy.insert(0, format!("{scheme}://{address}"));
    Ok(())
}

/// Runs `nk dial`.
pub fn run(mut args: DialArgs) -> Result<()> {
    take_nc_proxy(&mut args)?;
    if args.scan {
        if args.proxy.given() {
            return Err(crate::exit::usage(
                "--proxy cannot be used with -z: a scan probes every port with its own direct \
                 connection, and a proxy would only say what it can reach, one tunnel at a time",
            ));
        }
        refuse_what_a_scan_ignores(&args)?;
        return crate::cmd::scan::run(&args);
    }
    let target = addr::parse_target(&args.target, args.port.as_deref(), Proto::Tcp)?;
    let source_port = args
        .source_port
        .as_deref()
        .map(|port| addr::parse_port(port, Proto::Tcp, false))
        .transpose()?;
    // Checked before any traffic: an unwritable -x file is reported before we connect.
    let relay_opts = args.relay.options()?;
    let exec = args.exec.spec()?;
    let tls = args.tls.config()?;
    let proxies = args.proxy.chain()?;
    let opts = ConnectOptions {
        family: args.family.family(),
        timeout: args.connect_timeout,
        source_addr: args.source_addr,
        source_port,
        sockopts: args.sock.options(),
        quiet: false,
        proxies,
        idle: crate::net::deadline::idle_limit(args.relay.idle),
    };
    let started = std::time::Instant::now();
    let connected = connect(&target, &opts)?;
    let peer = connected.name.clone();
    summary_on_interrupt(&relay_opts.counters)?;
    let mut info = ConnInfo::new(&connected.peer.into(), &connected.local.into(), "tcp", 1);
    let result = match tls {
        Some(config) => {
            let name = args.tls.trust.server_name(&target.host.to_string());
            let plain = crate::net::tls::connect(
                connected.stream,
                config,
                &name,
                &peer,
                // -w bounds connecting as a whole, the handshake included (as ncat's -w).
                match args.connect_timeout {
                    Some(w) => crate::net::tls::HandshakeLimit {
                        until: started + w,
                        stated: w,
                    },
                    None => crate::net::tls::HANDSHAKE_TIMEOUT.into(),
                },
            )?;
            info.tls_peer_subject = plain.peer_subject().map(str::to_string);
            relay(Arc::new(plain), exec, &peer, &info, &relay_opts)
        }
        None => relay(Arc::new(connected.stream), exec, &peer, &info, &relay_opts),
    };
    info!("{}", relay_opts.counters.summary());
    result
}
