//! Choosing the Berth bridge's subnet: the first candidate that overlaps no
//! route and no address of this host (other than the bridge's own), or the
//! subnet the bridge already has. The choice is a pure function over what
//! [`probe`] reads from `ip -j`.

use std::net::Ipv4Addr;

use serde::Deserialize;
use std::process::Command;

use super::cidr::Ipv4Net;
use super::NetworkError;

/// Default candidates, in order: private /16s that the usual neighbours
/// (Docker's 172.17–172.28 pools, libvirt's 192.168.122/24, most home and
/// office LANs on 192.168/16 and 10.0–10.10) leave alone.
pub const CANDIDATES: &[&str] = &[
    "10.213.0.0/16",
    "10.214.0.0/16",
    "10.215.0.0/16",
    "10.216.0.0/16",
    "172.29.0.0/16",
    "172.30.0.0/16",
    "172.31.0.0/16",
];

/// A network this host already routes or holds, and on which device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupied {
    pub net: Ipv4Net,
    pub dev: Option<String>,
}

/// What the host looks like to the subnet choice.
#[derive(Debug, Clone, Default)]
pub struct HostNets {
    /// Every IPv4 route (all tables) and every interface address (as its
    /// network), default routes left out.
    pub occupied: Vec<Occupied>,
}

impl HostNets {
    /// IPv4 networks already assigned to `dev` (the Berth bridge, if it exists).
    pub fn on_device<'a>(&'a self, dev: &'a str) -> impl Iterator<Item = Ipv4Net> + 'a {
        self.occupied
            .iter()
            .filter(move |o| o.dev.as_deref() == Some(dev))
            .map(|o| o.net)
    }
}

/// The subnet for `bridge`: the network of an address the bridge already
/// has, else the first candidate that overlaps nothing on another device.
pub fn choose(bridge: &str, candidates: &[Ipv4Net], host: &HostNets) -> Option<Ipv4Net> {
    if let Some(existing) = host
        .occupied
        .iter()
        .find(|o| o.dev.as_deref() == Some(bridge) && o.net.prefix() < 32)
    {
        return Some(existing.net.network());
    }
    candidates
        .iter()
        .find(|c| {
            !host
                .occupied
                .iter()
                .any(|o| o.dev.as_deref() != Some(bridge) && o.net.overlaps(c))
        })
        .copied()
}

#[derive(Deserialize)]
struct RouteJson {
    dst: String,
    dev: Option<String>,
}

#[derive(Deserialize)]
struct LinkJson {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<AddrJson>,
}

#[derive(Deserialize)]
struct AddrJson {
    family: String,
    local: Option<String>,
    prefixlen: Option<u8>,
}

/// Parses `ip -j -4 route show table all` and `ip -j -4 addr show`.
pub fn parse(routes_json: &str, addrs_json: &str) -> Result<HostNets, serde_json::Error> {
    let mut occupied = Vec::new();
    let routes: Vec<RouteJson> = serde_json::from_str(routes_json)?;
    for r in routes {
        if r.dst == "default" {
            continue;
        }
        let Ok(net) = r.dst.parse::<Ipv4Net>() else {
            continue;
        };
        if net.prefix() == 0 {
            continue;
        }
        occupied.push(Occupied { net, dev: r.dev });
    }
    let links: Vec<LinkJson> = serde_json::from_str(addrs_json)?;
    for link in links {
        for a in link.addr_info.iter().filter(|a| a.family == "inet") {
            let (Some(local), Some(prefix)) = (&a.local, a.prefixlen) else {
                continue;
            };
            let Ok(addr) = local.parse::<Ipv4Addr>() else {
                continue;
            };
            if let Some(net) = Ipv4Net::new(addr, prefix) {
                occupied.push(Occupied {
                    net,
                    dev: Some(link.ifname.clone()),
                });
            }
        }
    }
    Ok(HostNets { occupied })
}

/// Reads this host's IPv4 routes (every table) and addresses.
/// Blocking: it runs `ip` twice, once, when [`super::Networking`] is built.
pub fn probe() -> Result<HostNets, NetworkError> {
    let routes = run_ip(&["-j", "-4", "route", "show", "table", "all"])?;
    let addrs = run_ip(&["-j", "-4", "addr", "show"])?;
    parse(&routes, &addrs).map_err(|e| NetworkError::HostProbe {
        reason: format!("cannot parse `ip -j` output: {e}"),
    })
}

fn run_ip(args: &[&str]) -> Result<String, NetworkError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetworkError::HostProbe {
            reason: format!("cannot run `ip {}`: {e}", args.join(" ")),
        })?;
    if !out.status.success() {
        return Err(NetworkError::HostProbe {
            reason: format!(
                "`ip {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| NetworkError::HostProbe {
        reason: format!("`ip {}` printed non-UTF-8", args.join(" ")),
    })
}

/// The default candidates, parsed.
pub fn default_candidates() -> Vec<Ipv4Net> {
    CANDIDATES.iter().filter_map(|c| c.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(net: &str, dev: &str) -> Occupied {
        Occupied {
            net: net.parse().unwrap(),
            dev: Some(dev.to_owned()),
        }
    }

    #[test]
    fn parses_ip_json_and_drops_default_routes() {
        let routes = r#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},
            {"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.2","flags":[]},
            {"type":"local","dst":"127.0.0.1","dev":"lo","table":"local","flags":[]},
            {"type":"unreachable","dst":"0.0.0.0/0","flags":[]}]"#;
        let addrs = r#"[{"ifindex":4,"ifname":"eth0","addr_info":[
            {"family":"inet","local":"192.0.2.2","prefixlen":24},
            {"family":"inet6","local":"fd00::2","prefixlen":64}]}]"#;
        let host = parse(routes, addrs).unwrap();
        assert_eq!(
            host.occupied,
            vec![
                occ("192.0.2.0/24", "eth0"),
                occ("127.0.0.1/32", "lo"),
                occ("192.0.2.2/24", "eth0"),
            ]
        );
    }

    #[test]
    fn skips_candidates_that_overlap_a_route_or_an_address() {
        let candidates = default_candidates();
        let host = HostNets {
            occupied: vec![
                // A VPN's /8 route covers every 10.x candidate.
                Occupied {
                    net: "10.0.0.0/8".parse().unwrap(),
                    dev: None,
                },
                // An address (no route of its own) inside 172.29/16.
                occ("172.29.7.1/32", "wg0"),
            ],
        };
        assert_eq!(
            choose("berth0", &candidates, &host),
            Some("172.30.0.0/16".parse().unwrap())
        );
        assert_eq!(
            choose("berth0", &candidates, &HostNets::default()),
            Some("10.213.0.0/16".parse().unwrap())
        );
    }

    #[test]
    fn keeps_the_subnet_the_bridge_already_has() {
        let candidates = default_candidates();
        let host = HostNets {
            occupied: vec![
                occ("10.214.0.0/16", "berth0"),
                occ("10.214.0.1/16", "berth0"),
            ],
        };
        assert_eq!(
            choose("berth0", &candidates, &host),
            Some("10.214.0.0/16".parse().unwrap())
        );
        // Another bridge's subnet is someone else's.
        assert_eq!(
            choose("other", &candidates, &host),
            Some("10.213.0.0/16".parse().unwrap())
        );
    }

    #[test]
    fn none_when_everything_overlaps() {
        let host = HostNets {
            occupied: vec![occ("0.0.0.0/1", "tun0"), occ("128.0.0.0/1", "tun0")],
        };
        assert_eq!(choose("berth0", &default_candidates(), &host), None);
    }
}
