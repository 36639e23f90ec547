//! Bad input: one clear line on stderr (and in --log), non-zero exit, nothing left behind.

mod common;
use common::*;
use serde_json::json;

#[test]
fn missing_bundle() {
    let ctx = Ctx::new("nobundle", &["true"], |_| {});
    let out = ctx.rt(&["create", "--bundle", "/nonexistent/bundle", &ctx.id]);
    assert_one_line_error(&out, "/nonexistent/bundle");
    ctx.assert_clean();
}

#[test]
fn malformed_config_json() {
    let ctx = Ctx::new("badjson", &["true"], |_| {});
    std::fs::write(
        ctx.bundle.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": [}",
    )
    .unwrap();
    let out = ctx.rt(&["create", &ctx.id]);
    assert_one_line_error(&out, "config.json");
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
    ctx.assert_clean();

    // A field of the wrong type is refused with its location too.
    let ctx = Ctx::new("badfield", &["true"], |spec| {
        spec["process"]["user"]["uid"] = json!("root")
    });
    let out = ctx.rt(&["create", &ctx.id]);
    assert_one_line_error(&out, "config.json");
    ctx.assert_clean();
}

#[test]
fn unknown_container_id() {
    let ctx = Ctx::new("unknown", &["true"], |_| {});
    for cmd in [
        &["start", "nope"][..],
        &["state", "nope"],
        &["kill", "nope"],
        &["delete", "nope"],
    ] {
        let out = ctx.rt(cmd);
        assert_one_line_error(&out, "\"nope\" does not exist");
    }
    // runc: delete --force of a missing container succeeds.
    assert!(ctx.rt(&["delete", "--force", "nope"]).status.success());
    assert_one_line_error(&ctx.rt(&["state", "../etc"]), "invalid container id");
}

#[test]
fn duplicate_id() {
    let ctx = Ctx::new("dup", &["sleep", "100"], |_| {});
    assert!(ctx.rt_detached(&["create", &ctx.id]).status.success());
    let out = ctx.rt_detached(&["create", &ctx.id]);
    assert_one_line_error(&out, "already exists");
    // The first container is untouched.
    assert_eq!(ctx.status(), "created");
    assert!(ctx.rt(&["delete", &ctx.id]).status.success());
    ctx.assert_clean();
}

#[test]
fn bad_args0_fails_at_create() {
    let ctx = Ctx::new("badexe", &["no-such-binary", "x"], |_| {});
    let out = ctx.rt(&["create", &ctx.id]);
    assert_one_line_error(
        &out,
        "\"no-such-binary\": executable file not found in $PATH",
    );
    ctx.assert_clean();

    let ctx = Ctx::new("notexec", &["/etc/passwd"], |_| {});
    let out = ctx.rt(&["run", &ctx.id]);
    assert_one_line_error(&out, "Permission denied");
    ctx.assert_clean();
}

#[test]
fn missing_cwd_and_failed_mount_name_the_step_and_path() {
    let ctx = Ctx::new("badcwd", &["true"], |spec| {
        spec["process"]["cwd"] = json!("/does/not/exist")
    });
    let out = ctx.rt(&["create", &ctx.id]);
    assert_one_line_error(
        &out,
        "changing to cwd /does/not/exist: No such file or directory",
    );
    ctx.assert_clean();

    let ctx = Ctx::new("badmount", &["true"], |spec| {
        spec["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "bind", "source": "/no/such/source", "options": ["rbind"]}));
    });
    let out = ctx.rt(&["create", &ctx.id]);
    assert_one_line_error(
        &out,
        "mounting /no/such/source on /data (bind): No such file or directory",
    );
    ctx.assert_clean();

    let ctx = Ctx::new("badfs", &["true"], |spec| {
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/x", "type": "nosuchfs", "source": "none"}));
    });
    let out = ctx.rt(&["create", &ctx.id]);
    assert_one_line_error(&out, "mounting none on /x (nosuchfs): No such device");
    ctx.assert_clean();
}

type Edit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn invalid_configs_are_refused_before_anything_is_made() {
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "noargs",
            Box::new(|s| s["process"]["args"] = json!([])),
            "process.args",
        ),
        (
            "relcwd",
            Box::new(|s| s["process"]["cwd"] = json!("tmp")),
            "process.cwd",
        ),
        (
            "norootfs",
            Box::new(|s| s["root"]["path"] = json!("/no/rootfs")),
            "/no/rootfs",
        ),
        (
            "nomntns",
            Box::new(|s| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|n| n["type"] != "mount")
            }),
            "mount namespace",
        ),
        (
            "usernomap",
            Box::new(|s| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "user"}))
            }),
            "uidMappings",
        ),
        (
            "badnspath",
            Box::new(|s| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "user", "path": "/proc/no/ns/user"}))
            }),
            "/proc/no/ns/user",
        ),
        (
            "nouts",
            Box::new(|s| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|n| n["type"] != "uts")
            }),
            "UTS namespace",
        ),
        (
            "badversion",
            Box::new(|s| s["ociVersion"] = json!("2.0.0")),
            "ociVersion",
        ),
    ];
    for (name, edit, needle) in cases {
        let ctx = Ctx::new(name, &["true"], |s| edit(s));
        let out = ctx.rt(&["create", &ctx.id]);
        assert_one_line_error(&out, needle);
        ctx.assert_clean();
    }
}

#[test]
fn errors_go_to_the_log_file_as_runc_json() {
    let ctx = Ctx::new("logjson", &["no-such-binary"], |_| {});
    let log = ctx.bundle.join("log.json");
    let out = ctx.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        &ctx.id,
    ]);
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(
        line["msg"]
            .as_str()
            .unwrap()
            .contains("executable file not found"),
        "{line}"
    );
    assert!(line["time"].as_str().unwrap().ends_with('Z'));

    let log = ctx.bundle.join("log.txt");
    let out = ctx.rt(&["--log", log.to_str().unwrap(), "create", &ctx.id]);
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("level=error msg=\""), "{text}");
    ctx.assert_clean();
}

#[test]
fn systemd_cgroup_is_a_clear_error() {
    let ctx = Ctx::new("systemd", &["true"], |_| {});
    let out = ctx.rt(&["--systemd-cgroup", "create", &ctx.id]);
    assert_one_line_error(&out, "systemd");
    ctx.assert_clean();
}

#[test]
fn rlimit_above_the_hard_limit_names_the_limit() {
    let ctx = Ctx::new("rlimhigh", &["true"], |spec| {
        spec["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": u64::MAX / 2, "hard": u64::MAX / 2}]);
    });
    let out = ctx.rt(&["run", &ctx.id]);
    assert_one_line_error(&out, "setting rlimit RLIMIT_NOFILE");
    ctx.assert_clean();
}

#[test]
fn a_broken_stderr_pipe_does_not_abort_the_runtime() {
    use std::os::fd::FromRawFd;
    let ctx = Ctx::new("nostderr", &["true"], |_| {});
    // stderr is a pipe whose reader is gone: writing fails with EPIPE (Rust ignores SIGPIPE),
    // and the runtime must still exit 1 rather than abort in a panic.
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { libc::close(fds[0]) };
    let writer = unsafe { std::fs::File::from_raw_fd(fds[1]) };
    let out = ctx
        .cmd(&["create", "--bundle", "/nonexistent", &ctx.id])
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    ctx.assert_clean();
}
