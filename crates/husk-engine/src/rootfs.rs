//! The container's root filesystem: an overlay of the image's layer dirs (read-only lowers,
//! top first) with a per-container upper and work dir, mounted in the engine's namespace.
//! Where overlay cannot be mounted (no overlayfs, a store on a file system overlay cannot
//! use as upper, a user namespace on an old kernel) — or with HUSK_ROOTFS=copy — the image's
//! layers are unpacked, flattened, into the container's own rootfs directory instead: slower
//! and bigger, but the same tree. The copy stays with the container, as an upper dir would.

use crate::os::{IoContext, IoError};
use std::ffi::CString;
use std::io;
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

/// The rootfs of the container in DIR for image `rec`: the overlay, or the copy (`warn`
/// hears why overlay could not be used).
pub fn prepare(
    dir: &Path,
    store: &husk_image::store::Store,
    rec: &husk_image::store::ImageRecord,
    warn: &dyn Fn(&str),
) -> Result<Overlay, RootfsError> {
    let rootfs = dir.join("rootfs");
    let forced = std::env::var_os("HUSK_ROOTFS").is_some_and(|v| v == "copy");
    if !forced && !dir.join(COPY_MARK).exists() {
        match mount(dir, &layer_dirs(store, rec)) {
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
) -> Result<Overlay, RootfsError> {
    if dir.join(COPY_MARK).exists() {
        return Ok(Overlay {
            rootfs: dir.join("rootfs"),
            mounted: false,
        });
    }
    mount(dir, &layer_dirs(store, rec))
}

/// Errors of mount(2) that say overlay cannot work here, rather than that something is wrong.
fn overlay_unusable(e: &RootfsError) -> bool {
    let RootfsError::Mount { source, .. } = e else {
        return false;
    };
    matches!(
        source.raw_os_error(),
        Some(libc::ENODEV | libc::EINVAL | libc::EPERM | libc::EOPNOTSUPP)
    )
}

/// Mount `lowers` (top first) at DIR/rootfs with DIR/upper and DIR/work; on failure the
/// message and mount(2)'s errno. (Also a build step's filesystem: build/work.rs.)
pub(crate) fn mount(dir: &Path, lowers: &[PathBuf]) -> Result<Overlay, RootfsError> {
    if lowers.is_empty() {
        return Err(RootfsError::NoLayers);
    }
    let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    for d in [&upper, &work, &rootfs] {
        std::fs::create_dir_all(d).ctx("creating", d)?;
    }
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
    if rc != 0 {
        return Err(RootfsError::Mount {
            path: rootfs,
            source: io::Error::last_os_error(),
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
