//! Volumes and `--mount`, checked from inside containers: a named volume outlives its
//! container and is shared by two; the image's content is copied into an empty volume with
//! its owners and modes (never following a symlink), or not with `nocopy`; anonymous
//! volumes for `-v /path` and the image's VOLUME, removed by `rm -v` and `--rm`; a volume in
//! use is never removed; prune and `system df`; `--mount` in its three types and its
//! errors; tmpfs and bind-device volumes; bind propagation from the host into the
//! container. Against a real docker-registry on 127.0.0.1. Run as root.

mod common;
use common::*;
use husk_image::registry::ClientOptions;
use husk_image::tar::{Header, Kind, Writer};
use std::path::Path;
use std::process::Command;

/// The image's /data: owned by 1000:1000 (mode 0750) with a file, a private subdir, and
/// two symlinks that point out of the image (copied as links, never followed); and
/// /escape, a link to ../../…/etc.
fn data_layer() -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    let entry = |w: &mut Writer<Vec<u8>>, kind, path: &str, mode, data: &[u8]| {
        let mut h = Header::new(kind, path);
        h.mode = mode;
        h.uid = 1000;
        h.gid = 1000;
        h.size = data.len() as u64;
        w.append(&h, &mut &data[..]).unwrap();
    };
    entry(&mut w, Kind::Dir, "data", 0o750, b"");
    entry(&mut w, Kind::File, "data/hello", 0o640, b"hello\n");
    entry(&mut w, Kind::Dir, "data/sub", 0o700, b"");
    entry(&mut w, Kind::File, "data/sub/deep", 0o600, b"deep\n");
    w.symlink("data/passwd", "/etc/passwd").unwrap();
    w.symlink("data/up", "../../../../../../../etc").unwrap();
    // A volume destination that is itself a link out of the image: resolved inside it.
    w.symlink("escape", "../../../../../../../../etc").unwrap();
    w.finish().unwrap()
}

/// busybox (sh -c as the entrypoint, root as the user) with VOLUME /data, on a registry of
/// the test's own; `s.image` is this image.
fn volume_image(tag: &str) -> Setup {
    let mut s = setup(tag);
    let config = serde_json::json!({
        "Env": ["PATH=/bin"],
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["true"],
        "Volumes": {"/data": {}},
    });
    let img = build_image_with_config(
        &[
            (busybox_base_layer(), Comp::Gzip),
            (data_layer(), Comp::Gzip),
        ],
        "amd64",
        &config,
    );
    push_image(
        &s.reg.host(),
        &ClientOptions::default(),
        "vol",
        "latest",
        &img,
    );
    s.image = format!("{}/vol:latest", s.reg.host());
    husk_ok(&s.root, &["pull", &s.image]);
    s
}

/// `husk run [opts] --network none IMAGE SCRIPT`'s stdout (it must succeed).
fn sh(s: &Setup, opts: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--network", "none"];
    args.extend_from_slice(opts);
    args.extend([s.image.as_str(), script]);
    husk_ok(&s.root, &args)
}

/// Volume names, as `volume ls -q` lists them.
fn volume_names(s: &Setup) -> Vec<String> {
    husk_ok(&s.root, &["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn named_volume_copy_up_sharing_and_in_use() {
    let s = volume_image("vol-named");
    let _rm = RemoveAll(&s.root);
    // First mount: the image's /data copied in, owners and modes as in the image, the
    // symlinks as symlinks.
    let o = sh(
        &s,
        &["--rm", "-v", "data:/data"],
        "stat -c '%n %u:%g %a' /data /data/hello /data/sub /data/sub/deep; \
         cat /data/hello; readlink /data/passwd; readlink /data/up; echo kept > /data/new",
    );
    assert_eq!(
        o,
        "/data 1000:1000 750\n/data/hello 1000:1000 640\n/data/sub 1000:1000 700\n\
         /data/sub/deep 1000:1000 600\nhello\n/etc/passwd\n../../../../../../../etc\n",
    );
    let inspect = json(&husk_ok(&s.root, &["volume", "inspect", "data"]));
    let data = Path::new(inspect[0]["Mountpoint"].as_str().unwrap()).to_path_buf();
    assert_eq!(inspect[0]["Name"], "data");
    assert_eq!(inspect[0]["Driver"], "local");
    assert_eq!(inspect[0]["Scope"], "local");
    assert!(data.starts_with(&s.root), "{inspect}");
    // Nothing was followed: the links are links in the volume, the host's files untouched.
    assert!(std::fs::symlink_metadata(data.join("passwd"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(data.join("new")).unwrap(), "kept\n");
    // A destination that is a link out of the image copies the image's /etc, not the host's
    // (hostname, hosts, resolv.conf: the mount points of the container's own /etc files).
    sh(&s, &["--rm", "-v", "esc:/escape"], "true");
    let esc = s.root.join("volumes/esc/_data");
    let passwd = std::fs::read_to_string(esc.join("passwd")).unwrap();
    assert!(passwd.contains("app:x:1000:1000"), "{passwd}");
    let names: Vec<String> = std::fs::read_dir(&esc)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n == "fstab" || n == "os-release"),
        "{names:?}"
    );
    husk_ok(&s.root, &["volume", "rm", "esc"]);

    // It outlives the container, is not copied into again, and two containers share it.
    let id = sh(
        &s,
        &["-d", "--name", "writer", "-v", "data:/data"],
        "echo from-writer > /data/shared; exec sleep 1000",
    );
    assert_eq!(id.trim().len(), 64);
    let o = sh(
        &s,
        &["--rm", "-v", "data:/data:ro"],
        "for i in 1 2 3 4 5 6 7 8 9 10; do test -e /data/shared && break; sleep 0.2; done; \
         cat /data/new /data/shared; touch /data/x 2>/dev/null || echo read-only",
    );
    assert_eq!(o, "kept\nfrom-writer\nread-only\n");
    let c = json(&husk_ok(&s.root, &["inspect", "writer"]));
    let m = &c[0]["Mounts"][0];
    assert_eq!(
        (
            &m["Type"],
            &m["Name"],
            &m["Destination"],
            &m["Driver"],
            &m["RW"]
        ),
        (
            &"volume".into(),
            &"data".into(),
            &"/data".into(),
            &"local".into(),
            &true.into()
        ),
        "{c}"
    );
    assert_eq!(m["Source"], data.display().to_string());

    // In use by a running, then by a stopped container: never removed, -f or not.
    for args in [
        &["volume", "rm", "data"][..],
        &["volume", "rm", "-f", "data"],
    ] {
        let (code, _, e) = out(&s.root, args);
        assert_eq!(code, 1, "{e}");
        assert!(
            e.contains("volume is in use") && e.contains(id.trim()),
            "{e}"
        );
    }
    husk_ok(&s.root, &["stop", "-t", "0", "writer"]);
    let (code, _, e) = out(&s.root, &["volume", "rm", "data"]);
    assert!(code == 1 && e.contains("volume is in use"), "{e}");
    let (code, _, _) = out(&s.root, &["volume", "prune", "-f"]);
    assert_eq!(code, 0);
    assert_eq!(volume_names(&s), ["data"], "prune keeps a volume in use");
    husk_ok(&s.root, &["rm", "-v", "writer"]);
    assert_eq!(volume_names(&s), ["data"], "rm -v keeps named volumes");
    husk_ok(&s.root, &["volume", "rm", "data"]);
    assert!(volume_names(&s).is_empty() && !data.exists());
    let (code, _, e) = out(&s.root, &["volume", "rm", "data"]);
    assert!(code == 1 && e.contains("no such volume: data"), "{e}");
    husk_ok(&s.root, &["volume", "rm", "-f", "data"]);
}

#[test]
fn nocopy_anonymous_volumes_rm_v_and_prune() {
    let s = volume_image("vol-anon");
    let _rm = RemoveAll(&s.root);
    // nocopy: the volume stays empty (and keeps its own mode)
    let o = sh(
        &s,
        &["--rm", "-v", "empty:/data:nocopy"],
        "ls -A /data; echo end",
    );
    assert_eq!(o, "end\n");
    let o = sh(
        &s,
        &[
            "--rm",
            "--mount",
            "source=empty2,target=/data,volume-nocopy",
        ],
        "ls -A /data; echo end",
    );
    assert_eq!(o, "end\n");
    assert_eq!(volume_names(&s), ["empty", "empty2"]);

    // The image's VOLUME gets an anonymous volume, filled from the image; `rm` keeps it
    // (dangling), `rm -v` takes -v /path's and the image's with the container.
    sh(&s, &["--name", "a1"], "echo one > /data/one");
    let anon: Vec<String> = volume_names(&s)
        .into_iter()
        .filter(|n| !n.starts_with("empty"))
        .collect();
    assert!(anon.len() == 1 && anon[0].len() == 64, "{anon:?}");
    let c = json(&husk_ok(&s.root, &["inspect", "a1"]));
    assert_eq!(c[0]["Mounts"][0]["Name"], anon[0].as_str(), "{c}");
    assert_eq!(c[0]["Mounts"][0]["Destination"], "/data");
    let ps = husk_ok(&s.root, &["ps", "-a", "--format", "{{.Mounts}}"]);
    assert_eq!(ps.trim(), anon[0]);
    husk_ok(&s.root, &["rm", "a1"]);
    let dangling = husk_ok(
        &s.root,
        &["volume", "ls", "-q", "--filter", "dangling=true"],
    );
    assert_eq!(dangling.lines().count(), 3, "{dangling}");
    sh(
        &s,
        &["--name", "a2", "-v", "/scratch"],
        "echo x > /scratch/x; ls /data",
    );
    assert_eq!(volume_names(&s).len(), 5);
    husk_ok(&s.root, &["rm", "-v", "a2"]);
    assert_eq!(volume_names(&s).len(), 3, "rm -v removed a2's two volumes");
    // --rm removes them too, foreground and detached
    sh(&s, &["--rm", "-v", "/scratch"], "true");
    let id = sh(&s, &["-d", "--rm", "-v", "/scratch"], "true");
    let _ = husk(&s.root, &["wait", id.trim()]);
    for _ in 0..100 {
        if volume_names(&s).len() == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(volume_names(&s).len(), 3, "--rm left anonymous volumes");

    // system df counts them; prune removes the unused ones only
    husk_ok(
        &s.root,
        &["create", "--name", "keeper", "-v", "empty:/data", &s.image],
    );
    let df = husk_ok(&s.root, &["system", "df", "--format", "{{json .}}"]);
    let row = df
        .lines()
        .map(json)
        .find(|r| r["Type"] == "Local Volumes")
        .unwrap();
    assert_eq!(
        (&row["TotalCount"], &row["Active"]),
        (&3.into(), &1.into()),
        "{df}"
    );
    let o = husk_ok(&s.root, &["volume", "prune", "-f"]);
    assert!(o.starts_with("Deleted Volumes:\n"), "{o}");
    assert_eq!(volume_names(&s), ["empty"]);
    husk_ok(&s.root, &["rm", "keeper"]);
    let o = husk_ok(&s.root, &["system", "prune", "-f", "--volumes"]);
    assert!(o.contains("Deleted Volumes:\nempty\n"), "{o}");
    assert!(volume_names(&s).is_empty());
}

#[test]
fn volume_create_ls_inspect_and_errors() {
    let s = volume_image("vol-cli");
    let _rm = RemoveAll(&s.root);
    assert_eq!(
        husk_ok(&s.root, &["volume", "create", "--label", "team=a", "v1"]),
        "v1\n"
    );
    assert_eq!(husk_ok(&s.root, &["volume", "create", "v1"]), "v1\n");
    let random = husk_ok(&s.root, &["volume", "create"]);
    assert_eq!(random.trim().len(), 64);
    let ls = husk_ok(&s.root, &["volume", "ls"]);
    assert!(ls.starts_with("DRIVER    VOLUME NAME\n"), "{ls}");
    assert!(ls.contains("local     v1\n"), "{ls}");
    let only = husk_ok(
        &s.root,
        &[
            "volume",
            "ls",
            "--filter",
            "label=team=a",
            "--format",
            "{{.Name}} {{.Labels}}",
        ],
    );
    assert_eq!(only, "v1 team=a\n");
    let i = json(&husk_ok(&s.root, &["volume", "inspect", "v1"]));
    assert_eq!(i[0]["Labels"], serde_json::json!({"team": "a"}));
    assert!(i[0]["CreatedAt"].as_str().unwrap().ends_with('Z'), "{i}");
    assert_eq!(
        husk_ok(&s.root, &["volume", "inspect", "-f", "{{.Driver}}", "v1"]),
        "local\n"
    );
    for (args, says) in [
        (&["volume", "create", "bad/name"][..], "invalid characters"),
        (&["volume", "create", "--driver", "nfs", "x"], "local"),
        (&["volume", "create", "--opt", "type=nfs", "x"], "type=nfs"),
        (
            &["volume", "create", "--opt", "type=none,device=/tmp", "x"],
            "o=bind",
        ),
        (&["volume", "create", "--opt", "colour=red", "x"], "colour"),
        (&["volume", "inspect", "nope"], "no such volume: nope"),
        (&["volume", "ls", "--filter", "colour=red"], "colour"),
    ] {
        let (code, o, e) = out(&s.root, args);
        assert!(code != 0 && o.is_empty(), "{args:?}: {o}");
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.contains(says), "{args:?}: {e}");
    }
    assert_eq!(volume_names(&s).len(), 2);
}

#[test]
fn mount_flag_types_and_errors() {
    let s = volume_image("vol-mount");
    let _rm = RemoveAll(&s.root);
    let host = s.t.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "host file\n").unwrap();
    let bind = format!("type=bind,source={},target=/b,readonly", host.display());
    let o = sh(
        &s,
        &[
            "--rm",
            "--mount",
            &bind,
            "--mount",
            "type=volume,src=mv,dst=/data",
            "--mount",
            "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770",
        ],
        "cat /b/f; touch /b/x 2>/dev/null || echo ro; ls /data; stat -c %a /t; \
         grep ' /t ' /proc/self/mountinfo | sed 's/.* - //'; \
         grep ' /b ' /proc/self/mountinfo | cut -d' ' -f6",
    );
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(
        &lines[..7],
        ["host file", "ro", "hello", "passwd", "sub", "up", "1770"],
        "{o}"
    );
    assert!(
        lines[7].starts_with("tmpfs ") && lines[7].contains("size=1024k"),
        "{o}"
    );
    assert!(lines[8].split(',').any(|f| f == "ro"), "{o}");
    assert!(volume_names(&s).contains(&"mv".to_string()));

    // Bad forms: exit 125, one line naming the flag, nothing made.
    let before = volume_names(&s);
    let missing = "type=bind,source=/no/such/dir,target=/x".to_string();
    for (flag, value, says) in [
        ("--mount", "type=bind,target=/x", "source"),
        ("--mount", missing.as_str(), "does not exist"),
        ("--mount", "type=volume,src=v", "target"),
        ("--mount", "type=tmpfs,src=x,dst=/t", "no source"),
        (
            "--mount",
            "type=volume,dst=/x,bind-propagation=rslave",
            "bind-propagation",
        ),
        ("--mount", "type=cephfs,dst=/x", "cephfs"),
        ("--mount", "dst=/x,colour=red", "colour"),
        ("-v", "bad name:/x", "invalid characters"),
        ("-v", "v:/x:rshared", "bind"),
        ("-v", "v:/", "cannot be /"),
    ] {
        let (code, o, e) = out(
            &s.root,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                flag,
                value,
                &s.image,
                "true",
            ],
        );
        assert_eq!(code, 125, "{flag} {value}: {e}");
        assert!(
            o.is_empty() && e.lines().count() == 1,
            "{flag} {value}: {e}"
        );
        assert!(e.contains(flag) && e.contains(says), "{flag} {value}: {e}");
    }
    let (code, _, e) = out(
        &s.root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "a:/x",
            "--mount",
            "src=b,dst=/x/",
            &s.image,
            "true",
        ],
    );
    assert!(
        code == 125 && e.contains("duplicate mount point: /x"),
        "{e}"
    );
    // A run that fails after its volumes were made (the kernel refuses the tmpfs size)
    // takes along the ones it made: the new named one and the image's anonymous one.
    let (code, _, e) = out(
        &s.root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "fresh:/f",
            "--tmpfs",
            "/t:size=lots",
            &s.image,
            "true",
        ],
    );
    assert!(code != 0 && e.contains("/t"), "{e}");
    assert_eq!(volume_names(&s), before);
    assert!(containers(&s.root).is_empty());
    assert!(mounts_below(&s.root).is_empty());
}

#[test]
fn tmpfs_and_bind_device_volumes() {
    let s = volume_image("vol-tmpfs");
    let _rm = RemoveAll(&s.root);
    husk_ok(
        &s.root,
        &[
            "volume",
            "create",
            "--opt",
            "type=tmpfs",
            "--opt",
            "o=size=2m,mode=1777",
            "tv",
        ],
    );
    // A fresh tmpfs per container, filled from the image (nocopy: empty).
    // (the copy takes the image directory's mode, 750, over o=mode=1777, as docker's)
    let probe = "grep ' /data ' /proc/self/mountinfo | sed 's/.* - //'; ls /data; \
                 stat -c %a /data; ls /data/mine 2>/dev/null; echo x > /data/mine";
    let o = sh(&s, &["--rm", "-v", "tv:/data"], probe);
    let lines: Vec<&str> = o.lines().collect();
    assert!(
        lines[0].starts_with("tmpfs ") && lines[0].contains("size=2048k"),
        "{o}"
    );
    assert_eq!(&lines[1..], ["hello", "passwd", "sub", "up", "750"], "{o}");
    let o = sh(&s, &["--rm", "-v", "tv:/data:nocopy"], probe);
    assert_eq!(o.lines().nth(1), Some("1777"), "{o}");
    let i = json(&husk_ok(&s.root, &["volume", "inspect", "tv"]));
    assert_eq!(
        i[0]["Options"],
        serde_json::json!({"type": "tmpfs", "o": "size=2m,mode=1777"})
    );

    // type=none,o=bind,device=DIR: that host directory, filled from the image when empty.
    let dir = s.t.path().join("device");
    std::fs::create_dir(&dir).unwrap();
    let dev = format!("device={}", dir.display());
    husk_ok(
        &s.root,
        &[
            "volume",
            "create",
            "--opt",
            "type=none",
            "--opt",
            "o=bind",
            "--opt",
            &dev,
            "bv",
        ],
    );
    sh(
        &s,
        &["--rm", "-v", "bv:/data"],
        "echo via-volume > /data/written",
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("written")).unwrap(),
        "via-volume\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("hello")).unwrap(),
        "hello\n"
    );
}

/// Unmounts (recursively, lazily) what a test mounted at the path, when dropped: the
/// TempDir's own `umount -R` only reaches a mount on the TempDir itself.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A tmpfs of the test's own at `dir`, shared (the host's / here is private), so that
/// propagation has a peer group to work with; unmounted when the returned guard goes.
#[must_use]
fn shared_mount(dir: &Path) -> Unmount {
    std::fs::create_dir_all(dir).unwrap();
    let ok = |args: &[&str]| {
        let st = Command::new("mount").args(args).status().unwrap();
        assert!(st.success(), "mount {args:?}");
    };
    ok(&["-t", "tmpfs", "husk-prop", dir.to_str().unwrap()]);
    let guard = Unmount(dir.to_path_buf());
    ok(&["--make-shared", dir.to_str().unwrap()]);
    guard
}

#[test]
fn bind_propagation_reaches_the_container() {
    let s = volume_image("vol-prop");
    let _rm = RemoveAll(&s.root);
    let src = s.t.path().join("shared");
    let _unmount = shared_mount(&src);
    let private = s.t.path().join("private");
    std::fs::create_dir(&private).unwrap();
    // Each bind's propagation as the container's mountinfo shows it.
    let bind = |p: &str, opts: &str| format!("{}:{p}:{opts}", src.display());
    let id = sh(
        &s,
        &[
            "-d",
            "--name",
            "prop",
            "-v",
            &bind("/slave", "rslave"),
            "-v",
            &bind("/shared", "rshared"),
            "-v",
            &bind("/private", "rprivate"),
        ],
        "exec sleep 1000",
    );
    assert_eq!(id.trim().len(), 64);
    let mountinfo = husk_ok(&s.root, &["exec", "prop", "cat", "/proc/self/mountinfo"]);
    let fields = |mp: &str| -> Vec<String> {
        let l = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(mp))
            .unwrap_or_else(|| panic!("{mp} not mounted: {mountinfo}"));
        let f: Vec<&str> = l.split(' ').collect();
        let end = f.iter().position(|x| *x == "-").unwrap();
        f[6..end]
            .iter()
            .map(|x| x.split(':').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(fields("/slave"), ["master"], "{mountinfo}");
    assert!(
        fields("/shared").contains(&"shared".to_string()),
        "{mountinfo}"
    );
    assert!(fields("/private").is_empty(), "{mountinfo}");

    // A mount made on the host below the source shows up in the slave and shared binds.
    let sub = src.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "husk-prop-sub", sub.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(sub.join("from-host"), "arrived\n").unwrap();
    let o = husk_ok(
        &s.root,
        &[
            "exec",
            "prop",
            "sh",
            "-c",
            "cat /slave/sub/from-host /shared/sub/from-host; \
          ls /private/sub; echo end",
        ],
    );
    assert_eq!(o, "arrived\narrived\nend\n");
    husk_ok(&s.root, &["rm", "-f", "prop"]);

    // Asking for propagation from a private mount says what is needed (as docker).
    let v = format!("{}:/p:rslave", private.display());
    let (code, _, e) = out(
        &s.root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &v,
            &s.image,
            "true",
        ],
    );
    assert_eq!(code, 125, "{e}");
    assert!(e.contains("not a shared or slave mount"), "{e}");
}
