//! Asking a DNS server directly, for `nk resolve -t` and `--server`: the stub resolver's
//! settings from /etc/resolv.conf, and the UDP/TCP exchange under a deadline.
//!
//! getaddrinfo cannot ask for MX or TXT, cannot name the server, and hides why a lookup
//! failed, so `-t` does what dig does: one query straight to a nameserver. The rules are the
//! ones a resolver owes its user and that dog, among others, skips:
//! - a random message ID and a random source port per query, and a connected UDP socket, so
//!   the kernel drops datagrams from any other address;
//! - every reply is judged by `wire::dns::judge` (ID, QR, question); anything else is ignored
//!   and we keep waiting until the try's deadline;
//! - a truncated reply is asked again over TCP, to the same server (RFC 7766);
//! - SERVFAIL, REFUSED and friends move on to the next server; NXDOMAIN and NOERROR are final;
//! - `--timeout` bounds each try, `--tries` the rounds over the server list, so a silent
//!   server costs at most timeout × tries.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::debug;
use crate::net::deadline::{format_duration, is_timeout, read_before, Deadline};
use crate::wire::dns::{build_query, judge, rcode_name, QueryOptions, Verdict, MAX_MESSAGE};
use crate::wire::frame::{read_frame, write_frame, FrameError, PrefixWidth};

/// glibc's limits: at most 3 nameservers, timeout ≤ 30 s, attempts ≤ 5, ndots ≤ 15.
const MAX_SERVERS: usize = 3;
const MAX_TIMEOUT_SECS: u64 = 30;
const MAX_ATTEMPTS: u32 = 5;
const MAX_NDOTS: usize = 15;
/// glibc keeps at most 6 search domains.
const MAX_SEARCH: usize = 6;
/// The largest resolv.conf we read; real ones are a few hundred bytes.
const MAX_CONF_BYTES: u64 = 64 * 1024;

/// The stub resolver settings of /etc/resolv.conf, with glibc's defaults and caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines (port 53); 127.0.0.1 and ::1 when there are none, as glibc does.
    pub servers: Vec<SocketAddr>,
    /// `search` (or `domain`) domains, tried for names with fewer than `ndots` dots.
    pub search: Vec<Name>,
    /// `options ndots:N` (1).
    pub ndots: usize,
    /// `options timeout:N` (5 s): how long one try waits for one server.
    pub timeout: Duration,
    /// `options attempts:N` (2): rounds over the server list.
    pub attempts: u32,
}

impl Default for ResolvConf {
    fn default() -> ResolvConf {
        ResolvConf {
            servers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

impl ResolvConf {
    /// Parses resolv.conf text. Unknown lines and malformed values are skipped, as glibc does.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // An IPv6 address may carry a zone (`fe80::1%eth0`), which std cannot parse
                    // into an IpAddr; such servers are skipped.
                    if let Some(ip) = words.next().and_then(|w| IpAddr::from_str(w).ok()) {
                        if conf.servers.len() < MAX_SERVERS {
                            conf.servers.push(SocketAddr::new(ip, 53));
                        }
                    }
                }
                // The last of `search` and `domain` wins, as in glibc.
                Some("search") | Some("domain") => {
                    conf.search = words
                        .filter_map(|w| Name::from_str(w).ok())
                        .map(|mut n| {
                            n.set_fqdn(true);
                            n
                        })
                        .take(MAX_SEARCH)
                        .collect();
                }
                Some("options") => {
                    for option in words {
                        let (key, value) = option.split_once(':').unwrap_or((option, ""));
                        let number = value.parse::<u64>().ok();
                        match (key, number) {
                            ("ndots", Some(n)) => conf.ndots = (n as usize).min(MAX_NDOTS),
                            ("timeout", Some(n)) => {
                                conf.timeout = Duration::from_secs(n.clamp(1, MAX_TIMEOUT_SECS))
                            }
                            ("attempts", Some(n)) => {
                                conf.attempts = (n as u32).clamp(1, MAX_ATTEMPTS)
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if conf.servers.is_empty() {
            conf.servers = vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 53),
            ];
        }
        conf
    }

    /// The system's settings: /etc/resolv.conf, or the defaults when it cannot be read.
    pub fn system() -> ResolvConf {
        let mut text = String::new();
        if let Ok(file) = std::fs::File::open("/etc/resolv.conf") {
            let _ = file.take(MAX_CONF_BYTES).read_to_string(&mut text);
        }
        ResolvConf::parse(&text)
    }

    /// The names to try for what the user typed, in order: an absolute name (trailing dot) as
    /// it is; otherwise the search list first when the name has fewer than `ndots` dots, and
    /// last when it has more (res_search's order).
    pub fn candidates(&self, name: &Name, use_search: bool) -> Vec<Name> {
        let mut absolute = name.clone();
        absolute.set_fqdn(true);
        if name.is_fqdn() || !use_search || self.search.is_empty() {
            return vec![absolute];
        }
        let searched = self
            .search
            .iter()
            .filter_map(|domain| name.clone().append_domain(domain).ok());
        let dots = usize::from(name.num_labels()).saturating_sub(1);
        if dots >= self.ndots {
            std::iter::once(absolute).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(absolute)).collect()
        }
    }
}

/// How queries are sent.
#[derive(Debug, Clone)]
pub struct Transport {
    /// Servers, asked in order.
    pub servers: Vec<SocketAddr>,
    /// How long one try waits for one server.
    pub timeout: Duration,
    /// Rounds over the servers that have not answered.
    pub tries: u32,
    /// TCP only (`--tcp`); otherwise UDP, with TCP after a truncated reply.
    pub tcp_only: bool,
    /// `--proxy` (with `--tcp`): the TCP connections go through these proxies.
    pub proxies: crate::net::proxy::Chain,
    /// Class, header bits and EDNS fields of every query.
    pub options: QueryOptions,
    /// Plain DNS, or DNS over TLS or HTTPS.
    pub encryption: Encryption,
}

/// How the queries travel: in clear (UDP, TCP), or encrypted.
#[derive(Debug, Clone, Default)]
pub enum Encryption {
    #[default]
    Clear,
    /// DNS over TLS (RFC 7858): TCP's length-prefixed messages inside TLS, port 853; the
    /// certificate is verified for `name`.
    Tls {
        config: std::sync::Arc<rustls::ClientConfig>,
        name: String,
    },
    /// DNS over HTTPS (RFC 8484) to `url`: POST, or GET with `?dns=`.
    Https {
        config: std::sync::Arc<rustls::ClientConfig>,
        url: crate::wire::http::Url,
        name: String,
        post: bool,
    },
}

/// A reply we accepted, and where and how it came.
#[derive(Debug)]
pub struct Answer {
    /// The decoded reply (NOERROR or NXDOMAIN).
    pub message: Message,
    /// The server that sent it.
    pub server: SocketAddr,
    /// "udp" or "tcp".
    pub transport: &'static str,
    /// From sending the query to accepting the reply (the last exchange only).
    pub rtt: Duration,
    /// The reply's size on the wire, in bytes.
    pub size: usize,
}

/// Why one exchange with one server produced no reply we can use.
#[derive(Debug)]
enum Problem {
    /// No matching reply before the try's deadline (with what was ignored meanwhile).
    Silent { ignored: Option<String> },
    /// The server answered with a response code that sends us to the next server.
    Rcode(ResponseCode),
    /// A socket error (port unreachable, connection reset, ...).
    Io(io::Error),
    /// The reply was unusable (malformed over TCP, connection closed before the reply...).
    Bad(String),
}

/// Asks the servers for `name`/`rtype`, and returns the first final reply (NOERROR or
/// NXDOMAIN). The error names every server's last outcome.
pub fn query(transport: &Transport, name: &Name, rtype: RecordType) -> anyhow::Result<Answer> {
    let mut outcome: Vec<Option<Problem>> = transport.servers.iter().map(|_| None).collect();
    let mut silent_tries = vec![0u32; transport.servers.len()];
    for _ in 0..transport.tries.max(1) {
        let mut asked_any = false;
        for (index, &server) in transport.servers.iter().enumerate() {
            // A server that answered with a failure code has said its piece; only silent or
            // unreachable servers are asked again in the next round.
            if matches!(
                outcome[index],
                Some(Problem::Rcode(_)) | Some(Problem::Bad(_))
            ) {
                continue;
            }
            asked_any = true;
            match ask(transport, server, name, rtype) {
                Ok(answer) => match answer.message.response_code() {
                    ResponseCode::NoError | ResponseCode::NXDomain => return Ok(answer),
                    code => {
                        debug!("{server}: {} for {name} {rtype}", rcode_name(code));
                        outcome[index] = Some(Problem::Rcode(code));
                    }
                },
                Err(problem) => {
                    debug!("{server}: {problem:?}");
                    if matches!(problem, Problem::Silent { .. }) {
                        silent_tries[index] += 1;
                    }
                    outcome[index] = Some(problem);
                }
            }
        }
        if !asked_any {
            break;
        }
    }
    let described: Vec<String> = transport
        .servers
        .iter()
        .zip(outcome)
        .zip(silent_tries)
        .map(|((server, problem), tries)| describe(*server, problem, tries, transport.timeout))
        .collect();
    Err(anyhow::anyhow!("{}", described.join("; ")))
}

fn describe(server: SocketAddr, problem: Option<Problem>, tries: u32, timeout: Duration) -> String {
    match problem {
        None => format!("{server} was not asked"),
        Some(Problem::Rcode(code)) => {
            let why = match code {
                ResponseCode::ServFail => " (server failure)",
                ResponseCode::Refused => " (the server refuses to answer this query)",
                ResponseCode::NotImp => " (the server does not support this kind of query)",
                ResponseCode::FormErr => " (the server could not parse the query)",
                _ => "",
            };
            format!("{}{why} from {server}", rcode_name(code))
        }
        Some(Problem::Silent { ignored }) => {
            let total = timeout.saturating_mul(tries);
            let mut text = format!(
                "timed out: no reply from {server} after {tries} {} of {} ({})",
                if tries == 1 { "try" } else { "tries" },
                format_duration(timeout),
                format_duration(total)
            );
            if let Some(ignored) = ignored {
                text.push_str(&format!("; ignored {ignored}"));
            }
            text
        }
        Some(Problem::Io(err)) if err.kind() == io::ErrorKind::ConnectionRefused => {
            format!("{server}: connection refused (nothing listens there)")
        }
        Some(Problem::Io(err)) => format!("{server}: {err}"),
        Some(Problem::Bad(why)) => format!("{server}: {why}"),
    }
}

/// One question to one server, with the time a try may take.
#[derive(Debug, Clone, Copy)]
struct Exchange<'a> {
    server: SocketAddr,
    name: &'a Name,
    rtype: RecordType,
    timeout: Duration,
    options: &'a QueryOptions,
}

impl Exchange<'_> {
    fn answer(
        &self,
        message: Message,
        size: usize,
        transport: &'static str,
        started: Instant,
    ) -> Answer {
        Answer {
            message,
            server: self.server,
            transport,
            rtt: started.elapsed(),
            size,
        }
    }
}

/// One exchange with one server: UDP (TCP when truncated), or TCP only.
fn ask(
    transport: &Transport,
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
) -> Result<Answer, Problem> {
    let exchange = Exchange {
        server,
        name,
        rtype,
        timeout: transport.timeout,
        options: &transport.options,
    };
    match &transport.encryption {
        Encryption::Clear => {}
        Encryption::Tls { config, name } => {
            return ask_tls(exchange, &transport.proxies, config, name)
        }
        Encryption::Https {
            config,
            url,
            name,
            post,
        } => return ask_https(exchange, &transport.proxies, config, url, name, *post),
    }
    if transport.tcp_only {
        return ask_tcp(exchange, &transport.proxies);
    }
    let answer = ask_udp(exchange, true)?;
    if answer.message.truncated() {
        debug!("{server}: truncated reply for {name} {rtype}, asking again over TCP");
        return ask_tcp(exchange, &transport.proxies);
    }
    // A server that does not know EDNS may answer FORMERR without an OPT record: ask again
    // without one (RFC 6891 §7).
    if answer.message.response_code() == ResponseCode::FormErr
        && answer.message.extensions().is_none()
    {
        debug!("{server}: FORMERR without EDNS, asking again without the OPT record");
        return ask_udp(exchange, false);
    }
    Ok(answer)
}

fn ask_udp(exchange: Exchange<'_>, edns: bool) -> Result<Answer, Problem> {
    let Exchange {
        server,
        name,
        rtype,
        timeout,
        options,
    } = exchange;
    let socket = bind_random_port(server).map_err(Problem::Io)?;
    // Connected: the kernel delivers only datagrams from the server's address and port, and
    // reports its ICMP port-unreachable as ECONNREFUSED instead of a silent timeout.
    socket.connect(server).map_err(Problem::Io)?;
    let id: u16 = rand::random();
    let query = build_query(id, name, rtype, options, edns).map_err(Problem::Bad)?;
    let started = Instant::now();
    let deadline = Deadline::after(Some(timeout));
    socket.send(&query).map_err(Problem::Io)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut ignored: Option<String> = None;
    loop {
        let received = read_before(&socket, deadline, |s| s.recv(&mut buf)).map_err(Problem::Io)?;
        let Some(len) = received else {
            return Err(Problem::Silent { ignored });
        };
        match judge(&buf[..len], id, name, rtype, options.class) {
            Verdict::Reply(message) => return Ok(exchange.answer(*message, len, "udp", started)),
            Verdict::Foreign(why) => {
                debug!("{server}: ignored a datagram: {why}");
                ignored = Some(format!("a reply with {why}"));
            }
            Verdict::Malformed(why) => {
                // Said at once with -v: a server that answers garbage is worth knowing about
                // while nk goes on waiting for a good reply.
                crate::info!("{server}: ignored a malformed reply: {why}");
                ignored = Some(format!("a malformed reply ({why})"));
            }
        }
    }
}

fn ask_tcp(exchange: Exchange<'_>, proxies: &crate::net::proxy::Chain) -> Result<Answer, Problem> {
    let Exchange {
        server,
        name,
        rtype,
        timeout,
        options,
    } = exchange;
    let io_problem = |err: io::Error| {
        if is_timeout(&err) {
            Problem::Silent { ignored: None }
        } else {
            Problem::Io(err)
        }
    };
    let started = Instant::now();
    let deadline = Deadline::after(Some(timeout));
    let stream = connect_tcp(server, timeout, proxies).map_err(|e| match e {
        TcpConnectError::Io(err) => io_problem(err),
        TcpConnectError::Proxy(why) => Problem::Bad(why),
    })?;
    let id: u16 = rand::random();
    let query = build_query(id, name, rtype, options, true).map_err(Problem::Bad)?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(Problem::Io)?;
    write_frame(&mut &stream, PrefixWidth::U16, &query).map_err(io_problem)?;
    let mut reader = DeadlineStream {
        stream: &stream,
        deadline,
    };
    framed_reply(&mut reader, exchange, id, "tcp", started, io_problem)
}

/// Reads length-prefixed messages (TCP, TLS) until the reply to query `id` comes; foreign
/// messages are skipped, a malformed one ends the exchange (the stream's framing is lost).
fn framed_reply(
    reader: &mut impl Read,
    exchange: Exchange<'_>,
    id: u16,
    transport: &'static str,
    started: Instant,
    io_problem: impl Fn(io::Error) -> Problem,
) -> Result<Answer, Problem> {
    let over = transport.to_ascii_uppercase();
    loop {
        let frame = match read_frame(reader, PrefixWidth::U16, MAX_MESSAGE) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                return Err(Problem::Bad(format!(
                    "closed the {over} connection without a reply"
                )))
            }
            Err(FrameError::Io(err)) => return Err(io_problem(err)),
            Err(err) => return Err(Problem::Bad(format!("{over} reply: {err}"))),
        };
        match judge(
            &frame,
            id,
            exchange.name,
            exchange.rtype,
            exchange.options.class,
        ) {
            Verdict::Reply(message) => {
                return Ok(exchange.answer(*message, frame.len(), transport, started))
            }
            Verdict::Foreign(why) => {
                debug!("{}: ignored a {over} message: {why}", exchange.server)
            }
            Verdict::Malformed(why) => return Err(Problem::Bad(format!("malformed reply: {why}"))),
        }
    }
}

/// The most referrals a trace follows (a loop of referrals ends there).
pub const MAX_TRACE_HOPS: usize = 32;

/// One step of a trace: the reply, and the name of the server that gave it (none for the
/// first, the root NS set asked of the starting servers).
#[derive(Debug)]
pub struct TraceStep {
    pub answer: Answer,
    pub server_name: Option<Name>,
}

/// Iterative resolution as `dig +trace` does it: the root's NS set from the starting servers
/// (resolv.conf's, or `--server` taken as the root of a private hierarchy), then from the
/// root down, each referral's servers asked without recursion, on the starting servers' port,
/// until a server answers, says NXDOMAIN, or has no data. `each` sees every step as it comes.
/// `whole` bounds the whole trace; each query waits at most the transport's timeout.
/// Returns the last step.
pub fn trace(
    transport: &Transport,
    name: &Name,
    rtype: RecordType,
    whole: Option<Duration>,
    mut each: impl FnMut(&TraceStep) -> anyhow::Result<()>,
) -> anyhow::Result<TraceStep> {
    let overall = Deadline::after(whole);
    let port = transport.servers.first().map_or(53, SocketAddr::port);
    let bounded = |mut t: Transport| -> anyhow::Result<Transport> {
        if let Some(left) = overall.remaining().map_err(|_| {
            anyhow::anyhow!(
                "trace {name}: the -w limit of {} passed",
                format_duration(whole.unwrap_or_default())
            )
        })? {
            t.timeout = t.timeout.min(left);
        }
        Ok(t)
    };
    // The root NS set, as dig asks for it (with recursion, of the starting servers).
    let mut first = bounded(transport.clone())?;
    first.options.recurse = true;
    let root = query(&first, &Name::root(), RecordType::NS)
        .map_err(|e| anyhow::anyhow!("trace {name}: the root's NS set: {e:#}"))?;
    let mut zone = Name::root();
    let mut referral = delegation(&root.message, None);
    let step = TraceStep {
        answer: root,
        server_name: None,
    };
    each(&step)?;
    if referral.is_empty() {
        return Err(anyhow::anyhow!(
            "trace {name}: {} gave no NS records for the root",
            step.answer.server
        ));
    }
    let mut asking = transport.clone();
    asking.options.recurse = false;
    asking.tries = 1;
    for _ in 0..MAX_TRACE_HOPS {
        let mut failures = Vec::new();
        let mut reply = None;
        'servers: for (ns_name, glue) in &referral {
            let addrs = if glue.is_empty() {
                let ascii = ns_name.to_ascii();
                let deadline = overall.min(Deadline::after(Some(asking.timeout)));
                match crate::net::addr::lookup(ascii.trim_end_matches('.'), port, deadline) {
                    Ok(found) => found.iter().map(SocketAddr::ip).collect(),
                    Err(err) => {
                        failures.push(format!("{ns_name}: no address ({err:#})"));
                        continue;
                    }
                }
            } else {
                glue.clone()
            };
            for ip in addrs {
                let mut one = bounded(asking.clone())?;
                one.servers = vec![SocketAddr::new(ip, port)];
                match query_any_rcode(&one, name, rtype) {
                    Ok(answer) => {
                        reply = Some(TraceStep {
                            answer,
                            server_name: Some(ns_name.clone()),
                        });
                        break 'servers;
                    }
                    Err(err) => {
                        if overall.expired() {
                            return Err(anyhow::anyhow!(
                                "trace {name}: the -w limit of {} passed while asking {ns_name} \
                                 ({ip}) about {}",
                                format_duration(whole.unwrap_or_default()),
                                name_or_root(&zone)
                            ));
                        }
                        failures.push(format!("{ns_name} {err:#}"))
                    }
                }
            }
        }
        let Some(step) = reply else {
            return Err(anyhow::anyhow!(
                "trace {name}: no server for {} answered: {}",
                name_or_root(&zone),
                failures.join("; ")
            ));
        };
        each(&step)?;
        let message = &step.answer.message;
        if message.response_code() != ResponseCode::NoError || !message.answers().is_empty() {
            return Ok(step);
        }
        let has_ns = message
            .name_servers()
            .iter()
            .any(|r| r.record_type() == RecordType::NS);
        if !has_ns {
            // No data (an SOA in the authority section, or nothing): the end.
            return Ok(step);
        }
        let Some(next_zone) = closer_zone(message, &zone, name) else {
            return Err(anyhow::anyhow!(
                "trace {name}: {} gave a referral no closer to the name than {} (a lame or \
                 upward referral)",
                step.answer.server,
                name_or_root(&zone)
            ));
        };
        referral = delegation(message, Some(&next_zone));
        zone = next_zone;
    }
    Err(anyhow::anyhow!(
        "trace {name}: more than {MAX_TRACE_HOPS} referrals (a loop?)"
    ))
}

fn name_or_root(name: &Name) -> String {
    crate::wire::dns::name_text(name)
}

/// The zone a referral hands us to: the owner of its NS records, which must lie below the
/// zone we asked and at or above the name (an upward or sideways referral is no progress).
fn closer_zone(message: &Message, zone: &Name, name: &Name) -> Option<Name> {
    message
        .name_servers()
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .map(|r| r.name().clone())
        .find(|owner| zone.zone_of(owner) && owner != zone && owner.zone_of(name))
}

/// The NS names of a referral to `owner` (authority section; without an owner, the answer
/// section: the root's own NS set) with their glue addresses from the additional section, in
/// the order given.
fn delegation(message: &Message, owner: Option<&Name>) -> Vec<(Name, Vec<IpAddr>)> {
    let section = match owner {
        None => message.answers(),
        Some(_) => message.name_servers(),
    };
    let mut servers: Vec<(Name, Vec<IpAddr>)> = Vec::new();
    for record in section {
        let hickory_proto::rr::RData::NS(ns) = record.data() else {
            continue;
        };
        if owner.is_some_and(|owner| owner != record.name()) {
            continue;
        }
        let target = ns.0.clone();
        if servers.iter().any(|(n, _)| *n == target) {
            continue;
        }
        let glue: Vec<IpAddr> = message
            .additionals()
            .iter()
            .filter(|g| *g.name() == target)
            .filter_map(|g| match g.data() {
                hickory_proto::rr::RData::A(a) => Some(IpAddr::V4(a.0)),
                hickory_proto::rr::RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
        servers.push((target, glue));
    }
    servers
}

/// One query to the transport's servers that takes any response code as the answer (a trace
/// shows NXDOMAIN and REFUSED as they came).
fn query_any_rcode(
    transport: &Transport,
    name: &Name,
    rtype: RecordType,
) -> anyhow::Result<Answer> {
    let Some(&server) = transport.servers.first() else {
        return Err(anyhow::anyhow!("no server to ask"));
    };
    ask(transport, server, name, rtype).map_err(|problem| {
        anyhow::anyhow!("{}", describe(server, Some(problem), 1, transport.timeout))
    })
}

/// A TLS client stream whose every read and write is bounded by one deadline.
struct TlsDeadline {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    deadline: Deadline,
}

impl TlsDeadline {
    fn open(
        server: SocketAddr,
        timeout: Duration,
        proxies: &crate::net::proxy::Chain,
        config: &std::sync::Arc<rustls::ClientConfig>,
        name: &str,
    ) -> Result<TlsDeadline, Problem> {
        let deadline = Deadline::after(Some(timeout));
        let stream = connect_tcp(server, timeout, proxies).map_err(|e| match e {
            TcpConnectError::Io(err) if is_timeout(&err) => Problem::Silent { ignored: None },
            TcpConnectError::Io(err) => Problem::Io(err),
            TcpConnectError::Proxy(why) => Problem::Bad(why),
        })?;
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(|_| Problem::Bad(format!("'{name}' is not a name TLS can verify (--sni)")))?;
        let conn = rustls::ClientConnection::new(config.clone(), server_name)
            .map_err(|e| Problem::Bad(format!("TLS: {e}")))?;
        Ok(TlsDeadline {
            tls: rustls::StreamOwned::new(conn, stream),
            deadline,
        })
    }
}

impl Read for TlsDeadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tls.sock.set_read_timeout(self.deadline.remaining()?)?;
        self.tls.read(buf)
    }
}

impl io::Write for TlsDeadline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tls
            .sock
            .set_write_timeout(self.deadline.remaining()?)?;
        self.tls.sock.set_read_timeout(self.deadline.remaining()?)?;
        self.tls.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tls.flush()
    }
}

/// An I/O error on a TLS stream as a problem: the certificate or handshake failure in words.
fn tls_problem(err: io::Error) -> Problem {
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return Problem::Bad(format!("TLS: {}", crate::net::tls::failure_in_words(tls)));
    }
    if is_timeout(&err) {
        Problem::Silent { ignored: None }
    } else {
        Problem::Io(err)
    }
}

/// A TLS connection for one exchange, the query (with message ID `id`) and when it started.
fn tls_start(
    exchange: Exchange<'_>,
    proxies: &crate::net::proxy::Chain,
    config: &std::sync::Arc<rustls::ClientConfig>,
    tls_name: &str,
    id: u16,
) -> Result<(TlsDeadline, Vec<u8>, Instant), Problem> {
    let started = Instant::now();
    let stream = TlsDeadline::open(exchange.server, exchange.timeout, proxies, config, tls_name)?;
    let query = build_query(id, exchange.name, exchange.rtype, exchange.options, true)
        .map_err(Problem::Bad)?;
    Ok((stream, query, started))
}

/// DNS over TLS: one query on a new connection, framed as over TCP.
fn ask_tls(
    exchange: Exchange<'_>,
    proxies: &crate::net::proxy::Chain,
    config: &std::sync::Arc<rustls::ClientConfig>,
    tls_name: &str,
) -> Result<Answer, Problem> {
    let id: u16 = rand::random();
    let (mut stream, query, started) = tls_start(exchange, proxies, config, tls_name, id)?;
    write_frame(&mut stream, PrefixWidth::U16, &query).map_err(tls_problem)?;
    framed_reply(&mut stream, exchange, id, "tls", started, tls_problem)
}

/// DNS over HTTPS: one HTTP/1.1 request on a new TLS connection; message ID 0 (RFC 8484 §4.1:
/// HTTP pairs the answer with the question, and ID 0 lets caches share it).
fn ask_https(
    exchange: Exchange<'_>,
    proxies: &crate::net::proxy::Chain,
    config: &std::sync::Arc<rustls::ClientConfig>,
    url: &crate::wire::http::Url,
    tls_name: &str,
    post: bool,
) -> Result<Answer, Problem> {
    use crate::wire::dns::{doh_request, doh_response};
    let (name, rtype, class) = (exchange.name, exchange.rtype, exchange.options.class);
    let (mut stream, query, started) = tls_start(exchange, proxies, config, tls_name, 0)?;
    io::Write::write_all(&mut stream, &doh_request(url, &query, post)).map_err(tls_problem)?;
    io::Write::flush(&mut stream).map_err(tls_problem)?;
    // A head, a body of at most 64 KiB and its chunk framing: more is refused by doh_response.
    let cap = crate::wire::http::MAX_HEAD + MAX_MESSAGE + 16 * 1024;
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let eof = match stream.read(&mut chunk) {
            Ok(0) => true,
            Ok(n) => {
                received.extend_from_slice(&chunk[..n]);
                false
            }
            // A server that closes after its response without TLS's close_notify.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => true,
            Err(err) => return Err(tls_problem(err)),
        };
        match doh_response(&received, eof) {
            Ok(Some(body)) => {
                return match judge(&body, 0, name, rtype, class) {
                    Verdict::Reply(message) => {
                        Ok(exchange.answer(*message, body.len(), "https", started))
                    }
                    Verdict::Foreign(why) => {
                        Err(Problem::Bad(format!("{url}: a reply with {why}")))
                    }
                    Verdict::Malformed(why) => {
                        Err(Problem::Bad(format!("{url}: malformed reply: {why}")))
                    }
                };
            }
            Ok(None) if eof => {
                return Err(Problem::Bad(format!("{url}: the response ended early")))
            }
            Ok(None) if received.len() > cap => {
                return Err(Problem::Bad(format!("{url}: a response over {cap} bytes")))
            }
            Ok(None) => {}
            Err(why) => return Err(Problem::Bad(format!("{url}: {why}"))),
        }
    }
}

/// Why a TCP connection to a server was not made.
enum TcpConnectError {
    Io(io::Error),
    Proxy(String),
}

/// A TCP connection to `server` within `timeout`, directly or through the proxies.
fn connect_tcp(
    server: SocketAddr,
    timeout: Duration,
    proxies: &crate::net::proxy::Chain,
) -> Result<TcpStream, TcpConnectError> {
    let stream = if proxies.is_empty() {
        TcpStream::connect_timeout(&server, timeout).map_err(TcpConnectError::Io)?
    } else {
        let target = crate::net::addr::Target {
            host: crate::net::addr::Host::Ip(server.ip()),
            port: server.port(),
        };
        // Not quiet: through proxies, -v shows each hop as dial's -v does.
        let opts = crate::net::connect::ConnectOptions {
            timeout: Some(timeout),
            proxies: proxies.clone(),
            ..Default::default()
        };
        crate::net::connect::connect(&target, &opts)
            .map_err(|e| TcpConnectError::Proxy(format!("{e:#}")))?
            .stream
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The most records one zone transfer may bring: a cap on the time and output a hostile
/// server can cost (the largest TLDs hold a few tens of millions; ask with -w for those).
pub const MAX_TRANSFER_RECORDS: u64 = 5_000_000;

/// The most messages one zone transfer may take (a server could send empty ones forever).
pub const MAX_TRANSFER_MESSAGES: u64 = 500_000;

/// What a finished zone transfer was.
#[derive(Debug)]
pub struct TransferSummary {
    pub server: SocketAddr,
    /// The zone's serial (the opening SOA's).
    pub serial: Option<u32>,
    pub messages: u64,
    pub records: u64,
    /// Bytes of DNS messages received (without the TCP length prefixes).
    pub bytes: u64,
    /// From the connection to the closing SOA.
    pub elapsed: Duration,
}

/// A zone transfer (AXFR, or IXFR from `serial`) over TCP from the first server that takes
/// the connection; `each` gets every record in order as it arrives. Each read waits at most
/// the transport's timeout, and the whole transfer at most `whole` when given. A refusal
/// (REFUSED, NOTAUTH...) is named with the server's rcode.
pub fn transfer(
    transport: &Transport,
    zone: &Name,
    serial: Option<u32>,
    whole: Option<Duration>,
    mut each: impl FnMut(&hickory_proto::rr::Record) -> anyhow::Result<()>,
) -> anyhow::Result<TransferSummary> {
    use crate::wire::dns::{ixfr_query, judge_later, Transfer};
    let rtype = if serial.is_some() {
        RecordType::IXFR
    } else {
        RecordType::AXFR
    };
    let kind = if serial.is_some() { "IXFR" } else { "AXFR" };
    let overall = Deadline::after(whole);
    let mut failures = Vec::new();
    for &server in &transport.servers {
        let started = Instant::now();
        let timeout = match overall.remaining() {
            Ok(Some(left)) => left.min(transport.timeout),
            Ok(None) => transport.timeout,
            Err(_) => break,
        };
        let stream = match connect_tcp(server, timeout, &transport.proxies) {
            Ok(stream) => stream,
            Err(TcpConnectError::Io(err)) => {
                failures.push(format!("{server}: {}", describe_io(&err)));
                continue;
            }
            Err(TcpConnectError::Proxy(why)) => {
                failures.push(format!("{server}: {why}"));
                continue;
            }
        };
        let id: u16 = rand::random();
        let options = &transport.options;
        let query = match serial {
            Some(serial) => ixfr_query(id, zone, serial, options),
            None => build_query(id, zone, rtype, options, true),
        }
        .map_err(|e| anyhow::anyhow!(e))?;
        stream.set_write_timeout(Some(timeout))?;
        write_frame(&mut &stream, PrefixWidth::U16, &query)
            .map_err(|e| anyhow::anyhow!("{kind} {zone} from {server}: sending the query: {e}"))?;
        let mut reader = SilenceStream {
            stream: &stream,
            overall,
            silence: transport.timeout,
        };
        let mut state = Transfer::default();
        let (mut messages, mut bytes) = (0u64, 0u64);
        while !state.done {
            let frame = match read_frame(&mut reader, PrefixWidth::U16, MAX_MESSAGE) {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    return Err(anyhow::anyhow!(
                        "{kind} {zone} from {server}: the server closed the connection after \
                         {} record(s) in {messages} message(s), before the closing SOA: the \
                         zone is incomplete",
                        state.records
                    ))
                }
                Err(FrameError::Io(err)) if is_timeout(&err) => {
                    let why = if overall.remaining().is_err() {
                        format!(
                            "the -w limit of {} passed",
                            format_duration(whole.unwrap_or_default())
                        )
                    } else {
                        format!("no data for {}", format_duration(transport.timeout))
                    };
                    return Err(anyhow::anyhow!(
                        "{kind} {zone} from {server}: timed out ({why}) after {} record(s) \
                         in {messages} message(s): the zone is incomplete",
                        state.records
                    ));
                }
                Err(err) => return Err(anyhow::anyhow!("{kind} {zone} from {server}: {err}")),
            };
            let verdict = if messages == 0 {
                judge(&frame, id, zone, rtype, options.class)
            } else {
                judge_later(&frame, id, zone, rtype, options.class)
            };
            let message = match verdict {
                Verdict::Reply(message) => message,
                Verdict::Foreign(why) => {
                    debug!("{server}: ignored a TCP message: {why}");
                    continue;
                }
                Verdict::Malformed(why) => {
                    return Err(anyhow::anyhow!(
                        "{kind} {zone} from {server}: malformed message: {why}"
                    ))
                }
            };
            messages += 1;
            bytes += frame.len() as u64;
            let code = message.response_code();
            if code != ResponseCode::NoError {
                let why = match code {
                    ResponseCode::Refused | ResponseCode::NotAuth => {
                        " (the server refuses to transfer this zone to us)"
                    }
                    ResponseCode::NotImp => " (the server does not do zone transfers)",
                    ResponseCode::ServFail => " (the server cannot serve this zone)",
                    ResponseCode::NXDomain => " (no such zone)",
                    _ => "",
                };
                return Err(anyhow::anyhow!(
                    "{kind} {zone} refused: {}{why} from {server}",
                    rcode_name(code)
                ));
            }
            for record in message.answers() {
                state
                    .feed(record, serial.is_some())
                    .map_err(|e| anyhow::anyhow!("{kind} {zone} from {server}: {e}"))?;
                each(record)?;
                if state.records >= MAX_TRANSFER_RECORDS && !state.done {
                    return Err(anyhow::anyhow!(
                        "{kind} {zone} from {server}: stopped at the cap of \
                         {MAX_TRANSFER_RECORDS} records: the zone is incomplete"
                    ));
                }
            }
            state.end_of_message(serial.is_some(), serial);
            if messages == 1 && state.records == 0 {
                return Err(anyhow::anyhow!(
                    "{kind} {zone} from {server}: the reply holds no records (not a zone the \
                     server serves?)"
                ));
            }
            if messages >= MAX_TRANSFER_MESSAGES && !state.done {
                return Err(anyhow::anyhow!(
                    "{kind} {zone} from {server}: stopped at the cap of \
                     {MAX_TRANSFER_MESSAGES} messages: the zone is incomplete"
                ));
            }
        }
        return Ok(TransferSummary {
            server,
            serial: state.serial,
            messages,
            records: state.records,
            bytes,
            elapsed: started.elapsed(),
        });
    }
    if failures.is_empty() {
        failures.push(format!(
            "the -w limit of {} passed before a connection",
            format_duration(whole.unwrap_or_default())
        ));
    }
    Err(anyhow::anyhow!("{kind} {zone}: {}", failures.join("; ")))
}

fn describe_io(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused (nothing listens there)".into(),
        _ if is_timeout(err) => "timed out connecting".into(),
        _ => err.to_string(),
    }
}

/// Reads bounded twice: by a silence limit for each read and by one overall deadline.
struct SilenceStream<'a> {
    stream: &'a TcpStream,
    overall: Deadline,
    silence: Duration,
}

impl Read for SilenceStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = match self.overall.remaining()? {
            Some(left) => left.min(self.silence),
            None => self.silence,
        };
        self.stream.set_read_timeout(Some(limit))?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

/// Reads from a stream with each read bounded by what is left of one deadline, so a server
/// that trickles a reply byte by byte cannot stretch a try beyond its timeout.
struct DeadlineStream<'a> {
    stream: &'a TcpStream,
    deadline: Deadline,
}

impl Read for DeadlineStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(self.deadline.remaining()?)?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

/// A UDP socket on a random port of the ephemeral range, so the port adds its 15 bits or so to
/// the ID's 16 against forged replies (RFC 5452). Falls back to the kernel's choice after a few
/// ports that are taken.
fn bind_random_port(server: SocketAddr) -> io::Result<UdpSocket> {
    let any: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let (low, high) = ephemeral_range();
    for _ in 0..8 {
        let port = rand::random_range(low..=high);
        match UdpSocket::bind(SocketAddr::new(any, port)) {
            Ok(socket) => return Ok(socket),
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => continue,
            Err(err) => return Err(err),
        }
    }
    UdpSocket::bind(SocketAddr::new(any, 0))
}

/// The kernel's ephemeral port range (net.ipv4.ip_local_port_range), 32768-60999 by default.
fn ephemeral_range() -> (u16, u16) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut numbers = text
        .split_whitespace()
        .filter_map(|w| w.parse::<u16>().ok());
    match (numbers.next(), numbers.next()) {
        (Some(low), Some(high)) if 1024 <= low && low <= high => (low, high),
        _ => (32768, 60999),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_follows_glibc() {
        let conf = ResolvConf::parse(
            "# comment\nnameserver 10.0.0.1\nnameserver ::1 # trailing\nnameserver bogus\n\
             nameserver 10.0.0.2\nnameserver 10.0.0.3\ndomain old.test\n\
             search corp.test lab.test\noptions ndots:2 timeout:0 attempts:9 rotate\n",
        );
        assert_eq!(
            conf.servers,
            vec![
                "10.0.0.1:53".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                "10.0.0.2:53".parse().unwrap()
            ]
        );
        assert_eq!(conf.search.len(), 2);
        assert_eq!(conf.search[0].to_ascii(), "corp.test.");
        assert_eq!(conf.ndots, 2);
        assert_eq!(conf.timeout, Duration::from_secs(1));
        assert_eq!(conf.attempts, 5);
        let empty = ResolvConf::parse("");
        assert_eq!(empty.servers.len(), 2);
        assert_eq!(empty.timeout, Duration::from_secs(5));
        assert_eq!(empty.attempts, 2);
    }

    #[test]
    fn search_order_depends_on_ndots() {
        let conf = ResolvConf::parse("search corp.test\noptions ndots:1\n");
        let names = |text: &str, search: bool| -> Vec<String> {
            conf.candidates(&Name::from_str(text).unwrap(), search)
                .iter()
                .map(Name::to_ascii)
                .collect()
        };
        assert_eq!(names("www", true), ["www.corp.test.", "www."]);
        assert_eq!(
            names("www.example", true),
            ["www.example.", "www.example.corp.test."]
        );
        assert_eq!(names("www.", true), ["www."]);
        assert_eq!(names("www", false), ["www."]);
    }
}
