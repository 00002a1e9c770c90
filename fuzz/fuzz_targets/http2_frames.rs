//! `nk head --http2`: a server's HTTP/2 frames and HPACK header blocks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::h2::{parse_frame, render_head, Conversation, Event, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let mut conversation = Conversation::default();
    let mut rest = data;
    loop {
        match parse_frame(rest) {
            Ok(Some((frame, used))) => {
                assert!(frame.payload.len() <= MAX_FRAME && used == 9 + frame.payload.len());
                match conversation.on_frame(&frame) {
                    Ok(events) => {
                        for event in events {
                            if let Event::Head(head) = event {
                                let text = render_head(&head);
                                assert!(text.starts_with(b"HTTP/2 ") && text.ends_with(b"\r\n\r\n"));
                            }
                        }
                    }
                    Err(_) => return,
                }
                rest = &rest[used..];
            }
            Ok(None) | Err(_) => return,
        }
    }
});
