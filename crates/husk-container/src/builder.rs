//! The entry point for programs that run containers without shelling out.

use crate::container::Container;
use crate::create::{create, CreateOptions};
use crate::error::Result;
use crate::tenant::TenantContainerBuilder;
use std::path::PathBuf;

/// Default state root, as `husk-runtime --root` defaults to.
pub const DEFAULT_ROOT: &str = "/run/husk";

/// Configure a new container; finish with [`ContainerBuilder::as_init`] and
/// [`InitContainerBuilder::build`].
#[derive(Debug, Clone)]
pub struct ContainerBuilder {
    id: String,
    root: PathBuf,
    pid_file: Option<PathBuf>,
    console_socket: Option<PathBuf>,
    preserve_fds: u32,
    no_pivot: bool,
    no_new_keyring: bool,
    listen_fds: u32,
    notify_socket: Option<PathBuf>,
    rootless: bool,
    interruptible: bool,
    timeline: bool,
    systemd_cgroup: bool,
}

impl ContainerBuilder {
    pub fn new(id: impl Into<String>) -> Self {
        ContainerBuilder {
            id: id.into(),
            root: PathBuf::from(DEFAULT_ROOT),
            pid_file: None,
            console_socket: None,
            preserve_fds: 0,
            no_pivot: false,
            no_new_keyring: false,
            listen_fds: 0,
            notify_socket: None,
            rootless: crate::rootless::is_unprivileged(),
            interruptible: false,
            timeline: false,
            systemd_cgroup: false,
        }
    }

    /// Directory holding the state of all containers (`--root`).
    pub fn root_path(mut self, p: impl Into<PathBuf>) -> Self {
        self.root = p.into();
        self
    }

    /// Rootless mode (default: whether this process lacks root): cgroups become optional
    /// (none on v1 hosts, none on v2 without a delegated subtree, unless limits are asked
    /// for) and device rules are left to the bind-mounted devices.
    pub fn rootless(mut self, v: bool) -> Self {
        self.rootless = v;
        self
    }

    /// Give up cleanly on SIGTERM, SIGINT or SIGHUP while creating: everything made so far
    /// is removed and the build fails with [`crate::Error::Interrupted`] (the caller exits
    /// 128 + the signal). For single-threaded callers: it blocks those signals in the
    /// calling thread for the duration (see `interrupt.rs`). Off by default.
    pub fn interruptible(mut self, v: bool) -> Self {
        self.interruptible = v;
        self
    }

    /// Record when each phase of the create ends, in this process and in init
    /// ([`Container::timeline`]); off by default (init then sends nothing extra).
    pub fn timeline(mut self, v: bool) -> Self {
        self.timeline = v;
        self
    }

    /// Use the systemd cgroup driver (runc's `--systemd-cgroup`): `linux.cgroupsPath` is
    /// `slice:prefix:name` and the cgroup is a transient scope systemd makes over D-Bus
    /// (see `husk_cgroups::systemd`). cgroup v2 only. Off by default (cgroupfs).
    pub fn systemd_cgroup(mut self, v: bool) -> Self {
        self.systemd_cgroup = v;
        self
    }

    /// Write init's pid here once the container is created.
    pub fn pid_file(mut self, p: impl Into<PathBuf>) -> Self {
        self.pid_file = Some(p.into());
        self
    }

    /// Unix socket that receives the pty master when `process.terminal` is true.
    pub fn console_socket(mut self, p: impl Into<PathBuf>) -> Self {
        self.console_socket = Some(p.into());
        self
    }

    /// Pass fds 3..3+n of the calling process to the container's process.
    pub fn preserve_fds(mut self, n: u32) -> Self {
        self.preserve_fds = n;
        self
    }

    /// Use MS_MOVE + chroot instead of pivot_root (for roots on ramfs).
    pub fn no_pivot(mut self, v: bool) -> Self {
        self.no_pivot = v;
        self
    }

    /// Keep the caller's session keyring instead of making one for the container.
    /// systemd socket activation: fds 3..3+n of the caller are listening sockets. They are
    /// passed on (before any `preserve_fds`), and the process gets `LISTEN_FDS=n`,
    /// `LISTEN_PID=1`.
    pub fn listen_fds(mut self, n: u32) -> Self {
        self.listen_fds = n;
        self
    }

    /// The caller's `NOTIFY_SOCKET`: bind-mounted into the container at
    /// `/run/notify/notify.sock` and named in the process's env, so sd_notify messages
    /// (READY=1, …) from the container reach the host socket when the container sends them.
    pub fn notify_socket(mut self, p: impl Into<PathBuf>) -> Self {
        self.notify_socket = Some(p.into());
        self
    }

    pub fn no_new_keyring(mut self, v: bool) -> Self {
        self.no_new_keyring = v;
        self
    }

    /// A new container whose init runs the bundle's `process`.
    pub fn as_init(self, bundle: impl Into<PathBuf>) -> InitContainerBuilder {
        InitContainerBuilder {
            base: self,
            bundle: bundle.into(),
        }
    }

    /// A process to run in this existing container (`exec`); see [`TenantContainerBuilder`].
    pub fn as_tenant(self) -> TenantContainerBuilder {
        ContainerBuilder::tenant_parts(
            self.id,
            self.root,
            self.pid_file,
            self.console_socket,
            self.preserve_fds,
        )
    }
}

pub struct InitContainerBuilder {
    base: ContainerBuilder,
    bundle: PathBuf,
}

impl InitContainerBuilder {
    /// Create the container (`create`): on success its init is set up and waits for
    /// [`Container::start`]; on failure nothing it made is left behind. Warnings (a rootless
    /// container left without a cgroup) go to stderr; see [`Self::build_with_warnings`].
    pub fn build(self) -> Result<Container> {
        self.build_with_warnings(&mut crate::hooks::warn_stderr)
    }

    /// [`Self::build`], with warnings handed to `warn` instead of printed.
    pub fn build_with_warnings(self, warn: &mut dyn FnMut(String)) -> Result<Container> {
        let b = self.base;
        create(
            CreateOptions {
                root: b.root,
                id: b.id,
                bundle: self.bundle,
                pid_file: b.pid_file,
                console_socket: b.console_socket,
                preserve_fds: b.preserve_fds,
                listen_fds: b.listen_fds,
                notify_socket: b.notify_socket,
                no_pivot: b.no_pivot,
                no_new_keyring: b.no_new_keyring,
                rootless: b.rootless,
                interruptible: b.interruptible,
                timeline: b.timeline,
                systemd_cgroup: b.systemd_cgroup,
            },
            warn,
        )
    }
}
