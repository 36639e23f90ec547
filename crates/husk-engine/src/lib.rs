//! husk-engine: the container engine as a library. `husk` (the CLI) is argument parsing and
//! printing over it; any other program can drive it the same way:
//!
//! ```no_run
//! # fn main() -> husk_engine::Result<()> {
//! husk_engine::init()?; // first thing in main(): the monitor's helper, rootless, self-protection
//! let engine = husk_engine::Engine::new(Default::default())?;
//! let config = husk_engine::ContainerConfig::validate(&husk_engine::RunOptions::new("busybox"))?;
//! let outcome = engine.run(&config)?;
//! # Ok(()) }
//! ```
//!
//! Modules, each one concern, dependencies pointing down this list (none in a circle):
//!
//! - [`build`]: `husk build`, images from a Containerfile (parser, cache, steps);
//! - [`views`]: docker's layout of containers, images and volumes (inspect, ps, images,
//!   stats, version, info), for any front end;
//! - [`run`], [`containers`], [`exec`], [`copy`], [`changes`], [`export`], [`images`],
//!   [`history`], [`logs`], [`events`], [`system`], [`volumes`]: the operations, as
//!   `impl Engine` blocks; [`run`] executes a [`ContainerConfig`]; [`commit`] makes new
//!   images from layers (`husk commit`, and the API `husk build` uses);
//! - [`error`]: every module's error composed into [`Error`];
//! - [`monitor`]: the per-container monitor of detached containers (no daemon);
//!   [`checkpoint`]: `container checkpoint`/`restore` through it, and their export archive;
//! - [`config`]: options validated into a [`ContainerConfig`] (pure), with
//!   [`host_config`] (docker's HostConfig flags: labels, /etc files, namespaces, devices,
//!   limits) and [`spec_from_image`] making the OCI spec from the image and the config;
//!   [`etc_files`], the container's /etc/hosts, hostname, resolv.conf; `made`, the
//!   undo of a run's steps;
//! - [`pod`] (pods: an infra container whose namespaces members join, as `joins` joins
//!   `container:X` namespaces);
//! - [`rootfs`] (overlay or copy), [`network`], [`attach`] (foreground pty and signals),
//!   [`userns`] (rootless; [`keep_id`], the user's own ids in a container), [`record`] (the containers on disk), [`embedded`] (husk-init,
//!   husk-monitor), [`engine`] (the store root and settings);
//! - [`os`]: errors naming the operation and the path, pipes, locks, pid files;
//!   [`exit_status`]: docker's exit statuses for `run` and `exec`.

pub mod apparmor;
pub mod attach;
pub mod attach_socket;
pub mod build;
pub mod cgroup_place;
pub mod changes;
pub mod checkpoint;
pub mod commit;
pub mod config;
pub mod containers;
pub mod copy;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod etc_files;
pub mod events;
pub mod exec;
pub mod exit_status;
pub mod export;
pub mod health;
pub mod history;
pub mod host_config;
pub mod images;
mod joins;
pub mod keep_id;
pub mod kube;
pub mod logs;
mod made;
pub mod monitor;
pub mod network;
pub mod networks;
pub mod os;
pub mod pod;
pub mod record;
pub mod rootfs;
pub mod run;
pub mod spec_from_image;
pub mod system;
pub mod userns;
pub mod views;
pub mod volumes;
pub mod writable;

pub use attach_socket::{AttachEnd, AttachOptions};
pub use changes::{Change, ChangeKind};
pub use config::{ConfigError, ContainerConfig, ProcessOptions, Restart, RestartError, RunOptions};
pub use containers::{ContainerSummary, ProcessInfo, StatsRow, StatsSampler};
pub use engine::{CgroupManager, Engine, EngineOptions, RegistryOptions};
pub use error::{Error, Result};
pub use health::{HealthOptions, HealthState, Healthcheck};
pub use host_config::{HostConfig, HostOptions, NsMode, PullPolicy};
pub use husk_image::auth::Credentials;
pub use husk_image::pull::Progress;
pub use images::{ArchiveFormat, ImageSummary, PullRequest};
pub use logs::{LogLine, LogOptions, Stream};
pub use network::store::{CreateOptions as NetworkCreateOptions, NetworkDef};
pub use network::Network;
pub use networks::NetworkInfo;
pub use pod::{PodOptions, PodSummary};
pub use run::RunOutcome;
pub use views::{ContainerFilter, ContainerInspect, ImageInspect, PsOptions};
pub use writable::{StorageOptions, WritableLayer};

/// Prepare this process to run containers; call it first in `main()`, while the process is
/// still single-threaded:
/// - when the process was started as a monitor's helper (see [`monitor`]), it does that
///   job and exits here;
/// - for an ordinary user it enters the user's rootless namespaces ([`userns`]);
/// - it re-executes the program from a read-only copy of itself (CVE-2019-5736), so that
///   no container can write the program's file.
pub fn init() -> Result<()> {
    monitor::run_helper_if_asked();
    userns::enter()?;
    protect_executable()
}

/// Re-execute this program from a read-only view of its file (once; a no-op when it already
/// runs from one), so that no container it starts can write the host's copy through
/// /proc/PID/exe (see husk_container::selfexe).
pub fn protect_executable() -> Result<()> {
    let view = husk_container::selfexe::reexec_protected()
        .map_err(engine::EngineError::ProtectExecutable)?;
    *EXE_VIEW.lock().unwrap_or_else(|p| p.into_inner()) = view;
    Ok(())
}

/// The detached read-only mount this program runs from after [`protect_executable`].
/// Closing its last fd waits for an RCU grace period (3–9 ms on a busy machine, see
/// husk_container::selfexe), which closing it at once put on every `run`'s critical path;
/// kept instead until the engine waits anyway ([`release_exe_view`]) or the process exits.
/// Close-on-exec, and every container process closes its copy before it runs.
static EXE_VIEW: std::sync::Mutex<Option<std::os::fd::OwnedFd>> = std::sync::Mutex::new(None);

/// Close the view kept by [`protect_executable`]: a foreground run does it once its
/// container runs, so the grace period overlaps the container's run.
pub(crate) fn release_exe_view() {
    drop(EXE_VIEW.lock().unwrap_or_else(|p| p.into_inner()).take());
}
