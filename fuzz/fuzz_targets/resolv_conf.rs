//! /etc/resolv.conf text.
#![no_main]
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use netkit::net::dns::ResolvConf;
use std::str::FromStr;

fuzz_target!(|text: &str| {
    let conf = ResolvConf::parse(text);
    assert!(!conf.servers.is_empty());
    let name = Name::from_str("host").unwrap();
    let _ = conf.candidates(&name, true);
});
