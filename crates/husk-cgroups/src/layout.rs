//! Which cgroup hierarchies are mounted where, and which cgroup this process is in.
//! Probed from /proc/self/mountinfo, /proc/self/cgroup and the unified mount's
//! cgroup.controllers; never guessed from fixed paths.

use std::path::{Path, PathBuf};

use crate::{fsutil, CgroupError};

/// The cgroup layout of this host, as seen by this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 hierarchies.
    V1,
    /// v1 hierarchies with controllers plus a cgroup2 mount.
    Hybrid,
    /// Only the unified hierarchy (named v1 hierarchies such as name=systemd may exist).
    V2,
}

/// The v1 controllers the kernel knows; anything else in a cgroup mount's super options is
/// a mount flag (rw, nosuid, xattr, clone_children, release_agent=…, …).
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// One line of /proc/self/mountinfo, the fields we need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Path inside the file system that is mounted (for cgroupfs: the cgroup at the mount point).
    pub root: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_options: Vec<String>,
}

/// Undo mountinfo's octal escapes (`\040` for a space, …).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4);
        if b[i] == b'\\' && oct.is_some_and(|o| o.iter().all(|c| (b'0'..=b'7').contains(c))) {
            let o = oct.unwrap_or_default();
            let v = (o[0] - b'0') as u32 * 64 + (o[1] - b'0') as u32 * 8 + (o[2] - b'0') as u32;
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse the text of /proc/self/mountinfo.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() < 5 || sep < 6 || fields.len() < sep + 4 {
            continue;
        }
        out.push(MountInfo {
            root: unescape(fields[3]),
            mount_point: PathBuf::from(unescape(fields[4])),
            fs_type: fields[sep + 1].to_string(),
            super_options: fields[sep + 3].split(',').map(str::to_string).collect(),
        });
    }
    out
}

/// One line of /proc/self/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup {
    pub hierarchy_id: u32,
    /// Controllers ("cpu", "cpuacct", "name=systemd"); empty for the unified hierarchy.
    pub controllers: Vec<String>,
    pub path: String,
}

/// Parse the text of /proc/PID/cgroup.
pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let id = it.next()?.parse().ok()?;
            let ctrls = it.next()?;
            let path = it.next()?.to_string();
            Some(ProcCgroup {
                hierarchy_id: id,
                controllers: ctrls
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path,
            })
        })
        .collect()
}

/// A mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub mount_point: PathBuf,
    pub root: String,
    /// Controllers bound to it, plus "name=X" for a named hierarchy.
    pub controllers: Vec<String>,
    /// This process's cgroup in it.
    pub own: String,
}

impl V1Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
    /// A named hierarchy (name=systemd) holds no resource controller.
    pub fn is_named_only(&self) -> bool {
        self.controllers.iter().all(|c| c.starts_with("name="))
    }
    /// The directory of cgroup `path` in this hierarchy.
    pub fn dir(&self, path: &str) -> PathBuf {
        dir_in(&self.mount_point, &self.root, path)
    }
}

/// The cgroup2 mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unified {
    pub mount_point: PathBuf,
    pub root: String,
    /// The root's cgroup.controllers.
    pub controllers: Vec<String>,
    pub own: String,
}

impl Unified {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
    pub fn dir(&self, path: &str) -> PathBuf {
        dir_in(&self.mount_point, &self.root, path)
    }
}

/// `mount + path`, minus the mount's own root when the hierarchy is mounted from a sub-cgroup.
fn dir_in(mount: &Path, root: &str, path: &str) -> PathBuf {
    let mut rel = path;
    if root != "/" {
        if let Some(rest) = path.strip_prefix(root) {
            if rest.is_empty() || rest.starts_with('/') {
                rel = rest;
            }
        }
    }
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

/// All cgroup mounts and this process's place in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounts {
    pub v1: Vec<V1Hierarchy>,
    pub unified: Option<Unified>,
}

impl Mounts {
    /// Read /proc/self/mountinfo, /proc/self/cgroup and the unified cgroup.controllers.
    pub fn probe() -> Result<Mounts, CgroupError> {
        let mi = fsutil::read(Path::new("/proc/self/mountinfo"))?;
        let pc = fsutil::read(Path::new("/proc/self/cgroup"))?;
        let mut m = Self::from_texts(&mi, &pc);
        if let Some(u) = &mut m.unified {
            let f = u.mount_point.join("cgroup.controllers");
            u.controllers = fsutil::read(&f)?
                .split_whitespace()
                .map(str::to_string)
                .collect();
        }
        Ok(m)
    }

    /// Build from the texts of mountinfo and /proc/self/cgroup (the unified controllers are
    /// left empty: they come from a file).
    pub fn from_texts(mountinfo: &str, proc_cgroup: &str) -> Mounts {
        let own = parse_proc_cgroup(proc_cgroup);
        let mut v1: Vec<V1Hierarchy> = Vec::new();
        let mut unified = None;
        for m in parse_mountinfo(mountinfo) {
            match m.fs_type.as_str() {
                "cgroup" => {
                    let controllers: Vec<String> = m
                        .super_options
                        .iter()
                        .filter(|o| V1_CONTROLLERS.contains(&o.as_str()) || o.starts_with("name="))
                        .cloned()
                        .collect();
                    if controllers.is_empty() || v1.iter().any(|h| h.controllers == controllers) {
                        continue; // not a hierarchy, or a second mount of one we have
                    }
                    let own_path = own
                        .iter()
                        .find(|p| {
                            p.hierarchy_id != 0
                                && p.controllers.iter().any(|c| controllers.contains(c))
                        })
                        .map(|p| p.path.clone())
                        .unwrap_or_else(|| "/".to_string());
                    v1.push(V1Hierarchy {
                        mount_point: m.mount_point,
                        root: m.root,
                        controllers,
                        own: own_path,
                    });
                }
                "cgroup2" if unified.is_none() => {
                    let own_path = own
                        .iter()
                        .find(|p| p.hierarchy_id == 0 && p.controllers.is_empty())
                        .map(|p| p.path.clone())
                        .unwrap_or_else(|| "/".to_string());
                    unified = Some(Unified {
                        mount_point: m.mount_point,
                        root: m.root,
                        controllers: Vec::new(),
                        own: own_path,
                    });
                }
                _ => {}
            }
        }
        Mounts { v1, unified }
    }

    pub fn layout(&self) -> Result<Layout, CgroupError> {
        let v1_controllers = self.v1.iter().any(|h| !h.is_named_only());
        match (v1_controllers, self.unified.is_some()) {
            (true, true) => Ok(Layout::Hybrid),
            (true, false) => Ok(Layout::V1),
            (false, true) => Ok(Layout::V2),
            (false, false) => Err(CgroupError::Layout(
                "no cgroup or cgroup2 file system is mounted".into(),
            )),
        }
    }

    /// The v1 hierarchy holding `controller`.
    pub fn v1_for(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1.iter().find(|h| h.has(controller))
    }
}

/// Probe the layout of this host.
pub fn probe_layout() -> Result<Layout, CgroupError> {
    Mounts::probe()?.layout()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MI: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
99 22 0:32 / /mnt/my\\040memory rw,relatime - cgroup cgroup rw,memory
";
    const HYBRID_PC: &str = "\
12:name=systemd:/user.slice
4:memory:/process_api/abc
3:cpuset:/
1:cpu,cpuacct:/
0::/user.slice
";

    #[test]
    fn parses_hybrid_mountinfo() {
        let m = Mounts::from_texts(HYBRID_MI, HYBRID_PC);
        assert_eq!(m.layout().unwrap(), Layout::Hybrid);
        assert_eq!(
            m.v1.len(),
            4,
            "the second memory mount is a duplicate: {m:?}"
        );
        let cpu = m.v1_for("cpuacct").unwrap();
        assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(cpu.mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m.v1_for("cpuset").unwrap().controllers, vec!["cpuset"]);
        assert_eq!(m.v1_for("memory").unwrap().own, "/process_api/abc");
        let sd = m.v1_for("name=systemd").unwrap();
        assert!(sd.is_named_only());
        assert_eq!(sd.own, "/user.slice");
        let u = m.unified.as_ref().unwrap();
        assert_eq!(u.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(u.own, "/user.slice");
    }

    #[test]
    fn unescapes_mount_points() {
        let mi = parse_mountinfo(HYBRID_MI);
        assert_eq!(
            mi.last().unwrap().mount_point,
            PathBuf::from("/mnt/my memory")
        );
        assert_eq!(mi[0].fs_type, "ext4");
    }

    #[test]
    fn pure_v2_and_v1() {
        let v2 = "30 20 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let m = Mounts::from_texts(v2, "0::/init.scope\n");
        assert_eq!(m.layout().unwrap(), Layout::V2);
        assert_eq!(m.unified.unwrap().own, "/init.scope");

        let v1 = "32 31 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let m = Mounts::from_texts(v1, "8:pids:/a\n");
        assert_eq!(m.layout().unwrap(), Layout::V1);
        assert_eq!(m.v1[0].own, "/a");

        // a named systemd hierarchy next to cgroup2 does not make it hybrid
        let named =
            format!("{v2}40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n");
        assert_eq!(Mounts::from_texts(&named, "").layout().unwrap(), Layout::V2);
        assert!(Mounts::from_texts("", "").layout().is_err());
    }

    #[test]
    fn dir_strips_mount_root() {
        let h = V1Hierarchy {
            mount_point: "/sys/fs/cgroup/memory".into(),
            root: "/docker/x".into(),
            controllers: vec!["memory".into()],
            own: "/docker/x".into(),
        };
        assert_eq!(
            h.dir("/docker/x/c1"),
            PathBuf::from("/sys/fs/cgroup/memory/c1")
        );
        assert_eq!(
            h.dir("/other"),
            PathBuf::from("/sys/fs/cgroup/memory/other")
        );
        assert_eq!(
            h.dir("/docker/xy"),
            PathBuf::from("/sys/fs/cgroup/memory/docker/xy")
        );
    }
}
