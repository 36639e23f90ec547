//! The container's processes: how they are cloned (main → [intermediate] → init) and what
//! init does before it waits for `start`.

pub mod clone;
pub mod extras;
pub mod finish;
pub mod gate;
pub mod init;
pub mod namespaces;

use std::fmt;
use std::io;

/// A failed setup step, as one line: "mounting proc on /proc (proc): Operation not permitted".
/// It crosses the channel from init to the main process as it is (serde), so that a failed
/// exec keeps its [`ExecFailure`]: callers map it to an exit status (docker's 126 and 127)
/// from the type, not from the text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetupError {
    msg: String,
    exec: Option<ExecFailure>,
}

impl SetupError {
    pub fn new(what: impl fmt::Display, err: io::Error) -> Self {
        // strerror text without Rust's " (os error N)" suffix, like runc's messages.
        let text = match err.raw_os_error() {
            Some(n) => {
                let s = io::Error::from_raw_os_error(n).to_string();
                s.split(" (os error").next().unwrap_or(&s).to_string()
            }
            None => err.to_string(),
        };
        SetupError::msg(format!("{what}: {text}"))
    }

    pub fn msg(m: impl Into<String>) -> Self {
        SetupError {
            msg: m.into(),
            exec: None,
        }
    }

    /// execve of `path` (or the check before it) failed with `err`.
    pub fn exec(path: impl fmt::Debug, err: io::Error) -> Self {
        let cause = ExecFailure::of(&err);
        SetupError {
            exec: Some(cause),
            ..SetupError::new(format!("exec {path:?}"), err)
        }
    }

    /// `arg0` is nowhere in $PATH.
    pub fn exec_not_in_path(arg0: &str) -> Self {
        SetupError {
            msg: format!("exec {arg0:?}: executable file not found in $PATH"),
            exec: Some(ExecFailure::NotFound),
        }
    }

    /// Why the process could not be executed, when that is what failed.
    pub fn exec_failure(&self) -> Option<ExecFailure> {
        self.exec
    }
}

/// Why a container's process could not be executed: docker's exit statuses 127
/// ([`ExecFailure::NotFound`]) and 126 ([`ExecFailure::CannotInvoke`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExecFailure {
    /// No such file (or a missing directory on its path, or not in $PATH).
    NotFound,
    /// There, but not executable by the process: permission denied, a directory, not a
    /// format the kernel runs...
    CannotInvoke,
}

impl ExecFailure {
    fn of(err: &io::Error) -> ExecFailure {
        match err.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => ExecFailure::NotFound,
            _ => ExecFailure::CannotInvoke,
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<SetupError> for String {
    fn from(e: SetupError) -> String {
        e.msg
    }
}
