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
    // runc 1.1.5's text, which containerd's shim (and CRI-O) look for to treat a container
    // as already gone; exec fails with 255 as runc's does.
    for (cmd, code) in [
        (&["start", "nope"][..], 1),
        (&["state", "nope"], 1),
        (&["kill", "nope"], 1),
        (&["kill", "nope", "KILL"], 1),
        (&["delete", "nope"], 1),
        (&["pause", "nope"], 1),
        (&["resume", "nope"], 1),
        (&["ps", "nope"], 1),
        (&["events", "--stats", "nope"], 1),
        (&["update", "--memory", "10m", "nope"], 1),
        (&["exec", "nope", "true"], 255),
    ] {
        let out = ctx.rt(cmd);
        assert_one_line_error(&out, "nope: container does not exist");
        assert_eq!(out.status.code(), Some(code), "{cmd:?}: {}", text(&out));
    }
    // runc: delete --force of a missing container succeeds.
    assert!(ctx.rt(&["delete", "--force", "nope"]).status.success());
    assert_one_line_error(&ctx.rt(&["state", "../etc"]), "invalid container id");
}

/// Every refusal by state says what runc 1.1.5 says, so callers that match on runc's texts
/// (containerd's shim: "container not running" means the task is done) work unchanged.
#[test]
fn state_refusals_use_runcs_texts() {
    let ctx = Ctx::new("texts", &["true"], |_| {});
    let id = ctx.id.as_str();
    let out = ctx.rt(&["run", "--keep", id]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ctx.status(), "stopped");
    let stopped: [(&[&str], &str, i32); 9] = [
        (&["kill", id, "KILL"], "container not running", 1),
        (&["kill", id], "container not running", 1),
        (&["kill", id, "0"], "container not running", 1),
        (
            &["start", id],
            "cannot start a container that has stopped",
            1,
        ),
        (&["pause", id], "container not running", 1),
        (&["resume", id], "container not paused", 1),
        (
            &["update", "--memory", "10m", id],
            "container not running",
            1,
        ),
        (
            &["events", "--stats", id],
            &format!("container with id {id} is not running"),
            1,
        ),
        (
            &["exec", id, "true"],
            "cannot exec in a stopped container",
            255,
        ),
    ];
    for (cmd, needle, code) in stopped {
        let out = ctx.rt(cmd);
        assert_one_line_error(&out, needle);
        assert_eq!(out.status.code(), Some(code), "{cmd:?}: {}", text(&out));
    }
    // runc: `kill --all` of a stopped container signals whatever is left in its cgroup
    // and succeeds.
    let out = ctx.rt(&["kill", "--all", id, "KILL"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(ctx.rt(&["delete", id]).status.success());
    ctx.assert_clean();

    let ctx = Ctx::new("texts-run", &["sleep", "1000"], |_| {});
    let id = ctx.id.as_str();
    assert!(ctx.rt_detached(&["run", "-d", id]).status.success());
    // Signal 0 checks that the container is alive, for one process or all.
    for cmd in [&["kill", id, "0"][..], &["kill", "--all", id, "0"]] {
        let out = ctx.rt(cmd);
        assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    }
    assert_one_line_error(
        &ctx.rt(&["start", id]),
        "cannot start an already running container",
    );
    assert_one_line_error(
        &ctx.rt(&["delete", id]),
        &format!("cannot delete container {id} that is not stopped: running"),
    );
    assert_one_line_error(&ctx.rt(&["resume", id]), "container not paused");
    assert_eq!(ctx.status(), "running");
}

/// runc thaws a paused container for SIGKILL, so that the kill takes effect (on v1 a
/// frozen process does not die until thawed) and the caller sees it stop.
#[test]
fn sigkill_stops_a_paused_container() {
    let ctx = Ctx::new("killpaused", &["sleep", "1000"], |_| {});
    assert!(ctx.rt_detached(&["run", "-d", &ctx.id]).status.success());
    assert!(ctx.rt(&["pause", &ctx.id]).status.success());
    assert_eq!(ctx.status(), "paused");
    let out = ctx.rt(&["kill", &ctx.id, "KILL"]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ctx.status() != "stopped" {
        assert!(
            std::time::Instant::now() < deadline,
            "still {} after SIGKILL",
            ctx.status()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ctx.rt(&["delete", &ctx.id]).status.success());
    ctx.assert_clean();
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
fn bad_cwd_and_failed_mount_name_the_step_and_path() {
    // A missing cwd is made (as runc does); one under a file cannot be.
    let ctx = Ctx::new("badcwd", &["true"], |spec| {
        spec["process"]["cwd"] = json!("/etc/passwd/sub")
    });
    let out = ctx.rt(&["create", &ctx.id]);
    assert_one_line_error(&out, "changing to cwd /etc/passwd/sub: Not a directory");
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
    // stderr keeps runc's error line even with --log: callers grep it for "error".
    assert_one_line_error(&out, "executable file not found");
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

    // A log file that cannot be opened fails the command before it does anything (runc).
    let ctx2 = Ctx::new("nolog", &["true"], |_| {});
    let out = ctx2.rt(&["--log", "/nonexistent/dir/log", "run", &ctx2.id]);
    assert_one_line_error(&out, "/nonexistent/dir/log");
    assert_eq!(out.status.code(), Some(1));
    ctx2.assert_clean();

    let log = ctx.bundle.join("log.txt");
    let out = ctx.rt(&["--log", log.to_str().unwrap(), "create", &ctx.id]);
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        error_msg(&text)
            .as_deref()
            .map(|m| m.contains("executable file not found")),
        Some(true),
        "{text}"
    );
    ctx.assert_clean();
}

/// runc's logrus lines: `time="…" level=error msg="…"` on stderr; with --debug,
/// `level=debug` lines too — on stderr, or in the --log file (in its format) when given.
#[test]
fn stderr_and_debug_lines_are_runcs() {
    let ctx = Ctx::new("logfmt", &["true"], |_| {});
    let out = ctx.rt(&["kill", "nope", "KILL"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.trim_end();
    let time = field(line, "time").unwrap_or_default();
    assert!(
        time.len() == 20
            && time.ends_with('Z')
            && line.starts_with(&format!("time=\"{time}\" level=error msg=")),
        "{line:?}"
    );
    assert_eq!(
        field(line, "msg").as_deref(),
        Some("kill nope: container does not exist")
    );

    // On a terminal, logrus's short form.
    let cmdline = format!("{BIN} --root {} kill nope KILL", ctx.root.display());
    let out = on_a_terminal(&cmdline).output().unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(
        tty.contains("ERRO[0000] kill nope: container does not exist"),
        "{}",
        text(&out)
    );

    let out = ctx.rt(&["--debug", "run", &ctx.id]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let debug: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(" level=debug msg="))
        .collect();
    assert!(debug.len() >= 2, "{err}");
    assert!(debug.iter().all(|l| l.starts_with("time=\"")), "{err}");
    ctx.assert_clean();

    // With --log, debug lines go to the file as JSON, and none to stderr.
    let log = ctx.bundle.join("debug.json");
    let out = ctx.rt(&[
        "--debug",
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "run",
        &ctx.id,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("level=debug"),
        "{}",
        text(&out)
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.len() >= 2 && lines.iter().all(|l| l["level"] == "debug"),
        "{lines:?}"
    );
    ctx.assert_clean();
}

/// The systemd driver is for cgroup v2 (tested in the VM, vmtest/systemd.sh); on this
/// host's hybrid layout it is one clear error, and a cgroupsPath not in its form is too.
#[test]
fn systemd_cgroup_errors_are_one_line() {
    let ctx = Ctx::new("systemd", &["true"], |_| {});
    let out = ctx.rt(&["--systemd-cgroup", "create", &ctx.id]);
    assert_one_line_error(&out, "systemd");
    ctx.assert_clean();
    let ctx = Ctx::new("systemdpath", &["true"], |spec| {
        spec["linux"]["cgroupsPath"] = serde_json::json!("/not/slice/prefix/name");
    });
    let out = ctx.rt(&["--systemd-cgroup", "create", &ctx.id]);
    assert_one_line_error(&out, "slice:prefix:name");
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

/// runc 1.1 warns (and goes on) when the container's cgroup already holds processes.
#[test]
fn a_cgroup_that_is_not_empty_is_a_warning() {
    let name = format!("husk-busy-{}", std::process::id());
    let ctx = Ctx::new("busycg", &["true"], |s| {
        s["linux"]["cgroupsPath"] = json!(format!("/{name}"))
    });
    let dir = std::path::Path::new("/sys/fs/cgroup/pids").join(&name);
    std::fs::create_dir(&dir).unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    std::fs::write(dir.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    let out = ctx.rt_detached(&["create", &ctx.id]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    let warning = err
        .lines()
        .find(|l| l.contains(" level=warning "))
        .and_then(|l| field(l, "msg"));
    assert_eq!(
        warning.as_deref(),
        Some(
            format!(
                "create {}: container's cgroup is not empty: 1 process(es) found",
                ctx.id
            )
            .as_str()
        ),
        "{err}"
    );
    assert!(ctx.rt(&["delete", "--force", &ctx.id]).status.success());
    let _ = std::fs::remove_dir(&dir);
    ctx.assert_clean();
    assert_no_cgroup(&name);
}

/// runc pauses a created container too; it is then "paused" and cannot start until resumed.
#[test]
fn a_created_container_can_be_paused() {
    let ctx = Ctx::new("pausecreated", &["sleep", "1000"], |_| {});
    assert!(ctx.rt_detached(&["create", &ctx.id]).status.success());
    let out = ctx.rt(&["pause", &ctx.id]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ctx.status(), "paused");
    assert_one_line_error(
        &ctx.rt(&["start", &ctx.id]),
        "cannot start a container in the paused state",
    );
    assert!(ctx.rt(&["resume", &ctx.id]).status.success());
    assert_eq!(ctx.status(), "created");
    assert!(ctx.rt(&["start", &ctx.id]).status.success());
    assert_eq!(ctx.status(), "running");
    assert!(ctx.rt(&["delete", "--force", &ctx.id]).status.success());
    ctx.assert_clean();
}

/// Without a pid namespace, init can exit and leave processes in the container's cgroup:
/// `kill --all` of the stopped container still reaches them (runc), so a caller can clean
/// up before `delete`.
#[test]
fn kill_all_reaches_what_a_stopped_container_left() {
    let ctx = Ctx::new("leftover", &["sh", "-c", "sleep 1000 &"], |s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    let out = ctx.rt_detached(&["run", "--keep", "-d", &ctx.id]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ctx.status() != "stopped" {
        assert!(std::time::Instant::now() < deadline, "init did not exit");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let left = ctx.rt(&["ps", "--format", "json", &ctx.id]);
    let left: Vec<i32> = serde_json::from_slice(&left.stdout).unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    let out = ctx.rt(&["kill", "--all", &ctx.id, "KILL"]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Gone, or a zombie waiting for whoever adopted it.
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| !r.starts_with('Z')))
    };
    while alive(left[0]) {
        assert!(
            std::time::Instant::now() < deadline,
            "leftover process survived kill --all"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ctx.rt(&["delete", &ctx.id]).status.success());
    ctx.assert_clean();
}
