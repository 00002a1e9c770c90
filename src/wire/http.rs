//! HTTP/1.x as `nk head` speaks it: URLs, the request bytes, the response head (parsed by
//! httparse under caps), and the chunked transfer coding, with no sockets here.
//!
//! Everything the user types is checked before a byte is sent: a CR, LF or NUL in a host,
//! path or header would let one argument smuggle a second request (or header) onto the wire,
//! so each is refused with a usage error. Responses are untrusted: the head is capped at
//! [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields, chunk-size lines and trailers likewise.

use std::fmt;

/// The most bytes of response head read (status line, fields, blank line).
pub const MAX_HEAD: usize = 64 * 1024;

/// The most header fields a response head may have (64 KiB of head holds at most a few
/// thousand; real servers send tens).
pub const MAX_HEADERS: usize = 1024;

/// The longest chunk-size line (size, extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// What `nk head` sends as User-Agent.
pub const USER_AGENT: &str = concat!("nk/", env!("CARGO_PKG_VERSION"));

/// An `http://` or `https://` URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https://`: the request goes over TLS.
    pub tls: bool,
    /// The host as typed (an IPv6 literal without its brackets).
    pub host: String,
    /// The port (the scheme's, 80 or 443, unless given).
    pub port: u16,
    /// The path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// The scheme's port: 443 for https, 80 for http.
    pub fn default_port(&self) -> u16 {
        if self.tls {
            443
        } else {
            80
        }
    }

    /// The Host header's value: the host (bracketed if IPv6), and the port unless it is the
    /// scheme's.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// Refuses control characters and spaces in what goes on the request line or a header.
fn check_clean(what: &str, text: &str) -> Result<(), String> {
    if let Some(c) = text.chars().find(|c| c.is_control() || *c == ' ') {
        let name = match c {
            '\r' => "a carriage return (CR)".to_string(),
            '\n' => "a line feed (LF)".to_string(),
            ' ' => "a space".to_string(),
            other => format!("the control character U+{:04X}", other as u32),
        };
        let fix = if what.contains("host") {
            "; nothing was sent"
        } else {
            "; percent-encode it"
        };
        return Err(format!(
            "{what} \"{}\" contains {name}{fix}",
            text.escape_debug()
        ));
    }
    Ok(())
}

/// The scheme of `text` if it begins with one (RFC 3986 §3.1): a letter, then letters, digits,
/// `+`, `-` or `.`, up to the first `:`, which comes before any `/`, `?` or `#`. A `://`
/// further on (`/login?next=https://x/`) is data, not a scheme.
fn scheme_of(text: &str) -> Option<&str> {
    let end = text.find([':', '/', '?', '#'])?;
    if !text[end..].starts_with(':') {
        return None;
    }
    let scheme = &text[..end];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Whose URL is parsed: the user's is checked strictly (an empty port, a space, a control
/// character is refused: fix it and retry), a server's `Location` tolerantly (an empty port is
/// the scheme's, as RFC 3986 §3.2.3 allows; spaces and raw bytes were percent-encoded before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    User,
    Location,
}

/// Splits the user's URL into its userinfo (`user:pass` before an `@` in the authority, still
/// percent-encoded) and the URL without it, so that the password goes no further than
/// here: the rest is what parsing, errors, `-v` and `--json` ever see.
pub fn split_userinfo(text: &str) -> (Option<&str>, String) {
    let start = match scheme_of(text) {
        Some(s) if text[s.len() + 1..].starts_with("//") => s.len() + 3,
        _ => 0,
    };
    let end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    match text[start..end].rfind('@') {
        Some(at) => (
            Some(&text[start..start + at]),
            format!("{}{}", &text[..start], &text[start + at + 1..]),
        ),
        None => (None, text.to_string()),
    }
}

/// Whether `text` is a method name (RFC 9110 §9.1: a token).
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Parses `http[s]://host[:port][/path][?query]` or `host[:port][/path]` (http).
pub fn parse_url(text: &str) -> Result<Url, String> {
    parse_from(text, Source::User)
}

fn parse_from(text: &str, source: Source) -> Result<Url, String> {
    let scheme = scheme_of(text);
    let after_colon = scheme.map(|s| &text[s.len() + 1..]);
    let (tls, rest) = match (scheme, after_colon) {
        (Some(s), Some(after))
            if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") =>
        {
            let tls = s.eq_ignore_ascii_case("https");
            match after.strip_prefix("//") {
                Some(rest) => (tls, rest),
                None => {
                    return Err(format!(
                        "\"{}\": \"{s}:\" must be followed by \"//\" (write {}://HOST[:PORT]/PATH)",
                        text.escape_debug(),
                        s.to_ascii_lowercase()
                    ))
                }
            }
        }
        // A user's `localhost:8080/x` has the shape of a scheme too: only a `/` after the colon
        // makes it one. In a Location, RFC 3986 decides.
        (Some(s), Some(after)) if source == Source::Location || after.starts_with('/') => {
            return Err(format!(
                "unsupported scheme \"{}:\": nk head speaks http:// and https:// (give \
                 http[s]://HOST[:PORT]/PATH or HOST[:PORT]/PATH)",
                s.escape_debug()
            ))
        }
        _ => (false, text),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = match path.chars().next() {
        None => "/".to_string(),
        Some('?') => format!("/{path}"),
        Some(_) => path.to_string(),
    };
    let shown = text.escape_debug();
    if authority.contains('@') {
        return Err(format!(
            "\"{shown}\": a user name in a redirect's URL is not followed (credentials go only with the URL given, or -u)"
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("\"{shown}\": unclosed [ in the host"))?;
        let (ip, scope) = host.split_once('%').unwrap_or((host, ""));
        if ip.parse::<std::net::Ipv6Addr>().is_err()
            || (host.contains('%') && !crate::wire::ipnet::is_scope_id(scope))
        {
            return Err(format!(
                "\"{shown}\": \"[{}]\" is not an IPv6 address",
                host.escape_debug()
            ));
        }
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => {
                return Err(format!(
                    "\"{shown}\": \"{}\" after \"[{}]\": only \":PORT\" may follow an IPv6 address",
                    after.escape_debug(),
                    host.escape_debug()
                ))
            }
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => {
                return Err(format!(
                    "\"{shown}\": write an IPv6 host in brackets, e.g. http://[::1]:8080/"
                ))
            }
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{shown}\": missing host"));
    }
    check_clean("the host", host)?;
    check_clean("the path", &path)?;
    let default = if tls { 443 } else { 80 };
    let port = match port {
        None => default,
        Some("") if source == Source::Location => default,
        Some("") => {
            return Err(format!(
                "\"{shown}\": empty port after \":\" (give 1-65535, or no colon for port {default})"
            ))
        }
        Some(p) => parse_port(p).ok_or_else(|| {
            format!(
                "\"{shown}\": invalid port \"{}\" (digits only, 1-65535)",
                p.escape_debug()
            )
        })?,
    };
    Ok(Url {
        tls,
        host: host.to_string(),
        port,
        path,
    })
}

/// A port as RFC 3986 writes it: digits only (`u16::from_str` would take `+80`), 1-65535.
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|p| *p > 0)
}

/// The longest `Location` value followed (far above any real one; the head cap bounds it too).
const MAX_LOCATION: usize = 16 * 1024;

/// A `Location` value with what curl percent-encodes before following it: spaces and bytes
/// outside printable ASCII (controls, and the octets of non-ASCII text). nk writes a space as
/// `%20` everywhere, where curl writes `+` in the query: `+` is a space only in form encoding,
/// `%20` is one in every part of a URL. Everything else is kept exactly as the server sent it.
pub fn encode_location(location: &[u8]) -> String {
    let mut out = String::with_capacity(location.len());
    for &b in location {
        if b <= b' ' || b >= 0x7f {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// The URL a `Location` value points to, relative to `base` (RFC 3986 §5.2). An empty value
/// is `base` itself (§5.2.2 with an empty reference); the caller decides not to follow it.
pub fn resolve_location(base: &Url, location: &[u8]) -> Result<Url, String> {
    let trimmed = location.trim_ascii();
    if trimmed.len() > MAX_LOCATION {
        return Err(format!(
            "the Location is longer than {} KiB",
            MAX_LOCATION / 1024
        ));
    }
    // The authority (`scheme://host:port` or `//host:port`) is kept as sent, so that a space
    // or a raw byte in a host name is refused by name rather than encoded into a name that
    // cannot resolve; the path, query and fragment are encoded.
    // A scheme is ASCII: its length in the lossy text is its length in bytes.
    let lossy = String::from_utf8_lossy(trimmed);
    let authority_start = match scheme_of(&lossy) {
        Some(s) if trimmed[s.len() + 1..].starts_with(b"//") => Some(s.len() + 3),
        Some(_) => None,
        None => trimmed.starts_with(b"//").then_some(2),
    };
    let split = authority_start.map_or(0, |start| {
        start
            + trimmed[start..]
                .iter()
                .position(|b| matches!(b, b'/' | b'?' | b'#'))
                .unwrap_or(trimmed.len() - start)
    });
    let (authority, rest) = trimmed.split_at(split);
    let authority = std::str::from_utf8(authority)
        .map_err(|_| "the host in the Location is not UTF-8".to_string())?;
    let encoded = format!("{authority}{}", encode_location(rest));
    // The fragment is the client's own (§5.2.2): it is never sent.
    let location = encoded.split('#').next().unwrap_or_default();
    if location.is_empty() {
        return Ok(base.clone());
    }
    if scheme_of(location).is_some() {
        return parse_from(location, Source::Location);
    }
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = if base.tls { "https" } else { "http" };
        return parse_from(&format!("{scheme}://{rest}"), Source::Location);
    }
    let path = if location.starts_with('/') {
        location.to_string()
    } else if location.starts_with('?') {
        let base_path = base.path.split('?').next().unwrap_or("/");
        format!("{base_path}{location}")
    } else {
        let base_path = base.path.split('?').next().unwrap_or("/");
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{location}")
    };
    let path = remove_dot_segments(&path);
    check_clean("the Location path", &path)?;
    Ok(Url {
        tls: base.tls,
        host: base.host.clone(),
        port: base.port,
        path,
    })
}

fn remove_dot_segments(path: &str) -> String {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut joined = out.join("/");
    if !joined.starts_with('/') {
        joined.insert(0, '/');
    }
    match query {
        Some(q) => format!("{joined}?{q}"),
        None => joined,
    }
}

/// A `-H 'Name: value'` header, checked: a token name, no CR/LF/NUL in the value. An empty
/// value (`-H 'Accept:'`) removes a default header, as in curl.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once(':').ok_or_else(|| {
        format!(
            "header \"{}\" has no ':' (write 'Name: value')",
            text.escape_debug()
        )
    })?;
    let name = name.trim();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!(
            "header name \"{}\" is not a valid field name",
            name.escape_debug()
        ));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "header \"{name}\" contains a control character (CR, LF or another); nothing was sent"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// How the request line and default headers are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// HEAD.
    Head,
    /// GET.
    Get,
}

/// The request bytes. HTTP/1.1: Host, User-Agent, Accept, Connection: close, then `extra`
/// (a header of the same name replaces the default; an empty value removes it). HTTP/1.0:
/// the seeds' requests, `HEAD PATH HTTP/1.0` with no header, `GET` with Host and User-Agent.
pub fn build_request(
    method: Method,
    url: &Url,
    http10: bool,
    extra: &[(String, String)],
) -> Vec<u8> {
    let verb = match method {
        Method::Head => "HEAD",
        Method::Get => "GET",
    };
    build_request_with(verb, url, http10, extra, None)
}

/// [`build_request`] with any method (`-X`, a token the caller checked) and a body (`-d`):
/// a body gets Content-Length, and the form type curl's `-d` sends unless `extra` names a
/// Content-Type. HTTP/1.0 requests other than HEAD carry Host and User-Agent, as GET does.
pub fn build_request_with(
    verb: &str,
    url: &Url,
    http10: bool,
    extra: &[(String, String)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let method = if verb == "HEAD" {
        Method::Head
    } else {
        Method::Get
    };
    let mut extra = extra.to_vec();
    if let Some(body) = body {
        let named = |n: &str| extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(n));
        if !named("content-type") {
            extra.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        extra.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
        extra.push(("Content-Length".into(), body.len().to_string()));
    }
    let extra = &extra;
    let mut headers: Vec<(String, String)> = match (http10, method) {
        (false, _) => vec![
            ("Host".into(), url.authority()),
            ("User-Agent".into(), USER_AGENT.into()),
            ("Accept".into(), "*/*".into()),
            ("Connection".into(), "close".into()),
        ],
        (true, Method::Head) => Vec::new(),
        (true, Method::Get) => vec![
            ("Host".into(), url.authority()),
            ("User-Agent".into(), USER_AGENT.into()),
        ],
    };
    for (name, value) in extra {
        match headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(at) if value.is_empty() => {
                headers.remove(at);
            }
            Some(at) => headers[at] = (name.clone(), value.clone()),
            None if value.is_empty() => {}
            None => headers.push((name.clone(), value.clone())),
        }
    }
    let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let mut request = format!("{verb} {} {version}\r\n", url.path);
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body.unwrap_or_default());
    request
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: &'static str,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The fields in order, values as received (lossy UTF-8) but for obsolete folds, each
    /// replaced by a space (RFC 9112 §5.2).
    pub headers: Vec<(String, String)>,
    /// The first Location field's value, unfolded, as bytes: a redirect is followed to the
    /// exact bytes the server sent (percent-encoded where needed), not their lossy UTF-8.
    pub location: Option<Vec<u8>>,
    /// The head's length in bytes, blank line included.
    pub len: usize,
}

impl Head {
    /// The first value of a field, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// 1xx, other than 101: an interim response to skip.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// httparse as nk uses it: obsolete line folding accepted in responses, as RFC 9112 §5.2 asks
/// of a client (the fold is replaced by a space in [`Head::headers`]).
fn parser() -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    config.allow_obsolete_multiline_headers_in_responses(true);
    config
}

/// A field value with every obs-fold (OWS CRLF RWS, RFC 9112 §5.2) replaced by one space.
fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if matches!(value[i], b'\r' | b'\n') {
            while out.last().is_some_and(|b| matches!(b, b' ' | b'\t')) {
                out.pop();
            }
            while i < value.len() && matches!(value[i], b'\r' | b'\n' | b' ' | b'\t') {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    out
}

/// Parses a response head from the start of `bytes`: `Ok(None)` when more bytes are needed.
pub fn parse_head(bytes: &[u8]) -> Result<Option<Head>, String> {
    let mut fields = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    match parser().parse_response(&mut response, bytes) {
        Ok(httparse::Status::Partial) => {
            if bytes.len() >= MAX_HEAD {
                Err(format!(
                    "the response head is longer than {} KiB",
                    MAX_HEAD / 1024
                ))
            } else {
                Ok(None)
            }
        }
        Ok(httparse::Status::Complete(len)) => {
            let values: Vec<(String, Vec<u8>)> = response
                .headers
                .iter()
                .map(|h| (h.name.to_string(), unfold(h.value)))
                .collect();
            let location = values
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.clone());
            Ok(Some(Head {
                version: if response.version == Some(0) {
                    "HTTP/1.0"
                } else {
                    "HTTP/1.1"
                },
                status: response.code.unwrap_or(0),
                reason: response.reason.unwrap_or("").to_string(),
                headers: values
                    .into_iter()
                    .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
                    .collect(),
                location,
                len,
            }))
        }
        Err(httparse::Error::TooManyHeaders) => Err(format!(
            "the response has more than {MAX_HEADERS} header fields"
        )),
        Err(err) => Err(match line_at_fault(bytes) {
            Some((number, line)) => {
                format!(
                    "malformed response ({err}) at line {number}: {}",
                    quote_line(line)
                )
            }
            None => format!("malformed response ({err})"),
        }),
    }
}

/// The most bytes of a faulty line quoted in an error.
const MAX_QUOTED: usize = 80;

/// `line` for an error message: escaped (no control character reaches the terminal), at
/// most [`MAX_QUOTED`] bytes of it, and its length when it was cut.
fn quote_line(line: &[u8]) -> String {
    let shown = &line[..line.len().min(MAX_QUOTED)];
    let text: String = String::from_utf8_lossy(shown).escape_debug().collect();
    if shown.len() < line.len() {
        format!("\"{text}...\" ({} bytes)", line.len())
    } else {
        format!("\"{text}\"")
    }
}

/// Which line (1 = the status line) of a head httparse refused is at fault, and its bytes:
/// each line is checked alone, by httparse too, so that the error quotes the line at fault
/// rather than the status line. `None` when no single line is (the caller says so).
fn line_at_fault(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let config = parser();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = trim_cr(line);
        let alone = [line, b"\r\n\r\n"].concat();
        let ok = if i == 0 {
            let mut none: [httparse::Header<'_>; 0] = [];
            config
                .parse_response(&mut httparse::Response::new(&mut none), &alone)
                .is_ok()
        } else if line.is_empty() {
            return None;
        } else if matches!(line[0], b' ' | b'\t') {
            // A fold continues the field above; there is none above the first.
            i > 1
                && line
                    .iter()
                    .all(|b| *b == b'\t' || (*b >= b' ' && *b != 0x7f))
        } else {
            let mut one = [httparse::EMPTY_HEADER; 1];
            httparse::parse_headers(&alone, &mut one).is_ok()
        };
        if !ok {
            return Some((i + 1, line));
        }
    }
    None
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked coding.
    Chunked,
    /// Until the server closes.
    UntilClose,
}

/// The framing of the body that follows `head`, for a request made with `method`.
pub fn framing(method: Method, head: &Head) -> Result<Framing, String> {
    if method == Method::Head || head.status == 204 || head.status == 304 || head.status < 200 {
        return Ok(Framing::None);
    }
    if let Some(codings) = head.header("transfer-encoding") {
        let last = codings.rsplit(',').next().unwrap_or("").trim();
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let lengths: Vec<&str> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    match lengths.first() {
        None => Ok(Framing::UntilClose),
        Some(first) => {
            if lengths.iter().any(|l| l != first) {
                return Err("conflicting Content-Length fields".into());
            }
            first
                .parse::<u64>()
                .map(Framing::Length)
                .map_err(|_| format!("invalid Content-Length \"{first}\""))
        }
    }
}

/// One step of the chunked decoder.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// `n` bytes of the input were consumed; more input is needed to go on.
    NeedMore,
    /// Body data at `input[start..end]`; consume up to `end`.
    Data {
        /// Where the data starts in the input.
        start: usize,
        /// Where it ends (and what to consume).
        end: usize,
    },
    /// A piece of framing of this many bytes was consumed.
    Framing(usize),
    /// The last chunk and the trailers were consumed (this many bytes): the body is complete.
    Done(usize),
}

/// The chunked decoder's state between calls.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    /// Bytes left in the current chunk's data.
    remaining: u64,
    /// Expecting the CRLF after a chunk's data.
    after_data: bool,
    /// Reading trailers (after the zero-size chunk); bytes of trailers seen.
    trailers: Option<usize>,
}

impl ChunkedDecoder {
    /// Whether the last chunk has been read: what comes now is trailer fields (each a
    /// [`Chunk::Framing`] step) and the blank line ([`Chunk::Done`]).
    pub fn in_trailers(&self) -> bool {
        self.trailers.is_some()
    }

    /// Looks at the start of `input` and says what it is; the caller consumes what it says
    /// and calls again.
    pub fn step(&mut self, input: &[u8]) -> Result<Chunk, String> {
        if let Some(seen) = self.trailers {
            let Some(line_end) = find_line(input) else {
                if seen + input.len() > MAX_HEAD {
                    return Err("the chunked trailers are too long".into());
                }
                return Ok(Chunk::NeedMore);
            };
            let consumed = line_end + 1;
            self.trailers = Some(seen + consumed);
            let line = trim_cr(&input[..line_end]);
            return Ok(if line.is_empty() {
                Chunk::Done(consumed)
            } else {
                Chunk::Framing(consumed)
            });
        }
        if self.remaining > 0 {
            if input.is_empty() {
                return Ok(Chunk::NeedMore);
            }
            let take = (self.remaining.min(input.len() as u64)) as usize;
            self.remaining -= take as u64;
            self.after_data = self.remaining == 0;
            return Ok(Chunk::Data {
                start: 0,
                end: take,
            });
        }
        let Some(line_end) = find_line(input) else {
            if input.len() > MAX_CHUNK_LINE {
                return Err("a chunk-size line is too long".into());
            }
            return Ok(Chunk::NeedMore);
        };
        let line = trim_cr(&input[..line_end]);
        let consumed = line_end + 1;
        if self.after_data {
            if !line.is_empty() {
                return Err("chunk data is not followed by CRLF".into());
            }
            self.after_data = false;
            return Ok(Chunk::Framing(consumed));
        }
        let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
        let size_text = std::str::from_utf8(size_text).unwrap_or("").trim();
        if size_text.is_empty() || size_text.len() > 16 {
            return Err(format!(
                "invalid chunk size \"{}\"",
                String::from_utf8_lossy(line).escape_debug()
            ));
        }
        let size = u64::from_str_radix(size_text, 16).map_err(|_| {
            format!(
                "invalid chunk size \"{}\"",
                String::from_utf8_lossy(line).escape_debug()
            )
        })?;
        if size == 0 {
            self.trailers = Some(0);
        } else {
            self.remaining = size;
        }
        Ok(Chunk::Framing(consumed))
    }
}

fn find_line(input: &[u8]) -> Option<usize> {
    input.iter().position(|b| *b == b'\n')
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_hosts_hold_an_address_and_a_scope_only() {
        // Issue 19 items 5 and 6.
        for bad in [
            "http://[127.0.0.1]junk:99/",
            "http://[::1]junk/",
            "http://[::1[]/",
            "http://[fe80::1%[x]/",
            "http://[fe80::1%a b]/",
            "http://[fe80::1%]/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let url = parse_url("http://[fe80::1%eth0]:8080/x").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("fe80::1%eth0", 8080));
        let base = parse_url("http://h/a/b").unwrap();
        assert_eq!(resolve_location(&base, b"c#frag").unwrap().path, "/a/c");
    }

    fn url(text: &str) -> Url {
        parse_url(text).unwrap()
    }

    #[test]
    fn urls_in_every_form() {
        assert_eq!(
            url("http://example.com"),
            Url {
                tls: false,
                host: "example.com".into(),
                port: 80,
                path: "/".into()
            }
        );
        let secure = url("HTTPS://example.com/x");
        assert!(secure.tls);
        assert_eq!(secure.port, 443);
        assert_eq!(secure.authority(), "example.com");
        assert_eq!(secure.to_string(), "https://example.com/x");
        assert_eq!(url("https://h:80/").authority(), "h:80");
        assert_eq!(url("127.0.0.1:8080/a/b?x=1").path, "/a/b?x=1");
        assert_eq!(url("127.0.0.1:8080?x=1").path, "/?x=1");
        assert_eq!(url("HTTP://[::1]:81/x#frag").host, "::1");
        assert_eq!(url("http://[::1]:81/x").authority(), "[::1]:81");
        assert_eq!(url("host/").authority(), "host");
        assert!(parse_url("ftp://x/")
            .unwrap_err()
            .contains("unsupported scheme"));
        assert!(parse_url("http://u:p@host/").is_err());
        assert!(parse_url("http://host:0/").is_err());
        assert!(parse_url("http://host:99999/").is_err());
        assert!(parse_url("::1").is_err());
        assert!(parse_url("http:///x").is_err());
        assert!(parse_url("host/a\r\nX: y")
            .unwrap_err()
            .contains("carriage return"));
        assert!(parse_url("host/a b").unwrap_err().contains("space"));
        assert!(parse_url("ho\nst/").is_err());
    }

    #[test]
    fn locations_resolve_against_the_base() {
        let base = url("http://h:81/a/b/c?q");
        let at = |l: &str| resolve_location(&base, l.as_bytes()).unwrap().to_string();
        assert_eq!(at("/x"), "http://h:81/x");
        assert_eq!(at("d"), "http://h:81/a/b/d");
        assert_eq!(at("../d"), "http://h:81/a/d");
        assert_eq!(at("./"), "http://h:81/a/b/");
        assert_eq!(at("?z=1"), "http://h:81/a/b/c?z=1");
        assert_eq!(at("http://other/p"), "http://other/p");
        assert_eq!(at("//other:82/p"), "http://other:82/p");
        assert_eq!(at("../../../../x"), "http://h:81/x");
        assert_eq!(at("https://h/"), "https://h/");
        let secure = url("https://h/a");
        assert_eq!(
            resolve_location(&secure, b"//other/p").unwrap().to_string(),
            "https://other/p"
        );
        assert_eq!(
            resolve_location(&secure, b"b").unwrap().to_string(),
            "https://h/b"
        );
    }

    #[test]
    fn a_scheme_ends_at_the_first_colon_before_any_slash_query_or_fragment() {
        assert_eq!(scheme_of("http://h/"), Some("http"));
        assert_eq!(scheme_of("svn+ssh://h/"), Some("svn+ssh"));
        assert_eq!(scheme_of("/login?next=https://x/"), None);
        assert_eq!(scheme_of("127.0.0.1:8080/ok?x=http://y"), None);
        assert_eq!(scheme_of("a/b:c"), None);
        assert_eq!(scheme_of("?x=a:b"), None);
        assert_eq!(scheme_of("#a:b"), None);
        assert_eq!(scheme_of(":x"), None);
        assert_eq!(scheme_of("1a:x"), None);
        assert_eq!(scheme_of("a_b:x"), None);
    }

    #[test]
    fn user_urls_are_checked_strictly() {
        let u = url("127.0.0.1:8080/ok?x=http://y");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8080));
        assert_eq!(u.path, "/ok?x=http://y");
        assert_eq!(url("localhost:8080/").port, 8080);
        assert_eq!(url("http://h/a?u=ftp://x").path, "/a?u=ftp://x");
        let err = |t: &str| parse_url(t).unwrap_err();
        assert!(
            err("http://[::1]x/").contains("only \":PORT\""),
            "{}",
            err("http://[::1]x/")
        );
        assert!(err("http://[::1]x:80/").contains("after \"[::1]\""));
        assert!(err("http://[example.com]/").contains("not an IPv6 address"));
        assert_eq!(url("http://[::1]/").port, 80);
        assert!(err("http://h:+80/").contains("invalid port \"+80\""));
        assert!(err("h:+80").contains("invalid port"));
        assert!(err("http://h:080x/").contains("invalid port"));
        assert!(err("http://h:000080/").contains("invalid port"));
        assert_eq!(url("http://h:08080/").port, 8080);
        assert!(err("http://h:/").contains("empty port"));
        assert!(err("h:").contains("empty port"));
        let e = err("http:/host/");
        assert!(e.contains("\"http:\" must be followed by \"//\""), "{e}");
        assert!(err("HTTPS:host").contains("\"//\""));
        assert!(err("ftp:/x").contains("unsupported scheme \"ftp:\""));
    }

    #[test]
    fn locations_are_parsed_tolerantly_and_exactly() {
        let base = url("http://h:81/a/b?q");
        let at = |l: &[u8]| resolve_location(&base, l).map(|u| u.to_string());
        assert_eq!(
            at(b"/login?next=https://x/").unwrap(),
            "http://h:81/login?next=https://x/"
        );
        assert_eq!(at(b"c?u=http://y").unwrap(), "http://h:81/a/c?u=http://y");
        assert_eq!(at(b"/a b?c d").unwrap(), "http://h:81/a%20b?c%20d");
        assert_eq!(at(b"/caf\xc3\xa9\xff").unwrap(), "http://h:81/caf%C3%A9%FF");
        assert_eq!(at(b"/t\tu\x01").unwrap(), "http://h:81/t%09u%01");
        assert_eq!(
            at(b"/already%20encoded").unwrap(),
            "http://h:81/already%20encoded"
        );
        assert_eq!(at(b"  /trimmed  ").unwrap(), "http://h:81/trimmed");
        assert_eq!(at(b"/x#frag ment").unwrap(), "http://h:81/x");
        assert_eq!(at(b"http://o:/p q").unwrap(), "http://o/p%20q");
        // An empty reference is the base itself (RFC 3986 §5.2.2).
        assert_eq!(at(b"").unwrap(), base.to_string());
        assert_eq!(at(b"  ").unwrap(), base.to_string());
        assert!(at(b"ftp://o/").unwrap_err().contains("unsupported scheme"));
        assert!(at(b"mailto:a@b")
            .unwrap_err()
            .contains("unsupported scheme"));
        assert!(at(b"http://o:+1/").unwrap_err().contains("invalid port"));
        assert!(at(b"http://[::1]x/").is_err());
        assert!(
            at(b"http://h o/").is_err(),
            "a space in the host is not followed"
        );
        assert!(at(&vec![b'a'; MAX_LOCATION + 1])
            .unwrap_err()
            .contains("longer"));
    }

    #[test]
    fn folded_fields_are_unfolded_and_bad_lines_quoted() {
        let head =
            parse_head(b"HTTP/1.1 200 OK\r\nX-F: a \r\n  b\r\n\tc\r\nLocation: /x\r\n y\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(head.header("x-f"), Some("a b c"));
        assert_eq!(head.location.as_deref(), Some(&b"/x y"[..]));
        let bare_lf = parse_head(b"HTTP/1.1 200 OK\nX-F: a\n b\n\n")
            .unwrap()
            .unwrap();
        assert_eq!(bare_lf.header("x-f"), Some("a b"));
        let err = |b: &[u8]| parse_head(b).unwrap_err();
        let e = err(b"HTTP/1.1 200 OK\r\nServer: t\r\nno colon here\r\n\r\n");
        assert!(e.ends_with("at line 3: \"no colon here\""), "{e}");
        let e = err(b"HTTP/1.1 200 OK\r\n folded first\r\n\r\n");
        assert!(e.contains("at line 2: \" folded first\""), "{e}");
        let e = err(b"HTTP/1.1 2000 OK\r\n\r\n");
        assert!(e.contains("at line 1: \"HTTP/1.1 2000 OK\""), "{e}");
        let e = err(b"HTTP/1.1 200 OK\r\nX: a\x1b[31mb\r\n\r\n");
        assert!(e.contains("\"X: a\\u{1b}[31mb\""), "{e}");
        let mut long = b"HTTP/1.1 200 OK\r\n".to_vec();
        long.extend_from_slice(&[b'x'; 5000]);
        long.extend_from_slice(b"\r\n\r\n");
        let e = err(&long);
        assert!(e.len() < 200 && e.contains("(5000 bytes)"), "{e}");
        // Never a panic, whatever the bytes.
        for bytes in [
            &b"\n\n\n"[..],
            b"\r",
            b" \r\n",
            b"HTTP/1.1 200 OK\r\n\t\r\n\r\n",
            b"\xff\xfe",
        ] {
            let _ = parse_head(bytes);
        }
    }

    #[test]
    fn requests_are_built_as_promised() {
        let u = url("127.0.0.1:8080/p?q");
        assert_eq!(
            build_request(Method::Head, &u, false, &[]),
            format!(
                "HEAD /p?q HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            )
            .into_bytes()
        );
        assert_eq!(
            build_request(Method::Head, &url("h"), true, &[]),
            b"HEAD / HTTP/1.0\r\n\r\n"
        );
        assert_eq!(
            build_request(Method::Get, &url("h"), true, &[]),
            format!("GET / HTTP/1.0\r\nHost: h\r\nUser-Agent: {USER_AGENT}\r\n\r\n").into_bytes()
        );
        let extra = vec![
            ("user-agent".to_string(), "x/1".to_string()),
            ("Accept".to_string(), String::new()),
            ("X-Test".to_string(), "1".to_string()),
        ];
        assert_eq!(
            build_request(Method::Head, &url("h"), false, &extra),
            b"HEAD / HTTP/1.1\r\nHost: h\r\nuser-agent: x/1\r\nConnection: close\r\nX-Test: 1\r\n\r\n"
        );
    }

    #[test]
    fn headers_are_checked() {
        assert_eq!(
            parse_header("X-A:  b c ").unwrap(),
            ("X-A".into(), "b c".into())
        );
        assert!(parse_header("X-A b").is_err());
        assert!(parse_header("X A: b").is_err());
        assert!(parse_header("X-A: b\r\nEvil: 1").is_err());
        assert!(parse_header("X-A: b\0").is_err());
        assert!(parse_header(": b").is_err());
    }

    #[test]
    fn heads_parse_with_caps() {
        let head = parse_head(b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(
            (head.status, head.reason.as_str(), head.version),
            (200, "OK", "HTTP/1.1")
        );
        assert_eq!(head.header("content-length"), Some("5"));
        assert_eq!(head.len, 49);
        assert_eq!(parse_head(b"HTTP/1.0 200 OK\r\nA: b\r\n").unwrap(), None);
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")
            .unwrap_err()
            .contains("malformed"));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..MAX_HEADERS + 1 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(parse_head(&many).unwrap_err().contains("more than"));
        let long = vec![b'a'; MAX_HEAD];
        assert!(parse_head(&[b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &long].concat()).is_err());
        let interim = parse_head(b"HTTP/1.1 100 Continue\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(interim.is_interim());
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let head = |text: &str| parse_head(text.as_bytes()).unwrap().unwrap();
        let chunked = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
        );
        assert_eq!(framing(Method::Get, &chunked), Ok(Framing::Chunked));
        assert_eq!(framing(Method::Head, &chunked), Ok(Framing::None));
        let sized = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(framing(Method::Get, &sized), Ok(Framing::Length(3)));
        let none = head("HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(framing(Method::Get, &none), Ok(Framing::None));
        let open = head("HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(framing(Method::Get, &open), Ok(Framing::UntilClose));
        let conflict = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
        assert!(framing(Method::Get, &conflict).is_err());
    }

    fn decode_all(input: &[u8], feed: usize) -> Result<Vec<u8>, String> {
        let mut decoder = ChunkedDecoder::default();
        let mut pending: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.step(&pending)? {
                Chunk::NeedMore => {
                    if fed >= input.len() {
                        return Err("truncated".into());
                    }
                    let next = (fed + feed).min(input.len());
                    pending.extend_from_slice(&input[fed..next]);
                    fed = next;
                }
                Chunk::Data { start, end } => {
                    out.extend_from_slice(&pending[start..end]);
                    pending.drain(..end);
                }
                Chunk::Framing(n) => {
                    pending.drain(..n);
                }
                Chunk::Done(n) => {
                    pending.drain(..n);
                    return Ok(out);
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_pieces() {
        let body = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n";
        for feed in [1, 2, 3, 7, 100] {
            assert_eq!(
                decode_all(body, feed).unwrap(),
                b"hello, world",
                "feed {feed}"
            );
        }
        assert!(decode_all(b"zz\r\n", 4).is_err());
        assert!(decode_all(b"3\r\nabcX\r\n0\r\n\r\n", 4).is_err());
        assert!(decode_all(b"3\r\nab", 4).is_err());
        assert!(decode_all(&[b'1'; 5000], 5000).is_err());
    }
}
