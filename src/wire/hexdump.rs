//! The `-x` hex dump: both directions of a relay, marked and offset, in the classic layout.
//!
//! Each line shows a direction mark (`>` sent, `<` received), the offset within that
//! direction's stream, 16 bytes in hex split 8+8, and the printable ASCII. Offsets count per
//! direction, so a dump of a request/response can be read as two streams, as `socat -x` and
//! `ncat --hex-dump` users expect.

use std::fmt::Write;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Which way the dumped bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Sent to the peer.
    Sent,
    /// Received from the peer.
    Received,
}

impl Mark {
    /// `>` or `<`.
    pub fn symbol(self) -> char {
        match self {
            Mark::Sent => '>',
            Mark::Received => '<',
        }
    }
}

/// Formats `bytes`, which start at stream offset `offset`, as dump lines (each ending in `\n`).
pub fn format(mark: Mark, offset: u64, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(16) * 80);
    for (index, row) in bytes.chunks(16).enumerate() {
        // A stream offset cannot reach 2^64, but a caller's value must never panic here.
        let row_offset = offset.wrapping_add((index as u64).wrapping_mul(16));
        let _ = write!(out, "{} {:08x}  ", mark.symbol(), row_offset);
        for column in 0..16 {
            match row.get(column) {
                // By table, not `write!`: a dump of a bulk transfer formats every byte.
                Some(&byte) => {
                    out.push(HEX[usize::from(byte >> 4)] as char);
                    out.push(HEX[usize::from(byte & 0xf)] as char);
                    out.push(' ');
                }
                None => out.push_str("   "),
            }
            if column == 7 {
                out.push(' ');
            }
        }
        out.push_str(" |");
        out.extend(row.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push_str("|\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_near_the_end_of_u64_wraps_instead_of_panicking() {
        // Found by fuzz/ (hexdump): `offset + 16` overflowed.
        let text = format(Mark::Received, u64::MAX - 3, &[0u8; 20]);
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().nth(1).unwrap().starts_with("< 0000000c "));
    }

    #[test]
    fn a_full_row_and_a_partial_row() {
        let dump = format(Mark::Sent, 0, b"GET / HTTP/1.0\r\n\r\n");
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(
            lines[0],
            "> 00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 30 0d 0a  |GET / HTTP/1.0..|"
        );
        assert_eq!(
            lines[1],
            "> 00000010  0d 0a                                             |..|"
        );
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn received_rows_carry_their_offset() {
        let dump = format(Mark::Received, 0x20, b"ok");
        assert!(dump.starts_with("< 00000020  6f 6b "), "{dump}");
        assert!(dump.ends_with("|ok|\n"));
        assert_eq!(format(Mark::Received, 0, b""), "");
    }
}
