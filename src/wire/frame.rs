//! Framing: lines with a length cap, LF→CRLF conversion, and length-prefixed frames with a cap.
//!
//! Line protocols (SMTP, HTTP heads, the echo service, `-C`) and length-prefixed ones all read
//! untrusted bytes; a peer that never sends the delimiter, or announces a 4 GiB frame, must get
//! an error, not our memory. Everything here is pure: any `Read`/`Write`, no sockets, no clocks.

use std::fmt;
use std::io::{self, Read, Write};

/// What can go wrong while reading a frame.
#[derive(Debug)]
pub enum FrameError {
    /// A line or frame longer than the cap.
    TooLong {
        /// The cap that was exceeded.
        limit: usize,
    },
    /// The stream ended inside a frame (a line without its terminator, a short frame).
    Truncated {
        /// How many bytes of the unfinished frame had arrived.
        got: usize,
    },
    /// The underlying reader failed.
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { limit } => write!(f, "frame longer than {limit} bytes"),
            FrameError::Truncated { got } => {
                write!(f, "stream ended inside a frame after {got} bytes")
            }
            FrameError::Io(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(err: io::Error) -> FrameError {
        FrameError::Io(err)
    }
}

/// Reads LF-terminated lines (a CR before the LF is dropped) with a cap on the line length.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_line: usize,
    eof: bool,
}

impl<R: Read> LineReader<R> {
    /// A reader whose lines, terminator excluded, may be at most `max_line` bytes.
    pub fn new(inner: R, max_line: usize) -> LineReader<R> {
        let capacity = (max_line + 2).clamp(64, 64 * 1024);
        LineReader {
            inner,
            buf: vec![0; capacity],
            start: 0,
            end: 0,
            max_line,
            eof: false,
        }
    }

    /// The next line without its `\n` or `\r\n`, or `None` at a clean end of stream.
    /// A final line without a terminator is `Truncated`; a line over the cap is `TooLong`.
    pub fn read_line(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let mut line = Vec::new();
        loop {
            if let Some(pos) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                line.extend_from_slice(&self.buf[self.start..self.start + pos]);
                self.start += pos + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > self.max_line {
                    return Err(FrameError::TooLong {
                        limit: self.max_line,
                    });
                }
                return Ok(Some(line));
            }
            line.extend_from_slice(&self.buf[self.start..self.end]);
            self.start = 0;
            self.end = 0;
            // The +1 leaves room for a CR that belongs to the terminator.
            if line.len() > self.max_line + 1 {
                return Err(FrameError::TooLong {
                    limit: self.max_line,
                });
            }
            if self.eof {
                return if line.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated { got: line.len() })
                };
            }
            let n = loop {
                match self.inner.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            self.end = n;
            self.eof = n == 0;
        }
    }

    /// Bytes already read from the stream but not yet returned as lines.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The underlying reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Converts bare LF to CRLF (`-C`), across chunk boundaries; an LF already preceded by CR is
/// left alone, so CRLF input is not doubled into CR CR LF.
#[derive(Debug, Default, Clone)]
pub struct CrlfEncoder {
    last_was_cr: bool,
}

impl CrlfEncoder {
    /// Appends the converted form of `input` to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 8);
        for &byte in input {
            if byte == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(byte);
            self.last_was_cr = byte == b'\r';
        }
    }
}

/// Width of the big-endian length prefix of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixWidth {
    /// One byte.
    U8,
    /// Two bytes, big-endian.
    U16,
    /// Four bytes, big-endian (DNS over TCP uses U16; many RPCs use U32).
    U32,
}

impl PrefixWidth {
    fn bytes(self) -> usize {
        match self {
            PrefixWidth::U8 => 1,
            PrefixWidth::U16 => 2,
            PrefixWidth::U32 => 4,
        }
    }

    fn max(self) -> u64 {
        match self {
            PrefixWidth::U8 => u8::MAX.into(),
            PrefixWidth::U16 => u16::MAX.into(),
            PrefixWidth::U32 => u32::MAX.into(),
        }
    }
}

/// Reads one length-prefixed frame: `None` at a clean end of stream (before the prefix),
/// `TooLong` when the announced length exceeds `max` (nothing more is read),
/// `Truncated` when the stream ends inside the prefix or the payload.
pub fn read_frame<R: Read>(
    reader: &mut R,
    width: PrefixWidth,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; 4];
    let prefix = &mut prefix[..width.bytes()];
    let got = read_full(reader, prefix)?;
    if got == 0 {
        return Ok(None);
    }
    if got < prefix.len() {
        return Err(FrameError::Truncated { got });
    }
    let len = prefix
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if len > max as u64 {
        return Err(FrameError::TooLong { limit: max });
    }
    let mut payload = vec![0u8; len as usize];
    let got = read_full(reader, &mut payload)?;
    if got < payload.len() {
        return Err(FrameError::Truncated { got });
    }
    Ok(Some(payload))
}

/// Writes `payload` with its length prefix; a payload too long for the prefix is an error.
pub fn write_frame<W: Write>(writer: &mut W, width: PrefixWidth, payload: &[u8]) -> io::Result<()> {
    if payload.len() as u64 > width.max() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame of {} bytes does not fit a {}-byte length",
                payload.len(),
                width.bytes()
            ),
        ));
    }
    let len = (payload.len() as u32).to_be_bytes();
    let mut framed = Vec::with_capacity(width.bytes() + payload.len());
    framed.extend_from_slice(&len[4 - width.bytes()..]);
    framed.extend_from_slice(payload);
    writer.write_all(&framed)
}

/// Reads until `buf` is full or the stream ends; returns how many bytes arrived.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per read, to exercise every boundary.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.split_first() {
                Some((&b, rest)) if !buf.is_empty() => {
                    buf[0] = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn lines_split_on_lf_and_crlf() {
        let mut lines = LineReader::new(&b"one\r\ntwo\n\nthree\r\n"[..], 100);
        assert_eq!(lines.read_line().unwrap().unwrap(), b"one");
        assert_eq!(lines.read_line().unwrap().unwrap(), b"two");
        assert_eq!(lines.read_line().unwrap().unwrap(), b"");
        assert_eq!(lines.read_line().unwrap().unwrap(), b"three");
        assert!(lines.read_line().unwrap().is_none());
    }

    #[test]
    fn lines_survive_one_byte_reads() {
        let mut lines = LineReader::new(Trickle(b"ab\r\ncd\n"), 2);
        assert_eq!(lines.read_line().unwrap().unwrap(), b"ab");
        assert_eq!(lines.read_line().unwrap().unwrap(), b"cd");
        assert!(lines.read_line().unwrap().is_none());
    }

    #[test]
    fn a_line_over_the_cap_is_refused() {
        let mut lines = LineReader::new(&b"abcd\n"[..], 3);
        assert!(matches!(
            lines.read_line(),
            Err(FrameError::TooLong { limit: 3 })
        ));
        let endless = io::repeat(b'x').take(10 << 20);
        let mut lines = LineReader::new(endless, 1000);
        assert!(matches!(
            lines.read_line(),
            Err(FrameError::TooLong { limit: 1000 })
        ));
    }

    #[test]
    fn an_unterminated_last_line_is_truncated() {
        let mut lines = LineReader::new(&b"ok\npartial"[..], 100);
        assert_eq!(lines.read_line().unwrap().unwrap(), b"ok");
        assert!(matches!(
            lines.read_line(),
            Err(FrameError::Truncated { got: 7 })
        ));
    }

    #[test]
    fn crlf_encoder_converts_bare_lf_only() {
        let mut enc = CrlfEncoder::default();
        let mut out = Vec::new();
        enc.encode(b"a\nb\r\nc\r", &mut out);
        enc.encode(b"\nd\n", &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\nd\r\n");
    }

    #[test]
    fn frames_round_trip_at_every_width() {
        for width in [PrefixWidth::U8, PrefixWidth::U16, PrefixWidth::U32] {
            let mut wire = Vec::new();
            write_frame(&mut wire, width, b"hello").unwrap();
            write_frame(&mut wire, width, b"").unwrap();
            let mut reader = Trickle(&wire);
            assert_eq!(
                read_frame(&mut reader, width, 5).unwrap().unwrap(),
                b"hello"
            );
            assert_eq!(read_frame(&mut reader, width, 5).unwrap().unwrap(), b"");
            assert!(read_frame(&mut reader, width, 5).unwrap().is_none());
        }
    }

    #[test]
    fn frame_wire_form_is_big_endian() {
        let mut wire = Vec::new();
        write_frame(&mut wire, PrefixWidth::U16, b"ab").unwrap();
        assert_eq!(wire, [0, 2, b'a', b'b']);
        let too_big = vec![0u8; 256];
        assert!(write_frame(&mut Vec::new(), PrefixWidth::U8, &too_big).is_err());
    }

    #[test]
    fn frames_over_the_cap_or_cut_short_are_refused() {
        let announced_huge = [0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut &announced_huge[..], PrefixWidth::U32, 1 << 20),
            Err(FrameError::TooLong { limit: 1_048_576 })
        ));
        assert!(matches!(
            read_frame(&mut &[0u8][..], PrefixWidth::U16, 10),
            Err(FrameError::Truncated { got: 1 })
        ));
        assert!(matches!(
            read_frame(&mut &[0u8, 4, b'a'][..], PrefixWidth::U16, 10),
            Err(FrameError::Truncated { got: 1 })
        ));
    }
}
