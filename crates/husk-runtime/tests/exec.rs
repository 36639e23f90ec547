//! `exec`: a second process in a running container sees the container's namespaces, cgroup,
//! root and the process spec; errors are one line; nothing of the runtime leaks into it.

mod common;
use common::*;
use serde_json::json;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::process::Output;
use std::time::{Duration, Instant};

/// A container running `sleep 1000` (run -d), after `edit` of its spec.
fn running(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Ctx {
    let ctx = Ctx::new(name, &["sleep", "1000"], edit);
    let out = ctx.rt_detached(&["run", "-d", &ctx.id]);
    assert!(out.status.success(), "run -d failed: {out:?}");
    assert_eq!(ctx.status(), "running");
    ctx
}

fn exec(ctx: &Ctx, args: &[&str]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    ctx.rt(&all)
}

/// exec that must succeed; its stdout.
fn exec_ok(ctx: &Ctx, args: &[&str]) -> String {
    let out = exec(ctx, args);
    assert!(
        out.status.success(),
        "exec {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn finish(ctx: Ctx) {
    let out = ctx.rt(&["delete", "--force", &ctx.id]);
    assert!(out.status.success(), "delete failed: {out:?}");
    ctx.assert_clean();
}

/// Compares every namespace and the cgroup of the exec'd shell with init's.
const SAME_AS_INIT: &str = "for k in pid mnt net ipc uts cgroup user time; do \
    [ \"$(readlink /proc/1/ns/$k)\" = \"$(readlink /proc/self/ns/$k)\" ] || echo ns $k differs; \
    done; cmp -s /proc/1/cgroup /proc/self/cgroup || echo cgroup differs; \
    [ \"$(readlink /proc/1/root)\" = / ] || echo root; echo checked";

#[test]
fn output_and_exit_code() {
    let ctx = running("exec-code", |_| {});
    let out = exec(
        &ctx,
        &[&ctx.id, "sh", "-c", "echo hello; echo oops >&2; exit 5"],
    );
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    // `--` and flags of the command after the id
    let out = exec_ok(&ctx, &[&ctx.id, "--", "sh", "-c", "echo -n a; echo b"]);
    assert_eq!(out, "ab\n");
    // killed by a signal: 128+signal
    let out = exec(&ctx, &[&ctx.id, "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    // the container goes on running
    assert_eq!(ctx.status(), "running");
    finish(ctx);
}

#[test]
fn same_namespaces_cgroup_and_root_as_init() {
    let ctx = running("exec-ns", |_| {});
    let out = exec_ok(&ctx, &[&ctx.id, "sh", "-c", SAME_AS_INIT]);
    assert_eq!(out, "checked\n");
    // on the host, a detached exec'd process is listed among the container's processes
    let pid_file = ctx.bundle.parent().unwrap().join("ns.pid");
    let out = ctx.rt_detached(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &ctx.id,
        "sleep",
        "300",
    ]);
    assert!(out.status.success(), "{out:?}");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let ps = ctx.rt(&["ps", "--format", "json", &ctx.id]);
    assert!(ps.status.success(), "{ps:?}");
    let pids: Vec<i64> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(
        pids.contains(&pid.trim().parse().unwrap()),
        "{pids:?} {pid}"
    );
    finish(ctx);
}

#[test]
fn env_cwd_user_and_groups() {
    let ctx = running("exec-user", |_| {});
    let out = exec_ok(
        &ctx,
        &[
            "--env",
            "FOO=bar",
            "-e",
            "PATH=/bin",
            "--cwd",
            "/tmp",
            "--user",
            "65534:65534",
            "-g",
            "5",
            &ctx.id,
            "sh",
            "-c",
            "echo $FOO $PATH; pwd; id -u; id -g; id -G",
        ],
    );
    assert_eq!(out, "bar /bin\n/tmp\n65534\n65534\n65534 5\n");
    // defaults come from config.json: root in /
    let out = exec_ok(&ctx, &[&ctx.id, "sh", "-c", "id -u; pwd; echo $TERM"]);
    assert_eq!(out, "0\n/\nxterm\n");
    finish(ctx);
}

#[test]
fn process_file() {
    let ctx = running("exec-pfile", |_| {});
    let file = ctx.bundle.parent().unwrap().join("process.json");
    let process = json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1001, "additionalGids": [7]},
        "args": ["sh", "-c", "echo $X; pwd; id -u; id -G"],
        "env": ["PATH=/bin", "X=from-file"],
        "cwd": "/root",
    });
    std::fs::write(&file, process.to_string()).unwrap();
    let out = exec_ok(&ctx, &["--process", file.to_str().unwrap(), &ctx.id]);
    assert_eq!(out, "from-file\n/root\n1000\n1001 7\n");
    finish(ctx);
}

/// `exec -p /dev/fd/N`: the process.json comes through a pipe, which can be read once.
#[test]
fn process_file_from_a_pipe() {
    use std::io::Write;
    let ctx = running("exec-pipe", |_| {});
    let process = json!({
        "args": ["sh", "-c", "echo piped $X"], "env": ["X=yes"], "cwd": "/",
        "user": {"uid": 0, "gid": 0},
    });
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), 0) }, 0);
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut w = std::fs::File::from(w);
    w.write_all(process.to_string().as_bytes()).unwrap();
    drop(w);
    let n = r.as_raw_fd();
    let path = format!("/dev/fd/{n}");
    // The child inherits the read end at the same number (it is not CLOEXEC).
    let out = ctx.rt(&["exec", "-p", &path, &ctx.id]);
    drop(r);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped yes\n");
    finish(ctx);
}

fn cap_line(status: &str, name: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn capabilities() {
    let ctx = running("exec-caps", |spec| {
        // even when the container's process had inheritable caps, --cap adds none there
        spec["process"]["capabilities"]["inheritable"] = json!([]);
    });
    let script = "cat /proc/1/status; echo ====; cat /proc/self/status";
    let out = exec_ok(&ctx, &[&ctx.id, "sh", "-c", script]);
    let (init, own) = out.split_once("====").unwrap();
    assert_eq!(cap_line(own, "CapInh:"), 0, "{own}");
    assert_eq!(cap_line(own, "CapEff:"), cap_line(init, "CapEff:"));
    assert_eq!(cap_line(own, "CapBnd:"), cap_line(init, "CapBnd:"));
    assert_ne!(cap_line(own, "CapEff:"), 0);
    // --cap adds to bounding, permitted and effective; never inheritable
    let out = exec_ok(
        &ctx,
        &[
            "--cap",
            "CAP_SYS_ADMIN",
            "-c",
            "net_raw",
            &ctx.id,
            "cat",
            "/proc/self/status",
        ],
    );
    let sys_admin = 1u64 << 21;
    let net_raw = 1u64 << 13;
    for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
        let v = cap_line(&out, set);
        assert_eq!(
            v & (sys_admin | net_raw),
            sys_admin | net_raw,
            "{set} {out}"
        );
    }
    assert_eq!(cap_line(&out, "CapInh:"), 0);
    assert_eq!(cap_line(&out, "CapAmb:"), 0);
    // an unknown capability is ignored with runc's warning
    let out = exec(&ctx, &["--cap", "CAP_NOPE", &ctx.id, "true"]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("warning")
            && err.contains("ignoring unknown or unavailable capabilities: [CAP_NOPE]"),
        "{err}"
    );
    finish(ctx);
}

#[test]
fn user_and_time_namespaces() {
    let ctx = running("exec-userns", |spec| {
        let ns = spec["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "user"}));
        ns.push(json!({"type": "time"}));
        spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 70000}]);
        spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 70000}]);
        spec["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000, "nanosecs": 0}});
    });
    let out = exec_ok(&ctx, &[&ctx.id, "sh", "-c", SAME_AS_INIT]);
    assert_eq!(out, "checked\n");
    let out = exec_ok(
        &ctx,
        &[
            "-u",
            "1000",
            &ctx.id,
            "sh",
            "-c",
            "cat /proc/self/uid_map; id -u; cut -d. -f1 /proc/uptime",
        ],
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(&words[..4], &["0", "200000", "70000", "1000"], "{out}");
    let uptime: u64 = words[4].parse().unwrap();
    assert!(uptime >= 864000, "boottime offset not seen: {out}");
    // on the host, the process runs as the mapped uid
    let pid_file = ctx.bundle.parent().unwrap().join("userns.pid");
    let out = ctx.rt_detached(&[
        "exec",
        "-d",
        "-u",
        "1000",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &ctx.id,
        "sleep",
        "300",
    ]);
    assert!(out.status.success(), "{out:?}");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains("201000"), "{uid_line}");
    finish(ctx);
}

#[test]
fn stopped_or_missing_container_is_one_line_error() {
    let ctx = running("exec-stopped", |_| {});
    assert!(ctx.rt(&["kill", &ctx.id, "KILL"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctx.status() != "stopped" {
        assert!(Instant::now() < deadline, "container did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = exec(&ctx, &[&ctx.id, "true"]);
    assert_one_line_error(&out, "cannot exec in a stopped container");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&ctx.id));
    let out = exec(&ctx, &["nosuchcontainer", "true"]);
    assert_one_line_error(&out, "container does not exist");
    finish(ctx);
}

#[test]
fn paused_container_needs_ignore_paused() {
    let ctx = running("exec-paused", |_| {});
    assert!(ctx.rt(&["pause", &ctx.id]).status.success());
    let out = exec(&ctx, &[&ctx.id, "true"]);
    // runc's text and exit code: 255 is how a caller tells "exec failed" from the
    // process's own exit code.
    assert_one_line_error(
        &out,
        "cannot exec in a paused container (use --ignore-paused to override)",
    );
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    assert!(ctx.rt(&["resume", &ctx.id]).status.success());
    assert_eq!(exec_ok(&ctx, &[&ctx.id, "echo", "ok"]), "ok\n");
    finish(ctx);
}

#[test]
fn detach_writes_pid_file() {
    let ctx = running("exec-detach", |_| {});
    let pid_file = ctx.bundle.parent().unwrap().join("exec.pid");
    let out = ctx.rt_detached(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &ctx.id,
        "sleep",
        "500",
    ]);
    assert!(out.status.success(), "{out:?}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x00500\x00");
    let init = ctx.state()["pid"].as_i64().unwrap();
    for k in ["pid", "mnt", "net"] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/ns/{k}")).unwrap(),
            std::fs::read_link(format!("/proc/{init}/ns/{k}")).unwrap()
        );
    }
    // it belongs to the container: delete --force takes it down with the rest
    let ps = ctx.rt(&["ps", "--format", "json", &ctx.id]);
    assert!(String::from_utf8_lossy(&ps.stdout).contains(&pid.to_string()));
    finish(ctx);
}

/// One fd received over `sock` with SCM_RIGHTS, and the data that came with it.
fn recv_fd(sock: &impl AsRawFd) -> (OwnedFd, Vec<u8>) {
    let mut buf = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    assert!(!cmsg.is_null(), "no fd received");
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()) };
    (
        unsafe { OwnedFd::from_raw_fd(fd) },
        buf[..n as usize].to_vec(),
    )
}

#[test]
fn pidfd_socket_delivers_a_pidfd() {
    let ctx = running("exec-pidfd", |_| {});
    let dir = ctx.bundle.parent().unwrap();
    let sock_path = dir.join("pidfd.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let pid_file = dir.join("exec.pid");
    let out = ctx.rt_detached(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--pidfd-socket",
        sock_path.to_str().unwrap(),
        &ctx.id,
        "sleep",
        "400",
    ]);
    assert!(out.status.success(), "{out:?}");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let (conn, _) = listener.accept().unwrap();
    let (pidfd, _) = recv_fd(&conn);
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).unwrap();
    assert!(
        info.lines().any(|l| l == format!("Pid:\t{}", pid.trim())),
        "{info}"
    );
    // the pidfd works: kill through it
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(r, 0);
    finish(ctx);
}

#[test]
fn bad_executable_is_one_line_error() {
    let ctx = running("exec-enoent", |_| {});
    let out = exec(&ctx, &[&ctx.id, "no-such-program", "x"]);
    assert_one_line_error(&out, "executable file not found");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&ctx.id));
    let out = exec(&ctx, &["--cwd", "/nonexistent", &ctx.id, "true"]);
    assert_one_line_error(&out, "/nonexistent");
    let lsms = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    assert!(
        !lsms.contains("apparmor") && !lsms.contains("selinux"),
        "{lsms}"
    );
    let out = exec(&ctx, &["--apparmor", "p", &ctx.id, "true"]);
    assert_one_line_error(&out, "apparmor is not an active LSM");
    let out = exec(&ctx, &["--process-label", "l", &ctx.id, "true"]);
    assert_one_line_error(&out, "selinux is not an active LSM");
    assert_eq!(ctx.status(), "running");
    finish(ctx);
}

#[test]
fn no_runtime_fds_leak() {
    let ctx = running("exec-fds", |_| {});
    let out = exec_ok(&ctx, &[&ctx.id, "ls", "/proc/self/fd"]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
    // --preserve-fds passes exactly the fds asked for
    let mut cmd = ctx.cmd(&[
        "exec",
        "--preserve-fds",
        "1",
        &ctx.id,
        "sh",
        "-c",
        "ls /proc/self/fd; cat <&3",
    ]);
    let file = ctx.bundle.parent().unwrap().join("passed");
    std::fs::write(&file, "passed-in\n").unwrap();
    let f = std::fs::File::open(&file).unwrap();
    let raw = f.as_raw_fd();
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            // (dup2 onto itself would keep close-on-exec: clear it explicitly)
            if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words, ["0", "1", "2", "3", "4", "passed-in"], "{text}");
    finish(ctx);
}

#[test]
fn tty_through_console_socket() {
    let ctx = running("exec-tty", |_| {});
    let dir = ctx.bundle.parent().unwrap();
    let sock_path = dir.join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let child = ctx
        .cmd(&[
            "exec",
            "-t",
            "--console-socket",
            sock_path.to_str().unwrap(),
            &ctx.id,
            "sh",
            "-c",
            "tty; exit 3",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let (master, _) = recv_fd(&conn);
    let mut master = std::fs::File::from(master);
    let mut text = Vec::new();
    // read until the slave side closes (EIO)
    let mut buf = [0u8; 256];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let text = String::from_utf8_lossy(&text);
    assert!(text.starts_with("/dev/pts/"), "{text:?}");
    // detached without a console socket, --tty is a one-line error (in the foreground,
    // husk-runtime is the terminal itself: tests/terminal.rs)
    let out = exec(&ctx, &["-t", "-d", &ctx.id, "true"]);
    assert_one_line_error(&out, "console socket");
    finish(ctx);
}

#[test]
fn container_seccomp_filter_applies() {
    let ctx = running("exec-seccomp", |spec| {
        spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let out = exec_ok(&ctx, &[&ctx.id, "grep", "^Seccomp:", "/proc/self/status"]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["Seccomp:", "2"]
    );
    // busybox uname ignores the error and prints nothing where "Linux" would be
    assert_eq!(exec_ok(&ctx, &[&ctx.id, "uname"]).trim(), "");
    assert_eq!(
        exec_ok(&ctx, &[&ctx.id, "cat", "/proc/sys/kernel/ostype"]),
        "Linux\n"
    );
    // also without no_new_privs (installed while the process still has CAP_SYS_ADMIN)
    let file = ctx.bundle.parent().unwrap().join("process.json");
    let process = json!({
        "user": {"uid": 0, "gid": 0},
        "args": ["grep", "^Seccomp:", "/proc/self/status"],
        "env": ["PATH=/bin"],
        "cwd": "/",
        "noNewPrivileges": false,
    });
    std::fs::write(&file, process.to_string()).unwrap();
    let out = exec_ok(&ctx, &["-p", file.to_str().unwrap(), &ctx.id]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["Seccomp:", "2"]
    );
    finish(ctx);
}
