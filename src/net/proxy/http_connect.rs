//! HTTP CONNECT (RFC 9110 §9.3.6), client side: ask an HTTP proxy for a tunnel to HOST:PORT.
//!
//! The proxy's response head is parsed by httparse with a 64 KiB cap (a proxy that never
//! ends its head cannot make us buffer without limit). A proxy may send the target's first
//! bytes in the same segment as its `200` (a server that speaks first, such as SMTP or SSH,
//! often does): those bytes belong to the tunnel. The handshake therefore only peeks at the
//! socket and then consumes exactly the head, so what follows stays in the socket for the
//! command, whatever it does with the stream next (relay, TLS, splice).

use std::io::{self, Read, Write};
use std::net::TcpStream;

use anyhow::{anyhow, bail, Result};

use super::socks::HostOrName;
use super::{Credentials, HopTarget, Step, Unreached};

/// The largest response head accepted from a proxy.
pub const HEAD_CAP: usize = 64 * 1024;
/// Headers per response head.
const HEADERS_MAX: usize = 100;

/// The CONNECT request for `target`, with Basic credentials when given.
pub fn request(target: &HopTarget, credentials: Option<&Credentials>) -> Result<Vec<u8>> {
    let authority = match &target.host {
        HostOrName::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", target.port),
        HostOrName::Ip(ip) => format!("{ip}:{}", target.port),
        HostOrName::Name(name) if name.contains(':') => format!("[{name}]:{}", target.port),
        HostOrName::Name(name) => format!("{name}:{}", target.port),
    };
    if authority.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        bail!("\"{authority}\" cannot go in a CONNECT request");
    }
    let mut text = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: nk/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(header) = credentials.map(basic_authorization) {
        text.push_str(&format!("Proxy-Authorization: {header}\r\n"));
    }
    text.push_str("\r\n");
    Ok(text.into_bytes())
}

/// `Basic BASE64(user:pass)` (RFC 7617).
pub fn basic_authorization(credentials: &Credentials) -> String {
    let pair = format!("{}:{}", credentials.user, credentials.pass);
    format!("Basic {}", crate::wire::smtp::base64(pair.as_bytes()))
}

/// A proxy's response head, as far as CONNECT cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The length of the head, blank line included: the tunnel starts after it.
    pub head_len: usize,
    /// The status code.
    pub status: u16,
    /// `HTTP/1.1 200 Connection established`, as sent (lossy UTF-8).
    pub status_line: String,
    /// The schemes of every Proxy-Authenticate header (`Basic`, `Digest`...).
    pub auth_schemes: Vec<String>,
    /// Content-Length, when given (and a number).
    pub content_length: Option<u64>,
    /// Whether the body is `text/plain` (a reason a person can read, as nk's server sends).
    pub text_plain: bool,
}

/// Parses the response head at the start of `buf`: `Ok(None)` while it is incomplete (and
/// under [`HEAD_CAP`]), an error for what is not HTTP or is too long.
pub fn parse_reply(buf: &[u8]) -> Result<Option<Reply>> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut response = httparse::Response::new(&mut headers);
    let parsed = response.parse(buf);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= HEAD_CAP => {
            bail!(
                "the proxy's response head is longer than {} KiB",
                HEAD_CAP / 1024
            )
        }
        Ok(httparse::Status::Partial) if looks_like_http(buf) => return Ok(None),
        Ok(httparse::Status::Partial) | Err(_) if !looks_like_http(buf) => {
            bail!("{}", super::foreign_reply("HTTP", buf))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            bail!("the proxy's response head has more than {HEADERS_MAX} headers")
        }
        Err(e) => bail!("the proxy's response head is malformed: {e}"),
    };
    let status = response
        .code
        .ok_or_else(|| anyhow!("the proxy's response has no status"))?;
    // The first line of the head (httparse takes a bare LF as a line end too), shown as
    // printable text: it goes into an error message.
    let head = &buf[..head_len];
    let line = &head[..head.iter().position(|&b| b == b'\n').unwrap_or(head_len)];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let status_line: String = String::from_utf8_lossy(&line[..line.len().min(200)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    let auth_schemes = response
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("proxy-authenticate"))
        .map(|h| {
            let value = String::from_utf8_lossy(h.value);
            value.split_whitespace().next().unwrap_or("").to_string()
        })
        .collect();
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let content_length = header("content-length").and_then(|v| v.parse().ok());
    let text_plain = header("content-type").is_some_and(|v| v.starts_with("text/plain"));
    Ok(Some(Reply {
        head_len,
        status,
        status_line,
        auth_schemes,
        content_length,
        text_plain,
    }))
}

/// Whether `buf` could be the start of `HTTP/`.
fn looks_like_http(buf: &[u8]) -> bool {
    let n = buf.len().min(5);
    buf[..n] == b"HTTP/"[..n]
}

/// What a final (non-1xx) reply means: Ok for 2xx, otherwise the error in words.
pub fn judge(reply: &Reply, credentials: Option<&Credentials>) -> Result<()> {
    judge_with_body(reply, credentials, None)
}

/// [`judge`], with the first line of a short plain-text body (the proxy's reason, as nk's
/// own proxy server gives it), shown after the status line.
pub fn judge_with_body(
    reply: &Reply,
    credentials: Option<&Credentials>,
    body: Option<&str>,
) -> Result<()> {
    let line = &match body {
        Some(body) => format!("{} (body: \"{body}\")", reply.status_line),
        None => reply.status_line.clone(),
    };
    match reply.status {
        200..=299 => Ok(()),
        // tinyproxy answers wrong credentials with 401 rather than 407.
        401 if credentials.is_some() => bail!("authentication failed: the proxy answered {line}"),
        407 => {
            let basic = reply
                .auth_schemes
                .iter()
                .any(|s| s.eq_ignore_ascii_case("basic"));
            match (credentials, basic || reply.auth_schemes.is_empty()) {
                (Some(_), true) => bail!("authentication failed: the proxy answered {line}"),
                (None, true) => Err(anyhow::Error::new(crate::exit::Hinted {
                    message: format!("authentication required: the proxy answered {line}"),
                    hint: "give --proxy-auth USER:PASS or http://USER:PASS@HOST:PORT".into(),
                })),
                (_, false) => bail!(
                    "the proxy wants {} authentication, and nk speaks only Basic: it answered {line}",
                    reply.auth_schemes.join(" or ")
                ),
            }
        }
        status => Err(Unreached {
            message: format!("the proxy refused the tunnel: it answered {line}"),
            why: format!("it answered {line}"),
            refused: status < 500,
        }
        .into()),
    }
}

/// The most of a refusal's body read for its first line.
pub const BODY_CAP: usize = 1024;
/// The most of that line shown.
const BODY_LINE_MAX: usize = 200;
/// How long a body that does not come is waited for (within -w): the status line alone
/// says what happened.
const BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The first line of a `text/plain` body with a Content-Length, read from `stream` (at
/// most [`BODY_CAP`] bytes), shown escaped and cut to [`BODY_LINE_MAX`] characters; `None`
/// for any other body, or when it does not arrive.
fn body_line(stream: &mut TcpStream, step: &Step, reply: &Reply) -> Option<String> {
    let len = reply
        .content_length
        .filter(|&n| n > 0 && reply.text_plain)?;
    let len = (len as usize).min(BODY_CAP);
    step.bound(stream).ok()?;
    let left = step.deadline.remaining().ok()?;
    stream
        .set_read_timeout(Some(left.map_or(BODY_WAIT, |l| l.min(BODY_WAIT))))
        .ok()?;
    let mut body = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match stream.read(&mut body[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Some(first_line(&body[..filled])).filter(|l| !l.is_empty())
}

/// The first line of `body`, as printable escaped text of at most [`BODY_LINE_MAX`] chars.
pub fn first_line(body: &[u8]) -> String {
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = &body[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    let mut shown: String = text
        .chars()
        .take(BODY_LINE_MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > BODY_LINE_MAX {
        shown.push_str("...");
    }
    shown
}

/// Asks the HTTP proxy on `stream` for a tunnel to `target`.
pub fn connect(stream: &mut TcpStream, step: &mut Step, target: &HopTarget) -> Result<()> {
    let request = request(target, step.credentials)?;
    step.bound(stream)?;
    stream
        .write_all(&request)
        .map_err(|e| step.io_failure(e, "CONNECT request"))?;
    // 1xx interim responses may precede the real one; a proxy that sends nothing else is
    // not waited on for ever.
    for _ in 0..INTERIM_MAX {
        let reply = read_head(stream, step)?;
        if !(100..200).contains(&reply.status) {
            let body = match reply.status {
                200..=299 => None,
                _ => body_line(stream, step, &reply),
            };
            return judge_with_body(&reply, step.credentials, body.as_deref());
        }
    }
    bail!("the proxy sent {INTERIM_MAX} interim (1xx) responses and no answer")
}

/// Interim responses accepted before the final one.
const INTERIM_MAX: usize = 10;

/// Reads one response head, consuming exactly its bytes: peeks, and takes from the socket
/// only what is known to be head.
fn read_head(stream: &mut TcpStream, step: &mut Step) -> Result<Reply> {
    let mut head: Vec<u8> = Vec::new();
    let mut window = vec![0u8; 16 * 1024];
    loop {
        step.bound(stream)?;
        let room = (HEAD_CAP - head.len()).min(window.len());
        let n = match stream.peek(&mut window[..room]) {
            Ok(0) => bail!("the proxy closed the connection before its response head was complete"),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(step.io_failure(e, "CONNECT response")),
        };
        let mut seen = head.clone();
        seen.extend_from_slice(&window[..n]);
        match parse_reply(&seen)? {
            Some(reply) => {
                let rest = reply.head_len - head.len();
                stream
                    .read_exact(&mut window[..rest])
                    .map_err(|e| step.io_failure(e, "CONNECT response"))?;
                return Ok(reply);
            }
            None => {
                // All of it is head: take it out of the socket, then wait for more.
                stream
                    .read_exact(&mut window[..n])
                    .map_err(|e| step.io_failure(e, "CONNECT response"))?;
                head.extend_from_slice(&window[..n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_200_keeps_what_follows() {
        let buf = b"HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\nSSH-2.0";
        let reply = parse_reply(buf).unwrap().unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(&buf[reply.head_len..], b"SSH-2.0");
        assert_eq!(reply.status_line, "HTTP/1.1 200 Connection established");
    }

    #[test]
    fn the_status_line_ends_at_the_first_line_end() {
        let reply = parse_reply(b"HTTP/1.1 407 No\tway\n\n").unwrap().unwrap();
        assert_eq!(reply.status_line, "HTTP/1.1 407 No.way");
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        assert_eq!(parse_reply(b"HTT").unwrap(), None);
        assert_eq!(parse_reply(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
    }

    #[test]
    fn other_protocols_are_named() {
        let err = parse_reply(&[5, 0]).unwrap_err().to_string();
        assert!(err.contains("does not speak HTTP"), "{err}");
        let err = parse_reply(b"SSH-2.0-OpenSSH\r\n").unwrap_err().to_string();
        assert!(err.contains("does not speak HTTP"), "{err}");
    }

    #[test]
    fn the_cap_holds() {
        let mut buf = b"HTTP/1.1 200 OK\r\n".to_vec();
        while buf.len() < HEAD_CAP {
            buf.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaa\r\n");
        }
        assert!(parse_reply(&buf).is_err());
    }

    #[test]
    fn refusals_and_auth() {
        let reply =
            parse_reply(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Digest realm=x\r\n\r\n")
                .unwrap()
                .unwrap();
        let err = judge(&reply, None).unwrap_err().to_string();
        assert!(err.contains("wants Digest authentication"), "{err}");
        let reply = parse_reply(b"HTTP/1.0 403 Filtered\r\n\r\n")
            .unwrap()
            .unwrap();
        let err = judge(&reply, None).unwrap_err().to_string();
        assert_eq!(
            err,
            "the proxy refused the tunnel: it answered HTTP/1.0 403 Filtered"
        );
    }

    #[test]
    fn a_refusal_quotes_the_first_line_of_its_plain_body() {
        let reply = parse_reply(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 9\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((reply.content_length, reply.text_plain), (Some(9), true));
        let err = judge_with_body(&reply, None, Some("no route")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the proxy refused the tunnel: it answered HTTP/1.1 502 Bad Gateway (body: \"no route\")"
        );
        assert!(err.downcast_ref::<Unreached>().is_some_and(|u| !u.refused));
        assert_eq!(
            first_line(b"why \"so\"\x1b[31m\r\nsecond"),
            "why \\\"so\\\"\\u{1b}[31m"
        );
        let long = first_line(&[b'a'; 500]);
        assert_eq!(long.len(), BODY_LINE_MAX + 3, "{long}");
    }

    #[test]
    fn the_request_has_basic_credentials() {
        let target = HopTarget {
            host: HostOrName::Ip("::1".parse().unwrap()),
            port: 22,
        };
        let credentials = Credentials {
            user: "Aladdin".into(),
            pass: "open sesame".into(),
        };
        let text = String::from_utf8(request(&target, Some(&credentials)).unwrap()).unwrap();
        assert!(text.starts_with("CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n"));
        assert!(text.contains("Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"));
    }
}
