//! The container's root filesystem: an overlay of the image's layer dirs (read-only lowers,
//! top first) with a per-container upper and work dir, mounted in the engine's namespace.
//! Where overlay cannot be mounted (no overlayfs, a store on a file system overlay cannot
//! use as upper, a user namespace on an old kernel) — or with HUSK_ROOTFS=copy — the image's
//! layers are unpacked, flattened, into the container's own rootfs directory instead: slower
//! and bigger, but the same tree. The copy stays with the container, as an upper dir would.
//!
//! A container with a user namespace of its own (`--userns=auto`) sees the layers through
//! idmapped mounts: each layer dir is cloned (open_tree), given the container's id map
//! (mount_setattr MOUNT_ATTR_IDMAP) and used as an overlay lower, so a file owned by 0 in
//! the store is owned by the container's root — the map's first host id — without touching
//! the shared layers; the upper dir belongs to that id too, so what the container writes
//! is owned by it on the host. Where idmapped mounts are refused, the flattened copy is
//! made and its owners shifted instead.

use crate::os::{IoContext, IoError};
use crate::userns::IdMapping;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{}: NUL in path", .0.display())]
    Nul(PathBuf),
    #[error("the image has no layers")]
    NoLayers,
    #[error("an id-mapped overlay needs a user namespace to map the layers with")]
    NoIdmap,
    #[error("layer dir {0:?} cannot be an overlay lowerdir")]
    BadLowerdir(String),
    #[error("mounting the overlay rootfs at {}: {source}", path.display())]
    Mount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unmounting {}: {source}", path.display())]
    Unmount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("id-mapping layer {}: {op}: {source}", path.display())]
    Idmap {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("shifting the owners of {} to the container's ids: {source}", path.display())]
    Shift {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("copying the image's layers into {}: {source}", path.display())]
    Copy {
        path: PathBuf,
        #[source]
        source: husk_image::Error,
    },
}

pub struct Overlay {
    pub rootfs: PathBuf,
    mounted: bool,
}

fn cstr(p: &Path) -> Result<CString, RootfsError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| RootfsError::Nul(p.to_path_buf()))
}

/// Marks DIR/rootfs as a flattened copy (reused by `start`, never unmounted).
const COPY_MARK: &str = "rootfs.copy";

/// A container's own id map and a user namespace holding it (for the idmapped mounts).
/// Without one (rootless keep-id: the kernel lets only the host's root idmap a mount of
/// the host's file systems, where the user's store lies) the rootfs is a copy with shifted
/// owners from the start.
pub struct Idmapped<'a> {
    pub map: IdMapping,
    pub userns: Option<BorrowedFd<'a>>,
}

impl<'a> Idmapped<'a> {
    /// From what [`crate::userns::for_container`] returns.
    pub fn of(ns: &'a Option<(IdMapping, OwnedFd)>) -> Option<Idmapped<'a>> {
        use std::os::fd::AsFd;
        ns.as_ref().map(|(map, fd)| Idmapped {
            map: map.clone(),
            userns: Some(fd.as_fd()),
        })
    }
}

/// The rootfs of the container in DIR for image `rec`: the overlay, or the copy (`warn`
/// hears why overlay could not be used); with `idmap`, as its user namespace sees it.
/// `transient`: the container's writable layer is thrown away when it ends (`run --rm`),
/// so the overlay is mounted `volatile` (see [`mount`]).
pub fn prepare(
    dir: &Path,
    store: &husk_image::store::Store,
    rec: &husk_image::store::ImageRecord,
    idmap: Option<&Idmapped>,
    warn: &dyn Fn(&str),
    transient: bool,
) -> Result<Overlay, RootfsError> {
    let rootfs = dir.join("rootfs");
    let forced = std::env::var_os("HUSK_ROOTFS").is_some_and(|v| v == "copy")
        || idmap.is_some_and(|m| m.userns.is_none());
    if !forced && !dir.join(COPY_MARK).exists() {
        match mount(dir, &layer_dirs(store, rec), idmap, transient) {
            Ok(o) => return Ok(o),
            Err(e) if !overlay_unusable(&e) => return Err(e),
            Err(e) => warn(&format!(
                "{e}; using a flattened copy of the image's layers instead"
            )),
        }
    }
    if !dir.join(COPY_MARK).exists() {
        let _ = std::fs::remove_dir_all(&rootfs);
        husk_image::pull::flatten(store, rec, &rootfs).map_err(|source| RootfsError::Copy {
            path: rootfs.clone(),
            source,
        })?;
        if let Some(m) = idmap {
            shift_owners(&rootfs, &m.map)?;
        }
        std::fs::write(dir.join(COPY_MARK), b"").ctx("writing", dir.join(COPY_MARK))?;
    }
    Ok(Overlay {
        rootfs,
        mounted: false,
    })
}

/// The rootfs a stopped container already has, for a moment (`cp`, `export`): its
/// flattened copy, or its overlay (same layers, its own upper) mounted again — unmounted
/// when the returned [`Overlay`] is dropped. Never makes a new copy.
pub fn mount_existing(
    dir: &Path,
    store: &husk_image::store::Store,
    rec: &husk_image::store::ImageRecord,
    idmap: Option<&Idmapped>,
) -> Result<Overlay, RootfsError> {
    if dir.join(COPY_MARK).exists() {
        return Ok(Overlay {
            rootfs: dir.join("rootfs"),
            mounted: false,
        });
    }
    mount(dir, &layer_dirs(store, rec), idmap, false)
}

/// Errors of mount(2) that say overlay cannot work here, rather than that something is wrong.
fn overlay_unusable(e: &RootfsError) -> bool {
    let (RootfsError::Mount { source, .. } | RootfsError::Idmap { source, .. }) = e else {
        return false;
    };
    matches!(
        source.raw_os_error(),
        Some(libc::ENODEV | libc::EINVAL | libc::EPERM | libc::EOPNOTSUPP)
    )
}

/// Mount `lowers` (top first) at DIR/rootfs with DIR/upper and DIR/work; on failure the
/// message and mount(2)'s errno (also a build step's filesystem: build/work.rs). With
/// `idmap`, the lowers are idmapped clones attached under DIR/lower only until the overlay
/// holds them (it keeps private clones of its layers), and the upper dir is owned by the
/// container's root.
///
/// `volatile` (a writable layer nobody keeps: `run --rm`) mounts it with overlay's
/// `volatile` option: no sync of the upper dir's filesystem, ever. Without it, the last
/// unmount syncs that whole filesystem (ovl_sync_fs) — the store's disk, with whatever
/// else is being written there: 20 ms median and 58 ms p90 for the unmount on this busy
/// machine, against 6 and 13 (docs/architecture.md). A crash while it is mounted leaves the
/// upper dir inconsistent, which is nothing for a layer that is removed anyway.
pub(crate) fn mount(
    dir: &Path,
    lowers: &[PathBuf],
    idmap: Option<&Idmapped>,
    volatile: bool,
) -> Result<Overlay, RootfsError> {
    if lowers.is_empty() {
        return Err(RootfsError::NoLayers);
    }
    let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    for d in [&upper, &work, &rootfs] {
        std::fs::create_dir_all(d).ctx("creating", d)?;
    }
    let Some(idmap) = idmap else {
        return mount_overlay(dir, lowers, volatile);
    };
    let Some(userns) = idmap.userns else {
        return Err(RootfsError::NoIdmap);
    };
    let root = (idmap.map.outside_uid(0), idmap.map.outside_gid(0));
    std::os::unix::fs::lchown(&upper, root.0, root.1).ctx("chowning", &upper)?;
    let staging = dir.join("lower");
    let mut attached = Vec::new();
    let result = (|| {
        std::fs::create_dir_all(&staging).ctx("creating", &staging)?;
        for (i, l) in lowers.iter().enumerate() {
            let at = staging.join(i.to_string());
            std::fs::create_dir_all(&at).ctx("creating", &at)?;
            attach_idmapped(l, &at, userns)?;
            attached.push(at);
        }
        mount_overlay(dir, &attached, volatile)
    })();
    for at in &attached {
        if let Ok(c) = cstr(at) {
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Clone the mount of `layer`, give the clone the id map of `userns` and attach it at `at`.
fn attach_idmapped(layer: &Path, at: &Path, userns: BorrowedFd) -> Result<(), RootfsError> {
    let err = |op: &'static str| RootfsError::Idmap {
        op,
        path: layer.to_path_buf(),
        source: io::Error::last_os_error(),
    };
    let src = cstr(layer)?;
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src.as_ptr(),
            (libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(err("open_tree"));
    }
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // struct mount_attr: attr_set, attr_clr, propagation, userns_fd.
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let attr: [u64; 4] = [MOUNT_ATTR_IDMAP, 0, 0, userns.as_raw_fd() as u64];
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if rc != 0 {
        return Err(err("mount_setattr"));
    }
    let to = cstr(at)?;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(err("move_mount"));
    }
    Ok(())
}

/// A flattened copy's owners as the container's user namespace needs them: every id the
/// map has becomes the engine's id it maps to (ids beyond it stay, seen as nobody), each
/// inode once.
/// chown clears set-id bits, so the mode is put back after it.
fn shift_owners(rootfs: &Path, map: &IdMapping) -> Result<(), RootfsError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let fail = |p: &Path, source| RootfsError::Shift {
        path: p.to_path_buf(),
        source,
    };
    let mut todo = vec![rootfs.to_path_buf()];
    // A hard link's inode is met once per name, and must move once only (keep-id's map
    // sends 0 to 1 and 1 to 2).
    let mut linked = std::collections::HashSet::new();
    while let Some(p) = todo.pop() {
        let md = std::fs::symlink_metadata(&p).map_err(|e| fail(&p, e))?;
        if !md.is_dir() && md.nlink() > 1 && !linked.insert((md.dev(), md.ino())) {
            continue;
        }
        let (uid, gid) = (
            map.outside_uid(md.uid()).unwrap_or(md.uid()),
            map.outside_gid(md.gid()).unwrap_or(md.gid()),
        );
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(|e| fail(&p, e))?;
        if md.file_type().is_symlink() {
            continue;
        }
        if md.mode() & 0o6000 != 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(|e| fail(&p, e))?;
        }
        if md.is_dir() {
            for e in std::fs::read_dir(&p).map_err(|e| fail(&p, e))? {
                todo.push(e.map_err(|e| fail(&p, e))?.path());
            }
        }
    }
    Ok(())
}

/// The overlay itself, over `lowers` as they are.
fn mount_overlay(dir: &Path, lowers: &[PathBuf], volatile: bool) -> Result<Overlay, RootfsError> {
    let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    for l in lowers {
        let s = l.to_string_lossy();
        if s.contains([',', ':']) {
            return Err(RootfsError::BadLowerdir(s.into_owned()));
        }
    }
    let lowerdir: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    // Rootless (root of a user namespace): layers carry user.overlay.* xattrs, see
    // husk_image::unpack::UnpackOptions::overlay.
    let userxattr = if husk_image::fsutil::is_root() {
        ""
    } else {
        ",userxattr"
    };
    let data = format!(
        "lowerdir={},upperdir={},workdir={}{userxattr}",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    let target = cstr(&rootfs)?;
    // A volatile mount leaves WORKDIR/work/incompat/volatile behind, and overlay refuses
    // to mount that work dir again while it exists (the upper dir may be torn after a
    // crash). Only a transient layer was ever mounted so, and what it holds is thrown away.
    let _ = std::fs::remove_dir_all(work.join("work/incompat/volatile"));
    let mount_with = |data: &str| {
        let data_c = CString::new(data).map_err(|_| RootfsError::Nul(rootfs.clone()))?;
        let rc = unsafe {
            libc::mount(
                c"overlay".as_ptr(),
                target.as_ptr(),
                c"overlay".as_ptr(),
                0,
                data_c.as_ptr().cast(),
            )
        };
        Ok::<_, RootfsError>(match rc {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        })
    };
    let mut mounted = match volatile {
        true => mount_with(&format!("{data},volatile"))?,
        false => mount_with(&data)?,
    };
    // Kernels before 5.10 do not know the option: an ordinary mount then.
    if volatile && matches!(&mounted, Err(e) if e.raw_os_error() == Some(libc::EINVAL)) {
        mounted = mount_with(&data)?;
    }
    if let Err(source) = mounted {
        return Err(RootfsError::Mount {
            path: rootfs,
            source,
        });
    }
    Ok(Overlay {
        rootfs,
        mounted: true,
    })
}

impl Overlay {
    /// Forget the mount without unmounting it (its owner is another process now).
    pub fn disarm(mut self) {
        self.mounted = false;
    }

    /// Unmount (lazily, so a straggler holding it open cannot make it stick) and remove the
    /// empty mount point.
    pub fn unmount(&mut self) -> Result<(), RootfsError> {
        if !self.mounted {
            return Ok(());
        }
        let target = cstr(&self.rootfs)?;
        if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
            return Err(RootfsError::Unmount {
                path: self.rootfs.clone(),
                source: io::Error::last_os_error(),
            });
        }
        self.mounted = false;
        let _ = std::fs::remove_dir(&self.rootfs);
        Ok(())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

/// Unmount DIR/rootfs if an overlay is still mounted there (its owner died before cleaning
/// up); not mounted is fine.
pub fn unmount_leftover(dir: &Path) -> Result<(), RootfsError> {
    let rootfs = dir.join("rootfs");
    let target = cstr(&rootfs)?;
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        let source = io::Error::last_os_error();
        if !matches!(
            source.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::ENOENT)
        ) {
            return Err(RootfsError::Unmount {
                path: rootfs,
                source,
            });
        }
    }
    Ok(())
}

/// The image's layer directories, top first: the overlay's lowerdirs.
pub fn layer_dirs(
    store: &husk_image::store::Store,
    rec: &husk_image::store::ImageRecord,
) -> Vec<PathBuf> {
    rec.layers
        .iter()
        .rev()
        .map(|l| store.layer_dir(&l.chain_id))
        .collect()
}
