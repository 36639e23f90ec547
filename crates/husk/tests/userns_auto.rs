//! `husk run --userns=auto`: each root container gets its own range of the `husk` user's
//! subordinate ids (the test adds `husk` lines to /etc/subuid and /etc/subgid when they are
//! missing, as an admin would), its layers seen through idmapped mounts (or a copy with
//! shifted owners), so a file its root creates belongs to an unprivileged id on the host;
//! ranges are disjoint and `rm` gives them back. Root only; `--network none` throughout.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The husk lines the test relies on (added once, kept: they are what an admin would add).
fn husk_subids() -> (u32, u32) {
    const LINE: &str = "husk:300000000:1000000\n";
    for f in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with("husk:")) {
            let mut t = text;
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            t.push_str(LINE);
            std::fs::write(f, t).unwrap();
        }
    }
    let text = std::fs::read_to_string("/etc/subuid").unwrap();
    let line = text.lines().find(|l| l.starts_with("husk:")).unwrap();
    let f: Vec<u32> = line
        .split(':')
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    (f[0], f[1])
}

/// `0 HOST SIZE` of the first line of a uid_map.
fn host_range(uid_map: &str) -> (u32, u32) {
    let f: Vec<u32> = uid_map
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!((f.len(), f[0]), (3, 0), "{uid_map}");
    (f[1], f[2])
}

fn id_of(root: &Path, name: &str) -> String {
    husk_ok(root, &["inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

#[test]
fn auto_ranges_own_files_are_disjoint_and_released() {
    let (start, count) = husk_subids();
    let t = TempDir::new("userns-auto");
    let root = t.path().join("store");
    let (code, _, err) = out_with_stdin(&root, &["import", "-", "img:1"], &busybox_base_layer());
    assert_eq!(code, 0, "husk import: {err}");
    let run = |extra: &[&str], cmd: &str| {
        let mut a = vec!["run", "--network", "none"];
        a.extend_from_slice(extra);
        a.extend(["img:1", "sh", "-c", cmd]);
        husk_ok(&root, &a)
    };

    // The host's namespace by default.
    let o = run(&["--rm"], "cat /proc/self/uid_map");
    assert_eq!(host_range(&o), (0, u32::MAX), "{o}");

    // A root that owns the image's files, writes as the first id of its range on the host.
    let o = run(
        &["--name", "a", "--userns=auto"],
        "cat /proc/self/uid_map; stat -c %u:%g /bin/busybox; touch /made-by-root && echo ok",
    );
    let lines: Vec<&str> = o.lines().collect();
    let (a_host, a_size) = host_range(lines[0]);
    assert_eq!(&lines[1..], ["0:0", "ok"], "{o}");
    assert_eq!(a_size, 65536);
    assert!(a_host >= start && a_host + a_size <= start + count, "{o}");
    let upper = root
        .join("containers")
        .join(id_of(&root, "a"))
        .join("upper");
    let md = std::fs::metadata(upper.join("made-by-root")).unwrap();
    assert_eq!((md.uid(), md.gid()), (a_host, a_host));
    // the store's shared layer itself is untouched: still root's
    let found = std::process::Command::new("find")
        .arg(&root)
        .args([
            "-path",
            "*/containers",
            "-prune",
            "-o",
            "-name",
            "busybox",
            "-print",
        ])
        .output()
        .unwrap();
    let found = String::from_utf8(found.stdout).unwrap();
    assert!(!found.is_empty());
    for f in found.lines() {
        assert_eq!(std::fs::metadata(f).unwrap().uid(), 0, "{f}");
    }

    // Two more at once: disjoint ranges; size= is honoured.
    husk_ok(
        &root,
        &[
            "run",
            "-d",
            "--name",
            "b",
            "--network",
            "none",
            "--userns=auto",
            "img:1",
            "sh",
            "-c",
            "sleep 60",
        ],
    );
    husk_ok(
        &root,
        &[
            "run",
            "-d",
            "--name",
            "c",
            "--network",
            "none",
            "--userns=auto:size=1000",
            "img:1",
            "sh",
            "-c",
            "sleep 60",
        ],
    );
    let range = |n: &str| host_range(&husk_ok(&root, &["exec", n, "cat", "/proc/self/uid_map"]));
    let (b_host, b_size) = range("b");
    let (c_host, c_size) = range("c");
    assert_eq!((b_size, c_size), (65536, 1000));
    let mut all = [(a_host, a_size), (b_host, b_size), (c_host, c_size)];
    all.sort();
    for w in all.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "overlapping ranges: {all:?}");
    }
    // exec'd processes are in the container's namespace: files they make are its ids
    husk_ok(&root, &["exec", "b", "sh", "-c", "touch /by-exec"]);
    let upper_b = root
        .join("containers")
        .join(id_of(&root, "b"))
        .join("upper");
    assert_eq!(
        std::fs::metadata(upper_b.join("by-exec")).unwrap().uid(),
        b_host
    );

    // rm gives the range back: the next container gets a's range again.
    husk_ok(&root, &["rm", "-f", "a", "b", "c"]);
    assert_eq!(
        std::fs::read_dir(root.join("userns"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>(),
        ["lock"]
    );
    let o = run(&["--rm", "--userns=auto"], "cat /proc/self/uid_map");
    assert_eq!(host_range(&o), (a_host, 65536));
    // a detached --rm container gives it back when its monitor removes it
    husk_ok(
        &root,
        &[
            "run",
            "-d",
            "--rm",
            "--name",
            "gone",
            "--network",
            "none",
            "--userns=auto",
            "img:1",
            "sh",
            "-c",
            "exit 0",
        ],
    );
    let ranges = || std::fs::read_dir(root.join("userns")).unwrap().count();
    let t0 = std::time::Instant::now();
    while (ranges() > 1 || !containers(&root).is_empty()) && t0.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(ranges(), 1, "only the lock is left");

    // create, then start (twice): the rootfs is mounted again through the same range
    husk_ok(
        &root,
        &[
            "create",
            "--name",
            "s",
            "--network",
            "none",
            "--userns=auto",
            "img:1",
            "cat",
            "/proc/self/uid_map",
        ],
    );
    for _ in 0..2 {
        let o = husk_ok(&root, &["start", "-a", "s"]);
        assert_eq!(host_range(&o), (a_host, 65536), "{o}");
    }
    husk_ok(&root, &["rm", "s"]);

    // Where idmapped mounts cannot be used: a copy with shifted owners, same result.
    let mut c = std::process::Command::new(HUSK);
    c.arg("--root").arg(&root).env("HUSK_ROOTFS", "copy").args([
        "run",
        "--name",
        "copy",
        "--network",
        "none",
        "--userns=auto",
        "img:1",
        "sh",
        "-c",
        "stat -c %u /bin/busybox; touch /x && echo ok",
    ]);
    let o = c.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\nok\n", "{o:?}");
    let rootfs = root
        .join("containers")
        .join(id_of(&root, "copy"))
        .join("rootfs");
    assert_eq!(std::fs::metadata(rootfs.join("x")).unwrap().uid(), a_host);
    assert_eq!(
        std::fs::metadata(rootfs.join("bin/busybox")).unwrap().uid(),
        a_host
    );
    husk_ok(&root, &["rm", "copy"]);

    // Bad values: one line, exit 125, nothing made.
    for bad in [
        "--userns=auto:size=0",
        "--userns=private",
        "--userns=keep-id",
    ] {
        let (code, _, err) = out(
            &root,
            &["run", "--rm", "--network", "none", bad, "img:1", "true"],
        );
        assert_eq!(code, 125, "{bad}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("--userns"), "{err}");
    }
    assert!(containers(&root).is_empty(), "{:?}", containers(&root));
    assert!(mounts_below(&root).is_empty(), "{:?}", mounts_below(&root));
}
