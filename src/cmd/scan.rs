//! `nk dial -z HOST PORTS`: resolve, scan every address, print open ports in port order.

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
use crate::net::services::{self, Proto};

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
    let (host_text, spec) = split_target(&args.target, args.port.as_deref())?;
    let host = addr::parse_host(host_text)?;
    let ports = scan::parse_ports(spec, Proto::Tcp)?;
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
    let mut out = io::stdout().lock();
    let mut any_open = false;
    for addr in addrs {
        let started = Instant::now();
        let (mut open, mut closed, mut timed_out, mut failed) = (0u64, 0u64, 0u64, 0u64);
        let mut write_error: Option<io::Error> = None;
        let host_text = scan::host_text(addr);
        Scan::new(addr, ports.clone()).run(&opts, |port, state| match state {
            PortState::Open => {
                open += 1;
                if write_error.is_none() {
                    let service = services::system().name(port, Proto::Tcp);
                    let line = if args.json {
                        serde_json::json!({
                            "host": host_text, "port": port, "proto": "tcp",
                            "state": "open", "service": service,
                        })
                        .to_string()
                    } else {
                        match service {
                            Some(name) => format!("{host_text} {port}/tcp open {name}"),
                            None => format!("{host_text} {port}/tcp open"),
                        }
                    };
                    if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                        write_error = Some(err);
                    }
                }
            }
            PortState::Closed => closed += 1,
            PortState::TimedOut => timed_out += 1,
            PortState::Failed(reason) => {
                failed += 1;
                crate::debug!("{host_text} {port}/tcp: {reason}");
            }
        })?;
        if let Some(err) = write_error {
            if err.kind() == io::ErrorKind::BrokenPipe {
                return Err(StdoutClosed.into());
            }
            return Err(err).context("write stdout");
        }
        any_open |= open > 0;
        let failures = if failed > 0 {
            format!(", {failed} failed (-vv shows why)")
        } else {
            String::new()
        };
        let plural = if ports.len() == 1 { "" } else { "s" };
        info!(
            "scanned {} port{plural} on {host_text} in {}: {open} open, {closed} closed, {timed_out} timed out{failures}",
            ports.len(),
            format_duration(started.elapsed())
        );
    }
    if any_open {
        Ok(())
    } else {
        Err(anyhow!("no open port among {} scanned", ports.len()))
    }
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
