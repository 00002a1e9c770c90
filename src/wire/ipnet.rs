//! IP network arithmetic for `nk mask`: parsing `ADDR[/PREFIX|/NETMASK]`, classful defaults,
//! network/broadcast/host ranges (RFC 3021 for /31 and /127-style point-to-point), kinds from
//! the IANA special-purpose address registries, and reverse-DNS names. Pure: no I/O.
//!
//! Both families are handled as 128-bit integers with a width (32 or 128), so every formula
//! is written once. Counts are exact: a /0 IPv6 network has 2^128 addresses, which is shown as
//! a decimal string because it does not fit in a u128.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network as the user gave it: the address, its prefix, and whether the prefix was the
/// classful default (no mask given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The address typed (not necessarily the network address).
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
    /// True when no mask was given and the IPv4 classful default was used.
    pub classful: bool,
}

/// Why an input is not a network.
pub type ParseError = String;

fn bits(addr: IpAddr) -> u32 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

pub(crate) fn to_int(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

pub(crate) fn from_int(value: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}

/// The mask of `prefix` ones in a `width`-bit address, as an integer.
pub(crate) fn mask_int(prefix: u8, width: u32) -> u128 {
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if prefix == 0 {
        0
    } else {
        all & !((1u128 << (width - u32::from(prefix))) - 1).min(all)
    }
}

/// Whether `scope` can follow `%` in a scoped IPv6 literal: an interface name as Linux allows
/// it (1 to 15 bytes; letters, digits, `_`, `-`, `.`: no `]`, `%`, `/`, space or control, so
/// the address prints back as typed) or an interface index (a number that fits 32 bits).
pub fn is_scope_id(scope: &str) -> bool {
    if !scope.is_empty() && scope.bytes().all(|b| b.is_ascii_digit()) {
        return scope.parse::<u32>().is_ok();
    }
    (1..=15).contains(&scope.len())
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Parses an IPv4 address strictly: four decimal octets, no leading zeros (they mean octal
/// to inet_aton, decimal to others: ambiguous, so refused).
pub fn parse_ipv4(text: &str) -> Result<Ipv4Addr, ParseError> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        if let Some(p) = parts.iter().find(|p| p.len() > 1 && p.starts_with('0')) {
            return Err(format!(
                "invalid IPv4 address \"{text}\": \"{p}\" has a leading zero (octal to some tools, decimal to others)"
            ));
        }
        if let Some(p) = parts
            .iter()
            .find(|p| p.parse::<u32>().map_or(true, |n| n > 255))
        {
            return Err(format!("invalid IPv4 address \"{text}\": {p} is not 0-255"));
        }
    }
    text.parse::<Ipv4Addr>()
        .map_err(|_| format!("invalid IPv4 address \"{text}\": expected four numbers 0-255"))
}

/// Parses an IPv4 (strictly, as [`parse_ipv4`]) or IPv6 address.
pub fn parse_addr(text: &str) -> Result<IpAddr, ParseError> {
    if text.contains(':') {
        return text
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| format!("invalid IPv6 address \"{text}\""));
    }
    parse_ipv4(text).map(IpAddr::V4)
}

/// A prefix from `/N`, a dotted netmask, a wildcard mask (`0.0.0.255`, as ipcalc and Cisco
/// ACLs write it) or a hex mask (`0xffffff00`, as sipcalc takes it); non-contiguous masks and
/// out-of-range prefixes are errors.
fn parse_mask(text: &str, addr: IpAddr) -> Result<u8, ParseError> {
    let width = bits(addr);
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        if text.len() > 1 && text.starts_with('0') {
            return Err(format!(
                "invalid prefix \"/{text}\": a leading zero (write /{})",
                text.trim_start_matches('0').max("0")
            ));
        }
        return match text.parse::<u32>() {
            Ok(n) if n <= width => Ok(n as u8),
            _ => Err(format!("invalid prefix \"/{text}\": must be 0-{width}")),
        };
    }
    if addr.is_ipv6() {
        return Err(format!(
            "invalid prefix \"/{text}\": IPv6 takes a prefix length 0-128"
        ));
    }
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
    let mask = match hex {
        Some(digits)
            if !digits.is_empty()
                && digits.len() <= 8
                && digits.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            u32::from_str_radix(digits, 16).map_err(|_| format!("invalid netmask \"{text}\""))?
        }
        Some(_) => {
            return Err(format!(
                "invalid netmask \"{text}\": a hex mask is 0x and up to 8 hex digits"
            ))
        }
        None => u32::from(parse_ipv4(text).map_err(|_| format!("invalid netmask \"{text}\""))?),
    };
    let ones = mask.leading_ones();
    if mask.checked_shl(ones).unwrap_or(0) == 0 {
        return Ok(ones as u8);
    }
    // Not a netmask; a wildcard mask is one turned around: zeros first, then ones.
    let zeros = mask.leading_zeros();
    if (!mask).checked_shl(zeros).unwrap_or(0) == 0 {
        return Ok(zeros as u8);
    }
    Err(format!(
        "invalid netmask \"{text}\": not contiguous (a netmask has its ones first, e.g. \
         255.255.255.0; a wildcard mask its zeros first, e.g. 0.0.0.255)"
    ))
}

/// The IPv4 class letter and classful default prefix (A /8, B /16, C /24; D and E have none,
/// so the host itself, /32).
pub fn class_of(addr: Ipv4Addr) -> (char, u8) {
    match addr.octets()[0] {
        0..=127 => ('A', 8),
        128..=191 => ('B', 16),
        192..=223 => ('C', 24),
        224..=239 => ('D', 32),
        _ => ('E', 32),
    }
}

impl Network {
    /// Parses `ADDR`, `ADDR/PREFIX`, `ADDR/NETMASK`, or `ADDR` with the mask as `second`.
    pub fn parse(text: &str, second: Option<&str>) -> Result<Network, ParseError> {
        let text = text.trim();
        let (addr_text, mask_text) = match (text.split_once('/'), second) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "the mask is given twice: in \"{text}\" and as a second argument"
                ))
            }
            (Some((a, m)), None) => (a, Some(m)),
            (None, m) => (text, m.map(str::trim)),
        };
        if addr_text.is_empty() {
            return Err(format!("invalid network \"{text}\": missing address"));
        }
        let addr = parse_addr(addr_text)?;
        match mask_text {
            Some(mask) => Ok(Network {
                addr,
                prefix: parse_mask(mask, addr)?,
                classful: false,
            }),
            None => match addr {
                IpAddr::V4(v4) => Ok(Network {
                    addr,
                    prefix: class_of(v4).1,
                    classful: true,
                }),
                IpAddr::V6(_) => Ok(Network {
                    addr,
                    prefix: 128,
                    classful: false,
                }),
            },
        }
    }

    fn width(&self) -> u32 {
        bits(self.addr)
    }

    fn v4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The netmask.
    pub fn netmask(&self) -> IpAddr {
        from_int(mask_int(self.prefix, self.width()), self.v4())
    }

    /// The wildcard (host) mask.
    pub fn hostmask(&self) -> IpAddr {
        let all = mask_int(self.width() as u8, self.width());
        from_int(all & !mask_int(self.prefix, self.width()), self.v4())
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        from_int(
            to_int(self.addr) & mask_int(self.prefix, self.width()),
            self.v4(),
        )
    }

    /// The last address of the network (the broadcast address for IPv4).
    pub fn last_address(&self) -> IpAddr {
        from_int(to_int(self.network()) | to_int(self.hostmask()), self.v4())
    }

    /// IPv4 broadcast: none for /31 and /32 (RFC 3021 point-to-point, single host).
    pub fn broadcast(&self) -> Option<IpAddr> {
        (self.v4() && self.prefix < 31).then(|| self.last_address())
    }

    /// The first and last usable host: every address for /31, /32 (RFC 3021) and IPv6; the
    /// network and broadcast addresses excluded otherwise.
    pub fn host_range(&self) -> (IpAddr, IpAddr) {
        let (first, last) = (to_int(self.network()), to_int(self.last_address()));
        if self.v4() && self.prefix < 31 {
            (from_int(first + 1, true), from_int(last - 1, true))
        } else {
            (from_int(first, self.v4()), from_int(last, self.v4()))
        }
    }

    /// Every address in the network, exactly, in decimal.
    pub fn addresses(&self) -> String {
        let host_bits = self.width() - u32::from(self.prefix);
        if host_bits == 128 {
            return "340282366920938463463374607431768211456".to_string();
        }
        (1u128 << host_bits).to_string()
    }

    /// The number of usable hosts, exactly, in decimal: every address but the network and
    /// broadcast ones in IPv4 below /31; every address in IPv6 (it has no broadcast).
    pub fn count(&self) -> String {
        let host_bits = self.width() - u32::from(self.prefix);
        if host_bits == 128 {
            return "340282366920938463463374607431768211456".to_string();
        }
        let total = 1u128 << host_bits;
        if self.v4() && self.prefix < 31 {
            (total - 2).to_string()
        } else {
            total.to_string()
        }
    }

    /// The subnets of prefix `new_prefix`: first, and how many (None when over `limit`).
    pub fn split(
        &self,
        new_prefix: u8,
        limit: u128,
    ) -> Result<impl Iterator<Item = Network>, ParseError> {
        let width = self.width();
        if u32::from(new_prefix) > width || new_prefix < self.prefix {
            return Err(format!(
                "--split {new_prefix}: must be {}-{width} for a /{}",
                self.prefix, self.prefix
            ));
        }
        let shift = u32::from(new_prefix - self.prefix);
        if shift >= 127 || (1u128 << shift) > limit {
            return Err(format!(
                "--split {new_prefix}: more than {limit} subnets; choose a shorter prefix"
            ));
        }
        let count = 1u128 << shift;
        // `::/0` split into /0 is one subnet of 2^128 addresses: the step is never used, and
        // `1 << 128` would overflow.
        let step = 1u128
            .checked_shl(width - u32::from(new_prefix))
            .unwrap_or(0);
        let (start, v4) = (to_int(self.network()), self.v4());
        Ok((0..count).map(move |i| Network {
            addr: from_int(start + i * step, v4),
            prefix: new_prefix,
            classful: false,
        }))
    }

    /// The reverse-DNS name of the address (`1.0.0.127.in-addr.arpa`, IPv6 nibbles).
    pub fn reverse_pointer(&self) -> String {
        reverse_name(self.addr, self.width() / if self.v4() { 8 } else { 4 })
    }

    /// The reverse zone that holds the whole network, at the enclosing octet (IPv4) or nibble
    /// (IPv6) boundary.
    pub fn reverse_zone(&self) -> String {
        let unit = if self.v4() { 8 } else { 4 };
        reverse_name(self.network(), u32::from(self.prefix) / unit)
    }
}

/// The reverse name of the first `labels` octets (IPv4) or nibbles (IPv6) of `addr`.
fn reverse_name(addr: IpAddr, labels: u32) -> String {
    let mut out = String::new();
    match addr {
        IpAddr::V4(a) => {
            for octet in a.octets()[..labels as usize].iter().rev() {
                let _ = write!(out, "{octet}.");
            }
            out.push_str("in-addr.arpa");
        }
        IpAddr::V6(a) => {
            let nibbles: Vec<u8> = a.octets().iter().flat_map(|b| [b >> 4, b & 0xf]).collect();
            for nibble in nibbles[..labels as usize].iter().rev() {
                let _ = write!(out, "{nibble:x}.");
            }
            out.push_str("ip6.arpa");
        }
    }
    out
}

/// A mask in text: dotted IPv4, or IPv6 compressed in hex. std would show an IPv6 mask that
/// happens to fall in ::ffff:0:0/96 (the /80 hostmask) in the IPv4-mapped dotted form, which
/// is right for addresses (RFC 5952) and wrong for a mask.
pub fn mask_text(mask: IpAddr) -> String {
    let IpAddr::V6(v6) = mask else {
        return mask.to_string();
    };
    let segments = v6.segments();
    // The longest run of two or more zero groups (the first of equals) becomes "::".
    let (mut run_start, mut best_start, mut best_len) = (0, 0, 0);
    for (i, &segment) in segments.iter().enumerate() {
        if segment != 0 {
            continue;
        }
        if i == 0 || segments[i - 1] != 0 {
            run_start = i;
        }
        if i - run_start + 1 > best_len {
            (best_start, best_len) = (run_start, i - run_start + 1);
        }
    }
    let hex = |range: &[u16]| {
        range
            .iter()
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len < 2 {
        return hex(&segments);
    }
    format!(
        "{}::{}",
        hex(&segments[..best_start]),
        hex(&segments[best_start + best_len..])
    )
}

/// The fully expanded IPv6 form (`2001:0db8:0000:...`).
pub fn expanded_v6(addr: Ipv6Addr) -> String {
    addr.segments()
        .iter()
        .map(|s| format!("{s:04x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// ipcalc's bit view of `addr`: IPv4 as four dotted octets of bits, IPv6 as eight
/// colon-separated groups of 16, with a space where the `prefix` network bits end (after the
/// dot or colon when the boundary falls on one, as ipcalc prints it; none at /0 or a full
/// prefix, where one side is empty).
pub fn binary_text(addr: IpAddr, prefix: u8) -> String {
    let (width, group, separator) = if addr.is_ipv4() {
        (32, 8, '.')
    } else {
        (128, 16, ':')
    };
    let value = to_int(addr);
    let mut out = String::with_capacity(160);
    for bit in 0..width {
        if bit > 0 && bit % group == 0 {
            out.push(separator);
        }
        if bit > 0 && bit == u32::from(prefix) {
            out.push(' ');
        }
        out.push(if (value >> (width - 1 - bit)) & 1 == 1 {
            '1'
        } else {
            '0'
        });
    }
    out
}

/// Special-purpose blocks (IANA IPv4 and IPv6 Special-Purpose Address Registries, and the
/// multicast and documentation ranges), most specific first when looked up.
const KINDS: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network (RFC 791)"),
    ("0.0.0.0/32", "unspecified (RFC 1122)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared address space / CGNAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local (RFC 3927)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.0.0/29", "IPv4 service continuity prefix (RFC 7335)"),
    ("192.0.0.8/32", "IPv4 dummy address (RFC 7600)"),
    ("192.0.0.9/32", "port control protocol anycast (RFC 7723)"),
    (
        "192.0.0.10/32",
        "traversal using relays around NAT anycast (RFC 8155)",
    ),
    ("192.0.0.170/31", "NAT64/DNS64 discovery (RFC 7050)"),
    ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
    ("192.31.196.0/24", "AS112-v4 (RFC 7535)"),
    ("192.52.193.0/24", "AMT (RFC 7450)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    (
        "192.175.48.0/24",
        "direct delegation AS112 service (RFC 7534)",
    ),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    (
        "224.0.0.0/24",
        "multicast, local network control (RFC 5771)",
    ),
    ("232.0.0.0/8", "multicast, source-specific (RFC 4607)"),
    (
        "233.252.0.0/24",
        "multicast, documentation MCAST-TEST-NET (RFC 6676)",
    ),
    (
        "239.0.0.0/8",
        "multicast, administratively scoped (RFC 2365)",
    ),
    ("240.0.0.0/4", "reserved (RFC 1112)"),
    ("255.255.255.255/32", "limited broadcast (RFC 919)"),
    ("::/128", "unspecified (RFC 4291)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("::ffff:0:0/96", "IPv4-mapped (RFC 4291)"),
    ("64:ff9b::/96", "IPv4/IPv6 translation (RFC 6052)"),
    (
        "64:ff9b:1::/48",
        "local-use IPv4/IPv6 translation (RFC 8215)",
    ),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001::/23", "IETF protocol assignments (RFC 2928)"),
    ("2001::/32", "Teredo (RFC 4380)"),
    ("2001:2::/48", "benchmarking (RFC 5180)"),
    ("2001:3::/32", "AMT (RFC 7450)"),
    ("2001:4:112::/48", "AS112-v6 (RFC 7535)"),
    ("2001:10::/28", "deprecated ORCHID (RFC 4843)"),
    ("2001:20::/28", "ORCHIDv2 (RFC 7343)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2002::/16", "6to4 (RFC 3056)"),
    (
        "2620:4f:8000::/48",
        "direct delegation AS112 service (RFC 7534)",
    ),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("5f00::/16", "segment routing SIDs (RFC 9602)"),
    ("fc00::/7", "unique local (RFC 4193)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("ff00::/8", "multicast (RFC 4291)"),
];

/// What a network is: the most specific special-purpose block that holds all of it (or what
/// is outside every block), and, when it is wider than blocks it overlaps, those blocks as
/// "in part" (ipcalc's "In Part Private Internet"): `10.0.0.0/7` is global unicast, in part
/// private.
pub fn network_kind(net: &Network) -> String {
    let whole = kind_within(net.network(), net.prefix);
    let table = kinds_table();
    let mut parts: Vec<&str> = Vec::new();
    for &(block, name) in table {
        if block.addr.is_ipv4() != net.addr.is_ipv4() || block.prefix <= net.prefix {
            continue;
        }
        let mask = mask_int(net.prefix, net.width());
        if to_int(block.addr) & mask == to_int(net.network()) && !parts.contains(&name) {
            parts.push(name);
        }
    }
    if parts.is_empty() {
        return whole.to_string();
    }
    const SHOWN: usize = 3;
    let more = parts.len().saturating_sub(SHOWN);
    parts.truncate(SHOWN);
    let mut text = format!("{whole}, in part {}", parts.join("; "));
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

fn kinds_table() -> &'static [(Network, &'static str)] {
    static TABLE: std::sync::OnceLock<Vec<(Network, &'static str)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        KINDS
            .iter()
            .filter_map(|(block, name)| Network::parse(block, None).ok().map(|n| (n, *name)))
            .collect()
    })
}

/// What an address is: the most specific special-purpose block containing it, or global
/// unicast (IPv6 only within 2000::/3; other IPv6 space is reserved by the IETF).
pub fn kind(addr: IpAddr) -> &'static str {
    kind_within(addr, if addr.is_ipv4() { 32 } else { 128 })
}

/// The kind of the `prefix`-long network at `addr`: the most specific block holding all of it.
fn kind_within(addr: IpAddr, prefix: u8) -> &'static str {
    let mut best: Option<(u8, &'static str)> = None;
    for &(net, name) in kinds_table() {
        if net.addr.is_ipv4() != addr.is_ipv4() || net.prefix > prefix {
            continue;
        }
        let mask = mask_int(net.prefix, net.width());
        if to_int(addr) & mask == to_int(net.addr) && best.is_none_or(|(p, _)| net.prefix > p) {
            best = Some((net.prefix, name));
        }
    }
    match (best, addr) {
        (Some((_, name)), _) => name,
        (None, IpAddr::V6(a)) if a.segments()[0] & 0xe000 != 0x2000 => {
            "reserved by the IETF (RFC 4291)"
        }
        (None, _) => "global unicast",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_space_split_into_itself_is_one_network() {
        // Issue 19 item 7: `nk mask ::/0 --split 0` shifted a u128 by 128.
        let all = Network::parse("::/0", None).unwrap();
        let nets: Vec<_> = all.split(0, 1024).unwrap().collect();
        assert_eq!(nets.len(), 1);
        assert_eq!(nets[0].network().to_string(), "::");
        let v4 = Network::parse("0.0.0.0/0", None).unwrap();
        assert_eq!(v4.split(0, 1024).unwrap().count(), 1);
        assert_eq!(all.split(1, 1024).unwrap().count(), 2);
    }

    fn net(text: &str) -> Network {
        Network::parse(text, None).unwrap()
    }

    #[test]
    fn seed_001_mask_of_127_0_0_1() {
        let n = net("127.0.0.1");
        assert!(n.classful);
        assert_eq!(n.prefix, 8);
        assert_eq!(n.netmask().to_string(), "255.0.0.0");
        assert_eq!(format!("{:08x}", to_int(n.netmask())), "ff000000");
        assert_eq!(n.network().to_string(), "127.0.0.0");
        assert_eq!(kind(n.addr), "loopback (RFC 1122)");
    }

    #[test]
    fn ipv4_arithmetic() {
        let n = net("192.168.1.77/26");
        assert_eq!(n.network().to_string(), "192.168.1.64");
        assert_eq!(n.broadcast().unwrap().to_string(), "192.168.1.127");
        assert_eq!(n.hostmask().to_string(), "0.0.0.63");
        let (first, last) = n.host_range();
        assert_eq!(
            (first.to_string(), last.to_string()),
            ("192.168.1.65".into(), "192.168.1.126".into())
        );
        assert_eq!(n.count(), "62");
        assert_eq!(n.reverse_pointer(), "77.1.168.192.in-addr.arpa");
        assert_eq!(n.reverse_zone(), "1.168.192.in-addr.arpa");
        assert_eq!(
            Network::parse("10.1.2.3", Some("255.255.0.0"))
                .unwrap()
                .prefix,
            16
        );
        assert_eq!(net("10.1.2.3/255.255.255.252").prefix, 30);
    }

    #[test]
    fn point_to_point_and_host_routes() {
        let p2p = net("10.0.0.1/31");
        assert_eq!(p2p.broadcast(), None);
        assert_eq!(p2p.count(), "2");
        assert_eq!(p2p.host_range().0.to_string(), "10.0.0.0");
        let host = net("10.0.0.1/32");
        assert_eq!(host.count(), "1");
        assert_eq!(host.host_range().1.to_string(), "10.0.0.1");
        assert_eq!(net("::1/128").count(), "1");
        assert_eq!(net("fe80::1/127").count(), "2");
    }

    #[test]
    fn ipv6_arithmetic_and_exact_counts() {
        let n = net("2001:db8::1/64");
        assert_eq!(n.network().to_string(), "2001:db8::");
        assert_eq!(
            n.last_address().to_string(),
            "2001:db8::ffff:ffff:ffff:ffff"
        );
        assert_eq!(n.count(), "18446744073709551616");
        assert_eq!(
            net("::/0").count(),
            "340282366920938463463374607431768211456"
        );
        assert_eq!(
            expanded_v6("2001:db8::1".parse().unwrap()),
            "2001:0db8:0000:0000:0000:0000:0000:0001"
        );
        assert_eq!(n.reverse_zone(), "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
        assert!(n.reverse_pointer().starts_with("1.0.0.0.0.0.0.0"));
        assert_eq!(kind(n.addr), "documentation (RFC 3849)");
        assert_eq!(kind("2606:4700::1".parse().unwrap()), "global unicast");
    }

    #[test]
    fn masks_are_never_shown_as_mapped_ipv4() {
        assert_eq!(mask_text(net("::/80").hostmask()), "::ffff:ffff:ffff");
        assert_eq!(mask_text(net("::/64").netmask()), "ffff:ffff:ffff:ffff::");
        assert_eq!(mask_text(net("::/0").netmask()), "::");
        assert_eq!(
            mask_text(net("::/128").netmask()),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(
            mask_text(net("::/16").hostmask()),
            "0:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(mask_text(net("10.0.0.0/8").netmask()), "255.0.0.0");
    }

    #[test]
    fn bit_view_as_ipcalc_prints_it() {
        let n = net("192.168.1.77/26");
        assert_eq!(
            binary_text(n.addr, n.prefix),
            "11000000.10101000.00000001.01 001101"
        );
        assert_eq!(
            binary_text(n.netmask(), 24),
            "11111111.11111111.11111111. 11000000"
        );
        assert_eq!(
            binary_text(n.addr, 0),
            "11000000.10101000.00000001.01001101"
        );
        assert_eq!(
            binary_text(n.addr, 32),
            "11000000.10101000.00000001.01001101"
        );
        let v6 = binary_text("2001:db8::1".parse().unwrap(), 20);
        assert!(
            v6.starts_with("0010000000000001:0000 110110111000:"),
            "{v6}"
        );
        assert_eq!(v6.len(), 128 + 7 + 1);
    }

    #[test]
    fn classful_defaults() {
        assert_eq!(net("10.0.0.1").prefix, 8);
        assert_eq!(net("172.16.0.1").prefix, 16);
        assert_eq!(net("192.0.2.1").prefix, 24);
        assert_eq!(net("224.0.0.1").prefix, 32);
    }

    #[test]
    fn invalid_forms_are_refused_with_a_reason() {
        for (bad, why) in [
            ("010.1.2.3", "leading zero"),
            ("10.1.2.3/33", "0-32"),
            ("10.1.2.3/-1", "invalid"),
            ("10.1.2.3/255.0.255.0", "not contiguous"),
            ("::1/129", "0-128"),
            ("256.1.1.1", "not 0-255"),
            ("garbage", "invalid"),
            ("/24", "missing address"),
            ("10.0.0.0/08", "a leading zero (write /8)"),
            ("10.0.0.0/00", "(write /0)"),
            ("10.0.0.0/0x1ffffff00", "up to 8 hex digits"),
            ("10.0.0.0/0xff00ff00", "not contiguous"),
        ] {
            let err = Network::parse(bad, None).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn every_registry_block_parses() {
        for (block, _) in KINDS {
            let n = Network::parse(block, None).unwrap();
            assert_eq!(n.network(), n.addr, "{block} has host bits set");
        }
    }

    #[test]
    fn splitting() {
        let subnets: Vec<String> = net("10.0.0.0/24")
            .split(26, 1 << 20)
            .unwrap()
            .map(|n| format!("{}/{}", n.network(), n.prefix))
            .collect();
        assert_eq!(
            subnets,
            [
                "10.0.0.0/26",
                "10.0.0.64/26",
                "10.0.0.128/26",
                "10.0.0.192/26"
            ]
        );
        assert!(net("10.0.0.0/24").split(23, 10).is_err());
        assert!(net("10.0.0.0/8").split(32, 1 << 20).is_err());
        assert_eq!(net("::/126").split(128, 10).unwrap().count(), 4);
    }
}
