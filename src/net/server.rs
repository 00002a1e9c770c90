//! Listening sockets: binding every listener form of cli.md, and accepting under a deadline.
//!
//! A listener with no host serves IPv6 and IPv4 both, through one dual-stack socket
//! (`[::]` with IPV6_V6ONLY off), falling back to `0.0.0.0` where IPv6 is disabled.
//! SO_REUSEADDR is always set, so a restarted listener does not wait out TIME_WAIT.
//! Accepting goes through poll(2) so that `-w` can bound the wait for a client.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use anyhow::{anyhow, Context, Result};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::net::addr::{self, display_addr, Family, ListenSpec, Target};
use crate::net::deadline::Deadline;
use crate::net::sockopt::SockOpts;

/// Backlog of pending connections: generous, so a burst of clients is queued, not dropped.
const BACKLOG: i32 = 1024;

/// Binds a TCP listener for `spec` under the family restriction and socket options.
pub fn bind_tcp(spec: &ListenSpec, family: Family, sockopts: &SockOpts) -> Result<TcpListener> {
    let mut opts = sockopts.clone();
    opts.reuseaddr = true;
    let addr = match &spec.host {
        Some(host) => {
            let target = Target {
                host: host.clone(),
                port: spec.port,
            };
            let addrs = addr::resolve(&target, family, Deadline::NEVER)?;
            addrs
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("resolve {host}: no address"))?
        }
        None => {
            if family != Family::V4 {
                match bind_one(
                    SocketAddr::new(addr::unspecified(true), spec.port),
                    family == Family::V6,
                    &opts,
                ) {
                    Ok(listener) => return Ok(listener),
                    Err(err) if family == Family::Any && ipv6_unavailable(&err) => {}
                    Err(err) => return Err(err),
                }
            }
            SocketAddr::new(addr::unspecified(false), spec.port)
        }
    };
    bind_one(addr, true, &opts)
}

fn ipv6_unavailable(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| {
            matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
            )
        })
}

fn bind_one(addr: SocketAddr, v6_only: bool, opts: &SockOpts) -> Result<TcpListener> {
    let context = || format!("listen on {}", display_addr(addr));
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .with_context(context)?;
    if addr.is_ipv6() {
        socket.set_only_v6(v6_only).with_context(context)?;
    }
    opts.apply(&socket, addr.is_ipv6()).with_context(context)?;
    socket.bind(&SockAddr::from(addr)).with_context(context)?;
    socket.listen(BACKLOG).with_context(context)?;
    Ok(socket.into())
}

/// Waits for one client until the deadline; retries the transient errors a single accept can
/// meet (a client that reset before we took it, a signal).
pub fn accept_one(listener: &TcpListener, deadline: Deadline) -> Result<(TcpStream, SocketAddr)> {
    let local = listener.local_addr().context("getsockname")?;
    loop {
        let mut pollfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, deadline.poll_timeout_ms()) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err).context("poll listener");
        }
        if ready == 0 {
            if deadline.expired() {
                return Err(anyhow!(
                    "accept on {}: timed out waiting for a client",
                    display_addr(local)
                ));
            }
            continue;
        }
        match listener.accept() {
            Ok(pair) => return Ok(pair),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => return Err(e).with_context(|| format!("accept on {}", display_addr(local))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn no_host_listens_on_both_families() {
        let listener = bind_tcp(
            &ListenSpec {
                host: None,
                port: 0,
            },
            Family::Any,
            &SockOpts::default(),
        )
        .unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(port > 0);
        TcpStream::connect(("127.0.0.1", port)).unwrap();
        TcpStream::connect(("::1", port)).unwrap();
    }

    #[test]
    fn accept_gives_up_at_the_deadline() {
        let spec = ListenSpec {
            host: Some(addr::Host::Ip("127.0.0.1".parse().unwrap())),
            port: 0,
        };
        let listener = bind_tcp(&spec, Family::Any, &SockOpts::default()).unwrap();
        let err =
            accept_one(&listener, Deadline::after(Some(Duration::from_millis(50)))).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
    }
}
