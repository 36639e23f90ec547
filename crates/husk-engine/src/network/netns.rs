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
