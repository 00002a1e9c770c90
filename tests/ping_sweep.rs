//! `nk ping` with many targets (fping's mode): several HOSTs, `-g` blocks and ranges,
//! `--file` lists, inside network namespaces the tests make, side by side with fping itself.
//!
//! Each namespace has three answering hosts in 10.99.0.0/24 (addresses of its loopback) and a
//! route that sends the rest of the /24 to the loopback, where nobody answers and no error
//! comes back: the silent hosts of a real sweep. Lines are compared with fping's after the
//! round-trip numbers are masked; exit statuses are compared as they are. No timing is
//! asserted.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

/// Three answering hosts in 10.99.0.0/24; the rest of the /24 is silent.
const HOSTS: &str = "ip route add 10.99.0.0/24 dev lo && \
                     ip addr add 10.99.0.10/32 dev lo && \
                     ip addr add 10.99.0.77/32 dev lo && \
                     ip addr add 10.99.0.200/32 dev lo";
const LIVE: [&str; 3] = ["10.99.0.10", "10.99.0.77", "10.99.0.200"];

/// Runs `argv` in a fresh namespace with [`HOSTS`], stdin from `stdin`, within `secs`.
fn in_netns(argv: &[&str], stdin: In, secs: f64) -> Finished {
    in_netns_after(HOSTS, argv, stdin, secs)
}

fn in_netns_after(setup: &str, argv: &[&str], stdin: In, secs: f64) -> Finished {
    require_netns();
    Proc::spawn(
        &format!("[netns] {}", argv.join(" ")),
        netns_command(setup, argv),
        stdin,
        Out::Pipe,
    )
    .wait(secs)
}

/// `nk ping ARGS` in a namespace with [`HOSTS`].
fn nk_ping(args: &[&str], stdin: In) -> Finished {
    let mut argv = vec![NK, "ping"];
    argv.extend_from_slice(args);
    in_netns(&argv, stdin, 30.0)
}

/// `fping ARGS` in a namespace with [`HOSTS`].
fn fping(args: &[&str]) -> Finished {
    require_tool("fping", "fping");
    let mut argv = vec!["fping"];
    argv.extend_from_slice(args);
    in_netns(&argv, In::Null, 60.0)
}

/// The lines of `text`, with every round-trip figure (`0.051`, `12.3`, `NaN`) as `T`, so
/// that runs compare; sorted, since replies and timeouts interleave by chance.
fn masked_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|line| {
            line.split(' ')
                .map(|word| {
                    let core = word.trim_end_matches(',').trim_start_matches('(');
                    let is_time = core.contains('.')
                        && core
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == '.' || c == '/')
                        && !core.starts_with("10.99");
                    if is_time {
                        word.replace(core, "T")
                    } else {
                        word.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn lines(out: &Finished) -> BTreeSet<String> {
    out.stdout_text().lines().map(str::to_string).collect()
}

#[test]
fn sweep_of_a_24_finds_the_hosts_fping_finds() {
    let nk = nk_ping(&["-g", "10.99.0.0/24", "-W", "0.5"], In::Null);
    let reference = fping(&["-g", "10.99.0.0/24", "-r", "0", "-t", "500"]);
    assert_eq!(nk.status.code(), Some(1), "{}", nk.describe());
    assert_eq!(reference.status.code(), Some(1), "{}", reference.describe());
    let alive: BTreeSet<String> = LIVE.iter().map(|h| format!("{h} is alive")).collect();
    let found: BTreeSet<String> = lines(&nk)
        .into_iter()
        .filter(|l| l.ends_with("is alive"))
        .collect();
    assert_eq!(found, alive, "{}", nk.describe());
    assert_eq!(lines(&nk), lines(&reference), "nk and fping disagree");
    assert_eq!(lines(&nk).len(), 254);
}

#[test]
fn count_mode_prints_fpings_lines_and_summaries() {
    let targets = ["10.99.0.10", "10.99.0.5"];
    let mut args = vec!["-c", "2", "-i", "0.1", "-W", "0.3"];
    args.extend(targets);
    let nk = nk_ping(&args, In::Null);
    let mut fargs = vec!["-c", "2", "-p", "100", "-t", "300"];
    fargs.extend(targets);
    let reference = fping(&fargs);
    assert_eq!(nk.status.code(), Some(1), "{}", nk.describe());
    assert_eq!(reference.status.code(), Some(1));
    assert_eq!(
        masked_lines(&nk.stdout_text()),
        masked_lines(&reference.stdout_text()),
        "stdout\n{}\n{}",
        nk.describe(),
        reference.describe()
    );
    assert!(nk
        .stdout_text()
        .contains("10.99.0.5  : [1], timed out (NaN avg, 100% loss)\n"));
    assert_eq!(
        masked_lines(&nk.stderr),
        masked_lines(&reference.stderr),
        "stderr\n{}\n{}",
        nk.describe(),
        reference.describe()
    );
    assert!(nk
        .stderr
        .contains("10.99.0.10 : xmt/rcv/%loss = 2/2/0%, min/avg/max = "));
}

#[test]
fn alive_unreach_elapsed_and_quiet_as_fpings_a_u_e_q() {
    let alive = nk_ping(&["--alive", "-W", "0.3", "-g", "10.99.0.8/29"], In::Null);
    assert_eq!(alive.stdout_text(), "10.99.0.10\n", "{}", alive.describe());
    assert_eq!(alive.status.code(), Some(1));
    let reference = fping(&["-a", "-r", "0", "-t", "300", "-g", "10.99.0.8/29"]);
    assert_eq!(alive.stdout, reference.stdout);

    let unreach = nk_ping(
        &["--unreach", "-W", "0.3", "-g", "10.99.0.9", "10.99.0.14"],
        In::Null,
    );
    let reference = fping(&[
        "-u",
        "-r",
        "0",
        "-t",
        "300",
        "-g",
        "10.99.0.9",
        "10.99.0.14",
    ]);
    assert_eq!(lines(&unreach), lines(&reference), "{}", unreach.describe());
    assert_eq!(lines(&unreach).len(), 5);

    let elapsed = nk_ping(&["--elapsed", "10.99.0.10", "10.99.0.77"], In::Null);
    assert_eq!(elapsed.status.code(), Some(0), "{}", elapsed.describe());
    assert_eq!(
        masked_lines(&elapsed.stdout_text()),
        ["10.99.0.10 is alive (T ms)", "10.99.0.77 is alive (T ms)"]
            .map(String::from)
            .into(),
    );

    let quiet = nk_ping(&["-q", "-W", "0.3", "10.99.0.10", "10.99.0.5"], In::Null);
    assert_eq!(quiet.status.code(), Some(1));
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "{}",
        quiet.describe()
    );
}

#[test]
fn an_unknown_name_exits_2_and_the_others_are_still_pinged() {
    let nk = nk_ping(
        &["-W", "0.3", "10.99.0.10", "no-such-host.invalid"],
        In::Null,
    );
    let reference = fping(&["-r", "0", "-t", "300", "10.99.0.10", "no-such-host.invalid"]);
    assert_eq!(nk.status.code(), Some(2), "{}", nk.describe());
    assert_eq!(reference.status.code(), Some(2));
    assert_eq!(nk.stdout, reference.stdout);
    assert!(nk
        .stderr_first_line()
        .starts_with("nk: resolve no-such-host.invalid: "));
}

#[test]
fn targets_from_a_file_on_stdin_as_fping_reads_it() {
    let list = b"# the lab\n  10.99.0.10 router\n\n\t10.99.0.77\r\n10.99.0.5\n#10.99.0.200\n";
    let nk = nk_ping(&["-W", "0.3", "--file", "-"], In::Bytes(list.to_vec()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("targets");
    std::fs::write(&path, list).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let reference = fping(&["-r", "0", "-t", "300", "-f", path.to_str().unwrap()]);
    assert_eq!(nk.status.code(), Some(1), "{}", nk.describe());
    assert_eq!(lines(&nk), lines(&reference), "{}", nk.describe());
    assert_eq!(lines(&nk).len(), 3);
}

#[test]
fn stats_totals_on_stderr_as_fping_s() {
    let nk = nk_ping(
        &["--stats", "-W", "0.3", "10.99.0.10", "10.99.0.5"],
        In::Null,
    );
    let reference = fping(&["-s", "-r", "0", "-t", "300", "10.99.0.10", "10.99.0.5"]);
    assert_eq!(nk.stdout, reference.stdout, "{}", nk.describe());
    assert_eq!(
        masked_lines(&nk.stderr),
        masked_lines(&reference.stderr),
        "{}\n{}",
        nk.describe(),
        reference.describe()
    );
}

#[test]
fn json_has_one_object_per_line() {
    let nk = nk_ping(
        &[
            "--json",
            "--stats",
            "-c",
            "1",
            "-W",
            "0.3",
            "10.99.0.10",
            "10.99.0.5",
        ],
        In::Null,
    );
    assert_eq!(nk.status.code(), Some(1), "{}", nk.describe());
    let objects: Vec<Value> = nk
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(sorted, ["reply", "stats", "summary", "summary", "timeout"]);
    let stats = objects.last().unwrap();
    assert_eq!(
        (stats["alive"].as_u64(), stats["unreachable"].as_u64()),
        (Some(1), Some(1))
    );
    let reply = objects.iter().find(|o| o["type"] == "reply").unwrap();
    assert_eq!(reply["host"], "10.99.0.10");
    assert!(reply["time_ms"].as_f64().is_some());
}

#[test]
fn both_families_and_every_target_alive_exit_0() {
    let nk = nk_ping(&["127.0.0.1", "::1", "10.99.0.200", "localhost"], In::Null);
    assert_eq!(nk.status.code(), Some(0), "{}", nk.describe());
    assert_eq!(
        lines(&nk),
        ["127.0.0.1", "::1", "10.99.0.200", "localhost"]
            .map(|h| format!("{h} is alive"))
            .into()
    );
}

#[test]
fn unprivileged_sweep_through_datagram_sockets() {
    require_tool("setpriv", "util-linux");
    let dir = tempfile::Builder::new()
        .prefix("nk-sweep-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("nk");
    std::fs::copy(NK, &copy).unwrap();
    let copy = copy.to_str().unwrap();
    let setup = format!("{HOSTS} && echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range");
    let argv = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        copy,
        "ping",
        "--alive",
        "-W",
        "0.5",
        "-g",
        "10.99.0.0/24",
    ];
    let nk = in_netns_after(&setup, &argv, In::Null, 30.0);
    assert_eq!(nk.status.code(), Some(1), "{}", nk.describe());
    assert_eq!(
        lines(&nk),
        LIVE.map(String::from).into(),
        "{}",
        nk.describe()
    );
}

#[test]
fn mode_usage_errors_exit_2_before_any_traffic() {
    let cases: &[(&[&str], &str)] = &[
        (&["-g", "10.0.0.0/15"], "add --force"),
        (&["-g", "--force", "10.0.0.0/8"], "at most 1048576"),
        (&["-g", "10.0.0.1"], "ADDR/PREFIX or START END"),
        (
            &["-g", "10.0.0.9", "10.0.0.1"],
            "the start is after the end",
        ),
        (&["--force", "10.0.0.1"], "--generate"),
        (&["-g", "--file", "-"], "cannot be used with"),
        (&["--tcp", "-g", "127.0.0.1/30"], "ICMP only"),
        (&["-f", "127.0.0.1", "::1"], "flood"),
        (&["-b", "127.0.0.1", "::1"], "broadcast"),
        (
            &["-M", "do", "127.0.0.1", "::1"],
            "-M applies to one HOST (iputils' mode)",
        ),
        (&["-l", "3", "-g", "127.0.0.0/30"], "-l applies to one HOST"),
        (&["-I", "127.0.0.1", "127.0.0.1", "::1"], "-I ADDR applies"),
        (
            &["--file", "/nonexistent/targets"],
            "--file /nonexistent/targets",
        ),
        (
            &["127.0.0.1", "80"],
            "a PORT is taken only with --tcp or --udp",
        ),
    ];
    for (args, want) in cases {
        let mut full = vec!["ping"];
        full.extend_from_slice(args);
        let out = run_nk(full, In::Null, 10.0);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", out.describe());
        assert!(
            out.stderr.contains(want),
            "{args:?}: want {want:?}\n{}",
            out.describe()
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn sigint_prints_the_per_target_summaries_and_exits_130() {
    require_netns();
    let argv = [
        NK,
        "ping",
        "-c",
        "100",
        "-i",
        "0.1",
        "-W",
        "0.3",
        "10.99.0.10",
        "10.99.0.5",
    ];
    let mut p = Proc::spawn(
        "[netns] nk ping -c 100 (interrupted)",
        netns_command(HOSTS, &argv),
        In::Null,
        Out::Pipe,
    );
    p.wait_stdout_line(20.0, |l| l.starts_with("10.99.0.5  : [1], timed out"));
    send_signal(p.pid(), "INT");
    let out = p.wait(10.0);
    assert_eq!(out.status.code(), Some(130), "{}", out.describe());
    let summaries: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("xmt/rcv"))
        .collect();
    assert_eq!(summaries.len(), 2, "{}", out.describe());
    assert!(summaries[0].starts_with("10.99.0.10 : xmt/rcv/%loss = "));
    assert!(summaries[1].starts_with("10.99.0.5  : xmt/rcv/%loss = "));
    assert!(summaries[1].ends_with("/0/100%"), "{}", out.describe());
}
