//! curl's `--write-out FORMAT` for `nk head`: text with `%{variable}` places filled in after
//! the run, `%%` for a percent sign and `\n`, `\r`, `\t`, `\\` escapes, as curl reads them.
//! The format is user text: it is parsed once, before any traffic, so that an unknown
//! variable is a usage error (curl only warns and prints nothing there); rendering cannot
//! fail. `%{stdout}` and `%{stderr}` switch where the rest goes, as in curl.

use std::fmt::Write as _;

/// The longest format accepted (curl has no limit; 64 KiB is far above any real one).
const MAX_FORMAT: usize = 64 * 1024;

/// A variable of the run, as curl names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The last response's status, three digits (`000` when none came).
    HttpCode,
    /// Seconds from the start to the end of the run.
    TimeTotal,
    /// Seconds from the start until the last connection was made.
    TimeConnect,
    /// Seconds from the start until the last response's first byte.
    TimeStarttransfer,
    /// Body bytes received in the last response.
    SizeDownload,
    /// The address of the last server (or proxy) connected to.
    RemoteIp,
    /// The last URL asked for.
    UrlEffective,
    /// Redirects followed.
    NumRedirects,
}

/// Each variable with its name.
const VARS: [(&str, Var); 8] = [
    ("http_code", Var::HttpCode),
    ("time_total", Var::TimeTotal),
    ("time_connect", Var::TimeConnect),
    ("time_starttransfer", Var::TimeStarttransfer),
    ("size_download", Var::SizeDownload),
    ("remote_ip", Var::RemoteIp),
    ("url_effective", Var::UrlEffective),
    ("num_redirects", Var::NumRedirects),
];

/// Where the output goes from a point on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (the default).
    Stdout,
    /// Standard error.
    Stderr,
}

/// One piece of a parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A variable's value.
    Var(Var),
    /// The rest goes there.
    Switch(Stream),
}

/// The values a run ends with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values {
    /// The last status, if a response came.
    pub http_code: Option<u16>,
    /// Seconds.
    pub time_total: f64,
    /// Seconds.
    pub time_connect: f64,
    /// Seconds.
    pub time_starttransfer: f64,
    /// Bytes.
    pub size_download: u64,
    /// Empty when there was none (a Unix socket).
    pub remote_ip: String,
    /// The last URL.
    pub url_effective: String,
    /// Redirects followed.
    pub num_redirects: u32,
}

/// Parses a `--write-out` format.
pub fn parse(format: &str) -> Result<Vec<Piece>, String> {
    if format.len() > MAX_FORMAT {
        return Err(format!(
            "--write-out: the format is longer than {} KiB",
            MAX_FORMAT / 1024
        ));
    }
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = format.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.peek().map(|(_, n)| *n) {
                Some('n') => text.push('\n'),
                Some('r') => text.push('\r'),
                Some('t') => text.push('\t'),
                Some('\\') => text.push('\\'),
                // Not an escape curl knows: kept as typed.
                _ => {
                    text.push('\\');
                    continue;
                }
            },
            '%' => match chars.peek().map(|(_, n)| *n) {
                Some('%') => text.push('%'),
                Some('{') => {
                    let rest = &format[at + 2..];
                    let end = rest.find('}').ok_or_else(|| {
                        format!("--write-out: \"%{{\" at byte {at} is not closed by \"}}\"")
                    })?;
                    let name = &rest[..end];
                    let piece = match name {
                        "stdout" => Piece::Switch(Stream::Stdout),
                        "stderr" => Piece::Switch(Stream::Stderr),
                        _ => Piece::Var(
                            VARS.iter()
                                .find(|(n, _)| *n == name)
                                .map(|(_, v)| *v)
                                .ok_or_else(|| {
                                    format!(
                                        "--write-out: unknown variable %{{{}}} (nk knows {}, \
                                         stdout, stderr)",
                                        name.escape_debug(),
                                        VARS.map(|(n, _)| n).join(", ")
                                    )
                                })?,
                        ),
                    };
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(piece);
                    // Skip past the closing brace.
                    while chars.next_if(|(i, _)| *i < at + 2 + end + 1).is_some() {}
                    continue;
                }
                // A lone % is kept, as curl keeps it.
                _ => {
                    text.push('%');
                    continue;
                }
            },
            other => {
                text.push(other);
                continue;
            }
        }
        // An escape or %%: its second character is consumed too.
        chars.next();
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Renders `pieces` with `values`: the text for stdout and the text for stderr.
pub fn render(pieces: &[Piece], values: &Values) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    let mut to = Stream::Stdout;
    for piece in pieces {
        let target = match to {
            Stream::Stdout => &mut out,
            Stream::Stderr => &mut err,
        };
        // Writing to a String cannot fail.
        let _ = match piece {
            Piece::Text(text) => target.write_str(text),
            Piece::Switch(stream) => {
                to = *stream;
                Ok(())
            }
            Piece::Var(var) => match var {
                Var::HttpCode => write!(target, "{:03}", values.http_code.unwrap_or(0)),
                Var::TimeTotal => write!(target, "{:.6}", values.time_total),
                Var::TimeConnect => write!(target, "{:.6}", values.time_connect),
                Var::TimeStarttransfer => write!(target, "{:.6}", values.time_starttransfer),
                Var::SizeDownload => write!(target, "{}", values.size_download),
                Var::RemoteIp => target.write_str(&values.remote_ip),
                Var::UrlEffective => target.write_str(&values.url_effective),
                Var::NumRedirects => write!(target, "{}", values.num_redirects),
            },
        };
    }
    (out, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_render_as_curl_renders_them() {
        let values = Values {
            http_code: Some(200),
            time_total: 0.5,
            size_download: 12,
            remote_ip: "127.0.0.1".into(),
            url_effective: "http://h/".into(),
            num_redirects: 2,
            ..Values::default()
        };
        let pieces =
            parse("%{http_code} %{time_total}\\n%% %{num_redirects}%{stderr}%{remote_ip}\\t%")
                .unwrap();
        assert_eq!(
            render(&pieces, &values),
            ("200 0.500000\n% 2".to_string(), "127.0.0.1\t%".to_string())
        );
        assert_eq!(
            render(&parse("%{http_code}").unwrap(), &Values::default()).0,
            "000"
        );
        assert_eq!(
            render(&parse("a\\qb%{url_effective}").unwrap(), &values).0,
            "a\\qbhttp://h/"
        );
        assert!(parse("%{nope}")
            .unwrap_err()
            .contains("unknown variable %{nope}"));
        assert!(parse("%{http_code").unwrap_err().contains("not closed"));
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("é%{size_download}ü").unwrap().len(), 3);
    }
}
