//! Creating the container's processes: clone3 with namespace flags, a pidfd and (cgroup v2)
//! CLONE_INTO_CGROUP, so the child is born in its namespaces and cgroup in one syscall.
//!
//! Like fork, the child continues on a copy of the caller's stack; this is sound because the
//! runtime is single-threaded (no locks can be held by another thread at clone time).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The parent's view of a new child.
pub struct Child {
    pub pid: i32,
    /// A pidfd for the child when the kernel gave one (immune to pid reuse).
    pub pidfd: Option<OwnedFd>,
    /// Whether the child was born inside the requested cgroup.
    pub in_cgroup: bool,
}

/// Clone with `flags` (CLONE_NEW*, and CLONE_PARENT to make the child our parent's).
/// Returns `Ok(None)` in the child.
pub fn clone_child(flags: u64, cgroup_fd: Option<RawFd>) -> io::Result<Option<Child>> {
    let mut pidfd: RawFd = -1;
    // With CLONE_PARENT the child gets the parent's exit signal; clone3 wants 0 here.
    let parent = flags & libc::CLONE_PARENT as u64 != 0;
    let mut args = CloneArgs {
        flags: flags | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: if parent { 0 } else { libc::SIGCHLD as u64 },
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    let mut r = unsafe { raw_clone3(&mut args) };
    let mut in_cgroup = cgroup_fd.is_some();
    if r < 0 && cgroup_fd.is_some() {
        // Some cgroups refuse CLONE_INTO_CGROUP (e.g. threaded or domain-invalid); the caller
        // then moves the child in by cgroup.procs before letting it run.
        args.flags &= !CLONE_INTO_CGROUP;
        args.cgroup = 0;
        in_cgroup = false;
        r = unsafe { raw_clone3(&mut args) };
    }
    if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        // Pre-5.3 kernels: plain clone with a NULL stack behaves like fork.
        in_cgroup = false;
        pidfd = -1;
        r = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
    }
    match r {
        r if r < 0 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(Child {
            pid: pid as i32,
            pidfd: (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) }),
            in_cgroup,
        })),
    }
}

unsafe fn raw_clone3(args: &mut CloneArgs) -> libc::c_long {
    libc::syscall(
        libc::SYS_clone3,
        args as *mut CloneArgs,
        std::mem::size_of::<CloneArgs>(),
    )
}
