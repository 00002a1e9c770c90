//! Building a message from user text: addresses (quoted and UTF-8 local parts, IDN domains),
//! header encoding and folding, body lines, transfer encodings, dot-stuffing, --data
//! messages, MIME attachments and their types.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::smtp::{
    base64, body_lines, build_data, build_message, check_header_words, check_type, dot_stuff,
    encode_header_text, first_line_room, fold, guess_type, mailbox, parse_address, phrase,
    prepared_message, Attachment, Message, Mime, Transfer,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let encoded = base64(rest);
    assert_eq!(encoded.len(), rest.len().div_ceil(3) * 4);
    // Folding only inserts CRLF (before white space): without line ends, the text is unchanged.
    let folded = fold(&text);
    assert_eq!(folded.replace("\r\n", ""), text.replace("\r\n", ""));
    let _ = phrase(&text);
    let _ = check_header_words("the subject", &text);
    let room = first_line_room("Subject");
    let header = encode_header_text(&text, room);
    assert!(header.is_ascii(), "{header:?}");
    if let Ok(envelope) = mailbox(&text) {
        // No line end nor NUL ever; < and > only inside a quoted local part (RFC 5321 qtext).
        assert!(envelope.contains('@') && !envelope.contains(['\r', '\n', '\0']));
        assert!(envelope.starts_with('"') || !envelope.contains(['<', '>', ' ']));
    }
    let _ = guess_type(&text);
    if check_type(&text).is_ok() {
        assert!(text.is_ascii() && text.contains('/') && !text.contains([' ', ';', '\n']));
    }
    if let Ok(message) = prepared_message(rest) {
        let wire = dot_stuff(&message);
        assert!(wire.ends_with(b"\r\n.\r\n"));
        let body_end = wire.len() - 3;
        assert!(!wire[..body_end].windows(5).any(|w| w == b"\r\n.\r\n"));
    }
    let Ok(from) = parse_address("--from", &text) else {
        let _ = body_lines(rest);
        return;
    };
    let _ = from.null_sender_header("example.com");
    let to = [from.clone()];
    let message = Message {
        from: &from,
        to: &to,
        subject: Some(&text),
        extra: &[],
        date: "Sat, 21 Nov 2026 11:32:12 +0000".into(),
        message_id: "<x@example.com>".into(),
    };
    if let Ok(lines) = body_lines(rest) {
        let transfer = Transfer::choose(rest, mode % 2 == 0);
        let wire = build_data(&message, &lines, transfer);
        assert!(wire.ends_with(b"\r\n.\r\n"));
        // Dot-stuffed: the only line that is a lone dot is the last.
        let body_end = wire.len() - 3;
        assert!(!wire[..body_end].windows(5).any(|w| w == b"\r\n.\r\n"));
        for line in wire.split(|b| *b == b'\n') {
            assert!(line.len() <= 1000, "a line of {} octets", line.len());
        }
        // The same body as the text part of a multipart message, the input attached.
        let attachments = [Attachment {
            name: text.to_string(),
            content_type: guess_type(&text).to_string(),
            bytes: rest.to_vec(),
        }];
        let mime = Mime {
            boundary: "=_fuzz",
            attachments: &attachments,
        };
        let multipart = build_message(&message, &lines, transfer, Some(mime));
        assert!(multipart.ends_with(b"--\r\n"));
        let wire = dot_stuff(&multipart);
        let body_end = wire.len() - 3;
        assert!(!wire[..body_end].windows(5).any(|w| w == b"\r\n.\r\n"));
    }
});
