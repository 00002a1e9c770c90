//! The command line: the `Cli` parser, the `Command` enum, and the option groups that several
//! commands share (relay flags, socket options), defined once so that `dial` and `listen` (and
//! later `unix`) accept the same spelling with the same meaning.
//!
//! Values are checked by typed value parsers here, so a bad duration or size is a usage error
//! (exit 2) before any traffic; address arguments are checked by `net::addr` in each command.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::cmd;
use crate::net::deadline::parse_duration;
use crate::net::relay::RelayOptions;
use crate::net::sockopt::SockOpts;

/// nk: one network tool for the terminal, shell pipelines and LAN debugging.
#[derive(Debug, Parser)]
#[command(
    name = "nk",
    version,
    about = "One network tool for the terminal: netcat-style TCP relays, and more.",
    long_about = "One network tool for the terminal, shell pipelines and LAN debugging.\n\n\
        Payload goes to stdout, diagnostics to stderr. Exit status: 0 success, 1 the operation \
        failed, 2 usage error (nothing sent), 130 interrupted; a closed stdout (`| head`) ends \
        quietly with 0.",
    after_long_help = "Examples:\n  \
        nk listen -v 8080 > received.bin          # wait for one TCP client, save what it sends\n  \
        nk dial 127.0.0.1 8080 < file.bin         # send a file, half-close, print the reply\n  \
        printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' | nk dial example.com:80\n  \
        nk completions bash > /etc/bash_completion.d/nk",
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// More diagnostics on stderr: -v connections and summary, -vv every step with timestamps.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Each short line is an `about` attribute, not a doc comment: a variant's
/// doc comment would replace the command's own long help (its `long_about`), which
/// `nk <command> --help` must show.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(about = "Connect to a TCP server and relay stdin/stdout (like nc HOST PORT).")]
    Dial(cmd::dial::DialArgs),
    #[command(
        about = "Accept one TCP connection and relay it with stdin/stdout (like nc -l PORT)."
    )]
    Listen(cmd::listen::ListenArgs),
    #[command(about = "Send and receive UDP datagrams (like nc -u), or serve them with -l.")]
    Udp(cmd::udp::UdpArgs),
    #[command(about = "Connect to or listen on a Unix domain socket (like nc -U).")]
    Unix(cmd::unix::UnixArgs),
    #[command(
        about = "Forward every client of a port or Unix socket to a target (socat TCP-LISTEN,fork)."
    )]
    Forward(cmd::forward::ForwardArgs),
    #[command(
        about = "Resolve names and addresses, query DNS records (like dig), look up service ports."
    )]
    Resolve(cmd::resolve::ResolveArgs),
    #[command(about = "Address and netmask arithmetic, IPv4 and IPv6 (like ipcalc).")]
    Mask(cmd::mask::MaskArgs),
    #[command(
        about = "Send ICMP echo requests, IPv4 and IPv6 (like iputils ping; fping with several targets or -g)."
    )]
    Ping(cmd::ping::PingArgs),
    #[command(
        about = "Ask an HTTP server for its response head (like curl -sI), or the body with --get."
    )]
    Head(cmd::head::HeadArgs),
    #[command(about = "Send a mail through an SMTP server, checking every reply (like swaks).")]
    Smtp(cmd::smtp::SmtpArgs),
    #[command(
        about = "RFC 862 echo: check a server's echo, probe its round-trip time, or serve (-l)."
    )]
    Echo(cmd::inetd::EchoArgs),
    #[command(
        about = "RFC 863 discard: send stdin to a server and confirm delivery, or serve (-l)."
    )]
    Discard(cmd::inetd::DiscardArgs),
    #[command(
        about = "RFC 864 chargen: read (and check) a server's character stream, or serve it (-l)."
    )]
    Chargen(cmd::inetd::ChargenArgs),
    #[command(about = "RFC 867 daytime: ask a server the time, or serve it (-l).")]
    Daytime(cmd::inetd::DaytimeArgs),
    #[command(about = "RFC 865 quote of the day: ask a server for a quote, or serve them (-l).")]
    Qotd(cmd::inetd::QotdArgs),
    #[command(about = "RFC 868 time: ask a server its clock (and its offset), or serve it (-l).")]
    Time(cmd::inetd::TimeArgs),
    #[command(about = "Print a shell completion script (bash, zsh, fish, elvish, powershell).")]
    Completions(cmd::completions::CompletionsArgs),
    #[command(about = "Print the man page (roff) of nk or of one of its commands.")]
    Man(cmd::completions::ManArgs),
}

/// `-4` / `-6`.
#[derive(Debug, Clone, Copy, Args)]
pub struct FamilyArgs {
    /// Use IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Use IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,
}

impl FamilyArgs {
    /// The restriction these flags ask for.
    pub fn family(&self) -> crate::net::addr::Family {
        crate::net::addr::Family::from_flags(self.ipv4, self.ipv6)
    }
}

/// How bytes are relayed between stdin/stdout and the connection.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Relay")]
pub struct RelayArgs {
    /// Close the connection when no byte moved either way for DUR (exit 1); 0 means never.
    #[arg(short = 'i', long = "idle-timeout", value_name = "DUR", value_parser = parse_duration)]
    pub idle: Option<Duration>,
    /// After stdin EOF, exit at the latest DUR later (0: at once).
    #[arg(short = 'q', value_name = "DUR", value_parser = parse_duration)]
    pub quit_after_eof: Option<Duration>,
    /// Do not half-close the connection at stdin EOF; keep reading until the peer closes.
    #[arg(long)]
    pub no_shutdown: bool,
    /// Half-close the connection at stdin EOF: nk's default, accepted for nc's -N.
    #[arg(short = 'N', conflicts_with = "no_shutdown")]
    pub shutdown_at_eof: bool,
    /// Only send: stdin to the peer; received data is read and dropped.
    #[arg(long, conflicts_with = "recv_only")]
    pub send_only: bool,
    /// Only receive: the peer to stdout; stdin is never read.
    #[arg(long)]
    pub recv_only: bool,
    /// Stop sending at the peer's EOF (Ncat >= 7.96's habit). The cost: input stdin delivers
    /// after that EOF is never sent, even if the peer only half-closed and still reads.
    #[arg(long)]
    pub end_at_peer_eof: bool,
    /// Send each bare LF of stdin as CRLF (for SMTP, HTTP and other line protocols).
    #[arg(short = 'C', long = "crlf")]
    pub crlf: bool,
    /// Hex dump both directions ('>' sent, '<' received) to FILE, or to stderr with '-'.
    #[arg(short = 'x', long = "hex-dump", value_name = "FILE|-")]
    pub hexdump: Option<String>,
    /// Record the data received to FILE ('-': stderr) while relaying, byte for byte; with -k,
    /// every client's into the one file, a read at a time (ncat's -o records both directions
    /// unmarked: see --output-both).
    #[arg(short = 'o', long = "output", value_name = "FILE|-")]
    pub output: Option<String>,
    /// With -o: append to FILE instead of truncating it.
    #[arg(long, requires = "output")]
    pub append_output: bool,
    /// With -o: record both directions, each line marked '> ' (sent) or '< ' (received).
    #[arg(long, requires = "output")]
    pub output_both: bool,
}

/// Opens the `-o FILE|-` recording (created or opened for appending now: an error before any
/// traffic if it cannot be).
pub fn open_output(
    target: Option<&str>,
    append: bool,
    both: bool,
) -> anyhow::Result<Option<std::sync::Arc<crate::net::relay::Recorder>>> {
    let writer: Box<dyn std::io::Write + Send> = match target {
        None => return Ok(None),
        Some("-") => Box::new(std::io::stderr()),
        Some(path) => {
            let mut open = std::fs::OpenOptions::new();
            if append {
                open.append(true).create(true);
            } else {
                open.write(true).create(true).truncate(true);
            }
            // Unwritable is a usage error, found before any traffic (as for -x).
            Box::new(
                open.open(path)
                    .map_err(|e| crate::exit::usage(format!("open output file {path}: {e}")))?,
            )
        }
    };
    let path = target.unwrap_or("-");
    Ok(Some(std::sync::Arc::new(crate::net::relay::Recorder::new(
        writer, path, both,
    ))))
}

/// Where `-x` dumps go: nowhere, stderr (`-`), or a file.
pub type HexDump = Option<std::sync::Arc<std::sync::Mutex<Box<dyn std::io::Write + Send>>>>;

/// Opens the `-x FILE|-` destination (created now: an error before any traffic if it cannot).
pub fn open_hexdump(target: Option<&str>) -> anyhow::Result<HexDump> {
    let writer: Box<dyn std::io::Write + Send> = match target {
        None => return Ok(None),
        Some("-") => Box::new(std::io::stderr()),
        // A file that cannot be made is a usage error, found before any traffic.
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| crate::exit::usage(format!("create hex dump file {path}: {e}")))?,
        ),
    };
    Ok(Some(std::sync::Arc::new(std::sync::Mutex::new(writer))))
}

impl RelayArgs {
    /// The relay options these flags ask for; opens the `-x` file (an error if it cannot).
    pub fn options(&self) -> anyhow::Result<RelayOptions> {
        use std::sync::Arc;
        let hexdump = open_hexdump(self.hexdump.as_deref())?;
        let output = open_output(self.output.as_deref(), self.append_output, self.output_both)?;
        Ok(RelayOptions {
            half_close: !self.no_shutdown,
            quit_after_eof: self.quit_after_eof,
            idle_timeout: crate::net::deadline::idle_limit(self.idle),
            receive_only: self.recv_only,
            send_only: self.send_only,
            crlf: self.crlf,
            end_at_peer_eof: self.end_at_peer_eof,
            hexdump,
            output,
            counters: Arc::default(),
        })
    }
}

/// How a multi-client listener (`-k` without `-e`, `--broker`, `--chat`) treats clients that
/// fall behind and long lines (listen and unix -l).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Many clients")]
pub struct HubArgs {
    /// Drop a client that falls more than 4 MiB behind (it gets a reset, stderr says so),
    /// instead of the default back-pressure: stdin (or the other clients) waiting for it.
    #[arg(long)]
    pub drop_slow: bool,
    /// With -k: the longest line held back so that clients' lines never interleave on
    /// stdout (default 65536); a longer one is written in pieces, and stderr says so.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(usize))]
    pub max_line: Option<usize>,
}

impl HubArgs {
    /// The hub options these flags ask for; a usage error when the listener serves one client
    /// (`many` false), where they would have no effect. `relay`'s --send-only keeps a
    /// broker's clients off stdout (the operator only talks).
    pub fn options(
        &self,
        many: bool,
        relay: &RelayArgs,
    ) -> anyhow::Result<crate::net::hub::HubOptions> {
        let given = [
            (self.drop_slow, "--drop-slow"),
            (self.max_line.is_some(), "--max-line"),
        ];
        if let (false, Some((_, flag))) = (many, given.iter().find(|(on, _)| *on)) {
            return Err(crate::exit::usage(format!(
                "{flag} is for a listener with many clients (-k without -e/-c, --broker, --chat)"
            )));
        }
        Ok(crate::net::hub::HubOptions {
            drop_slow: self.drop_slow,
            max_line: self.max_line.unwrap_or(crate::net::hub::MAX_HELD_LINE),
            show_on_stdout: !relay.send_only,
        })
    }
}

/// `--allow` / `--deny` and their files: whom a server serves (listen, the services).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Access")]
pub struct AccessArgs {
    /// Serve only clients in these addresses or CIDR blocks (repeatable, or comma-separated);
    /// an allow list that comes out empty (a file of comments) admits nobody.
    #[arg(long, value_name = "SPEC")]
    pub allow: Vec<String>,
    /// Never serve clients in this address or CIDR block; close them at once (repeatable;
    /// wins over --allow).
    #[arg(long, value_name = "SPEC")]
    pub deny: Vec<String>,
    /// Read --allow entries from FILE (one per line, # comments).
    #[arg(long, value_name = "FILE")]
    pub allowfile: Vec<String>,
    /// Read --deny entries from FILE (one per line, # comments).
    #[arg(long, value_name = "FILE")]
    pub denyfile: Vec<String>,
}

impl AccessArgs {
    /// Whether any of the options was given.
    pub fn given(&self) -> bool {
        !(self.allow.is_empty()
            && self.deny.is_empty()
            && self.allowfile.is_empty()
            && self.denyfile.is_empty())
    }

    /// The access list (files are read now: a bad entry is a usage error).
    pub fn list(&self) -> anyhow::Result<crate::net::acl::AccessList> {
        crate::net::acl::AccessList::new(&self.allow, &self.deny, &self.allowfile, &self.denyfile)
    }
}

/// How a TLS client checks the server and presents itself: `dial --tls`, `head https://`,
/// `smtp --tls` / `--starttls` share these.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsTrustArgs {
    /// Trust only the certificates in FILE (PEM) instead of the system store: CAs, or the
    /// server's own certificate (even a CA:TRUE one from `openssl req -x509`, as curl accepts
    /// it); the host name and the dates are still checked.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<String>,
    /// Do not check the server's certificate at all (a warning is printed).
    #[arg(short = 'k', long, conflicts_with = "ca")]
    pub insecure: bool,
    /// The name to send (SNI) and verify, instead of the host.
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Offer these ALPN protocols (comma-separated, e.g. h2,http/1.1).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub alpn: Vec<String>,
    /// A client certificate (PEM), with --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<String>,
    /// The client certificate's private key (PEM), with --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<String>,
    #[command(flatten)]
    pub protocol: TlsProtocolArgs,
}

/// `--tls-min` and `--ciphers`, on every TLS client and server.
#[derive(Debug, Clone, Args)]
pub struct TlsProtocolArgs {
    /// The oldest TLS version to accept: 1.2 (the default) or 1.3 (socat's min-proto-version).
    #[arg(long = "tls-min", value_name = "VERSION", value_parser = ["1.2", "1.3"])]
    pub tls_min: Option<String>,
    /// Only these cipher suites (comma- or colon-separated; IANA names such as
    /// TLS_AES_256_GCM_SHA384, rustls names, or OpenSSL names such as
    /// ECDHE-ECDSA-AES128-GCM-SHA256), like ncat's --ssl-ciphers.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub ciphers: Vec<String>,
}

impl TlsProtocolArgs {
    /// The first of these options given, for "needs --tls" errors.
    pub fn given(&self) -> Option<&'static str> {
        match (self.tls_min.is_some(), self.ciphers.is_empty()) {
            (true, _) => Some("--tls-min"),
            (false, false) => Some("--ciphers"),
            (false, true) => None,
        }
    }

    /// What these flags ask of rustls.
    pub fn options(&self) -> crate::net::tls::ProtocolOptions {
        crate::net::tls::ProtocolOptions {
            tls13_only: self.tls_min.as_deref() == Some("1.3"),
            ciphers: self
                .ciphers
                .iter()
                .flat_map(|c| c.split(':'))
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

impl TlsTrustArgs {
    /// The first of these options given, for "needs --tls" errors.
    pub fn given(&self) -> Option<&'static str> {
        [
            (self.ca.is_some(), "--ca"),
            (self.insecure, "--insecure"),
            (self.sni.is_some(), "--sni"),
            (!self.alpn.is_empty(), "--alpn"),
            (self.cert.is_some(), "--cert"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
        .or_else(|| self.protocol.given())
    }

    /// The client configuration (files are read now: a bad one is a usage error before any
    /// traffic). `default_alpn` is offered when --alpn is not given.
    pub fn config(
        &self,
        default_alpn: &[&str],
    ) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
        let alpn = if self.alpn.is_empty() {
            default_alpn.iter().map(|p| p.to_string()).collect()
        } else {
            self.alpn.clone()
        };
        crate::net::tls::client_config(&crate::net::tls::ClientOptions {
            ca: self.ca.clone(),
            insecure: self.insecure,
            alpn,
            cert: self.cert.clone(),
            key: self.key.clone(),
            protocol: self.protocol.options(),
            for_proxy: false,
        })
    }

    /// The name to verify the server by: --sni, or the host the user gave.
    pub fn server_name(&self, host: &str) -> String {
        self.sni.clone().unwrap_or_else(|| host.to_string())
    }

    /// A usage error when these options are given without TLS (`wanted` names the flags).
    pub fn refuse_without_tls(&self, wanted: &str) -> anyhow::Result<()> {
        match self.given() {
            Some(flag) => Err(crate::exit::usage(format!("{flag} needs {wanted}"))),
            None => Ok(()),
        }
    }
}

/// `dial --tls` and its trust options.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsClientArgs {
    /// Speak TLS (rustls): verify the server against the system store, then webpki-roots;
    /// -v prints the version, suite, ALPN and the server's certificate (subject, issuer,
    /// validity, SHA-256).
    #[arg(long)]
    pub tls: bool,
    #[command(flatten)]
    pub trust: TlsTrustArgs,
}

impl TlsClientArgs {
    /// The TLS client configuration, or `None` without --tls (files are read now).
    pub fn config(&self) -> anyhow::Result<Option<std::sync::Arc<rustls::ClientConfig>>> {
        if !self.tls {
            self.trust.refuse_without_tls("--tls")?;
            return Ok(None);
        }
        self.trust.config(&[]).map(Some)
    }
}

/// `listen --tls` and its certificate.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsServerArgs {
    /// Speak TLS (rustls) with each client; without --cert/--key an ephemeral self-signed
    /// certificate for localhost, 127.0.0.1 and ::1 is made (-v prints its SHA-256).
    #[arg(long)]
    pub tls: bool,
    /// The server certificate chain (PEM), with --key.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "key"])]
    pub cert: Option<String>,
    /// The server's private key (PEM), with --cert.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "cert"])]
    pub key: Option<String>,
    /// Accept these ALPN protocols (comma-separated).
    #[arg(long, value_name = "LIST", requires = "tls", value_delimiter = ',')]
    pub alpn: Vec<String>,
    /// Require a client certificate signed by a CA in FILE (PEM), or one that is itself in
    /// FILE (a self-signed client certificate); clients without one are refused in the
    /// handshake. -v prints each client's subject; -e/-c programs get it in
    /// NK_TLS_PEER_SUBJECT.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca: Option<String>,
    #[command(flatten)]
    pub protocol: TlsProtocolArgs,
}

impl TlsServerArgs {
    /// The TLS server configuration, or `None` without --tls.
    pub fn config(&self) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        if !self.tls {
            if let Some(flag) = self.protocol.given() {
                return Err(crate::exit::usage(format!("{flag} needs --tls")));
            }
            return Ok(None);
        }
        let (config, fingerprint) = crate::net::tls::server_config(
            self.cert.as_deref(),
            self.key.as_deref(),
            &self.alpn,
            self.ca.as_deref(),
            &self.protocol.options(),
        )?;
        if self.cert.is_none() {
            crate::info!("TLS certificate SHA-256 {fingerprint} (self-signed, made for this run)");
        } else {
            crate::info!("TLS certificate SHA-256 {fingerprint}");
        }
        Ok(Some(config))
    }
}

/// `-e` / `-c`: a program per connection instead of stdin/stdout.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Program per connection")]
pub struct ExecArgs {
    /// Run PROG with its stdin/stdout connected to the peer ('PROG ARGS', split on
    /// whitespace, `\ ` a space within a word, no shell, like ncat --exec). Its stderr is nk's.
    #[arg(
        short = 'e',
        long = "exec",
        value_name = "'PROG ARGS'",
        conflicts_with = "shell"
    )]
    pub exec: Option<String>,
    /// Like -e, but CMD is run by /bin/sh -c (pipes, variables such as $NK_CONN_SEQ).
    #[arg(short = 'c', long = "sh-exec", value_name = "CMD")]
    pub shell: Option<String>,
}

impl ExecArgs {
    /// The program to run per connection, if any.
    pub fn spec(&self) -> anyhow::Result<Option<crate::net::exec::ExecSpec>> {
        crate::net::exec::ExecSpec::from_args(self.exec.as_deref(), self.shell.as_deref())
    }
}

/// A TOS byte as OpenBSD nc's -T takes it: a number (decimal or 0x hex, 0-255), a DSCP
/// codepoint name, or a precedence/TOS keyword (RFC 791, RFC 1349, RFC 2474/2597/3246).
pub fn parse_tos(text: &str) -> Result<u32, String> {
    const NAMES: &[(&str, u32)] = &[
        ("af11", 0x28),
        ("af12", 0x30),
        ("af13", 0x38),
        ("af21", 0x48),
        ("af22", 0x50),
        ("af23", 0x58),
        ("af31", 0x68),
        ("af32", 0x70),
        ("af33", 0x78),
        ("af41", 0x88),
        ("af42", 0x90),
        ("af43", 0x98),
        ("cs0", 0x00),
        ("cs1", 0x20),
        ("cs2", 0x40),
        ("cs3", 0x60),
        ("cs4", 0x80),
        ("cs5", 0xa0),
        ("cs6", 0xc0),
        ("cs7", 0xe0),
        ("ef", 0xb8),
        ("critical", 0xa0),
        ("inetcontrol", 0xc0),
        ("netcontrol", 0xe0),
        ("lowdelay", 0x10),
        ("throughput", 0x08),
        ("reliability", 0x04),
        ("lowcost", 0x02),
    ];
    let lower = text.trim().to_ascii_lowercase();
    if let Some((_, value)) = NAMES.iter().find(|(name, _)| *name == lower) {
        return Ok(*value);
    }
    let number = match lower.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => lower.parse::<u32>().ok(),
    };
    match number {
        Some(n) if n <= 255 => Ok(n),
        _ => Err(
            "expected 0-255, 0xNN, a DSCP name (af11-af43, cs0-cs7, ef) or one of \
                  lowdelay, throughput, reliability, lowcost, critical, inetcontrol, netcontrol"
                .into(),
        ),
    }
}

/// Socket options.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Socket options")]
pub struct SockArgs {
    /// Disable Nagle's algorithm (TCP_NODELAY): small writes leave at once.
    #[arg(long)]
    pub nodelay: bool,
    /// Enable TCP keepalive probes (SO_KEEPALIVE).
    #[arg(long)]
    pub keepalive: bool,
    /// Type of service / traffic class byte (IP_TOS, IPV6_TCLASS): 0-255, hex (0x10), a DSCP
    /// name (af11-af43, cs0-cs7, ef) or nc's keywords (lowdelay, throughput, reliability,
    /// lowcost, critical, inetcontrol, netcontrol).
    #[arg(short = 'T', long, value_name = "TOS", value_parser = parse_tos)]
    pub tos: Option<u32>,
    /// Time to live / hop limit of outgoing packets, 1-255.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=255))]
    pub ttl: Option<u32>,
    /// Send buffer size in bytes (SO_SNDBUF); k and M suffixes allowed.
    #[arg(long, value_name = "N", value_parser = parse_size)]
    pub sndbuf: Option<usize>,
    /// Receive buffer size in bytes (SO_RCVBUF); k and M suffixes allowed.
    #[arg(long, value_name = "N", value_parser = parse_size)]
    pub rcvbuf: Option<usize>,
}

impl SockArgs {
    /// The socket options these flags ask for.
    pub fn options(&self) -> SockOpts {
        SockOpts {
            nodelay: self.nodelay,
            keepalive: self.keepalive,
            tos: self.tos,
            ttl: self.ttl,
            sndbuf: self.sndbuf,
            rcvbuf: self.rcvbuf,
            reuseaddr: false,
            reuseport: false,
        }
    }
}

/// The largest buffer size accepted: far above any kernel limit (net.core.*mem_max).
const MAX_BUFFER_SIZE: u64 = 1 << 30;

/// Parses a byte size: `65536`, `64k`, `4M` (binary multiples).
pub fn parse_size(text: &str) -> Result<usize, String> {
    parse_bytes(text, MAX_BUFFER_SIZE).map(|bytes| bytes as usize)
}

/// Parses a count of bytes from 1 to `max`: `65536`, `64k`, `4M`, `2G` (binary multiples).
pub fn parse_bytes(text: &str, max: u64) -> Result<u64, String> {
    let (digits, scale) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (text, 1u64),
        Some((at, _)) => {
            let scale = match &text[at..] {
                "k" | "K" | "KiB" => 1 << 10,
                "m" | "M" | "MiB" => 1 << 20,
                "g" | "G" | "GiB" => 1 << 30,
                unit => {
                    return Err(format!(
                        "invalid size \"{text}\": unknown unit \"{unit}\" (use k, M or G)"
                    ))
                }
            };
            (&text[..at], scale)
        }
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size \"{text}\": expected a number such as 65536 or 64k"))?;
    match value.checked_mul(scale) {
        Some(bytes) if bytes > 0 && bytes <= max => Ok(bytes),
        _ => Err(format!(
            "invalid size \"{text}\": must be 1 byte to {}",
            if max % (1 << 30) == 0 {
                format!("{} GiB", max >> 30)
            } else {
                crate::log::count(max, "byte")
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        for bad in ["", "0", "k", "5x", "2048M", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}

/// `--proxy` and its companions, the same on every command that dials TCP (dial, head, smtp,
/// the echo/daytime/qotd clients, resolve --tcp, forward's target).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Proxy")]
pub struct ProxyArgs {
    /// Connect through this proxy (repeat for a chain): socks4/4a/5/5h://, http(s)://.
    ///
    /// socks4:// and socks5:// resolve the target's name here, socks4a:// and socks5h:// let
    /// the proxy resolve it; http:// asks for a CONNECT tunnel, https:// does so over TLS to
    /// the proxy. USER:PASS@ before the host gives credentials. HOST:PORT alone is of
    /// --proxy-type (http by default). Default ports: 1080 SOCKS, 3128 http, 443 https.
    /// Repeated: each proxy is reached through the one before, the target through the last.
    /// -w bounds the whole chain; dial's -i bounds each silence of a proxy in its handshake.
    /// `env` reads $all_proxy, and alone honours $no_proxy as curl does. Many proxies
    /// (tinyproxy, microsocks, ncat's) end the whole tunnel at the client's half-close:
    /// `nk dial --proxy ... < /dev/null` can then end early with exit 0; --no-shutdown or --recv-only keep it open (dante and nk listen --proxy pass
    /// the half-close on).
    #[arg(long = "proxy", value_name = "URL")]
    pub proxy: Vec<String>,
    /// The kind of a --proxy given as HOST:PORT (ncat's): socks4, socks5 or http.
    ///
    /// Names go to the proxy unless --proxy-dns says otherwise, as in ncat. A usage error
    /// when every --proxy has a scheme (it would do nothing).
    #[arg(long = "proxy-type", value_name = "TYPE", value_parser = ["socks4", "socks5", "http"])]
    pub proxy_type: Option<String>,
    /// Credentials for every proxy whose URL has none.
    ///
    /// SOCKS5 username/password (RFC 1929), HTTP Basic, the SOCKS4 user id (USER alone). A
    /// usage error when every proxy URL has its own.
    #[arg(long = "proxy-auth", value_name = "USER:PASS")]
    pub proxy_auth: Option<String>,
    /// Where names are resolved (ncat's): local, remote, both or none.
    ///
    /// The target's name and the next proxy's: local (here), remote (by the proxy), both
    /// (here, else by the proxy), none (addresses only). Default: here for socks4:// and
    /// socks5://, by the proxy for the others.
    #[arg(long = "proxy-dns", value_name = "WHERE", value_parser = crate::net::proxy::DnsMode::parse)]
    pub proxy_dns: Option<crate::net::proxy::DnsMode>,
    /// Verify https:// proxies with the certificates in FILE (PEM), not the system store
    /// (a usage error without an https:// proxy).
    #[arg(long = "proxy-ca", value_name = "FILE")]
    pub proxy_ca: Option<String>,
    /// Do not check an https:// proxy's certificate (a warning is printed; a usage error
    /// without an https:// proxy).
    #[arg(long = "proxy-insecure", conflicts_with = "proxy_ca")]
    pub proxy_insecure: bool,
}

impl ProxyArgs {
    /// Whether a proxy was asked for.
    pub fn given(&self) -> bool {
        !self.proxy.is_empty()
    }

    /// The chain of the --proxy options (`env`: $all_proxy). Companions without --proxy are a
    /// usage error: they would silently do nothing.
    pub fn chain(&self) -> anyhow::Result<crate::net::proxy::Chain> {
        if !self.given() {
            if let Some(flag) = self.companion() {
                return Err(crate::exit::usage(format!("{flag} needs --proxy")));
            }
        }
        self.chain_of(&self.proxy)
    }

    /// The first companion option given (for "needs --proxy").
    pub fn companion(&self) -> Option<&'static str> {
        [
            (self.proxy_type.is_some(), "--proxy-type"),
            (self.proxy_auth.is_some(), "--proxy-auth"),
            (self.proxy_dns.is_some(), "--proxy-dns"),
            (self.proxy_ca.is_some(), "--proxy-ca"),
            (self.proxy_insecure, "--proxy-insecure"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// The chain of `urls`, with these options (head passes the proxy it took from the
    /// environment).
    pub fn chain_of(&self, urls: &[String]) -> anyhow::Result<crate::net::proxy::Chain> {
        use crate::net::proxy::{self, Credentials, Kind};
        // ncat's default is to let the proxy resolve names: its socks4 is 4a, its socks5 5h.
        let default_kind = match self.proxy_type.as_deref() {
            Some("socks4") => Kind::Socks4a,
            Some("socks5") => Kind::Socks5h,
            _ => Kind::Http,
        };
        let auth = self.proxy_auth.as_deref().map(Credentials::parse);
        let mut hops = Vec::with_capacity(urls.len());
        // Which companions some hop takes: one that none takes would silently do nothing.
        let (mut typed, mut authed, mut https) = (false, false, false);
        for url in urls {
            let (text, from) = match url.as_str() {
                "env" => proxy::all_proxy()
                    .map(|(v, name)| (v, Some(name)))
                    .ok_or_else(|| {
                        crate::exit::usage(
                            "--proxy env: all_proxy and ALL_PROXY are unset or empty",
                        )
                    })?,
                other => (other.to_string(), None),
            };
            // A bad URL from the environment names its variable: the user did not type it.
            let mut hop = proxy::parse_url(&text, default_kind).map_err(|err| match from {
                Some(name) => crate::exit::usage(format!("--proxy env: ${name}: {err:#}")),
                None => err,
            })?;
            typed |= !text.contains("://");
            if hop.credentials.is_none() {
                authed |= auth.is_some();
                hop.credentials = auth.clone();
            }
            https |= hop.kind == Kind::Https;
            hops.push(hop);
        }
        // --proxy-dns is not among them: every kind of hop carries the next name, so where
        // that name is resolved matters to any chain.
        let unused = [
            (self.proxy_type.is_some() && !typed, "--proxy-type: it gives the kind of a --proxy written HOST:PORT, and every proxy here has a scheme"),
            (self.proxy_auth.is_some() && !authed, "--proxy-auth: it is for a proxy whose URL has no credentials, and every proxy here has its own"),
            (self.proxy_ca.is_some() && !https, "--proxy-ca: it verifies an https:// proxy, and no proxy here is one"),
            (self.proxy_insecure && !https, "--proxy-insecure: it is about an https:// proxy, and no proxy here is one"),
        ];
        if let Some((_, why)) = unused
            .into_iter()
            .find(|(unused, _)| *unused && !urls.is_empty())
        {
            return Err(crate::exit::usage(why));
        }
        let mut chain = proxy::Chain::new(
            hops,
            self.proxy_dns,
            &proxy::ProxyTrust {
                ca: self.proxy_ca.clone(),
                insecure: self.proxy_insecure,
            },
        )?;
        // `--proxy env` alone is the environment's proxy, with its exceptions, as curl
        // applies them; in a longer chain the proxies are the user's own choice.
        if urls.len() == 1 && urls[0] == "env" {
            chain.bypass = Some(proxy::no_proxy_env());
        }
        Ok(chain)
    }
}
