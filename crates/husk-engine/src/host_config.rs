//! The `husk run` flags that docker keeps in a container's HostConfig (and its labels):
//! [`HostOptions`] as the user gives them, [`HostConfig`] checked and typed by
//! [`HostConfig::validate`]. Pure: nothing here touches the host beyond a stat of the
//! device nodes `--device` names. How they shape the spec is `spec_from_image::host`.

use crate::spec_from_image::{parse_size, SizeError};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A HostConfig flag that was refused: a variant per flag (and per kind of mistake where
/// a flag has several), the value as given; `Display` is the one line `husk` prints.
#[derive(Debug, thiserror::Error)]
pub enum HostFlagError {
    /// --memory-swap, --memory-reservation, --shm-size.
    #[error(transparent)]
    Size(#[from] SizeError),
    #[error("--memory-swap {0:?}: needs --memory (it is memory plus swap)")]
    SwapNeedsMemory(String),
    #[error("--memory-swap {0:?}: must be at least --memory (it is memory plus swap)")]
    SwapBelowMemory(String),
    #[error("--memory-reservation {reservation}: must be no more than --memory ({memory})")]
    ReservationAboveMemory { reservation: i64, memory: i64 },
    #[error("--cpu-shares {0}: use 2 to 262144")]
    CpuShares(u64),
    #[error("--oom-score-adj {0}: use -1000 to 1000")]
    OomScoreAdj(i32),
    #[error("--cpuset-cpus {value:?}: {problem}")]
    CpusetCpus {
        value: String,
        problem: CpuListError,
    },
    #[error("--add-host {value:?}: {problem}")]
    AddHost {
        value: String,
        problem: AddHostError,
    },
    #[error("--dns {0:?}: not an IP address")]
    Dns(String),
    #[error("--dns-search {0:?}: not a domain name")]
    DnsSearch(String),
    /// --label, --annotation: no `=` where a value is needed.
    #[error("{flag} {item:?}: expected KEY=VALUE")]
    NoValue { flag: &'static str, item: String },
    #[error("{flag} {item:?}: the key is empty or has blanks")]
    Key { flag: &'static str, item: String },
    #[error("--ulimit {value:?}: {problem}")]
    Ulimit { value: String, problem: UlimitError },
    #[error("--device {value:?}: {problem}")]
    Device { value: String, problem: DeviceError },
    #[error("--sysctl {value:?}: {problem}")]
    Sysctl { value: String, problem: SysctlError },
    #[error("--group-add {0:?}: not a group name or id")]
    GroupAdd(String),
    /// docker's check: an existing file may belong to a running container.
    #[error(
        "--cidfile {}: the file exists (another container may use it); remove it",
        .0.display()
    )]
    CidfileExists(PathBuf),
    /// --pid, --ipc: `private` lists the words that mean a namespace of its own.
    #[error(
        "{flag} {value:?}: use host{}, or container:NAME",
        .private.iter().map(|p| format!(", {p}")).collect::<String>()
    )]
    NsMode {
        flag: &'static str,
        value: String,
        private: &'static [&'static str],
    },
    #[error("--uts {0:?}: use host")]
    Uts(String),
    #[error("--cgroupns {0:?}: use private or host")]
    Cgroupns(String),
    #[error("--pull {0:?}: use always, missing or never")]
    Pull(String),
    #[error("--platform {value:?}: {source}")]
    Platform {
        value: String,
        source: husk_image::Error,
    },
    #[error("--log-opt {0:?}: expected a size like 10m")]
    LogSize(String),
    #[error("--log-opt {0:?}: expected a count of 1 or more")]
    LogFiles(String),
    #[error("--log-opt {0:?}: use max-size=SIZE or max-file=N")]
    LogOpt(String),
    #[error("--log-opt max-file: needs max-size")]
    LogFilesWithoutSize,
}

/// What is wrong with a CPU list (`0-2,4`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuListError {
    #[error("{0:?} is not a CPU number")]
    NotACpu(String),
    #[error("range {0:?} runs backwards")]
    Backwards(String),
}

/// What is wrong with an `--add-host`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddHostError {
    #[error("expected HOST:IP")]
    Form,
    #[error("{0:?} is not an IP address")]
    NotAnAddress(String),
    #[error("not a host name")]
    HostName,
}

/// What is wrong with a `--ulimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UlimitError {
    #[error("expected NAME=SOFT[:HARD]")]
    Form,
    #[error("unknown limit (use nofile, nproc, core, stack, memlock, …)")]
    Unknown,
    #[error("limits are numbers")]
    NotANumber,
    #[error("the soft limit is above the hard limit")]
    SoftAboveHard,
}

/// What is wrong with a `--device`.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("expected HOST[:CONTAINER][:rwm]")]
    Form,
    #[error("paths must be absolute")]
    Relative,
    #[error("{host}: {source}")]
    Stat {
        host: String,
        source: std::io::Error,
    },
    #[error("{0} is not a device node")]
    NotADevice(String),
}

/// What is wrong with a `--sysctl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SysctlError {
    #[error("expected NAME=VALUE")]
    Form,
    #[error("net.* sysctls are not allowed with --network host")]
    HostNetwork,
    #[error(
        "not a namespaced sysctl (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, \
         net.*); it would change the host"
    )]
    NotNamespaced,
}

/// The flags as given (see [`HostConfig`] for what each becomes).
#[derive(Clone, Debug, Default)]
pub struct HostOptions {
    /// `KEY[=VALUE]`
    pub labels: Vec<String>,
    /// `KEY=VALUE` (OCI annotations of the spec)
    pub annotations: Vec<String>,
    /// `HOST:IP`
    pub add_hosts: Vec<String>,
    /// Nameserver addresses.
    pub dns: Vec<String>,
    /// Search domains (`.`: none).
    pub dns_search: Vec<String>,
    /// `NAME=SOFT[:HARD]` (`nofile=1024:2048`)
    pub ulimits: Vec<String>,
    /// `HOST[:CONTAINER[:rwm]]`
    pub devices: Vec<String>,
    /// `NAME=VALUE`
    pub sysctls: Vec<String>,
    /// Group names or ids.
    pub group_add: Vec<String>,
    /// Size of /dev/shm: N[b|k|m|g]
    pub shm_size: Option<String>,
    /// Write the container's id here (refused when the file exists).
    pub cidfile: Option<PathBuf>,
    /// `host` or `container:X`
    pub pid: Option<String>,
    /// `private`, `shareable`, `host`, `container:X`
    pub ipc: Option<String>,
    /// `host`
    pub uts: Option<String>,
    /// `private` (the default: the container sees its own cgroup) or `host`
    pub cgroupns: Option<String>,
    /// `0-2,4`
    pub cpuset_cpus: Option<String>,
    pub cpu_shares: Option<u64>,
    /// Memory plus swap: N[b|k|m|g], or -1 for unlimited swap.
    pub memory_swap: Option<String>,
    pub memory_reservation: Option<String>,
    pub oom_score_adj: Option<i32>,
    /// `always`, `missing` (the default), `never`
    pub pull: Option<String>,
    /// `--sig-proxy=false`: a foreground run without a terminal does not forward the
    /// signals it gets to the container (they act on husk itself, as on docker's client).
    pub no_sig_proxy: bool,
    /// os/arch[/variant] to pull from a multi-platform image.
    pub platform: Option<String>,
    /// `max-size=N[b|k|m|g]`, `max-file=N` (docker's json-file options)
    pub log_opts: Vec<String>,
}

/// One rlimit, as the spec's `process.rlimits` has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ulimit {
    /// `RLIMIT_NOFILE`
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

/// A host device node made in the container (`--device`, or every one with --privileged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub host: PathBuf,
    pub path: String,
    /// `c` or `b`
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The devices-cgroup access: some of `rwm`.
    pub access: String,
}

/// Which namespace of a kind a container gets (`--pid`, `--ipc`, `--uts`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NsMode {
    /// One of its own (docker's default; also ipc's `private` and `shareable`).
    #[default]
    Private,
    /// The host's: no namespace of that kind.
    Host,
    /// Another container's (name or id), joined through its init's /proc/PID/ns.
    Container(String),
}

/// `--pull`: when `run` asks the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    #[default]
    Missing,
    Never,
}

/// [`HostOptions`], every value checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `/etc/hosts` lines added, in order.
    pub extra_hosts: Vec<(String, IpAddr)>,
    pub dns: Vec<IpAddr>,
    /// None: the host's search domains; Some(empty): none (`--dns-search .`).
    pub dns_search: Option<Vec<String>>,
    pub ulimits: Vec<Ulimit>,
    pub devices: Vec<Device>,
    pub sysctls: BTreeMap<String, String>,
    /// Numeric gids, and names resolved in the image's /etc/group when the rootfs exists.
    pub group_add: Vec<String>,
    /// Bytes.
    pub shm_size: Option<i64>,
    pub cidfile: Option<PathBuf>,
    pub pid: NsMode,
    pub ipc: NsMode,
    pub uts: NsMode,
    pub cgroupns: NsMode,
    pub cpuset_cpus: Option<String>,
    pub cpu_shares: Option<u64>,
    /// Memory plus swap in bytes; -1: unlimited swap.
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub oom_score_adj: Option<i32>,
    pub pull: PullPolicy,
    pub platform: Option<String>,
    /// Forward husk's signals to a foreground container without a terminal (the default).
    pub sig_proxy: bool,
    /// `--log-opt`: (max-size in bytes, max-file) for the monitor to rotate ctr.log.
    pub log_rotate: Option<(i64, u32)>,
}

impl HostConfig {
    /// Check every flag; `memory` is --memory's value (--memory-swap is relative to it),
    /// `host_network` whether net.* sysctls are the host's (refused then, as docker does).
    pub fn validate(
        o: &HostOptions,
        memory: Option<i64>,
        host_network: bool,
    ) -> Result<HostConfig, HostFlagError> {
        let memory_swap = match o.memory_swap.as_deref() {
            None => None,
            Some("-1") => Some(-1),
            Some(s) => {
                let v = parse_size("--memory-swap", s)?;
                match memory {
                    None => return Err(HostFlagError::SwapNeedsMemory(s.into())),
                    Some(m) if v < m => return Err(HostFlagError::SwapBelowMemory(s.into())),
                    _ => Some(v),
                }
            }
        };
        let memory_reservation = o
            .memory_reservation
            .as_deref()
            .map(|s| parse_size("--memory-reservation", s))
            .transpose()?;
        if let (Some(r), Some(m)) = (memory_reservation, memory) {
            if r > m {
                return Err(HostFlagError::ReservationAboveMemory {
                    reservation: r,
                    memory: m,
                });
            }
        }
        let shm_size = o
            .shm_size
            .as_deref()
            .map(|s| parse_size("--shm-size", s))
            .transpose()?;
        if let Some(n) = o.cpu_shares {
            // The kernel's range for cpu.shares (v1; v2's weight is mapped from it).
            if !(2..=262_144).contains(&n) {
                return Err(HostFlagError::CpuShares(n));
            }
        }
        if let Some(n) = o.oom_score_adj {
            if !(-1000..=1000).contains(&n) {
                return Err(HostFlagError::OomScoreAdj(n));
            }
        }
        if let Some(c) = &o.cpuset_cpus {
            cpu_list(c).map_err(|problem| HostFlagError::CpusetCpus {
                value: c.clone(),
                problem,
            })?;
        }
        let extra_hosts = o
            .add_hosts
            .iter()
            .map(|h| add_host(h))
            .collect::<Result<_, _>>()?;
        let dns = o
            .dns
            .iter()
            .map(|d| {
                d.parse::<IpAddr>()
                    .map_err(|_| HostFlagError::Dns(d.clone()))
            })
            .collect::<Result<_, _>>()?;
        let dns_search = match o.dns_search.as_slice() {
            [] => None,
            [dot] if dot == "." => Some(Vec::new()),
            list => {
                for d in list {
                    if d.is_empty() || d.len() > 253 || d.contains(char::is_whitespace) {
                        return Err(HostFlagError::DnsSearch(d.clone()));
                    }
                }
                Some(list.to_vec())
            }
        };
        let mut sysctls = BTreeMap::new();
        for s in &o.sysctls {
            let (k, v) = sysctl(s, host_network)?;
            sysctls.insert(k, v);
        }
        Ok(HostConfig {
            labels: key_values("--label", &o.labels, true)?,
            annotations: key_values("--annotation", &o.annotations, false)?,
            extra_hosts,
            dns,
            dns_search,
            ulimits: o
                .ulimits
                .iter()
                .map(|u| ulimit(u))
                .collect::<Result<_, _>>()?,
            devices: o
                .devices
                .iter()
                .map(|d| device(d))
                .collect::<Result<_, _>>()?,
            sysctls,
            group_add: o
                .group_add
                .iter()
                .map(|g| {
                    if g.is_empty() || g.contains([':', '\n']) {
                        Err(HostFlagError::GroupAdd(g.clone()))
                    } else {
                        Ok(g.clone())
                    }
                })
                .collect::<Result<_, _>>()?,
            shm_size,
            cidfile: match &o.cidfile {
                // docker's check: an existing file may belong to a running container.
                Some(f) if f.exists() => return Err(HostFlagError::CidfileExists(f.clone())),
                f => f.clone(),
            },
            pid: ns_mode("--pid", o.pid.as_deref(), &[])?,
            ipc: ns_mode("--ipc", o.ipc.as_deref(), &["private", "shareable"])?,
            uts: match o.uts.as_deref() {
                None | Some("private") => NsMode::Private,
                Some("host") => NsMode::Host,
                Some(u) => return Err(HostFlagError::Uts(u.into())),
            },
            cgroupns: match o.cgroupns.as_deref() {
                None | Some("private") => NsMode::Private,
                Some("host") => NsMode::Host,
                Some(c) => return Err(HostFlagError::Cgroupns(c.into())),
            },
            cpuset_cpus: o.cpuset_cpus.clone(),
            cpu_shares: o.cpu_shares,
            memory_swap,
            memory_reservation,
            oom_score_adj: o.oom_score_adj,
            pull: match o.pull.as_deref() {
                None | Some("missing") => PullPolicy::Missing,
                Some("always") => PullPolicy::Always,
                Some("never") => PullPolicy::Never,
                Some(p) => return Err(HostFlagError::Pull(p.into())),
            },
            platform: match &o.platform {
                Some(p) => {
                    husk_image::manifest::Platform::parse(p).map_err(|source| {
                        HostFlagError::Platform {
                            value: p.clone(),
                            source,
                        }
                    })?;
                    Some(p.clone())
                }
                None => None,
            },
            sig_proxy: !o.no_sig_proxy,
            log_rotate: log_rotate(&o.log_opts)?,
        })
    }
}

/// `--log-opt max-size=…` and `max-file=…` (docker's json-file options; max-file needs
/// max-size, as docker's).
fn log_rotate(opts: &[String]) -> Result<Option<(i64, u32)>, HostFlagError> {
    let (mut size, mut files) = (None, None);
    for o in opts.iter().flat_map(|o| o.split(',')) {
        match o.split_once('=') {
            Some(("max-size", v)) => {
                size = Some(
                    parse_size("--log-opt max-size", v)
                        .map_err(|_| HostFlagError::LogSize(o.into()))?,
                )
            }
            Some(("max-file", v)) => {
                files = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| HostFlagError::LogFiles(o.into()))?,
                )
            }
            _ => return Err(HostFlagError::LogOpt(o.into())),
        }
    }
    match (size, files) {
        (None, Some(_)) => Err(HostFlagError::LogFilesWithoutSize),
        (Some(s), f) => Ok(Some((s, f.unwrap_or(1)))),
        (None, None) => Ok(None),
    }
}

/// `KEY=VALUE` lists (a bare KEY is an empty value where `bare` allows it, as docker's
/// labels); a later KEY wins.
fn key_values(
    flag: &'static str,
    items: &[String],
    bare: bool,
) -> Result<BTreeMap<String, String>, HostFlagError> {
    let mut m = BTreeMap::new();
    for i in items {
        let (k, v) = match i.split_once('=') {
            Some((k, v)) => (k, v),
            None if bare => (i.as_str(), ""),
            None => {
                return Err(HostFlagError::NoValue {
                    flag,
                    item: i.clone(),
                })
            }
        };
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(HostFlagError::Key {
                flag,
                item: i.clone(),
            });
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

/// `HOST:IP` (docker's form; an IPv6 address keeps its colons), also `HOST=IP`.
fn add_host(s: &str) -> Result<(String, IpAddr), HostFlagError> {
    let bad = |problem| HostFlagError::AddHost {
        value: s.to_string(),
        problem,
    };
    let (h, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| bad(AddHostError::Form))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = ip
        .parse::<IpAddr>()
        .map_err(|_| bad(AddHostError::NotAnAddress(ip.to_string())))?;
    if h.is_empty() || h.contains(char::is_whitespace) {
        return Err(bad(AddHostError::HostName));
    }
    Ok((h.to_string(), ip))
}

/// docker's ulimit names → the spec's rlimit types.
const ULIMITS: &[(&str, &str)] = &[
    ("core", "RLIMIT_CORE"),
    ("cpu", "RLIMIT_CPU"),
    ("data", "RLIMIT_DATA"),
    ("fsize", "RLIMIT_FSIZE"),
    ("locks", "RLIMIT_LOCKS"),
    ("memlock", "RLIMIT_MEMLOCK"),
    ("msgqueue", "RLIMIT_MSGQUEUE"),
    ("nice", "RLIMIT_NICE"),
    ("nofile", "RLIMIT_NOFILE"),
    ("nproc", "RLIMIT_NPROC"),
    ("rss", "RLIMIT_RSS"),
    ("rtprio", "RLIMIT_RTPRIO"),
    ("rttime", "RLIMIT_RTTIME"),
    ("sigpending", "RLIMIT_SIGPENDING"),
    ("stack", "RLIMIT_STACK"),
    ("as", "RLIMIT_AS"),
];

/// `NAME=SOFT[:HARD]`, -1 (or `unlimited`) for no limit.
fn ulimit(s: &str) -> Result<Ulimit, HostFlagError> {
    let bad = |problem| HostFlagError::Ulimit {
        value: s.to_string(),
        problem,
    };
    let (name, vals) = s.split_once('=').ok_or_else(|| bad(UlimitError::Form))?;
    let kind = ULIMITS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| k.to_string())
        .ok_or_else(|| bad(UlimitError::Unknown))?;
    let num = |v: &str| match v {
        "-1" | "unlimited" => Ok(u64::MAX),
        v => v.parse::<u64>().map_err(|_| bad(UlimitError::NotANumber)),
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => (num(vals)?, num(vals)?),
    };
    if soft > hard {
        return Err(bad(UlimitError::SoftAboveHard));
    }
    Ok(Ulimit { kind, soft, hard })
}

/// `HOST[:CONTAINER][:PERMISSIONS]`: the host node must exist and be a device.
fn device(s: &str) -> Result<Device, HostFlagError> {
    let bad = |problem| HostFlagError::Device {
        value: s.to_string(),
        problem,
    };
    let parts: Vec<&str> = s.split(':').collect();
    let is_access = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, path, access) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, a] if is_access(a) => (*h, *h, *a),
        [h, c] => (*h, *c, "rwm"),
        [h, c, a] if is_access(a) => (*h, *c, *a),
        _ => return Err(bad(DeviceError::Form)),
    };
    if !host.starts_with('/') || !path.starts_with('/') {
        return Err(bad(DeviceError::Relative));
    }
    let meta = std::fs::metadata(host).map_err(|source| {
        bad(DeviceError::Stat {
            host: host.to_string(),
            source,
        })
    })?;
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        // docker also takes a directory of devices; husk takes nodes only.
        return Err(bad(DeviceError::NotADevice(host.to_string())));
    };
    let rdev = meta.rdev();
    Ok(Device {
        host: host.into(),
        path: path.to_string(),
        kind,
        major: libc::major(rdev) as i64,
        minor: libc::minor(rdev) as i64,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        access: access.to_string(),
    })
}

/// `--privileged`: every device node under the host's /dev, as docker gives them, except
/// what the container has of its own (pts, shm, mqueue, fd, console, ptmx) and the nodes
/// every container gets anyway. Unreadable entries are skipped.
pub fn host_devices() -> Vec<Device> {
    const OWN: &[&str] = &[
        "pts", "shm", "mqueue", "fd", "console", "ptmx", ".lxc", ".udev",
    ];
    const DEFAULTS: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::from("/dev")];
    while let Some(dir) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let top = dir == Path::new("/dev");
            if top && (OWN.contains(&name.as_str()) || DEFAULTS.contains(&name.as_str())) {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                dirs.push(e.path());
            } else if ft.is_char_device() || ft.is_block_device() {
                if let Some(p) = e.path().to_str() {
                    if let Ok(d) = device(p) {
                        out.push(d);
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// `NAME=VALUE`, NAME one of the namespaced sysctls docker allows: a container's own IPC
/// (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*) and network (net.*, not with the
/// host's network) ones; others would change the host.
fn sysctl(s: &str, host_network: bool) -> Result<(String, String), HostFlagError> {
    let bad = |problem| HostFlagError::Sysctl {
        value: s.to_string(),
        problem,
    };
    let (k, v) = s
        .split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| bad(SysctlError::Form))?;
    let k = k.replace('/', ".");
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
    ]
    .contains(&k.as_str())
        || ["kernel.shm", "fs.mqueue."]
            .iter()
            .any(|p| k.starts_with(p));
    if k.starts_with("net.") {
        if host_network {
            return Err(bad(SysctlError::HostNetwork));
        }
    } else if !ipc {
        return Err(bad(SysctlError::NotNamespaced));
    }
    Ok((k, v.to_string()))
}

fn ns_mode(
    flag: &'static str,
    v: Option<&str>,
    private: &'static [&'static str],
) -> Result<NsMode, HostFlagError> {
    match v {
        None => Ok(NsMode::Private),
        Some("host") => Ok(NsMode::Host),
        Some(p) if private.contains(&p) => Ok(NsMode::Private),
        Some(p) => match p.strip_prefix("container:") {
            Some(c) if !c.is_empty() => Ok(NsMode::Container(c.to_string())),
            _ => Err(HostFlagError::NsMode {
                flag,
                value: p.to_string(),
                private,
            }),
        },
    }
}

/// The CPUs of a list like `0-2,4`, checked (ranges ascending, numbers below 8192).
fn cpu_list(s: &str) -> Result<Vec<u32>, CpuListError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let n = |x: &str| {
            x.parse::<u32>()
                .ok()
                .filter(|n| *n < 8192)
                .ok_or_else(|| CpuListError::NotACpu(x.to_string()))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (n(a)?, n(b)?);
                if a > b {
                    return Err(CpuListError::Backwards(part.to_string()));
                }
                out.extend(a..=b);
            }
            None => out.push(n(part)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: impl FnOnce(&mut HostOptions)) -> Result<HostConfig, HostFlagError> {
        let mut o = HostOptions::default();
        f(&mut o);
        HostConfig::validate(&o, Some(64 << 20), false)
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn privileged_sees_the_hosts_devices() {
        let d = host_devices();
        assert!(d
            .iter()
            .all(|d| d.path.starts_with("/dev/") && "cb".contains(d.kind)));
        assert!(!d
            .iter()
            .any(|d| d.path == "/dev/null" || d.path.starts_with("/dev/pts/")));
    }

    #[test]
    fn defaults_change_nothing() {
        assert_eq!(
            check(|_| {}).unwrap(),
            HostConfig {
                sig_proxy: true,
                ..Default::default()
            }
        );
    }

    #[test]
    fn values_become_typed() {
        let c = check(|o| {
            o.labels = v(&["a=1", "bare", "a=2"]);
            o.annotations = v(&["org.x=y=z"]);
            o.add_hosts = v(&["db:10.1.2.3", "v6:::1", "eq=192.0.2.1"]);
            o.dns = v(&["192.0.2.53"]);
            o.dns_search = v(&["example.test"]);
            o.ulimits = v(&["nofile=100:200", "core=0", "stack=-1"]);
            o.devices = v(&["/dev/null:/dev/mynull:r", "/dev/zero:rw"]);
            o.sysctls = v(&["net.ipv4.ip_forward=1", "kernel/shmmax=1000"]);
            o.group_add = v(&["10", "audio"]);
            o.shm_size = Some("1m".into());
            o.pid = Some("host".into());
            o.ipc = Some("container:db".into());
            o.uts = Some("host".into());
            o.cpuset_cpus = Some("0".into());
            o.cpu_shares = Some(512);
            o.memory_swap = Some("128m".into());
            o.memory_reservation = Some("32m".into());
            o.oom_score_adj = Some(-500);
            o.pull = Some("never".into());
            o.platform = Some("linux/amd64".into());
        })
        .unwrap();
        assert_eq!(c.labels["a"], "2");
        assert_eq!(c.labels["bare"], "");
        assert_eq!(c.annotations["org.x"], "y=z");
        let hosts: Vec<String> = c
            .extra_hosts
            .iter()
            .map(|(h, ip)| format!("{h} {ip}"))
            .collect();
        assert_eq!(hosts, v(&["db 10.1.2.3", "v6 ::1", "eq 192.0.2.1"]));
        assert_eq!(c.dns_search, Some(v(&["example.test"])));
        assert_eq!(
            c.ulimits,
            [
                Ulimit {
                    kind: "RLIMIT_NOFILE".into(),
                    soft: 100,
                    hard: 200
                },
                Ulimit {
                    kind: "RLIMIT_CORE".into(),
                    soft: 0,
                    hard: 0
                },
                Ulimit {
                    kind: "RLIMIT_STACK".into(),
                    soft: u64::MAX,
                    hard: u64::MAX
                }
            ]
        );
        let d = &c.devices[0];
        assert_eq!(
            (d.path.as_str(), d.kind, d.major, d.minor, d.access.as_str()),
            ("/dev/mynull", 'c', 1, 3, "r")
        );
        assert_eq!(
            (c.devices[1].path.as_str(), c.devices[1].minor),
            ("/dev/zero", 5)
        );
        assert_eq!(c.sysctls["kernel.shmmax"], "1000");
        assert_eq!(c.sysctls["net.ipv4.ip_forward"], "1");
        assert_eq!(c.shm_size, Some(1 << 20));
        assert_eq!(
            (c.pid, c.ipc, c.uts),
            (NsMode::Host, NsMode::Container("db".into()), NsMode::Host)
        );
        assert_eq!(
            (c.memory_swap, c.memory_reservation),
            (Some(128 << 20), Some(32 << 20))
        );
        assert_eq!(c.pull, PullPolicy::Never);
        let c = check(|o| o.log_opts = v(&["max-size=1k", "max-file=3"])).unwrap();
        assert_eq!(c.log_rotate, Some((1024, 3)));
        let c = check(|o| o.log_opts = v(&["max-size=2m"])).unwrap();
        assert_eq!(c.log_rotate, Some((2 << 20, 1)));
        assert_eq!(
            check(|o| o.dns_search = v(&["."])).unwrap().dns_search,
            Some(vec![])
        );
        assert_eq!(
            check(|o| o.memory_swap = Some("-1".into()))
                .unwrap()
                .memory_swap,
            Some(-1)
        );
        assert_eq!(
            check(|o| o.ipc = Some("shareable".into())).unwrap().ipc,
            NsMode::Private
        );
    }

    #[test]
    fn bad_values_name_their_flag() {
        type Change = fn(&mut HostOptions);
        let cases: &[(&str, Change)] = &[
            ("--label", |o| o.labels = v(&["=x"])),
            ("--annotation", |o| o.annotations = v(&["novalue"])),
            ("--add-host", |o| o.add_hosts = v(&["db"])),
            ("--add-host", |o| o.add_hosts = v(&["db:not-an-ip"])),
            ("--dns", |o| o.dns = v(&["dns.example"])),
            ("--dns-search", |o| o.dns_search = v(&["a b"])),
            ("--ulimit", |o| o.ulimits = v(&["nofiles=1"])),
            ("--ulimit", |o| o.ulimits = v(&["nofile=2:1"])),
            ("--ulimit", |o| o.ulimits = v(&["nofile=x"])),
            ("--device", |o| o.devices = v(&["/no/such/dev"])),
            ("--device", |o| o.devices = v(&["/etc/hostname"])),
            ("--device", |o| o.devices = v(&["/dev/null:rel"])),
            ("--sysctl", |o| o.sysctls = v(&["kernel.hostname=x"])),
            ("--sysctl", |o| o.sysctls = v(&["vm.swappiness=1"])),
            ("--sysctl", |o| o.sysctls = v(&["noval"])),
            ("--group-add", |o| o.group_add = v(&["a:b"])),
            ("--shm-size", |o| o.shm_size = Some("0".into())),
            ("--cidfile", |o| o.cidfile = Some("/".into())),
            ("--pid", |o| o.pid = Some("private-ish".into())),
            ("--ipc", |o| o.ipc = Some("container:".into())),
            ("--uts", |o| o.uts = Some("container:x".into())),
            ("--cgroupns", |o| o.cgroupns = Some("container:x".into())),
            ("--cpuset-cpus", |o| o.cpuset_cpus = Some("3-1".into())),
            ("--cpuset-cpus", |o| o.cpuset_cpus = Some("a".into())),
            ("--cpu-shares", |o| o.cpu_shares = Some(1)),
            ("--memory-swap", |o| o.memory_swap = Some("1m".into())),
            ("--memory-reservation", |o| {
                o.memory_reservation = Some("1g".into())
            }),
            ("--oom-score-adj", |o| o.oom_score_adj = Some(1001)),
            ("--pull", |o| o.pull = Some("sometimes".into())),
            ("--platform", |o| o.platform = Some("amd64".into())),
            ("--log-opt", |o| o.log_opts = v(&["max-size=lots"])),
            ("--log-opt", |o| o.log_opts = v(&["max-file=0"])),
            ("--log-opt", |o| o.log_opts = v(&["max-file=2"])),
            ("--log-opt", |o| o.log_opts = v(&["tag=x"])),
        ];
        for (flag, f) in cases {
            let e = check(f).expect_err(flag).to_string();
            assert!(e.starts_with(flag), "{flag}: {e}");
        }
        // Typed: an embedder matches on what went wrong, not on the words.
        assert!(matches!(
            check(|o| o.ulimits = v(&["nofile=2:1"])),
            Err(HostFlagError::Ulimit {
                problem: UlimitError::SoftAboveHard,
                ..
            })
        ));
        assert!(matches!(
            check(|o| o.shm_size = Some("0".into())),
            Err(HostFlagError::Size(SizeError {
                flag: "--shm-size",
                ..
            }))
        ));
        assert!(matches!(
            check(|o| o.devices = v(&["/etc/hostname"])),
            Err(HostFlagError::Device { problem: DeviceError::NotADevice(h), .. }) if h == "/etc/hostname"
        ));
        assert!(matches!(
            check(|o| o.cpuset_cpus = Some("3-1".into())),
            Err(HostFlagError::CpusetCpus { problem: CpuListError::Backwards(r), .. }) if r == "3-1"
        ));
        assert_eq!(
            check(|o| o.ipc = Some("container:".into()))
                .unwrap_err()
                .to_string(),
            "--ipc \"container:\": use host, private, shareable, or container:NAME"
        );
        // --memory-swap is memory + swap: without --memory it means nothing
        let o = HostOptions {
            memory_swap: Some("1g".into()),
            ..Default::default()
        };
        assert!(HostConfig::validate(&o, None, false).is_err());
        // net.* sysctls would be the host's with --network host
        let o = HostOptions {
            sysctls: v(&["net.ipv4.ip_forward=1"]),
            ..Default::default()
        };
        assert!(HostConfig::validate(&o, None, true).is_err());
    }
}
