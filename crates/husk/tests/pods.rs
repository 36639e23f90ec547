//! Containers sharing namespaces: `--network container:NAME` and pods (`husk pod …`,
//! `husk run --pod`): an infra container (husk-pause) holds the network, IPC and UTS
//! namespaces, and its members join them.
//!
//! Where traffic goes: these containers have no network but their own loopback (`none`,
//! the default as root here) — the pod's or the joined container's namespace, which only
//! they share. busybox httpd listens there and wget fetches from 127.0.0.1 in the same
//! namespace: nothing reaches the host's interfaces or leaves the machine.
//!
//! Against a real docker-registry on 127.0.0.1 with the busybox image. Run as root.

mod common;
use common::*;

/// The network namespace of `name`'s init, as the host sees it.
fn netns_of(root: &std::path::Path, name: &str) -> String {
    let pid = husk_ok(root, &["inspect", "-f", "{{.State.Pid}}", name]);
    std::fs::read_link(format!("/proc/{}/ns/net", pid.trim()))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// What `wget` gets from 127.0.0.1:8080/new, run in a new container with `opts`.
const FETCH: &str = "wget -q -O - http://127.0.0.1:8080/new";

#[test]
fn network_container_joins_a_running_containers_namespace() {
    let s = setup("pod-join");
    let _rm = RemoveAll(&s.root);
    husk_ok(&s.root, &["pull", "-q", &s.image]);
    husk_ok(
        &s.root,
        &[
            "run",
            "-d",
            "--name",
            "srv",
            &s.image,
            "httpd -f -p 127.0.0.1:8080 -h /srv",
        ],
    );
    // The joiner reaches srv's server on loopback: one network namespace.
    let o = husk_ok(
        &s.root,
        &[
            "run",
            "--rm",
            "--network",
            "container:srv",
            &s.image,
            &format!("for i in 1 2 3 4 5 6 7 8 9; do {FETCH} && break; sleep 0.2; done"),
        ],
    );
    assert_eq!(o, "new\n");
    // …which a container of its own does not.
    let (code, _, _) = out(&s.root, &["run", "--rm", &s.image, FETCH]);
    assert_ne!(
        code, 0,
        "a container with its own namespace reached srv's server"
    );

    // create: joined at create, re-joined at each start (srv's init of then).
    husk_ok(
        &s.root,
        &[
            "create",
            "--name",
            "later",
            "--network",
            "container:srv",
            &s.image,
            "sleep 30",
        ],
    );
    husk_ok(&s.root, &["restart", "-t", "0", "srv"]);
    husk_ok(&s.root, &["start", "later"]);
    assert_eq!(netns_of(&s.root, "later"), netns_of(&s.root, "srv"));
    let v = husk_ok(
        &s.root,
        &["inspect", "-f", "{{.HostConfig.NetworkMode}}", "later"],
    );
    let srv_id = husk_ok(&s.root, &["inspect", "-f", "{{.Id}}", "srv"]);
    assert_eq!(v.trim(), format!("container:{}", srv_id.trim()));
    husk_ok(&s.root, &["rm", "-f", "later"]);

    // srv stopped, or gone: one clear error, nothing made.
    husk_ok(&s.root, &["stop", "-t", "0", "srv"]);
    let before = containers(&s.root).len();
    let (code, _, e) = out(
        &s.root,
        &[
            "run",
            "--rm",
            "--network",
            "container:srv",
            &s.image,
            "true",
        ],
    );
    assert_eq!(code, 125, "{e}");
    assert!(
        e.contains("--network container:srv: the container is not running"),
        "{e}"
    );
    let (code, _, e) = out(
        &s.root,
        &[
            "run",
            "--rm",
            "--network",
            "container:nosuch",
            &s.image,
            "true",
        ],
    );
    assert_eq!(code, 125, "{e}");
    assert!(e.contains("no such container: nosuch"), "{e}");
    assert_eq!(
        containers(&s.root).len(),
        before,
        "a failed run left a container"
    );
    husk_ok(&s.root, &["rm", "srv"]);
    assert!(containers(&s.root).is_empty());
}
