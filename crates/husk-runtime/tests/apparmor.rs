//! AppArmor applied for real: `process.apparmorProfile` and `exec --apparmor` confine the
//! process, and a profile the kernel has not loaded fails `create`/`exec` with one line.
//!
//! AppArmor is active only in the VM of `vmtest/runtime.sh` (booted with `apparmor=1
//! security=apparmor`, Debian's `apparmor_parser` in its initramfs), which sets
//! HUSK_REQUIRE_APPARMOR=1 so that AppArmor missing there is a failure. On a host without
//! it (the development and CI hosts have no LSM) the same labels must be refused instead,
//! never ignored: that is what this test checks there.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const PROFILE: &str = "husk-vmtest";

/// A profile that allows everything but writes below /tmp (and says so in its name).
const PROFILE_TEXT: &str = "profile husk-vmtest flags=(attach_disconnected,mediate_deleted) {
  file,
  capability,
  network,
  signal,
  unix,
  ptrace,
  mount,
  umount,
  pivot_root,
  deny /tmp/** w,
}
";

fn apparmor_active() -> bool {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .unwrap_or_default()
        .split(',')
        .any(|l| l.trim() == "apparmor")
}

/// husk's default profile, which `husk run` loads and applies where AppArmor is on.
const HUSK_DEFAULT_TEXT: &str =
    include_str!("../../husk-engine/src/spec_from_image/apparmor_default.profile");

/// `apparmor_parser ARGS… FILE` with `profile` in FILE.
fn parser(args: &[&str], profile: &str) {
    // One file per profile: the tests of this binary run in parallel.
    let name = profile.split_whitespace().nth(1).unwrap_or("profile");
    let file = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::write(&file, profile).unwrap();
    let bin = std::env::var("HUSK_APPARMOR_PARSER").unwrap_or("apparmor_parser".into());
    let out = Command::new(&bin).args(args).arg(&file).output().unwrap();
    assert!(out.status.success(), "{bin} {args:?}: {}", text(&out));
}

fn with_profile(profile: &'static str) -> impl FnOnce(&mut Value) {
    move |s| s["process"]["apparmorProfile"] = Value::from(profile)
}

#[test]
fn apparmor_profiles_confine_create_and_exec() {
    let required = std::env::var("HUSK_REQUIRE_APPARMOR").is_ok_and(|v| v == "1");
    if !apparmor_active() {
        assert!(
            !required,
            "HUSK_REQUIRE_APPARMOR=1 but AppArmor is not active"
        );
        eprintln!("apparmor: not active here: checking that labels are refused");
        let ctx = Ctx::new("aa-refused", &["true"], with_profile(PROFILE));
        assert_one_line_error(
            &ctx.rt_detached(&["create", &ctx.id]),
            "apparmor is not an active LSM",
        );
        ctx.assert_clean();
        return;
    }
    assert!(Path::new("/sys/kernel/security/apparmor/profiles").exists());
    parser(&["-r", "-K"], PROFILE_TEXT);

    // The container's process runs confined: it sees its profile and cannot write /tmp,
    // while the same (writable) root file system takes a write elsewhere.
    let script = "cat /proc/self/attr/current; \
                  echo x > /tmp/f && echo WROTE-TMP || echo DENIED-TMP; \
                  echo y > /root/ok && echo WROTE-ROOT";
    let ctx = Ctx::new("aa-run", &["sh", "-c", script], |s| {
        with_profile(PROFILE)(s);
        s["root"]["readonly"] = Value::from(false);
    });
    let (code, out, err) = ctx.run();
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [&format!("{PROFILE} (enforce)"), "DENIED-TMP", "WROTE-ROOT"],
        "{out}"
    );
    assert!(err.contains("/tmp/f: Permission denied"), "{err}");
    ctx.assert_clean();

    // exec: --apparmor applies a profile to a container that has none; without it the
    // process keeps the container's (none: unconfined).
    let ctx = Ctx::new("aa-exec", &["sleep", "100"], |_| {});
    assert!(ctx.rt_detached(&["create", &ctx.id]).status.success());
    assert!(ctx.rt(&["start", &ctx.id]).status.success());
    let current = |extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&ctx.id, "cat", "/proc/self/attr/current"]);
        let out = ctx.rt(&args);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        current(&["--apparmor", PROFILE]),
        format!("{PROFILE} (enforce)")
    );
    assert_eq!(current(&[]), "unconfined");
    let out = ctx.rt(&["exec", "--apparmor", "husk-no-such", &ctx.id, "true"]);
    assert_one_line_error(&out, "\"husk-no-such\" is not loaded");
    assert!(ctx.rt(&["delete", "--force", &ctx.id]).status.success());
    ctx.assert_clean();

    // A profile the kernel does not have: one line, nothing made.
    let ctx = Ctx::new("aa-unknown", &["true"], with_profile("husk-no-such"));
    assert_one_line_error(
        &ctx.rt_detached(&["create", &ctx.id]),
        "\"husk-no-such\" is not loaded",
    );
    ctx.assert_clean();

    parser(&["-R"], PROFILE_TEXT);
}

/// husk-default (the engine's profile, loaded here as `husk run` loads it) denies what the
/// other layers would allow a root container with CAP_SYS_ADMIN, no read-only /proc/sys:
/// writing a kernel tunable, mounting. The same container without it does both.
#[test]
fn husk_default_profile_denies_tunables_and_mounts() {
    if !apparmor_active() {
        let required = std::env::var("HUSK_REQUIRE_APPARMOR").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "HUSK_REQUIRE_APPARMOR=1 but AppArmor is not active"
        );
        // Nothing to load here; the profile must at least name itself as the engine does.
        assert!(HUSK_DEFAULT_TEXT.contains("profile husk-default "));
        return;
    }
    parser(&["-r", "-K"], HUSK_DEFAULT_TEXT);
    let script = "cat /proc/self/attr/current; \
                  echo renamed > /proc/sys/kernel/hostname && echo WROTE-SYSCTL; \
                  mount -t tmpfs none /mnt && echo MOUNTED; \
                  echo y > /root/ok && echo WROTE-ROOT";
    let run = |profile: Option<&'static str>| {
        let ctx = Ctx::new("aa-default", &["sh", "-c", script], |s| {
            if let Some(p) = profile {
                with_profile(p)(s);
            }
            s["root"]["readonly"] = Value::from(false);
            s["linux"].as_object_mut().unwrap().remove("readonlyPaths");
            for set in ["bounding", "effective", "permitted"] {
                s["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(Value::from("CAP_SYS_ADMIN"));
            }
        });
        let (_, out, err) = ctx.run();
        ctx.assert_clean();
        (out, err)
    };
    let (out, err) = run(None);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["unconfined", "WROTE-SYSCTL", "MOUNTED", "WROTE-ROOT"],
        "{out} {err}"
    );
    let (out, err) = run(Some("husk-default"));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["husk-default (enforce)", "WROTE-ROOT"],
        "{out} {err}"
    );
    assert!(err.contains("Permission denied"), "{err}");
    parser(&["-R"], HUSK_DEFAULT_TEXT);
}
