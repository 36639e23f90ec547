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
#[derive(Debug)]
pub struct SetupError(String);

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
        SetupError(format!("{what}: {text}"))
    }

    pub fn msg(m: impl Into<String>) -> Self {
        SetupError(m.into())
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<SetupError> for String {
    fn from(e: SetupError) -> String {
        e.0
    }
}
