//! docker's HostConfig flags and the container's environment, checked from inside the
//! container: /etc/hostname, /etc/hosts, /etc/resolv.conf written per container (never
//! resolved through: only their text is read), HOSTNAME/TERM/container, its own cgroup in
//! /sys/fs/cgroup, --ulimit, --sysctl, --device, --group-add, --oom-score-adj, --shm-size,
//! --cpuset-cpus, --memory-reservation, --pid/--ipc/--uts, --cidfile, --pull, -e KEY,
//! -v options, --privileged's devices; bad values refused with exit 125 and nothing left.
//! Against a real docker-registry on 127.0.0.1 with the busybox image. Run as root.

mod common;
use common::*;
use std::path::Path;
use std::sync::RwLock;

/// The test that checks nothing is left on the host takes this exclusively.
static HOST: RwLock<()> = RwLock::new(());

fn pulled(tag: &str) -> Setup {
    let s = setup(tag);
    husk_ok(&s.root, &["pull", &s.image]);
    s
}

/// `husk run --rm [opts] IMAGE SCRIPT` (the image's entrypoint is `sh -c`).
fn sh(s: &Setup, opts: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(opts);
    args.extend([s.image.as_str(), script]);
    husk_ok(&s.root, &args)
}

#[test]
fn etc_files_env_and_own_cgroup() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("hf-etc");
    let _rm = RemoveAll(&s.root);
    let o = husk_ok(
        &s.root,
        &[
            "run",
            "--name",
            "web",
            "--network",
            "none",
            "--hostname",
            "box",
            "--add-host",
            "db:192.0.2.7",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "a.test",
            &s.image,
            "cat /etc/hostname; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf; \
             echo ---; echo \"$HOSTNAME $container ${TERM-noterm}\"; hostname; \
             cat /proc/self/cgroup; grep -c ' /sys/fs/cgroup' /proc/self/mountinfo",
        ],
    );
    let parts: Vec<&str> = o.split("---\n").collect();
    assert_eq!(parts.len(), 4, "{o}");
    assert_eq!(parts[0], "box\n");
    let hosts = parts[1];
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(hosts.contains("192.0.2.7\tdb\n"), "{hosts}");
    assert!(hosts.contains("127.0.1.1\tbox web\n"), "{hosts}");
    let resolv = parts[2];
    assert!(
        resolv.contains("search a.test\nnameserver 192.0.2.53\n"),
        "{resolv}"
    );
    assert_eq!(resolv.matches("nameserver").count(), 1, "{resolv}");
    let rest: Vec<&str> = parts[3].lines().collect();
    assert_eq!(&rest[..2], ["box husk noterm", "box"], "{o}");
    // a cgroup namespace: every hierarchy's path is its own root, and /sys/fs/cgroup is
    // mounted (one cgroup mount per v1 hierarchy, or the v2 one)
    let cg = &rest[2..rest.len() - 1];
    assert!(
        !cg.is_empty() && cg.iter().all(|l| l.ends_with(":/")),
        "{o}"
    );
    let cgroup_mounts: usize = rest.last().unwrap().parse().unwrap();
    assert!(cgroup_mounts >= 1, "{o}");

    // the files live in the container's own directory, and go with it
    let dir = &containers(&s.root)[0];
    let hostname = std::fs::read_to_string(dir.join("hostname")).unwrap();
    assert_eq!(hostname, "box\n");
    assert!(dir.join("hosts").exists() && dir.join("resolv.conf").exists());
    husk_ok(&s.root, &["rm", "web"]);
    assert!(!dir.exists());

    // without --dns the settings' nameservers (the test husk.json's: see tests/common),
    // instead of the host's
    let o = sh(&s, &[], "grep nameserver /etc/resolv.conf");
    assert_eq!(o, format!("nameserver {TEST_DNS}\n"));

    // -t: TERM=xterm (detached, read from the log)
    let id = husk_ok(&s.root, &["run", "-d", "-t", &s.image, "echo \"T=$TERM\""]);
    let id = id.trim();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut logs = String::new();
    while !logs.contains("T=") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        logs = husk_ok(&s.root, &["logs", id]);
    }
    assert!(logs.contains("T=xterm"), "{logs}");
}

#[test]
fn limits_devices_sysctls_groups() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("hf-limits");
    // Root here cannot raise a hard limit (no CAP_SYS_RESOURCE): stay below ours.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let hard = lim.rlim_max.min(4096);
    let soft = hard / 2;
    let ulimit = format!("nofile={soft}:{hard}");
    let o = sh(
        &s,
        &[
            "--ulimit",
            &ulimit,
            "--sysctl",
            "kernel.shmmax=123456789",
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=99",
            "--device",
            "/dev/null:/dev/mynull:rw",
            "--group-add",
            "1234",
            "--group-add",
            "wheel",
            "--oom-score-adj",
            "123",
            "--shm-size",
            "2m",
            "--cpuset-cpus",
            "0",
            "-m",
            "64m",
            "--memory-reservation",
            "32m",
        ],
        "grep 'open files' /proc/self/limits; cat /proc/sys/kernel/shmmax; \
         cat /proc/sys/net/ipv4/ip_unprivileged_port_start; \
         stat -c '%t:%T %F' /dev/mynull; echo hi > /dev/mynull && echo wrote; \
         grep Groups /proc/self/status; cat /proc/self/oom_score_adj; \
         df -k /dev/shm | tail -1; grep Cpus_allowed_list /proc/self/status; \
         cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes 2>/dev/null || \
         cat /sys/fs/cgroup/memory.low",
    );
    let l: Vec<&str> = o.lines().collect();
    assert_eq!(l.len(), 10, "{o}");
    let limits: Vec<&str> = l[0].split_whitespace().collect();
    assert_eq!(&limits[3..5], [soft.to_string(), hard.to_string()], "{o}");
    assert_eq!(&l[1..3], ["123456789", "99"]);
    assert_eq!(l[3], "1:3 character special file");
    assert_eq!(l[4], "wrote");
    // the test image's /etc/group has wheel as gid 10
    let groups: Vec<&str> = l[5]["Groups:".len()..].split_whitespace().collect();
    assert!(groups.contains(&"1234") && groups.contains(&"10"), "{o}");
    assert_eq!(l[6], "123");
    assert_eq!(l[7].split_whitespace().nth(1), Some("2048"), "{o}");
    assert_eq!(l[8].split_whitespace().nth(1), Some("0"), "{o}");
    assert_eq!(l[9], (32u64 << 20).to_string(), "{o}");
}

#[test]
fn namespaces_shared_with_host_or_another_container() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("hf-ns");
    let _rm = RemoveAll(&s.root);
    let host_ns = |k: &str| std::fs::read_link(format!("/proc/self/ns/{k}")).unwrap();
    let o = sh(
        &s,
        &["--pid", "host", "--ipc", "host", "--uts", "host"],
        "for n in pid ipc uts; do readlink /proc/self/ns/$n; done; hostname; echo $HOSTNAME",
    );
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let want = format!(
        "{}\n{}\n{}\n{}{}",
        host_ns("pid").display(),
        host_ns("ipc").display(),
        host_ns("uts").display(),
        host_name,
        host_name
    );
    assert_eq!(o, want);
    // by default each is the container's own
    let o = sh(&s, &[], "readlink /proc/self/ns/pid; echo $$");
    assert_ne!(o.lines().next().unwrap(), host_ns("pid").to_str().unwrap());
    assert_eq!(o.lines().nth(1), Some("1"));

    husk_ok(
        &s.root,
        &["run", "-d", "--name", "peer", &s.image, "sleep 60"],
    );
    let peer = husk_ok(
        &s.root,
        &[
            "exec",
            "peer",
            "sh",
            "-c",
            "readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid",
        ],
    );
    let o = sh(
        &s,
        &["--ipc", "container:peer", "--pid", "container:peer"],
        "readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid; ps -o comm | grep -c sleep",
    );
    assert_eq!(o, format!("{peer}1\n"));
    // exec -e KEY takes husk's value too
    let o = std::process::Command::new(HUSK)
        .arg("--root")
        .arg(&s.root)
        .args(["exec", "-e", "HF_EXEC", "-e", "HF_NONE", "peer", "sh", "-c"])
        .arg("echo \"$HF_EXEC ${HF_NONE-unset}\"")
        .env("HF_EXEC", "x y")
        .env_remove("HF_NONE")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "x y unset\n");
    husk_ok(&s.root, &["rm", "-f", "peer"]);
    let (code, _, e) = out(
        &s.root,
        &["run", "--rm", "--ipc", "container:peer", &s.image, "true"],
    );
    assert_eq!(code, 125, "{e}");
    assert!(e.contains("no such container: peer"), "{e}");
}

#[test]
fn cidfile_pull_env_volume_options_privileged_devices() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = setup("hf-misc");
    let _rm = RemoveAll(&s.root);
    // --pull never with nothing in the store: refused, nothing pulled
    let (code, _, e) = out(
        &s.root,
        &["run", "--rm", "--pull", "never", &s.image, "true"],
    );
    assert_eq!(code, 125, "{e}");
    assert!(e.contains("--pull never"), "{e}");
    assert!(husk_ok(&s.root, &["images", "-q"]).trim().is_empty());
    // --pull always asks the registry even with the image stored
    sh(&s, &["--pull", "always"], "true");
    sh(&s, &["--pull", "always"], "true");
    sh(&s, &["--pull", "never"], "true");

    let cid = s.t.path().join("cid");
    let cid_s = cid.display().to_string();
    let id = husk_ok(
        &s.root,
        &["run", "-d", "--cidfile", &cid_s, &s.image, "sleep 30"],
    );
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id.trim());
    let (code, _, e) = out(&s.root, &["run", "--cidfile", &cid_s, &s.image, "true"]);
    assert_eq!(code, 125, "{e}");
    assert!(e.contains("--cidfile") && e.lines().count() == 1, "{e}");
    husk_ok(&s.root, &["rm", "-f", id.trim()]);

    // -e KEY: husk's own value; unset in husk: not set at all
    let o = std::process::Command::new(HUSK)
        .arg("--root")
        .arg(&s.root)
        .args(["run", "--rm", "-e", "HF_SET", "-e", "HF_UNSET", &s.image])
        .arg("echo \"$HF_SET ${HF_UNSET-unset}\"")
        .env("HF_SET", "from husk")
        .env_remove("HF_UNSET")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "from husk unset\n");

    // -v options: ro with docker's SELinux and nocopy options (no-ops here), a propagation
    let src = s.t.path().join("vol");
    std::fs::create_dir(&src).unwrap();
    let v = format!("{}:/data:ro,Z,nocopy,rprivate", src.display());
    let o = sh(
        &s,
        &["-v", &v],
        "touch /data/x 2>/dev/null && echo writable; grep ' /data ' /proc/self/mountinfo",
    );
    let mi = o.trim();
    assert!(!o.contains("writable"), "{o}");
    let fields: Vec<&str> = mi.split(' ').collect();
    assert!(fields[5].split(',').any(|f| f == "ro"), "{mi}");

    // --privileged: the host's device nodes, as docker binds them
    let host_dev = ["/dev/loop-control", "/dev/kmsg", "/dev/fuse", "/dev/tty0"]
        .into_iter()
        .find(|d| Path::new(d).exists())
        .expect("a host device to look for");
    let check = format!("test -c {host_dev} -o -b {host_dev} && echo present || echo absent");
    assert_eq!(sh(&s, &["--privileged"], &check), "present\n");
    assert_eq!(sh(&s, &[], &check), "absent\n");
}

#[test]
fn bad_values_exit_125_with_one_line_and_leave_nothing() {
    let _g = HOST.write().unwrap_or_else(|e| e.into_inner());
    let s = pulled("hf-bad");
    let before = (engine_cgroups(), engine_states());
    for (flag, value) in [
        ("--ulimit", "nofile=x"),
        ("--device", "/no/such/device"),
        ("--sysctl", "kernel.hostname=x"),
        ("--add-host", "db"),
        ("--dns", "not-an-ip"),
        ("--pid", "sometimes"),
        ("--ipc", "container:"),
        ("--cpu-shares", "1"),
        ("--memory-swap", "1g"),
        ("--oom-score-adj", "5000"),
        ("--pull", "sometimes"),
        ("--platform", "amd64"),
        ("-v", "/tmp:/x:bogus"),
        ("--cgroupns", "container:x"),
    ] {
        let (code, o, e) = out(&s.root, &["run", "--rm", flag, value, &s.image, "true"]);
        assert_eq!(code, 125, "{flag} {value}: {e}");
        assert!(
            o.is_empty() && e.lines().count() == 1,
            "{flag} {value}: {e}"
        );
        assert!(e.contains(flag), "{flag} {value}: {e}");
    }
    // a group that is not in the image: found before anything is written
    let (code, _, e) = out(
        &s.root,
        &[
            "run",
            "--rm",
            "--group-add",
            "no-such-group",
            &s.image,
            "true",
        ],
    );
    assert_eq!(code, 125, "{e}");
    assert!(e.contains("--group-add no-such-group"), "{e}");
    // a failure after the cidfile was written (the command cannot be found) takes it away
    let cid = s.t.path().join("cid");
    let (code, _, e) = out(
        &s.root,
        &[
            "run",
            "--rm",
            "--cidfile",
            cid.to_str().unwrap(),
            "--entrypoint",
            "/no/such/cmd",
            &s.image,
        ],
    );
    assert_eq!(code, 127, "{e}");
    assert!(!cid.exists());
    assert!(containers(&s.root).is_empty());
    assert!(mounts_below(&s.root).is_empty());
    assert_eq!((engine_cgroups(), engine_states()), before);
}

#[test]
fn sig_proxy_false_leaves_signals_to_husk() {
    use std::io::BufRead;
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("hf-sigproxy");
    let _rm = RemoveAll(&s.root);
    let script = "trap 'exit 42' TERM; echo up; while :; do sleep 0.1; done";
    let mut run = std::process::Command::new(HUSK)
        .arg("--root")
        .arg(&s.root)
        .args(["run", "--name", "sp", "--sig-proxy=false", &s.image, script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(run.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "up\n");
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    let st = run.wait().unwrap();
    // husk itself took the signal (docker's client would too); the container did not
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGTERM), "{st:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (code, _, e) = out(&s.root, &["exec", "sp", "sh", "-c", "true"]);
        if code == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not running: {e}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    husk_ok(&s.root, &["rm", "-f", "sp"]);
}

#[test]
fn log_opt_rotates_the_log() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("hf-logopt");
    let _rm = RemoveAll(&s.root);
    let id = husk_ok(
        &s.root,
        &[
            "run",
            "-d",
            "--log-opt",
            "max-size=1k",
            "--log-opt",
            "max-file=3",
            &s.image,
            "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo line $i; done",
        ],
    );
    let dir = s.root.join("containers").join(id.trim());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !husk_ok(&s.root, &["logs", id.trim()]).contains("line 200\n") {
        assert!(std::time::Instant::now() < deadline, "no line 200");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // three files at most, none past 1 KiB; the newest lines kept, in order, the oldest gone
    for f in ["ctr.log", "ctr.log.1", "ctr.log.2"] {
        let len = std::fs::metadata(dir.join(f)).unwrap().len();
        assert!(len > 0 && len <= 1024, "{f}: {len}");
    }
    assert!(!dir.join("ctr.log.3").exists());
    let logs = husk_ok(&s.root, &["logs", id.trim()]);
    let nums: Vec<u32> = logs
        .lines()
        .map(|l| l.strip_prefix("line ").unwrap().parse().unwrap())
        .collect();
    assert_eq!(*nums.last().unwrap(), 200);
    assert!(
        nums.len() < 200 && nums.windows(2).all(|w| w[1] == w[0] + 1),
        "{nums:?}"
    );
    let tail = husk_ok(&s.root, &["logs", "--tail", "2", id.trim()]);
    assert_eq!(tail, "line 199\nline 200\n");
}
