//! HTTP/2 (RFC 9113) as `nk head --http2` speaks it: one request on stream 1 of a fresh
//! connection, its response head, body and trailers. No sockets here: [`Conversation`] takes
//! the server's bytes and says what they mean and what to send back (SETTINGS and PING
//! acknowledgements), so the caller's blocking loop keeps every wait under its deadline.
//!
//! Why not the `h2` crate: it needs an async runtime (tokio) and its I/O model, for one
//! request on one stream that a synchronous loop serves in a few hundred lines. Why not a
//! hand-written HPACK: its Huffman code and dynamic table are where the bugs are; the header
//! blocks go through `loona-hpack` (the maintained fork of the `hpack` crate), whose dynamic
//! table is capped at the 4096 bytes nk announces. Everything from the peer is capped: frames
//! at [`MAX_FRAME`] (the default SETTINGS_MAX_FRAME_SIZE nk never raises), a header block at
//! [`MAX_HEADER_BLOCK`], the decoded fields at [`crate::wire::http::MAX_HEADERS`].

use crate::wire::http::{self, Head, Url, USER_AGENT};

/// What a client sends first (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The largest frame payload accepted (SETTINGS_MAX_FRAME_SIZE's default, which nk keeps).
pub const MAX_FRAME: usize = 16_384;

/// The largest header block (HEADERS and its CONTINUATIONs) accepted.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// The HPACK dynamic table size nk allows (SETTINGS_HEADER_TABLE_SIZE's default).
const TABLE_SIZE: usize = 4096;

/// The window nk opens for the stream and the connection: the largest there is, so that a
/// body never waits for a WINDOW_UPDATE (another is sent after each [`REFILL`] bytes).
const WINDOW: u32 = (1 << 31) - 1;

/// After this many bytes of DATA, the windows are opened again by as much.
const REFILL: u32 = 1 << 30;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

/// The stream nk's request goes on.
const STREAM: u32 = 1;

/// One frame, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The frame type.
    pub kind: u8,
    /// Its flags.
    pub flags: u8,
    /// The stream identifier (the reserved bit cleared).
    pub stream: u32,
    /// The payload.
    pub payload: &'a [u8],
}

/// The first frame of `input` and its length, `Ok(None)` if more bytes are needed.
pub fn parse_frame(input: &[u8]) -> Result<Option<(Frame<'_>, usize)>, String> {
    let Some(header) = input.get(..9) else {
        return Ok(None);
    };
    let length =
        usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    if length > MAX_FRAME {
        return Err(format!(
            "a frame of {length} bytes (more than the {MAX_FRAME} allowed)"
        ));
    }
    let Some(payload) = input.get(9..9 + length) else {
        return Ok(None);
    };
    let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
    Ok(Some((
        Frame {
            kind: header[3],
            flags: header[4],
            stream,
            payload,
        },
        9 + length,
    )))
}

/// A frame's bytes.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&length.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// The request: the preface, nk's SETTINGS (no server push, the largest stream window), the
/// connection's window opened likewise, and HEADERS (with CONTINUATIONs if needed) for
/// `verb` `url` with User-Agent, Accept and the `extra` fields (names in lower case; an
/// empty value removes a default; Host becomes :authority; the connection-specific fields
/// HTTP/2 forbids are left out).
pub fn request(verb: &str, url: &Url, extra: &[(String, String)]) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    let mut settings = Vec::new();
    for (id, value) in [(0x2u16, 0u32), (0x4, WINDOW)] {
        settings.extend_from_slice(&id.to_be_bytes());
        settings.extend_from_slice(&value.to_be_bytes());
    }
    out.extend(frame(SETTINGS, 0, 0, &settings));
    out.extend(window_update(0, WINDOW - 65_535));
    let scheme = if url.tls { "https" } else { "http" };
    let mut pseudo = [
        (":method".to_string(), verb.to_string()),
        (":scheme".to_string(), scheme.to_string()),
        (":authority".to_string(), url.authority()),
        (":path".to_string(), url.path.clone()),
    ];
    let mut fields = vec![
        ("user-agent".to_string(), USER_AGENT.to_string()),
        ("accept".to_string(), "*/*".to_string()),
    ];
    for (name, value) in extra {
        let name = name.to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
        ) {
            continue;
        }
        if name == "host" {
            if !value.is_empty() {
                pseudo[2].1 = value.clone();
            }
            continue;
        }
        fields.retain(|(n, _)| *n != name);
        if !value.is_empty() {
            fields.push((name, value.clone()));
        }
    }
    let block = loona_hpack::Encoder::new().encode(
        pseudo
            .iter()
            .chain(&fields)
            .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    );
    let pieces: Vec<&[u8]> = block.chunks(MAX_FRAME).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let (kind, mut flags) = match i {
            0 => (HEADERS, END_STREAM),
            _ => (CONTINUATION, 0),
        };
        if last {
            flags |= END_HEADERS;
        }
        out.extend(frame(kind, flags, STREAM, piece));
    }
    out
}

/// What a frame from the server means for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes to send back (acknowledgements, window updates).
    Send(Vec<u8>),
    /// A response head (1xx ones too: the caller tells them apart); `raw` is the head as
    /// curl prints it (`HTTP/2 200`, the fields in lower case, a blank line).
    Head(Head),
    /// Trailer fields, after the body.
    Trailers(Vec<(String, String)>),
    /// Body bytes.
    Data(Vec<u8>),
    /// The response is complete.
    End,
}

/// The state of one request's conversation.
pub struct Conversation {
    decoder: loona_hpack::Decoder<'static>,
    /// A header block waiting for its CONTINUATIONs, and whether it ends the stream.
    block: Option<(Vec<u8>, bool)>,
    /// A final (non-1xx) head has come: a later header block is trailers.
    headed: bool,
    /// DATA bytes since the windows were last opened.
    unrefilled: u32,
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation")
            .field("headed", &self.headed)
            .finish()
    }
}

impl Default for Conversation {
    fn default() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(TABLE_SIZE);
        Conversation {
            decoder,
            block: None,
            headed: false,
            unrefilled: 0,
        }
    }
}

/// The payload of a HEADERS or DATA frame without its padding (and priority fields).
fn content<'a>(frame: &Frame<'a>) -> Result<&'a [u8], String> {
    let mut payload = frame.payload;
    let mut pad = 0;
    if frame.flags & PADDED != 0 {
        let (&length, rest) = payload
            .split_first()
            .ok_or("a padded frame with no pad length")?;
        pad = usize::from(length);
        payload = rest;
    }
    if frame.kind == HEADERS && frame.flags & PRIORITY_FLAG != 0 {
        payload = payload
            .get(5..)
            .ok_or("a HEADERS frame too short for its priority fields")?;
    }
    payload
        .len()
        .checked_sub(pad)
        .map(|end| &payload[..end])
        .ok_or_else(|| "a frame's padding is longer than the frame".to_string())
}

impl Conversation {
    /// What `frame` means. A protocol error, a reset of the stream or a GOAWAY before the
    /// response is complete is an error naming it.
    pub fn on_frame(&mut self, frame: &Frame<'_>) -> Result<Vec<Event>, String> {
        if self.block.is_some() && frame.kind != CONTINUATION {
            return Err("a header block was interrupted by another frame".into());
        }
        match frame.kind {
            SETTINGS if frame.flags & ACK != 0 => Ok(vec![]),
            SETTINGS => {
                if frame.payload.len() % 6 != 0 || frame.stream != 0 {
                    return Err("a malformed SETTINGS frame".into());
                }
                Ok(vec![Event::Send(self::frame(SETTINGS, ACK, 0, &[]))])
            }
            PING if frame.flags & ACK != 0 => Ok(vec![]),
            PING => {
                if frame.payload.len() != 8 {
                    return Err("a PING frame that is not 8 bytes".into());
                }
                Ok(vec![Event::Send(self::frame(PING, ACK, 0, frame.payload))])
            }
            WINDOW_UPDATE | PRIORITY => Ok(vec![]),
            GOAWAY => {
                let code = frame
                    .payload
                    .get(4..8)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(0);
                let last = frame
                    .payload
                    .get(..4)
                    .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) & 0x7fff_ffff)
                    .unwrap_or(0);
                if last >= STREAM && code == 0 {
                    // A graceful GOAWAY: the stream is still served.
                    return Ok(vec![]);
                }
                Err(format!("the server sent GOAWAY ({})", error_name(code)))
            }
            RST_STREAM if frame.stream == STREAM => {
                let code = frame
                    .payload
                    .get(..4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(0);
                Err(format!(
                    "the server reset the stream ({})",
                    error_name(code)
                ))
            }
            PUSH_PROMISE => Err("a PUSH_PROMISE, though nk disabled server push".into()),
            HEADERS if frame.stream == STREAM => {
                let block = content(frame)?.to_vec();
                let ends = frame.flags & END_STREAM != 0;
                self.block = Some((block, ends));
                self.continue_block(frame.flags)
            }
            CONTINUATION if frame.stream == STREAM && self.block.is_some() => {
                if let Some((block, _)) = self.block.as_mut() {
                    if block.len() + frame.payload.len() > MAX_HEADER_BLOCK {
                        return Err(format!(
                            "a header block longer than {} KiB",
                            MAX_HEADER_BLOCK / 1024
                        ));
                    }
                    block.extend_from_slice(frame.payload);
                }
                self.continue_block(frame.flags)
            }
            CONTINUATION => Err("a CONTINUATION frame with no header block before it".into()),
            DATA if frame.stream == STREAM => {
                if !self.headed {
                    return Err("DATA before the response head".into());
                }
                let data = content(frame)?;
                let mut events = Vec::new();
                // Padding counts against the window too.
                self.unrefilled = self.unrefilled.saturating_add(frame.payload.len() as u32);
                if self.unrefilled >= REFILL {
                    let mut refill = window_update(0, self.unrefilled);
                    refill.extend(window_update(STREAM, self.unrefilled));
                    events.push(Event::Send(refill));
                    self.unrefilled = 0;
                }
                if !data.is_empty() {
                    events.push(Event::Data(data.to_vec()));
                }
                if frame.flags & END_STREAM != 0 {
                    events.push(Event::End);
                }
                Ok(events)
            }
            // Frames of other streams, and of types nk does not know, are ignored (§4.1, §5.5).
            _ => Ok(vec![]),
        }
    }

    /// After a HEADERS or CONTINUATION: the head or trailers once the block is complete.
    fn continue_block(&mut self, flags: u8) -> Result<Vec<Event>, String> {
        if flags & END_HEADERS == 0 {
            return Ok(vec![]);
        }
        let Some((block, ends)) = self.block.take() else {
            return Ok(vec![]);
        };
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut too_many = false;
        self.decoder
            .decode_with_cb(&block, |name, value| {
                if fields.len() == http::MAX_HEADERS {
                    too_many = true;
                    return;
                }
                fields.push((
                    String::from_utf8_lossy(&name).into_owned(),
                    String::from_utf8_lossy(&value).into_owned(),
                ));
            })
            .map_err(|e| format!("a header block does not decode (HPACK): {e:?}"))?;
        if too_many {
            return Err(format!(
                "the response has more than {} header fields",
                http::MAX_HEADERS
            ));
        }
        let mut events = Vec::new();
        if self.headed {
            events.push(Event::Trailers(fields));
        } else {
            let head = head_of(fields)?;
            self.headed = !head.is_interim();
            events.push(Event::Head(head));
        }
        if ends {
            events.push(Event::End);
        }
        Ok(events)
    }
}

/// A response head from decoded fields: `:status` first, as curl prints it.
fn head_of(fields: Vec<(String, String)>) -> Result<Head, String> {
    let status = fields
        .iter()
        .find(|(n, _)| n == ":status")
        .map(|(_, v)| v.as_str())
        .ok_or("a response head with no :status")?;
    let status: u16 = status
        .parse()
        .ok()
        .filter(|s| (100..1000).contains(s) && status.len() == 3)
        .ok_or_else(|| format!("a :status of \"{}\"", status.escape_debug()))?;
    let headers: Vec<(String, String)> = fields
        .into_iter()
        .filter(|(n, _)| !n.starts_with(':'))
        .collect();
    let location = headers
        .iter()
        .find(|(n, _)| n == "location")
        .map(|(_, v)| v.as_bytes().to_vec());
    Ok(Head {
        version: "HTTP/2",
        status,
        reason: String::new(),
        headers,
        location,
        len: 0,
    })
}

/// A head as curl prints an HTTP/2 one: `HTTP/2 200 `, then `name: value` lines.
pub fn render_head(head: &Head) -> Vec<u8> {
    // curl writes a space after the status, where HTTP/1 has its reason phrase.
    let mut out = format!("HTTP/2 {} \r\n", head.status);
    for (name, value) in &head.headers {
        // A value is bytes the server chose: control characters are escaped, never printed.
        let value: String = value
            .chars()
            .flat_map(|c| match c.is_control() && c != '\t' {
                true => c.escape_debug().collect::<Vec<_>>(),
                false => vec![c],
            })
            .collect();
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// RFC 9113 §7's name of an error code.
fn error_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("error {code}"), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(conversation: &mut Conversation, bytes: &[u8]) -> Result<Vec<Event>, String> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some((frame, used)) = parse_frame(rest)? {
            events.extend(conversation.on_frame(&frame)?);
            rest = &rest[used..];
        }
        Ok(events)
    }

    #[test]
    fn a_response_head_body_and_trailers() {
        let url = http::parse_url("https://h:8443/p?q").unwrap();
        let request = request("GET", &url, &[("Host".into(), "v".into())]);
        assert!(request.starts_with(PREFACE));
        let mut encoder = loona_hpack::Encoder::new();
        let head = encoder.encode([
            (&b":status"[..], &b"200"[..]),
            (b"content-type", b"text/plain"),
        ]);
        let trailers = encoder.encode([(&b"x-sum"[..], &b"1"[..])]);
        let mut server = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
        server.extend(frame(HEADERS, END_HEADERS, 1, &head));
        server.extend(frame(DATA, PADDED, 1, &[2, b'h', b'i', 0, 0]));
        server.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &trailers));
        let events = feed(&mut Conversation::default(), &server).unwrap();
        assert_eq!(events[0], Event::Send(frame(SETTINGS, ACK, 0, &[])));
        let Event::Head(head) = &events[1] else {
            panic!("{events:?}")
        };
        assert_eq!(
            render_head(head),
            b"HTTP/2 200 \r\ncontent-type: text/plain\r\n\r\n"
        );
        assert_eq!(events[2], Event::Data(b"hi".to_vec()));
        assert_eq!(
            events[3],
            Event::Trailers(vec![("x-sum".into(), "1".into())])
        );
        assert_eq!(events[4], Event::End);
    }

    #[test]
    fn bad_frames_are_errors_never_panics() {
        let big = [0x01, 0, 0, 0, 0, 0, 0, 0, 1];
        assert!(parse_frame(&big).unwrap_err().contains("more than"));
        let mut c = Conversation::default();
        assert!(feed(&mut c, &frame(DATA, 0, 1, b"x")).is_err());
        assert!(feed(&mut c, &frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]))
            .unwrap_err()
            .contains("CANCEL"));
        assert!(feed(&mut c, &frame(HEADERS, PADDED | END_HEADERS, 1, &[9])).is_err());
        assert!(feed(&mut c, &frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff])).is_err());
        let no_status = loona_hpack::Encoder::new().encode([(&b"a"[..], &b"b"[..])]);
        assert!(feed(
            &mut Conversation::default(),
            &frame(HEADERS, END_HEADERS, 1, &no_status)
        )
        .unwrap_err()
        .contains(":status"));
    }

    #[test]
    fn a_header_block_is_capped_across_its_continuations() {
        // HEADERS, then CONTINUATIONs of a full frame each, never ending the block: the
        // fourth CONTINUATION would take it past 64 KiB (the fuzz runs, at 1 KiB inputs,
        // cannot reach this cap).
        let chunk = vec![0u8; MAX_FRAME];
        let mut c = Conversation::default();
        assert_eq!(feed(&mut c, &frame(HEADERS, 0, 1, &chunk)), Ok(vec![]));
        for _ in 0..3 {
            assert_eq!(feed(&mut c, &frame(CONTINUATION, 0, 1, &chunk)), Ok(vec![]));
        }
        let err = feed(&mut c, &frame(CONTINUATION, 0, 1, &chunk)).unwrap_err();
        assert!(err.contains("header block longer than 64 KiB"), "{err}");
    }
}
