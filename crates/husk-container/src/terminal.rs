//! The foreground terminal proxy, for callers that are the terminal's other end themselves
//! (husk-runtime's `run`/`exec -t` without `--console-socket`, `husk run -t`). We listen on a private socket, let the library send the pty master
//! to it (exactly as it would to conmon or containerd-shim), then put our own terminal in
//! raw mode and copy bytes both ways in one poll loop until the container's process exits.
//! Window size: ours at the start and on every SIGWINCH.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// A listening console socket in a private (0700) temporary directory.
pub struct ConsoleListener {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleListener {
    pub fn new() -> Result<ConsoleListener, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("husk-tty-{}-{nanos:x}", std::process::id()));
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&dir)
            .map_err(|e| format!("creating console socket directory {}: {e}", dir.display()))?;
        let path = dir.join("console.sock");
        let listener = UnixListener::bind(&path).map_err(|e| {
            let _ = std::fs::remove_dir(&dir);
            format!("binding console socket {}: {e}", path.display())
        })?;
        Ok(ConsoleListener {
            dir,
            path,
            listener,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master the container sent (it is queued on the accepted connection).
    pub fn receive_master(&self) -> Result<OwnedFd, String> {
        let fail =
            |e: io::Error| format!("receiving the pty master on {}: {e}", self.path.display());
        let (conn, _) = self.listener.accept().map_err(fail)?;
        crate::console::recv_fd(conn.as_raw_fd()).map_err(fail)
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Is `process.terminal` true in this JSON (a config.json or a process.json)?
pub fn wants_terminal(path: &Path, in_config: bool) -> bool {
    let Ok(data) = std::fs::read(path) else {
        return false; // the library reports the unreadable file itself
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else {
        return false;
    };
    let p = if in_config { &v["process"] } else { &v };
    p["terminal"].as_bool().unwrap_or(false)
}

/// Our stdin in raw mode for as long as this lives (no-op when stdin is not a terminal).
pub struct RawMode(Option<libc::termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawMode(None);
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return RawMode(None);
            }
            RawMode(Some(saved))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

/// Copy our stdin's window size to the pty (nothing when stdin is not a terminal).
pub fn copy_window_size(master: &OwnedFd) {
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Proxy stdin → master and master → stdout until `reap` (called on SIGCHLD) returns the
/// exit code; every other signal in `set` (all blocked by the caller) goes to `forward`,
/// except SIGWINCH, which resizes the pty.
pub fn proxy(
    master: &OwnedFd,
    set: &libc::sigset_t,
    reap: &mut dyn FnMut() -> Option<i32>,
    forward: &mut dyn FnMut(i32),
) -> Result<i32, String> {
    let sfd = unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC) };
    if sfd < 0 {
        return Err(format!(
            "creating a signalfd for the terminal: {}",
            io::Error::last_os_error()
        ));
    }
    let sfd = unsafe { OwnedFd::from_raw_fd(sfd) };
    let m = master.as_raw_fd();
    let mut fds = [
        libc::pollfd {
            fd: sfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: m,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let mut buf = vec![0u8; 16 * 1024];
    // A child may have exited before the signalfd existed: its SIGCHLD is still pending and
    // shows up on the signalfd, so nothing is lost.
    let code = 'outer: loop {
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            let n = unsafe {
                libc::read(
                    sfd.as_raw_fd(),
                    (&mut si as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n == size as isize {
                match si.ssi_signo as i32 {
                    libc::SIGCHLD => {
                        if let Some(code) = reap() {
                            break 'outer code;
                        }
                    }
                    libc::SIGWINCH => copy_window_size(master),
                    sig => forward(sig),
                }
            }
        }
        if fds[1].revents != 0 && !copy(m, 1, &mut buf) {
            fds[1].fd = -1; // slave side closed: wait for the exit
        }
        if fds[2].revents != 0 && !copy(0, m, &mut buf) {
            fds[2].fd = -1; // EOF on stdin: keep showing output
        }
    };
    // What the process wrote just before exiting.
    unsafe {
        let fl = libc::fcntl(m, libc::F_GETFL);
        libc::fcntl(m, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    while copy(m, 1, &mut buf) {}
    Ok(code)
}

/// One read from `from`, all of it written to `to`; false on EOF or error.
fn copy(from: i32, to: i32, buf: &mut [u8]) -> bool {
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return io::Error::last_os_error().kind() == io::ErrorKind::Interrupted;
    }
    if n == 0 {
        return false;
    }
    let mut rest = &buf[..n as usize];
    while !rest.is_empty() {
        let w = unsafe { libc::write(to, rest.as_ptr().cast(), rest.len()) };
        if w < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return true; // the reader went away; keep draining the source
        }
        rest = &rest[w as usize..];
    }
    true
}
