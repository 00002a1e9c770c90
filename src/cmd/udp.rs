//! `nk udp`: datagrams to and from a UDP peer, or a UDP server with `-l`.
//!
//! Addresses, family rules and `-e/-c` are the TCP ones; the datagram rules (one read = one
//! datagram, MSG_TRUNC detection, replies until `-q` of silence, stdin to the last peer heard)
//! live in `net::datagram`, shared with `nk unix --dgram`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use crate::cli::{parse_size, ExecArgs, FamilyArgs};
use crate::exit::usage;
use crate::info;
use crate::net::addr::{self, display_addr, Family, ListenSpec, Target};
use crate::net::datagram::{self, DatagramOptions, DatagramStats, DEFAULT_BUFFER};
use crate::net::deadline::{parse_duration, Deadline};
use crate::net::service_names::Proto;
use crate::signals;

/// How long the client keeps printing replies after stdin EOF when `-q` is not given.
const DEFAULT_QUIT_AFTER_EOF: Duration = Duration::from_secs(1);

/// Send and receive UDP datagrams (like nc -u), or serve them with -l.
#[derive(Debug, Args)]
#[command(
    long_about = "Send stdin as UDP datagrams and print every reply, or with -l receive \
        datagrams and print them. One stdin read is one datagram (--lines: one line, newline \
        included); one datagram received is one write to stdout, so boundaries are kept both \
        ways. A datagram larger than the receive buffer (-b, default 65536) is reported with \
        its real size, never cut silently. Largest payloads: 65507 bytes over IPv4, 65527 over \
        IPv6.\n\n\
        Client: a connected socket; after stdin EOF replies are printed until -q of silence \
        (default 1s). ICMP port unreachable is reported with -v, and ends with exit 1 when \
        nothing at all was received.\n\n\
        Server (-l): prints every datagram; without -k only the first peer is served; stdin \
        goes to the last peer heard (held until one is heard). -e/-c run a program per \
        datagram: the datagram is its stdin, its stdout (at most one datagram) is the reply; \
        NK_PROTO=udp, 10s each at most. At most 64 programs run at once; up to 1024 more \
        datagrams wait in a queue and get theirs in arrival order as programs end. Datagrams \
        dropped because the queue is full, and replies lost (a program that cannot start, \
        runs too long or writes more than a datagram; a reply the socket refuses), are \
        reported on stderr without -v: at most one line a second per cause, with the count \
        and the peers. Runs until SIGINT/SIGTERM or -i idle.",
    after_long_help = "Examples:\n  \
        echo hello | nk udp 127.0.0.1 7            # what an echo server answers\n  \
        nk udp -l -v 127.0.0.1:5353 > datagrams.bin\n  \
        nk udp -l -k 9999 -c 'shuf -i 1-1000 -n 1'  # a random number per datagram\n  \
        nk udp -l --join 239.1.2.3 --iface lo 5000  # listen to a multicast group"
)]
pub struct UdpArgs {
    /// Client: HOST:PORT, [V6]:PORT or HOST PORT. Server (-l): PORT, :PORT, HOST:PORT or HOST PORT.
    #[arg(value_name = "ADDRESS")]
    pub address: Option<String>,
    /// The port, when given as its own argument.
    #[arg(value_name = "PORT")]
    pub port: Option<String>,
    /// Listen for datagrams instead of sending them.
    #[arg(short = 'l', long = "listen")]
    pub listen: bool,
    /// With -l: serve every peer, not only the first.
    #[arg(short = 'k', long = "keep-open", requires = "listen")]
    pub keep_open: bool,
    #[command(flatten)]
    pub family: FamilyArgs,
    /// Client: the source address; server: the address to listen on.
    #[arg(short = 's', long = "source", value_name = "ADDR", value_parser = addr::parse_ip_arg)]
    pub source: Option<IpAddr>,
    /// Client: the source port; server: the port to listen on (netcat's `nc -u -l -p PORT`).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port_flag: Option<String>,
    /// Client: after stdin EOF, keep printing replies until DUR of silence (default 1s).
    #[arg(short = 'q', value_name = "DUR", value_parser = parse_duration)]
    pub quit_after_eof: Option<Duration>,
    /// End when no datagram moved either way for DUR (exit 1), sent or received; 0 means never.
    #[arg(short = 'i', long = "idle-timeout", value_name = "DUR", value_parser = parse_duration)]
    pub idle: Option<Duration>,
    /// One datagram per line of stdin (newline included) instead of one per read.
    #[arg(long)]
    pub lines: bool,
    /// Receive buffer in bytes (k/M suffixes); larger datagrams are reported as truncated.
    #[arg(short = 'b', long = "buffer", value_name = "SIZE", value_parser = parse_size)]
    pub buffer: Option<usize>,
    /// Allow sending to broadcast addresses (SO_BROADCAST).
    #[arg(long)]
    pub broadcast: bool,
    /// Join a multicast group (IPv4 or IPv6) to receive its datagrams (a server: with -l).
    #[arg(long, value_name = "GROUP", value_parser = addr::parse_ip_arg, requires = "listen")]
    pub join: Vec<IpAddr>,
    /// The network interface for --join and for sending to multicast groups (e.g. eth0).
    #[arg(long, value_name = "NAME")]
    pub iface: Option<String>,
    /// Time to live / hop limit, unicast and multicast, 1-255.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=255))]
    pub ttl: Option<u32>,
    /// Hex dump every datagram ('>' sent, '<' received) to FILE, or to stderr with '-'.
    #[arg(short = 'x', long = "hex-dump", value_name = "FILE|-")]
    pub hexdump: Option<String>,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// Runs `nk udp`.
pub fn run(args: UdpArgs) -> Result<()> {
    let family = args.family.family();
    let exec = args.exec.spec()?;
    if exec.is_some() && !args.listen {
        return Err(usage(
            "-e/-c run a program per datagram received: they need -l",
        ));
    }
    if let Some(group) = args.join.iter().find(|g| !g.is_multicast()) {
        return Err(usage(format!(
            "--join {group}: not a multicast group (224.0.0.0/4 or ff00::/8)"
        )));
    }
    let iface = args.iface.as_deref().map(interface_index).transpose()?;
    let buffer = args.buffer.unwrap_or(DEFAULT_BUFFER);
    let hexdump = crate::cli::open_hexdump(args.hexdump.as_deref())?;
    let stats = Arc::new(DatagramStats::default());
    let started = Instant::now();
    let summary_stats = Arc::clone(&stats);
    signals::on_interrupt(move || {
        summary_stats.report_losses_at_end();
        info!("{}", summary_stats.summary(started.elapsed()));
    })?;
    let result = if args.listen {
        let spec = addr::listen_spec(
            args.address.as_deref(),
            args.port.as_deref(),
            args.port_flag.as_deref(),
            args.source.map(addr::Host::Ip),
            Proto::Udp,
        )?;
        let socket = bind_server(&spec, family, &args.join, iface)?;
        configure(&socket, &args, iface)?;
        datagram::enlarge_receive_buffer(&socket);
        let local = socket.local_addr().context("getsockname")?;
        let local_ip = local.as_socket().context("local address")?;
        info!("listening on {} (udp)", display_addr(local_ip));
        let opts = options(
            &args,
            buffer,
            max_payload(local_ip.is_ipv6()),
            exec,
            hexdump,
        );
        datagram::server(socket, &opts, &stats)
    } else {
        let first = args
            .address
            .as_deref()
            .ok_or_else(|| usage("missing the address to send to"))?;
        let target = addr::parse_target(first, args.port.as_deref(), Proto::Udp)?;
        let peer = resolve_one(&target, family, args.source)?;
        let socket = Socket::new(Domain::for_address(peer), Type::DGRAM, Some(Protocol::UDP))
            .context("create UDP socket")?;
        configure(&socket, &args, iface)?;
        if args.source.is_some() || args.port_flag.is_some() {
            let port = args
                .port_flag
                .as_deref()
                .map(|p| addr::parse_port(p, Proto::Udp, false))
                .transpose()?;
            let ip = args
                .source
                .unwrap_or_else(|| addr::unspecified(peer.is_ipv6()));
            let local = SocketAddr::new(ip, port.unwrap_or(0));
            socket
                .bind(&SockAddr::from(local))
                .with_context(|| format!("bind {}", display_addr(local)))?;
        }
        if let Err(err) = socket.connect(&SockAddr::from(peer)) {
            let context = format!("connect {}", display_addr(peer));
            if err.raw_os_error() == Some(libc::EACCES) && !args.broadcast {
                return Err(anyhow::Error::new(crate::exit::Hinted {
                    message: format!("{context}: {err}"),
                    hint: "to send to a broadcast address, add --broadcast".into(),
                }));
            }
            return Err(err).context(context);
        }
        info!("sending to {} (udp)", display_addr(peer));
        let opts = options(&args, buffer, max_payload(peer.is_ipv6()), None, hexdump);
        datagram::client(socket, &display_addr(peer), &opts, &stats)
    };
    info!("{}", stats.summary(started.elapsed()));
    result
}

fn options(
    args: &UdpArgs,
    buffer: usize,
    max_payload: usize,
    exec: Option<crate::net::exec::ExecSpec>,
    hexdump: Option<Arc<std::sync::Mutex<Box<dyn std::io::Write + Send>>>>,
) -> DatagramOptions {
    DatagramOptions {
        buffer,
        max_payload,
        lines: args.lines,
        quit_after_eof: args.quit_after_eof.unwrap_or(DEFAULT_QUIT_AFTER_EOF),
        idle: crate::net::deadline::idle_limit(args.idle),
        keep: args.keep_open,
        exec,
        proto: "udp",
        hexdump,
        allow_uids: None,
    }
}

fn max_payload(ipv6: bool) -> usize {
    if ipv6 {
        datagram::MAX_UDP_PAYLOAD_V6
    } else {
        datagram::MAX_UDP_PAYLOAD_V4
    }
}

/// Binds the server socket: no host → IPv6 and IPv4 both (or the family of the groups joined).
fn bind_server(
    spec: &ListenSpec,
    family: Family,
    groups: &[IpAddr],
    iface: Option<u32>,
) -> Result<Socket> {
    let addr = match &spec.host {
        Some(host) => resolve_one(
            &Target {
                host: host.clone(),
                port: spec.port,
            },
            family,
            None,
        )?,
        None => {
            let v6 = match (family, groups.first()) {
                (Family::V4, _) => false,
                (Family::V6, _) => true,
                (Family::Any, Some(group)) => group.is_ipv6(),
                (Family::Any, None) => true,
            };
            SocketAddr::new(addr::unspecified(v6), spec.port)
        }
    };
    let context = || format!("listen on {} (udp)", display_addr(addr));
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .with_context(context)?;
    if addr.is_ipv6() && spec.host.is_none() {
        socket
            .set_only_v6(family == Family::V6)
            .with_context(context)?;
    }
    if !groups.is_empty() {
        // Several receivers of one group on one host is the normal case.
        socket.set_reuse_address(true).with_context(context)?;
    }
    socket.bind(&SockAddr::from(addr)).with_context(context)?;
    for group in groups {
        let joined = match group {
            IpAddr::V4(g) => {
                socket.join_multicast_v4_n(g, &InterfaceIndexOrAddress::Index(iface.unwrap_or(0)))
            }
            IpAddr::V6(g) => socket.join_multicast_v6(g, iface.unwrap_or(0)),
        };
        joined.with_context(|| format!("join multicast group {group}"))?;
        info!("joined {group}");
    }
    Ok(socket)
}

/// Socket options for both roles: broadcast, TTL, multicast interface.
fn configure(socket: &Socket, args: &UdpArgs, iface: Option<u32>) -> Result<()> {
    let ipv6 = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .is_some_and(|a| a.is_ipv6())
        || socket.domain().is_ok_and(|d| d == Domain::IPV6);
    if args.broadcast {
        socket.set_broadcast(true).context("set SO_BROADCAST")?;
    }
    if let Some(ttl) = args.ttl {
        if ipv6 {
            socket
                .set_unicast_hops_v6(ttl)
                .context("set IPV6_UNICAST_HOPS")?;
            socket
                .set_multicast_hops_v6(ttl)
                .context("set IPV6_MULTICAST_HOPS")?;
        } else {
            socket.set_ttl(ttl).context("set IP_TTL")?;
            socket
                .set_multicast_ttl_v4(ttl)
                .context("set IP_MULTICAST_TTL")?;
        }
    }
    if let Some(index) = iface {
        if ipv6 {
            socket
                .set_multicast_if_v6(index)
                .context("set IPV6_MULTICAST_IF")?;
        } else {
            set_multicast_if_index_v4(socket, index).context("set IP_MULTICAST_IF")?;
        }
    }
    Ok(())
}

/// IP_MULTICAST_IF by interface index (socket2 only takes an address for IPv4).
fn set_multicast_if_index_v4(socket: &Socket, index: u32) -> std::io::Result<()> {
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: index as libc::c_int,
    };
    // SAFETY: IP_MULTICAST_IF reads an ip_mreqn of the size given; the socket is open.
    let result = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&mreqn as *const libc::ip_mreqn).cast(),
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// An interface name (or index) to its index.
fn interface_index(name: &str) -> Result<u32> {
    if let Ok(index) = name.parse::<u32>() {
        return Ok(index);
    }
    let c_name = std::ffi::CString::new(name)
        .map_err(|_| usage(format!("invalid interface name \"{name}\"")))?;
    // SAFETY: if_nametoindex reads the NUL-terminated name and returns 0 when unknown.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(usage(format!("unknown network interface \"{name}\"")));
    }
    Ok(index)
}

/// The first address of a target under the family and source-address rules.
fn resolve_one(target: &Target, family: Family, source: Option<IpAddr>) -> Result<SocketAddr> {
    let addrs = addr::resolve(
        target,
        family,
        Deadline::after(Some(Duration::from_secs(10))),
    )?;
    addrs
        .into_iter()
        .find(|a| source.is_none_or(|s| s.is_ipv4() == a.is_ipv4()))
        .ok_or_else(|| anyhow!("resolve {}: no address of the family of -s", target.host))
}
