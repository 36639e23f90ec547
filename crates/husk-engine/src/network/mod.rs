//! `--network`: a bridge network (root's default: `bridge`; see [`store`], [`setup`]),
//! `none` (a network namespace of its own with only loopback; rootless husk's default),
//! `host` (the host's), `container:NAME` (another running container's namespace, joined
//! through its init's /proc/PID/ns/net: see [`crate::joins`]), or
//! `slirp4netns[:allow_host_loopback=true]`: user-mode networking
//! for outbound traffic without privilege (Debian's slirp4netns), the way rootless podman
//! gives it. slirp4netns runs beside the container (10.0.2.100 inside, gateway 10.0.2.2,
//! DNS 10.0.2.3); the host's loopback stays out of reach unless allowed. Its pid and start
//! time go into the container's directory, and whoever cleans up after the container ends
//! it ([`stop_slirp`]). `pasta[:OPTIONS]`: the same through pasta, which also forwards
//! published ports (see [`pasta`]). Rootless bridge networks live in the user's rootless
//! network namespace ([`rootless_netns`]), their published ports relayed by [`forward`].

pub mod pasta;

pub mod cidr;
pub mod forward;
pub mod netavark;
pub mod netns;
pub mod ports;
pub mod rootless_netns;
pub mod setup;
pub mod store;

use crate::os::{IoContext, IoError, SysError};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

const SLIRP_PID_FILE: &str = "slirp4netns.pid";

/// Starting slirp4netns for a container; networks and their setup.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("no such network: {0}")]
    NoSuchNetwork(String),
    #[error("network {0} already exists")]
    Exists(String),
    #[error("subnet {subnet} overlaps network {network} ({other})")]
    Overlap {
        subnet: String,
        network: String,
        other: String,
    },
    #[error("network {network} is in use by container(s) {containers}")]
    InUse { network: String, containers: String },
    #[error("no free subnet left for a new network: give --subnet")]
    NoFreeSubnet,
    #[error("network {0} has no free address left")]
    Exhausted(String),
    #[error("address {ip} is already in use by container {container}")]
    AddressInUse {
        ip: std::net::IpAddr,
        container: String,
    },
    #[error("port {port} is already in use: {why}")]
    PortInUse { port: String, why: String },
    #[error(
        "invalid network name {0:?}: use letters, digits and _.- (none, host and default are \
         reserved)"
    )]
    BadName(String),
    #[error("--gateway {0:?}: not an address")]
    Gateway(String),
    #[error("--gateway needs --subnet")]
    GatewayNeedsSubnet,
    #[error("--gateway {gateway} is not a host address of {subnet}")]
    GatewayOutside {
        gateway: std::net::IpAddr,
        subnet: cidr::Cidr,
    },
    #[error("--subnet {0}")]
    Subnet(cidr::CidrError),
    /// The engine's configured subnet for the default network.
    #[error("{0}")]
    DefaultSubnet(cidr::CidrError),
    #[error("--subnet {0}: an IPv6 subnet; husk makes one itself with --ipv6")]
    Ipv6Subnet(String),
    #[error("--subnet {0}: too small for a gateway and a container")]
    SubnetTooSmall(String),
    #[error("{} is the default network: it cannot be removed", store::DEFAULT)]
    RemoveDefault,
    #[error("--ip {ip} is not a free host address of network {network} ({subnet})")]
    IpNotFree {
        ip: std::net::IpAddr,
        network: String,
        subnet: cidr::Cidr,
    },
    #[error("--ip {ip} is not in a subnet of network {network}")]
    IpNotInSubnet {
        ip: std::net::IpAddr,
        network: String,
    },
    #[error("the container is already on network {0}")]
    AlreadyOn(String),
    #[error("the container is not on network {0}")]
    NotOn(String),
    #[error("reading {}: {reason}", path.display())]
    Corrupt {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("the container is not running on a bridge network (start it with --network NAME)")]
    NotAttached,
    #[error(transparent)]
    RootlessNetns(#[from] rootless_netns::RootlessNetnsError),
    #[error("netavark not found (install Debian's netavark and aardvark-dns packages)")]
    NetavarkMissing,
    #[error("netavark {op}: {msg}")]
    Netavark { op: &'static str, msg: String },
    #[error("making the container's network namespace: {0}")]
    Netns(std::io::Error),
    #[error(
        "--network slirp4netns needs /dev/net/tun, which this user cannot open ({0}); \
         make it usable (as root: chmod 0666 /dev/net/tun, Debian's default)"
    )]
    NoTun(std::io::Error),
    #[error(
        "--network slirp4netns: slirp4netns not found on PATH (install the slirp4netns package)"
    )]
    SlirpMissing,
    #[error("running slirp4netns: {0}")]
    Spawn(std::io::Error),
    /// What slirp4netns said on its way out ("no output" when nothing).
    #[error("slirp4netns did not configure the network: {0}")]
    NotConfigured(String),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Sys(#[from] SysError),
}

/// A `--network`, `-p`, `--ip`, `--mac-address` or `--network-alias` of `run` that was
/// refused (checked before anything is made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkFlagError {
    #[error(
        "--network {0:?}: use a network's name, none, host, container:NAME, pasta[:OPTIONS] \
         or slirp4netns[:allow_host_loopback=true]"
    )]
    Mode(String),
    #[error(transparent)]
    Publish(#[from] ports::PublishError),
    /// `-p` or `-P` with a network that cannot forward ports.
    #[error(
        "{flag}: --network {network} publishes no ports (ports need a bridge network or pasta)"
    )]
    NoPublishing { flag: &'static str, network: String },
    /// The networks as given, joined by " --network ".
    #[error(
        "--network {0}: none, host, container: and slirp4netns cannot be combined with other \
         networks"
    )]
    Combined(String),
    #[error("--network {0}: given twice")]
    Twice(String),
    #[error("--ip {0:?}: not an IP address")]
    Ip(String),
    #[error("--mac-address {0:?}: not a unicast MAC address (xx:xx:xx:xx:xx:xx)")]
    Mac(String),
    #[error("{flag}: needs a bridge network, not --network {network}")]
    NeedsBridge { flag: &'static str, network: String },
    #[error("--network-alias: aliases are served on user-defined networks only (as docker's)")]
    AliasOnDefault,
    #[error("--network-alias {0:?}: not a valid name")]
    Alias(String),
    #[error("--ip: a chosen address needs a user-defined network (as docker's)")]
    IpOnDefault,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Network {
    None,
    Host,
    Slirp {
        host_loopback: bool,
    },
    /// Another container's network namespace (its name or id as given; its id once run).
    Container(String),
    /// pasta, with the options after `pasta:` passed on.
    Pasta(Vec<String>),
    /// On bridge networks (which ones: the config's `networks`), through netavark.
    Bridge,
}

impl Network {
    /// A mode, or a network's name ([`Network::Bridge`]).
    pub fn parse(s: &str) -> Result<Network, NetworkFlagError> {
        match s {
            "bridge" => Ok(Network::Bridge),
            n if store::valid_name(n) => Ok(Network::Bridge),
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            "slirp4netns" => Ok(Network::Slirp {
                host_loopback: false,
            }),
            "slirp4netns:allow_host_loopback=true" => Ok(Network::Slirp {
                host_loopback: true,
            }),
            "slirp4netns:allow_host_loopback=false" => Ok(Network::Slirp {
                host_loopback: false,
            }),
            n if pasta::parse(n).is_some() => Ok(Network::Pasta(pasta::parse(n).unwrap())),
            n => match n.strip_prefix("container:") {
                Some(c) if !c.is_empty() => Ok(Network::Container(c.to_string())),
                _ => Err(NetworkFlagError::Mode(n.to_string())),
            },
        }
    }

    /// Whether the spec has a network namespace (its own, or one joined by path).
    pub fn own_namespace(&self) -> bool {
        *self != Network::Host
    }
}

/// The form [`Network::parse`] reads (container.json keeps it so).
impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Network::None => f.write_str("none"),
            Network::Host => f.write_str("host"),
            Network::Slirp {
                host_loopback: false,
            } => f.write_str("slirp4netns"),
            Network::Slirp {
                host_loopback: true,
            } => f.write_str("slirp4netns:allow_host_loopback=true"),
            Network::Container(c) => write!(f, "container:{c}"),
            Network::Pasta(o) if o.is_empty() => f.write_str("pasta"),
            Network::Pasta(o) => write!(f, "pasta:{}", o.join(",")),
            Network::Bridge => f.write_str("bridge"),
        }
    }
}

/// The ports the container in `dir` publishes now, with the host ports picked: those of
/// its bridge networks (network.json), or, while its pasta runs, those pasta forwards
/// (container.json, where [`pasta::forwards_of`] wrote the ports it picked).
pub fn published(dir: &Path) -> Vec<ports::PortMapping> {
    if let Some(a) = setup::load(dir) {
        return a.ports;
    }
    if crate::os::live_pid(&dir.join(pasta::PID_FILE)).is_none() {
        return Vec::new();
    }
    crate::record::Record::load(dir)
        .map(|r| r.meta.ports)
        .unwrap_or_default()
}

/// Make the spec's network namespace the one at `path` (made and configured before the
/// container, [`setup::connect`]), with docker's sysctls for a container's own network
/// (any user may bind low ports and ping: the namespace is the container's alone) where
/// --sysctl did not set them.
pub(crate) fn join_netns(spec: &mut serde_json::Value, path: &Path) {
    let linux = &mut spec["linux"];
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        for n in ns.iter_mut().filter(|n| n["type"] == "network") {
            n["path"] = path.to_string_lossy().into_owned().into();
        }
    }
    if !linux["sysctl"].is_object() {
        linux["sysctl"] = serde_json::json!({});
    }
    let ping = format!("0 {}", highest_gid());
    for (k, v) in [
        ("net.ipv4.ip_unprivileged_port_start", "0"),
        ("net.ipv4.ping_group_range", ping.as_str()),
    ] {
        if linux["sysctl"][k].is_null() {
            linux["sysctl"][k] = v.into();
        }
    }
}

/// The highest group id of the range from 0 that our user namespace maps (every id, as
/// root; rootless, the user's and its subordinate ids): the kernel refuses a
/// ping_group_range with ids its namespace does not map.
fn highest_gid() -> u32 {
    let map = std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    let mut ranges: Vec<(u64, u64)> = map
        .lines()
        .filter_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() == 3).then(|| (f[0], f[2]))
        })
        .collect();
    ranges.sort();
    let mut end = 0u64;
    for (start, len) in ranges {
        if start > end {
            break;
        }
        end = end.max(start + len);
    }
    end.saturating_sub(1).min(2147483647) as u32
}

/// Connect the network namespace of `pid` (a created container's init) to slirp4netns and
/// wait until its interface is configured.
pub fn start_slirp(dir: &Path, pid: i32, host_loopback: bool) -> Result<(), NetworkError> {
    // The classic rootless failure, said before anything runs.
    if unsafe { libc::access(c"/dev/net/tun".as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
        return Err(NetworkError::NoTun(std::io::Error::last_os_error()));
    }
    let (ready_r, ready_w) = crate::os::pipe()?;
    let log = dir.join("slirp4netns.log");
    let log_file = std::fs::File::create(&log).ctx("creating", &log)?;
    let mut cmd = std::process::Command::new("slirp4netns");
    cmd.args(["--configure", "--mtu=65520", "--ready-fd=3"]);
    if !host_loopback {
        cmd.arg("--disable-host-loopback");
    }
    cmd.arg(pid.to_string())
        .arg("tap0")
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().ctx("duplicating the fd of", &log)?)
        .stderr(log_file);
    let w = ready_w.as_raw_fd();
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            // Its own session: a terminal's signals to `husk run` are not for it.
            libc::setsid();
            if libc::dup2(w, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => NetworkError::SlirpMissing,
        _ => NetworkError::Spawn(e),
    })?;
    drop(ready_w);
    // "1" on the ready fd once tap0 is up; EOF if it died.
    let mut ready = std::fs::File::from(ready_r);
    let mut b = [0u8; 1];
    let got = wait_readable(&ready, Duration::from_secs(10)) && ready.read(&mut b).ok() == Some(1);
    if !got {
        let _ = child.kill();
        let _ = child.wait();
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let said: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
        return Err(NetworkError::NotConfigured(if said.is_empty() {
            "no output".to_string()
        } else {
            said.join("; ")
        }));
    }
    crate::os::write_pid_file(&dir.join(SLIRP_PID_FILE), child.id() as i32)?;
    // Not waited for: it is reaped by whoever it ends up with (the monitor is a subreaper).
    std::mem::forget(child);
    Ok(())
}

fn wait_readable(f: &std::fs::File, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) > 0 }
}

/// End the container's slirp4netns or pasta, if it has one (and it is still that process);
/// pasta's namespace file goes too.
pub fn stop_slirp(dir: &Path) {
    pasta::stop(dir);
    crate::os::stop_pid_file(&dir.join(SLIRP_PID_FILE), libc::SIGTERM);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_modes() {
        assert_eq!(Network::parse("none"), Ok(Network::None));
        assert_eq!(Network::parse("host"), Ok(Network::Host));
        assert_eq!(
            Network::parse("slirp4netns:allow_host_loopback=true"),
            Ok(Network::Slirp {
                host_loopback: true
            })
        );
        assert_eq!(Network::parse("bridge"), Ok(Network::Bridge));
        assert_eq!(Network::parse("my-net"), Ok(Network::Bridge));
        assert_eq!(
            Network::parse("slirp4netns:x"),
            Err(NetworkFlagError::Mode("slirp4netns:x".into()))
        );
        let c = Network::parse("container:web").unwrap();
        assert_eq!(c, Network::Container("web".into()));
        assert_eq!(c.to_string(), "container:web");
        assert!(Network::parse("container:").is_err());
        let p = Network::parse("pasta:--mtu,1500").unwrap();
        assert_eq!(p, Network::Pasta(vec!["--mtu".into(), "1500".into()]));
        assert_eq!(p.to_string(), "pasta:--mtu,1500");
        assert_eq!(Network::parse("pasta").unwrap().to_string(), "pasta");
    }
}
