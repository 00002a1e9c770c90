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

#[test]
fn mask_agrees_with_python_ipaddress_on_10000_networks() {
    require_python3();
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", ORACLE_PY, env!("CARGO_BIN_EXE_nk")]);
    let out = Proc::spawn("python3 oracle", cmd, In::Null, Out::Pipe).wait(120.0);
    out.expect_code(0);
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
