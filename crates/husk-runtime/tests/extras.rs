//! process.scheduler, process.ioPriority, process.execCPUAffinity and linux.personality,
//! each checked from inside the container (init and exec).

mod common;
use common::*;
use serde_json::json;

fn lines(s: &str) -> Vec<String> {
    s.lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn scheduler_policy_and_nice() {
    let ctx = Ctx::new(
        "x-sched",
        &[
            "sh",
            "-c",
            "grep -E '^(policy|prio) ' /proc/self/sched | tr -s ' '",
        ],
        |s| s["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7}),
    );
    // SCHED_BATCH is policy 3; nice 7 is static priority 127.
    assert_eq!(lines(&ctx.run_ok()), ["policy : 3", "prio : 127"]);
    ctx.assert_clean();
}

#[test]
fn realtime_scheduler() {
    let ctx = Ctx::new(
        "x-sched-rr",
        &[
            "sh",
            "-c",
            "grep -E '^(policy|prio) ' /proc/self/sched | tr -s ' '",
        ],
        |s| s["process"]["scheduler"] = json!({"policy": "SCHED_RR", "priority": 10}),
    );
    let (code, out, err) = ctx.run();
    if code == 0 {
        // SCHED_RR is policy 2; rt priority 10 is prio 89.
        assert_eq!(lines(&out), ["policy : 2", "prio : 89"]);
    } else {
        // Without rt bandwidth for the cgroup the kernel refuses: one clear line.
        assert!(err.contains("process.scheduler (SCHED_RR)"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    ctx.assert_clean();
}

#[test]
fn bad_scheduler_is_one_line() {
    let ctx = Ctx::new(
        "x-sched-bad",
        &["true"],
        |s| {
            s["process"]["scheduler"] =
                json!({"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 5, "period": 1})
        },
    );
    let out = ctx.rt(&["run", &ctx.id]);
    assert_one_line_error(&out, "process.scheduler (SCHED_DEADLINE)");
    ctx.assert_clean();
}

#[test]
fn io_priority() {
    let ctx = Ctx::new("x-ioprio", &["ionice"], |s| {
        s["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0})
    });
    assert_eq!(ctx.run_ok().trim(), "idle");
    let ctx = Ctx::new("x-ioprio-be", &["ionice"], |s| {
        s["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6})
    });
    assert_eq!(ctx.run_ok().trim(), "best-effort: prio 6");
}

#[test]
fn exec_cpu_affinity_initial_and_final() {
    let ctx = Ctx::new(
        "x-affinity",
        &["grep", "Cpus_allowed_list", "/proc/self/status"],
        |s| s["process"]["execCPUAffinity"] = json!({"initial": "0-1", "final": "1"}),
    );
    assert_eq!(
        ctx.run_ok().split_whitespace().collect::<Vec<_>>(),
        ["Cpus_allowed_list:", "1"]
    );
    // exec: the process.json's own affinity.
    let ctx = Ctx::new("x-affinity-exec", &["sleep", "1000"], |_| {});
    assert!(ctx.rt_detached(&["run", "-d", &ctx.id]).status.success());
    let p = ctx.bundle.join("p.json");
    let process = json!({
        "args": ["grep", "Cpus_allowed_list", "/proc/self/status"], "cwd": "/",
        "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"],
        "execCPUAffinity": {"final": "0"}
    });
    std::fs::write(&p, process.to_string()).unwrap();
    let out = ctx.rt(&["exec", "--process", p.to_str().unwrap(), &ctx.id]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["Cpus_allowed_list:", "0"]
    );
    let bad = Ctx::new("x-affinity-bad", &["true"], |s| {
        s["process"]["execCPUAffinity"] = json!({"final": "5000"})
    });
    assert_one_line_error(&bad.rt(&["run", &bad.id]), "execCPUAffinity.final");
    bad.assert_clean();
}

#[test]
fn personality_linux32() {
    let ctx = Ctx::new("x-pers", &["uname", "-m"], |s| {
        s["linux"]["personality"] = json!({"domain": "LINUX32"})
    });
    assert_eq!(ctx.run_ok().trim(), "i686");
    let ctx = Ctx::new("x-pers64", &["uname", "-m"], |s| {
        s["linux"]["personality"] = json!({"domain": "LINUX"})
    });
    assert_eq!(ctx.run_ok().trim(), "x86_64");
}

#[test]
fn memory_policy_reaches_the_process() {
    // numa_maps' second column is the policy of each mapping: bind to node 0 everywhere.
    let ctx = Ctx::new(
        "x-mempol",
        &["sh", "-c", "head -1 /proc/self/numa_maps | cut -d' ' -f2"],
        |s| {
            s["linux"]["memoryPolicy"] =
                json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]})
        },
    );
    assert_eq!(ctx.run_ok().trim(), "bind=static:0");
    ctx.assert_clean();
    let ctx = Ctx::new("x-mempolbad", &["true"], |s| {
        s["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "63"})
    });
    assert_one_line_error(
        &ctx.rt(&["create", &ctx.id]),
        "linux.memoryPolicy MPOL_BIND nodes [63]",
    );
    ctx.assert_clean();
}

#[test]
fn net_devices_move_into_the_container_renamed() {
    let host = format!("hk{}", std::process::id() % 100000);
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap()
    };
    // A veth pair (this kernel has no dummy driver); one end goes into the container.
    let peer = format!("{host}p");
    let o = ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer]);
    assert!(o.status.success(), "ip link add: {o:?}");
    let ctx = Ctx::new(
        "x-netdev",
        &[
            "sh",
            "-c",
            "ip -o link show eth7 | cut -d: -f2 | cut -d@ -f1",
        ],
        |s| s["linux"]["netDevices"] = json!({ host.clone(): {"name": "eth7"} }),
    );
    // While it is inside, the host no longer has it.
    assert_eq!(ctx.run_ok().trim(), "eth7");
    // The moved end dies with the container's network namespace (torn down asynchronously by
    // the kernel) and takes its peer along.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ip(&["link", "show", &peer]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "{peer} outlived the container"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !ip(&["link", "show", &host]).status.success(),
        "{host} is back on the host"
    );
    ctx.assert_clean();

    let ctx = Ctx::new("x-netdevnone", &["true"], |s| {
        s["linux"]["netDevices"] = json!({"no-such-dev0": {}})
    });
    assert_one_line_error(
        &ctx.rt(&["create", &ctx.id]),
        "moving network device no-such-dev0",
    );
    ctx.assert_clean();
}
