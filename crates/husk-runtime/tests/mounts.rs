//! Mounts and propagation as runc does them: rootfsPropagation, a read-only /dev, bind
//! sources only the caller can reach, and a container without a mount namespace.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

/// The container's mountinfo lines for `/` and `/proc` (field 5 is the mount point).
const ROOT_AND_PROC: &str = r#"awk '$5 == "/" || $5 == "/proc"' /proc/self/mountinfo"#;

#[test]
fn shared_rootfs_propagation_makes_the_new_root_shared() {
    // pivot_root refuses shared mounts; the propagation asked for is the new root's.
    for (prop, no_pivot) in [("shared", false), ("rshared", false), ("rshared", true)] {
        let ctx = Ctx::new("rshared", &["sh", "-c", ROOT_AND_PROC], |s| {
            s["linux"]["rootfsPropagation"] = json!(prop);
        });
        let mut args = vec!["run"];
        if no_pivot {
            args.push("--no-pivot");
        }
        args.push(&ctx.id);
        let out = ctx.rt_within(&args, 30);
        assert!(out.status.success(), "{prop}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = |mp: &str| {
            stdout
                .lines()
                .find(|l| l.split(' ').nth(4) == Some(mp))
                .unwrap_or_else(|| panic!("{prop}: no {mp} in {stdout}"))
                .to_string()
        };
        assert!(line("/").contains(" shared:"), "{prop}: {stdout}");
        // Only the recursive form reaches the mounts below /.
        assert_eq!(
            line("/proc").contains(" shared:"),
            prop == "rshared",
            "{prop}: {stdout}"
        );
        let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !host.contains(rootfs().to_str().unwrap()),
            "{prop}: the rootfs mount reached the host: {host}"
        );
        ctx.assert_clean();
    }
}

#[test]
fn a_read_only_dev_tmpfs_still_gets_devices_devpts_and_links() {
    let ctx = Ctx::new(
        "devro",
        &[
            "sh",
            "-c",
            "ls /dev/null /dev/zero /dev/pts/ptmx; readlink /dev/fd; echo x > /dev/null && \
             echo null-ok; touch /dev/new 2>/dev/null && echo WROTE-DEV; \
             awk '$5 == \"/dev\" {print $6}' /proc/self/mountinfo",
        ],
        |s| {
            let dev = s["mounts"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|m| m["destination"] == "/dev")
                .expect("the default spec mounts /dev");
            dev["options"].as_array_mut().unwrap().push(json!("ro"));
        },
    );
    let out = ctx.rt_within(&["run", &ctx.id], 30);
    assert!(out.status.success(), "{}", text(&out));
    let out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out, "/dev/null\n/dev/pts/ptmx\n/dev/zero\n/proc/self/fd\nnull-ok\nro,nosuid\n",
        "{out}"
    );
    ctx.assert_clean();
}

/// A user namespace mapping the container's root to host uid 200000.
fn with_user_ns(s: &mut serde_json::Value) {
    s["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 1000}]);
    s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 1000}]);
}

#[test]
fn bind_sources_only_the_caller_can_reach_are_mounted_in_a_user_namespace() {
    // The container's root is host uid 200000, which may not search the 0700 directory
    // above the source: the runtime opens the source before init is in the user namespace,
    // a new one or one joined by path (here: that of a running container).
    use std::os::unix::fs::PermissionsExt;
    let holder = Ctx::new("bindprivns", &["sleep", "1000"], with_user_ns);
    let out = holder.rt_within(&["run", "-d", &holder.id], 30);
    assert!(out.status.success(), "{}", text(&out));
    let userns = format!("/proc/{}/ns/user", holder.state()["pid"]);
    for joined in [false, true] {
        let ctx = Ctx::new(
            "bindpriv",
            &[
                "sh",
                "-c",
                "cat /mnt/f; echo x > /mnt/g 2>/dev/null && echo WROTE-RO; id -u",
            ],
            |s| match joined {
                false => with_user_ns(s),
                true => s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "user", "path": userns})),
            },
        );
        let secret = ctx.bundle.parent().unwrap().join("secret");
        std::fs::create_dir_all(secret.join("src")).unwrap();
        std::fs::write(secret.join("src/f"), "hidden\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
        let spec_path = ctx.bundle.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&spec_path).unwrap()).unwrap();
        spec["mounts"].as_array_mut().unwrap().push(json!({
            // /mnt exists in the shared rootfs, which the container's root may not write.
            "destination": "/mnt", "type": "bind", "source": secret.join("src"),
            "options": ["rbind", "ro"]
        }));
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        let out = ctx.rt_within(&["run", &ctx.id], 30);
        assert!(out.status.success(), "joined={joined}: {}", text(&out));
        assert_eq!(
            out.stdout,
            b"hidden\n0\n",
            "joined={joined}: {}",
            text(&out)
        );
        ctx.assert_clean();
    }
    let out = holder.rt(&["delete", "-f", &holder.id]);
    assert!(out.status.success(), "{}", text(&out));
    holder.assert_clean();
}

/// Run the container `ctx` with `husk-runtime run` from a shell in a mount namespace of the
/// test's own (which goes away with it), so that "the caller's mount namespace" is not the
/// test host's. The shell prints its mount namespace first and, after the run, `rc=N` and
/// how many mounts of the rootfs it still has.
fn run_from_own_mount_ns(ctx: &Ctx) -> String {
    let script = format!(
        "readlink /proc/self/ns/mnt; {} --root {} run {} 2>&1; echo rc=$?; \
         grep -c ' {}[/ ]' /proc/self/mountinfo; true",
        BIN,
        ctx.root.display(),
        ctx.id,
        rootfs().display()
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script])
        .current_dir(&ctx.bundle)
        .stdin(std::process::Stdio::null());
    let out = output_within(cmd, ctx.bundle.parent().unwrap(), Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn without_a_mount_namespace_the_container_runs_in_the_callers() {
    // As runc: chrooted into the rootfs in the caller's mount namespace, with the spec's
    // mounts and devices; the read-only root still holds. Unlike runc, nothing stays mounted
    // in the caller's namespace after delete (or a failed create).
    let ctx = Ctx::new(
        "nomntns",
        &[
            "sh",
            "-c",
            "readlink /proc/self/ns/mnt; ls /dev/null /proc/1/status; \
             touch /x 2>/dev/null && echo WROTE-ROOT; echo done",
        ],
        without_mount_ns,
    );
    let out = run_from_own_mount_ns(&ctx);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() == 7 && lines[0].starts_with("mnt:"), "{out}");
    assert_eq!(
        lines[1], lines[0],
        "not the caller's mount namespace: {out}"
    );
    assert_eq!(
        &lines[2..],
        &["/dev/null", "/proc/1/status", "done", "rc=0", "0"],
        "{out}"
    );
    ctx.assert_clean();

    let failing = Ctx::new("nomntnsbad", &["/no/such/program"], without_mount_ns);
    let out = run_from_own_mount_ns(&failing);
    assert!(out.contains("/no/such/program"), "{out}");
    assert!(
        out.ends_with("rc=1\n0\n"),
        "mounts left after a failed create: {out}"
    );
    failing.assert_clean();

    // What only a private mount table can do is refused, as runc does.
    let refused = Ctx::new("nomntnsmask", &["true"], |s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
    });
    let out = refused.rt_within(&["create", &refused.id], 30);
    assert_one_line_error(
        &out,
        "unable to restrict sys entries without a private MNT namespace",
    );
    refused.assert_clean();
}
