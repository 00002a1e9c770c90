//! One end of a forwarded connection: its socket, and what must happen on it before bytes
//! are relayed (a PROXY header to write, a TLS handshake) and while they are (TLS records).
//!
//! A plain side is its socket: the flows splice or read and write it directly. A TLS side
//! (`--tls-listen` toward clients, `--tls-connect` toward the target) is a rustls connection
//! over the non-blocking socket, driven from the event loop like everything else, never on a
//! thread of its own:
//! - opening: [`Side::open`] writes the preface (the PROXY header goes before the TLS
//!   ClientHello: it is read by whatever accepts the TCP connection), then steps the
//!   handshake as far as the socket allows; [`Side::opening_interest`] says what to wait for.
//!   The loop bounds it: [`Side::handshake_deadline`].
//! - relaying: [`Side::read_into`] gives plaintext (reading records when rustls has none),
//!   [`Side::write_from`] hands plaintext to rustls and flushes the records it makes;
//!   records still to flush ([`Side::wants_flush`]) keep the socket registered for writing.
//! - closing: at the plaintext EOF, [`Side::close_write`] sends close_notify, and once that is
//!   flushed shuts the TCP write side; reading goes on (TLS 1.3 allows a half-close). The
//!   peer's close_notify is the clean EOF; a FIN without it (a truncation) and a fatal alert
//!   are errors, so the other side is reset rather than given a FIN.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::Instant;

use rustls::Connection;
use socket2::Socket;

use crate::net::poller::Interest;

/// A socket and the protocol state on it.
#[derive(Debug)]
pub struct Side {
    /// The connection's socket on this side.
    pub socket: Socket,
    /// With TLS on this side, the rustls connection over `socket`.
    tls: Option<Box<Tls>>,
    /// Bytes to write raw before anything else (the PROXY header toward the target); emptied
    /// as they go.
    preface: Vec<u8>,
}

#[derive(Debug)]
struct Tls {
    conn: Connection,
    /// The peer's FIN was read.
    tcp_eof: bool,
    /// close_notify was queued: our side of the stream is over.
    closing: bool,
    /// When the handshake must be over.
    deadline: Instant,
    /// `TLS 1.3, TLS13_AES_256_GCM_SHA384` once the handshake is over.
    summary: Option<String>,
}

/// Why a side could not be opened (the preface or the handshake failed), in words.
#[derive(Debug)]
pub struct OpenFailure(pub String);

impl Side {
    /// A side without TLS.
    pub fn plain(socket: Socket) -> Side {
        Side {
            socket,
            tls: None,
            preface: Vec::new(),
        }
    }

    /// A side that speaks TLS over `socket` (a rustls server or client connection, not yet
    /// handshaken), whose handshake must be over by `deadline`.
    pub fn tls(socket: Socket, conn: Connection, deadline: Instant) -> Side {
        Side {
            socket,
            tls: Some(Box::new(Tls {
                conn,
                tcp_eof: false,
                closing: false,
                deadline,
                summary: None,
            })),
            preface: Vec::new(),
        }
    }

    /// Bytes to write raw, first thing, before the handshake or any relayed byte.
    pub fn with_preface(mut self, preface: Vec<u8>) -> Side {
        self.preface = preface;
        self
    }

    /// The socket alone (a plain side whose connect was under way, to be opened anew).
    pub fn into_socket(self) -> Socket {
        self.socket
    }

    /// Whether bytes through this side must pass through user space (TLS): no splice.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// What the handshake settled on, once it is over.
    pub fn tls_summary(&self) -> Option<&str> {
        self.tls.as_ref().and_then(|t| t.summary.as_deref())
    }

    /// Whether the preface is out and the handshake (if any) is over: relaying may start.
    pub fn is_open(&self) -> bool {
        self.preface.is_empty() && self.tls.as_ref().is_none_or(|t| t.summary.is_some())
    }

    /// When the handshake must be over, while it is not.
    pub fn handshake_deadline(&self) -> Option<Instant> {
        match &self.tls {
            Some(tls) if tls.summary.is_none() => Some(tls.deadline),
            _ => None,
        }
    }

    /// Writes the preface and steps the handshake as far as the socket allows. `Ok(true)`
    /// once open; `Ok(false)` to be called again when [`Side::opening_interest`] is ready.
    /// `peer` names the other end for the failure's words; `server`: we are the TLS server.
    pub fn open(&mut self, peer: &str, server: bool) -> Result<bool, OpenFailure> {
        let io_failure = |err: io::Error| {
            OpenFailure(match err.kind() {
                io::ErrorKind::ConnectionReset => format!("{peer} reset the connection"),
                _ => format!("{peer}: {err}"),
            })
        };
        while !self.preface.is_empty() {
            match send(&self.socket, &self.preface) {
                Ok(n) => drop(self.preface.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(io_failure(e)),
            }
        }
        let Some(tls) = self.tls.as_mut() else {
            return Ok(true);
        };
        if tls.summary.is_some() {
            return Ok(true);
        }
        let words = |err: io::Error| {
            OpenFailure(format!(
                "{:#}",
                crate::net::tls::explain(err, peer, peer, server)
            ))
        };
        loop {
            flush(&mut tls.conn, &self.socket).map_err(io_failure)?;
            if !tls.conn.is_handshaking() {
                if tls.conn.wants_write() {
                    // The last flight is still to go: wait for room, then report open.
                    return Ok(false);
                }
                tls.summary = Some(crate::net::tls::summary(&tls.conn));
                return Ok(true);
            }
            if tls.conn.wants_write() || !tls.conn.wants_read() {
                return Ok(false);
            }
            match tls.conn.read_tls(&mut Wire(&self.socket)) {
                Ok(0) => {
                    let cut = crate::net::tls::cut_short(peer, "closed");
                    return Err(OpenFailure(format!("{cut:#}")));
                }
                Ok(_) => {
                    if let Err(err) = tls.conn.process_new_packets() {
                        // Let the peer know why, when there is an alert to send.
                        let _ = flush(&mut tls.conn, &self.socket);
                        return Err(words(io::Error::new(io::ErrorKind::InvalidData, err)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(io_failure(e)),
            }
        }
    }

    /// What to wait for while opening.
    pub fn opening_interest(&self) -> Interest {
        if !self.preface.is_empty() {
            return Interest::Write;
        }
        match &self.tls {
            Some(tls) if tls.conn.wants_write() => Interest::Write,
            _ => Interest::Read,
        }
    }

    /// TLS records are waiting to be written (a flow's plaintext, a close_notify, an alert).
    pub fn wants_flush(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.wants_write())
    }

    /// Reads what the side has for the other one into `buf`: `Some(0)` at a clean EOF (a FIN;
    /// with TLS, close_notify), `None` when nothing is there now. With TLS, the error for a
    /// FIN without close_notify, a fatal alert or a bad record says so.
    pub fn read_into(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(tls) = self.tls.as_mut() else {
            return read(&self.socket, buf);
        };
        let mut got = 0;
        while got < buf.len() {
            match tls.conn.reader().read(&mut buf[got..]) {
                // close_notify: what came before it is delivered first.
                Ok(0) => return Ok(Some(got)),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if tls.tcp_eof || !tls.conn.wants_read() {
                        break;
                    }
                    match tls.conn.read_tls(&mut Wire(&self.socket)) {
                        Ok(0) => tls.tcp_eof = true,
                        Ok(_) => {
                            if let Err(err) = tls.conn.process_new_packets() {
                                let _ = flush(&mut tls.conn, &self.socket);
                                return Err(tls_failure(&err));
                            }
                            // A key update or an alert to answer goes out now, if it can.
                            flush(&mut tls.conn, &self.socket)?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    if got > 0 {
                        // The plaintext before the cut goes on; the cut is reported next read.
                        return Ok(Some(got));
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "TLS stream cut short (a FIN without close_notify)",
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(if got > 0 { Some(got) } else { None })
    }

    /// Writes `data` toward this side: the bytes taken (with TLS, taken into records, which
    /// are flushed as far as the socket allows), 0 when it would block.
    pub fn write_from(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return match send(&self.socket, data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                other => other,
            };
        };
        flush(&mut tls.conn, &self.socket)?;
        // rustls takes what fits its 64 KiB of unsent records: a peer that does not read
        // pushes back here as it would through the socket.
        let taken = tls.conn.writer().write(data)?;
        flush(&mut tls.conn, &self.socket)?;
        Ok(taken)
    }

    /// Passes the EOF on: shutdown(SHUT_WR), after close_notify and every record before it
    /// with TLS. `Ok(false)`: records are still to flush; call again when writable.
    pub fn close_write(&mut self) -> io::Result<bool> {
        if let Some(tls) = self.tls.as_mut() {
            if !tls.closing {
                tls.conn.send_close_notify();
                tls.closing = true;
            }
            if !flush(&mut tls.conn, &self.socket)? {
                return Ok(false);
            }
        }
        self.socket.shutdown(Shutdown::Write)?;
        Ok(true)
    }

    /// Sends what the TLS connection holds (an alert, say) without waiting, before a reset.
    pub fn flush_quietly(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            let _ = flush(&mut tls.conn, &self.socket);
        }
    }
}

/// A TLS failure as an I/O error whose text says what happened.
fn tls_failure(err: &rustls::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("TLS: {}", crate::net::tls::failure_in_words(err)),
    )
}

/// Writes the records rustls holds until it holds none (`true`) or the socket is full.
fn flush(conn: &mut Connection, socket: &Socket) -> io::Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(&mut Wire(socket)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The socket as rustls reads and writes it (send with MSG_NOSIGNAL, EINTR retried).
struct Wire<'a>(&'a Socket);

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match read(self.0, buf)? {
            Some(n) => Ok(n),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        send(self.0, data)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// read(2) without blocking: `Some(0)` at EOF, `None` when nothing is there.
fn read(socket: &Socket, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: `buf` is valid for writing for its length during the call.
        let n = unsafe { libc::read(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(err),
        }
    }
}

/// send(2) with MSG_NOSIGNAL: a vanished peer is an error to report, not SIGPIPE.
fn send(socket: &Socket, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `data` is valid for reading for its length during the call.
        let n = unsafe {
            libc::send(
                socket.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
