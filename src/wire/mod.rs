//! Pure encode/decode of what crosses the wire: no sockets, no clocks, caps on every length.
//! Unit-tested with byte literals.

pub mod chargen;
pub mod daytime;
pub mod dns;
pub mod frame;
pub mod h2;
pub mod hexdump;
pub mod http;
pub mod http_route;
pub mod icmp;
pub mod ipblocks;
pub mod ipnet;
pub mod pcapng;
pub mod proxy_protocol;
pub mod quotes;
pub mod smtp;
pub mod smtp_auth;
pub mod synthetic_tcp;
pub mod time;
pub mod write_out;
pub mod x509;
