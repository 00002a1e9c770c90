//! `nk mask` ranges, `--merge`, `--split-hosts`, `--random-private` and `--binary`: the
//! blocks of a range are aligned, in order, touching, minimal and cover exactly the range; an
//! aggregate holds every input, its intervals sorted, apart and starting and ending where
//! inputs do; a VLSM plan's subnets are the smallest for their counts, inside the network,
//! disjoint, and with the unused blocks tile the network.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::ipblocks::{
    prefix_for_hosts, private_network, split_hosts, split_range_word, Aggregator, Interval,
};
use netkit::wire::ipnet::{binary_text, Network};

/// The interval of a block.
fn span(net: &Network) -> Interval {
    Interval::of(net)
}

/// Checks that `blocks` cover exactly `range`, aligned, in order, with no two that would make
/// one larger block.
fn check_cover(range: &Interval, blocks: &[Network]) {
    let width = if range.v6 { 128 } else { 32 };
    assert!(!blocks.is_empty() && blocks.len() <= 2 * width);
    let mut next = Some(range.first);
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(block.network(), block.addr, "unaligned {block:?}");
        let s = span(block);
        assert_eq!(Some(s.first), next, "gap or overlap at {block:?}");
        next = s.last.checked_add(1);
        if let Some(after) = blocks.get(i + 1) {
            let buddy = block.prefix > 0
                && after.prefix == block.prefix
                && Network {
                    prefix: block.prefix - 1,
                    ..*block
                }
                .network()
                    == block.addr;
            assert!(!buddy, "{block:?} and {after:?} make one block");
        }
    }
    assert_eq!(span(blocks.last().unwrap()).last, range.last);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let Some((start, end)) = split_range_word(text) else {
                return;
            };
            if let Ok(range) = Interval::parse_range(start, end) {
                check_cover(&range, &range.blocks());
            }
        }
        1 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let inputs: Vec<Interval> = text
                .split_whitespace()
                .filter_map(|t| Interval::parse_item(t).ok())
                .collect();
            let mut set = Aggregator::new();
            for input in &inputs {
                set.add(*input).unwrap();
            }
            let merged = set.finish();
            for pair in merged.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                assert!(a.v6 < b.v6 || (a.v6 == b.v6 && a.last.checked_add(1).unwrap() < b.first));
            }
            for interval in &merged {
                assert!(inputs.iter().any(|i| i.v6 == interval.v6 && i.first == interval.first));
                assert!(inputs.iter().any(|i| i.v6 == interval.v6 && i.last == interval.last));
                check_cover(interval, &interval.blocks());
            }
            for input in &inputs {
                assert!(merged.iter().any(|m| m.contains(input)));
            }
        }
        2 => {
            // The network, a NUL, then 8-byte host counts.
            let Some(nul) = rest.iter().position(|&b| b == 0) else {
                return;
            };
            let Ok(text) = std::str::from_utf8(&rest[..nul]) else {
                return;
            };
            let Ok(net) = Network::parse(text, None) else {
                return;
            };
            let counts: Vec<u128> = rest[nul + 1..]
                .chunks(8)
                .take(16)
                .map(|c| {
                    // 56 bits of count, shifted left by the top byte (IPv6 counts are huge).
                    let mut b = [0u8; 8];
                    b[..c.len()].copy_from_slice(c);
                    let value = u64::from_le_bytes(b);
                    u128::from(value & 0x00ff_ffff_ffff_ffff) << ((value >> 56) % 72)
                })
                .collect();
            let Ok(plan) = split_hosts(&net, &counts) else {
                return;
            };
            let whole = Interval::of(&net);
            let mut pieces: Vec<Interval> = Vec::new();
            for (allocation, &hosts) in plan.allocations.iter().zip(&counts) {
                assert_eq!(allocation.hosts, hosts);
                assert_eq!(Some(allocation.subnet.prefix), prefix_for_hosts(hosts, whole.v6));
                assert_eq!(allocation.subnet.network(), allocation.subnet.addr);
                pieces.push(span(&allocation.subnet));
            }
            pieces.extend(plan.unused.iter().map(span));
            pieces.sort();
            assert_eq!(pieces.first().map(|p| p.first), Some(whole.first));
            assert_eq!(pieces.last().map(|p| p.last), Some(whole.last));
            for pair in pieces.windows(2) {
                assert_eq!(pair[0].last.checked_add(1), Some(pair[1].first), "not a tiling");
            }
        }
        _ => {
            let mut bytes = [0u8; 17];
            let n = rest.len().min(17);
            bytes[..n].copy_from_slice(&rest[..n]);
            let random = u128::from_le_bytes(bytes[1..].try_into().unwrap());
            let prefix = bytes[0] & 0x7f;
            let v6 = bytes[0] & 0x80 != 0;
            if let Ok(net) = private_network(prefix, v6, random) {
                assert_eq!(net.prefix, prefix);
                assert_eq!(net.network(), net.addr);
                let home = match v6 {
                    true => "fd00::/8",
                    false => ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
                        .into_iter()
                        .find(|b| Interval::parse_item(b).unwrap().contains(&span(&net)))
                        .expect("inside RFC 1918"),
                };
                assert!(Interval::parse_item(home).unwrap().contains(&span(&net)));
                let bits = binary_text(net.addr, net.prefix);
                let ones = bits.bytes().filter(|b| matches!(b, b'0' | b'1')).count();
                assert_eq!(ones, if v6 { 128 } else { 32 });
            }
        }
    }
});
