//! What the container sees: namespaces, hostname, mounts, masking, capabilities, rlimits,
//! user, env, cwd — each verified from inside a real container.

mod common;
use common::*;
use serde_json::json;

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_namespace_kind_is_new() {
    let kinds = ["pid", "net", "ipc", "uts", "mnt", "cgroup", "user", "time"];
    let script: String = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}; "))
        .collect();
    let ctx = Ctx::new("ns", &["sh", "-c", &script], |spec| {
        spec["linux"]["namespaces"] = json!(kinds
            .iter()
            .map(|k| {
                let t = match *k {
                    "net" => "network",
                    "mnt" => "mount",
                    k => k,
                };
                json!({"type": t})
            })
            .collect::<Vec<_>>());
        spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        spec["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 86400, "nanosecs": 0}});
    });
    let out = ctx.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), kinds.len(), "{out}");
    for (k, line) in kinds.iter().zip(&lines) {
        assert!(line.starts_with(&format!("{k}:[")), "{k}: {line}");
        assert_ne!(*line, host_ns(k), "{k} namespace is the host's");
    }
    ctx.assert_clean();
}

#[test]
fn user_namespace_mapping_and_time_offset() {
    let ctx = Ctx::new(
        "userns",
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; id -u; cat /proc/uptime",
        ],
        |spec| {
            spec["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            spec["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "time"}));
            spec["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 200000, "size": 1000}]);
            spec["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 300000, "size": 1000}]);
            spec["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000, "nanosecs": 0}});
        },
    );
    let out = ctx.run_ok();
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        &words[..7],
        &["0", "200000", "1000", "0", "300000", "1000", "0"],
        "{out}"
    );
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let uptime: f64 = words[7].parse().unwrap();
    assert!(
        uptime - host_uptime > 863000.0,
        "boottime offset not applied: {uptime} vs {host_uptime}"
    );
    ctx.assert_clean();
}

#[test]
fn a_new_network_namespace_has_loopback_up() {
    // As runc leaves it, also under a user namespace (rootless engines): 127.0.0.1 works.
    let ctx = Ctx::new("lo-up", &["ip", "-o", "link", "show", "lo"], |spec| {
        let ns = spec["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "user"}));
        spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let out = ctx.run_ok();
    assert!(out.contains("<LOOPBACK,UP,LOWER_UP>"), "{out}");
    ctx.assert_clean();
}

#[test]
fn joins_a_namespace_by_path() {
    // A netns made by a long-running container is joined by a second one.
    let a = Ctx::new("joina", &["sleep", "1000"], |_| {});
    assert!(a.rt_detached(&["run", "-d", &a.id]).status.success());
    let pid = a.state()["pid"].as_i64().unwrap();
    let netns = format!("/proc/{pid}/ns/net");
    let want = std::fs::read_link(&netns)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let b = Ctx::new("joinb", &["readlink", "/proc/self/ns/net"], |spec| {
        for ns in spec["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(netns);
            }
        }
    });
    assert_eq!(b.run_ok().trim(), want);
    b.assert_clean();
    assert!(a.rt(&["delete", "-f", &a.id]).status.success());
    a.assert_clean();
}

#[test]
fn hostname_domainname_env_cwd_user() {
    let ctx = Ctx::new(
        "ident",
        &[
            "sh",
            "-c",
            "hostname; cat /proc/sys/kernel/domainname; echo $FOO; pwd; id; umask",
        ],
        |spec| {
            spec["hostname"] = json!("box1");
            spec["domainname"] = json!("example.test");
            spec["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
            spec["process"]["cwd"] = json!("/tmp");
            spec["process"]["user"] =
                json!({"uid": 65534, "gid": 65534, "additionalGids": [5, 1234], "umask": 63});
        },
    );
    let out = ctx.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "box1");
    assert_eq!(lines[1], "example.test");
    assert_eq!(lines[2], "bar baz");
    assert_eq!(lines[3], "/tmp");
    assert_eq!(
        lines[4],
        "uid=65534(nobody) gid=65534(nogroup) groups=5(tty),1234"
    );
    assert_eq!(lines[5], "0077");
    ctx.assert_clean();
}

#[test]
fn capabilities_all_five_sets() {
    let ctx = Ctx::new(
        "caps",
        &["sh", "-c", "grep ^Cap /proc/self/status"],
        |spec| {
            spec["process"]["capabilities"] = json!({
                "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
                "effective": ["CAP_KILL", "CAP_CHOWN"],
                "permitted": ["CAP_KILL", "CAP_CHOWN"],
                "inheritable": ["CAP_KILL"],
                "ambient": ["CAP_KILL"]
            });
            spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        },
    );
    let out = ctx.run_ok();
    // CHOWN=0, KILL=5, NET_BIND_SERVICE=10. As uid 1000 after exec only ambient caps remain
    // effective/permitted; the bounding set is exactly the spec's.
    assert!(out.contains("CapInh:\t0000000000000020"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000020"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000020"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000421"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000020"), "{out}");

    // Root with the default spec: runc's three default capabilities, nothing inheritable.
    let ctx = Ctx::new(
        "capsroot",
        &["sh", "-c", "grep ^Cap /proc/self/status"],
        |_| {},
    );
    let out = ctx.run_ok();
    assert!(out.contains("CapInh:\t0000000000000000"), "{out}");
    assert!(out.contains("CapEff:\t0000000020000420"), "{out}");
    assert!(out.contains("CapBnd:\t0000000020000420"), "{out}");
    ctx.assert_clean();
}

#[test]
fn rlimits_and_no_new_privs_and_oom_score() {
    let (_, hard) = {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
        (r.rlim_cur, r.rlim_max)
    };
    let ctx = Ctx::new("rlim", &["sh", "-c", "ulimit -n; ulimit -Hn; grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj"], |spec| {
        spec["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": hard.min(4096)}]);
        spec["process"]["oomScoreAdj"] = json!(500);
    });
    let out = ctx.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "321");
    assert_eq!(lines[1], hard.min(4096).to_string());
    assert_eq!(lines[2], "NoNewPrivs:\t1");
    assert_eq!(lines[3], "500");
    ctx.assert_clean();
}

#[test]
fn mounts_options_and_propagation() {
    let host_dir = std::env::temp_dir().join(format!("husk-bindsrc-{}", std::process::id()));
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("hello"), "from the host\n").unwrap();
    let ctx = Ctx::new(
        "mounts",
        &[
            "sh",
            "-c",
            "cat /data/hello; echo x > /data/new 2>/dev/null && echo WROTE-RO; \
         echo y > /scratch/f && cat /scratch/f; \
         grep -E ' /scratch | /data ' /proc/self/mountinfo; \
         touch /etc/x 2>/dev/null && echo WROTE-ROOT; echo done",
        ],
        |spec| {
            let m = spec["mounts"].as_array_mut().unwrap();
            m.push(json!({"destination": "/data", "type": "bind", "source": host_dir, "options": ["rbind", "ro", "nosuid", "rprivate"]}));
            m.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nodev", "noexec", "size=1m", "mode=1777"]}));
        },
    );
    let out = ctx.run_ok();
    assert!(out.starts_with("from the host\n"), "{out}");
    assert!(!out.contains("WROTE-RO"), "ro bind was writable: {out}");
    assert!(
        !out.contains("WROTE-ROOT"),
        "readonly root was writable: {out}"
    );
    assert!(out.contains("y\n"), "{out}");
    let data = out
        .lines()
        .find(|l| l.contains(" /data "))
        .expect("data mount");
    assert!(
        data.contains(" ro,nosuid") && !data.contains("shared:"),
        "{data}"
    );
    let scratch = out
        .lines()
        .find(|l| l.contains(" /scratch "))
        .expect("scratch mount");
    assert!(
        scratch.contains("nodev,noexec") && scratch.contains("size=1024k"),
        "{scratch}"
    );
    // Nothing the container mounted is visible on the host.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host.contains(&ctx.id) && !host.contains("/scratch"),
        "a mount leaked to the host"
    );
    assert!(!host_dir.join("new").exists());
    std::fs::remove_dir_all(&host_dir).unwrap();
    ctx.assert_clean();
}

#[test]
fn masked_and_readonly_paths() {
    let ctx = Ctx::new(
        "mask",
        &[
            "sh",
            "-c",
            "wc -c < /proc/cpuinfo; ls /sys/firmware | wc -l; \
         echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo WROTE-SYS; \
         grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6",
        ],
        |spec| {
            spec["linux"]["maskedPaths"]
                .as_array_mut()
                .unwrap()
                .push(json!("/proc/cpuinfo"));
        },
    );
    let out = ctx.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "/proc/cpuinfo not masked: {out}");
    assert_eq!(lines[1].trim(), "0", "/sys/firmware not masked: {out}");
    assert!(!out.contains("WROTE-SYS"), "{out}");
    assert!(lines[2].starts_with("ro"), "/proc/sys not read-only: {out}");
    ctx.assert_clean();
}

#[test]
fn sysctl_devices_and_dev_links() {
    let ctx = Ctx::new("sysctl", &["sh", "-c",
        "cat /proc/sys/net/ipv4/ip_forward; ls -l /dev/null | cut -c1-11; ls -l /dev/mydev | cut -c1-11; \
         readlink /dev/fd; readlink /dev/stdin; readlink /dev/ptmx; echo ok > /dev/null && echo null-ok"], |spec| {
        spec["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        spec["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 7, "fileMode": 416, "uid": 0, "gid": 0}]);
    });
    let out = ctx.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1], "crw-rw-rw- ");
    assert_eq!(lines[2], "crw-r----- ");
    assert_eq!(
        &lines[3..6],
        &["/proc/self/fd", "/proc/self/fd/0", "pts/ptmx"]
    );
    assert_eq!(lines[6], "null-ok");
    // A sysctl outside the container's namespaces is refused at create.
    let bad = Ctx::new("sysctlbad", &["true"], |spec| {
        spec["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    });
    let out = bad.rt(&["run", &bad.id]);
    assert_one_line_error(&out, "vm.swappiness");
    bad.assert_clean();
}

#[test]
fn no_runtime_fd_leaks_and_preserve_fds() {
    let ctx = Ctx::new(
        "fds",
        &["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"],
        |_| {},
    );
    let out = ctx.run_ok();
    // 0,1,2 and the fd ls itself opens for /proc/self/fd (3).
    assert_eq!(out.trim(), "0 1 2 3", "{out}");

    let ctx = Ctx::new("preserve", &["sh", "-c", "cat <&3"], |_| {});
    let f = std::fs::File::open("/proc/self/comm").unwrap();
    use std::os::fd::AsRawFd;
    let mut cmd = ctx.cmd(&["run", "--preserve-fds", "1", &ctx.id]);
    let fd = f.as_raw_fd();
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            // dup2 onto itself keeps FD_CLOEXEC, so clear it explicitly.
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty(), "preserved fd 3 was not readable");
    ctx.assert_clean();
}

/// The re-executed runtime gets the read-only view of its binary as an fd (closed late, see
/// selfexe.rs). With `--preserve-fds 3` and only fd 3 really passed, that fd lands inside
/// the preserved range (4 or 5): it must still reach neither the container nor a hook, and
/// neither may its environment variable.
#[test]
fn exe_view_handed_over_the_reexec_reaches_neither_container_nor_hooks() {
    // prestart hooks run in the bundle directory.
    let hook_cmd = "env > env.txt; for f in /proc/self/fd/*; do readlink $f; done > fds.txt; true";
    let ctx = Ctx::new(
        "viewfd",
        &["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"],
        |s| {
            s["hooks"] = serde_json::json!({
                "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", hook_cmd]}]
            });
        },
    );
    let f = std::fs::File::open("/proc/self/comm").unwrap();
    use std::os::fd::AsRawFd;
    let mut cmd = ctx.cmd(&["run", "--preserve-fds", "3", &ctx.id]);
    let fd = f.as_raw_fd();
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Nothing at 4 and 5: the runtime's own fds land there.
            libc::close(4);
            libc::close(5);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // 0-2, the preserved 3, and ls's own handle of /proc/self/fd (4): nothing else.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0 1 2 3 4",
        "{stderr}"
    );
    let env = std::fs::read_to_string(ctx.bundle.join("env.txt")).unwrap();
    assert!(!env.contains("_HUSK_RUNTIME_EXE_VIEW"), "{env}");
    // The view is the runtime's binary: no fd of the hook may point there.
    let fds = std::fs::read_to_string(ctx.bundle.join("fds.txt")).unwrap();
    assert!(!fds.contains("husk-runtime"), "{fds}");
    ctx.assert_clean();
}

#[test]
fn no_pivot_runs_too() {
    let ctx = Ctx::new("nopivot", &["sh", "-c", "ls /bin/busybox"], |_| {});
    let out = ctx.rt(&["run", "--no-pivot", &ctx.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "/bin/busybox");
    ctx.assert_clean();
}

#[test]
fn cgroup_mount_shows_the_containers_own_cgroup() {
    let ctx = Ctx::new("cgmount", &["sh", "-c", "cat /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/memory/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup/cgroup.procs; touch /sys/fs/cgroup/x 2>/dev/null && echo WROTE; true"], |_| {});
    let out = ctx.run_ok();
    // Only the container's own processes (pid 1 = sh, plus cat) are listed, not the host's.
    let pids: Vec<i64> = out
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(pids.contains(&1), "{out}");
    assert!(pids.iter().all(|p| *p < 10), "host pids visible: {out}");
    assert!(!out.contains("WROTE"), "cgroup mount is writable: {out}");
    ctx.assert_clean();
}

#[test]
fn console_socket_receives_the_pty_master() {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;
    let ctx = Ctx::new(
        "console",
        &["sh", "-c", "tty; stty size; echo on-the-pty"],
        |spec| {
            spec["process"]["terminal"] = json!(true);
            spec["process"]["consoleSize"] = json!({"height": 30, "width": 100});
        },
    );
    let sock = ctx.bundle.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        // recvmsg with room for one SCM_RIGHTS fd.
        let mut buf = [0u8; 64];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut cbuf = [0u8; 64];
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = cbuf.len();
        let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) };
        assert!(n > 0);
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        assert!(!cmsg.is_null());
        let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()) };
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
    let out = ctx.rt_detached(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        &ctx.id,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let master = receiver.join().unwrap();
    assert!(ctx.rt(&["start", &ctx.id]).status.success());
    let mut text = String::new();
    let mut f = std::fs::File::from(master);
    // Reading the master ends with EIO once the container's side closes.
    let mut buf = [0u8; 4096];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if text.contains("on-the-pty") {
            break;
        }
    }
    assert!(
        text.contains("/dev/pts/0") || text.contains("/dev/console"),
        "{text:?}"
    );
    assert!(text.contains("30 100"), "{text:?}");
    assert!(text.contains("on-the-pty"), "{text:?}");
    assert!(ctx.rt(&["delete", "--force", &ctx.id]).status.success());
    ctx.assert_clean();
}

#[test]
fn the_process_is_in_its_cgroup_in_every_hierarchy() {
    // Without a cgroup namespace /proc/self/cgroup shows host paths: each must end in the id.
    let ctx = Ctx::new("cgjoin", &["cat", "/proc/self/cgroup"], |spec| {
        spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "cgroup");
    });
    let out = ctx.run_ok();
    let host = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(out.lines().count(), host.lines().count(), "{out}");
    for line in out.lines() {
        assert!(
            line.ends_with(&format!("/{}", ctx.id)),
            "not in its cgroup: {line}"
        );
    }
    ctx.assert_clean();
}
