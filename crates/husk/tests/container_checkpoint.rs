//! `husk container checkpoint` / `restore` on the host, for what needs no successful CRIU
//! dump (CRIU 3.17 cannot dump on these hosts' 6.18 kernel; the real checkpoints and
//! restores, `--export`/`--import` and a copy beside the original, run in the VM:
//! vmtest/checkpoint-guest.sh). Here: refusals and a failed dump leave the container as it
//! was, and an import archive that is not what `--export` writes — or one that is but
//! whose restore fails — is one error line with nothing left behind.

mod common;
use common::*;
use husk_image::tar::Writer;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// (exit code, the one stderr line) of a husk command that must fail.
fn fails(root: &Path, args: &[&str]) -> (i32, String) {
    let (code, _, err) = out(root, args);
    assert_ne!(code, 0, "husk {args:?} succeeded");
    assert_eq!(err.lines().count(), 1, "husk {args:?}: not one line: {err}");
    (code, err.trim_end().to_string())
}

fn inspect(root: &Path, name: &str) -> Value {
    serde_json::from_str::<Value>(&husk_ok(root, &["inspect", "--type", "container", name]))
        .unwrap()[0]
        .clone()
}

#[test]
fn refusals_and_a_failed_dump_leave_the_container_as_it_was() {
    let s = setup("ckpt-refuse");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    husk_ok(
        root,
        &[
            "create",
            "--name",
            "made",
            "--network",
            "none",
            &image,
            "true",
        ],
    );
    husk_ok(
        root,
        &["run", "--name", "done", "--network", "none", &image, "true"],
    );
    let (code, err) = fails(root, &["container", "checkpoint", "made"]);
    assert_eq!(
        (code, err.as_str()),
        (
            125,
            "husk: checkpoint made: the container is created, not running"
        )
    );
    let (code, err) = fails(root, &["container", "checkpoint", "done"]);
    assert_eq!(
        (code, err.as_str()),
        (
            125,
            "husk: checkpoint done: the container is exited, not running"
        )
    );
    let (code, err) = fails(root, &["container", "checkpoint", "nosuch"]);
    assert_eq!(
        (code, err.as_str()),
        (125, "husk: checkpoint nosuch: no such container: nosuch")
    );
    let (code, err) = fails(root, &["container", "restore", "done"]);
    assert_eq!(
        (code, err.as_str()),
        (
            125,
            "husk: restore done: the container is exited, not checkpointed"
        )
    );
    let (code, err) = fails(root, &["container", "restore"]);
    assert_eq!(
        (code, err.as_str()),
        (125, "husk: restore: give a container or --import FILE")
    );
    let (code, err) = fails(root, &["container", "restore", "--name", "x", "done"]);
    assert_eq!(
        (code, err.as_str()),
        (
            125,
            "husk: restore done: --name is only for --import (a restored container keeps its name)"
        )
    );
    assert_eq!(inspect(root, "done")["State"]["Checkpointed"], false);

    // A running container whose dump fails (CRIU on this kernel): it runs on, is not
    // checkpointed, and its monitor still records its end as an exit when it stops.
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "--name",
            "up",
            "--network",
            "none",
            &image,
            "sleep 1000",
        ],
    );
    let (code, err) = fails(
        root,
        &[
            "container",
            "checkpoint",
            "--export",
            "/nonexistent/up.tar",
            "up",
        ],
    );
    assert_eq!(
        (code, err.as_str()),
        (
            125,
            "husk: checkpoint up: --export: reading the directory /nonexistent: No such file or directory (os error 2)"
        )
    );
    let (code, err) = fails(root, &["container", "checkpoint", "up"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.starts_with("husk: checkpoint up: criu dump failed: ") && err.contains("(log: "),
        "{err}"
    );
    let st = inspect(root, "up")["State"].clone();
    assert_eq!(
        (&st["Status"], &st["Checkpointed"]),
        (&json!("running"), &json!(false))
    );
    let id = husk_ok(root, &["inspect", "-f", "{{.Id}}", "up"]);
    assert!(!root
        .join("containers")
        .join(id.trim())
        .join("checkpointing")
        .exists());
    husk_ok(root, &["stop", "-t", "0", "up"]);
    let st = inspect(root, "up")["State"].clone();
    assert_eq!(
        (&st["Status"], &st["ExitCode"], &st["Checkpointed"]),
        (&json!("exited"), &json!(137), &json!(false))
    );
}

/// One entry of a test archive.
enum E {
    File(&'static str, Vec<u8>),
    Link(&'static str, &'static str),
}

fn archive(path: &Path, entries: &[E]) {
    let mut w = Writer::new(Vec::new());
    for e in entries {
        match e {
            E::File(p, data) => w.file(p, 0o600, data).unwrap(),
            E::Link(p, target) => w.symlink(p, target).unwrap(),
        }
    }
    std::fs::write(path, w.finish().unwrap()).unwrap();
}

/// A layer tar holding `path` (any bytes, `..` included) as a file.
fn layer_with(path: &str) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    w.file(path, 0o644, b"hello\n").unwrap();
    w.finish().unwrap()
}

/// The 64-hex ids the store's events name.
fn ids_in_events(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("events.log")).unwrap_or_default();
    let mut ids: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["Actor"]["ID"].as_str().map(String::from))
        .filter(|id| id.len() == 64)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn bad_import_archives_fail_with_one_line_and_leave_nothing() {
    let s = setup("ckpt-import");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    let id = husk_ok(
        root,
        &[
            "create",
            "--name",
            "orig",
            "--network",
            "none",
            &image,
            "sleep 100",
        ],
    );
    let dir = root.join("containers").join(id.trim());
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.join("container.json")).unwrap()).unwrap();
    let config = std::fs::read(dir.join("config.json")).unwrap();
    let manifest = |version: Value| {
        serde_json::to_vec(&json!({
            "version": version,
            "dir": dir,
            "rootfs_diff": true,
            "record": record,
        }))
        .unwrap()
    };
    let good = || {
        vec![
            E::File("manifest.json", manifest(json!(1))),
            E::File("config.json", config.clone()),
            E::File("checkpoint/inventory.img", b"not criu's".to_vec()),
            E::File("checkpoint/husk-externals.json", b"[]".to_vec()),
            E::File("rootfs-diff.tar", layer_with("hello")),
        ]
    };
    let with = |i: usize, e: E| {
        let mut v = good();
        v[i] = e;
        v
    };
    let mut hooked: Value = serde_json::from_slice(&config).unwrap();
    hooked["hooks"] =
        json!({"prestart": [{"path": "/bin/touch", "args": ["touch", "/tmp/pwned"]}]});
    let escaped = root.join("escaped");
    let cases: Vec<(&str, Vec<E>, &str)> = vec![
        ("empty", vec![], "no manifest.json at its start"),
        (
            "no-manifest",
            good().into_iter().skip(1).collect(),
            "no manifest.json at its start",
        ),
        (
            "version",
            with(0, E::File("manifest.json", manifest(json!(2)))),
            "checkpoint format version 2 (this husk reads version 1)",
        ),
        (
            "not-json",
            with(0, E::File("manifest.json", b"{".to_vec())),
            "manifest.json: ",
        ),
        (
            "traversal",
            with(2, E::File("checkpoint/../../../escaped", b"x".to_vec())),
            "entry \"checkpoint/../../../escaped\": not a plain file name under checkpoint/",
        ),
        (
            "outside",
            with(2, E::File("../escaped", b"x".to_vec())),
            "entry \"../escaped\": not part of a checkpoint export",
        ),
        (
            "symlink",
            with(3, E::Link("checkpoint/pages-1.img", "/etc/shadow")),
            "entry \"checkpoint/pages-1.img\": a symlink: an export holds only regular files",
        ),
        (
            "twice",
            with(3, E::File("checkpoint/inventory.img", b"again".to_vec())),
            "entry \"checkpoint/inventory.img\": in the archive twice",
        ),
        (
            "layer-traversal",
            with(
                4,
                E::File("rootfs-diff.tar", layer_with("../../../escaped")),
            ),
            "the writable layer (rootfs-diff.tar): ",
        ),
        (
            "no-inventory",
            with(2, E::File("checkpoint/other.img", Vec::new())),
            "the archive has no checkpoint/inventory.img",
        ),
        (
            "no-config",
            with(1, E::File("checkpoint/x.img", Vec::new())),
            "the archive has no config.json",
        ),
        (
            "hooks",
            with(
                1,
                E::File("config.json", serde_json::to_vec(&hooked).unwrap()),
            ),
            "config.json: it has hooks, which would run on this host",
        ),
        // All well formed: the import gets as far as CRIU, whose restore of these images fails.
        ("criu", good(), "criu restore failed"),
    ];
    let file = s.t.path().join("x.tar");
    let before = engine_states();
    for (what, entries, want) in cases {
        archive(&file, &entries);
        let f = file.to_str().unwrap();
        let (code, err) = fails(
            root,
            &["container", "restore", "--import", f, "--name", "imp"],
        );
        assert_eq!(code, 125, "{what}: {err}");
        assert!(
            err.starts_with(&format!("husk: restore {f}: ")),
            "{what}: {err}"
        );
        assert!(err.contains(want), "{what}: {err}");
        assert_eq!(
            containers(root),
            vec![dir.clone()],
            "{what}: a container left"
        );
        assert!(
            mounts_below(root).is_empty(),
            "{what}: {:?}",
            mounts_below(root)
        );
        assert!(!escaped.exists(), "{what}: wrote outside the container");
    }
    assert!(!Path::new("/tmp/pwned").exists());
    // The name of a container that exists: refused before anything is made.
    archive(&file, &good());
    let f = file.to_str().unwrap();
    let (code, err) = fails(root, &["container", "restore", "--import", f]);
    assert_eq!(
        (code, err),
        (
            125,
            format!("husk: restore {f}: the name \"orig\" is already in use")
        )
    );
    assert_eq!(containers(root), vec![dir.clone()]);
    let (code, err) = fails(root, &["container", "restore", "--import", f, "orig"]);
    assert_eq!(
        (code, err.as_str()),
        (125, "husk: restore --import: no container names with it")
    );
    // Nothing of the containers the imports made is left in the runtime's state or cgroups.
    let made: Vec<String> = ids_in_events(root)
        .into_iter()
        .filter(|i| i != id.trim())
        .collect();
    assert!(!made.is_empty(), "the criu case made no container");
    let states: Vec<String> = engine_states()
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    let cgroups = engine_cgroups();
    for m in &made {
        assert!(!states.contains(m), "state of {m} left");
        assert!(
            !cgroups.iter().any(|c| c.ends_with(m.as_str())),
            "cgroup of {m} left"
        );
    }
    let ps: Vec<PathBuf> = containers(root);
    assert_eq!(ps, vec![dir]);
}
