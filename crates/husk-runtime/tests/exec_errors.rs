//! Bad input around exec, terminals and hooks: one clear line on stderr, a non-zero exit,
//! and nothing leaked — no state dir, no cgroup, no stray husk process, no extra process in
//! a container that keeps running.

mod common;
use common::*;
use serde_json::json;

/// No process on the host whose command line mentions `needle` (a container id: the
/// clones of husk-runtime carry it in their argv until they exec).
fn assert_no_process_mentioning(needle: &str) {
    let me = std::process::id().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        assert!(
            !cmd.contains(needle),
            "stray process {name} left behind: {cmd}"
        );
    }
}

/// Processes in the container, seen from its init's pid namespace (via a host /proc walk of
/// init's children would race; the cgroup's task list is exact).
fn container_procs(ctx: &Ctx) -> usize {
    let out = ctx.rt(&["ps", "--format", "json", &ctx.id]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice::<Vec<i64>>(&out.stdout)
        .unwrap()
        .len()
}

fn running(name: &str) -> Ctx {
    let ctx = Ctx::new(name, &["sleep", "1000"], |_| {});
    let out = ctx.rt_detached(&["run", "-d", &ctx.id]);
    assert!(out.status.success(), "{}", text(&out));
    ctx
}

#[test]
fn exec_into_unknown_container() {
    let ctx = Ctx::new("xe-unknown", &["true"], |_| {});
    let out = ctx.rt(&["exec", "nope", "true"]);
    assert_one_line_error(&out, "nope: container does not exist");
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    assert_no_process_mentioning("nope\0");
}

#[test]
fn exec_into_stopped_container() {
    let ctx = Ctx::new("xe-stopped", &["true"], |_| {});
    let out = ctx.rt(&["run", "--keep", &ctx.id]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ctx.status(), "stopped");
    let out = ctx.rt(&["exec", &ctx.id, "true"]);
    assert_one_line_error(&out, "cannot exec in a stopped container");
    assert!(ctx.rt(&["delete", &ctx.id]).status.success());
    ctx.assert_clean();
    assert_no_process_mentioning(&ctx.id);
}

#[test]
fn malformed_process_json() {
    let ctx = running("xe-badproc");
    let before = container_procs(&ctx);
    let bad = ctx.bundle.join("process.json");
    std::fs::write(&bad, "{\"args\": [\"true\"], \"cwd\": ").unwrap();
    let out = ctx.rt(&["exec", "--process", bad.to_str().unwrap(), &ctx.id]);
    assert_one_line_error(&out, "process.json");
    // A well-formed file with a field of the wrong type, and one that is missing.
    std::fs::write(&bad, json!({"args": "true", "cwd": "/"}).to_string()).unwrap();
    let out = ctx.rt(&["exec", "--process", bad.to_str().unwrap(), &ctx.id]);
    assert_one_line_error(&out, "process.json");
    let missing = ctx.bundle.join("missing.json");
    let out = ctx.rt(&["exec", "--process", missing.to_str().unwrap(), &ctx.id]);
    assert_one_line_error(&out, "missing.json");
    assert_eq!(container_procs(&ctx), before, "exec left a process behind");
    assert_eq!(ctx.status(), "running");
}

#[test]
fn console_socket_that_does_not_exist() {
    // create: refused before anything is made.
    let ctx = Ctx::new("xe-nosock", &["true"], |s| {
        s["process"]["terminal"] = json!(true)
    });
    let out = ctx.rt(&[
        "create",
        "--console-socket",
        "/nonexistent/tty.sock",
        &ctx.id,
    ]);
    assert_one_line_error(&out, "/nonexistent/tty.sock");
    ctx.assert_clean();
    assert_no_process_mentioning(&ctx.id);

    // exec: the running container is untouched.
    let ctx = running("xe-nosock-exec");
    let before = container_procs(&ctx);
    let out = ctx.rt(&[
        "exec",
        "-t",
        "--console-socket",
        "/nonexistent/tty.sock",
        &ctx.id,
        "true",
    ]);
    assert_one_line_error(&out, "/nonexistent/tty.sock");
    assert_eq!(container_procs(&ctx), before, "exec left a process behind");
}

#[test]
fn hook_binary_that_is_missing() {
    for (kind, name) in [
        ("prestart", "xe-hook-pre"),
        ("createRuntime", "xe-hook-rt"),
        ("createContainer", "xe-hook-cc"),
    ] {
        let ctx = Ctx::new(name, &["true"], |s| {
            s["hooks"] = json!({kind: [{"path": "/nonexistent/hook-bin"}]});
        });
        let out = ctx.rt(&["create", &ctx.id]);
        assert_one_line_error(&out, "/nonexistent/hook-bin");
        ctx.assert_clean();
        assert_no_process_mentioning(&ctx.id);
    }
}

/// runc: a pid file that cannot be written fails the exec with 255, and the process it
/// started is killed rather than left running unrecorded (detached or not).
#[test]
fn pid_file_that_cannot_be_written() {
    let ctx = running("xe-pidfile");
    let before = container_procs(&ctx);
    for detach in [false, true] {
        let mut args = vec!["exec", "--pid-file", "/nonexistent/dir/pid"];
        if detach {
            args.push("-d");
        }
        args.extend([ctx.id.as_str(), "sleep", "1000"]);
        let out = ctx.rt_detached(&args);
        assert_one_line_error(&out, "/nonexistent/dir/pid");
        assert_eq!(out.status.code(), Some(255), "{}", text(&out));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while container_procs(&ctx) != before {
            assert!(
                std::time::Instant::now() < deadline,
                "detach={detach}: exec left a process behind"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    assert_eq!(ctx.status(), "running");
}
