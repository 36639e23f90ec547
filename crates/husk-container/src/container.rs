//! A container that exists in the state store: start, signal, inspect, delete.

use crate::error::{Error, IoContext, Result};
use crate::process::gate;
use crate::state::{ContainerState, StateDir, STATE_FILE};
use crate::sys;
use husk_cgroups::layout::Mounts;
use husk_oci::{StateOutput, Status};
use std::cell::OnceCell;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Container {
    pub(crate) dir: StateDir,
    pub(crate) state: ContainerState,
    /// A pidfd for init when this process created it (survives pid reuse).
    pidfd: Option<OwnedFd>,
    /// The create's phase timestamps, when asked for (`ContainerBuilder::timeline`).
    timeline: Vec<(String, u64)>,
    /// Where the cgroup hierarchies are mounted: read from /proc/self/mountinfo once per
    /// command, or handed over by the create that made this container.
    cgroup_mounts: OnceCell<Mounts>,
}

/// One entry of [`Container::list`].
pub enum Listed {
    Container(Box<Container>),
    /// A state dir without a readable state.json; `reason` says what is wrong with it.
    Unknown {
        id: String,
        reason: String,
    },
}

impl Listed {
    pub fn id(&self) -> &str {
        match self {
            Listed::Container(c) => c.id(),
            Listed::Unknown { id, .. } => id,
        }
    }
}

impl Container {
    pub(crate) fn from_parts(
        dir: StateDir,
        state: ContainerState,
        pidfd: Option<OwnedFd>,
        cgroup_mounts: Mounts,
    ) -> Self {
        Container {
            dir,
            state,
            pidfd,
            timeline: Vec::new(),
            cgroup_mounts: OnceCell::from(cgroup_mounts),
        }
    }

    pub(crate) fn set_timeline(&mut self, marks: Vec<(String, u64)>) {
        self.timeline = marks;
    }

    /// When each phase of this process's create ended (CLOCK_MONOTONIC ns, see
    /// [`crate::timeline::now_ns`]), init's phases included; empty unless
    /// [`crate::ContainerBuilder::timeline`] asked for it.
    pub fn timeline(&self) -> &[(String, u64)] {
        &self.timeline
    }

    /// Load an existing container from the state root `root`.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        let dir = StateDir::open(root, id)?;
        let state = dir.read(id)?;
        Ok(Container {
            dir,
            state,
            pidfd: None,
            timeline: Vec::new(),
            cgroup_mounts: OnceCell::new(),
        })
    }

    /// Every container under `root`, sorted by id. A state dir without a readable
    /// state.json is listed as [`Listed::Unknown`] (it still holds processes, cgroups or
    /// mounts that only `delete --force` removes), except while a create holds its lock.
    pub fn list(root: &Path) -> Result<Vec<Listed>> {
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", root, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.ctx("listing", root)?;
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match Container::load(root, &id) {
                Ok(c) => out.push(Listed::Container(Box::new(c))),
                Err(Error::InvalidId(_)) => {}
                Err(Error::Unreadable { reason, .. }) => out.push(Listed::Unknown { id, reason }),
                Err(Error::NotFound(_)) => {
                    // Gone meanwhile, or being created (locked): not a container yet.
                    let Ok(dir) = StateDir::open(root, &id) else {
                        continue;
                    };
                    if dir.try_lock()?.is_some() && !dir.path.join(STATE_FILE).exists() {
                        let reason = format!("no {STATE_FILE}: its create did not finish");
                        out.push(Listed::Unknown { id, reason });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(out)
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    pub fn bundle(&self) -> &Path {
        &self.state.bundle
    }

    pub fn cgroup_path(&self) -> Option<&husk_cgroups::CgroupPath> {
        self.state.cgroup_path.as_ref()
    }

    /// Status derived from the live process (never from a stored field). A frozen cgroup
    /// makes a running or created container "paused", as in runc.
    pub fn status(&self) -> Status {
        let status = self.dir.status(&self.state);
        if matches!(status, Status::Running | Status::Created) && self.is_frozen() {
            return Status::Paused;
        }
        status
    }

    fn is_frozen(&self) -> bool {
        self.cgroup()
            .ok()
            .flatten()
            .is_some_and(|cg| cg.is_frozen().unwrap_or(false))
    }

    pub(crate) fn cgroup(&self) -> Result<Option<Box<dyn husk_cgroups::CgroupManager>>> {
        match &self.state.cgroup_path {
            Some(p) => husk_cgroups::manager_in(self.cgroup_mounts()?, p)
                .map(Some)
                .map_err(|e| Error::Cgroup(e.to_string())),
            None => Ok(None),
        }
    }

    fn cgroup_mounts(&self) -> Result<&Mounts> {
        if let Some(m) = self.cgroup_mounts.get() {
            return Ok(m);
        }
        let m = Mounts::probe().map_err(|e| Error::Cgroup(e.to_string()))?;
        Ok(self.cgroup_mounts.get_or_init(|| m))
    }

    /// The state as `husk-runtime state` prints it.
    pub fn state(&self) -> StateOutput {
        let status = self.status();
        StateOutput {
            oci_version: self.state.oci_version.clone(),
            id: self.state.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.state.pid
            },
            status,
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            created: self.state.created.clone(),
            owner: self.state.owner.clone(),
            annotations: self.state.annotations.clone(),
        }
    }

    pub(crate) fn wrong_state(&self, status: Status, msg: impl Into<String>) -> Error {
        Error::WrongState {
            id: self.state.id.clone(),
            status,
            msg: msg.into(),
        }
    }

    /// Release the init waiting at the exec gate; it execs the user's process. Failed
    /// poststart hooks are warnings, printed on stderr (see [`Container::start_with_warnings`]).
    pub fn start(&mut self) -> Result<()> {
        self.start_with_warnings(&mut crate::hooks::warn_stderr)
    }

    /// [`Container::start`], giving warnings (failed poststart hooks) to `warn`.
    pub fn start_with_warnings(&mut self, warn: &mut dyn FnMut(String)) -> Result<()> {
        let _lock = self.dir.lock()?;
        let status = self.status();
        let refusal = match status {
            Status::Created => None,
            Status::Stopped => Some("cannot start a container that has stopped".to_string()),
            Status::Running => Some("cannot start an already running container".to_string()),
            other => Some(format!("cannot start a container in the {other} state")),
        };
        if let Some(msg) = refusal {
            return Err(self.wrong_state(status, msg));
        }
        let result = gate::start(&self.dir.fd)
            .ctx("starting through", self.dir.path.join(gate::SOCKET_NAME));
        // Whatever happened, the gate is used up: a second start must not find it.
        let _ = std::fs::remove_file(self.dir.path.join(gate::SOCKET_NAME));
        if let Err(msg) = result? {
            // A failed exec comes as a SetupError in JSON, a failed startContainer hook as
            // plain text.
            return Err(serde_json::from_str::<crate::process::SetupError>(&msg)
                .map(Error::from)
                .unwrap_or(Error::Setup(msg)));
        }
        let hooks = crate::hooks::load(&self.dir);
        if let Some(h) = hooks.poststart().as_deref().filter(|h| !h.is_empty()) {
            let st = self.state();
            let state = crate::hooks::state_json(&st);
            let ctx = crate::hooks::HookContext::in_bundle(&st.bundle);
            crate::hooks::run_all_warn("poststart", h, &state, ctx, warn);
        }
        Ok(())
    }

    /// Send `signal` to init, or with `all` to every process in the container's cgroup,
    /// by runc's rules: a stopped container refuses a signal to init ("container not
    /// running", which containerd's shim takes as "already finished"), while `all` still
    /// signals whatever is left in its cgroup and succeeds. SIGKILL to a paused container
    /// thaws it, or the kill would wait for a resume. Signal 0 only checks.
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let status = self.status();
        if all {
            if let Some(cg) = self.cgroup()? {
                return match cg.kill_all(signal) {
                    // The cgroup of a stopped container may be gone already.
                    Err(_) if status == Status::Stopped => Ok(()),
                    r => r.map_err(|e| Error::Cgroup(e.to_string())),
                };
            }
            if status == Status::Stopped {
                return Ok(());
            }
        }
        if status == Status::Stopped {
            return Err(self.wrong_state(status, "container not running"));
        }
        self.signal_init(signal)?;
        if status == Status::Paused && signal == libc::SIGKILL {
            if let Some(cg) = self.cgroup()? {
                cg.thaw().map_err(|e| Error::Cgroup(e.to_string()))?;
            }
        }
        Ok(())
    }

    fn signal_init(&self, signal: i32) -> Result<()> {
        let pidfd = match &self.pidfd {
            Some(fd) => fd.try_clone().ok(),
            None => sys::pidfd_open(self.state.pid).ok(),
        };
        // Check the start time after opening the pidfd: if it still matches, the pidfd is ours.
        if self.dir.status(&self.state) == Status::Stopped {
            return Err(self.wrong_state(Status::Stopped, "container not running"));
        }
        let r = match pidfd {
            Some(fd) => sys::pidfd_send_signal(&fd, signal),
            None => sys::check(unsafe { libc::kill(self.state.pid, signal) }).map(drop),
        };
        r.map_err(|e| Error::io("signalling init of", &self.dir.path, e))
    }

    /// Remove what is left of a container that cannot be loaded: a create that died before
    /// writing state.json (killed, or the machine went down), or a state.json that cannot be
    /// read. Whatever runs in the cgroup noted in the state dir ([`StateDir::record_cgroup`],
    /// written before the cgroup was made) is killed, the cgroup removed in every hierarchy
    /// (with the parents made for it), a rootfs bind in the caller's mount namespace
    /// detached, and the state dir removed. Returns false when `id` has become a complete
    /// container meanwhile (a create finished: use [`Container::delete`]); true when nothing
    /// of it remains, also when it never existed.
    pub fn delete_unloadable(root: &Path, id: &str) -> Result<bool> {
        let dir = match StateDir::open(root, id) {
            Ok(d) => d,
            Err(Error::NotFound(_)) => return Ok(true),
            Err(e) => return Err(e),
        };
        // A create in progress holds this lock until state.json is written.
        let _lock = dir.lock()?;
        match dir.read(id) {
            Ok(_) => return Ok(false),
            Err(Error::NotFound(_) | Error::Unreadable { .. }) => {}
            Err(e) => return Err(e),
        }
        if let Some(path) = dir.recorded_cgroup()? {
            let mounts = Mounts::probe().map_err(|e| Error::Cgroup(e.to_string()))?;
            let cg = husk_cgroups::manager_in(&mounts, &path)
                .map_err(|e| Error::Cgroup(e.to_string()))?;
            kill_and_remove_cgroup(cg.as_ref(), &mounts, Duration::from_secs(5))?;
        }
        let _ = crate::rootfs::caller_ns::detach_recorded(&dir.path);
        dir.remove()?;
        Ok(true)
    }

    /// Remove the container. Created and stopped containers are removed; running or paused
    /// ones only with `force` (they are killed first). Failed poststop hooks are warnings,
    /// printed on stderr (see [`Container::delete_with_warnings`]).
    pub fn delete(self, force: bool) -> Result<()> {
        self.delete_with_warnings(force, &mut crate::hooks::warn_stderr)
    }

    /// [`Container::delete`], giving warnings (failed poststop hooks) to `warn`.
    pub fn delete_with_warnings(self, force: bool, warn: &mut dyn FnMut(String)) -> Result<()> {
        let _lock = self.dir.lock()?;
        let status = self.status();
        match status {
            Status::Stopped | Status::Created => {}
            _ if force => {}
            _ => {
                let msg = format!(
                    "cannot delete container {} that is not stopped: {status}",
                    self.id()
                );
                return Err(self.wrong_state(status, msg));
            }
        }
        if status != Status::Stopped {
            let cg = self.cgroup()?;
            if let Some(cg) = &cg {
                // A frozen cgroup would hold SIGKILL back.
                let _ = cg.thaw();
                let _ = cg.kill_all(libc::SIGKILL);
            }
            let _ = self.signal_init(libc::SIGKILL);
            self.wait_gone(Duration::from_secs(10))?;
        }
        if let Some(cg) = self.cgroup()? {
            remove_cgroup(cg.as_ref(), self.cgroup_mounts()?, Duration::from_secs(5))?;
        }
        // Without a mount namespace, the container's mounts are in the caller's.
        if let Err(e) = crate::rootfs::caller_ns::detach_recorded(&self.dir.path) {
            warn(format!("container {:?}: {e}", self.id()));
        }
        let hooks = crate::hooks::load(&self.dir);
        if let Some(h) = hooks.poststop().as_deref().filter(|h| !h.is_empty()) {
            let st = self.state();
            let state = crate::hooks::state_json(&st);
            let ctx = crate::hooks::HookContext::in_bundle(&st.bundle);
            crate::hooks::run_all_warn("poststop", h, &state, ctx, warn);
        }
        self.dir.remove()
    }

    fn wait_gone(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.dir.status(&self.state) != Status::Stopped {
            // Reap it if it is our child (foreground run); otherwise its parent will.
            let _ = sys::waitpid(self.state.pid, libc::WNOHANG);
            if Instant::now() > deadline {
                return Err(Error::Other(format!(
                    "container {:?}: init did not exit after SIGKILL",
                    self.id()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Wait for init to exit and return its exit code (128+signal when killed). Only valid in
    /// the process that created the container (or a subreaper it was reparented to).
    pub fn wait(&self) -> Result<i32> {
        let (_, status) =
            sys::waitpid(self.state.pid, 0).ctx("waiting for init of", &self.dir.path)?;
        Ok(sys::exit_code(status))
    }

    /// Init's exit code (128+N for signal N) when it exited and nobody reaped it (its
    /// parent died before it: the process that waited for it is gone). None while it runs,
    /// or once reaped.
    pub fn unreaped_exit_code(&self) -> Option<i32> {
        sys::zombie_status(self.state.pid, self.state.pid_start_time).map(sys::exit_code)
    }
}

/// Kill everything in a cgroup and remove it (with the parents made for it). Killing is
/// repeated until the directories go: a process of a killed create may still be on its way
/// in (a v1 `tasks` write) after the first round.
pub(crate) fn kill_and_remove_cgroup(
    cg: &dyn husk_cgroups::CgroupManager,
    mounts: &Mounts,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        // A frozen cgroup would hold SIGKILL back.
        let _ = cg.thaw();
        let _ = cg.kill_all(libc::SIGKILL);
        match cg.destroy() {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => return Err(Error::Cgroup(e.to_string())),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let _ = husk_cgroups::prune_empty_parents_in(mounts, cg.path());
    Ok(())
}

/// Remove a container's cgroup, retrying while its last (killed) processes leave it, then the
/// parents that `create` made for it and nobody else uses.
pub(crate) fn remove_cgroup(
    cg: &dyn husk_cgroups::CgroupManager,
    mounts: &Mounts,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match cg.destroy() {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => return Err(Error::Cgroup(e.to_string())),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let _ = husk_cgroups::prune_empty_parents_in(mounts, cg.path());
    Ok(())
}
