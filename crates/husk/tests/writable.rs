//! Limits on the container's writable layer: `--rootfs-tmpfs SIZE` (a tmpfs under the
//! overlay's upper dir: checked from inside the container, and a write past SIZE fails)
//! and `--storage-opt size=N` (a project quota; refused with what is needed where the
//! store's file system or the kernel has none). Run as root.

mod common;
use common::*;
use std::path::Path;

/// A tmpfs this test mounts (for a store on a file system without quotas), unmounted at
/// the end even when the test fails.
struct TmpfsMount<'a>(&'a Path);

impl Drop for TmpfsMount<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0)
            .status();
    }
}

#[test]
fn rootfs_on_a_tmpfs_of_its_own() {
    let s = setup("rootfs-tmpfs");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);

    let (code, _, err) = out(
        root,
        &[
            "run",
            "--network",
            "none",
            "--rootfs-tmpfs",
            "lots",
            &image,
            "true",
        ],
    );
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--rootfs-tmpfs lots"), "{err}");

    // Inside: / is the overlay whose upper is the 8 MiB tmpfs (statfs answers the upper's
    // size); a write past it fails, one within it works.
    let script = "df -k / | tail -n 1; \
                  head -c 2000000 /dev/zero > /small && echo small-ok; \
                  dd if=/dev/zero of=/big bs=1M count=20 || echo big-failed";
    let (code, o, err) = out(
        root,
        &[
            "run",
            "--network",
            "none",
            "-u",
            "0",
            "--name",
            "t1",
            "--rootfs-tmpfs",
            "8m",
            &image,
            script,
        ],
    );
    assert_eq!(code, 0, "{o}{err}");
    let size_k: u64 = o
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(size_k, 8192, "{o}");
    assert!(
        o.contains("small-ok\n") && o.contains("big-failed\n"),
        "{o}"
    );
    assert!(err.contains("No space left on device"), "{err}");

    // On the host: DIR/layer is that tmpfs, root's, 0755, and what the container wrote
    // is there (not on the disk); diff sees it; rm unmounts it.
    let dir = containers(root).pop().unwrap();
    let layer = dir.join("layer");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(layer.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{} is not a mount", layer.display()));
    assert!(
        line.contains(" - tmpfs ") && line.contains("size=8192k"),
        "{line}"
    );
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&layer).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o755));
    assert_eq!(
        std::fs::metadata(layer.join("upper/small")).unwrap().len(),
        2_000_000
    );
    assert!(husk_ok(root, &["diff", "t1"]).contains("A /small"));
    // Started again, the files are still there (the tmpfs lives as long as the container).
    let (code, o, _) = out(root, &["start", "-a", "t1"]);
    assert_eq!(code, 0);
    assert!(o.contains("small-ok"), "{o}");
    husk_ok(root, &["rm", "t1"]);
    assert!(mounts_below(root).is_empty(), "{:?}", mounts_below(root));
    assert!(containers(root).is_empty());
}

#[test]
fn storage_size_needs_project_quotas() {
    let s = setup("storage-opt");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    let (code, _, err) = out(
        root,
        &[
            "run",
            "--network",
            "none",
            "--storage-opt",
            "inodes=5",
            &image,
            "true",
        ],
    );
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("only size=SIZE"), "{err}");
    let (code, _, err) = out(
        root,
        &[
            "run",
            "--network",
            "none",
            "--storage-opt",
            "size=1m",
            "--rootfs-tmpfs",
            "1m",
            &image,
            "true",
        ],
    );
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("exclude each other"), "{err}");

    // A store on a tmpfs: refused, naming the file system and what would do.
    let t = TempDir::new("storage-opt-tmpfs");
    let mnt = t.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    assert!(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap()
        .success());
    let _unmount = TmpfsMount(&mnt);
    let store = mnt.join("store");
    let args = [
        "run",
        "--network",
        "none",
        "--storage-opt",
        "size=5m",
        &image,
        "true",
    ];
    let (code, _, err) = out(&store, &args);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("is on tmpfs") && err.contains("xfs") && err.contains("prjquota"),
        "{err}"
    );
    assert!(containers(&store).is_empty(), "{:?}", containers(&store));
    assert!(mounts_below(&store).is_empty());

    // The test store's own file system (ext4 here): refused too, saying why — these
    // machines' kernel has no quota support at all (no CONFIG_QUOTA, no CONFIG_XFS_QUOTA),
    // so enforcement itself cannot be shown on them.
    let (code, _, err) = out(root, &args);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("project quotas are not enforced on") && err.contains("prjquota"),
        "{err}"
    );
    assert!(containers(root).is_empty());
}
