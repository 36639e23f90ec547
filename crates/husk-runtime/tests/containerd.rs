//! containerd (Debian's 1.6, CRI disabled, through containerd-shim-runc-v2) drives
//! husk-runtime via `ctr run --runc-binary`: run, exit codes, detached task exec, pause,
//! resume, ps, kill, and a terminal; a task that exits on its own is killed and removed
//! without leftovers. One private containerd per test, stopped at the end.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "docker.io/library/husk-busybox:test";

struct Containerd {
    dir: PathBuf,
    child: Child,
    /// Tasks and containers to remove if a test fails half-way.
    ids: Vec<&'static str>,
}

impl Containerd {
    fn start(name: &str, ids: Vec<&'static str>) -> Containerd {
        assert!(
            Path::new("/usr/bin/containerd").exists(),
            "containerd is required (scripts/deps.sh installs it)"
        );
        let dir =
            std::env::temp_dir().join(format!("husk-containerd-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{d}/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd { dir, child, ids };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !c.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.args(["--foreground", "120", "ctr", "-a"])
            .arg(self.dir.join("containerd.sock"))
            .args(args);
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(o.status.success(), "ctr {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn task_status(&self, id: &str) -> String {
        let out = self.ok(&["task", "ls"]);
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // The detached tasks, if an assertion left them behind.
        for id in &self.ids {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
            let _ = self.ctr(&["task", "rm", "-f", id]);
            let _ = self.ctr(&["container", "rm", id]);
        }
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("state"))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn containerd_drives_husk_runtime() {
    let c = Containerd::start("drive", vec!["d1"]);
    let archive = docker_archive(&c.dir, "husk-busybox:test");
    c.ok(&["images", "import", archive.to_str().unwrap()]);
    let run = ["run", "--rm", "--runc-binary", BIN];

    let out = c.ok(&[
        &run[..],
        &[
            IMAGE,
            "r1",
            "sh",
            "-c",
            "echo hi from ctr; echo $FROM_IMAGE; pwd",
        ],
    ]
    .concat());
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["hi from ctr", "yes", "/tmp"]
    );
    let o = c.ctr(&[&run[..], &[IMAGE, "r2", "sh", "-c", "exit 6"]].concat());
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));

    // Detached task: exec, pause/resume, ps, kill.
    c.ok(&[
        "run",
        "-d",
        "--runc-binary",
        BIN,
        IMAGE,
        "d1",
        "sleep",
        "1000",
    ]);
    assert_eq!(c.task_status("d1"), "RUNNING");
    assert_eq!(
        c.ok(&[
            "task",
            "exec",
            "--exec-id",
            "e1",
            "d1",
            "sh",
            "-c",
            "echo exec-ok"
        ]),
        "exec-ok"
    );
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e2",
        "d1",
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    c.ok(&["task", "pause", "d1"]);
    assert_eq!(c.task_status("d1"), "PAUSED");
    c.ok(&["task", "resume", "d1"]);
    assert_eq!(c.task_status("d1"), "RUNNING");
    let pid = c
        .ok(&["task", "ls"])
        .lines()
        .find(|l| l.starts_with("d1"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(c.ok(&["task", "ps", "d1"]).contains(&pid));
    c.ok(&["task", "kill", "-s", "KILL", "d1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.task_status("d1") != "STOPPED" {
        assert!(Instant::now() < deadline, "task did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    c.ok(&["task", "rm", "d1"]);
    c.ok(&["container", "rm", "d1"]);
    assert_no_cgroup("d1");

    // task rm -f of a running task kills it and removes it, cgroup included.
    c.ok(&[
        "run",
        "-d",
        "--runc-binary",
        BIN,
        IMAGE,
        "d1",
        "sleep",
        "1000",
    ]);
    assert_eq!(c.task_status("d1"), "RUNNING");
    c.ok(&["task", "rm", "-f", "d1"]);
    assert_eq!(c.task_status("d1"), "");
    c.ok(&["container", "rm", "d1"]);
    assert_no_cgroup("d1");

    // A terminal: ctr -t under `script`, the pty comes back through the shim's console socket.
    let cmdline = format!(
        "timeout --foreground 60 ctr -a {} run --rm -t --runc-binary {BIN} {IMAGE} t1 sh -c 'tty; echo tty-ok'",
        c.dir.join("containerd.sock").display()
    );
    let o = on_a_terminal(&cmdline).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("/dev/pts/0") && out.contains("tty-ok"),
        "{}",
        text(&o)
    );
}

/// A task whose process exits by itself: killing it afterwards is "already finished" for
/// the shim (which knows runc's "container not running"), not an unknown error, and
/// removing it leaves no shim, no runtime state dir and no cgroup. Under the CRI plugin
/// this is StopContainer/RemoveContainer of an exited container.
#[test]
fn task_that_exited_by_itself_is_killed_and_removed_cleanly() {
    let c = Containerd::start("exited", vec!["x1"]);
    let archive = docker_archive(&c.dir, "husk-busybox:test");
    c.ok(&["images", "import", archive.to_str().unwrap()]);
    c.ok(&[
        "run",
        "-d",
        "--runc-binary",
        BIN,
        IMAGE,
        "x1",
        "sh",
        "-c",
        "exit 3",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.task_status("x1") != "STOPPED" {
        assert!(Instant::now() < deadline, "task did not stop by itself");
        std::thread::sleep(Duration::from_millis(50));
    }
    // What StopContainer does: SIGTERM/SIGKILL to a task that is gone. runc's shim turns
    // runc's "container not running" into NotFound ("process already finished").
    let o = c.ctr(&["task", "kill", "-s", "KILL", "x1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("process already finished") && !err.contains("unknown error after kill"),
        "{}",
        text(&o)
    );
    // --all reaches `kill --all`, which succeeds on a stopped container as runc's does.
    c.ok(&["task", "kill", "-a", "-s", "KILL", "x1"]);
    c.ok(&["task", "rm", "x1"]);
    c.ok(&["container", "rm", "x1"]);
    assert_no_cgroup("x1");
    // The shim's runc root (containerd's fixed default) for namespace "default".
    assert!(
        !Path::new("/run/containerd/runc/default/x1").exists(),
        "runtime state dir of x1 left behind"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while shim_of(&c.dir).is_some() {
        assert!(
            Instant::now() < deadline,
            "shim left behind: {:?}",
            shim_of(&c.dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pid of a containerd-shim-runc-v2 serving the containerd at `dir`, if any.
fn shim_of(dir: &Path) -> Option<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        (cmd.contains("containerd-shim-runc-v2") && cmd.contains(&needle))
            .then(|| e.file_name().to_string_lossy().into_owned())
    })
}
