//! The one socketpair between the main process and the container's processes.
//!
//! SOCK_SEQPACKET keeps message boundaries, so each message is one small JSON datagram and
//! EOF (every child end closed, e.g. init exec'd or died) is seen as a zero-length read.

use crate::process::SetupError;
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// What flows over the channel.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    /// intermediate → main: the host pid of the init process it cloned.
    InitPid(i32),
    /// main → init: uid/gid maps written; go on with setup.
    Go,
    /// main → init, right after Go and only when init got a `listenerPath` socket
    /// (SCMP_ACT_NOTIFY): the JSON init sends with the seccomp notify fd. The main process
    /// writes it because only it knows init's host pid and the container's state.
    SeccompListener(String),
    /// main → init: init now sits in its cgroup (moving a process into a v1 cgroup waits
    /// for an RCU grace period, so init sets up its rootfs meanwhile and waits for this
    /// only where its cgroup matters: the cgroup mount and the cgroup namespace).
    Joined,
    /// init → main: mounts are done, pivot_root is next: run the prestart and createRuntime
    /// hooks (sent only when the spec has hooks; see `hooks::init_needs_state`).
    RunHooks,
    /// main → init: those hooks passed; the state JSON for init's own hooks.
    HookState(String),
    /// init → main, just before Ready and only when asked for: init's phase timestamps
    /// (`timeline.rs`).
    Timeline(Vec<(String, u64)>),
    /// init → main: setup finished; init now waits for `start`.
    Ready,
    /// tenant → main: only execve is left, and a seccomp listener may hold it as long as it
    /// likes: stop waiting for the EOF of the exec.
    ExecPending,
    /// init or intermediate → main: a setup step failed; one line naming the step and path.
    Failed(SetupError),
}

pub struct Channel(OwnedFd);

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Channel {
    /// A connected pair (main end, child end); both close-on-exec.
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let mut fds = [0; 2];
        crate::sys::check(unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        })?;
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((Channel(a), Channel(b)))
    }

    pub fn send(&self, msg: &Msg) -> io::Result<()> {
        let buf = serde_json::to_vec(msg).map_err(io::Error::other)?;
        crate::sys::retry(|| {
            let n = unsafe {
                libc::send(
                    self.0.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        })
    }

    /// Next message, or `None` on EOF (the peer closed or exited).
    pub fn recv(&self) -> io::Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut reset = false;
        let n = loop {
            let r = crate::sys::retry(|| {
                let n = unsafe {
                    libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                // A peer that exits with one of our messages unread (init failed before it
                // read `Joined`) leaves ECONNRESET pending on our end, and the kernel reports
                // it *before* the messages queued here: the peer's `Failed` is still there
                // to read. The error is cleared once reported, so read again (once).
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) && !reset => reset = true,
                r => break r?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_boundaries_and_eof_is_none() {
        let (a, b) = Channel::pair().unwrap();
        b.send(&Msg::InitPid(42)).unwrap();
        b.send(&Msg::Failed(SetupError::msg(
            "mounting proc on /proc: Operation not permitted",
        )))
        .unwrap();
        assert_eq!(a.recv().unwrap(), Some(Msg::InitPid(42)));
        assert!(
            matches!(a.recv().unwrap(), Some(Msg::Failed(s)) if s.to_string().contains("/proc"))
        );
        drop(b);
        assert_eq!(a.recv().unwrap(), None);
    }

    #[test]
    fn a_failure_is_read_when_the_peer_left_our_message_unread() {
        // init reports its failure and exits before it reads `Joined`.
        let (a, b) = Channel::pair().unwrap();
        b.send(&Msg::Failed(SetupError::msg("exec \"/no/such\": nope")))
            .unwrap();
        a.send(&Msg::Joined).unwrap();
        drop(b);
        assert!(matches!(a.recv().unwrap(), Some(Msg::Failed(_))));
        assert_eq!(a.recv().unwrap(), None);
    }
}
