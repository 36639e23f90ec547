//! COPY and ADD: files from the build context (or another stage's or an image's
//! filesystem) into the step's rootfs.
//!
//! Neither side is trusted. A source path is checked lexically (`../x` is outside the
//! context: refused) and opened with openat2 RESOLVE_IN_ROOT on the source root, so a
//! symlink in the context that points outside resolves inside the context (and is not
//! found there) — never to a host file; below it, everything is opened by name relative
//! to an open directory with O_NOFOLLOW, and symlinks are copied as symlinks. The
//! destination is resolved inside the step's rootfs the same way, so a symlink in the image
//! cannot send a file to the host. Files the ignore file excludes are never seen.

use super::ignore::{self, Ignore};
use husk_image::digest::Digest;
use husk_image::fsutil;
use sha2::{Digest as _, Sha256};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Where COPY reads from.
pub struct SourceRoot {
    pub fd: OwnedFd,
    /// The build context: `..` out of it is an error, the ignore file applies.
    pub context: bool,
    pub ignore: Ignore,
}

/// One matched source: its path relative to the source root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub rel: String,
    pub is_dir: bool,
}

/// How copied files end up.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// `--chown`: (uid, gid); None keeps 0:0 for the context, the owner for other roots.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`.
    pub mode: Option<u32>,
    /// `--timestamp`: every copied file's mtime.
    pub mtime: Option<i64>,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cstr(s: &str) -> io::Result<CString> {
    fsutil::cstr(s.as_bytes())
}

fn openat(dir: BorrowedFd, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `src` relative to its root, `..` resolved lexically: None when it leaves the root
/// (meaningful for the context, where that is an escape).
pub fn relative(src: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in src.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

fn is_dir_at(root: BorrowedFd, rel: &str) -> io::Result<bool> {
    let fd = fsutil::open_in_root(root, rel.as_bytes(), libc::O_PATH)?;
    Ok(fsutil::is_dir(&fsutil::fstat(fd.as_fd())?))
}

impl SourceRoot {
    pub fn open(path: &Path, context: bool, ignore: Ignore) -> io::Result<SourceRoot> {
        Ok(SourceRoot {
            fd: fsutil::open_dir(path)?,
            context,
            ignore,
        })
    }

    /// The sources `pattern` names: a path, or a glob matched segment by segment.
    pub fn resolve(&self, pattern: &str) -> Result<Vec<Source>, String> {
        let rel = match relative(pattern) {
            Some(r) => r,
            None if self.context => {
                return Err(format!("{pattern}: outside the build context"));
            }
            None => relative(&format!("/{pattern}")).unwrap_or_default(),
        };
        if !ignore::is_glob(&rel) {
            // An excluded directory may still hold what a `!` exception keeps: the copy
            // walks it and takes only that.
            let kept_below =
                self.ignore.has_exceptions() && is_dir_at(self.fd.as_fd(), &rel).unwrap_or(false);
            if self.context && self.ignore.excluded(&rel) && !kept_below {
                return Err(format!(
                    "{pattern}: no such file or directory (excluded by the ignore file)"
                ));
            }
            return match is_dir_at(self.fd.as_fd(), &rel) {
                Ok(is_dir) => Ok(vec![Source { rel, is_dir }]),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    Err(format!("{pattern}: no such file or directory"))
                }
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    Err(format!("{pattern}: outside the build context"))
                }
                Err(e) => Err(format!("{pattern}: {e}")),
            };
        }
        let segs: Vec<&str> = rel.split('/').collect();
        let mut found = Vec::new();
        self.glob(String::new(), &segs, &mut found)
            .map_err(|e| format!("{pattern}: {e}"))?;
        if found.is_empty() {
            return Err(format!("{pattern}: no source files were specified"));
        }
        found.sort_by(|a: &Source, b| a.rel.cmp(&b.rel));
        Ok(found)
    }

    fn glob(&self, prefix: String, segs: &[&str], out: &mut Vec<Source>) -> io::Result<()> {
        let Some((first, rest)) = segs.split_first() else {
            return Ok(());
        };
        let dir = fsutil::open_in_root(
            self.fd.as_fd(),
            prefix.as_bytes(),
            libc::O_RDONLY | libc::O_DIRECTORY,
        )?;
        for name in fsutil::list_dir(dir.as_fd())? {
            let name = name.to_string_lossy().into_owned();
            if !ignore::fnmatch(first, &name).unwrap_or(false) {
                continue;
            }
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if self.context && self.ignore.excluded(&rel) {
                continue;
            }
            let st = fsutil::stat_at(dir.as_fd(), &fsutil::cstr(name.as_bytes())?)?;
            let is_dir = fsutil::is_dir(&st);
            if rest.is_empty() {
                // A symlink matched by a glob is followed inside the root, as a named one.
                let is_dir = is_dir || is_dir_at(self.fd.as_fd(), &rel).unwrap_or(false);
                out.push(Source { rel, is_dir });
            } else if is_dir {
                self.glob(rel, rest, out)?;
            }
        }
        Ok(())
    }

    /// The content digest of `sources` (paths, types, modes, file data, link targets; not
    /// times): the cache key of a COPY.
    pub fn digest(&self, sources: &[Source]) -> io::Result<Digest> {
        let mut h = Sha256::new();
        for s in sources {
            h.update(s.rel.as_bytes());
            h.update([0]);
            let fd = fsutil::open_in_root(self.fd.as_fd(), s.rel.as_bytes(), libc::O_RDONLY)?;
            self.hash_tree(fd, &s.rel, &mut h)?;
        }
        Ok(Digest::from_sha256_bytes(&h.finalize()))
    }

    fn hash_tree(&self, fd: OwnedFd, rel: &str, h: &mut Sha256) -> io::Result<()> {
        let st = fsutil::fstat(fd.as_fd())?;
        h.update(st.st_mode.to_le_bytes());
        if fsutil::is_dir(&st) {
            let mut names = fsutil::list_dir(fd.as_fd())?;
            names.sort();
            for n in names {
                let child = format!("{rel}/{}", n.to_string_lossy());
                if self.context && self.ignore.excluded(&child) {
                    continue;
                }
                h.update(n.as_bytes_with_nul());
                let cst = fsutil::stat_at(fd.as_fd(), &n)?;
                match cst.st_mode & libc::S_IFMT {
                    libc::S_IFLNK => {
                        h.update(readlinkat(fd.as_fd(), &n)?.as_bytes());
                        h.update([0]);
                    }
                    libc::S_IFDIR | libc::S_IFREG => {
                        let c = openat(fd.as_fd(), &n, libc::O_RDONLY, 0)?;
                        self.hash_tree(c, &child, h)?;
                    }
                    _ => h.update(cst.st_mode.to_le_bytes()),
                }
            }
        } else {
            let mut f = File::from(fd);
            h.update(st.st_size.to_le_bytes());
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        Ok(())
    }
}

fn readlinkat(dir: BorrowedFd, name: &CStr) -> io::Result<String> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Where a copy goes: the rootfs's directory fd, opened inside it.
pub struct Dest {
    root: OwnedFd,
}

fn split_parent(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("", p),
    }
}

impl Dest {
    pub fn open(rootfs: &Path) -> io::Result<Dest> {
        Ok(Dest {
            root: fsutil::open_dir(rootfs)?,
        })
    }

    /// Whether `path` (absolute in the rootfs) is a directory there.
    pub fn is_dir(&self, path: &str) -> bool {
        is_dir_at(self.root.as_fd(), path.trim_start_matches('/')).unwrap_or(false)
    }

    /// The directory `path`, made (0755) where missing; every component resolved in the root.
    pub fn mkdir_all(&self, path: &str) -> io::Result<OwnedFd> {
        let rel = relative(path).unwrap_or_default();
        let fd = fsutil::mkdir_all_in_root(self.root.as_fd(), rel.as_bytes())?;
        // An O_PATH fd cannot be used with *at(): open it for real.
        fsutil::open_in_root(fd.as_fd(), b".", libc::O_RDONLY | libc::O_DIRECTORY)
    }

    /// Copy `src` from `from` to `dest` (a path in the rootfs: the file's, or the directory
    /// that receives a directory's contents).
    pub fn copy(
        &self,
        from: &SourceRoot,
        src: &Source,
        dest: &str,
        o: &CopyOptions,
    ) -> io::Result<()> {
        let fd = fsutil::open_in_root(from.fd.as_fd(), src.rel.as_bytes(), libc::O_RDONLY)?;
        if src.is_dir {
            let d = self.mkdir_all(dest)?;
            return self.copy_dir_contents(from, &fd, &src.rel, &d, o);
        }
        let (parent, name) = split_parent(dest.trim_end_matches('/'));
        let pd = self.mkdir_all(if parent.is_empty() { "/" } else { parent })?;
        let st = fsutil::fstat(fd.as_fd())?;
        copy_file(fd, &st, &pd, &cstr(name)?, from.context, o)
    }

    fn copy_dir_contents(
        &self,
        from: &SourceRoot,
        src: &OwnedFd,
        rel: &str,
        dst: &OwnedFd,
        o: &CopyOptions,
    ) -> io::Result<()> {
        for n in fsutil::list_dir(src.as_fd())? {
            let child = format!("{rel}/{}", n.to_string_lossy());
            let child = child.trim_start_matches('/');
            if from.context && from.ignore.excluded(child) {
                continue;
            }
            let st = fsutil::stat_at(src.as_fd(), &n)?;
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => {
                    let s = openat(src.as_fd(), &n, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                    let d = make_dir(dst, &n)?;
                    self.copy_dir_contents(from, &s, child, &d, o)?;
                    set_meta(&d, &st, from.context, o)?;
                }
                libc::S_IFREG => {
                    let s = openat(src.as_fd(), &n, libc::O_RDONLY, 0)?;
                    copy_file(s, &st, dst, &n, from.context, o)?;
                }
                libc::S_IFLNK => {
                    let target = readlinkat(src.as_fd(), &n)?;
                    replace(dst, &n)?;
                    let t = cstr(&target)?;
                    cvt(unsafe { libc::symlinkat(t.as_ptr(), dst.as_raw_fd(), n.as_ptr()) })?;
                    let (uid, gid) = owner(&st, from.context, o);
                    cvt(unsafe {
                        libc::fchownat(
                            dst.as_raw_fd(),
                            n.as_ptr(),
                            uid,
                            gid,
                            libc::AT_SYMLINK_NOFOLLOW,
                        )
                    })?;
                }
                // Sockets, fifos and devices of a context are not copied (docker's
                // context tarball has no sockets; devices need privileges we do not use).
                _ => {}
            }
        }
        Ok(())
    }

    /// Write `data` as the file `dest` (an ADD of a URL, COPY of a heredoc).
    pub fn write_file(
        &self,
        dest: &str,
        data: &mut dyn Read,
        mode: u32,
        o: &CopyOptions,
    ) -> io::Result<()> {
        let (parent, name) = split_parent(dest.trim_end_matches('/'));
        let pd = self.mkdir_all(if parent.is_empty() { "/" } else { parent })?;
        let n = cstr(name)?;
        replace(&pd, &n)?;
        let fd = openat(
            pd.as_fd(),
            &n,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )?;
        let mut f = File::from(fd);
        io::copy(data, &mut f)?;
        let (uid, gid) = o.owner.unwrap_or((0, 0));
        cvt(unsafe { libc::fchown(f.as_raw_fd(), uid, gid) })?;
        cvt(unsafe { libc::fchmod(f.as_raw_fd(), o.mode.unwrap_or(mode)) })?;
        if let Some(t) = o.mtime {
            set_times(f.as_fd(), t, 0)?;
        }
        f.flush()
    }

    /// Unpack the tar stream `r` into the directory `dest` (ADD of a local archive).
    pub fn extract(&self, dest: &str, r: &mut dyn Read) -> Result<(), husk_image::Error> {
        let d = self
            .mkdir_all(dest)
            .map_err(|e| husk_image::Error::io("opening", dest, e))?;
        let opts = husk_image::unpack::UnpackOptions {
            whiteouts: husk_image::unpack::WhiteoutMode::Apply,
            chown: husk_image::fsutil::is_root(),
            devices: false,
            limits: Default::default(),
        };
        let p = format!("/proc/self/fd/{}", d.as_raw_fd());
        husk_image::unpack::unpack(r, Path::new(&p), &opts, dest).map(|_| ())
    }
}

/// Remove a non-directory entry `name` of `dir` (a file replaced by the copy).
fn replace(dir: &OwnedFd, name: &CStr) -> io::Result<()> {
    match fsutil::stat_at(dir.as_fd(), name) {
        Ok(st) if fsutil::is_dir(&st) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is a directory", name.to_string_lossy()),
        )),
        Ok(_) => cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(|_| ()),
        Err(_) => Ok(()),
    }
}

fn make_dir(dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    match fsutil::stat_at(dir.as_fd(), name) {
        Ok(st) if fsutil::is_dir(&st) => {}
        Ok(_) => {
            cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })?;
            cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) })?;
        }
        Err(_) => {
            cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) })?;
        }
    }
    openat(dir.as_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

fn owner(st: &libc::stat, context: bool, o: &CopyOptions) -> (u32, u32) {
    match o.owner {
        Some(x) => x,
        None if context => (0, 0),
        None => (st.st_uid, st.st_gid),
    }
}

fn set_times(fd: BorrowedFd, sec: i64, nsec: i64) -> io::Result<()> {
    let t = libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), [t, t].as_ptr()) }).map(|_| ())
}

/// Owner, mode and mtime of a copied file or directory: `--chown`/`--chmod`/`--timestamp`
/// where given, else the source's (owner 0:0 from the context, as docker's).
fn set_meta(fd: &OwnedFd, st: &libc::stat, context: bool, o: &CopyOptions) -> io::Result<()> {
    let (uid, gid) = owner(st, context, o);
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    let mode = match o.mode {
        Some(m) => m,
        None => st.st_mode & 0o7777,
    };
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })?;
    match o.mtime {
        Some(t) => set_times(fd.as_fd(), t, 0),
        None => set_times(fd.as_fd(), st.st_mtime, st.st_mtime_nsec),
    }
}

fn copy_file(
    src: OwnedFd,
    st: &libc::stat,
    dir: &OwnedFd,
    name: &CStr,
    context: bool,
    o: &CopyOptions,
) -> io::Result<()> {
    replace(dir, name)?;
    let fd = openat(
        dir.as_fd(),
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        0o600,
    )?;
    let mut out = File::from(fd);
    let mut inp = File::from(src);
    io::copy(&mut inp, &mut out)?;
    let fd: OwnedFd = out.into();
    set_meta(&fd, st, context, o)
}

/// Whether the open file `path_fd` is a tar archive (plain, gzip or zstd): what ADD
/// extracts.
pub fn looks_like_tar(path_fd: &OwnedFd) -> bool {
    let Ok(dup) = path_fd.try_clone() else {
        return false;
    };
    let f = io::BufReader::new(File::from(dup));
    let Ok(mut r) = husk_image::pull::decompressing_reader(f) else {
        return false;
    };
    let mut block = [0u8; 512];
    let mut got = 0;
    while got < 512 {
        match r.read(&mut block[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    // The dup shares the file offset: rewind for whoever reads the file next.
    unsafe { libc::lseek(path_fd.as_raw_fd(), 0, libc::SEEK_SET) };
    got == 512 && (&block[257..262] == b"ustar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(relative("a/./b//c").unwrap(), "a/b/c");
        assert_eq!(relative("/a/../b").unwrap(), "b");
        assert_eq!(relative(".").unwrap(), "");
        assert!(relative("../x").is_none());
        assert!(relative("a/../../x").is_none());
    }
}
