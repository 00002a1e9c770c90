//! Addresses: hosts, targets, listener specs, Unix socket paths.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::net::addr::{host_of, ip_literal, parse_listen, parse_target, parse_target_or, Host};
use netkit::net::service_names::Proto;
use netkit::net::unix::UnixAddr;

fuzz_target!(|text: &str| {
    if let Ok(host) = host_of(text) {
        match host {
            Host::Ip(ip) => assert_eq!(ip_literal(&ip.to_string()), Some(ip)),
            Host::Name(name) => {
                assert!(
                    !name.is_empty() && !name.contains(['[', ']', ' ', '/', '\n']),
                    "{name:?}"
                )
            }
        }
    }
    let _ = parse_target(text, None, Proto::Tcp);
    let _ = parse_target(text, Some("80"), Proto::Udp);
    let _ = parse_target_or(text, 25, Proto::Tcp);
    let _ = parse_listen(text, None, Proto::Tcp);
    let _ = UnixAddr::parse(text);
});
