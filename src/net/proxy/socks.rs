//! SOCKS4, SOCKS4a (the protocol of 1992, with the 4a name extension) and SOCKS5 (RFC 1928,
//! with RFC 1929 username/password authentication), client side.
//!
//! Requests are encoded and replies decoded by pure functions over byte slices, so the fuzz
//! target `proxy_reply` can feed them anything a proxy might send. A reply decoder says
//! either how many bytes the whole reply takes (`Need`) or what it means (`Done`): the
//! handshake then reads exactly that many bytes and not one more, so bytes the proxy sends
//! right after its reply (the target's first bytes) stay in the socket for the command.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};

use anyhow::{anyhow, bail, Result};

use super::{HopTarget, Step, Unreached};

/// A reply decoder's verdict on the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<T> {
    /// The reply is `usize` bytes long in all: read up to that, then decode again.
    Need(usize),
    /// The whole reply, decoded.
    Done(T),
}

/// RFC 1929's limit on a username or a password: one length byte.
pub const CREDENTIAL_MAX: usize = 255;
/// The SOCKS5 domain name field: one length byte.
pub const NAME_MAX: usize = 255;

// ---- SOCKS4 / 4a -------------------------------------------------------------------------

/// The SOCKS4 CONNECT request; `Name` targets use 4a (IP 0.0.0.x, then the name).
pub fn socks4_request(target: &HopTarget, user: &str) -> Result<Vec<u8>> {
    let mut out = vec![4, 1];
    out.extend_from_slice(&target.port.to_be_bytes());
    match &target.host {
        HostOrName::Ip(IpAddr::V4(ip)) => out.extend_from_slice(&ip.octets()),
        HostOrName::Ip(IpAddr::V6(ip)) => {
            bail!("SOCKS4 cannot carry an IPv6 address ({ip}); use socks5://")
        }
        HostOrName::Name(_) => out.extend_from_slice(&[0, 0, 0, 1]),
    }
    if user.contains('\0') {
        bail!("a SOCKS4 user id cannot hold a NUL byte");
    }
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    if let HostOrName::Name(name) = &target.host {
        if name.contains('\0') {
            bail!("a host name cannot hold a NUL byte");
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }
    Ok(out)
}

/// The target as a SOCKS request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOrName {
    /// An address (resolved here, or given as one).
    Ip(IpAddr),
    /// A name the proxy resolves (SOCKS4a, SOCKS5 with ATYP 3).
    Name(String),
}

/// `10.0.0.1:40037`, `[::1]:40037`, `proxy.lan:40037`: a bound end as log lines show it
/// (a name the proxy gave is shown escaped: it is the proxy's bytes).
impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            HostOrName::Ip(ip) => {
                let addr = std::net::SocketAddr::new(*ip, self.port);
                f.write_str(&crate::net::addr::display_addr(addr))
            }
            HostOrName::Name(name) => write!(f, "{}:{}", name.escape_debug(), self.port),
        }
    }
}

/// Decodes a SOCKS4 reply (8 bytes: version 0, code, port, address). `Ok(Done(()))` is
/// "request granted"; any other code is an error in words.
pub fn socks4_reply(buf: &[u8]) -> Result<Progress<()>> {
    if buf.is_empty() {
        return Ok(Progress::Need(8));
    }
    if buf[0] != 0 {
        bail!("{}", not_socks("SOCKS4", buf));
    }
    if buf.len() < 8 {
        return Ok(Progress::Need(8));
    }
    match buf[1] {
        90 => Ok(Progress::Done(())),
        91 => Err(Unreached {
            message: "the proxy refused the request or could not reach the target (SOCKS4 reply 91: rejected or failed)".into(),
            why: "it refused the request or could not connect (SOCKS4 reply 91: rejected or failed)".into(),
            refused: false,
        }.into()),
        92 => bail!("the proxy could not reach identd on this host (SOCKS4 reply 92)"),
        93 => bail!("identd on this host did not confirm the user id (SOCKS4 reply 93)"),
        code => bail!("the proxy answered SOCKS4 reply {code}, which means nothing in SOCKS4"),
    }
}

// ---- SOCKS5 ------------------------------------------------------------------------------

/// Method 0: no authentication.
pub const METHOD_NONE: u8 = 0;
/// Method 2: username/password (RFC 1929).
pub const METHOD_USERPASS: u8 = 2;
/// "No acceptable methods".
pub const METHOD_REFUSED: u8 = 0xff;

/// The greeting: the methods we offer.
pub fn socks5_greeting(with_credentials: bool) -> Vec<u8> {
    match with_credentials {
        true => vec![5, 2, METHOD_NONE, METHOD_USERPASS],
        false => vec![5, 1, METHOD_NONE],
    }
}

/// Decodes the method selection (2 bytes: version 5, method): the method chosen.
pub fn socks5_method(buf: &[u8]) -> Result<Progress<u8>> {
    if buf.is_empty() {
        return Ok(Progress::Need(2));
    }
    if buf[0] != 5 {
        bail!("{}", not_socks("SOCKS5", buf));
    }
    if buf.len() < 2 {
        return Ok(Progress::Need(2));
    }
    Ok(Progress::Done(buf[1]))
}

/// RFC 1929's request: version 1, then each field with a length byte.
pub fn socks5_userpass(user: &str, pass: &str) -> Result<Vec<u8>> {
    if user.is_empty() || user.len() > CREDENTIAL_MAX || pass.len() > CREDENTIAL_MAX {
        bail!("a SOCKS5 username must be 1-255 bytes and a password at most 255 (RFC 1929)");
    }
    let mut out = vec![1, user.len() as u8];
    out.extend_from_slice(user.as_bytes());
    out.push(pass.len() as u8);
    out.extend_from_slice(pass.as_bytes());
    Ok(out)
}

/// Decodes RFC 1929's reply (version 1, status): Ok when status 0.
pub fn socks5_auth_reply(buf: &[u8]) -> Result<Progress<()>> {
    if buf.len() < 2 {
        return Ok(Progress::Need(2));
    }
    // Some servers answer with version 5 here; the status is what counts.
    if buf[0] != 1 && buf[0] != 5 {
        bail!("{}", not_socks("SOCKS5 authentication", buf));
    }
    match buf[1] {
        0 => Ok(Progress::Done(())),
        status => bail!(
            "authentication failed: the proxy refused the username and password (RFC 1929 status {status})"
        ),
    }
}

/// The CONNECT request.
pub fn socks5_request(target: &HopTarget) -> Result<Vec<u8>> {
    let mut out = vec![5, 1, 0];
    match &target.host {
        HostOrName::Ip(IpAddr::V4(ip)) => {
            out.push(1);
            out.extend_from_slice(&ip.octets());
        }
        HostOrName::Ip(IpAddr::V6(ip)) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        HostOrName::Name(name) => {
            if name.is_empty() || name.len() > NAME_MAX {
                bail!("a SOCKS5 host name must be 1-255 bytes");
            }
            out.push(3);
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
        }
    }
    out.extend_from_slice(&target.port.to_be_bytes());
    Ok(out)
}

/// The address the proxy bound for the tunnel (BND.ADDR, BND.PORT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The address, or a name when the proxy gave one.
    pub host: HostOrName,
    /// The port.
    pub port: u16,
}

/// Decodes the CONNECT reply: version 5, REP, RSV, ATYP, BND.ADDR, BND.PORT. The length
/// depends on ATYP, so the first call (4 or 5 bytes) learns it. A REP other than 0 is an
/// error naming the code in words.
pub fn socks5_reply(buf: &[u8]) -> Result<Progress<Bound>> {
    if buf.is_empty() {
        return Ok(Progress::Need(5));
    }
    if buf[0] != 5 {
        bail!("{}", not_socks("SOCKS5", buf));
    }
    if buf.len() < 2 {
        return Ok(Progress::Need(5));
    }
    if buf[1] != 0 {
        return Err(socks5_refusal(buf[1]).into());
    }
    if buf.len() < 5 {
        return Ok(Progress::Need(5));
    }
    let total = match buf[3] {
        1 => 4 + 4 + 2,
        4 => 4 + 16 + 2,
        3 => 4 + 1 + buf[4] as usize + 2,
        atyp => bail!("the proxy's reply has address type {atyp}, which SOCKS5 does not define"),
    };
    if buf.len() < total {
        return Ok(Progress::Need(total));
    }
    let port = u16::from_be_bytes([buf[total - 2], buf[total - 1]]);
    let host = match buf[3] {
        1 => HostOrName::Ip(IpAddr::V4(Ipv4Addr::new(buf[4], buf[5], buf[6], buf[7]))),
        4 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&buf[4..20]);
            HostOrName::Ip(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => HostOrName::Name(String::from_utf8_lossy(&buf[5..total - 2]).into_owned()),
    };
    Ok(Progress::Done(Bound { host, port }))
}

/// RFC 1928 §6's reply codes in words.
pub fn socks5_reply_words(code: u8) -> String {
    socks5_refusal(code).message
}

/// A SOCKS5 reply code other than 0 as an error: in words about the target, and without it
/// (for a chain, where the tunnel was to the next proxy).
pub fn socks5_refusal(code: u8) -> Unreached {
    let words = match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by the proxy's rules",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        // RFC 1928 names it so; dante, nk and others send it when the connect timed out.
        6 => "TTL expired or connect timed out",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    };
    let about_target = match code {
        5 => "connection refused by the target",
        _ => words,
    };
    Unreached {
        message: format!("the proxy could not connect: {about_target} (SOCKS5 reply {code})"),
        why: format!("{words} (SOCKS5 reply {code})"),
        refused: matches!(code, 2 | 7 | 8),
    }
}

fn not_socks(what: &str, buf: &[u8]) -> String {
    super::foreign_reply(what, buf)
}

// ---- the handshakes ----------------------------------------------------------------------

/// Reads exactly as much as `decode` asks for, and decodes. Never reads past the reply.
fn read_reply<T>(
    stream: &mut TcpStream,
    step: &mut Step,
    what: &str,
    decode: impl Fn(&[u8]) -> Result<Progress<T>>,
) -> Result<T> {
    let mut buf = Vec::with_capacity(32);
    loop {
        match decode(&buf)? {
            Progress::Done(value) => return Ok(value),
            Progress::Need(total) => {
                let start = buf.len();
                buf.resize(total, 0);
                read_exactly(stream, step, &mut buf[start..], what)?;
            }
        }
    }
}

fn read_exactly(stream: &mut TcpStream, step: &Step, buf: &mut [u8], what: &str) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        // Each read gets only what is left: a proxy that trickles its reply a byte at a
        // time must not be given the whole bound again for every byte.
        step.bound(stream)?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => bail!("the proxy closed the connection before its {what} was complete"),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(step.io_failure(e, what)),
        }
    }
    Ok(())
}

fn send(stream: &mut TcpStream, step: &mut Step, bytes: &[u8], what: &str) -> Result<()> {
    step.bound(stream)?;
    stream
        .write_all(bytes)
        .map_err(|e| step.io_failure(e, what))
}

/// SOCKS4 or 4a: asks the proxy on `stream` for a tunnel to `target`.
pub fn socks4(stream: &mut TcpStream, step: &mut Step, target: &HopTarget) -> Result<()> {
    let user = step.credentials.map(|c| c.user.as_str()).unwrap_or("");
    let request = socks4_request(target, user)?;
    send(stream, step, &request, "SOCKS4 request")?;
    read_reply(stream, step, "SOCKS4 reply", socks4_reply)
}

/// SOCKS5: greeting, username/password when the proxy picks it, CONNECT.
pub fn socks5(stream: &mut TcpStream, step: &mut Step, target: &HopTarget) -> Result<Bound> {
    let credentials = step.credentials.cloned();
    send(
        stream,
        step,
        &socks5_greeting(credentials.is_some()),
        "SOCKS5 greeting",
    )?;
    let method = read_reply(stream, step, "SOCKS5 method selection", socks5_method)?;
    match (method, &credentials) {
        (METHOD_NONE, _) => {}
        (METHOD_USERPASS, Some(c)) => {
            let request = socks5_userpass(&c.user, &c.pass)?;
            send(stream, step, &request, "SOCKS5 authentication")?;
            read_reply(
                stream,
                step,
                "SOCKS5 authentication reply",
                socks5_auth_reply,
            )?;
        }
        (METHOD_REFUSED, Some(_)) => {
            bail!("the proxy accepts none of the methods offered (no authentication, username/password)")
        }
        (METHOD_REFUSED | METHOD_USERPASS, None) => {
            return Err(anyhow::Error::new(crate::exit::Hinted {
                message: "authentication required: the proxy accepts no unauthenticated client"
                    .into(),
                hint: "give --proxy-auth USER:PASS or socks5://USER:PASS@HOST:PORT".into(),
            }))
        }
        (other, _) => {
            return Err(anyhow!(
                "the proxy chose authentication method {other}, which was not offered"
            ))
        }
    }
    let request = socks5_request(target)?;
    send(stream, step, &request, "SOCKS5 request")?;
    read_reply(stream, step, "SOCKS5 reply", socks5_reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_target(name: &str, port: u16) -> HopTarget {
        HopTarget {
            host: HostOrName::Name(name.into()),
            port,
        }
    }

    #[test]
    fn socks4a_request_carries_the_name() {
        let req = socks4_request(&name_target("example.com", 80), "bob").unwrap();
        assert_eq!(&req[..8], &[4, 1, 0, 80, 0, 0, 0, 1]);
        assert_eq!(&req[8..], b"bob\0example.com\0");
    }

    #[test]
    fn socks4_refuses_ipv6() {
        let target = HopTarget {
            host: HostOrName::Ip("::1".parse().unwrap()),
            port: 1,
        };
        assert!(socks4_request(&target, "").is_err());
    }

    #[test]
    fn socks4_reply_codes() {
        assert_eq!(socks4_reply(&[0, 90]).unwrap(), Progress::Need(8));
        assert_eq!(
            socks4_reply(&[0, 90, 0, 0, 0, 0, 0, 0]).unwrap(),
            Progress::Done(())
        );
        let err = socks4_reply(&[0, 91, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(err.to_string().contains("rejected or failed"), "{err}");
        let err = socks4_reply(b"HTTP/1.1").unwrap_err();
        assert!(err.to_string().contains("does not speak SOCKS4"), "{err}");
    }

    #[test]
    fn socks5_reply_lengths_follow_the_address_type() {
        assert_eq!(
            socks5_reply(&[5, 0, 0, 1, 127]).unwrap(),
            Progress::Need(10)
        );
        assert_eq!(socks5_reply(&[5, 0, 0, 4, 0]).unwrap(), Progress::Need(22));
        assert_eq!(socks5_reply(&[5, 0, 0, 3, 3]).unwrap(), Progress::Need(10));
        let done = socks5_reply(&[5, 0, 0, 3, 3, b'a', b'b', b'c', 0, 80]).unwrap();
        assert_eq!(
            done,
            Progress::Done(Bound {
                host: HostOrName::Name("abc".into()),
                port: 80
            })
        );
        let done = socks5_reply(&[5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90]).unwrap();
        assert_eq!(
            done,
            Progress::Done(Bound {
                host: HostOrName::Ip("10.0.0.1".parse().unwrap()),
                port: 8080
            })
        );
    }

    #[test]
    fn socks5_refusals_are_said_in_words() {
        let err = socks5_reply(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the proxy could not connect: connection refused by the target (SOCKS5 reply 5)"
        );
        let refusal = socks5_refusal(5);
        assert_eq!(refusal.why, "connection refused (SOCKS5 reply 5)");
        assert!(!refusal.refused && socks5_refusal(2).refused);
        let err = socks5_reply(&[5, 0, 0, 9, 0]).unwrap_err();
        assert!(err.to_string().contains("address type 9"), "{err}");
    }

    #[test]
    fn socks5_request_encodings() {
        let req = socks5_request(&name_target("ab", 443)).unwrap();
        assert_eq!(req, vec![5, 1, 0, 3, 2, b'a', b'b', 1, 187]);
        let long = "a".repeat(256);
        assert!(socks5_request(&name_target(&long, 1)).is_err());
        assert_eq!(
            socks5_userpass("u", "pw").unwrap(),
            vec![1, 1, b'u', 2, b'p', b'w']
        );
        assert!(socks5_userpass("", "x").is_err());
    }

    #[test]
    fn auth_failure_is_said() {
        assert_eq!(socks5_auth_reply(&[1, 0]).unwrap(), Progress::Done(()));
        let err = socks5_auth_reply(&[1, 1]).unwrap_err();
        assert!(
            err.to_string().starts_with("authentication failed"),
            "{err}"
        );
    }
}
