//! The engine's network operations (`network create|ls|inspect|rm|prune`) and a
//! container's network setup as `run` and `start` do it, over [`crate::network`]'s store
//! (definitions in netavark's format) and per-container setup (netavark, leases, netns).

use crate::engine::Engine;
use crate::error::Result;
use crate::etc_files::{self, EtcInput};
use crate::network::ports::PortMapping;
use crate::network::setup::{self, Attachment, Request, Wanted};
use crate::network::store::{CreateOptions, NetworkDef, Networks};
use crate::network::Network;
use std::net::IpAddr;
use std::path::Path;

/// One network and the containers on it now (`network inspect`).
#[derive(Clone, Debug)]
pub struct NetworkInfo {
    pub def: NetworkDef,
    /// (container id, name, endpoint) of each container attached.
    pub containers: Vec<(String, String, setup::Endpoint)>,
}

/// What a container's /etc files are made from beyond its network (kept in container.json
/// as "etc", so that `start` can write them again once the addresses are known).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EtcRequest {
    pub hostname: String,
    pub name: String,
    pub extra_hosts: Vec<(String, IpAddr)>,
    pub dns: Vec<IpAddr>,
    pub dns_search: Option<Vec<String>>,
}

impl Engine {
    pub(crate) fn networks_store(&self) -> Networks {
        Networks::new(&self.root, self.settings.bridge_subnet.clone())
    }

    /// `network create`.
    pub fn network_create(&self, o: &CreateOptions) -> Result<NetworkDef> {
        Ok(self.networks_store().create(o)?)
    }

    /// `network ls`: every network, the default one first.
    pub fn network_list(&self) -> Result<Vec<NetworkDef>> {
        Ok(self.networks_store().list()?)
    }

    /// `network inspect`.
    pub fn network_inspect(&self, what: &str) -> Result<NetworkInfo> {
        let def = self.networks_store().get(what)?;
        let mut containers = Vec::new();
        for r in crate::record::list(&self.root) {
            if let Some(a) = setup::load(&r.dir) {
                for e in a.endpoints.into_iter().filter(|e| e.network_id == def.id) {
                    containers.push((r.id().to_string(), r.name().to_string(), e));
                }
            }
        }
        Ok(NetworkInfo { def, containers })
    }

    /// `network rm`: refused while a container is on it. Returns its name.
    pub fn network_remove(&self, what: &str) -> Result<String> {
        let users = setup::users(&self.root);
        Ok(self
            .networks_store()
            .remove(what, &|n| users.get(n).cloned().unwrap_or_default())?)
    }

    /// `network prune`: every user-defined network no container is on (names removed).
    pub fn network_prune(&self) -> Result<Vec<String>> {
        let users = setup::users(&self.root);
        let mut removed = Vec::new();
        for d in self.network_list()? {
            if d.name != crate::network::store::DEFAULT && !users.contains_key(&d.name) {
                removed.push(self.networks_store().remove(&d.name, &|_| Vec::new())?);
            }
        }
        Ok(removed)
    }

    /// That the networks exist (rootless too: they live in the user's rootless network
    /// namespace, network/rootless_netns.rs).
    pub(crate) fn check_networks(&self, wanted: &[Wanted]) -> Result<()> {
        let store = self.networks_store();
        for w in wanted {
            store.get(&w.network)?;
        }
        Ok(())
    }

    /// Put the container in `dir` on its networks (bridge mode only; nothing otherwise) and
    /// write its /etc files with what that gave.
    pub(crate) fn connect_container(
        &self,
        dir: &Path,
        id: &str,
        network: &Network,
        wanted: &[Wanted],
        ports: &[PortMapping],
        etc: &EtcRequest,
    ) -> Result<Option<Attachment>> {
        let a = match network {
            Network::Bridge => {
                // Rootless published ports are relayed by a fork of this process
                // (network/forward.rs), which is only sound while it has one thread.
                if husk_container::rootless::is_unprivileged() && !ports.is_empty() {
                    crate::run::single_threaded()?;
                }
                let req = Request {
                    id,
                    name: &etc.name,
                    networks: wanted,
                    ports,
                    held_by: None,
                };
                Some(setup::connect(
                    &self.networks_store(),
                    &self.root,
                    dir,
                    &req,
                )?)
            }
            _ => None,
        };
        self.write_etc(dir, network, etc, a.as_ref())?;
        Ok(a)
    }

    /// The container's /etc/hostname, hosts and resolv.conf.
    pub(crate) fn write_etc(
        &self,
        dir: &Path,
        network: &Network,
        etc: &EtcRequest,
        a: Option<&Attachment>,
    ) -> Result<()> {
        let default_dns = self
            .settings
            .dns
            .iter()
            .map(|d| {
                d.parse::<IpAddr>()
                    .map_err(|_| crate::engine::EngineError::SettingsDns(d.clone()).into())
            })
            .collect::<Result<Vec<_>>>()?;
        let first = a.and_then(|a| a.endpoints.first());
        etc_files::write(
            dir,
            &EtcInput {
                hostname: &etc.hostname,
                name: &etc.name,
                network: network.clone(),
                extra_hosts: &etc.extra_hosts,
                dns: &etc.dns,
                dns_search: etc.dns_search.as_deref(),
                address: first.and_then(|e| e.ip.or(e.ipv6)),
                network_dns: a.map_or(&[], |a| &a.dns_servers),
                network_search: a.map_or(&[], |a| &a.dns_search),
                default_dns: &default_dns,
            },
        )?;
        Ok(())
    }
}

impl Engine {
    /// `port`: the container's published ports while it is on its networks or pasta
    /// forwards them, with the host ports picked for it.
    pub fn container_ports(&self, what: &str) -> Result<Vec<PortMapping>> {
        let r = crate::record::find(&self.root, what)?;
        Ok(crate::network::published(&r.dir))
    }
}

impl Engine {
    /// `network connect`: the running container `what` on `network` too (its aliases
    /// and, optionally, its address there); kept in its record, so that `start` puts it
    /// there again.
    pub fn network_connect(
        &self,
        network: &str,
        what: &str,
        aliases: &[String],
        ip: Option<IpAddr>,
    ) -> Result<()> {
        let r = crate::record::find(&self.root, what)?;
        let w = Wanted {
            network: network.to_string(),
            aliases: aliases.to_vec(),
            ip,
            mac: None,
        };
        let e = setup::connect_more(&self.networks_store(), &r.dir, &w)?;
        let mut fresh = crate::record::Record::load(&r.dir)?;
        let w = Wanted {
            network: e.network,
            ..w
        };
        fresh.meta.networks.push(w);
        Ok(fresh.save()?)
    }

    /// `network disconnect`: the container `what` off `network`, now and at its next start.
    pub fn network_disconnect(&self, network: &str, what: &str) -> Result<()> {
        let r = crate::record::find(&self.root, what)?;
        let store = self.networks_store();
        let name = store
            .get(network)
            .map(|d| d.name)
            .unwrap_or(network.to_string());
        if setup::load(&r.dir).is_some() {
            setup::disconnect(&store, &r.dir, &name)?;
        }
        let mut fresh = crate::record::Record::load(&r.dir)?;
        fresh.meta.networks.retain(|w| w.network != name);
        Ok(fresh.save()?)
    }
}
