//! CVE-2019-5736: the runtime's own binary must not be writable from a container.
//!
//! husk's init and tenant processes are clones of the runtime, so until they execve the
//! user's program their `/proc/PID/exe` is the host's husk-runtime; and an image whose
//! program is `#!/proc/self/exe` makes the kernel run husk-runtime itself inside the
//! container. A container process can open that exe (O_PATH or O_RDONLY), wait until no
//! husk-runtime runs any more (so ETXTBSY is gone) and reopen it for writing through
//! /proc/self/fd — overwriting the host binary (reproduced in tests/escapes.rs).
//!
//! Refusing shebangs does not help (the kernel resolves `/proc/self/exe` for the
//! interpreter before the exec commits, and it could equally be an ELF PT_INTERP). What
//! closes every variant is that no process the container can reach has a *writable* file
//! as its exe. So, before a command that starts container processes, the runtime re-execs
//! itself once from a read-only view of its own binary: a detached bind mount
//! (open_tree(OPEN_TREE_CLONE)) made read-only with mount_setattr, exec'd by fd. Every
//! later clone inherits that exe; a write through any /proc/PID/exe is EROFS. The detached
//! mount is in no mount namespace, so the container cannot find it, let alone remount it
//! (short of CAP_SYS_ADMIN in the host's user namespace, i.e. a privileged container).
//! Where open_tree is refused (rootless, old kernels) the binary is copied into a sealed
//! memfd instead (F_SEAL_WRITE: no writer, ever).
//!
//! Cost: one execve of the runtime and two syscalls, measured in docs/security.md — and
//! one RCU grace period: closing the last fd of a detached mount dissolves it, and the
//! kernel waits for a grace period before it lets go (0.1 ms on an idle machine, 3–9 ms on
//! a busy one, measured here). Closed at execve (close-on-exec), that wait lands on every
//! command's critical path. So the fd survives the execve instead: the re-executed runtime
//! finds it through `VIEW_FD_ENV` ([`reexec_protected`] returns it) and closes it where it
//! waits anyway (`run`: while the container runs). Every process it clones closes its copy
//! first (it is close-on-exec again, and init/tenants close every such fd), so the runtime
//! holds the last one.

use crate::sys;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The fd of the read-only view, handed to the re-executed runtime (see the module doc).
const VIEW_FD_ENV: &str = "_HUSK_RUNTIME_EXE_VIEW";

const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// Whether the running binary can no longer be written: it lives on a read-only mount, or
/// is a memfd sealed against writes.
pub fn exe_is_protected() -> io::Result<bool> {
    let fd = sys::open(Path::new("/proc/self/exe"), libc::O_RDONLY)?;
    Ok(is_protected(&fd))
}

fn is_protected(fd: &OwnedFd) -> bool {
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) } == 0 && st.f_flag & libc::ST_RDONLY != 0 {
        return true;
    }
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & libc::F_SEAL_WRITE != 0
}

/// Re-exec the current process from a read-only copy of its binary unless it already runs
/// from one. Returns only when nothing had to be done, or with the step that failed. In the
/// re-executed runtime, returns the detached mount it runs from: close it where a wait of a
/// few milliseconds costs nothing (see the module doc); dropping it at exit is correct too.
pub fn reexec_protected() -> Result<Option<OwnedFd>, String> {
    let exe = sys::open(Path::new("/proc/self/exe"), libc::O_RDONLY)
        .map_err(|e| format!("protecting the runtime binary: /proc/self/exe: {e}"))?;
    let handed = std::env::var_os(VIEW_FD_ENV);
    if handed.is_some() {
        // Not for hooks or anything else this process starts.
        std::env::remove_var(VIEW_FD_ENV);
    }
    if is_protected(&exe) {
        return Ok(handed.and_then(|v| view_of(&exe, v.to_str()?.parse().ok()?)));
    }
    let (fd, keep_open) = match readonly_view() {
        Ok(fd) => (fd, true),
        // A memfd costs nothing to close: close-on-exec as usual.
        Err(_) => (
            sealed_copy().map_err(|e| {
                format!(
                    "protecting the runtime binary: copying /proc/self/exe to a sealed memfd: {e}"
                )
            })?,
            false,
        ),
    };
    // Never loop: exec only what is verified to be unwritable.
    if !is_protected(&fd) {
        return Err("protecting the runtime binary: the read-only copy is writable".into());
    }
    if keep_open {
        sys::check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) }).map_err(|e| {
            format!("protecting the runtime binary: keeping the read-only view open: {e}")
        })?;
    }
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).expect("argv has no NUL"))
        .collect();
    let handoff = keep_open.then(|| (VIEW_FD_ENV.into(), fd.as_raw_fd().to_string().into()));
    let env: Vec<CString> = std::env::vars_os()
        .chain(handoff)
        .map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            CString::new(b).expect("environ has no NUL")
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(format!(
        "protecting the runtime binary: re-executing it read-only: {}",
        io::Error::last_os_error()
    ))
}

/// The fd named by `VIEW_FD_ENV` if it really is the read-only view this process runs
/// from (same file as `exe`, on a read-only mount) — never some other fd that happens to
/// carry the number — made close-on-exec again.
fn view_of(exe: &OwnedFd, fd: i32) -> Option<OwnedFd> {
    if fd < 3 {
        return None;
    }
    let (mut a, mut b): (libc::stat, libc::stat) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    let same = unsafe { libc::fstat(exe.as_raw_fd(), &mut a) == 0 && libc::fstat(fd, &mut b) == 0 }
        && (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino);
    if !same {
        return None;
    }
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return None;
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    is_protected(&fd).then_some(fd)
}

/// /proc/self/exe through a detached, read-only bind mount of just that file.
fn readonly_view() -> io::Result<OwnedFd> {
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/proc/self/exe".as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC,
        )
    };
    if tree < 0 {
        return Err(io::Error::last_os_error());
    }
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}

/// The binary copied into a memfd sealed against any change.
fn sealed_copy() -> io::Result<OwnedFd> {
    let src = sys::open(Path::new("/proc/self/exe"), libc::O_RDONLY)?;
    let fd = unsafe {
        libc::memfd_create(
            c"husk-runtime".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut from = std::fs::File::from(src);
    let mut to = std::fs::File::from(fd.try_clone()?);
    io::copy(&mut from, &mut to)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    sys::check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    // execve refuses a file that is open for writing (ETXTBSY): keep a read-only open.
    let ro = sys::open(Path::new(&sys::fd_path(&fd)), libc::O_RDONLY)?;
    Ok(ro)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_unwritable() {
        // open_tree needs CAP_SYS_ADMIN; the memfd path works for everyone.
        let fd = sealed_copy().unwrap();
        assert!(is_protected(&fd));
        let path = sys::fd_path(&fd);
        // F_SEAL_WRITE: an open for writing may succeed, no write ever does.
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
            use std::io::Write;
            assert!(f.write_all(b"x").is_err());
        }
        if unsafe { libc::geteuid() } == 0 {
            let fd = readonly_view().unwrap();
            assert!(is_protected(&fd));
            let path = sys::fd_path(&fd);
            let e = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap_err();
            // The view is of this running test binary, so the kernel may report ETXTBSY
            // before it gets to EROFS; is_protected() above checked the read-only mount.
            assert!(
                matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::ETXTBSY)),
                "{e}"
            );
        }
    }
}
