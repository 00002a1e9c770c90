//! Line framing and length-prefixed frames: whole and trickled input agree; frames round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::frame::{read_frame, write_frame, CrlfEncoder, LineReader, PrefixWidth};
use std::io::Read;

/// Hands out at most `step` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn lines(reader: impl Read, max: usize) -> (Vec<Vec<u8>>, Option<String>) {
    let mut reader = LineReader::new(reader, max);
    let mut out = Vec::new();
    loop {
        match reader.read_line() {
            Ok(Some(line)) => out.push(line),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&knob, input)) = data.split_first() else {
        return;
    };
    let max = 1 + usize::from(knob % 64);
    let whole = lines(input, max);
    let trickled = lines(
        Trickle {
            data: input,
            step: 1 + usize::from(knob % 5),
        },
        max,
    );
    assert_eq!(whole, trickled);
    // CRLF encoding in pieces equals encoding at once.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    CrlfEncoder::default().encode(input, &mut a);
    let mut enc = CrlfEncoder::default();
    for piece in input.chunks(1 + usize::from(knob % 3)) {
        enc.encode(piece, &mut b);
    }
    assert_eq!(a, b);
    for width in [PrefixWidth::U8, PrefixWidth::U16, PrefixWidth::U32] {
        let _ = read_frame(
            &mut Trickle {
                data: input,
                step: 3,
            },
            width,
            4096,
        );
        let mut framed = Vec::new();
        if write_frame(&mut framed, width, input).is_ok() {
            let back = read_frame(&mut framed.as_slice(), width, usize::MAX).unwrap();
            assert_eq!(back.as_deref(), Some(input));
        }
    }
});
