//! RFC 864 character generator text: the stream a server sends and a checker that tells a
//! client whether what arrived is that stream, byte for byte.
//!
//! The pattern is RFC 864's "one popular pattern": lines of 72 characters taken from the 95
//! printable ASCII characters (space to `~`) in order, each line starting one character
//! further along than the one before, each ending in CRLF. After 95 lines it starts again, so
//! the whole stream is a cycle of 95 × 74 = 7030 bytes. nk starts at `!`, as RFC 864's
//! example and every inetd do, so its first lines are byte for byte xinetd's.
//!
//! xinetd's ring leaves out the space and `~` (93 characters, `!` to `}`) while its line
//! counter still turns over at 95, so from line 23 on its lines differ from RFC 864's. The
//! checker accepts either pattern (it follows whichever the bytes are), so that `--check`
//! is useful against the chargen most hosts run, and still catches any corrupted, lost or
//! reordered byte. It keeps a few words of state, whatever the input, so it can watch an
//! endless stream.

/// Characters on a line, before its CRLF.
pub const LINE_CHARS: usize = 72;
/// A line on the wire: the characters and CRLF.
pub const LINE_BYTES: usize = LINE_CHARS + 2;
/// The printable ASCII characters, space to `~`: the ring, and the lines in a cycle.
pub const RING: usize = 95;
/// Bytes after which the stream repeats.
pub const CYCLE: usize = RING * LINE_BYTES;
/// The line nk's stream starts with: the one that starts with `!` (ring index 1).
pub const FIRST_LINE: usize = 1;
/// The longest UDP reply RFC 864 allows.
pub const MAX_DATAGRAM: usize = 512;

/// xinetd's ring: `!` to `}`.
const XINETD_RING: usize = 93;

/// The patterns the checker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ring {
    /// RFC 864's (and nk's): the 95 printable characters.
    Rfc864,
    /// xinetd's: 93 characters, with its line counter turning over at 95.
    Xinetd,
}

impl Ring {
    /// The byte at `offset` of the pattern whose first line is line `first_line`.
    fn byte_at(self, first_line: usize, offset: u64) -> u8 {
        let line = first_line + (offset / LINE_BYTES as u64) as usize % RING;
        match (offset % LINE_BYTES as u64) as usize {
            column if column < LINE_CHARS => match self {
                Ring::Rfc864 => b' ' + ((line + column) % RING) as u8,
                Ring::Xinetd => b'!' + ((line % RING % XINETD_RING + column) % XINETD_RING) as u8,
            },
            LINE_CHARS => b'\r',
            _ => b'\n',
        }
    }
}

/// The byte at `offset` of nk's stream starting with line `first_line` (0 starts with space).
pub fn byte_at(first_line: usize, offset: usize) -> u8 {
    Ring::Rfc864.byte_at(first_line, offset as u64)
}

/// Fills `out` with the stream starting at the first byte of line `first_line`.
pub fn fill(first_line: usize, out: &mut [u8]) {
    for (offset, byte) in out.iter_mut().enumerate() {
        *byte = byte_at(first_line, offset);
    }
}

/// `cycles` whole cycles of nk's stream (from [`FIRST_LINE`]) and `extra` bytes more: a
/// server sends slices of it (from any offset below [`CYCLE`]) instead of building text per
/// client.
pub fn repeated(cycles: usize, extra: usize) -> Vec<u8> {
    let mut text = vec![0u8; cycles * CYCLE + extra];
    fill(FIRST_LINE, &mut text);
    text
}

/// Where a byte stopped matching the pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The byte's offset in all that was checked (0 = the first byte).
    pub offset: u64,
    /// The line it is on (1 = the first).
    pub line: u64,
    /// What the pattern has there, in words (`'A'`, `CR`, `LF`, `a printable character`).
    pub expected: String,
    /// The byte that came.
    pub got: u8,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "byte {} (line {}) is {}, the RFC 864 pattern has {} there",
            self.offset + 1,
            self.line,
            show(self.got),
            self.expected
        )
    }
}

fn show(byte: u8) -> String {
    match byte {
        b'\r' => "CR".into(),
        b'\n' => "LF".into(),
        b' '..=b'~' => format!("'{}'", byte as char),
        _ => format!("0x{byte:02x}"),
    }
}

/// How strict the checker is about line lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A TCP stream: every line is 72 characters and CRLF; the first may start with any
    /// character, and each next one a character further.
    Stream,
    /// One UDP reply: the same, except that the last line may be shorter (cut, with or
    /// without its CRLF, as servers fit the lines into the datagram).
    Datagram,
}

/// The patterns (and the line each starts with) the bytes so far agree with.
type Candidates = [Option<(Ring, usize)>; 3];

/// Checks bytes against the pattern, fed in pieces of any size.
#[derive(Debug, Clone)]
pub struct Checker {
    shape: Shape,
    /// Empty until the first byte says where the pattern starts.
    candidates: Candidates,
    /// A datagram's line ended early (CR before 72 characters): only LF may follow.
    short_line: bool,
    /// The datagram is over (a short line ended): any further byte is a mismatch.
    finished: bool,
    offset: u64,
    line: u64,
    failed: bool,
}

impl Checker {
    /// A checker for a stream or a datagram that starts at a line's first character.
    pub fn new(shape: Shape) -> Checker {
        Checker {
            shape,
            candidates: [None; 3],
            short_line: false,
            finished: false,
            offset: 0,
            line: 1,
            failed: false,
        }
    }

    /// Bytes checked so far.
    pub fn checked(&self) -> u64 {
        self.offset
    }

    /// Checks the next bytes; the first mismatch is returned, and the checker checks nothing
    /// after it (a stream out of step cannot say more).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Mismatch> {
        if self.failed {
            return Ok(());
        }
        for &byte in bytes {
            if let Err(expected) = self.step(byte) {
                self.failed = true;
                return Err(Mismatch {
                    offset: self.offset,
                    line: self.line,
                    expected,
                    got: byte,
                });
            }
            self.offset += 1;
        }
        Ok(())
    }

    fn step(&mut self, byte: u8) -> Result<(), String> {
        if self.finished {
            return Err("nothing (the datagram's last line had ended)".into());
        }
        if self.short_line {
            if byte != b'\n' {
                return Err("LF".into());
            }
            self.finished = true;
            return Ok(());
        }
        if self.offset == 0 {
            self.candidates = candidates(byte)
                .ok_or_else(|| String::from("a printable character (a line's first)"))?;
            return Ok(());
        }
        let column = (self.offset % LINE_BYTES as u64) as usize;
        if self.shape == Shape::Datagram && column > 0 && column < LINE_CHARS && byte == b'\r' {
            self.short_line = true;
            return Ok(());
        }
        let offset = self.offset;
        let mut expected = None;
        for slot in &mut self.candidates {
            if let Some((ring, first_line)) = *slot {
                let want = ring.byte_at(first_line, offset);
                expected.get_or_insert(want);
                if want != byte {
                    *slot = None;
                }
            }
        }
        if self.candidates.iter().all(Option::is_none) {
            return Err(show(expected.unwrap_or(b'?')));
        }
        if column == LINE_BYTES - 1 {
            self.line += 1;
        }
        Ok(())
    }
}

/// The patterns a stream whose first byte is `first` may be: RFC 864's from the line that
/// starts with it, and xinetd's (whose `!` and `"` lines come twice in a cycle).
fn candidates(first: u8) -> Option<Candidates> {
    if !(b' '..=b'~').contains(&first) {
        return None;
    }
    let rfc = Some((Ring::Rfc864, usize::from(first - b' ')));
    if !(b'!'..=b'}').contains(&first) {
        return Some([rfc, None, None]);
    }
    let line = usize::from(first - b'!');
    let again = (line + XINETD_RING < RING).then_some((Ring::Xinetd, line + XINETD_RING));
    Some([rfc, Some((Ring::Xinetd, line)), again])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first two lines as xinetd (and RFC 864's example) sends them.
    const XINETD_START: &[u8] = b"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh\r\n\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghi\r\n";

    /// xinetd's stream (as captured from xinetd 2.3.15): its 93-character ring.
    fn xinetd_stream(len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|o| Ring::Xinetd.byte_at(0, o))
            .collect()
    }

    #[test]
    fn the_stream_starts_as_inetd_sends_it() {
        assert_eq!(&repeated(1, 0)[..XINETD_START.len()], XINETD_START);
        // The first 22 lines are the same as xinetd's; the 23rd reaches its missing '~'.
        let xinetd = xinetd_stream(CYCLE + LINE_BYTES);
        let same = 22 * LINE_BYTES;
        assert_eq!(repeated(1, 0)[..same], xinetd[..same]);
        assert_ne!(
            repeated(1, 0)[..same + LINE_BYTES],
            xinetd[..same + LINE_BYTES]
        );
        // xinetd's lines 91-95 start with '|', '}', '!', '"', '!'.
        let starts: Vec<u8> = (91..96).map(|l| xinetd[l * LINE_BYTES]).collect();
        assert_eq!(starts, b"|}!\"!");
        assert_eq!(&xinetd[90 * LINE_BYTES..90 * LINE_BYTES + 5], b"{|}!\"");
    }

    #[test]
    fn the_checker_follows_xinetd_too() {
        let xinetd = xinetd_stream(3 * CYCLE + 5);
        Checker::new(Shape::Stream).feed(&xinetd).unwrap();
        let mut bad = xinetd.clone();
        bad[2 * CYCLE + 3] ^= 1;
        let err = Checker::new(Shape::Stream).feed(&bad).unwrap_err();
        assert_eq!(err.offset, (2 * CYCLE + 3) as u64);
        // A datagram starting at xinetd's second '!' line (line 94 of its cycle).
        let again: Vec<u8> = (0..1024).map(|o| Ring::Xinetd.byte_at(93, o)).collect();
        Checker::new(Shape::Datagram).feed(&again).unwrap();
    }

    #[test]
    fn the_stream_wraps_after_95_lines() {
        let text = repeated(2, 0);
        assert_eq!(text.len(), 2 * CYCLE);
        assert_eq!(text[..CYCLE], text[CYCLE..]);
        // Line 94 of the cycle starts with '~' and goes on with ' ' after it.
        let line = &text[93 * LINE_BYTES..94 * LINE_BYTES];
        assert_eq!(&line[..3], b"~ !");
        assert!(line.ends_with(b"\r\n"));
    }

    #[test]
    fn the_checker_accepts_the_stream_in_any_pieces() {
        let text = repeated(3, 100);
        for piece in [1, 7, 74, 1000, text.len()] {
            let mut checker = Checker::new(Shape::Stream);
            for chunk in text.chunks(piece) {
                checker.feed(chunk).unwrap();
            }
            assert_eq!(checker.checked(), text.len() as u64);
        }
        // From any line on.
        let mut later = vec![0u8; 500];
        fill(40, &mut later);
        Checker::new(Shape::Stream).feed(&later).unwrap();
    }

    #[test]
    fn the_checker_names_the_first_wrong_byte() {
        let mut text = repeated(1, 0);
        text[100] = b'X';
        let err = Checker::new(Shape::Stream).feed(&text).unwrap_err();
        assert_eq!(err.offset, 100);
        assert_eq!(err.line, 2);
        assert_eq!(err.got, b'X');
        assert!(
            err.to_string().starts_with("byte 101 (line 2) is 'X'"),
            "{err}"
        );
        // A lost byte: everything after it is one off.
        let mut lost = repeated(1, 0);
        lost.remove(10);
        assert_eq!(
            Checker::new(Shape::Stream).feed(&lost).unwrap_err().offset,
            10
        );
        // A line that does not follow the one before.
        let mut skipped = repeated(1, 0);
        skipped.drain(LINE_BYTES..2 * LINE_BYTES);
        let err = Checker::new(Shape::Stream).feed(&skipped).unwrap_err();
        assert_eq!((err.offset, err.line), (LINE_BYTES as u64, 2));
        // LF alone where CRLF belongs.
        let mut bare = repeated(1, 0);
        bare[LINE_CHARS] = b'\n';
        assert_eq!(
            Checker::new(Shape::Stream)
                .feed(&bare)
                .unwrap_err()
                .expected,
            "CR"
        );
    }

    #[test]
    fn datagrams_may_end_with_a_short_line() {
        // xinetd's way: the last line cut and given its CRLF.
        let mut text = repeated(1, 0)[..2 * LINE_BYTES + 10].to_vec();
        text.extend_from_slice(b"\r\n");
        Checker::new(Shape::Datagram).feed(&text).unwrap();
        // nk's way: cut anywhere.
        for len in [0, 1, 73, 74, 75, 512] {
            Checker::new(Shape::Datagram)
                .feed(&repeated(1, 0)[..len])
                .unwrap();
        }
        // Nothing after a short line.
        text.push(b'!');
        assert!(Checker::new(Shape::Datagram).feed(&text).is_err());
        // A stream never has a short line.
        assert!(Checker::new(Shape::Stream).feed(b" !\"#\r\n!\"").is_err());
    }

    #[test]
    fn control_bytes_and_high_bytes_are_mismatches() {
        for bad in [b"\0".as_slice(), b"\xff", b"\r\n", b"\t"] {
            assert!(Checker::new(Shape::Stream).feed(bad).is_err(), "{bad:?}");
        }
    }
}
