//! The target lists of `nk ping`'s multi-target mode, from user text: `-g` blocks and ranges
//! and `--file` lists, as fping reads them.
//!
//! Both are parsers of user text, kept free of I/O so the fuzz target `ping_targets` can feed
//! them anything. Both have caps: `-g` refuses more than a /16's worth of addresses unless
//! `--force` (a slip of the prefix, `/8` for `/24`, would otherwise send 16 million requests),
//! and nothing, forced or not, makes more than [`HARD_LIMIT`] targets (each costs memory and
//! a line of output). A file's lines are capped at [`MAX_LINE`] bytes.

use std::net::IpAddr;

use crate::wire::ipblocks::Interval;
use crate::wire::ipnet::Network;

/// The most addresses `-g` makes without `--force`: a /16 (or an IPv6 /112).
pub const DEFAULT_LIMIT: u128 = 65_536;
/// The most targets one run takes, `--force` or not (a /12).
pub const HARD_LIMIT: usize = 1 << 20;
/// The longest line of a target file.
pub const MAX_LINE: usize = 1024;

/// The addresses `-g` makes of its arguments: `ADDR/PREFIX` (or `ADDR/NETMASK`) without the
/// network and broadcast addresses of an IPv4 block under /31, as fping; or `START END`, both
/// included. `force` lifts [`DEFAULT_LIMIT`], not [`HARD_LIMIT`].
pub fn generate(args: &[String], force: bool) -> Result<Vec<IpAddr>, String> {
    let (interval, shown) = match args {
        [block] => {
            if !block.contains('/') {
                return Err(format!(
                    "-g {block}: expected ADDR/PREFIX or START END (e.g. -g 192.168.1.0/24)"
                ));
            }
            let net = Network::parse(block, None).map_err(|e| format!("-g: {e}"))?;
            let (first, last) = net.host_range();
            let interval = Interval::new(first, last).map_err(|e| format!("-g: {e}"))?;
            (interval, block.clone())
        }
        [start, end] => {
            let interval = Interval::parse_range(start, end).map_err(|e| format!("-g: {e}"))?;
            (interval, format!("{start} {end}"))
        }
        _ => {
            return Err(format!(
                "-g takes one block (ADDR/PREFIX) or two addresses (START END), not {} arguments",
                args.len()
            ))
        }
    };
    // ::/0 holds 2^128 addresses, one more than a u128 counts.
    let count = (interval.last - interval.first).checked_add(1);
    let Some(count) = count.filter(|&n| n <= HARD_LIMIT as u128) else {
        let count = count.map_or("2^128".to_string(), |n| n.to_string());
        return Err(format!(
            "-g {shown}: {count} addresses; nk pings at most {HARD_LIMIT} targets in one run"
        ));
    };
    if count > DEFAULT_LIMIT && !force {
        return Err(format!(
            "-g {shown}: {count} addresses, more than a /16 ({DEFAULT_LIMIT}); add --force if \
             that is what you mean"
        ));
    }
    Ok((interval.first..=interval.last)
        .map(|n| to_addr(n, interval.v6))
        .collect())
}

fn to_addr(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(n.into())
    } else {
        // An IPv4 interval never goes past u32::MAX.
        IpAddr::V4(u32::try_from(n).unwrap_or(u32::MAX).into())
    }
}

/// The targets of a target file, as fping reads one: per line, the first word (leading
/// blanks skipped); blank lines and lines whose first word starts with `#` skipped; the rest
/// of a line ignored. CRLF line ends are taken. A line longer than [`MAX_LINE`], a line that
/// is not UTF-8, or more than [`HARD_LIMIT`] targets is an error naming the line.
pub fn parse_list(text: &[u8]) -> Result<Vec<String>, String> {
    let mut targets = Vec::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        if line.len() > MAX_LINE {
            return Err(format!("line {number}: longer than {MAX_LINE} bytes"));
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return Err(format!("line {number}: not UTF-8 text"));
        };
        let Some(word) = line.split_ascii_whitespace().next() else {
            continue;
        };
        if word.starts_with('#') {
            continue;
        }
        if targets.len() == HARD_LIMIT {
            return Err(format!(
                "line {number}: more than {HARD_LIMIT} targets in one run"
            ));
        }
        targets.push(word.to_string());
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(args: &[&str], force: bool) -> Result<Vec<String>, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        generate(&args, force).map(|v| v.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn blocks_leave_out_network_and_broadcast_as_fping() {
        let all = gen(&["10.0.0.0/24"], false).unwrap();
        assert_eq!(all.len(), 254);
        assert_eq!(all[0], "10.0.0.1");
        assert_eq!(all[253], "10.0.0.254");
        assert_eq!(
            gen(&["10.0.0.8/30"], false).unwrap(),
            ["10.0.0.9", "10.0.0.10"]
        );
        assert_eq!(
            gen(&["10.0.0.10/31"], false).unwrap(),
            ["10.0.0.10", "10.0.0.11"]
        );
        assert_eq!(gen(&["10.0.0.10/32"], false).unwrap(), ["10.0.0.10"]);
        assert_eq!(
            gen(&["10.0.0.7/255.255.255.252"], false).unwrap(),
            ["10.0.0.5", "10.0.0.6"]
        );
        assert_eq!(gen(&["::1/127"], false).unwrap(), ["::", "::1"]);
    }

    #[test]
    fn ranges_include_both_ends() {
        assert_eq!(
            gen(&["10.0.0.9", "10.0.0.11"], false).unwrap(),
            ["10.0.0.9", "10.0.0.10", "10.0.0.11"]
        );
        assert!(gen(&["10.0.0.11", "10.0.0.9"], false).is_err());
        assert!(gen(&["10.0.0.1", "::1"], false).is_err());
    }

    #[test]
    fn more_than_a_16_needs_force_and_a_hard_cap_stays() {
        assert_eq!(gen(&["10.0.0.0/16"], false).unwrap().len(), 65_534);
        let err = gen(&["10.0.0.0/15"], false).unwrap_err();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(gen(&["10.0.0.0/15"], true).unwrap().len(), 131_070);
        assert!(gen(&["10.0.0.0/8"], true).is_err());
        assert!(gen(&["::/64"], true).is_err());
        assert!(gen(&["::1/0"], true).unwrap_err().contains("2^128"));
        assert!(gen(&["10.0.0.0"], false).is_err());
        assert!(gen(&["10.0.0.0/33"], false).is_err());
        assert!(gen(&[], false).is_err());
        assert!(gen(&["a", "b", "c"], false).is_err());
    }

    #[test]
    fn lists_take_the_first_word_of_each_line() {
        let text = b"# hosts\n  10.0.0.1 the router\n\n\t::1\r\nname.example#x\n #10.0.0.2\n";
        assert_eq!(
            parse_list(text).unwrap(),
            ["10.0.0.1", "::1", "name.example#x"]
        );
        assert_eq!(parse_list(b"").unwrap(), Vec::<String>::new());
        let long = vec![b'a'; MAX_LINE + 1];
        assert!(parse_list(&long).unwrap_err().starts_with("line 1:"));
        assert!(parse_list(b"ok\n\xff\n")
            .unwrap_err()
            .starts_with("line 2:"));
    }
}
