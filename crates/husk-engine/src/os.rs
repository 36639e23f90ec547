//! Small OS pieces the engine's modules share: errors that name the operation and the path
//! (or the system call), close-on-exec pipes, exclusive file locks, and pid files that name
//! a process across pid reuse (its pid and start time). The bottom of the module graph.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

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
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> std::result::Result<T, IoError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> std::result::Result<T, IoError> {
        self.map_err(|source| IoError {
            op,
            path: path.into(),
            source,
        })
    }
}

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe() -> Result<(OwnedFd, OwnedFd), SysError> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SysError::last("pipe"));
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// An exclusive flock on `path` (made if missing), held until the file is dropped.
pub fn lock_file(path: &Path) -> Result<std::fs::File, IoError> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .ctx("opening", path)?;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).ctx("locking", path);
    }
    Ok(f)
}

/// Record `pid` with its start time in `path`.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), IoError> {
    let start = husk_container::rootless::process_start_time(pid).unwrap_or_default();
    std::fs::write(path, format!("{pid} {start}\n")).ctx("writing", path)
}

/// The process a pid file names, if it still runs (a zombie or a reused pid does not count).
pub fn live_pid(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut f = text.split_whitespace();
    let pid: i32 = f.next()?.parse().ok()?;
    let start: u64 = f.next()?.parse().ok()?;
    (pid > 1 && husk_container::rootless::process_start_time(pid) == Some(start)).then_some(pid)
}

/// Signal the process a pid file names (if it is still that process), give it half a second
/// to go — reaping it when it is our child, else its parent does — and remove the pid file.
pub fn stop_pid_file(path: &Path, signal: libc::c_int) {
    if let Some(pid) = live_pid(path) {
        unsafe { libc::kill(pid, signal) };
        for _ in 0..50 {
            let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            if r == pid || live_pid(path).is_none() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    let _ = std::fs::remove_file(path);
}
