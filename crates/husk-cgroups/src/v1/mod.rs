//! cgroup v1: one directory per mounted hierarchy. Co-mounted controllers (cpu,cpuacct)
//! share a hierarchy and so a directory; named hierarchies (name=systemd) only hold processes.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::layout::{Mounts, V1Hierarchy};
use crate::stats::Stats;
use crate::{fsutil, CgroupError, CgroupManager, CgroupPath, OomWatcher};

pub mod blkio;
pub mod cpu;
pub mod devices;
pub mod memory;
pub mod misc;

/// The v1 backend.
#[derive(Debug, Clone)]
pub struct V1Manager {
    path: CgroupPath,
    /// Every mounted hierarchy with the cgroup's directory in it.
    hierarchies: Vec<(V1Hierarchy, PathBuf)>,
}

impl V1Manager {
    pub fn new(mounts: &Mounts, path: &CgroupPath) -> Result<Self, CgroupError> {
        path.validate()?;
        let hierarchies = mounts
            .v1
            .iter()
            .map(|h| (h.clone(), h.dir(path.in_v1(&h.controllers))))
            .collect();
        Ok(V1Manager {
            path: path.clone(),
            hierarchies,
        })
    }

    /// Whether `controller` is mounted.
    pub fn has(&self, controller: &str) -> bool {
        self.hierarchies.iter().any(|(h, _)| h.has(controller))
    }

    /// The cgroup's directory in the hierarchy of `controller`, if it is mounted.
    pub fn dir(&self, controller: &str) -> Option<PathBuf> {
        self.hierarchies
            .iter()
            .find(|(h, _)| h.has(controller))
            .map(|(_, d)| d.clone())
    }

    /// Like [`V1Manager::dir`], but a missing controller is an error about `what`.
    pub(crate) fn require(&self, controller: &str, what: &str) -> Result<PathBuf, CgroupError> {
        self.dir(controller).ok_or_else(|| {
            CgroupError::unsupported(
                what,
                format!("the cgroup v1 {controller} controller is not mounted"),
            )
        })
    }

    fn all_dirs(&self) -> Vec<PathBuf> {
        self.hierarchies.iter().map(|(_, d)| d.clone()).collect()
    }

    /// The directory whose cgroup.procs lists the container's processes.
    fn procs_dir(&self) -> PathBuf {
        ["pids", "freezer", "memory", "devices", "cpu"]
            .iter()
            .find_map(|c| self.dir(c))
            .unwrap_or_else(|| {
                self.hierarchies
                    .first()
                    .map(|(_, d)| d.clone())
                    .unwrap_or_default()
            })
    }

    /// Apply everything the v1 controllers can do; `unified` keys are an error here.
    pub(crate) fn set_resources(
        &self,
        r: &LinuxResources,
        v1_only: bool,
    ) -> Result<(), CgroupError> {
        if let Some(m) = r.memory() {
            memory::apply(self, m)?;
        }
        if let Some(c) = r.cpu() {
            cpu::apply(self, c)?;
        }
        if let Some(p) = r.pids() {
            misc::apply_pids(self, p)?;
        }
        if let Some(b) = r.block_io() {
            blkio::apply(self, b)?;
        }
        if let Some(h) = r.hugepage_limits() {
            if !h.is_empty() {
                misc::apply_hugetlb(self, h)?;
            }
        }
        if let Some(n) = r.network() {
            misc::apply_network(self, n)?;
        }
        if let Some(d) = r.devices() {
            devices::apply(self, d)?;
        }
        if let Some(rdma) = r.rdma() {
            if !rdma.is_empty() {
                misc::apply_rdma(&self.require("rdma", "rdma limits")?, rdma)?;
            }
        }
        if v1_only {
            if let Some(u) = r.unified() {
                if !u.is_empty() {
                    return Err(CgroupError::unsupported(
                        "linux.resources.unified",
                        "this host has no cgroup2 hierarchy",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Copy cpuset.cpus/mems from the parent into every empty cpuset on the way from the
    /// mount to the leaf: the kernel creates cpusets empty, and a task cannot join one
    /// without cpus or mems. All of them, not just the ones we created, because a parent
    /// created concurrently by someone else may not be initialized yet.
    fn init_cpusets(h: &V1Hierarchy, leaf: &std::path::Path) -> Result<(), CgroupError> {
        let Ok(rel) = leaf.strip_prefix(&h.mount_point) else {
            return Ok(());
        };
        let mut parent = h.mount_point.clone();
        for comp in rel.components() {
            let dir = parent.join(comp);
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let cur = fsutil::read(&dir.join(f))?;
                if cur.trim().is_empty() {
                    let p = fsutil::read(&parent.join(f))?;
                    fsutil::write(&dir.join(f), p.trim())?;
                }
            }
            parent = dir;
        }
        Ok(())
    }

    pub(crate) fn freezer_state(&self) -> Result<Option<String>, CgroupError> {
        match self.dir("freezer") {
            Some(d) => Ok(Some(
                fsutil::read(&d.join("freezer.state"))?.trim().to_string(),
            )),
            None => Ok(None),
        }
    }

    pub(crate) fn v1_stats(&self, s: &mut Stats) -> Result<(), CgroupError> {
        if let Some(d) = self.dir("memory") {
            memory::stats(&d, &mut s.memory)?;
        }
        if let Some(d) = self.dir("cpuacct") {
            cpu::cpuacct_stats(&d, &mut s.cpu)?;
        }
        if let Some(d) = self.dir("cpu") {
            cpu::throttling_stats(&d, &mut s.cpu)?;
        }
        if let Some(d) = self.dir("pids") {
            misc::pids_stats(&d, &mut s.pids)?;
        }
        if let Some(d) = self.dir("blkio") {
            blkio::stats(&d, &mut s.blkio)?;
        }
        if let Some(d) = self.dir("hugetlb") {
            misc::hugetlb_stats(&d, &mut s.hugetlb)?;
        }
        Ok(())
    }
}

impl CgroupManager for V1Manager {
    fn path(&self) -> &CgroupPath {
        &self.path
    }

    fn create(&self) -> Result<(), CgroupError> {
        for (h, leaf) in &self.hierarchies {
            fsutil::mkdir_below(&h.mount_point, leaf)?;
            if h.has("cpuset") {
                Self::init_cpusets(h, leaf)?;
            }
        }
        Ok(())
    }

    fn set(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        self.set_resources(r, true)
    }

    fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for d in self.all_dirs() {
            fsutil::write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn v2_dir_fd(&self) -> Option<OwnedFd> {
        None
    }

    fn self_join_fds(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        self.all_dirs()
            .into_iter()
            .map(|d| {
                let tasks = d.join("tasks");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&tasks)
                    .map(OwnedFd::from)
                    .map_err(|e| CgroupError::io("opening", &tasks, e))
            })
            .collect()
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        let d = self.require("freezer", "freezing")?;
        let state = d.join("freezer.state");
        // The kernel may report FREEZING while tasks are in uninterruptible sleep; writing
        // FROZEN again retries the freeze.
        let done = fsutil::wait_until(Duration::from_secs(10), || {
            fsutil::write(&state, "FROZEN")?;
            Ok(fsutil::read(&state)?.trim() == "FROZEN")
        })?;
        if !done {
            let _ = fsutil::write(&state, "THAWED");
            return Err(CgroupError::Timeout {
                op: "freezing".into(),
                path: state,
            });
        }
        Ok(())
    }

    fn freezes_new_tasks(&self) -> Result<bool, CgroupError> {
        let Some(d) = self.dir("freezer") else {
            return Ok(false);
        };
        // The root cgroup has no freezer.state, and cannot be frozen. A child's state
        // reads FROZEN while an ancestor is.
        let Some(d) = d.ancestors().find(|a| a.join("freezer.state").exists()) else {
            return Ok(false);
        };
        Ok(matches!(
            fsutil::read(&d.join("freezer.state"))?.trim(),
            "FROZEN" | "FREEZING"
        ))
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        let d = self.require("freezer", "thawing")?;
        fsutil::write(&d.join("freezer.state"), "THAWED")
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        Ok(matches!(
            self.freezer_state()?.as_deref(),
            Some("FROZEN" | "FREEZING")
        ))
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut out = Vec::new();
        fsutil::procs_recursive(&self.procs_dir(), &mut out)?;
        Ok(out)
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        if self.has("freezer") {
            // Frozen processes cannot fork, so nothing escapes between listing and signalling.
            self.freeze()?;
            let r = self.pids().and_then(|p| fsutil::signal_all(&p, signal));
            let t = self.thaw();
            r.and(t)
        } else {
            fsutil::signal_all(&self.pids()?, signal)
        }
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        self.v1_stats(&mut s)?;
        Ok(s)
    }

    fn oom_event_fd(&self) -> Result<OomWatcher, CgroupError> {
        OomWatcher::v1(&self.require("memory", "OOM notification")?)
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for d in self.all_dirs() {
            if let Err(e) = fsutil::rmdir_tree(&d) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// "-1" for unlimited, the number otherwise; other negatives are invalid.
pub(crate) fn limit_value(what: &str, v: i64) -> Result<String, CgroupError> {
    match v {
        -1 => Ok("-1".into()),
        v if v >= 0 => Ok(v.to_string()),
        v => Err(CgroupError::invalid(
            what,
            format!("{v} (only -1 means unlimited)"),
        )),
    }
}
