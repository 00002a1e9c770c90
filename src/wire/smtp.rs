//! SMTP as `nk smtp` speaks it (RFC 5321, RFC 5322, RFC 2047): the reply parser and the
//! message builder, with no sockets here.
//!
//! Replies are untrusted: lines are capped at 512 octets (RFC 5321 §4.5.3.1.5), a multi-line
//! reply must keep one code, and its length is capped. The message is built so that no
//! argument can inject a command or a header: CR, LF and NUL are refused in every header
//! value and address, body lines are dot-stuffed, and a body line over 998 octets (RFC 5322
//! §2.1.1) is refused instead of being broken silently.

use std::fmt;

/// The longest reply line, CRLF included (RFC 5321 §4.5.3.1.5).
pub const MAX_REPLY_LINE: usize = 512;

/// The most lines one reply may have.
pub const MAX_REPLY_LINES: usize = 256;

/// The longest body line, CRLF excluded (RFC 5322 §2.1.1).
pub const MAX_BODY_LINE: usize = 998;

/// A complete reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text after `NNN-` / `NNN ` on each line.
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 5xx: the command is refused for good.
    pub fn is_permanent_failure(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// Whether an EHLO reply lists the extension (its first word on a line after the first).
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.lines.iter().skip(1).find_map(|line| {
            let mut words = line.splitn(2, ' ');
            let keyword = words.next()?;
            keyword
                .eq_ignore_ascii_case(name)
                .then(|| words.next().unwrap_or("").trim())
        })
    }
}

impl fmt::Display for Reply {
    /// `550 5.1.1 no such user` (the lines of a multi-line reply joined by ` / `).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// Collects the lines of one reply.
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// Feeds one line (without its line end): the reply once its last line came.
    pub fn line(&mut self, line: &[u8]) -> Result<Option<Reply>, String> {
        if line.len() + 2 > MAX_REPLY_LINE {
            return Err(format!(
                "a reply line is longer than {MAX_REPLY_LINE} octets"
            ));
        }
        let shown = || String::from_utf8_lossy(line).escape_debug().to_string();
        let digits = line.get(..3).filter(|d| d.iter().all(u8::is_ascii_digit));
        let Some(digits) = digits else {
            return Err(format!("malformed reply line \"{}\"", shown()));
        };
        let code: u16 = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| format!("malformed reply code in \"{}\"", shown()))?;
        if self.code.is_some_and(|c| c != code) {
            return Err(format!(
                "a multi-line reply changed its code from {} to {code}",
                self.code.unwrap_or_default()
            ));
        }
        self.code = Some(code);
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(format!("malformed reply line \"{}\"", shown())),
        };
        let text = line.get(4..).unwrap_or_default();
        self.lines
            .push(String::from_utf8_lossy(text).trim_end().to_string());
        if self.lines.len() > MAX_REPLY_LINES {
            return Err(format!("a reply has more than {MAX_REPLY_LINES} lines"));
        }
        if !last {
            return Ok(None);
        }
        let reply = Reply {
            code,
            lines: std::mem::take(&mut self.lines),
        };
        self.code = None;
        Ok(Some(reply))
    }
}

/// Refuses CR, LF, NUL and other control characters (tab allowed) in a header value.
pub fn check_header_value(what: &str, text: &str) -> Result<(), String> {
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "{what} \"{}\" contains a control character (CR, LF or another); nothing was sent",
            text.escape_debug()
        ));
    }
    Ok(())
}

/// An address as given (`a@b` or `Name <a@b>`): the envelope's addr-spec and the header form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// What goes between `<` and `>` in MAIL FROM / RCPT TO.
    pub envelope: String,
    /// What goes in the From/To header.
    pub header: String,
}

/// Parses and checks an address argument.
pub fn parse_address(what: &str, text: &str) -> Result<Address, String> {
    check_header_value(what, text)?;
    let text = text.trim();
    let envelope = match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => text[open + 1..close].trim().to_string(),
        (None, None) => text.to_string(),
        _ => return Err(format!("{what} \"{text}\": unbalanced < >")),
    };
    if envelope.contains([' ', '<', '>']) || (!envelope.is_empty() && !envelope.contains('@')) {
        return Err(format!(
            "{what} \"{text}\" is not an address (write user@domain or 'Name <user@domain>')"
        ));
    }
    if !envelope.is_ascii() {
        return Err(format!(
            "{what} \"{envelope}\": addresses must be ASCII (internationalised addresses need \
             SMTPUTF8, which nk does not use)"
        ));
    }
    // A display name that is not ASCII goes into the header as RFC 2047 encoded-words.
    let header = match text.rfind('<') {
        Some(open) if !text.is_ascii() => {
            let name = text[..open].trim().trim_matches('"');
            format!("{} <{envelope}>", encode_header_text(name))
        }
        _ => text.to_string(),
    };
    Ok(Address { envelope, header })
}

/// How the body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// ASCII only.
    SevenBit,
    /// 8-bit bytes, for a server with 8BITMIME (sent with BODY=8BITMIME).
    EightBit,
    /// 8-bit bytes encoded for a server without 8BITMIME.
    QuotedPrintable,
}

impl Transfer {
    /// The one the body and the server's capabilities call for.
    pub fn choose(body: &[u8], eight_bit_mime: bool) -> Transfer {
        match (body.is_ascii(), eight_bit_mime) {
            (true, _) => Transfer::SevenBit,
            (false, true) => Transfer::EightBit,
            (false, false) => Transfer::QuotedPrintable,
        }
    }

    fn header(self) -> &'static str {
        match self {
            Transfer::SevenBit => "7bit",
            Transfer::EightBit => "8bit",
            Transfer::QuotedPrintable => "quoted-printable",
        }
    }
}

/// Splits a body into lines (LF, CRLF or a final line without one), refusing a line over
/// [`MAX_BODY_LINE`] octets.
pub fn body_lines(body: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    if body.ends_with(b"\n") || body.is_empty() {
        lines.pop();
    }
    // A CR that does not end a line is a line end too (RFC 5321 §2.3.8 forbids it bare).
    let lines: Vec<&[u8]> = lines
        .into_iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .flat_map(|l| l.split(|b| *b == b'\r'))
        .collect();
    if let Some(at) = lines.iter().position(|l| l.len() > MAX_BODY_LINE) {
        return Err(format!(
            "body line {} is {} octets; mail allows at most {MAX_BODY_LINE} (RFC 5322)",
            at + 1,
            lines[at].len()
        ));
    }
    Ok(lines)
}

/// A header value as RFC 2047 encoded-words when it is not plain ASCII.
pub fn encode_header_text(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii() && (!c.is_control() || c == '\t'))
    {
        return text.to_string();
    }
    // Each encoded-word at most 75 characters: `=?UTF-8?B?` + base64 + `?=` leaves 63 for the
    // base64 of at most 45 bytes; split on character boundaries.
    let mut words = Vec::new();
    let mut piece = String::new();
    for c in text.chars() {
        if piece.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", base64(piece.as_bytes())));
            piece.clear();
        }
        piece.push(c);
    }
    if !piece.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", base64(piece.as_bytes())));
    }
    words.join("\r\n ")
}

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = (u32::from(group[0]) << 16)
            | (u32::from(*group.get(1).unwrap_or(&0)) << 8)
            | u32::from(*group.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Quoted-printable (RFC 2045 §6.7) of one line, with soft breaks to keep lines under 77.
fn quoted_printable(line: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for (i, &byte) in line.iter().enumerate() {
        let last = i + 1 == line.len();
        let literal = (byte.is_ascii_graphic() && byte != b'=')
            || (byte == b' ' && !last)
            || (byte == b'\t' && !last);
        let piece: Vec<u8> = if literal {
            vec![byte]
        } else {
            format!("={byte:02X}").into_bytes()
        };
        if current.len() + piece.len() > 75 {
            current.push(b'=');
            out.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(&piece);
    }
    out.push(current);
    out
}

/// The line length RFC 5322 §2.1.1 asks headers to keep to.
const FOLD_AT: usize = 78;

/// Folds a header field (RFC 5322 §2.2.3): each line over 78 characters is broken before the
/// last space or tab that keeps it under, so no line reaches the 998-octet limit unless one
/// word is that long (checked by [`check_header_words`]).
pub fn fold(field: &str) -> String {
    let mut out = String::with_capacity(field.len() + 16);
    for (i, line) in field.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let mut rest = line;
        // Never break right after `Name:`: the first break point is after the value's start.
        let mut earliest = if i == 0 {
            line.find(": ").map_or(1, |colon| colon + 2)
        } else {
            1
        };
        while rest.len() > FOLD_AT {
            let window = &rest[..floor_char_boundary(rest, FOLD_AT)];
            let found = window.rfind([' ', '\t']).filter(|&at| at >= earliest);
            let Some(at) = found else {
                // No room to break before 78: break at the next space, if any.
                match rest[earliest.min(rest.len())..].find([' ', '\t']) {
                    Some(offset) => {
                        let at = earliest + offset;
                        out.push_str(&rest[..at]);
                        out.push_str("\r\n");
                        rest = &rest[at..];
                        earliest = 1;
                        continue;
                    }
                    None => break,
                }
            };
            earliest = 1;
            out.push_str(&rest[..at]);
            out.push_str("\r\n");
            rest = &rest[at..];
        }
        out.push_str(rest);
    }
    out
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Refuses a header value with a word so long that folding cannot keep its line under the
/// 998-octet limit.
pub fn check_header_words(what: &str, text: &str) -> Result<(), String> {
    match text
        .split([' ', '\t'])
        .find(|w| w.len() > MAX_BODY_LINE - 100)
    {
        Some(word) => Err(format!(
            "{what} has a {}-octet word; a mail header line holds at most {MAX_BODY_LINE}",
            word.len()
        )),
        None => Ok(()),
    }
}

/// What the message says.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The From address.
    pub from: &'a Address,
    /// The recipients (all in To).
    pub to: &'a [Address],
    /// The subject, if any.
    pub subject: Option<&'a str>,
    /// `--header` fields, checked.
    pub extra: &'a [(String, String)],
    /// The Date value.
    pub date: String,
    /// The Message-ID value, with its angle brackets.
    pub message_id: String,
}

/// The DATA payload: headers, blank line, body with CRLF line ends, dot-stuffed, ending with
/// the `.` line.
pub fn build_data(message: &Message<'_>, body_lines: &[&[u8]], transfer: Transfer) -> Vec<u8> {
    let to = message
        .to
        .iter()
        .map(|a| a.header.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut headers: Vec<(String, String)> = vec![
        ("Date".into(), message.date.clone()),
        ("From".into(), message.from.header.clone()),
        ("To".into(), to),
    ];
    if let Some(subject) = message.subject {
        headers.push(("Subject".into(), encode_header_text(subject)));
    }
    headers.push(("Message-ID".into(), message.message_id.clone()));
    headers.push(("MIME-Version".into(), "1.0".into()));
    headers.push(("Content-Type".into(), "text/plain; charset=UTF-8".into()));
    headers.push(("Content-Transfer-Encoding".into(), transfer.header().into()));
    for (name, value) in message.extra {
        let value = encode_header_text(value);
        match headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(at) => headers[at] = (name.clone(), value),
            None => headers.push((name.clone(), value)),
        }
    }
    let mut data = Vec::new();
    for (name, value) in &headers {
        data.extend_from_slice(fold(&format!("{name}: {value}")).as_bytes());
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b"\r\n");
    for line in body_lines {
        let encoded = match transfer {
            Transfer::QuotedPrintable => quoted_printable(line),
            _ => vec![line.to_vec()],
        };
        for piece in encoded {
            if piece.first() == Some(&b'.') {
                data.push(b'.');
            }
            data.extend_from_slice(&piece);
            data.extend_from_slice(b"\r\n");
        }
    }
    data.extend_from_slice(b".\r\n");
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> Result<Option<Reply>, String> {
        let mut parser = ReplyParser::default();
        let mut last = None;
        for line in lines {
            last = parser.line(line.as_bytes())?;
        }
        Ok(last)
    }

    #[test]
    fn replies_single_and_multi_line() {
        let reply = feed(&[
            "250-mail.test Hello",
            "250-SIZE 1000",
            "250-8BITMIME",
            "250 HELP",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.extension("size"), Some("1000"));
        assert_eq!(reply.extension("8BITMIME"), Some(""));
        assert_eq!(reply.extension("mail.test"), None);
        assert_eq!(
            reply.to_string(),
            "250 mail.test Hello / SIZE 1000 / 8BITMIME / HELP"
        );
        assert_eq!(feed(&["250-one"]).unwrap(), None);
        assert_eq!(feed(&["354"]).unwrap().unwrap().code, 354);
        assert!(feed(&["250-a", "550 b"])
            .unwrap_err()
            .contains("changed its code"));
        assert!(feed(&["hello"]).is_err());
        assert!(feed(&["25"]).is_err());
        assert!(feed(&["250x"]).is_err());
        assert!(feed(&["999 no"]).is_err());
        assert!(feed(&[&format!("250 {}", "a".repeat(600))]).is_err());
    }

    #[test]
    fn addresses_are_checked() {
        let a = parse_address("--from", "Alice <a@x.test>").unwrap();
        assert_eq!(
            (a.envelope.as_str(), a.header.as_str()),
            ("a@x.test", "Alice <a@x.test>")
        );
        assert_eq!(parse_address("--to", "b@y").unwrap().envelope, "b@y");
        assert!(parse_address("--to", "b@y\r\nRCPT TO:<c@z>").is_err());
        assert!(parse_address("--to", "nobody").is_err());
        assert!(parse_address("--to", "a b@c").is_err());
        assert!(parse_address("--to", "<a@b").is_err());
        assert_eq!(parse_address("--from", "<>").unwrap().envelope, "");
    }

    #[test]
    fn body_lines_and_their_limit() {
        assert_eq!(
            body_lines(b"a\r\nb\nc").unwrap(),
            [b"a".as_slice(), b"b", b"c"]
        );
        assert_eq!(body_lines(b"a\n").unwrap(), [b"a".as_slice()]);
        assert!(body_lines(b"").unwrap().is_empty());
        assert!(body_lines(&[b'x'; 998]).is_ok());
        assert!(body_lines(&[b'x'; 999])
            .unwrap_err()
            .contains("line 1 is 999 octets"));
    }

    #[test]
    fn long_headers_fold_under_78() {
        let to: Vec<String> = (0..60)
            .map(|i| format!("recipient-number-{i:02}@example.test"))
            .collect();
        let folded = fold(&format!("To: {}", to.join(", ")));
        for line in folded.split("\r\n") {
            assert!(line.len() <= 78, "{line}");
        }
        assert_eq!(folded.replace("\r\n", ""), format!("To: {}", to.join(", ")));
        assert_eq!(fold("Subject: short"), "Subject: short");
        let word = "x".repeat(100);
        assert_eq!(
            fold(&format!("Subject: {word} y")),
            format!("Subject: {word}\r\n y")
        );
        assert!(check_header_words("--subject", &"y".repeat(999)).is_err());
        assert!(check_header_words("--subject", "a b c").is_ok());
    }

    #[test]
    fn display_names_are_encoded_and_bare_crs_end_lines() {
        let a = parse_address("--from", "Jörg Müller <joerg@example.test>").unwrap();
        assert_eq!(a.envelope, "joerg@example.test");
        assert!(
            a.header.is_ascii() && a.header.starts_with("=?UTF-8?B?"),
            "{}",
            a.header
        );
        assert!(parse_address("--to", "zoë@example.test").is_err());
        assert_eq!(
            body_lines(b"one\rtwo\r\n").unwrap(),
            [b"one".as_slice(), b"two"]
        );
    }

    #[test]
    fn non_ascii_subjects_become_encoded_words() {
        assert_eq!(encode_header_text("plain"), "plain");
        assert_eq!(encode_header_text("Grüße"), "=?UTF-8?B?R3LDvMOfZQ==?=");
        let long = encode_header_text(&"é".repeat(40));
        for word in long.split("\r\n ") {
            assert!(word.len() <= 75, "{word}");
        }
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn data_is_dot_stuffed_and_crlf() {
        let from = parse_address("--from", "a@x").unwrap();
        let to = [
            parse_address("--to", "b@y").unwrap(),
            parse_address("--to", "c@z").unwrap(),
        ];
        let extra = [("X-Test".to_string(), "1".to_string())];
        let message = Message {
            from: &from,
            to: &to,
            subject: Some("hi"),
            extra: &extra,
            date: "Sat, 21 Nov 2026 11:32:12 +0000".into(),
            message_id: "<1@h>".into(),
        };
        let lines = body_lines(b".hidden\n..two\n.\nend\n").unwrap();
        let data = String::from_utf8(build_data(&message, &lines, Transfer::SevenBit)).unwrap();
        assert!(data.starts_with("Date: Sat, 21 Nov 2026 11:32:12 +0000\r\nFrom: a@x\r\nTo: b@y, c@z\r\nSubject: hi\r\nMessage-ID: <1@h>\r\nMIME-Version: 1.0\r\n"));
        assert!(data.contains("Content-Transfer-Encoding: 7bit\r\nX-Test: 1\r\n\r\n"));
        assert!(
            data.ends_with("\r\n\r\n..hidden\r\n...two\r\n..\r\nend\r\n.\r\n"),
            "{data}"
        );
    }

    #[test]
    fn quoted_printable_keeps_lines_short_and_decodable() {
        let encoded = quoted_printable("Grüße = ça va ".as_bytes());
        assert_eq!(encoded, [b"Gr=C3=BC=C3=9Fe =3D =C3=A7a va=20".to_vec()]);
        let long = quoted_printable(&[0xc3; 100]);
        assert!(long.len() > 1);
        for piece in &long {
            assert!(piece.len() <= 76);
        }
        assert_eq!(Transfer::choose(b"ascii", false), Transfer::SevenBit);
        assert_eq!(Transfer::choose("é".as_bytes(), true), Transfer::EightBit);
        assert_eq!(
            Transfer::choose("é".as_bytes(), false),
            Transfer::QuotedPrintable
        );
    }
}
