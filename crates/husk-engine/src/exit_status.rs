//! docker's exit statuses for `run` and `exec` (`docker run --help`, "Exit Status"): the
//! container's command keeps 0-124 and 128+N; a failure before it ran is 125 (the engine's
//! own), 126 (the command is there but cannot be invoked) or 127 (not found). Here, apart
//! from error.rs, so that the monitor's helper (which reports its failures as text) can use
//! it too.

use husk_container::ExecFailure;

/// The engine itself failed (a bad option, no such image, a name in use...).
pub const ENGINE: i32 = 125;
/// The container's command exists but cannot be invoked.
pub const CANNOT_INVOKE: i32 = 126;
/// The container's command was not found.
pub const NOT_FOUND: i32 = 127;

/// The status of a failure of the runtime library.
pub fn of_runtime(e: &husk_container::Error) -> i32 {
    match e {
        husk_container::Error::Exec { cause, .. } => match cause {
            ExecFailure::NotFound => NOT_FOUND,
            ExecFailure::CannotInvoke => CANNOT_INVOKE,
        },
        _ => ENGINE,
    }
}
