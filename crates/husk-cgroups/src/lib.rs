//! husk-cgroups: create, configure, inspect and remove the cgroup of a container.
//!
//! One [`CgroupManager`] trait with three backends picked by [`probe_layout`]:
//! - [`Layout::V1`]: one directory per v1 hierarchy (co-mounted controllers such as
//!   `cpu,cpuacct` share one directory);
//! - [`Layout::V2`]: the unified hierarchy, devices enforced by an eBPF program;
//! - [`Layout::Hybrid`]: v1 hierarchies for the controllers mounted there plus the cgroup2
//!   mount for the controllers only it holds (e.g. `hugetlb`); the process is placed in both.
//!
//! Everything is synchronous and stateless: a manager is rebuilt from the resolved
//! [`CgroupPath`] (which the runtime keeps in state.json) by [`manager`].

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

mod fsutil;
mod hybrid;
pub mod layout;
mod oom;
pub mod path;
pub mod stats;
pub mod systemd;
pub mod v1;
pub mod v2;

pub use layout::{probe_layout, Layout};
pub use oom::{OomWait, OomWatcher};
pub use path::{
    prune_empty_parents, prune_empty_parents_in, resolve_path, sub_cgroup, CgroupPath, SubCgroups,
};
pub use stats::Stats;

/// Everything that can go wrong; each variant names the operation and the path.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A system call on a cgroup file or directory failed.
    #[error("{op} {}: {}", path.display(), describe(source))]
    Io {
        /// What was being done, e.g. "writing 1048576 to".
        op: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file had content we could not understand.
    #[error("parsing {}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    /// The spec asks for something this host's cgroup setup cannot do.
    #[error("{what}: not supported on this host: {reason}")]
    Unsupported { what: String, reason: String },
    /// The spec value itself is invalid.
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    /// No cgroup file system is mounted.
    #[error("probing cgroup layout from /proc/self/mountinfo: {0}")]
    Layout(String),
    /// A bpf(2) call failed.
    #[error("{op}: {}", describe(source))]
    Bpf {
        op: String,
        #[source]
        source: std::io::Error,
    },
    /// A limit is lower than the current usage and checkBeforeUpdate was requested.
    #[error("{what}: new limit {limit} is below current usage {usage} ({})", path.display())]
    BelowUsage {
        what: String,
        path: PathBuf,
        limit: i64,
        usage: u64,
    },
    /// systemd (over D-Bus) refused or failed what the systemd driver asked of it, or the
    /// bus could not be reached.
    #[error("{op}: {source}")]
    Systemd {
        op: String,
        #[source]
        source: systemd::DbusError,
    },
    /// Waiting for the cgroup to reach a state timed out.
    #[error("{op} {}: timed out", path.display())]
    Timeout { op: String, path: PathBuf },
}

/// "Invalid argument" rather than "Invalid argument (os error 22)".
fn describe(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

impl CgroupError {
    pub(crate) fn io(op: impl Into<String>, path: &Path, source: std::io::Error) -> Self {
        CgroupError::Io {
            op: op.into(),
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn unsupported(what: impl Into<String>, reason: impl Into<String>) -> Self {
        CgroupError::Unsupported {
            what: what.into(),
            reason: reason.into(),
        }
    }
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        CgroupError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
    /// The errno behind this error, if it came from a system call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            CgroupError::Io { source, .. } | CgroupError::Bpf { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

/// The operations the runtime needs on a container's cgroup.
pub trait CgroupManager {
    /// Where the cgroup is, e.g. "/c1" (memory: "/process_api/abc/c1").
    fn path(&self) -> &CgroupPath;
    /// Create the directory in every hierarchy (mkdir -p); on v2 enable the available
    /// controllers in the parents' cgroup.subtree_control.
    fn create(&self) -> Result<(), CgroupError>;
    /// Apply every limit in `r`. A limit this host cannot enforce is an error, never skipped.
    fn set(&self, r: &LinuxResources) -> Result<(), CgroupError>;
    /// Move `pid` into the cgroup in every hierarchy.
    fn add_process(&self, pid: i32) -> Result<(), CgroupError>;
    /// An O_DIRECTORY|O_CLOEXEC fd of the v2 leaf, for clone3(CLONE_INTO_CGROUP).
    /// `None` on v1 and hybrid: there the child must be moved with [`CgroupManager::add_process`].
    fn v2_dir_fd(&self) -> Option<OwnedFd>;
    /// Whether the cgroup only comes to exist with its first process: then the caller must
    /// hand init to [`CgroupManager::add_process`] after cloning it (systemd's scopes).
    fn starts_with_process(&self) -> bool {
        false
    }
    /// Write-only fds of the v1 `tasks` files of this cgroup. A single-threaded process that
    /// writes "0" to each moves itself in without taking the global threadgroup lock for
    /// writing, which `cgroup.procs` does and which costs an RCU grace period (~10 ms).
    /// The fds keep the opener's permission, so a child in a user namespace can use them.
    /// Empty on v2, where [`CgroupManager::v2_dir_fd`] with CLONE_INTO_CGROUP does the job.
    fn self_join_fds(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        Ok(Vec::new())
    }
    /// Freeze every process and wait until the kernel reports the cgroup frozen.
    fn freeze(&self) -> Result<(), CgroupError>;
    /// Thaw the cgroup.
    fn thaw(&self) -> Result<(), CgroupError>;
    /// Whether the cgroup is frozen (or freezing).
    fn is_frozen(&self) -> Result<bool, CgroupError>;
    /// Whether a process put into the cgroup now would be frozen, by this cgroup's own
    /// setting or an ancestor's, in any hierarchy with a freezer; a cgroup not made yet is
    /// judged by its nearest existing ancestor, whose state it would start with. `create`
    /// refuses such a cgroup (as runc does): init would freeze in it and never report back.
    fn freezes_new_tasks(&self) -> Result<bool, CgroupError>;
    /// All pids in the cgroup and its descendants.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Send `signal` to every process (v2 SIGKILL: cgroup.kill; otherwise freeze, signal each, thaw).
    fn kill_all(&self, signal: i32) -> Result<(), CgroupError>;
    /// Usage statistics shaped like the "data" of runc's `events --stats`.
    fn stats(&self) -> Result<Stats, CgroupError>;
    /// A watcher for OOM kills in this cgroup (see [`OomWatcher`]).
    fn oom_event_fd(&self) -> Result<OomWatcher, CgroupError>;
    /// Remove the cgroup (and any sub-cgroups) in every hierarchy, retrying briefly on EBUSY.
    /// Missing directories are not an error. Parents are left alone (see [`prune_empty_parents`]).
    fn destroy(&self) -> Result<(), CgroupError>;
}

/// A manager for `location` (from [`resolve_path`]) with the backend of this host's layout.
pub fn manager(location: &CgroupPath) -> Result<Box<dyn CgroupManager>, CgroupError> {
    manager_in(&layout::Mounts::probe()?, location)
}

/// [`manager`] against mounts probed before: a command that needs the manager more than
/// once (create, `run`'s delete) reads /proc/self/mountinfo once.
pub fn manager_in(
    mounts: &layout::Mounts,
    location: &CgroupPath,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    location.validate()?;
    if location.systemd.is_some() {
        return Ok(Box::new(systemd::SystemdManager::new(mounts, location)?));
    }
    Ok(match mounts.layout()? {
        Layout::V1 => Box::new(v1::V1Manager::new(mounts, location)?),
        Layout::V2 => Box::new(v2::V2Manager::new(mounts, location)?),
        Layout::Hybrid => Box::new(hybrid::HybridManager::new(mounts, location)?),
    })
}
