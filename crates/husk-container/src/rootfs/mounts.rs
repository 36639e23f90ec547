//! One `mounts[]` entry → mount(2) calls, fd-to-fd inside the rootfs.

use super::options::MountOptions;
use super::resolve::{ensure_in_root, open_in_root, Kind};
use crate::process::SetupError;
use crate::sys::{self, cstr, fd_path};
use oci_spec::runtime::Mount;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What the mount code needs to know about the container being set up.
pub struct MountContext<'a> {
    /// The rootfs, opened O_PATH after it was bind-mounted onto itself.
    pub root: &'a OwnedFd,
    /// Inside a user namespace: no mknod, sysfs only with a private netns, locked flags.
    pub in_userns: bool,
    /// The init's cgroup membership, read before any cgroup namespace was made:
    /// (hierarchy mount point on the host, path of this process inside it).
    /// Waits until init sits in its cgroup, then gives its membership.
    pub cgroups: &'a dyn Fn() -> Result<Vec<(PathBuf, PathBuf)>, SetupError>,
}

/// Detached copies (open_tree) of the bind sources of `mounts`, by index, made by the main
/// process before the container's user namespace exists: a source that only the caller can
/// reach (a directory the container's root may not search) is then mounted fd-to-fd, as
/// with runc. A source that cannot be copied this way (the caller lacks CAP_SYS_ADMIN, the
/// path is missing) is `None`, and init opens it by path and reports what fails.
/// Relative sources are relative to the bundle, as they are for init.
pub fn clone_bind_sources(mounts: &[Mount], bundle: &Path) -> Vec<Option<OwnedFd>> {
    mounts
        .iter()
        .map(|m| {
            let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
            if !(opts.bind || m.typ().as_deref() == Some("bind")) {
                return None;
            }
            let src = bundle.join(m.source().as_ref()?);
            sys::open_tree_clone(&src, opts.flags & libc::MS_REC != 0).ok()
        })
        .collect()
}

/// Mount one entry; `prepared` is its bind source from `clone_bind_sources`, if any.
pub fn mount_entry(
    ctx: &MountContext,
    m: &Mount,
    prepared: Option<&OwnedFd>,
) -> Result<(), SetupError> {
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default());
    let typ = m
        .typ()
        .as_deref()
        .unwrap_or(if opts.bind { "bind" } else { "none" });
    let dest = m.destination();
    let src = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let what = || format!("mounting {} on {} ({typ})", src.display(), dest.display());
    let fail = |e: io::Error| SetupError::new(what(), e);

    if !dest.is_absolute() {
        return Err(SetupError::msg(format!(
            "{}: mount destination must be an absolute path",
            what()
        )));
    }
    if opts.bind || typ == "bind" {
        bind_entry(ctx, &src, dest, &opts, prepared).map_err(fail)?;
    } else if typ == "cgroup" || typ == "cgroup2" {
        let cgroups = (ctx.cgroups)()?;
        cgroup_entry(ctx, &cgroups, dest, &opts).map_err(fail)?;
    } else {
        // tmpcopyup: keep the directory the tmpfs will cover, mount writable, copy, then
        // apply `ro` if asked.
        let copy_from = match opts.tmpcopyup {
            true if typ != "tmpfs" => {
                return Err(SetupError::msg(format!(
                    "{}: tmpcopyup needs a tmpfs",
                    what()
                )))
            }
            true => open_existing_dir(ctx.root, dest).map_err(fail)?,
            false => None,
        };
        let flags = match copy_from {
            Some(_) => opts.flags & !libc::MS_RDONLY,
            None => opts.flags,
        };
        if typ == "proc" || typ == "sysfs" {
            require_ordinary_dir(ctx.root, dest).map_err(|e| match e {
                Some(e) => fail(e),
                None => SetupError::msg(format!(
                    "{}: filesystem {typ:?} must be mounted on ordinary directory",
                    what()
                )),
            })?;
        }
        let target = ensure_in_root(ctx.root, dest, Kind::Dir).map_err(fail)?;
        let src_c = cstr(&src).map_err(fail)?;
        let r = do_mount(Some(&src_c), &target, typ, flags, &opts.data);
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && ctx.in_userns => {
                // sysfs needs a netns, mqueue an IPC namespace, owned by the user namespace;
                // without one, show the host's (sysfs always read-only).
                let (host, extra) = match typ {
                    "sysfs" => ("/sys", libc::MS_RDONLY),
                    "mqueue" => ("/dev/mqueue", 0),
                    _ => return Err(fail(e)),
                };
                let host_fd = sys::open(Path::new(host), libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(|e2| {
                        SetupError::msg(format!(
                            "{}: {e} (in a user namespace, {typ} needs the container's own {} \
                             namespace, and the host's {host} cannot be bound instead: {e2})",
                            what(),
                            if typ == "sysfs" { "network" } else { "ipc" },
                        ))
                    })?;
                bind_fd(&host_fd, &target, true).map_err(fail)?;
                let flags = opts.flags | extra | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                remount_bind(ctx.root, dest, flags).map_err(fail)?;
            }
            r => r.map_err(fail)?,
        }
        if let Some(old) = copy_from {
            let new =
                open_in_root(ctx.root, dest, libc::O_RDONLY | libc::O_DIRECTORY).map_err(fail)?;
            super::copyup::copy_dir(&old, &new, dest).map_err(fail)?;
            if flags != opts.flags {
                // Through the tmpfs's own root: `target` is the directory under it.
                do_mount(None, &new, typ, opts.flags | libc::MS_REMOUNT, &opts.data)
                    .map_err(fail)?;
            }
        }
        after_mount(ctx.root, dest, &opts).map_err(fail)?;
    }
    Ok(())
}

/// proc and sysfs go on a real directory or on nothing yet (created then), never through a
/// symlink or onto a file, as runc insists: a symlink at the destination would put the
/// kernel's view somewhere the image chose. `Err(None)` names that refusal.
fn require_ordinary_dir(root: &OwnedFd, dest: &Path) -> Result<(), Option<io::Error>> {
    let fd = match open_in_root(root, dest, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(Some(e)),
    };
    let st = sys::fstat(fd.as_raw_fd()).map_err(Some)?;
    match st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        true => Ok(()),
        false => Err(None),
    }
}

/// The directory at `dest` inside the rootfs, if there is one (nothing to copy up otherwise).
fn open_existing_dir(root: &OwnedFd, dest: &Path) -> io::Result<Option<OwnedFd>> {
    match open_in_root(root, dest, libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn bind_entry(
    ctx: &MountContext,
    src: &Path,
    dest: &Path,
    opts: &MountOptions,
    prepared: Option<&OwnedFd>,
) -> io::Result<()> {
    // The source is a host path chosen by whoever wrote config.json (relative to the bundle,
    // which is init's cwd); the destination is resolved inside the rootfs.
    let recursive = opts.flags & libc::MS_REC != 0;
    let opened;
    let src_fd = match prepared {
        Some(tree) => tree,
        None => {
            opened = sys::open(src, libc::O_PATH)?;
            &opened
        }
    };
    let is_dir = sys::fstat(src_fd.as_raw_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let target = ensure_in_root(ctx.root, dest, if is_dir { Kind::Dir } else { Kind::File })?;
    match prepared {
        Some(tree) => {
            sys::move_mount_onto(tree, &target)?;
            // The copy was made in the caller's namespace and may be a peer of its source
            // there: make it a slave like every other mount of this rslave tree, so that
            // nothing mounted below it in the container reaches the host. (The tree fd now
            // refers to the attached mount itself.)
            let flags = libc::MS_SLAVE | if recursive { libc::MS_REC } else { 0 };
            sys::mount(None, &cstr(fd_path(tree))?, None, flags, None)?;
        }
        None => bind_fd(src_fd, &target, recursive)?,
    }
    let remount = opts.bind_remount_flags();
    if remount != 0 {
        remount_bind(ctx.root, dest, remount)?;
    }
    after_mount(ctx.root, dest, opts)
}

/// Bind-mount what `src` refers to onto what `target` refers to.
pub fn bind_fd(src: &OwnedFd, target: &OwnedFd, recursive: bool) -> io::Result<()> {
    let flags = libc::MS_BIND | if recursive { libc::MS_REC } else { 0 };
    sys::mount(
        Some(&cstr(fd_path(src))?),
        &cstr(fd_path(target))?,
        None,
        flags,
        None,
    )
}

/// Change the per-mount flags of the bind mount now at `dest`. Inside a user namespace the
/// kernel locks flags inherited from the host (nosuid, nodev, ...): if the plain remount is
/// refused, retry keeping the flags the mount already has.
pub fn remount_bind(root: &OwnedFd, dest: &Path, flags: libc::c_ulong) -> io::Result<()> {
    remount_bind_fd(&open_in_root(root, dest, libc::O_PATH)?, flags)
}

/// [`remount_bind`] of the mount whose root `fd` is.
fn remount_bind_fd(fd: &OwnedFd, flags: libc::c_ulong) -> io::Result<()> {
    let target = cstr(fd_path(fd))?;
    let base = libc::MS_BIND | libc::MS_REMOUNT;
    match sys::mount(None, &target, None, base | flags, None) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            sys::check(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) })?;
            let mut keep = 0;
            for (st_flag, ms_flag) in [
                (libc::ST_RDONLY, libc::MS_RDONLY),
                (libc::ST_NOSUID, libc::MS_NOSUID),
                (libc::ST_NODEV, libc::MS_NODEV),
                (libc::ST_NOEXEC, libc::MS_NOEXEC),
                (libc::ST_NOATIME, libc::MS_NOATIME),
                (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
                (libc::ST_RELATIME, libc::MS_RELATIME),
            ] {
                if st.f_flag & st_flag != 0 {
                    keep |= ms_flag;
                }
            }
            sys::mount(None, &target, None, base | flags | keep, None)
        }
        r => r,
    }
}

fn do_mount(
    src: Option<&CString>,
    target: &OwnedFd,
    typ: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let data = (!data.is_empty()).then(|| cstr(data)).transpose()?;
    sys::mount(
        src.map(|s| s.as_c_str()),
        &cstr(fd_path(target))?,
        Some(&cstr(typ)?),
        flags,
        data.as_deref(),
    )
}

/// Propagation and recursive attributes, applied to the mount now at `dest`.
fn after_mount(root: &OwnedFd, dest: &Path, opts: &MountOptions) -> io::Result<()> {
    if opts.propagation.is_empty() && opts.rec_set == 0 && opts.rec_clear == 0 {
        return Ok(());
    }
    let fd = open_in_root(root, dest, libc::O_PATH)?;
    let target = cstr(fd_path(&fd))?;
    for p in &opts.propagation {
        sys::mount(None, &target, None, *p, None)?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        mount_setattr_recursive(&fd, opts.rec_set, opts.rec_clear)?;
    }
    Ok(())
}

fn mount_setattr_recursive(fd: &OwnedFd, set: u64, clear: u64) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A `cgroup` mount: a read-only view of the container's own cgroups. On cgroup v1 and hybrid
/// hosts that is a tmpfs holding one bind mount per hierarchy; on v2 one bind of the leaf.
fn cgroup_entry(
    ctx: &MountContext,
    cgroups: &[(PathBuf, PathBuf)],
    dest: &Path,
    opts: &MountOptions,
) -> io::Result<()> {
    let flags = opts.flags & !libc::MS_RDONLY;
    let ro = opts.flags & libc::MS_RDONLY != 0;
    let only_v2 = cgroups.len() == 1 && cgroups[0].0 == Path::new("/sys/fs/cgroup");
    if only_v2 {
        let (_, own) = &cgroups[0];
        let src = sys::open(own, libc::O_PATH | libc::O_DIRECTORY)?;
        let target = ensure_in_root(ctx.root, dest, Kind::Dir)?;
        bind_fd(&src, &target, false)?;
        return remount_bind(ctx.root, dest, flags | if ro { libc::MS_RDONLY } else { 0 });
    }
    let target = ensure_in_root(ctx.root, dest, Kind::Dir)?;
    do_mount(Some(&cstr("tmpfs")?), &target, "tmpfs", flags, "mode=755")?;
    // The tmpfs is new and only this process's: a directory per hierarchy is made and
    // opened by name in it, with nothing to resolve inside the rootfs (a third of the
    // syscalls of resolving each path from the root).
    let top = open_in_root(ctx.root, dest, libc::O_PATH | libc::O_DIRECTORY)?;
    let open_sub = |name: &std::ffi::OsStr| {
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        sys::openat(top.as_raw_fd(), Path::new(name), flags, 0)
    };
    for (mnt, own) in cgroups {
        let Some(name) = mnt.file_name() else {
            continue;
        };
        let src = match sys::open(own, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            // A hierarchy the process is not in below its root (e.g. an empty named one).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let c_name = cstr(name)?;
        sys::check(unsafe { libc::mkdirat(top.as_raw_fd(), c_name.as_ptr(), 0o755) })?;
        bind_fd(&src, &open_sub(name)?, false)?;
        // Opened again, now through the bind: its root.
        remount_bind_fd(
            &open_sub(name)?,
            flags | if ro { libc::MS_RDONLY } else { 0 },
        )?;
        // "cpu,cpuacct" is also reachable as "cpu" and "cpuacct", as on the host.
        let name = name.to_string_lossy();
        if name.contains(',') {
            for alias in name.split(',') {
                let a = cstr(alias)?;
                unsafe { libc::symlinkat(c_name.as_ptr(), top.as_raw_fd(), a.as_ptr()) };
            }
        }
    }
    if ro {
        remount_bind(ctx.root, dest, flags | libc::MS_RDONLY)?;
    }
    Ok(())
}

/// Init's cgroups once it has joined them, as (hierarchy mount point, host directory): the
/// container's cgroup `path` in every hierarchy, or the caller's own cgroups (which init
/// inherits) when the container has none. Worked out by the main process from the mounts it
/// read anyway, so init reads neither /proc/self/mountinfo nor /proc/self/cgroup.
pub fn cgroup_dirs(
    m: &husk_cgroups::layout::Mounts,
    path: Option<&husk_cgroups::CgroupPath>,
) -> Vec<(PathBuf, PathBuf)> {
    let mut out: Vec<(PathBuf, PathBuf)> =
        m.v1.iter()
            .map(|h| {
                let p = path.map_or(h.own.as_str(), |p| p.in_v1(&h.controllers));
                (h.mount_point.clone(), h.dir(p))
            })
            .collect();
    out.extend(m.unified.iter().map(|u| {
        let p = path.map_or(u.own.as_str(), |p| p.path.as_str());
        (u.mount_point.clone(), u.dir(p))
    }));
    out
}
