//! Durations (`-w 1.5`, `500ms`, `3m`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = netkit::net::deadline::parse_duration(text);
});
