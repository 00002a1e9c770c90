//! SMTP replies from a server, line by line, and what AUTH makes of them (the EHLO AUTH
//! list, 334 challenges).
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::smtp::ReplyParser;
use netkit::wire::smtp_auth::{self, Mechanism};

fuzz_target!(|data: &[u8]| {
    let mut parser = ReplyParser::default();
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match parser.line(line) {
            Ok(Some(reply)) => {
                let _ = reply.to_string();
                let _ = (reply.is_success(), reply.is_permanent_failure());
                let _ = reply.extension("SIZE");
                let offered = smtp_auth::offered(reply.extension("AUTH").unwrap_or(""));
                let _ = smtp_auth::choose(None, &offered);
                let challenge = reply.lines.first().map_or("", String::as_str);
                for m in [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5, Mechanism::XOAuth2] {
                    for round in 1..=3 {
                        if let Ok(Some(step)) = smtp_auth::answer(m, round, challenge, "u", "MARKERPW") {
                            assert!(!step.shown.contains("MARKERPW"));
                            assert!(!step.line.contains('\n') && !step.line.contains('\r'));
                        }
                    }
                }
                parser = ReplyParser::default();
            }
            Ok(None) => {}
            Err(_) => parser = ReplyParser::default(),
        }
    }
});
