//! Shared harness for the runtime's integration tests: a busybox rootfs built once per test
//! binary, bundles made from `husk-runtime spec`, and checks that nothing is left behind.
//! These tests need root and run real containers; they never skip.
#![allow(dead_code)]

pub mod users;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub const BIN: &str = env!("CARGO_BIN_EXE_husk-runtime");

fn scratch() -> PathBuf {
    let base = std::env::var_os("HUSK_TEST_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("husk-it-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    base
}

/// A busybox-static rootfs shared (read-only) by all tests of this binary.
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "integration tests run real containers and need root"
        );
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is required: apt-get install busybox-static");
        let root = scratch().join("rootfs");
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "mnt"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        let list = Command::new(root.join("bin/busybox"))
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
        )
        .unwrap();
        root
    })
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// One test's world: its own state root, bundle dir and container id.
pub struct Ctx {
    pub id: String,
    pub root: PathBuf,
    pub bundle: PathBuf,
}

impl Ctx {
    /// A bundle running `args` with husk-runtime's default spec (terminal off), after `edit`.
    pub fn new(name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> Ctx {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("{name}-{}-{n}", std::process::id());
        let dir = scratch().join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        let out = Command::new(BIN)
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(out.status.success(), "spec failed: {out:?}");
        let mut spec: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        spec["root"]["path"] = Value::from(rootfs().to_str().unwrap());
        spec["process"]["terminal"] = Value::from(false);
        spec["process"]["args"] =
            Value::from(args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        edit(&mut spec);
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();
        Ctx {
            id,
            root: dir.join("state"),
            bundle,
        }
    }

    /// `husk-runtime --root ROOT ARGS…` with the bundle as cwd; stdin closed.
    pub fn rt(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Like `rt`, for commands that leave a container process holding their stdio (create,
    /// run -d): output goes to files, so waiting for it does not wait for the container.
    pub fn rt_detached(&self, args: &[&str]) -> Output {
        self.rt_detached_n(args)
    }

    /// `rt_detached` that may run concurrently with itself (own output files).
    pub fn rt_detached_n(&self, args: &[&str]) -> Output {
        output_via_files(self.cmd(args), self.bundle.parent().unwrap())
    }

    /// `rt_detached` that fails the test instead of waiting more than `secs` seconds.
    pub fn rt_within(&self, args: &[&str], secs: u64) -> Output {
        output_within(
            self.cmd(args),
            self.bundle.parent().unwrap(),
            std::time::Duration::from_secs(secs),
        )
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .current_dir(&self.bundle)
            .stdin(Stdio::null());
        c
    }

    /// `run` the container in the foreground; (exit code, stdout, stderr).
    pub fn run(&self) -> (i32, String, String) {
        let out = self.rt(&["run", &self.id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `run` and insist on success; returns stdout.
    pub fn run_ok(&self) -> String {
        let (code, out, err) = self.run();
        assert_eq!(code, 0, "run failed: stdout={out} stderr={err}");
        out
    }

    pub fn state(&self) -> Value {
        let out = self.rt(&["state", &self.id]);
        assert!(
            out.status.success(),
            "state failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap().to_string()
    }

    /// Assert that nothing of this container remains: state dir and cgroup dirs.
    /// (Its processes die with its pid namespace; tests that keep a pid check it.)
    pub fn assert_clean(&self) {
        assert!(
            !self.root.join(&self.id).exists(),
            "state dir of {} left behind",
            self.id
        );
        assert_no_cgroup(&self.id);
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // Best effort: never leave a test's container behind, even when it failed.
        // Bounded: a test that failed because something hangs must not hang here too.
        if let Ok(mut child) = self
            .cmd(&["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(self.bundle.parent().unwrap());
    }
}

/// Run `cmd` with stdout and stderr going to fresh files in `dir`: for commands that leave
/// a container holding their stdio, whose pipes would keep `output()` waiting.
pub fn output_via_files(mut cmd: Command, dir: &Path) -> Output {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let (o, e) = (dir.join(format!("out.{n}")), dir.join(format!("err.{n}")));
    let status = cmd
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .status()
        .unwrap();
    Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    }
}

/// `output_via_files` with a deadline: a command still running after `limit` is killed and
/// the test fails, so a hang is a failure and not a stuck suite.
pub fn output_within(mut cmd: Command, dir: &Path, limit: std::time::Duration) -> Output {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let (o, e) = (dir.join(format!("out.{n}")), dir.join(format!("err.{n}")));
    let mut child = cmd
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} hung (still running after {limit:?}); stderr: {}",
                std::fs::read_to_string(&e).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    }
}

/// A spec edit for `Ctx::new`: no mount namespace (the container lives in the caller's, as
/// runc allows), without the masked and read-only paths that need one.
pub fn without_mount_ns(s: &mut Value) {
    s["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    let linux = s["linux"].as_object_mut().unwrap();
    linux.remove("maskedPaths");
    linux.remove("readonlyPaths");
}

/// No cgroup directory named `id` anywhere under /sys/fs/cgroup.
pub fn assert_no_cgroup(id: &str) {
    let out = Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "6",
            "-type",
            "d",
            "-name",
            id,
        ])
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&out.stdout);
    assert!(
        found.trim().is_empty(),
        "cgroup of {id} left behind: {found}"
    );
}

/// Stderr must be exactly one line, runc's error line (`time="…" level=error msg="…"`),
/// whose message names `needle`.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(
        !out.status.success(),
        "expected failure, got success: {out:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one line, got: {err:?}"
    );
    let msg = error_msg(&err).unwrap_or_else(|| panic!("{err:?} is not runc's error line"));
    assert!(
        msg.contains(needle),
        "error {msg:?} does not mention {needle:?}"
    );
}

/// The message of the first `level=error` line in `text` (runc's logrus text form:
/// `time="…" level=error msg="…"`, the message quoted as Go's %q when it needs quoting).
pub fn error_msg(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| l.starts_with("time=\"") && l.contains(" level=error "))
        .find_map(|l| field(l, "msg"))
}

/// The value of `key=` in one logrus text line, unquoted.
pub fn field(line: &str, key: &str) -> Option<String> {
    let rest = match line.strip_prefix(&format!("{key}=")) {
        Some(r) => r,
        None => &line[line.find(&format!(" {key}="))? + key.len() + 2..],
    };
    let Some(quoted) = rest.strip_prefix('"') else {
        return Some(rest.split(' ').next().unwrap_or("").to_string());
    };
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'x' => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(u8::from_str_radix(&hex, 16).ok()? as char);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// A docker-archive of the shared busybox rootfs, written by hand: one layer, a config and
/// manifest.json, as `docker save` lays them out.
pub fn docker_archive(dir: &Path, tag: &str) -> PathBuf {
    let stage = dir.join("archive");
    std::fs::create_dir_all(stage.join("layer")).unwrap();
    let layer = stage.join("layer/layer.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(rootfs())
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let sha = |p: &Path| {
        let o = Command::new("sha256sum").arg(p).output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let diff_id = sha(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", "FROM_IMAGE=yes"], "WorkingDir": "/tmp", "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]}
    });
    std::fs::write(stage.join("config.json"), config.to_string()).unwrap();
    let config_sha = sha(&stage.join("config.json"));
    std::fs::rename(
        stage.join("config.json"),
        stage.join(format!("{config_sha}.json")),
    )
    .unwrap();
    let manifest = serde_json::json!([{
        "Config": format!("{config_sha}.json"), "RepoTags": [tag], "Layers": ["layer/layer.tar"]
    }]);
    std::fs::write(stage.join("manifest.json"), manifest.to_string()).unwrap();
    let out = dir.join("image.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&stage)
        .arg("-cf")
        .arg(&out)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// Output of a command as one string, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status={:?} stdout={} stderr={}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `script` running `cmdline` on a fresh pty, so the command has a controlling terminal.
/// SHELL is pinned: script runs `$SHELL -c`, and the tests must not depend on the caller's
/// shell (bash execs a lone command, dash forks it). Wrap a command in `timeout` only with
/// `--foreground`, or it leaves the terminal's foreground group and stops on SIGTTOU.
pub fn on_a_terminal(cmdline: &str) -> OnATerminal {
    let mut c = Command::new("script");
    c.args(["-qec", cmdline, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    OnATerminal(c)
}

/// A command under `script` whose stdin stays open until the command ends. At EOF on its
/// stdin script types the pty's EOF character at once; in canonical mode the kernel queues
/// it as a NUL marker, and when the runtime switches that terminal to raw mode before
/// reading, the marker becomes a real NUL byte that reaches the container's terminal and
/// is echoed there as "^@" in the middle of the output.
pub struct OnATerminal(Command);

impl OnATerminal {
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.0.current_dir(dir);
        self
    }

    /// Runs it to the end and collects its output.
    pub fn output(mut self) -> std::io::Result<Output> {
        let mut child = self.0.spawn()?;
        let held_open = child.stdin.take();
        let out = child.wait_with_output();
        drop(held_open);
        out
    }

    /// Starts it with stdin and stdout piped, for a test that types on the terminal.
    pub fn spawn(mut self) -> std::io::Result<std::process::Child> {
        self.0.spawn()
    }
}
