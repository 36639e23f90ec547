//! OOM notification for `events`.
//!
//! v1: an eventfd registered through cgroup.event_control for memory.oom_control; the
//! kernel signals it on every OOM in the cgroup (and when the cgroup is removed).
//! v2: an inotify watch on memory.events, which the kernel marks modified when one of its
//! counters changes; the "oom"/"oom_kill" counters tell whether it was an OOM.
//!
//! Either way the watcher has one fd to poll (e.g. next to a timer in an event loop) and a
//! blocking [`OomWatcher::wait`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{fsutil, CgroupError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    V1,
    V2,
}

/// What [`OomWatcher::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomWait {
    /// The cgroup went out of memory; `oom_kills` is the cgroup's OOM-kill counter now.
    Oom {
        oom_kills: u64,
    },
    /// The cgroup was removed: no more events will come.
    CgroupRemoved,
    TimedOut,
}

/// Watches one cgroup for OOM events. Pollable through [`AsFd`] (readable = look now).
#[derive(Debug)]
pub struct OomWatcher {
    fd: OwnedFd,
    kind: Kind,
    dir: PathBuf,
    /// v1: keeps the memory.oom_control file the eventfd is registered against open.
    _control: Option<std::fs::File>,
    last_oom: u64,
}

fn cvt(r: libc::c_int, op: &str, path: &Path) -> Result<OwnedFd, CgroupError> {
    if r < 0 {
        Err(CgroupError::io(op, path, std::io::Error::last_os_error()))
    } else {
        // SAFETY: r is a new fd returned by the kernel that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(r) })
    }
}

impl OomWatcher {
    pub(crate) fn v1(dir: &Path) -> Result<Self, CgroupError> {
        let ctl_path = dir.join("memory.oom_control");
        let control =
            std::fs::File::open(&ctl_path).map_err(|e| CgroupError::io("opening", &ctl_path, e))?;
        // SAFETY: plain syscall.
        let efd = cvt(
            unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
            "creating an eventfd for",
            &ctl_path,
        )?;
        fsutil::write(
            &dir.join("cgroup.event_control"),
            &format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
        )?;
        let mut w = OomWatcher {
            fd: efd,
            kind: Kind::V1,
            dir: dir.to_path_buf(),
            _control: Some(control),
            last_oom: 0,
        };
        w.last_oom = w.oom_kill_count()?;
        Ok(w)
    }

    pub(crate) fn v2(dir: &Path) -> Result<Self, CgroupError> {
        let events = dir.join("memory.events");
        // SAFETY: plain syscall.
        let ifd = cvt(
            unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) },
            "creating an inotify watch for",
            &events,
        )?;
        let c = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
            .map_err(|_| CgroupError::invalid("path", events.display().to_string()))?;
        // SAFETY: ifd is a valid inotify fd and c a valid C string.
        let r = unsafe {
            libc::inotify_add_watch(
                ifd.as_raw_fd(),
                c.as_ptr(),
                libc::IN_MODIFY | libc::IN_DELETE_SELF | libc::IN_IGNORED,
            )
        };
        if r < 0 {
            return Err(CgroupError::io(
                "watching",
                &events,
                std::io::Error::last_os_error(),
            ));
        }
        let mut w = OomWatcher {
            fd: ifd,
            kind: Kind::V2,
            dir: dir.to_path_buf(),
            _control: None,
            last_oom: 0,
        };
        w.last_oom = w.oom_count()?;
        Ok(w)
    }

    /// The cgroup's OOM-kill counter (v1 memory.oom_control / v2 memory.events "oom_kill").
    pub fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        let f = match self.kind {
            Kind::V1 => self.dir.join("memory.oom_control"),
            Kind::V2 => self.dir.join("memory.events"),
        };
        Ok(fsutil::read_flat_keyed(&f)?
            .get("oom_kill")
            .copied()
            .unwrap_or(0))
    }

    /// v2: OOM occurrences ("oom") plus kills, so an OOM without a kill still counts.
    fn oom_count(&self) -> Result<u64, CgroupError> {
        let ev = fsutil::read_flat_keyed(&self.dir.join("memory.events"))?;
        Ok(ev.get("oom").copied().unwrap_or(0) + ev.get("oom_kill").copied().unwrap_or(0))
    }

    /// Drain whatever is readable on the fd; returns whether anything was.
    fn drain(&self) -> bool {
        let mut buf = [0u8; 4096];
        let mut any = false;
        loop {
            // SAFETY: buf is valid for buf.len() bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                )
            };
            if n <= 0 {
                return any;
            }
            any = true;
        }
    }

    /// Block until an OOM happens in the cgroup, the cgroup is removed, or `timeout` passes.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<OomWait, CgroupError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    left.as_millis().min(i32::MAX as u128) as i32
                }
            };
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(CgroupError::io("polling OOM events of", &self.dir, e));
            }
            if r == 0 {
                return Ok(OomWait::TimedOut);
            }
            self.drain();
            if !self.dir.join("cgroup.procs").exists() {
                return Ok(OomWait::CgroupRemoved);
            }
            match self.kind {
                Kind::V1 => {
                    return Ok(OomWait::Oom {
                        oom_kills: self.oom_kill_count()?,
                    })
                }
                Kind::V2 => {
                    let now = self.oom_count()?;
                    if now > self.last_oom {
                        self.last_oom = now;
                        return Ok(OomWait::Oom {
                            oom_kills: self.oom_kill_count()?,
                        });
                    }
                }
            }
        }
    }
}

impl AsFd for OomWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
