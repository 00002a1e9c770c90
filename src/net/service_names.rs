//! Service names ↔ port numbers, from /etc/services, with a built-in table when it is missing.
//!
//! Users write `http` or `smtp` where a port goes (cli.md), scanners print the service beside an
//! open port, and `resolve --port` answers both ways. Minimal containers often ship without
//! /etc/services, so the common services are compiled in as a fallback; the file, when present,
//! wins. The file is untrusted text: it is read with a size cap and malformed lines are skipped.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Transport protocol a service entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The name used in /etc/services.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A table of services: name (and aliases) → port, port → primary name, per protocol.
#[derive(Debug, Default)]
pub struct Services {
    by_name: HashMap<(String, Proto), u16>,
    by_port: HashMap<(u16, Proto), String>,
}

/// The largest /etc/services read; real ones are under 20 KiB.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Services every system knows, used when /etc/services is missing.
const BUILT_IN: &[(&str, u16)] = &[
    ("tcpmux", 1),
    ("echo", 7),
    ("discard", 9),
    ("systat", 11),
    ("daytime", 13),
    ("netstat", 15),
    ("qotd", 17),
    ("chargen", 19),
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("time", 37),
    ("whois", 43),
    ("tacacs", 49),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("gopher", 70),
    ("finger", 79),
    ("http", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("sunrpc", 111),
    ("auth", 113),
    ("nntp", 119),
    ("ntp", 123),
    ("epmap", 135),
    ("netbios-ns", 137),
    ("netbios-dgm", 138),
    ("netbios-ssn", 139),
    ("imap2", 143),
    ("snmp", 161),
    ("snmp-trap", 162),
    ("bgp", 179),
    ("irc", 194),
    ("ldap", 389),
    ("https", 443),
    ("microsoft-ds", 445),
    ("kpasswd", 464),
    ("submissions", 465),
    ("syslog", 514),
    ("printer", 515),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("ftps", 990),
    ("imaps", 993),
    ("pop3s", 995),
    ("socks", 1080),
    ("openvpn", 1194),
    ("ms-sql-s", 1433),
    ("mqtt", 1883),
    ("nfs", 2049),
    ("mysql", 3306),
    ("rdp", 3389),
    ("sip", 5060),
    ("postgresql", 5432),
    ("amqp", 5672),
    ("x11", 6000),
    ("redis", 6379),
    ("http-alt", 8080),
    ("memcache", 11211),
];

/// Aliases the built-in table also answers to (as /etc/services lists them).
const BUILT_IN_ALIASES: &[(&str, &str)] = &[
    ("www", "http"),
    ("mail", "smtp"),
    ("nameserver", "domain"),
    ("imap", "imap2"),
    ("pop-3", "pop3"),
    ("postgres", "postgresql"),
    ("ssmtp", "submissions"),
    ("smtps", "submissions"),
    ("webcache", "http-alt"),
];

impl Services {
    /// Parses the text of an /etc/services file, skipping lines it cannot read.
    pub fn parse(text: &str) -> Services {
        let mut table = Services::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some((port, proto)) = port_proto.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            let proto = match proto {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => continue,
            };
            table.insert(name, port, proto, true);
            for alias in fields {
                table.insert(alias, port, proto, false);
            }
        }
        table
    }

    /// The compiled-in table, for both TCP and UDP.
    pub fn built_in() -> Services {
        let mut table = Services::default();
        for proto in [Proto::Tcp, Proto::Udp] {
            for &(name, port) in BUILT_IN {
                table.insert(name, port, proto, true);
            }
            for &(alias, name) in BUILT_IN_ALIASES {
                if let Some(&port) = table.by_name.get(&(name.to_string(), proto)) {
                    table.insert(alias, port, proto, false);
                }
            }
        }
        table
    }

    fn insert(&mut self, name: &str, port: u16, proto: Proto, primary: bool) {
        self.by_name
            .entry((name.to_ascii_lowercase(), proto))
            .or_insert(port);
        if primary {
            self.by_port
                .entry((port, proto))
                .or_insert_with(|| name.to_string());
        }
    }

    /// The port of a service name (case-insensitive), e.g. `("smtp", Tcp)` → 25.
    pub fn port(&self, name: &str, proto: Proto) -> Option<u16> {
        self.by_name
            .get(&(name.to_ascii_lowercase(), proto))
            .copied()
    }

    /// The primary name of a port, e.g. `(22, Tcp)` → `ssh`.
    pub fn name(&self, port: u16, proto: Proto) -> Option<&str> {
        self.by_port.get(&(port, proto)).map(String::as_str)
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The system's table: /etc/services when it can be read and has entries, the built-in table
/// otherwise. Read once per process.
pub fn system() -> &'static Services {
    static TABLE: OnceLock<Services> = OnceLock::new();
    TABLE.get_or_init(|| {
        read_capped("/etc/services")
            .map(|text| Services::parse(&text))
            .filter(|table| !table.is_empty())
            .unwrap_or_else(Services::built_in)
    })
}

fn read_capped(path: &str) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES).read_to_string(&mut text).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_aliases_and_comments() {
        let table = Services::parse(
            "# comment\nhttp\t\t80/tcp\t\twww\t# WorldWideWeb\nhttp 80/udp\nbogus\nx 99999/tcp\nsmtp 25/tcp mail\n",
        );
        assert_eq!(table.port("http", Proto::Tcp), Some(80));
        assert_eq!(table.port("WWW", Proto::Tcp), Some(80));
        assert_eq!(table.port("mail", Proto::Tcp), Some(25));
        assert_eq!(table.port("mail", Proto::Udp), None);
        assert_eq!(table.name(80, Proto::Tcp), Some("http"));
        assert_eq!(table.name(25, Proto::Tcp), Some("smtp"));
        assert_eq!(table.port("x", Proto::Tcp), None);
    }

    #[test]
    fn built_in_covers_the_seed_services() {
        let table = Services::built_in();
        assert_eq!(table.port("telnet", Proto::Tcp), Some(23));
        assert_eq!(table.port("qotd", Proto::Udp), Some(17));
        assert_eq!(table.port("www", Proto::Tcp), Some(80));
        assert_eq!(table.name(443, Proto::Tcp), Some("https"));
    }
}
