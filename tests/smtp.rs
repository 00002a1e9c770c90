//! `nk smtp` (send one mail, RFC 5321 dialogue) on loopback: against Python's `aiosmtpd`
//! storing every envelope (mail_from, rcpt_tos, MAIL parameters, the raw content and what
//! Python's `email` package makes of it) into a temp dir, and against a scripted SMTP server
//! (a `std::net` thread with canned replies that records every line the client sent and the
//! message as it came over the wire, dot-stuffed).
//!
//! Ports come from the kernel: aiosmtpd binds 127.0.0.1:0 and prints its port (its readiness
//! signal); the scripted server binds port 0 in the test. "No connection" is observed on a
//! listener the test holds: nk's exit first, then ~500 ms of accept polling. Every wait is
//! bounded; a missing peer (python3-aiosmtpd) fails the test.

mod common;

use common::aiosmtpd::Aiosmtpd;
use common::*;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------
// helpers: messages
// ---------------------------------------------------------------------------

/// `text` with every LF turned into CRLF (nk sends CRLF line ends).
fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

/// Splits a message at the first empty line: (header section, body).
fn split_message<'a>(what: &str, msg: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    let at = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "{what}: no empty CRLF line in the message:\n{}",
                String::from_utf8_lossy(msg)
            )
        });
    (&msg[..at + 2], &msg[at + 4..])
}

/// The header fields of a message (unfolded), in order.
fn headers(what: &str, msg: &[u8]) -> Vec<(String, String)> {
    let (head, _) = split_message(what, msg);
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with(' ') || line.starts_with('\t') {
            let last = out
                .last_mut()
                .unwrap_or_else(|| panic!("{what}: continuation line first: {line:?}"));
            last.1.push_str(line);
        } else {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("{what}: header line without a colon: {line:?}"));
            out.push((name.to_string(), value.trim().to_string()));
        }
    }
    out
}

/// The value of header `name` (case-insensitive), if present.
fn header(hs: &[(String, String)], name: &str) -> Option<String> {
    hs.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// Undoes dot-stuffing (RFC 5321 4.5.2) of a message as sent between 354 and `.`.
fn unstuff(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    for line in wire.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

/// Decodes a quoted-printable body (RFC 2045 6.7), CRLF line ends kept.
fn decode_qp(what: &str, body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).unwrap_or_else(|_| panic!("{what}: QP body is not ASCII"));
    let mut out = Vec::new();
    let lines: Vec<&str> = text.split("\r\n").collect();
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        let (line, soft) = match line.strip_suffix('=') {
            Some(l) => (l, true),
            None => (*line, false),
        };
        let b = line.as_bytes();
        let mut j = 0;
        while j < b.len() {
            if b[j] == b'=' {
                let hex = line
                    .get(j + 1..j + 3)
                    .unwrap_or_else(|| panic!("{what}: truncated =XX in QP line {line:?}"));
                let v = u8::from_str_radix(hex, 16)
                    .unwrap_or_else(|_| panic!("{what}: bad =XX in QP line {line:?}"));
                out.push(v);
                j += 3;
            } else {
                out.push(b[j]);
                j += 1;
            }
        }
        if !soft && !last {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// The host name nk uses by default for EHLO.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read /proc/sys/kernel/hostname")
        .trim()
        .to_string()
}

/// Panics unless stdout is exactly one line, `want`.
fn expect_final_reply(out: &Finished, want: &str) {
    let text = out.stdout_text();
    let line = text.trim_end_matches('\n').trim_end_matches('\r');
    assert!(
        line == want && text.lines().count() == 1,
        "expected stdout to be the one line {want:?}\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// helpers: the scripted SMTP server
// ---------------------------------------------------------------------------

/// Canned replies; a reply of several lines is written as given, with CRLF after it.
#[derive(Clone, Debug)]
struct Replies {
    /// `None`: say nothing at all (read until the client goes away).
    banner: Option<String>,
    ehlo: String,
    helo: String,
    mail: String,
    /// Recipients (as written inside `<>`) refused with `rcpt_refusal`.
    refuse: Vec<String>,
    rcpt_refusal: String,
    data: String,
    dot: String,
}

const QUEUED: &str = "250 2.0.0 Ok: queued as SCRIPT1";

impl Default for Replies {
    fn default() -> Self {
        Replies {
            banner: Some("220 scripted.test ESMTP ready".into()),
            ehlo: "250-scripted.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 HELP"
                .into(),
            helo: "250 scripted.test".into(),
            mail: "250 2.1.0 Ok".into(),
            refuse: Vec::new(),
            rcpt_refusal: "550 5.1.1 Recipient address rejected: User unknown".into(),
            data: "354 End data with <CR><LF>.<CR><LF>".into(),
            dot: QUEUED.into(),
        }
    }
}

impl Replies {
    /// An EHLO reply without 8BITMIME and without SIZE.
    fn plain_ehlo(mut self) -> Self {
        self.ehlo = "250-scripted.test\r\n250 PIPELINING".into();
        self
    }
}

/// What the client did on the scripted server's connection.
#[derive(Debug, Default)]
struct Transcript {
    /// Every command line, without its CRLF (the message is not in here).
    commands: Vec<String>,
    /// The message as sent between 354 and the terminating `.` line (still dot-stuffed).
    message: Option<Vec<u8>>,
    /// Command lines that ended in a bare LF.
    bare_lf: Vec<String>,
    /// The client closed the connection (EOF seen) before the server gave up.
    eof: bool,
}

impl Transcript {
    fn verbs(&self) -> Vec<String> {
        self.commands
            .iter()
            .map(|c| {
                let v = c
                    .split([' ', ':'])
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                v
            })
            .collect()
    }

    fn has(&self, verb: &str) -> bool {
        self.verbs().iter().any(|v| v == verb)
    }

    fn command(&self, verb: &str) -> Option<&String> {
        self.commands
            .iter()
            .find(|c| c.to_ascii_uppercase().starts_with(verb))
    }

    fn describe(&self) -> String {
        format!(
            "commands: {:#?}\nmessage: {}",
            self.commands,
            self.message
                .as_ref()
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .unwrap_or_else(|| "(none)".into())
        )
    }
}

/// Reads one line (up to LF). `None` at EOF or after a read error/timeout.
fn read_line(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    match r.read_until(b'\n', &mut line) {
        Ok(0) => None,
        Ok(_) if line.ends_with(b"\n") => Some(line),
        Ok(_) => None,
        Err(_) => None,
    }
}

fn send(s: &mut TcpStream, reply: &str) -> io::Result<()> {
    s.write_all(format!("{reply}\r\n").as_bytes())
}

/// Speaks the server side of the dialogue with `replies` on one connection.
fn scripted_session(mut s: TcpStream, replies: Replies) -> Transcript {
    let mut t = Transcript::default();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set_read_timeout");
    let Some(banner) = replies.banner.clone() else {
        t.eof = read_until_eof(&mut s, 10.0).1;
        return t;
    };
    if send(&mut s, &banner).is_err() {
        return t;
    }
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    loop {
        let Some(raw) = read_line(&mut r) else {
            t.eof = true;
            return t;
        };
        let line = String::from_utf8_lossy(&raw).into_owned();
        let cmd = line
            .trim_end_matches('\n')
            .trim_end_matches('\r')
            .to_string();
        if !raw.ends_with(b"\r\n") {
            t.bare_lf.push(cmd.clone());
        }
        t.commands.push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            replies.ehlo.clone()
        } else if upper.starts_with("HELO") {
            replies.helo.clone()
        } else if upper.starts_with("MAIL FROM:") {
            replies.mail.clone()
        } else if upper.starts_with("RCPT TO:") {
            let refused = replies
                .refuse
                .iter()
                .any(|a| cmd.contains(&format!("<{a}>")));
            if refused {
                replies.rcpt_refusal.clone()
            } else {
                "250 2.1.5 Ok".to_string()
            }
        } else if upper == "DATA" {
            if send(&mut s, &replies.data).is_err() {
                return t;
            }
            if !replies.data.starts_with("354") {
                continue;
            }
            let mut msg = Vec::new();
            loop {
                let Some(l) = read_line(&mut r) else {
                    t.message = Some(msg);
                    return t;
                };
                if l == b".\r\n" {
                    break;
                }
                msg.extend_from_slice(&l);
            }
            t.message = Some(msg);
            replies.dot.clone()
        } else if upper == "QUIT" {
            let _ = send(&mut s, "221 2.0.0 Bye");
            let _ = s.shutdown(Shutdown::Write);
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut rest = Vec::new();
            t.eof = io::Read::read_to_end(&mut r, &mut rest).is_ok();
            if !rest.is_empty() {
                t.commands
                    .push(format!("<after QUIT: {}>", String::from_utf8_lossy(&rest)));
            }
            return t;
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 Ok".to_string()
        } else {
            "500 5.5.2 Error: command not recognized".to_string()
        };
        if send(&mut s, &reply).is_err() {
            return t;
        }
    }
}

/// The scripted server on 127.0.0.1, one connection.
fn scripted(replies: Replies) -> Server<Transcript> {
    Server::start(move |s, _| scripted_session(s, replies))
}

/// `nk smtp ARGS...` against `server`, bounded to 15 s.
fn smtp(args: &[&str], server: &str, stdin: In) -> Finished {
    let mut full = vec!["smtp"];
    full.extend_from_slice(args);
    full.push(server);
    run_nk(&full, stdin, 15.0)
}

/// `nk smtp --from FROM --to TO... ARGS SERVER`.
fn mail(server: &str, from: &str, to: &[&str], args: &[&str], stdin: In) -> Finished {
    let mut full = vec!["--from", from];
    for t in to {
        full.extend(["--to", t]);
    }
    full.extend_from_slice(args);
    smtp(&full, server, stdin)
}

/// `nk smtp --from a@example.test --to b@example.test ARGS SERVER`: the common case.
fn a_to_b(server: &str, args: &[&str], stdin: In) -> Finished {
    mail(server, "a@example.test", &["b@example.test"], args, stdin)
}

/// [`a_to_b`] to `127.0.0.1:PORT`.
fn send_a_to_b(port: u16, args: &[&str], stdin: In) -> Finished {
    a_to_b(&format!("127.0.0.1:{port}"), args, stdin)
}

fn write_tmp(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

// ---------------------------------------------------------------------------
// against aiosmtpd
// ---------------------------------------------------------------------------

#[test]
fn aiosmtpd_receives_the_body_byte_exact_with_dot_lines() {
    let srv = Aiosmtpd::start();
    let body = ".hidden\n..two\n.\nend\n. \n...\nlast line\n";
    let out = mail(
        &srv.server(),
        "alice@example.test",
        &["bob@example.test"],
        &["--subject", "dots", "--body", body],
        In::Null,
    );
    out.expect_code(0);
    expect_final_reply(&out, "250 2.0.0 Ok: queued as AIO1");
    let m = srv.message(1);
    assert_eq!(m.meta["mail_from"], "alice@example.test", "{:#}", m.meta);
    assert_eq!(m.strings(&m.meta["rcpt_tos"]), ["bob@example.test"]);
    let (head, got) = split_message("aiosmtpd content", &m.content);
    assert!(head.is_ascii(), "header section is not ASCII");
    assert_same_bytes("body as aiosmtpd stored it", got, &crlf(body));
    assert_eq!(
        m.view_str("body").replace("\r\n", "\n"),
        body,
        "email package's body: {:#}",
        m.meta
    );
    assert_eq!(srv.count(), 1, "one mail, one message");
}

#[test]
fn aiosmtpd_two_recipients_utf8_subject_and_the_header_set() {
    let srv = Aiosmtpd::start();
    let subject = "Grüße — ☃";
    let body = "Hallo,\nGrüße aus dem Test ☃\n";
    let out = mail(
        &srv.server(),
        "sender@example.test",
        &["a@example.test", "b@example.test"],
        &[
            "--subject",
            subject,
            "--helo",
            "client.example.test",
            "--header",
            "X-Test-One: first",
            "--header",
            "X-Test-Two: second value",
            "--body",
            body,
        ],
        In::Null,
    );
    out.expect_code(0);
    expect_final_reply(&out, "250 2.0.0 Ok: queued as AIO1");
    let m = srv.message(1);
    let meta = &m.meta;
    assert_eq!(meta["mail_from"], "sender@example.test", "{meta:#}");
    assert_eq!(
        m.strings(&meta["rcpt_tos"]),
        ["a@example.test", "b@example.test"]
    );
    assert_eq!(meta["helo"], "client.example.test", "{meta:#}");
    assert!(
        meta["view"].get("parse_error").is_none(),
        "the email package cannot parse the message: {meta:#}"
    );

    // The email package's view.
    assert_eq!(m.view_str("subject"), subject, "{meta:#}");
    assert_eq!(
        m.strings(m.view("to")),
        ["a@example.test", "b@example.test"],
        "To lists both recipients: {meta:#}"
    );
    assert_eq!(m.strings(m.view("from")), ["sender@example.test"]);
    let date = m
        .view("date")
        .as_f64()
        .unwrap_or_else(|| panic!("no Date: {meta:#}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (date - now).abs() < 300.0,
        "Date is {date}, now is {now}: {meta:#}"
    );
    assert_eq!(m.view_str("mime_version"), "1.0");
    assert_eq!(m.view_str("content_type"), "text/plain");
    assert_eq!(m.view_str("charset").to_lowercase(), "utf-8");
    assert_eq!(
        m.view_str("cte").to_lowercase(),
        "8bit",
        "aiosmtpd advertises 8BITMIME: {meta:#}"
    );
    assert_eq!(m.view_str("body").replace("\r\n", "\n"), body);
    assert!(
        m.strings(m.view("defects")).is_empty(),
        "the email package found defects: {meta:#}"
    );
    let mail_options = m.strings(&meta["mail_options"]);
    assert!(
        mail_options.iter().any(|o| o == "BODY=8BITMIME"),
        "MAIL FROM without BODY=8BITMIME for an 8-bit body: {mail_options:?}"
    );
    assert!(
        mail_options.iter().any(|o| o.starts_with("SIZE=")),
        "aiosmtpd advertises SIZE but MAIL FROM has no SIZE=: {mail_options:?}"
    );

    // The raw header section.
    let hs = headers("aiosmtpd content", &m.content);
    let (head, raw_body) = split_message("aiosmtpd content", &m.content);
    assert!(
        head.is_ascii(),
        "header section is not ASCII (the subject must be RFC 2047 encoded):\n{}",
        String::from_utf8_lossy(head)
    );
    assert_same_bytes("body", raw_body, &crlf(body));
    for name in [
        "Date",
        "From",
        "To",
        "Subject",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ] {
        assert!(
            header(&hs, name).is_some(),
            "no {name} header in:\n{}",
            String::from_utf8_lossy(head)
        );
    }
    let mid = header(&hs, "Message-ID").unwrap();
    assert!(
        mid.starts_with('<') && mid.ends_with("@client.example.test>") && mid.len() > 23,
        "Message-ID {mid:?} is not <random@helo>"
    );
    let ct = header(&hs, "Content-Type").unwrap().to_lowercase();
    assert!(
        ct.replace(' ', "") == "text/plain;charset=utf-8",
        "Content-Type {ct:?}"
    );
    // --header lines come after the standard ones, in the order given.
    let pos = |name: &str| {
        hs.iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("no {name} header: {hs:?}"))
    };
    assert_eq!(header(&hs, "X-Test-One").as_deref(), Some("first"));
    assert_eq!(header(&hs, "X-Test-Two").as_deref(), Some("second value"));
    assert!(pos("X-Test-One") < pos("X-Test-Two"), "{hs:?}");
    for std_name in [
        "Date",
        "From",
        "To",
        "Subject",
        "Message-ID",
        "MIME-Version",
    ] {
        assert!(
            pos(std_name) < pos("X-Test-One"),
            "--header line before {std_name}: {hs:?}"
        );
    }
}

#[test]
fn aiosmtpd_body_from_body_body_file_and_stdin() {
    let srv = Aiosmtpd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let common = ["--from", "f@example.test", "--to", "t@example.test"];

    let b1 = "from --body\n.dot line\n";
    let mut args = common.to_vec();
    args.extend_from_slice(&["--subject", "one", "--body", b1]);
    smtp(&args, &srv.server(), In::Null).expect_code(0);

    let b2 = "from --body-file\nzweite Zeile: äöü\n..\n";
    let file = write_tmp(dir.path(), "body.txt", b2.as_bytes());
    let file = file.to_str().unwrap();
    let mut args = common.to_vec();
    args.extend_from_slice(&["--subject", "two", "--body-file", file]);
    smtp(&args, &srv.server(), In::Null).expect_code(0);

    let b3 = "from stdin\n.\nthe end\n";
    let mut args = common.to_vec();
    args.extend_from_slice(&["--subject", "three"]);
    let out = smtp(&args, &srv.server(), In::Bytes(b3.as_bytes().to_vec()));
    out.expect_code(0);
    expect_final_reply(&out, "250 2.0.0 Ok: queued as AIO3");

    for (n, (subject, body)) in [("one", b1), ("two", b2), ("three", b3)]
        .into_iter()
        .enumerate()
    {
        let m = srv.message(n + 1);
        assert_eq!(m.view_str("subject"), subject, "{:#}", m.meta);
        let (_, got) = split_message(subject, &m.content);
        assert_same_bytes(&format!("body {subject}"), got, &crlf(body));
    }
}

// ---------------------------------------------------------------------------
// against the scripted server
// ---------------------------------------------------------------------------

#[test]
fn multi_line_banner_and_ehlo_replies_are_read_whole() {
    let srv = scripted(Replies {
        banner: Some(
            "220-scripted.test ESMTP\r\n220-second banner line\r\n220 third banner line".into(),
        ),
        ehlo: "250-scripted.test greets you\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
               250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 DSN"
            .into(),
        ..Replies::default()
    });
    let body = "plain ascii body\n";
    let out = send_a_to_b(srv.port(), &["--body", body], In::Null);
    let t = srv.join();
    out.expect_code(0);
    expect_final_reply(&out, QUEUED);
    let verbs = t.verbs();
    assert_eq!(
        verbs,
        ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"],
        "{}",
        t.describe()
    );
    assert_eq!(
        t.commands[0],
        format!("EHLO {}", host_name()),
        "EHLO names the host by default"
    );
    let mail = t.command("MAIL FROM:").unwrap();
    assert!(
        mail.starts_with("MAIL FROM:<a@example.test>"),
        "{}",
        t.describe()
    );
    assert_eq!(t.commands[2], "RCPT TO:<b@example.test>");
    assert!(t.bare_lf.is_empty(), "bare LF commands: {:?}", t.bare_lf);
    assert!(t.eof, "nk did not close the connection after QUIT");

    // SIZE=n is the message's size.
    let msg = t.message.as_ref().expect("a message");
    let size: usize = mail
        .split_whitespace()
        .find_map(|p| {
            p.to_ascii_uppercase()
                .strip_prefix("SIZE=")
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("SIZE advertised but not in {mail:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("SIZE=n not a number in {mail:?}"));
    let len = unstuff(msg).len();
    assert!(
        size + 2 >= len && size <= len + 5,
        "SIZE={size} but the message has {len} bytes"
    );
    let hs = headers("message", msg);
    assert_eq!(
        header(&hs, "Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_lowercase(),
        "7bit",
        "ASCII body: {}",
        t.describe()
    );
    assert_same_bytes("body", split_message("message", msg).1, &crlf(body));
}

#[test]
fn data_goes_out_crlf_and_dot_stuffed() {
    let srv = scripted(Replies::default());
    let body = ".hidden\n..two\n.\nend\nnot.a.dot\n";
    let out = send_a_to_b(
        srv.port(),
        &["--subject", "stuffing", "--body", body],
        In::Null,
    );
    let t = srv.join();
    out.expect_code(0);
    let msg = t.message.as_ref().expect("a message");
    let (_, wire_body) = split_message("message", msg);
    assert_same_bytes(
        "body on the wire (dot-stuffed)",
        wire_body,
        b"..hidden\r\n...two\r\n..\r\nend\r\nnot.a.dot\r\n",
    );
    for line in msg.split_inclusive(|&b| b == b'\n') {
        assert!(
            line.ends_with(b"\r\n"),
            "a message line without CRLF: {:?}",
            String::from_utf8_lossy(line)
        );
        assert!(
            !line[..line.len() - 2].contains(&b'\r'),
            "a bare CR inside line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn ehlo_refused_with_502_falls_back_to_helo() {
    let srv = scripted(Replies {
        ehlo: "502 5.5.1 EHLO not implemented".into(),
        ..Replies::default()
    });
    let out = send_a_to_b(
        srv.port(),
        &["--helo", "old.example.test", "--body", "hello old server\n"],
        In::Null,
    );
    let t = srv.join();
    out.expect_code(0);
    expect_final_reply(&out, QUEUED);
    assert_eq!(t.commands[0], "EHLO old.example.test", "{}", t.describe());
    assert_eq!(t.commands[1], "HELO old.example.test", "{}", t.describe());
    assert_eq!(
        t.verbs(),
        ["EHLO", "HELO", "MAIL", "RCPT", "DATA", "QUIT"],
        "{}",
        t.describe()
    );
    let mail = t.command("MAIL FROM:").unwrap();
    assert_eq!(
        mail, "MAIL FROM:<a@example.test>",
        "no ESMTP parameters after HELO"
    );
    let msg = t.message.as_ref().expect("the mail was delivered");
    assert_same_bytes(
        "body",
        split_message("message", msg).1,
        b"hello old server\r\n",
    );
}

#[test]
fn one_recipient_refused_the_other_still_gets_the_mail() {
    let srv = scripted(Replies {
        refuse: vec!["nobody@example.test".into()],
        ..Replies::default()
    });
    let out = mail(
        &format!("127.0.0.1:{}", srv.port()),
        "a@example.test",
        &["nobody@example.test", "good@example.test"],
        &["--body", "for the good one\n"],
        In::Null,
    );
    let t = srv.join();
    out.expect_code(1);
    out.expect_stderr_contains(
        "nk: RCPT TO:<nobody@example.test> refused: 550 5.1.1 Recipient address rejected: User unknown",
    );
    assert!(
        !out.stderr.contains("good@example.test> refused"),
        "{}",
        out.describe()
    );
    assert_eq!(
        t.verbs(),
        ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"],
        "{}",
        t.describe()
    );
    assert_eq!(t.commands[2], "RCPT TO:<nobody@example.test>");
    assert_eq!(t.commands[3], "RCPT TO:<good@example.test>");
    let msg = t.message.as_ref().expect("DATA was sent");
    assert_same_bytes(
        "body",
        split_message("message", msg).1,
        b"for the good one\r\n",
    );
    // The final reply is still what stdout shows.
    expect_final_reply(&out, QUEUED);
}

#[test]
fn all_recipients_refused_no_data_quit_exit_1() {
    let srv = scripted(Replies {
        refuse: vec!["x@example.test".into(), "y@example.test".into()],
        ..Replies::default()
    });
    let out = mail(
        &format!("127.0.0.1:{}", srv.port()),
        "a@example.test",
        &["x@example.test", "y@example.test"],
        &["--body", "nobody will read this\n"],
        In::Null,
    );
    let t = srv.join();
    out.expect_code(1);
    out.expect_stderr_contains("nk: RCPT TO:<x@example.test> refused: 550")
        .expect_stderr_contains("nk: RCPT TO:<y@example.test> refused: 550");
    assert_eq!(
        t.verbs(),
        ["EHLO", "MAIL", "RCPT", "RCPT", "QUIT"],
        "{}",
        t.describe()
    );
    assert!(t.message.is_none(), "{}", t.describe());
}

#[test]
fn banner_421_exits_1_with_the_reply_on_stderr() {
    let srv = scripted(Replies {
        banner: Some("421 4.3.2 scripted.test too busy, try later".into()),
        ..Replies::default()
    });
    let server = format!("127.0.0.1:{}", srv.port());
    let out = a_to_b(&server, &["--body", "x\n"], In::Null);
    let t = srv.join();
    out.expect_code(1);
    out.expect_stderr_contains(&format!(
        "nk: smtp {server}: banner failed: 421 4.3.2 scripted.test too busy, try later"
    ));
    // nk may say QUIT or just close; it must say nothing else.
    assert!(
        t.verbs().iter().all(|v| v == "QUIT"),
        "commands after a 421 banner: {}",
        t.describe()
    );
}

#[test]
fn mail_from_refused_exits_1_and_quits() {
    let srv = scripted(Replies {
        mail: "553 5.1.8 Sender address rejected: Domain not found".into(),
        ..Replies::default()
    });
    let server = format!("127.0.0.1:{}", srv.port());
    let out = mail(
        &server,
        "a@bad.test",
        &["b@example.test"],
        &["--body", "x\n"],
        In::Null,
    );
    let t = srv.join();
    out.expect_code(1);
    out.expect_stderr_contains(&format!("nk: smtp {server}: "))
        .expect_stderr_contains("failed: 553 5.1.8 Sender address rejected: Domain not found");
    assert_eq!(t.verbs(), ["EHLO", "MAIL", "QUIT"], "{}", t.describe());
}

#[test]
fn final_dot_rejected_exits_1_with_the_reply() {
    let srv = scripted(Replies {
        dot: "554 5.7.1 Message rejected as spam".into(),
        ..Replies::default()
    });
    let out = send_a_to_b(srv.port(), &["--body", "buy\n"], In::Null);
    let t = srv.join();
    out.expect_code(1);
    out.expect_stderr_contains("554 5.7.1 Message rejected as spam");
    assert_eq!(
        t.verbs(),
        ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"],
        "{}",
        t.describe()
    );
}

#[test]
fn size_limit_exceeded_exits_1_before_mail_from() {
    let srv = scripted(Replies {
        ehlo: "250-scripted.test\r\n250-SIZE 100\r\n250 8BITMIME".into(),
        ..Replies::default()
    });
    let body = "0123456789".repeat(50) + "\n";
    let out = send_a_to_b(srv.port(), &["--body", &body], In::Null);
    let t = srv.join();
    out.expect_code(1);
    out.expect_stderr_contains("size");
    assert!(!t.has("MAIL"), "MAIL FROM sent: {}", t.describe());
    assert!(t.message.is_none(), "{}", t.describe());
    assert_eq!(t.verbs(), ["EHLO", "QUIT"], "{}", t.describe());
}

#[test]
fn utf8_body_without_8bitmime_goes_quoted_printable() {
    let srv = scripted(Replies::default().plain_ehlo());
    // A long non-ASCII line (needs soft breaks), trailing white space, '=' and a dot line.
    let body = format!(
        "Grüße, Welt ☃\n{}\ntrailing space \ntrailing tab\t\na = b\n.dot\n",
        "äöü€".repeat(40)
    );
    let out = send_a_to_b(srv.port(), &["--subject", "qp", "--body", &body], In::Null);
    let t = srv.join();
    out.expect_code(0);
    let mail = t.command("MAIL FROM:").unwrap();
    assert!(
        !mail.to_ascii_uppercase().contains("BODY="),
        "BODY= without 8BITMIME: {mail:?}"
    );
    let msg = unstuff(t.message.as_ref().expect("a message"));
    assert!(
        msg.is_ascii(),
        "8-bit bytes sent to a server without 8BITMIME:\n{}",
        String::from_utf8_lossy(&msg)
    );
    let hs = headers("message", &msg);
    assert_eq!(
        header(&hs, "Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_lowercase(),
        "quoted-printable",
        "{}",
        t.describe()
    );
    let (_, qp) = split_message("message", &msg);
    for line in qp.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(
            line.len() <= 76,
            "QP line over 76 characters (RFC 2045 6.7): {:?}",
            String::from_utf8_lossy(line)
        );
        assert!(
            !line.ends_with(b" ") && !line.ends_with(b"\t"),
            "QP line ends in white space (RFC 2045 6.7 rule 3): {:?}",
            String::from_utf8_lossy(line)
        );
    }
    assert_same_bytes(
        "quoted-printable body, decoded",
        &decode_qp("body", qp),
        &crlf(&body),
    );
}

#[test]
fn ascii_body_without_8bitmime_is_7bit() {
    let srv = scripted(Replies::default().plain_ehlo());
    let out = send_a_to_b(srv.port(), &["--body", "just ascii\n"], In::Null);
    let t = srv.join();
    out.expect_code(0);
    let mail = t.command("MAIL FROM:").unwrap();
    assert_eq!(
        mail, "MAIL FROM:<a@example.test>",
        "no SIZE/8BITMIME advertised"
    );
    let msg = t.message.as_ref().expect("a message");
    let hs = headers("message", msg);
    assert_eq!(
        header(&hs, "Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_lowercase(),
        "7bit"
    );
    assert_same_bytes("body", split_message("message", msg).1, b"just ascii\r\n");
}

#[test]
fn utf8_body_with_8bitmime_goes_8bit_with_body_param() {
    let srv = scripted(Replies::default());
    let body = "Grüße ☃\n";
    let out = send_a_to_b(srv.port(), &["--body", body], In::Null);
    let t = srv.join();
    out.expect_code(0);
    let mail = t.command("MAIL FROM:").unwrap();
    assert!(
        mail.split_whitespace()
            .any(|p| p.eq_ignore_ascii_case("BODY=8BITMIME")),
        "MAIL FROM without BODY=8BITMIME: {mail:?}"
    );
    let msg = t.message.as_ref().expect("a message");
    let hs = headers("message", msg);
    assert_eq!(
        header(&hs, "Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_lowercase(),
        "8bit"
    );
    assert_same_bytes("body", split_message("message", msg).1, &crlf(body));
}

#[test]
fn cr_or_lf_in_an_argument_exits_2_without_connecting() {
    let srv = NoConnect::new();
    let base = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec![
            "--from",
            "a@example.test",
            "--to",
            "b@example.test",
            "--body",
            "x\n",
        ];
        v.extend_from_slice(extra);
        v
    };
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "subject CRLF",
            base(&["--subject", "hi\r\nBcc: evil@example.test"]),
        ),
        (
            "subject LF",
            base(&["--subject", "hi\nBcc: evil@example.test"]),
        ),
        (
            "subject CR",
            base(&["--subject", "hi\rBcc: evil@example.test"]),
        ),
        (
            "header value CRLF",
            base(&["--header", "X-A: v\r\nBcc: evil@example.test"]),
        ),
        (
            "header value LF",
            base(&["--header", "X-A: v\nBcc: evil@example.test"]),
        ),
        (
            "helo CRLF",
            base(&["--helo", "h.test\r\nMAIL FROM:<evil@example.test>"]),
        ),
        ("helo LF", base(&["--helo", "h.test\nRSET"])),
        (
            "from CRLF",
            vec![
                "--from",
                "a@example.test>\r\nRCPT TO:<evil@example.test",
                "--to",
                "b@example.test",
                "--body",
                "x\n",
            ],
        ),
        (
            "to CRLF",
            vec![
                "--from",
                "a@example.test",
                "--to",
                "b@example.test>\r\nRCPT TO:<evil@example.test",
                "--body",
                "x\n",
            ],
        ),
        (
            "second to LF",
            vec![
                "--from",
                "a@example.test",
                "--to",
                "b@example.test",
                "--to",
                "c@example.test\nDATA",
                "--body",
                "x\n",
            ],
        ),
    ];
    for (what, args) in &cases {
        let out = smtp(args, &srv.server(), In::Null);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: expected exit 2\n{}",
            out.describe()
        );
        assert!(
            out.stderr_first_line().starts_with("nk: ") || out.stderr.contains("error"),
            "{what}: no diagnostic\n{}",
            out.describe()
        );
        srv.expect_none(0.0, what);
    }
    srv.expect_none(0.5, "CR/LF arguments");
}

#[test]
fn body_line_over_998_octets_exits_2_without_connecting() {
    let srv = NoConnect::new();
    let long = format!("short line\n{}\nafter\n", "x".repeat(999));
    let out = a_to_b(&srv.server(), &["--body", &long], In::Null);
    out.expect_code(2);
    // The same from stdin.
    let out2 = smtp(
        &["--from", "a@example.test", "--to", "b@example.test"],
        &srv.server(),
        In::Bytes(long.into_bytes()),
    );
    out2.expect_code(2);
    srv.expect_none(0.5, "a 999-octet body line");

    // 998 octets is the limit, not over it.
    let ok = scripted(Replies::default());
    let line = "y".repeat(998);
    let body = format!("{line}\n");
    let out = send_a_to_b(ok.port(), &["--body", &body], In::Null);
    let t = ok.join();
    out.expect_code(0);
    let msg = t.message.as_ref().expect("a message");
    assert_same_bytes(
        "998-octet line",
        split_message("message", msg).1,
        &crlf(&body),
    );
}

#[test]
fn quit_after_each_stage_stops_there() {
    let cases: [(&str, &[&str]); 4] = [
        ("banner", &["QUIT"]),
        ("helo", &["EHLO", "QUIT"]),
        ("mail", &["EHLO", "MAIL", "QUIT"]),
        ("rcpt", &["EHLO", "MAIL", "RCPT", "RCPT", "QUIT"]),
    ];
    for (stage, want) in cases {
        let srv = scripted(Replies::default());
        let out = send_a_to_b(
            srv.port(),
            &[
                "--to",
                "c@example.test",
                "--body",
                "never sent\n",
                "--quit-after",
                stage,
            ],
            In::Null,
        );
        let t = srv.join();
        assert_eq!(
            out.status.code(),
            Some(0),
            "--quit-after {stage}\n{}",
            out.describe()
        );
        assert_eq!(t.verbs(), want, "--quit-after {stage}: {}", t.describe());
        assert!(t.message.is_none(), "--quit-after {stage}: DATA sent");
    }

    // connect: nothing of the dialogue at all.
    let srv = scripted(Replies::default());
    let out = send_a_to_b(
        srv.port(),
        &["--body", "never sent\n", "--quit-after", "connect"],
        In::Null,
    );
    let t = srv.join();
    out.expect_code(0);
    assert!(
        t.verbs().iter().all(|v| v == "QUIT"),
        "--quit-after connect: {}",
        t.describe()
    );
}

#[test]
fn verbose_transcript_on_stderr() {
    let srv = scripted(Replies::default());
    let body = "secret-body-line-1\nsecret-body-line-2\n";
    let out = smtp(
        &[
            "-v",
            "--from",
            "a@example.test",
            "--to",
            "b@example.test",
            "--body",
            body,
        ],
        &format!("127.0.0.1:{}", srv.port()),
        In::Null,
    );
    let t = srv.join();
    out.expect_code(0);
    expect_final_reply(&out, QUEUED);
    // Transcript lines may carry nk's usual `nk: ` stderr prefix.
    let lines = out.stderr_lines_unprefixed();
    let has = |p: &str| lines.iter().any(|l| l.starts_with(p));
    for prefix in [
        "<- 220 scripted.test ESMTP ready",
        "-> EHLO ",
        "<- 250",
        "-> MAIL FROM:<a@example.test>",
        "-> RCPT TO:<b@example.test>",
        "-> DATA",
        "<- 354",
        "-> <message: ",
        "-> QUIT",
        "<- 221",
    ] {
        assert!(
            has(prefix),
            "no stderr line starting {prefix:?}\n{}",
            out.describe()
        );
    }
    assert!(
        !out.stderr.contains("secret-body-line"),
        "the body is echoed on stderr\n{}",
        out.describe()
    );
    let n: usize = lines
        .iter()
        .find_map(|l| l.strip_prefix("-> <message: "))
        .and_then(|r| r.strip_suffix(" bytes>"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad `-> <message: N bytes>` line\n{}", out.describe()));
    let sent = t.message.as_ref().expect("a message").len();
    assert!(
        n > 0 && n.abs_diff(sent) <= 5,
        "-v says {n} bytes, the server got {sent}"
    );
}

#[test]
fn ipv6_loopback() {
    let srv = Server::start_on("::1", 10.0, |s, _| scripted_session(s, Replies::default()));
    let out = a_to_b(
        &format!("[::1]:{}", srv.port()),
        &["--body", "over v6\n"],
        In::Null,
    );
    let t = srv.join();
    out.expect_code(0);
    expect_final_reply(&out, QUEUED);
    let msg = t.message.as_ref().expect("a message");
    assert_same_bytes("body", split_message("message", msg).1, b"over v6\r\n");
}

#[test]
fn refused_port_exits_1() {
    let closed = closed_port();
    let port = closed.port;
    let out = a_to_b(&format!("127.0.0.1:{port}"), &["--body", "x\n"], In::Null);
    expect_nk_error(&out, 1);
}

#[test]
fn silent_server_times_out_with_exit_1() {
    let srv = scripted(Replies {
        banner: None,
        ..Replies::default()
    });
    let out = Proc::nk(
        [
            "smtp",
            "--timeout",
            "500ms",
            "--from",
            "a@example.test",
            "--to",
            "b@example.test",
            "--body",
            "x\n",
            &format!("127.0.0.1:{}", srv.port()),
        ],
        In::Null,
        Out::Pipe,
    )
    .wait(5.0);
    let t = srv.join();
    out.expect_code(1).expect_stdout(b"");
    assert!(
        out.stderr_first_line().starts_with("nk: "),
        "{}",
        out.describe()
    );
    assert!(t.eof, "nk did not close the connection when it gave up");
}

// ---------------------------------------------------------------------------
// message limits and header encoding beyond the basic set (RFC 5322 2.1.1, RFC 2047)
// ---------------------------------------------------------------------------

/// Panics if a line of the message (CRLF excluded) is over 998 octets.
fn expect_lines_within_998(what: &str, content: &[u8]) {
    for line in content.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(
            line.len() <= 998,
            "{what}: a {}-octet line (RFC 5322 2.1.1 allows 998): {:?}...",
            line.len(),
            String::from_utf8_lossy(&line[..80])
        );
    }
}

#[test]
fn aiosmtpd_many_recipients_fit_in_folded_to_lines() {
    let srv = Aiosmtpd::start();
    let rcpts: Vec<String> = (0..60)
        .map(|i| format!("recipient-number-{i:02}@example.test"))
        .collect();
    let mut args = vec!["--from", "a@example.test", "--subject", "many"];
    for r in &rcpts {
        args.extend_from_slice(&["--to", r]);
    }
    args.extend_from_slice(&["--body", "to all of you\n"]);
    let out = smtp(&args, &srv.server(), In::Null);
    out.expect_code(0);
    let m = srv.message(1);
    assert_eq!(m.strings(&m.meta["rcpt_tos"]), rcpts);
    assert_eq!(m.strings(m.view("to")), rcpts, "{:#}", m.meta);
    expect_lines_within_998("message", &m.content);
}

#[test]
fn aiosmtpd_long_subjects_arrive_whole() {
    let srv = Aiosmtpd::start();
    // Non-ASCII: several encoded-words, each within 75 characters (RFC 2047 2).
    let utf8 = "Grüße ☃ — ".repeat(20);
    let out = a_to_b(
        &srv.server(),
        &["--subject", &utf8, "--body", "x\n"],
        In::Null,
    );
    out.expect_code(0);
    let m = srv.message(1);
    assert_eq!(m.view_str("subject"), utf8, "{:#}", m.meta);
    let (head, _) = split_message("message", &m.content);
    assert!(head.is_ascii(), "non-ASCII header section");
    let text = String::from_utf8_lossy(head);
    for word in text
        .split([' ', '\r', '\n'])
        .filter(|w| w.starts_with("=?"))
    {
        assert!(
            word.len() <= 75,
            "encoded-word over 75 characters: {word:?}"
        );
    }

    // ASCII, longer than a line may be: folded (or refused, exit 2), never one long line.
    let ascii = (0..150)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(ascii.len() > 998);
    let out = a_to_b(
        &srv.server(),
        &["--subject", &ascii, "--body", "x\n"],
        In::Null,
    );
    if out.status.code() == Some(2) {
        assert_eq!(srv.count(), 1, "exit 2, yet a message was sent");
        return;
    }
    out.expect_code(0);
    let m = srv.message(2);
    expect_lines_within_998("message", &m.content);
    assert_eq!(m.view_str("subject"), ascii, "{:#}", m.meta);
}

#[test]
fn aiosmtpd_display_names_in_from_and_to() {
    let srv = Aiosmtpd::start();
    let out = mail(
        &srv.server(),
        "Alice Example <alice@example.test>",
        &["Bob <bob@example.test>", "carol@example.test"],
        &["--body", "x\n"],
        In::Null,
    );
    out.expect_code(0);
    let m = srv.message(1);
    assert_eq!(m.meta["mail_from"], "alice@example.test", "{:#}", m.meta);
    assert_eq!(
        m.strings(&m.meta["rcpt_tos"]),
        ["bob@example.test", "carol@example.test"]
    );
    assert_eq!(m.strings(m.view("from_names")), ["Alice Example"]);
    assert_eq!(m.strings(m.view("to_names")), ["Bob", ""]);

    // A non-ASCII display name goes RFC 2047 encoded: the header section stays ASCII.
    let out = mail(
        &srv.server(),
        "Jörg Müller <joerg@example.test>",
        &["Zoë <zoe@example.test>"],
        &["--body", "x\n"],
        In::Null,
    );
    out.expect_code(0);
    let m = srv.message(2);
    let (head, _) = split_message("message", &m.content);
    assert!(
        head.is_ascii(),
        "8-bit header section (a display name must be RFC 2047 encoded):\n{}",
        String::from_utf8_lossy(head)
    );
    assert_eq!(
        m.strings(m.view("from_names")),
        ["Jörg Müller"],
        "{:#}",
        m.meta
    );
    assert_eq!(m.strings(m.view("to_names")), ["Zoë"], "{:#}", m.meta);
    assert_eq!(m.strings(m.view("from")), ["joerg@example.test"]);
}

#[test]
fn aiosmtpd_a_bare_cr_in_the_body_never_goes_out_bare() {
    // RFC 5321 2.3.8: CR and LF only as CRLF. nk may refuse the body (exit 2) or send the
    // CR as a line end; it must not send it bare.
    let srv = Aiosmtpd::start();
    let out = a_to_b(&srv.server(), &["--body", "one\rtwo\n"], In::Null);
    if out.status.code() == Some(2) {
        assert_eq!(srv.count(), 0, "exit 2, yet a message was sent");
        return;
    }
    out.expect_code(0);
    let m = srv.message(1);
    let (_, body) = split_message("message", &m.content);
    for (i, &b) in body.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(
                body.get(i + 1),
                Some(&b'\n'),
                "a bare CR reached the server: {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// replies that never end, the banner wait (issue 17: items 2 and 20)
// ---------------------------------------------------------------------------

/// A server that sends `first` and then one continuation line of `code` every 200 ms, up to
/// 200 lines (40 s), answering nothing; it stops when a write fails (nk went away) and says
/// whether it did.
fn drip_lines(s: TcpStream, code: &str, first: Option<&str>) -> bool {
    let mut s = s;
    if let Some(first) = first {
        if send(&mut s, first).is_err() {
            return true;
        }
        // Wait for the client's command before the endless reply starts.
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        if read_line(&mut r).is_none() {
            return true;
        }
    }
    for i in 0..200 {
        if send(
            &mut s,
            &format!("{code}-line {i} of a reply that never ends"),
        )
        .is_err()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn a_reply_that_never_ends_is_bounded_by_timeout_in_all() {
    // The banner itself, then an EHLO reply: each line comes well within --timeout, the whole
    // reply never does. nk must give up after --timeout (bounded here by the 10 s kill).
    for (stage, code, first) in [
        ("banner", "220", None),
        ("EHLO", "250", Some("220 scripted.test ESMTP ready")),
    ] {
        let srv = Server::start(move |s, _| drip_lines(s, code, first));
        let out = run_nk(
            [
                "smtp",
                "--timeout",
                "1s",
                "--from",
                "a@example.test",
                "--to",
                "b@example.test",
                "--body",
                "x\n",
                &format!("127.0.0.1:{}", srv.port()),
            ],
            In::Null,
            10.0,
        );
        out.expect_code(1).expect_stdout(b"");
        let first_line = out.stderr_first_line();
        assert!(
            first_line.starts_with("nk: smtp 127.0.0.1:")
                && first_line.contains(&format!("the reply to {stage} was not complete within 1s")),
            "{stage}: {}",
            out.describe()
        );
        assert!(
            srv.join(),
            "{stage}: the server kept writing after nk gave up"
        );
    }
}

#[test]
fn a_flood_of_continuation_lines_stops_at_the_line_cap() {
    let srv = Server::start(|mut s, _| {
        for i in 0..100_000 {
            if send(&mut s, &format!("220-flood {i}")).is_err() {
                return true;
            }
        }
        false
    });
    let out = a_to_b(
        &format!("127.0.0.1:{}", srv.port()),
        &["--body", "x\n"],
        In::Null,
    );
    out.expect_code(1)
        .expect_stderr_contains("a reply has more than 256 lines");
    assert!(srv.join(), "nk read 100,000 lines of one reply");
}

#[test]
fn quit_after_connect_waits_for_the_banner() {
    // The banner comes late: whatever nk sends before it is recorded, then the dialogue goes
    // on as the scripted server's.
    let srv = Server::start(|s, _| {
        s.set_nonblocking(true).expect("nonblocking");
        std::thread::sleep(Duration::from_millis(300));
        let mut early = [0u8; 512];
        let n = io::Read::read(&mut &s, &mut early).unwrap_or(0);
        s.set_nonblocking(false).expect("blocking");
        (early[..n].to_vec(), scripted_session(s, Replies::default()))
    });
    let out = send_a_to_b(
        srv.port(),
        &["--body", "x\n", "--quit-after", "connect", "-v"],
        In::Null,
    );
    let (early, t) = srv.join();
    assert!(
        early.is_empty(),
        "nk sent {:?} before the banner\n{}",
        lossy(&early),
        out.describe()
    );
    out.expect_code(0);
    assert_eq!(t.verbs(), ["QUIT"], "{}", t.describe());
    assert!(
        out.stderr_lines_unprefixed()
            .iter()
            .any(|l| l.starts_with("<- 221")),
        "QUIT's own reply (221) was not read\n{}",
        out.describe()
    );
}

/// Listens on 127.0.0.1:ARGV[1] and never accepts (the kernel completes the handshake; nobody
/// speaks), then runs the rest of argv and exits with its status: readiness by construction.
const SILENT_THEN_EXEC_PY: &str = r#"
import socket, subprocess, sys
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(4)
sys.exit(subprocess.call(sys.argv[2:]))
"#;

#[test]
fn a_silent_banner_on_port_465_hints_at_tls() {
    require_netns();
    require_python3();
    for (port, hinted) in [("465", true), ("2465", false)] {
        let server = format!("127.0.0.1:{port}");
        let argv = [
            "python3",
            "-c",
            SILENT_THEN_EXEC_PY,
            port,
            NK,
            "smtp",
            "--timeout",
            "500ms",
            "--from",
            "a@example.test",
            "--to",
            "b@example.test",
            "--body",
            "x\n",
            &server,
        ];
        let out = Proc::spawn(
            &format!("nk smtp {server} (netns)"),
            netns_command("", &argv),
            In::Null,
            Out::Pipe,
        )
        .wait(10.0);
        out.expect_code(1)
            .expect_stderr_contains("no reply to banner within 500ms");
        let hint = out
            .stderr
            .lines()
            .any(|l| l.starts_with("hint:") && l.contains("--tls"));
        assert_eq!(
            hint,
            hinted,
            "port {port}: hint at --tls\n{}",
            out.describe()
        );
    }
}

#[test]
fn server_and_port_as_two_arguments() {
    let srv = scripted(Replies::default());
    let port = srv.port().to_string();
    let out = run_nk(
        [
            "smtp",
            "--from",
            "a@example.test",
            "--to",
            "b@example.test",
            "--body",
            "two args\n",
            "127.0.0.1",
            &port,
        ],
        In::Null,
        15.0,
    );
    let t = srv.join();
    out.expect_code(0);
    expect_final_reply(&out, QUEUED);
    assert!(t.message.is_some(), "{}", t.describe());
}

// ---------------------------------------------------------------------------
// display names, encoded-word lines, NUL bytes, the null sender (issue 17 item 14)
// ---------------------------------------------------------------------------

/// Python's own reading of a header value as an address list, with
/// `email.utils.getaddresses` (strict, the default since 3.13 and in patched releases):
/// (display name, addr-spec) pairs.
fn python_getaddresses(value: &str) -> Vec<(String, String)> {
    let py = common::aiosmtpd::aiosmtpd_python();
    let out = std::process::Command::new(py)
        .args([
            "-c",
            "import email.utils, json, sys; \
             print(json.dumps(email.utils.getaddresses([sys.argv[1]])))",
            value,
        ])
        .output()
        .expect("run python3");
    assert!(out.status.success(), "python3: {:?}", out);
    let pairs: Vec<(String, String)> = serde_json::from_slice(&out.stdout).expect("json");
    pairs
}

#[test]
fn aiosmtpd_display_names_with_specials_are_quoted() {
    let srv = Aiosmtpd::start();
    let to = [
        "Doe, Jane <jane@example.test>",
        "\"Already, Quoted\" <q@example.test>",
        "Jane \"JJ\" Doe <jj@example.test>",
        "back\\slash (x) <b@example.test>",
        "Q. Public <p@example.test>",
        "Plain Name <n@example.test>",
    ];
    let out = mail(
        &srv.server(),
        "Smith, John <john@example.test>",
        &to,
        &["--body", "x\n"],
        In::Null,
    );
    out.expect_code(0);
    let m = srv.message(1);
    let addrs = [
        "jane@example.test",
        "q@example.test",
        "jj@example.test",
        "b@example.test",
        "p@example.test",
        "n@example.test",
    ];
    let names = [
        "Doe, Jane",
        "Already, Quoted",
        "Jane \"JJ\" Doe",
        "back\\slash (x)",
        "Q. Public",
        "Plain Name",
    ];
    assert_eq!(m.strings(m.view("to")), addrs, "{:#}", m.meta);
    assert_eq!(m.strings(m.view("to_names")), names, "{:#}", m.meta);
    assert_eq!(m.strings(m.view("from")), ["john@example.test"]);
    assert_eq!(m.strings(m.view("from_names")), ["Smith, John"]);
    assert_eq!(m.view("defects"), &serde_json::json!([]), "{:#}", m.meta);
    let hs = headers("message", &m.content);
    let got = python_getaddresses(&header(&hs, "To").expect("a To header"));
    let want: Vec<(String, String)> = names
        .iter()
        .zip(addrs)
        .map(|(n, a)| (n.to_string(), a.to_string()))
        .collect();
    assert_eq!(got, want, "getaddresses(To)");
    // A name that needs no quotes is left as it is; a quoted one is kept as given.
    let to_value = header(&hs, "To").unwrap();
    assert!(
        to_value.contains("Plain Name <n@example.test>"),
        "{to_value}"
    );
    assert!(
        to_value.contains("\"Already, Quoted\" <q@example.test>"),
        "{to_value}"
    );
}

/// Panics unless every header line holding an encoded-word is at most 76 characters and
/// every encoded-word at most 75 (RFC 2047 2).
fn expect_rfc2047_lengths(what: &str, content: &[u8]) {
    let (head, _) = split_message(what, content);
    let text = String::from_utf8_lossy(head);
    for line in text.split("\r\n").filter(|l| l.contains("=?")) {
        assert!(
            line.len() <= 76,
            "{what}: a {}-character line with an encoded-word (RFC 2047 2 allows 76): {line:?}\n{text}",
            line.len()
        );
        for word in line.split([' ', '\t']).filter(|w| w.contains("=?")) {
            assert!(word.len() <= 75, "{what}: encoded-word over 75: {word:?}");
        }
    }
}

#[test]
fn aiosmtpd_encoded_words_keep_lines_within_76() {
    let srv = Aiosmtpd::start();
    let subject = "Grüße ☃ — ".repeat(12);
    let comment = "Käse ".repeat(30);
    let long_name =
        "Jörg-Friedrich Müller-Lüdenscheidt von und zu Großbärenstädt-Überlänge und Sühne";
    let from = format!("{long_name} <joerg@example.test>");
    let out = mail(
        &srv.server(),
        &from,
        &[
            "b@example.test",
            "Zoë Ünal-Ørsted, Ph.D. <zoe@example.test>",
        ],
        &[
            "--subject",
            &subject,
            "--header",
            &format!("X-A-Rather-Long-Header-Name-For-Comments: {comment}"),
            "--body",
            "x\n",
        ],
        In::Null,
    );
    out.expect_code(0);
    let m = srv.message(1);
    expect_rfc2047_lengths("message", &m.content);
    assert_eq!(m.view_str("subject"), subject, "{:#}", m.meta);
    assert_eq!(m.strings(m.view("from_names")), [long_name], "{:#}", m.meta);
    assert_eq!(
        m.strings(m.view("to_names")),
        ["", "Zoë Ünal-Ørsted, Ph.D."],
        "{:#}",
        m.meta
    );
    assert_eq!(m.view("defects"), &serde_json::json!([]), "{:#}", m.meta);
}

#[test]
fn nul_bytes_in_the_body_never_go_out_raw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Aiosmtpd::start();
    for (n, body) in [
        (1, b"ascii\0with a NUL\n\0\n".to_vec()),
        (2, "Grüße\0☃\n".as_bytes().to_vec()),
    ] {
        let file = write_tmp(dir.path(), &format!("body{n}"), &body);
        let out = a_to_b(
            &srv.server(),
            &["--body-file", file.to_str().unwrap()],
            In::Null,
        );
        out.expect_code(0);
        let m = srv.message(n);
        assert!(
            !m.content.contains(&0),
            "a NUL byte reached the server (RFC 2045 2.7, RFC 5322 4.1):\n{:?}",
            String::from_utf8_lossy(&m.content)
        );
        let opts = m.strings(&m.meta["mail_options"]);
        assert!(
            !opts.iter().any(|o| o.eq_ignore_ascii_case("BODY=8BITMIME")),
            "BODY=8BITMIME for an encoded body: {opts:?}"
        );
        assert_eq!(m.view_str("cte"), "quoted-printable", "{:#}", m.meta);
        assert_eq!(
            m.view_str("body").replace("\r\n", "\n").into_bytes(),
            body,
            "{:#}",
            m.meta
        );
    }
}

#[test]
fn aiosmtpd_null_sender_gets_a_valid_from_header() {
    let srv = Aiosmtpd::start();
    for (n, from, want_name) in [(1, "<>", ""), (2, "Bounce Handler <>", "Bounce Handler")] {
        let out = mail(
            &srv.server(),
            from,
            &["b@example.test"],
            &["--helo", "client.example.test", "--body", "x\n"],
            In::Null,
        );
        out.expect_code(0);
        let m = srv.message(n);
        assert_eq!(m.meta["mail_from"], "<>", "the envelope: {:#}", m.meta);
        assert_eq!(
            m.strings(m.view("from")),
            ["MAILER-DAEMON@client.example.test"],
            "{:#}",
            m.meta
        );
        assert_eq!(m.strings(m.view("from_names")), [want_name]);
        assert_eq!(m.view("defects"), &serde_json::json!([]), "{:#}", m.meta);
        let hs = headers("message", &m.content);
        let got = python_getaddresses(&header(&hs, "From").expect("a From header"));
        assert_eq!(
            got,
            [(
                want_name.to_string(),
                "MAILER-DAEMON@client.example.test".to_string()
            )]
        );
    }
}
