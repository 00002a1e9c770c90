//! `nk ping`: ICMP echo to 127.0.0.1 and ::1, and to addresses inside private network
//! namespaces (`unshare -n`) the tests set up themselves, checked line by line against the
//! formats of iputils `ping` 20221126 (and against iputils itself, run the same way).
//!
//! What a user sees is asserted: stdout lines, the exit status, the first stderr line. Numbers
//! that vary between runs (RTTs, the `time Nms` of the summary, `-D` timestamps) are checked for
//! their shape (iputils' decimals rule) and their consistency, never for their value. The only
//! timing assertions are generous upper bounds ("`-w 1` ends within 3 s") plus the lower bound a
//! deadline implies.
//!
//! The host's namespace is never changed: sysctls (`ping_group_range`, `icmp_echo_ignore_all`),
//! routes and nft rules are set only inside `unshare -n`. Runs as an unprivileged user use
//! `setpriv` on a copy of the binary in a world-readable temporary directory.
//!
//! A missing peer (`ping` from iputils-ping, `setpriv`/`unshare` from util-linux, `ip` from
//! iproute2, `nft` from nftables) fails the test with an install hint; nothing skips.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// helpers: running
// ---------------------------------------------------------------------------

/// Runs `nk ping ARGS` to completion, killing it (and failing) after `secs`.
fn ping(args: &[&str], secs: f64) -> Finished {
    let mut full = vec!["ping"];
    full.extend_from_slice(args);
    run_nk(full, In::Null, secs)
}

/// Runs iputils `ping ARGS` to completion within `secs`.
fn iputils(args: &[&str], secs: f64) -> Finished {
    require_iputils();
    let mut cmd = Command::new("ping");
    cmd.args(args);
    cmd.env("LC_ALL", "C");
    Proc::spawn(
        &format!("iputils ping {}", args.join(" ")),
        cmd,
        In::Null,
        Out::Pipe,
    )
    .wait(secs)
}

/// Fails unless `ping` on PATH is iputils' (the reference for every format here).
fn require_iputils() {
    require_tool("ping", "iputils-ping");
    let out = Command::new("ping")
        .arg("-V")
        .output()
        .expect("run ping -V");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("iputils"),
        "`ping` on PATH is not iputils' (install iputils-ping); `ping -V` said: {text}"
    );
}

/// Runs `argv` in a fresh network namespace (loopback up) after the shell commands `setup`.
fn in_netns(setup: &str, argv: &[&str], secs: f64) -> Finished {
    require_netns();
    Proc::spawn(
        &format!("[netns: {setup}] {}", argv.join(" ")),
        netns_command(setup, argv),
        In::Null,
        Out::Pipe,
    )
    .wait(secs)
}

/// `nk ping ARGS` (as root) in a fresh network namespace after `setup`.
fn nk_ping_in_netns(setup: &str, args: &[&str], secs: f64) -> Finished {
    let mut argv = vec![NK, "ping"];
    argv.extend_from_slice(args);
    in_netns(setup, &argv, secs)
}

/// Namespace setup under which 10.99.0.2 goes out on the loopback device but is nobody's
/// address: with forwarding off (a new namespace's default) the kernel drops the request
/// silently, so nothing ever answers and no ICMP error comes back either.
const BLACKHOLE: &str = "ip route add 10.99.0.0/24 dev lo";
const SILENT_HOST: &str = "10.99.0.2";

/// Namespace setup under which the kernel does not answer echo requests on either family; a
/// raw socket still sees its own requests come in on the loopback.
const ECHO_IGNORED: &str = "echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all && \
                            echo 1 > /proc/sys/net/ipv6/icmp/echo_ignore_all";

/// Namespace setup under which every echo request is rejected by nft in the `hook` chain
/// (`input` or `output`): IPv4 with ICMP host unreachable, IPv6 with ICMPv6 address
/// unreachable, both of which iputils prints as `From ...` error lines. Rejected on input, the
/// request was sent and the error comes back; rejected on output, the send itself also fails
/// (EPERM) while the error is queued all the same.
fn rejecting(hook: &str) -> String {
    format!(
        "nft add table inet nkping && \
         nft add chain inet nkping c '{{ type filter hook {hook} priority 0 ; }}' && \
         nft add rule inet nkping c icmp type echo-request reject with icmp type host-unreachable && \
         nft add rule inet nkping c icmpv6 type echo-request \
             reject with icmpv6 type addr-unreachable"
    )
}

/// A copy of the binary that an unprivileged user can run (target/ may not be traversable),
/// in a 0755 directory under /tmp (TMPDIR may not be traversable either), kept alive by the
/// returned guard.
fn nk_for_nobody() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("nk-ping-")
        .tempdir_in("/tmp")
        .expect("tempdir in /tmp");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tempdir");
    let copy = dir.path().join("nk");
    std::fs::copy(NK, &copy).unwrap_or_else(|e| panic!("copy {NK}: {e}"));
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod nk");
    (dir, copy)
}

/// `setpriv` arguments that make the rest of argv run as nobody:nogroup with no
/// supplementary groups (and, since the uid changes from 0, no capabilities).
const AS_NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

/// `nk ping ARGS` as user nobody in a fresh network namespace whose
/// `net.ipv4.ping_group_range` is `range`.
fn nobody_ping_in_netns(range: &str, args: &[&str], secs: f64) -> Finished {
    require_tool("setpriv", "util-linux");
    let (_dir, copy) = nk_for_nobody();
    let copy = copy.to_str().expect("utf-8 temp path").to_string();
    let mut argv: Vec<&str> = AS_NOBODY.to_vec();
    argv.push(&copy);
    argv.push("ping");
    argv.extend_from_slice(args);
    let setup = format!("echo '{range}' > /proc/sys/net/ipv4/ping_group_range");
    in_netns(&setup, &argv, secs)
}

// ---------------------------------------------------------------------------
// helpers: parsing what iputils prints
// ---------------------------------------------------------------------------

/// stdout split into lines (a final empty line, as in `...\n\n`, is kept as "").
fn out_lines(out: &Finished) -> Vec<String> {
    let text = out.stdout_text();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "stdout does not end with a newline\n{}",
        out.describe()
    );
    text.lines().map(str::to_string).collect()
}

/// A non-empty run of ASCII digits, as a number.
fn num(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A `time=` value in ms, if it follows iputils' decimals rule: under 1 ms three decimals,
/// under 10 ms two, under 100 ms one, from 100 ms on none.
fn reply_time(s: &str) -> Option<f64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let i = num(int)?;
    if int.len() > 1 && int.starts_with('0') {
        return None;
    }
    if s.contains('.') && num(frac).is_none() {
        return None;
    }
    let ok = match frac.len() {
        3 => i == 0,
        2 => (1..=9).contains(&i),
        1 => (10..=99).contains(&i),
        0 => i >= 100,
        _ => false,
    };
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

/// `\d+\.\d{3}` (the summary's RTT figures), as a number.
fn ms3(s: &str) -> Option<f64> {
    let (int, frac) = s.split_once('.')?;
    num(int)?;
    if frac.len() != 3 {
        return None;
    }
    num(frac)?;
    s.parse().ok()
}

/// One reply line: `BYTES bytes from FROM: icmp_seq=SEQ ttl=TTL[ time=T ms]`.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    bytes: u64,
    from: String,
    seq: u64,
    ttl: u64,
    /// The printed time text and its value in ms.
    time: Option<(String, f64)>,
}

fn parse_reply(line: &str) -> Option<Reply> {
    let (bytes, rest) = line.split_once(" bytes from ")?;
    let at = rest.find(": icmp_seq=")?;
    let from = &rest[..at];
    let rest = &rest[at + ": icmp_seq=".len()..];
    let (seq, rest) = rest.split_once(" ttl=")?;
    let (ttl, time) = match rest.split_once(" time=") {
        Some((ttl, t)) => {
            let t = t.strip_suffix(" ms")?;
            (ttl, Some((t.to_string(), reply_time(t)?)))
        }
        None => (rest, None),
    };
    if from.is_empty() || from.contains(' ') {
        return None;
    }
    Some(Reply {
        bytes: num(bytes)?,
        from: from.to_string(),
        seq: num(seq)?,
        ttl: num(ttl)?,
        time,
    })
}

/// The packets line of the summary.
#[derive(Debug, Clone, PartialEq)]
struct Counts {
    transmitted: u64,
    received: u64,
    duplicates: u64,
    errors: u64,
    loss: String,
    time_ms: u64,
}

/// `TX packets transmitted, RX received[, +N duplicates][, +N errors], L% packet loss, time Nms`.
fn parse_counts(line: &str) -> Option<Counts> {
    let parts: Vec<&str> = line.split(", ").collect();
    if parts.len() < 4 {
        return None;
    }
    let transmitted = num(parts[0].strip_suffix(" packets transmitted")?)?;
    let received = num(parts[1].strip_suffix(" received")?)?;
    let (mut duplicates, mut errors) = (0, 0);
    for extra in &parts[2..parts.len() - 2] {
        let extra = extra.strip_prefix('+')?;
        if let Some(n) = extra.strip_suffix(" duplicates") {
            duplicates = num(n)?;
        } else if let Some(n) = extra.strip_suffix(" errors") {
            errors = num(n)?;
        } else {
            return None;
        }
    }
    let loss = parts[parts.len() - 2].strip_suffix("% packet loss")?;
    let time_ms = num(parts[parts.len() - 1]
        .strip_prefix("time ")?
        .strip_suffix("ms")?)?;
    Some(Counts {
        transmitted,
        received,
        duplicates,
        errors,
        loss: loss.to_string(),
        time_ms,
    })
}

/// C's `%g` of the float iputils computes for the loss: `(tx - rx) * 100 / tx`.
fn loss_text(transmitted: u64, received: u64) -> String {
    let v = ((transmitted - received) as f64 * 100.0 / transmitted as f64) as f32 as f64;
    if v == 0.0 {
        return "0".into();
    }
    // 6 significant digits, trailing zeros (and a trailing point) removed.
    let decimals = (5 - v.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `rtt min/avg/max/mdev = a/b/c/d ms[, ipg/ewma e/f ms]`, each figure `\d+\.\d{3}`.
fn parse_rtt(line: &str) -> Option<([f64; 4], Option<[f64; 2]>)> {
    let rest = line.strip_prefix("rtt min/avg/max/mdev = ")?;
    let (main, ipg) = match rest.split_once(" ms, ipg/ewma ") {
        Some((main, ipg)) => (main, Some(ipg.strip_suffix(" ms")?)),
        None => (rest.strip_suffix(" ms")?, None),
    };
    let figures: Vec<f64> = main.split('/').map(ms3).collect::<Option<_>>()?;
    let figures: [f64; 4] = figures.try_into().ok()?;
    let ipg = match ipg {
        Some(s) => {
            let v: Vec<f64> = s.split('/').map(ms3).collect::<Option<_>>()?;
            Some(v.try_into().ok()?)
        }
        None => None,
    };
    Some((figures, ipg))
}

/// Panics unless `line` is a reply of `bytes` from `from` with `icmp_seq=seq ttl=64`, with a
/// time (following the decimals rule) exactly when `timing`; returns the time in ms.
fn expect_reply(out: &Finished, line: &str, bytes: u64, from: &str, seq: u64, timing: bool) -> f64 {
    let r = parse_reply(line).unwrap_or_else(|| {
        panic!(
            "not a reply line `{bytes} bytes from {from}: icmp_seq={seq} ttl=64 time=T ms` \
             (T per iputils' decimals rule): {line:?}\n{}",
            out.describe()
        )
    });
    let want = Reply {
        bytes,
        from: from.to_string(),
        seq,
        ttl: 64,
        time: if timing { r.time.clone() } else { None },
    };
    assert_eq!(r, want, "reply line {line:?}\n{}", out.describe());
    assert!(
        r.time.is_some() == timing,
        "reply line {line:?}: time= {} expected\n{}",
        if timing { "is" } else { "is not" },
        out.describe()
    );
    r.time.map_or(0.0, |t| t.1)
}

/// Panics unless `line` is the packets line with exactly these counts and the loss iputils
/// would print for them; returns the parsed line.
fn expect_counts(out: &Finished, line: &str, tx: u64, rx: u64, errors: u64) -> Counts {
    let c = parse_counts(line).unwrap_or_else(|| {
        panic!(
            "not a packets line `N packets transmitted, N received, L% packet loss, time Nms`: \
             {line:?}\n{}",
            out.describe()
        )
    });
    let want = Counts {
        transmitted: tx,
        received: rx,
        duplicates: 0,
        errors,
        loss: loss_text(tx, rx),
        time_ms: c.time_ms,
    };
    assert_eq!(c, want, "packets line {line:?}\n{}", out.describe());
    c
}

/// Panics unless `line` is an rtt line whose figures fit the reply times printed: min <= avg
/// <= max, mdev <= max - min, and (when every reply was under 1 ms, so printed with the same
/// three decimals) min and max equal the smallest and largest reply time.
fn expect_rtt(out: &Finished, line: &str, times: &[f64], ipg: bool) {
    let (f, ipg_figures) = parse_rtt(line).unwrap_or_else(|| {
        panic!(
            "not an rtt line `rtt min/avg/max/mdev = a/b/c/d ms` (each \\d+.\\d{{3}}): \
             {line:?}\n{}",
            out.describe()
        )
    });
    let [min, avg, max, mdev] = f;
    assert!(
        min <= avg && avg <= max && mdev <= max - min + 0.001,
        "rtt figures inconsistent (min <= avg <= max, mdev <= max - min): {line:?}\n{}",
        out.describe()
    );
    assert_eq!(
        ipg_figures.is_some(),
        ipg,
        "rtt line {line:?}: `, ipg/ewma a/b ms` {} expected\n{}",
        if ipg { "is" } else { "is not" },
        out.describe()
    );
    if !times.is_empty() && times.iter().all(|&t| t < 1.0) {
        let lo = times.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = times.iter().cloned().fold(0.0, f64::max);
        assert!(
            (min - lo).abs() < 1e-9 && (max - hi).abs() < 1e-9,
            "rtt min/max {min}/{max} are not the smallest/largest reply time {lo}/{hi}\n{}",
            out.describe()
        );
    }
}

/// Checks a whole text-mode run that got every reply: `header`, replies 1..=n of `bytes` from
/// `host`, the empty line, `--- HOST ping statistics ---`, the packets line, then the rtt line
/// (with timing) or an empty line (without). Returns the reply times.
fn expect_full_run(
    out: &Finished,
    header: &str,
    host: &str,
    bytes: u64,
    n: u64,
    timing: bool,
) -> Vec<f64> {
    let lines = out_lines(out);
    let n_us = n as usize;
    assert_eq!(
        lines.len(),
        n_us + 5,
        "want the header, {n} replies, an empty line, 2 summary lines and {}\n{}",
        if timing {
            "the rtt line"
        } else {
            "an empty line"
        },
        out.describe()
    );
    assert_eq!(lines[0], header, "header\n{}", out.describe());
    let times: Vec<f64> = (1..=n)
        .map(|seq| expect_reply(out, &lines[seq as usize], bytes, host, seq, timing))
        .collect();
    assert_eq!(
        lines[n_us + 1],
        "",
        "empty line before the summary\n{}",
        out.describe()
    );
    assert_eq!(
        lines[n_us + 2],
        format!("--- {host} ping statistics ---"),
        "summary title\n{}",
        out.describe()
    );
    expect_counts(out, &lines[n_us + 3], n, n, 0);
    if timing {
        expect_rtt(out, &lines[n_us + 4], &times, false);
    } else {
        assert_eq!(
            lines[n_us + 4],
            "",
            "without timing the summary ends with an empty line, as in iputils\n{}",
            out.describe()
        );
    }
    times
}

/// Runs `nk ping ARGS` (15 s at most), expects exit 0 and checks the whole run with
/// [`expect_full_run`]; the host is the last of `args`.
fn full_run(args: &[&str], header: &str, bytes: u64, n: u64, timing: bool) -> Finished {
    let out = ping(args, 15.0);
    out.expect_code(0);
    let host = args.last().expect("a host");
    expect_full_run(&out, header, host, bytes, n, timing);
    out
}

/// [`full_run`] of the default 56-byte payload to the loopback address last in `args`: `n`
/// timed replies after [`HEADER_V4`] or [`HEADER_V6`].
fn loopback_run(args: &[&str], n: u64) -> Finished {
    let header = match args.last() {
        Some(&"127.0.0.1") => HEADER_V4,
        Some(&"::1") => HEADER_V6,
        other => panic!("not a loopback address: {other:?}"),
    };
    full_run(args, header, 64, n, true)
}

/// A line with its run-dependent numbers replaced by placeholders (only where they have the
/// shape iputils gives them, so a malformed number still shows up as a difference).
fn normalize(line: &str) -> String {
    let mut line = line.to_string();
    // -D prefix
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((ts, tail)) = rest.split_once("] ") {
            if let Some((s, us)) = ts.split_once('.') {
                if num(s).is_some() && us.len() == 6 && num(us).is_some() {
                    line = format!("[TS] {tail}");
                }
            }
        }
    }
    if let Some(at) = line.find(" time=") {
        let tail = &line[at + " time=".len()..];
        if let Some(end) = tail.find(" ms") {
            if reply_time(&tail[..end]).is_some() {
                line = format!("{} time=T{}", &line[..at], &tail[end..]);
            }
        }
    }
    if parse_counts(&line).is_some() {
        if let Some(at) = line.rfind(", time ") {
            line = format!("{}, time Tms", &line[..at]);
        }
    }
    // `-l`: the rtt figures and `pipe N` (kept).
    if let Some((rtt, pipe)) = line.split_once(", pipe ") {
        if parse_rtt(rtt).is_some() && num(pipe).is_some() {
            line = format!("rtt min/avg/max/mdev = R/R/R/R ms, pipe {pipe}");
        }
    }
    if let Some((_, ipg)) = parse_rtt(&line) {
        line = "rtt min/avg/max/mdev = R/R/R/R ms".into();
        if ipg.is_some() {
            line.push_str(", ipg/ewma R/R ms");
        }
    }
    line
}

/// How nk's run differs from iputils' (stdout up to run-dependent numbers, exit status), or
/// `None` when it does not.
fn difference_from_iputils(nk: &Finished, reference: &Finished) -> Option<String> {
    let ours: Vec<String> = out_lines(nk).iter().map(|l| normalize(l)).collect();
    let theirs: Vec<String> = out_lines(reference).iter().map(|l| normalize(l)).collect();
    let mut why = Vec::new();
    if ours != theirs {
        let first = ours
            .iter()
            .zip(&theirs)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(theirs.len()));
        why.push(format!(
            "stdout differs from iputils' (numbers replaced by placeholders) from line {}:\n  \
             nk:      {:?}\n  iputils: {:?}",
            first + 1,
            &ours[first.min(ours.len())..],
            &theirs[first.min(theirs.len())..]
        ));
    }
    if nk.status.code() != reference.status.code() {
        why.push(format!(
            "exit status {:?}, iputils {:?}",
            nk.status.code(),
            reference.status.code()
        ));
    }
    if why.is_empty() {
        return None;
    }
    Some(format!(
        "{}\n{}\n{}",
        why.join("\n"),
        nk.describe(),
        reference.describe()
    ))
}

/// Runs iputils and then nk with the same `args` (15 s each) and expects the same lines.
fn same_as_iputils(args: &[&str]) {
    let reference = iputils(args, 15.0);
    let out = ping(args, 15.0);
    expect_same_as_iputils(&out, &reference);
}

/// Panics unless nk and iputils printed the same lines up to run-dependent numbers, and
/// exited with the same status.
fn expect_same_as_iputils(nk: &Finished, reference: &Finished) {
    if let Some(why) = difference_from_iputils(nk, reference) {
        panic!("{why}");
    }
}

/// Runs each argument list with iputils and with nk through `run` (which is given the full
/// argv), and panics listing every case that differs.
fn compare_cases(cases: &[&[&str]], run: impl Fn(&[&str]) -> Finished) {
    require_iputils();
    let mut failures = Vec::new();
    for args in cases {
        let mut theirs = vec!["ping"];
        theirs.extend_from_slice(args);
        let mut ours = vec![NK, "ping"];
        ours.extend_from_slice(args);
        let reference = run(&theirs);
        let out = run(&ours);
        if let Some(why) = difference_from_iputils(&out, &reference) {
            failures.push(format!("== ping {}: {why}", args.join(" ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from iputils:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

const HEADER_V4: &str = "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.";
const HEADER_V6: &str = "PING ::1(::1) 56 data bytes";

// ---------------------------------------------------------------------------
// 1. replies from loopback
// ---------------------------------------------------------------------------

#[test]
fn three_pings_to_127_0_0_1() {
    loopback_run(&["-c", "3", "-i", "0.2", "127.0.0.1"], 3);
}

#[test]
fn three_pings_to_ipv6_loopback() {
    loopback_run(&["-c", "3", "-i", "0.2", "::1"], 3);
}

#[test]
fn two_pings_at_the_default_interval() {
    let out = loopback_run(&["-c", "2", "127.0.0.1"], 2);
    let lines = out_lines(&out);
    let c = parse_counts(&lines[5]).expect("packets line");
    // One interval (1 s) between the two requests; iputils shows about 1000-1050ms.
    assert!(
        (900..5000).contains(&c.time_ms),
        "`time Nms` should span the one-second interval between the two requests\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 2. options
// ---------------------------------------------------------------------------

#[test]
fn quiet_prints_header_and_summary_only() {
    let out = ping(&["-q", "-c", "2", "-i", "0.2", "127.0.0.1"], 15.0);
    out.expect_code(0);
    let lines = out_lines(&out);
    assert_eq!(
        lines.len(),
        5,
        "header, empty line, 3 summary lines\n{}",
        out.describe()
    );
    assert_eq!(lines[0], HEADER_V4, "{}", out.describe());
    assert_eq!(lines[1], "", "{}", out.describe());
    assert_eq!(
        lines[2],
        "--- 127.0.0.1 ping statistics ---",
        "{}",
        out.describe()
    );
    expect_counts(&out, &lines[3], 2, 2, 0);
    expect_rtt(&out, &lines[4], &[], false);
}

#[test]
fn five_pings_at_a_fifth_of_a_second() {
    let out = loopback_run(&["-i", "0.2", "-c", "5", "127.0.0.1"], 5);
    let c = parse_counts(&out_lines(&out)[8]).expect("packets line");
    assert!(
        c.time_ms < 4000,
        "4 intervals of 0.2 s should not take {}ms\n{}",
        c.time_ms,
        out.describe()
    );
}

#[test]
fn durations_in_nk_syntax_are_accepted() {
    for interval in ["200ms", "0.2s"] {
        loopback_run(&["-c", "2", "-i", interval, "127.0.0.1"], 2);
    }
}

#[test]
fn empty_payload_has_no_times_and_no_rtt_line() {
    let out = full_run(
        &["-c", "2", "-s", "0", "-i", "0.2", "127.0.0.1"],
        "PING 127.0.0.1 (127.0.0.1) 0(28) bytes of data.",
        8,
        2,
        false,
    );
    assert!(
        out.stdout_text().ends_with("ms\n\n"),
        "the summary should end with an empty line, as iputils' does with -s 0\n{}",
        out.describe()
    );
    // 15 bytes is still too short for a timestamp; 16 is enough.
    full_run(
        &["-c", "1", "-s", "15", "127.0.0.1"],
        "PING 127.0.0.1 (127.0.0.1) 15(43) bytes of data.",
        23,
        1,
        false,
    );
    full_run(
        &["-c", "1", "-s", "16", "127.0.0.1"],
        "PING 127.0.0.1 (127.0.0.1) 16(44) bytes of data.",
        24,
        1,
        true,
    );
}

#[test]
fn payload_sizes_up_to_the_protocol_maximum() {
    // (args, header, reply bytes, replies); a failure's description names the command.
    let cases: [(&[&str], &str, u64, u64); 3] = [
        (
            &["-c", "2", "-s", "1472", "-i", "0.2", "127.0.0.1"],
            "PING 127.0.0.1 (127.0.0.1) 1472(1500) bytes of data.",
            1480,
            2,
        ),
        (
            &["-c", "1", "-s", "65507", "127.0.0.1"],
            "PING 127.0.0.1 (127.0.0.1) 65507(65535) bytes of data.",
            65515,
            1,
        ),
        (
            &["-c", "1", "-s", "65527", "::1"],
            "PING ::1(::1) 65527 data bytes",
            65535,
            1,
        ),
    ];
    for (args, header, bytes, n) in cases {
        full_run(args, header, bytes, n, true);
    }
}

#[test]
fn ttl_1_still_reaches_loopback() {
    loopback_run(&["-c", "2", "-t", "1", "-i", "0.2", "127.0.0.1"], 2);
    loopback_run(&["-c", "2", "-t", "1", "-i", "0.2", "::1"], 2);
}

#[test]
fn timestamps_prefix_reply_lines_only() {
    let out = ping(&["-c", "3", "-i", "0.2", "-D", "127.0.0.1"], 15.0);
    out.expect_code(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let lines = out_lines(&out);
    assert_eq!(lines.len(), 8, "{}", out.describe());
    assert_eq!(
        lines[0],
        HEADER_V4,
        "no prefix on the header\n{}",
        out.describe()
    );
    let mut stripped = lines.clone();
    let mut last = 0.0;
    for seq in 1..=3 {
        let line = &lines[seq];
        let bad = || -> ! {
            panic!(
                "-D line should match `^\\[\\d+\\.\\d{{6}}\\] 64 bytes from`: {line:?}\n{}",
                out.describe()
            )
        };
        let Some((ts, rest)) = line.strip_prefix('[').and_then(|r| r.split_once("] ")) else {
            bad()
        };
        let Some((s, us)) = ts.split_once('.') else {
            bad()
        };
        if num(s).is_none() || us.len() != 6 || num(us).is_none() {
            bad();
        }
        let t: f64 = ts.parse().expect("timestamp");
        assert!(
            (t - now).abs() < 300.0 && t >= last,
            "-D timestamp {ts} should be the wall-clock time of the reply (now {now:.6}), \
             non-decreasing\n{}",
            out.describe()
        );
        last = t;
        stripped[seq] = rest.to_string();
    }
    // Without the prefixes it is an ordinary run.
    let plain = Finished {
        name: out.name.clone(),
        status: out.status,
        stdout: (stripped.join("\n") + "\n").into_bytes(),
        stderr: out.stderr.clone(),
        elapsed: out.elapsed,
    };
    expect_full_run(&plain, HEADER_V4, "127.0.0.1", 64, 3, true);
}

#[test]
fn deadline_of_one_second_ends_the_run() {
    let out = ping(&["-w", "1", "127.0.0.1"], 10.0);
    out.expect_code(0);
    assert!(
        out.elapsed >= Duration::from_millis(900) && out.elapsed < Duration::from_secs(3),
        "-w 1 should end the run after about 1 s, not {:.2?}\n{}",
        out.elapsed,
        out.describe()
    );
    let lines = out_lines(&out);
    assert!(lines.len() >= 6, "{}", out.describe());
    assert_eq!(lines[0], HEADER_V4, "{}", out.describe());
    let n = lines.len() - 5;
    // iputils sends 1 (the second request, due at 1 s, loses the race with the deadline);
    // 2 is as good.
    assert!(
        (1..=2).contains(&n),
        "1 or 2 replies expected\n{}",
        out.describe()
    );
    expect_full_run(&out, HEADER_V4, "127.0.0.1", 64, n as u64, true);
}

#[test]
fn count_and_deadline_together_stop_at_the_count_when_all_reply() {
    let out = loopback_run(&["-c", "3", "-w", "5", "-i", "0.2", "127.0.0.1"], 3);
    assert!(
        out.elapsed < Duration::from_secs(4),
        "3 replies at 0.2 s intervals should end the run long before the 5 s deadline \
         ({:.2?})\n{}",
        out.elapsed,
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 3. side by side with iputils
// ---------------------------------------------------------------------------

#[test]
fn same_lines_as_iputils_for_two_pings() {
    same_as_iputils(&["-c", "2", "-i", "0.2", "127.0.0.1"]);
}

#[test]
fn same_lines_as_iputils_without_timing() {
    same_as_iputils(&["-c", "2", "-s", "0", "-i", "0.2", "127.0.0.1"]);
}

#[test]
fn same_lines_as_iputils_without_timing_ipv6() {
    same_as_iputils(&["-c", "2", "-s", "0", "-i", "0.2", "::1"]);
}

/// The /etc/hosts the name tests see (bind-mounted inside a private mount namespace).
const HOSTS: &str = "127.0.0.1 localhost\n\
                     127.0.0.1 myhost4 myalias4\n\
                     ::1 ip6-localhost\n\
                     ::1 myhost6 myalias6\n";

/// Runs `argv` in a private mount namespace whose /etc/hosts is [`HOSTS`].
fn with_hosts(argv: &[&str], secs: f64) -> Finished {
    require_mountns();
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, HOSTS).expect("write hosts");
    Proc::spawn(
        &format!("[private /etc/hosts] {}", argv.join(" ")),
        hosts_command(&hosts, argv),
        In::Null,
        Out::Pipe,
    )
    .wait(secs)
}

#[test]
fn same_lines_as_iputils_for_host_names() {
    // iputils names the target by its canonical name (IPv4 header and summary), shows
    // `name(reverse-name (addr))` in the IPv6 header, and reverse-resolves reply sources
    // unless -n.
    require_iputils();
    compare_cases(
        &[
            &["-c", "2", "-i", "0.2", "myalias4"],
            &["-c", "2", "-i", "0.2", "-n", "myalias4"],
            &["-c", "1", "LOCALHOST"],
            &["-c", "2", "-i", "0.2", "myalias6"],
            &["-c", "2", "-i", "0.2", "-n", "myhost6"],
            &["-c", "2", "-i", "0.2", "-6", "ip6-localhost"],
        ],
        |argv| with_hosts(argv, 15.0),
    );
}

#[test]
fn same_lines_as_iputils_quiet_ipv6() {
    same_as_iputils(&["-c", "2", "-q", "-i", "0.2", "::1"]);
}

#[test]
fn same_lines_as_iputils_with_timestamps_ipv6() {
    same_as_iputils(&["-c", "2", "-D", "-i", "0.2", "::1"]);
}

#[test]
fn same_lines_as_iputils_when_nothing_answers() {
    compare_cases(
        &[
            &["-c", "2", "-i", "0.2", "-W", "0.5", SILENT_HOST],
            &["-c", "2", "-q", "-i", "0.2", "-W", "0.5", SILENT_HOST],
            &["-c", "2", "-i", "0.2", "-w", "1", SILENT_HOST],
        ],
        |argv| in_netns(BLACKHOLE, argv, 15.0),
    );
}

#[test]
fn same_lines_as_iputils_for_icmp_errors() {
    require_tool("nft", "nftables");
    let setup = rejecting("input");
    compare_cases(
        &[
            &["-c", "2", "-i", "0.2", "127.0.0.1"],
            &["-w", "5", "-i", "0.2", "127.0.0.1"],
            &["-c", "2", "-D", "-i", "0.2", "127.0.0.1"],
            &["-c", "2", "-i", "0.2", "::1"],
            &["-w", "5", "-i", "0.2", "::1"],
        ],
        |argv| in_netns(&setup, argv, 15.0),
    );
}

#[test]
fn same_lines_as_iputils_when_the_send_is_rejected_locally() {
    // The send fails (EPERM) and an ICMP error is queued for the same request: iputils counts
    // one transmitted request and one error for each (its stderr says
    // `ping: sendmsg: Operation not permitted`, which is not compared here).
    require_tool("nft", "nftables");
    let setup = rejecting("output");
    compare_cases(
        &[
            &["-c", "2", "-i", "0.2", "127.0.0.1"],
            &["-c", "2", "-i", "0.2", "::1"],
        ],
        |argv| in_netns(&setup, argv, 15.0),
    );
}

#[test]
fn duplicate_replies_are_marked_and_counted() {
    // nft duplicates every echo reply on its way out: the copy arrives right after the
    // original. The run may end before the copy of the last reply is read, so 1 or 2 (DUP!).
    require_tool("nft", "nftables");
    let setup = "nft add table ip nkping && \
         nft add chain ip nkping c '{ type filter hook output priority 0 ; }' && \
         nft add rule ip nkping c icmp type echo-reply dup to 127.0.0.1 device lo && \
         nft add table ip6 nkping && \
         nft add chain ip6 nkping c '{ type filter hook output priority 0 ; }' && \
         nft add rule ip6 nkping c icmpv6 type echo-reply dup to ::1 device lo";
    for (host, header) in [("127.0.0.1", HEADER_V4), ("::1", HEADER_V6)] {
        let out = nk_ping_in_netns(setup, &["-c", "2", "-i", "0.2", host], 15.0);
        out.expect_code(0);
        let lines = out_lines(&out);
        assert_eq!(lines[0], header, "{}", out.describe());
        let summary_at = lines
            .iter()
            .position(String::is_empty)
            .unwrap_or_else(|| panic!("no empty line before the summary\n{}", out.describe()));
        let mut times = Vec::new();
        let mut dups = 0;
        let mut seqs = Vec::new();
        for line in &lines[1..summary_at] {
            let (reply, dup) = match line.strip_suffix(" (DUP!)") {
                Some(r) => (r, true),
                None => (line.as_str(), false),
            };
            let r = parse_reply(reply)
                .unwrap_or_else(|| panic!("not a reply line: {line:?}\n{}", out.describe()));
            assert_eq!(
                (r.bytes, r.from.as_str(), r.ttl),
                (64, host, 64),
                "{line:?}"
            );
            assert_eq!(
                dup,
                seqs.contains(&r.seq),
                "(DUP!) should mark exactly the second reply to a sequence: {line:?}\n{}",
                out.describe()
            );
            dups += u64::from(dup);
            seqs.push(r.seq);
            times.push(r.time.expect("time").1);
        }
        assert!(
            seqs.starts_with(&[1, 1, 2]) && (1..=2).contains(&dups),
            "want seq 1, its duplicate, seq 2 (and maybe its duplicate)\n{}",
            out.describe()
        );
        assert_eq!(lines.len(), summary_at + 4, "{}", out.describe());
        assert_eq!(
            lines[summary_at + 1],
            format!("--- {host} ping statistics ---")
        );
        let c = parse_counts(&lines[summary_at + 2])
            .unwrap_or_else(|| panic!("no packets line\n{}", out.describe()));
        let want = Counts {
            transmitted: 2,
            received: 2,
            duplicates: dups,
            errors: 0,
            loss: "0".into(),
            time_ms: c.time_ms,
        };
        assert_eq!(
            c,
            want,
            "packets line with `+{dups} duplicates`\n{}",
            out.describe()
        );
        // Duplicates count in the RTT figures too.
        expect_rtt(&out, &lines[summary_at + 3], &times, false);
    }
}

// ---------------------------------------------------------------------------
// 4. unprivileged: ICMP datagram sockets, or a clear refusal
// ---------------------------------------------------------------------------

#[test]
fn unprivileged_user_pings_through_datagram_sockets() {
    let out = nobody_ping_in_netns("0 2147483647", &["-c", "2", "-i", "0.2", "127.0.0.1"], 15.0);
    out.expect_code(0);
    expect_full_run(&out, HEADER_V4, "127.0.0.1", 64, 2, true);
    let out = nobody_ping_in_netns("0 2147483647", &["-c", "2", "-i", "0.2", "::1"], 15.0);
    out.expect_code(0);
    expect_full_run(&out, HEADER_V6, "::1", 64, 2, true);
}

#[test]
fn unprivileged_user_without_ping_group_is_told_how_to_fix_it() {
    // The precondition: setpriv really leaves nobody without capabilities.
    require_tool("setpriv", "util-linux");
    let mut argv: Vec<&str> = AS_NOBODY.to_vec();
    argv.extend(["grep", "^CapEff:", "/proc/self/status"]);
    let caps = in_netns("", &argv, 10.0);
    caps.expect_code(0);
    assert_eq!(
        caps.stdout_text().trim_end(),
        "CapEff:\t0000000000000000",
        "setpriv should drop every capability\n{}",
        caps.describe()
    );

    for host in ["127.0.0.1", "::1"] {
        let out = nobody_ping_in_netns("1 0", &["-c", "1", host], 10.0);
        out.expect_code(2).expect_stdout(b"");
        assert!(
            out.stderr_first_line()
                .starts_with("nk: open an ICMP socket:"),
            "first stderr line should be `nk: open an ICMP socket: ...`\n{}",
            out.describe()
        );
        let hint = out
            .stderr
            .lines()
            .find(|l| l.starts_with("hint:"))
            .unwrap_or_else(|| panic!("no `hint:` line on stderr\n{}", out.describe()));
        assert!(
            hint.contains("ping_group_range") && hint.contains("CAP_NET_RAW"),
            "the hint should name net.ipv4.ping_group_range and CAP_NET_RAW: {hint:?}\n{}",
            out.describe()
        );
    }
}

#[test]
fn unprivileged_user_cannot_flood() {
    for args in [
        &["-c", "2", "-i", "0.001", "127.0.0.1"][..],
        &["-c", "2", "-f", "127.0.0.1"][..],
    ] {
        let out = nobody_ping_in_netns("0 2147483647", args, 10.0);
        out.expect_code(2);
        out.expect_stderr_contains("minimal interval allowed for user is 2ms");
    }
    // 2 ms is allowed.
    let out = nobody_ping_in_netns(
        "0 2147483647",
        &["-c", "3", "-i", "0.002", "127.0.0.1"],
        10.0,
    );
    out.expect_code(0);
    expect_full_run(&out, HEADER_V4, "127.0.0.1", 64, 3, true);
}

// ---------------------------------------------------------------------------
// 5, 6. nothing answers
// ---------------------------------------------------------------------------

/// Runs `nk ping ARGS` towards [`SILENT_HOST`], where nothing answers; expects exit 1 within
/// `limit` (else fails with `what` and the time taken) and the 5 lines of a run without replies.
fn silent_run(args: &[&str], secs: f64, limit: Duration, what: &str) -> (Finished, Vec<String>) {
    let out = nk_ping_in_netns(BLACKHOLE, args, secs);
    out.expect_code(1);
    assert!(
        out.elapsed < limit,
        "{what} {:.2?}\n{}",
        out.elapsed,
        out.describe()
    );
    let lines = out_lines(&out);
    assert_eq!(lines.len(), 5, "{}", out.describe());
    (out, lines)
}

#[test]
fn no_answer_exits_1_after_the_reply_wait() {
    let (out, lines) = silent_run(
        &["-c", "2", "-i", "0.2", "-W", "0.5", SILENT_HOST],
        15.0,
        Duration::from_secs(5),
        "2 requests 0.2 s apart and a 0.5 s wait should not take",
    );
    assert_eq!(
        lines[0],
        "PING 10.99.0.2 (10.99.0.2) 56(84) bytes of data.",
        "{}",
        out.describe()
    );
    assert_eq!(lines[1], "", "{}", out.describe());
    assert_eq!(
        lines[2],
        "--- 10.99.0.2 ping statistics ---",
        "{}",
        out.describe()
    );
    let c = expect_counts(&out, &lines[3], 2, 0, 0);
    assert_eq!(c.loss, "100", "{}", out.describe());
    assert_eq!(
        lines[4],
        "",
        "no rtt line without replies\n{}",
        out.describe()
    );
}

#[test]
fn no_answer_with_a_deadline_exits_1_at_the_deadline() {
    let (out, lines) = silent_run(
        &["-w", "1", SILENT_HOST],
        10.0,
        Duration::from_secs(3),
        "-w 1 should end the run after about 1 s, not",
    );
    let c =
        parse_counts(&lines[3]).unwrap_or_else(|| panic!("no packets line\n{}", out.describe()));
    assert!(
        (1..=2).contains(&c.transmitted) && c.received == 0 && c.loss == "100",
        "{}",
        out.describe()
    );
}

#[test]
fn count_with_deadline_keeps_sending_until_the_deadline_when_nothing_answers() {
    let (out, lines) = silent_run(
        &["-c", "3", "-i", "0.2", "-w", "1", SILENT_HOST],
        10.0,
        Duration::from_secs(3),
        "-w 1 should end the run after about 1 s, not",
    );
    let c =
        parse_counts(&lines[3]).unwrap_or_else(|| panic!("no packets line\n{}", out.describe()));
    assert!(
        c.transmitted > 3 && c.received == 0 && c.loss == "100",
        "with -w, requests go on past -c until the deadline (iputils: about 5 in 1 s at 0.2 s)\n{}",
        out.describe()
    );
}

#[test]
fn own_echo_requests_are_not_replies() {
    // With echo replies off, a raw socket on the loopback still receives the requests it sent.
    for (host, header) in [("127.0.0.1", HEADER_V4), ("::1", HEADER_V6)] {
        let out = nk_ping_in_netns(
            ECHO_IGNORED,
            &["-c", "2", "-i", "0.2", "-W", "0.5", host],
            10.0,
        );
        out.expect_code(1);
        let title = format!("--- {host} ping statistics ---");
        let lines = out_lines(&out);
        assert_eq!(
            lines.iter().map(String::as_str).take(3).collect::<Vec<_>>(),
            [header, "", title.as_str()],
            "{}",
            out.describe()
        );
        assert_eq!(lines.len(), 5, "{}", out.describe());
        expect_counts(&out, &lines[3], 2, 0, 0);
        assert_eq!(lines[4], "", "{}", out.describe());
    }
}

#[test]
fn icmp_errors_are_printed_and_counted() {
    require_tool("nft", "nftables");
    let setup = rejecting("input");
    let cases = [
        ("127.0.0.1", HEADER_V4, "Destination Host Unreachable"),
        (
            "::1",
            HEADER_V6,
            "Destination unreachable: Address unreachable",
        ),
    ];
    for (host, header, text) in cases {
        let out = nk_ping_in_netns(&setup, &["-c", "2", "-i", "0.2", host], 15.0);
        out.expect_code(1);
        let lines = out_lines(&out);
        assert_eq!(lines.len(), 7, "{}", out.describe());
        assert_eq!(lines[0], header, "{}", out.describe());
        for (seq, line) in (1..=2).zip(&lines[1..3]) {
            assert_eq!(
                *line,
                format!("From {host} icmp_seq={seq} {text}"),
                "{}",
                out.describe()
            );
        }
        assert_eq!(lines[3], "", "{}", out.describe());
        assert_eq!(lines[4], format!("--- {host} ping statistics ---"));
        expect_counts(&out, &lines[5], 2, 0, 2);
        assert_eq!(lines[6], "", "{}", out.describe());

        // With a deadline, the first error ends the run.
        let out = nk_ping_in_netns(&setup, &["-w", "5", host], 15.0);
        out.expect_code(1);
        assert!(
            out.elapsed < Duration::from_secs(3),
            "the first ICMP error should end a -w run ({:.2?})\n{}",
            out.elapsed,
            out.describe()
        );
        let lines = out_lines(&out);
        assert_eq!(lines.len(), 6, "{}", out.describe());
        assert_eq!(lines[1], format!("From {host} icmp_seq=1 {text}"));
        expect_counts(&out, &lines[4], 1, 0, 1);
    }
}

// ---------------------------------------------------------------------------
// 7. usage errors
// ---------------------------------------------------------------------------

#[test]
fn malformed_ping_commands_are_usage_errors() {
    let cases: &[&[&str]] = &[
        &["-c", "0", "127.0.0.1"],
        &["-c", "-1", "127.0.0.1"],
        &["-s", "70000", "127.0.0.1"],
        &["-s", "65508", "127.0.0.1"],
        &["-s", "65528", "::1"],
        &["-s", "-1", "127.0.0.1"],
        &["-t", "0", "127.0.0.1"],
        &["-t", "256", "127.0.0.1"],
        &["-i", "abc", "127.0.0.1"],
        &["-W", "0", "127.0.0.1"],
        &["-W", "abc", "127.0.0.1"],
        &["-w", "abc", "127.0.0.1"],
        &["-4", "-6", "127.0.0.1"],
        &["-4", "::1"],
        &["-6", "127.0.0.1"],
        &["no..such"],
        &[],
        &["--no-such-option", "127.0.0.1"],
    ];
    let mut failures = Vec::new();
    for args in cases {
        let out = ping(args, 10.0);
        let ok = out.status.code() == Some(2)
            && out.stdout.is_empty()
            && out.stderr_first_line().starts_with("nk: ");
        if !ok {
            failures.push(format!(
                "nk ping {}: want exit 2, empty stdout, `nk: ...` on stderr\n{}",
                args.join(" "),
                out.describe()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn unresolvable_host_exits_2_with_the_resolvers_words() {
    let out = ping(&["-c", "1", "nosuch.invalid"], 30.0);
    out.expect_code(2).expect_stdout(b"");
    let first = out.stderr_first_line();
    assert!(
        first.starts_with("nk: ") && first.contains("nosuch.invalid"),
        "want `nk: ...nosuch.invalid...: <resolver message>`\n{}",
        out.describe()
    );
    // The same words iputils gets from the resolver ("Name or service not known").
    let reference = iputils(&["-c", "1", "nosuch.invalid"], 30.0);
    reference.expect_code(2);
    let words = reference
        .stderr_first_line()
        .strip_prefix("ping: nosuch.invalid: ")
        .unwrap_or_else(|| panic!("unexpected iputils output\n{}", reference.describe()));
    assert!(
        first.contains(words),
        "nk's message should carry the resolver's words {words:?}\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 8. SIGINT
// ---------------------------------------------------------------------------

#[test]
fn sigint_prints_the_summary_and_exits_130() {
    let mut p = Proc::nk(["ping", "-i", "0.2", "127.0.0.1"], In::Null, Out::Pipe);
    p.wait_stdout_line(10.0, |l| l.contains(" icmp_seq=2 "));
    send_signal(p.pid(), "INT");
    let out = p.wait(10.0);
    out.expect_code(130);
    let lines = out_lines(&out);
    assert!(lines.len() >= 7, "{}", out.describe());
    assert_eq!(lines[0], HEADER_V4, "{}", out.describe());
    let n = lines.len() - 5;
    let times: Vec<f64> = (1..=n)
        .map(|seq| expect_reply(&out, &lines[seq], 64, "127.0.0.1", seq as u64, true))
        .collect();
    assert_eq!(lines[n + 1], "", "{}", out.describe());
    assert_eq!(
        lines[n + 2],
        "--- 127.0.0.1 ping statistics ---",
        "{}",
        out.describe()
    );
    let c = parse_counts(&lines[n + 3])
        .unwrap_or_else(|| panic!("no packets line\n{}", out.describe()));
    assert!(
        c.received == n as u64 && (c.transmitted == n as u64 || c.transmitted == n as u64 + 1),
        "the counts should match the {n} replies printed (one request may be in flight)\n{}",
        out.describe()
    );
    assert_eq!(
        c.loss,
        loss_text(c.transmitted, c.received),
        "{}",
        out.describe()
    );
    expect_rtt(&out, &lines[n + 4], &times, false);
}

#[test]
fn sigquit_prints_a_status_line_on_stderr_and_the_run_goes_on() {
    let mut p = Proc::nk(
        ["ping", "-c", "5", "-i", "0.2", "127.0.0.1"],
        In::Null,
        Out::Pipe,
    );
    p.wait_stdout_line(10.0, |l| l.contains(" icmp_seq=2 "));
    send_signal(p.pid(), "QUIT");
    let line = p.wait_stderr_line(10.0, |l| l.contains(" packets, "));
    let out = p.wait(10.0);
    out.expect_code(0);
    // `\rRX/TX packets, L% loss, min/avg/ewma/max = a/b/c/d ms`
    let parsed = (|| {
        let rest = line.strip_prefix('\r')?;
        let (rx, rest) = rest.split_once('/')?;
        let (tx, rest) = rest.split_once(" packets, ")?;
        let (loss, rest) = rest.split_once("% loss, min/avg/ewma/max = ")?;
        let figures: Vec<f64> = rest
            .strip_suffix(" ms")?
            .split('/')
            .map(ms3)
            .collect::<Option<_>>()?;
        Some((num(rx)?, num(tx)?, num(loss)?, figures))
    })();
    let Some((rx, tx, loss, f)) = parsed else {
        panic!(
            "SIGQUIT line should be `\\rRX/TX packets, L% loss, min/avg/ewma/max = a/b/c/d ms`: \
             {line:?}\n{}",
            out.describe()
        )
    };
    assert!(
        (2..=5).contains(&rx)
            && (rx == tx || rx + 1 == tx)
            && loss == (tx - rx) * 100 / tx
            && f.len() == 4
            && f[0] <= f[1]
            && f[1] <= f[3]
            && f[0] <= f[2]
            && f[2] <= f[3],
        "SIGQUIT status line inconsistent: {line:?}\n{}",
        out.describe()
    );
    // The run went on to the end.
    expect_full_run(&out, HEADER_V4, "127.0.0.1", 64, 5, true);
}

// ---------------------------------------------------------------------------
// 9. --json
// ---------------------------------------------------------------------------

fn json_lines(out: &Finished) -> Vec<Value> {
    out_lines(out)
        .iter()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}\n{}", out.describe()))
        })
        .collect()
}

/// Expects each `(key, value)` of `want` in the JSON object `v` (`what` names it on failure).
fn expect_fields(out: &Finished, what: &str, v: &Value, want: &[(&str, Value)]) {
    for (key, want) in want {
        assert_eq!(field(out, v, key), want, "{what} {v}\n{}", out.describe());
    }
}

fn field<'a>(out: &Finished, v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("JSON object without {key:?}: {v}\n{}", out.describe()))
}

#[test]
fn json_replies_and_summary() {
    let out = ping(&["-c", "2", "-i", "0.2", "--json", "127.0.0.1"], 15.0);
    out.expect_code(0);
    let objs = json_lines(&out);
    assert_eq!(objs.len(), 3, "2 replies and a summary\n{}", out.describe());
    for (i, r) in objs[..2].iter().enumerate() {
        expect_fields(
            &out,
            "reply",
            r,
            &[
                ("type", Value::from("reply")),
                ("seq", Value::from(i as u64 + 1)),
                ("from", Value::from("127.0.0.1")),
                ("bytes", Value::from(64)),
                ("ttl", Value::from(64)),
                ("dup", Value::from(false)),
            ],
        );
        let t = field(&out, r, "time_ms").as_f64();
        assert!(
            t.is_some_and(|t| t >= 0.0),
            "time_ms should be a number: {r}\n{}",
            out.describe()
        );
    }
    let s = &objs[2];
    expect_fields(
        &out,
        "summary",
        s,
        &[
            ("type", Value::from("summary")),
            ("host", Value::from("127.0.0.1")),
            ("address", Value::from("127.0.0.1")),
            ("transmitted", Value::from(2)),
            ("received", Value::from(2)),
            ("duplicates", Value::from(0)),
            ("errors", Value::from(0)),
        ],
    );
    assert_eq!(field(&out, s, "loss_percent").as_f64(), Some(0.0), "{s}");
    assert!(field(&out, s, "time_ms").is_u64(), "time_ms: {s}");
    let rtt: Vec<f64> = ["min_ms", "avg_ms", "max_ms", "mdev_ms"]
        .iter()
        .map(|k| {
            field(&out, s, k)
                .as_f64()
                .unwrap_or_else(|| panic!("{k} should be a number: {s}\n{}", out.describe()))
        })
        .collect();
    assert!(
        rtt[0] <= rtt[1] && rtt[1] <= rtt[2] && rtt[3] >= 0.0,
        "min <= avg <= max: {s}\n{}",
        out.describe()
    );
}

#[test]
fn json_without_replies_has_null_rtts() {
    let args = ["-c", "1", "-W", "0.5", "--json", SILENT_HOST];
    let out = nk_ping_in_netns(BLACKHOLE, &args, 10.0);
    out.expect_code(1);
    let objs = json_lines(&out);
    assert_eq!(objs.len(), 1, "only the summary\n{}", out.describe());
    let s = &objs[0];
    expect_fields(
        &out,
        "summary",
        s,
        &[
            ("type", Value::from("summary")),
            ("host", Value::from(SILENT_HOST)),
            ("address", Value::from(SILENT_HOST)),
            ("transmitted", Value::from(1)),
            ("received", Value::from(0)),
            ("min_ms", Value::Null),
            ("avg_ms", Value::Null),
            ("max_ms", Value::Null),
            ("mdev_ms", Value::Null),
        ],
    );
    assert_eq!(field(&out, s, "loss_percent").as_f64(), Some(100.0), "{s}");
}

// ---------------------------------------------------------------------------
// 10. flood
// ---------------------------------------------------------------------------

#[test]
fn flood_prints_dots_and_backspaces_then_the_summary() {
    let out = ping(&["-f", "-c", "100", "127.0.0.1"], 30.0);
    out.expect_code(0);
    let text = out.stdout_text();
    let body = text
        .strip_prefix(&format!("{HEADER_V4}\n"))
        .unwrap_or_else(|| panic!("header\n{}", out.describe()));
    let title = "\n--- 127.0.0.1 ping statistics ---\n";
    let (marks, summary) = body
        .split_once(title)
        .unwrap_or_else(|| panic!("no summary title after the marks\n{}", out.describe()));
    assert!(
        marks.bytes().all(|b| matches!(b, b'.' | b'\x08' | b' ')),
        "between the header and the summary only '.', '\\b' and ' ' are allowed: {marks:?}\n{}",
        out.describe()
    );
    let count = |b: u8| marks.bytes().filter(|&x| x == b).count();
    assert_eq!(
        (
            count(b'.'),
            count(b'\x08'),
            count(b' '),
            marks.matches("\x08 \x08").count()
        ),
        (100, 200, 100, 100),
        "one '.' per request and one \"\\b \\b\" per reply\n{}",
        out.describe()
    );
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 2, "packets and rtt lines\n{}", out.describe());
    expect_counts(&out, lines[0], 100, 100, 0);
    expect_rtt(&out, lines[1], &[], true);
}

// ---------------------------------------------------------------------------
// 11. destinations the kernel will not route, broadcast, unspecified (issue 17)
// ---------------------------------------------------------------------------

/// Panics unless nk failed as iputils did: the same exit status, the same stdout (none, when
/// iputils refuses at once), and the same first stderr line once each tool's own `ping: ` /
/// `nk: ` prefix is removed.
fn expect_same_failure(nk: &Finished, reference: &Finished) {
    let ours = nk.stderr_first_line();
    let theirs = reference.stderr_first_line();
    let same = nk.status.code() == reference.status.code()
        && nk.stdout == reference.stdout
        && ours.strip_prefix("nk: ").is_some()
        && ours.strip_prefix("nk: ") == theirs.strip_prefix("ping: ");
    assert!(
        same,
        "nk should fail as iputils does (same status, stdout, first stderr line)\n{}\n{}",
        nk.describe(),
        reference.describe()
    );
}

/// Runs iputils and nk with `args` in a namespace set up by `setup` (5 s each: without the
/// fix nk never stops, as no -c is given) and expects the same failure.
fn same_failure_in_netns(setup: &str, args: &[&str]) {
    require_iputils();
    let mut theirs = vec!["ping"];
    theirs.extend_from_slice(args);
    let mut ours = vec![NK, "ping"];
    ours.extend_from_slice(args);
    let reference = in_netns(setup, &theirs, 5.0);
    assert_eq!(
        reference.status.code(),
        Some(2),
        "iputils should refuse at once\n{}",
        reference.describe()
    );
    let out = in_netns(setup, &ours, 5.0);
    expect_same_failure(&out, &reference);
}

#[test]
fn unroutable_destinations_fail_at_once_as_in_iputils() {
    // No -c: a run that keeps sending would be killed at the 5 s bound.
    let unreachable = "ip route add unreachable 10.99.0.0/24 && \
                       ip -6 route add unreachable 2001:db8::/32";
    let blackhole = "ip route add blackhole 10.99.0.0/24 && \
                     ip -6 route add blackhole 2001:db8::/32";
    let prohibit6 = "ip -6 route add prohibit 2001:db8::/32";
    let cases: &[(&str, &[&str])] = &[
        ("true", &["10.99.0.2"]),      // no route: Network is unreachable
        ("true", &["2001:db8::1"]),    // likewise for IPv6
        (unreachable, &["10.99.0.2"]), // No route to host
        (unreachable, &["2001:db8::1"]),
        (blackhole, &["10.99.0.2"]), // Invalid argument
        (blackhole, &["2001:db8::1"]),
        (prohibit6, &["2001:db8::1"]),     // Permission denied
        ("ip link set lo down", &["::1"]), // Cannot assign requested address
        ("true", &["-c", "3", "-q", "10.99.0.2"]),
    ];
    for (setup, args) in cases {
        same_failure_in_netns(setup, args);
    }
}

/// A veth pair inside the namespace: 10.7.0.1/24 on v0, 10.7.0.2/24 on v1, broadcast
/// 10.7.0.255, and the kernel answering broadcast pings (off by default).
const VETH_PAIR: &str = "ip link add v0 type veth peer name v1 && \
                         ip link set v0 up && ip link set v1 up && \
                         ip addr add 10.7.0.1/24 dev v0 && ip addr add 10.7.0.2/24 dev v1 && \
                         echo 0 > /proc/sys/net/ipv4/icmp_echo_ignore_broadcasts";

#[test]
fn broadcast_and_prohibited_destinations_ask_about_broadcast() {
    // EACCES from the kernel: iputils asks whether a broadcast was meant, exit 2.
    same_failure_in_netns("ip route add prohibit 10.99.0.0/24", &["10.99.0.2"]);
    same_failure_in_netns(VETH_PAIR, &["10.7.0.255"]);
    same_failure_in_netns(VETH_PAIR, &["-c", "2", "-i", "0.2", "10.7.0.255"]);
    // -b does not make an unroutable destination routable.
    same_failure_in_netns("true", &["-b", "255.255.255.255"]);
}

#[test]
fn broadcast_ping_with_b_gets_replies_as_in_iputils() {
    let cases: &[&[&str]] = &[&["-b", "-c", "3", "-i", "0.2", "10.7.0.255"]];
    compare_cases(cases, |argv| in_netns(VETH_PAIR, argv, 15.0));
    for argv in [vec!["ping"], vec![NK, "ping"]] {
        let mut argv = argv;
        argv.extend_from_slice(cases[0]);
        let out = in_netns(VETH_PAIR, &argv, 15.0);
        assert!(
            out.stderr
                .to_lowercase()
                .contains("warning: pinging broadcast address"),
            "both warn on stderr\n{}",
            out.describe()
        );
    }
    // -b to an ordinary address changes nothing.
    compare_cases(&[&["-b", "-c", "2", "-i", "0.2", "127.0.0.1"]], |argv| {
        in_netns("", argv, 15.0)
    });
}

#[test]
fn unspecified_addresses_are_the_local_host_as_in_iputils() {
    compare_cases(
        &[
            &["-c", "2", "-i", "0.2", "0.0.0.0"],
            &["-c", "2", "-i", "0.2", "0"],
            &["-c", "2", "-i", "0.2", "::"],
            &["-c", "2", "-i", "0.2", "-q", "0"],
        ],
        |argv| in_netns("", argv, 15.0),
    );
}

// ---------------------------------------------------------------------------
// 12. iputils habits (issue 17, item 26)
// ---------------------------------------------------------------------------

/// Neighbour discovery for an address nobody has on the link fails after about 3 s, and
/// the kernel reports every request queued meanwhile as unreachable at once: several
/// requests are in flight when the errors come.
const NOBODY_ON_LINK: &str = "ip link add v0 type veth peer name v1 && \
                              ip link set v0 up && ip link set v1 up && \
                              ip addr add 2001:db8:1::1/64 dev v0 nodad && \
                              ip addr add 10.6.0.1/24 dev v0";

#[test]
fn late_icmp_errors_give_a_pipe_line_only_where_iputils_prints_one() {
    compare_cases(
        &[
            &["-c", "5", "-i", "0.3", "2001:db8:1::9"], // ICMPv6: no pipe line
            &["-c", "5", "-i", "0.3", "10.6.0.9"],      // IPv4: pipe 5 or so
        ],
        |argv| in_netns(NOBODY_ON_LINK, argv, 20.0),
    );
}

/// Two link-local addresses on a veth pair in the namespace.
const LINK_LOCAL: &str = "ip link add v0 type veth peer name v1 && \
                          ip link set v0 up && ip link set v1 up && \
                          ip addr add fe80::1/64 dev v0 nodad && \
                          ip addr add fe80::2/64 dev v1 nodad && \
                          { ping -c 1 -W 3 -q fe80::2%v0 >/dev/null; \
                            ping -c 1 -W 3 -q fe80::1%v1 >/dev/null; true; }";

/// (The setup pings each way once first: a veth pair just brought up may hold the first
/// packets for a second while its carrier comes up, which would make nk's times, and its pipe
/// line, differ from those of the iputils run that follows.)
#[test]
fn link_local_targets_keep_their_interface_as_in_iputils() {
    compare_cases(
        &[
            &["-c", "2", "-i", "0.2", "fe80::2%v0"],
            &["-c", "2", "-i", "0.2", "fe80::2"],
            &["-c", "2", "-i", "0.2", "-D", "fe80::1%v1"],
        ],
        |argv| in_netns(LINK_LOCAL, argv, 15.0),
    );
}

#[test]
fn interval_forms_iputils_accepts_are_accepted() {
    compare_cases(
        &[
            &["-c", "2", "-i", "2e-1", "127.0.0.1"],
            &["-c", "2", "-i", ".2", "127.0.0.1"],
            &["-c", "2", "-i", "0x1p-2", "127.0.0.1"],
            &["-c", "2", "-i", "+0.2", "127.0.0.1"],
            &["-c", "1", "-i", "1e3", "127.0.0.1"],
            &["-c", "1", "-W", "1e0", "127.0.0.1"],
        ],
        |argv| in_netns("", argv, 15.0),
    );
    // What iputils refuses stays refused (nk: a usage error, exit 2).
    for bad in ["inf", "nan", "1x", "-1"] {
        let out = ping(&["-c", "1", "-i", bad, "127.0.0.1"], 10.0);
        out.expect_code(2).expect_stdout(b"");
    }
}

#[test]
fn json_with_quiet_prints_the_summary_object_only() {
    let out = ping(&["-c", "2", "-i", "0.2", "-q", "--json", "127.0.0.1"], 15.0);
    out.expect_code(0);
    let objs = json_lines(&out);
    assert_eq!(objs.len(), 1, "only the summary\n{}", out.describe());
    expect_fields(
        &out,
        "summary",
        &objs[0],
        &[
            ("type", Value::from("summary")),
            ("transmitted", Value::from(2)),
            ("received", Value::from(2)),
        ],
    );
    // ICMP errors are not printed either.
    require_tool("nft", "nftables");
    let args = [
        NK,
        "ping",
        "-c",
        "2",
        "-i",
        "0.2",
        "-q",
        "--json",
        "127.0.0.1",
    ];
    let out = in_netns(&rejecting("input"), &args, 15.0);
    out.expect_code(1);
    let objs = json_lines(&out);
    assert_eq!(objs.len(), 1, "only the summary\n{}", out.describe());
    expect_fields(&out, "summary", &objs[0], &[("errors", Value::from(2))]);
}

// ---------------------------------------------------------------------------
// 9. iputils' socket and per-probe options: -I -M -p -Q -a -l -A -O -m -r -U -B -e -b
// ---------------------------------------------------------------------------

/// Namespace setup with a second namespace on a veth pair: here v0 (10.0.0.1/24, fd00::1/64),
/// there v1 (10.0.0.2, fd00::2), a router towards 10.0.1.0/24 and fd01::/64 whose next hop
/// (10.0.0.3, fd00::3, never answering) is reached over a path of MTU 1280, so a larger
/// request with DF gets the router's `Frag needed and DF set (mtu = 1280)` / `Packet too
/// big`. The second namespace lives as long as the process that execs after the setup (its
/// holder polls for it), and it answers broadcast pings.
const VETH: &str = r#"{ ip link add v0 type veth peer name v1 &&
    P=$$ && { unshare -n sh -c "while kill -0 $P 2>/dev/null; do sleep 0.2; done" & } &&
    R=$! && i=0 &&
    while [ "$(readlink /proc/$R/ns/net)" = "$(readlink /proc/$$/ns/net)" ] && [ $i -lt 500 ];
        do sleep 0.01; i=$((i+1)); done &&
    ip link set v1 netns $R &&
    ip addr add 10.0.0.1/24 dev v0 && ip -6 addr add fd00::1/64 dev v0 nodad &&
    ip link set v0 up && ip route add 10.0.1.0/24 via 10.0.0.2 &&
    ip -6 route add fd01::/64 via fd00::2 &&
    nsenter -t $R -n sh -c 'ip link set lo up && ip addr add 10.0.0.2/24 dev v1 &&
        ip -6 addr add fd00::2/64 dev v1 nodad && ip link set v1 up &&
        echo 1 > /proc/sys/net/ipv4/ip_forward &&
        echo 1 > /proc/sys/net/ipv6/conf/all/forwarding &&
        echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects &&
        echo 0 > /proc/sys/net/ipv4/conf/v1/send_redirects &&
        echo 0 > /proc/sys/net/ipv4/icmp_echo_ignore_broadcasts &&
        ip route add 10.0.1.0/24 via 10.0.0.3 dev v1 mtu lock 1280 &&
        ip -6 route add fd01::/64 via fd00::3 dev v1 mtu 1280' &&
    i=0 && until ping -c 1 -W 0.2 10.0.0.2 >/dev/null 2>&1 && ping -c 1 -W 0.2 fd00::2 >/dev/null 2>&1 ||
        [ $i -ge 50 ]; do i=$((i+1)); done; }"#;

/// `VETH` plus nft rules on output that drop every echo request failing `condition` (an nft
/// expression, e.g. `meta mark != 42`): the ping gets replies only if it set what is asked.
fn veth_requiring(condition_v4: &str, condition_v6: &str) -> String {
    format!(
        "{VETH} && nft add table inet nkflags && \
         nft add chain inet nkflags c '{{ type filter hook output priority 0 ; }}' && \
         nft add rule inet nkflags c icmp type echo-request {condition_v4} drop && \
         nft add rule inet nkflags c icmpv6 type echo-request {condition_v6} drop"
    )
}

fn require_veth_tools() {
    require_tool("nsenter", "util-linux");
    require_tool("nft", "nftables");
}

#[test]
fn same_lines_as_iputils_for_path_mtu_discovery() {
    // Each case runs in namespaces of its own, so no path MTU is cached before it: the first
    // request meets the router, the next ones the MTU the kernel has learnt (a local error on
    // stderr, counted; not compared here).
    require_veth_tools();
    compare_cases(
        &[
            &["-c", "3", "-i", "0.2", "-M", "do", "-s", "1300", "10.0.1.2"],
            &["-c", "1", "-M", "want", "-s", "1300", "10.0.1.2"],
            &["-c", "2", "-i", "0.2", "-M", "do", "-s", "1400", "fd01::2"],
            &["-c", "2", "-i", "0.2", "-M", "do", "-s", "1200", "10.0.0.2"],
            &["-c", "1", "-M", "do", "-s", "2000", "10.0.0.2"],
        ],
        |argv| in_netns(VETH, argv, 15.0),
    );
}

#[test]
fn pmtu_probe_sets_df_and_reports_the_router() {
    // iputils 20221126 refuses `probe` (later releases take it): nk alone.
    require_veth_tools();
    let out = nk_ping_in_netns(
        VETH,
        &["-c", "1", "-M", "probe", "-s", "1300", "10.0.1.2"],
        15.0,
    );
    out.expect_code(1);
    let lines = out_lines(&out);
    assert_eq!(
        lines[1],
        "From 10.0.0.2 icmp_seq=1 Frag needed and DF set (mtu = 1280)",
        "{}",
        out.describe()
    );
    // A local "message too long" names the MTU on stderr.
    veth_run_says(
        &["-c", "1", "-M", "do", "-s", "2000", "10.0.0.2"],
        1,
        "nk: local error: message too long, mtu=1500",
    );
}

/// Runs `nk ping ARGS` in the `VETH` namespaces, expects exit `code` and `said` on stderr.
fn veth_run_says(args: &[&str], code: i32, said: &str) -> Finished {
    let out = nk_ping_in_netns(VETH, args, 15.0);
    out.expect_code(code).expect_stderr_contains(said);
    out
}

#[test]
fn same_lines_as_iputils_for_source_and_routing_options() {
    require_veth_tools();
    compare_cases(
        &[
            &["-c", "1", "-I", "v0", "10.0.0.2"],
            &["-c", "1", "-I", "10.0.0.1", "10.0.0.2"],
            &["-c", "1", "-B", "10.0.0.2"],
            &["-c", "1", "-6", "-I", "v0", "fd00::2"],
            &["-c", "1", "-I", "fd00::1", "fd00::2"],
            &["-c", "1", "-B", "fd00::2"],
            &["-c", "2", "-i", "0.2", "-r", "10.0.0.2"],
            &["-c", "2", "-i", "0.2", "-b", "10.0.0.255"],
            &["-c", "1", "-I", "no-such-if", "10.0.0.2"],
            &["-c", "1", "-I", "10.9.9.9", "10.0.0.2"],
            &["-c", "1", "-W", "0.3", "-I", "lo", "10.0.0.2"],
        ],
        |argv| in_netns(VETH, argv, 15.0),
    );
}

#[test]
fn interface_and_address_errors_name_the_step() {
    require_veth_tools();
    let no_device = "nk: SO_BINDTODEVICE no-such-if: No such device";
    let out = veth_run_says(&["-c", "1", "-I", "no-such-if", "10.0.0.2"], 2, no_device);
    expect_nk_error(&out, 2);
    let not_local = "nk: bind: Cannot assign requested address";
    let out = veth_run_says(&["-c", "1", "-I", "10.9.9.9", "10.0.0.2"], 2, not_local);
    expect_nk_error(&out, 2);
    // A device that does not hold the source address the route picks: a warning, as iputils.
    veth_run_says(
        &["-c", "1", "-W", "0.3", "-I", "lo", "10.0.0.2"],
        1,
        "nk: warning: source address might be selected on device other than: lo",
    );
    // -r towards a host behind a router: the kernel refuses each send. nk says so and counts
    // it as an error (iputils 20221126 counts the request as sent and says nothing).
    veth_run_says(
        &["-c", "1", "-W", "0.5", "-r", "10.0.1.2"],
        1,
        "local error: Network is unreachable",
    )
    .expect_stdout_contains("1 packets transmitted, 0 received, +1 errors");
}

#[test]
fn identifier_mark_and_tos_reach_the_wire() {
    // Requests that lack what the flag sets are dropped on output: a reply proves it was set.
    require_veth_tools();
    let cases: &[(&str, &str, &[&str])] = &[
        ("icmp id != 1234", "icmpv6 id != 1234", &["-e", "1234"]),
        ("meta mark != 42", "meta mark != 42", &["-m", "0x2a"]),
        ("ip dscp != af11", "ip6 dscp != af11", &["-Q", "af11"]),
        ("ip dscp != ef", "ip6 dscp != ef", &["-Q", "EF"]),
    ];
    let mut failures = Vec::new();
    for ((v4, v6, flags), host) in cases
        .iter()
        .flat_map(|case| ["10.0.0.2", "fd00::2"].map(|host| (case, host)))
    {
        let setup = veth_requiring(v4, v6);
        let mut args = vec!["-c", "1", "-W", "2"];
        args.extend_from_slice(flags);
        args.push(host);
        let out = nk_ping_in_netns(&setup, &args, 15.0);
        if out.status.code() != Some(0) || !out.stdout_text().contains(" 1 received") {
            failures.push(format!(
                "nk ping {}: no reply\n{}",
                args.join(" "),
                out.describe()
            ));
        }
        // Without the flag nothing gets through (the rule works).
        let out = nk_ping_in_netns(&setup, &["-c", "1", "-W", "0.3", host], 15.0);
        if out.status.code() != Some(1) {
            failures.push(format!(
                "without {flags:?} a reply came\n{}",
                out.describe()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // iputils takes numbers (not DSCP names) and the same -e.
    compare_cases(
        &[
            &["-c", "1", "-e", "1234", "10.0.0.2"],
            &["-c", "1", "-Q", "0x28", "fd00::2"],
        ],
        |argv| {
            let setup = veth_requiring("icmp id != 1234", "ip6 dscp != af11");
            in_netns(&setup, argv, 15.0)
        },
    );
}

#[test]
fn same_lines_as_iputils_for_payload_and_output_options() {
    // -p (PATTERN line first, not with -q), -a (a BEL before each reply's newline), -A
    // (ipg/ewma in the summary), -l (all at once: pipe 3), -U, -O against a silent host.
    for args in [
        &["-c", "2", "-i", "0.2", "-p", "abc", "127.0.0.1"][..],
        &["-c", "2", "-i", "0.2", "-q", "-p", "ff", "127.0.0.1"],
        &["-c", "2", "-i", "0.2", "-s", "8", "-p", "0a1b", "::1"],
        &[
            "-c",
            "2",
            "-i",
            "0.2",
            "-p",
            "0123456789abcdef0123456789abcdef",
            "127.0.0.1",
        ],
        &["-c", "2", "-i", "0.2", "-a", "127.0.0.1"],
        &["-c", "3", "-A", "127.0.0.1"],
        &["-c", "3", "-A", "::1"],
        &["-c", "3", "-l", "3", "127.0.0.1"],
        &["-c", "2", "-i", "0.2", "-U", "::1"],
        &["-c", "2", "-i", "0.2", "-O", "127.0.0.1"],
    ] {
        same_as_iputils(args);
    }
    compare_cases(
        &[
            &["-c", "3", "-i", "0.2", "-W", "0.5", "-O", SILENT_HOST],
            &["-c", "3", "-i", "0.2", "-W", "0.5", "-O", "-q", SILENT_HOST],
            &["-c", "2", "-i", "0.2", "-W", "0.5", "-O", "-D", SILENT_HOST],
        ],
        |argv| in_netns(BLACKHOLE, argv, 15.0),
    );
}

#[test]
fn audible_flood_rings_after_each_erased_dot() {
    let out = ping(&["-f", "-a", "-c", "3", "127.0.0.1"], 15.0);
    out.expect_code(0);
    let text = out.stdout_text();
    assert_eq!(
        text.matches(".\x08 \x08\x07").count(),
        3,
        "want `.`, `\\b \\b` and a BEL per request\n{}",
        out.describe()
    );
}

#[test]
fn pattern_fills_the_payload_the_peer_echoes() {
    // A raw socket in the namespace sees the request on lo: after the 16 bytes of send time,
    // the pattern continues at its offset (iputils' layout: repeated from the first byte).
    let out = ping(
        &["-c", "1", "-s", "40", "-p", "a1b2c3", "--json", "127.0.0.1"],
        15.0,
    );
    out.expect_code(0);
    let reply = &json_lines(&out)[0];
    assert_eq!(reply["bytes"], Value::from(48), "{}", out.describe());
    // The payload itself is checked by nft: a request whose bytes 16..19 of payload (IP
    // header 20 + ICMP 8 + 16 = offset 44) are not a1 b2 c3 (the pattern at offset 16 = 16 % 3
    // = 1: b2 c3 a1) is dropped.
    require_tool("nft", "nftables");
    let setup = "nft add table ip nkpat && \
        nft add chain ip nkpat c '{ type filter hook output priority 0 ; }' && \
        nft add rule ip nkpat c icmp type echo-request @nh,352,24 != 0xb2c3a1 drop";
    let out = nk_ping_in_netns(
        setup,
        &["-c", "1", "-W", "1", "-p", "a1b2c3", "127.0.0.1"],
        15.0,
    );
    out.expect_code(0);
    let out = nk_ping_in_netns(
        setup,
        &["-c", "1", "-W", "0.3", "-p", "a1b2c4", "127.0.0.1"],
        15.0,
    );
    out.expect_code(1);
}

#[test]
fn outstanding_replies_in_json() {
    let flags = ["-c", "2", "-i", "0.2", "-W", "0.5", "-O", "--json"];
    let out = nk_ping_in_netns(BLACKHOLE, &[&flags[..], &[SILENT_HOST]].concat(), 15.0);
    out.expect_code(1);
    let objs = json_lines(&out);
    expect_fields(
        &out,
        "no answer yet",
        &objs[0],
        &[
            ("type", Value::from("no_answer_yet")),
            ("seq", Value::from(1)),
        ],
    );
}

#[test]
fn bad_probe_options_are_usage_errors() {
    let cases: Vec<Vec<String>> = [
        &["-p", "xyz"][..],
        &["-p", ""],
        &["-p", "0123456789abcdef0123456789abcdef0"],
        &["-M", "bogus"],
        &["-Q", "256"],
        &["-Q", "af99"],
        &["-l", "0"],
        &["-l", "65537"],
        &["-e", "65536"],
        &["-m", "-1"],
        &["-I", "a/b"],
        &["-I", "fd00::1"],
        &["--tcp", "-p", "ff"],
        &["--udp", "-M", "do"],
        &["-a", "--json"],
    ]
    .iter()
    .map(|flags| {
        let mut args = vec!["ping", "-c", "1"];
        args.extend_from_slice(flags);
        args.push("127.0.0.1");
        words(&args)
    })
    .collect();
    expect_usage_errors(&cases, || In::Null, || false, "");
    // A user's preload is at most 3, as in iputils.
    let out = nobody_ping_in_netns("0 2147483647", &["-c", "1", "-l", "4", "127.0.0.1"], 10.0);
    expect_nk_error(&out, 2);
    assert_eq!(
        out.stderr_first_line(),
        "nk: cannot set preload to value greater than 3: 4",
        "{}",
        out.describe()
    );
    let out = nobody_ping_in_netns("0 2147483647", &["-c", "3", "-l", "3", "127.0.0.1"], 10.0);
    out.expect_code(0);
}
