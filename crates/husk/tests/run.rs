//! End-to-end tests of `husk run` against a real docker-registry on 127.0.0.1: pulls, the
//! overlay rootfs, options, exit codes and cleanup. Run as root.

mod common;
use common::*;
use std::path::Path;
use std::sync::RwLock;

/// Tests that check nothing is left on the host (cgroups, runtime state) take this
/// exclusively; every other test holds it shared while it runs containers.
static HOST: RwLock<()> = RwLock::new(());

/// lowerdir= of the root mount in a container's /proc/self/mountinfo.
fn root_lowerdir(mountinfo: &str) -> String {
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/") && l.contains(" overlay "))
        .unwrap_or_else(|| panic!("no overlay root in {mountinfo}"));
    line.split(',')
        .find_map(|o| o.strip_prefix("lowerdir="))
        .unwrap()
        .to_string()
}

#[test]
fn run_pulls_then_runs_with_the_image_config() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = setup("run-basic");
    // not pulled yet: run pulls it; the image's Entrypoint (sh -c), Cmd and Env apply
    assert_eq!(husk_ok(&s.root, &["run", "--rm", &s.image]), "hello\n");
    assert!(husk_ok(&s.root, &["images"]).contains("busybox"));
    // CMD replaces the image's Cmd, after its Entrypoint
    let o = husk_ok(&s.root, &["run", "--rm", &s.image, "pwd; id -u; id -g"]);
    assert_eq!(o, "/srv\n1000\n1000\n");
    // echo hi with the entrypoint cleared
    let o = husk_ok(
        &s.root,
        &["run", "--rm", "--entrypoint", "", &s.image, "echo", "hi"],
    );
    assert_eq!(o, "hi\n");
    let o = husk_ok(
        &s.root,
        &["run", "--rm", "--entrypoint", "/bin/echo", &s.image, "hi"],
    );
    assert_eq!(o, "hi\n");
    assert!(containers(&s.root).is_empty());
}

#[test]
fn run_options_env_workdir_user_hostname() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = setup("run-opts");
    let o = husk_ok(
        &s.root,
        &[
            "run",
            "--rm",
            "-e",
            "FOO=bar",
            "-e",
            "GREETING=over",
            "-w",
            "/tmp",
            "-u",
            "65534",
            "--hostname",
            "box1",
            &s.image,
            "echo $FOO $GREETING; pwd; id -u; cat /proc/sys/kernel/hostname",
        ],
    );
    assert_eq!(o, "bar over\n/tmp\n65534\nbox1\n");
    // the hostname defaults to the name
    let o = husk_ok(
        &s.root,
        &[
            "run",
            "--rm",
            "--name",
            "web-1",
            &s.image,
            "cat /proc/sys/kernel/hostname",
        ],
    );
    assert_eq!(o, "web-1\n");
    // -i: the process reads our stdin (without it, /dev/null: tests/detached.rs)
    let (code, o, e) = out_with_stdin(
        &s.root,
        &["run", "--rm", "-i", &s.image, "cat; echo eof"],
        b"line 1\nline 2\n",
    );
    assert_eq!((code, o.as_str()), (0, "line 1\nline 2\neof\n"), "{e}");
    // a named user from the image's /etc/passwd, with its group
    let o = husk_ok(
        &s.root,
        &["run", "--rm", "-u", "root", &s.image, "id -u; id -g"],
    );
    assert_eq!(o, "0\n0\n");
    // own network namespace: only lo; --network host: the host's interfaces
    let o = husk_ok(
        &s.root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &s.image,
            "cat /proc/net/dev",
        ],
    );
    assert_eq!(o.lines().count(), 3, "{o}");
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    let o = husk_ok(
        &s.root,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            &s.image,
            "cat /proc/net/dev",
        ],
    );
    assert_eq!(o.lines().count(), host.lines().count(), "{o}");
}

#[test]
fn run_exit_codes_pass_through() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = setup("run-exit");
    let (code, _, _) = out(&s.root, &["run", "--rm", &s.image, "exit 7"]);
    assert_eq!(code, 7);
    let (code, _, _) = out(&s.root, &["run", "--rm", &s.image, "true"]);
    assert_eq!(code, 0);
}

#[test]
fn run_volumes_and_read_only_root() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = setup("run-vol");
    let host = s.root.parent().unwrap().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "from host\n").unwrap();
    let vol = format!("{}:/data:ro", host.display());
    let (code, o, e) = out(
        &s.root,
        &[
            "run",
            "--rm",
            "-u",
            "0",
            "-v",
            &vol,
            &s.image,
            "cat /data/f; echo x > /data/g",
        ],
    );
    assert_ne!(code, 0);
    assert_eq!(o, "from host\n");
    assert!(e.contains("Read-only file system"), "{e}");
    assert!(!host.join("g").exists());
    // read-write bind: the write reaches the host
    let vol = format!("{}:/data", host.display());
    husk_ok(
        &s.root,
        &[
            "run",
            "--rm",
            "-u",
            "0",
            "-v",
            &vol,
            &s.image,
            "echo x > /data/g",
        ],
    );
    assert_eq!(std::fs::read_to_string(host.join("g")).unwrap(), "x\n");

    let (code, _, e) = out(
        &s.root,
        &[
            "run",
            "--rm",
            "-u",
            "0",
            "--read-only",
            &s.image,
            "echo x > /newfile",
        ],
    );
    assert_ne!(code, 0);
    assert!(e.contains("Read-only file system"), "{e}");
    // without --read-only the same write works
    husk_ok(
        &s.root,
        &["run", "--rm", "-u", "0", &s.image, "echo x > /newfile"],
    );
}

#[test]
fn run_rm_leaves_nothing_and_kept_containers_are_unmounted() {
    let _g = HOST.write().unwrap_or_else(|e| e.into_inner());
    let s = setup("run-rm");
    let o = husk_ok(
        &s.root,
        &[
            "run",
            "--rm",
            "--cgroupns",
            "host",
            &s.image,
            "cat /proc/self/cgroup",
        ],
    );
    let cg = cgroup_dir(&o, "pids");
    let id = cg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(cg.parent().unwrap().ends_with("husk-engine"), "{o}");
    assert!(!cg.exists());
    assert!(!engine_cgroups().iter().any(|c| c.ends_with(&id)));
    assert!(!Path::new("/run/husk-engine").join(&id).exists());
    assert!(containers(&s.root).is_empty());
    assert!(
        mounts_below(&s.root).is_empty(),
        "{:?}",
        mounts_below(&s.root)
    );

    // without --rm the container's dir stays (exit code recorded), unmounted
    let (code, _, _) = out(&s.root, &["run", "--name", "keep", &s.image, "exit 3"]);
    assert_eq!(code, 3);
    let c = containers(&s.root);
    assert_eq!(c.len(), 1);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c[0].join("container.json")).unwrap()).unwrap();
    assert_eq!(meta["name"], "keep");
    assert_eq!(meta["exit_code"], 3);
    assert_eq!(meta["image"], s.image);
    assert!(c[0].join("config.json").exists() && c[0].join("upper").is_dir());
    assert!(mounts_below(&s.root).is_empty());
    let id = c[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(!engine_cgroups().contains(&id));
    assert!(!engine_states().contains(&id));
    // the name is taken now
    let (code, _, e) = out(&s.root, &["run", "--name", "keep", &s.image, "true"]);
    assert_ne!(code, 0);
    assert!(e.contains("already in use"), "{e}");
}

#[test]
fn run_errors_leave_nothing_behind() {
    let _g = HOST.write().unwrap_or_else(|e| e.into_inner());
    let s = setup("run-err");
    let cg_before = engine_cgroups();
    let st_before = engine_states();
    // A kept container whose name the last case asks for again.
    husk_ok(&s.root, &["run", "--name", "taken", &s.image, "true"]);
    let before = containers(&s.root);
    let bad_image = format!("{}/nope:latest", s.image.split('/').next().unwrap());
    let dir = s.t.path().display().to_string();
    // (`-v DIR` alone is an anonymous volume at DIR, as docker's: not an error)
    let (vol_no_dst, vol_rel, vol_mode) = (
        format!("{dir}:/data:ro:extra"),
        format!("{dir}:data"),
        format!("{dir}:/data:bogus"),
    );
    // (arguments, what the one line must name)
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", &bad_image, "true"], "nope"),
        (
            vec!["run", "--entrypoint", "/no/such/binary", &s.image],
            "/no/such/binary",
        ),
        (vec!["run", "-m", "1k", &s.image, "true"], "1k"),
        (vec!["run", "-w", "relative", &s.image, "true"], "relative"),
        (
            vec!["run", "-u", "nosuchuser", &s.image, "true"],
            "nosuchuser",
        ),
        (
            vec!["run", "-v", "/no/such/dir:/data", &s.image, "true"],
            "/no/such/dir",
        ),
        (vec!["run", "-v", &vol_no_dst, &s.image, "true"], "-v"),
        (vec!["run", "-v", &vol_rel, &s.image, "true"], "absolute"),
        (vec!["run", "-v", &vol_mode, &s.image, "true"], "bogus"),
        (vec!["run", "--memory", "lots", &s.image, "true"], "lots"),
        (vec!["run", "--memory", "1.5g", &s.image, "true"], "1.5g"),
        (vec!["run", "-m", "0", &s.image, "true"], "--memory"),
        (vec!["run", "--network", "a:b", &s.image, "true"], "a:b"),
        (vec!["run", "--name", "a/b", &s.image, "true"], "a/b"),
        (
            vec!["run", "--name", "taken", &s.image, "true"],
            "\"taken\" is already in use",
        ),
    ];
    for (args, needle) in &cases {
        let (code, _, e) = out(&s.root, args);
        // docker's: 127 for a command not found, 125 for any failure of husk's own.
        let want = if *needle == "/no/such/binary" {
            127
        } else {
            125
        };
        assert_eq!(code, want, "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.starts_with("husk: run "), "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: {e}");
        assert_eq!(containers(&s.root), before, "{args:?}");
        assert!(mounts_below(&s.root).is_empty(), "{args:?}");
        assert_eq!(engine_cgroups(), cg_before, "{args:?}");
        assert_eq!(engine_states(), st_before, "{args:?}");
    }
}

#[test]
fn two_containers_share_lowers_but_not_writes() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = setup("run-share");
    let a = husk_ok(
        &s.root,
        &[
            "run",
            "-u",
            "0",
            &s.image,
            "echo mine > /srv/mine; cat /proc/self/mountinfo",
        ],
    );
    let b = husk_ok(
        &s.root,
        &[
            "run",
            "-u",
            "0",
            &s.image,
            "cat /srv/mine 2>/dev/null || echo absent; cat /srv/version; cat /proc/self/mountinfo",
        ],
    );
    assert!(b.starts_with("absent\n3\n"), "{b}");
    let (la, lb) = (root_lowerdir(&a), root_lowerdir(&b));
    assert_eq!(la, lb);
    assert_eq!(la.split(':').count(), 3);
    let inspect = husk_ok(&s.root, &["image", "inspect", &s.image]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(la, v[0]["GraphDriver"]["Data"]["LowerDir"], "{inspect}");
    // the write sits in the first container's upper dir only
    let c = containers(&s.root);
    assert_eq!(c.len(), 2);
    let with: Vec<_> = c
        .iter()
        .filter(|d| d.join("upper/srv/mine").exists())
        .collect();
    assert_eq!(with.len(), 1);
}

/// Whether the root overlay in a container's /proc/self/mountinfo is mounted `volatile`.
fn root_volatile(mountinfo: &str) -> bool {
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/") && l.contains(" overlay "))
        .unwrap_or_else(|| panic!("no overlay root in {mountinfo}"));
    line.rsplit(' ')
        .next()
        .unwrap()
        .split(',')
        // 6.x kernels show it as fsync=volatile
        .any(|o| o == "volatile" || o == "fsync=volatile")
}

#[test]
fn run_rm_mounts_its_throwaway_layer_volatile_and_nothing_else() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = setup("run-volatile");
    // --rm: the upper dir dies with the run, so its filesystem is never synced for it
    let o = husk_ok(
        &s.root,
        &["run", "--rm", &s.image, "cat /proc/self/mountinfo"],
    );
    assert!(root_volatile(&o), "{o}");
    // a kept container's layer is not, and mounts again at its next start
    let o = husk_ok(
        &s.root,
        &[
            "run",
            "--name",
            "kept",
            &s.image,
            "cat /proc/self/mountinfo",
        ],
    );
    assert!(!root_volatile(&o), "{o}");
    let o = husk_ok(&s.root, &["start", "-a", "kept"]);
    assert!(!root_volatile(&o), "{o}");
    // create --rm mounts at start, not at create: an ordinary mount
    husk_ok(
        &s.root,
        &[
            "create",
            "--rm",
            "--name",
            "later",
            &s.image,
            "cat /proc/self/mountinfo",
        ],
    );
    let o = husk_ok(&s.root, &["start", "-a", "later"]);
    assert!(!root_volatile(&o), "{o}");
    assert!(
        mounts_below(&s.root).is_empty(),
        "{:?}",
        mounts_below(&s.root)
    );
}

/// Read stdout lines of a running `husk run` until one equals `want`.
fn wait_line(r: &mut impl std::io::BufRead, want: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut l = String::new();
        assert_ne!(
            r.read_line(&mut l).unwrap(),
            0,
            "EOF before {want:?}: {seen}"
        );
        if l.trim_end() == want {
            return seen;
        }
        seen.push_str(&l);
    }
}

fn init_pid_of(husk_pid: u32) -> i32 {
    let kids =
        std::fs::read_to_string(format!("/proc/{husk_pid}/task/{husk_pid}/children")).unwrap();
    kids.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn run_forwards_signals_applies_limits_and_reports_kills() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = setup("run-sig");
    husk_ok(&s.root, &["pull", &s.image]);
    let script = "trap 'exit 42' TERM; cat /proc/self/cgroup; echo ready; while :; do :; done";
    let mut child = std::process::Command::new(HUSK)
        .arg("--root")
        .arg(&s.root)
        .args([
            "run",
            "--rm",
            // the host's cgroup paths in /proc/self/cgroup, to find its cgroup from here
            "--cgroupns",
            "host",
            "--memory",
            "64m",
            "--pids-limit",
            "17",
            &s.image,
            script,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
    let cg = wait_line(&mut r, "ready");
    let pids = std::fs::read_to_string(cgroup_dir(&cg, "pids").join("pids.max")).unwrap();
    assert_eq!(pids.trim(), "17");
    let mem = cgroup_dir(&cg, "memory");
    let mem = std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(mem.join("memory.max")))
        .unwrap();
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(42));

    // The limits hold inside: 64 MB in a shell variable is more than --memory 16m allows
    // (the kernel kills it: 128 + SIGKILL) and fine under 256m; with --pids-limit 4 the
    // fifth process cannot be forked.
    let hog = "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo kept ${#x}";
    let (code, o, _) = out(&s.root, &["run", "--rm", "-m", "16m", &s.image, hog]);
    assert_eq!((code, o.as_str()), (137, ""));
    let (code, o, e) = out(&s.root, &["run", "--rm", "-m", "256m", &s.image, hog]);
    assert_eq!((code, o.as_str()), (0, "kept 64000000\n"), "{e}");
    let forks = "for i in 1 2 3 4 5 6; do sleep 1 & done; wait; echo waited";
    let (code, o, e) = out(
        &s.root,
        &["run", "--rm", "--pids-limit", "4", &s.image, forks],
    );
    assert_ne!(code, 0, "{o}");
    assert!(e.contains("can't fork"), "{e}");
    husk_ok(
        &s.root,
        &["run", "--rm", "--pids-limit", "8", &s.image, forks],
    );

    // killed from outside: 128+9
    let mut child = std::process::Command::new(HUSK)
        .arg("--root")
        .arg(&s.root)
        .args(["run", "--rm", &s.image, "echo ready; while :; do :; done"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
    wait_line(&mut r, "ready");
    unsafe { libc::kill(init_pid_of(child.id()), libc::SIGKILL) };
    assert_eq!(child.wait().unwrap().code(), Some(137));
    assert!(containers(&s.root).is_empty());
}

/// Where overlay cannot be mounted the layers are copied, flattened, into the container's
/// rootfs (HUSK_ROOTFS=copy forces it): the same tree as the overlay gives, owners and
/// modes included, no overlay mount, and nothing left after --rm.
#[test]
fn run_falls_back_to_a_flattened_copy_of_the_layers() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = setup("run-copy");
    let script = "cat /srv/version; ls /opq; test -e /etc/remove-me || echo removed; \
                  ls -ln /srv/tool; grep ' / ' /proc/self/mountinfo";
    let o = std::process::Command::new(HUSK)
        .arg("--root")
        .arg(&s.root)
        .args(["run", "--rm", "-u", "0", &s.image, script])
        .env("HUSK_ROOTFS", "copy")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["3", "c", "removed"], "{out}");
    assert!(
        lines[3].starts_with("-rwsr-xr-x") && lines[3].contains(" 1000 "),
        "{out}"
    );
    // The first mountinfo line is the root: a bind of the copy, no overlay.
    assert!(
        lines[4].contains("/rootfs / ") && !lines[4].contains(" overlay "),
        "the root is no overlay: {out}"
    );
    assert!(containers(&s.root).is_empty());
    assert!(mounts_below(&s.root).is_empty());
}
