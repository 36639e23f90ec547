//! The embedding example (crates/husk-engine/examples/run_image.rs) against the loopback
//! registry: a program of its own pulls the image and runs it detached and in the
//! foreground through husk-engine, with the monitor served by that program, and leaves
//! nothing behind.

// The loopback registry and the checks of what a run leaves behind, shared with husk's tests.
#[path = "../../husk/tests/common/mod.rs"]
mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;

/// The example's binary: `cargo test` builds this package's examples before its tests, into
/// target/<profile>/examples, beside the deps/ this test runs from. (`cargo test --test
/// embedding` alone selects no examples: it would run the last one built.)
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run this test through cargo test",
        path.display()
    );
    path
}

#[test]
fn the_example_pulls_and_runs_an_image_detached_and_in_the_foreground() {
    let s = setup("embedding");
    let out = Command::new(example("run_image"))
        .arg(&s.image)
        .arg(&s.root)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("pulled sha256:"), "{stdout}");
    // Detached: the monitor (this example, run again as its helper) started it.
    assert!(
        lines[1].starts_with("started ") && lines[1].ends_with(" (running: true)"),
        "{stdout}"
    );
    // Foreground: the container's own output on our stdout, its exit code passed back; the
    // host name is the container's short id.
    let host = lines[2].strip_prefix("hello from ").expect(&stdout);
    assert_eq!(host.len(), 12, "{stdout}");
    assert_eq!(lines[3..], ["exited 3"], "{stdout}");
    // Both removed: no record, mount, runtime state or cgroup left.
    assert!(containers(&s.root).is_empty(), "{:?}", containers(&s.root));
    assert!(mounts_below(&s.root).is_empty());
    let id = lines[1].split(' ').nth(1).unwrap();
    assert!(!engine_states().iter().any(|s| s == id));
    assert!(!engine_cgroups().iter().any(|c| c.ends_with(id)));
}
