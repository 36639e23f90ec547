//! `tmpcopyup`: fill a freshly mounted tmpfs with what the directory under it held.
//!
//! Everything is fd-relative: each directory is opened from its parent's fd with O_NOFOLLOW,
//! entries are examined with fstatat(AT_SYMLINK_NOFOLLOW), symlinks are recreated (never
//! followed), so nothing outside the two trees is read or written whatever the image holds.
//! Regular files, directories and symlinks are copied with mode, owner and times; device
//! nodes, fifos and sockets are skipped.

use crate::sys;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Copy the content of directory `src` into directory `dst` (both opened O_RDONLY|O_DIRECTORY),
/// and give `dst` the mode, owner and times of `src`. `at` names `src` in error messages.
pub fn copy_dir(src: &OwnedFd, dst: &OwnedFd, at: &Path) -> io::Result<()> {
    copy_entries(src, dst, at)?;
    let st = sys::fstat(src.as_raw_fd()).map_err(|e| context("reading", at, e))?;
    set_attrs(dst.as_raw_fd(), None, &st).map_err(|e| context("copying", at, e))
}

fn context(op: &str, path: &Path, e: io::Error) -> io::Error {
    let text = match e.raw_os_error() {
        Some(n) => {
            let s = io::Error::from_raw_os_error(n).to_string();
            s.split(" (os error").next().unwrap_or(&s).to_string()
        }
        None => e.to_string(),
    };
    io::Error::new(e.kind(), format!("{op} {}: {text}", path.display()))
}

fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    sys::retry(|| {
        let fd = unsafe {
            libc::openat(
                dir,
                name.as_ptr(),
                flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                mode as libc::c_uint,
            )
        };
        sys::check(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
    })
}

/// Names in the directory `dir` (without `.` and `..`), read through a duplicate of its fd.
fn names(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    let dup = sys::check(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    let d = unsafe { libc::fdopendir(dup) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(dup) };
        return Err(e);
    }
    unsafe { libc::rewinddir(d) };
    let mut out = Vec::new();
    loop {
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            break;
        }
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            out.push(name.to_owned());
        }
    }
    unsafe { libc::closedir(d) };
    Ok(out)
}

fn copy_entries(src: &OwnedFd, dst: &OwnedFd, at: &Path) -> io::Result<()> {
    for name in names(src).map_err(|e| context("reading", at, e))? {
        let path = at.join(OsStr::from_bytes(name.to_bytes()));
        // Errors from deeper down already name their path (and have no raw errno).
        copy_entry(src, dst, &name, &path).map_err(|e| match e.raw_os_error() {
            Some(_) => context("copying", &path, e),
            None => e,
        })?;
    }
    Ok(())
}

fn copy_entry(src: &OwnedFd, dst: &OwnedFd, name: &CStr, path: &Path) -> io::Result<()> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    sys::check(unsafe {
        libc::fstatat(
            src.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            sys::check(unsafe { libc::mkdirat(dst.as_raw_fd(), name.as_ptr(), 0o700) })?;
            let flags = libc::O_RDONLY | libc::O_DIRECTORY;
            let s = openat(src.as_raw_fd(), name, flags, 0)?;
            let d = openat(dst.as_raw_fd(), name, flags, 0)?;
            copy_entries(&s, &d, path)?;
            set_attrs(d.as_raw_fd(), None, &st)
        }
        libc::S_IFREG => {
            let s = openat(src.as_raw_fd(), name, libc::O_RDONLY, 0)?;
            let d = openat(
                dst.as_raw_fd(),
                name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                0o600,
            )?;
            let (mut s, mut d) = (File::from(s), File::from(d));
            io::copy(&mut s, &mut d)?;
            set_attrs(d.as_raw_fd(), None, &st)
        }
        libc::S_IFLNK => {
            let mut buf = vec![0u8; st.st_size.max(0) as usize + 1];
            let n = unsafe {
                libc::readlinkat(
                    src.as_raw_fd(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            buf.truncate(n as usize);
            let target =
                CString::new(buf).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            sys::check(unsafe {
                libc::symlinkat(target.as_ptr(), dst.as_raw_fd(), name.as_ptr())
            })?;
            set_attrs(dst.as_raw_fd(), Some(name), &st)
        }
        // Device nodes, fifos and sockets are not copied.
        _ => Ok(()),
    }
}

/// Owner, then mode (chown clears set-id bits), then times: of the fd itself, or of the
/// symlink `name` in the directory `fd`.
fn set_attrs(fd: RawFd, link: Option<&CStr>, st: &libc::stat) -> io::Result<()> {
    let times = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    let ignore_unmapped = |r: libc::c_int| match sys::check(r) {
        // An owner with no mapping in our user namespace: keep ours.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(0),
        r => r,
    };
    match link {
        Some(name) => {
            let nofollow = libc::AT_SYMLINK_NOFOLLOW;
            ignore_unmapped(unsafe {
                libc::fchownat(fd, name.as_ptr(), st.st_uid, st.st_gid, nofollow)
            })?;
            sys::check(unsafe { libc::utimensat(fd, name.as_ptr(), times.as_ptr(), nofollow) })?;
        }
        None => {
            ignore_unmapped(unsafe { libc::fchown(fd, st.st_uid, st.st_gid) })?;
            sys::check(unsafe { libc::fchmod(fd, st.st_mode & 0o7777) })?;
            sys::check(unsafe { libc::futimens(fd, times.as_ptr()) })?;
        }
    }
    Ok(())
}
