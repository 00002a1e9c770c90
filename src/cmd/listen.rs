//! `nk listen`: the netcat server, one connection. Bind (dual-stack when no host is given),
//! report the real port with `-v`, accept one client, and relay it exactly as `nk dial` does.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use socket2::SockRef;

use crate::cli::{FamilyArgs, RelayArgs, SockArgs};
use crate::cmd::relay_stdio;
use crate::exit::{usage, UsageError};
use crate::info;
use crate::net::addr::{self, display_addr, ListenSpec};
use crate::net::deadline::{parse_duration, Deadline};
use crate::net::server::{accept_one, bind_tcp};
use crate::net::services::Proto;

/// Accept one TCP connection and relay it with stdin/stdout.
#[derive(Debug, Args)]
#[command(
    long_about = "Listen on a TCP port, accept one connection, relay it with stdin/stdout \
        exactly as `nk dial` does (half-close at stdin EOF, exit when the client closes), \
        then exit. Further clients are refused once the first is accepted.\n\n\
        With no host, nk listens on IPv6 and IPv4 both. Port 0 lets the kernel choose; -v \
        prints `listening on ADDR:PORT (tcp)` with the real port on stderr. SO_REUSEADDR is \
        always set.",
    after_long_help = "Examples:\n  \
        nk listen 8080 > upload.bin               # receive one upload on any address\n  \
        nk listen -v 127.0.0.1:0                  # the kernel picks the port; -v tells it\n  \
        nk listen -l -p 1234                      # netcat spelling: -p is the port here\n  \
        nk listen -w 30 -q 1 [::1]:9000 < reply.txt"
)]
pub struct ListenArgs {
    /// PORT, :PORT, HOST:PORT, [V6]:PORT, or HOST followed by PORT (0 = any free port).
    #[arg(value_name = "[HOST:]PORT")]
    pub address: Option<String>,
    /// The port, when the host is given as its own argument.
    #[arg(value_name = "PORT")]
    pub port: Option<String>,

    /// The port to listen on (netcat's `nc -l -p PORT`).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port_flag: Option<String>,
    /// The local address to listen on (netcat's `nc -l -s ADDR`).
    #[arg(short = 's', long = "source", value_name = "ADDR")]
    pub host_flag: Option<String>,
    /// Accepted for netcat habits (`nk listen -l`); listening is what this command does.
    #[arg(short = 'l', hide = true)]
    pub listen_flag: bool,
    #[command(flatten)]
    pub family: FamilyArgs,
    /// Give up when no client has connected within DUR (exit 1).
    #[arg(short = 'w', long = "accept-timeout", value_name = "DUR", value_parser = parse_duration)]
    pub accept_timeout: Option<Duration>,
    /// Set SO_REUSEPORT, so several listeners can share the port.
    #[arg(long)]
    pub reuseport: bool,

    #[command(flatten)]
    pub relay: RelayArgs,
    #[command(flatten)]
    pub sock: SockArgs,
}

impl ListenArgs {
    /// The listening address from the positional forms, `-p` and `-s`.
    fn spec(&self) -> Result<ListenSpec> {
        let positional = match (&self.address, &self.port) {
            (Some(first), second) => {
                Some(addr::parse_listen(first, second.as_deref(), Proto::Tcp)?)
            }
            (None, _) => None,
        };
        let mut spec = match (positional, &self.port_flag) {
            (Some(_), Some(_)) if self.port.is_some() || self.host_flag.is_some() => {
                return Err(usage("the port is given twice: as an argument and with -p"))
            }
            // `nk listen HOST -p PORT`: the positional is the host.
            (Some(_), Some(port)) => {
                let host = self.address.as_deref().unwrap_or_default();
                addr::parse_listen(host, Some(port), Proto::Tcp)?
            }
            (Some(spec), None) => spec,
            (None, Some(port)) => ListenSpec {
                host: None,
                port: addr::parse_port(port, Proto::Tcp, true)?,
            },
            (None, None) => {
                return Err(anyhow::Error::new(
                    UsageError::new("missing port to listen on")
                        .with_hint("nk listen PORT, nk listen HOST:PORT, or nk listen -p PORT"),
                ))
            }
        };
        if let Some(host) = &self.host_flag {
            if spec.host.is_some() {
                return Err(usage(
                    "the listening host is given twice: in the address and with -s",
                ));
            }
            spec.host = Some(addr::parse_host(host)?);
        }
        Ok(spec)
    }
}

/// Runs `nk listen`.
pub fn run(args: ListenArgs) -> Result<()> {
    let spec = args.spec()?;
    args.relay.options()?;
    let mut sockopts = args.sock.options();
    sockopts.reuseport = args.reuseport;
    let listener = bind_tcp(&spec, args.family.family(), &sockopts)?;
    let local = listener.local_addr().context("getsockname")?;
    info!("listening on {} (tcp)", display_addr(local));
    let (stream, peer) = accept_one(&listener, Deadline::after(args.accept_timeout))?;
    // One connection only: later clients are refused rather than left queued.
    drop(listener);
    let peer_text = display_addr(peer);
    info!("connection from {peer_text}");
    let accepted = SockRef::from(&stream);
    let mut per_connection = sockopts.clone();
    // Listener-only options were applied at bind time; the rest apply to the connection.
    per_connection.reuseaddr = false;
    per_connection.reuseport = false;
    per_connection
        .apply(&accepted, peer.is_ipv6())
        .with_context(|| format!("configure connection from {peer_text}"))?;
    relay_stdio(stream, &peer_text, &args.relay)
}
