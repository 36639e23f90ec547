//! Image config + `husk run` options → the runtime spec (config.json) of the container.

use husk_image::config::ProcessValues;
use serde_json::{json, Value};

const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub struct Volume {
    pub source: String,
    pub destination: String,
    pub readonly: bool,
}

impl Volume {
    /// `SRC:DST[:ro|rw]`, SRC absolute (host path), DST absolute.
    pub fn parse(s: &str) -> Result<Volume, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, ro) = match parts.as_slice() {
            [s, d] => (*s, *d, false),
            [s, d, "ro"] => (*s, *d, true),
            [s, d, "rw"] => (*s, *d, false),
            _ => return Err(format!("-v {s:?}: expected SRC:DST[:ro|rw]")),
        };
        if !src.starts_with('/') || !dst.starts_with('/') {
            return Err(format!("-v {s:?}: SRC and DST must be absolute paths"));
        }
        Ok(Volume {
            source: src.into(),
            destination: dst.into(),
            readonly: ro,
        })
    }
}

pub struct Options {
    pub hostname: String,
    pub host_network: bool,
    pub volumes: Vec<Volume>,
    pub read_only: bool,
    pub memory: Option<i64>,
    pub pids_limit: Option<i64>,
    pub cgroups_path: String,
}

/// Bytes from `N[b|k|m|g]`.
pub fn parse_size(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|r| !r.is_empty()).unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("--memory {s:?}: expected a positive size like 64m"))
}

/// One rlimit: soft/hard wanted, both capped at this process's hard limit (without
/// CAP_SYS_RESOURCE nothing above it can be set).
fn rlimit(kind: &str, res: libc::__rlimit_resource_t, want: u64) -> Value {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let hard = if unsafe { libc::getrlimit(res, &mut cur) } == 0 {
        cur.rlim_max
    } else {
        want
    };
    let v = want.min(hard);
    json!({"type": kind, "soft": v, "hard": v})
}

pub fn spec(p: &ProcessValues, o: &Options) -> Value {
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    for v in &o.volumes {
        let mut opts = vec!["rbind", "rprivate"];
        if v.readonly {
            opts.push("ro");
        }
        mounts.push(json!({"destination": v.destination, "type": "bind",
                           "source": v.source, "options": opts}));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if !o.host_network {
        namespaces.push(json!({"type": "network"}));
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(m) = o.memory {
        resources["memory"] = json!({"limit": m});
    }
    if let Some(n) = o.pids_limit {
        resources["pids"] = json!({"limit": n});
    }
    let mut user = json!({"uid": p.uid, "gid": p.gid});
    if !p.additional_gids.is_empty() {
        user["additionalGids"] = json!(p.additional_gids);
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": user,
            "args": p.args,
            "env": p.env,
            "cwd": p.cwd,
            "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
            "rlimits": [rlimit("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, 1 << 20)],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": o.read_only},
        "hostname": o.hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": o.cgroups_path,
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_volumes_parse() {
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512kb"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err() && parse_size("m").is_err() && parse_size("-1").is_err());
        let v = Volume::parse("/a:/b:ro").unwrap();
        assert_eq!(
            (v.source.as_str(), v.destination.as_str(), v.readonly),
            ("/a", "/b", true)
        );
        assert!(!Volume::parse("/a:/b").unwrap().readonly);
        assert!(Volume::parse("a:/b").is_err() && Volume::parse("/a").is_err());
        assert!(Volume::parse("/a:/b:rx").is_err());
    }

    #[test]
    fn spec_parses_and_host_network_has_no_netns() {
        let p = ProcessValues {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![10],
            exposed_ports: vec![],
            volumes: vec![],
            labels: Default::default(),
            stop_signal: None,
        };
        for host in [false, true] {
            let o = Options {
                hostname: "h".into(),
                host_network: host,
                volumes: vec![],
                read_only: true,
                memory: Some(1 << 20),
                pids_limit: Some(5),
                cgroups_path: "/husk-engine/x".into(),
            };
            let v = spec(&p, &o);
            let s: oci_spec::runtime::Spec = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(s.hostname().as_deref(), Some("h"));
            let has_net = v["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "network");
            assert_eq!(has_net, !host);
        }
    }
}
