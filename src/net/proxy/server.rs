//! The server side of SOCKS4/4a, SOCKS5 (RFC 1928, RFC 1929) and HTTP CONNECT (RFC 9110
//! §9.3.6), for `nk listen --proxy`: what a client asks, and what it is answered.
//!
//! Every byte here comes from an untrusted client, so this is pure code over byte slices,
//! with no socket and no clock: the forwarding engine (`net::forward`) reads what the client
//! sent into a buffer capped at [`REQUEST_CAP`], hands it to [`Handshake::advance`], and does
//! what the returned [`Action`] says (send a reply, connect to a target, or answer with an
//! error and close). The fuzz target `proxy_request` drives the same state machine with
//! arbitrary bytes. Each field is bounded by its own length byte (SOCKS) or by the cap on the
//! whole head (HTTP, parsed by httparse), and a message is consumed exactly: bytes a client
//! sends after its request (optimistic data) belong to the tunnel.
//!
//! Reply codes: SOCKS5 per RFC 1928 §6 (0x02 refused by the rules, 0x03 network unreachable,
//! 0x04 host unreachable or unknown, 0x05 refused by the target, 0x06 no answer in time,
//! 0x07 command not supported, 0x08 address type not supported), SOCKS4 0x5A/0x5B, HTTP
//! 403/405/407/502/504 with a plain-text reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use super::http_connect::basic_authorization;
use super::socks::{HostOrName, CREDENTIAL_MAX, METHOD_NONE, METHOD_REFUSED, METHOD_USERPASS};
use super::Credentials;
use crate::net::acl::AccessList;
use crate::net::addr::{self, Host, Target};

/// The most a client may send before its request is complete: an HTTP head (SOCKS messages
/// are under 600 bytes by construction).
pub const REQUEST_CAP: usize = 8 * 1024;
/// Headers in a CONNECT request head.
const HEADERS_MAX: usize = 64;

/// What a proxy listener serves, and to whom.
#[derive(Debug, Clone, Default)]
pub struct ProxyService {
    /// SOCKS4 and 4a requests are served.
    pub socks4: bool,
    /// SOCKS5 requests are served.
    pub socks5: bool,
    /// HTTP CONNECT requests are served.
    pub http: bool,
    /// `--proxy-auth`: what every client must present (SOCKS5 username/password, HTTP
    /// Basic); SOCKS4, which has no password, is then refused.
    pub credentials: Option<Credentials>,
    /// `--allow-target` / `--deny-target`: the destinations served, by address.
    pub targets: AccessList,
}

impl ProxyService {
    /// Parses `--proxy KINDS`: a comma-separated list of `http`, `socks4` (4 and 4a),
    /// `socks5`, `socks` (both SOCKS versions).
    pub fn kinds(text: &str) -> Result<ProxyService, String> {
        let mut service = ProxyService::default();
        for kind in text.split(',').map(str::trim) {
            match kind.to_ascii_lowercase().as_str() {
                "http" | "connect" => service.http = true,
                "socks4" | "socks4a" => service.socks4 = true,
                "socks5" | "socks5h" => service.socks5 = true,
                "socks" => (service.socks4, service.socks5) = (true, true),
                _ => {
                    return Err(format!(
                        "unknown proxy kind \"{kind}\" (http, socks4, socks5, socks)"
                    ))
                }
            }
        }
        Ok(service)
    }

    /// The kinds served, for the `listening on` line.
    pub fn describe(&self) -> String {
        let kinds: Vec<&str> = [
            (self.http, "HTTP CONNECT"),
            (self.socks4, "SOCKS4/4a"),
            (self.socks5, "SOCKS5"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        kinds.join(", ")
    }
}

/// The protocol a client spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SOCKS4 or 4a.
    Socks4,
    /// SOCKS5.
    Socks5,
    /// HTTP CONNECT.
    Http,
}

/// A parser's verdict on the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Not all there yet.
    Partial,
    /// The message, and how many bytes it took.
    Done(T, usize),
}

/// A malformed message, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

fn malformed<T>(text: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(text.into()))
}

/// A SOCKS4/4a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socks4Request {
    /// 1 CONNECT, 2 BIND.
    pub command: u8,
    /// The destination port.
    pub port: u16,
    /// The address, or (4a: 0.0.0.x) the name.
    pub host: HostOrName,
}

/// Reads a NUL-terminated field of at most `cap` bytes at the start of `buf`: the field and
/// the bytes taken (NUL included).
fn nul_terminated(
    buf: &[u8],
    cap: usize,
    what: &str,
) -> Result<Option<(Vec<u8>, usize)>, Malformed> {
    match buf.iter().take(cap + 1).position(|&b| b == 0) {
        Some(end) => Ok(Some((buf[..end].to_vec(), end + 1))),
        None if buf.len() > cap => malformed(format!("SOCKS4 {what} longer than {cap} bytes")),
        None => Ok(None),
    }
}

/// Decodes a SOCKS4 request: VN 4, CD, DSTPORT, DSTIP, USERID NUL, and for 4a (DSTIP
/// 0.0.0.x, x != 0) the host name NUL.
pub fn socks4_request(buf: &[u8]) -> Result<Parsed<Socks4Request>, Malformed> {
    if buf.len() < 8 {
        return Ok(Parsed::Partial);
    }
    if buf[0] != 4 {
        return malformed(format!("not SOCKS4 (version byte {})", buf[0]));
    }
    let port = u16::from_be_bytes([buf[2], buf[3]]);
    let ip = Ipv4Addr::new(buf[4], buf[5], buf[6], buf[7]);
    let Some((_user, user_len)) = nul_terminated(&buf[8..], CREDENTIAL_MAX, "user id")? else {
        return Ok(Parsed::Partial);
    };
    let mut used = 8 + user_len;
    let octets = ip.octets();
    let host = if octets[..3] == [0, 0, 0] && octets[3] != 0 {
        let Some((name, name_len)) = nul_terminated(&buf[used..], 255, "host name")? else {
            return Ok(Parsed::Partial);
        };
        used += name_len;
        requested_name(&name)?
    } else {
        HostOrName::Ip(IpAddr::V4(ip))
    };
    Ok(Parsed::Done(
        Socks4Request {
            command: buf[1],
            port,
            host,
        },
        used,
    ))
}

/// A requested host name: printable ASCII (an IDN comes as its xn-- form), an IP literal
/// taken as the address it is.
fn requested_name(bytes: &[u8]) -> Result<HostOrName, Malformed> {
    if bytes.is_empty() {
        return malformed("an empty host name");
    }
    if bytes.len() > 255 {
        return malformed(format!(
            "a host name of {} bytes (255 at most)",
            bytes.len()
        ));
    }
    if !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return malformed("a host name with bytes other than printable ASCII");
    }
    let text = String::from_utf8_lossy(bytes).into_owned();
    match addr::parse_host(&text) {
        Ok(Host::Ip(ip)) => Ok(HostOrName::Ip(ip)),
        Ok(Host::Name(name)) => Ok(HostOrName::Name(name)),
        Err(err) => malformed(format!("{err:#}")),
    }
}

/// Decodes a SOCKS5 greeting (VER 5, NMETHODS, METHODS): the methods offered.
pub fn socks5_greeting(buf: &[u8]) -> Result<Parsed<Vec<u8>>, Malformed> {
    if buf.len() < 2 {
        return Ok(Parsed::Partial);
    }
    if buf[0] != 5 {
        return malformed(format!("not SOCKS5 (version byte {})", buf[0]));
    }
    let total = 2 + buf[1] as usize;
    if buf.len() < total {
        return Ok(Parsed::Partial);
    }
    Ok(Parsed::Done(buf[2..total].to_vec(), total))
}

/// A username and a password as sent (RFC 1929: bytes, 255 at most each).
pub type UserPass = (Vec<u8>, Vec<u8>);

/// Decodes RFC 1929's username/password request (VER 1, ULEN, UNAME, PLEN, PASSWD).
pub fn socks5_userpass(buf: &[u8]) -> Result<Parsed<UserPass>, Malformed> {
    if buf.len() < 2 {
        return Ok(Parsed::Partial);
    }
    if buf[0] != 1 {
        return malformed(format!(
            "not a username/password request (version byte {})",
            buf[0]
        ));
    }
    let user_end = 2 + buf[1] as usize;
    if buf.len() < user_end + 1 {
        return Ok(Parsed::Partial);
    }
    let total = user_end + 1 + buf[user_end] as usize;
    if buf.len() < total {
        return Ok(Parsed::Partial);
    }
    Ok(Parsed::Done(
        (buf[2..user_end].to_vec(), buf[user_end + 1..total].to_vec()),
        total,
    ))
}

/// A SOCKS5 request as decoded: the command, and the destination or the reply code that
/// refuses it (an address type SOCKS5 does not define: 0x08).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socks5Request {
    /// 1 CONNECT, 2 BIND, 3 UDP ASSOCIATE.
    pub command: u8,
    /// The destination, or the reply code and the reason it cannot be served.
    pub destination: Result<(HostOrName, u16), (u8, String)>,
}

/// Decodes a SOCKS5 request: VER 5, CMD, RSV, ATYP, DST.ADDR, DST.PORT.
pub fn socks5_request(buf: &[u8]) -> Result<Parsed<Socks5Request>, Malformed> {
    if buf.len() < 4 {
        return Ok(Parsed::Partial);
    }
    if buf[0] != 5 {
        return malformed(format!("not a SOCKS5 request (version byte {})", buf[0]));
    }
    let total = match buf[3] {
        1 => 4 + 4 + 2,
        4 => 4 + 16 + 2,
        3 if buf.len() < 5 => return Ok(Parsed::Partial),
        3 => 4 + 1 + buf[4] as usize + 2,
        atyp => {
            // Its length is unknown: nothing after it can be read.
            let why = format!("address type {atyp}, which SOCKS5 does not define");
            return Ok(Parsed::Done(
                Socks5Request {
                    command: buf[1],
                    destination: Err((8, why)),
                },
                buf.len(),
            ));
        }
    };
    if buf.len() < total {
        return Ok(Parsed::Partial);
    }
    let port = u16::from_be_bytes([buf[total - 2], buf[total - 1]]);
    let host = match buf[3] {
        1 => Ok(HostOrName::Ip(IpAddr::V4(Ipv4Addr::new(
            buf[4], buf[5], buf[6], buf[7],
        )))),
        4 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&buf[4..20]);
            Ok(HostOrName::Ip(IpAddr::V6(Ipv6Addr::from(octets))))
        }
        _ => requested_name(&buf[5..total - 2]).map_err(|Malformed(why)| (4, why)),
    };
    Ok(Parsed::Done(
        Socks5Request {
            command: buf[1],
            destination: host.map(|host| (host, port)),
        },
        total,
    ))
}

/// A client's HTTP request head, as far as a CONNECT proxy cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method, as sent.
    pub method: String,
    /// The request target, as sent.
    pub target: String,
    /// The Proxy-Authorization header's value, if any.
    pub authorization: Option<String>,
}

/// Parses a request head with httparse: `Partial` until the blank line (the caller caps the
/// bytes at [`REQUEST_CAP`]).
pub fn http_request(buf: &[u8]) -> Result<Parsed<HttpRequest>, Malformed> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(err) => return malformed(format!("not an HTTP request head: {err}")),
    };
    let authorization = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned());
    Ok(Parsed::Done(
        HttpRequest {
            method: request.method.unwrap_or_default().to_string(),
            target: request.path.unwrap_or_default().to_string(),
            authorization,
        },
        head_len,
    ))
}

/// Parses a CONNECT authority: `host:port` or `[v6]:port`, port 1-65535.
pub fn authority(text: &str) -> Result<(HostOrName, u16), Malformed> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once("]:") {
            Some((host, port)) => (host, port),
            None => return malformed(format!("\"{}\" is not HOST:PORT", clip(text))),
        },
        None => match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, port),
            _ => return malformed(format!("\"{}\" is not HOST:PORT", clip(text))),
        },
    };
    let port_text = port;
    let port = match port.parse::<u16>() {
        Ok(port) if port > 0 && port_text.bytes().all(|b| b.is_ascii_digit()) => port,
        _ => return malformed(format!("\"{}\": the port is not 1-65535", clip(text))),
    };
    Ok((requested_name(host.as_bytes())?, port))
}

/// Why a request was not served, for its reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// `--allow-target`/`--deny-target` refused the destination.
    Denied,
    /// The target refused the connection.
    Refused,
    /// No route to the target's network.
    NetUnreachable,
    /// No route to the host, or its name does not resolve.
    HostUnreachable,
    /// No answer within `-w`.
    TimedOut,
    /// Anything else.
    Failed,
}

/// What a client asked for once its handshake is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The protocol the reply must speak.
    pub protocol: Protocol,
    /// The destination.
    pub target: Target,
}

impl Request {
    /// The reply that opens the tunnel: SOCKS with the address the proxy connected from
    /// (BND.ADDR), HTTP 200.
    pub fn success(&self, bound: Option<SocketAddr>) -> Vec<u8> {
        match self.protocol {
            Protocol::Socks4 => socks4_reply(0x5a, bound),
            Protocol::Socks5 => socks5_reply(0, bound),
            Protocol::Http => b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
        }
    }

    /// The reply that says why the tunnel was not opened (`detail`: the story, for HTTP's
    /// body).
    pub fn failure(&self, cause: Cause, detail: &str) -> Vec<u8> {
        match self.protocol {
            Protocol::Socks4 => socks4_reply(0x5b, None),
            Protocol::Socks5 => socks5_reply(
                match cause {
                    Cause::Denied => 2,
                    Cause::NetUnreachable => 3,
                    Cause::HostUnreachable => 4,
                    Cause::Refused => 5,
                    Cause::TimedOut => 6,
                    Cause::Failed => 1,
                },
                None,
            ),
            Protocol::Http => match cause {
                Cause::Denied => http_error(403, "Forbidden", detail, false),
                Cause::TimedOut => http_error(504, "Gateway Timeout", detail, false),
                _ => http_error(502, "Bad Gateway", detail, false),
            },
        }
    }
}

fn socks4_reply(code: u8, bound: Option<SocketAddr>) -> Vec<u8> {
    let mut out = vec![0, code];
    match bound {
        Some(SocketAddr::V4(v4)) => {
            out.extend_from_slice(&v4.port().to_be_bytes());
            out.extend_from_slice(&v4.ip().octets());
        }
        _ => out.extend_from_slice(&[0; 6]),
    }
    out
}

fn socks5_reply(code: u8, bound: Option<SocketAddr>) -> Vec<u8> {
    let mut out = vec![5, code, 0];
    match bound {
        Some(SocketAddr::V6(v6)) => {
            out.push(4);
            out.extend_from_slice(&v6.ip().octets());
            out.extend_from_slice(&v6.port().to_be_bytes());
        }
        Some(SocketAddr::V4(v4)) => {
            out.push(1);
            out.extend_from_slice(&v4.ip().octets());
            out.extend_from_slice(&v4.port().to_be_bytes());
        }
        None => out.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0]),
    }
    out
}

/// An HTTP error response with the reason as its plain-text body; `ask_credentials` adds
/// `Proxy-Authenticate: Basic` (407).
pub fn http_error(status: u16, phrase: &str, reason: &str, ask_credentials: bool) -> Vec<u8> {
    // One line of body: a reason with line breaks in it cannot split the head.
    let body: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .chain(std::iter::once('\n'))
        .collect();
    let mut head = format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if ask_credentials {
        head.push_str("Proxy-Authenticate: Basic realm=\"nk\"\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// What the engine does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read more bytes from the client (the request is not all there).
    Need,
    /// Send `bytes` (a SOCKS5 method choice or auth success), drop the first `consumed`
    /// bytes of the buffer, and advance again.
    Reply { consumed: usize, bytes: Vec<u8> },
    /// Connect to the target; the first `consumed` bytes were the request (what follows is
    /// for the target). Check the target rules first.
    Connect { consumed: usize, request: Request },
    /// Send `bytes` (possibly none), then close the connection: `why` says why, for -v.
    Refuse { bytes: Vec<u8>, why: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    First,
    Socks5Auth,
    Socks5Request,
    Over,
}

/// One client's handshake, fed the bytes it sent so far.
#[derive(Debug, Clone)]
pub struct Handshake {
    service: Arc<ProxyService>,
    stage: Stage,
}

impl Handshake {
    /// A client that has said nothing yet.
    pub fn new(service: Arc<ProxyService>) -> Handshake {
        Handshake {
            service,
            stage: Stage::First,
        }
    }

    /// Looks at the bytes the client sent and not yet consumed (`buf`, the whole buffer:
    /// whether it is full is the caller's to say with `full`).
    pub fn advance(&mut self, buf: &[u8], full: bool) -> Action {
        let action = match self.stage {
            Stage::Over => Action::Need,
            Stage::First => match buf.first() {
                None => Action::Need,
                Some(4) if self.service.socks4 => self.socks4(buf),
                Some(5) if self.service.socks5 => self.socks5_greeting(buf),
                Some(4 | 5) => Action::Refuse {
                    bytes: Vec::new(),
                    why: format!(
                        "a SOCKS{} request, which this proxy does not serve ({})",
                        buf[0],
                        self.service.describe()
                    ),
                },
                Some(b) if b.is_ascii_alphabetic() && self.service.http => self.http(buf),
                Some(b) if b.is_ascii_alphabetic() => {
                    // Likely HTTP: say so in words the client can show.
                    let why = format!(
                        "an HTTP request, but this proxy serves {} only",
                        self.service.describe()
                    );
                    refuse(http_error(400, "Bad Request", &why, false), why)
                }
                Some(_) => Action::Refuse {
                    bytes: Vec::new(),
                    why: format!("not a proxy request ({})", shown(buf)),
                },
            },
            Stage::Socks5Auth => self.socks5_auth(buf),
            Stage::Socks5Request => self.socks5_request(buf),
        };
        match action {
            Action::Need if full => {
                let was_http = self.stage == Stage::First && self.service.http;
                self.stage = Stage::Over;
                let why = format!("the request is longer than {REQUEST_CAP} bytes");
                let bytes = if was_http && buf.first().is_some_and(u8::is_ascii_alphabetic) {
                    http_error(431, "Request Header Fields Too Large", &why, false)
                } else {
                    Vec::new()
                };
                Action::Refuse { bytes, why }
            }
            Action::Connect { .. } | Action::Refuse { .. } => {
                self.stage = Stage::Over;
                action
            }
            other => other,
        }
    }

    /// What a client whose request is still incomplete when its time is up is answered,
    /// in its protocol's terms (empty when it said too little to know which): HTTP 408,
    /// SOCKS4 0x5B, SOCKS5 "no acceptable method", a failed authentication or a general
    /// failure, by where it stopped; `why` is the 408's text. The handshake is over after it.
    pub fn expired(&mut self, buf: &[u8], why: &str) -> Vec<u8> {
        let stage = std::mem::replace(&mut self.stage, Stage::Over);
        match stage {
            Stage::Over => Vec::new(),
            Stage::First => match buf.first() {
                Some(4) if self.service.socks4 => socks4_reply(0x5b, None),
                Some(5) if self.service.socks5 => vec![5, METHOD_REFUSED],
                Some(b) if b.is_ascii_alphabetic() && self.service.http => {
                    http_error(408, "Request Timeout", why, false)
                }
                _ => Vec::new(),
            },
            Stage::Socks5Auth => vec![1, 1],
            Stage::Socks5Request => socks5_reply(1, None),
        }
    }

    fn socks4(&mut self, buf: &[u8]) -> Action {
        let (request, consumed) = match socks4_request(buf) {
            Ok(Parsed::Partial) => return Action::Need,
            Ok(Parsed::Done(request, consumed)) => (request, consumed),
            Err(Malformed(why)) => return refuse(socks4_reply(0x5b, None), why),
        };
        if self.service.credentials.is_some() {
            return refuse(
                socks4_reply(0x5b, None),
                "a SOCKS4 request, but --proxy-auth requires a password (SOCKS5 or HTTP)".into(),
            );
        }
        if request.command != 1 {
            return refuse(
                socks4_reply(0x5b, None),
                format!(
                    "SOCKS4 command {} (only CONNECT is served)",
                    request.command
                ),
            );
        }
        if request.port == 0 {
            return refuse(socks4_reply(0x5b, None), "port 0 requested".into());
        }
        Action::Connect {
            consumed,
            request: Request {
                protocol: Protocol::Socks4,
                target: target(request.host, request.port),
            },
        }
    }

    fn socks5_greeting(&mut self, buf: &[u8]) -> Action {
        let (methods, consumed) = match socks5_greeting(buf) {
            Ok(Parsed::Partial) => return Action::Need,
            Ok(Parsed::Done(methods, consumed)) => (methods, consumed),
            Err(Malformed(why)) => return refuse(Vec::new(), why),
        };
        // Without --proxy-auth, a client that only offers username/password is served too
        // (whatever it presents).
        let chosen = if self.service.credentials.is_some() {
            methods
                .contains(&METHOD_USERPASS)
                .then_some(METHOD_USERPASS)
        } else if methods.contains(&METHOD_NONE) {
            Some(METHOD_NONE)
        } else {
            methods
                .contains(&METHOD_USERPASS)
                .then_some(METHOD_USERPASS)
        };
        match chosen {
            Some(method) => {
                self.stage = if method == METHOD_USERPASS {
                    Stage::Socks5Auth
                } else {
                    Stage::Socks5Request
                };
                Action::Reply {
                    consumed,
                    bytes: vec![5, method],
                }
            }
            None if self.service.credentials.is_some() => refuse(
                vec![5, METHOD_REFUSED],
                "the client does not offer username/password (--proxy-auth)".into(),
            ),
            None => refuse(
                vec![5, METHOD_REFUSED],
                "the client offers no method this proxy speaks (none, username/password)".into(),
            ),
        }
    }

    fn socks5_auth(&mut self, buf: &[u8]) -> Action {
        let ((user, pass), consumed) = match socks5_userpass(buf) {
            Ok(Parsed::Partial) => return Action::Need,
            Ok(Parsed::Done(pair, consumed)) => (pair, consumed),
            Err(Malformed(why)) => return refuse(vec![1, 1], why),
        };
        if let Some(expected) = &self.service.credentials {
            if user != expected.user.as_bytes() || pass != expected.pass.as_bytes() {
                return refuse(
                    vec![1, 1],
                    format!(
                        "bad credentials for user \"{}\"",
                        clip(&String::from_utf8_lossy(&user))
                    ),
                );
            }
        }
        self.stage = Stage::Socks5Request;
        Action::Reply {
            consumed,
            bytes: vec![1, 0],
        }
    }

    fn socks5_request(&mut self, buf: &[u8]) -> Action {
        let (request, consumed) = match socks5_request(buf) {
            Ok(Parsed::Partial) => return Action::Need,
            Ok(Parsed::Done(request, consumed)) => (request, consumed),
            Err(Malformed(why)) => return refuse(socks5_reply(1, None), why),
        };
        if request.command != 1 {
            let name = match request.command {
                2 => "BIND",
                3 => "UDP ASSOCIATE",
                _ => "an unknown command",
            };
            return refuse(
                socks5_reply(7, None),
                format!(
                    "SOCKS5 command {} ({name}; only CONNECT is served)",
                    request.command
                ),
            );
        }
        match request.destination {
            Ok((host, port)) if port != 0 => Action::Connect {
                consumed,
                request: Request {
                    protocol: Protocol::Socks5,
                    target: target(host, port),
                },
            },
            Ok(_) => refuse(socks5_reply(1, None), "port 0 requested".into()),
            Err((code, why)) => refuse(socks5_reply(code, None), why),
        }
    }

    fn http(&mut self, buf: &[u8]) -> Action {
        let (request, consumed) = match http_request(buf) {
            Ok(Parsed::Partial) => return Action::Need,
            Ok(Parsed::Done(request, consumed)) => (request, consumed),
            Err(Malformed(why)) => return refuse(http_error(400, "Bad Request", &why, false), why),
        };
        if request.method != "CONNECT" {
            let why = if request.target.contains("://") {
                format!(
                    "{} {}: plain-HTTP proxying is not served, only CONNECT tunnels (use an \
                     https:// URL, or curl -p / --proxytunnel)",
                    request.method,
                    clip(&request.target)
                )
            } else {
                format!(
                    "{} {}: this is a proxy; it serves CONNECT only",
                    request.method,
                    clip(&request.target)
                )
            };
            let mut reply = http_error(405, "Method Not Allowed", &why, false);
            // RFC 9110: a 405 lists the methods that are allowed.
            let at = reply.len() - (why.len() + 1) - 2;
            reply.splice(at..at, b"Allow: CONNECT\r\n".iter().copied());
            return refuse(reply, why);
        }
        if let Some(expected) = &self.service.credentials {
            if !basic_matches(request.authorization.as_deref(), expected) {
                let why = match request.authorization {
                    None => "no Proxy-Authorization (--proxy-auth)".to_string(),
                    Some(_) => "bad Proxy-Authorization credentials".to_string(),
                };
                return refuse(
                    http_error(407, "Proxy Authentication Required", &why, true),
                    why,
                );
            }
        }
        match authority(&request.target) {
            Ok((host, port)) => Action::Connect {
                consumed,
                request: Request {
                    protocol: Protocol::Http,
                    target: target(host, port),
                },
            },
            Err(Malformed(why)) => refuse(http_error(400, "Bad Request", &why, false), why),
        }
    }
}

fn refuse(bytes: Vec<u8>, why: String) -> Action {
    Action::Refuse { bytes, why }
}

fn target(host: HostOrName, port: u16) -> Target {
    let host = match host {
        HostOrName::Ip(ip) => Host::Ip(ip),
        HostOrName::Name(name) => Host::Name(name),
    };
    Target { host, port }
}

/// Whether a Proxy-Authorization value carries exactly these Basic credentials (the scheme
/// is case-insensitive, the token compared as the client encoded it: base64 with padding is
/// one string per pair).
fn basic_matches(value: Option<&str>, expected: &Credentials) -> bool {
    let Some((scheme, token)) = value.and_then(|v| v.trim().split_once(' ')) else {
        return false;
    };
    let wanted = basic_authorization(expected);
    let wanted_token = wanted.trim_start_matches("Basic ");
    scheme.eq_ignore_ascii_case("basic") && token.trim() == wanted_token
}

/// Client text for a message: control characters escaped (a client cannot write lines of
/// its own into the log), cut after 80 characters.
fn clip(text: &str) -> String {
    let shown: String = text.chars().take(80).flat_map(char::escape_debug).collect();
    if text.chars().nth(80).is_some() {
        format!("{shown}...")
    } else {
        shown
    }
}

/// The first bytes of what a client sent, for a message.
fn shown(buf: &[u8]) -> String {
    let head: String = buf
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    format!("first bytes {head}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(creds: Option<(&str, &str)>) -> Arc<ProxyService> {
        let mut service = ProxyService::kinds("http,socks").unwrap();
        service.credentials = creds.map(|(u, p)| Credentials {
            user: u.into(),
            pass: p.into(),
        });
        Arc::new(service)
    }

    fn connect_to(action: Action) -> (usize, Protocol, String) {
        match action {
            Action::Connect { consumed, request } => {
                (consumed, request.protocol, request.target.to_string())
            }
            other => panic!("not a connect: {other:?}"),
        }
    }

    #[test]
    fn socks5_no_auth_then_a_name_with_optimistic_data() {
        let mut hs = Handshake::new(service(None));
        assert_eq!(hs.advance(&[5], false), Action::Need);
        assert_eq!(
            hs.advance(&[5, 2, 0, 2], false),
            Action::Reply {
                consumed: 4,
                bytes: vec![5, 0]
            }
        );
        let mut req = vec![5, 1, 0, 3, 9];
        req.extend_from_slice(b"localhost");
        req.extend_from_slice(&80u16.to_be_bytes());
        assert_eq!(hs.advance(&req[..7], false), Action::Need);
        let full = [req.clone(), b"GET".to_vec()].concat();
        let (consumed, protocol, target) = connect_to(hs.advance(&full, false));
        assert_eq!((consumed, protocol), (req.len(), Protocol::Socks5));
        assert_eq!(target, "localhost:80");
    }

    #[test]
    fn socks5_with_credentials() {
        let mut hs = Handshake::new(service(Some(("u", "p"))));
        // Offering only "no auth" is refused with 0xff.
        match Handshake::new(service(Some(("u", "p")))).advance(&[5, 1, 0], false) {
            Action::Refuse { bytes, .. } => assert_eq!(bytes, vec![5, 0xff]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            hs.advance(&[5, 2, 0, 2], false),
            Action::Reply {
                consumed: 4,
                bytes: vec![5, 2]
            }
        );
        let mut wrong = Handshake::new(service(Some(("u", "p"))));
        wrong.advance(&[5, 1, 2], false);
        match wrong.advance(&[1, 1, b'u', 1, b'x'], false) {
            Action::Refuse { bytes, why } => {
                assert_eq!(bytes, vec![1, 1]);
                assert!(why.contains("bad credentials"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            hs.advance(&[1, 1, b'u', 1, b'p'], false),
            Action::Reply {
                consumed: 5,
                bytes: vec![1, 0]
            }
        );
        let (_, _, target) = connect_to(hs.advance(&[5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90], false));
        assert_eq!(target, "127.0.0.1:8080");
    }

    #[test]
    fn socks5_refusals_carry_rfc1928_codes() {
        let refused = |req: &[u8]| {
            let mut hs = Handshake::new(service(None));
            hs.advance(&[5, 1, 0], false);
            match hs.advance(req, false) {
                Action::Refuse { bytes, .. } => bytes[1],
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(refused(&[5, 2, 0, 1, 1, 2, 3, 4, 0, 80]), 7);
        assert_eq!(refused(&[5, 1, 0, 9, 1, 2, 3, 4, 0, 80]), 8);
        assert_eq!(refused(&[5, 1, 0, 3, 1, 0, 0, 80]), 4);
        let request = Request {
            protocol: Protocol::Socks5,
            target: target(HostOrName::Name("x".into()), 1),
        };
        let codes = [
            (Cause::Denied, 2),
            (Cause::NetUnreachable, 3),
            (Cause::HostUnreachable, 4),
            (Cause::Refused, 5),
            (Cause::TimedOut, 6),
        ];
        for (cause, code) in codes {
            assert_eq!(request.failure(cause, "")[1], code);
        }
        let ok = request.success(Some("[::1]:99".parse().unwrap()));
        assert_eq!(ok.len(), 4 + 16 + 2);
        assert_eq!(&ok[..4], &[5, 0, 0, 4]);
    }

    #[test]
    fn socks4_and_4a() {
        let mut hs = Handshake::new(service(None));
        let (consumed, protocol, target) =
            connect_to(hs.advance(&[4, 1, 0, 22, 10, 0, 0, 1, b'm', b'e', 0], false));
        assert_eq!((consumed, protocol), (11, Protocol::Socks4));
        assert_eq!(target, "10.0.0.1:22");
        let mut hs = Handshake::new(service(None));
        let req = [&[4, 1, 0, 80, 0, 0, 0, 1, 0][..], b"example.com\0"].concat();
        assert_eq!(hs.advance(&req[..12], false), Action::Need);
        let (_, _, target) = connect_to(hs.advance(&req, false));
        assert_eq!(target, "example.com:80");
        // A user id without its NUL, past the cap.
        let long = [&[4, 1, 0, 80, 1, 2, 3, 4][..], &[b'a'; 300]].concat();
        assert!(matches!(
            Handshake::new(service(None)).advance(&long, false),
            Action::Refuse { .. }
        ));
        // Port 0 is nobody's.
        assert!(matches!(
            Handshake::new(service(None)).advance(&[4, 1, 0, 0, 1, 2, 3, 4, 0], false),
            Action::Refuse { .. }
        ));
        // No password in SOCKS4: refused when --proxy-auth is given.
        match Handshake::new(service(Some(("u", "p")))).advance(&req, false) {
            Action::Refuse { bytes, .. } => assert_eq!(bytes, vec![0, 0x5b, 0, 0, 0, 0, 0, 0]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_connect_auth_and_refusals() {
        let head = b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\nhello";
        let mut hs = Handshake::new(service(None));
        assert_eq!(hs.advance(&head[..20], false), Action::Need);
        let (consumed, protocol, target) = connect_to(hs.advance(head, false));
        assert_eq!((consumed, protocol), (head.len() - 5, Protocol::Http));
        assert_eq!(target, "[::1]:443");

        let text = |action: Action| match action {
            Action::Refuse { bytes, why } => (String::from_utf8_lossy(&bytes).into_owned(), why),
            other => panic!("{other:?}"),
        };
        let (reply, why) = text(Handshake::new(service(Some(("u", "p")))).advance(head, false));
        assert!(reply.starts_with("HTTP/1.1 407 "), "{reply}");
        assert!(reply.contains("Proxy-Authenticate: Basic"), "{reply}");
        assert!(why.contains("no Proxy-Authorization"), "{why}");
        let good = b"CONNECT a.b:1 HTTP/1.1\r\nProxy-Authorization: basic dTpw\r\n\r\n";
        connect_to(Handshake::new(service(Some(("u", "p")))).advance(good, false));
        let bad = b"CONNECT a.b:1 HTTP/1.1\r\nProxy-Authorization: Basic dTpx\r\n\r\n";
        let (reply, _) = text(Handshake::new(service(Some(("u", "p")))).advance(bad, false));
        assert!(reply.starts_with("HTTP/1.1 407 "), "{reply}");

        let get = b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n";
        let (reply, why) = text(Handshake::new(service(None)).advance(get, false));
        assert!(reply.starts_with("HTTP/1.1 405 "), "{reply}");
        assert!(reply.contains("\r\nAllow: CONNECT\r\n"), "{reply}");
        assert!(reply.ends_with(&format!("\r\n\r\n{why}\n")), "{reply}");
        assert!(why.contains("plain-HTTP proxying is not served"), "{why}");

        for bad in [
            "CONNECT a.b HTTP/1.1\r\n\r\n",
            "CONNECT a.b:0 HTTP/1.1\r\n\r\n",
        ] {
            let (reply, _) = text(Handshake::new(service(None)).advance(bad.as_bytes(), false));
            assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
        }
        let (reply, _) = text(Handshake::new(service(None)).advance(b"CONNECT a", true));
        assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
    }

    #[test]
    fn garbage_and_unserved_kinds() {
        assert!(matches!(
            Handshake::new(service(None)).advance(&[0x16, 3, 1], false),
            Action::Refuse { bytes, .. } if bytes.is_empty()
        ));
        let socks_only = Arc::new(ProxyService::kinds("socks5").unwrap());
        match Handshake::new(socks_only).advance(b"CONNECT", false) {
            Action::Refuse { bytes, why } => {
                assert!(bytes.starts_with(b"HTTP/1.1 400 "), "{bytes:?}");
                assert!(why.contains("serves SOCKS5 only"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(ProxyService::kinds("http,ftp").is_err());
    }

    #[test]
    fn authorities() {
        assert_eq!(
            authority("example.com:443").unwrap(),
            (HostOrName::Name("example.com".into()), 443)
        );
        assert!(authority("::1:443").is_err());
        assert!(authority("a:+443").is_err());
        assert!(authority("a:70000").is_err());
    }
}
