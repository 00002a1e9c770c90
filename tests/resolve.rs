//! `nk resolve`: the DNS path against a real `dnsmasq` (authoritative for `example.test` on
//! 127.0.0.1 at a kernel-chosen port) and against misbehaving servers written here (std
//! `UdpSocket`s sending hand-built DNS messages); the system path (getaddrinfo / getnameinfo)
//! against /etc/hosts, in a private mount namespace where the test needs its own hosts file;
//! the default servers of /etc/resolv.conf in a private network + mount namespace; and
//! `--port` against /etc/services.
//!
//! Expected outputs are hard-coded from `dig +short` / `dig` against the same dnsmasq
//! configuration (dnsmasq 2.90, dig 9.18), so the suite does not need dig. Every child is
//! bounded by a deadline; a missing dnsmasq fails the test with an install hint.

mod common;

use common::*;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Deadline for one `nk resolve` run against a server that answers.
const RUN_SECS: f64 = 20.0;

// ---------------------------------------------------------------------------
// DNS messages, built and parsed by hand
// ---------------------------------------------------------------------------

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const RCODE_SERVFAIL: u16 = 2;
const RCODE_REFUSED: u16 = 5;

/// One question as a server saw it.
#[derive(Debug, Clone)]
struct Query {
    id: u16,
    flags: u16,
    /// Lower case, without the trailing dot.
    name: String,
    qtype: u16,
    /// The question section exactly as received (name, type, class).
    question: Vec<u8>,
}

/// `www.example.test` → wire labels.
fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A question section: name, type, class IN.
fn question(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = encode_name(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// A standard query (RD set, one question, nothing else).
fn query_message(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    for v in [id, 0x0100, 1, 0, 0, 0] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    m.extend_from_slice(&question(name, qtype));
    m
}

/// Parses a query (QR clear, exactly one question); `None` for anything else.
fn parse_query(buf: &[u8]) -> Option<Query> {
    let word =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*buf.get(i)?, *buf.get(i + 1)?])) };
    let id = word(0)?;
    let flags = word(2)?;
    if flags & 0x8000 != 0 || word(4)? != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *buf.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(buf.get(i..i + len)?).to_lowercase());
        i += len;
    }
    let qtype = word(i)?;
    word(i + 2)?;
    Some(Query {
        id,
        flags,
        name: labels.join("."),
        qtype,
        question: buf[12..i + 4].to_vec(),
    })
}

/// A response with `id`, the RD bit of `query_flags`, the question section `question`, `rcode`,
/// and the answers (type, rdata), each owned by the question's name (pointer to offset 12),
/// class IN, TTL 60.
fn response(
    id: u16,
    query_flags: u16,
    question: &[u8],
    rcode: u16,
    answers: &[(u16, Vec<u8>)],
) -> Vec<u8> {
    // QR, AA, RD copied, RA.
    let flags = 0x8000 | 0x0400 | (query_flags & 0x0100) | 0x0080 | (rcode & 0xf);
    let mut m = Vec::new();
    for v in [id, flags, 1, answers.len() as u16, 0, 0] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    m.extend_from_slice(question);
    for (rtype, rdata) in answers {
        m.extend_from_slice(&[0xc0, 0x0c]);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&60u32.to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }
    m
}

/// The correct reply to `q`: for an A question the address `a`, for anything else NOERROR
/// with no answers.
fn answer_a(q: &Query, a: [u8; 4]) -> Vec<u8> {
    let answers = if q.qtype == TYPE_A {
        vec![(TYPE_A, a.to_vec())]
    } else {
        Vec::new()
    };
    response(q.id, q.flags, &q.question, 0, &answers)
}

// ---------------------------------------------------------------------------
// A DNS server written here (UDP, in a thread)
// ---------------------------------------------------------------------------

/// Called for every query the fake server receives: the server's socket, the query's source,
/// the query. Sends whatever it likes.
type Handler = Box<dyn FnMut(&UdpSocket, SocketAddr, &Query) + Send>;

/// A UDP DNS server on a kernel-chosen port, answering through a [`Handler`]. Records every
/// datagram it receives. Stops (and drains what is already queued) on [`FakeDns::finish`] or
/// drop, and on its own after two minutes.
struct FakeDns {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Vec<u8>>>>,
}

impl FakeDns {
    fn start(ip: &str, mut handler: Handler) -> FakeDns {
        let sock = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0/udp: {e}"));
        let addr = sock.local_addr().expect("local_addr");
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("set_read_timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            let mut draining = false;
            loop {
                if !draining && (flag.load(Ordering::SeqCst) || Instant::now() >= deadline) {
                    // Whatever nk sent before it exited is already queued: take it, then stop.
                    draining = true;
                    sock.set_nonblocking(true).expect("nonblocking");
                }
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let dgram = buf[..n].to_vec();
                        if let (false, Some(q)) = (draining, parse_query(&dgram)) {
                            handler(&sock, from, &q);
                        }
                        got.push(dgram);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        if draining {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // An ICMP error for an earlier reply (nk already gone): not ours to judge.
                    Err(_) => {
                        if draining {
                            break;
                        }
                    }
                }
            }
            got
        });
        FakeDns {
            addr,
            stop,
            handle: Some(handle),
        }
    }

    /// A server that receives and never answers.
    fn silent(ip: &str) -> FakeDns {
        FakeDns::start(ip, Box::new(|_, _, _| {}))
    }

    /// A server that answers every question with `rcode` and no records.
    fn rcode(ip: &str, rcode: u16) -> FakeDns {
        FakeDns::start(
            ip,
            Box::new(move |s, from, q| {
                let _ = s.send_to(&response(q.id, q.flags, &q.question, rcode, &[]), from);
            }),
        )
    }

    /// A server that answers A questions with `a` (other types: NOERROR, no records).
    fn answering(ip: &str, a: [u8; 4]) -> FakeDns {
        FakeDns::start(
            ip,
            Box::new(move |s, from, q| {
                let _ = s.send_to(&answer_a(q, a), from);
            }),
        )
    }

    /// `IP:PORT` as `--server` takes it (`[::1]:PORT` for IPv6).
    fn server(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the server; every datagram it received, in order.
    fn finish(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::SeqCst);
        match self.handle.take().expect("handle").join() {
            Ok(v) => v,
            Err(_) => panic!("fake DNS server on {} panicked", self.addr),
        }
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The queries among `datagrams` (unparseable datagrams dropped).
fn queries(datagrams: &[Vec<u8>]) -> Vec<Query> {
    datagrams.iter().filter_map(|d| parse_query(d)).collect()
}

// ---------------------------------------------------------------------------
// dnsmasq, authoritative for example.test
// ---------------------------------------------------------------------------

/// The TXT strings of big.example.test: 40 records of 70 bytes, about 3.3 KB of answers, more
/// than any UDP reply may carry (dnsmasq truncates at 1232 bytes with EDNS, 512 without).
fn big_txt_strings() -> Vec<String> {
    (1..=40)
        .map(|i| format!("record {i:02} {}", "x".repeat(60)))
        .collect()
}

/// The dnsmasq configuration (the port is given on the command line). `--auth-server` on
/// 127.0.0.1 makes every query arriving there authoritative: SOA and NS for the zone, NXDOMAIN
/// for unknown names in it, PTR for 192.0.2.0/24, REFUSED for names outside it. The subnets in
/// `--auth-zone` are needed: an authoritative dnsmasq serves only A/AAAA records inside them. Nothing is ever forwarded (`no-resolv`, and `local=` as well).
fn dnsmasq_config(listen: &str) -> String {
    let mut c = format!(
        r#"listen-address={listen}
bind-interfaces
no-resolv
no-hosts
no-poll
user=root
pid-file=
log-facility=-
local=/example.test/
local-ttl=300
auth-ttl=300
auth-server=ns.example.test,{listen}
auth-zone=example.test,192.0.2.0/24,2001:db8::/32
auth-soa=2024010101,hostmaster.example.test,1200,180,1209600,300
host-record=www.example.test,192.0.2.10,2001:db8::10
host-record=mail.example.test,192.0.2.25
cname=alias.example.test,www.example.test
mx-host=example.test,mail.example.test,10
srv-host=_sip._udp.example.test,sip.example.test,5060,0,5
txt-record=txt.example.test,"hello world"
txt-record=multi.example.test,"first","second string"
txt-record=esc.example.test,"say \"hi\" \\ back"
txt-record=ctl.example.test,"tab\there","café"
ptr-record=10.2.0.192.in-addr.arpa,www.example.test
caa-record=example.test,0,issue,ca.example.net
"#
    );
    for s in big_txt_strings() {
        c.push_str(&format!("txt-record=big.example.test,\"{s}\"\n"));
    }
    c
}

/// dnsmasq's path: on PATH, or in the sbin directories a non-root PATH lacks.
fn require_dnsmasq() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join("dnsmasq");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "required test peer `dnsmasq` is not installed (not in PATH, /usr/sbin or /sbin); \
         install it: apt-get install dnsmasq-base"
    );
}

/// Does a DNS server answer a query for www.example.test A on 127.0.0.1:`port` within 100 ms?
fn dns_answers(port: u16, id: u16) -> bool {
    let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    if s.send_to(
        &query_message(id, "www.example.test", TYPE_A),
        ("127.0.0.1", port),
    )
    .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 4096];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => n >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0,
        Err(_) => false,
    }
}

/// A running dnsmasq (killed on drop) on 127.0.0.1:`port`.
struct Dnsmasq {
    port: u16,
    /// The command line, for failure messages and the record.
    cmdline: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq on a port that was free a moment ago (retrying on another port if
    /// something took it), and waits until it answers a query.
    fn start() -> Dnsmasq {
        let bin = require_dnsmasq();
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("dnsmasq.conf");
        std::fs::write(&conf, dnsmasq_config("127.0.0.1")).expect("write dnsmasq.conf");
        let mut last_err = String::new();
        for attempt in 0..20u16 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .expect("bind 127.0.0.1:0/udp")
                .port();
            let args = [
                "--keep-in-foreground".to_string(),
                format!("--conf-file={}", conf.display()),
                format!("--port={port}"),
            ];
            let cmdline = format!("{} {}", bin.display(), args.join(" "));
            let mut cmd = Command::new(&bin);
            cmd.args(&args);
            let mut p = Proc::spawn(&cmdline, cmd, In::Null, Out::Null);
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut probe_id = 0x5a00 + attempt * 0x100;
            loop {
                if !p.is_running() {
                    let out = p.wait(5.0);
                    if out.stderr.contains("in use") {
                        last_err = out.describe();
                        break; // the port was taken meanwhile: another one
                    }
                    panic!("dnsmasq exited before answering\n{}", out.describe());
                }
                probe_id = probe_id.wrapping_add(1);
                if dns_answers(port, probe_id) {
                    return Dnsmasq {
                        port,
                        cmdline,
                        _proc: p,
                        _dir: dir,
                    };
                }
                if Instant::now() >= deadline {
                    let so_far = p.stderr_so_far();
                    panic!("{cmdline}: no answer to a DNS query within 10 s; stderr:\n{so_far}");
                }
            }
        }
        panic!("dnsmasq could not get a free port in 20 attempts; last:\n{last_err}");
    }

    /// `127.0.0.1:PORT` for `--server`.
    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `nk resolve ARGS --server 127.0.0.1:PORT`.
    fn nk(&self, args: &[&str]) -> Finished {
        let server = self.server();
        let mut all: Vec<&str> = vec!["resolve"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &server]);
        run_nk(&all, In::Null, RUN_SECS)
    }
}

/// `nk resolve ARGS` (no server added).
fn resolve(args: &[&str]) -> Finished {
    let mut all = vec!["resolve"];
    all.extend_from_slice(args);
    run_nk(&all, In::Null, RUN_SECS)
}

/// `nk resolve -t QTYPE NAME --server S... ARGS`.
fn ask(qtype: &str, name: &str, servers: &[&str], args: &[&str]) -> Finished {
    let mut all = vec!["-t", qtype, name];
    for s in servers {
        all.extend(["--server", s]);
    }
    all.extend_from_slice(args);
    resolve(&all)
}

/// Each line of `out`'s stdout parsed as JSON.
fn json_lines(out: &Finished) -> Vec<serde_json::Value> {
    out.stdout_text()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("stdout line {l:?} is not JSON ({e})\n{}", out.describe())
            })
        })
        .collect()
}

/// Sorted lines of stdout.
fn sorted_lines(out: &Finished) -> Vec<String> {
    let mut v: Vec<String> = out.stdout_text().lines().map(str::to_string).collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// 1. answers from dnsmasq: --short, zone form, JSON, TCP fallback, --tcp
// ---------------------------------------------------------------------------

/// (type, name, `dig +short` output) for the records dnsmasq serves.
const SHORT_CASES: &[(&str, &str, &str)] = &[
    ("A", "www.example.test", "192.0.2.10\n"),
    ("AAAA", "www.example.test", "2001:db8::10\n"),
    ("CNAME", "alias.example.test", "www.example.test.\n"),
    // dig +short follows the chain: the CNAME target line, then the address.
    ("A", "alias.example.test", "www.example.test.\n192.0.2.10\n"),
    ("MX", "example.test", "10 mail.example.test.\n"),
    (
        "SRV",
        "_sip._udp.example.test",
        "0 5 5060 sip.example.test.\n",
    ),
    ("TXT", "txt.example.test", "\"hello world\"\n"),
    ("TXT", "multi.example.test", "\"first\" \"second string\"\n"),
    ("TXT", "esc.example.test", "\"say \\\"hi\\\" \\\\ back\"\n"),
    // A tab and the two UTF-8 bytes of é come out as \DDD.
    (
        "TXT",
        "ctl.example.test",
        "\"tab\\009here\" \"caf\\195\\169\"\n",
    ),
    ("PTR", "10.2.0.192.in-addr.arpa", "www.example.test.\n"),
    // An IP literal with -t PTR asks for its reverse name.
    ("PTR", "192.0.2.10", "www.example.test.\n"),
    ("NS", "example.test", "ns.example.test.\n"),
    (
        "SOA",
        "example.test",
        "ns.example.test. hostmaster.example.test. 2024010101 1200 180 1209600 300\n",
    ),
    ("CAA", "example.test", "0 issue \"ca.example.net\"\n"),
    // Types are case-insensitive.
    ("mx", "example.test", "10 mail.example.test.\n"),
];

#[test]
fn short_output_equals_dig_short_for_every_record_type() {
    let d = Dnsmasq::start();
    let mut failures = Vec::new();
    for &(rtype, name, want) in SHORT_CASES {
        let out = d.nk(&["-t", rtype, name, "--short"]);
        if out.status.code() != Some(0) || out.stdout != want.as_bytes() {
            failures.push(format!(
                "-t {rtype} {name} --short: want exit 0 and stdout {want:?}\n{}",
                out.describe()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} lookups differ from dig +short (dnsmasq: {}):\n{}",
        failures.len(),
        SHORT_CASES.len(),
        d.cmdline,
        failures.join("\n")
    );
}

#[test]
fn reverse_lookup_with_x_and_a_server_asks_for_the_ptr_record() {
    let d = Dnsmasq::start();
    d.nk(&["-x", "192.0.2.10", "--short"])
        .expect_code(0)
        .expect_stdout(b"www.example.test.\n");
}

#[test]
fn zone_form_is_one_tab_separated_line_per_answer_record() {
    let d = Dnsmasq::start();
    d.nk(&["-t", "A", "alias.example.test"])
        .expect_code(0)
        .expect_stdout(
            b"alias.example.test.\t300\tIN\tCNAME\twww.example.test.\n\
              www.example.test.\t300\tIN\tA\t192.0.2.10\n",
        );
    d.nk(&["-t", "MX", "example.test"])
        .expect_code(0)
        .expect_stdout(b"example.test.\t300\tIN\tMX\t10 mail.example.test.\n");
    d.nk(&["-t", "TXT", "multi.example.test"])
        .expect_code(0)
        .expect_stdout(b"multi.example.test.\t300\tIN\tTXT\t\"first\" \"second string\"\n");
    d.nk(&["-t", "SOA", "example.test"])
        .expect_code(0)
        .expect_stdout(
            b"example.test.\t300\tIN\tSOA\tns.example.test. hostmaster.example.test. \
              2024010101 1200 180 1209600 300\n",
        );
    d.nk(&["-t", "CAA", "example.test"])
        .expect_code(0)
        .expect_stdout(b"example.test.\t300\tIN\tCAA\t0 issue \"ca.example.net\"\n");
}

#[test]
fn several_types_repeated_or_comma_separated() {
    let d = Dnsmasq::start();
    for args in [
        &["-t", "A,AAAA", "www.example.test", "--short"][..],
        &["-t", "A", "-t", "AAAA", "www.example.test", "--short"][..],
        // --server without -t asks for A and AAAA.
        &["www.example.test", "--short"][..],
    ] {
        let out = d.nk(args);
        out.expect_code(0);
        assert_eq!(
            sorted_lines(&out),
            ["192.0.2.10", "2001:db8::10"],
            "{args:?}\n{}",
            out.describe()
        );
    }
}

#[test]
fn json_has_one_object_per_query_and_type() {
    let d = Dnsmasq::start();
    let out = d.nk(&["-t", "A,MX", "www.example.test", "example.test", "--json"]);
    // www.example.test has no MX and example.test no A: two of the four fail.
    out.expect_code(1);
    let objs = json_lines(&out);
    assert_eq!(
        objs.len(),
        4,
        "one line per (query, type)\n{}",
        out.describe()
    );
    // Located by the name without its trailing dot; the exact "query" is checked last.
    let find = |query: &str, rtype: &str| -> &serde_json::Value {
        let bare = query.trim_end_matches('.');
        objs.iter()
            .find(|o| {
                o["query"].as_str().map(|q| q.trim_end_matches('.')) == Some(bare)
                    && o["type"] == rtype
            })
            .unwrap_or_else(|| panic!("no object for {query} {rtype}\n{}", out.describe()))
    };

    let a = find("www.example.test.", "A");
    assert_eq!(a["server"], d.server().as_str(), "{a}");
    assert_eq!(a["transport"], "udp", "{a}");
    assert_eq!(a["rcode"], "NOERROR", "{a}");
    assert!(
        a["rtt_ms"].as_f64().is_some_and(|r| r >= 0.0),
        "rtt_ms: {a}"
    );
    assert!(a.get("error").is_none(), "{a}");
    assert_eq!(
        a["answers"],
        serde_json::json!([{
            "name": "www.example.test.",
            "ttl": 300,
            "class": "IN",
            "type": "A",
            "data": "192.0.2.10"
        }]),
        "{a}"
    );

    let mx = find("example.test.", "MX");
    assert_eq!(mx["rcode"], "NOERROR", "{mx}");
    assert_eq!(
        mx["answers"],
        serde_json::json!([{
            "name": "example.test.",
            "ttl": 300,
            "class": "IN",
            "type": "MX",
            "data": "10 mail.example.test."
        }]),
        "{mx}"
    );

    for o in [find("www.example.test.", "MX"), find("example.test.", "A")] {
        let err = o["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error: {o}"));
        assert!(err.contains("no data"), "{o}");
    }

    // "query" is what the user typed; "name" the absolute name asked for.
    assert_eq!(a["query"], "www.example.test", "{a}");
    assert_eq!(a["name"], "www.example.test.", "{a}");
    assert_eq!(mx["query"], "example.test", "{mx}");
    assert_eq!(mx["name"], "example.test.", "{mx}");
}

#[test]
fn json_reports_nxdomain_as_an_error() {
    let d = Dnsmasq::start();
    let out = d.nk(&["-t", "A", "nope.example.test", "--no-search", "--json"]);
    out.expect_code(1);
    let objs = json_lines(&out);
    assert_eq!(objs.len(), 1, "{}", out.describe());
    let o = &objs[0];
    assert_eq!(o["type"], "A", "{o}");
    if let Some(rcode) = o.get("rcode") {
        assert_eq!(rcode, "NXDOMAIN", "{o}");
    }
    let err = o["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {o}"));
    assert!(err.contains("NXDOMAIN"), "{o}");
}

#[test]
fn truncated_udp_reply_is_retried_over_tcp_and_prints_every_record() {
    let d = Dnsmasq::start();
    let mut want: Vec<String> = big_txt_strings()
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect();
    want.sort();

    let out = d.nk(&["-t", "TXT", "big.example.test", "--short"]);
    out.expect_code(0);
    assert_eq!(
        sorted_lines(&out),
        want,
        "all 40 TXT records (the UDP reply is truncated)\n{}",
        out.describe()
    );

    let out = d.nk(&["-t", "TXT", "big.example.test", "--json"]);
    out.expect_code(0);
    let objs = json_lines(&out);
    assert_eq!(objs.len(), 1, "{}", out.describe());
    assert_eq!(objs[0]["transport"], "tcp", "{}", objs[0]);
    let answers = objs[0]["answers"].as_array().expect("answers array");
    assert_eq!(answers.len(), 40, "{}", objs[0]);
}

#[test]
fn tcp_flag_asks_over_tcp() {
    let d = Dnsmasq::start();
    d.nk(&["--tcp", "-t", "A", "www.example.test", "--short"])
        .expect_code(0)
        .expect_stdout(b"192.0.2.10\n");
    d.nk(&["--tcp", "-t", "A", "alias.example.test"])
        .expect_code(0)
        .expect_stdout(
            b"alias.example.test.\t300\tIN\tCNAME\twww.example.test.\n\
              www.example.test.\t300\tIN\tA\t192.0.2.10\n",
        );
    let out = d.nk(&["--tcp", "-t", "TXT", "big.example.test", "--json"]);
    out.expect_code(0);
    let objs = json_lines(&out);
    assert_eq!(objs.len(), 1, "{}", out.describe());
    assert_eq!(objs[0]["transport"], "tcp", "{}", objs[0]);
    assert_eq!(objs[0]["answers"].as_array().map(Vec::len), Some(40));
}

#[test]
fn tcp_through_nk_own_socks5h_server() {
    let d = Dnsmasq::start();
    let mut proxy = Proc::nk(
        ["listen", "-v", "--proxy", "socks5", "127.0.0.1:0"],
        In::Null,
        Out::Pipe,
    );
    let port = proxy.nk_listening_port();
    let url = format!("socks5h://127.0.0.1:{port}");
    // The answer on stdout; on stderr, -v shows the hop, as dial's -v does.
    d.nk(&[
        "-v",
        "--tcp",
        "--proxy",
        &url,
        "-t",
        "A",
        "www.example.test",
        "--short",
    ])
    .expect_code(0)
    .expect_stdout(b"192.0.2.10\n")
    .expect_stderr_contains(&format!("tunnel to 127.0.0.1:{} open", d.port));
    // The query went through the proxy, to dnsmasq's TCP port.
    signal_and_wait(proxy, "TERM", 143)
        .expect_stderr_contains(&format!("-> 127.0.0.1:{}: ", d.port))
        .expect_stderr_contains("; fin");
}

#[test]
fn tcp_flag_sends_nothing_over_udp() {
    // A server that would answer over UDP; nothing listens on TCP at its port (or something
    // unrelated does), so --tcp must fail without a single datagram.
    let fake = FakeDns::answering("127.0.0.1", [192, 0, 2, 1]);
    let server = fake.server();
    let out = resolve(&[
        "--tcp",
        "-t",
        "A",
        "www.example.test",
        "--server",
        &server,
        "--timeout",
        "1s",
        "--tries",
        "1",
    ]);
    let got = fake.finish();
    out.expect_code(1).expect_stdout(b"");
    assert!(
        got.is_empty(),
        "--tcp sent {} datagram(s)\n{}",
        got.len(),
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 2. replies that must be ignored
// ---------------------------------------------------------------------------

#[test]
fn replies_with_wrong_id_source_or_question_are_ignored() {
    let spoofer = UdpSocket::bind("127.0.0.1:0").expect("bind spoofer");
    let fake = FakeDns::start(
        "127.0.0.1",
        Box::new(move |s, from, q| {
            let a = |addr: [u8; 4]| vec![(TYPE_A, addr.to_vec())];
            // 1. Not DNS at all.
            let _ = s.send_to(b"garbage, not a DNS message", from);
            // 2. Right ID and question, but from another port.
            let _ = spoofer.send_to(
                &response(q.id, q.flags, &q.question, 0, &a([192, 0, 2, 99])),
                from,
            );
            // 3. Wrong ID.
            let _ = s.send_to(
                &response(q.id ^ 0x5555, q.flags, &q.question, 0, &a([192, 0, 2, 98])),
                from,
            );
            // 4. Right ID, another name.
            let other = question("evil.example.test", q.qtype);
            let _ = s.send_to(
                &response(q.id, q.flags, &other, 0, &a([192, 0, 2, 97])),
                from,
            );
            // 5. Right ID and name, another type.
            let other = question(&q.name, TYPE_AAAA);
            let _ = s.send_to(
                &response(q.id, q.flags, &other, 0, &a([192, 0, 2, 96])),
                from,
            );
            // 6. The real answer.
            let _ = s.send_to(&answer_a(q, [192, 0, 2, 77]), from);
        }),
    );
    let server = fake.server();
    let out = ask(
        "A",
        "www.example.test",
        &[&server],
        &["--short", "--timeout", "5s"],
    );
    let got = queries(&fake.finish());
    out.expect_code(0).expect_stdout(b"192.0.2.77\n");
    assert!(
        got.iter()
            .all(|q| q.name == "www.example.test" && q.qtype == TYPE_A),
        "unexpected queries {got:?}"
    );
}

// ---------------------------------------------------------------------------
// 3. a server that never answers
// ---------------------------------------------------------------------------

#[test]
fn silent_server_times_out_after_the_given_tries() {
    let fake = FakeDns::silent("127.0.0.1");
    let server = fake.server();
    let out = ask(
        "A",
        "silent.example.test",
        &[&server],
        &["--timeout", "300ms", "--tries", "2"],
    );
    let got = queries(&fake.finish());
    out.expect_code(1)
        .expect_stdout(b"")
        .expect_stderr_contains("timed out")
        .expect_stderr_contains("silent.example.test");
    assert!(
        out.elapsed < Duration::from_secs_f64(0.3 * 2.0 + 3.0),
        "2 tries of 300 ms should not take {:.2?}\n{}",
        out.elapsed,
        out.describe()
    );
    assert_eq!(
        got.len(),
        2,
        "one query per try: {got:?}\n{}",
        out.describe()
    );
    assert!(
        got.iter()
            .all(|q| q.name == "silent.example.test" && q.qtype == TYPE_A),
        "{got:?}"
    );
}

#[test]
fn tries_are_rounds_over_every_server() {
    let first = FakeDns::silent("127.0.0.1");
    let second = FakeDns::silent("127.0.0.1");
    let (s1, s2) = (first.server(), second.server());
    let out = ask(
        "A",
        "silent.example.test",
        &[&s1, &s2],
        &["--timeout", "300ms", "--tries", "2"],
    );
    let (got1, got2) = (queries(&first.finish()), queries(&second.finish()));
    out.expect_code(1).expect_stderr_contains("timed out");
    assert!(
        out.elapsed < Duration::from_secs_f64(0.3 * 4.0 + 3.0),
        "2 rounds over 2 servers of 300 ms should not take {:.2?}\n{}",
        out.elapsed,
        out.describe()
    );
    assert_eq!(
        (got1.len(), got2.len()),
        (2, 2),
        "each server asked once per round\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 4. NXDOMAIN and no data
// ---------------------------------------------------------------------------

#[test]
fn nxdomain_is_exit_1_with_the_contract_message() {
    let d = Dnsmasq::start();
    let out = d.nk(&["-t", "A", "nope.example.test", "--no-search"]);
    out.expect_code(1).expect_stdout(b"");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
    assert_eq!(
        out.stderr_first_line(),
        format!(
            "nk: resolve nope.example.test A: NXDOMAIN (no such name) from {}",
            d.server()
        ),
        "{}",
        out.describe()
    );
}

#[test]
fn one_failed_query_does_not_hide_the_other_answers() {
    let d = Dnsmasq::start();
    let out = d.nk(&[
        "-t",
        "A",
        "nope.example.test",
        "www.example.test",
        "--no-search",
        "--short",
    ]);
    out.expect_code(1)
        .expect_stdout(b"192.0.2.10\n")
        .expect_stderr_contains("nope.example.test")
        .expect_stderr_contains("NXDOMAIN");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
}

#[test]
fn name_without_the_asked_type_is_no_data() {
    let d = Dnsmasq::start();
    let out = d.nk(&["-t", "MX", "www.example.test", "--no-search"]);
    out.expect_code(1)
        .expect_stdout(b"")
        .expect_stderr_contains("no data");
    let line = out.stderr_first_line();
    assert!(
        line.starts_with("nk: resolve www.example.test MX: "),
        "the line names the query and type\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 5. SERVFAIL and REFUSED
// ---------------------------------------------------------------------------

#[test]
fn servfail_from_the_first_server_then_the_second_answers() {
    let bad = FakeDns::rcode("127.0.0.1", RCODE_SERVFAIL);
    let d = Dnsmasq::start();
    let bad_server = bad.server();
    let good_server = d.server();
    let out = ask(
        "A",
        "www.example.test",
        &[&bad_server, &good_server],
        &["--short"],
    );
    let got = queries(&bad.finish());
    out.expect_code(0).expect_stdout(b"192.0.2.10\n");
    assert!(
        !got.is_empty(),
        "the first server was never asked\n{}",
        out.describe()
    );
}

#[test]
fn servfail_alone_is_exit_1() {
    let bad = FakeDns::rcode("127.0.0.1", RCODE_SERVFAIL);
    let server = bad.server();
    let out = ask("A", "www.example.test", &[&server], &["--timeout", "2s"]);
    out.expect_code(1)
        .expect_stdout(b"")
        .expect_stderr_contains("SERVFAIL")
        .expect_stderr_contains("www.example.test");
}

#[test]
fn refused_is_exit_1() {
    // dnsmasq refuses names outside its zone.
    let d = Dnsmasq::start();
    let out = d.nk(&["-t", "A", "elsewhere.invalid", "--no-search"]);
    out.expect_code(1)
        .expect_stdout(b"")
        .expect_stderr_contains("REFUSED")
        .expect_stderr_contains("elsewhere.invalid");

    // And an in-test server that refuses everything.
    let fake = FakeDns::rcode("127.0.0.1", RCODE_REFUSED);
    let server = fake.server();
    let out = resolve(&["-t", "A", "www.example.test", "--server", &server]);
    out.expect_code(1)
        .expect_stdout(b"")
        .expect_stderr_contains("REFUSED");
}

// ---------------------------------------------------------------------------
// --server forms
// ---------------------------------------------------------------------------

#[test]
fn server_forms_ipv6_brackets_and_host_name() {
    let v6 = FakeDns::answering("::1", [192, 0, 2, 61]);
    let port = v6.addr.port();
    let out = ask(
        "A",
        "www.example.test",
        &[&format!("[::1]:{port}")],
        &["--short"],
    );
    out.expect_code(0).expect_stdout(b"192.0.2.61\n");
    assert_eq!(queries(&v6.finish()).len(), 1);

    // A host name: localhost is 127.0.0.1 in /etc/hosts.
    let v4 = FakeDns::answering("127.0.0.1", [192, 0, 2, 62]);
    let port = v4.addr.port();
    let out = resolve(&[
        "-4",
        "-t",
        "A",
        "www.example.test",
        "--server",
        &format!("localhost:{port}"),
        "--short",
    ]);
    out.expect_code(0).expect_stdout(b"192.0.2.62\n");
}

// ---------------------------------------------------------------------------
// 7. the system resolver (no -t, no --server)
// ---------------------------------------------------------------------------

#[test]
fn localhost_through_the_system_resolver() {
    let out = resolve(&["localhost"]);
    out.expect_code(0);
    let lines: Vec<String> = out.stdout_text().lines().map(str::to_string).collect();
    assert!(
        lines.iter().any(|l| l == "127.0.0.1"),
        "localhost includes 127.0.0.1\n{}",
        out.describe()
    );
    let mut dedup = lines.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(
        dedup.len(),
        lines.len(),
        "no duplicates\n{}",
        out.describe()
    );

    resolve(&["-4", "localhost"])
        .expect_code(0)
        .expect_stdout(b"127.0.0.1\n");
    let out = resolve(&["-4", "localhost", "--json"]);
    out.expect_code(0);
    assert_eq!(
        json_lines(&out),
        [serde_json::json!({"query": "localhost", "addresses": ["127.0.0.1"]})],
        "{}",
        out.describe()
    );
}

#[test]
fn ip_literals_print_their_canonical_form() {
    resolve(&["0:0:0:0:0:0:0:1"])
        .expect_code(0)
        .expect_stdout(b"::1\n");
    resolve(&["127.0.0.1"])
        .expect_code(0)
        .expect_stdout(b"127.0.0.1\n");
    resolve(&["2001:DB8:0:0:0:0:0:5"])
        .expect_code(0)
        .expect_stdout(b"2001:db8::5\n");
}

#[test]
fn several_queries_print_query_then_address() {
    resolve(&["-4", "localhost", "127.0.0.1"])
        .expect_code(0)
        .expect_stdout(b"localhost 127.0.0.1\n127.0.0.1 127.0.0.1\n");
    resolve(&["127.0.0.1", "0:0:0:0:0:0:0:1"])
        .expect_code(0)
        .expect_stdout(b"127.0.0.1 127.0.0.1\n0:0:0:0:0:0:0:1 ::1\n");
}

#[test]
fn queries_from_stdin_skip_blank_and_comment_lines() {
    let out = run_nk(
        ["resolve", "-4"],
        In::Bytes(b"localhost\n\n# a comment\n127.0.0.1\n".to_vec()),
        RUN_SECS,
    );
    out.expect_code(0)
        .expect_stdout(b"localhost 127.0.0.1\n127.0.0.1 127.0.0.1\n");
}

#[test]
fn reverse_through_the_system_resolver() {
    resolve(&["-x", "127.0.0.1"])
        .expect_code(0)
        .expect_stdout(b"localhost\n");
    let out = resolve(&["-x", "127.0.0.1", "--json"]);
    out.expect_code(0);
    assert_eq!(
        json_lines(&out),
        [serde_json::json!({"query": "127.0.0.1", "names": ["localhost"]})],
        "{}",
        out.describe()
    );
}

/// Writes `hosts` and an nsswitch.conf that consults only files into `dir`, and returns a
/// command running nk with `args` in a private mount namespace where both are bind-mounted
/// over /etc, so that lookups depend on nothing but `hosts`.
fn nk_with_hosts(dir: &Path, hosts: &str, args: &[&str]) -> Command {
    let hosts_path = dir.join("hosts");
    let nss_path = dir.join("nsswitch.conf");
    std::fs::write(&hosts_path, hosts).expect("write hosts");
    std::fs::write(
        &nss_path,
        "hosts: files\nnetworks: files\nservices: files\nprotocols: files\n",
    )
    .expect("write nsswitch.conf");
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        r#"mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf && shift 2 && exec "$@""#,
        "sh",
    ]);
    cmd.arg(&hosts_path).arg(&nss_path).arg(NK).arg("resolve");
    cmd.args(args);
    cmd.env("NO_COLOR", "1");
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

const TEST_HOSTS: &str = "127.0.0.1 localhost\n\
                          192.0.2.5 dual.nk.test\n\
                          2001:db8::5 dual.nk.test\n\
                          192.0.2.6 v4only.nk.test\n";

fn run_with_hosts(args: &[&str], stdin: In) -> Finished {
    let dir = tempfile::tempdir().expect("tempdir");
    let cmd = nk_with_hosts(dir.path(), TEST_HOSTS, args);
    Proc::spawn(
        &format!("nk resolve {} (private /etc/hosts)", args.join(" ")),
        cmd,
        stdin,
        Out::Pipe,
    )
    .wait(RUN_SECS)
}

#[test]
fn system_path_with_a_private_hosts_file() {
    require_mountns();
    let out = run_with_hosts(&["dual.nk.test"], In::Null);
    out.expect_code(0);
    assert_eq!(
        sorted_lines(&out),
        ["192.0.2.5", "2001:db8::5"],
        "both addresses, once each\n{}",
        out.describe()
    );
    run_with_hosts(&["-4", "dual.nk.test"], In::Null)
        .expect_code(0)
        .expect_stdout(b"192.0.2.5\n");
    run_with_hosts(&["-6", "dual.nk.test"], In::Null)
        .expect_code(0)
        .expect_stdout(b"2001:db8::5\n");
    run_with_hosts(&["v4only.nk.test", "0:0:0:0:0:0:0:1"], In::Null)
        .expect_code(0)
        .expect_stdout(b"v4only.nk.test 192.0.2.6\n0:0:0:0:0:0:0:1 ::1\n");
    run_with_hosts(
        &[],
        In::Bytes(b"# names\nv4only.nk.test\n\n127.0.0.1\n".to_vec()),
    )
    .expect_code(0)
    .expect_stdout(b"v4only.nk.test 192.0.2.6\n127.0.0.1 127.0.0.1\n");
    run_with_hosts(&["-x", "192.0.2.6"], In::Null)
        .expect_code(0)
        .expect_stdout(b"v4only.nk.test\n");
    run_with_hosts(&["-x", "127.0.0.1", "192.0.2.6"], In::Null)
        .expect_code(0)
        .expect_stdout(b"127.0.0.1 localhost\n192.0.2.6 v4only.nk.test\n");

    let out = run_with_hosts(&["dual.nk.test", "--json"], In::Null);
    out.expect_code(0);
    let objs = json_lines(&out);
    assert_eq!(objs.len(), 1, "{}", out.describe());
    assert_eq!(objs[0]["query"], "dual.nk.test");
    let mut addrs: Vec<&str> = objs[0]["addresses"]
        .as_array()
        .expect("addresses array")
        .iter()
        .map(|a| a.as_str().expect("address string"))
        .collect();
    addrs.sort();
    assert_eq!(addrs, ["192.0.2.5", "2001:db8::5"], "{}", out.describe());
}

/// `--canonical` prints getaddrinfo's AI_CANONNAME, the name `getent ahosts` prints after
/// the first address: the first name of the /etc/hosts line an alias is on.
#[test]
fn canonical_name_is_the_one_getent_ahosts_shows() {
    require_mountns();
    let hosts = "127.0.0.1 localhost\n192.0.2.7 canon.nk.test alias.nk.test other\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let cmd = nk_with_hosts(dir.path(), hosts, args);
        Proc::spawn(&format!("nk resolve {args:?}"), cmd, In::Null, Out::Pipe).wait(RUN_SECS)
    };
    run(&["--canonical", "alias.nk.test"])
        .expect_code(0)
        .expect_stdout(b"canon.nk.test\n");
    run(&["--canonical", "other", "canon.nk.test"])
        .expect_code(0)
        .expect_stdout(b"other canon.nk.test\ncanon.nk.test canon.nk.test\n");
    let out = run(&["--canonical", "--json", "alias.nk.test"]);
    out.expect_code(0);
    assert_eq!(
        json_lines(&out),
        [
            serde_json::json!({"query": "alias.nk.test", "canonical": "canon.nk.test",
                            "addresses": ["192.0.2.7"]})
        ],
        "{}",
        out.describe()
    );
    run(&["--canonical", "nosuch.nk.test"])
        .expect_code(1)
        .expect_stderr_contains("nosuch.nk.test");
    run(&["--canonical", "-t", "A", "alias.nk.test"]).expect_code(2);

    // getent ahosts, in the same private namespace, names the same canonical name.
    let mut getent = nk_with_hosts(dir.path(), hosts, &[]);
    let program: Vec<std::ffi::OsString> = getent.get_args().map(|a| a.to_owned()).collect();
    // Replace `nk resolve` at the end of the sh -c line with `getent ahosts alias.nk.test`.
    let keep = program.len() - 2;
    getent = Command::new("unshare");
    getent
        .args(&program[..keep])
        .args(["getent", "ahosts", "alias.nk.test"]);
    let out = Proc::spawn("getent ahosts", getent, In::Null, Out::Pipe).wait(RUN_SECS);
    out.expect_code(0);
    let first = out
        .stdout_text()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        first.split_whitespace().nth(2),
        Some("canon.nk.test"),
        "getent ahosts said {first:?}"
    );
}

#[test]
fn system_path_failure_names_the_query_and_other_answers_still_print() {
    require_mountns();
    let out = run_with_hosts(&["nosuch.nk.test"], In::Null);
    out.expect_code(1).expect_stdout(b"");
    assert!(
        out.stderr_first_line()
            .starts_with("nk: resolve nosuch.nk.test: "),
        "{}",
        out.describe()
    );

    let out = run_with_hosts(&["nosuch.nk.test", "v4only.nk.test"], In::Null);
    out.expect_code(1)
        .expect_stdout(b"v4only.nk.test 192.0.2.6\n")
        .expect_stderr_contains("nosuch.nk.test");

    // An address with no name.
    let out = run_with_hosts(&["-x", "192.0.2.200"], In::Null);
    out.expect_code(1)
        .expect_stdout(b"")
        .expect_stderr_contains("192.0.2.200");
}

// ---------------------------------------------------------------------------
// the default servers: /etc/resolv.conf in private network and mount namespaces
// ---------------------------------------------------------------------------

/// dnsmasq on 127.0.0.1:53 in a private network namespace, with `resolv` bind-mounted over
/// /etc/resolv.conf in a private mount namespace; nk runs in both through nsenter.
struct NamespacedDnsmasq {
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl NamespacedDnsmasq {
    fn start(resolv: &str) -> NamespacedDnsmasq {
        require_netns();
        require_mountns();
        require_tool("nsenter", "util-linux");
        let bin = require_dnsmasq();
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("dnsmasq.conf");
        std::fs::write(&conf, dnsmasq_config("127.0.0.1")).expect("write dnsmasq.conf");
        let resolv_path = dir.path().join("resolv.conf");
        std::fs::write(&resolv_path, resolv).expect("write resolv.conf");
        let mut cmd = Command::new("unshare");
        cmd.args([
            "-n",
            "-m",
            "sh",
            "-c",
            r#"ip link set lo up && mount --bind "$1" /etc/resolv.conf && shift && exec "$@""#,
            "sh",
        ]);
        cmd.arg(&resolv_path).arg(&bin);
        cmd.arg("--keep-in-foreground");
        cmd.arg(format!("--conf-file={}", conf.display()));
        cmd.arg("--port=53");
        let mut proc = Proc::spawn(
            "dnsmasq on 127.0.0.1:53 (private netns)",
            cmd,
            In::Null,
            Out::Null,
        );
        // dnsmasq binds its sockets before it logs that it started.
        proc.wait_stderr_line(10.0, |l| l.contains("started, version"));
        NamespacedDnsmasq { proc, _dir: dir }
    }

    /// `nk resolve ARGS` inside the namespaces.
    fn nk(&self, args: &[&str]) -> Finished {
        let mut cmd = Command::new("nsenter");
        cmd.args([
            "-t",
            &self.proc.pid().to_string(),
            "-n",
            "-m",
            NK,
            "resolve",
        ]);
        cmd.args(args);
        cmd.env("NO_COLOR", "1");
        cmd.env_remove("RUST_BACKTRACE");
        Proc::spawn(
            &format!("nk resolve {} (namespaced resolv.conf)", args.join(" ")),
            cmd,
            In::Null,
            Out::Pipe,
        )
        .wait(RUN_SECS)
    }
}

#[test]
fn default_servers_and_search_list_come_from_resolv_conf() {
    let ns = NamespacedDnsmasq::start("nameserver 127.0.0.1\nsearch example.test\n");
    ns.nk(&["-t", "A", "www.example.test", "--short"])
        .expect_code(0)
        .expect_stdout(b"192.0.2.10\n");
    // The search list turns "www" into www.example.test.
    ns.nk(&["-t", "A", "www", "--short"])
        .expect_code(0)
        .expect_stdout(b"192.0.2.10\n");
    // Without it, "www." is outside dnsmasq's zone: refused.
    ns.nk(&["-t", "A", "www", "--no-search", "--short"])
        .expect_code(1)
        .expect_stdout(b"");
    let out = ns.nk(&["-t", "MX", "example.test", "--json"]);
    out.expect_code(0);
    let objs = json_lines(&out);
    assert_eq!(objs.len(), 1, "{}", out.describe());
    assert_eq!(objs[0]["server"], "127.0.0.1:53", "{}", objs[0]);
    assert_eq!(
        objs[0]["answers"][0]["data"], "10 mail.example.test.",
        "{}",
        objs[0]
    );
}

/// Binds UDP `argv[1]`:53, prints `ready`, counts the datagrams it receives without answering;
/// at EOF on stdin takes what is still queued and prints `count N`.
const SILENT_NAMESERVER_PY: &str = r#"
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
n = 0
while True:
    r, _, _ = select.select([s, sys.stdin], [], [], 60)
    if not r:
        break
    if s in r:
        s.recv(65536)
        n += 1
    if sys.stdin in r:
        s.setblocking(False)
        try:
            while True:
                s.recv(65536)
                n += 1
        except BlockingIOError:
            pass
        break
print("count", n, flush=True)
"#;

impl NamespacedDnsmasq {
    /// A nameserver on `ip`:53 in the namespace that never answers (python3). Close its stdin
    /// and wait for it to read the number of queries it got, with [`silent_count`].
    fn silent_nameserver(&self, ip: &str) -> Proc {
        require_python3();
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.proc.pid().to_string(), "-n", "python3", "-c"]);
        cmd.arg(SILENT_NAMESERVER_PY).arg(ip);
        let mut p = Proc::spawn(
            &format!("silent nameserver {ip}:53 (python3)"),
            cmd,
            In::Pipe,
            Out::Pipe,
        );
        p.wait_stdout_line(10.0, |l| l == "ready");
        p
    }
}

/// The number of queries a [`NamespacedDnsmasq::silent_nameserver`] received.
fn silent_count(mut p: Proc) -> usize {
    p.stdin.take();
    let out = p.wait(10.0);
    out.expect_code(0);
    out.stdout_text()
        .lines()
        .find_map(|l| l.strip_prefix("count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count\n{}", out.describe()))
}

#[test]
fn resolv_conf_timeout_option_is_honoured_before_the_next_nameserver() {
    // 127.0.0.3:53 receives and never answers: with `timeout:1`, nk gives up on it after a
    // second and asks 127.0.0.1 (the default 5 s would blow the bound below).
    let ns = NamespacedDnsmasq::start(
        "nameserver 127.0.0.3\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    );
    let silent = ns.silent_nameserver("127.0.0.3");
    let out = ns.nk(&["-t", "A", "www.example.test", "--short"]);
    let asked = silent_count(silent);
    out.expect_code(0).expect_stdout(b"192.0.2.10\n");
    assert_eq!(
        asked,
        1,
        "the first nameserver is asked once\n{}",
        out.describe()
    );
    assert!(
        out.elapsed < Duration::from_secs(1 + 3),
        "timeout:1 should bound the wait for the first nameserver, took {:.2?}\n{}",
        out.elapsed,
        out.describe()
    );
}

#[test]
fn resolv_conf_attempts_and_timeout_bound_a_silent_nameserver() {
    let ns = NamespacedDnsmasq::start("nameserver 127.0.0.3\noptions timeout:1 attempts:2\n");
    let silent = ns.silent_nameserver("127.0.0.3");
    let out = ns.nk(&["-t", "A", "www.example.test"]);
    let asked = silent_count(silent);
    out.expect_code(1)
        .expect_stdout(b"")
        .expect_stderr_contains("timed out");
    assert_eq!(asked, 2, "attempts:2 means two tries\n{}", out.describe());
    assert!(
        out.elapsed < Duration::from_secs(2 + 3),
        "2 attempts of 1 s took {:.2?}\n{}",
        out.elapsed,
        out.describe()
    );
}

// ---------------------------------------------------------------------------
// 8. --port
// ---------------------------------------------------------------------------

#[test]
fn port_service_names_and_numbers_both_ways() {
    for (arg, want) in [
        ("telnet", "23\n"),
        ("telnet/tcp", "23\n"),
        ("tcp/telnet", "23\n"),
        ("443/tcp", "https\n"),
        ("53/udp", "domain\n"),
    ] {
        resolve(&["--port", arg])
            .expect_code(0)
            .expect_stdout(want.as_bytes());
    }
    let out = resolve(&["--port", "telnet/tcp", "--json"]);
    out.expect_code(0);
    assert_eq!(
        json_lines(&out),
        [serde_json::json!({"query": "telnet/tcp", "port": 23, "proto": "tcp", "name": "telnet"})],
        "{}",
        out.describe()
    );
}

#[test]
fn port_errors() {
    for bad in ["70000", "telnet/sctp", "http/icmp", "-1"] {
        resolve(&["--port", bad]).expect_code(2).expect_stdout(b"");
    }
    let out = resolve(&["--port", "nosuchservice"]);
    out.expect_code(1).expect_stdout(b"");
    assert!(
        out.stderr_first_line()
            .starts_with("nk: resolve --port nosuchservice: unknown service 'nosuchservice'"),
        "{}",
        out.describe()
    );
}

#[test]
fn port_with_a_name_prints_socket_addresses() {
    resolve(&["-4", "localhost", "--port", "http"])
        .expect_code(0)
        .expect_stdout(b"127.0.0.1:80\n");
}

// ---------------------------------------------------------------------------
// 9. usage errors: exit 2, nothing sent
// ---------------------------------------------------------------------------

#[test]
fn usage_errors_exit_2_before_any_query() {
    let fake = FakeDns::answering("127.0.0.1", [192, 0, 2, 1]);
    let good = fake.server();
    let cases: Vec<Vec<&str>> = vec![
        vec!["-t", "BOGUS"],
        vec!["-t", "A,BOGUS"],
        vec!["--server", "not a server:99999"],
        vec!["--server", "127.0.0.1:99999"],
        vec!["--server", "[::1]:70000"],
        vec!["--tries", "0"],
        vec!["--timeout", "soon"],
    ];
    let mut failures = Vec::new();
    for extra in &cases {
        let mut args = vec!["-t", "A", "www.example.test", "--server", &good];
        args.extend_from_slice(extra);
        let out = resolve(&args);
        if out.status.code() != Some(2) || !out.stdout.is_empty() || out.stderr.is_empty() {
            failures.push(format!(
                "{extra:?}: want exit 2, empty stdout, a message\n{}",
                out.describe()
            ));
        }
    }
    let got = fake.finish();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        got.is_empty(),
        "usage errors sent {} datagram(s) to the good server",
        got.len()
    );
}

/// dig's positional forms: `@SERVER#PORT`, a bare type keyword, `IN`, and `-p PORT` mean what
/// they mean to dig (nk used to ask the system resolver for a host called `MX`).
#[test]
fn digs_positional_forms_mean_what_they_mean_to_dig() {
    let d = Dnsmasq::start();
    let port = d.port.to_string();
    let at_server = format!("@127.0.0.1#{port}");
    let want = d.nk(&["-t", "MX", "example.test", "--short"]);
    want.expect_code(0);
    assert_eq!(want.stdout_text(), "10 mail.example.test.\n");
    for args in [
        vec![&at_server[..], "example.test", "MX", "--short"],
        vec!["example.test", "mx", "IN", &at_server[..], "--short"],
        vec![
            "@127.0.0.1",
            "-p",
            &port[..],
            "example.test",
            "MX",
            "--short",
        ],
    ] {
        let mut all = vec!["resolve"];
        all.extend_from_slice(&args);
        let out = run_nk(&all, In::Null, RUN_SECS);
        out.expect_code(0);
        assert_eq!(out.stdout, want.stdout, "nk {all:?}\n{}", out.describe());
    }
    // With -t given, a type keyword among the names is a name (here: one that does not exist).
    let out = resolve(&["-t", "A", "mx", &at_server, "--no-search"]);
    out.expect_code(1).expect_stderr_contains("mx");
    // A positional server on its own still needs a name.
    let out = resolve(&["@", "example.test"]);
    out.expect_code(2)
        .expect_stderr_contains("'@' needs a server");
}

/// A reply whose name is a compression pointer to later data (hickory: "label points to data
/// not prior to idx") is reported in words with -v at once, and the wait for a good reply goes
/// on; the parser's own words never reach the user.
#[test]
fn a_malformed_reply_is_said_in_words_at_once_and_the_wait_goes_on() {
    let fake = FakeDns::start(
        "127.0.0.1",
        Box::new(move |s, from, q| {
            // Right ID and header, but the answer's owner name points forward (0xc0 0xff).
            let mut bad = response(q.id, q.flags, &q.question, 0, &[]);
            bad[7] = 1; // ANCOUNT = 1
            bad.extend_from_slice(&[0xc0, 0xff, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
            let _ = s.send_to(&bad, from);
            thread::sleep(Duration::from_millis(100));
            let _ = s.send_to(&answer_a(q, [192, 0, 2, 77]), from);
        }),
    );
    let server = fake.server();
    let out = ask("A", "www.example.test", &[&server], &["-v", "--no-search"]);
    out.expect_code(0)
        .expect_stdout_contains("192.0.2.77")
        .expect_stderr_contains("ignored a malformed reply")
        .expect_stderr_contains("do not decode as a DNS message");
    assert!(!out.stderr.contains("prior to idx"), "{}", out.stderr);
}

/// `--json` failures have the fields of an answer (`rcode`, empty `answers`) plus `error`;
/// an address with `-t A` and `--timeout 0` are usage errors.
#[test]
fn json_failures_carry_rcode_and_answers_and_bad_asks_are_usage_errors() {
    let d = Dnsmasq::start();
    let out = d.nk(&["-t", "A", "nope.example.test", "--json", "--no-search"]);
    out.expect_code(1);
    let objects = json_lines(&out);
    assert_eq!(objects.len(), 1, "{}", out.describe());
    assert_eq!(objects[0]["rcode"], "NXDOMAIN");
    assert_eq!(objects[0]["answers"], serde_json::json!([]));
    assert!(objects[0]["error"].as_str().unwrap().contains("NXDOMAIN"));
    let out = d.nk(&["-t", "MX", "www.example.test", "--json", "--no-search"]);
    out.expect_code(1);
    assert_eq!(json_lines(&out)[0]["rcode"], "NOERROR");
    let server = d.server();
    for args in [
        vec!["-t", "A", "2001:db8::10", "--server", &server[..]],
        vec![
            "--timeout",
            "0",
            "-t",
            "A",
            "x.test",
            "--server",
            &server[..],
        ],
    ] {
        let out = resolve(&args);
        out.expect_code(2);
        assert!(out.stdout.is_empty());
    }
}

/// Records print in presentation form as dig prints them: an unnamed type as `TYPE65280` with
/// RFC 3597's `\# LEN HEX` (upper-case hex, as dig 9.18 prints it), HINFO's strings quoted
/// (nk printed `Unknown`, and `\# ...` for every type past the common ones).
#[test]
fn records_print_in_presentation_form_with_rfc_3597_for_the_rest() {
    let fake = FakeDns::start(
        "127.0.0.1",
        Box::new(move |s, from, q| {
            let hinfo = [&[8u8][..], b"DEC-2060", &[7], b"TOPS 20"].concat();
            let answers = vec![(65280u16, vec![1, 2, 0xab]), (13u16, hinfo)];
            let _ = s.send_to(&response(q.id, q.flags, &q.question, 0, &answers), from);
        }),
    );
    let server = fake.server();
    let out = ask("A", "odd.example.test", &[&server], &["--no-search"]);
    out.expect_code(0);
    assert_eq!(
        out.stdout_text(),
        "odd.example.test.\t60\tIN\tTYPE65280\t\\# 3 0102AB\n\
         odd.example.test.\t60\tIN\tHINFO\t\"DEC-2060\" \"TOPS 20\"\n"
    );
}

// ---------------------------------------------------------------------------
// Issue 17 items 18 and 19: the shared host parser on the direct path
// ---------------------------------------------------------------------------

#[test]
fn an_idn_is_asked_for_in_its_punycode_form_and_short_ipv4_forms_ask_for_ptr() {
    let fake = FakeDns::answering("127.0.0.1", [192, 0, 2, 7]);
    let server = fake.server();
    let out = resolve(&[
        "-v",
        "-t",
        "A",
        "bücher.test",
        "--server",
        &server,
        "--timeout",
        "2s",
        "--tries",
        "1",
        "--short",
    ]);
    // An address given as 127.1 asks for the PTR of 127.0.0.1, as `nk resolve -x 127.1` does.
    let ptr = resolve(&[
        "--server",
        &server,
        "--timeout",
        "2s",
        "--tries",
        "1",
        "--no-search",
        "127.1",
    ]);
    let got = fake.finish();
    out.expect_code(0)
        .expect_stdout(b"192.0.2.7\n")
        .expect_stderr_contains("nk: bücher.test is xn--bcher-kva.test");
    let names: Vec<String> = got
        .iter()
        .filter_map(|d| parse_query(d))
        .map(|q| q.name)
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.eq_ignore_ascii_case("xn--bcher-kva.test")),
        "questions asked: {names:?}\n{}",
        out.describe()
    );
    ptr.expect_code(1);
    assert!(
        names
            .iter()
            .any(|n| n.eq_ignore_ascii_case("1.0.0.127.in-addr.arpa")),
        "questions asked: {names:?}\n{}",
        ptr.describe()
    );
    // A type for names with an address is refused before any traffic, whatever its form.
    resolve(&["-t", "A", "127.1", "--server", "127.0.0.1:9"])
        .expect_code(2)
        .expect_stderr_contains("is an address, not a name");
}
