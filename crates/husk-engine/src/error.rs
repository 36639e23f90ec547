//! The engine's error: each module's own (thiserror) enum, composed here, plus the
//! operation a caller asked for (`run IMAGE`, `stop NAME`) wrapped around whatever step
//! failed, so that `Display` is the one line a CLI prints: "stop web: the container is
//! paused: unpause it first".

use crate::os::{IoError, SysError};
use std::io;

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What only `run` (run.rs) can run into.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the name {0:?} is already in use")]
    NameInUse(String),
    #[error("{0} threads still running before the container is made")]
    Threads(usize),
    #[error("deleting the container: {0}")]
    Delete(husk_container::Error),
    #[error("{flag} container:{name}: the container is not running")]
    JoinNotRunning { flag: &'static str, name: String },
    #[error("--pull never: the image is not in the store ({0})")]
    NotLocal(husk_image::Error),
    #[error("--group-add {0}: no such group in the image's /etc/group")]
    NoGroup(String),
    /// A container's config.json that does not parse (joining another's namespaces again).
    #[error("{}: {source}", path.display())]
    SpecFile {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// A container in the wrong state for what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("the container is {0}, not running")]
    NotRunning(&'static str),
    #[error("the container is paused: unpause it first")]
    Paused,
    #[error("the container is already paused")]
    AlreadyPaused,
    #[error("the container is not paused")]
    NotPaused,
    #[error("the container is {0}: stop it first or use -f")]
    StillRunning(&'static str),
    #[error("the container is {0}")]
    NotExited(&'static str),
    #[error("the container did not exit after SIGKILL")]
    DidNotExit,
    /// `kill`'s signal.
    #[error(transparent)]
    Signal(#[from] crate::spec_from_image::flags::SignalError),
    /// `rm` without -f of a container whose record does not parse (cut short, not JSON).
    #[error(
        "its record {} is damaged ({source}): rm -f removes what is left of the container",
        path.display()
    )]
    Damaged {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("its image {image}: {source}")]
    Image {
        image: String,
        #[source]
        source: husk_image::Error,
    },
}

/// An `exec` option that does not fit, or a container that cannot take a process.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("the container is {0}, not running")]
    NotRunning(&'static str),
    #[error("-e {0:?}: expected KEY=VALUE or KEY (a variable name first)")]
    Env(String),
    #[error("-w {0:?}: must be an absolute path")]
    Workdir(String),
    #[error("-u {user}: {source}")]
    User {
        user: String,
        #[source]
        source: husk_image::Error,
    },
}

/// `cp` (copy.rs).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A path on either side (`CONTAINER:PATH` or a host path) that could not be opened.
    #[error("{path}: {source}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Copy(io::Error),
    #[error("copying between two containers is not supported")]
    BetweenContainers,
    #[error("one side must be CONTAINER:PATH")]
    NoContainer,
}

/// The engine's own image errors (the store's and registries' are husk_image's).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("save: unknown format {0:?} (docker-archive, oci-archive)")]
    Format(String),
    #[error("a tag is needed")]
    NoTag,
    #[error("images: {0}")]
    List(husk_image::Error),
    #[error("collecting unused layers: {0}")]
    Collect(husk_image::Error),
    #[error("image prune: {0}")]
    Prune(husk_image::Error),
    #[error("verifying the store: {0}")]
    Verify(husk_image::Error),
    #[error("parsing the image's {what}: {source}")]
    Parse {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What the caller asked for (`op` on `target`), and the step of it that failed.
    #[error("{op} {target}: {source}")]
    Op {
        op: &'static str,
        target: String,
        #[source]
        source: Box<Error>,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error(transparent)]
    Pasta(#[from] crate::network::pasta::ConnectError),
    #[error(transparent)]
    Monitor(#[from] crate::monitor::MonitorError),
    #[error(transparent)]
    Pod(#[from] crate::pod::PodError),
    #[error(transparent)]
    /// Boxed: a manifest's errors carry names and paths (kube/mod.rs has the From).
    Kube(Box<crate::kube::KubeError>),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error(transparent)]
    Changes(#[from] crate::changes::ChangesError),
    #[error(transparent)]
    Change(#[from] crate::commit::ChangeError),
    #[error(transparent)]
    Commit(#[from] crate::commit::CommitError),
    #[error(transparent)]
    Events(#[from] crate::events::EventsError),
    #[error(transparent)]
    Userns(#[from] crate::userns::UsernsError),
    #[error(transparent)]
    UsernsAuto(#[from] crate::userns::AutoError),
    #[error(transparent)]
    KeepId(#[from] crate::keep_id::KeepIdError),
    #[error(transparent)]
    Embedded(#[from] crate::embedded::EmbeddedError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Attach(#[from] crate::attach::AttachError),
    #[error(transparent)]
    Health(#[from] crate::health::HealthError),
    #[error(transparent)]
    Writable(#[from] crate::writable::WritableError),
    #[error(transparent)]
    AttachSocket(#[from] crate::attach_socket::AttachSocketError),
    #[error(transparent)]
    Images(#[from] ImageError),
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
    #[error(transparent)]
    AppArmor(#[from] crate::apparmor::AppArmorError),
    #[error(transparent)]
    Build(#[from] crate::build::BuildError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// From the image store or a registry.
    #[error(transparent)]
    Image(#[from] husk_image::Error),
    /// From the runtime library (create, start, kill, delete...).
    #[error(transparent)]
    Runtime(#[from] husk_container::Error),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Sys(#[from] SysError),
}

impl Error {
    /// `self` as the failure of `op` on `target`.
    pub fn during(self, op: &'static str, target: impl Into<String>) -> Error {
        Error::Op {
            op,
            target: target.into(),
            source: Box::new(self),
        }
    }

    /// docker's exit status for a `run` or `exec` that failed before the container's
    /// process ran: see [`crate::exit_status`].
    pub fn exit_code(&self) -> i32 {
        match self.root() {
            Error::Runtime(e) => crate::exit_status::of_runtime(e),
            Error::Monitor(crate::monitor::MonitorError::Start { status, .. }) => *status,
            Error::Build(b) => b.exit_code(),
            _ => crate::exit_status::ENGINE,
        }
    }

    /// The step that failed, below every [`Error::Op`].
    pub fn root(&self) -> &Error {
        match self {
            Error::Op { source, .. } => source.root(),
            e => e,
        }
    }
}

/// `map_err(|e| e.during(op, target))` for any error the engine's error takes.
pub(crate) trait During<T> {
    fn during(self, op: &'static str, target: impl Into<String>) -> Result<T>;
}

impl<T, E: Into<Error>> During<T> for std::result::Result<T, E> {
    fn during(self, op: &'static str, target: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().during(op, target))
    }
}
