//! What a proxy answers (SOCKS4, SOCKS5 method / authentication / CONNECT replies, an HTTP
//! CONNECT response head) and what a user types (a proxy URL, a no_proxy list). The first
//! byte picks the parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::net::proxy::http_connect;
use netkit::net::proxy::socks::{self, Progress};
use netkit::net::proxy::{self, Kind};

/// Feeds `data` to `decode` as the handshake does: a growing prefix, as long as each `Need`
/// asks for more than it has (otherwise the handshake would never end).
fn walk<T, E>(data: &[u8], decode: impl Fn(&[u8]) -> Result<Progress<T>, E>) {
    let mut have = 0;
    loop {
        match decode(&data[..have]) {
            Ok(Progress::Need(total)) => {
                assert!(total > have, "Need({total}) with {have} bytes: no progress");
                if total > data.len() {
                    return;
                }
                have = total;
            }
            Ok(Progress::Done(_)) | Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => walk(rest, socks::socks4_reply),
        1 => walk(rest, socks::socks5_method),
        2 => walk(rest, socks::socks5_auth_reply),
        3 => walk(rest, socks::socks5_reply),
        4 => {
            if let Ok(Some(reply)) = http_connect::parse_reply(rest) {
                assert!(reply.head_len <= rest.len());
                assert!(reply.head_len <= http_connect::HEAD_CAP);
                // The head alone parses the same: nothing after it was taken.
                let again = http_connect::parse_reply(&rest[..reply.head_len]);
                assert_eq!(again.ok().flatten().as_ref(), Some(&reply));
                let _ = http_connect::judge(&reply, None);
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let (url, list) = text.split_once('\n').unwrap_or((&text, ""));
            // Whatever happens, the password is never shown: not in the error, not when the
            // proxy is printed. The URL's password is replaced by a marker that appears
            // nowhere else, so any sight of the marker is a leak (the fuzzer's own password
            // text may well appear elsewhere: in the user, the host, or a message's words).
            const MARKER: &str = "Zq7PASSWORDx9";
            let shown = |url: &str| match proxy::parse_url(url, Kind::Http) {
                Ok(p) => p.to_string(),
                Err(e) => format!("{e:#}"),
            };
            let _ = shown(url);
            let (head, after_scheme) = match url.split_once("://") {
                Some((scheme, rest)) => (format!("{scheme}://"), rest),
                None => (String::new(), url),
            };
            let (body, slash) = match after_scheme.strip_suffix('/') {
                Some(body) => (body, "/"),
                None => (after_scheme, ""),
            };
            if let Some((userinfo, hostport)) = body.rsplit_once('@') {
                if let Some((user, _)) = userinfo.split_once(':') {
                    if !url.contains(MARKER) {
                        let marked = format!("{head}{user}:{MARKER}@{hostport}{slash}");
                        let text = shown(&marked);
                        assert!(!text.contains(MARKER), "{text}");
                    }
                }
            }
            let _ = proxy::no_proxy_matches(list, url);
        }
    }
});
