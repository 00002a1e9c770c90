//! `nk forward --proxy-protocol`: the PROXY header decoder on arbitrary bytes, and the encoder
//! read back by the decoder (from decoded headers and from addresses made of the input).
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::proxy_protocol::{decode, encode, DecodeError, Proxied, Version};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(header) => {
            assert!(header.len <= data.len());
            // What was read, written again, reads back the same.
            let again = encode(header.version, &header.proxied);
            let back = decode(&again).expect("an encoded header decodes");
            assert_eq!(back.proxied, header.proxied);
            assert_eq!(back.len, again.len());
        }
        Err(DecodeError::Incomplete) => assert!(data.len() < 16 + 65535),
        Err(DecodeError::Invalid(_)) => {}
    }
    // Addresses from the input: encode both ways, decode, compare.
    if data.len() >= 37 {
        let mut octets = [[0u8; 16]; 2];
        octets[0].copy_from_slice(&data[0..16]);
        octets[1].copy_from_slice(&data[16..32]);
        let ip = |o: [u8; 16]| match data[36] & 1 {
            0 => IpAddr::V6(Ipv6Addr::from(o)),
            _ => IpAddr::V4([o[0], o[1], o[2], o[3]].into()),
        };
        let proxied = Proxied::from_addresses(
            Some(SocketAddr::new(
                ip(octets[0]),
                u16::from_be_bytes([data[32], data[33]]),
            )),
            Some(SocketAddr::new(
                ip(octets[1]),
                u16::from_be_bytes([data[34], data[35]]),
            )),
        );
        for version in [Version::V1, Version::V2] {
            let bytes = encode(version, &proxied);
            assert!(version == Version::V2 || bytes.len() <= 107);
            let back = decode(&bytes).expect("an encoded header decodes");
            assert_eq!(
                (back.version, back.proxied, back.len),
                (version, proxied, bytes.len())
            );
        }
    }
});
