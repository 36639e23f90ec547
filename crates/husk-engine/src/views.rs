//! Docker's views of containers and images: what `docker inspect`, `docker ps`, `docker
//! images`, `docker stats`, `docker version` and `docker info` show, field for field
//! (PascalCase names, docker's layout), as serde structs. Any front end (the CLI's `--format`
//! templates, an API server) serializes these, so scripts written against docker's field
//! names work on husk.
//!
//! Built from the engine's own records (record.rs), each container's config.json (the OCI
//! spec it runs with: the source of truth for its process, mounts and limits) and the
//! runtime library's live state; never stored in docker's shape.

use crate::containers::ContainerSummary;
use crate::engine::Engine;
use crate::error::{During, Result};
use crate::record::{find, ContainerMeta, Record, Timestamp};
use husk_image::store::{ImageRecord, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `docker inspect CONTAINER`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    pub created: String,
    /// The process's executable (args[0]) and the rest of its arguments.
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    /// The image id, `sha256:HEX`.
    pub image: String,
    /// The name with docker's leading `/`.
    pub name: String,
    pub restart_count: u64,
    pub driver: String,
    pub config: ContainerConfigView,
    pub host_config: HostConfig,
    pub mounts: Vec<MountView>,
    pub network_settings: NetworkSettings,
}

/// `.State` of a container.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// created, running, paused, exited.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    /// 0 when not running.
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    /// RFC 3339; docker's zero time when it never happened.
    pub started_at: String,
    pub finished_at: String,
    /// Only for a container with a health check (health.rs), as docker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthState>,
    /// podman's: its last run ended in a checkpoint (`container checkpoint`), and when;
    /// its current run was restored from one, and when. The times only once they happened.
    pub checkpointed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpointed_at: Option<String>,
    pub restored: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_at: Option<String>,
}

/// `.Config` of a container: what it was created with.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfigView {
    pub hostname: String,
    pub user: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    /// None: the image has none and none was given.
    pub entrypoint: Option<Vec<String>>,
    /// The image as the user named it.
    pub image: String,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::health::Healthcheck>,
}

/// `.HostConfig`: the container's limits and host-side settings.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// `SRC:DST[:ro]`.
    pub binds: Vec<String>,
    pub network_mode: String,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    /// Bytes; 0: no limit.
    pub memory: i64,
    /// 10⁻⁹ CPUs; 0: no limit.
    pub nano_cpus: i64,
    /// None: no limit.
    pub pids_limit: Option<i64>,
    pub cap_add: Vec<String>,
    /// `--security-opt` as docker shows it: null when none.
    pub security_opt: Option<Vec<String>>,
    /// `--userns` as given: "" (the engine's own), `host`, `auto[:size=N]`,
    /// `keep-id[:uid=N,gid=N]`.
    pub userns_mode: String,
    pub init: bool,
    /// `--storage-opt size=…` as docker shows it (`{"size": "5242880"}`), when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_opt: Option<BTreeMap<String, String>>,
}

/// `.HostConfig.RestartPolicy`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// "no", always, unless-stopped, on-failure.
    pub name: String,
    pub maximum_retry_count: u64,
}

/// One entry of `.Mounts`: a bind mount, a volume or a tmpfs.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountView {
    #[serde(rename = "Type")]
    pub kind: String,
    /// A volume's name (docker shows Name and Driver for volumes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

/// `.NetworkSettings`: the bridge networks the container is on (or its mode: none, host,
/// slirp4netns) with docker's endpoint fields, and its published ports.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    /// "80/tcp" → [{"HostIp", "HostPort"}] (docker's PortMap).
    pub ports: BTreeMap<String, Value>,
    /// Network name → docker's endpoint (IPAddress, Gateway, MacAddress, Aliases, …).
    pub networks: BTreeMap<String, Value>,
    /// The first network's, as docker's top-level fields.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    pub gateway: String,
    pub mac_address: String,
    pub sandbox_key: String,
}

/// docker's NetworkSettings from what the container's network setup recorded (none when
/// it is not on a bridge now: only the mode, without addresses).
fn network_settings(r: &Record, mode: String, sandbox_key: String) -> NetworkSettings {
    let Some(a) = crate::network::setup::load(&r.dir) else {
        return NetworkSettings {
            // pasta's, if it forwards any.
            ports: port_map(&crate::network::published(&r.dir)),
            networks: [(mode, serde_json::json!({"IPAddress": ""}))].into(),
            ip_address: String::new(),
            gateway: String::new(),
            mac_address: String::new(),
            sandbox_key,
        };
    };
    let s = |ip: Option<std::net::IpAddr>| ip.map(|i| i.to_string()).unwrap_or_default();
    let networks = a
        .endpoints
        .iter()
        .map(|e| {
            (
                e.network.clone(),
                serde_json::json!({
                    "NetworkID": e.network_id,
                    "EndpointID": "",
                    "Aliases": e.aliases,
                    "IPAddress": s(e.ip),
                    "IPPrefixLen": e.prefix_len,
                    "Gateway": s(e.gateway),
                    "GlobalIPv6Address": s(e.ipv6),
                    "GlobalIPv6PrefixLen": e.ipv6_prefix_len,
                    "IPv6Gateway": s(e.ipv6_gateway),
                    "MacAddress": e.mac,
                }),
            )
        })
        .collect();
    let first = a.endpoints.first();
    NetworkSettings {
        ports: port_map(&a.ports),
        networks,
        ip_address: s(first.and_then(|e| e.ip)),
        gateway: s(first.and_then(|e| e.gateway)),
        mac_address: first.map(|e| e.mac.clone()).unwrap_or_default(),
        sandbox_key: a.netns.display().to_string(),
    }
}

/// docker's PortMap: "80/tcp" → [{"HostIp", "HostPort"}].
fn port_map(ports: &[crate::network::ports::PortMapping]) -> BTreeMap<String, Value> {
    let mut map: BTreeMap<String, Value> = BTreeMap::new();
    for m in ports {
        let host = serde_json::json!({
            "HostIp": m.host_ip.map_or("0.0.0.0".to_string(), |i| i.to_string()),
            "HostPort": m.host_port.to_string(),
        });
        match map.entry(m.key()).or_insert_with(|| Value::Array(vec![])) {
            Value::Array(v) => v.push(host),
            _ => unreachable!(),
        }
    }
    map
}

/// `ps`'s PORTS column: docker's `0.0.0.0:8080->80/tcp, …`.
fn ports_column(r: &Record) -> String {
    crate::network::published(&r.dir)
        .iter()
        .map(|m| {
            let ip = m.host_ip.map_or("0.0.0.0".to_string(), |i| match i {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            });
            format!("{ip}:{}->{}", m.host_port, m.key())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `docker image inspect IMAGE`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    /// `sha256:HEX` of the config.
    pub id: String,
    pub repo_tags: Vec<String>,
    /// `REPO@sha256:…` of the manifest, per repository.
    pub repo_digests: Vec<String>,
    pub created: String,
    pub author: String,
    pub config: ImageConfigView,
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Unpacked size of the layers, bytes.
    pub size: u64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
}

/// `.Config` of an image: the image config's `config` object.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageConfigView {
    pub hostname: String,
    pub user: String,
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub volumes: Option<BTreeMap<String, Value>>,
    pub working_dir: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
}

/// `.GraphDriver`: where the layers are, as overlay lowerdirs (top first, `:`-joined).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

/// `.RootFS`: the layers' diff ids, bottom first.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

/// One row of `docker ps`: the fields `--format` templates name.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerRow {
    #[serde(rename = "ID")]
    pub id: String,
    /// The image with its tag.
    pub image: String,
    /// Quoted, and cut to 20 characters unless untruncated.
    pub command: String,
    /// `2026-12-03 09:17:18 +0000 UTC`.
    pub created_at: String,
    /// `5 seconds ago`.
    pub running_for: String,
    pub ports: String,
    /// created, running, paused, exited.
    pub state: String,
    /// `Up 3 minutes`, `Exited (3) 2 hours ago`, `Created`.
    pub status: String,
    pub names: String,
    /// `k=v,…`.
    pub labels: String,
    /// Mount destinations, `,`-joined.
    pub mounts: String,
    pub networks: String,
    pub local_volumes: String,
    /// The pod's short id and name (podman's `ps --pod`), empty outside a pod.
    pub pod: String,
    pub pod_name: String,
}

/// One row of `docker images`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageRow {
    #[serde(rename = "ID")]
    pub id: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub created_at: String,
    pub created_since: String,
    /// `4.26MB` (decimal units, as docker).
    pub size: String,
    pub containers: String,
}

/// One row of `docker stats`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatsView {
    #[serde(rename = "ID")]
    pub id: String,
    /// The name or id it was asked by.
    pub container: String,
    pub name: String,
    #[serde(rename = "CPUPerc")]
    pub cpu_perc: String,
    pub mem_usage: String,
    pub mem_perc: String,
    #[serde(rename = "NetIO")]
    pub net_io: String,
    #[serde(rename = "BlockIO")]
    pub block_io: String,
    #[serde(rename = "PIDs")]
    pub pids: String,
}

/// `docker version`: the client is this program; the "server" is the engine library in
/// it (there is no daemon), reported for docker's scripts.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionView {
    pub client: VersionPart,
    pub server: VersionPart,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionPart {
    pub version: String,
    /// The docker API version whose field names these views follow.
    pub api_version: String,
    /// Go's names: linux, amd64/arm64.
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
}

/// `docker info`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InfoView {
    pub containers: usize,
    pub containers_running: usize,
    pub containers_paused: usize,
    pub containers_stopped: usize,
    pub images: usize,
    /// overlay, or copy where overlay cannot be mounted (HUSK_ROOTFS=copy).
    pub driver: String,
    pub cgroup_driver: String,
    /// "1" (also hybrid) or "2".
    pub cgroup_version: String,
    pub kernel_version: String,
    pub operating_system: String,
    #[serde(rename = "OSType")]
    pub os_type: String,
    pub architecture: String,
    #[serde(rename = "NCPU")]
    pub ncpu: usize,
    pub mem_total: u64,
    pub name: String,
    pub server_version: String,
    pub docker_root_dir: String,
    /// docker's `name=seccomp,profile=builtin` entries: what confines a container by default.
    pub security_options: Vec<String>,
}

/// docker's `time.Time{}` as JSON: what it shows for a start or finish that never was.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The docker API version whose field names these views follow (docker 20.10's).
pub const API_VERSION: &str = "1.41";

/// The host's memory, bytes (/proc/meminfo).
fn mem_total() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    })
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// go-units' HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks".
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let minutes = s / 60;
    let hours = (s as f64 / 3600.0).round() as i64;
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// go-units' HumanSize: decimal units with 4 significant digits ("4.26MB", "0B").
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // %.4g, then without trailing zeros.
    let digits = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}{}", units[i])
}

/// Binary units as docker stats shows memory ("1.5MiB").
fn human_binary(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2}{}", units[i]).replace(".00", "")
}

/// `2026-12-03 09:17:18 +0000 UTC` (Go's time.Time String) of an RFC 3339 time.
fn go_time(rfc3339: &str) -> String {
    match husk_oci::time::parse_rfc3339(rfc3339) {
        Some(secs) => {
            let t = husk_oci::time::rfc3339(secs, 0);
            format!("{} {} +0000 UTC", &t[..10], &t[11..19])
        }
        None => String::new(),
    }
}

/// Seconds from `rfc3339` to `now` (0 when unparseable).
pub fn since(rfc3339: &str, now: i64) -> i64 {
    husk_oci::time::parse_rfc3339(rfc3339).map_or(0, |t| now - t)
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Cut to `max` characters with a trailing `…` (docker's stringutils.Ellipsis).
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Go's strconv.Quote for the printable text of a command line.
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// An image reference with its tag: `busybox` → `busybox:latest`; digests and tags stay.
pub fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') || image.is_empty() {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The container's OCI spec (config.json), Null when unreadable.
fn spec_of(r: &Record) -> Value {
    std::fs::read(r.dir.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or(Value::Null)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// `-v` binds, volumes and tmpfs mounts of a container (not the engine's own /proc, /dev,
/// … mounts): binds from the record's docker-form `binds`, volumes from its `mounts`,
/// tmpfs mounts from the spec (those of tmpfs volumes shown as the volumes they are).
fn user_mounts(spec: &Value, meta: &ContainerMeta) -> Vec<MountView> {
    let mut out = Vec::new();
    for b in &meta.binds {
        let mut parts = b.splitn(3, ':');
        let (src, dst) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mode = parts.next().unwrap_or("").to_string();
        let propagation = mode
            .split(',')
            .find(|o| !o.is_empty() && *o != "ro" && *o != "rw")
            .unwrap_or("rprivate")
            .to_string();
        out.push(MountView {
            kind: "bind".into(),
            name: None,
            source: src.into(),
            destination: dst.into(),
            driver: None,
            rw: !mode.split(',').any(|o| o == "ro"),
            mode,
            propagation,
        });
    }
    let volumes = &meta.mounts;
    for v in volumes {
        out.push(MountView {
            kind: "volume".into(),
            name: Some(v.name.clone()),
            source: v.source.clone(),
            destination: v.destination.clone(),
            driver: Some(v.driver.clone()),
            mode: v.mode.clone(),
            rw: v.rw,
            propagation: v.propagation.clone(),
        });
    }
    for m in spec["mounts"].as_array().into_iter().flatten() {
        let dst = str_of(&m["destination"]);
        let is_system = [
            "/proc",
            "/dev",
            "/sys",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
        ]
        .contains(&dst.as_str())
            || dst.starts_with("/sys/");
        let is_volume = volumes.iter().any(|v| v.destination == dst);
        if m["type"] == "tmpfs" && !is_system && !is_volume {
            let opts = strings(&m["options"]);
            out.push(MountView {
                kind: "tmpfs".into(),
                name: None,
                source: String::new(),
                driver: None,
                rw: !opts.iter().any(|o| o == "ro"),
                destination: dst,
                mode: opts.join(","),
                propagation: String::new(),
            });
        }
    }
    out
}

/// What `ps` and `inspect` both derive from a record and its runtime state.
struct Live {
    status: &'static str,
    pid: i64,
    started_at: String,
}

fn live(r: &Record) -> Live {
    let c = r.runtime();
    let status = r.status_with(c.as_ref());
    let running = status != "exited";
    Live {
        status,
        pid: c
            .as_ref()
            .filter(|_| running)
            .map_or(0, |c| i64::from(c.pid())),
        // The monitor records each start; a foreground run's start is its runtime state's.
        started_at: r
            .meta
            .started
            .as_ref()
            .map(Timestamp::to_string)
            .or_else(|| c.map(|c| c.state().created))
            .unwrap_or_else(|| r.meta.created.to_string()),
    }
}

/// docker's ps STATUS: `Up 3 minutes`, `Up 5 seconds (Paused)`, `Exited (3) 2 hours ago`,
/// `Up 1 second (healthy)`, `Up 2 seconds (health: starting)`.
fn ps_status(
    status: &str,
    exit_code: Option<i64>,
    started: &str,
    finished: &str,
    now: i64,
    health: Option<&str>,
) -> String {
    match status {
        "running" => format!(
            "Up {}{}",
            human_duration(since(started, now)),
            match health {
                Some("starting") => " (health: starting)".to_string(),
                Some(h) => format!(" ({h})"),
                None => String::new(),
            }
        ),
        "paused" => format!("Up {} (Paused)", human_duration(since(started, now))),
        "created" => "Created".into(),
        _ => match exit_code {
            Some(c) if !finished.is_empty() => {
                format!("Exited ({c}) {} ago", human_duration(since(finished, now)))
            }
            Some(c) => format!("Exited ({c})"),
            None => "Exited".into(),
        },
    }
}

/// `ps --filter KEY=VALUE`: the same key given twice matches either value, different keys
/// must all match (as docker).
#[derive(Clone, Debug, Default)]
pub struct ContainerFilter {
    pub names: Vec<String>,
    pub statuses: Vec<String>,
    /// KEY or KEY=VALUE.
    pub labels: Vec<String>,
    /// Image names (with or without tag) or ids (prefixes), resolved to image ids.
    pub ancestors: Vec<String>,
    pub ids: Vec<String>,
    /// starting, healthy, unhealthy, none.
    pub health: Vec<String>,
}

/// A `--filter` that is not one of the keys above, or a status docker does not have.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("invalid filter {0:?}: use KEY=VALUE")]
    Syntax(String),
    #[error("invalid filter {0:?}: known keys are name, status, label, ancestor, id, health")]
    Key(String),
    #[error("invalid filter 'health={0}': starting, healthy, unhealthy, none")]
    Health(String),
    #[error("invalid filter 'status={0}': created, running, paused, exited")]
    Status(String),
}

impl ContainerFilter {
    /// Parse `--filter` arguments.
    pub fn parse(args: &[String]) -> Result<ContainerFilter, FilterError> {
        let mut f = ContainerFilter::default();
        for a in args {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| FilterError::Syntax(a.clone()))?;
            let v = v.to_string();
            match k {
                "name" => f.names.push(v),
                "status" => {
                    let known = [
                        "created",
                        "running",
                        "paused",
                        "exited",
                        "restarting",
                        "removing",
                        "dead",
                    ];
                    if !known.contains(&v.as_str()) {
                        return Err(FilterError::Status(v));
                    }
                    f.statuses.push(v)
                }
                "label" => f.labels.push(v),
                "ancestor" => f.ancestors.push(v),
                "id" => f.ids.push(v),
                "health" if ["starting", "healthy", "unhealthy", "none"].contains(&v.as_str()) => {
                    f.health.push(v)
                }
                "health" => return Err(FilterError::Health(v)),
                _ => return Err(FilterError::Key(a.clone())),
            }
        }
        Ok(f)
    }

    /// Whether a status filter asks for containers `ps` hides without `-a`.
    pub fn wants_stopped(&self) -> bool {
        self.statuses
            .iter()
            .any(|s| s != "running" && s != "paused")
    }

    fn matches(&self, c: &ContainerSummary, ancestor_ids: &[String]) -> bool {
        let any =
            |v: &Vec<String>, f: &dyn Fn(&str) -> bool| v.is_empty() || v.iter().any(|x| f(x));
        any(&self.names, &|n| c.name.contains(n))
            && any(&self.statuses, &|s| c.status == s)
            && any(&self.ids, &|i| c.id.starts_with(i))
            && any(&self.health, &|h| {
                c.health.as_deref().unwrap_or("none") == h
            })
            && any(&self.labels, &|l| match l.split_once('=') {
                Some((k, v)) => c.labels.get(k).is_some_and(|x| x == v),
                None => c.labels.contains_key(l),
            })
            && (self.ancestors.is_empty()
                || ancestor_ids.contains(&c.image_id)
                || self
                    .ancestors
                    .iter()
                    .any(|a| with_tag(a) == with_tag(&c.image)))
    }
}

/// How `ps` lists.
#[derive(Clone, Debug, Default)]
pub struct PsOptions {
    /// Also containers that are not running.
    pub all: bool,
    /// Only the `last` most recently created (any state).
    pub last: Option<usize>,
    pub filter: ContainerFilter,
    /// Full ids and commands.
    pub no_trunc: bool,
}

impl Engine {
    /// `docker ps`: the containers asked for, newest first, as docker's rows.
    pub fn ps(&self, o: &PsOptions) -> Vec<ContainerRow> {
        let all = o.all || o.last.is_some() || o.filter.wants_stopped();
        // Ancestors name images: compare their ids, so `busybox` finds `busybox:latest`
        // and a container run by id.
        let ancestor_ids: Vec<String> = self
            .store()
            .ok()
            .map(|s| {
                o.filter
                    .ancestors
                    .iter()
                    .filter_map(|a| s.resolve(a, self.default_registry()).ok())
                    .map(|r| r.config_digest.hex().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mut rows: Vec<ContainerSummary> = self
            .containers(all)
            .into_iter()
            .filter(|c| o.filter.matches(c, &ancestor_ids))
            .collect();
        rows.reverse();
        if let Some(n) = o.last {
            rows.truncate(n);
        }
        let now = now();
        rows.iter()
            .map(|c| container_row(c, o.no_trunc, now))
            .collect()
    }

    /// `docker inspect CONTAINER`, per container.
    pub fn inspect(&self, what: &[String]) -> Result<Vec<ContainerInspect>> {
        what.iter()
            .map(|w| {
                let mut r = find(&self.root, w).during("inspect", w)?;
                // A container whose runner died is settled first (monitor::settle_orphan).
                if crate::monitor::settle_orphan(&r, None) {
                    r = Record::load(&r.dir).during("inspect", w)?;
                }
                Ok(container_inspect(&r))
            })
            .collect()
    }

    /// `docker image inspect IMAGE`, per image.
    pub fn inspect_images(&self, images: &[String]) -> Result<Vec<ImageInspect>> {
        let store = self.store()?;
        images
            .iter()
            .map(|i| {
                let rec = store
                    .resolve(i, self.default_registry())
                    .during("image inspect", i)?;
                image_inspect(&store, &rec).during("image inspect", i)
            })
            .collect()
    }

    /// `docker images`: a row per tag (an untagged image once, as `<none>`).
    pub fn image_rows(&self, no_trunc: bool) -> Result<Vec<ImageRow>> {
        let now = now();
        let in_use = crate::record::list(&self.root);
        let mut rows = Vec::new();
        for i in self.images()? {
            let id = if no_trunc {
                format!("sha256:{}", i.id)
            } else {
                i.id[..12].to_string()
            };
            let created = i.created.clone().unwrap_or_default();
            let users = in_use.iter().filter(|r| r.meta.image_id == i.id).count();
            let tags: Vec<(String, String)> = if i.names.is_empty() {
                vec![("<none>".into(), "<none>".into())]
            } else {
                i.names.iter().map(|n| split_tag(n)).collect()
            };
            for (repository, tag) in tags {
                rows.push(ImageRow {
                    id: id.clone(),
                    repository,
                    tag,
                    digest: i.digest.to_string(),
                    created_at: go_time(&created),
                    created_since: if created.is_empty() {
                        "N/A".into()
                    } else {
                        format!("{} ago", human_duration(since(&created, now)))
                    },
                    size: human_size(i.size),
                    containers: users.to_string(),
                });
            }
        }
        Ok(rows)
    }

    /// `docker version`.
    pub fn version(&self) -> VersionView {
        let part = VersionPart {
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: API_VERSION.into(),
            os: std::env::consts::OS.into(),
            arch: husk_image::manifest::Platform::host().architecture,
            kernel_version: kernel_release(),
        };
        VersionView {
            client: part.clone(),
            server: part,
        }
    }

    /// `docker info`.
    pub fn info(&self) -> Result<InfoView> {
        let all = self.containers(true);
        let count = |s: &str| all.iter().filter(|c| c.status == s).count();
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        let mem_total = mem_total().unwrap_or(0);
        Ok(InfoView {
            containers: all.len(),
            containers_running: count("running"),
            containers_paused: count("paused"),
            containers_stopped: count("exited") + count("created"),
            images: self.images()?.len(),
            driver: if std::env::var("HUSK_ROOTFS").as_deref() == Ok("copy") {
                "copy".into()
            } else {
                "overlay".into()
            },
            cgroup_driver: self.cgroup_manager.as_str().into(),
            cgroup_version: if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                "2".into()
            } else {
                "1".into()
            },
            kernel_version: kernel_release(),
            operating_system: os,
            os_type: std::env::consts::OS.into(),
            architecture: std::env::consts::ARCH.into(),
            ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_total,
            name: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            docker_root_dir: self.root().display().to_string(),
            // The built-in profile applies to every container not run --privileged or
            // with another --security-opt seccomp= (spec_from_image/seccomp_default.json).
            security_options: vec!["name=seccomp,profile=builtin".into()],
        })
    }
}

/// A `stats` row of a sample; `asked` is how the container was named on the command line.
/// Network and block I/O are not measured yet: docker's `--` for unavailable.
pub fn stats_view(r: &crate::containers::StatsRow, asked: &str, no_trunc: bool) -> StatsView {
    let limit = r.memory_limit.or_else(mem_total).unwrap_or(0);
    StatsView {
        id: if no_trunc {
            r.id.clone()
        } else {
            r.id[..r.id.len().min(12)].to_string()
        },
        container: asked.to_string(),
        name: r.name.clone(),
        cpu_perc: format!("{:.2}%", r.cpu_percent),
        mem_usage: format!("{} / {}", human_binary(r.memory_usage), human_binary(limit)),
        mem_perc: if limit > 0 {
            format!("{:.2}%", 100.0 * r.memory_usage as f64 / limit as f64)
        } else {
            "--".into()
        },
        net_io: "--".into(),
        block_io: "--".into(),
        pids: r.pids.to_string(),
    }
}

/// `REPO:TAG` → (REPO, TAG); a name without a tag is `<none>`'s.
fn split_tag(n: &str) -> (String, String) {
    match n.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (n.to_string(), "<none>".into()),
    }
}

/// A `ps` row of a container.
pub fn container_row(c: &ContainerSummary, no_trunc: bool, now: i64) -> ContainerRow {
    let command = c.command.join(" ");
    let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    ContainerRow {
        id: if no_trunc {
            c.id.clone()
        } else {
            c.id[..c.id.len().min(12)].to_string()
        },
        image: with_tag(&c.image),
        command: go_quote(&if no_trunc {
            command
        } else {
            ellipsis(&command, 20)
        }),
        created_at: go_time(&c.created),
        running_for: format!("{} ago", human_duration(since(&c.created, now))),
        ports: c.ports.clone(),
        state: c.status.to_string(),
        status: ps_status(
            c.status,
            c.exit_code,
            &c.started_at,
            c.finished_at.as_deref().unwrap_or(""),
            now,
            c.health.as_deref(),
        ),
        names: c.name.clone(),
        labels: labels.join(","),
        mounts: c.mounts.join(","),
        networks: c.network.clone(),
        local_volumes: "0".into(),
        pod: c.pod.as_ref().map_or(String::new(), |p| match no_trunc {
            true => p.0.clone(),
            false => p.0[..p.0.len().min(12)].to_string(),
        }),
        pod_name: c.pod.as_ref().map_or(String::new(), |p| p.1.clone()),
    }
}

/// The container's networks as docker names them: the bridge networks it was asked to be
/// on (`,`-joined), else its mode.
fn networks_of(r: &Record) -> String {
    let names: Vec<&str> = r.meta.networks.iter().map(|w| w.network.as_str()).collect();
    match names.is_empty() {
        true => r.meta.network.to_string(),
        false => names.join(","),
    }
}

/// What `ps` needs of a record beyond its summary.
pub(crate) fn summary(r: Record) -> ContainerSummary {
    let l = live(&r);
    let spec = spec_of(&r);
    ContainerSummary {
        name: r.name().to_string(),
        image: r.meta.image.clone(),
        image_id: r.meta.image_id.clone(),
        created: r.meta.created.to_string(),
        exit_code: r.exit_code(),
        command: strings(&spec["process"]["args"]),
        labels: r.meta.labels.clone(),
        network: networks_of(&r),
        ports: ports_column(&r),
        // docker's column: a volume's name; a bind's or tmpfs's destination, as before.
        mounts: user_mounts(&spec, &r.meta)
            .into_iter()
            .map(|m| m.name.unwrap_or(m.destination))
            .collect(),
        started_at: l.started_at,
        finished_at: r.meta.finished.as_ref().map(Timestamp::to_string),
        pid: (l.pid > 0).then_some(l.pid as i32),
        health: health_of(&r, l.status).map(|h| h.status),
        pod: r.meta.pod.clone().map(|id| {
            let name = r.meta.pod_name.clone().unwrap_or_default();
            (id, name)
        }),
        status: l.status,
        id: r.meta.id,
    }
}

/// The health of a container with a check: its recorded state while it runs ("starting"
/// before the first check); docker keeps the last state of a stopped one too.
fn health_of(r: &Record, status: &str) -> Option<crate::health::HealthState> {
    crate::health::of_record(r)?.command()?;
    let recorded = crate::health::state(&r.dir);
    match status {
        "running" | "paused" => Some(recorded.unwrap_or_else(|| crate::health::HealthState {
            status: "starting".into(),
            ..Default::default()
        })),
        _ => recorded,
    }
}

fn container_inspect(r: &Record) -> ContainerInspect {
    let l = live(r);
    let spec = spec_of(r);
    let m = &r.meta;
    let args = strings(&spec["process"]["args"]);
    let (policy, retries) = match m.restart {
        crate::config::Restart::OnFailure(n) => ("on-failure".to_string(), n.map_or(0, u64::from)),
        r => (r.to_string(), 0),
    };
    let resources = &spec["linux"]["resources"];
    let nano_cpus = match (
        resources["cpu"]["quota"].as_i64(),
        resources["cpu"]["period"].as_u64(),
    ) {
        (Some(q), Some(p)) if q > 0 && p > 0 => q * 1_000_000_000 / p as i64,
        _ => 0,
    };
    let network = networks_of(r);
    let exit_code = r.exit_code();
    let finished = m.finished.as_ref().map(Timestamp::to_string);
    let user = &spec["process"]["user"];
    let stop_signal = husk_oci::signal::signal_name(m.stop_signal);
    // docker's: the options as given (config.rs: docker_security_opt); husk's own default
    // of no_new_privs shows too, as the option that asks for it. null when none.
    let mut security_opt = m.security_opt.clone();
    if spec["process"]["noNewPrivileges"] == true
        && !security_opt
            .iter()
            .any(|o| o.starts_with("no-new-privileges"))
    {
        security_opt.push("no-new-privileges".into());
    }
    ContainerInspect {
        id: m.id.clone(),
        created: m.created.to_string(),
        path: args.first().cloned().unwrap_or_default(),
        args: args.iter().skip(1).cloned().collect(),
        state: ContainerState {
            status: l.status.into(),
            running: l.status == "running" || l.status == "paused",
            paused: l.status == "paused",
            restarting: false,
            oom_killed: m.oom_killed,
            dead: false,
            pid: l.pid,
            exit_code: exit_code.unwrap_or(0),
            error: m.error.clone().unwrap_or_default(),
            started_at: if l.status == "created" {
                ZERO_TIME.into()
            } else {
                l.started_at
            },
            finished_at: finished.unwrap_or_else(|| ZERO_TIME.into()),
            health: health_of(r, l.status),
            checkpointed: m.checkpoint.checkpointed,
            checkpointed_at: m
                .checkpoint
                .checkpointed_at
                .as_ref()
                .map(Timestamp::to_string),
            restored: m.checkpoint.restored,
            restored_at: m.checkpoint.restored_at.as_ref().map(Timestamp::to_string),
        },
        image: format!("sha256:{}", m.image_id),
        name: format!("/{}", r.name()),
        restart_count: m.restart_count.into(),
        driver: "overlay".into(),
        config: ContainerConfigView {
            hostname: str_of(&spec["hostname"]),
            // As given (-u), else the image's; the resolved ids are in the spec.
            user: m.user.clone().unwrap_or_else(|| {
                match (user["uid"].as_u64(), user["gid"].as_u64()) {
                    (Some(0), Some(0)) | (None, _) => String::new(),
                    (Some(u), Some(g)) => format!("{u}:{g}"),
                    (Some(u), None) => u.to_string(),
                }
            }),
            tty: spec["process"]["terminal"] == true,
            open_stdin: m.interactive,
            env: strings(&spec["process"]["env"]),
            cmd: m.cmd.clone(),
            entrypoint: Some(m.entrypoint.clone()).filter(|e| !e.is_empty()),
            image: m.image.clone(),
            working_dir: str_of(&spec["process"]["cwd"]),
            labels: m.labels.clone(),
            stop_signal,
            healthcheck: crate::health::of_record(r),
        },
        host_config: HostConfig {
            binds: m.binds.clone(),
            network_mode: network.clone(),
            restart_policy: RestartPolicy {
                name: policy,
                maximum_retry_count: retries,
            },
            auto_remove: m.remove,
            privileged: m.privileged,
            readonly_rootfs: spec["root"]["readonly"] == true,
            memory: resources["memory"]["limit"].as_i64().unwrap_or(0),
            nano_cpus,
            pids_limit: resources["pids"]["limit"].as_i64().filter(|&n| n > 0),
            cap_add: m.cap_add.clone(),
            security_opt: (!security_opt.is_empty()).then_some(security_opt),
            userns_mode: m.userns.clone(),
            init: m.init,
            storage_opt: match m.writable {
                crate::writable::WritableLayer::Quota(n) => {
                    Some([("size".to_string(), n.to_string())].into())
                }
                _ => None,
            },
        },
        mounts: user_mounts(&spec, m),
        network_settings: network_settings(
            r,
            network,
            if l.pid > 0 {
                format!("/proc/{}/ns/net", l.pid)
            } else {
                String::new()
            },
        ),
    }
}

fn image_inspect(store: &Store, rec: &ImageRecord) -> Result<ImageInspect> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Blob {
        created: Option<String>,
        author: Option<String>,
        architecture: String,
        os: String,
        variant: Option<String>,
        config: ImageConfigView,
    }
    let data = store.read_blob(&rec.config_digest)?;
    let blob: Blob =
        serde_json::from_slice(&data).map_err(|source| crate::error::ImageError::Parse {
            what: "config",
            source,
        })?;
    let names = crate::images::names_of(store, rec)?;
    let mut repo_digests: Vec<String> = names
        .iter()
        .map(|n| format!("{}@{}", split_tag(n).0, rec.manifest_digest))
        .collect();
    repo_digests.dedup();
    let lower: Vec<String> = crate::rootfs::layer_dirs(store, rec)
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    Ok(ImageInspect {
        id: rec.config_digest.to_string(),
        repo_tags: names,
        repo_digests,
        created: blob
            .created
            .or_else(|| rec.created.clone())
            .unwrap_or_default(),
        author: blob.author.unwrap_or_default(),
        config: blob.config,
        // The platform it was pulled for, where the config does not say (a variant often).
        variant: blob
            .variant
            .or_else(|| rec.platform.as_ref().and_then(|p| p.variant.clone())),
        architecture: Some(blob.architecture)
            .filter(|a| !a.is_empty())
            .or_else(|| rec.platform.as_ref().map(|p| p.architecture.clone()))
            .unwrap_or_default(),
        os: blob.os,
        size: crate::images::layer_sizes(store, rec),
        graph_driver: GraphDriver {
            name: "overlay".into(),
            data: [("LowerDir".to_string(), lower.join(":"))].into(),
        },
        root_fs: RootFs {
            kind: "layers".into(),
            layers: rec.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        },
    })
}

/// `volume inspect`: docker's layout of one volume.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInspect {
    /// RFC 3339.
    pub created_at: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    /// The directory containers mount (ROOT/volumes/NAME/_data).
    pub mountpoint: String,
    pub name: String,
    /// The driver's options (`--opt`).
    pub options: BTreeMap<String, String>,
    /// Always "local".
    pub scope: String,
}

/// One `volume ls` row, with docker's `--format` field names.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeRow {
    pub driver: String,
    pub name: String,
    pub mountpoint: String,
    pub scope: String,
    /// "KEY=VALUE,…".
    pub labels: String,
    /// How many containers use it.
    pub links: String,
    /// "N/A", as docker's outside `system df -v`.
    pub size: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_as_docker_words_them() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(180), "3 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(2 * 3600), "2 hours");
        assert_eq!(human_duration(3 * 86_400), "3 days");
        assert_eq!(human_duration(15 * 86_400), "2 weeks");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(4_261_000), "4.261MB");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(123_456_789), "123.5MB");
    }

    #[test]
    fn ps_status_and_command_like_docker() {
        let t = |s| husk_oci::time::parse_rfc3339(s).unwrap();
        let now = t("2026-01-01T12:00:00Z");
        assert_eq!(
            ps_status("running", None, "2026-01-01T11:57:00Z", "", now, None),
            "Up 3 minutes"
        );
        assert_eq!(
            ps_status(
                "running",
                None,
                "2026-01-01T11:59:57Z",
                "",
                now,
                Some("starting")
            ),
            "Up 3 seconds (health: starting)"
        );
        assert_eq!(
            ps_status(
                "running",
                None,
                "2026-01-01T11:59:57Z",
                "",
                now,
                Some("unhealthy")
            ),
            "Up 3 seconds (unhealthy)"
        );
        assert_eq!(
            ps_status("exited", Some(3), "", "2026-01-01T10:00:00Z", now, None),
            "Exited (3) 2 hours ago"
        );
        assert_eq!(
            go_quote(&ellipsis("sleep 1000 && echo done there", 20)),
            "\"sleep 1000 && echo …\""
        );
        assert_eq!(
            go_time("2026-01-01T12:00:00.123Z"),
            "2026-01-01 12:00:00 +0000 UTC"
        );
        assert_eq!(with_tag("busybox"), "busybox:latest");
        assert_eq!(with_tag("127.0.0.1:5000/bb"), "127.0.0.1:5000/bb:latest");
        assert_eq!(with_tag("127.0.0.1:5000/bb:1"), "127.0.0.1:5000/bb:1");
    }

    #[test]
    fn filters_parse_and_refuse_unknown_keys() {
        let f = |a: &[&str]| {
            ContainerFilter::parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        let ok = f(&["name=web", "status=exited", "label=a=b", "ancestor=busybox"]).unwrap();
        assert_eq!(ok.labels, ["a=b"]);
        assert!(ok.wants_stopped());
        assert!(f(&["color=red"]).is_err());
        assert!(f(&["status=sleepy"]).is_err());
        assert!(f(&["name"]).is_err());
    }
}

/// One row of `docker network ls`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkRow {
    /// 12 hex digits.
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub driver: String,
    pub scope: String,
    #[serde(rename = "IPv6")]
    pub ipv6: bool,
    pub internal: bool,
    pub created_at: String,
}

pub fn network_row(d: &crate::network::store::NetworkDef) -> NetworkRow {
    NetworkRow {
        id: d.id[..12.min(d.id.len())].to_string(),
        name: d.name.clone(),
        driver: d.driver.clone(),
        scope: "local".into(),
        ipv6: d.ipv6_enabled,
        internal: d.internal,
        created_at: d.created.clone(),
    }
}

/// `docker network inspect NETWORK`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Value,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    /// Container id → its endpoint (Name, MacAddress, IPv4Address "ADDR/LEN", IPv6Address).
    pub containers: BTreeMap<String, Value>,
    /// `com.docker.network.bridge.name` (the bridge interface) and whether DNS serves names.
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

pub fn network_inspect(n: &crate::networks::NetworkInfo) -> NetworkInspect {
    let d = &n.def;
    let cidr = |ip: Option<std::net::IpAddr>, len: u8| {
        ip.map(|i| format!("{i}/{len}")).unwrap_or_default()
    };
    NetworkInspect {
        name: d.name.clone(),
        id: d.id.clone(),
        created: d.created.clone(),
        scope: "local".into(),
        driver: d.driver.clone(),
        enable_ipv6: d.ipv6_enabled,
        ipam: serde_json::json!({
            "Driver": "default",
            "Options": {},
            "Config": d.subnets.iter().map(|s| serde_json::json!({
                "Subnet": s.subnet,
                "Gateway": s.gateway.clone().unwrap_or_default(),
            })).collect::<Vec<_>>(),
        }),
        internal: d.internal,
        attachable: false,
        ingress: false,
        containers: n
            .containers
            .iter()
            .map(|(id, name, e)| {
                (
                    id.clone(),
                    serde_json::json!({
                        "Name": name,
                        "EndpointID": "",
                        "MacAddress": e.mac,
                        "IPv4Address": cidr(e.ip, e.prefix_len),
                        "IPv6Address": cidr(e.ipv6, e.ipv6_prefix_len),
                    }),
                )
            })
            .collect(),
        options: [
            (
                "com.docker.network.bridge.name".to_string(),
                d.network_interface.clone(),
            ),
            ("dns_enabled".to_string(), d.dns_enabled.to_string()),
        ]
        .into(),
        labels: BTreeMap::new(),
    }
}
