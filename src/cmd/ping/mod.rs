//! `nk ping`: ICMP echo for IPv4 and IPv6, with iputils' options, output and statistics.
//!
//! Users compare ping output line by line, and scripts parse it, so the formats, the
//! statistics and the rules for when a run ends are iputils' (20221126, as Debian ships it):
//! see [`stats`] for the arithmetic and [`pinger`] for the send/receive loop. The socket comes
//! from `net::icmp` (datagram where allowed, raw otherwise) and packets from `wire::icmp`.
//! Where nk differs from iputils it is for nk's shared rules: usage errors exit 2 before any
//! traffic (iputils exits 1 for some), `-s` beyond what fits in one IP packet is refused
//! instead of failing silently, `-W 0` is refused instead of waiting forever, durations take
//! nk's syntax, and SIGINT exits 130 after the summary.

pub mod pinger;
pub mod stats;

use std::net::IpAddr;
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
        Exit status: 0 if a reply came (with -c and -w together: N replies), 1 if none, 2 for \
        usage errors and a missing privilege.",
    after_long_help = "Examples:\n  \
        nk ping -c 3 127.0.0.1\n  \
        nk ping -6 -c 5 -i 0.2 localhost\n  \
        nk ping -w 10 -q 192.0.2.1        # 10 seconds, summary only\n  \
        sudo nk ping -f -c 10000 ::1      # flood: a dot per request, erased per reply"
)]
pub struct PingArgs {
    /// Host name or address to ping.
    #[arg(value_name = "HOST")]
    pub host: String,

    #[command(flatten)]
    pub family: FamilyArgs,

    /// Stop after N replies (or N requests and the final wait).
    #[arg(short = 'c', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Time between requests (default 1s; below 2ms only for root).
    #[arg(short = 'i', value_name = "DUR", value_parser = parse_duration)]
    pub interval: Option<Duration>,

    /// Time to wait for a reply after the last request, when none has come (default 10s).
    #[arg(short = 'W', value_name = "DUR", value_parser = parse_duration)]
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

    /// One JSON object per reply or error, and one for the summary.
    #[arg(long, conflicts_with_all = ["flood", "quiet"])]
    pub json: bool,
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
    let family = args.family.family();
    let host = addr::parse_host(&args.host)?;
    let mut hostname = args.host.clone();
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
                hostname = canonical.unwrap_or(hostname);
            }
            (ip, false)
        }
    };
    let max_size = if destination.is_ipv6() {
        MAX_SIZE_V6
    } else {
        MAX_SIZE_V4
    };
    if args.size > max_size {
        return Err(usage(format!(
            "-s {}: an IPv{} packet carries at most {max_size} bytes of payload",
            args.size,
            if destination.is_ipv6() { 6 } else { 4 }
        )));
    }
    let socket = icmp::open(
        destination,
        IcmpOptions {
            ttl: args.ttl,
            identifier: std::process::id() as u16,
        },
    )?;
    let config = Config {
        hostname,
        destination,
        count: args.count,
        interval,
        linger: args.linger.unwrap_or(Duration::from_secs(10)),
        deadline: args.deadline.filter(|d| !d.is_zero()),
        size: args.size as usize,
        flood: args.flood,
        quiet: args.quiet,
        timestamps: args.timestamps,
        // iputils prints addresses only for literal targets and floods.
        numeric: args.numeric || args.flood || numeric_target,
        json: args.json,
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
