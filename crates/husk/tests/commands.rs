//! The commands around containers that docker users type: create/start, wait, rename, cp on
//! a stopped container, diff, export/import — each against a real container from a loopback
//! docker-registry, checking docker's output and that nothing is left behind. Run as root.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

/// Nothing of any container of this store on the host: no container dir, no mount below
/// the store, no runtime state of its containers.
fn nothing_left(root: &Path, ids: &[String]) {
    assert_eq!(containers(root), Vec::<std::path::PathBuf>::new());
    assert_eq!(mounts_below(root), Vec::<String>::new());
    let states = engine_states();
    for id in ids {
        assert!(!states.contains(id), "runtime state of {id} left");
    }
}

#[test]
fn create_start_wait_and_rename() {
    let s = setup("commands-create");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    husk_ok(root, &["pull", "-q", &image]);
    // (The image's entrypoint is `sh -c`: commands below are one shell string.)

    // create: the full id, a "created" container with nothing mounted and no runtime state.
    let id = husk_ok(root, &["create", "--name", "c1", &image, "echo hi; exit 3"]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(
        find_container_state(root, "c1").unwrap()["status"],
        "created"
    );
    assert_eq!(mounts_below(root), Vec::<String>::new());
    assert!(!engine_states().contains(&id));
    let (code, _, err) = out(root, &["create", "--name", "c1", &image]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("the name \"c1\" is already in use"), "{err}");

    // rename: silent; the new name finds it, the old one no more; a taken name is refused.
    assert_eq!(husk_ok(root, &["rename", "c1", "web"]), "");
    assert!(find_container_state(root, "c1").is_none());
    let other = husk_ok(root, &["create", "--name", "other", &image, "true"]);
    let (code, _, err) = out(root, &["rename", "web", "other"]);
    assert_ne!(code, 0);
    assert_eq!(
        err.trim(),
        "husk: rename web: the name \"other\" is already in use"
    );
    let (code, _, err) = out(root, &["rename", "web", "-bad"]);
    assert_ne!(code, 0, "{err}");

    // start runs it, detached; wait prints its exit code, as docker's.
    assert_eq!(husk_ok(root, &["start", "web"]), "web\n");
    assert_eq!(husk_ok(root, &["wait", "web"]), "3\n");
    assert_eq!(husk_ok(root, &["logs", "web"]), "hi\n");
    let e = find_container_state(root, "web").unwrap();
    assert_eq!(
        (e["status"].as_str(), e["exit_code"].as_i64()),
        (Some("exited"), Some(3))
    );
    // An exited container answers at once.
    assert_eq!(husk_ok(root, &["wait", "web"]), "3\n");

    // wait on a running container blocks until it exits; several, one line each.
    let bg = husk_ok(root, &["run", "-d", &image, "sleep 0.5; exit 5"]);
    let bg = bg.trim().to_string();
    assert_eq!(
        find_container_state(root, &bg[..12]).unwrap()["status"],
        "running"
    );
    assert_eq!(husk_ok(root, &["wait", &bg, "web"]), "5\n3\n");
    let (code, _, err) = out(root, &["wait", "nosuch"]);
    assert_ne!(code, 0);
    assert_eq!(err.trim(), "husk: no such container: nosuch");

    // `container prune` takes created containers too (docker's does).
    let pruned = husk_ok(root, &["container", "prune"]);
    let mut pruned: Vec<&str> = pruned.lines().collect();
    pruned.sort();
    let mut want = vec![id.as_str(), other.trim(), bg.as_str()];
    want.sort();
    assert_eq!(pruned, want);

    // A damaged record (cut short) is left out of ps with a warning, and a command naming
    // the container says which file is damaged; once repaired, the container is back.
    let dmg = husk_ok(root, &["create", "--name", "dmg", &image, "true"]);
    let dmg = dmg.trim().to_string();
    let file = root.join("containers").join(&dmg).join("container.json");
    let record = std::fs::read(&file).unwrap();
    std::fs::write(&file, &record[..record.len() / 2]).unwrap();
    let (code, rows, err) = out(root, &["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!((code, rows.as_str()), (0, ""), "{err}");
    let parsing = format!("parsing {}: ", file.display());
    assert!(
        err.starts_with("warning: container ") && err.contains(&parsing),
        "{err}"
    );
    for cmd in [
        &["inspect", "--type", "container", &dmg][..],
        &["start", &dmg],
    ] {
        let (code, _, err) = out(root, cmd);
        assert_eq!(code, 1, "{cmd:?}: {err}");
        assert!(
            err.starts_with("husk: ") && err.contains(&parsing),
            "{cmd:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    std::fs::write(&file, &record).unwrap();
    assert_eq!(husk_ok(root, &["rm", "dmg"]), "dmg\n");
    nothing_left(root, &[id, other.trim().to_string(), bg, dmg]);
}

/// Whether process `pid` still runs (a zombie does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, r)| !r.starts_with('Z'))
    })
}

/// A record cut short: plain `rm` refuses, naming the file and `rm -f`; `rm -f` removes
/// everything found without the record — a created container's directory, and a running
/// one's processes (its monitor's too), runtime state, cgroups, overlay mount and network
/// endpoint — with one warning line each.
#[test]
fn rm_f_of_a_damaged_record_leaves_nothing() {
    // The monitor comes to us once `run -d` exits (PID 1 does not reap here).
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    let s = setup("commands-damaged");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    let made = husk_ok(root, &["create", "--name", "made", &image, "true"]);
    let made = made.trim().to_string();
    let up = husk_ok(root, &["run", "-d", "--name", "up", &image, "sleep 600"]);
    let up = up.trim().to_string();
    let file = |id: &str| root.join("containers").join(id).join("container.json");
    let meta: Value = serde_json::from_slice(&std::fs::read(file(&up)).unwrap()).unwrap();
    let pids = [
        meta["pid"].as_i64().unwrap(),
        meta["monitor_pid"].as_i64().unwrap(),
    ];
    let pids = pids.map(|p| p as i32);
    assert!(pids.iter().all(|p| alive(*p)), "{meta}");
    let cgroups = || {
        engine_cgroups()
            .into_iter()
            .filter(|c| c.ends_with(&format!("/{up}")))
            .count()
    };
    assert!(cgroups() > 0 && engine_states().contains(&up));
    assert!(!mounts_below(root).is_empty());
    for id in [&made, &up] {
        let record = std::fs::read(file(id)).unwrap();
        std::fs::write(file(id), &record[..record.len() / 2]).unwrap();
    }

    let (code, _, err) = out(root, &["rm", &up[..12]]);
    assert_eq!(code, 1, "{err}");
    let refused = format!(
        "husk: rm {}: its record {} is damaged (",
        &up[..12],
        file(&up).display()
    );
    assert!(err.starts_with(&refused), "{err}");
    assert!(
        err.trim_end()
            .ends_with("rm -f removes what is left of the container"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        alive(pids[0]) && file(&up).exists(),
        "plain rm removed something"
    );

    let (code, o, err) = out(root, &["rm", "-f", &up[..12], &made[..12]]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(o, format!("{}\n{}\n", &up[..12], &made[..12]));
    let warnings: Vec<&str> = err.lines().collect();
    assert_eq!(warnings.len(), 2, "{err}");
    for (w, id) in warnings.iter().zip([&up, &made]) {
        let says = format!(
            "warning: container {}: its record {} was damaged (",
            &id[..12],
            file(id).display()
        );
        assert!(w.starts_with(&says), "{w}");
    }
    nothing_left(root, &[made, up.clone()]);
    assert_eq!(cgroups(), 0, "{:?}", engine_cgroups());
    // The container's process is gone; its monitor ends too, having nothing to restart.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) {
        assert!(std::time::Instant::now() < deadline, "{pids:?} still run");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for p in pids {
        unsafe { libc::waitpid(p, std::ptr::null_mut(), libc::WNOHANG) };
    }
    assert_eq!(containers(root), Vec::<std::path::PathBuf>::new());
}

#[test]
fn cp_and_diff_on_a_stopped_container() {
    let s = setup("commands-cp");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    let host = s.t.path().join("host");
    std::fs::create_dir(&host).unwrap();

    // One change of each kind, in a layer of the image (srv) and outside them.
    let script = "echo changed > /srv/version; echo added > /srv/added; \
                  busybox rm /srv/new; busybox mkdir /newdir; echo x > /newdir/f";
    husk_ok(root, &["run", "-u", "0", "--name", "s", &image, script]);
    let id = husk_ok(root, &["inspect", "-f", "{{.Id}}", "s"]);
    let id = id.trim().to_string();

    // diff: docker's letters and order, without the runtime's own mount points.
    assert_eq!(
        husk_ok(root, &["diff", "s"]),
        "A /newdir\nA /newdir/f\nC /srv\nA /srv/added\nD /srv/new\nC /srv/version\n"
    );

    // cp out of and into the stopped container, which stays unmounted after each.
    husk_ok(root, &["cp", "s:/srv/version", host.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.join("version")).unwrap(),
        "changed\n"
    );
    husk_ok(
        root,
        &["cp", "s:/newdir", host.join("got").to_str().unwrap()],
    );
    assert_eq!(std::fs::read_to_string(host.join("got/f")).unwrap(), "x\n");
    assert_eq!(mounts_below(root), Vec::<String>::new());
    std::fs::write(host.join("in"), "from the host\n").unwrap();
    husk_ok(root, &["cp", host.join("in").to_str().unwrap(), "s:/srv/"]);
    assert_eq!(mounts_below(root), Vec::<String>::new());
    assert!(husk_ok(root, &["diff", "s"]).contains("A /srv/in\n"));
    // It runs again after the copies (its rootfs mounted by its monitor, not by cp).
    husk_ok(root, &["start", "s"]);
    assert_eq!(husk_ok(root, &["wait", "s"]), "0\n");
    let (code, _, err) = out(root, &["cp", "s:/no/such", host.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.starts_with("husk: cp s:/no/such "), "{err}");
    assert_eq!(mounts_below(root), Vec::<String>::new());

    husk_ok(root, &["rm", "s"]);
    nothing_left(root, &[id]);
}

#[test]
fn container_and_image_subcommands_are_the_same_commands() {
    let s = setup("commands-aliases");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);

    assert!(husk_ok(root, &["image", "pull", "-q", &image]).trim().len() == 64);
    let short = husk_ok(root, &["images", "-q"]);
    for ls in [&["image", "ls", "-q"][..], &["image", "list", "-q"]] {
        assert_eq!(husk_ok(root, ls), short, "{ls:?}");
    }
    // docker's exit statuses through the group too: the container's code, 125 for ours.
    let (code, o, _) = out(
        root,
        &["container", "run", "--name", "a", &image, "echo hi; exit 7"],
    );
    assert_eq!((code, o.as_str()), (7, "hi\n"));
    let (code, _, err) = out(root, &["container", "run", "--memory", "x", &image]);
    assert_eq!(code, 125, "{err}");

    let ps = husk_ok(root, &["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("a Exited (7)"), "{ps}");
    for ls in ["ls", "list", "ps"] {
        let o = husk_ok(
            root,
            &["container", ls, "-a", "--format", "{{.Names}} {{.Status}}"],
        );
        assert_eq!(o, ps, "container {ls}");
    }
    assert_eq!(
        husk_ok(
            root,
            &["container", "inspect", "-f", "{{.State.ExitCode}}", "a"]
        ),
        "7\n"
    );
    assert_eq!(husk_ok(root, &["container", "rm", "a"]), "a\n");
    let (code, _, err) = out(root, &["container", "inspect", "a"]);
    assert_ne!(code, 0, "{err}");

    husk_ok(root, &["image", "tag", &image, "local/copy:1"]);
    let id = husk_ok(root, &["image", "inspect", "-f", "{{.Id}}", "local/copy:1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    husk_ok(root, &["image", "rm", "local/copy:1"]);
    let (code, _, _) = out(root, &["image", "inspect", "local/copy:1"]);
    assert_ne!(code, 0);
    nothing_left(root, &[]);
}

/// Each entry of a tar stream: path → (kind, mode, uid, link or content).
fn tar_entries(data: &[u8]) -> std::collections::BTreeMap<String, String> {
    use husk_image::tar::Reader;
    let mut r = Reader::new(data);
    let mut out = std::collections::BTreeMap::new();
    while let Some(e) = r.next_entry().unwrap() {
        let mut content = vec![0u8; e.size as usize];
        let mut got = 0;
        while got < content.len() {
            got += r.read_data(&mut content[got..]).unwrap();
        }
        let what = match e.kind {
            husk_image::tar::Kind::File if e.size < 100 => String::from_utf8_lossy(&content).into(),
            husk_image::tar::Kind::File => format!("{} bytes", e.size),
            husk_image::tar::Kind::Char => format!("{}:{}", e.devmajor, e.devminor),
            _ => String::from_utf8_lossy(&e.link).into_owned(),
        };
        let path = String::from_utf8_lossy(&e.path).into_owned();
        out.insert(path, format!("{:?} {:o} {} {what}", e.kind, e.mode, e.uid));
    }
    out
}

#[test]
fn export_and_import() {
    let s = setup("commands-export");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    let tarball = s.t.path().join("x.tar");

    let script = "echo changed > /srv/version; busybox rm /srv/new";
    husk_ok(root, &["run", "-u", "0", "--name", "x", &image, script]);
    let id = husk_ok(root, &["inspect", "-f", "{{.Id}}", "x"]);

    // export of the stopped container: its filesystem as it left it, links as links,
    // hard links as hard links, devices and owners kept; nothing stays mounted.
    husk_ok(root, &["export", "x", "-o", tarball.to_str().unwrap()]);
    assert_eq!(mounts_below(root), Vec::<String>::new());
    let data = std::fs::read(&tarball).unwrap();
    let entries = tar_entries(&data);
    let get = |p: &str| {
        entries
            .get(p)
            .cloned()
            .unwrap_or_else(|| panic!("no {p}: {entries:?}"))
    };
    assert_eq!(get("srv/version"), "File 600 0 changed\n");
    assert!(!entries.contains_key("srv/new"), "{entries:?}");
    assert_eq!(get("bin/sh"), "Symlink 777 0 busybox");
    assert_eq!(get("dev/null"), "Char 666 0 1:3");
    assert_eq!(get("srv/tool"), "File 4755 1000 tool\n");
    let hard = [get("bin/busybox"), get("bin/busybox-hardlink")];
    assert!(
        hard.contains(&"HardLink 755 0 bin/busybox".to_string())
            || hard.contains(&"HardLink 755 0 bin/busybox-hardlink".to_string()),
        "{hard:?}"
    );
    // To stdout, the same stream.
    let o = husk(root, &["export", "x"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, data);
    let (code, _, err) = out(
        root,
        &[
            "export",
            "nosuch",
            "-o",
            s.t.path().join("n").to_str().unwrap(),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("no such container: nosuch"), "{err}");
    assert!(!s.t.path().join("n").exists());

    // import: a one-layer image with the config --change says, runnable.
    let (code, imported, err) = out(
        root,
        &[
            "import",
            tarball.to_str().unwrap(),
            "local/imported:1",
            "-c",
            r#"CMD ["/bin/cat", "/srv/version"]"#,
            "--change",
            "ENV A=b",
            "-m",
            "from x",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        imported.starts_with("sha256:") && imported.trim().len() == 71,
        "{imported}"
    );
    let (code, o, err) = out(root, &["run", "--rm", "local/imported:1"]);
    assert_eq!((code, o.as_str()), (0, "changed\n"), "{err}");
    let v: Value =
        serde_json::from_str(&husk_ok(root, &["image", "inspect", "local/imported:1"])).unwrap();
    assert_eq!(v[0]["Id"], imported.trim());
    assert_eq!(
        v[0]["Config"]["Cmd"],
        serde_json::json!(["/bin/cat", "/srv/version"])
    );
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    // history: the import's one entry, docker's columns; the pulled image (no history in
    // its config) a row per layer, the id on the top one only.
    let h = husk_ok(root, &["history", "local/imported:1"]);
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines.len(), 2, "{h}");
    assert!(lines[0].starts_with("IMAGE "), "{h}");
    for col in ["CREATED ", "CREATED BY ", "SIZE ", "COMMENT"] {
        assert!(lines[0].contains(col), "{h}");
    }
    assert!(lines[1].starts_with(&imported.trim()[7..19]), "{h}");
    assert!(lines[1].ends_with("from x"), "{h}");
    let f = "{{.ID}}|{{.CreatedBy}}|{{.Comment}}";
    let h = husk_ok(
        root,
        &["image", "history", "--no-trunc", "--format", f, &image],
    );
    let img_id = husk_ok(root, &["image", "inspect", "-f", "{{.Id}}", &image]);
    assert_eq!(
        h,
        format!("{}||\n<missing>||\n<missing>||\n", img_id.trim())
    );
    let sizes = husk_ok(
        root,
        &["history", "-H=false", "--format", "{{.Size}}", &image],
    );
    let sizes: Vec<u64> = sizes.lines().map(|l| l.parse().unwrap()).collect();
    // Layers 3, 2, 1: the first holds busybox itself.
    assert!(sizes[2] > 100_000 && sizes[0] < 100, "{sizes:?}");
    assert_eq!(
        husk_ok(root, &["history", "-q", &image]),
        format!("{}\n<missing>\n<missing>\n", &img_id.trim()[7..19])
    );

    // From stdin, without a name; a --change it cannot apply is refused, nothing stored.
    let (code, o, err) = out_with_stdin(root, &["import", "-"], &data);
    assert_eq!(code, 0, "{err}");
    assert!(o.starts_with("sha256:") && o != imported, "{o}");
    let (code, _, err) = out_with_stdin(root, &["import", "-c", "RUN true", "-"], &data);
    assert_ne!(code, 0);
    assert_eq!(
        err.trim(),
        "husk: import -: --change \"RUN true\": only CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL and ONBUILD"
    );
    let tmp: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !tmp.iter()
            .any(|n| n.to_string_lossy().starts_with("import-")),
        "{tmp:?}"
    );

    husk_ok(root, &["rm", "x"]);
    nothing_left(root, &[id.trim().to_string()]);
}

#[test]
fn events_from_the_engines_log() {
    use std::io::BufRead;
    let s = setup("commands-events");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);

    husk_ok(root, &["pull", "-q", &image]);
    let (code, _, _) = out(root, &["run", "--name", "ev", &image, "exit 2"]);
    assert_eq!(code, 2);
    husk_ok(root, &["create", "--name", "ev2", &image]);
    husk_ok(root, &["rename", "ev2", "ev3"]);
    husk_ok(root, &["rm", "ev", "ev3"]);
    husk_ok(root, &["tag", &image, "local/t:1"]);
    husk_ok(root, &["rmi", "local/t:1"]);

    // Everything so far of containers and images, in order; --until ends it. (The image's
    // VOLUME made anonymous volumes too: their events have no name, as docker's.)
    let f = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";
    let got = husk_ok(
        root,
        &[
            "events",
            "--since",
            "10m",
            "--until",
            "0s",
            "--filter",
            "type=container",
            "--filter",
            "type=image",
            "--format",
            f,
        ],
    );
    let lines: Vec<&str> = got.lines().collect();
    let want = [
        format!("image pull {image}"),
        "container create ev".into(),
        "container start ev".into(),
        "container die ev".into(),
        "container create ev2".into(),
        "container rename ev3".into(),
        "container destroy ev".into(),
        "container destroy ev3".into(),
        "image tag docker.io/local/t:1".into(),
        "image untag docker.io/local/t:1".into(),
    ];
    assert_eq!(lines, want, "{got}");
    // Filters: keys must all match, values of one key are alternatives.
    let got = husk_ok(
        root,
        &[
            "events",
            "--until",
            "0s",
            "--filter",
            "container=ev",
            "--filter",
            "event=die",
            "--filter",
            "event=create",
            "--format",
            "{{.Action}}",
        ],
    );
    assert_eq!(got, "create\ndie\n");
    let f = "{{.Actor.Attributes.exitCode}}";
    let got = husk_ok(
        root,
        &[
            "events",
            "--until",
            "0s",
            "--filter",
            "event=die",
            "--format",
            f,
        ],
    );
    assert_eq!(got, "2\n");
    // docker's default line: time, type, action, id, attributes.
    let got = husk_ok(
        root,
        &["events", "--until", "0s", "--filter", "event=rename"],
    );
    let id = got
        .split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .to_string();
    assert!(
        got.ends_with(&format!(
            "Z container rename {id} (image={image}, name=ev3, oldName=ev2)\n"
        )),
        "{got}"
    );
    assert_eq!(id.len(), 64, "{got}");
    let got = husk_ok(root, &["events", "--until", "0s", "--since", "0s"]);
    assert_eq!(got, "");
    let (code, _, err) = out(root, &["events", "--filter", "color=red"]);
    assert_ne!(code, 0);
    assert_eq!(
        err.trim(),
        "husk: events: --filter \"color=red\": expected type=, event=, container= or image="
    );

    // Without --until it follows: a container started now shows up.
    let mut follow = std::process::Command::new(HUSK)
        .arg("--root")
        .arg(root)
        .args([
            "events",
            "--filter",
            "event=start",
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    husk_ok(root, &["run", "--rm", "--name", "later", &image, "true"]);
    let mut line = String::new();
    let mut r = std::io::BufReader::new(follow.stdout.take().unwrap());
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "ev\n");
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "later\n");
    follow.kill().unwrap();
    follow.wait().unwrap();
    nothing_left(root, &[id]);
}

#[test]
fn system_df_and_prune() {
    let s = setup("commands-system");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);

    husk_ok(
        root,
        &[
            "run",
            "-u",
            "0",
            "--name",
            "stopped",
            &image,
            "echo data > /tmp/x",
        ],
    );
    let stopped = husk_ok(root, &["inspect", "-f", "{{.Id}}", "stopped"]);
    let up = husk_ok(root, &["run", "-d", "--name", "up", &image, "sleep 30"]);
    // A second image, which no container uses.
    let mut w = husk_image::tar::Writer::new(Vec::new());
    w.file("hello", 0o644, b"hi\n").unwrap();
    let tiny = w.finish().unwrap();
    let (code, tiny_id, err) = out_with_stdin(root, &["import", "-", "local/tiny:1"], &tiny);
    assert_eq!(code, 0, "{err}");

    let df = husk_ok(root, &["system", "df"]);
    let header: Vec<&str> = df.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        "{df}"
    );
    let f = "{{.Type}}|{{.TotalCount}}|{{.Active}}";
    assert_eq!(
        husk_ok(root, &["system", "df", "--format", f]),
        // each container has an anonymous volume for the image's VOLUME /data
        "Images|2|1\nContainers|2|1\nLocal Volumes|2|2\nBuild Cache|0|0\n"
    );
    // The unused image's one layer (3 bytes) is what its row can reclaim.
    let f = "{{.Type}} {{.Reclaimable}}";
    let df = husk_ok(root, &["system", "df", "--format", f]);
    assert!(df.starts_with("Images 3B ("), "{df}");

    // Without -f it asks; anything but yes leaves everything.
    let (code, o, err) = out_with_stdin(root, &["system", "prune"], b"n\n");
    assert_eq!((code, o.as_str()), (0, ""), "{err}");
    assert!(
        err.starts_with("WARNING! This will remove:\n  - all stopped containers\n"),
        "{err}"
    );
    assert_eq!(containers(root).len(), 2);

    // -f: the stopped container goes, the running one and both named images stay.
    let o = husk_ok(root, &["system", "prune", "-f"]);
    assert!(
        o.starts_with(&format!(
            "Deleted Containers:\n{}\n\nTotal reclaimed space: ",
            stopped.trim()
        )),
        "{o}"
    );
    assert_eq!(containers(root).len(), 1);
    // -a: also every image no container uses; --volumes: the pruned container's volume.
    let o = husk_ok(root, &["system", "prune", "-a", "-f", "--volumes"]);
    assert!(
        o.starts_with(&format!(
            "Deleted Images:\nuntagged: docker.io/local/tiny:1\ndeleted: {}\n\nDeleted Volumes:\n",
            tiny_id.trim()
        )),
        "{o}"
    );
    let f = "{{.Type}}|{{.TotalCount}}|{{.Active}}";
    assert!(
        husk_ok(root, &["system", "df", "--format", f]).starts_with("Images|1|1\nContainers|1|1\n")
    );

    husk_ok(root, &["rm", "-f", "up"]);
    nothing_left(root, &[stopped.trim().to_string(), up.trim().to_string()]);
}

#[test]
fn attach_follows_the_output_and_exits_with_the_code() {
    let s = setup("commands-attach");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);

    // What was written before attach is not shown again; what follows is, on its stream.
    let script = "echo before; sleep 2; echo out; echo err >&2; exit 4";
    husk_ok(root, &["run", "-d", "--name", "a", &image, script]);
    let (code, o, err) = out(root, &["attach", "a"]);
    assert_eq!((code, o.as_str(), err.as_str()), (4, "out\n", "err\n"));
    let (code, _, err) = out(root, &["attach", "a"]);
    assert_eq!(
        (code, err.trim()),
        (1, "husk: attach a: the container is exited, not running")
    );
    // A --rm container is gone when it ends: its code comes from its "die" event.
    let id = husk_ok(
        root,
        &[
            "run",
            "-d",
            "--rm",
            "--name",
            "r",
            &image,
            "sleep 1; exit 6",
        ],
    );
    let (code, _, err) = out(root, &["container", "attach", "r"]);
    assert_eq!(code, 6, "{err}");
    husk_ok(root, &["rm", "a"]);
    nothing_left(root, &[id.trim().to_string()]);
}
