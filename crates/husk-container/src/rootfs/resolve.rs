//! Path operations confined to a root directory (the container's rootfs).
//!
//! Every lookup goes through openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): `..` and absolute
//! symlinks inside the image are resolved against the rootfs, never the host, and /proc magic
//! links cannot be used to jump out. Callers get O_PATH fds and mount onto `/proc/self/fd/N`,
//! so nothing is re-resolved by path between the check and the use. Kernels without openat2
//! get the same resolution from `walk_in_root`, tested to agree with openat2.

use crate::sys;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// What to create at the end of a path that does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Dir,
    File,
}

/// Open `path` (absolute or relative, always taken inside `root`) with `flags`.
pub fn open_in_root(root: &OwnedFd, path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    match sys::openat2(
        root.as_raw_fd(),
        &relative(path),
        flags,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    ) {
        // Kernels before 5.6 have no openat2: resolve it ourselves.
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => walk_in_root(root, path, flags),
        r => r,
    }
}

/// What openat2(RESOLVE_IN_ROOT) does, done by hand for kernels without it: one component at
/// a time with O_NOFOLLOW, so the kernel never follows a link for us; each symlink is read and
/// its target resolved against `root` (absolute targets restart at `root`), and `..` pops our
/// own stack of directory fds, so neither a link nor a directory moved out of the root by a
/// racing process can lead outside. Magic links (/proc/self/fd/N) are only text here.
pub(crate) fn walk_in_root(root: &OwnedFd, path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    let here = Path::new(".");
    let mut stack: Vec<OwnedFd> = vec![sys::openat(
        root.as_raw_fd(),
        here,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )?];
    let mut todo: VecDeque<OsString> = path.components().filter_map(component_name).collect();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().expect("the root is never popped").as_raw_fd();
        let fd = sys::openat(cur, Path::new(&name), libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let st = sys::fstat(fd.as_raw_fd())?;
        let is_link = st.st_mode & libc::S_IFMT == libc::S_IFLNK;
        if is_link && !(todo.is_empty() && flags & libc::O_NOFOLLOW != 0) {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = read_link_at(cur, &name)?;
            if target.is_absolute() {
                stack.truncate(1);
            }
            for c in target.components().rev().filter_map(component_name) {
                todo.push_front(c);
            }
            continue;
        }
        if todo.is_empty() {
            // Reopen with the caller's flags, still without following: a link swapped in
            // since the check fails with ELOOP instead of being followed.
            if flags & !(libc::O_CLOEXEC | libc::O_NOFOLLOW) == libc::O_PATH {
                return Ok(fd);
            }
            return sys::openat(cur, Path::new(&name), flags | libc::O_NOFOLLOW, 0);
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        stack.push(fd);
    }
    // The path named the root itself (or climbed back to a directory on the stack).
    let cur = stack.last().expect("the root is never popped").as_raw_fd();
    sys::openat(cur, here, flags, 0)
}

/// A path component as a name to look up; `/` and `.` are dropped, `..` is kept.
fn component_name(c: Component) -> Option<std::ffi::OsString> {
    match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    }
}

fn read_link_at(dir: std::os::fd::RawFd, name: &std::ffi::OsStr) -> io::Result<PathBuf> {
    let c = sys::cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

/// Open `path` inside `root` as O_PATH, creating missing directories (mode 0755) and, when
/// `last` is `Kind::File`, an empty final file (mode 0644). An existing final component is
/// accepted whatever its type; the caller checks it when that matters.
pub fn ensure_in_root(root: &OwnedFd, path: &Path, last: Kind) -> io::Result<OwnedFd> {
    ensure_depth(root, path, last, 0)
}

/// Symlinks followed while creating, as the kernel's own limit.
const MAX_SYMLINKS: u32 = 40;

fn ensure_depth(root: &OwnedFd, path: &Path, last: Kind, depth: u32) -> io::Result<OwnedFd> {
    if depth > MAX_SYMLINKS {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    match open_in_root(root, path, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let rel = relative(path);
    let mut dir = sys::openat(
        root.as_raw_fd(),
        Path::new("."),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )?;
    let mut so_far = PathBuf::new();
    let comps: Vec<_> = rel.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        so_far.push(comp);
        let is_last = i + 1 == comps.len();
        match open_in_root(root, &so_far, libc::O_PATH) {
            Ok(fd) => {
                dir = fd;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        // The component is missing: create it relative to the already-resolved parent fd.
        let name = sys::cstr(comp.as_os_str())?;
        // A dangling symlink (e.g. /var/run -> /run before /run exists): create its target,
        // still inside the root, and continue from there.
        let mut buf = [0u8; libc::PATH_MAX as usize];
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n > 0 {
            let target = Path::new(std::ffi::OsStr::from_bytes(&buf[..n as usize]));
            let mut next = if target.is_absolute() {
                PathBuf::from(target)
            } else {
                so_far.parent().unwrap_or(Path::new("")).join(target)
            };
            for rest in &comps[i + 1..] {
                next.push(rest);
            }
            return ensure_depth(root, &next, last, depth + 1);
        }
        let r = if is_last && last == Kind::File {
            let fd = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_CLOEXEC
                        | libc::O_NOFOLLOW,
                    0o644,
                )
            };
            if fd >= 0 {
                unsafe { libc::close(fd) };
            }
            fd
        } else {
            unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) }
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e);
            }
        }
        dir = open_in_root(root, &so_far, libc::O_PATH)?;
    }
    Ok(dir)
}

/// The in-root form of `path`: leading `/` removed, `.` dropped (`..` is left to openat2).
pub fn relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("husk-resolve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn symlinks_cannot_leave_the_root() {
        let base = tmpdir("escape");
        let root = base.join("root");
        std::fs::create_dir_all(&root).unwrap();
        // An absolute symlink and a ../ symlink that point at the host's parent dir.
        symlink(&base, root.join("abs")).unwrap();
        symlink("../../..", root.join("up")).unwrap();
        let rootfd = sys::open(&root, libc::O_PATH | libc::O_DIRECTORY).unwrap();
        ensure_in_root(&rootfd, Path::new("/abs/made"), Kind::Dir).unwrap();
        ensure_in_root(&rootfd, Path::new("up/file"), Kind::File).unwrap();
        // Both were created inside the root, nothing beside it.
        assert!(root
            .join(base.strip_prefix("/").unwrap())
            .join("made")
            .is_dir());
        assert!(root.join("file").is_file());
        assert!(!base.join("made").exists());
        assert!(!base.join("file").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// The hand-made walk resolves exactly like openat2(RESOLVE_IN_ROOT), hostile links included.
    #[test]
    fn walk_without_openat2_matches_openat2_and_stays_inside() {
        let base = tmpdir("walk");
        let root = base.join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "inside").unwrap();
        std::fs::write(base.join("secret"), "outside").unwrap();
        symlink(&base, root.join("abs")).unwrap(); // absolute, to the host dir
        symlink("../../../..", root.join("a/b/up")).unwrap(); // climbs past the root
        symlink("/etc/passwd", root.join("a/pw")).unwrap(); // absolute, inside
        symlink("b/up/etc", root.join("a/chain")).unwrap(); // chain through a climbing link
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        let rootfd = sys::open(&root, libc::O_PATH | libc::O_DIRECTORY).unwrap();
        let id = |fd: &OwnedFd| {
            let st = sys::fstat(fd.as_raw_fd()).unwrap();
            (st.st_dev, st.st_ino)
        };
        for p in [
            "/",
            "a/b",
            "a/b/up",
            "a/b/up/etc/passwd",
            "/a/pw",
            "a/chain/passwd",
            "../../etc",
            "abs",
        ] {
            let via2 = sys::openat2(
                rootfd.as_raw_fd(),
                &relative(Path::new(p)),
                libc::O_PATH,
                0,
                RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
            );
            let walked = walk_in_root(&rootfd, Path::new(p), libc::O_PATH);
            match (via2, walked) {
                (Ok(a), Ok(b)) => assert_eq!(id(&a), id(&b), "{p}"),
                (Err(a), Err(b)) => assert_eq!(a.raw_os_error(), b.raw_os_error(), "{p}"),
                (a, b) => panic!("{p}: openat2 {a:?} vs walk {b:?}"),
            }
        }
        // The absolute link to the host dir does not reach the host's secret.
        let e = walk_in_root(&rootfd, Path::new("abs/secret"), libc::O_RDONLY).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let mut s = String::new();
        use std::io::Read;
        std::fs::File::from(
            walk_in_root(&rootfd, Path::new("a/chain/passwd"), libc::O_RDONLY).unwrap(),
        )
        .read_to_string(&mut s)
        .unwrap();
        assert_eq!(s, "inside");
        assert_eq!(
            walk_in_root(&rootfd, Path::new("loop1"), libc::O_PATH)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ELOOP)
        );
        // O_NOFOLLOW on the last component gives the link itself, as openat2 does.
        let l = walk_in_root(&rootfd, Path::new("a/pw"), libc::O_PATH | libc::O_NOFOLLOW).unwrap();
        assert_eq!(
            sys::fstat(l.as_raw_fd()).unwrap().st_mode & libc::S_IFMT,
            libc::S_IFLNK
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn relative_strips_root() {
        assert_eq!(relative(Path::new("/a/./b")), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("/")), PathBuf::from("."));
    }
}
