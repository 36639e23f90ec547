//! The systemd cgroup driver (runc's `--systemd-cgroup`): the container's cgroup is a
//! transient unit that systemd makes, owns and removes, asked for over D-Bus.
//!
//! A scope cannot exist without a process, so the unit is started when the first process
//! (init, already cloned and waiting) is added: `create` only checks that systemd answers
//! and the unit is free, `set` before that keeps the limits for the start, and
//! [`CgroupManager::add_process`] starts the unit with `PIDs=[init]`, Delegate=yes and the
//! limits systemd owns as properties ([`properties`]), waits for systemd's job, then writes
//! every limit to the files as the cgroupfs driver does. Everything else (freezer, stats,
//! pids, kill, OOM) reads and writes the unit's cgroup directly. `destroy` stops the unit
//! and waits for the job, so neither the unit nor its cgroup is left.
//!
//! cgroup v2 only. The D-Bus client is husk's own, small and synchronous ([`dbus`]); the
//! bus is the system bus, or for a rootless caller the user's ([`user`]): [`Bus`] is
//! recorded with the path so that later commands talk to the same manager.

use std::cell::RefCell;
use std::os::fd::OwnedFd;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::layout::{Layout, Mounts};
use crate::stats::Stats;
use crate::v2::V2Manager;
use crate::{CgroupError, CgroupManager, CgroupPath, OomWatcher};

mod dbus;
pub mod name;
pub mod properties;
pub mod user;

/// Entry points for the cargo-fuzz targets (not API).
#[doc(hidden)]
pub use dbus::fuzzing;
pub use dbus::DbusError;

/// Which systemd manager owns the unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bus {
    /// PID 1, on the system bus.
    #[default]
    System,
    /// The user's manager (`user@UID.service`), on the user's bus (rootless): see [`user`].
    User,
}

/// The unit behind a cgroup made by the systemd driver (kept in [`CgroupPath::systemd`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemdUnit {
    /// "husk-c1.scope" (or a slice).
    pub unit: String,
    /// Its parent slice, "machine.slice".
    pub slice: String,
    #[serde(default)]
    pub bus: Bus,
}

/// Resolve `cgroupsPath` in runc's systemd form (see [`name`]) to the unit and its cgroup.
/// A user manager's slices live below its own cgroup ([`user::manager_cgroup`]).
pub fn resolve_path(
    cgroups_path: Option<&str>,
    container_id: &str,
    bus: Bus,
) -> Result<CgroupPath, CgroupError> {
    let u = name::parse(cgroups_path, container_id)?;
    let cgroup = match bus {
        Bus::System => u.cgroup,
        Bus::User => format!(
            "{}{}",
            user::manager_cgroup(husk_oci::userns::host_euid()),
            u.cgroup
        ),
    };
    let mut p = CgroupPath::uniform(&cgroup)?;
    p.systemd = Some(SystemdUnit {
        unit: u.unit,
        slice: u.slice,
        bus,
    });
    Ok(p)
}

/// What a manager made by `create` still has to do when the first process comes. While it
/// is pending nothing exists that `destroy` should remove — in particular not when `create`
/// found the unit taken by someone else.
#[derive(Debug, Default)]
struct PendingStart {
    resources: Option<LinuxResources>,
}

/// The systemd driver: the unit over a [`V2Manager`] of its cgroup.
#[derive(Debug)]
pub struct SystemdManager {
    unit: SystemdUnit,
    fs: V2Manager,
    /// Set by `create` until `add_process` has started the unit.
    pending: RefCell<Option<PendingStart>>,
}

impl SystemdManager {
    pub fn new(mounts: &Mounts, path: &CgroupPath) -> Result<Self, CgroupError> {
        let unit = path
            .systemd
            .clone()
            .ok_or_else(|| CgroupError::invalid("cgroup path", "names no systemd unit"))?;
        if mounts.layout()? != Layout::V2 {
            return Err(CgroupError::unsupported(
                "the systemd cgroup driver",
                "husk implements it for cgroup v2 only (this host has cgroup v1 controllers)",
            ));
        }
        Ok(SystemdManager {
            fs: V2Manager::new(mounts, path)?,
            unit,
            pending: RefCell::new(None),
        })
    }

    fn is_slice(&self) -> bool {
        self.unit.unit.ends_with(".slice")
    }

    /// Start the unit with `pid` in it and the limits given so far.
    fn start(&self, pid: i32, start: PendingStart) -> Result<(), CgroupError> {
        let r = start.resources.as_ref();
        let props = properties::for_new_unit(
            &self.unit.slice,
            self.is_slice(),
            &format!("husk container {}", self.unit.unit),
            &[pid as u32],
            r,
        )?;
        dbus::start_transient_unit(self.unit.bus, &self.unit.unit, &props)?;
        if self.is_slice() {
            // A slice takes no PIDs property: the process is moved in by hand.
            self.fs.add_process(pid)?;
        }
        match r {
            Some(r) => self.fs.set(r),
            None => Ok(()),
        }
    }
}

impl CgroupManager for SystemdManager {
    fn path(&self) -> &CgroupPath {
        self.fs.path()
    }

    fn create(&self) -> Result<(), CgroupError> {
        *self.pending.borrow_mut() = Some(PendingStart::default());
        // Asked now, before any process exists: a bus that does not answer or a unit that
        // is taken fails the create before anything is made.
        if dbus::unit_loaded(self.unit.bus, &self.unit.unit)? {
            return Err(CgroupError::invalid(
                format!("systemd unit {}", self.unit.unit),
                "it already exists",
            ));
        }
        Ok(())
    }

    fn set(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(p) = self.pending.borrow_mut().as_mut() {
            // Validated now, applied when the unit starts.
            properties::limits(r, true)?;
            p.resources = Some(r.clone());
            return Ok(());
        }
        dbus::set_unit_properties(
            self.unit.bus,
            &self.unit.unit,
            &properties::limits(r, false)?,
        )?;
        self.fs.set(r)
    }

    fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        let pending = self.pending.borrow_mut().take();
        match pending {
            Some(start) => self.start(pid, start),
            None => self.fs.add_process(pid),
        }
    }

    fn starts_with_process(&self) -> bool {
        self.pending.borrow().is_some()
    }

    fn v2_dir_fd(&self) -> Option<OwnedFd> {
        match self.starts_with_process() {
            true => None,
            false => self.fs.v2_dir_fd(),
        }
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        match self.starts_with_process() {
            true => Ok(()),
            false => self.fs.freeze(),
        }
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        match self.starts_with_process() {
            true => Ok(()),
            false => self.fs.thaw(),
        }
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        self.fs.is_frozen()
    }

    fn freezes_new_tasks(&self) -> Result<bool, CgroupError> {
        self.fs.freezes_new_tasks()
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        match self.starts_with_process() {
            true => Ok(Vec::new()),
            false => self.fs.pids(),
        }
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        // Before the start, the directory (if any) is not ours: a create that found the
        // unit taken is undone without touching the other container.
        match self.starts_with_process() {
            true => Ok(()),
            false => self.fs.kill_all(signal),
        }
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        self.fs.stats()
    }

    fn oom_event_fd(&self) -> Result<OomWatcher, CgroupError> {
        self.fs.oom_event_fd()
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        // Never started (a create that failed before init was placed, or found the unit
        // taken): nothing of ours exists, and the unit may be another container's.
        if self.pending.borrow().is_some() {
            return Ok(());
        }
        dbus::stop_unit(self.unit.bus, &self.unit.unit)?;
        // systemd removes the unit's cgroup; what the container made below it (delegated)
        // goes with it, and anything systemd could not remove is removed here.
        self.fs.destroy()
    }
}
