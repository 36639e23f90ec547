//! The engine's error: each module's own (thiserror) enum, composed here, plus the
//! operation a caller asked for (`run IMAGE`, `stop NAME`) wrapped around whatever step
//! failed, so that `Display` is the one line a CLI prints: "stop web: the container is
//! paused: unpause it first".

use std::io;
use std::path::PathBuf;

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A file-system step failed: what was being done, on which path, and why.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct IoError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// A system call without a path failed (pipe, fork, dup2...).
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct SysError {
    pub op: &'static str,
    #[source]
    pub source: io::Error,
}

impl SysError {
    /// `op` failed with errno.
    pub(crate) fn last(op: &'static str) -> SysError {
        SysError {
            op,
            source: io::Error::last_os_error(),
        }
    }
}

/// Attach an operation and a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, IoError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, IoError> {
        self.map_err(|source| IoError {
            op,
            path: path.into(),
            source,
        })
    }
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
    Run(#[from] crate::run::RunError),
    #[error(transparent)]
    Container(#[from] crate::containers::ContainerError),
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error(transparent)]
    Monitor(#[from] crate::monitor::MonitorError),
    #[error(transparent)]
    Copy(#[from] crate::copy::CopyError),
    #[error(transparent)]
    Userns(#[from] crate::userns::UsernsError),
    #[error(transparent)]
    Embedded(#[from] crate::embedded::EmbeddedError),
    #[error(transparent)]
    Attach(#[from] crate::attach::AttachError),
    #[error(transparent)]
    Images(#[from] crate::images::ImageError),
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
    /// A step of the engine's own, said in words (a name already taken, a missing tag...).
    #[error("{0}")]
    Invalid(String),
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
