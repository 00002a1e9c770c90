//! `nk forward -x`: the hex dump of `nk dial -x` (`wire::hexdump`), for many connections at
//! once. Every block starts with a header line naming the connection, the time and the
//! direction, so interleaved connections stay readable and `grep '^#3 '` picks one out:
//!
//! ```text
//! #1 2026-12-07 02:55:01.123456 connected 127.0.0.1:40000 -> 127.0.0.1:5432
//! #1 2026-12-07 02:55:01.123500 > client->target 18 bytes
//! > 00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 30 0d 0a  |GET / HTTP/1.0..|
//! > 00000010  0d 0a                                             |..|
//! #1 2026-12-07 02:55:01.124010 < target->client 5 bytes
//! < 00000000  68 65 6c 6c 6f                                    |hello|
//! #1 2026-12-07 02:55:01.124100 > client->target FIN
//! #1 2026-12-07 02:55:01.124200 < target->client FIN
//! #1 2026-12-07 02:55:01.124300 end: fin; 18 bytes up, 5 down
//! ```
//! `>` is client to target, `<` target to client; offsets count per direction, as in
//! `dial -x`. Times are local.

use std::time::SystemTime;

use anyhow::Result;

use super::{Side, Sink};
use crate::net::forward::conn::End;
use crate::wire::hexdump::{self, Mark};

/// The `-x` recording.
#[derive(Debug)]
pub struct Dump {
    sink: Sink,
}

impl Dump {
    /// Creates FILE, or takes stdout for `-`.
    pub fn create(path: &str) -> Result<Dump> {
        Ok(Dump {
            sink: Sink::create("-x", path)?,
        })
    }

    pub(super) fn opened(&mut self, conn: u64, client: &str, target: &str, at: SystemTime) {
        let line = format!("{} connected {client} -> {target}\n", header(conn, at));
        self.say(&line);
    }

    pub(super) fn data(
        &mut self,
        conn: u64,
        from: Side,
        offset: u64,
        chunk: &[u8],
        at: SystemTime,
    ) {
        let (mark, way) = marks(from);
        let head = format!(
            "{} {} {way} {}\n",
            header(conn, at),
            mark.symbol(),
            crate::log::count(chunk.len() as u64, "byte")
        );
        let mut block = head;
        block.push_str(&hexdump::format(mark, offset, chunk));
        self.say(&block);
    }

    /// `from` sent `flag`: its FIN or its RST.
    pub(super) fn flag(&mut self, conn: u64, from: Side, flag: &str, at: SystemTime) {
        let (mark, way) = marks(from);
        let line = format!("{} {} {way} {flag}\n", header(conn, at), mark.symbol());
        self.say(&line);
    }

    pub(super) fn ended(&mut self, conn: u64, end: &End, up: u64, down: u64, at: SystemTime) {
        let detail = match end.detail() {
            "" => String::new(),
            why => format!(" ({why})"),
        };
        self.say(&format!(
            "{} end: {}{detail}; {} up, {down} down\n",
            header(conn, at),
            end.word(),
            crate::log::count(up, "byte"),
        ));
    }

    /// One block, queued whole (the writer flushes as soon as it has written what waits:
    /// the dump is read while it grows).
    fn say(&mut self, text: &str) {
        self.sink.write(text.as_bytes());
    }

    pub(super) fn sink(&self) -> &Sink {
        &self.sink
    }
}

fn header(conn: u64, at: SystemTime) -> String {
    let local: chrono::DateTime<chrono::Local> = at.into();
    format!("#{conn} {}", local.format("%Y-%m-%d %H:%M:%S%.6f"))
}

fn marks(from: Side) -> (Mark, &'static str) {
    match from {
        Side::Client => (Mark::Sent, "client->target"),
        Side::Target => (Mark::Received, "target->client"),
    }
}
