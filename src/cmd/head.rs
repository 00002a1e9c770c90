//! `nk head`: an HTTP/1.1 probe that prints a server's response head (curl -sI), or with
//! `--get` the body too, following RFC 9112 instead of writing a request blindly and reading
//! until close as the seed programs did.
//!
//! The head is read up to its blank line and no further: a HEAD answer carries no body
//! whatever its Content-Length says, so nk returns at once even from a keep-alive server.
//! Bodies are framed by Content-Length, the chunked coding, or the close, and streamed. Every
//! wait is bounded (`-w` for the connection, `--timeout` for the head and for each piece of
//! the body). Request bytes are built and checked by `wire::http`.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use socket2::Socket;

use crate::cli::{FamilyArgs, TlsTrustArgs};
use crate::cmd::stdout_error;
use crate::exit::usage;
use crate::info;
use crate::net::addr::display_addr;
use crate::net::addr::{self, Host, Target};
use crate::net::connect::{self, ConnectOptions};
use crate::net::deadline::{format_duration, parse_timeout, read_before, Deadline};
use crate::net::proxy::Credentials;
use crate::net::tls;
use crate::net::unix::UnixAddr;
use crate::wire::h2;
use crate::wire::http::{self, Chunk, ChunkedDecoder, Framing, Head, Method, Url};
use crate::wire::http_route::{self, Detour, Pin};
use crate::wire::write_out;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What an https:// request offers in ALPN (curl's choice without HTTP/2).
const HTTP_ALPN: &[&str] = &["http/1.1"];

/// What an https:// request offers in ALPN with --http2 (curl's choice).
const H2_ALPN: &[&str] = &["h2", "http/1.1"];

/// Ask an HTTP server for its response head (like curl -sI), or the whole response.
#[derive(Debug, Args)]
#[command(
    long_about = "Send `HEAD PATH HTTP/1.1` (Host, User-Agent nk/VERSION, Accept */*, \
        Connection: close) and print the response head exactly as received, up to and \
        including its blank line, like curl -sI. Reading stops there: no body is read after \
        HEAD, whatever the server's headers or keep-alive say. 1xx interim responses are \
        skipped (-v shows them); HTTP/1.0 servers work. The URL's host is read as by every nk command, as \
        curl reads it: http://127.1:8000/ sends Host: 127.0.0.1:8000 (IPv4 in inet_aton's \
        forms), http://bücher.test/ sends Host: xn--bcher-kva.test and that SNI (UTS 46); \
        -v shows the conversion.\n\n\
        --get sends GET and streams the body after the head (Content-Length, chunked, or until \
        the server closes). https:// URLs (port 443 by default) go over TLS: the server's \
        certificate is checked against the system store (SSL_CERT_FILE and SSL_CERT_DIR \
        honoured), then webpki-roots, or --ca FILE; -k skips the check. ALPN offers \
        http/1.1. A server that closes without close_notify after a complete response is \
        not an error. -L follows redirects (301, 302, 303, 307, 308) and prints every head in \
        the chain. A Location is resolved as RFC 3986 says (a scheme is letters, digits, + - . \
        up to the first colon, before any / ? or #: /login?next=https://x/ is relative); \
        spaces, control characters and non-ASCII bytes in its path and query are \
        percent-encoded as curl does (a space as %20, in the query too, where curl writes +), \
        and an empty port is the scheme's. An empty Location is this same URL (RFC 3986 \
        §5.2.2): like curl, nk does not follow it; it prints that head as the final one, says \
        `warning: ... empty Location ... not followed` on stderr and exits as for any final \
        response (0, or 1 with --fail for 400 and above). --http1.0 sends the bare requests \
        of early HTTP/1.0 clients: `HEAD / HTTP/1.0` with no header, or GET with Host and \
        User-Agent. -H adds \
        a header or replaces a default one (an empty value removes it).\n\n\
        Redirects and credentials, as curl: the -H headers Authorization, Cookie and \
        Proxy-Authorization, and a -H Host, are sent only to the origin of the URL given \
        (scheme, host and port). A redirect to another host, another port or another scheme \
        (https to http above all) gets none of them, and its Host header is the new URL's \
        (-v names what was withheld); other -H headers follow every redirect. A redirect back \
        to the first origin gets them again.\n\n\
        The TLS options (--ca, -k, --sni, --alpn, --cert/--key) need an https:// URL: with \
        an http:// URL they are a usage error (exit 2, nothing sent), unless -L is given, \
        since a redirect may lead to https:// where they then apply.\n\n\
        The URL you type is checked strictly, before anything is sent (exit 2): a CR, LF, \
        space or other control character in the host, path or a header; a port that is not \
        1-65535 in digits (+80, 80x); an empty port (host:); anything but :PORT after [IPv6]; \
        http:/host (the // is missing). A response head with an obsolete folded field (a line \
        starting with a space or tab, RFC 9112 §5.2) is accepted: it is printed as received, \
        and --json gives the value with each fold replaced by a space. A malformed head is \
        refused (exit 1) with the line at fault quoted, escaped, at most 80 bytes of it. Exit status: 0 a response came (any status, unless --fail: \
        then 1 for 400 and above), 1 refused, timed out, a certificate that fails the check \
        (the reason is named) or a malformed response, 2 usage.\n\n\
        --get --json puts the final body in the JSON object: \"body\" is the text when it is \
        UTF-8, otherwise its base64 (\"body_encoding\": \"utf-8\" or \"base64\"). At most \
        --max-body bytes (1M by default) are kept: a longer body is cut there (a UTF-8 text \
        at a character boundary), \"body_truncated\": true, a warning on stderr, exit 0; \
        nk stops reading at the cap.\n\n\
        -v prints the timing (resolve, connect, TLS handshake, first byte, total) and, for \
        https, the TLS version, cipher suite, ALPN and the server certificate's subject, \
        issuer, validity and SHA-256.\n\n\
        Proxies, as curl: -x/--proxy URL (socks4://, socks4a://, socks5://, socks5h://, \
        http://, https://; repeat for a chain). Through an HTTP proxy an http:// URL is asked \
        for in absolute form (`HEAD http://host/path HTTP/1.1` sent to the proxy, with \
        Proxy-Authorization from --proxy-auth or the proxy URL), an https:// URL through a \
        CONNECT tunnel; SOCKS proxies tunnel both. Without -x, the environment is read as \
        curl reads it: http_proxy (lower case only) for http:// URLs, https_proxy or \
        HTTPS_PROXY for https://, then all_proxy or ALL_PROXY; hosts in no_proxy or NO_PROXY \
        (a comma-separated list of domains, which match their subdomains, addresses, CIDR \
        blocks, or * for all) go direct, and --noproxy LIST replaces that list; as in curl, \
        the list applies to -x's proxy too, and -x '' means no proxy at all. \
        -L follows redirects through the same proxy, chosen again for each URL.\n\n\
        curl's options beyond -I mean what they mean in curl. --resolve and --connect-to send \
        the request elsewhere while Host, SNI and the certificate check stay the URL's. -u \
        USER:PASS or user:pass@ in the URL sends Basic credentials to the URL's origin only, \
        refused over http:// unless --basic-over-http; the password never appears in -v, \
        errors or --json. -X METHOD and -d TEXT|@FILE (POST unless -X; a 303, or a 301/302 \
        after a -d POST, continues with GET and no body). -m bounds the whole run, retries \
        included. -o FILE takes the final body (--get), -D FILE the heads. --retry N after \
        connection failures and 408/429/500/502/503/504 (Retry-After honoured). --unix-socket \
        PATH. --compressed asks for gzip or br and decodes the body with --get (a body past \
        16 MiB that grows to 1000 times its encoded size is refused as a bomb). --write-out \
        FORMAT after the run, failed ones too (%{http_code} is then 000). --http2: ALPN h2 \
        over TLS (HTTP/1.1 when not chosen), prior knowledge over clear text; the head as curl \
        prints it (HTTP/2 200, lower-case fields). -v shows 1xx interim heads and the trailers \
        of a chunked (or HTTP/2) body on stderr, as `nk: < LINE`.",
    after_long_help = "Examples:\n  \
        nk head 127.0.0.1:8080/\n  \
        nk head -L --fail http://localhost:8080/old-path\n  \
        nk head --get -H 'Accept: application/json' http://127.0.0.1:8080/api\n  \
        nk head -v --ca ./ca.pem https://localhost:8443/\n  \
        nk head --json -v example.com | jq .status\n  \
        nk head -x http://proxy.example:3128 http://example.com/    # absolute form\n  \
        https_proxy=socks5h://127.0.0.1:1080 nk head -v https://example.com/\n  \
        nk head --connect-to example.com:443:127.0.0.1:8443 https://example.com/\n  \
        nk head --http2 -L https://example.com/\n  \
        nk head -u user:pass -X PUT -d @body.json -H 'Content-Type: application/json' https://127.0.0.1:8443/api\n  \
        nk head --get -m 10s --retry 3 --compressed -o page.html --write-out '%{http_code} %{time_total}\\n' https://example.com/",
    mut_arg("proxy", |arg| arg.short('x'))
)]
pub struct HeadArgs {
    /// http[s]://HOST[:PORT]/PATH?QUERY, or HOST[:PORT][/PATH] (http; a `://` later on, as in
    /// `HOST:PORT/ok?x=http://y`, is part of the query).
    #[arg(value_name = "URL")]
    pub url: String,
    /// Send GET and print the body after the head.
    #[arg(long)]
    pub get: bool,
    /// Add a header, or replace a default one ('Name: value'; 'Name:' removes it).
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,
    /// Send an HTTP/1.0 request (HEAD with no header; GET with Host and User-Agent).
    #[arg(long = "http1.0")]
    pub http10: bool,
    /// Follow redirects (301, 302, 303, 307, 308), printing every head.
    #[arg(short = 'L', long = "location")]
    pub follow: bool,
    /// With -L, give up after N redirects (exit 1).
    #[arg(long = "max-redirs", value_name = "N", default_value_t = 10)]
    pub max_redirs: u32,
    /// Connection timeout (also bounds the name lookup). Default 10s.
    #[arg(short = 'w', long = "connect-timeout", value_name = "DUR", value_parser = parse_timeout)]
    pub connect_timeout: Option<Duration>,
    /// The longest wait for the response head, and for each piece of the body. Default 30s.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Exit 1 when the final status is 400 or above (the head is still printed).
    #[arg(long)]
    pub fail: bool,
    /// One JSON object per response instead of the raw head:
    /// {url, version, status, reason, headers, timing}; with --get the final one also has
    /// body, body_encoding ("utf-8" or "base64") and body_truncated (see --max-body).
    #[arg(long)]
    pub json: bool,
    /// With --get --json: keep at most SIZE bytes of the body in the JSON (65536, 64k, 4M; at
    /// most 1 GiB). A longer body is cut there, "body_truncated": true, and a warning.
    #[arg(long = "max-body", value_name = "SIZE", value_parser = crate::cli::parse_size,
          default_value = "1M", requires_all = ["get", "json"])]
    pub max_body: usize,
    #[command(flatten)]
    pub family: FamilyArgs,
    #[command(flatten)]
    pub trust: TlsTrustArgs,
    #[command(flatten)]
    pub proxy: crate::cli::ProxyArgs,
    /// Hosts reached directly, not through a proxy (curl's); replaces $no_proxy.
    ///
    /// A comma-separated list of domains (with their subdomains), addresses, CIDR blocks, or
    /// * for all.
    #[arg(long = "noproxy", value_name = "LIST", help_heading = "Proxy")]
    pub noproxy: Option<String>,
    /// Use ADDR (one or more, tried in order) for HOST:PORT instead of the resolver, as curl's
    /// --resolve; HOST may be * (any). Host and SNI stay the URL's. Repeatable.
    #[arg(long = "resolve", value_name = "HOST:PORT:ADDR[,ADDR]",
          value_parser = http_route::parse_resolve, help_heading = "Routing")]
    pub resolve: Vec<Pin>,
    /// Dial HOST2:PORT2 for requests to HOST:PORT, as curl's --connect-to (an empty HOST or
    /// PORT matches any, an empty HOST2 or PORT2 keeps the URL's). Host and SNI stay the
    /// URL's. Repeatable; the first that matches applies, then --resolve.
    #[arg(long = "connect-to", value_name = "HOST:PORT:HOST2:PORT2",
          value_parser = http_route::parse_connect_to, help_heading = "Routing")]
    pub connect_to: Vec<Detour>,
    /// Basic authentication (curl's -u), sent to the URL's origin only, never after a
    /// redirect elsewhere; overrides user:pass@ in the URL. Refused over http:// unless
    /// --basic-over-http.
    #[arg(
        short = 'u',
        long = "user",
        value_name = "USER:PASS",
        help_heading = "Request"
    )]
    pub user: Option<String>,
    /// Allow Basic credentials over plain http:// (they cross the network readable).
    #[arg(long = "basic-over-http", help_heading = "Request")]
    pub basic_over_http: bool,
    /// The request method (any token: PUT, DELETE, OPTIONS...). Default HEAD, GET with
    /// --get, POST with -d. A body is sent only with -d.
    #[arg(
        short = 'X',
        long = "request",
        value_name = "METHOD",
        help_heading = "Request"
    )]
    pub request: Option<String>,
    /// A request body, as curl's -d: TEXT, or @FILE (@- is stdin) with its CR and LF removed;
    /// repeated ones are joined with &. Content-Type application/x-www-form-urlencoded
    /// unless -H names another.
    #[arg(
        short = 'd',
        long = "data",
        value_name = "@FILE|TEXT",
        help_heading = "Request"
    )]
    pub data: Vec<String>,
    /// Bound the whole run: resolve, connect, TLS, heads, bodies, redirects and retries
    /// together (curl's -m). Exit 1 when it is reached.
    #[arg(short = 'm', long = "max-time", value_name = "DUR", value_parser = parse_timeout,
          help_heading = "Request")]
    pub max_time: Option<Duration>,
    /// Write the body to FILE instead of stdout (needs --get; the final response's body only).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        requires = "get",
        help_heading = "Output"
    )]
    pub output: Option<std::path::PathBuf>,
    /// Write the heads to FILE instead of stdout ('-' is stdout), as curl's -D.
    #[arg(
        short = 'D',
        long = "dump-header",
        value_name = "FILE",
        conflicts_with = "json",
        help_heading = "Output"
    )]
    pub dump_header: Option<String>,
    /// Try again up to N times after a connection failure, or a 408, 429, 500, 502, 503 or
    /// 504 answer: after Retry-After when the server gives one (at most 10 minutes), else
    /// 1s, 2s, 4s... as curl. -m bounds the whole.
    #[arg(
        long = "retry",
        value_name = "N",
        default_value_t = 0,
        help_heading = "Request"
    )]
    pub retry: u32,
    /// Connect to this Unix socket (PATH or @abstract) instead of the URL's host and port;
    /// the request (Host, TLS name for https://) is the URL's, as curl's --unix-socket.
    #[arg(long = "unix-socket", value_name = "PATH", conflicts_with_all = ["proxy", "resolve", "connect_to"],
          help_heading = "Routing")]
    pub unix_socket: Option<String>,
    /// Send Accept-Encoding: gzip, br; with --get, a gzip or br body is decoded (one past
    /// 16 MiB that grows to more than 1000 times its encoded size is refused as a bomb).
    #[arg(long = "compressed", help_heading = "Request")]
    pub compressed: bool,
    /// After the run, print FORMAT with curl's variables filled in: %{http_code},
    /// %{time_total}, %{time_connect}, %{time_starttransfer}, %{size_download},
    /// %{remote_ip}, %{url_effective}, %{num_redirects}; \n, %% and %{stderr} as in curl;
    /// @FILE reads the format from FILE.
    #[arg(long = "write-out", value_name = "FORMAT", help_heading = "Output")]
    pub write_out: Option<String>,
    /// HTTP/2: ALPN h2 over TLS (HTTP/1.1 when the server does not choose it), prior
    /// knowledge over clear text; the head printed as curl prints it (HTTP/2 200, fields in
    /// lower case).
    #[arg(long = "http2", conflicts_with_all = ["http10", "data"], help_heading = "Request")]
    pub http2: bool,
}

/// When each step finished, from the start of the request.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    resolve: Duration,
    connect: Duration,
    /// When the TLS handshake finished (https only).
    tls: Option<Duration>,
    first_byte: Duration,
    total: Duration,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// A response whose head has been read.
struct Response {
    /// The TCP connection, or the plaintext side of its TLS bridge.
    stream: Socket,
    head: Head,
    raw_head: Vec<u8>,
    /// Bytes read after the head (the start of the body).
    leftover: Vec<u8>,
    timing: Timing,
    started: Instant,
    /// Body bytes received (as sent: before any decoding, without chunk framing).
    body_bytes: u64,
    /// The address connected to, when it was an IP one.
    remote_ip: Option<std::net::IpAddr>,
    /// The HTTP/2 stream, when the response came that way.
    h2: Option<H2Stream>,
}

/// What `--write-out` reports of a run, filled in as it goes.
#[derive(Debug, Default)]
struct Outcome {
    values: write_out::Values,
}

/// What bounds a run as a whole (`-m`), besides each step's own limit.
#[derive(Debug, Clone, Copy)]
struct Limits {
    overall: Deadline,
    max_time: Option<Duration>,
}

impl Limits {
    /// `step` shortened to what `-m` leaves; an error once nothing is left.
    fn within(&self, step: Duration) -> Result<Duration> {
        match self.overall.remaining() {
            Ok(None) => Ok(step),
            Ok(Some(left)) => Ok(step.min(left)),
            Err(_) => Err(self.reached()),
        }
    }

    /// The deadline of a step that may last `step`.
    fn deadline(&self, step: Duration) -> Deadline {
        Deadline::after(Some(step)).min(self.overall)
    }

    fn reached(&self) -> anyhow::Error {
        anyhow!(
            "-m/--max-time {} reached",
            format_duration(self.max_time.unwrap_or_default())
        )
    }

    /// The error for a wait of `step` that ended with nothing: `-m` when that is what ran out.
    fn silence(&self, step: Duration, what: &str) -> anyhow::Error {
        match self.overall.expired() {
            true => self.reached(),
            false => anyhow!("{what} {}", format_duration(step)),
        }
    }
}

/// Basic credentials: `-u USER:PASS`, else the URL's `user:pass@` (percent-decoded).
fn credentials(args: &HeadArgs, userinfo: Option<&str>) -> Result<Option<Credentials>> {
    if let Some(user) = &args.user {
        if !user.contains(':') {
            return Err(usage(
                "-u needs USER:PASS (nk asks for no password; an empty one is USER:)",
            ));
        }
        return Ok(Some(Credentials::parse(user)));
    }
    let Some(userinfo) = userinfo else {
        return Ok(None);
    };
    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |t: &str| {
        crate::net::proxy::percent_decode(t)
            .map_err(|e| usage(format!("the URL's credentials: {e}")))
    };
    Ok(Some(Credentials {
        user: decode(user)?,
        pass: decode(pass)?,
    }))
}

/// The `-d` body: each TEXT as given, each @FILE (@- stdin) with CR and LF removed as curl's
/// -d does, joined with `&`.
fn request_body(args: &HeadArgs) -> Result<Option<Vec<u8>>> {
    if args.data.is_empty() {
        return Ok(None);
    }
    let mut body = Vec::new();
    for (i, data) in args.data.iter().enumerate() {
        if i > 0 {
            body.push(b'&');
        }
        let Some(path) = data.strip_prefix('@') else {
            body.extend_from_slice(data.as_bytes());
            continue;
        };
        let mut bytes = Vec::new();
        let read = match path {
            "-" => io::stdin()
                .lock()
                .take(MAX_DATA + 1)
                .read_to_end(&mut bytes),
            _ => {
                std::fs::File::open(path).and_then(|f| f.take(MAX_DATA + 1).read_to_end(&mut bytes))
            }
        };
        read.map_err(|e| usage(format!("-d @{path}: {e}")))?;
        if bytes.len() as u64 > MAX_DATA {
            return Err(usage(format!(
                "-d @{path}: longer than {} MiB",
                MAX_DATA >> 20
            )));
        }
        body.extend(bytes.into_iter().filter(|b| !matches!(b, b'\r' | b'\n')));
    }
    Ok(Some(body))
}

/// The most bytes of one `-d @FILE` read (the body is held in memory to send it again on a
/// redirect or a retry).
const MAX_DATA: u64 = 256 << 20;

/// Where heads go: stdout, or the `-D` file.
fn head_writer(args: &HeadArgs) -> Result<Option<std::fs::File>> {
    match args.dump_header.as_deref() {
        None | Some("-") => Ok(None),
        Some(path) => std::fs::File::create(path)
            .map(Some)
            .map_err(|e| usage(format!("-D {path}: {e}"))),
    }
}

/// Runs `nk head`.
pub fn run(args: HeadArgs) -> Result<()> {
    // The URL's password stops here: what goes on is the URL without its userinfo.
    let (userinfo, url_text) = http::split_userinfo(&args.url);
    let url = canonical_host(http::parse_url(&url_text).map_err(usage)?)?;
    let credentials = credentials(&args, userinfo)?;
    if credentials.is_some() && !url.tls && !args.basic_over_http {
        return Err(anyhow::Error::new(
            crate::exit::UsageError::new(format!(
                "head {url}: Basic credentials would cross the network readable over http://"
            ))
            .with_hint("use https://, or add --basic-over-http if that is what you want"),
        ));
    }
    let mut extra: Vec<(String, String)> = credentials
        .iter()
        .map(|c| {
            (
                "Authorization".to_string(),
                crate::net::proxy::http_connect::basic_authorization(c),
            )
        })
        .collect();
    for h in &args.headers {
        extra.push(http::parse_header(h).map_err(usage)?);
    }
    if let Some(verb) = &args.request {
        if !http::is_token(verb) {
            return Err(usage(format!(
                "-X \"{}\" is not a method name (letters, digits and !#$%&'*+-.^_`|~)",
                verb.escape_debug()
            )));
        }
    }
    if args.compressed {
        // Before the -H headers: a -H Accept-Encoding replaces it.
        extra.insert(0, ("Accept-Encoding".into(), "gzip, br".into()));
    }
    if let Some(path) = &args.unix_socket {
        UnixAddr::parse(path)?;
    }
    let write_out = args
        .write_out
        .as_deref()
        .map(write_out_format)
        .transpose()?;
    let body = request_body(&args)?;
    let mut heads_file = head_writer(&args)?;
    let limits = Limits {
        overall: Deadline::after(args.max_time),
        max_time: args.max_time,
    };
    let run_started = Instant::now();
    let mut outcome = Outcome::default();
    let result = transfer(
        &args,
        url,
        extra,
        body,
        limits,
        &mut heads_file,
        &mut outcome,
    );
    if let Some(pieces) = write_out {
        outcome.values.time_total = run_started.elapsed().as_secs_f64();
        let (out, err) = write_out::render(&pieces, &outcome.values);
        let _ = io::stderr().lock().write_all(err.as_bytes());
        let mut stdout = io::stdout().lock();
        stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(stdout_error)?;
    }
    match result {
        Err(e) if limits.overall.expired() && !format!("{e:#}").contains("--max-time") => {
            Err(e.context(limits.reached()))
        }
        other => other,
    }
}

/// The `--write-out` format, parsed (from FILE for `@FILE`), before any traffic.
fn write_out_format(text: &str) -> Result<Vec<write_out::Piece>> {
    let format = match text.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| usage(format!("--write-out @{path}: {e}")))?
        }
        None => text.to_string(),
    };
    write_out::parse(&format).map_err(usage)
}

/// The statuses `--retry` tries again after, as curl's list of transient ones.
const RETRY_STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// The longest wait between two tries (curl's longest back-off).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(600);

/// How long to wait before try `attempt + 2`: the server's Retry-After (seconds or an
/// HTTP date), else 1s doubled each time; at most [`MAX_RETRY_WAIT`].
fn retry_wait(attempt: u32, retry_after: Option<&str>) -> Duration {
    let given = retry_after.and_then(|value| {
        let value = value.trim();
        match value.parse::<u64>() {
            Ok(seconds) => Some(Duration::from_secs(seconds)),
            Err(_) => chrono::DateTime::parse_from_rfc2822(value).ok().map(|at| {
                (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default()
            }),
        }
    });
    given
        .unwrap_or_else(|| Duration::from_secs(1u64 << attempt.min(10)))
        .min(MAX_RETRY_WAIT)
}

/// The requests of one run: the URL, then each redirect.
fn transfer(
    args: &HeadArgs,
    mut url: Url,
    extra: Vec<(String, String)>,
    mut body: Option<Vec<u8>>,
    limits: Limits,
    heads_file: &mut Option<std::fs::File>,
    outcome: &mut Outcome,
) -> Result<()> {
    let run_started = Instant::now();
    let mut verb = match (&args.request, &body, args.get) {
        (Some(verb), _, _) => verb.clone(),
        (None, Some(_), _) => "POST".to_string(),
        (None, None, true) => "GET".to_string(),
        (None, None, false) => "HEAD".to_string(),
    };
    // Trust options with an http:// URL do nothing, unless -L may reach https:// on the way.
    if !url.tls && !args.follow {
        if let Some(flag) = args.trust.given() {
            return Err(usage(format!(
                "{flag} needs an https:// URL (or -L, whose redirects may reach https://)"
            )));
        }
    }
    // Credentials and a Host header were meant for the origin the user typed (scheme, host,
    // port): a redirect elsewhere, an https -> http downgrade included, must not carry them.
    let first_origin = origin(&url);
    // Made at once for an https:// URL or a TLS option (a bad --ca file is a usage error
    // before any traffic), otherwise on first need: an http:// URL may redirect to https://.
    let mut tls_config = (url.tls || args.trust.given().is_some())
        .then(|| args.trust.config(alpn(args)))
        .transpose()?;
    let mut redirects = 0;
    if !args.proxy.given() && proxies_for(args, &url, false)?.is_empty() {
        if let Some(flag) = args.proxy.companion() {
            return Err(usage(format!(
                "{flag} needs a proxy: -x/--proxy, or one from the environment"
            )));
        }
    }
    loop {
        let proxies = match args.unix_socket {
            Some(_) => crate::net::proxy::Chain::default(),
            None => proxies_for(args, &url, true)?,
        };
        outcome.values.url_effective = url.to_string();
        // An HTTP proxy gets an http:// URL itself, in absolute form, as curl sends it.
        let absolute = !url.tls && proxies.hops.last().is_some_and(|p| p.kind.is_http());
        let mut hop_extra = headers_for(&url, &first_origin, &extra);
        let mut request_url = url.clone();
        if absolute {
            request_url.path = format!("http://{}{}", url.authority(), url.path);
            if let Some(credentials) = proxies.hops.last().and_then(|p| p.credentials.as_ref()) {
                hop_extra.push((
                    "Proxy-Authorization".into(),
                    crate::net::proxy::http_connect::basic_authorization(credentials),
                ));
            }
        }
        let request = Request {
            http1: http::build_request_with(
                &verb,
                &request_url,
                args.http10,
                &hop_extra,
                body.as_deref(),
            ),
            // Through an HTTP proxy in absolute form, HTTP/1.1 to the proxy, as curl does.
            h2: (args.http2 && !absolute).then(|| h2::request(&verb, &url, &hop_extra)),
        };
        if url.tls && tls_config.is_none() {
            tls_config = Some(args.trust.config(alpn(args))?);
        }
        let config = if url.tls { tls_config.clone() } else { None };
        let mut attempt = 0;
        let mut response = loop {
            let hops = match attempt {
                0 => proxies.clone(),
                _ => proxies_for(args, &url, false)?,
            };
            let result = fetch(&url, &request, args, config.clone(), hops, absolute, limits);
            let (why, retry_after) = match &result {
                Err(e) if crate::exit::classify(e) != crate::exit::Status::Usage => {
                    (format!("{e:#}"), None)
                }
                Ok(r) if RETRY_STATUSES.contains(&r.head.status) => (
                    format!("the server answered {} {}", r.head.status, r.head.reason),
                    r.head.header("retry-after"),
                ),
                _ => break result?,
            };
            if attempt >= args.retry {
                break result?;
            }
            let wait = retry_wait(attempt, retry_after);
            if limits
                .overall
                .remaining()
                .ok()
                .flatten()
                .is_some_and(|left| left <= wait)
            {
                crate::log::warn(format_args!(
                    "head {url}: not retried: waiting {} would pass -m/--max-time",
                    format_duration(wait)
                ));
                break result?;
            }
            attempt += 1;
            crate::log::warn(format_args!(
                "head {url}: {why}: try {} of {} in {}",
                attempt + 1,
                args.retry + 1,
                format_duration(wait)
            ));
            std::thread::sleep(wait);
        };
        let offset = response.started.duration_since(run_started);
        outcome.values.http_code = Some(response.head.status);
        outcome.values.remote_ip = response
            .remote_ip
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        outcome.values.time_connect = (offset + response.timing.connect).as_secs_f64();
        outcome.values.time_starttransfer = (offset + response.timing.first_byte).as_secs_f64();
        let location = response.head.location.clone();
        let redirect_status = matches!(response.head.status, 301 | 302 | 303 | 307 | 308);
        // An empty Location is a reference to this very URL (RFC 3986 §5.2.2): following it
        // would ask again for what was just answered. curl ignores it; nk says so and stops.
        let empty = location
            .as_deref()
            .is_some_and(|l| l.trim_ascii().is_empty());
        if args.follow && redirect_status && empty {
            crate::log::warn(format_args!(
                "head {url}: the {} response has an empty Location (this same URL): not followed",
                response.head.status
            ));
        }
        let redirect = args.follow && redirect_status && location.is_some() && !empty;
        let method = if verb == "HEAD" {
            Method::Head
        } else {
            Method::Get
        };
        if !redirect && args.get {
            if args.json {
                let kept = collect_body(&mut response, args, &url, method, limits)?;
                print_head(args, &url, &response, Some(&kept), heads_file)?;
            } else {
                print_head(args, &url, &response, None, heads_file)?;
                save_body(&mut response, args, &url, method, limits)?;
            }
        }
        response.timing.total = response.started.elapsed();
        outcome.values.size_download = response.body_bytes;
        if redirect || !args.get {
            print_head(args, &url, &response, None, heads_file)?;
        }
        let t = response.timing;
        let handshake = t
            .tls
            .map(|d| format!(", tls {:.3} ms", ms(d)))
            .unwrap_or_default();
        info!(
            "timing: resolve {:.3} ms, connect {:.3} ms{handshake}, first byte {:.3} ms, total {:.3} ms",
            ms(t.resolve),
            ms(t.connect),
            ms(t.first_byte),
            ms(t.total)
        );
        if redirect {
            if redirects >= args.max_redirs {
                return Err(anyhow!(
                    "head {url}: too many redirects (more than --max-redirs {})",
                    args.max_redirs
                ));
            }
            redirects += 1;
            outcome.values.num_redirects = redirects;
            let next = http::resolve_location(&url, location.as_deref().unwrap_or_default())
                .map_err(|e| anyhow!("head {url}: cannot follow the redirect: {e}"))?;
            let next = canonical_host(next)
                .map_err(|e| anyhow!("head {url}: cannot follow the redirect: {e:#}"))?;
            info!("following {} to {next}", response.head.status);
            // 303 asks for a GET; a POST that -d made (not -X) becomes one after 301 and 302,
            // as browsers and curl do. 307 and 308 keep the method and the body.
            let status = response.head.status;
            if (status == 303 && verb != "HEAD")
                || (matches!(status, 301 | 302) && verb == "POST" && args.request.is_none())
            {
                verb = "GET".to_string();
                body = None;
            }
            url = next;
            continue;
        }
        if args.fail && response.head.status >= 400 {
            return Err(anyhow!(
                "head {url}: the server answered {} {} (--fail)",
                response.head.status,
                response.head.reason
            ));
        }
        return Ok(());
    }
}

/// The proxies for `url`: -x/--proxy, or the environment's as curl reads it; none for a
/// host --noproxy or $no_proxy lists. `say`: -v tells which variable gave the proxy (once
/// per URL, not again for the check before the first request or for a retry).
fn proxies_for(args: &HeadArgs, url: &Url, say: bool) -> Result<crate::net::proxy::Chain> {
    use crate::net::proxy;
    if args.proxy.given() {
        // curl: `-x ""` means no proxy at all, the environment's included.
        if args.proxy.proxy.iter().all(|p| p.trim().is_empty()) {
            return Ok(proxy::Chain::default());
        }
        // curl applies --noproxy, else $no_proxy, to -x's proxy as to the environment's.
        let bypass = args.noproxy.clone().unwrap_or_else(proxy::no_proxy_env);
        return match proxy::no_proxy_matches(&bypass, &url.host) {
            true => Ok(proxy::Chain::default()),
            false => args.proxy.chain(),
        };
    }
    let scheme = if url.tls { "https" } else { "http" };
    match proxy::for_url(scheme, &url.host, args.noproxy.as_deref()) {
        Some((text, variable)) => {
            let chain = args.proxy.chain_of(&[text]).map_err(|e| {
                anyhow::Error::new(crate::exit::UsageError::new(format!("${variable}: {e:#}")))
            })?;
            if let Some(hop) = chain.hops.first().filter(|_| say) {
                info!("proxy {hop} from ${variable}");
            }
            Ok(chain)
        }
        None => Ok(proxy::Chain::default()),
    }
}

/// The URL with its host as every nk command reads it (`addr::parse_host`): an IPv4 literal
/// in inet_aton's forms written as four numbers (`http://127.1/` asks for Host: 127.0.0.1, as
/// curl does), an IDN in its ASCII form (Host, SNI and the resolver all need the punycode).
/// A host that is no host is refused here, before any traffic.
fn canonical_host(mut url: Url) -> Result<Url> {
    url.host = match addr::parse_host(&url.host)? {
        Host::Ip(ip) => ip.to_string(),
        Host::Name(name) => name,
    };
    Ok(url)
}

/// The user's headers that only the origin they typed may see, as curl drops them.
const CREDENTIAL_HEADERS: [&str; 3] = ["Authorization", "Cookie", "Proxy-Authorization"];

/// A URL's origin (RFC 6454: scheme, host, port); host names compare without case.
fn origin(url: &Url) -> (bool, String, u16) {
    (url.tls, url.host.to_ascii_lowercase(), url.port)
}

/// The user's `-H` headers for a request to `url`: all of them within the first origin;
/// elsewhere, no credential and no Host (the Host is then the new URL's own).
fn headers_for(
    url: &Url,
    first: &(bool, String, u16),
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    if origin(url) == *first {
        return extra.to_vec();
    }
    let withheld = |name: &str| {
        name.eq_ignore_ascii_case("host")
            || CREDENTIAL_HEADERS
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name))
    };
    let dropped: Vec<&str> = extra
        .iter()
        .filter(|(n, _)| withheld(n))
        .map(|(n, _)| n.as_str())
        .collect();
    if !dropped.is_empty() {
        info!(
            "not sending {} to {url}: another origin than the URL given",
            dropped.join(", ")
        );
    }
    extra
        .iter()
        .filter(|(n, _)| !withheld(n))
        .cloned()
        .collect()
}

/// Where a request for `url` is dialled: `--connect-to`'s HOST2:PORT2 for the first entry
/// that matches, otherwise the URL's host and port; and `--resolve`'s addresses for that
/// host and port, if an entry gives them (only those of the -4/-6 family).
fn route(args: &HeadArgs, url: &Url) -> Result<(Target, Option<Vec<std::net::SocketAddr>>)> {
    let (host, port) = args
        .connect_to
        .iter()
        .find_map(|d| d.apply(&url.host, url.port))
        .unwrap_or_else(|| (url.host.clone(), url.port));
    let target = Target {
        host: addr::parse_host(&host)?,
        port,
    };
    if (host.as_str(), port) != (url.host.as_str(), url.port) {
        info!("--connect-to: {} is dialled at {target}", url.authority());
    }
    let Some(pin) = args.resolve.iter().find(|p| p.matches(&host, port)) else {
        return Ok((target, None));
    };
    let family = args.family.family();
    let addrs: Vec<std::net::SocketAddr> = pin
        .addrs
        .iter()
        .filter(|ip| family.allows(**ip))
        .map(|ip| std::net::SocketAddr::new(*ip, port))
        .collect();
    if addrs.is_empty() {
        return Err(anyhow!(
            "connect {target}: --resolve gives it no address of the family -4/-6 asks for"
        ));
    }
    info!(
        "--resolve: {target} is {}",
        addrs
            .iter()
            .map(|a| a.ip().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok((target, Some(addrs)))
}

/// The ALPN protocols offered.
fn alpn(args: &HeadArgs) -> &'static [&'static str] {
    match args.http2 {
        true => H2_ALPN,
        false => HTTP_ALPN,
    }
}

/// A request in the forms it may go in.
#[derive(Debug)]
struct Request {
    /// HTTP/1.x bytes.
    http1: Vec<u8>,
    /// HTTP/2 bytes (preface, settings, headers), with --http2: sent in clear text (prior
    /// knowledge), or over TLS when ALPN chose h2.
    h2: Option<Vec<u8>>,
}

/// Connects (with TLS when `tls` is given), sends the request and reads the response head
/// (skipping 1xx).
fn fetch(
    url: &Url,
    request: &Request,
    args: &HeadArgs,
    tls: Option<Arc<rustls::ClientConfig>>,
    proxies: crate::net::proxy::Chain,
    absolute: bool,
    limits: Limits,
) -> Result<Response> {
    let started = Instant::now();
    let timeout = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let connect_timeout = limits.within(args.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))?;
    let mut timing = Timing::default();
    let (stream, peer, remote_ip) = match &args.unix_socket {
        Some(path) => {
            let path = UnixAddr::parse(path)?;
            let socket = Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
                .context("create Unix socket")?;
            socket
                .connect_timeout(&path.sockaddr()?, connect_timeout)
                .with_context(|| format!("connect {path} (--unix-socket)"))?;
            info!("connected to {path} (--unix-socket)");
            // A TcpStream is only a socket's descriptor to the TLS layer: reads, writes,
            // shutdown and timeouts are the same calls on a Unix socket.
            let stream = std::net::TcpStream::from(std::os::fd::OwnedFd::from(socket));
            (stream, path.to_string(), None)
        }
        None => {
            let connected = dial(
                url,
                args,
                proxies,
                absolute,
                connect_timeout,
                started,
                &mut timing,
            )?;
            let peer = connected.peer;
            (connected.stream, display_addr(peer), Some(peer.ip()))
        }
    };
    timing.connect = started.elapsed();
    let mut bytes = request.h2.as_deref();
    let stream = match tls {
        Some(config) => {
            let name = args.trust.server_name(&url.host);
            let limit = limits.within(timeout)?;
            let bridge = tls::connect(stream, config, &name, &peer, limit)?;
            if bytes.is_some() && bridge.alpn() != Some(b"h2") {
                info!("ALPN: the server did not choose h2: HTTP/1.1");
                bytes = None;
            }
            timing.tls = Some(started.elapsed());
            bridge.into_socket()
        }
        None => Socket::from(stream),
    };
    let deadline = limits.deadline(timeout);
    stream
        .set_write_timeout(Some(limits.within(timeout)?))
        .context("set the write timeout")?;
    (&stream)
        .write_all(bytes.unwrap_or(&request.http1))
        .with_context(|| format!("head {url}: send the request"))?;
    let mut response = Response {
        stream,
        head: Head {
            version: "HTTP/1.1",
            status: 0,
            reason: String::new(),
            headers: Vec::new(),
            location: None,
            len: 0,
        },
        raw_head: Vec::new(),
        leftover: Vec::new(),
        timing,
        started,
        body_bytes: 0,
        remote_ip,
        h2: bytes.map(|_| H2Stream::default()),
    };
    match response.h2.is_some() {
        true => read_h2_head(url, &mut response, deadline, timeout, limits)?,
        false => read_response(url, &mut response, deadline, timeout, limits)?,
    }
    Ok(response)
}

/// An HTTP/2 response's state after its head.
#[derive(Debug, Default)]
struct H2Stream {
    conversation: h2::Conversation,
    /// The response is complete (END_STREAM seen).
    ended: bool,
    /// Events that came with the head, for the body to take.
    queued: Vec<h2::Event>,
}

/// The events of the next frames of an HTTP/2 response: reads until at least one frame is
/// complete (under `deadline`), answers what needs an answer, returns the rest.
fn h2_events(
    response: &mut Response,
    deadline: Deadline,
    timeout: Duration,
    limits: Limits,
) -> Result<Vec<h2::Event>> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut events = Vec::new();
        let state = response.h2.as_mut().ok_or_else(|| anyhow!("not HTTP/2"))?;
        let mut used = 0;
        while let Some((frame, n)) =
            h2::parse_frame(&response.leftover[used..]).map_err(|e| anyhow!("HTTP/2: {e}"))?
        {
            events.extend(
                state
                    .conversation
                    .on_frame(&frame)
                    .map_err(|e| anyhow!("HTTP/2: {e}"))?,
            );
            used += n;
        }
        response.leftover.drain(..used);
        let mut rest = Vec::new();
        for event in events {
            match event {
                h2::Event::Send(bytes) => (&response.stream)
                    .write_all(&bytes)
                    .context("HTTP/2: answer the server")?,
                other => rest.push(other),
            }
        }
        if !rest.is_empty() {
            return Ok(rest);
        }
        let n = read_before(&response.stream, deadline, |mut s| s.read(&mut chunk))
            .context("read the response")?
            .ok_or_else(|| limits.silence(timeout, "nothing from the server for"))?;
        if n == 0 {
            return Err(anyhow!(
                "the server closed the connection before the end of the HTTP/2 response"
            ));
        }
        if response.timing.first_byte.is_zero() {
            response.timing.first_byte = response.started.elapsed();
        }
        response.leftover.extend_from_slice(&chunk[..n]);
    }
}

/// Reads an HTTP/2 response head (1xx ones shown with -v).
fn read_h2_head(
    url: &Url,
    response: &mut Response,
    deadline: Deadline,
    timeout: Duration,
    limits: Limits,
) -> Result<()> {
    loop {
        let events = h2_events(response, deadline, timeout, limits)
            .with_context(|| format!("head {url}"))?;
        let mut events = events.into_iter();
        while let Some(event) = events.next() {
            match event {
                h2::Event::Head(head) if head.is_interim() => {
                    show_lines("", &h2::render_head(&head));
                }
                h2::Event::Head(mut head) => {
                    response.raw_head = h2::render_head(&head);
                    head.len = response.raw_head.len();
                    response.head = head;
                    if let Some(state) = response.h2.as_mut() {
                        state.queued = events.collect();
                        // A response with no body (HEAD's) ends with its head.
                        state.ended = state.queued.first() == Some(&h2::Event::End);
                    }
                    return Ok(());
                }
                h2::Event::End => {
                    return Err(anyhow!(
                        "head {url}: HTTP/2: the stream ended with no response"
                    ))
                }
                _ => {}
            }
        }
    }
}

/// Connects to the URL's server (or the one --connect-to, --resolve and the proxies name).
fn dial(
    url: &Url,
    args: &HeadArgs,
    mut proxies: crate::net::proxy::Chain,
    absolute: bool,
    connect_timeout: Duration,
    started: Instant,
    timing: &mut Timing,
) -> Result<connect::Connected> {
    let (mut target, mut pinned) = route(args, url)?;
    // Absolute form: the last proxy is the server this request goes to.
    let http_proxy = match absolute {
        true => proxies.hops.pop(),
        false => None,
    };
    if let Some(proxy) = &http_proxy {
        // The URL's --resolve addresses are the origin's, which the proxy reaches: dialling
        // them would bypass the proxy.
        target = proxy.target.clone();
        pinned = None;
    }
    let connect_deadline = Deadline::after(Some(connect_timeout));
    let mut opts = ConnectOptions {
        family: args.family.family(),
        timeout: Some(connect_timeout),
        ..ConnectOptions::default()
    };
    let tls_to_proxy = proxies.tls.clone();
    let mut connected = match proxies.is_empty() {
        true => {
            let direct = || -> Result<connect::Connected> {
                let addrs = match pinned {
                    Some(addrs) => addrs,
                    None => addr::resolve(&target, args.family.family(), connect_deadline)?,
                };
                timing.resolve = started.elapsed();
                connect::happy_eyeballs(&target, &addrs, &opts, connect_deadline)
            };
            match &http_proxy {
                // Absolute form: what is dialled is the proxy, and a failure says so.
                Some(proxy) => direct().map_err(|err| {
                    crate::net::proxy::first_hop_failed(err, proxy)
                        .context(format!("connect {} through proxy {proxy}", url.authority()))
                })?,
                None => direct()?,
            }
        }
        // The proxies resolve what they are asked to (a --resolve address is asked for as
        // such); the chain reports its own timing.
        false => {
            if let Some(first) = pinned.as_ref().and_then(|a| a.first()) {
                target.host = Host::Ip(first.ip());
            }
            opts.proxies = proxies;
            connect::connect(&target, &opts)?
        }
    };
    if let Some(proxy) = http_proxy
        .as_ref()
        .filter(|p| p.kind == crate::net::proxy::Kind::Https)
    {
        let config = tls_to_proxy.ok_or_else(|| anyhow!("no TLS configuration for {proxy}"))?;
        connected.stream =
            crate::net::proxy::open_tls(connected.stream, proxy, config, connect_timeout.into())?;
    }
    Ok(connected)
}

/// Reads an HTTP/1.x response head (skipping 1xx, shown with -v) under `deadline`.
fn read_response(
    url: &Url,
    response: &mut Response,
    deadline: Deadline,
    timeout: Duration,
    limits: Limits,
) -> Result<()> {
    let stream = &response.stream;
    let timing = &mut response.timing;
    let started = response.started;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let head = http::parse_head(&buf).map_err(|e| anyhow!("head {url}: {e}"))?;
        match head {
            Some(head) if head.is_interim() => {
                show_lines("", &buf[..head.len]);
                buf.drain(..head.len);
            }
            Some(head) => {
                response.leftover = buf.split_off(head.len);
                response.head = head;
                response.raw_head = buf;
                return Ok(());
            }
            None => {
                let n = read_before(stream, deadline, |mut s| s.read(&mut chunk))
                    .with_context(|| format!("head {url}: read the response"))?
                    .ok_or_else(|| {
                        limits
                            .silence(timeout, "no response within")
                            .context(format!("head {url}"))
                    })?;
                if n == 0 {
                    return Err(if buf.is_empty() {
                        anyhow!("head {url}: the server closed the connection without a response")
                    } else {
                        anyhow!(
                            "head {url}: the server closed the connection in the middle of the response head ({} bytes)",
                            buf.len()
                        )
                    });
                }
                if timing.first_byte.is_zero() {
                    timing.first_byte = started.elapsed();
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// `-v`: the lines of an interim head or of trailers, as curl -v shows what it receives
/// (`< ` first), escaped so that no control character reaches the terminal.
fn show_lines(label: &str, bytes: &[u8]) {
    if crate::log::verbosity() == 0 {
        return;
    }
    for line in bytes.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            let text: String = String::from_utf8_lossy(line).escape_debug().collect();
            info!("< {text}{label}");
        }
    }
}

/// A GET body kept for `--json`: at most `--max-body` bytes of it.
#[derive(Debug, Default)]
struct Body {
    bytes: Vec<u8>,
    /// The server sent more than `--max-body`: `bytes` is its start.
    truncated: bool,
}

/// Reads a GET body into memory for `--json`, up to `--max-body` bytes; a longer body is cut
/// there (a warning says so) rather than refused: the head and the start are still worth
/// having, and `body_truncated` marks it for a script.
fn collect_body(
    response: &mut Response,
    args: &HeadArgs,
    url: &Url,
    method: Method,
    limits: Limits,
) -> Result<Body> {
    let cap = args.max_body;
    let mut body = Body::default();
    read_body(response, args, method, limits, &mut |data| {
        let room = cap - body.bytes.len();
        body.bytes.extend_from_slice(&data[..data.len().min(room)]);
        body.truncated = data.len() > room;
        Ok(!body.truncated)
    })?;
    if body.truncated {
        crate::log::warn(format_args!(
            "head {url}: the body is longer than --max-body {cap} bytes: the JSON has its start \
             (\"body_truncated\": true)"
        ));
    }
    Ok(body)
}

/// The JSON fields of a body: UTF-8 text as a string, anything else in base64 (RFC 4648).
/// A truncated body cut inside a UTF-8 character loses that character's start rather than
/// turn the whole body to base64.
fn body_fields(body: &Body) -> (String, &'static str) {
    let text = match std::str::from_utf8(&body.bytes) {
        Ok(text) => Some(text),
        Err(e) if body.truncated && e.error_len().is_none() => {
            std::str::from_utf8(&body.bytes[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    match text {
        Some(text) => (text.to_string(), "utf-8"),
        None => (crate::wire::smtp::base64(&body.bytes), "base64"),
    }
}

/// Streams the final body to stdout, or to the `-o` file.
fn save_body(
    response: &mut Response,
    args: &HeadArgs,
    url: &Url,
    method: Method,
    limits: Limits,
) -> Result<()> {
    let Some(path) = &args.output else {
        let mut out = io::stdout().lock();
        read_body(response, args, method, limits, &mut |data| {
            out.write_all(data).map_err(stdout_error)?;
            Ok(true)
        })?;
        return out.flush().map_err(stdout_error);
    };
    let shown = path.display();
    let file = std::fs::File::create(path).with_context(|| format!("create {shown} (-o)"))?;
    let mut out = io::BufWriter::new(file);
    let mut written = 0u64;
    let read = read_body(response, args, method, limits, &mut |data| {
        out.write_all(data)
            .with_context(|| format!("write {shown} (-o)"))?;
        written += data.len() as u64;
        Ok(true)
    });
    let flushed = out
        .into_inner()
        .map(drop)
        .map_err(|e| e.into_error())
        .with_context(|| format!("write {shown} (-o)"));
    match (read, flushed) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), _) | (Ok(()), Err(e)) => Err(e.context(format!(
            "head {url}: {shown} holds only the first {written} bytes of the body"
        ))),
    }
}

fn print_head(
    args: &HeadArgs,
    url: &Url,
    response: &Response,
    body: Option<&Body>,
    heads_file: &mut Option<std::fs::File>,
) -> Result<()> {
    if let (Some(file), false) = (heads_file.as_mut(), args.json) {
        let path = args.dump_header.as_deref().unwrap_or_default();
        return file
            .write_all(&response.raw_head)
            .with_context(|| format!("write {path} (-D)"));
    }
    let mut out = io::stdout().lock();
    let written = if args.json {
        let head = &response.head;
        let t = response.timing;
        let mut object = serde_json::json!({
            "url": url.to_string(),
            "version": head.version,
            "status": head.status,
            "reason": head.reason,
            "headers": head.headers.iter().map(|(n, v)| [n, v]).collect::<Vec<_>>(),
            "timing": {
                "resolve_ms": ms(t.resolve),
                "connect_ms": ms(t.connect),
                "tls_ms": t.tls.map(ms),
                "first_byte_ms": ms(t.first_byte),
                "total_ms": ms(response.started.elapsed()),
            },
        });
        if let Some(body) = body {
            let (text, encoding) = body_fields(body);
            object["body"] = text.into();
            object["body_encoding"] = encoding.into();
            object["body_truncated"] = body.truncated.into();
        }
        writeln!(out, "{object}")
    } else {
        out.write_all(&response.raw_head)
    };
    written.and_then(|()| out.flush()).map_err(stdout_error)
}

/// What receives the body, piece by piece: `Ok(false)` stops reading (enough was kept).
type BodySink<'a> = dyn FnMut(&[u8]) -> Result<bool> + 'a;

/// Past this many decoded bytes, a body that grew to more than [`BOMB_RATIO`] times its
/// encoded size is refused as a decompression bomb (gzip's own ceiling is about 1032:1; real
/// text compresses 3-20:1).
const BOMB_FLOOR: u64 = 16 << 20;

/// See [`BOMB_FLOOR`].
const BOMB_RATIO: u64 = 1000;

/// The decoded side of `--compressed`: counts what the decoder writes, refuses a bomb, and
/// hands the rest to the body's sink.
struct Decoded<'a, 'b> {
    sink: &'a mut BodySink<'b>,
    encoded: u64,
    decoded: u64,
    /// The sink has enough (`--max-body`): what follows is dropped.
    enough: bool,
    /// Why the last write failed (an io::Error cannot carry the sink's own error).
    failure: Option<anyhow::Error>,
}

impl Write for Decoded<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.decoded += buf.len() as u64;
        if self.decoded > BOMB_FLOOR && self.decoded > self.encoded.saturating_mul(BOMB_RATIO) {
            self.failure = Some(anyhow!(
                "refused as a decompression bomb: {} bytes decoded from {} (more than {BOMB_RATIO} \
                 times its size past {} MiB)",
                self.decoded,
                self.encoded,
                BOMB_FLOOR >> 20
            ));
            return Err(io::Error::other("decompression bomb"));
        }
        if !self.enough {
            match (self.sink)(buf) {
                Ok(more) => self.enough = !more,
                Err(e) => {
                    self.failure = Some(e);
                    return Err(io::Error::other("the body's destination failed"));
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A decoder of one content coding, writing into [`Decoded`].
enum Decoder<'a, 'b> {
    Gzip(Box<flate2::write::GzDecoder<Decoded<'a, 'b>>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Decoded<'a, 'b>>>),
}

impl<'a, 'b> Decoder<'a, 'b> {
    fn output(&mut self) -> &mut Decoded<'a, 'b> {
        match self {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Brotli(d) => d.get_mut(),
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Decoder::Gzip(d) => d.write_all(data),
            Decoder::Brotli(d) => d.write_all(data),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        match self {
            Decoder::Gzip(d) => d.try_finish(),
            Decoder::Brotli(d) => d.close(),
        }
    }
}

/// Reads the body of a response into `sink`, decoded when `--compressed` asked for a coding
/// the server used.
fn read_body(
    response: &mut Response,
    args: &HeadArgs,
    method: Method,
    limits: Limits,
    sink: &mut BodySink<'_>,
) -> Result<()> {
    let coding = match args.compressed {
        true => response
            .head
            .header("content-encoding")
            .map(|c| c.trim().to_ascii_lowercase()),
        false => None,
    };
    let output = Decoded {
        sink,
        encoded: 0,
        decoded: 0,
        enough: false,
        failure: None,
    };
    let mut decoder = match coding.as_deref() {
        None | Some("" | "identity") => {
            return read_raw_body(response, args, method, limits, output.sink)
        }
        Some("gzip" | "x-gzip") => Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(output))),
        Some("br") => Decoder::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
            output,
            64 * 1024,
        ))),
        Some(other) => {
            return Err(anyhow!(
                "the body's Content-Encoding is \"{}\", which nk does not decode (--compressed \
                 asks for gzip or br)",
                other.escape_debug()
            ))
        }
    };
    let coding = coding.unwrap_or_default();
    let why = |decoder: &mut Decoder<'_, '_>, e: io::Error| -> anyhow::Error {
        decoder
            .output()
            .failure
            .take()
            .unwrap_or_else(|| anyhow!("the {coding} body does not decode: {e}"))
    };
    read_raw_body(response, args, method, limits, &mut |data| {
        // In small pieces, so that the ratio is checked as the body comes, not per read.
        for piece in data.chunks(4096) {
            decoder.output().encoded += piece.len() as u64;
            decoder.write(piece).map_err(|e| why(&mut decoder, e))?;
        }
        Ok(!decoder.output().enough)
    })?;
    if !decoder.output().enough {
        decoder.finish().map_err(|e| why(&mut decoder, e))?;
    }
    Ok(())
}

/// Reads the DATA of an HTTP/2 response into `sink` (trailers shown with -v).
fn read_h2_body(
    response: &mut Response,
    timeout: Duration,
    limits: Limits,
    sink: &mut BodySink<'_>,
) -> Result<()> {
    let mut queued = response
        .h2
        .as_mut()
        .map(|s| std::mem::take(&mut s.queued))
        .unwrap_or_default();
    while !response.h2.as_ref().is_some_and(|s| s.ended) {
        let events = match queued.is_empty() {
            true => h2_events(response, limits.deadline(timeout), timeout, limits)?,
            false => std::mem::take(&mut queued),
        };
        for event in events {
            match event {
                h2::Event::Data(data) => {
                    response.body_bytes += data.len() as u64;
                    if !sink(&data)? {
                        return Ok(());
                    }
                }
                h2::Event::Trailers(fields) => {
                    for (name, value) in fields {
                        show_lines(" (trailer)", format!("{name}: {value}").as_bytes());
                    }
                }
                h2::Event::End => {
                    if let Some(state) = response.h2.as_mut() {
                        state.ended = true;
                    }
                }
                h2::Event::Head(_) | h2::Event::Send(_) => {}
            }
        }
    }
    Ok(())
}

/// Reads the body of a response, as its framing says, into `sink`.
fn read_raw_body(
    response: &mut Response,
    args: &HeadArgs,
    method: Method,
    limits: Limits,
    sink: &mut BodySink<'_>,
) -> Result<()> {
    let timeout = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if response.h2.is_some() {
        return read_h2_body(response, timeout, limits, sink);
    }
    let framing = http::framing(method, &response.head).map_err(|e| anyhow!("{e}"))?;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut pending = std::mem::take(&mut response.leftover);
    let stream = &mut response.stream;
    let body_bytes = &mut response.body_bytes;
    // Counted as the sink gets it: body bytes, without chunk framing.
    let mut sink = |data: &[u8]| {
        *body_bytes += data.len() as u64;
        sink(data)
    };
    let mut read_more = |pending: &mut Vec<u8>| -> Result<usize> {
        let n = read_before(&*stream, limits.deadline(timeout), |mut s| {
            s.read(&mut chunk)
        })
        .context("read the body")?
        .ok_or_else(|| limits.silence(timeout, "the body stalled: nothing for"))?;
        pending.extend_from_slice(&chunk[..n]);
        Ok(n)
    };
    match framing {
        Framing::None => Ok(()),
        Framing::UntilClose => loop {
            if !sink(&pending)? {
                return Ok(());
            }
            pending.clear();
            if read_more(&mut pending)? == 0 {
                return Ok(());
            }
        },
        Framing::Length(total) => {
            let mut left = total;
            loop {
                let take = (left.min(pending.len() as u64)) as usize;
                if !sink(&pending[..take])? {
                    return Ok(());
                }
                pending.clear();
                left -= take as u64;
                if left == 0 {
                    return Ok(());
                }
                if read_more(&mut pending)? == 0 {
                    return Err(anyhow!(
                        "the server closed the connection after {} of {total} body bytes",
                        total - left
                    ));
                }
            }
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::default();
            loop {
                match decoder
                    .step(&pending)
                    .map_err(|e| anyhow!("chunked body: {e}"))?
                {
                    Chunk::NeedMore => {
                        if read_more(&mut pending)? == 0 {
                            return Err(anyhow!(
                                "the server closed the connection in the middle of a chunked body"
                            ));
                        }
                    }
                    Chunk::Data { start, end } => {
                        if !sink(&pending[start..end])? {
                            return Ok(());
                        }
                        pending.drain(..end);
                    }
                    Chunk::Framing(n) => {
                        if decoder.in_trailers() {
                            show_lines(" (trailer)", &pending[..n]);
                        }
                        pending.drain(..n);
                    }
                    Chunk::Done(_) => return Ok(()),
                }
            }
        }
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.head.status)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_keep_microseconds() {
        assert_eq!(ms(Duration::from_micros(1234)), 1.234);
    }
}
