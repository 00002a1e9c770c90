//! Who a UDP service may answer, and how often: the rules that keep `nk echo/chargen/daytime/
//! qotd/time -l`
//! from becoming a reflector or one end of a packet loop.
//!
//! UDP sources are not authenticated, so every reply may be aimed at a victim chosen by
//! whoever forged the request. Three defences:
//! - no answer to requests sent to a broadcast or multicast address (where the socket
//!   reports destinations), nor to sources that cannot be a real client: the ports of services that answer any
//!   datagram (0, echo 7, discard 9, daytime 13, qotd 17, chargen 19, time 37) and our own
//!   port (two echo servers would bounce one datagram between them forever), and broadcast,
//!   multicast and unspecified addresses;
//! - a token bucket per source (an IPv4 address; an IPv6 /64, what one host owns), so one
//!   forged source draws at most `rate` replies a second after a `burst`;
//! - a reply is never larger than the service needs (echo returns the request, no more;
//!   chargen's random 0-512 characters are cut to the request's length; time is 4 bytes;
//!   discard never answers): the callers' business (`net::inetd`), stated here because it
//!   completes the argument.
//!
//! The bucket table is capped: buckets that have refilled carry no information and are
//! dropped when the table is full; if it is still full, a new source waits.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use crate::exit::usage;

/// Source ports of services that answer whatever arrives: answering them starts a loop.
pub const LOOP_PORTS: [u16; 7] = [0, 7, 9, 13, 17, 19, 37];

/// Most sources tracked at once.
const MAX_SOURCES: usize = 65_536;

/// `--rate N/s` and `--burst N`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: replies a quiet source may draw at once.
    pub burst: f64,
}

/// Parses `--rate`: `N/s`, `N/m`, `N` (per second), or `off`; `None` means no limit.
pub fn parse_rate(text: &str) -> Result<Option<f64>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (number, per) = match text.split_once('/') {
        Some((n, unit)) => {
            let seconds = match unit {
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                _ => {
                    return Err(format!(
                        "unknown unit \"/{unit}\" (use N/s, N/m, N/h or off)"
                    ))
                }
            };
            (n, seconds)
        }
        None => (text, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a rate (use N/s, N/m, N/h or off)"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!(
            "\"{text}\": the rate must be above 0 (use off for no limit)"
        ));
    }
    Ok(Some(value / per))
}

/// What to do with one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it.
    Answer,
    /// Answer it: the source is back under its rate after `dropped` datagrams went
    /// unanswered (the end of a [`Verdict::Limited`] episode, said with its count).
    Resumed {
        /// How many datagrams of this source were dropped over the rate just before.
        dropped: u64,
    },
    /// Never answer this source; the reason is for `-v`.
    Refused(String),
    /// The source is over its rate; `first` on the first drop of an episode, so the log
    /// says it once instead of once per datagram.
    Limited {
        /// Whether this is the first datagram dropped since the source was last answered.
        first: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Datagrams dropped over the rate since this source was last answered.
    dropped: u64,
}

/// The rules for one UDP service socket.
#[derive(Debug)]
pub struct Guard {
    own_port: u16,
    broadcasts: Vec<Ipv4Addr>,
    limit: Option<RateLimit>,
    buckets: HashMap<IpAddr, Bucket>,
}

impl Guard {
    /// A guard for a socket bound to `own_port`, with interface broadcast addresses known.
    pub fn new(own_port: u16, limit: Option<RateLimit>) -> Guard {
        Guard {
            own_port,
            broadcasts: interface_broadcasts(),
            limit,
            buckets: HashMap::new(),
        }
    }

    /// Decides for a datagram from `source` sent to `destination` (when the socket reports
    /// it) arriving at `now`.
    pub fn check(
        &mut self,
        source: SocketAddr,
        destination: Option<IpAddr>,
        now: Instant,
    ) -> Verdict {
        if let Some(reason) = self.refusal(source) {
            return Verdict::Refused(reason);
        }
        if let Some(reason) = destination.and_then(|d| self.group_destination(d)) {
            return Verdict::Refused(reason);
        }
        let Some(limit) = self.limit else {
            return Verdict::Answer;
        };
        let key = bucket_key(source.ip());
        if !self.buckets.contains_key(&key) && self.buckets.len() >= MAX_SOURCES {
            self.buckets
                .retain(|_, b| refill(b.tokens, b.last, now, limit) < limit.burst);
            if self.buckets.len() >= MAX_SOURCES {
                return Verdict::Limited { first: false };
            }
        }
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: limit.burst,
            last: now,
            dropped: 0,
        });
        bucket.tokens = refill(bucket.tokens, bucket.last, now, limit);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            match std::mem::take(&mut bucket.dropped) {
                0 => Verdict::Answer,
                dropped => Verdict::Resumed { dropped },
            }
        } else {
            bucket.dropped += 1;
            Verdict::Limited {
                first: bucket.dropped == 1,
            }
        }
    }

    fn refusal(&self, source: SocketAddr) -> Option<String> {
        let port = source.port();
        if LOOP_PORTS.contains(&port) {
            return Some(format!(
                "source port {port} belongs to a service that answers every datagram (a loop)"
            ));
        }
        if port == self.own_port {
            return Some(format!(
                "source port {port} is this service's own port (a loop)"
            ));
        }
        let ip = source.ip().to_canonical();
        if ip.is_unspecified() {
            return Some("unspecified source address".into());
        }
        if ip.is_multicast() {
            return Some("multicast source address".into());
        }
        if let IpAddr::V4(v4) = ip {
            if v4.is_broadcast() || self.broadcasts.contains(&v4) {
                return Some("broadcast source address".into());
            }
        }
        None
    }
}

impl Guard {
    /// A request sent to a broadcast or multicast address would draw an answer from every
    /// server that heard it (a smurf amplifier): only unicast requests are answered.
    fn group_destination(&self, destination: IpAddr) -> Option<String> {
        match destination.to_canonical() {
            IpAddr::V4(v4) if v4.is_broadcast() || self.broadcasts.contains(&v4) => {
                Some(format!("sent to the broadcast address {v4}"))
            }
            ip if ip.is_multicast() => Some(format!("sent to the multicast group {ip}")),
            _ => None,
        }
    }
}

fn refill(tokens: f64, last: Instant, now: Instant, limit: RateLimit) -> f64 {
    let elapsed = now.saturating_duration_since(last).as_secs_f64();
    (tokens + elapsed * limit.per_second).min(limit.burst)
}

/// The bucket a source draws from: its IPv4 address, or its IPv6 /64.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

/// The broadcast addresses of this host's interfaces (a forged source there would make us
/// answer a whole subnet).
fn interface_broadcasts() -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return found;
    }
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, not yet freed.
        let node = unsafe { &*entry };
        let broadcast = node.ifa_ifu;
        if node.ifa_flags & libc::IFF_BROADCAST as u32 != 0 && !broadcast.is_null() {
            // SAFETY: a non-null ifa_ifu with IFF_BROADCAST points to a sockaddr.
            let family = unsafe { (*broadcast).sa_family };
            if i32::from(family) == libc::AF_INET {
                // SAFETY: an AF_INET sockaddr is a sockaddr_in.
                let sin = unsafe { &*(broadcast as *const libc::sockaddr_in) };
                found.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
        }
        entry = node.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// Checks `--burst` against the rate: a bucket must hold at least one reply.
pub fn rate_limit(
    per_second: Option<f64>,
    burst: Option<u32>,
) -> anyhow::Result<Option<RateLimit>> {
    match (per_second, burst) {
        (None, Some(_)) => Err(usage("--burst needs a rate (--rate off has no bucket)")),
        (None, None) => Ok(None),
        (Some(per_second), burst) => Ok(Some(RateLimit {
            per_second,
            burst: burst.map_or(per_second.ceil().max(1.0), f64::from),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn src(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    impl Guard {
        fn check_at(&mut self, source: SocketAddr, now: Instant) -> Verdict {
            self.check(source, None, now)
        }
    }

    #[test]
    fn requests_to_groups_are_refused() {
        let mut g = guard(10.0, 10.0);
        let now = Instant::now();
        let from = src("10.0.0.1:4000");
        for dest in ["255.255.255.255", "192.168.1.255", "224.0.0.1", "ff02::1"] {
            let verdict = g.check(from, Some(dest.parse().unwrap()), now);
            assert!(matches!(verdict, Verdict::Refused(_)), "{dest}");
        }
        assert_eq!(
            g.check(from, Some("10.0.0.2".parse().unwrap()), now),
            Verdict::Answer
        );
    }

    fn guard(rate: f64, burst: f64) -> Guard {
        Guard {
            own_port: 7777,
            broadcasts: vec![Ipv4Addr::new(192, 168, 1, 255)],
            limit: Some(RateLimit {
                per_second: rate,
                burst,
            }),
            buckets: HashMap::new(),
        }
    }

    #[test]
    fn loop_ports_and_odd_sources_are_refused() {
        let mut g = guard(10.0, 10.0);
        let now = Instant::now();
        for port in LOOP_PORTS.iter().chain(&[7777]) {
            let verdict = g.check_at(SocketAddr::new("127.0.0.1".parse().unwrap(), *port), now);
            assert!(matches!(verdict, Verdict::Refused(_)), "port {port}");
        }
        for bad in [
            "0.0.0.0:5000",
            "255.255.255.255:5000",
            "192.168.1.255:5000",
            "224.0.0.1:5000",
            "[ff02::1]:5000",
            "[::]:5000",
            "[::ffff:224.0.0.1]:5000",
        ] {
            assert!(
                matches!(g.check_at(src(bad), now), Verdict::Refused(_)),
                "{bad}"
            );
        }
        assert_eq!(g.check_at(src("127.0.0.1:5000"), now), Verdict::Answer);
    }

    #[test]
    fn a_burst_gets_burst_answers_then_the_rate() {
        let mut g = guard(100.0, 20.0);
        let start = Instant::now();
        let answered = (0..1000)
            .filter(|_| g.check_at(src("10.0.0.1:4000"), start) == Verdict::Answer)
            .count();
        assert_eq!(answered, 20);
        assert_eq!(
            g.check_at(src("10.0.0.1:4000"), start),
            Verdict::Limited { first: false }
        );
        // Another source has its own bucket.
        assert_eq!(g.check_at(src("10.0.0.2:4000"), start), Verdict::Answer);
        // 100 ms later, 10 more tokens.
        let later = start + Duration::from_millis(100);
        let refilled = (0..1000)
            .filter(|_| {
                matches!(
                    g.check_at(src("10.0.0.1:4000"), later),
                    Verdict::Answer | Verdict::Resumed { .. }
                )
            })
            .count();
        assert_eq!(refilled, 10);
    }

    #[test]
    fn the_first_drop_of_an_episode_is_flagged_once() {
        let mut g = guard(1.0, 1.0);
        let now = Instant::now();
        assert_eq!(g.check_at(src("10.0.0.1:4000"), now), Verdict::Answer);
        assert_eq!(
            g.check_at(src("10.0.0.1:4000"), now),
            Verdict::Limited { first: true }
        );
        assert_eq!(
            g.check_at(src("10.0.0.1:4000"), now),
            Verdict::Limited { first: false }
        );
        // Back under the rate: answered, with the count of the episode's drops, once.
        let later = now + Duration::from_secs(1);
        assert_eq!(
            g.check_at(src("10.0.0.1:4000"), later),
            Verdict::Resumed { dropped: 2 }
        );
        let later = later + Duration::from_secs(1);
        assert_eq!(g.check_at(src("10.0.0.1:4000"), later), Verdict::Answer);
    }

    #[test]
    fn ipv6_sources_share_a_bucket_per_64() {
        let mut g = guard(1.0, 1.0);
        let now = Instant::now();
        assert_eq!(g.check_at(src("[2001:db8::1]:4000"), now), Verdict::Answer);
        assert!(matches!(
            g.check_at(src("[2001:db8::2]:4000"), now),
            Verdict::Limited { .. }
        ));
        assert_eq!(
            g.check_at(src("[2001:db8:0:1::1]:4000"), now),
            Verdict::Answer
        );
    }

    #[test]
    fn the_table_is_capped_and_full_buckets_are_forgotten() {
        let mut g = guard(1.0, 2.0);
        let now = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            g.check_at(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 4000),
                now,
            );
        }
        assert_eq!(g.buckets.len(), MAX_SOURCES);
        assert_eq!(
            g.check_at(src("11.0.0.1:4000"), now),
            Verdict::Limited { first: false }
        );
        let later = now + Duration::from_secs(5);
        assert_eq!(g.check_at(src("11.0.0.1:4000"), later), Verdict::Answer);
        assert!(g.buckets.len() < 10);
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("50/s"), Ok(Some(50.0)));
        assert_eq!(parse_rate("120/m"), Ok(Some(2.0)));
        assert_eq!(parse_rate("7"), Ok(Some(7.0)));
        assert_eq!(parse_rate("off"), Ok(None));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("abc").is_err());
        assert!(parse_rate("5/d").is_err());
        let limit = rate_limit(Some(0.5), None).unwrap().unwrap();
        assert_eq!(limit.burst, 1.0);
    }
}
