//! OCI hooks: order, namespaces, the state on stdin, env and argv, failures and timeouts.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PATH_ENV: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/// `bundle/hooks/hook.sh`: appends "KIND MNT-NS CWD STATE" to the log given as $2. The
/// directory is bind-mounted on /mnt in the container, so hooks running there use /mnt/hook.sh.
fn hook_dir(bundle: &Path) -> PathBuf {
    let dir = bundle.join("hooks");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("hook.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$1 $(readlink /proc/self/ns/mnt) $(pwd) $(cat)\" >> \"$2\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn logging_hook(path: &str, kind: &str, log: &str) -> Value {
    json!({"path": path, "args": ["hook.sh", kind, log], "env": [PATH_ENV]})
}

fn sh_hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": [PATH_ENV]})
}

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_stopped(ctx: &Ctx) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctx.status() != "stopped" {
        assert!(Instant::now() < deadline, "{} never stopped", ctx.id);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A context whose config has the hooks `hooks(bundle)` and bundle/hooks bound on /mnt.
fn with_hooks(name: &str, args: &[&str], hooks: impl FnOnce(&Path) -> Value) -> Ctx {
    let ctx = Ctx::new(name, args, |_| {});
    let dir = hook_dir(&ctx.bundle);
    let h = hooks(&ctx.bundle);
    let path = ctx.bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    spec["hooks"] = h;
    spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt", "type": "bind", "source": dir.to_str().unwrap(),
        "options": ["rbind", "rw"]
    }));
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    ctx
}

/// `husk-runtime ARGS` run from `/`, not from the bundle: where hooks run must not depend on
/// the caller's working directory.
fn rt_from_root(ctx: &Ctx, args: &[&str]) -> std::process::Output {
    let mut cmd = ctx.cmd(args);
    cmd.current_dir("/");
    output_via_files(cmd, ctx.bundle.parent().unwrap())
}

/// As runc 1.1: the state on stdin is the runtime-spec's state (ociVersion, id, status, pid,
/// bundle, annotations; pid left out once stopped), createContainer and startContainer see
/// init's pid in its own pid namespace (1), and the runtime's hooks run in the bundle
/// directory, createContainer in the rootfs.
#[test]
fn hooks_run_in_order_in_their_namespaces_with_the_state() {
    let ctx = with_hooks("hooks-order", &["sleep", "100"], |bundle| {
        let host = bundle.join("hooks/hook.sh");
        let host = host.to_str().unwrap();
        let log = bundle.join("hooks/log");
        let log = log.to_str().unwrap();
        json!({
            "prestart": [logging_hook(host, "prestart", log)],
            "createRuntime": [logging_hook(host, "createRuntime", log)],
            // Before pivot_root: the path still resolves on the host.
            "createContainer": [logging_hook(host, "createContainer", log)],
            // In the container: its own /mnt/hook.sh, run by busybox sh.
            "startContainer": [logging_hook("/mnt/hook.sh", "startContainer", "/mnt/log")],
            "poststart": [logging_hook(host, "poststart", log)],
            "poststop": [logging_hook(host, "poststop", log)]
        })
    });
    let log = ctx.bundle.join("hooks/log");
    let config = ctx.bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    spec["annotations"] = json!({"org.example.key": "value"});
    std::fs::write(&config, serde_json::to_vec(&spec).unwrap()).unwrap();
    let bundle = ctx.bundle.to_str().unwrap();
    ok(
        &rt_from_root(&ctx, &["create", "--bundle", bundle, &ctx.id]),
        "create",
    );
    let pid = ctx.state()["pid"].as_i64().unwrap();
    ok(&rt_from_root(&ctx, &["start", &ctx.id]), "start");
    ok(&ctx.rt(&["kill", &ctx.id, "KILL"]), "kill");
    wait_stopped(&ctx);
    ok(&rt_from_root(&ctx, &["delete", &ctx.id]), "delete");
    ctx.assert_clean();

    let host_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let host_ns = host_ns.to_str().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<(&str, &str, &str, Value)> = text
        .lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let kind = parts.next().unwrap();
            let ns = parts.next().unwrap();
            let cwd = parts.next().unwrap();
            let state = serde_json::from_str(parts.next().unwrap_or("null"))
                .unwrap_or_else(|e| panic!("state of {kind} is not JSON ({e}): {l}"));
            (kind, ns, cwd, state)
        })
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l.0).collect();
    assert_eq!(
        kinds,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "log: {text}"
    );
    let container_ns = lines[3].1;
    assert_ne!(container_ns, host_ns);
    let rootfs = rootfs().canonicalize().unwrap();
    for (kind, ns, cwd, state) in &lines {
        let (want_ns, want_cwd) = match *kind {
            "createContainer" => (container_ns, rootfs.to_str().unwrap()),
            "startContainer" => (container_ns, "/"),
            _ => (host_ns, bundle),
        };
        assert_eq!(*ns, want_ns, "{kind} ran in the wrong mount namespace");
        assert_eq!(*cwd, want_cwd, "{kind} ran in the wrong directory");
        assert_eq!(state["id"], ctx.id.as_str(), "{kind}: {state}");
        assert_eq!(state["bundle"], bundle, "{kind}");
        assert!(state["ociVersion"].is_string(), "{kind}: {state}");
        assert_eq!(
            state["annotations"],
            json!({"org.example.key": "value"}),
            "{kind}: {state}"
        );
        let (status, want_pid) = match *kind {
            "prestart" | "createRuntime" => ("creating", json!(pid)),
            "createContainer" => ("creating", json!(1)),
            "startContainer" => ("created", json!(1)),
            "poststart" => ("running", json!(pid)),
            _ => ("stopped", Value::Null),
        };
        assert_eq!(state["status"], status, "{kind}: {state}");
        assert_eq!(state["pid"], want_pid, "{kind}: {state}");
        let mut keys: Vec<&str> = state
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        let mut want = vec!["annotations", "bundle", "id", "ociVersion", "status"];
        if !want_pid.is_null() {
            want.push("pid");
        }
        want.sort_unstable();
        assert_eq!(
            keys, want,
            "{kind}: the runtime-spec's state, nothing else: {state}"
        );
    }
}

/// runc passes a hook without `env` the environment it runs with itself: the runtime's own
/// for the runtime's hooks, the container process's for createContainer and startContainer
/// (the latter with HOME, as the process gets it). An empty `env` is an empty environment.
#[test]
fn hooks_without_env_inherit_as_runc_does() {
    let ctx = with_hooks("hooks-inherit", &["true"], |bundle| {
        let dump = |kind: &str, out: &str| {
            json!({"path": "/bin/sh", "args": ["sh", "-c",
                format!("env | grep -v -e ^PWD= -e ^SHLVL= | sort > {out}/{kind}")]})
        };
        let host = bundle.join("hooks");
        let host = host.to_str().unwrap();
        let mut empty = dump("createRuntime-empty", host);
        empty["env"] = json!([]);
        json!({
            "createRuntime": [dump("createRuntime", host), empty],
            "createContainer": [dump("createContainer", host)],
            "startContainer": [dump("startContainer", "/mnt")],
            "poststart": [dump("poststart", host)],
        })
    });
    let config = ctx.bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    spec["process"]["env"] = json!([PATH_ENV, "IN_PROCESS=yes"]);
    std::fs::write(&config, serde_json::to_vec(&spec).unwrap()).unwrap();
    let mut create = ctx.cmd(&["create", &ctx.id]);
    create.env("HUSK_HOOK_MARK", "from-create");
    ok(
        &output_via_files(create, ctx.bundle.parent().unwrap()),
        "create",
    );
    let mut start = ctx.cmd(&["start", &ctx.id]);
    start.env("HUSK_HOOK_MARK", "from-start");
    ok(&start.output().unwrap(), "start");
    let read = |kind: &str| std::fs::read_to_string(ctx.bundle.join("hooks").join(kind)).unwrap();
    assert!(
        read("poststart").contains("HUSK_HOOK_MARK=from-start\n"),
        "{}",
        read("poststart")
    );
    let runtime_env = read("createRuntime");
    assert!(
        runtime_env.contains("HUSK_HOOK_MARK=from-create\n"),
        "{runtime_env}"
    );
    assert!(!runtime_env.contains("IN_PROCESS"), "{runtime_env}");
    assert_eq!(read("createRuntime-empty"), "");
    assert_eq!(
        read("createContainer"),
        format!("IN_PROCESS=yes\n{PATH_ENV}\n")
    );
    assert_eq!(
        read("startContainer"),
        format!("HOME=/root\nIN_PROCESS=yes\n{PATH_ENV}\n")
    );
    ok(&ctx.rt(&["delete", "--force", &ctx.id]), "delete");
    ctx.assert_clean();
}

#[test]
fn hook_env_and_argv_are_exactly_the_hooks() {
    let ctx = with_hooks("hooks-env", &["true"], |bundle| {
        let out = bundle.join("hooks/env");
        let script = format!(
            "tr '\\0' '\\n' < /proc/$$/environ > {o}; tr '\\0' '\\n' < /proc/$$/cmdline | head -n1 >> {o}",
            o = out.display()
        );
        json!({"createRuntime": [{
            "path": "/bin/sh",
            "args": ["custom-argv0", "-c", script],
            "env": [PATH_ENV, "HOOK_VAR=a b=c"]
        }]})
    });
    let out = ctx.rt_detached(&["create", &ctx.id]);
    ok(&out, "create");
    let got = std::fs::read_to_string(ctx.bundle.join("hooks/env")).unwrap();
    let mut lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.pop(), Some("custom-argv0"), "{got}");
    lines.sort_unstable();
    assert_eq!(lines, ["HOOK_VAR=a b=c", PATH_ENV], "{got}");
    ok(&ctx.rt(&["delete", "--force", &ctx.id]), "delete");
    ctx.assert_clean();
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let ctx = with_hooks(
        "hooks-fail",
        &["true"],
        |_| json!({"createRuntime": [sh_hook("echo bad thing happened >&2; echo more >&2; exit 3")]}),
    );
    let out = ctx.rt_detached(&["create", &ctx.id]);
    assert_one_line_error(
        &out,
        "running createRuntime hook /bin/sh: exit status 3, stdout: , stderr: bad thing happened\\nmore",
    );
    ctx.assert_clean();
}

#[test]
fn failing_create_container_hook_fails_create() {
    let ctx = with_hooks(
        "hooks-cc-fail",
        &["true"],
        |_| json!({"createContainer": [sh_hook("echo said; echo nope >&2; exit 4")]}),
    );
    let out = ctx.rt_detached(&["create", &ctx.id]);
    assert_one_line_error(
        &out,
        "running createContainer hook /bin/sh: exit status 4, stdout: said, stderr: nope",
    );
    ctx.assert_clean();
}

#[test]
fn hook_timeout_kills_the_hook() {
    let ctx = with_hooks("hooks-timeout", &["true"], |bundle| {
        let mut h = sh_hook(&format!(
            "echo $$ > {}; exec sleep 60",
            bundle.join("hooks/pid").display()
        ));
        h["timeout"] = json!(1);
        json!({"createRuntime": [h]})
    });
    let t0 = Instant::now();
    let out = ctx.rt_detached(&["create", &ctx.id]);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert_one_line_error(&out, "createRuntime hook /bin/sh timed out after 1s");
    ctx.assert_clean();
    let pid = std::fs::read_to_string(ctx.bundle.join("hooks/pid")).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the hook still runs"
    );
}

#[test]
fn failing_start_container_hook_fails_start() {
    let ctx = with_hooks(
        "hooks-sc-fail",
        &["sleep", "100"],
        |_| json!({"startContainer": [sh_hook("echo not today >&2; exit 5")]}),
    );
    ok(&ctx.rt_detached(&["create", &ctx.id]), "create");
    let out = ctx.rt(&["start", &ctx.id]);
    assert_one_line_error(
        &out,
        "running startContainer hook /bin/sh: exit status 5, stdout: , stderr: not today",
    );
    wait_stopped(&ctx);
    ok(&ctx.rt(&["delete", &ctx.id]), "delete");
    ctx.assert_clean();
}

/// The runtime-spec's rule, where runc 1.1 differs on purpose (docs/architecture.md): a
/// failing poststart or poststop hook is a warning, with the hook's stdout and stderr as runc
/// reports them.
#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    let ctx = with_hooks("hooks-warn", &["sleep", "100"], |_| {
        json!({
            "poststart": [sh_hook("echo ps said; echo ps broke >&2; exit 6")],
            "poststop": [sh_hook("echo stop broke >&2; exit 7")]
        })
    });
    ok(&ctx.rt_detached(&["create", &ctx.id]), "create");
    let out = ctx.rt(&["start", &ctx.id]);
    ok(&out, "start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning")
            && err.contains(
                "poststart hook /bin/sh: exit status 6, stdout: ps said, stderr: ps broke"
            ),
        "{err}"
    );
    assert_eq!(ctx.status(), "running");
    let out = ctx.rt(&["delete", "--force", &ctx.id]);
    ok(&out, "delete");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning")
            && err.contains("poststop hook /bin/sh: exit status 7, stdout: , stderr: stop broke"),
        "{err}"
    );
    ctx.assert_clean();
}

#[test]
fn features_lists_the_hooks() {
    let out = std::process::Command::new(BIN)
        .arg("features")
        .output()
        .unwrap();
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hooks: Vec<&str> = f["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "{h} missing from {hooks:?}");
    }
}
