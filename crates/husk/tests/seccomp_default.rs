//! husk's default seccomp profile, checked from inside containers and against podman on
//! the same machine: a small static prober (tests/seccomp/probe.c, built here with
//! `cc -static`) makes one call per row of TABLE and prints what it got; it runs under
//! husk and under podman (runc) with the same capability sets — docker's defaults, plus
//! SYS_PTRACE, plus SYS_ADMIN, and unconfined — and each result must be the table's, which
//! is podman's except where a row says why husk differs. Also: `exec` runs filtered,
//! `--privileged` and `seccomp=unconfined` are unfiltered, `husk info` names the profile.
//! Root only; every run uses `--network none`.

mod common;
use common::*;
use std::collections::BTreeMap;

/// The capability sets each probe runs with, as the columns of TABLE.
const CONFIGS: [(&str, &[&str], &[&str]); 4] = [
    ("default", &[], &[]),
    ("+SYS_PTRACE", &["--cap-add", "SYS_PTRACE"], &["SYS_PTRACE"]),
    ("+SYS_ADMIN", &["--cap-add", "SYS_ADMIN"], &["SYS_ADMIN"]),
    ("unconfined", &["--security-opt", "seccomp=unconfined"], &[]),
];

/// What the probe prints under husk, per CONFIGS column: `ok`, an errno name, or `*` for
/// "whatever podman gets" (the kernel decides: its config, not the filter); then where
/// podman gets something else, and why husk differs.
type Row = (
    &'static str,
    [&'static str; 4],
    &'static [(usize, &'static str)],
    &'static str,
);

const PTRACE_WHY: &str = "gated on CAP_SYS_PTRACE as the issue asks (docker did so before \
    kernel 4.8); docker and podman now allow it to everyone";

#[rustfmt::skip]
const TABLE: &[Row] = &[
    // the kernel's key store is not namespaced
    ("keyctl", ["ENOSYS", "ENOSYS", "ENOSYS", "*"], &[(0, "ok"), (1, "ok"), (2, "ok")],
        "docker refuses keyctl, podman 4.3 allows it; husk refuses it as docker, with \
         podman's ENOSYS for add_key/request_key"),
    ("add_key", ["ENOSYS", "ENOSYS", "ENOSYS", "*"], &[], ""),
    ("request_key", ["ENOSYS", "ENOSYS", "ENOSYS", "*"], &[], ""),
    // personality: only the execution domains, not ASLR off
    ("personality_norandom", ["ENOSYS", "ENOSYS", "ENOSYS", "*"], &[], ""),
    ("personality_query", ["ok", "ok", "ok", "*"], &[], ""),
    ("personality_linux32", ["ok", "ok", "ok", "*"], &[], ""),
    // other processes: CAP_SYS_PTRACE
    ("ptrace_traceme", ["EPERM", "ok", "EPERM", "*"], &[(0, "ok"), (2, "ok")], PTRACE_WHY),
    ("ptrace_attach", ["EPERM", "ok", "EPERM", "*"], &[(0, "ok"), (2, "ok")], PTRACE_WHY),
    ("process_vm_readv", ["EPERM", "ok", "EPERM", "*"], &[(0, "ok"), (2, "ok")],
        "docker's: gated on CAP_SYS_PTRACE; podman allows it"),
    ("pidfd_getfd", ["EPERM", "ok", "EPERM", "*"], &[(0, "ok"), (2, "ok")],
        "docker's: gated on CAP_SYS_PTRACE; podman allows it"),
    ("kcmp", ["EPERM", "ok", "EPERM", "*"], &[], ""),
    ("userfaultfd", ["EPERM", "ok", "EPERM", "*"], &[(1, "EPERM")],
        "with CAP_SYS_PTRACE, as the kernel itself asks; podman refuses it outright"),
    // mounts and namespaces: CAP_SYS_ADMIN, except a user namespace
    ("mount", ["EPERM", "EPERM", "ok", "*"], &[], ""),
    ("umount", ["EPERM", "EPERM", "ok", "*"], &[], ""),
    ("pivot_root", ["EPERM", "EPERM", "*", "*"], &[], ""),
    ("setns", ["EPERM", "EPERM", "ok", "*"], &[], ""),
    ("unshare_mnt", ["EPERM", "EPERM", "ok", "*"], &[], ""),
    ("unshare_uts", ["EPERM", "EPERM", "ok", "*"], &[], ""),
    ("unshare_user", ["ok", "ok", "ok", "*"], &[], ""),
    ("unshare_user_mnt", ["ok", "ok", "ok", "*"], &[], ""),
    ("clone_plain", ["ok", "ok", "ok", "*"], &[], ""),
    ("clone_newns", ["EPERM", "EPERM", "ok", "*"], &[], ""),
    ("clone_newuser", ["ok", "ok", "ok", "*"], &[], ""),
    ("clone3", ["ENOSYS", "ENOSYS", "ok", "*"], &[(0, "ok"), (1, "ok")],
        "docker's: clone3's flags are in memory, out of a filter's reach; ENOSYS makes libc \
         fall back to clone, whose flags are checked"),
    ("sethostname", ["EPERM", "EPERM", "ok", "*"], &[], ""),
    ("quotactl", ["EPERM", "EPERM", "*", "*"], &[], ""),
    ("bpf", ["EPERM", "EPERM", "*", "*"], &[], ""),
    ("perf_event_open", ["EPERM", "EPERM", "*", "*"], &[], ""),
    // the host's kernel, clock, devices: never without their capability
    ("reboot", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("init_module", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("finit_module", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("delete_module", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("kexec_load", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("clock_settime", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("settimeofday", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("swapon", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("acct", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("iopl", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("ioperm", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("open_by_handle_at", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("vhangup", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("move_pages", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("vmsplice", ["EPERM", "EPERM", "EPERM", "*"], &[], ""),
    ("io_uring_setup", ["ENOSYS", "ENOSYS", "ENOSYS", "*"], &[], ""),
    ("unknown_nr", ["ENOSYS", "ENOSYS", "ENOSYS", "ENOSYS"], &[], ""),
    // what ordinary programs do
    ("ordinary", ["ok", "ok", "ok", "ok"], &[], ""),
    ("sockets", ["ok", "ok", "ok", "ok"], &[], ""),
    ("fork_exec", ["ok", "ok", "ok", "ok"], &[], ""),
    ("newer_fd_calls", ["ok", "ok", "ok", "ok"], &[], ""),
    ("setrlimit", ["ok", "ok", "ok", "ok"], &[], ""),
    ("chown", ["ok", "ok", "ok", "ok"], &[], ""),
    ("chroot", ["ok", "ok", "ok", "ok"], &[], ""),
    ("mknod_null", ["ok", "ok", "ok", "ok"], &[], ""),
    ("seccomp_filtered", ["ok", "ok", "ok", "ENOENT"], &[], ""),
];

fn parse(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// husk's default capabilities, for podman's `--cap-add` after `--cap-drop all`, so both
/// run with the same set (podman 4.3's own defaults are smaller).
const HUSK_CAPS: &str = "CHOWN,DAC_OVERRIDE,FSETID,FOWNER,MKNOD,NET_RAW,SETGID,SETUID,\
                         SETFCAP,SETPCAP,NET_BIND_SERVICE,SYS_CHROOT,KILL,AUDIT_WRITE";

#[test]
fn default_profile_probe_by_probe_against_podman() {
    let t = TempDir::new("seccomp-default");
    let probe = build_probe(t.path());
    let bind = format!("{}:/probe:ro", probe.display());
    let root = t.path().join("store");
    let (code, _, err) = out_with_stdin(
        &root,
        &["import", "-", "localhost/probe:1"],
        &busybox_base_layer(),
    );
    assert_eq!(code, 0, "husk import: {err}");
    let podman = Podman::new(&t.path().join("podman"));
    podman.import_busybox("localhost/probe:1");

    let mut failures = Vec::new();
    for (col, (config, husk_flags, podman_caps)) in CONFIGS.iter().enumerate() {
        let mut args = vec!["run", "--rm", "--network", "none", "-v", &bind];
        args.extend_from_slice(husk_flags);
        args.extend(["localhost/probe:1", "/probe"]);
        let husk = parse(&husk_ok(&root, &args));

        let caps = [&[HUSK_CAPS], *podman_caps].concat().join(",");
        let mut args = vec!["run", "--rm", "--network", "none", "-v", &bind];
        args.extend(["--cap-drop", "all", "--cap-add", &caps]);
        if *config == "unconfined" {
            args.extend(["--security-opt", "seccomp=unconfined"]);
        }
        args.extend(["localhost/probe:1", "/probe"]);
        let pod = parse(&podman.ok(&args));

        assert_eq!(
            husk.len(),
            TABLE.len(),
            "{config}: husk ran every probe: {husk:?}"
        );
        assert_eq!(
            pod.len(),
            TABLE.len(),
            "{config}: podman ran every probe: {pod:?}"
        );
        for (probe, want, podman_differs, why) in TABLE {
            let (h, p) = (&husk[*probe], &pod[*probe]);
            let podman_want = podman_differs
                .iter()
                .find(|(c, _)| *c == col)
                .map(|(_, v)| *v)
                .unwrap_or(want[col]);
            let husk_want = if want[col] == "*" {
                p.as_str()
            } else {
                want[col]
            };
            if h != husk_want {
                failures.push(format!("{probe} {config}: husk {h}, want {husk_want}"));
            }
            if podman_want != "*" && p != podman_want {
                failures.push(format!(
                    "{probe} {config}: podman {p}, the table says {podman_want} ({why})"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn exec_is_filtered_privileged_is_not_and_info_names_the_profile() {
    let t = TempDir::new("seccomp-exec");
    let probe = build_probe(t.path());
    let bind = format!("{}:/probe:ro", probe.display());
    let root = t.path().join("store");
    let (code, _, err) = out_with_stdin(
        &root,
        &["import", "-", "localhost/probe:1"],
        &busybox_base_layer(),
    );
    assert_eq!(code, 0, "husk import: {err}");
    let run = |flags: &[&str]| {
        let mut a = vec!["run", "--rm", "--network", "none", "-v", &bind];
        a.extend_from_slice(flags);
        a.extend(["localhost/probe:1", "/probe", "seccomp_filtered", "keyctl"]);
        husk_ok(&root, &a)
    };
    assert_eq!(run(&[]), "keyctl=ENOSYS\nseccomp_filtered=ok\n");
    // --privileged: unconfined, as docker
    assert_eq!(
        run(&["--privileged"]),
        "keyctl=ok\nseccomp_filtered=ENOENT\n"
    );
    // a profile named on the command line replaces the default one
    let allow_all = t.path().join("allow.json");
    std::fs::write(&allow_all, r#"{"defaultAction": "SCMP_ACT_LOG"}"#).unwrap();
    let opt = format!("seccomp={}", allow_all.display());
    assert_eq!(
        run(&["--security-opt", &opt]),
        "keyctl=ok\nseccomp_filtered=ok\n"
    );

    // exec'd processes get the container's filter, and so does a container made by
    // create and then started
    husk_ok(
        &root,
        &[
            "create",
            "--name",
            "c",
            "--network",
            "none",
            "-v",
            &bind,
            "localhost/probe:1",
            "sh",
            "-c",
            "sleep 60",
        ],
    );
    husk_ok(&root, &["start", "c"]);
    let o = husk_ok(
        &root,
        &["exec", "c", "/probe", "seccomp_filtered", "keyctl"],
    );
    assert_eq!(o, "keyctl=ENOSYS\nseccomp_filtered=ok\n");
    let o = husk_ok(&root, &["exec", "c", "cat", "/proc/1/status"]);
    assert!(o.contains("\nSeccomp:\t2\n"), "{o}");
    husk_ok(&root, &["rm", "-f", "c"]);

    let info = husk_ok(&root, &["info"]);
    assert!(
        info.contains("Security Options:\n  seccomp\n   Profile: builtin\n"),
        "{info}"
    );
    let o = husk_ok(&root, &["info", "--format", "{{json .SecurityOptions}}"]);
    assert_eq!(o.trim(), r#"["name=seccomp,profile=builtin"]"#);
}
