//! husk-init: what `husk run --init` runs as the container's PID 1.
//!
//!   husk-init [--] COMMAND [ARG…]
//!
//! Starts COMMAND (looked up in PATH), forwards the signals an engine or a user sends
//! (HUP INT QUIT USR1 USR2 TERM, and the other asynchronous ones) to it, reaps every child
//! — including orphans re-parented to PID 1, which a plain program at PID 1 leaves as
//! zombies — and exits with COMMAND's exit code, or 128+N when signal N killed it. When
//! PID 1 exits the kernel kills whatever else is left in the container.
//!
//! It is bind-mounted into images that may have no C library at all (busybox-static), so
//! build.rs compiles this file on its own as a statically linked executable and husk
//! embeds it; it uses std and a few libc functions declared here (no crates).
//!
//! How: every asynchronous signal is blocked, and one loop takes them with sigtimedwait
//! (a blocked signal is queued even at PID 1, where an unhandled one would be dropped).
//! SIGCHLD means "reap with WNOHANG until nothing is left"; anything else is sent on to
//! COMMAND, whose signal mask is emptied again between fork and exec (std's spawn keeps
//! the parent's mask).

use std::ffi::OsString;
use std::os::raw::{c_int, c_long};
use std::os::unix::process::CommandExt;
use std::process::Command;

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64"
)))]
compile_error!("husk-init: signal numbers below are those of x86, arm and riscv");

const SIGCHLD: c_int = 17;
/// Synchronous signals (a fault of this process) and the two that cannot be blocked.
const NOT_BLOCKED: [c_int; 9] = [4, 5, 6, 7, 8, 9, 11, 19, 31]; // ILL TRAP ABRT BUS FPE KILL SEGV STOP SYS
const SIG_BLOCK: c_int = 0;
const SIG_SETMASK: c_int = 2;
const WNOHANG: c_int = 1;

#[repr(C)]
struct SigSet([u64; 16]); // glibc's sigset_t: 1024 bits
#[repr(C)]
struct SigInfo([u64; 16]); // siginfo_t: 128 bytes
#[repr(C)]
struct Timespec {
    sec: c_long,
    nsec: c_long,
}

extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigdelset(set: *mut SigSet, sig: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigtimedwait(set: *const SigSet, info: *mut SigInfo, timeout: *const Timespec) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
}

fn fail(msg: &str, code: i32) -> ! {
    eprintln!("husk-init: {msg}");
    std::process::exit(code)
}

/// The shell's convention for a wait status: the exit code, or 128+signal.
fn exit_code(status: c_int) -> i32 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}

fn main() {
    let mut cmd: Vec<OsString> = std::env::args_os().skip(1).collect();
    if cmd.first().is_some_and(|a| a == "--") {
        cmd.remove(0);
    }
    if cmd.is_empty() {
        fail("usage: husk-init [--] COMMAND [ARG...]", 2);
    }
    let mut set = SigSet([0; 16]);
    unsafe {
        sigfillset(&mut set);
        for s in NOT_BLOCKED {
            sigdelset(&mut set, s);
        }
        if sigprocmask(SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            fail(
                &format!("blocking signals: {}", std::io::Error::last_os_error()),
                1,
            );
        }
    }
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..]);
    // Only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let mut none = SigSet([0; 16]);
            sigemptyset(&mut none);
            if sigprocmask(SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match c.spawn() {
        Ok(c) => c.id() as c_int,
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            };
            fail(&format!("{}: {e}", cmd[0].to_string_lossy()), code)
        }
    };
    // The Child is not waited for through std: waitpid(-1) below reaps it with the rest.
    let mut info = SigInfo([0; 16]);
    // A second's timeout only bounds the wait should a SIGCHLD ever be missed.
    let timeout = Timespec { sec: 1, nsec: 0 };
    loop {
        loop {
            let mut status: c_int = 0;
            let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if pid <= 0 {
                break; // 0: children left, none exited; -1: none left (ECHILD)
            }
            if pid == child {
                std::process::exit(exit_code(status));
            }
        }
        let sig = unsafe { sigtimedwait(&set, &mut info, &timeout) };
        if sig > 0 && sig != SIGCHLD {
            unsafe { kill(child, sig) };
        }
    }
}
