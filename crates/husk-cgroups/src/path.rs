//! Resolving the spec's `linux.cgroupsPath` to one canonical cgroup path.

use crate::layout::Mounts;
use crate::CgroupError;

/// Resolve `linux.cgroupsPath` with runc's cgroupfs semantics:
/// absolute → as is (relative to the hierarchy root); relative → below this process's own
/// cgroup; `None` (or empty) → `<own cgroup>/<container_id>`.
///
/// "Own cgroup": on v2 the unified line of /proc/self/cgroup. On v1/hybrid a process has one
/// cgroup per hierarchy; we take the deepest of them (on the usual hosts the others are its
/// ancestors), so the container stays below every cgroup whose limits the host put on us —
/// e.g. a machine-managed memory cgroup while the other controllers sit at "/".
pub fn resolve_path(cgroups_path: Option<&str>, container_id: &str) -> Result<String, CgroupError> {
    let mounts = Mounts::probe()?;
    let own = own_cgroup(&mounts)?;
    resolve_with_own(&own, cgroups_path, container_id)
}

/// The cgroup relative paths are resolved against (see [`resolve_path`]).
pub fn own_cgroup(mounts: &Mounts) -> Result<String, CgroupError> {
    match mounts.layout()? {
        crate::Layout::V2 => Ok(mounts
            .unified
            .as_ref()
            .map(|u| u.own.clone())
            .unwrap_or_else(|| "/".into())),
        _ => Ok(mounts
            .v1
            .iter()
            .filter(|h| !h.is_named_only())
            .map(|h| h.own.clone())
            .max_by_key(|p| p.split('/').filter(|c| !c.is_empty()).count())
            .unwrap_or_else(|| "/".into())),
    }
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
                    "systemd cgroup paths (slice:prefix:name) need the systemd driver, which husk does not have",
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

/// Maps a cgroup path to its directory in one hierarchy.
type DirOf<'a> = Box<dyn Fn(&str) -> std::path::PathBuf + 'a>;

/// Remove the now-empty parents of `resolved_path` that lie strictly below this process's
/// own cgroup in each hierarchy (the directories `create` had to make on the way down).
/// Stops at the first parent that is not empty or is in use. Call after `destroy`.
pub fn prune_empty_parents(resolved_path: &str) -> Result<(), CgroupError> {
    validate_resolved(resolved_path)?;
    let mounts = Mounts::probe()?;
    // (own cgroup, directory of a cgroup path) for every hierarchy
    let mut hierarchies: Vec<(String, DirOf<'_>)> = Vec::new();
    for h in &mounts.v1 {
        hierarchies.push((h.own.clone(), Box::new(|p: &str| h.dir(p))));
    }
    if let Some(u) = &mounts.unified {
        hierarchies.push((u.own.clone(), Box::new(|p: &str| u.dir(p))));
    }
    for (own, dir_of) in &hierarchies {
        let own_prefix = if own == "/" { "" } else { own.as_str() };
        let mut cur = resolved_path.to_string();
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
    fn own_cgroup_is_the_deepest_on_v1() {
        let mi = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        let pc = "9:name=systemd:/very/deep/named/path\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";
        let m = Mounts::from_texts(mi, pc);
        assert_eq!(own_cgroup(&m).unwrap(), "/process_api/abc");
        let v2 = Mounts::from_texts(
            "1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/x.scope\n",
        );
        assert_eq!(own_cgroup(&v2).unwrap(), "/x.scope");
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
