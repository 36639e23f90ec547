//! What a container's cgroup offers after create: pause/resume (freezer), live resource
//! updates, the process list, usage statistics and OOM notification. The state rules follow
//! runc: pause only a running or created container, resume only a paused one, and nothing of
//! this on a stopped one except listing its (empty) processes.

use crate::container::Container;
use crate::error::{Error, Result};
use husk_cgroups::{CgroupManager, OomWatcher, Stats};
use husk_oci::Status;
use oci_spec::runtime::LinuxResources;

impl Container {
    /// The container's cgroup; containers made by husk always have one.
    fn require_cgroup(&self) -> Result<Box<dyn CgroupManager>> {
        self.cgroup()?
            .ok_or_else(|| Error::Cgroup(format!("container {:?} has no cgroup", self.id())))
    }

    /// Refuse a stopped container with runc's wording: `update` says "container not
    /// running", `events` "container with id ID is not running".
    fn require_alive(&self, events: bool) -> Result<Status> {
        match self.status() {
            Status::Stopped if events => Err(self.wrong_state(
                Status::Stopped,
                format!("container with id {} is not running", self.id()),
            )),
            Status::Stopped => Err(self.wrong_state(Status::Stopped, "container not running")),
            s => Ok(s),
        }
    }

    /// Freeze every process of a running (or, as runc allows, created) container.
    pub fn pause(&self) -> Result<()> {
        let status = self.status();
        if !matches!(status, Status::Running | Status::Created) {
            return Err(self.wrong_state(status, "container not running"));
        }
        self.require_cgroup()?.freeze().map_err(cg_err)
    }

    /// Thaw a paused container.
    pub fn resume(&self) -> Result<()> {
        let status = self.status();
        if status != Status::Paused {
            return Err(self.wrong_state(status, "container not paused"));
        }
        self.require_cgroup()?.thaw().map_err(cg_err)
    }

    /// Apply new limits to a live (created, running or paused) container. Only the limits set
    /// in `r` change. Device rules are ignored, as runc does: clients send the spec's list,
    /// which lacks the default devices create added, and replacing the list would cut the
    /// container off /dev/null.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        self.require_alive(false)?;
        let mut r = r.clone();
        r.set_devices(None);
        // pids.limit 0 is "not given" in an update (runc), not "unlimited" as at create.
        if r.pids().is_some_and(|p| p.limit() == 0) {
            r.set_pids(None);
        }
        self.require_cgroup()?.set(&r).map_err(cg_err)
    }

    /// Every pid in the container's cgroup (host pid namespace), sorted.
    pub fn processes(&self) -> Result<Vec<i32>> {
        let Some(cg) = self.cgroup()? else {
            return Ok(Vec::new());
        };
        let mut pids = match cg.pids() {
            Ok(p) => p,
            // A stopped container's cgroup may already be gone.
            Err(_) if self.status() == Status::Stopped => Vec::new(),
            Err(e) => return Err(cg_err(e)),
        };
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Usage statistics of a live container (runc's `events --stats` data).
    pub fn stats(&self) -> Result<Stats> {
        self.require_alive(true)?;
        self.require_cgroup()?.stats().map_err(cg_err)
    }

    /// A watcher that fires on every OOM in the container's cgroup (see [`OomWatcher`]).
    pub fn oom_watcher(&self) -> Result<OomWatcher> {
        self.require_alive(true)?;
        self.require_cgroup()?.oom_event_fd().map_err(cg_err)
    }
}

fn cg_err(e: husk_cgroups::CgroupError) -> Error {
    Error::Cgroup(e.to_string())
}
