//! `husk commit`: a container's changes become a layer (whiteouts, opaque dirs, hard links,
//! file capabilities kept), the image runs, the same changes at the same `--timestamp`
//! give the same image id, zstd layers travel through a registry, and other tools take the
//! images: skopeo, podman and docker from the loopback registry, docker also from `husk save`.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Changes of every kind a layer must carry, made as root in the container.
const SCRIPT: &str = "busybox rm /srv/new; \
     busybox rm -r /opq; busybox mkdir /opq; echo fresh > /opq/fresh; \
     echo h > /srv/a; busybox ln /srv/a /srv/b; \
     busybox mkdir /srv/cap; busybox cp /bin/busybox /srv/cap/busybox; busybox chmod 755 /srv/cap/busybox";

/// security.capability v2: effective, permitted CAP_CHOWN (in every default set).
const CAP_CHOWN: [u8; 20] = [1, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Run SCRIPT in a new container `name`, then give its /srv/cap/busybox a file capability
/// (busybox has no setcap: written on the upper dir, where the container's write would go;
/// named busybox, which takes its applet from argv[1] only under that name).
fn make_changes(root: &Path, image: &str, name: &str) {
    husk_ok(root, &["run", "-u", "0", "--name", name, image, SCRIPT]);
    let id = husk_ok(root, &["inspect", "-f", "{{.Id}}", name]);
    let f = root
        .join("containers")
        .join(id.trim())
        .join("upper/srv/cap/busybox");
    let c = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            CAP_CHOWN.as_ptr().cast(),
            CAP_CHOWN.len(),
            0,
        )
    };
    assert_eq!(r, 0, "{}: {}", f.display(), std::io::Error::last_os_error());
}

fn inspect(root: &Path, image: &str) -> Value {
    serde_json::from_str::<Value>(&husk_ok(root, &["image", "inspect", image])).unwrap()[0].clone()
}

#[test]
fn commit_keeps_every_kind_of_change_and_is_reproducible() {
    let s = setup("commit");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    make_changes(root, &image, "x");

    // diff shows what the layer will hold (the runtime's mount points left out).
    let diff = husk_ok(root, &["diff", "x"]);
    for line in [
        "D /srv/new",
        "C /opq",
        "A /opq/fresh",
        "A /srv/a",
        "A /srv/b",
    ] {
        assert!(diff.lines().any(|l| l == line), "{line}: {diff}");
    }
    assert!(!diff.contains("/etc/hosts"), "{diff}");

    let (code, id, err) = out(
        root,
        &[
            "commit",
            "-c",
            r#"ENTRYPOINT ["/bin/cat"]"#,
            "-c",
            r#"CMD ["/opq/fresh"]"#,
            "-c",
            "ENV COMMITTED=yes",
            "-m",
            "made by the test",
            "-a",
            "tester",
            "x",
            "local/committed:1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(id.starts_with("sha256:") && id.trim().len() == 71, "{id}");
    let v = inspect(root, "local/committed:1");
    assert_eq!(v["Id"], id.trim());
    assert_eq!(v["Author"], "tester");
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 4, "{v}");
    let env = v["Config"]["Env"].to_string();
    assert!(
        env.contains("COMMITTED=yes") && env.contains("GREETING=hello"),
        "{env}"
    );
    assert_eq!(
        v["Config"]["WorkingDir"], "/srv",
        "the parent's config is kept"
    );

    // The config: CMD and ENTRYPOINT as --change set them.
    let (code, o, err) = out(root, &["run", "--rm", "local/committed:1"]);
    assert_eq!((code, o.as_str()), (0, "fresh\n"), "{err}");
    // Whiteout, opaque dir, hard link.
    let check = "busybox ls -a /opq; [ -e /srv/new ] && echo new-still-there; \
                 busybox stat -c %i /srv/a /srv/b; cat /srv/b";
    let (code, o, err) = out(
        root,
        &[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            "local/committed:1",
            "-c",
            check,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[..3], [".", "..", "fresh"], "{o}");
    assert_eq!(lines.len(), 6, "{o}");
    assert_eq!(lines[3], lines[4], "/srv/a and /srv/b are one inode: {o}");
    assert_eq!(lines[5], "h");
    // The file capability: an ordinary user running the file gets CAP_CHOWN (husk sets
    // no_new_privileges by default, under which exec grants no file capabilities).
    let (code, o, err) = out(
        root,
        &[
            "run",
            "--rm",
            "--security-opt",
            "no-new-privileges=false",
            "-u",
            "1000",
            "--entrypoint",
            "/srv/cap/busybox",
            "local/committed:1",
            "grep",
            "CapEff",
            "/proc/self/status",
        ],
    );
    assert_eq!((code, o.trim()), (0, "CapEff:\t0000000000000001"), "{err}");

    // history: the commit's entry on top of the parent's.
    let h = husk_ok(
        root,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}|{{.Comment}}",
            "local/committed:1",
        ],
    );
    assert_eq!(
        h.lines().next(),
        Some(format!("{SCRIPT}|made by the test").as_str()),
        "{h}"
    );

    // Reproducible: another container with the same changes, committed at the same
    // timestamp, is the same image (mtimes clamped, entries and headers fixed).
    // (a second later: without the clamp, the mtimes would differ)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    make_changes(root, &image, "y");
    let ts = ["--timestamp", "1700000000"];
    let a = husk_ok(root, &[&["commit"][..], &ts, &["x", "local/r:x"]].concat());
    let b = husk_ok(root, &[&["commit"][..], &ts, &["y", "local/r:y"]].concat());
    assert_eq!(a, b, "same changes, same timestamp: same image id");
    let c = husk_ok(
        root,
        &["commit", "--timestamp", "1700000001", "y", "local/r:z"],
    );
    assert_ne!(a, c);
    assert_eq!(
        inspect(root, "local/r:x")["Created"],
        "2023-11-14T22:13:20.000000000Z"
    );

    // The layer dirs went into place from tmp/ (unpacked while the blobs were written).
    let left: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".unpacked") || n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Errors: one line naming what failed.
    let (code, _, err) = out(root, &["commit", "nosuch", "local/n:1"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("commit nosuch: no such container: nosuch"),
        "{err}"
    );
    let (code, _, err) = out(root, &["commit", "-c", "RUN true", "x"]);
    assert_ne!(code, 0);
    assert!(err.contains("--change \"RUN true\": only CMD"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // A container on a flattened copy has no upper dir to take a layer from.
    let o = Command::new(HUSK)
        .arg("--root")
        .arg(root)
        .args(["run", "--name", "flat", &image, "true"])
        .env("HUSK_ROOTFS", "copy")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let (code, _, err) = out(root, &["commit", "flat"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("commit flat: its rootfs is a flattened copy"),
        "{err}"
    );
}

/// A running container is frozen while its upper dir is read, and thawed after.
#[test]
fn commit_of_a_running_container_pauses_it() {
    let s = setup("commit-running");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "-u",
            "0",
            "--name",
            "r",
            &image,
            "echo up > /tmp/state; busybox sleep 100",
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !husk(root, &["exec", "r", "cat", "/tmp/state"])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the container never wrote"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    husk_ok(root, &["commit", "r", "local/running:1"]);
    let events = husk_ok(
        root,
        &["events", "--until", "0s", "--format", "{{.Action}}"],
    );
    let acts: Vec<&str> = events.lines().collect();
    let p = acts.iter().rposition(|a| *a == "pause").expect("paused");
    assert_eq!(acts[p + 1..].first(), Some(&"unpause"), "{events}");
    assert!(acts.contains(&"commit"), "{events}");
    assert_eq!(
        husk_ok(root, &["inspect", "-f", "{{.State.Status}}", "r"]).trim(),
        "running"
    );
    let (code, o, err) = out(root, &["run", "--rm", "local/running:1", "cat /tmp/state"]);
    assert_eq!((code, o.as_str()), (0, "up\n"), "{err}");
    husk_ok(root, &["rm", "-f", "r"]);
}

/// zstd layers go through the loopback registry and come back runnable; skopeo sees an
/// OCI manifest; podman pulls and runs the gzip image, and one `husk build` made.
#[test]
fn committed_images_travel_to_skopeo_and_podman() {
    let s = setup("commit-interop");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    make_changes(root, &image, "x");
    husk_ok(root, &["commit", "--compression", "zstd", "x", "local/z:1"]);
    husk_ok(root, &["commit", "x", "local/g:1"]);
    let (z, g) = (
        format!("{}/committed/z:1", s.reg.host()),
        format!("{}/committed/g:1", s.reg.host()),
    );
    husk_ok(root, &["push", "-q", "local/z:1", &z]);
    husk_ok(root, &["push", "-q", "local/g:1", &g]);
    // and an image husk build makes (the same layer writer, its own manifest)
    let ctx = s.t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        format!("FROM {image}\nUSER root\nRUN busybox rm /srv/new && echo built > /built\n"),
    )
    .unwrap();
    let b = format!("{}/committed/b:1", s.reg.host());
    husk_ok(
        root,
        &[
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            &b,
            ctx.to_str().unwrap(),
        ],
    );
    husk_ok(root, &["push", "-q", &b]);

    // skopeo: an OCI manifest, the new layer zstd.
    let o = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{z}"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let m: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4);
    assert_eq!(
        layers[3]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let o = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{g}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // husk: the zstd image pulled into an empty store runs.
    let other = s.t.path().join("other");
    let _cleanup_other = RemoveAll(&other);
    husk_ok(&other, &["pull", "-q", &z]);
    let (code, o, err) = out(&other, &["run", "--rm", &z, "cat /opq/fresh /srv/b"]);
    assert_eq!((code, o.as_str()), (0, "fresh\nh\n"), "{err}");

    // podman (its own storage; runc: crun refuses this host's hybrid cgroups).
    let p = s.t.path().join("podman");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("containers.conf"),
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n",
    )
    .unwrap();
    let podman = |args: &[&str]| {
        let o = Command::new("timeout")
            .args([
                "--foreground",
                "120",
                "podman",
                "--runtime",
                "/usr/sbin/runc",
            ])
            .args(["--cgroup-manager=cgroupfs", "--events-backend=file"])
            .arg("--root")
            .arg(p.join("storage"))
            .arg("--runroot")
            .arg(p.join("run"))
            .arg("--tmpdir")
            .arg(p.join("tmp"))
            .args(args)
            .env("CONTAINERS_CONF", p.join("containers.conf"))
            .output()
            .unwrap();
        assert!(o.status.success(), "podman {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    podman(&["pull", "-q", "--tls-verify=false", &g]);
    let o = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-u",
        "0",
        &g,
        "ls /opq; [ -e /srv/new ] || echo new-gone; busybox stat -c %h /srv/a",
    ]);
    assert_eq!(o, "fresh\nnew-gone\n2\n");
    podman(&["pull", "-q", "--tls-verify=false", &b]);
    let o = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        &b,
        "cat /built; [ -e /srv/new ] || echo new-gone",
    ]);
    assert_eq!(o, "built\nnew-gone\n");
    let _ = Command::new("umount").arg("-R").arg(&p).output();
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `husk save` of a committed image → `docker load` (a private dockerd: own data and exec
/// roots, no bridge, no iptables) → `docker run` with docker's own runc; the same for an
/// image `husk build` made, which docker also pulls from the loopback registry. The parent's layers are all gzip: docker 20.10 cannot read
/// zstd ones.
#[test]
fn docker_loads_and_runs_a_saved_commit() {
    let s = setup("commit-docker");
    let root = s.root.as_path();
    let _cleanup = RemoveAll(root);
    let gz = [
        busybox_base_layer(),
        busybox_second_layer(),
        busybox_third_layer(),
    ]
    .map(|l| (l, Comp::Gzip));
    let img = build_image(&gz, "amd64");
    push_image(&s.reg.host(), &Default::default(), "busybox-gz", "1", &img);
    let image = format!("{}/busybox-gz:1", s.reg.host());
    make_changes(root, &image, "x");
    husk_ok(
        root,
        &[
            "commit",
            "-c",
            "ENV COMMITTED=yes",
            "x",
            "local/for-docker:1",
        ],
    );
    let archive = s.t.path().join("img.tar");
    husk_ok(
        root,
        &[
            "save",
            "-o",
            archive.to_str().unwrap(),
            "local/for-docker:1",
        ],
    );
    // and an image husk build makes
    let ctx = s.t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        format!("FROM {image}\nUSER root\nRUN echo built > /built\n"),
    )
    .unwrap();
    husk_ok(
        root,
        &[
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            "local/built:1",
            ctx.to_str().unwrap(),
        ],
    );
    let built = s.t.path().join("built.tar");
    husk_ok(
        root,
        &["save", "-o", built.to_str().unwrap(), "local/built:1"],
    );
    // and pushed to the loopback registry, for docker to pull (docker takes 127.0.0.0/8
    // registries over plain HTTP without being told)
    let pushed = format!("{}/built/b:1", s.reg.host());
    husk_ok(root, &["push", "-q", "local/built:1", &pushed]);

    let dir = s.t.path().join("docker");
    std::fs::create_dir_all(&dir).unwrap();
    let sock = format!("unix://{}", dir.join("docker.sock").display());
    let mut dockerd = Command::new("dockerd")
        .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .args(["-H", &sock])
        // This machine's hard limits are below docker's defaults.
        .args([
            "--default-ulimit",
            "nofile=1024:1024",
            "--default-ulimit",
            "nproc=4096:4096",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("dockerd.log")).unwrap())
        .spawn()
        .expect("dockerd (scripts/deps.sh installs docker.io)");
    let docker = |args: &[&str]| {
        Command::new("timeout")
            .args(["--foreground", "120", "docker", "-H", &sock])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !docker(&["info"]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "dockerd did not start: {}",
            std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let load = docker(&["load", "-i", archive.to_str().unwrap()]);
    let run = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-u",
        "0",
        "--entrypoint",
        "/bin/sh",
        "local/for-docker:1",
        "-c",
        "echo $COMMITTED; busybox ls /opq; [ -e /srv/new ] || echo new-gone; cat /srv/b",
    ]);
    let load_built = docker(&["load", "-i", built.to_str().unwrap()]);
    let run_built = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "local/built:1",
        "cat /built",
    ]);
    let pull = docker(&["pull", "-q", &pushed]);
    let run_pulled = docker(&["run", "--rm", "--network", "none", &pushed, "cat /built"]);
    unsafe { libc::kill(dockerd.id() as i32, libc::SIGTERM) };
    let _ = dockerd.wait();
    assert!(load.status.success(), "docker load: {}", text(&load));
    assert!(run.status.success(), "docker run: {}", text(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "yes\nfresh\nnew-gone\nh\n"
    );
    assert!(
        load_built.status.success(),
        "docker load: {}",
        text(&load_built)
    );
    assert!(
        run_built.status.success(),
        "docker run: {}",
        text(&run_built)
    );
    assert_eq!(String::from_utf8_lossy(&run_built.stdout), "built\n");
    assert!(pull.status.success(), "docker pull: {}", text(&pull));
    assert!(
        run_pulled.status.success(),
        "docker run: {}",
        text(&run_pulled)
    );
    assert_eq!(String::from_utf8_lossy(&run_pulled.stdout), "built\n");
}
