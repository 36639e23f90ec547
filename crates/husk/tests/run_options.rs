//! `husk run` options checked from inside the container — --env-file, --tmpfs, --cpus,
//! --cap-add/--cap-drop, --privileged, --security-opt, --init, --stop-signal — and bad
//! values of each refused with one line and nothing left on the host. Against a real
//! docker-registry on 127.0.0.1, with the busybox image (no C library in it). Run as root.

mod common;
use common::*;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::RwLock;
use std::time::Duration;

/// Tests that check nothing is left on the host take this exclusively; the others hold it
/// shared while they run containers (as in tests/run.rs).
static HOST: RwLock<()> = RwLock::new(());

/// [`setup`] with the image already pulled.
fn pulled(tag: &str) -> Setup {
    let s = setup(tag);
    husk_ok(&s.root, &["pull", &s.image]);
    s
}

fn out_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let o = Command::new(HUSK)
        .arg("--root")
        .arg(root)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `husk run --rm [opts] IMAGE SCRIPT` (the image's entrypoint is `sh -c`).
fn sh(s: &Setup, opts: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(opts);
    args.extend([s.image.as_str(), script]);
    husk_ok(&s.root, &args)
}

/// Cap* lines of /proc/self/status → (Inh, Prm, Eff, Bnd, Amb).
fn caps(status: &str) -> (u64, u64, u64, u64, u64) {
    let get = |k: &str| {
        let l = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:\t")))
            .unwrap_or_else(|| panic!("no {k} in {status}"));
        u64::from_str_radix(l.trim(), 16).unwrap()
    };
    (
        get("CapInh"),
        get("CapPrm"),
        get("CapEff"),
        get("CapBnd"),
        get("CapAmb"),
    )
}

fn status_field<'a>(status: &'a str, k: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{k}:")))
        .unwrap_or_else(|| panic!("no {k} in {status}"))
        .trim()
}

/// Docker's default capabilities: 0xa80425fb.
const DEFAULT_CAPS: u64 = 0xa804_25fb;
const NET_ADMIN: u64 = 1 << 12;
const CHOWN: u64 = 1;
const KILL: u64 = 1 << 5;

/// "All" capabilities: what this process (and so husk) has, bounding and permitted.
fn all_caps() -> u64 {
    let st = std::fs::read_to_string("/proc/self/status").unwrap();
    let (_, p, _, b, _) = caps(&st);
    p & b
}

#[test]
fn env_file_then_e() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("ro-env");
    let f = s.t.path().join("env");
    std::fs::write(
        &f,
        "# a comment\n\n  FOO=from file\nBAR=file\nGREETING=over the image\nHUSK_T_HOST\nHUSK_T_UNSET\nQ=\"kept\"\n",
    )
    .unwrap();
    let f = f.display().to_string();
    let (code, o, e) = out_env(
        &s.root,
        &[
            "run",
            "--rm",
            "--env-file",
            &f,
            "-e",
            "BAR=cli",
            &s.image,
            "echo \"$FOO|$BAR|$GREETING|$HUSK_T_HOST|${HUSK_T_UNSET-unset}|$Q\"",
        ],
        &[("HUSK_T_HOST", "from husk")],
    );
    assert_eq!(code, 0, "{e}");
    assert_eq!(o, "from file|cli|over the image|from husk|unset|\"kept\"\n");
}

#[test]
fn tmpfs_mounts_with_defaults_and_options() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("ro-tmpfs");
    let o = sh(
        &s,
        &[
            "-u",
            "0",
            "--read-only",
            "--tmpfs",
            "/scratch:size=1m,mode=750",
            "--tmpfs",
            "/run/deep",
        ],
        "grep -E ' /(scratch|run/deep) ' /proc/self/mountinfo; stat -c %a /scratch; \
         echo hi > /run/deep/f && cat /run/deep/f; \
         dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null; echo dd=$?",
    );
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines.len(), 5, "{o}");
    let mount = |dst: &str| {
        *lines
            .iter()
            .find(|l| l.split(' ').nth(4) == Some(dst))
            .unwrap_or_else(|| panic!("{dst} not mounted: {o}"))
    };
    for dst in ["/scratch", "/run/deep"] {
        let l = mount(dst);
        let (mnt, sup) = l.split_once(" - ").unwrap();
        let opts = mnt.split(' ').nth(5).unwrap();
        assert!(
            opts.split(',').any(|o| o == "nosuid") && opts.split(',').any(|o| o == "nodev"),
            "{l}"
        );
        assert!(!opts.split(',').any(|o| o == "noexec" || o == "ro"), "{l}");
        assert!(sup.starts_with("tmpfs "), "{l}");
    }
    let sup = mount("/scratch").split_once(" - ").unwrap().1;
    assert!(
        sup.contains("size=1024k") && sup.contains("mode=750"),
        "{sup}"
    );
    assert_eq!(&lines[2..], ["750", "hi", "dd=1"], "{o}");
}

#[test]
fn cpus_set_the_cfs_quota_and_it_holds() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("ro-cpus");
    // The host's cgroup tree, read-only, to read the container's own limit from inside.
    let script = "p=$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3}' /proc/self/cgroup)
        if [ -n \"$p\" ]; then
            cat /sys/fs/cgroup/cpu$p/cpu.cfs_quota_us /sys/fs/cgroup/cpu$p/cpu.cfs_period_us
        else
            cat /sys/fs/cgroup$(awk -F: '$1 == 0 {print $3}' /proc/self/cgroup)/cpu.max
        fi";
    let vol = [
        "--cgroupns",
        "host",
        "-v",
        "/sys/fs/cgroup:/sys/fs/cgroup:ro",
    ];
    for (cpus, quota) in [("0.5", "50000"), ("1", "100000"), ("1.25", "125000")] {
        let mut opts = vec!["--cpus", cpus];
        opts.extend(vol);
        let o = sh(&s, &opts, script);
        let got: Vec<&str> = o.split_whitespace().collect();
        assert_eq!(got, [quota, "100000"], "--cpus {cpus}: {o}");
    }
    // no --cpus: no quota
    let o = sh(&s, &vol, script);
    assert!(o.starts_with("-1") || o.starts_with("max"), "{o}");

    // Enforced: a second of busy loop gets a fifth of a CPU's time, in throttled periods.
    let busy =
        "d=$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print \"/sys/fs/cgroup/cpu\" $3}' /proc/self/cgroup)
        [ -n \"$d\" ] || d=/sys/fs/cgroup$(awk -F: '$1 == 0 {print $3}' /proc/self/cgroup)
        time timeout 1 sh -c 'while :; do :; done'
        grep nr_throttled $d/cpu.stat";
    let mut args = vec!["run", "--rm", "--cpus", "0.2"];
    args.extend(vol);
    args.extend([s.image.as_str(), busy]);
    let (code, o, e) = out(&s.root, &args);
    assert_eq!(code, 0, "{e}");
    let throttled = o
        .trim()
        .strip_prefix("nr_throttled ")
        .map(str::parse::<u64>);
    assert!(matches!(throttled, Some(Ok(n)) if n > 0), "{o}");
    // busybox time: "user\t0m 0.21s"
    let secs = |k: &str| -> f64 {
        let l = e
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{e}"));
        let f: Vec<&str> = l.split_whitespace().collect();
        let min: f64 = f[1].trim_end_matches('m').parse().unwrap();
        min * 60.0 + f[2].trim_end_matches('s').parse::<f64>().unwrap()
    };
    let (real, cpu) = (secs("real"), secs("user") + secs("sys"));
    assert!(real >= 0.9 && cpu < 0.5, "{e}");
}

#[test]
fn cap_add_and_drop() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("ro-caps");
    let st = "cat /proc/self/status";
    // root: the defaults
    let c = caps(&sh(&s, &["-u", "0"], st));
    assert_eq!(c, (0, DEFAULT_CAPS, DEFAULT_CAPS, DEFAULT_CAPS, 0));
    // root: +NET_ADMIN -CHOWN, in bounding, permitted and effective; ambient stays empty
    let want = DEFAULT_CAPS & !CHOWN | NET_ADMIN;
    let c = caps(&sh(
        &s,
        &[
            "-u",
            "0",
            "--cap-add",
            "net_admin",
            "--cap-drop",
            "CAP_CHOWN",
        ],
        st,
    ));
    assert_eq!(c, (0, want, want, want, 0));
    // the image's non-root user: nothing effective by default, as after an execve…
    let c = caps(&sh(&s, &[], st));
    assert_eq!(c, (0, 0, 0, DEFAULT_CAPS, 0));
    // …and the added capability in every set (podman's rule), so it works
    let o = sh(
        &s,
        &["--cap-add", "Net_Admin"],
        "cat /proc/self/status; id -u",
    );
    assert!(o.ends_with("1000\n"), "{o}");
    let c = caps(&o);
    assert_eq!(
        c,
        (
            NET_ADMIN,
            NET_ADMIN,
            NET_ADMIN,
            DEFAULT_CAPS | NET_ADMIN,
            NET_ADMIN
        )
    );
    // ALL
    let c = caps(&sh(
        &s,
        &["-u", "0", "--cap-drop", "all", "--cap-add", "KILL"],
        st,
    ));
    assert_eq!(c, (0, KILL, KILL, KILL, 0));
    let all = all_caps();
    let c = caps(&sh(
        &s,
        &["-u", "0", "--cap-add", "ALL", "--cap-drop", "kill"],
        st,
    ));
    assert_eq!(c, (0, all & !KILL, all & !KILL, all & !KILL, 0));
    // a dropped capability is really gone: chown as root fails without CAP_CHOWN
    let (code, _, e) = out(
        &s.root,
        &[
            "run",
            "--rm",
            "-u",
            "0",
            "--cap-drop",
            "chown",
            &s.image,
            "chown 1000 /srv/version",
        ],
    );
    assert_ne!(code, 0);
    assert!(e.contains("Operation not permitted"), "{e}");
}

#[test]
fn privileged_has_everything_unmasked() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("ro-priv");
    let script = "cat /proc/self/status; echo ---; cat /proc/self/mountinfo; echo ---; \
                  mknod /tmp/kmsg c 1 11 && (: < /tmp/kmsg) 2>/dev/null && echo kmsg-open; \
                  mount -t tmpfs t /opq 2>/dev/null && echo mounted; true";
    let parts = |o: &str| -> (String, String, String) {
        let p: Vec<&str> = o.split("---\n").collect();
        assert_eq!(p.len(), 3, "{o}");
        (p[0].into(), p[1].into(), p[2].into())
    };
    let mounted_at = |mi: &str, dst: &str| {
        mi.lines()
            .find(|l| l.split(' ').nth(4) == Some(dst))
            .map(String::from)
    };
    let (st, mi, rest) = parts(&sh(&s, &["-u", "0", "--privileged"], script));
    let all = all_caps();
    assert_eq!(caps(&st), (0, all, all, all, 0));
    assert_eq!(status_field(&st, "Seccomp"), "0");
    assert_eq!(status_field(&st, "NoNewPrivs"), "0");
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ] {
        assert_eq!(mounted_at(&mi, p), None, "{p} masked or read-only: {mi}");
    }
    let sys = mounted_at(&mi, "/sys").unwrap();
    assert!(sys.split(' ').nth(5).unwrap().starts_with("rw"), "{sys}");
    // the devices cgroup allows every device; mount(2) works
    assert_eq!(rest, "kmsg-open\nmounted\n");

    // the same without --privileged: masked, read-only, refused
    let (st, mi, rest) = parts(&sh(&s, &["-u", "0"], script));
    assert_eq!(caps(&st).2, DEFAULT_CAPS);
    assert!(mounted_at(&mi, "/proc/keys").is_some(), "{mi}");
    assert!(mounted_at(&mi, "/proc/sys").is_some(), "{mi}");
    let sys = mounted_at(&mi, "/sys").unwrap();
    assert!(sys.split(' ').nth(5).unwrap().starts_with("ro"), "{sys}");
    assert_eq!(rest, "");
}

/// An OCI-form profile: mkdir fails with EPERM.
fn oci_profile() -> serde_json::Value {
    serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    })
}

/// A Docker-form profile: archMap, `name`, comments; mkdir refused unless the container
/// has CAP_SYS_ADMIN (excludes.caps), symlink refused from Linux 3.0 on, link only from
/// Linux 999.0 (includes.minKernel), as dockerd reads it.
fn docker_profile() -> serde_json::Value {
    serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
        ],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "comment": "only without CAP_SYS_ADMIN", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"name": "symlink", "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "includes": {"minKernel": "3.0"}},
            {"name": "symlinkat", "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "includes": {"minKernel": "3.0"}},
            {"names": ["link", "linkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "includes": {"minKernel": "999.0"}}
        ]
    })
}

#[test]
fn security_opts_no_new_privileges_and_seccomp() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("ro-secopt");
    let st = "cat /proc/self/status";
    let nnp = |opts: &[&str]| status_field(&sh(&s, opts, st), "NoNewPrivs").to_string();
    // husk run's default is on; the option states it, =false turns it off
    assert_eq!(nnp(&[]), "1");
    assert_eq!(nnp(&["--security-opt", "no-new-privileges"]), "1");
    assert_eq!(nnp(&["--security-opt", "no-new-privileges=false"]), "0");
    assert_eq!(nnp(&["--security-opt", "no-new-privileges:true"]), "1");
    assert_eq!(
        nnp(&["--privileged", "--security-opt", "no-new-privileges"]),
        "1"
    );

    let write = |name: &str, v: &serde_json::Value| {
        let p = s.t.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        format!("seccomp={}", p.display())
    };
    let try_mkdir = "grep Seccomp: /proc/self/status; mkdir /tmp/d 2>/dev/null; echo mkdir=$?";
    let oci = write("oci.json", &oci_profile());
    let o = sh(&s, &["-u", "0", "--security-opt", &oci], try_mkdir);
    assert_eq!(o, "Seccomp:\t2\nmkdir=1\n");
    // the default profile (tests/seccomp_default.rs) lets mkdir through; unconfined: none
    let o = sh(&s, &["-u", "0"], try_mkdir);
    assert_eq!(o, "Seccomp:\t2\nmkdir=0\n");
    let o = sh(
        &s,
        &["-u", "0", "--security-opt", "seccomp=unconfined"],
        try_mkdir,
    );
    assert_eq!(o, "Seccomp:\t0\nmkdir=0\n");
    // Docker's form: the mkdir rule applies only without CAP_SYS_ADMIN
    let docker = write("docker.json", &docker_profile());
    let o = sh(
        &s,
        &["-u", "0", "--security-opt", &docker],
        &format!(
            "{try_mkdir}; ln -s a /tmp/s 2>/dev/null; echo symlink=$?; \
             ln /srv/version /tmp/h; echo link=$?"
        ),
    );
    assert_eq!(o, "Seccomp:\t2\nmkdir=1\nsymlink=1\nlink=0\n");
    let o = sh(
        &s,
        &[
            "-u",
            "0",
            "--cap-add",
            "SYS_ADMIN",
            "--security-opt",
            &docker,
        ],
        try_mkdir,
    );
    assert_eq!(o, "Seccomp:\t2\nmkdir=0\n");
    // Docker's default profile (as husk-runtime's tests use it): busybox works, unshare not
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../husk-runtime/tests/fixtures/docker-default-seccomp.json"
    ))
    .unwrap();
    let dflt = write("default.json", &fixture);
    let o = sh(
        &s,
        &["-u", "0", "--cap-add", "SYS_ADMIN", "--security-opt", &dflt],
        "ls / >/dev/null && echo ok; unshare -m true 2>/dev/null; echo unshare=$?",
    );
    assert_eq!(o, "ok\nunshare=1\n");
}

/// `--security-opt apparmor=`: on this host AppArmor is off, so no profile is applied by
/// default and `unconfined` runs; a named profile reaches the runtime, which refuses it
/// with one line rather than run the container unconfined. (Confinement itself, and the
/// husk-default profile, are tested in the VM: husk-runtime's tests/apparmor.rs.)
#[test]
fn security_opt_apparmor_reaches_the_runtime() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let lsms = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    assert!(
        !lsms.contains("apparmor"),
        "this test expects a host without AppArmor"
    );
    let s = pulled("ro-apparmor");
    assert_eq!(sh(&s, &[], "echo ok"), "ok\n");
    assert_eq!(
        sh(&s, &["--security-opt", "apparmor=unconfined"], "echo ok"),
        "ok\n"
    );
    let out = husk(
        &s.root,
        &[
            "run",
            "--rm",
            "--security-opt",
            "apparmor=husk-nope",
            &s.image,
            "true",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apparmor is not an active LSM"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Read stdout lines of a running `husk run` until one equals `want`.
fn wait_line(r: &mut impl BufRead, want: &str) {
    let mut seen = String::new();
    loop {
        let mut l = String::new();
        assert_ne!(
            r.read_line(&mut l).unwrap(),
            0,
            "EOF before {want:?}: {seen}"
        );
        if l.trim_end() == want {
            return;
        }
        seen.push_str(&l);
    }
}

/// Host pid of the container's PID 1: the one child of the `husk run` process.
fn init_pid_of(husk_pid: u32) -> i32 {
    let kids =
        std::fs::read_to_string(format!("/proc/{husk_pid}/task/{husk_pid}/children")).unwrap();
    kids.split_whitespace().next().unwrap().parse().unwrap()
}

/// (pid, state) of each child of `pid`, zombies included.
fn children_states(pid: i32) -> Vec<(i32, char)> {
    let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    kids.split_whitespace()
        .map(|k| {
            let stat = std::fs::read_to_string(format!("/proc/{k}/stat")).unwrap();
            let state = stat.rsplit_once(") ").unwrap().1.chars().next().unwrap();
            (k.parse().unwrap(), state)
        })
        .collect()
}

fn spawn_run(s: &Setup, opts: &[&str], script: &str) -> std::process::Child {
    Command::new(HUSK)
        .arg("--root")
        .arg(&s.root)
        .args(["run", "--rm"])
        .args(opts)
        .args([s.image.as_str(), script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn init_reaps_orphans_forwards_signals_and_passes_exit_codes() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("ro-init");
    // husk-init is PID 1 (a static binary: the image has no libc), the command its child;
    // --read-only is no obstacle (it lives on the container's /dev tmpfs)
    let o = sh(
        &s,
        &["--init", "--read-only"],
        "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $PPID",
    );
    assert!(o.starts_with("/dev/husk-init -- /bin/sh -c tr "), "{o}");
    assert!(o.ends_with("\n1\n"), "{o}");

    // exit codes pass through, 128+N for a signal
    for (script, want) in [("exit 7", 7), ("true", 0), ("kill -9 $$", 137)] {
        let (code, _, e) = out(&s.root, &["run", "--rm", "--init", &s.image, script]);
        assert_eq!(code, want, "{script}: {e}");
    }
    // a command that is not there: 127, as docker-init/tini
    let (code, _, e) = out(
        &s.root,
        &[
            "run",
            "--rm",
            "--init",
            "--entrypoint",
            "/no/such",
            &s.image,
        ],
    );
    assert_eq!(code, 127, "{e}");
    assert!(e.contains("/no/such"), "{e}");

    // An orphan re-parented to PID 1 exits: husk-init reaps it; seen from inside…
    let o = sh(
        &s,
        &["--init"],
        "(sleep 0.1 &); sleep 1; for f in /proc/[0-9]*/stat; do cat $f; echo; done",
    );
    let states: Vec<char> = o
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.rsplit_once(") ").unwrap().1.chars().next().unwrap())
        .collect();
    assert!(states.len() >= 2, "{o}"); // husk-init, sh (cat runs inside sh)
    assert!(!states.contains(&'Z'), "zombie: {o}");

    // …and from the host, against a PID 1 that never waits (the command exec'd `sleep`)
    let script = "(sleep 0.1 &); echo ready; exec sleep 3";
    let mut plain = spawn_run(&s, &[], script);
    let mut with = spawn_run(&s, &["--init"], script);
    for c in [&mut plain, &mut with] {
        wait_line(
            &mut std::io::BufReader::new(c.stdout.as_mut().unwrap()),
            "ready",
        );
    }
    std::thread::sleep(Duration::from_millis(1000));
    let plain_kids = children_states(init_pid_of(plain.id()));
    assert_eq!(plain_kids.len(), 1, "{plain_kids:?}");
    assert_eq!(
        plain_kids[0].1, 'Z',
        "without --init the orphan stays a zombie"
    );
    let with_init = init_pid_of(with.id());
    let with_kids = children_states(with_init);
    assert_eq!(with_kids.len(), 1, "{with_kids:?}");
    assert_ne!(with_kids[0].1, 'Z', "{with_kids:?}");
    let cmdline = std::fs::read(format!("/proc/{with_init}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"/dev/husk-init\0--\0"));

    // SIGTERM to husk → husk-init → the command (sleep: killed, 128+15)
    unsafe { libc::kill(with.id() as i32, libc::SIGTERM) };
    assert_eq!(with.wait().unwrap().code(), Some(143));
    assert_eq!(plain.wait().unwrap().code(), Some(0));

    // a trap in the command sees the forwarded signal
    let mut c = spawn_run(
        &s,
        &["--init"],
        "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done",
    );
    wait_line(
        &mut std::io::BufReader::new(c.stdout.as_mut().unwrap()),
        "ready",
    );
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    assert_eq!(c.wait().unwrap().code(), Some(42));
    assert!(containers(&s.root).is_empty());
}

/// container.json of the container named `name`.
fn meta_of(root: &Path, name: &str) -> serde_json::Value {
    containers(root)
        .into_iter()
        .map(|c| {
            serde_json::from_slice::<serde_json::Value>(
                &std::fs::read(c.join("container.json")).unwrap(),
            )
            .unwrap()
        })
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

#[test]
fn stop_signal_is_recorded_and_used_by_stop() {
    let _g = HOST.read().unwrap_or_else(|e| e.into_inner());
    let s = pulled("ro-stopsig");
    let recorded = |opts: &[&str]| -> i64 {
        let name = format!("c{}", containers(&s.root).len());
        let mut args = vec!["run", "--name", &name];
        args.extend_from_slice(opts);
        args.extend([s.image.as_str(), "true"]);
        husk_ok(&s.root, &args);
        meta_of(&s.root, &name)["stop_signal"].as_i64().unwrap()
    };
    assert_eq!(recorded(&[]), libc::SIGTERM as i64);
    assert_eq!(recorded(&["--stop-signal", "usr1"]), libc::SIGUSR1 as i64);
    assert_eq!(
        recorded(&["--stop-signal", "SIGQUIT"]),
        libc::SIGQUIT as i64
    );
    assert_eq!(recorded(&["--stop-signal", "9"]), 9);
    assert_eq!(
        recorded(&["--stop-signal", "RTMIN+3"]),
        (libc::SIGRTMIN() + 3) as i64
    );
    // `husk stop` sends it (through husk-init too): the command traps USR1 and exits 7
    let script = "trap 'exit 7' USR1; while :; do sleep 0.1; done";
    for init in [&[][..], &["--init"][..]] {
        let name = format!("stopme{}", init.len());
        let mut args = vec!["run", "-d", "--name", &name, "--stop-signal", "USR1"];
        args.extend_from_slice(init);
        args.extend([s.image.as_str(), script]);
        husk_ok(&s.root, &args);
        husk_ok(&s.root, &["stop", "-t", "20", &name]);
        assert_eq!(meta_of(&s.root, &name)["exit_code"], 7, "{init:?}");
        husk_ok(&s.root, &["rm", &name]);
    }
}

#[test]
fn bad_values_fail_with_one_line_and_leave_nothing() {
    let _g = HOST.write().unwrap_or_else(|e| e.into_inner());
    let s = pulled("ro-bad");
    let cg_before = engine_cgroups();
    let st_before = engine_states();
    let dir = s.t.path();
    let bad_env = dir.join("bad.env");
    std::fs::write(&bad_env, "OK=1\nNOT OK=2\n").unwrap();
    let bad_profile = dir.join("bad-seccomp.json");
    std::fs::write(
        &bad_profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
    )
    .unwrap();
    let not_profile = dir.join("not-seccomp.json");
    std::fs::write(&not_profile, "[1, 2]").unwrap();
    let (bad_env, bad_profile, not_profile) = (
        bad_env.display().to_string(),
        format!("seccomp={}", bad_profile.display()),
        format!("seccomp={}", not_profile.display()),
    );
    let too_many = (std::thread::available_parallelism().unwrap().get() * 64).to_string();
    // (option, value, what stderr must name)
    let cases: Vec<(&str, &str, &str)> = vec![
        ("--cap-add", "CAP_FOO", "CAP_FOO"),
        ("--cap-add", "net_admin,bogus", "bogus"),
        ("--cap-drop", "sys_nothing", "sys_nothing"),
        ("--cpus", "0", "--cpus \"0\""),
        ("--cpus", "-1.5", "-1.5"),
        ("--cpus", too_many.as_str(), too_many.as_str()),
        ("--cpus", "lots", "lots"),
        ("--env-file", "/no/such/env-file", "/no/such/env-file"),
        ("--env-file", bad_env.as_str(), "NOT OK"),
        ("--tmpfs", "relative/dir", "relative/dir"),
        ("--tmpfs", "/", "--tmpfs \"/\""),
        ("--tmpfs", "/x:bogus=1", "bogus=1"),
        ("--tmpfs", "/data:size=1m", "/data"), // -v /data below: a second mount there
        ("--security-opt", "label=disable", "label=disable"),
        ("--security-opt", "seccomp=/no/such.json", "/no/such.json"),
        ("--security-opt", bad_profile.as_str(), "bad-seccomp.json"),
        ("--security-opt", not_profile.as_str(), "not-seccomp.json"),
        ("--stop-signal", "SIGFOO", "SIGFOO"),
        // passes husk's checks, refused by the kernel once the rootfs is mounted
        ("--tmpfs", "/t:size=lots", "/t"),
    ];
    let host_dir = dir.join("vol");
    std::fs::create_dir_all(&host_dir).unwrap();
    let vol = format!("{}:/data", host_dir.display());
    for (opt, val, needle) in &cases {
        let args = ["run", "--rm", "-v", &vol, opt, val, &s.image, "echo", "ran"];
        let (code, o, e) = out(&s.root, &args);
        assert_ne!(code, 0, "{opt} {val}: {o}");
        assert_eq!(o, "", "{opt} {val}");
        assert_eq!(e.lines().count(), 1, "{opt} {val}: {e}");
        assert!(e.starts_with("husk: run "), "{opt} {val}: {e}");
        assert!(e.contains(needle), "{opt} {val}: {e}");
        assert!(containers(&s.root).is_empty(), "{opt} {val}");
        assert!(mounts_below(&s.root).is_empty(), "{opt} {val}");
        assert_eq!(engine_cgroups(), cg_before, "{opt} {val}");
        assert_eq!(engine_states(), st_before, "{opt} {val}");
    }
    // --init with a volume on /dev (where husk-init goes)
    let devvol = format!("{}:/dev", host_dir.display());
    let (code, _, e) = out(
        &s.root,
        &["run", "--rm", "--init", "-v", &devvol, &s.image, "true"],
    );
    assert_ne!(code, 0);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("--init"), "{e}");
    assert!(std::fs::read_dir(&host_dir).unwrap().next().is_none());
    assert!(containers(&s.root).is_empty());
}
