//! The device cgroup as the runtime-spec and runc have it: `linux.devices` only creates
//! nodes; `linux.resources.devices` plus runc's default allow-list decide access; `update`
//! ignores device rules (runc's does too) and so never cuts a running container off.
//! /dev/kmsg is only opened, never written to, so the host's log stays clean.

mod common;

use common::*;
use serde_json::{json, Value};

/// Opens each device and says what worked (in a subshell each: a failed redirection of
/// the `:` builtin ends the shell).
const PROBE: &str = "test -c /dev/kmsg && echo NODE; \
    for x in '< /dev/kmsg KMSG_R' '> /dev/kmsg KMSG_W' '> /dev/null NULL' '< /dev/zero ZERO' \
    '< /dev/urandom URANDOM' '> /dev/full FULL' '> /dev/ptmx PTMX'; do \
    set -- $x; (eval \": $1 $2\") 2>/dev/null && echo $3; done; true";

fn with_kmsg(spec: &mut Value, rules: Value) {
    spec["linux"]["devices"] = json!([{"path": "/dev/kmsg", "type": "c", "major": 1,
        "minor": 11, "fileMode": 0o644, "uid": 0, "gid": 0}]);
    spec["linux"]["resources"]["devices"] = rules;
}

fn probe(rules: Value) -> Vec<String> {
    let ctx = Ctx::new("devices", &["sh", "-c", PROBE], |s| with_kmsg(s, rules));
    let out = ctx.rt_within(&["run", &ctx.id], 30);
    assert!(out.status.success(), "{}", text(&out));
    ctx.assert_clean();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn listed_devices_are_created_but_only_rules_allow_them() {
    // Deny-all (husk-runtime spec's default): the node is there, but closed.
    let got = probe(json!([{"allow": false, "access": "rwm"}]));
    assert_eq!(
        got,
        ["NODE", "NULL", "ZERO", "URANDOM", "FULL", "PTMX"],
        "deny-all must leave only runc's default devices open"
    );
    // A rule for writing it opens it for writing (reading would need CAP_SYSLOG too).
    let got = probe(json!([{"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}]));
    assert!(got.contains(&"KMSG_W".to_string()), "{got:?}");
    assert!(!got.contains(&"KMSG_R".to_string()), "{got:?}");
}

#[test]
fn update_leaves_device_rules_alone_whatever_it_is_sent() {
    let ctx = Ctx::new("devupdate", &["sleep", "30"], |s| {
        with_kmsg(s, json!([{"allow": false, "access": "rwm"}]))
    });
    let out = ctx.rt_within(&["run", "-d", &ctx.id], 30);
    assert!(out.status.success(), "{}", text(&out));
    let list = std::path::Path::new("/sys/fs/cgroup/devices")
        .join(&ctx.id)
        .join("devices.list");
    let before = std::fs::read_to_string(&list).unwrap();
    assert!(!before.contains("c 1:11"), "{before}");
    // runc ignores devices in an update, whatever the access string ("rwa" included).
    for access in ["rwa", "rwm", "m"] {
        let mut cmd = ctx.cmd(&["update", "--resources", "-", &ctx.id]);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let body = json!({"devices": [{"allow": true, "type": "c", "major": 1, "minor": 11,
            "access": access}], "pids": {"limit": 50}});
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), body.to_string().as_bytes())
            .unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "update {access}: {}", text(&out));
        assert_eq!(std::fs::read_to_string(&list).unwrap(), before, "{access}");
    }
    let out = ctx.rt_within(&["exec", &ctx.id, "sh", "-c", PROBE], 30);
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(got.contains("NULL") && !got.contains("KMSG"), "{got}");
    let out = ctx.rt_within(&["delete", "--force", &ctx.id], 30);
    assert!(out.status.success(), "{}", text(&out));
    ctx.assert_clean();
}
