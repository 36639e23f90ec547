//! The commands around containers that docker users type: create/start, wait, rename, cp on
//! a stopped container, diff, export/import — each against a real container from a loopback
//! docker-registry, checking docker's output and that nothing is left behind. Run as root.

mod common;
use common::*;
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
    nothing_left(root, &[id, other.trim().to_string(), bg]);
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
