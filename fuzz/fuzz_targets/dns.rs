//! DNS replies judged against a query, and every record printed.
#![no_main]
use hickory_proto::rr::{Name, RecordType};
use libfuzzer_sys::fuzz_target;
use netkit::wire::dns::{judge, record_json, record_line, Verdict};
use std::str::FromStr;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let id = u16::from_be_bytes([data[0], data[1]]);
    let name = Name::from_str("example.com.").unwrap();
    for rtype in [RecordType::A, RecordType::ANY] {
        if let Verdict::Reply(message) = judge(data, id, &name, rtype) {
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
        }
    }
});
