//! SMTP as `nk smtp` speaks it (RFC 5321, RFC 5322, RFC 2047): the reply parser and the
//! message builder, with no sockets here.
//!
//! Replies are untrusted: lines are capped at 512 octets (RFC 5321 §4.5.3.1.5), a multi-line
//! reply must keep one code, and its length is capped. The message is built so that no
//! argument can inject a command or a header: CR, LF and NUL are refused in every header
//! value and address, body lines are dot-stuffed, and a body line over 998 octets (RFC 5322
//! §2.1.1) is refused instead of being broken silently. Display names are written as RFC 5322
//! phrases (quoted or encoded as they need), so an address header parses as the addresses
//! given; encoded-words keep to RFC 2047's 75 characters on lines of 76.

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
    /// The display name as it goes in the header (a [`phrase`]), if one was given.
    pub phrase: Option<String>,
    /// What goes in the From/To header.
    pub header: String,
}

impl Address {
    /// The From header for the null reverse-path (`--from '<>'`). RFC 5322 §3.6.2 wants a
    /// mailbox in From, and `<>` is none (Python's parser reads it as an empty address with a
    /// defect); like Postfix's bounces, nk writes `MAILER-DAEMON@DOMAIN` (after the display
    /// name, if one was given), DOMAIN being the HELO name. The envelope stays `<>`.
    pub fn null_sender_header(&self, domain: &str) -> String {
        let mailbox = format!("MAILER-DAEMON@{domain}");
        match &self.phrase {
            Some(phrase) => format!("{phrase} <{mailbox}>"),
            None => mailbox,
        }
    }
}

/// Parses and checks an address argument: `user@domain` or `Name <user@domain>`. The local
/// part may be a quoted-string (`"john smith"@x.test`, RFC 5321 §4.1.2) and may hold UTF-8
/// (then it needs a server offering SMTPUTF8, RFC 6531: see [`Address::needs_smtputf8`]); a
/// UTF-8 domain after an ASCII local part is written in A-labels (`bücher.test` ->
/// `xn--bcher-kva.test`), which every server takes.
pub fn parse_address(what: &str, text: &str) -> Result<Address, String> {
    check_header_value(what, text)?;
    let text = text.trim();
    let quoted = closed_quotes(text);
    let outside = |at: &usize| !quoted.iter().any(|(open, close)| open < at && at < close);
    let last_open = text
        .match_indices('<')
        .map(|(i, _)| i)
        .rfind(|at| outside(at));
    let last_close = text
        .match_indices('>')
        .map(|(i, _)| i)
        .rfind(|at| outside(at));
    let (name, envelope) = match (last_open, last_close) {
        (Some(open), Some(close)) if open < close => {
            // What follows the address would be lost from the header: refuse it.
            if !text[close + 1..].trim().is_empty() {
                return Err(format!(
                    "{what} \"{text}\": text after the > (write 'Name <user@domain>')"
                ));
            }
            (
                text[..open].trim(),
                text[open + 1..close].trim().to_string(),
            )
        }
        (None, None) => ("", text.to_string()),
        _ => return Err(format!("{what} \"{text}\": unbalanced < >")),
    };
    let envelope = if envelope.is_empty() {
        envelope
    } else {
        mailbox(&envelope).map_err(|why| {
            format!(
                "{what} \"{text}\" is not an address: {why} (write user@domain or 'Name <user@domain>')"
            )
        })?
    };
    let phrase = (!name.is_empty()).then(|| phrase(name));
    let header = match &phrase {
        Some(phrase) => format!("{phrase} <{envelope}>"),
        None => envelope.clone(),
    };
    // Folding breaks only at white space: a name or address with no room for a break would
    // make a header line over the 998-octet limit.
    check_header_words(what, &header)?;
    Ok(Address {
        envelope,
        phrase,
        header,
    })
}

/// The byte ranges (opening and closing quote) of the quoted-strings in `text` that close;
/// an unterminated quote is an ordinary character.
fn closed_quotes(text: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut open: Option<usize> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (open, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(start), '"') => {
                ranges.push((start, i));
                open = None;
            }
            (None, '"') => open = Some(i),
            _ => {}
        }
    }
    ranges
}

/// Checks an addr-spec for the envelope (RFC 5321 §4.1.2, with RFC 6531's UTF-8): a local
/// part that is a dot-string or a quoted-string, `@`, a domain or an address literal. Returns
/// it with a UTF-8 domain in A-labels when the local part is ASCII.
pub fn mailbox(text: &str) -> Result<String, String> {
    let (local, domain) = if let Some(rest) = text.strip_prefix('"') {
        let mut escaped = false;
        let mut end = None;
        for (i, c) in rest.char_indices() {
            if escaped {
                if !(' '..='~').contains(&c) {
                    return Err("a quoted-pair must escape a printable ASCII character".into());
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            } else if c.is_control() {
                return Err("a control character in the quoted local part".into());
            }
        }
        let end = end.ok_or("the quoted local part does not end")?;
        let after = &rest[end + 1..];
        let domain = after
            .strip_prefix('@')
            .ok_or("the quoted local part must be followed by @")?;
        (&text[..end + 2], domain)
    } else {
        let (local, domain) = text.rsplit_once('@').ok_or("no @")?;
        let bad = |c: char| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(c);
        if local.is_empty() || local.contains(bad) {
            return Err(
                "the local part has a space or a special character (quote it: \"john smith\"@x.test)"
                    .into(),
            );
        }
        (local, domain)
    };
    let literal = domain.starts_with('[') && domain.ends_with(']');
    let bad = |c: char| c.is_whitespace() || c.is_control() || "<>()\\,;:\"@".contains(c);
    if domain.is_empty() || domain.contains(bad) || (!literal && domain.contains(['[', ']'])) {
        return Err("the domain is empty or holds a space or a special character".into());
    }
    if local.is_ascii() && !domain.is_ascii() && !literal {
        // UTS 46 with the STD3 rules: the A-labels are letters, digits and '-' only. Without
        // them a character the mapping turns into ASCII passes unchecked (U+02DD maps to a
        // space and a combining accent, which made `xn-- -icb`: a space in MAIL FROM).
        let ascii = idna::uts46::Uts46::new()
            .to_ascii(
                domain.as_bytes(),
                idna::uts46::AsciiDenyList::STD3,
                idna::uts46::Hyphens::CheckFirstLast,
                idna::uts46::DnsLength::Verify,
            )
            .map_err(|_| format!("\"{domain}\" is not a valid internationalised domain"))?;
        return Ok(format!("{local}@{ascii}"));
    }
    Ok(text.to_string())
}

impl Address {
    /// Whether MAIL or RCPT needs SMTPUTF8 (RFC 6531) for this address: its local part is
    /// UTF-8 (a UTF-8 domain alone went to A-labels).
    pub fn needs_smtputf8(&self) -> bool {
        !self.envelope.is_ascii()
    }
}

/// The room for the first encoded-word of a display name: what `From: ` leaves of a 76-
/// character line (RFC 2047 §2), the longest place a name starts a header line.
const NAME_ROOM: usize = MAX_ENCODED_LINE - "From: ".len();

/// A display name as RFC 5322 §3.2.5's `phrase`, so that an address header parses as the
/// addresses given and no more: a name of atoms (atext and spaces) is kept as it is; one
/// already written as a quoted-string is kept as given; any other ASCII name becomes a
/// quoted-string with `\\` and `"` escaped (`Doe, Jane` -> `"Doe, Jane"`: the comma would
/// otherwise split it into two addresses); a name that is not ASCII goes as RFC 2047
/// encoded-words (see [`encode_phrase`]).
pub fn phrase(name: &str) -> String {
    let unquoted = unquote(name);
    if name.is_ascii() {
        if unquoted.is_some() || name.chars().all(|c| is_atext(c) || c == ' ' || c == '\t') {
            return name.to_string();
        }
        return quote_string(name);
    }
    encode_phrase(unquoted.as_deref().unwrap_or(name))
}

/// A non-ASCII display name as a phrase of plain atoms and encoded-words: each run of words
/// that are not atoms (non-ASCII, or holding specials) becomes encoded-words, since an
/// encoded-word may not stand inside a quoted-string (RFC 2047 §5); the atoms between runs
/// stay plain. Keeping atoms plain means fewer adjacent encoded-words, whose separating
/// white space RFC 2047 §6.2 has decoders drop but some (Python's address parser up to at
/// least 3.11) keep as a space: a name with no run over 42 bytes reads the same in both.
fn encode_phrase(name: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    let flush = |run: &mut Vec<&str>, parts: &mut Vec<String>| {
        if !run.is_empty() {
            let room = if parts.is_empty() {
                NAME_ROOM
            } else {
                MAX_ENCODED_WORD
            };
            parts.push(encode_words(&run.join(" "), room));
            run.clear();
        }
    };
    for word in name.split_whitespace() {
        if word.chars().all(is_atext) {
            flush(&mut run, &mut parts);
            parts.push(word.to_string());
        } else {
            run.push(word);
        }
    }
    flush(&mut run, &mut parts);
    parts.join(" ")
}

/// RFC 5322 §3.2.3's atext: the characters of an atom.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// The content of `text` when the whole of it is one quoted-string (RFC 5322 §3.2.4), its
/// quoted-pairs undone; `None` otherwise.
fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.as_str().is_empty().then_some(out),
            c => out.push(c),
        }
    }
    None
}

/// The domain nk names itself by in headers (the null sender's From, the Message-ID): the
/// HELO name when it is a dot-atom or a domain literal (RFC 5322 §3.4.1), which any host
/// name or `[address]` is; `localhost` otherwise, so the header still parses.
pub fn header_domain(helo: &str) -> &str {
    let dot_atom = !helo.is_empty()
        && helo
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
    let literal = helo
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|inner| {
            inner
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '[' | ']' | '\\'))
        });
    if dot_atom || literal {
        helo
    } else {
        "localhost"
    }
}

/// How the body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// ASCII only.
    SevenBit,
    /// 8-bit bytes, for a server with 8BITMIME (sent with BODY=8BITMIME).
    EightBit,
    /// 8-bit bytes encoded for a server without 8BITMIME, and any body with a NUL byte.
    QuotedPrintable,
}

impl Transfer {
    /// The one the body and the server's capabilities call for. A NUL byte is not allowed in
    /// 7bit or 8bit data (RFC 2045 §2.7, §2.8; RFC 5322 §4.1 has it only in the obsolete
    /// syntax a sender must not generate), so a body holding one goes quoted-printable
    /// (`=00`): the bytes arrive exact and the text stays readable, where refusing would
    /// leave the user no way to send it. (swaks sends NULs raw.)
    pub fn choose(body: &[u8], eight_bit_mime: bool) -> Transfer {
        if body.contains(&0) {
            return Transfer::QuotedPrintable;
        }
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

/// The longest encoded-word, and the longest line holding one (RFC 2047 §2).
pub const MAX_ENCODED_WORD: usize = 75;
const MAX_ENCODED_LINE: usize = 76;

/// The room an encoded-word has on the first line of a field `name: `: the line may hold 76.
pub fn first_line_room(name: &str) -> usize {
    MAX_ENCODED_LINE.saturating_sub(name.len() + 2)
}

/// A header value as RFC 2047 encoded-words when it is not plain ASCII; `first_room` is what
/// the field's first line leaves for the first word (see [`first_line_room`]).
pub fn encode_header_text(text: &str, first_room: usize) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii() && (!c.is_control() || c == '\t'))
    {
        return text.to_string();
    }
    encode_words(text, first_room)
}

/// `text` as `=?UTF-8?B?...?=` encoded-words, one per folded line (joined by CRLF SP), each
/// split on a character boundary so that every word decodes to whole UTF-8 characters (RFC
/// 2047 §5) and no word exceeds 75 characters nor its line 76 (RFC 2047 §2): the first word
/// fits in `first_room`, each following one in a continuation line of SP and 75. When the
/// first line has no room even for one character, the value starts on a continuation line.
fn encode_words(text: &str, first_room: usize) -> String {
    // `=?UTF-8?B?` and `?=` take 12; base64 gives 4 characters for each 3 bytes.
    const OVERHEAD: usize = "=?UTF-8?B?".len() + "?=".len();
    let bytes_for = |room: usize| room.min(MAX_ENCODED_WORD).saturating_sub(OVERHEAD) / 4 * 3;
    let mut out = String::new();
    let mut budget = bytes_for(first_room);
    // The widest character (4 bytes) needs 8 base64 characters: a first line with less room
    // than that gets no word.
    if budget < 4 {
        out.push_str("\r\n ");
        budget = bytes_for(MAX_ENCODED_WORD);
    }
    let mut piece = String::new();
    fn flush(piece: &mut String, out: &mut String) {
        if !out.is_empty() && !out.ends_with("\r\n ") {
            out.push_str("\r\n ");
        }
        out.push_str("=?UTF-8?B?");
        out.push_str(&base64(piece.as_bytes()));
        out.push_str("?=");
        piece.clear();
    }
    for c in text.chars() {
        if !piece.is_empty() && piece.len() + c.len_utf8() > budget {
            flush(&mut piece, &mut out);
            budget = bytes_for(MAX_ENCODED_WORD);
        }
        piece.push(c);
    }
    if !piece.is_empty() {
        flush(&mut piece, &mut out);
    }
    out
}

/// Standard base64 with padding (RFC 4648), by the `base64` crate.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
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

/// The line length headers are folded to: RFC 5322 §2.1.1 asks for 78, RFC 2047 §2 for 76 on
/// a line holding an encoded-word; 76 serves both, whatever the line holds.
const FOLD_AT: usize = MAX_ENCODED_LINE;

/// Folds a header field (RFC 5322 §2.2.3): each line over 76 characters is broken before the
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
                let earliest_at = ceil_char_boundary(rest, earliest.min(rest.len()));
                earliest = earliest_at;
                match rest[earliest_at..].find([' ', '\t']) {
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

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
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
    dot_stuff(&build_message(message, body_lines, transfer, None))
}

/// A file attached with `--attach`: its name (as it goes in the headers), MIME type and bytes.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The file name, without its directories.
    pub name: String,
    /// `type/subtype`, checked by [`check_type`] or from [`guess_type`].
    pub content_type: String,
    /// The content, sent in base64.
    pub bytes: Vec<u8>,
}

/// The parts after the text of a multipart/mixed message, and the boundary between them.
#[derive(Debug, Clone, Copy)]
pub struct Mime<'a> {
    /// A boundary the caller made random; made longer here if a part holds it.
    pub boundary: &'a str,
    /// The attachments, in order.
    pub attachments: &'a [Attachment],
}

/// The message as RFC 5322 text with CRLF line ends (not dot-stuffed): headers, blank line,
/// body. With `mime`, a multipart/mixed message: the body as its text/plain first part, then
/// each attachment in base64 (RFC 2045, 2046).
pub fn build_message(
    message: &Message<'_>,
    body_lines: &[&[u8]],
    transfer: Transfer,
    mime: Option<Mime<'_>>,
) -> Vec<u8> {
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
        let room = first_line_room("Subject");
        headers.push(("Subject".into(), encode_header_text(subject, room)));
    }
    headers.push(("Message-ID".into(), message.message_id.clone()));
    headers.push(("MIME-Version".into(), "1.0".into()));
    let text_body = encode_body(body_lines, transfer);
    let boundary = mime.map(|m| unique_boundary(m.boundary, &text_body));
    match &boundary {
        Some(boundary) => {
            headers.push((
                "Content-Type".into(),
                format!("multipart/mixed; boundary=\"{boundary}\""),
            ));
            // A multipart entity is 7bit or 8bit as its parts are (RFC 2045 §6.4).
            let whole = if transfer == Transfer::EightBit {
                "8bit"
            } else {
                "7bit"
            };
            headers.push(("Content-Transfer-Encoding".into(), whole.into()));
        }
        None => {
            headers.push(("Content-Type".into(), "text/plain; charset=UTF-8".into()));
            headers.push(("Content-Transfer-Encoding".into(), transfer.header().into()));
        }
    }
    for (name, value) in message.extra {
        let value = encode_header_text(value, first_line_room(name));
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
        // A value that starts on a continuation line (no room for an encoded-word after a
        // long name) follows the colon directly: no white space before the line end.
        let gap = if value.starts_with("\r\n") { "" } else { " " };
        data.extend_from_slice(fold(&format!("{name}:{gap}{value}")).as_bytes());
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b"\r\n");
    let (Some(boundary), Some(mime)) = (boundary, mime) else {
        data.extend_from_slice(&text_body);
        return data;
    };
    data.extend_from_slice(b"This is a multi-part message in MIME format.\r\n");
    let delimiter = format!("\r\n--{boundary}\r\n");
    data.extend_from_slice(delimiter.as_bytes());
    data.extend_from_slice(b"Content-Type: text/plain; charset=UTF-8\r\n");
    data.extend_from_slice(
        format!("Content-Transfer-Encoding: {}\r\n\r\n", transfer.header()).as_bytes(),
    );
    data.extend_from_slice(&text_body);
    for attachment in mime.attachments {
        data.extend_from_slice(delimiter.as_bytes());
        for field in attachment_headers(attachment) {
            data.extend_from_slice(fold(&field).as_bytes());
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
        let encoded = base64(&attachment.bytes);
        for (i, line) in encoded.as_bytes().chunks(76).enumerate() {
            if i > 0 {
                data.extend_from_slice(b"\r\n");
            }
            data.extend_from_slice(line);
        }
    }
    data.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    data
}

/// The body lines in their transfer encoding, each ending in CRLF.
fn encode_body(body_lines: &[&[u8]], transfer: Transfer) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body_lines {
        let encoded = match transfer {
            Transfer::QuotedPrintable => quoted_printable(line),
            _ => vec![line.to_vec()],
        };
        for piece in encoded {
            out.extend_from_slice(&piece);
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// `boundary`, lengthened until the text part does not hold it (base64 parts cannot: `=_`
/// and `.` are not in their alphabet, and nk's boundaries hold `=_`).
fn unique_boundary(boundary: &str, text: &[u8]) -> String {
    let mut boundary = boundary.to_string();
    while text
        .windows(boundary.len() + 2)
        .any(|w| w.starts_with(b"--") && &w[2..] == boundary.as_bytes())
    {
        boundary.push('x');
    }
    boundary
}

/// The Content-Type and Content-Disposition fields of an attachment. The name goes as a
/// quoted-string when it is ASCII, and as RFC 2231's `filename*=UTF-8''...` otherwise (with
/// an RFC 2047 `name` too, which older readers know).
fn attachment_headers(attachment: &Attachment) -> [String; 2] {
    let name = &attachment.name;
    let kind = &attachment.content_type;
    if name.is_ascii() {
        let quoted = quote_string(name);
        [
            format!("Content-Type: {kind}; name={quoted}"),
            format!("Content-Disposition: attachment; filename={quoted}"),
        ]
    } else {
        let mut percent = String::new();
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                percent.push(b as char);
            } else {
                percent.push_str(&format!("%{b:02X}"));
            }
        }
        let words = encode_words(name, MAX_ENCODED_WORD);
        [
            format!("Content-Type: {kind}; name=\"{words}\""),
            format!("Content-Disposition: attachment; filename*=UTF-8''{percent}"),
        ]
    }
}

/// `text` as an RFC 5322 / RFC 2045 quoted-string: `"` and `\` escaped.
fn quote_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The MIME type for a file name, by its extension (any case), from a small table of the
/// types people mail; `application/octet-stream` for the rest (as swaks).
pub fn guess_type(file_name: &str) -> &'static str {
    const TABLE: &[(&str, &str)] = &[
        ("txt", "text/plain"),
        ("text", "text/plain"),
        ("log", "text/plain"),
        ("md", "text/markdown"),
        ("csv", "text/csv"),
        ("html", "text/html"),
        ("htm", "text/html"),
        ("ics", "text/calendar"),
        ("vcf", "text/vcard"),
        ("xml", "application/xml"),
        ("json", "application/json"),
        ("pdf", "application/pdf"),
        ("zip", "application/zip"),
        ("gz", "application/gzip"),
        ("tgz", "application/gzip"),
        ("tar", "application/x-tar"),
        ("7z", "application/x-7z-compressed"),
        ("doc", "application/msword"),
        (
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("xls", "application/vnd.ms-excel"),
        (
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        ("odt", "application/vnd.oasis.opendocument.text"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("svg", "image/svg+xml"),
        ("mp3", "audio/mpeg"),
        ("wav", "audio/wav"),
        ("mp4", "video/mp4"),
        ("eml", "message/rfc822"),
        ("asc", "application/pgp-signature"),
        ("p7s", "application/pkcs7-signature"),
    ];
    let extension = match file_name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => return "application/octet-stream",
    };
    TABLE
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(extension))
        .map_or("application/octet-stream", |(_, t)| t)
}

/// Checks a `--attach-type`: `type/subtype`, each an RFC 2045 token (at most 127 characters
/// each, RFC 6838 §4.2), nothing else (no parameters: nk writes `name=` itself).
pub fn check_type(text: &str) -> Result<(), String> {
    let token = |t: &str| {
        !t.is_empty()
            && t.len() <= 127
            && t.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    match text.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) => Ok(()),
        _ => Err(format!(
            "--attach-type \"{}\" is not a MIME type (write type/subtype, e.g. application/pdf)",
            text.escape_debug()
        )),
    }
}

/// A prepared message (`--data`) with CRLF line ends, refusing an empty one or a line over
/// [`MAX_BODY_LINE`] octets.
pub fn prepared_message(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err("the message is empty".into());
    }
    let lines = body_lines(raw).map_err(|e| e.replacen("body line", "line", 1))?;
    let mut out = Vec::with_capacity(raw.len() + lines.len());
    for line in lines {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

/// A message with CRLF line ends as it goes after DATA (RFC 5321 §4.5.2): a line starting
/// with `.` gets one more, and the `.` line ends it. A last line without CRLF gets one.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(message.len() + 16);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    if !data.is_empty() && !data.ends_with(b"\r\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_never_cuts_a_character() {
        // Issue 19 item 8: no space in the first 76 bytes and a multi-byte character at a
        // break point.
        for text in [
            "é".repeat(60),
            format!("Subject: {}", "é".repeat(60)),
            format!("Subject: {} tail", "€".repeat(40)),
            format!("X: a\r\n{}", "ü".repeat(50)),
        ] {
            let folded = fold(&text);
            assert_eq!(folded.replace("\r\n ", " ").replace("\r\n\t", "\t"), text);
        }
    }

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
        let zoe = parse_address("--to", "zoë@example.test").unwrap();
        assert!(zoe.needs_smtputf8());
        let idn = parse_address("--to", "Zoe <zoe@bücher.test>").unwrap();
        assert_eq!(idn.envelope, "zoe@xn--bcher-kva.test");
        assert!(!idn.needs_smtputf8());
        // Found by the smtp_message fuzz target: U+02DD maps to a space (and '?' is no
        // domain character), which went into the A-label as `n@xn-- -icb.8.?omn`.
        for domain in [
            "\u{2dd}.8.?omn",
            "\u{2dd}.test",
            "bücher.t?st",
            "bücher..test",
        ] {
            let err = mailbox(&format!("n@{domain}")).unwrap_err();
            assert!(
                err.contains("not a valid internationalised domain"),
                "{err}"
            );
        }
        assert_eq!(mailbox("n@BÜCHER.test").unwrap(), "n@xn--bcher-kva.test");
        assert_eq!(
            body_lines(b"one\rtwo\r\n").unwrap(),
            [b"one".as_slice(), b"two"]
        );
    }

    #[test]
    fn non_ascii_subjects_become_encoded_words() {
        assert_eq!(encode_header_text("plain", 67), "plain");
        assert_eq!(encode_header_text("Grüße", 67), "=?UTF-8?B?R3LDvMOfZQ==?=");
        let long = encode_header_text(&"é".repeat(40), 75);
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

    /// Decodes standard base64 (test helper).
    fn unbase64(text: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64")
    }

    /// The encoded-words of a header value, each decoded on its own (so each must hold
    /// whole UTF-8 characters).
    fn decode_words(value: &str) -> Vec<String> {
        value
            .split([' ', '\r', '\n'])
            .filter(|w| w.starts_with("=?"))
            .map(|w| {
                let b64 = w
                    .strip_prefix("=?UTF-8?B?")
                    .and_then(|w| w.strip_suffix("?="))
                    .expect("a B encoded-word");
                String::from_utf8(unbase64(b64)).expect("whole UTF-8 characters in one word")
            })
            .collect()
    }

    #[test]
    fn display_names_with_specials_are_quoted() {
        let header = |text: &str| parse_address("--to", text).unwrap().header;
        assert_eq!(
            header("Doe, Jane <jane@y.test>"),
            "\"Doe, Jane\" <jane@y.test>"
        );
        assert_eq!(header("Jane Doe <jane@y.test>"), "Jane Doe <jane@y.test>");
        assert_eq!(
            header("\"Doe, Jane\" <jane@y.test>"),
            "\"Doe, Jane\" <jane@y.test>"
        );
        assert_eq!(
            header(r#""a \"b\"" <x@y>"#),
            r#""a \"b\"" <x@y>"#,
            "an already quoted name is kept as given"
        );
        assert_eq!(
            header(r#"Jane "JJ" Doe <x@y>"#),
            r#""Jane \"JJ\" Doe" <x@y>"#
        );
        assert_eq!(header(r"back\slash <x@y>"), r#""back\\slash" <x@y>"#);
        assert_eq!(header("J. Q. Public <x@y>"), "\"J. Q. Public\" <x@y>");
        assert_eq!(header("a@b <x@y>"), "\"a@b\" <x@y>");
        assert_eq!(header("<x@y>"), "x@y");
        assert_eq!(header("x@y"), "x@y");
        // Two quoted-strings are not one: the whole is quoted again.
        assert_eq!(header(r#""a" "b" <x@y>"#), r#""\"a\" \"b\"" <x@y>"#);
        // An unterminated quote is just a character.
        assert_eq!(header(r#""abc <x@y>"#), r#""\"abc" <x@y>"#);
        assert!(parse_address("--to", "Jane <x@y> extra").is_err());
        let long = format!("{}, X <x@y>", "a".repeat(2000));
        assert!(parse_address("--to", &long)
            .unwrap_err()
            .contains("octet word"));
        let long = format!("{} <x@y>", "é".repeat(2000));
        assert!(parse_address("--to", &long).is_ok(), "encoded-words fold");
        assert!(parse_address("--to", "Jane <x@y\t z>").is_err());
    }

    #[test]
    fn non_ascii_display_names_keep_atoms_plain_and_words_short() {
        let a = parse_address("--to", "\"Müller, Jörg\" <j@x.test>").unwrap();
        assert_eq!(decode_words(&a.header), ["Müller, Jörg"], "{}", a.header);
        assert!(a.header.ends_with("?= <j@x.test>"), "{}", a.header);
        let a = parse_address("--to", "Jörg von Müller <j@x.test>").unwrap();
        let words: Vec<&str> = a.header.split(' ').collect();
        assert_eq!(
            words[1..3],
            ["von", "=?UTF-8?B?TcO8bGxlcg==?="],
            "{}",
            a.header
        );
        assert_eq!(decode_words(&a.header), ["Jörg", "Müller"]);
        // A long run: several words, none over 75, the first within what `From: ` leaves.
        let name = "Ünïcödé ".repeat(12);
        let a = parse_address("--from", &format!("{name}<j@x.test>")).unwrap();
        let from = format!("From: {}", a.header);
        for line in fold(&from).split("\r\n") {
            assert!(line.len() <= 76, "{line:?}");
        }
        assert_eq!(decode_words(&a.header).concat(), name.trim_end());
    }

    #[test]
    fn encoded_words_keep_their_lines_within_76() {
        for name in ["Subject", "X", "X-A-Rather-Long-Header-Name-For-Comments"] {
            for text in [
                "Grüße ☃ — ".repeat(12),
                "𝄞".repeat(50),
                "aé".repeat(100),
                "é".to_string(),
            ] {
                let value = encode_header_text(&text, first_line_room(name));
                let field = fold(&format!("{name}: {value}"));
                for (i, line) in field.split("\r\n").enumerate() {
                    assert!(line.len() <= 76, "{name}: line {i} {line:?}");
                }
                for word in field
                    .split([' ', '\r', '\n'])
                    .filter(|w| w.starts_with("=?"))
                {
                    assert!(word.len() <= MAX_ENCODED_WORD, "{word}");
                }
                assert_eq!(decode_words(&value).concat(), text);
            }
        }
        // No room after a very long name: the value starts on the next line.
        let name = "X-".repeat(30);
        let value = encode_header_text("é", first_line_room(&name));
        assert!(value.starts_with("\r\n =?UTF-8?B?"), "{value:?}");
        let from = parse_address("--from", "a@x").unwrap();
        let extra = [(name.clone(), "é".to_string())];
        let message = Message {
            from: &from,
            to: std::slice::from_ref(&from),
            subject: Some(&"ö".repeat(60)),
            extra: &extra,
            date: "Sat, 21 Nov 2026 11:32:12 +0000".into(),
            message_id: "<1@h>".into(),
        };
        let data = String::from_utf8(build_data(&message, &[], Transfer::SevenBit)).unwrap();
        for line in data.split("\r\n").filter(|l| l.contains("=?")) {
            assert!(line.len() <= 76, "{line:?}");
        }
        assert!(
            data.contains(&format!("\r\n{name}:\r\n =?UTF-8?B?w6k=?=\r\n")),
            "{data}"
        );
    }

    /// A message from `from` to itself, no subject, a fixed date and Message-ID.
    fn to_self(from: &Address) -> Message<'_> {
        Message {
            from,
            to: std::slice::from_ref(from),
            subject: None,
            extra: &[],
            date: "Sat, 21 Nov 2026 11:32:12 +0000".into(),
            message_id: "<1@h>".into(),
        }
    }

    #[test]
    fn attachments_make_a_multipart_message() {
        let from = parse_address("--from", "a@x").unwrap();
        let message = to_self(&from);
        let attachments = [
            Attachment {
                name: "r\u{e9}sum\u{e9}.pdf".into(),
                content_type: guess_type("x.PDF").into(),
                bytes: vec![0, 1, 2, 255],
            },
            Attachment {
                name: "a \"b\".txt".into(),
                content_type: "text/plain".into(),
                bytes: b"hello".to_vec(),
            },
        ];
        // The text holds the first boundary: it is made longer.
        let lines = body_lines(b"--=_b\n.dot\n").unwrap();
        let mime = Mime {
            boundary: "=_b",
            attachments: &attachments,
        };
        let text = String::from_utf8(build_message(
            &message,
            &lines,
            Transfer::SevenBit,
            Some(mime),
        ))
        .unwrap();
        assert!(
            text.contains("Content-Type: multipart/mixed; boundary=\"=_bx\"\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\n\r\n--=_b\r\n.dot\r\n\r\n--=_bx\r\nContent-Type: application/pdf"),
            "{text}"
        );
        assert!(
            text.contains("Content-Type: application/pdf; name=\"=?UTF-8?B?"),
            "{text}"
        );
        assert!(
            text.contains("filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n"),
            "{text}"
        );
        assert!(text.contains("AAEC/w==\r\n--=_bx\r\n"), "{text}");
        assert!(text.contains("filename=\"a \\\"b\\\".txt\""), "{text}");
        assert!(text.ends_with("aGVsbG8=\r\n--=_bx--\r\n"), "{text}");
        let data = dot_stuff(text.as_bytes());
        assert!(String::from_utf8(data).unwrap().contains("\r\n..dot\r\n"));
    }

    #[test]
    fn types_guessed_and_checked() {
        assert_eq!(guess_type("a.JPG"), "image/jpeg");
        assert_eq!(guess_type(".txt"), "application/octet-stream");
        assert_eq!(guess_type("noext"), "application/octet-stream");
        assert_eq!(guess_type("x.tar.gz"), "application/gzip");
        assert!(check_type("application/pdf").is_ok());
        assert!(check_type("text/plain; charset=x").is_err());
        assert!(check_type("text").is_err());
        assert!(check_type("/x").is_err());
        assert!(check_type("a/b/c").is_err());
    }

    #[test]
    fn prepared_messages_are_normalised_and_stuffed() {
        assert_eq!(
            prepared_message(b"A: b\n\n.x\ny").unwrap(),
            b"A: b\r\n\r\n.x\r\ny\r\n"
        );
        assert!(prepared_message(b"\n \n").is_err());
        assert!(prepared_message(&[b'x'; 999])
            .unwrap_err()
            .starts_with("line 1"));
        assert_eq!(
            dot_stuff(b"A: b\r\n\r\n.x\r\n.\r\n"),
            b"A: b\r\n\r\n..x\r\n..\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b"x"), b"x\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    #[test]
    fn quoted_local_parts() {
        let a = parse_address("--to", "\"john smith\"@x.test").unwrap();
        assert_eq!(a.envelope, "\"john smith\"@x.test");
        assert_eq!(a.header, "\"john smith\"@x.test");
        let a = parse_address("--to", "\"Doe, J\" <\"a>b\\\"c\"@x.test>").unwrap();
        assert_eq!(a.envelope, "\"a>b\\\"c\"@x.test");
        assert_eq!(a.phrase.as_deref(), Some("\"Doe, J\""));
        assert!(parse_address("--to", "\"open@x.test").is_err());
        assert!(parse_address("--to", "\"a\"b@x.test").is_err());
        assert!(parse_address("--to", "john smith@x.test").is_err());
        assert!(parse_address("--to", "\"jöhn\"@x.test")
            .unwrap()
            .needs_smtputf8());
        assert!(parse_address("--to", "a@[127.0.0.1]").is_ok());
        assert!(parse_address("--to", "a@x y").is_err());
        assert!(parse_address("--to", "a@").is_err());
        assert!(mailbox("a@b\0c").is_err());
        assert!(mailbox("a\x01@b").is_err());
    }

    #[test]
    fn the_null_sender_gets_a_mailbox_in_from() {
        let a = parse_address("--from", "<>").unwrap();
        assert_eq!(a.envelope, "");
        assert_eq!(a.null_sender_header("mx.test"), "MAILER-DAEMON@mx.test");
        let a = parse_address("--from", "Mail Delivery System <>").unwrap();
        assert_eq!(
            a.null_sender_header("mx.test"),
            "Mail Delivery System <MAILER-DAEMON@mx.test>"
        );
        assert_eq!(header_domain("mx.example.test"), "mx.example.test");
        assert_eq!(header_domain("[127.0.0.1]"), "[127.0.0.1]");
        assert_eq!(header_domain("a..b"), "localhost");
        assert_eq!(header_domain("a,b"), "localhost");
        assert_eq!(header_domain("[a]b]"), "localhost");
        assert_eq!(header_domain(""), "localhost");
    }

    #[test]
    fn a_body_with_nul_goes_quoted_printable() {
        assert_eq!(Transfer::choose(b"a\0b", false), Transfer::QuotedPrintable);
        assert_eq!(Transfer::choose(b"a\0b", true), Transfer::QuotedPrintable);
        assert_eq!(
            Transfer::choose("é\0".as_bytes(), true),
            Transfer::QuotedPrintable
        );
        assert_eq!(quoted_printable(b"a\0b"), [b"a=00b".to_vec()]);
        let from = parse_address("--from", "a@x").unwrap();
        let message = to_self(&from);
        let body = b"x\0y\n";
        let lines = body_lines(body).unwrap();
        let data = build_data(&message, &lines, Transfer::choose(body, true));
        assert!(!data.contains(&0));
        let text = String::from_utf8(data).unwrap();
        assert!(text.contains("Content-Transfer-Encoding: quoted-printable\r\n"));
        assert!(text.ends_with("\r\n\r\nx=00y\r\n.\r\n"), "{text}");
    }

    #[test]
    fn odd_addresses_never_panic() {
        let alphabet = ['"', '\\', '<', '>', ' ', 'é', 'a', '@', ',', '(', '𝄞', '\t'];
        let mut texts = vec![String::new()];
        // Every string of up to 4 of these characters (28,561 of them; repeats are cheap).
        for _ in 0..4 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(longer);
        }
        for text in &texts {
            for arg in [text.clone(), format!("{text} <x@y>"), format!("{text}<>")] {
                if let Ok(a) = parse_address("--to", &arg) {
                    let _ = a.null_sender_header("h");
                    for line in fold(&format!("To: {}", a.header)).split("\r\n") {
                        assert!(
                            line.len() <= 76 || !line.contains("=?"),
                            "{arg:?}: {line:?}"
                        );
                    }
                }
            }
        }
    }
}
