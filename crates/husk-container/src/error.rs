//! Errors of the runtime library. Every variant names the operation and the container or path,
//! so a binary can print it as one line.

use std::io;
use std::path::PathBuf;

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    /// runc's text: callers (containerd's shim, CRI-O) look for "does not exist".
    #[error("container does not exist")]
    NotFound(String),
    /// The state dir exists but its state.json is unreadable (`reason` says why): the
    /// container can only be removed, with `delete --force`.
    #[error(
        "container state is unreadable ({reason}); `delete --force {id}` removes the container"
    )]
    Unreadable { id: String, reason: String },
    #[error("invalid container id: {0}")]
    InvalidId(husk_oci::IdError),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("loading {}: {msg}", path.display())]
    Spec { path: PathBuf, msg: String },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A step inside the container's setup failed; `0` is the child's own one-line report.
    #[error("{0}")]
    Setup(String),
    /// The container's process could not be executed: not found, or not executable.
    #[error("{msg}")]
    Exec {
        msg: String,
        cause: crate::process::ExecFailure,
    },
    /// The container's status forbids the operation; `msg` is runc 1.1's text for it
    /// ("container not running", …), which callers match on.
    #[error("{msg}")]
    WrongState {
        id: String,
        status: husk_oci::Status,
        msg: String,
    },
    /// SIGTERM, SIGINT or SIGHUP came while waiting (see `interrupt.rs`); what the
    /// command had made is removed.
    #[error("interrupted by {}: everything made so far was removed", husk_oci::signal::signal_name(*.0))]
    Interrupted(i32),
    /// CRIU failed; `reason` is its log's last error line, `log` the whole log.
    #[error("criu {action} failed: {reason} (log: {})", log.display())]
    Criu {
        action: &'static str,
        reason: String,
        log: PathBuf,
    },
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Lsm(#[from] crate::lsm::LsmError),
    /// Boxed: a hook's failure carries its output, and keeps every `Result` of the
    /// library large if inline.
    #[error(transparent)]
    Hook(Box<crate::hooks::HookError>),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl From<crate::process::SetupError> for Error {
    fn from(e: crate::process::SetupError) -> Error {
        match e.exec_failure() {
            Some(cause) => Error::Exec {
                msg: e.into(),
                cause,
            },
            None => Error::Setup(e.into()),
        }
    }
}

/// Attach an operation and a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
