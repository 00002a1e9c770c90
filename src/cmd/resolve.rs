//! `nk resolve`: names to addresses through the system resolver, DNS records straight from a
//! nameserver, and service names to ports, in one command that works in pipelines.
//!
//! Two paths, because users need both answers: what *this machine* resolves a name to
//! (getaddrinfo: /etc/hosts, NSS, the order programs see, as `getent ahosts` shows), and what a
//! *nameserver* says about any record type (as dig shows). The first is the default; `-t` or
//! `--server` selects the second (`net::dns` does the exchange, `wire::dns` the decoding and
//! presentation). Items come from the arguments, or one per line of stdin, and a failed item
//! does not stop the others: each failure is one stderr line naming the query and its cause,
//! and the exit status is 1 at the end.

use std::io::{self, BufWriter, StdoutLock, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, Result};
use clap::Args;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};

use crate::cli::FamilyArgs;
use crate::cmd::{stdin_items, stdout_error};
use crate::exit::{usage, Reported, Status};
use crate::info;
use crate::net::addr::{self, Family, Host};
use crate::net::deadline::{parse_timeout, Deadline};
use crate::net::dns::{self, Answer, Encryption, ResolvConf, Transport};
use crate::net::service_names::{self, Proto};
use crate::wire::dns::{
    aligned_record_line, class_text, edns_json, flags_text, message_text, name_text, parse_class,
    parse_name, parse_subnet, parse_type, parse_type_arg, rcode_name, rdata_text, record_json,
    record_line, reverse_name, type_text, QueryOptions,
};

/// The longest stdin line read: a DNS name is at most 253 characters.
const MAX_LINE: usize = 1024;

/// Resolve names, addresses, DNS records and service ports.
#[derive(Debug, Args)]
#[command(
    long_about = "Resolve names and addresses, query DNS records, and look up service ports.\n\n\
        By default, asks the system resolver (getaddrinfo: /etc/hosts, NSS) and prints every \
        address, one per line, in the resolver's order, without duplicates. An IP literal is \
        printed in canonical form (0:0:0:0:0:0:0:1 is ::1; IPv4 in any form inet_aton takes, as \
        every nk command reads it: 127.1, 2130706433 and 0x7f.1 are 127.0.0.1); -x prints its \
        name instead. A name with non-ASCII characters is converted to its ASCII form by UTS 46 \
        on both paths (bücher.example is xn--bcher-kva.example); -v shows both forms. With \
        several queries each line starts with its query.\n\n\
        With -t TYPE or --server, asks a nameserver directly, as dig does: the servers of \
        /etc/resolv.conf (its timeout, attempts, search and ndots options apply) or --server. \
        UDP with a random ID and source port, EDNS0 (1232 bytes), TCP when the reply is \
        truncated; replies whose ID, question or source do not match are ignored. SERVFAIL and \
        REFUSED move on to the next server; NXDOMAIN is final. Answers are printed as zone-file \
        lines (--short: the data alone, as dig +short). --server without -t asks for A and AAAA; \
        an IP literal without -t asks for its PTR record. Every type is known by its name \
        (DS, DNSKEY, RRSIG, NSEC, NSEC3, HTTPS, SVCB, NAPTR, TLSA, SSHFP, URI, DNAME...) and \
        printed as dig prints it; TYPEnnn for any other. -c CH asks in the CHAOS class.\n\n\
        Query controls, as dig's: --norecurse, --dnssec (DO), --cd, --nsid, --subnet, \
        --bufsize, --noedns. --full prints dig's default view (header, flags, EDNS, every \
        section, server, time, size), also for NXDOMAIN (with the zone's SOA), which still \
        exits 1. --canonical (system path) prints getaddrinfo's canonical name.\n\n\
        -t AXFR transfers a zone over TCP, -t IXFR=SERIAL its changes since SERIAL, printing \
        each record as it comes; the transfer must end with its closing SOA, or nk says it is \
        incomplete and exits 1. Each read waits at most --timeout, -w DUR bounds the whole \
        transfer, and at most 5,000,000 records or 500,000 messages are taken.\n\n\
        --trace resolves from the root down as dig +trace does (--server is taken as the \
        root), printing each referral, the server asked and its time; glue addresses are \
        used, -w bounds the whole trace.\n\n\
        --tls is DNS over TLS (port 853), --https URL DNS over HTTPS (POST; --https-get for \
        GET); the certificate is verified as by dial --tls (--ca, --sni, -k).\n\n\
        --port SERVICE[/PROTO] or NUMBER[/PROTO] looks up /etc/services both ways (a built-in \
        table when the file is missing); with names too, prints ADDR:PORT socket addresses.\n\n\
        dig's forms work too: `nk resolve @127.0.0.1#5353 example.com MX` is `--server \
        127.0.0.1:5353 -t MX example.com`. Among the names, `@SERVER[#PORT]` is a server, a \
        record type keyword (MX, aaaa, TYPE65280...) is a type and `IN` is ignored, unless -t \
        is given: then every name is a name (`nk resolve -t A mx` asks for the host mx; so \
        does `nk resolve mx.`). -p PORT is the port of servers given without one.\n\n\
        With no NAME, reads one per line from stdin (blank lines and # comments skipped). Each \
        failed query is one stderr line naming the cause (NXDOMAIN, no data, SERVFAIL, REFUSED, \
        timed out after how long); the others are still answered, and the exit status is 1.",
    after_long_help = "Examples:\n  \
        nk resolve localhost                         # ::1 and 127.0.0.1 from /etc/hosts\n  \
        nk resolve -x 127.0.0.1                      # localhost\n  \
        nk resolve -t MX -t TXT example.com --short\n  \
        nk resolve @127.0.0.1 -p 5353 example.test MX    # dig's way\n  \
        nk resolve -t A www.example.test --server 127.0.0.1:5353 --json\n  \
        nk resolve --port telnet/tcp --port 443      # 23, https\n  \
        cut -d' ' -f1 hosts.txt | nk resolve -4\n  \
        nk resolve --tcp --proxy socks5://127.0.0.1:1080 --server 9.9.9.9 -t A example.com\n  \
        nk resolve --full --dnssec -t DNSKEY example.com @127.0.0.1   # dig's view, RRSIGs too\n  \
        nk resolve -c CH -t TXT version.bind --nsid --server 127.0.0.1 --json\n  \
        nk resolve --subnet 192.0.2.0/24 --norecurse -t A example.com --full\n  \
        nk resolve --canonical www                   # getent ahosts' canonical name\n  \
        nk resolve -t AXFR example.test @127.0.0.1 -w 30s\n  \
        nk resolve --trace www.example.com -w 10s\n  \
        nk resolve --tls --server 9.9.9.9 -t AAAA example.com\n  \
        nk resolve --https https://dns.example/dns-query -t A example.com"
)]
pub struct ResolveArgs {
    /// Names or addresses (none: one per line from stdin).
    #[arg(value_name = "NAME|ADDR")]
    pub queries: Vec<String>,

    #[command(flatten)]
    pub family: FamilyArgs,

    /// Reverse lookup: the name of an address (its PTR record with -t/--server).
    #[arg(short = 'x', long = "reverse")]
    pub reverse: bool,

    /// Ask a nameserver for these record types: any mnemonic (A, MX, DS, DNSKEY, RRSIG, NSEC,
    /// NSEC3, HTTPS, SVCB, NAPTR, TLSA, SSHFP, URI, HINFO, DNAME, OPENPGPKEY, CSYNC, ANY...) or
    /// TYPEnnn; repeatable or comma-separated.
    /// AXFR transfers the whole zone over TCP, IXFR=SERIAL the changes since SERIAL.
    #[arg(short = 't', long = "type", value_name = "TYPE", value_delimiter = ',',
          value_parser = parse_type_arg)]
    pub types: Vec<(RecordType, Option<u32>)>,

    /// The limit for a whole zone transfer (-t AXFR, IXFR=N), however many messages it
    /// takes (default: none; each read still waits at most --timeout).
    #[arg(short = 'w', value_name = "DUR", value_parser = parse_timeout)]
    pub whole: Option<Duration>,

    /// The class of the question: IN (default), CH (CHAOS: `-c CH -t TXT version.bind`), HS,
    /// or CLASSnnn.
    #[arg(short = 'c', long = "class", value_name = "CLASS", value_parser = parse_class)]
    pub class: Option<DNSClass>,

    /// Clear the RD bit: the server answers from what it holds, without recursing (dig's
    /// +norecurse).
    #[arg(long)]
    pub norecurse: bool,

    /// Set EDNS's DO bit: DNSSEC records (RRSIG, NSEC, NSEC3) come with the answers (dig's
    /// +dnssec).
    #[arg(long, conflicts_with = "noedns")]
    pub dnssec: bool,

    /// Set the CD bit: a validating resolver answers without validating (dig's +cd).
    #[arg(long)]
    pub cd: bool,

    /// Ask the server for its name (EDNS NSID, RFC 5001), shown by --full and --json.
    #[arg(long, conflicts_with = "noedns")]
    pub nsid: bool,

    /// Send EDNS Client Subnet ADDR/N (RFC 7871; 0/0: send no client address upstream);
    /// the address is cut to its N bits.
    #[arg(long, value_name = "ADDR/N", value_parser = parse_subnet, conflicts_with = "noedns")]
    pub subnet: Option<(IpAddr, u8)>,

    /// The EDNS UDP payload size advertised (512-65535; 1232 by default).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(512..),
          conflicts_with = "noedns")]
    pub bufsize: Option<u16>,

    /// Send queries without an EDNS OPT record (plain RFC 1035: 512-byte UDP replies).
    #[arg(long)]
    pub noedns: bool,

    /// dig's default view: the header (status, flags), the EDNS pseudosection (UDP size,
    /// flags, NSID, client subnet), the question, answer, authority and additional sections,
    /// then the server, the query time, the date and the reply's size. NXDOMAIN and "no data"
    /// replies are shown too (with the SOA of their authority section), and still exit 1.
    #[arg(long, conflicts_with_all = ["short", "json"])]
    pub full: bool,

    /// Iterative resolution from the root, as dig +trace: the root's NS set from the servers
    /// (resolv.conf's, or --server taken as the root of a private hierarchy), then every
    /// referral down to the answer, each with the server asked and its reply time. Every
    /// server is asked on the port of the first. -w bounds the whole trace.
    #[arg(long, conflicts_with_all = ["short", "full", "tcp"])]
    pub trace: bool,

    /// System path: print the canonical name (getaddrinfo's AI_CANONNAME: the first name of
    /// the /etc/hosts line, or the end of the CNAME chain) before the addresses, as
    /// `getent ahosts` shows it.
    #[arg(long, conflicts_with = "reverse")]
    pub canonical: bool,

    /// DNS over TLS (RFC 7858): each query on a TLS connection to port 853 of the servers,
    /// whose certificate is verified for the --server name or address (or --sni), against
    /// the system store or --ca; -k skips the check.
    #[command(flatten)]
    pub tls: crate::cli::TlsClientArgs,

    /// DNS over HTTPS (RFC 8484) to this URL (https://HOST[:PORT]/PATH, e.g.
    /// https://dns.example/dns-query): POST by default, HTTP/1.1, the TLS options as --tls.
    #[arg(long, value_name = "URL", conflicts_with_all = ["tls", "server", "tcp", "trace"])]
    pub https: Option<String>,

    /// With --https: GET with the query in ?dns= (base64url) instead of POST.
    #[arg(long, requires = "https")]
    pub https_get: bool,

    /// Nameserver to ask, ADDR[:PORT] (port 53); repeatable, asked in order. dig's
    /// `@ADDR` / `@ADDR#PORT` among the names means the same.
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub server: Vec<String>,

    /// The port of the servers given without one (dig's -p).
    #[arg(short = 'p', value_name = "PORT")]
    pub server_port: Option<u16>,

    /// Ask over TCP only (default: UDP, and TCP when a reply is truncated).
    #[arg(long)]
    pub tcp: bool,

    /// With --tcp: ask through proxies (--proxy URL, repeatable).
    #[command(flatten)]
    pub proxy: crate::cli::ProxyArgs,

    /// How long one try waits for one server (default: resolv.conf's timeout, 5s); on the
    /// system path, the limit for each lookup.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,

    /// Rounds over the servers that have not answered (default: resolv.conf's attempts, 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10))]
    pub tries: Option<u32>,

    /// Do not apply resolv.conf's search domains to relative names.
    #[arg(long)]
    pub no_search: bool,

    /// Print the data alone: no zone-file columns, no query labels.
    #[arg(long, conflicts_with = "json")]
    pub short: bool,

    /// One JSON object per query (per query and type with -t), one per line.
    #[arg(long)]
    pub json: bool,

    /// Look up a service: SERVICE[/PROTO] gives its port, NUMBER[/PROTO] its name (PROTO tcp
    /// or udp; also PROTO/SERVICE); repeatable.
    #[arg(long, value_name = "SERVICE[/PROTO]")]
    pub port: Vec<String>,
}

/// dig's positional forms, turned into the options they mean: `@SERVER[#PORT]` is `--server`,
/// a record type keyword (`MX`, `aaaa`) is `-t` unless `-t` was given (then every positional
/// is a name: `nk resolve -t A mx` asks for the host called mx), `IN` (the only class) is
/// dropped, and `-p PORT` is the port of every server given without one. Without this,
/// `nk resolve example.com MX` would quietly ask the system resolver for a host called MX.
fn dig_forms(mut args: ResolveArgs) -> Result<ResolveArgs> {
    let types_given = !args.types.is_empty();
    let mut names = Vec::with_capacity(args.queries.len());
    for word in std::mem::take(&mut args.queries) {
        if let Some(server) = word.strip_prefix('@') {
            args.server.push(dig_server(server).map_err(usage)?);
        } else if !types_given && args.class.is_none() && is_class_keyword(&word) {
            args.class = Some(parse_class(&word).map_err(usage)?);
        } else if !types_given && is_type_keyword(&word) {
            args.types.push((parse_type(&word).map_err(usage)?, None));
        } else {
            names.push(word);
        }
    }
    args.queries = names;
    if let Some(port) = args.server_port {
        for server in &mut args.server {
            if addr::parse_target(server, None, Proto::Udp).is_err() {
                *server = match server.parse::<std::net::Ipv6Addr>() {
                    Ok(_) => format!("[{server}]:{port}"),
                    Err(_) => format!("{server}:{port}"),
                };
            }
        }
    }
    Ok(args)
}

/// dig's `SERVER[#PORT]` (the part after `@`) as `--server` takes it.
fn dig_server(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("'@' needs a server: @ADDR or @ADDR#PORT".into());
    }
    Ok(match text.split_once('#') {
        Some((host, port)) if host.contains(':') => format!("[{host}]:{port}"),
        Some((host, port)) => format!("{host}:{port}"),
        None => text.to_string(),
    })
}

/// Whether a positional is a class keyword as dig reads it (`IN`, `CH`, `HS`, `CLASSnnn`).
fn is_class_keyword(word: &str) -> bool {
    word.bytes().all(|b| b.is_ascii_alphanumeric())
        && parse_class(word).is_ok()
        && !word.eq_ignore_ascii_case("ANY")
        && !word.eq_ignore_ascii_case("NONE")
}

/// Whether a positional is a record type keyword (as dig reads it): a name ending in a dot
/// (`mx.`) never is.
fn is_type_keyword(word: &str) -> bool {
    word.bytes().all(|b| b.is_ascii_alphanumeric()) && parse_type(word).is_ok()
}

/// Runs `nk resolve`.
pub fn run(args: ResolveArgs) -> Result<()> {
    let args = dig_forms(args)?;
    if (args.tls.tls || args.https.is_some()) && (args.tcp || args.trace) {
        return Err(usage(
            "--tls and --https carry the queries themselves; they do not combine with --tcp \
             or --trace",
        ));
    }
    let ports = args
        .port
        .iter()
        .map(|text| PortQuery::parse(text).map_err(usage))
        .collect::<Result<Vec<_>>>()?;
    let transfers = args
        .types
        .iter()
        .filter(|(t, _)| matches!(t, RecordType::AXFR | RecordType::IXFR))
        .count();
    if args
        .types
        .iter()
        .any(|(t, s)| *t == RecordType::IXFR && s.is_none())
    {
        return Err(usage(
            "-t IXFR needs the serial of the version you hold: -t IXFR=SERIAL",
        ));
    }
    if transfers > 0 && (args.tls.tls || args.https.is_some()) {
        return Err(usage(
            "zone transfers go over TCP; --tls and --https do not carry them",
        ));
    }
    if transfers > 1 {
        return Err(usage("one zone transfer (-t AXFR or IXFR=N) per run"));
    }
    if (args.proxy.given() || args.proxy.companion().is_some()) && !args.tcp {
        return Err(usage(
            "--proxy needs --tcp: a proxy carries TCP, and DNS goes over UDP unless --tcp",
        ));
    }
    let dns_flags = args.class.is_some()
        || args.norecurse
        || args.dnssec
        || args.cd
        || args.nsid
        || args.subnet.is_some()
        || args.bufsize.is_some()
        || args.noedns
        || args.full
        || args.trace;
    let direct = !args.types.is_empty()
        || !args.server.is_empty()
        || args.tcp
        || args.tls.tls
        || args.https.is_some()
        || dns_flags;
    if args.https.is_none() && !args.tls.tls {
        args.tls.trust.refuse_without_tls("--tls or --https")?;
    }
    if direct && args.canonical {
        return Err(usage(
            "--canonical shows getaddrinfo's canonical name (the system path); it does not \
             combine with -t, --server or the DNS query options (--full shows CNAMEs)",
        ));
    }
    if direct && !ports.is_empty() && !args.queries.is_empty() {
        return Err(usage(
            "--port with names prints socket addresses from the system resolver; \
             it does not combine with -t, --server or --tcp",
        ));
    }
    if args.reverse && args.types.iter().any(|(t, _)| *t != RecordType::PTR) {
        return Err(usage(
            "-x looks up PTR records; it does not combine with other -t types",
        ));
    }
    let plan = Plan::new(&args, direct);
    // Every argument is checked before any traffic.
    for query in &args.queries {
        plan.check(query).map_err(usage)?;
    }
    let conf = ResolvConf::system();
    let transport = if direct {
        Some(transport(&args, &conf)?)
    } else {
        None
    };
    let mut session = Session {
        plan,
        transport,
        conf,
        out: BufWriter::new(io::stdout().lock()),
        // Labels tell the answers of several queries apart: several names (or stdin), or
        // several --port lookups on their own.
        labelled: match (args.queries.len(), ports.len()) {
            (0, 0) => true,
            (0, ports) => ports > 1,
            (names, _) => names > 1,
        },
        failures: 0,
        bad_lines: 0,
    };
    if args.queries.is_empty() && !ports.is_empty() {
        for port in &ports {
            session.port(port)?;
        }
    } else {
        let port_numbers = session.port_numbers(&ports)?;
        if args.queries.is_empty() {
            stdin_items(MAX_LINE, |number, text| match session.plan.check(text) {
                Ok(()) => session.query(text, &port_numbers),
                Err(err) => {
                    session.bad_lines += 1;
                    crate::eprintln_safe!("nk: line {number}: {err}");
                    Ok(())
                }
            })?;
        } else {
            for query in &args.queries {
                session.query(query, &port_numbers)?;
            }
        }
    }
    session.finish()
}

/// What the command line asks of each query.
#[derive(Debug)]
struct Plan {
    direct: bool,
    reverse: bool,
    types: Vec<RecordType>,
    /// Whether `-t` chose the types (otherwise an address asks for its PTR record).
    types_given: bool,
    family: Family,
    timeout: Option<Duration>,
    search: bool,
    short: bool,
    json: bool,
    full: bool,
    canonical: bool,
    /// `-t IXFR=SERIAL`'s serial.
    ixfr_serial: Option<u32>,
    /// `-w`: the limit for a whole transfer or trace.
    whole: Option<Duration>,
    trace: bool,
}

impl Plan {
    fn new(args: &ResolveArgs, direct: bool) -> Plan {
        let family = args.family.family();
        let types = if !args.types.is_empty() {
            dedup(args.types.iter().map(|(t, _)| *t).collect())
        } else if args.reverse {
            vec![RecordType::PTR]
        } else {
            match family {
                Family::V4 => vec![RecordType::A],
                Family::V6 => vec![RecordType::AAAA],
                Family::Any => vec![RecordType::A, RecordType::AAAA],
            }
        };
        Plan {
            direct,
            reverse: args.reverse,
            types,
            types_given: !args.types.is_empty(),
            family,
            timeout: args.timeout,
            search: !args.no_search,
            short: args.short,
            json: args.json,
            full: args.full,
            canonical: args.canonical,
            ixfr_serial: args.types.iter().find_map(|(_, serial)| *serial),
            whole: args.whole,
            trace: args.trace,
        }
    }

    /// Whether a query is well-formed for this plan (a usage error otherwise).
    fn check(&self, text: &str) -> Result<(), String> {
        let literal = ip_literal(text);
        if self.reverse && literal.is_none() {
            return Err(format!(
                "-x needs an IP address, not '{}'",
                text.escape_debug()
            ));
        }
        if self.direct {
            match literal {
                None => {
                    dns_name(text, true)?;
                }
                Some(_) if self.types_given && self.types.iter().any(|t| *t != RecordType::PTR) => {
                    return Err(format!(
                        "'{text}' is an address, not a name: -t {} asks about names (without \
                         -t, or with -x, an address asks for its PTR record)",
                        self.types[0]
                    ));
                }
                Some(_) => {}
            }
            return Ok(());
        }
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        addr::host_of(bare).map(drop).map_err(|e| format!("{e:#}"))
    }
}

/// An IP literal, also in brackets (`[::1]`), or `None` for a name: the literals every nk
/// command takes (inet_aton's IPv4 forms: `127.1` is 127.0.0.1 here as in `nk dial`).
fn ip_literal(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    addr::ip_literal(bare)
}

/// A name for a direct query: in ASCII (UTS 46 for an IDN, as every nk command converts it;
/// shown with -v unless `quiet`), then checked as a DNS name (wildcards and `_service` labels
/// included).
fn dns_name(text: &str, quiet: bool) -> Result<Name, String> {
    let ascii = addr::dns_name_to_ascii(text).map_err(|e| format!("{e:#}"))?;
    let name = parse_name(&ascii)?;
    if !quiet {
        addr::explain(text, &Host::Name(ascii));
    }
    Ok(name)
}

fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut unique = Vec::with_capacity(items.len());
    for item in items {
        if !unique.contains(&item) {
            unique.push(item);
        }
    }
    unique
}

/// The servers and timing for direct queries: --server or resolv.conf, --timeout, --tries.
fn transport(args: &ResolveArgs, conf: &ResolvConf) -> Result<Transport> {
    let tls_config = match args.tls.tls {
        true => args.tls.config()?,
        false => None,
    };
    let mut https = None;
    if let Some(text) = &args.https {
        let url = crate::wire::http::parse_url(text)
            .map_err(|e| usage(format!("--https {text}: {e}")))?;
        if !url.tls {
            return Err(usage(format!(
                "--https {text}: DNS over HTTPS needs an https:// URL"
            )));
        }
        https = Some(url);
    }
    // DNS over TLS listens on 853 (RFC 7858 §3.1); plain DNS on 53.
    let default_port = if args.tls.tls { 853 } else { 53 };
    let mut targets = Vec::new();
    for text in &args.server {
        let target = addr::parse_target_or(text, default_port, Proto::Udp)
            .map_err(|e| usage(format!("--server {text}: {e:#}")))?;
        targets.push(target);
    }
    if let Some(url) = &https {
        let target = addr::parse_target_or(&url.authority(), url.port, Proto::Tcp)
            .map_err(|e| usage(format!("--https {url}: {e:#}")))?;
        targets.push(target);
    }
    let servers = if targets.is_empty() {
        conf.servers
            .iter()
            .map(|s| SocketAddr::new(s.ip(), default_port))
            .collect()
    } else {
        let mut servers = Vec::new();
        for target in &targets {
            match &target.host {
                Host::Ip(ip) => servers.push(SocketAddr::new(*ip, target.port)),
                Host::Name(_) => {
                    let deadline = Deadline::after(Some(conf.timeout * conf.attempts));
                    servers.extend(addr::resolve(target, Family::Any, deadline)?);
                }
            }
        }
        dedup(servers)
    };
    Ok(Transport {
        servers,
        timeout: args.timeout.unwrap_or(conf.timeout),
        tries: args.tries.unwrap_or(conf.attempts),
        tcp_only: args.tcp,
        proxies: args.proxy.chain()?,
        options: QueryOptions {
            class: args.class.unwrap_or(DNSClass::IN),
            recurse: !args.norecurse,
            // dig +trace asks with DO set: the DS and RRSIG records of each step show.
            dnssec_ok: args.dnssec || args.trace,
            checking_disabled: args.cd,
            nsid: args.nsid,
            subnet: args.subnet,
            bufsize: args.bufsize.unwrap_or(crate::wire::dns::EDNS_PAYLOAD),
            edns: !args.noedns,
        },
        encryption: match (tls_config, https) {
            (Some(config), _) => {
                // The name the certificate must carry: --sni, or the server as given.
                let host = match targets.first().map(|t| &t.host) {
                    Some(Host::Name(name)) => name.clone(),
                    Some(Host::Ip(ip)) => ip.to_string(),
                    None => conf
                        .servers
                        .first()
                        .map(|s| s.ip().to_string())
                        .unwrap_or_default(),
                };
                Encryption::Tls {
                    config,
                    name: args.tls.trust.server_name(&host),
                }
            }
            (None, Some(url)) => Encryption::Https {
                config: args.tls.trust.config(&["http/1.1"])?,
                name: args.tls.trust.server_name(&url.host),
                url,
                post: !args.https_get,
            },
            (None, None) => Encryption::Clear,
        },
    })
}

/// One run: the plan, where answers go, and how many queries failed.
struct Session<'a> {
    plan: Plan,
    transport: Option<Transport>,
    conf: ResolvConf,
    out: BufWriter<StdoutLock<'a>>,
    labelled: bool,
    failures: usize,
    bad_lines: usize,
}

impl Session<'_> {
    /// Answers one query; a failed lookup is reported and counted, only a closed stdout ends
    /// the run.
    fn query(&mut self, text: &str, ports: &[u16]) -> Result<()> {
        match self.transport.take() {
            Some(transport) => {
                let result = self.direct(text, &transport);
                self.transport = Some(transport);
                result?;
            }
            None => self.system(text, ports)?,
        }
        // Streaming: a pipeline sees each answer as soon as it is known.
        self.out.flush().map_err(stdout_error)
    }

    fn line(&mut self, text: &str) -> Result<()> {
        writeln!(self.out, "{text}").map_err(stdout_error)
    }

    fn fail(&mut self, what: &str, err: impl std::fmt::Display) {
        self.failures += 1;
        let _ = self.out.flush();
        crate::eprintln_safe!("nk: resolve {what}: {err}");
    }

    /// The system path: getaddrinfo / getnameinfo, or the literal itself.
    fn system(&mut self, text: &str, ports: &[u16]) -> Result<()> {
        let deadline = Deadline::after(self.plan.timeout);
        if self.plan.reverse {
            let Some(ip) = ip_literal(text) else {
                return Ok(());
            };
            return match addr::lookup_name(ip, deadline) {
                Ok(name) => self.emit(text, "names", &[name]),
                Err(err) => {
                    self.json_error(text, None, &err.to_string())?;
                    self.fail(&format!("-x {text}"), err);
                    Ok(())
                }
            };
        }
        if self.plan.canonical {
            return self.canonical(text, deadline);
        }
        // Checked by Plan::check: the error arm is for the impossible, never a panic.
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        let ips: Vec<IpAddr> = match addr::parse_host(bare) {
            Ok(Host::Ip(ip)) if self.plan.family.allows(ip) => vec![ip],
            Ok(Host::Ip(ip)) => {
                let why = format!("{ip} is an IPv{} address", if ip.is_ipv4() { 4 } else { 6 });
                self.json_error(text, None, &why)?;
                self.fail(text, why);
                return Ok(());
            }
            Ok(Host::Name(name)) => match self.lookup(text, &name, deadline)? {
                Some(ips) => ips,
                None => return Ok(()),
            },
            Err(err) => {
                self.json_error(text, None, &format!("{err:#}"))?;
                self.fail(text, format!("{err:#}"));
                return Ok(());
            }
        };
        let shown: Vec<String> = if ports.is_empty() {
            ips.iter().map(IpAddr::to_string).collect()
        } else {
            ports
                .iter()
                .flat_map(|&port| ips.iter().map(move |&ip| SocketAddr::new(ip, port)))
                .map(|a| a.to_string())
                .collect()
        };
        self.emit(text, "addresses", &shown)
    }

    /// `--canonical`: getaddrinfo's AI_CANONNAME for the query (what `getent ahosts` prints
    /// after the first address), one line; with --json the addresses come too.
    fn canonical(&mut self, text: &str, deadline: Deadline) -> Result<()> {
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        let ascii = match addr::parse_host(bare) {
            Ok(Host::Ip(ip)) => ip.to_string(),
            Ok(Host::Name(name)) => name,
            Err(err) => {
                self.json_error(text, None, &format!("{err:#}"))?;
                self.fail(text, format!("{err:#}"));
                return Ok(());
            }
        };
        let (ips, canonical) = match addr::lookup_canonical(&ascii, self.plan.family, deadline) {
            Ok(found) => found,
            Err(err) => {
                self.json_error(text, None, &format!("{err:#}"))?;
                self.fail(text, format!("{err:#}"));
                return Ok(());
            }
        };
        // glibc leaves the name as asked when nothing renames it (an address, a name
        // without CNAME); so does nk.
        let canonical = canonical.unwrap_or(ascii);
        if self.plan.json {
            let object = serde_json::json!({
                "query": text,
                "canonical": canonical,
                "addresses": dedup(ips).iter().map(IpAddr::to_string).collect::<Vec<_>>(),
            });
            return self.line(&object.to_string());
        }
        self.emit(text, "canonical", &[canonical])
    }

    /// The system resolver's addresses for `name` (the ASCII form of the query `text`) within
    /// the family, or `None` when the failure has been reported.
    fn lookup(
        &mut self,
        text: &str,
        name: &str,
        deadline: Deadline,
    ) -> Result<Option<Vec<IpAddr>>> {
        let addrs = match addr::lookup(name, 0, deadline) {
            Ok(addrs) => addrs,
            Err(err) => {
                self.json_error(text, None, &err.to_string())?;
                self.fail(text, err);
                return Ok(None);
            }
        };
        let wanted: Vec<IpAddr> = dedup(addrs.iter().map(|a| a.ip()).collect())
            .into_iter()
            .filter(|ip| self.plan.family.allows(*ip))
            .collect();
        if wanted.is_empty() {
            let which = if self.plan.family == Family::V4 {
                "IPv4"
            } else {
                "IPv6"
            };
            let why = format!("no {which} address");
            self.json_error(text, None, &why)?;
            self.fail(text, why);
            return Ok(None);
        }
        Ok(Some(wanted))
    }

    /// Prints the answers of a system lookup: plain, labelled, or one JSON object.
    fn emit(&mut self, query: &str, field: &str, values: &[String]) -> Result<()> {
        if self.plan.json {
            let object = serde_json::json!({ "query": query, field: values });
            return self.line(&object.to_string());
        }
        for value in values {
            if self.labelled && !self.plan.short {
                self.line(&format!("{query} {value}"))?;
            } else {
                self.line(value)?;
            }
        }
        Ok(())
    }

    /// The JSON object of a failed query: the same fields as an answer (`rcode` when a server
    /// gave one, `answers` empty), plus `error`.
    fn json_error(&mut self, query: &str, rtype: Option<RecordType>, error: &str) -> Result<()> {
        self.json_failure(query, rtype, error, None)
    }

    fn json_failure(
        &mut self,
        query: &str,
        rtype: Option<RecordType>,
        error: &str,
        rcode: Option<&str>,
    ) -> Result<()> {
        if !self.plan.json {
            return Ok(());
        }
        let mut object = serde_json::json!({
            "query": query,
            "error": error,
            "rcode": rcode,
            "answers": [],
        });
        if let Some(rtype) = rtype {
            object["type"] = rtype.to_string().into();
        }
        self.line(&object.to_string())
    }

    /// The direct path: one DNS query per record type.
    fn direct(&mut self, text: &str, transport: &Transport) -> Result<()> {
        let literal = ip_literal(text);
        let types = match literal {
            Some(_) if !self.plan.types_given => vec![RecordType::PTR],
            _ => self.plan.types.clone(),
        };
        for rtype in types {
            if matches!(rtype, RecordType::AXFR | RecordType::IXFR) {
                self.transfer(text, rtype, transport)?;
                continue;
            }
            // An address asks for its PTR under in-addr.arpa / ip6.arpa; any other type asks
            // about the text as a name, as dig does.
            let candidates = match literal {
                Some(ip) if rtype == RecordType::PTR => vec![reverse_name(ip)],
                _ => match dns_name(text, false) {
                    Ok(name) => self.conf.candidates(&name, self.plan.search),
                    Err(err) => {
                        self.json_error(text, Some(rtype), &err)?;
                        self.fail(&format!("{text} {}", type_text(rtype)), err);
                        continue;
                    }
                },
            };
            if self.plan.trace {
                // As dig +trace: the name as given, made absolute, no search list.
                let mut name = match literal {
                    Some(ip) if rtype == RecordType::PTR => reverse_name(ip),
                    _ => candidates.last().cloned().unwrap_or_else(Name::root),
                };
                if literal.is_none() {
                    if let Ok(typed) = dns_name(text, true) {
                        name = typed;
                    }
                }
                name.set_fqdn(true);
                self.trace(text, &name, rtype, transport)?;
                continue;
            }
            match ask_candidates(transport, &candidates, rtype) {
                Ok(answer) => self.show_answer(text, rtype, &answer)?,
                Err(err) => {
                    let message = format!("{err:#}");
                    let unanswered = err.downcast_ref::<Unanswered>();
                    // --full shows the reply that said no (its authority section carries the
                    // zone's SOA, and NSEC records with --dnssec), as dig does.
                    if let (true, Some(answer)) = (self.plan.full, unanswered) {
                        self.show_full(&answer.answer)?;
                    }
                    match unanswered {
                        Some(unanswered) if self.plan.json => {
                            let mut object = self.answer_json(text, rtype, &unanswered.answer);
                            object["error"] = message.clone().into();
                            self.line(&object.to_string())?;
                        }
                        _ => self.json_failure(text, Some(rtype), &message, None)?,
                    }
                    self.fail(&format!("{text} {}", type_text(rtype)), message);
                }
            }
        }
        Ok(())
    }

    /// A zone transfer: every record as it arrives (zone lines, --short data, --full in
    /// dig's layout with its closing lines), or one JSON object with them all.
    fn transfer(&mut self, text: &str, rtype: RecordType, transport: &Transport) -> Result<()> {
        let kind = type_text(rtype);
        let mut zone = match dns_name(text, false) {
            Ok(name) => name,
            Err(err) => {
                self.json_error(text, Some(rtype), &err)?;
                self.fail(&format!("{text} {kind}"), err);
                return Ok(());
            }
        };
        zone.set_fqdn(true);
        let serial = if rtype == RecordType::IXFR {
            self.plan.ixfr_serial
        } else {
            None
        };
        let (json, short, full) = (self.plan.json, self.plan.short, self.plan.full);
        let mut collected = Vec::new();
        let mut stdout_failure = None;
        let out = &mut self.out;
        let result = dns::transfer(transport, &zone, serial, self.plan.whole, |record| {
            if json {
                collected.push(record_json(record));
                return Ok(());
            }
            let line = if short {
                rdata_text(record)
            } else if full {
                aligned_record_line(record)
            } else {
                record_line(record)
            };
            writeln!(out, "{line}").map_err(|err| {
                // Kept apart: a closed stdout ends the run, it is not the transfer's failure.
                stdout_failure = Some(stdout_error(err));
                anyhow!("stdout")
            })
        });
        if let Some(err) = stdout_failure {
            return Err(err);
        }
        let summary = match result {
            Ok(summary) => summary,
            Err(err) => {
                let message = format!("{err:#}");
                if json {
                    let object = serde_json::json!({
                        "query": text, "type": kind, "error": message,
                        "answers": collected,
                    });
                    self.line(&object.to_string())?;
                }
                self.fail(&format!("{text} {kind}"), message);
                return Ok(());
            }
        };
        info!(
            "{text} {kind}: {} record(s) in {} message(s), {} bytes, from {} in {:.1} ms",
            summary.records,
            summary.messages,
            summary.bytes,
            summary.server,
            summary.elapsed.as_secs_f64() * 1000.0
        );
        if json {
            let object = serde_json::json!({
                "query": text,
                "type": kind,
                "server": summary.server.to_string(),
                "transport": "tcp",
                "serial": summary.serial,
                "records": summary.records,
                "messages": summary.messages,
                "size": summary.bytes,
                "rtt_ms": (summary.elapsed.as_secs_f64() * 1e6).round() / 1e3,
                "answers": collected,
            });
            return self.line(&object.to_string());
        }
        if full {
            let server = summary.server;
            let text = format!(
                ";; Query time: {} msec\n;; SERVER: {}#{}({}) (TCP)\n;; WHEN: {}\n\
                 ;; XFR size: {} records (messages {}, bytes {})\n",
                summary.elapsed.as_millis(),
                server.ip(),
                server.port(),
                server.ip(),
                chrono::Utc::now().format("%a %b %d %H:%M:%S UTC %Y"),
                summary.records,
                summary.messages,
                summary.bytes
            );
            writeln!(self.out, "{text}").map_err(stdout_error)?;
        }
        Ok(())
    }

    /// `--trace`: each step's answer and authority records in dig's layout, then the server
    /// asked and its time; or one JSON object per step.
    fn trace(
        &mut self,
        text: &str,
        name: &Name,
        rtype: RecordType,
        transport: &Transport,
    ) -> Result<()> {
        let kind = type_text(rtype);
        let json = self.plan.json;
        let mut stdout_failure = None;
        let out = &mut self.out;
        let result = dns::trace(transport, name, rtype, self.plan.whole, |step| {
            let answer = &step.answer;
            let message = &answer.message;
            let asked = match &step.server_name {
                Some(server) => name_text(server).trim_end_matches('.').to_string(),
                None => answer.server.ip().to_string(),
            };
            let text = if json {
                let records: Vec<serde_json::Value> = message
                    .answers()
                    .iter()
                    .chain(message.name_servers())
                    .map(record_json)
                    .collect();
                let object = serde_json::json!({
                    "query": text,
                    "type": kind,
                    "server": answer.server.to_string(),
                    "server_name": asked,
                    "rcode": rcode_name(message.response_code()),
                    "flags": flags_text(message),
                    "size": answer.size,
                    "rtt_ms": (answer.rtt.as_secs_f64() * 1e6).round() / 1e3,
                    "records": records,
                });
                format!("{object}\n")
            } else {
                let mut lines = String::new();
                for record in message.answers().iter().chain(message.name_servers()) {
                    lines.push_str(&aligned_record_line(record));
                    lines.push('\n');
                }
                lines.push_str(&format!(
                    ";; Received {} bytes from {}#{}({asked}) in {} ms\n\n",
                    answer.size,
                    answer.server.ip(),
                    answer.server.port(),
                    answer.rtt.as_millis()
                ));
                lines
            };
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|err| {
                    stdout_failure = Some(stdout_error(err));
                    anyhow!("stdout")
                })
        });
        if let Some(err) = stdout_failure {
            return Err(err);
        }
        match result {
            Ok(last) => {
                let message = &last.answer.message;
                let code = message.response_code();
                if code != ResponseCode::NoError {
                    self.fail(
                        &format!("{text} {kind}"),
                        format!("{} from {}", rcode_name(code), last.answer.server),
                    );
                } else if message.answers().is_empty() {
                    self.fail(
                        &format!("{text} {kind}"),
                        format!(
                            "no data: no {kind} record (NOERROR from {})",
                            last.answer.server
                        ),
                    );
                }
            }
            Err(err) => self.fail(&format!("{text} {kind}"), format!("{err:#}")),
        }
        Ok(())
    }

    fn show_answer(&mut self, query: &str, rtype: RecordType, answer: &Answer) -> Result<()> {
        let records = answer.message.answers();
        info!(
            "{query} {}: {} from {} over {} in {:.1} ms, {} answer(s)",
            type_text(rtype),
            rcode_name(answer.message.response_code()),
            answer.server,
            answer.transport,
            answer.rtt.as_secs_f64() * 1000.0,
            records.len()
        );
        if self.plan.json {
            let object = self.answer_json(query, rtype, answer);
            return self.line(&object.to_string());
        }
        if self.plan.full {
            return self.show_full(answer);
        }
        for record in records {
            let text = if self.plan.short {
                rdata_text(record)
            } else {
                record_line(record)
            };
            self.line(&text)?;
        }
        Ok(())
    }

    /// One reply as a JSON object: the answers, and the rest of the message (flags,
    /// authority and additional records, EDNS) for those who want dig's whole view.
    fn answer_json(&self, query: &str, rtype: RecordType, answer: &Answer) -> serde_json::Value {
        let message = &answer.message;
        let records = |list: &[hickory_proto::rr::Record]| -> Vec<serde_json::Value> {
            list.iter().map(record_json).collect()
        };
        let mut object = serde_json::json!({
            "query": query,
            "name": message.queries().first().map(|q| name_text(q.name())),
            "type": type_text(rtype),
            "class": class_text(message.queries().first().map_or(DNSClass::IN, |q| q.query_class())),
            "server": answer.server.to_string(),
            "transport": answer.transport,
            "rcode": rcode_name(message.response_code()),
            "flags": flags_text(message),
            "rtt_ms": (answer.rtt.as_secs_f64() * 1e6).round() / 1e3,
            "size": answer.size,
            "answers": records(message.answers()),
            "authority": records(message.name_servers()),
            "additional": records(message.additionals()),
        });
        if let Some(edns) = message.extensions() {
            object["edns"] = edns_json(edns);
        }
        object
    }

    /// dig's default view of one reply: the message, then where, when and how big.
    fn show_full(&mut self, answer: &Answer) -> Result<()> {
        let mut text = message_text(&answer.message);
        let server = answer.server;
        text.push_str(&format!(
            "\n;; Query time: {} msec\n;; SERVER: {}#{}({}) ({})\n;; WHEN: {}\n;; MSG SIZE  rcvd: {}\n",
            answer.rtt.as_millis(),
            server.ip(),
            server.port(),
            server.ip(),
            answer.transport.to_ascii_uppercase(),
            // In UTC: chrono knows offsets, not the zone abbreviations dig prints.
            chrono::Utc::now().format("%a %b %d %H:%M:%S UTC %Y"),
            answer.size
        ));
        writeln!(self.out, "{text}").map_err(stdout_error)
    }

    /// Port numbers for `--port` given with names (an unknown service ends the run, exit 1).
    fn port_numbers(&mut self, ports: &[PortQuery]) -> Result<Vec<u16>> {
        let mut numbers = Vec::new();
        for port in ports {
            match port.answer() {
                Ok(found) => numbers.push(found.port),
                Err(err) => return Err(anyhow!("resolve --port {}: {err}", port.text)),
            }
        }
        Ok(numbers)
    }

    /// `--port` alone: service name ↔ number.
    fn port(&mut self, query: &PortQuery) -> Result<()> {
        let found = match query.answer() {
            Ok(found) => found,
            Err(err) => {
                if self.plan.json {
                    let object = serde_json::json!({ "query": query.text, "error": err });
                    self.line(&object.to_string())?;
                }
                self.fail(&format!("--port {}", query.text), err);
                return Ok(());
            }
        };
        if self.plan.json {
            let object = serde_json::json!({
                "query": query.text,
                "port": found.port,
                "proto": found.proto.as_str(),
                "name": found.name,
            });
            return self.line(&object.to_string());
        }
        let value = match query.key {
            PortKey::Number(_) => found.name.unwrap_or_default(),
            PortKey::Name(_) => found.port.to_string(),
        };
        if self.labelled && !self.plan.short {
            self.line(&format!("{} {value}", query.text))
        } else {
            self.line(&value)
        }
    }

    fn finish(mut self) -> Result<()> {
        self.out.flush().map_err(stdout_error)?;
        if self.bad_lines > 0 {
            return Err(usage(format!(
                "{} line(s) of stdin were not names or addresses",
                self.bad_lines
            )));
        }
        if self.failures > 0 {
            return Err(Reported(Status::Failure).into());
        }
        Ok(())
    }
}

/// Tries the search-list candidates in order: the first that has data wins; NXDOMAIN and
/// "no data" move on to the next; any other failure (no reply, SERVFAIL everywhere) is final.
fn ask_candidates(transport: &Transport, candidates: &[Name], rtype: RecordType) -> Result<Answer> {
    let mut nodata: Option<(String, Answer)> = None;
    let mut nxdomain: Option<(String, Answer)> = None;
    for name in candidates {
        let answer = dns::query(transport, name, rtype)?;
        let message = &answer.message;
        match message.response_code() {
            ResponseCode::NXDomain => {
                if nxdomain.is_some() {
                    continue;
                }
                let text = {
                    let tried = if candidates.len() > 1 {
                        let names: Vec<String> = candidates.iter().map(name_text).collect();
                        format!("; tried {}", names.join(" "))
                    } else {
                        String::new()
                    };
                    format!("NXDOMAIN (no such name{tried}) from {}", answer.server)
                };
                nxdomain = Some((text, answer));
            }
            _ if message.answers().is_empty() => {
                if nodata.is_some() {
                    continue;
                }
                let text = format!(
                    "no data: {name} exists but has no {} record (NOERROR from {})",
                    type_text(rtype),
                    answer.server
                );
                nodata = Some((text, answer));
            }
            _ => return Ok(answer),
        }
    }
    let failure = match (nodata, nxdomain) {
        (Some((message, answer)), _) | (None, Some((message, answer))) => Unanswered {
            message,
            answer: Box::new(answer),
        },
        (None, None) => return Err(anyhow!("no name to ask")),
    };
    Err(anyhow::Error::new(failure))
}

/// A final answer without the records asked for (NXDOMAIN, or NOERROR with no data), with
/// the reply that said so, for `--json` and `--full`.
#[derive(Debug)]
struct Unanswered {
    message: String,
    answer: Box<Answer>,
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Unanswered {}

/// A `--port` query: a service name or a port number, and the protocol if given.
#[derive(Debug)]
struct PortQuery {
    text: String,
    key: PortKey,
    proto: Option<Proto>,
}

#[derive(Debug)]
enum PortKey {
    Number(u16),
    Name(String),
}

/// A `--port` answer.
#[derive(Debug)]
struct PortFound {
    port: u16,
    proto: Proto,
    name: Option<String>,
}

impl PortQuery {
    /// Parses `SERVICE`, `NUMBER`, `X/PROTO` or `PROTO/X`.
    fn parse(text: &str) -> Result<PortQuery, String> {
        let proto_of = |word: &str| match word.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        };
        let (key_text, proto) = match text.split_once('/') {
            None => (text, None),
            Some((left, right)) => match (proto_of(left), proto_of(right)) {
                (_, Some(proto)) => (left, Some(proto)),
                (Some(proto), None) => (right, Some(proto)),
                (None, None) => {
                    return Err(format!(
                        "--port {text}: unknown protocol '{right}' (tcp or udp)"
                    ))
                }
            },
        };
        let key = if !key_text.is_empty() && key_text.bytes().all(|b| b.is_ascii_digit()) {
            match key_text.parse::<u32>() {
                Ok(port @ 1..=65535) => PortKey::Number(port as u16),
                _ => return Err(format!("--port {text}: a port number is 1-65535")),
            }
        } else {
            let valid = !key_text.is_empty()
                && key_text.len() <= 64
                && key_text
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'#');
            if !valid {
                return Err(format!(
                    "--port {}: expected SERVICE[/PROTO] or NUMBER[/PROTO]",
                    text.escape_debug()
                ));
            }
            PortKey::Name(key_text.to_string())
        };
        Ok(PortQuery {
            text: text.to_string(),
            key,
            proto,
        })
    }

    /// Looks the query up: the given protocol, or TCP then UDP.
    fn answer(&self) -> Result<PortFound, String> {
        let table = service_names::system();
        let protos = match self.proto {
            Some(proto) => vec![proto],
            None => vec![Proto::Tcp, Proto::Udp],
        };
        for proto in protos.iter().copied() {
            match &self.key {
                PortKey::Name(name) => {
                    if let Some(port) = table.port(name, proto) {
                        return Ok(PortFound {
                            port,
                            proto,
                            name: table.name(port, proto).map(str::to_string),
                        });
                    }
                }
                PortKey::Number(port) => {
                    if let Some(name) = table.name(*port, proto) {
                        return Ok(PortFound {
                            port: *port,
                            proto,
                            name: Some(name.to_string()),
                        });
                    }
                }
            }
        }
        let which = match self.proto {
            Some(proto) => proto.as_str(),
            None => "tcp or udp",
        };
        Err(match &self.key {
            PortKey::Name(name) => format!("unknown service '{name}' ({which})"),
            PortKey::Number(port) => format!("no service is registered for port {port} ({which})"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_queries_parse_both_ways_and_both_orders() {
        let q = PortQuery::parse("telnet/tcp").unwrap();
        assert!(matches!(q.key, PortKey::Name(ref n) if n == "telnet"));
        assert_eq!(q.proto, Some(Proto::Tcp));
        let q = PortQuery::parse("udp/53").unwrap();
        assert!(matches!(q.key, PortKey::Number(53)));
        assert_eq!(q.proto, Some(Proto::Udp));
        assert!(PortQuery::parse("http").unwrap().proto.is_none());
        assert!(PortQuery::parse("70000").is_err());
        assert!(PortQuery::parse("0/tcp").is_err());
        assert!(PortQuery::parse("http/sctp").is_err());
        assert!(PortQuery::parse("").is_err());
        assert!(PortQuery::parse("a b").is_err());
    }

    #[test]
    fn port_answers_use_the_table() {
        assert_eq!(
            PortQuery::parse("tcp/telnet")
                .unwrap()
                .answer()
                .unwrap()
                .port,
            23
        );
        let https = PortQuery::parse("443/tcp").unwrap().answer().unwrap();
        assert_eq!(https.name.as_deref(), Some("https"));
        assert!(PortQuery::parse("no-such-service")
            .unwrap()
            .answer()
            .is_err());
    }

    #[test]
    fn literals_are_canonical() {
        assert_eq!(
            ip_literal("0:0:0:0:0:0:0:1").map(|ip| ip.to_string()),
            Some("::1".to_string())
        );
        assert_eq!(ip_literal("[::1]"), ip_literal("::1"));
        assert_eq!(ip_literal("localhost"), None);
    }
}
