//! [`HostConfig`] (docker's HostConfig flags) applied to a spec that [`super::spec`] made:
//! rlimits, devices, sysctls, extra groups, /dev/shm's size, shared or joined namespaces,
//! CPU and memory settings, the OOM score and annotations.

use crate::host_config::{Device, HostConfig, NsMode};
use serde_json::{json, Value};

/// What only the caller can know: the namespaces `container:X` names, as /proc paths.
#[derive(Default)]
pub struct Resolved {
    /// (spec namespace type, /proc/PID/ns/… of the other container's init): `container:X`
    /// namespaces and a pod's.
    pub joined: Vec<(&'static str, String)>,
    /// --group-add's groups as ids.
    pub group_ids: Vec<u32>,
    /// --device's nodes, plus the host's with --privileged.
    pub devices: Vec<Device>,
}

pub fn apply(spec: &mut Value, h: &HostConfig, r: &Resolved) {
    let process = &mut spec["process"];
    let rlimits = process["rlimits"].as_array_mut().expect("spec has rlimits");
    for u in &h.ulimits {
        rlimits.retain(|l| l["type"] != u.kind.as_str());
        rlimits.push(json!({"type": u.kind, "soft": u.soft, "hard": u.hard}));
    }
    if let Some(n) = h.oom_score_adj {
        process["oomScoreAdj"] = n.into();
    }
    if !r.group_ids.is_empty() {
        let user = &mut process["user"];
        let mut gids: Vec<u32> =
            serde_json::from_value(user["additionalGids"].clone()).unwrap_or_default();
        for g in &r.group_ids {
            if !gids.contains(g) {
                gids.push(*g);
            }
        }
        user["additionalGids"] = json!(gids);
    }
    if let Some(size) = h.shm_size {
        // Only husk's own /dev/shm: a --tmpfs there carries its own size.
        if let Some(shm) = spec["mounts"]
            .as_array_mut()
            .and_then(|m| m.iter_mut().find(|m| m["source"] == "shm"))
        {
            let opts = shm["options"].as_array_mut().expect("shm has options");
            opts.retain(|o| !o.as_str().is_some_and(|o| o.starts_with("size=")));
            opts.push(format!("size={size}").into());
        }
    }
    let linux = &mut spec["linux"];
    let ns = linux["namespaces"]
        .as_array_mut()
        .expect("spec has namespaces");
    for (kind, mode) in [("pid", &h.pid), ("ipc", &h.ipc), ("uts", &h.uts)] {
        if *mode == NsMode::Host {
            ns.retain(|n| n["type"] != kind);
        }
    }
    // Another container's (container:X, or a pod's infra): joined by path.
    for (kind, path) in &r.joined {
        for n in ns.iter_mut().filter(|n| n["type"] == *kind) {
            n["path"] = path.as_str().into();
        }
    }
    if h.uts != NsMode::Private || r.joined.iter().any(|(k, _)| *k == "uts") {
        // A hostname needs a UTS namespace of the container's own.
        if let Some(m) = spec.as_object_mut() {
            m.remove("hostname");
        }
    }
    let linux = &mut spec["linux"];
    if !h.sysctls.is_empty() {
        linux["sysctl"] = json!(h.sysctls);
    }
    if !r.devices.is_empty() {
        linux["devices"] = r
            .devices
            .iter()
            .map(|d| {
                json!({"path": d.path, "type": d.kind.to_string(), "major": d.major,
                       "minor": d.minor, "fileMode": d.mode, "uid": d.uid, "gid": d.gid})
            })
            .collect();
        let rules = linux["resources"]["devices"]
            .as_array_mut()
            .expect("spec has device rules");
        for d in &r.devices {
            rules.push(
                json!({"allow": true, "type": d.kind.to_string(), "major": d.major,
                              "minor": d.minor, "access": d.access}),
            );
        }
    }
    let res = &mut linux["resources"];
    if let Some(c) = &h.cpuset_cpus {
        res["cpu"]["cpus"] = c.as_str().into();
    }
    if let Some(n) = h.cpu_shares {
        res["cpu"]["shares"] = n.into();
    }
    if let Some(n) = h.memory_swap {
        res["memory"]["swap"] = n.into();
    }
    if let Some(n) = h.memory_reservation {
        res["memory"]["reservation"] = n.into();
    }
    if !h.annotations.is_empty() {
        spec["annotations"] = json!(h.annotations);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host_config::{HostOptions, Ulimit};

    fn spec() -> Value {
        let p = husk_image::config::ProcessValues {
            args: vec!["sh".into()],
            env: vec![],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![10],
            exposed_ports: vec![],
            volumes: vec![],
            labels: Default::default(),
            stop_signal: None,
        };
        super::super::spec(
            &p,
            &super::super::Options {
                hostname: "h".into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn host_config_shapes_the_spec() {
        let o = HostOptions {
            sysctls: vec!["kernel.shmmax=1000".into()],
            pid: Some("host".into()),
            ipc: Some("container:db".into()),
            uts: Some("host".into()),
            shm_size: Some("2m".into()),
            cpuset_cpus: Some("0".into()),
            cpu_shares: Some(512),
            memory_swap: Some("-1".into()),
            memory_reservation: Some("1m".into()),
            oom_score_adj: Some(100),
            annotations: vec!["a=b".into()],
            devices: vec!["/dev/null:/dev/n2:r".into()],
            ..Default::default()
        };
        let mut h = HostConfig::validate(&o, None, false).unwrap();
        h.ulimits = vec![Ulimit {
            kind: "RLIMIT_NOFILE".into(),
            soft: 10,
            hard: 20,
        }];
        let r = Resolved {
            joined: vec![("ipc", "/proc/42/ns/ipc".into())],
            group_ids: vec![10, 20],
            devices: h.devices.clone(),
        };
        let mut s = spec();
        apply(&mut s, &h, &r);
        let _: oci_spec::runtime::Spec = serde_json::from_value(s.clone()).unwrap();
        assert_eq!(
            s["process"]["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}])
        );
        assert_eq!(s["process"]["oomScoreAdj"], 100);
        assert_eq!(s["process"]["user"]["additionalGids"], json!([10, 20]));
        let ns: Vec<&Value> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .collect();
        assert!(!ns.iter().any(|n| n["type"] == "pid" || n["type"] == "uts"));
        assert!(ns.contains(&&json!({"type": "ipc", "path": "/proc/42/ns/ipc"})));
        assert!(s.get("hostname").is_none());
        assert_eq!(s["linux"]["sysctl"], json!({"kernel.shmmax": "1000"}));
        let shm = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/dev/shm")
            .unwrap();
        assert_eq!(
            shm["options"].as_array().unwrap().last().unwrap(),
            "size=2097152"
        );
        let res = &s["linux"]["resources"];
        assert_eq!(res["cpu"], json!({"cpus": "0", "shares": 512}));
        assert_eq!(res["memory"], json!({"swap": -1, "reservation": 1 << 20}));
        assert_eq!(
            res["devices"][1],
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"})
        );
        assert_eq!(s["linux"]["devices"][0]["path"], "/dev/n2");
        assert_eq!(s["annotations"], json!({"a": "b"}));
    }
}
