//! The lifecycle of the engine's containers after `run`: list, stop, kill, pause, start
//! again, remove, inspect, top, stats, prune. Each finds the container by name, id or id
//! prefix (record.rs) and acts through the runtime library's state, never a stored flag.

use crate::engine::Engine;
use crate::error::{ContainerError, During, Error, Result};
use crate::made::Made;
use crate::monitor::settle_orphan;
use crate::os::IoContext;
use crate::record::{find, list, Record, RecordError, Runner};
use husk_container::Container;
use husk_oci::Status;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// One container as `ps` shows it (docker's row of it: [`crate::views::ContainerRow`]).
#[derive(Clone, Debug)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    /// The image as the user named it, and its id (hex).
    pub image: String,
    pub image_id: String,
    /// RFC 3339.
    pub created: String,
    /// The last start (RFC 3339), and the end of the last run.
    pub started_at: String,
    pub finished_at: Option<String>,
    /// running, paused, created or exited.
    pub status: &'static str,
    pub exit_code: Option<i64>,
    /// The main process, while it runs.
    pub pid: Option<i32>,
    /// The process's command line.
    pub command: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its bridge networks (`,`-joined), else none, host, slirp4netns.
    pub network: String,
    /// Published ports, docker's `0.0.0.0:8080->80/tcp, …` (while it is on its networks).
    pub ports: String,
    /// Destinations of -v and --tmpfs mounts.
    pub mounts: Vec<String>,
    /// The pod it belongs to: (id, name).
    pub pod: Option<(String, String)>,
    /// starting, healthy, unhealthy; None without a health check.
    pub health: Option<String>,
}

/// One process of a container (`top`).
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    pub pid: i32,
    /// Its command line as the host sees it.
    pub cmdline: Vec<String>,
}

/// One container's resource usage at one moment (`stats`).
#[derive(Clone, Debug)]
pub struct StatsRow {
    pub id: String,
    pub name: String,
    /// Percent of one CPU since the previous sample.
    pub cpu_percent: f64,
    pub memory_usage: u64,
    /// None: unlimited.
    pub memory_limit: Option<u64>,
    pub pids: u64,
    /// The cgroup statistics themselves, as the runtime library reports them.
    pub raw: Value,
}

impl Engine {
    /// Every container (`all`) or the ones not exited, oldest first. One whose record is
    /// damaged is left out, with a warning naming its file.
    pub fn containers(&self, all: bool) -> Vec<ContainerSummary> {
        for (id, e) in crate::record::broken(&self.root) {
            (self.warn)(&format!(
                "container {} left out: {e}",
                &id[..id.len().min(12)]
            ));
        }
        list(&self.root)
            .into_iter()
            // A container whose runner died is settled first (monitor::settle_orphan);
            // one with --rm is gone then.
            .filter_map(|r| match settle_orphan(&r, None) {
                true => Record::load(&r.dir).ok(),
                false => Some(r),
            })
            .map(crate::views::summary)
            .filter(|s| all || s.status != "exited")
            .collect()
    }

    /// The stop signal, then SIGKILL after `timeout`; returns once whoever runs the
    /// container has recorded its exit. Stopping a stopped container does nothing.
    pub fn stop(&self, what: &str, timeout: Duration) -> Result<()> {
        self.with_event(what, "stop", &[], || stop(&self.root, what, timeout))
    }

    /// Remove a stopped container (a running one only with `force`, killing it).
    pub fn remove(&self, what: &str, force: bool) -> Result<()> {
        self.remove_with_volumes(what, force, false)
    }

    /// [`Engine::remove`]; with `volumes` (`rm -v`) also the container's anonymous
    /// volumes that no other container uses (named ones always stay, as docker's).
    pub fn remove_with_volumes(&self, what: &str, force: bool, volumes: bool) -> Result<()> {
        let anonymous = match volumes {
            true => find(&self.root, what)
                .map(|r| crate::volumes::anonymous_of(&r.meta.mounts))
                .unwrap_or_default(),
            false => Vec::new(),
        };
        self.with_event(what, "destroy", &[], || {
            rm(&self.root, what, force, &*self.warn)
        })?;
        crate::volumes::remove_unused(&self.root, &anonymous, true);
        Ok(())
    }

    /// Send `signal` (a name or number) to the container's main process.
    pub fn kill(&self, what: &str, signal: &str) -> Result<()> {
        let sig = husk_oci::signal::parse_signal(signal)
            .unwrap_or(0)
            .to_string();
        self.with_event(what, "kill", &[("signal", &sig)], || {
            kill(&self.root, what, signal)
        })
    }

    /// Freeze every process of the container.
    pub fn pause(&self, what: &str) -> Result<()> {
        self.with_event(what, "pause", &[], || pause(&self.root, what, false))
    }

    /// Thaw a paused container.
    pub fn unpause(&self, what: &str) -> Result<()> {
        self.with_event(what, "unpause", &[], || pause(&self.root, what, true))
    }

    /// `op` on the container `what`, then its event `action` (with the container's name and
    /// image as they were before `op`: after `rm` there is no record to read them from).
    fn with_event(
        &self,
        what: &str,
        action: &str,
        extra: &[(&str, &str)],
        op: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let before = find(&self.root, what).ok();
        op()?;
        if let Some(r) = before {
            crate::events::container(&self.root, &r, action, extra);
        }
        Ok(())
    }

    /// Start a created container, or run an exited one again, detached (its filesystem —
    /// the upper dir — kept from before), under a new monitor with the restart policy (and
    /// --rm) it was created with.
    pub fn start(&self, what: &str) -> Result<()> {
        let r = find(&self.root, what)?;
        self.start_again(r, false).during("start", what).map(drop)
    }

    /// [`Engine::start`] of a container found; with `attach`, its monitor waits for us to
    /// connect to its attach socket before it starts the container: the connection.
    pub(crate) fn start_again(
        &self,
        mut r: Record,
        attach: bool,
    ) -> Result<Option<std::os::unix::net::UnixStream>> {
        if r.runtime().is_some_and(|c| c.status() != Status::Stopped) {
            return Err(ContainerError::NotExited(r.status()).into());
        }
        let store = self.store()?;
        let rec = self.image_of(&store, &r)?;
        // container:X namespaces: X's init of now (X must run; a pod's infra is started).
        self.before_member_start(&r)?;
        crate::joins::refresh(&self.root, &r.dir, &r.meta.joins)?;
        // A monitor that died may have left the runtime state and the overlay behind.
        if let Some(c) = r.runtime() {
            c.delete(true)?;
        }
        crate::rootfs::unmount_leftover(&r.dir)?;
        let remove = r.meta.remove;
        r.meta.exit_code = None;
        r.meta.finished = None;
        r.meta.stopping = false;
        r.meta.error = None;
        r.meta.never_started = false;
        // Us until the new monitor takes over: the dead one must not look like an orphan.
        r.meta.runner = Some(Runner::me());
        r.save()?;
        crate::writable::prepare_again(&r.dir, r.id(), r.meta.writable)?;
        let ns = crate::userns::for_container(&self.root, r.id())?;
        let idmap = crate::rootfs::Idmapped::of(&ns);
        let overlay =
            crate::rootfs::prepare(&r.dir, &store, &rec, idmap.as_ref(), &*self.warn, false)?;
        let made = Made {
            dir: r.dir.clone(),
            overlay: Some(overlay),
            keep_dir: true,
            volumes: Vec::new(),
        };
        // Its networks again (torn down when it last ended), and the /etc files with the
        // addresses they gave; undone with `made` if the start fails.
        let m = &r.meta;
        if m.network == crate::network::Network::Bridge {
            self.connect_container(&r.dir, &m.id, &m.network, &m.networks, &m.ports, &m.etc)?;
        }
        if attach {
            crate::attach_socket::ask_to_wait(&r.dir)?;
        }
        Ok(crate::monitor::detach_attached(
            &self.root,
            r.id(),
            made,
            remove,
            attach,
        )?)
    }

    /// The image record of the container's image (by id: its tag may have moved since).
    pub(crate) fn image_of(
        &self,
        store: &husk_image::store::Store,
        r: &Record,
    ) -> Result<husk_image::store::ImageRecord, ContainerError> {
        let image_id = r.meta.image_id.clone();
        store
            .resolve(&image_id, &self.default_registry)
            .map_err(|source| ContainerError::Image {
                image: image_id,
                source,
            })
    }

    /// Block until the container has exited (a created one: started and exited), then its
    /// exit code, as `docker wait`. An exited container answers at once with its last code.
    pub fn wait(&self, what: &str) -> Result<i64> {
        let r = find(&self.root, what)?;
        self.wait_for(&r, what)
    }

    /// [`Engine::wait`] for a container already found (it may be gone since: --rm).
    pub(crate) fn wait_for(&self, r: &Record, what: &str) -> Result<i64> {
        loop {
            // A dead runner records no end: settle it as the other commands do.
            settle_orphan(r, None);
            let Ok(fresh) = Record::load(&r.dir) else {
                // Removed (--rm): its last "die" event still has its code.
                return crate::events::last_exit_code(&self.root, r.id())
                    .ok_or_else(|| crate::record::RecordError::NotFound(what.to_string()))
                    .during("wait", what);
            };
            if let Some(code) = fresh.exit_code() {
                return Ok(code);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Give the container another name (its hostname stays, as docker's).
    pub fn rename(&self, what: &str, new: &str) -> Result<()> {
        self.rename_inner(what, new).during("rename", what)
    }

    fn rename_inner(&self, what: &str, new: &str) -> Result<()> {
        if !crate::config::valid_name(new) {
            return Err(crate::config::ConfigError::Name(new.to_string()).into());
        }
        let containers = crate::record::containers_dir(&self.root);
        // The lock `run` and `create` take to give out names.
        let _names = crate::record::lock_names(&containers)?;
        let mut r = find(&self.root, what)?;
        if r.name() == new {
            return Ok(());
        }
        if crate::record::name_taken(&containers, new) {
            return Err(crate::error::RunError::NameInUse(new.to_string()).into());
        }
        // Fresh under the lock: a monitor may have written since `find` read it.
        r = Record::load(&r.dir)?;
        let old = r.name().to_string();
        r.meta.name = new.to_string();
        r.save()?;
        crate::events::container(&self.root, &r, "rename", &[("oldName", &old)]);
        Ok(())
    }

    /// The container's processes.
    pub fn top(&self, what: &str) -> Result<Vec<ProcessInfo>> {
        let r = find(&self.root, what)?;
        let pids = live(&r)
            .and_then(|c| Ok(c.processes()?))
            .during("top", what)?;
        Ok(pids
            .into_iter()
            .map(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmdline = cmd
                    .split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                ProcessInfo { pid, cmdline }
            })
            .collect())
    }

    /// Remove every exited (or created, never started) container; `removed` hears each id
    /// as it goes.
    pub fn prune(&self, removed: &mut dyn FnMut(&str)) -> Result<()> {
        for r in list(&self.root) {
            settle_orphan(&r, None);
            let Ok(r) = Record::load(&r.dir) else {
                continue;
            };
            let status = r.status();
            // A pod's infra goes with its pod (`pod rm`), not on its own.
            let infra = r.meta.infra;
            if !infra && (status == "created" || (status == "exited" && r.exit_code().is_some())) {
                rm(&self.root, r.id(), false, &*self.warn)?;
                removed(r.id());
            }
        }
        Ok(())
    }

    /// A sampler of the containers' resource usage (running ones only).
    pub fn stats(&self, what: &[String]) -> Result<StatsSampler> {
        let records: Vec<Record> = what
            .iter()
            .map(|w| find(&self.root, w))
            .collect::<Result<_, _>>()?;
        let mut before = Vec::new();
        for r in &records {
            before.push((sample(r)?.cpu.usage.total, Instant::now()));
        }
        Ok(StatsSampler { records, before })
    }
}

/// Successive samples of some containers' usage: CPU percent is over the time since the
/// previous sample (or since [`Engine::stats`]).
pub struct StatsSampler {
    records: Vec<Record>,
    before: Vec<(u64, Instant)>,
}

impl StatsSampler {
    pub fn sample(&mut self) -> Result<Vec<StatsRow>> {
        let mut rows = Vec::new();
        for (r, prev) in self.records.iter().zip(self.before.iter_mut()) {
            let s = sample(r)?;
            let now = Instant::now();
            let cpu_ns = s.cpu.usage.total.saturating_sub(prev.0) as f64;
            let pct = 100.0 * cpu_ns / now.duration_since(prev.1).as_nanos().max(1) as f64;
            *prev = (s.cpu.usage.total, now);
            rows.push(StatsRow {
                id: r.id().to_string(),
                name: r.name().to_string(),
                cpu_percent: pct,
                memory_usage: s.memory.usage.usage,
                memory_limit: match s.memory.usage.limit {
                    0 | u64::MAX => None,
                    l if l >= 1 << 62 => None,
                    l => Some(l),
                },
                pids: s.pids.current,
                raw: serde_json::to_value(&s).unwrap_or_default(),
            });
        }
        Ok(rows)
    }
}

fn sample(r: &Record) -> Result<husk_cgroups::Stats> {
    live(r)
        .and_then(|c| Ok(c.stats()?))
        .during("stats", r.name())
}
/// `stop`: the stop signal, then SIGKILL after `timeout`; returns once whoever runs the
/// container has recorded its exit.
fn stop(root: &Path, what: &str, timeout: Duration) -> Result<()> {
    let r = find(root, what)?;
    let Some(c) = r.runtime().filter(|c| c.status() != Status::Stopped) else {
        if r.exit_code().is_none() {
            mark_stopping(&r); // between two runs of a restart policy: no next run
        }
        settle_orphan(&r, None);
        return Ok(()); // already stopped: nothing to do, as podman
    };
    if c.status() == Status::Paused {
        return Err(Error::from(ContainerError::Paused).during("stop", what));
    }
    mark_stopping(&r);
    // The container's --stop-signal, the image's, else SIGTERM.
    let signal = r.meta.stop_signal;
    match c.kill(signal, false) {
        // It ended between our look and the signal (a --restart run finishing): its end is
        // being recorded, and the stopping mark keeps the policy from starting another run.
        Err(husk_container::Error::WrongState {
            status: Status::Stopped,
            ..
        }) => {}
        other => other.during("stop", what)?,
    }
    if wait_end(&r, timeout, signal) {
        return Ok(());
    }
    kill_and_wait(&r, &c).during("stop", what)
}

/// Wait up to `timeout` for the container's end to be recorded: by its runner (monitor or
/// foreground `husk run`), or here once the container exited if the runner is dead
/// (`signal`: what we sent it, for the exit code when its status is lost).
fn wait_end(r: &Record, timeout: Duration, signal: i32) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if r.finished() || settle_orphan(r, Some(signal)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Tell the monitor that this exit is wanted: no restart, whatever the policy.
fn mark_stopping(r: &Record) {
    if let Ok(mut fresh) = Record::load(&r.dir) {
        fresh.meta.stopping = true;
        let _ = fresh.save();
    }
}

fn kill_and_wait(r: &Record, c: &Container) -> Result<(), ContainerError> {
    mark_stopping(r);
    // --all: also processes that `husk exec` started; the cgroup holds them all.
    let _ = c.kill(libc::SIGKILL, true);
    if wait_end(r, Duration::from_secs(10), libc::SIGKILL) {
        return Ok(());
    }
    // Its processes are gone but its runner is still cleaning up (network teardowns of
    // many containers ending at once take turns, network/setup.rs): give that time.
    let gone = r.runtime().is_none_or(|c| c.status() == Status::Stopped);
    if gone && wait_end(r, Duration::from_secs(60), libc::SIGKILL) {
        return Ok(());
    }
    Err(ContainerError::DidNotExit)
}

/// `rm`: remove a stopped container (a running one only with `force`, killing it).
fn rm(root: &Path, what: &str, force: bool, warn: &dyn Fn(&str)) -> Result<()> {
    let r = match find(root, what) {
        Ok(r) => r,
        Err(RecordError::Parse { path, source }) if !force => {
            return Err(Error::from(ContainerError::Damaged { path, source }).during("rm", what))
        }
        Err(RecordError::Parse { path, source }) => {
            let dir = path.parent().unwrap_or(&path).to_path_buf();
            rm_without_record(root, &dir).during("rm", what)?;
            warn(&format!(
                "container {what}: its record {} was damaged ({source}): removed what could \
                 be found without it",
                path.display()
            ));
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    crate::pod::check_removable(root, &r).during("rm", what)?;
    if let Some(c) = r.runtime() {
        if c.status() != Status::Stopped {
            if !force {
                return Err(
                    Error::from(ContainerError::StillRunning(r.status())).during("rm", what)
                );
            }
            kill_and_wait(&r, &c).during("rm", what)?;
        }
    }
    // Whoever ran it normally cleans up; after a crash of that process, do it here.
    if let Some(c) = r.runtime() {
        c.delete(true).during("rm", what)?;
    }
    crate::network::stop_slirp(&r.dir);
    crate::network::setup::teardown(&r.dir).during("rm", what)?;
    crate::rootfs::unmount_leftover(&r.dir)?;
    crate::writable::release(&r.dir);
    match std::fs::remove_dir_all(&r.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).ctx("removing", &r.dir).during("rm", what),
    }
    // After the directory: a range whose container still exists is never free.
    crate::userns::release(root, r.id()).during("rm", what)
}

/// `rm -f` of the container in `dir` whose record is damaged: what can be found without
/// it goes — its processes (all of the cgroup's, SIGKILL) and runtime state (cgroup and
/// state dir), slirp4netns/pasta, its network endpoints, its rootfs mount and writable
/// layer, its directory, and its user-namespace range. The id is the directory's name.
/// Its monitor, if it runs, finds no record to restart from and ends once the container has.
fn rm_without_record(root: &Path, dir: &Path) -> Result<()> {
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let state = || Container::load(&crate::record::state_root(), &id).ok();
    if let Some(c) = state().filter(|c| c.status() != Status::Stopped) {
        let _ = c.kill(libc::SIGKILL, true);
        let deadline = Instant::now() + Duration::from_secs(10);
        while state().is_some_and(|c| c.status() != Status::Stopped) {
            if Instant::now() >= deadline {
                return Err(ContainerError::DidNotExit.into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The monitor deletes the state too once init is gone: whichever of us comes second
    // finds nothing to delete.
    if let Some(c) = state() {
        if let Err(e) = c.delete(true) {
            if state().is_some() {
                return Err(e.into());
            }
        }
    }
    crate::network::stop_slirp(dir);
    crate::network::setup::teardown(dir)?;
    crate::rootfs::unmount_leftover(dir)?;
    crate::writable::release(dir);
    // A monitor still ending may add a file while the tree goes (its network lock): again.
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(_) if tries < 5 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e).ctx("removing", dir)?,
        }
    }
    crate::userns::release(root, &id)?;
    Ok(())
}

/// The running (or paused) container's runtime handle, or why there is none.
fn live(r: &Record) -> Result<Container> {
    r.runtime()
        .filter(|c| c.status() != Status::Stopped)
        .ok_or_else(|| ContainerError::NotRunning(r.status()).into())
}

/// `kill`: send `signal` to the container's main process.
fn kill(root: &Path, what: &str, signal: &str) -> Result<()> {
    let sig = husk_oci::signal::parse_signal(signal)
        .map_err(|e| ContainerError::Signal(crate::spec_from_image::flags::SignalError::Parse(e)))
        .during("kill", what)?;
    let r = find(root, what)?;
    live(&r)
        .and_then(|c| Ok(c.kill(sig, false)?))
        .during("kill", what)
}

/// `pause` (`resume` false) / `unpause` (`resume` true): freeze or thaw the cgroup.
fn pause(root: &Path, what: &str, resume: bool) -> Result<()> {
    let r = find(root, what)?;
    let op = if resume { "unpause" } else { "pause" };
    live(&r)
        .and_then(|c| {
            match (c.status(), resume) {
                (Status::Paused, false) => return Err(ContainerError::AlreadyPaused.into()),
                (Status::Running, true) => return Err(ContainerError::NotPaused.into()),
                _ => {}
            }
            Ok(if resume { c.resume() } else { c.pause() }?)
        })
        .during(op, what)
}
