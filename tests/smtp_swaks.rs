//! `nk smtp` for swaks users (issue 22 items 12-14): AUTH, --data, --dump-mail, --attach,
//! --pipeline, --protocol lmtp, -vv. Peers: Python's aiosmtpd (AUTH PLAIN and LOGIN with its
//! authenticator, in clear and over STARTTLS), and a scripted Python server for what aiosmtpd
//! cannot do: CRAM-MD5 (checked with Python's own hmac), a PIPELINING server that answers
//! nothing until the whole batch came (a client that waits for MAIL's reply first would time
//! out), and LMTP with one reply per recipient after the dot (aiosmtpd's LMTP class sends the
//! handler's one reply). Ports come from the kernel; every wait is bounded.

mod common;

use common::aiosmtpd::Aiosmtpd;
use common::*;
use serde_json::Value;
use std::process::Command;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";

/// One connection of a scripted SMTP server in Python: `MODE` is `smtp`, `pipeline` (answers
/// MAIL, RCPTs and DATA only once DATA came) or `lmtp` (LHLO, one reply per accepted
/// recipient after the dot; `lmtp-refuse` refuses the last one there), or `weak`, `encrypt`,
/// `busy` (AUTH PLAIN answered 534, 538, 454). EXTS is the EHLO
/// extension list (comma-separated), REFUSE the recipients refused at RCPT. AUTH CRAM-MD5 is
/// checked with hmac for alice / s3cret-pw, AUTH XOAUTH2 for alice and the token s3cret-pw
/// (a wrong one gets the 334 error report, then 535 after the client's empty line). At the end it prints one JSON line: every line it
/// got, the message (dot-stuffing undone), the user authenticated, whether MAIL came batched.
const SCRIPTED_PY: &str = r#"
import base64, hmac, json, socket, sys
mode, exts, refuse = sys.argv[1], sys.argv[2], sys.argv[3]
exts = [e for e in exts.split(",") if e]
refuse = set(r for r in refuse.split(",") if r)
user, password = "alice", "s3cret-pw"
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
srv.settimeout(10)
log = {"lines": [], "message": None, "auth": None, "batched": None, "rcpt_ok": []}
def send(text):
    c.sendall((text + "\r\n").encode())
def line():
    raw = f.readline(4096)
    if not raw:
        raise EOFError
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    log["lines"].append(text)
    return text
def message():
    body = b""
    while True:
        raw = f.readline(4096)
        if not raw:
            raise EOFError
        if raw == b".\r\n":
            break
        body += raw[1:] if raw.startswith(b".") else raw
    log["message"] = body.decode("utf-8", "replace")
def rcpt(cmd):
    addr = cmd[cmd.index("<") + 1:cmd.rindex(">")]
    if addr in refuse:
        return "550 5.1.1 no such user"
    log["rcpt_ok"].append(addr)
    return "250 2.1.5 ok"
def after_dot():
    if mode.startswith("lmtp"):
        for i, addr in enumerate(log["rcpt_ok"]):
            last = i + 1 == len(log["rcpt_ok"])
            if mode == "lmtp-refuse" and last:
                send("552 5.2.2 <%s> mailbox full" % addr)
            else:
                send("250 2.0.0 <%s> delivered" % addr)
    else:
        send("250 2.0.0 queued as PY1")
try:
    c, _ = srv.accept()
    c.settimeout(10)
    f = c.makefile("rb")
    send("220 scripted.test ESMTP")
    while True:
        cmd = line()
        up = cmd.upper()
        if up.startswith("EHLO") or up.startswith("LHLO"):
            if mode.startswith("lmtp") != up.startswith("LHLO"):
                send("500 5.5.1 wrong greeting for this protocol")
                continue
            names = ["scripted.test"] + exts
            for e in names[:-1]:
                send("250-" + e)
            send("250 " + names[-1])
        elif up == "AUTH CRAM-MD5":
            challenge = b"<12345.6789@scripted.test>"
            send("334 " + base64.b64encode(challenge).decode())
            answer = line()
            try:
                got_user, digest = base64.b64decode(answer).decode().rsplit(" ", 1)
            except Exception:
                send("501 5.5.2 cannot decode")
                continue
            want = hmac.new(password.encode(), challenge, "md5").hexdigest()
            if got_user == user and hmac.compare_digest(digest, want):
                log["auth"] = got_user
                send("235 2.7.0 ok")
            else:
                send("535 5.7.8 authentication failed")
        elif up.startswith("AUTH PLAIN") and mode in ("weak", "encrypt", "busy"):
            send({"weak": "534 5.7.9 Authentication mechanism is too weak",
                  "encrypt": "538 5.7.11 Encryption required for requested authentication mechanism",
                  "busy": "454 4.7.0 Temporary authentication failure"}[mode])
        elif up.startswith("AUTH XOAUTH2 "):
            got = base64.b64decode(cmd.split(" ", 2)[2])
            if got == ("user=%s\x01auth=Bearer %s\x01\x01" % (user, password)).encode():
                log["auth"] = user
                send("235 2.7.0 ok")
            else:
                send("334 " + base64.b64encode(b'{"status":"401"}').decode())
                line()
                send("535 5.7.8 token rejected")
        elif up.startswith("MAIL FROM:") and mode == "pipeline":
            batch = [cmd]
            while batch[-1].upper() != "DATA":
                batch.append(line())
            log["batched"] = True
            send("250 2.1.0 ok")
            for r in batch[1:-1]:
                send(rcpt(r))
            if log["rcpt_ok"]:
                send("354 go ahead")
                message()
                after_dot()
            else:
                send("554 5.5.1 no valid recipients")
        elif up.startswith("MAIL FROM:"):
            log["batched"] = False
            send("250 2.1.0 ok")
        elif up.startswith("RCPT TO:"):
            send(rcpt(cmd))
        elif up == "DATA":
            send("354 go ahead")
            message()
            after_dot()
        elif up == "QUIT":
            send("221 2.0.0 bye")
            break
        elif up == "RSET":
            send("250 2.0.0 ok")
        else:
            send("502 5.5.2 not implemented")
except (EOFError, OSError):
    pass
print(json.dumps(log), flush=True)
"#;

/// The scripted server, running.
struct Scripted {
    proc: Proc,
    port: u16,
}

impl Scripted {
    fn start(mode: &str, exts: &str, refuse: &str) -> Scripted {
        let py = common::aiosmtpd::aiosmtpd_python();
        let mut cmd = Command::new(py);
        cmd.args(["-c", SCRIPTED_PY, mode, exts, refuse]);
        let mut proc = Proc::spawn(&format!("scripted {mode}"), cmd, In::Null, Out::Pipe);
        let line = proc.wait_stdout_line(10.0, |l| !l.trim().is_empty());
        let port = line.trim().parse().expect("a port");
        Scripted { proc, port }
    }

    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the server saw (its JSON line), waiting up to 10 s.
    fn log(mut self) -> Value {
        let line = self
            .proc
            .wait_stdout_line(10.0, |l| l.trim_start().starts_with('{'));
        serde_json::from_str(&line).expect("the scripted server's JSON")
    }
}

/// `nk smtp --from a@example.test --to b@example.test ARGS SERVER`, bounded to 15 s.
fn send_mail(server: &str, args: &[&str], stdin: In) -> Finished {
    let mut full = vec!["smtp", "--from", "a@example.test", "--to", "b@example.test"];
    full.extend_from_slice(args);
    full.push(server);
    run_nk(&full, stdin, 15.0)
}

/// Panics if the password, or the base64 of anything holding it, appears in `text`.
fn expect_no_secret(what: &str, text: &str) {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    for needle in [
        PASSWORD.to_string(),
        b64(PASSWORD),
        b64(&format!("\0{USER}\0{PASSWORD}")),
    ] {
        assert!(!text.contains(&needle), "{what}: the secret shows:\n{text}");
    }
}

/// `[-v] [--auth MECH] --auth-user alice --auth-password PASSWORD --auth-plaintext REST...`.
fn auth_args<'a>(
    verbose: bool,
    mechanism: Option<&'a str>,
    password: &'a str,
    rest: &[&'a str],
) -> Vec<&'a str> {
    let mut args = Vec::new();
    if verbose {
        args.push("-v");
    }
    if let Some(mechanism) = mechanism {
        args.extend(["--auth", mechanism]);
    }
    args.extend([
        "--auth-user",
        USER,
        "--auth-password",
        password,
        "--auth-plaintext",
    ]);
    args.extend_from_slice(rest);
    args
}

fn lines_of(log: &Value) -> Vec<String> {
    log["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l.as_str().expect("a line").to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// AUTH
// ---------------------------------------------------------------------------

#[test]
fn auth_plain_and_login_against_aiosmtpd_never_show_the_password() {
    let srv = Aiosmtpd::start_auth(USER, PASSWORD);
    // The default: aiosmtpd offers LOGIN and PLAIN, nk prefers PLAIN.
    let args = auth_args(true, None, PASSWORD, &["--body", "hi"]);
    let out = send_mail(&srv.server(), &args, In::Null);
    out.expect_code(0)
        .expect_stderr_contains("-> AUTH PLAIN <user \"alice\" and password, hidden>")
        .expect_stderr_contains("<- 235");
    expect_no_secret("-v transcript (PLAIN)", &out.stderr);
    let stored = srv.message(1);
    assert_eq!(stored.meta["authenticated"], true, "{:#}", stored.meta);
    assert_eq!(stored.meta["login"], USER, "{:#}", stored.meta);

    // LOGIN, the password from a file (first line, its line end dropped).
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pw");
    std::fs::write(&file, format!("{PASSWORD}\r\nsecond line\n")).expect("write");
    let file = file.to_string_lossy().into_owned();
    let args = [
        "-v",
        "--body",
        "hi",
        "--auth",
        "login",
        "--auth-user",
        USER,
        "--auth-password-file",
        &file,
        "--auth-plaintext",
    ];
    let out = send_mail(&srv.server(), &args, In::Null);
    out.expect_code(0)
        .expect_stderr_contains("-> AUTH LOGIN")
        .expect_stderr_contains("-> <password, hidden>");
    expect_no_secret("-v transcript (LOGIN)", &out.stderr);
    assert_eq!(srv.message(2).meta["login"], USER);
}

#[test]
fn auth_refused_with_535_names_it_and_sends_no_mail() {
    let srv = Aiosmtpd::start_auth(USER, PASSWORD);
    for mechanism in ["plain", "login"] {
        let args = [
            "-v",
            "--body",
            "hi",
            "--auth",
            mechanism,
            "--auth-user",
            USER,
            "--auth-password",
            "wrong-one",
            "--auth-plaintext",
        ];
        let out = send_mail(&srv.server(), &args, In::Null);
        out.expect_code(1)
            .expect_stderr_contains("failed: 535")
            .expect_stderr_contains("the user name or password was not accepted");
        assert!(!out.stderr.contains("wrong-one"), "{}", out.describe());
        assert!(!out.stderr.contains("-> MAIL"), "{}", out.describe());
    }
    assert_eq!(srv.count(), 0, "a message was stored");
}

#[test]
fn auth_without_tls_is_a_usage_error_before_connecting() {
    let listener = NoConnect::new();
    let out = send_mail(
        &listener.server(),
        &[
            "--auth-user",
            USER,
            "--auth-password",
            PASSWORD,
            "--body",
            "x",
        ],
        In::Null,
    );
    out.expect_code(2)
        .expect_stderr_contains("without TLS")
        .expect_stderr_contains("hint: add --starttls or --tls, or --auth-plaintext");
    expect_no_secret("the error", &out.stderr);
    listener.expect_none(0.5, "AUTH without TLS");
    // No password and no terminal to ask on: a usage error too.
    let out = send_mail(
        &listener.server(),
        &["--auth", "plain", "--auth-user", USER, "--auth-plaintext"],
        In::Null,
    );
    out.expect_code(2)
        .expect_stderr_contains("needs a password");
    // --auth without a user.
    let out = send_mail(&listener.server(), &["--auth", "plain"], In::Null);
    out.expect_code(2).expect_stderr_contains("--auth-user");
    let out = send_mail(&listener.server(), &["--auth", "digest-md5"], In::Null);
    out.expect_code(2)
        .expect_stderr_contains("unknown mechanism");
    listener.expect_none(0.5, "bad --auth arguments");
}

#[test]
fn auth_over_starttls_needs_no_plaintext_flag() {
    let pki = common::pki::Pki::new();
    let (cert, key) = pki.leaf();
    let srv = Aiosmtpd::start_tls_auth(cert.as_ref(), key.as_ref(), USER, PASSWORD);
    let ca = pki.ca();
    let args = [
        "-v",
        "--starttls",
        "--ca",
        &ca,
        "--auth-user",
        USER,
        "--auth-password",
        PASSWORD,
        "--body",
        "over tls",
    ];
    let out = send_mail(&format!("localhost:{}", srv.port), &args, In::Null);
    out.expect_code(0);
    let lines = out.stderr_lines_unprefixed();
    let tls = lines.iter().position(|l| l.starts_with("TLS 1."));
    let auth = lines.iter().position(|l| l.starts_with("-> AUTH"));
    assert!(
        tls.is_some() && auth.is_some() && tls < auth,
        "AUTH after the handshake\n{}",
        out.describe()
    );
    let stored = srv.message(1);
    assert_eq!(stored.meta["tls"], true);
    assert_eq!(stored.meta["login"], USER);
}

#[test]
fn cram_md5_is_preferred_and_checked_by_a_scripted_server() {
    let srv = Scripted::start("smtp", "AUTH LOGIN PLAIN CRAM-MD5", "");
    let args = auth_args(true, None, PASSWORD, &["--body", "hi"]);
    let out = send_mail(&srv.server(), &args, In::Null);
    out.expect_code(0)
        .expect_stderr_contains("-> AUTH CRAM-MD5")
        .expect_stderr_contains("-> <user \"alice\" and the HMAC-MD5 digest, hidden>");
    expect_no_secret("-v transcript (CRAM-MD5)", &out.stderr);
    let log = srv.log();
    assert_eq!(log["auth"], USER, "{log:#}");
    assert_eq!(
        log["message"].as_str().map(|m| m.ends_with("hi\r\n")),
        Some(true)
    );

    // A wrong password: 535, no MAIL.
    let srv = Scripted::start("smtp", "AUTH CRAM-MD5", "");
    let args = auth_args(false, Some("CRAM-MD5"), "nope", &["--body", "hi"]);
    let out = send_mail(&srv.server(), &args, In::Null);
    out.expect_code(1)
        .expect_stderr_contains("AUTH CRAM-MD5 failed: 535");
    let log = srv.log();
    assert!(
        !lines_of(&log).iter().any(|l| l.starts_with("MAIL")),
        "{log:#}"
    );
}

#[test]
fn xoauth2_sends_the_token_and_reads_the_error_report() {
    for (token, code) in [(PASSWORD, 0), ("expired-token", 1)] {
        let srv = Scripted::start("smtp", "AUTH PLAIN XOAUTH2", "");
        let args = auth_args(true, Some("xoauth2"), token, &["--body", "hi"]);
        let out = send_mail(&srv.server(), &args, In::Null);
        out.expect_code(code)
            .expect_stderr_contains("-> AUTH XOAUTH2 <user \"alice\" and token, hidden>");
        assert!(!out.stderr.contains(token), "{}", out.describe());
        let log = srv.log();
        if code == 0 {
            assert_eq!(log["auth"], USER, "{log:#}");
        } else {
            out.expect_stderr_contains("AUTH XOAUTH2 failed: 535");
            assert!(lines_of(&log).contains(&String::new()), "{log:#}");
        }
    }
}

/// RFC 4954's other refusals (534, 538, 454) are each named with what to do, and no mail goes.
#[test]
fn auth_refusals_534_538_454_say_what_to_do() {
    for (mode, code, says) in [
        ("weak", "534", "the server wants a stronger mechanism"),
        ("encrypt", "538", "over TLS only"),
        ("busy", "454", "a temporary failure on the server's side"),
    ] {
        let srv = Scripted::start(mode, "AUTH PLAIN", "");
        let args = auth_args(false, Some("plain"), PASSWORD, &["--body", "hi"]);
        let out = send_mail(&srv.server(), &args, In::Null);
        out.expect_code(1)
            .expect_stderr_contains(&format!("AUTH PLAIN failed: {code}"))
            .expect_stderr_contains(says);
        expect_no_secret(mode, &out.stderr);
        let log = srv.log();
        assert!(
            !lines_of(&log).iter().any(|l| l.starts_with("MAIL")),
            "{mode}: {log:#}"
        );
    }
}

#[test]
fn a_mechanism_the_server_does_not_offer_is_named() {
    let srv = Scripted::start("smtp", "AUTH PLAIN LOGIN", "");
    let args = auth_args(false, Some("cram-md5"), PASSWORD, &["--body", "hi"]);
    let out = send_mail(&srv.server(), &args, In::Null);
    out.expect_code(1)
        .expect_stderr_contains("does not offer AUTH CRAM-MD5 (it offers PLAIN LOGIN)");
    let log = srv.log();
    assert_eq!(
        lines_of(&log).last().map(String::as_str),
        Some("QUIT"),
        "{log:#}"
    );
}

#[test]
fn the_password_prompt_does_not_echo() {
    // A pseudo-terminal from Python's pty module: nk asks, the "user" types the password.
    let srv = Aiosmtpd::start_auth(USER, PASSWORD);
    let nk = env!("CARGO_BIN_EXE_nk");
    let script = r#"
import os, pty, select, signal, sys, time
nk, server, password = sys.argv[1:4]
pid, fd = pty.fork()
if pid == 0:
    os.execv(nk, [nk, "smtp", "--from", "a@example.test", "--to", "b@example.test",
                  "--body", "typed", "--auth-user", "alice", "--auth-plaintext", server])
seen = b""
deadline = time.time() + 10
sent = False
while time.time() < deadline:
    if not select.select([fd], [], [], 0.2)[0]:
        continue
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if not sent and b"password for alice: " in seen:
        os.write(fd, password.encode() + b"\n")
        sent = True
if time.time() >= deadline:
    os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
sys.stdout.write(repr(seen) + "\n")
sys.stdout.write("exit=%d\n" % os.waitstatus_to_exitcode(status))
"#;
    let out = Command::new(common::aiosmtpd::aiosmtpd_python())
        .args(["-c", script, nk, &srv.server(), PASSWORD])
        .output()
        .expect("run python pty");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("exit=0"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("password for alice: "), "{text}");
    assert!(!text.contains(PASSWORD), "the password was echoed: {text}");
    assert_eq!(srv.message(1).meta["login"], USER);
}

// ---------------------------------------------------------------------------
// --data, --dump-mail
// ---------------------------------------------------------------------------

/// A prepared message with LF line ends, a line starting with a dot and a lone dot line.
const PREPARED: &str = "From: Prepared <p@example.test>\nTo: b@example.test\nSubject: as is\nX-Kept: yes\n\n.leading dot\n.\nlast line\n";

fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

#[test]
fn data_from_a_file_and_stdin_goes_as_it_is() {
    let srv = Aiosmtpd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("msg.eml");
    std::fs::write(&file, PREPARED).expect("write");
    let file = file.to_string_lossy().into_owned();
    send_mail(&srv.server(), &["--data", &file], In::Null).expect_code(0);
    assert_same_bytes("--data FILE", &srv.message(1).content, &crlf(PREPARED));
    send_mail(
        &srv.server(),
        &["--data", "-"],
        In::Bytes(PREPARED.as_bytes().to_vec()),
    )
    .expect_code(0);
    let stored = srv.message(2);
    assert_same_bytes("--data -", &stored.content, &crlf(PREPARED));
    assert_eq!(stored.view_str("subject"), "as is");
    assert_eq!(stored.meta["mail_from"], "a@example.test");
}

#[test]
fn data_from_an_empty_or_closed_stdin_is_refused_before_connecting() {
    let listener = NoConnect::new();
    send_mail(&listener.server(), &["--data", "-"], In::Null)
        .expect_code(2)
        .expect_stderr_contains("--data -: the message is empty");
    // stdin closed altogether (fd 0 not open): the same, and no panic.
    let nk = env!("CARGO_BIN_EXE_nk");
    let script = format!(
        "exec 0<&- ; exec '{nk}' smtp --from a@example.test --to b@example.test --data - {}",
        listener.server()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    let out = Proc::spawn("nk with stdin closed", cmd, In::Null, Out::Pipe).wait(15.0);
    out.expect_code(2)
        .expect_stderr_contains("the message is empty");
    // --data with --body: a usage error.
    send_mail(
        &listener.server(),
        &["--data", "-", "--body", "x"],
        In::Null,
    )
    .expect_code(2);
    listener.expect_none(0.5, "--data with nothing to send");
}

#[test]
fn dump_mail_prints_the_message_and_connects_nowhere() {
    let dump = |args: &[&str], stdin: In| {
        let mut full = vec!["smtp", "--dump-mail", "--from", "a@example.test"];
        full.extend(["--to", "b@example.test"]);
        full.extend_from_slice(args);
        run_nk(&full, stdin, 15.0)
    };
    let out = dump(&["--subject", "Grüße", "--body", ".dot\nsecond"], In::Null);
    out.expect_code(0);
    let text = out.stdout_text();
    assert!(text.starts_with("Date: "), "{}", out.describe());
    assert!(
        text.contains("\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"),
        "{}",
        out.describe()
    );
    // The message itself, not its dot-stuffed wire form and no terminating dot.
    assert!(
        text.ends_with("\r\n\r\n.dot\r\nsecond\r\n"),
        "{}",
        out.describe()
    );
    // --dump-mail with --data shows the prepared message, line ends made CRLF.
    let out = dump(&["--data", "-"], In::Bytes(PREPARED.as_bytes().to_vec()));
    out.expect_code(0).expect_stdout(&crlf(PREPARED));
}

// ---------------------------------------------------------------------------
// --attach
// ---------------------------------------------------------------------------

#[test]
fn attachments_arrive_typed_and_byte_exact() {
    use base64::Engine as _;
    let srv = Aiosmtpd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pdf = dir.path().join("report.pdf");
    let binary = write_random_file(&pdf, 10_000, 7);
    let notes = dir.path().join("notes.data");
    std::fs::write(&notes, "line one\n.line two\n").expect("write");
    let photo = dir.path().join("Фото.JPG");
    std::fs::write(&photo, [0xff, 0xd8, 0xff, 0x00]).expect("write");
    let (pdf, notes, photo) = (
        pdf.to_string_lossy().into_owned(),
        notes.to_string_lossy().into_owned(),
        photo.to_string_lossy().into_owned(),
    );
    let args = [
        "--subject",
        "files",
        "--body",
        "see attached\n",
        "--attach",
        &pdf,
        "--attach-type",
        "text/x-notes",
        "--attach",
        &notes,
        "--attach",
        &photo,
    ];
    send_mail(&srv.server(), &args, In::Null).expect_code(0);
    let stored = srv.message(1);
    assert_eq!(stored.view_str("content_type"), "multipart/mixed");
    let defects = stored.view("defects");
    assert_eq!(
        defects.as_array().map(Vec::len),
        Some(0),
        "{:#}",
        stored.meta
    );
    let parts = stored.view("parts").as_array().expect("parts").clone();
    let decode = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("base64")
    };
    assert_eq!(parts.len(), 4, "{:#}", stored.meta);
    assert_eq!(parts[0][0], "text/plain");
    assert_eq!(decode(&parts[0][2]), b"see attached\r\n");
    assert_eq!(parts[1][0], "application/pdf");
    assert_eq!(parts[1][1], "report.pdf");
    assert_same_bytes("the PDF", &decode(&parts[1][2]), &binary);
    // --attach-type applies to the --attach options after it.
    assert_eq!(parts[2][0], "text/x-notes");
    assert_eq!(decode(&parts[2][2]), b"line one\n.line two\n");
    assert_eq!(parts[3][0], "text/x-notes");
    assert_eq!(parts[3][1], "Фото.JPG");
    assert_eq!(decode(&parts[3][2]), [0xff, 0xd8, 0xff, 0x00]);

    // Without --attach-type the type comes from the extension.
    send_mail(
        &srv.server(),
        &["--body", "x", "--attach", &photo],
        In::Null,
    )
    .expect_code(0);
    let parts = srv.message(2).view("parts").clone();
    assert_eq!(parts[1][0], "image/jpeg", "{parts:#}");
}

#[test]
fn bad_attachments_are_usage_errors_before_connecting() {
    let listener = NoConnect::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "x").expect("write");
    let file = file.to_string_lossy().into_owned();
    for (args, needle) in [
        (
            vec!["--body", "x", "--attach", "/nonexistent/file.pdf"],
            "--attach /nonexistent/file.pdf",
        ),
        (
            vec!["--body", "x", "--attach-type", "pdf", "--attach", &file],
            "is not a MIME type",
        ),
        (
            vec![
                "--body",
                "x",
                "--attach",
                &file,
                "--header",
                "Content-Type: text/html",
            ],
            "multipart structure",
        ),
    ] {
        send_mail(&listener.server(), &args, In::Null)
            .expect_code(2)
            .expect_stderr_contains(needle);
    }
    listener.expect_none(0.5, "bad --attach");
}

// ---------------------------------------------------------------------------
// --pipeline
// ---------------------------------------------------------------------------

#[test]
fn pipeline_sends_mail_rcpts_and_data_in_one_go() {
    // This server answers nothing until DATA came: only a pipelining client gets through.
    let srv = Scripted::start("pipeline", "PIPELINING,8BITMIME", "nobody@example.test");
    let out = run_nk(
        [
            "smtp",
            "-v",
            "--pipeline",
            "--timeout",
            "5",
            "--from",
            "a@example.test",
            "--to",
            "b@example.test",
            "--to",
            "nobody@example.test",
            "--body",
            "piped",
            &srv.server(),
        ],
        In::Null,
        15.0,
    );
    // One recipient refused: the mail goes to the other, exit 1 naming the refusal.
    out.expect_code(1)
        .expect_stderr_contains("RCPT TO:<nobody@example.test> refused: 550")
        .expect_stderr_contains("went in one write");
    let log = srv.log();
    assert_eq!(log["batched"], true, "{log:#}");
    assert_eq!(
        log["message"]
            .as_str()
            .map(|m| m.ends_with("\r\n\r\npiped\r\n")),
        Some(true),
        "{log:#}"
    );

    // The same server without --pipeline: nk waits for MAIL's reply, which never comes.
    let srv = Scripted::start("pipeline", "PIPELINING", "");
    let out = send_mail(&srv.server(), &["--timeout", "1", "--body", "x"], In::Null);
    out.expect_code(1)
        .expect_stderr_contains("no reply to MAIL");
}

#[test]
fn pipeline_without_the_extension_goes_one_command_at_a_time() {
    let srv = Scripted::start("smtp", "8BITMIME", "");
    let out = send_mail(&srv.server(), &["--pipeline", "--body", "x"], In::Null);
    out.expect_code(0)
        .expect_stderr_contains("does not offer PIPELINING");
    assert_eq!(srv.log()["batched"], false);
}

// ---------------------------------------------------------------------------
// --protocol lmtp, -vv
// ---------------------------------------------------------------------------

#[test]
fn lmtp_reads_a_reply_per_recipient_after_the_dot() {
    let srv = Scripted::start("lmtp", "PIPELINING,8BITMIME", "");
    let args = [
        "smtp",
        "--protocol",
        "lmtp",
        "--from",
        "a@example.test",
        "--to",
        "b@example.test",
        "--to",
        "c@example.test",
        "--body",
        "local delivery",
    ];
    let mut full = args.to_vec();
    let server = srv.server();
    full.push(&server);
    let out = run_nk(&full, In::Null, 15.0);
    out.expect_code(0).expect_stdout(
        b"<b@example.test> 250 2.0.0 <b@example.test> delivered\n<c@example.test> 250 2.0.0 <c@example.test> delivered\n",
    );
    let log = srv.log();
    assert!(lines_of(&log)[0].starts_with("LHLO "), "{log:#}");

    // The last recipient refused after the dot: the other got it, exit 1 naming the refusal.
    let srv = Scripted::start("lmtp-refuse", "", "");
    let server = srv.server();
    let mut full = args.to_vec();
    full.push(&server);
    let out = run_nk(&full, In::Null, 15.0);
    out.expect_code(1)
        .expect_stdout(b"<b@example.test> 250 2.0.0 <b@example.test> delivered\n")
        .expect_stderr_contains("message refused for <c@example.test> 552 5.2.2");
    assert_eq!(
        lines_of(&srv.log()).last().map(String::as_str),
        Some("QUIT")
    );
}

#[test]
fn vv_shows_the_message_as_sent_and_v_does_not() {
    let srv = Scripted::start("smtp", "8BITMIME", "");
    let out = send_mail(
        &srv.server(),
        &[
            "-vv",
            "--subject",
            "shown",
            "--body",
            ".hidden dot\nbody text",
        ],
        In::Null,
    );
    out.expect_code(0)
        .expect_stderr_contains("-> Subject: shown")
        .expect_stderr_contains("-> ..hidden dot")
        .expect_stderr_contains("-> body text");
    drop(srv.log());
    let srv = Scripted::start("smtp", "8BITMIME", "");
    let out = send_mail(&srv.server(), &["-v", "--body", "body text"], In::Null);
    out.expect_code(0);
    assert!(!out.stderr.contains("body text"), "{}", out.describe());
    drop(srv.log());
}

// ---------------------------------------------------------------------------
// SMTPUTF8 (RFC 6531) and quoted local parts
// ---------------------------------------------------------------------------

#[test]
fn utf8_and_quoted_addresses_go_with_smtputf8() {
    let srv = Aiosmtpd::start_smtputf8();
    let out = run_nk(
        [
            "smtp",
            "-v",
            "--from",
            "Jörg <jörg@bücher.test>",
            "--to",
            "\"john smith\"@example.test",
            "--to",
            "zoë@example.test",
            "--body",
            "hi",
            &srv.server(),
        ],
        In::Null,
        15.0,
    );
    out.expect_code(0)
        .expect_stderr_contains("-> MAIL FROM:<jörg@bücher.test> SIZE=")
        .expect_stderr_contains("-> RCPT TO:<\"john smith\"@example.test>");
    let stored = srv.message(1);
    assert_eq!(
        stored.meta["mail_from"], "jörg@bücher.test",
        "{:#}",
        stored.meta
    );
    let options = stored.strings(&stored.meta["mail_options"]);
    assert!(options.contains(&"SMTPUTF8".to_string()), "{options:?}");
    assert!(
        options.contains(&"BODY=8BITMIME".to_string()),
        "{options:?}"
    );
    assert_eq!(
        stored.strings(&stored.meta["rcpt_tos"]),
        ["\"john smith\"@example.test", "zoë@example.test"]
    );
    // The header holds the UTF-8 addresses as they are (RFC 6532), and parses back.
    assert_eq!(
        stored.strings(stored.view("to")),
        ["\"john smith\"@example.test", "zoë@example.test"],
        "{:#}",
        stored.meta
    );
    assert_eq!(stored.strings(stored.view("from")), ["jörg@bücher.test"]);
}

#[test]
fn a_utf8_local_part_without_smtputf8_is_refused_and_a_utf8_domain_goes_in_a_labels() {
    let srv = Aiosmtpd::start();
    let out = send_mail(
        &srv.server(),
        &["--to", "zoë@example.test", "--body", "hi"],
        In::Null,
    );
    out.expect_code(1)
        .expect_stderr_contains("needs SMTPUTF8 (RFC 6531), which the server does not offer");
    assert_eq!(srv.count(), 0);
    let out = run_nk(
        [
            "smtp",
            "--from",
            "a@example.test",
            "--to",
            "Zoe <zoe@bücher.test>",
            "--body",
            "hi",
            &srv.server(),
        ],
        In::Null,
        15.0,
    );
    out.expect_code(0);
    let stored = srv.message(1);
    assert_eq!(
        stored.strings(&stored.meta["rcpt_tos"]),
        ["zoe@xn--bcher-kva.test"]
    );
    let options = stored.strings(&stored.meta["mail_options"]);
    assert!(!options.contains(&"SMTPUTF8".to_string()), "{options:?}");
}

// ---------------------------------------------------------------------------
// side by side with swaks
// ---------------------------------------------------------------------------

#[test]
fn swaks_and_nk_deliver_the_same_prepared_message_after_the_same_auth() {
    require_tool("swaks", "swaks");
    let srv = Aiosmtpd::start_auth(USER, PASSWORD);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("msg.eml");
    std::fs::write(&file, PREPARED).expect("write");
    let file = file.to_string_lossy().into_owned();
    let mut swaks = Command::new("swaks");
    swaks.args([
        "--server",
        &srv.server(),
        "--from",
        "a@example.test",
        "--to",
        "b@example.test",
        "--auth",
        "PLAIN",
        "--auth-user",
        USER,
        "--auth-password",
        PASSWORD,
        "--data",
        &file,
    ]);
    let out = Proc::spawn("swaks", swaks, In::Null, Out::Pipe).wait(15.0);
    out.expect_code(0);
    let args = auth_args(false, Some("plain"), PASSWORD, &["--data", &file]);
    send_mail(&srv.server(), &args, In::Null).expect_code(0);
    let (by_swaks, by_nk) = (srv.message(1), srv.message(2));
    // nk sends the file exactly; swaks ends every --data with one more empty line.
    assert_same_bytes("nk", &by_nk.content, &crlf(PREPARED));
    let mut swaks_less_its_line = by_swaks.content.clone();
    assert!(swaks_less_its_line.ends_with(b"\r\n\r\n"));
    swaks_less_its_line.truncate(swaks_less_its_line.len() - 2);
    assert_same_bytes("nk against swaks", &by_nk.content, &swaks_less_its_line);
    assert_eq!(by_swaks.meta["login"], USER);
    assert_eq!(by_nk.meta["login"], USER);
    // swaks shows the password in base64 in its transcript; nk never does.
    use base64::Engine as _;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    assert!(out.stdout_text().contains(&plain), "{}", out.describe());
}
