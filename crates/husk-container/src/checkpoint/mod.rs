//! Checkpoint and restore through CRIU (runc's `checkpoint` and `restore`).
//!
//! `checkpoint` dumps init's process tree into an image directory with `criu dump` (or
//! `pre-dump` for an iterative migration) and, unless it is left running, removes the
//! container as runc does: its processes are gone, and so go its cgroup and state dir.
//! `restore` makes a new container from a bundle and an image directory: the state dir
//! and cgroup as `create` makes them, then `criu restore` run *inside* that cgroup, so the
//! restored tree lands in it; init is restored as our sibling-child (`--restore-sibling`)
//! and state.json gets its new pid.
//!
//! Beside CRIU's images the image directory holds husk's own notes, written at dump and
//! read at restore:
//! - `husk-stdio.json`: what init's fds 0-2 were, as CRIU's keys. A pipe or socket whose
//!   other end is outside the container, or a file on a mount outside it (the caller's
//!   /dev/null), cannot be re-created by CRIU; on restore the restoring process's own fd of
//!   the same number takes its place (`--inherit-fd`), which is how a new monitor (or
//!   shim) gets the output. Files are named to CRIU at dump as `file[MNT_ID:INODE]`.
//! - `husk-externals.json`: the mount points dumped as external (see mounts.rs), which
//!   the restore maps back to host paths from its config.json.
//! - `husk-netns.json`: whether the network namespace was a joined one (external), which
//!   the restore then gives CRIU as the namespace its config.json names.

mod criu;
mod mounts;

use crate::container::Container;
use crate::error::{Error, IoContext, Result};
use crate::spec::Bundle;
use crate::state::{write_atomic, ContainerState, StateDir};
use crate::sys;
use husk_oci::Status;
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub use criu::locate as locate_criu;

const STDIO: &str = "husk-stdio.json";
const EXTERNALS: &str = "husk-externals.json";
const NETNS: &str = "husk-netns.json";
/// The key of an external network namespace in CRIU's images.
const NET_KEY: &str = "extRootNetNS";

/// What `criu --manage-cgroups` does with the container's cgroups (runc's
/// `--manage-cgroups-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CgroupMode {
    /// Restore the cgroup tree's properties where CRIU made the cgroup (runc's default).
    #[default]
    Soft,
    Full,
    Strict,
    /// Leave cgroups alone: the restored tasks stay where criu runs, in the new container's.
    Ignore,
}

impl std::str::FromStr for CgroupMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<CgroupMode> {
        Ok(match s {
            "soft" => CgroupMode::Soft,
            "full" => CgroupMode::Full,
            "strict" => CgroupMode::Strict,
            "ignore" => CgroupMode::Ignore,
            _ => {
                return Err(Error::InvalidConfig(format!(
                    "invalid --manage-cgroups-mode {s:?}: soft, full, strict or ignore"
                )))
            }
        })
    }
}

impl CgroupMode {
    fn as_str(self) -> &'static str {
        match self {
            CgroupMode::Soft => "soft",
            CgroupMode::Full => "full",
            CgroupMode::Strict => "strict",
            CgroupMode::Ignore => "ignore",
        }
    }
}

/// The options CRIU takes alike at dump and at restore.
#[derive(Clone, Debug, Default)]
pub struct CriuOptions {
    /// The criu binary (`None`: PATH, then /usr/sbin/criu).
    pub criu: Option<PathBuf>,
    pub image_path: PathBuf,
    /// Where logs and temporary files go (default: the image path).
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups: CgroupMode,
    /// Pages served on demand by `criu lazy-pages`: refused (see [`check_lazy_pages`]).
    pub lazy_pages: bool,
}

/// `checkpoint`'s own options.
#[derive(Clone, Debug, Default)]
pub struct CheckpointOptions {
    pub criu: CriuOptions,
    /// Keep the container running after the dump.
    pub leave_running: bool,
    /// Only dump memory (the container keeps running), for a later dump with a parent.
    pub pre_dump: bool,
    /// A previous pre-dump's images, relative to the image path (CRIU's rule).
    pub parent_path: Option<PathBuf>,
}

/// `restore`'s own options.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub criu: CriuOptions,
    pub pid_file: Option<PathBuf>,
    /// Refused for a container with a terminal: CRIU's command line cannot hand the pty
    /// master back (only its RPC's orphan-pts-master callback can).
    pub console_socket: Option<PathBuf>,
    pub rootless: bool,
    /// The container was created with `--systemd-cgroup` (its cgroupsPath is systemd's
    /// `slice:prefix:name`): its cgroup is a transient scope again.
    pub systemd_cgroup: bool,
}

fn work_dir(o: &CriuOptions) -> PathBuf {
    o.work_path.clone().unwrap_or_else(|| o.image_path.clone())
}

fn mkdir(p: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .ctx("creating", p)
}

/// The flags shared by dump and restore.
fn common_flags(inv: &mut criu::Invocation, o: &CriuOptions) {
    inv.flag(o.tcp_established, "--tcp-established")
        .flag(o.ext_unix_sk, "--ext-unix-sk")
        .flag(o.shell_job, "--shell-job")
        .flag(o.file_locks, "--file-locks")
        .arg(format!("--manage-cgroups={}", o.manage_cgroups.as_str()));
}

/// Lazy pages need a page server kept alive by the dumping side until the restore has
/// fetched every page, and a `criu lazy-pages` daemon beside the restore; husk does not
/// run those, so the flag is refused with what the kernel would allow.
fn check_lazy_pages(o: &CriuOptions, criu: &Path) -> Result<()> {
    if !o.lazy_pages {
        return Ok(());
    }
    let uffd = std::process::Command::new(criu)
        .args(["check", "--feature", "uffd-noncoop"])
        .output()
        .is_ok_and(|out| out.status.success());
    let kernel = if uffd {
        "the kernel would allow it"
    } else {
        "nor does this kernel allow it: `criu check --feature uffd-noncoop` fails"
    };
    Err(Error::InvalidConfig(format!(
        "--lazy-pages is not supported: husk does not run CRIU's page server and lazy-pages daemon ({kernel})"
    )))
}

impl Container {
    /// Dump the running container with CRIU into `opts.criu.image_path`. Without
    /// `leave_running` or `pre_dump`, the container is removed afterwards (its processes
    /// are gone), as runc does. On failure CRIU lets the container run on, and the error
    /// names CRIU's log.
    pub fn checkpoint(self, opts: &CheckpointOptions) -> Result<()> {
        let lock = self.dir.lock()?;
        let status = self.status();
        match status {
            Status::Running => {}
            Status::Paused => {
                return Err(self.wrong_state(status, "container is paused: resume it first"))
            }
            _ => return Err(self.wrong_state(status, "container not running")),
        }
        let criu = criu::locate(opts.criu.criu.as_deref())?;
        check_lazy_pages(&opts.criu, &criu)?;
        let bundle = Bundle::load(&self.state.bundle)?;
        let images = &opts.criu.image_path;
        let work = work_dir(&opts.criu);
        mkdir(images)?;
        mkdir(&work)?;
        let pid = self.state.pid;
        let action = if opts.pre_dump { "pre-dump" } else { "dump" };
        let mut inv = criu::Invocation::new(criu, action, images, &work);
        inv.arg("--tree")
            .arg(pid.to_string())
            .arg("--root")
            .arg_path(&self.state.rootfs);
        common_flags(&mut inv, &opts.criu);
        inv.flag(opts.leave_running && !opts.pre_dump, "--leave-running");
        if opts.pre_dump || opts.parent_path.is_some() {
            inv.arg("--track-mem");
        }
        if let Some(parent) = &opts.parent_path {
            inv.arg("--prev-images-dir").arg_path(parent);
        }
        if !opts.pre_dump {
            let mountinfo = format!("/proc/{pid}/mountinfo");
            let text = std::fs::read_to_string(&mountinfo).ctx("reading", &mountinfo)?;
            let externals = mounts::externals(&text, &bundle.spec);
            for m in &externals {
                inv.arg("--external").arg(format!("mnt[{m}]:{m}"));
            }
            write_json(&images.join(EXTERNALS), &externals)?;
            let joined_net = joined_netns(&bundle.spec).is_some();
            if joined_net {
                let ns = format!("/proc/{pid}/ns/net");
                let meta = std::fs::metadata(&ns).ctx("reading", &ns)?;
                inv.arg("--external").arg(format!(
                    "net[{}]:{NET_KEY}",
                    std::os::unix::fs::MetadataExt::ino(&meta)
                ));
            }
            write_json(&images.join(NETNS), &joined_net)?;
            let stdio = stdio_keys(pid, &text);
            let mut named = Vec::new();
            for key in stdio.iter().flatten() {
                if key.starts_with("file[") && !named.contains(key) {
                    inv.arg("--external").arg(key);
                    named.push(key.clone());
                }
            }
            write_json(&images.join(STDIO), &stdio)?;
        }
        inv.run()?;
        if opts.leave_running || opts.pre_dump {
            return Ok(());
        }
        // CRIU killed the tree after dumping it: the container is gone but for its cgroup
        // and state dir, which go as after any stop.
        drop(lock);
        self.delete(true)
    }
}

/// The network namespace the spec joins by path, if it does.
fn joined_netns(spec: &oci_spec::runtime::Spec) -> Option<PathBuf> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::Network)?
        .path()
        .clone()
}

/// CRIU's key for each of init's fds 0-2 that the restoring process must supply: a pipe
/// or socket ("pipe:[1234]"), or a file on a mount outside the container
/// ("file[MNT_ID:INODE]", hex, CRIU's format); `None` for what CRIU re-creates itself.
fn stdio_keys(pid: i32, mountinfo: &str) -> Vec<Option<String>> {
    let inside: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').next())
        .collect();
    (0..3)
        .map(|fd| {
            let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
            let link = link.to_string_lossy().into_owned();
            if link.starts_with("pipe:") || link.starts_with("socket:") {
                return Some(link);
            }
            let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
            let mnt = info
                .lines()
                .find_map(|l| l.strip_prefix("mnt_id:"))
                .map(str::trim)?;
            if inside.contains(&mnt) {
                return None;
            }
            let ino = std::os::unix::fs::MetadataExt::ino(
                &std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).ok()?,
            );
            let mnt: u64 = mnt.parse().ok()?;
            Some(format!("file[{mnt:x}:{ino:x}]"))
        })
        .collect()
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    let data = serde_json::to_vec(v).map_err(|e| Error::Other(e.to_string()))?;
    write_atomic(path, &data)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let data = std::fs::read(path).ctx("reading", path)?;
    serde_json::from_slice(&data).map_err(|e| Error::Spec {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// What a failed restore must take back.
struct Undo<'a> {
    dir: Option<&'a StateDir>,
    cgroup: Option<&'a dyn husk_cgroups::CgroupManager>,
    mounts: &'a husk_cgroups::layout::Mounts,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        // Whatever criu restored before failing is in the cgroup: killed with it.
        if let Some(cg) = self.cgroup.take() {
            let _ = crate::container::kill_and_remove_cgroup(
                cg,
                self.mounts,
                std::time::Duration::from_secs(5),
            );
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}

/// This process inside a cgroup that starts with a process (a systemd scope), until
/// dropped: then back in the v2 cgroup it came from.
struct ScopeVisit {
    back: std::fs::File,
}

impl ScopeVisit {
    fn enter(
        cg: &dyn husk_cgroups::CgroupManager,
        mounts: &husk_cgroups::layout::Mounts,
    ) -> Result<ScopeVisit> {
        let unified = mounts
            .unified
            .as_ref()
            .ok_or_else(|| Error::Cgroup("a systemd scope needs cgroup v2".into()))?;
        let procs = unified.dir(&unified.own).join("cgroup.procs");
        // Opened before we leave: our own cgroup may not be ours to open from inside another.
        let back = sys::open(&procs, libc::O_WRONLY | libc::O_CLOEXEC).ctx("opening", &procs)?;
        cg.add_process(std::process::id() as i32)
            .map_err(|e| Error::Cgroup(e.to_string()))?;
        Ok(ScopeVisit { back: back.into() })
    }
}

impl Drop for ScopeVisit {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = (&self.back).write_all(b"0");
    }
}

/// Make container `id` under `root` from `bundle` and the checkpoint in
/// `opts.criu.image_path`. Init is restored as a child of the calling process. On failure
/// nothing of the new container is left (state dir, cgroup, restored processes).
pub fn restore(root: &Path, id: &str, bundle: &Path, opts: &RestoreOptions) -> Result<Container> {
    husk_oci::validate_id(id).map_err(Error::InvalidId)?;
    let criu = criu::locate(opts.criu.criu.as_deref())?;
    check_lazy_pages(&opts.criu, &criu)?;
    let bundle = Bundle::load(bundle)?;
    let images = &opts.criu.image_path;
    if !images.join("inventory.img").is_file() {
        return Err(Error::InvalidConfig(format!(
            "{} holds no checkpoint (no inventory.img)",
            images.display()
        )));
    }
    let process = bundle.spec.process().as_ref();
    if process.and_then(|p| p.terminal()).unwrap_or(false) {
        return Err(Error::InvalidConfig(
            "restoring a container with process.terminal is not supported: CRIU's command \
             line cannot hand back the pty master"
                .into(),
        ));
    }
    let plan = crate::process::namespaces::NamespacePlan::from_spec(&bundle.spec)?;
    if !plan.contains(LinuxNamespaceType::Mount) {
        return Err(Error::InvalidConfig(
            "restoring a container without a mount namespace is not supported".into(),
        ));
    }
    let externals: Vec<String> = read_json(&images.join(EXTERNALS))?;
    let joined_net: bool = read_json(&images.join(NETNS)).unwrap_or(false);
    let stdio: Vec<Option<String>> = read_json(&images.join(STDIO)).unwrap_or_default();
    let work = work_dir(&opts.criu);
    mkdir(&work)?;

    let cgroups_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .and_then(|p| p.to_str());
    let cg_path = match opts.systemd_cgroup {
        // As create: rootless, the user's own manager makes the scope.
        true => husk_cgroups::systemd::resolve_path(
            cgroups_path,
            id,
            match opts.rootless {
                true => husk_cgroups::systemd::Bus::User,
                false => husk_cgroups::systemd::Bus::System,
            },
        ),
        false => husk_cgroups::resolve_path(cgroups_path, id),
    }
    .map_err(|e| Error::Cgroup(e.to_string()))?;
    let mut inv = criu::Invocation::new(criu, "restore", images, &work);
    let pidfile = work.join(format!("restore-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&pidfile);
    inv.arg("--root")
        .arg_path(&bundle.rootfs)
        .arg("--restore-detached")
        .arg("--restore-sibling")
        .arg("--pidfile")
        .arg_path(&pidfile);
    common_flags(&mut inv, &opts.criu);
    for key in &externals {
        let src = mounts::source_for(key, &bundle.spec, &bundle.path, &cg_path.path)?;
        let mut spec = std::ffi::OsString::from(format!("mnt[{key}]:"));
        spec.push(src.as_os_str());
        inv.arg("--external").arg(spec);
    }
    // fds handed to criu; kept open until it has run.
    let mut held: Vec<OwnedFd> = Vec::new();
    if joined_net {
        let path = joined_netns(&bundle.spec).ok_or_else(|| {
            Error::InvalidConfig(
                "the checkpoint joined a network namespace; config.json names none to join".into(),
            )
        })?;
        let fd = sys::open(&path, libc::O_RDONLY).ctx("opening", &path)?;
        inv.arg("--inherit-fd")
            .arg(format!("fd[{}]:{NET_KEY}", fd.as_raw_fd()));
        inv.keep_fds.push(fd.as_raw_fd());
        held.push(fd);
    }
    // Pipes, sockets and files outside the container on init's stdio: ours of the same
    // number replace them (one fd per key: fds 1 and 2 are often the same pipe).
    let mut given: Vec<&str> = Vec::new();
    for (fd, key) in stdio.iter().enumerate() {
        if let Some(key) = key.as_deref().filter(|k| !given.contains(k)) {
            inv.arg("--inherit-fd").arg(format!("fd[{fd}]:{key}"));
            given.push(key);
        }
    }

    let resources = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref());
    let mounts = husk_cgroups::layout::Mounts::probe().map_err(|e| Error::Cgroup(e.to_string()))?;
    let cg =
        husk_cgroups::manager_in(&mounts, &cg_path).map_err(|e| Error::Cgroup(e.to_string()))?;
    let dir = StateDir::create(root, id)?;
    let _lock = dir.lock()?;
    let mut undo = Undo {
        dir: Some(&dir),
        cgroup: None,
        mounts: &mounts,
    };
    dir.record_cgroup(&cg_path)?;
    undo.cgroup = Some(cg.as_ref());
    cg.create().map_err(|e| Error::Cgroup(e.to_string()))?;
    let mut rules = crate::rootfs::devices::cgroup_rules(resources);
    if opts.rootless {
        rules.set_devices(None);
    }
    cg.set(&rules).map_err(|e| Error::Cgroup(e.to_string()))?;
    // criu joins the cgroup before it forks anything: the restored tree is born in it.
    let mut join = cg
        .self_join_fds()
        .map_err(|e| Error::Cgroup(e.to_string()))?;
    if let Some(d) = cg.v2_dir_fd() {
        let procs = sys::openat(
            d.as_raw_fd(),
            Path::new("cgroup.procs"),
            libc::O_WRONLY | libc::O_CLOEXEC,
            0,
        )
        .ctx("opening cgroup.procs of", cg.path().to_string())?;
        join.push(procs);
    }
    inv.join_fds = join.iter().map(AsRawFd::as_raw_fd).collect();
    inv.arg("--cgroup-root").arg(&cg_path.path);
    // A systemd scope only comes to exist with a process in it: ours, while criu (our
    // child, born in it) restores the tree there; we leave it again right after. Dropped
    // before `undo`, so that a failure's kill of the cgroup never finds us in it.
    let visit = match cg.starts_with_process() {
        true => Some(ScopeVisit::enter(cg.as_ref(), &mounts)?),
        false => None,
    };
    let ran = inv.run();
    drop(visit);
    ran?;
    drop(held);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .ctx("reading", &pidfile)?
        .trim()
        .parse()
        .map_err(|_| Error::Other(format!("criu wrote no pid to {}", pidfile.display())))?;
    let _ = std::fs::remove_file(&pidfile);
    let (start_time, _) = sys::proc_start_time(pid)
        .ok_or_else(|| Error::Setup("the restored init exited at once".into()))?;
    let state = ContainerState::started_now(&bundle, id, pid, start_time, Some(cg_path.clone()));
    crate::hooks::save(&dir, &bundle.spec)?;
    dir.write(&state)?;
    if let Some(p) = &opts.pid_file {
        write_atomic(p, pid.to_string().as_bytes())?;
    }
    undo.cgroup = None;
    undo.dir = None;
    drop(undo);
    let pidfd = sys::pidfd_open(pid).ok();
    drop(_lock);
    Ok(Container::from_parts(dir, state, pidfd, mounts))
}
