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
            // proxy is printed (when it appears nowhere else in the text).
            let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
            let secret = after_scheme.rsplit_once('@').and_then(|(userinfo, hostport)| {
                let (user, pass) = userinfo.split_once(':')?;
                let elsewhere = user.contains(pass) || hostport.contains(pass)
                    || url.split("://").next().is_some_and(|s| s.contains(pass));
                (pass.len() >= 4 && !pass.contains('%') && !elsewhere).then(|| pass.to_string())
            });
            let shown = match proxy::parse_url(url, Kind::Http) {
                Ok(p) => p.to_string(),
                Err(e) => format!("{e:#}"),
            };
            if let Some(secret) = secret {
                assert!(!shown.contains(&secret), "{shown}");
            }
            let _ = proxy::no_proxy_matches(list, url);
        }
    }
});
