//! linux.seccomp: the filter husk compiles is in force in the container's process.

mod common;

use common::{assert_one_line_error, Ctx};
use serde_json::{json, Value};

/// A writable /tmp (the shared rootfs is read-only) and the given seccomp profile.
fn with_seccomp(spec: &mut Value, seccomp: Value) {
    spec["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    spec["linux"]["seccomp"] = seccomp;
}

fn sh(script: &str) -> [&str; 3] {
    ["sh", "-c", script]
}

#[test]
fn blocked_syscall_returns_eperm_or_errno_ret() {
    let ctx = Ctx::new(
        "scerrno",
        &sh("mkdir /tmp/x; echo mkdir=$?; touch /tmp/y && echo touched; rm /tmp/y; echo rm=$?"),
        |s| {
            with_seccomp(
                s,
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [
                        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                        {"names": ["unlink", "unlinkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
                    ]
                }),
            )
        },
    );
    let (code, out, err) = ctx.run();
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(out.contains("touched"), "{out}");
    assert!(out.contains("rm=1"), "{out}");
    assert!(err.contains("Function not implemented"), "{err}");
    ctx.assert_clean();
}

#[test]
fn argument_comparisons_select_the_call() {
    // personality(PER_LINUX32) refused, personality(PER_LINUX) fine; chmod that sets the
    // setuid bit kills the caller, other modes pass.
    let ctx = Ctx::new(
        "scargs",
        &sh(
            "linux32 true; echo l32=$?; linux64 true; echo l64=$?; touch /tmp/f; \
             chmod 755 /tmp/f; echo c755=$?; chmod 4755 /tmp/f; echo c4755=$?",
        ),
        |s| {
            with_seccomp(
                s,
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [
                        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                        {"names": ["chmod"], "action": "SCMP_ACT_KILL_PROCESS",
                         "args": [{"index": 1, "value": 2048, "valueTwo": 2048,
                                   "op": "SCMP_CMP_MASKED_EQ"}]},
                        {"names": ["fchmodat", "fchmodat2"], "action": "SCMP_ACT_KILL_PROCESS",
                         "args": [{"index": 2, "value": 2048, "valueTwo": 2048,
                                   "op": "SCMP_CMP_MASKED_EQ"}]}
                    ]
                }),
            )
        },
    );
    let (code, out, err) = ctx.run();
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert!(out.contains("l32=1"), "{out} {err}");
    assert!(out.contains("l64=0"), "{out} {err}");
    assert!(out.contains("c755=0"), "{out} {err}");
    assert!(out.contains("c4755=159"), "{out} {err}");
}

/// Enough for busybox's sh, echo and cat (static glibc), but not mkdir.
const ALLOWLIST: &[&str] = &[
    "execve",
    "brk",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "mprotect",
    "mmap",
    "munmap",
    "readlink",
    "readlinkat",
    "getrandom",
    "uname",
    "read",
    "write",
    "writev",
    "close",
    "exit",
    "exit_group",
    "getpid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "fstat",
    "newfstatat",
    "stat",
    "lstat",
    "statx",
    "open",
    "openat",
    "fcntl",
    "ioctl",
    "dup2",
    "dup3",
    "wait4",
    "fork",
    "vfork",
    "clone",
    "clone3",
    "getcwd",
    "chdir",
    "lseek",
    "access",
    "faccessat",
    "faccessat2",
    "getdents64",
    "futex",
    "sigaltstack",
    "pipe",
    "pipe2",
    "setpgid",
    "getpgrp",
];

#[test]
fn default_errno_with_an_allowlist() {
    let ctx = Ctx::new(
        "scallow",
        &sh("echo hello; mkdir /tmp/d; echo mkdir=$?"),
        |s| {
            with_seccomp(
                s,
                json!({
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                    "syscalls": [{"names": ALLOWLIST, "action": "SCMP_ACT_ALLOW"}]
                }),
            )
        },
    );
    let (code, out, err) = ctx.run();
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert!(out.contains("hello"), "{out}");
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(err.contains("Operation not permitted"), "{err}");
    ctx.assert_clean();
}

/// A static x86_64 ELF that makes syscall `nr` (whatever is in the argument registers) and
/// exits with the negated result, so -ENOSYS exits 38 and -EPERM exits 1. Made by hand: the
/// busybox rootfs has no way to call a syscall by number.
fn syscall_probe(nr: u32) -> Vec<u8> {
    let mut code = vec![0xb8]; // mov eax, nr
    code.extend(nr.to_le_bytes());
    // syscall; neg eax; mov edi, eax; mov eax, 60 (exit); syscall
    code.extend([
        0x0f, 0x05, 0xf7, 0xd8, 0x89, 0xc7, 0xb8, 60, 0, 0, 0, 0x0f, 0x05,
    ]);
    let base: u64 = 0x40_0000;
    let hdrs: u64 = 64 + 56;
    let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.extend([0u8; 8]);
    elf.extend(2u16.to_le_bytes()); // ET_EXEC
    elf.extend(0x3eu16.to_le_bytes()); // x86_64
    elf.extend(1u32.to_le_bytes());
    elf.extend((base + hdrs).to_le_bytes()); // entry
    elf.extend(64u64.to_le_bytes()); // program headers right after this header
    elf.extend(0u64.to_le_bytes());
    elf.extend(0u32.to_le_bytes());
    for h in [64u16, 56, 1, 0, 0, 0] {
        elf.extend(h.to_le_bytes());
    }
    let size = hdrs + code.len() as u64;
    elf.extend(1u32.to_le_bytes()); // PT_LOAD
    elf.extend(5u32.to_le_bytes()); // r-x
    for v in [0, base, base, size, size, 0x1000] {
        elf.extend(v.to_le_bytes());
    }
    elf.extend(code);
    elf
}

#[test]
fn calls_newer_than_the_profile_get_enosys_not_the_default_errno() {
    // runc's behaviour: a deny-by-default profile names calls up to some number; a call
    // above it (newer than the profile) gets ENOSYS, so libc falls back to an older call.
    // A call below it that the profile does not allow keeps the default action.
    if !cfg!(target_arch = "x86_64") {
        panic!("the syscall probe is x86_64 code");
    }
    let probes = [(460u32, 38), (1000, 38), (83, 1)]; // 83 = mkdir, a hole: EPERM
    for archs in [json!(["SCMP_ARCH_X86_64"]), json!([])] {
        let ctx = Ctx::new(
            "scenosys",
            &sh("/p/460; echo a=$?; /p/1000; echo b=$?; /p/83; echo c=$?"),
            |s| {
                with_seccomp(
                    s,
                    json!({
                        "defaultAction": "SCMP_ACT_ERRNO",
                        "architectures": archs,
                        "syscalls": [{"names": ALLOWLIST, "action": "SCMP_ACT_ALLOW"}]
                    }),
                )
            },
        );
        let dir = ctx.bundle.join("probes");
        std::fs::create_dir_all(&dir).unwrap();
        for (nr, _) in probes {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.join(nr.to_string());
            std::fs::write(&p, syscall_probe(nr)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let spec_path = ctx.bundle.join("config.json");
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&spec_path).unwrap()).unwrap();
        spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/p", "type": "bind", "source": dir, "options": ["rbind", "ro"]
        }));
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        let out = ctx.rt_within(&["run", &ctx.id], 30);
        assert!(out.status.success(), "{archs}: {}", common::text(&out));
        assert_eq!(
            out.stdout,
            b"a=38\nb=38\nc=1\n",
            "{archs}: {}",
            common::text(&out)
        );
        ctx.assert_clean();
    }
}

#[test]
fn start_container_hooks_run_under_the_filter() {
    // As runc: the filter is in place when startContainer runs, also with no_new_privs
    // (where the filter otherwise goes on right before execve).
    for nnp in [true, false] {
        let ctx = Ctx::new("schook", &["true"], |s| {
            with_seccomp(
                s,
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
                }),
            );
            s["process"]["noNewPrivileges"] = json!(nnp);
        });
        let out_dir = ctx.bundle.join("out");
        std::fs::create_dir_all(&out_dir).unwrap();
        let spec_path = ctx.bundle.join("config.json");
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&spec_path).unwrap()).unwrap();
        spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "bind", "source": out_dir, "options": ["rbind"]
        }));
        spec["hooks"] = json!({"startContainer": [{"path": "/bin/sh",
            "args": ["sh", "-c", "mkdir /tmp/h; echo $? > /mnt/hook"]}]});
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        let out = ctx.rt_within(&["run", &ctx.id], 30);
        assert!(out.status.success(), "nnp={nnp}: {}", common::text(&out));
        let hook = std::fs::read_to_string(out_dir.join("hook")).unwrap();
        assert_eq!(hook, "1\n", "nnp={nnp}: mkdir in the hook was not filtered");
        ctx.assert_clean();
    }
}

#[test]
fn kill_process_is_exit_159_for_the_container_process() {
    for (nnp, action) in [
        (true, "SCMP_ACT_KILL_PROCESS"),
        (false, "SCMP_ACT_KILL_PROCESS"),
        (true, "SCMP_ACT_KILL"),
    ] {
        let ctx = Ctx::new("sckill", &["mkdir", "/tmp/x"], |s| {
            with_seccomp(
                s,
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]
                }),
            );
            s["process"]["noNewPrivileges"] = json!(nnp);
        });
        let (code, out, err) = ctx.run();
        assert_eq!(code, 159, "{action} nnp={nnp}: stdout={out} stderr={err}");
        ctx.assert_clean();
    }
}

#[test]
fn log_and_trace_do_not_break_the_container() {
    // LOG allows (and logs); TRACE without a tracer fails the call with ENOSYS.
    let ctx = Ctx::new(
        "sclog",
        &sh("mkdir /tmp/x && echo made; touch /tmp/y; rm /tmp/y; echo rm=$?"),
        |s| {
            with_seccomp(
                s,
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                              "SECCOMP_FILTER_FLAG_TSYNC"],
                    "syscalls": [
                        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"},
                        {"names": ["unlink", "unlinkat"], "action": "SCMP_ACT_TRACE"}
                    ]
                }),
            )
        },
    );
    let (code, out, err) = ctx.run();
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert!(out.contains("made"), "{out}");
    assert!(out.contains("rm=1"), "{out}");
    assert!(err.contains("Function not implemented"), "{err}");
}

#[test]
fn trap_delivers_sigsys() {
    let ctx = Ctx::new("sctrap", &["mkdir", "/tmp/x"], |s| {
        with_seccomp(
            s,
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRAP"}]
            }),
        )
    });
    let (code, _, err) = ctx.run();
    assert_eq!(code, 159, "{err}");
}

#[test]
fn invalid_profiles_are_one_line_errors_at_create() {
    let cases = [
        (json!({"defaultAction": "SCMP_ACT_BOGUS"}), "SCMP_ACT_BOGUS"),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}]}),
            "SCMP_ACT_NOPE",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}),
            "SCMP_ARCH_Z80",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"],
                   "action": "SCMP_ACT_ERRNO",
                   "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]}),
            "SCMP_CMP_ALMOST",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"],
                   "action": "SCMP_ACT_ERRNO",
                   "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "index 7",
        ),
    ];
    for (profile, needle) in cases {
        let ctx = Ctx::new("scbad", &["true"], |s| with_seccomp(s, profile));
        let out = ctx.rt(&["create", &ctx.id]);
        assert_one_line_error(&out, needle);
        ctx.assert_clean();
    }
}

#[test]
fn docker_default_profile_runs_busybox_and_refuses_namespaces_mount() {
    let profile: Value =
        serde_json::from_str(include_str!("fixtures/docker-default-seccomp.json")).unwrap();
    let script = "echo hi > /tmp/f && cat /tmp/f && ls / >/dev/null && ps >/dev/null && \
                  uname -a >/dev/null && id -u && sleep 0 && (echo sub) && \
                  linux32 true && echo ok; \
                  unshare -m true; echo unshare=$?; \
                  mount -t tmpfs none /mnt; echo mount=$?; \
                  nsenter -t 1 -m true; echo nsenter=$?";
    // Docker leaves no_new_privs off: the filter is then installed before capabilities
    // are dropped; check both placements.
    for nnp in [false, true] {
        let ctx = Ctx::new("scdocker", &sh(script), |s| {
            with_seccomp(s, profile.clone());
            s["process"]["noNewPrivileges"] = json!(nnp);
            // Docker's capabilities include what unshare/mount would need without seccomp.
            for set in ["bounding", "effective", "permitted"] {
                s["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_SYS_ADMIN"));
            }
        });
        let (code, out, err) = ctx.run();
        assert_eq!(code, 0, "nnp={nnp} stdout={out} stderr={err}");
        assert!(out.starts_with("hi\n0\nsub\nok\n"), "nnp={nnp} {out} {err}");
        assert!(out.contains("ok\n"), "{out} {err}");
        assert!(out.contains("unshare=1"), "{out} {err}");
        assert!(
            out.contains("mount=1") || out.contains("mount=255"),
            "{out} {err}"
        );
        assert!(out.contains("nsenter=1"), "{out} {err}");
        assert!(err.contains("Operation not permitted"), "{err}");
        ctx.assert_clean();
    }
}

/// What the test's seccomp listener saw: the JSON sent with the notify fd, the syscall
/// number of the one notification it answered and the parent pid of the caller.
struct Notified {
    msg: Value,
    nr: i32,
    caller_ppid: i32,
}

/// A listener socket path, unique per test (short: sun_path holds 108 bytes).
fn listener_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("husk-{tag}-{}.sock", std::process::id()))
}

/// Wait for `fd` to be readable, at most 30 s.
fn wait_readable(fd: i32, what: &str) -> Result<(), String> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    match unsafe { libc::poll(&mut p, 1, 30_000) } {
        1 => Ok(()),
        _ => Err(format!("timed out waiting for {what}")),
    }
}

/// Accept connections on `path` (the first `skip` are kept open, unread), receive the
/// JSON and the notify fd (SCM_RIGHTS) on the next, answer one notification with `error`
/// (a negative errno).
fn seccomp_listener(
    path: &std::path::Path,
    skip: usize,
    error: i32,
) -> std::thread::JoinHandle<Result<Notified, String>> {
    use std::os::fd::AsRawFd;
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let mut skipped = Vec::new();
        let conn = loop {
            wait_readable(listener.as_raw_fd(), "the runtime to connect")?;
            let (conn, _) = listener.accept().map_err(|e| e.to_string())?;
            if skipped.len() == skip {
                break conn;
            }
            skipped.push(conn);
        };
        wait_readable(conn.as_raw_fd(), "the notify fd")?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut cbuf = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf.as_mut_ptr().cast();
        mh.msg_controllen = std::mem::size_of_val(&cbuf);
        let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut mh, libc::MSG_CMSG_CLOEXEC) };
        if n <= 0 {
            return Err(format!("recvmsg: {n}"));
        }
        let msg: Value = serde_json::from_slice(&buf[..n as usize]).map_err(|e| e.to_string())?;
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&mh) };
        if cmsg.is_null() || unsafe { (*cmsg).cmsg_type } != libc::SCM_RIGHTS {
            return Err("no SCM_RIGHTS with the message".into());
        }
        let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>()) };

        // struct seccomp_notif (80 bytes) and seccomp_notif_resp (24 bytes).
        const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
        const NOTIF_SEND: libc::c_ulong = 0xc018_2101;
        #[repr(C)]
        struct Notif {
            id: u64,
            pid: u32,
            flags: u32,
            nr: i32,
            arch: u32,
            ip: u64,
            args: [u64; 6],
        }
        #[repr(C)]
        struct Resp {
            id: u64,
            val: i64,
            error: i32,
            flags: u32,
        }
        wait_readable(fd, "a seccomp notification")?;
        let mut req: Notif = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd, NOTIF_RECV, &mut req) } < 0 {
            return Err(format!("NOTIF_RECV: {}", std::io::Error::last_os_error()));
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", req.pid))
            .map_err(|e| e.to_string())?;
        let caller_ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1);
        let mut resp = Resp {
            id: req.id,
            val: 0,
            error,
            flags: 0,
        };
        if unsafe { libc::ioctl(fd, NOTIF_SEND, &mut resp) } < 0 {
            return Err(format!("NOTIF_SEND: {}", std::io::Error::last_os_error()));
        }
        unsafe { libc::close(fd) };
        Ok(Notified {
            msg,
            nr: req.nr,
            caller_ppid,
        })
    })
}

fn notify_profile(path: &std::path::Path) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": path,
        "listenerMetadata": "hello-agent",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    })
}

const MKDIR_SCRIPT: &str =
    "mkdir /tmp/x; echo mkdir=$?; test -d /tmp/x && echo exists || echo absent";

fn check_notified(n: &Notified, id: &str, pid: i64, status: &str) {
    let m = &n.msg;
    assert_eq!(m["fds"], json!(["seccompFd"]), "{m}");
    assert_eq!(m["metadata"], "hello-agent", "{m}");
    assert!(
        m["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "{m}"
    );
    assert_eq!(m["state"]["id"], id, "{m}");
    assert_eq!(m["state"]["status"], status, "{m}");
    assert_eq!(m["pid"].as_i64(), Some(pid), "{m}");
    assert!(n.nr == 83 || n.nr == 258, "syscall {}", n.nr); // mkdir, mkdirat
}

#[test]
fn notify_hands_the_fd_to_the_listener_which_answers_mkdir() {
    // With no_new_privs the filter goes on right before execve; without, before the
    // capability drop: both send the notify fd.
    for nnp in [true, false] {
        let path = listener_path(&format!("scn{nnp}"));
        let ctx = Ctx::new("scnotify", &sh(MKDIR_SCRIPT), |s| {
            with_seccomp(s, notify_profile(&path));
            s["process"]["noNewPrivileges"] = json!(nnp);
        });
        let agent = seccomp_listener(&path, 0, -libc::EROFS);
        let (code, out, err) = ctx.run();
        let n = agent
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}; {out} {err}"));
        // The caller of mkdir is a child of the shell, which is the container's init.
        let init = n.msg["pid"].as_i64().unwrap();
        check_notified(&n, &ctx.id, init, "creating");
        assert_eq!(i64::from(n.caller_ppid), init);
        assert_eq!(code, 0, "stdout={out} stderr={err}");
        assert!(out.contains("mkdir=1") && out.contains("absent"), "{out}");
        assert!(err.contains("Read-only file system"), "{err}");
        ctx.assert_clean();
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn notify_for_an_exec_process() {
    let path = listener_path("scnexec");
    let ctx = Ctx::new("scnexec", &["sleep", "60"], |s| {
        with_seccomp(s, notify_profile(&path))
    });
    // The first connection is init's (with no_new_privs it sends only at start, which
    // never comes here); the second is the exec'd process's.
    let agent = seccomp_listener(&path, 1, 0);
    let out = ctx.rt_detached(&["create", &ctx.id]);
    assert!(out.status.success(), "{}", common::text(&out));
    let out = ctx.rt(&["exec", &ctx.id, "sh", "-c", MKDIR_SCRIPT]);
    let n = agent.join().unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::text(&out));
    // The listener answered "success" without doing anything: mkdir returns 0, no dir.
    assert!(
        stdout.contains("mkdir=0") && stdout.contains("absent"),
        "{stdout}"
    );
    check_notified(&n, &ctx.id, i64::from(n.caller_ppid), "created");
    assert_ne!(n.msg["pid"], ctx.state()["pid"]);
    let out = ctx.rt(&["delete", "--force", &ctx.id]);
    assert!(out.status.success(), "{}", common::text(&out));
    ctx.assert_clean();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn notify_needs_a_reachable_listener() {
    let missing = listener_path("scnmissing");
    let _ = std::fs::remove_file(&missing);
    let ctx = Ctx::new("scnbad", &["true"], |s| {
        with_seccomp(s, notify_profile(&missing))
    });
    let out = ctx.rt(&["create", &ctx.id]);
    assert_one_line_error(&out, "listenerPath");
    ctx.assert_clean();

    let ctx = Ctx::new("scnbad", &["true"], |s| {
        let mut p = notify_profile(&missing);
        p.as_object_mut().unwrap().remove("listenerPath");
        with_seccomp(s, p)
    });
    let out = ctx.rt(&["create", &ctx.id]);
    assert_one_line_error(&out, "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath");
    ctx.assert_clean();
}

#[test]
fn notify_on_write_is_refused_as_runc_does() {
    // The runtime writes after the filter is in place; runc refuses such a profile at
    // create, before connecting to the agent.
    let path = listener_path("scnwrite");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let ctx = Ctx::new("scnwrite", &["true"], |s| {
        let mut p = notify_profile(&path);
        p["syscalls"][0]["names"] = json!(["mkdir", "write"]);
        with_seccomp(s, p)
    });
    let out = ctx.rt_within(&["create", &ctx.id], 30);
    let _ = std::fs::remove_file(&path);
    assert_one_line_error(&out, "SCMP_ACT_NOTIFY cannot be used for the write syscall");
    ctx.assert_clean();
}
