//! Limits are enforced by the real kernel: each test makes a cgroup below its own cgroup,
//! runs /bin/sh children in it and watches the kernel act. Runs as root on the host
//! (hybrid layout) and inside the vmtest VM (cgroup v2).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{eventually, resources, wait_output, TestCgroup};
use husk_cgroups::{probe_layout, CgroupError, Layout, OomWait};

const LONG: Duration = Duration::from_secs(60);

#[test]
fn layout_matches_mountinfo() {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let unified_at_root = mi
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "));
    let layout = probe_layout().unwrap();
    if unified_at_root {
        assert_eq!(layout, Layout::V2);
    } else {
        assert_ne!(layout, Layout::V2);
    }
    eprintln!("layout: {layout:?}");
}

#[test]
fn memory_limit_oom_kills_and_is_reported() {
    let mut cg = TestCgroup::new("oom");
    let limit = 24 << 20;
    // swap == limit: no swap on v1 (memsw), memory.swap.max = 0 on v2
    cg.set(&format!(
        r#"{{"memory":{{"limit":{limit},"swap":{limit}}}}}"#
    ));
    let mut watcher = cg.mgr.oom_event_fd().expect("OOM watcher");
    // the shell keeps ~96 MiB in a variable: far beyond the limit
    let child = cg.spawn("x=$(yes aaaaaaaaaaaaaaa | head -c 100663296); echo survived ${#x}");
    let (status, out, _err) = wait_output(child, LONG);
    assert!(!status.success(), "allocating child survived: {out}");
    assert!(!out.contains("survived"), "{out}");
    match watcher.wait(Some(Duration::from_secs(10))).unwrap() {
        OomWait::Oom { .. } => {}
        other => panic!("expected an OOM event, got {other:?}"),
    }
    eventually("the oom_kill counter", Duration::from_secs(10), || {
        watcher.oom_kill_count().unwrap() >= 1
    });
    let stats = cg.mgr.stats().unwrap();
    assert!(stats.memory.oom_kill >= 1, "{:?}", stats.memory);
    assert_eq!(stats.memory.usage.limit, limit);
    assert!(
        stats.memory.usage.max >= limit * 9 / 10,
        "peak usage should have reached the limit: {:?}",
        stats.memory.usage
    );
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["memory"]["usage"]["limit"], limit);
}

#[test]
fn pids_limit_fails_fork_and_update_raises_it() {
    let mut cg = TestCgroup::new("pids");
    cg.set(r#"{"pids":{"limit":4}}"#);
    // the shell itself is one task; at most 3 sleeps fit
    let child = cg.spawn("for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; echo spawned; wait");
    eventually("the pids limit to be hit", LONG, || {
        cg.mgr.stats().unwrap().pids.current >= 4
    });
    std::thread::sleep(Duration::from_millis(300));
    let stats = cg.mgr.stats().unwrap();
    assert_eq!(stats.pids.limit, 4);
    assert!(stats.pids.current <= 4, "{:?}", stats.pids);
    cg.mgr.kill_all(libc::SIGKILL).unwrap();
    let (status, _out, err) = wait_output(child, LONG);
    assert!(!status.success());
    assert!(
        err.to_lowercase().contains("fork"),
        "expected a fork failure, stderr: {err}"
    );
    eventually("the cgroup to empty", LONG, || {
        cg.mgr.pids().unwrap().is_empty()
    });

    // raise the limit on the live cgroup: now eight children fit
    cg.set(r#"{"pids":{"limit":20}}"#);
    assert_eq!(cg.mgr.stats().unwrap().pids.limit, 20);
    let child = cg.spawn("for i in 1 2 3 4 5 6 7 8; do sleep 0.2 & done; wait; echo ok");
    let (status, out, err) = wait_output(child, LONG);
    assert!(status.success(), "{out} {err}");
    assert_eq!(out.trim(), "ok");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn cpu_quota_throttles() {
    let mut cg = TestCgroup::new("cpu");
    cg.set(r#"{"cpu":{"quota":10000,"period":100000,"shares":512}}"#);
    cg.spawn_bg("while :; do :; done");
    let first = cg.mgr.stats().unwrap().cpu.throttling.throttled_periods;
    eventually("throttled periods to grow", LONG, || {
        cg.mgr.stats().unwrap().cpu.throttling.throttled_periods > first + 3
    });
    let s = cg.mgr.stats().unwrap();
    assert!(s.cpu.throttling.periods >= s.cpu.throttling.throttled_periods);
    assert!(s.cpu.throttling.throttled_time > 0);
    assert!(s.cpu.usage.total > 0);
    // lifting the quota on the live cgroup: throttling stops growing
    cg.set(r#"{"cpu":{"quota":-1}}"#);
    std::thread::sleep(Duration::from_millis(300));
    let a = cg.mgr.stats().unwrap().cpu.throttling.throttled_periods;
    std::thread::sleep(Duration::from_millis(500));
    let b = cg.mgr.stats().unwrap().cpu.throttling.throttled_periods;
    assert!(
        b <= a + 1,
        "still throttled after lifting the quota: {a} -> {b}"
    );
}

/// A temp dir removed on drop.
struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// mknod a /dev/zero-like node (c 1:5) in a temp dir; returns (dir, node path).
fn zero_node(tag: &str) -> (TempDir, String) {
    let dir = std::env::temp_dir().join(common::unique(tag));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let node = dir.join("zero5");
    let c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
    // SAFETY: valid C string; creating a char device node as root.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) };
    assert_eq!(r, 0, "mknod: {}", std::io::Error::last_os_error());
    (TempDir(dir), node.to_str().unwrap().to_string())
}

const DEVICE_PROBE: &str = "if echo x > /dev/null; then echo null-ok; else echo null-denied; fi; \
     if head -c 1 NODE > /dev/null; then echo zero-ok; else echo zero-denied; fi";

fn probe_devices(cg: &mut TestCgroup, node: &str) -> (String, String) {
    let child = cg.spawn(&DEVICE_PROBE.replace("NODE", node));
    let (_st, out, err) = wait_output(child, LONG);
    (out, err)
}

fn check_device_rules(cg: &mut TestCgroup, node: &str) {
    // an allowlist: everything denied but /dev/null
    cg.set(
        r#"{"devices":[{"allow":false,"access":"rwm"},
                       {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
    );
    let (out, err) = probe_devices(cg, node);
    assert!(out.contains("null-ok"), "{out} {err}");
    assert!(out.contains("zero-denied"), "{out} {err}");
    assert!(err.contains("Operation not permitted"), "{err}");

    // updated live: allow everything but 1:5 for reading
    cg.set(
        r#"{"devices":[{"allow":true,"access":"rwm"},
                       {"allow":false,"type":"c","major":1,"minor":5,"access":"r"}]}"#,
    );
    let (out, err) = probe_devices(cg, node);
    assert!(
        out.contains("null-ok") && out.contains("zero-denied"),
        "{out} {err}"
    );

    // and everything allowed again
    cg.set(r#"{"devices":[{"allow":true,"access":"rwm"}]}"#);
    let (out, err) = probe_devices(cg, node);
    assert!(
        out.contains("null-ok") && out.contains("zero-ok"),
        "{out} {err}"
    );
}

#[test]
fn device_rules_are_enforced() {
    let (_dir, node) = zero_node("dev");
    let mut cg = TestCgroup::new("devices");
    check_device_rules(&mut cg, &node);
}

/// On a hybrid host the eBPF filter is exercised directly on the cgroup2 mount (the hybrid
/// manager uses the v1 devices controller); on v2 the test above already used it.
#[test]
fn ebpf_device_filter_on_cgroup2() {
    use husk_cgroups::layout::Mounts;
    use husk_cgroups::v2::V2Manager;
    use husk_cgroups::CgroupManager;

    let mounts = Mounts::probe().unwrap();
    let Some(unified) = mounts.unified.clone() else {
        panic!("no cgroup2 mount: this test needs one (hybrid host or v2 VM)");
    };
    let path = husk_cgroups::resolve_path(None, &common::unique("ebpf")).unwrap();
    let v2 = V2Manager::new(&mounts, &path).unwrap();
    // only mkdir: no controller is needed for a device program
    let dir = unified.dir(&path.path);
    std::fs::create_dir_all(&dir).unwrap();
    struct Cleanup(std::path::PathBuf, husk_cgroups::CgroupPath);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
            let m = Mounts::probe().unwrap();
            let v2 = V2Manager::new(&m, &self.1).unwrap();
            v2.destroy().unwrap();
            husk_cgroups::prune_empty_parents(&self.1).unwrap();
            if !std::thread::panicking() {
                assert!(!self.0.exists());
            }
        }
    }
    let _cleanup = Cleanup(dir.clone(), path.clone());
    let (tmp, node) = zero_node("ebpf");
    v2.set(&resources(
        r#"{"devices":[{"allow":false,"access":"rwm"},
                       {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
    ))
    .unwrap();
    let mut c = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("read _go; {}", DEVICE_PROBE.replace("NODE", &node)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    v2.add_process(c.id() as i32).unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let (_st, out, err) = wait_output(c, LONG);
    drop(tmp);
    assert!(out.contains("null-ok"), "{out} {err}");
    assert!(out.contains("zero-denied"), "{out} {err}");
}

#[test]
fn freeze_stops_and_thaw_resumes() {
    let mut cg = TestCgroup::new("freeze");
    let dir = TempDir(std::env::temp_dir().join(common::unique("freeze")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let count = dir.0.join("count");
    cg.spawn_bg(&format!(
        "i=0; while :; do i=$((i+1)); echo $i > {}.tmp; mv {}.tmp {}; done",
        count.display(),
        count.display(),
        count.display()
    ));
    let read = || -> u64 {
        std::fs::read_to_string(&count)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    eventually("the counter to start", LONG, || read() > 0);
    cg.mgr.freeze().unwrap();
    assert!(cg.mgr.is_frozen().unwrap());
    let a = read();
    std::thread::sleep(Duration::from_millis(500));
    let b = read();
    assert_eq!(a, b, "counter moved while frozen");
    cg.mgr.thaw().unwrap();
    assert!(!cg.mgr.is_frozen().unwrap());
    eventually("the counter to move after thaw", LONG, || read() > b);
    assert!(!cg.mgr.pids().unwrap().is_empty());
    drop(cg);
    drop(dir);
}

#[test]
fn memory_update_and_stats_on_a_live_cgroup() {
    let mut cg = TestCgroup::new("update");
    cg.set(r#"{"memory":{"limit":67108864,"reservation":33554432}}"#);
    cg.spawn_bg("sleep 60");
    assert_eq!(cg.mgr.stats().unwrap().memory.usage.limit, 64 << 20);
    cg.set(r#"{"memory":{"limit":134217728}}"#);
    assert_eq!(cg.mgr.stats().unwrap().memory.usage.limit, 128 << 20);
    // unlimited again
    cg.set(r#"{"memory":{"limit":-1}}"#);
    let l = cg.mgr.stats().unwrap().memory.usage.limit;
    assert!(l > 1 << 40, "limit not lifted: {l}");
    eventually("the sleeping child to use memory", LONG, || {
        cg.mgr.stats().unwrap().memory.usage.usage > 8192
    });
    // checkBeforeUpdate refuses a limit below the current usage
    let e = cg
        .mgr
        .set(&resources(
            r#"{"memory":{"limit":4096,"checkBeforeUpdate":true}}"#,
        ))
        .unwrap_err();
    assert!(matches!(e, CgroupError::BelowUsage { .. }), "{e}");
    let pids = cg.mgr.pids().unwrap();
    assert!(
        !pids.is_empty() && pids.len() <= 2,
        "sh and maybe sleep: {pids:?}"
    );
    let s = cg.mgr.stats().unwrap();
    assert!(s.memory.usage.usage > 0);
    assert!(!s.memory.raw.is_empty());
}

#[test]
fn unsupported_requests_are_errors() {
    let cg = TestCgroup::new("unsupported");
    let e = cg
        .mgr
        .set(&resources(r#"{"unified":{"no.such.file":"1"}}"#))
        .unwrap_err();
    assert!(matches!(e, CgroupError::Unsupported { .. }), "{e}");
    let e = cg
        .mgr
        .set(&resources(r#"{"unified":{"../x":"1"}}"#))
        .unwrap_err();
    assert!(matches!(e, CgroupError::Invalid { .. }), "{e}");
    let e = cg
        .mgr
        .set(&resources(
            r#"{"hugepageLimits":[{"pageSize":"3MB","limit":0}]}"#,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("3MB"), "{e}");
    let e = cg
        .mgr
        .set(&resources(r#"{"memory":{"limit":-7}}"#))
        .unwrap_err();
    assert!(matches!(e, CgroupError::Invalid { .. }), "{e}");
    // an invalid value reaches the kernel: the error names the file and the errno text
    let e = cg
        .mgr
        .set(&resources(r#"{"cpu":{"cpus":"999999"}}"#))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("cpuset.cpus") && msg.contains("writing 999999 to"),
        "{msg}"
    );
    if probe_layout().unwrap() == Layout::V2 {
        let e = cg
            .mgr
            .set(&resources(r#"{"network":{"classID":1}}"#))
            .unwrap_err();
        assert!(matches!(e, CgroupError::Unsupported { .. }), "{e}");
    }
}

#[test]
fn hugetlb_limit() {
    if !std::path::Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        panic!("the kernel has no 2MB huge pages: cannot test hugepageLimits");
    }
    // On a hybrid host hugetlb lives on the cgroup2 mount, where set() has to enable it in
    // the root's subtree_control; put the host back the way it was afterwards.
    let mounts = husk_cgroups::layout::Mounts::probe().unwrap();
    let restore = match (probe_layout().unwrap(), &mounts.unified) {
        (Layout::Hybrid, Some(u)) => {
            let sc = std::fs::read_to_string(u.mount_point.join("cgroup.subtree_control")).unwrap();
            (!sc.split_whitespace().any(|c| c == "hugetlb")).then(|| u.clone())
        }
        _ => None,
    };
    let path;
    {
        let cg = TestCgroup::new("hugetlb");
        path = cg.path.clone();
        cg.set(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#);
        let s = cg.mgr.stats().unwrap();
        let h = s
            .hugetlb
            .get("2MB")
            .unwrap_or_else(|| panic!("{:?}", s.hugetlb));
        assert_eq!(h.usage, 0);
        assert_eq!(h.failcnt, 0);
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["hugetlb"]["2MB"].is_object(), "{json}");
    }
    if let Some(u) = restore {
        // disable bottom-up in the parents that still exist (other tests may hold them)
        let mut cur = path.path.clone();
        let mut dirs = Vec::new();
        while let Some(i) = cur.rfind('/') {
            cur.truncate(i);
            dirs.push(u.dir(if cur.is_empty() { "/" } else { &cur }));
        }
        for d in dirs {
            let sc = d.join("cgroup.subtree_control");
            if let Ok(s) = std::fs::read_to_string(&sc) {
                if s.split_whitespace().any(|c| c == "hugetlb") {
                    std::fs::write(&sc, "-hugetlb")
                        .unwrap_or_else(|e| panic!("restoring {}: {e}", sc.display()));
                }
            }
        }
    }
}

#[test]
fn kill_all_empties_the_cgroup() {
    let mut cg = TestCgroup::new("kill");
    let child = cg.spawn("sleep 100 & sleep 100 & sleep 100 & wait");
    eventually("four processes", LONG, || cg.mgr.pids().unwrap().len() == 4);
    cg.mgr.kill_all(libc::SIGTERM).unwrap();
    let (status, _, _) = wait_output(child, LONG);
    assert!(!status.success());
    eventually("the cgroup to empty", LONG, || {
        cg.mgr.pids().unwrap().is_empty()
    });
    // clone3 targets the unified side (v2, hybrid); v1 hierarchies are joined through tasks fds
    let layout = probe_layout().unwrap();
    assert_eq!(cg.mgr.v2_dir_fd().is_some(), layout != Layout::V1);
    assert_eq!(
        cg.mgr.self_join_fds().unwrap().is_empty(),
        layout == Layout::V2
    );
}

#[test]
fn typical_container_spec_applies_and_reads_back() {
    let mut cg = TestCgroup::new("typical");
    cg.set(
        r#"{"memory":{"limit":268435456,"reservation":134217728,"swap":268435456},
            "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0","mems":"0"},
            "pids":{"limit":100},
            "devices":[{"allow":false,"access":"rwm"},
                       {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                       {"allow":true,"type":"c","major":136,"access":"rwm"}]}"#,
    );
    cg.spawn_bg("sleep 60");
    let s = cg.mgr.stats().unwrap();
    assert_eq!(s.memory.usage.limit, 256 << 20);
    assert_eq!(s.pids.limit, 100);
    let json = serde_json::to_string(&s).unwrap();
    assert!(
        json.contains("\"cpu\"") && json.contains("\"memory\""),
        "{json}"
    );
    // runs only on CPU 0
    let pid = cg.mgr.pids().unwrap()[0];
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let cpus = status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .unwrap();
    assert_eq!(cpus.split_whitespace().nth(1), Some("0"), "{cpus}");
}
