//! Published ports: `-p [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]` (ports or equal-length
//! ranges), `-P` (every port the image exposes, each on a free host port), as netavark's
//! `port_mappings`. A host port is the machine's: before netavark forwards it, husk checks
//! that no socket listens there and takes a lease on it (a file per protocol and port in
//! the engine's run dir), so that two containers cannot both publish it.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One published port (host port 0: a free one, picked at start).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Proto,
}

impl PortMapping {
    /// docker's "80/tcp".
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol)
    }
}

/// What is wrong with a `-p` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("unknown protocol {0:?} (tcp or udp)")]
    Protocol(String),
    #[error("expected [IPv6]:HOST_PORT:CONTAINER_PORT")]
    Ipv6Form,
    #[error("too many colons (IPv6 addresses go in [])")]
    Colons,
    #[error("invalid host address {0:?}")]
    HostAddress(String),
    /// `side` is "host" or "container".
    #[error("invalid {side} port {port:?}")]
    Port { side: &'static str, port: String },
    #[error("invalid {side} port range {range:?}")]
    Range { side: &'static str, range: String },
    #[error("the host and container port ranges differ in length")]
    Lengths,
}

/// A `-p` value that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("-p {value}: {problem}")]
pub struct PublishError {
    pub value: String,
    pub problem: PortError,
}

fn port_range(s: &str, side: &'static str) -> Result<(u16, u16), PortError> {
    let one = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| PortError::Port {
                side,
                port: p.to_string(),
            })
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if b < a {
                return Err(PortError::Range {
                    side,
                    range: s.to_string(),
                });
            }
            Ok((a, b))
        }
        None => one(s).map(|p| (p, p)),
    }
}

/// One `-p` value, as one mapping per port.
pub fn parse(s: &str) -> Result<Vec<PortMapping>, PublishError> {
    mappings(s).map_err(|problem| PublishError {
        value: s.to_string(),
        problem,
    })
}

fn mappings(s: &str) -> Result<Vec<PortMapping>, PortError> {
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((r, "tcp")) => (r, Proto::Tcp),
        Some((r, "udp")) => (r, Proto::Udp),
        Some((_, p)) => return Err(PortError::Protocol(p.to_string())),
        None => (s, Proto::Tcp),
    };
    // [IP:][HOST:]CONTAINER, the IP possibly an IPv6 one in brackets.
    let (ip, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let (ip, after) = r.split_once("]:").ok_or(PortError::Ipv6Form)?;
            (Some(ip), after)
        }
        None => match rest.matches(':').count() {
            0 | 1 => (None, rest),
            2 => {
                let (ip, after) = rest.split_once(':').unwrap();
                (Some(ip), after)
            }
            _ => return Err(PortError::Colons),
        },
    };
    let host_ip = ip
        .map(|i| {
            i.parse::<IpAddr>()
                .map_err(|_| PortError::HostAddress(i.to_string()))
        })
        .transpose()?;
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (Some(h).filter(|h| !h.is_empty()), c),
        None => (None, rest),
    };
    let (c0, c1) = port_range(container, "container")?;
    let host = host.map(|h| port_range(h, "host")).transpose()?;
    if let Some((h0, h1)) = host {
        if h1 - h0 != c1 - c0 {
            return Err(PortError::Lengths);
        }
    }
    Ok((c0..=c1)
        .map(|c| PortMapping {
            host_ip,
            host_port: host.map_or(0, |(h0, _)| h0 + (c - c0)),
            container_port: c,
            protocol,
        })
        .collect())
}

/// `-P`: the image's ExposedPorts ("80/tcp", "53/udp", "8080") on free host ports, those
/// already published by -p left out.
pub fn exposed(exposed: &[String], published: &[PortMapping]) -> Vec<PortMapping> {
    exposed
        .iter()
        .filter_map(|e| {
            let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            let protocol = match proto {
                "udp" => Proto::Udp,
                "tcp" => Proto::Tcp,
                _ => return None,
            };
            let container_port = p.parse().ok().filter(|p| *p > 0)?;
            let m = PortMapping {
                host_ip: None,
                host_port: 0,
                container_port,
                protocol,
            };
            (!published.iter().any(|o| o.key() == m.key())).then_some(m)
        })
        .collect()
}

/// Whether a socket could be bound at `ip`:`port` now (none listens there). SO_REUSEADDR:
/// connections in TIME_WAIT are no conflict.
pub fn bindable(ip: Option<IpAddr>, port: u16, proto: Proto) -> std::io::Result<u16> {
    let ip = ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let addr = std::net::SocketAddr::new(ip, port);
    match proto {
        Proto::Tcp => {
            let l = std::net::TcpListener::bind(addr)?;
            l.local_addr().map(|a| a.port())
        }
        Proto::Udp => {
            let s = std::net::UdpSocket::bind(addr)?;
            s.local_addr().map(|a| a.port())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> PortMapping {
        let mut v = parse(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.pop().unwrap()
    }

    #[test]
    fn parses_docker_forms() {
        let m = one("8080:80");
        assert_eq!(
            (m.host_ip, m.host_port, m.container_port, m.protocol),
            (None, 8080, 80, Proto::Tcp)
        );
        let m = one("127.0.0.1:5353:53/udp");
        assert_eq!(m.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            (m.host_port, m.container_port, m.protocol),
            (5353, 53, Proto::Udp)
        );
        let m = one("127.0.0.1::80");
        assert_eq!((m.host_port, m.container_port), (0, 80));
        assert_eq!(one("80").host_port, 0);
        let m = one("[::1]:8080:80");
        assert_eq!(m.host_ip, Some("::1".parse().unwrap()));
        let r = parse("9000-9002:90-92/udp").unwrap();
        assert_eq!(
            r.iter()
                .map(|m| (m.host_port, m.container_port))
                .collect::<Vec<_>>(),
            [(9000, 90), (9001, 91), (9002, 92)]
        );
        assert_eq!(parse("90-91").unwrap().len(), 2);
        for bad in [
            "",
            "x",
            "0",
            "70000",
            "80/sctp",
            "1-2:80",
            "a:b:c:d",
            "nope:80:80",
            "9-8",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(m.key(), "80/tcp");
    }

    #[test]
    fn exposed_ports_skip_published_ones() {
        let published = parse("8080:80").unwrap();
        let e = exposed(
            &[
                "80/tcp".into(),
                "53/udp".into(),
                "8443".into(),
                "x/tcp".into(),
            ],
            &published,
        );
        assert_eq!(
            e.iter().map(PortMapping::key).collect::<Vec<_>>(),
            ["53/udp", "8443/tcp"]
        );
        assert!(e.iter().all(|m| m.host_port == 0));
    }
}
