//! `nk mask`: a network and every value it prints, and splitting.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::ipnet::{expanded_v6, kind, mask_text, network_kind, Network};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (first, second) = match text.split_once(' ') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let Ok(net) = Network::parse(first, second) else {
        return;
    };
    let _ = mask_text(net.netmask());
    let _ = net.hostmask();
    let network = net.network();
    let last = net.last_address();
    assert!(network <= last);
    let _ = net.broadcast();
    let (lo, hi) = net.host_range();
    assert!(lo <= hi);
    let _ = (net.addresses(), net.count());
    let _ = (net.reverse_pointer(), net.reverse_zone());
    let _ = (network_kind(&net), kind(network));
    if let std::net::IpAddr::V6(v6) = network {
        let expanded = expanded_v6(v6);
        assert_eq!(expanded.parse::<std::net::Ipv6Addr>().ok(), Some(v6));
    }
    if let Ok(subnets) = net.split(split % 130, 64) {
        let mut count = 0;
        for sub in subnets {
            assert!(sub.network() >= network && sub.last_address() <= last);
            count += 1;
        }
        assert!((1..=64).contains(&count));
    }
});
