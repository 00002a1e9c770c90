//! `nk echo -c N`: round-trip probes against an echo server, reported like ping.
//!
//! Each probe carries a random run identifier and its sequence number, so a late reply (to
//! an earlier probe, or from an earlier run) is never taken for the current one, and a
//! reply that comes back altered is counted as corrupted, not received. Over TCP the probes
//! share one connection and replies are read as fixed-size records, so a reply that arrives
//! after its probe was given up is recognised and skipped. The statistics are ping's
//! (`cmd::ping::stats`), so the summary reads the same.

use std::io::{self, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::client::{max_datagram, refused_or, rtt_ms, Channel, Config, Peer};
use crate::cmd::ping::stats::{reply_time, Stats};
use crate::cmd::stdout_error;
use crate::exit::{usage, Reported, Status};
use crate::net::deadline::{format_duration, read_before, Deadline};
use crate::signals;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The first bytes of every probe: run identifier (4) and sequence number (4).
const HEADER: usize = 8;

/// What came back for one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Reply(Duration),
    /// A reply with the right sequence number whose bytes differ (1-based position).
    Corrupted(Duration, usize),
    Lost,
}

/// The bytes of probe `seq`: header, then each byte equal to its offset (as ping fills).
fn probe_bytes(run: u32, seq: u32, size: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..size).map(|i| i as u8).collect();
    bytes[..4].copy_from_slice(&run.to_be_bytes());
    bytes[4..8].copy_from_slice(&seq.to_be_bytes());
    bytes
}

/// The sequence number a reply claims, when it is from this run.
fn claimed_seq(run: u32, reply: &[u8]) -> Option<u32> {
    if reply.len() < HEADER || reply[..4] != run.to_be_bytes() {
        return None;
    }
    Some(u32::from_be_bytes([reply[4], reply[5], reply[6], reply[7]]))
}

/// Judges a reply to probe `seq`: `None` when it belongs to another probe or run.
fn judge(run: u32, seq: u32, sent: &[u8], reply: &[u8], rtt: Duration) -> Option<Outcome> {
    if claimed_seq(run, reply) != Some(seq) {
        return None;
    }
    match sent.iter().zip(reply).position(|(a, b)| a != b) {
        Some(at) => Some(Outcome::Corrupted(rtt, at + 1)),
        None if reply.len() != sent.len() => {
            Some(Outcome::Corrupted(rtt, sent.len().min(reply.len()) + 1))
        }
        None => Some(Outcome::Reply(rtt)),
    }
}

/// Reads fixed-size TCP records across probes (a record cut by a timeout is finished later).
#[derive(Debug, Default)]
struct Records {
    partial: Vec<u8>,
}

impl Records {
    /// The next whole record, or `None` when `deadline` passes first.
    fn next(
        &mut self,
        stream: &TcpStream,
        size: usize,
        deadline: Deadline,
    ) -> Result<Option<Vec<u8>>> {
        let mut chunk = vec![0u8; size];
        while self.partial.len() < size {
            let want = size - self.partial.len();
            match read_before(stream, deadline, |mut s| s.read(&mut chunk[..want]))
                .context("read the echo")?
            {
                None => return Ok(None),
                Some(0) => anyhow::bail!("the server closed the connection"),
                Some(n) => self.partial.extend_from_slice(&chunk[..n]),
            }
        }
        Ok(Some(std::mem::take(&mut self.partial)))
    }
}

/// Runs `count` probes of `size` bytes, `interval` apart, and prints the summary.
pub fn run(config: &Config, count: u64, size: usize, interval: Option<Duration>) -> Result<()> {
    run_inner(config, count, size, interval).map_err(|e| config.prefixed(e))
}

fn run_inner(config: &Config, count: u64, size: usize, interval: Option<Duration>) -> Result<()> {
    let interval = interval.unwrap_or(DEFAULT_INTERVAL);
    let channel = Channel::open(config)?;
    let peer = channel.peer();
    if config.udp && size > max_datagram(peer.addr) {
        return Err(usage(format!(
            "-s {size}: one UDP datagram holds at most {} bytes",
            max_datagram(peer.addr)
        )));
    }
    let run: u32 = rand::random();
    let stats = Arc::new(Mutex::new(Stats {
        timing: true,
        ..Stats::default()
    }));
    let started = Instant::now();
    {
        let (stats, config, peer) = (Arc::clone(&stats), config.clone(), peer.clone());
        signals::on_interrupt(move || {
            let stats = stats.lock().unwrap_or_else(|e| e.into_inner());
            let _ = print_summary(&config, &peer, &stats, started.elapsed());
        })?;
    }
    if !config.json {
        writeln!(
            io::stdout().lock(),
            "ECHO {} ({}): {size} bytes per probe.",
            peer.name,
            config.proto()
        )
        .map_err(stdout_error)?;
    }
    let mut records = Records::default();
    for seq in 1..=count {
        let seq32 = seq as u32;
        let probe = probe_bytes(run, seq32, size);
        let sent_at = Instant::now();
        let deadline = Deadline::at(sent_at + config.timeout);
        let outcome = match &channel {
            Channel::Udp(socket, _) => probe_udp(socket, run, seq32, &probe, sent_at, deadline)
                .with_context(|| config.describe(peer))?,
            Channel::Tcp(stream, _) => {
                let mut writer = stream;
                writer
                    .write_all(&probe)
                    .with_context(|| format!("{}: send", config.describe(peer)))?;
                loop {
                    match records.next(stream, size, deadline)? {
                        None => break Outcome::Lost,
                        Some(reply) => {
                            if let Some(outcome) =
                                judge(run, seq32, &probe, &reply, sent_at.elapsed())
                            {
                                break outcome;
                            }
                        }
                    }
                }
            }
        };
        {
            let mut stats = stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.transmitted += 1;
            match outcome {
                Outcome::Reply(rtt) => {
                    stats.received += 1;
                    stats.add_rtt(rtt.as_micros() as i64);
                }
                Outcome::Corrupted(..) => stats.corrupted += 1,
                Outcome::Lost => {}
            }
        }
        print_outcome(config, peer, seq, size, &outcome)?;
        if seq < count {
            std::thread::sleep(interval.saturating_sub(sent_at.elapsed()));
        }
    }
    let stats = stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
    print_summary(config, peer, &stats, started.elapsed())?;
    if stats.received > 0 && stats.corrupted == 0 {
        Ok(())
    } else {
        Err(Reported(Status::Failure).into())
    }
}

/// One UDP probe: sent once, answered by the first datagram that claims its sequence number.
fn probe_udp(
    socket: &UdpSocket,
    run: u32,
    seq: u32,
    probe: &[u8],
    sent_at: Instant,
    deadline: Deadline,
) -> Result<Outcome> {
    socket
        .send(probe)
        .map_err(|e| refused_or(e, "send the probe"))?;
    let mut buf = vec![0u8; probe.len() + 1];
    loop {
        let received = read_before(socket, deadline, |s| s.recv(&mut buf))
            .map_err(|e| refused_or(e, "receive the echo"))?;
        let Some(len) = received else {
            return Ok(Outcome::Lost);
        };
        if let Some(outcome) = judge(run, seq, probe, &buf[..len], sent_at.elapsed()) {
            return Ok(outcome);
        }
    }
}

fn print_outcome(
    config: &Config,
    peer: &Peer,
    seq: u64,
    size: usize,
    outcome: &Outcome,
) -> Result<()> {
    let server = peer.name.as_str();
    let proto = config.proto();
    let line = if config.json {
        let mut object =
            serde_json::json!({ "server": server, "proto": proto, "seq": seq, "bytes": size });
        match outcome {
            Outcome::Reply(rtt) => object["rtt_ms"] = rtt_ms(*rtt).into(),
            Outcome::Corrupted(rtt, at) => {
                object["rtt_ms"] = rtt_ms(*rtt).into();
                object["corrupted_at"] = (*at).into();
            }
            Outcome::Lost => {
                object["error"] =
                    format!("no reply within {}", format_duration(config.timeout)).into()
            }
        }
        object.to_string()
    } else {
        match outcome {
            Outcome::Reply(rtt) => format!(
                "{size} bytes from {server} ({proto}): seq={seq} time={} ms",
                reply_time(rtt.as_micros() as i64)
            ),
            Outcome::Corrupted(rtt, at) => format!(
                "{size} bytes from {server} ({proto}): seq={seq} time={} ms (corrupted: differs at byte {at})",
                reply_time(rtt.as_micros() as i64)
            ),
            Outcome::Lost => format!(
                "no reply from {server} ({proto}): seq={seq} within {}",
                format_duration(config.timeout)
            ),
        }
    };
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

fn print_summary(config: &Config, peer: &Peer, stats: &Stats, elapsed: Duration) -> Result<()> {
    let server = peer.name.as_str();
    let text = if config.json {
        let mut object = serde_json::json!({
            "server": server,
            "proto": config.proto(),
            "sent": stats.transmitted,
            "received": stats.received,
            "corrupted": stats.corrupted,
            "loss_pct": stats.loss_text().parse::<f64>().unwrap_or(0.0),
            "time_ms": elapsed.as_millis() as u64,
        });
        if let Some((min, avg, max, mdev)) = stats.rtt_summary() {
            for (key, micros) in [
                ("min_ms", min),
                ("avg_ms", avg),
                ("max_ms", max),
                ("mdev_ms", mdev),
            ] {
                object[key] = (micros as f64 / 1000.0).into();
            }
        }
        format!("{}\n", serde_json::json!({ "summary": object }))
    } else {
        let mut text = format!(
            "\n--- {server} echo statistics ({}) ---\n{} probes sent, {} received",
            config.proto(),
            stats.transmitted,
            stats.received
        );
        if stats.corrupted > 0 {
            text.push_str(&format!(", +{} corrupted", stats.corrupted));
        }
        text.push_str(&format!(
            ", {}% loss, time {}ms\n",
            stats.loss_text(),
            elapsed.as_millis()
        ));
        if let Some(line) = stats.rtt_line() {
            text.push_str(&line);
            text.push('\n');
        }
        text
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_matched_by_run_and_sequence() {
        let probe = probe_bytes(7, 3, 16);
        let rtt = Duration::from_micros(50);
        assert_eq!(judge(7, 3, &probe, &probe, rtt), Some(Outcome::Reply(rtt)));
        assert_eq!(judge(8, 3, &probe, &probe, rtt), None, "another run");
        assert_eq!(judge(7, 2, &probe, &probe, rtt), None, "another probe");
        let mut altered = probe.clone();
        altered[12] ^= 1;
        assert_eq!(
            judge(7, 3, &probe, &altered, rtt),
            Some(Outcome::Corrupted(rtt, 13))
        );
        assert_eq!(
            judge(7, 3, &probe, &probe[..10], rtt),
            Some(Outcome::Corrupted(rtt, 11))
        );
        assert_eq!(
            judge(7, 3, &probe, &probe[..4], rtt),
            None,
            "too short to claim a probe"
        );
    }

    #[test]
    fn probes_are_filled_like_ping() {
        let probe = probe_bytes(1, 2, 12);
        assert_eq!(probe, [0, 0, 0, 1, 0, 0, 0, 2, 8, 9, 10, 11]);
    }
}
