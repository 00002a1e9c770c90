//! `nk mask`: address and netmask arithmetic, like ipcalc, ipcalc-ng and sipcalc, for IPv4 and
//! IPv6.
//!
//! Arguments, or one network per line of stdin when there are none, so it works in pipelines
//! (`cut -d' ' -f1 routes | nk mask --json`). The arithmetic is `wire::ipnet` (one network)
//! and `wire::ipblocks` (ranges, aggregation, VLSM); this module reads the input and formats
//! the answers. A bad line is reported with its line number and the rest are still processed;
//! the exit status is then 2. `--merge` is the exception: an aggregate missing an input would
//! be wrong, so one bad item means no output at all.

use std::io::{self, Write};
use std::net::IpAddr;

use anyhow::Result;
use clap::Args;
use rand::Rng;

use crate::cmd::{stdin_items, stdout_error};
use crate::exit::{usage, Reported, Status, UsageError};
use crate::net::addr;
use crate::wire::ipblocks::{private_network, split_hosts, split_range_word, Aggregator, Interval};
use crate::wire::ipnet::{
    binary_text, class_of, expanded_v6, kind, mask_text, network_kind, parse_ipv4, Network,
};

/// The most subnets `--split` prints.
const MAX_SPLIT: u128 = 1 << 24;

/// The most host counts `--split-hosts` takes.
const MAX_SPLIT_HOSTS: usize = 65536;

/// The longest stdin line read (a network and a netmask take under 100 bytes; a --merge line
/// of whitespace-separated networks may be longer).
const MAX_LINE: usize = 65536;

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
        A range, START - END or START-END, prints the fewest CIDR blocks that cover exactly \
        those addresses (ipcalc -r, ipcalc-ng -d). --merge prints the fewest blocks that cover \
        every network, address and range given (aggregation, as Python's collapse_addresses): \
        as arguments, or whitespace-separated on stdin, # starting a comment; a bare IPv4 \
        address is that address alone (no classful default) and host bits are ignored \
        (10.0.0.5/24 is 10.0.0.0/24). Any bad item is reported with its line number and \
        nothing is printed (exit 2): a partial aggregate would be wrong.\n\n\
        --split-hosts 100,50,20 is VLSM as Debian ipcalc -s: for each count the smallest \
        subnet that holds that many hosts (IPv4: 1 is a /32, 2 a /31 as RFC 3021 counts, \
        more need the network and broadcast addresses too; IPv6: every address), allocated \
        largest first from the network's start, printed in the order asked, then the \
        addresses needed and the unused blocks. Counts that do not fit are named (exit 2).\n\n\
        --binary adds ipcalc's bit view, a space where the network bits end. --shell prints \
        ipcalc-ng's NAME=value lines for eval (ADDRESSES is ipcalc-ng's: the usable hosts; \
        BROADCAST is empty for /31 and /32, absent for IPv6). --contains ADDR exits 0 if the \
        network holds ADDR (an address, network or range), 1 if not, silently (-v says \
        which; --json prints it); a bare address is the address alone, not its classful \
        network; with several networks on stdin, 0 if any holds it. --random-private N picks \
        a random RFC 1918 /N (8-30; each of 10/8, 172.16/12, 192.168/16 that can hold it \
        equally likely) or with -6 a random unique local fd00::/8 /N (RFC 4193: a 40-bit \
        random global ID for a /48), from the operating system's CSPRNG, and shows it like \
        any network.\n\n\
        With no arguments, reads one network (or range) per line from stdin. Leading zeros \
        (010.1.2.3, /08), non-contiguous masks and out-of-range prefixes are usage errors \
        (exit 2). So are the short and hex forms other nk commands take for a HOST (127.1, \
        0x7f.1, as inet_aton reads them): in network notation they are ambiguous (010 is 8 \
        to inet_aton, 10 to ipcalc), so the error says what inet_aton reads and the hint \
        gives the four numbers.",
    after_long_help = "Examples:\n  \
        nk mask 127.0.0.1                  # classful default: /8, ff000000, 127.0.0.0\n  \
        nk mask 192.168.1.77/26 --binary\n  \
        nk mask 10.0.0.0 255.255.252.0 --split 24\n  \
        nk mask 10.0.0.0/24 --split-hosts 100,50,20   # VLSM\n  \
        nk mask 10.0.0.5 - 10.0.1.20               # the CIDR blocks of a range\n  \
        nk mask --merge < blocklist.txt            # aggregate\n  \
        nk mask 10.0.0.0/8 --contains 10.1.2.3 && echo inside\n  \
        eval \"$(nk mask --shell 192.168.1.77/26)\"; echo $NETWORK/$PREFIX\n  \
        nk mask --random-private 24; nk mask -6 --random-private 48\n  \
        printf '2001:db8::/48\\n10.0.0.0/8\\n' | nk mask --json"
)]
pub struct MaskArgs {
    /// ADDR[/PREFIX|/NETMASK] [NETMASK], or a range START - END; with --merge any number of
    /// networks, addresses and ranges (none: read from stdin).
    #[arg(value_name = "NETWORK")]
    pub words: Vec<String>,
    /// Print the subnets of prefix length N instead.
    #[arg(long, value_name = "N")]
    pub split: Option<u8>,
    /// VLSM: the smallest subnet for each host count, largest first (like ipcalc -s).
    #[arg(
        long,
        value_name = "HOSTS,...",
        conflicts_with = "split",
        allow_hyphen_values = true
    )]
    pub split_hosts: Option<String>,
    /// Print the fewest blocks covering all networks, addresses and ranges given (aggregate).
    #[arg(
        long,
        conflicts_with_all = ["split", "split_hosts", "shell", "binary", "contains", "random_private"]
    )]
    pub merge: bool,
    /// Add ipcalc's bit view: address, netmask, network, broadcast in binary.
    #[arg(long, conflicts_with_all = ["split", "split_hosts", "shell", "contains"])]
    pub binary: bool,
    /// Print NETWORK=... PREFIX=... lines for eval (like ipcalc-ng).
    #[arg(long, conflicts_with_all = ["json", "split", "split_hosts", "contains"])]
    pub shell: bool,
    /// Exit 0 if the network contains ADDR (address, network or range), 1 if not; silent.
    #[arg(
        long,
        value_name = "ADDR",
        conflicts_with_all = ["split", "split_hosts", "random_private"]
    )]
    pub contains: Option<String>,
    /// A random private network of prefix N: RFC 1918, or a unique local one with -6.
    #[arg(long, value_name = "N", conflicts_with = "words")]
    pub random_private: Option<u8>,
    /// With --random-private: an IPv4 network (the default).
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// With --random-private: an IPv6 unique local network (fd00::/8).
    #[arg(short = '6')]
    pub ipv6: bool,
    /// One JSON object per network (per subnet or block with --split, --split-hosts, a range,
    /// --merge).
    #[arg(long)]
    pub json: bool,
}

/// What one argument list or stdin line asks about.
enum Item {
    /// A network (or an address with its mask).
    Network(Zoned),
    /// A range of addresses, START - END.
    Range(Interval),
}

/// Why an input was refused, and the fix when there is one.
type Refusal = (String, Option<String>);

/// Reads `ADDR[/MASK]`, `ADDR NETMASK`, `START - END` or `START-END`.
fn parse_words(words: &[&str]) -> Result<Item, Refusal> {
    let range = |start: &str, end: &str| {
        Interval::parse_range(start, end)
            .map(Item::Range)
            .map_err(|err| (err, None))
    };
    let network = |text: &str, mask: Option<&str>| {
        Zoned::parse(text, mask)
            .map(Item::Network)
            .map_err(|err| short_form_note(text, err))
    };
    match words {
        [one] => match split_range_word(one) {
            Some((start, end)) => range(start, end),
            None => network(one, None),
        },
        [start, "-", end] => range(start, end),
        [text, mask] if *mask != "-" => network(text, Some(mask)),
        _ => Err((
            format!(
                "expected ADDR[/PREFIX], ADDR NETMASK or START - END, not \"{}\"",
                words.join(" ").escape_debug()
            ),
            None,
        )),
    }
}

/// The text of a line before any `#` comment.
fn before_comment(text: &str) -> &str {
    text.split('#').next().unwrap_or_default()
}

/// What the run has found so far (for --contains' exit status).
#[derive(Default)]
struct Tally {
    shown: usize,
    contained: bool,
}

/// Runs `nk mask`.
pub fn run(args: MaskArgs) -> Result<()> {
    if (args.ipv4 || args.ipv6) && args.random_private.is_none() {
        // The family of every other input is the address's own; -4/-6 only choose what
        // --random-private makes.
        return Err(usage(
            "-4 and -6 go with --random-private; a network's family is its address's",
        ));
    }
    let hosts = args
        .split_hosts
        .as_deref()
        .map(parse_host_counts)
        .transpose()
        .map_err(usage)?;
    let target = args
        .contains
        .as_deref()
        .map(|text| Interval::parse_item(text.trim()))
        .transpose()
        .map_err(|err| usage(format!("--contains: {err}")))?;
    let view = View {
        args: &args,
        hosts,
        target,
    };
    let mut tally = Tally::default();
    let mut out = io::BufWriter::new(io::stdout().lock());
    let result = if args.merge {
        merge(&mut out, &args)
    } else if let Some(prefix) = args.random_private {
        let network = private_network(prefix, args.ipv6, rand::rng().random()).map_err(usage)?;
        let item = Item::Network(Zoned {
            network,
            zone: None,
        });
        view.show(&mut out, &item, &mut tally)
    } else if args.words.is_empty() {
        from_stdin(&mut out, &view, &mut tally)
    } else {
        let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
        let item = parse_words(&words).map_err(|(message, hint)| match hint {
            Some(hint) => anyhow::Error::new(UsageError::new(message).with_hint(hint)),
            None => usage(message),
        })?;
        view.show(&mut out, &item, &mut tally)
    };
    result.and_then(|()| out.flush().map_err(stdout_error))?;
    if view.target.is_some() && !tally.contained {
        return Err(Reported(Status::Failure).into());
    }
    Ok(())
}

/// `--split-hosts 100,50,20`.
fn parse_host_counts(text: &str) -> Result<Vec<u128>, String> {
    let counts: Vec<&str> = text.split(',').map(str::trim).collect();
    if counts.len() > MAX_SPLIT_HOSTS {
        return Err(format!(
            "--split-hosts: more than {MAX_SPLIT_HOSTS} host counts"
        ));
    }
    counts
        .iter()
        .map(|count| match count.parse::<u128>() {
            Ok(n) if n > 0 && !count.starts_with('+') => Ok(n),
            _ => Err(format!(
                "--split-hosts: \"{}\" is not a host count (comma-separated numbers from 1, \
                 e.g. 100,50,20)",
                count.escape_debug()
            )),
        })
        .collect()
}

fn from_stdin(out: &mut impl Write, view: &View, tally: &mut Tally) -> Result<()> {
    let mut bad = 0usize;
    stdin_items(MAX_LINE, |number, text| {
        let words: Vec<&str> = before_comment(text).split_whitespace().collect();
        if words.is_empty() {
            return Ok(());
        }
        match parse_words(&words) {
            Ok(item) => view.show(out, &item, tally)?,
            Err((message, Some(hint))) => {
                bad += 1;
                crate::eprintln_safe!("nk: line {number}: {message} ({hint})")
            }
            Err((message, None)) => {
                bad += 1;
                crate::eprintln_safe!("nk: line {number}: {message}")
            }
        }
        Ok(())
    })?;
    if bad > 0 {
        return Err(usage(format!("{bad} line(s) of stdin were not networks")));
    }
    Ok(())
}

/// Whether `token` reads as an IPv4 netmask (255.x with contiguous ones): after an address on
/// a --merge line it is the `ADDR NETMASK` form, which --merge does not take.
fn looks_like_netmask(token: &str) -> bool {
    parse_ipv4(token).is_ok_and(|mask| {
        let bits = u32::from(mask);
        bits.leading_ones() >= 8 && bits.checked_shl(bits.leading_ones()).unwrap_or(0) == 0
    })
}

/// `--merge`: every item into one set, then its fewest blocks; nothing printed if any item
/// is bad.
fn merge(out: &mut impl Write, args: &MaskArgs) -> Result<()> {
    let mut set = Aggregator::new();
    let mut bad = 0usize;
    let mut add = |place: &str, tokens: &[&str]| -> Result<()> {
        for (i, token) in tokens.iter().enumerate() {
            let refused = match Interval::parse_item(token) {
                Ok(_)
                    if i > 0
                        && !tokens[i - 1].contains(['/', '-'])
                        && looks_like_netmask(token) =>
                {
                    format!(
                        "\"{} {token}\": --merge takes ADDR/NETMASK, not ADDR NETMASK (a lone \
                         {token} would be that address)",
                        tokens[i - 1]
                    )
                }
                Ok(interval) => {
                    set.add(interval).map_err(anyhow::Error::msg)?;
                    continue;
                }
                Err(err) => err,
            };
            bad += 1;
            crate::eprintln_safe!("nk: {place}: {refused}");
        }
        Ok(())
    };
    if args.words.is_empty() {
        stdin_items(MAX_LINE, |number, text| {
            let tokens: Vec<&str> = before_comment(text).split_whitespace().collect();
            add(&format!("line {number}"), &tokens)
        })?;
    } else {
        for (i, word) in args.words.iter().enumerate() {
            add(&format!("argument {}", i + 1), &[word.as_str()])?;
        }
    }
    if bad > 0 {
        return Err(usage(format!(
            "{bad} item(s) were not networks, addresses or ranges; nothing printed"
        )));
    }
    for interval in set.finish() {
        write_blocks(out, &interval.blocks(), args.json)?;
    }
    Ok(())
}

/// CIDR blocks, one per line: `NETWORK/PREFIX`, or the JSON object of each.
fn write_blocks<'a>(
    out: &mut impl Write,
    blocks: impl IntoIterator<Item = &'a Network>,
    json: bool,
) -> Result<()> {
    for block in blocks {
        let line = match json {
            true => describe_json(&Zoned::bare(*block)).to_string(),
            false => format!("{}/{}", block.network(), block.prefix),
        };
        writeln!(out, "{line}").map_err(stdout_error)?;
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
    if parse_ipv4(address).is_ok() {
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
    /// A network with no zone.
    fn bare(network: Network) -> Zoned {
        Zoned {
            network,
            zone: None,
        }
    }

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

/// The options that shape the answer for one item.
struct View<'a> {
    args: &'a MaskArgs,
    /// `--split-hosts`, parsed.
    hosts: Option<Vec<u128>>,
    /// `--contains`, parsed.
    target: Option<Interval>,
}

impl View<'_> {
    fn show(&self, out: &mut impl Write, item: &Item, tally: &mut Tally) -> Result<()> {
        let args = self.args;
        let zoned = match item {
            Item::Network(zoned) => zoned,
            Item::Range(range) => {
                let flag = [
                    (args.split.is_some(), "--split"),
                    (self.hosts.is_some(), "--split-hosts"),
                    (args.binary, "--binary"),
                    (args.shell, "--shell"),
                    (self.target.is_some(), "--contains"),
                ]
                .into_iter()
                .find_map(|(given, name)| given.then_some(name));
                if let Some(flag) = flag {
                    return Err(usage(format!(
                        "{flag} takes a network; a range ({} - {}) prints its CIDR blocks",
                        range.first_addr(),
                        range.last_addr()
                    )));
                }
                tally.shown += 1;
                return write_blocks(out, &range.blocks(), args.json);
            }
        };
        let network = &zoned.network;
        if let Some(target) = &self.target {
            return self.contains(out, zoned, target, tally);
        }
        if let Some(prefix) = args.split {
            tally.shown += 1;
            let subnets = network.split(prefix, MAX_SPLIT).map_err(usage)?;
            for subnet in subnets {
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
        if let Some(hosts) = &self.hosts {
            tally.shown += 1;
            return write_plan(out, network, hosts, args.json);
        }
        // Whole descriptions from stdin are set apart by a blank line, as ipcalc's are.
        if tally.shown > 0 && !args.json {
            writeln!(out).map_err(stdout_error)?;
        }
        tally.shown += 1;
        let text = if args.shell {
            shell_lines(zoned)
        } else if args.json {
            let mut value = describe_json(zoned);
            if args.binary {
                value["binary"] = binary_json(network);
            }
            value.to_string() + "\n"
        } else if args.binary {
            describe(zoned) + &describe_binary(network)
        } else {
            describe(zoned)
        };
        out.write_all(text.as_bytes()).map_err(stdout_error)
    }

    /// `--contains`: records the answer; says it only with -v or --json.
    fn contains(
        &self,
        out: &mut impl Write,
        zoned: &Zoned,
        target: &Interval,
        tally: &mut Tally,
    ) -> Result<()> {
        // A bare address is the address alone here: the classful default is a display aid.
        let network = &zoned.network;
        let (holder, name) = match network.classful {
            true => (
                Interval::of(&Network {
                    prefix: 32,
                    ..*network
                }),
                network.addr.to_string(),
            ),
            false => (
                Interval::of(network),
                format!("{}/{}", network.network(), network.prefix),
            ),
        };
        let inside = holder.contains(target);
        tally.contained |= inside;
        let target_text = match (target.first == target.last, target.blocks().as_slice()) {
            (true, _) => target.first_addr().to_string(),
            (false, [one]) => format!("{}/{}", one.network(), one.prefix),
            _ => format!("{}-{}", target.first_addr(), target.last_addr()),
        };
        let line = if self.args.json {
            serde_json::json!({"network": name, "contains": target_text, "result": inside})
                .to_string()
        } else if crate::log::verbosity() > 0 {
            let verb = if inside {
                "contains"
            } else {
                "does not contain"
            };
            format!("{name} {verb} {target_text}")
        } else {
            return Ok(());
        };
        writeln!(out, "{line}").map_err(stdout_error)
    }
}

/// `--split-hosts`: each request's subnet in the order asked, then what they need and the
/// unused blocks (Debian ipcalc -s's report, one line per subnet).
fn write_plan(out: &mut impl Write, network: &Network, hosts: &[u128], json: bool) -> Result<()> {
    let plan = split_hosts(network, hosts).map_err(usage)?;
    if json {
        for allocation in &plan.allocations {
            let mut value = describe_json(&Zoned::bare(allocation.subnet));
            value["requested_hosts"] = allocation.hosts.to_string().into();
            value["unused"] = false.into();
            writeln!(out, "{value}").map_err(stdout_error)?;
        }
        for block in &plan.unused {
            let mut value = describe_json(&Zoned::bare(*block));
            value["unused"] = true.into();
            writeln!(out, "{value}").map_err(stdout_error)?;
        }
        return Ok(());
    }
    let rows: Vec<(String, String, String)> = plan
        .allocations
        .iter()
        .map(|a| {
            let (first, last) = a.subnet.host_range();
            (
                format!("{} host{}:", a.hosts, if a.hosts == 1 { "" } else { "s" }),
                format!("{}/{}", a.subnet.network(), a.subnet.prefix),
                format!("{} usable, {first} - {last}", a.subnet.count()),
            )
        })
        .collect();
    let label = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(7);
    let subnet = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (name, net, usable) in &rows {
        text.push_str(&format!("{name:<label$} {net:<subnet$}  {usable}\n"));
    }
    text.push_str(&format!(
        "{:<label$} {} of {} addresses in {}/{}\n",
        "Needed:",
        plan.needed,
        network.addresses(),
        network.network(),
        network.prefix
    ));
    let unused: Vec<String> = plan
        .unused
        .iter()
        .map(|b| format!("{}/{}", b.network(), b.prefix))
        .collect();
    match unused.split_first() {
        None => text.push_str(&format!("{:<label$} none\n", "Unused:")),
        Some((first, rest)) => {
            text.push_str(&format!("{:<label$} {first}\n", "Unused:"));
            for block in rest {
                text.push_str(&format!("{:<label$} {block}\n", ""));
            }
        }
    }
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

/// `--binary`: the bit view of the address, netmask, network and broadcast (or last address).
fn describe_binary(network: &Network) -> String {
    let mut text = String::from("Binary:\n");
    for (name, addr) in binary_rows(network) {
        text.push_str(&format!(
            "  {:<12} {}\n",
            format!("{name}:"),
            binary_text(addr, network.prefix)
        ));
    }
    text
}

fn binary_rows(network: &Network) -> [(&'static str, IpAddr); 4] {
    let last = match network.addr {
        IpAddr::V4(_) => "Broadcast",
        IpAddr::V6(_) => "Last",
    };
    [
        ("Address", network.addr),
        ("Netmask", network.netmask()),
        ("Network", network.network()),
        (last, network.last_address()),
    ]
}

fn binary_json(network: &Network) -> serde_json::Value {
    let mut value = serde_json::Map::new();
    for (name, addr) in binary_rows(network) {
        value.insert(
            name.to_ascii_lowercase(),
            binary_text(addr, network.prefix).into(),
        );
    }
    value.into()
}

/// A value as the shell reads it back: bare when it holds only characters no shell treats
/// specially (every address and number does), single-quoted otherwise.
fn shell_word(value: &str) -> String {
    let plain =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'%' | b'_' | b'-');
    if !value.is_empty() && value.bytes().all(plain) {
        return value.to_string();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `--shell`: ipcalc-ng's `NAME=value` lines, for eval.
fn shell_lines(zoned: &Zoned) -> String {
    let n = &zoned.network;
    let (first, last) = n.host_range();
    let mut lines: Vec<(&str, String)> = vec![
        ("NETWORK", n.network().to_string()),
        ("PREFIX", n.prefix.to_string()),
        ("NETMASK", mask_text(n.netmask())),
    ];
    if n.addr.is_ipv4() {
        let broadcast = n.broadcast().map(|b| b.to_string()).unwrap_or_default();
        lines.push(("BROADCAST", broadcast));
    }
    lines.extend([
        ("ADDRESS", zoned.address()),
        ("MINADDR", first.to_string()),
        ("MAXADDR", last.to_string()),
        ("ADDRESSES", n.count()),
    ]);
    lines
        .iter()
        .map(|(name, value)| match value.is_empty() {
            true => format!("{name}=\n"),
            false => format!("{name}={}\n", shell_word(value)),
        })
        .collect()
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
