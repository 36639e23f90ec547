//! Thin, checked wrappers over the syscalls the runtime needs and `std` lacks.
//! Everything returns `io::Result` so callers attach the operation and path.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn cstr(p: impl AsRef<std::ffi::OsStr>) -> io::Result<CString> {
    CString::new(p.as_ref().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

pub fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Retry a syscall-ish closure on EINTR.
pub fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// `openat2(dirfd, path, how)`; always adds O_CLOEXEC.
pub fn openat2(
    dirfd: RawFd,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & libc::O_CREAT != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = resolve;
    retry(|| {
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        }
    })
}

/// `openat(dirfd, path, flags|O_CLOEXEC)`.
pub fn openat(dirfd: RawFd, path: &Path, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    retry(|| {
        let fd = unsafe { libc::openat(dirfd, c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
        check(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
    })
}

pub fn open(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    openat(libc::AT_FDCWD, path, flags, 0o600)
}

/// The magic-link path through which a syscall taking a path reaches exactly `fd`.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

pub fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |c: Option<&CStr>| c.map_or(std::ptr::null(), |c| c.as_ptr());
    check(unsafe { libc::mount(p(src), target.as_ptr(), p(fstype), flags, p(data).cast()) })
        .map(drop)
}

/// open_tree(OPEN_TREE_CLONE): a detached copy of the mount at `path` (with the mounts
/// below it when `recursive`), close-on-exec. Needs CAP_SYS_ADMIN over our mount namespace.
pub fn open_tree_clone(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let p = cstr(path)?;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | if recursive { AT_RECURSIVE } else { 0 };
    let r = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, p.as_ptr(), flags) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// move_mount: attach the detached tree `tree` on what `target` refers to.
pub fn move_mount_onto(tree: &impl AsRawFd, target: &impl AsRawFd) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

pub fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(data)
}

/// Close-on-exec every fd from `from` upwards (close_range with CLOSE_RANGE_CLOEXEC).
pub fn cloexec_from(from: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    let r = unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk /proc/self/fd.
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let fd: i32 = match entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            Some(fd) => fd,
            None => continue,
        };
        if fd >= from as i32 {
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// In a freshly cloned child of the runtime: close every fd the runtime opened except
/// `keep`, and leave stdio and the caller's fds 3..3+`preserve` alone (e.g. the parent's
/// state-dir fd and flock must not live on in the container: `start` would wait for that
/// lock forever, and a copy of a channel end hides the EOF the parent waits for).
///
/// The runtime's own fds can sit inside 3..3+`preserve` too (a caller asks to preserve 100
/// fds but has two open, and the runtime's opens fill the gaps). They are told apart by
/// FD_CLOEXEC: every fd the runtime opens carries it, and no fd that reached the runtime
/// across the caller's execve can. Such an fd would not survive the container's execve
/// either, so closing it now changes nothing the container sees.
pub fn close_runtime_fds(preserve: u32, keep: &[RawFd]) {
    let from = 3i32.saturating_add(preserve.min(i32::MAX as u32) as i32);
    let mut above: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd >= from).collect();
    above.sort_unstable();
    let mut lo = from;
    for k in above.into_iter().chain(std::iter::once(RawFd::MAX)) {
        if k > lo {
            let hi = if k == RawFd::MAX {
                u32::MAX
            } else {
                (k - 1) as u32
            };
            unsafe { libc::syscall(libc::SYS_close_range, lo as u32, hi, 0) };
        }
        lo = k.saturating_add(1);
    }
    // No fd at or above the soft RLIMIT_NOFILE can have been opened since it was set.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    let limit = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } {
        0 => lim.rlim_cur.min(i32::MAX as u64) as RawFd,
        _ => from,
    };
    for fd in 3..from.min(limit) {
        if keep.contains(&fd) {
            continue;
        }
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 && flags & libc::FD_CLOEXEC != 0 {
            unsafe { libc::close(fd) };
        }
    }
}

/// Default dispositions and an empty mask, as a freshly exec'd process expects. Ignored
/// signals survive execve, and Rust binaries ignore SIGPIPE: never pass that on.
pub fn reset_signals() {
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Clock ticks since boot at which `pid` started (field 22 of /proc/PID/stat), and whether
/// it is a zombie. `None` when the process does not exist.
pub fn proc_start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parens: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, *state == "Z" || *state == "X"))
}

/// The waitpid(2) status a zombie `pid` started at `start` left, from /proc/PID/stat
/// (field 52, Linux 3.5+): readable while nobody has reaped it.
pub fn zombie_status(pid: i32, start: u64) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (the state).
    let zombie = fields.first().is_some_and(|s| *s == "Z");
    let started = fields.get(19)?.parse::<u64>().ok()?;
    (zombie && started == start)
        .then(|| fields.get(49)?.parse().ok())
        .flatten()
}

/// `pidfd_open(pid)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    }
}

pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> io::Result<()> {
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Exit status of a `waitpid` result in shell convention: code, or 128+signal.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

pub fn waitpid(pid: i32, flags: libc::c_int) -> io::Result<(i32, libc::c_int)> {
    let mut status = 0;
    retry(|| {
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok((r, status))
        }
    })
}

/// Whether the real user may write to `path` (access(2) W_OK).
pub fn access_writable(path: &Path) -> bool {
    cstr(path).is_ok_and(|p| unsafe { libc::access(p.as_ptr(), libc::W_OK) } == 0)
}

/// The login name of `uid` from /etc/passwd (the static binary has no NSS), else the number.
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid.to_string()).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}
