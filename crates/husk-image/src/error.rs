//! Typed errors: every variant names the operation and the object (path, reference, digest).

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("invalid digest {digest:?}")]
    InvalidDigest { digest: String },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An HTTP exchange failed before a response (connection, TLS, ...).
    #[error("{url}: {message}")]
    Transport { url: String, message: String },

    /// TLS to the registry failed on its certificate: not signed by a CA we trust (or
    /// otherwise invalid for it).
    #[error("{url}: {message}")]
    UntrustedCertificate {
        registry: String,
        url: String,
        message: String,
    },

    /// The registry wants credentials and we had none for it.
    #[error("authentication required")]
    AuthRequired { registry: String },

    /// The registry answered with an error (its own error message when it sent one).
    #[error("{message}")]
    Registry {
        status: u16,
        code: String,
        message: String,
    },

    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("no image for platform {wanted} (available: {})", available.join(", "))]
    NoMatchingPlatform {
        wanted: String,
        available: Vec<String>,
    },

    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),

    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },

    /// A layer that tried to do something unsafe or is malformed.
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    BadLayer {
        layer: String,
        entry: String,
        reason: String,
    },

    /// A system call failed while applying a layer entry.
    #[error("layer {layer}: {op} {entry:?}: {source}")]
    Unpack {
        layer: String,
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// A registry sent more bytes for a blob than its descriptor declares (an endless or
    /// over-long body); the download stopped there.
    #[error(
        "blob {digest}: the registry sent more than the {declared} bytes the descriptor declares"
    )]
    BlobTooLong { digest: String, declared: u64 },

    /// Unpacking a layer would pass a configured limit (bytes written or entries).
    #[error(
        "layer {layer}: unpacking stopped at the limit of {limit} ({setting} in the settings)"
    )]
    UnpackLimit {
        layer: String,
        limit: String,
        setting: &'static str,
    },

    /// Not enough free space in the store for what a pull needs.
    #[error("not enough space in {path}: at least {needed} bytes needed (compressed layers and as much again unpacked), {available} available")]
    NoSpace {
        path: PathBuf,
        needed: u64,
        available: u64,
    },

    #[error("image not known: {0}")]
    ImageNotKnown(String),

    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// True for "the registry says the object does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Registry { status: 404, .. })
    }
}

/// Attach an operation and a path to an io::Result.
pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
