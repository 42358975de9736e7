//! An IPv4 network in CIDR notation (`10.213.0.0/16`): parsing, display,
//! containment and overlap. Small on purpose: it is all Berth's subnet
//! choice needs.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 network: an address and a prefix length (0..=32). The address is
/// kept as given; [`Ipv4Net::network`] masks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

/// Why a string is not an IPv4 CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an IPv4 network in CIDR notation (like 10.213.0.0/16): {reason}")]
pub struct CidrError {
    pub input: String,
    pub reason: &'static str,
}

impl Ipv4Net {
    /// `None` if `prefix` is above 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then_some(Self { addr, prefix })
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The same prefix with the host bits cleared.
    pub fn network(&self) -> Self {
        Self {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            prefix: self.prefix,
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// True when the two networks share at least one address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let shorter = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        let longer = if self.prefix <= other.prefix {
            other
        } else {
            self
        };
        shorter.contains(longer.addr)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = CidrError;

    /// `a.b.c.d/n`; a bare address reads as a `/32`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| CidrError {
            input: s.to_owned(),
            reason,
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().map_err(|_| err("bad prefix length"))?),
            None => (s, 32),
        };
        let addr = addr
            .parse::<Ipv4Addr>()
            .map_err(|_| err("bad IPv4 address"))?;
        Self::new(addr, prefix).ok_or_else(|| err("the prefix length is above 32"))
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = CidrError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays() {
        assert_eq!(net("10.213.0.0/16").to_string(), "10.213.0.0/16");
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(net("10.213.4.5/16").network(), net("10.213.0.0/16"));
        assert_eq!(net("0.0.0.0/0").network(), net("0.0.0.0/0"));
        for bad in ["10.0.0.0/33", "10.0.0/8", "x/8", "10.0.0.0/", "::1/128"] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap_is_symmetric_and_exact() {
        assert!(net("10.0.0.0/8").overlaps(&net("10.213.0.0/16")));
        assert!(net("10.213.0.0/16").overlaps(&net("10.0.0.0/8")));
        assert!(net("10.213.0.0/16").overlaps(&net("10.213.255.255/32")));
        assert!(!net("10.213.0.0/16").overlaps(&net("10.214.0.0/16")));
        assert!(!net("172.29.0.0/16").overlaps(&net("172.28.255.255/32")));
        assert!(net("0.0.0.0/0").overlaps(&net("172.29.0.0/16")));
    }
}
