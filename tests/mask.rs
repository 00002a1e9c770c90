//! `nk mask` against Python's `ipaddress` module as the oracle, on 10,000 random IPv4 and IPv6
//! networks (and the edge prefixes /0, /31, /32, /127, /128), plus the usage errors.

mod common;

use common::*;

/// Generates networks, runs `nk mask --json` on them (one per line on stdin), and checks every
/// field against `ipaddress`. Prints the first mismatches and exits 1 on any.
const ORACLE_PY: &str = r#"
import ipaddress, json, random, subprocess, sys
nk = sys.argv[1]
rng = random.Random(20261121)
nets = []
for prefix in (0, 1, 8, 31, 32):
    nets.append(f"{ipaddress.IPv4Address(rng.getrandbits(32))}/{prefix}")
for prefix in (0, 1, 64, 127, 128):
    nets.append(f"{ipaddress.IPv6Address(rng.getrandbits(128))}/{prefix}")
while len(nets) < 10000:
    if rng.random() < 0.5:
        nets.append(f"{ipaddress.IPv4Address(rng.getrandbits(32))}/{rng.randint(0, 32)}")
    else:
        nets.append(f"{ipaddress.IPv6Address(rng.getrandbits(128))}/{rng.randint(0, 128)}")
out = subprocess.run([nk, "mask", "--json"], input="\n".join(nets) + "\n",
                     capture_output=True, text=True, timeout=60)
if out.returncode != 0:
    print("nk failed:", out.returncode, out.stderr[:500]); sys.exit(1)
lines = out.stdout.splitlines()
if len(lines) != len(nets):
    print("expected", len(nets), "lines, got", len(lines)); sys.exit(1)
bad = 0
for text, line in zip(nets, lines):
    got = json.loads(line)
    iface = ipaddress.ip_interface(text)
    net = iface.network
    v4 = net.version == 4
    want = {
        "address": str(iface.ip),
        "prefix": net.prefixlen,
        "netmask": str(net.netmask),
        "hostmask": str(net.hostmask),
        "network": str(net.network_address),
        "reverse": iface.ip.reverse_pointer,
    }
    if v4:
        if net.prefixlen < 31:
            want.update(first=str(net.network_address + 1), last=str(net.broadcast_address - 1),
                        count=str(net.num_addresses - 2), broadcast=str(net.broadcast_address))
        else:
            want.update(first=str(net.network_address), last=str(net.broadcast_address),
                        count=str(net.num_addresses), broadcast=None)
    else:
        want.update(first=str(net.network_address), last=str(net.broadcast_address),
                    count=str(net.num_addresses), expanded=iface.ip.exploded)
    want["addresses"] = str(net.num_addresses)
    want["hosts"] = want["count"]
    for key, value in want.items():
        if got.get(key) != value:
            bad += 1
            if bad <= 10:
                print(f"{text}: {key}: nk {got.get(key)!r}, ipaddress {value!r}")
print(f"{len(nets)} networks, {bad} mismatches")
sys.exit(1 if bad else 0)
"#;

/// Runs an oracle script (one python3 process that runs nk itself) and expects it to pass.
fn run_oracle(script: &str, secs: f64) {
    require_python3();
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", script, env!("CARGO_BIN_EXE_nk")]);
    let out = Proc::spawn("python3 oracle", cmd, In::Null, Out::Pipe).wait(secs);
    out.expect_code(0);
}

#[test]
fn mask_agrees_with_python_ipaddress_on_10000_networks() {
    run_oracle(ORACLE_PY, 120.0);
}

#[test]
fn seed_001_mask_of_127_0_0_1() {
    let out = run_nk(["mask", "127.0.0.1"], In::Null, 10.0);
    out.expect_code(0);
    let text = out.stdout_text();
    assert!(
        text.contains("255.0.0.0 = /8 (hex ff000000, classful default for class A)"),
        "{text}"
    );
    assert!(text.contains("Network:     127.0.0.0/8"), "{text}");
    assert!(text.contains("loopback"), "{text}");
}

#[test]
fn invalid_forms_are_usage_errors() {
    for bad in [
        "010.1.2.3",
        "10.0.0.0/33",
        "10.0.0.0/255.0.255.0",
        "::1/129",
        "256.0.0.1",
        "garbage",
        "10.0.0.0/",
        "/8",
    ] {
        let out = run_nk(["mask", bad], In::Null, 10.0);
        out.expect_code(2);
        assert!(out.stderr.starts_with("nk: "), "{bad}: {}", out.describe());
    }
    let out = run_nk(["mask", "10.0.0.0/8", "--split", "40"], In::Null, 10.0);
    out.expect_code(2);
}

#[test]
fn stdin_lines_split_and_json() {
    let out = run_nk(
        ["mask", "--split", "26"],
        In::Bytes(b"10.0.0.0/24\n# comment\n".to_vec()),
        10.0,
    );
    out.expect_code(0)
        .expect_stdout(b"10.0.0.0/26\n10.0.0.64/26\n10.0.0.128/26\n10.0.0.192/26\n");
    let out = run_nk(
        ["mask"],
        In::Bytes(b"10.0.0.1/31\nnot-a-network\n".to_vec()),
        10.0,
    );
    out.expect_code(2).expect_stderr_contains("nk: line 2:");
    assert!(
        out.stdout_text().contains("none (/31: RFC 3021)"),
        "{}",
        out.describe()
    );
}

/// ipcalc's and sipcalc's mask forms: a wildcard mask and a hex mask mean the same network as
/// the netmask; `/08` says what is wrong; a zone is kept; a network wider than a special block
/// is that block "in part" (ipcalc: "In Part Private Internet").
#[test]
fn wildcard_and_hex_masks_zones_and_kinds_in_part() {
    let field = |args: &[&str], key: &str| {
        let mut all = vec!["mask", "--json"];
        all.extend_from_slice(args);
        let out = run_nk(&all, In::Null, 10.0);
        out.expect_code(0);
        let value: serde_json::Value =
            serde_json::from_str(out.stdout_text().trim()).expect("one JSON object");
        value[key].clone()
    };
    for form in [
        vec!["10.0.0.1/24"],
        vec!["10.0.0.1", "255.255.255.0"],
        vec!["10.0.0.1", "0.0.0.255"],
        vec!["10.0.0.1/0.0.0.255"],
        vec!["10.0.0.1/0xffffff00"],
    ] {
        assert_eq!(field(&form, "prefix"), 24, "{form:?}");
        assert_eq!(field(&form, "network"), "10.0.0.0", "{form:?}");
    }
    let out = run_nk(["mask", "10.0.0.1/08"], In::Null, 10.0);
    out.expect_code(2).expect_stderr_contains("a leading zero");
    assert_eq!(field(&["fe80::1%eth0/64"], "zone"), "eth0");
    let text = run_nk(["mask", "fe80::1%eth0/64"], In::Null, 10.0);
    text.expect_code(0).expect_stdout_contains("fe80::1%eth0");
    let out = run_nk(["mask", "fe80::1%e]x"], In::Null, 10.0);
    out.expect_code(2).expect_stderr_contains("invalid zone");
    assert_eq!(
        field(&["10.0.0.0/7"], "kind"),
        "global unicast, in part private (RFC 1918)"
    );
    assert_eq!(field(&["10.1.0.0/16"], "kind"), "private (RFC 1918)");
    assert_eq!(
        field(&["2001:db8::/32"], "addresses"),
        "79228162514264337593543950336"
    );
    assert_eq!(field(&["192.168.1.0/30"], "hosts"), "2");
    assert_eq!(field(&["192.168.1.0/30"], "addresses"), "4");
}

/// Ranges, aggregation and splitting against `ipaddress`, 10,000 cases in 17 nk processes:
/// 4,000 ranges (`summarize_address_range`) on one stdin; 2,000 sets of networks, addresses and
/// ranges for `--merge` (`collapse_addresses`), each set inside its own region with a gap
/// around it, so one `--merge` of them all must print each set's aggregate in turn; 2,000
/// networks for `--split N` (`subnets`), five values of N; and 2,000 `--split-hosts` plans,
/// ten lists of counts, checked for what VLSM promises: each subnet the smallest that holds
/// its count, inside the network, disjoint from the others, and the unused blocks completing
/// the network exactly.
const RANGES_ORACLE_PY: &str = r#"
import ipaddress as ip, json, random, subprocess, sys
nk = sys.argv[1]
rng = random.Random(20261207)
bad = 0
def report(what):
    global bad
    bad += 1
    if bad <= 10:
        print(what)
def run(args, lines):
    out = subprocess.run([nk, "mask"] + args, input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        print("nk", args, "failed:", out.returncode, out.stderr[:500]); sys.exit(1)
    return out.stdout.splitlines()
def addr(v6, value):
    return ip.IPv6Address(value) if v6 else ip.IPv4Address(value)

# 1. Ranges.
lines, want = [], []
edges = [("0.0.0.0", "255.255.255.255"), ("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
         ("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), ("10.0.0.1", "10.0.0.1")]
while len(lines) < 4000:
    if edges:
        a, b = map(ip.ip_address, edges.pop())
    else:
        v6 = rng.random() < 0.5
        bits = 128 if v6 else 32
        a = rng.getrandbits(bits)
        span = rng.getrandbits(rng.randint(0, bits))
        b = min(a + span, (1 << bits) - 1)
        a, b = addr(v6, a), addr(v6, b)
    lines.append(f"{a} - {b}" if rng.random() < 0.5 else f"{a}-{b}")
    want.extend(str(n) for n in ip.summarize_address_range(a, b))
got = run([], lines)
if got != want:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            report(f"ranges: block {i}: nk {g}, ipaddress {w}"); break
    report(f"ranges: nk printed {len(got)} blocks, ipaddress {len(want)}")

# 2. --merge: set i lives in region i (every other /16 of IPv4, every other /48 of
# 2001:db8::/32), so sets never touch and the aggregate of all is each set's in turn.
items, want4, want6 = [], [], []
for case in range(2000):
    v6 = case % 2 == 1
    region = ip.ip_network(f"2001:db8:{2 * (case // 2):x}::/48" if v6 else f"{10 + (case // 2) // 128}.{2 * ((case // 2) % 128)}.0.0/16")
    base, plen = int(region.network_address), region.prefixlen
    bits = 128 if v6 else 32
    nets = []
    for _ in range(rng.randint(1, 12)):
        p = rng.randint(plen, min(plen + 8, bits))
        start = base + (rng.getrandbits(p - plen) << (bits - p)) if p > plen else base
        net = ip.ip_network((start, p)) if not v6 else ip.IPv6Network((start, p))
        kind = rng.random()
        if kind < 0.7:
            nets.append(net)
            # host bits are ignored: 10.0.0.5/24 is 10.0.0.0/24
            host = int(net.network_address) + rng.randint(0, net.num_addresses - 1)
            items.append(f"{addr(v6, host)}/{p}")
        elif kind < 0.85:
            a = addr(v6, base + rng.getrandbits(bits - plen))
            nets.append(ip.ip_network(a))
            items.append(str(a))
        else:
            lo = base + rng.getrandbits(bits - plen)
            hi = min(lo + rng.getrandbits(rng.randint(0, bits - plen)), base + (1 << (bits - plen)) - 1)
            nets.extend(ip.summarize_address_range(addr(v6, lo), addr(v6, hi)))
            items.append(f"{addr(v6, lo)}-{addr(v6, hi)}")
    (want6 if v6 else want4).extend(str(n) for n in ip.collapse_addresses(nets))
rng.shuffle(items)
lines = []
while items:
    take = rng.randint(1, 6)
    lines.append(" ".join(items[:take]) + (" # a comment" if rng.random() < 0.1 else ""))
    items = items[take:]
got = run(["--merge"], lines)
if got != want4 + want6:
    for i, (g, w) in enumerate(zip(got, want4 + want6)):
        if g != w:
            report(f"merge: block {i}: nk {g}, collapse_addresses {w}"); break
    report(f"merge: nk printed {len(got)} blocks, collapse_addresses {len(want4) + len(want6)}")

# 3. --split N.
for new, v6 in ((20, False), (26, False), (30, False), (64, True), (124, True)):
    bits = 128 if v6 else 32
    nets = [ip.ip_network((rng.getrandbits(bits) >> (bits - p) << (bits - p), p))
            for p in (rng.randint(new - 8, new) for _ in range(400))]
    got = run(["--split", str(new)], [str(n) for n in nets])
    want = [str(s) for n in nets for s in n.subnets(new_prefix=new)]
    if got != want:
        report(f"--split {new}: nk printed {len(got)} subnets, ipaddress {len(want)}")

# 4. --split-hosts: what a VLSM plan must be, in ipaddress's terms.
def holds(net, hosts):
    if net.version == 4 and net.prefixlen == 32: return hosts <= 1
    if net.version == 4 and net.prefixlen == 31: return hosts <= 2
    return hosts <= net.num_addresses - (2 if net.version == 4 else 0)
for plan in range(10):
    v6 = plan >= 7
    counts = [rng.choice([1, 2, 3, rng.randint(1, 600), rng.randint(1, 5000)]) for _ in range(rng.randint(1, 8))]
    if v6:
        counts = [c * rng.choice([1, 1000, 10 ** 9]) for c in counts]
    sizes = []
    for c in counts:
        need = c if v6 else (c + 2 if c > 2 else c)
        sizes.append(1 << max(0, (need - 1).bit_length()))
    room = max(sizes) if sum(sizes) <= max(sizes) else 1 << (sum(sizes) - 1).bit_length()
    bits = 128 if v6 else 32
    min_prefix = bits - room.bit_length() + 1
    nets = [ip.ip_network((rng.getrandbits(bits) >> (bits - p) << (bits - p), p))
            for p in (rng.randint(max(0, min_prefix - 4), min_prefix) for _ in range(200))]
    got = [json.loads(l) for l in run(["--split-hosts", ",".join(map(str, counts)), "--json"], [str(n) for n in nets])]
    at = 0
    for net in nets:
        given = got[at:at + len(counts)]
        at += len(counts)
        unused = []
        while at < len(got) and got[at]["unused"]:
            unused.append(ip.ip_network(f"{got[at]['network']}/{got[at]['prefix']}")); at += 1
        subs = [ip.ip_network(f"{g['network']}/{g['prefix']}") for g in given]
        if len(subs) != len(counts) or any(g["unused"] for g in given):
            report(f"--split-hosts {counts} in {net}: wrong number of subnets"); break
        for c, g, s in zip(counts, given, subs):
            if g["requested_hosts"] != str(c) or not s.subnet_of(net) or not holds(s, c) \
                    or (s.prefixlen < bits and holds(next(s.subnets()), c)):
                report(f"--split-hosts {counts} in {net}: {c} hosts got {s}")
        every = subs + unused
        if any(a.overlaps(b) for i, a in enumerate(every) for b in every[i + 1:]) \
                or list(ip.collapse_addresses(every)) != [net] \
                or unused != sorted(unused) or len(unused) > bits:
            report(f"--split-hosts {counts} in {net}: subnets {subs} and unused {unused} do not tile it")
    if at != len(got):
        report(f"--split-hosts {counts}: {len(got) - at} objects left over")
print(f"ranges, merge, split, split-hosts: {bad} mismatches")
sys.exit(1 if bad else 0)
"#;

#[test]
fn ranges_merge_and_splits_agree_with_python_ipaddress_on_10000_cases() {
    run_oracle(RANGES_ORACLE_PY, 300.0);
}

/// The sample networks the side-by-side tests run through nk and the reference tool.
const SAMPLES: [&str; 6] = [
    "192.168.1.77/26",
    "10.0.0.0/8",
    "172.16.5.4/12",
    "100.64.0.1/10",
    "203.0.113.9/30",
    "0.0.0.0/0",
];

/// `nk mask START - END` prints what Debian ipcalc -r and ipcalc-ng -d print, block for block.
#[test]
fn ranges_match_ipcalc_and_ipcalc_ng() {
    require_tool("ipcalc", "ipcalc");
    require_tool("ipcalc-ng", "ipcalc-ng");
    for (start, end) in [
        ("10.0.0.5", "10.0.1.20"),
        ("192.168.0.0", "192.168.255.255"),
        ("1.2.3.4", "1.2.3.4"),
        ("0.0.0.1", "255.255.255.254"),
    ] {
        let ours = run_nk(["mask", start, "-", end], In::Null, 10.0);
        ours.expect_code(0);
        let one_word = run_nk(["mask", &format!("{start}-{end}")], In::Null, 10.0);
        one_word.expect_code(0).expect_stdout(&ours.stdout);
        let mut ipcalc = std::process::Command::new("ipcalc");
        ipcalc.args(["-r", start, end]);
        let theirs = Proc::spawn("ipcalc -r", ipcalc, In::Null, Out::Pipe).wait(10.0);
        let theirs: Vec<String> = theirs
            .stdout_text()
            .lines()
            .filter(|l| !l.starts_with("deaggregate"))
            .map(str::to_string)
            .collect();
        assert_eq!(ours.stdout_text().lines().collect::<Vec<_>>(), theirs);
        let mut ng = std::process::Command::new("ipcalc-ng");
        ng.args(["-d", &format!("{start}-{end}")]);
        let ng = Proc::spawn("ipcalc-ng -d", ng, In::Null, Out::Pipe).wait(10.0);
        let ng: Vec<String> = ng
            .stdout_text()
            .lines()
            .filter_map(|l| l.strip_prefix("Network:\t").map(str::to_string))
            .collect();
        assert_eq!(ours.stdout_text().lines().collect::<Vec<_>>(), ng);
    }
    let out = run_nk(["mask", "10.0.0.9", "-", "10.0.0.1"], In::Null, 10.0);
    out.expect_code(2)
        .expect_stderr_contains("the start is after the end");
    let out = run_nk(["mask", "10.0.0.1-::1"], In::Null, 10.0);
    out.expect_code(2)
        .expect_stderr_contains("the start is IPv4 and the end IPv6");
    let out = run_nk(["mask", "2001:db8::-2001:db8::ff"], In::Null, 10.0);
    out.expect_code(0).expect_stdout(b"2001:db8::/120\n");
}

/// `--binary` shows the same bits, split at the same place, as Debian ipcalc's bit column.
#[test]
fn binary_view_matches_ipcalc() {
    require_tool("ipcalc", "ipcalc");
    for net in SAMPLES {
        let ours = run_nk(["mask", net, "--binary"], In::Null, 10.0);
        ours.expect_code(0);
        let mut ipcalc = std::process::Command::new("ipcalc");
        ipcalc.args(["-n", net]);
        let theirs = Proc::spawn("ipcalc", ipcalc, In::Null, Out::Pipe).wait(10.0);
        let text = theirs.stdout_text();
        for name in ["Address", "Netmask", "Network", "Broadcast"] {
            // ipcalc: "Network:   10.0.0.0/8           00001010. 00000000.00000000.00000000"
            let Some(line) = text.lines().find(|l| l.starts_with(&format!("{name}:"))) else {
                continue; // ipcalc prints no broadcast for /31 and /32
            };
            let bits = line
                .split_whitespace()
                .skip(if name == "Netmask" { 4 } else { 2 });
            let want = bits.collect::<Vec<_>>().join(" ");
            let have = format!("  {:<12} {want}", format!("{name}:"));
            assert!(
                ours.stdout_text().lines().any(|l| l == have),
                "{net} {name}: ipcalc shows {want:?}\n{}",
                ours.stdout_text()
            );
        }
    }
    let out = run_nk(
        ["mask", "2001:db8::1/20", "--binary", "--json"],
        In::Null,
        10.0,
    );
    out.expect_code(0)
        .expect_stdout_contains("\"address\":\"0010000000000001:0000 110110111000:");
}

/// `eval "$(nk mask --shell NET)"` sets what ipcalc-ng's own NAME=value lines set.
#[test]
fn shell_lines_match_ipcalc_ng() {
    require_tool("ipcalc-ng", "ipcalc-ng");
    let script = r#"
        for net in "$@"; do
            eval "$("$NK" mask --shell "$net")" || exit 3
            ours="$NETWORK $PREFIX $NETMASK $BROADCAST $ADDRESS $MINADDR $MAXADDR $ADDRESSES"
            unset NETWORK PREFIX NETMASK BROADCAST ADDRESS MINADDR MAXADDR ADDRESSES
            eval "$(ipcalc-ng -n -p -m -b -a --minaddr --maxaddr --addresses "$net")" || exit 3
            theirs="$NETWORK $PREFIX $NETMASK $BROADCAST $ADDRESS $MINADDR $MAXADDR $ADDRESSES"
            [ "$ours" = "$theirs" ] || { echo "$net: nk: $ours; ipcalc-ng: $theirs"; exit 1; }
        done
        eval "$("$NK" mask --shell fe80::1%eth0/64)"
        [ "$ADDRESS" = "fe80::1%eth0" ] && [ "$ADDRESSES" = 18446744073709551616 ] || exit 4
        echo same
    "#;
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", script, "sh"]).args(&SAMPLES[..5]);
    cmd.env("NK", env!("CARGO_BIN_EXE_nk"));
    let out = Proc::spawn("sh eval", cmd, In::Null, Out::Pipe).wait(30.0);
    out.expect_code(0).expect_stdout(b"same\n");
    let out = run_nk(["mask", "--shell", "10.0.0.1/31"], In::Null, 10.0);
    out.expect_code(0).expect_stdout_contains("\nBROADCAST=\n");
}

/// `--contains`: 0 inside, 1 outside, silent; -v and --json say it; a bad ADDR is a usage error.
#[test]
fn contains_answers_with_the_exit_status() {
    for (net, addr, code) in [
        ("10.0.0.0/8", "10.1.2.3", 0),
        ("10.0.0.0/8", "11.0.0.0", 1),
        ("10.0.0.0/8", "10.0.0.0/7", 1),
        ("10.0.0.0/8", "10.9.0.0/16", 0),
        ("10.0.0.0/8", "10.0.0.1-10.0.0.9", 0),
        ("10.0.0.0/8", "::1", 1),
        ("2001:db8::/32", "2001:db8:ffff::1", 0),
        ("10.0.0.1", "10.0.0.2", 1), // a bare address is itself, not its class A network
    ] {
        let out = run_nk(["mask", net, "--contains", addr], In::Null, 10.0);
        out.expect_code(code).expect_stdout(b"");
        assert_eq!(out.stderr, "", "{net} {addr}: {}", out.describe());
    }
    for (flag, addr, code, said) in [
        (
            "-v",
            "11.0.0.1",
            1,
            "10.0.0.0/8 does not contain 11.0.0.1\n",
        ),
        (
            "--json",
            "10.0.0.1",
            0,
            "{\"contains\":\"10.0.0.1\",\"network\":\"10.0.0.0/8\",\"result\":true}\n",
        ),
    ] {
        let out = run_nk(
            ["mask", flag, "10.0.0.0/8", "--contains", addr],
            In::Null,
            10.0,
        );
        out.expect_code(code).expect_stdout(said.as_bytes());
    }
    let out = run_nk(["mask", "10.0.0.0/8", "--contains", "10.1"], In::Null, 10.0);
    out.expect_code(2)
        .expect_stderr_contains("nk: --contains: ");
    let out = run_nk(
        ["mask", "--contains", "192.168.1.1"],
        In::Bytes(b"10.0.0.0/8\n192.168.0.0/16\n".to_vec()),
        10.0,
    );
    out.expect_code(0);
}

/// `--merge`: arguments or stdin; comments; one bad item means no output and exit 2, with the
/// line of each bad item.
#[test]
fn merge_aggregates_or_prints_nothing() {
    let out = run_nk(
        ["mask", "--merge"],
        In::Bytes(b"# blocklist\n10.0.0.0/25 10.0.0.128/25 # halves\n10.0.1.7\n\n2001:db8::/33\n2001:db8:8000::/33\n10.0.2.0-10.0.2.255\n".to_vec()),
        10.0,
    );
    out.expect_code(0)
        .expect_stdout(b"10.0.0.0/24\n10.0.1.7/32\n10.0.2.0/24\n2001:db8::/32\n");
    let out = run_nk(
        [
            "mask",
            "--merge",
            "192.168.0.0/24",
            "192.168.1.0/24",
            "--json",
        ],
        In::Null,
        10.0,
    );
    out.expect_code(0)
        .expect_stdout_contains("\"network\":\"192.168.0.0\",\"prefix\":23");
    let out = run_nk(
        ["mask", "--merge"],
        In::Bytes(b"10.0.0.0/24\n10.0.1.0/33\n10.0.2.0 255.255.255.0\n".to_vec()),
        10.0,
    );
    out.expect_code(2)
        .expect_stdout(b"")
        .expect_stderr_contains("nk: line 2: invalid prefix \"/33\"")
        .expect_stderr_contains(
            "nk: line 3: \"10.0.2.0 255.255.255.0\": --merge takes ADDR/NETMASK",
        )
        .expect_stderr_contains(
            "2 item(s) were not networks, addresses or ranges; nothing printed",
        );
}

/// `--split-hosts`: ipcalc -s's plan (largest first from the start, in the order asked, the
/// rest unused), and the requests that do not fit named.
#[test]
fn split_hosts_is_vlsm() {
    let out = run_nk(
        ["mask", "10.0.0.0/24", "--split-hosts", "20,100,50"],
        In::Null,
        10.0,
    );
    out.expect_code(0).expect_stdout(
        b"20 hosts:  10.0.0.192/27  30 usable, 10.0.0.193 - 10.0.0.222\n\
          100 hosts: 10.0.0.0/25    126 usable, 10.0.0.1 - 10.0.0.126\n\
          50 hosts:  10.0.0.128/26  62 usable, 10.0.0.129 - 10.0.0.190\n\
          Needed:    224 of 256 addresses in 10.0.0.0/24\n\
          Unused:    10.0.0.224/27\n",
    );
    let out = run_nk(
        ["mask", "10.0.0.0/25", "--split-hosts", "100,50,20"],
        In::Null,
        10.0,
    );
    out.expect_code(2)
        .expect_stdout(b"")
        .expect_stderr_contains(
            "50 hosts (a /26), 20 hosts (a /27) do not fit in 10.0.0.0/25: the subnets need 224 \
         addresses, it has 128",
        );
    for bad in ["0", "10,,2", "-5", "ten"] {
        let out = run_nk(
            ["mask", "10.0.0.0/24", "--split-hosts", bad],
            In::Null,
            10.0,
        );
        out.expect_code(2)
            .expect_stderr_contains("is not a host count");
    }
    let out = run_nk(
        ["mask", "2001:db8::/48", "--split-hosts", "1000,1", "--json"],
        In::Null,
        10.0,
    );
    out.expect_code(0);
    let objects: Vec<serde_json::Value> = out
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(objects[0]["prefix"], 118);
    assert_eq!(objects[0]["requested_hosts"], "1000");
    assert_eq!(objects[1]["network"], "2001:db8::400");
    assert_eq!(objects[1]["prefix"], 128);
    assert!(objects[2..].iter().all(|o| o["unused"] == true));
}

/// `--random-private`: an RFC 1918 or fd00::/8 network of the prefix asked, not the same twice.
#[test]
fn random_private_networks() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let out = run_nk(["mask", "--random-private", "24", "--json"], In::Null, 10.0);
        out.expect_code(0);
        let value: serde_json::Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
        assert_eq!(value["prefix"], 24);
        assert_eq!(value["kind"], "private (RFC 1918)", "{value}");
        seen.insert(value["network"].to_string());
    }
    assert!(seen.len() > 1, "eight random /24s were all {seen:?}");
    let out = run_nk(
        ["mask", "-6", "--random-private", "48", "--shell"],
        In::Null,
        10.0,
    );
    out.expect_code(0)
        .expect_stdout_contains("NETWORK=fd")
        .expect_stdout_contains("PREFIX=48");
    for bad in [["--random-private", "7"], ["--random-private", "31"]] {
        let out = run_nk(["mask"].iter().chain(&bad), In::Null, 10.0);
        out.expect_code(2).expect_stderr_contains("/8 to /30");
    }
    let out = run_nk(["mask", "-6", "10.0.0.0/8"], In::Null, 10.0);
    out.expect_code(2)
        .expect_stderr_contains("-4 and -6 go with --random-private");
}
