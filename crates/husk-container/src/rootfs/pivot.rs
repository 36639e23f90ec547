//! Switching the process's root to the prepared rootfs.

use crate::process::SetupError;
use crate::sys;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// pivot_root(".", ".") inside the rootfs, then detach the old root stacked on top of it.
/// The unmount cannot propagate to the host: the whole tree, the old root included, was
/// made rslave (or private) before anything was mounted (RootfsSetup::run). It is not made
/// rslave again here: a mount(MS_SLAVE|MS_REC) on "." would reach the *new* root's tree
/// (the cwd's mount, not the old root stacked on it) and turn a bind that asked for shared
/// propagation (`rshared`) into a mere slave.
pub fn pivot_root(root: &OwnedFd) -> Result<(), SetupError> {
    let fail = |what: &'static str| move |e: io::Error| SetupError::new(what, e);
    sys::check(unsafe { libc::fchdir(root.as_raw_fd()) }).map_err(fail("entering the rootfs"))?;
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
    if r < 0 {
        return Err(SetupError::new(
            "pivot_root into the rootfs",
            io::Error::last_os_error(),
        ));
    }
    sys::check(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) })
        .map_err(fail("unmounting the old root"))?;
    sys::check(unsafe { libc::chdir(c"/".as_ptr()) }).map_err(fail("chdir to the new root"))?;
    Ok(())
}

/// `--no-pivot`: move the rootfs over / and chroot (for ramfs roots where pivot_root fails).
pub fn move_root(root: &OwnedFd) -> Result<(), SetupError> {
    let fail = |what: &'static str| move |e: io::Error| SetupError::new(what, e);
    sys::check(unsafe { libc::fchdir(root.as_raw_fd()) }).map_err(fail("entering the rootfs"))?;
    sys::mount(Some(c"."), c"/", None, libc::MS_MOVE, None)
        .map_err(fail("moving the rootfs to /"))?;
    sys::check(unsafe { libc::chroot(c".".as_ptr()) }).map_err(fail("chroot into the rootfs"))?;
    sys::check(unsafe { libc::chdir(c"/".as_ptr()) }).map_err(fail("chdir to the new root"))?;
    Ok(())
}
