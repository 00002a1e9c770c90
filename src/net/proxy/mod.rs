//! Proxies as a way of dialing: SOCKS4/4a/5/5h and HTTP(S) CONNECT, alone or in a chain.
//!
//! Behind a corporate proxy or a bastion, the only way to a target is through one or more
//! proxies. This lives below the commands, with [`crate::net::connect`]: `connect()` dials the
//! first hop (Happy Eyeballs, as for any target), then asks each hop in turn for a tunnel to
//! the next one and the last for the target, all under the one `-w` deadline. Every command
//! that dials TCP gets proxies from this one place.
//!
//! What comes back is the same `TcpStream` a direct connection gives, holding exactly the
//! tunnel: the handshakes read no byte past a proxy's reply (SOCKS replies have lengths the
//! decoder knows; an HTTP head is peeked at, then consumed to its blank line), so target bytes
//! a proxy pipelines after its reply stay in the socket. An `https://` hop speaks TLS to the
//! proxy through [`crate::net::tls`]'s bridge; its plaintext end (a socket pair) carries the
//! rest of the chain and is what the command gets.
//!
//! Errors name the hop and what failed: `connect T through proxy 2 of 3 (socks5://P): the
//! proxy could not connect: connection refused by the target (SOCKS5 reply 5)`.

pub mod http_connect;
pub mod server;
pub mod socks;

use std::fmt;
use std::io;
use std::net::{IpAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::exit::usage;
use crate::net::addr::{self, Family, Host, Target};
use crate::net::deadline::{format_duration, is_timeout, Deadline};
use crate::net::service_names::Proto;
use socks::HostOrName;

/// The kinds of proxy, by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `socks4://`: SOCKS4, names resolved here (IPv4 only).
    Socks4,
    /// `socks4a://`: SOCKS4 with names resolved by the proxy.
    Socks4a,
    /// `socks5://`: SOCKS5, names resolved here.
    Socks5,
    /// `socks5h://`: SOCKS5, names resolved by the proxy.
    Socks5h,
    /// `http://`: HTTP CONNECT.
    Http,
    /// `https://`: HTTP CONNECT over TLS to the proxy.
    Https,
}

impl Kind {
    /// The URL schemes, for messages.
    pub const SCHEMES: &'static str = "socks4, socks4a, socks5, socks5h, http, https";

    fn from_scheme(scheme: &str) -> Option<Kind> {
        Some(match scheme.to_ascii_lowercase().as_str() {
            "socks4" => Kind::Socks4,
            "socks4a" => Kind::Socks4a,
            "socks5" => Kind::Socks5,
            "socks5h" => Kind::Socks5h,
            "http" => Kind::Http,
            "https" => Kind::Https,
            _ => return None,
        })
    }

    /// The scheme, as in a URL.
    pub fn scheme(self) -> &'static str {
        match self {
            Kind::Socks4 => "socks4",
            Kind::Socks4a => "socks4a",
            Kind::Socks5 => "socks5",
            Kind::Socks5h => "socks5h",
            Kind::Http => "http",
            Kind::Https => "https",
        }
    }

    /// ncat's well-known ports (1080 for SOCKS, 3128 for HTTP); curl's 443 for HTTPS.
    pub fn default_port(self) -> u16 {
        match self {
            Kind::Http => 3128,
            Kind::Https => 443,
            _ => 1080,
        }
    }

    /// Whether the proxy resolves target names unless `--proxy-dns` says otherwise.
    fn resolves_names(self) -> bool {
        !matches!(self, Kind::Socks4 | Kind::Socks5)
    }

    /// Whether this is an HTTP CONNECT proxy (`http://` or `https://`).
    pub fn is_http(self) -> bool {
        matches!(self, Kind::Http | Kind::Https)
    }
}

/// A username and password (SOCKS5 RFC 1929, HTTP Basic; the SOCKS4 user id is the name).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username.
    pub user: String,
    /// The password.
    pub pass: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}:***)", self.user)
    }
}

impl Credentials {
    /// `USER:PASS` (`--proxy-auth`); `USER` alone has an empty password (a SOCKS4 user id).
    pub fn parse(text: &str) -> Credentials {
        let (user, pass) = text.split_once(':').unwrap_or((text, ""));
        Credentials {
            user: user.to_string(),
            pass: pass.to_string(),
        }
    }
}

/// One proxy of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Its protocol.
    pub kind: Kind,
    /// Where it listens.
    pub target: Target,
    /// Credentials for it, if any.
    pub credentials: Option<Credentials>,
}

/// `socks5://user@host:port`: never the password.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = match &self.credentials {
            Some(c) => format!("{}@", escape_user(&c.user)),
            None => String::new(),
        };
        write!(f, "{}://{user}{}", self.kind.scheme(), self.target)
    }
}

/// A user name as a URL holds it: `:`, `@`, `/`, `%` and control characters %-escaped, so
/// that `u%3Ax` is shown as typed and never reads as user `u` with password `x`.
fn escape_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for c in user.chars() {
        match c {
            ':' | '@' | '/' | '%' | '\0'..='\x1f' | '\x7f' => {
                out.push_str(&format!("%{:02X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

impl Proxy {
    /// Credentials the protocol cannot carry are a usage error before any traffic (the URL's
    /// or --proxy-auth's): RFC 1929 gives a SOCKS5 username 1-255 bytes and a password at
    /// most 255 (an empty password is sent as such: servers take it). Whether the proxy asks
    /// for them is not known until it answers, so they are checked whatever it wants.
    pub fn check_credentials(&self) -> Result<()> {
        let Some(c) = &self.credentials else {
            return Ok(());
        };
        if !matches!(self.kind, Kind::Socks5 | Kind::Socks5h) {
            return Ok(());
        }
        let shown = format!("{}://{}", self.kind.scheme(), self.target);
        let max = socks::CREDENTIAL_MAX;
        if c.user.is_empty() {
            return Err(usage(format!(
                "proxy {shown}: the SOCKS5 username is empty; RFC 1929 needs 1-{max} bytes"
            )));
        }
        if c.user.len() > max {
            return Err(usage(format!(
                "proxy {shown}: the SOCKS5 username is {} bytes; RFC 1929 allows at most {max}",
                c.user.len()
            )));
        }
        if c.pass.len() > max {
            return Err(usage(format!(
                "proxy {shown}: the SOCKS5 password is {} bytes; RFC 1929 allows at most {max}",
                c.pass.len()
            )));
        }
        Ok(())
    }
}

/// Parses `SCHEME://[USER[:PASS]@]HOST[:PORT][/]`, or `HOST[:PORT]` with `default_kind`
/// (ncat's `--proxy HOST:PORT --proxy-type`, curl's scheme-less `-x`). A bad URL is a usage
/// error that never repeats the password.
pub fn parse_url(text: &str, default_kind: Kind) -> Result<Proxy> {
    let (kind, rest) = match text.split_once("://") {
        Some((scheme, rest)) => match Kind::from_scheme(scheme) {
            Some(kind) => (kind, rest),
            None => {
                return Err(usage(format!(
                    "proxy \"{scheme}://...\": unknown scheme (use {})",
                    Kind::SCHEMES
                )))
            }
        },
        None => (default_kind, text),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, rest),
    };
    let shown = format!("{}://{hostport}", kind.scheme());
    if hostport.contains(['/', '?', '#']) {
        return Err(usage(format!(
            "proxy {shown}: a proxy URL has no path, query or fragment"
        )));
    }
    let credentials = match userinfo {
        Some(userinfo) => {
            let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            Some(Credentials {
                user: percent_decode(user).map_err(|e| usage(format!("proxy {shown}: {e}")))?,
                pass: percent_decode(pass).map_err(|e| usage(format!("proxy {shown}: {e}")))?,
            })
        }
        None => None,
    };
    let target = addr::parse_target_or(hostport, kind.default_port(), Proto::Tcp)
        .map_err(|e| usage(format!("proxy {shown}: {e:#}")))?;
    Ok(Proxy {
        kind,
        target,
        credentials,
    })
}

/// `%XX` escapes of a URL's user and password (RFC 3986), to UTF-8.
pub fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("a % in the credentials must start a %XX escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow!("the credentials are not UTF-8 once unescaped"))
}

/// ncat's `--proxy-dns`: where the names of the hops after the first and of the target are
/// resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsMode {
    /// Here; a name that does not resolve is an error.
    Local,
    /// By the proxy.
    Remote,
    /// Here when it resolves, by the proxy otherwise.
    Both,
    /// Nowhere: only addresses.
    None,
}

impl DnsMode {
    /// The `--proxy-dns` value parser.
    pub fn parse(text: &str) -> Result<DnsMode, String> {
        match text {
            "local" => Ok(DnsMode::Local),
            "remote" => Ok(DnsMode::Remote),
            "both" => Ok(DnsMode::Both),
            "none" => Ok(DnsMode::None),
            _ => Err("expected local, remote, both or none".into()),
        }
    }
}

/// The proxies to go through, in order, and how.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// The hops: the first is dialled, each next one reached through the one before.
    pub hops: Vec<Proxy>,
    /// `--proxy-dns`, overriding each scheme's habit.
    pub dns: Option<DnsMode>,
    /// The TLS client configuration for `https://` hops.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// `--proxy env` alone: the `no_proxy` list (as curl reads it) whose hosts go direct.
    pub bypass: Option<String>,
}

/// How `https://` proxies are verified: `--proxy-ca FILE`, `--proxy-insecure`.
#[derive(Debug, Clone, Default)]
pub struct ProxyTrust {
    /// Trust only these certificates.
    pub ca: Option<String>,
    /// Check nothing.
    pub insecure: bool,
}

impl Chain {
    /// A chain of `hops`, with the TLS configuration its `https://` hops need (the CA file is
    /// read now: a bad one is a usage error before any traffic).
    pub fn new(hops: Vec<Proxy>, dns: Option<DnsMode>, trust: &ProxyTrust) -> Result<Chain> {
        for hop in &hops {
            hop.check_credentials()?;
        }
        let tls = match hops.iter().any(|h| h.kind == Kind::Https) {
            true => Some(crate::net::tls::client_config(
                &crate::net::tls::ClientOptions {
                    ca: trust.ca.clone(),
                    insecure: trust.insecure,
                    for_proxy: true,
                    ..Default::default()
                },
            )?),
            false => None,
        };
        Ok(Chain {
            hops,
            dns,
            tls,
            bypass: None,
        })
    }

    /// Whether a connection to `host` goes direct, its name being in the `no_proxy` list of a
    /// `--proxy env` chain.
    pub fn bypassed_for(&self, host: &str) -> bool {
        self.bypass
            .as_deref()
            .is_some_and(|list| no_proxy_matches(list, host))
    }

    /// Whether there is no proxy: a direct connection.
    pub fn is_empty(&self) -> bool {
        self.hops.is_empty()
    }

    /// The route to `to` in words, for log lines: `db:5432 via socks5://a:1080, http://b:3128`
    /// (credentials without the password, as every line shows a proxy), or `to` alone.
    pub fn route_to(&self, to: impl fmt::Display) -> String {
        match self.hops.is_empty() {
            true => to.to_string(),
            false => {
                let hops: Vec<String> = self.hops.iter().map(Proxy::to_string).collect();
                format!("{to} via {}", hops.join(", "))
            }
        }
    }
}

/// The next hop or the target, as a request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopTarget {
    /// Address or name.
    pub host: HostOrName,
    /// Port.
    pub port: u16,
}

/// What one handshake needs: the chain's deadline and the hop's credentials.
#[derive(Debug)]
pub struct Step<'a> {
    deadline: Deadline,
    stated: Option<Duration>,
    /// `-i`: the longest the proxy may stay silent, whether or not `-w` bounds the whole.
    idle: Option<Duration>,
    /// The hop's credentials.
    pub credentials: Option<&'a Credentials>,
}

impl Step<'_> {
    /// Gives the next read or write on `stream` only what is left of the deadline.
    /// With `-i`, no single wait is longer than it: a proxy that goes silent in the
    /// middle of its handshake is given up even when nothing bounds the whole.
    pub fn bound(&self, stream: &TcpStream) -> Result<()> {
        let left = self.deadline.remaining().map_err(|_| self.timed_out())?;
        let left = match (left, self.idle) {
            (Some(left), Some(idle)) => Some(left.min(idle)),
            (left, idle) => left.or(idle),
        };
        stream
            .set_read_timeout(left)
            .context("set the read timeout")?;
        stream
            .set_write_timeout(left)
            .context("set the write timeout")
    }

    fn timed_out(&self) -> anyhow::Error {
        match self.stated {
            Some(w) => anyhow!(
                "timed out after {} (-w bounds the whole chain)",
                format_duration(w)
            ),
            None => anyhow!("timed out"),
        }
    }

    /// An I/O error during the handshake, in words: a timeout says the bound.
    pub fn io_failure(&self, err: io::Error, what: &str) -> anyhow::Error {
        if is_timeout(&err) {
            if let (Some(idle), false) = (self.idle, self.deadline.expired()) {
                return anyhow!(
                    "the proxy sent nothing for {} while nk waited for the {what} (-i)",
                    format_duration(idle)
                );
            }
            return anyhow!("{} waiting for the {what}", self.timed_out());
        }
        match err.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                let handshake = what.split(' ').next().unwrap_or(what);
                anyhow!("the proxy reset the connection during its {handshake} handshake (at the {what}: {err})")
            }
            _ => anyhow::Error::new(err).context(what.to_string()),
        }
    }
}

/// A proxy's answer that it did not open the tunnel (a SOCKS reply code, an HTTP status).
/// Shown as it is when the tunnel was to the target; when it was to the next proxy of a
/// chain, [`walk`] says which proxy could not reach which, with `why`.
#[derive(Debug)]
pub struct Unreached {
    /// About the target: "the proxy could not connect: connection refused by the target
    /// (SOCKS5 reply 5)".
    pub message: String,
    /// Without the target: "connection refused (SOCKS5 reply 5)", "it answered HTTP/1.1 502
    /// Bad Gateway".
    pub why: String,
    /// The proxy said no by its rules (or to the request), rather than failing to connect.
    pub refused: bool,
}

impl fmt::Display for Unreached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Unreached {}

/// Why the first hop could not be dialled, said of the proxy: a reset right after the
/// connection was accepted (the kernel took it, the proxy dropped it) is the proxy ending
/// its handshake, not a failure to connect.
pub fn first_hop_failed(err: anyhow::Error, hop: &Proxy) -> anyhow::Error {
    let reset = err
        .downcast_ref::<io::Error>()
        .filter(|e| e.kind() == io::ErrorKind::ConnectionReset);
    if let Some(reset) = reset {
        let handshake = match hop.kind {
            Kind::Socks4 | Kind::Socks4a => "SOCKS4",
            Kind::Socks5 | Kind::Socks5h => "SOCKS5",
            Kind::Http => "CONNECT",
            Kind::Https => "TLS",
        };
        return anyhow!(
            "the proxy reset the connection during its {handshake} handshake (as it began: {reset})"
        );
    }
    err.context("could not reach the proxy")
}

/// "the proxy does not speak SOCKS5: it answered 48 54 54 50 ("HTTP")": what a proxy of
/// another kind (an HTTP proxy, a web server, TLS) sent instead.
pub fn foreign_reply(what: &str, buf: &[u8]) -> String {
    let shown = &buf[..buf.len().min(8)];
    let hex: Vec<String> = shown.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = shown
        .iter()
        .map(|&b| match b {
            0x20..=0x7e => b as char,
            _ => '.',
        })
        .collect();
    format!(
        "the proxy does not speak {what}: it answered {} (\"{text}\")",
        hex.join(" ")
    )
}

/// Walks the chain of `opts.proxies` over `stream`, already connected to its first hop: each
/// hop is asked for a tunnel to the next, the last for `target`, all within `deadline` (what
/// is left of `-w`). Returns the stream that carries the tunnel, in blocking mode with no
/// timeouts, holding every byte past the last reply.
pub fn walk(
    mut stream: TcpStream,
    target: &Target,
    opts: &crate::net::connect::ConnectOptions,
    deadline: Deadline,
) -> Result<TcpStream> {
    let (chain, family, stated, idle) = (&opts.proxies, opts.family, opts.timeout, opts.idle);
    let log_level = if opts.quiet { 2 } else { 1 };
    let n = chain.hops.len();
    let started = Instant::now();
    for (i, hop) in chain.hops.iter().enumerate() {
        let next = chain.hops.get(i + 1).map_or(target, |h| &h.target);
        let which = match n {
            1 => format!("proxy {hop}"),
            _ => format!("proxy {} of {n} ({hop})", i + 1),
        };
        let mut step = Step {
            deadline,
            stated,
            idle,
            credentials: hop.credentials.as_ref(),
        };
        // What the tunnel is to, when it is not the target: the next proxy, by its number.
        let next_proxy = chain
            .hops
            .get(i + 1)
            .map(|h| format!("proxy {} of {n} ({h})", i + 2));
        stream = through(
            stream,
            hop,
            next,
            next_proxy.as_deref(),
            chain,
            family,
            &mut step,
        )
        .with_context(|| format!("connect {target} through {which}"))?;
        crate::log::at(
            log_level,
            format_args!(
                "{which}: tunnel to {next} open ({:.1} ms)",
                started.elapsed().as_secs_f64() * 1000.0
            ),
        );
    }
    stream
        .set_read_timeout(None)
        .context("clear the read timeout")?;
    stream
        .set_write_timeout(None)
        .context("clear the write timeout")?;
    Ok(stream)
}

/// One hop: TLS first for `https://`, then the handshake that opens the tunnel to `next`.
fn through(
    stream: TcpStream,
    hop: &Proxy,
    next: &Target,
    next_proxy: Option<&str>,
    chain: &Chain,
    family: Family,
    step: &mut Step,
) -> Result<TcpStream> {
    let mut stream = match hop.kind {
        Kind::Https => tls_to(stream, hop, chain, step)?,
        _ => stream,
    };
    let wanted = hop_target(hop.kind, next, next_proxy, chain.dns, family, step.deadline)?;
    let shaken = match hop.kind {
        Kind::Socks4 | Kind::Socks4a => socks::socks4(&mut stream, step, &wanted),
        Kind::Socks5 | Kind::Socks5h => socks::socks5(&mut stream, step, &wanted).map(|bound| {
            crate::debug!("the proxy's end of the tunnel: {bound}");
        }),
        Kind::Http | Kind::Https => http_connect::connect(&mut stream, step, &wanted),
    };
    match (shaken, next_proxy) {
        (Ok(()), _) => Ok(stream),
        (Err(err), Some(next_proxy)) => Err(to_next_proxy(err, next_proxy, &wanted)),
        (Err(err), None) => Err(err),
    }
}

/// A refusal of a tunnel to the next proxy says so: the proxy could not reach that proxy
/// (named, with its address), and why; and who was to resolve its name.
fn to_next_proxy(err: anyhow::Error, next_proxy: &str, wanted: &HopTarget) -> anyhow::Error {
    let Some(unreached) = err.downcast_ref::<Unreached>() else {
        return err;
    };
    let verb = match unreached.refused {
        true => "refused a tunnel to",
        false => "could not reach",
    };
    let resolver = match &wanted.host {
        HostOrName::Name(name) => format!(", whose name {name} it was to resolve"),
        HostOrName::Ip(ip) if !next_proxy.contains(&ip.to_string()) => {
            format!(" (at {ip}, resolved by nk)")
        }
        HostOrName::Ip(_) => String::new(),
    };
    anyhow!("the proxy {verb} {next_proxy}{resolver}: {}", unreached.why)
}

/// TLS with an `https://` proxy, under the chain's deadline.
fn tls_to(stream: TcpStream, hop: &Proxy, chain: &Chain, step: &Step) -> Result<TcpStream> {
    let config = chain
        .tls
        .clone()
        .ok_or_else(|| anyhow!("no TLS configuration for an https:// proxy"))?;
    let limit = match step.deadline.remaining().map_err(|_| step.timed_out())? {
        // -i bounds the proxy's silence: a TLS handshake is a round trip or two, so the
        // whole handshake gets it when it is the shorter bound.
        Some(left) if step.idle.is_some_and(|idle| idle < left) => step.idle.unwrap_or(left).into(),
        Some(left) => crate::net::tls::HandshakeLimit {
            until: Instant::now() + left,
            stated: step.stated.unwrap_or(left),
        },
        None => step
            .idle
            .unwrap_or(crate::net::tls::HANDSHAKE_TIMEOUT)
            .into(),
    };
    open_tls(stream, hop, config, limit)
}

/// TLS with the `https://` proxy `hop` over `stream`: the plaintext end of the bridge,
/// which carries the rest (a CONNECT, or `head`'s absolute-form request).
pub fn open_tls(
    stream: TcpStream,
    hop: &Proxy,
    config: Arc<rustls::ClientConfig>,
    limit: crate::net::tls::HandshakeLimit,
) -> Result<TcpStream> {
    let name = match &hop.target.host {
        Host::Ip(ip) => ip.to_string(),
        Host::Name(name) => name.clone(),
    };
    let bridge = crate::net::tls::connect(stream, config, &name, &hop.to_string(), limit)
        .map_err(for_the_proxy)?;
    // The plaintext end is a Unix socket pair; TcpStream is only its holder here (reads,
    // writes, shutdown and timeouts are the same calls), so every command takes it as it
    // takes a direct connection. A failure of the TLS side is reported by tls::finish.
    Ok(TcpStream::from(OwnedFd::from(bridge.into_socket())))
}

/// A TLS failure with an `https://` proxy: its hint names the proxy's flags (`--proxy-ca`,
/// `--proxy-insecure`), not the target's (`--ca`, `--insecure`, `--sni`, `--cert`), which
/// would do nothing for the proxy or be refused without `--tls`.
fn for_the_proxy(mut err: anyhow::Error) -> anyhow::Error {
    if let Some(hinted) = err.downcast_mut::<crate::exit::Hinted>() {
        hinted.hint = proxy_hint(&hinted.hint);
    }
    err
}

/// A TLS hint rewritten for the proxy's TLS.
fn proxy_hint(hint: &str) -> String {
    if hint.contains("--sni") {
        return "reach the proxy by a name its certificate carries (https://NAME:PORT), or \
                --proxy-insecure skips the check"
            .into();
    }
    if hint.contains("--cert") {
        return "the proxy wants a client certificate, and nk offers none to a proxy".into();
    }
    hint.replace("--ca ", "--proxy-ca ")
        .replace("--insecure", "--proxy-insecure")
}

/// The next hop or the target as `kind` should carry it, resolving a name here when the
/// DNS mode says so.
fn hop_target(
    kind: Kind,
    next: &Target,
    next_proxy: Option<&str>,
    dns: Option<DnsMode>,
    family: Family,
    deadline: Deadline,
) -> Result<HopTarget> {
    let name = match &next.host {
        Host::Ip(ip) => {
            return Ok(HopTarget {
                host: HostOrName::Ip(*ip),
                port: next.port,
            })
        }
        Host::Name(name) => name,
    };
    let mode = dns.unwrap_or(match kind.resolves_names() {
        true => DnsMode::Remote,
        false => DnsMode::Local,
    });
    // SOCKS4 carries only IPv4 addresses.
    let family = match kind {
        Kind::Socks4 | Kind::Socks4a => Family::V4,
        _ => family,
    };
    let local = || -> Result<IpAddr> {
        let addrs = addr::resolve(next, family, deadline)?;
        Ok(addrs[0].ip())
    };
    let host = match mode {
        DnsMode::Remote => HostOrName::Name(name.clone()),
        DnsMode::Local => {
            HostOrName::Ip(local().with_context(|| resolved_here(kind, next_proxy, dns))?)
        }
        DnsMode::Both => local()
            .map(HostOrName::Ip)
            .unwrap_or_else(|_| HostOrName::Name(name.clone())),
        DnsMode::None => bail!("{name} is a name and --proxy-dns none resolves no names"),
    };
    Ok(HopTarget {
        host,
        port: next.port,
    })
}

/// The context of a name nk failed to resolve for a proxy: the name is resolved here, by
/// nk, not by the proxy (whose resolver may know it), and why.
fn resolved_here(kind: Kind, next_proxy: Option<&str>, dns: Option<DnsMode>) -> String {
    let whose = match next_proxy {
        Some(p) => format!("the name of {p}"),
        None => "the target's name".to_string(),
    };
    let why = match (dns, kind) {
        (Some(_), _) => "as --proxy-dns local says".to_string(),
        (None, Kind::Socks4) => {
            "for a socks4:// proxy (socks4a:// would leave it to the proxy)".to_string()
        }
        (None, _) => format!(
            "for a {0}:// proxy ({0}h:// would leave it to the proxy)",
            kind.scheme()
        ),
    };
    format!("nk could not resolve {whose} itself, {why}")
}

// ---- the environment (head, and `--proxy env`) ---------------------------------------------

/// The first of `names` set to something in the environment, with its name.
fn env_first(names: &[&'static str]) -> Option<(String, &'static str)> {
    names.iter().find_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (v.trim().to_string(), *name))
    })
}

/// The `no_proxy` (else `NO_PROXY`) list of the environment, empty when neither is set.
pub fn no_proxy_env() -> String {
    env_first(&["no_proxy", "NO_PROXY"]).map_or_else(String::new, |(list, _)| list)
}

/// `all_proxy` / `ALL_PROXY`, for `--proxy env`.
pub fn all_proxy() -> Option<(String, &'static str)> {
    env_first(&["all_proxy", "ALL_PROXY"])
}

/// The proxy curl would use for a URL of `scheme` to `host`: `http_proxy` (lower case only,
/// as curl: HTTP_PROXY may come from a CGI request header), `https_proxy`/`HTTPS_PROXY`,
/// then `all_proxy`/`ALL_PROXY`; none when `host` matches `no_proxy`/`NO_PROXY` or
/// `noproxy` (curl's `--noproxy`, which overrides them).
pub fn for_url(scheme: &str, host: &str, noproxy: Option<&str>) -> Option<(String, &'static str)> {
    let bypass = noproxy.map_or_else(no_proxy_env, str::to_string);
    if no_proxy_matches(&bypass, host) {
        return None;
    }
    let specific: &[&'static str] = match scheme {
        "https" => &["https_proxy", "HTTPS_PROXY"],
        _ => &["http_proxy"],
    };
    env_first(specific).or_else(all_proxy)
}

/// Whether `host` is in a `no_proxy` list, by curl's rules: a list that is exactly `*` matches
/// every host (a `*` among other entries matches none, as in curl); a domain (`example.com`
/// and `.example.com` both match it and its subdomains) matches a name; an address or a CIDR
/// block matches an address (compared as addresses: `::1` is `0::1`), never a name.
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    if list == "*" {
        return true;
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    list.split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            let entry = entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            match host_ip {
                Some(ip) => match entry.split_once('/') {
                    Some((net, bits)) => in_block(ip, net, bits),
                    None => entry.parse::<IpAddr>().is_ok_and(|e| e == ip),
                },
                None => {
                    let domain = entry.trim_start_matches('.').trim_end_matches('.');
                    !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
                }
            }
        })
}

fn in_block(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_and_default_ports() {
        let p = parse_url("socks5h://bob:p%40ss@proxy.example:1081/", Kind::Http).unwrap();
        assert_eq!(p.kind, Kind::Socks5h);
        assert_eq!(p.target.port, 1081);
        assert_eq!(
            p.credentials,
            Some(Credentials {
                user: "bob".into(),
                pass: "p@ss".into()
            })
        );
        assert_eq!(p.to_string(), "socks5h://bob@proxy.example:1081");
        let p = parse_url("[::1]", Kind::Http).unwrap();
        assert_eq!((p.kind, p.target.port), (Kind::Http, 3128));
        assert_eq!(
            parse_url("socks4://h", Kind::Http).unwrap().target.port,
            1080
        );
    }

    #[test]
    fn bad_urls_never_show_the_password() {
        let err = parse_url("ftp://u:secret@h:1", Kind::Http).unwrap_err();
        assert!(!format!("{err:#}").contains("secret"));
        let err = parse_url("http://u:secret@h:99999", Kind::Http).unwrap_err();
        assert!(!format!("{err:#}").contains("secret"), "{err:#}");
        assert!(parse_url("http://h:1/path", Kind::Http).is_err());
        assert!(parse_url("http://u:%zz@h:1", Kind::Http).is_err());
    }

    #[test]
    fn a_name_resolved_here_says_so() {
        assert_eq!(
            resolved_here(
                Kind::Socks5,
                Some("proxy 2 of 2 (http://h.test:3128)"),
                None
            ),
            "nk could not resolve the name of proxy 2 of 2 (http://h.test:3128) itself, for a \
             socks5:// proxy (socks5h:// would leave it to the proxy)"
        );
        assert!(resolved_here(Kind::Socks4, None, None).contains("the target's name"));
        assert!(resolved_here(Kind::Socks4, None, None).contains("socks4a://"));
        assert!(resolved_here(Kind::Http, None, Some(DnsMode::Local)).contains("--proxy-dns"));
    }

    #[test]
    fn socks5_credentials_rfc_1929_cannot_carry_are_usage_errors() {
        let with = |user: &str, pass: &str| Proxy {
            credentials: Some(Credentials {
                user: user.into(),
                pass: pass.into(),
            }),
            ..parse_url("socks5h://127.0.0.1:1080", Kind::Http).unwrap()
        };
        let long = "x".repeat(256);
        for proxy in [with(&long, "p"), with("u", &long), with("", "p")] {
            let err = proxy.check_credentials().unwrap_err();
            assert!(matches!(
                crate::exit::classify(&err),
                crate::exit::Status::Usage
            ));
            assert!(format!("{err:#}").contains("RFC 1929"), "{err:#}");
            assert!(!format!("{err:#}").contains(&long), "{err:#}");
        }
        with(&"x".repeat(255), &"y".repeat(255))
            .check_credentials()
            .unwrap();
        with("u", "").check_credentials().unwrap();
        let mut http = with(&long, &long);
        http.kind = Kind::Http;
        http.check_credentials().unwrap();
    }

    #[test]
    fn tls_hints_name_the_proxy_flags() {
        assert_eq!(
            proxy_hint("trust its CA with --ca FILE, or skip the check with --insecure"),
            "trust its CA with --proxy-ca FILE, or skip the check with --proxy-insecure"
        );
        assert!(proxy_hint("give it with --sni NAME").contains("--proxy-insecure"));
        assert!(!proxy_hint("give --cert FILE --key FILE").contains("--cert"));
    }

    #[test]
    fn a_user_with_url_delimiters_is_shown_escaped() {
        let hop = parse_url("socks5://u%3Ax%40y:secret@127.0.0.1:1080", Kind::Http).unwrap();
        assert_eq!(hop.to_string(), "socks5://u%3Ax%40y@127.0.0.1:1080");
        let bound = socks::Bound {
            host: socks::HostOrName::Ip("::1".parse().unwrap()),
            port: 40037,
        };
        assert_eq!(bound.to_string(), "[::1]:40037");
        // Shown as every address is (display_addr): an IPv4-mapped one as the IPv4 it is.
        let mapped = socks::Bound {
            host: socks::HostOrName::Ip("::ffff:10.0.0.1".parse().unwrap()),
            port: 1,
        };
        assert_eq!(mapped.to_string(), "10.0.0.1:1");
    }

    #[test]
    fn no_proxy_lists() {
        assert!(no_proxy_matches("*", "anything"));
        assert!(no_proxy_matches("example.com", "www.example.com"));
        assert!(no_proxy_matches(".example.com", "example.com"));
        assert!(!no_proxy_matches("example.com", "badexample.com"));
        assert!(no_proxy_matches("localhost, 10.0.0.0/8", "10.1.2.3"));
        assert!(no_proxy_matches("::1", "[::1]"));
        assert!(!no_proxy_matches("10.0.0.0/8", "11.0.0.1"));
        assert!(!no_proxy_matches("", "example.com"));
        // curl's edges: `*` is a wildcard only as the whole list; an address entry matches
        // an address as an address, and never a name.
        assert!(!no_proxy_matches("localhost,*", "127.0.0.1"));
        assert!(!no_proxy_matches(" * ", "example.com"));
        assert!(no_proxy_matches("localhost,*", "localhost"));
        assert!(no_proxy_matches("0::1", "::1"));
        assert!(!no_proxy_matches("127.0.0.1.", "127.0.0.1"));
        assert!(!no_proxy_matches("0.0.1", "127.0.0.1"));
        assert!(no_proxy_matches("example.com.", "www.example.com."));
    }
}
