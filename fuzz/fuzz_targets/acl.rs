//! `--allow`/`--deny` entries and allow/deny files.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::net::acl::{parse_list, AccessList, Cidr};
use std::net::IpAddr;

fuzz_target!(|text: &str| {
    if let Ok(cidr) = Cidr::parse(text) {
        // Printed back, a block parses to itself.
        assert_eq!(Cidr::parse(&cidr.to_string()).ok(), Some(cidr));
    }
    let _ = parse_list(text);
    if let Ok(list) = AccessList::new(&[text.to_string()], &[], &[], &[]) {
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3"] {
            let ip: IpAddr = ip.parse().unwrap();
            // An IPv4 peer and its mapped form are one peer.
            if let IpAddr::V4(v4) = ip {
                assert_eq!(
                    list.permits(ip),
                    list.permits(IpAddr::V6(v4.to_ipv6_mapped()))
                );
            }
        }
    }
});
