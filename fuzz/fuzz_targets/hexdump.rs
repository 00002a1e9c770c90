//! Hex dumps of traffic: at any offset, one text line per 16 bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::hexdump::{format, Mark};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let offset = u64::from_be_bytes(data[..8].try_into().unwrap());
    for mark in [Mark::Sent, Mark::Received] {
        let text = format(mark, offset, &data[8..]);
        assert!(text.is_ascii());
    }
});
