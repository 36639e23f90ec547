//! Containers without a mount namespace (none listed in `linux.namespaces`): as with runc,
//! init mounts in the caller's mount namespace and chroots into the rootfs. To keep that
//! contained, the main process binds the rootfs onto itself first (everything init mounts
//! lands below that bind) and never changes the caller's propagation. A failed create
//! detaches the bind with all below it; so does `delete` (runc leaves them mounted), found
//! by the mount id noted in the state dir, so that a mount stacked on the same path since
//! (another container's) is never the one removed.

use crate::process::SetupError;
use crate::sys::{self, cstr, fd_path};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Bind `rootfs` onto itself (recursively) in our mount namespace; an O_PATH fd of the bind.
/// The bind is made detached (open_tree), noted in `state_dir` (see [`record`]), and only
/// then attached: a create killed at any instant leaves either nothing mounted or a bind
/// that `delete --force` finds.
pub fn bind_rootfs(rootfs: &Path, state_dir: &Path) -> io::Result<OwnedFd> {
    let dir = sys::open(rootfs, libc::O_PATH | libc::O_DIRECTORY)?;
    let tree = sys::open_tree_clone(Path::new(&fd_path(&dir)), true)?;
    record(state_dir, rootfs, &tree)?;
    sys::move_mount_onto(&tree, &dir)?;
    sys::open(rootfs, libc::O_PATH | libc::O_DIRECTORY)
}

/// The state-dir file holding the bind's mount id and the rootfs path, for `delete`.
pub const FILE: &str = "caller-root";

/// Note the bind `bound` of `rootfs` in the state dir (its mount id stays the same when a
/// detached tree is attached).
fn record(state_dir: &Path, rootfs: &Path, bound: &OwnedFd) -> io::Result<()> {
    let id = mount_id(bound.as_raw_fd(), c"", libc::AT_EMPTY_PATH)?;
    let text = format!("{id}\n{}", rootfs.display());
    crate::state::write_atomic(&state_dir.join(FILE), text.as_bytes())
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Detach the bind `bound` refers to, and everything below it (a failed create).
pub fn detach(rootfs: &Path, bound: &OwnedFd) -> io::Result<()> {
    detach_if_top(
        rootfs,
        mount_id(bound.as_raw_fd(), c"", libc::AT_EMPTY_PATH)?,
    )
}

/// Detach the bind noted in `state_dir`, if there is one (`delete`).
pub fn detach_recorded(state_dir: &Path) -> io::Result<()> {
    let text = match std::fs::read_to_string(state_dir.join(FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let (id, rootfs) = text
        .split_once('\n')
        .and_then(|(id, p)| Some((id.parse().ok()?, Path::new(p))))
        .ok_or_else(|| io::Error::other(format!("{FILE}: unreadable")))?;
    detach_if_top(rootfs, id)
}

/// Detach the mount `ours` if it is still the top mount at `rootfs`; nothing to do when it
/// is mounted nowhere (a create killed before it attached the bind).
fn detach_if_top(rootfs: &Path, ours: u64) -> io::Result<()> {
    let path = cstr(rootfs)?;
    let top = mount_id(libc::AT_FDCWD, &path, libc::AT_SYMLINK_NOFOLLOW)?;
    if ours != top && !is_mounted(ours)? {
        return Ok(());
    }
    if ours != top {
        return Err(io::Error::other(format!(
            "the container's mounts at {} are covered by another mount: left in place",
            rootfs.display()
        )));
    }
    sys::check(unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) }).map(drop)
}

/// Whether mount `id` is in our mount table (/proc/self/mountinfo's first field is the
/// id statx reports as STATX_MNT_ID).
fn is_mounted(id: u64) -> io::Result<bool> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table
        .lines()
        .any(|l| l.split(' ').next().and_then(|f| f.parse::<u64>().ok()) == Some(id)))
}

fn mount_id(dirfd: i32, path: &std::ffi::CStr, flags: libc::c_int) -> io::Result<u64> {
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    sys::check(unsafe { libc::statx(dirfd, path.as_ptr(), flags, libc::STATX_MNT_ID, &mut st) })?;
    Ok(st.stx_mnt_id)
}

/// chroot into the rootfs: pivot_root or MS_MOVE would change the caller's own root.
pub fn chroot_into(root: &OwnedFd) -> Result<(), SetupError> {
    let fail = |what: &'static str| move |e: io::Error| SetupError::new(what, e);
    sys::check(unsafe { libc::fchdir(root.as_raw_fd()) }).map_err(fail("entering the rootfs"))?;
    sys::check(unsafe { libc::chroot(c".".as_ptr()) }).map_err(fail("chroot into the rootfs"))?;
    sys::check(unsafe { libc::chdir(c"/".as_ptr()) }).map_err(fail("chdir to the new root"))?;
    Ok(())
}
