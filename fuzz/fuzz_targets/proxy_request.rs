//! What a proxy client sends nk's proxy server (`nk listen --proxy`): SOCKS4/4a, a SOCKS5
//! greeting, RFC 1929 credentials and request, an HTTP CONNECT head, or garbage, through the
//! handshake state machine the event loop drives. The first byte picks the service (kinds,
//! credentials) and how the rest is cut into reads.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use netkit::net::proxy::server::{Action, Handshake, ProxyService, Request, REQUEST_CAP};
use netkit::net::proxy::Credentials;

/// How a handshake ended: the replies sent on the way, then the request (and the bytes
/// after it) or the refusal.
#[derive(Debug, PartialEq)]
enum Outcome {
    Open(Vec<Vec<u8>>),
    Connect(Vec<Vec<u8>>, Request, Vec<u8>),
    Refused(Vec<Vec<u8>>, Vec<u8>),
}

/// Feeds `data` as the engine does: reads of at most `step` bytes into a buffer capped at
/// REQUEST_CAP, the machine advanced after each read until it needs more.
fn drive(service: &Arc<ProxyService>, data: &[u8], step: usize) -> Outcome {
    let mut handshake = Handshake::new(Arc::clone(service));
    let mut received: Vec<u8> = Vec::new();
    let mut replies = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let room = REQUEST_CAP - received.len();
        let take = step.min(room).min(data.len() - at).max(1);
        assert!(room > 0, "the buffer is full and the machine still waits");
        received.extend_from_slice(&data[at..at + take]);
        at += take;
        loop {
            let full = received.len() >= REQUEST_CAP;
            match handshake.advance(&received, full) {
                Action::Need => break,
                Action::Reply { consumed, bytes } => {
                    assert!(consumed > 0 && consumed <= received.len());
                    assert!(bytes.len() <= 2, "{bytes:?}");
                    received.drain(..consumed);
                    replies.push(bytes);
                }
                Action::Connect { consumed, request } => {
                    assert!(consumed <= received.len());
                    assert_ne!(request.target.port, 0);
                    let mut rest = received.split_off(consumed);
                    rest.extend_from_slice(&data[at..]);
                    return Outcome::Connect(replies, request, rest);
                }
                Action::Refuse { bytes, why } => {
                    assert!(bytes.len() <= 1024, "a reply of {} bytes", bytes.len());
                    assert!(!why.is_empty() && !why.contains('\n'), "{why:?}");
                    return Outcome::Refused(replies, bytes);
                }
            }
        }
    }
    // Still incomplete: the time is up, and the answer is one short reply in the client's
    // protocol (or nothing); the handshake is over after it.
    let expired = handshake.expired(&received, "no complete proxy request within 10s");
    assert!(expired.len() <= 1024, "a reply of {} bytes", expired.len());
    assert!(handshake.expired(&received, "again").is_empty());
    Outcome::Open(replies)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let kinds = ["http,socks", "socks5", "socks4", "http"][(which & 3) as usize];
    let mut service = ProxyService::kinds(kinds).expect("kinds");
    if which & 4 != 0 {
        service.credentials = Some(Credentials {
            user: "me".into(),
            pass: "secret".into(),
        });
    }
    let service = Arc::new(service);
    let step = 1 + (which >> 3) as usize * 97;
    let whole = drive(&service, rest, REQUEST_CAP);
    let trickled = drive(&service, rest, step);
    // However the bytes arrive, the client is answered the same (a refusal's reason may
    // name what had arrived, so only its reply bytes are compared).
    match (&whole, &trickled) {
        (Outcome::Open(_), _) | (_, Outcome::Open(_)) => {}
        _ => assert_eq!(whole, trickled),
    }
    // A success reply speaks the client's protocol.
    if let Outcome::Connect(_, request, _) = &whole {
        let ok = request.success(None);
        assert!(!ok.is_empty() && ok.len() <= 64, "{ok:?}");
    }
});
