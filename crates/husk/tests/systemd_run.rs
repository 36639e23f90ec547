//! `husk --cgroup-manager systemd`: each container's cgroup is the transient scope
//! `machine.slice/husk-ID.scope` that systemd makes (as podman's `libpod-ID.scope`), with
//! `--memory`/`--pids-limit` as its unit properties; `rm` leaves no unit.
//!
//! Runs in the VM booted with systemd as PID 1 (vmtest/systemd.sh, HUSK_REQUIRE_SYSTEMD=1).
//! On a host without systemd, the flag must fail with one clear error and leave nothing.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn systemd_on_v2() -> bool {
    let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    let here = pid1.trim() == "systemd"
        && Path::new("/run/systemd/system").exists()
        && Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let required = std::env::var("HUSK_REQUIRE_SYSTEMD").is_ok_and(|v| v == "1");
    assert!(
        here || !required,
        "HUSK_REQUIRE_SYSTEMD=1 but systemd is not PID 1 on cgroup v2"
    );
    here
}

fn show(unit: &str, prop: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "--no-pager", "--value", "-p", prop, unit])
        .output()
        .expect("systemctl runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn husk_run_with_the_systemd_cgroup_manager() {
    // An in-process registry on loopback: the VM has no docker-registry.
    let fake = FakeRegistry::start(FakeState::default());
    fake.add_image("busybox", "latest", &busybox_image("amd64"));
    let t = TempDir::new("sd-run");
    let root = t.path().join("store");
    let image = format!("{}/busybox:latest", fake.host());
    husk_ok(&root, &["pull", &image]);
    let sd = ["--cgroup-manager", "systemd"];
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = sd.to_vec();
        a.extend([
            "run",
            "--network",
            "none",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
        ]);
        a.extend_from_slice(extra);
        husk(&root, &a)
    };
    if !systemd_on_v2() {
        let out = run(&["--rm", &image, "true"]);
        assert!(!out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("systemd"), "{err}");
        assert_eq!(husk_ok(&root, &["ps", "-aq"]), "");
        return;
    }
    // Foreground: the limit is the container's own memory.max (its cgroup namespace's
    // root is the scope).
    let out = run(&[
        "--rm",
        &image,
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "67108864\n50\n");

    // Detached: the scope sits in machine.slice with the limits as properties.
    let out = run(&["-d", "--name", "sd1", &image, "sleep 1000"]);
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let unit = format!("husk-{id}.scope");
    assert_eq!(show(&unit, "ActiveState"), "active");
    assert_eq!(show(&unit, "Slice"), "machine.slice");
    assert_eq!(show(&unit, "MemoryMax"), "67108864");
    assert_eq!(show(&unit, "TasksMax"), "50");
    let dir = Path::new("/sys/fs/cgroup/machine.slice").join(&unit);
    assert_eq!(
        std::fs::read_to_string(dir.join("memory.max")).unwrap(),
        "67108864\n"
    );
    husk_ok(&root, &["rm", "-f", "sd1"]);
    assert_eq!(show(&unit, "LoadState"), "not-found");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

// ---- rootless: the user's own manager, or a delegated subtree without systemd ----------

#[path = "../../husk-runtime/tests/common/users.rs"]
mod users;

/// The ordinary user of the VM (vmtest/run.sh makes husk-rootless, uid 1000, with
/// subordinate ids and a user@.service); on other hosts scripts/rootless-user.sh's.
fn ordinary_user(in_vm: bool) -> users::User {
    if !in_vm {
        let u = &users::users().0;
        return users::User {
            name: u.name.clone(),
            uid: u.uid,
            gid: u.gid,
        };
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("husk-rootless:"))
        .expect("vmtest/run.sh made husk-rootless");
    let f: Vec<&str> = line.split(':').collect();
    users::User {
        name: f[0].into(),
        uid: f[2].parse().unwrap(),
        gid: f[3].parse().unwrap(),
    }
}

/// One test's world for the user: a home with its own store and runtime dir (so its state
/// and namespace holder are its own), husk where the user can run it, and the registry.
struct AsUser {
    user: users::User,
    home: PathBuf,
    bin: PathBuf,
    env: Vec<String>,
}

impl AsUser {
    fn new(user: users::User, tag: &str, extra_env: &[String]) -> AsUser {
        let home = Path::new("/home")
            .join(&user.name)
            .join(format!("husk-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        let bin = home.join("bin");
        let run = home.join("run");
        for d in [&home, &bin, &run] {
            std::fs::create_dir_all(d).unwrap();
            std::os::unix::fs::chown(d, Some(user.uid), Some(user.gid)).unwrap();
        }
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        std::fs::copy(HUSK, bin.join("husk")).unwrap();
        let mut env = vec![
            format!("XDG_RUNTIME_DIR={}", run.display()),
            format!("XDG_DATA_HOME={}", home.join("data").display()),
            format!("XDG_CONFIG_HOME={}", home.join("config").display()),
        ];
        env.extend_from_slice(extra_env);
        AsUser {
            user,
            home,
            bin,
            env,
        }
    }

    /// husk ARGS as the user; `cgroup`: moved into that cgroup (by root) first.
    fn husk_in(&self, cgroup: Option<&Path>, args: &[&str]) -> std::process::Output {
        let path = format!("{}:/usr/bin:/bin", self.bin.display());
        let c = self.user.command(&path, &self.env, "husk");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"[ -z "$1" ] || echo $$ > "$1/cgroup.procs" || exit 99; shift; exec "$@""#)
            .arg("sh")
            .arg(cgroup.map(|c| c.display().to_string()).unwrap_or_default())
            .arg(c.get_program())
            .args(c.get_args())
            .args(args)
            .current_dir(&self.home)
            .stdin(std::process::Stdio::null());
        cmd.output().unwrap()
    }

    fn husk(&self, args: &[&str]) -> std::process::Output {
        self.husk_in(None, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.husk(args);
        assert!(o.status.success(), "husk {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        let _ = self.husk(&["rm", "-af"]);
        // The user's namespace holder (husk_engine::userns) lives on by design; this
        // test's runtime dir goes, so does its holder.
        let pid_file = self.home.join("run/husk-engine/userns.pid");
        let pid = std::fs::read_to_string(pid_file).unwrap_or_default();
        if let Some(pid) = pid.split_whitespace().next().and_then(|p| p.parse().ok()) {
            if pid > 1 {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Start user@UID.service (vmtest/run.sh's, as Debian's without PAM) and wait for the
/// user's bus.
fn start_user_manager(uid: u32) -> PathBuf {
    let st = Command::new("systemctl")
        .args(["start", &format!("user@{uid}.service")])
        .status()
        .unwrap();
    assert!(st.success(), "systemctl start user@{uid}.service");
    let bus = PathBuf::from(format!("/run/user/{uid}/bus"));
    let t0 = std::time::Instant::now();
    while !bus.exists() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "the user's bus {} did not appear",
            bus.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bus
}

/// A registry with a one-layer busybox image: the VM's root is a tmpfs, and its kernel
/// (6.1) keeps no user.* xattrs there, which a rootless store needs for whiteouts.
fn user_registry() -> (FakeRegistry, String) {
    let fake = FakeRegistry::start(FakeState::default());
    let img = build_image(&[(busybox_base_layer(), Comp::Gzip)], "amd64");
    fake.add_image("busybox", "latest", &img);
    let image = format!("{}/busybox:latest", fake.host());
    (fake, image)
}

fn scopes_below(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("husk-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn rootless_limits_in_the_users_systemd_scope() {
    let in_vm = systemd_on_v2();
    let user = ordinary_user(in_vm);
    let (_fake, image) = user_registry();
    if !in_vm {
        // A cgroup v1/hybrid host: no user manager's subtree to use; the default manager
        // stays cgroupfs, and asking for systemd with limits is refused in one line.
        let u = AsUser::new(user, "sd-v1", &[]);
        u.ok(&["pull", &image]);
        let info = u.ok(&["info", "--format", "{{.CgroupDriver}}"]);
        assert_eq!(info.trim(), "cgroupfs");
        let o = u.husk(&[
            "--cgroup-manager",
            "systemd",
            "run",
            "--rm",
            "--memory",
            "64m",
            &image,
            "true",
        ]);
        assert!(!o.status.success(), "{o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("cgroup v1"), "{err}");
        assert_eq!(u.ok(&["ps", "-aq"]), "");
        return;
    }
    let bus = start_user_manager(user.uid);
    let uid = user.uid;
    let u = AsUser::new(
        user,
        "sd",
        &[format!(
            "DBUS_SESSION_BUS_ADDRESS=unix:path={}",
            bus.display()
        )],
    );
    u.ok(&["pull", &image]);
    let slice = PathBuf::from(format!(
        "/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/user.slice"
    ));
    // No --cgroup-manager: with a user bus on v2, systemd is the default (as rootless
    // podman's); cgroupfs could not have made a cgroup here (the test's own cgroup is not
    // delegated to the user), so the limits would have been refused.
    let out = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        &image,
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max",
    ]);
    assert_eq!(out, "67108864\n50\n50000 100000\n");
    assert_eq!(scopes_below(&slice), Vec::<String>::new(), "scope left");

    // Detached: the scope is the user manager's, in its user.slice, with the limit.
    let id = u.ok(&["run", "-d", "--memory", "64m", &image, "sleep 1000"]);
    let id = id.trim();
    let scope = slice.join(format!("husk-{id}.scope"));
    assert_eq!(
        std::fs::read_to_string(scope.join("memory.max")).unwrap(),
        "67108864\n"
    );
    u.ok(&["rm", "-f", id]);
    assert!(!scope.exists(), "{} left behind", scope.display());

    // cpuset is not delegated to users (Delegate=pids memory cpu): one line naming it.
    let o = u.husk(&["run", "--rm", "--cpuset-cpus", "0", &image, "true"]);
    assert!(!o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err.lines().find(|l| l.starts_with("husk: ")).unwrap_or("");
    assert!(line.contains("cpuset"), "{err}");
    assert_eq!(scopes_below(&slice), Vec::<String>::new(), "scope left");
}

#[test]
fn rootless_limits_in_a_delegated_subtree_without_systemd() {
    let in_vm = systemd_on_v2();
    let user = ordinary_user(in_vm);
    let (uid, gid) = (user.uid, user.gid);
    let (_fake, image) = user_registry();
    let u = AsUser::new(user, "deleg", &[]);
    u.ok(&["pull", &image]);
    if !in_vm {
        // cgroup v1/hybrid: nothing can be delegated. As before: without limits the
        // container runs without a cgroup; limits are refused with what to fix.
        assert_eq!(u.ok(&["run", "--rm", &image, "echo ok"]), "ok\n");
        let o = u.husk(&["run", "--rm", "--pids-limit", "50", &image, "true"]);
        assert!(!o.status.success(), "{o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("cgroup v1 cannot be delegated"), "{err}");
        return;
    }
    // Delegated by hand, as root would (cgroup v2's delegation: the directory and its
    // procs, threads and subtree_control files chowned to the user).
    let root = Path::new("/sys/fs/cgroup");
    std::fs::write(root.join("cgroup.subtree_control"), "+memory +pids").unwrap();
    let d = root.join(format!("rootless-deleg-{}", std::process::id()));
    std::fs::create_dir(&d).unwrap();
    for f in [
        "",
        "cgroup.procs",
        "cgroup.threads",
        "cgroup.subtree_control",
    ] {
        std::os::unix::fs::chown(d.join(f), Some(uid), Some(gid)).unwrap();
    }
    let run = |args: &[&str]| u.husk_in(Some(&d), args);
    let o = run(&[
        "--cgroup-manager",
        "cgroupfs",
        "run",
        "--rm",
        "--network",
        "none",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        &image,
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    // husk lived in the delegated root itself: it moved there into a leaf ("no internal
    // processes"), and made the container's cgroup under husk-engine.
    let parent = d.join("husk-engine");
    let left: Vec<_> = std::fs::read_dir(&parent)
        .map(|r| r.flatten().filter(|e| e.path().is_dir()).collect())
        .unwrap_or_default();
    let init_exists = d.join("init").is_dir();
    let _ = std::fs::remove_dir(&parent);
    let _ = std::fs::remove_dir(d.join("init"));
    let removed = std::fs::remove_dir(&d);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(out, "67108864\n50\n");
    assert!(init_exists, "husk did not move to a leaf");
    assert!(left.is_empty(), "cgroups left: {left:?}");
    removed.unwrap();
}
