//! dockerd (Debian's docker.io 20.10, through its containerd and containerd-shim-runc-v2)
//! drives husk-runtime as `--runtime husk`. One test owns one private dockerd (own data and
//! exec roots under a temp dir, no bridge, no iptables, network none) and stops it at the end.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Dockerd {
    dir: PathBuf,
    child: Child,
}

impl Dockerd {
    fn start() -> Dockerd {
        Dockerd::start_named("main")
    }

    /// A private dockerd of its own; `name` keeps concurrent tests apart.
    fn start_named(name: &str) -> Dockerd {
        assert!(
            Path::new("/usr/sbin/dockerd").exists(),
            "docker.io is required (scripts/deps.sh installs it)"
        );
        let dir = std::env::temp_dir().join(format!("husk-docker-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg(format!("--add-runtime=husk={BIN}"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            // This machine's hard limits are below docker's defaults.
            .args([
                "--default-ulimit",
                "nofile=1024:1024",
                "--default-ulimit",
                "nproc=4096:4096",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.docker(&["info"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.args(["--foreground", "120", "docker", "-H"])
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()))
            .args(args);
        c
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.status.success(), "docker {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        // dockerd unmounts its overlay layers on shutdown; the data root can then go.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const IMAGE: &str = "husk-busybox:test";

#[test]
fn docker_drives_husk_runtime() {
    let d = Dockerd::start();
    let archive = docker_archive(&d.dir, IMAGE);
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    let run = ["run", "--rm", "--runtime", "husk", "--network", "none"];

    // echo, the image's env and workdir, user override.
    let out = d.ok(&[
        &run[..],
        &[IMAGE, "sh", "-c", "echo $FROM_IMAGE; pwd; id -u"],
    ]
    .concat());
    assert_eq!(out.lines().collect::<Vec<_>>(), ["yes", "/tmp", "0"]);
    let out = d.ok(&[
        &run[..],
        &["-u", "65534", "-w", "/", IMAGE, "sh", "-c", "id -u; pwd"],
    ]
    .concat());
    assert_eq!(out.lines().collect::<Vec<_>>(), ["65534", "/"]);

    // Exit codes.
    let o = d.docker(&[&run[..], &[IMAGE, "sh", "-c", "exit 9"]].concat());
    assert_eq!(o.status.code(), Some(9), "{}", text(&o));

    // stdin.
    let mut c = d.cmd(&[&run[..], &["-i", IMAGE, "tr", "a-z", "A-Z"]].concat());
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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

    // -t under `script`, which gives docker a terminal.
    let sock = d.dir.join("docker.sock");
    let script = |cmd: &str| {
        on_a_terminal(&format!(
            "timeout --foreground 60 docker -H unix://{} {cmd}",
            sock.display()
        ))
        .output()
        .unwrap()
    };
    let o = script(&format!(
        "run --rm -t --runtime husk --network none {IMAGE} sh -c 'tty; echo tty-ok'"
    ));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("/dev/pts/0") && out.contains("tty-ok"),
        "{}",
        text(&o)
    );

    // Detached: exec (plain and -t), pause/unpause, top, stop (TERM ignored → KILL), rm.
    let id = d.ok(&[
        "run",
        "-d",
        "--runtime",
        "husk",
        "--network",
        "none",
        IMAGE,
        "sleep",
        "1000",
    ]);
    assert_eq!(d.ok(&["exec", &id, "sh", "-c", "echo exec-ok"]), "exec-ok");
    let o = d.docker(&["exec", &id, "sh", "-c", "exit 4"]);
    assert_eq!(o.status.code(), Some(4));
    let o = script(&format!("exec -t {id} tty"));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("/dev/pts/"),
        "{}",
        text(&o)
    );
    d.ok(&["pause", &id]);
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Status}}", &id]), "paused");
    d.ok(&["unpause", &id]);
    assert!(d.ok(&["top", &id]).contains("sleep 1000"));
    d.ok(&["stop", "-t", "1", &id]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            &id
        ]),
        "exited 137"
    );
    d.ok(&["rm", &id]);
    assert_no_cgroup(&id);

    // kill delivers the signal to the container's pid 1, which traps it.
    let id = d.ok(&[
        "run",
        "-d",
        "--runtime",
        "husk",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 3' TERM; while :; do sleep 0.1; done",
    ]);
    d.ok(&["kill", "-s", "TERM", &id]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.ok(&["inspect", "-f", "{{.State.Status}}", &id]) != "exited" {
        assert!(Instant::now() < deadline, "container ignored docker kill");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]), "3");
    d.ok(&["rm", &id]);
    assert_no_cgroup(&id);
}

/// The first cgroup directory named `id` under the v1 `controller` hierarchy.
fn cgroup_dir(controller: &str, id: &str) -> PathBuf {
    let out = Command::new("find")
        .arg(format!("/sys/fs/cgroup/{controller}"))
        .args(["-maxdepth", "6", "-type", "d", "-name", id])
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(
        found
            .lines()
            .next()
            .unwrap_or_else(|| panic!("no {controller} cgroup for {id}")),
    )
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn docker_update_restart_readonly_binds_and_limits() {
    let d = Dockerd::start_named("limits");
    let archive = docker_archive(&d.dir, IMAGE);
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    let run = ["run", "--rm", "--runtime", "husk", "--network", "none"];

    // update on a running container reaches its cgroup.
    let id = d.ok(&[
        "run",
        "-d",
        "--runtime",
        "husk",
        "--network",
        "none",
        IMAGE,
        "sleep",
        "1000",
    ]);
    d.ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "64m",
        "--pids-limit",
        "20",
        &id,
    ]);
    assert_eq!(
        read_trim(&cgroup_dir("memory", &id).join("memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    assert_eq!(read_trim(&cgroup_dir("pids", &id).join("pids.max")), "20");

    // restart: a new init, running again, exec works in it.
    let pid1 = d.ok(&["inspect", "-f", "{{.State.Pid}}", &id]);
    d.ok(&["restart", "-t", "1", &id]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", &id]),
        "running"
    );
    assert_ne!(d.ok(&["inspect", "-f", "{{.State.Pid}}", &id]), pid1);
    assert_eq!(
        d.ok(&["exec", &id, "echo", "after-restart"]),
        "after-restart"
    );
    d.ok(&["rm", "-f", &id]);
    assert_no_cgroup(&id);

    // --read-only: / refuses writes, a --tmpfs stays writable.
    let out = d.ok(&[
        &run[..],
        &[
            "--read-only",
            "--tmpfs",
            "/tmp",
            IMAGE,
            "sh",
            "-c",
            "touch /x 2>/dev/null && echo root-writable; touch /tmp/y && echo tmp-ok",
        ],
    ]
    .concat());
    assert_eq!(out, "tmp-ok");

    // Bind mounts, read-write and read-only.
    let host = d.dir.join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from-host\n").unwrap();
    let rw = format!("{}:/data", host.display());
    let out = d.ok(&[
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
    .concat());
    assert_eq!(out, "from-host");
    assert_eq!(read_trim(&host.join("out")), "from-ctr");
    let ro = format!("{}:/data:ro", host.display());
    let out = d.ok(&[
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
    .concat());
    assert_eq!(out, "from-host");

    // --pids-limit: a fork loop stops at the limit: pid 1 + the inner sh + 8 sleeps = 10;
    // the inner sh then exits, so 9 remain.
    let out = d.ok(&[
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
    .concat());
    let n: u32 = out.trim().parse().unwrap_or_else(|_| panic!("{out}"));
    assert_eq!(n, 9, "processes left under --pids-limit 10");

    // --memory: an allocation beyond the limit is OOM-killed (137).
    let o = d.docker(
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
