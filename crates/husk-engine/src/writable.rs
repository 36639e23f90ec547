//! The container's writable layer (the overlay's upper and work dirs) when it is limited:
//!
//! - `--storage-opt size=N`: a project quota, as podman and docker do. DIR/layer gets a
//!   project id of its own with the inherit flag (so upper, work and everything the
//!   container writes there carry it; both, because overlay renames from work into upper
//!   and a rename across projects fails) and a hard block limit of N. It needs the store on
//!   xfs or ext4 with project quotas (mounted with `prjquota`); elsewhere it is refused
//!   with what is needed.
//! - `--rootfs-tmpfs SIZE`: DIR/layer is a tmpfs of that size, owned by root (rootless: the
//!   user's mapped root, as the engine runs as root of the user's namespace), so nothing the
//!   container writes touches the disk. It stays mounted while the container exists (`diff`,
//!   `cp` and `start` find its files), and is unmounted by `rm`.
//!
//! Either way DIR/upper and DIR/work are symlinks into DIR/layer, so rootfs.rs, `diff` and
//! the rest find them where they always are (overlay resolves its options' symlinks).

use crate::os::{IoContext, IoError};
use std::os::fd::AsRawFd;
use std::path::Path;

/// How a container's writable layer is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WritableLayer {
    /// In the store, unlimited.
    #[default]
    Disk,
    /// In the store, at most this many bytes (project quota).
    Quota(u64),
    /// On a tmpfs of this many bytes.
    Tmpfs(u64),
}

/// `--storage-opt` and `--rootfs-tmpfs`, as given.
#[derive(Clone, Debug, Default)]
pub struct StorageOptions {
    /// KEY=VALUE; only `size` is known.
    pub storage_opts: Vec<String>,
    pub rootfs_tmpfs: Option<String>,
}

/// A `--storage-opt` or `--rootfs-tmpfs` that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageOptError {
    /// The option as given (`size=lots`).
    #[error("--storage-opt {0}: expected a positive size like 64m")]
    Quota(String),
    #[error("--rootfs-tmpfs {0}: expected a positive size like 64m")]
    Tmpfs(String),
    #[error("--storage-opt {0:?}: only size=SIZE is known")]
    Unknown(String),
    #[error(
        "--rootfs-tmpfs and --storage-opt size exclude each other: the tmpfs's size is the limit"
    )]
    Both,
}

#[derive(Debug, thiserror::Error)]
pub enum WritableError {
    #[error(
        "--storage-opt size: {path} is on {fs}; a size limit needs the store on xfs, or ext4 \
         made with -O quota,project, mounted with prjquota"
    )]
    Unsupported { path: String, fs: String },
    #[error(
        "--storage-opt size: project quotas are not enforced on {path} ({fs}): mount it with \
         prjquota (ext4 made with -O quota,project), on a kernel with quota support ({source})"
    )]
    NotEnforced {
        path: String,
        fs: &'static str,
        source: std::io::Error,
    },
    #[error(
        "--storage-opt size: this kernel has no disk quotas (it needs CONFIG_QUOTA for ext4, \
         CONFIG_XFS_QUOTA for xfs)"
    )]
    NoKernelQuota,
    #[error("--storage-opt size: setting the project quota of {path}: {source}")]
    Quota {
        path: String,
        source: std::io::Error,
    },
    #[error("--rootfs-tmpfs: mounting a tmpfs on {path}: {source}")]
    Tmpfs {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] IoError),
}

impl WritableLayer {
    /// Checked options (pure): the first wrong one is the error.
    pub fn validate(o: &StorageOptions) -> Result<WritableLayer, StorageOptError> {
        // parse_size takes positive sizes only.
        let size = |v| crate::spec_from_image::parse_size("", v).map(|n| n as u64);
        let mut quota = None;
        for kv in &o.storage_opts {
            match kv.split_once('=') {
                Some(("size", v)) => {
                    quota = Some(size(v).map_err(|_| StorageOptError::Quota(kv.clone()))?)
                }
                _ => return Err(StorageOptError::Unknown(kv.clone())),
            }
        }
        let tmpfs = o
            .rootfs_tmpfs
            .as_deref()
            .map(|v| size(v).map_err(|_| StorageOptError::Tmpfs(v.to_string())))
            .transpose()?;
        match (quota, tmpfs) {
            (Some(_), Some(_)) => Err(StorageOptError::Both),
            (Some(n), None) => Ok(WritableLayer::Quota(n)),
            (None, Some(n)) => Ok(WritableLayer::Tmpfs(n)),
            (None, None) => Ok(WritableLayer::Disk),
        }
    }
}

/// container.json's `writable`: null (the default), `{"quota": BYTES}` or `{"tmpfs": BYTES}`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quota: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tmpfs: Option<u64>,
}

impl serde::Serialize for WritableLayer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (quota, tmpfs) = match *self {
            WritableLayer::Disk => return s.serialize_none(),
            WritableLayer::Quota(n) => (Some(n), None),
            WritableLayer::Tmpfs(n) => (None, Some(n)),
        };
        Stored { quota, tmpfs }.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for WritableLayer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<WritableLayer, D::Error> {
        Ok(match Option::<Stored>::deserialize(d)? {
            Some(Stored { quota: Some(n), .. }) => WritableLayer::Quota(n),
            Some(Stored { tmpfs: Some(n), .. }) => WritableLayer::Tmpfs(n),
            _ => WritableLayer::Disk,
        })
    }
}

const LAYER: &str = "layer";

/// Before the rootfs is made: DIR/layer as `w` asks, and DIR/upper, DIR/work pointing into
/// it. `id` (hex) names the project. Nothing for [`WritableLayer::Disk`]. Undone by
/// [`release`] (and removing DIR).
pub(crate) fn prepare(dir: &Path, id: &str, w: WritableLayer) -> Result<(), WritableError> {
    let layer = dir.join(LAYER);
    match w {
        WritableLayer::Disk => return Ok(()),
        WritableLayer::Quota(bytes) => {
            std::fs::create_dir_all(&layer).ctx("creating", &layer)?;
            set_quota(&layer, project_id(id), bytes)?;
        }
        WritableLayer::Tmpfs(bytes) => {
            std::fs::create_dir_all(&layer).ctx("creating", &layer)?;
            mount_tmpfs(&layer, bytes)?;
        }
    }
    for d in ["upper", "work"] {
        let inside = layer.join(d);
        std::fs::create_dir_all(&inside).ctx("creating", &inside)?;
        let link = dir.join(d);
        if std::fs::read_link(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(LAYER).join(d), &link).ctx("linking", &link)?;
        }
    }
    Ok(())
}

/// `start` of a container whose tmpfs is gone (the machine rebooted): a new, empty one.
pub(crate) fn prepare_again(dir: &Path, id: &str, w: WritableLayer) -> Result<(), WritableError> {
    match w {
        WritableLayer::Tmpfs(_) if !is_mount(&dir.join(LAYER)) => prepare(dir, id, w),
        _ => Ok(()),
    }
}

/// Unmount DIR/layer if it is a tmpfs (before DIR is removed); nothing otherwise.
pub(crate) fn release(dir: &Path) {
    let layer = dir.join(LAYER);
    if is_mount(&layer) {
        if let Ok(c) = std::ffi::CString::new(layer.as_os_str().as_encoded_bytes()) {
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Whether `p` is a mount point (another device than its parent's).
fn is_mount(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::symlink_metadata(p),
        p.parent().map(std::fs::metadata),
    ) {
        (Ok(m), Some(Ok(parent))) => m.is_dir() && m.dev() != parent.dev(),
        _ => false,
    }
}

fn mount_tmpfs(layer: &Path, bytes: u64) -> Result<(), WritableError> {
    let err = |source| WritableError::Tmpfs {
        path: layer.display().to_string(),
        source,
    };
    let target = std::ffi::CString::new(layer.as_os_str().as_encoded_bytes())
        .map_err(|_| err(std::io::ErrorKind::InvalidInput.into()))?;
    // uid/gid 0: root of the namespace the engine runs in (rootless: the user's mapped root).
    let data = std::ffi::CString::new(format!("size={bytes},mode=0755,uid=0,gid=0")).unwrap();
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// A project id of the container's own, from its (random) id: above the small ids an
/// administrator hands out by hand in /etc/projid.
fn project_id(id: &str) -> u32 {
    0x4000_0000 | u32::from_str_radix(id.get(..7).unwrap_or("0"), 16).unwrap_or(0)
}

const XFS_SUPER_MAGIC: i64 = 0x5846_5342;
const EXT4_SUPER_MAGIC: i64 = 0xEF53;
/// struct fsxattr's ioctls and its project-inherit flag (linux/fs.h).
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;
const FS_XFLAG_PROJINHERIT: u32 = 0x200;
/// quotactl_fd(2), the same number on every architecture; QCMD(Q_XSETQLIM, PRJQUOTA).
const SYS_QUOTACTL_FD: libc::c_long = 443;
const Q_XSETQLIM_PRJ: libc::c_uint = (0x5804 << 8) | 2;
const FS_DQUOT_VERSION: i8 = 1;
const FS_PROJ_QUOTA: i8 = 2;
const FS_DQ_BSOFT: u16 = 1 << 2;
const FS_DQ_BHARD: u16 = 1 << 3;

#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

/// struct fs_disk_quota (linux/dqblk_xfs.h), which quotactl's XFS-style calls take on
/// every file system with quotas. Limits are in 512-byte blocks.
#[repr(C)]
#[derive(Default)]
struct FsDiskQuota {
    version: i8,
    flags: i8,
    fieldmask: u16,
    id: u32,
    blk_hardlimit: u64,
    blk_softlimit: u64,
    ino_hardlimit: u64,
    ino_softlimit: u64,
    bcount: u64,
    icount: u64,
    itimer: i32,
    btimer: i32,
    iwarns: u16,
    bwarns: u16,
    itimer_hi: i8,
    btimer_hi: i8,
    rtbtimer_hi: i8,
    padding2: i8,
    rtb_hardlimit: u64,
    rtb_softlimit: u64,
    rtbcount: u64,
    rtbtimer: i32,
    rtbwarns: u16,
    padding3: i16,
    padding4: [u8; 8],
}

/// Give `layer` project `projid` (inherited by what is made in it) limited to `bytes`.
fn set_quota(layer: &Path, projid: u32, bytes: u64) -> Result<(), WritableError> {
    let path = layer.display().to_string();
    let f = std::fs::File::open(layer).ctx("opening", layer)?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error()).ctx("statfs", layer)?;
    }
    let fs = match st.f_type as i64 {
        XFS_SUPER_MAGIC => "xfs",
        EXT4_SUPER_MAGIC => "ext4",
        other => {
            return Err(WritableError::Unsupported {
                path,
                fs: fs_name(other),
            })
        }
    };
    let quota_err = |source| WritableError::Quota {
        path: path.clone(),
        source,
    };
    // The limit first: it fails on a file system without (enforced) project quotas,
    // before anything is tagged.
    let mut q = FsDiskQuota {
        version: FS_DQUOT_VERSION,
        flags: FS_PROJ_QUOTA,
        fieldmask: FS_DQ_BHARD | FS_DQ_BSOFT,
        id: projid,
        blk_hardlimit: bytes.div_ceil(512),
        blk_softlimit: bytes.div_ceil(512),
        ..Default::default()
    };
    let rc = unsafe {
        libc::syscall(
            SYS_QUOTACTL_FD,
            f.as_raw_fd(),
            Q_XSETQLIM_PRJ,
            projid,
            &mut q as *mut FsDiskQuota,
        )
    };
    if rc != 0 {
        let source = std::io::Error::last_os_error();
        return Err(match source.raw_os_error() {
            Some(libc::ENOSYS) => WritableError::NoKernelQuota,
            // Quotas off (ESRCH), project quotas not there (ENOENT, EINVAL).
            Some(libc::ESRCH | libc::ENOENT | libc::EINVAL | libc::EOPNOTSUPP) => {
                WritableError::NotEnforced { path, fs, source }
            }
            _ => quota_err(source),
        });
    }
    let mut x = FsXattr::default();
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FSGETXATTR, &mut x) } != 0 {
        return Err(quota_err(std::io::Error::last_os_error()));
    }
    x.projid = projid;
    x.xflags |= FS_XFLAG_PROJINHERIT;
    if unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FSSETXATTR, &x) } != 0 {
        return Err(quota_err(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn fs_name(magic: i64) -> String {
    match magic {
        0x0102_1994 => "tmpfs".into(),
        0x794c_7630 => "overlayfs".into(),
        0x9123_683e => "btrfs".into(),
        _ => format!("a file system of type {magic:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(opts: &[&str], tmpfs: Option<&str>) -> Result<WritableLayer, StorageOptError> {
        WritableLayer::validate(&StorageOptions {
            storage_opts: opts.iter().map(|s| s.to_string()).collect(),
            rootfs_tmpfs: tmpfs.map(String::from),
        })
    }

    #[test]
    fn options_are_checked() {
        assert_eq!(v(&[], None), Ok(WritableLayer::Disk));
        assert_eq!(v(&["size=10m"], None), Ok(WritableLayer::Quota(10 << 20)));
        assert_eq!(v(&[], Some("1g")), Ok(WritableLayer::Tmpfs(1 << 30)));
        assert_eq!(v(&["size=1m"], Some("1m")), Err(StorageOptError::Both));
        assert_eq!(
            v(&["inodes=5"], None),
            Err(StorageOptError::Unknown("inodes=5".into()))
        );
        assert_eq!(
            v(&["size=0"], None),
            Err(StorageOptError::Quota("size=0".into()))
        );
        assert_eq!(
            v(&[], Some("lots")).unwrap_err().to_string(),
            "--rootfs-tmpfs lots: expected a positive size like 64m"
        );
        assert_eq!(std::mem::size_of::<FsDiskQuota>(), 112);
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        for w in [
            WritableLayer::Disk,
            WritableLayer::Quota(5),
            WritableLayer::Tmpfs(7),
        ] {
            let json = serde_json::to_string(&w).unwrap();
            assert_eq!(serde_json::from_str::<WritableLayer>(&json).unwrap(), w);
        }
        assert_eq!(project_id("0000001ff"), 0x4000_0001);
    }
}
