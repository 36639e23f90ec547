//! Containers sharing namespaces: `--network container:NAME` and pods (`husk pod …`,
//! `husk run --pod`): an infra container (husk-pause) holds the network, IPC and UTS
//! namespaces, and its members join them.
//!
//! Where traffic goes: this binary runs in a network namespace of its own (tests/common:
//! `enter_test_netns`), where the pods' bridges, their published ports and aardvark-dns
//! live, with no route off the machine and only that namespace's address as the
//! containers' nameserver. busybox httpd listens in a pod's (or a joined container's)
//! namespace and wget fetches from 127.0.0.1 there, from a container on the same bridge,
//! or from the test namespace through a published port: nothing reaches the host's
//! interfaces or leaves the machine.
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

/// `/proc/PID/ns/KIND` of a container's init, and whether a process with that pid lives.
fn ns_of(root: &std::path::Path, name: &str, kind: &str) -> String {
    let pid = husk_ok(root, &["inspect", "-f", "{{.State.Pid}}", name]);
    std::fs::read_link(format!("/proc/{}/ns/{kind}", pid.trim()))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_pods_containers_share_localhost_and_go_with_the_pod() {
    let s = setup("pod-pod");
    let _rm = RemoveAll(&s.root);
    let _pods = RemovePods(&s.root);
    husk_ok(&s.root, &["pull", "-q", &s.image]);
    // Its port published on the pod's bridge address, from this test's namespace.
    let port = free_port();
    let publish = format!("{port}:8080");
    let id = husk_ok(
        &s.root,
        &["pod", "create", "--name", "web-pod", "-p", &publish],
    );
    let id = id.trim();
    let ls = || {
        husk_ok(
            &s.root,
            &[
                "pod",
                "ls",
                "--format",
                "{{.Name}} {{.Status}} {{.NumberOfContainers}}",
            ],
        )
    };
    // Created, not started: only its infra container, which has not run.
    assert_eq!(ls(), "web-pod Created 1\n");
    let infra = husk_ok(&s.root, &["pod", "inspect", "web-pod"]);
    let infra: serde_json::Value = serde_json::from_str(&infra).unwrap();
    let infra = infra[0]["InfraContainerID"].as_str().unwrap().to_string();
    assert_eq!(infra.len(), 64);

    // The first member starts the infra; the second reaches the first on localhost and
    // has the pod's hostname.
    husk_ok(
        &s.root,
        &[
            "run",
            "-d",
            "--pod",
            "web-pod",
            "--name",
            "srv",
            &s.image,
            "httpd -f -p 8080 -h /srv",
        ],
    );
    let o = husk_ok(
        &s.root,
        &[
            "run",
            "--rm",
            "--pod",
            id,
            &s.image,
            &format!("hostname; for i in 1 2 3 4 5 6 7 8 9; do {FETCH} && break; sleep 0.2; done"),
        ],
    );
    assert_eq!(o, "web-pod\nnew\n");
    assert!(http_get(port, "/new").ends_with("\r\n\r\nnew\n"));
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(
            ns_of(&s.root, "srv", kind),
            ns_of(&s.root, &infra, kind),
            "{kind}"
        );
    }
    // …but not the PID namespace (podman's default too).
    assert_ne!(ns_of(&s.root, "srv", "pid"), ns_of(&s.root, &infra, "pid"));
    assert_eq!(ls(), "web-pod Running 2\n");
    let ps = husk_ok(
        &s.root,
        &[
            "ps",
            "--pod",
            "--format",
            "{{.Names}} {{.PodName}} {{.Pod}}",
        ],
    );
    assert!(ps.contains(&format!("srv web-pod {}\n", &id[..12])), "{ps}");
    let table = husk_ok(&s.root, &["ps", "--pod"]);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .ends_with("POD ID         PODNAME"),
        "{table}"
    );

    // stop, start: the member joins the new infra's namespaces again.
    husk_ok(&s.root, &["pod", "stop", "-t", "1", "web-pod"]);
    assert_eq!(ls(), "web-pod Exited 2\n");
    husk_ok(&s.root, &["pod", "start", "web-pod"]);
    assert_eq!(ls(), "web-pod Running 2\n");
    assert_eq!(ns_of(&s.root, "srv", "net"), ns_of(&s.root, &infra, "net"));
    let o = husk_ok(
        &s.root,
        &[
            "exec",
            "srv",
            "sh",
            "-c",
            &format!("for i in 1 2 3 4 5 6 7 8 9; do {FETCH} && break; sleep 0.2; done"),
        ],
    );
    assert_eq!(o, "new\n");

    // The infra goes with the pod only; a running pod only with -f.
    let (code, _, e) = out(&s.root, &["rm", "-f", &infra]);
    assert_ne!(code, 0);
    assert!(e.contains("is the infra container of pod web-pod"), "{e}");
    let (code, _, e) = out(&s.root, &["pod", "rm", "web-pod"]);
    assert_ne!(code, 0);
    assert!(e.contains("the pod has running containers"), "{e}");
    let infra_pid = husk_ok(&s.root, &["inspect", "-f", "{{.State.Pid}}", &infra]);
    let infra_pid = infra_pid.trim().to_string();
    // container prune keeps a stopped pod's infra.
    husk_ok(&s.root, &["pod", "stop", "-t", "1", "web-pod"]);
    husk_ok(&s.root, &["container", "prune"]);
    assert_eq!(ls(), "web-pod Exited 1\n", "prune removed the member only");
    husk_ok(&s.root, &["pod", "start", "web-pod"]);
    let ids: Vec<String> = containers(&s.root)
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    husk_ok(&s.root, &["pod", "rm", "-f", "web-pod"]);
    assert_eq!(ls(), "");
    assert!(containers(&s.root).is_empty(), "pod rm left containers");
    assert!(!s.root.join("pods").join(id).exists());
    let states = engine_states();
    assert!(
        ids.iter().all(|i| !states.contains(i)),
        "runtime state left"
    );
    let cmdline = std::fs::read(format!("/proc/{infra_pid}/cmdline")).unwrap_or_default();
    assert!(
        !cmdline.starts_with(b"/pause"),
        "the pause process outlived its pod"
    );
}

/// A pod on a user-defined network is reached there by its name (podman's alias of the
/// infra container), which serves its members' ports.
#[test]
fn a_pod_on_a_user_network_is_reached_by_its_name() {
    let s = setup("pod-net");
    let _rm = RemoveAll(&s.root);
    let _pods = RemovePods(&s.root);
    husk_ok(&s.root, &["pull", "-q", &s.image]);
    husk_ok(&s.root, &["network", "create", "podnet"]);
    husk_ok(
        &s.root,
        &["pod", "create", "--name", "backend", "--network", "podnet"],
    );
    husk_ok(
        &s.root,
        &[
            "run",
            "-d",
            "--pod",
            "backend",
            &s.image,
            "httpd -f -p 8080 -h /srv",
        ],
    );
    let o = husk_ok(
        &s.root,
        &[
            "run",
            "--rm",
            "--network",
            "podnet",
            &s.image,
            "for i in 1 2 3 4 5 6 7 8 9; do wget -q -O - http://backend:8080/new && break; \
             sleep 0.2; done",
        ],
    );
    assert_eq!(o, "new\n");
    husk_ok(&s.root, &["pod", "rm", "-f", "backend"]);
    husk_ok(&s.root, &["network", "rm", "podnet"]);
}

#[test]
fn bad_pod_input_is_one_line_and_leaves_nothing() {
    let s = setup("pod-bad");
    let _rm = RemoveAll(&s.root);
    let _pods = RemovePods(&s.root);
    husk_ok(&s.root, &["pull", "-q", &s.image]);
    let one_line = |args: &[&str], code: i32, want: &str| {
        let (c, _, e) = out(&s.root, args);
        assert_eq!(c, code, "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains(want), "{args:?}: {e}");
    };
    one_line(
        &["run", "--rm", "--pod", "nosuch", &s.image, "true"],
        125,
        "no such pod: nosuch",
    );
    one_line(&["pod", "create", "--name=-x"], 1, "--name \"-x\"");
    one_line(
        &["pod", "create", "--network", "bogus"],
        1,
        "no such network: bogus",
    );
    one_line(&["pod", "rm", "nosuch"], 1, "no such pod: nosuch");
    husk_ok(&s.root, &["pod", "create", "--name", "p"]);
    one_line(
        &["pod", "create", "--name", "p"],
        1,
        "the pod name \"p\" is already in use",
    );
    one_line(
        &[
            "run",
            "--rm",
            "--pod",
            "p",
            "--network",
            "host",
            &s.image,
            "true",
        ],
        125,
        "--network: network cannot be configured when it is shared with a pod",
    );
    one_line(
        &["run", "--rm", "--pod", "p", "-p", "8080", &s.image, "true"],
        125,
        "ports must be defined when the pod is created",
    );
    one_line(
        &[
            "run",
            "--rm",
            "--pod",
            "p",
            "--hostname",
            "h",
            &s.image,
            "true",
        ],
        125,
        "cannot set hostname when joining the pod UTS namespace",
    );
    // One pod, one container (its infra), never started: nothing else was made.
    assert_eq!(
        husk_ok(&s.root, &["pod", "ls", "--format", "{{.Name}} {{.Status}}"]),
        "p Created\n"
    );
    assert_eq!(containers(&s.root).len(), 1);
    husk_ok(&s.root, &["pod", "rm", "p"]);
    assert!(containers(&s.root).is_empty());
}
