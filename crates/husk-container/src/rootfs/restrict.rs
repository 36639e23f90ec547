//! maskedPaths, readonlyPaths and sysctl: what the container must not see or change.
//! Done before pivot_root, resolved inside the rootfs, with verified handles.

use super::mounts::{bind_fd, remount_bind};
use super::resolve::open_in_root;
use crate::process::SetupError;
use crate::sys::{self, cstr, fd_path};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

const PROC_SUPER_MAGIC: libc::c_long = 0x9fa0;

/// The host's /dev/null, opened and checked to be char 1:3 before it is used to mask files
/// (a container-controlled "/dev/null" could be a symlink to something writable).
pub fn verified_dev_null() -> Result<OwnedFd, SetupError> {
    let fail = |e: io::Error| SetupError::new("opening /dev/null for masking", e);
    let fd = sys::open(Path::new("/dev/null"), libc::O_PATH).map_err(fail)?;
    let st = sys::fstat(fd.as_raw_fd()).map_err(fail)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        return Err(SetupError::msg(
            "opening /dev/null for masking: it is not the 1:3 character device",
        ));
    }
    Ok(fd)
}

pub fn mask_path(root: &OwnedFd, dev_null: &OwnedFd, path: &str) -> Result<(), SetupError> {
    let what = || format!("masking {path}");
    let fail = |e: io::Error| SetupError::new(what(), e);
    let fd = match open_in_root(root, Path::new(path), libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    let st = sys::fstat(fd.as_raw_fd()).map_err(fail)?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => sys::mount(
            Some(c"tmpfs"),
            &cstr(fd_path(&fd)).map_err(fail)?,
            Some(c"tmpfs"),
            libc::MS_RDONLY,
            None,
        )
        .map_err(fail),
        libc::S_IFLNK => Err(SetupError::msg(format!("{}: it is a symlink", what()))),
        _ => bind_fd(dev_null, &fd, false).map_err(fail),
    }
}

pub fn readonly_path(root: &OwnedFd, path: &str) -> Result<(), SetupError> {
    let fail = |e: io::Error| SetupError::new(format!("making {path} read-only"), e);
    let fd = match open_in_root(root, Path::new(path), libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    bind_fd(&fd, &fd, true).map_err(fail)?;
    remount_bind(root, Path::new(path), libc::MS_RDONLY).map_err(fail)
}

/// Write one sysctl through the container's own /proc, verified to be procfs.
pub fn write_sysctl(root: &OwnedFd, key: &str, value: &str) -> Result<(), SetupError> {
    let what = || format!("setting sysctl {key}={value}");
    let fail = |e: io::Error| SetupError::new(what(), e);
    if key.contains('/') || key.split('.').any(|c| c.is_empty() || c == "..") {
        return Err(SetupError::msg(format!("{}: invalid key", what())));
    }
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let fd =
        open_in_root(root, Path::new(&path), libc::O_WRONLY | libc::O_NOFOLLOW).map_err(fail)?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    sys::check(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) }).map_err(fail)?;
    if st.f_type as libc::c_long != PROC_SUPER_MAGIC {
        return Err(SetupError::msg(format!(
            "{}: {path} is not on procfs",
            what()
        )));
    }
    std::fs::File::from(fd)
        .write_all(value.as_bytes())
        .map_err(fail)
}

/// Reject sysctls that would change the host: runc's rules on which keys a namespace owns.
pub fn check_sysctl_namespaced(
    key: &str,
    new_net: bool,
    new_ipc: bool,
    new_uts: bool,
) -> Result<(), String> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    // As runc: the hostname has its own field, and two sources for it would disagree.
    if key == "kernel.hostname" && new_uts {
        return Err(format!(
            "sysctl {key:?} is not allowed as it conflicts with the OCI \"hostname\" field"
        ));
    }
    let ok = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        new_ipc
    } else if key.starts_with("net.") {
        new_net
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        new_uts
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "sysctl {key:?} is not in a separate kernel namespace of this container"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_namespacing() {
        assert!(check_sysctl_namespaced("net.ipv4.ip_forward", true, false, false).is_ok());
        assert!(check_sysctl_namespaced("net.ipv4.ip_forward", false, true, true).is_err());
        assert!(check_sysctl_namespaced("kernel.shmmax", false, true, false).is_ok());
        assert!(check_sysctl_namespaced("fs.mqueue.msg_max", false, true, false).is_ok());
        assert!(check_sysctl_namespaced("vm.swappiness", true, true, true).is_err());
        assert!(check_sysctl_namespaced("kernel.domainname", false, false, true).is_ok());
        let e = check_sysctl_namespaced("kernel.hostname", false, false, true).unwrap_err();
        assert!(
            e.contains("conflicts with the OCI \"hostname\" field"),
            "{e}"
        );
        assert!(check_sysctl_namespaced("kernel.hostname", true, true, false).is_err());
    }

    #[test]
    fn host_dev_null_is_verified() {
        verified_dev_null().unwrap();
    }
}
