//! `husk run -d` and the commands around it — ps, logs, stop, rm — against a real
//! docker-registry on 127.0.0.1. Run as root. One test: it checks at the end that nothing of
//! any container is left on the host.

mod common;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `husk --root ROOT ARGS`, to be spawned.
fn husk_cmd(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(HUSK);
    c.arg("--root").arg(root).args(args).env("HOME", root);
    c
}

/// The child's output once it has exited, which it must within 20 s.
fn wait_output(mut c: std::process::Child) -> std::process::Output {
    eventually("the command to exit", || c.try_wait().unwrap().is_some());
    c.wait_with_output().unwrap()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn detached_run_with_logs_ps_stop_and_rm() {
    let s = setup("detached");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);

    // Foreground -t under `script` (which gives us a terminal): the process sees a pty of
    // its own; the exit code passes through. (SHELL pinned: script runs $SHELL -c.)
    let o = on_a_terminal(
        root,
        &format!("run --rm -t {image} 'tty; stty size; echo tty-ok; exit 3'"),
    );
    let text = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert_eq!(o.status.code(), Some(3), "{text}");
    assert!(
        text.contains("/dev/pts/0\n") && text.contains("tty-ok"),
        "{text}"
    );
    // Without -i (and -t) the process reads /dev/null, not ours.
    let (code, o, _) = out(root, &["run", "--rm", &image, "cat; echo eof"]);
    assert_eq!((code, o.as_str()), (0, "eof\n"));

    // -d prints the id once the container runs, and returns while it keeps running.
    let script = "echo started; echo to-err >&2; trap 'echo got-term; exit 3' TERM; \
                  while :; do sleep 0.1; done";
    let started = Instant::now();
    let id = husk_ok(root, &["run", "-d", "--name", "d1", &image, script]);
    let id = id.trim();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let e = container_state(root, "d1");
    assert_eq!(e["status"], "running", "{e}");
    assert!(e["pid"].as_i64().unwrap() > 0);
    // The monitor is small: print its resident set for the record (issue 7 asks for it).
    let meta: Value = serde_json::from_slice(
        &std::fs::read(root.join("containers").join(id).join("container.json")).unwrap(),
    )
    .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", meta["monitor_pid"])).unwrap();
    let rss = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    eprintln!("monitor of a detached container: {rss}");
    let table = husk_ok(root, &["ps"]);
    assert!(table.contains(&id[..12]) && table.contains("d1"), "{table}");

    // Output is logged per stream; the container is found by name and by id prefix.
    eventually("d1's output in its log", || {
        let (_, o, e) = out(root, &["logs", "d1"]);
        o == "started\n" && e == "to-err\n"
    });
    let (code, o, _) = out(root, &["logs", "--timestamps", &id[..8]]);
    assert_eq!(code, 0);
    assert!(
        o.starts_with("20") && o.trim_end().ends_with(" started"),
        "{o:?}"
    );

    // exec -t: a pty of its own, under `script` as run -t above.
    let o = on_a_terminal(root, "exec -t d1 sh -c 'tty; exit 2'");
    let text = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");

    // exec: the container's env, cwd and user (from the image), changed by options; its
    // exit code passes through.
    assert_eq!(
        husk_ok(
            root,
            &["exec", "d1", "sh", "-c", "echo $GREETING; pwd; id -u"]
        ),
        "hello\n/srv\n1000\n"
    );
    let o = husk_ok(
        root,
        &[
            "exec",
            "-e",
            "GREETING=hi",
            "-w",
            "/tmp",
            "-u",
            "root",
            &id[..12],
            "sh",
            "-c",
            "echo $GREETING; pwd; id -u; id -g",
        ],
    );
    assert_eq!(o, "hi\n/tmp\n0\n0\n");
    assert_eq!(out(root, &["exec", "d1", "sh", "-c", "exit 7"]).0, 7);
    // exec -i: the process reads our stdin; without -i it reads /dev/null.
    let cat = ["exec", "-i", "d1", "sh", "-c", "cat; echo eof"];
    let (code, o, e) = out_with_stdin(root, &cat, b"to exec\n");
    assert_eq!((code, o.as_str()), (0, "to exec\neof\n"), "{e}");
    let (code, o, e) = out_with_stdin(root, &[&cat[..1], &cat[2..]].concat(), b"unread\n");
    assert_eq!((code, o.as_str()), (0, "eof\n"), "{e}");
    let (code, _, err) = out(root, &["exec", "d1", "/no/such/program"]);
    assert_eq!(code, 127);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/program"), "{err}");

    // The image of a running container stays, -f or not (its layers are the overlay's).
    for args in [vec!["rmi", &image], vec!["rmi", "-f", &image]] {
        let (code, _, err) = out(root, &args);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains("in use by running container d1"), "{err}");
    }

    husk_ok(
        root,
        &[
            "exec",
            "-u",
            "root",
            "d1",
            "sh",
            "-c",
            "echo kept > /srv/kept",
        ],
    );

    // cp, both ways, files and directories (symlinks stay symlinks).
    let host = s.t.path().join("host");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/sub/f"), "in-tree\n").unwrap();
    std::os::unix::fs::symlink("sub/f", host.join("tree/link")).unwrap();
    std::fs::write(host.join("file"), "from-host\n").unwrap();
    let hp = |p: &str| host.join(p).display().to_string();
    husk_ok(root, &["cp", &hp("file"), "d1:/srv/"]);
    husk_ok(root, &["cp", &hp("tree"), "d1:/srv/tree"]);
    assert_eq!(
        husk_ok(
            root,
            &[
                "exec",
                "d1",
                "sh",
                "-c",
                "cat /srv/file /srv/tree/link; readlink /srv/tree/link"
            ]
        ),
        "from-host\nin-tree\nsub/f\n"
    );
    husk_ok(root, &["cp", "d1:/srv/tree", &hp("back")]);
    assert_eq!(
        std::fs::read_to_string(host.join("back/sub/f")).unwrap(),
        "in-tree\n"
    );
    husk_ok(root, &["cp", "d1:/etc/passwd", &hp("")]);
    assert!(std::fs::read_to_string(host.join("passwd"))
        .unwrap()
        .contains("app"));
    // Symlinks in the container never lead to the host: one naming a host directory
    // resolves inside the container (where it does not exist), and a symlink as the
    // destination itself is not followed.
    let outside = s.t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let o = outside.display().to_string();
    husk_ok(
        root,
        &[
            "exec",
            "-u",
            "root",
            "d1",
            "sh",
            "-c",
            &format!("ln -s {o} /srv/up; ln -s {o}/x /srv/upx"),
        ],
    );
    for dst in ["d1:/srv/up/x", "d1:/srv/upx"] {
        let (code, _, err) = out(root, &["cp", &hp("file"), dst]);
        assert_eq!(code, 1, "{dst}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    let (code, _, err) = out(root, &["cp", "nosuch:/x", &hp("")]);
    assert_eq!(code, 1);
    assert!(err.contains("no such container: nosuch"), "{err}");

    // stop: the stop signal (the container traps it and exits 3), recorded by the monitor.
    husk_ok(root, &["stop", "d1"]);
    let e = container_state(root, "d1");
    assert_eq!(
        (e["status"].as_str(), e["exit_code"].as_i64()),
        (Some("exited"), Some(3))
    );
    assert!(!husk_ok(root, &["ps"]).contains("d1"), "ps without -a");
    assert_eq!(husk_ok(root, &["logs", "--tail", "1", "d1"]), "got-term\n");
    let (code, _, err) = out(root, &["exec", "d1", "true"]);
    assert_eq!(
        (code, err.trim()),
        (125, "husk: exec d1: the container is exited, not running")
    );
    husk_ok(root, &["stop", "d1"]); // already stopped: fine

    // start runs it again, detached, on the same filesystem; top lists its processes;
    // restart is stop + start.
    husk_ok(root, &["start", "d1"]);
    assert_eq!(container_state(root, "d1")["status"], "running");
    assert_eq!(husk_ok(root, &["exec", "d1", "cat", "/srv/kept"]), "kept\n");
    eventually("d1 to log its second start", || {
        husk_ok(root, &["logs", "d1"]).matches("started").count() == 2
    });
    // stats: one sample of the cgroup's counters.
    let s: Value = serde_json::from_str(
        husk_ok(root, &["stats", "--no-stream", "--format", "json", "d1"]).trim(),
    )
    .unwrap();
    assert_eq!(s["Name"], "d1", "{s}");
    assert!(
        s["PIDs"].as_str().unwrap().parse::<u64>().unwrap() >= 1,
        "{s}"
    );
    assert!(s["MemUsage"].as_str().unwrap().contains(" / "), "{s}");
    let table = husk_ok(root, &["stats", "--no-stream", "d1"]);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("d1") && l.contains("iB / ")),
        "{table}"
    );
    // Without --no-stream: a new sample every second, until interrupted.
    let mut streaming = husk_cmd(root, &["stats", "d1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(streaming.stdout.take().unwrap()).lines();
    let mut samples = 0;
    while samples < 2 {
        let l = lines.next().expect("stats ended").unwrap();
        if l.contains("d1") && l.contains("iB / ") {
            samples += 1;
        }
    }
    streaming.kill().unwrap();
    streaming.wait().unwrap();
    let top = husk_ok(root, &["top", "d1"]);
    assert!(top.contains("sleep") || top.contains("sh -c"), "{top}");
    let pid = container_state(root, "d1")["pid"].as_i64().unwrap();
    husk_ok(root, &["restart", "d1"]);
    let e = container_state(root, "d1");
    assert_eq!(e["status"], "running", "{e}");
    assert_ne!(e["pid"].as_i64().unwrap(), pid);
    let (code, _, err) = out(root, &["start", "d1"]);
    assert_eq!(
        (code, err.trim()),
        (1, "husk: start d1: the container is running")
    );
    // logs -f follows the running container, and ends when `stop` ends it.
    let follow = husk_cmd(root, &["logs", "-f", "d1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("d1 to log its third start", || {
        husk_ok(root, &["logs", "d1"]).matches("started").count() == 3
    });
    husk_ok(root, &["stop", "d1"]);
    let followed = wait_output(follow);
    assert!(followed.status.success());
    let text = String::from_utf8_lossy(&followed.stdout);
    assert!(text.ends_with("started\ngot-term\n"), "{text}");
    assert_eq!(text.matches("started").count(), 3, "{text}");

    // logs -f follows until the container exits.
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "d2",
            &image,
            "for i in 1 2 3; do echo $i; sleep 0.2; done",
        ],
    );
    assert_eq!(husk_ok(root, &["logs", "-f", "d2"]), "1\n2\n3\n");
    assert_eq!(container_state(root, "d2")["exit_code"], 0);

    // A container that ignores SIGTERM is killed after -t seconds: 128 + SIGKILL.
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "d3",
            &image,
            "trap '' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    );
    eventually("d3 to trap TERM", || {
        husk_ok(root, &["logs", "d3"]) == "ready\n"
    });
    let t0 = Instant::now();
    husk_ok(root, &["stop", "-t", "1", "d3"]);
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert_eq!(container_state(root, "d3")["exit_code"], 137);

    // pause freezes every process (a counter stops), unpause thaws it; kill -s signals.
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "d6",
            "-u",
            "root",
            &image,
            "trap 'exit 5' USR1; i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done",
        ],
    );
    let count = || {
        let (_, o, _) = out(root, &["exec", "d6", "cat", "/tmp/n"]);
        o.trim().parse::<u64>().ok()
    };
    eventually("d6 to count", || count().is_some());
    husk_ok(root, &["pause", "d6"]);
    assert_eq!(container_state(root, "d6")["status"], "paused");
    let (code, _, err) = out(root, &["pause", "d6"]);
    assert_eq!(
        (code, err.trim()),
        (1, "husk: pause d6: the container is already paused")
    );
    let inspect: Value =
        serde_json::from_str(&husk_ok(root, &["inspect", "--format", "json", "d6"])).unwrap();
    assert_eq!(inspect[0]["State"]["Status"], "paused", "{inspect}");
    assert_eq!(inspect[0]["State"]["Paused"], true, "{inspect}");
    let (code, _, err) = out(root, &["inspect", "--format", "{{.NoSuchField}}", "d6"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    husk_ok(root, &["unpause", "d6"]);
    // The shell may be between truncating and writing the file: read until a number comes.
    let mut n = 0;
    eventually("d6 to count after unpause", || {
        count().map(|c| n = c).is_some()
    });
    eventually("d6 to count again", || count().is_some_and(|m| m > n));
    let (code, _, err) = out(root, &["kill", "-s", "NOSUCH", "d6"]);
    assert_eq!(code, 1);
    assert!(err.contains("NOSUCH"), "{err}");
    husk_ok(root, &["kill", "-s", "USR1", "d6"]);
    eventually("d6 to exit on USR1", || {
        container_state(root, "d6")["exit_code"] == 5
    });
    husk_ok(root, &["rm", "d6"]);

    // rm: a running container only with -f.
    husk_ok(root, &["run", "-d", "--name", "d4", &image, "sleep 1000"]);
    let (code, _, err) = out(root, &["rm", "d4"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("d4") && err.contains("running"), "{err}");
    husk_ok(root, &["rm", "-f", "d4"]);
    // container prune: every exited one (d1, d2, d3), nothing else.
    let pruned = husk_ok(root, &["container", "prune"]);
    assert_eq!(pruned.lines().count(), 3, "{pruned}");

    // --restart on-failure:2 runs a failing container three times in all, then records it.
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "--restart",
            "on-failure:2",
            "--name",
            "r1",
            &image,
            "echo run; exit 4",
        ],
    );
    eventually("r1 to give up", || {
        container_state(root, "r1")["exit_code"] == 4
    });
    assert_eq!(husk_ok(root, &["logs", "r1"]), "run\nrun\nrun\n");
    let inspect: Value = serde_json::from_str(&husk_ok(root, &["inspect", "r1"])).unwrap();
    assert_eq!(inspect[0]["RestartCount"], 2, "{inspect}");
    // --restart always brings it back after a clean exit too, until it is stopped.
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "--restart",
            "always",
            "--name",
            "r2",
            &image,
            "echo run; sleep 0.2",
        ],
    );
    eventually("r2 to restart", || {
        husk_ok(root, &["logs", "r2"]).lines().count() >= 2
    });
    husk_ok(root, &["stop", "r2"]);
    eventually("r2 to stay stopped", || {
        container_state(root, "r2")["exit_code"].is_i64()
    });
    let runs = husk_ok(root, &["logs", "r2"]).lines().count();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(husk_ok(root, &["logs", "r2"]).lines().count(), runs);
    husk_ok(root, &["rm", "r1", "r2"]);
    for bad in [
        vec!["run", "--restart", "always", &image],
        vec!["run", "-d", "--rm", "--restart", "always", &image],
        vec!["run", "-d", "--restart", "sometimes", &image],
    ] {
        let (code, _, err) = out(root, &bad);
        assert_eq!(code, 125, "{bad:?}");
        assert!(
            err.starts_with("husk: run ") && err.contains("--restart"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    // -d -t: the monitor holds the pty and logs what the process wrote to it.
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "-t",
            "--name",
            "t1",
            &image,
            "tty; echo tty-ok",
        ],
    );
    eventually("t1 to exit", || {
        container_state(root, "t1")["exit_code"] == 0
    });
    let log = husk_ok(root, &["logs", "t1"]).replace('\r', "");
    assert_eq!(log, "/dev/pts/0\ntty-ok\n");
    husk_ok(root, &["rm", "t1"]);

    // -d --rm: nothing is left once it exits.
    husk_ok(root, &["run", "-d", "--rm", "--name", "d5", &image, "true"]);
    eventually("d5 to be removed", || containers(root).is_empty());

    // Concurrent runs with one name: exactly one gets it (the names are taken under a lock).
    let results: Vec<(i32, String, String)> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| out(root, &["run", "-d", "--name", "same", &image, "sleep 1000"])))
            .collect();
        runs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|(c, _, _)| *c == 0).count();
    assert_eq!(ok, 1, "{results:?}");
    for (code, _, err) in results.iter().filter(|(c, _, _)| *c != 0) {
        assert_eq!(*code, 125);
        assert!(err.contains("\"same\" is already in use"), "{err}");
    }
    husk_ok(root, &["rm", "-f", "same"]);

    // Monitor and container killed behind husk's back (a crash, an OOM kill of both): ps
    // never shows a stale "running", and rm cleans up what nobody recorded.
    husk_ok(
        root,
        &["run", "-d", "--name", "crash", &image, "sleep 1000"],
    );
    let e = container_state(root, "crash");
    assert_eq!(e["status"], "running", "{e}");
    let dir = containers(root)
        .into_iter()
        .find(|d| {
            std::fs::read_to_string(d.join("container.json")).is_ok_and(|j| j.contains("\"crash\""))
        })
        .unwrap();
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("container.json")).unwrap())
            .unwrap();
    for pid in [&meta["monitor_pid"], &meta["pid"]] {
        unsafe { libc::kill(pid.as_i64().unwrap() as i32, libc::SIGKILL) };
    }
    eventually("crash to show as exited", || {
        container_state(root, "crash")["status"] == "exited"
    });
    assert!(!husk_ok(root, &["ps"]).contains("crash"));
    husk_ok(root, &["rm", "crash"]);

    // Bad inputs: one line each, nothing left behind.
    let (code, _, err) = out(root, &["logs", "nosuch"]);
    assert_eq!((code, err.trim()), (1, "husk: no such container: nosuch"));
    let (code, _, err) = out(
        root,
        &["run", "-d", "--entrypoint", "/no/such/program", &image],
    );
    assert_eq!(code, 127, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/program"), "{err}");

    assert!(containers(root).is_empty(), "{:?}", containers(root));
    husk_ok(root, &["rmi", &image]); // no container uses it any more
    assert!(mounts_below(root).is_empty(), "{:?}", mounts_below(root));
    assert!(engine_states().is_empty(), "{:?}", engine_states());
    assert!(engine_cgroups().is_empty(), "{:?}", engine_cgroups());
}
