//! The `tmpcopyup` mount option (podman's --read-only): a tmpfs that starts with the content
//! of the directory it covers.

mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

#[test]
fn read_only_root_with_tmpcopyup_etc_shows_the_image_and_is_writable() {
    let ctx = Ctx::new(
        "copyup-etc",
        &[
            "sh",
            "-c",
            "cat /etc/passwd; echo new > /etc/added && cat /etc/added; \
             echo x >> /etc/passwd && echo appended; \
             touch /bin/x 2>/dev/null && echo root-writable || echo root-ro",
        ],
        |spec| {
            spec["root"]["readonly"] = json!(true);
            spec["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                "options": ["tmpcopyup", "nosuid", "nodev", "mode=755"]
            }));
        },
    );
    let out = ctx.run_ok();
    assert!(out.starts_with("root:x:0:0:root:/root:/bin/sh\n"), "{out}");
    assert!(out.contains("\nnew\nappended\nroot-ro\n"), "{out}");
    // The image was not touched.
    let passwd = std::fs::read_to_string(rootfs().join("etc/passwd")).unwrap();
    assert!(passwd.ends_with("/bin/false\n"), "{passwd}");
    assert!(!rootfs().join("etc/added").exists());
    ctx.assert_clean();
}

#[test]
fn tmpcopyup_copies_trees_links_modes_owners_and_skips_fifos() {
    // A host tree bound on /mnt, then a tmpcopyup tmpfs over it (the bind is the "image").
    let ctx = Ctx::new(
        "copyup-tree",
        &[
            "sh",
            "-c",
            "cd /mnt && stat -c '%n %a %u %g %Y' sub sub/file secret && readlink abs && readlink rel \
             && cat sub/file && ls -a | tr '\\n' ' ' && echo && \
             echo changed > sub/file; grep ' /mnt ' /proc/self/mountinfo | grep -c tmpfs",
        ],
        |_| {},
    );
    let tree = ctx.bundle.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/file"), "hello\n").unwrap();
    std::fs::write(tree.join("secret"), "s\n").unwrap();
    std::fs::set_permissions(tree.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(tree.join("secret"), Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(tree.join("sub"), std::fs::Permissions::from_mode(0o751)).unwrap();
    // Links are copied as links, never followed (both would leave the tree).
    symlink("/etc/shadow", tree.join("abs")).unwrap();
    symlink("../../..", tree.join("rel")).unwrap();
    let fifo = std::ffi::CString::new(tree.join("fifo").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let mtime = |p: &str| std::fs::metadata(tree.join(p)).unwrap().mtime();
    let (sub_m, file_m, secret_m) = (mtime("sub"), mtime("sub/file"), mtime("secret"));

    let config = ctx.bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let mounts = spec["mounts"].as_array_mut().unwrap();
    mounts.push(json!({
        "destination": "/mnt", "type": "bind", "source": tree.to_str().unwrap(),
        "options": ["rbind", "ro"]
    }));
    mounts.push(json!({
        "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
        "options": ["tmpcopyup", "mode=700"]
    }));
    std::fs::write(&config, serde_json::to_vec(&spec).unwrap()).unwrap();

    let out = ctx.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("sub 751 0 0 {sub_m}"), "{out}");
    assert_eq!(lines[1], format!("sub/file 644 0 0 {file_m}"), "{out}");
    assert_eq!(
        lines[2],
        format!("secret 600 1234 5678 {secret_m}"),
        "{out}"
    );
    assert_eq!(lines[3], "/etc/shadow", "{out}");
    assert_eq!(lines[4], "../../..", "{out}");
    assert_eq!(lines[5], "hello", "{out}");
    assert!(!lines[6].contains("fifo"), "{out}");
    assert!(lines[6].contains("secret"), "{out}");
    assert_eq!(lines.last(), Some(&"1"), "{out}");
    // Writes went to the tmpfs, not the host tree.
    assert_eq!(
        std::fs::read_to_string(tree.join("sub/file")).unwrap(),
        "hello\n"
    );
    ctx.assert_clean();
}

#[test]
fn tmpcopyup_with_ro_ends_read_only_and_needs_a_tmpfs() {
    let ctx = Ctx::new(
        "copyup-ro",
        &[
            "sh",
            "-c",
            "cat /etc/group | head -n1; touch /etc/x 2>/dev/null && echo rw || echo ro",
        ],
        |spec| {
            spec["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                "options": ["tmpcopyup", "ro"]
            }));
        },
    );
    assert_eq!(ctx.run_ok(), "root:x:0:\nro\n");
    ctx.assert_clean();

    let ctx = Ctx::new("copyup-proc", &["true"], |spec| {
        spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "proc", "source": "proc",
            "options": ["tmpcopyup"]
        }));
    });
    let out = ctx.rt_detached(&["create", &ctx.id]);
    assert_one_line_error(&out, "tmpcopyup needs a tmpfs");
    ctx.assert_clean();
}
