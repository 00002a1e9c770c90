//! `nk resolve` side by side with `dig` (bind9-dnsutils) against a real authoritative server,
//! Knot DNS (`knotd`), on loopback: every record type by name, DNSSEC records from a zone
//! knotd signs itself, the CHAOS class, the `--full` view, and the query controls (RD, DO, CD,
//! NSID, client subnet, UDP size, no EDNS), whose bytes are compared with the bytes dig sends.
//!
//! Knot was picked over nsd and bind9 because one small config file gives everything these
//! tests need: online DNSSEC signing with NSEC or NSEC3 per zone, NSID and version.bind
//! answers, and zone transfers (AXFR and IXFR from its journal) to an ACL.
//!
//! Every child is bounded by a deadline; a missing knotd or dig fails with an install hint.

mod common;

use common::pki::Pki;
use common::*;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const RUN_SECS: f64 = 20.0;

/// The signed zone: one record of each type hickory-proto decodes and of those nk reads
/// itself (DNAME, URI), a delegation with its DS, a type with no name (TYPE65280).
const EXAMPLE_ZONE: &str = r#"$ORIGIN example.test.
$TTL 300
@ SOA ns hostmaster 2024010101 1200 180 1209600 300
@ NS ns
@ MX 10 mail
ns A 127.0.0.1
www A 192.0.2.10
www AAAA 2001:db8::10
mail A 192.0.2.25
alias CNAME www
d DNAME www.example.test.
u URI 10 1 "https://www.example.test/"
h HINFO "DEC-2060" "TOPS 20"
s SSHFP 4 2 123456789ABCDEF67890123456789ABCDEF67890123456789ABCDEF123456789
t TLSA 3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789
n NAPTR 100 10 "U" "E2U+sip" "!^.*$!sip:info@example.test!" .
svc SVCB 1 www alpn=h2,h3 port=8443 ipv6hint=2001:db8::1
web HTTPS 1 . alpn=h2 ipv4hint=192.0.2.10,192.0.2.11
pgp OPENPGPKEY AQIDBAUGBwgJ
odd TYPE65280 \# 3 0102ab
txt TXT "hello world" "second"
caa CAA 0 issue "ca.example.net"
_sip._udp SRV 0 5 5060 sip
sub NS ns.sub
ns.sub A 192.0.2.53
sub DS 12345 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF
"#;

/// A zone signed with NSEC3 (salted, one iteration).
const HASHED_ZONE: &str = "$ORIGIN nsec3.test.\n$TTL 300\n\
    @ SOA ns hostmaster 1 1200 180 1209600 300\n@ NS ns\nns A 127.0.0.1\nwww A 192.0.2.11\n";

/// knotd's path: on PATH or in the sbin directories a non-root PATH lacks.
fn require_sbin(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(tool);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("required test peer `{tool}` is not installed; install it: apt-get install {package}");
}

/// A running knotd (killed on drop) serving `example.test` (NSEC) and `nsec3.test` (NSEC3),
/// both signed at load, with NSID, version.bind, and transfers allowed from loopback.
struct Knot {
    port: u16,
    dir: tempfile::TempDir,
    _proc: Proc,
}

/// A zone for [`Knot::start_with`]: its name, its text, whether knotd signs it.
struct Zone<'a> {
    name: &'a str,
    text: &'a str,
    signed: Option<&'a str>,
    /// Whether loopback may transfer it.
    transfer: bool,
}

impl Knot {
    fn start() -> Knot {
        Knot::start_with(
            "127.0.0.1",
            None,
            &[
                Zone {
                    name: "example.test",
                    text: EXAMPLE_ZONE,
                    signed: Some("plain"),
                    transfer: true,
                },
                Zone {
                    name: "nsec3.test",
                    text: HASHED_ZONE,
                    signed: Some("hashed"),
                    transfer: false,
                },
            ],
        )
    }

    /// knotd on `ip` at `port` (a kernel-chosen one when `None`, retried if taken meanwhile),
    /// waiting until the first zone answers with its SOA.
    pub fn start_with(ip: &str, port: Option<u16>, zones: &[Zone]) -> Knot {
        let bin = require_sbin("knotd", "knot");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("db")).expect("mkdir db");
        for zone in zones {
            std::fs::write(dir.path().join(format!("{}.zone", zone.name)), zone.text)
                .expect("write zone");
        }
        let mut last = String::new();
        for _ in 0..10 {
            let port = port.unwrap_or_else(|| {
                UdpSocket::bind((ip, 0))
                    .and_then(|s| s.local_addr())
                    .expect("bind udp")
                    .port()
            });
            let conf = knot_conf(dir.path(), ip, port, zones);
            let conf_path = dir.path().join("knot.conf");
            std::fs::write(&conf_path, conf).expect("write knot.conf");
            let mut cmd = Command::new(&bin);
            cmd.arg("-c").arg(&conf_path);
            let mut p = Proc::spawn(&format!("knotd on {ip}@{port}"), cmd, In::Null, Out::Null);
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if !p.is_running() {
                    last = p.wait(5.0).describe();
                    break;
                }
                if soa_answers(ip, port, zones[0].name) {
                    return Knot {
                        port,
                        dir,
                        _proc: p,
                    };
                }
                if Instant::now() >= deadline {
                    panic!(
                        "knotd: {} did not answer within 15 s; stderr:\n{}",
                        zones[0].name,
                        p.stderr_so_far()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("knotd did not start in 10 attempts; last:\n{last}");
    }

    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `nk resolve ARGS --server` this knotd.
    fn nk(&self, args: &[&str]) -> Finished {
        let server = self.server();
        let mut all = vec!["resolve"];
        all.extend_from_slice(args);
        all.extend(["--server", &server]);
        run_nk(&all, In::Null, RUN_SECS)
    }

    /// `dig @127.0.0.1 -p PORT ARGS` (bounded like nk).
    fn dig(&self, args: &[&str]) -> Finished {
        dig(&["@127.0.0.1", "-p", &self.port.to_string()], args)
    }
}

/// dig with a short timeout and one try, so that it cannot outlive the test.
fn dig(server: &[&str], args: &[&str]) -> Finished {
    let bin = require_tool("dig", "bind9-dnsutils");
    let mut cmd = Command::new(bin);
    cmd.args(server).args(["+time=5", "+tries=1"]).args(args);
    Proc::spawn(&format!("dig {}", args.join(" ")), cmd, In::Null, Out::Pipe).wait(RUN_SECS)
}

fn knot_conf(dir: &std::path::Path, ip: &str, port: u16, zones: &[Zone]) -> String {
    let d = dir.display();
    let user = if unsafe_is_root() {
        "    user: root\n"
    } else {
        ""
    };
    let mut c = format!(
        "server:\n    listen: {ip}@{port}\n    rundir: {d}\n{user}    identity: nk-test-knot\n\
         \x20   version: nk-test-1\n    nsid: nk-test-nsid\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: {d}/db\n\
         policy:\n  - id: plain\n    algorithm: ecdsap256sha256\n    nsec3: off\n\
         \x20 - id: hashed\n    algorithm: ecdsap256sha256\n    nsec3: on\n\
         \x20   nsec3-salt-length: 4\n    nsec3-iterations: 1\n\
         acl:\n  - id: xfr\n    address: 127.0.0.0/8\n    action: transfer\n\
         template:\n  - id: default\n    storage: {d}\n\
         \x20   zonefile-load: difference-no-serial\n    journal-content: all\n\
         \x20   semantic-checks: off\n\
         zone:\n"
    );
    for zone in zones {
        c.push_str(&format!(
            "  - domain: {}\n    file: {}.zone\n",
            zone.name, zone.name
        ));
        if zone.transfer {
            c.push_str("    acl: xfr\n");
        }
        if let Some(policy) = zone.signed {
            c.push_str(&format!(
                "    dnssec-signing: on\n    dnssec-policy: {policy}\n"
            ));
        }
    }
    c
}

/// Whether we run as root (knotd then needs `user: root`, or it drops to `knot`).
fn unsafe_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap_or(false)
}

/// Does `zone`'s SOA come back NOERROR, authoritative, within 200 ms?
fn soa_answers(ip: &str, port: u16, zone: &str) -> bool {
    let Ok(s) = UdpSocket::bind((ip, 0)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut q = vec![0x4e, 0x4b, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in zone.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 6, 0, 1]);
    if s.send_to(&q, (ip, port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    match s.recv_from(&mut buf) {
        // QR and AA set, RCODE 0, one answer.
        Ok((n, _)) => n > 12 && buf[2] & 0x84 == 0x84 && buf[3] & 0x0f == 0 && buf[7] == 1,
        Err(_) => false,
    }
}

fn sorted(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

// ---------------------------------------------------------------------------
// 1. every record type, by name, as dig +short prints it
// ---------------------------------------------------------------------------

#[test]
fn every_record_type_reads_as_dig_short_prints_it() {
    let k = Knot::start();
    let cases = [
        ("example.test", "DNSKEY"),
        ("example.test", "CDS"),
        ("example.test", "CDNSKEY"),
        ("example.test", "NSEC"),
        ("example.test", "SOA"),
        ("example.test", "MX"),
        ("sub.example.test", "DS"),
        ("nsec3.test", "NSEC3PARAM"),
        ("d.example.test", "DNAME"),
        ("u.example.test", "URI"),
        ("h.example.test", "HINFO"),
        ("s.example.test", "SSHFP"),
        ("t.example.test", "TLSA"),
        ("n.example.test", "NAPTR"),
        ("svc.example.test", "SVCB"),
        ("web.example.test", "HTTPS"),
        ("pgp.example.test", "OPENPGPKEY"),
        ("odd.example.test", "TYPE65280"),
        ("txt.example.test", "TXT"),
        ("caa.example.test", "CAA"),
        ("_sip._udp.example.test", "SRV"),
        ("www.example.test", "RRSIG"),
        // Lower case works as in dig.
        ("www.example.test", "aaaa"),
    ];
    let mut failures = Vec::new();
    for (name, rtype) in cases {
        // --dnssec: the RRSIGs come too, on both sides.
        let nk_out = k.nk(&["-t", rtype, name, "--short", "--dnssec"]);
        let dig_out = k.dig(&[name, rtype, "+short", "+dnssec"]);
        dig_out.expect_code(0);
        if nk_out.status.code() != Some(0)
            || sorted(&nk_out.stdout_text()) != sorted(&dig_out.stdout_text())
            || dig_out.stdout_text().is_empty()
        {
            failures.push(format!(
                "{name} {rtype}:\n nk:\n{}\n dig:\n{}",
                nk_out.describe(),
                dig_out.stdout_text()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The zone-file form names the types as dig does (DNAME, URI and TYPE65280 included).
    let out = k.nk(&["-t", "DNAME,URI,TYPE65280", "d.example.test", "--json"]);
    let out2 = k.nk(&["-t", "URI", "u.example.test"]);
    out2.expect_code(0)
        .expect_stdout(b"u.example.test.\t300\tIN\tURI\t10 1 \"https://www.example.test/\"\n");
    let objects: Vec<serde_json::Value> = out
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(
        objects[0]["answers"][0]["type"],
        "DNAME",
        "{}",
        out.describe()
    );
    assert_eq!(objects[0]["answers"][0]["data"], "www.example.test.");
    k.nk(&["-t", "TYPE65280", "odd.example.test"])
        .expect_code(0)
        .expect_stdout(b"odd.example.test.\t300\tIN\tTYPE65280\t\\# 3 0102AB\n");
}

#[test]
fn chaos_class_asks_the_server_its_version() {
    let k = Knot::start();
    k.nk(&["-c", "CH", "-t", "TXT", "version.bind", "--short"])
        .expect_code(0)
        .expect_stdout(b"\"nk-test-1\"\n");
    // dig's positional order works too: NAME TYPE CLASS.
    k.nk(&["version.bind", "txt", "ch"])
        .expect_code(0)
        .expect_stdout(b"version.bind.\t0\tCH\tTXT\t\"nk-test-1\"\n");
    let dig_out = k.dig(&["version.bind", "TXT", "CH", "+short"]);
    assert_eq!(dig_out.stdout_text(), "\"nk-test-1\"\n");
    // Bad types and classes are usage errors before any query.
    for bad in [
        ["-t", "OPT"],
        ["-t", "BOGUS"],
        ["-c", "XX"],
        ["-t", "TYPE70000"],
    ] {
        let out = k.nk(&[bad[0], bad[1], "example.test"]);
        out.expect_code(2);
    }
}

// ---------------------------------------------------------------------------
// 2. --full: dig's default view
// ---------------------------------------------------------------------------

/// dig's output without its banner, with the message ID and the timing lines masked.
fn comparable(text: &str) -> String {
    text.lines()
        .filter(|l| {
            !(l.starts_with("; <<>> DiG")
                || l.starts_with("; (1 server")
                || l.starts_with(";; global options")
                || l.starts_with(";; Got answer")
                || l.starts_with(";; Query time")
                || l.starts_with(";; WHEN"))
        })
        .map(|l| match l.find(", id: ") {
            Some(at) => format!("{}, id: N", &l[..at]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

#[test]
fn full_view_is_digs_but_for_the_banner() {
    let k = Knot::start();
    let cases: &[(&[&str], &[&str], i32)] = &[
        (&["-t", "MX", "example.test"], &["example.test", "MX"], 0),
        (
            &["-t", "A", "www.example.test", "--dnssec"],
            &["www.example.test", "A", "+dnssec"],
            0,
        ),
        // NXDOMAIN: the SOA (and the NSEC3 proof with --dnssec) of the authority section.
        (
            &["-t", "A", "nope.nsec3.test", "--dnssec"],
            &["nope.nsec3.test", "A", "+dnssec"],
            1,
        ),
        (
            &["-t", "A", "nope.example.test"],
            &["nope.example.test", "A"],
            1,
        ),
        // No data: NOERROR, the SOA in the authority section.
        (
            &["-t", "TXT", "www.example.test"],
            &["www.example.test", "TXT"],
            1,
        ),
        (
            &["-c", "CH", "-t", "TXT", "version.bind", "--nsid"],
            &["version.bind", "TXT", "CH", "+nsid"],
            0,
        ),
        (
            &["-t", "A", "www.example.test", "--noedns", "--norecurse"],
            &["www.example.test", "A", "+noedns", "+norecurse"],
            0,
        ),
        // The delegation: authority NS and the glue in the additional section.
        (
            &["-t", "A", "host.sub.example.test", "--norecurse"],
            &["host.sub.example.test", "A", "+norecurse"],
            1,
        ),
    ];
    for (nk_args, dig_args, code) in cases {
        let mut args = nk_args.to_vec();
        args.push("--full");
        let out = k.nk(&args);
        out.expect_code(*code);
        let mut dig_all = dig_args.to_vec();
        dig_all.push("+nocookie");
        let want = k.dig(&dig_all);
        want.expect_code(0);
        assert_eq!(
            comparable(&out.stdout_text()),
            comparable(&want.stdout_text()),
            "nk {nk_args:?} --full vs dig {dig_args:?}\n{}",
            out.describe()
        );
        let text = out.stdout_text();
        assert!(text.contains(";; SERVER: 127.0.0.1#"), "{}", out.describe());
        assert!(text.contains(";; MSG SIZE  rcvd: "), "{}", out.describe());
    }
    // An NXDOMAIN still says why on stderr.
    k.nk(&["-t", "A", "nope.example.test", "--full"])
        .expect_code(1)
        .expect_stdout_contains("example.test.\t\t300\tIN\tSOA\tns.example.test.")
        .expect_stderr_contains("NXDOMAIN");
}

#[test]
fn json_carries_the_whole_message() {
    let k = Knot::start();
    let out = k.nk(&["-t", "A", "nope.example.test", "--json", "--nsid"]);
    out.expect_code(1);
    let object: serde_json::Value =
        serde_json::from_str(out.stdout_text().trim()).expect("one JSON object");
    assert_eq!(object["rcode"], "NXDOMAIN", "{}", out.describe());
    assert_eq!(object["flags"], "qr aa rd");
    assert_eq!(object["authority"][0]["type"], "SOA");
    assert_eq!(
        object["edns"]["options"]["nsid"],
        "6e 6b 2d 74 65 73 74 2d 6e 73 69 64 (\"nk-test-nsid\")"
    );
    assert_eq!(object["edns"]["udp"], 1232);
    assert!(object["error"].as_str().unwrap_or("").contains("NXDOMAIN"));
    assert!(object["size"].as_u64().unwrap_or(0) > 12);
}

// ---------------------------------------------------------------------------
// 3. query controls: the bytes nk sends are the bytes dig sends
// ---------------------------------------------------------------------------

/// Receives one query on `sock` within 10 s, answers it with an empty NOERROR (QR set,
/// question echoed, OPT dropped), and returns it with its ID zeroed.
fn capture_query(sock: &UdpSocket) -> Vec<u8> {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let (n, from) = sock.recv_from(&mut buf).expect("a query within 10 s");
    let query = buf[..n].to_vec();
    // The question ends after the name and 4 bytes; keep only it.
    let mut end = 12;
    while end < n && query[end] != 0 {
        end += usize::from(query[end]) + 1;
    }
    end = (end + 5).min(n);
    let mut reply = query[..end].to_vec();
    reply[2] |= 0x80;
    reply[3] = 0;
    reply[10] = 0;
    reply[11] = 0;
    let _ = sock.send_to(&reply, from);
    let mut zeroed = query;
    zeroed[0] = 0;
    zeroed[1] = 0;
    zeroed
}

#[test]
fn query_controls_send_the_bytes_dig_sends() {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = sock.local_addr().expect("addr").port().to_string();
    let server = format!("127.0.0.1:{port}");
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &[]),
        (&["--norecurse"], &["+norecurse"]),
        (&["--dnssec"], &["+dnssec"]),
        (&["--cd"], &["+cd"]),
        (&["--nsid"], &["+nsid"]),
        (&["--subnet", "192.0.2.77/24"], &["+subnet=192.0.2.77/24"]),
        (
            &["--subnet", "2001:db8:1:2::9/48"],
            &["+subnet=2001:db8:1:2::9/48"],
        ),
        (&["--subnet", "0/0"], &["+subnet=0/0"]),
        (&["--bufsize", "4096"], &["+bufsize=4096"]),
        (&["--noedns"], &["+noedns"]),
        (&["-c", "CH", "-t", "TXT"], &["-c", "CH", "-t", "TXT"]),
        (
            &["-t", "DS", "--dnssec", "--cd"],
            &["-t", "DS", "+dnssec", "+cd"],
        ),
    ];
    for (nk_args, dig_args) in cases {
        let mut args = vec!["resolve", "www.example.test", "--server", &server];
        if !nk_args.contains(&"-t") {
            args.extend(["-t", "A"]);
        }
        args.extend_from_slice(nk_args);
        let child = Proc::nk(&args, In::Null, Out::Pipe);
        let from_nk = capture_query(&sock);
        child.wait(RUN_SECS);
        // dig sets AD in queries by default and sends a cookie; nk does neither.
        let mut dig_all = vec!["www.example.test", "+nocookie", "+noadflag"];
        if !dig_args.contains(&"-t") {
            dig_all.extend(["-t", "A"]);
        }
        dig_all.extend_from_slice(dig_args);
        let bin = require_tool("dig", "bind9-dnsutils");
        let mut cmd = Command::new(bin);
        cmd.args(["@127.0.0.1", "-p", &port, "+time=5", "+tries=1"])
            .args(&dig_all);
        let dig_child = Proc::spawn("dig", cmd, In::Null, Out::Null);
        let from_dig = capture_query(&sock);
        dig_child.wait(RUN_SECS);
        assert_eq!(
            from_nk, from_dig,
            "nk {nk_args:?} and dig {dig_args:?} sent different queries (IDs zeroed)"
        );
    }
}

// ---------------------------------------------------------------------------
// 5. zone transfers: AXFR and IXFR over TCP
// ---------------------------------------------------------------------------

impl Knot {
    /// The zone's current SOA serial, as dig reads it.
    fn serial(&self, zone: &str) -> u32 {
        let out = self.dig(&[zone, "SOA", "+short"]);
        out.stdout_text()
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no SOA serial for {zone}: {}", out.describe()))
    }

    /// Adds a line to the zone file and has knotd reload it (a new serial, and the difference
    /// in its journal); waits until the serial has moved.
    fn change(&self, zone: &str, line: &str) -> u32 {
        let before = self.serial(zone);
        let path = self.dir.path().join(format!("{zone}.zone"));
        let mut text = std::fs::read_to_string(&path).expect("read zone");
        text.push_str(line);
        text.push('\n');
        std::fs::write(&path, text).expect("write zone");
        let knotc = require_sbin("knotc", "knot");
        let mut cmd = Command::new(knotc);
        cmd.arg("-c")
            .arg(self.dir.path().join("knot.conf"))
            .args(["zone-reload", zone]);
        Proc::spawn("knotc zone-reload", cmd, In::Null, Out::Pipe)
            .wait(RUN_SECS)
            .expect_code(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.serial(zone);
            if now != before {
                return before;
            }
            assert!(
                Instant::now() < deadline,
                "{zone}: the serial stayed {before}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn axfr_and_ixfr_print_what_dig_prints() {
    let k = Knot::start();
    // The whole zone, record for record in the server's order.
    let nk_out = k.nk(&["-t", "AXFR", "example.test", "--short"]);
    nk_out.expect_code(0);
    let dig_out = k.dig(&["example.test", "AXFR", "+short"]);
    assert_eq!(
        nk_out.stdout_text(),
        dig_out.stdout_text(),
        "{}",
        nk_out.describe()
    );
    assert!(
        nk_out.stdout_text().lines().count() > 50,
        "{}",
        nk_out.describe()
    );
    // --full: dig's layout and closing lines.
    let full = k.nk(&["-t", "AXFR", "example.test", "--full"]);
    let dig_full = k.dig(&["example.test", "AXFR"]);
    assert_eq!(
        comparable(&full.stdout_text()),
        comparable(&dig_full.stdout_text())
    );
    assert!(
        full.stdout_text().contains(";; XFR size: "),
        "{}",
        full.describe()
    );
    // JSON: one object for the transfer.
    let json = k.nk(&["-t", "AXFR", "example.test", "--json"]);
    json.expect_code(0);
    let object: serde_json::Value = serde_json::from_str(json.stdout_text().trim()).expect("json");
    assert_eq!(object["type"], "AXFR");
    assert_eq!(
        object["records"].as_u64(),
        Some(nk_out.stdout_text().lines().count() as u64)
    );
    assert_eq!(object["answers"][0]["type"], "SOA");

    // IXFR from the current serial: the lone SOA, the zone has not changed.
    let old = k.serial("example.test");
    let same = format!("IXFR={old}");
    let out = k.nk(&["-t", &same, "example.test", "--short"]);
    out.expect_code(0);
    assert_eq!(out.stdout_text().lines().count(), 1, "{}", out.describe());
    // After a change: the differences, exactly as dig shows them.
    let before = k.change("example.test", "added A 192.0.2.99");
    let since = format!("IXFR={before}");
    let nk_out = k.nk(&["-t", &since, "example.test"]);
    nk_out.expect_code(0);
    assert!(
        nk_out
            .stdout_text()
            .lines()
            .any(|l| l.starts_with("added.example.test.\t") && l.ends_with("\tIN\tA\t192.0.2.99")),
        "{}",
        nk_out.describe()
    );
    let nk_short = k.nk(&["-t", &since, "example.test", "--short"]);
    let dig_since = format!("ixfr={before}");
    let dig_out = k.dig(&["example.test", &dig_since, "+short"]);
    assert_eq!(nk_short.stdout_text(), dig_out.stdout_text());
}

#[test]
fn a_refused_transfer_is_named() {
    let k = Knot::start();
    let out = k.nk(&["-t", "AXFR", "nsec3.test"]);
    out.expect_code(1);
    out.expect_stderr_contains("nsec3.test AXFR");
    out.expect_stderr_contains("refuses to transfer this zone");
    assert!(out.stdout.is_empty(), "{}", out.describe());
    // Usage errors: IXFR without a serial, two transfers, a bad serial.
    for args in [
        &["-t", "IXFR", "example.test"][..],
        &["-t", "AXFR,IXFR=3", "example.test"],
        &["-t", "IXFR=x", "example.test"],
    ] {
        k.nk(args).expect_code(2);
    }
}

/// A TCP "server" that answers one transfer query with an opening SOA and an A record, then
/// either closes (`close`) or stays silent for 30 s.
fn half_transfer(close: bool) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if conn.read_exact(&mut query).is_err() {
            return;
        }
        // The question: from byte 12 to the end of the name, then type and class.
        let mut end = 12;
        while end < query.len() && query[end] != 0 {
            end += usize::from(query[end]) + 1;
        }
        let question = &query[12..(end + 5).min(query.len())];
        let mut m = vec![query[0], query[1], 0x84, 0x00, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(question);
        // SOA: owner = the question's name, ".", ".", serial 7, zeros.
        m.extend_from_slice(&[0xc0, 0x0c, 0, 6, 0, 1, 0, 0, 0, 60, 0, 22, 0, 0]);
        m.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        let mut framed = (m.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&m);
        let _ = conn.write_all(&framed);
        if !close {
            std::thread::sleep(Duration::from_secs(30));
        }
    });
    (port, handle)
}

#[test]
fn an_incomplete_transfer_is_said_and_w_bounds_the_whole_transfer() {
    let (port, handle) = half_transfer(true);
    let server = format!("127.0.0.1:{port}");
    let out = run_nk(
        ["resolve", "-t", "AXFR", "cut.test", "--server", &server],
        In::Null,
        RUN_SECS,
    );
    out.expect_code(1);
    out.expect_stderr_contains("closed the connection after 2 record(s) in 1 message(s)");
    out.expect_stderr_contains("the zone is incomplete");
    // The records that came are printed: nothing read is hidden.
    assert_eq!(out.stdout_text().lines().count(), 2, "{}", out.describe());
    let _ = handle.join();

    let (port, _silent) = half_transfer(false);
    let server = format!("127.0.0.1:{port}");
    let out = run_nk(
        [
            "resolve",
            "-t",
            "AXFR",
            "slow.test",
            "--server",
            &server,
            "--timeout",
            "20",
            "-w",
            "1",
        ],
        In::Null,
        RUN_SECS,
    );
    out.expect_code(1);
    out.expect_stderr_contains("the -w limit of 1s passed");
}

// ---------------------------------------------------------------------------
// 4. --trace through a private hierarchy of authoritative servers
// ---------------------------------------------------------------------------

/// The hierarchy: the root on 127.0.0.1, `test.` on 127.0.0.2, `example.test.` on 127.0.0.3
/// (three knotd, port 53, inside a private network namespace), and `slow.test.` delegated to
/// 127.0.0.5 where `nc -u -l` takes queries and never answers. dig +trace finds the servers'
/// addresses through its resolver rather than the glue, so resolv.conf (bind-mounted) points at
/// a dnsmasq on 127.0.0.9 that knows the NS names.
const TRACE_ZONES: [(&str, &str, &str); 3] = [
    (
        "root",
        ".",
        "$TTL 300\n. SOA a.root. hostmaster.root. 1 1200 180 1209600 300\n. NS a.root.\n\
         a.root. A 127.0.0.1\ntest. NS ns.test.\nns.test. A 127.0.0.2\n",
    ),
    (
        "tld",
        "test.",
        "$ORIGIN test.\n$TTL 300\n@ SOA ns hostmaster 1 1200 180 1209600 300\n@ NS ns\n\
         ns A 127.0.0.2\nexample NS ns.example\nns.example A 127.0.0.3\n\
         slow NS ns.slow\nns.slow A 127.0.0.5\n",
    ),
    (
        "zone",
        "example.test.",
        "$ORIGIN example.test.\n$TTL 300\n@ SOA ns hostmaster 1 1200 180 1209600 300\n\
         @ NS ns\nns A 127.0.0.3\nwww A 192.0.2.80\n",
    ),
];

/// Runs `commands` (shell lines) inside a private mount, network and PID namespace where the
/// hierarchy runs; everything started there dies with it.
fn in_hierarchy(commands: &str) -> Finished {
    let knotd = require_sbin("knotd", "knot");
    let dnsmasq = require_sbin("dnsmasq", "dnsmasq-base");
    require_tool("dig", "bind9-dnsutils");
    require_tool("nc", "netcat-openbsd");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let mut script = format!(
        "set -u\nip link set lo up\nmount --bind {d}/resolv.conf /etc/resolv.conf\n\
         {} --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
         --listen-address=127.0.0.9 --host-record=a.root,127.0.0.1 \
         --host-record=ns.test,127.0.0.2 --host-record=ns.example.test,127.0.0.3 \
         --host-record=ns.slow.test,127.0.0.5 --pid-file= --user=root 2>/dev/null &\n\
         nc -u -l 127.0.0.5 53 >/dev/null &\n",
        dnsmasq.display()
    );
    std::fs::write(dir.path().join("resolv.conf"), "nameserver 127.0.0.9\n").expect("write");
    for (index, (sub, origin, text)) in TRACE_ZONES.iter().enumerate() {
        let zone_dir = dir.path().join(sub);
        std::fs::create_dir_all(zone_dir.join("db")).expect("mkdir");
        std::fs::write(zone_dir.join("z.zone"), text).expect("write zone");
        let user = if unsafe_is_root() {
            "    user: root\n"
        } else {
            ""
        };
        let conf = format!(
            "server:\n    listen: 127.0.0.{}@53\n    rundir: {d}/{sub}\n{user}\
             database:\n    storage: {d}/{sub}/db\ntemplate:\n  - id: default\n\
             \x20   storage: {d}/{sub}\nzone:\n  - domain: \"{origin}\"\n    file: z.zone\n",
            index + 1
        );
        std::fs::write(zone_dir.join("knot.conf"), conf).expect("write conf");
        script.push_str(&format!(
            "{} -c {d}/{sub}/knot.conf >/dev/null 2>&1 &\n",
            knotd.display()
        ));
    }
    // Ready when each server answers for its own zone (bounded: 100 tries of 100 ms).
    script.push_str(
        "for q in '127.0.0.1 .' '127.0.0.2 test.' '127.0.0.3 example.test.' \
         '127.0.0.9 ns.test'; do set -- $q; i=0\n\
         until [ -n \"$(dig @$1 +time=1 +tries=1 +short $2 A $2 SOA 2>/dev/null)\" ]; do\n\
         i=$((i+1)); [ $i -ge 100 ] && { echo \"no answer from $1\" >&2; exit 99; }; sleep 0.1\n\
         done; done\n",
    );
    script.push_str(commands);
    std::fs::write(dir.path().join("run.sh"), &script).expect("write script");
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "-n", "-p", "-f", "--kill-child", "sh"])
        .arg(dir.path().join("run.sh"))
        .env("NK", NK);
    let out = Proc::spawn("unshare: trace hierarchy", cmd, In::Null, Out::Pipe).wait(60.0);
    assert_ne!(out.status.code(), Some(99), "{}", out.describe());
    out
}

/// The output with the reply times masked (`in N ms`).
fn without_times(text: &str) -> String {
    text.lines()
        .map(|l| match l.rfind(" in ") {
            Some(at) if l.starts_with(";; Received") => format!("{} in N ms", &l[..at]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn trace_walks_down_from_the_root_as_dig_trace_does() {
    let out = in_hierarchy(
        "echo '=== nk'; \"$NK\" resolve --trace --server 127.0.0.1 -t A www.example.test; \
         echo \"=== nk rc=$?\"\n\
         echo '=== dig'; dig +trace +nocookie +time=5 +tries=1 @127.0.0.1 www.example.test A\n\
         echo '=== json'; \"$NK\" resolve --trace --server 127.0.0.1 www.example.test -t A --json\n\
         echo '=== nx'; \"$NK\" resolve --trace --server 127.0.0.1 nope.example.test -t A 2>&1; \
         echo \"=== nx rc=$?\"\n\
         echo '=== slow'; \"$NK\" resolve --trace --server 127.0.0.1 www.slow.test -t A \
         --timeout 20 -w 1 2>&1; echo \"=== slow rc=$?\"\n",
    );
    let text = out.stdout_text();
    let part = |from: &str, to: &str| -> String {
        let start = text.find(from).map(|i| i + from.len()).unwrap_or(0);
        let end = text[start..].find(to).map_or(text.len(), |i| start + i);
        text[start..end].trim().to_string()
    };
    let nk = part("=== nk\n", "=== nk rc=");
    assert!(text.contains("=== nk rc=0"), "{}", out.describe());
    let dig = part("=== dig\n", "=== json");
    // dig's banner aside, the same four steps: root NS, the referrals, the answer.
    let dig_steps: String = dig
        .lines()
        .filter(|l| {
            !l.starts_with("; <<>>") && !l.starts_with("; (") && !l.starts_with(";; global")
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        without_times(&nk),
        without_times(dig_steps.trim()),
        "{}",
        out.describe()
    );
    assert!(
        nk.contains("www.example.test.\t300\tIN\tA\t192.0.2.80"),
        "{nk}"
    );
    assert!(
        nk.contains(";; Received 78 bytes from 127.0.0.2#53(ns.test) in "),
        "{nk}"
    );
    // JSON: one object per step.
    let steps: Vec<serde_json::Value> = part("=== json\n", "=== nx")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json step"))
        .collect();
    assert_eq!(steps.len(), 4, "{}", out.describe());
    assert_eq!(steps[2]["server_name"], "ns.test");
    assert_eq!(steps[3]["records"][0]["data"], "192.0.2.80");
    // NXDOMAIN from the zone's server: shown, and exit 1 with the reason.
    let nx = part("=== nx\n", "=== nx rc=");
    assert!(text.contains("=== nx rc=1"), "{}", out.describe());
    assert!(
        nx.contains("nk: resolve nope.example.test A: NXDOMAIN from 127.0.0.3:53"),
        "{nx}"
    );
    // A silent server: -w bounds the whole trace.
    let slow = part("=== slow\n", "=== slow rc=");
    assert!(text.contains("=== slow rc=1"), "{}", out.describe());
    assert!(
        slow.contains("the -w limit of 1s passed while asking ns.slow.test."),
        "{slow}"
    );
}

// ---------------------------------------------------------------------------
// 6. DNS over TLS and over HTTPS, through dnsdist in front of knotd
// ---------------------------------------------------------------------------

/// dnsdist (killed on drop) in front of a knotd: plain DNS, DoT and DoH (`/dns-query`) on
/// kernel-chosen ports of 127.0.0.1, with a certificate for localhost and 127.0.0.1 from a
/// test CA.
struct Dnsdist {
    dot: u16,
    doh: u16,
    pki: Pki,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Dnsdist {
    fn start(backend: u16) -> Dnsdist {
        let bin = require_tool("dnsdist", "dnsdist");
        let pki = Pki::new();
        let (cert, key) = pki.leaf();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut last = String::new();
        for _ in 0..10 {
            let [plain, dot, doh] = [0; 3].map(|_| free_port("127.0.0.1"));
            let conf = format!(
                "setLocal('127.0.0.1:{plain}')\n\
                 newServer({{address='127.0.0.1:{backend}'}})\n\
                 addTLSLocal('127.0.0.1:{dot}', '{cert}', '{key}')\n\
                 addDOHLocal('127.0.0.1:{doh}', '{cert}', '{key}', '/dns-query')\n\
                 setSecurityPollSuffix('')\n"
            );
            let path = dir.path().join("dnsdist.conf");
            std::fs::write(&path, conf).expect("write dnsdist.conf");
            let mut cmd = Command::new(&bin);
            cmd.args(["--supervised", "--disable-syslog", "-C"])
                .arg(&path);
            let mut p = Proc::spawn("dnsdist", cmd, In::Null, Out::Null);
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if !p.is_running() {
                    last = p.wait(5.0).describe();
                    break;
                }
                let ready = [plain, dot, doh]
                    .iter()
                    .all(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok())
                    && soa_answers("127.0.0.1", plain, "example.test");
                if ready {
                    return Dnsdist {
                        dot,
                        doh,
                        pki,
                        _proc: p,
                        _dir: dir,
                    };
                }
                assert!(
                    Instant::now() < deadline,
                    "dnsdist not ready in 15 s: {}",
                    p.stderr_so_far()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("dnsdist did not start in 10 attempts; last:\n{last}");
    }
}

#[test]
fn dns_over_tls_and_https_answer_as_dig_does() {
    let k = Knot::start();
    let d = Dnsdist::start(k.port);
    let ca = d.pki.ca();
    let dot = format!("127.0.0.1:{}", d.dot);
    let doh = format!("https://127.0.0.1:{}/dns-query", d.doh);
    let dig_dot = dig(
        &["@127.0.0.1", "-p", &d.dot.to_string()],
        &[
            "+tls",
            &format!("+tls-ca={ca}"),
            "www.example.test",
            "AAAA",
            "+short",
        ],
    );
    assert_eq!(
        dig_dot.stdout_text(),
        "2001:db8::10\n",
        "{}",
        dig_dot.describe()
    );
    let dig_doh = dig(
        &["@127.0.0.1", "-p", &d.doh.to_string()],
        &[
            "+https",
            &format!("+tls-ca={ca}"),
            "www.example.test",
            "AAAA",
            "+short",
        ],
    );
    assert_eq!(
        dig_doh.stdout_text(),
        "2001:db8::10\n",
        "{}",
        dig_doh.describe()
    );
    for args in [
        vec!["--tls", "--server", &dot],
        vec!["--https", &doh],
        vec!["--https", &doh, "--https-get"],
    ] {
        let mut all = vec![
            "resolve",
            "-t",
            "AAAA",
            "www.example.test",
            "--short",
            "--ca",
            &ca,
        ];
        all.extend(args.iter().copied());
        let out = run_nk(&all, In::Null, RUN_SECS);
        out.expect_code(0).expect_stdout(b"2001:db8::10\n");
        // -v names the transport.
        all.push("-v");
        let out = run_nk(&all, In::Null, RUN_SECS);
        let how = if args[0] == "--tls" {
            "over tls"
        } else {
            "over https"
        };
        out.expect_code(0).expect_stderr_contains(how);
    }
    // JSON over DoH, the whole message; --full over DoT.
    let out = run_nk(
        [
            "resolve",
            "-t",
            "A",
            "nope.example.test",
            "--json",
            "--ca",
            &ca,
            "--https",
            &doh,
        ],
        In::Null,
        RUN_SECS,
    );
    out.expect_code(1);
    let object: serde_json::Value = serde_json::from_str(out.stdout_text().trim()).expect("json");
    assert_eq!(object["rcode"], "NXDOMAIN");
    assert_eq!(object["transport"], "https");
    let out = run_nk(
        [
            "resolve",
            "-t",
            "MX",
            "example.test",
            "--full",
            "--ca",
            &ca,
            "--tls",
            "--server",
            &dot,
        ],
        In::Null,
        RUN_SECS,
    );
    out.expect_code(0)
        .expect_stdout_contains("example.test.\t\t300\tIN\tMX\t10 mail.example.test.")
        .expect_stdout_contains(&format!(";; SERVER: 127.0.0.1#{}(127.0.0.1) (TLS)", d.dot));
    // The certificate is checked: without --ca the test CA is unknown; a wrong name fails.
    let ask_www = |extra: &[&str]| {
        let mut all = vec!["resolve", "-t", "A", "www.example.test"];
        all.extend_from_slice(extra);
        run_nk(&all, In::Null, RUN_SECS)
    };
    ask_www(&["--tls", "--server", &dot])
        .expect_code(1)
        .expect_stderr_contains("TLS: ");
    ask_www(&["--ca", &ca, "--sni", "wrong.test", "--https", &doh])
        .expect_code(1)
        .expect_stderr_contains("TLS: ");
    // A path that is not DoH: the HTTP status is named.
    let wrong = format!("https://127.0.0.1:{}/nope", d.doh);
    ask_www(&["--ca", &ca, "--https", &wrong])
        .expect_code(1)
        .expect_stderr_contains("HTTP 404");
    // Usage errors before any traffic.
    for args in [
        &[
            "resolve",
            "--https",
            "http://127.0.0.1/dns-query",
            "-t",
            "A",
            "x.test",
        ][..],
        &["resolve", "--ca", &ca, "-t", "A", "x.test"],
        &["resolve", "--tls", "--tcp", "-t", "A", "x.test"],
        &["resolve", "--tls", "-t", "AXFR", "x.test"],
    ] {
        run_nk(args, In::Null, RUN_SECS).expect_code(2);
    }
}
