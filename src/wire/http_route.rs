//! curl's two ways of sending a request somewhere its URL does not say, for testing one
//! virtual host on one backend: `--resolve HOST:PORT:ADDR[,ADDR...]` (these addresses instead
//! of the resolver's for HOST:PORT) and `--connect-to HOST:PORT:HOST2:PORT2` (dial HOST2:PORT2
//! instead of HOST:PORT). In both, Host and SNI stay the URL's: only the socket's destination
//! changes. The specs are user text, parsed here with no I/O (and fuzzed), as curl writes them:
//! IPv6 addresses in brackets, `*` for any host in `--resolve`, empty fields in
//! `--connect-to` for "any" (on the left) and "the same" (on the right).

use std::net::IpAddr;

/// The longest spec looked at: far above any real one (a host name is at most 253 bytes).
const MAX_SPEC: usize = 4096;

/// The most addresses one `--resolve` spec may give.
const MAX_ADDRS: usize = 64;

/// One `--resolve` entry: requests to `host:port` go to `addrs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The host, lower-case, without brackets; `*` matches every host.
    pub host: String,
    /// The port it applies to.
    pub port: u16,
    /// The addresses used, in the order given.
    pub addrs: Vec<IpAddr>,
}

/// One `--connect-to` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detour {
    /// The host it applies to (lower-case, without brackets), or every host.
    pub host: Option<String>,
    /// The port it applies to, or every port.
    pub port: Option<u16>,
    /// The host dialled instead, or the same one.
    pub to_host: Option<String>,
    /// The port dialled instead, or the same one.
    pub to_port: Option<u16>,
}

impl Pin {
    /// Whether this entry applies to `host:port` (`host` in the URL's canonical form).
    pub fn matches(&self, host: &str, port: u16) -> bool {
        self.port == port && (self.host == "*" || same_host(&self.host, host))
    }
}

impl Detour {
    /// Where `host:port` is dialled when this entry applies to it, or `None`.
    pub fn apply(&self, host: &str, port: u16) -> Option<(String, u16)> {
        let host_ok = self.host.as_deref().is_none_or(|h| same_host(h, host));
        let port_ok = self.port.is_none_or(|p| p == port);
        (host_ok && port_ok).then(|| {
            (
                self.to_host.clone().unwrap_or_else(|| host.to_string()),
                self.to_port.unwrap_or(port),
            )
        })
    }
}

/// Host names compare without case; IPv6 literals by value (`::1` is `0::1`).
fn same_host(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// The first field of `rest`, up to a colon outside brackets: the field without its
/// brackets, whether it had them, and what follows (from the colon on, or empty).
fn next_field<'a>(rest: &'a str, text: &str) -> Result<(&'a str, bool, &'a str), String> {
    if let Some(inner) = rest.strip_prefix('[') {
        let close = inner
            .find(']')
            .ok_or_else(|| format!("unclosed [ in \"{}\"", text.escape_debug()))?;
        let after = &inner[close + 1..];
        if !(after.is_empty() || after.starts_with(':')) {
            return Err(format!(
                "\"{}\" after \"[{}]\": only \":\" may follow a bracketed address",
                after.escape_debug(),
                inner[..close].escape_debug()
            ));
        }
        Ok((&inner[..close], true, after))
    } else {
        let end = rest.find(':').unwrap_or(rest.len());
        Ok((&rest[..end], false, &rest[end..]))
    }
}

/// Splits `text` at colons outside brackets (`[::1]:80` is two fields), returning each field
/// with its brackets removed and whether it had them.
fn fields(text: &str) -> Result<Vec<(&str, bool)>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let (field, bracketed, after) = next_field(rest, text)?;
        out.push((field, bracketed));
        match after.strip_prefix(':') {
            Some(next) => rest = next,
            None => return Ok(out),
        }
    }
}

/// A port in digits, 1-65535.
fn port(text: &str, what: &str) -> Result<u16, String> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{what} \"{}\" is not a port (1-65535)",
            text.escape_debug()
        ));
    }
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{what} \"{text}\" is not a port (1-65535)"))
}

/// A host field: a name or an address, no control character, space, slash or `@`.
fn host(text: &str, bracketed: bool, what: &str) -> Result<String, String> {
    if bracketed && text.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(format!(
            "{what} \"[{}]\" is not an IPv6 address",
            text.escape_debug()
        ));
    }
    if !bracketed && text.contains(':') {
        return Err(format!("write the IPv6 {what} in brackets: [{text}]"));
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() || matches!(c, ' ' | '/' | '@' | '[' | ']' | ','))
    {
        return Err(format!(
            "{what} \"{}\" contains {:?}",
            text.escape_debug(),
            c
        ));
    }
    Ok(text.to_ascii_lowercase())
}

fn check_length(text: &str, flag: &str) -> Result<(), String> {
    if text.len() > MAX_SPEC {
        return Err(format!("{flag}: the spec is longer than {MAX_SPEC} bytes"));
    }
    Ok(())
}

/// Parses `HOST:PORT:ADDR[,ADDR...]` (`--resolve`); HOST may be `*`, an IPv6 ADDR is written
/// in brackets (or bare, as curl also takes it).
pub fn parse_resolve(text: &str) -> Result<Pin, String> {
    check_length(text, "--resolve")?;
    let shape = || {
        format!(
            "--resolve \"{}\": write HOST:PORT:ADDR[,ADDR...], e.g. example.com:443:127.0.0.1",
            text.escape_debug()
        )
    };
    // The address list is all after the second colon: bare IPv6 addresses have colons.
    let (host_text, bracketed, after) = next_field(text, text)?;
    let (port_text, _, after) = match after.strip_prefix(':') {
        Some(rest) => next_field(rest, text)?,
        None => return Err(shape()),
    };
    let list = after.strip_prefix(':').ok_or_else(shape)?;
    let host = match host_text {
        "*" if !bracketed => "*".to_string(),
        "" => return Err(format!("{}: the host is empty", shape())),
        _ => host(host_text, bracketed, "host")?,
    };
    let port = port(port_text, "--resolve port")?;
    let mut addrs = Vec::new();
    for item in list.split(',') {
        let item = item.trim();
        let bare = item
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(item);
        let ip = bare.parse::<IpAddr>().map_err(|_| {
            format!(
                "--resolve \"{}\": \"{}\" is not an IP address",
                text.escape_debug(),
                item.escape_debug()
            )
        })?;
        if addrs.len() == MAX_ADDRS {
            return Err(format!("--resolve: more than {MAX_ADDRS} addresses"));
        }
        addrs.push(ip);
    }
    Ok(Pin { host, port, addrs })
}

/// Parses `HOST:PORT:HOST2:PORT2` (`--connect-to`): an empty HOST or PORT applies to every
/// one, an empty HOST2 or PORT2 keeps the URL's.
pub fn parse_connect_to(text: &str) -> Result<Detour, String> {
    check_length(text, "--connect-to")?;
    let parts = fields(text)?;
    if parts.len() != 4 {
        return Err(format!(
            "--connect-to \"{}\": write HOST:PORT:HOST2:PORT2 (any may be empty), e.g. \
             example.com:443:127.0.0.1:8443",
            text.escape_debug()
        ));
    }
    let optional_host = |(t, b): (&str, bool), what: &str| -> Result<Option<String>, String> {
        match t {
            "" if !b => Ok(None),
            _ => host(t, b, what).map(Some),
        }
    };
    let optional_port = |t: &str, what: &str| -> Result<Option<u16>, String> {
        match t {
            "" => Ok(None),
            _ => port(t, what).map(Some),
        }
    };
    Ok(Detour {
        host: optional_host(parts[0], "--connect-to host")?,
        port: optional_port(parts[1].0, "--connect-to port")?,
        to_host: optional_host(parts[2], "--connect-to host2")?,
        to_port: optional_port(parts[3].0, "--connect-to port2")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_specs_as_curl_writes_them() {
        let pin = parse_resolve("Example.com:443:127.0.0.1").unwrap();
        assert_eq!(pin.host, "example.com");
        assert_eq!(pin.port, 443);
        assert_eq!(pin.addrs, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert!(pin.matches("EXAMPLE.com", 443));
        assert!(!pin.matches("example.com", 80));
        let two = parse_resolve("h:80:[::1],127.0.0.2").unwrap();
        assert_eq!(two.addrs.len(), 2);
        assert!(two.addrs[0].is_ipv6());
        assert_eq!(parse_resolve("h:80:::1").unwrap().addrs.len(), 1);
        assert!(parse_resolve("*:80:127.0.0.1").unwrap().matches("any", 80));
        let v6host = parse_resolve("[::1]:80:127.0.0.1").unwrap();
        assert!(v6host.matches("0::1", 80));
        for bad in [
            "h:80",
            "h",
            ":80:1.2.3.4",
            "h:0:1.2.3.4",
            "h:x:1.2.3.4",
            "h:80:example.com",
            "h:80:",
            "h:80:1.2.3.4,",
            "[h]:80:1.2.3.4",
            "[::1:80:1.2.3.4",
            "h h:80:1.2.3.4",
            "h\r\n:80:1.2.3.4",
        ] {
            assert!(parse_resolve(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connect_to_specs_as_curl_writes_them() {
        let d = parse_connect_to("example.com:443:127.0.0.1:8443").unwrap();
        assert_eq!(
            d.apply("Example.COM", 443),
            Some(("127.0.0.1".into(), 8443))
        );
        assert_eq!(d.apply("example.com", 80), None);
        assert_eq!(d.apply("other", 443), None);
        let any = parse_connect_to("::[::1]:").unwrap();
        assert_eq!(any.apply("h", 81), Some(("::1".into(), 81)));
        let port_only = parse_connect_to("h:80::8080").unwrap();
        assert_eq!(port_only.apply("h", 80), Some(("h".into(), 8080)));
        for bad in [
            "a:1:b",
            "a:1:b:2:3",
            "a:0:b:2",
            "a:1:b:70000",
            "a:1:::1:2",
            "[a]:1:b:2",
            "a/b:1:c:2",
        ] {
            assert!(parse_connect_to(bad).is_err(), "{bad}");
        }
    }
}
