//! The state store: one directory per container under the runtime root, holding state.json
//! (written atomically) and the exec gate socket; an flock on the directory serialises
//! operations that change the container.

use crate::error::{Error, IoContext, Result};
use crate::sys;
use husk_oci::Status;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
/// The resolved cgroup path (JSON), written atomically *before* the cgroup is made, and
/// independent of state.json: whatever happens to `create` or to state.json, `delete --force`
/// finds every cgroup directory the container may have from this file.
pub const CGROUP_FILE: &str = "cgroup";

/// What husk remembers about a container (state.json). The status is never stored: it is
/// derived from the live process each time, so it cannot go stale.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot: tells a recycled pid from ours.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Where husk created the container's cgroup (per hierarchy), when it did.
    #[serde(default)]
    pub cgroup_path: Option<husk_cgroups::CgroupPath>,
}

impl ContainerState {
    /// The state of a container whose init (`pid`, started at `pid_start_time`) runs from
    /// `bundle` now: what `create` and `restore` both record.
    pub fn started_now(
        bundle: &crate::spec::Bundle,
        id: &str,
        pid: i32,
        pid_start_time: u64,
        cgroup_path: Option<husk_cgroups::CgroupPath>,
    ) -> ContainerState {
        ContainerState {
            oci_version: bundle.spec.version().clone(),
            id: id.to_string(),
            pid,
            pid_start_time,
            bundle: bundle.path.clone(),
            rootfs: bundle.rootfs.clone(),
            created: husk_oci::rfc3339_now(),
            owner: String::new(),
            annotations: bundle.spec.annotations().clone().unwrap_or_default(),
            cgroup_path,
        }
    }

    /// A state.json's bytes; `path` names the file in the error.
    pub fn parse(data: &[u8], path: &Path) -> Result<ContainerState> {
        serde_json::from_slice(data).map_err(|e| Error::Spec {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
    }
}

/// A container's directory in the state root.
pub struct StateDir {
    pub path: PathBuf,
    pub fd: OwnedFd,
}

/// An exclusive flock on a state dir, released on drop.
pub struct Lock(#[allow(dead_code)] OwnedFd);

impl StateDir {
    /// Make the directory for a new container; exactly one of several racing creators wins.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        std::fs::create_dir_all(root).ctx("creating state root", root)?;
        let path = root.join(id);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.to_string()))
            }
            Err(e) => return Err(Error::io("creating state dir", path, e)),
        }
        let fd =
            sys::open(&path, libc::O_RDONLY | libc::O_DIRECTORY).ctx("opening state dir", &path)?;
        Ok(StateDir { path, fd })
    }

    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        husk_oci::validate_id(id).map_err(Error::InvalidId)?;
        let path = root.join(id);
        match sys::open(&path, libc::O_RDONLY | libc::O_DIRECTORY) {
            Ok(fd) => Ok(StateDir { path, fd }),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                Err(Error::NotFound(id.to_string()))
            }
            Err(e) => Err(Error::io("opening state dir", path, e)),
        }
    }

    pub fn lock(&self) -> Result<Lock> {
        let fd =
            sys::open(&self.path, libc::O_RDONLY | libc::O_DIRECTORY).ctx("locking", &self.path)?;
        sys::retry(|| sys::check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) }))
            .ctx("locking", &self.path)?;
        Ok(Lock(fd))
    }

    /// Like [`StateDir::lock`], but `None` at once when someone else holds the lock (a
    /// create in progress holds it until state.json is written).
    pub fn try_lock(&self) -> Result<Option<Lock>> {
        let fd =
            sys::open(&self.path, libc::O_RDONLY | libc::O_DIRECTORY).ctx("locking", &self.path)?;
        let r = sys::retry(|| {
            sys::check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) })
        });
        match r {
            Ok(_) => Ok(Some(Lock(fd))),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::io("locking", &self.path, e)),
        }
    }

    /// Note where the container's cgroup is (see [`CGROUP_FILE`]).
    pub fn record_cgroup(&self, path: &husk_cgroups::CgroupPath) -> Result<()> {
        let json = serde_json::to_vec(path).map_err(|e| Error::Other(e.to_string()))?;
        write_atomic(&self.path.join(CGROUP_FILE), &json)
    }

    /// The cgroup [`StateDir::record_cgroup`] noted, if any.
    pub fn recorded_cgroup(&self) -> Result<Option<husk_cgroups::CgroupPath>> {
        let p = self.path.join(CGROUP_FILE);
        match std::fs::read(&p) {
            Ok(json) => serde_json::from_slice(&json)
                .map(Some)
                .map_err(|e| Error::Spec {
                    path: p,
                    msg: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", p, e)),
        }
    }

    /// The container's state. A missing state.json is `NotFound` (a create in progress, or
    /// one that died before writing it); one that cannot be parsed is `Unreadable`.
    pub fn read(&self, id: &str) -> Result<ContainerState> {
        let p = self.path.join(STATE_FILE);
        match std::fs::read(&p) {
            Ok(b) => ContainerState::parse(&b, &p).map_err(|e| Error::Unreadable {
                id: id.to_string(),
                reason: e.to_string(),
            }),
            // Being created right now, or a crashed create: not a container yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::NotFound(id.to_string()))
            }
            Err(e) => Err(Error::io("reading", p, e)),
        }
    }

    pub fn write(&self, st: &ContainerState) -> Result<()> {
        let data = serde_json::to_vec(st).map_err(|e| Error::Other(e.to_string()))?;
        write_atomic(&self.path.join(STATE_FILE), &data)
    }

    /// Derive the status from the live process.
    pub fn status(&self, st: &ContainerState) -> Status {
        match sys::proc_start_time(st.pid) {
            Some((start, zombie)) if start == st.pid_start_time && !zombie => {
                if self.path.join(crate::process::gate::SOCKET_NAME).exists() {
                    Status::Created
                } else {
                    Status::Running
                }
            }
            _ => Status::Stopped,
        }
    }

    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("removing state dir", &self.path, e))
            }
            _ => Ok(()),
        }
    }
}

/// Write to a temp file beside `path`, then rename over it: readers see old or new, never half.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).ctx("writing", &tmp)?;
    f.write_all(data).ctx("writing", &tmp)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("writing", path, e)
    })
}
