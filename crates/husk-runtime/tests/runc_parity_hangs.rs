//! Situations in which husk-runtime used to wait forever where runc finishes or fails:
//! every command here runs under a deadline, so a hang fails the test instead of the suite.

mod common;

use common::*;
use serde_json::Value;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output};

/// Generous for a 2-core machine under load; a working command takes well under a second.
const LIMIT: u64 = 20;

/// `cmd` with `file` as its fd 3 (inheritable, as a caller's preserved fd is) and nothing
/// above it (whatever the test runner inherited would be preserved too).
fn with_fd3(mut cmd: Command, file: &std::fs::File) -> Command {
    let fd = file.as_raw_fd();
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            // dup2 onto itself keeps FD_CLOEXEC, so clear it explicitly.
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    cmd
}

fn within(ctx: &Ctx, cmd: Command) -> Output {
    output_within(
        cmd,
        ctx.bundle.parent().unwrap(),
        std::time::Duration::from_secs(LIMIT),
    )
}

/// No process anywhere still names this container on its command line (husk's own
/// processes carry the id in argv, the container's are gone with its pid namespace).
fn assert_no_process_of(id: &str) {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.split(' ').any(|w| w == id),
            "process {} of {id} left behind: {cmdline}",
            entry.file_name().to_string_lossy()
        );
    }
}

fn wait_stopped(ctx: &Ctx) {
    for _ in 0..200 {
        if ctx.status() == "stopped" {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{} never stopped", ctx.id);
}

/// The fds the container's process sees besides 0-2: fd 3 (the caller's) and the one `ls`
/// opens on /proc/self/fd — none of the runtime's own, however large the preserved range.
const LIST_FDS: &str = "head -c 4 <&3; echo; ls /proc/self/fd | sort -n | tr '\\n' ' '";

fn assert_only_fd3(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("husk"),
        "fd 3 not readable: {}",
        text(out)
    );
    assert_eq!(
        lines.next().map(str::trim),
        Some("0 1 2 3 4"),
        "{}",
        text(out)
    );
}

fn fd3_file(ctx: &Ctx) -> std::fs::File {
    let p = ctx.bundle.parent().unwrap().join("fd3");
    std::fs::write(&p, "husk").unwrap();
    std::fs::File::open(p).unwrap()
}

#[test]
fn run_with_many_preserved_fds() {
    let ctx = Ctx::new("pfdrun", &["sh", "-c", LIST_FDS], |_| {});
    let f = fd3_file(&ctx);
    let out = within(
        &ctx,
        with_fd3(ctx.cmd(&["run", "--preserve-fds", "100", &ctx.id]), &f),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_only_fd3(&out);
    ctx.assert_clean();
    assert_no_process_of(&ctx.id);
}

#[test]
fn create_start_with_many_preserved_fds() {
    let ctx = Ctx::new("pfdcreate", &["sh", "-c", LIST_FDS], |_| {});
    let f = fd3_file(&ctx);
    let out = within(
        &ctx,
        with_fd3(ctx.cmd(&["create", "--preserve-fds", "100", &ctx.id]), &f),
    );
    assert!(out.status.success(), "create: {}", text(&out));
    let out = ctx.rt_within(&["start", &ctx.id], LIMIT);
    assert!(out.status.success(), "start: {}", text(&out));
    wait_stopped(&ctx);
    let out = ctx.rt_within(&["delete", &ctx.id], LIMIT);
    assert!(out.status.success(), "delete: {}", text(&out));
    ctx.assert_clean();
    assert_no_process_of(&ctx.id);
}

/// A rootfs (nothing to run: create fails before any exec) whose `name` is a symlink to a
/// real directory.
fn rootfs_with_symlink(ctx: &Ctx, name: &str) -> std::path::PathBuf {
    let root = ctx.bundle.parent().unwrap().join("linked-rootfs");
    for d in ["dev", "proc", "sys", "tmp", "real"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::remove_dir(root.join(name)).unwrap();
    std::os::unix::fs::symlink("/real", root.join(name)).unwrap();
    root
}

#[test]
fn proc_and_sysfs_refuse_a_symlinked_destination() {
    for (typ, dest) in [("proc", "proc"), ("sysfs", "sys")] {
        let ctx = Ctx::new(&format!("link{typ}"), &["true"], |_| {});
        let root = rootfs_with_symlink(&ctx, dest);
        let cfg = ctx.bundle.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        spec["root"]["path"] = serde_json::Value::from(root.to_str().unwrap());
        std::fs::write(&cfg, spec.to_string()).unwrap();
        let out = ctx.rt_within(&["create", &ctx.id], LIMIT);
        assert_one_line_error(&out, "must be mounted on ordinary directory");
        assert!(text(&out).contains(&format!("/{dest}")), "{}", text(&out));
        ctx.assert_clean();
        // Nothing was mounted through the link.
        assert_eq!(std::fs::read_dir(root.join("real")).unwrap().count(), 0);
    }
}

/// A v1 freezer cgroup made and frozen by the test, thawed and removed on drop.
struct FrozenCgroup(std::path::PathBuf);

impl FrozenCgroup {
    fn new(name: &str) -> FrozenCgroup {
        let dir = Path::new("/sys/fs/cgroup/freezer").join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("freezer.state"), "FROZEN").unwrap();
        FrozenCgroup(dir)
    }
}

impl Drop for FrozenCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("freezer.state"), "THAWED");
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn create_refuses_a_frozen_cgroup() {
    let name = format!("husk-frozen-{}", std::process::id());
    let frozen = FrozenCgroup::new(&name);
    // The frozen cgroup itself, and a new one below it (frozen through its parent).
    for path in [format!("/{name}"), format!("/{name}/child")] {
        let ctx = Ctx::new("frozen", &["true"], |spec| {
            spec["linux"]["cgroupsPath"] = Value::from(path.as_str());
        });
        for cmd in ["create", "run"] {
            let out = ctx.rt_within(&[cmd, &ctx.id], LIMIT);
            assert_one_line_error(&out, "container's cgroup unexpectedly frozen");
            assert!(!ctx.root.join(&ctx.id).exists(), "state dir left behind");
            // Refused before anything was made: the caller's cgroup stays as it was.
            assert_eq!(
                std::fs::read_to_string(frozen.0.join("freezer.state")).unwrap(),
                "FROZEN\n"
            );
            assert!(!frozen.0.join("child").exists(), "{cmd} left {path}");
            for h in ["pids", "memory", "devices", "cpu"] {
                assert!(
                    !Path::new("/sys/fs/cgroup").join(h).join(&name).exists(),
                    "{cmd} left /{name} in {h}"
                );
            }
        }
    }
}

/// A bundle whose seccomp profile hands execve to a user-space listener at `sock`.
fn notify_on_execve(name: &str, sock: &Path) -> Ctx {
    Ctx::new(name, &["true"], |spec| {
        spec["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock.to_str().unwrap(),
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_NOTIFY"}]
        });
    })
}

#[test]
fn a_seccomp_listener_that_never_answers_or_goes_away_holds_nothing() {
    let sock = std::env::temp_dir().join(format!("husk-listener-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    // Listening, but never accepting or reading: the notify fd stays in its queue and
    // execve waits for an answer that never comes.
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let ctx = notify_on_execve("slowlistener", &sock);
    let out = ctx.rt_within(&["create", &ctx.id], LIMIT);
    assert!(out.status.success(), "create: {}", text(&out));
    let out = ctx.rt_within(&["start", &ctx.id], LIMIT);
    assert!(out.status.success(), "start: {}", text(&out));
    assert_eq!(ctx.status(), "running");
    let out = ctx.rt_within(&["exec", "-d", &ctx.id, "true"], LIMIT);
    assert!(out.status.success(), "exec -d: {}", text(&out));
    let out = ctx.rt_within(&["delete", "--force", &ctx.id], LIMIT);
    assert!(out.status.success(), "delete: {}", text(&out));
    ctx.assert_clean();

    // The listener goes away between create and start: start fails and says why.
    let ctx = notify_on_execve("gonelistener", &sock);
    let out = ctx.rt_within(&["create", &ctx.id], LIMIT);
    assert!(out.status.success(), "create: {}", text(&out));
    drop(listener);
    let out = ctx.rt_within(&["start", &ctx.id], LIMIT);
    assert_one_line_error(&out, "seccomp notify fd to listenerPath");
    let out = ctx.rt_within(&["delete", "--force", &ctx.id], LIMIT);
    assert!(out.status.success(), "delete: {}", text(&out));
    ctx.assert_clean();
    let _ = std::fs::remove_file(&sock);
}

fn unix_addr(path: &Path) -> (libc::sockaddr_un, libc::socklen_t) {
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_encoded_bytes();
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    (addr, len as libc::socklen_t)
}

/// A listener that stopped accepting: backlog 0, already full of connections nobody takes.
/// Returns the listening socket and the queued clients (dropping them frees it).
fn full_listener(path: &Path) -> Vec<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let (addr, len) = unix_addr(path);
    let sock = |flags| unsafe {
        std::os::fd::OwnedFd::from_raw_fd(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | flags, 0))
    };
    let l = sock(0);
    let a = (&addr as *const libc::sockaddr_un).cast();
    assert_eq!(unsafe { libc::bind(l.as_raw_fd(), a, len) }, 0);
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    let mut fds = vec![l];
    loop {
        let c = sock(libc::SOCK_NONBLOCK);
        if unsafe { libc::connect(c.as_raw_fd(), a, len) } != 0 {
            break;
        }
        fds.push(c);
        assert!(fds.len() < 10, "the backlog never filled");
    }
    fds
}

#[test]
fn a_seccomp_listener_that_accepts_nothing_fails_create_in_time() {
    let sock = std::env::temp_dir().join(format!("husk-full-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let held = full_listener(&sock);
    let ctx = notify_on_execve("fulllistener", &sock);
    let out = ctx.rt_within(&["create", &ctx.id], LIMIT);
    assert_one_line_error(&out, "listenerPath");
    assert!(text(&out).contains("nothing accepted"), "{}", text(&out));
    ctx.assert_clean();
    drop(held);
    let _ = std::fs::remove_file(&sock);
}

/// Processes whose environment holds `marker` (the hooks of the test below carry it).
fn processes_with_env(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// A caller that gives up on a `create` or `run` blocked in a slow createRuntime hook —
/// `timeout -s TERM` (which signals its whole process group, the hook included), or a
/// SIGINT/SIGHUP to the runtime alone — finds nothing left, as with runc: no state dir, no
/// cgroup, no process of the container, no hook; the exit status is 128 + the signal and
/// one error line says so.
#[test]
fn a_caller_giving_up_on_a_blocked_create_leaves_nothing() {
    let cases = [
        ("create", libc::SIGTERM, true),
        ("create", libc::SIGINT, false),
        ("run", libc::SIGHUP, false),
        ("run", libc::SIGTERM, true),
    ];
    for (cmd, sig, via_timeout) in cases {
        let ctx = Ctx::new(&format!("giveup{cmd}{sig}"), &["true"], |_| {});
        // The hook is found by its environment (a hook with `env` gets only that).
        let marker = format!("HUSK_TEST_HOOK={}", ctx.id);
        let cfg = ctx.bundle.join("config.json");
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
        spec["hooks"] = serde_json::json!({"createRuntime": [
            {"path": "/bin/sleep", "args": ["sleep", "30"], "env": [marker]}
        ]});
        std::fs::write(&cfg, spec.to_string()).unwrap();

        let mut command = if via_timeout {
            let mut c = Command::new("timeout");
            c.args(["-s", &sig.to_string(), "1", BIN, "--root"])
                .arg(&ctx.root)
                .args([cmd, &ctx.id])
                .current_dir(&ctx.bundle);
            c
        } else {
            ctx.cmd(&[cmd, &ctx.id])
        };
        let err_file = ctx
            .bundle
            .parent()
            .unwrap()
            .join(format!("giveup.err.{sig}"));
        let mut child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err_file).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(LIMIT);
        if !via_timeout {
            // Wait for the hook to block, then give up on the runtime alone.
            while processes_with_env(&marker).is_empty() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{cmd}: hook never ran"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            unsafe { libc::kill(child.id() as i32, sig) };
        }
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{cmd} did not give up on signal {sig}");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let stderr = std::fs::read_to_string(&err_file).unwrap();
        // timeout(1) exits 124 itself; the runtime's own status shows when signalled directly.
        let want = if via_timeout { 124 } else { 128 + sig };
        assert_eq!(status.code(), Some(want), "{cmd} {sig}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            error_msg(&stderr).is_some_and(|m| m.contains("interrupted by SIG")),
            "{stderr}"
        );
        ctx.assert_clean();
        assert_no_process_of(&ctx.id);
        assert_eq!(
            processes_with_env(&marker),
            Vec::<String>::new(),
            "hook left running"
        );
    }
}
