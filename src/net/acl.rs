//! `--allow` / `--deny`: which peers a listener serves, by address or CIDR block.
//!
//! A denied peer is closed before a byte moves, so the check runs on the accepted address
//! alone. Rules: a peer matching any deny entry is refused; when an allow list was given, a
//! peer must match one of its entries, so an allow list that came out empty (a file of
//! comments) admits nobody: it fails closed, as ncat does. IPv4-mapped IPv6 addresses
//! (`::ffff:127.0.0.1`), in specs and in peers seen on dual-stack listeners alike, are the IPv4
//! addresses they stand for, normalised in this one place. Entries may be comma-separated;
//! lists also come from files (`--allowfile`, one or more entries per line, `#` comments), read
//! with a size cap; a file that cannot be read is a usage error, before any traffic.

use std::fmt;
use std::io::Read;
use std::net::IpAddr;

use anyhow::{Context, Result};

use crate::exit::usage;

/// The largest allow/deny file read: a generous list, never unbounded memory.
const MAX_LIST_FILE: u64 = 4 << 20;

/// An address block: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR` or `ADDR/PREFIX`; host bits set below the prefix are a usage error
    /// (`10.0.0.1/8` is almost always a typo for `10.0.0.0/8`).
    pub fn parse(text: &str) -> Result<Cidr> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        // Network notation, as in `nk mask`: the short and leading-zero forms every HOST
        // takes (127.1, 010.0.0.1) are ambiguous here (10.1/16 reads as 10.1.0.0/16 in a
        // route, 10.0.0.1 to inet_aton), so they are refused with inet_aton's reading.
        let addr: IpAddr = addr_text.parse().map_err(|_| match crate::net::addr::inet_aton(addr_text) {
            Some(ip) => anyhow::Error::new(
                crate::exit::UsageError::new(format!(
                    "invalid address \"{text}\": a CIDR takes four decimal numbers; \"{addr_text}\" \
                     is ambiguous in network notation (inet_aton reads it as {ip})"
                ))
                .with_hint(match prefix_text {
                    Some(prefix) => format!("write {ip}/{prefix}"),
                    None => format!("write {ip}"),
                }),
            ),
            None => usage(format!(
                "invalid address \"{text}\": expected an IP address or CIDR such as 10.0.0.0/8"
            )),
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let mut prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => {
                    return Err(usage(format!(
                        "invalid prefix in \"{text}\": must be 0-{max}"
                    )))
                }
            },
        };
        // `::ffff:a.b.c.d/N` (N >= 96) is the IPv4 block a.b.c.d/(N-96): compared as IPv4,
        // like the peers it must match.
        let mut addr = addr;
        if let (IpAddr::V6(v6), true) = (addr, prefix >= 96) {
            if let Some(v4) = v6.to_ipv4_mapped() {
                addr = IpAddr::V4(v4);
                prefix -= 96;
            }
        }
        let cidr = Cidr {
            network: addr,
            prefix,
        };
        if cidr.masked(addr) != addr {
            return Err(usage(format!(
                "invalid block \"{text}\": host bits are set below /{prefix} (did you mean {}/{prefix}?)",
                cidr.masked(addr)
            )));
        }
        Ok(cidr)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }

    /// Whether `ip` lies in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.network
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The allow and deny lists of a listener.
#[derive(Debug, Clone, Default)]
pub struct AccessList {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    /// An allow list was given (possibly empty: then nobody is allowed).
    allow_given: bool,
}

impl AccessList {
    /// Builds the lists from command-line entries and files.
    pub fn new(
        allow: &[String],
        deny: &[String],
        allow_files: &[String],
        deny_files: &[String],
    ) -> Result<AccessList> {
        let mut list = AccessList {
            allow_given: !allow.is_empty() || !allow_files.is_empty(),
            ..AccessList::default()
        };
        for entry in allow {
            list.allow.extend(parse_entries(entry)?);
        }
        for entry in deny {
            list.deny.extend(parse_entries(entry)?);
        }
        for path in allow_files {
            list.allow.extend(read_list(path)?);
        }
        for path in deny_files {
            list.deny.extend(read_list(path)?);
        }
        if list.allow_given && list.allow.is_empty() {
            crate::info!("the allow list is empty: no client will be served");
        }
        Ok(list)
    }

    /// Whether a peer may be served.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        !self.allow_given || self.allow.iter().any(|c| c.contains(ip))
    }
}

/// One `--allow`/`--deny` value: an entry, or several separated by commas.
fn parse_entries(text: &str) -> Result<Vec<Cidr>> {
    text.split(',')
        .map(|entry| Cidr::parse(entry.trim()))
        .collect()
}

/// Reads one entry per line; `#` starts a comment; blank lines are skipped.
fn read_list(path: &str) -> Result<Vec<Cidr>> {
    let unreadable = |e: std::io::Error| usage(format!("read {path}: {e}"));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut text = String::new();
    file.take(MAX_LIST_FILE)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    parse_list(&text).with_context(|| format!("in {path}"))
}

/// Parses the text of an allow/deny file (public for the fuzz target).
pub fn parse_list(text: &str) -> Result<Vec<Cidr>> {
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let entry = line.split('#').next().unwrap_or("").trim();
            (!entry.is_empty())
                .then(|| parse_entries(entry).with_context(|| format!("line {}", n + 1)))
        })
        .collect::<Result<Vec<Vec<Cidr>>>>()
        .map(|lists| lists.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{classify, Status};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses() {
        let lo = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains(ip("127.1.2.3")));
        assert!(lo.contains(ip("::ffff:127.0.0.1")));
        assert!(!lo.contains(ip("128.0.0.1")));
        assert!(!lo.contains(ip("::1")));
        let one = Cidr::parse("::1").unwrap();
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(Cidr::parse("2001:db8::/32")
            .unwrap()
            .contains(ip("2001:db8:ffff::1")));
    }

    #[test]
    fn bad_blocks_are_usage_errors() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.1/8",
            "::1/129",
            "host",
            "10.0.0.0/x",
            "10.0.0.0/+8",
        ] {
            let err = Cidr::parse(bad).unwrap_err();
            assert_eq!(classify(&err), Status::Usage, "{bad}: {err:#}");
        }
    }

    #[test]
    fn short_forms_are_refused_with_inet_atons_reading() {
        for (bad, hint) in [
            ("127.1/8", "write 127.0.0.1/8"),
            ("010.0.0.1", "write 8.0.0.1"),
        ] {
            let err = Cidr::parse(bad).unwrap_err();
            assert_eq!(classify(&err), Status::Usage, "{bad}: {err:#}");
            assert!(
                format!("{err:#}").contains("inet_aton reads it as"),
                "{err:#}"
            );
            assert_eq!(crate::exit::hint(&err), Some(hint));
        }
    }

    #[test]
    fn deny_wins_and_allow_restricts() {
        let list =
            AccessList::new(&["127.0.0.0/8".into()], &["127.0.0.9".into()], &[], &[]).unwrap();
        assert!(list.permits(ip("127.0.0.2")));
        assert!(!list.permits(ip("127.0.0.9")));
        assert!(!list.permits(ip("10.0.0.1")));
        assert!(AccessList::default().permits(ip("10.0.0.1")));
    }

    #[test]
    fn an_empty_allow_list_admits_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allow");
        std::fs::write(&path, "# nobody yet\n\n").unwrap();
        let path = path.to_str().unwrap().to_string();
        let list = AccessList::new(&[], &[], &[path], &[]).unwrap();
        assert!(!list.permits(ip("127.0.0.1")));
    }

    #[test]
    fn commas_separate_entries_and_mapped_specs_are_ipv4() {
        let list = AccessList::new(&["10.0.0.0/8,127.0.0.1".into()], &[], &[], &[]).unwrap();
        assert!(list.permits(ip("10.1.2.3")) && list.permits(ip("127.0.0.1")));
        let deny = AccessList::new(&[], &["::ffff:127.0.0.1".into()], &[], &[]).unwrap();
        assert!(!deny.permits(ip("127.0.0.1")));
        assert!(!deny.permits(ip("::ffff:127.0.0.1")));
        let allow = AccessList::new(&["::ffff:127.0.0.0/104".into()], &[], &[], &[]).unwrap();
        assert!(allow.permits(ip("127.0.0.1")));
        let err = AccessList::new(&[], &[], &["/nonexistent/allow".into()], &[]).unwrap_err();
        assert_eq!(classify(&err), Status::Usage, "{err:#}");
    }

    #[test]
    fn list_files_skip_comments_and_blank_lines() {
        let parsed = parse_list("# trusted\n127.0.0.2\n\n10.0.0.0/8  # lab\n").unwrap();
        assert_eq!(parsed.len(), 2);
        let err = parse_list("ok\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 1"));
    }
}
