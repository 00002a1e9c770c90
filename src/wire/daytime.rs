//! The RFC 867 daytime line in the formats people parse: RFC 867's own example style (the
//! default), RFC 3339, RFC 2822, ctime(3), or a strftime pattern of the user's.
//!
//! The pattern is checked once when the server starts (a usage error, exit 2), so rendering
//! for a client can never fail; its output is capped so a pattern cannot make a reply large.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local, Utc};

/// The longest line a pattern may produce (RFC 867 names no limit; qotd's 512 is a fair one).
pub const MAX_LINE: usize = 511;

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
            if StrftimeItems::new(text).any(|item| matches!(item, Item::Error)) {
                return Err(format!("\"{text}\" is not a valid strftime pattern"));
            }
            if text.contains(['\r', '\n']) {
                return Err("the pattern must stay on one line".into());
            }
            DaytimeFormat::Pattern(text.to_string())
        }
        _ => {
            return Err(format!(
                "unknown format \"{text}\" (rfc867, rfc3339, rfc2822, ctime, or a strftime \
                 pattern such as '%Y-%m-%d %H:%M:%S')"
            ))
        }
    })
}

/// The daytime line for `now` (no line end), in UTC or the local zone.
pub fn render(format: &DaytimeFormat, utc: bool, now: DateTime<Utc>) -> String {
    let mut line = if utc {
        render_in(format, &now, "-UTC")
    } else {
        render_in(format, &now.with_timezone(&Local), "%z")
    };
    if line.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

fn render_in<Tz: chrono::TimeZone>(format: &DaytimeFormat, now: &DateTime<Tz>, zone: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    match format {
        DaytimeFormat::Rfc867 => format!(
            "{}{}",
            now.format("%A, %B %-d, %Y %H:%M:%S"),
            now.format(zone)
        ),
        DaytimeFormat::Rfc3339 => now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        DaytimeFormat::Rfc2822 => now.to_rfc2822(),
        DaytimeFormat::Ctime => now.format("%a %b %e %H:%M:%S %Y").to_string(),
        DaytimeFormat::Pattern(pattern) => now.format(pattern).to_string(),
    }
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
            assert_eq!(render(&format, true, moment()), expected, "{name}");
        }
        let early = Utc.with_ymd_and_hms(2026, 3, 5, 1, 2, 3).unwrap();
        assert_eq!(
            render(&DaytimeFormat::Rfc867, true, early),
            "Thursday, March 5, 2026 01:02:03-UTC"
        );
        assert_eq!(
            render(&DaytimeFormat::Ctime, true, early),
            "Thu Mar  5 01:02:03 2026"
        );
    }

    #[test]
    fn local_time_carries_its_offset() {
        let line = render(&DaytimeFormat::Rfc867, false, moment());
        let offset = &line[line.len() - 5..];
        assert!(offset.starts_with(['+', '-']), "{line}");
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!(parse_format("rfc999").is_err());
        assert!(parse_format("%Q %").is_err());
        assert!(parse_format("%Y\n%m").is_err());
        assert!(parse_format("").is_err());
    }

    #[test]
    fn a_long_pattern_is_capped() {
        let pattern = DaytimeFormat::Pattern("%Y".repeat(400));
        assert!(render(&pattern, true, moment()).len() <= MAX_LINE);
    }
}
