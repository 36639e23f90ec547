//! Containers whose runner died: the monitor of a `husk run -d`, or a foreground `husk run`,
//! killed with SIGKILL while the container goes on. stop, rm -f, ps and logs then work from
//! the runtime's own state and clean up what the runner would have (before: stop took 12-20
//! s and failed with "did not exit after SIGKILL", exit_code stayed null, logs failed, and
//! rm -f left the state dir, the cgroups and the overlay mount). Against a real
//! docker-registry on 127.0.0.1; run as root.

mod common;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Loops until SIGTERM, which makes it exit 3.
const SERVE: &str = "trap 'exit 3' TERM; echo up; while :; do sleep 0.1; done";

fn dir_of(root: &Path, name: &str) -> PathBuf {
    containers(root)
        .into_iter()
        .find(|d| meta(d)["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn meta(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("container.json")).unwrap()).unwrap()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Well under what the bug took (12-20 s, ending in failure), with room for a loaded 2-core
/// CI machine (unloaded: well under a second).
const SOON: Duration = Duration::from_secs(9);

/// `husk ARGS` succeeds, within `limit`.
fn quickly(root: &Path, args: &[&str], limit: Duration) {
    let t = Instant::now();
    let (code, _, e) = out(root, args);
    assert_eq!(code, 0, "{args:?}: {e}");
    assert!(t.elapsed() < limit, "{args:?} took {:?}", t.elapsed());
}

#[test]
fn containers_whose_runner_died_stop_log_and_go() {
    // Orphans come to us (not to PID 1, which does not reap here); reaped at the end.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    let s = setup("orphans");
    let root = &s.root;
    let _cleanup = RemoveAll(root);
    husk_ok(root, &["pull", &s.image]);
    // Our containers' ids: what of them the runtime keeps must be gone (other tests on the
    // machine may have containers of their own).
    let mut ids = Vec::new();
    let gone = |ids: &[String]| {
        for id in ids {
            assert!(!engine_states().contains(id), "state of {id} left");
            assert!(
                !engine_cgroups()
                    .iter()
                    .any(|c| c.ends_with(&format!("/{id}"))),
                "cgroup of {id} left"
            );
        }
    };
    let mut pids = Vec::new();

    // The monitor of a detached container killed; the container goes on.
    husk_ok(root, &["run", "-d", "--name", "a", &s.image, SERVE]);
    eventually("a's output", || husk_ok(root, &["logs", "a"]) == "up\n");
    let m = meta(&dir_of(root, "a"));
    let monitor = m["monitor_pid"].as_i64().unwrap() as i32;
    pids.extend([monitor, m["pid"].as_i64().unwrap() as i32]);
    ids.push(m["id"].as_str().unwrap().to_string());
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    assert_eq!(container_state(root, "a")["status"], "running");
    assert_eq!(husk_ok(root, &["logs", "a"]), "up\n");
    quickly(root, &["stop", "a"], SOON);
    let a = container_state(root, "a");
    assert_eq!(a["status"], "exited", "{a}");
    // Its own status where nobody reaped it (here: we are its reaper and wait below), else
    // 128 + the SIGTERM that stopped it.
    assert!([3, 143].contains(&a["exit_code"].as_i64().unwrap()), "{a}");
    assert_eq!(husk_ok(root, &["logs", "a"]), "up\n");
    // Settled: nothing of the runtime left before rm.
    gone(&ids);
    assert!(mounts_below(root).is_empty(), "{:?}", mounts_below(root));
    husk_ok(root, &["rm", "a"]);

    // rm -f of one whose monitor died: one rm removes everything.
    husk_ok(root, &["run", "-d", "--name", "b", &s.image, "sleep 1000"]);
    let m = meta(&dir_of(root, "b"));
    let monitor = m["monitor_pid"].as_i64().unwrap() as i32;
    pids.extend([monitor, m["pid"].as_i64().unwrap() as i32]);
    ids.push(m["id"].as_str().unwrap().to_string());
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    quickly(root, &["rm", "-f", "b"], SOON);

    // A foreground `husk run` killed: the same.
    let mut fg = Command::new(HUSK)
        .arg("--root")
        .arg(root)
        .args(["run", "--name", "f", &s.image, SERVE])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(fg.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "up\n");
    let m = meta(&dir_of(root, "f"));
    pids.push(m["pid"].as_i64().unwrap() as i32);
    ids.push(m["id"].as_str().unwrap().to_string());
    fg.kill().unwrap();
    fg.wait().unwrap();
    assert_eq!(container_state(root, "f")["status"], "running");
    // Its output went to the killed husk run: nothing logged, and no error.
    assert_eq!(husk_ok(root, &["logs", "f"]), "");
    quickly(root, &["stop", "f"], SOON);
    let f = container_state(root, "f");
    assert!([3, 143].contains(&f["exit_code"].as_i64().unwrap()), "{f}");
    husk_ok(root, &["rm", "f"]);

    // Killed as soon as the container speaks: the container must read as running (the
    // exec gate's socket, whose presence means "created", once outlived a runner killed
    // while init exec'd).
    for i in 0..6 {
        let name = format!("k{i}");
        let mut fg = Command::new(HUSK)
            .arg("--root")
            .arg(root)
            .args(["run", "--name", &name, &s.image, "echo up; sleep 1000"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(fg.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        fg.kill().unwrap();
        fg.wait().unwrap();
        let m = meta(&dir_of(root, &name));
        pids.push(m["pid"].as_i64().unwrap() as i32);
        ids.push(m["id"].as_str().unwrap().to_string());
        assert_eq!(container_state(root, &name)["status"], "running", "run {i}");
        quickly(root, &["rm", "-f", &name], SOON);
    }

    // A --rm container whose runner died goes once it has exited; ps settles it too.
    let mut fg = Command::new(HUSK)
        .arg("--root")
        .arg(root)
        .args(["run", "--rm", "--name", "g", &s.image, SERVE])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(fg.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let m = meta(&dir_of(root, "g"));
    let init = m["pid"].as_i64().unwrap() as i32;
    ids.push(m["id"].as_str().unwrap().to_string());
    pids.push(init);
    fg.kill().unwrap();
    fg.wait().unwrap();
    unsafe { libc::kill(init, libc::SIGTERM) };
    eventually("g to go", || !husk_ok(root, &["ps", "-a"]).contains(" g\n"));

    assert!(containers(root).is_empty(), "{:?}", containers(root));
    assert!(mounts_below(root).is_empty(), "{:?}", mounts_below(root));
    gone(&ids);
    for pid in pids {
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    }
}
