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
