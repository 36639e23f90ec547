//! husk-pause: the process of a pod's infra container (`husk pod create`). It holds the
//! pod's network, IPC and UTS namespaces for the containers that join them, and does
//! nothing else: it sleeps until a signal ends it, reaping whatever children it inherits
//! meanwhile (as PID 1 of its PID namespace, orphans of an `exec` land on it).
//!
//! As PID 1 it gets no signal it has no handler for, so every asynchronous signal is
//! blocked and taken with sigwaitinfo: SIGCHLD reaps, SIGTERM/SIGINT/SIGHUP/SIGQUIT end it
//! (status 0; `husk pod stop` sends SIGTERM), anything else is ignored.
//!
//! It is a file of its own in an image of one layer that has nothing else (no C library,
//! no shell), so build.rs compiles this file on its own as a statically linked executable
//! and husk embeds it; it uses std and a few libc functions declared here (no crates).

use std::os::raw::c_int;

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64"
)))]
compile_error!("husk-pause: signal numbers below are those of x86, arm and riscv");

const SIGHUP: c_int = 1;
const SIGINT: c_int = 2;
const SIGQUIT: c_int = 3;
const SIGTERM: c_int = 15;
const SIGCHLD: c_int = 17;
const SIG_BLOCK: c_int = 0;
const WNOHANG: c_int = 1;

#[repr(C)]
struct SigSet([u64; 16]); // glibc's sigset_t: 1024 bits
#[repr(C)]
struct SigInfo([u64; 16]); // siginfo_t: 128 bytes

extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwaitinfo(set: *const SigSet, info: *mut SigInfo) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
}

fn main() {
    let mut set = SigSet([0; 16]);
    unsafe {
        // SIGKILL and SIGSTOP stay unblockable; the kernel ignores them in the set.
        sigfillset(&mut set);
        if sigprocmask(SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            eprintln!(
                "husk-pause: blocking signals: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(1);
        }
    }
    let mut info = SigInfo([0; 16]);
    loop {
        match unsafe { sigwaitinfo(&set, &mut info) } {
            SIGHUP | SIGINT | SIGQUIT | SIGTERM => std::process::exit(0),
            SIGCHLD => {
                let mut status = 0;
                while unsafe { waitpid(-1, &mut status, WNOHANG) } > 0 {}
            }
            _ => {}
        }
    }
}
