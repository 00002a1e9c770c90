//! A forwarded connection told as one TCP conversation in Ethernet frames, for
//! `nk forward --pcap`: Wireshark and tshark follow a stream only through real-looking
//! headers, so the bytes each side sent are wrapped in synthesised Ethernet, IPv4 or IPv6 and
//! TCP headers (built with pnet_packet, checksums correct) as if the client had talked to the
//! target directly.
//!
//! The conversation opens with SYN, SYN-ACK, ACK (MSS and window-scale options, so a reader
//! does not flag a full window); each chunk a side sent becomes PSH-ACK segments of at most
//! [`MAX_SEGMENT`] bytes (the most an IPv4 packet can carry, so one read of the forwarder is
//! one or two segments), answered by a pure ACK from the other side; a FIN or a RST is
//! written as it really happened. Sequence numbers start at the caller's ISNs and advance by
//! the payload (and by one for SYN and FIN), both ways, so `tshark -z follow,tcp,raw`
//! gives back every byte in order.
//!
//! Pure: no clocks, no sockets; the caller stamps each frame when it writes it. [`read`]
//! parses such frames back (checked, for the unit tests and the fuzz target).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::{self, Ipv4Flags, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::{self, MutableTcpPacket, TcpFlags, TcpOption};

/// Payload bytes per segment: 65535 (an IPv4 total length) less the IPv4 and TCP headers.
pub const MAX_SEGMENT: usize = 65535 - 20 - 20;
const ETHERNET_HEADER: usize = 14;
const TCP_HEADER: usize = 20;
/// MSS (4 bytes), NOP, window scale (3 bytes): the options of the SYN and the SYN-ACK.
const SYN_OPTIONS: usize = 8;
/// Window scale shift: the advertised 65535 means 8 MiB, more than one chunk ever is.
const WINDOW_SHIFT: u8 = 7;
const TTL: u8 = 64;
/// Locally administered MAC addresses: the client's and the target's.
const MACS: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0, 0x01], [0x02, 0, 0, 0, 0, 0x02]];

/// Who sent a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The forwarder's client.
    Client,
    /// The target it was forwarded to.
    Target,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Target => 1,
        }
    }

    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Target,
            Side::Target => Side::Client,
        }
    }
}

/// One connection's TCP state: the two endpoints and the next sequence number each way.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// Client, target (the same family: see [`Conversation::new`]).
    ends: [SocketAddr; 2],
    next_seq: [u32; 2],
    ip_id: [u16; 2],
    frame: Vec<u8>,
}

impl Conversation {
    /// A conversation between `client` and `target` with initial sequence numbers `isn`
    /// (client's, target's). IPv4-mapped IPv6 addresses are shown as IPv4; when one end is
    /// IPv4 and the other IPv6, the IPv4 one is shown in its mapped form, since one TCP
    /// stream has one IP version.
    pub fn new(client: SocketAddr, target: SocketAddr, isn: [u32; 2]) -> Conversation {
        let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
        let (mut client, mut target) = (canonical(client), canonical(target));
        if client.is_ipv4() != target.is_ipv4() {
            let mapped = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
                IpAddr::V6(_) => a,
            };
            client = mapped(client);
            target = mapped(target);
        }
        Conversation {
            ends: [client, target],
            next_seq: isn,
            ip_id: [0, 0],
            frame: Vec::new(),
        }
    }

    /// The endpoints as shown: (client, target).
    pub fn endpoints(&self) -> (SocketAddr, SocketAddr) {
        (self.ends[0], self.ends[1])
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self, emit: &mut dyn FnMut(&[u8])) {
        self.segment(Side::Client, TcpFlags::SYN, &[], emit);
        self.advance(Side::Client, 1);
        self.segment(Side::Target, TcpFlags::SYN | TcpFlags::ACK, &[], emit);
        self.advance(Side::Target, 1);
        self.segment(Side::Client, TcpFlags::ACK, &[], emit);
    }

    /// `bytes` sent by `from`, in segments, then the other side's ACK. Nothing for no bytes.
    pub fn data(&mut self, from: Side, bytes: &[u8], emit: &mut dyn FnMut(&[u8])) {
        if bytes.is_empty() {
            return;
        }
        for segment in bytes.chunks(MAX_SEGMENT) {
            self.segment(from, TcpFlags::PSH | TcpFlags::ACK, segment, emit);
            self.advance(from, segment.len());
        }
        self.segment(from.other(), TcpFlags::ACK, &[], emit);
    }

    /// `from` will send no more (its FIN), and the other side's ACK of it.
    pub fn fin(&mut self, from: Side, emit: &mut dyn FnMut(&[u8])) {
        self.segment(from, TcpFlags::FIN | TcpFlags::ACK, &[], emit);
        self.advance(from, 1);
        self.segment(from.other(), TcpFlags::ACK, &[], emit);
    }

    /// `from` reset the connection.
    pub fn reset(&mut self, from: Side, emit: &mut dyn FnMut(&[u8])) {
        self.segment(from, TcpFlags::RST | TcpFlags::ACK, &[], emit);
    }

    fn advance(&mut self, side: Side, by: usize) {
        let seq = &mut self.next_seq[side.index()];
        // Sequence numbers are modulo 2^32 by definition; `by` is at most MAX_SEGMENT.
        *seq = seq.wrapping_add(by as u32);
    }

    /// Builds one frame from `from` and hands it to `emit`.
    fn segment(&mut self, from: Side, flags: u8, payload: &[u8], emit: &mut dyn FnMut(&[u8])) {
        let (source, destination) = (self.ends[from.index()], self.ends[from.other().index()]);
        let ip_header = if source.is_ipv4() { 20 } else { 40 };
        let options = if flags & TcpFlags::SYN != 0 {
            SYN_OPTIONS
        } else {
            0
        };
        let tcp_len = TCP_HEADER + options + payload.len();
        self.frame.clear();
        self.frame.resize(ETHERNET_HEADER + ip_header + tcp_len, 0);
        let (ethernet, rest) = self.frame.split_at_mut(ETHERNET_HEADER);
        let (ip, segment) = rest.split_at_mut(ip_header);
        let id = &mut self.ip_id[from.index()];
        *id = id.wrapping_add(1);
        // The views below are made on slices of exactly their minimum sizes, so `new` always
        // succeeds; a frame that could not be built is left out rather than panicking.
        let Some(mut tcp) = MutableTcpPacket::new(segment) else {
            return;
        };
        tcp.set_source(source.port());
        tcp.set_destination(destination.port());
        tcp.set_sequence(self.next_seq[from.index()]);
        if flags & TcpFlags::ACK != 0 {
            tcp.set_acknowledgement(self.next_seq[from.other().index()]);
        }
        tcp.set_data_offset(((TCP_HEADER + options) / 4) as u8);
        tcp.set_flags(flags);
        tcp.set_window(u16::MAX);
        if options != 0 {
            tcp.set_options(&[
                TcpOption::mss(MAX_SEGMENT as u16),
                TcpOption::nop(),
                TcpOption::wscale(WINDOW_SHIFT),
            ]);
        }
        tcp.set_payload(payload);
        let checksum = match (source.ip(), destination.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => tcp::ipv4_checksum(&tcp.to_immutable(), &s, &d),
            (IpAddr::V6(s), IpAddr::V6(d)) => tcp::ipv6_checksum(&tcp.to_immutable(), &s, &d),
            _ => return,
        };
        tcp.set_checksum(checksum);
        let ethertype = match (source.ip(), destination.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let Some(mut packet) = MutableIpv4Packet::new(ip) else {
                    return;
                };
                ipv4_header(&mut packet, s, d, tcp_len, *id);
                EtherTypes::Ipv4
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let Some(mut packet) = MutableIpv6Packet::new(ip) else {
                    return;
                };
                ipv6_header(&mut packet, s, d, tcp_len);
                EtherTypes::Ipv6
            }
            _ => return,
        };
        let Some(mut frame) = MutableEthernetPacket::new(ethernet) else {
            return;
        };
        frame.set_source(MACS[from.index()].into());
        frame.set_destination(MACS[from.other().index()].into());
        frame.set_ethertype(ethertype);
        emit(&self.frame);
    }
}

fn ipv4_header(packet: &mut MutableIpv4Packet, s: Ipv4Addr, d: Ipv4Addr, tcp_len: usize, id: u16) {
    packet.set_version(4);
    packet.set_header_length(5);
    // At most 20 + 28 + MAX_SEGMENT = 65535 + 8 for a SYN, which carries no payload.
    packet.set_total_length((20 + tcp_len) as u16);
    packet.set_identification(id);
    packet.set_flags(Ipv4Flags::DontFragment);
    packet.set_ttl(TTL);
    packet.set_next_level_protocol(IpNextHeaderProtocols::Tcp);
    packet.set_source(s);
    packet.set_destination(d);
    let checksum = ipv4::checksum(&packet.to_immutable());
    packet.set_checksum(checksum);
}

fn ipv6_header(packet: &mut MutableIpv6Packet, s: Ipv6Addr, d: Ipv6Addr, tcp_len: usize) {
    packet.set_version(6);
    packet.set_payload_length(tcp_len as u16);
    packet.set_next_header(IpNextHeaderProtocols::Tcp);
    packet.set_hop_limit(TTL);
    packet.set_source(s);
    packet.set_destination(d);
}

/// A checked reader of frames like those [`Conversation`] writes: the unit tests and the
/// fuzz target use it to check that a written capture gives back what was sent, as tshark
/// does in tests/forward_tap.rs. Any input gives an answer or an error, never a panic.
pub mod read {
    use super::*;
    use pnet_packet::ethernet::EthernetPacket;
    use pnet_packet::ipv4::Ipv4Packet;
    use pnet_packet::ipv6::Ipv6Packet;
    use pnet_packet::tcp::TcpPacket;
    use pnet_packet::Packet;

    /// One TCP segment out of an Ethernet frame.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Segment {
        /// Sender.
        pub source: SocketAddr,
        /// Receiver.
        pub destination: SocketAddr,
        /// Sequence number.
        pub seq: u32,
        /// Acknowledgement number.
        pub ack: u32,
        /// TCP flags.
        pub flags: u8,
        /// The payload.
        pub payload: Vec<u8>,
        /// Whether the IPv4 header checksum (if any) and the TCP checksum are right.
        pub checksums_ok: bool,
    }

    /// Parses an Ethernet frame holding IPv4 or IPv6 and TCP (no IPv6 extension headers).
    pub fn segment(frame: &[u8]) -> Option<Segment> {
        let ethernet = EthernetPacket::new(frame)?;
        let ip = ethernet.payload();
        let (source, destination, tcp_bytes, ip_ok) = match ethernet.get_ethertype() {
            EtherTypes::Ipv4 => {
                let packet = Ipv4Packet::new(ip)?;
                let header = usize::from(packet.get_header_length()) * 4;
                let total = usize::from(packet.get_total_length());
                if packet.get_version() != 4 || header < 20 || total < header || total > ip.len() {
                    return None;
                }
                if packet.get_next_level_protocol() != IpNextHeaderProtocols::Tcp {
                    return None;
                }
                let ok = ipv4::checksum(&packet) == packet.get_checksum();
                let (s, d) = (packet.get_source(), packet.get_destination());
                (IpAddr::V4(s), IpAddr::V4(d), &ip[header..total], ok)
            }
            EtherTypes::Ipv6 => {
                let packet = Ipv6Packet::new(ip)?;
                let end = 40 + usize::from(packet.get_payload_length());
                if packet.get_version() != 6
                    || packet.get_next_header() != IpNextHeaderProtocols::Tcp
                    || end > ip.len()
                {
                    return None;
                }
                let (s, d) = (packet.get_source(), packet.get_destination());
                (IpAddr::V6(s), IpAddr::V6(d), &ip[40..end], true)
            }
            _ => return None,
        };
        let tcp = TcpPacket::new(tcp_bytes)?;
        let offset = usize::from(tcp.get_data_offset()) * 4;
        if offset < TCP_HEADER || offset > tcp_bytes.len() {
            return None;
        }
        let tcp_ok = match (source, destination) {
            (IpAddr::V4(s), IpAddr::V4(d)) => tcp::ipv4_checksum(&tcp, &s, &d),
            (IpAddr::V6(s), IpAddr::V6(d)) => tcp::ipv6_checksum(&tcp, &s, &d),
            _ => return None,
        } == tcp.get_checksum();
        Some(Segment {
            source: SocketAddr::new(source, tcp.get_source()),
            destination: SocketAddr::new(destination, tcp.get_destination()),
            seq: tcp.get_sequence(),
            ack: tcp.get_acknowledgement(),
            flags: tcp.get_flags(),
            payload: tcp_bytes[offset..].to_vec(),
            checksums_ok: ip_ok && tcp_ok,
        })
    }

    /// What each side of one conversation sent, read back as a TCP receiver would.
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    pub struct Followed {
        /// Client → target bytes, then target → client bytes.
        pub bytes: [Vec<u8>; 2],
        /// Whether each side's FIN was seen.
        pub fin: [bool; 2],
        /// Whether each side sent a RST.
        pub rst: [bool; 2],
    }

    /// Follows one conversation through `frames` (all of it, nothing else): a SYN from the
    /// client first, then every segment in sequence with correct checksums and
    /// acknowledgements of what the other side sent; an error names the first fault.
    pub fn follow<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> Result<Followed, String> {
        let mut ends: Option<[SocketAddr; 2]> = None;
        let mut next = [0u32; 2];
        let mut out = Followed::default();
        for (n, frame) in frames.into_iter().enumerate() {
            let s = segment(frame).ok_or(format!("frame {n}: not TCP"))?;
            if !s.checksums_ok {
                return Err(format!("frame {n}: bad checksum"));
            }
            let Some(pair) = ends else {
                if s.flags != TcpFlags::SYN {
                    return Err(format!("frame {n}: the first segment is not a SYN"));
                }
                ends = Some([s.source, s.destination]);
                next[0] = s.seq.wrapping_add(1);
                continue;
            };
            let from = if s.source == pair[0] && s.destination == pair[1] {
                0
            } else if s.source == pair[1] && s.destination == pair[0] {
                1
            } else {
                return Err(format!("frame {n}: another conversation"));
            };
            if s.flags & TcpFlags::SYN != 0 {
                if from != 1 || s.ack != next[0] {
                    return Err(format!("frame {n}: unexpected SYN"));
                }
                next[1] = s.seq.wrapping_add(1);
                continue;
            }
            if s.seq != next[from] {
                return Err(format!(
                    "frame {n}: seq {} where {} was next",
                    s.seq, next[from]
                ));
            }
            if s.flags & TcpFlags::ACK != 0 && s.ack != next[1 - from] {
                return Err(format!("frame {n}: ack {} of {}", s.ack, next[1 - from]));
            }
            if (out.fin[from] || out.rst[from])
                && (!s.payload.is_empty() || s.flags & TcpFlags::FIN != 0)
            {
                return Err(format!("frame {n}: data after the end"));
            }
            out.bytes[from].extend_from_slice(&s.payload);
            next[from] = next[from].wrapping_add(s.payload.len() as u32);
            if s.flags & TcpFlags::FIN != 0 {
                out.fin[from] = true;
                next[from] = next[from].wrapping_add(1);
            }
            if s.flags & TcpFlags::RST != 0 {
                out.rst[from] = true;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::read::follow;
    use super::*;

    fn frames(run: impl FnOnce(&mut Conversation, &mut dyn FnMut(&[u8]))) -> Vec<Vec<u8>> {
        let mut conversation = Conversation::new(
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:5432".parse().unwrap(),
            [0xffff_fff0, 1000],
        );
        let mut out = Vec::new();
        conversation.handshake(&mut |f| out.push(f.to_vec()));
        run(&mut conversation, &mut |f| out.push(f.to_vec()));
        out
    }

    #[test]
    fn both_directions_follow_back_across_a_sequence_wrap() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let all = frames(|c, emit| {
            c.data(Side::Client, b"GET / HTTP/1.0\r\n\r\n", emit);
            c.data(Side::Target, &big, emit);
            c.fin(Side::Client, emit);
            c.data(Side::Target, b"tail", emit);
            c.fin(Side::Target, emit);
        });
        let followed = follow(all.iter().map(|f| &f[..])).unwrap();
        assert_eq!(followed.bytes[0], b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(followed.bytes[1].len(), big.len() + 4);
        assert!(followed.bytes[1].starts_with(&big) && followed.bytes[1].ends_with(b"tail"));
        assert_eq!(followed.fin, [true, true]);
        assert_eq!(followed.rst, [false, false]);
        // A 200,000-byte chunk is four segments, none over the IPv4 limit.
        assert!(all.iter().all(|f| f.len() <= 14 + 65535));
    }

    #[test]
    fn the_handshake_is_syn_syn_ack_ack_with_options() {
        let all = frames(|_, _| {});
        let segments: Vec<_> = all.iter().map(|f| read::segment(f).unwrap()).collect();
        assert_eq!(segments[0].flags, TcpFlags::SYN);
        assert_eq!(segments[0].seq, 0xffff_fff0);
        assert_eq!(segments[1].flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(segments[1].ack, 0xffff_fff1);
        assert_eq!(segments[2].flags, TcpFlags::ACK);
        assert_eq!(segments[2].ack, 1001);
        assert!(segments.iter().all(|s| s.checksums_ok));
        assert_eq!(
            segments[0].source,
            "127.0.0.1:40000".parse::<SocketAddr>().unwrap()
        );
        // MSS option: kind 2, length 4, 65495.
        let syn = &all[0][14 + 20..];
        assert_eq!(&syn[20..24], &[2, 4, 0xff, 0xd7]);
    }

    #[test]
    fn a_reset_is_a_rst_from_the_side_that_reset() {
        let all = frames(|c, emit| {
            c.data(Side::Client, b"hello", emit);
            c.reset(Side::Target, emit);
        });
        let followed = follow(all.iter().map(|f| &f[..])).unwrap();
        assert_eq!(followed.rst, [false, true]);
        assert_eq!(followed.fin, [false, false]);
    }

    #[test]
    fn mixed_families_become_one_ipv6_conversation() {
        let mut c = Conversation::new(
            "[::ffff:127.0.0.1]:40000".parse().unwrap(),
            "[::1]:80".parse().unwrap(),
            [1, 2],
        );
        let (client, _) = c.endpoints();
        assert_eq!(client, "[::ffff:127.0.0.1]:40000".parse().unwrap());
        let mut out = Vec::new();
        c.handshake(&mut |f| out.push(f.to_vec()));
        c.data(Side::Target, b"v6", &mut |f| out.push(f.to_vec()));
        let followed = follow(out.iter().map(|f| &f[..])).unwrap();
        assert_eq!(followed.bytes[1], b"v6");
        // A mapped client with an IPv4 target is plain IPv4.
        let c = Conversation::new(
            "[::ffff:127.0.0.1]:40000".parse().unwrap(),
            "127.0.0.2:80".parse().unwrap(),
            [1, 2],
        );
        assert_eq!(c.endpoints().0, "127.0.0.1:40000".parse().unwrap());
    }

    #[test]
    fn a_damaged_frame_fails_its_checksum() {
        let mut all = frames(|c, emit| c.data(Side::Client, b"payload", emit));
        let last = all.len() - 2;
        let len = all[last].len();
        all[last][len - 1] ^= 1;
        assert!(follow(all.iter().map(|f| &f[..])).is_err());
        for cut in 0..all[0].len() {
            let _ = read::segment(&all[0][..cut]);
        }
    }
}
