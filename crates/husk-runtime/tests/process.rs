//! Setting up the container's process as runc 1.1 does: who owns its terminal and stdio,
//! HOME, a missing cwd, capability sets for other users, unknown capability names, and the
//! sysctls runc refuses. Each expectation was checked against runc 1.1.5 side by side.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;

fn husk(c: &Ctx) -> String {
    format!("{BIN} --root {}", c.root.display())
}

/// The terminal is the process's: its uid (so the process can reopen /dev/tty or
/// /proc/self/fd/0), the group devpts gives it (gid=5, tty, from the default mount options),
/// mode 620 — for init through `run` and for `exec -t`, as runc sets them.
#[test]
fn the_terminal_belongs_to_the_process_user() {
    let show = "stat -c '%u:%g %a' $(tty); echo -n reopened > /dev/tty && echo";
    let c = Ctx::new("tty-owner", &["sh", "-c", show], |s| {
        s["process"]["terminal"] = json!(true);
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let o = on_a_terminal(&format!(
        "{} run --bundle {} {}",
        husk(&c),
        c.bundle.display(),
        c.id
    ))
    .output()
    .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("1000:5 620\nreopened"), "{out}");
    c.assert_clean();

    let c = Ctx::new("tty-owner-exec", &["sleep", "100"], |_| {});
    let o = c.rt_detached(&["run", "-d", &c.id]);
    assert!(o.status.success(), "{}", text(&o));
    let o = on_a_terminal(&format!(
        "{} exec -t -u 1234:1234 {} sh -c \"{show}\"",
        husk(&c),
        c.id
    ))
    .output()
    .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("1234:5 620\nreopened"), "{out}");
    let _ = c.rt(&["delete", "--force", &c.id]);
    c.assert_clean();
}

/// Without a terminal, pipes the process gets as stdio become its user's too (runc does
/// this; engines hand containers pipes and FIFOs), so that it can reopen /dev/stdout.
/// /dev/null and the caller's regular files stay as they are.
#[test]
fn stdio_pipes_belong_to_the_process_user() {
    let show =
        "stat -L -c %u /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2; echo again > /dev/stdout";
    let c = Ctx::new("stdio-owner", &["sh", "-c", show], |s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000})
    });
    let before = std::fs::metadata("/dev/null").unwrap();
    // stdin is /dev/null (Ctx closes it that way), stdout and stderr pipes.
    assert_eq!(c.run_ok(), "0\n1000\n1000\nagain\n");
    let after = std::fs::metadata("/dev/null").unwrap();
    assert_eq!((after.uid(), after.mode()), (before.uid(), before.mode()));
    c.assert_clean();

    // Output to files of the caller: they stay root's.
    let c = Ctx::new("stdio-files", &["sh", "-c", show], |s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000})
    });
    let o = output_via_files(c.cmd(&["run", &c.id]), &c.bundle);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "0\n0\n0\n",
        "{}",
        text(&o)
    );
    for entry in std::fs::read_dir(&c.bundle).unwrap() {
        let meta = entry.unwrap().metadata().unwrap();
        assert_eq!(meta.uid(), 0);
    }
    c.assert_clean();
}

/// HOME, when the process's env lacks it or has it empty: the home of the process's uid in
/// the container's /etc/passwd, or `/` for a uid it does not list. An explicit HOME stays.
#[test]
fn home_comes_from_the_containers_passwd() {
    let cases: [(&str, u32, Option<&str>, &str); 4] = [
        ("home-root", 0, None, "/root"),
        ("home-none", 1234, None, "/"),
        ("home-empty", 0, Some("HOME="), "/root"),
        ("home-set", 0, Some("HOME=/x"), "/x"),
    ];
    for (name, uid, env, want) in cases {
        let c = Ctx::new(name, &["sh", "-c", "env | grep ^HOME="], |s| {
            s["process"]["user"] = json!({"uid": uid, "gid": uid});
            let list = s["process"]["env"].as_array_mut().unwrap();
            list.extend(env.map(|e| json!(e)));
        });
        assert_eq!(c.run_ok(), format!("HOME={want}\n"), "{name}");
        c.assert_clean();
    }
    // exec: the same, from the exec'd process's uid.
    let c = Ctx::new("home-exec", &["sleep", "100"], |_| {});
    let o = c.rt_detached(&["run", "-d", &c.id]);
    assert!(o.status.success(), "{}", text(&o));
    for (user, want) in [("0", "/root"), ("1234", "/")] {
        let o = c.rt(&["exec", "-u", user, &c.id, "sh", "-c", "env | grep ^HOME="]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("HOME={want}\n"),
            "{}",
            text(&o)
        );
    }
    let _ = c.rt(&["delete", "--force", &c.id]);
    c.assert_clean();
}

/// A process.cwd that does not exist is made (root's, 0755) before the process starts, even
/// with a read-only root; `exec` does not make one (runc refuses a missing exec cwd).
#[test]
fn a_missing_cwd_is_created() {
    let c = Ctx::new(
        "cwd-made",
        &["sh", "-c", "pwd; stat -c '%a %u:%g' /mnt/a /mnt/a/b"],
        |s| {
            s["root"]["readonly"] = json!(true);
            s["process"]["cwd"] = json!("/mnt/a/b");
            s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            s["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"}));
        },
    );
    assert_eq!(c.run_ok(), "/mnt/a/b\n755 0:0\n755 0:0\n");
    c.assert_clean();

    let c = Ctx::new("cwd-exec", &["sleep", "100"], |_| {});
    let o = c.rt_detached(&["run", "-d", &c.id]);
    assert!(o.status.success(), "{}", text(&o));
    let o = c.rt(&["exec", "--cwd", "/nonexistent/x", &c.id, "true"]);
    assert_one_line_error(&o, "/nonexistent/x");
    let _ = c.rt(&["delete", "--force", &c.id]);
    c.assert_clean();
}

/// A non-root process may have inheritable capabilities outside its permitted set (for
/// programs with file capabilities); runc sets them all at once, before dropping permitted.
#[test]
fn inheritable_capabilities_beyond_permitted_for_another_user() {
    let c = Ctx::new(
        "caps-inh",
        &["sh", "-c", "grep ^Cap /proc/self/status"],
        |s| {
            s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            s["process"]["capabilities"] = json!({
                "bounding": ["CAP_KILL", "CAP_NET_RAW"],
                "effective": ["CAP_KILL"],
                "permitted": ["CAP_KILL"],
                "inheritable": ["CAP_NET_RAW"],
                // Not permitted: the kernel refuses it, runc skips it silently.
                "ambient": ["CAP_NET_RAW"]
            });
        },
    );
    let out = c.run_ok();
    // KILL=5, NET_RAW=13; as uid 1000 the permitted set does not survive execve.
    for want in [
        "CapInh:\t0000000000002000",
        "CapPrm:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000002020",
        "CapAmb:\t0000000000000000",
    ] {
        assert!(out.contains(want), "{want} in {out}");
    }
    c.assert_clean();
}

/// runc 1.1 ignores capability names it does not know — misspelt, newer than the kernel, or
/// not in the spec's `CAP_…` form — with one warning, for `run` and for `exec`.
#[test]
fn unknown_capability_names_are_a_warning() {
    let edit = |s: &mut Value| {
        let caps = &mut s["process"]["capabilities"];
        for set in ["bounding", "effective", "permitted"] {
            let list = caps[set].as_array_mut().unwrap();
            list.push(json!("CAP_NO_SUCH_THING"));
            list.push(json!("SYS_ADMIN"));
        }
    };
    let c = Ctx::new(
        "caps-unknown",
        &["sh", "-c", "grep ^CapEff /proc/self/status"],
        edit,
    );
    let (code, out, err) = c.run();
    assert_eq!(code, 0, "{err}");
    // runc's default three (AUDIT_WRITE, KILL, NET_BIND_SERVICE): SYS_ADMIN (21) not among them.
    assert_eq!(out, "CapEff:\t0000000020000420\n");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("warning")
            && err.contains(
                "ignoring unknown or unavailable capabilities: [CAP_NO_SUCH_THING SYS_ADMIN]"
            ),
        "{err}"
    );
    c.assert_clean();

    let c = Ctx::new("caps-unknown-exec", &["sleep", "100"], |_| {});
    let o = c.rt_detached(&["run", "-d", &c.id]);
    assert!(o.status.success(), "{}", text(&o));
    let spec: Value =
        serde_json::from_slice(&std::fs::read(c.bundle.join("config.json")).unwrap()).unwrap();
    let mut wrapper = json!({"process": spec["process"].clone()});
    edit(&mut wrapper);
    let mut process = wrapper["process"].take();
    process["args"] = json!(["sh", "-c", "grep ^CapEff /proc/self/status"]);
    let p = c.bundle.join("process.json");
    std::fs::write(&p, serde_json::to_vec(&process).unwrap()).unwrap();
    let o = c.rt(&["exec", "-p", p.to_str().unwrap(), &c.id]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "CapEff:\t0000000020000420\n"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "ignoring unknown or unavailable capabilities: [CAP_NO_SUCH_THING SYS_ADMIN]"
        ),
        "{}",
        text(&o)
    );
    let _ = c.rt(&["delete", "--force", &c.id]);
    c.assert_clean();
}

/// runc refuses `kernel.hostname` in linux.sysctl (it conflicts with the `hostname` field) and
/// accepts `kernel.domainname` in the container's own UTS namespace (applied after the
/// `domainname` field, so it wins, as in runc).
#[test]
fn hostname_sysctls_as_runc() {
    let c = Ctx::new("sysctl-host", &["true"], |s| {
        s["linux"]["sysctl"] = json!({"kernel.hostname": "other"});
    });
    let o = c.rt(&["run", &c.id]);
    assert_one_line_error(
        &o,
        "sysctl \"kernel.hostname\" is not allowed as it conflicts with the OCI \"hostname\" field",
    );
    c.assert_clean();

    let c = Ctx::new(
        "sysctl-domain",
        &["cat", "/proc/sys/kernel/domainname"],
        |s| {
            s["domainname"] = json!("from-field");
            s["linux"]["sysctl"] = json!({"kernel.domainname": "from-sysctl"});
        },
    );
    assert_eq!(c.run_ok(), "from-sysctl\n");
    c.assert_clean();
}
