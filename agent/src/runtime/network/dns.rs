//! The resolver configuration a task gets: the host's `/etc/resolv.conf`,
//! minus loopback nameservers for tasks in their own namespace (a stub
//! resolver on 127.0.0.53 is not reachable from there; systemd-resolved's
//! upstream list in `/run/systemd/resolve/resolv.conf` is used instead).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// What goes into a container's `/etc/resolv.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
pub const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// Parses resolv.conf text (unknown lines and bad addresses are skipped).
pub fn parse(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                    dns.nameservers.push(ip);
                }
            }
            Some("search") | Some("domain") => {
                dns.search = words.map(str::to_owned).collect();
            }
            Some("options") => dns.options.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    dns
}

/// The resolver for a task in its own namespace, from the host's files
/// (`host` and `fallback`, the systemd-resolved upstream file).
pub fn for_netns(host: &str, fallback: Option<&str>) -> Dns {
    let mut dns = parse(host);
    if dns.nameservers.iter().all(IpAddr::is_loopback) {
        if let Some(upstream) = fallback.map(parse) {
            dns.nameservers = upstream.nameservers;
        }
    }
    dns.nameservers.retain(|ip| !ip.is_loopback());
    dns
}

/// Reads the host's resolver configuration; `in_netns` drops what a task
/// in its own namespace cannot reach.
pub fn read(in_netns: bool) -> Dns {
    let host = std::fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
    if in_netns {
        let fallback = std::fs::read_to_string(SYSTEMD_RESOLV_CONF).ok();
        for_netns(&host, fallback.as_deref())
    } else {
        parse(&host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stub_resolver_is_replaced_by_its_upstreams() {
        let stub =
            "# managed\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n";
        let upstream = "nameserver 192.0.2.53\nnameserver ::1\n";
        let dns = for_netns(stub, Some(upstream));
        assert_eq!(
            dns.nameservers,
            vec!["192.0.2.53".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(dns.search, vec!["corp.example"]);
        assert_eq!(dns.options, vec!["edns0", "trust-ad"]);
        assert_eq!(
            parse(stub).nameservers,
            vec!["127.0.0.53".parse::<IpAddr>().unwrap()]
        );
        assert!(for_netns(stub, None).nameservers.is_empty());
    }
}
