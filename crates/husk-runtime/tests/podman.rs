//! podman (Debian's 4.3, through conmon) drives husk-runtime as its OCI runtime: run, exit
//! codes, detached + exec + pause/unpause + top + stop + rm, and a terminal. podman runs with
//! its own storage and run roots under a temp dir, network none, so nothing is shared with
//! the host's podman state.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn get() -> &'static Podman {
        static P: OnceLock<Podman> = OnceLock::new();
        P.get_or_init(|| {
            assert!(
                Path::new("/usr/bin/podman").exists(),
                "podman is required (scripts/deps.sh installs it)"
            );
            let dir = std::env::temp_dir().join(format!("husk-podman-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            // This machine's hard nofile/nproc limits are below podman's defaults.
            let (nofile, nproc) = (
                hard_limit(libc::RLIMIT_NOFILE),
                hard_limit(libc::RLIMIT_NPROC),
            );
            std::fs::write(
                dir.join("containers.conf"),
                format!(
                    "[containers]\ndefault_ulimits = [\"nofile={n}:{n}\", \"nproc={p}:{p}\"]\n",
                    n = nofile.min(1024),
                    p = nproc.min(4096)
                ),
            )
            .unwrap();
            let p = Podman { dir };
            // The image: the shared busybox rootfs, imported as a single layer.
            let tar = Command::new("tar")
                .arg("-C")
                .arg(rootfs())
                .args(["-cf", "-", "."])
                .output()
                .unwrap();
            assert!(tar.status.success());
            let mut import = p.cmd(&["import", "-", "localhost/husk-busybox:test"]);
            import
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped());
            let mut child = import.spawn().unwrap();
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), &tar.stdout).unwrap();
            drop(child.stdin.take());
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "podman import: {out:?}");
            p
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        // --foreground: see on_a_terminal; some of these commands run on a pty.
        let mut c = Command::new("timeout");
        c.args([
            "--foreground",
            "120",
            "podman",
            "--runtime",
            BIN,
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
        ])
        .arg("--root")
        .arg(self.dir.join("storage"))
        .arg("--runroot")
        .arg(self.dir.join("run"))
        .arg("--tmpdir")
        .arg(self.dir.join("tmp"))
        .args(args)
        .env("CONTAINERS_CONF", self.dir.join("containers.conf"));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
}

fn hard_limit(res: libc::__rlimit_resource_t) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(res, &mut r) };
    r.rlim_max
}

const IMAGE: &str = "localhost/husk-busybox:test";

#[test]
fn podman_run_echo_env_workdir_user_and_exit_codes() {
    let p = Podman::get();
    let o = p.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "65534:65534",
        IMAGE,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; hostname",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], &["bar", "/tmp", "65534"], "{out}");
    let o = p.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    // stdin reaches the container.
    let mut c = p.cmd(&[
        "run",
        "--rm",
        "-i",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "tr a-z A-Z",
    ]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"hello\n").unwrap();
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "HELLO\n",
        "{}",
        text(&o)
    );
}

#[test]
fn podman_detached_exec_pause_top_stop_rm() {
    let p = Podman::get();
    let o = p.run(&["run", "-d", "--network", "none", IMAGE, "sleep", "1000"]);
    assert!(o.status.success(), "{}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = p.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo exec-ok; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("exec-ok") && out.contains("sleep 1000"),
        "{out}"
    );
    let o = p.run(&["exec", &id, "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(p.run(&["pause", &id]).status.success());
    let o = p.run(&["inspect", "--format", "{{.State.Status}}", &id]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "paused",
        "{}",
        text(&o)
    );
    assert!(p.run(&["unpause", &id]).status.success());
    let found = Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "6",
            "-type",
            "d",
            "-name",
            &format!("*{id}*"),
        ])
        .output()
        .unwrap();
    assert!(
        !found.stdout.is_empty(),
        "the running container has no cgroup named after it"
    );
    let o = p.run(&["top", &id]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("sleep 1000"),
        "{}",
        text(&o)
    );
    // sleep as pid 1 ignores SIGTERM: stop falls back to SIGKILL after the timeout.
    let o = p.run(&["stop", "-t", "1", &id]);
    assert!(o.status.success(), "{}", text(&o));
    let o = p.run(&["inspect", "--format", "{{.State.Status}}", &id]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "exited",
        "{}",
        text(&o)
    );
    assert!(p.run(&["rm", &id]).status.success());
    // No cgroup whose name mentions the container is left (podman names it libpod-ID).
    assert_no_cgroup(&format!("*{id}*"));
}

#[test]
fn podman_terminal_through_conmon_console_socket() {
    let p = Podman::get();
    // `script` gives podman a terminal, so -t allocates a pty via husk's console socket.
    let cmdline = format!(
        "{} run --rm -t --network none {IMAGE} sh -c 'tty; echo tty-ok'",
        shell_words(&p.cmd(&[]))
    );
    let o = on_a_terminal(&cmdline).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains("/dev/pts/0") && out.contains("tty-ok"),
        "{out}"
    );
}

fn ok(p: &Podman, args: &[&str]) -> String {
    let o = p.run(args);
    assert!(o.status.success(), "podman {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The first cgroup directory whose name contains `id` under the v1 `controller` hierarchy.
fn cgroup_file(controller: &str, id: &str, file: &str) -> String {
    let out = Command::new("find")
        .arg(format!("/sys/fs/cgroup/{controller}"))
        .args(["-maxdepth", "6", "-type", "d", "-name", &format!("*{id}*")])
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&out.stdout);
    let dir = found
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no {controller} cgroup for {id}"));
    std::fs::read_to_string(Path::new(dir).join(file))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn podman_update_restart_readonly_binds_limits_and_exec_tty() {
    let p = Podman::get();
    let run = ["run", "--rm", "--network", "none"];
    let id = ok(
        p,
        &["run", "-d", "--network", "none", IMAGE, "sleep", "1000"],
    );

    // update on the running container reaches its cgroup.
    ok(
        p,
        &[
            "update",
            "--memory",
            "64m",
            "--memory-swap",
            "64m",
            "--cpu-shares",
            "512",
            &id,
        ],
    );
    assert_eq!(
        cgroup_file("memory", &id, "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    // (podman 4.3's update has no --pids-limit.)
    assert_eq!(cgroup_file("cpu", &id, "cpu.shares"), "512");

    // exec -t under `script`: a pty through conmon's console socket.
    let cmdline = format!("{} exec -t {id} tty", shell_words(&p.cmd(&[])));
    let o = on_a_terminal(&cmdline).output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("/dev/pts/"),
        "{}",
        text(&o)
    );

    // restart: a new init, running, exec works in it.
    let pid1 = ok(p, &["inspect", "--format", "{{.State.Pid}}", &id]);
    ok(p, &["restart", "-t", "1", &id]);
    assert_eq!(
        ok(p, &["inspect", "--format", "{{.State.Status}}", &id]),
        "running"
    );
    assert_ne!(ok(p, &["inspect", "--format", "{{.State.Pid}}", &id]), pid1);
    assert_eq!(
        ok(p, &["exec", &id, "echo", "after-restart"]),
        "after-restart"
    );
    ok(p, &["rm", "-f", &id]);
    assert_no_cgroup(&format!("*{id}*"));

    // --read-only: podman adds tmpcopyup tmpfs mounts (/tmp, /run, /var/tmp); / refuses writes.
    let out = ok(
        p,
        &[
            &run[..],
            &[
                "--read-only",
                IMAGE,
                "sh",
                "-c",
                "touch /x 2>/dev/null && echo root-writable; touch /tmp/y && echo tmp-ok",
            ],
        ]
        .concat(),
    );
    assert_eq!(out, "tmp-ok");

    // Bind mounts, read-write and read-only.
    let host = p.dir.join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from-host\n").unwrap();
    let rw = format!("{}:/data", host.display());
    let out = ok(
        p,
        &[
            &run[..],
            &[
                "-v",
                &rw,
                IMAGE,
                "sh",
                "-c",
                "cat /data/in; echo from-ctr > /data/out",
            ],
        ]
        .concat(),
    );
    assert_eq!(out, "from-host");
    assert_eq!(
        std::fs::read_to_string(host.join("out")).unwrap().trim(),
        "from-ctr"
    );
    let ro = format!("{}:/data:ro", host.display());
    let out = ok(
        p,
        &[
            &run[..],
            &[
                "-v",
                &ro,
                IMAGE,
                "sh",
                "-c",
                "cat /data/in; echo x > /data/out 2>/dev/null && echo writable; true",
            ],
        ]
        .concat(),
    );
    assert_eq!(out, "from-host");

    // --pids-limit: a fork loop stops at the limit: pid 1 + the inner sh + 8 sleeps = 10;
    // the inner sh then exits, so 9 remain.
    let out = ok(
        p,
        &[
            &run[..],
            &[
                "--pids-limit",
                "10",
                IMAGE,
                "sh",
                "-c",
                "sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
             sleep 30 & done' 2>/dev/null; set -- /proc/[0-9]*; echo $#",
            ],
        ]
        .concat(),
    );
    let n: u32 = out.trim().parse().unwrap_or_else(|_| panic!("{out}"));
    assert_eq!(n, 9, "processes left under --pids-limit 10");

    // --memory: an allocation beyond the limit is OOM-killed (137).
    let o = p.run(
        &[
            &run[..],
            &[
                "--memory",
                "32m",
                "--memory-swap",
                "32m",
                IMAGE,
                "tail",
                "/dev/zero",
            ],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(137), "{}", text(&o));
}

/// The command line of `c` as one shell string (for `script -c`), env included.
fn shell_words(c: &Command) -> String {
    let mut s = String::new();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            s.push_str(&format!(
                "{}='{}' ",
                k.to_string_lossy(),
                v.to_string_lossy()
            ));
        }
    }
    s.push_str(&c.get_program().to_string_lossy());
    for a in c.get_args() {
        s.push_str(&format!(" '{}'", a.to_string_lossy()));
    }
    s
}
