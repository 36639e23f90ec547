//! Test fixture: a real cgroup below the test process's own cgroup, with shell children
//! placed in it, removed again (and checked to be gone) when the fixture drops.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use husk_cgroups::layout::Mounts;
use husk_cgroups::{manager, prune_empty_parents, resolve_path, CgroupManager, CgroupPath};
use oci_spec::runtime::LinuxResources;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct TestCgroup {
    pub mgr: Box<dyn CgroupManager>,
    pub path: CgroupPath,
    pids: Vec<i32>,
}

/// Every directory the cgroup has on this host (all v1 hierarchies + unified).
pub fn all_dirs(path: &CgroupPath) -> Vec<PathBuf> {
    let m = Mounts::probe().expect("probing mounts");
    let mut v: Vec<PathBuf> =
        m.v1.iter()
            .map(|h| h.dir(path.in_v1(&h.controllers)))
            .collect();
    if let Some(u) = &m.unified {
        v.push(u.dir(&path.path));
    }
    v
}

pub fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("bad resources {json}: {e}"))
}

/// A unique cgroup name for one test.
pub fn unique(name: &str) -> String {
    format!(
        "husk-cgtest-{}-{}-{}",
        std::process::id(),
        name,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

impl TestCgroup {
    pub fn new(name: &str) -> TestCgroup {
        let path = resolve_path(None, &unique(name)).expect("resolving the cgroup path");
        let mgr = manager(&path).expect("building a manager");
        let t = TestCgroup {
            mgr,
            path,
            pids: Vec::new(),
        };
        t.mgr.create().expect("creating the cgroup");
        for d in all_dirs(&t.path) {
            assert!(d.is_dir(), "{} was not created", d.display());
        }
        t
    }

    pub fn set(&self, json: &str) {
        self.mgr
            .set(&resources(json))
            .unwrap_or_else(|e| panic!("set({json}): {e}"));
    }

    /// Start `/bin/sh -c script` inside the cgroup: the shell waits on stdin until it has
    /// been moved, so all of `script` runs under the cgroup's limits.
    pub fn spawn(&mut self, script: &str) -> Child {
        let mut c = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read _go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning /bin/sh");
        self.pids.push(c.id() as i32);
        self.mgr
            .add_process(c.id() as i32)
            .expect("adding the child to the cgroup");
        let mut stdin = c.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("releasing the child");
        c
    }
}

impl TestCgroup {
    /// Like [`TestCgroup::spawn`] for a child that runs until the fixture kills and reaps it.
    pub fn spawn_bg(&mut self, script: &str) {
        drop(self.spawn(script));
    }
}

/// Wait for a child with a deadline; returns (status, stdout, stderr).
pub fn wait_output(mut c: Child, timeout: Duration) -> (std::process::ExitStatus, String, String) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = c.try_wait().expect("waiting for child") {
            let mut out = String::new();
            let mut err = String::new();
            if let Some(mut o) = c.stdout.take() {
                let _ = o.read_to_string(&mut out);
            }
            if let Some(mut e) = c.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return (st, out, err);
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("child {} did not finish within {timeout:?}", c.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Poll `f` until it is true.
pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = self.mgr.kill_all(libc::SIGKILL);
        for &pid in &self.pids {
            // reap (ECHILD when the test already waited)
            // SAFETY: plain waitpid on our own child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
        let destroyed = self.mgr.destroy();
        let pruned = prune_empty_parents(&self.path);
        if std::thread::panicking() {
            return;
        }
        destroyed.expect("destroying the cgroup");
        pruned.expect("pruning parents");
        for d in all_dirs(&self.path) {
            assert!(!d.exists(), "{} still exists after destroy", d.display());
        }
    }
}
