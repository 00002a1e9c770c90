//! DNS messages for `nk resolve -t`: the query we send, the test a reply must pass before we
//! believe it, and the presentation (zone-file) form of the records we print.
//!
//! hickory-proto encodes and decodes; this module decides what to trust and how to show it.
//! A reply counts only when its ID, its QR bit and its question match ours (the source address
//! is checked by the transport), because an off-path forger has to guess all of them, and a
//! stale reply to an earlier query must not answer this one. Presentation is written here
//! rather than through hickory's `Display` impls so that `--short` prints exactly what
//! `dig +short` prints (TXT quoted and escaped, CAA from its raw value, names in ASCII) and so
//! that no hostile record can make a formatter fail: record types we do not know are shown
//! in RFC 3597's generic form (`\# LEN HEX`). No sockets and no clocks here.

use std::fmt::Write as _;
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

/// The EDNS0 UDP payload size we advertise (DNS Flag Day 2020: 1232 avoids IP fragmentation).
pub const EDNS_PAYLOAD: u16 = 1232;

/// The largest DNS message there is (the TCP length prefix is 16 bits).
pub const MAX_MESSAGE: usize = 65_535;

/// The record types `-t` accepts.
pub const TYPES: &[&str] = &[
    "A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "CAA", "ANY",
];

/// Parses a `-t` value (case-insensitive) into a record type, refusing types outside [`TYPES`].
pub fn parse_type(text: &str) -> Result<RecordType, String> {
    let upper = text.trim().to_ascii_uppercase();
    if !TYPES.contains(&upper.as_str()) {
        return Err(format!(
            "unknown record type '{text}' (one of {})",
            TYPES.join(" ")
        ));
    }
    RecordType::from_str(&upper).map_err(|e| format!("record type '{text}': {e}"))
}

/// Parses a name the user typed. Relative names stay relative (the search list applies);
/// labels over 63 bytes, names over 255 bytes and empty labels are refused.
pub fn parse_name(text: &str) -> Result<Name, String> {
    if text.is_empty() {
        return Err("empty name".into());
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("'{}' is not a DNS name", text.escape_debug()));
    }
    Name::from_str(text).map_err(|e| format!("'{text}' is not a DNS name: {e}"))
}

/// The reverse-lookup name of an address: `4.3.2.1.in-addr.arpa.` or the ip6.arpa nibbles.
pub fn reverse_name(ip: std::net::IpAddr) -> Name {
    Name::from(ip)
}

/// Builds the wire form of a recursive query for `name`/`rtype` with message ID `id`, with an
/// EDNS0 OPT record advertising [`EDNS_PAYLOAD`] unless `edns` is false.
pub fn build_query(id: u16, name: &Name, rtype: RecordType, edns: bool) -> Result<Vec<u8>, String> {
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), rtype));
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(EDNS_PAYLOAD).set_version(0);
        message.set_edns(opt);
    }
    message
        .to_vec()
        .map_err(|e| format!("encode query for {name}: {e}"))
}

/// What a datagram or TCP frame turned out to be, measured against the query we sent.
#[derive(Debug)]
pub enum Verdict {
    /// The answer to our query.
    Reply(Box<Message>),
    /// Not ours (another ID, not a response, another question): keep waiting.
    Foreign(&'static str),
    /// Not a DNS message at all: keep waiting, but remember why.
    Malformed(String),
}

/// Checks a received message against the query (`id`, `name`, `rtype`).
///
/// A FORMERR without a question section is accepted when the ID matches: servers that do not
/// speak EDNS answer that way, and the caller retries without the OPT record.
pub fn judge(bytes: &[u8], id: u16, name: &Name, rtype: RecordType) -> Verdict {
    // Cheap checks on the raw header first, so a flood of foreign datagrams costs no decoding.
    if bytes.len() < 12 {
        return Verdict::Malformed(format!("{} bytes, shorter than a DNS header", bytes.len()));
    }
    if u16::from_be_bytes([bytes[0], bytes[1]]) != id {
        return Verdict::Foreign("another message ID");
    }
    let message = match Message::from_vec(bytes) {
        Ok(message) => message,
        // hickory's reasons speak of its own internals ("label points to data not prior to
        // idx"); the user is told what the bytes are, in words.
        Err(_) => {
            return Verdict::Malformed(format!(
                "{} bytes that do not decode as a DNS message (a length, a name or a record \
                 runs past the end or points where it may not)",
                bytes.len()
            ))
        }
    };
    if message.message_type() != MessageType::Response {
        return Verdict::Foreign("not a response");
    }
    if message.op_code() != OpCode::Query {
        return Verdict::Foreign("another opcode");
    }
    let questions = message.queries();
    if questions.is_empty() && message.response_code() == ResponseCode::FormErr {
        return Verdict::Reply(Box::new(message));
    }
    let matches = questions.len() == 1
        && questions[0].name() == name
        && questions[0].query_type() == rtype
        && questions[0].query_class() == DNSClass::IN;
    if !matches {
        return Verdict::Foreign("another question");
    }
    Verdict::Reply(Box::new(message))
}

/// A response code the way dig and users name it (`NXDOMAIN`, `SERVFAIL`, ...).
pub fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::YXDomain => "YXDOMAIN".into(),
        ResponseCode::YXRRSet => "YXRRSET".into(),
        ResponseCode::NXRRSet => "NXRRSET".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        ResponseCode::NotZone => "NOTZONE".into(),
        ResponseCode::BADVERS => "BADVERS".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

/// A name in ASCII presentation form, as dig prints it (RFC 1035 §5.1): IDNs as the punycode
/// they are on the wire, `. \ " ( ) ; @ $` escaped with a backslash, other bytes outside
/// printable ASCII as decimal `\DDD` (hickory's own form is octal, which no zone file means).
pub fn name_text(name: &Name) -> String {
    if name.is_root() {
        return ".".into();
    }
    let mut text = String::with_capacity(name.len() + 1);
    for label in name.iter() {
        for &byte in label {
            match byte {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    text.push('\\');
                    text.push(byte as char);
                }
                0x21..=0x7e => text.push(byte as char),
                _ => {
                    let _ = write!(text, "\\{byte:03}");
                }
            }
        }
        text.push('.');
    }
    if !name.is_fqdn() {
        text.pop();
    }
    text
}

/// A record type's mnemonic, or RFC 3597's `TYPEnnn` for one hickory has no name for.
pub fn type_text(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    }
}

/// A class's mnemonic, or RFC 3597's `CLASSnnn`.
pub fn class_text(class: DNSClass) -> String {
    match class {
        DNSClass::IN => "IN".into(),
        DNSClass::CH => "CH".into(),
        DNSClass::HS => "HS".into(),
        DNSClass::NONE => "NONE".into(),
        DNSClass::ANY => "ANY".into(),
        other => format!("CLASS{}", u16::from(other)),
    }
}

/// The data column of a record in presentation form, as `dig +short` prints it.
pub fn rdata_text(record: &Record) -> String {
    match record.data() {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(aaaa) => aaaa.0.to_string(),
        RData::CNAME(target) => name_text(&target.0),
        RData::NS(target) => name_text(&target.0),
        RData::PTR(target) => name_text(&target.0),
        RData::MX(mx) => format!("{} {}", mx.preference(), name_text(mx.exchange())),
        RData::SRV(srv) => format!(
            "{} {} {} {}",
            srv.priority(),
            srv.weight(),
            srv.port(),
            name_text(srv.target())
        ),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            name_text(soa.mname()),
            name_text(soa.rname()),
            soa.serial(),
            soa.refresh(),
            soa.retry(),
            soa.expire(),
            soa.minimum()
        ),
        RData::TXT(txt) => {
            let strings: Vec<String> = txt.iter().map(|s| quoted(s)).collect();
            strings.join(" ")
        }
        RData::CAA(caa) => format!(
            "{} {} {}",
            caa.flags(),
            caa.tag().as_str(),
            quoted(caa.raw_value())
        ),
        RData::HINFO(hinfo) => format!("{} {}", quoted(hinfo.cpu()), quoted(hinfo.os())),
        RData::NAPTR(naptr) => format!(
            "{} {} {} {} {} {}",
            naptr.order(),
            naptr.preference(),
            quoted(naptr.flags()),
            quoted(naptr.services()),
            quoted(naptr.regexp()),
            name_text(naptr.replacement())
        ),
        RData::ANAME(target) => name_text(&target.0),
        // Serial, flags and type mnemonics (hickory's form; an unnamed type would read
        // "Unknown", so those fall back to the generic form).
        RData::CSYNC(csync)
            if csync
                .type_bit_maps()
                .all(|t| !matches!(t, RecordType::Unknown(_))) =>
        {
            csync.to_string()
        }
        // Numbers and upper-case hex, as dig prints them (hickory's hex is lower case).
        RData::SSHFP(sshfp) => format!(
            "{} {} {}",
            u8::from(sshfp.algorithm()),
            u8::from(sshfp.fingerprint_type()),
            upper_hex(sshfp.fingerprint())
        ),
        RData::TLSA(tlsa) => format!(
            "{} {} {} {}",
            u8::from(tlsa.cert_usage()),
            u8::from(tlsa.selector()),
            u8::from(tlsa.matching()),
            upper_hex(tlsa.cert_data())
        ),
        // Base64 (OPENPGPKEY) and the key=value parameters of SVCB/HTTPS (RFC 9460):
        // hickory's presentation is the standard one for these, and cannot fail.
        RData::OPENPGPKEY(key) => key.to_string(),
        RData::SVCB(svcb) => svcb.to_string(),
        RData::HTTPS(https) => https.to_string(),
        other => generic(other),
    }
}

/// A character-string in quotes, `"` and `\` escaped, bytes outside printable ASCII as `\DDD`
/// (RFC 1035 §5.1), exactly as dig shows TXT and CAA values.
fn quoted(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() + 2);
    text.push('"');
    for &byte in bytes {
        match byte {
            b'"' | b'\\' => {
                text.push('\\');
                text.push(byte as char);
            }
            0x20..=0x7e => text.push(byte as char),
            _ => {
                let _ = write!(text, "\\{byte:03}");
            }
        }
    }
    text.push('"');
    text
}

/// Bytes as upper-case hex, dig's form for SSHFP fingerprints and TLSA data.
fn upper_hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02X}");
    }
    text
}

/// RFC 3597's form for data we do not present specially: `\# LENGTH HEX`.
fn generic(rdata: &RData) -> String {
    match rdata.to_bytes() {
        Ok(bytes) if bytes.is_empty() => "\\# 0".to_string(),
        Ok(bytes) => {
            let mut text = format!("\\# {} ", bytes.len());
            for byte in bytes {
                let _ = write!(text, "{byte:02x}");
            }
            text
        }
        Err(err) => format!("(undisplayable {} data: {err})", rdata.record_type()),
    }
}

/// A whole record as one zone-file line: `NAME TTL CLASS TYPE DATA`, tab-separated.
pub fn record_line(record: &Record) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        name_text(record.name()),
        record.ttl(),
        class_text(record.dns_class()),
        type_text(record.record_type()),
        rdata_text(record)
    )
}

/// A record as a JSON object: name, ttl, class, type, data (the presentation form).
pub fn record_json(record: &Record) -> serde_json::Value {
    serde_json::json!({
        "name": name_text(record.name()),
        "ttl": record.ttl(),
        "class": class_text(record.dns_class()),
        "type": type_text(record.record_type()),
        "data": rdata_text(record),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{CAA, MX, SRV, TXT};
    use std::net::{IpAddr, Ipv4Addr};

    fn name(text: &str) -> Name {
        Name::from_str(text).unwrap()
    }

    #[test]
    fn names_escape_as_dig_does_in_decimal() {
        let odd = Name::from_labels(vec![
            &b"a b"[..],
            &b"x.y"[..],
            &b"q\"\xff"[..],
            &b"test"[..],
        ])
        .unwrap();
        let mut fqdn = odd.clone();
        fqdn.set_fqdn(true);
        assert_eq!(name_text(&fqdn), "a\\032b.x\\.y.q\\\"\\255.test.");
        assert_eq!(name_text(&Name::root()), ".");
        assert_eq!(name_text(&name("www.example.test.")), "www.example.test.");
    }

    #[test]
    fn unknown_types_and_classes_read_as_rfc_3597_says() {
        assert_eq!(type_text(RecordType::Unknown(65280)), "TYPE65280");
        assert_eq!(type_text(RecordType::SSHFP), "SSHFP");
        assert_eq!(class_text(DNSClass::CH), "CH");
        assert_eq!(class_text(DNSClass::Unknown(99)), "CLASS99");
        let record = Record::from_rdata(
            name("odd.test."),
            60,
            RData::Unknown {
                code: RecordType::Unknown(65280),
                rdata: hickory_proto::rr::rdata::NULL::with(vec![1, 2, 0xab]),
            },
        );
        assert_eq!(
            record_line(&record),
            "odd.test.\t60\tIN\tTYPE65280\t\\# 3 0102ab"
        );
    }

    #[test]
    fn decodable_types_print_in_presentation_form() {
        use hickory_proto::rr::rdata::{sshfp, tlsa, HINFO, NAPTR, SSHFP, TLSA};
        let show = |data: RData| rdata_text(&Record::from_rdata(name("x.test."), 60, data));
        assert_eq!(
            show(RData::HINFO(HINFO::new(
                "DEC-2060".into(),
                "TOPS 20".into()
            ))),
            "\"DEC-2060\" \"TOPS 20\""
        );
        assert_eq!(
            show(RData::SSHFP(SSHFP::new(
                sshfp::Algorithm::Ed25519,
                sshfp::FingerprintType::SHA256,
                vec![0xab, 0xcd]
            ))),
            "4 2 ABCD"
        );
        assert_eq!(
            show(RData::TLSA(TLSA::new(
                tlsa::CertUsage::DaneEe,
                tlsa::Selector::Spki,
                tlsa::Matching::Sha256,
                vec![0x01, 0xfe]
            ))),
            "3 1 1 01FE"
        );
        assert_eq!(
            show(RData::NAPTR(NAPTR::new(
                100,
                10,
                b"U".to_vec().into_boxed_slice(),
                b"E2U+sip".to_vec().into_boxed_slice(),
                b"!^.*$!sip:info@example.test!".to_vec().into_boxed_slice(),
                Name::root(),
            ))),
            "100 10 \"U\" \"E2U+sip\" \"!^.*$!sip:info@example.test!\" ."
        );
    }

    fn reply_to(query: &[u8], answers: Vec<Record>) -> Message {
        let mut message = Message::from_vec(query).unwrap();
        message
            .set_message_type(MessageType::Response)
            .add_answers(answers);
        message
    }

    #[test]
    fn query_carries_id_question_rd_and_edns() {
        let bytes = build_query(0xbeef, &name("www.example.test."), RecordType::MX, true).unwrap();
        assert_eq!(&bytes[..2], &[0xbe, 0xef]);
        let message = Message::from_vec(&bytes).unwrap();
        assert!(message.recursion_desired());
        assert_eq!(message.queries()[0].query_type(), RecordType::MX);
        assert_eq!(message.extensions().as_ref().unwrap().max_payload(), 1232);
        let plain = build_query(1, &name("a."), RecordType::A, false).unwrap();
        assert!(Message::from_vec(&plain).unwrap().extensions().is_none());
    }

    /// The verdict's kind, so each case is one line.
    fn kind(bytes: &[u8], id: u16, q: &str, rtype: RecordType) -> &'static str {
        match judge(bytes, id, &name(q), rtype) {
            Verdict::Reply(_) => "reply",
            Verdict::Foreign(_) => "foreign",
            Verdict::Malformed(_) => "malformed",
        }
    }

    #[test]
    fn judge_accepts_only_our_reply() {
        let q = "www.example.test.";
        let query = build_query(7, &name(q), RecordType::A, true).unwrap();
        let good = reply_to(&query, vec![]).to_vec().unwrap();
        assert_eq!(kind(&good, 7, q, RecordType::A), "reply");
        // Names compare case-insensitively, as DNS does (0x20 mixing servers echo our case).
        assert_eq!(kind(&good, 7, "WWW.Example.TEST.", RecordType::A), "reply");
        assert_eq!(kind(&good, 8, q, RecordType::A), "foreign");
        assert_eq!(kind(&good, 7, q, RecordType::AAAA), "foreign");
        assert_eq!(kind(&good, 7, "other.test.", RecordType::A), "foreign");
        // Our own query echoed back is not a response.
        assert_eq!(kind(&query, 7, q, RecordType::A), "foreign");
        assert_eq!(kind(&[0, 7, 1], 7, q, RecordType::A), "malformed");
        assert_eq!(kind(&good[..20], 7, q, RecordType::A), "malformed");
    }

    #[test]
    fn presentation_matches_dig() {
        let owner = name("x.example.test.");
        let record = |data: RData| Record::from_rdata(owner.clone(), 300, data);
        assert_eq!(
            record_line(&record(RData::A(Ipv4Addr::new(192, 0, 2, 1).into()))),
            "x.example.test.\t300\tIN\tA\t192.0.2.1"
        );
        assert_eq!(
            rdata_text(&record(RData::MX(MX::new(10, name("mail.example.test."))))),
            "10 mail.example.test."
        );
        assert_eq!(
            rdata_text(&record(RData::SRV(SRV::new(
                0,
                5,
                5060,
                name("sip.example.test.")
            )))),
            "0 5 5060 sip.example.test."
        );
        let txt = TXT::from_bytes(vec![b"say \"hi\"\\", b"\x01\xff end"]);
        assert_eq!(
            rdata_text(&record(RData::TXT(txt))),
            r#""say \"hi\"\\" "\001\255 end""#
        );
        let caa = CAA::new_issue(false, Some(name("ca.example.net")), vec![]);
        assert_eq!(
            rdata_text(&record(RData::CAA(caa))),
            "0 issue \"ca.example.net\""
        );
        assert_eq!(
            name_text(&reverse_name(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))),
            "1.2.0.192.in-addr.arpa."
        );
    }

    #[test]
    fn user_input_is_checked() {
        assert!(parse_type("mx").is_ok());
        assert!(parse_type("HINFO").is_err());
        assert!(parse_name("").is_err());
        assert!(parse_name("a b").is_err());
        assert!(parse_name(&"a".repeat(64)).is_err());
        assert!(parse_name(&format!("{}.", ["abc"; 70].join("."))).is_err());
        assert!(parse_name("example.test").is_ok());
    }
}
