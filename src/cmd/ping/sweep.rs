//! `nk ping` with many targets: fping's mode. Several HOSTs, a block or range (`-g`), or a
//! file of targets (`--file`) are pinged concurrently through one ICMP socket per address
//! family and one event loop, so a /24 sweep costs one reply wait plus the time to send, not
//! one reply wait per host.
//!
//! Matching: every request gets its own sequence number (one counter across all targets,
//! 65536 slots); a reply counts when its sequence is in flight, it comes from that slot's
//! target, and (on a raw socket, which sees everyone's ICMP) it carries our identifier. A
//! slot is reused only after its request has been answered or timed out, so a late reply can
//! never be taken for a newer request. Every request waits at most `-W` (default 1 s here:
//! iputils' 10 s would make a sweep of dead addresses pointless); the run ends when every
//! request is answered or timed out, or at `-w`.
//!
//! Output is fping's, since that is what its users parse: `HOST is alive` / `HOST is
//! unreachable` (on stdout), `--alive` / `--unreach` for bare lists, `--elapsed` for the
//! round trip, `-c N` reply lines `HOST : [i], 64 bytes, 0.05 ms (0.05 avg, 0% loss)` and
//! per-target summaries on stderr, `--stats` totals on stderr. Where iputils gives a letter
//! another meaning (`-e`, `-s`, `-f`, `-a`, `-i`) the letter keeps it and fping's option is
//! a long one. Exit status as fping: 0 when every target answered, 1 when some did not, 2
//! when a name could not be resolved (the others are still pinged).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

use super::pinger::{timestamp_prefix, write_flushed};
use super::targets;
use super::PingArgs;
use crate::exit::{usage, Reported, Status};
use crate::net::addr::{Family, Host};
use crate::net::deadline::{parse_duration, Deadline};
use crate::net::icmp::{self, EchoSocket, IcmpOptions, IcmpSocket, SocketKind};
use crate::net::poller::{Interest, Poller};
use crate::wire::icmp::{echo_request, Incoming, HEADER_LEN};

/// fping's options that iputils has no letter for (or gives its letter another meaning).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Many targets (fping's mode)")]
pub struct SweepArgs {
    /// Ping every address of a block (HOST is ADDR/PREFIX; network and broadcast addresses
    /// left out) or a range (HOST HOST: START END, both included), as fping -g.
    #[arg(short = 'g', long = "generate", conflicts_with = "file")]
    pub generate: bool,

    /// With -g: allow more than 65536 addresses (a /16); at most 1048576 all the same.
    #[arg(long, requires = "generate")]
    pub force: bool,

    /// Read targets from FILE ('-': stdin), the first word of each line; '#' lines are
    /// comments (fping -f).
    #[arg(long = "file", value_name = "FILE")]
    pub file: Option<String>,

    /// Print only the targets that answered, one per line (fping -a).
    #[arg(long)]
    pub alive: bool,

    /// Print only the targets that did not answer, one per line (fping -u).
    #[arg(long = "unreach", alias = "unreachable")]
    pub unreach: bool,

    /// Show the round trip of each answer: `HOST is alive (0.051 ms)` (fping -e).
    #[arg(long)]
    pub elapsed: bool,

    /// Print totals on stderr at the end: targets alive, unreachable, unknown, requests,
    /// replies, round trips, elapsed time (fping -s).
    #[arg(long)]
    pub stats: bool,

    /// The least time between two requests, to any targets (fping -i; default 1ms). -i is
    /// the time between two requests to one target, as in iputils (fping -p).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub gap: Option<Duration>,
}

impl SweepArgs {
    /// Whether an option of this mode was given (one HOST with none of them is iputils' ping).
    fn any(&self) -> bool {
        self.generate
            || self.file.is_some()
            || self.alive
            || self.unreach
            || self.elapsed
            || self.stats
            || self.gap.is_some()
    }
}

/// Whether the command line asks for the multi-target mode: several HOSTs, or one of its
/// options.
pub fn wanted(args: &PingArgs) -> bool {
    args.targets.len() > 1 || args.sweep.any()
}

/// The options of this mode that are refused with --tcp / --udp, for their error message.
pub fn refuse_with_transport(args: &PingArgs) -> Result<()> {
    if args.sweep.any() || args.targets.len() > 2 {
        return Err(usage(
            "--tcp and --udp probe one HOST:PORT; several targets (-g, --file) are ICMP only",
        ));
    }
    Ok(())
}

/// Default reply wait per request in this mode (iputils' 10 s would stall a sweep).
const DEFAULT_WAIT: Duration = Duration::from_secs(1);
/// Default least time between two requests (fping's is 10 ms).
const DEFAULT_GAP: Duration = Duration::from_millis(1);
/// The largest target file read (a HARD_LIMIT list of long names fits).
const MAX_FILE: u64 = 64 << 20;
/// Messages read from one socket before looking at the clock again (keeps sends on time).
const DRAIN_BATCH: usize = 256;
/// The longest a wait lasts with nothing scheduled.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// One target: as typed (or generated), and the address pinged.
#[derive(Debug, Clone)]
struct Target {
    name: String,
    addr: SocketAddr,
}

/// What happened to one target so far.
#[derive(Debug, Clone, Default)]
struct Tally {
    sent: u64,
    received: u64,
    min_ns: u64,
    max_ns: u64,
    sum_ns: u64,
    /// Its `is alive` / `is unreachable` line (default mode) has been printed.
    decided: bool,
}

impl Tally {
    fn add(&mut self, rtt_ns: u64) {
        self.min_ns = if self.received == 0 {
            rtt_ns
        } else {
            self.min_ns.min(rtt_ns)
        };
        self.max_ns = self.max_ns.max(rtt_ns);
        self.sum_ns += rtt_ns;
        self.received += 1;
    }

    fn avg_ns(&self) -> Option<u64> {
        (self.received > 0).then(|| self.sum_ns / self.received)
    }

    fn loss_percent(&self) -> u64 {
        if self.sent == 0 {
            return 0;
        }
        self.sent.saturating_sub(self.received) * 100 / self.sent
    }
}

/// The figures the summaries print (shared with the signal threads).
#[derive(Debug)]
struct Shared {
    per: Vec<Tally>,
    unknown: usize,
    timeouts: u64,
    other_icmp: u64,
    started: Instant,
    ended: Option<Instant>,
}

/// How to print, and the targets' names (for the signal threads too).
#[derive(Debug, Clone)]
struct View {
    count_mode: bool,
    quiet: bool,
    alive_only: bool,
    unreach_only: bool,
    elapsed: bool,
    stats: bool,
    timestamps: bool,
    json: bool,
    /// The longest name, to align `-c` lines as fping does.
    width: usize,
    targets: Arc<[Target]>,
}

/// Runs the multi-target mode.
pub fn run(args: PingArgs, interval: Duration) -> Result<()> {
    if args.flood {
        return Err(usage("-f (flood) pings one HOST; not with several targets"));
    }
    if let Some(flag) = args.probe.not_for_many_targets() {
        return Err(usage(format!(
            "{flag} applies to one HOST (iputils' mode); not with several targets"
        )));
    }
    if args.broadcast {
        return Err(usage(
            "-b (broadcast) pings one HOST; not with several targets",
        ));
    }
    if let [_, port] = args.targets.as_slice() {
        // `nk ping HOST 80` is far more often a forgotten --tcp than a ping of 0.0.0.80.
        if !args.sweep.generate && port.parse::<u16>().is_ok() {
            return Err(usage(format!(
                "unexpected argument \"{port}\": a PORT is taken only with --tcp or --udp"
            )));
        }
    }
    let family = args.family.family();
    let texts = target_texts(&args)?;
    if texts.is_empty() {
        return Err(usage("no targets to ping (the file lists none)"));
    }
    let mut resolved = Vec::with_capacity(texts.len());
    let mut unknown = 0;
    for text in texts {
        match resolve(&text, family) {
            Ok(addr) => resolved.push(Target { name: text, addr }),
            Err(err) => {
                unknown += 1;
                crate::eprintln_safe!("nk: {err:#}");
            }
        }
    }
    for v6 in [false, true] {
        if let Some(target) = resolved.iter().find(|t| t.addr.is_ipv6() == v6) {
            super::check_size(args.size, target.addr.ip())?;
        }
    }
    let mut sockets: [Option<IcmpSocket>; 2] = [None, None];
    for (slot, v6) in sockets.iter_mut().zip([false, true]) {
        if resolved.iter().any(|t| t.addr.is_ipv6() == v6) {
            let any = crate::net::addr::unspecified(v6);
            *slot = Some(icmp::open(
                any,
                IcmpOptions {
                    ttl: args.ttl,
                    identifier: std::process::id() as u16,
                    broadcast: false,
                    scope_id: 0,
                    tuning: args.probe.sweep_tuning(),
                },
            )?);
        }
    }
    let view = View {
        count_mode: args.count.is_some(),
        quiet: args.quiet,
        alive_only: args.sweep.alive,
        unreach_only: args.sweep.unreach,
        elapsed: args.sweep.elapsed,
        stats: args.sweep.stats,
        timestamps: args.timestamps,
        json: args.json,
        width: resolved
            .iter()
            .map(|t| t.name.chars().count())
            .max()
            .unwrap_or(0),
        targets: resolved.into(),
    };
    let shared = Arc::new(Mutex::new(Shared {
        per: vec![Tally::default(); view.targets.len()],
        unknown,
        timeouts: 0,
        other_icmp: 0,
        started: Instant::now(),
        ended: None,
    }));
    install_signal_reports(&view, &shared)?;
    let timing = Timing {
        count: args.count.unwrap_or(1),
        interval,
        gap: args.sweep.gap.unwrap_or(DEFAULT_GAP),
        wait: args.linger.unwrap_or(DEFAULT_WAIT),
        deadline: args.deadline.filter(|d| !d.is_zero()),
        size: args.size as usize,
    };
    let mut sweep = Sweep::new(sockets, view.clone(), Arc::clone(&shared), timing)?;
    sweep.run()?;
    let (all_alive, unknown) = {
        let mut shared = lock(&shared);
        shared.ended = Some(Instant::now());
        (shared.per.iter().all(|t| t.received > 0), shared.unknown)
    };
    let (out, err) = final_report(&view, &lock(&shared));
    write_flushed(&mut std::io::stdout(), out.as_bytes())?;
    eprint_text(&err);
    if unknown > 0 {
        return Err(Reported(Status::Usage).into());
    }
    if !all_alive {
        return Err(Reported(Status::Failure).into());
    }
    Ok(())
}

/// The targets as typed: HOSTs, or -g's addresses, then the file's.
fn target_texts(args: &PingArgs) -> Result<Vec<String>> {
    if args.sweep.generate {
        let addrs = targets::generate(&args.targets, args.sweep.force).map_err(usage)?;
        return Ok(addrs.iter().map(IpAddr::to_string).collect());
    }
    let mut texts = args.targets.clone();
    if let Some(path) = &args.sweep.file {
        let bytes = read_capped(path)?;
        let listed =
            targets::parse_list(&bytes).map_err(|e| usage(format!("--file {path}: {e}")))?;
        texts.extend(listed);
    }
    if texts.len() > targets::HARD_LIMIT {
        return Err(usage(format!(
            "{} targets; nk pings at most {} in one run",
            texts.len(),
            targets::HARD_LIMIT
        )));
    }
    Ok(texts)
}

/// A target file's bytes (stdin for `-`), at most [`MAX_FILE`] of them.
fn read_capped(path: &str) -> Result<Vec<u8>> {
    let reader: Box<dyn Read> = if path == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| usage(format!("--file {path}: {e}")))?)
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| usage(format!("--file {path}: {e}")))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(usage(format!(
            "--file {path}: larger than {} MiB",
            MAX_FILE >> 20
        )));
    }
    Ok(bytes)
}

/// The address a target text names: a literal (with `%iface` for IPv6), or the first address
/// the resolver gives for a name.
fn resolve(text: &str, family: Family) -> Result<SocketAddr> {
    let (host, scope_id) = super::parse_target(text).with_context(|| format!("resolve {text}"))?;
    let ip = match host {
        Host::Ip(ip) if family.allows(ip) => ip,
        Host::Ip(ip) => anyhow::bail!(
            "{text}: {ip} is not an IPv{} address",
            if family == Family::V4 { 4 } else { 6 }
        ),
        Host::Name(name) => super::resolve_first(&name, family)?.0,
    };
    Ok(match ip {
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, scope_id)),
        IpAddr::V4(_) => SocketAddr::new(ip, 0),
    })
}

/// Writes a summary to stderr; a closed stderr loses it quietly, as every diagnostic.
fn eprint_text(text: &str) {
    if !text.is_empty() {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// SIGINT prints the summaries and exits 130; SIGQUIT prints them on stderr and the run
/// goes on (fping's habit).
fn install_signal_reports(view: &View, shared: &Arc<Mutex<Shared>>) -> Result<()> {
    let (v, s) = (view.clone(), Arc::clone(shared));
    crate::signals::on_interrupt(move || {
        let mut shared = lock(&s);
        shared.ended = Some(Instant::now());
        let (out, err) = final_report(&v, &shared);
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
        eprint_text(&err);
    })?;
    let (v, s) = (view.clone(), Arc::clone(shared));
    let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGQUIT])
    else {
        return Ok(());
    };
    let _ = std::thread::Builder::new()
        .name("sigquit".into())
        .spawn(move || {
            for _ in signals.forever() {
                let (out, err) = final_report(&v, &lock(&s));
                eprint_text(&out);
                eprint_text(&err);
            }
        });
    Ok(())
}

/// fping's rendering of a round trip in ms: three significant digits or so.
fn fping_ms(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else if ms < 1_000_000.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.3e}")
    }
}

fn json_ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

/// What the end of the run prints (and SIGINT, SIGQUIT): for stdout, and for stderr.
fn final_report(view: &View, shared: &Shared) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    if view.count_mode {
        if !view.json && (view.alive_only || view.unreach_only) {
            for (target, tally) in view.targets.iter().zip(&shared.per) {
                let alive = tally.received > 0;
                if (alive && view.alive_only) || (!alive && view.unreach_only) {
                    out.push_str(&format!("{}\n", target.name));
                }
            }
        }
        if !view.json && !view.quiet {
            err.push('\n');
        }
        for (target, tally) in view.targets.iter().zip(&shared.per) {
            if view.json {
                let object = serde_json::json!({
                    "type": "summary",
                    "host": target.name,
                    "address": target.addr.ip().to_string(),
                    "transmitted": tally.sent,
                    "received": tally.received,
                    "loss_percent": tally.loss_percent(),
                    "min_ms": tally.avg_ns().map(|_| json_ms(tally.min_ns)),
                    "avg_ms": tally.avg_ns().map(json_ms),
                    "max_ms": tally.avg_ns().map(|_| json_ms(tally.max_ns)),
                });
                out.push_str(&format!("{object}\n"));
                continue;
            }
            err.push_str(&format!(
                "{:<width$} : xmt/rcv/%loss = {}/{}/{}%",
                target.name,
                tally.sent,
                tally.received,
                tally.loss_percent(),
                width = view.width
            ));
            if let Some(avg) = tally.avg_ns() {
                err.push_str(&format!(
                    ", min/avg/max = {}/{}/{}",
                    fping_ms(tally.min_ns),
                    fping_ms(avg),
                    fping_ms(tally.max_ns)
                ));
            }
            err.push('\n');
        }
    }
    if view.stats {
        let alive = shared.per.iter().filter(|t| t.received > 0).count();
        let sent: u64 = shared.per.iter().map(|t| t.sent).sum();
        let received: u64 = shared.per.iter().map(|t| t.received).sum();
        let sum: u64 = shared.per.iter().map(|t| t.sum_ns).sum();
        let answered = shared.per.iter().filter(|t| t.received > 0);
        let min = answered.clone().map(|t| t.min_ns).min().unwrap_or(0);
        let max = answered.map(|t| t.max_ns).max().unwrap_or(0);
        let avg = sum.checked_div(received).unwrap_or(0);
        let elapsed = shared
            .ended
            .unwrap_or_else(Instant::now)
            .duration_since(shared.started);
        let targets = view.targets.len();
        if view.json {
            let object = serde_json::json!({
                "type": "stats",
                "targets": targets,
                "alive": alive,
                "unreachable": targets - alive,
                "unknown": shared.unknown,
                "timeouts": shared.timeouts,
                "transmitted": sent,
                "received": received,
                "other_icmp": shared.other_icmp,
                "min_ms": (received > 0).then(|| json_ms(min)),
                "avg_ms": (received > 0).then(|| json_ms(avg)),
                "max_ms": (received > 0).then(|| json_ms(max)),
                "elapsed_s": elapsed.as_secs_f64(),
            });
            out.push_str(&format!("{object}\n"));
        } else {
            err.push_str(&format!(
                "\n {targets:7} targets\n {alive:7} alive\n {:7} unreachable\n {:7} unknown \
                 addresses\n\n {:7} timeouts (waiting for response)\n {sent:7} ICMP Echos \
                 sent\n {received:7} ICMP Echo Replies received\n {:7} other ICMP received\n\n \
                 {} ms (min round trip time)\n {} ms (avg round trip time)\n {} ms (max round \
                 trip time)\n {:12.3} sec (elapsed real time)\n\n",
                targets - alive,
                shared.unknown,
                shared.timeouts,
                shared.other_icmp,
                fping_ms(min),
                fping_ms(avg),
                fping_ms(max),
                elapsed.as_secs_f64()
            ));
        }
    }
    (out, err)
}

/// When to send and how long to wait.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Requests per target (`-c`, 1 without it).
    count: u64,
    /// `-i`: between two requests to one target.
    interval: Duration,
    /// `--gap`: between two requests to any targets.
    gap: Duration,
    /// `-W`: how long each request waits for its reply.
    wait: Duration,
    /// `-w`: the whole run.
    deadline: Option<Duration>,
    /// `-s`.
    size: usize,
}

/// A request in flight.
#[derive(Debug, Clone, Copy)]
struct Probe {
    target: u32,
    /// Its number among the target's requests (fping's `[i]`).
    index: u64,
    sent_at: Instant,
    /// Unique per request, so a stale expiry entry never times out a reused slot.
    serial: u64,
}

/// The event loop: sends on schedule, matches replies, times requests out.
struct Sweep {
    sockets: [Option<IcmpSocket>; 2],
    poller: Poller,
    view: View,
    shared: Arc<Mutex<Shared>>,
    timing: Timing,
    /// Requests in flight by sequence number.
    slots: Vec<Option<Probe>>,
    next_seq: u16,
    serial: u64,
    /// (expiry, sequence, serial) in send order, which is expiry order (one `-W` for all).
    expiries: VecDeque<(Instant, u16, u64)>,
    in_flight: usize,
    /// (when due, target) of the requests still to send.
    queue: BinaryHeap<Reverse<(Instant, u32)>>,
    last_send: Option<Instant>,
    /// Send times travel in the payload relative to this (as iputils' do).
    base: Instant,
}

impl Sweep {
    fn new(
        sockets: [Option<IcmpSocket>; 2],
        view: View,
        shared: Arc<Mutex<Shared>>,
        timing: Timing,
    ) -> Result<Sweep> {
        let poller = Poller::new(4).context("create epoll")?;
        for (token, socket) in sockets.iter().enumerate() {
            if let Some(socket) = socket {
                poller
                    .add(socket.as_raw_fd(), Interest::Read, token as u64)
                    .context("watch ICMP socket")?;
            }
        }
        let now = Instant::now();
        let queue = (0..view.targets.len() as u32)
            .map(|t| Reverse((now, t)))
            .collect();
        Ok(Sweep {
            sockets,
            poller,
            view,
            shared,
            timing,
            slots: vec![None; 65_536],
            next_seq: 1,
            serial: 0,
            expiries: VecDeque::new(),
            in_flight: 0,
            queue,
            last_send: None,
            base: now,
        })
    }

    fn run(&mut self) -> Result<()> {
        let started = Instant::now();
        let deadline = self.timing.deadline.map(|d| started + d);
        loop {
            let now = Instant::now();
            self.expire(now)?;
            if deadline.is_some_and(|d| now >= d) || (self.queue.is_empty() && self.in_flight == 0)
            {
                break;
            }
            let mut wake = now + MAX_WAIT;
            if let Some(due) = self.next_send_due() {
                if due <= now {
                    self.send_next(now)?;
                    wake = now;
                } else {
                    wake = wake.min(due);
                }
            }
            if let Some(&(at, _, _)) = self.expiries.front() {
                wake = wake.min(at);
            }
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            let mut ready = [false; 2];
            for event in self
                .poller
                .wait(Deadline::at(wake))
                .context("wait for ICMP")?
            {
                if let Some(flag) = ready.get_mut(event.token as usize) {
                    *flag = true;
                }
            }
            for (family, is_ready) in ready.into_iter().enumerate() {
                if is_ready {
                    self.drain(family)?;
                }
            }
        }
        // A deadline leaves targets undecided: in default mode they did not answer in time.
        if !self.view.count_mode {
            for target in 0..self.view.targets.len() {
                self.decide(target, None)?;
            }
        }
        Ok(())
    }

    /// When the next request may go: its target's time, the gap after the last request, and
    /// (after 65536 requests in flight) the expiry of the request whose sequence it reuses.
    fn next_send_due(&self) -> Option<Instant> {
        let Reverse((due, _)) = *self.queue.peek()?;
        let mut due = due;
        if let Some(last) = self.last_send {
            due = due.max(last + self.timing.gap);
        }
        if let Some(busy) = &self.slots[usize::from(self.next_seq)] {
            due = due.max(busy.sent_at + self.timing.wait);
        }
        Some(due)
    }

    fn send_next(&mut self, now: Instant) -> Result<()> {
        let Some(Reverse((_, target))) = self.queue.pop() else {
            return Ok(());
        };
        let seq = self.next_seq;
        // Sequence 0 is skipped: some stacks treat it specially, and 1 is iputils' first.
        self.next_seq = match seq.wrapping_add(1) {
            0 => 1,
            next => next,
        };
        let addr = self.view.targets[target as usize].addr;
        let family = usize::from(addr.is_ipv6());
        let Some(socket) = self.sockets[family].as_mut() else {
            return Ok(());
        };
        let since_base = self.base.elapsed();
        let packet = echo_request(
            addr.is_ipv6(),
            socket.identifier(),
            seq,
            self.timing.size,
            (since_base.as_secs(), since_base.subsec_nanos()),
        );
        let result = socket.send_to(&packet, addr);
        let index = {
            let mut shared = lock(&self.shared);
            let tally = &mut shared.per[target as usize];
            tally.sent += 1;
            tally.sent - 1
        };
        self.serial += 1;
        self.slots[usize::from(seq)] = Some(Probe {
            target,
            index,
            sent_at: now,
            serial: self.serial,
        });
        self.expiries
            .push_back((now + self.timing.wait, seq, self.serial));
        self.in_flight += 1;
        self.last_send = Some(now);
        if index + 1 < self.timing.count {
            self.queue
                .push(Reverse((now + self.timing.interval, target)));
        }
        if let Err(err) = result {
            // A firewall's refusal (EPERM) comes back as an ICMP error too; anything else
            // (no route) will not be answered: the request times out like a lost one.
            crate::eprintln_safe!(
                "nk: send to {}: {err}",
                self.view.targets[target as usize].name
            );
        }
        Ok(())
    }

    /// Times out the requests whose wait is over.
    fn expire(&mut self, now: Instant) -> Result<()> {
        while let Some(&(at, seq, serial)) = self.expiries.front() {
            if at > now {
                break;
            }
            self.expiries.pop_front();
            let slot = &mut self.slots[usize::from(seq)];
            if slot.is_some_and(|p| p.serial == serial) {
                let Some(probe) = slot.take() else { continue };
                self.in_flight -= 1;
                self.timed_out(probe)?;
            }
        }
        Ok(())
    }

    fn timed_out(&mut self, probe: Probe) -> Result<()> {
        let tally = {
            let mut shared = lock(&self.shared);
            shared.timeouts += 1;
            shared.per[probe.target as usize].clone()
        };
        self.report_probe(probe, &tally, None)
    }

    /// What a request's end prints: in count mode its line (a reply with its size and round
    /// trip, or `timed out`, and the target's figures so far); in default mode the target's
    /// verdict.
    fn report_probe(
        &mut self,
        probe: Probe,
        tally: &Tally,
        reply: Option<(usize, u64)>,
    ) -> Result<()> {
        let target = probe.target as usize;
        if !self.view.count_mode {
            return self.decide(target, reply.map(|(_, rtt_ns)| rtt_ns));
        }
        if self.view.quiet {
            return Ok(());
        }
        let Target { name, addr } = &self.view.targets[target];
        let line = if self.view.json {
            let mut object = serde_json::json!({
                "type": "timeout",
                "host": name,
                "address": addr.ip().to_string(),
                "seq": probe.index,
            });
            if let Some((bytes, rtt_ns)) = reply {
                object["type"] = "reply".into();
                object["bytes"] = bytes.into();
                object["time_ms"] = json_ms(rtt_ns).into();
            }
            format!("{object}\n")
        } else {
            let what = match reply {
                Some((bytes, rtt_ns)) => format!("{bytes} bytes, {} ms", fping_ms(rtt_ns)),
                None => "timed out".to_string(),
            };
            format!(
                "{}{name:<width$} : [{}], {what} ({} avg, {}% loss)\n",
                timestamp_prefix(self.view.timestamps),
                probe.index,
                tally.avg_ns().map_or("NaN".to_string(), fping_ms),
                tally.loss_percent(),
                width = self.view.width
            )
        };
        self.write(&line)
    }

    /// Default mode: prints a target's verdict once (alive with its round trip, or
    /// unreachable with `None`).
    fn decide(&mut self, target: usize, rtt_ns: Option<u64>) -> Result<()> {
        {
            let mut shared = lock(&self.shared);
            if shared.per[target].decided {
                return Ok(());
            }
            shared.per[target].decided = true;
        }
        let alive = rtt_ns.is_some();
        let view = &self.view;
        if view.quiet || (alive && view.unreach_only && !view.alive_only) {
            return Ok(());
        }
        if !alive && view.alive_only && !view.unreach_only {
            return Ok(());
        }
        let Target { name, addr } = &view.targets[target];
        let line = if view.json {
            let object = serde_json::json!({
                "type": "target",
                "host": name,
                "address": addr.ip().to_string(),
                "alive": alive,
                "time_ms": rtt_ns.map(json_ms),
            });
            format!("{object}\n")
        } else if view.alive_only || view.unreach_only {
            format!("{name}\n")
        } else {
            let verdict = if alive { "alive" } else { "unreachable" };
            let elapsed = match rtt_ns {
                Some(ns) if view.elapsed => format!(" ({} ms)", fping_ms(ns)),
                _ => String::new(),
            };
            format!(
                "{}{name} is {verdict}{elapsed}\n",
                timestamp_prefix(view.timestamps)
            )
        };
        self.write(&line)
    }

    /// Reads what one socket has, a batch at most.
    fn drain(&mut self, family: usize) -> Result<()> {
        for _ in 0..DRAIN_BATCH {
            let Some(socket) = self.sockets[family].as_mut() else {
                return Ok(());
            };
            let raw = socket.kind() == SocketKind::Raw;
            let our_id = socket.identifier();
            let Some(message) = socket
                .receive(Deadline::at(Instant::now()))
                .context("receive ICMP")?
            else {
                return Ok(());
            };
            match message.message {
                Incoming::Reply {
                    identifier,
                    sequence,
                    checksum_ok,
                    payload,
                } => {
                    if (raw && identifier != our_id) || !checksum_ok {
                        continue;
                    }
                    self.answered(family, sequence, message.from, HEADER_LEN + payload.len())?;
                }
                Incoming::Error(report) => {
                    if raw && report.identifier != our_id {
                        continue;
                    }
                    self.icmp_error(report.sequence, message.from, &report.text)?;
                }
                Incoming::Other => {}
            }
        }
        Ok(())
    }

    /// An echo reply with our identifier: counted if its sequence is in flight and it comes
    /// from that request's target.
    fn answered(&mut self, family: usize, seq: u16, from: IpAddr, bytes: usize) -> Result<()> {
        let now = Instant::now();
        let slot = &mut self.slots[usize::from(seq)];
        let Some(probe) = *slot else {
            return Ok(());
        };
        let target = probe.target as usize;
        let addr = self.view.targets[target].addr;
        if addr.ip() != from || usize::from(addr.is_ipv6()) != family {
            return Ok(());
        }
        *slot = None;
        self.in_flight -= 1;
        let rtt_ns =
            u64::try_from(now.duration_since(probe.sent_at).as_nanos()).unwrap_or(u64::MAX);
        let tally = {
            let mut shared = lock(&self.shared);
            let tally = &mut shared.per[target];
            tally.add(rtt_ns);
            tally.clone()
        };
        self.report_probe(probe, &tally, Some((bytes, rtt_ns)))
    }

    /// An ICMP error about one of our requests (host unreachable, TTL exceeded): counted and
    /// reported; the request still times out, as in fping.
    fn icmp_error(&mut self, seq: u16, from: IpAddr, text: &str) -> Result<()> {
        let Some(probe) = self.slots[usize::from(seq)] else {
            return Ok(());
        };
        lock(&self.shared).other_icmp += 1;
        if self.view.quiet {
            return Ok(());
        }
        let target = &self.view.targets[probe.target as usize];
        if self.view.json {
            let object = serde_json::json!({
                "type": "error",
                "host": target.name,
                "address": target.addr.ip().to_string(),
                "seq": probe.index,
                "from": from.to_string(),
                "error": text,
            });
            return self.write(&format!("{object}\n"));
        }
        crate::eprintln_safe!("{text} from {from} for ICMP Echo sent to {}", target.name);
        Ok(())
    }

    fn write(&mut self, text: &str) -> Result<()> {
        write_flushed(&mut std::io::stdout(), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_fpings_decimals() {
        assert_eq!(fping_ms(228_000), "0.228");
        assert_eq!(fping_ms(1_234_567), "1.23");
        assert_eq!(fping_ms(12_345_678), "12.3");
        assert_eq!(fping_ms(123_456_789), "123");
        assert_eq!(fping_ms(0), "0.000");
    }

    #[test]
    fn loss_and_average_as_fping_computes_them() {
        let mut tally = Tally {
            sent: 3,
            ..Tally::default()
        };
        assert_eq!(tally.loss_percent(), 100);
        assert_eq!(tally.avg_ns(), None);
        tally.add(100);
        tally.add(300);
        assert_eq!(tally.loss_percent(), 33);
        assert_eq!(tally.avg_ns(), Some(200));
        assert_eq!((tally.min_ns, tally.max_ns), (100, 300));
    }
}
