//! `nk dial -z HOST PORTS`: resolve, scan every address, print open ports in port order; with
//! `-u`, UDP probes and the states UDP can tell (net::udpscan).

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use crate::cmd::dial::DialArgs;
use crate::exit::{usage, StdoutClosed};
use crate::info;
use crate::net::addr::{self, Host, Target};
use crate::net::deadline::{format_duration, Deadline};
use crate::net::scan::{self, PortState, Scan, ScanOptions, DEFAULT_PARALLEL};
use crate::net::service_names::{self, Proto};
use crate::net::udpscan::{self, UdpScanOptions, UdpState};

/// How long a port may take to answer when `-w` is not given.
const DEFAULT_PORT_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs the scan mode of `nk dial`.
pub fn run(args: &DialArgs) -> Result<()> {
    if args.source_port.is_some() {
        return Err(usage(
            "-p cannot be used with -z: every probe needs its own source port",
        ));
    }
    if args.exec.exec.is_some() || args.exec.shell.is_some() {
        return Err(usage("-e/-c cannot be used with -z: a scan sends no data"));
    }
    let proto = if args.udp { Proto::Udp } else { Proto::Tcp };
    let (host_text, spec) = split_target(&args.target, args.port.as_deref())?;
    let host = addr::parse_host(host_text)?;
    let ports = scan::parse_ports(spec, proto)?;
    let limit = scan::parallel_limit();
    let parallel = args
        .parallel
        .map_or(DEFAULT_PARALLEL, |n| n as usize)
        .min(limit);
    let opts = ScanOptions {
        parallel,
        timeout: args.connect_timeout.unwrap_or(DEFAULT_PORT_TIMEOUT),
        source: args.source_addr,
    };
    let family = args.family.family();
    let addrs = addresses(&host, family, opts.source)?;
    let mut out = Output {
        out: io::stdout().lock(),
        json: args.json,
        error: None,
    };
    let mut any_open = false;
    for addr in addrs {
        let started = Instant::now();
        let host_text = scan::host_text(addr);
        let counts = if args.udp {
            let udp_opts = UdpScanOptions {
                parallel: opts.parallel,
                timeout: opts.timeout,
                source: opts.source,
                rate: args.rate.unwrap_or(udpscan::DEFAULT_RATE),
            };
            scan_udp(addr, &ports, &udp_opts, &host_text, &mut out)?
        } else {
            scan_tcp(addr, &ports, &opts, &host_text, &mut out)?
        };
        if let Some(err) = out.error.take() {
            if err.kind() == io::ErrorKind::BrokenPipe {
                return Err(StdoutClosed.into());
            }
            return Err(err).context("write stdout");
        }
        any_open |= counts.reported > 0;
        let plural = if ports.len() == 1 { "" } else { "s" };
        info!(
            "scanned {} port{plural} on {host_text} in {}: {}",
            ports.len(),
            format_duration(started.elapsed()),
            counts.text
        );
    }
    if any_open {
        Ok(())
    } else if args.udp {
        Err(anyhow!(
            "no open or open|filtered port among {} scanned",
            ports.len()
        ))
    } else {
        Err(anyhow!("no open port among {} scanned", ports.len()))
    }
}

/// Where the lines go: stdout, as text or JSON; the first write error stops the printing
/// and is reported once the scan of the address is over.
struct Output<W: Write> {
    out: W,
    json: bool,
    error: Option<io::Error>,
}

impl<W: Write> Output<W> {
    /// `HOST PORT/PROTO STATE [SERVICE]`, or its JSON object.
    fn port(&mut self, host: &str, port: u16, proto: Proto, state: &str) {
        if self.error.is_some() {
            return;
        }
        let service = service_names::system().name(port, proto);
        let proto_name = proto.as_str();
        let line = if self.json {
            serde_json::json!({
                "host": host, "port": port, "proto": proto_name,
                "state": state, "service": service,
            })
            .to_string()
        } else {
            match service {
                Some(name) => format!("{host} {port}/{proto_name} {state} {name}"),
                None => format!("{host} {port}/{proto_name} {state}"),
            }
        };
        if let Err(err) = writeln!(self.out, "{line}").and_then(|()| self.out.flush()) {
            self.error = Some(err);
        }
    }
}

/// What one address's scan found: how many lines it printed, and the `-v` summary's counts.
struct Counts {
    reported: u64,
    text: String,
}

fn failures_text(failed: u64) -> String {
    if failed > 0 {
        format!(", {failed} failed (-vv shows why)")
    } else {
        String::new()
    }
}

fn scan_tcp<W: Write>(
    addr: SocketAddr,
    ports: &[u16],
    opts: &ScanOptions,
    host_text: &str,
    out: &mut Output<W>,
) -> Result<Counts> {
    let (mut open, mut closed, mut timed_out, mut failed) = (0u64, 0u64, 0u64, 0u64);
    Scan::new(addr, ports.to_vec()).run(opts, |port, state| match state {
        PortState::Open => {
            open += 1;
            out.port(host_text, port, Proto::Tcp, "open");
        }
        PortState::Closed => closed += 1,
        PortState::TimedOut => timed_out += 1,
        PortState::Failed(reason) => {
            failed += 1;
            crate::debug!("{host_text} {port}/tcp: {reason}");
        }
    })?;
    Ok(Counts {
        reported: open,
        text: format!(
            "{open} open, {closed} closed, {timed_out} timed out{}",
            failures_text(failed)
        ),
    })
}

/// A UDP scan prints open and open|filtered ports, as nmap does: most UDP services ignore an
/// empty probe, so silence is the usual answer of an open port too (and nc -zu reports every
/// port that did not refuse). The state word tells the two apart.
fn scan_udp<W: Write>(
    addr: SocketAddr,
    ports: &[u16],
    opts: &UdpScanOptions,
    host_text: &str,
    out: &mut Output<W>,
) -> Result<Counts> {
    let (mut open, mut silent, mut closed, mut failed) = (0u64, 0u64, 0u64, 0u64);
    let rate = udpscan::scan(addr, ports, opts, |port, state| match state {
        UdpState::Open | UdpState::OpenFiltered => {
            if *state == UdpState::Open {
                open += 1;
            } else {
                silent += 1;
            }
            out.port(host_text, port, Proto::Udp, state.as_str());
        }
        UdpState::Closed => closed += 1,
        UdpState::Failed(reason) => {
            failed += 1;
            crate::debug!("{host_text} {port}/udp: {reason}");
        }
    })?;
    let slowed = if rate < opts.rate {
        format!(" (the target dropped ICMP errors: slowed to {rate} probes/s)")
    } else {
        String::new()
    };
    Ok(Counts {
        reported: open + silent,
        text: format!(
            "{open} open, {silent} open|filtered, {closed} closed{}{slowed}",
            failures_text(failed)
        ),
    })
}

/// `HOST PORTS`, or `HOST:PORTS` / `[V6]:PORTS` as one argument.
fn split_target<'a>(first: &'a str, second: Option<&'a str>) -> Result<(&'a str, &'a str)> {
    if let Some(spec) = second {
        return Ok((first.trim_start_matches('[').trim_end_matches(']'), spec));
    }
    if let Some(rest) = first.strip_prefix('[') {
        if let Some((host, spec)) = rest.split_once("]:") {
            return Ok((host, spec));
        }
    } else if first.matches(':').count() == 1 {
        if let Some((host, spec)) = first.split_once(':') {
            return Ok((host, spec));
        }
    }
    Err(usage(format!(
        "missing ports to scan in \"{first}\": write HOST PORTS, e.g. {first} 1-1024"
    )))
}

/// Every address of the host allowed by -4/-6 (and matching -s's family), resolver order.
/// Socket addresses (port ignored), so a link-local address keeps the scope typed with it.
fn addresses(host: &Host, family: addr::Family, source: Option<IpAddr>) -> Result<Vec<SocketAddr>> {
    let target = Target {
        host: host.clone(),
        port: 1,
    };
    let mut ips: Vec<SocketAddr> = Vec::new();
    for addr in addr::resolve(
        &target,
        family,
        Deadline::after(Some(Duration::from_secs(10))),
    )? {
        if !ips.contains(&addr) && source.is_none_or(|s| s.is_ipv4() == addr.is_ipv4()) {
            ips.push(addr);
        }
    }
    if ips.is_empty() {
        return Err(anyhow!("scan {host}: no address of the family of -s"));
    }
    Ok(ips)
}
