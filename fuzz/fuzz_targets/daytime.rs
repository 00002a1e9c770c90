//! `--format` patterns: a pattern accepted at start always renders one line of text.
#![no_main]
use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use netkit::wire::daytime::{parse_format, render, zone_name, Zone, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let secs = i64::from(i32::from_be_bytes([data[0], data[1], data[2], data[3]])) * 4;
    let offset = i32::from(i16::from_be_bytes([data[4], data[5]])) * 3;
    let name = zone_name(&data[6..8]);
    let Ok(text) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    let Ok(format) = parse_format(text) else {
        return;
    };
    let now = Utc.timestamp_opt(secs, 0).single().unwrap_or_default();
    for zone in [Zone::Utc, Zone::Local { offset, name }] {
        let line = render(&format, &zone, now);
        assert!(line.len() <= MAX_LINE);
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
});
