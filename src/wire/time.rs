//! RFC 868 time: the 32-bit big-endian count of seconds since 1900-01-01 00:00 UTC, both ways,
//! with the 2036 wrap handled.
//!
//! The count overflows 32 bits on 2036-02-07 06:28:16 UTC and starts again from 0. A reader
//! cannot tell the eras apart from the 4 bytes, so it picks a window of 2^32 seconds: values
//! at or above [`PIVOT`] (2^31, which is 1968-01-20) are read in the first era (1968-2036),
//! values below it in the second (2036-2104). Every time a working server sends between 1968
//! and 2104 is read right, and rdate, busybox and chrony's readers make the same choice.
//! Leap seconds are not counted (RFC 868 is silent; every implementation uses POSIX time).

use chrono::{DateTime, TimeZone, Utc};

/// Seconds from 1900-01-01 to 1970-01-01 (70 years with 17 leap days).
pub const UNIX_OFFSET: i64 = 2_208_988_800;
/// Values below this are read in the era after the 2036 wrap.
pub const PIVOT: u32 = 1 << 31;
/// The size of the reply.
pub const LEN: usize = 4;

/// The 4 bytes for `when` (the count modulo 2^32: after 2036 it wraps, as RFC 868 servers do).
pub fn encode(when: DateTime<Utc>) -> [u8; LEN] {
    let seconds = when.timestamp() + UNIX_OFFSET;
    (seconds.rem_euclid(1 << 32) as u32).to_be_bytes()
}

/// The Unix time of an RFC 868 value, in the window the pivot gives (1968-01-20 to 2104-02-26).
pub fn unix_seconds(value: u32) -> i64 {
    let era = if value < PIVOT { 1i64 << 32 } else { 0 };
    i64::from(value) + era - UNIX_OFFSET
}

/// Why a reply is not an RFC 868 time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLength(pub usize);

impl std::fmt::Display for BadLength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the reply is {} byte{}; RFC 868 time is 4 (is it a time server?)",
            self.0,
            if self.0 == 1 { "" } else { "s" }
        )
    }
}

/// Reads a reply: exactly 4 bytes.
pub fn decode(reply: &[u8]) -> Result<(u32, DateTime<Utc>), BadLength> {
    let bytes: [u8; LEN] = reply.try_into().map_err(|_| BadLength(reply.len()))?;
    let value = u32::from_be_bytes(bytes);
    // Every u32 maps into 1968..2104, which chrono always holds.
    let when = Utc
        .timestamp_opt(unix_seconds(value), 0)
        .single()
        .unwrap_or_default();
    Ok((value, when))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn known_values() {
        // RFC 868's own examples.
        assert_eq!(unix_seconds(2_208_988_800), 0);
        assert_eq!(
            encode(utc("1970-01-01T00:00:00Z")),
            2_208_988_800u32.to_be_bytes()
        );
        assert_eq!(
            decode(&2_398_291_200u32.to_be_bytes()).unwrap().1,
            utc("1976-01-01T00:00:00Z")
        );
        // What xinetd sent during this work.
        assert_eq!(
            decode(&[0xee, 0xc0, 0x9c, 0x13]).unwrap().1,
            utc("2026-12-07T02:44:35Z")
        );
    }

    #[test]
    fn the_2036_wrap() {
        let last = utc("2036-02-07T06:28:15Z");
        let first = utc("2036-02-07T06:28:16Z");
        assert_eq!(encode(last), [0xff; 4]);
        assert_eq!(encode(first), [0; 4]);
        assert_eq!(decode(&[0xff; 4]).unwrap().1, last);
        assert_eq!(decode(&[0; 4]).unwrap().1, first);
        // Both ends of the window.
        assert_eq!(
            decode(&PIVOT.to_be_bytes()).unwrap().1,
            utc("1968-01-20T03:14:08Z")
        );
        assert_eq!(
            decode(&(PIVOT - 1).to_be_bytes()).unwrap().1,
            utc("2104-02-26T09:42:23Z")
        );
    }

    #[test]
    fn round_trips_across_the_window() {
        for text in [
            "1968-01-20T03:14:08Z",
            "1999-12-31T23:59:59Z",
            "2026-12-07T02:50:00Z",
            "2036-02-07T06:28:16Z",
            "2070-06-01T12:00:00Z",
            "2104-02-26T09:42:23Z",
        ] {
            let when = utc(text);
            assert_eq!(decode(&encode(when)).unwrap().1, when, "{text}");
        }
    }

    #[test]
    fn other_lengths_are_refused() {
        assert_eq!(decode(b""), Err(BadLength(0)));
        assert_eq!(decode(b"abc"), Err(BadLength(3)));
        let err = decode(b"Mon Dec  7 02:44:35 2026\r\n").unwrap_err();
        assert!(err.to_string().contains("26 bytes"), "{err}");
    }
}
