//! HAProxy's PROXY protocol (versions 1 and 2), which `nk forward --proxy-protocol` writes as
//! the first bytes toward the target so a backend behind the forwarder sees the real client's
//! address instead of the forwarder's.
//!
//! The encoder is what the forwarder uses; the decoder exists for the tests and the fuzz
//! target (a round trip), and reads untrusted bytes with every length checked: a v1 line is at
//! most [`V1_MAX`] bytes including its CRLF (the spec's limit), a v2 block at most its 16-byte
//! head plus the 16-bit length it declares, and its TLVs must tile that block exactly.
//!
//! What is carried: TCP over IPv4 or IPv6, as `source` (the client) and `destination` (the
//! address the client connected to, the listener's). A client whose addresses are not TCP/IP
//! (a Unix socket client) is sent as v1 `PROXY UNKNOWN` and v2 `LOCAL` (no address block),
//! which every receiver must accept and then use the connection's own addresses; v2's AF_UNIX
//! form is left out on purpose, as a Unix client is nearly always unnamed and few receivers
//! read it. IPv4-mapped IPv6 addresses (a dual-stack listener's IPv4 clients) are sent as the
//! IPv4 addresses they are.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest v1 header, CRLF included (the spec's figure, for two IPv6 addresses).
pub const V1_MAX: usize = 107;
/// The 12 bytes that open a v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family, length.
const V2_HEAD: usize = 16;

/// Which form to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text line, `PROXY TCP4 SRC DST SPORT DPORT\r\n`.
    V1,
    /// The binary block.
    V2,
}

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxied {
    /// A TCP client at `source` that connected to `destination` (same family).
    Tcp {
        /// The client.
        source: SocketAddr,
        /// The address it reached (the proxy's).
        destination: SocketAddr,
    },
    /// No TCP/IP addresses: v1 `UNKNOWN`, v2 `LOCAL`, or a v2 family nk does not forward
    /// (UDP, AF_UNIX, UNSPEC). The receiver uses the connection's own addresses.
    Unknown,
}

impl Proxied {
    /// The header for a client at `source` that reached `destination`; `None` for either
    /// (a Unix socket) gives [`Proxied::Unknown`].
    pub fn from_addresses(source: Option<SocketAddr>, destination: Option<SocketAddr>) -> Proxied {
        match (source.map(unmapped), destination.map(unmapped)) {
            (Some(source), Some(destination)) if source.is_ipv4() == destination.is_ipv4() => {
                Proxied::Tcp {
                    source,
                    destination,
                }
            }
            _ => Proxied::Unknown,
        }
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`: the client really is an IPv4 one.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// The header's bytes.
pub fn encode(version: Version, proxied: &Proxied) -> Vec<u8> {
    match version {
        Version::V1 => encode_v1(proxied),
        Version::V2 => encode_v2(proxied),
    }
}

fn encode_v1(proxied: &Proxied) -> Vec<u8> {
    match proxied {
        Proxied::Tcp {
            source,
            destination,
        } => {
            let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
            .into_bytes()
        }
        Proxied::Unknown => b"PROXY UNKNOWN\r\n".to_vec(),
    }
}

fn encode_v2(proxied: &Proxied) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    match proxied {
        Proxied::Tcp {
            source,
            destination,
        } => {
            out.push(0x21); // version 2, PROXY
            let mut block = Vec::with_capacity(36);
            match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11); // AF_INET, STREAM
                    block.extend_from_slice(&s.octets());
                    block.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.push(0x21); // AF_INET6, STREAM
                    block.extend_from_slice(&as_v6(s).octets());
                    block.extend_from_slice(&as_v6(d).octets());
                }
            }
            block.extend_from_slice(&source.port().to_be_bytes());
            block.extend_from_slice(&destination.port().to_be_bytes());
            out.extend_from_slice(&(block.len() as u16).to_be_bytes());
            out.extend_from_slice(&block);
        }
        Proxied::Unknown => {
            out.push(0x20); // version 2, LOCAL
            out.push(0x00); // AF_UNSPEC
            out.extend_from_slice(&0u16.to_be_bytes());
        }
    }
    out
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// A header read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Its form.
    pub version: Version,
    /// What it says.
    pub proxied: Proxied,
    /// Its length in bytes: the stream's own data starts after it.
    pub len: usize,
}

/// Why bytes are not a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A prefix of a header: more bytes are needed.
    Incomplete,
    /// Not a valid header, in words.
    Invalid(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Incomplete => write!(f, "incomplete PROXY header"),
            DecodeError::Invalid(why) => write!(f, "invalid PROXY header: {why}"),
        }
    }
}

/// Reads the header at the start of `bytes` (v1 or v2, told apart by their first bytes).
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let is_prefix = |of: &[u8]| bytes.len() < of.len() && of.starts_with(bytes);
    if bytes.starts_with(&V2_SIGNATURE) {
        decode_v2(bytes)
    } else if bytes.starts_with(b"PROXY ") {
        decode_v1(bytes)
    } else if is_prefix(&V2_SIGNATURE) || is_prefix(b"PROXY ") {
        Err(DecodeError::Incomplete)
    } else {
        Err(DecodeError::Invalid("no PROXY signature"))
    }
}

fn decode_v1(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let window = &bytes[..bytes.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return match bytes.len() < V1_MAX {
            true => Err(DecodeError::Incomplete),
            false => Err(DecodeError::Invalid("v1 line longer than 107 bytes")),
        };
    };
    let len = end + 2;
    let line =
        std::str::from_utf8(&bytes[..end]).map_err(|_| DecodeError::Invalid("v1 not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let proxied = match fields.get(1).copied() {
        // The spec: whatever follows UNKNOWN up to the CRLF is ignored.
        Some("UNKNOWN") => Proxied::Unknown,
        Some(family @ ("TCP4" | "TCP6")) => {
            let [_, _, src, dst, sport, dport] = fields[..] else {
                return Err(DecodeError::Invalid("v1 wants 6 fields"));
            };
            let ip = |text: &str| -> Result<IpAddr, DecodeError> {
                let ip = match family {
                    "TCP4" => text.parse::<Ipv4Addr>().map(IpAddr::V4),
                    _ => text.parse::<Ipv6Addr>().map(IpAddr::V6),
                };
                ip.map_err(|_| DecodeError::Invalid("v1 address not of its family"))
            };
            let port = |text: &str| -> Result<u16, DecodeError> {
                let canonical = !text.is_empty()
                    && text.bytes().all(|b| b.is_ascii_digit())
                    && (text == "0" || !text.starts_with('0'));
                match canonical {
                    true => text.parse().map_err(|_| DecodeError::Invalid("v1 port")),
                    false => Err(DecodeError::Invalid("v1 port")),
                }
            };
            Proxied::Tcp {
                source: SocketAddr::new(ip(src)?, port(sport)?),
                destination: SocketAddr::new(ip(dst)?, port(dport)?),
            }
        }
        _ => return Err(DecodeError::Invalid("v1 family not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Decoded {
        version: Version::V1,
        proxied,
        len,
    })
}

fn decode_v2(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.len() < V2_HEAD {
        return Err(DecodeError::Incomplete);
    }
    let (version, command) = (bytes[12] >> 4, bytes[12] & 0x0f);
    if version != 2 {
        return Err(DecodeError::Invalid("v2 version nibble not 2"));
    }
    let family = bytes[13];
    let declared = u16::from_be_bytes([bytes[14], bytes[15]]) as usize;
    let len = V2_HEAD + declared;
    if bytes.len() < len {
        return Err(DecodeError::Incomplete);
    }
    let block = &bytes[V2_HEAD..len];
    let (proxied, addresses) = match (command, family) {
        // LOCAL: the addresses (if any) are to be ignored.
        (0, _) => (Proxied::Unknown, 0),
        (1, 0x11) => {
            let b = need(block, 12)?;
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]));
            (tcp(ip(0), ip(4), &b[8..12]), 12)
        }
        (1, 0x21) => {
            let b = need(block, 36)?;
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&b[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            (tcp(ip(0), ip(16), &b[32..36]), 36)
        }
        // UNSPEC, or UDP over IPv4/IPv6, or AF_UNIX stream/datagram: carried but not ours.
        (1, 0x00) => (Proxied::Unknown, 0),
        (1, 0x12) => (need(block, 12).map(|_| Proxied::Unknown)?, 12),
        (1, 0x22) => (need(block, 36).map(|_| Proxied::Unknown)?, 36),
        (1, 0x31 | 0x32) => (need(block, 216).map(|_| Proxied::Unknown)?, 216),
        (1, _) => return Err(DecodeError::Invalid("v2 unknown address family")),
        _ => return Err(DecodeError::Invalid("v2 command not LOCAL or PROXY")),
    };
    if command == 1 {
        check_tlvs(&block[addresses..])?;
    }
    Ok(Decoded {
        version: Version::V2,
        proxied,
        len,
    })
}

fn need(block: &[u8], len: usize) -> Result<&[u8], DecodeError> {
    block
        .get(..len)
        .ok_or(DecodeError::Invalid("v2 address block too short"))
}

fn tcp(source: IpAddr, destination: IpAddr, ports: &[u8]) -> Proxied {
    Proxied::Tcp {
        source: SocketAddr::new(source, u16::from_be_bytes([ports[0], ports[1]])),
        destination: SocketAddr::new(destination, u16::from_be_bytes([ports[2], ports[3]])),
    }
}

/// The TLVs after the addresses (type, 16-bit length, value) must tile the rest exactly.
fn check_tlvs(mut rest: &[u8]) -> Result<(), DecodeError> {
    while !rest.is_empty() {
        let [_, high, low, ..] = *rest else {
            return Err(DecodeError::Invalid("v2 TLV head cut short"));
        };
        let end = 3 + u16::from_be_bytes([high, low]) as usize;
        rest = rest
            .get(end..)
            .ok_or(DecodeError::Invalid("v2 TLV longer than the block"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(source: &str, destination: &str) -> Proxied {
        Proxied::Tcp {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    #[test]
    fn v1_lines_as_the_spec_writes_them() {
        let four = tcp("192.168.0.1:56324", "192.168.0.11:443");
        assert_eq!(
            encode(Version::V1, &four),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        );
        let six = tcp("[::1]:5000", "[2001:db8::1]:80");
        assert_eq!(
            encode(Version::V1, &six),
            b"PROXY TCP6 ::1 2001:db8::1 5000 80\r\n"
        );
        assert_eq!(encode(Version::V1, &Proxied::Unknown), b"PROXY UNKNOWN\r\n");
        let longest = tcp(
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535",
        );
        assert_eq!(encode(Version::V1, &longest).len(), V1_MAX - 3);
    }

    #[test]
    fn v2_blocks_byte_for_byte() {
        let four = tcp("127.0.0.1:40000", "127.0.0.2:8080");
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0, 12, 127, 0, 0, 1, 127, 0, 0, 2]);
        want.extend_from_slice(&[0x9c, 0x40, 0x1f, 0x90]);
        assert_eq!(encode(Version::V2, &four), want);
        let six = encode(Version::V2, &tcp("[::1]:1", "[::2]:2"));
        assert_eq!(&six[12..16], &[0x21, 0x21, 0, 36]);
        assert_eq!(six.len(), 16 + 36);
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(encode(Version::V2, &Proxied::Unknown), local);
    }

    #[test]
    fn mapped_addresses_are_sent_as_ipv4_and_unix_as_unknown() {
        let p = Proxied::from_addresses(
            Some("[::ffff:10.0.0.1]:5".parse().unwrap()),
            Some("[::ffff:10.0.0.2]:6".parse().unwrap()),
        );
        assert_eq!(p, tcp("10.0.0.1:5", "10.0.0.2:6"));
        assert_eq!(Proxied::from_addresses(None, None), Proxied::Unknown);
        let mixed = Proxied::from_addresses(
            Some("10.0.0.1:5".parse().unwrap()),
            Some("[::1]:6".parse().unwrap()),
        );
        assert_eq!(mixed, Proxied::Unknown);
    }

    #[test]
    fn every_encoding_decodes_to_itself_with_its_length() {
        for proxied in [
            tcp("1.2.3.4:0", "5.6.7.8:65535"),
            tcp("[fe80::1]:22", "[::]:443"),
            Proxied::Unknown,
        ] {
            for version in [Version::V1, Version::V2] {
                let mut bytes = encode(version, &proxied);
                let len = bytes.len();
                bytes.extend_from_slice(b"GET / HTTP/1.0\r\n");
                let got = decode(&bytes).unwrap();
                assert_eq!(
                    got,
                    Decoded {
                        version,
                        proxied,
                        len
                    }
                );
                for cut in 0..len {
                    assert_eq!(decode(&bytes[..cut]), Err(DecodeError::Incomplete), "{cut}");
                }
            }
        }
    }

    #[test]
    fn bad_headers_are_refused_in_words() {
        let invalid = |b: &[u8]| matches!(decode(b), Err(DecodeError::Invalid(_)));
        assert!(invalid(b"GET / HTTP/1.1\r\n"));
        assert!(invalid(b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n"));
        assert!(invalid(b"PROXY TCP4 1.2.3.4 1.2.3.5 01 2\r\n"));
        assert!(invalid(b"PROXY TCP4 1.2.3.4 1.2.3.5 1 65536\r\n"));
        assert!(invalid(b"PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n"));
        assert!(invalid(b"PROXY UDP4 1.2.3.4 1.2.3.5 1 2\r\n"));
        assert!(invalid(&[b"PROXY ".as_slice(), &[b'x'; 120]].concat()));
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(invalid(&v2), "an IPv4 block of 4 bytes");
        let mut tlv = encode(Version::V2, &tcp("1.2.3.4:1", "1.2.3.5:2"));
        tlv[15] += 4;
        tlv.extend_from_slice(&[0x01, 0, 2, b'h']);
        assert!(invalid(&tlv), "a TLV longer than the block");
        let last = tlv.len() - 1;
        tlv[last - 1] = 1;
        assert!(decode(&tlv).is_ok(), "a TLV that fits");
        let mut v3 = encode(Version::V2, &Proxied::Unknown);
        v3[12] = 0x30;
        assert!(invalid(&v3));
        assert_eq!(
            decode(b"PROXY UNKNOWN ignored\r\n").unwrap().proxied,
            Proxied::Unknown
        );
    }
}
