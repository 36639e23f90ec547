//! checkpoint/restore on this host: what works without a successful dump. CRIU 3.17 cannot
//! dump on the hosts' 6.18 kernel (its vDSO check fails), which makes a real CRIU failure
//! to test here; the dumps and restores themselves run in the VM (vmtest/checkpoint.sh).

mod common;
use common::*;

fn criu_installed() -> bool {
    std::path::Path::new("/usr/sbin/criu").is_file()
}

#[test]
fn a_failed_dump_is_one_line_naming_the_log_and_the_container_runs_on() {
    assert!(
        criu_installed(),
        "criu is missing (scripts/deps.sh installs it)"
    );
    let ctx = Ctx::new("ckfail", &["sleep", "100"], |_| {});
    let out = ctx.rt_detached(&["run", "-d", &ctx.id]);
    assert!(out.status.success(), "run -d: {}", text(&out));
    let images = ctx.bundle.parent().unwrap().join("images");
    let out = ctx.rt(&[
        "checkpoint",
        "--image-path",
        images.to_str().unwrap(),
        &ctx.id,
    ]);
    assert_one_line_error(
        &out,
        &format!("checkpoint {}: criu dump failed: Error (", ctx.id),
    );
    let log = images.join("dump.log");
    assert!(
        text(&out).contains(&format!("(log: {})", log.display())),
        "{}",
        text(&out)
    );
    assert!(log.is_file(), "no {}", log.display());
    // CRIU lets the tree go on after a failed dump; husk keeps the container.
    assert_eq!(ctx.status(), "running");
    assert!(ctx.rt(&["delete", "--force", &ctx.id]).status.success());
    ctx.assert_clean();
}

#[test]
fn refusals_are_one_line_and_leave_nothing() {
    let ctx = Ctx::new("ckbad", &["sleep", "100"], |_| {});
    let scratch = ctx.bundle.parent().unwrap().to_path_buf();
    let img = scratch.join("img");
    let img = img.to_str().unwrap();
    // No such container.
    let out = ctx.rt(&["checkpoint", "--image-path", img, "nope"]);
    assert_one_line_error(&out, "checkpoint nope: container does not exist");
    // Not running: created only.
    let out = ctx.rt_detached(&["create", &ctx.id]);
    assert!(out.status.success(), "create: {}", text(&out));
    let out = ctx.rt(&["checkpoint", "--image-path", img, &ctx.id]);
    assert_one_line_error(
        &out,
        &format!("checkpoint {}: container not running", ctx.id),
    );
    let out = ctx.rt(&["start", &ctx.id]);
    assert!(out.status.success(), "start: {}", text(&out));
    // No criu where --criu says; lazy pages; a bad cgroup mode: the container runs on.
    let out = ctx.rt(&[
        "--criu",
        "/nonexistent/criu",
        "checkpoint",
        "--image-path",
        img,
        &ctx.id,
    ]);
    assert_one_line_error(&out, "criu not found at /nonexistent/criu");
    let out = ctx.rt(&["checkpoint", "--lazy-pages", "--image-path", img, &ctx.id]);
    assert_one_line_error(&out, "--lazy-pages is not supported");
    let out = ctx.rt(&[
        "checkpoint",
        "--manage-cgroups-mode",
        "loose",
        "--image-path",
        img,
        &ctx.id,
    ]);
    assert_one_line_error(&out, "invalid --manage-cgroups-mode \"loose\"");
    assert_eq!(ctx.status(), "running");
    assert!(ctx.rt(&["delete", "--force", &ctx.id]).status.success());
    // Restore from a directory without a checkpoint: nothing made.
    std::fs::create_dir_all(scratch.join("empty")).unwrap();
    let empty = scratch.join("empty");
    let out = ctx.rt(&[
        "restore",
        "-d",
        "--image-path",
        empty.to_str().unwrap(),
        &ctx.id,
    ]);
    assert_one_line_error(&out, "holds no checkpoint");
    ctx.assert_clean();
}

#[test]
fn features_say_checkpointing_works_where_criu_is() {
    let ctx = Ctx::new("ckfeat", &["true"], |_| {});
    let out = ctx.rt(&["features"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let enabled = &v["annotations"]["org.opencontainers.runc.checkpoint.enabled"];
    assert_eq!(
        enabled,
        &serde_json::Value::from(criu_installed().to_string())
    );
}

/// `restore` under `--systemd-cgroup` makes the container's cgroup with the systemd driver,
/// as `create` does (it used to read `slice:prefix:name` as a cgroupfs path). This host's
/// hybrid layout refuses that driver (cgroup v2 only) before anything is made; the restore
/// into a real scope runs in the VM.
#[test]
fn restore_keeps_the_systemd_cgroup_driver() {
    let ctx = Ctx::new("cksysd", &["sleep", "100"], |c| {
        c["linux"]["cgroupsPath"] = serde_json::json!("machine.slice:husk:cksysd");
    });
    let images = ctx.bundle.parent().unwrap().join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("inventory.img"), b"not criu's").unwrap();
    std::fs::write(images.join("husk-externals.json"), b"[]").unwrap();
    let out = ctx.rt(&[
        "--systemd-cgroup",
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        &ctx.id,
    ]);
    assert_one_line_error(
        &out,
        &format!(
            "restore {}: cgroup: the systemd cgroup driver: not supported on this host: husk \
             implements it for cgroup v2 only",
            ctx.id
        ),
    );
    ctx.assert_clean();
}
