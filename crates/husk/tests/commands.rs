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
