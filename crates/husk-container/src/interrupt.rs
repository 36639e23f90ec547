//! Giving up cleanly when the caller does. A caller that stops waiting for `create` (or
//! `exec`) — `timeout`, a shim's deadline, Ctrl-C, a closed terminal — sends SIGTERM, SIGINT
//! or SIGHUP. Dying of it would leave the state dir, the cgroup and init behind; instead
//! those signals are blocked while the command runs and read from a signalfd that every
//! wait polls beside what it waits for. When one arrives the wait fails with
//! [`Error::Interrupted`], the command's undo removes what it made, and the binary exits
//! with 128 + the signal.
//!
//! Signal masks are per thread: this is for single-threaded callers (husk-runtime), which
//! opt in (`ContainerBuilder::interruptible`). Children inherit the mask; init and tenant
//! processes reset it before execve (`sys::reset_signals`), and hooks are started by
//! `std::process::Command`, which clears it.

use crate::error::Error;
use crate::sys;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The signals a giving-up caller sends.
const SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// While alive: SIGTERM, SIGINT and SIGHUP are blocked and readable from a signalfd. Drop
/// restores the previous mask (a signal that came after the last look is then delivered).
pub struct Interrupt {
    fd: OwnedFd,
    old_mask: libc::sigset_t,
}

impl Interrupt {
    pub fn new() -> io::Result<Interrupt> {
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in SIGNALS {
                libc::sigaddset(&mut set, s);
            }
            let mut old_mask: libc::sigset_t = std::mem::zeroed();
            sys::check(libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old_mask))?;
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                let e = io::Error::last_os_error();
                libc::sigprocmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
                return Err(e);
            }
            Ok(Interrupt {
                fd: OwnedFd::from_raw_fd(fd),
                old_mask,
            })
        }
    }

    /// The fd to poll: readable once one of the signals is pending.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The signal that arrived, if one did (taken: the next call looks for another).
    pub fn caught(&self) -> Option<i32> {
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut info).cast(), size) };
        (n == size as isize).then_some(info.ssi_signo as i32)
    }

    /// `Err(Interrupted)` when a signal has arrived; for the points between waits.
    pub fn check(&self) -> Result<(), Error> {
        match self.caught() {
            Some(sig) => Err(Error::Interrupted(sig)),
            None => Ok(()),
        }
    }

    /// Wait until `fd` is readable (or has hung up), or fail with `Interrupted` when a
    /// signal comes first.
    pub fn wait_readable(&self, fd: RawFd) -> Result<(), Error> {
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io("waiting on", "the runtime's channel", e));
            }
            if fds[1].revents != 0 {
                self.check()?;
            }
            if fds[0].revents != 0 {
                return Ok(());
            }
        }
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut()) };
    }
}

/// `wait_readable` on an optional interrupt: a plain wait (nothing to do) without one.
pub fn wait_readable(intr: Option<&Interrupt>, fd: RawFd) -> Result<(), Error> {
    match intr {
        Some(i) => i.wait_readable(fd),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_ends_the_wait_and_the_mask_comes_back() {
        let (a, _b) = crate::channel::Channel::pair().unwrap();
        let blocked_before = is_blocked(libc::SIGHUP);
        {
            let intr = Interrupt::new().unwrap();
            assert!(is_blocked(libc::SIGHUP));
            // A signal sent to this thread: only this test sees it.
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGHUP) };
            match intr.wait_readable(a.as_raw_fd()) {
                Err(Error::Interrupted(s)) => assert_eq!(s, libc::SIGHUP),
                other => panic!("{other:?}"),
            }
            assert_eq!(intr.caught(), None);
        }
        assert_eq!(is_blocked(libc::SIGHUP), blocked_before);
    }

    fn is_blocked(sig: i32) -> bool {
        unsafe {
            let mut cur: libc::sigset_t = std::mem::zeroed();
            libc::sigprocmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur);
            libc::sigismember(&cur, sig) == 1
        }
    }
}
