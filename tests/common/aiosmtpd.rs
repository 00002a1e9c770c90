//! Python's aiosmtpd as the real peer of `nk smtp` (tests/smtp.rs, tests/tls.rs), in clear,
//! with STARTTLS or with implicit TLS.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{read_file, wait_until, In, Out, Proc};

/// The aiosmtpd server: `python3 -c AIOSMTPD_PY OUTDIR MODE [CERT KEY]`, MODE one of `none`,
/// `starttls` (offers STARTTLS and requires it before MAIL: 530 otherwise), `implicit` (TLS
/// from the first byte). Every message is stored as msgN.content (the raw content, un-dot-
/// stuffed by aiosmtpd) and msgN.json (envelope, session, whether it came over TLS, and the
/// `email` package's view of the message); the .json appears (by rename) after the .content,
/// before the 250 reply, which says `queued as AIO<N>` in clear and `TLS<N>` in the TLS modes.
/// Prints its port once listening.
const AIOSMTPD_PY: &str = r#"
import asyncio, base64, json, os, ssl, sys, traceback
from email import policy
from email.parser import BytesParser
from aiosmtpd.smtp import SMTP

outdir, mode = sys.argv[1:3]
ctx = None
if mode != "none":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
queued_as = "AIO" if mode == "none" else "TLS"
# NK_TEST_AUTH=user:password turns on AUTH (PLAIN and LOGIN, also without TLS) for that pair.
auth_pair = os.environ.get("NK_TEST_AUTH")
auth_kwargs = {}
if auth_pair:
    from aiosmtpd.smtp import AuthResult
    want_user, want_password = auth_pair.split(":", 1)
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login.decode() == want_user
              and auth_data.password.decode() == want_password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)
    auth_kwargs = dict(authenticator=authenticator, auth_require_tls=False)
# NK_TEST_SMTPUTF8=1 offers SMTPUTF8 (RFC 6531).
if os.environ.get("NK_TEST_SMTPUTF8"):
    auth_kwargs["enable_SMTPUTF8"] = True

def view(content):
    info = {}
    try:
        msg = BytesParser(policy=policy.default).parsebytes(content)
    except Exception:
        return {"parse_error": traceback.format_exc()}
    info["header_names"] = list(msg.keys())
    info["defects"] = [repr(d) for d in msg.defects]
    def field(name, fn):
        try:
            info[name] = fn()
        except Exception:
            info[name + "_error"] = traceback.format_exc()
    field("subject", lambda: None if msg["subject"] is None else str(msg["subject"]))
    field("to", lambda: [a.addr_spec for a in msg["to"].addresses])
    field("from", lambda: [a.addr_spec for a in msg["from"].addresses])
    field("to_names", lambda: [a.display_name for a in msg["to"].addresses])
    field("from_names", lambda: [a.display_name for a in msg["from"].addresses])
    field("date", lambda: msg["date"].datetime.timestamp())
    field("message_id", lambda: str(msg["message-id"]))
    field("mime_version", lambda: str(msg["mime-version"]))
    field("content_type", lambda: msg.get_content_type())
    field("charset", lambda: msg.get_content_charset())
    field("cte", lambda: None if msg["content-transfer-encoding"] is None
          else str(msg["content-transfer-encoding"]))
    field("body", lambda: None if msg.is_multipart() else msg.get_content())
    # Each MIME part: its type, file name, and its decoded bytes in base64.
    field("parts", lambda: [[p.get_content_type(), p.get_filename(),
                             base64.b64encode(p.get_payload(decode=True) or b"").decode()]
                            for p in msg.iter_parts()] if msg.is_multipart() else None)
    for name in msg.keys():
        for d in getattr(msg[name], "defects", ()):
            info["defects"].append(name + ": " + repr(d))
    return clean(info)

def clean(v):
    # Raw 8-bit header bytes come back from the parser as surrogate escapes, which JSON
    # readers refuse: turn them back into the text they were (or U+FFFD).
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(v, list):
        return [clean(x) for x in v]
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    return v

class Store:
    def __init__(self):
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(outdir, "msg%d" % self.n)
        with open(base + ".content", "wb") as f:
            f.write(envelope.original_content)
        ssl_object = server.transport.get_extra_info("ssl_object")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "helo": session.host_name,
            "authenticated": bool(session.authenticated),
            "login": None if session.auth_data is None else session.auth_data.login.decode(),
            "tls": ssl_object is not None,
            "tls_version": None if ssl_object is None else ssl_object.version(),
            "view": view(envelope.original_content),
        }
        with open(base + ".tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".tmp", base + ".json")
        return "250 2.0.0 Ok: queued as %s%d" % (queued_as, self.n)

async def main():
    loop = asyncio.get_running_loop()
    store = Store()
    if mode == "starttls":
        factory = lambda: SMTP(store, decode_data=False, hostname="aiosmtpd.test",
                               tls_context=ctx, require_starttls=True, **auth_kwargs)
        srv = await loop.create_server(factory, "127.0.0.1", 0)
    else:
        factory = lambda: SMTP(store, decode_data=False, hostname="aiosmtpd.test", **auth_kwargs)
        srv = await loop.create_server(factory, "127.0.0.1", 0,
                                       ssl=ctx if mode == "implicit" else None)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"#;

/// A Python interpreter that can import aiosmtpd (the Debian package installs it for
/// /usr/bin/python3, which may not be the first python3 on PATH).
pub fn aiosmtpd_python() -> &'static str {
    for py in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return py;
        }
    }
    panic!(
        "required test peer aiosmtpd is not installed (neither python3 nor /usr/bin/python3 \
         can import aiosmtpd); install it: apt-get install python3-aiosmtpd"
    );
}

/// How aiosmtpd speaks TLS.
#[derive(Debug, Clone, Copy)]
pub enum SmtpTls {
    /// Offers STARTTLS and requires it before MAIL (530 otherwise).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// A running aiosmtpd on 127.0.0.1 and the directory it stores messages in.
#[derive(Debug)]
pub struct Aiosmtpd {
    _proc: Proc,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// One message as aiosmtpd stored it.
#[derive(Debug)]
pub struct Stored {
    pub content: Vec<u8>,
    pub meta: Value,
}

impl Stored {
    pub fn view(&self, key: &str) -> &Value {
        &self.meta["view"][key]
    }

    pub fn view_str(&self, key: &str) -> String {
        self.view(key)
            .as_str()
            .unwrap_or_else(|| panic!("email view has no string {key:?}: {:#}", self.meta))
            .to_string()
    }

    pub fn strings(&self, v: &Value) -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("not a list: {v} in {:#}", self.meta))
            .iter()
            .map(|s| s.as_str().expect("string").to_string())
            .collect()
    }
}

impl Aiosmtpd {
    /// aiosmtpd in clear.
    pub fn start() -> Aiosmtpd {
        Aiosmtpd::spawn(&["none"])
    }

    /// aiosmtpd speaking TLS (`mode`) with `cert` and `key`.
    pub fn start_tls(mode: SmtpTls, cert: &Path, key: &Path) -> Aiosmtpd {
        let mode = match mode {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Implicit => "implicit",
        };
        Aiosmtpd::spawn(&[OsStr::new(mode), cert.as_os_str(), key.as_os_str()])
    }

    /// aiosmtpd in clear offering AUTH PLAIN and LOGIN, accepting only `user` and `password`.
    pub fn start_auth(user: &str, password: &str) -> Aiosmtpd {
        Aiosmtpd::spawn_with(&["none"], Some((user, password)))
    }

    /// aiosmtpd with STARTTLS required, offering AUTH PLAIN and LOGIN for `user`/`password`.
    pub fn start_tls_auth(cert: &Path, key: &Path, user: &str, password: &str) -> Aiosmtpd {
        let args = [OsStr::new("starttls"), cert.as_os_str(), key.as_os_str()];
        Aiosmtpd::spawn_with(&args, Some((user, password)))
    }

    /// aiosmtpd in clear offering SMTPUTF8.
    pub fn start_smtputf8() -> Aiosmtpd {
        Aiosmtpd::spawn_with(&["none"], Some(("", "")))
    }

    /// [`AIOSMTPD_PY`] OUTDIR ARGS; ready once it prints its port.
    fn spawn<S: AsRef<OsStr>>(args: &[S]) -> Aiosmtpd {
        Aiosmtpd::spawn_with(args, None)
    }

    fn spawn_with<S: AsRef<OsStr>>(args: &[S], auth: Option<(&str, &str)>) -> Aiosmtpd {
        let py = aiosmtpd_python();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(py);
        cmd.args(["-c", AIOSMTPD_PY]).arg(dir.path()).args(args);
        match auth {
            // No user: the SMTPUTF8 server (see start_smtputf8).
            Some(("", _)) => {
                cmd.env("NK_TEST_SMTPUTF8", "1");
            }
            Some((user, password)) => {
                cmd.env("NK_TEST_AUTH", format!("{user}:{password}"));
            }
            None => {}
        }
        let name = format!("aiosmtpd ({})", args[0].as_ref().to_string_lossy());
        let mut p = Proc::spawn(&name, cmd, In::Null, Out::Pipe);
        let line = p.wait_stdout_line(10.0, |l| !l.trim().is_empty());
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("aiosmtpd printed {line:?}, not a port"));
        Aiosmtpd {
            _proc: p,
            port,
            dir,
        }
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Message number `n` (1-based), waiting up to 5 s for it.
    pub fn message(&self, n: usize) -> Stored {
        let json = self.dir.path().join(format!("msg{n}.json"));
        assert!(
            wait_until(5.0, || json.exists()),
            "aiosmtpd stored no message #{n} within 5 s"
        );
        let meta: Value = serde_json::from_slice(&read_file(&json)).expect("aiosmtpd json");
        let content = read_file(&self.dir.path().join(format!("msg{n}.content")));
        Stored { content, meta }
    }

    /// How many messages were stored.
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .expect("read_dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .count()
    }
}
