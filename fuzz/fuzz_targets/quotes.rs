//! qotd quote files: every quote kept is under RFC 865's 512 characters (counted as the user
//! sees them, a line break as one) and goes out as CRLF lines.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::quotes::{parse, to_wire, LIMIT};

fuzz_target!(|text: &str| {
    let (quotes, _refused) = parse(text);
    for quote in &quotes {
        assert!(!quote.is_empty() && quote.chars().count() < LIMIT);
        let wire = to_wire(quote);
        assert!(wire.ends_with(b"\r\n"));
        assert!(wire.windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r') && wire[0] != b'\n');
    }
});
