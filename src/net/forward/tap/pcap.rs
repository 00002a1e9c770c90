//! `nk forward --pcap`: every forwarded connection as one TCP stream in a pcapng file
//! (`wire::pcapng` blocks around `wire::synthetic_tcp` frames), so Wireshark follows each
//! stream and dissects its protocol.
//!
//! A stream is shown between the client's address and the target's, as if the client had
//! connected straight to it: the forwarder's own sockets do not appear. A Unix socket has no
//! address, so one is made up from RFC 2544's benchmarking range, which no real host uses:
//! a Unix client is 198.18.0.1 (2001:db8::1 beside an IPv6 target) with port 1024 + the
//! connection number (modulo 64512, so each connection is its own stream), a Unix target is
//! 198.18.0.2 (2001:db8::2) on the listener's TCP port (so Wireshark picks the dissector it
//! would for the forwarded port), or port 1 when both ends are Unix.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::SystemTime;

use anyhow::Result;

use super::{micros, Side, Sink};
use crate::wire::pcapng;
use crate::wire::synthetic_tcp::{Conversation, MAX_SEGMENT};

/// Snapshot length said in the file: more than any frame written (an Ethernet header and a
/// 64 KiB IP packet), and the size Wireshark itself uses.
const SNAPLEN: u32 = 262_144;
const _: () = assert!(14 + 40 + 28 + MAX_SEGMENT <= SNAPLEN as usize);
const UNIX_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const UNIX_TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const UNIX_CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const UNIX_TARGET_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// A connection being recorded.
#[derive(Debug)]
struct Stream {
    conversation: Conversation,
    /// A RST has been written (the side that reset, or both when the forwarder cut it).
    reset: bool,
}

/// The `--pcap` recording.
#[derive(Debug)]
pub struct Capture {
    sink: Sink,
    streams: HashMap<u64, Stream>,
    /// The blocks of one event, written to the sink in one piece.
    blocks: Vec<u8>,
    /// The listener's TCP port, if it has one.
    pub(super) listen_port: Option<u16>,
}

impl Capture {
    /// Creates FILE and writes its header.
    pub fn create(path: &str) -> Result<Capture> {
        if path == "-" {
            let err = crate::exit::UsageError::new("--pcap needs a file name, not '-'")
                .with_hint("Wireshark and tshark open the file while it grows");
            return Err(err.into());
        }
        let sink = Sink::create("--pcap", path)?;
        let application = format!("nk {} forward", env!("CARGO_PKG_VERSION"));
        sink.write(&pcapng::file_header(
            &application,
            pcapng::LINKTYPE_ETHERNET,
            SNAPLEN,
        ));
        Ok(Capture {
            sink,
            streams: HashMap::new(),
            blocks: Vec::new(),
            listen_port: None,
        })
    }

    pub(super) fn opened(
        &mut self,
        conn: u64,
        client: Option<SocketAddr>,
        target: Option<SocketAddr>,
        at: SystemTime,
    ) {
        let client = client.unwrap_or_else(|| unix_client(conn, target));
        let target = target.unwrap_or_else(|| unix_target(self.listen_port, client));
        let isn = [rand::random::<u32>(), rand::random::<u32>()];
        let mut conversation = Conversation::new(client, target, isn);
        let blocks = &mut self.blocks;
        let stamp = micros(at);
        conversation.handshake(&mut |frame| pcapng::push_packet(blocks, stamp, frame));
        self.streams.insert(
            conn,
            Stream {
                conversation,
                reset: false,
            },
        );
        self.write();
    }

    pub(super) fn data(&mut self, conn: u64, from: Side, chunk: &[u8], at: SystemTime) {
        self.event(conn, at, |c, emit| c.data(from, chunk, emit));
    }

    pub(super) fn fin(&mut self, conn: u64, from: Side, at: SystemTime) {
        self.event(conn, at, |c, emit| c.fin(from, emit));
    }

    pub(super) fn reset(&mut self, conn: u64, from: Side, at: SystemTime) {
        if let Some(stream) = self.streams.get_mut(&conn) {
            stream.reset = true;
        }
        self.event(conn, at, |c, emit| c.reset(from, emit));
    }

    /// The connection is over: a cut the forwarder made itself (no side reset, yet not a
    /// clean end: -i, SIGTERM, an epoll failure) is a RST both ways, as both sockets got.
    pub(super) fn ended(&mut self, conn: u64, clean: bool, at: SystemTime) {
        let cut = self.streams.get(&conn).is_some_and(|s| !s.reset);
        if !clean && cut {
            self.event(conn, at, |c, emit| {
                c.reset(Side::Client, emit);
                c.reset(Side::Target, emit);
            });
        }
        self.streams.remove(&conn);
    }

    pub(super) fn sink(&self) -> &Sink {
        &self.sink
    }

    fn event(
        &mut self,
        conn: u64,
        at: SystemTime,
        tell: impl FnOnce(&mut Conversation, &mut dyn FnMut(&[u8])),
    ) {
        let Some(stream) = self.streams.get_mut(&conn) else {
            return;
        };
        let blocks = &mut self.blocks;
        let stamp = micros(at);
        tell(&mut stream.conversation, &mut |frame| {
            pcapng::push_packet(blocks, stamp, frame)
        });
        self.write();
    }

    /// Hands the event's blocks to the sink whole; the buffer is reused, its size bounded by
    /// one chunk's frames.
    fn write(&mut self) {
        self.sink.write(&self.blocks);
        self.blocks.clear();
    }
}

/// A Unix client's made-up address, in the family of the target's.
fn unix_client(conn: u64, target: Option<SocketAddr>) -> SocketAddr {
    let port = 1024 + ((conn.saturating_sub(1)) % 64512) as u16;
    SocketAddr::new(made_up(target, UNIX_CLIENT, UNIX_CLIENT_V6), port)
}

/// A Unix target's made-up address, in the family of the client's.
fn unix_target(listen_port: Option<u16>, client: SocketAddr) -> SocketAddr {
    let ip = made_up(Some(client), UNIX_TARGET, UNIX_TARGET_V6);
    SocketAddr::new(ip, listen_port.unwrap_or(1))
}

fn made_up(other: Option<SocketAddr>, v4: Ipv4Addr, v6: Ipv6Addr) -> IpAddr {
    match other.map(|a| a.ip().to_canonical()) {
        Some(IpAddr::V6(_)) => IpAddr::V6(v6),
        _ => IpAddr::V4(v4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_ends_get_made_up_addresses_in_the_other_ends_family() {
        let v6: SocketAddr = "[::1]:9000".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(unix_client(1, Some(v4)), "198.18.0.1:1024".parse().unwrap());
        assert_eq!(
            unix_client(64513, Some(v6)),
            "[2001:db8::1]:1024".parse().unwrap()
        );
        assert_eq!(unix_client(2, None), "198.18.0.1:1025".parse().unwrap());
        assert_eq!(
            unix_target(Some(8080), v4),
            "198.18.0.2:8080".parse().unwrap()
        );
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:5000".parse().unwrap();
        assert_eq!(unix_target(None, mapped), "198.18.0.2:1".parse().unwrap());
    }
}
