//! The chunked decoder: the body read from the whole input and from the same bytes in pieces
//! (split at points the input chooses) is the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::http::{Chunk, ChunkedDecoder};

/// Feeds `pieces` in order; the body bytes and whether the last chunk came, or the error.
fn decode(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), String> {
    let mut decoder = ChunkedDecoder::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut body = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.step(&buf)? {
                Chunk::NeedMore => break,
                Chunk::Data { start, end } => {
                    assert!(start <= end && end <= buf.len() && end > 0);
                    body.extend_from_slice(&buf[start..end]);
                    buf.drain(..end);
                }
                Chunk::Framing(n) => {
                    assert!(n > 0 && n <= buf.len());
                    buf.drain(..n);
                }
                Chunk::Done(n) => {
                    assert!(n > 0 && n <= buf.len());
                    return Ok((body, true));
                }
            }
        }
    }
    Ok((body, false))
}

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, input)) = data.split_first() else {
        return;
    };
    let whole = decode(&[input]);
    // Split into pieces of 1 + (cuts % 7) bytes.
    let pieces: Vec<&[u8]> = input.chunks(1 + usize::from(cuts % 7)).collect();
    let split = decode(&pieces);
    if let (Ok(whole), Ok(split)) = (&whole, &split) {
        assert_eq!(whole, split);
    }
});
