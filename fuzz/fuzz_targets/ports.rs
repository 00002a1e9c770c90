//! Port lists (`-z 22,80,8000-8100`): sorted, unique, in range, bounded whatever the text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    use netkit::net::service_names::Proto;
    if let Ok(ports) = netkit::net::scan::parse_ports(text, Proto::Tcp) {
        assert!(!ports.is_empty());
        assert!(ports.windows(2).all(|w| w[0] < w[1]));
        assert!(ports[0] > 0);
    }
});
