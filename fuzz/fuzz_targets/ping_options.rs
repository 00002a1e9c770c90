//! `nk ping`'s user-text options: `-p PATTERN`, `-Q TOS` (shared with dial's `--tos`), `-M`,
//! `-I IFACE|ADDR`, `-m MARK`. Accepted values stay in their ranges; a pattern is 1 to 16
//! bytes, prints back as the hex it came from (an even number of digits) and fills a payload
//! of any size.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::cmd::ping::options::{
    parse_interface, parse_mark, parse_pattern, parse_pmtu, pattern_line, payload_fill,
    Interface, MAX_PATTERN,
};

fuzz_target!(|text: &str| {
    if let Ok(pattern) = parse_pattern(text) {
        assert!((1..=MAX_PATTERN).contains(&pattern.0.len()));
        let line = pattern_line(&pattern);
        let hex = line
            .strip_prefix("PATTERN: 0x")
            .and_then(|rest| rest.strip_suffix('\n'))
            .expect("PATTERN line");
        if text.len() % 2 == 0 {
            assert_eq!(hex, text.to_ascii_lowercase());
        }
        let fill = payload_fill(Some(&pattern), text.len() * 3);
        assert_eq!(fill.len(), text.len() * 3);
        assert!(fill.chunks(pattern.0.len()).all(|c| pattern.0.starts_with(c)));
    }
    if let Ok(tos) = netkit::cli::parse_tos(text) {
        assert!(tos <= 255);
    }
    if let Ok(hint) = parse_pmtu(text) {
        assert!((0..=3).contains(&hint.sockopt_value()));
    }
    match parse_interface(text) {
        Ok(Interface::Device(name)) => {
            assert!(!name.is_empty() && name.len() < 16 && !name.contains(['/', ':']));
        }
        Ok(Interface::Address(ip)) => assert_eq!(Ok(ip), text.parse::<std::net::IpAddr>()),
        Err(_) => {}
    }
    let _ = parse_mark(text);
});
