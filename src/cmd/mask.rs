//! `nk mask`: address and netmask arithmetic, like ipcalc, for IPv4 and IPv6.
//!
//! Arguments, or one network per line of stdin when there are none, so it works in pipelines
//! (`cut -d' ' -f1 routes | nk mask --json`). The arithmetic is `wire::ipnet`; this module only
//! formats it. A bad line is reported with its line number and the rest are still processed;
//! the exit status is then 2.

use std::io::{self, Write};
use std::net::IpAddr;

use anyhow::Result;
use clap::Args;

use crate::cmd::{stdin_items, stdout_error};
use crate::exit::{usage, UsageError};
use crate::net::addr;
use crate::wire::ipnet::{class_of, expanded_v6, kind, mask_text, network_kind, Network};

/// The most subnets `--split` prints.
const MAX_SPLIT: u128 = 1 << 24;

/// The longest stdin line read (a network and a netmask take under 100 bytes).
const MAX_LINE: usize = 4096;

/// Address and netmask arithmetic (like ipcalc), IPv4 and IPv6.
#[derive(Debug, Args)]
#[command(
    long_about = "Print what an address and mask mean: netmask (dotted, /N, hex), wildcard, \
        network, broadcast, first and last host, host count, class, kind (from the IANA \
        special-purpose registries: private, loopback, link-local, documentation, CGNAT, \
        multicast...), and reverse DNS names. An IPv4 address without a mask gets its classful \
        default (A /8, B /16, C /24), and says so. /31 and /32 follow RFC 3021 (no broadcast; \
        every address usable). IPv6 shows the compressed and expanded forms and the exact \
        address count (up to 2^128).\n\n\
        The mask may be a prefix (/24), a netmask (255.255.255.0), a wildcard mask \
        (0.0.0.255, as ipcalc and ACLs write it: zeros first) or a hex mask (0xffffff00, as \
        sipcalc takes it). An IPv6 zone (fe80::1%eth0) is kept in the output. Kind is the \
        address's when no mask is given; otherwise the network's, with the special blocks it \
        only partly covers named \"in part\" (10.0.0.0/7: global unicast, in part private). \
        --json: count and hosts are the usable hosts (all addresses in IPv6, which has no \
        broadcast), addresses every address.\n\n\
        With no arguments, reads one network per line from stdin. Leading zeros (010.1.2.3, \
        /08), non-contiguous masks and out-of-range prefixes are usage errors (exit 2). So are \
        the short and hex forms other nk commands take for a HOST (127.1, 0x7f.1, as inet_aton \
        reads them): in network notation they are ambiguous (010 is 8 to inet_aton, 10 to \
        ipcalc), so the error says what inet_aton reads and the hint gives the four numbers.",
    after_long_help = "Examples:\n  \
        nk mask 127.0.0.1                  # classful default: /8, ff000000, 127.0.0.0\n  \
        nk mask 192.168.1.77/26\n  \
        nk mask 10.0.0.0 255.255.252.0 --split 24\n  \
        nk mask 10.20.0.0 0.0.255.255              # a wildcard mask: /16\n  \
        printf '2001:db8::/48\\n10.0.0.0/8\\n' | nk mask --json"
)]
pub struct MaskArgs {
    /// ADDR, ADDR/PREFIX or ADDR/NETMASK (none: one per line from stdin).
    #[arg(value_name = "ADDR[/PREFIX|/NETMASK]")]
    pub network: Option<String>,
    /// The netmask, when given as its own argument.
    #[arg(value_name = "NETMASK")]
    pub netmask: Option<String>,
    /// Print the subnets of prefix length N instead.
    #[arg(long, value_name = "N")]
    pub split: Option<u8>,
    /// One JSON object per network (per subnet with --split).
    #[arg(long)]
    pub json: bool,
}

/// Runs `nk mask`.
pub fn run(args: MaskArgs) -> Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let result = match &args.network {
        Some(first) => {
            let network = Zoned::parse(first, args.netmask.as_deref()).map_err(|err| {
                let (message, hint) = short_form_note(first, err);
                match hint {
                    Some(hint) => anyhow::Error::new(UsageError::new(message).with_hint(hint)),
                    None => usage(message),
                }
            })?;
            show(&mut out, &network, &args)
        }
        None => from_stdin(&mut out, &args),
    };
    result.and_then(|()| out.flush().map_err(stdout_error))
}

fn from_stdin(out: &mut impl Write, args: &MaskArgs) -> Result<()> {
    let mut bad = 0usize;
    let mut first = true;
    stdin_items(MAX_LINE, |number, text| {
        let mut words = text.split_whitespace();
        let (network, mask) = (words.next().unwrap_or_default(), words.next());
        match Zoned::parse(network, mask) {
            Ok(network) => {
                if !first && !args.json && args.split.is_none() {
                    writeln!(out).map_err(stdout_error)?;
                }
                first = false;
                show(out, &network, args)?;
            }
            Err(err) => {
                bad += 1;
                match short_form_note(network, err) {
                    (message, Some(hint)) => {
                        crate::eprintln_safe!("nk: line {number}: {message} ({hint})")
                    }
                    (message, None) => crate::eprintln_safe!("nk: line {number}: {message}"),
                }
            }
        }
        Ok(())
    })?;
    if bad > 0 {
        return Err(usage(format!("{bad} line(s) of stdin were not networks")));
    }
    Ok(())
}

/// The other commands take an IPv4 HOST in inet_aton's forms (`127.1`, `010.1.2.3`,
/// `0x7f.1`): mask does not, because in network notation they are ambiguous (`010` is octal 8
/// to inet_aton and decimal 10 to ipcalc and most people). When the address of `text` is one
/// of those forms, the error says what inet_aton makes of it, and the hint gives the four
/// numbers; other errors pass through unchanged (no hint).
fn short_form_note(text: &str, err: String) -> (String, Option<String>) {
    let address = text.split(['/', '%']).next().unwrap_or(text);
    let Some(ip) = addr::inet_aton(address) else {
        return (err, None);
    };
    if crate::wire::ipnet::parse_ipv4(address).is_ok() {
        return (err, None);
    }
    let parts: Vec<&str> = address.split('.').collect();
    // The reading ipcalc gives `010.1.2.3` (10.1.2.3), when there is one.
    let decimal = parts.len() == 4
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u8>().is_ok());
    let shown = address.escape_debug();
    let (what, why) = if parts.len() < 4 {
        (
            "a short form",
            "inet_aton fills the middle, 10.1 is 10.0.0.1; route tables fill the end, 10.1/16 is 10.1.0.0/16",
        )
    } else if address.contains(['x', 'X']) {
        (
            "a hex part",
            "few network tools read 0x in a dotted address",
        )
    } else {
        ("a leading zero", "010 is 8 to inet_aton, 10 to ipcalc")
    };
    let message = format!(
        "invalid IPv4 address \"{shown}\": {what} is ambiguous in network notation ({why}), \
         so nk mask refuses it; inet_aton, as ping, curl and the other nk commands use it, \
         reads it as {ip}"
    );
    let hint = match decimal {
        true => {
            let plain: Vec<String> = parts
                .iter()
                .map(|p| p.trim_start_matches('0').max("0").to_string())
                .collect();
            format!(
                "write {ip} (inet_aton's reading) or {} (decimal)",
                plain.join(".")
            )
        }
        false => format!("write {ip}"),
    };
    (message, Some(hint))
}

/// A network and the IPv6 zone (`%eth0`) it was given with, kept for the output.
struct Zoned {
    network: Network,
    zone: Option<String>,
}

impl Zoned {
    /// `Network::parse`, after taking a `%ZONE` off the address (an interface name or number,
    /// as every nk command takes it: `wire::ipnet::is_scope_id`).
    fn parse(text: &str, second: Option<&str>) -> Result<Zoned, String> {
        let (addr, rest) = match text.split_once('/') {
            Some((addr, rest)) => (addr, Some(rest)),
            None => (text, None),
        };
        let Some((addr, zone)) = addr.split_once('%') else {
            return Network::parse(text, second).map(|network| Zoned {
                network,
                zone: None,
            });
        };
        if !crate::wire::ipnet::is_scope_id(zone) {
            return Err(format!(
                "invalid zone \"%{}\": an interface name or number (up to 15 letters, digits, _ - .)",
                zone.escape_debug()
            ));
        }
        let bare = match rest {
            Some(rest) => format!("{addr}/{rest}"),
            None => addr.to_string(),
        };
        let network = Network::parse(&bare, second)?;
        if network.addr.is_ipv4() {
            return Err(format!(
                "invalid address \"{text}\": a %zone is for IPv6 addresses"
            ));
        }
        Ok(Zoned {
            network,
            zone: Some(zone.to_string()),
        })
    }

    /// The address as typed back: with its zone.
    fn address(&self) -> String {
        match &self.zone {
            Some(zone) => format!("{}%{zone}", self.network.addr),
            None => self.network.addr.to_string(),
        }
    }

    /// What the network is: the address's kind when no mask was given (the classful default
    /// is a display aid), the network's otherwise ("in part" when it is wider than a block).
    fn kind(&self) -> String {
        match self.network.classful {
            true => kind(self.network.addr).to_string(),
            false => network_kind(&self.network),
        }
    }
}

fn show(out: &mut impl Write, zoned: &Zoned, args: &MaskArgs) -> Result<()> {
    let network = &zoned.network;
    if let Some(prefix) = args.split {
        for subnet in network.split(prefix, MAX_SPLIT).map_err(usage)? {
            let subnet = Zoned {
                network: subnet,
                zone: zoned.zone.clone(),
            };
            let line = if args.json {
                describe_json(&subnet).to_string()
            } else {
                format!("{}/{}", subnet.network.network(), subnet.network.prefix)
            };
            writeln!(out, "{line}").map_err(stdout_error)?;
        }
        return Ok(());
    }
    let text = if args.json {
        describe_json(zoned).to_string() + "\n"
    } else {
        describe(zoned)
    };
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

/// The human form: one `Name: value` line per fact.
fn describe(zoned: &Zoned) -> String {
    let n = &zoned.network;
    let mut lines: Vec<(&str, String)> = Vec::new();
    let (first, last) = n.host_range();
    match n.addr {
        IpAddr::V4(v4) => {
            let (class, _) = class_of(v4);
            let mask_int = u32::from_be_bytes(match n.netmask() {
                IpAddr::V4(m) => m.octets(),
                IpAddr::V6(_) => [0; 4],
            });
            let default = if n.classful {
                format!(", classful default for class {class}")
            } else {
                String::new()
            };
            lines.push(("Address", v4.to_string()));
            lines.push((
                "Netmask",
                format!(
                    "{} = /{} (hex {mask_int:08x}{default})",
                    n.netmask(),
                    n.prefix
                ),
            ));
            lines.push(("Wildcard", mask_text(n.hostmask())));
            lines.push(("Network", format!("{}/{}", n.network(), n.prefix)));
            lines.push((
                "Broadcast",
                n.broadcast().map_or_else(
                    || format!("none (/{}: RFC 3021)", n.prefix),
                    |b| b.to_string(),
                ),
            ));
            lines.push(("HostMin", first.to_string()));
            lines.push(("HostMax", last.to_string()));
            lines.push(("Hosts", n.count()));
            lines.push(("Class", class.to_string()));
        }
        IpAddr::V6(v6) => {
            lines.push(("Address", zoned.address()));
            lines.push(("Expanded", expanded_v6(v6)));
            lines.push((
                "Prefix",
                format!("/{} (netmask {})", n.prefix, mask_text(n.netmask())),
            ));
            lines.push(("Network", format!("{}/{}", n.network(), n.prefix)));
            lines.push(("First", first.to_string()));
            lines.push(("Last", last.to_string()));
            lines.push(("Addresses", n.count()));
        }
    }
    lines.push(("Kind", zoned.kind()));
    lines.push(("Reverse", n.reverse_pointer()));
    lines.push(("ReverseZone", n.reverse_zone()));
    let mut text = String::new();
    for (name, value) in lines {
        text.push_str(&format!("{:<12} {value}\n", format!("{name}:")));
    }
    text
}

/// The machine form.
fn describe_json(zoned: &Zoned) -> serde_json::Value {
    let n = &zoned.network;
    let (first, last) = n.host_range();
    let mut value = serde_json::json!({
        "address": n.addr.to_string(),
        "zone": zoned.zone,
        "prefix": n.prefix,
        "netmask": mask_text(n.netmask()),
        "hostmask": mask_text(n.hostmask()),
        "network": n.network().to_string(),
        "first": first.to_string(),
        "last": last.to_string(),
        // `count` is the usable hosts in both families (IPv6 has no broadcast, so all of its
        // addresses); `hosts` says the same by name, `addresses` counts every address.
        "count": n.count(),
        "hosts": n.count(),
        "addresses": n.addresses(),
        "kind": zoned.kind(),
        "reverse": n.reverse_pointer(),
        "reverse_zone": n.reverse_zone(),
    });
    match n.addr {
        IpAddr::V4(v4) => {
            value["version"] = 4.into();
            value["broadcast"] = n.broadcast().map(|b| b.to_string()).into();
            value["class"] = class_of(v4).0.to_string().into();
            value["classful_default"] = n.classful.into();
            if let IpAddr::V4(m) = n.netmask() {
                value["hex"] = format!("{:08x}", u32::from(m)).into();
            }
        }
        IpAddr::V6(v6) => {
            value["version"] = 6.into();
            value["expanded"] = expanded_v6(v6).into();
        }
    }
    value
}
