//! `husk --cgroup-manager systemd`: each container's cgroup is the transient scope
//! `machine.slice/husk-ID.scope` that systemd makes (as podman's `libpod-ID.scope`), with
//! `--memory`/`--pids-limit` as its unit properties; `rm` leaves no unit.
//!
//! Runs in the VM booted with systemd as PID 1 (vmtest/systemd.sh, HUSK_REQUIRE_SYSTEMD=1).
//! On a host without systemd, the flag must fail with one clear error and leave nothing.

mod common;
use common::*;
use std::path::Path;
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
