//! `nk smtp`: send one mail through an SMTP server, checking every reply (like swaks).
//!
//! The seed program wrote its whole dialogue in one burst without reading a reply; this one
//! follows RFC 5321 step by step: it waits for the 220 banner, says EHLO (HELO when EHLO is
//! refused), keeps the capabilities it needs (SIZE, 8BITMIME), and stops at the first reply
//! that refuses a stage, with that reply and the stage in the error, after a polite QUIT.
//! Each reply, all its lines together, must come within its timeout: 30 s for the banner
//! (swaks'), RFC 5321 §4.5.3.2's after it, or `--timeout`; a deadline fixed when the reply is
//! awaited bounds every read of it, so a server dripping lines cannot stretch it. All user
//! input is checked before connecting (`wire::smtp`), so nothing is sent for a bad argument.

use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::{Args, ValueEnum};
use socket2::Socket;

use crate::cli::{FamilyArgs, TlsTrustArgs};
use crate::exit::Hinted;
use crate::exit::{usage, Reported, Status, UsageError};
use crate::net::addr;
use crate::net::connect::{self, ConnectOptions};
use crate::net::deadline::{format_duration, is_timeout, parse_timeout, read_before, Deadline};
use crate::net::service_names::Proto;
use crate::net::tls;
use crate::wire::http::parse_header;
use crate::wire::smtp::{self, Address, Message, Reply, ReplyParser, Transfer};
use crate::wire::smtp_auth::{self, Mechanism};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest wait for the banner unless --timeout says otherwise: swaks' 30 s. RFC 5321's
/// 5 minutes suit a relay that queues mail; a person at a terminal, or a script probing a
/// server that will never speak (a TLS port, a tarpit), should hear sooner.
const BANNER_TIMEOUT: Duration = Duration::from_secs(30);

/// The port of SMTP over implicit TLS (RFC 8314): a server there says nothing in clear.
const SMTPS_PORT: u16 = 465;

/// The largest message body read from a file or stdin.
const MAX_BODY: u64 = 64 << 20;

/// Where to stop early (swaks' --quit-after).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Stage {
    /// Right after connecting: the same as banner (nk waits for the banner before QUIT, as
    /// swaks does).
    Connect,
    /// After the 220 banner.
    Banner,
    /// After EHLO/HELO.
    Helo,
    /// After the TLS handshake (--tls or --starttls) and the EHLO that follows it.
    Tls,
    /// After AUTH (--auth).
    Auth,
    /// After MAIL FROM.
    Mail,
    /// After the RCPT TOs.
    Rcpt,
}

/// Send a mail through an SMTP server, checking every reply (like swaks).
#[derive(Debug, Args)]
#[command(
    long_about = "Send one mail through an SMTP server (port 25 by default): wait for the 220 \
        banner, EHLO (HELO when EHLO is refused), MAIL FROM, RCPT TO for each recipient, DATA, \
        the message, `.`, QUIT. Every reply is checked (multi-line replies too); the first \
        refusal ends the dialogue with QUIT, and nk prints the stage and the server's reply \
        and exits 1. The server's final reply (e.g. `250 2.0.0 Ok: queued`) goes to stdout.\n\n\
        Recipients: when the server refuses some recipients and accepts others, the mail is \
        still sent to the accepted ones; each refusal is printed on stderr and nk exits 1. \
        When it refuses them all, no DATA is sent.\n\n\
        The message has Date, From, To, Subject (RFC 2047 encoded when not ASCII), Message-ID \
        (<random@HELO-NAME>), MIME-Version and Content-Type (text/plain; UTF-8), then the \
        --header fields. The body (--body, --body-file, or stdin) is sent with CRLF line ends \
        and dot-stuffed; 8-bit bodies go as 8bit with BODY=8BITMIME where the server offers \
        it, as quoted-printable otherwise. A body with a NUL byte always goes quoted-printable \
        (=00): 7bit and 8bit data may not hold NULs (RFC 2045), and encoding keeps the bytes \
        exact where refusing would leave no way to send them (swaks sends them raw). A \
        message larger than the server's SIZE is refused before MAIL FROM. A CR or LF in any \
        address or header value, or a body line over 998 octets, is a usage error (exit 2) \
        and nothing is sent.\n\n\
        Addresses: 'Name <user@domain>' or user@domain. The local part may be quoted \
        ('\"john smith\"@x.test') and may hold UTF-8: then the server must offer SMTPUTF8 \
        (RFC 6531), MAIL gets SMTPUTF8 and the headers carry the addresses in UTF-8 (RFC \
        6532); without it nothing is sent (exit 1). A UTF-8 domain after an ASCII local \
        part goes in A-labels (xn--..., STD3 rules: letters, digits and - only), which every server takes. A display name with anything but \
        atoms and spaces is written as an RFC 5322 quoted-string (`Doe, Jane` -> \
        `\"Doe, Jane\"`, with \\ and \" escaped); a name already quoted is kept as given; a \
        non-ASCII name becomes RFC 2047 encoded-words. Encoded-words are at most 75 \
        characters, each line holding one at most 76, split between whole UTF-8 characters. \
        --from '<>' sends the null reverse-path (MAIL FROM:<>) and writes From: \
        MAILER-DAEMON@HELO-NAME (after the display name, if one was given), as Postfix's \
        bounces do: a From header must hold a mailbox, and <> is none. A HELO name that is \
        not a valid mail domain gives `localhost` there and in the Message-ID.\n\n\
        Timeouts: each bounds a whole reply, all its lines together (a reply may have at most \
        256 lines of 512 octets). The banner may take 30 s (swaks' default); then RFC 5321's \
        timeouts apply: 5 minutes for EHLO, MAIL and RCPT, 2 for DATA, 10 for the final `.`. \
        --timeout DUR replaces them all. When nothing at all comes on port 465, a hint says \
        to try --tls. --quit-after connect, like banner, waits for the banner before QUIT.\n\n\
        TLS: --starttls says STARTTLS after EHLO, and after the server's 220 runs the \
        handshake and says EHLO again; a server that does not offer STARTTLS ends the \
        dialogue (nothing is sent in clear). Bytes the server sent after its 220 to STARTTLS \
        are discarded, never read as replies (a warning says so: that is how plaintext \
        injection works). --tls speaks TLS from the first byte (SMTPS, port 465 by default). \
        The certificate is checked against the system store (SSL_CERT_FILE and SSL_CERT_DIR \
        honoured), then webpki-roots, or --ca FILE; --insecure skips the check; a failure \
        names its reason. -v shows the dialogue, the TLS version, suite and the server \
        certificate.\n\n\
        Other messages: --data FILE|- sends a prepared RFC 5322 message as it is (line \
        ends made CRLF, dot-stuffed; nothing added; 8-bit with BODY=8BITMIME where offered, \
        as it is with a warning otherwise). --attach FILE (repeatable) makes the message \
        multipart/mixed: the body first (text/plain), then each file in base64, its type \
        guessed from the extension (a small table: txt, html, csv, pdf, png, jpg, zip, gz, \
        json, ...; application/octet-stream otherwise, swaks' default for all) or set by \
        --attach-type TYPE for every --attach after it (swaks' rule); non-ASCII file names \
        go as RFC 2231 parameters. --dump-mail prints the message on stdout (as to a server \
        offering 8BITMIME) and sends nothing; no server is needed. Stdin (the body, or \
        --data -) is read to its end before nk connects, so no server waits on it: a closed \
        stdin is an empty one (an empty --data is a usage error), and on a terminal a note \
        says to end with Ctrl-D.\n\n\
        Dialogue: --pipeline sends MAIL FROM, every RCPT TO and DATA in one write when the \
        server offers PIPELINING (RFC 2920) and reads their replies in order (a warning \
        when it does not: one command at a time). --protocol lmtp says LHLO (RFC 2033; port \
        24 by default) and reads one reply per accepted recipient after the message: stdout \
        gets `<RCPT> REPLY` for each delivery, stderr each refusal (exit 1). --protocol smtp \
        says HELO only. -vv shows the message in the transcript as it goes on the wire.\n\n\
        AUTH (RFC 4954): --auth MECH (PLAIN, LOGIN, CRAM-MD5, XOAUTH2) or --auth-user alone \
        (the best the server offers: CRAM-MD5, then PLAIN, then LOGIN; XOAUTH2 only when \
        asked, its secret being a token). The password comes from --auth-password, the first \
        line of --auth-password-file, or a prompt on the terminal that does not echo. AUTH \
        goes after TLS; without --tls or --starttls it is refused (exit 2, nothing sent) \
        unless --auth-plaintext. The password never appears in -v's transcript nor in an \
        error: the AUTH lines show the user and `hidden` in its place (swaks shows base64 \
        unless --auth-hide-password). A refusal names its code: 535 (user or password not \
        accepted), 534 (a stronger mechanism wanted), 538, 454; exit 1, no mail sent.",
    after_long_help = "Examples:\n  \
        nk smtp --from me@example.test --to you@example.test --subject hi --body 'hello' 127.0.0.1:2525\n  \
        echo 'the body' | nk smtp -v --from a@x.test --to b@y.test --to c@z.test mail.example.test\n  \
        nk smtp --quit-after rcpt --from a@x.test --to b@y.test mx.example.test   # test a recipient\n  \
        nk smtp --starttls --ca ca.pem --from a@x.test --to b@y.test --body hi localhost:587\n  \
        nk smtp --tls --quit-after tls -v --from a@x.test --to b@y.test smtp.example.test\n  \
        nk smtp --dump-mail --from a@x.test --to b@y.test --body 'see attached' --attach report.pdf\n  \
        nk smtp --data message.eml --pipeline --from a@x.test --to b@y.test mail.example.test\n  \
        nk smtp --protocol lmtp --from a@x.test --to b@y.test --to c@y.test --body hi 127.0.0.1:24\n  \
        nk smtp --starttls --auth-user me --auth-password-file ~/.smtp-pw --from me@x.test --to b@y.test smtp.example.test:587\n  \
        nk smtp --proxy socks5h://127.0.0.1:1080 --from a@x.test --to b@y.test mail.example.test"
)]
pub struct SmtpArgs {
    /// SERVER[:PORT] (port 25 by default, 465 with --tls, 24 with --protocol lmtp).
    #[arg(value_name = "SERVER[:PORT]", required_unless_present = "dump_mail")]
    pub server: Option<String>,
    /// The port, when not given with the server (SERVER PORT as two arguments).
    #[arg(value_name = "PORT")]
    pub port: Option<String>,
    /// The sender (`user@domain` or `'Name <user@domain>'`; `<>` for the null sender, with
    /// `From: MAILER-DAEMON@HELO-NAME` in the header).
    #[arg(long, value_name = "ADDR")]
    pub from: String,
    /// A recipient (repeatable).
    #[arg(long, value_name = "ADDR", required = true)]
    pub to: Vec<String>,
    /// The Subject (any text; encoded when not ASCII).
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,
    /// An extra header 'Name: value' (repeatable; replaces a generated one of that name).
    #[arg(long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,
    /// The body text (otherwise --body-file, otherwise stdin).
    #[arg(long, value_name = "TEXT", conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Send this prepared RFC 5322 message (headers and body) as it is, from FILE or `-`
    /// (stdin): line ends made CRLF and dot-stuffed, nothing added.
    #[arg(
        long,
        value_name = "FILE|-",
        conflicts_with_all = ["body", "body_file", "subject", "headers", "attach"]
    )]
    pub data: Option<String>,
    /// Attach FILE (repeatable; swaks' @FILE too): the message becomes multipart/mixed, the
    /// body its first part, each file a base64 part typed from its extension.
    #[arg(long, value_name = "FILE")]
    pub attach: Vec<String>,
    /// The MIME type of every --attach that follows (as in swaks), instead of the guess.
    #[arg(long, value_name = "TYPE/SUBTYPE", requires = "attach")]
    pub attach_type: Vec<String>,
    /// Print the message that would be sent (as to a server offering 8BITMIME) on stdout,
    /// and send nothing.
    #[arg(long, conflicts_with_all = ["quit_after", "port"])]
    pub dump_mail: bool,
    /// Send MAIL FROM, the RCPT TOs and DATA in one write when the server offers PIPELINING
    /// (RFC 2920), then read their replies in order.
    #[arg(long)]
    pub pipeline: bool,
    /// esmtp (EHLO, HELO when refused), smtp (HELO only) or lmtp (RFC 2033: LHLO, a reply
    /// per recipient after the message; port 24 by default).
    #[arg(long, value_name = "PROTO", default_value = "esmtp")]
    pub protocol: Protocol,
    /// Read the body from FILE.
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<String>,
    /// The name given in EHLO/HELO and in the Message-ID (default: this host's name).
    #[arg(long, value_name = "NAME")]
    pub helo: Option<String>,
    /// Stop (with QUIT) after this stage, sending no mail.
    #[arg(long, value_name = "STAGE")]
    pub quit_after: Option<Stage>,
    /// Connection timeout (also bounds the name lookup). Default 30s.
    #[arg(short = 'w', long = "connect-timeout", value_name = "DUR", value_parser = parse_timeout)]
    pub connect_timeout: Option<Duration>,
    /// Wait at most DUR for each whole reply, the banner included (instead of 30s for the
    /// banner and RFC 5321's per-stage timeouts after it).
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub family: FamilyArgs,
    /// After EHLO, say STARTTLS and go on over TLS (refused if the server does not offer it).
    #[arg(long, conflicts_with = "tls", help_heading = "TLS")]
    pub starttls: bool,
    /// Speak TLS from the first byte (SMTPS; port 465 by default).
    #[arg(long, help_heading = "TLS")]
    pub tls: bool,
    #[command(flatten)]
    pub trust: TlsTrustArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub proxy: crate::cli::ProxyArgs,
}

/// The dialect spoken (swaks' --protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// EHLO, and HELO when EHLO is refused.
    Esmtp,
    /// HELO only: no extensions.
    Smtp,
    /// LMTP (RFC 2033): LHLO, and one reply per accepted recipient after the message.
    Lmtp,
}

/// SMTP AUTH (RFC 4954).
#[derive(Debug, Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthArgs {
    /// Authenticate before MAIL FROM with this mechanism: PLAIN, LOGIN, CRAM-MD5, XOAUTH2, or
    /// auto (the default when only --auth-user is given): CRAM-MD5, then PLAIN, then LOGIN,
    /// whichever the server offers first. XOAUTH2 is used only when asked (its secret is a
    /// token).
    #[arg(long = "auth", value_name = "MECH", value_parser = parse_mechanism)]
    pub mechanism: Option<AuthRequest>,
    /// The user name to authenticate as (implies --auth auto).
    #[arg(long, value_name = "USER")]
    pub auth_user: Option<String>,
    /// The password (XOAUTH2: the access token). Without it and without
    /// --auth-password-file, nk asks for it on the terminal (not echoed).
    #[arg(long, value_name = "PASS", conflicts_with = "auth_password_file")]
    pub auth_password: Option<String>,
    /// Read the password from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub auth_password_file: Option<String>,
    /// Allow AUTH over a connection without TLS (the password, or for CRAM-MD5 a digest open
    /// to offline guessing, would cross the network readable by anyone on the path).
    #[arg(long)]
    pub auth_plaintext: bool,
}

/// What --auth asked for: one mechanism, or the best the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRequest {
    Auto,
    Only(Mechanism),
}

fn parse_mechanism(text: &str) -> Result<AuthRequest, String> {
    if text.eq_ignore_ascii_case("auto") {
        return Ok(AuthRequest::Auto);
    }
    Mechanism::parse(text)
        .map(AuthRequest::Only)
        .ok_or_else(|| {
            format!("unknown mechanism \"{text}\" (PLAIN, LOGIN, CRAM-MD5, XOAUTH2 or auto)")
        })
}

/// The credentials, checked before connecting. The secret is never formatted by Debug.
struct Credentials {
    asked: Option<Mechanism>,
    user: String,
    secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("asked", &self.asked)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The longest password nk reads from a file or the terminal.
const MAX_SECRET: usize = 16 << 10;

impl AuthArgs {
    /// The credentials when AUTH was asked for (usage errors for what is missing or unsafe).
    fn credentials(&self, tls: bool) -> Result<Option<Credentials>> {
        let asked = match (self.mechanism, &self.auth_user) {
            (None, None) => {
                if self.auth_password.is_some() || self.auth_password_file.is_some() {
                    return Err(usage("--auth-password needs --auth-user"));
                }
                return Ok(None);
            }
            (Some(AuthRequest::Only(m)), _) => Some(m),
            (Some(AuthRequest::Auto) | None, _) => None,
        };
        let Some(user) = self.auth_user.clone() else {
            return Err(usage("--auth needs --auth-user USER"));
        };
        if user.chars().any(char::is_control) {
            return Err(usage(
                "--auth-user: the user name holds a control character",
            ));
        }
        if !tls && !self.auth_plaintext {
            return Err(anyhow::Error::new(
                UsageError::new(
                    "--auth over a connection without TLS would let anyone on the path read \
                     the credentials; nothing was sent",
                )
                .with_hint(
                    "add --starttls or --tls, or --auth-plaintext to send them in clear anyway",
                ),
            ));
        }
        let secret = match (&self.auth_password, &self.auth_password_file) {
            (Some(password), _) => password.clone(),
            (None, Some(path)) => read_secret_file(path)?,
            (None, None) => prompt_secret(&user)?,
        };
        if secret.contains('\0') || (asked == Some(Mechanism::XOAuth2) && secret.contains('\x01')) {
            return Err(usage("the password holds a byte AUTH cannot carry (NUL)"));
        }
        Ok(Some(Credentials {
            asked,
            user,
            secret,
        }))
    }
}

/// The first line of FILE, its line end removed.
fn read_secret_file(path: &str) -> Result<String> {
    let file = std::fs::File::open(path)
        .map_err(|e| usage(format!("--auth-password-file {path}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| usage(format!("--auth-password-file {path}: {e}")))?;
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_SECRET {
        return Err(usage(format!(
            "--auth-password-file {path}: the first line is longer than {} KiB",
            MAX_SECRET >> 10
        )));
    }
    String::from_utf8(line.to_vec()).map_err(|_| {
        usage(format!(
            "--auth-password-file {path}: the password is not UTF-8"
        ))
    })
}

/// Asks for the password on the terminal (stdin), with echo off. A Ctrl-C while asking
/// restores the terminal before nk ends, so the shell is not left without echo.
fn prompt_secret(user: &str) -> Result<String> {
    const STDIN: libc::c_int = 0;
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "--auth needs a password: --auth-password, --auth-password-file, or a terminal on \
             stdin to ask on",
        ));
    }
    // SAFETY: a zeroed termios is a valid value for tcgetattr to fill.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr writes into the termios we own, for a descriptor that is a terminal.
    if unsafe { libc::tcgetattr(STDIN, &mut term) } != 0 {
        return Err(io::Error::last_os_error()).context("read the terminal's settings");
    }
    let saved = term;
    term.c_lflag &= !libc::ECHO;
    // SAFETY: the handler calls only tcsetattr (async-signal-safe) and the default action.
    let guard = unsafe {
        signal_hook::low_level::register(libc::SIGINT, move || {
            libc::tcsetattr(STDIN, libc::TCSANOW, &saved);
            signal_hook::low_level::emulate_default_handler(libc::SIGINT).ok();
        })
    }
    .context("set up the password prompt")?;
    // Echo goes off before the prompt shows: a password typed (or pasted) the moment the
    // prompt appears must not be echoed.
    // SAFETY: tcsetattr reads the termios we own.
    let set = unsafe { libc::tcsetattr(STDIN, libc::TCSAFLUSH, &term) };
    eprint!("nk: password for {user}: ");
    let mut line = Vec::new();
    let read = if set == 0 {
        io::stdin()
            .lock()
            .take(MAX_SECRET as u64 + 1)
            .read_until(b'\n', &mut line)
            .map(|_| ())
    } else {
        Err(io::Error::last_os_error())
    };
    // SAFETY: as above, with the settings saved before.
    unsafe { libc::tcsetattr(STDIN, libc::TCSANOW, &saved) };
    signal_hook::low_level::unregister(guard);
    eprintln!();
    read.context("read the password from the terminal")?;
    if !line.ends_with(b"\n") {
        return Err(usage("no password was typed (end of input)"));
    }
    line.pop();
    if line.ends_with(b"\r") {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| usage("the password typed is not UTF-8"))
}

/// RFC 5321 §4.5.3.2's minimum timeouts.
fn rfc_timeout(command: &str) -> Duration {
    match command {
        "DATA" => Duration::from_secs(120),
        "." => Duration::from_secs(600),
        _ => Duration::from_secs(300),
    }
}

/// The socket replies are read from, with the deadline of the reply being read. Every read
/// waits only for what is left of that deadline, so a server that drips a line at a time (or
/// a byte at a time) cannot stretch one reply beyond its timeout, as SO_RCVTIMEO set once
/// would let it: that timer restarts on every read.
struct Timed {
    socket: Socket,
    deadline: Deadline,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_before(&self.socket, self.deadline, |mut s| s.read(buf))?
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    }
}

/// The wait for the reply to `command`: --timeout, or 30 s for the banner, or RFC 5321's.
fn reply_timeout(timeout: Option<Duration>, command: &str) -> Duration {
    match (timeout, command) {
        (Some(timeout), _) => timeout,
        (None, "banner") => BANNER_TIMEOUT,
        (None, _) => rfc_timeout(command),
    }
}

/// The connection and the dialogue's state.
struct Session {
    /// Replies come through here: the TCP connection, or the plaintext side of its TLS bridge.
    reader: BufReader<Timed>,
    /// The same connection, for commands.
    writer: Socket,
    server: String,
    timeout: Option<Duration>,
    /// The server is on port 465 and nk speaks plain SMTP to it: a silent banner there most
    /// likely means it waits for a TLS handshake.
    hint_tls: bool,
}

impl Session {
    fn new(stream: Socket, server: String, timeout: Option<Duration>) -> Result<Session> {
        let writer = stream.try_clone().context("clone the socket")?;
        Ok(Session {
            reader: BufReader::new(Timed {
                socket: stream,
                deadline: Deadline::NEVER,
            }),
            writer,
            server,
            timeout,
            hint_tls: false,
        })
    }

    /// Replaces the connection with TLS over it. Bytes already read past the last reply are
    /// dropped (they came in clear and could have been injected by anyone on the path); the
    /// count is returned for the warning.
    fn start_tls(self, tls: &Tls) -> Result<(Session, usize)> {
        let Session {
            reader,
            writer,
            server,
            timeout,
            hint_tls: _,
        } = self;
        let discarded = reader.buffer().len();
        drop(writer);
        let tcp = TcpStream::from(reader.into_inner().socket);
        let plain = tls.connect(tcp, &server, timeout)?;
        Ok((Session::new(plain, server, timeout)?, discarded))
    }

    /// EHLO (or LHLO), or HELO when EHLO is refused or asked for. Returns the reply and
    /// whether it lists extensions.
    fn hello(&mut self, helo: &str, protocol: Protocol) -> Result<(Reply, bool)> {
        if protocol == Protocol::Lmtp {
            let hello = self.command(&format!("LHLO {helo}"))?;
            if !hello.is_success() {
                return Err(self.refused("LHLO", &hello));
            }
            return Ok((hello, true));
        }
        if protocol == Protocol::Esmtp {
            let hello = self.command(&format!("EHLO {helo}"))?;
            if hello.is_success() {
                return Ok((hello, true));
            }
            if !hello.is_permanent_failure() {
                return Err(self.refused("EHLO", &hello));
            }
        }
        let hello = self.command(&format!("HELO {helo}"))?;
        if !hello.is_success() {
            return Err(self.refused("HELO", &hello));
        }
        Ok((hello, false))
    }

    /// Sends one command line (CRLF added) and shows it with -v.
    fn send(&mut self, line: &str) -> Result<()> {
        crate::info!("-> {line}");
        let what = first_word(line).to_string();
        self.write_all(format!("{line}\r\n").as_bytes(), line, &what)
    }

    /// Writes `bytes` within the timeout of `command`'s reply, for all the writes together: a
    /// server that stops reading (a full window) cannot hold nk, nor one that reads a byte
    /// at a time stretch the wait, as a per-write SO_SNDTIMEO would let it.
    fn write_all(&mut self, mut bytes: &[u8], command: &str, what: &str) -> Result<()> {
        let wait = self.wait_for(command);
        let deadline = Deadline::after(Some(wait));
        let context = || format!("smtp {}: send {what}", self.server);
        while !bytes.is_empty() {
            let left = deadline.remaining().map_err(|_| {
                anyhow!(
                    "smtp {}: could not send {what} within {} (the server does not read)",
                    self.server,
                    format_duration(wait)
                )
            })?;
            self.writer.set_write_timeout(left).with_context(context)?;
            match self.writer.write(bytes) {
                Ok(0) => return Err(anyhow!("{}: the connection is closed", context())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if crate::net::deadline::is_retry(&e) => {}
                Err(e) => return Err(e).with_context(context),
            }
        }
        Ok(())
    }

    /// How long the reply to `command` may take, all its lines together.
    fn wait_for(&self, command: &str) -> Duration {
        reply_timeout(self.timeout, command)
    }

    /// Reads one reply, all its lines within the stage's timeout (at most
    /// [`smtp::MAX_REPLY_LINES`] lines of [`smtp::MAX_REPLY_LINE`] octets).
    fn reply(&mut self, command: &str) -> Result<Reply> {
        let wait = self.wait_for(command);
        self.reader.get_mut().deadline = Deadline::after(Some(wait));
        let mut parser = ReplyParser::default();
        let mut line = Vec::new();
        let mut lines = 0usize;
        loop {
            line.clear();
            let got = (&mut self.reader)
                .take(smtp::MAX_REPLY_LINE as u64 + 1)
                .read_until(b'\n', &mut line);
            let got = match got {
                Ok(n) => n,
                Err(e) if is_timeout(&e) => return Err(self.timed_out(command, wait, lines, &line)),
                Err(e) => {
                    return Err(e).with_context(|| format!("smtp {}: read the reply", self.server))
                }
            };
            if got == 0 {
                return Err(anyhow!(
                    "smtp {}: the server closed the connection (waiting for the reply to {})",
                    self.server,
                    first_word(command)
                ));
            }
            lines += 1;
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            crate::info!("<- {}", String::from_utf8_lossy(text));
            if let Some(reply) = parser
                .line(text)
                .map_err(|e| anyhow!("smtp {}: {e}", self.server))?
            {
                return Ok(reply);
            }
        }
    }

    /// The error for a reply that was not complete within `wait`: how much of it came, and
    /// on port 465 a hint when nothing at all came.
    fn timed_out(
        &self,
        command: &str,
        wait: Duration,
        lines: usize,
        partial: &[u8],
    ) -> anyhow::Error {
        let verb = first_word(command);
        let within = format_duration(wait);
        if lines == 0 && partial.is_empty() {
            let message = format!("smtp {}: no reply to {verb} within {within}", self.server);
            if self.hint_tls && command == "banner" {
                return anyhow::Error::new(Hinted {
                    message: format!("{message} (nothing at all came)"),
                    hint: format!(
                        "port {SMTPS_PORT} usually speaks TLS from the first byte (SMTPS): try --tls"
                    ),
                });
            }
            return anyhow!(message);
        }
        anyhow!(
            "smtp {}: the reply to {verb} was not complete within {within} ({lines} {} came; \
             --timeout bounds the whole reply)",
            self.server,
            if lines == 1 { "line" } else { "lines" }
        )
    }

    /// Sends several commands in one write (PIPELINING, RFC 2920), each shown with -v.
    fn send_batch(&mut self, lines: &[&str]) -> Result<()> {
        let mut bytes = Vec::new();
        for line in lines {
            crate::info!("-> {line}");
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        crate::info!(
            "   (the {} commands above went in one write: PIPELINING)",
            lines.len()
        );
        self.write_all(&bytes, "MAIL", "the pipelined commands")
    }

    /// Sends one AUTH line: the secret goes on the wire, the transcript shows it hidden.
    fn send_step(&mut self, step: &smtp_auth::Step) -> Result<()> {
        crate::info!("-> {}", step.shown);
        self.write_all(format!("{}\r\n", step.line).as_bytes(), "AUTH", "AUTH")
    }

    /// RFC 4954's dialogue: AUTH, then an answer to each 334 until 235 or a refusal. A
    /// challenge nk cannot answer is cancelled with `*`.
    fn authenticate(&mut self, hello: &Reply, credentials: &Credentials) -> Result<()> {
        let offered = smtp_auth::offered(hello.extension("AUTH").unwrap_or(""));
        let mechanism = smtp_auth::choose(credentials.asked, &offered).map_err(|e| {
            self.quit();
            anyhow!("smtp {}: {e}", self.server)
        })?;
        let (user, secret) = (&credentials.user, &credentials.secret);
        self.send_step(&smtp_auth::first_step(mechanism, user, secret))?;
        // LOGIN needs two rounds, CRAM-MD5 one, XOAUTH2 one for its error report: a server
        // asking for more is cancelled.
        for round in 1..=3 {
            let reply = self.reply("AUTH")?;
            if reply.code == 235 {
                return Ok(());
            }
            if reply.code != 334 {
                let meaning = smtp_auth::refusal_meaning(reply.code);
                self.quit();
                return Err(anyhow!(
                    "smtp {}: AUTH {mechanism} failed: {reply} ({meaning})",
                    self.server
                ));
            }
            let challenge = reply.lines.first().map_or("", String::as_str);
            match smtp_auth::answer(mechanism, round, challenge, user, secret) {
                Ok(Some(step)) => self.send_step(&step)?,
                Ok(None) => break,
                Err(e) => {
                    let _ = self.command("*");
                    self.quit();
                    return Err(anyhow!("smtp {}: AUTH {mechanism}: {e}", self.server));
                }
            }
        }
        let _ = self.command("*");
        self.quit();
        Err(anyhow!(
            "smtp {}: AUTH {mechanism}: the server asked for more than the mechanism has to say; cancelled",
            self.server
        ))
    }

    /// Sends a command and reads its reply.
    fn command(&mut self, line: &str) -> Result<Reply> {
        self.send(line)?;
        self.reply(line)
    }

    /// QUIT, best effort: the dialogue is over whatever the server says.
    fn quit(&mut self) {
        if self.send("QUIT").is_ok() {
            self.timeout = Some(
                self.timeout
                    .unwrap_or(Duration::from_secs(10))
                    .min(Duration::from_secs(10)),
            );
            let _ = self.reply("QUIT");
        }
    }

    /// Ends the dialogue after a refusal: QUIT, then the error naming the stage.
    fn refused(&mut self, stage: &str, reply: &Reply) -> anyhow::Error {
        self.quit();
        anyhow!("smtp {}: {stage} failed: {reply}", self.server)
    }
}

/// What TLS needs: the client configuration and the name to verify the server by.
struct Tls {
    config: Arc<rustls::ClientConfig>,
    name: String,
}

impl Tls {
    /// The handshake over `tcp` (bounded by --timeout when given), then the plaintext side.
    fn connect(&self, tcp: TcpStream, server: &str, timeout: Option<Duration>) -> Result<Socket> {
        let limit = timeout.unwrap_or(tls::HANDSHAKE_TIMEOUT);
        tls::connect(tcp, Arc::clone(&self.config), &self.name, server, limit)
            .map(tls::Bridge::into_socket)
    }
}

fn first_word(line: &str) -> &str {
    if line.starts_with("MAIL") || line.starts_with("RCPT") {
        return line.split(':').next().unwrap_or(line);
    }
    line.split(' ').next().unwrap_or(line)
}

/// This host's name, for EHLO when --helo is not given.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Reads `source` to its end, at most [`MAX_BODY`]. Stdin is read before nk connects, so no
/// server waits on it: a closed or unreadable stdin is an empty one (cli.md), and on a
/// terminal a note says how to end the text.
fn read_all(source: Option<&str>, flag: &str, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let got = match source {
        Some(path) => std::fs::File::open(path)
            .map_err(|e| usage(format!("{flag} {path}: {e}")))?
            .take(MAX_BODY + 1)
            .read_to_end(&mut bytes),
        None => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                crate::log::warn(format_args!(
                    "reading the {what} from the terminal; end it with Ctrl-D on a line of its own"
                ));
            }
            match stdin.lock().take(MAX_BODY + 1).read_to_end(&mut bytes) {
                Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(0),
                other => other,
            }
        }
    };
    let name = source.map_or_else(|| "stdin".to_string(), |p| format!("{flag} {p}"));
    got.with_context(|| format!("read {name}"))?;
    if bytes.len() as u64 > MAX_BODY {
        return Err(usage(format!(
            "{name}: the {what} is larger than {} MiB",
            MAX_BODY >> 20
        )));
    }
    Ok(bytes)
}

fn read_body(args: &SmtpArgs) -> Result<Vec<u8>> {
    if let Some(text) = &args.body {
        return Ok(text.clone().into_bytes());
    }
    read_all(args.body_file.as_deref(), "--body-file", "body")
}

/// The types of the --attach files in order: each --attach-type applies to the --attach
/// options after it on the command line (swaks' rule), which clap's lists cannot tell, so
/// the order comes from the arguments themselves.
fn attach_types(args: &SmtpArgs, argv: &[String]) -> Result<Vec<Option<String>>> {
    for kind in &args.attach_type {
        smtp::check_type(kind).map_err(usage)?;
    }
    if args.attach_type.is_empty() {
        return Ok(vec![None; args.attach.len()]);
    }
    let mut current: Option<String> = None;
    let mut types = Vec::new();
    let mut words = argv.iter().skip_while(|w| w.as_str() != "smtp");
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if let Some(kind) = word.strip_prefix("--attach-type=") {
            current = Some(kind.to_string());
        } else if word == "--attach-type" {
            current = words.next().cloned();
        } else if word == "--attach" || word.starts_with("--attach=") {
            if word == "--attach" {
                words.next();
            }
            types.push(current.clone());
        }
    }
    if types.len() != args.attach.len() {
        return Err(usage(
            "--attach-type: cannot tell which --attach each applies to; write each as --attach FILE and --attach-type TYPE",
        ));
    }
    Ok(types)
}

/// Reads the --attach files (all together at most [`MAX_BODY`]).
fn read_attachments(args: &SmtpArgs) -> Result<Vec<smtp::Attachment>> {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let types = attach_types(args, &argv)?;
    let mut total = 0u64;
    let mut attachments = Vec::new();
    for (path, kind) in args.attach.iter().zip(types) {
        // swaks (since 2020) reads a file given as @FILE: the same here, when no file is
        // named with the @.
        let path = match path.strip_prefix('@') {
            Some(rest) if !std::path::Path::new(path).exists() => rest.to_string(),
            _ => path.clone(),
        };
        let path = &path;
        let bytes = read_all(Some(path), "--attach", "attachment")?;
        total += bytes.len() as u64;
        if total > MAX_BODY {
            return Err(usage(format!(
                "--attach: the attachments are larger than {} MiB together",
                MAX_BODY >> 20
            )));
        }
        let name = std::path::Path::new(path)
            .file_name()
            .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
        smtp::check_header_value(&format!("--attach {path}: the file name"), &name)
            .map_err(usage)?;
        let content_type = kind.unwrap_or_else(|| smtp::guess_type(&name).to_string());
        attachments.push(smtp::Attachment {
            name,
            content_type,
            bytes,
        });
    }
    Ok(attachments)
}

/// What goes after DATA, before dot-stuffing.
enum Content {
    /// Built by nk from the arguments.
    Built {
        body: Vec<u8>,
        attachments: Vec<smtp::Attachment>,
    },
    /// --data: sent as it is (CRLF line ends).
    Prepared(Vec<u8>),
}

impl Content {
    /// The message (RFC 5322, CRLF, not dot-stuffed).
    fn message(&self, headers: &MessageHeaders<'_>, eight_bit_mime: bool) -> Result<Vec<u8>> {
        match self {
            Content::Prepared(message) => Ok(message.clone()),
            Content::Built { body, attachments } => {
                let lines = smtp::body_lines(body).map_err(usage)?;
                let transfer = Transfer::choose(body, eight_bit_mime);
                let message = Message {
                    from: headers.from,
                    to: headers.to,
                    subject: headers.subject,
                    extra: headers.extra,
                    date: chrono::Local::now().to_rfc2822(),
                    message_id: format!(
                        "<{:016x}.{}@{}>",
                        rand::random::<u64>(),
                        chrono::Utc::now().timestamp(),
                        headers.domain
                    ),
                };
                let boundary = format!("=_nk_{:016x}", rand::random::<u64>());
                let mime = (!attachments.is_empty()).then_some(smtp::Mime {
                    boundary: &boundary,
                    attachments,
                });
                Ok(smtp::build_message(&message, &lines, transfer, mime))
            }
        }
    }
}

/// What the generated headers are made of.
struct MessageHeaders<'a> {
    from: &'a Address,
    to: &'a [Address],
    subject: Option<&'a str>,
    extra: &'a [(String, String)],
    domain: &'a str,
}

/// Runs `nk smtp`.
pub fn run(args: SmtpArgs) -> Result<()> {
    // Everything the user gave is checked before a connection is made.
    let mut from = smtp::parse_address("--from", &args.from).map_err(usage)?;
    let to = args
        .to
        .iter()
        .map(|t| smtp::parse_address("--to", t).map_err(usage))
        .collect::<Result<Vec<Address>>>()?;
    if to.iter().any(|t| t.envelope.is_empty()) {
        return Err(usage("--to <> is not a recipient"));
    }
    if let Some(subject) = &args.subject {
        smtp::check_header_value("--subject", subject).map_err(usage)?;
        smtp::check_header_words("--subject", subject).map_err(usage)?;
    }
    let extra = args
        .headers
        .iter()
        .map(|h| parse_header(h).map_err(|e| usage(format!("--header: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    for (name, value) in &extra {
        smtp::check_header_words(&format!("--header {name}"), value).map_err(usage)?;
        let mime_field = name.eq_ignore_ascii_case("Content-Type")
            || name.eq_ignore_ascii_case("Content-Transfer-Encoding");
        if mime_field && !args.attach.is_empty() {
            return Err(usage(format!(
                "--header {name} with --attach: nk writes the multipart structure itself"
            )));
        }
    }
    let helo = args.helo.clone().unwrap_or_else(host_name);
    smtp::check_header_value("--helo", &helo).map_err(usage)?;
    if helo.is_empty() || helo.contains(' ') {
        return Err(usage(format!(
            "--helo \"{helo}\" must be one word (a host name)"
        )));
    }
    let domain = smtp::header_domain(&helo);
    if from.envelope.is_empty() {
        from.header = from.null_sender_header(domain);
    }
    if args.quit_after == Some(Stage::Tls) && !args.tls && !args.starttls {
        return Err(usage("--quit-after tls needs --tls or --starttls"));
    }
    let attachments = read_attachments(&args)?;
    let headers = MessageHeaders {
        from: &from,
        to: &to,
        subject: args.subject.as_deref(),
        extra: &extra,
        domain,
    };
    if args.dump_mail {
        let content = read_content(&args, attachments)?;
        let message = content.message(&headers, true)?;
        let mut out = io::stdout().lock();
        return out
            .write_all(&message)
            .and_then(|()| out.flush())
            .map_err(crate::cmd::stdout_error);
    }
    let server = args.server.as_deref().unwrap_or_default();
    let default_port = match (args.tls, args.protocol) {
        (true, _) => 465,
        (false, Protocol::Lmtp) => 24,
        (false, _) => 25,
    };
    let target = match &args.port {
        Some(port) => addr::parse_target(server, Some(port), Proto::Tcp)?,
        None => addr::parse_target_or(server, default_port, Proto::Tcp)?,
    };
    let tls = if args.tls || args.starttls {
        Some(Tls {
            config: args.trust.config(&[])?,
            name: args.trust.server_name(&target.host.to_string()),
        })
    } else {
        args.trust.refuse_without_tls("--tls or --starttls")?;
        None
    };
    let credentials = args.auth.credentials(args.tls || args.starttls)?;
    if args.quit_after == Some(Stage::Auth) && credentials.is_none() {
        return Err(usage("--quit-after auth needs --auth or --auth-user"));
    }
    let content = if args.quit_after.is_some() {
        Content::Built {
            body: Vec::new(),
            attachments: Vec::new(),
        }
    } else {
        read_content(&args, attachments)?
    };

    let connected = connect::connect(
        &target,
        &ConnectOptions {
            family: args.family.family(),
            timeout: Some(args.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)),
            proxies: args.proxy.chain()?,
            ..ConnectOptions::default()
        },
    )?;
    let server = connected.name.clone();
    let stream = match &tls {
        Some(tls) if args.tls => tls.connect(connected.stream, &server, args.timeout)?,
        _ => Socket::from(connected.stream),
    };
    let mut session = Session::new(stream, server, args.timeout)?;
    session.hint_tls = connected.peer.port() == SMTPS_PORT && !args.tls;
    // Even --quit-after connect waits for the banner (as swaks does): a QUIT sent before it
    // would get the banner for its reply, and RFC 5321 §3.1 has the client wait for it.
    let banner = session.reply("banner")?;
    if banner.code != 220 {
        return Err(session.refused("banner", &banner));
    }
    if matches!(args.quit_after, Some(Stage::Connect | Stage::Banner)) {
        session.quit();
        return Ok(());
    }
    let (mut hello, mut extended) = session.hello(&helo, args.protocol)?;
    if args.quit_after == Some(Stage::Helo) {
        session.quit();
        return Ok(());
    }
    if let (Some(tls), true) = (&tls, args.starttls) {
        if !extended || hello.extension("STARTTLS").is_none() {
            session.quit();
            return Err(anyhow!(
                "smtp {}: the server does not offer STARTTLS (not in its {} reply); nothing more was sent in clear",
                session.server,
                if extended { "EHLO" } else { "HELO" }
            ));
        }
        let reply = session.command("STARTTLS")?;
        if reply.code != 220 {
            return Err(session.refused("STARTTLS", &reply));
        }
        let discarded;
        (session, discarded) = session.start_tls(tls)?;
        if discarded > 0 {
            crate::log::warn(format_args!(
                "discarded {discarded} bytes {} sent in clear after its 220 to STARTTLS (never read as replies)",
                session.server
            ));
        }
        // RFC 3207 §4.2: what was learnt before TLS is forgotten; the server is asked again.
        (hello, extended) = session.hello(&helo, args.protocol)?;
    }
    if args.quit_after == Some(Stage::Tls) {
        session.quit();
        return Ok(());
    }
    if let Some(credentials) = &credentials {
        if !extended {
            session.quit();
            return Err(anyhow!(
                "smtp {}: the server was greeted with HELO, so it offers no AUTH; nothing was sent",
                session.server
            ));
        }
        session.authenticate(&hello, credentials)?;
        if args.quit_after == Some(Stage::Auth) {
            session.quit();
            return Ok(());
        }
    }
    let offers = |name: &str| extended && hello.extension(name).is_some();
    // RFC 6531: a UTF-8 local part needs SMTPUTF8 on MAIL; without it nothing is sent.
    let utf8 = from.needs_smtputf8() || to.iter().any(Address::needs_smtputf8);
    if utf8 && !offers("SMTPUTF8") {
        let address = std::iter::once(&from)
            .chain(&to)
            .find(|a| a.needs_smtputf8())
            .map_or("", |a| a.envelope.as_str());
        session.quit();
        return Err(anyhow!(
            "smtp {}: the address {address} needs SMTPUTF8 (RFC 6531), which the server does not offer; no mail sent",
            session.server
        ));
    }
    let message = content.message(&headers, offers("8BITMIME"))?;
    // 8-bit bytes anywhere (the body, or UTF-8 addresses in the header) go as 8BITMIME.
    let eight_bit = !message.is_ascii();
    if eight_bit && !offers("8BITMIME") && !utf8 {
        crate::log::warn(format_args!(
            "the message holds 8-bit bytes and {} does not offer 8BITMIME; it goes as it is",
            session.server
        ));
    }
    let data = smtp::dot_stuff(&message);
    let size_limit = if extended {
        hello.extension("SIZE").and_then(|v| v.parse::<u64>().ok())
    } else {
        None
    };
    let mut mail = format!("MAIL FROM:<{}>", from.envelope);
    if let Some(limit) = size_limit {
        if limit > 0 && data.len() as u64 > limit {
            session.quit();
            return Err(anyhow!(
                "smtp {}: the message is {} bytes; the server accepts at most {limit} (SIZE)",
                session.server,
                data.len()
            ));
        }
        mail.push_str(&format!(" SIZE={}", data.len()));
    }
    if eight_bit && offers("8BITMIME") {
        mail.push_str(" BODY=8BITMIME");
    }
    if utf8 {
        mail.push_str(" SMTPUTF8");
    }
    let rcpt_lines: Vec<String> = to
        .iter()
        .map(|rcpt| format!("RCPT TO:<{}>", rcpt.envelope))
        .collect();
    let stepwise = matches!(args.quit_after, Some(Stage::Mail | Stage::Rcpt));
    let pipelined = args.pipeline && offers("PIPELINING") && !stepwise;
    if args.pipeline && !pipelined && !stepwise {
        crate::log::warn(format_args!(
            "{} does not offer PIPELINING: one command at a time",
            session.server
        ));
    }
    let mut accepted = Vec::new();
    let mut refusals = Vec::new();
    let data_reply = if pipelined {
        let mut batch = vec![mail.as_str()];
        batch.extend(rcpt_lines.iter().map(String::as_str));
        batch.push("DATA");
        session.send_batch(&batch)?;
        let mail_reply = session.reply(&mail)?;
        let mut rcpt_replies = Vec::new();
        for line in &rcpt_lines {
            rcpt_replies.push(session.reply(line)?);
        }
        let data_reply = session.reply("DATA")?;
        for ((line, reply), rcpt) in rcpt_lines.iter().zip(rcpt_replies).zip(&to) {
            if reply.is_success() {
                accepted.push(rcpt);
            } else {
                refusals.push(format!("{line} refused: {reply}"));
            }
        }
        if !mail_reply.is_success() || accepted.is_empty() {
            // RFC 2920 §3.1: a 354 after all else was refused still wants its `.`.
            if data_reply.code == 354 {
                let _ = session.command(".");
            }
            if !mail_reply.is_success() {
                return Err(session.refused("MAIL FROM", &mail_reply));
            }
        }
        Some(data_reply)
    } else {
        let reply = session.command(&mail)?;
        if !reply.is_success() {
            return Err(session.refused("MAIL FROM", &reply));
        }
        if args.quit_after == Some(Stage::Mail) {
            session.quit();
            return Ok(());
        }
        for (line, rcpt) in rcpt_lines.iter().zip(&to) {
            let reply = session.command(line)?;
            if reply.is_success() {
                accepted.push(rcpt);
            } else {
                refusals.push(format!("{line} refused: {reply}"));
            }
        }
        None
    };
    for refusal in &refusals {
        crate::eprintln_safe!("nk: {refusal}");
    }
    if args.quit_after == Some(Stage::Rcpt) {
        session.quit();
        return if refusals.is_empty() {
            Ok(())
        } else {
            Err(Reported(Status::Failure).into())
        };
    }
    if accepted.is_empty() {
        session.quit();
        return Err(anyhow!(
            "smtp {}: every recipient was refused; no mail sent",
            session.server
        ));
    }
    let reply = match data_reply {
        Some(reply) => reply,
        None => session.command("DATA")?,
    };
    if reply.code != 354 {
        return Err(session.refused("DATA", &reply));
    }
    crate::info!("-> <message: {} bytes>", data.len());
    if crate::log::verbosity() >= 2 {
        // -vv: the message as it goes on the wire (dot-stuffed), line by line.
        for line in data.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() || !data.ends_with(b"\n") {
                crate::debug!("-> {}", String::from_utf8_lossy(line).escape_debug());
            }
        }
    }
    session.write_all(&data, ".", "the message")?;
    // LMTP (RFC 2033 §4.2): one reply per accepted recipient, in the order of the RCPTs,
    // each told as it comes, so a reply that never comes leaves the earlier ones said.
    let recipients: Vec<Option<&Address>> = if args.protocol == Protocol::Lmtp {
        accepted.iter().map(|r| Some(*r)).collect()
    } else {
        vec![None]
    };
    let mut delivered = 0;
    let mut last = None;
    for rcpt in recipients {
        let reply = session.reply(".")?;
        let line = match rcpt {
            Some(rcpt) => format!("<{}> {reply}", rcpt.envelope),
            None => reply.to_string(),
        };
        if reply.is_success() {
            delivered += 1;
            let mut out = io::stdout().lock();
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .map_err(crate::cmd::stdout_error)?;
        } else if rcpt.is_some() {
            refusals.push(format!("message for {line}"));
            crate::eprintln_safe!("nk: message refused for {line}");
        }
        last = Some(reply);
    }
    if let (0, Some(last)) = (delivered, &last) {
        return Err(session.refused("message", last));
    }
    session.quit();
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(Reported(Status::Failure).into())
    }
}

/// The body and attachments, or the prepared message of --data.
fn read_content(args: &SmtpArgs, attachments: Vec<smtp::Attachment>) -> Result<Content> {
    match args.data.as_deref() {
        Some(source) => {
            let raw = read_all((source != "-").then_some(source), "--data", "message")?;
            let message =
                smtp::prepared_message(&raw).map_err(|e| usage(format!("--data {source}: {e}")))?;
            Ok(Content::Prepared(message))
        }
        None => {
            let body = read_body(args)?;
            smtp::body_lines(&body).map_err(usage)?;
            Ok(Content::Built { body, attachments })
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.server)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_named_by_their_verb() {
        assert_eq!(first_word("MAIL FROM:<a@b> SIZE=3"), "MAIL FROM");
        assert_eq!(first_word("RCPT TO:<a@b>"), "RCPT TO");
        assert_eq!(first_word("EHLO host"), "EHLO");
        assert_eq!(rfc_timeout("."), Duration::from_secs(600));
        assert_eq!(rfc_timeout("MAIL FROM:<a@b>"), Duration::from_secs(300));
    }

    #[test]
    fn the_banner_waits_30s_unless_timeout_says_otherwise() {
        assert_eq!(reply_timeout(None, "banner"), Duration::from_secs(30));
        assert_eq!(reply_timeout(None, "EHLO x"), Duration::from_secs(300));
        assert_eq!(reply_timeout(None, "."), Duration::from_secs(600));
        let given = Some(Duration::from_millis(1500));
        assert_eq!(reply_timeout(given, "banner"), Duration::from_millis(1500));
        assert_eq!(reply_timeout(given, "."), Duration::from_millis(1500));
    }
}
