//! RFC 868 time replies (`nk time`): exactly 4 bytes are a time, in the 1968-2104 window,
//! and encoding it gives the bytes back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::time::{decode, encode, LEN};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok((value, when)) => {
            assert_eq!(data.len(), LEN);
            assert_eq!(encode(when), value.to_be_bytes());
            assert_eq!(&encode(when)[..], data);
        }
        Err(e) => assert_eq!(e.0, data.len()),
    }
});
