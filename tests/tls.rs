//! `nk dial --tls` and `nk listen --tls` against each other and against the openssl tools,
//! with a CA and a leaf certificate made by the openssl CLI for each test run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A CA, and a leaf for localhost / 127.0.0.1 signed by it, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=nk test CA",
            ],
        ]
        .concat());
        run(&[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat());
        std::fs::write(
            dir.path().join("ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("write ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn text(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_string()
}

/// `openssl s_server` on a kernel-chosen port with the leaf; its stdin is `greeting`.
fn s_server(pki: &Pki, greeting: &[u8]) -> (Proc, u16) {
    let port = free_port("127.0.0.1");
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-naccept", "1", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-cert",
            &text(&pki.path("leaf.pem")),
            "-key",
            &text(&pki.path("leaf.key")),
        ]);
    let mut server = Proc::spawn("openssl s_server", cmd, In::Pipe, Out::Pipe);
    // s_server says ACCEPT once it listens (connecting to check would use up -naccept 1).
    server.wait_stdout_line(10.0, |l| l.contains("ACCEPT"));
    use std::io::Write;
    server
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(greeting)
        .expect("write greeting");
    (server, port)
}

#[test]
fn nk_dial_tls_to_nk_listen_tls_both_ways() {
    let mut server = Proc::nk(
        ["-v", "listen", "--tls", "127.0.0.1:0"],
        In::Bytes(b"from the server\n".to_vec()),
        Out::Pipe,
    );
    let port = server.nk_listening_port();
    let client = run_nk(
        [
            "dial",
            "--tls",
            "--insecure",
            "127.0.0.1",
            &port.to_string(),
        ],
        In::Bytes(b"from the client\n".to_vec()),
        10.0,
    );
    client.expect_code(0).expect_stdout(b"from the server\n");
    client.expect_stderr_contains("--insecure");
    let server = server.wait(10.0);
    server.expect_code(0).expect_stdout(b"from the client\n");
    server.expect_stderr_contains("self-signed, made for this run");
}

#[test]
fn nk_dial_tls_verifies_openssl_s_server_with_the_ca() {
    let pki = Pki::new();
    let (server, port) = s_server(&pki, b"hello from s_server\n");
    let client = run_nk(
        [
            "-v",
            "dial",
            "--tls",
            "--ca",
            &text(&pki.path("ca.pem")),
            "localhost",
            &port.to_string(),
        ],
        In::Bytes(b"hello from nk\n".to_vec()),
        10.0,
    );
    client
        .expect_code(0)
        .expect_stdout(b"hello from s_server\n");
    client.expect_stderr_contains("TLS 1.3");
    let server = server.wait(10.0);
    assert!(
        server.stdout_text().contains("hello from nk"),
        "{}",
        server.describe()
    );
}

#[test]
fn openssl_s_client_reaches_nk_listen_tls_with_a_given_certificate() {
    let pki = Pki::new();
    let mut server = Proc::nk(
        [
            "-v",
            "listen",
            "--tls",
            "--cert",
            &text(&pki.path("leaf.pem")),
            "--key",
            &text(&pki.path("leaf.key")),
            "127.0.0.1:0",
        ],
        In::Bytes(b"hello from nk\n".to_vec()),
        Out::Pipe,
    );
    let port = server.nk_listening_port();
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-quiet",
        "-verify_return_error",
        "-CAfile",
        &text(&pki.path("ca.pem")),
        "-servername",
        "localhost",
        "-connect",
    ])
    .arg(format!("127.0.0.1:{port}"));
    let client = Proc::spawn(
        "openssl s_client",
        cmd,
        In::Bytes(b"hello from s_client\n".to_vec()),
        Out::Pipe,
    )
    .wait(10.0);
    assert!(
        client.stdout_text().contains("hello from nk"),
        "{}",
        client.describe()
    );
    let server = server.wait(10.0);
    server.expect_code(0);
    assert!(
        server.stdout_text().contains("hello from s_client"),
        "{}",
        server.describe()
    );
}

#[test]
fn an_unknown_ca_fails_with_the_reason_and_insecure_passes() {
    let pki = Pki::new();
    let (_server, port) = s_server(&pki, b"");
    let out = run_nk(
        ["dial", "--tls", "localhost", &port.to_string()],
        In::Null,
        10.0,
    );
    out.expect_code(1).expect_stdout(b"");
    out.expect_stderr_contains("unknown issuer")
        .expect_stderr_contains("hint: ");

    let (_server, port) = s_server(&pki, b"insecure but here\n");
    let out = run_nk(
        [
            "dial",
            "--tls",
            "--insecure",
            "localhost",
            &port.to_string(),
        ],
        In::Null,
        10.0,
    );
    out.expect_code(0).expect_stdout(b"insecure but here\n");
}

#[test]
fn a_wrong_host_name_fails_with_the_reason() {
    let pki = Pki::new();
    let (_server, port) = s_server(&pki, b"");
    let out = run_nk(
        [
            "dial",
            "--tls",
            "--ca",
            &text(&pki.path("ca.pem")),
            "--sni",
            "wrong.example",
            "127.0.0.1",
            &port.to_string(),
        ],
        In::Null,
        10.0,
    );
    out.expect_code(1).expect_stderr_contains("name mismatch");
}

#[test]
fn tls_usage_errors_exit_2() {
    for args in [
        vec!["dial", "--ca", "/nonexistent", "127.0.0.1", "1"],
        vec!["dial", "--tls", "--ca", "/nonexistent", "127.0.0.1", "1"],
        vec!["listen", "--tls", "--cert", "/nonexistent", "0"],
    ] {
        let out = run_nk(&args, In::Null, 10.0);
        out.expect_code(2);
    }
}
