//! The foreground side of a container process (`husk run` / `husk exec` without -d): its
//! pty proxied to ours (-t), signals forwarded to it, stdin from /dev/null without -i.

use crate::os::{IoContext, IoError, SysError};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// husk-container's terminal code reports its failed step as text.
    #[error("{0}")]
    Terminal(String),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Sys(#[from] SysError),
}

static INIT_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = INIT_PID.load(Ordering::SeqCst);
    if pid > 0 {
        unsafe { libc::kill(pid, sig) };
    }
}

pub(crate) fn forward_signals(pid: i32) {
    INIT_PID.store(pid, Ordering::SeqCst);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Our side of a container process's pty (`-t`): a console socket the library sends the
/// master to (as it would to conmon), and every signal blocked, for the proxy's signalfd.
pub(crate) struct Tty {
    listener: husk_container::terminal::ConsoleListener,
    signals: libc::sigset_t,
}

impl Tty {
    pub(crate) fn new() -> Result<Tty, AttachError> {
        Ok(Tty {
            listener: husk_container::terminal::ConsoleListener::new()
                .map_err(AttachError::Terminal)?,
            signals: husk_container::supervise::block_signals(),
        })
    }

    pub(crate) fn socket(&self) -> &Path {
        self.listener.path()
    }

    /// Take the master of `pid`'s pty, put our terminal in raw mode and copy both ways
    /// (signals forwarded, window size followed) until `pid` exits; its exit code.
    pub(crate) fn attach(&self, pid: i32) -> Result<i32, AttachError> {
        let master = self
            .listener
            .receive_master()
            .map_err(AttachError::Terminal)
            .inspect_err(|_| unsafe {
                libc::kill(pid, libc::SIGKILL);
            })?;
        husk_container::terminal::copy_window_size(&master);
        let _raw = husk_container::terminal::RawMode::enter();
        husk_container::terminal::proxy(
            &master,
            &self.signals,
            &mut || husk_container::supervise::reap(pid),
            &mut |sig| unsafe {
                libc::kill(pid, sig);
            },
        )
        .map_err(AttachError::Terminal)
    }
}

/// The container reads /dev/null, not our stdin (podman's default without -i).
pub(crate) fn stdin_from_dev_null() -> Result<(), AttachError> {
    let null = std::fs::File::open("/dev/null").ctx("opening", "/dev/null")?;
    if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0) } < 0 {
        return Err(SysError::last("dup2").into());
    }
    Ok(())
}

/// The container has exited: signals are ours again.
pub(crate) fn stop_forwarding() {
    INIT_PID.store(0, Ordering::SeqCst);
}
