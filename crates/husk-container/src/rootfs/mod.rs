//! The container's root filesystem: mounts, devices, masking, then pivot_root.
//!
//! All of it runs in the init process, inside its new mount namespace (or, for a config
//! without one, below a bind of the rootfs in the caller's), before `Ready`.
//! Every path under the rootfs is resolved by `resolve` (openat2 RESOLVE_IN_ROOT).

pub mod caller_ns;
pub mod copyup;
pub mod devices;
pub mod mounts;
pub mod options;
pub mod pivot;
pub mod resolve;
pub mod restrict;

use crate::process::SetupError;
use crate::sys::{self, cstr, fd_path};
use oci_spec::runtime::{Mount, Spec};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub struct RootfsSetup<'a> {
    pub spec: &'a Spec,
    /// A config without a mount namespace: the rootfs bind the main process made in the
    /// caller's namespace (`caller_ns`). Everything is mounted below it, the caller's
    /// propagation is left alone and init chroots instead of pivot_root, as runc does.
    pub caller_root: Option<&'a OwnedFd>,
    /// Absolute host path of the rootfs.
    pub rootfs: &'a Path,
    pub in_userns: bool,
    pub new_net: bool,
    pub new_ipc: bool,
    pub new_uts: bool,
    pub no_pivot: bool,
    /// When set, make a pty, send its master over this socket, show it as /dev/console.
    pub console: Option<&'a OwnedFd>,
    /// Initial terminal size (rows, cols).
    pub console_size: Option<(u16, u16)>,
    /// The init's cgroup membership (host mount point, path), waited for on first use.
    pub cgroups: &'a dyn Fn() -> Result<Vec<(PathBuf, PathBuf)>, SetupError>,
    /// Called after the mounts, before pivot_root: the createRuntime/createContainer hooks.
    pub before_pivot: &'a dyn Fn() -> Result<(), SetupError>,
    /// Bind sources opened by the main process, by index in `mounts`
    /// (`mounts::clone_bind_sources`); empty when there were none to open.
    pub bind_sources: &'a [Option<OwnedFd>],
    /// Phase timestamps (`timeline.rs`).
    pub timeline: &'a crate::timeline::Timeline,
}

impl RootfsSetup<'_> {
    /// Returns the pty slave when a terminal was asked for.
    pub fn run(&self) -> Result<Option<OwnedFd>, SetupError> {
        let linux = self.spec.linux().as_ref();
        let propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
            Some(p) => Some(
                options::propagation_flag(p)
                    .ok_or_else(|| SetupError::msg(format!("invalid rootfsPropagation {p:?}")))?,
            ),
            None => None,
        };
        // Nothing mounted from here on may propagate back to the host. A shared
        // rootfsPropagation waits until after pivot_root, which refuses shared mounts (and a
        // shared copy of the host's / would still be a peer of the host's): until then the
        // tree is rslave, and making the new / shared then gives it a peer group of its own.
        let before_pivot = match propagation {
            Some(p) if p & libc::MS_SHARED == 0 => p | libc::MS_REC,
            _ => libc::MS_SLAVE | libc::MS_REC,
        };
        let root = match self.caller_root {
            Some(bound) => bound
                .try_clone()
                .map_err(|e| SetupError::new("duplicating the rootfs fd", e))?,
            None => {
                sys::mount(None, c"/", None, before_pivot, None)
                    .map_err(|e| SetupError::new("setting propagation of /", e))?;
                self.bind_rootfs()?
            }
        };
        self.timeline.mark("init: / rslave, rootfs bound");
        let ctx = mounts::MountContext {
            root: &root,
            in_userns: self.in_userns,
            cgroups: self.cgroups,
        };
        let spec_mounts = self.spec.mounts().as_deref().unwrap_or_default();
        // A read-only /dev tmpfs is mounted writable and made read-only once the device
        // nodes, devpts, the console and the /dev links are in it, as runc does.
        let mut dev_ro_flags = None;
        for (i, m) in spec_mounts.iter().enumerate() {
            let prepared = self.bind_sources.get(i).and_then(Option::as_ref);
            match read_only_dev_tmpfs(m) {
                Some((writable, flags)) => {
                    mounts::mount_entry(&ctx, &writable, prepared)?;
                    dev_ro_flags = Some(flags);
                }
                None => mounts::mount_entry(&ctx, m, prepared)?,
            }
        }

        self.timeline.mark("init: config.json mounts");
        let dev_is_bind = spec_mounts.iter().any(|m| {
            m.destination() == Path::new("/dev")
                && (m.typ().as_deref() == Some("bind")
                    || m.options()
                        .iter()
                        .flatten()
                        .any(|o| o == "bind" || o == "rbind"))
        });
        if !dev_is_bind {
            let mut devs = devices::default_devices();
            devs.extend(linux.and_then(|l| l.devices().clone()).unwrap_or_default());
            for d in &devs {
                devices::create_device(&root, d, self.in_userns)?;
            }
            devices::create_dev_symlinks(&root)?;
        }
        self.timeline.mark("init: devices, /dev links");
        let mut slave = None;
        if let Some(socket) = self.console {
            let (master, pty) = crate::console::open_pty(&root)?;
            let fail = |e| SetupError::new("mounting the terminal on /dev/console", e);
            if let Some((rows, cols)) = self.console_size {
                crate::console::set_size(&pty, rows, cols).map_err(fail)?;
            }
            let target = devices::console_target(&root).map_err(fail)?;
            mounts::bind_fd(&pty, &target, false).map_err(fail)?;
            crate::console::send_fd(socket, &master)
                .map_err(|e| SetupError::new("sending the pty master to the console socket", e))?;
            slave = Some(pty);
        }
        if let Some(flags) = dev_ro_flags {
            mounts::remount_bind(&root, Path::new("/dev"), flags | libc::MS_RDONLY)
                .map_err(|e| SetupError::new("remounting /dev read-only", e))?;
        }

        if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
            let mut keys: Vec<_> = sysctl.iter().collect();
            keys.sort();
            for (k, v) in keys {
                restrict::check_sysctl_namespaced(k, self.new_net, self.new_ipc, self.new_uts)
                    .map_err(SetupError::msg)?;
                restrict::write_sysctl(&root, k, v)?;
            }
        }
        if let Some(masked) = linux.and_then(|l| l.masked_paths().as_ref()) {
            let dev_null = restrict::verified_dev_null()?;
            for p in masked {
                restrict::mask_path(&root, &dev_null, p)?;
            }
        }
        for p in linux
            .and_then(|l| l.readonly_paths().as_ref())
            .into_iter()
            .flatten()
        {
            restrict::readonly_path(&root, p)?;
        }

        self.timeline
            .mark("init: sysctl, masked and read-only paths");
        (self.before_pivot)()?;
        if self.caller_root.is_some() {
            caller_ns::chroot_into(&root)?;
        } else if self.no_pivot {
            pivot::move_root(&root)?;
        } else {
            pivot::pivot_root(&root)?;
        }
        self.timeline.mark("init: pivot_root, old root detached");
        let new_root = sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| SetupError::new("opening the new /", e))?;
        // A missing process.cwd is made now, as root and before / may turn read-only (runc
        // does the same). Failing here is left to the chdir, which names the cwd.
        if let Some(process) = self.spec.process() {
            let _ = resolve::ensure_in_root(&new_root, process.cwd(), resolve::Kind::Dir);
        }
        if self
            .spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
        {
            mounts::remount_bind(&new_root, Path::new("/"), libc::MS_RDONLY)
                .map_err(|e| SetupError::new("remounting / read-only", e))?;
        }
        if let Some(p) = propagation {
            sys::mount(None, c"/", None, p, None)
                .map_err(|e| SetupError::new("setting rootfsPropagation of /", e))?;
        }
        Ok(slave)
    }

    /// Make the rootfs a mount point of its own (pivot_root needs one) and return an O_PATH
    /// fd of that mount's root, the anchor for every later in-root lookup.
    fn bind_rootfs(&self) -> Result<OwnedFd, SetupError> {
        let what = format!("bind-mounting the rootfs {}", self.rootfs.display());
        let fd = sys::open(self.rootfs, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| SetupError::new(what.clone(), e))?;
        let path = cstr(fd_path(&fd)).map_err(|e| SetupError::new(what.clone(), e))?;
        sys::mount(Some(&path), &path, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(|e| SetupError::new(what.clone(), e))?;
        sys::open(self.rootfs, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| SetupError::new(what, e))
    }
}

/// A tmpfs on /dev with `ro`: the same entry without `ro`, and the per-mount flags to apply
/// once /dev is populated.
fn read_only_dev_tmpfs(m: &Mount) -> Option<(Mount, libc::c_ulong)> {
    let opts = m.options().as_deref().unwrap_or_default();
    let parsed = options::MountOptions::parse(opts);
    if m.destination() != Path::new("/dev")
        || m.typ().as_deref() != Some("tmpfs")
        || parsed.bind
        || parsed.flags & libc::MS_RDONLY == 0
    {
        return None;
    }
    let mut writable = m.clone();
    writable.set_options(Some(opts.iter().filter(|o| *o != "ro").cloned().collect()));
    Some((writable, parsed.bind_remount_flags()))
}
