//! Regression tests for known container-runtime escapes. Each test reproduces the attack
//! against husk-runtime and asserts that it fails and that the host is untouched.
//! Attacks that need a modified image get a private copy of the shared rootfs; attacks on
//! the runtime binary run against a private copy of husk-runtime (never the one other tests
//! use) and compare its sha256 before and after. See docs/security.md.

mod common;

use common::{assert_one_line_error, text, Ctx, BIN};
use serde_json::{json, Value};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// This test's scratch directory (beside its bundle).
fn dir(ctx: &Ctx) -> PathBuf {
    ctx.bundle.parent().unwrap().to_path_buf()
}

/// A private, writable copy of the shared rootfs, made the bundle's root.
fn private_rootfs(ctx: &Ctx) -> PathBuf {
    let root = dir(ctx).join("rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(common::rootfs())
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    edit_spec(ctx, |s| {
        s["root"]["path"] = json!(root.to_str().unwrap());
        // The attacks leave markers in the container's /tmp.
        s["root"]["readonly"] = json!(false);
    });
    root
}

fn edit_spec(ctx: &Ctx, edit: impl FnOnce(&mut Value)) {
    let path = ctx.bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut spec);
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A private copy of husk-runtime for attacks on the binary itself.
fn runtime_copy(ctx: &Ctx) -> PathBuf {
    let p = dir(ctx).join("husk-copy");
    std::fs::copy(BIN, &p).unwrap();
    p
}

/// `BIN --root ROOT ARGS…` for an arbitrary runtime binary, output to files.
fn rt_as(bin: &Path, ctx: &Ctx, args: &[&str]) -> Output {
    let mut c = Command::new(bin);
    c.arg("--root")
        .arg(&ctx.root)
        .args(args)
        .current_dir(&ctx.bundle)
        .stdin(Stdio::null());
    common::output_via_files(c, &dir(ctx))
}

fn wait_for(p: &Path, secs: u64) -> Option<String> {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if let Ok(s) = std::fs::read_to_string(p) {
            if !s.is_empty() {
                return Some(s.trim().to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Sorted names in a host directory.
fn listing(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A host directory with one sentinel file: it must look exactly like this afterwards.
fn host_dir(ctx: &Ctx, name: &str) -> PathBuf {
    let p = dir(ctx).join(name);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("sentinel"), "host").unwrap();
    p
}

fn assert_host_dir_untouched(p: &Path) {
    assert_eq!(listing(p), vec!["sentinel".to_string()], "{}", p.display());
    assert_eq!(std::fs::read_to_string(p.join("sentinel")).unwrap(), "host");
}

/// Shell run by the attacker in the container: hold `/proc/$pid/exe` open, then keep trying
/// to reopen it for writing through /proc/self/fd once the runtime no longer runs it.
/// Writes opened / (wrote|denied) markers to /tmp.
const OVERWRITE_EXE: &str = r#"
i=0
while [ $i -lt 150 ]; do
  if echo '#!/bin/busybox sh' 2>/dev/null >/proc/self/fd/3; then echo wrote > /tmp/result; exit 0; fi
  i=$((i+1)); sleep 0.02
done
echo denied > /tmp/result
"#;

/// CVE-2019-5736, first form: before `start`, the container's pid 1 is the runtime (a
/// clone of husk-runtime waiting at the exec gate). A process exec'd into the created
/// container opens /proc/1/exe, and once init has exec'd the user's program (so the binary
/// is no longer busy) reopens it for writing.
#[test]
fn cve_2019_5736_init_exe_cannot_be_overwritten() {
    let ctx = Ctx::new("esc-5736-init", &["sleep", "20"], |_| {});
    let root = private_rootfs(&ctx);
    let bin = runtime_copy(&ctx);
    let before = sha256(&bin);
    let out = rt_as(&bin, &ctx, &["create", &ctx.id]);
    assert!(out.status.success(), "{}", text(&out));
    let attack = format!(
        "command exec 3</proc/1/exe 2>/dev/null || {{ echo noopen > /tmp/result; exit 0; }}; echo opened > /tmp/opened; {OVERWRITE_EXE}"
    );
    let out = rt_as(&bin, &ctx, &["exec", "-d", &ctx.id, "sh", "-c", &attack]);
    assert!(out.status.success(), "{}", text(&out));
    let opened = wait_for(&root.join("tmp/opened"), 5);
    let out = rt_as(&bin, &ctx, &["start", &ctx.id]);
    assert!(out.status.success(), "{}", text(&out));
    let result = wait_for(&root.join("tmp/result"), 60)
        .unwrap_or_else(|| panic!("the attacker never finished (opened={opened:?})"));
    assert_ne!(result, "wrote", "the runtime binary was overwritten");
    assert!(
        opened.is_some() || result == "noopen",
        "attack did not run: {result}"
    );
    assert_eq!(sha256(&bin), before, "husk-runtime copy changed");
    assert!(rt_as(&bin, &ctx, &["delete", "--force", &ctx.id])
        .status
        .success());
    ctx.assert_clean();
}

/// A pipe whose buffer is full: a process writing to it blocks until the other end reads.
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    use std::os::fd::AsRawFd;
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let buf = [b'x'; 4096];
    while unsafe { libc::write(w.as_raw_fd(), buf.as_ptr().cast(), buf.len()) } > 0 {}
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFL, 0) };
    (r, w)
}

/// CVE-2019-5736, second form (the published exploit): the image's /bin/sh is
/// `#!/proc/self/exe`, so `exec ID /bin/sh` makes the kernel run the runtime's own binary
/// inside the container. An attacker in the container finds that process, holds its exe
/// open and rewrites it once it exits. The runtime's stdout/stderr are a full pipe so the
/// runtime-in-the-container blocks on its first write: the race becomes deterministic.
/// (`command exec`: a failed redirection on plain `exec` makes sh exit, and a process may
/// vanish between readlink and open.)
#[test]
fn cve_2019_5736_shebang_proc_self_exe_cannot_overwrite_the_runtime() {
    let finder = format!(
        r#"
while :; do
  for d in /proc/[0-9]*; do
    e=$(readlink $d/exe 2>/dev/null)
    case "$e" in ''|/bin/busybox) continue;; esac
    command exec 3<$d/exe 2>/dev/null || continue
    echo "$e" > /tmp/opened
    break 2
  done
  [ -e /tmp/stop ] && {{ echo notfound > /tmp/result; exit 0; }}
done
{OVERWRITE_EXE}"#
    );
    let ctx = Ctx::new(
        "esc-5736-exec",
        &["/bin/busybox", "sh", "-c", &finder],
        |_| {},
    );
    let root = private_rootfs(&ctx);
    std::fs::remove_file(root.join("bin/sh")).unwrap();
    std::fs::write(root.join("bin/sh"), "#!/proc/self/exe\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("bin/sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = runtime_copy(&ctx);
    let before = sha256(&bin);
    assert!(rt_as(&bin, &ctx, &["run", "-d", &ctx.id]).status.success());

    let (r, w) = full_pipe();
    let w2 = w.try_clone().unwrap();
    let mut exec = Command::new(&bin)
        .arg("--root")
        .arg(&ctx.root)
        .args(["exec", &ctx.id, "/bin/sh"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2))
        .spawn()
        .unwrap();
    let opened = wait_for(&root.join("tmp/opened"), 5);
    std::fs::write(root.join("tmp/stop"), "").unwrap();
    // Let the runtime-in-the-container (and the exec) finish.
    let drain = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut out);
        String::from_utf8_lossy(&out)
            .trim_start_matches('x')
            .to_string()
    });
    let _ = exec.wait();
    // Generous: the attacker's loop forks a busybox per step, slow on a loaded machine.
    let result = wait_for(&root.join("tmp/result"), 60)
        .unwrap_or_else(|| panic!("the attacker never finished (opened={opened:?})"));
    assert_ne!(result, "wrote", "the runtime binary was overwritten");
    assert_eq!(sha256(&bin), before, "husk-runtime copy changed");
    assert!(rt_as(&bin, &ctx, &["delete", "--force", &ctx.id])
        .status
        .success());
    let exec_out = drain.join().unwrap();
    // The attack must have run: either the attacker held a runtime process's exe and the
    // write was refused (EROFS: it is the read-only view), or the kernel could not run
    // /proc/self/exe as /bin/sh's interpreter at all (the view is a detached mount that
    // the container's exec cannot reach), so the runtime never ran in the container.
    assert!(
        // (The error line is runc's `level=error msg="…"` form, quotes escaped inside.)
        opened.is_some() || exec_out.replace("\\\"", "\"").contains("exec \"/bin/sh\""),
        "neither did the attacker find the runtime nor did the exec fail: {exec_out}"
    );
    eprintln!("5736 shebang: opened={opened:?} result={result} exec: {exec_out}");
    ctx.assert_clean();
}

/// CVE-2021-30465 / CVE-2024-45310: mount destinations through symlinks that point out of
/// the rootfs (absolute and ../..) land inside the rootfs; nothing is made on the host.
#[test]
fn mount_destinations_through_symlinks_stay_in_the_rootfs() {
    let ctx = Ctx::new("esc-mountdst", &["true"], |_| {});
    let root = private_rootfs(&ctx);
    let host = host_dir(&ctx, "host");
    let hs = host.to_str().unwrap();
    std::os::unix::fs::symlink(&host, root.join("abs")).unwrap();
    std::os::unix::fs::symlink(format!("../../../../../../../../..{hs}"), root.join("up")).unwrap();
    // A symlink as the final component too.
    let host2 = host_dir(&ctx, "host2");
    std::os::unix::fs::symlink(&host2, root.join("mnt/final")).unwrap();
    let src = dir(&ctx).join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("from-bind"), "").unwrap();
    let src_s = src.to_str().unwrap().to_string();
    edit_spec(&ctx, |s| {
        let m = s["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/abs/t1", "type": "tmpfs", "source": "tmpfs"}));
        m.push(
            json!({"destination": "/up/b1", "type": "bind", "source": src_s, "options": ["bind"]}),
        );
        m.push(json!({"destination": "/mnt/final", "type": "tmpfs", "source": "tmpfs"}));
        s["process"]["args"] = json!(["sh", "-c", format!(
            "ls {hs}/b1/from-bind && grep -c ' {hs}/t1 ' /proc/self/mountinfo && grep -c ' {hs}2 ' /proc/self/mountinfo")]);
    });
    let out = ctx.run_ok();
    assert!(out.contains("from-bind"), "{out}");
    assert_host_dir_untouched(&host);
    assert_host_dir_untouched(&host2);
    // The directories were made inside the rootfs, under the symlinks' targets.
    assert!(root.join(hs.trim_start_matches('/')).join("t1").is_dir());
    assert!(root.join(hs.trim_start_matches('/')).join("b1").is_dir());
    ctx.assert_clean();
}

/// A racing symlink swap (CVE-2021-30465) needs the destination to be re-resolved after
/// the check: husk resolves once into an O_PATH fd and mounts onto /proc/self/fd/N. The
/// deterministic equivalent: the destination's parent is replaced by a symlink by a
/// createRuntime hook — the hook runs after the mounts, so the mounts already sit inside
/// the rootfs and a later swap can move nothing to the host.
#[test]
fn symlink_swap_after_mounts_reaches_nothing_on_the_host() {
    let ctx = Ctx::new("esc-swap", &["true"], |_| {});
    let root = private_rootfs(&ctx);
    let host = host_dir(&ctx, "host");
    let rs = root.to_str().unwrap().to_string();
    let hs = host.to_str().unwrap().to_string();
    edit_spec(&ctx, |s| {
        s["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/swap/t", "type": "tmpfs", "source": "tmpfs"}));
        let script = format!("rm -rf {rs}/swap2; mv {rs}/swap {rs}/swap2; ln -s {hs} {rs}/swap");
        s["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
    });
    let out = ctx.rt(&["run", &ctx.id]);
    assert!(out.status.success(), "{}", text(&out));
    assert_host_dir_untouched(&host);
    ctx.assert_clean();
}

/// CVE-2024-21626: the working directory must never be a leaked host fd.
#[test]
fn cve_2024_21626_cwd_proc_self_fd_never_lands_on_the_host() {
    let check = "cd ../../../../../..; [ \"$(stat -c %d:%i .)\" = \"$(stat -c %d:%i /)\" ] && echo INSIDE || echo OUTSIDE";
    for n in 3..=10 {
        let cwd = format!("/proc/self/fd/{n}");
        let ctx = Ctx::new("esc-21626", &["sh", "-c", check], |s| {
            s["process"]["cwd"] = json!(cwd);
        });
        let (code, out, err) = ctx.run();
        if code == 0 {
            assert_eq!(out.trim(), "INSIDE", "cwd {cwd}: {out} {err}");
        } else {
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            assert!(err.contains("cwd"), "{err}");
        }
        ctx.assert_clean();
    }
    // The exec variant, into a running container.
    let ctx = Ctx::new("esc-21626-exec", &["sleep", "20"], |_| {});
    assert!(ctx.rt_detached(&["run", "-d", &ctx.id]).status.success());
    for n in 3..=10 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = ctx.rt(&["exec", "--cwd", &cwd, &ctx.id, "sh", "-c", check]);
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "INSIDE");
        } else {
            assert_one_line_error(&out, "cwd");
        }
    }
    // An exec'd process sees only its stdio (+ the fd ls opens itself).
    let out = ctx.rt(&[
        "exec",
        &ctx.id,
        "sh",
        "-c",
        "ls /proc/self/fd | sort -n | tr '\\n' ' '",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0 1 2 3");
    assert!(ctx.rt(&["delete", "--force", &ctx.id]).status.success());
    ctx.assert_clean();
}

/// CVE-2022-29162: exec'd processes get no inheritable capabilities unless asked; the
/// --cap variants are in tests/exec.rs (`capabilities`).
#[test]
fn cve_2022_29162_exec_has_no_inheritable_caps() {
    let ctx = Ctx::new("esc-29162", &["sleep", "20"], |s| {
        s["process"]["capabilities"]["inheritable"] = json!([]);
    });
    assert!(ctx.rt_detached(&["run", "-d", &ctx.id]).status.success());
    let out = ctx.rt(&[
        "exec",
        &ctx.id,
        "grep",
        "-E",
        "CapInh|CapAmb",
        "/proc/self/status",
    ]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("CapInh:\t0000000000000000"), "{s}");
    assert!(s.contains("CapAmb:\t0000000000000000"), "{s}");
    assert!(ctx.rt(&["delete", "--force", &ctx.id]).status.success());
}

/// CVE-2019-16884 / CVE-2023-27561: the image's /proc is a symlink, to a fake proc inside
/// the rootfs or to a host path. Mounts, sysctl and masking follow it only inside the
/// rootfs, and sysctl writes only ever go to procfs.
#[test]
fn proc_symlink_in_the_image_is_contained() {
    for target in ["fake", "host"] {
        let ctx = Ctx::new("esc-procsym", &["true"], |_| {});
        let root = private_rootfs(&ctx);
        let host = host_dir(&ctx, "hostproc");
        std::fs::remove_dir(root.join("proc")).unwrap();
        let fake = root.join("tmp/fakeproc/sys/net/ipv4");
        std::fs::create_dir_all(&fake).unwrap();
        std::fs::write(fake.join("ip_forward"), "fake").unwrap();
        if target == "fake" {
            std::os::unix::fs::symlink("/tmp/fakeproc", root.join("proc")).unwrap();
        } else {
            std::os::unix::fs::symlink(&host, root.join("proc")).unwrap();
        }
        edit_spec(&ctx, |s| {
            s["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
            s["process"]["args"] = json!(["cat", "/proc/sys/net/ipv4/ip_forward"]);
        });
        let (code, out, err) = ctx.run();
        if code == 0 {
            assert_eq!(out.trim(), "1", "{target}: {err}");
        } else {
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        }
        // The fake file under the procfs mount was never written; the host dir is as it was.
        assert_host_dir_untouched(&host);
        assert_eq!(
            std::fs::read_to_string(fake.join("ip_forward")).unwrap(),
            "fake"
        );
        ctx.assert_clean();
    }
}

/// A sysctl key whose /proc/sys path is a symlink planted by the image (without a proc
/// mount) must not be written anywhere: the handle is checked to be procfs.
#[test]
fn sysctl_never_writes_outside_procfs() {
    let ctx = Ctx::new("esc-sysctl", &["true"], |_| {});
    let root = private_rootfs(&ctx);
    let fake = root.join("proc/sys/net/ipv4");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("ip_forward"), "fake").unwrap();
    edit_spec(&ctx, |s| {
        s["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/proc");
        s["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    let out = ctx.rt(&["run", &ctx.id]);
    assert_one_line_error(&out, "not on procfs");
    assert_eq!(
        std::fs::read_to_string(fake.join("ip_forward")).unwrap(),
        "fake"
    );
    ctx.assert_clean();
}

/// A masked path that is a symlink in the image is refused, not followed.
#[test]
fn masked_path_symlink_is_refused() {
    let ctx = Ctx::new("esc-masksym", &["true"], |_| {});
    let root = private_rootfs(&ctx);
    let host = host_dir(&ctx, "host");
    std::os::unix::fs::symlink(host.join("sentinel"), root.join("etc/secret")).unwrap();
    edit_spec(&ctx, |s| {
        s["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/etc/secret"));
    });
    let out = ctx.rt(&["run", &ctx.id]);
    assert_one_line_error(&out, "masking /etc/secret");
    assert_host_dir_untouched(&host);
    ctx.assert_clean();
}

/// CVE-2025-31133: the image's /dev/null (no /dev tmpfs) is a symlink to
/// /proc/sys/kernel/core_pattern, or a regular file: masking must not use it.
#[test]
fn cve_2025_31133_image_dev_null_is_never_used_for_masking() {
    let host_core = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    for kind in ["symlink", "file"] {
        let ctx = Ctx::new(
            "esc-devnull",
            &["sh", "-c", "cat /proc/kcore 2>&1 | head -c 10 | wc -c"],
            |_| {},
        );
        let root = private_rootfs(&ctx);
        match kind {
            "symlink" => {
                std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", root.join("dev/null"))
                    .unwrap()
            }
            _ => std::fs::write(root.join("dev/null"), "").unwrap(),
        }
        edit_spec(&ctx, |s| {
            s["mounts"]
                .as_array_mut()
                .unwrap()
                .retain(|m| m["destination"] != "/dev");
        });
        let (code, out, err) = ctx.run();
        if code == 0 {
            // Masked with the real /dev/null: /proc/kcore reads as empty.
            assert_eq!(out.trim(), "0", "{kind}: {err}");
        } else {
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            assert!(err.contains("/dev/null"), "{err}");
        }
        assert_eq!(
            std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
            host_core
        );
        ctx.assert_clean();
    }
}

/// CVE-2025-52565: /dev/console in the image is a symlink to a procfs file; the pty must
/// not be bind-mounted over it (that would let the container write a masked file).
#[test]
fn cve_2025_52565_malicious_dev_console_is_not_followed() {
    use std::os::unix::net::UnixListener;
    let ctx = Ctx::new(
        "esc-console",
        &[
            "sh",
            "-c",
            "grep -c ' /proc/sys/kernel/core_pattern ' /proc/self/mountinfo; true",
        ],
        |s| {
            s["process"]["terminal"] = json!(true);
        },
    );
    let root = private_rootfs(&ctx);
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", root.join("dev/console")).unwrap();
    edit_spec(&ctx, |s| {
        s["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev");
    });
    let sock = ctx.bundle.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        recv_fd(&conn)
    });
    let out = ctx.rt_detached(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        &ctx.id,
    ]);
    // Keep the pty master until the end, as an engine would.
    let _master = receiver.join().unwrap();
    if out.status.success() {
        // Look at the container's mount table from outside: the pty is on /dev/console.
        let pid = ctx.state()["pid"].as_i64().unwrap();
        let mi = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        assert!(
            !mi.contains("/proc/sys/kernel/core_pattern "),
            "pty mounted over core_pattern: {mi}"
        );
        assert!(mi.contains(" /dev/console "), "{mi}");
        assert!(ctx.rt(&["delete", "--force", &ctx.id]).status.success());
    } else {
        assert_one_line_error(&out, "/dev/console");
    }
    ctx.assert_clean();
}

/// One fd received over SCM_RIGHTS (None when the peer sent none).
fn recv_fd(conn: &std::os::unix::net::UnixStream) -> Option<OwnedFd> {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 8];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) };
    if n <= 0 {
        return None;
    }
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return None;
    }
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()) };
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A rootfs whose /dev is an absolute symlink to a host directory: create, start and delete
/// make and remove nothing there.
#[test]
fn dev_symlink_to_a_host_path_touches_nothing_on_the_host() {
    let ctx = Ctx::new(
        "esc-devsym",
        &["sh", "-c", "ls /dev/null /dev/pts/ptmx"],
        |_| {},
    );
    let root = private_rootfs(&ctx);
    let host = host_dir(&ctx, "hostdev");
    std::fs::remove_dir(root.join("dev")).unwrap();
    std::os::unix::fs::symlink(&host, root.join("dev")).unwrap();
    // Once with the default /dev tmpfs, once with devices made straight in the image.
    for keep_tmpfs in [true, false] {
        if !keep_tmpfs {
            edit_spec(&ctx, |s| {
                s["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|m| m["destination"] != "/dev");
            });
        }
        let out = ctx.rt_detached(&["create", &ctx.id]);
        if out.status.success() {
            assert!(ctx.rt(&["start", &ctx.id]).status.success());
            std::thread::sleep(Duration::from_millis(100));
            assert!(ctx.rt(&["delete", "--force", &ctx.id]).status.success());
        }
        assert_host_dir_untouched(&host);
        ctx.assert_clean();
    }
}

/// AppArmor/SELinux labels on a host without that LSM: create fails with one line naming
/// the field, and nothing is left behind (never silently unconfined).
#[test]
fn lsm_labels_fail_create_without_an_lsm() {
    let lsms = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    for (field, edit) in [
        (
            "process.apparmorProfile",
            json!({"process": {"apparmorProfile": "husk-default"}}),
        ),
        (
            "process.selinuxLabel",
            json!({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}),
        ),
        (
            "linux.mountLabel",
            json!({"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}),
        ),
    ] {
        let lsm = if field.contains("apparmor") {
            "apparmor"
        } else {
            "selinux"
        };
        if lsms.split(',').any(|l| l.trim() == lsm) {
            continue; // enforced here: nothing to refuse
        }
        let ctx = Ctx::new("esc-lsm", &["true"], |s| {
            for (k, v) in edit.as_object().unwrap() {
                for (k2, v2) in v.as_object().unwrap() {
                    s[k][k2] = v2.clone();
                }
            }
        });
        let out = ctx.rt_detached(&["create", &ctx.id]);
        assert_one_line_error(&out, field);
        ctx.assert_clean();
    }
}
