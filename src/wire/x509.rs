//! The peer certificate's subject, issuer and validity for `nk dial --tls -v` and `nk head -v`.
//!
//! rustls hands us the certificate as DER and we carry no X.509 crate, so this is a small DER
//! reader that walks `tbsCertificate` as far as the subject and stops: no signature, no key, no
//! extensions. The bytes come from whoever answered the connection, so the reader is strict
//! and bounded: input over 64 KiB is refused, lengths use at most 4 bytes and are checked
//! against what remains before anything is sliced, indefinite and non-minimal lengths are
//! refused, and the walk is flat (no recursion, so no depth to cap). Names are rendered in
//! encoded order like `openssl x509 -nameopt oneline` without spaces around `=`; control and
//! invisible characters in values are escaped so a hostile certificate cannot drive the
//! terminal, and `\`, `,` and `+` are escaped so a value cannot pose as further attributes.

use std::fmt::Write as _;

/// What `-v` prints about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject name, e.g. `C=DE, O=Acme, CN=example.test`.
    pub subject: String,
    /// The issuer name, in the same form.
    pub issuer: String,
    /// Start of validity, e.g. `2026-11-21 16:00:00 UTC`.
    pub not_before: String,
    /// End of validity, in the same form.
    pub not_after: String,
}

/// Real certificates are a few KiB; anything far larger is not worth walking.
const MAX_CERTIFICATE: usize = 64 * 1024;

/// Four length bytes already allow 4 GiB, far beyond [`MAX_CERTIFICATE`].
const MAX_LENGTH_BYTES: usize = 4;

const INTEGER: u8 = 0x02;
const OBJECT_IDENTIFIER: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const TELETEX_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const UNIVERSAL_STRING: u8 = 0x1c;
const BMP_STRING: u8 = 0x1e;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
/// `[0] EXPLICIT` around the version in `tbsCertificate`.
const VERSION: u8 = 0xa0;

/// Short names for the attribute types people expect to read; the rest print dotted.
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.5", "serialNumber"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("2.5.4.42", "GN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.12", "title"),
];

/// Reads the subject, issuer and validity out of a DER certificate.
pub fn summarize(der: &[u8]) -> Result<CertSummary, String> {
    if der.len() > MAX_CERTIFICATE {
        return Err(format!(
            "certificate larger than {} KiB",
            MAX_CERTIFICATE / 1024
        ));
    }
    let mut input = Reader::new(der);
    let certificate = input.expect(SEQUENCE, "certificate")?;
    input.finish("certificate")?;

    // The signature algorithm and value follow tbsCertificate; checking them is the TLS
    // library's job, not this summary's, so they are not read.
    let mut tbs = Reader::new(Reader::new(certificate).expect(SEQUENCE, "tbsCertificate")?);
    if tbs.peek_tag() == Some(VERSION) {
        let mut version = Reader::new(tbs.expect(VERSION, "version")?);
        version.expect(INTEGER, "version")?;
        version.finish("version")?;
    }
    if tbs.expect(INTEGER, "serial number")?.is_empty() {
        return Err("empty serial number".into());
    }
    tbs.expect(SEQUENCE, "signature algorithm")?;
    let issuer = render_name(tbs.expect(SEQUENCE, "issuer")?, "issuer")?;
    let mut validity = Reader::new(tbs.expect(SEQUENCE, "validity")?);
    let not_before = render_time(validity.element("notBefore")?, "notBefore")?;
    let not_after = render_time(validity.element("notAfter")?, "notAfter")?;
    validity.finish("validity")?;
    let subject = render_name(tbs.expect(SEQUENCE, "subject")?, "subject")?;
    // The key and extensions that follow are not ours to show.
    Ok(CertSummary {
        subject,
        issuer,
        not_before,
        not_after,
    })
}

/// One DER tag-length-value.
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
    /// The whole TLV, for the `#hex` form of values we do not decode.
    encoded: &'a [u8],
}

/// Walks the elements inside one constructed value, never past its end.
#[derive(Debug)]
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Takes the next element, checking its length against what is left.
    fn element(&mut self, what: &str) -> Result<Element<'a>, String> {
        let input = self.rest;
        let truncated = || format!("truncated {what}");
        let (&tag, after_tag) = input.split_first().ok_or_else(truncated)?;
        if tag & 0x1f == 0x1f {
            return Err(format!("unsupported multi-byte tag for the {what}"));
        }
        let (&first, after_first) = after_tag.split_first().ok_or_else(truncated)?;
        let (length, after_length) = match first {
            0..=0x7f => (usize::from(first), after_first),
            0x80 => return Err(format!("indefinite length for the {what}")),
            _ => {
                let count = usize::from(first & 0x7f);
                if count > MAX_LENGTH_BYTES {
                    return Err(format!("length of the {what} too long"));
                }
                if after_first.len() < count {
                    return Err(truncated());
                }
                let (length_bytes, after_length) = after_first.split_at(count);
                let length = length_bytes
                    .iter()
                    .fold(0u32, |length, &byte| (length << 8) | u32::from(byte));
                // DER wants the shortest form: no leading zero byte, no long form under 128.
                if length_bytes.first() == Some(&0) || length < 0x80 {
                    return Err(format!("non-minimal length for the {what}"));
                }
                let length = usize::try_from(length).map_err(|_| truncated())?;
                (length, after_length)
            }
        };
        if length > after_length.len() {
            return Err(truncated());
        }
        let (content, rest) = after_length.split_at(length);
        let (encoded, _) = input.split_at(input.len() - rest.len());
        self.rest = rest;
        Ok(Element {
            tag,
            content,
            encoded,
        })
    }

    /// Takes the next element, which must carry `tag`, and returns its content.
    fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], String> {
        let element = self.element(what)?;
        if element.tag != tag {
            return Err(format!(
                "unexpected tag 0x{:02x} for the {what}",
                element.tag
            ));
        }
        Ok(element.content)
    }

    /// Refuses anything left over where the structure says there is nothing more.
    fn finish(&self, what: &str) -> Result<(), String> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(format!("trailing bytes after the {what}"))
        }
    }
}

/// Renders a Name (SEQUENCE OF SET OF {type, value}) in encoded order: RDNs joined by ", ",
/// the attributes of a multi-valued RDN by "+".
fn render_name(content: &[u8], what: &str) -> Result<String, String> {
    let part = format!("{what} name part");
    let mut rendered = String::new();
    let mut rdns = Reader::new(content);
    let mut first_rdn = true;
    while !rdns.is_empty() {
        let mut attributes = Reader::new(rdns.expect(SET, &part)?);
        if attributes.is_empty() {
            return Err(format!("empty {part}"));
        }
        if !first_rdn {
            rendered.push_str(", ");
        }
        first_rdn = false;
        let mut first_attribute = true;
        while !attributes.is_empty() {
            let mut attribute = Reader::new(attributes.expect(SEQUENCE, &part)?);
            let oid = dotted_oid(attribute.expect(OBJECT_IDENTIFIER, &part)?)?;
            let value = attribute.element(&part)?;
            attribute.finish(&part)?;
            if !first_attribute {
                rendered.push('+');
            }
            first_attribute = false;
            let name = ATTRIBUTE_NAMES
                .iter()
                .find(|(dotted, _)| *dotted == oid)
                .map_or(oid.as_str(), |(_, short)| short);
            rendered.push_str(name);
            rendered.push('=');
            rendered.push_str(&render_value(value));
        }
    }
    Ok(rendered)
}

/// Decodes an OBJECT IDENTIFIER's content into dotted form.
fn dotted_oid(content: &[u8]) -> Result<String, String> {
    if content.is_empty() {
        return Err("empty OID".into());
    }
    let mut dotted = String::new();
    let mut arc: u64 = 0;
    let mut inside_arc = false;
    for &byte in content {
        if !inside_arc && byte == 0x80 {
            return Err("non-minimal OID arc".into());
        }
        if arc > u64::MAX >> 7 {
            return Err("OID arc too large".into());
        }
        arc = (arc << 7) | u64::from(byte & 0x7f);
        inside_arc = byte & 0x80 != 0;
        if inside_arc {
            continue;
        }
        if dotted.is_empty() {
            // The first subidentifier packs the first two arcs as 40 * first + second.
            let (top, second) = match arc {
                0..=39 => (0, arc),
                40..=79 => (1, arc - 40),
                _ => (2, arc - 80),
            };
            let _ = write!(dotted, "{top}.{second}");
        } else {
            let _ = write!(dotted, ".{arc}");
        }
        arc = 0;
    }
    if inside_arc {
        return Err("truncated OID".into());
    }
    Ok(dotted)
}

/// Renders an attribute value: the string types as text, anything else (or a string that does
/// not decode) as `#` and the hex of its whole encoding, as RFC 4514 and openssl do.
fn render_value(value: Element<'_>) -> String {
    let content = value.content;
    let text: Option<String> = match value.tag {
        UTF8_STRING => std::str::from_utf8(content).ok().map(str::to_owned),
        PRINTABLE_STRING | IA5_STRING => content
            .is_ascii()
            .then(|| content.iter().map(|&byte| char::from(byte)).collect()),
        // T.61 proper is a shift-coded mess; in practice these hold Latin-1.
        TELETEX_STRING => Some(content.iter().map(|&byte| char::from(byte)).collect()),
        BMP_STRING if content.len() % 2 == 0 => char::decode_utf16(
            content
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]])),
        )
        .collect::<Result<String, _>>()
        .ok(),
        UNIVERSAL_STRING if content.len() % 4 == 0 => content
            .chunks_exact(4)
            .map(|quad| char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]])))
            .collect(),
        _ => None,
    };
    match text {
        Some(text) => escape_value(&text),
        None => {
            let mut hex = String::with_capacity(1 + 2 * value.encoded.len());
            hex.push('#');
            for byte in value.encoded {
                let _ = write!(hex, "{byte:02X}");
            }
            hex
        }
    }
}

/// Makes a value safe to print and unambiguous inside a rendered name.
fn escape_value(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // The name's own separators and the escape character.
            '\\' | ',' | '+' => {
                escaped.push('\\');
                escaped.push(c);
            }
            // C0, DEL and C1: every one of them is below 0x100.
            c if c.is_control() => {
                let _ = write!(escaped, "\\x{:02x}", u32::from(c));
            }
            c if is_invisible(c) => {
                let _ = write!(escaped, "\\u{{{:04x}}}", u32::from(c));
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// Format characters that print nothing yet reorder or hide what follows (bidi overrides,
/// zero-widths, tags), so a value could otherwise look like something it is not.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

/// Renders a UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as
/// `YYYY-MM-DD HH:MM:SS UTC`; RFC 5280 allows no other form in a certificate.
fn render_time(time: Element<'_>, what: &str) -> Result<String, String> {
    let malformed = |form: &str| format!("the {what} is not of the form {form}");
    let form = match time.tag {
        UTC_TIME => "YYMMDDHHMMSSZ",
        GENERALIZED_TIME => "YYYYMMDDHHMMSSZ",
        tag => return Err(format!("unexpected tag 0x{tag:02x} for the {what}")),
    };
    let digits = match time.content.split_last() {
        Some((b'Z', digits))
            if digits.len() == form.len() - 1 && digits.iter().all(u8::is_ascii_digit) =>
        {
            digits
        }
        _ => return Err(malformed(form)),
    };
    let pairs: Vec<u32> = digits
        .chunks_exact(2)
        .map(|pair| u32::from(pair[0] - b'0') * 10 + u32::from(pair[1] - b'0'))
        .collect();
    let (year, month, day, hour, minute, second) = match *pairs.as_slice() {
        // RFC 5280 4.1.2.5.1: two-digit years from 50 are 19YY, below 50 are 20YY.
        [year, month, day, hour, minute, second] => {
            let century = if year < 50 { 2000 } else { 1900 };
            (century + year, month, day, hour, minute, second)
        }
        [century, year, month, day, hour, minute, second] => {
            (century * 100 + year, month, day, hour, minute, second)
        }
        _ => return Err(malformed(form)),
    };
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(format!("the {what} is not a valid date and time"));
    }
    Ok(format!(
        "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC"
    ))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{date_time_ymd, CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};

    /// Made once with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
    /// -subj "/C=DE/O=Acme/CN=example.test" -days 365` and converted to DER; `openssl x509
    /// -noout -dates` says notBefore=Nov 21 16:45:13 2026 GMT, notAfter=Nov 21 16:45:13 2027.
    const OPENSSL_CERT_HEX: &str = concat!(
        "308201bb30820161a003020102021441b12665d4a30857a5e548c7ff38abaaf856622f300a06082a8648ce3d",
        "0403023033310b3009060355040613024445310d300b060355040a0c0441636d653115301306035504030c0c",
        "6578616d706c652e74657374301e170d3236313132313136343531335a170d3237313132313136343531335a",
        "3033310b3009060355040613024445310d300b060355040a0c0441636d653115301306035504030c0c657861",
        "6d706c652e746573743059301306072a8648ce3d020106082a8648ce3d030107034200045ddb7f466eaad24e",
        "45cb8bb30d7482c66e7691f4900c26b0a5acd2c69ea8dadfbd367df572fed3961b33835745568d5ee210ffd1",
        "4fa468188165ea2bcff4f9dfa3533051301d0603551d0e041604148c6aed69b936db203f09a8150c41caaa94",
        "ad0124301f0603551d230418301680148c6aed69b936db203f09a8150c41caaa94ad0124300f0603551d1301",
        "01ff040530030101ff300a06082a8648ce3d040302034800304502200e4acf6813e63d37a3d0fcaf8a4acc0c",
        "386958b6bc1883ec8307d1ef72a0bf1f022100ad9c8796b1d94df4b8ef4d6014a9a7d736b707aa40a00ece10",
        "2ad0eedb9a6c6b",
    );

    fn from_hex(hex: &str) -> Vec<u8> {
        assert!(hex.len() % 2 == 0);
        (0..hex.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).unwrap())
            .collect()
    }

    fn openssl_cert() -> Vec<u8> {
        from_hex(OPENSSL_CERT_HEX)
    }

    /// A self-signed rcgen certificate; `configure` sets its name and dates.
    fn rcgen_cert(configure: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["nk.example".to_string()]).unwrap();
        configure(&mut params);
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut encoded = vec![tag];
        if content.len() < 0x80 {
            encoded.push(content.len() as u8);
        } else {
            let length = (content.len() as u32).to_be_bytes();
            let significant: Vec<u8> = length.into_iter().skip_while(|&b| b == 0).collect();
            encoded.push(0x80 | significant.len() as u8);
            encoded.extend_from_slice(&significant);
        }
        encoded.extend_from_slice(content);
        encoded
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

    fn attribute(oid: &[u8], value: &[u8]) -> Vec<u8> {
        tlv(
            SEQUENCE,
            &[tlv(OBJECT_IDENTIFIER, oid), value.to_vec()].concat(),
        )
    }

    fn utf8(text: &str) -> Vec<u8> {
        tlv(UTF8_STRING, text.as_bytes())
    }

    /// A Name from RDNs, each a list of encoded attributes.
    fn name(rdns: &[&[Vec<u8>]]) -> Vec<u8> {
        let rdns: Vec<u8> = rdns
            .iter()
            .flat_map(|rdn| tlv(SET, &rdn.concat()))
            .collect();
        tlv(SEQUENCE, &rdns)
    }

    fn utc(text: &str) -> Vec<u8> {
        tlv(UTC_TIME, text.as_bytes())
    }

    fn generalized(text: &str) -> Vec<u8> {
        tlv(GENERALIZED_TIME, text.as_bytes())
    }

    fn validity(not_before: &[u8], not_after: &[u8]) -> Vec<u8> {
        tlv(SEQUENCE, &[not_before, not_after].concat())
    }

    /// A certificate whose tbsCertificate holds exactly `tbs_fields`.
    fn certificate(tbs_fields: &[&[u8]]) -> Vec<u8> {
        let tbs = tlv(SEQUENCE, &tbs_fields.concat());
        let algorithm = tlv(SEQUENCE, &tlv(OBJECT_IDENTIFIER, ECDSA_WITH_SHA256));
        tlv(SEQUENCE, &[tbs, algorithm, tlv(0x03, &[0])].concat())
    }

    /// A v3 certificate with the given issuer, validity and subject (all encoded).
    fn simple_certificate(issuer: &[u8], validity: &[u8], subject: &[u8]) -> Vec<u8> {
        let version = tlv(VERSION, &tlv(INTEGER, &[2]));
        let serial = tlv(INTEGER, &[0x01, 0x23]);
        let algorithm = tlv(SEQUENCE, &tlv(OBJECT_IDENTIFIER, ECDSA_WITH_SHA256));
        let key = tlv(SEQUENCE, &[]);
        certificate(&[
            &version, &serial, &algorithm, issuer, validity, subject, &key,
        ])
    }

    fn cn(text: &str) -> Vec<u8> {
        name(&[&[attribute(CN, &utf8(text))]])
    }

    fn summarize_validity(not_before: &[u8], not_after: &[u8]) -> Result<CertSummary, String> {
        let ca = cn("ca");
        summarize(&simple_certificate(
            &ca,
            &validity(not_before, not_after),
            &ca,
        ))
    }

    #[test]
    fn rcgen_self_signed_subject_issuer_and_dates() {
        let der = rcgen_cert(|params| {
            let mut name = DistinguishedName::new();
            name.push(DnType::OrganizationName, "Netkit Test");
            name.push(DnType::CommonName, "nk.example");
            params.distinguished_name = name;
            params.not_before =
                date_time_ymd(2026, 11, 21) + std::time::Duration::from_secs(16 * 3600);
            params.not_after = date_time_ymd(2027, 2, 28)
                + std::time::Duration::from_secs(23 * 3600 + 59 * 60 + 59);
        });
        let summary = summarize(&der).unwrap();
        assert_eq!(summary.subject, "O=Netkit Test, CN=nk.example");
        assert_eq!(summary.issuer, summary.subject);
        assert_eq!(summary.not_before, "2026-11-21 16:00:00 UTC");
        assert_eq!(summary.not_after, "2027-02-28 23:59:59 UTC");
    }

    #[test]
    fn openssl_certificate() {
        let summary = summarize(&openssl_cert()).unwrap();
        assert_eq!(
            summary,
            CertSummary {
                subject: "C=DE, O=Acme, CN=example.test".into(),
                issuer: "C=DE, O=Acme, CN=example.test".into(),
                not_before: "2026-11-21 16:45:13 UTC".into(),
                not_after: "2027-11-21 16:45:13 UTC".into(),
            }
        );
    }

    #[test]
    fn generalized_time_outside_utc_time_range() {
        // rcgen, like RFC 5280 asks, writes GeneralizedTime from 2050 on (and before 1950).
        let der = rcgen_cert(|params| {
            params.not_before = date_time_ymd(1949, 12, 31);
            params.not_after = date_time_ymd(2051, 6, 30);
        });
        let summary = summarize(&der).unwrap();
        assert_eq!(summary.not_before, "1949-12-31 00:00:00 UTC");
        assert_eq!(summary.not_after, "2051-06-30 00:00:00 UTC");

        let summary = summarize_validity(
            &generalized("20500101000000Z"),
            &generalized("99991231235959Z"),
        )
        .unwrap();
        assert_eq!(summary.not_before, "2050-01-01 00:00:00 UTC");
        assert_eq!(summary.not_after, "9999-12-31 23:59:59 UTC");
    }

    #[test]
    fn utc_time_century_pivot() {
        let summary = summarize_validity(&utc("500101000000Z"), &utc("491231235959Z")).unwrap();
        assert_eq!(summary.not_before, "1950-01-01 00:00:00 UTC");
        assert_eq!(summary.not_after, "2049-12-31 23:59:59 UTC");
        let leap = summarize_validity(&utc("240229000000Z"), &generalized("20000229000000Z"));
        assert_eq!(leap.unwrap().not_after, "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn other_time_forms_are_rejected() {
        let good = utc("261121160000Z");
        for bad in [
            utc("2611211600Z"),
            utc("261121160000"),
            utc("261121160000+0100"),
            utc("2611211600000Z"),
            utc("26112116000aZ"),
            utc("26112116000-1Z"),
            utc(""),
            generalized("261121160000Z"),
            generalized("20261121160000.5Z"),
            generalized("20261121160000z"),
        ] {
            let error = summarize_validity(&good, &bad).unwrap_err();
            assert!(
                error.starts_with("the notAfter is not of the form"),
                "{error}"
            );
        }
        for bad in [
            "261321160000Z",
            "261100160000Z",
            "261131160000Z",
            "250229000000Z",
            "261121240000Z",
            "261121166000Z",
            "261121160060Z",
        ] {
            let error = summarize_validity(&utc(bad), &good).unwrap_err();
            assert_eq!(error, "the notBefore is not a valid date and time");
        }
        let error = summarize_validity(&good, &tlv(0x04, b"261121160000Z")).unwrap_err();
        assert_eq!(error, "unexpected tag 0x04 for the notAfter");
    }

    #[test]
    fn every_truncation_fails() {
        for der in [openssl_cert(), rcgen_cert(|_| {})] {
            assert!(summarize(&der).is_ok());
            for length in 0..der.len() {
                let error = summarize(&der[..length]).unwrap_err();
                assert_eq!(error, "truncated certificate", "prefix of {length} bytes");
            }
        }
    }

    #[test]
    fn random_byte_flips_never_panic() {
        let originals = [openssl_cert(), rcgen_cert(|_| {})];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // xorshift64: plenty for picking positions, and reproducible.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for iteration in 0..2_000 {
            let mut der = originals[iteration % originals.len()].clone();
            let flips = 1 + next() % 4;
            for _ in 0..flips {
                let at = (next() % der.len() as u64) as usize;
                der[at] ^= (next() % 255 + 1) as u8;
            }
            if next() % 8 == 0 {
                der.truncate((next() % der.len() as u64) as usize);
            }
            if let Ok(summary) = summarize(&der) {
                parsed += 1;
                for text in [&summary.subject, &summary.issuer] {
                    assert!(!text.chars().any(char::is_control), "{text:?}");
                }
            }
        }
        // Flips in the key or signature leave the summary intact, so some must still parse.
        assert!(parsed > 0);
    }

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        let hostile = "evil\u{1b}]0;pwned\u{7}\u{9b}2J\u{7f}\u{202e}txt.exe, O=Google+x\\y\r\n";
        let der = rcgen_cert(|params| {
            let mut name = DistinguishedName::new();
            name.push(DnType::CommonName, hostile);
            params.distinguished_name = name;
        });
        let summary = summarize(&der).unwrap();
        assert_eq!(
            summary.subject,
            r"CN=evil\x1b]0;pwned\x07\x9b2J\x7f\u{202e}txt.exe\, O=Google\+x\\y\x0d\x0a"
        );
        // Teletex bytes are Latin-1, whose 0x80..0x9f are C1 controls.
        let teletex = name(&[&[attribute(CN, &tlv(TELETEX_STRING, b"M\xfcl\x9b\x00"))]]);
        let der = simple_certificate(
            &teletex,
            &validity(&utc("261121160000Z"), &utc("271121160000Z")),
            &teletex,
        );
        assert_eq!(summarize(&der).unwrap().subject, r"CN=Mül\x9b\x00");
    }

    #[test]
    fn string_types_and_attribute_names() {
        let der = rcgen_cert(|params| {
            let mut name = DistinguishedName::new();
            name.push(
                DnType::CountryName,
                DnValue::PrintableString("DE".try_into().unwrap()),
            );
            name.push(
                DnType::LocalityName,
                DnValue::TeletexString("Berlin".try_into().unwrap()),
            );
            name.push(
                DnType::StateOrProvinceName,
                DnValue::BmpString("Baden-Württemberg €".try_into().unwrap()),
            );
            name.push(
                DnType::OrganizationName,
                DnValue::UniversalString("Crab 🦀 GmbH".try_into().unwrap()),
            );
            name.push(
                DnType::CustomDnType(vec![1, 2, 840, 113_549, 1, 9, 1]),
                DnValue::Ia5String("ops@example.test".try_into().unwrap()),
            );
            name.push(DnType::CustomDnType(vec![2, 5, 4, 42]), "Ada");
            name.push(DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99_999, 7]), "x");
            params.distinguished_name = name;
        });
        assert_eq!(
            summarize(&der).unwrap().subject,
            "C=DE, L=Berlin, ST=Baden-Württemberg €, O=Crab 🦀 GmbH, \
             emailAddress=ops@example.test, GN=Ada, 1.3.6.1.4.1.99999.7=x"
        );
    }

    #[test]
    fn multi_valued_rdns_hex_values_and_empty_names() {
        let subject = name(&[
            &[attribute(CN, &utf8("a")), attribute(O, &utf8("b"))],
            &[attribute(C, &tlv(0x12, b"123"))],
            &[attribute(CN, &tlv(UTF8_STRING, b"\xff\xfe"))],
            &[attribute(CN, &tlv(BMP_STRING, &[0xd8, 0x00]))],
            &[attribute(CN, &tlv(PRINTABLE_STRING, b"caf\xe9"))],
        ]);
        let empty = name(&[]);
        let dates = validity(&utc("261121160000Z"), &utc("271121160000Z"));
        let summary = summarize(&simple_certificate(&empty, &dates, &subject)).unwrap();
        assert_eq!(summary.issuer, "");
        assert_eq!(
            summary.subject,
            // NumericString is not decoded; bad UTF-8, a lone surrogate and a non-ASCII
            // PrintableString fall back to the hex of the whole encoding.
            "CN=a+O=b, C=#1203313233, CN=#0C02FFFE, CN=#1E02D800, CN=#1304636166E9"
        );
    }

    #[test]
    fn version_one_certificates_have_no_version_field() {
        let ca = cn("old");
        let dates = validity(&utc("990101000000Z"), &utc("091231000000Z"));
        let serial = tlv(INTEGER, &[0x05]);
        let algorithm = tlv(SEQUENCE, &tlv(OBJECT_IDENTIFIER, ECDSA_WITH_SHA256));
        let der = certificate(&[&serial, &algorithm, &ca, &dates, &ca]);
        let summary = summarize(&der).unwrap();
        assert_eq!(summary.subject, "CN=old");
        assert_eq!(summary.not_before, "1999-01-01 00:00:00 UTC");
    }

    #[test]
    fn long_form_lengths_are_read() {
        let long = "x".repeat(300);
        let subject = cn(&long);
        let dates = validity(&utc("261121160000Z"), &utc("271121160000Z"));
        let summary = summarize(&simple_certificate(&cn("ca"), &dates, &subject)).unwrap();
        assert_eq!(summary.subject, format!("CN={long}"));
    }

    #[test]
    fn length_encodings_are_strict() {
        let der = openssl_cert();
        let error = |bytes: &[u8]| summarize(bytes).unwrap_err();

        assert_eq!(
            error(&[0x30, 0x80, 0x00, 0x00]),
            "indefinite length for the certificate"
        );
        assert_eq!(
            error(&[0x30, 0x85, 0, 0, 0, 0, 1]),
            "length of the certificate too long"
        );
        assert_eq!(
            error(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]),
            "non-minimal length for the certificate"
        );
        let mut padded = vec![0x30, 0x83, 0x00];
        padded.extend_from_slice(&der[2..]);
        assert_eq!(error(&padded), "non-minimal length for the certificate");
        assert_eq!(
            error(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            "truncated certificate"
        );
        assert_eq!(
            error(&[0x3f, 0x01, 0x00]),
            "unsupported multi-byte tag for the certificate"
        );

        let mut trailing = der.clone();
        trailing.push(0);
        assert_eq!(error(&trailing), "trailing bytes after the certificate");
        let mut wrong_tag = der.clone();
        wrong_tag[0] = SET;
        assert_eq!(error(&wrong_tag), "unexpected tag 0x31 for the certificate");
        assert_eq!(
            error(&vec![0; MAX_CERTIFICATE + 1]),
            "certificate larger than 64 KiB"
        );

        // An inner length that runs past its container.
        let ca = cn("ca");
        let mut dates = validity(&utc("261121160000Z"), &utc("271121160000Z"));
        dates[1] += 1;
        let der = simple_certificate(&ca, &dates, &ca);
        assert!(summarize(&der).is_err());
    }

    #[test]
    fn structure_errors_name_the_field() {
        let ca = cn("ca");
        let times = [utc("261121160000Z"), utc("271121160000Z")].concat();
        let as_set = tlv(SET, &times);
        assert_eq!(
            summarize(&simple_certificate(&ca, &as_set, &ca)).unwrap_err(),
            "unexpected tag 0x31 for the validity"
        );
        let three = tlv(SEQUENCE, &[times.clone(), utc("281121160000Z")].concat());
        assert_eq!(
            summarize(&simple_certificate(&ca, &three, &ca)).unwrap_err(),
            "trailing bytes after the validity"
        );
        let dates = tlv(SEQUENCE, &times);
        let empty_rdn = tlv(SEQUENCE, &tlv(SET, &[]));
        assert_eq!(
            summarize(&simple_certificate(&ca, &dates, &empty_rdn)).unwrap_err(),
            "empty subject name part"
        );
        let rdn_as_sequence = tlv(SEQUENCE, &tlv(SEQUENCE, &attribute(CN, &utf8("x"))));
        assert_eq!(
            summarize(&simple_certificate(&rdn_as_sequence, &dates, &ca)).unwrap_err(),
            "unexpected tag 0x30 for the issuer name part"
        );
    }

    #[test]
    fn object_identifiers() {
        assert_eq!(
            dotted_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]).unwrap(),
            "1.2.840.113549.1.9.1"
        );
        assert_eq!(
            dotted_oid(&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19]).unwrap(),
            "0.9.2342.19200300.100.1.25"
        );
        assert_eq!(dotted_oid(&[0x88, 0x37, 0x03]).unwrap(), "2.999.3");
        assert_eq!(dotted_oid(&[]).unwrap_err(), "empty OID");
        assert_eq!(
            dotted_oid(&[0x2a, 0x80, 0x01]).unwrap_err(),
            "non-minimal OID arc"
        );
        assert_eq!(dotted_oid(&[0x2a, 0x86]).unwrap_err(), "truncated OID");
        let mut huge = vec![0xff; 10];
        huge.push(0x7f);
        assert_eq!(dotted_oid(&huge).unwrap_err(), "OID arc too large");
        let mut max = vec![0x81];
        max.extend_from_slice(&[0xff; 8]);
        max.push(0x7f);
        assert_eq!(dotted_oid(&max).unwrap(), format!("2.{}", u64::MAX - 80));
    }
}
