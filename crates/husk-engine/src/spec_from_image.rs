//! Image config + `husk run` options → the runtime spec (config.json) of the container.

pub mod flags;
pub mod host;

use husk_image::config::ProcessValues;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Where `--init` puts husk-init: on the container's own /dev tmpfs, so the image's
/// filesystem is not touched.
pub const INIT_PATH: &str = "/dev/husk-init";

/// Docker's and podman's default capabilities.
pub const CAPS: &[&str] = &[
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

/// A bind mount of the spec: `-v /src:/dst`, `--mount type=bind`, or a volume's directory
/// (parsed in crate::volumes::flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub source: String,
    pub destination: String,
    pub readonly: bool,
    /// The mount's propagation (`rprivate` unless asked: docker's default).
    pub propagation: String,
}

pub struct Options {
    pub hostname: String,
    pub host_network: bool,
    pub volumes: Vec<Volume>,
    pub read_only: bool,
    pub memory: Option<i64>,
    pub pids_limit: Option<i64>,
    pub cgroups_path: String,
    pub tmpfs: Vec<flags::Tmpfs>,
    /// CFS quota (µs per `flags::CPU_PERIOD`).
    pub cpu_quota: Option<i64>,
    /// The capabilities: the bounding set, and effective/permitted for root.
    pub caps: Vec<String>,
    /// The ones of them --cap-add named: a non-root user's effective, permitted,
    /// inheritable and ambient sets (podman's rule; root's ambient set stays empty).
    pub added_caps: Vec<String>,
    /// All caps (in `caps`), no masked or read-only paths, /sys read-write, every device
    /// allowed in the devices cgroup. /dev stays the spec's own tmpfs with the default
    /// devices: host devices are not bind-mounted in.
    pub privileged: bool,
    pub no_new_privileges: bool,
    /// `linux.seccomp` (OCI form); None: no filter.
    pub seccomp: Option<Value>,
    /// `process.apparmorProfile`; None: unconfined.
    pub apparmor_profile: Option<String>,
    /// Host path of husk-init: bind-mounted read-only at INIT_PATH and run as PID 1.
    pub init: Option<PathBuf>,
    /// process.terminal: the process gets a pty, sent to the console socket.
    pub terminal: bool,
    /// A cgroup namespace and a cgroup mount on /sys/fs/cgroup: the container sees its
    /// own cgroup (podman's default; read-write only when privileged).
    pub cgroupns: bool,
    /// The directory holding the container's hostname, hosts and resolv.conf
    /// ([`crate::etc_files`]), bind-mounted over the image's /etc files.
    pub etc_dir: Option<PathBuf>,
    /// A user namespace of the container's own with these ids (`--userns=auto`, keep-id).
    pub idmap: Option<crate::userns::IdMapping>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            hostname: String::new(),
            host_network: false,
            volumes: vec![],
            read_only: false,
            memory: None,
            pids_limit: None,
            cgroups_path: String::new(),
            tmpfs: vec![],
            cpu_quota: None,
            caps: CAPS.iter().map(|c| c.to_string()).collect(),
            added_caps: vec![],
            privileged: false,
            no_new_privileges: true,
            seccomp: None,
            apparmor_profile: None,
            init: None,
            terminal: false,
            cgroupns: false,
            etc_dir: None,
            idmap: None,
        }
    }
}

/// A size flag's value that is not `N[b|k|m|g]` with N > 0: the flag and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {value:?}: expected a positive size like 64m")]
pub struct SizeError {
    pub flag: &'static str,
    pub value: String,
}

/// Bytes from `flag`'s value `N[b|k|m|g]`.
pub fn parse_size(flag: &'static str, s: &str) -> Result<i64, SizeError> {
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
        .ok_or_else(|| SizeError {
            flag,
            value: s.to_string(),
        })
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
               "options": ["nosuid", "noexec", "nodev", if o.privileged { "rw" } else { "ro" }]}),
    ];
    if o.cgroupns {
        mounts.push(
            json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime",
                        if o.privileged { "rw" } else { "ro" }]}),
        );
    }
    if let Some(dir) = &o.etc_dir {
        for (file, dest) in crate::etc_files::FILES {
            mounts.push(
                json!({"destination": dest, "type": "bind", "source": dir.join(file),
                               "options": ["rbind", "rprivate"]}),
            );
        }
    }
    let mut user_mounts = vec![];
    for v in &o.volumes {
        let mut opts = vec!["rbind", v.propagation.as_str()];
        if v.readonly {
            opts.push("ro");
        }
        user_mounts.push(json!({"destination": v.destination, "type": "bind",
                                "source": v.source, "options": opts}));
    }
    for t in &o.tmpfs {
        user_mounts.push(json!({"destination": t.destination, "type": "tmpfs",
                                "source": "tmpfs", "options": t.options}));
    }
    if let Some(init) = &o.init {
        user_mounts.push(
            json!({"destination": INIT_PATH, "type": "bind", "source": init,
                                "options": ["bind", "ro", "nosuid", "nodev"]}),
        );
    }
    // A user mount replaces a default one at the same place (Docker's rule), and parents
    // are mounted before what goes inside them.
    mounts.retain(|m| {
        !user_mounts
            .iter()
            .any(|u| u["destination"] == m["destination"])
    });
    mounts.extend(user_mounts);
    mounts.sort_by_key(|m| {
        m["destination"]
            .as_str()
            .map_or(0, |d| std::path::Path::new(d).components().count())
    });
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if !o.host_network {
        namespaces.push(json!({"type": "network"}));
    }
    if o.cgroupns {
        namespaces.push(json!({"type": "cgroup"}));
    }
    if o.idmap.is_some() {
        namespaces.push(json!({"type": "user"}));
    }
    let mut resources = json!({"devices": [{"allow": o.privileged, "access": "rwm"}]});
    if let Some(m) = o.memory {
        resources["memory"] = json!({"limit": m});
    }
    if let Some(n) = o.pids_limit {
        resources["pids"] = json!({"limit": n});
    }
    if let Some(q) = o.cpu_quota {
        resources["cpu"] = json!({"quota": q, "period": flags::CPU_PERIOD});
    }
    let none: &[String] = &[];
    let (user_caps, ambient) = if p.uid == 0 {
        (&o.caps[..], none)
    } else {
        (&o.added_caps[..], &o.added_caps[..])
    };
    let args: Vec<String> = match &o.init {
        Some(_) => [INIT_PATH.to_string(), "--".into()]
            .into_iter()
            .chain(p.args.iter().cloned())
            .collect(),
        None => p.args.clone(),
    };
    let mut user = json!({"uid": p.uid, "gid": p.gid});
    if !p.additional_gids.is_empty() {
        user["additionalGids"] = json!(p.additional_gids);
    }
    let (masked, readonly): (&[&str], &[&str]) = if o.privileged {
        (&[], &[])
    } else {
        (
            &[
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            &[
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        )
    };
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": o.terminal,
            "user": user,
            "args": args,
            "env": p.env,
            "cwd": p.cwd,
            "capabilities": {"bounding": o.caps, "effective": user_caps,
                             "permitted": user_caps, "inheritable": ambient,
                             "ambient": ambient},
            "rlimits": [rlimit("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, 1 << 20)],
            "noNewPrivileges": o.no_new_privileges
        },
        "root": {"path": "rootfs", "readonly": o.read_only},
        "hostname": o.hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": o.cgroups_path,
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": masked,
            "readonlyPaths": readonly
        }
    });
    if let Some(s) = &o.seccomp {
        spec["linux"]["seccomp"] = s.clone();
    }
    if let Some(p) = &o.apparmor_profile {
        spec["process"]["apparmorProfile"] = Value::from(p.as_str());
    }
    if let Some(m) = &o.idmap {
        let (uids, gids) = m.oci();
        spec["linux"]["uidMappings"] = uids;
        spec["linux"]["gidMappings"] = gids;
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        let size = |s| parse_size("--memory", s);
        assert_eq!(size("64m"), Ok(64 << 20));
        assert_eq!(size("1G"), Ok(1 << 30));
        assert_eq!(size("512kb"), Ok(512 << 10));
        assert_eq!(size("4096"), Ok(4096));
        for bad in ["0", "m", "-1"] {
            let e = SizeError {
                flag: "--memory",
                value: bad.into(),
            };
            assert_eq!(size(bad), Err(e), "{bad}");
        }
        assert_eq!(
            size("lots").unwrap_err().to_string(),
            "--memory \"lots\": expected a positive size like 64m"
        );
    }

    fn process(uid: u32) -> ProcessValues {
        ProcessValues {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            gid: 0,
            additional_gids: vec![10],
            exposed_ports: vec![],
            volumes: vec![],
            labels: Default::default(),
            stop_signal: None,
            uid,
        }
    }

    #[test]
    fn spec_parses_and_host_network_has_no_netns() {
        let p = process(0);
        for host in [false, true] {
            let o = Options {
                hostname: "h".into(),
                host_network: host,
                read_only: true,
                memory: Some(1 << 20),
                pids_limit: Some(5),
                cgroups_path: "/husk-engine/x".into(),
                ..Default::default()
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

    #[test]
    fn run_options_shape_the_spec() {
        let caps: Vec<String> = ["CAP_KILL", "CAP_NET_ADMIN"].map(String::from).to_vec();
        let o = Options {
            tmpfs: vec![
                flags::Tmpfs::parse("/dev/shm:size=1m").unwrap(),
                flags::Tmpfs::parse("/a/b").unwrap(),
            ],
            volumes: vec![Volume {
                source: "/x".into(),
                destination: "/a".into(),
                readonly: false,
                propagation: "rprivate".into(),
            }],
            cpu_quota: Some(50_000),
            caps: caps.clone(),
            added_caps: caps[1..].to_vec(),
            no_new_privileges: false,
            seccomp: Some(json!({"defaultAction": "SCMP_ACT_ALLOW"})),
            init: Some("/store/husk-init".into()),
            ..Default::default()
        };
        let v = spec(&process(0), &o);
        let _: oci_spec::runtime::Spec = serde_json::from_value(v.clone()).unwrap();
        let dests: Vec<&str> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        // the user's /dev/shm replaces the default one; parents before children
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/sys",
                "/a",
                "/dev/pts",
                "/dev/mqueue",
                "/dev/shm",
                "/a/b",
                INIT_PATH
            ]
        );
        assert_eq!(
            v["mounts"][6]["options"],
            json!(["nosuid", "nodev", "size=1m"])
        );
        assert_eq!(v["process"]["args"], json!([INIT_PATH, "--", "sh"]));
        assert_eq!(
            v["linux"]["resources"]["cpu"],
            json!({"quota": 50000, "period": 100000})
        );
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(v["process"]["noNewPrivileges"], false);
        let c = &v["process"]["capabilities"];
        assert_eq!(c["effective"], json!(caps));
        assert_eq!(c["ambient"], json!([]));
        // a non-root user: only the added caps, ambient too; bounding unchanged
        let c = spec(&process(1000), &o)["process"]["capabilities"].clone();
        assert_eq!(c["bounding"], json!(caps));
        for set in ["effective", "permitted", "inheritable", "ambient"] {
            assert_eq!(c[set], json!(["CAP_NET_ADMIN"]), "{set}");
        }
        // privileged: nothing masked, /sys writable, every device allowed
        let v = spec(
            &process(0),
            &Options {
                privileged: true,
                ..Default::default()
            },
        );
        assert_eq!(v["linux"]["maskedPaths"], json!([]));
        assert_eq!(v["linux"]["readonlyPaths"], json!([]));
        assert_eq!(
            v["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        let sys = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys");
        assert_eq!(sys.unwrap()["options"][3], "rw");
        assert!(v["linux"].get("seccomp").is_none());
    }
}
