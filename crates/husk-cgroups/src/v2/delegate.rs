//! A cgroup v2 subtree delegated to an ordinary user, for a rootless caller that makes its
//! containers' cgroups itself (no systemd to ask): which subtree, and how to make a parent
//! for the containers in it.
//!
//! Delegation in cgroup v2 is ownership: whoever delegates (systemd's `Delegate=`, or root
//! by hand) chowns the directory with its `cgroup.procs` and `cgroup.subtree_control` to the
//! user. The user may then make sub-cgroups below it, enable the controllers it was given
//! for them, and move its processes between cgroups below it (the kernel asks for write
//! access to the common ancestor's `cgroup.procs`). So the root of the delegation is the
//! topmost ancestor of our own cgroup that we own — topmost, so that every run finds the
//! same one, also after it moved us below it.
//!
//! cgroup v2 forbids controllers for the children of a cgroup that has processes ("no
//! internal processes"): a delegated root that holds processes (the user's shell and husk,
//! put there by whoever delegated it) cannot give its children memory or pids. As podman
//! does, those processes move into a leaf `init` below it first.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use crate::layout::Unified;
use crate::{fsutil, CgroupError};

/// The leaf the delegated root's own processes move to.
pub const INIT_LEAF: &str = "init";
/// The parent of the containers' cgroups below the delegated root.
pub const CONTAINERS_PARENT: &str = "husk-engine";

/// The topmost cgroup (path below the hierarchy's root) containing our own that is
/// delegated to us, if any.
pub fn delegated_root(unified: &Unified) -> Option<String> {
    let mut found = None;
    let mut cur = unified.own.trim_end_matches('/').to_string();
    while !cur.is_empty() {
        if !is_delegated(&unified.dir(&cur)) {
            break;
        }
        found = Some(cur.clone());
        cur.truncate(cur.rfind('/').unwrap_or(0));
    }
    found
}

/// Whether `dir` is ours to manage: our directory, its cgroup.procs and subtree_control
/// writable for us. Owners are compared as this (possibly user) namespace sees them.
fn is_delegated(dir: &Path) -> bool {
    let euid = unsafe { libc::geteuid() };
    let owned = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.uid() == euid);
    owned(dir)
        && ["cgroup.procs", "cgroup.subtree_control"]
            .iter()
            .all(|f| owned(&dir.join(f)) && writable(&dir.join(f)))
}

fn writable(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Make `root/husk-engine` (`root` from [`delegated_root`]) ready to hold containers'
/// cgroups with every controller `root` was given, and return its path below the
/// hierarchy's root. `root`'s own processes move to `root/init` first when they would keep
/// its controllers from its children.
pub fn prepare_parent(unified: &Unified, root: &str) -> Result<String, CgroupError> {
    let dir = unified.dir(root);
    let available = words(&fsutil::read(&dir.join("cgroup.controllers"))?);
    let enabled = words(&fsutil::read(&dir.join("cgroup.subtree_control"))?);
    let missing: Vec<&String> = available.iter().filter(|c| !enabled.contains(c)).collect();
    if !missing.is_empty() {
        move_processes_to_leaf(&dir)?;
        enable(&dir, &missing)?;
    }
    let parent = dir.join(CONTAINERS_PARENT);
    match std::fs::create_dir(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(CgroupError::io("creating directory", &parent, e)),
    }
    let given = words(&fsutil::read(&parent.join("cgroup.controllers"))?);
    let on = words(&fsutil::read(&parent.join("cgroup.subtree_control"))?);
    let missing: Vec<&String> = given.iter().filter(|c| !on.contains(c)).collect();
    enable(&parent, &missing)?;
    Ok(format!(
        "{}/{CONTAINERS_PARENT}",
        root.trim_end_matches('/')
    ))
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn enable(dir: &Path, controllers: &[&String]) -> Result<(), CgroupError> {
    let sc = dir.join("cgroup.subtree_control");
    for c in controllers {
        fsutil::write(&sc, &format!("+{c}"))?;
    }
    Ok(())
}

/// Move every process of `dir` into `dir/init` (made if missing). Processes that exit
/// meanwhile are no error; new ones (forked while we move) are caught by a second pass.
fn move_processes_to_leaf(dir: &Path) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    let leaf: PathBuf = dir.join(INIT_LEAF);
    for _pass in 0..3 {
        let pids = fsutil::read(&procs)?;
        if pids.trim().is_empty() {
            return Ok(());
        }
        match std::fs::create_dir(&leaf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CgroupError::io("creating directory", &leaf, e)),
        }
        for pid in pids.split_whitespace() {
            match fsutil::write(&leaf.join("cgroup.procs"), pid) {
                Err(e) if e.errno() == Some(libc::ESRCH) => {}
                r => r?,
            }
        }
    }
    Ok(())
}

/// The v2 controllers `r` needs, each with what asks for it (for messages).
pub fn controllers_needed(r: &LinuxResources) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut need = |c: &'static str, why: &str| {
        if !out.iter().any(|(n, _)| *n == c) {
            out.push((c, why.to_string()));
        }
    };
    if r.memory().is_some() {
        need("memory", "memory limits");
    }
    if let Some(c) = r.cpu() {
        let cpu = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some();
        if cpu {
            need("cpu", "cpu limits");
        }
        if c.cpus().is_some() || c.mems().is_some() {
            need("cpuset", "cpu.cpus/cpu.mems");
        }
    }
    if r.pids().is_some() {
        need("pids", "pids.limit");
    }
    if let Some(b) = r.block_io() {
        let set = b.weight().is_some()
            || b.leaf_weight().is_some()
            || [
                b.throttle_read_bps_device(),
                b.throttle_write_bps_device(),
                b.throttle_read_iops_device(),
                b.throttle_write_iops_device(),
            ]
            .iter()
            .any(|d| d.as_ref().is_some_and(|d| !d.is_empty()))
            || b.weight_device().as_ref().is_some_and(|d| !d.is_empty());
        if set {
            need("io", "blockIO limits");
        }
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        need("hugetlb", "hugepageLimits");
    }
    if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) {
        need("rdma", "rdma limits");
    }
    for key in r.unified().iter().flat_map(|u| u.keys()) {
        if let Some((c, _)) = key.split_once('.') {
            for known in [
                "memory", "cpu", "cpuset", "pids", "io", "hugetlb", "rdma", "misc",
            ] {
                if c == known {
                    need(known, &format!("unified {key}"));
                }
            }
        }
    }
    out
}

/// Before anything is made for a rootless container: every controller its limits need must
/// reach the cgroup at `path` (below the hierarchy's root; for a user manager's scope, the
/// manager's own cgroup). The nearest existing ancestor's cgroup.controllers is what its
/// delegator gave; a controller missing there can never be
/// enabled below it, so say which, as crun does, rather than fail half-way.
pub fn check_controllers(
    unified: &Unified,
    path: &str,
    r: &LinuxResources,
) -> Result<(), CgroupError> {
    let needed = controllers_needed(r);
    if needed.is_empty() {
        return Ok(());
    }
    let mut dir = unified.dir(path);
    while !dir.exists() {
        if !dir.pop() || !dir.starts_with(&unified.mount_point) {
            return Ok(());
        }
    }
    let offered = words(&fsutil::read(&dir.join("cgroup.controllers"))?);
    match needed.iter().find(|(c, _)| !offered.iter().any(|o| o == c)) {
        None => Ok(()),
        Some((c, why)) => Err(CgroupError::unsupported(
            why.clone(),
            format!(
                "the cgroup v2 {c} controller is not delegated to this user ({} offers: {})",
                dir.display(),
                match offered.is_empty() {
                    true => "none".to_string(),
                    false => offered.join(" "),
                }
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn unified(mount: &Path, own: &str) -> Unified {
        Unified {
            mount_point: mount.to_path_buf(),
            root: "/".into(),
            controllers: vec![],
            own: own.into(),
        }
    }

    /// A fake hierarchy: directories with the two files, owned by `uid`.
    fn cgroup(dir: &Path, uid: u32) {
        std::fs::create_dir_all(dir).unwrap();
        for f in ["cgroup.procs", "cgroup.subtree_control"] {
            std::fs::write(dir.join(f), "").unwrap();
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
            std::os::unix::fs::chown(dir.join(f), Some(uid), None).unwrap();
        }
        std::os::unix::fs::chown(dir, Some(uid), None).unwrap();
    }

    #[test]
    fn the_topmost_owned_ancestor_is_the_delegated_root() {
        let euid = unsafe { libc::geteuid() };
        let other = if euid == 0 { 4242 } else { euid };
        let t = std::env::temp_dir().join(format!("husk-deleg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        cgroup(&t, other);
        cgroup(&t.join("user.slice"), other);
        cgroup(&t.join("user.slice/u"), euid);
        cgroup(&t.join("user.slice/u/app"), euid);
        cgroup(&t.join("user.slice/u/app/me"), euid);
        let root = delegated_root(&unified(&t, "/user.slice/u/app/me"));
        let elsewhere = delegated_root(&unified(&t, "/user.slice"));
        let _ = std::fs::remove_dir_all(&t);
        if euid == 0 {
            // As root everything is ours; the walk still stops at the first foreign owner.
            assert_eq!(root.as_deref(), Some("/user.slice/u"));
            assert_eq!(elsewhere, None);
        } else {
            assert_eq!(root.as_deref(), Some("/user.slice"));
        }
    }

    #[test]
    fn the_controllers_limits_need() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory": {"limit": 1048576}, "cpu": {"cpus": "0"}, "pids": {"limit": 5},
                "unified": {"io.weight": "100"}}"#,
        )
        .unwrap();
        let names: Vec<&str> = controllers_needed(&r).iter().map(|(c, _)| *c).collect();
        assert_eq!(names, ["memory", "cpuset", "pids", "io"]);
        let none: LinuxResources = serde_json::from_str(r#"{"devices": []}"#).unwrap();
        assert!(controllers_needed(&none).is_empty());
    }
}
