//! A response head from a server: parse, framing, and whole-vs-truncated agreement.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::http::{framing, parse_head, Method};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(head)) = parse_head(data) else {
        return;
    };
    assert!(head.len <= data.len());
    // The head alone, without what follows it, reads the same.
    let again = parse_head(&data[..head.len]).expect("the head alone parses");
    assert_eq!(again.as_ref(), Some(&head));
    // One byte short of the head is never a complete head.
    if head.len > 0 {
        assert_eq!(parse_head(&data[..head.len - 1]).ok().flatten(), None);
    }
    for method in [Method::Head, Method::Get] {
        let _ = framing(method, &head);
    }
    let _ = head.is_interim();
});
