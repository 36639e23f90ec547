//! The engine's containers on disk: <store root>/containers/<id>/container.json (name, image,
//! exit code, ...), found by name, id or unique id prefix; their live status comes from the
//! runtime library's state (never from a stored "running" flag).
//!
//! Engine state of a container: <store root>/containers/<id>/{config.json, container.json,
//! upper, work, rootfs, ctr.log}; the runtime library's state lives under /run/husk-engine
//! (or $XDG_RUNTIME_DIR/husk-engine), apart from husk-runtime's /run/husk.

use crate::config::Restart;
use crate::health::Healthcheck;
use crate::network::ports::PortMapping;
use crate::network::setup::Wanted;
use crate::network::Network;
use crate::networks::EtcRequest;
use crate::os::{IoContext, IoError};
use crate::volumes::attach::VolumeMountRecord;
use crate::writable::WritableLayer;
use husk_container::Container;
use husk_oci::Status;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where husk-container keeps the runtime state of engine containers.
pub fn state_root() -> PathBuf {
    // Rootless: the same place inside the user namespace (uid 0 there) and outside.
    if !husk_container::rootless::is_unprivileged() {
        return PathBuf::from("/run/husk-engine");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("husk-engine"),
        None => std::env::temp_dir().join(format!(
            "husk-engine-{}",
            husk_container::rootless::host_euid()
        )),
    }
}

/// Finding and reading the engine's containers.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Io(#[from] IoError),
    /// A container.json that is not a record (truncated, damaged, or a field of the wrong
    /// type): from disk, so untrusted.
    #[error("parsing {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("{what:?} matches {n} containers: give more of the id")]
    Ambiguous { what: String, n: usize },
    #[error("the image is in use by running container {0}")]
    ImageInUseByRunning(String),
    #[error("the image is in use by container {0} (remove it first, or use -f)")]
    ImageInUse(String),
}

/// An RFC 3339 UTC time as the engine writes it (`2026-11-23T11:31:01.123456789Z`). Kept
/// as written (nanoseconds and all, so a record round-trips unchanged); one that does not
/// parse makes the record fail to load.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Timestamp(String);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(husk_oci::time::rfc3339_now())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Seconds since the epoch.
    pub fn secs(&self) -> i64 {
        husk_oci::time::parse_rfc3339(&self.0).unwrap_or_default()
    }
}

/// A text that is not an RFC 3339 time.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an RFC 3339 time")]
pub struct BadTimestamp(pub String);

impl std::str::FromStr for Timestamp {
    type Err = BadTimestamp;
    fn from_str(s: &str) -> Result<Timestamp, BadTimestamp> {
        match husk_oci::time::parse_rfc3339(s) {
            Some(_) => Ok(Timestamp(s.to_string())),
            None => Err(BadTimestamp(s.to_string())),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// container.json's `runner`: the process that waits for the container and records its
/// end — its monitor, or the foreground `husk run` — as its pid and start time (an
/// identity that survives pid reuse). When it is dead, the commands that find the
/// container do what it would have done (containers.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    pub pid: i32,
    /// /proc/PID/stat's start time; None when it could not be read.
    #[serde(default)]
    pub start: Option<u64>,
}

impl Runner {
    /// The process `pid`, identified by its start time.
    pub(crate) fn of(pid: i32) -> Runner {
        Runner {
            pid,
            start: husk_container::proc_start_time(pid).map(|(s, _)| s),
        }
    }

    /// This process.
    pub(crate) fn me() -> Runner {
        Runner::of(std::process::id() as i32)
    }
}

/// Everything the engine keeps about one container beside its spec (config.json):
/// container.json. Written by `run`/`create`, then by whoever runs the container (the
/// monitor or the foreground `husk run`) and the commands that change it (start, stop,
/// rename, network connect …); always whole and atomically ([`Record::save`]).
///
/// Fields an older husk did not write take their defaults, and a `null` reads as the
/// default too (`start` resets fields to null). Unknown fields are not kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerMeta {
    /// 64 hex digits; also the name of the container's directory.
    pub id: String,
    #[serde(default, deserialize_with = "or_default")]
    pub name: String,
    /// The image as the user named it, and its id (hex, no `sha256:`).
    #[serde(default, deserialize_with = "or_default")]
    pub image: String,
    #[serde(default, deserialize_with = "or_default")]
    pub image_id: String,
    pub created: Timestamp,
    /// The last start (the monitor's; a foreground run keeps its start in the runtime
    /// state), and the end of the last run.
    #[serde(default)]
    pub started: Option<Timestamp>,
    #[serde(default)]
    pub finished: Option<Timestamp>,
    /// Recorded once the container's end is known (-1: it is not).
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// Why the end is not what the container's process said (a failed restart, a dead
    /// monitor), for inspect's State.Error.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub oom_killed: bool,
    #[serde(default, deserialize_with = "or_default")]
    pub restart_count: u32,
    /// What `husk stop` sends first (a number): --stop-signal, the image's, or SIGTERM.
    #[serde(default = "sigterm", deserialize_with = "or_sigterm")]
    pub stop_signal: i32,
    #[serde(
        default = "no_restart",
        serialize_with = "as_text",
        deserialize_with = "restart"
    )]
    pub restart: Restart,
    /// --rm.
    #[serde(default, deserialize_with = "or_default")]
    pub remove: bool,
    /// Set by `stop`: the exit is wanted, whatever the restart policy says.
    #[serde(default, deserialize_with = "or_default")]
    pub stopping: bool,
    /// Made by `create` and not started since: no runtime state, no runner, no exit code.
    #[serde(default, deserialize_with = "or_default")]
    pub never_started: bool,
    /// None: not run yet, or written by a husk that did not record it (then only the runner
    /// records the end, as before).
    #[serde(default)]
    pub runner: Option<Runner>,
    /// The container's init and its monitor, as last started.
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub monitor_pid: Option<i32>,
    /// The network mode; `container:ID` (the other container's id, not the name the user
    /// gave: it may be renamed).
    #[serde(
        default = "no_network",
        serialize_with = "as_text",
        deserialize_with = "network"
    )]
    pub network: Network,
    /// The bridge networks asked for: what `start` sets up again (network/setup.rs).
    #[serde(default, deserialize_with = "or_default")]
    pub networks: Vec<Wanted>,
    #[serde(default, deserialize_with = "or_default")]
    pub ports: Vec<PortMapping>,
    /// What the /etc files are made from besides the network.
    #[serde(default, deserialize_with = "or_default")]
    pub etc: EtcRequest,
    /// Namespaces joined from other containers: spec kind → the other container's id
    /// ([`crate::joins`]).
    #[serde(default, deserialize_with = "or_default")]
    pub joins: BTreeMap<String, String>,
    /// The pod it belongs to (id and name), and whether it is that pod's infra container.
    #[serde(default)]
    pub pod: Option<String>,
    #[serde(default)]
    pub pod_name: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub infra: bool,
    /// docker's Config beyond the spec: the entrypoint/cmd split of the process's args,
    /// -u as given, -i.
    #[serde(default, deserialize_with = "or_default")]
    pub entrypoint: Vec<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub interactive: bool,
    /// The image's, then --label's (docker's Config.Labels).
    #[serde(default, deserialize_with = "or_default")]
    pub labels: BTreeMap<String, String>,
    /// -v binds in docker's `SRC:DST[:OPTS]` form.
    #[serde(default, deserialize_with = "or_default")]
    pub binds: Vec<String>,
    /// Volumes as docker's inspect shows them, and which are anonymous.
    #[serde(default, deserialize_with = "or_default")]
    pub mounts: Vec<VolumeMountRecord>,
    #[serde(default, deserialize_with = "or_default")]
    pub privileged: bool,
    #[serde(default, deserialize_with = "or_default")]
    pub init: bool,
    #[serde(default, deserialize_with = "or_default")]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub writable: WritableLayer,
    /// docker's HostConfig.UsernsMode: --userns as given ("" for the engine's own
    /// namespace).
    #[serde(default, deserialize_with = "or_default")]
    pub userns: String,
    /// docker's HostConfig.SecurityOpt: --security-opt as given (config.rs:
    /// docker_security_opt).
    #[serde(default, deserialize_with = "or_default")]
    pub security_opt: Vec<String>,
    /// Made with `husk --cgroup-manager systemd`: its config.json's cgroupsPath is systemd's
    /// `slice:prefix:name`, so `start` must create it with the systemd driver again.
    #[serde(default, deserialize_with = "or_default")]
    pub systemd_cgroup: bool,
    /// Checkpointed or restored (`container checkpoint`/`restore`), in container.json's
    /// top level.
    #[serde(flatten)]
    pub checkpoint: CheckpointState,
}

/// Where a container stands with checkpoint/restore (podman's State.Checkpointed,
/// CheckpointedAt, Restored, RestoredAt).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Its last run ended in a checkpoint, not an exit: its CRIU images wait in
    /// DIR/checkpoint for `container restore`.
    #[serde(default, deserialize_with = "or_default")]
    pub checkpointed: bool,
    #[serde(default)]
    pub checkpointed_at: Option<Timestamp>,
    /// Its current run was restored from a checkpoint.
    #[serde(default, deserialize_with = "or_default")]
    pub restored: bool,
    #[serde(default)]
    pub restored_at: Option<Timestamp>,
}

fn or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn sigterm() -> i32 {
    libc::SIGTERM
}

fn or_sigterm<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    Ok(Option::<i32>::deserialize(d)?.unwrap_or(libc::SIGTERM))
}

fn no_restart() -> Restart {
    Restart::No
}

fn no_network() -> Network {
    Network::None
}

/// Restart and Network are kept in the form their parsers read (their Display).
fn as_text<S: Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn restart<'de, D: Deserializer<'de>>(d: D) -> Result<Restart, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) => Restart::parse(&s).map_err(D::Error::custom),
        None => Ok(Restart::No),
    }
}

fn network<'de, D: Deserializer<'de>>(d: D) -> Result<Network, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) => Network::parse(&s).map_err(D::Error::custom),
        None => Ok(Network::None),
    }
}

/// One container of the engine: its directory and its container.json.
#[derive(Clone, Debug)]
pub struct Record {
    pub dir: PathBuf,
    pub meta: ContainerMeta,
}

impl Record {
    /// DIR/container.json; a damaged one is [`RecordError::Parse`] naming the file.
    pub fn load(dir: &Path) -> Result<Record, RecordError> {
        let f = dir.join("container.json");
        let data = std::fs::read(&f).ctx("reading", &f)?;
        let meta = serde_json::from_slice(&data)
            .map_err(|source| RecordError::Parse { path: f, source })?;
        Ok(Record {
            dir: dir.to_path_buf(),
            meta,
        })
    }

    pub fn id(&self) -> &str {
        &self.meta.id
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// Write container.json atomically (a reader never sees half a file).
    pub fn save(&self) -> Result<(), IoError> {
        let f = self.dir.join("container.json");
        let tmp = self.dir.join(".container.json.tmp");
        serde_json::to_vec_pretty(&self.meta)
            .map_err(std::io::Error::from)
            .and_then(|data| std::fs::write(&tmp, data))
            .and_then(|_| std::fs::rename(&tmp, &f))
            .ctx("writing", &f)
    }

    /// The runtime library's view of the container, while its state exists.
    pub fn runtime(&self) -> Option<Container> {
        Container::load(&state_root(), self.id()).ok()
    }

    /// "running", "paused", "created", "exited" (exit code recorded, or the process is gone).
    pub fn status(&self) -> &'static str {
        self.status_with(self.runtime().as_ref())
    }

    /// [`Record::status`] from a runtime handle already loaded.
    pub(crate) fn status_with(&self, c: Option<&Container>) -> &'static str {
        match c {
            None if self.meta.never_started => "created",
            c => status_of(c),
        }
    }

    pub fn exit_code(&self) -> Option<i64> {
        self.meta.exit_code
    }

    /// Whether the container's runner ([`Runner`]) is alive. True when the record names
    /// none (written by an older husk): then only the runner records the end, as before.
    pub(crate) fn runner_alive(&self) -> bool {
        let Some(r) = self.meta.runner else {
            return true;
        };
        match husk_container::proc_start_time(r.pid) {
            Some((start, zombie)) => !zombie && r.start.is_none_or(|s| s == start),
            None => false,
        }
    }

    /// Whoever ran the container (foreground `husk run` or the monitor) has recorded its end,
    /// or removed it (--rm).
    pub(crate) fn finished(&self) -> bool {
        match Record::load(&self.dir) {
            Ok(r) => r.exit_code().is_some(),
            Err(_) => !self.dir.exists(),
        }
    }
}

/// The status the runtime's state says (see [`Record::status_with`]).
fn status_of(c: Option<&Container>) -> &'static str {
    match c.map(|c| c.status()) {
        Some(Status::Running) => "running",
        Some(Status::Paused) => "paused",
        Some(Status::Created | Status::Creating) => "created",
        Some(Status::Stopped | Status::Unknown) | None => "exited",
    }
}

/// An exclusive flock on CONTAINERS.lock (made if missing), released on drop.
pub(crate) fn lock_names(containers: &Path) -> Result<std::fs::File, IoError> {
    std::fs::create_dir_all(containers).ctx("creating", containers)?;
    crate::os::lock_file(&containers.with_extension("lock"))
}

/// Whether a container (one whose record loads) has the name `name`.
pub(crate) fn name_taken(containers: &Path, name: &str) -> bool {
    let Ok(rd) = std::fs::read_dir(containers) else {
        return false;
    };
    rd.flatten()
        .any(|e| Record::load(&e.path()).is_ok_and(|r| r.name() == name))
}

pub fn containers_dir(root: &Path) -> PathBuf {
    root.join("containers")
}

/// Every container, oldest first. Directories whose record does not load are left out:
/// one without container.json is a `run` still making it; a damaged one is in
/// [`broken`].
pub fn list(root: &Path) -> Vec<Record> {
    let mut v: Vec<Record> = std::fs::read_dir(containers_dir(root))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| Record::load(&e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.meta.created.cmp(&b.meta.created));
    v
}

/// The containers whose container.json exists but is not a record: (its id — the
/// directory's name —, why), for a warning, or as the answer of [`find`] by that id.
pub fn broken(root: &Path) -> Vec<(String, RecordError)> {
    let Ok(rd) = std::fs::read_dir(containers_dir(root)) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| match Record::load(&e.path()) {
            Err(err @ RecordError::Parse { .. }) => {
                Some((e.file_name().to_string_lossy().into_owned(), err))
            }
            _ => None,
        })
        .collect()
}

/// The container named `what`, or with that id, or the one whose id starts with it. When
/// none is but a damaged record's id is `what` (or starts with it, alone), its parse error.
pub fn find(root: &Path, what: &str) -> Result<Record, RecordError> {
    let all = list(root);
    if let Some(i) = all.iter().position(|r| r.name() == what || r.id() == what) {
        return Ok(all.into_iter().nth(i).unwrap());
    }
    let mut hits: Vec<Record> = all
        .into_iter()
        .filter(|r| !what.is_empty() && r.id().starts_with(what))
        .collect();
    match hits.len() {
        1 => Ok(hits.pop().unwrap()),
        0 => {
            let mut damaged: Vec<RecordError> = broken(root)
                .into_iter()
                .filter(|(id, _)| !what.is_empty() && id.starts_with(what))
                .map(|(_, e)| e)
                .collect();
            match damaged.len() {
                1 => Err(damaged.pop().unwrap()),
                _ => Err(RecordError::NotFound(what.to_string())),
            }
        }
        n => Err(RecordError::Ambiguous {
            what: what.to_string(),
            n,
        }),
    }
}

/// An image may go while no container uses it; with `force`, while none of them runs (the
/// layers of a running container's overlay must stay).
pub(crate) fn check_image_unused(
    root: &Path,
    image_id: &str,
    force: bool,
) -> Result<(), RecordError> {
    for r in list(root) {
        if r.meta.image_id != image_id {
            continue;
        }
        let running = r.runtime().is_some_and(|c| c.status() != Status::Stopped);
        if running {
            return Err(RecordError::ImageInUseByRunning(r.name().to_string()));
        }
        if !force {
            return Err(RecordError::ImageInUse(r.name().to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// container.json files as `husk run -d`, `create`, `start`, `stop` and `pod create`
    /// of husk's main wrote them (paths in them shortened): records on disk today must
    /// keep loading.
    const TODAY: [(&str, &str); 5] = [
        (
            "detached-stopped",
            include_str!("../testdata/container-json/detached-stopped.json"),
        ),
        (
            "created-never-started",
            include_str!("../testdata/container-json/created-never-started.json"),
        ),
        (
            "created-started",
            include_str!("../testdata/container-json/created-started.json"),
        ),
        (
            "pod-infra",
            include_str!("../testdata/container-json/pod-infra.json"),
        ),
        (
            "pod-member-running",
            include_str!("../testdata/container-json/pod-member-running.json"),
        ),
    ];

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("husk-record-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn load_text(dir: &Path, text: &[u8]) -> Result<Record, RecordError> {
        std::fs::write(dir.join("container.json"), text).unwrap();
        Record::load(dir)
    }

    #[test]
    fn records_written_today_load_and_keep_every_field() {
        let dir = temp_dir("today");
        for (what, text) in TODAY {
            let r = load_text(&dir, text.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
            let original: Value = serde_json::from_str(text).unwrap();
            assert_eq!(r.id(), original["id"], "{what}");
            assert_eq!(r.name(), original["name"], "{what}");
            assert_eq!(r.meta.created.as_str(), original["created"], "{what}");
            assert_eq!(r.exit_code(), original["exit_code"].as_i64(), "{what}");
            // Saved again, every field it had is there with the same value (a null reads
            // as the default, and is written as it).
            r.save().unwrap();
            let saved: Value =
                serde_json::from_slice(&std::fs::read(dir.join("container.json")).unwrap())
                    .unwrap();
            for (k, v) in original.as_object().unwrap() {
                let now = &saved[k];
                let same = now == v || (v.is_null() && (now == false || now == 0));
                assert!(same, "{what}: {k} was {v}, is {now} once saved");
            }
            assert_eq!(Record::load(&dir).unwrap().meta, r.meta, "{what}");
        }
        // What each kind of record says, typed.
        let detached = load_text(&dir, TODAY[0].1.as_bytes()).unwrap().meta;
        assert_eq!(detached.exit_code, Some(137));
        assert_eq!(detached.stop_signal, libc::SIGINT);
        assert_eq!(detached.restart, Restart::OnFailure(Some(2)));
        assert_eq!(detached.network, Network::Bridge);
        assert_eq!(detached.networks[0].network, "bridge");
        assert_eq!(detached.ports[0].host_port, 18089);
        assert_eq!(detached.ports[0].host_ip, Some([127, 0, 0, 1].into()));
        assert_eq!(detached.labels["a"], "b");
        assert_eq!(detached.binds, ["/srv/data:/host:ro"]);
        assert_eq!(detached.mounts[0].name, "vol1");
        assert!(detached.mounts[0].rw && !detached.mounts[0].anonymous);
        assert_eq!(detached.healthcheck.unwrap().test, ["CMD-SHELL", "true"]);
        assert_eq!(detached.runner.unwrap().pid, 4901);
        assert_eq!(detached.monitor_pid, Some(4901));
        assert!(detached.stopping && !detached.never_started);
        assert_eq!(detached.writable, WritableLayer::Disk);
        assert_eq!(
            detached.finished.unwrap().secs() - detached.started.unwrap().secs(),
            16
        );
        let created = load_text(&dir, TODAY[1].1.as_bytes()).unwrap();
        assert!(created.meta.never_started && created.meta.runner.is_none());
        assert_eq!(created.status(), "created");
        assert_eq!(created.meta.entrypoint, ["/bin/sh"]);
        let started = load_text(&dir, TODAY[2].1.as_bytes()).unwrap().meta;
        assert!(!started.never_started && !started.stopping);
        assert_eq!(started.exit_code, Some(0));
        assert_eq!(started.error, None);
        let infra = load_text(&dir, TODAY[3].1.as_bytes()).unwrap().meta;
        assert!(infra.infra);
        assert_eq!(infra.pod_name.as_deref(), Some("p1"));
        assert_eq!(infra.etc.hostname, "p1");
        let member = load_text(&dir, TODAY[4].1.as_bytes()).unwrap().meta;
        assert!(!member.infra);
        assert_eq!(member.pod, infra.pod);
        assert_eq!(member.joins["network"], infra.id);
        assert_eq!(member.network, Network::Container(infra.id.clone()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_record_is_a_parse_error_naming_the_file() {
        let dir = temp_dir("damaged");
        let file = dir.join("container.json");
        let text = TODAY[0].1;
        let parse_error = |r: Result<Record, RecordError>| match r {
            Err(e @ RecordError::Parse { .. }) => {
                assert!(e
                    .to_string()
                    .starts_with(&format!("parsing {}: ", file.display())));
                e.to_string()
            }
            Err(e) => panic!("not a parse error: {e}"),
            Ok(_) => panic!("a damaged record loaded"),
        };
        // Cut anywhere (a full disk, a crash of an older husk that wrote in place).
        let len = text.trim_end().len();
        for n in (0..len).step_by(7).chain(len - 30..len) {
            parse_error(load_text(&dir, &text.as_bytes()[..n]));
        }
        // Fields of the wrong type or out of range, and values their parsers refuse.
        let with = |k: &str, v: Value| {
            let mut m: Value = serde_json::from_str(text).unwrap();
            m[k] = v;
            serde_json::to_vec(&m).unwrap()
        };
        for (k, v, says) in [
            ("exit_code", Value::from("x"), "invalid type"),
            ("pid", Value::from(1u64 << 40), "invalid value"),
            ("created", Value::from("yesterday"), "not an RFC 3339 time"),
            ("started", Value::from(5), "invalid type"),
            ("restart", Value::from("sometimes"), "--restart"),
            ("network", Value::from("container:"), "--network"),
            (
                "ports",
                serde_json::json!([{"host_port": 70000}]),
                "invalid value",
            ),
            ("labels", serde_json::json!({"a": 1}), "invalid type"),
            (
                "mounts",
                serde_json::json!([{"Name": "v"}]),
                "missing field",
            ),
            (
                "runner",
                serde_json::json!({"start": 1}),
                "missing field `pid`",
            ),
            ("id", Value::Null, "invalid type"),
        ] {
            let e = parse_error(load_text(&dir, &with(k, v)));
            assert!(e.contains(says), "{k}: {e}");
        }
        for junk in [&b"[]"[..], b"null", b"{}", b"\xff\xfe", b"{\"id\": \"a\"}"] {
            parse_error(load_text(&dir, junk));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn found_by_name_id_or_unique_id_prefix() {
        let root = std::env::temp_dir().join(format!("husk-find-{}", std::process::id()));
        let base: Value = serde_json::from_str(TODAY[1].1).unwrap();
        for (id, name) in [("abc123", "web"), ("abd456", "db"), ("ffe789", "abc")] {
            let dir = containers_dir(&root).join(id);
            std::fs::create_dir_all(&dir).unwrap();
            let mut v = base.clone();
            v["id"] = id.into();
            v["name"] = name.into();
            let meta = serde_json::from_value(v).unwrap();
            Record { dir, meta }.save().unwrap();
        }
        let found = |w: &str| find(&root, w).map(|r| r.meta.id).map_err(|e| e.to_string());
        assert_eq!(found("web"), Ok("abc123".into()));
        assert_eq!(found("abd456"), Ok("abd456".into()));
        assert_eq!(found("abd"), Ok("abd456".into()));
        assert_eq!(
            found("ab"),
            Err("\"ab\" matches 2 containers: give more of the id".into())
        );
        // A name (or a whole id) wins over id prefixes.
        assert_eq!(found("abc"), Ok("ffe789".into()));
        assert_eq!(found("zz"), Err("no such container: zz".into()));
        assert_eq!(found(""), Err("no such container: ".into()));

        // A damaged record is left out of the list, and named when asked for by its id;
        // a directory without a record yet (a run making it) is not an error.
        let damaged = containers_dir(&root).join("dd0001");
        std::fs::create_dir_all(&damaged).unwrap();
        std::fs::write(damaged.join("container.json"), &TODAY[1].1[..40]).unwrap();
        std::fs::create_dir_all(containers_dir(&root).join("ee0002")).unwrap();
        assert_eq!(list(&root).len(), 3);
        let e = found("dd00").unwrap_err();
        let file = damaged.join("container.json");
        assert!(
            e.starts_with(&format!("parsing {}: ", file.display())),
            "{e}"
        );
        assert_eq!(found("ee0002"), Err("no such container: ee0002".into()));
        assert_eq!(broken(&root).len(), 1);
        assert!(!name_taken(&containers_dir(&root), "created1"));
        assert!(name_taken(&containers_dir(&root), "db"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
