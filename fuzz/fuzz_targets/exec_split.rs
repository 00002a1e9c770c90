//! `-e 'PROG ARGS'` lines split as ncat's --exec does (backslash escapes, no shell).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &str| {
    let words = netkit::net::exec::split_exec_line(line);
    // Splitting only removes characters (separators, escaping backslashes).
    let kept: usize = words.iter().map(|w| w.chars().count()).sum();
    assert!(kept <= line.chars().count());
    // A line without backslashes splits exactly as on ASCII whitespace.
    if !line.contains('\\') {
        let plain: Vec<&str> = line.split_ascii_whitespace().collect();
        assert_eq!(words, plain);
    }
});
