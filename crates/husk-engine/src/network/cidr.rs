//! Subnets as netavark writes them ("172.17.0.0/16", "fd00::/64"): parsing, overlap, and
//! the n-th address of a subnet (what the engine's address leases hand out).

use std::net::IpAddr;

/// A subnet that does not parse: the value as given, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not a subnet (ADDRESS/PREFIX)")]
    Form(String),
    #[error("{subnet:?}: {address:?} is not an IP address")]
    Address { subnet: String, address: String },
    #[error("{subnet:?}: the prefix length must be 0-{max}")]
    Prefix { subnet: String, max: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

fn from_bits(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4((v as u32).into())
    } else {
        IpAddr::V6(v.into())
    }
}

impl Cidr {
    /// "ADDR/PREFIX"; the address is reduced to the network's (172.17.3.4/16 → 172.17.0.0/16).
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| CidrError::Form(s.to_string()))?;
        let addr: IpAddr = a.parse().map_err(|_| CidrError::Address {
            subnet: s.to_string(),
            address: a.to_string(),
        })?;
        let max = bits(addr).1;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| CidrError::Prefix {
                subnet: s.to_string(),
                max,
            })?;
        let c = Cidr { addr, prefix };
        Ok(Cidr {
            addr: from_bits(bits(addr).0 & c.mask(), addr.is_ipv4()),
            prefix,
        })
    }

    fn width(&self) -> u8 {
        bits(self.addr).1
    }

    fn mask(&self) -> u128 {
        let w = self.width();
        let all = if w == 32 { u32::MAX as u128 } else { u128::MAX };
        if self.prefix == 0 {
            0
        } else {
            all & !((1u128 << (w - self.prefix)) - 1)
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && bits(ip).0 & self.mask() == bits(self.addr).0
    }

    pub fn overlaps(&self, o: &Cidr) -> bool {
        self.contains(o.addr) || o.contains(self.addr)
    }

    /// The address `n` past the network's own, if it lies inside (and is not the broadcast
    /// address of an IPv4 subnet).
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let host_bits = self.width() - self.prefix;
        let size = if host_bits >= 127 {
            u128::MAX
        } else {
            1u128 << host_bits
        };
        let last = if self.addr.is_ipv4() { size - 1 } else { size };
        (n < last).then(|| from_bits(bits(self.addr).0 + n, self.addr.is_ipv4()))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reduces_and_compares() {
        let c = Cidr::parse("172.17.3.4/16").unwrap();
        assert_eq!(c.to_string(), "172.17.0.0/16");
        assert!(c.contains("172.17.255.1".parse().unwrap()));
        assert!(!c.contains("172.18.0.1".parse().unwrap()));
        assert!(c.overlaps(&Cidr::parse("172.17.5.0/24").unwrap()));
        assert!(c.overlaps(&Cidr::parse("172.0.0.0/8").unwrap()));
        assert!(!c.overlaps(&Cidr::parse("172.18.0.0/16").unwrap()));
        assert_eq!(c.nth(1), Some("172.17.0.1".parse().unwrap()));
        assert_eq!(c.nth(65534), Some("172.17.255.254".parse().unwrap()));
        assert_eq!(c.nth(65535), None);
        let v6 = Cidr::parse("fd00:1::5/64").unwrap();
        assert_eq!(v6.to_string(), "fd00:1::/64");
        assert_eq!(v6.nth(2), Some("fd00:1::2".parse().unwrap()));
        assert!(!v6.overlaps(&c));
        assert_eq!(
            Cidr::parse("10.0.0.0/33"),
            Err(CidrError::Prefix {
                subnet: "10.0.0.0/33".into(),
                max: 32
            })
        );
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(Cidr::parse("x/8").is_err());
        assert_eq!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .nth(5)
                .unwrap()
                .to_string(),
            "0.0.0.5"
        );
    }
}
