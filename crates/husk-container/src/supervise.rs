//! Foreground supervision for callers that wait for a container process (husk-runtime's
//! `run` and `exec`, `husk run -t`): block signals, reap children, and forward every signal
//! but SIGCHLD to the container process until it exits.

/// Block every signal (they are taken with sigwaitinfo instead); returns the full set.
pub fn block_signals() -> libc::sigset_t {
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        all
    }
}

/// Reap every exited child; `pid`'s exit code (128+signal when killed) once it is among them.
pub fn reap(pid: i32) -> Option<i32> {
    loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r <= 0 {
            return None;
        }
        if r == pid {
            return Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
    }
}

/// SIGCHLD reaps (`pid`'s exit ends the loop with its code); any other signal is handed to
/// `forward`.
pub fn forward_signals_until_exit(
    pid: i32,
    set: &libc::sigset_t,
    forward: &mut dyn FnMut(i32),
) -> i32 {
    loop {
        let sig = unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) };
        if sig < 0 {
            continue;
        }
        if sig == libc::SIGCHLD {
            if let Some(code) = reap(pid) {
                return code;
            }
        } else {
            forward(sig);
        }
    }
}
