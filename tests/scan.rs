//! `nk dial -z`: the TCP connect port scanner (issue 4), run as a user would.
//!
//! The host may run listeners that are not ours (0.0.0.0:2024, for one), so a
//! scan here only ever touches ports the test itself opened: either a list of
//! ports held by this test on 127.0.0.1 / ::1, or a whole range inside a
//! private network namespace (`unshare -n`, loopback up) in which the test
//! starts its own listeners. A missing `unshare`/`ip`/`python3`, or a kernel
//! that refuses the namespace, fails the test with a message; nothing skips.
//!
//! Listeners inside a namespace come from [`LISTEN_THEN_EXEC_PY`]: Python binds
//! the ports, writes them to a file, and exec()s the command with the listening
//! sockets inherited, so the command under test is the namespace's only
//! process and the test's deadline kills it and its listeners together.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

/// Deadline for a whole-range (65535 port) scan: generous, as the debug build
/// runs beside other tests on a 2-core machine. Not a speed check
/// (bench/05_portscan.sh measures speed).
const FULL_SCAN_SECS: f64 = 120.0;

/// argv: PORTSFILE PORTSPEC CMD ARGS... Binds 127.0.0.1 on each port of
/// PORTSPEC ("random": one in 1-1023, one in 1024-32767, one in 32768-65535,
/// the last inside the usual ephemeral range; otherwise comma-separated
/// numbers), listens, writes the sorted ports comma-separated to PORTSFILE,
/// then exec()s CMD with the listening sockets inherited.
const LISTEN_THEN_EXEC_PY: &str = r#"
import os, random, socket, sys
path, spec, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if spec == "random":
    ports = [random.randrange(1, 1024), random.randrange(1024, 32768),
             random.randrange(32768, 65536)]
else:
    ports = [int(p) for p in spec.split(",")]
socks = []
for p in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", p))
    s.listen(64)
    s.set_inheritable(True)
    socks.append(s)
with open(path, "w") as f:
    f.write(",".join(str(p) for p in sorted(ports)))
os.execvp(argv[0], argv)
"#;

/// Reads `--json` scan output on stdin; fails unless every line is a JSON
/// object with string host/proto/state, integer port and string-or-null
/// service; prints each as "host port proto state service|null".
const JSON_CHECK_PY: &str = r#"
import json, sys
data = sys.stdin.read()
if data and not data.endswith("\n"):
    sys.exit("output does not end with a newline")
for line in data.split("\n")[:-1]:
    try:
        o = json.loads(line)
    except ValueError as e:
        sys.exit("not JSON: %r: %s" % (line, e))
    if not isinstance(o, dict):
        sys.exit("not a JSON object: %r" % line)
    for k, t in (("host", str), ("port", int), ("proto", str), ("state", str)):
        if not isinstance(o.get(k), t) or isinstance(o.get(k), bool):
            sys.exit("key %r missing or of the wrong type in %r" % (k, line))
    if "service" not in o or not (o["service"] is None or isinstance(o["service"], str)):
        sys.exit("key 'service' missing or neither a string nor null in %r" % line)
    svc = "null" if o["service"] is None else o["service"]
    print(o["host"], o["port"], o["proto"], o["state"], svc)
"#;

/// The first name /etc/services gives `port`/tcp, as getservbyport(3) does.
fn tcp_service(port: u16) -> Option<String> {
    let text = std::fs::read_to_string("/etc/services")
        .unwrap_or_else(|e| panic!("read /etc/services (package netbase): {e}"));
    let want = format!("{port}/tcp");
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('#').next().unwrap_or("").split_whitespace();
            Some((f.next()?, f.next()?))
        })
        .find(|&(_, pp)| pp == want)
        .map(|(name, _)| name.to_string())
}

/// The line `nk dial -z` prints for an open port.
fn open_line(host: &str, port: u16) -> String {
    match tcp_service(port) {
        Some(s) => format!("{host} {port}/tcp open {s}"),
        None => format!("{host} {port}/tcp open"),
    }
}

/// The expected stdout for these open ports on `host`, in ascending order.
fn open_lines(host: &str, ports: &[u16]) -> String {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.iter().map(|&p| open_line(host, p) + "\n").collect()
}

/// The `-v` summary: `nk: scanned N ports on HOST in 0.52s: A open, B closed, C timed out`.
#[derive(Debug, PartialEq)]
struct Summary {
    ports: u64,
    host: String,
    open: u64,
    closed: u64,
    timed_out: u64,
}

/// Parses the last `nk: scanned ...` line of `stderr`; panics with the whole
/// output when there is none or it does not have the documented shape.
fn summary(out: &Finished) -> Summary {
    let line = out
        .stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("nk: scanned "))
        .unwrap_or_else(|| {
            panic!(
                "no `nk: scanned ...` summary line on stderr\n{}",
                out.describe()
            )
        });
    let parse = || -> Option<Summary> {
        let t: Vec<&str> = line["nk: scanned ".len()..].split_whitespace().collect();
        let num = |s: &str| s.trim_end_matches([',', ':']).parse::<u64>().ok();
        let before = |word: &str| -> Option<u64> {
            let i = t.iter().position(|w| w.trim_end_matches(',') == word)?;
            num(t.get(i.checked_sub(1)?)?)
        };
        if !(t.get(1)?.starts_with("port") && *t.get(2)? == "on" && *t.get(4)? == "in") {
            return None;
        }
        // The duration: `0.52s` in the contract's example; other units
        // (`301ms`, `593us`) are accepted too.
        let dur = t.get(5)?.strip_suffix(':')?;
        let unit_at = dur.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        dur[..unit_at].parse::<f64>().ok()?;
        if !["s", "ms", "us", "µs", "ns", "m"].contains(&&dur[unit_at..]) {
            return None;
        }
        Some(Summary {
            ports: num(t.first()?)?,
            host: t.get(3)?.to_string(),
            open: before("open")?,
            closed: before("closed")?,
            timed_out: before("timed")?,
        })
    };
    parse().unwrap_or_else(|| {
        panic!(
            "summary line {line:?} is not `nk: scanned N ports on HOST in X.XXs: A open, B closed, C timed out`\n{}",
            out.describe()
        )
    })
}

/// Runs `nk ARGS...` in a private network namespace (after `setup`, see
/// [`netns_command`]) in which [`LISTEN_THEN_EXEC_PY`] first listens on
/// `portspec`. Returns the listened ports and nk's result.
fn scan_in_netns(setup: &str, portspec: &str, args: &[&str], secs: f64) -> (Vec<u16>, Finished) {
    require_netns();
    require_python3();
    let dir = tempfile::tempdir().unwrap();
    let portsfile = dir.path().join("ports");
    let mut argv: Vec<String> = vec![
        "python3".into(),
        "-c".into(),
        LISTEN_THEN_EXEC_PY.into(),
        portsfile.display().to_string(),
        portspec.into(),
        NK.into(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let name = format!(
        "unshare -n: listen on {portspec}, then nk {}",
        args.join(" ")
    );
    let out = Proc::spawn(&name, netns_command(setup, &argv), In::Null, Out::Pipe).wait(secs);
    let ports = read_ports(&portsfile, &out);
    (ports, out)
}

fn read_ports(path: &Path, out: &Finished) -> Vec<u16> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "the namespace's listeners never wrote {} ({e}): python or the namespace failed\n{}",
            path.display(),
            out.describe()
        )
    });
    text.split(',')
        .map(|p| {
            p.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad port {p:?} in {text:?}"))
        })
        .collect()
}

/// Runs `nk ARGS...` in a private network namespace with no listener at all.
fn nk_in_netns(setup: &str, args: &[&str], secs: f64) -> Finished {
    require_netns();
    let mut argv = vec![NK];
    argv.extend_from_slice(args);
    let name = format!("unshare -n: nk {}", args.join(" "));
    Proc::spawn(&name, netns_command(setup, &argv), In::Null, Out::Pipe).wait(secs)
}

/// A listener on 127.0.0.1 at a kernel-chosen port, never accepting by
/// itself (connections wait in its queue for [`accepted`]).
fn host_listener(ip: &str) -> TcpListener {
    let l = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    l.set_nonblocking(true).unwrap();
    l
}

fn port_of(l: &TcpListener) -> u16 {
    l.local_addr().unwrap().port()
}

/// Accepts every connection queued on `l` (non-blocking), after giving the
/// last one 300 ms to land; returns their peer addresses.
fn accepted(l: &TcpListener) -> Vec<std::net::SocketAddr> {
    thread::sleep(Duration::from_millis(300));
    let mut peers = Vec::new();
    loop {
        match l.accept() {
            Ok((_, peer)) => peers.push(peer),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return peers,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// 1. whole range, three listeners, private network namespace
// ---------------------------------------------------------------------------

#[test]
fn scan_full_range_finds_exactly_the_three_listeners_in_order() {
    let (ports, out) = scan_in_netns(
        "",
        "random",
        &["dial", "-z", "127.0.0.1", "1-65535"],
        FULL_SCAN_SECS,
    );
    let want = open_lines("127.0.0.1", &ports);
    out.expect_code(0).expect_stdout(want.as_bytes());
}

#[test]
fn scan_full_range_json_lines_parse_and_name_the_three_listeners() {
    let (ports, out) = scan_in_netns(
        "",
        "random",
        &["dial", "-z", "--json", "127.0.0.1", "1-65535"],
        FULL_SCAN_SECS,
    );
    out.expect_code(0);
    let mut py = Command::new("python3");
    py.args(["-c", JSON_CHECK_PY]);
    let checked = Proc::spawn(
        "python3 json check",
        py,
        In::Bytes(out.stdout.clone()),
        Out::Pipe,
    )
    .wait(10.0);
    assert!(
        checked.status.success(),
        "nk --json output is not one valid JSON object per line: {}\n{}",
        checked.stderr,
        out.describe()
    );
    let want: String = ports
        .iter()
        .map(|&p| {
            format!(
                "127.0.0.1 {p} tcp open {}\n",
                tcp_service(p).unwrap_or_else(|| "null".into())
            )
        })
        .collect();
    assert_eq!(
        checked.stdout_text(),
        want,
        "--json objects (as host port proto state service) differ from the listeners {ports:?}\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 2. nothing open: exit 1, stdout empty
// ---------------------------------------------------------------------------

#[test]
fn scan_range_with_nothing_open_exits_1_with_empty_stdout() {
    let out = nk_in_netns("", &["dial", "-z", "127.0.0.1", "1000-3000"], 60.0);
    out.expect_code(1).expect_stdout(b"");
}

#[test]
fn scan_of_released_host_ports_exits_1_with_empty_stdout() {
    // Ports the kernel gave this test and that were released again: nothing
    // listens there (they are also in the ephemeral range, so nk's own
    // source ports may land on them: a self-connect must not count as open).
    let ports: Vec<String> = (0..3).map(|_| free_port("127.0.0.1").to_string()).collect();
    let out = run_nk(
        ["dial", "-z", "127.0.0.1", &ports.join(",")],
        In::Null,
        20.0,
    );
    out.expect_code(1).expect_stdout(b"");
}

// ---------------------------------------------------------------------------
// 3. usage errors and an unresolvable host
// ---------------------------------------------------------------------------

#[test]
fn invalid_port_specs_are_usage_errors_before_any_traffic() {
    let guard = host_listener("127.0.0.1");
    let p = port_of(&guard);
    let mut specs: Vec<String> = [
        "0", "70000", "65536", "1-65536", "9-3", "a-b", "", "1-", ",", "-5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A valid port of ours first, then a bad element: the whole spec must be
    // refused before the valid part is scanned.
    for bad in ["0", "70000", "9-3", "a-b", "1-", "nosuchservice"] {
        specs.push(format!("{p},{bad}"));
    }
    let mut failures = Vec::new();
    for spec in &specs {
        let out = run_nk(["dial", "-z", "127.0.0.1", spec.as_str()], In::Null, 10.0);
        if out.status.code() != Some(2) || !out.stderr.starts_with("nk: ") || !out.stdout.is_empty()
        {
            failures.push(format!(
                "spec {spec:?}: want exit 2, stderr starting \"nk: \", empty stdout\n{}",
                out.describe()
            ));
        }
    }
    for args in [
        vec!["dial", "-z", "--parallel", "x", "127.0.0.1"],
        vec!["dial", "-z", "-w", "5x", "127.0.0.1"],
    ] {
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(p.to_string());
        let out = run_nk(&args, In::Null, 10.0);
        if out.status.code() != Some(2) || !out.stderr.starts_with("nk: ") || !out.stdout.is_empty()
        {
            failures.push(format!(
                "nk {args:?}: want exit 2, stderr starting \"nk: \", empty stdout\n{}",
                out.describe()
            ));
        }
    }
    let leaked = accepted(&guard);
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        leaked.is_empty(),
        "a refused command still connected to the test's port {p} ({} connections)",
        leaked.len()
    );
}

#[test]
fn scan_of_an_unresolvable_host_exits_1() {
    let out = run_nk(["dial", "-z", "nosuch.invalid", "80"], In::Null, 30.0);
    out.expect_code(1).expect_stdout(b"");
    assert!(
        out.stderr.starts_with("nk: "),
        "want one `nk: ...` line on stderr\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 4. TCP self-connect is never "open"
// ---------------------------------------------------------------------------

#[test]
fn full_range_scan_with_nothing_listening_reports_nothing_open() {
    // Every port of the namespace's ephemeral range is scanned too, so nk's
    // own source port may equal the port it connects to (a self-connect,
    // which `nc -z` reports as open).
    let out = nk_in_netns(
        "",
        &["dial", "-z", "-v", "127.0.0.1", "1-65535"],
        FULL_SCAN_SECS,
    );
    out.expect_code(1).expect_stdout(b"");
    let s = summary(&out);
    assert_eq!(
        s,
        Summary {
            ports: 65535,
            host: "127.0.0.1".into(),
            open: 0,
            closed: 65535,
            timed_out: 0
        },
        "summary\n{}",
        out.describe()
    );
}

#[test]
fn a_tcp_self_connect_is_not_reported_open() {
    // With the namespace's ephemeral range pinned to one port, a connect to
    // 127.0.0.1 on that port connects the socket to itself, every time.
    require_python3();
    const PIN: &str = "echo '40000 40000' > /proc/sys/net/ipv4/ip_local_port_range";
    // Control: the setup really produces a self-connect (its own namespace,
    // so its TIME_WAIT leftover cannot disturb nk's attempt).
    let probe = r#"
import socket
s = socket.socket()
s.settimeout(2)
s.connect(("127.0.0.1", 40000))
print(s.getsockname() == s.getpeername(), s.getsockname())
"#;
    let control = Proc::spawn(
        "unshare -n: python3 self-connect probe",
        netns_command(PIN, &["python3", "-c", probe]),
        In::Null,
        Out::Pipe,
    )
    .wait(10.0);
    assert!(
        control.status.success() && control.stdout_text().starts_with("True"),
        "could not reproduce a TCP self-connect (pinned ip_local_port_range), so this test \
         proves nothing\n{}",
        control.describe()
    );
    let out = nk_in_netns(PIN, &["dial", "-z", "-v", "127.0.0.1", "40000"], 20.0);
    out.expect_code(1).expect_stdout(b"");
    let s = summary(&out);
    assert_eq!(
        (s.ports, s.open),
        (1, 0),
        "summary {s:?}\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 5. port lists, ranges, service names, -v summary
// ---------------------------------------------------------------------------

#[test]
fn scan_lists_and_ranges_of_the_tests_own_ports() {
    let a = host_listener("127.0.0.1");
    let b = host_listener("127.0.0.1");
    let (pa, pb) = (port_of(&a), port_of(&b));
    let (lo, hi) = (pa.min(pb), pa.max(pb));
    let want = open_lines("127.0.0.1", &[lo, hi]);

    // Given in descending order: printed in port order.
    let out = run_nk(
        ["dial", "-z", "127.0.0.1", &format!("{hi},{lo}")],
        In::Null,
        20.0,
    );
    out.expect_code(0).expect_stdout(want.as_bytes());

    let out = run_nk(
        ["dial", "-z", "127.0.0.1", &format!("{lo}-{lo},{hi}")],
        In::Null,
        20.0,
    );
    out.expect_code(0).expect_stdout(want.as_bytes());

    // One connect at a time: same answer.
    let out = run_nk(
        [
            "dial",
            "-z",
            "--parallel",
            "1",
            "127.0.0.1",
            &format!("{hi},{lo}-{lo}"),
        ],
        In::Null,
        20.0,
    );
    out.expect_code(0).expect_stdout(want.as_bytes());
}

#[test]
fn scan_v_prints_the_summary_on_stderr() {
    let a = host_listener("127.0.0.1");
    let b = host_listener("127.0.0.1");
    let closed_guard = closed_port();
    let closed = closed_guard.port;
    let (pa, pb) = (port_of(&a), port_of(&b));
    let out = run_nk(
        [
            "dial",
            "-z",
            "-v",
            "127.0.0.1",
            &format!("{pa},{closed},{pb}"),
        ],
        In::Null,
        20.0,
    );
    out.expect_code(0)
        .expect_stdout(open_lines("127.0.0.1", &[pa, pb]).as_bytes());
    let s = summary(&out);
    assert_eq!(
        s,
        Summary {
            ports: 3,
            host: "127.0.0.1".into(),
            open: 2,
            closed: 1,
            timed_out: 0
        },
        "summary\n{}",
        out.describe()
    );
}

#[test]
fn scan_service_names_and_mixed_specs() {
    for (name, port) in [("ssh", 22), ("http", 80), ("https", 443)] {
        assert_eq!(
            tcp_service(port).as_deref(),
            Some(name),
            "/etc/services does not map {port}/tcp to {name} (package netbase)"
        );
    }
    // In a private namespace: ports 22/80/443 of the host are not ours.
    let spec = "https,ssh,20-23,http,8000-8010,22";
    let (ports, out) = scan_in_netns(
        "",
        "22,80,443",
        &["dial", "-z", "-v", "127.0.0.1", spec],
        30.0,
    );
    assert_eq!(ports, [22, 80, 443]);
    out.expect_code(0).expect_stdout(
        b"127.0.0.1 22/tcp open ssh\n127.0.0.1 80/tcp open http\n127.0.0.1 443/tcp open https\n",
    );
    let s = summary(&out);
    assert_eq!(
        (s.open, s.timed_out),
        (3, 0),
        "summary {s:?}\n{}",
        out.describe()
    );

    // One at a time, same answer.
    let (_, out) = scan_in_netns(
        "",
        "22,80,443",
        &["dial", "-z", "--parallel", "1", "127.0.0.1", spec],
        30.0,
    );
    out.expect_code(0).expect_stdout(
        b"127.0.0.1 22/tcp open ssh\n127.0.0.1 80/tcp open http\n127.0.0.1 443/tcp open https\n",
    );
}

// ---------------------------------------------------------------------------
// 6. a name with several addresses; -4 / -6
// ---------------------------------------------------------------------------

/// Listeners on ::1 and 127.0.0.1 at the same kernel-chosen port.
fn dual_listeners() -> (TcpListener, TcpListener, u16) {
    for _ in 0..50 {
        let v6 = host_listener("::1");
        let p = port_of(&v6);
        if let Ok(v4) = TcpListener::bind(("127.0.0.1", p)) {
            v4.set_nonblocking(true).unwrap();
            return (v6, v4, p);
        }
    }
    panic!("could not listen on ::1 and 127.0.0.1 at one port in 50 tries");
}

#[test]
fn scan_of_a_name_with_two_addresses_reports_each() {
    require_mountns();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "::1 dualhost\n127.0.0.1 dualhost\n").unwrap();
    let (v6, v4, p) = dual_listeners();
    let ps = p.to_string();
    let l6 = open_line("::1", p);
    let l4 = open_line("127.0.0.1", p);

    let run = |extra: &[&str]| -> Finished {
        let mut argv = vec![NK, "dial", "-z"];
        argv.extend_from_slice(extra);
        argv.extend_from_slice(&["dualhost", &ps]);
        Proc::spawn(
            &format!(
                "unshare -m (dualhost = ::1, 127.0.0.1): nk {}",
                argv[1..].join(" ")
            ),
            hosts_command(&hosts, &argv),
            In::Null,
            Out::Pipe,
        )
        .wait(20.0)
    };

    let out = run(&[]);
    out.expect_code(0);
    let got: BTreeSet<String> = out.stdout_text().lines().map(str::to_string).collect();
    let want: BTreeSet<String> = [l6.clone(), l4.clone()].into_iter().collect();
    assert!(
        got == want && out.stdout_text().lines().count() == 2,
        "want exactly the lines {want:?} (either order)\n{}",
        out.describe()
    );
    assert!(
        !accepted(&v6).is_empty(),
        "nothing connected to [::1]:{p}\n{}",
        out.describe()
    );
    assert!(
        !accepted(&v4).is_empty(),
        "nothing connected to 127.0.0.1:{p}\n{}",
        out.describe()
    );

    let out = run(&["-4"]);
    out.expect_code(0)
        .expect_stdout(format!("{l4}\n").as_bytes());
    assert!(
        accepted(&v6).is_empty(),
        "-4 connected to [::1]:{p}\n{}",
        out.describe()
    );
    assert!(
        !accepted(&v4).is_empty(),
        "-4: nothing connected to 127.0.0.1:{p}\n{}",
        out.describe()
    );

    let out = run(&["-6"]);
    out.expect_code(0)
        .expect_stdout(format!("{l6}\n").as_bytes());
    assert!(
        accepted(&v4).is_empty(),
        "-6 connected to 127.0.0.1:{p}\n{}",
        out.describe()
    );
    assert!(
        !accepted(&v6).is_empty(),
        "-6: nothing connected to [::1]:{p}\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 7. -w: a port that never answers is "timed out", not open, not closed
// ---------------------------------------------------------------------------

#[test]
fn scan_w_counts_a_silent_port_as_timed_out() {
    let (py, silent) = full_queue_listener();
    let open = host_listener("127.0.0.1");
    let po = port_of(&open);
    let out = run_nk(
        [
            "dial",
            "-z",
            "-v",
            "-w",
            "300ms",
            "127.0.0.1",
            &format!("{silent},{po}"),
        ],
        In::Null,
        20.0,
    );
    drop(py);
    out.expect_code(0)
        .expect_stdout(format!("{}\n", open_line("127.0.0.1", po)).as_bytes());
    let s = summary(&out);
    assert_eq!(
        (s.ports, s.open, s.closed, s.timed_out),
        (2, 1, 0, 1),
        "summary {s:?}\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 8. -s: the scan's connections come from the given source address
// ---------------------------------------------------------------------------

#[test]
fn scan_s_uses_the_source_address() {
    let l = host_listener("127.0.0.1");
    let p = port_of(&l);
    let out = run_nk(
        ["dial", "-z", "-s", "127.0.0.2", "127.0.0.1", &p.to_string()],
        In::Null,
        20.0,
    );
    out.expect_code(0)
        .expect_stdout(format!("{}\n", open_line("127.0.0.1", p)).as_bytes());
    let peers = accepted(&l);
    assert!(
        !peers.is_empty() && peers.iter().all(|a| a.ip().to_string() == "127.0.0.2"),
        "want connections from 127.0.0.2 only, got {peers:?}"
    );
}

#[test]
fn scan_refuses_options_it_cannot_honour() {
    for extra in [["-p", "40000"], ["-c", "cat"]] {
        let out = run_nk(
            ["dial", "-z", extra[0], extra[1], "127.0.0.1", "1-2"],
            In::Null,
            10.0,
        );
        out.expect_code(2)
            .expect_stderr_contains("cannot be used with -z");
    }
}

// ---------------------------------------------------------------------------
// 9. IPv6 link-local targets keep their scope (issue 18 item 5)
// ---------------------------------------------------------------------------

/// Setup for a namespace with a link-local address: lo has no fe80 address and the
/// kernel has no dummy driver here, so a veth pair (v0, v1) carries fe80::1 on v0
/// (`nodad`: usable at once, no duplicate address detection to wait for).
const LINK_LOCAL_SETUP: &str = "ip link add v0 type veth peer name v1 && ip link set v0 up \
     && ip link set v1 up && ip addr add fe80::1/64 dev v0 nodad";

/// argv: KIND CMD ARGS... Listens on [fe80::1%v0] at a kernel-chosen port (KIND tcp:
/// a TCP listener; udp: a UDP socket that nobody reads), replaces the word PORT
/// in ARGS with it and CLOSED with a port released again, then exec()s CMD.
const LINK_LOCAL_LISTEN_THEN_EXEC_PY: &str = r#"
import os, socket, sys
kind, argv = sys.argv[1], sys.argv[2:]
scope = socket.if_nametoindex("v0")
def sock():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.bind(("fe80::1", 0, 0, scope))
    return s
s, gone = sock(), sock()
port, closed = s.getsockname()[1], gone.getsockname()[1]
gone.close()
if kind == "tcp":
    s.listen(64)
s.set_inheritable(True)
argv = [a.replace("PORT", str(port)).replace("CLOSED", str(closed)) for a in argv]
print(port, closed, flush=True)
os.execvp(argv[0], argv)
"#;

/// Runs `nk ARGS` in a namespace with fe80::1 on v0 and a KIND listener there;
/// returns (listening port, closed port, nk's result).
fn scan_link_local(kind: &str, args: &[&str]) -> (u16, u16, Finished) {
    require_netns();
    require_python3();
    let mut argv: Vec<&str> = vec!["python3", "-c", LINK_LOCAL_LISTEN_THEN_EXEC_PY, kind, NK];
    argv.extend_from_slice(args);
    let name = format!(
        "unshare -n: [fe80::1%v0] {kind} listener, nk {}",
        args.join(" ")
    );
    let out = Proc::spawn(
        &name,
        netns_command(LINK_LOCAL_SETUP, &argv),
        In::Null,
        Out::Pipe,
    )
    .wait(30.0);
    let text = out.stdout_text();
    let first = text.lines().next().unwrap_or_default().to_string();
    let mut words = first.split_whitespace().map(|w| w.parse::<u16>().ok());
    match (words.next().flatten(), words.next().flatten()) {
        (Some(port), Some(closed)) => (port, closed, out),
        _ => panic!(
            "the namespace's listener never said its port\n{}",
            out.describe()
        ),
    }
}

#[test]
fn scan_of_a_link_local_address_keeps_its_scope() {
    for args in [
        vec!["dial", "-z", "-v", "fe80::1%v0", "PORT,CLOSED"],
        vec!["dial", "-z", "-v", "[fe80::1%v0]:PORT,CLOSED"],
    ] {
        let (port, _, out) = scan_link_local("tcp", &args);
        out.expect_code(0);
        let text = out.stdout_text();
        let got: Vec<&str> = text.lines().skip(1).collect();
        let want = open_line("fe80::1%v0", port);
        assert_eq!(got, [want.as_str()], "{args:?}\n{}", out.describe());
        let s = summary(&out);
        assert_eq!(
            (s.ports, s.open, s.closed),
            (2, 1, 1),
            "{s:?}\n{}",
            out.describe()
        );
    }
}

// ---------------------------------------------------------------------------
// 10. a service name with a hyphen is a service, not a range (issue 18 item 6)
// ---------------------------------------------------------------------------

#[test]
fn a_hyphenated_service_name_is_that_service() {
    assert_eq!(
        tcp_service(8080).as_deref(),
        Some("http-alt"),
        "/etc/services does not map 8080/tcp to http-alt (package netbase)"
    );
    assert_eq!(tcp_service(20).as_deref(), Some("ftp-data"));
    let (ports, out) = scan_in_netns(
        "",
        "20,22,8080",
        &["dial", "-z", "127.0.0.1", "http-alt,ftp-data-ssh"],
        30.0,
    );
    assert_eq!(ports, [20, 22, 8080]);
    out.expect_code(0).expect_stdout(
        b"127.0.0.1 20/tcp open ftp-data\n127.0.0.1 22/tcp open ssh\n127.0.0.1 8080/tcp open http-alt\n",
    );
}

// ---------------------------------------------------------------------------
// 11. -u: the UDP probe scan (issue 18 item 14)
// ---------------------------------------------------------------------------

/// The first name /etc/services gives `port`/udp.
fn udp_service(port: u16) -> Option<String> {
    let text = std::fs::read_to_string("/etc/services")
        .unwrap_or_else(|e| panic!("read /etc/services (package netbase): {e}"));
    let want = format!("{port}/udp");
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('#').next().unwrap_or("").split_whitespace();
            Some((f.next()?, f.next()?))
        })
        .find(|&(_, pp)| pp == want)
        .map(|(name, _)| name.to_string())
}

/// The line `nk dial -z -u` prints for a port in `state`.
fn udp_line(host: &str, port: u16, state: &str) -> String {
    match udp_service(port) {
        Some(s) => format!("{host} {port}/udp {state} {s}"),
        None => format!("{host} {port}/udp {state}"),
    }
}

/// A UDP socket on `ip` that answers every datagram with "hi" until the test ends
/// (a read timeout bounds each wait; the thread ends when the socket's owner drops
/// the stop flag).
struct Answering {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Answering {
    fn start(ip: &str) -> Answering {
        use std::sync::atomic::Ordering;
        let s = std::net::UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = s.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            // 100 ms reads: at most 600 of them (60 s), even if nobody stops us.
            for _ in 0..600 {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok((_, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(b"hi", from);
                }
            }
        });
        Answering { port, stop }
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn udp_scan_tells_open_open_filtered_and_closed_apart() {
    for ip in ["127.0.0.1", "::1"] {
        let answering = Answering::start(ip);
        let silent = udp(ip);
        let quiet = silent.local_addr().unwrap().port();
        let closed = udp(ip).local_addr().unwrap().port();
        let (open, spec) = (
            answering.port,
            format!("{},{quiet},{closed}", answering.port),
        );
        let mut lines = [
            (open, udp_line(ip, open, "open")),
            (quiet, udp_line(ip, quiet, "open|filtered")),
        ];
        lines.sort();
        let want: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        for flags in [&["-z", "-u"][..], &["-zu"], &["-u", "-z"], &["-zuv"]] {
            let mut args = vec!["dial"];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["-v", "-w", "300ms", ip, &spec]);
            let out = run_nk(&args, In::Null, 20.0);
            out.expect_code(0).expect_stdout(want.as_bytes());
            out.expect_stderr_contains(&format!("scanned 3 ports on {ip} in "));
            out.expect_stderr_contains(": 1 open, 1 open|filtered, 1 closed");
        }
        let out = run_nk(
            ["dial", "-z", "-u", "--json", "-w", "300ms", ip, &spec],
            In::Null,
            20.0,
        );
        out.expect_code(0);
        let mut py = Command::new("python3");
        py.args(["-c", JSON_CHECK_PY]);
        let checked = Proc::spawn(
            "python3 json check",
            py,
            In::Bytes(out.stdout.clone()),
            Out::Pipe,
        )
        .wait(10.0);
        let mut want: Vec<(u16, String)> = [(open, "open"), (quiet, "open|filtered")]
            .iter()
            .map(|&(p, state)| {
                let svc = udp_service(p).unwrap_or_else(|| "null".into());
                (p, format!("{ip} {p} udp {state} {svc}\n"))
            })
            .collect();
        want.sort();
        let want: String = want.into_iter().map(|(_, l)| l).collect();
        assert_eq!(
            checked.stdout_text(),
            want,
            "{}\n{}",
            checked.describe(),
            out.describe()
        );
    }
}

#[test]
fn udp_scan_exit_status_matches_nc_zu() {
    // OpenBSD nc probes only with -v (without it, -zu "succeeds" without sending);
    // its -zu reports success for every port that did not refuse.
    let answering = Answering::start("127.0.0.1");
    let silent = udp("127.0.0.1");
    let quiet = silent.local_addr().unwrap().port();
    let closed = free_udp_port();
    for (port, code) in [(answering.port, 0), (quiet, 0), (closed, 1)] {
        let ps = port.to_string();
        let theirs = nc(&["-zuv", "-w", "1", "127.0.0.1", &ps], In::Null, Out::Pipe).wait(10.0);
        theirs.expect_code(code);
        let ours = run_nk(
            ["dial", "-zu", "-w", "300ms", "127.0.0.1", &ps],
            In::Null,
            20.0,
        );
        ours.expect_code(code);
        if code == 1 {
            expect_nk_error(&ours, 1);
            ours.expect_stderr_contains("no open or open|filtered port among 1 scanned");
        }
    }
}

#[test]
fn udp_scan_flags_without_their_mode_are_usage_errors() {
    let guard = udp("127.0.0.1");
    let p = guard.local_addr().unwrap().port().to_string();
    expect_usage_errors(
        &[
            words(&["dial", "--rate", "10", "-z", "127.0.0.1", &p]),
            words(&["dial", "--udp", "127.0.0.1", &p]),
            words(&["dial", "-zu", "--rate", "0", "127.0.0.1", &p]),
            words(&["dial", "-zu", "127.0.0.1", "http-alt"]),
        ],
        || In::Null,
        || {
            guard.set_nonblocking(true).unwrap();
            guard.recv_from(&mut [0u8; 16]).is_ok()
        },
        "a refused command still sent a probe to the test's port",
    );
}

#[test]
fn udp_scan_of_a_link_local_address_keeps_its_scope() {
    let (port, _, out) = scan_link_local(
        "udp",
        &[
            "dial",
            "-zu",
            "-v",
            "-w",
            "200ms",
            "fe80::1%v0",
            "PORT,CLOSED",
        ],
    );
    out.expect_code(0);
    let text = out.stdout_text();
    let got: Vec<&str> = text.lines().skip(1).collect();
    let want = udp_line("fe80::1%v0", port, "open|filtered");
    assert_eq!(got, [want.as_str()], "{}", out.describe());
    out.expect_stderr_contains(": 0 open, 1 open|filtered, 1 closed");
}

/// argv: CMD ARGS... In a private network namespace (this one: 10.9.0.1 on v0),
/// makes a second one holding 10.9.0.2 on v1, the other end of a veth pair, with
/// nothing listening; then exec()s CMD. ICMP errors for packets that arrive on a
/// veth (not on loopback, which the kernel exempts) obey the global limit
/// net.ipv4.icmp_msgs_per_sec / icmp_msgs_burst (1000/s, burst 50); the
/// per-peer limit (icmp_ratelimit, one a second) is switched off in the second
/// namespace so that the global one is what the scan meets. The second
/// namespace is a `sleep` that ends on its own (30 s).
const TWO_NAMESPACES_SH: &str = r#"
set -e
ip link set lo up
ip link add v0 type veth peer name v1
ip addr add 10.9.0.1/24 dev v0
ip link set v0 up
unshare -n sleep 30 </dev/null >/dev/null 2>&1 &
peer=$!
i=0
while [ "$(readlink /proc/$peer/ns/net)" = "$(readlink /proc/$$/ns/net)" ]; do
    i=$((i + 1)); [ $i -lt 500 ] || { echo "the second namespace never appeared" >&2; exit 1; }
    sleep 0.01
done
ip link set v1 netns $peer
nsenter -t $peer -n sh -c 'ip link set lo up && ip addr add 10.9.0.2/24 dev v1 \
    && ip link set v1 up && echo 0 > /proc/sys/net/ipv4/icmp_ratelimit'
exec "$@"
"#;

fn nk_toward_a_second_namespace(args: &[&str], secs: f64) -> Finished {
    require_netns();
    require_tool("nsenter", "util-linux");
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "sh", "-c", TWO_NAMESPACES_SH, "sh", NK]);
    cmd.args(args);
    cmd.env("NO_COLOR", "1");
    let name = format!(
        "unshare -n (10.9.0.1 -> 10.9.0.2 over a veth): nk {}",
        args.join(" ")
    );
    Proc::spawn(&name, cmd, In::Null, Out::Pipe).wait(secs)
}

#[test]
fn udp_scan_is_not_fooled_by_icmp_rate_limiting() {
    // Control: probes sent far faster than the kernel answers (and the retries
    // too) leave some closed ports silent, so they read as open|filtered. This
    // shows the setup really rate-limits; without it the test proves nothing.
    let control = nk_toward_a_second_namespace(
        &[
            "dial", "-zu", "-v", "--rate", "1000000", "-w", "300ms", "10.9.0.2", "1-600",
        ],
        60.0,
    );
    assert!(
        control.status.code() == Some(0) && control.stdout_text().contains("open|filtered"),
        "unpaced probes met no ICMP rate limit, so this test proves nothing\n{}",
        control.describe()
    );
    // The default pace: every one of the 600 closed ports is found closed.
    let out = nk_toward_a_second_namespace(&["dial", "-zu", "-v", "10.9.0.2", "1-600"], 60.0);
    expect_nk_error(&out, 1);
    out.expect_stderr_contains("scanned 600 ports on 10.9.0.2 in ");
    out.expect_stderr_contains(": 0 open, 0 open|filtered, 600 closed");
}
