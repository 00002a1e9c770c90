//! URLs typed by the user and Location values from servers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::http::{encode_location, parse_url, resolve_location, Url};

fn text_of(url: &Url) -> String {
    let scheme = if url.tls { "https" } else { "http" };
    if url.host.contains(':') {
        format!("{scheme}://[{}]:{}{}", url.host, url.port, url.path)
    } else {
        format!("{scheme}://{}:{}{}", url.host, url.port, url.path)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        if let Ok(url) = parse_url(text) {
            assert!(url.path.starts_with('/'), "{url:?}");
            assert!(!url.path.contains('#'), "a fragment is never sent: {url:?}");
            assert!(url.port > 0);
            // Printed back in full form, it parses to itself.
            let again = parse_url(&text_of(&url)).expect("a printed URL parses");
            assert_eq!(again, url);
        }
    } else {
        let _ = encode_location(rest);
        let base = parse_url("http://example.com/a/b?q").unwrap();
        if let Ok(url) = resolve_location(&base, rest) {
            assert!(url.path.starts_with('/'), "{url:?}");
            assert!(!url.path.contains('#'), "a fragment is never sent: {url:?}");
            assert!(!url.path.contains([' ', '\r', '\n']), "{url:?}");
        }
    }
});
