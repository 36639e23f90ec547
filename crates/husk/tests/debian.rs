//! A real distribution through the whole pipeline: a debootstrap'd Debian (this host's own
//! release, `scripts/debian-rootfs.sh`, cached under target/tmp) packed with the `tar` crate
//! into a three-layer image (whiteouts, an opaque dir, a new user), pushed to a real
//! docker-registry on 127.0.0.1, pulled and run with `husk run`. Run as root.

mod common;
use common::*;
use husk_image::registry::ClientOptions;
use std::path::{Path, PathBuf};
use std::process::Command;

/// debootstrap leaves these in the rootfs; an image would not ship them.
fn skipped(rel: &Path) -> bool {
    rel == Path::new("debootstrap")
        || rel == Path::new(".debian-rootfs-done")
        || (rel.parent() == Some(Path::new("var/cache/apt/archives"))
            && rel.extension().is_some_and(|e| e == "deb"))
}

/// The cached rootfs, built on first use. The script's failure is the test's failure.
fn debian_rootfs() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/debian-rootfs.sh");
    // debootstrap downloads from the package registry: outside the tests' namespace.
    let out = in_host_netns(&mut Command::new(&script))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/debian-rootfs.sh {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Append ROOT/REL and, for directories, what is below it (sorted; the contents of /proc,
/// /sys and /dev are runtime mounts and left out). Headers come from the files' metadata:
/// mode, uid, gid, mtime; symlinks stay symlinks, hard links become copies.
fn append_tree(b: &mut tar::Builder<Vec<u8>>, root: &Path, rel: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let rel = rel.join(name);
        if skipped(&rel) {
            continue;
        }
        let p = root.join(&rel);
        b.append_path_with_name(&p, &rel)
            .unwrap_or_else(|e| panic!("tar {}: {e}", p.display()));
        let runtime = ["proc", "sys", "dev"]
            .map(Path::new)
            .contains(&rel.as_path());
        if std::fs::symlink_metadata(&p).unwrap().is_dir() && !runtime {
            append_tree(b, root, &rel);
        }
    }
}

fn builder() -> tar::Builder<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.sparse(false);
    b.mode(tar::HeaderMode::Complete);
    b
}

/// A new root-owned file (or an empty whiteout marker).
fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

const USER: &str = "husky";

/// Layer 2: delete /etc/motd and /usr/share/doc/bash (whiteouts), make /etc/apt/apt.conf.d
/// opaque with one new file, add a user and group, and a home dir it owns. The parent dirs
/// are repeated with layer 1's metadata, as image builders do.
fn second_layer(root: &Path) -> Vec<u8> {
    let mut b = builder();
    for d in [
        "etc",
        "etc/apt",
        "etc/apt/apt.conf.d",
        "home",
        "usr",
        "usr/share",
        "usr/share/doc",
    ] {
        b.append_path_with_name(root.join(d), d).unwrap();
    }
    add_file(&mut b, "etc/.wh.motd", 0o644, b"");
    add_file(&mut b, "usr/share/doc/.wh.bash", 0o644, b"");
    add_file(&mut b, "etc/apt/apt.conf.d/.wh..wh..opq", 0o644, b"");
    add_file(
        &mut b,
        "etc/apt/apt.conf.d/99husk",
        0o644,
        b"APT::Install-Recommends \"false\";\n",
    );
    for (f, line) in [
        (
            "etc/passwd",
            format!("{USER}:x:4242:4242:husk test:/home/{USER}:/bin/bash\n"),
        ),
        ("etc/group", format!("{USER}:x:4242:\n")),
    ] {
        let mut data = std::fs::read(root.join(f)).unwrap();
        data.extend_from_slice(line.as_bytes());
        add_file(&mut b, f, 0o644, &data);
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o750);
    h.set_uid(4242);
    h.set_gid(4242);
    h.set_mtime(1_700_000_000);
    h.set_size(0);
    b.append_data(&mut h, format!("home/{USER}"), std::io::empty())
        .unwrap();
    b.into_inner().unwrap()
}

/// Layer 3: the image's command, a bash script.
fn third_layer() -> Vec<u8> {
    let mut b = builder();
    add_file(
        &mut b,
        "usr/local/bin/hello",
        0o755,
        b"#!/bin/bash\n. /etc/os-release\necho \"hello from $VERSION_CODENAME as $(id -un)\"\n",
    );
    b.into_inner().unwrap()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

#[test]
fn debootstrapped_debian_image_pulls_and_runs() {
    let t0 = std::time::Instant::now();
    let rootfs = debian_rootfs();
    let t_rootfs = t0.elapsed();

    let mut b = builder();
    append_tree(&mut b, &rootfs, Path::new(""));
    let base = b.into_inner().unwrap();
    let config = serde_json::json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["/usr/local/bin/hello"],
        "WorkingDir": "/",
    });
    let img = build_image_with_config(
        &[
            (base, Comp::Gzip),
            (second_layer(&rootfs), Comp::Zstd),
            (third_layer(), Comp::None),
        ],
        arch(),
        &config,
    );
    let t_image = t0.elapsed();

    let reg = RealRegistry::start(false, false);
    push_image(
        &reg.host(),
        &ClientOptions::default(),
        "debian",
        "minbase",
        &img,
    );
    let t_push = t0.elapsed();
    let t = TempDir::new("debian");
    let root = t.path().join("store");
    let image = format!("{}/debian:minbase", reg.host());
    husk_ok(&root, &["pull", &image]);
    let t_pull = t0.elapsed();

    // the image's Cmd: a script from layer 3, run by the rootfs's own (dynamic) bash
    let os_release = std::fs::read_to_string(rootfs.join("etc/os-release")).unwrap();
    let codename = os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .unwrap();
    let o = husk_ok(&root, &["run", "--rm", &image]);
    assert_eq!(o, format!("hello from {} as root\n", codename));

    // Debian's userland and dpkg database, merged-/usr symlinks, layer 2's whiteouts and
    // opaque dir; and the container's cgroup and runtime state gone once it exited
    let script = "cat /etc/debian_version
        readlink /bin
        dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' coreutils
        test -e /etc/motd && echo motd || echo no-motd
        test -e /usr/share/doc/bash && echo bash-doc || echo no-bash-doc
        test -d /usr/share/doc/coreutils && echo coreutils-doc
        ls -A /etc/apt/apt.conf.d
        cat /proc/self/cgroup";
    let o = husk_ok(
        &root,
        &[
            "run",
            "--rm",
            "--cgroupns",
            "host",
            &image,
            "/bin/bash",
            "-c",
            script,
        ],
    );
    let want = format!(
        "{}{}\ncoreutils ii \nno-motd\nno-bash-doc\ncoreutils-doc\n99husk\n",
        std::fs::read_to_string(rootfs.join("etc/debian_version")).unwrap(),
        std::fs::read_link(rootfs.join("bin")).unwrap().display()
    );
    assert!(o.starts_with(&want), "{o}");
    let cg = &o[want.len()..];
    let id = cgroup_dir(cg, "pids")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(!engine_cgroups()
        .iter()
        .any(|c| c.ends_with(&format!("/{id}"))));
    assert!(!engine_states().contains(&id));

    // the user layer 2 added, resolved from the image's /etc/passwd and /etc/group, both by
    // husk (--user) and by glibc inside
    let o = husk_ok(
        &root,
        &[
            "run",
            "--rm",
            "--user",
            USER,
            &image,
            "/bin/bash",
            "-c",
            "id -u; id -un; id -gn; stat -c '%U:%G %a' /home/husky; cd /home/husky && touch mine && ls -l mine",
        ],
    );
    let mut lines = o.lines();
    assert_eq!(lines.next(), Some("4242"), "{o}");
    assert_eq!(lines.next(), Some(USER), "{o}");
    assert_eq!(lines.next(), Some(USER), "{o}");
    assert_eq!(
        lines.next(),
        Some(format!("{USER}:{USER} 750").as_str()),
        "{o}"
    );
    assert!(
        lines.next().unwrap().contains(&format!(" {USER} {USER} ")),
        "{o}"
    );
    let o = husk_ok(&root, &["run", "--rm", "-u", USER, &image]);
    assert_eq!(o, format!("hello from {} as {USER}\n", codename));

    // nothing left: no containers, no mounts below the store
    assert!(containers(&root).is_empty(), "{:?}", containers(&root));
    assert!(mounts_below(&root).is_empty(), "{:?}", mounts_below(&root));
    eprintln!(
        "debian image test: rootfs {:.1?}, layers {:.1?}, push {:.1?}, pull {:.1?}, runs {:.1?}",
        t_rootfs,
        t_image - t_rootfs,
        t_push - t_image,
        t_pull - t_push,
        t0.elapsed() - t_pull
    );
}
