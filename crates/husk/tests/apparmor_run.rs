//! `husk run` under AppArmor: where the kernel runs it, every container gets husk's
//! `husk-default` profile (loaded by the engine with apparmor_parser on first use);
//! `--security-opt apparmor=unconfined` and `--privileged` run unconfined.
//!
//! AppArmor is active only in the VM of `vmtest/runtime.sh`, which sets
//! HUSK_REQUIRE_APPARMOR=1 (AppArmor missing there is a failure) and puts apparmor_parser
//! on PATH. On a host without it the test checks that no profile is applied and that
//! `unconfined` is accepted (the refusal of a named profile is in tests/run_options.rs).

mod common;
use common::*;

fn apparmor_active() -> bool {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .unwrap_or_default()
        .split(',')
        .any(|l| l.trim() == "apparmor")
}

#[test]
fn husk_run_applies_husk_default_where_apparmor_runs() {
    let required = std::env::var("HUSK_REQUIRE_APPARMOR").is_ok_and(|v| v == "1");
    let active = apparmor_active();
    assert!(
        active || !required,
        "HUSK_REQUIRE_APPARMOR=1 but AppArmor is not active"
    );
    // An in-process registry on loopback: the VM has no docker-registry.
    let fake = FakeRegistry::start(FakeState::default());
    fake.add_image("busybox", "latest", &busybox_image("amd64"));
    let t = TempDir::new("aa-run");
    let root = t.path().join("store");
    let image = format!("{}/busybox:latest", fake.host());
    husk_ok(&root, &["pull", &image]);

    // What the profile denies is tested with husk-runtime (tests/apparmor.rs, against
    // the same container unconfined); here: that `husk run` applies it, and when not.
    let script = "cat /proc/self/attr/current 2>/dev/null || echo no-attr";
    let run = |opts: &[&str]| {
        // No network: the VM has no netavark for the default bridge, and none is needed.
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(opts);
        args.extend([image.as_str(), script]); // the image runs its args with sh -c
        husk_ok(&root, &args)
    };
    if !active {
        // No LSM: no profile is applied (the attr file cannot be read).
        assert_eq!(run(&[]), "no-attr\n");
        return;
    }
    assert_eq!(run(&[]), "husk-default (enforce)\n");
    // --privileged runs unconfined, as docker's; so does apparmor=unconfined.
    assert_eq!(run(&["--privileged"]), "unconfined\n");
    assert_eq!(
        run(&["--security-opt", "apparmor=unconfined"]),
        "unconfined\n"
    );
    assert_eq!(
        run(&["--privileged", "--security-opt", "apparmor=husk-default"]),
        "husk-default (enforce)\n"
    );
}
