//! The engine's containers on disk: <store root>/containers/<id>/container.json (name, image,
//! exit code, ...), found by name, id or unique id prefix; their live status comes from the
//! runtime library's state (never from a stored "running" flag).
//!
//! Engine state of a container: <store root>/containers/<id>/{config.json, container.json,
//! upper, work, rootfs, ctr.log}; the runtime library's state lives under /run/husk-engine
//! (or $XDG_RUNTIME_DIR/husk-engine), apart from husk-runtime's /run/husk.

use crate::os::{IoContext, IoError};
use husk_container::Container;
use husk_oci::Status;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// container.json's mark of a container made by `create` and not started yet: it has no
/// runtime state, no runner and no exit code, and shows as "created".
pub(crate) const NEVER_STARTED: &str = "never_started";

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

/// One container of the engine.
pub struct Record {
    pub id: String,
    pub dir: PathBuf,
    pub meta: Value,
}

impl Record {
    pub fn load(dir: &Path) -> Result<Record, RecordError> {
        let f = dir.join("container.json");
        let data = std::fs::read(&f).ctx("reading", &f)?;
        let meta: Value = serde_json::from_slice(&data)
            .map_err(|source| RecordError::Parse { path: f, source })?;
        let id = meta["id"].as_str().unwrap_or_default().to_string();
        Ok(Record {
            id,
            dir: dir.to_path_buf(),
            meta,
        })
    }

    pub fn name(&self) -> &str {
        self.meta["name"].as_str().unwrap_or_default()
    }

    /// Write container.json atomically (a reader never sees half a file).
    pub fn save(&self) -> Result<(), IoError> {
        let f = self.dir.join("container.json");
        let tmp = self.dir.join(".container.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.meta).unwrap())
            .and_then(|_| std::fs::rename(&tmp, &f))
            .ctx("writing", &f)
    }

    /// The runtime library's view of the container, while its state exists.
    pub fn runtime(&self) -> Option<Container> {
        Container::load(&state_root(), &self.id).ok()
    }

    /// "running", "paused", "created", "exited" (exit code recorded, or the process is gone).
    pub fn status(&self) -> &'static str {
        self.status_with(self.runtime().as_ref())
    }

    /// [`Record::status`] from a runtime handle already loaded.
    pub(crate) fn status_with(&self, c: Option<&Container>) -> &'static str {
        match c {
            None if self.never_started() => "created",
            c => status_of(c),
        }
    }

    /// Made by `create` and not started since.
    pub(crate) fn never_started(&self) -> bool {
        self.meta[NEVER_STARTED] == true
    }

    pub fn exit_code(&self) -> Option<i64> {
        self.meta["exit_code"].as_i64()
    }

    /// Whether the container's runner ([`runner`]) is alive. True when the record names
    /// none (written by an older husk): then only the runner records the end, as before.
    pub(crate) fn runner_alive(&self) -> bool {
        let r = &self.meta["runner"];
        let Some(pid) = r["pid"].as_i64().and_then(|p| i32::try_from(p).ok()) else {
            return true;
        };
        match husk_container::proc_start_time(pid) {
            Some((start, zombie)) => !zombie && r["start"].as_u64().is_none_or(|s| s == start),
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

/// container.json's "runner": the process that waits for the container and records its
/// end — its monitor, or the foreground `husk run` — as its pid and start time (an
/// identity that survives pid reuse). When it is dead, the commands that find the
/// container do what it would have done (containers.rs).
pub(crate) fn runner(pid: i32) -> Value {
    let start = husk_container::proc_start_time(pid).map(|(s, _)| s);
    serde_json::json!({ "pid": pid, "start": start })
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

pub(crate) fn name_taken(containers: &Path, name: &str) -> bool {
    let Ok(rd) = std::fs::read_dir(containers) else {
        return false;
    };
    rd.flatten().any(|e| {
        std::fs::read(e.path().join("container.json"))
            .ok()
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .is_some_and(|v| v["name"] == name)
    })
}

pub fn containers_dir(root: &Path) -> PathBuf {
    root.join("containers")
}

/// Every container, oldest first.
pub fn list(root: &Path) -> Vec<Record> {
    let mut v: Vec<Record> = std::fs::read_dir(containers_dir(root))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| Record::load(&e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.meta["created"].as_str().cmp(&b.meta["created"].as_str()));
    v
}

/// The container named `what`, or with that id, or the one whose id starts with it.
pub fn find(root: &Path, what: &str) -> Result<Record, RecordError> {
    let all = list(root);
    if let Some(i) = all.iter().position(|r| r.name() == what || r.id == what) {
        return Ok(all.into_iter().nth(i).unwrap());
    }
    let mut hits: Vec<Record> = all
        .into_iter()
        .filter(|r| !what.is_empty() && r.id.starts_with(what))
        .collect();
    match hits.len() {
        1 => Ok(hits.pop().unwrap()),
        0 => Err(RecordError::NotFound(what.to_string())),
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
        if r.meta["image_id"] != image_id {
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

    #[test]
    fn found_by_name_id_or_unique_id_prefix() {
        let root = std::env::temp_dir().join(format!("husk-find-{}", std::process::id()));
        for (id, name) in [("abc123", "web"), ("abd456", "db"), ("ffe789", "abc")] {
            let dir = containers_dir(&root).join(id);
            std::fs::create_dir_all(&dir).unwrap();
            let meta = serde_json::json!({"id": id, "name": name, "created": id});
            let r = Record {
                id: id.into(),
                dir,
                meta,
            };
            r.save().unwrap();
        }
        let found = |w: &str| find(&root, w).map(|r| r.id).map_err(|e| e.to_string());
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
        std::fs::remove_dir_all(&root).unwrap();
    }
}
