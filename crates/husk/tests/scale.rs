//! Many husk commands at once on one store, as benches/scale.sh runs 200 (sized for CI here):
//! none may fail for another's sake, and nothing of any container is left after `rm -f`.
//! Run as root.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const N: usize = 24;

/// `husk --root ROOT ARGS(i)` for i in 0..N, all started before any is waited for.
fn at_once(root: &Path, args: impl Fn(usize) -> Vec<String>) -> Vec<Output> {
    let children: Vec<_> = (0..N)
        .map(|i| {
            Command::new(HUSK)
                .arg("--root")
                .arg(root)
                .args(args(i))
                .env("HOME", root)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn failures(outs: &[Output]) -> Vec<String> {
    outs.iter()
        .filter(|o| !o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .collect()
}

/// The ids of the containers of `outs` (what `run -d` and `create` print).
fn ids(outs: &[Output]) -> Vec<String> {
    outs.iter()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .collect()
}

#[test]
fn concurrent_creates_starts_and_removals() {
    let s = setup("scale-run");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    husk_ok(root, &["pull", "-q", &image]);

    let outs = at_once(root, |i| {
        [
            "create",
            "--network",
            "none",
            "--name",
            &format!("c{i}"),
            &image,
            "sleep 100",
        ]
        .map(String::from)
        .to_vec()
    });
    assert_eq!(failures(&outs), Vec::<String>::new());
    let made = ids(&outs);
    // The first starts of a store write its copy of husk-monitor while the others execute
    // it: one still open for writing was ETXTBSY ("Text file busy") for them.
    let outs = at_once(root, |i| vec!["start".into(), made[i].clone()]);
    assert_eq!(failures(&outs), Vec::<String>::new());
    let running = husk_ok(root, &["ps", "-q"]);
    assert_eq!(running.lines().count(), N, "{running}");
    // Every monitor runs the store's one copy (not one it replaced since): they share its
    // pages.
    let monitors = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path().join("exe")).ok())
        .filter(|exe| exe.starts_with(root))
        .collect::<Vec<_>>();
    assert_eq!(monitors.len(), N, "{monitors:?}");
    assert!(
        monitors.iter().all(|m| m == &root.join("husk-monitor")),
        "{monitors:?}"
    );

    let outs = at_once(root, |i| vec!["rm".into(), "-f".into(), made[i].clone()]);
    assert_eq!(failures(&outs), Vec::<String>::new());
    assert!(containers(root).is_empty(), "{:?}", containers(root));
    assert!(mounts_below(root).is_empty(), "{:?}", mounts_below(root));
    let (cgroups, states) = (engine_cgroups(), engine_states());
    for id in &made {
        assert!(
            !cgroups.iter().any(|c| c.ends_with(id.as_str())),
            "{id}: {cgroups:?}"
        );
        assert!(!states.contains(id), "{id}: {states:?}");
    }
}
