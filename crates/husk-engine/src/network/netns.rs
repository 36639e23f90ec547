//! A network namespace that outlives its processes: a new namespace bind-mounted on a file
//! (what `ip netns add` does), made before the container so that netavark can configure
//! it first and the container's spec can join it by path (`linux.namespaces[].path`).
//! Removed (unmounted, unlinked) when the container's network is torn down.

use super::NetworkError;
use crate::os::IoContext;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Make a new network namespace and bind it on `path` (a new, empty file).
pub fn create(path: &Path) -> Result<(), NetworkError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx("creating", dir)?;
    }
    bind_new(path).map_err(NetworkError::Netns)
}

/// The namespace file itself (its directory exists): netavark's and pasta's both. On
/// failure nothing is left, not even the file.
pub(crate) fn bind_new(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
    let target = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // A child makes the namespace, so that ours stays as it is; it only unshares and
    // mounts (async-signal-safe system calls) between fork and _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    if pid == 0 {
        unsafe {
            let ok = libc::unshare(libc::CLONE_NEWNET) == 0
                && libc::mount(
                    c"/proc/self/ns/net".as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) == 0;
            libc::_exit(if ok { 0 } else { *libc::__errno_location() });
        }
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    if code != Some(0) {
        let _ = std::fs::remove_file(path);
        return Err(std::io::Error::from_raw_os_error(
            code.filter(|c| *c != 0).unwrap_or(libc::ECHILD),
        ));
    }
    Ok(())
}

/// Unmount and remove the namespace file (gone already: nothing to do).
pub fn remove(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    let _ = std::fs::remove_file(path);
}

/// Whether `path` is a network namespace bound on a file (not the empty file left where a
/// mount namespace that had the bind mount is gone).
pub fn is_bound(path: &Path) -> bool {
    const NSFS_MAGIC: libc::c_long = 0x6e73_6673;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as libc::c_long == NSFS_MAGIC }
}

/// A process of ours holding a new network namespace (with `lo` up), for as long as it
/// lives, at /proc/PID/ns/net: a namespace that needs no file, hence no mount, so it is
/// the same whatever mount namespace looks at it (a build mounts in a namespace of its
/// own, its guardian in the caller's). Its pid and start time go to `pid_file`; it is in
/// a session of its own (a terminal's Ctrl-C is not for it), with stdio on /dev/null and
/// no other fd of ours, and it waits for SIGKILL. Returns its pid.
pub fn hold_new(pid_file: &Path) -> std::io::Result<i32> {
    let (r, w) = crate::os::pipe().map_err(|e| std::io::Error::other(e.to_string()))?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    use std::os::fd::AsRawFd;
    let (wfd, nfd) = (w.as_raw_fd(), null.as_raw_fd());
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // Only system calls until the end (async-signal-safe, as after any fork).
        unsafe {
            libc::setsid();
            let err = if libc::unshare(libc::CLONE_NEWNET) != 0 {
                *libc::__errno_location()
            } else {
                match husk_container::loopback_up() {
                    Ok(()) => 0,
                    Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
                }
            };
            let b = err.to_ne_bytes();
            libc::write(wfd, b.as_ptr().cast(), b.len());
            for fd in 0..3 {
                libc::dup2(nfd, fd);
            }
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            if err != 0 {
                libc::_exit(1);
            }
            loop {
                libc::pause();
            }
        }
    }
    drop(w);
    drop(null);
    let mut b = [0u8; 4];
    let mut f = std::fs::File::from(r);
    let got = std::io::Read::read_exact(&mut f, &mut b);
    let err = i32::from_ne_bytes(b);
    if got.is_err() || err != 0 {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(match got {
            Err(e) => e,
            Ok(()) => std::io::Error::from_raw_os_error(err),
        });
    }
    if let Err(e) = crate::os::write_pid_file(pid_file, pid) {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(std::io::Error::other(e.to_string()));
    }
    Ok(pid)
}

/// End the holder `pid_file` names, if it still runs (reaped when it is our child).
pub fn release(pid_file: &Path) {
    if let Some(pid) = crate::os::live_pid(pid_file) {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    let _ = std::fs::remove_file(pid_file);
}
