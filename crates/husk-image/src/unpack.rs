//! Applying a layer tarball to a directory, safely.
//!
//! * Paths are normalised lexically (leading `/` and `./` dropped, `..` refused) and every
//!   parent directory is opened with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
//!   RESOLVE_NO_XDEV) relative to the layer root; the final component is created with
//!   `*at()` calls that never follow it (O_EXCL|O_NOFOLLOW, AT_SYMLINK_NOFOLLOW).
//! * Existing entries are unlinked and recreated, never opened for writing, so a hardlink or
//!   symlink planted earlier can't redirect a write.
//! * Hardlink targets are resolved inside the root too, and never followed if a symlink.
//! * Overlay xattrs in a layer are refused; only `user.*` and `security.capability` are kept.
//! * Whiteouts: in [`WhiteoutMode::Overlay`] they are stored as overlayfs expects (0:0 char
//!   device, `<prefix>overlay.opaque=y`); in [`WhiteoutMode::Apply`] they delete from the lower
//!   content already in the directory (flattening).

use crate::error::{Error, Result};
use crate::fsutil::{self, cstr};
use crate::tar::{self, Kind};
use std::collections::HashSet;
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Keep whiteouts as overlayfs whiteouts; `xattr_prefix` is "trusted." (root) or "user."
    /// (overlay mounted with `userxattr`).
    Overlay { xattr_prefix: &'static str },
    /// Apply whiteouts to what is already in the directory (flattened rootfs).
    Apply,
}

#[derive(Clone, Debug)]
pub struct UnpackOptions {
    pub whiteouts: WhiteoutMode,
    /// chown entries to the uid/gid in the tarball (needs root).
    pub chown: bool,
    /// create device nodes (needs root); skipped otherwise.
    pub devices: bool,
    /// What one layer may write: a small gzip of zeros can expand without bound.
    pub limits: UnpackLimits,
}

/// Per-layer unpack limits (file data bytes; entries of any kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpackLimits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

/// Generous defaults: far above any real image layer, far below a disk-filling bomb.
pub const DEFAULT_MAX_LAYER_BYTES: u64 = 64 << 30;
pub const DEFAULT_MAX_LAYER_ENTRIES: u64 = 10_000_000;

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: DEFAULT_MAX_LAYER_BYTES,
            max_entries: DEFAULT_MAX_LAYER_ENTRIES,
        }
    }
}

impl UnpackOptions {
    /// Overlay layer dirs: trusted.overlay.* xattrs for host root; user.overlay.* (mounted
    /// with `userxattr`) in a rootless user namespace, where only the user.* namespace and
    /// no device nodes but whiteouts are allowed.
    pub fn overlay() -> Self {
        let host_root = fsutil::is_root();
        UnpackOptions {
            whiteouts: WhiteoutMode::Overlay {
                xattr_prefix: if host_root { "trusted." } else { "user." },
            },
            chown: fsutil::can_chown(),
            devices: host_root,
            limits: UnpackLimits::default(),
        }
    }
    pub fn flat() -> Self {
        UnpackOptions {
            whiteouts: WhiteoutMode::Apply,
            chown: fsutil::can_chown(),
            devices: fsutil::is_root(),
            limits: UnpackLimits::default(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
}

/// Normalise a tar path into relative components; `..` is refused.
pub fn normalize(p: &[u8]) -> std::result::Result<Vec<u8>, &'static str> {
    let mut out: Vec<u8> = Vec::with_capacity(p.len());
    for comp in p.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return Err("path contains '..'"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    if out.contains(&0) {
        return Err("path contains NUL");
    }
    Ok(out)
}

fn split_parent(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (&b""[..], p),
    }
}

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

fn errno_is(e: &io::Error, n: i32) -> bool {
    e.raw_os_error() == Some(n)
}

/// The directory the last entry went into: a layer lists a directory's entries together, so
/// most entries reuse it. Shared (`Rc`) so that an entry keeps its parent open even when
/// replacing an existing entry drops the cache; cloning it costs no syscall.
struct Parent {
    path: Vec<u8>,
    fd: Rc<OwnedFd>,
    /// Its group is our effective gid, so an entry created in it belongs to our euid:egid
    /// under either group rule (System V, or BSD's `grpid`/setgid inheritance).
    ours: bool,
}

struct Unpacker<'a> {
    root: OwnedFd,
    opts: &'a UnpackOptions,
    layer: &'a str,
    cache: Option<Parent>,
    /// (euid, egid) when chowning: an entry created with that owner already needs no chown
    /// (most of an image is root's, and one syscall fewer per entry shows in the unpack rate).
    owner: Option<(u32, u32)>,
    dirs: Vec<(Vec<u8>, i64, u32)>,
    created: HashSet<Vec<u8>>,
    buf: Vec<u8>,
    stats: UnpackStats,
}

impl<'a> Unpacker<'a> {
    fn bad(&self, entry: &[u8], reason: impl Into<String>) -> Error {
        Error::BadLayer {
            layer: self.layer.to_string(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }
    /// A failed chown: EINVAL in a rootless user namespace means the id has no mapping.
    fn chown_err(&self, entry: &[u8], e: &tar::Entry, source: io::Error) -> Error {
        if errno_is(&source, libc::EINVAL) && !fsutil::is_root() {
            return self.bad(
                entry,
                format!(
                    "owner uid {} gid {} is beyond the ids mapped for this user (add a larger \
                     range for the user to /etc/subuid and /etc/subgid)",
                    e.uid, e.gid
                ),
            );
        }
        self.sys(entry, "chown", source)
    }

    fn sys(&self, entry: &[u8], op: &'static str, source: io::Error) -> Error {
        Error::Unpack {
            layer: self.layer.to_string(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            op,
            source,
        }
    }

    /// O_PATH fd of the parent directory, created if missing, resolved in the root; and
    /// whether what is created in it gets our owner (see [`Parent::ours`]).
    fn parent(&mut self, parent: &[u8], entry: &[u8]) -> Result<(Rc<OwnedFd>, bool)> {
        if let Some(c) = self.cache.as_ref().filter(|c| c.path == parent) {
            return Ok((c.fd.clone(), c.ours));
        }
        let fd = fsutil::mkdir_all_in_root(self.root.as_fd(), parent)
            .map_err(|e| self.sys(entry, "opening parent of", e))?;
        let ours = match self.owner {
            Some((_, gid)) => {
                fsutil::fstat(fd.as_fd())
                    .map_err(|e| self.sys(entry, "stat of parent of", e))?
                    .st_gid
                    == gid
            }
            None => false,
        };
        let fd = Rc::new(fd);
        self.cache = Some(Parent {
            path: parent.to_vec(),
            fd: fd.clone(),
            ours,
        });
        Ok((fd, ours))
    }

    /// Whether an entry just created in a directory (`ours`: [`Parent::ours`]) needs a chown
    /// to get the tar header's owner.
    fn needs_chown(&self, e: &tar::Entry, path: &[u8], ours: bool) -> Result<bool> {
        if !self.opts.chown {
            return Ok(false);
        }
        let ids = self.ids(e, path)?;
        Ok(!(ours && Some(ids) == self.owner))
    }

    fn remove_existing(&mut self, dir: BorrowedFd, name: &CString, entry: &[u8]) -> Result<()> {
        self.cache = None;
        fsutil::remove_all_at(dir, name).map_err(|e| self.sys(entry, "replacing", e))
    }

    fn check_xattrs(&self, e: &tar::Entry, path: &[u8]) -> Result<Vec<(CString, Vec<u8>)>> {
        let mut keep = Vec::new();
        for (k, v) in &e.xattrs {
            if k.starts_with(b"trusted.overlay.") || k.starts_with(b"user.overlay.") {
                return Err(self.bad(path, "overlay xattrs are not allowed in a layer"));
            }
            if (k.starts_with(b"user.") || k.as_slice() == b"security.capability")
                && v.len() <= 65536
            {
                keep.push((
                    cstr(k).map_err(|_| self.bad(path, "bad xattr name"))?,
                    v.clone(),
                ));
            }
        }
        Ok(keep)
    }

    fn ids(&self, e: &tar::Entry, path: &[u8]) -> Result<(u32, u32)> {
        if e.uid >= u32::MAX as u64 || e.gid >= u32::MAX as u64 {
            return Err(self.bad(path, "uid/gid out of range"));
        }
        Ok((e.uid as u32, e.gid as u32))
    }

    /// fchown (when `chown`)/fchmod/xattrs/mtime on an fd we just created.
    fn meta_fd(
        &self,
        fd: BorrowedFd,
        e: &tar::Entry,
        path: &[u8],
        xattrs: &[(CString, Vec<u8>)],
        times: bool,
        chown: bool,
    ) -> Result<()> {
        let raw = fd.as_raw_fd();
        if chown {
            let (u, g) = self.ids(e, path)?;
            if unsafe { libc::fchown(raw, u, g) } < 0 {
                return Err(self.chown_err(path, e, last_err()));
            }
        }
        if unsafe { libc::fchmod(raw, e.mode as libc::mode_t) } < 0 {
            return Err(self.sys(path, "chmod", last_err()));
        }
        for (k, v) in xattrs {
            if unsafe { libc::fsetxattr(raw, k.as_ptr(), v.as_ptr().cast(), v.len(), 0) } < 0 {
                let err = last_err();
                // user xattrs may be unsupported by the store's fs; capabilities need root
                if !(errno_is(&err, libc::ENOTSUP) || errno_is(&err, libc::EPERM)) {
                    return Err(self.sys(path, "setting xattr on", err));
                }
            }
        }
        if times {
            let ts = [timespec(e), timespec(e)];
            if unsafe { libc::futimens(raw, ts.as_ptr()) } < 0 {
                return Err(self.sys(path, "setting mtime of", last_err()));
            }
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, tr: &mut tar::Reader<R>, e: tar::Entry) -> Result<()> {
        let path = normalize(&e.path).map_err(|r| self.bad(&e.path, r))?;
        if path.is_empty() {
            // the layer root itself ("./"): nothing to create
            return Ok(());
        }
        self.stats.entries += 1;
        if self.stats.entries > self.opts.limits.max_entries {
            return Err(Error::UnpackLimit {
                layer: self.layer.to_string(),
                limit: format!("{} entries", self.opts.limits.max_entries),
                setting: "max_layer_entries",
            });
        }
        let (parent, name) = split_parent(&path);
        let (parent, name) = (parent.to_vec(), name.to_vec());

        if let Some(target) = name.strip_prefix(b".wh.") {
            self.stats.whiteouts += 1;
            return self.whiteout(&parent, target, &path);
        }
        let xattrs = self.check_xattrs(&e, &path)?;
        let cname = cstr(&name).map_err(|_| self.bad(&path, "bad name"))?;
        if matches!(self.opts.whiteouts, WhiteoutMode::Apply) {
            self.created.insert(path.clone());
        }
        match e.kind {
            Kind::Dir => {
                let (pfd, ours) = self.parent(&parent, &path)?;
                let p = pfd.as_raw_fd();
                // a directory that was there already may have any owner
                let mut fresh = true;
                if unsafe { libc::mkdirat(p, cname.as_ptr(), 0o700) } < 0 {
                    let err = last_err();
                    if !errno_is(&err, libc::EEXIST) {
                        return Err(self.sys(&path, "mkdir", err));
                    }
                    let st = fsutil::stat_at(pfd.as_fd(), &cname)
                        .map_err(|err| self.sys(&path, "stat", err))?;
                    if fsutil::is_dir(&st) {
                        fresh = false;
                    } else {
                        self.remove_existing(pfd.as_fd(), &cname, &path)?;
                        if unsafe { libc::mkdirat(p, cname.as_ptr(), 0o700) } < 0 {
                            return Err(self.sys(&path, "mkdir", last_err()));
                        }
                    }
                }
                let fd = unsafe {
                    libc::openat(
                        p,
                        cname.as_ptr(),
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    )
                };
                if fd < 0 {
                    return Err(self.sys(&path, "opening", last_err()));
                }
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let chown = self.needs_chown(&e, &path, ours && fresh)?;
                self.meta_fd(fd.as_fd(), &e, &path, &xattrs, false, chown)?;
                self.dirs.push((path, e.mtime, e.mtime_nsec));
            }
            Kind::File => {
                // refused before a byte is written: the header declares the size
                if self.stats.bytes.saturating_add(e.size) > self.opts.limits.max_bytes {
                    return Err(Error::UnpackLimit {
                        layer: self.layer.to_string(),
                        limit: format!("{} bytes", self.opts.limits.max_bytes),
                        setting: "max_layer_bytes",
                    });
                }
                let (pfd, ours) = self.parent(&parent, &path)?;
                let flags = libc::O_WRONLY
                    | libc::O_CREAT
                    | libc::O_EXCL
                    | libc::O_NOFOLLOW
                    | libc::O_CLOEXEC;
                let mut fd = unsafe { libc::openat(pfd.as_raw_fd(), cname.as_ptr(), flags, 0o600) };
                if fd < 0 && errno_is(&last_err(), libc::EEXIST) {
                    self.remove_existing(pfd.as_fd(), &cname, &path)?;
                    fd = unsafe { libc::openat(pfd.as_raw_fd(), cname.as_ptr(), flags, 0o600) };
                }
                if fd < 0 {
                    return Err(self.sys(&path, "creating", last_err()));
                }
                let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
                let mut left = e.size;
                while left > 0 {
                    let n = tr
                        .read_data(&mut self.buf)
                        .map_err(|err| self.bad(&path, format!("reading data: {err}")))?;
                    f.write_all(&self.buf[..n])
                        .map_err(|err| self.sys(&path, "writing", err))?;
                    left -= n as u64;
                }
                self.stats.bytes += e.size;
                // created by O_EXCL just now: its owner is ours
                let chown = self.needs_chown(&e, &path, ours)?;
                self.meta_fd(f.as_fd(), &e, &path, &xattrs, true, chown)?;
            }
            Kind::HardLink => {
                let target = normalize(&e.link)
                    .map_err(|r| self.bad(&path, format!("hardlink target: {r}")))?;
                if target.is_empty() {
                    return Err(self.bad(&path, "hardlink to the root"));
                }
                let (tp, tn) = split_parent(&target);
                let tpfd =
                    fsutil::open_in_root(self.root.as_fd(), tp, libc::O_PATH | libc::O_DIRECTORY)
                        .map_err(|err| {
                        self.bad(
                            &path,
                            format!(
                                "hardlink target {}: {err}",
                                String::from_utf8_lossy(&target)
                            ),
                        )
                    })?;
                let ctn = cstr(tn).map_err(|_| self.bad(&path, "bad name"))?;
                let (pfd, _) = self.parent(&parent, &path)?;
                let link = || unsafe {
                    libc::linkat(
                        tpfd.as_raw_fd(),
                        ctn.as_ptr(),
                        pfd.as_raw_fd(),
                        cname.as_ptr(),
                        0,
                    )
                };
                let mut r = link();
                if r < 0 && errno_is(&last_err(), libc::EEXIST) {
                    self.remove_existing(pfd.as_fd(), &cname, &path)?;
                    r = link();
                }
                if r < 0 {
                    let err = last_err();
                    return Err(self.bad(
                        &path,
                        format!("hardlink to {}: {err}", String::from_utf8_lossy(&target)),
                    ));
                }
            }
            Kind::Symlink => {
                let target = cstr(&e.link).map_err(|_| self.bad(&path, "bad symlink target"))?;
                let (pfd, ours) = self.parent(&parent, &path)?;
                let mk =
                    || unsafe { libc::symlinkat(target.as_ptr(), pfd.as_raw_fd(), cname.as_ptr()) };
                let mut r = mk();
                if r < 0 && errno_is(&last_err(), libc::EEXIST) {
                    self.remove_existing(pfd.as_fd(), &cname, &path)?;
                    r = mk();
                }
                if r < 0 {
                    return Err(self.sys(&path, "symlink", last_err()));
                }
                self.cache = None;
                let chown = self.needs_chown(&e, &path, ours)?;
                self.meta_at(pfd.as_fd(), &cname, &e, &path, false, chown)?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let fmt = match e.kind {
                    Kind::Char => libc::S_IFCHR,
                    Kind::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                if fmt != libc::S_IFIFO && !self.opts.devices {
                    return Ok(());
                }
                let dev = libc::makedev(e.devmajor, e.devminor);
                let (pfd, ours) = self.parent(&parent, &path)?;
                let mk =
                    || unsafe { libc::mknodat(pfd.as_raw_fd(), cname.as_ptr(), fmt | 0o600, dev) };
                let mut r = mk();
                if r < 0 && errno_is(&last_err(), libc::EEXIST) {
                    self.remove_existing(pfd.as_fd(), &cname, &path)?;
                    r = mk();
                }
                if r < 0 {
                    return Err(self.sys(&path, "mknod", last_err()));
                }
                let chown = self.needs_chown(&e, &path, ours)?;
                self.meta_at(pfd.as_fd(), &cname, &e, &path, true, chown)?;
            }
        }
        Ok(())
    }

    /// Metadata by name for things we can't open (symlinks, device nodes).
    #[allow(clippy::too_many_arguments)]
    fn meta_at(
        &self,
        dir: BorrowedFd,
        name: &CString,
        e: &tar::Entry,
        path: &[u8],
        chmod: bool,
        chown: bool,
    ) -> Result<()> {
        let d = dir.as_raw_fd();
        if chown {
            let (u, g) = self.ids(e, path)?;
            if unsafe { libc::fchownat(d, name.as_ptr(), u, g, libc::AT_SYMLINK_NOFOLLOW) } < 0 {
                return Err(self.chown_err(path, e, last_err()));
            }
        }
        if chmod && unsafe { libc::fchmodat(d, name.as_ptr(), e.mode as libc::mode_t, 0) } < 0 {
            return Err(self.sys(path, "chmod", last_err()));
        }
        let ts = [timespec(e), timespec(e)];
        if unsafe { libc::utimensat(d, name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) } < 0
        {
            return Err(self.sys(path, "setting mtime of", last_err()));
        }
        Ok(())
    }

    fn whiteout(&mut self, parent: &[u8], target: &[u8], path: &[u8]) -> Result<()> {
        let opaque = target == b".wh..opq";
        if !opaque && target.starts_with(b".wh.") {
            return Ok(()); // other AUFS metadata (.wh..wh.plnk etc): ignore
        }
        if !opaque && (target.is_empty() || target == b"." || target == b"..") {
            return Err(self.bad(path, "whiteout of an invalid name"));
        }
        let (pfd, _) = self.parent(parent, path)?;
        match self.opts.whiteouts {
            WhiteoutMode::Overlay { xattr_prefix } => {
                if opaque {
                    let dfd = fsutil::open_in_root(
                        self.root.as_fd(),
                        parent,
                        libc::O_RDONLY | libc::O_DIRECTORY,
                    )
                    .map_err(|e| self.sys(path, "opening", e))?;
                    let k = cstr(format!("{xattr_prefix}overlay.opaque").as_bytes()).unwrap();
                    if unsafe {
                        libc::fsetxattr(dfd.as_raw_fd(), k.as_ptr(), b"y".as_ptr().cast(), 1, 0)
                    } < 0
                    {
                        return Err(self.sys(path, "marking opaque", last_err()));
                    }
                } else {
                    let ct = cstr(target).map_err(|_| self.bad(path, "bad name"))?;
                    match fsutil::stat_at(pfd.as_fd(), &ct) {
                        // same-layer content wins over the layer's own whiteout
                        Ok(_) => return Ok(()),
                        Err(e) if errno_is(&e, libc::ENOENT) => {}
                        Err(e) => return Err(self.sys(path, "stat", e)),
                    }
                    if unsafe { libc::mknodat(pfd.as_raw_fd(), ct.as_ptr(), libc::S_IFCHR, 0) } < 0
                    {
                        return Err(self.sys(path, "creating whiteout", last_err()));
                    }
                }
            }
            WhiteoutMode::Apply => {
                let mut prefix = parent.to_vec();
                if !prefix.is_empty() {
                    prefix.push(b'/');
                }
                let mut removed = false;
                if opaque {
                    let dfd = fsutil::open_in_root(
                        self.root.as_fd(),
                        parent,
                        libc::O_RDONLY | libc::O_DIRECTORY,
                    )
                    .map_err(|e| self.sys(path, "opening", e))?;
                    for n in
                        fsutil::list_dir(dfd.as_fd()).map_err(|e| self.sys(path, "listing", e))?
                    {
                        let mut full = prefix.clone();
                        full.extend_from_slice(n.to_bytes());
                        if !self.created.contains(&full) {
                            fsutil::remove_all_at(dfd.as_fd(), &n)
                                .map_err(|e| self.sys(path, "removing", e))?;
                            removed = true;
                        }
                    }
                } else {
                    let mut full = prefix;
                    full.extend_from_slice(target);
                    if !self.created.contains(&full) {
                        let ct = cstr(target).map_err(|_| self.bad(path, "bad name"))?;
                        fsutil::remove_all_at(pfd.as_fd(), &ct)
                            .map_err(|e| self.sys(path, "removing", e))?;
                        removed = true;
                    }
                }
                if removed {
                    self.cache = None;
                }
            }
        }
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<()> {
        for (path, mtime, nsec) in std::mem::take(&mut self.dirs).into_iter().rev() {
            let fd = match fsutil::open_in_root(
                self.root.as_fd(),
                &path,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            ) {
                Ok(fd) => fd,
                Err(_) => continue, // replaced or removed later in the layer
            };
            let ts = libc::timespec {
                tv_sec: mtime as libc::time_t,
                tv_nsec: nsec as _,
            };
            let ts = [ts, ts];
            if unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) } < 0 {
                return Err(self.sys(&path, "setting mtime of", last_err()));
            }
        }
        Ok(())
    }
}

fn timespec(e: &tar::Entry) -> libc::timespec {
    libc::timespec {
        tv_sec: e.mtime as libc::time_t,
        tv_nsec: e.mtime_nsec as _,
    }
}

/// Apply the tar stream `r` to the directory `root`. Reads the stream to its end (so a
/// hashing reader underneath sees every byte).
pub fn unpack(
    r: &mut dyn Read,
    root: &Path,
    opts: &UnpackOptions,
    layer: &str,
) -> Result<UnpackStats> {
    let rootfd = fsutil::open_dir(root).map_err(|e| Error::io("opening layer dir", root, e))?;
    let mut u = Unpacker {
        root: rootfd,
        opts,
        layer,
        cache: None,
        owner: opts
            .chown
            .then(|| unsafe { (libc::geteuid(), libc::getegid()) }),
        dirs: Vec::new(),
        created: HashSet::new(),
        buf: vec![0u8; 256 << 10],
        stats: UnpackStats::default(),
    };
    let mut tr = tar::Reader::new(r);
    loop {
        let e = match tr.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(err) => {
                return Err(Error::BadLayer {
                    layer: layer.to_string(),
                    entry: String::new(),
                    reason: err.to_string(),
                })
            }
        };
        u.entry(&mut tr, e)?;
    }
    u.finish_dirs()?;
    tr.drain().map_err(|e| Error::BadLayer {
        layer: layer.to_string(),
        entry: String::new(),
        reason: format!("reading after end of archive: {e}"),
    })?;
    Ok(u.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(normalize(b"/etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(normalize(b"./").unwrap(), b"");
        assert!(normalize(b"a/../../b").is_err());
        assert!(normalize(b"..").is_err());
    }
}
