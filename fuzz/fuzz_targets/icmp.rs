//! ICMP messages from the network, and the echo requests nk builds (round trip).
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::icmp::{
    checksum, echo_request, error_text, parse, payload_intact, payload_time, strip_ipv4, Incoming,
};

fuzz_target!(|data: &[u8]| {
    for v6 in [false, true] {
        let _ = parse(v6, data);
    }
    if let Some((_ttl, message)) = strip_ipv4(data) {
        let _ = parse(false, message);
    }
    let _ = checksum(data);
    let _ = payload_time(data);
    let _ = payload_intact(data);
    if data.len() >= 16 {
        let v6 = data[0] % 2 == 0;
        let id = u16::from_be_bytes([data[1], data[2]]);
        let seq = u16::from_be_bytes([data[3], data[4]]);
        let size = usize::from(data[5]);
        let info = u32::from_be_bytes([data[6], data[7], data[8], data[9]]);
        let _ = error_text(v6, data[10], data[11], info);
        let sent = (u64::from(info), u32::from(seq) * 1000);
        let packet = echo_request(v6, id, seq, size, sent);
        // A request with its type turned into a reply reads back as sent.
        let mut reply = packet.clone();
        reply[0] = if v6 { 129 } else { 0 };
        if !v6 {
            reply[2..4].copy_from_slice(&[0, 0]);
            let sum = checksum(&reply);
            reply[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        match parse(v6, &reply) {
            Incoming::Reply {
                identifier,
                sequence,
                checksum_ok,
                payload,
            } => {
                assert_eq!((identifier, sequence), (id, seq));
                assert!(checksum_ok);
                assert_eq!(payload.len(), size);
                assert!(payload_intact(&payload));
                if size >= 16 {
                    assert_eq!(payload_time(&payload), Some(sent));
                }
            }
            other => panic!("{other:?}"),
        }
    }
});
