//! DNS replies judged against a query, every record printed (the raw DNSSEC, DNAME and URI
//! readers included), the whole message in dig's view, zone transfer records fed to the
//! transfer state, the bytes read as a DoH (HTTP) response, and the user's `-t`, `-c` and
//! `--subnet` text parsed.
#![no_main]
use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use libfuzzer_sys::fuzz_target;
use netkit::wire::dns::{
    doh_response,
    judge, message_text, parse_class, parse_subnet, parse_type, parse_type_arg, record_json,
    record_line, Transfer, Verdict,
};
use std::str::FromStr;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_type(text);
        let _ = parse_type_arg(text);
        let _ = parse_class(text);
        let _ = parse_subnet(text);
    }
    // The same bytes as a DoH response, whole and cut short.
    for eof in [false, true] {
        let _ = doh_response(data, eof);
    }
    if data.len() < 2 {
        return;
    }
    let id = u16::from_be_bytes([data[0], data[1]]);
    // The message's own question when it has one, so that seeds from real servers (any name,
    // any type, any class) reach the record readers.
    let own = Message::from_vec(data).ok().and_then(|m| {
        m.queries()
            .first()
            .map(|q| (q.name().clone(), q.query_type(), q.query_class()))
    });
    let fixed = Name::from_str("example.com.").unwrap();
    let asked = [
        own.unwrap_or((fixed.clone(), RecordType::A, DNSClass::IN)),
        (fixed, RecordType::ANY, DNSClass::IN),
    ];
    for (name, rtype, class) in asked {
        if let Verdict::Reply(message) = judge(data, id, &name, rtype, class) {
            for record in message
                .answers()
                .iter()
                .chain(message.name_servers())
                .chain(message.additionals())
            {
                let line = record_line(record);
                assert!(!line.contains('\n'), "{line:?}");
                let _ = record_json(record).to_string();
            }
            let _ = message_text(&message);
            for incremental in [false, true] {
                let mut transfer = Transfer::default();
                for record in message.answers() {
                    if transfer.feed(record, incremental).is_err() {
                        break;
                    }
                }
                transfer.end_of_message(incremental, Some(1));
            }
        }
    }
});
