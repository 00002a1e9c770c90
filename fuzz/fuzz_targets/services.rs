//! /etc/services text: what a name maps to maps back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::net::service_names::{Proto, Services};

fuzz_target!(|text: &str| {
    let services = Services::parse(text);
    for word in text.split_whitespace().take(64) {
        for proto in [Proto::Tcp, Proto::Udp] {
            if let Some(port) = services.port(word, proto) {
                assert!(services.name(port, proto).is_some());
            }
        }
    }
});
