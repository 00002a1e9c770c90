//! ICMP and ICMPv6 echo for `nk ping`: building requests, and reading what comes back (echo
//! replies, and the errors routers send about our requests), with pnet_packet's checked views.
//!
//! Everything a socket hands us here is untrusted: a raw IPv4 socket sees every ICMP message
//! that reaches the host, including other programs' pings and our own requests looped back.
//! So parsing never assumes a length: each view is built with `new` (which checks the buffer
//! holds the fixed header) and anything too short or of another type is `Incoming::Other`.
//!
//! The payload layout follows iputils: when it has room (16 bytes or more), it starts with the
//! send time (two big-endian u64: seconds and nanoseconds of a monotonic clock), then bytes
//! equal to their offset in the payload. The time lets a reply be timed even if our table of
//! send times has forgotten it; the pattern lets us see corruption.

use pnet_packet::icmp::{echo_request::MutableEchoRequestPacket, IcmpPacket, IcmpTypes};
use pnet_packet::icmpv6::{Icmpv6Packet, Icmpv6Types};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::Packet;

/// Size of an ICMP echo header (type, code, checksum, identifier, sequence).
pub const HEADER_LEN: usize = 8;
/// Bytes of send time at the start of the payload when it fits.
pub const TIMESTAMP_LEN: usize = 16;

/// The RFC 1071 Internet checksum of `data` (a trailing odd byte is padded with zero).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds an echo request: `identifier`, `sequence`, and a payload of `size` bytes carrying
/// `sent` (seconds, nanoseconds) when it has room. IPv4 requests carry their checksum; for
/// ICMPv6 the kernel computes it over the pseudo-header (it knows the source address).
pub fn echo_request(
    v6: bool,
    identifier: u16,
    sequence: u16,
    size: usize,
    sent: (u64, u32),
) -> Vec<u8> {
    let offsets: Vec<u8> = (0..size).map(|offset| offset as u8).collect();
    echo_request_filled(v6, identifier, sequence, &offsets, sent)
}

/// [`echo_request`] with the payload `fill` (ping's `-p` pattern, repeated), the send time
/// written over its first 16 bytes when it has room, as iputils does.
pub fn echo_request_filled(
    v6: bool,
    identifier: u16,
    sequence: u16,
    fill: &[u8],
    sent: (u64, u32),
) -> Vec<u8> {
    let size = fill.len();
    let mut packet = vec![0u8; HEADER_LEN + size];
    let payload = &mut packet[HEADER_LEN..];
    payload.copy_from_slice(fill);
    if size >= TIMESTAMP_LEN {
        payload[..8].copy_from_slice(&sent.0.to_be_bytes());
        payload[8..16].copy_from_slice(&u64::from(sent.1).to_be_bytes());
    }
    packet[0] = if v6 {
        Icmpv6Types::EchoRequest.0
    } else {
        IcmpTypes::EchoRequest.0
    };
    packet[4..6].copy_from_slice(&identifier.to_be_bytes());
    packet[6..8].copy_from_slice(&sequence.to_be_bytes());
    if !v6 {
        if let Some(mut view) = MutableEchoRequestPacket::new(&mut packet) {
            view.set_checksum(0);
        }
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The send time a payload carries, if it is long enough to carry one.
pub fn payload_time(payload: &[u8]) -> Option<(u64, u32)> {
    if payload.len() < TIMESTAMP_LEN {
        return None;
    }
    let secs = u64::from_be_bytes(payload[..8].try_into().ok()?);
    let nanos = u64::from_be_bytes(payload[8..16].try_into().ok()?);
    Some((
        secs,
        u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000)?,
    ))
}

/// Whether the payload after the timestamp still holds our pattern (bytes equal to offsets).
pub fn payload_intact(payload: &[u8]) -> bool {
    let start = if payload.len() >= TIMESTAMP_LEN {
        TIMESTAMP_LEN
    } else {
        0
    };
    payload[start..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (start + i) as u8)
}

/// An ICMP error about one of our requests: who sent it and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    /// The identifier of the request it quotes.
    pub identifier: u16,
    /// The sequence of the request it quotes.
    pub sequence: u16,
    /// The text iputils prints (`Destination Host Unreachable`, `Time to live exceeded`...).
    pub text: String,
}

/// What an ICMP message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// An echo reply.
    Reply {
        /// Identifier (rewritten by the kernel on datagram sockets).
        identifier: u16,
        /// Sequence number.
        sequence: u16,
        /// Whether the checksum verifies (IPv4 only; the kernel checks ICMPv6).
        checksum_ok: bool,
        /// The payload after the 8-byte header.
        payload: Vec<u8>,
    },
    /// An error quoting one of our echo requests.
    Error(ErrorReport),
    /// Anything else: another type, another program's traffic, too short to read.
    Other,
}

/// Strips the IPv4 header a raw socket delivers: the TTL and the ICMP message, or `None` when
/// the packet is too short or its header length is inconsistent.
pub fn strip_ipv4(packet: &[u8]) -> Option<(u8, &[u8])> {
    let view = Ipv4Packet::new(packet)?;
    let header = usize::from(view.get_header_length()) * 4;
    if header < 20 || header > packet.len() {
        return None;
    }
    Some((view.get_ttl(), &packet[header..]))
}

/// Reads an ICMP (v4) or ICMPv6 message, starting at its type byte.
pub fn parse(v6: bool, message: &[u8]) -> Incoming {
    if v6 {
        parse_v6(message)
    } else {
        parse_v4(message)
    }
}

fn parse_v4(message: &[u8]) -> Incoming {
    let Some(icmp) = IcmpPacket::new(message) else {
        return Incoming::Other;
    };
    let kind = icmp.get_icmp_type();
    let code = icmp.get_icmp_code().0;
    if kind == IcmpTypes::EchoReply {
        return reply(message, checksum(message) == 0);
    }
    let mtu = message
        .get(6..8)
        .map_or(0, |b| u32::from(u16::from_be_bytes([b[0], b[1]])));
    let Some(text) = error_text(false, kind.0, code, mtu) else {
        return Incoming::Other;
    };
    // The error quotes the IPv4 header of our request and its first 8 bytes (RFC 792).
    let quoted = &message[HEADER_LEN.min(message.len())..];
    let Some((_, inner)) = strip_ipv4(quoted) else {
        return Incoming::Other;
    };
    let Some(original) = Ipv4Packet::new(quoted) else {
        return Incoming::Other;
    };
    if original.get_next_level_protocol().0 != 1 || inner.len() < HEADER_LEN {
        return Incoming::Other;
    }
    if inner[0] != IcmpTypes::EchoRequest.0 {
        return Incoming::Other;
    }
    Incoming::Error(ErrorReport {
        identifier: u16::from_be_bytes([inner[4], inner[5]]),
        sequence: u16::from_be_bytes([inner[6], inner[7]]),
        text,
    })
}

/// The words iputils prints for an ICMP error of `kind`/`code` (`info`: the MTU where the
/// message carries one), or `None` for types that are not errors about a packet we sent.
pub fn error_text(v6: bool, kind: u8, code: u8, info: u32) -> Option<String> {
    if v6 {
        return error_text_v6(kind, code, info);
    }
    let text = match (kind, code) {
        (3, 0) => "Destination Net Unreachable".into(),
        (3, 1) => "Destination Host Unreachable".into(),
        (3, 2) => "Destination Protocol Unreachable".into(),
        (3, 3) => "Destination Port Unreachable".into(),
        (3, 4) => format!("Frag needed and DF set (mtu = {info})"),
        (3, 5) => "Source Route Failed".into(),
        (3, 6) => "Destination Net Unknown".into(),
        (3, 7) => "Destination Host Unknown".into(),
        (3, 8) => "Source Host Isolated".into(),
        (3, 9) => "Destination Net Prohibited".into(),
        (3, 10) => "Destination Host Prohibited".into(),
        (3, 11) => "Destination Net Unreachable for Type of Service".into(),
        (3, 12) => "Destination Host Unreachable for Type of Service".into(),
        (3, 13) => "Packet filtered".into(),
        (3, 14) => "Precedence Violation".into(),
        (3, 15) => "Precedence Cutoff".into(),
        (3, _) => format!("Dest Unreachable, Bad Code: {code}"),
        (4, _) => "Source Quench".into(),
        (5, _) => "Redirect".into(),
        (11, 0) => "Time to live exceeded".into(),
        (11, 1) => "Frag reassembly time exceeded".into(),
        (11, _) => format!("Time exceeded, Bad Code: {code}"),
        (12, _) => "Parameter problem".into(),
        _ => return None,
    };
    Some(text)
}

fn error_text_v6(kind: u8, code: u8, info: u32) -> Option<String> {
    let text = match kind {
        1 => format!(
            "Destination unreachable: {}",
            match code {
                0 => "No route".to_string(),
                1 => "Administratively prohibited".to_string(),
                2 => "Beyond scope of source address".to_string(),
                3 => "Address unreachable".to_string(),
                4 => "Port unreachable".to_string(),
                5 => "Source address failed ingress/egress policy".to_string(),
                6 => "Reject route to destination".to_string(),
                _ => format!("Unknown code {code}"),
            }
        ),
        2 => format!("Packet too big: mtu={info}"),
        3 => format!(
            "Time exceeded: {}",
            match code {
                0 => "Hop limit".to_string(),
                1 => "Defragmentation failure".to_string(),
                _ => format!("code {code}"),
            }
        ),
        4 => "Parameter problem".to_string(),
        _ => return None,
    };
    Some(text)
}

fn parse_v6(message: &[u8]) -> Incoming {
    let Some(icmp) = Icmpv6Packet::new(message) else {
        return Incoming::Other;
    };
    let kind = icmp.get_icmpv6_type();
    let code = icmp.get_icmpv6_code().0;
    if kind == Icmpv6Types::EchoReply {
        // The kernel verifies ICMPv6 checksums before delivering them.
        return reply(message, true);
    }
    let info = message
        .get(4..8)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let Some(text) = error_text(true, kind.0, code, info) else {
        return Incoming::Other;
    };
    // The error quotes as much of our request as fits, from its IPv6 header (RFC 4443).
    let quoted = &message[HEADER_LEN.min(message.len())..];
    let Some(original) = Ipv6Packet::new(quoted) else {
        return Incoming::Other;
    };
    let inner = original.payload();
    // 58 = ICMPv6 as the next header (extension headers in a quoted request are not followed).
    if original.get_next_header().0 != 58
        || inner.len() < HEADER_LEN
        || inner[0] != Icmpv6Types::EchoRequest.0
    {
        return Incoming::Other;
    }
    Incoming::Error(ErrorReport {
        identifier: u16::from_be_bytes([inner[4], inner[5]]),
        sequence: u16::from_be_bytes([inner[6], inner[7]]),
        text,
    })
}

fn reply(message: &[u8], checksum_ok: bool) -> Incoming {
    if message.len() < HEADER_LEN {
        return Incoming::Other;
    }
    Incoming::Reply {
        identifier: u16::from_be_bytes([message[4], message[5]]),
        sequence: u16::from_be_bytes([message[6], message[7]]),
        checksum_ok,
        payload: message[HEADER_LEN..].to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 written out independently: sum 16-bit words in a u64, fold at the end.
    fn reference_checksum(data: &[u8]) -> u16 {
        let mut padded = data.to_vec();
        if padded.len() % 2 == 1 {
            padded.push(0);
        }
        let mut sum: u64 = padded
            .chunks(2)
            .map(|w| (u64::from(w[0]) << 8) | u64::from(w[1]))
            .sum();
        while sum > 0xffff {
            sum = (sum >> 16) + (sum & 0xffff);
        }
        !(sum as u16)
    }

    #[test]
    fn checksum_matches_rfc1071_on_odd_and_even_lengths() {
        // RFC 1071 §3's example bytes.
        let example = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&example), !0xddf2);
        for len in 0..300usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(checksum(&data), reference_checksum(&data), "length {len}");
        }
        // Seed 001's bug (summing from byte 1) would give another value for odd lengths.
        let odd = echo_request(false, 13, 37, 5, (0, 0));
        assert_eq!(checksum(&odd), 0, "a packet with its checksum sums to zero");
        assert_ne!(reference_checksum(&odd[1..]), reference_checksum(&odd));
    }

    #[test]
    fn request_round_trips_through_the_parser() {
        let request = echo_request(false, 0x1234, 7, 56, (1_700_000_000, 123_456_789));
        assert_eq!(request.len(), 64);
        // A reply is the request with type 0 and the checksum adjusted.
        let mut reply_bytes = request.clone();
        reply_bytes[0] = 0;
        reply_bytes[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(&reply_bytes);
        reply_bytes[2..4].copy_from_slice(&sum.to_be_bytes());
        let Incoming::Reply {
            identifier,
            sequence,
            checksum_ok,
            payload,
        } = parse(false, &reply_bytes)
        else {
            panic!("not a reply");
        };
        assert_eq!((identifier, sequence, checksum_ok), (0x1234, 7, true));
        assert_eq!(payload_time(&payload), Some((1_700_000_000, 123_456_789)));
        assert!(payload_intact(&payload));
        reply_bytes[40] ^= 0xff;
        assert!(matches!(
            parse(false, &reply_bytes),
            Incoming::Reply {
                checksum_ok: false,
                ..
            }
        ));
        // Our own request looped back is not a reply.
        assert_eq!(parse(false, &request), Incoming::Other);
        assert_eq!(parse(false, &[0, 0, 0]), Incoming::Other);
        assert_eq!(payload_time(&[0; 8]), None);
    }

    #[test]
    fn errors_name_the_request_they_quote() {
        let request = echo_request(false, 99, 3, 56, (0, 0));
        let mut ip = vec![
            0x45, 0, 0, 84, 0, 0, 0x40, 0, 1, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip.extend_from_slice(&request[..8]);
        let mut error = vec![3, 1, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&ip);
        assert_eq!(
            parse(false, &error),
            Incoming::Error(ErrorReport {
                identifier: 99,
                sequence: 3,
                text: "Destination Host Unreachable".into()
            })
        );
        error[0] = 11;
        error[1] = 0;
        assert!(
            matches!(parse(false, &error), Incoming::Error(e) if e.text == "Time to live exceeded")
        );
        // Truncated quotes are ignored, never read past the end.
        assert_eq!(parse(false, &error[..20]), Incoming::Other);

        let request6 = echo_request(true, 5, 9, 8, (0, 0));
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 16, 58, 64];
        ip6.extend_from_slice(&[0; 32]);
        ip6.extend_from_slice(&request6);
        let mut error6 = vec![1, 3, 0, 0, 0, 0, 0, 0];
        error6.extend_from_slice(&ip6);
        assert_eq!(
            parse(true, &error6),
            Incoming::Error(ErrorReport {
                identifier: 5,
                sequence: 9,
                text: "Destination unreachable: Address unreachable".into()
            })
        );
    }

    #[test]
    fn ipv4_header_is_stripped_by_its_length() {
        let mut packet = vec![
            0x46, 0, 0, 32, 0, 0, 0, 0, 57, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        packet.extend_from_slice(&[0; 4]); // options: IHL 6
        packet.extend_from_slice(&[0, 0, 0xff, 0xff, 0, 1, 0, 1]);
        let (ttl, icmp) = strip_ipv4(&packet).unwrap();
        assert_eq!(ttl, 57);
        assert_eq!(icmp.len(), 8);
        packet[0] = 0x4f; // IHL 15: longer than the packet
        assert_eq!(strip_ipv4(&packet), None);
    }
}
