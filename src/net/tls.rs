//! TLS for the stream commands (`dial --tls`, `listen --tls`): rustls 0.23 with the ring
//! backend, used synchronously over our own sockets.
//!
//! The relay works on file descriptors (poll, splice, half-close through shutdown(2)), so
//! TLS is not threaded through it. After the handshake, a pump thread joins the TLS
//! connection to one end of a Unix socketpair and the relay runs unchanged on the other end:
//! plaintext in the pair, records on the wire. A half-close crosses the bridge both ways:
//! EOF on the plaintext side becomes close_notify and a TCP FIN; the peer's close_notify (or
//! FIN) becomes EOF on the plaintext side. Decrypted bytes wait in a buffer of at most
//! [`PLAINTEXT_CAP`] bytes: while it is full no more records are read, so a slow reader
//! pushes back on the peer instead of growing memory.
//!
//! The bridge holds bytes the command has already "sent": when the command ends, [`finish`]
//! lets every pump push out what it was given, send close_notify and stop, before the
//! process exits (a plain TCP socket leaves that to the kernel; here it is ours to do).
//!
//! Trust: the system store (rustls-native-certs, which honours SSL_CERT_FILE and
//! SSL_CERT_DIR), then webpki-roots; `--ca FILE` trusts that file's certificates only;
//! `--insecure` checks nothing and says so. Verification failures are reported with their
//! reason (unknown issuer, name mismatch, expired) and a hint.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, Connection, DigitallySignedStruct,
    RootCertStore, ServerConfig, ServerConnection, SignatureScheme,
};
use socket2::{Domain, Socket, Type};

use crate::exit::{usage, Hinted};
use crate::net::deadline::Deadline;
use crate::net::relay::{Delivery, SplitStream};

/// The most decrypted bytes held for the plaintext side.
pub const PLAINTEXT_CAP: usize = 256 * 1024;

/// How long a handshake may take unless the command says otherwise.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// `--tls-min` and `--ciphers`: what either side offers (ncat's --ssl-ciphers, socat's
/// min-proto-version).
#[derive(Debug, Clone, Default)]
pub struct ProtocolOptions {
    /// `--tls-min 1.3`: refuse TLS 1.2.
    pub tls13_only: bool,
    /// `--ciphers LIST`: only these cipher suites, by IANA, rustls or OpenSSL name.
    pub ciphers: Vec<String>,
}

impl ProtocolOptions {
    /// The ring provider with only the cipher suites asked for (a usage error names the ones
    /// there are when a name matches none).
    fn provider(&self) -> Result<Arc<CryptoProvider>> {
        let mut provider = rustls::crypto::ring::default_provider();
        if self.ciphers.is_empty() {
            return Ok(Arc::new(provider));
        }
        let mut chosen: Vec<rustls::SupportedCipherSuite> = Vec::new();
        for name in &self.ciphers {
            let Some(suite) = provider
                .cipher_suites
                .iter()
                .find(|s| suite_is_named(&format!("{:?}", s.suite()), name))
            else {
                let known: Vec<String> = provider
                    .cipher_suites
                    .iter()
                    .map(|s| format!("{:?}", s.suite()))
                    .collect();
                return Err(usage(format!(
                    "--ciphers: unknown cipher suite \"{name}\" (nk has {})",
                    known.join(", ")
                )));
            };
            if !chosen.iter().any(|c| c.suite() == suite.suite()) {
                chosen.push(*suite);
            }
        }
        provider.cipher_suites = chosen;
        Ok(Arc::new(provider))
    }

    /// The protocol versions offered.
    fn versions(&self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        if self.tls13_only {
            TLS13_ONLY
        } else {
            rustls::DEFAULT_VERSIONS
        }
    }
}

/// Whether `name` (as a user writes it: IANA `TLS_AES_128_GCM_SHA256`, rustls
/// `TLS13_AES_128_GCM_SHA256`, OpenSSL `ECDHE-RSA-AES128-GCM-SHA256`, any case) names the suite
/// rustls calls `rustls_name`. Both are reduced to their algorithms, joined.
fn suite_is_named(rustls_name: &str, name: &str) -> bool {
    fn reduce(text: &str) -> String {
        let upper = text.to_ascii_uppercase().replace('-', "_");
        let bare = upper
            .strip_prefix("TLS13_")
            .or_else(|| upper.strip_prefix("TLS_"))
            .unwrap_or(&upper);
        bare.replace("_WITH_", "_").replace('_', "")
    }
    let (ours, theirs) = (reduce(rustls_name), reduce(name));
    // OpenSSL leaves the hash out of its CHACHA20 names (ECDHE-RSA-CHACHA20-POLY1305).
    !theirs.is_empty() && (ours == theirs || ours == format!("{theirs}SHA256"))
}

/// What `dial --tls` asks for.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// `--ca FILE`: trust only these certificates.
    pub ca: Option<String>,
    /// `--insecure`: check nothing.
    pub insecure: bool,
    /// `--alpn LIST`.
    pub alpn: Vec<String>,
    /// `--cert FILE` / `--key FILE`: a client certificate.
    pub cert: Option<String>,
    /// See `cert`.
    pub key: Option<String>,
    /// `--tls-min`, `--ciphers`.
    pub protocol: ProtocolOptions,
    /// For an `https://` proxy (`--proxy-ca`, `--proxy-insecure`): the warning names those.
    pub for_proxy: bool,
}

fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| usage(format!("read certificates from {path}: {e}")))?;
    if certs.is_empty() {
        return Err(usage(format!("{path} holds no PEM certificate")));
    }
    Ok(certs)
}

fn load_key(path: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        // rustls-pki-types skips encrypted keys and then finds "no items": say what it is.
        let text = std::fs::read(path).unwrap_or_default();
        let encrypted = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
        if encrypted(b"ENCRYPTED PRIVATE KEY") || encrypted(b"Proc-Type: 4,ENCRYPTED") {
            return anyhow::Error::new(
                crate::exit::UsageError::new(format!(
                    "{path} holds an encrypted private key, and nk cannot ask for its passphrase"
                ))
                .with_hint(format!(
                    "decrypt it once: openssl pkey -in {path} -out key.pem"
                )),
            );
        }
        usage(format!("read a private key from {path}: {e}"))
    })
}

/// A certificate/key pair rustls refused, in words.
fn pair_refused(cert: &str, key: &str, err: rustls::Error) -> anyhow::Error {
    match err {
        rustls::Error::InconsistentKeys(_) => usage(format!(
            "--cert {cert} and --key {key} do not match: the key is not the certificate's"
        )),
        other => usage(format!(
            "--cert {cert} / --key {key}: {}",
            in_words(&other, "").0
        )),
    }
}

/// The client configuration the options ask for (files are read now: a bad one is a usage
/// error before any traffic).
pub fn client_config(opts: &ClientOptions) -> Result<Arc<ClientConfig>> {
    let provider = opts.protocol.provider()?;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(opts.protocol.versions())
        .map_err(|e| usage(format!("--tls-min / --ciphers: {e}")))?;
    let builder = if opts.insecure {
        match opts.for_proxy {
            true => crate::log::warn(format_args!(
                "--proxy-insecure: the proxy's certificate is not checked; anyone on the path to the proxy can read and change this connection"
            )),
            false => crate::log::warn(format_args!(
                "--insecure: the server's certificate is not checked; anyone on the path can read and change this connection"
            )),
        }
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        match &opts.ca {
            Some(path) => {
                let given = load_certs(path)?;
                for cert in &given {
                    roots
                        .add(cert.clone())
                        .map_err(|e| usage(format!("--ca {path}: {e}")))?;
                }
                let webpki = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|e| usage(format!("--ca {path}: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(CaFileVerifier { webpki, given }))
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(native.certs);
                crate::debug!("{added} certificates from the system store");
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                builder.with_root_certificates(roots)
            }
        }
    };
    let mut config = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| pair_refused(cert, key, e))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(usage("--cert and --key go together")),
    };
    config.alpn_protocols = opts.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// `--ca FILE`: the usual chain check against the file's certificates, and one thing more, as
/// curl and swaks (OpenSSL) do: a server certificate that is byte for byte one of those given
/// is trusted as itself, even when it is a CA certificate (`openssl req -x509` makes those) that
/// webpki refuses as an end entity. Its name and its validity dates are still checked.
#[derive(Debug)]
struct CaFileVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    given: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if verdict.is_ok() || !is_one_of(&self.given, end_entity) {
            return verdict;
        }
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        check_dates(end_entity, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `--ca FILE` on a listener: [`CaFileVerifier`]'s rule for client certificates. A client
/// certificate that is byte for byte one of those given is trusted as itself (within its
/// dates), as socat's `verify=1,cafile=` and ncat's `--ssl-trustfile` trust a self-signed
/// client certificate made by `openssl req -x509` (a CA certificate to webpki).
#[derive(Debug)]
struct CaFileClientVerifier {
    webpki: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    given: Vec<CertificateDer<'static>>,
}

impl rustls::server::danger::ClientCertVerifier for CaFileClientVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verdict = self
            .webpki
            .verify_client_cert(end_entity, intermediates, now);
        if verdict.is_ok() || !is_one_of(&self.given, end_entity) {
            return verdict;
        }
        check_dates(end_entity, now)?;
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether `cert` is byte for byte one of the `--ca` file's certificates (trusted as itself).
fn is_one_of(given: &[CertificateDer<'static>], cert: &CertificateDer<'_>) -> bool {
    given.iter().any(|c| c.as_ref() == cert.as_ref())
}

/// The validity dates of a certificate trusted as itself, read by our own DER reader.
fn check_dates(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let bad = |e: CertificateError| rustls::Error::InvalidCertificate(e);
    let summary = crate::wire::x509::summarize(cert.as_ref())
        .map_err(|_| bad(CertificateError::BadEncoding))?;
    let seconds = |text: &str| {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S UTC")
            .map(|t| t.and_utc().timestamp())
            .map_err(|_| bad(CertificateError::BadEncoding))
    };
    let now = now.as_secs() as i64;
    if now < seconds(&summary.not_before)? {
        return Err(bad(CertificateError::NotValidYet));
    }
    if now > seconds(&summary.not_after)? {
        return Err(bad(CertificateError::Expired));
    }
    Ok(())
}

/// `--insecure`: signatures are still checked (the handshake needs them), the certificate
/// chain and name are not.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server configuration: the given certificate and key, or an ephemeral self-signed
/// certificate for localhost, 127.0.0.1 and ::1. Returns the certificate's SHA-256
/// fingerprint too, for `-v`.
pub fn server_config(
    cert: Option<&str>,
    key: Option<&str>,
    alpn: &[String],
    client_ca: Option<&str>,
    protocol: &ProtocolOptions,
) -> Result<(Arc<ServerConfig>, String)> {
    let key_path = key;
    let (chain, key) = match (cert, key) {
        (Some(cert), Some(key)) => (load_certs(cert)?, load_key(key)?),
        (None, None) => {
            let names = vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ];
            let generated = rcgen::generate_simple_self_signed(names)
                .context("make a self-signed certificate")?;
            let der = CertificateDer::from(generated.cert.der().to_vec());
            let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
                .map_err(|e| anyhow!("the generated key: {e}"))?;
            (vec![der], key)
        }
        _ => return Err(usage("--cert and --key go together")),
    };
    let fingerprint = fingerprint(&chain[0]);
    let provider = protocol.provider()?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(protocol.versions())
        .map_err(|e| usage(format!("--tls-min / --ciphers: {e}")))?;
    let builder = match client_ca {
        // Every client must present a certificate signed by one of these (ncat
        // --ssl-verify on a listener; socat's verify=1 with cafile).
        Some(path) => {
            let given = load_certs(path)?;
            let mut roots = RootCertStore::empty();
            for cert in &given {
                roots
                    .add(cert.clone())
                    .map_err(|e| usage(format!("--ca {path}: {e}")))?;
            }
            let webpki = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| usage(format!("--ca {path}: {e}")))?;
            builder.with_client_cert_verifier(Arc::new(CaFileClientVerifier { webpki, given }))
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        pair_refused(
            cert.unwrap_or("(generated)"),
            key_path.unwrap_or("(generated)"),
            e,
        )
    })?;
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // nk never resumes sessions, and a TLS 1.3 ticket a send-only client never reads turns
    // its close into a reset that destroys data still in flight toward us.
    config.send_tls13_tickets = 0;
    Ok((Arc::new(config), fingerprint))
}

/// SHA-256 of a certificate as `AB:CD:...` (openssl x509 -fingerprint -sha256's form). The
/// hash comes from the ring provider rustls already carries (its TLS 1.3 SHA-256 suite).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = match rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256 {
        rustls::SupportedCipherSuite::Tls13(suite) => {
            suite.common.hash_provider.hash(cert.as_ref())
        }
        rustls::SupportedCipherSuite::Tls12(suite) => {
            suite.common.hash_provider.hash(cert.as_ref())
        }
    };
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The TLS error behind an I/O error, in words, with a hint for the fixable ones. `server`:
/// we are the server, so the peer is a client.
pub fn explain(err: io::Error, peer: &str, name: &str, server: bool) -> anyhow::Error {
    let tls = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .cloned();
    let Some(tls) = tls else {
        if crate::net::deadline::is_timeout(&err) {
            return anyhow!("TLS handshake with {peer}: timed out");
        }
        let how = match err.kind() {
            io::ErrorKind::UnexpectedEof => "closed",
            io::ErrorKind::ConnectionReset => "reset",
            _ => return anyhow::Error::new(err).context(format!("TLS handshake with {peer}")),
        };
        return cut_short(peer, how);
    };
    let (reason, hint) = match (&tls, server) {
        // We are the server: it is the client that spoke something else.
        (rustls::Error::InvalidMessage(_), true) => (
            "the client does not speak TLS (plain text, perhaps)".to_string(),
            "the client must use TLS: nk dial --tls, ncat --ssl, openssl s_client".to_string(),
        ),
        // We are the server: the client refused our certificate, not its own.
        (
            rustls::Error::AlertReceived(
                alert @ (rustls::AlertDescription::UnknownCA
                | rustls::AlertDescription::BadCertificate
                | rustls::AlertDescription::CertificateUnknown),
            ),
            true,
        ) => (
            format!(
                "the client refused our certificate: {}",
                debug_in_words(alert)
            ),
            "the client must trust the CA of --cert (curl --cacert, nk --ca, ncat --ssl-trustfile), \
             or skip the check (curl -k, nk --insecure)"
                .to_string(),
        ),
        _ => in_words(&tls, name),
    };
    let message = format!("TLS handshake with {peer}: {reason}");
    if hint.is_empty() {
        anyhow!(message)
    } else {
        anyhow::Error::new(Hinted { message, hint })
    }
}

/// The peer `how` ("closed", "reset") the connection during the handshake: most often it
/// refused what was offered without saying so in an alert.
pub fn cut_short(peer: &str, how: &str) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: format!("TLS handshake with {peer}: the peer {how} the connection"),
        hint: "it may refuse the TLS versions or cipher suites offered (--tls-min, --ciphers, \
               a client certificate), or not speak TLS on this port"
            .into(),
    })
}

/// A rustls error in words, with a hint where the user can fix it: never a Rust debug value.
fn in_words(err: &rustls::Error, name: &str) -> (String, String) {
    let (reason, hint): (String, &str) = match err {
        rustls::Error::InvalidCertificate(cert) => {
            let (what, hint) = certificate_in_words(cert, name);
            (format!("certificate verify failed: {what}"), hint)
        }
        rustls::Error::InvalidMessage(_) => (
            "the answer is not TLS".into(),
            "the service on this port may speak plain text (try without TLS, or http://)",
        ),
        rustls::Error::AlertReceived(alert) => {
            let hint = match alert {
                rustls::AlertDescription::CertificateRequired => {
                    "the server wants a client certificate: give --cert FILE --key FILE"
                }
                rustls::AlertDescription::HandshakeFailure
                | rustls::AlertDescription::ProtocolVersion
                | rustls::AlertDescription::InsufficientSecurity => {
                    "the server may only accept TLS versions or cipher suites nk does not offer"
                }
                rustls::AlertDescription::UnknownCA
                | rustls::AlertDescription::BadCertificate
                | rustls::AlertDescription::CertificateUnknown => {
                    "the server refused our client certificate (--cert)"
                }
                rustls::AlertDescription::NoApplicationProtocol => {
                    "the server speaks none of the --alpn protocols offered"
                }
                _ => "",
            };
            (
                format!("the peer sent a fatal alert: {}", debug_in_words(alert)),
                hint,
            )
        }
        rustls::Error::NoApplicationProtocol => (
            "no application protocol (ALPN) in common".into(),
            "change or drop --alpn",
        ),
        rustls::Error::PeerIncompatible(why) => (
            format!("the peer is incompatible: {}", debug_in_words(why)),
            "",
        ),
        rustls::Error::PeerMisbehaved(why) => (
            format!("the peer broke the TLS protocol: {}", debug_in_words(why)),
            "",
        ),
        other => (debug_in_words(other), ""),
    };
    (reason, hint.to_string())
}

/// Why a certificate was refused, in words, and the hint.
fn certificate_in_words(err: &CertificateError, name: &str) -> (String, &'static str) {
    let skip = "--insecure skips the check";
    match err {
        CertificateError::UnknownIssuer => (
            "unknown issuer (not signed by a trusted CA)".into(),
            "trust its CA with --ca FILE, or skip the check with --insecure",
        ),
        // A certificate with a CN and no subjectAltName names no host at all for a TLS
        // client (RFC 6125, and browsers since 2017): "not for NAME" alone would send the
        // user looking for a typo in a name that is right.
        CertificateError::NotValidForNameContext { presented, .. } if presented.is_empty() => (
            format!(
                "name mismatch: the certificate names no host in subjectAltName (a CN-only \
                 certificate; TLS clients ignore the CN), so it is not for {name}"
            ),
            "reissue it with a subjectAltName (openssl: -addext subjectAltName=DNS:NAME), \
             or --insecure skips the check",
        ),
        CertificateError::NotValidForNameContext { presented, .. } => (
            format!(
                "name mismatch: the certificate is for {}, not {name}",
                presented_names(presented)
            ),
            "connect by a name the certificate carries, or give it with --sni NAME",
        ),
        CertificateError::NotValidForName => (
            format!("name mismatch (the certificate is not for {name})"),
            "connect by the name the certificate carries, or give it with --sni NAME",
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            "the certificate has expired".into(),
            "check the server's certificate (and this machine's clock); --insecure skips the check",
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            "the certificate is not valid yet".into(),
            "check this machine's clock; --insecure skips the check",
        ),
        CertificateError::BadSignature => ("a signature in the chain is wrong".into(), skip),
        CertificateError::Revoked => ("the certificate has been revoked".into(), skip),
        CertificateError::BadEncoding => ("the certificate cannot be parsed".into(), skip),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => (
            "the certificate is not meant for a TLS server (extended key usage)".into(),
            skip,
        ),
        CertificateError::Other(other) if format!("{other:?}").contains("UnsupportedCertVersion") => (
            "the certificate is X.509 v1 (no extensions, so no subjectAltName); TLS needs v3".into(),
            "reissue it with extensions (openssl x509 -req ... -extfile with a subjectAltName), \
             or --insecure skips the check",
        ),
        CertificateError::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => (
            "the peer's certificate is a CA certificate, not an end entity's".into(),
            "give that very certificate with --ca FILE to trust it as itself, or --insecure",
        ),
        other => (debug_in_words(other), skip),
    }
}

/// The names a peer's certificate carries, for an error line: at most [`NAMES_SHOWN`] of
/// them, each escaped (they are the peer's bytes: no control character reaches the terminal)
/// and cut at 100 characters. Public for its fuzz target.
pub fn presented_names(names: &[String]) -> String {
    const NAMES_SHOWN: usize = 4;
    let mut shown: Vec<String> = names
        .iter()
        .take(NAMES_SHOWN)
        .map(|name| {
            // webpki gives them in its debug form: `DnsName("a.test")`, `IpAddress(10.0.0.1)`.
            let bare = ["DnsName(\"", "IpAddress(", "UniformResourceIdentifier(\""]
                .iter()
                .find_map(|head| name.strip_prefix(head))
                .map_or(name.as_str(), |rest| {
                    rest.trim_end_matches(')').trim_end_matches('"')
                });
            bare.chars()
                .take(100)
                .flat_map(char::escape_debug)
                .collect()
        })
        .collect();
    if names.len() > NAMES_SHOWN {
        shown.push(format!("{} more", names.len() - NAMES_SHOWN));
    }
    shown.join(", ")
}

/// A Rust debug value (`Other(OtherError(CaUsedAsEndEntity))`) as lower-case words
/// (`ca used as end entity`): the fallback for the errors no arm above names.
fn debug_in_words(value: &dyn std::fmt::Debug) -> String {
    let text = format!("{value:?}");
    // The innermost name says the most: `Other(OtherError(X))` -> `X`.
    let inner = text
        .rsplit('(')
        .next()
        .unwrap_or(&text)
        .trim_end_matches(')');
    let inner = if inner.chars().any(char::is_alphabetic) {
        inner
    } else {
        &text
    };
    // Split the camel case into words; a run of capitals is an acronym and keeps its case
    // (`UnknownPSKIdentity` -> `unknown PSK identity`, `UnknownCA` -> `unknown CA`).
    let chars: Vec<char> = inner.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            words.extend((!word.is_empty()).then(|| std::mem::take(&mut word)));
            continue;
        }
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        let starts = c.is_uppercase()
            && (prev.is_some_and(char::is_lowercase)
                || (prev.is_some_and(char::is_uppercase)
                    && next.is_some_and(|n| n.is_lowercase())));
        if starts && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        word.push(c);
    }
    words.extend((!word.is_empty()).then_some(word));
    words
        .iter()
        .map(|w| {
            if w.chars().count() > 1 && w.chars().all(|c| !c.is_lowercase()) {
                w.clone()
            } else {
                w.to_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the handshake to its end, within `limit` in all (a peer dripping bytes cannot stretch
/// it).
fn handshake(
    conn: &mut Connection,
    tcp: &mut TcpStream,
    peer: &str,
    name: &str,
    limit: HandshakeLimit,
) -> Result<()> {
    let deadline = Deadline::at(limit.until);
    let server = matches!(conn, Connection::Server(_));
    let timed_out = || {
        anyhow!(
            "TLS handshake with {peer}: timed out after {}",
            crate::net::deadline::format_duration(limit.stated)
        )
    };
    let fail = |err: io::Error| match crate::net::deadline::is_timeout(&err) {
        true => timed_out(),
        false => explain(err, peer, name, server),
    };
    let bound = |tcp: &TcpStream| -> Result<()> {
        let left = deadline.remaining().map_err(|_| timed_out())?;
        tcp.set_read_timeout(left).context("set the read timeout")?;
        tcp.set_write_timeout(left).context("set the write timeout")
    };
    // One read or write at a time, each given only what is left of the deadline: rustls's
    // complete_io loops over many reads under one socket timeout, which a peer dripping a
    // byte at a time could stretch far past the limit.
    while conn.is_handshaking() {
        while conn.wants_write() {
            bound(tcp)?;
            conn.write_tls(tcp).map_err(fail)?;
        }
        if !conn.is_handshaking() {
            break;
        }
        if !conn.wants_read() {
            return Err(anyhow!("TLS handshake with {peer}: stalled"));
        }
        bound(tcp)?;
        match conn.read_tls(tcp) {
            Ok(0) => return Err(cut_short(peer, "closed")),
            Ok(_) => {
                if let Err(err) = conn.process_new_packets() {
                    // Let the peer know why, when there is an alert to send.
                    let _ = conn.write_tls(tcp);
                    let err = io::Error::new(io::ErrorKind::InvalidData, err);
                    return Err(explain(err, peer, name, server));
                }
            }
            Err(err) => return Err(fail(err)),
        }
    }
    while conn.wants_write() {
        bound(tcp)?;
        conn.write_tls(tcp).map_err(fail)?;
    }
    tcp.set_read_timeout(None)
        .context("clear the read timeout")?;
    tcp.set_write_timeout(None)
        .context("clear the write timeout")?;
    for line in describe(conn).lines() {
        crate::info!("{line}");
    }
    Ok(())
}

/// `TLS 1.3, TLS13_AES_256_GCM_SHA384, ALPN h2`, and a line on the peer's certificate.
fn describe(conn: &Connection) -> String {
    let peer = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| format!("\n{}", describe_certificate(cert)))
        .unwrap_or_default();
    format!("{}{peer}", summary(conn))
}

/// `TLS 1.3, TLS13_AES_256_GCM_SHA384, ALPN h2`: what the handshake settled on.
pub fn summary(conn: &Connection) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "TLS".to_string(),
    };
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let alpn = conn
        .alpn_protocol()
        .map(|p| format!(", ALPN {}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    format!("{version}, {suite}{alpn}")
}

/// `peer certificate: subject CN=..., issuer CN=..., valid FROM to UNTIL, SHA-256 AB:...`.
/// A certificate our reader cannot take apart still gets its fingerprint (rustls has
/// accepted it, or --insecure is on).
fn describe_certificate(cert: &CertificateDer<'_>) -> String {
    let details = match crate::wire::x509::summarize(cert.as_ref()) {
        Ok(c) => format!(
            "subject {}, issuer {}, valid {} to {}, ",
            c.subject, c.issuer, c.not_before, c.not_after
        ),
        Err(e) => format!("({e}), "),
    };
    format!("peer certificate: {details}SHA-256 {}", fingerprint(cert))
}

/// Client side: handshake with `host` over `tcp` (within `limit`), then the plaintext end of
/// the bridge.
pub fn connect(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    host: &str,
    peer: &str,
    limit: impl Into<HandshakeLimit>,
) -> Result<Bridge> {
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        usage(format!(
            "\"{host}\" is not a name TLS can verify (give --sni NAME)"
        ))
    })?;
    let conn = ClientConnection::new(config, name).context("start TLS")?;
    start(Connection::Client(conn), tcp, peer, host, limit.into())
}

/// When a handshake must be over, and the duration to name when it is not (a `-w` that also
/// covered connecting names the whole `-w`).
#[derive(Debug, Clone, Copy)]
pub struct HandshakeLimit {
    /// The instant the handshake must be over by.
    pub until: Instant,
    /// The bound the user was promised, for the timeout message.
    pub stated: Duration,
}

impl From<Duration> for HandshakeLimit {
    fn from(limit: Duration) -> HandshakeLimit {
        HandshakeLimit {
            until: Instant::now() + limit,
            stated: limit,
        }
    }
}

/// Server side: handshake with a client over `tcp` (within [`HANDSHAKE_TIMEOUT`]), then the
/// plaintext end of the bridge.
pub fn accept(tcp: TcpStream, config: Arc<ServerConfig>, peer: &str) -> Result<Bridge> {
    let conn = ServerConnection::new(config).context("start TLS")?;
    start(
        Connection::Server(conn),
        tcp,
        peer,
        peer,
        HANDSHAKE_TIMEOUT.into(),
    )
}

/// A running pump: dropping `finish` tells it the command is over.
struct Pump {
    peer: String,
    handle: JoinHandle<()>,
    /// Dropped when the command is over.
    finish: Option<UnixStream>,
    failure: Arc<Failure>,
}

/// Every pump not known to have ended, for [`finish`].
static PUMPS: Mutex<Vec<Pump>> = Mutex::new(Vec::new());

/// How long [`finish`] waits for the bridges to deliver what they were given.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

fn start(
    mut conn: Connection,
    mut tcp: TcpStream,
    peer: &str,
    name: &str,
    limit: HandshakeLimit,
) -> Result<Bridge> {
    handshake(&mut conn, &mut tcp, peer, name, limit)?;
    let peer_subject = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| crate::wire::x509::summarize(cert.as_ref()).ok())
        .map(|summary| summary.subject);
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let (ours, mut theirs) =
        Socket::pair(Domain::UNIX, Type::STREAM, None).context("socketpair")?;
    let (finish, finish_rx) = UnixStream::pair().context("socketpair")?;
    let failure = Arc::new(Failure::default());
    let pump_failure = Arc::clone(&failure);
    let thread_peer = peer.to_string();
    let handle = thread::Builder::new()
        .name("tls".into())
        .spawn(move || {
            if let Err(err) = pump(conn, tcp, &mut theirs, finish_rx) {
                // Recorded before the plaintext end closes, so whoever sees that EOF can
                // ask whether it was a failure.
                pump_failure.set(format!(
                    "TLS with {thread_peer}: {}",
                    describe_failure(&err)
                ));
            }
            drop(theirs);
        })
        .context("start the TLS thread")?;
    let mut pumps = PUMPS.lock().unwrap_or_else(|e| e.into_inner());
    pumps.retain(|p| !p.handle.is_finished());
    pumps.push(Pump {
        peer: peer.to_string(),
        handle,
        finish: Some(finish),
        failure: Arc::clone(&failure),
    });
    Ok(Bridge {
        socket: ours,
        failure,
        peer_subject,
        alpn,
    })
}

/// A pump's failure (a reset, a fatal alert), kept until someone reports it.
#[derive(Debug, Default)]
struct Failure {
    message: Mutex<Option<String>>,
    /// Already reported through the relay: [`finish`] need not say it again.
    reported: std::sync::atomic::AtomicBool,
}

impl Failure {
    fn set(&self, message: String) {
        *self.message.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }

    /// The failure as an I/O error (a reset, for the relay's rules), marking it reported.
    fn take(&self) -> Option<io::Error> {
        let message = self
            .message
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        self.reported
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Some(io::Error::new(io::ErrorKind::ConnectionReset, message))
    }

    /// The failure nobody has reported yet.
    fn unreported(&self) -> Option<String> {
        if self.reported.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        self.message
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What the pump's error means to the user: a reset, an alert, or the error itself.
fn describe_failure(err: &io::Error) -> String {
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return failure_in_words(tls);
    }
    match err.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            format!("the peer reset the connection; data in flight was lost ({err})")
        }
        _ => err.to_string(),
    }
}

/// A TLS failure after the handshake (a fatal alert, a bad record), in words, with its hint
/// in brackets.
pub fn failure_in_words(err: &rustls::Error) -> String {
    let (reason, hint) = in_words(err, "the server");
    match hint.is_empty() {
        true => reason,
        false => format!("{reason} ({hint})"),
    }
}

/// A served connection's stream: the accepted socket itself, or the plaintext side of its
/// TLS bridge (`listen --tls`), so one relay serves both.
#[derive(Debug)]
pub enum MaybeTls {
    /// A connection without TLS.
    Plain(Arc<Socket>),
    /// The plaintext side of a TLS connection.
    Tls(Bridge),
}

impl MaybeTls {
    /// The subject of the TLS peer's certificate, if there is TLS and it presented one.
    pub fn peer_subject(&self) -> Option<&str> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(bridge) => bridge.peer_subject(),
        }
    }
}

impl std::os::fd::AsFd for MaybeTls {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            MaybeTls::Plain(socket) => socket.as_fd(),
            MaybeTls::Tls(bridge) => bridge.as_fd(),
        }
    }
}

impl SplitStream for MaybeTls {
    fn read_shared(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(socket) => socket.read_shared(buf),
            MaybeTls::Tls(bridge) => bridge.read_shared(buf),
        }
    }
    fn write_shared(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(socket) => socket.write_shared(buf),
            MaybeTls::Tls(bridge) => bridge.write_shared(buf),
        }
    }
    fn shutdown_stream(&self, how: std::net::Shutdown) -> io::Result<()> {
        match self {
            MaybeTls::Plain(socket) => socket.shutdown_stream(how),
            MaybeTls::Tls(bridge) => bridge.shutdown_stream(how),
        }
    }
    fn pending_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            MaybeTls::Plain(socket) => socket.pending_error(),
            MaybeTls::Tls(bridge) => bridge.pending_error(),
        }
    }
    fn failure(&self) -> Option<io::Error> {
        match self {
            MaybeTls::Plain(socket) => socket.failure(),
            MaybeTls::Tls(bridge) => bridge.failure(),
        }
    }
    fn delivery(&self) -> Delivery {
        match self {
            MaybeTls::Plain(socket) => socket.delivery(),
            MaybeTls::Tls(bridge) => bridge.delivery(),
        }
    }
}

/// The plaintext side of a TLS connection: a socket the relay, head and smtp use as they
/// would a TCP connection, plus what the pump behind it reports. A reset or a fatal alert
/// on the TLS side reaches the plaintext side as an EOF (a socketpair has no reset), so the
/// relay asks [`SplitStream::failure`] before calling an EOF clean.
#[derive(Debug)]
pub struct Bridge {
    socket: Socket,
    failure: Arc<Failure>,
    /// The subject of the certificate the peer presented (a client's with `listen --ca`).
    peer_subject: Option<String>,
    /// The protocol ALPN settled on, if any (`head --http2` speaks h2 only when it is h2).
    alpn: Option<Vec<u8>>,
}

impl Bridge {
    /// The protocol the handshake's ALPN chose, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }

    /// The subject of the peer's certificate, if it presented one (NK_TLS_PEER_SUBJECT).
    pub fn peer_subject(&self) -> Option<&str> {
        self.peer_subject.as_deref()
    }

    /// The plaintext socket alone (head and smtp check their own replies for completeness).
    pub fn into_socket(self) -> Socket {
        self.socket
    }
}

impl std::os::fd::AsFd for Bridge {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl SplitStream for Bridge {
    fn read_shared(&self, buf: &mut [u8]) -> io::Result<usize> {
        match (&self.socket).read(buf)? {
            0 => self.failure.take().map_or(Ok(0), Err),
            n => Ok(n),
        }
    }
    fn write_shared(&self, buf: &[u8]) -> io::Result<usize> {
        (&self.socket)
            .write(buf)
            .map_err(|e| self.failure.take().unwrap_or(e))
    }
    fn shutdown_stream(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.socket.shutdown(how)
    }
    fn pending_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }
    fn failure(&self) -> Option<io::Error> {
        self.failure.take()
    }
    fn delivery(&self) -> Delivery {
        // The pump confirms delivery itself ([`finish`]); a socketpair cannot tell.
        Delivery::Unknown
    }
}

/// Called once the command is over (nothing more will be written to a plaintext side):
/// each bridge sends what it still holds, then close_notify, within `limit` in all. Returns
/// what was not delivered, one line per bridge: a peer that stopped reading (given up on),
/// or a failure (reset, fatal alert) the command has not already reported.
pub fn finish(limit: Duration) -> Vec<String> {
    let pumps = std::mem::take(&mut *PUMPS.lock().unwrap_or_else(|e| e.into_inner()));
    let deadline = Instant::now() + limit;
    let mut waiting: Vec<Pump> = pumps;
    let mut failures = Vec::new();
    for pump in &mut waiting {
        // Dropping our end of the finish pair tells the pump the command is over.
        pump.finish.take();
    }
    loop {
        let (done, left): (Vec<Pump>, Vec<Pump>) =
            waiting.into_iter().partition(|p| p.handle.is_finished());
        failures.extend(done.iter().filter_map(|p| p.failure.unreported()));
        waiting = left;
        if waiting.is_empty() || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(2));
    }
    for pump in waiting {
        failures.push(format!(
            "TLS with {}: gave up after {} delivering what was sent (the peer stopped reading)",
            pump.peer,
            crate::net::deadline::format_duration(limit)
        ));
    }
    failures
}

/// Moves bytes between the TLS connection and the plaintext socket until both directions
/// are closed (or either side fails). When `finish` reports the command over, the
/// plaintext already written is drained and sent, then close_notify, and the pump ends.
fn pump(
    mut conn: Connection,
    mut tcp: TcpStream,
    plain: &mut Socket,
    finish: UnixStream,
) -> io::Result<()> {
    tcp.set_nonblocking(true)?;
    plain.set_nonblocking(true)?;
    let mut to_plain: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut peer_done = false; // the peer sent close_notify or FIN, and all data is drained
    let mut tcp_eof = false; // the peer's FIN arrived
    let mut plain_shut = false; // we passed that on as EOF
    let mut local_done = false; // the plaintext side sent EOF
    let mut tcp_shut = false; // close_notify sent and the TCP write side shut
    let mut finishing = false; // the command is over: only delivering what it wrote is left
    loop {
        // Plaintext rustls holds (records read with the handshake's last flight, or just now)
        // goes out before anything else is decided: a FIN seen next must not strand it.
        if !peer_done {
            peer_done = take_decrypted(&mut conn, &mut to_plain, tcp_eof)?;
        }
        while conn.wants_write() {
            match conn.write_tls(&mut tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if local_done && !tcp_shut && !conn.wants_write() {
            let _ = tcp.shutdown(std::net::Shutdown::Write);
            tcp_shut = true;
        }
        // Once the command is over or its end is closed, nobody wants the peer's bytes.
        if finishing || plain_shut {
            to_plain.clear();
        }
        while !to_plain.is_empty() {
            match plain.write(&to_plain) {
                Ok(n) => {
                    to_plain.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The command closed its end; what it wrote before closing is still to be
                // read and sent.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    to_plain.clear();
                    plain_shut = true;
                }
                Err(e) => return Err(e),
            }
        }
        if peer_done && to_plain.is_empty() && !plain_shut && !finishing {
            plain.shutdown(std::net::Shutdown::Write)?;
            plain_shut = true;
        }
        if (plain_shut || finishing) && tcp_shut {
            return Ok(());
        }
        let mut fds = [
            libc::pollfd {
                fd: tcp.as_raw_fd(),
                events: 0,
                revents: 0,
            },
            libc::pollfd {
                fd: plain.as_raw_fd(),
                events: 0,
                revents: 0,
            },
            libc::pollfd {
                fd: if finishing { -1 } else { finish.as_raw_fd() },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if !peer_done && to_plain.len() < PLAINTEXT_CAP {
            fds[0].events |= libc::POLLIN;
        }
        if conn.wants_write() {
            fds[0].events |= libc::POLLOUT;
        }
        // New plaintext is taken only once the records already made have gone out.
        if !local_done && !conn.wants_write() {
            fds[1].events |= libc::POLLIN;
        }
        if !to_plain.is_empty() {
            fds[1].events |= libc::POLLOUT;
        }
        // Finishing with plaintext possibly left: look, don't wait (see below).
        let wait = if finishing && !local_done && !conn.wants_write() {
            0
        } else {
            -1
        };
        // SAFETY: three valid pollfd entries for the duration of the call (a negative fd is
        // skipped by poll).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 3, wait) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            // Records are read until the socket is empty or the buffer full, so the
            // plaintext side gets one write (and one wake-up) per batch, not per record.
            while !peer_done && !tcp_eof && to_plain.len() < PLAINTEXT_CAP {
                match conn.read_tls(&mut tcp) {
                    Ok(0) => tcp_eof = true,
                    Ok(_) => {
                        conn.process_new_packets()
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        peer_done = take_decrypted(&mut conn, &mut to_plain, false)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        let plain_readable = fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
        if fds[2].revents != 0 {
            // The write end was dropped: the command is over. What it wrote is drained and
            // sent; what the peer sends is still read (rustls needs its records) but dropped.
            finishing = true;
        }
        // While finishing, the plaintext side is read without waiting: nothing more is
        // coming, so an empty read means all of it has been taken.
        if !local_done && (plain_readable || (finishing && !conn.wants_write())) {
            local_done = take_plaintext(&mut conn, plain, &mut buf, finishing)?;
        }
    }
}

/// Moves the plaintext rustls has decrypted to `to_plain`. Returns whether the peer's side
/// is over: close_notify, or (with `tcp_eof`) a FIN with nothing left to decrypt.
fn take_decrypted(
    conn: &mut Connection,
    to_plain: &mut Vec<u8>,
    tcp_eof: bool,
) -> io::Result<bool> {
    // read_to_end keeps what it read when it stops at WouldBlock.
    match conn.reader().read_to_end(to_plain) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(tcp_eof),
        // A close without close_notify after the data: the data stands (many servers do
        // this), but -v says so, since a stream cut short by an attacker looks the same.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            crate::info!("TLS: the peer closed without close_notify (a cut-short stream would look the same)");
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Reads what the plaintext side holds into the TLS connection. Returns whether that side
/// is done (EOF, or empty once the command is over), having sent close_notify then.
fn take_plaintext(
    conn: &mut Connection,
    plain: &mut Socket,
    buf: &mut [u8],
    finishing: bool,
) -> io::Result<bool> {
    let done = match plain.read(buf) {
        Ok(0) => true,
        Ok(n) => {
            conn.writer().write_all(&buf[..n])?;
            false
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => finishing,
        Err(e) => return Err(e),
    };
    if done {
        conn.send_close_notify();
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    #[test]
    fn presented_names_are_bare_escaped_and_few() {
        let names: Vec<String> = [
            r#"DnsName("a.test")"#,
            "IpAddress(127.0.0.1)",
            "DnsName(\"evil\u{1b}[2J\")",
            "DirectoryName",
            r#"DnsName("e.test")"#,
            r#"DnsName("f.test")"#,
        ]
        .iter()
        .map(|n| n.to_string())
        .collect();
        assert_eq!(
            presented_names(&names),
            r"a.test, 127.0.0.1, evil\u{1b}[2J, DirectoryName, 2 more"
        );
    }

    use super::*;

    #[test]
    fn cipher_suites_answer_to_iana_rustls_and_openssl_names() {
        let tls13 = "TLS13_AES_128_GCM_SHA256";
        assert!(suite_is_named(tls13, "TLS_AES_128_GCM_SHA256"));
        assert!(suite_is_named(tls13, "tls13_aes_128_gcm_sha256"));
        assert!(!suite_is_named(tls13, "TLS_AES_256_GCM_SHA384"));
        let tls12 = "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256";
        assert!(suite_is_named(tls12, "ECDHE-RSA-CHACHA20-POLY1305"));
        assert!(suite_is_named(tls12, tls12));
        assert!(!suite_is_named(tls12, "ECDHE-ECDSA-CHACHA20-POLY1305"));
        assert!(!suite_is_named(tls12, ""));
    }

    #[test]
    fn debug_values_read_as_words() {
        let err = rustls::Error::InvalidCertificate(CertificateError::BadSignature);
        assert_eq!(
            in_words(&err, "x").0,
            "certificate verify failed: a signature in the chain is wrong"
        );
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        let (reason, hint) = in_words(&alert, "x");
        assert_eq!(reason, "the peer sent a fatal alert: certificate required");
        assert!(hint.contains("--cert"), "{hint}");
        assert_eq!(
            debug_in_words(&rustls::AlertDescription::UnknownPSKIdentity),
            "unknown PSK identity"
        );
        for err in [
            rustls::Error::DecryptError,
            rustls::Error::HandshakeNotComplete,
            rustls::Error::InvalidCertificate(CertificateError::UnhandledCriticalExtension),
        ] {
            let (reason, _) = in_words(&err, "x");
            assert!(
                !reason.contains(['(', ')', ':'])
                    || reason.starts_with("certificate verify failed: "),
                "{reason}"
            );
            assert!(reason.chars().all(|c| !c.is_uppercase()), "{reason}");
        }
    }

    #[test]
    fn a_self_signed_server_and_a_client_that_trusts_it_exchange_bytes_both_ways() {
        let (server_config, fingerprint) =
            server_config(None, None, &[], None, &ProtocolOptions::default()).unwrap();
        assert_eq!(fingerprint.len(), 32 * 3 - 1);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let mut plain = accept(tcp, server_config, "client").unwrap().into_socket();
            let mut got = Vec::new();
            (&plain).read_to_end(&mut got).unwrap();
            plain.write_all(&got).unwrap();
            plain.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let client_config = client_config(&ClientOptions {
            insecure: true,
            ..ClientOptions::default()
        })
        .unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        let mut plain = connect(tcp, client_config, "localhost", "server", HANDSHAKE_TIMEOUT)
            .unwrap()
            .into_socket();
        plain.write_all(b"hello over tls").unwrap();
        plain.shutdown(std::net::Shutdown::Write).unwrap();
        let mut echoed = Vec::new();
        (&plain).read_to_end(&mut echoed).unwrap();
        assert_eq!(echoed, b"hello over tls");
        server.join().unwrap();
    }

    #[test]
    fn a_plain_text_answer_is_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            let _ = tcp.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
            thread::sleep(Duration::from_millis(200));
        });
        let config = client_config(&ClientOptions::default()).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        let err = connect(tcp, config, "localhost", "server", HANDSHAKE_TIMEOUT).unwrap_err();
        assert!(err.to_string().contains("not TLS"), "{err}");
        assert!(crate::exit::hint(&err).unwrap().contains("plain text"));
    }

    #[test]
    fn an_unknown_issuer_is_named() {
        let (server_config, _) =
            server_config(None, None, &[], None, &ProtocolOptions::default()).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let _ = accept(tcp, server_config, "client");
        });
        let config = client_config(&ClientOptions::default()).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        let err = connect(tcp, config, "localhost", "server", HANDSHAKE_TIMEOUT).unwrap_err();
        assert!(err.to_string().contains("unknown issuer"), "{err}");
        assert!(crate::exit::hint(&err).unwrap().contains("--ca"));
    }
}
