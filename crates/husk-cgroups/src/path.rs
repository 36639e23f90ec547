//! Resolving the spec's `linux.cgroupsPath` to where the container's cgroup is, per hierarchy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::layout::{Layout, Mounts};
use crate::CgroupError;

/// Where a container's cgroup is. An absolute `cgroupsPath` names the same path in every
/// hierarchy; a relative one (and the default, the container id) is taken below the
/// runtime's own cgroup *in each hierarchy*, as runc does — so on v1 the cgroup can sit at
/// different paths in different hierarchies (e.g. below a machine-managed memory cgroup
/// while the other controllers are at "/"). Recorded in state.json, because later commands
/// may run from other cgroups than `create` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPath {
    /// The path in the unified hierarchy, and in every v1 hierarchy not listed in `v1`.
    pub path: String,
    /// v1 hierarchies where the path differs, keyed by [`hierarchy_key`] ("cpu,cpuacct").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub v1: BTreeMap<String, String>,
    /// Set when the systemd driver made the cgroup: the unit that owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<crate::systemd::SystemdUnit>,
}

impl CgroupPath {
    /// The same path in every hierarchy.
    pub fn uniform(path: &str) -> Result<CgroupPath, CgroupError> {
        validate_resolved(path)?;
        Ok(CgroupPath {
            path: path.to_string(),
            v1: BTreeMap::new(),
            systemd: None,
        })
    }

    /// The path in the v1 hierarchy with these controllers.
    pub fn in_v1(&self, controllers: &[String]) -> &str {
        self.v1
            .get(&hierarchy_key(controllers))
            .map(String::as_str)
            .unwrap_or(&self.path)
    }

    /// Every path (unified/default first), each checked with [`validate_resolved`].
    pub fn validate(&self) -> Result<(), CgroupError> {
        validate_resolved(&self.path)?;
        self.v1.values().try_for_each(|p| validate_resolved(p))
    }
}

impl std::fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)?;
        for (k, p) in &self.v1 {
            if *p != self.path {
                write!(f, " ({k}: {p})")?;
            }
        }
        if let Some(u) = &self.systemd {
            write!(f, " (systemd unit {})", u.unit)?;
        }
        Ok(())
    }
}

/// The key of a v1 hierarchy in [`CgroupPath::v1`]: its controllers, sorted, joined by ",".
pub fn hierarchy_key(controllers: &[String]) -> String {
    let mut c: Vec<&str> = controllers.iter().map(String::as_str).collect();
    c.sort_unstable();
    c.join(",")
}

/// Resolve `linux.cgroupsPath` with runc's cgroupfs semantics:
/// absolute → as is (relative to the hierarchy root); relative → below this process's own
/// cgroup in each hierarchy; `None` (or empty) → `<own cgroup>/<container_id>`.
pub fn resolve_path(
    cgroups_path: Option<&str>,
    container_id: &str,
) -> Result<CgroupPath, CgroupError> {
    resolve_in(&Mounts::probe()?, cgroups_path, container_id)
}

/// [`resolve_path`] against given mounts (this process's place in them).
pub fn resolve_in(
    mounts: &Mounts,
    cgroups_path: Option<&str>,
    container_id: &str,
) -> Result<CgroupPath, CgroupError> {
    // The unified hierarchy (or, on pure v1, the first resource hierarchy) gives `path`.
    let main_own = match &mounts.unified {
        Some(u) => u.own.clone(),
        None => mounts
            .v1
            .iter()
            .find(|h| !h.is_named_only())
            .map(|h| h.own.clone())
            .unwrap_or_else(|| "/".into()),
    };
    let path = resolve_with_own(&main_own, cgroups_path, container_id)?;
    let mut v1 = BTreeMap::new();
    for h in &mounts.v1 {
        let p = resolve_with_own(&h.own, cgroups_path, container_id)?;
        if p != path {
            v1.insert(hierarchy_key(&h.controllers), p);
        }
    }
    Ok(CgroupPath {
        path,
        v1,
        systemd: None,
    })
}

/// The pure part of [`resolve_path`].
pub fn resolve_with_own(
    own: &str,
    cgroups_path: Option<&str>,
    container_id: &str,
) -> Result<String, CgroupError> {
    let joined = match cgroups_path.filter(|p| !p.is_empty()) {
        None => {
            if container_id.is_empty() || container_id.contains('/') || container_id == ".." {
                return Err(CgroupError::invalid(
                    "container id",
                    format!("{container_id:?} cannot name a cgroup"),
                ));
            }
            format!("{own}/{container_id}")
        }
        Some(p) if p.starts_with('/') => p.to_string(),
        Some(p) => {
            if p.contains(':') && p.split(':').count() == 3 {
                return Err(CgroupError::unsupported(
                    format!("cgroupsPath {p:?}"),
                    "systemd cgroup paths (slice:prefix:name) need the systemd driver (--systemd-cgroup)",
                ));
            }
            format!("{own}/{p}")
        }
    };
    let clean = clean(&joined);
    validate_resolved(&clean)?;
    Ok(clean)
}

/// Lexically clean an absolute path: collapse "//" and ".", apply ".." (never above "/").
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A resolved path must be absolute, clean and not the root cgroup.
pub(crate) fn validate_resolved(p: &str) -> Result<(), CgroupError> {
    let bad = |why: &str| Err(CgroupError::invalid(format!("cgroup path {p:?}"), why));
    if !p.starts_with('/') {
        return bad("must be absolute");
    }
    if p.contains('\0') {
        return bad("contains a NUL byte");
    }
    if p.split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("must be a clean path (no empty, \".\" or \"..\" components)");
    }
    if p == "/" {
        return bad("the root cgroup cannot be a container's cgroup");
    }
    Ok(())
}

/// A sub-cgroup of a container's cgroup, as `runc exec --cgroup` names it: keyed by v1
/// controller ("pids", "cpu"), or by "" for every hierarchy; each value a path below the
/// container's cgroup ("/" or "" is the container's cgroup itself).
pub type SubCgroups = BTreeMap<String, String>;

/// Where a process goes for `exec --cgroup`: `location` with each named sub-cgroup appended.
/// On v1 the sub-cgroup applies to the hierarchies of the named controllers (all of them
/// for ""; named-only hierarchies such as name=systemd only when named), the others stay at
/// the container's cgroup; the unified hierarchy of a hybrid host stays too (only its v1
/// side has controllers worth placing). On v2 only "" can be given. A sub path must stay
/// below the container's cgroup, and exist (they are the caller's to make, as with runc).
pub fn sub_cgroup(location: &CgroupPath, subs: &SubCgroups) -> Result<CgroupPath, CgroupError> {
    let mounts = Mounts::probe()?;
    let out = sub_cgroup_in(&mounts, location, subs)?;
    // Checked here, not left to the join: on v2 a directory that cannot be opened would
    // otherwise just not be joined.
    let mut dirs: Vec<_> = mounts
        .v1
        .iter()
        .filter(|h| out.in_v1(&h.controllers) != location.in_v1(&h.controllers))
        .map(|h| h.dir(out.in_v1(&h.controllers)))
        .collect();
    if let Some(u) = &mounts.unified {
        if out.path != location.path {
            dirs.push(u.dir(&out.path));
        }
    }
    match dirs.into_iter().find(|d| !d.is_dir()) {
        Some(d) => Err(CgroupError::invalid(
            format!("sub-cgroup {}", d.display()),
            "does not exist",
        )),
        None => Ok(out),
    }
}

/// The pure part of [`sub_cgroup`].
pub fn sub_cgroup_in(
    mounts: &Mounts,
    location: &CgroupPath,
    subs: &SubCgroups,
) -> Result<CgroupPath, CgroupError> {
    let mut clean_subs = BTreeMap::new();
    for (controller, sub) in subs {
        clean_subs.insert(controller.as_str(), clean_sub(sub)?);
    }
    let join = |base: &str, sub: &str| {
        if sub == "/" {
            base.to_string()
        } else {
            format!("{base}{sub}")
        }
    };
    let named: Vec<&str> = clean_subs
        .keys()
        .copied()
        .filter(|c| !c.is_empty())
        .collect();
    if mounts.layout()? == Layout::V2 {
        if let Some(c) = named.first() {
            return Err(CgroupError::unsupported(
                format!("sub-cgroup for controller {c:?}"),
                "controllers can only be named on cgroup v1; give the path alone",
            ));
        }
        let sub = clean_subs.get("").map_or("/", String::as_str);
        return CgroupPath::uniform(&join(&location.path, sub));
    }
    for c in &named {
        if mounts.v1_for(c).is_none() {
            return Err(CgroupError::invalid(
                format!("sub-cgroup for controller {c:?}"),
                "no v1 hierarchy has this controller",
            ));
        }
    }
    let mut v1 = BTreeMap::new();
    for h in &mounts.v1 {
        let base = location.in_v1(&h.controllers);
        let sub = named
            .iter()
            .find(|c| h.has(c))
            .and_then(|c| clean_subs.get(c))
            .or_else(|| clean_subs.get("").filter(|_| !h.is_named_only()));
        v1.insert(
            hierarchy_key(&h.controllers),
            sub.map_or_else(|| base.to_string(), |s| join(base, s)),
        );
    }
    let out = CgroupPath {
        path: location.path.clone(),
        v1,
        systemd: None,
    };
    out.validate()?;
    Ok(out)
}

/// A sub-cgroup path made absolute and clean ("/" for the cgroup itself); ".." may not
/// climb above the container's cgroup.
fn clean_sub(sub: &str) -> Result<String, CgroupError> {
    let mut parts = Vec::new();
    for c in sub.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.pop().is_some() => {}
            ".." => {
                return Err(CgroupError::invalid(
                    format!("sub-cgroup {sub:?}"),
                    "is not a path below the container's cgroup",
                ))
            }
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Remove the now-empty parents of the container's cgroup that lie strictly below this
/// process's own cgroup in each hierarchy (the directories `create` had to make on the way
/// down). Stops at the first parent that is not empty or is in use. Call after `destroy`.
pub fn prune_empty_parents(location: &CgroupPath) -> Result<(), CgroupError> {
    prune_empty_parents_in(&Mounts::probe()?, location)
}

/// [`prune_empty_parents`] against mounts probed before.
pub fn prune_empty_parents_in(mounts: &Mounts, location: &CgroupPath) -> Result<(), CgroupError> {
    location.validate()?;
    // A unit's parents are systemd's slices: systemd removes them when it sees fit.
    if location.systemd.is_some() {
        return Ok(());
    }
    // (own cgroup, the container's path, its directory in that hierarchy) per hierarchy
    let mut hierarchies: Vec<(&str, &str, DirOf<'_>)> = Vec::new();
    for h in &mounts.v1 {
        let p = location.in_v1(&h.controllers);
        hierarchies.push((&h.own, p, Box::new(|p: &str| h.dir(p))));
    }
    if let Some(u) = &mounts.unified {
        hierarchies.push((&u.own, &location.path, Box::new(|p: &str| u.dir(p))));
    }
    for (own, path, dir_of) in &hierarchies {
        let own_prefix = if *own == "/" { "" } else { own };
        let mut cur = path.to_string();
        while let Some(idx) = cur.rfind('/') {
            cur.truncate(idx);
            if cur.len() <= own_prefix.len() || !cur.starts_with(&format!("{own_prefix}/")) {
                break;
            }
            let d = dir_of(&cur);
            match std::fs::remove_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBUSY) | Some(libc::ENOTEMPTY) | Some(libc::EEXIST)
                    ) =>
                {
                    break
                }
                Err(e) => return Err(CgroupError::io("removing directory", &d, e)),
            }
        }
    }
    Ok(())
}

/// Maps a cgroup path to its directory in one hierarchy.
type DirOf<'a> = Box<dyn Fn(&str) -> std::path::PathBuf + 'a>;

/// Convert cpu shares (v1, 2..=262144) to cpu.weight (v2, 1..=10000):
/// `1 + ((shares - 2) * 9999) / 262142`.
pub fn shares_to_weight(shares: u64) -> Result<u64, CgroupError> {
    if !(2..=262144).contains(&shares) {
        return Err(CgroupError::invalid(
            "cpu shares",
            format!("{shares} is outside 2..=262144"),
        ));
    }
    Ok(1 + ((shares - 2) * 9999) / 262142)
}

/// Convert a blkio weight (v1, 10..=1000) to io.weight (v2, 1..=10000):
/// `1 + ((weight - 10) * 9999) / 990`.
pub fn blkio_weight_to_io_weight(weight: u16) -> Result<u64, CgroupError> {
    if !(10..=1000).contains(&weight) {
        return Err(CgroupError::invalid(
            "blkio weight",
            format!("{weight} is outside 10..=1000"),
        ));
    }
    Ok(1 + ((weight as u64 - 10) * 9999) / 990)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hybrid_mounts() -> Mounts {
        let h = |c: &[&str], own: &str| crate::layout::V1Hierarchy {
            mount_point: format!("/sys/fs/cgroup/{}", c.join(",")).into(),
            root: "/".into(),
            controllers: c.iter().map(|s| s.to_string()).collect(),
            own: own.into(),
        };
        Mounts {
            v1: vec![
                h(&["cpu", "cpuacct"], "/"),
                h(&["memory"], "/m"),
                h(&["pids"], "/"),
                h(&["name=systemd"], "/"),
            ],
            unified: Some(crate::layout::Unified {
                mount_point: "/sys/fs/cgroup/unified".into(),
                root: "/".into(),
                controllers: vec!["hugetlb".into()],
                own: "/".into(),
            }),
        }
    }

    #[test]
    fn exec_sub_cgroups_as_runc_names_them() {
        let m = hybrid_mounts();
        let loc = resolve_in(&m, None, "c1").unwrap();
        let subs = |kv: &[(&str, &str)]| -> SubCgroups {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // The path alone: every resource hierarchy; name=systemd and unified stay.
        let p = sub_cgroup_in(&m, &loc, &subs(&[("", "sub")])).unwrap();
        assert_eq!(p.path, "/c1");
        assert_eq!(p.in_v1(&["cpu".into(), "cpuacct".into()]), "/c1/sub");
        assert_eq!(p.in_v1(&["memory".into()]), "/m/c1/sub");
        assert_eq!(p.in_v1(&["name=systemd".into()]), "/c1");
        // Per controller: only those hierarchies.
        let p = sub_cgroup_in(&m, &loc, &subs(&[("pids", "a/b"), ("cpu", "x")])).unwrap();
        assert_eq!(p.in_v1(&["pids".into()]), "/c1/a/b");
        assert_eq!(p.in_v1(&["cpu".into(), "cpuacct".into()]), "/c1/x");
        assert_eq!(p.in_v1(&["memory".into()]), "/m/c1");
        // "/" is the container's cgroup; climbing out of it is refused.
        let p = sub_cgroup_in(&m, &loc, &subs(&[("", "/")])).unwrap();
        assert_eq!(p.in_v1(&["pids".into()]), "/c1");
        assert!(sub_cgroup_in(&m, &loc, &subs(&[("", "../..")])).is_err());
        assert!(sub_cgroup_in(&m, &loc, &subs(&[("", "a/../../b")])).is_err());
        assert!(sub_cgroup_in(&m, &loc, &subs(&[("bogus", "sub")])).is_err());
        // v2: the path alone only.
        let mut v2 = m.clone();
        v2.v1.clear();
        let loc = resolve_in(&v2, None, "c1").unwrap();
        assert_eq!(
            sub_cgroup_in(&v2, &loc, &subs(&[("", "sub")]))
                .unwrap()
                .path,
            "/c1/sub"
        );
        assert!(sub_cgroup_in(&v2, &loc, &subs(&[("pids", "sub")])).is_err());
    }

    #[test]
    fn resolves_like_runc_cgroupfs() {
        let own = "/process_api/abc";
        assert_eq!(
            resolve_with_own(own, None, "c1").unwrap(),
            "/process_api/abc/c1"
        );
        assert_eq!(
            resolve_with_own(own, Some(""), "c1").unwrap(),
            "/process_api/abc/c1"
        );
        assert_eq!(
            resolve_with_own(own, Some("/docker/c1"), "x").unwrap(),
            "/docker/c1"
        );
        assert_eq!(
            resolve_with_own(own, Some("pod/c1"), "x").unwrap(),
            "/process_api/abc/pod/c1"
        );
        assert_eq!(
            resolve_with_own(own, Some("../c1"), "x").unwrap(),
            "/process_api/c1"
        );
        assert_eq!(resolve_with_own("/", None, "c1").unwrap(), "/c1");
        assert_eq!(
            resolve_with_own("/", Some("//a/./b/"), "x").unwrap(),
            "/a/b"
        );
        assert_eq!(resolve_with_own("/", Some("/../../a"), "x").unwrap(), "/a");
    }

    #[test]
    fn rejects_bad_paths() {
        assert!(resolve_with_own("/", Some("/"), "x").is_err());
        assert!(resolve_with_own("/a", Some(".."), "x").is_err());
        assert!(resolve_with_own("/", None, "a/b").is_err());
        assert!(resolve_with_own("/", None, "").is_err());
        let e = resolve_with_own("/", Some("system.slice:docker:abc"), "x").unwrap_err();
        assert!(e.to_string().contains("systemd"), "{e}");
        assert!(validate_resolved("relative").is_err());
        assert!(validate_resolved("/a//b").is_err());
        assert!(validate_resolved("/a/../b").is_err());
        assert!(validate_resolved("/a/b").is_ok());
    }

    #[test]
    fn relative_paths_resolve_per_hierarchy_like_runc() {
        let mi = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        let pc = "9:name=systemd:/user.slice\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/\n";
        let m = Mounts::from_texts(mi, pc);
        let p = resolve_in(&m, None, "c1").unwrap();
        assert_eq!(p.path, "/c1");
        assert_eq!(p.in_v1(&["cpuacct".into(), "cpu".into()]), "/c1");
        assert_eq!(p.in_v1(&["memory".into()]), "/process_api/abc/c1");
        assert_eq!(p.in_v1(&["name=systemd".into()]), "/user.slice/c1");
        assert_eq!(
            p.to_string(),
            "/c1 (memory: /process_api/abc/c1) (name=systemd: /user.slice/c1)"
        );
        let p = resolve_in(&m, Some("../up"), "x").unwrap();
        assert_eq!(p.in_v1(&["memory".into()]), "/process_api/up");
        // The root is never a container's cgroup, in any hierarchy.
        assert!(resolve_in(&m, Some(".."), "x").is_err());
        // Absolute: one path everywhere.
        let p = resolve_in(&m, Some("/docker/c1"), "x").unwrap();
        assert_eq!(p, CgroupPath::uniform("/docker/c1").unwrap());
        // Round trip through state.json.
        let p = resolve_in(&m, None, "c1").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<CgroupPath>(&json).unwrap(), p);
        // Pure v2: the unified own cgroup.
        let v2 = Mounts::from_texts(
            "1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/x.scope\n",
        );
        assert_eq!(
            resolve_in(&v2, None, "c1").unwrap(),
            CgroupPath::uniform("/x.scope/c1").unwrap()
        );
    }

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2).unwrap(), 1);
        assert_eq!(shares_to_weight(1024).unwrap(), 39);
        assert_eq!(shares_to_weight(262144).unwrap(), 10000);
        assert!(shares_to_weight(1).is_err());
        assert!(shares_to_weight(262145).is_err());
        assert_eq!(blkio_weight_to_io_weight(10).unwrap(), 1);
        assert_eq!(blkio_weight_to_io_weight(500).unwrap(), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000).unwrap(), 10000);
        assert!(blkio_weight_to_io_weight(5).is_err());
    }
}
