//! husk-runtime run by an ordinary user: the users come from scripts/rootless-user.sh (run
//! by this root test), the runtime runs as them through setpriv with a clean environment.
//! Covered: state under $XDG_RUNTIME_DIR, the single direct mapping (`spec --rootless` as
//! is), several ranges through newuidmap/newgidmap, the host staying untouched, and each
//! actionable error.

mod common;

use common::users::{users, User, SUB_START};
use common::{rootfs, text, BIN};
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The runtime binary where any user can run it (the build tree may sit below a private home).
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = rootfs().parent().unwrap().join("rootless-bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(BIN, dir.join("husk-runtime")).unwrap();
        dir
    })
}

/// A directory of the user's beside the shared rootfs: NAME-<test pid>.
fn user_dir(user: &User, name: &str) -> PathBuf {
    let dir = rootfs()
        .parent()
        .unwrap()
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).unwrap();
    dir
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// One rootless container: a bundle owned by the user, `spec --rootless` made by the user.
struct Rl {
    user: &'static User,
    id: String,
    bundle: PathBuf,
    path: String,
}

impl Rl {
    fn new(user: &'static User, args: &[&str], edit: impl FnOnce(&mut Value)) -> Rl {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let bundle = user_dir(user, &format!("rl-{n}"));
        let id = bundle.file_name().unwrap().to_string_lossy().into_owned();
        let rl = Rl {
            user,
            id,
            bundle,
            path: format!("{}:/usr/bin:/bin", bin_dir().display()),
        };
        let out = rl.rt(&["spec", "--rootless"]);
        assert!(out.status.success(), "spec --rootless: {}", text(&out));
        let config = rl.bundle.join("config.json");
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        spec["root"]["path"] = json!(rootfs());
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        edit(&mut spec);
        std::fs::write(&config, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        rl
    }

    fn xdg(&self) -> PathBuf {
        PathBuf::from(self.user.xdg_runtime_dir())
    }

    /// `husk-runtime ARGS…` as the user, in the bundle, with only PATH, HOME and
    /// XDG_RUNTIME_DIR set.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.user.command(&self.path, &[], "husk-runtime");
        c.args(args).current_dir(&self.bundle);
        c
    }

    fn rt(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// For commands that leave a container holding their stdio (create): output via files,
    /// so waiting for the command does not wait for the container.
    fn rt_detached(&self, args: &[&str]) -> Output {
        common::output_via_files(self.cmd(args), &self.bundle)
    }

    fn run(&self) -> Output {
        self.rt(&["run", &self.id])
    }

    fn state_dir(&self) -> PathBuf {
        self.xdg().join("husk").join(&self.id)
    }
}

impl Drop for Rl {
    fn drop(&mut self) {
        let _ = self.rt(&["delete", "--force", &self.id]);
        let _ = std::fs::remove_dir_all(&self.bundle);
    }
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The mapping husk's engine uses: the user as root, then the subordinate range.
fn two_ranges(host_own: u32) -> Value {
    json!([
        {"containerID": 0, "hostID": host_own, "size": 1},
        {"containerID": 1, "hostID": SUB_START, "size": 65536}
    ])
}

fn on_v1_host() -> bool {
    !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[test]
fn spec_rootless_runs_as_is_with_state_under_xdg_runtime_dir() {
    let (u, _) = users();
    let c = Rl::new(u, &["sh", "-c", "sleep 60"], |_| {});
    let out = c.rt_detached(&["create", &c.id]);
    assert!(out.status.success(), "create: {}", text(&out));
    if on_v1_host() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("without a cgroup (cgroup v1 host)"), "{err}");
    }
    assert!(c.state_dir().join("state.json").exists());
    assert_eq!(
        std::fs::metadata(c.state_dir()).unwrap().uid(),
        u.uid,
        "the state dir belongs to the user"
    );
    let state: Value = serde_json::from_str(&stdout(&c.rt(&["state", &c.id]))).unwrap();
    assert_eq!(state["status"], "created");
    let list = stdout(&c.rt(&["list", "-q"]));
    assert!(list.lines().any(|l| l == c.id), "{list}");
    stdout(&c.rt(&["start", &c.id]));
    // exec joins the user namespace: root inside is the user outside.
    let inside = stdout(&c.rt(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map /proc/self/setgroups; hostname",
    ]));
    let words: Vec<&str> = inside.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "0", &u.uid.to_string(), "1", "deny", "husk"],
        "{inside}"
    );
    stdout(&c.rt(&["kill", &c.id, "KILL"]));
    for _ in 0..100 {
        let state: Value = serde_json::from_str(&stdout(&c.rt(&["state", &c.id]))).unwrap();
        if state["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stdout(&c.rt(&["delete", &c.id]));
    assert!(!c.state_dir().exists());
    common::assert_no_cgroup(&c.id);
}

#[test]
fn spec_rootless_terminal_default_runs_on_a_pty() {
    let (u, _) = users();
    let c = Rl::new(u, &["sh", "-c", "tty; exit 7"], |s| {
        s["process"]["terminal"] = json!(true)
    });
    let cmdline = format!(
        "setpriv --reuid {} --regid {} --init-groups -- env -i PATH={} XDG_RUNTIME_DIR={} \
         husk-runtime run {}",
        u.uid,
        u.gid,
        c.path,
        c.xdg().display(),
        c.id
    );
    let out = common::on_a_terminal(&cmdline)
        .current_dir(&c.bundle)
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout);
    assert!(all.contains("/dev/pts/0"), "{}", text(&out));
    assert!(
        all.contains("exit code 7") || out.status.code() == Some(7),
        "{}",
        text(&out)
    );
    assert!(!c.state_dir().exists());
}

#[test]
fn several_ranges_go_through_newuidmap_and_land_in_the_subordinate_ids() {
    let (u, _) = users();
    // A directory of the user's, shared rw with the container.
    let data = user_dir(u, "rl-data");
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let c = Rl::new(
        u,
        &[
            "sh",
            "-c",
            "id; cat /proc/self/setgroups; echo hi > /mnt/f && ls -ln /mnt/f",
        ],
        |s| {
            s["linux"]["uidMappings"] = two_ranges(u.uid);
            s["linux"]["gidMappings"] = two_ranges(u.gid);
            s["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5]});
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt", "type": "bind", "source": data,
                "options": ["bind", "rw"]}));
        },
    );
    let out = c.run();
    let inside = stdout(&out);
    assert!(inside.contains("uid=1000 gid=1000 groups=5"), "{inside}");
    assert!(
        inside.contains("allow"),
        "setgroups stays allowed: {inside}"
    );
    let meta = std::fs::metadata(data.join("f")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (SUB_START + 999, SUB_START + 999),
        "container uid 1000 is the 1000th subordinate id on the host"
    );
    std::fs::remove_dir_all(&data).unwrap();
    assert!(!c.state_dir().exists());
}

#[test]
fn a_rootless_container_cannot_touch_what_the_user_does_not_own() {
    let (u, _) = users();
    let victim = rootfs()
        .parent()
        .unwrap()
        .join(format!("rl-victim-{}", std::process::id()));
    std::fs::write(&victim, "root's\n").unwrap();
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
    // The host's / is mounted rw at /mnt; the victim is a root-owned file in it.
    let script = format!(
        "for p in /mnt/etc/husk-rl-escape /mnt/usr/bin/husk-rl-escape \
         /mnt/root/husk-rl-escape; do touch $p 2>/dev/null && echo WROTE $p; done; \
         v=/mnt{v}; echo x >> $v 2>/dev/null && echo WROTE victim; \
         chmod 777 $v 2>/dev/null && echo CHMOD victim; \
         chown 0 $v 2>/dev/null && echo CHOWN victim; \
         mknod /dev/shm/sda b 8 0 2>/dev/null && echo MKNOD; \
         echo 4194000 > /proc/sys/kernel/pid_max 2>/dev/null && echo SYSCTL; \
         echo done",
        v = victim.display()
    );
    let c = Rl::new(u, &["sh", "-c", &script], |s| {
        s["linux"]["uidMappings"] = two_ranges(u.uid);
        s["linux"]["gidMappings"] = two_ranges(u.gid);
        s["root"]["readonly"] = json!(false);
        s["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_MKNOD", "CAP_SYS_ADMIN"],
            "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_MKNOD", "CAP_SYS_ADMIN"],
            "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_MKNOD", "CAP_SYS_ADMIN"]
        });
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "bind", "source": "/", "options": ["rbind", "rw"]}));
    });
    let inside = stdout(&c.run());
    assert_eq!(
        inside.trim(),
        "done",
        "the container changed the host: {inside}"
    );
    for p in ["/etc", "/usr/bin", "/root"] {
        assert!(!Path::new(p).join("husk-rl-escape").exists());
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's\n");
    let meta = std::fs::metadata(&victim).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o644));
    std::fs::remove_file(&victim).unwrap();
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap(),
        pid_max
    );
}

/// Each classic rootless failure: a non-zero exit, the error naming what to fix, and no
/// state dir left behind.
fn assert_fails(c: &Rl, out: &Output, needles: &[&str]) {
    assert!(!out.status.success(), "expected failure: {}", text(out));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = common::error_msg(&err).unwrap_or_else(|| panic!("no error line: {err}"));
    for n in needles {
        assert!(line.contains(n), "{line:?} does not mention {n:?}");
    }
    assert!(!c.state_dir().exists(), "state left behind after: {line}");
    common::assert_no_cgroup(&c.id);
}

#[test]
fn a_user_without_subuid_lines_is_told_what_to_add() {
    let (_, nosub) = users();
    let c = Rl::new(nosub, &["true"], |s| {
        s["linux"]["uidMappings"] = two_ranges(nosub.uid);
        s["linux"]["gidMappings"] = two_ranges(nosub.gid);
    });
    let out = c.run();
    assert_fails(
        &c,
        &out,
        &[
            "newuidmap",
            "husk-nosubid has no line in /etc/subuid",
            "add one such as \"husk-nosubid:100000:65536\"",
        ],
    );
}

#[test]
fn ids_beyond_the_subordinate_range_are_refused_with_the_range() {
    let (u, _) = users();
    let c = Rl::new(u, &["true"], |s| {
        s["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": SUB_START + 60000, "size": 65536}
        ]);
        s["linux"]["gidMappings"] = two_ranges(u.gid);
    });
    let out = c.run();
    assert_fails(
        &c,
        &out,
        &[
            "not allowed",
            "husk-rootless's ranges in /etc/subuid (1000000:65536)",
        ],
    );
}

#[test]
fn newuidmap_missing_or_not_setuid_is_named() {
    let (u, _) = users();
    let ranges = |s: &mut Value| {
        s["linux"]["uidMappings"] = two_ranges(u.uid);
        s["linux"]["gidMappings"] = two_ranges(u.gid);
    };
    // PATH without /usr/bin: the helper is not found (busybox stands in for the rest).
    let mut c = Rl::new(u, &["true"], ranges);
    c.path = bin_dir().display().to_string();
    let out = c.run();
    assert_fails(
        &c,
        &out,
        &["newuidmap not found on PATH", "install the uidmap package"],
    );

    // A copy without the setuid bit first on PATH.
    let fake = rootfs().parent().unwrap().join("rootless-fake-bin");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::copy("/usr/bin/newuidmap", fake.join("newuidmap")).unwrap();
    // (copy keeps the mode bits, setuid included)
    std::fs::set_permissions(
        fake.join("newuidmap"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut c = Rl::new(u, &["true"], ranges);
    c.path = format!("{}:{}:/usr/bin:/bin", bin_dir().display(), fake.display());
    let out = c.run();
    assert_fails(
        &c,
        &out,
        &["newuidmap is neither setuid root nor has file capabilities"],
    );
}

#[test]
fn limits_on_cgroup_v1_and_raised_rlimits_are_clear_errors() {
    let (u, _) = users();
    if on_v1_host() {
        let c = Rl::new(u, &["true"], |s| {
            s["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
        });
        let out = c.run();
        assert_fails(
            &c,
            &out,
            &["linux.resources.memory", "cgroup v1 cannot be delegated"],
        );
    }
    let hard = rlimit_nofile_hard();
    let c = Rl::new(u, &["true"], |s| {
        s["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]);
    });
    let out = c.run();
    assert_fails(&c, &out, &["RLIMIT_NOFILE", "can only be lowered"]);
}

fn rlimit_nofile_hard() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r.rlim_max
}

#[test]
fn without_xdg_runtime_dir_the_error_names_it() {
    let (u, _) = users();
    let c = Rl::new(u, &["true"], |_| {});
    let cmd = c.cmd(&["run", &c.id]);
    // env -i already cleared the caller's; drop ours too.
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| !a.starts_with("XDG_RUNTIME_DIR="))
        .collect();
    let out = Command::new("setpriv")
        .args(&args)
        .current_dir(&c.bundle)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("XDG_RUNTIME_DIR is not set") && err.contains("--root"),
        "{err}"
    );
}

/// No network, ipc or uts namespace (so no hostname), and a sysfs mount at /sys; without
/// mqueue when `drop_mqueue`.
fn only_pid_mount_user(s: &mut Value, drop_mqueue: bool) {
    s["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "user"}]);
    s.as_object_mut().unwrap().remove("hostname");
    let mounts = s["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| m["destination"] != "/sys" && !(drop_mqueue && m["type"] == "mqueue"));
    mounts.push(
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                       "options": ["nosuid", "noexec", "nodev"]}),
    );
}

#[test]
fn sysfs_and_mqueue_without_their_namespaces_fall_back_to_the_hosts() {
    let (u, _) = users();
    // No network or ipc namespace: sysfs and mqueue cannot be mounted in the user namespace.
    let c = Rl::new(
        u,
        &[
            "sh",
            "-c",
            "grep -E ' /sys | /dev/mqueue ' /proc/self/mounts",
        ],
        |s| only_pid_mount_user(s, false),
    );
    let out = c.run();
    if Path::new("/dev/mqueue").is_dir() {
        let mounts = stdout(&out);
        let sys = mounts.lines().find(|l| l.contains(" /sys ")).unwrap();
        assert!(
            sys.contains(" ro,"),
            "the host's sysfs is bound read-only: {sys}"
        );
        assert!(mounts.contains(" /dev/mqueue mqueue "), "{mounts}");
    } else {
        assert_fails(
            &c,
            &out,
            &["mqueue", "needs the container's own ipc namespace"],
        );
    }
    // With mqueue left out the sysfs fallback shows on any host.
    let c = Rl::new(
        u,
        &[
            "sh",
            "-c",
            "grep ' /sys ' /proc/self/mounts; ls /sys/kernel >/dev/null && echo listed",
        ],
        |s| only_pid_mount_user(s, true),
    );
    let out = stdout(&c.run());
    assert!(
        out.contains(" /sys sysfs ro,") && out.contains("listed"),
        "{out}"
    );
}

/// Rootless podman (its own user namespace from /etc/subuid, native overlay) drives
/// husk-runtime: run with exit codes, -d, exec, stop, rm. podman runs the runtime as root of
/// its user namespace, which husk treats as rootless. Storage and run roots are the test's.
#[test]
fn rootless_podman_drives_husk_runtime() {
    let (u, _) = users();
    let dir = user_dir(u, "rl-podman");
    let tar = dir.join("rootfs.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(rootfs())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {}", text(&out));
    let c = Rl::new(u, &["true"], |_| {});
    let podman = |args: &[&str]| -> Output {
        let mut cmd = c.cmd(&[]);
        let mut argv: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        argv.pop(); // husk-runtime
        argv.extend(
            [
                "timeout",
                "--foreground",
                "120",
                "podman",
                "--runtime",
                bin_dir().join("husk-runtime").to_str().unwrap(),
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
                "--storage-driver=overlay",
            ]
            .map(String::from),
        );
        for (flag, sub) in [
            ("--root", "storage"),
            ("--runroot", "run"),
            ("--tmpdir", "tmp"),
        ] {
            argv.push(flag.into());
            argv.push(dir.join(sub).display().to_string());
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        cmd = Command::new("setpriv");
        cmd.args(&argv).current_dir(&dir).stdin(Stdio::null());
        cmd.output().unwrap()
    };
    let ok = |args: &[&str]| stdout(&podman(args));
    ok(&["import", tar.to_str().unwrap(), "localhost/husk-rl:test"]);
    let img = "localhost/husk-rl:test";
    let out = ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        img,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        words,
        [
            "0",
            "0",
            &u.uid.to_string(),
            "1",
            "1",
            &SUB_START.to_string(),
            "65536"
        ],
        "{out}"
    );
    let o = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        img,
        "sh",
        "-c",
        "exit 9",
    ]);
    assert_eq!(o.status.code(), Some(9), "{}", text(&o));
    let id = ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "rl-d",
        img,
        "sleep",
        "300",
    ]);
    let id = id.trim();
    assert_eq!(
        ok(&["exec", "rl-d", "sh", "-c", "echo in-$((6*7))"]).trim(),
        "in-42"
    );
    let ps = ok(&["ps", "--format", "{{.ID}} {{.Status}}"]);
    assert!(ps.contains(&id[..12]) && ps.contains("Up"), "{ps}");
    ok(&["stop", "-t", "1", "rl-d"]);
    ok(&["rm", "rl-d"]);
    // The runtime's state lived under the user's XDG_RUNTIME_DIR and is gone.
    let husk_state = c.xdg().join("husk");
    let left: Vec<_> = std::fs::read_dir(&husk_state)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "runtime state left: {left:?}");
    let _ = podman(&["system", "reset", "--force"]);
    // podman keeps a pause process holding its user namespace; end it with the test.
    let pause = std::fs::read_to_string(c.xdg().join("libpod/tmp/pause.pid"));
    if let Some(pid) = pause.ok().and_then(|p| p.trim().parse::<i32>().ok()) {
        if pid > 1 {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn additional_gids_need_a_gid_range_not_a_single_mapping() {
    let (u, _) = users();
    // Only the user's own gid is mapped: setgroups is denied, so extra groups cannot be set.
    let c = Rl::new(u, &["id"], |s| {
        s["process"]["user"] = json!({"uid": 0, "gid": 0, "additionalGids": [5]});
    });
    let out = c.run();
    assert_fails(
        &c,
        &out,
        &["additionalGids [5] needs setgroups", "newgidmap"],
    );
}

/// Rootless dockerd (Debian's dockerd-rootless.sh: rootlesskit, slirp4netns) with husk-runtime
/// added as a runtime: run, exit codes. Its data, sockets and runtime dir are the test's.
#[test]
fn rootless_docker_drives_husk_runtime() {
    use std::os::unix::process::CommandExt;
    let (u, _) = users();
    let dir = user_dir(u, "rl-docker");
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::os::unix::fs::chown(&run, Some(u.uid), Some(u.gid)).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let archive = common::docker_archive(&dir, "localhost/husk-rl-docker:test");
    let path = format!("{}:/usr/sbin:/usr/bin:/bin", bin_dir().display());
    let env = vec![
        format!("XDG_RUNTIME_DIR={}", run.display()),
        format!("HOME={}", dir.display()),
        "DOCKERD_ROOTLESS_ROOTLESSKIT_NET=slirp4netns".to_string(),
    ];
    let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
    let mut dockerd = u.command(&path, &env, "sh");
    dockerd
        .arg("/usr/share/docker.io/contrib/dockerd-rootless.sh")
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg(format!(
            "--add-runtime=husk={}",
            bin_dir().join("husk-runtime").display()
        ))
        .args(["--iptables=false", "--bridge=none"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
    let mut dockerd = dockerd.spawn().unwrap();
    // Stops the whole group (rootlesskit, dockerd, containerd) however the test ends.
    struct Group(i32);
    impl Drop for Group {
        fn drop(&mut self) {
            unsafe { libc::kill(-self.0, libc::SIGTERM) };
            for _ in 0..100 {
                if unsafe { libc::kill(-self.0, 0) } != 0 {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
    let group = Group(dockerd.id() as i32);
    let sock = run.join("docker.sock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !sock.exists() {
        let log = std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
        assert!(
            std::time::Instant::now() < deadline && dockerd.try_wait().unwrap().is_none(),
            "rootless dockerd did not start: {log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut denv = env.clone();
    denv.push(format!("DOCKER_HOST=unix://{}", sock.display()));
    let docker = |args: &[&str]| -> Output {
        let mut c = u.command(&path, &denv, "timeout");
        c.args(["--foreground", "120", "docker"]).args(args);
        c.output().unwrap()
    };
    // dockerd may take a moment after the socket appears.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !docker(&["version"]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "dockerd does not answer"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    stdout(&docker(&["load", "-q", "-i", archive.to_str().unwrap()]));
    let img = "localhost/husk-rl-docker:test";
    let out = stdout(&docker(&[
        "run",
        "--rm",
        "--runtime",
        "husk",
        "--network",
        "none",
        img,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]));
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words[..4], ["0", "0", &u.uid.to_string(), "1"], "{out}");
    assert!(out.contains(&SUB_START.to_string()), "{out}");
    let o = docker(&[
        "run",
        "--rm",
        "--runtime",
        "husk",
        "--network",
        "none",
        img,
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    drop(group);
    let _ = dockerd.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
