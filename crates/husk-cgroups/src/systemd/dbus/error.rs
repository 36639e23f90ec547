//! What can go wrong talking to a message bus, each with what was being done.

use std::time::Duration;

/// A D-Bus failure: the bus could not be reached, it broke the protocol or fell silent, or
/// the peer answered a call with an error (whose D-Bus name and message are kept).
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    /// The address (from the environment or the default) names no transport husk speaks.
    #[error("D-Bus address {addr:?}: {reason}")]
    Address { addr: String, reason: String },
    /// connect(2) to the bus socket failed.
    #[error("connecting to the bus at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A read or write on the bus socket failed.
    #[error("{op} the bus: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The bus did not accept our credentials (AUTH EXTERNAL).
    #[error("the bus refused authentication as uid {uid}: {reply}")]
    Auth { uid: u32, reply: String },
    /// Nothing arrived in time.
    #[error("no answer from the bus in {after:?} while waiting for {what}")]
    Timeout { what: String, after: Duration },
    /// The bus hung up.
    #[error("the bus closed the connection while waiting for {what}")]
    Closed { what: String },
    /// Bytes that are not a D-Bus message, or a message we refuse to send.
    #[error("malformed D-Bus message: {0}")]
    Malformed(String),
    /// The peer answered a method call with an error.
    #[error("{name}: {message}")]
    Method { name: String, message: String },
    /// A reply whose body is not what the method declares.
    #[error("unexpected reply to {member}: body {signature:?}")]
    Reply { member: String, signature: String },
    /// systemd finished a job with another result than "done".
    #[error("systemd's job for {unit} ended with {result:?}")]
    Job { unit: String, result: String },
}

impl DbusError {
    pub(crate) fn malformed(what: impl Into<String>) -> Self {
        DbusError::Malformed(what.into())
    }

    /// The D-Bus error name when the peer answered with an error.
    pub fn name(&self) -> Option<&str> {
        match self {
            DbusError::Method { name, .. } => Some(name),
            _ => None,
        }
    }
}
