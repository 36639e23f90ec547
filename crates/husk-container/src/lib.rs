//! husk-container: the husk runtime library.
//!
//! Build, start, signal and delete OCI containers from Rust, without shelling out to a
//! runtime binary. The process model: the calling ("main") process clones the container's
//! init straight into its new namespaces (through an intermediate process only when
//! namespaces are joined by path or a time namespace is made); init sets up the rootfs and
//! the process's identity, reports over one socketpair, and waits for `start` at an exec
//! gate in the state directory, so no husk process needs to stay alive.
//!
//! The calling process must be single-threaded while [`InitContainerBuilder::build`] runs
//! (the children continue on copies of its stack, like after fork).
//!
//! Running `sh -c 'exit 3'` from a bundle whose rootfs is Debian's busybox-static (this
//! example runs as a test, as root):
//!
//! ```
//! use husk_container::{ContainerBuilder, Status};
//! # use std::path::Path;
//! # fn make_bundle(dir: &Path) {
//! #     let rootfs = dir.join("rootfs");
//! #     std::fs::create_dir_all(rootfs.join("bin")).unwrap();
//! #     std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
//! #     std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
//! #     let config = serde_json::json!({
//! #         "ociVersion": "1.0.2",
//! #         "root": {"path": "rootfs"},
//! #         "process": {"args": ["sh", "-c", "exit 3"], "cwd": "/", "user": {"uid": 0, "gid": 0},
//! #                     "env": ["PATH=/bin"]},
//! #         "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
//! #                    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}],
//! #         "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}]}
//! #     });
//! #     std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
//! # }
//! # let tmp = std::env::temp_dir().join(format!("husk-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&tmp);
//! # let bundle = tmp.join("bundle");
//! # make_bundle(&bundle);
//! let mut container = ContainerBuilder::new("doc-example")
//!     .root_path(tmp.join("state"))
//!     .as_init(&bundle)
//!     .build()?;
//! assert_eq!(container.status(), Status::Created);
//! container.start()?;
//! assert_eq!(container.wait()?, 3);
//! assert_eq!(container.status(), Status::Stopped);
//! container.delete(false)?;
//! # std::fs::remove_dir_all(&tmp).unwrap();
//! # Ok::<(), husk_container::Error>(())
//! ```
//!
//! Existing containers are reopened with [`Container::load`] and listed with
//! [`Container::list`].

mod builder;
mod capabilities;
mod channel;
pub mod checkpoint;
mod console;
mod container;
mod container_cgroups;
mod create;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod hooks;
mod identity;
mod interrupt;
pub mod lsm;
mod netdev;
mod process;
mod rootfs;
pub mod rootless;
mod seccomp;
pub mod selfexe;
mod spec;
mod state;
pub mod supervise;
mod sys;
mod tenant;
pub mod terminal;
pub mod timeline;
pub mod validate;

pub use builder::{ContainerBuilder, InitContainerBuilder, DEFAULT_ROOT};
pub use container::{Container, Listed};
pub use error::{Error, Result};
/// Sub-cgroups for `exec --cgroup` (see [`TenantContainerBuilder::sub_cgroups`]).
pub use husk_cgroups::SubCgroups;
pub use husk_oci::{StateOutput, Status};
/// Bring up `lo` in the caller's (new) network namespace, as the runtime does for a
/// container's own: what the engine uses for a namespace it makes and holds itself.
pub use netdev::loopback_up;
pub use process::ExecFailure;
/// Copy one directory's content into another fd-relative, never following a symlink, with
/// modes, owners and times (tmpcopyup's copy): what the engine fills a new volume with.
pub use rootfs::copyup::copy_dir as copy_up_dir;
/// Open a path confined to a root directory (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
/// or an equivalent walk): what the engine uses to reach into a container's rootfs.
pub use rootfs::resolve::open_in_root;
pub use seccomp::{SeccompFeatures, SECCOMP_FEATURES};
/// Read a config.json or an `exec --process` file as runc does: unknown capability names are
/// dropped, with the warning to give.
pub use spec::{parse_process, parse_spec};
/// A process's start time (clock ticks after boot) and whether it is a zombie: with its
/// pid, an identity that survives pid reuse.
pub use sys::proc_start_time;
pub use tenant::{TenantContainerBuilder, TenantProcess};
