//! `husk cp`: files and directories between the host and a container's filesystem: a
//! running container's rootfs as it is mounted, a stopped (or created) one's mounted again
//! for the copy and unmounted after it.
//!
//! The container side is never trusted: its path is opened with the library's
//! `open_in_root` (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS on the container's
//! rootfs), and everything below it by name relative to an already opened directory with
//! O_NOFOLLOW — symlinks are copied as symlinks, never followed, so a link in the image
//! cannot make a copy read or write a host file.

use crate::engine::Engine;
use crate::error::{CopyError, During, Result};
use crate::record::{find, Record};
use crate::rootfs::Overlay;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn open_error(path: impl Into<String>) -> impl FnOnce(io::Error) -> CopyError {
    let path = path.into();
    |source| CopyError::Open { path, source }
}

/// `NAME:PATH` names a path in a container (NAME has no '/', as with docker cp).
fn split(arg: &str) -> Option<(&str, &str)> {
    arg.split_once(':')
        .filter(|(n, _)| !n.is_empty() && !n.contains('/'))
}

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn openat(dir: &OwnedFd, name: &OsStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let n = cstr(name)?;
    let fd =
        check(unsafe { libc::openat(dir.as_raw_fd(), n.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// The target of the symlink `fd` (an O_PATH|O_NOFOLLOW fd of the link itself).
fn readlink(fd: &OwnedFd) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = check(unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        ) as i32
    })?;
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsStr::from_bytes(&buf)))
}

/// What one entry is, from an O_PATH|O_NOFOLLOW fd of it.
enum Entry {
    File(u32),
    Dir(u32),
    Link(PathBuf),
}

fn entry(fd: &OwnedFd) -> io::Result<Entry> {
    let st = fstat(fd)?;
    let mode = st.st_mode & 0o7777;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Ok(Entry::File(mode)),
        libc::S_IFDIR => Ok(Entry::Dir(mode)),
        libc::S_IFLNK => Ok(Entry::Link(readlink(fd)?)),
        _ => Err(io::Error::other("not a file, directory or symlink")),
    }
}

/// Copy the entry `src` (an O_PATH|O_NOFOLLOW fd) to `name` in the directory `dst`.
fn copy(src: &OwnedFd, dst: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match entry(src)? {
        Entry::File(mode) => {
            // Reopen the very inode for reading: /proc/self/fd of an O_PATH fd of a
            // regular file, which no path in the tree can redirect.
            let mut from = File::open(format!("/proc/self/fd/{}", src.as_raw_fd()))?;
            let to = openat(
                dst,
                name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW,
                mode,
            )?;
            io::copy(&mut from, &mut File::from(to))?;
            Ok(())
        }
        Entry::Link(target) => {
            let (t, n) = (cstr(target.as_os_str())?, cstr(name)?);
            check(unsafe { libc::symlinkat(t.as_ptr(), dst.as_raw_fd(), n.as_ptr()) })?;
            Ok(())
        }
        Entry::Dir(mode) => {
            let n = cstr(name)?;
            match check(unsafe { libc::mkdirat(dst.as_raw_fd(), n.as_ptr(), mode) }) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                r => {
                    r?;
                }
            }
            let to = openat(
                dst,
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            let from = File::open(format!("/proc/self/fd/{}", src.as_raw_fd()))?;
            let from = OwnedFd::from(from);
            let names: Vec<std::ffi::OsString> =
                std::fs::read_dir(format!("/proc/self/fd/{}", from.as_raw_fd()))?
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<io::Result<_>>()?;
            for child in names {
                let c = openat(&from, &child, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
                copy(&c, &to, &child)?;
            }
            Ok(())
        }
    }
}

/// The container's rootfs as a directory fd: a running container's overlay mount, or a
/// stopped one's mounted for as long as the returned [`Overlay`] lives.
pub(crate) fn rootfs_of(e: &Engine, r: &Record) -> Result<(OwnedFd, Option<Overlay>)> {
    let mounted = match r.status() {
        "running" | "paused" => None,
        _ => {
            let store = e.store()?;
            let rec = e.image_of(&store, r)?;
            // One its dead runner left mounted would be a second overlay on one upper.
            crate::rootfs::unmount_leftover(&r.dir)?;
            let ns = crate::userns::for_container(e.root(), r.id())?;
            let idmap = crate::rootfs::Idmapped::of(&ns);
            Some(crate::rootfs::mount_existing(
                &r.dir,
                &store,
                &rec,
                idmap.as_ref(),
            )?)
        }
    };
    let p = r.dir.join("rootfs");
    let f = File::open(&p).map_err(open_error(p.display().to_string()))?;
    Ok((OwnedFd::from(f), mounted))
}

/// Where a copy lands: into DST when it is a directory (named after the source), else
/// DST itself (its parent must exist).
fn destination(
    open: &dyn Fn(&Path) -> io::Result<OwnedFd>,
    dst: &Path,
    src_name: &OsStr,
) -> io::Result<(OwnedFd, std::ffi::OsString)> {
    if let Ok(d) = open(dst) {
        if matches!(entry(&d), Ok(Entry::Dir(_))) {
            return Ok((open_dir(&d)?, src_name.to_os_string()));
        }
    }
    let name = dst
        .file_name()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let parent = open(dst.parent().unwrap_or(Path::new("/")))?;
    Ok((open_dir(&parent)?, name.to_os_string()))
}

fn open_dir(fd: &OwnedFd) -> io::Result<OwnedFd> {
    openat(fd, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

impl Engine {
    /// `cp SRC DST`: one of them `CONTAINER:PATH`, the other a host path; a directory is
    /// copied whole.
    pub fn copy(&self, src: &str, dst: &str) -> Result<()> {
        cp(self, src, dst).during("cp", format!("{src} {dst}"))
    }
}

fn cp(e: &Engine, src: &str, dst: &str) -> Result<()> {
    match (split(src), split(dst)) {
        (Some((name, path)), None) => {
            let r = find(&e.root, name)?;
            let (root, _mounted) = rootfs_of(e, &r)?;
            let from = husk_container::open_in_root(
                &root,
                Path::new(path),
                libc::O_PATH | libc::O_NOFOLLOW,
            )
            .map_err(open_error(format!("{name}:{path}")))?;
            let src_name = Path::new(path).file_name().unwrap_or(OsStr::new("root"));
            let open = |p: &Path| {
                File::open(p).map(OwnedFd::from).or_else(|_| {
                    let c = cstr(p.as_os_str())?;
                    let fd =
                        check(unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })?;
                    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
                })
            };
            let (dir, n) = destination(&open, Path::new(dst), src_name).map_err(open_error(dst))?;
            Ok(copy(&from, &dir, &n).map_err(CopyError::Copy)?)
        }
        (None, Some((name, path))) => {
            let r = find(&e.root, name)?;
            let (root, _mounted) = rootfs_of(e, &r)?;
            let c = cstr(OsStr::new(src)).map_err(open_error(src))?;
            // The host side is the caller's own: its path is followed as given.
            let from = check(unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                .map_err(open_error(src))?;
            let src_name = Path::new(src).file_name().unwrap_or(OsStr::new("root"));
            let open = |p: &Path| husk_container::open_in_root(&root, p, libc::O_PATH);
            let (dir, n) = destination(&open, Path::new(path), src_name)
                .map_err(open_error(format!("{name}:{path}")))?;
            Ok(copy(&from, &dir, &n).map_err(CopyError::Copy)?)
        }
        (Some(_), Some(_)) => Err(CopyError::BetweenContainers.into()),
        (None, None) => Err(CopyError::NoContainer.into()),
    }
}
