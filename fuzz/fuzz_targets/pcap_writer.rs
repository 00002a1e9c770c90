//! The `nk forward --pcap` writer: arbitrary chunks each way, then a FIN or a RST, written as
//! pcapng around synthesised TCP frames, must read back (blocks, checksums, sequence and
//! acknowledgement numbers) as exactly the bytes each side sent. The raw input also goes
//! through both readers, which must answer without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::pcapng::{self, read};
use netkit::wire::synthetic_tcp::{read as tcp_read, Conversation, Side};
use std::net::SocketAddr;

/// Endpoints by the first byte: IPv4, IPv6, IPv4-mapped against IPv6, mapped against IPv4.
const ENDS: [(&str, &str); 4] = [
    ("127.0.0.1:40000", "10.0.0.5:80"),
    ("[::1]:40000", "[2001:db8::5]:443"),
    ("[::ffff:192.0.2.1]:1", "[::1]:65535"),
    ("[::ffff:192.0.2.1]:1024", "198.18.0.2:5432"),
];

fuzz_target!(|data: &[u8]| {
    let _ = read::capture(data);
    let _ = tcp_read::segment(data);
    if data.len() < 9 {
        return;
    }
    let (client, target) = ENDS[usize::from(data[0] % 4)];
    let isn = [
        u32::from_be_bytes(data[1..5].try_into().unwrap()),
        u32::from_be_bytes(data[5..9].try_into().unwrap()),
    ];
    let client: SocketAddr = client.parse().unwrap();
    let target: SocketAddr = target.parse().unwrap();
    let mut conversation = Conversation::new(client, target, isn);
    let mut file = pcapng::file_header("fuzz", pcapng::LINKTYPE_ETHERNET, 262_144);
    let mut stamp = 0u64;
    let mut sent = [Vec::new(), Vec::new()];
    let mut fin = [false, false];
    let mut rst = [false, false];
    conversation.handshake(&mut |f| pcapng::push_packet(&mut file, stamp, f));
    // Ops: a byte (bit 0: side; bits 1-2: data, FIN, RST; the rest scales the length), a
    // length byte, then that many bytes of data (times 1 or 1031, to reach multi-segment
    // chunks with a small input).
    let mut rest = &data[9..];
    while rest.len() >= 2 && !(rst[0] || rst[1]) {
        let (op, len) = (rest[0], usize::from(rest[1]));
        rest = &rest[2..];
        let side = if op & 1 == 0 {
            Side::Client
        } else {
            Side::Target
        };
        let i = usize::from(op & 1);
        stamp += 1;
        let emit = &mut |f: &[u8]| pcapng::push_packet(&mut file, stamp, f);
        match (op >> 1) & 3 {
            0 | 1 if !fin[i] => {
                let take = len.min(rest.len());
                let chunk = if op & 0x80 != 0 {
                    rest[..take].repeat(1031)
                } else {
                    rest[..take].to_vec()
                };
                rest = &rest[take..];
                conversation.data(side, &chunk, emit);
                sent[i].extend_from_slice(&chunk);
            }
            2 if !fin[i] => {
                conversation.fin(side, emit);
                fin[i] = true;
            }
            3 => {
                conversation.reset(side, emit);
                rst[i] = true;
            }
            _ => {}
        }
    }
    let capture = read::capture(&file).expect("the written file parses");
    assert_eq!(capture.linktype, pcapng::LINKTYPE_ETHERNET);
    for packet in &capture.packets {
        assert_eq!(packet.frame.len() as u32, packet.original_len);
        // Ethernet, then an IPv6 header and the most its payload length can say (an IPv4
        // packet's total length is checked by the reader).
        assert!(
            packet.frame.len() <= 14 + 40 + 65535,
            "frame over an IP packet"
        );
    }
    let followed = tcp_read::follow(capture.packets.iter().map(|p| p.frame))
        .unwrap_or_else(|e| panic!("the written conversation follows back: {e}"));
    assert_eq!(followed.bytes, sent);
    assert_eq!(followed.fin, fin);
    assert_eq!(followed.rst, rst);
    // A file cut at any byte is an error or a prefix, never a panic.
    let _ = read::capture(&file[..file.len() / 2]);
});
