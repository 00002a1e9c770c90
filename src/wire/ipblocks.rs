//! Sets of addresses as CIDR blocks, for `nk mask`: the fewest blocks that cover a range
//! exactly (ipcalc `-r`, ipcalc-ng `-d`, Python's `summarize_address_range`), the fewest that
//! cover a union of networks and ranges (aggregation, Python's `collapse_addresses`), VLSM
//! allocation by host count (Debian ipcalc `-s`), and random private networks (ipcalc-ng `-r`).
//! Pure: no I/O; the random bits come from the caller.
//!
//! Everything works on inclusive intervals of 128-bit integers with the family beside them,
//! so the whole IPv6 space (2^128 addresses, one more than a u128 holds) needs no wider
//! number: an interval's last address always fits, its size may not, and is only ever shown.

use std::net::IpAddr;

use crate::wire::ipnet::{from_int, mask_int, parse_addr, to_int, Network, ParseError};

/// 2^128 in decimal: the size of the IPv6 space, one more than u128::MAX.
const TWO_POW_128: &str = "340282366920938463463374607431768211456";

/// The most separate ranges `--merge` holds at once (after merging what touches): about 100
/// MiB. Aggregating a full routing table (about a million prefixes) stays well under it.
pub const MAX_RANGES: usize = 1 << 21;

/// An inclusive run of addresses of one family. Ordered IPv4 first, then by first address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    /// IPv6 (true) or IPv4.
    pub v6: bool,
    /// The first address, as an integer.
    pub first: u128,
    /// The last address, as an integer (inclusive).
    pub last: u128,
}

fn width(v6: bool) -> u32 {
    if v6 {
        128
    } else {
        32
    }
}

/// `bits` ones at the low end (all of them for 128).
fn low_ones(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// The family's name, for errors.
fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Splits `START-END` written as one word (IPv6 addresses hold no `-`, so the first one is the
/// separator); None when there is no `-`, or a `/` says it is a network (`10.0.0.0/-1` is a
/// bad prefix, not a range).
pub fn split_range_word(text: &str) -> Option<(&str, &str)> {
    if text.contains('/') {
        return None;
    }
    text.split_once('-')
        .map(|(start, end)| (start.trim(), end.trim()))
}

impl Interval {
    /// The addresses from `first` to `last`, both included.
    pub fn new(first: IpAddr, last: IpAddr) -> Result<Interval, ParseError> {
        if first.is_ipv4() != last.is_ipv4() {
            return Err(format!(
                "invalid range {first} - {last}: the start is {} and the end {}",
                family(first),
                family(last)
            ));
        }
        let (start, end) = (to_int(first), to_int(last));
        if start > end {
            return Err(format!(
                "invalid range {first} - {last}: the start is after the end"
            ));
        }
        Ok(Interval {
            v6: first.is_ipv6(),
            first: start,
            last: end,
        })
    }

    /// Parses the two ends of a range (strict addresses, as `nk mask` takes them).
    pub fn parse_range(start: &str, end: &str) -> Result<Interval, ParseError> {
        if start.is_empty() || end.is_empty() {
            return Err(format!(
                "invalid range \"{start}-{end}\": expected START-END or START - END"
            ));
        }
        Interval::new(parse_addr(start)?, parse_addr(end)?)
    }

    /// One item of a list to aggregate: a range `START-END`, a network `ADDR/MASK` (its host
    /// bits ignored: `10.0.0.5/24` is 10.0.0.0/24, as ipcalc reads it), or a lone address (that
    /// address alone: no classful default, which is only a display aid).
    pub fn parse_item(text: &str) -> Result<Interval, ParseError> {
        if let Some((start, end)) = split_range_word(text) {
            return Interval::parse_range(start, end);
        }
        let net = Network::parse(text, None)?;
        if net.classful {
            let at = to_int(net.addr);
            return Ok(Interval {
                v6: false,
                first: at,
                last: at,
            });
        }
        Ok(Interval::of(&net))
    }

    /// Every address of a network, from its network address to its last.
    pub fn of(net: &Network) -> Interval {
        Interval {
            v6: net.addr.is_ipv6(),
            first: to_int(net.network()),
            last: to_int(net.last_address()),
        }
    }

    /// The first address.
    pub fn first_addr(&self) -> IpAddr {
        from_int(self.first, !self.v6)
    }

    /// The last address.
    pub fn last_addr(&self) -> IpAddr {
        from_int(self.last, !self.v6)
    }

    /// Whether every address of `other` is in this interval (never across families).
    pub fn contains(&self, other: &Interval) -> bool {
        self.v6 == other.v6 && self.first <= other.first && other.last <= self.last
    }

    /// How many addresses, exactly, in decimal.
    pub fn size_text(&self) -> String {
        match (self.last - self.first).checked_add(1) {
            Some(size) => size.to_string(),
            None => TWO_POW_128.to_string(),
        }
    }

    /// The fewest CIDR blocks that cover exactly this interval, in address order: at each
    /// start, the largest block aligned there that does not pass the end. At most 2 x width.
    pub fn blocks(&self) -> Vec<Network> {
        let width = width(self.v6);
        let mut out = Vec::new();
        let mut start = self.first;
        loop {
            let aligned = start.trailing_zeros().min(width);
            // floor(log2(addresses left)), where addresses left may be 2^128.
            let span = self.last - start;
            let fits = match span.checked_add(1) {
                Some(left) => 127 - left.leading_zeros(),
                None => 128,
            };
            let host_bits = aligned.min(fits);
            out.push(Network {
                addr: from_int(start, !self.v6),
                prefix: (width - host_bits) as u8,
                classful: false,
            });
            let block_last = start + low_ones(host_bits);
            if block_last >= self.last {
                return out;
            }
            start = block_last + 1;
        }
    }
}

/// Aggregation: collects intervals and gives back the fewest that cover their union, with
/// overlapping and touching ones merged (each of those then as its [`Interval::blocks`]).
/// Memory is bounded: whenever the list has doubled since the last merge it is merged again,
/// and more than [`MAX_RANGES`] separate ranges is an error.
#[derive(Debug, Default)]
pub struct Aggregator {
    ranges: Vec<Interval>,
    merged_len: usize,
}

impl Aggregator {
    /// An empty set.
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    /// Adds one interval.
    pub fn add(&mut self, interval: Interval) -> Result<(), ParseError> {
        self.ranges.push(interval);
        if self.ranges.len() >= (2 * self.merged_len).max(4096) {
            self.merge();
            if self.ranges.len() > MAX_RANGES {
                return Err(format!(
                    "more than {MAX_RANGES} separate ranges: too many to aggregate in memory"
                ));
            }
        }
        Ok(())
    }

    fn merge(&mut self) {
        self.ranges.sort_unstable();
        let mut kept = 0usize;
        for i in 0..self.ranges.len() {
            let next = self.ranges[i];
            if kept > 0 {
                let last = &mut self.ranges[kept - 1];
                // Touching counts: 10.0.0.0/25 and 10.0.0.128/25 are one /24.
                let touches = last.last == u128::MAX || next.first <= last.last + 1;
                if last.v6 == next.v6 && touches {
                    last.last = last.last.max(next.last);
                    continue;
                }
            }
            self.ranges[kept] = next;
            kept += 1;
        }
        self.ranges.truncate(kept);
        self.merged_len = kept;
    }

    /// The union as disjoint, non-touching intervals: IPv4 first, each family in address order.
    pub fn finish(mut self) -> Vec<Interval> {
        self.merge();
        self.ranges
    }
}

/// The longest prefix whose network holds `hosts` usable hosts, as nk counts them: in IPv4 a
/// /32 holds 1, a /31 2 (RFC 3021), a shorter prefix every address but the network and
/// broadcast ones; in IPv6 every address. None for 0 hosts or more than the family holds.
pub fn prefix_for_hosts(hosts: u128, v6: bool) -> Option<u8> {
    let ceil_log2 = |n: u128| match n {
        0 | 1 => 0,
        n => 128 - (n - 1).leading_zeros(),
    };
    match (hosts, v6) {
        (0, _) => None,
        (1, false) => Some(32),
        (2, false) => Some(31),
        (n, false) if n <= (1u128 << 32) - 2 => Some((32 - ceil_log2(n + 2)) as u8),
        (_, false) => None,
        (n, true) => Some((128 - ceil_log2(n)) as u8),
    }
}

/// One subnet of a VLSM plan: the hosts asked for and the subnet given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// The host count requested.
    pub hosts: u128,
    /// The smallest subnet that holds them.
    pub subnet: Network,
}

/// A VLSM plan: the subnets in the order asked, the addresses they take, what is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One per request, in the order given.
    pub allocations: Vec<Allocation>,
    /// The addresses the subnets take together, in decimal.
    pub needed: String,
    /// The space left, as the fewest blocks, in address order.
    pub unused: Vec<Network>,
}

/// Allocates the smallest subnet for each host count inside `net`, largest first from the
/// network's start (so every subnet is aligned and the unused space is one run at the end), as
/// Debian ipcalc `-s` does. An error names every request that does not fit.
pub fn split_hosts(net: &Network, requests: &[u128]) -> Result<Plan, ParseError> {
    let v6 = net.addr.is_ipv6();
    let width = width(v6);
    let whole = Interval::of(net);
    let mut prefixes = Vec::with_capacity(requests.len());
    for &hosts in requests {
        match prefix_for_hosts(hosts, v6) {
            Some(prefix) => prefixes.push(prefix),
            None if hosts == 0 => {
                return Err("--split-hosts: a host count must be at least 1".to_string())
            }
            None => {
                return Err(format!(
                    "--split-hosts: {hosts} hosts do not fit in any IPv4 network"
                ))
            }
        }
    }
    // Largest first (shortest prefix); equal sizes keep the order given (a stable sort).
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| prefixes[i]);
    let mut next_free = Some(whole.first);
    let mut placed: Vec<Option<u128>> = vec![None; requests.len()];
    let mut needed: Option<u128> = Some(0);
    let mut misfits = Vec::new();
    for i in order {
        let span = low_ones(width - u32::from(prefixes[i]));
        needed = needed.and_then(|n| n.checked_add(span)?.checked_add(1));
        match next_free {
            Some(start) if prefixes[i] >= net.prefix && span <= whole.last - start => {
                placed[i] = Some(start);
                let end = start + span;
                next_free = (end < whole.last).then(|| end + 1);
            }
            _ => misfits.push(i),
        }
    }
    if !misfits.is_empty() {
        misfits.sort_unstable();
        let names: Vec<String> = misfits
            .iter()
            .map(|&i| format!("{} hosts (a /{})", requests[i], prefixes[i]))
            .collect();
        let needed = needed.map_or_else(|| "over 2^128".to_string(), |n| n.to_string());
        return Err(format!(
            "--split-hosts: {} {} not fit in {}/{}: the subnets need {needed} addresses, it has {}",
            names.join(", "),
            if misfits.len() == 1 { "does" } else { "do" },
            net.network(),
            net.prefix,
            whole.size_text()
        ));
    }
    let allocations = requests
        .iter()
        .zip(&prefixes)
        .zip(&placed)
        .map(|((&hosts, &prefix), start)| Allocation {
            hosts,
            subnet: Network {
                addr: from_int(start.unwrap_or_default(), !v6),
                prefix,
                classful: false,
            },
        })
        .collect();
    let unused = match next_free {
        Some(first) => Interval {
            v6,
            first,
            last: whole.last,
        }
        .blocks(),
        None => Vec::new(),
    };
    Ok(Plan {
        allocations,
        needed: needed.map_or_else(|| TWO_POW_128.to_string(), |n| n.to_string()),
        unused,
    })
}

/// RFC 1918 blocks, as (network, prefix).
const PRIVATE_V4: [(u32, u8); 3] = [
    (0x0a00_0000, 8),  // 10.0.0.0/8
    (0xac10_0000, 12), // 172.16.0.0/12
    (0xc0a8_0000, 16), // 192.168.0.0/16
];

/// A random private network of `prefix` (ipcalc-ng `-r`) from the caller's `random` bits:
/// IPv4 in one of the RFC 1918 blocks that can hold a /prefix (each equally likely), its
/// network bits random; IPv6 in fd00::/8 (RFC 4193, locally assigned), the 40-bit global ID
/// and any subnet bits random.
pub fn private_network(prefix: u8, v6: bool, random: u128) -> Result<Network, ParseError> {
    if v6 {
        if !(8..=128).contains(&prefix) {
            return Err(format!(
                "--random-private {prefix}: an IPv6 unique local network is /8 to /128 \
                 (RFC 4193: /48 for a site)"
            ));
        }
        let bits = ((0xfdu128 << 120) | (random >> 8)) & mask_int(prefix, 128);
        return Ok(Network {
            addr: from_int(bits, false),
            prefix,
            classful: false,
        });
    }
    if !(8..=30).contains(&prefix) {
        return Err(format!(
            "--random-private {prefix}: an RFC 1918 network is /8 to /30"
        ));
    }
    let fitting: Vec<(u32, u8)> = PRIVATE_V4
        .into_iter()
        .filter(|&(_, len)| len <= prefix)
        .collect();
    let (base, len) = fitting[((random >> 64) as u64 % fitting.len() as u64) as usize];
    let inside = !(mask_int(len, 32) as u32) & (mask_int(prefix, 32) as u32);
    let bits = base | (random as u32 & inside);
    Ok(Network {
        addr: from_int(bits.into(), true),
        prefix,
        classful: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(nets: &[Network]) -> Vec<String> {
        nets.iter()
            .map(|n| format!("{}/{}", n.network(), n.prefix))
            .collect()
    }

    fn range(a: &str, b: &str) -> Interval {
        Interval::parse_range(a, b).unwrap()
    }

    #[test]
    fn a_range_is_covered_by_the_fewest_blocks() {
        // ipcalc -r 10.0.0.5 10.0.1.20 prints exactly these.
        assert_eq!(
            texts(&range("10.0.0.5", "10.0.1.20").blocks()),
            [
                "10.0.0.5/32",
                "10.0.0.6/31",
                "10.0.0.8/29",
                "10.0.0.16/28",
                "10.0.0.32/27",
                "10.0.0.64/26",
                "10.0.0.128/25",
                "10.0.1.0/28",
                "10.0.1.16/30",
                "10.0.1.20/32"
            ]
        );
        assert_eq!(
            texts(&range("0.0.0.0", "255.255.255.255").blocks()),
            ["0.0.0.0/0"]
        );
        assert_eq!(
            texts(&range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").blocks()),
            ["::/0"]
        );
        assert_eq!(
            texts(&range("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").blocks()).len(),
            128
        );
        assert_eq!(
            texts(&range("10.0.0.1", "10.0.0.1").blocks()),
            ["10.0.0.1/32"]
        );
    }

    #[test]
    fn bad_ranges_say_why() {
        for (a, b, why) in [
            ("10.0.0.2", "10.0.0.1", "the start is after the end"),
            ("10.0.0.1", "::1", "the start is IPv4 and the end IPv6"),
            ("10.0.0.1", "", "expected START-END"),
            ("010.0.0.1", "10.0.0.2", "leading zero"),
        ] {
            let err = Interval::parse_range(a, b).unwrap_err();
            assert!(err.contains(why), "{a} - {b}: {err}");
        }
        assert_eq!(
            split_range_word("10.0.0.1-10.0.0.9"),
            Some(("10.0.0.1", "10.0.0.9"))
        );
    }

    #[test]
    fn aggregation_merges_overlapping_and_touching_networks() {
        let mut set = Aggregator::new();
        for item in [
            "10.0.0.128/25",
            "10.0.0.0/25",
            "10.0.1.7",
            "10.0.0.5/24",
            "192.168.0.0/16",
            "192.168.3.0/24",
            "2001:db8::/33",
            "2001:db8:8000::/33",
            "10.0.2.0-10.0.2.255",
        ] {
            set.add(Interval::parse_item(item).unwrap()).unwrap();
        }
        let blocks: Vec<Network> = set.finish().iter().flat_map(Interval::blocks).collect();
        assert_eq!(
            texts(&blocks),
            [
                "10.0.0.0/24",
                "10.0.1.7/32",
                "10.0.2.0/24",
                "192.168.0.0/16",
                "2001:db8::/32"
            ]
        );
        let mut all = Aggregator::new();
        all.add(Interval::parse_item("::/1").unwrap()).unwrap();
        all.add(Interval::parse_item("8000::/1").unwrap()).unwrap();
        all.add(Interval::parse_item("ffff::/16").unwrap()).unwrap();
        assert_eq!(texts(&all.finish()[0].blocks()), ["::/0"]);
    }

    #[test]
    fn host_counts_become_the_smallest_prefix() {
        for (hosts, prefix) in [
            (1, 32),
            (2, 31),
            (3, 29),
            (6, 29),
            (7, 28),
            (62, 26),
            (63, 25),
        ] {
            assert_eq!(prefix_for_hosts(hosts, false), Some(prefix), "{hosts}");
        }
        assert_eq!(prefix_for_hosts(0, false), None);
        assert_eq!(prefix_for_hosts((1 << 32) - 2, false), Some(0));
        assert_eq!(prefix_for_hosts((1 << 32) - 1, false), None);
        assert_eq!(prefix_for_hosts(1, true), Some(128));
        assert_eq!(prefix_for_hosts(2, true), Some(127));
        assert_eq!(prefix_for_hosts(u128::MAX, true), Some(0));
    }

    #[test]
    fn vlsm_allocates_largest_first_and_prints_in_the_order_asked() {
        let net = Network::parse("10.0.0.0/24", None).unwrap();
        let plan = split_hosts(&net, &[20, 100, 50]).unwrap();
        let got: Vec<String> = plan
            .allocations
            .iter()
            .map(|a| format!("{} {}/{}", a.hosts, a.subnet.network(), a.subnet.prefix))
            .collect();
        assert_eq!(
            got,
            ["20 10.0.0.192/27", "100 10.0.0.0/25", "50 10.0.0.128/26"]
        );
        assert_eq!(plan.needed, "224");
        assert_eq!(texts(&plan.unused), ["10.0.0.224/27"]);
        let full = split_hosts(&net, &[126, 126]).unwrap();
        assert!(full.unused.is_empty());
        let err = split_hosts(&net, &[100, 100, 50, 20]).unwrap_err();
        assert_eq!(
            err,
            "--split-hosts: 50 hosts (a /26), 20 hosts (a /27) do not fit in 10.0.0.0/24: \
             the subnets need 352 addresses, it has 256"
        );
        assert!(split_hosts(&net, &[0]).is_err());
        let all = Network::parse("::/0", None).unwrap();
        let plan = split_hosts(&all, &[u128::MAX]).unwrap();
        assert_eq!(plan.needed, TWO_POW_128);
        assert!(plan.unused.is_empty());
    }

    #[test]
    fn random_private_networks_stay_in_their_blocks() {
        let private = [
            Interval::parse_item("10.0.0.0/8").unwrap(),
            Interval::parse_item("172.16.0.0/12").unwrap(),
            Interval::parse_item("192.168.0.0/16").unwrap(),
        ];
        for random in [
            0,
            u128::MAX,
            0x1234_5678_9abc_def0_1122_3344_5566_7788,
            1 << 64,
            2 << 64,
        ] {
            for prefix in 8..=30 {
                let net = private_network(prefix, false, random).unwrap();
                assert_eq!(net.prefix, prefix);
                assert_eq!(net.network(), net.addr, "host bits set");
                let iv = Interval::of(&net);
                assert!(private.iter().any(|p| p.contains(&iv)), "{net:?}");
            }
            let ula = private_network(48, true, random).unwrap();
            assert_eq!(ula.network(), ula.addr);
            assert!(ula.addr.to_string().starts_with("fd"), "{ula:?}");
        }
        assert!(private_network(7, false, 0).is_err());
        assert!(private_network(31, false, 0).is_err());
        assert!(private_network(7, true, 0).is_err());
        // 192.168/16 is chosen only when a /16 or longer is asked.
        assert_eq!(
            private_network(16, false, 2 << 64)
                .unwrap()
                .addr
                .to_string(),
            "192.168.0.0"
        );
        assert_eq!(
            private_network(15, false, 1 << 64)
                .unwrap()
                .addr
                .to_string(),
            "172.16.0.0"
        );
    }
}
