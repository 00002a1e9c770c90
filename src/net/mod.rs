//! Socket machinery shared by every command: addresses, deadlines, dialing, listening, socket
//! options, the relay. Nothing here knows about clap or prints payload.

pub mod acl;
pub mod addr;
pub mod cmsg;
pub mod connect;
pub mod datagram;
pub mod deadline;
pub mod dns;
pub mod exec;
pub mod forward;
pub mod hub;
pub mod icmp;
pub mod inetd;
pub mod poller;
pub mod proxy;
pub mod relay;
pub mod scan;
pub mod server;
pub mod service_names;
pub mod sockopt;
pub mod tls;
pub mod udp_guard;
pub mod udpscan;
pub mod unix;
