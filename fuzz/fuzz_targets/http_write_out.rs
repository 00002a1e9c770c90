//! `nk head --write-out FORMAT`: curl's format text with `%{variable}` and `\n` escapes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::write_out::{parse, render, Piece, Values};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pieces) = parse(text) {
        // Literal text never grows past the format; rendering never fails.
        let literal: usize = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                _ => 0,
            })
            .sum();
        assert!(literal <= text.len());
        let (out, err) = render(&pieces, &Values::default());
        assert!(out.len() + err.len() <= text.len() * 8 + 64);
    }
});
