//! Hybrid layout: v1 hierarchies for the controllers mounted there, plus the cgroup2 mount
//! for the controllers only it holds (on the test hosts: hugetlb). The process is placed in
//! both, so cgroup2-only features (cgroup.kill, eBPF) also see it.

use std::os::fd::OwnedFd;

use oci_spec::runtime::LinuxResources;

use crate::layout::Mounts;
use crate::stats::Stats;
use crate::v1::V1Manager;
use crate::v2::{resources, V2Manager};
use crate::{fsutil, CgroupError, CgroupManager, CgroupPath, OomWatcher};

#[derive(Debug, Clone)]
pub struct HybridManager {
    v1: V1Manager,
    v2: V2Manager,
}

impl HybridManager {
    pub fn new(mounts: &Mounts, path: &CgroupPath) -> Result<Self, CgroupError> {
        Ok(HybridManager {
            v1: V1Manager::new(mounts, path)?,
            v2: V2Manager::new(mounts, path)?,
        })
    }

    /// Whether a resource group goes to the unified side: v1 lacks `v1_ctrl`, cgroup2 has `v2_ctrl`.
    fn unified_for(&self, v1_ctrl: &str, v2_ctrl: &str) -> bool {
        !self.v1.has(v1_ctrl) && self.v2.has(v2_ctrl)
    }

    /// Freeze with the v1 freezer when mounted, else with cgroup.freeze.
    fn freezer(&self) -> &dyn CgroupManager {
        if self.v1.has("freezer") {
            &self.v1
        } else {
            &self.v2
        }
    }
}

impl CgroupManager for HybridManager {
    fn path(&self) -> &CgroupPath {
        self.v1.path()
    }

    fn create(&self) -> Result<(), CgroupError> {
        self.v1.create()?;
        // Controllers on the unified side are enabled by set() only when a limit needs them,
        // so merely creating a container does not change the host's cgroup2 configuration.
        self.v2.create_with(Some(&[]))
    }

    fn set(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        let mut v1 = r.clone();
        let mut v2 = LinuxResources::default();
        let mut enable: Vec<&str> = Vec::new();
        if r.memory().is_some() && self.unified_for("memory", "memory") {
            v2.set_memory(v1.memory_mut().take());
            enable.push("memory");
        }
        if r.cpu().is_some() && self.unified_for("cpu", "cpu") {
            v2.set_cpu(v1.cpu_mut().take());
            enable.push("cpu");
        }
        if r.pids().is_some() && self.unified_for("pids", "pids") {
            v2.set_pids(v1.pids_mut().take());
            enable.push("pids");
        }
        if r.block_io().is_some() && self.unified_for("blkio", "io") {
            v2.set_block_io(v1.block_io_mut().take());
            enable.push("io");
        }
        if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
            && self.unified_for("hugetlb", "hugetlb")
        {
            // validate before enabling the controller on the host's cgroup2 tree
            for l in r.hugepage_limits().iter().flatten() {
                crate::v1::misc::check_page_size(l.page_size())?;
            }
            v2.set_hugepage_limits(v1.hugepage_limits_mut().take());
            enable.push("hugetlb");
        }
        if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) && self.unified_for("rdma", "rdma") {
            v2.set_rdma(v1.rdma_mut().take());
            enable.push("rdma");
        }
        if r.devices().is_some() && !self.v1.has("devices") {
            v2.set_devices(v1.devices_mut().take()); // eBPF needs no controller
        }
        v2.set_unified(v1.unified_mut().take());
        self.v1.set_resources(&v1, false)?;
        for c in enable {
            self.v2.enable(c)?;
        }
        resources::apply_all(&self.v2, &v2)
    }

    fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        self.v1.add_process(pid)?;
        self.v2.add_process(pid)
    }

    /// The unified side: the child is born there by CLONE_INTO_CGROUP, and moves itself
    /// into the v1 hierarchies through [`CgroupManager::self_join_fds`].
    fn v2_dir_fd(&self) -> Option<OwnedFd> {
        self.v2.v2_dir_fd()
    }

    fn self_join_fds(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        self.v1.self_join_fds()
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        self.freezer().freeze()
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        self.freezer().thaw()
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        self.freezer().is_frozen()
    }

    fn freezes_new_tasks(&self) -> Result<bool, CgroupError> {
        // Both sides freeze what they hold, and init goes into both.
        Ok(self.v1.freezes_new_tasks()? || self.v2.freezes_new_tasks()?)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        self.v1.pids()
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        let kill = self.v2.dir().join("cgroup.kill");
        if signal == libc::SIGKILL && kill.exists() {
            fsutil::write(&kill, "1")?;
            // also catch anything that joined only the v1 hierarchies
            return fsutil::signal_all(&self.v1.pids()?, signal);
        }
        self.freeze()?;
        let r = self.pids().and_then(|p| fsutil::signal_all(&p, signal));
        let t = self.thaw();
        r.and(t)
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        self.v1.v1_stats(&mut s)?;
        let d = self.v2.dir();
        if self.unified_for("memory", "memory") {
            resources::memory_stats(d, &mut s.memory)?;
        }
        if self.unified_for("cpu", "cpu") {
            resources::cpu_stats(d, &mut s.cpu)?;
        }
        if self.unified_for("pids", "pids") {
            resources::pids_stats(d, &mut s.pids)?;
        }
        if self.unified_for("blkio", "io") {
            resources::io_stats(d, &mut s.blkio)?;
        }
        if self.unified_for("hugetlb", "hugetlb") {
            resources::hugetlb_stats(d, &mut s.hugetlb)?;
        }
        Ok(s)
    }

    fn oom_event_fd(&self) -> Result<OomWatcher, CgroupError> {
        if self.v1.has("memory") {
            self.v1.oom_event_fd()
        } else {
            self.v2.oom_event_fd()
        }
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let a = self.v1.destroy();
        let b = self.v2.destroy();
        a.and(b)
    }
}
