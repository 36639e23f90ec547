//! End-to-end tests of `husk` against a real registry (docker-registry on 127.0.0.1) and a
//! scriptable fake one. Run as root (overlay mounts, device nodes, chown).

mod common;
use common::*;
use husk_image::registry::ClientOptions;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn inspect(root: &Path, image: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&husk_ok(root, &["image", "inspect", image])).unwrap();
    v[0].clone()
}

#[test]
fn pull_layers_overlay_and_flattened_agree() {
    let reg = RealRegistry::start(false, false);
    let img = busybox_image("amd64");
    push_image(
        &reg.host(),
        &ClientOptions::default(),
        "busybox",
        "latest",
        &img,
    );
    let t = TempDir::new("pull");
    let root = t.path().join("store");
    let r = format!("{}/busybox:latest", reg.host());
    let id = husk_ok(&root, &["pull", &r]);
    assert_eq!(id.trim(), img.config.digest.hex());

    // images --format json: one docker row per line
    let list = husk_ok(&root, &["images", "--format", "json"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    let row: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        format!(
            "{}:{}",
            row["Repository"].as_str().unwrap(),
            row["Tag"].as_str().unwrap()
        ),
        r
    );
    assert_eq!(row["Digest"], img.manifest.digest.to_string());
    let table = husk_ok(&root, &["images"]);
    assert!(
        table.contains(&format!("{}/busybox", reg.host()))
            && table.contains(&img.config.digest.hex()[..12]),
        "{table}"
    );

    let info = inspect(&root, &r);
    assert_eq!(info["Config"]["User"], "app");
    // Bottom layer first.
    let dirs: Vec<String> = info["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .map(String::from)
        .collect();
    assert_eq!(dirs.len(), 3);
    // the unpacked layer 2 holds overlay whiteouts
    let wh = std::fs::symlink_metadata(Path::new(&dirs[1]).join("etc/remove-me")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);

    // overlay mount of the layers
    let merged = t.path().join("merged");
    std::fs::create_dir_all(&merged).unwrap();
    let lower = husk_ok(&root, &["image", "lowerdirs", &r]);
    let st = Command::new("mount")
        .args([
            "-t",
            "overlay",
            "overlay",
            "-o",
            &format!("ro,lowerdir={}", lower.trim()),
        ])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(st.success(), "overlay mount failed");
    let merged_tree = tree(&merged);
    // flattened copy
    let flat = t.path().join("flat");
    husk_ok(&root, &["image", "unpack", &r, flat.to_str().unwrap()]);
    let flat_tree = tree(&flat);
    let _ = Command::new("umount").arg(&merged).status();
    assert_eq!(
        merged_tree, flat_tree,
        "overlay view and flattened copy differ"
    );

    // what the image must contain
    assert!(!flat.join("etc/remove-me").exists(), "whiteout not applied");
    let mut opq: Vec<String> = std::fs::read_dir(flat.join("opq"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    opq.sort();
    assert_eq!(opq, vec!["c"], "opaque dir not applied");
    assert_eq!(std::fs::read(flat.join("srv/version")).unwrap(), b"3\n");
    assert_eq!(std::fs::read(flat.join("srv/new")).unwrap(), b"new\n");
    let bb = std::fs::metadata(flat.join("bin/busybox")).unwrap();
    assert_eq!(
        bb.ino(),
        std::fs::metadata(flat.join("bin/busybox-hardlink"))
            .unwrap()
            .ino()
    );
    assert_eq!(bb.mtime(), 1_600_000_000);
    assert_eq!(
        std::fs::read_link(flat.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let tool = std::fs::metadata(flat.join("srv/tool")).unwrap();
    assert_eq!(
        (tool.uid(), tool.gid(), tool.permissions().mode() & 0o7777),
        (1000, 1000, 0o4755)
    );
    assert_eq!(
        get_xattr(&flat.join("srv/tool"), "user.husk.test").as_deref(),
        Some(&b"xattr-value"[..])
    );
    let null = std::fs::symlink_metadata(flat.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert!(std::fs::symlink_metadata(flat.join("tmp/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        std::fs::metadata(flat.join("opq"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    // the image runs: busybox from the flattened rootfs
    let out = Command::new("chroot")
        .arg(&flat)
        .args(["/bin/sh", "-c", "echo from-image; cat /srv/version"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-image\n3\n");

    // process values from the image config, user resolved in the image's /etc/passwd
    let p: serde_json::Value =
        serde_json::from_str(&husk_ok(&root, &["image", "process", &r])).unwrap();
    assert_eq!(
        p["args"],
        serde_json::json!(["/bin/sh", "-c", "echo $GREETING"])
    );
    assert_eq!(
        (p["uid"].as_u64(), p["gid"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(p["additional_gids"], serde_json::json!([10]));
    assert_eq!(p["cwd"], "/srv");
    assert_eq!(p["exposed_ports"], serde_json::json!(["8080/tcp"]));
    assert!(p["env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("HOME=/home/app")));
    let p: serde_json::Value = serde_json::from_str(&husk_ok(
        &root,
        &["image", "process", &r, "--user", "root:wheel", "/bin/id"],
    ))
    .unwrap();
    assert_eq!(p["args"], serde_json::json!(["/bin/sh", "-c", "/bin/id"]));
    assert_eq!((p["uid"].as_u64(), p["gid"].as_u64()), (Some(0), Some(10)));

    // pulling again reuses everything
    let again = husk_ok(&root, &["pull", &r]);
    assert_eq!(again, id);
}

#[test]
fn multi_platform_index_selects_platform() {
    let reg = RealRegistry::start(false, false);
    let amd = busybox_image("amd64");
    let arm = build_image(&[(busybox_third_layer(), Comp::Gzip)], "arm64");
    let armv7 = build_image(&[(busybox_base_layer(), Comp::None)], "arm");
    push_index(
        &reg.host(),
        &ClientOptions::default(),
        "multi",
        "v1",
        &[
            (&amd, "amd64", None),
            (&arm, "arm64", Some("v8")),
            (&armv7, "arm", Some("v7")),
        ],
    );
    let t = TempDir::new("multi");
    let root = t.path().join("store");
    let r = format!("{}/multi:v1", reg.host());
    let host_arch = husk_image::manifest::Platform::host().architecture;
    if host_arch == "amd64" {
        let id = husk_ok(&root, &["pull", &r]);
        assert_eq!(id.trim(), amd.config.digest.hex());
    }
    let id = husk_ok(&root, &["pull", "--platform", "linux/arm64", &r]);
    assert_eq!(id.trim(), arm.config.digest.hex());
    let info = inspect(&root, &r);
    assert_eq!(
        (&info["Os"], &info["Architecture"], &info["Variant"]),
        (&"linux".into(), &"arm64".into(), &"v8".into()),
        "{info}"
    );
    let id = husk_ok(&root, &["pull", "--platform", "linux/arm/v7", &r]);
    assert_eq!(id.trim(), armv7.config.digest.hex());
    let out = husk(&root, &["pull", "--platform", "linux/s390x", &r]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!("husk: pull {r}: no image for platform linux/s390x (available: linux/amd64, linux/arm64/v8, linux/arm/v7)")
    );
}

#[test]
fn errors_are_one_line() {
    let reg = RealRegistry::start(false, false);
    let t = TempDir::new("errors");
    let root = t.path().join("store");
    let r = format!("{}/busybox:nope", reg.host());
    let out = husk(&root, &["pull", &r]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err == format!("husk: pull {r}: manifest unknown\n")
            || err == format!("husk: pull {r}: repository name not known to registry\n"),
        "{err:?}"
    );
    let out = husk(&root, &["pull", "127.0.0.1:1/Bad Name"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("husk: invalid reference"));
    let out = husk(&root, &["rmi", "nothere"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("image not known"));
}

#[test]
fn tls_registry_with_htpasswd_auth() {
    let reg = RealRegistry::start(true, true);
    let opts = reg.client_options();
    let img = build_image(&[(busybox_base_layer(), Comp::Gzip)], "amd64");
    push_image(&reg.host(), &opts, "secure/busybox", "1.0", &img);
    let t = TempDir::new("tls");
    let root = t.path().join("store");
    let r = format!("{}/secure/busybox:1.0", reg.host());
    let certs = opts.cert_dir.clone().unwrap();
    let certs = certs.to_str().unwrap();
    let (u, p) = reg.creds.clone().unwrap();

    // no CA: TLS verification fails (and no plain-http downgrade for a TLS registry)
    let out = husk(&root, &["pull", &r, "--creds", &format!("{u}:{p}")]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("UnknownIssuer"), "{e}");
    // ... and says what to do about it (it said only UnknownIssuer).
    assert!(
        e.contains(&format!(
            "DIR/{}/ca.crt and give --cert-dir DIR",
            reg.host()
        )),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    // CA but no credentials: how to give them
    let out = husk(&root, &["pull", &r, "--cert-dir", certs]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "husk: pull {r}: authentication required: log in with `husk login {}` \
             (or give --creds USER:PASSWORD or --authfile)",
            reg.host()
        )
    );
    // wrong password
    let authfile = t.path().join("auth.json");
    let af = authfile.to_str().unwrap();
    let out = husk(
        &root,
        &[
            "login",
            &reg.host(),
            "-u",
            &u,
            "-p",
            "wrong",
            "--cert-dir",
            certs,
            "--authfile",
            af,
        ],
    );
    assert!(!out.status.success());
    assert!(!authfile.exists());
    // login, pull with the stored credentials, logout
    let mut c = Command::new(HUSK)
        .args([
            "--root",
            root.to_str().unwrap(),
            "login",
            &reg.host(),
            "-u",
            &u,
            "--password-stdin",
            "--cert-dir",
            certs,
            "--authfile",
            af,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{p}\n").as_bytes())
        .unwrap();
    assert!(c.wait().unwrap().success());
    assert!(std::fs::read_to_string(&authfile)
        .unwrap()
        .contains(&reg.host()));
    assert_eq!(
        std::fs::metadata(&authfile).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let id = husk_ok(&root, &["pull", &r, "--cert-dir", certs, "--authfile", af]);
    assert_eq!(id.trim(), img.config.digest.hex());
    husk_ok(&root, &["logout", &reg.host(), "--authfile", af]);
    let out = husk(&root, &["pull", &r, "--cert-dir", certs, "--authfile", af]);
    assert!(!out.status.success());
    // --creds, and docker's config.json format via --authfile
    std::fs::write(
        &authfile,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            b64(&format!("{u}:{p}"))
        ),
    )
    .unwrap();
    husk_ok(&root, &["rmi", &r]);
    husk_ok(&root, &["pull", &r, "--cert-dir", certs, "--authfile", af]);
    husk_ok(&root, &["rmi", &r]);
    husk_ok(
        &root,
        &[
            "pull",
            &r,
            "--cert-dir",
            certs,
            "--creds",
            &format!("{u}:{p}"),
        ],
    );
}

fn b64(s: &str) -> String {
    let t = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut o = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                o.push(t[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

#[test]
fn bearer_token_flow_and_digest_mismatch() {
    let img = busybox_image("amd64");
    let fake = FakeRegistry::start(FakeState {
        bearer_token: Some("tok-123".into()),
        ..Default::default()
    });
    fake.add_image("app", "v1", &img);
    let t = TempDir::new("bearer");
    let root = t.path().join("store");
    let r = format!("{}/app:v1", fake.host());
    let arch = husk_image::manifest::Platform::host().architecture;
    let plat = format!("linux/{arch}");
    let _ = plat;
    if arch == "amd64" {
        husk_ok(&root, &["pull", &r]);
        let log = fake.state.lock().unwrap().log.clone();
        assert!(log.iter().any(|l| l.starts_with("GET /token")), "{log:?}");
    }

    // corrupt a layer: same size, one byte flipped
    let bad = busybox_image("amd64");
    {
        let mut s = fake.state.lock().unwrap();
        let mut data = bad.layers[0].data.clone();
        let n = data.len() - 20;
        data[n] ^= 0xff;
        s.blobs.insert(bad.layers[0].digest.to_string(), data);
    }
    let root2 = t.path().join("store2");
    let out = husk(&root2, &["pull", "--platform", "linux/amd64", &r]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("digest mismatch") || e.contains("layer"), "{e}");
    // nothing of it is kept
    assert!(!root2
        .join("blobs/sha256")
        .join(bad.layers[0].digest.hex())
        .exists());
    // (the other layers may have been cancelled mid-download by the failure: their partial
    // downloads are good bytes and stay, for the next pull to resume)
    let resumable: Vec<_> = bad.layers[1..]
        .iter()
        .map(|l| format!("{}.partial", l.digest.hex()))
        .collect();
    let leftovers: Vec<_> = std::fs::read_dir(root2.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock") && !resumable.contains(n))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(husk_ok(&root2, &["images", "--format", "json"]), "");
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn killed_pull_resumes_with_range() {
    // one big incompressible layer, served slowly
    let mut w = husk_image::tar::Writer::new(Vec::new());
    w.file("big.bin", 0o644, &random_bytes(6 << 20, 7)).unwrap();
    let img = build_image(
        &[
            (busybox_base_layer(), Comp::Gzip),
            (w.finish().unwrap(), Comp::Gzip),
        ],
        "amd64",
    );
    let fake = FakeRegistry::start(FakeState {
        throttle: 2 << 20,
        ..Default::default()
    });
    fake.add_image("big", "v1", &img);
    let t = TempDir::new("resume");
    let root = t.path().join("store");
    let r = format!("{}/big:v1", fake.host());
    let mut child = Command::new(HUSK)
        .args([
            "--root",
            root.to_str().unwrap(),
            "pull",
            "-q",
            "--platform",
            "linux/amd64",
            &r,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = root
        .join("tmp")
        .join(format!("{}.partial", img.layers[1].digest.hex()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if have > 1 << 20 {
            break;
        }
        assert!(Instant::now() < deadline, "download did not progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let have = std::fs::metadata(&partial).unwrap().len();
    // consistent store: no image, the big layer not committed, no verified blob
    assert_eq!(husk_ok(&root, &["images", "--format", "json"]), "");
    assert!(!root
        .join("blobs/sha256")
        .join(img.layers[1].digest.hex())
        .exists());
    assert!(!root
        .join("layers")
        .join(img.layers.len().to_string())
        .exists());

    fake.state.lock().unwrap().throttle = 0;
    fake.state.lock().unwrap().log.clear();
    husk_ok(&root, &["pull", "-q", "--platform", "linux/amd64", &r]);
    let log = fake.state.lock().unwrap().log.clone();
    let ranged: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(&img.layers[1].digest.to_string()) && l.contains("range=bytes="))
        .collect();
    assert_eq!(ranged.len(), 1, "{log:?}");
    let start: u64 = ranged[0]
        .split("range=bytes=")
        .nth(1)
        .unwrap()
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(
        start >= 1 << 20 && start <= have,
        "resumed from {start}, had {have}"
    );
    assert!(!partial.exists());
    let flat = t.path().join("flat");
    husk_ok(&root, &["image", "unpack", &r, flat.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(flat.join("big.bin")).unwrap(),
        random_bytes(6 << 20, 7)
    );

    // a registry that ignores Range: the partial is discarded and the pull still succeeds
    let root2 = t.path().join("store2");
    std::fs::create_dir_all(root2.join("tmp")).unwrap();
    let p2 = root2
        .join("tmp")
        .join(format!("{}.partial", img.layers[1].digest.hex()));
    std::fs::write(&p2, &img.layers[1].data[..4096]).unwrap();
    fake.state.lock().unwrap().ignore_range = true;
    husk_ok(&root2, &["pull", "-q", "--platform", "linux/amd64", &r]);
    // a garbage partial: resumed, fails verification, retried from scratch
    fake.state.lock().unwrap().ignore_range = false;
    let root3 = t.path().join("store3");
    std::fs::create_dir_all(root3.join("tmp")).unwrap();
    std::fs::write(
        root3
            .join("tmp")
            .join(format!("{}.partial", img.layers[1].digest.hex())),
        vec![0u8; 8192],
    )
    .unwrap();
    husk_ok(&root3, &["pull", "-q", "--platform", "linux/amd64", &r]);
}

#[test]
fn rmi_keeps_shared_layers_and_prune_cleans() {
    let reg = RealRegistry::start(false, false);
    let a = build_image(
        &[
            (busybox_base_layer(), Comp::Gzip),
            (busybox_second_layer(), Comp::Gzip),
        ],
        "amd64",
    );
    let b = build_image(
        &[
            (busybox_base_layer(), Comp::Gzip),
            (busybox_third_layer(), Comp::Gzip),
        ],
        "amd64",
    );
    push_image(&reg.host(), &ClientOptions::default(), "a", "1", &a);
    push_image(&reg.host(), &ClientOptions::default(), "b", "1", &b);
    let t = TempDir::new("rmi");
    let root = t.path().join("store");
    let (ra, rb) = (format!("{}/a:1", reg.host()), format!("{}/b:1", reg.host()));
    husk_ok(&root, &["pull", "--platform", "linux/amd64", &ra]);
    husk_ok(&root, &["pull", "--platform", "linux/amd64", &rb]);
    let layers = || std::fs::read_dir(root.join("layers")).unwrap().count();
    assert_eq!(layers(), 3, "base layer is shared");
    husk_ok(&root, &["tag", &ra, "local/a:extra"]);
    let out = husk_ok(&root, &["rmi", &ra]);
    assert!(out.contains("Untagged"), "{out}");
    assert_eq!(layers(), 3);
    husk_ok(&root, &["rmi", "docker.io/local/a:extra"]);
    assert_eq!(layers(), 2);
    let flat = t.path().join("flat");
    husk_ok(
        &root,
        &[
            "image",
            "unpack",
            &b.config.digest.hex()[..12],
            flat.to_str().unwrap(),
        ],
    );
    assert!(flat.join("srv/new").exists());
    husk_ok(&root, &["rmi", &rb]);
    assert_eq!(layers(), 0);
    std::fs::write(root.join("tmp/stale.partial"), b"x").unwrap();
    let out = husk_ok(&root, &["image", "prune"]);
    assert!(out.starts_with("Removed"), "{out}");
    assert_eq!(
        std::fs::read_dir(root.join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
}

#[test]
fn save_load_push_and_skopeo_interop() {
    let reg = RealRegistry::start(false, false);
    let img = busybox_image("amd64");
    push_image(&reg.host(), &ClientOptions::default(), "src", "v1", &img);
    let t = TempDir::new("saveload");
    let root = t.path().join("store");
    let r = format!("{}/src:v1", reg.host());
    husk_ok(&root, &["pull", "--platform", "linux/amd64", &r]);
    let before = tree(&{
        let f = t.path().join("flat1");
        husk_ok(&root, &["image", "unpack", &r, f.to_str().unwrap()]);
        f
    });
    for fmt in ["docker-archive", "oci-archive"] {
        let tarball = t.path().join(format!("img-{fmt}.tar"));
        husk_ok(
            &root,
            &["save", "--format", fmt, "-o", tarball.to_str().unwrap(), &r],
        );
        let root2 = t.path().join(format!("store-{fmt}"));
        let out = husk_ok(&root2, &["load", "-i", tarball.to_str().unwrap()]);
        assert!(out.contains(&r), "{out}");
        let f2 = t.path().join(format!("flat-{fmt}"));
        husk_ok(&root2, &["image", "unpack", &r, f2.to_str().unwrap()]);
        assert_eq!(tree(&f2), before);
        // skopeo reads what we wrote
        let src = if fmt == "docker-archive" {
            format!("docker-archive:{}", tarball.display())
        } else {
            format!("oci-archive:{}", tarball.display())
        };
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", &src])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect {src}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // push under a new name, then skopeo and husk see the same manifest digest
    let dest = format!("{}/pushed/busybox:v2", reg.host());
    husk_ok(&root, &["push", "-q", &r, &dest]);
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{dest}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], img.manifest.digest.to_string());

    // an image pushed by skopeo from an OCI layout is pulled by husk
    let layout = t.path().join("layout");
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--insecure-policy",
            "--src-tls-verify=false",
            &format!("docker://{r}"),
            &format!("oci:{}:v3", layout.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--insecure-policy",
            "--dest-tls-verify=false",
            &format!("oci:{}:v3", layout.display()),
            &format!("docker://{}/fromskopeo:v3", reg.host()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root3 = t.path().join("store3");
    husk_ok(
        &root3,
        &[
            "pull",
            "--platform",
            "linux/amd64",
            &format!("{}/fromskopeo:v3", reg.host()),
        ],
    );
    let f3 = t.path().join("flat3");
    husk_ok(
        &root3,
        &[
            "image",
            "unpack",
            &format!("{}/fromskopeo:v3", reg.host()),
            f3.to_str().unwrap(),
        ],
    );
    assert_eq!(tree(&f3), before);
}

/// The pull inside `run` shows what `husk pull` shows, on a terminal and without -q; it
/// printed nothing before.
#[test]
fn run_shows_its_pull_on_a_terminal() {
    let s = setup("run-pull-progress");
    let root = &s.root;
    let shown = |args: &str| {
        let o = on_a_terminal(root, args);
        assert!(o.status.success(), "{args}: {o:?}");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        husk_ok(root, &["rmi", &s.image]);
        text
    };
    let text = shown(&format!("run --rm {} 'echo ran'", s.image));
    assert!(
        text.contains(&format!("Unable to find image '{}' locally", s.image)),
        "{text}"
    );
    assert!(text.contains("blob "), "no progress bars: {text}");
    assert!(text.contains("ran"), "{text}");
    let text = shown(&format!("run --rm -q {} 'echo ran'", s.image));
    assert_eq!(text.trim(), "ran");
    // Not a terminal: only the container's output.
    let (code, o, e) = out(root, &["run", "--rm", &s.image, "echo ran"]);
    assert_eq!((code, o.as_str(), e.as_str()), (0, "ran\n", ""));
}

/// `husk login` without -p asks for the password on the terminal, without echoing it; with
/// a store root of its own (not the default), the credentials go to ROOT/auth.json, never
/// to the user's home, and that root's pulls use them.
#[test]
fn login_asks_on_the_terminal_and_a_root_keeps_its_logins() {
    let reg = RealRegistry::start(true, true);
    let opts = reg.client_options();
    let img = build_image(&[(busybox_base_layer(), Comp::Gzip)], "amd64");
    push_image(&reg.host(), &opts, "secure/busybox", "1.0", &img);
    let t = TempDir::new("login-tty");
    let root = t.path().join("store");
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let certs = opts.cert_dir.clone().unwrap();
    let certs = certs.to_str().unwrap();
    let (u, p) = reg.creds.clone().unwrap();

    // script gives husk a terminal, and types what we write on its stdin.
    let mut c = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{HUSK} --root {} login {} --cert-dir {certs}",
                root.display(),
                reg.host()
            ),
            "/dev/null",
        ])
        .env("SHELL", "/bin/sh")
        .env("HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::{Read, Write};
        let mut stdin = c.stdin.take().unwrap();
        let mut stdout = c.stdout.take().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let s2 = seen.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                s2.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let wait_for = |what: &str| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !seen.lock().unwrap().contains(what) {
                assert!(
                    Instant::now() < deadline,
                    "no {what:?} in {:?}",
                    seen.lock()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        // Typed when asked (typed ahead, the terminal would echo it before husk turns
        // echo off).
        wait_for("Username: ");
        stdin.write_all(format!("{u}\n").as_bytes()).unwrap();
        wait_for("Password: ");
        stdin.write_all(format!("{p}\n").as_bytes()).unwrap();
        wait_for("Login Succeeded");
        // script ends when its stdin does.
        drop(stdin);
        c.wait().unwrap();
        reader.join().unwrap();
        let o = seen.lock().unwrap().clone();
        let auth = root.join("auth.json");
        assert!(
            o.contains(&format!("Credentials saved in {}", auth.display())),
            "{o}"
        );
        // The username was echoed, the password never.
        assert!(o.contains(&u), "{o}");
        assert!(!o.contains(&p), "{o}");
    }
    assert!(std::fs::read_to_string(root.join("auth.json"))
        .unwrap()
        .contains(&reg.host()));
    assert_eq!(
        std::fs::read_dir(&home).unwrap().count(),
        0,
        "nothing in the user's home"
    );
    let r = format!("{}/secure/busybox:1.0", reg.host());
    let id = husk_ok(&root, &["pull", &r, "--cert-dir", certs]);
    assert_eq!(id.trim(), img.config.digest.hex());

    // No terminal to ask on: one line saying how to give the password instead.
    let mut c = Command::new(HUSK);
    c.args([
        "--root",
        root.to_str().unwrap(),
        "login",
        &reg.host(),
        "-u",
        &u,
    ])
    .env("HOME", &home)
    .stdin(Stdio::null());
    // A session of its own: no controlling terminal, even when the tests run on one.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::setsid();
            Ok(())
        })
    };
    let o = c.output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(e.contains("give it with --password"), "{e}");
}

/// `husk image verify` after a pull killed at several instants (downloading, unpacking,
/// committing) and a killed `rmi` finds nothing; a corrupted blob it reports, exits
/// non-zero, and `--repair` removes it so that the next pull fetches it again.
#[test]
fn killed_pulls_and_rmi_leave_a_store_that_verifies() {
    let mut w = husk_image::tar::Writer::new(Vec::new());
    w.file("big.bin", 0o644, &random_bytes(3 << 20, 11))
        .unwrap();
    for i in 0..2000 {
        w.file(&format!("many/f{i}"), 0o644, b"x").unwrap();
    }
    let img = build_image(
        &[
            (busybox_base_layer(), Comp::Gzip),
            (w.finish().unwrap(), Comp::Gzip),
        ],
        "amd64",
    );
    let fake = FakeRegistry::start(FakeState {
        throttle: 4 << 20,
        ..Default::default()
    });
    fake.add_image("verify", "v1", &img);
    let t = TempDir::new("verify");
    let root = t.path().join("store");
    let r = format!("{}/verify:v1", fake.host());
    let pull = ["pull", "-q", "--platform", "linux/amd64", r.as_str()];
    let verify_clean = |when: &str| {
        let (code, stdout, stderr) = out(&root, &["image", "verify"]);
        assert_eq!(code, 0, "verify after {when}: {stdout}{stderr}");
        assert!(stdout.ends_with(": 0 problems\n"), "after {when}: {stdout}");
    };
    let kill_after = |args: &[&str], ms: u64| {
        let mut child = Command::new(HUSK)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
    };
    for ms in [40, 250, 600, 900] {
        kill_after(&pull, ms);
        verify_clean(&format!("a pull killed after {ms} ms"));
    }
    fake.state.lock().unwrap().throttle = 0;
    husk_ok(&root, &pull);
    verify_clean("the pull");
    for ms in [1, 5, 20] {
        kill_after(&["rmi", &r], ms);
        verify_clean(&format!("rmi killed after {ms} ms"));
        husk_ok(&root, &pull);
    }

    // a flipped byte in the big layer's blob
    let blob = root.join("blobs/sha256").join(img.layers[1].digest.hex());
    let mut data = std::fs::read(&blob).unwrap();
    data[100] ^= 1;
    std::fs::write(&blob, data).unwrap();
    let (code, stdout, stderr) = out(&root, &["image", "verify", &r]);
    assert_ne!(code, 0, "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "blob {}: content does not match\n",
            img.layers[1].digest
        )),
        "{stdout}"
    );
    assert!(stderr.contains("--repair"), "{stderr}");
    husk_ok(&root, &["image", "verify", "--repair"]);
    assert!(!blob.exists());
    husk_ok(&root, &pull);
    verify_clean("repair and pull");
    assert!(blob.exists());
}

/// The unpack limits come from husk's config file: a gzip bomb past `max_layer_bytes`
/// fails the pull with one line naming the layer and the setting, and leaves no layer.
#[test]
fn unpack_limit_from_the_config_file_stops_a_gzip_bomb() {
    let mut w = husk_image::tar::Writer::new(Vec::new());
    w.file("zeros", 0o644, &vec![0u8; 8 << 20]).unwrap();
    let img = build_image(&[(w.finish().unwrap(), Comp::Gzip)], "amd64");
    assert!(img.layers[0].data.len() < 256 << 10, "not a bomb");
    let fake = FakeRegistry::start(FakeState::default());
    fake.add_image("bomb", "v1", &img);
    let t = TempDir::new("bomb");
    let root = t.path().join("store");
    let cfg = t.path().join("husk.json");
    std::fs::write(&cfg, br#"{"max_layer_bytes": 1048576}"#).unwrap();
    let r = format!("{}/bomb:v1", fake.host());
    let (code, _, stderr) = out(
        &root,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "pull",
            "-q",
            "--platform",
            "linux/amd64",
            &r,
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "husk: pull {r}: layer {}: unpacking stopped at the limit of 1048576 bytes \
             (max_layer_bytes in the settings)\n",
            img.layers[0].digest
        )
    );
    assert_eq!(std::fs::read_dir(root.join("layers")).unwrap().count(), 0);
    husk_ok(&root, &["pull", "-q", "--platform", "linux/amd64", &r]);

    // `load` (and `import`) obey the same setting: the bomb saved to an archive is
    // refused by a store whose settings say 1 MiB, and leaves no layer there either.
    let archive = t.path().join("bomb.tar");
    husk_ok(&root, &["save", "-o", archive.to_str().unwrap(), &r]);
    let other = t.path().join("other");
    let (code, _, stderr) = out(
        &other,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "load",
            "-q",
            "-i",
            archive.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("unpacking stopped at the limit of 1048576 bytes (max_layer_bytes"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(other.join("layers")).unwrap().count(), 0);
    let layer = t.path().join("bomb.tar.gz");
    std::fs::write(&layer, &img.layers[0].data).unwrap();
    let (code, _, stderr) = out(
        &other,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "import",
            layer.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("(max_layer_bytes"), "{stderr}");
    assert_eq!(std::fs::read_dir(other.join("layers")).unwrap().count(), 0);
}
