//! A test PKI made by the openssl CLI: a CA and a leaf for localhost / 127.0.0.1 signed by
//! it (no extended key usage, so the leaf serves as a client certificate too).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::require_tool;

/// A CA, and a leaf for localhost / 127.0.0.1 signed by it, in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        require_tool("openssl", "openssl");
        let dir = tempfile::tempdir().expect("tempdir");
        let run = |args: &[&str]| openssl(dir.path(), args);
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
        sign_leaf(
            dir.path(),
            "leaf.pem",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        );
        Pki { dir }
    }

    /// A second leaf signed by the CA with a CN of localhost and no subjectAltName (the kind
    /// TLS clients refuse for every name): (certificate, key) paths. `v3`: with an extension
    /// (basicConstraints), else an X.509 v1 certificate (none at all).
    pub fn cn_only_leaf(&self, v3: bool) -> (PathBuf, PathBuf) {
        let ext = if v3 {
            "basicConstraints=CA:FALSE\n"
        } else {
            ""
        };
        sign_leaf(self.dir.path(), "cn-only.pem", ext);
        (self.path("cn-only.pem"), self.path("leaf.key"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate's path, as an argument.
    pub fn ca(&self) -> String {
        text(&self.path("ca.pem"))
    }

    /// The leaf's certificate and key paths, as arguments.
    pub fn leaf(&self) -> (String, String) {
        (text(&self.path("leaf.pem")), text(&self.path("leaf.key")))
    }

    /// A rustls client configuration trusting the CA only.
    pub fn rustls_client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.path("ca.pem")).expect("read ca.pem") {
            roots.add(cert.expect("ca.pem")).expect("add the CA");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    }

    /// A rustls server configuration with the leaf.
    pub fn rustls_server_config(&self) -> Arc<rustls::ServerConfig> {
        let certs = CertificateDer::pem_file_iter(self.path("leaf.pem"))
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .expect("read leaf.pem");
        let key = PrivateKeyDer::from_pem_file(self.path("leaf.key")).expect("read leaf.key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("leaf certificate and key");
        Arc::new(config)
    }
}

pub fn text(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_string()
}

/// Runs the openssl CLI with `args` in `dir`; panics with its stderr if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Signs the leaf's request (leaf.csr) with the CA into `out`, with the extensions in
/// `extensions` (openssl's extfile lines; none at all makes an X.509 v1 certificate).
fn sign_leaf(dir: &Path, out: &str, extensions: &str) {
    let ext = format!("{out}.ext");
    std::fs::write(dir.join(&ext), extensions).expect("write ext");
    openssl(
        dir,
        &[
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
            out,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}
