//! Mounts and propagation as runc does them: rootfsPropagation, a read-only /dev, bind
//! sources only the caller can reach, and a container without a mount namespace.

mod common;
use common::*;
use serde_json::json;

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
        let out = ctx.rt(&args);
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
    let out = ctx.run_ok();
    assert_eq!(
        out, "/dev/null\n/dev/pts/ptmx\n/dev/zero\n/proc/self/fd\nnull-ok\nro,nosuid\n",
        "{out}"
    );
    ctx.assert_clean();
}

#[test]
fn bind_sources_only_the_caller_can_reach_are_mounted_in_a_user_namespace() {
    // The container's root is host uid 200000, which may not search the 0700 directory
    // above the source: the runtime opens the source before the user namespace exists.
    use std::os::unix::fs::PermissionsExt;
    let ctx = Ctx::new(
        "bindpriv",
        &[
            "sh",
            "-c",
            "cat /mnt/f; echo x > /mnt/g 2>/dev/null && echo WROTE-RO; id -u",
        ],
        |_| {},
    );
    let secret = ctx.bundle.parent().unwrap().join("secret");
    std::fs::create_dir_all(secret.join("src")).unwrap();
    std::fs::write(secret.join("src/f"), "hidden\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    let spec_path = ctx.bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&spec_path).unwrap()).unwrap();
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 1000}]);
    spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 1000}]);
    spec["mounts"].as_array_mut().unwrap().push(json!({
        // /mnt exists in the shared rootfs, which the container's root may not write.
        "destination": "/mnt", "type": "bind", "source": secret.join("src"),
        "options": ["rbind", "ro"]
    }));
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let out = ctx.run_ok();
    assert_eq!(out, "hidden\n0\n", "{out}");
    ctx.assert_clean();
}
