//! Where a build works: one directory under the store's tmp/ (`build-PID-N`), removed with
//! everything in it when the build ends, however it ends; and in it, one overlay per step
//! (the parent's layers as lowers, a fresh upper: the step's change) or per stage read by
//! another (`COPY --from`, `RUN --mount=from=`).
//!
//! The build runs in a mount namespace of its own ([`private_mounts`]), so a build killed
//! with SIGKILL leaves no mount behind: the namespace goes with the process. Its tmp/
//! directory is removed by the next build ([`sweep`]).

use crate::os::{IoContext, IoError};
use crate::rootfs::{Overlay, RootfsError};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The build's directory; removed on drop (after its overlays were unmounted).
pub struct WorkDir {
    pub path: PathBuf,
    empty: PathBuf,
    n: std::cell::Cell<u32>,
}

/// Mounts of this process stay in a mount namespace of its own, which dies with it. A
/// process that cannot (threads share its file system info) keeps mounting in its own
/// namespace and relies on the [`Step`] undo alone.
pub fn private_mounts() {
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) == 0 {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            );
        }
    }
}

/// Remove what killed builds left in `tmp` (their `build-PID-*` dirs, PID gone), and the
/// RUN containers they were running.
pub fn sweep(tmp: &Path, state_root: &Path) {
    let Ok(rd) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // build-PID-N, owned by a process that is gone (pid and start time: a reused pid
        // does not count as alive).
        if !name.starts_with("build-") || crate::os::live_pid(&e.path().join("owner")).is_some() {
            continue;
        }
        if let Ok(ids) = std::fs::read_to_string(e.path().join("containers")) {
            for id in ids.lines().filter(|l| !l.is_empty()) {
                super::run::remove_container(state_root, id);
            }
        }
        super::net::cleanup_all(&e.path());
        let _ = husk_image::fsutil::remove_tree(&e.path());
    }
}

impl WorkDir {
    pub fn new(tmp: &Path) -> Result<WorkDir, IoError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = tmp.join(format!("build-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).ctx("creating", &path)?;
        crate::os::write_pid_file(&path.join("owner"), std::process::id() as i32)?;
        let empty = path.join("empty");
        std::fs::create_dir_all(&empty).ctx("creating", &empty)?;
        Ok(WorkDir {
            path,
            empty,
            n: std::cell::Cell::new(0),
        })
    }

    /// A fresh directory for one step or view.
    fn next(&self, what: &str) -> Result<PathBuf, IoError> {
        let n = self.n.get() + 1;
        self.n.set(n);
        let d = self.path.join(format!("{what}-{n}"));
        std::fs::create_dir_all(&d).ctx("creating", &d)?;
        Ok(d)
    }

    /// An overlay of `lowers` (top first; none for scratch) with a fresh upper dir.
    pub fn mount(&self, what: &str, lowers: &[PathBuf]) -> Result<Step, RootfsError> {
        let dir = self.next(what)?;
        let mut l = lowers.to_vec();
        // An empty lower at the bottom: scratch has no layers, and overlay wants one.
        l.push(self.empty.clone());
        let ov = crate::rootfs::mount(&dir, &l, None, false)?;
        Ok(Step { dir, ov })
    }

    /// Record a RUN container's id, so that a build killed while it runs has it removed by
    /// the next one.
    pub fn note_container(&self, id: &str) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.join("containers"))
        {
            let _ = writeln!(f, "{id}");
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = husk_image::fsutil::remove_tree(&self.path);
    }
}

/// One mounted overlay: `rootfs()` to work in, `upper()` for what changed.
pub struct Step {
    pub dir: PathBuf,
    ov: Overlay,
}

impl Step {
    pub fn rootfs(&self) -> &Path {
        &self.ov.rootfs
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// Unmount, keeping the upper dir (the step's change).
    pub fn unmount(&mut self) -> Result<(), RootfsError> {
        self.ov.unmount()
    }
}

/// A small process that outlives a killed build: it waits for this process to end (a
/// pipe's write end held only by us reaches EOF), then removes the RUN containers noted in
/// the work dir, their steps' networks, and the dir itself. After a normal end there is nothing left to remove.
/// It runs in the caller's mount namespace (made before [`private_mounts`]), in a session
/// of its own (Ctrl-C on the terminal does not reach it), with stdio on /dev/null.
pub fn guard(work: &WorkDir, state_root: &Path) {
    let Ok((r, w)) = crate::os::pipe() else {
        return;
    };
    let dir = work.path.clone();
    let state_root = state_root.to_path_buf();
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        // Parent (or fork failed: no guard). Keep the write end open for our lifetime.
        drop(r);
        std::mem::forget(w);
        return;
    }
    // Child.
    drop(w);
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        let mut b = [0u8; 1];
        while libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) != 0 {
            if *libc::__errno_location() != libc::EINTR {
                break;
            }
        }
    }
    if let Ok(ids) = std::fs::read_to_string(dir.join("containers")) {
        for id in ids.lines().filter(|l| !l.is_empty()) {
            super::run::remove_container(&state_root, id);
        }
    }
    // Then the networks of its RUN steps (their containers gone, nothing holds them but
    // their holders).
    super::net::cleanup_all(&dir);
    let _ = husk_image::fsutil::remove_tree(&dir);
    unsafe { libc::_exit(0) };
}
