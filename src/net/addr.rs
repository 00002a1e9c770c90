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
use crate::net::service_names::{self, Proto};

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

/// The most bytes of host text looked at: a name in Unicode may be longer than its ASCII form
/// (at most [`MAX_NAME_LEN`]), but not by more than a few bytes per character; anything longer
/// is refused before UTS 46 processing spends time on it.
const MAX_HOST_INPUT: usize = 4 * MAX_NAME_LEN;

/// Parses a host: an IP literal (IPv6, or IPv4 in any form inet_aton(3) takes: `127.1`,
/// `2130706433`, `0x7f.1`, `0`), a scoped IPv6 literal, or a host name, converted to its ASCII
/// form by UTS 46 (IDNA) when it has non-ASCII characters (`bücher.example` is
/// `xn--bcher-kva.example`). Every command takes hosts through here, so a literal means the
/// same thing to each, whatever the resolver would make of it. With `-v`, a host that is not
/// used as typed is shown in both forms (`127.1 is 127.0.0.1`).
pub fn parse_host(text: &str) -> Result<Host> {
    let host = host_of(text)?;
    explain(text, &host);
    Ok(host)
}

/// [`parse_host`] without the `-v` line: for checking every argument before the run, when
/// each is parsed again (and shown) as its turn comes.
pub fn host_of(text: &str) -> Result<Host> {
    if let Ok(ip) = text.parse::<Ipv6Addr>() {
        return Ok(Host::Ip(IpAddr::V6(ip)));
    }
    if let Some((ip, scope)) = text.split_once('%') {
        if ip.parse::<Ipv6Addr>().is_ok() {
            if !crate::wire::ipnet::is_scope_id(scope) {
                return Err(usage(format!(
                    "invalid address \"{}\": the scope after % must be an interface name \
                     (up to 15 letters, digits, _ - .) or a number",
                    text.escape_debug()
                )));
            }
            return Ok(Host::Name(text.to_string()));
        }
    }
    if text.is_empty() {
        return Err(usage("invalid host \"\": empty"));
    }
    if text.len() > MAX_HOST_INPUT {
        return Err(usage(format!(
            "invalid host name: longer than {MAX_HOST_INPUT} bytes"
        )));
    }
    if looks_like_ipv4(text) {
        return ipv4_literal(text).map(|ip| Host::Ip(IpAddr::V4(ip)));
    }
    if text.contains(':') {
        return Err(usage(format!(
            "invalid address \"{}\": not an IPv6 address",
            text.escape_debug()
        )));
    }
    let ascii = name_to_ascii(text)?;
    // UTS 46 maps full-width digits and dots to ASCII ones: `１２７.１` is then the number
    // it reads as, as in a browser's address bar.
    if !text.is_ascii() && looks_like_ipv4(&ascii) {
        return ipv4_literal(&ascii).map(|ip| Host::Ip(IpAddr::V4(ip)));
    }
    check_ascii_name(text, &ascii)?;
    Ok(Host::Name(ascii))
}

/// An IP literal in the one syntax every command shares: an IPv6 address, or an IPv4 address
/// in any form inet_aton(3) takes. `None` for anything else (a name, a typo).
pub fn ip_literal(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(ip));
    }
    inet_aton(text).map(IpAddr::V4)
}

/// An address option (`-s ADDR`, `--join GROUP`) as clap's value parser: the literals
/// [`ip_literal`] takes, shown canonically with `-v`.
pub fn parse_ip_arg(text: &str) -> Result<IpAddr, String> {
    match ip_literal(text) {
        Some(ip) => {
            explain(text, &Host::Ip(ip));
            Ok(ip)
        }
        None if looks_like_ipv4(text) => match ipv4_literal(text) {
            Ok(ip) => Ok(IpAddr::V4(ip)),
            Err(err) => Err(format!("{err:#}")),
        },
        None => Err(format!(
            "\"{}\" is not an IP address (IPv4 such as 127.0.0.1 or 127.1, or IPv6 such as ::1)",
            text.escape_debug()
        )),
    }
}

/// inet_aton(3), strictly: one to four parts separated by dots, each decimal, octal (a leading
/// `0`) or hex (`0x`); the last part fills the bytes the earlier ones leave (`127.1` is
/// 127.0.0.1, `10.1.65535` is 10.1.255.255, `2130706433` is 127.0.0.1, `0` is 0.0.0.0).
/// glibc also takes whatever follows a space (`127.1 junk`); nk takes the whole text or
/// nothing, because an argument with trailing junk is a mistake, not an address.
pub fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    inet_aton_why(text).ok()
}

/// [`inet_aton`] with the reason a text that looks like an IPv4 address is not one.
fn inet_aton_why(text: &str) -> std::result::Result<Ipv4Addr, String> {
    // Five parts are already too many: no need to look at more (a long input costs nothing).
    let parts: Vec<&str> = text.splitn(5, '.').collect();
    if parts.len() > 4 {
        return Err("more than four parts".into());
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        if part.is_empty() {
            return Err(if text.ends_with('.') {
                "a trailing dot".into()
            } else {
                "an empty part".into()
            });
        }
        let (digits, radix, kind) =
            if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                (hex, 16, "a hex")
            } else if part.len() > 1 && part.starts_with('0') {
                (&part[1..], 8, "an octal (a leading 0)")
            } else {
                (*part, 10, "a decimal")
            };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(format!("\"{}\" is not {kind} number", part.escape_debug()));
        }
        // Leading zeros are allowed in any number of (inet_aton reads 000001 as 1); the value
        // is what overflows.
        let value = u32::from_str_radix(digits, radix)
            .map_err(|_| format!("\"{part}\" is larger than 32 bits"))?;
        values.push((part, value));
    }
    let Some(((last_text, last), leading)) = values.split_last() else {
        return Err("empty".into());
    };
    // "0x100" is 256: the value is worth saying when it is not what was typed.
    let quoted = |part: &str, value: u32| match part == value.to_string() {
        true => format!("\"{part}\""),
        false => format!("\"{part}\" ({value})"),
    };
    if let Some((part, value)) = leading.iter().find(|(_, v)| *v > 255) {
        return Err(format!(
            "{} is over 255 (each part before the last is one byte)",
            quoted(part, *value)
        ));
    }
    let room = 32 - 8 * leading.len() as u32;
    if room < 32 && *last >> room != 0 {
        return Err(format!(
            "{} is over {} (after {}, the last part fills {})",
            quoted(last_text, *last),
            (1u64 << room) - 1,
            ["", "one part", "two parts", "three parts"][leading.len()],
            ["", "one byte", "two bytes", "three bytes"][(room / 8) as usize]
        ));
    }
    let mut address = *last;
    for (i, (_, v)) in leading.iter().enumerate() {
        address |= v << (24 - 8 * i as u32);
    }
    Ok(Ipv4Addr::from(address))
}

/// Whether a text is meant as an IPv4 address: every dot-separated part is a number in one of
/// inet_aton's syntaxes (or empty, a typo). Such a text is an address or an error, never a
/// name handed to the resolver (getaddrinfo would read `0x7f.1` as an address too, and a
/// name with numeric labels only cannot be registered).
fn looks_like_ipv4(text: &str) -> bool {
    let numeric = |part: &str| match part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => part.bytes().all(|b| b.is_ascii_digit()),
    };
    !text.is_empty() && text.split('.').all(numeric) && text.bytes().any(|b| b.is_ascii_digit())
}

/// An IPv4 literal in inet_aton's forms, or a usage error saying what is wrong with it.
fn ipv4_literal(text: &str) -> Result<Ipv4Addr> {
    inet_aton_why(text).map_err(|why| {
        anyhow::Error::new(
            UsageError::new(format!(
                "invalid IPv4 address \"{}\": {why}",
                text.escape_debug()
            ))
            .with_hint("write four numbers 0-255 (127.0.0.1), or a short form such as 127.1"),
        )
    })
}

/// A host name in ASCII: names with non-ASCII characters go through UTS 46 (IDNA 2008 with
/// the Unicode mappings, non-transitional, as browsers, curl and the `url` crate do: `ß` stays
/// `ß`, `BÜCHER` is `bücher`); ASCII names are kept as typed (case included), as curl does.
fn name_to_ascii(text: &str) -> Result<String> {
    if text.is_ascii() {
        return Ok(text.to_string());
    }
    idna::uts46::Uts46::new()
        .to_ascii(
            text.as_bytes(),
            idna::uts46::AsciiDenyList::URL,
            // As for ASCII labels: no '-' first (nor last, which UTS 46 ties to it); the
            // third and fourth positions are free (real names have them).
            idna::uts46::Hyphens::CheckFirstLast,
            // The lengths are checked on the result by check_ascii_name, with a clearer message.
            idna::uts46::DnsLength::Ignore,
        )
        .map(|ascii| ascii.into_owned())
        .map_err(|_| {
            anyhow::Error::new(
                UsageError::new(format!(
                    "invalid host name \"{}\": not a valid internationalised name (UTS 46)",
                    text.escape_debug()
                ))
                .with_hint(
                    "each label is letters, digits and '-'; a symbol, a space, a mixed-direction \
                     label or an over-long label is not allowed",
                ),
            )
        })
}

/// The label rules for the ASCII form of a name (letters, digits, `-`, `_`; 1-63 bytes a
/// label, [`MAX_NAME_LEN`] in all); `typed` is what the error quotes.
fn check_ascii_name(typed: &str, ascii: &str) -> Result<()> {
    let name = ascii.strip_suffix('.').unwrap_or(ascii);
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
                typed.escape_debug()
            )));
        }
    }
    Ok(())
}

/// Says with `-v` what a host typed one way is used as (`127.1 is 127.0.0.1`, `bücher.example
/// is xn--bcher-kva.example`), once: parsers may be called twice for one argument (a try,
/// then the real parse), and the line would only repeat.
pub fn explain(typed: &str, host: &Host) {
    let used = match host {
        Host::Ip(ip) => ip.to_string(),
        Host::Name(name) => name.clone(),
    };
    let bare = typed
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(typed);
    if used == bare || crate::log::verbosity() == 0 {
        return;
    }
    static LAST: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if *last != typed {
        typed.clone_into(&mut last);
        crate::info!("{typed} is {used}");
    }
}

/// A name from the resolver as people read it: `xn--` labels decoded (UTS 46 ToUnicode), as
/// iputils shows names (AI_CANONIDN). A name that does not decode cleanly is shown as it is.
pub fn display_name(ascii: &str) -> String {
    if !ascii.to_ascii_lowercase().contains("xn--") || ascii.len() > MAX_HOST_INPUT {
        return ascii.to_string();
    }
    match idna::domain_to_unicode(ascii) {
        (unicode, Ok(())) => unicode,
        (_, Err(_)) => ascii.to_string(),
    }
}

/// Converts a name to the ASCII form the DNS carries (UTS 46, as [`parse_host`] does), for
/// the paths that take names [`parse_host`] would refuse (`nk resolve -t SRV _sip._tcp.x`,
/// `*.example`); the name's own syntax is checked by the caller, and [`explain`] shows it.
pub fn dns_name_to_ascii(text: &str) -> Result<String> {
    if text.len() > MAX_HOST_INPUT {
        return Err(usage(format!(
            "invalid name: longer than {MAX_HOST_INPUT} bytes"
        )));
    }
    name_to_ascii(text)
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
    service_names::system().port(text, proto).ok_or_else(|| {
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
        if service_names::system().port(first, proto).is_some() {
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
    // A scoped IPv6 address keeps its interface, by name as `ip` shows it (fe80::1%eth0).
    if let SocketAddr::V6(v6) = addr {
        if v6.scope_id() != 0 && v6.ip().to_ipv4_mapped().is_none() {
            return format!("[{}%{}]:{}", v6.ip(), scope_name(v6.scope_id()), v6.port());
        }
    }
    SocketAddr::new(addr.ip().to_canonical(), addr.port()).to_string()
}

/// An interface index as its name (if_indextoname), or the number when it has none.
pub fn scope_name(index: u32) -> String {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write; it returns null or
    // a pointer into `buf`, which holds a NUL-terminated name.
    let named = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if named.is_null() {
        return index.to_string();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
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

    #[test]
    fn scope_ids_are_interface_names_or_numbers() {
        // Issue 19 item 6: a scope that is no interface name cannot be printed back.
        for good in [
            "fe80::1%eth0",
            "fe80::1%2",
            "fe80::1%br-lan.10",
            "fe80::1%wlp0s20f3",
        ] {
            assert!(host_of(good).is_ok(), "{good}");
        }
        for bad in [
            "fe80::1%a]",
            "fe80::1%]",
            "fe80::1%",
            "fe80::1%a b",
            "fe80::1%a%b",
            "fe80::1%a/b",
            "fe80::1%\n",
            "fe80::1%0123456789abcdef",
            "fe80::1%4294967296",
        ] {
            assert!(host_of(bad).is_err(), "{bad:?}");
        }
        assert!(parse_target("[fe80::1%a]]:80", None, Proto::Tcp).is_err());
    }

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
        assert!(usage_message(target("1.16777216", Some("80"))).contains("invalid IPv4"));
        assert!(usage_message(target("127.1.", Some("80"))).contains("a trailing dot"));
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
    fn ipv4_literals_in_every_inet_aton_form() {
        // What glibc 2.36's inet_aton makes of each (checked with Python's socket.inet_aton).
        let v4 = |s: &str| inet_aton(s).map(|ip| ip.to_string());
        for (text, want) in [
            ("0", "0.0.0.0"),
            ("00", "0.0.0.0"),
            ("127.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("0X7F.0.0.1", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("017700000001", "127.0.0.1"),
            ("010.0.0.1", "8.0.0.1"),
            ("10.1.65535", "10.1.255.255"),
            ("1.16777215", "1.255.255.255"),
            ("4294967295", "255.255.255.255"),
            ("037777777777", "255.255.255.255"),
            ("0x1.0x1.0x1.0x1", "1.1.1.1"),
            ("000000000000000000001", "0.0.0.1"),
            ("0x00000000000000000001", "0.0.0.1"),
            ("192.168.0.1", "192.168.0.1"),
        ] {
            assert_eq!(v4(text).as_deref(), Some(want), "{text}");
        }
        for bad in [
            "",
            ".",
            ".1",
            "1.",
            "127.1.",
            "1..1",
            "256.1",
            "0x100.1",
            "1.16777216",
            "10.1.65536",
            "1.2.3.256",
            "4294967296",
            "0x100000000",
            "040000000000",
            "99999999999",
            "1.2.3.4.5",
            "08",
            "09.1",
            "0x",
            "0x.1",
            "x",
            "1e3",
            "+1",
            "-1",
            " 1",
            // glibc stops at a space and takes the rest as junk: nk wants the whole text.
            "127.1 ",
            "127.1 x",
            "1.2.3.4\n",
            "١٢٧.١",
        ] {
            assert_eq!(inet_aton(bad), None, "{bad:?}");
        }
        // Far too many parts, or a huge number, costs nothing and is refused.
        assert_eq!(inet_aton(&"1.".repeat(100_000)), None);
        assert_eq!(inet_aton(&"9".repeat(100_000)), None);
    }

    #[test]
    fn every_host_parser_reads_literals_the_same_way() {
        let lo = Host::Ip("127.0.0.1".parse().unwrap());
        for text in ["127.1", "2130706433", "0x7f.1", "127.0.0.1", "0177.0.0.1"] {
            assert_eq!(parse_host(text).unwrap(), lo, "{text}");
            assert_eq!(target(text, Some("80")).unwrap().host, lo, "{text}");
            assert_eq!(
                parse_target(&format!("{text}:80"), None, Proto::Udp)
                    .unwrap()
                    .host,
                lo
            );
            assert_eq!(parse_target_or(text, 7, Proto::Tcp).unwrap().host, lo);
            let spec = parse_listen(&format!("{text}:0"), None, Proto::Tcp).unwrap();
            assert_eq!(spec.host, Some(lo.clone()), "{text}");
            assert_eq!(ip_literal(text), Some("127.0.0.1".parse().unwrap()));
            assert_eq!(parse_ip_arg(text), Ok("127.0.0.1".parse().unwrap()));
        }
        assert_eq!(
            parse_host("0").unwrap(),
            Host::Ip(Ipv4Addr::UNSPECIFIED.into())
        );
        // Canonical text: what every command prints and sends.
        assert_eq!(
            target("127.1", Some("80")).unwrap().to_string(),
            "127.0.0.1:80"
        );
        // A text made of numbers is an address or an error, never a name for the resolver.
        for bad in [
            "256.1",
            "1.16777216",
            "4294967296",
            "1..1",
            "127.1.",
            "08",
            "1.2.3.4.5",
        ] {
            assert!(
                usage_message(parse_host(bad)).contains("invalid IPv4 address"),
                "{bad}"
            );
            assert!(parse_ip_arg(bad)
                .unwrap_err()
                .contains("invalid IPv4 address"));
        }
        assert!(parse_ip_arg("localhost")
            .unwrap_err()
            .contains("not an IP address"));
        // Names that only start like numbers stay names.
        for name in ["1e3", "0xfoo.example", "123.example", "1.0xg"] {
            assert_eq!(parse_host(name).unwrap(), Host::Name(name.into()), "{name}");
        }
    }

    #[test]
    fn idn_names_are_converted_by_uts46() {
        let name = |s: &str| match parse_host(s) {
            Ok(Host::Name(n)) => n,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(name("bücher.example"), "xn--bcher-kva.example");
        assert_eq!(name("BÜCHER.example"), "xn--bcher-kva.example");
        assert_eq!(name("ä.test"), "xn--4ca.test");
        assert_eq!(name("bücher.example."), "xn--bcher-kva.example.");
        // Non-transitional (IDNA 2008, as browsers and curl): ß is kept, not made "ss".
        assert_eq!(name("faß.de"), "xn--fa-hia.de");
        // Full-width dots are dots; labels with '_' keep their ASCII rules.
        assert_eq!(name("bücher\u{ff0e}example"), "xn--bcher-kva.example");
        assert_eq!(name("_srv.ü.test"), "_srv.xn--tda.test");
        // ASCII names are used as typed, case included.
        assert_eq!(name("LocalHost"), "LocalHost");
        assert_eq!(name("xn--bcher-kva.example"), "xn--bcher-kva.example");
        // Full-width digits are digits: the text is then an address.
        assert_eq!(
            parse_host("\u{ff11}\u{ff12}\u{ff17}.\u{ff11}").unwrap(),
            Host::Ip("127.0.0.1".parse().unwrap())
        );
        for bad in [
            "a b.ü",
            "ü/x.test",
            "ü\u{0}.test",
            "ü..test",
            "-ü.test",
            "ü.te st",
            "\u{200e}ü.test",
        ] {
            assert!(
                usage_message(parse_host(bad)).contains("invalid host"),
                "{bad:?}"
            );
        }
        // Caps: a name is at most 253 ASCII bytes after conversion; the input is capped too.
        let long = ["bücher"; 40].join(".");
        assert!(usage_message(parse_host(&long)).contains("longer than"));
        let huge = "ü".repeat(100_000);
        assert!(usage_message(parse_host(&huge)).contains("longer than"));
        assert_eq!(
            dns_name_to_ascii("*.bücher.example").unwrap(),
            "*.xn--bcher-kva.example"
        );
        assert_eq!(display_name("xn--bcher-kva.example"), "bücher.example");
        assert_eq!(display_name("xn--a.example"), "xn--a.example");
        assert_eq!(display_name("localhost"), "localhost");
    }

    #[test]
    fn no_host_text_makes_the_parsers_panic() {
        // A cheap fuzz: texts drawn from the characters each branch cares about.
        const PALETTE: [&str; 24] = [
            "0", "1", "7", "8", "9", "x", "X", "f", ".", ":", "%", "[", "]", "-", "_", " ", "ü",
            "ß", "\u{ff0e}", "\u{ff11}", "\u{200d}", "\u{0}", "xn--", "\u{5d0}",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut text = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            for i in 0..len {
                let pick = (state.rotate_left(i as u32 * 5) % PALETTE.len() as u64) as usize;
                text.push_str(PALETTE[pick]);
            }
            let _ = host_of(&text);
            let _ = ip_literal(&text);
            let _ = parse_ip_arg(&text);
            let _ = dns_name_to_ascii(&text);
            let _ = display_name(&text);
            let _ = parse_target(&text, Some("80"), Proto::Tcp);
        }
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
