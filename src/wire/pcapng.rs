//! The pcapng file format (IETF draft-ietf-opsawg-pcapng), as far as `nk forward --pcap`
//! needs it: a Section Header Block, one Interface Description Block, and an Enhanced Packet
//! Block per frame, all little-endian. Three fixed block layouts are less code than a crate's
//! general model of every block type; see [`read`] for the checked reader the unit tests and
//! the fuzz target use to prove the writer (tshark proves it in tests/forward_tap.rs).
//!
//! A block is `type, total length, body, total length`, padded to 32 bits: a file cut after
//! any whole block is still a valid file, which is what lets a killed forwarder leave a
//! readable capture.

/// LINKTYPE_ETHERNET: frames start with a 14-byte Ethernet header.
pub const LINKTYPE_ETHERNET: u16 = 1;

const SECTION_HEADER: u32 = 0x0A0D_0D0A;
const INTERFACE_DESCRIPTION: u32 = 0x0000_0001;
const ENHANCED_PACKET: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// shb_userappl: the application that wrote the section (shown by capinfos).
const OPTION_USER_APPLICATION: u16 = 4;
/// opt_endofopt.
const OPTION_END: u16 = 0;
/// A block's fixed framing: type, total length (twice).
const FRAMING: usize = 12;
/// An Enhanced Packet Block's fixed fields: interface, timestamp (2 words), two lengths.
const PACKET_FIELDS: usize = 20;

/// The bytes that start a file: a Section Header Block naming `application`, then one
/// Interface Description Block for `linktype` frames of at most `snaplen` bytes (0: no limit).
/// Timestamps are in microseconds (the default if_tsresol).
pub fn file_header(application: &str, linktype: u16, snaplen: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes()); // major version
    body.extend_from_slice(&0u16.to_le_bytes()); // minor version
    body.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not known
    push_option(&mut body, OPTION_USER_APPLICATION, application.as_bytes());
    push_option(&mut body, OPTION_END, &[]);
    let mut out = Vec::with_capacity(96);
    push_block(&mut out, SECTION_HEADER, &body);
    let mut interface = Vec::with_capacity(8);
    interface.extend_from_slice(&linktype.to_le_bytes());
    interface.extend_from_slice(&0u16.to_le_bytes()); // reserved
    interface.extend_from_slice(&snaplen.to_le_bytes());
    push_block(&mut out, INTERFACE_DESCRIPTION, &interface);
    out
}

/// Appends an Enhanced Packet Block holding `frame`, seen at `micros` since the Unix epoch,
/// on interface 0. A frame longer than a block can say (4 GiB) is cut to that, and its
/// original length is still told; the forwarder's frames are under 64 KiB.
pub fn push_packet(out: &mut Vec<u8>, micros: u64, frame: &[u8]) {
    let captured = &frame[..frame.len().min(u32::MAX as usize - 64)];
    let padded = captured.len().next_multiple_of(4);
    let total = FRAMING + PACKET_FIELDS + padded;
    out.reserve(total);
    out.extend_from_slice(&ENHANCED_PACKET.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // interface id
    out.extend_from_slice(&((micros >> 32) as u32).to_le_bytes());
    out.extend_from_slice(&(micros as u32).to_le_bytes());
    out.extend_from_slice(&(captured.len() as u32).to_le_bytes());
    out.extend_from_slice(&(frame.len().min(u32::MAX as usize) as u32).to_le_bytes());
    out.extend_from_slice(captured);
    out.resize(out.len() + padded - captured.len(), 0);
    out.extend_from_slice(&(total as u32).to_le_bytes());
}

fn push_block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let padded = body.len().next_multiple_of(4);
    let total = (FRAMING + padded) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padded - body.len(), 0);
    out.extend_from_slice(&total.to_le_bytes());
}

/// An option: code, length, value padded to 32 bits. Values are the writer's own short
/// strings; one longer than an option can say is cut.
fn push_option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    let value = &value[..value.len().min(u16::MAX as usize - 3)];
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + value.len().next_multiple_of(4) - value.len(), 0);
}

/// A checked reader of what [`file_header`] and [`push_packet`] write (one little-endian
/// section), for the unit tests and the fuzz target: every length is checked against the
/// bytes there are, so any input gives an error, never a panic.
pub mod read {
    use super::*;

    /// One Enhanced Packet Block: its timestamp (µs) and its captured frame.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Packet<'a> {
        /// Microseconds since the Unix epoch.
        pub micros: u64,
        /// The captured bytes.
        pub frame: &'a [u8],
        /// The frame's length on the wire.
        pub original_len: u32,
    }

    /// What a capture file holds: its link type and its packets in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Capture<'a> {
        /// The one interface's link type.
        pub linktype: u16,
        /// The Enhanced Packet Blocks.
        pub packets: Vec<Packet<'a>>,
    }

    /// Parses a whole file: a little-endian Section Header Block first, an Interface
    /// Description Block before any packet, blocks of other types skipped.
    pub fn capture(mut data: &[u8]) -> Result<Capture<'_>, String> {
        let mut linktype = None;
        let mut packets = Vec::new();
        let mut first = true;
        while !data.is_empty() {
            let (kind, body, rest) = block(data)?;
            data = rest;
            if first {
                if kind != SECTION_HEADER || word(body, 0)? != BYTE_ORDER_MAGIC {
                    return Err("not a little-endian pcapng section".into());
                }
                first = false;
                continue;
            }
            match kind {
                SECTION_HEADER => return Err("a second section".into()),
                INTERFACE_DESCRIPTION => {
                    let bytes = body.get(..2).ok_or("short interface block")?;
                    linktype = Some(u16::from_le_bytes([bytes[0], bytes[1]]));
                }
                ENHANCED_PACKET => {
                    if linktype.is_none() {
                        return Err("a packet before any interface".into());
                    }
                    let captured = word(body, 12)? as usize;
                    let frame = body
                        .get(PACKET_FIELDS..)
                        .and_then(|b| b.get(..captured))
                        .ok_or("captured length past the block")?;
                    packets.push(Packet {
                        micros: (u64::from(word(body, 4)?) << 32) | u64::from(word(body, 8)?),
                        frame,
                        original_len: word(body, 16)?,
                    });
                }
                _ => {}
            }
        }
        if first {
            return Err("empty file".into());
        }
        Ok(Capture {
            linktype: linktype.ok_or("no interface")?,
            packets,
        })
    }

    /// Splits off one block: (type, body, the rest).
    fn block(data: &[u8]) -> Result<(u32, &[u8], &[u8]), String> {
        let kind = word(data, 0)?;
        let total = word(data, 4)? as usize;
        if total < FRAMING || total % 4 != 0 || total > data.len() {
            return Err(format!(
                "block length {total} with {} bytes left",
                data.len()
            ));
        }
        if word(data, total - 4)? as usize != total {
            return Err("trailing block length differs".into());
        }
        Ok((kind, &data[8..total - 4], &data[total..]))
    }

    fn word(data: &[u8], at: usize) -> Result<u32, String> {
        let bytes = data
            .get(at..at.saturating_add(4))
            .filter(|b| b.len() == 4)
            .ok_or_else(|| format!("truncated at byte {at}"))?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_blocks_have_the_layout_of_the_format() {
        let head = file_header("nk", LINKTYPE_ETHERNET, 0);
        // SHB: type, length 40 (28 fixed, the "nk" option padded to 8, end-of-options 4).
        assert_eq!(&head[..4], &[0x0A, 0x0D, 0x0D, 0x0A]);
        let shb_len = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
        assert_eq!(shb_len, 12 + 16 + 8 + 4);
        assert_eq!(&head[8..12], &[0x4D, 0x3C, 0x2B, 0x1A]);
        assert_eq!(&head[shb_len - 4..shb_len], &head[4..8]);
        // IDB: type 1, length 20, linktype 1, snaplen 0.
        assert_eq!(
            &head[shb_len..],
            &[1, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0]
        );
    }

    #[test]
    fn packets_read_back_with_their_time_and_bytes() {
        let mut file = file_header("nk test", LINKTYPE_ETHERNET, 0);
        push_packet(&mut file, 1_700_000_000_123_456, b"abcde");
        push_packet(&mut file, 5, b"");
        push_packet(&mut file, 6, &[7u8; 64]);
        assert_eq!(file.len() % 4, 0);
        let capture = read::capture(&file).unwrap();
        assert_eq!(capture.linktype, LINKTYPE_ETHERNET);
        let got: Vec<(u64, &[u8])> = capture
            .packets
            .iter()
            .map(|p| (p.micros, p.frame))
            .collect();
        assert_eq!(
            got,
            vec![
                (1_700_000_000_123_456, &b"abcde"[..]),
                (5, &b""[..]),
                (6, &[7u8; 64][..])
            ]
        );
    }

    #[test]
    fn a_file_cut_inside_a_block_is_an_error_not_a_panic() {
        let mut file = file_header("nk", LINKTYPE_ETHERNET, 0);
        push_packet(&mut file, 1, b"hello");
        for cut in 0..file.len() {
            let _ = read::capture(&file[..cut]);
        }
        let whole_blocks = file.len() - (12 + 20 + 8);
        assert!(read::capture(&file[..whole_blocks]).is_ok());
        assert!(read::capture(&file[..file.len() - 1]).is_err());
    }
}
