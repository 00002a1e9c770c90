//! The RFC 867 daytime line in the formats people parse: RFC 867's own example style (the
//! default), RFC 3339, RFC 2822, ctime(3), or a strftime pattern of the user's.
//!
//! The pattern is checked once when the server starts (a usage error, exit 2), so rendering
//! for a client can never fail; its output is capped so a pattern cannot make a reply large,
//! and it may hold no control character nor `%n`, so a reply is always one line.
//!
//! Local time is told as date(1) tells it: the caller passes the C library's view of the zone
//! (localtime_r's offset and abbreviation, from TZ or /etc/localtime), so `%Z` is `CET` where
//! `date +%Z` says `CET`, not chrono's `+01:00`; no clock or environment is read here.

use std::fmt::Write as _;

use chrono::format::{Fixed, Item, StrftimeItems};
use chrono::{DateTime, FixedOffset, Utc};

/// The longest line a pattern may produce (RFC 867 names no limit; qotd's 512 is a fair one).
pub const MAX_LINE: usize = 511;

/// The longest zone abbreviation taken from the C library (POSIX TZ names are 3 or more;
/// the tz database's are at most 6).
pub const MAX_ZONE_NAME: usize = 16;

/// The zone a line is told in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    /// UTC (`--utc`).
    Utc,
    /// Local time as the C library gives it, as date(1) prints it.
    Local {
        /// Seconds east of UTC (tm_gmtoff).
        offset: i32,
        /// The abbreviation (tm_zone: `CET`, `EDT`, or `+04` for a zone with no name), when
        /// [`zone_name`] accepted it.
        name: Option<String>,
    },
}

/// A zone abbreviation from the C library, when it is one: 1 to [`MAX_ZONE_NAME`] letters,
/// digits, `+` or `-` (what POSIX TZ and the tz database allow). Anything else (bytes from a
/// damaged zone file) is dropped for the numeric offset, so it can never reach a reply.
pub fn zone_name(raw: &[u8]) -> Option<String> {
    let ok = (1..=MAX_ZONE_NAME).contains(&raw.len())
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-'));
    ok.then(|| String::from_utf8_lossy(raw).into_owned())
}

/// `--format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaytimeFormat {
    /// `Saturday, November 21, 2026 11:32:12-UTC`, after RFC 867's example.
    Rfc867,
    /// `2026-11-21T11:32:12+00:00`.
    Rfc3339,
    /// `Sat, 21 Nov 2026 11:32:12 +0000`.
    Rfc2822,
    /// `Sat Nov 21 11:32:12 2026`.
    Ctime,
    /// A strftime pattern.
    Pattern(String),
}

/// Parses `--format`: a format name, or a strftime pattern (it must contain `%`).
pub fn parse_format(text: &str) -> Result<DaytimeFormat, String> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "rfc867" | "default" => DaytimeFormat::Rfc867,
        "rfc3339" | "iso8601" | "iso" => DaytimeFormat::Rfc3339,
        "rfc2822" | "rfc5322" => DaytimeFormat::Rfc2822,
        "ctime" => DaytimeFormat::Ctime,
        _ if text.contains('%') => {
            // The line goes to clients that read one line of text: no control character,
            // not even a tab (`%t`), and no `%n` line break.
            if text.chars().any(char::is_control) {
                return Err(format!(
                    "the pattern \"{}\" holds a control character",
                    text.escape_debug()
                ));
            }
            if StrftimeItems::new(text).any(|item| matches!(item, Item::Error)) {
                return Err(format!("\"{text}\" is not a valid strftime pattern"));
            }
            if StrftimeItems::new(text)
                .any(|item| matches!(item, Item::Space(s) if s.chars().any(char::is_control)))
            {
                return Err(
                    "the pattern must stay on one line of text (%n is a line break, %t a tab)"
                        .into(),
                );
            }
            // Some specifiers parse but cannot be formatted (`%#z` is parse-only): formatting
            // once here refuses them at start, not when the first client connects.
            let pattern = DaytimeFormat::Pattern(text.to_string());
            let probe = DateTime::<Utc>::UNIX_EPOCH;
            let zones = [
                Zone::Utc,
                Zone::Local {
                    offset: 3600,
                    name: Some("CET".into()),
                },
            ];
            for zone in &zones {
                if try_render(&pattern, zone, probe).is_err() {
                    return Err(format!(
                        "\"{text}\" cannot be formatted (a parse-only specifier such as %#z?)"
                    ));
                }
            }
            pattern
        }
        _ => {
            return Err(format!(
                "unknown format \"{text}\" (rfc867, rfc3339, rfc2822, ctime, or a strftime \
                 pattern such as '%Y-%m-%d %H:%M:%S')"
            ))
        }
    })
}

/// The daytime line for `now` (no line end) in `zone`. A pattern [`parse_format`] accepted
/// always formats; should one not, the client gets RFC 3339 rather than a panic.
pub fn render(format: &DaytimeFormat, zone: &Zone, now: DateTime<Utc>) -> String {
    try_render(format, zone, now).unwrap_or_else(|_| {
        let now = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        render_capped(now)
    })
}

fn try_render(
    format: &DaytimeFormat,
    zone: &Zone,
    now: DateTime<Utc>,
) -> Result<String, std::fmt::Error> {
    let local = match zone {
        Zone::Utc => None,
        Zone::Local { offset, name } => FixedOffset::east_opt(*offset).map(|o| (o, name)),
    };
    let line = match local {
        // An offset of a day or more cannot come from localtime_r; UTC is the safe reading.
        None => render_in(format, &now, Some("UTC"), "-UTC".to_string()),
        Some((offset, name)) => {
            let now = now.with_timezone(&offset);
            // RFC 867's example ends `17:37:43-PST`: a named zone goes after a `-`; a zone
            // with no name (`+04`) would read `-+04`, so it keeps the numeric offset.
            let suffix = match name {
                Some(name) if name.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                    format!("-{name}")
                }
                _ => now.format("%z").to_string(),
            };
            render_in(format, &now, name.as_deref(), suffix)
        }
    }?;
    Ok(render_capped(line))
}

fn render_capped(mut line: String) -> String {
    if line.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

/// `now` in `format`; `zone_name` is what `%Z` prints (chrono's own `%Z` is the numeric
/// offset for a fixed offset, where date(1) prints the abbreviation); `rfc867_zone` ends the
/// RFC 867 line.
fn render_in<Tz: chrono::TimeZone>(
    format: &DaytimeFormat,
    now: &DateTime<Tz>,
    zone_name: Option<&str>,
    rfc867_zone: String,
) -> Result<String, std::fmt::Error>
where
    Tz::Offset: std::fmt::Display,
{
    Ok(match format {
        DaytimeFormat::Rfc867 => format!("{}{rfc867_zone}", now.format("%A, %B %-d, %Y %H:%M:%S")),
        DaytimeFormat::Rfc3339 => now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        DaytimeFormat::Rfc2822 => now.to_rfc2822(),
        DaytimeFormat::Ctime => now.format("%a %b %e %H:%M:%S %Y").to_string(),
        DaytimeFormat::Pattern(pattern) => {
            let items = StrftimeItems::new(pattern).map(|item| match (item, zone_name) {
                (Item::Fixed(Fixed::TimezoneName), Some(name)) => Item::Literal(name),
                (item, _) => item,
            });
            // Written, not `to_string()`: a formatting error is an error, never a panic.
            let mut line = String::new();
            write!(line, "{}", now.format_with_items(items))?;
            line
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn moment() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 11, 32, 12).unwrap()
    }

    #[test]
    fn every_named_format_in_utc() {
        let cases = [
            ("rfc867", "Saturday, November 21, 2026 11:32:12-UTC"),
            ("rfc3339", "2026-11-21T11:32:12+00:00"),
            ("rfc2822", "Sat, 21 Nov 2026 11:32:12 +0000"),
            ("ctime", "Sat Nov 21 11:32:12 2026"),
            ("%Y/%m/%d", "2026/11/21"),
        ];
        for (name, expected) in cases {
            let format = parse_format(name).unwrap();
            assert_eq!(render(&format, &Zone::Utc, moment()), expected, "{name}");
        }
        let early = Utc.with_ymd_and_hms(2026, 3, 5, 1, 2, 3).unwrap();
        assert_eq!(
            render(&DaytimeFormat::Rfc867, &Zone::Utc, early),
            "Thursday, March 5, 2026 01:02:03-UTC"
        );
        assert_eq!(
            render(&DaytimeFormat::Ctime, &Zone::Utc, early),
            "Thu Mar  5 01:02:03 2026"
        );
    }

    fn local(offset: i32, name: Option<&str>) -> Zone {
        Zone::Local {
            offset,
            name: name.map(str::to_string),
        }
    }

    #[test]
    fn local_time_carries_the_zone_name_as_date_does() {
        let cet = local(3600, Some("CET"));
        let pattern = parse_format("%H:%M %Z %z").unwrap();
        assert_eq!(render(&pattern, &cet, moment()), "12:32 CET +0100");
        assert_eq!(
            render(&DaytimeFormat::Rfc867, &cet, moment()),
            "Saturday, November 21, 2026 12:32:12-CET"
        );
        assert_eq!(
            render(&DaytimeFormat::Rfc2822, &cet, moment()),
            "Sat, 21 Nov 2026 12:32:12 +0100"
        );
        // date(1)'s %Z in UTC.
        assert_eq!(render(&pattern, &Zone::Utc, moment()), "11:32 UTC +0000");
        assert_eq!(
            render(&pattern, &local(0, Some("UTC")), moment()),
            "11:32 UTC +0000"
        );
        // A zone with no name: %Z is the tz database's `+04`, the RFC 867 line numeric.
        let dubai = local(4 * 3600, Some("+04"));
        assert_eq!(render(&pattern, &dubai, moment()), "15:32 +04 +0400");
        assert_eq!(
            render(&DaytimeFormat::Rfc867, &dubai, moment()),
            "Saturday, November 21, 2026 15:32:12+0400"
        );
        // No usable name: the numeric offset everywhere.
        let unnamed = local(-3 * 3600 - 1800, None);
        assert!(render(&DaytimeFormat::Rfc867, &unnamed, moment()).ends_with("08:02:12-0330"));
        // An impossible offset: UTC.
        assert!(render(&DaytimeFormat::Rfc867, &local(90_000, None), moment()).ends_with("-UTC"));
    }

    #[test]
    fn zone_names_are_checked() {
        assert_eq!(zone_name(b"CEST").as_deref(), Some("CEST"));
        assert_eq!(zone_name(b"+0330").as_deref(), Some("+0330"));
        assert_eq!(zone_name(b""), None);
        assert_eq!(zone_name(b"C\r\nX"), None);
        assert_eq!(zone_name(b"A B"), None);
        assert_eq!(zone_name(&[b'A'; MAX_ZONE_NAME + 1]), None);
        assert_eq!(zone_name("é".as_bytes()), None);
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!(parse_format("rfc999").is_err());
        assert!(parse_format("%Q %").is_err());
        assert!(parse_format("%Y\n%m").is_err());
        assert!(parse_format("%Y%n%m").is_err());
        assert!(parse_format("%Y\x07").is_err());
        assert!(parse_format("%Y\x00").is_err());
        assert!(parse_format("%Y\u{85}").is_err());
        // The output is one line of text: no tab either (issue 19 item 2).
        assert!(parse_format("%Y\t%m").is_err());
        assert!(parse_format("%Y%t%m").is_err());
        // Parse-only specifiers are refused at start, not when a client connects (item 1).
        assert!(parse_format("%#z").is_err());
        assert!(parse_format("%Y %#z").is_err());
        assert!(parse_format("%Y %z %:z %Z").is_ok());
        assert!(parse_format("").is_err());
    }

    #[test]
    fn a_long_pattern_is_capped() {
        let pattern = DaytimeFormat::Pattern("%Y".repeat(400));
        assert!(render(&pattern, &Zone::Utc, moment()).len() <= MAX_LINE);
    }
}
