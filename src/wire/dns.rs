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
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

/// The EDNS0 UDP payload size we advertise (DNS Flag Day 2020: 1232 avoids IP fragmentation).
pub const EDNS_PAYLOAD: u16 = 1232;

/// The largest DNS message there is (the TCP length prefix is 16 bits).
pub const MAX_MESSAGE: usize = 65_535;

/// Types hickory-proto has no name for but dig has, with the presentation nk gives them.
const EXTRA_TYPES: &[(&str, u16)] = &[("DNAME", 39), ("URI", 256)];

/// Parses a `-t` value (case-insensitive): any mnemonic hickory-proto knows (A, MX, DNSKEY,
/// HTTPS...), DNAME and URI, or RFC 3597's `TYPEnnn` for any other type. OPT is a pseudo-record
/// (the EDNS options are flags of their own) and is refused.
pub fn parse_type(text: &str) -> Result<RecordType, String> {
    let upper = text.trim().to_ascii_uppercase();
    if let Some(number) = upper.strip_prefix("TYPE") {
        if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
            return match number.parse::<u16>() {
                Ok(code) => Ok(RecordType::from(code)),
                Err(_) => Err(format!("record type '{text}': TYPEnnn takes 0-65535")),
            };
        }
    }
    if let Some(&(_, code)) = EXTRA_TYPES.iter().find(|(name, _)| *name == upper) {
        return Ok(RecordType::from(code));
    }
    if upper == "IXFR" {
        return Ok(RecordType::IXFR);
    }
    match RecordType::from_str(&upper) {
        Ok(RecordType::OPT) => Err(format!(
            "record type '{text}' is EDNS's pseudo-record, not a type to ask for \
             (--bufsize, --nsid, --subnet and --dnssec set its fields)"
        )),
        Ok(rtype) => Ok(rtype),
        Err(_) => Err(format!(
            "unknown record type '{text}' (a mnemonic such as A, MX, DNSKEY, HTTPS, \
             or TYPEnnn for any other)"
        )),
    }
}

/// Parses a `-c` value: IN, CH (CHAOS), HS (HESIOD), NONE, ANY or RFC 3597's `CLASSnnn`.
pub fn parse_class(text: &str) -> Result<DNSClass, String> {
    let upper = text.trim().to_ascii_uppercase();
    if let Some(number) = upper.strip_prefix("CLASS") {
        return number
            .parse::<u16>()
            .map(DNSClass::from)
            .map_err(|_| format!("class '{text}': CLASSnnn takes 0-65535"));
    }
    match upper.as_str() {
        "IN" => Ok(DNSClass::IN),
        "CH" | "CHAOS" => Ok(DNSClass::CH),
        "HS" | "HESIOD" => Ok(DNSClass::HS),
        "NONE" => Ok(DNSClass::NONE),
        "ANY" => Ok(DNSClass::ANY),
        _ => Err(format!(
            "unknown class '{text}' (IN, CH, HS, NONE, ANY or CLASSnnn)"
        )),
    }
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

/// The header bits and EDNS fields of the queries nk sends: dig's `+norecurse`, `+dnssec`,
/// `+cd`, `+nsid`, `+subnet`, `+bufsize` and `+noedns`, and the class (`-c CH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOptions {
    pub class: DNSClass,
    /// RD: ask the server to recurse (dig's default).
    pub recurse: bool,
    /// The DO bit (RFC 3225): DNSSEC records (RRSIG, NSEC) wanted in the reply.
    pub dnssec_ok: bool,
    /// CD (RFC 4035): a validating resolver should not validate.
    pub checking_disabled: bool,
    /// An empty NSID option (RFC 5001): the server names itself in its reply.
    pub nsid: bool,
    /// EDNS Client Subnet (RFC 7871): the address and source prefix length.
    pub subnet: Option<(std::net::IpAddr, u8)>,
    /// The EDNS UDP payload size advertised.
    pub bufsize: u16,
    /// Whether queries carry an OPT record at all.
    pub edns: bool,
}

impl Default for QueryOptions {
    fn default() -> QueryOptions {
        QueryOptions {
            class: DNSClass::IN,
            recurse: true,
            dnssec_ok: false,
            checking_disabled: false,
            nsid: false,
            subnet: None,
            bufsize: EDNS_PAYLOAD,
            edns: true,
        }
    }
}

/// Parses `--subnet ADDR/N` (or a bare address, /32 or /128): the address is cut to its first
/// N bits, as RFC 7871 §6 requires of what goes on the wire. `0/0` asks the resolver not to
/// send any client address upstream (§7.1.2).
pub fn parse_subnet(text: &str) -> Result<(std::net::IpAddr, u8), String> {
    use std::net::IpAddr;
    let (addr_text, prefix_text) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: IpAddr = match addr_text {
        "0" => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        _ => addr_text.parse().map_err(|_| {
            format!("--subnet {text}: expected ADDR/N (192.0.2.0/24, 2001:db8::/48)")
        })?,
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_text {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("--subnet {text}: the prefix length is 0-{max}")),
        },
    };
    let cut = match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & mask).into())
        }
    };
    Ok((cut, prefix))
}

/// Builds the wire form of a query for `name`/`rtype` with message ID `id`, with the header
/// bits and EDNS fields of `options`; `edns` false leaves the OPT record out whatever the
/// options say (the retry after a FORMERR from a server without EDNS).
pub fn build_query(
    id: u16,
    name: &Name,
    rtype: RecordType,
    options: &QueryOptions,
    edns: bool,
) -> Result<Vec<u8>, String> {
    query_message(id, name, rtype, options, edns)
        .to_vec()
        .map_err(|e| format!("encode query for {name}: {e}"))
}

/// The query as a message, for [`build_query`] and for the IXFR request (which adds an SOA).
pub fn query_message(
    id: u16,
    name: &Name,
    rtype: RecordType,
    options: &QueryOptions,
    edns: bool,
) -> Message {
    let mut query = Query::query(name.clone(), rtype);
    query.set_query_class(options.class);
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(options.recurse)
        .set_checking_disabled(options.checking_disabled)
        .add_query(query);
    if edns && options.edns {
        let mut opt = Edns::new();
        opt.set_max_payload(options.bufsize)
            .set_version(0)
            .set_dnssec_ok(options.dnssec_ok);
        if options.nsid {
            opt.options_mut()
                .insert(EdnsOption::Unknown(u16::from(EdnsCode::NSID), Vec::new()));
        }
        if let Some((addr, prefix)) = options.subnet {
            opt.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)));
        }
        message.set_edns(opt);
    }
    message
}

/// The IXFR request (RFC 1995 §3): the question, and in the authority section the SOA of the
/// version we hold, of which only the serial counts (the other fields as dig sends them).
pub fn ixfr_query(
    id: u16,
    zone: &Name,
    serial: u32,
    options: &QueryOptions,
) -> Result<Vec<u8>, String> {
    let mut message = query_message(id, zone, RecordType::IXFR, options, true);
    let soa = hickory_proto::rr::rdata::SOA::new(Name::root(), Name::root(), serial, 0, 0, 0, 0);
    let mut record = Record::from_rdata(zone.clone(), 0, RData::SOA(soa));
    record.set_dns_class(options.class);
    message.add_name_server(record);
    message
        .to_vec()
        .map_err(|e| format!("encode IXFR query for {zone}: {e}"))
}

/// Parses `-t IXFR=SERIAL` (dig's form); any other `-t` value goes to [`parse_type`].
pub fn parse_type_arg(text: &str) -> Result<(RecordType, Option<u32>), String> {
    match text.split_once('=') {
        Some((kind, serial)) if kind.trim().eq_ignore_ascii_case("IXFR") => serial
            .trim()
            .parse::<u32>()
            .map(|serial| (RecordType::IXFR, Some(serial)))
            .map_err(|_| format!("-t {text}: IXFR=SERIAL takes a serial number, 0-4294967295")),
        _ => parse_type(text).map(|rtype| (rtype, None)),
    }
}

/// Where a zone transfer stands, record by record (RFC 5936 for AXFR, RFC 1995 for IXFR): it
/// ends at the SOA that closes it, and anything else about its shape is an error.
#[derive(Debug, Default)]
pub struct Transfer {
    /// The serial of the opening SOA (the zone's current version).
    pub serial: Option<u32>,
    /// Records seen so far, the opening SOA included.
    pub records: u64,
    /// The shape once the second record told it.
    shape: Option<Shape>,
    /// Done: no more records may come.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A whole zone: it ends at the next SOA.
    Full,
    /// IXFR's differences: SOA(old) deletions SOA(new) additions, repeated; the next SOA
    /// opens a deletion list unless it carries the current serial, which ends the transfer.
    Incremental { in_deletions: bool },
}

impl Transfer {
    /// Takes the next record; `incremental` is whether this is an IXFR (which may answer in
    /// either shape, or with the lone SOA of a zone that has not changed).
    pub fn feed(&mut self, record: &Record, incremental: bool) -> Result<(), String> {
        if self.done {
            return Err("a record after the closing SOA".into());
        }
        self.records += 1;
        let soa_serial = match record.data() {
            RData::SOA(soa) => Some(soa.serial()),
            _ => None,
        };
        let Some(current) = self.serial else {
            return match soa_serial {
                Some(serial) => {
                    self.serial = Some(serial);
                    Ok(())
                }
                None => Err(format!(
                    "the transfer starts with a {} record, not the zone's SOA",
                    type_text(record.record_type())
                )),
            };
        };
        match (self.shape, soa_serial) {
            (None, Some(serial)) if incremental && serial != current => {
                // The first SOA of a difference sequence: the old version's.
                self.shape = Some(Shape::Incremental { in_deletions: true });
            }
            (None, Some(_)) => self.done = true,
            (None, None) => self.shape = Some(Shape::Full),
            (Some(Shape::Full), Some(_)) => self.done = true,
            (Some(Shape::Full), None) => {}
            (Some(Shape::Incremental { in_deletions }), Some(serial)) => {
                if !in_deletions && serial == current {
                    self.done = true;
                } else {
                    self.shape = Some(Shape::Incremental {
                        in_deletions: !in_deletions,
                    });
                }
            }
            (Some(Shape::Incremental { .. }), None) => {}
        }
        Ok(())
    }

    /// The end of a message: an IXFR whose first message holds only the current SOA says the
    /// zone has not changed since the serial we sent (RFC 1995 §4).
    pub fn end_of_message(&mut self, incremental: bool, our_serial: Option<u32>) {
        if incremental && self.records == 1 && self.shape.is_none() {
            if let (Some(current), Some(ours)) = (self.serial, our_serial) {
                if serial_not_newer(current, ours) {
                    self.done = true;
                }
            }
        }
    }
}

/// RFC 1982 serial arithmetic: whether `a` is not newer than `b`.
fn serial_not_newer(a: u32, b: u32) -> bool {
    a == b || b.wrapping_sub(a) < 0x8000_0000
}

/// The request of DNS over HTTPS (RFC 8484 §4.1): POST with the message as its body, or GET
/// with it in base64url (no padding) in the `dns` parameter; HTTP/1.1, Connection: close.
pub fn doh_request(url: &crate::wire::http::Url, query: &[u8], post: bool) -> Vec<u8> {
    let common = format!(
        "Host: {}\r\nUser-Agent: {}\r\nAccept: application/dns-message\r\nConnection: close\r\n",
        url.authority(),
        crate::wire::http::USER_AGENT
    );
    if post {
        let mut request = format!(
            "POST {} HTTP/1.1\r\n{common}Content-Type: application/dns-message\r\n\
             Content-Length: {}\r\n\r\n",
            url.path,
            query.len()
        )
        .into_bytes();
        request.extend_from_slice(query);
        request
    } else {
        let encoded: String = base64(query)
            .trim_end_matches('=')
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                other => other,
            })
            .collect();
        let separator = if url.path.contains('?') { '&' } else { '?' };
        format!(
            "GET {}{separator}dns={encoded} HTTP/1.1\r\n{common}\r\n",
            url.path
        )
        .into_bytes()
    }
}

/// The DNS message in a DoH response, from the bytes received so far (`eof`: the server has
/// closed). `Ok(None)`: more bytes are needed. A status other than 200, another content type,
/// or a body over 65,535 bytes is an error naming it; interim 1xx responses are skipped.
pub fn doh_response(bytes: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    use crate::wire::http::{framing, parse_head, Chunk, ChunkedDecoder, Framing, Method};
    let mut rest = bytes;
    let head = loop {
        let Some(head) = parse_head(rest)? else {
            return if eof {
                Err("the server closed the connection before a whole HTTP response head".into())
            } else {
                Ok(None)
            };
        };
        rest = &rest[head.len..];
        if !head.is_interim() {
            break head;
        }
    };
    if head.status != 200 {
        return Err(format!("HTTP {} {}", head.status, head.reason));
    }
    let content_type = head.header("content-type").unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/dns-message") {
        return Err(format!(
            "the response is '{content_type}', not application/dns-message"
        ));
    }
    let too_big = || format!("the response body is longer than {MAX_MESSAGE} bytes");
    match framing(Method::Get, &head)? {
        Framing::None => Err("the response has no body".into()),
        Framing::Length(length) if length > MAX_MESSAGE as u64 => Err(too_big()),
        Framing::Length(length) => {
            let length = length as usize;
            match rest.len() >= length {
                true => Ok(Some(rest[..length].to_vec())),
                false if eof => Err(format!(
                    "the server closed the connection after {} of {length} body bytes",
                    rest.len()
                )),
                false => Ok(None),
            }
        }
        Framing::UntilClose if rest.len() > MAX_MESSAGE => Err(too_big()),
        Framing::UntilClose => Ok(eof.then(|| rest.to_vec())),
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::default();
            let mut body = Vec::new();
            loop {
                match decoder.step(rest)? {
                    Chunk::NeedMore if eof => {
                        return Err(
                            "the server closed the connection inside the chunked body".into()
                        )
                    }
                    Chunk::NeedMore => return Ok(None),
                    Chunk::Data { start, end } => {
                        if body.len() + (end - start) > MAX_MESSAGE {
                            return Err(too_big());
                        }
                        body.extend_from_slice(&rest[start..end]);
                        rest = &rest[end..];
                    }
                    Chunk::Framing(used) => rest = &rest[used..],
                    Chunk::Done(_) => return Ok(Some(body)),
                }
            }
        }
    }
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

/// Checks a received message against the query (`id`, `name`, `rtype`, `class`).
///
/// A FORMERR without a question section is accepted when the ID matches: servers that do not
/// speak EDNS answer that way, and the caller retries without the OPT record.
pub fn judge(bytes: &[u8], id: u16, name: &Name, rtype: RecordType, class: DNSClass) -> Verdict {
    judge_message(bytes, id, name, rtype, class, false)
}

/// [`judge`] for the second and later messages of a zone transfer, which may leave the
/// question section empty (RFC 5936 §2.2.1); one that carries a question must still carry ours.
pub fn judge_later(
    bytes: &[u8],
    id: u16,
    name: &Name,
    rtype: RecordType,
    class: DNSClass,
) -> Verdict {
    judge_message(bytes, id, name, rtype, class, true)
}

fn judge_message(
    bytes: &[u8],
    id: u16,
    name: &Name,
    rtype: RecordType,
    class: DNSClass,
    question_optional: bool,
) -> Verdict {
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
    if questions.is_empty()
        && (question_optional || message.response_code() == ResponseCode::FormErr)
    {
        return Verdict::Reply(Box::new(message));
    }
    let matches = questions.len() == 1
        && questions[0].name() == name
        && questions[0].query_type() == rtype
        && questions[0].query_class() == class;
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
        RecordType::Unknown(code) => match EXTRA_TYPES.iter().find(|(_, c)| *c == code) {
            Some((name, _)) => name.to_string(),
            None => format!("TYPE{code}"),
        },
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
            split_56(&upper_hex(sshfp.fingerprint()))
        ),
        RData::TLSA(tlsa) => format!(
            "{} {} {} {}",
            u8::from(tlsa.cert_usage()),
            u8::from(tlsa.selector()),
            u8::from(tlsa.matching()),
            split_56(&upper_hex(tlsa.cert_data()))
        ),
        // Base64 (OPENPGPKEY) and the key=value parameters of SVCB/HTTPS (RFC 9460):
        // hickory's presentation is the standard one for these, and cannot fail.
        RData::OPENPGPKEY(key) => key.to_string(),
        RData::SVCB(svcb) => svcb_text(svcb),
        RData::HTTPS(https) => svcb_text(&https.0),
        // Types hickory-proto leaves undecoded (DNSSEC's without its dnssec feature, DNAME,
        // URI): read here from the raw bytes, so a record nk cannot present makes no message
        // fail to decode; RFC 3597's form when the bytes do not fit the type.
        RData::Unknown { code, rdata } => {
            raw_text(*code, rdata.anything()).unwrap_or_else(|| generic(record.data()))
        }
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
        Ok(bytes) => format!("\\# {} {}", bytes.len(), split_56(&upper_hex(&bytes))),
        Err(err) => format!("(undisplayable {} data: {err})", rdata.record_type()),
    }
}

/// SVCB and HTTPS (RFC 9460) as dig prints them: `alpn` always quoted, hint lists and
/// mandatory keys comma-separated, unknown keys as `keyNNNNN="..."`.
fn svcb_text(svcb: &hickory_proto::rr::rdata::SVCB) -> String {
    use hickory_proto::rr::rdata::svcb::SvcParamValue;
    let mut text = format!("{} {}", svcb.svc_priority(), name_text(svcb.target_name()));
    for (key, value) in svcb.svc_params() {
        let key_text = match u16::from(*key) {
            code @ 7.. => format!("key{code}"),
            _ => key.to_string(),
        };
        let value_text = match value {
            SvcParamValue::Mandatory(keys) => Some(
                keys.0
                    .iter()
                    .map(|k| match u16::from(*k) {
                        code @ 7.. => format!("key{code}"),
                        _ => k.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            SvcParamValue::Alpn(alpn) => Some(quoted(alpn.0.join(",").as_bytes())),
            SvcParamValue::NoDefaultAlpn => None,
            SvcParamValue::Port(port) => Some(port.to_string()),
            SvcParamValue::Ipv4Hint(hint) => Some(
                hint.0
                    .iter()
                    .map(|a| a.0.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            SvcParamValue::Ipv6Hint(hint) => Some(
                hint.0
                    .iter()
                    .map(|a| a.0.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            SvcParamValue::EchConfigList(ech) => Some(base64(&ech.0)),
            SvcParamValue::Unknown(unknown) => Some(quoted(&unknown.0)),
        };
        let _ = match value_text {
            Some(value) => write!(text, " {key_text}={value}"),
            None => write!(text, " {key_text}"),
        };
    }
    text
}

/// A cursor over the raw data of one record, every read checked against the end.
struct Raw<'a> {
    bytes: &'a [u8],
}

impl<'a> Raw<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
    /// An uncompressed name (RFC 4034 §6.2 and RFC 3597 §4 forbid compression in these types'
    /// data, so a pointer here means the bytes are not what the type says).
    fn name(&mut self) -> Option<Name> {
        let mut labels: Vec<&[u8]> = Vec::new();
        loop {
            let len = usize::from(self.u8()?);
            if len == 0 {
                break;
            }
            if len > 63 {
                return None;
            }
            labels.push(self.take(len)?);
        }
        let mut name = Name::from_labels(labels).ok()?;
        name.set_fqdn(true);
        Some(name)
    }
}

/// The presentation of the types hickory-proto leaves raw, in dig's form, or `None` when the
/// type is not one of them or its bytes do not parse.
fn raw_text(rtype: RecordType, bytes: &[u8]) -> Option<String> {
    let mut raw = Raw { bytes };
    let text = match u16::from(rtype) {
        // DS, CDS (RFC 4034 §5.3): key tag, algorithm, digest type, digest in hex.
        43 | 59 => {
            let (tag, alg, digest_type) = (raw.u16()?, raw.u8()?, raw.u8()?);
            let digest = raw.rest();
            format!("{tag} {alg} {digest_type} {}", split_56(&upper_hex(digest)))
        }
        // DNSKEY, CDNSKEY (RFC 4034 §2.2): flags, protocol, algorithm, key in base64.
        48 | 60 => {
            let (flags, protocol, alg) = (raw.u16()?, raw.u8()?, raw.u8()?);
            let key = raw.rest();
            format!("{flags} {protocol} {alg} {}", split_56(&base64(key)))
        }
        // RRSIG (RFC 4034 §3.2).
        46 => {
            let covered = RecordType::from(raw.u16()?);
            let (alg, labels, original_ttl) = (raw.u8()?, raw.u8()?, raw.u32()?);
            let (expiration, inception, tag) = (raw.u32()?, raw.u32()?, raw.u16()?);
            let signer = raw.name()?;
            let signature = raw.rest();
            format!(
                "{} {alg} {labels} {original_ttl} {} {} {tag} {} {}",
                type_text(covered),
                sig_time(expiration),
                sig_time(inception),
                name_text(&signer),
                split_56(&base64(signature))
            )
        }
        // NSEC (RFC 4034 §4.2): next owner name, type bit maps.
        47 => {
            let next = raw.name()?;
            let types = type_bitmap(raw.rest())?;
            join_words(&[name_text(&next)], &types)
        }
        // NSEC3 (RFC 5155 §3.3): hash alg, flags, iterations, salt, next hashed owner, types.
        50 => {
            let (alg, flags, iterations) = (raw.u8()?, raw.u8()?, raw.u16()?);
            let salt_len = usize::from(raw.u8()?);
            let salt = salt_text(raw.take(salt_len)?);
            let hash_len = usize::from(raw.u8()?);
            let hash = base32hex(raw.take(hash_len)?);
            let types = type_bitmap(raw.rest())?;
            join_words(
                &[format!("{alg} {flags} {iterations} {salt} {hash}")],
                &types,
            )
        }
        // NSEC3PARAM (RFC 5155 §4.2).
        51 => {
            let (alg, flags, iterations) = (raw.u8()?, raw.u8()?, raw.u16()?);
            let salt_len = usize::from(raw.u8()?);
            let salt = salt_text(raw.take(salt_len)?);
            if !raw.rest().is_empty() {
                return None;
            }
            format!("{alg} {flags} {iterations} {salt}")
        }
        // DNAME (RFC 6672): a target name.
        39 => {
            let target = raw.name()?;
            if !raw.rest().is_empty() {
                return None;
            }
            name_text(&target)
        }
        // URI (RFC 7553): priority, weight, target as a quoted string.
        256 => {
            let (priority, weight) = (raw.u16()?, raw.u16()?);
            format!("{priority} {weight} {}", quoted(raw.rest()))
        }
        _ => return None,
    };
    Some(text)
}

/// A type bit map (RFC 4034 §4.1.2) as mnemonics in ascending order, or `None` when a window
/// is malformed.
fn type_bitmap(mut bytes: &[u8]) -> Option<Vec<String>> {
    let mut types = Vec::new();
    while !bytes.is_empty() {
        let window = u16::from(*bytes.first()?);
        let len = usize::from(*bytes.get(1)?);
        if !(1..=32).contains(&len) {
            return None;
        }
        let map = bytes.get(2..2 + len)?;
        for (index, byte) in map.iter().enumerate() {
            for bit in 0..8u16 {
                if byte & (0x80 >> bit) != 0 {
                    let code = window * 256 + index as u16 * 8 + bit;
                    types.push(type_text(RecordType::from(code)));
                }
            }
        }
        bytes = &bytes[2 + len..];
    }
    Some(types)
}

fn join_words(head: &[String], tail: &[String]) -> String {
    head.iter()
        .chain(tail)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// An NSEC3 salt: hex, or `-` when empty.
fn salt_text(salt: &[u8]) -> String {
    if salt.is_empty() {
        "-".into()
    } else {
        upper_hex(salt)
    }
}

/// An RRSIG time (RFC 4034 §3.2: seconds since 1970 modulo 2^32) as YYYYMMDDHHmmSS, UTC.
fn sig_time(seconds: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(seconds), 0)
        .map(|t| t.format("%Y%m%d%H%M%S").to_string())
        .unwrap_or_else(|| seconds.to_string())
}

/// dig's single-line form of long hex and base64 fields: chunks of 56 characters separated by
/// spaces (what its 60-column multi-line style prints on separate lines).
fn split_56(text: &str) -> String {
    let chunks: Vec<&str> = text
        .as_bytes()
        .chunks(56)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    chunks.join(" ")
}

/// Standard base64 with padding (RFC 4648 §4), the form of keys and signatures in zone files.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// Base32 with the extended hex alphabet, no padding (RFC 4648 §7), NSEC3's hashed names.
fn base32hex(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
    let mut text = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            text.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        text.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    text
}

/// The header flags that are set, in dig's order and words (`qr aa tc rd ra ad cd`).
pub fn flags_text(message: &Message) -> String {
    let flags = [
        (message.message_type() == MessageType::Response, "qr"),
        (message.authoritative(), "aa"),
        (message.truncated(), "tc"),
        (message.recursion_desired(), "rd"),
        (message.recursion_available(), "ra"),
        (message.authentic_data(), "ad"),
        (message.checking_disabled(), "cd"),
    ];
    flags
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, word)| *word)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The EDNS options of a reply, each as dig 9.18 shows it in its OPT pseudosection: NSID in
/// hex and text, CLIENT-SUBNET as ADDR/SOURCE/SCOPE, COOKIE in hex, EDE with its code and
/// text, any other as `OPT=CODE: HEX`.
pub fn edns_option_lines(edns: &Edns) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for (code, option) in edns.options().as_ref() {
        let (key, value) = match option {
            EdnsOption::Subnet(subnet) => (
                "CLIENT-SUBNET".to_string(),
                format!(
                    "{}/{}/{}",
                    subnet.addr(),
                    subnet.source_prefix(),
                    subnet.scope_prefix()
                ),
            ),
            EdnsOption::Unknown(raw, data) => match raw {
                3 => ("NSID".to_string(), hex_and_text(data)),
                10 => ("COOKIE".to_string(), upper_hex(data).to_lowercase()),
                15 if data.len() >= 2 => {
                    let info = u16::from_be_bytes([data[0], data[1]]);
                    let mut text = format!("{info}");
                    if let Some(meaning) = ede_meaning(info) {
                        let _ = write!(text, " ({meaning})");
                    }
                    if data.len() > 2 {
                        let _ = write!(text, ": {}", quoted(&data[2..]));
                    }
                    ("EDE".to_string(), text)
                }
                other => (format!("OPT={other}"), hex_and_text(data)),
            },
            #[allow(unreachable_patterns)]
            _ => (format!("OPT={}", u16::from(*code)), String::new()),
        };
        lines.push((key, value));
    }
    lines
}

/// Bytes as spaced lower-case hex and, in parentheses, as text (dig's NSID form).
fn hex_and_text(data: &[u8]) -> String {
    if data.is_empty() {
        return String::new();
    }
    let hex: Vec<String> = data.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = data
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{} (\"{text}\")", hex.join(" "))
}

/// The words of RFC 8914's extended error codes, as dig prints them.
fn ede_meaning(code: u16) -> Option<&'static str> {
    const WORDS: &[&str] = &[
        "Other",
        "Unsupported DNSKEY Algorithm",
        "Unsupported DS Digest Type",
        "Stale Answer",
        "Forged Answer",
        "DNSSEC Indeterminate",
        "DNSSEC Bogus",
        "Signature Expired",
        "Signature Not Yet Valid",
        "DNSKEY Missing",
        "RRSIGs Missing",
        "No Zone Key Bit Set",
        "NSEC Missing",
        "Cached Error",
        "Not Ready",
        "Blocked",
        "Censored",
        "Filtered",
        "Prohibited",
        "Stale NXDOMAIN Answer",
        "Not Authoritative",
        "Not Supported",
        "No Reachable Authority",
        "Network Error",
        "Invalid Data",
    ];
    WORDS.get(usize::from(code)).copied()
}

/// dig's default view of a message, from the header to the last section (the lines about the
/// server, the time and the size are the transport's, added by the caller).
pub fn message_text(message: &Message) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        ";; ->>HEADER<<- opcode: {}, status: {}, id: {}",
        match message.op_code() {
            OpCode::Query => "QUERY".to_string(),
            other => format!("{other:?}").to_ascii_uppercase(),
        },
        rcode_name(message.response_code()),
        message.id()
    );
    let additional = message.additionals().len() + usize::from(message.extensions().is_some());
    let _ = writeln!(
        text,
        ";; flags: {}; QUERY: {}, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {}",
        flags_text(message),
        message.queries().len(),
        message.answers().len(),
        message.name_servers().len(),
        additional
    );
    if message.recursion_desired() && !message.recursion_available() {
        text.push_str(";; WARNING: recursion requested but not available\n");
    }
    if let Some(edns) = message.extensions() {
        text.push_str("\n;; OPT PSEUDOSECTION:\n");
        let flags = if edns.flags().dnssec_ok { " do" } else { "" };
        let _ = writeln!(
            text,
            "; EDNS: version: {}, flags:{flags}; udp: {}",
            edns.version(),
            edns.max_payload()
        );
        for (key, value) in edns_option_lines(edns) {
            let _ = writeln!(text, "; {key}: {value}");
        }
    }
    if message.extensions().is_none() {
        text.push('\n');
    }
    text.push_str(";; QUESTION SECTION:\n");
    for query in message.queries() {
        let name = format!(";{}", name_text(query.name()));
        let class = class_text(query.query_class());
        text.push_str(&aligned(
            &[&name, &class, &type_text(query.query_type())],
            &[32, 40],
        ));
        text.push('\n');
    }
    for (title, records) in [
        ("ANSWER", message.answers()),
        ("AUTHORITY", message.name_servers()),
        ("ADDITIONAL", message.additionals()),
    ] {
        if records.is_empty() {
            continue;
        }
        let _ = writeln!(text, "\n;; {title} SECTION:");
        for record in records {
            text.push_str(&aligned_record_line(record));
            text.push('\n');
        }
    }
    text
}

/// A record as dig lays it out: the columns padded with tabs to dig's tab stops (24, 32, 40,
/// 48), a single space where a field already reaches past its stop.
pub fn aligned_record_line(record: &Record) -> String {
    aligned(
        &[
            &name_text(record.name()),
            &record.ttl().to_string(),
            &class_text(record.dns_class()),
            &type_text(record.record_type()),
            &rdata_text(record),
        ],
        &[24, 32, 40, 48],
    )
}

/// Fields joined with tabs up to each column stop (8-column tabs), or one space past it.
fn aligned(fields: &[&str], stops: &[usize]) -> String {
    let mut line = String::new();
    let mut column = 0;
    for (index, field) in fields.iter().enumerate() {
        line.push_str(field);
        column += field.chars().count();
        let Some(&stop) = stops.get(index) else {
            continue;
        };
        if index + 1 == fields.len() {
            break;
        }
        if column < stop {
            while column < stop {
                line.push('\t');
                column = (column / 8 + 1) * 8;
            }
        } else {
            line.push(' ');
            column += 1;
        }
    }
    line
}

/// The EDNS part of a reply as JSON: version, flags, UDP size, options by name.
pub fn edns_json(edns: &Edns) -> serde_json::Value {
    let options: serde_json::Map<String, serde_json::Value> = edns_option_lines(edns)
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into()))
        .collect();
    serde_json::json!({
        "version": edns.version(),
        "do": edns.flags().dnssec_ok,
        "udp": edns.max_payload(),
        "options": options,
    })
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
            "odd.test.\t60\tIN\tTYPE65280\t\\# 3 0102AB"
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
        let options = QueryOptions::default();
        let bytes = build_query(
            0xbeef,
            &name("www.example.test."),
            RecordType::MX,
            &options,
            true,
        )
        .unwrap();
        assert_eq!(&bytes[..2], &[0xbe, 0xef]);
        let message = Message::from_vec(&bytes).unwrap();
        assert!(message.recursion_desired());
        assert_eq!(message.queries()[0].query_type(), RecordType::MX);
        assert_eq!(message.extensions().as_ref().unwrap().max_payload(), 1232);
        let plain = build_query(1, &name("a."), RecordType::A, &options, false).unwrap();
        assert!(Message::from_vec(&plain).unwrap().extensions().is_none());
    }

    /// The verdict's kind, so each case is one line.
    fn kind(bytes: &[u8], id: u16, q: &str, rtype: RecordType) -> &'static str {
        match judge(bytes, id, &name(q), rtype, DNSClass::IN) {
            Verdict::Reply(_) => "reply",
            Verdict::Foreign(_) => "foreign",
            Verdict::Malformed(_) => "malformed",
        }
    }

    #[test]
    fn judge_accepts_only_our_reply() {
        let q = "www.example.test.";
        let query =
            build_query(7, &name(q), RecordType::A, &QueryOptions::default(), true).unwrap();
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
    fn raw_types_read_as_dig_prints_them() {
        let show = |code: u16, bytes: &[u8]| raw_text(RecordType::from(code), bytes);
        // DS with a 32-byte digest: split after 56 hex digits.
        let mut ds = vec![0x30, 0x39, 13, 2];
        ds.extend(0..32u8);
        assert_eq!(
            show(43, &ds).unwrap(),
            "12345 13 2 000102030405060708090A0B0C0D0E0F101112131415161718191A1B \
             1C1D1E1F"
        );
        // NSEC: next name and a bitmap with A (1), NS (2), RRSIG (46), NSEC (47).
        let mut nsec = vec![1, b'b', 0, 0, 6, 0x60, 0, 0, 0, 0, 0x03];
        assert_eq!(show(47, &nsec).unwrap(), "b. A NS RRSIG NSEC");
        nsec[4] = 33; // a window longer than 32 bytes: not an NSEC we can read
        assert_eq!(show(47, &nsec), None);
        // NSEC3 with no salt.
        let nsec3 = [1, 0, 0, 1, 0, 5, 1, 2, 3, 4, 5];
        assert_eq!(show(50, &nsec3).unwrap(), "1 0 1 - 04106105");
        // RRSIG times are UTC calendar dates.
        let mut rrsig = vec![0, 1, 13, 2, 0, 0, 1, 44];
        rrsig.extend(1_700_000_000u32.to_be_bytes());
        rrsig.extend(1_600_000_000u32.to_be_bytes());
        rrsig.extend([0x30, 0x39, 1, b'x', 0, 0xff]);
        assert_eq!(
            show(46, &rrsig).unwrap(),
            "A 13 2 300 20231114221320 20200913122640 12345 x. /w=="
        );
        // Truncated data falls back to RFC 3597's form (None here).
        assert_eq!(show(43, &[0, 1, 2]), None);
        assert_eq!(show(39, &[3, b'a']), None);
        assert_eq!(base64(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
        assert_eq!(base32hex(b"foobar"), "CPNMUOJ1E8");
    }

    #[test]
    fn transfers_end_at_their_closing_soa() {
        use hickory_proto::rr::rdata::SOA;
        let soa = |serial| {
            Record::from_rdata(
                name("z."),
                0,
                RData::SOA(SOA::new(name("ns.z."), name("h.z."), serial, 0, 0, 0, 0)),
            )
        };
        let a = Record::from_rdata(
            name("a.z."),
            0,
            RData::A(Ipv4Addr::new(192, 0, 2, 1).into()),
        );
        // AXFR: SOA, records, SOA.
        let mut t = Transfer::default();
        for r in [&soa(5), &a, &a] {
            t.feed(r, false).unwrap();
            assert!(!t.done);
        }
        t.feed(&soa(5), false).unwrap();
        assert!(t.done);
        assert!(t.feed(&a, false).is_err());
        // Not starting with an SOA.
        assert!(Transfer::default().feed(&a, false).is_err());
        // IXFR: SOA(9) SOA(7) del SOA(8) add SOA(8) del SOA(9) add SOA(9).
        let mut t = Transfer::default();
        for r in [&soa(9), &soa(7), &a, &soa(8), &a, &soa(8), &a, &soa(9), &a] {
            t.feed(r, true).unwrap();
            assert!(!t.done);
        }
        t.feed(&soa(9), true).unwrap();
        assert!(t.done);
        // IXFR up to date: a lone SOA not newer than ours.
        let mut t = Transfer::default();
        t.feed(&soa(9), true).unwrap();
        t.end_of_message(true, Some(9));
        assert!(t.done);
        // IXFR answered AXFR-style.
        let mut t = Transfer::default();
        for r in [&soa(9), &a] {
            t.feed(r, true).unwrap();
        }
        t.end_of_message(true, Some(3));
        assert!(!t.done);
        t.feed(&soa(9), true).unwrap();
        assert!(t.done);
        assert_eq!(parse_type_arg("ixfr=42"), Ok((RecordType::IXFR, Some(42))));
        assert_eq!(parse_type_arg("AXFR"), Ok((RecordType::AXFR, None)));
        assert!(parse_type_arg("IXFR=-1").is_err());
    }

    #[test]
    fn doh_responses_give_their_message_or_say_why_not() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\n";
        let with_length = format!("{head}Content-Length: 3\r\n\r\nabc");
        assert_eq!(
            doh_response(with_length.as_bytes(), false),
            Ok(Some(b"abc".to_vec()))
        );
        assert_eq!(doh_response(&with_length.as_bytes()[..60], false), Ok(None));
        assert!(doh_response(&with_length.as_bytes()[..60], true).is_err());
        let chunked =
            format!("{head}Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n");
        assert_eq!(
            doh_response(chunked.as_bytes(), false),
            Ok(Some(b"abc".to_vec()))
        );
        let interim = format!("HTTP/1.1 100 Continue\r\n\r\n{with_length}");
        assert_eq!(
            doh_response(interim.as_bytes(), false),
            Ok(Some(b"abc".to_vec()))
        );
        let missing = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            doh_response(missing.as_bytes(), false),
            Err("HTTP 404 Not Found".into())
        );
        let html = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n";
        assert!(doh_response(html.as_bytes(), false)
            .unwrap_err()
            .contains("text/html"));
        let huge = format!("{head}Content-Length: 70000\r\n\r\n");
        assert!(doh_response(huge.as_bytes(), false).is_err());
        // GET: base64url without padding, after ?dns=.
        let url = crate::wire::http::parse_url("https://dns.test/dns-query").unwrap();
        let get = String::from_utf8(doh_request(&url, &[0xfb, 0xff], false)).unwrap();
        assert!(
            get.starts_with("GET /dns-query?dns=-_8 HTTP/1.1\r\nHost: dns.test\r\n"),
            "{get}"
        );
        let post = doh_request(&url, b"q", true);
        assert!(post.ends_with(b"Content-Length: 1\r\n\r\nq"));
    }

    #[test]
    fn full_view_aligns_like_dig() {
        assert_eq!(
            aligned(
                &["example.test.", "300", "IN", "SOA", "x"],
                &[24, 32, 40, 48]
            ),
            "example.test.\t\t300\tIN\tSOA\tx"
        );
        assert_eq!(
            aligned(
                &[
                    "a-very-long-owner-name.example.test.",
                    "300",
                    "IN",
                    "NSEC3PARAM",
                    "x"
                ],
                &[24, 32, 40, 48]
            ),
            "a-very-long-owner-name.example.test. 300 IN NSEC3PARAM x"
        );
    }

    #[test]
    fn user_input_is_checked() {
        assert!(parse_type("mx").is_ok());
        assert_eq!(parse_type("HINFO"), Ok(RecordType::HINFO));
        assert_eq!(parse_type("dname"), Ok(RecordType::Unknown(39)));
        assert_eq!(parse_type("TYPE65280"), Ok(RecordType::Unknown(65280)));
        assert_eq!(parse_type("type1"), Ok(RecordType::A));
        assert!(parse_type("OPT").is_err());
        assert!(parse_type("TYPE65536").is_err());
        assert!(parse_type("BOGUS").is_err());
        assert_eq!(parse_class("ch"), Ok(DNSClass::CH));
        assert_eq!(parse_class("CLASS7"), Ok(DNSClass::from(7)));
        assert!(parse_class("XX").is_err());
        assert_eq!(
            parse_subnet("192.0.2.77/24"),
            Ok(("192.0.2.0".parse().unwrap(), 24))
        );
        assert_eq!(parse_subnet("0/0"), Ok(("0.0.0.0".parse().unwrap(), 0)));
        assert_eq!(
            parse_subnet("2001:db8:1:2::9/48"),
            Ok(("2001:db8:1::".parse().unwrap(), 48))
        );
        assert!(parse_subnet("192.0.2.1/33").is_err());
        assert!(parse_subnet("x/3").is_err());
        assert!(parse_name("").is_err());
        assert!(parse_name("a b").is_err());
        assert!(parse_name(&"a".repeat(64)).is_err());
        assert!(parse_name(&format!("{}.", ["abc"; 70].join("."))).is_err());
        assert!(parse_name("example.test").is_ok());
    }
}
