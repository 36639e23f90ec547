//! The engine's networks: one file per network, ROOT/networks/NAME.json, in netavark's own
//! network format (name, id, driver, bridge interface, subnets, internal, dns_enabled), so
//! that a definition is handed to netavark as it is stored. The default network `bridge`
//! (docker's name; no DNS on it, as docker) is written on first use, on 172.17.0.0/16 or
//! the settings' `bridge_subnet`. Subnets of new networks are picked so that they overlap
//! neither another network nor a route of the namespace husk runs in.

use super::cidr::Cidr;
use super::NetworkError;
use crate::os::{IoContext, IoError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// docker's name for the default network.
pub const DEFAULT: &str = "bridge";
/// The default network's bridge interface (docker's is docker0, podman's podman0).
const DEFAULT_INTERFACE: &str = "husk0";
const DEFAULT_SUBNET: &str = "172.17.0.0/16";

/// One subnet of a network, as netavark reads it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Subnet {
    pub subnet: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// A network, in netavark's format (what `network_info` of its setup input holds).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkDef {
    pub name: String,
    pub id: String,
    pub driver: String,
    pub network_interface: String,
    pub created: String,
    pub subnets: Vec<Subnet>,
    pub ipv6_enabled: bool,
    pub internal: bool,
    pub dns_enabled: bool,
    pub ipam_options: serde_json::Value,
}

impl NetworkDef {
    /// Its subnets, parsed (they were checked when the network was made).
    pub fn cidrs(&self) -> Vec<(Cidr, Option<std::net::IpAddr>)> {
        self.subnets
            .iter()
            .filter_map(|s| {
                let c = Cidr::parse(&s.subnet).ok()?;
                Some((c, s.gateway.as_deref().and_then(|g| g.parse().ok())))
            })
            .collect()
    }
}

/// `network create`'s options, as given.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    /// No route out of the bridge: no masquerade, no gateway for the containers.
    pub internal: bool,
    /// An IPv6 subnet too.
    pub ipv6: bool,
}

/// The networks of one store root.
pub struct Networks {
    dir: PathBuf,
    /// The settings' subnet for the default network.
    default_subnet: Option<String>,
}

/// A name a network may have: docker's rule, and not one of the modes.
pub fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && n.len() <= 64
        && !matches!(n, "none" | "host" | "default" | "slirp4netns" | "pasta")
}

fn read_def(path: &Path) -> Result<NetworkDef, NetworkError> {
    let data = std::fs::read(path).ctx("reading", path)?;
    serde_json::from_slice(&data).map_err(|e| NetworkError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The destinations of the routes of the network namespace we run in (the default route
/// left out: every subnet "overlaps" it).
fn routes() -> Vec<Cidr> {
    routes_but(None)
}

/// [`routes`] but those through interface `but`.
fn routes_but(but: Option<&str>) -> Vec<Cidr> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if but.is_some() && f.first().copied() == but {
                return None;
            }
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // /proc/net/route prints them in host (little-endian) order.
            let dest = std::net::Ipv4Addr::from(u32::from_be(dest));
            let prefix = u32::from_be(mask).leading_ones() as u8;
            (prefix > 0).then_some(Cidr {
                addr: dest.into(),
                prefix,
            })
        })
        .collect()
}

impl Networks {
    pub fn new(root: &Path, default_subnet: Option<String>) -> Networks {
        Networks {
            dir: root.join("networks"),
            default_subnet,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Held while networks are made or removed (names, subnets, interfaces stay unique).
    pub(crate) fn lock(&self) -> Result<std::fs::File, IoError> {
        std::fs::create_dir_all(&self.dir).ctx("creating", &self.dir)?;
        crate::os::lock_file(&self.dir.join(".lock"))
    }

    /// Every network, the default one first (made if missing), then by name.
    pub fn list(&self) -> Result<Vec<NetworkDef>, NetworkError> {
        let mut v = vec![self.get(DEFAULT)?];
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .ctx("reading", &self.dir)?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_suffix(".json").map(String::from)
            })
            .filter(|n| n != DEFAULT)
            .collect();
        names.sort();
        for n in names {
            v.push(read_def(&self.path(&n))?);
        }
        Ok(v)
    }

    /// The network `what` (a name, an id or a unique id prefix); the default one is made
    /// on first use.
    pub fn get(&self, what: &str) -> Result<NetworkDef, NetworkError> {
        if what == DEFAULT {
            let p = self.path(DEFAULT);
            if !p.exists() {
                let _lock = self.lock()?;
                if !p.exists() {
                    self.make_default()?;
                }
            }
        }
        let p = self.path(what);
        if valid_name(what) && p.exists() {
            return read_def(&p);
        }
        let by_id: Vec<NetworkDef> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| read_def(&e.path()).ok())
                    .filter(|d| what.len() >= 3 && d.id.starts_with(what))
                    .collect()
            })
            .unwrap_or_default();
        match <[NetworkDef; 1]>::try_from(by_id) {
            Ok([d]) => Ok(d),
            Err(_) => Err(NetworkError::NoSuchNetwork(what.to_string())),
        }
    }

    fn make_default(&self) -> Result<NetworkDef, NetworkError> {
        let subnet = match &self.default_subnet {
            Some(s) => Cidr::parse(s).map_err(NetworkError::DefaultSubnet)?,
            None => {
                let want = Cidr::parse(DEFAULT_SUBNET).unwrap();
                // The default bridge of another store in this namespace is ours too (one
                // husk0, its addresses shared: network/setup.rs), not a subnet taken.
                let taken = routes_but(Some(DEFAULT_INTERFACE));
                if taken.iter().any(|r| r.overlaps(&want)) {
                    self.free_subnet(&[])?
                } else {
                    want
                }
            }
        };
        self.write_new(
            DEFAULT,
            DEFAULT_INTERFACE.to_string(),
            vec![(subnet, None)],
            false,
            false,
        )
    }

    /// A /16 of 172.18-31 (docker's order), else a /24 of 10.89 (podman's), that overlaps
    /// no network of ours, none in `also`, and no route.
    fn free_subnet(&self, also: &[Cidr]) -> Result<Cidr, NetworkError> {
        let mut taken: Vec<Cidr> = routes();
        taken.extend(also);
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if let Ok(d) = read_def(&e.path()) {
                    taken.extend(d.cidrs().into_iter().map(|(c, _)| c));
                }
            }
        }
        let candidates = (18..32)
            .map(|b| format!("172.{b}.0.0/16"))
            .chain((0..256).map(|c| format!("10.89.{c}.0/24")));
        candidates
            .map(|c| Cidr::parse(&c).unwrap())
            .find(|c| !taken.iter().any(|t| t.overlaps(c)))
            .ok_or(NetworkError::NoFreeSubnet)
    }

    /// `network create`.
    pub fn create(&self, o: &CreateOptions) -> Result<NetworkDef, NetworkError> {
        if !valid_name(&o.name) {
            return Err(NetworkError::BadName(o.name.clone()));
        }
        let _lock = self.lock()?;
        // The default network is made before any other takes its subnet.
        if !self.path(DEFAULT).exists() {
            self.make_default()?;
        }
        if self.path(&o.name).exists() {
            return Err(NetworkError::Exists(o.name.clone()));
        }
        let gateway = o
            .gateway
            .as_deref()
            .map(|g| {
                g.parse::<std::net::IpAddr>()
                    .map_err(|_| NetworkError::Gateway(g.to_string()))
            })
            .transpose()?;
        let v4 = match &o.subnet {
            Some(s) => {
                let c = Cidr::parse(s).map_err(NetworkError::Subnet)?;
                if c.addr.is_ipv6() {
                    return Err(NetworkError::Ipv6Subnet(s.clone()));
                }
                if c.prefix > 30 {
                    return Err(NetworkError::SubnetTooSmall(s.clone()));
                }
                for d in self.list()? {
                    if let Some((t, _)) = d.cidrs().into_iter().find(|(t, _)| t.overlaps(&c)) {
                        return Err(NetworkError::Overlap {
                            subnet: c.to_string(),
                            network: d.name,
                            other: t.to_string(),
                        });
                    }
                }
                c
            }
            None => {
                if gateway.is_some() {
                    return Err(NetworkError::GatewayNeedsSubnet);
                }
                self.free_subnet(&[])?
            }
        };
        if let Some(g) = gateway {
            if !v4.contains(g) || v4.nth(0) == Some(g) {
                return Err(NetworkError::GatewayOutside {
                    gateway: g,
                    subnet: v4,
                });
            }
        }
        let mut subnets = vec![(v4, gateway)];
        if o.ipv6 {
            // A unique-local /64 per network ("Husk" in the global id), numbered as the
            // networks are.
            let n = std::fs::read_dir(&self.dir)
                .map(|rd| rd.count())
                .unwrap_or(0);
            let v6 = (0..=0xffffu32)
                .map(|i| Cidr::parse(&format!("fd48:7573:6b{:02x}:{:x}::/64", n % 256, i)).unwrap())
                .find(|c| {
                    !self
                        .list()
                        .unwrap_or_default()
                        .iter()
                        .any(|d| d.cidrs().iter().any(|(t, _)| t.overlaps(c)))
                })
                .ok_or(NetworkError::NoFreeSubnet)?;
            subnets.push((v6, None));
        }
        let interface = (1..)
            .map(|i| format!("husk{i}"))
            .find(|i| {
                !self
                    .list()
                    .unwrap_or_default()
                    .iter()
                    .any(|d| &d.network_interface == i)
            })
            .unwrap();
        self.write_new(&o.name, interface, subnets, o.internal, true)
    }

    fn write_new(
        &self,
        name: &str,
        interface: String,
        subnets: Vec<(Cidr, Option<std::net::IpAddr>)>,
        internal: bool,
        dns: bool,
    ) -> Result<NetworkDef, NetworkError> {
        let def = NetworkDef {
            name: name.to_string(),
            id: crate::run::new_id()?,
            driver: "bridge".into(),
            network_interface: interface,
            created: husk_oci::time::rfc3339_now(),
            ipv6_enabled: subnets.iter().any(|(c, _)| c.addr.is_ipv6()),
            subnets: subnets
                .into_iter()
                .map(|(c, g)| Subnet {
                    subnet: c.to_string(),
                    gateway: Some(g.or_else(|| c.nth(1)).unwrap().to_string()),
                })
                .collect(),
            internal,
            dns_enabled: dns,
            ipam_options: serde_json::json!({"driver": "host-local"}),
        };
        std::fs::create_dir_all(&self.dir).ctx("creating", &self.dir)?;
        let p = self.path(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&def).unwrap())
            .and_then(|()| std::fs::rename(&tmp, &p))
            .ctx("writing", &p)?;
        Ok(def)
    }

    /// `network rm`: refused for the default network and while a container is attached
    /// (`in_use` names them).
    pub fn remove(
        &self,
        what: &str,
        in_use: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<String, NetworkError> {
        if what == DEFAULT {
            return Err(NetworkError::RemoveDefault);
        }
        let _lock = self.lock()?;
        let def = self.get(what)?;
        if def.name == DEFAULT {
            return Err(NetworkError::RemoveDefault);
        }
        let users = in_use(&def.name);
        if !users.is_empty() {
            return Err(NetworkError::InUse {
                network: def.name,
                containers: users.join(", "),
            });
        }
        let p = self.path(&def.name);
        std::fs::remove_file(&p).ctx("removing", &p)?;
        Ok(def.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_subnets_and_the_default_network() {
        let root = std::env::temp_dir().join(format!("husk-networks-{}", std::process::id()));
        let n = Networks::new(&root, Some("10.123.0.0/16".into()));
        let d = n.get(DEFAULT).unwrap();
        assert_eq!(d.subnets[0].subnet, "10.123.0.0/16");
        assert_eq!(d.subnets[0].gateway.as_deref(), Some("10.123.0.1"));
        assert!(!d.dns_enabled);
        let opts = |name: &str, subnet: Option<&str>| CreateOptions {
            name: name.into(),
            subnet: subnet.map(String::from),
            ..Default::default()
        };
        let a = n.create(&opts("a", None)).unwrap();
        assert!(a.dns_enabled);
        assert_eq!(a.network_interface, "husk1");
        let b = n.create(&opts("b", Some("10.124.0.0/24"))).unwrap();
        assert_eq!(b.network_interface, "husk2");
        assert_ne!(a.subnets[0].subnet, b.subnets[0].subnet);
        let e = n.create(&opts("c", Some("10.123.5.0/24"))).unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
        assert!(matches!(
            n.create(&opts("a", None)),
            Err(NetworkError::Exists(_))
        ));
        assert!(n.create(&opts("host", None)).is_err());
        assert!(n.create(&opts("-x", None)).is_err());
        let names: Vec<String> = n.list().unwrap().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["bridge", "a", "b"]);
        assert_eq!(n.get(&a.id[..12]).unwrap().name, "a");
        assert!(n
            .remove("b", &|_| vec!["web".into()])
            .unwrap_err()
            .to_string()
            .contains("web"));
        n.remove("b", &|_| vec![]).unwrap();
        assert!(n.remove(DEFAULT, &|_| vec![]).is_err());
        assert!(matches!(n.get("b"), Err(NetworkError::NoSuchNetwork(_))));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
