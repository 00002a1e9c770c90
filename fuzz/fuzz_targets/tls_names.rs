//! The names of a peer's certificate as a TLS error line shows them (`net::tls::presented_names`:
//! webpki's debug strings of names taken from the peer's bytes), one name per input line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let names: Vec<String> = text.split('\n').map(String::from).collect();
    let line = netkit::net::tls::presented_names(&names);
    // The peer's bytes never reach the terminal raw: no control character, whatever they hold.
    assert!(!line.chars().any(char::is_control), "{line:?}");
    // At most four names of 100 characters (an escape is at most 10 characters) and a count.
    assert!(line.chars().count() <= 4 * (100 * 10 + 2) + 32, "{}", line.len());
    if names.len() > 4 {
        assert!(line.ends_with(&format!("{} more", names.len() - 4)), "{line:?}");
    }
});
