//! iputils ping's per-probe and socket options for `nk ping` (ICMP): `-I -B -e -Q -m -M -r`
//! shape the socket, `-p` the payload, `-l -A` when requests leave, `-a -O -U` what is
//! printed and how replies are timed.
//!
//! They live apart from the run loop so the user-text parsers (`-p`, `-M`, `-I`; `-Q` is the
//! shared [`crate::cli::parse_tos`]) can be fuzzed and unit-tested alone, and so the socket
//! options reach [`crate::net::icmp`] as one value. Meanings and messages are iputils'
//! (20221126): a pattern is up to 16 bytes of hex digits repeated over the payload from its
//! first byte (the send time then covers the first 16), and its `PATTERN: 0x..` line comes
//! before the header; `-M probe` (IP_PMTUDISC_PROBE), which that release refuses and later
//! ones take, is taken. Where nk is stricter it is nk's rule: what iputils silently drops (a
//! pattern beyond 16 bytes) is a usage error before any traffic.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;

use crate::cli::parse_tos;
use crate::net::icmp::SocketTuning;

/// The most bytes a `-p` pattern holds (iputils reads 16 with sscanf).
pub const MAX_PATTERN: usize = 16;
/// `-l` beyond this needs root (iputils' rule: a user's preload is at most 3).
pub const MAX_USER_PRELOAD: u32 = 3;

/// iputils ping's socket and per-probe options (ICMP only).
#[derive(Debug, Clone, Default, Args)]
pub struct ProbeArgs {
    /// Send from interface IFACE (SO_BINDTODEVICE) or from source address ADDR (bind); the
    /// header then names the source: `PING host (addr) from SRC IFACE: ...`.
    #[arg(short = 'I', value_name = "IFACE|ADDR", value_parser = parse_interface,
          conflicts_with_all = ["tcp", "udp"])]
    pub interface: Option<Interface>,

    /// Path MTU discovery: do (set DF, never fragment), want (DF, fragment when the path MTU
    /// says so), dont (no DF), probe (DF, ignore the path MTU). A router's `Frag needed and
    /// DF set (mtu = N)` is reported per request, a local `message too long` on stderr.
    #[arg(short = 'M', value_name = "HINT", value_parser = parse_pmtu,
          conflicts_with_all = ["tcp", "udp"])]
    pub pmtu: Option<Pmtu>,

    /// Fill the payload with up to 16 bytes of hex digits, repeated (`-p ff`, `-p 0a1b2c`);
    /// prints `PATTERN: 0x..` first. The send time still covers the first 16 bytes.
    #[arg(short = 'p', value_name = "PATTERN", value_parser = parse_pattern,
          conflicts_with_all = ["tcp", "udp"])]
    pub pattern: Option<Pattern>,

    /// Type of service / traffic class (IP_TOS, IPV6_TCLASS): 0-255, 0xNN, or a DSCP name
    /// (af11-af43, cs0-cs7, ef).
    #[arg(short = 'Q', value_name = "TOS", value_parser = parse_tos,
          conflicts_with_all = ["tcp", "udp"])]
    pub tos: Option<u32>,

    /// Audible: a BEL (\a) on stdout with each reply (not with --json, whose lines it would
    /// break).
    #[arg(short = 'a', conflicts_with_all = ["tcp", "udp", "json"])]
    pub audible: bool,

    /// Send PRELOAD requests at once before the normal interval (above 3 only for root); a
    /// flood keeps up to PRELOAD in flight.
    #[arg(short = 'l', value_name = "PRELOAD",
          value_parser = clap::value_parser!(u32).range(1..=65_536),
          conflicts_with_all = ["tcp", "udp"])]
    pub preload: Option<u32>,

    /// Adaptive: the interval follows the round trip (its moving average), so about one
    /// request is in flight (at least 2ms apart for a user); the summary adds ipg/ewma.
    #[arg(short = 'A', conflicts_with_all = ["tcp", "udp"])]
    pub adaptive: bool,

    /// Report outstanding replies: `no answer yet for icmp_seq=N` before the next request
    /// when the last one is unanswered.
    #[arg(short = 'O', conflicts_with_all = ["tcp", "udp"])]
    pub outstanding: bool,

    /// Mark the requests (SO_MARK) for policy routing and firewall rules.
    #[arg(short = 'm', value_name = "MARK", value_parser = parse_mark,
          conflicts_with_all = ["tcp", "udp"])]
    pub mark: Option<u32>,

    /// Bypass the routing table (SO_DONTROUTE): send only to hosts on a directly attached
    /// network.
    #[arg(short = 'r', conflicts_with_all = ["tcp", "udp"])]
    pub dont_route: bool,

    /// User-to-user latency: time replies when nk reads them, not when the kernel received
    /// them (the default, from SO_TIMESTAMPNS).
    #[arg(short = 'U', conflicts_with_all = ["tcp", "udp"])]
    pub user_latency: bool,

    /// Keep the source address: bind to the one chosen at the start (the header shows it).
    #[arg(short = 'B', conflicts_with_all = ["tcp", "udp"])]
    pub strict_source: bool,

    /// The ICMP identifier of the requests (0-65535; a datagram socket binds it as its port).
    #[arg(short = 'e', value_name = "ID", value_parser = clap::value_parser!(u16),
          conflicts_with_all = ["tcp", "udp"])]
    pub identifier: Option<u16>,
}

/// `-I`: an interface, or a source address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interface {
    /// SO_BINDTODEVICE to this interface.
    Device(String),
    /// bind(2) to this address.
    Address(IpAddr),
}

/// `-M`'s path MTU discovery modes (IP_MTU_DISCOVER / IPV6_MTU_DISCOVER values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pmtu {
    /// IP_PMTUDISC_DONT: no DF, fragment locally.
    Dont,
    /// IP_PMTUDISC_WANT: DF unless the path MTU is exceeded.
    Want,
    /// IP_PMTUDISC_DO: always DF, never fragment.
    Do,
    /// IP_PMTUDISC_PROBE: DF, the path MTU ignored.
    Probe,
}

impl Pmtu {
    /// The value of IP_MTU_DISCOVER (the same numbers for IPV6_MTU_DISCOVER).
    pub fn sockopt_value(self) -> libc::c_int {
        match self {
            Pmtu::Dont => libc::IP_PMTUDISC_DONT,
            Pmtu::Want => libc::IP_PMTUDISC_WANT,
            Pmtu::Do => libc::IP_PMTUDISC_DO,
            Pmtu::Probe => libc::IP_PMTUDISC_PROBE,
        }
    }
}

/// `-p`'s bytes (1 to 16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(pub Vec<u8>);

/// `-M do|want|dont|probe`, with iputils' message for anything else.
pub fn parse_pmtu(text: &str) -> Result<Pmtu, String> {
    match text {
        "do" => Ok(Pmtu::Do),
        "want" => Ok(Pmtu::Want),
        "dont" => Ok(Pmtu::Dont),
        "probe" => Ok(Pmtu::Probe),
        _ => Err(format!(
            "invalid -M argument: {}: expected do, want, dont or probe",
            text.escape_debug()
        )),
    }
}

/// `-p`: hex digits, read two at a time as iputils' `%2x` does (an odd last digit is a byte of
/// its own: `abc` is 0xab 0x0c), at most 16 bytes. Anything but hex digits, an empty pattern
/// or more than 32 digits is refused.
pub fn parse_pattern(text: &str) -> Result<Pattern, String> {
    if let Some(bad) = text.find(|c: char| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "patterns must be specified as hex digits: {}",
            text[bad..].escape_debug()
        ));
    }
    if text.is_empty() {
        return Err("an empty pattern: give 1 to 16 bytes as hex digits (-p ff)".into());
    }
    if text.len() > 2 * MAX_PATTERN {
        return Err(format!(
            "a pattern holds at most {MAX_PATTERN} bytes ({} hex digits), not {} digits",
            2 * MAX_PATTERN,
            text.len()
        ));
    }
    let bytes = text
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            // Only ASCII hex digits reach here, so the pair is valid UTF-8 and hex.
            u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("0"), 16).unwrap_or(0)
        })
        .collect();
    Ok(Pattern(bytes))
}

/// iputils' `PATTERN: 0x...` line.
pub fn pattern_line(pattern: &Pattern) -> String {
    let hex: String = pattern.0.iter().map(|b| format!("{b:02x}")).collect();
    format!("PATTERN: 0x{hex}\n")
}

/// `-m`: a mark as a number (decimal, or 0x hex as iptables writes them).
pub fn parse_mark(text: &str) -> Result<u32, String> {
    let number = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse::<u32>(),
    };
    number.map_err(|_| "expected a number 0-4294967295 (or 0xNN)".into())
}

/// `-I`: an IP address (a source to bind) or else an interface name (at most 15 bytes, no
/// `/`, no whitespace: what the kernel takes as a name).
pub fn parse_interface(text: &str) -> Result<Interface, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Interface::Address(ip));
    }
    let valid = !text.is_empty()
        && text.len() < libc::IF_NAMESIZE
        && !text
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if !valid {
        return Err(format!(
            "\"{}\" is neither an address nor an interface name (at most {} bytes, no '/', ':' \
             or spaces)",
            text.escape_debug(),
            libc::IF_NAMESIZE - 1
        ));
    }
    Ok(Interface::Device(text.to_string()))
}

/// Fills an echo payload of `size` bytes as iputils does: the pattern repeated from the first
/// byte (the send time is written over the first 16 later), or by default each byte equal to
/// its offset.
pub fn payload_fill(pattern: Option<&Pattern>, size: usize) -> Vec<u8> {
    match pattern {
        Some(Pattern(bytes)) if !bytes.is_empty() => {
            bytes.iter().copied().cycle().take(size).collect()
        }
        _ => (0..size).map(|offset| offset as u8).collect(),
    }
}

impl ProbeArgs {
    /// The socket options these flags ask for (the source of `-B` is found later, from the
    /// route, and set by the caller).
    pub fn tuning(&self) -> SocketTuning {
        let (device, source) = match &self.interface {
            Some(Interface::Device(name)) => (Some(name.clone()), None),
            Some(Interface::Address(ip)) => (None, Some(*ip)),
            None => (None, None),
        };
        SocketTuning {
            device,
            source,
            port: self.identifier,
            tos: self.tos.map(|tos| tos as u8),
            mark: self.mark,
            pmtu: self.pmtu.map(Pmtu::sockopt_value),
            dont_route: self.dont_route,
            kernel_timestamps: !self.user_latency,
        }
    }

    /// The first of these flags that fping's mode (several targets) does not take, as typed:
    /// they shape one request stream (-l, -A, -O, -a, -p, -M), pin one source (-I ADDR,
    /// -B) or one identifier (-e), or time replies by the kernel's stamp (-U's default is
    /// moot there). -I IFACE, -Q, -m and -r apply to the whole sweep ([`Self::sweep_tuning`]).
    pub fn not_for_many_targets(&self) -> Option<&'static str> {
        [
            (
                matches!(self.interface, Some(Interface::Address(_))),
                "-I ADDR",
            ),
            (self.pmtu.is_some(), "-M"),
            (self.pattern.is_some(), "-p"),
            (self.audible, "-a"),
            (self.preload.is_some(), "-l"),
            (self.adaptive, "-A"),
            (self.outstanding, "-O"),
            (self.user_latency, "-U"),
            (self.strict_source, "-B"),
            (self.identifier.is_some(), "-e"),
        ]
        .into_iter()
        .find_map(|(set, flag)| set.then_some(flag))
    }

    /// The socket options fping's mode applies to its sockets (one per family): -I IFACE
    /// (fping -I), -Q (fping -O), -m (fping -k), -r.
    pub fn sweep_tuning(&self) -> SocketTuning {
        SocketTuning {
            device: match &self.interface {
                Some(Interface::Device(name)) => Some(name.clone()),
                _ => None,
            },
            tos: self.tos.map(|tos| tos as u8),
            mark: self.mark,
            dont_route: self.dont_route,
            ..SocketTuning::default()
        }
    }

    /// What the run loop needs of these flags.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            pattern: self.pattern.clone(),
            audible: self.audible,
            preload: self.preload.unwrap_or(1),
            adaptive: self.adaptive,
            outstanding: self.outstanding,
            user_latency: self.user_latency,
            from: None,
            min_interval: Duration::ZERO,
        }
    }
}

/// The per-request options the ping loop applies.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `-p`.
    pub pattern: Option<Pattern>,
    /// `-a`.
    pub audible: bool,
    /// `-l` (1 without it).
    pub preload: u32,
    /// `-A`.
    pub adaptive: bool,
    /// `-O`.
    pub outstanding: bool,
    /// `-U`: time replies when read, not by the kernel's receive timestamp.
    pub user_latency: bool,
    /// `-I`/`-B`: the header's `from SRC IFACE: ` part (iputils prints it with either).
    pub from: Option<String>,
    /// The shortest interval `-A` may come down to (2ms for a user, 0 for root).
    pub min_interval: Duration,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        ProbeArgs::default().run_options()
    }
}

/// `-A`'s next interval from the moving average of round trips (iputils' `ewma8`, eight
/// times the average in µs): the average rounded to a millisecond, at least `floor`.
pub fn adaptive_interval(ewma8: i64, floor: Duration) -> Duration {
    let millis = (ewma8.max(0) / 8 + 500) / 1000;
    Duration::from_millis(millis as u64).max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_read_as_iputils_reads_them() {
        assert_eq!(parse_pattern("ff"), Ok(Pattern(vec![0xff])));
        assert_eq!(parse_pattern("abc"), Ok(Pattern(vec![0xab, 0x0c])));
        assert_eq!(parse_pattern("0A1b"), Ok(Pattern(vec![0x0a, 0x1b])));
        let full = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_pattern(full).unwrap().0.len(), 16);
        assert!(parse_pattern(&format!("{full}0")).is_err());
        assert!(parse_pattern("").is_err());
        let bad = parse_pattern("12xyz").unwrap_err();
        assert!(
            bad.starts_with("patterns must be specified as hex digits: xyz"),
            "{bad}"
        );
        assert!(parse_pattern("é").is_err());
        assert_eq!(
            pattern_line(&parse_pattern("abc").unwrap()),
            "PATTERN: 0xab0c\n"
        );
    }

    #[test]
    fn payload_repeats_the_pattern_from_the_first_byte() {
        let pattern = Pattern(vec![1, 2, 3]);
        assert_eq!(payload_fill(Some(&pattern), 7), [1, 2, 3, 1, 2, 3, 1]);
        assert_eq!(payload_fill(None, 4), [0, 1, 2, 3]);
        assert_eq!(payload_fill(Some(&pattern), 0), [] as [u8; 0]);
    }

    #[test]
    fn pmtu_interface_and_mark_parse() {
        assert_eq!(parse_pmtu("do"), Ok(Pmtu::Do));
        assert_eq!(parse_pmtu("probe").map(Pmtu::sockopt_value), Ok(3));
        assert!(parse_pmtu("DO")
            .unwrap_err()
            .starts_with("invalid -M argument: DO"));
        assert_eq!(
            parse_interface("10.0.0.1"),
            Ok(Interface::Address("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            parse_interface("eth0"),
            Ok(Interface::Device("eth0".into()))
        );
        assert!(parse_interface("a-name-too-long-for-linux").is_err());
        assert!(parse_interface("").is_err());
        assert!(parse_interface("fe80::1%eth0").is_err());
        assert_eq!(parse_mark("42"), Ok(42));
        assert_eq!(parse_mark("0x2a"), Ok(42));
        assert!(parse_mark("-1").is_err());
    }

    #[test]
    fn adaptive_interval_rounds_the_average() {
        let floor = Duration::from_millis(2);
        assert_eq!(adaptive_interval(8 * 20, Duration::ZERO), Duration::ZERO);
        assert_eq!(adaptive_interval(8 * 20, floor), floor);
        assert_eq!(
            adaptive_interval(8 * 1_499, floor),
            Duration::from_millis(2)
        );
        assert_eq!(
            adaptive_interval(8 * 30_500, floor),
            Duration::from_millis(31)
        );
    }
}
