//! cgroup v2: one directory in the unified hierarchy; devices are enforced by an eBPF
//! program attached to it.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::layout::{Mounts, Unified};
use crate::stats::Stats;
use crate::{fsutil, CgroupError, CgroupManager, CgroupPath, OomWatcher};

pub mod bpf;
pub mod delegate;
pub mod devices_ebpf;
pub mod resources;

/// The v2 backend (also used by the hybrid backend for the unified mount).
#[derive(Debug, Clone)]
pub struct V2Manager {
    path: CgroupPath,
    unified: Unified,
    dir: PathBuf,
}

impl V2Manager {
    /// The manager of `path.path` in the unified hierarchy (the v1 entries are not its concern).
    pub fn new(mounts: &Mounts, path: &CgroupPath) -> Result<Self, CgroupError> {
        crate::path::validate_resolved(&path.path)?;
        let unified = mounts
            .unified
            .clone()
            .ok_or_else(|| CgroupError::Layout("no cgroup2 file system is mounted".into()))?;
        Ok(V2Manager {
            path: path.clone(),
            dir: unified.dir(&path.path),
            unified,
        })
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Whether the hierarchy has `controller` at all (root cgroup.controllers).
    pub fn has(&self, controller: &str) -> bool {
        self.unified.has(controller)
    }

    /// mkdir -p; then enable `controllers` in cgroup.subtree_control of every ancestor from
    /// the mount down to the parent. With None, every controller that reaches the parent:
    /// a delegated subtree (rootless) often offers only some of the hierarchy's.
    pub(crate) fn create_with(&self, controllers: Option<&[String]>) -> Result<(), CgroupError> {
        fsutil::mkdir_below(&self.unified.mount_point, &self.dir)?;
        match controllers {
            Some(wanted) => {
                for c in wanted {
                    self.enable(c)?;
                }
            }
            None => {
                for c in &self.unified.controllers {
                    match self.enable(c) {
                        Err(CgroupError::Unsupported { .. }) => {}
                        // A delegated subtree (rootless) cannot enable what its delegator
                        // did not: the controller is simply not there, and a limit that
                        // needs it fails at `set`, naming it.
                        Err(e) if matches!(e.errno(), Some(libc::EACCES | libc::EPERM)) => {}
                        r => r?,
                    }
                }
            }
        }
        Ok(())
    }

    /// Make `controller` available in the leaf by enabling it in each ancestor's
    /// subtree_control (only where it is not yet enabled).
    pub(crate) fn enable(&self, controller: &str) -> Result<(), CgroupError> {
        let mount = &self.unified.mount_point;
        let Ok(rel) = self.dir.strip_prefix(mount) else {
            return Ok(());
        };
        let mut cur = mount.clone();
        for comp in rel.components() {
            let sc = cur.join("cgroup.subtree_control");
            let enabled = fsutil::read(&sc)?;
            if !enabled.split_whitespace().any(|c| c == controller) {
                let avail = fsutil::read(&cur.join("cgroup.controllers"))?;
                if !avail.split_whitespace().any(|c| c == controller) {
                    return Err(CgroupError::unsupported(
                        format!("the {controller} controller"),
                        format!("it is not available in {}", cur.display()),
                    ));
                }
                fsutil::write(&sc, &format!("+{controller}"))?;
            }
            cur.push(comp);
        }
        Ok(())
    }

    /// Whether `controller` is enabled for the leaf (listed in its cgroup.controllers).
    pub(crate) fn enabled(&self, controller: &str) -> Result<bool, CgroupError> {
        Ok(fsutil::read(&self.dir.join("cgroup.controllers"))?
            .split_whitespace()
            .any(|c| c == controller))
    }

    /// An error unless `controller` is enabled for the leaf.
    pub(crate) fn require(&self, controller: &str, what: &str) -> Result<(), CgroupError> {
        if self.enabled(controller)? {
            Ok(())
        } else {
            Err(CgroupError::unsupported(
                what,
                format!(
                    "the cgroup2 {controller} controller is not enabled for {}",
                    self.dir.display()
                ),
            ))
        }
    }

    pub(crate) fn frozen(&self) -> Result<bool, CgroupError> {
        Ok(fsutil::read_flat_keyed(&self.dir.join("cgroup.events"))?
            .get("frozen")
            .copied()
            == Some(1))
    }

    pub(crate) fn v2_stats(&self, s: &mut Stats) -> Result<(), CgroupError> {
        resources::cpu_stats(&self.dir, &mut s.cpu)?;
        resources::memory_stats(&self.dir, &mut s.memory)?;
        resources::pids_stats(&self.dir, &mut s.pids)?;
        resources::io_stats(&self.dir, &mut s.blkio)?;
        resources::hugetlb_stats(&self.dir, &mut s.hugetlb)?;
        Ok(())
    }
}

impl CgroupManager for V2Manager {
    fn path(&self) -> &CgroupPath {
        &self.path
    }

    fn create(&self) -> Result<(), CgroupError> {
        self.create_with(None)
    }

    fn set(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        resources::apply_all(self, r)
    }

    fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        fsutil::write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    fn v2_dir_fd(&self) -> Option<OwnedFd> {
        let c = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: c is a valid NUL-terminated path; the returned fd is owned by us.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_RDONLY,
            )
        };
        // SAFETY: fd was just returned by open(2) and is not owned elsewhere.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        fsutil::write(&self.dir.join("cgroup.freeze"), "1")?;
        if !fsutil::wait_until(Duration::from_secs(10), || self.frozen())? {
            let _ = fsutil::write(&self.dir.join("cgroup.freeze"), "0");
            return Err(CgroupError::Timeout {
                op: "freezing".into(),
                path: self.dir.join("cgroup.freeze"),
            });
        }
        Ok(())
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        fsutil::write(&self.dir.join("cgroup.freeze"), "0")
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        Ok(fsutil::read(&self.dir.join("cgroup.freeze"))?.trim() == "1")
    }

    fn freezes_new_tasks(&self) -> Result<bool, CgroupError> {
        // The root cgroup has no cgroup.events, and cannot be frozen.
        let Some(d) = self
            .dir
            .ancestors()
            .find(|a| a.join("cgroup.events").exists())
        else {
            return Ok(false);
        };
        // cgroup.freeze is the cgroup's own wish; "frozen 1" in cgroup.events also covers a
        // frozen ancestor (an empty cgroup reports it at once).
        let frozen = fsutil::read_flat_keyed(&d.join("cgroup.events"))?
            .get("frozen")
            .copied()
            == Some(1);
        Ok(frozen || fsutil::read(&d.join("cgroup.freeze"))?.trim() == "1")
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut out = Vec::new();
        fsutil::procs_recursive(&self.dir, &mut out)?;
        Ok(out)
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        let kill = self.dir.join("cgroup.kill");
        if signal == libc::SIGKILL && kill.exists() {
            return fsutil::write(&kill, "1");
        }
        self.freeze()?;
        let r = self.pids().and_then(|p| fsutil::signal_all(&p, signal));
        let t = self.thaw();
        r.and(t)
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        self.v2_stats(&mut s)?;
        Ok(s)
    }

    fn oom_event_fd(&self) -> Result<OomWatcher, CgroupError> {
        self.require("memory", "OOM notification")?;
        OomWatcher::v2(&self.dir)
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        fsutil::rmdir_tree(&self.dir)
    }
}
