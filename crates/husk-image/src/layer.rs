//! New layers: a directory of changes — an overlay upper dir, a container's or a build
//! step's — written as an OCI layer tar, compressed, digested and committed to the store.
//!
//! # The layer format (what [`write_tar`] produces)
//!
//! * Entries in byte order of their paths, depth first, a directory before what it holds;
//!   paths relative (`etc/`, `etc/passwd`), directories with a trailing `/`; the upper dir
//!   itself has no entry.
//! * Deletions: an overlay whiteout (a 0:0 character device — overlayfs links them all to
//!   one inode, so their link count means nothing — or, as overlayfs also accepts, an empty
//!   file with the `overlay.whiteout` xattr) becomes an empty file `DIR/.wh.NAME`. An
//!   opaque directory (`overlay.opaque` = `y`) is the directory followed by
//!   `DIR/.wh..wh..opq`. The overlay xattr namespace is `trusted.` for host root and
//!   `user.` in a rootless user namespace (overlay mounted with `userxattr`), as
//!   [`crate::unpack::UnpackOptions::overlay`] writes them.
//! * Hard links: the second and later names of an inode are hardlink entries to the first
//!   name in entry order (so the same tree always gives the same entries).
//! * Metadata: uid, gid, permission bits (incl. setuid/setgid/sticky), mtime in whole
//!   seconds; xattrs `security.capability` (file capabilities) and `user.*` as PAX
//!   `SCHILY.xattr.*` records, sorted — what the unpacker keeps. Other overlay xattrs
//!   (`origin`, `impure`…) are overlay's bookkeeping and left out; a `redirect` or
//!   `metacopy` one means the upper dir does not hold the whole content (overlay mounted
//!   with redirect_dir or metacopy), which is refused rather than written wrong.
//!   No user or group names, no atime/ctime: nothing that depends on the machine.
//! * Sockets are left out (a tar cannot hold them), and so are the `skip` paths (the mount
//!   points a runtime makes in every container: see `husk_engine::commit`).
//! * Reproducible: with [`LayerOptions::timestamp`] (SOURCE_DATE_EPOCH) every mtime later
//!   than it is clamped to it; the gzip header carries no time and no name (OS "unknown"),
//!   zstd frames are written single-threaded at a fixed level. The same tree and timestamp
//!   give the same bytes, hence the same digest and diff_id.
//!
//! The upper dir is walked by directory fds (`openat` with `O_NOFOLLOW`), never by path, so
//! a symlink planted by a running container cannot make the walk leave the upper dir.

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::manifest::Compression;
use crate::store::Store;
use crate::tar::{self, Header, Kind};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc::SyncSender;

pub const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The diff_id of a layer with no entries (two zero blocks).
pub fn empty_diff_id() -> Digest {
    Digest::of(&[0u8; tar::BLOCK * 2])
}

/// How a layer is written.
#[derive(Clone, Debug)]
pub struct LayerOptions {
    /// Gzip (the default: what every client reads), zstd, or none.
    pub compression: Compression,
    /// The compressor's level (gzip 1–9, zstd 1–19); None: gzip 6, zstd 3. gzip 1 is about
    /// twice as fast as 6 for some 15% more bytes (zlib on this machine: 64 MB of tar in
    /// 3.7 s and 20.6 MB vs 8.0 s and 17.9 MB). The same level gives the same bytes.
    pub level: Option<u32>,
    /// Seconds since the epoch: mtimes later than this are clamped to it (SOURCE_DATE_EPOCH).
    pub timestamp: Option<i64>,
    /// Paths (relative, `etc/hosts`) left out together with everything below them.
    pub skip: Vec<Vec<u8>>,
    /// The namespace of overlay's xattrs in the upper dir: `trusted.` (host root) or
    /// `user.` (rootless, overlay with `userxattr`).
    pub overlay_xattr_prefix: &'static str,
    /// [`store_layer`] also unpacks the tar stream into the store's tmp/
    /// ([`NewLayer::unpacked`]), for [`adopt_unpacked`] (what `commit_image` does). Off
    /// for a caller that makes the layer dir otherwise (a build moves its upper dir).
    pub unpack: bool,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            compression: Compression::Gzip,
            level: None,
            timestamp: None,
            skip: Vec::new(),
            overlay_xattr_prefix: overlay_xattr_prefix(),
            unpack: false,
        }
    }
}

/// The namespace of overlay's xattrs in this process's upper dirs: `trusted.` for host
/// root, `user.` in a rootless user namespace (as [`crate::unpack::UnpackOptions::overlay`]).
pub fn overlay_xattr_prefix() -> &'static str {
    if fsutil::is_root() {
        "trusted."
    } else {
        "user."
    }
}

/// A layer blob written to the store: its descriptor fields and its diff_id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLayer {
    /// Digest of the compressed blob (the manifest's layer digest).
    pub digest: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    pub media_type: String,
    /// Entries in the tar (0: the directory had no changes; [`store_layer`] then stores no
    /// blob, and an image gets no layer for it, only an `empty_layer` history entry).
    pub entries: u64,
    /// The layer already unpacked (by [`store_layer`], from the same tar stream) in the
    /// store's tmp/, waiting for [`adopt_unpacked`] to move it into `layers/` under its
    /// chain id; gone or `None`: it is unpacked from the blob instead.
    pub unpacked: Option<Unpacked>,
}

/// A layer unpacked into a directory of the store's tmp/ (holding `diff/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked {
    pub dir: std::path::PathBuf,
    pub bytes: u64,
    pub entries: u64,
}

impl NewLayer {
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

/// What the walk of an upper dir found at one path.
#[derive(Debug)]
pub enum UpperKind {
    /// Deleted from the layers below (an overlay whiteout).
    Whiteout,
    /// A directory; `opaque`: it hides everything the layers below have at its path.
    Dir { opaque: bool },
    /// Anything else: file, symlink, device, fifo, socket.
    Other,
}

/// One entry of an upper dir, as [`walk_upper`] hands it out.
pub struct UpperEntry<'a> {
    /// Relative path (`etc/passwd`), bytes as on disk.
    pub path: &'a [u8],
    pub kind: UpperKind,
    pub stat: &'a libc::stat,
    /// The xattrs a layer keeps (`security.capability`, `user.*`), sorted by name.
    pub xattrs: &'a [(String, Vec<u8>)],
    /// The entry's directory (open, O_RDONLY) and its name there.
    pub dir: BorrowedFd<'a>,
    pub name: &'a CStr,
}

/// Walk `upper` depth first in byte order of names, calling `visit` for every entry except
/// those in `skip` (and what is below them). Whiteouts and opaque directories are reported
/// as such, overlay's own xattrs are left out.
pub fn walk_upper(
    upper: &Path,
    skip: &[Vec<u8>],
    overlay_xattr_prefix: &str,
    visit: &mut dyn FnMut(&UpperEntry) -> Result<()>,
) -> Result<()> {
    let fd = fsutil::open_dir(upper).ctx("opening", upper)?;
    let w = Walker {
        upper,
        skip,
        prefix: overlay_xattr_prefix,
    };
    w.dir(fd.as_fd(), b"", visit)
}

struct Walker<'a> {
    upper: &'a Path,
    skip: &'a [Vec<u8>],
    prefix: &'a str,
}

impl Walker<'_> {
    fn err(&self, op: &'static str, rel: &[u8], e: io::Error) -> Error {
        let rel = String::from_utf8_lossy(rel).into_owned();
        Error::io(op, self.upper.join(rel), e)
    }

    fn dir(
        &self,
        dir: BorrowedFd,
        rel: &[u8],
        visit: &mut dyn FnMut(&UpperEntry) -> Result<()>,
    ) -> Result<()> {
        let mut names = fsutil::list_dir(dir).map_err(|e| self.err("listing", rel, e))?;
        names.sort();
        for name in names {
            let path = if rel.is_empty() {
                name.to_bytes().to_vec()
            } else {
                [rel, b"/", name.to_bytes()].concat()
            };
            if self.skip.contains(&path) {
                continue;
            }
            let st = fsutil::stat_at(dir, &name).map_err(|e| self.err("reading", &path, e))?;
            let fmt = st.st_mode & libc::S_IFMT;
            // Regular files and directories are opened for their xattrs (and data); the
            // others can hold neither user.* xattrs nor overlay's markers.
            let fd = match fmt {
                libc::S_IFDIR => Some(open_at(dir, &name, libc::O_DIRECTORY)),
                libc::S_IFREG => Some(open_at(dir, &name, 0)),
                _ => None,
            }
            .transpose()
            .map_err(|e| self.err("opening", &path, e))?;
            let all = match &fd {
                Some(fd) => {
                    read_xattrs(fd.as_fd()).map_err(|e| self.err("reading xattrs of", &path, e))?
                }
                None => Vec::new(),
            };
            let mut xattrs = Vec::new();
            let (mut opaque, mut xwhiteout) = (false, false);
            for (k, v) in all {
                if let Some(o) = k
                    .strip_prefix(self.prefix)
                    .and_then(|k| k.strip_prefix("overlay."))
                {
                    match o {
                        "opaque" => opaque = v == b"y",
                        "whiteout" => xwhiteout = true,
                        "redirect" | "metacopy" => {
                            return Err(Error::invalid(
                                format!("upper dir entry {}", self.upper.join(String::from_utf8_lossy(&path).as_ref()).display()),
                                format!("has overlay's {o} xattr: the overlay was mounted with redirect_dir or metacopy, so the upper dir does not hold the whole change"),
                            ))
                        }
                        _ => {}
                    }
                    continue;
                }
                if k == "security.capability"
                    || (k.starts_with("user.") && !k.starts_with("user.overlay."))
                {
                    xattrs.push((k, v));
                }
            }
            let kind = if (fmt == libc::S_IFCHR && st.st_rdev == 0)
                || (fmt == libc::S_IFREG && xwhiteout && st.st_size == 0)
            {
                UpperKind::Whiteout
            } else if fmt == libc::S_IFDIR {
                UpperKind::Dir { opaque }
            } else {
                UpperKind::Other
            };
            let is_dir = matches!(kind, UpperKind::Dir { .. });
            visit(&UpperEntry {
                path: &path,
                kind,
                stat: &st,
                xattrs: &xattrs,
                dir,
                name: &name,
            })?;
            if is_dir {
                let fd = fd.expect("opened above");
                self.dir(fd.as_fd(), &path, visit)?;
            }
        }
        Ok(())
    }
}

/// Whether the directory at `path` (a layer dir's, or an upper dir's) is opaque: it hides
/// what the layers below have at its path.
pub fn is_opaque_dir(path: &Path, overlay_xattr_prefix: &str) -> bool {
    let (Ok(p), Ok(k)) = (
        fsutil::cstr(path.as_os_str().as_encoded_bytes()),
        CString::new(format!("{overlay_xattr_prefix}overlay.opaque")),
    ) else {
        return false;
    };
    let mut v = [0u8; 2];
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
    n == 1 && v[0] == b'y'
}

fn open_at(dir: BorrowedFd, name: &CStr, extra: libc::c_int) -> io::Result<OwnedFd> {
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | extra,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Every xattr of an open file, sorted by name; none where the file system has none.
fn read_xattrs(fd: BorrowedFd) -> io::Result<Vec<(String, Vec<u8>)>> {
    let raw = fd.as_raw_fd();
    let names = grow(|buf| unsafe { libc::flistxattr(raw, buf.as_mut_ptr().cast(), buf.len()) });
    let names = match names {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for k in names.split(|&b| b == 0).filter(|k| !k.is_empty()) {
        let ck = CString::new(k).expect("split at NUL");
        let v = grow(|buf| unsafe {
            libc::fgetxattr(raw, ck.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        });
        match v {
            Ok(v) => out.push((String::from_utf8_lossy(k).into_owned(), v)),
            // gone meanwhile, or a namespace we may not read
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENODATA | libc::EPERM)) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Call `f` with a buffer until it fits (ERANGE: the value grew between size and read).
fn grow(f: impl Fn(&mut [u8]) -> isize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = f(&mut buf);
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) || buf.len() >= 1 << 20 {
            return Err(e);
        }
        buf.resize(buf.len() * 4, 0);
    }
}

/// Counts of what a layer tar holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TarStats {
    pub entries: u64,
    pub whiteouts: u64,
    /// bytes of file data
    pub bytes: u64,
}

/// Write the changes in `upper` as an (uncompressed) layer tar to `w` (see the module
/// comment for the format).
pub fn write_tar(upper: &Path, w: &mut dyn Write, opts: &LayerOptions) -> Result<TarStats> {
    let mut tw = tar::Writer::new(w);
    let mut stats = TarStats::default();
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let clamp = |t: i64| -> u64 {
        let t = match opts.timestamp {
            Some(ts) => t.min(ts),
            None => t,
        };
        t.max(0) as u64
    };
    let werr = |path: &[u8], e: io::Error| {
        Error::io(
            "writing the layer entry for",
            upper.join(String::from_utf8_lossy(path).as_ref()),
            e,
        )
    };
    walk_upper(
        upper,
        &opts.skip,
        opts.overlay_xattr_prefix,
        &mut |e: &UpperEntry| {
            let st = e.stat;
            let mut h = Header::new(Kind::File, "");
            h.mode = st.st_mode & 0o7777;
            h.uid = st.st_uid.into();
            h.gid = st.st_gid.into();
            h.mtime = clamp(st.st_mtime);
            h.xattrs = e.xattrs.to_vec();
            match e.kind {
                UpperKind::Whiteout => {
                    let (parent, name) = match e.path.iter().rposition(|&b| b == b'/') {
                        Some(i) => (&e.path[..=i], &e.path[i + 1..]),
                        None => (&b""[..], e.path),
                    };
                    let mut wh = Header::new(Kind::File, "");
                    wh.path = [parent, b".wh.", name].concat();
                    wh.mtime = h.mtime;
                    tw.append(&wh, &mut io::empty())
                        .map_err(|err| werr(e.path, err))?;
                    stats.whiteouts += 1;
                    stats.entries += 1;
                    return Ok(());
                }
                UpperKind::Dir { opaque } => {
                    h.kind = Kind::Dir;
                    h.path = [e.path, b"/"].concat();
                    tw.append(&h, &mut io::empty())
                        .map_err(|err| werr(e.path, err))?;
                    stats.entries += 1;
                    if opaque {
                        let mut wh = Header::new(Kind::File, "");
                        wh.path = [e.path, b"/.wh..wh..opq"].concat();
                        wh.mtime = h.mtime;
                        tw.append(&wh, &mut io::empty())
                            .map_err(|err| werr(e.path, err))?;
                        stats.whiteouts += 1;
                        stats.entries += 1;
                    }
                    return Ok(());
                }
                UpperKind::Other => {}
            }
            h.path = e.path.to_vec();
            let fmt = st.st_mode & libc::S_IFMT;
            if fmt == libc::S_IFSOCK {
                return Ok(());
            }
            if fmt != libc::S_IFDIR && st.st_nlink > 1 {
                let key = (st.st_dev, st.st_ino);
                if let Some(first) = links.get(&key) {
                    h.kind = Kind::HardLink;
                    h.link = first.clone();
                    h.xattrs.clear();
                    tw.append(&h, &mut io::empty())
                        .map_err(|err| werr(e.path, err))?;
                    stats.entries += 1;
                    return Ok(());
                }
                links.insert(key, e.path.to_vec());
            }
            match fmt {
                libc::S_IFREG => {
                    let f = open_at(e.dir, e.name, 0).map_err(|err| werr(e.path, err))?;
                    let size = fsutil::fstat(f.as_fd())
                        .map_err(|err| werr(e.path, err))?
                        .st_size as u64;
                    h.size = size;
                    let mut f = std::fs::File::from(f).take(size);
                    tw.append(&h, &mut f).map_err(|err| werr(e.path, err))?;
                    stats.bytes += size;
                }
                libc::S_IFLNK => {
                    h.kind = Kind::Symlink;
                    h.link = read_link_at(e.dir, e.name).map_err(|err| werr(e.path, err))?;
                    h.xattrs.clear();
                    tw.append(&h, &mut io::empty())
                        .map_err(|err| werr(e.path, err))?;
                }
                libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                    h.kind = match fmt {
                        libc::S_IFCHR => Kind::Char,
                        libc::S_IFBLK => Kind::Block,
                        _ => Kind::Fifo,
                    };
                    if fmt != libc::S_IFIFO {
                        h.devmajor = libc::major(st.st_rdev);
                        h.devminor = libc::minor(st.st_rdev);
                    }
                    tw.append(&h, &mut io::empty())
                        .map_err(|err| werr(e.path, err))?;
                }
                _ => return Ok(()),
            }
            stats.entries += 1;
            Ok(())
        },
    )?;
    tw.finish()
        .map_err(|e| Error::io("writing the layer of", upper, e))?;
    Ok(stats)
}

fn read_link_at(dir: BorrowedFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
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
    Ok(buf)
}

/// The compressor of a layer blob, writing into `w`.
enum Compressor<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    fn new(c: Compression, level: Option<u32>, w: W) -> io::Result<Self> {
        Ok(match c {
            Compression::None => Compressor::None(w),
            // No mtime, no file name, OS "unknown": a header that depends on nothing.
            Compression::Gzip => Compressor::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(w, flate2::Compression::new(level.unwrap_or(6).clamp(1, 9))),
            ),
            Compression::Zstd => Compressor::Zstd(zstd::stream::write::Encoder::new(
                w,
                level.unwrap_or(3).clamp(1, 19) as i32,
            )?),
        })
    }
    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(g) => g.flush(),
            Compressor::Zstd(z) => z.flush(),
        }
    }
}

pub fn media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => MT_LAYER_TAR,
        Compression::Gzip => MT_LAYER_GZIP,
        Compression::Zstd => MT_LAYER_ZSTD,
    }
}

/// Write the layer of `upper` (see [`write_tar`]) compressed to `w`; the digests of the
/// compressed stream and of the tar are computed on the way.
pub fn write_layer(upper: &Path, w: &mut dyn Write, opts: &LayerOptions) -> Result<NewLayer> {
    write_layer_teed(upper, w, opts, None)
}

/// [`write_layer`], also sending the uncompressed tar stream in chunks to `tee`.
fn write_layer_teed(
    upper: &Path,
    w: &mut dyn Write,
    opts: &LayerOptions,
    tee: Option<SyncSender<io::Result<Vec<u8>>>>,
) -> Result<NewLayer> {
    let io_err = |e: io::Error| Error::io("writing the layer of", upper, e);
    let outer = HashingWriter::new(w);
    let comp = Compressor::new(opts.compression, opts.level, outer).map_err(io_err)?;
    let buf = io::BufWriter::with_capacity(256 << 10, comp);
    let mut inner = HashingWriter::new(TarTee {
        inner: buf,
        tx: tee,
        pending: Vec::new(),
    });
    let stats = write_tar(upper, &mut inner, opts)?;
    let (diff_id, _, mut tee) = inner.finish();
    tee.send_pending();
    let comp = tee.inner.into_inner().map_err(|e| io_err(e.into_error()))?;
    let mut outer = comp.finish().map_err(io_err)?;
    outer.flush().map_err(io_err)?;
    let (digest, size, _) = outer.finish();
    Ok(NewLayer {
        digest,
        size,
        diff_id,
        media_type: media_type(opts.compression).to_string(),
        entries: stats.entries,
        unpacked: None,
    })
}

/// Passes the tar stream on to the compressor, and copies of it in 256 KiB chunks to a
/// channel (the unpacker of [`store_layer`]); a closed channel (the unpacker stopped) is
/// no error here.
struct TarTee<W: Write> {
    inner: W,
    tx: Option<SyncSender<io::Result<Vec<u8>>>>,
    pending: Vec<u8>,
}

impl<W: Write> TarTee<W> {
    fn send_pending(&mut self) {
        if let Some(tx) = &self.tx {
            if tx.send(Ok(std::mem::take(&mut self.pending))).is_err() {
                self.tx = None;
            }
        }
    }
}

impl<W: Write> Write for TarTee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if self.tx.is_some() {
            self.pending.extend_from_slice(&buf[..n]);
            if self.pending.len() >= 256 << 10 {
                self.send_pending();
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Write the layer of `upper` into the store as a blob (by one rename once complete; a
/// failure or kill leaves at most files in the store's tmp/). A directory without changes
/// gives an empty [`NewLayer`] and no blob.
///
/// With [`LayerOptions::unpack`], the same tar stream is unpacked meanwhile, on a second
/// thread, into a directory of the store's tmp/ ([`NewLayer::unpacked`]): the layer dir an
/// image needs then costs no second pass over the data (reading and decompressing the
/// blob), and its file writes overlap the compression. Measured (release build, 64 MB of
/// Perl and Python libraries, 4940 entries, this 2-core VM at load 10–15): the same CPU
/// time either way (3–5 s), wall times too noisy to rank (7–24 s both ways): I/O waits on
/// the shared disk dominate. Kept for the overlap, which can only help on an idle machine.
/// The blob and the unpacked dir are not yet used by any image: a garbage collection
/// (`image prune`) would remove them. Callers that make several layers before an image
/// uses them hold `store.gc_lock(false)` across.
pub fn store_layer(store: &Store, upper: &Path, opts: &LayerOptions) -> Result<NewLayer> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let _gc = store.gc_lock(false)?;
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = format!("layer-{}-{n}", std::process::id());
    let tmp = store.tmp_dir().join(format!("{base}.tmp"));
    let staged = store.tmp_dir().join(format!("{base}.unpacked"));
    let res = match opts.unpack {
        true => store_layer_inner(store, upper, opts, &tmp, &staged),
        false => store_blob(store, upper, opts, &tmp),
    };
    if res.as_ref().map_or(true, |l| l.unpacked.is_none()) {
        let _ = fsutil::remove_tree(&staged);
    }
    let _ = std::fs::remove_file(&tmp);
    res
}

/// The blob alone.
fn store_blob(store: &Store, upper: &Path, opts: &LayerOptions, tmp: &Path) -> Result<NewLayer> {
    let f = std::fs::File::create(tmp).ctx("creating", tmp)?;
    let mut bw = io::BufWriter::with_capacity(256 << 10, f);
    let l = write_layer(upper, &mut bw, opts)?;
    bw.into_inner()
        .map_err(|e| Error::io("writing", tmp, e.into_error()))?;
    if !l.is_empty() && !store.has_blob(&l.digest) {
        store.commit_blob_file(tmp, &l.digest)?;
    }
    Ok(l)
}

fn store_layer_inner(
    store: &Store,
    upper: &Path,
    opts: &LayerOptions,
    tmp: &Path,
    staged: &Path,
) -> Result<NewLayer> {
    let diff = staged.join("diff");
    std::fs::create_dir_all(&diff).ctx("creating", &diff)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
    std::thread::scope(|s| {
        let unpacker = s.spawn(move || {
            let mut r = crate::pull::ChunkReader::new(rx);
            let uopts = crate::unpack::UnpackOptions::overlay();
            crate::unpack::unpack(&mut r, &diff, &uopts, "new layer")
        });
        let written = (|| {
            let f = std::fs::File::create(tmp).ctx("creating", tmp)?;
            let mut bw = io::BufWriter::with_capacity(256 << 10, f);
            // (tx is dropped on return: the unpacker sees the end of the stream)
            let l = write_layer_teed(upper, &mut bw, opts, Some(tx))?;
            bw.into_inner()
                .map_err(|e| Error::io("writing", tmp, e.into_error()))?;
            Ok::<_, Error>(l)
        })();
        let unpacked = unpacker.join().expect("unpacker thread panicked");
        let mut l = written?;
        if l.is_empty() {
            return Ok(l);
        }
        if store.has_blob(&l.digest) {
            let _ = std::fs::remove_file(tmp);
        } else {
            store.commit_blob_file(tmp, &l.digest)?;
        }
        // An unpack that failed here is left to the blob's (which reports it in full).
        l.unpacked = unpacked.ok().map(|st| Unpacked {
            dir: staged.to_path_buf(),
            bytes: st.bytes,
            entries: st.entries,
        });
        Ok(l)
    })
}

/// Remove the directory [`store_layer`] unpacked the layer into (no image will use it).
pub fn discard_unpacked(l: &NewLayer) {
    if let Some(u) = &l.unpacked {
        let _ = fsutil::remove_tree(&u.dir);
    }
}

/// Move a layer [`store_layer`] unpacked into `layers/` under `chain` (the layer's chain
/// id on the image that uses it). False when there is nothing to move (already there,
/// or the unpacked dir is gone): the layer is then unpacked from its blob as on a pull.
pub fn adopt_unpacked(store: &Store, l: &NewLayer, chain: &Digest) -> Result<bool> {
    let Some(u) = &l.unpacked else {
        return Ok(false);
    };
    let _chain_lock = store.tmp_lock(&format!("layer-{}", chain.hex()))?;
    if !u.dir.join("diff").is_dir() {
        return Ok(false);
    }
    if store.has_layer(chain) {
        discard_unpacked(l);
        return Ok(false);
    }
    store.commit_layer(
        &u.dir,
        &crate::store::LayerMeta {
            chain_id: chain.clone(),
            diff_id: l.diff_id.clone(),
            digest: l.digest.clone(),
            unpacked_size: u.bytes,
            entries: u.entries,
        },
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("husk-layer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn entries(data: &[u8]) -> Vec<(Kind, String, String, u64)> {
        let mut r = tar::Reader::new(data);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            out.push((
                e.kind,
                String::from_utf8(e.path).unwrap(),
                String::from_utf8(e.link).unwrap(),
                e.mtime as u64,
            ));
        }
        out
    }

    #[test]
    fn sorted_entries_hardlinks_and_clamped_mtimes() {
        let d = tmpdir("tar");
        std::fs::create_dir_all(d.join("b/c")).unwrap();
        std::fs::write(d.join("b/c/f"), b"data").unwrap();
        std::fs::hard_link(d.join("b/c/f"), d.join("a")).unwrap();
        std::os::unix::fs::symlink("/x", d.join("b/s")).unwrap();
        std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
        let opts = LayerOptions {
            timestamp: Some(1000),
            skip: vec![b"b/c/skipped".to_vec()],
            ..Default::default()
        };
        std::fs::write(d.join("b/c/skipped"), b"").unwrap();
        let mut out = Vec::new();
        let st = write_tar(&d, &mut out, &opts).unwrap();
        let got = entries(&out);
        let names: Vec<_> = got
            .iter()
            .map(|e| (e.0, e.1.as_str(), e.2.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (Kind::File, "a", ""),
                (Kind::Dir, "b/", ""),
                (Kind::Dir, "b/c/", ""),
                (Kind::HardLink, "b/c/f", "a"),
                (Kind::Symlink, "b/s", "/x"),
            ]
        );
        assert!(got.iter().all(|e| e.3 == 1000), "{got:?}");
        assert_eq!(st.entries, 5);
        // Same tree, same bytes.
        let mut again = Vec::new();
        write_tar(&d, &mut again, &opts).unwrap();
        assert_eq!(out, again);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn gzip_and_zstd_layers_are_reproducible() {
        let d = tmpdir("comp");
        std::fs::write(d.join("f"), vec![7u8; 100_000]).unwrap();
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let opts = LayerOptions {
                compression: c,
                timestamp: Some(0),
                ..Default::default()
            };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let la = write_layer(&d, &mut a, &opts).unwrap();
            let lb = write_layer(&d, &mut b, &opts).unwrap();
            assert_eq!(la, lb);
            assert_eq!(a, b);
            assert_eq!(la.digest, Digest::of(&a));
            assert_eq!(la.size, a.len() as u64);
            let mut plain = Vec::new();
            crate::pull::decompressing_reader(io::BufReader::new(io::Cursor::new(a)))
                .unwrap()
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(la.diff_id, Digest::of(&plain));
            assert_eq!(la.media_type, media_type(c));
            // Another level: other bytes, the same tar.
            let fast = LayerOptions {
                level: Some(1),
                ..opts.clone()
            };
            let l1 = write_layer(&d, &mut Vec::new(), &fast).unwrap();
            assert_eq!(l1.diff_id, la.diff_id);
            assert_eq!(l1.digest == la.digest, c == Compression::None);
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Overlay's markers, as the kernel writes them in an upper dir (root: mknod 0:0 and
    /// trusted.* xattrs), become whiteout entries; overlay bookkeeping xattrs are dropped,
    /// capabilities and user xattrs kept.
    #[test]
    fn whiteouts_opaque_dirs_and_xattrs() {
        assert!(
            fsutil::is_root(),
            "this test needs root (mknod, trusted xattrs)"
        );
        let d = tmpdir("wh");
        let set = |p: &Path, k: &str, v: &[u8]| {
            let c = fsutil::cstr(p.as_os_str().as_encoded_bytes()).unwrap();
            let k = CString::new(k).unwrap();
            let r =
                unsafe { libc::lsetxattr(c.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
            assert_eq!(r, 0, "{}: {}", p.display(), io::Error::last_os_error());
        };
        std::fs::create_dir(d.join("o")).unwrap();
        set(&d.join("o"), "trusted.overlay.opaque", b"y");
        set(&d.join("o"), "trusted.overlay.origin", b"x");
        std::fs::write(d.join("o/new"), b"").unwrap();
        let gone = fsutil::cstr(d.join("gone").as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mknod(gone.as_ptr(), libc::S_IFCHR, 0) }, 0);
        std::fs::write(d.join("xgone"), b"").unwrap();
        set(&d.join("xgone"), "trusted.overlay.whiteout", b"");
        std::fs::write(d.join("ping"), b"\x7fELF").unwrap();
        let cap = [
            0u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        set(&d.join("ping"), "security.capability", &cap);
        set(&d.join("ping"), "user.note", b"hi");
        let mut out = Vec::new();
        write_tar(&d, &mut out, &LayerOptions::default()).unwrap();
        let mut r = tar::Reader::new(&out[..]);
        let mut got = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            got.push((String::from_utf8(e.path).unwrap(), e.xattrs));
        }
        let caps = vec![
            (b"security.capability".to_vec(), cap.to_vec()),
            (b"user.note".to_vec(), b"hi".to_vec()),
        ];
        assert_eq!(
            got,
            [
                (".wh.gone".to_string(), vec![]),
                ("o/".into(), vec![]),
                ("o/.wh..wh..opq".into(), vec![]),
                ("o/new".into(), vec![]),
                ("ping".into(), caps),
                (".wh.xgone".into(), vec![]),
            ]
        );
        // A redirected dir (overlay with redirect_dir) does not hold its content: refused.
        std::fs::create_dir(d.join("moved")).unwrap();
        set(&d.join("moved"), "trusted.overlay.redirect", b"/old");
        let err = write_tar(&d, &mut Vec::new(), &LayerOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("overlay's redirect xattr"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    /// The blob alone leaves nothing in tmp/; unpacked, the dir goes under the chain id, or
    /// away when the layer is already there.
    #[test]
    fn stored_layers_and_their_unpacked_dirs() {
        let src = tmpdir("store-src");
        std::fs::write(src.join("f"), b"content").unwrap();
        let root = tmpdir("store-root");
        let store = Store::open(&root).unwrap();
        let in_tmp = || -> Vec<String> {
            std::fs::read_dir(store.tmp_dir())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".lock"))
                .collect()
        };
        let l = store_layer(&store, &src, &LayerOptions::default()).unwrap();
        assert!(store.has_blob(&l.digest) && l.unpacked.is_none());
        assert_eq!(in_tmp(), Vec::<String>::new());

        let unpack = LayerOptions {
            unpack: true,
            ..Default::default()
        };
        let l = store_layer(&store, &src, &unpack).unwrap();
        let chain = l.diff_id.clone(); // a layer on nothing: its chain id is its diff_id
        assert!(adopt_unpacked(&store, &l, &chain).unwrap());
        assert!(store.has_layer(&chain));
        assert_eq!(
            std::fs::read(store.layer_dir(&chain).join("f")).unwrap(),
            b"content"
        );
        assert_eq!(in_tmp(), Vec::<String>::new());

        let again = store_layer(&store, &src, &unpack).unwrap();
        assert!(!adopt_unpacked(&store, &again, &chain).unwrap());
        assert_eq!(in_tmp(), Vec::<String>::new());
        let _ = std::fs::remove_dir_all(&src);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn an_empty_dir_is_an_empty_layer() {
        let d = tmpdir("empty");
        let mut out = Vec::new();
        let l = write_layer(
            &d,
            &mut out,
            &LayerOptions {
                compression: Compression::None,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(l.is_empty());
        assert_eq!(l.diff_id, empty_diff_id());
        let _ = std::fs::remove_dir_all(&d);
    }
}
