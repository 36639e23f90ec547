//! `husk run`: pull if needed, mount the image's layers as an overlay rootfs, write the
//! bundle's config.json and run the container in the foreground through husk-container.
//!
//! Engine state of a container: <store root>/containers/<id>/{config.json, container.json,
//! upper, work, rootfs}; the runtime library's state lives under /run/husk-engine (or
//! $XDG_RUNTIME_DIR/husk-engine), apart from husk-runtime's /run/husk.

use crate::rootfs_overlay;
use crate::spec_from_image::flags::{self, Seccomp};
use crate::spec_from_image::{self, Volume};
use crate::{Ctx, RegistryArgs};
use clap::Args;
use husk_container::ContainerBuilder;
use husk_image::config::{Overrides, RootfsView};
use husk_image::pull::{self, PullOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

/// The process options `run` and `exec` share.
#[derive(Args)]
pub struct ProcessFlags {
    /// Give the process a terminal: a pty proxied to ours (raw mode, window size; stdin is
    /// attached too), or with run -d one whose output the monitor logs
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Attach stdin (without it, and without -t, the process reads /dev/null)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Set an environment variable KEY=VALUE
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory in the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User to run as: name|uid[:group|gid], resolved in the container's /etc/passwd
    #[arg(short = 'u', long)]
    pub user: Option<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// Run in the background: print the container id once it has started
    #[arg(short = 'd', long)]
    detach: bool,
    #[command(flatten)]
    process: ProcessFlags,
    /// Restart policy of a detached container: no, always, unless-stopped, on-failure[:N]
    #[arg(long, default_value = "no")]
    restart: String,
    /// Remove the container (state and filesystem) when it exits
    #[arg(long)]
    rm: bool,
    /// Name of the container (default: its short id)
    #[arg(long)]
    name: Option<String>,
    /// Replace the image's entrypoint ("" clears it)
    #[arg(long)]
    entrypoint: Option<String>,
    /// Container host name (default: the name, or the short id)
    #[arg(long)]
    hostname: Option<String>,
    /// none (own namespace, loopback only), host, or slirp4netns[:allow_host_loopback=true]
    /// (outbound through user-mode networking)
    #[arg(long, default_value = "none")]
    network: String,
    /// Bind mount SRC:DST[:ro|rw]
    #[arg(short = 'v', long = "volume")]
    volume: Vec<String>,
    /// Mount the container's root read-only
    #[arg(long)]
    read_only: bool,
    #[command(flatten)]
    more: Box<MoreRunArgs>,
    #[command(flatten)]
    reg: RegistryArgs,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

/// Limits, env files, tmpfs, capabilities, security options, init, stop signal: boxed so
/// that `RunArgs` stays small inside `Cmd` (clippy's large_enum_variant).
#[derive(Args)]
pub struct MoreRunArgs {
    /// Memory limit (N[b|k|m|g])
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Maximum number of processes
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Read KEY=VALUE lines (# comments; a bare KEY takes husk's value); -e wins
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Mount a tmpfs: DST[:OPTIONS] (default nosuid,nodev; e.g. size=64m,mode=1777)
    #[arg(long, value_name = "DST[:OPTIONS]")]
    tmpfs: Vec<String>,
    /// CPU limit: N.NN CPUs' worth of time per 100 ms
    #[arg(long, allow_negative_numbers = true)]
    cpus: Option<String>,
    /// Add a capability (NET_ADMIN, CAP_NET_ADMIN, ALL)
    #[arg(long, value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop a capability (or ALL)
    #[arg(long, value_name = "CAP")]
    cap_drop: Vec<String>,
    /// All capabilities, no masked or read-only paths, all devices allowed, no seccomp
    #[arg(long)]
    privileged: bool,
    /// no-new-privileges[=true|false], seccomp=unconfined, seccomp=FILE (OCI or Docker form)
    #[arg(long, value_name = "OPT")]
    security_opt: Vec<String>,
    /// Run a small init as PID 1 that forwards signals and reaps zombies
    #[arg(long)]
    init: bool,
    /// Signal that stops the container (name or number; default: the image's, or SIGTERM)
    #[arg(long, value_name = "SIGNAL")]
    stop_signal: Option<String>,
}

/// Where husk-container keeps the runtime state of engine containers.
pub fn state_root() -> PathBuf {
    // Rootless: the same place inside the user namespace (uid 0 there) and outside.
    if !husk_container::rootless::is_unprivileged() {
        return PathBuf::from("/run/husk-engine");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("husk-engine"),
        None => std::env::temp_dir().join(format!(
            "husk-engine-{}",
            husk_container::rootless::host_euid()
        )),
    }
}

fn new_id() -> Result<String, String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("making a container id: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || "_.-".contains(x))
}

/// An exclusive flock on CONTAINERS.lock (made if missing), released on drop.
fn lock_names(containers: &Path) -> Result<std::fs::File, String> {
    std::fs::create_dir_all(containers)
        .map_err(|e| format!("creating {}: {e}", containers.display()))?;
    crate::os::lock_file(&containers.with_extension("lock"))
}

fn name_taken(containers: &Path, name: &str) -> bool {
    let Ok(rd) = std::fs::read_dir(containers) else {
        return false;
    };
    rd.flatten().any(|e| {
        std::fs::read(e.path().join("container.json"))
            .ok()
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .is_some_and(|v| v["name"] == name)
    })
}

/// husk-init (init/main.rs), linked statically by build.rs; empty if that was impossible.
static HUSK_INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/husk-init"));

/// The store's copy of husk-init: the source of --init's read-only bind mount. Only a
/// --privileged container could remount it writable.
fn init_binary(root: &Path) -> Result<PathBuf, String> {
    if HUSK_INIT.is_empty() {
        return Err(
            "--init: this husk was built without husk-init (linking it statically failed; \
             install libc6-dev and rebuild)"
                .into(),
        );
    }
    store_copy(root, "husk-init", HUSK_INIT).map_err(|e| format!("--init: {e}"))
}

/// ROOT/NAME, a copy of an executable husk embeds (husk-init, husk-monitor), (re)written
/// when missing or not this husk's: one copy for all containers of the store, which only
/// root can write (mode 0555, replaced by a rename).
pub(crate) fn store_copy(root: &Path, name: &str, data: &[u8]) -> Result<PathBuf, String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = root.join(name);
    let current = std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o7777 == 0o555)
        && std::fs::read(&path).is_ok_and(|d| d == data);
    if current {
        return Ok(path);
    }
    let fail = |e: std::io::Error| format!("writing {}: {e}", path.display());
    let tmp = root.join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o555)
            .open(&tmp)?;
        std::io::Write::write_all(&mut f, data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })?;
    Ok(path)
}

/// `--security-opt seccomp=FILE` → linux.seccomp, checked as create would check it.
fn load_seccomp(file: &Path, caps: &[String]) -> Result<serde_json::Value, String> {
    let what = format!("--security-opt seccomp={}", file.display());
    let text = std::fs::read_to_string(file).map_err(|e| format!("{what}: {e}"))?;
    let profile = flags::seccomp_profile(&text, caps).map_err(|e| format!("{what}: {e}"))?;
    let probe = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"seccomp": profile, "namespaces": [{"type": "mount"}, {"type": "pid"}]}
    });
    let spec: oci_spec::runtime::Spec =
        serde_json::from_value(probe).map_err(|e| format!("{what}: {e}"))?;
    husk_container::validate::validate_spec(&spec).map_err(|e| format!("{what}: {e}"))?;
    Ok(profile)
}

/// husk-container's build must run single-threaded (its children continue on copies of
/// this stack). The pull's download threads are joined through a scope, which returns a
/// moment before the OS threads are gone: wait for them to disappear.
fn single_threaded() -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let n = std::fs::read_dir("/proc/self/task")
            .map(|rd| rd.count())
            .map_err(|e| format!("/proc/self/task: {e}"))?;
        if n <= 1 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{n} threads still running before the container is made"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

static INIT_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = INIT_PID.load(Ordering::SeqCst);
    if pid > 0 {
        unsafe { libc::kill(pid, sig) };
    }
}

pub(crate) fn forward_signals(pid: i32) {
    INIT_PID.store(pid, Ordering::SeqCst);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The image's layer directories, top first: the overlay's lowerdirs.
pub(crate) fn layer_dirs(
    store: &husk_image::store::Store,
    rec: &husk_image::store::ImageRecord,
) -> Vec<PathBuf> {
    rec.layers
        .iter()
        .rev()
        .map(|l| store.layer_dir(&l.chain_id))
        .collect()
}

/// Our side of a container process's pty (`-t`): a console socket the library sends the
/// master to (as it would to conmon), and every signal blocked, for the proxy's signalfd.
pub(crate) struct Tty {
    listener: husk_container::terminal::ConsoleListener,
    signals: libc::sigset_t,
}

impl Tty {
    pub(crate) fn new() -> Result<Tty, String> {
        Ok(Tty {
            listener: husk_container::terminal::ConsoleListener::new()?,
            signals: husk_container::supervise::block_signals(),
        })
    }

    pub(crate) fn socket(&self) -> &Path {
        self.listener.path()
    }

    /// Take the master of `pid`'s pty, put our terminal in raw mode and copy both ways
    /// (signals forwarded, window size followed) until `pid` exits; its exit code.
    pub(crate) fn attach(&self, pid: i32) -> Result<i32, String> {
        let master = self.listener.receive_master().inspect_err(|_| unsafe {
            libc::kill(pid, libc::SIGKILL);
        })?;
        husk_container::terminal::copy_window_size(&master);
        let _raw = husk_container::terminal::RawMode::enter();
        husk_container::terminal::proxy(
            &master,
            &self.signals,
            &mut || husk_container::supervise::reap(pid),
            &mut |sig| unsafe {
                libc::kill(pid, sig);
            },
        )
    }
}

/// The container reads /dev/null, not our stdin (podman's default without -i).
pub(crate) fn stdin_from_dev_null() -> Result<(), String> {
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0) } < 0 {
        return Err(format!("dup2: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Everything made for one container, undone on failure (and on exit, as far as asked).
pub(crate) struct Made {
    pub(crate) dir: PathBuf,
    pub(crate) overlay: Option<rootfs_overlay::Overlay>,
    pub(crate) keep_dir: bool,
}

impl Made {
    /// Leave everything as it is: another process (the monitor) owns it now.
    pub(crate) fn disarm(mut self) {
        if let Some(o) = self.overlay.take() {
            o.disarm();
        }
        self.keep_dir = true;
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        // Still ours (not handed to a monitor): the container's slirp4netns too.
        if let Some(mut o) = self.overlay.take() {
            crate::network::stop_slirp(&self.dir);
            let _ = o.unmount();
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Run the container; Ok(exit code of its process).
pub fn run(ctx: &Ctx, a: RunArgs) -> Result<i32, String> {
    let image = a.image.clone();
    run_inner(ctx, a).map_err(|e| format!("run {image}: {e}"))
}

fn run_inner(ctx: &Ctx, a: RunArgs) -> Result<i32, String> {
    let restart = crate::monitor::Restart::parse(&a.restart)?;
    if restart != crate::monitor::Restart::No {
        if !a.detach {
            return Err(
                "--restart: only a detached (-d) container has a monitor to restart it".into(),
            );
        }
        if a.rm {
            return Err("--restart and --rm exclude each other".into());
        }
    }
    let network = crate::network::Network::parse(&a.network)?;
    let host_network = !network.own_namespace();
    let volumes = a
        .volume
        .iter()
        .map(|v| Volume::parse(v))
        .collect::<Result<Vec<_>, _>>()?;
    let memory = a
        .more
        .memory
        .as_deref()
        .map(spec_from_image::parse_size)
        .transpose()?;
    if a.more.pids_limit.is_some_and(|n| n <= 0) {
        return Err("--pids-limit must be positive".into());
    }
    if let Some(n) = &a.name {
        if !valid_name(n) {
            return Err(format!("--name {n:?}: use letters, digits, '_', '.', '-'"));
        }
    }
    for v in &volumes {
        if !Path::new(&v.source).exists() {
            return Err(format!("-v: {} does not exist", v.source));
        }
    }
    let mut env = Vec::new();
    for f in &a.more.env_file {
        env.extend(flags::env_file(f, |k| std::env::var(k).ok())?);
    }
    env.extend(a.process.env.iter().cloned());
    let tmpfs = a
        .more
        .tmpfs
        .iter()
        .map(|t| flags::Tmpfs::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, t) in tmpfs.iter().enumerate() {
        let dst = &t.destination;
        if tmpfs[..i].iter().any(|o| &o.destination == dst)
            || volumes
                .iter()
                .any(|v| v.destination.trim_end_matches('/') == dst)
        {
            return Err(format!(
                "--tmpfs {dst}: {dst} is already a mount destination"
            ));
        }
    }
    if a.more.init
        && volumes
            .iter()
            .any(|v| v.destination.trim_end_matches('/') == "/dev")
    {
        return Err("--init: a volume on /dev would hide husk-init (it lives in /dev)".into());
    }
    let cpu_quota = a
        .more
        .cpus
        .as_deref()
        .map(|c| flags::cpu_quota(c, flags::host_cpus()))
        .transpose()?;
    let (caps, added_caps) = flags::capabilities(
        spec_from_image::CAPS,
        a.more.privileged,
        &a.more.cap_add,
        &a.more.cap_drop,
    )?;
    let security = flags::Security::parse(&a.more.security_opt)?;
    let seccomp = match &security.seccomp {
        Seccomp::File(f) => Some(load_seccomp(f, &caps)?),
        Seccomp::Default | Seccomp::Unconfined => None,
    };
    let stop_signal = a
        .more
        .stop_signal
        .as_deref()
        .map(|s| flags::signal(s).map_err(|e| format!("--stop-signal {s:?}: {e}")))
        .transpose()?;

    let store = ctx.store()?;
    let init = a.more.init.then(|| init_binary(&ctx.root)).transpose()?;
    let rec = match store.resolve(&a.image, &ctx.default_registry) {
        Ok(r) => r,
        Err(_) => {
            let r = ctx.parse_ref(&a.image)?;
            let opts = PullOptions {
                client: ctx.client(&r.registry, &a.reg)?,
                parallel: ctx.settings.max_concurrent_downloads.unwrap_or(3).max(1),
                progress: std::sync::Arc::new(pull::NoProgress),
                ..Default::default()
            };
            pull::pull(&store, &r, &opts).map_err(|e| format!("pulling {r}: {e}"))?
        }
    };
    let cfgb = store
        .read_blob(&rec.config_digest)
        .map_err(|e| e.to_string())?;
    let cfg = pull::parse_config(&cfgb).map_err(|e| e.to_string())?;

    let containers = ctx.root.join("containers");
    // Held until container.json is written: two runs cannot both take one name.
    let names_lock = lock_names(&containers)?;
    if let Some(n) = &a.name {
        if name_taken(&containers, n) {
            return Err(format!("the name {n:?} is already in use"));
        }
    }
    let id = new_id()?;
    let short = id[..12].to_string();
    let name = a.name.clone().unwrap_or_else(|| short.clone());
    let dir = containers.join(&id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut made = Made {
        dir: dir.clone(),
        overlay: None,
        keep_dir: false,
    };
    let ov = rootfs_overlay::prepare(&dir, &store, &rec)?;
    let rootfs = ov.rootfs.clone();
    made.overlay = Some(ov);

    let overrides = Overrides {
        user: a.process.user.clone(),
        entrypoint: a
            .entrypoint
            .clone()
            .map(|e| if e.is_empty() { vec![] } else { vec![e] }),
        cmd: (!a.cmd.is_empty()).then(|| a.cmd.clone()),
        env,
        workdir: a.process.workdir.clone(),
    };
    let pv = husk_image::config::process_from_config(&cfg, &RootfsView::Dir(rootfs), &overrides)
        .map_err(|e| e.to_string())?;
    let spec = spec_from_image::spec(
        &pv,
        &spec_from_image::Options {
            hostname: a.hostname.clone().unwrap_or_else(|| name.clone()),
            host_network,
            volumes,
            read_only: a.read_only,
            memory,
            pids_limit: a.more.pids_limit,
            cgroups_path: format!("/husk-engine/{id}"),
            tmpfs,
            cpu_quota,
            caps,
            added_caps,
            privileged: a.more.privileged,
            // husk run sets no_new_privs unless asked not to (Docker and podman leave it
            // off); --privileged turns it off unless it is asked for.
            no_new_privileges: security.no_new_privileges.unwrap_or(!a.more.privileged),
            seccomp,
            init,
            terminal: a.process.tty,
        },
    );
    // What `husk stop` sends (a number): --stop-signal, else the image's StopSignal,
    // else SIGTERM.
    let stop_signal = stop_signal
        .or_else(|| {
            pv.stop_signal
                .as_deref()
                .and_then(|s| flags::signal(s).ok())
        })
        .unwrap_or(libc::SIGTERM);
    let write = |file: &str, v: &serde_json::Value| {
        std::fs::write(dir.join(file), serde_json::to_vec_pretty(v).unwrap())
            .map_err(|e| format!("writing {file}: {e}"))
    };
    write("config.json", &spec)?;
    let mut meta = serde_json::json!({
        "id": id,
        "name": name,
        "image": a.image,
        "image_id": rec.config_digest.hex(),
        "created": husk_oci::time::rfc3339_now(),
        "exit_code": null,
        "stop_signal": stop_signal,
        "restart": a.restart,
        "network": a.network,
    });
    write("container.json", &meta)?;
    drop(names_lock);

    single_threaded()?;
    if a.detach {
        crate::monitor::detach(&ctx.root, &id, made, a.rm)?;
        println!("{id}");
        return Ok(0);
    }
    if !a.process.interactive && !a.process.tty {
        stdin_from_dev_null()?;
    }
    let tty = a.process.tty.then(Tty::new).transpose()?;
    let mut builder = ContainerBuilder::new(id.clone()).root_path(state_root());
    if let Some(t) = &tty {
        builder = builder.console_socket(t.socket());
    }
    // Rootless on a v1 host means no cgroup (limits asked for are an error): not worth a
    // warning on every run.
    let mut c = builder
        .as_init(&dir)
        .build_with_warnings(&mut |_| {})
        .map_err(|e| e.to_string())?;
    if tty.is_none() {
        forward_signals(c.pid());
    }
    let started = match network {
        crate::network::Network::Slirp { host_loopback } => {
            crate::network::start_slirp(&dir, c.pid(), host_loopback)
                .map_err(husk_container::Error::Other)
        }
        _ => Ok(()),
    }
    .and_then(|()| c.start());
    if let Err(e) = started {
        let _ = c.kill(libc::SIGKILL, true);
        let _ = c.wait();
        let _ = c.delete(true);
        return Err(e.to_string());
    }
    let waited = match &tty {
        Some(t) => t.attach(c.pid()).map_err(husk_container::Error::Other),
        None => c.wait(),
    };
    INIT_PID.store(0, Ordering::SeqCst);
    let deleted = c.delete(true);
    crate::network::stop_slirp(&dir);
    let code = waited.map_err(|e| e.to_string())?;
    deleted.map_err(|e| format!("deleting the container: {e}"))?;
    if let Some(mut o) = made.overlay.take() {
        o.unmount()?;
    }
    if !a.rm {
        meta["exit_code"] = code.into();
        write("container.json", &meta)?;
        made.keep_dir = true;
    }
    Ok(code)
}
