//! create → state → start → kill → delete, `run` exit codes, signals, list, concurrency.

mod common;
use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn wait_status(ctx: &Ctx, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctx.status() != want {
        assert!(Instant::now() < deadline, "{} never became {want}", ctx.id);
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn create_start_kill_delete() {
    let ctx = Ctx::new("life", &["sleep", "1000"], |_| {});
    let pid_file = ctx.bundle.join("pid");
    let out = ctx.rt_detached(&["create", "--pid-file", pid_file.to_str().unwrap(), &ctx.id]);
    assert!(
        out.status.success(),
        "create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = ctx.state();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], ctx.id.as_str());
    let pid = st["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    // Before start, init is still husk's code waiting at the gate, not the user's process.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep");

    let out = ctx.rt(&["start", &ctx.id]);
    assert!(
        out.status.success(),
        "start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ctx.status(), "running");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    // A second start is refused.
    assert_one_line_error(
        &ctx.rt(&["start", &ctx.id]),
        "cannot start an already running container",
    );
    // Running containers are not deleted without --force.
    assert_one_line_error(&ctx.rt(&["delete", &ctx.id]), "running");

    let out = ctx.rt(&["kill", &ctx.id, "KILL"]);
    assert!(
        out.status.success(),
        "kill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_status(&ctx, "stopped");
    assert_eq!(ctx.state()["pid"], 0);
    assert_one_line_error(&ctx.rt(&["kill", &ctx.id]), "not running");

    let out = ctx.rt(&["delete", &ctx.id]);
    assert!(
        out.status.success(),
        "delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ctx.assert_clean();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            // A zombie may linger until its (non-subreaper) parent reaps it.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
        }
    );
    assert_one_line_error(&ctx.rt(&["state", &ctx.id]), "does not exist");
}

#[test]
fn delete_of_created_container_kills_it() {
    let ctx = Ctx::new("delcreated", &["true"], |_| {});
    assert!(ctx.rt_detached(&["create", &ctx.id]).status.success());
    let pid = ctx.state()["pid"].as_i64().unwrap();
    let out = ctx.rt(&["delete", &ctx.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ctx.assert_clean();
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(false);
    assert!(!alive, "init {pid} survived delete");
}

#[test]
fn run_exit_codes() {
    // pid 1 of a pid namespace cannot SIGKILL itself: the killed case runs without one.
    for (args, want, own_pidns) in [
        (vec!["true"], 0, true),
        (vec!["sh", "-c", "exit 7"], 7, true),
        (vec!["sh", "-c", "kill -KILL $$"], 128 + 9, false),
    ] {
        let ctx = Ctx::new("exit", &args, |spec| {
            if !own_pidns {
                let ns = spec["linux"]["namespaces"].as_array_mut().unwrap();
                ns.retain(|n| n["type"] != "pid");
            }
        });
        let (code, _, err) = ctx.run();
        assert_eq!(code, want, "{args:?}: {err}");
        ctx.assert_clean();
    }
}

#[test]
fn run_forwards_signals_and_reports_128_plus_signal() {
    // sh as pid 1 ignores SIGTERM by default: trap it to show delivery, then exit 42.
    let ctx = Ctx::new(
        "sigfwd",
        &[
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ],
        |_| {},
    );
    let mut child = ctx
        .cmd(&["run", &ctx.id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
    ctx.assert_clean();

    let ctx = Ctx::new("sigkill", &["sleep", "1000"], |_| {});
    let mut child = ctx.cmd(&["run", &ctx.id]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ctx.rt(&["state", &ctx.id]).status.success() || ctx.status() != "running" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    // SIGKILL via the runtime's kill: run returns 137.
    assert!(ctx.rt(&["kill", &ctx.id, "9"]).status.success());
    assert_eq!(child.wait().unwrap().code(), Some(137));
    ctx.assert_clean();
}

#[test]
fn run_detached_then_list_and_delete_force() {
    let ctx = Ctx::new("detach", &["sleep", "1000"], |_| {});
    let out = ctx.rt_detached(&["run", "-d", &ctx.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ctx.status(), "running");
    let out = ctx.rt(&["list", "-q"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), ctx.id);
    let out = ctx.rt(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], ctx.id.as_str());
    assert_eq!(v[0]["status"], "running");
    let out = ctx.rt(&["list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&ctx.id) && table.contains("running"),
        "{table}"
    );
    let out = ctx.rt(&["delete", "--force", &ctx.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ctx.assert_clean();
}

#[test]
fn run_keep_leaves_a_stopped_container() {
    let ctx = Ctx::new("keep", &["true"], |_| {});
    let out = ctx.rt(&["run", "--keep", &ctx.id]);
    assert!(out.status.success());
    assert_eq!(ctx.status(), "stopped");
    assert!(ctx.rt(&["delete", &ctx.id]).status.success());
    ctx.assert_clean();
}

#[test]
fn concurrent_creates_of_one_id_exactly_one_wins() {
    let ctx = Ctx::new("race", &["sleep", "1000"], |_| {});
    let outs: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| ctx.rt_detached_n(&["create", &ctx.id])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wins = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "{outs:?}");
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert_one_line_error(o, "already exists");
    }
    assert_eq!(ctx.status(), "created");
    assert!(ctx.rt(&["delete", &ctx.id]).status.success());
    ctx.assert_clean();
}

#[test]
fn version_spec_and_features() {
    let out = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("husk-runtime version "), "{text}");
    assert!(text.contains("\nspec: 1."), "{text}");
    let out = std::process::Command::new(BIN).arg("-v").output().unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new(BIN)
        .arg("features")
        .output()
        .unwrap();
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["linux"]["namespaces"].as_array().unwrap().len(), 8);
    assert!(f["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "rbind"));
    // spec refuses to overwrite.
    let ctx = Ctx::new("spec", &["true"], |_| {});
    let out = std::process::Command::new(BIN)
        .args(["spec", "--bundle"])
        .arg(&ctx.bundle)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
}

#[test]
fn a_recycled_pid_is_not_mistaken_for_the_container() {
    let ctx = Ctx::new("recycle", &["sleep", "1000"], |_| {});
    assert!(ctx.rt_detached(&["run", "-d", &ctx.id]).status.success());
    assert_eq!(ctx.status(), "running");
    // Pretend init died and its pid now belongs to another process: same pid, other start time.
    let path = ctx.root.join(&ctx.id).join("state.json");
    let mut st: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let real = st["pid_start_time"].as_u64().unwrap();
    st["pid_start_time"] = serde_json::json!(real + 1);
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    assert_eq!(ctx.status(), "stopped");
    assert_one_line_error(&ctx.rt(&["kill", &ctx.id, "KILL"]), "not running");
    // Put it back so the real container can be cleaned up.
    st["pid_start_time"] = serde_json::json!(real);
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    assert!(ctx.rt(&["delete", "-f", &ctx.id]).status.success());
    ctx.assert_clean();
}

#[test]
fn kill_all_reaches_every_process() {
    let ctx = Ctx::new(
        "killall",
        &["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000 & wait"],
        |_| {},
    );
    assert!(ctx.rt_detached(&["run", "-d", &ctx.id]).status.success());
    let out = ctx.rt(&["kill", "--all", &ctx.id, "KILL"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_status(&ctx, "stopped");
    assert!(ctx.rt(&["delete", &ctx.id]).status.success());
    ctx.assert_clean();
}

#[test]
fn rootless_spec_runs_as_is() {
    let ctx = Ctx::new("rootlessspec", &["true"], |_| {});
    std::fs::remove_file(ctx.bundle.join("config.json")).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["spec", "--rootless", "--bundle"])
        .arg(&ctx.bundle)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ctx.bundle.join("config.json")).unwrap()).unwrap();
    assert!(spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "user"));
    spec["root"]["path"] = serde_json::json!(rootfs());
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["process"]["args"] = serde_json::json!(["sh", "-c", "cat /proc/self/uid_map"]);
    std::fs::write(ctx.bundle.join("config.json"), spec.to_string()).unwrap();
    let out = ctx.run_ok();
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "0", "1"]);
    ctx.assert_clean();
}

#[test]
fn delete_force_cleans_up_after_a_create_killed_half_way() {
    // A create that died before writing state.json leaves its dir, cgroup and init: simulate
    // it by removing state.json from a created container.
    let ctx = Ctx::new("halfway", &["sleep", "1000"], |_| {});
    assert!(ctx.rt_detached(&["create", &ctx.id]).status.success());
    let pid = ctx.state()["pid"].as_i64().unwrap();
    std::fs::remove_file(ctx.root.join(&ctx.id).join("state.json")).unwrap();
    assert_one_line_error(&ctx.rt(&["state", &ctx.id]), "does not exist");
    let out = ctx.rt(&["delete", "--force", &ctx.id]);
    assert!(out.status.success(), "{}", text(&out));
    ctx.assert_clean();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z")) {
        assert!(Instant::now() < deadline, "init {pid} survived");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A container whose state.json is empty, garbage or missing (its create died) is shown by
/// `list` as `unknown` with one warning line each, `state` says what is wrong in one line,
/// and `delete --force` kills its init (found through the cgroup path noted in the state
/// dir) and removes its cgroups and state dir.
#[test]
fn unreadable_state_is_listed_as_unknown_and_delete_force_recovers_it() {
    let damage: [(&str, Option<&str>); 3] = [
        ("empty", Some("")),
        ("garbage", Some("{\"id\": ")),
        ("missing", None),
    ];
    let ctxs: Vec<_> = damage
        .iter()
        .map(|(name, _)| Ctx::new(&format!("broken-{name}"), &["sleep", "1000"], |_| {}))
        .collect();
    // One state root for all three, so one `list` sees them.
    let root = ctxs[0].root.clone();
    let in_root = |ctx: &Ctx, args: &[&str]| {
        let mut c = std::process::Command::new(BIN);
        c.arg("--root")
            .arg(&root)
            .args(args)
            .current_dir(&ctx.bundle)
            .stdin(std::process::Stdio::null());
        c
    };
    let mut pids = Vec::new();
    for (ctx, (_, content)) in ctxs.iter().zip(&damage) {
        let out = output_via_files(in_root(ctx, &["create", &ctx.id]), &ctx.bundle);
        assert!(out.status.success(), "{}", text(&out));
        let st: serde_json::Value =
            serde_json::from_slice(&in_root(ctx, &["state", &ctx.id]).output().unwrap().stdout)
                .unwrap();
        pids.push(st["pid"].as_i64().unwrap());
        let file = root.join(&ctx.id).join("state.json");
        match content {
            Some(c) => std::fs::write(&file, c).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
    }
    let list = in_root(&ctxs[0], &["list", "--format", "json"])
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", text(&list));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    for ctx in &ctxs {
        let entry = listed
            .iter()
            .find(|e| e["id"] == ctx.id.as_str())
            .unwrap_or_else(|| panic!("{} not listed: {}", ctx.id, text(&list)));
        assert_eq!(entry["status"], "unknown", "{entry}");
    }
    let stderr = String::from_utf8_lossy(&list.stderr);
    assert_eq!(
        stderr.lines().count(),
        3,
        "one warning per container: {stderr}"
    );
    for ctx in &ctxs {
        let line = stderr.lines().find(|l| l.contains(&ctx.id)).unwrap();
        assert!(
            line.contains("level=warning") && line.contains("delete --force"),
            "{line}"
        );
    }
    // The table too.
    let table = in_root(&ctxs[0], &["list"]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    for ctx in &ctxs {
        let row = table.lines().find(|l| l.starts_with(&ctx.id)).unwrap();
        assert!(row.contains("unknown"), "{row}");
    }

    // `state` of a damaged one: one line saying what is wrong and what removes it.
    let out = in_root(&ctxs[0], &["state", &ctxs[0].id]).output().unwrap();
    assert_one_line_error(&out, "state.json");
    assert!(text(&out).contains("delete --force"), "{}", text(&out));
    // Plain `delete` refuses (the container may be running), `--force` recovers.
    assert!(!in_root(&ctxs[1], &["delete", &ctxs[1].id])
        .output()
        .unwrap()
        .status
        .success());
    for (ctx, pid) in ctxs.iter().zip(&pids) {
        let out = in_root(ctx, &["delete", "--force", &ctx.id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(!root.join(&ctx.id).exists(), "state dir of {} left", ctx.id);
        assert_no_cgroup(&ctx.id);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
        {
            assert!(
                Instant::now() < deadline,
                "init {pid} of {} survived",
                ctx.id
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let list = in_root(&ctxs[0], &["list", "-q"]).output().unwrap();
    assert!(
        list.stdout.is_empty() && list.stderr.is_empty(),
        "{}",
        text(&list)
    );
}
