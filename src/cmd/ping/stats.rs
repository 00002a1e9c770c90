//! Ping statistics computed exactly as iputils computes them, so that our summary line can be
//! compared with iputils' character for character: RTTs in whole microseconds, sums kept as
//! doubles and truncated where iputils truncates, the mean deviation through iputils' integer
//! square root, loss printed with C's `%g`, and the same decimals rule for each reply's time.

/// Counters and RTT sums of one ping run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Requests sent.
    pub transmitted: u64,
    /// Distinct replies (duplicates and corrupted replies excluded).
    pub received: u64,
    /// Replies to a sequence already answered.
    pub duplicates: u64,
    /// Replies whose checksum failed.
    pub corrupted: u64,
    /// ICMP errors about our requests.
    pub errors: u64,
    /// Sum of RTTs in µs (a double, as in iputils).
    pub tsum: f64,
    /// Sum of squared RTTs in µs².
    pub tsum2: f64,
    /// Smallest RTT in µs.
    pub tmin: Option<i64>,
    /// Largest RTT in µs.
    pub tmax: i64,
    /// The exponentially weighted average RTT ×8, in µs (iputils' `rtt`).
    pub ewma8: i64,
    /// Whether RTTs are measured at all (payload of 16 bytes or more).
    pub timing: bool,
}

impl Stats {
    /// Counts one RTT, duplicates included (iputils adds them to the sums too).
    pub fn add_rtt(&mut self, micros: i64) {
        let micros = micros.max(0);
        self.tsum += micros as f64;
        self.tsum2 += (micros as f64) * (micros as f64);
        self.tmin = Some(self.tmin.map_or(micros, |m| m.min(micros)));
        self.tmax = self.tmax.max(micros);
        self.ewma8 = if self.ewma8 == 0 {
            micros * 8
        } else {
            self.ewma8 + micros - self.ewma8 / 8
        };
    }

    /// (min, avg, max, mdev) in µs, or `None` without replies or timing.
    pub fn rtt_summary(&self) -> Option<(i64, i64, i64, i64)> {
        if self.received == 0 || !self.timing {
            return None;
        }
        let total = (self.received + self.duplicates) as f64;
        let avg = (self.tsum / total) as i64;
        let var = if self.tsum < f64::from(i32::MAX) {
            // iputils' order of operations, which keeps small RTTs from rounding to zero.
            ((self.tsum2 - (self.tsum * self.tsum) / total) / total) as i64
        } else {
            (self.tsum2 / total) as i64 - avg * avg
        };
        Some((self.tmin.unwrap_or(0), avg, self.tmax, llsqrt(var)))
    }

    /// The summary figures every ping's JSON summary carries: transmitted, errors, loss in
    /// percent, the run's time and the rtt figures in ms (null without replies).
    pub fn json_figures(&self, elapsed_us: u64) -> serde_json::Value {
        let rtt = self.rtt_summary();
        let ms = |pick: fn((i64, i64, i64, i64)) -> i64| rtt.map(|r| pick(r) as f64 / 1000.0);
        let loss = if self.transmitted == 0 {
            0.0
        } else {
            (self.transmitted as f64 - self.received as f64) * 100.0 / self.transmitted as f64
        };
        serde_json::json!({
            "type": "summary",
            "transmitted": self.transmitted,
            "errors": self.errors,
            "loss_percent": loss,
            "time_ms": (elapsed_us + 500) / 1000,
            "min_ms": ms(|r| r.0),
            "avg_ms": ms(|r| r.1),
            "max_ms": ms(|r| r.2),
            "mdev_ms": ms(|r| r.3),
        })
    }

    /// `rtt min/avg/max/mdev = ... ms` (without a line end), or `None` without replies.
    pub fn rtt_line(&self) -> Option<String> {
        let (min, avg, max, mdev) = self.rtt_summary()?;
        Some(format!(
            "rtt min/avg/max/mdev = {}/{}/{}/{} ms",
            ms3(min),
            ms3(avg),
            ms3(max),
            ms3(mdev)
        ))
    }

    /// Packet loss in percent, as iputils prints it (`%g` of a float).
    pub fn loss_text(&self) -> String {
        if self.transmitted == 0 {
            return "0".into();
        }
        let lost = self.transmitted as i64 - self.received as i64;
        let loss = ((lost as f64 * 100.0) / self.transmitted as f64) as f32;
        format_g(f64::from(loss))
    }

    /// The summary after `--- HOST ping statistics ---`: the counts line, and the rtt line
    /// with its extras (or an empty line, as iputils prints when there is none).
    pub fn summary(&self, elapsed_us: u64, ipg: bool, pipe: u32) -> String {
        let mut text = format!(
            "{} packets transmitted, {} received",
            self.transmitted, self.received
        );
        if self.duplicates > 0 {
            text.push_str(&format!(", +{} duplicates", self.duplicates));
        }
        if self.corrupted > 0 {
            text.push_str(&format!(", +{} corrupted", self.corrupted));
        }
        if self.errors > 0 {
            text.push_str(&format!(", +{} errors", self.errors));
        }
        if self.transmitted > 0 {
            text.push_str(&format!(
                ", {}% packet loss, time {}ms",
                self.loss_text(),
                (elapsed_us + 500) / 1000
            ));
        }
        text.push('\n');
        let mut comma = "";
        if let Some(line) = self.rtt_line() {
            text.push_str(&line);
            comma = ", ";
        }
        if pipe > 1 {
            text.push_str(&format!("{comma}pipe {pipe}"));
            comma = ", ";
        }
        if self.received > 0 && ipg && self.transmitted > 1 {
            let gap = elapsed_us as i64 / (self.transmitted as i64 - 1);
            text.push_str(&format!(
                "{comma}ipg/ewma {}/{} ms",
                ms3(gap),
                ms3(self.ewma8 / 8)
            ));
        }
        text.push('\n');
        text
    }

    /// The SIGQUIT status line (without the leading `\r`).
    pub fn status(&self) -> String {
        let loss = if self.transmitted > 0 {
            (self.transmitted as i64 - self.received as i64) * 100 / self.transmitted as i64
        } else {
            0
        };
        let mut text = format!(
            "{}/{} packets, {loss}% loss",
            self.received, self.transmitted
        );
        if self.received > 0 && self.timing {
            let avg = (self.tsum / (self.received + self.duplicates) as f64) as i64;
            text.push_str(&format!(
                ", min/avg/ewma/max = {}/{}/{}/{} ms",
                ms3(self.tmin.unwrap_or(0)),
                ms3(avg),
                ms3(self.ewma8 / 8),
                ms3(self.tmax)
            ));
        }
        text
    }
}

/// µs as `ms.mmm` with C's `%ld.%03ld` of `/1000` and `%1000` (truncation toward zero).
pub fn ms3(micros: i64) -> String {
    format!("{}.{:03}", micros / 1000, (micros % 1000).abs())
}

/// A reply's time as iputils prints it: 3 decimals below 1 ms, 2 below 10 ms, 1 below 100 ms,
/// none above, each rounded the way iputils rounds.
pub fn reply_time(micros: i64) -> String {
    if micros >= 100_000 - 50 {
        format!("{}", (micros + 500) / 1000)
    } else if micros >= 10_000 - 5 {
        format!("{}.{}", (micros + 50) / 1000, ((micros + 50) % 1000) / 100)
    } else if micros >= 1000 {
        format!("{}.{:02}", (micros + 5) / 1000, ((micros + 5) % 1000) / 10)
    } else {
        format!("{}.{:03}", micros / 1000, micros % 1000)
    }
}

/// iputils' integer square root (Newton's method on integers).
pub fn llsqrt(a: i64) -> i64 {
    let mut prev = i64::MAX;
    let mut x = a;
    if x > 0 {
        while x < prev {
            prev = x;
            x = (x + a / x) / 2;
        }
    }
    x
}

/// C's `%g`: 6 significant digits, trailing zeros removed, exponent form outside 1e-4..1e6.
pub fn format_g(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let exponent = value.abs().log10().floor() as i32;
    if !(-4..6).contains(&exponent) {
        let text = format!("{value:.5e}");
        // Rust writes `4.28571e1`; C writes `4.28571e+01`, and trims zeros of the mantissa.
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = trim_zeros(mantissa);
        let exp: i32 = exp.parse().unwrap_or(0);
        return format!(
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
    }
    let decimals = (5 - exponent).max(0) as usize;
    trim_zeros(&format!("{value:.decimals$}")).to_string()
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of(rtts: &[i64], duplicates: &[i64], transmitted: u64) -> Stats {
        let mut stats = Stats {
            timing: true,
            transmitted,
            ..Stats::default()
        };
        for &rtt in rtts {
            stats.received += 1;
            stats.add_rtt(rtt);
        }
        for &rtt in duplicates {
            stats.duplicates += 1;
            stats.add_rtt(rtt);
        }
        stats
    }

    #[test]
    fn summary_matches_iputils_for_known_rtts() {
        // From iputils 20221126 runs (see the note): RTTs 48, 33, 36 µs.
        let stats = stats_of(&[48, 33, 36], &[], 3);
        assert_eq!(
            stats.summary(2_053_000, false, 1),
            "3 packets transmitted, 3 received, 0% packet loss, time 2053ms\n\
             rtt min/avg/max/mdev = 0.033/0.039/0.048/0.006 ms\n"
        );
        // 32, 32 (DUP!), 43 µs: the duplicate counts in the sums and the divisor.
        let dup = stats_of(&[32, 43], &[32], 2);
        assert_eq!(
            dup.summary(1_009_000, false, 1),
            "2 packets transmitted, 2 received, +1 duplicates, 0% packet loss, time 1009ms\n\
             rtt min/avg/max/mdev = 0.032/0.035/0.043/0.005 ms\n"
        );
        // ::1: 142, 38, 41 µs.
        assert_eq!(
            stats_of(&[142, 38, 41], &[], 3).rtt_summary(),
            Some((38, 73, 142, 48))
        );
    }

    #[test]
    fn loss_errors_and_empty_rtt_line() {
        let mut stats = stats_of(&[], &[], 3);
        stats.errors = 3;
        assert_eq!(
            stats.summary(2_025_000, false, 1),
            "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2025ms\n\n"
        );
        let partial = stats_of(&[100, 100, 100, 100], &[], 7);
        assert_eq!(partial.loss_text(), "42.8571");
        assert_eq!(stats_of(&[1], &[], 2).loss_text(), "50");
        assert_eq!(stats_of(&[1, 1, 1], &[], 5).loss_text(), "40");
        let mut untimed = stats_of(&[], &[], 2);
        untimed.received = 2;
        untimed.timing = false;
        assert!(untimed
            .summary(1_022_000, false, 1)
            .ends_with("time 1022ms\n\n"));
    }

    #[test]
    fn flood_extras_and_status_line() {
        let stats = stats_of(&[3; 199], &[], 200);
        let text = stats.summary(1_600, true, 1);
        assert!(text.ends_with("ms, ipg/ewma 0.008/0.003 ms\n"), "{text}");
        assert_eq!(
            stats_of(&[27, 46, 41], &[], 3).status(),
            "3/3 packets, 0% loss, min/avg/ewma/max = 0.027/0.038/0.030/0.046 ms"
        );
        assert_eq!(stats_of(&[], &[], 4).status(), "0/4 packets, 100% loss");
    }

    #[test]
    fn reply_times_follow_the_decimals_rule() {
        let cases = [
            (45, "0.045"),
            (999, "0.999"),
            (1000, "1.00"),
            (9994, "9.99"),
            (9995, "10.0"),
            (99_949, "99.9"),
            (99_950, "100"),
            (1_234_567, "1235"),
        ];
        for (micros, text) in cases {
            assert_eq!(reply_time(micros), text, "{micros} µs");
        }
    }

    #[test]
    fn integer_square_root_and_g_format() {
        assert_eq!(llsqrt(0), 0);
        assert_eq!(llsqrt(26), 5);
        assert_eq!(llsqrt(2304), 48);
        assert_eq!(llsqrt(-3), -3);
        assert_eq!(format_g(100.0), "100");
        assert_eq!(format_g(0.5), "0.5");
        assert_eq!(format_g(33.333_332_061_767_58), "33.3333");
        assert_eq!(format_g(0.000_01), "1e-05");
    }
}
