//! SMTP AUTH (RFC 4954) as `nk smtp --auth` speaks it: the mechanisms, which one to use, and
//! the responses each sends, with no sockets here.
//!
//! The server's part is untrusted: its AUTH list is read word by word, and a challenge (the
//! text of a 334 reply) is base64 that is decoded with a cap. The client's part carries the
//! secret, so every response is built here and nowhere else, and [`Step::shown`] says what a
//! transcript may print of it: never the password, nor a digest of it (a CRAM-MD5 response in
//! a log is enough for an offline guess of the password).

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};

/// The mechanisms nk knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616: authzid NUL user NUL password, in one response.
    Plain,
    /// The user name and the password in two base64 responses (no RFC; universal).
    Login,
    /// RFC 2195: HMAC-MD5 of the server's challenge keyed by the password.
    CramMd5,
    /// Google's and Microsoft's bearer token (the password is the OAuth 2 access token).
    XOAuth2,
}

/// The order `--auth` with no mechanism tries them in: CRAM-MD5 first because the password
/// never crosses the wire, then PLAIN (one round trip), then LOGIN. XOAUTH2 is never chosen
/// by itself: its secret is a token, not a password.
pub const PREFERENCE: [Mechanism; 3] = [Mechanism::CramMd5, Mechanism::Plain, Mechanism::Login];

impl Mechanism {
    /// The name on the wire (`AUTH NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::XOAuth2 => "XOAUTH2",
        }
    }

    /// Parses a name as the user or a server writes it (any case).
    pub fn parse(text: &str) -> Option<Mechanism> {
        [
            Mechanism::Plain,
            Mechanism::Login,
            Mechanism::CramMd5,
            Mechanism::XOAuth2,
        ]
        .into_iter()
        .find(|m| m.name().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest list of mechanism names kept from one EHLO line.
const MAX_OFFERED: usize = 32;

/// The mechanism names of an EHLO `AUTH` value (`PLAIN LOGIN CRAM-MD5`), as the server wrote
/// them (known or not), at most [`MAX_OFFERED`].
pub fn offered(value: &str) -> Vec<String> {
    value
        .split_ascii_whitespace()
        .take(MAX_OFFERED)
        .map(|w| w.chars().take(40).collect())
        .collect()
}

/// The mechanism to use: `asked` when the server offers it, otherwise the first of
/// [`PREFERENCE`] it offers. The error names what the server offers.
pub fn choose(asked: Option<Mechanism>, offered: &[String]) -> Result<Mechanism, String> {
    let has = |m: Mechanism| offered.iter().any(|o| o.eq_ignore_ascii_case(m.name()));
    let list = if offered.is_empty() {
        "nothing".to_string()
    } else {
        offered.join(" ")
    };
    match asked {
        Some(m) if has(m) => Ok(m),
        Some(m) => Err(format!(
            "the server does not offer AUTH {m} (it offers {list})"
        )),
        None => PREFERENCE.into_iter().find(|&m| has(m)).ok_or_else(|| {
            format!("the server offers no mechanism nk knows (it offers {list}); nk knows PLAIN, LOGIN, CRAM-MD5 and XOAUTH2")
        }),
    }
}

/// One line the client sends during AUTH: what goes on the wire, and what a transcript shows.
#[derive(Clone, PartialEq, Eq)]
pub struct Step {
    /// The line as sent (CRLF not included).
    pub line: String,
    /// The line as -v shows it: the secret replaced by a description.
    pub shown: String,
}

impl fmt::Debug for Step {
    /// The shown form only, so that a debug print never leaks the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step").field("shown", &self.shown).finish()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The longest challenge text accepted (a 334 line holds at most 508 octets anyway).
pub const MAX_CHALLENGE: usize = 512;

/// Decodes the text of a 334 reply (base64; RFC 4954 §4), capped at [`MAX_CHALLENGE`].
pub fn decode_challenge(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    if text.len() > MAX_CHALLENGE {
        return Err(format!(
            "the server's challenge is longer than {MAX_CHALLENGE} characters"
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| {
            format!(
                "the server's challenge \"{}\" is not base64 ({e})",
                text.escape_debug()
            )
        })
}

/// The first command: `AUTH NAME` with the initial response where the mechanism has one.
pub fn first_step(mechanism: Mechanism, user: &str, secret: &str) -> Step {
    match mechanism {
        Mechanism::Plain => {
            let response = b64(format!("\0{user}\0{secret}").as_bytes());
            Step {
                line: format!("AUTH PLAIN {response}"),
                shown: format!(
                    "AUTH PLAIN <user \"{}\" and password, hidden>",
                    user.escape_debug()
                ),
            }
        }
        Mechanism::XOAuth2 => {
            let response = b64(format!("user={user}\x01auth=Bearer {secret}\x01\x01").as_bytes());
            Step {
                line: format!("AUTH XOAUTH2 {response}"),
                shown: format!(
                    "AUTH XOAUTH2 <user \"{}\" and token, hidden>",
                    user.escape_debug()
                ),
            }
        }
        Mechanism::Login | Mechanism::CramMd5 => {
            let line = format!("AUTH {mechanism}");
            Step {
                shown: line.clone(),
                line,
            }
        }
    }
}

/// The answer to the server's `round`-th 334 (1 for the first), given its text. `None` when
/// the mechanism has nothing more to say: the client then cancels with `*` (RFC 4954 §4).
pub fn answer(
    mechanism: Mechanism,
    round: usize,
    challenge: &str,
    user: &str,
    secret: &str,
) -> Result<Option<Step>, String> {
    Ok(match (mechanism, round) {
        (Mechanism::Login, 1) => {
            let line = b64(user.as_bytes());
            Some(Step {
                shown: format!("{line} (user \"{}\")", user.escape_debug()),
                line,
            })
        }
        (Mechanism::Login, 2) => Some(Step {
            line: b64(secret.as_bytes()),
            shown: "<password, hidden>".into(),
        }),
        (Mechanism::CramMd5, 1) => {
            let challenge = decode_challenge(challenge)?;
            Some(Step {
                line: b64(format!("{user} {}", cram_md5_digest(&challenge, secret)).as_bytes()),
                shown: format!(
                    "<user \"{}\" and the HMAC-MD5 digest, hidden>",
                    user.escape_debug()
                ),
            })
        }
        // RFC 7628-style error report of XOAUTH2: the client answers with an empty line and
        // the server then sends its final refusal.
        (Mechanism::XOAuth2, 1) => Some(Step {
            line: String::new(),
            shown: "(empty line: XOAUTH2 error acknowledged)".into(),
        }),
        _ => None,
    })
}

/// RFC 2195's response digest: HMAC-MD5 (RFC 2104) of the challenge keyed by the password,
/// in lower-case hex.
pub fn cram_md5_digest(challenge: &[u8], secret: &str) -> String {
    // HMAC accepts a key of any length: new_from_slice cannot fail for it.
    let mut mac = match Hmac::<md5::Md5>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(challenge);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a refusal of AUTH means, for the error line: 535 and 534 named (RFC 4954 §6).
pub fn refusal_meaning(code: u16) -> &'static str {
    match code {
        535 => "the user name or password was not accepted",
        534 => "the server wants a stronger mechanism: try another --auth",
        538 => "the server wants this mechanism over TLS only: use --starttls or --tls",
        530 => "the server wants TLS first: use --starttls or --tls",
        454 => "a temporary failure on the server's side: try again later",
        504 => "the server does not know this mechanism",
        501 => "the server could not read the response",
        _ => "authentication refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cram_md5_matches_rfc_2195() {
        // RFC 2195 §2's example.
        let challenge =
            decode_challenge("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+").unwrap();
        assert_eq!(challenge, b"<1896.697170952@postoffice.reston.mci.net>");
        assert_eq!(
            cram_md5_digest(&challenge, "tanstaaftanstaaf"),
            "b913a602c7eda7a495b4e6e7334d3890"
        );
        let step = answer(
            Mechanism::CramMd5,
            1,
            "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+",
            "tim",
            "tanstaaftanstaaf",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            step.line,
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
        );
        assert!(!step.shown.contains("b913"));
        assert!(answer(Mechanism::CramMd5, 1, "!!", "u", "p").is_err());
        assert!(answer(Mechanism::CramMd5, 1, &"QUFB".repeat(200), "u", "p").is_err());
    }

    #[test]
    fn hmac_md5_matches_rfc_2104() {
        assert_eq!(
            cram_md5_digest(b"what do ya want for nothing?", "Jefe"),
            "750c783e6ab0b503eaa86e310a5db738"
        );
    }

    #[test]
    fn the_secret_is_never_shown() {
        for m in [
            Mechanism::Plain,
            Mechanism::Login,
            Mechanism::CramMd5,
            Mechanism::XOAuth2,
        ] {
            let mut steps = vec![first_step(m, "alice", "hunter2")];
            for round in 1..4 {
                if let Ok(Some(s)) = answer(m, round, "PDE+", "alice", "hunter2") {
                    steps.push(s);
                }
            }
            for s in &steps {
                assert!(!s.shown.contains("hunter2"), "{m}: {}", s.shown);
                assert!(!s.shown.contains(&b64(b"hunter2")), "{m}: {}", s.shown);
                assert!(!format!("{s:?}").contains("hunter2"));
            }
        }
        assert_eq!(
            first_step(Mechanism::Plain, "alice", "pw").line,
            format!("AUTH PLAIN {}", b64(b"\0alice\0pw"))
        );
    }

    #[test]
    fn choosing_a_mechanism() {
        let offered = offered("LOGIN PLAIN cram-md5 XOAUTH2");
        assert_eq!(choose(None, &offered), Ok(Mechanism::CramMd5));
        assert_eq!(
            choose(None, &self::offered("LOGIN PLAIN")),
            Ok(Mechanism::Plain)
        );
        assert!(choose(None, &self::offered("XOAUTH2"))
            .unwrap_err()
            .contains("XOAUTH2"));
        assert_eq!(
            choose(Some(Mechanism::Login), &offered),
            Ok(Mechanism::Login)
        );
        assert!(choose(Some(Mechanism::CramMd5), &self::offered("PLAIN"))
            .unwrap_err()
            .contains("it offers PLAIN"));
        assert!(choose(None, &[]).unwrap_err().contains("offers nothing"));
        assert_eq!(Mechanism::parse("cram-md5"), Some(Mechanism::CramMd5));
        assert_eq!(Mechanism::parse("DIGEST-MD5"), None);
    }
}
