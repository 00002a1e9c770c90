//! `nk echo`, `nk discard`, `nk chargen`, `nk daytime`, `nk qotd`, `nk time`: the RFC 862,
//! 863, 864, 867, 865 and 868 services (inetd's internal services), as clients and (with `-l`)
//! as servers.
//!
//! The commands share one set of options ([`ServiceArgs`]), one server (`net::inetd`, TCP
//! and UDP on one port, behind one UDP guard) and one client ([`client`]); what differs is the
//! text: the echo itself, the time ([`wire::daytime`](crate::wire::daytime),
//! [`wire::time`](crate::wire::time)), a quote ([`wire::quotes`](crate::wire::quotes)), the
//! character pattern ([`wire::chargen`](crate::wire::chargen)), or nothing (discard). Echo
//! adds a probe mode ([`probe`]) that reports round-trip times the way ping does; discard and
//! chargen, which move bulk bytes, have their own clients ([`bulk`]).

pub mod bulk;
pub mod client;
pub mod probe;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use rand::Rng;

use crate::cli::FamilyArgs;
use crate::exit::{usage, Status};
use crate::info;
use crate::net::addr::{self, display_sockaddr, ListenSpec};
use crate::net::deadline::parse_duration;
use crate::net::inetd::{self, Behaviour, ServiceOptions, ServiceStats};
use crate::net::server::{bind_tcp, bind_udp};
use crate::net::service_names::Proto;
use crate::net::sockopt::SockOpts;
use crate::net::udp_guard::{self, parse_rate};
use crate::signals;
use crate::wire::daytime::{self, DaytimeFormat, Zone};
use crate::wire::quotes;

/// A UDP rate, parsed (`None` = `off`).
#[derive(Debug, Clone, Copy)]
pub struct Rate(pub Option<f64>);

fn parse_rate_arg(text: &str) -> Result<Rate, String> {
    parse_rate(text).map(Rate)
}

/// A TCP client that moves no byte for this long is closed by default: a silent client
/// should not hold a descriptor forever on a service left running.
const DEFAULT_SERVER_IDLE: Duration = Duration::from_secs(300);

/// UDP replies per second per source unless `--rate` says otherwise (see [`server_help`]).
const DEFAULT_RATE_PER_SECOND: f64 = 50.0;

/// Options shared by echo, daytime and qotd, clients and servers.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Serve instead of asking: listen on [HOST:]PORT (the service's port when omitted).
    #[arg(short = 'l', long = "listen")]
    pub listen: bool,
    /// Client: use UDP. Server: serve UDP only.
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
    /// Client: use TCP (the default). Server: serve TCP only.
    #[arg(long = "tcp", conflicts_with = "udp")]
    pub tcp: bool,
    #[command(flatten)]
    pub family: FamilyArgs,
    // Each command describes -i in its own words (`mut_arg` on EchoArgs, DaytimeArgs,
    // QotdArgs): echo's probe interval means nothing to daytime and qotd.
    #[arg(short = 'i', value_name = "DUR", value_parser = parse_duration)]
    pub interval_or_idle: Option<Duration>,

    /// Connection timeout (TCP; also bounds the name lookup). Default 5s.
    #[arg(short = 'w', long = "connect-timeout", value_name = "DUR", value_parser = crate::net::deadline::parse_timeout, conflicts_with = "listen", help_heading = "Client")]
    pub connect_timeout: Option<Duration>,
    /// How long to wait for each whole reply, however slowly it trickles in (each UDP try,
    /// each probe). Default 2s.
    #[arg(short = 'W', long = "timeout", value_name = "DUR", value_parser = parse_duration, conflicts_with = "listen", help_heading = "Client")]
    pub timeout: Option<Duration>,
    /// UDP: send a request this many times before giving up on a reply.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100), help_heading = "Client")]
    pub tries: u32,
    /// One JSON object per reply: {"server","proto","rtt_ms","text"}.
    #[arg(long, conflicts_with = "listen", help_heading = "Client")]
    pub json: bool,

    /// Serve at most N TCP clients at once; more are closed at once.
    #[arg(short = 'm', long = "max-conns", value_name = "N", requires = "listen", value_parser = clap::value_parser!(u64).range(1..=10_000_000), help_heading = "Server")]
    pub max_conns: Option<u64>,
    // --allow/--deny: server only (checked in client::Config::new), for TCP and UDP both.
    #[command(flatten)]
    pub access: crate::cli::AccessArgs,
    /// UDP replies allowed per source (an IPv4 address or an IPv6 /64): N/s, N/m, N/h, or
    /// off (default 50/s).
    #[arg(long, value_name = "N/s", requires = "listen", value_parser = parse_rate_arg, help_heading = "Server")]
    pub rate: Option<Rate>,
    /// UDP replies a quiet source may get at once (default: one second's worth of --rate).
    #[arg(long, value_name = "N", requires = "listen", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Server")]
    pub burst: Option<u32>,
    /// Client over TCP: through proxies (--proxy URL, repeatable).
    #[command(flatten)]
    pub proxy: crate::cli::ProxyArgs,
}

/// The text of the shared long help: what the server does and how it protects itself.
macro_rules! server_help {
    () => {
        "\n\nWith -l, nk serves the service on TCP and UDP at once on one port \
    (--tcp or --udp for one), with no host on IPv6 and IPv4 both; -v prints `listening on \
    ADDR:PORT (tcp)` and `(udp)` with the real port, and each client with a timestamp. TCP \
    clients are served from one event loop (10,000 at once cost a few MB); -m caps them, -i \
    closes silent ones (default 5m), --allow/--deny choose whom to serve.\n\n\
    UDP safety: a forged source makes any UDP service a weapon, so nk never answers source \
    ports 0, 7, 9, 13, 17, 19 or 37 (services that answer anything: a loop), its own port, or \
    broadcast, multicast and unspecified sources. Each source (an IPv4 address, an IPv6 /64) \
    gets --rate replies a second after a --burst; the default, 50/s, is far above what a \
    person or a probe (`nk echo -u -c N -i 20ms`) needs, and holds what a forged source can \
    draw to 50 replies a second (25 KB/s even for qotd's longest quote). Replies are never \
    larger than the service needs: echo returns the request byte for byte, chargen's reply \
    is never longer than its request, time's is 4 bytes, discard never answers. A datagram \
    left unanswered is said without -v, at most a line a second (the rest counted): a refused \
    source, the start of a source's run over --rate and, when it is answered again, how many \
    went unanswered, a reply that could not be sent; at SIGINT/SIGTERM one line counts them \
    all."
    };
}

/// `-i` as the client of a one-reply service reads it (daytime, qotd), and as the server.
const IDLE_HELP: &str = "Client: the longest silence between two bytes of the reply (-W still \
    bounds the whole reply, and is at least DUR when not given). Server: close a TCP client \
    idle for DUR (default 5m; 0 = never).";

/// `-i` for echo: the probe interval with -c, otherwise as [`IDLE_HELP`].
const ECHO_INTERVAL_HELP: &str = "Client: with -c, the interval between probes (default 1s); \
    otherwise the longest silence between two bytes of a reply (-W still bounds the whole \
    reply, and is at least DUR when not given). Server: close a TCP client idle for DUR \
    (default 5m; 0 = never).";

/// `-i` for discard: the client sends as long as stdin gives, so only the server has an idle
/// limit.
const DISCARD_IDLE_HELP: &str = "Server: close a TCP client idle for DUR (default 5m; 0 = \
    never).";

/// `-i` for chargen.
const CHARGEN_IDLE_HELP: &str = "Client: the longest silence in the stream before nk gives up \
    (default: -W). Server: close a TCP client that has read nothing for DUR (default 5m; 0 = \
    never).";

/// Discard: RFC 863.
#[derive(Debug, Args)]
#[command(
    mut_arg("interval_or_idle", |a| a.help(DISCARD_IDLE_HELP)),
    long_about = concat!("RFC 863 discard. As a client, send stdin to HOST (TCP port 9 by default, \
        or HOST PORT as two arguments) and print how many bytes were delivered and how fast. \
        Lossless or loud: at the end of stdin nk half-closes and waits for the server's \
        close, which a discard server sends only once it has read every byte; exit 0 then. \
        A reset, or no close within -W of the last acknowledged byte, is exit 1 saying how \
        many bytes went out unconfirmed. --json prints {\"server\",\"proto\",\"bytes\",\
        \"seconds\"} instead of the line. With -u each read of stdin is one datagram: UDP \
        confirms nothing, so the line says sent, not delivered (a refusal from the host, ICMP \
        port unreachable, is still exit 1).\n\n\
        As a server (-l), read and drop everything each client sends, as fast as it comes; \
        -v prints each client with the bytes it sent and the rate.", server_help!()),
    after_long_help = "Examples:\n  \
        nk discard 127.0.0.1:9 < big.iso             # bytes delivered, MB/s\n  \
        head -c 64M /dev/zero | nk discard 127.0.0.1 909\n  \
        nk discard -u 127.0.0.1:909 < datagrams.txt\n  \
        nk discard -l -v 909                         # serve; -v shows bytes per client"
)]
pub struct DiscardArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    #[command(flatten)]
    pub common: ServiceArgs,
}

/// The most `-c` may ask of a chargen stream (1 PiB: no test of a link needs more).
const MAX_CHARGEN_COUNT: u64 = 1 << 50;

fn parse_chargen_count(text: &str) -> Result<u64, String> {
    crate::cli::parse_bytes(text, MAX_CHARGEN_COUNT)
}

/// Chargen: RFC 864.
#[derive(Debug, Args)]
#[command(
    mut_arg("interval_or_idle", |a| a.help(CHARGEN_IDLE_HELP)),
    long_about = concat!("RFC 864 character generator. As a client, print the stream HOST sends \
        (TCP port 19 by default, or HOST PORT as two arguments) as it comes, byte for byte \
        (CRLF line ends kept), until -c BYTES have come, the server closes, or ^C. The end of \
        the stream before -c, a reset, or a silence of -i (default -W) is exit 1. --check \
        verifies every byte against RFC 864's pattern (72 printable characters a line, each \
        line one character further along, CRLF) and stops at the first that differs, naming \
        its offset: for a user testing a link for corrupted, lost or reordered bytes (xinetd's \
        variant, whose ring leaves out the space and ~, passes too). --json prints no stream, only {\"server\",\"proto\",\"bytes\",\"seconds\",\"checked\"} \
        at the end. -v adds the bytes and rate.\n\n\
        With -u, one datagram of 512 bytes is sent (RFC 864 ignores its content; its size \
        lets a careful server answer in full) and the reply printed (--check: a reply's last \
        line may be short).\n\n\
        As a server (-l), send each TCP client the pattern from its first line, for as long \
        as it reads (writing only when its socket has room: a client that never reads costs \
        nothing but its socket, and never slows the others), dropping what it sends. Over \
        UDP each datagram gets RFC 864's random 0-512 characters, but never more than the \
        request's length: no amplification.", server_help!()),
    after_long_help = "Examples:\n  \
        nk chargen 127.0.0.1:19 | head -3\n  \
        nk chargen -c 100M --check 127.0.0.1 1919 > /dev/null   # test a link\n  \
        nk chargen -u 127.0.0.1:1919\n  \
        nk chargen -l -v 1919"
)]
pub struct ChargenArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    #[command(flatten)]
    pub common: ServiceArgs,
    /// Stop after BYTES (k, M, G: binary multiples).
    #[arg(short = 'c', long = "count", value_name = "BYTES", conflicts_with_all = ["listen", "udp"], value_parser = parse_chargen_count, help_heading = "Client")]
    pub count: Option<u64>,
    /// Verify that every byte received follows the RFC 864 pattern (exit 1 at the first
    /// that does not).
    #[arg(long, conflicts_with = "listen", help_heading = "Client")]
    pub check: bool,
}

/// Time: RFC 868.
#[derive(Debug, Args)]
#[command(
    mut_arg("interval_or_idle", |a| a.help(IDLE_HELP)),
    long_about = concat!("RFC 868 time. As a client, ask HOST (TCP port 37 by default, or HOST \
        PORT as two arguments; -u: one empty datagram) for its time, 4 bytes: seconds since \
        1900-01-01 UTC, and print it in RFC 3339 form in the local zone (--utc: in UTC). -v \
        adds the server's offset from this host's clock (RFC 868 counts whole seconds, so \
        it is good to about half a second). A reply that is not 4 bytes is exit 1 (is it a \
        time server?). The count wraps on 2036-02-07: values below 2^31 are read as after \
        the wrap, so every time from 1968 to 2104 reads right. --json prints \
        {\"server\",\"proto\",\"rtt_ms\",\"time\",\"value\",\"offset_s\"}.\n\n\
        As a server (-l), send each client (each datagram) the current time, 4 bytes, then \
        close.", server_help!()),
    after_long_help = "Examples:\n  \
        nk time 127.0.0.1:37\n  \
        nk time -v -u 127.0.0.1 3737     # with the offset from the local clock\n  \
        nk time --json 127.0.0.1:3737\n  \
        nk time -l -v 3737"
)]
pub struct TimeArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    #[command(flatten)]
    pub common: ServiceArgs,
    /// Print the time in UTC instead of the local zone.
    #[arg(long, conflicts_with = "listen", help_heading = "Client")]
    pub utc: bool,
}

/// ADDRESS [PORT]: the positional arguments of every service but echo (whose second word may
/// start its message).
#[derive(Debug, Args)]
pub struct Endpoint {
    /// Client: HOST[:PORT] (the service's port by default). Server (-l): [HOST:]PORT.
    #[arg(value_name = "ADDRESS")]
    pub address: Option<String>,
    /// The port, when not given with the host (HOST PORT as two arguments).
    #[arg(value_name = "PORT")]
    pub port: Option<String>,
}

/// Echo: RFC 862.
#[derive(Debug, Args)]
#[command(
    mut_arg("interval_or_idle", |a| a.help(ECHO_INTERVAL_HELP)),
    long_about = concat!("RFC 862 echo. As a client, send MESSAGE (the words joined by spaces, sent \
        as typed with no newline added) to HOST (TCP port 7 by default, -u for UDP), print \
        the reply, and exit 1 saying where the reply differs if it is not what was sent. \
        Without MESSAGE, each line of stdin is sent and its reply printed. With -c N, probe \
        mode: N probes of -s bytes at -i intervals over one TCP connection (or UDP), a line \
        per reply with its round-trip time, and ping's summary (min/avg/max/mdev, loss); exit \
        0 when a probe came back intact, as ping does.\n\n\
        UDP requests are sent --tries times, -W apart, before giving up; the socket is \
        connected, so only the server's replies are accepted. Over TCP, -W bounds the whole \
        reply, however slowly it trickles in; a reply that differs is read on (to the \
        server's close, -W, or 64 KiB) and printed whole, and the error quotes it (escaped, \
        cut at 120 characters). A server that closes before replying is reported as such. \
        Every error starts `nk: echo HOST:PORT (tcp|udp):`.\n\n\
        HOST PORT as two arguments: the word after a HOST without a port is the port when it \
        reads as one (a number 1-65535 or a service name of /etc/services, such as echo), and \
        the message follows; otherwise it starts the message. -M TEXT sends TEXT whatever it \
        looks like (`nk echo -M 7007 HOST`).", server_help!()),
    after_long_help = "Examples:\n  \
        nk echo -u 127.0.0.1:7 cau                  # prints cau\n  \
        nk echo -c 10 -i 200ms 127.0.0.1:7007       # RTT probes over one TCP connection\n  \
        printf 'a\\nb\\n' | nk echo 127.0.0.1:7007    # one reply per line\n  \
        nk echo 127.0.0.1 7007 hello                # HOST PORT MESSAGE\n  \
        nk echo -l -v 7007                          # serve TCP and UDP 7007\n  \
        nk echo --proxy socks5://127.0.0.1:1080 10.0.0.5 hello   # over TCP, through SOCKS5"
)]
pub struct EchoArgs {
    /// Client: HOST[:PORT] (port 7 by default). Server (-l): [HOST:]PORT.
    #[arg(value_name = "ADDRESS")]
    pub address: Option<String>,
    /// The port, when ADDRESS has none and the word reads as one (1-65535, or a service name
    /// such as echo); then the text to send (without it: the lines of stdin). Use -M to send
    /// a text that would read as a port.
    #[arg(value_name = "[PORT] MESSAGE")]
    pub message: Vec<String>,
    /// The text to send, whatever it looks like (the other arguments are then HOST [PORT]).
    #[arg(
        short = 'M',
        long = "message",
        value_name = "TEXT",
        conflicts_with = "listen",
        help_heading = "Client"
    )]
    pub text: Option<String>,
    #[command(flatten)]
    pub common: ServiceArgs,
    /// Probe mode: send N probes and print round-trip statistics.
    #[arg(short = 'c', long = "count", value_name = "N", conflicts_with_all = ["listen", "text"], value_parser = clap::value_parser!(u64).range(1..=10_000_000), help_heading = "Client")]
    pub count: Option<u64>,
    /// Probe size in bytes (with -c; default 64, at least 8).
    #[arg(short = 's', long = "size", value_name = "BYTES", requires = "count", value_parser = clap::value_parser!(u32).range(8..=1_048_576), help_heading = "Client")]
    pub size: Option<u32>,
}

/// Daytime: RFC 867.
#[derive(Debug, Args)]
#[command(
    mut_arg("interval_or_idle", |a| a.help(IDLE_HELP)),
    long_about = concat!("RFC 867 daytime. As a client, print the line HOST sends (TCP port 13 by \
        default, or HOST PORT as two arguments; read until the server closes, all within -W; \
        a line still incomplete then is printed and nk exits 1; -u: one datagram). As a \
        server (-l), send each \
        client the current time as one line ending in CRLF, then close; over UDP, any \
        datagram gets the line back.\n\n\
        --format chooses the line: rfc867 (the default, after RFC 867's example: `Saturday, \
        November 21, 2026 11:32:12-UTC`), rfc3339, rfc2822, ctime, or a strftime pattern (it \
        must contain %; no control character, no %n nor %t: the reply is one line). Local \
        time unless --utc. The local zone is the C library's, as date(1) shows it (TZ, or \
        /etc/localtime): %Z prints what `date +%Z` prints (`CET`, `UTC`, `+04`), %z the \
        numeric offset; the rfc867 line ends `-CET` after RFC 867's `-PST`, or with the \
        numeric offset (`+0400`) for a zone that has no name.", server_help!()),
    after_long_help = "Examples:\n  \
        nk daytime 127.0.0.1:1313\n  \
        nk daytime -u --json 127.0.0.1:1313\n  \
        nk daytime -l --utc --format rfc3339 1313\n  \
        nk daytime -l --format '%Y-%m-%d %H:%M:%S %Z' 1313"
)]
pub struct DaytimeArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    #[command(flatten)]
    pub common: ServiceArgs,
    /// The line's format: rfc867, rfc3339, rfc2822, ctime, or a strftime pattern.
    #[arg(long, value_name = "FORMAT", requires = "listen", default_value = "rfc867", value_parser = daytime::parse_format, help_heading = "Server")]
    pub format: DaytimeFormat,
    /// Tell the time in UTC instead of the local zone.
    #[arg(long, requires = "listen", help_heading = "Server")]
    pub utc: bool,
}

/// Quote of the day: RFC 865.
#[derive(Debug, Args)]
#[command(
    mut_arg("interval_or_idle", |a| a.help(IDLE_HELP)),
    long_about = concat!("RFC 865 quote of the day. As a client, print the quote HOST sends (TCP port \
        17 by default, or HOST PORT as two arguments; read until the server closes, at most \
        64 KiB, all within -W; a line still incomplete then is printed and nk exits 1; -u: \
        one datagram). As a \
        server (-l), send each client (each datagram) a quote chosen at random, with CRLF \
        line ends, then close.\n\n\
        Quotes come from --quotes FILE (fortune's format: entries separated by lines holding \
        only %; otherwise paragraphs separated by blank lines) or from a built-in set of \
        public-domain quotes. RFC 865 asks for quotes under 512 characters: longer entries are \
        refused when the file is loaded, with a warning naming each.", server_help!()),
    after_long_help = "Examples:\n  \
        nk qotd 127.0.0.1:1717\n  \
        nk qotd -u 127.0.0.1:1717\n  \
        nk qotd -l -v 1717\n  \
        nk qotd -l --quotes /usr/share/games/fortunes/fortunes 1717"
)]
pub struct QotdArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    #[command(flatten)]
    pub common: ServiceArgs,
    /// Serve the quotes of FILE (fortune `%` format or blank-line paragraphs).
    #[arg(
        long,
        value_name = "FILE",
        requires = "listen",
        help_heading = "Server"
    )]
    pub quotes: Option<String>,
}

/// Runs `nk echo`.
pub fn run_echo(args: EchoArgs) -> Result<()> {
    if args.common.listen {
        let port = match args.message.as_slice() {
            [] => None,
            [port] => Some(port.as_str()),
            [_, extra, ..] => {
                return Err(usage(format!("a server takes no MESSAGE (\"{extra}\")")))
            }
        };
        return serve(
            &args.common,
            args.address.as_deref(),
            port,
            7,
            Behaviour::Echo,
        );
    }
    let proto = client_proto(&args.common);
    let address = required_address(args.address.as_deref(), "echo", "[PORT] [MESSAGE...]")?;
    // HOST PORT MESSAGE...: the word after a HOST without a port is the port when it reads as
    // one (a number 1-65535 or a service name); otherwise it starts the message. -M sends a
    // message that would read as a port.
    let (target, words) = match args.message.split_first() {
        Some((second, rest)) if addr::parse_target(address, Some(second), proto).is_ok() => {
            (addr::parse_target(address, Some(second), proto)?, rest)
        }
        _ => (
            addr::parse_target_or(address, 7, proto)?,
            args.message.as_slice(),
        ),
    };
    let message = match (&args.text, words) {
        (Some(text), []) => Some(text.clone()),
        (Some(_), [extra, ..]) => {
            return Err(usage(format!(
                "-M gives the message: \"{extra}\" is one argument too many (HOST [PORT] only)"
            )))
        }
        (None, []) => None,
        (None, words) => Some(words.join(" ")),
    };
    let mut config = client::Config::new(&args.common, target, "echo")?;
    if let Some(count) = args.count {
        if let Some(message) = message {
            return Err(usage(format!(
                "-c sends probes, not a MESSAGE (\"{message}\")"
            )));
        }
        let size = args.size.unwrap_or(64) as usize;
        return probe::run(&config, count, size, args.common.interval_or_idle);
    }
    config.use_idle_timeout(args.common.interval_or_idle);
    match message {
        None => client::echo_lines(&config),
        Some(message) => client::echo_message(&config, message.as_bytes()),
    }
}

/// The local zone at `now` as date(1) sees it: localtime_r's offset and abbreviation (from
/// TZ, or /etc/localtime, through the tz database). chrono's Local knows the offset but not
/// the name, which is why `%Z` used to print `+00:00` where `date +%Z` prints `UTC`.
fn local_zone(now: chrono::DateTime<chrono::Utc>) -> Zone {
    let fallback = || Zone::Local {
        offset: now.with_timezone(&chrono::Local).offset().local_minus_utc(),
        name: None,
    };
    // time_t is 32 bits on some targets: a time it cannot hold gets the fallback.
    let Some(t) = libc::time_t::try_from(now.timestamp()).ok() else {
        return fallback();
    };
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: `t` and `tm` are valid for the call; localtime_r writes only into `tm`.
    let result = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if result.is_null() {
        return fallback();
    }
    // SAFETY: localtime_r succeeded, so it filled `tm` (which was zeroed before anyway).
    let tm = unsafe { tm.assume_init() };
    let Ok(offset) = i32::try_from(tm.tm_gmtoff) else {
        return fallback();
    };
    let name = if tm.tm_zone.is_null() {
        None
    } else {
        // SAFETY: a non-null tm_zone points to a NUL-terminated string that the C library
        // keeps for the life of the process (glibc and musl keep their zone names); it is
        // copied at once and checked by zone_name before use.
        let raw = unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) };
        daytime::zone_name(raw.to_bytes())
    };
    Zone::Local { offset, name }
}

/// Runs `nk daytime`.
pub fn run_daytime(args: DaytimeArgs) -> Result<()> {
    if args.common.listen {
        let (format, utc) = (args.format, args.utc);
        let behaviour = Behaviour::Announce(Arc::new(move || {
            let now = chrono::Utc::now();
            let zone = if utc { Zone::Utc } else { local_zone(now) };
            let mut line = daytime::render(&format, &zone, now).into_bytes();
            line.extend_from_slice(b"\r\n");
            line
        }));
        return serve_args(&args.common, &args.endpoint, 13, behaviour);
    }
    let mut config = client_config(&args.common, &args.endpoint, 13, "daytime")?;
    config.use_idle_timeout(args.common.interval_or_idle);
    client::announcement(&config)
}

/// Runs `nk qotd`.
pub fn run_qotd(args: QotdArgs) -> Result<()> {
    if args.common.listen {
        let entries = match &args.quotes {
            Some(path) => load_quotes(path)?,
            None => quotes::BUILT_IN.iter().map(|q| q.to_string()).collect(),
        };
        let wire: Vec<Vec<u8>> = entries.iter().map(|q| quotes::to_wire(q)).collect();
        let behaviour = Behaviour::Announce(Arc::new(move || {
            let pick = rand::rng().random_range(0..wire.len());
            wire[pick].clone()
        }));
        return serve_args(&args.common, &args.endpoint, 17, behaviour);
    }
    let mut config = client_config(&args.common, &args.endpoint, 17, "qotd")?;
    config.use_idle_timeout(args.common.interval_or_idle);
    client::announcement(&config)
}

/// Runs `nk discard`.
pub fn run_discard(args: DiscardArgs) -> Result<()> {
    if args.common.listen {
        return serve_args(&args.common, &args.endpoint, 9, Behaviour::Discard);
    }
    if args.common.interval_or_idle.is_some() {
        return Err(usage(
            "-i closes idle clients of a server (-l); the client sends as long as stdin gives",
        ));
    }
    let config = client_config(&args.common, &args.endpoint, 9, "discard")?;
    bulk::discard(&config)
}

/// Runs `nk chargen`.
pub fn run_chargen(args: ChargenArgs) -> Result<()> {
    if args.common.listen {
        return serve_args(&args.common, &args.endpoint, 19, Behaviour::Chargen);
    }
    let mut config = client_config(&args.common, &args.endpoint, 19, "chargen")?;
    config.use_idle_timeout(args.common.interval_or_idle);
    bulk::chargen(&config, args.count, args.check)
}

/// Runs `nk time`.
pub fn run_time(args: TimeArgs) -> Result<()> {
    if args.common.listen {
        let behaviour = Behaviour::Announce(Arc::new(|| {
            crate::wire::time::encode(chrono::Utc::now()).to_vec()
        }));
        return serve_args(&args.common, &args.endpoint, 37, behaviour);
    }
    let mut config = client_config(&args.common, &args.endpoint, 37, "time")?;
    config.use_idle_timeout(args.common.interval_or_idle);
    client::time(&config, args.utc)
}

/// The server of a command whose positional arguments are ADDRESS and PORT.
fn serve_args(
    common: &ServiceArgs,
    endpoint: &Endpoint,
    default_port: u16,
    behaviour: Behaviour,
) -> Result<()> {
    serve(
        common,
        endpoint.address.as_deref(),
        endpoint.port.as_deref(),
        default_port,
        behaviour,
    )
}

/// The client configuration of a command whose positional arguments are ADDRESS and PORT.
fn client_config(
    common: &ServiceArgs,
    endpoint: &Endpoint,
    default_port: u16,
    service: &'static str,
) -> Result<client::Config> {
    let target = client_target(
        common,
        endpoint.address.as_deref(),
        endpoint.port.as_deref(),
        default_port,
        service,
    )?;
    client::Config::new(common, target, service)
}

/// The largest quotes file read (a fortune database is well under this).
const MAX_QUOTES_FILE: u64 = 16 << 20;

fn load_quotes(path: &str) -> Result<Vec<String>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| usage(format!("--quotes {path}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_QUOTES_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("read --quotes {path}"))?;
    if bytes.len() as u64 > MAX_QUOTES_FILE {
        return Err(usage(format!(
            "--quotes {path}: larger than {} MiB",
            MAX_QUOTES_FILE >> 20
        )));
    }
    let text = String::from_utf8_lossy(&bytes);
    let (kept, refused) = quotes::parse(&text);
    for entry in &refused {
        crate::log::warn(format_args!(
            "--quotes {path}: entry {} (line {}, \"{}...\") is {} characters; RFC 865 quotes \
             must be under {}: skipped",
            entry.entry,
            entry.line,
            entry.preview,
            entry.chars,
            quotes::LIMIT
        ));
    }
    if kept.is_empty() {
        return Err(usage(format!(
            "--quotes {path}: no quote under {} characters in it",
            quotes::LIMIT
        )));
    }
    info!("{} quotes loaded from {path}", kept.len());
    Ok(kept)
}

/// The protocol a client's port names are looked up for.
fn client_proto(common: &ServiceArgs) -> Proto {
    if common.udp {
        Proto::Udp
    } else {
        Proto::Tcp
    }
}

/// The server's address, which a client command needs.
fn required_address<'a>(address: Option<&'a str>, command: &str, rest: &str) -> Result<&'a str> {
    address.ok_or_else(|| {
        anyhow::Error::new(
            crate::exit::UsageError::new("a server address is required").with_hint(format!(
                "nk {command} HOST[:PORT] {rest} to ask a server, or nk {command} -l [PORT] to be one"
            )),
        )
    })
}

/// The server for daytime and qotd: HOST[:PORT], or HOST and PORT as two arguments.
fn client_target(
    common: &ServiceArgs,
    address: Option<&str>,
    port: Option<&str>,
    default_port: u16,
    command: &str,
) -> Result<addr::Target> {
    let address = required_address(address, command, "")?;
    let proto = client_proto(common);
    match port {
        Some(port) => addr::parse_target(address, Some(port), proto),
        None => addr::parse_target_or(address, default_port, proto),
    }
}

/// Runs the server: binds TCP and/or UDP on one port and serves until interrupted.
fn serve(
    common: &ServiceArgs,
    address: Option<&str>,
    port: Option<&str>,
    default_port: u16,
    behaviour: Behaviour,
) -> Result<()> {
    let spec = match address {
        Some(text) => addr::parse_listen(text, port, Proto::Tcp)?,
        None => ListenSpec {
            host: None,
            port: default_port,
        },
    };
    if common.proxy.given() {
        return Err(crate::exit::usage(
            "--proxy is for the client: a server with -l accepts connections, it dials none",
        ));
    }
    let access = common.access.list()?;
    let opts = ServiceOptions {
        max_conns: common.max_conns.map(|n| n as usize),
        idle: match common.interval_or_idle {
            None => Some(DEFAULT_SERVER_IDLE),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
        },
        access,
        rate: udp_guard::rate_limit(
            common.rate.map_or(Some(DEFAULT_RATE_PER_SECOND), |r| r.0),
            common.burst,
        )?,
    };
    let (want_tcp, want_udp) = (!common.udp, !common.tcp);
    inetd::raise_descriptor_limit();
    let (tcp, udp) = bind_both(&spec, common, want_tcp, want_udp)?;
    // Signals are handled before the port is announced: whoever acts on the listening line
    // may send SIGTERM at once, and must get the 143 cli.md promises.
    let stats = Arc::new(ServiceStats::serving(tcp.is_some(), udp.is_some()));
    let summary = Arc::clone(&stats);
    signals::on_interrupt(move || match crate::log::verbosity() {
        0 => {
            if let Some(line) = summary.unanswered() {
                crate::log::warn(format_args!("{line}"));
            }
        }
        _ => info!("{}", summary.summary()),
    })?;
    for (socket, proto) in [(&tcp, "tcp"), (&udp, "udp")] {
        if let Some(socket) = socket {
            let local = socket.local_addr().context("getsockname")?;
            info!("listening on {} ({proto})", display_sockaddr(&local));
        }
    }
    match (tcp, udp) {
        (Some(tcp), Some(udp)) => {
            let (behaviour2, opts2, stats2) = (behaviour.clone(), opts.clone(), Arc::clone(&stats));
            thread::Builder::new()
                .name("udp".into())
                .spawn(move || {
                    if let Err(err) = inetd::serve_udp(udp, &behaviour2, &opts2, &stats2) {
                        crate::eprintln_safe!("nk: {err:#}");
                        signals::exit(Status::Failure);
                    }
                })
                .context("start the UDP thread")?;
            inetd::serve_tcp(tcp, &behaviour, &opts, &stats)
        }
        (Some(tcp), None) => inetd::serve_tcp(tcp, &behaviour, &opts, &stats),
        (None, Some(udp)) => inetd::serve_udp(udp, &behaviour, &opts, &stats),
        (None, None) => Err(usage("nothing to serve")),
    }
}

/// Binds the TCP listener and the UDP socket on one port. With port 0 the kernel picks the
/// TCP port, and UDP takes the same number; if that UDP port is taken, another pair is tried.
fn bind_both(
    spec: &ListenSpec,
    common: &ServiceArgs,
    want_tcp: bool,
    want_udp: bool,
) -> Result<(Option<socket2::Socket>, Option<socket2::Socket>)> {
    let family = common.family.family();
    let opts = SockOpts::default();
    const ATTEMPTS: usize = 20;
    for attempt in 1..=ATTEMPTS {
        let tcp = if want_tcp {
            Some(bind_tcp(spec, family, &opts)?)
        } else {
            None
        };
        let port = match &tcp {
            Some(t) => t
                .local_addr()
                .context("getsockname")?
                .as_socket()
                .map_or(spec.port, |a| a.port()),
            None => spec.port,
        };
        if !want_udp {
            return Ok((tcp, None));
        }
        let udp_spec = ListenSpec {
            host: spec.host.clone(),
            port,
        };
        match bind_udp(&udp_spec, family, &opts) {
            Ok(udp) => return Ok((tcp, Some(udp))),
            Err(err) if spec.port == 0 && tcp.is_some() && attempt < ATTEMPTS => {
                crate::debug!("udp port {port} is taken ({err:#}); trying another pair");
            }
            Err(err) => return Err(err),
        }
    }
    Err(anyhow::anyhow!(
        "no port free for both tcp and udp after {ATTEMPTS} tries"
    ))
}
