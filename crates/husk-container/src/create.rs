//! `create`, as seen from the main process: validate, make the state dir and cgroup, clone
//! init (directly, or through an intermediate), write id maps, wait for Ready or the
//! failed step, persist state. Anything made is undone if any step fails.

use crate::channel::{Channel, Msg};
use crate::container::Container;
use crate::error::{Error, IoContext, Result};
use crate::hooks;
use crate::interrupt::{self, Interrupt};
use crate::process::clone::clone_child;
use crate::process::gate;
use crate::process::init::{self, InitConfig};
use crate::process::namespaces::NamespacePlan;
use crate::spec::Bundle;
use crate::state::{write_atomic, ContainerState, StateDir};
use crate::sys;
use crate::timeline::Timeline;
use husk_cgroups::CgroupManager;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub(crate) struct CreateOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub listen_fds: u32,
    pub notify_socket: Option<PathBuf>,
    pub rootless: bool,
    /// Undo and fail on SIGTERM/SIGINT/SIGHUP (see `interrupt.rs`).
    pub interruptible: bool,
    /// Phase timestamps for [`Container::timeline`] (`timeline.rs`).
    pub timeline: bool,
    /// The systemd cgroup driver (see `ContainerBuilder::systemd_cgroup`).
    pub systemd_cgroup: bool,
}

/// What a failed create must take back, in reverse order of making.
struct Undo<'a> {
    dir: Option<&'a StateDir>,
    cgroup: Option<&'a dyn CgroupManager>,
    mounts: &'a husk_cgroups::layout::Mounts,
    /// The cgroup had processes before (runc allows that): only init is killed, not them.
    cgroup_shared: bool,
    init: Option<(i32, Option<OwnedFd>)>,
    /// Without a mount namespace: the rootfs bind in our mount namespace, and its path.
    caller_root: Option<(PathBuf, OwnedFd)>,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some((pid, pidfd)) = self.init.take() {
            match &pidfd {
                Some(fd) => drop(sys::pidfd_send_signal(fd, libc::SIGKILL)),
                None => unsafe {
                    libc::kill(pid, libc::SIGKILL);
                },
            }
            // Reap it when it is our child; a grandchild goes to the subreaper.
            let _ = sys::waitpid(pid, 0);
        }
        if let Some((path, bound)) = self.caller_root.take() {
            let _ = crate::rootfs::caller_ns::detach(&path, &bound);
        }
        if let Some(cg) = self.cgroup.take() {
            let wait = std::time::Duration::from_millis(500);
            // The killed init may take a moment to leave the cgroup; what it started (a
            // createContainer hook, without a pid namespace) is killed with it.
            let _ = match self.cgroup_shared {
                true => crate::container::remove_cgroup(cg, self.mounts, wait),
                false => crate::container::kill_and_remove_cgroup(cg, self.mounts, wait),
            };
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}

/// `warn` gets what does not stop the container but should be said (rootless without a
/// cgroup).
pub(crate) fn create(opts: CreateOptions, warn: &mut dyn FnMut(String)) -> Result<Container> {
    // First of all, and dropped last: the undo below must run before the signals are
    // unblocked again.
    let intr = match opts.interruptible {
        true => Some(Interrupt::new().ctx("blocking signals for", &opts.root)?),
        false => None,
    };
    let intr = intr.as_ref();
    let tl = Timeline::new(opts.timeline);
    husk_oci::validate_id(&opts.id).map_err(Error::InvalidId)?;
    let mut bundle = Bundle::load(&opts.bundle)?;
    for w in bundle.warnings.drain(..) {
        warn(w);
    }
    add_activation(
        &mut bundle.spec,
        opts.listen_fds,
        opts.notify_socket.as_deref(),
    )?;
    let plan = NamespacePlan::from_spec(&bundle.spec)?;
    // A label the host cannot enforce must not silently run the container unconfined.
    crate::lsm::check_process(&crate::lsm::Labels::from_spec(&bundle.spec))?;
    // Connect to the console socket before anything is made, so a bad path costs nothing.
    let console = match &opts.console_socket {
        Some(p) => Some(crate::console::connect(p).ctx("connecting to console socket", p)?),
        None => None,
    };
    // Likewise the seccomp listener (SCMP_ACT_NOTIFY): init sends the notify fd there.
    let seccomp = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .filter(|s| crate::seccomp::uses_notify(s));
    let listener = match seccomp.and_then(|s| s.listener_path().as_ref()) {
        Some(p) => Some(crate::console::connect(p).ctx("connecting to seccomp listenerPath", p)?),
        None => None,
    };

    tl.mark("main: bundle loaded and checked");
    let linux = bundle.spec.linux().as_ref();
    // Read once, for the path, the manager, an undo and the container's later commands.
    let mounts = husk_cgroups::layout::Mounts::probe().map_err(|e| Error::Cgroup(e.to_string()))?;
    let cgroups_path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .and_then(|p| p.to_str());
    let cg_path = match opts.systemd_cgroup {
        // Rootless: the user's own manager makes the scope, in its delegated subtree.
        true => husk_cgroups::systemd::resolve_path(
            cgroups_path,
            &opts.id,
            match opts.rootless {
                true => husk_cgroups::systemd::Bus::User,
                false => husk_cgroups::systemd::Bus::System,
            },
        ),
        false => husk_cgroups::path::resolve_in(&mounts, cgroups_path, &opts.id),
    }
    .map_err(|e| Error::Cgroup(e.to_string()))?;
    let resources = linux.and_then(|l| l.resources().as_ref());
    // Rootless: v1 cannot be delegated to a user, so no cgroup there (limits are an error).
    let cgroup = match opts.rootless {
        true => crate::rootless::cgroup_usable(&opts.id, resources, warn)?,
        false => true,
    }
    .then(|| husk_cgroups::manager_in(&mounts, &cg_path))
    .transpose()
    .map_err(|e| Error::Cgroup(e.to_string()))?;
    tl.mark("main: cgroup paths resolved");
    let dir = StateDir::create(&opts.root, &opts.id)?;
    let _lock = dir.lock()?;
    tl.mark("main: state dir made and locked");
    let mut undo = Undo {
        dir: Some(&dir),
        cgroup: None,
        mounts: &mounts,
        cgroup_shared: false,
        init: None,
        caller_root: None,
    };

    let mut cgroup = cgroup.as_deref();
    if let Some(cg) = cgroup {
        // Refused before anything is made (runc's check, same words).
        if cg.freezes_new_tasks().unwrap_or(false) {
            return Err(Error::Cgroup(format!(
                "container's cgroup unexpectedly frozen ({}): init would freeze in it",
                cg.path()
            )));
        }
        // A limit whose controller the user was not given: one error, before anything.
        // The user's manager offers what its user@UID.service was given (it enables them
        // for the scope as it starts it); elsewhere what reaches the cgroup's parent.
        if let (true, Some(r), Some(u)) = (opts.rootless, resources, &mounts.unified) {
            let from = match &cg_path.systemd {
                Some(s) if s.bus == husk_cgroups::systemd::Bus::User => {
                    husk_cgroups::systemd::user::manager_cgroup(crate::rootless::host_euid())
                }
                _ => cg_path.path.clone(),
            };
            husk_cgroups::v2::delegate::check_controllers(u, &from, r)
                .map_err(|e| Error::Cgroup(format!("rootless container {}: {e}", opts.id)))?;
        }
        // Noted before the first mkdir, so that a create killed at any instant leaves
        // nothing `delete --force` cannot find (state.json comes much later).
        dir.record_cgroup(&cg_path)?;
        undo.cgroup = Some(cg);
        match cg.create() {
            Ok(()) => {}
            // v2 without a delegated subtree: run without a cgroup unless limits were asked for.
            Err(e) if opts.rootless => {
                crate::rootless::cgroup_refused(&opts.id, &cg_path, resources, &e, warn)?;
                undo.cgroup = None;
                cgroup = None;
                let _ = std::fs::remove_file(dir.path.join(crate::state::CGROUP_FILE));
            }
            Err(e) => return Err(Error::Cgroup(e.to_string())),
        }
    }
    tl.mark("main: cgroup made (every hierarchy)");
    if let Some(n) = cgroup.and_then(|cg| cg.pids().ok()).map(|p| p.len()) {
        // runc 1.1 allows a cgroup that already has processes but says so: they share the
        // container's limits, and `delete` of the container will kill them.
        if n > 0 {
            undo.cgroup_shared = true;
            warn(format!(
                "container's cgroup is not empty: {n} process(es) found"
            ));
        }
    }
    if let Some(cg) = cgroup {
        let mut rules = crate::rootfs::devices::cgroup_rules(resources);
        if opts.rootless {
            // Device rules need privilege (a BPF program); a user namespace cannot mknod
            // anyway, and devices come in as bind mounts.
            rules.set_devices(None);
        }
        cg.set(&rules).map_err(|e| Error::Cgroup(e.to_string()))?;
    }
    tl.mark("main: cgroup emptiness checked, resources set");
    let self_join = match cgroup {
        Some(cg) => cg
            .self_join_fds()
            .map_err(|e| Error::Cgroup(e.to_string()))?,
        None => Vec::new(),
    };
    // In a user namespace (new or joined), init may not reach every bind source the caller
    // can: open them here, before init is in it.
    let bind_sources = match plan.contains(oci_spec::runtime::LinuxNamespaceType::User) {
        true => crate::rootfs::mounts::clone_bind_sources(
            bundle.spec.mounts().as_deref().unwrap_or_default(),
            &bundle.path,
        ),
        false => Vec::new(),
    };
    if !plan.contains(oci_spec::runtime::LinuxNamespaceType::Mount) {
        let bound = crate::rootfs::caller_ns::bind_rootfs(&bundle.rootfs, &dir.path).ctx(
            "bind-mounting the rootfs (no mount namespace)",
            &bundle.rootfs,
        )?;
        undo.caller_root = Some((bundle.rootfs.clone(), bound));
    }
    tl.mark("main: cgroup tasks files opened");
    let cgroup_dirs = crate::rootfs::mounts::cgroup_dirs(&mounts, cgroup.map(|cg| cg.path()));
    let gate = gate::listen(&dir.fd).ctx("creating exec gate in", &dir.path)?;
    let (main_end, child_end) = Channel::pair().ctx("creating socketpair for", &dir.path)?;
    let cfg = InitConfig {
        spec: &bundle.spec,
        rootfs: &bundle.rootfs,
        bundle: &bundle.path,
        plan: &plan,
        gate: &gate,
        console_socket: console.as_ref(),
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds + opts.listen_fds,
        cgroup_join: &self_join,
        cgroup_dirs: &cgroup_dirs,
        seccomp_listener: listener.as_ref(),
        bind_sources: &bind_sources,
        caller_root: undo.caller_root.as_ref().map(|(_, fd)| fd),
        timeline: tl.enabled(),
    };
    tl.mark("main: exec gate and channel made");

    // Clone: straight into the new namespaces (and v2 cgroup), or via an intermediate.
    let v2_fd = cgroup.and_then(|cg| cg.v2_dir_fd());
    let (pid, pidfd, in_cgroup) = if plan.needs_intermediate() {
        let child = clone_child(0, None).ctx("cloning intermediate process for", &dir.path)?;
        let Some(child) = child else {
            drop(main_end);
            init::run_intermediate(&cfg, &child_end)
        };
        let reply = interrupt::wait_readable(intr, main_end.as_raw_fd()).map(|()| main_end.recv());
        if reply.is_err() {
            // Init (if cloned yet) sees our end close and gives up by itself.
            unsafe { libc::kill(child.pid, libc::SIGKILL) };
        }
        let _ = sys::waitpid(child.pid, 0);
        let reply = reply?;
        match reply {
            Ok(Some(Msg::InitPid(pid))) => (pid, sys::pidfd_open(pid).ok(), false),
            Ok(Some(Msg::Failed(m))) => return Err(m.into()),
            _ => {
                return Err(Error::Setup(
                    "the intermediate process exited unexpectedly".into(),
                ))
            }
        }
    } else {
        let flags = plan.clone_flags;
        let child = clone_child(flags, v2_fd.as_ref().map(|f| f.as_raw_fd())).map_err(|e| {
            Error::Setup(crate::process::SetupError::new("cloning the init process", e).into())
        })?;
        let Some(child) = child else {
            drop(main_end);
            init::run(&cfg, &child_end)
        };
        (child.pid, child.pidfd, child.in_cgroup)
    };
    tl.mark("main: init cloned");
    drop(child_end);
    drop(gate);
    drop(bind_sources);
    undo.init = Some((pid, pidfd));

    if plan.new_user {
        let linux = bundle.spec.linux().as_ref();
        crate::rootless::write_id_maps(
            pid,
            linux
                .and_then(|l| l.uid_mappings().as_deref())
                .unwrap_or_default(),
            linux
                .and_then(|l| l.gid_mappings().as_deref())
                .unwrap_or_default(),
        )?;
    }
    move_net_devices(pid, &bundle, &plan)?;
    let gone = |_| Error::Setup("the init process exited before setup".into());
    main_end.send(&Msg::Go).map_err(gone)?;
    if let (Some(s), Some(_)) = (seccomp, &listener) {
        let state =
            hooks::creating_state(&bundle.spec, &opts.id, pid, &bundle.path, &bundle.rootfs);
        let msg = crate::seccomp::listener_message(
            bundle.spec.version(),
            pid,
            s.listener_metadata().as_deref().unwrap_or_default(),
            &state,
        );
        main_end.send(&Msg::SeccompListener(msg)).map_err(gone)?;
    }
    drop(listener);
    // Init joins the v1 hierarchies itself (cheap, see self_join_fds); the v2 part only
    // needs us when clone3 could not place it there. That slow path overlaps init's setup;
    // init cannot exec before `start`, which comes after us.
    // A systemd scope is made now, with init (still waiting for Joined) as its process.
    if let (false, Some(cg)) = (in_cgroup, cgroup) {
        if v2_fd.is_some() || cg.starts_with_process() {
            cg.add_process(pid)
                .map_err(|e| Error::Cgroup(e.to_string()))?;
        }
    }
    // A failed send means init already died; its Failed message is read just below.
    let _ = main_end.send(&Msg::Joined);
    tl.mark("main: Go and Joined sent");
    loop {
        interrupt::wait_readable(intr, main_end.as_raw_fd())?;
        match main_end.recv() {
            Ok(Some(Msg::Ready)) => break,
            Ok(Some(Msg::Timeline(marks))) => tl.extend(marks),
            // Init waits before pivot_root: our hooks run now, then it runs its own.
            Ok(Some(Msg::RunHooks)) => {
                let state = hooks::creating_state(
                    &bundle.spec,
                    &opts.id,
                    pid,
                    &bundle.path,
                    &bundle.rootfs,
                );
                hooks::run_create_runtime(
                    &bundle.spec,
                    &state,
                    &bundle.path,
                    intr.map(Interrupt::fd),
                )
                .map_err(|e| match intr.and_then(Interrupt::caught) {
                    Some(sig) => Error::Interrupted(sig),
                    None => Error::Hook(Box::new(e)),
                })?;
                let state = String::from_utf8_lossy(&state).into_owned();
                main_end.send(&Msg::HookState(state)).map_err(gone)?;
            }
            Ok(Some(Msg::Failed(m))) => return Err(m.into()),
            _ => return Err(Error::Setup("the init process exited during setup".into())),
        }
    }
    tl.mark("main: Ready received");
    hooks::save(&dir, &bundle.spec)?;
    // The last moment a caller's signal can still undo everything.
    if let Some(i) = intr {
        i.check()?;
    }

    let (start_time, _) = sys::proc_start_time(pid)
        .ok_or_else(|| Error::Setup("the init process exited after setup".into()))?;
    let state = ContainerState::started_now(
        &bundle,
        &opts.id,
        pid,
        start_time,
        cgroup.map(|_| cg_path.clone()),
    );
    dir.write(&state)?;
    if let Some(p) = &opts.pid_file {
        write_atomic(p, pid.to_string().as_bytes())?;
    }
    tl.mark("main: state.json written");
    // Success: keep everything.
    let pidfd = undo.init.take().and_then(|(_, fd)| fd);
    undo.caller_root = None;
    undo.cgroup = None;
    undo.dir = None;
    drop(undo);
    let mut c = Container::from_parts(dir, state, pidfd, mounts.clone());
    c.set_timeline(tl.take());
    Ok(c)
}

/// Socket activation and sd_notify, as systemd hands them to the runtime: extra env for the
/// process and, for NOTIFY_SOCKET, a bind mount of the host's socket into the container.
fn add_activation(
    spec: &mut oci_spec::runtime::Spec,
    listen_fds: u32,
    notify: Option<&Path>,
) -> Result<()> {
    const NOTIFY_IN_CONTAINER: &str = "/run/notify/notify.sock";
    let mut env = Vec::new();
    if listen_fds > 0 {
        env.push(format!("LISTEN_FDS={listen_fds}"));
        env.push("LISTEN_PID=1".to_string());
    }
    if let Some(sock) = notify {
        let meta = std::fs::metadata(sock).ctx("NOTIFY_SOCKET", sock)?;
        if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            return Err(Error::InvalidConfig(format!(
                "NOTIFY_SOCKET {} is not a socket",
                sock.display()
            )));
        }
        let mut m = oci_spec::runtime::Mount::default();
        m.set_destination(PathBuf::from(NOTIFY_IN_CONTAINER))
            .set_typ(Some("bind".into()))
            .set_source(Some(sock.to_path_buf()))
            .set_options(Some(vec![
                "bind".into(),
                "nosuid".into(),
                "nodev".into(),
                "noexec".into(),
            ]));
        spec.mounts_mut().get_or_insert_with(Vec::new).push(m);
        env.push(format!("NOTIFY_SOCKET={NOTIFY_IN_CONTAINER}"));
    }
    if env.is_empty() {
        return Ok(());
    }
    if let Some(p) = spec.process_mut().as_mut() {
        let mut all = p.env().clone().unwrap_or_default();
        all.retain(|e| {
            !env.iter()
                .any(|n| e.split('=').next() == n.split('=').next())
        });
        all.extend(env);
        p.set_env(Some(all));
    }
    Ok(())
}

/// `linux.netDevices`: host interfaces move into init's new network namespace before it runs.
fn move_net_devices(pid: i32, bundle: &Bundle, plan: &NamespacePlan) -> Result<()> {
    let devices = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().clone())
        .unwrap_or_default();
    if devices.is_empty() {
        return Ok(());
    }
    let new_netns = plan.clone_flags & oci_spec::runtime::LinuxNamespaceType::Network as u64 != 0;
    if !new_netns {
        return Err(Error::InvalidConfig(
            "linux.netDevices needs a new network namespace".into(),
        ));
    }
    let ns_path = format!("/proc/{pid}/ns/net");
    let netns = sys::open(Path::new(&ns_path), libc::O_RDONLY).ctx("opening", &ns_path)?;
    let mut names: Vec<_> = devices.iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (host, dev) in names {
        let target = dev.name().clone().unwrap_or_else(|| host.clone());
        if !crate::netdev::valid_name(host) || !crate::netdev::valid_name(&target) {
            return Err(Error::InvalidConfig(format!(
                "linux.netDevices: invalid interface name {host:?} -> {target:?}"
            )));
        }
        crate::netdev::move_into(&netns, host, &target).map_err(|e| {
            Error::Setup(
                crate::process::SetupError::new(
                    format!("moving network device {host} into the container as {target}"),
                    e,
                )
                .into(),
            )
        })?;
    }
    Ok(())
}
