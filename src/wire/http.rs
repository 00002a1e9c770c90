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

/// Parses `http[s]://host[:port][/path][?query]` or `host[:port][/path]` (http).
pub fn parse_url(text: &str) -> Result<Url, String> {
    let (tls, rest) = match text.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
        Some((scheme, _)) => {
            return Err(format!(
                "unsupported scheme \"{scheme}://\": nk head speaks http:// and https:// (give \
                 http[s]://HOST[:PORT]/PATH or HOST[:PORT]/PATH)"
            ))
        }
        None => (false, text),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = match path.chars().next() {
        None => "/".to_string(),
        Some('?') => format!("/{path}"),
        Some(_) => path.to_string(),
    };
    if authority.contains('@') {
        return Err(format!(
            "\"{text}\": user names in URLs are not supported; send credentials with -H 'Authorization: ...'"
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("\"{text}\": unclosed [ in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => {
                return Err(format!(
                    "\"{text}\": write an IPv6 host in brackets, e.g. http://[::1]:8080/"
                ))
            }
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{text}\": missing host"));
    }
    check_clean("the host", host)?;
    check_clean("the path", &path)?;
    let port = match port {
        None if tls => 443,
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("\"{text}\": invalid port \"{p}\" (1-65535)")),
        },
    };
    Ok(Url {
        tls,
        host: host.to_string(),
        port,
        path,
    })
}

/// The URL a `Location` value points to, relative to `base` (RFC 3986 §5.2).
pub fn resolve_location(base: &Url, location: &str) -> Result<Url, String> {
    let location = location.trim();
    if location.contains("://") {
        return parse_url(location);
    }
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = if base.tls { "https" } else { "http" };
        return parse_url(&format!("{scheme}://{rest}"));
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
    request.into_bytes()
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
    /// The fields in order, values as received (lossy UTF-8).
    pub headers: Vec<(String, String)>,
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

/// Parses a response head from the start of `bytes`: `Ok(None)` when more bytes are needed.
pub fn parse_head(bytes: &[u8]) -> Result<Option<Head>, String> {
    let mut fields = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(bytes) {
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
        Ok(httparse::Status::Complete(len)) => Ok(Some(Head {
            version: if response.version == Some(0) {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            status: response.code.unwrap_or(0),
            reason: response.reason.unwrap_or("").to_string(),
            headers: response
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            len,
        })),
        Err(httparse::Error::TooManyHeaders) => Err(format!(
            "the response has more than {MAX_HEADERS} header fields"
        )),
        Err(err) => {
            let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
            let shown: String = String::from_utf8_lossy(&first[..first.len().min(60)])
                .trim_end()
                .escape_debug()
                .collect();
            Err(format!("malformed response ({err}): \"{shown}\""))
        }
    }
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
        let at = |l: &str| resolve_location(&base, l).unwrap().to_string();
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
            resolve_location(&secure, "//other/p").unwrap().to_string(),
            "https://other/p"
        );
        assert_eq!(
            resolve_location(&secure, "b").unwrap().to_string(),
            "https://h/b"
        );
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
