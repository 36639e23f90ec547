//! One container on bridge networks: its network namespace (a file under the run dir,
//! [`super::netns`]), the addresses and host ports it leases, and netavark's setup of
//! both; undone by [`teardown`], exactly once, by whoever cleans up after the container
//! (a failed run, its monitor at the end, `rm`, or a command that finds its monitor dead).
//!
//! What was set up is written to DIR/network.json before netavark runs, so that a setup
//! cut short is torn down too, and is removed last; DIR/network.lock orders the cleaners.
//! It is a file of its own rather than a field of container.json: the monitor and the
//! commands rewrite container.json at any time, this one has one writer at a time.
//!
//! Rootless, netavark works inside the user's rootless network namespace
//! ([`super::rootless_netns`], taken by the setup and let go by the teardown) and the
//! published ports are relayed by [`super::forward`] instead of netavark's rules.
//!
//! Run-dir layout ([`run_dir`], /run/husk-engine-net for root): `netns/ID`,
//! `leases/BRIDGE/ADDRESS` (addresses, per bridge interface: stores sharing one default
//! bridge in one namespace share its addresses), `ports/PROTO-PORT` (host ports), each
//! lease holding its container's directory; `netavark/HASH` per store root (aardvark's
//! configuration); `netavark.lock`, held around every netavark run (bridges are made and
//! removed by whichever setup comes first or teardown last).

use super::cidr::Cidr;
use super::netavark::Netavark;
use super::ports::{self, PortMapping};
use super::store::{NetworkDef, Networks};
use super::NetworkError;
use crate::os::{IoContext, IoError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const STATE: &str = "network.json";

/// A network a container asks to be on, with its options there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    pub network: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ip: Option<IpAddr>,
    #[serde(default)]
    pub mac: Option<String>,
}

/// The container on one network, as netavark set it up.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Endpoint {
    pub network: String,
    pub network_id: String,
    pub interface: String,
    pub ip: Option<IpAddr>,
    pub prefix_len: u8,
    pub gateway: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    pub ipv6_prefix_len: u8,
    pub ipv6_gateway: Option<IpAddr>,
    pub mac: String,
    pub aliases: Vec<String>,
}

/// What was set up for one container (DIR/network.json).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Attachment {
    pub netns: PathBuf,
    /// The pid file of the process holding `netns` (then its /proc/PID/ns/net: a build's
    /// RUN step, see build/net.rs), which is neither made nor removed here and is valid
    /// only while that process lives; None: `netns` is a namespace file of ours.
    #[serde(default)]
    pub held_by: Option<PathBuf>,
    /// netavark's runtime directory for this container's store.
    pub config: PathBuf,
    /// The options netavark was given (its teardown takes the same).
    pub options: Value,
    /// Lease files this container holds.
    pub leases: Vec<PathBuf>,
    pub endpoints: Vec<Endpoint>,
    /// Published ports, with the host ports picked.
    pub ports: Vec<PortMapping>,
    /// aardvark-dns's addresses and search domains, on networks with DNS.
    pub dns_servers: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    /// Rootless: the user's rootless network namespace, where netavark ran.
    #[serde(default)]
    pub host_netns: Option<PathBuf>,
}

/// What to set up.
pub struct Request<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub networks: &'a [Wanted],
    pub ports: &'a [PortMapping],
    /// The pid file of a process whose network namespace to set up, instead of a
    /// namespace file made for the container.
    pub held_by: Option<&'a Path>,
}

/// Beside the runtime's state root (/run/husk-engine-net), not in it: everything in
/// that one is a container's state.
pub fn run_dir() -> PathBuf {
    let s = crate::record::state_root();
    let name = s
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    s.with_file_name(format!("{name}-net"))
}

/// The container's network namespace file (its spec joins it by this path).
pub fn netns_path(id: &str) -> PathBuf {
    run_dir().join("netns").join(id)
}

/// netavark's runtime directory for the store at `root` (aardvark-dns keeps one file per
/// network there: network names are a store's own).
fn config_dir(root: &Path) -> PathBuf {
    let abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let d = husk_image::digest::Digest::of(abs.as_os_str().as_encoded_bytes());
    run_dir().join("netavark").join(&d.hex()[..16])
}

/// The network namespace of the live process a pid file names.
fn held_netns(pid_file: &Path) -> Option<PathBuf> {
    crate::os::live_pid(pid_file).map(|pid| PathBuf::from(format!("/proc/{pid}/ns/net")))
}

/// What was set up for the container in `dir`, if anything is.
pub fn load(dir: &Path) -> Option<Attachment> {
    let data = std::fs::read(dir.join(STATE)).ok()?;
    serde_json::from_slice(&data).ok()
}

fn save(dir: &Path, a: &Attachment) -> Result<(), IoError> {
    let p = dir.join(STATE);
    let tmp = dir.join(".network.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(a).unwrap())
        .and_then(|()| std::fs::rename(&tmp, &p))
        .ctx("writing", &p)
}

/// Take the lease `path` for the container in `owner`: false when another container holds
/// it. A lease whose container directory is gone is stale and taken over.
fn take(path: &Path, owner: &Path) -> Result<bool, IoError> {
    use std::io::Write;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).ctx("creating", d)?;
    }
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => {
                f.write_all(owner.as_os_str().as_encoded_bytes())
                    .ctx("writing", path)?;
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(path).unwrap_or_default();
                if holder.is_empty() || Path::new(&holder).exists() {
                    return Ok(false);
                }
                let _ = std::fs::remove_file(path);
            }
            Err(e) => return Err(e).ctx("creating", path),
        }
    }
    Ok(false)
}

/// The container holding the lease `path` (its directory's name: the id).
fn holder(path: &Path) -> String {
    let h = std::fs::read_to_string(path).unwrap_or_default();
    let id = Path::new(&h)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    id.chars().take(12).collect()
}

/// An address of `subnet` for the container: `want`, else the first free one.
fn lease_address(
    a: &mut Attachment,
    dir: &Path,
    def: &NetworkDef,
    subnet: Cidr,
    gateway: Option<IpAddr>,
    want: Option<IpAddr>,
) -> Result<IpAddr, NetworkError> {
    let leases = run_dir().join("leases").join(&def.network_interface);
    let mut try_one = |ip: IpAddr| -> Result<bool, NetworkError> {
        let p = leases.join(ip.to_string());
        if take(&p, dir)? {
            a.leases.push(p);
            return Ok(true);
        }
        Ok(false)
    };
    if let Some(ip) = want {
        if !subnet.contains(ip) || Some(ip) == gateway || subnet.nth(0) == Some(ip) {
            return Err(NetworkError::IpNotFree {
                ip,
                network: def.name.clone(),
                subnet,
            });
        }
        if !try_one(ip)? {
            let p = leases.join(ip.to_string());
            return Err(NetworkError::AddressInUse {
                ip,
                container: holder(&p),
            });
        }
        return Ok(ip);
    }
    for n in 2.. {
        let Some(ip) = subnet.nth(n) else { break };
        if Some(ip) == gateway {
            continue;
        }
        if try_one(ip)? {
            return Ok(ip);
        }
    }
    Err(NetworkError::Exhausted(def.name.clone()))
}

/// A host port for `m` (a free one when it asks for none), leased; why not.
fn lease_port(
    a: &mut Attachment,
    dir: &Path,
    m: &PortMapping,
) -> Result<PortMapping, NetworkError> {
    let leases = run_dir().join("ports");
    let lease = |port: u16| leases.join(format!("{}-{port}", m.protocol));
    let in_use = |port: u16, why: String| NetworkError::PortInUse {
        port: format!(
            "{}{port}/{}",
            m.host_ip.map(|i| format!("{i}:")).unwrap_or_default(),
            m.protocol
        ),
        why,
    };
    if m.host_port != 0 {
        let p = lease(m.host_port);
        if !take(&p, dir)? {
            return Err(in_use(
                m.host_port,
                format!("published by container {}", holder(&p)),
            ));
        }
        a.leases.push(p);
        if let Err(e) = ports::bindable(m.host_ip, m.host_port, m.protocol) {
            return Err(in_use(m.host_port, e.to_string()));
        }
        return Ok(m.clone());
    }
    for _ in 0..100 {
        let port = ports::bindable(m.host_ip, 0, m.protocol)
            .map_err(|e| in_use(0, format!("no free port: {e}")))?;
        let p = lease(port);
        if take(&p, dir)? {
            a.leases.push(p);
            return Ok(PortMapping {
                host_port: port,
                ..m.clone()
            });
        }
    }
    Err(in_use(0, "no free port".into()))
}

/// The container `id` on network `def` as interface eth`i`: its addresses leased (into
/// `a`), its endpoint, and netavark's per-network options.
fn endpoint(
    a: &mut Attachment,
    dir: &Path,
    id: &str,
    i: usize,
    w: &Wanted,
    def: &NetworkDef,
) -> Result<(Endpoint, Value), NetworkError> {
    let mut ips = Vec::new();
    let mut e = Endpoint {
        network: def.name.clone(),
        network_id: def.id.clone(),
        interface: format!("eth{i}"),
        ..Default::default()
    };
    for (subnet, gw) in def.cidrs() {
        let gw = gw.or_else(|| subnet.nth(1));
        let want = w.ip.filter(|ip| ip.is_ipv4() == subnet.addr.is_ipv4());
        let ip = lease_address(a, dir, def, subnet, gw, want)?;
        ips.push(ip.to_string());
        if ip.is_ipv4() {
            (e.ip, e.prefix_len, e.gateway) = (Some(ip), subnet.prefix, gw);
        } else {
            (e.ipv6, e.ipv6_prefix_len, e.ipv6_gateway) = (Some(ip), subnet.prefix, gw);
        }
    }
    if let Some(ip) = w.ip.filter(|ip| !ips.contains(&ip.to_string())) {
        return Err(NetworkError::IpNotInSubnet {
            ip,
            network: def.name.clone(),
        });
    }
    // Names aardvark-dns answers for, besides the container's: its aliases and short id
    // (docker's).
    e.aliases = w.aliases.clone();
    if def.dns_enabled {
        e.aliases.push(id[..12.min(id.len())].to_string());
    }
    let mut n = json!({
        "static_ips": ips,
        "interface_name": e.interface,
        "aliases": e.aliases,
    });
    if let Some(m) = &w.mac {
        n["static_mac"] = m.clone().into();
    }
    Ok((e, n))
}

/// netavark's answer for network `e.network` into the endpoint (its MAC) and `a` (DNS).
fn take_answer(a: &mut Attachment, e: &mut Endpoint, answer: &Value) {
    let n = &answer[&e.network];
    if let Some(mac) = n["interfaces"][&e.interface]["mac_address"].as_str() {
        e.mac = mac.to_string();
    }
    for s in n["dns_server_ips"].as_array().into_iter().flatten() {
        if let Some(ip) = s.as_str().and_then(|s| s.parse().ok()) {
            if !a.dns_servers.contains(&ip) {
                a.dns_servers.push(ip);
            }
        }
    }
    for s in n["dns_search_domains"].as_array().into_iter().flatten() {
        if let Some(d) = s.as_str().filter(|d| !a.dns_search.iter().any(|x| x == d)) {
            a.dns_search.push(d.to_string());
        }
    }
}

/// `network connect`: the running container in `dir` (on bridge networks already: its
/// namespace exists) on one network more, as the next ethN. Undone if netavark fails.
pub fn connect_more(networks: &Networks, dir: &Path, w: &Wanted) -> Result<Endpoint, NetworkError> {
    let _lock = crate::os::lock_file(&dir.join("network.lock"))?;
    let mut a = load(dir).ok_or(NetworkError::NotAttached)?;
    let def = networks.get(&w.network)?;
    if a.endpoints.iter().any(|e| e.network_id == def.id) {
        return Err(NetworkError::AlreadyOn(def.name.clone()));
    }
    let i = (0..).find(|i| !a.endpoints.iter().any(|e| e.interface == format!("eth{i}")));
    let id = a.options["container_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let leased = a.leases.len();
    let (mut e, n) = match endpoint(&mut a, dir, &id, i.unwrap(), w, &def) {
        Ok(x) => x,
        Err(err) => {
            for l in &a.leases[leased..] {
                let _ = std::fs::remove_file(l);
            }
            return Err(err);
        }
    };
    let one = json!({
        "container_id": id,
        "container_name": a.options["container_name"],
        "networks": {&def.name: n},
        "network_info": {&def.name: serde_json::to_value(&def).unwrap()},
    });
    // Saved with the new leases before netavark runs (a crash leaves nothing untracked).
    save(dir, &a)?;
    let nv = Netavark::new(&a.config)?.inside(a.host_netns.as_deref());
    let answer = {
        let _nv = crate::os::lock_file(&run_dir().join("netavark.lock"))?;
        nv.setup(&a.netns, &one).inspect_err(|_| {
            let _ = nv.teardown(&a.netns, &one);
        })
    };
    let answer = match answer {
        Ok(v) => v,
        Err(err) => {
            for l in a.leases.drain(leased..) {
                let _ = std::fs::remove_file(l);
            }
            save(dir, &a)?;
            return Err(err);
        }
    };
    take_answer(&mut a, &mut e, &answer);
    a.options["networks"][&def.name] = one["networks"][&def.name].clone();
    a.options["network_info"][&def.name] = one["network_info"][&def.name].clone();
    a.endpoints.push(e.clone());
    save(dir, &a)?;
    Ok(e)
}

/// `network disconnect`: the container in `dir` off `network` (a name or id).
pub fn disconnect(networks: &Networks, dir: &Path, network: &str) -> Result<(), NetworkError> {
    let _lock = crate::os::lock_file(&dir.join("network.lock"))?;
    let mut a = load(dir).ok_or(NetworkError::NotAttached)?;
    let id = networks.get(network).map(|d| d.id).unwrap_or_default();
    let Some(pos) = a
        .endpoints
        .iter()
        .position(|e| e.network == network || e.network_id == id)
    else {
        return Err(NetworkError::NotOn(network.to_string()));
    };
    let e = a.endpoints.remove(pos);
    let one = json!({
        "container_id": a.options["container_id"],
        "container_name": a.options["container_name"],
        "networks": {&e.network: a.options["networks"][&e.network]},
        "network_info": {&e.network: a.options["network_info"][&e.network]},
    });
    let torn = {
        let _nv = crate::os::lock_file(&run_dir().join("netavark.lock"))?;
        Netavark::new(&a.config)?
            .inside(a.host_netns.as_deref())
            .teardown(&a.netns, &one)
    };
    // Its address leases: those of its bridge interface.
    let bridge = a.options["network_info"][&e.network]["network_interface"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let leases = run_dir().join("leases").join(bridge);
    a.leases.retain(|l| {
        let mine = l.parent() == Some(leases.as_path());
        if mine {
            let _ = std::fs::remove_file(l);
        }
        !mine
    });
    if let Some(m) = a.options["networks"].as_object_mut() {
        m.remove(&e.network);
    }
    if let Some(m) = a.options["network_info"].as_object_mut() {
        m.remove(&e.network);
    }
    save(dir, &a)?;
    torn
}

/// Set up the container in `dir` on its networks (`root`: the store, whose networks
/// they are). On failure everything made is undone before the error returns.
pub fn connect(
    networks: &Networks,
    root: &Path,
    dir: &Path,
    req: &Request,
) -> Result<Attachment, NetworkError> {
    let lock_path = dir.join("network.lock");
    let _lock = crate::os::lock_file(&lock_path)?;
    // Left from a run that ended without its cleanup (a crash): undo it first.
    if load(dir).is_some() {
        let _ = teardown_locked(dir);
    }
    let defs = req
        .networks
        .iter()
        .map(|w| networks.get(&w.network))
        .collect::<Result<Vec<_>, _>>()?;
    let netns = match req.held_by {
        Some(f) => held_netns(f).ok_or_else(|| {
            NetworkError::Netns(std::io::Error::other(format!(
                "the process of {} is gone",
                f.display()
            )))
        })?,
        None => netns_path(req.id),
    };
    let mut a = Attachment {
        netns,
        held_by: req.held_by.map(Path::to_path_buf),
        config: config_dir(root),
        ..Default::default()
    };
    let rootless = husk_container::rootless::is_unprivileged();
    let made = (|| -> Result<(), NetworkError> {
        let mut nets = serde_json::Map::new();
        let mut info = serde_json::Map::new();
        for (i, (w, def)) in req.networks.iter().zip(&defs).enumerate() {
            let (e, n) = endpoint(&mut a, dir, req.id, i, w, def)?;
            nets.insert(def.name.clone(), n);
            info.insert(def.name.clone(), serde_json::to_value(def).unwrap());
            a.endpoints.push(e);
        }
        for m in req.ports {
            let m = lease_port(&mut a, dir, m)?;
            a.ports.push(m);
        }
        a.options = json!({
            "container_id": req.id,
            "container_name": req.name,
            "networks": nets,
            "network_info": info,
            "port_mappings": a.ports.iter().map(|m| json!({
                "host_ip": m.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                "container_port": m.container_port,
                "host_port": m.host_port,
                "range": 1,
                "protocol": m.protocol.to_string(),
            })).collect::<Vec<_>>(),
        });
        if rootless {
            // Relayed by our forwarder: netavark's rules would see no connection to them.
            a.options["port_mappings"] = json!([]);
        }
        // From here on a teardown knows what to undo.
        save(dir, &a)?;
        if rootless {
            a.host_netns = Some(super::rootless_netns::acquire(req.id, dir)?);
            save(dir, &a)?;
        }
        if a.held_by.is_none() {
            super::netns::create(&a.netns)?;
        }
        let answer = {
            let _nv = crate::os::lock_file(&run_dir().join("netavark.lock"))?;
            Netavark::new(&a.config)?
                .inside(a.host_netns.as_deref())
                .setup(&a.netns, &a.options)?
        };
        let mut endpoints = std::mem::take(&mut a.endpoints);
        for e in &mut endpoints {
            take_answer(&mut a, e, &answer);
        }
        a.endpoints = endpoints;
        save(dir, &a)?;
        if let Some(host) = &a.host_netns {
            let first = a.endpoints.first();
            if let Some(target) = first.and_then(|e| e.ip.or(e.ipv6)) {
                super::forward::start(dir, host, &a.ports, target)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = made {
        if dir.join(STATE).exists() {
            let _ = teardown_locked(dir);
        } else {
            for l in &a.leases {
                let _ = std::fs::remove_file(l);
            }
        }
        return Err(e);
    }
    Ok(a)
}

/// Undo what [`connect`] set up for the container in `dir`; nothing when nothing is (so
/// every cleaner may call it). netavark's failure is reported after everything else of
/// ours is removed anyway: a namespace that is gone has nothing left to tear down.
pub fn teardown(dir: &Path) -> Result<(), NetworkError> {
    if !dir.join(STATE).exists() {
        return Ok(());
    }
    let _lock = crate::os::lock_file(&dir.join("network.lock"))?;
    teardown_locked(dir)
}

fn teardown_locked(dir: &Path) -> Result<(), NetworkError> {
    let Some(a) = load(dir) else {
        let _ = std::fs::remove_file(dir.join(STATE));
        return Ok(());
    };
    super::forward::stop(dir);
    let mut result = Ok(());
    // Rootless: a rootless namespace that is gone took the bridge side with it.
    let host_gone = a
        .host_netns
        .as_deref()
        .is_some_and(|h| !super::netns::is_bound(h));
    // A held namespace only while its process is the one that held it: a reused pid's
    // /proc/PID/ns/net is someone else's network (maybe the host's).
    let live = match &a.held_by {
        Some(f) => held_netns(f).as_ref() == Some(&a.netns),
        None => a.netns.exists(),
    };
    if live && !host_gone {
        let torn = crate::os::lock_file(&run_dir().join("netavark.lock"))
            .map_err(NetworkError::from)
            .and_then(|_nv| {
                Netavark::new(&a.config)?
                    .inside(a.host_netns.as_deref())
                    .teardown(&a.netns, &a.options)
            });
        result = torn;
    }
    if a.held_by.is_none() {
        super::netns::remove(&a.netns);
    }
    for l in &a.leases {
        let _ = std::fs::remove_file(l);
    }
    let _ = std::fs::remove_file(dir.join(STATE));
    if a.host_netns.is_some() {
        let id = a.options["container_id"].as_str().unwrap_or_default();
        super::rootless_netns::release(id);
    }
    result
}

/// The networks the containers of `root` are attached to now: network name → container
/// names.
pub fn users(root: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut m = std::collections::BTreeMap::<String, Vec<String>>::new();
    for r in crate::record::list(root) {
        if let Some(a) = load(&r.dir) {
            for e in a.endpoints {
                m.entry(e.network).or_default().push(r.name().to_string());
            }
        }
    }
    m
}
