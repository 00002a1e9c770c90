//! RFC 864 streams and datagrams from a server (`nk chargen --check`): the checker agrees
//! with itself fed whole or byte by byte, and catches any changed byte of nk's stream.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::chargen::{fill, Checker, Shape};

fuzz_target!(|data: &[u8]| {
    for shape in [Shape::Stream, Shape::Datagram] {
        let whole = Checker::new(shape).feed(data);
        let mut trickled = Checker::new(shape);
        let mut first_error = None;
        for byte in data {
            if let Err(e) = trickled.feed(std::slice::from_ref(byte)) {
                first_error.get_or_insert(e);
            }
        }
        assert_eq!(whole.err(), first_error);
    }
    // nk's stream from any line is accepted, and one changed byte after the first (which
    // chooses the line) is caught: where it is, or where xinetd's pattern, which it may
    // happen to match, parts from nk's.
    if let [line, high, low, flip, ..] = *data {
        let mut text = vec![0u8; 2000];
        fill(usize::from(line) % 95, &mut text);
        Checker::new(Shape::Stream).feed(&text).unwrap();
        let at = 1 + usize::from(u16::from_be_bytes([high, low])) % (text.len() - 1);
        text[at] ^= flip.max(1);
        let err = Checker::new(Shape::Stream).feed(&text).unwrap_err();
        assert!(err.offset >= at as u64);
    }
});
