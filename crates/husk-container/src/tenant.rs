//! Tenant processes (`exec`): run one more process inside an existing container.
//!
//! ```text
//! main (caller)
//!   │ load state, check status, open init's /proc/PID/ns/* and /proc/PID/root, re-check
//!   │ that init is still the same process (start time), connect the sockets
//!   ├─ clone3(CLONE_INTO_CGROUP on the v2 side) ── joiner
//!   │ send Go                                       joins the v1 cgroups (tasks fds),
//!   │                                               oom_score_adj, setns user first, then
//!   │                                               the rest, fchdir(init's root) + chroot
//!   │                                               ├─ clone [CLONE_PARENT] ── tenant
//!   │ ◄──── TenantPid ──────────────────────────────┤   (born in the pid/time namespaces)
//!   │ pidfd_open, ack ─────────────────────────────►│ exit   rlimits, pty, cwd, caps, user,
//!   │                                                        nnp, umask, $PATH lookup, execve
//!   │ ◄──── EOF (exec closed the channel) or Failed("…") ────┘
//! ```
//!
//! Not detached, the tenant is cloned with CLONE_PARENT and so is the caller's own child:
//! [`TenantProcess::wait`] returns its exit code. Detached, it is the joiner's child and is
//! handed to the nearest subreaper when the joiner exits.

use crate::builder::ContainerBuilder;
use crate::channel::{Channel, Msg};
use crate::container::Container;
use crate::error::{Error, IoContext, Result};
use crate::interrupt::Interrupt;
use crate::process::clone::clone_child;
use crate::process::{finish, SetupError};
use crate::state::write_atomic;
use crate::{console, identity, seccomp, sys};
use husk_oci::Status;
use oci_spec::runtime::{LinuxSeccomp, Process, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Namespace kinds, mount last. The user namespace goes first, except for namespaces its
/// joining would lock us out of (see `order_joins`).
const NAMESPACES: &[(&str, libc::c_int)] = &[
    ("user", libc::CLONE_NEWUSER),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("time", 0x80),
    ("mnt", libc::CLONE_NEWNS),
];

/// Configure a process to run in an existing container; made by
/// [`ContainerBuilder::as_tenant`], finished by [`TenantContainerBuilder::build`].
pub struct TenantContainerBuilder {
    id: String,
    root: PathBuf,
    pid_file: Option<PathBuf>,
    console_socket: Option<PathBuf>,
    preserve_fds: u32,
    process: Option<Process>,
    process_path: Option<PathBuf>,
    args: Option<Vec<String>>,
    detach: bool,
    ignore_paused: bool,
    pidfd_socket: Option<PathBuf>,
    sub_cgroups: husk_cgroups::SubCgroups,
    interruptible: bool,
}

/// A process started by [`TenantContainerBuilder::build`].
pub struct TenantProcess {
    pid: i32,
    pidfd: Option<OwnedFd>,
    detached: bool,
}

impl TenantProcess {
    /// Host pid of the process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A pidfd of the process (immune to pid reuse), when the kernel has them.
    pub fn pidfd(&self) -> Option<&OwnedFd> {
        self.pidfd.as_ref()
    }

    /// Send `signal` to the process.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let r = match &self.pidfd {
            Some(fd) => sys::pidfd_send_signal(fd, signal),
            None => sys::check(unsafe { libc::kill(self.pid, signal) }).map(drop),
        };
        r.ctx("signalling tenant process", format!("/proc/{}", self.pid))
    }

    /// Wait for the process to exit; its exit code (128+signal when killed). Only for a
    /// process that was not detached (a detached one is not the caller's child).
    pub fn wait(&self) -> Result<i32> {
        if self.detached {
            return Err(Error::Other(format!(
                "process {} was detached: it is not ours to wait for",
                self.pid
            )));
        }
        let (_, status) = sys::waitpid(self.pid, 0)
            .ctx("waiting for tenant process", format!("/proc/{}", self.pid))?;
        Ok(sys::exit_code(status))
    }
}

impl ContainerBuilder {
    pub(crate) fn tenant_parts(
        id: String,
        root: PathBuf,
        pid_file: Option<PathBuf>,
        console_socket: Option<PathBuf>,
        preserve_fds: u32,
    ) -> TenantContainerBuilder {
        TenantContainerBuilder {
            id,
            root,
            pid_file,
            console_socket,
            preserve_fds,
            process: None,
            process_path: None,
            args: None,
            detach: false,
            ignore_paused: false,
            pidfd_socket: None,
            sub_cgroups: Default::default(),
            interruptible: false,
        }
    }
}

impl Container {
    /// The `process` of the container's config.json: what an exec starts from when no
    /// process is given (runc does the same).
    pub fn config_process(&self) -> Result<Process> {
        self.config()?.process().clone().ok_or_else(|| Error::Spec {
            path: self.bundle().join("config.json"),
            msg: "process is missing".into(),
        })
    }

    fn config(&self) -> Result<Spec> {
        let path = self.bundle().join("config.json");
        let data = std::fs::read(&path).ctx("reading", &path)?;
        // Unknown capability names were warned about at create.
        crate::spec::parse_spec(&data)
            .map(|(spec, _)| spec)
            .map_err(|e| Error::Spec {
                path,
                msg: e.to_string(),
            })
    }
}

impl TenantContainerBuilder {
    /// The process to run (runtime-spec `process`).
    pub fn process(mut self, p: Process) -> Self {
        self.process = Some(p);
        self
    }

    /// Read the process from a JSON file (`exec --process`).
    pub fn process_path(mut self, p: impl Into<PathBuf>) -> Self {
        self.process_path = Some(p.into());
        self
    }

    /// Replace the process's args (with neither process given: the args of the
    /// container's own process with everything else as its config.json has it).
    pub fn args(mut self, args: Vec<String>) -> Self {
        self.args = Some(args);
        self
    }

    /// Do not keep the process as the caller's child (see the module docs).
    pub fn detach(mut self, v: bool) -> Self {
        self.detach = v;
        self
    }

    /// Allow exec into a paused container (the process starts frozen).
    pub fn ignore_paused(mut self, v: bool) -> Self {
        self.ignore_paused = v;
        self
    }

    /// Run in sub-cgroups of the container's cgroup (`exec --cgroup`; see
    /// [`husk_cgroups::sub_cgroup`]). They must exist already.
    pub fn sub_cgroups(mut self, subs: husk_cgroups::SubCgroups) -> Self {
        self.sub_cgroups = subs;
        self
    }

    /// Connected unix socket path that receives a pidfd of the process (SCM_RIGHTS).
    /// Give up on SIGTERM, SIGINT or SIGHUP while the process is being set up: it is killed
    /// and the build fails with [`Error::Interrupted`] (see `interrupt.rs`; for
    /// single-threaded callers). A foreground caller that forwards signals to the process
    /// leaves this off: what it is sent meanwhile is meant for the process.
    pub fn interruptible(mut self, v: bool) -> Self {
        self.interruptible = v;
        self
    }

    pub fn pidfd_socket(mut self, p: impl Into<PathBuf>) -> Self {
        self.pidfd_socket = Some(p.into());
        self
    }

    fn resolve_process(&mut self, c: &Container, warn: &mut dyn FnMut(String)) -> Result<Process> {
        let mut p = match (self.process.take(), &self.process_path) {
            (Some(p), _) => p,
            (None, Some(path)) => {
                let data = std::fs::read(path).ctx("reading process", path)?;
                let (p, warning) = crate::spec::parse_process(&data).map_err(|e| Error::Spec {
                    path: path.clone(),
                    msg: e.to_string(),
                })?;
                warning.into_iter().for_each(&mut *warn);
                p
            }
            (None, None) => c.config_process()?,
        };
        if let Some(args) = self.args.take() {
            p.set_args(Some(args));
        }
        if p.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::InvalidConfig(
                "process.args must not be empty".into(),
            ));
        }
        if !p.cwd().is_absolute() {
            return Err(Error::InvalidConfig(format!(
                "process.cwd {:?} must be an absolute path",
                p.cwd()
            )));
        }
        if p.terminal().unwrap_or(false) && self.console_socket.is_none() {
            return Err(Error::InvalidConfig(
                "process.terminal is true but no console socket was given".into(),
            ));
        }
        // Labels are checked against the running kernel by `build_with_warnings`.
        Ok(p)
    }

    /// Start the process in the container. Returns once it has exec'd (or with the step that
    /// failed, as one line).
    pub fn build(self) -> Result<TenantProcess> {
        self.build_with_warnings(&mut crate::hooks::warn_stderr)
    }

    /// [`Self::build`], with warnings (capability names ignored) handed to `warn` instead of
    /// printed on stderr.
    pub fn build_with_warnings(mut self, warn: &mut dyn FnMut(String)) -> Result<TenantProcess> {
        let intr = match self.interruptible {
            true => Some(Interrupt::new().ctx("blocking signals for", self.root.join(&self.id))?),
            false => None,
        };
        let intr = intr.as_ref();
        let c = Container::load(&self.root, &self.id)?;
        let id = c.id().to_string();
        match c.status() {
            Status::Running | Status::Created => {}
            Status::Paused if self.ignore_paused => {}
            Status::Paused => {
                return Err(c.wrong_state(
                    Status::Paused,
                    "cannot exec in a paused container (use --ignore-paused to override)",
                ))
            }
            s => return Err(c.wrong_state(s, "cannot exec in a stopped container")),
        }
        let process = self.resolve_process(&c, warn)?;
        // As at create: a label the host cannot apply fails here, before anything starts.
        crate::lsm::check_process(&crate::lsm::Labels::of_process(&process))?;
        // The container's seccomp filter applies to every process in it (as in runc).
        let seccomp = c
            .config()?
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().clone());
        // SCMP_ACT_NOTIFY: the tenant sends its notify fd to listenerPath, with a JSON
        // that only we can write (its host pid): connected now, the JSON goes over a
        // second socketpair once the joiner reports the pid (the main channel is read by
        // the joiner, so the tenant must not race it there).
        let listener = match seccomp
            .as_ref()
            .filter(|s| seccomp::uses_notify(s))
            .and_then(|s| s.listener_path().clone())
        {
            Some(p) => Some((
                console::connect(&p).ctx("connecting to seccomp listenerPath", &p)?,
                Channel::pair().ctx("creating socketpair for", self.root.join(&id))?,
            )),
            None => None,
        };
        let console = match &self.console_socket {
            Some(p) => Some(console::connect(p).ctx("connecting to console socket", p)?),
            None => None,
        };
        let pidfd_socket = match &self.pidfd_socket {
            Some(p) => Some(console::connect(p).ctx("connecting to pidfd socket", p)?),
            None => None,
        };

        // Everything of init's is opened here, then init is checked to still be the same
        // process: a recycled pid cannot hand us another process's namespaces.
        let init = c.pid();
        let mut joins = Vec::new();
        for (kind, flag) in NAMESPACES {
            let own = format!("/proc/self/ns/{kind}");
            let theirs = format!("/proc/{init}/ns/{kind}");
            let Ok(own_link) = std::fs::read_link(&own) else {
                continue; // this kernel lacks the kind
            };
            let their_link = std::fs::read_link(&theirs).ctx("reading", &theirs)?;
            if own_link != their_link {
                let fd = sys::open(Path::new(&theirs), libc::O_RDONLY).ctx("opening", &theirs)?;
                joins.push((*kind, *flag, fd));
            }
        }
        order_joins(&mut joins);
        let root_path = format!("/proc/{init}/root");
        let root = sys::open(Path::new(&root_path), libc::O_PATH | libc::O_DIRECTORY)
            .ctx("opening", &root_path)?;
        let set_groups = !joins.iter().any(|(k, ..)| *k == "user")
            || std::fs::read_to_string(format!("/proc/{init}/setgroups"))
                .is_ok_and(|s| s.trim() == "allow");
        let cgroup = match (c.cgroup_path(), self.sub_cgroups.is_empty()) {
            (Some(base), false) => Some(
                husk_cgroups::sub_cgroup(base, &self.sub_cgroups)
                    .and_then(|p| husk_cgroups::manager(&p))
                    .map_err(|e| Error::Cgroup(e.to_string()))?,
            ),
            (None, false) => {
                return Err(Error::Cgroup(format!(
                    "container {id:?} has no cgroup to run a process in a sub-cgroup of"
                )))
            }
            (_, true) => c.cgroup()?,
        };
        let v2_fd = cgroup.as_ref().and_then(|cg| cg.v2_dir_fd());
        let self_join = match &cgroup {
            Some(cg) => cg
                .self_join_fds()
                .map_err(|e| Error::Cgroup(e.to_string()))?,
            None => Vec::new(),
        };
        if c.status() == Status::Stopped {
            return Err(c.wrong_state(Status::Stopped, "cannot exec in a stopped container"));
        }

        let (main_end, child_end) =
            Channel::pair().ctx("creating socketpair for", self.root.join(&id))?;
        let cfg = TenantConfig {
            process: &process,
            joins: &joins,
            root: &root,
            cgroup_join: &self_join,
            set_groups,
            detach: self.detach,
            preserve_fds: self.preserve_fds,
            console_socket: console.as_ref(),
            seccomp: seccomp.as_ref(),
            seccomp_listener: listener.as_ref().map(|(sock, (_, child))| (sock, child)),
        };
        let joiner = clone_child(0, v2_fd.as_ref().map(|f| f.as_raw_fd())).map_err(|e| {
            Error::Setup(SetupError::new("cloning the process that joins the container", e).into())
        })?;
        let Some(joiner) = joiner else {
            drop(main_end);
            run_joiner(&cfg, &child_end)
        };
        drop(child_end);
        // Our copies of the listener socket and of the tenant's end: only the tenant's stay.
        let listener_state = listener.map(|(_, (main, _))| main);
        let kill_joiner = |e: Error| {
            if let Some(fd) = &joiner.pidfd {
                let _ = sys::pidfd_send_signal(fd, libc::SIGKILL);
            }
            let _ = sys::waitpid(joiner.pid, 0);
            e
        };
        if !joiner.in_cgroup && v2_fd.is_some() {
            if let Some(cg) = &cgroup {
                cg.add_process(joiner.pid)
                    .map_err(|e| kill_joiner(Error::Cgroup(e.to_string())))?;
            }
        }
        main_end.send(&Msg::Go).map_err(|_| {
            kill_joiner(Error::Setup(
                "the process joining the container exited early".into(),
            ))
        })?;

        // Until EOF: the tenant's pid (then ack, so that the joiner, its parent, keeps its
        // pid from being reused while we open a pidfd) and any step's failure.
        let mut tenant: Option<(i32, Option<OwnedFd>)> = None;
        let mut failure = None;
        loop {
            if let Err(e) = crate::interrupt::wait_readable(intr, main_end.as_raw_fd()) {
                // The caller gave up: the process must not start after all.
                if let Some((pid, pidfd)) = &tenant {
                    match pidfd {
                        Some(fd) => drop(sys::pidfd_send_signal(fd, libc::SIGKILL)),
                        None => unsafe {
                            libc::kill(*pid, libc::SIGKILL);
                        },
                    }
                }
                return Err(kill_joiner(e));
            }
            match main_end.recv() {
                Ok(Some(Msg::InitPid(pid))) => {
                    tenant = Some((pid, sys::pidfd_open(pid).ok()));
                    if let (Some(chan), Some(s)) = (&listener_state, &seccomp) {
                        let state = crate::hooks::state_json(&c.state());
                        let msg = seccomp::listener_message(
                            &c.state().oci_version,
                            pid,
                            s.listener_metadata().as_deref().unwrap_or_default(),
                            &state,
                        );
                        // A failed send means the tenant died; its Failed message follows.
                        let _ = chan.send(&Msg::SeccompListener(msg));
                    }
                    let _ = main_end.send(&Msg::Go);
                }
                Ok(Some(Msg::Failed(m))) => {
                    failure.get_or_insert(m);
                }
                Ok(Some(Msg::ExecPending)) if failure.is_none() => break,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let _ = sys::waitpid(joiner.pid, 0);
        let (pid, pidfd) = match (tenant, failure) {
            (Some(t), None) => t,
            (t, failure) => {
                if let Some((pid, _)) = t {
                    if !self.detach {
                        let _ = sys::waitpid(pid, 0);
                    }
                }
                return Err(failure.map(Error::from).unwrap_or_else(|| {
                    Error::Setup("the process joining the container exited unexpectedly".into())
                }));
            }
        };
        let tenant = TenantProcess {
            pid,
            pidfd,
            detached: self.detach,
        };
        if let Some(Err(e)) = intr.map(Interrupt::check) {
            let _ = tenant.signal(libc::SIGKILL);
            if !self.detach {
                let _ = tenant.wait();
            }
            return Err(e);
        }
        if let Some(p) = &self.pid_file {
            // As runc: a process whose pid cannot be recorded is not left running unseen.
            if let Err(e) = write_atomic(p, pid.to_string().as_bytes()) {
                let _ = tenant.signal(libc::SIGKILL);
                if !self.detach {
                    let _ = tenant.wait();
                }
                return Err(e);
            }
        }
        if let (Some(sock), Some(path)) = (&pidfd_socket, &self.pidfd_socket) {
            let fd = tenant.pidfd.as_ref().ok_or_else(|| {
                Error::Other(format!("no pidfd for process {pid}: the kernel lacks them"))
            })?;
            console::send_fd_named(sock, fd, b"pidfd").ctx("sending pidfd to", path)?;
        }
        Ok(tenant)
    }
}

/// Joining the container's user namespace gives every capability over the namespaces it
/// owns and none over the others: those (e.g. a time namespace made before the user
/// namespace, or a network namespace joined by path) are joined before it.
fn order_joins(joins: &mut [(&'static str, libc::c_int, OwnedFd)]) {
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    let id = |fd: &OwnedFd| {
        sys::fstat(fd.as_raw_fd())
            .ok()
            .map(|st| (st.st_dev, st.st_ino))
    };
    let Some(user) = joins
        .iter()
        .find(|(k, ..)| *k == "user")
        .map(|(.., fd)| id(fd))
    else {
        return;
    };
    let rank = |kind: &str, fd: &OwnedFd| -> u8 {
        if kind == "user" {
            return 1;
        }
        let owner = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_USERNS) };
        if owner < 0 {
            return 2;
        }
        let owner = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(owner) };
        if id(&owner) == user {
            2
        } else {
            0
        }
    };
    // Stable: within each group the order of NAMESPACES (mount last) holds.
    joins.sort_by_cached_key(|(kind, _, fd)| rank(kind, fd));
}

/// What the joiner and the tenant need, prepared before clone.
struct TenantConfig<'a> {
    process: &'a Process,
    joins: &'a [(&'static str, libc::c_int, OwnedFd)],
    /// init's root directory (O_PATH), entered after joining the mount namespace.
    root: &'a OwnedFd,
    /// v1 `tasks` files to write "0" to.
    cgroup_join: &'a [OwnedFd],
    set_groups: bool,
    detach: bool,
    preserve_fds: u32,
    console_socket: Option<&'a OwnedFd>,
    seccomp: Option<&'a LinuxSeccomp>,
    /// With SCMP_ACT_NOTIFY: the connected listenerPath socket, and the channel on which
    /// the main process sends the JSON that goes with the notify fd.
    seccomp_listener: Option<(&'a OwnedFd, &'a Channel)>,
}

fn exit(code: i32) -> ! {
    unsafe { libc::_exit(code) }
}

/// The joiner: cgroup, namespaces, root; clones the tenant and reports its pid.
fn run_joiner(cfg: &TenantConfig, chan: &Channel) -> ! {
    let result = (|| -> Result<i32, SetupError> {
        match chan.recv() {
            Ok(Some(Msg::Go)) => {}
            _ => return Err(SetupError::msg("waiting for the runtime: it went away")),
        }
        for fd in cfg.cgroup_join {
            sys::check(unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) } as i32)
                .map_err(|e| SetupError::new("joining the container's cgroup", e))?;
        }
        if let Some(adj) = cfg.process.oom_score_adj() {
            sys::write_file(
                Path::new("/proc/self/oom_score_adj"),
                adj.to_string().as_bytes(),
            )
            .map_err(|e| SetupError::new(format!("setting oom_score_adj to {adj}"), e))?;
        }
        for (kind, flag, fd) in cfg.joins {
            sys::check(unsafe { libc::setns(fd.as_raw_fd(), *flag) })
                .map_err(|e| SetupError::new(format!("joining the {kind} namespace"), e))?;
        }
        // setns(CLONE_NEWNS) put us at the namespace's root; init's root is what counts.
        sys::check(unsafe { libc::fchdir(cfg.root.as_raw_fd()) })
            .and_then(|_| sys::check(unsafe { libc::chroot(c".".as_ptr()) }))
            .map_err(|e| SetupError::new("entering the container's root", e))?;
        let flags = if cfg.detach {
            0
        } else {
            libc::CLONE_PARENT as u64
        };
        match clone_child(flags, None) {
            Ok(Some(child)) => Ok(child.pid),
            Ok(None) => run_tenant(cfg, chan),
            Err(e) => Err(SetupError::new("cloning the process in the container", e)),
        }
    })();
    match result {
        Ok(pid) => {
            if chan.send(&Msg::InitPid(pid)).is_ok() {
                // Stay its parent until the runtime has its pidfd.
                let _ = chan.recv();
            }
            exit(0)
        }
        Err(e) => {
            let _ = chan.send(&Msg::Failed(e));
            exit(1)
        }
    }
}

/// The tenant: the process spec, then execve.
fn run_tenant(cfg: &TenantConfig, chan: &Channel) -> ! {
    let mut keep = vec![chan.as_raw_fd()];
    keep.extend(cfg.console_socket.map(|s| s.as_raw_fd()));
    if let Some((sock, state)) = cfg.seccomp_listener {
        keep.extend([sock.as_raw_fd(), state.as_raw_fd()]);
    }
    sys::close_runtime_fds(cfg.preserve_fds, &keep);
    match setup_tenant(cfg) {
        Ok((prepared, filter)) => {
            let result = sys::cloexec_from(3 + cfg.preserve_fds);
            sys::reset_signals();
            // seccomp last, so that only execve itself must get past the filter.
            let err = match result.and_then(|()| filter.install()) {
                Ok(()) => {
                    // execve may now wait on the seccomp listener: the caller stops
                    // waiting for it (see gate::EXEC_PENDING).
                    if cfg.seccomp_listener.is_some() {
                        let _ = chan.send(&Msg::ExecPending);
                    }
                    SetupError::exec(&prepared.path, prepared.execve())
                }
                Err(e) => SetupError::new(format!("exec {:?}", prepared.path), e),
            };
            let _ = chan.send(&Msg::Failed(err));
            exit(127)
        }
        Err(e) => {
            let _ = chan.send(&Msg::Failed(e));
            exit(1)
        }
    }
}

fn setup_tenant<'a>(
    cfg: &TenantConfig<'a>,
) -> Result<(finish::Prepared, seccomp::Pending<'a>), SetupError> {
    let process = cfg.process;
    identity::set_rlimits(process.rlimits().as_deref().unwrap_or_default())?;
    if process.terminal().unwrap_or(false) {
        let socket = cfg
            .console_socket
            .ok_or_else(|| SetupError::msg("process.terminal is true but no console socket"))?;
        let root = sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| SetupError::new("opening the container's root", e))?;
        let (master, slave) = console::open_pty(&root)?;
        if let Some(size) = process.console_size() {
            console::set_size(&slave, size.height() as u16, size.width() as u16)
                .map_err(|e| SetupError::new("setting the terminal size", e))?;
        }
        console::send_fd(socket, &master)
            .map_err(|e| SetupError::new("sending the pty master to the console socket", e))?;
        drop(master);
        console::make_controlling_stdio(&slave)?;
    }
    finish::enter_cwd(process.cwd())?;
    let listener = match cfg.seccomp_listener {
        Some((socket, state)) => match state.recv() {
            Ok(Some(Msg::SeccompListener(m))) => {
                unsafe { libc::close(state.as_raw_fd()) };
                Some(seccomp::Listener {
                    socket,
                    message: m.into_bytes(),
                })
            }
            _ => {
                return Err(SetupError::msg(
                    "waiting for the seccomp listener state: the runtime went away",
                ))
            }
        },
        None => None,
    };
    // Without no_new_privs the filter needs CAP_SYS_ADMIN: installed now, else before execve.
    let filter = seccomp::Pending::prepare(
        cfg.seccomp,
        process.no_new_privileges().unwrap_or(false),
        listener,
    )?;
    let env = finish::env_with_home(process);
    crate::lsm::apply_exec_labels(&crate::lsm::Labels::of_process(process))?;
    finish::apply_identity(process, cfg.set_groups)?;
    finish::prepare_exec(process.args().as_deref().unwrap_or_default(), &env).map(|p| (p, filter))
}
