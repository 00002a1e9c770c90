//! `nk ping`'s target lists: `--file` lists (fping's format) and `-g` blocks and ranges. A
//! list holds only first words, never blank or comments, within the cap; `-g` gives ascending
//! addresses of one family, within the caps (a /16 without --force).
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::cmd::ping::targets::{generate, parse_list, DEFAULT_LIMIT, HARD_LIMIT};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(list) = parse_list(rest) {
            assert!(list.len() <= HARD_LIMIT);
            for target in &list {
                assert!(!target.is_empty() && !target.starts_with('#'));
                assert!(!target.contains(|c: char| c.is_ascii_whitespace()));
            }
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let force = mode & 2 != 0;
    let args: Vec<String> = text.split(' ').map(str::to_string).collect();
    if let Ok(addrs) = generate(&args, force) {
        assert!(!addrs.is_empty() && addrs.len() <= HARD_LIMIT);
        assert!(force || addrs.len() as u128 <= DEFAULT_LIMIT);
        assert!(addrs.windows(2).all(|w| w[0] < w[1] && w[0].is_ipv4() == w[1].is_ipv4()));
    }
});
