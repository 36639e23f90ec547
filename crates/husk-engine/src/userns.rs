//! Rootless husk: every command of an ordinary user runs as root of one user namespace per
//! user, where 0 is the user and 1.. are its subordinate ids from /etc/subuid and
//! /etc/subgid, together with a mount namespace of its own. Layers keep their owners there
//! (shifted on the host), overlay can be mounted, and no mount shows outside.
//!
//! The namespaces are held by a small "pause" process that the first command starts; later
//! commands join them with setns (as in rootless podman). One namespace for all commands is
//! what lets `stop`, `exec` and `rm` reach containers that `run` made: a process in a
//! sibling user namespace could neither signal nor join them. The pause process stays for
//! as long as the user's runtime dir does; its pid and start time are in
//! `<state root>/userns.pid`. Should it die while containers run, the next command takes
//! the user namespace back from one of them and starts a new holder in it.

use crate::os::{IoContext, IoError, SysError};
use husk_container::rootless::{self, IdKind};
pub use husk_oci::userns::IdRange;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Entering the user's rootless namespaces failed ("rootless: " and the step).
#[derive(Debug, thiserror::Error)]
#[error("rootless: {0}")]
pub struct UsernsError(#[from] pub UsernsStep);

/// The step of entering the rootless namespaces that failed.
#[derive(Debug, thiserror::Error)]
pub enum UsernsStep {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Sys(#[from] SysError),
    /// Subordinate ids, newuidmap/newgidmap (the runtime library's words).
    #[error(transparent)]
    Ids(#[from] husk_container::Error),
    #[error("joining {}: {source}", path.display())]
    Join {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a mount namespace for the user namespace: {0}")]
    MountNamespace(std::io::Error),
    #[error("becoming root of the user namespace: {0}")]
    BecomeRoot(std::io::Error),
    #[error("the working directory: {0}")]
    Cwd(std::io::Error),
    #[error("returning to {} in the namespace: {source}", path.display())]
    ReturnCwd {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the namespace holder could not create a user namespace")]
    NoUserNamespace,
    #[error("the namespace holder failed to set up its mounts")]
    HolderMounts,
}

/// For an ordinary user, move this process into the user's rootless namespaces (made on
/// first use) before anything else happens; it must still be single-threaded. Returns at
/// once for root (also root of the namespace: the monitor's helpers start there).
pub fn enter() -> Result<(), UsernsError> {
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    Ok(enter_at(&crate::record::state_root())?)
}

fn enter_at(state: &Path) -> Result<(), UsernsStep> {
    std::fs::create_dir_all(state).ctx("creating", state)?;
    let pid_file = state.join("userns.pid");
    let _lock = crate::os::lock_file(&state.join("userns.lock"))?;
    if let Some(pid) = crate::os::live_pid(&pid_file) {
        return keeping_cwd(|| {
            setns_to(pid, "user")?;
            setns_to(pid, "mnt")
        });
    }
    // The holder died (killed, or the machine's session manager ended it) while containers
    // still run in its user namespace: take that namespace back from one of them, or they
    // could never be stopped or joined again. Its mount namespace went with the holder: a
    // new one, slave to the host's.
    // (Entry by entry: the state root also holds our own userns.* files.)
    let survivor = std::fs::read_dir(state)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| husk_container::Container::load(state, e.file_name().to_str()?).ok())
        .find(|c| c.status() != husk_container::Status::Stopped);
    if let Some(c) = survivor {
        keeping_cwd(|| {
            setns_to(c.pid(), "user")?;
            if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 || !mounts_slave() {
                return Err(UsernsStep::MountNamespace(std::io::Error::last_os_error()));
            }
            Ok(())
        })?;
        let pid = match unsafe { libc::fork() } {
            -1 => return Err(SysError::last("fork").into()),
            0 => hold_forever(),
            pid => pid,
        };
        return Ok(crate::os::write_pid_file(&pid_file, pid)?);
    }
    let pid = start_holder()?;
    crate::os::write_pid_file(&pid_file, pid)?;
    keeping_cwd(|| {
        setns_to(pid, "user")?;
        setns_to(pid, "mnt")
    })
}

/// setns into namespace `ns` of `pid`.
fn setns_to(pid: i32, ns: &str) -> Result<(), UsernsStep> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/{ns}"));
    let fd = std::fs::File::open(&path).ctx("opening", &path)?;
    if unsafe { libc::setns(fd.as_raw_fd(), 0) } != 0 {
        return Err(UsernsStep::Join {
            path,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Run `f` (which changes mount namespace, so the working directory becomes its root), then
/// take the working directory back by path; finally become root of the user namespace.
fn keeping_cwd(f: impl FnOnce() -> Result<(), UsernsStep>) -> Result<(), UsernsStep> {
    let cwd = std::env::current_dir().map_err(UsernsStep::Cwd)?;
    f()?;
    std::env::set_current_dir(&cwd).map_err(|source| UsernsStep::ReturnCwd {
        path: cwd.clone(),
        source,
    })?;
    become_root()
}

/// Root of the namespace from here on: setns keeps the ids, which map to 0 there.
fn become_root() -> Result<(), UsernsStep> {
    if unsafe { libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 } {
        return Err(UsernsStep::BecomeRoot(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Mounts made in here (container overlays) stay in here; the host's later mounts still
/// come in.
fn mounts_slave() -> bool {
    unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) == 0
    }
}

/// Fork the pause process: it unshares the user and mount namespaces, we write its id maps
/// (newuidmap/newgidmap for the subordinate ranges), and it then sleeps forever, detached
/// from our session and stdio so no caller waits on it.
fn start_holder() -> Result<i32, UsernsStep> {
    let uids = rootless::subordinate_mapping(IdKind::Uid)?;
    let gids = rootless::subordinate_mapping(IdKind::Gid)?;
    let (ready_r, ready_w) = crate::os::pipe()?;
    let (go_r, go_w) = crate::os::pipe()?;
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SysError::last("fork").into());
    }
    if pid == 0 {
        drop((ready_r, go_w));
        pause_process(ready_w, go_r)
    }
    drop((ready_w, go_r));
    let mut b = [0u8; 1];
    let unshared = unsafe { libc::read(ready_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) } == 1;
    let mapped = if unshared {
        rootless::write_id_maps(pid, &uids, &gids).map_err(UsernsStep::from)
    } else {
        Err(UsernsStep::NoUserNamespace)
    };
    match mapped {
        Ok(()) => {
            let mut go = std::fs::File::from(go_w);
            let _ = go.write_all(b"g");
            // It reports once its mounts are private: only then may anyone join.
            if unsafe { libc::read(ready_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) } != 1 {
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                return Err(UsernsStep::HolderMounts);
            }
            Ok(pid)
        }
        Err(e) => {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            Err(e)
        }
    }
}

/// The forked pause process. Never returns; exits 125 when a step fails (the parent sees
/// the pipe close and says so).
fn pause_process(ready: OwnedFd, go: OwnedFd) -> ! {
    unsafe {
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
            libc::_exit(125);
        }
        libc::write(ready.as_raw_fd(), b"u".as_ptr().cast(), 1);
        let mut b = [0u8; 1];
        if libc::read(go.as_raw_fd(), b.as_mut_ptr().cast(), 1) != 1 {
            libc::_exit(125);
        }
        if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
            libc::_exit(125);
        }
        if !mounts_slave() {
            libc::_exit(125);
        }
        libc::write(ready.as_raw_fd(), b"m".as_ptr().cast(), 1);
    }
    hold_forever()
}

/// What the holder does once in its namespaces: leave the caller's session, terminal,
/// stdio and every other fd behind, and sleep until killed.
fn hold_forever() -> ! {
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        close_fds_from(3);
        libc::chdir(c"/".as_ptr());
        let _ = libc::prctl(libc::PR_SET_NAME, c"husk-userns".as_ptr());
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigdelset(&mut all, libc::SIGKILL);
        libc::sigdelset(&mut all, libc::SIGTERM);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        loop {
            libc::pause();
        }
    }
}

/// close_range(from, ~0): nothing of the caller's stays open in the pause process.
unsafe fn close_fds_from(from: u32) {
    libc::syscall(libc::SYS_close_range, from, u32::MAX, 0);
}

// ---------------------------------------------------------------------------------------
// Per-container user namespaces for root (`--userns=auto`): each container gets its own
// range of the `husk` user's subordinate ids, so that its root is an unprivileged id on
// the host. Ranges are recorded under the engine root, one file per container in
// ROOT/userns/ (written under ROOT/userns/lock, renamed into place), and released by `rm`;
// a file whose container directory is gone (a crash between the two) is reclaimed by the
// next allocation.

/// The user whose /etc/subuid and /etc/subgid lines hold the ranges (as podman's
/// `containers`).
pub const AUTO_USER: &str = "husk";
/// Ids per container unless `--userns=auto:size=N` says otherwise (podman's default).
pub const AUTO_SIZE: u32 = 65536;

/// One container's ids: container 0..size are host uid..uid+size and gid..gid+size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

/// Allocating a range for `--userns=auto` failed.
#[derive(Debug, thiserror::Error)]
pub enum AutoError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(
        "--userns=auto: no {file} line for user {AUTO_USER:?}; as root, add one such as \
         \"{AUTO_USER}:2147483648:2147483648\" to /etc/subuid and /etc/subgid"
    )]
    NoRanges { file: &'static str },
    #[error("--userns=auto: no free range of {size} ids left in {file} for {AUTO_USER:?} ({used} containers hold ranges)")]
    Exhausted {
        file: &'static str,
        size: u32,
        used: usize,
    },
}

fn auto_dir(root: &Path) -> PathBuf {
    root.join("userns")
}

impl IdMap {
    fn parse(text: &str) -> Option<IdMap> {
        let mut f = text.split_whitespace().map(|v| v.parse::<u32>());
        let (uid, gid, size) = (f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?);
        (size > 0).then_some(IdMap { uid, gid, size })
    }
}

impl From<IdMap> for IdMapping {
    fn from(m: IdMap) -> IdMapping {
        let one = |outside| {
            vec![IdRange {
                inside: 0,
                outside,
                count: m.size,
            }]
        };
        IdMapping {
            uids: one(m.uid),
            gids: one(m.gid),
        }
    }
}

/// A container's own user namespace: its uid and gid maps, each a list of ranges (container
/// ids `inside..` are `outside..` in the engine's namespace: the host's for root, the
/// user's rootless namespace otherwise). One range for `--userns=auto`, three for keep-id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdMapping {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

impl IdMapping {
    /// The OCI `linux.uidMappings`/`gidMappings` pair.
    pub fn oci(&self) -> (serde_json::Value, serde_json::Value) {
        let m = |ranges: &[IdRange]| {
            ranges
                .iter()
                .map(|r| {
                    serde_json::json!({"containerID": r.inside, "hostID": r.outside, "size": r.count})
                })
                .collect::<serde_json::Value>()
        };
        (m(&self.uids), m(&self.gids))
    }

    /// The engine's id for the container's uid `id` (None: outside the map, nobody).
    pub fn outside_uid(&self, id: u32) -> Option<u32> {
        outside(&self.uids, id)
    }

    pub fn outside_gid(&self, id: u32) -> Option<u32> {
        outside(&self.gids, id)
    }
}

fn outside(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| id >= r.inside && id - r.inside < r.count)
        .map(|r| r.outside + (id - r.inside))
}

/// uid_map/gid_map text of `ranges`.
fn map_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// The range recorded for container `id`, if it has one.
pub fn allocation(root: &Path, id: &str) -> Option<IdMap> {
    IdMap::parse(&std::fs::read_to_string(auto_dir(root).join(id)).ok()?)
}

/// Give container `id` (its directory already made under ROOT/containers) `size` ids of
/// its own from the husk user's subordinate ranges, disjoint from every other container's.
pub fn allocate(root: &Path, id: &str, size: u32) -> Result<IdMap, AutoError> {
    let dir = auto_dir(root);
    std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
    // The container's root (an unprivileged id on the host) must be able to pass through
    // the engine root to reach its rootfs: search permission only, nothing listable.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root)
            .ctx("reading", root)?
            .permissions()
            .mode();
        if mode & 0o011 != 0o011 {
            std::fs::set_permissions(
                root,
                std::fs::Permissions::from_mode((mode | 0o011) & 0o7777),
            )
            .ctx("allowing search on", root)?;
        }
    }
    let _lock = crate::os::lock_file(&dir.join("lock"))?;
    let containers = crate::record::containers_dir(root);
    let mut taken = Vec::new();
    for e in std::fs::read_dir(&dir).ctx("reading", &dir)? {
        let e = e.ctx("reading", &dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "lock" || name.starts_with('.') {
            continue;
        }
        if !containers.join(&name).is_dir() {
            // Its container is gone without `rm` (killed mid-run): the range is free again.
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        if let Some(m) = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|t| IdMap::parse(&t))
        {
            taken.push(m);
        }
    }
    let pick = |file: &'static str, used: Vec<(u32, u32)>| -> Result<u32, AutoError> {
        let ranges = rootless::sub_id_ranges(Path::new(file), AUTO_USER, auto_user_id())
            .ctx("reading", file)?;
        if ranges.is_empty() {
            return Err(AutoError::NoRanges { file });
        }
        first_free(&ranges, &used, size).ok_or(AutoError::Exhausted {
            file,
            size,
            used: used.len(),
        })
    };
    let uid = pick(
        "/etc/subuid",
        taken.iter().map(|m| (m.uid, m.size)).collect(),
    )?;
    let gid = pick(
        "/etc/subgid",
        taken.iter().map(|m| (m.gid, m.size)).collect(),
    )?;
    let map = IdMap { uid, gid, size };
    let tmp = dir.join(format!(".{id}.tmp"));
    std::fs::write(&tmp, format!("{uid} {gid} {size}\n")).ctx("writing", &tmp)?;
    std::fs::rename(&tmp, dir.join(id)).ctx("renaming", &tmp)?;
    Ok(map)
}

/// Release container `id`'s range (no range is fine).
pub fn release(root: &Path, id: &str) -> Result<(), IoError> {
    let p = auto_dir(root).join(id);
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).ctx("removing", p),
        _ => Ok(()),
    }
}

/// The husk user's uid when it exists (subuid lines may name it by number).
fn auto_user_id() -> u32 {
    let name = std::ffi::CString::new(AUTO_USER).expect("no NUL");
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        u32::MAX
    } else {
        unsafe { (*pw).pw_uid }
    }
}

/// The lowest start of `size` ids inside one of `ranges` that overlaps none of `used`
/// (start, size).
fn first_free(ranges: &[rootless::SubIdRange], used: &[(u32, u32)], size: u32) -> Option<u32> {
    let end = |s: u32, n: u32| s as u64 + n as u64;
    for r in ranges {
        let mut start = r.start as u64;
        loop {
            if start + size as u64 > end(r.start, r.count) {
                break;
            }
            match used
                .iter()
                .filter(|(s, n)| (*s as u64) < start + size as u64 && end(*s, *n) > start)
                .map(|(s, n)| end(*s, *n))
                .max()
            {
                Some(next) => start = next,
                None => return Some(start as u32),
            }
        }
    }
    None
}

/// A user namespace with `map` (uid and gid), for idmapped mounts: a forked child unshares
/// one and waits while we write its maps and open it; the child then exits.
pub fn namespace_fd(map: &IdMapping) -> Result<OwnedFd, UsernsStep> {
    let (ready_r, ready_w) = crate::os::pipe()?;
    let (go_r, go_w) = crate::os::pipe()?;
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SysError::last("fork").into());
    }
    if pid == 0 {
        // Our copy of the parent's ends would keep the pipe from ever reaching EOF.
        drop((ready_r, go_w));
        unsafe {
            let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
            if ok {
                libc::write(ready_w.as_raw_fd(), b"u".as_ptr().cast(), 1);
            }
            // Wait until the parent is done with us (it closes its end).
            let mut b = [0u8; 1];
            libc::read(go_r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
            libc::_exit(if ok { 0 } else { 125 });
        }
    }
    drop((ready_w, go_r));
    let result = (|| {
        let mut b = [0u8; 1];
        if unsafe { libc::read(ready_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) } != 1 {
            return Err(UsernsStep::NoUserNamespace);
        }
        for (file, ranges) in [("uid_map", &map.uids), ("gid_map", &map.gids)] {
            let p = PathBuf::from(format!("/proc/{pid}/{file}"));
            std::fs::write(&p, map_text(ranges)).ctx("writing", &p)?;
        }
        let p = PathBuf::from(format!("/proc/{pid}/ns/user"));
        Ok(OwnedFd::from(std::fs::File::open(&p).ctx("opening", &p)?))
    })();
    drop(go_w);
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    result
}

/// Container `id`'s id map with a user namespace holding it, when it has one
/// (`--userns=auto`): what mounting its rootfs again needs.
pub fn for_container(root: &Path, id: &str) -> Result<Option<(IdMapping, OwnedFd)>, UsernsError> {
    match allocation(root, id) {
        None => Ok(None),
        Some(m) => {
            let m = IdMapping::from(m);
            let fd = namespace_fd(&m)?;
            Ok(Some((m, fd)))
        }
    }
}

#[cfg(test)]
mod auto_tests {
    use super::*;
    use husk_container::rootless::SubIdRange;

    #[test]
    fn ranges_are_disjoint_and_reused() {
        let r = [
            SubIdRange {
                start: 100,
                count: 30,
            },
            SubIdRange {
                start: 1000,
                count: 100,
            },
        ];
        assert_eq!(first_free(&r, &[], 10), Some(100));
        assert_eq!(first_free(&r, &[(100, 10)], 10), Some(110));
        assert_eq!(first_free(&r, &[(100, 10), (110, 10)], 10), Some(120));
        // not enough left in the first range: the next one
        assert_eq!(first_free(&r, &[(100, 25)], 10), Some(1000));
        // a gap that a release left is taken again
        assert_eq!(first_free(&r, &[(100, 10), (120, 10)], 10), Some(110));
        assert_eq!(first_free(&r, &[(100, 30), (1000, 100)], 10), None);
        assert_eq!(first_free(&r, &[], 200), None);
        assert_eq!(
            IdMap::parse("5 6 7\n"),
            Some(IdMap {
                uid: 5,
                gid: 6,
                size: 7
            })
        );
        assert_eq!(IdMap::parse("5 6"), None);
    }
}
