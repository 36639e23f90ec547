//! The init process: everything between clone and the user's execve.
//!
//! Runs in a freshly cloned, single-threaded process. It never returns into the caller's
//! stack (that would run the main process's destructors twice): it ends in execve or _exit.

use super::finish::{self, Prepared};
use super::namespaces::{self, NamespacePlan};
use super::{gate, SetupError};
use crate::channel::{Channel, Msg};
use crate::console;
use crate::rootfs::RootfsSetup;
use crate::timeline::Timeline;
use crate::{hooks, identity, seccomp, sys};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Everything init needs, prepared by the main process before clone.
pub struct InitConfig<'a> {
    pub spec: &'a Spec,
    /// Absolute host path of the rootfs.
    pub rootfs: &'a Path,
    pub plan: &'a NamespacePlan,
    /// The listening exec gate (see `gate`).
    pub gate: &'a OwnedFd,
    /// Where to send the pty master when `process.terminal` is true.
    pub console_socket: Option<&'a OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// fds 3..3+n are passed to the container's process.
    pub preserve_fds: u32,
    /// v1 `tasks` files to write "0" to: init moves itself into its cgroup.
    pub cgroup_join: &'a [OwnedFd],
    /// Init's cgroups once joined (`mounts::cgroup_dirs`), for a `cgroup` mount.
    pub cgroup_dirs: &'a [(std::path::PathBuf, std::path::PathBuf)],
    /// The bundle directory: init's cwd while mounting, so relative sources resolve there.
    pub bundle: &'a Path,
    /// The connected `linux.seccomp.listenerPath` socket when the profile has
    /// SCMP_ACT_NOTIFY rules: the notify fd goes there once the filter is installed.
    pub seccomp_listener: Option<&'a OwnedFd>,
    /// Bind sources the main process opened before the user namespace existed, by index
    /// in `mounts` (see `rootfs::mounts::clone_bind_sources`).
    pub bind_sources: &'a [Option<OwnedFd>],
    /// Without a mount namespace: the rootfs bind the main process made in its own
    /// (`rootfs::caller_ns`).
    pub caller_root: Option<&'a OwnedFd>,
    /// Send init's phase timestamps before Ready (`timeline.rs`).
    pub timeline: bool,
}

/// Entry point of init after clone. Reports Ready or the failed step over `chan`.
pub fn run(cfg: &InitConfig, chan: &Channel) -> ! {
    close_inherited(cfg, chan);
    let tl = Timeline::new(cfg.timeline);
    match setup(cfg, chan, &tl) {
        Ok(prepared) => {
            tl.mark("init: exec prepared");
            if tl.enabled() && chan.send(&Msg::Timeline(tl.take())).is_err() {
                exit(1);
            }
            if chan.send(&Msg::Ready).is_err() {
                exit(1);
            }
            exec_when_started(cfg, prepared)
        }
        Err(e) => {
            let _ = chan.send(&Msg::Failed(e));
            exit(1)
        }
    }
}

/// The intermediate process: join namespaces by path, create the time namespace, clone init
/// into the rest, report init's pid, exit.
pub fn run_intermediate(cfg: &InitConfig, chan: &Channel) -> ! {
    close_inherited(cfg, chan);
    let result = (|| -> Result<i32, SetupError> {
        namespaces::join_all(&cfg.plan.joins)?;
        if cfg.plan.new_time {
            namespaces::unshare_time(cfg.spec)?;
        }
        match super::clone::clone_child(cfg.plan.clone_flags, None) {
            Ok(Some(child)) => Ok(child.pid),
            Ok(None) => run(cfg, chan),
            Err(e) => Err(SetupError::new("cloning the init process", e)),
        }
    })();
    let msg = match result {
        Ok(pid) => Msg::InitPid(pid),
        Err(e) => Msg::Failed(e),
    };
    let code = matches!(msg, Msg::Failed(_)) as i32;
    let _ = chan.send(&msg);
    exit(code)
}

/// Keep stdio, the preserved fds and our own channels; drop everything else the main
/// process had open (its state-dir fd and lock above all), also where it sits inside the
/// preserved range (`--preserve-fds 100` with only a few fds really open).
fn close_inherited(cfg: &InitConfig, chan: &Channel) {
    let mut keep = vec![chan.as_raw_fd(), cfg.gate.as_raw_fd()];
    keep.extend(cfg.cgroup_join.iter().map(|f| f.as_raw_fd()));
    keep.extend(cfg.console_socket.map(|s| s.as_raw_fd()));
    keep.extend(cfg.seccomp_listener.map(|s| s.as_raw_fd()));
    keep.extend(cfg.bind_sources.iter().flatten().map(|f| f.as_raw_fd()));
    keep.extend(cfg.caller_root.map(|f| f.as_raw_fd()));
    sys::close_runtime_fds(cfg.preserve_fds, &keep);
}

fn exit(code: i32) -> ! {
    unsafe { libc::_exit(code) }
}

/// What setup hands to `exec_when_started`: the execve, the pending seccomp filter and the
/// state for the startContainer hooks.
type Ready<'a> = (Prepared, seccomp::Pending<'a>, Vec<u8>);

fn setup<'a>(cfg: &InitConfig<'a>, chan: &Channel, tl: &Timeline) -> Result<Ready<'a>, SetupError> {
    tl.mark("init: started, fds closed");
    // The main process writes our id maps, then says Go.
    match chan.recv() {
        Ok(Some(Msg::Go)) => {}
        _ => return Err(SetupError::msg("waiting for the runtime: it went away")),
    }
    tl.mark("init: Go received");
    // With a seccomp listener, the JSON to send with the notify fd follows at once.
    let listener = match cfg.seccomp_listener {
        Some(socket) => match chan.recv() {
            Ok(Some(Msg::SeccompListener(m))) => Some(seccomp::Listener {
                socket,
                message: m.into_bytes(),
            }),
            _ => {
                return Err(SetupError::msg(
                    "waiting for the seccomp listener state: the runtime went away",
                ))
            }
        },
        None => None,
    };
    for fd in cfg.cgroup_join {
        sys::check(unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) } as i32)
            .map_err(|e| SetupError::new("joining the container's cgroup", e))?;
        // Host cgroup files have no business staying open in the container. (This process
        // ends in execve or _exit, so the OwnedFd copies are never dropped twice.)
        unsafe { libc::close(fd.as_raw_fd()) };
    }
    tl.mark("init: joined the v1 cgroups (tasks)");
    let spec = cfg.spec;
    let plan = cfg.plan;
    std::env::set_current_dir(cfg.bundle)
        .map_err(|e| SetupError::new(format!("entering the bundle {}", cfg.bundle.display()), e))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| SetupError::msg("config.json has no process"))?;
    if plan.contains(LinuxNamespaceType::User) {
        // Become the namespace's root (when mapped) so file access inside the rootfs works;
        // also in a joined one, where our host ids are unmapped (files made with them fail
        // with EOVERFLOW).
        unsafe {
            libc::setresgid(0, 0, 0);
            libc::setresuid(0, 0, 0);
        }
    }
    unsafe { libc::umask(0) };

    // Our cgroup membership, once the main process has moved us there.
    let joined = std::cell::OnceCell::new();
    let cgroups = || -> Result<Vec<(std::path::PathBuf, std::path::PathBuf)>, SetupError> {
        if joined.get().is_none() {
            match chan.recv() {
                Ok(Some(Msg::Joined)) => {}
                _ => {
                    return Err(SetupError::msg(
                        "waiting for the cgroup: the runtime went away",
                    ))
                }
            }
            let _ = joined.set(cfg.cgroup_dirs.to_vec());
        }
        Ok(joined.get().cloned().expect("set above"))
    };
    if !cfg.no_new_keyring {
        join_session_keyring()?;
    }
    set_names(spec, plan)?;
    if plan.clone_flags & LinuxNamespaceType::Network as u64 != 0 {
        crate::netdev::loopback_up()
            .map_err(|e| SetupError::new("bringing up lo in the new network namespace", e))?;
    }
    if let Some(adj) = process.oom_score_adj() {
        sys::write_file(
            Path::new("/proc/self/oom_score_adj"),
            adj.to_string().as_bytes(),
        )
        .map_err(|e| SetupError::new(format!("setting oom_score_adj to {adj}"), e))?;
    }

    tl.mark("init: keyring, hostname, lo up");
    let terminal = process.terminal().unwrap_or(false);
    let pty = match (terminal, cfg.console_socket) {
        (true, None) => {
            return Err(SetupError::msg(
                "process.terminal is true but no --console-socket was given",
            ))
        }
        (true, Some(_)) => Some(()),
        (false, _) => None,
    };
    // With hooks: once the mounts are done, the runtime runs prestart/createRuntime and sends
    // the state; then createContainer runs here, in the container's namespaces.
    let hook_state = std::cell::OnceCell::new();
    let before_pivot = || -> Result<(), SetupError> {
        if !hooks::init_needs_state(spec) {
            return Ok(());
        }
        cgroups()?;
        let gone = || SetupError::msg("waiting for the createRuntime hooks: the runtime went away");
        chan.send(&Msg::RunHooks).map_err(|_| gone())?;
        let state = match chan.recv() {
            Ok(Some(Msg::HookState(s))) => s.into_bytes(),
            _ => return Err(gone()),
        };
        // As in runc: in the rootfs (init's cwd there), with the process's environment.
        let ctx = hooks::HookContext {
            cwd: Some(cfg.rootfs),
            env: Some(process.env().as_deref().unwrap_or_default()),
            interrupt: None,
        };
        let seen = hooks::as_seen_by_init(&state, husk_oci::Status::Creating);
        hooks::run_all("createContainer", hooks::create_container(spec), &seen, ctx)
            .map_err(|e| SetupError::msg(e.to_string()))?;
        let _ = hook_state.set(hooks::as_seen_by_init(&state, husk_oci::Status::Created));
        Ok(())
    };
    let rootfs = RootfsSetup {
        spec,
        caller_root: cfg.caller_root,
        rootfs: cfg.rootfs,
        in_userns: plan.in_userns(),
        new_net: plan.contains(LinuxNamespaceType::Network),
        new_ipc: plan.contains(LinuxNamespaceType::Ipc),
        new_uts: plan.contains(LinuxNamespaceType::Uts),
        no_pivot: cfg.no_pivot,
        console: pty.and(cfg.console_socket),
        console_size: process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16)),
        cgroups: &cgroups,
        before_pivot: &before_pivot,
        bind_sources: cfg.bind_sources,
        timeline: tl,
    };
    let slave = rootfs.run()?;
    if plan.new_cgroup {
        // Made once we sit in our cgroup, so that it is the namespace's root.
        cgroups()?;
        sys::check(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) })
            .map_err(|e| SetupError::new("creating the cgroup namespace", e))?;
        tl.mark("init: cgroup namespace");
    }
    if let Some(slave) = slave {
        console::make_controlling_stdio(&slave)?;
    } else {
        // A session of its own, as runc's init has: otherwise the session leader is the
        // caller (a shell, a shim) outside the container's pid namespace, and CRIU refuses
        // to dump such a tree without --shell-job. It cannot fail in a fresh clone (never a
        // group leader); if it did, the container still runs, only not checkpointable.
        unsafe { libc::setsid() };
    }

    identity::set_rlimits(process.rlimits().as_deref().unwrap_or_default())?;

    finish::enter_cwd(process.cwd())?;
    tl.mark("init: rlimits, cwd");
    // seccomp: installed here without no_new_privs (needs CAP_SYS_ADMIN), else before execve.
    let nnp = process.no_new_privileges().unwrap_or(false);
    let filter = seccomp::Pending::prepare(
        spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()),
        nnp,
        listener,
    )?;
    super::extras::apply_linux(spec.linux().as_ref())?;
    // An unprivileged gid_map comes with setgroups denied; the user namespace says which.
    let set_groups = !plan.in_userns()
        || std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "allow");
    let env = finish::env_with_home(process);
    crate::lsm::apply_exec_labels(&crate::lsm::Labels::of_process(process))?;
    tl.mark("init: seccomp prepared, extras, env");
    finish::apply_identity(process, set_groups)?;
    tl.mark("init: user, capabilities");

    finish::prepare_exec(process.args().as_deref().unwrap_or_default(), &env)
        .map(|p| (p, filter, hook_state.get().cloned().unwrap_or_default()))
}

fn set_names(spec: &Spec, plan: &NamespacePlan) -> Result<(), SetupError> {
    for (name, value, set) in [
        (
            "hostname",
            spec.hostname(),
            libc::sethostname as unsafe extern "C" fn(_, _) -> _,
        ),
        ("domainname", spec.domainname(), libc::setdomainname),
    ] {
        let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        if !plan.contains(LinuxNamespaceType::Uts) {
            return Err(SetupError::msg(format!(
                "cannot set {name} without a private UTS namespace"
            )));
        }
        sys::check(unsafe { set(v.as_ptr().cast(), v.len()) })
            .map_err(|e| SetupError::new(format!("setting {name} {v:?}"), e))?;
    }
    Ok(())
}

/// A fresh session keyring per container, so containers never share kernel keys.
fn join_session_keyring() -> Result<(), SetupError> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            c"_ses.husk".as_ptr(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        // Kernels without keyrings: nothing to isolate.
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(SetupError::new("creating the session keyring", e));
        }
    }
    Ok(())
}

fn exec_when_started(cfg: &InitConfig, (p, filter, state): Ready) -> ! {
    let mut conn = match gate::wait_for_start(cfg.gate) {
        Ok(c) => c,
        Err(_) => exit(1),
    };
    let mut result = sys::cloexec_from(3 + cfg.preserve_fds);
    // startContainer hooks: in the container, before the user's process, and (as with
    // runc) already under the seccomp filter; SIGPIPE is still ignored here, so a hook that
    // closes its stdin cannot kill init.
    let hooks = hooks::start_container(cfg.spec);
    let filter_first = !hooks.is_empty();
    if filter_first {
        result = result.and_then(|()| filter.install());
    }
    if result.is_ok() {
        // In the process's cwd, with the environment it is about to get (HOME included).
        let ctx = hooks::HookContext {
            cwd: None,
            env: Some(&p.env),
            interrupt: None,
        };
        if let Err(e) = hooks::run_all("startContainer", hooks, &state, ctx) {
            let _ = conn.write_all(e.to_string().as_bytes());
            exit(127)
        }
    }
    sys::reset_signals();
    // Without hooks, seccomp last, so that only execve itself must get past the filter.
    if !filter_first {
        result = result.and_then(|()| filter.install());
    }
    // A seccomp listener may hold execve itself until it answers, for as long as it likes:
    // `start` stops waiting here (runc's start does not wait for execve either), and a
    // failure after this point shows only as the container's exit.
    if result.is_ok() && cfg.seccomp_listener.is_some() {
        let _ = conn.write_all(&[gate::EXEC_PENDING]);
    }
    let err = match result {
        Ok(()) => SetupError::exec(&p.path, p.execve()),
        Err(e) => SetupError::new(format!("exec {:?}", p.path), e),
    };
    // As JSON, so that `start` keeps the kind of failure (gate::start).
    let msg = serde_json::to_vec(&err).unwrap_or_else(|_| err.to_string().into_bytes());
    let _ = conn.write_all(&msg);
    let _ = conn.as_raw_fd();
    exit(127)
}
