//! Device nodes and the standard /dev symlinks inside the rootfs.

use super::mounts::bind_fd;
use super::resolve::{ensure_in_root, open_in_root, Kind};
use crate::process::SetupError;
use crate::sys::{self, cstr};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The devices every container gets (runtime spec "Default Devices").
pub fn default_devices() -> Vec<LinuxDevice> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| {
        let mut d = LinuxDevice::default();
        d.set_path(PathBuf::from("/dev").join(name))
            .set_typ(LinuxDeviceType::C)
            .set_major(major)
            .set_minor(minor)
            .set_file_mode(Some(0o666))
            .set_uid(Some(0))
            .set_gid(Some(0));
        d
    })
    .collect()
}

/// Create `dev` inside the rootfs: mknod, or (in a user namespace, where mknod is refused)
/// a bind mount of the host's node of the same path.
pub fn create_device(root: &OwnedFd, dev: &LinuxDevice, bind: bool) -> Result<(), SetupError> {
    let path = dev.path();
    let what = || format!("creating device {}", path.display());
    let fail = |e: io::Error| SetupError::new(what(), e);
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| SetupError::msg(format!("{}: not a file path", what())))?;
    let dir = ensure_in_root(root, parent, Kind::Dir).map_err(fail)?;
    if bind {
        let host = sys::open(path, libc::O_PATH).map_err(fail)?;
        let target = ensure_in_root(root, path, Kind::File).map_err(fail)?;
        return bind_fd(&host, &target, false).map_err(fail);
    }
    let kind = match dev.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(SetupError::msg(format!(
                "{}: type \"a\" is only valid in cgroup rules",
                what()
            )))
        }
    };
    let rdev = libc::makedev(dev.major() as u32, dev.minor() as u32);
    let mode = dev.file_mode().unwrap_or(0o666) & 0o7777;
    let cname = cstr(name).map_err(fail)?;
    let r = unsafe { libc::mknodat(dir.as_raw_fd(), cname.as_ptr(), kind | mode, rdev) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(fail(e));
        }
        // Already there (e.g. from the image): acceptable only if it is the same device.
        let fd = open_in_root(root, path, libc::O_PATH | libc::O_NOFOLLOW).map_err(fail)?;
        let st = sys::fstat(fd.as_raw_fd()).map_err(fail)?;
        if st.st_mode & libc::S_IFMT != kind || (kind != libc::S_IFIFO && st.st_rdev != rdev) {
            return Err(SetupError::msg(format!(
                "{}: a different file already exists there",
                what()
            )));
        }
    }
    let (uid, gid) = (dev.uid().unwrap_or(0), dev.gid().unwrap_or(0));
    let r = unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    sys::check(r).map_err(fail)?;
    Ok(())
}

/// The file the pty is bind-mounted on as /dev/console.
///
/// CVE-2025-52565: the image's /dev/console may be a symlink (say to
/// /proc/sys/kernel/core_pattern): following it would mount the pty over a procfs file and
/// hand the container a writable view of it. Only a plain file or a device node made in
/// /dev itself is used; anything else is replaced by a fresh empty file, created and
/// opened without following symlinks.
pub fn console_target(root: &OwnedFd) -> io::Result<OwnedFd> {
    let dev = ensure_in_root(root, Path::new("/dev"), Kind::Dir)?;
    let name = c"console";
    let open = || {
        sys::openat(
            dev.as_raw_fd(),
            Path::new("console"),
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        )
    };
    match open() {
        Ok(fd) => {
            let kind = sys::fstat(fd.as_raw_fd())?.st_mode & libc::S_IFMT;
            if kind == libc::S_IFREG || kind == libc::S_IFCHR {
                return Ok(fd);
            }
            let flags = if kind == libc::S_IFDIR {
                libc::AT_REMOVEDIR
            } else {
                0
            };
            sys::check(unsafe { libc::unlinkat(dev.as_raw_fd(), name.as_ptr(), flags) })?;
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let fd = unsafe {
        libc::openat(
            dev.as_raw_fd(),
            name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644,
        )
    };
    sys::check(fd)?;
    unsafe { libc::close(fd) };
    open()
}

/// /dev/fd, /dev/std{in,out,err}, /dev/ptmx → pts/ptmx, and /dev/core where the host has kcore.
pub fn create_dev_symlinks(root: &OwnedFd) -> Result<(), SetupError> {
    let fail = |e: io::Error| SetupError::new("creating /dev symlinks", e);
    let dev = ensure_in_root(root, Path::new("/dev"), Kind::Dir).map_err(fail)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        symlink(&dev, target, name).map_err(fail)?;
    }
    // /dev/ptmx must be the devpts instance's ptmx, not the host's.
    let name = c"ptmx";
    unsafe { libc::unlinkat(dev.as_raw_fd(), name.as_ptr(), 0) };
    symlink(&dev, "pts/ptmx", "ptmx").map_err(fail)
}

fn symlink(dir: &OwnedFd, target: &str, name: &str) -> io::Result<()> {
    let (t, n) = (cstr(target)?, cstr(name)?);
    match sys::check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) }) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r.map(drop),
    }
}

/// The device cgroup rules a container gets: the spec's own, then runc's default
/// allow-list — mknod of anything (the node is useless without access), /dev/null, zero,
/// full, random, urandom, tty, ptmx, the pty slaves (/dev/pts/*, also what /dev/console is
/// with a terminal) and /dev/net/tun. Devices in `linux.devices` are only created: as the
/// runtime-spec says and runc does, access to them is up to `linux.resources.devices`, so a
/// deny-all config keeps e.g. a listed /dev/kmsg unwritable.
pub fn cgroup_rules(
    resources: Option<&oci_spec::runtime::LinuxResources>,
) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::LinuxDeviceCgroup;
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true)
            .set_typ(Some(typ))
            .set_major(major)
            .set_minor(minor)
            .set_access(Some(access.to_string()));
        r
    };
    let mut res = resources.cloned().unwrap_or_default();
    let mut rules = res.devices().clone().unwrap_or_default();
    rules.push(rule(LinuxDeviceType::C, None, None, "m"));
    rules.push(rule(LinuxDeviceType::B, None, None, "m"));
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 2),
        (10, 200),
    ] {
        rules.push(rule(LinuxDeviceType::C, Some(major), Some(minor), "rwm"));
    }
    rules.push(rule(LinuxDeviceType::C, Some(136), None, "rwm"));
    res.set_devices(Some(rules));
    res
}
