//! SMTP replies from a server, line by line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::smtp::ReplyParser;

fuzz_target!(|data: &[u8]| {
    let mut parser = ReplyParser::default();
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match parser.line(line) {
            Ok(Some(reply)) => {
                let _ = reply.to_string();
                let _ = (reply.is_success(), reply.is_permanent_failure());
                let _ = reply.extension("SIZE");
                parser = ReplyParser::default();
            }
            Ok(None) => {}
            Err(_) => parser = ReplyParser::default(),
        }
    }
});
