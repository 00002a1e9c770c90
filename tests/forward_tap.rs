//! `nk forward -x` and `--pcap`: what the forwarder recorded, read back by tshark and capinfos
//! (Debian's tshark package) and by parsing the hex dump, against the bytes each side really
//! sent. Every wait is bounded; nothing asserts on timing.

mod common;

use common::forwarder::{client, forward, resetting_target};
use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// `nk forward -v RECORDING... 127.0.0.1:0 TARGET` and its port.
fn forward_recording(recording: &[&str], target: &str) -> (Proc, u16) {
    let mut args = recording.to_vec();
    args.extend(["127.0.0.1:0", target]);
    forward(&args)
}

/// What the reversing target answers to `data`.
fn reply_to(data: &[u8]) -> Vec<u8> {
    let mut out = b"reply:".to_vec();
    out.extend(data.iter().rev());
    out
}

/// A target on 127.0.0.1 serving `n` connections at once: each reads to EOF, answers
/// [`reply_to`] what it read, and closes.
fn reversing_target(n: usize) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let mut served = Vec::new();
        for _ in 0..n {
            let (mut s, _) = listener.accept().unwrap();
            served.push(thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).unwrap();
                s.write_all(&reply_to(&got)).unwrap();
            }));
        }
        for t in served {
            t.join().unwrap();
        }
    });
    (port, handle)
}

/// Sends `data`, half-closes, and reads the answer to EOF: (client port, answer).
fn exchange(port: u16, data: &[u8]) -> (u16, Vec<u8>) {
    let mut s = client(port);
    let local = s.local_addr().unwrap().port();
    s.write_all(data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    (local, got)
}

fn tshark(args: &[&str]) -> String {
    require_tool("tshark", "tshark");
    let out = Command::new("tshark").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One value per line of `tshark -r PCAP -Y FILTER -T fields -e FIELD`.
fn fields(pcap: &Path, filter: &str, field: &str) -> Vec<String> {
    let path = pcap.to_str().unwrap();
    tshark(&["-r", path, "-Y", filter, "-T", "fields", "-e", field])
        .lines()
        .map(str::to_string)
        .collect()
}

/// A TCP stream as `tshark -z follow,tcp,raw` gives it back.
#[derive(Debug)]
struct Followed {
    /// Node 0: the side that sent the SYN.
    client: String,
    server: String,
    up: Vec<u8>,
    down: Vec<u8>,
}

fn follow(pcap: &Path, stream: usize) -> Followed {
    let spec = format!("follow,tcp,raw,{stream}");
    let text = tshark(&["-r", pcap.to_str().unwrap(), "-q", "-z", &spec]);
    let mut f = Followed {
        client: String::new(),
        server: String::new(),
        up: Vec::new(),
        down: Vec::new(),
    };
    for line in text.lines() {
        if let Some(node) = line.strip_prefix("Node 0: ") {
            f.client = node.to_string();
        } else if let Some(node) = line.strip_prefix("Node 1: ") {
            f.server = node.to_string();
        } else if let Some(hex) = line.strip_prefix('\t') {
            f.down.extend(unhex(hex));
        } else if !line.is_empty() && line.bytes().all(|b| b.is_ascii_hexdigit()) {
            f.up.extend(unhex(line));
        }
    }
    f
}

fn unhex(text: &str) -> Vec<u8> {
    let text: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    text.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn port_of(node: &str) -> u16 {
    node.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn three_concurrent_connections_are_three_streams_with_their_own_bytes_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("three.pcapng");
    let (tport, target) = reversing_target(3);
    let (fwd, port) = forward_recording(
        &["--pcap", pcap.to_str().unwrap()],
        &format!("127.0.0.1:{tport}"),
    );
    let start = Arc::new(Barrier::new(3));
    let clients: Vec<_> = [1_000, 100_000, 300_000]
        .into_iter()
        .enumerate()
        .map(|(i, len)| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let data = prng_bytes(len, 100 + i as u64);
                start.wait();
                let (local, got) = exchange(port, &data);
                assert_same_bytes("answer through the forwarder", &got, &reply_to(&data));
                (local, data)
            })
        })
        .collect();
    let sent: BTreeMap<u16, Vec<u8>> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    target.join().unwrap();
    let mut fwd = fwd;
    for _ in 0..3 {
        fwd.wait_stderr_line(10.0, |l| l.contains("; fin"));
    }
    terminate(fwd);

    let syns = fields(&pcap, "tcp.flags.syn==1 && tcp.flags.ack==0", "tcp.stream");
    assert_eq!(syns.len(), 3, "three connections, three SYNs: {syns:?}");
    for stream in 0..3 {
        let f = follow(&pcap, stream);
        let data = sent
            .get(&port_of(&f.client))
            .unwrap_or_else(|| panic!("stream {stream}: unknown client {f:?}"));
        assert_eq!(
            port_of(&f.server),
            tport,
            "stream {stream} goes to the target"
        );
        assert_same_bytes(&format!("stream {stream} client->target"), &f.up, data);
        assert_same_bytes(
            &format!("stream {stream} target->client"),
            &f.down,
            &reply_to(data),
        );
    }
    // Every connection ended with a FIN each way, and none with a reset.
    assert_eq!(fields(&pcap, "tcp.flags.fin==1", "tcp.stream").len(), 6);
    assert!(fields(&pcap, "tcp.flags.reset==1", "tcp.stream").is_empty());
    // No segment with a bad checksum (tshark checks only when asked).
    let path = pcap.to_str().unwrap();
    let bad = tshark(&[
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-r",
        path,
        "-Y",
        "tcp.checksum.status==0 || ip.checksum.status==0",
    ]);
    assert!(bad.is_empty(), "bad checksums:\n{bad}");
    // capinfos agrees with tshark on the packet count and names the writer.
    let frames = tshark(&["-r", path, "-T", "fields", "-e", "frame.number"]);
    require_tool("capinfos", "tshark");
    let info = Command::new("capinfos").arg(path).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    let count = info
        .lines()
        .find_map(|l| l.strip_prefix("Number of packets:"))
        .map(|n| n.trim().to_string());
    assert_eq!(count, Some(frames.lines().count().to_string()), "{info}");
    assert!(info.contains("pcapng"), "{info}");
    assert!(info.contains("Capture application: nk "), "{info}");
}

#[test]
fn a_mebibyte_each_way_reads_back_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("mib.pcapng");
    let (tport, target) = reversing_target(1);
    let (fwd, port) = forward_recording(
        &["--pcap", pcap.to_str().unwrap()],
        &format!("127.0.0.1:{tport}"),
    );
    let data = prng_bytes(MIB, 7);
    let (_, got) = exchange(port, &data);
    assert_same_bytes("1 MiB answer", &got, &reply_to(&data));
    target.join().unwrap();
    let mut fwd = fwd;
    fwd.wait_stderr_line(10.0, |l| l.contains("; fin"));
    // The capture is flushed at the connection's end: readable while nk still runs.
    let f = follow(&pcap, 0);
    assert_same_bytes("tshark's client->target", &f.up, &data);
    assert_same_bytes("tshark's target->client", &f.down, &reply_to(&data));
    terminate(fwd);
}

/// Each direction of each connection in a dump: (connection number, mark) -> its bytes.
type DumpedStreams = BTreeMap<(u64, char), Vec<u8>>;

/// The dump's blocks, replayed: the bytes of every direction, and the header lines.
fn parse_dump(text: &str) -> (DumpedStreams, Vec<String>) {
    let mut streams = DumpedStreams::new();
    let mut headers = Vec::new();
    let mut current: Option<(u64, char)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('#') {
            let (conn, rest) = rest.split_once(' ').unwrap();
            let conn: u64 = conn.parse().unwrap();
            // "#N DATE TIME > client->target 18 bytes"
            let words: Vec<&str> = rest.split(' ').collect();
            assert!(words.len() >= 3, "header {line:?}");
            assert!(
                words[0].len() == 10 && words[1].len() == 15,
                "timestamp in {line:?}"
            );
            current = match words[2] {
                ">" | "<" if line.ends_with("bytes") || line.ends_with("byte") => {
                    Some((conn, words[2].chars().next().unwrap()))
                }
                _ => None,
            };
            headers.push(line.to_string());
        } else {
            let key = current.unwrap_or_else(|| panic!("a dump row outside a block: {line:?}"));
            let mark = line.chars().next().unwrap();
            assert_eq!(mark, key.1, "row mark differs from its block's: {line:?}");
            let hex = &line[12..line.find("  |").unwrap()];
            streams.entry(key).or_default().extend(unhex(hex));
        }
    }
    (streams, headers)
}

#[test]
fn the_hex_dump_has_numbered_blocks_per_direction() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.txt");
    let (tport, target) = reversing_target(2);
    let (fwd, port) = forward_recording(
        &["-x", dump.to_str().unwrap()],
        &format!("127.0.0.1:{tport}"),
    );
    let first = b"GET / HTTP/1.0\r\n\r\n".to_vec();
    let second = prng_bytes(150_000, 3);
    let (port1, _) = exchange(port, &first);
    let (port2, _) = exchange(port, &second);
    target.join().unwrap();
    let mut fwd = fwd;
    fwd.wait_stderr_line(10.0, |l| l.starts_with("nk: #2 ") && l.contains("; fin"));
    terminate(fwd);
    let text = String::from_utf8(read_file(&dump)).unwrap();
    let (streams, headers) = parse_dump(&text);
    assert_same_bytes("#1 >", &streams[&(1, '>')], &first);
    assert_same_bytes("#1 <", &streams[&(1, '<')], &reply_to(&first));
    assert_same_bytes("#2 >", &streams[&(2, '>')], &second);
    assert_same_bytes("#2 <", &streams[&(2, '<')], &reply_to(&second));
    let has = |needle: &str| headers.iter().any(|h| h.contains(needle));
    assert!(
        has(&format!("connected 127.0.0.1:{port1} -> 127.0.0.1:{tport}")),
        "{text}"
    );
    assert!(
        has(&format!("connected 127.0.0.1:{port2} -> 127.0.0.1:{tport}")),
        "{text}"
    );
    assert!(has("> client->target 18 bytes"), "{text}");
    assert!(
        has("> client->target FIN") && has("< target->client FIN"),
        "{text}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with("#1 ") && h.ends_with("end: fin; 18 bytes up, 24 down")),
        "{text}"
    );
}

#[test]
fn x_dash_dumps_to_stdout_and_clashes_with_json() {
    let (tport, target) = reversing_target(1);
    // A name, not an IP literal: the connector's threads reach it, not the loop itself.
    let (mut fwd, port) = forward(&[
        "-x",
        "-",
        "-4",
        "127.0.0.1:0",
        &format!("localhost:{tport}"),
    ]);
    let (_, got) = exchange(port, b"ping");
    assert_eq!(got, b"reply:gnip");
    target.join().unwrap();
    fwd.wait_stdout_line(10.0, |l| l.starts_with("#1 ") && l.contains("end: fin"));
    let out = terminate(fwd);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        text.contains("|ping|") && text.contains("|reply:gnip|"),
        "{text}"
    );

    let clash = run_nk(
        ["forward", "-x", "-", "--json", "127.0.0.1:0", "127.0.0.1:9"],
        In::Null,
        10.0,
    );
    clash
        .expect_code(2)
        .expect_stderr_contains("-x - and --json both write to stdout");
    run_nk(
        ["forward", "-u", "-x", "-", "127.0.0.1:0", "127.0.0.1:9"],
        In::Null,
        10.0,
    )
    .expect_code(2)
    .expect_stderr_contains("not UDP sessions");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/f.pcapng");
    run_nk(
        [
            "forward",
            "--pcap",
            missing.to_str().unwrap(),
            "127.0.0.1:0",
            "127.0.0.1:9",
        ],
        In::Null,
        10.0,
    )
    .expect_code(2)
    .expect_stderr_contains("create --pcap file");
}

#[test]
fn a_target_reset_is_a_rst_from_the_target_in_the_capture_and_the_dump() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("rst.pcapng");
    let dump = dir.path().join("rst.txt");
    let target = resetting_target();
    let tport = target.port();
    let (mut fwd, port) = forward_recording(
        &[
            "--pcap",
            pcap.to_str().unwrap(),
            "-x",
            dump.to_str().unwrap(),
        ],
        &format!("127.0.0.1:{tport}"),
    );
    let mut c = client(port);
    c.write_all(b"hello").unwrap();
    target.join();
    let mut sink = Vec::new();
    let err = c
        .read_to_end(&mut sink)
        .expect_err("the client must see a reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    fwd.wait_stderr_line(10.0, |l| l.contains("reset by the target"));
    let rst_from = fields(&pcap, "tcp.flags.reset==1", "tcp.srcport");
    assert_eq!(
        rst_from,
        vec![tport.to_string()],
        "one RST, from the target"
    );
    let f = follow(&pcap, 0);
    assert_eq!(f.up, b"hello");
    // What the target sent before its reset may or may not have been read by then.
    assert!(b"partial".starts_with(&f.down), "{f:?}");
    let text = String::from_utf8(read_file(&dump)).unwrap();
    assert!(text.contains("< target->client RST"), "{text}");
    assert!(text.contains("end: reset (reset by the target)"), "{text}");
    terminate(fwd);
}

#[test]
fn sigterm_leaves_a_readable_capture_with_the_open_connection_reset_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("term.pcapng");
    let (arrived, seen) = std::sync::mpsc::channel();
    let target = Server::start(move |mut s, _| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut first = [0u8; 11];
        s.read_exact(&mut first).unwrap();
        s.write_all(b"hi").unwrap();
        let _ = arrived.send(());
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let (fwd, port) = forward_recording(
        &["--pcap", pcap.to_str().unwrap()],
        &format!("127.0.0.1:{}", target.port()),
    );
    let mut c = client(port);
    c.write_all(b"still open!").unwrap();
    seen.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut hi = [0u8; 2];
    c.read_exact(&mut hi).unwrap();
    terminate(fwd);
    target.join();
    let f = follow(&pcap, 0);
    assert_eq!(
        (f.up.as_slice(), f.down.as_slice()),
        (&b"still open!"[..], &b"hi"[..])
    );
    assert_eq!(fields(&pcap, "tcp.flags.reset==1", "tcp.stream").len(), 2);
}

#[test]
fn a_dump_that_cannot_be_written_is_said_once_and_forwarding_goes_on() {
    let (tport, target) = reversing_target(2);
    let (fwd, port) = forward(&[
        "-x",
        "/dev/full",
        "127.0.0.1:0",
        &format!("127.0.0.1:{tport}"),
    ]);
    for data in [b"one".to_vec(), prng_bytes(200_000, 9)] {
        let (_, got) = exchange(port, &data);
        assert_same_bytes("answer with a failing dump", &got, &reply_to(&data));
    }
    target.join().unwrap();
    let mut fwd = fwd;
    fwd.wait_stderr_line(10.0, |l| l.starts_with("nk: #2 ") && l.contains("; fin"));
    let out = terminate(fwd);
    let said: Vec<&str> = out
        .stderr_lines_unprefixed()
        .into_iter()
        .filter(|l| l.contains("write -x /dev/full"))
        .collect();
    assert_eq!(said.len(), 1, "said once: {said:?}");
    assert!(said[0].contains("No space left on device"), "{said:?}");
    assert!(said[0].contains("forwarding goes on"), "{said:?}");
}

#[test]
fn a_dump_reader_that_takes_nothing_never_freezes_the_forwarder() {
    // `-x FIFO` whose reader never reads (a pager left alone, a terminal paused with ^S): the
    // recording queue fills and the tapped flows stop reading, but the loop goes on: -i
    // still ends the connections, SIGTERM still ends the forwarder, and what the recording
    // did not get is said.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("dump.fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads one NUL-terminated path, alive for the call.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    // Opened for reading and writing, so nk's open for writing does not wait; never read.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let (tport, _target) = reversing_target(2);
    let (mut fwd, port) = forward(&[
        "-i",
        "1",
        "-x",
        fifo.to_str().unwrap(),
        "127.0.0.1:0",
        &format!("127.0.0.1:{tport}"),
    ]);
    let mut pusher = client(port);
    pusher
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let data = prng_bytes(16 * MIB, 3);
    // Far more than the pipe and the recording's queue hold: the write stops part way.
    let _ = pusher.write_all(&data);
    let line = fwd.wait_stderr_line(10.0, |l| l.starts_with("nk: #1 "));
    assert!(line.ends_with("; timeout"), "{line}");
    let out = terminate(fwd);
    out.expect_stderr_contains("of the recording never written");
}

#[test]
fn a_fifo_recording_waits_for_its_reader_while_the_forwarder_listens() {
    // `-x FIFO` with no reader yet: nk used to block in open(2) before listening.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("late.fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads one NUL-terminated path, alive for the call.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let (tport, target) = reversing_target(1);
    let (fwd, port) = forward(&[
        "-x",
        fifo.to_str().unwrap(),
        "127.0.0.1:0",
        &format!("127.0.0.1:{tport}"),
    ]);
    // A reader comes; the recording starts and the connection is forwarded.
    let reader = thread::spawn(move || std::fs::read(&fifo).unwrap_or_default());
    let (_, got) = exchange(port, b"late reader");
    assert_same_bytes(
        "answer through a FIFO recording",
        &got,
        &reply_to(b"late reader"),
    );
    target.join().unwrap();
    terminate(fwd);
    let dump = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(dump.contains("|late reader|"), "{dump}");
}

#[test]
fn a_unix_target_is_shown_on_a_made_up_address_at_the_listeners_port() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("unix.pcapng");
    let path = dir.path().join("target.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(&reply_to(&got)).unwrap();
    });
    let (fwd, port) = forward_recording(
        &["--pcap", pcap.to_str().unwrap()],
        &format!("unix:{}", path.display()),
    );
    let (local, got) = exchange(port, b"over unix");
    assert_eq!(got, reply_to(b"over unix"));
    server.join().unwrap();
    let mut fwd = fwd;
    fwd.wait_stderr_line(10.0, |l| l.contains("; fin"));
    terminate(fwd);
    let f = follow(&pcap, 0);
    assert_eq!(f.client, format!("127.0.0.1:{local}"));
    assert_eq!(f.server, format!("198.18.0.2:{port}"));
    assert_eq!(
        (f.up, f.down),
        (b"over unix".to_vec(), reply_to(b"over unix"))
    );
}
