//! `nk ping`: ICMP echo for IPv4 and IPv6, with iputils' options, output and statistics.
//!
//! Users compare ping output line by line, and scripts parse it, so the formats, the
//! statistics and the rules for when a run ends are iputils' (20221126, as Debian ships it):
//! see [`stats`] for the arithmetic and [`pinger`] for the send/receive loop. The socket comes
//! from `net::icmp` (datagram where allowed, raw otherwise) and packets from `wire::icmp`.
//! Where nk differs from iputils it is for nk's shared rules: usage errors exit 2 before any
//! traffic (iputils exits 1 for some), `-s` beyond what fits in one IP packet is refused
//! instead of failing silently, `-W 0` is refused instead of waiting forever, durations take
//! nk's syntax as well as iputils' (a `-i 1x` iputils only warns about is refused), and
//! SIGINT exits 130 after the summary. iputils' socket and per-request options (-I -M -p -Q
//! -a -l -A -O -m -r -U -B -e) are read in [`options`] and set on the socket by `net::icmp`.
//! A destination the kernel will not route ends the run
//! before the first request, as in iputils, because the same error would otherwise come back
//! on every packet, forever without -c.

pub mod options;
pub mod pinger;
pub mod stats;
pub mod sweep;
pub mod targets;
pub mod transport;

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::cli::FamilyArgs;
use crate::exit::{usage, UsageError};
use crate::net::addr::{self, Family, Host};
use crate::net::deadline::{parse_duration, Deadline};
use crate::net::icmp::{self, IcmpOptions};
use crate::signals;

use pinger::{Config, Pinger};

/// The largest payload one IPv4 / IPv6 packet can carry after the headers (65535 - 20 - 8,
/// 65535 - 8: the IPv6 payload length does not count its own header).
const MAX_SIZE_V4: u32 = 65_507;
const MAX_SIZE_V6: u32 = 65_527;

/// The shortest interval an unprivileged user may ask for (iputils' rule).
const MIN_USER_INTERVAL: Duration = Duration::from_millis(2);

/// Send ICMP echo requests and report the replies (like iputils ping).
#[derive(Debug, Args)]
#[command(
    long_about = "Send ICMP echo requests to HOST and report each reply and the statistics, \
        in iputils ping's format (its decimals rule, its summary arithmetic, (DUP!), \
        Destination Host Unreachable and Time to live exceeded lines).\n\n\
        Uses an unprivileged ICMP datagram socket when net.ipv4.ping_group_range allows it, a \
        raw socket otherwise (root or CAP_NET_RAW). -c N stops after N replies, or after the \
        last request plus twice the longest round trip (-W when nothing came back); -w DUR ends \
        the run at DUR whatever -c says. SIGQUIT prints the figures so far on stderr; SIGINT \
        prints the summary and exits 130.\n\n\
        Before the first request nk asks the kernel for a route to HOST, as iputils does: a \
        destination it will not route (no route; an unreachable, blackhole or prohibit route; \
        ::1 with lo down) ends the run at once with the kernel's reason (`connect: Network is \
        unreachable`), and a broadcast address (or a prohibit route, which the kernel reports \
        the same way) asks `Do you want to ping broadcast? Then -b.` unless -b is given. With \
        -b every host that answers a broadcast is counted, later answers marked (DUP!). \
        0.0.0.0, 0 and :: are the local host, as in iputils (PING 0.0.0.0 (127.0.0.1)); a \
        HOST may be written as inet_aton takes it (127.1, 0x7f000001). A link-local HOST keeps \
        its %iface in the header and the reply lines.\n\n\
        iputils' socket and per-request options keep its meanings and lines: -I IFACE|ADDR and \
        -B put `from SRC IFACE:` in the header; -M do|want|dont|probe sets path MTU discovery, \
        and a router's `From R icmp_seq=N Frag needed and DF set (mtu = N)` is printed, then \
        `local error: message too long, mtu=N` on stderr once the kernel knows the path MTU \
        (both counted as errors); -p PATTERN (1-16 hex bytes) prints `PATTERN: 0x..` first; \
        -Q takes 0-255, 0xNN or a DSCP name (af11, ef, cs6...); -a rings a BEL per reply; -l N \
        sends N at once; -A adapts the interval to the round trip (the summary adds ipg/ewma); \
        -O prints `no answer yet for icmp_seq=N`; -m sets SO_MARK, -r SO_DONTROUTE, -e the \
        identifier; replies are timed from the kernel's receive time unless -U. These are \
        ICMP-only. nk refuses a pattern over 16 bytes (iputils drops the rest) and takes -M \
        probe and DSCP names, which iputils 20221126 does not.\n\n\
        Exit status: 0 if a reply came (with -c and -w together: N replies), 1 if none, 2 for \
        usage errors, a missing privilege and a destination the kernel will not route.\n\n\
        Several HOSTs, -g (a block ADDR/PREFIX without its network and broadcast addresses, \
        or a range START END), --file FILE ('-': stdin) or any fping option below switch to \
        fping's mode: every target at once through one socket per family, requests --gap \
        apart (1ms), each waiting -W (default 1s here) for its reply. Output as fping's: \
        `HOST is alive` / `HOST is unreachable` (--alive, --unreach: names only; --elapsed: \
        the round trip; -q: nothing); with -c N, N requests per target -i apart, fping's \
        `HOST : [i], 64 bytes, ...` lines and per-target summaries on stderr; --stats: \
        fping's totals on stderr. Exit 0 if every target answered, 1 if some did not, 2 if a \
        name could not be resolved (the others are still pinged). -g above a /16 needs \
        --force. -I IFACE, -Q, -m and -r apply to every request of a sweep; iputils' other \
        per-request flags (-I ADDR -B -e -M -p -a -l -A -O -U) are refused there.\n\n\
        --tcp HOST:PORT (or HOST PORT) pings a service instead, without privilege: each probe \
        is a TCP connect timed from the SYN to its completion, bounded by -W (default 10s) and \
        -w, then closed with a reset (SO_LINGER 0). Lines read `connected to ADDR:PORT: seq=N \
        time=T ms`, `ADDR:PORT: seq=N Connection refused time=T ms` or `... timeout: no answer \
        within DUR`; the summary counts probes transmitted, connected, refused and timed out, \
        with the rtt line over the connected ones. --udp sends a datagram of -s bytes per probe \
        (on a fresh connected socket) and times the reply; an ICMP port unreachable is \
        `closed (port unreachable)`. -c counts probes (with -w: answers); -i, -W, -w, -q, -D, \
        -t, -n (addresses are shown as numbers), -4, -6 and --json keep their meanings; -f and -b (and -s with --tcp) are refused. \
        Exit 0 if a probe connected (TCP) or was answered (UDP), 1 if none: a refused port means \
        the host is up but the service is not.",
    after_long_help = "Examples:\n  \
        nk ping -c 3 127.0.0.1\n  \
        nk ping -6 -c 5 -i 0.2 localhost\n  \
        nk ping -w 10 -q 192.0.2.1        # 10 seconds, summary only\n  \
        nk ping -b -c 3 192.168.1.255     # who answers on the LAN\n  \
        nk ping -g 192.168.1.0/24         # fping's sweep: HOST is alive / unreachable\n  \
        nk ping -c 3 -q --stats h1 h2 ::1 # several hosts; fping's summaries on stderr\n  \
        nk ping -c 2 fe80::1%eth0         # link-local, through eth0\n  \
        sudo nk ping -f -c 10000 ::1      # flood: a dot per request, erased per reply\n  \
        nk ping -M do -s 1472 -c 3 10.0.0.1   # is the path MTU 1500? DF set\n  \
        nk ping -I eth1 -Q ef -m 42 host      # from eth1, DSCP EF, SO_MARK 42\n  \
        nk ping -p ff00 -l 3 -O host          # pattern, preload 3, report missing replies\n  \
        nk ping --tcp -c 3 127.0.0.1:443  # TCP connect times, no privilege\n  \
        nk ping --udp -c 3 10.0.0.5 53    # a datagram per probe, its reply timed"
)]
pub struct PingArgs {
    /// Host name or address to ping (with --tcp/--udp: HOST:PORT, [V6]:PORT, or HOST PORT).
    /// Several HOSTs are pinged together, as fping does (with -g: a block or START END).
    #[arg(value_name = "HOST", required_unless_present = "file")]
    pub targets: Vec<String>,

    /// TCP ping: time a TCP connect to HOST:PORT per probe (closed with a reset); no privilege
    /// needed, passes firewalls that drop ICMP.
    #[arg(long, conflicts_with_all = ["udp", "size", "flood", "broadcast"])]
    pub tcp: bool,

    /// UDP ping: send a datagram of -s bytes to HOST:PORT per probe and time the reply; an
    /// ICMP port unreachable is reported as `closed`.
    #[arg(long, conflicts_with_all = ["flood", "broadcast"])]
    pub udp: bool,

    #[command(flatten)]
    pub family: FamilyArgs,

    /// Stop after N replies (or N requests and the final wait).
    #[arg(short = 'c', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Time between requests (default 1s; below 2ms only for root). Seconds as iputils
    /// takes them (0.2, .5, 1e-1, 0x1p-2) or nk durations (200ms).
    #[arg(short = 'i', value_name = "DUR", value_parser = parse_seconds)]
    pub interval: Option<Duration>,

    /// Time to wait for a reply after the last request, when none has come (default 10s).
    /// Same forms as -i. With several targets: how long each request waits (default 1s).
    #[arg(short = 'W', value_name = "DUR", value_parser = parse_seconds)]
    pub linger: Option<Duration>,

    /// End the run after DUR, whatever -c says (0: no deadline).
    #[arg(short = 'w', value_name = "DUR", value_parser = parse_duration)]
    pub deadline: Option<Duration>,

    /// Payload bytes per request (default 56; under 16, no times are shown).
    #[arg(short = 's', value_name = "BYTES", default_value_t = 56,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_SIZE_V6)))]
    pub size: u32,

    /// TTL (IPv4) or hop limit (IPv6) of the requests.
    #[arg(short = 't', value_name = "TTL", value_parser = clap::value_parser!(u32).range(1..=255))]
    pub ttl: Option<u32>,

    /// Flood: send as fast as replies come (at least every 10ms); print '.' per request and
    /// erase it per reply. Root only unless -i is at least 2ms.
    #[arg(short = 'f')]
    pub flood: bool,

    /// Quiet: only the header and the summary.
    #[arg(short = 'q')]
    pub quiet: bool,

    /// Print a Unix timestamp before each line.
    #[arg(short = 'D')]
    pub timestamps: bool,

    /// Numeric output: no reverse lookups of repliers.
    #[arg(short = 'n')]
    pub numeric: bool,

    /// Allow pinging a broadcast address (SO_BROADCAST); every host that answers is counted,
    /// the second and later answers to a request as (DUP!). Below 1s interval root only.
    #[arg(short = 'b')]
    pub broadcast: bool,

    /// One JSON object per reply or error, and one for the summary (with -q: the summary only).
    #[arg(long, conflicts_with_all = ["flood"])]
    pub json: bool,

    #[command(flatten)]
    pub probe: options::ProbeArgs,

    #[command(flatten)]
    pub sweep: sweep::SweepArgs,
}

/// Runs `nk ping`.
pub fn run(args: PingArgs) -> Result<()> {
    let interval = match (args.interval, args.flood) {
        (Some(interval), _) => interval,
        (None, true) => Duration::ZERO,
        (None, false) => Duration::from_secs(1),
    };
    if interval < MIN_USER_INTERVAL && !is_root() {
        return Err(usage(format!(
            "cannot flood; minimal interval allowed for user is {}ms",
            MIN_USER_INTERVAL.as_millis()
        )));
    }
    if args.linger.is_some_and(|w| w.is_zero()) {
        return Err(usage(
            "-W 0 would wait forever for a reply; give a duration above 0",
        ));
    }
    if args.broadcast && interval < Duration::from_secs(1) && !is_root() {
        // iputils' rule: a broadcast at a short interval is a flood of the whole link.
        return Err(usage(format!(
            "broadcast ping with too short interval: {}",
            interval.as_millis()
        )));
    }
    if args.tcp || args.udp {
        sweep::refuse_with_transport(&args)?;
        return run_transport(args, interval);
    }
    let preload = args.probe.preload.unwrap_or(1);
    if preload > options::MAX_USER_PRELOAD && !is_root() {
        return Err(usage(format!(
            "cannot set preload to value greater than {}: {preload}",
            options::MAX_USER_PRELOAD
        )));
    }
    if sweep::wanted(&args) {
        return sweep::run(args, interval);
    }
    let Some(typed) = args.targets.first() else {
        return Err(usage("no HOST to ping"));
    };
    let family = args.family.family();
    let (host, scope_id) = parse_target(typed)?;
    let mut hostname = typed.clone();
    let (destination, numeric_target) = match &host {
        Host::Ip(ip) => {
            if !family.allows(*ip) {
                return Err(usage(format!(
                    "{ip} is not an IPv{} address",
                    if family == Family::V4 { 4 } else { 6 }
                )));
            }
            (*ip, true)
        }
        Host::Name(name) => {
            let (ip, canonical) = resolve_first(name, family)?;
            // iputils names an IPv4 target by its canonical name (myalias → myhost,
            // LOCALHOST → localhost), an IPv6 one as typed.
            if ip.is_ipv4() {
                hostname = canonical.map_or(hostname, |name| addr::display_name(&name));
            }
            (ip, false)
        }
    };
    check_size(args.size, destination)?;
    let mut tuning = args.probe.tuning();
    if let Some(source) = tuning.source {
        if source.is_ipv6() != destination.is_ipv6() {
            return Err(usage(format!(
                "-I {source}: not an address of the same family as {destination}"
            )));
        }
    }
    let source = route_source(destination, scope_id, args.broadcast, &tuning)?;
    if args.probe.strict_source {
        tuning.source = Some(source);
    }
    if let Some(device) = &tuning.device {
        if !icmp::device_has_address(device, source) {
            crate::log::warn(format_args!(
                "source address might be selected on device other than: {device}"
            ));
        }
    }
    // The kernel sends what is addressed to 0.0.0.0 to itself; iputils then names the
    // source address as the destination (PING 0.0.0.0 (127.0.0.1)), and the replies come
    // from it. It leaves `::` as it is and takes the replies from ::1.
    let destination = match destination {
        IpAddr::V4(ip) if ip.is_unspecified() => source,
        other => other,
    };
    let mut run_options = args.probe.run_options();
    if !is_root() {
        run_options.min_interval = MIN_USER_INTERVAL;
    }
    if args.probe.interface.is_some() || args.probe.strict_source {
        // iputils names the source (and the device, when -I gave one) in the header.
        let device = tuning.device.as_deref().unwrap_or("");
        run_options.from = Some(format!("from {source} {device}: "));
    }
    let socket = icmp::open(
        destination,
        IcmpOptions {
            ttl: args.ttl,
            identifier: std::process::id() as u16,
            broadcast: args.broadcast,
            scope_id,
            tuning: tuning.clone(),
        },
    )?;
    let config = Config {
        hostname,
        destination,
        rules: rules(&args, interval),
        size: args.size as usize,
        flood: args.flood,
        // iputils prints addresses only for literal targets and floods.
        numeric: args.numeric || args.flood || numeric_target,
        scope_id,
        any_source: args.broadcast || destination.is_unspecified(),
        options: run_options,
        tuning,
    };
    let mut pinger = Pinger::new(socket, std::io::stdout(), config);
    let last_words = pinger.summary_printer();
    signals::on_interrupt(last_words)?;
    pinger.status_on_sigquit();
    let outcome = pinger.run()?;
    if outcome.success {
        Ok(())
    } else {
        Err(crate::exit::Reported(crate::exit::Status::Failure).into())
    }
}

/// The options ICMP, TCP and UDP ping share, from the command line.
fn rules(args: &PingArgs, interval: Duration) -> pinger::Rules {
    pinger::Rules {
        count: args.count,
        interval,
        linger: args.linger.unwrap_or(Duration::from_secs(10)),
        deadline: args.deadline.filter(|d| !d.is_zero()),
        quiet: args.quiet,
        timestamps: args.timestamps,
        json: args.json,
    }
}

/// `-s` beyond what one IP packet carries is refused (ICMP echo and UDP payloads alike).
fn check_size(size: u32, destination: IpAddr) -> Result<()> {
    let max_size = if destination.is_ipv6() {
        MAX_SIZE_V6
    } else {
        MAX_SIZE_V4
    };
    if size > max_size {
        return Err(usage(format!(
            "-s {size}: an IPv{} packet carries at most {max_size} bytes of payload",
            if destination.is_ipv6() { 6 } else { 4 }
        )));
    }
    Ok(())
}

/// `--tcp` / `--udp`: probes of a port instead of ICMP echo (see [`transport`]).
fn run_transport(args: PingArgs, interval: Duration) -> Result<()> {
    use transport::{Prober, Transport};
    let (transport, proto) = if args.tcp {
        (Transport::Tcp, crate::net::service_names::Proto::Tcp)
    } else {
        (Transport::Udp, crate::net::service_names::Proto::Udp)
    };
    let Some(host) = args.targets.first() else {
        return Err(usage("no HOST:PORT to probe"));
    };
    let target = addr::parse_target(host, args.targets.get(1).map(String::as_str), proto)?;
    let destination = transport::destination(&target, args.family.family())?;
    check_size(args.size, destination.ip())?;
    let config = transport::Config {
        transport,
        target_text: target.to_string(),
        destination,
        rules: rules(&args, interval),
        size: args.size as usize,
        ttl: args.ttl,
    };
    let mut prober = Prober::new(config, std::io::stdout());
    signals::on_interrupt(prober.summary_printer())?;
    if prober.run()? {
        Ok(())
    } else {
        Err(crate::exit::Reported(crate::exit::Status::Failure).into())
    }
}

/// HOST as iputils takes it: an IPv6 literal with `%iface` (its scope, kept for the socket
/// and the output), or what every nk command takes ([`addr::parse_host`]: inet_aton's IPv4
/// forms such as `0`, `127.1` and `0x7f.1`, which getaddrinfo gives iputils, and IDN names).
/// Returns the IPv6 scope (interface index) too, 0 for none.
fn parse_target(text: &str) -> Result<(Host, u32)> {
    if let Some((ip, scope)) = text.split_once('%') {
        if let Ok(ip) = ip.parse::<Ipv6Addr>() {
            return Ok((Host::Ip(IpAddr::V6(ip)), interface_index(scope)?));
        }
    }
    Ok((addr::parse_host(text)?, 0))
}

/// The index of interface `scope` (a name, or an index as a number), for `fe80::1%eth0`.
fn interface_index(scope: &str) -> Result<u32> {
    let Ok(name) = std::ffi::CString::new(scope) else {
        return Err(usage(format!(
            "unknown interface \"{}\"",
            scope.escape_debug()
        )));
    };
    // SAFETY: name is a valid NUL-terminated string; if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index != 0 {
        return Ok(index);
    }
    match scope.parse::<u32>() {
        Ok(index) if index != 0 => Ok(index),
        _ => Err(usage(format!(
            "unknown interface \"{}\"",
            scope.escape_debug()
        ))),
    }
}

/// The source address the kernel would use towards `destination`, or the reason it will not
/// route there, found before the first request as iputils does, so that an error every
/// request would meet ends the run at once (exit 2) instead of once per packet forever.
fn route_source(
    destination: IpAddr,
    scope_id: u32,
    broadcast: bool,
    tuning: &icmp::SocketTuning,
) -> Result<IpAddr> {
    let target = match destination {
        // A link-local address without a scope cannot be connected to (EINVAL), yet iputils
        // pings it (its probe does not connect then) and the kernel picks the interface for
        // each request: do the same.
        IpAddr::V6(ip) if scope_id == 0 && ip.segments()[0] & 0xffc0 == 0xfe80 => {
            return Ok(destination)
        }
        IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, scope_id)),
        IpAddr::V4(_) => SocketAddr::new(destination, 0),
    };
    let refused = |err: std::io::Error| {
        if err.raw_os_error().is_none() {
            // A step before the connect (-I's device or address) names itself.
            return anyhow::Error::new(UsageError::new(err.to_string()));
        }
        anyhow::Error::new(
            UsageError::new(format!("connect: {}", os_text(&err))).with_hint(format!(
                "`ip route get {destination}` shows the route the kernel has"
            )),
        )
    };
    match icmp::route_source_with(target, false, tuning) {
        Ok(source) => Ok(source.ip()),
        // EACCES: a broadcast address without SO_BROADCAST, or a prohibit route; iputils
        // cannot tell them apart either, and asks (IPv6 has no broadcast: the errno it is).
        Err(err) if err.raw_os_error() == Some(libc::EACCES) && destination.is_ipv4() => {
            if !broadcast {
                return Err(usage(
                    "Do you want to ping broadcast? Then -b. If not, check your local firewall rules",
                ));
            }
            crate::log::warn(format_args!("pinging broadcast address"));
            icmp::route_source_with(target, true, tuning)
                .map(|source| source.ip())
                .map_err(refused)
        }
        Err(err) => Err(refused(err)),
    }
}

/// The system's words for an OS error, without Rust's ` (os error N)`, as iputils prints it.
fn os_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// `-i` and `-W` as iputils reads them: a number of seconds in any form strtod(3) accepts
/// (`1e3`, `.5`, `0x1p-2`, `+0.2`), finite and not negative; nk's durations (`200ms`) too.
/// What iputils only warns about (`1x`: "garbage") is refused, before any traffic.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let nk_error = match parse_duration(text) {
        Ok(duration) => return Ok(duration),
        Err(err) => err,
    };
    let Ok(c_text) = std::ffi::CString::new(text) else {
        return Err(nk_error);
    };
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: c_text is NUL-terminated and outlives the call; strtod sets end to a pointer
    // into it. nk never calls setlocale, so the decimal point is '.' as in iputils' C locale.
    let value = unsafe { libc::strtod(c_text.as_ptr(), &mut end) };
    // SAFETY: end points into c_text (at most at its NUL), so both are in one allocation.
    let used = unsafe { end.offset_from(c_text.as_ptr()) };
    let whole = usize::try_from(used).is_ok_and(|used| used == text.len() && used > 0);
    if !whole || !value.is_finite() || value < 0.0 {
        return Err(nk_error);
    }
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| d.as_secs() < 365 * 24 * 3600)
        .ok_or_else(|| format!("invalid duration \"{text}\": longer than a year"))
}

/// The first address of a name in the resolver's order, and its canonical name. An unknown
/// name is exit 2, as iputils has it.
fn resolve_first(name: &str, family: Family) -> Result<(IpAddr, Option<String>)> {
    let deadline = Deadline::after(Some(Duration::from_secs(30)));
    let (found, canonical) = addr::lookup_canonical(name, family, deadline)
        .map_err(|e| anyhow::Error::new(UsageError::new(format!("resolve {name}: {e}"))))?;
    let ip = found.first().copied().ok_or_else(|| {
        let which = if family == Family::V4 { "IPv4" } else { "IPv6" };
        anyhow::Error::new(UsageError::new(format!(
            "resolve {name}: no {which} address"
        )))
    })?;
    Ok((ip, canonical))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_take_the_shared_literal_forms() {
        let v4 = |s: &str| match parse_target(s).unwrap() {
            (Host::Ip(ip), 0) => ip.to_string(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(v4("0"), "0.0.0.0");
        assert_eq!(v4("127.1"), "127.0.0.1");
        assert_eq!(v4("0x7f.1"), "127.0.0.1");
        assert!(parse_target("256.1").is_err());
    }

    #[test]
    fn seconds_in_iputils_forms() {
        let ms = |s: &str| parse_seconds(s).map(|d| d.as_millis());
        assert_eq!(ms("1e3"), Ok(1_000_000));
        assert_eq!(ms(".5"), Ok(500));
        assert_eq!(ms("0x1p-2"), Ok(250));
        assert_eq!(ms("+0.2"), Ok(200));
        assert_eq!(ms("200ms"), Ok(200));
        for bad in ["inf", "nan", "-1", "1x", "", "1e30"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
