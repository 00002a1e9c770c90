//! Address arguments as users type them, and name resolution under a deadline.
//!
//! cli.md accepts `HOST:PORT`, `[V6]:PORT`, `HOST PORT` as two arguments, service names for
//! ports, and for listeners `PORT`, `:PORT`, `HOST:PORT`, `[::]:PORT` with port 0 meaning "the
//! kernel chooses". Every malformed form is a usage error (exit 2) that says what is wrong,
//! raised before any traffic. Resolution goes through the system resolver (getaddrinfo, so
//! /etc/hosts and NSS apply) on a helper thread, so that a slow resolver cannot outlive `-w`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::thread;

use anyhow::{anyhow, Context, Result};

use crate::exit::{usage, UsageError};
use crate::net::deadline::Deadline;
use crate::net::services::{self, Proto};

/// Longest DNS name (RFC 1035, in presentation form without the trailing dot).
const MAX_NAME_LEN: usize = 253;

/// Which address families a command may use (`-4` / `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// IPv6 and IPv4.
    #[default]
    Any,
    /// IPv4 only (`-4`).
    V4,
    /// IPv6 only (`-6`).
    V6,
}

impl Family {
    /// From the `-4` / `-6` flags (clap makes them exclusive).
    pub fn from_flags(ipv4: bool, ipv6: bool) -> Family {
        match (ipv4, ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        }
    }

    /// Whether an address is allowed under this restriction.
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }
}

/// A host as given: an IP literal or a name for the resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP literal.
    Ip(IpAddr),
    /// A name (or a scoped IPv6 literal such as `fe80::1%eth0`, which getaddrinfo handles).
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) if name.contains(':') => write!(f, "[{name}]"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// Where to connect: a host and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host part.
    pub host: Host,
    /// The port, 1-65535.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Where to listen: an optional host and a port (0 = the kernel chooses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// The host to bind, or none for every address of both families.
    pub host: Option<Host>,
    /// The port; 0 lets the kernel choose.
    pub port: u16,
}

/// Parses a host: an IP literal, a scoped IPv6 literal, or a syntactically valid name.
pub fn parse_host(text: &str) -> Result<Host> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    if let Some((ip, scope)) = text.split_once('%') {
        if ip.parse::<Ipv6Addr>().is_ok() && !scope.is_empty() && scope.len() <= 16 {
            return Ok(Host::Name(text.to_string()));
        }
    }
    if text.is_empty() {
        return Err(usage("invalid host \"\": empty"));
    }
    if text.contains(':') {
        return Err(usage(format!(
            "invalid address \"{text}\": not an IPv6 address"
        )));
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(usage(format!(
            "invalid IPv4 address \"{text}\": expected four numbers 0-255 without leading zeros"
        )));
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.len() > MAX_NAME_LEN {
        return Err(usage(format!(
            "invalid host name: longer than {MAX_NAME_LEN} characters"
        )));
    }
    for label in name.split('.') {
        let valid_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if label.is_empty() || label.len() > 63 || !valid_chars || label.starts_with('-') {
            return Err(usage(format!(
                "invalid host name \"{}\": each dot-separated label must be 1-63 letters, digits, '-' or '_'",
                text.escape_debug()
            )));
        }
    }
    Ok(Host::Name(text.to_string()))
}

/// Parses a port: a number (1-65535, or 0-65535 when `allow_zero`) or a service name.
pub fn parse_port(text: &str, proto: Proto, allow_zero: bool) -> Result<u16> {
    let range = if allow_zero { "0-65535" } else { "1-65535" };
    if text.is_empty() {
        return Err(usage(format!(
            "invalid port \"\": expected a number {range} or a service name"
        )));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(port) if port <= 65535 && (allow_zero || port > 0) => Ok(port as u16),
            _ => Err(usage(format!("invalid port \"{text}\": must be {range}"))),
        };
    }
    services::system().port(text, proto).ok_or_else(|| {
        anyhow::Error::new(
            UsageError::new(format!(
                "invalid port \"{}\": not a number and not a {} service in /etc/services",
                text.escape_debug(),
                proto.as_str()
            ))
            .with_hint(format!(
                "use a number {range}, or a name such as http or smtp"
            )),
        )
    })
}

/// Splits `HOST:PORT`, `[V6]:PORT`, `[V6]`, `V6`, `HOST` into the host text and optional port
/// text. `None` means the argument has no port part.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(usage(format!("invalid address \"{text}\": missing ']'")));
        };
        if !inside.contains(':') {
            return Err(usage(format!(
                "invalid address \"{text}\": brackets are only for IPv6 addresses"
            )));
        }
        return match after {
            "" => Ok((inside, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((inside, Some(port))),
                None => Err(usage(format!(
                    "invalid address \"{text}\": expected ':PORT' after ']'"
                ))),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok((text, None)),
        1 => {
            let (host, port) = text.split_once(':').unwrap_or((text, ""));
            Ok((host, Some(port)))
        }
        // Several colons and no brackets: a bare IPv6 literal, whose port must come apart.
        _ => Ok((text, None)),
    }
}

/// Parses a client target from `HOST:PORT` / `[V6]:PORT`, or `HOST` and `PORT` as two arguments.
pub fn parse_target(first: &str, second: Option<&str>, proto: Proto) -> Result<Target> {
    let (host_text, port_text) = split_host_port(first)?;
    let port_text = match (port_text, second) {
        (Some(_), Some(_)) => {
            return Err(usage(format!(
                "the port is given twice: in \"{first}\" and as \"{}\"",
                second.unwrap_or_default()
            )))
        }
        (Some(port), None) | (None, Some(port)) => port,
        (None, None) if host_text.is_empty() => {
            return Err(usage("invalid address \"\": missing host and port"));
        }
        (None, None) => {
            let mut err = UsageError::new(format!("missing port in \"{first}\""));
            err = if host_text.contains(':') {
                err.with_hint(format!("write [{host_text}]:PORT or {host_text} PORT"))
            } else {
                err.with_hint(format!("write {host_text}:PORT or {host_text} PORT"))
            };
            return Err(anyhow::Error::new(err));
        }
    };
    if host_text.is_empty() {
        return Err(usage(format!("invalid address \"{first}\": missing host")));
    }
    Ok(Target {
        host: parse_host(host_text)?,
        port: parse_port(port_text, proto, false)?,
    })
}

/// Parses `HOST[:PORT]` / `[V6][:PORT]` / a bare IPv6 literal, with `default_port` when the
/// argument has none (service clients: DNS 53, SMTP 25, echo 7...).
pub fn parse_target_or(text: &str, default_port: u16, proto: Proto) -> Result<Target> {
    let (host_text, port_text) = split_host_port(text)?;
    if host_text.is_empty() {
        return Err(usage(format!("invalid address \"{text}\": missing host")));
    }
    let port = match port_text {
        Some(port) => parse_port(port, proto, false)?,
        None => default_port,
    };
    Ok(Target {
        host: parse_host(host_text)?,
        port,
    })
}

/// Parses a listener address: `PORT`, `:PORT`, `HOST:PORT`, `[V6]:PORT`, or `HOST` and `PORT`
/// as two arguments. Port 0 is allowed.
pub fn parse_listen(first: &str, second: Option<&str>, proto: Proto) -> Result<ListenSpec> {
    if let Some(port) = second {
        let host = parse_host(first.trim_start_matches('[').trim_end_matches(']'))?;
        return Ok(ListenSpec {
            host: Some(host),
            port: parse_port(port, proto, true)?,
        });
    }
    if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(ListenSpec {
            host: None,
            port: parse_port(first, proto, true)?,
        });
    }
    let (host_text, port_text) = split_host_port(first)?;
    let Some(port_text) = port_text else {
        // A bare service name is a port (`nk listen http`); anything else lacks one.
        if services::system().port(first, proto).is_some() {
            return Ok(ListenSpec {
                host: None,
                port: parse_port(first, proto, true)?,
            });
        }
        return Err(anyhow::Error::new(
            UsageError::new(format!("missing port in \"{first}\""))
                .with_hint("write PORT, :PORT, HOST:PORT or [::]:PORT"),
        ));
    };
    let host = if host_text.is_empty() {
        None
    } else {
        Some(parse_host(host_text)?)
    };
    Ok(ListenSpec {
        host,
        port: parse_port(port_text, proto, true)?,
    })
}

/// The address of any listener from its positional forms (`[HOST:]PORT`, `HOST PORT`) and
/// netcat's flags (`-p PORT`, `-s HOST`): `nk listen HOST -p PORT` takes the positional as the
/// host; a port or host given twice is a usage error.
pub fn listen_spec(
    address: Option<&str>,
    port: Option<&str>,
    port_flag: Option<&str>,
    host_flag: Option<Host>,
    proto: Proto,
) -> Result<ListenSpec> {
    let mut spec = match (address, port_flag) {
        (Some(first), None) => parse_listen(first, port, proto)?,
        (Some(first), Some(_))
            if port.is_some()
                || host_flag.is_some()
                || first.bytes().all(|b| b.is_ascii_digit()) =>
        {
            return Err(usage(format!(
                "the port is given twice: as \"{first}\" and with -p"
            )));
        }
        (Some(host), Some(flag)) => parse_listen(host, Some(flag), proto)?,
        (None, Some(flag)) => ListenSpec {
            host: None,
            port: parse_port(flag, proto, true)?,
        },
        (None, None) => {
            return Err(anyhow::Error::new(
                UsageError::new("missing port to listen on")
                    .with_hint("give PORT, HOST:PORT, or -p PORT"),
            ))
        }
    };
    if let Some(host) = host_flag {
        if spec.host.is_some() {
            return Err(usage(
                "the listening host is given twice: in the address and with -s",
            ));
        }
        spec.host = Some(host);
    }
    Ok(spec)
}

/// Orders addresses for Happy Eyeballs (RFC 8305 §4): IPv6 first, then alternate the families,
/// keeping the resolver's order within each; duplicates removed.
pub fn interleave_families(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let mut seen = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if !seen.contains(&addr) {
            seen.push(addr);
        }
    }
    let (mut v6, mut v4): (Vec<_>, Vec<_>) = seen.into_iter().partition(SocketAddr::is_ipv6);
    v6.reverse();
    v4.reverse();
    let mut ordered = Vec::with_capacity(v6.len() + v4.len());
    loop {
        match (v6.pop(), v4.pop()) {
            (None, None) => break,
            (a, b) => ordered.extend(a.into_iter().chain(b)),
        }
    }
    ordered
}

/// Resolves a target to every address allowed by `family`, in Happy Eyeballs order.
/// Unresolvable names, and names with no address of the wanted family, are errors (exit 1).
pub fn resolve(target: &Target, family: Family, deadline: Deadline) -> Result<Vec<SocketAddr>> {
    let addrs = match &target.host {
        Host::Ip(ip) => {
            if !family.allows(*ip) {
                return Err(usage(format!(
                    "{ip} is an IPv{} address but {} was given",
                    if ip.is_ipv4() { 4 } else { 6 },
                    if family == Family::V4 { "-4" } else { "-6" }
                )));
            }
            vec![SocketAddr::new(*ip, target.port)]
        }
        Host::Name(name) => {
            let all =
                lookup(name, target.port, deadline).with_context(|| format!("resolve {name}"))?;
            let wanted: Vec<_> = all
                .iter()
                .copied()
                .filter(|a| family.allows(a.ip()))
                .collect();
            if wanted.is_empty() {
                let which = if family == Family::V4 { "IPv4" } else { "IPv6" };
                return Err(anyhow!("resolve {name}: no {which} address"));
            }
            wanted
        }
    };
    Ok(interleave_families(addrs))
}

/// Every address of `name` from the system resolver (getaddrinfo), in its order, with `port`.
pub fn lookup(name: &str, port: u16, deadline: Deadline) -> Result<Vec<SocketAddr>> {
    let owned = name.to_string();
    let addrs = on_resolver_thread(deadline, move || {
        (owned.as_str(), port)
            .to_socket_addrs()
            .map(Vec::from_iter)
            .map_err(|e| resolver_message(&e))
    })?;
    if addrs.is_empty() {
        return Err(anyhow!("no address"));
    }
    Ok(addrs)
}

/// The host name of an address from the system resolver (getnameinfo with NI_NAMEREQD, so
/// /etc/hosts and NSS apply, as for forward lookups).
pub fn lookup_name(ip: IpAddr, deadline: Deadline) -> Result<String> {
    on_resolver_thread(deadline, move || name_info(ip))
}

/// The addresses of `name` within `family`, in the resolver's order, and its canonical name
/// (AI_CANONNAME: the first name of its /etc/hosts line, or the end of its CNAME chain), which
/// ping's header shows as iputils does.
pub fn lookup_canonical(
    name: &str,
    family: Family,
    deadline: Deadline,
) -> Result<(Vec<IpAddr>, Option<String>)> {
    let owned = std::ffi::CString::new(name).map_err(|_| anyhow!("a name cannot contain NUL"))?;
    on_resolver_thread(deadline, move || addr_info_canonical(&owned, family))
}

/// getaddrinfo(3) with AI_CANONNAME, which std does not expose.
fn addr_info_canonical(
    name: &std::ffi::CStr,
    family: Family,
) -> std::result::Result<(Vec<IpAddr>, Option<String>), String> {
    // SAFETY: an all-zero addrinfo is the documented way to start a hints structure.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = match family {
        Family::Any => libc::AF_UNSPEC,
        Family::V4 => libc::AF_INET,
        Family::V6 => libc::AF_INET6,
    };
    hints.ai_socktype = libc::SOCK_DGRAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated, `hints` is initialised, `list` receives the result.
    let code = unsafe { libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if code != 0 {
        // SAFETY: gai_strerror returns a pointer to a static, NUL-terminated message.
        let message = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(code)) };
        return Err(message.to_string_lossy().into_owned());
    }
    let mut addrs = Vec::new();
    let mut canonical = None;
    let mut node = list;
    while !node.is_null() {
        // SAFETY: `node` is an element of the list getaddrinfo returned, not yet freed.
        let entry = unsafe { &*node };
        if canonical.is_none() && !entry.ai_canonname.is_null() {
            // SAFETY: ai_canonname is a NUL-terminated string owned by the list.
            let text = unsafe { std::ffi::CStr::from_ptr(entry.ai_canonname) };
            canonical = Some(text.to_string_lossy().into_owned());
        }
        if !entry.ai_addr.is_null() {
            // SAFETY: ai_addr points to a socket address of ai_addrlen bytes; the copy is
            // bounded by the storage size.
            let addr = unsafe {
                socket2::SockAddr::try_init(|storage, len| {
                    let size = (entry.ai_addrlen as usize)
                        .min(std::mem::size_of::<libc::sockaddr_storage>());
                    std::ptr::copy_nonoverlapping(
                        entry.ai_addr.cast::<u8>(),
                        storage.cast::<u8>(),
                        size,
                    );
                    *len = size as libc::socklen_t;
                    Ok(())
                })
            };
            if let Some(ip) = addr.ok().and_then(|(_, a)| a.as_socket()).map(|a| a.ip()) {
                if !addrs.contains(&ip) {
                    addrs.push(ip);
                }
            }
        }
        node = entry.ai_next;
    }
    // SAFETY: `list` came from getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(list) };
    Ok((addrs, canonical))
}

/// Runs a blocking resolver call on a helper thread so the caller can give up at the deadline
/// (the thread then finishes on its own; the C resolver cannot be cancelled).
fn on_resolver_thread<T: Send + 'static>(
    deadline: Deadline,
    call: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = tx.send(call());
        })
        .context("start resolver thread")?;
    let received = match deadline.remaining()? {
        None => rx
            .recv()
            .map_err(|_| anyhow!("resolver thread ended without an answer"))?,
        Some(left) => rx
            .recv_timeout(left)
            .map_err(|_| anyhow!("timed out waiting for the resolver"))?,
    };
    received.map_err(|message| anyhow!("{message}"))
}

/// getnameinfo(3), which neither std nor socket2 offers.
fn name_info(ip: IpAddr) -> std::result::Result<String, String> {
    let addr = socket2::SockAddr::from(SocketAddr::new(ip, 0));
    let mut host = [0 as libc::c_char; libc::NI_MAXHOST as usize];
    // SAFETY: `addr` is a valid socket address of `addr.len()` bytes; `host` is a writable
    // buffer of the length passed; no service buffer is requested (null, 0).
    let code = unsafe {
        libc::getnameinfo(
            addr.as_ptr().cast(),
            addr.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if code != 0 {
        // SAFETY: gai_strerror returns a pointer to a static, NUL-terminated message.
        let message = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(code)) };
        return Err(message.to_string_lossy().into_owned());
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into `host`.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

/// std words getaddrinfo failures as "failed to lookup address information: Name or service
/// not known"; keep the resolver's own words only.
fn resolver_message(err: &std::io::Error) -> String {
    let text = err.to_string();
    text.strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text)
        .to_string()
}

/// The wildcard address of a family, for listeners with no host.
pub fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// Shows an address the way users expect: IPv4-mapped IPv6 (`::ffff:127.0.0.1`, seen on
/// dual-stack listeners) as plain IPv4, IPv6 in brackets.
pub fn display_addr(addr: SocketAddr) -> String {
    SocketAddr::new(addr.ip().to_canonical(), addr.port()).to_string()
}

/// Shows any socket address: IP as [`display_addr`] does, a Unix path as itself, an abstract
/// name as `@name`, an unnamed Unix socket as `(unnamed)`.
pub fn display_sockaddr(addr: &socket2::SockAddr) -> String {
    if let Some(ip) = addr.as_socket() {
        return display_addr(ip);
    }
    if let Some(path) = addr.as_pathname() {
        return path.display().to_string();
    }
    if let Some(name) = addr.as_abstract_namespace() {
        return format!("@{}", String::from_utf8_lossy(name));
    }
    "(unnamed)".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{classify, Status};

    fn target(first: &str, second: Option<&str>) -> Result<Target> {
        parse_target(first, second, Proto::Tcp)
    }

    fn usage_message(result: Result<impl fmt::Debug>) -> String {
        let err = result.unwrap_err();
        assert_eq!(classify(&err), Status::Usage, "{err:#}");
        format!("{err:#}")
    }

    #[test]
    fn every_client_form_parses() {
        let v4 = Host::Ip("127.0.0.1".parse().unwrap());
        let v6 = Host::Ip("::1".parse().unwrap());
        assert_eq!(
            target("127.0.0.1:80", None).unwrap(),
            Target {
                host: v4.clone(),
                port: 80
            }
        );
        assert_eq!(
            target("127.0.0.1", Some("80")).unwrap(),
            Target { host: v4, port: 80 }
        );
        assert_eq!(
            target("[::1]:8080", None).unwrap(),
            Target {
                host: v6.clone(),
                port: 8080
            }
        );
        assert_eq!(
            target("::1", Some("8080")).unwrap(),
            Target {
                host: v6.clone(),
                port: 8080
            }
        );
        assert_eq!(
            target("[::1]", Some("22")).unwrap(),
            Target { host: v6, port: 22 }
        );
        let named = target("example.com", Some("http")).unwrap();
        assert_eq!(
            named,
            Target {
                host: Host::Name("example.com".into()),
                port: 80
            }
        );
        assert_eq!(named.to_string(), "example.com:80");
        assert_eq!(target("[::1]:80", None).unwrap().to_string(), "[::1]:80");
    }

    #[test]
    fn malformed_client_forms_are_usage_errors() {
        assert!(usage_message(target("127.0.0.1:70000", None))
            .contains("invalid port \"70000\": must be 1-65535"));
        assert!(usage_message(target("127.0.0.1:0", None)).contains("must be 1-65535"));
        assert!(usage_message(target("127.0.0.1", None)).contains("missing port"));
        assert!(usage_message(target("", None)).contains("missing host and port"));
        assert!(usage_message(target("127.0.0.1:", None)).contains("invalid port \"\""));
        assert!(usage_message(target(":80", None)).contains("missing host"));
        assert!(usage_message(target("[::1", None)).contains("missing ']'"));
        assert!(usage_message(target("[::1]x", None)).contains("expected ':PORT'"));
        assert!(usage_message(target("[host]:80", None)).contains("only for IPv6"));
        assert!(usage_message(target("a:80", Some("81"))).contains("given twice"));
        assert!(usage_message(target("256.1.1.1", Some("80"))).contains("invalid IPv4"));
        assert!(usage_message(target("010.1.2.3", Some("80"))).contains("invalid IPv4"));
        assert!(usage_message(target("a b", Some("80"))).contains("invalid host name"));
        assert!(usage_message(target("a..b", Some("80"))).contains("invalid host name"));
        assert!(usage_message(target("", Some("80"))).contains("missing host"));
        assert!(usage_message(target("::g", Some("80"))).contains("not an IPv6"));
        assert!(usage_message(target("host", Some("nosuchservice"))).contains("not a number"));
        assert!(usage_message(target("host", Some("-1"))).contains("invalid port"));
        let long = "a".repeat(64);
        assert!(usage_message(target(&long, Some("80"))).contains("invalid host name"));
        let huge = ["a"; 130].join(".");
        assert!(usage_message(target(&huge, Some("80"))).contains("longer than"));
    }

    #[test]
    fn every_listener_form_parses() {
        let spec = |first, second| parse_listen(first, second, Proto::Tcp).unwrap();
        assert_eq!(
            spec("8080", None),
            ListenSpec {
                host: None,
                port: 8080
            }
        );
        assert_eq!(
            spec(":8080", None),
            ListenSpec {
                host: None,
                port: 8080
            }
        );
        assert_eq!(
            spec("0", None),
            ListenSpec {
                host: None,
                port: 0
            }
        );
        let any6 = Some(Host::Ip("::".parse().unwrap()));
        assert_eq!(
            spec("[::]:0", None),
            ListenSpec {
                host: any6.clone(),
                port: 0
            }
        );
        assert_eq!(
            spec("::", Some("9")),
            ListenSpec {
                host: any6,
                port: 9
            }
        );
        let lo = Some(Host::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(
            spec("127.0.0.1:9", None),
            ListenSpec {
                host: lo.clone(),
                port: 9
            }
        );
        assert_eq!(
            spec("127.0.0.1", Some("9")),
            ListenSpec { host: lo, port: 9 }
        );
        assert_eq!(
            spec("http", None),
            ListenSpec {
                host: None,
                port: 80
            }
        );
    }

    #[test]
    fn netcat_listener_flags_combine_with_the_positional_forms() {
        let lo = Some(Host::Ip("127.0.0.1".parse().unwrap()));
        let spec = |a, p, pf, hf| listen_spec(a, p, pf, hf, Proto::Tcp);
        assert_eq!(
            spec(None, None, Some("9"), None).unwrap(),
            ListenSpec {
                host: None,
                port: 9
            }
        );
        assert_eq!(
            spec(Some("127.0.0.1"), None, Some("9"), None).unwrap(),
            ListenSpec {
                host: lo.clone(),
                port: 9
            }
        );
        assert_eq!(
            spec(Some("9"), None, None, lo.clone()).unwrap(),
            ListenSpec {
                host: lo.clone(),
                port: 9
            }
        );
        assert!(usage_message(spec(Some("8080"), None, Some("9"), None)).contains("given twice"));
        assert!(usage_message(spec(Some("127.0.0.1:8"), None, None, lo))
            .contains("host is given twice"));
        assert!(usage_message(spec(None, None, None, None)).contains("missing port"));
    }

    #[test]
    fn malformed_listener_forms_are_usage_errors() {
        let spec = |first, second| parse_listen(first, second, Proto::Tcp);
        assert!(usage_message(spec("65536", None)).contains("must be 0-65535"));
        assert!(usage_message(spec("127.0.0.1", None)).contains("missing port"));
        assert!(usage_message(spec("", None)).contains("missing port"));
        assert!(usage_message(spec("[::1]:x", None)).contains("not a number"));
    }

    #[test]
    fn happy_eyeballs_order_starts_with_ipv6_and_alternates() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let ordered = interleave_families(vec![
            a("127.0.0.1:1"),
            a("127.0.0.2:1"),
            a("[::1]:1"),
            a("127.0.0.1:1"),
            a("[::2]:1"),
            a("127.0.0.3:1"),
        ]);
        assert_eq!(
            ordered,
            vec![
                a("[::1]:1"),
                a("127.0.0.1:1"),
                a("[::2]:1"),
                a("127.0.0.2:1"),
                a("127.0.0.3:1")
            ]
        );
    }

    #[test]
    fn family_restrictions_apply_to_literals() {
        let t = target("::1", Some("80")).unwrap();
        let err = resolve(&t, Family::V4, Deadline::NEVER).unwrap_err();
        assert_eq!(classify(&err), Status::Usage);
        assert_eq!(
            resolve(&t, Family::V6, Deadline::NEVER).unwrap(),
            vec!["[::1]:80".parse().unwrap()]
        );
    }

    #[test]
    fn mapped_addresses_display_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
        assert_eq!(display_addr(mapped), "127.0.0.1:5");
        assert_eq!(display_addr("[::1]:5".parse().unwrap()), "[::1]:5");
    }
}
