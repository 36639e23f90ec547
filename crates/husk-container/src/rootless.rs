//! Running without root: where state lives, which host ids a user may map, and how the id
//! maps of a new user namespace get written. The kernel lets an unprivileged process map
//! only its own uid and gid (and the gid only after `setgroups` is set to "deny"); anything
//! wider goes through the setuid helpers newuidmap/newgidmap (Debian's `uidmap`), which check
//! the ranges against /etc/subuid and /etc/subgid.

use crate::error::{Error, Result};
use crate::sys;
use oci_spec::runtime::{LinuxIdMapping, LinuxResources};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// True when this process has no root privileges on the host, the case `--rootless auto`
/// treats as rootless: not uid 0, or uid 0 of a user namespace whose 0 is an ordinary user
/// outside (how rootless podman and docker run their runtime).
pub fn is_unprivileged() -> bool {
    !husk_oci::userns::is_host_root()
}

pub use husk_oci::userns::host_euid;

/// When `pid` started (clock ticks since boot), None if it is gone or a zombie: with the
/// pid, what identifies a process across pid reuse.
pub fn process_start_time(pid: i32) -> Option<u64> {
    match sys::proc_start_time(pid) {
        Some((t, false)) => Some(t),
        _ => None,
    }
}

/// The state root when none was given: `/run/husk` for root; `$XDG_RUNTIME_DIR/husk` for a
/// rootless caller, falling back to `/run/husk` only when that is writable.
pub fn default_state_root(rootless: bool) -> Result<PathBuf> {
    if !rootless {
        return Ok(PathBuf::from(crate::DEFAULT_ROOT));
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Ok(Path::new(&dir).join("husk"));
    }
    let fallback = Path::new(crate::DEFAULT_ROOT);
    let probe = if fallback.exists() {
        fallback
    } else {
        Path::new("/run")
    };
    if sys::access_writable(probe) {
        return Ok(fallback.to_path_buf());
    }
    Err(Error::Other(format!(
        "rootless: XDG_RUNTIME_DIR is not set and {} is not writable; set XDG_RUNTIME_DIR \
         (usually /run/user/{}) or pass --root",
        probe.display(),
        unsafe { libc::geteuid() }
    )))
}

/// One line of /etc/subuid or /etc/subgid that applies to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubIdRange {
    pub start: u32,
    pub count: u32,
}

/// The subordinate ranges of the user (by name or numeric id) in a subuid/subgid file.
/// A missing file means no ranges.
pub fn sub_id_ranges(file: &Path, user: &str, id: u32) -> std::io::Result<Vec<SubIdRange>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(parse_sub_ids(&text, user, id))
}

fn parse_sub_ids(text: &str, user: &str, id: u32) -> Vec<SubIdRange> {
    let id = id.to_string();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != user && who != id {
                return None;
            }
            let (start, count) = (start.parse().ok()?, count.parse().ok()?);
            (count > 0).then_some(SubIdRange { start, count })
        })
        .collect()
}

/// The first resource limit the config asks for, named as in config.json; device rules
/// do not count (a rootless container gets its devices as bind mounts).
pub(crate) fn first_limit(r: &LinuxResources) -> Option<&'static str> {
    [
        ("memory", r.memory().is_some()),
        ("cpu", r.cpu().is_some()),
        ("pids", r.pids().is_some()),
        ("blockIO", r.block_io().is_some()),
        (
            "hugepageLimits",
            r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
        ),
        ("network", r.network().is_some()),
        ("rdma", r.rdma().as_ref().is_some_and(|h| !h.is_empty())),
        (
            "unified",
            r.unified().as_ref().is_some_and(|h| !h.is_empty()),
        ),
    ]
    .into_iter()
    .find_map(|(name, set)| set.then_some(name))
}

/// Whether a rootless container gets a cgroup at all: not on v1 or hybrid hosts, whose
/// hierarchies cannot be delegated to a user; there, asking for limits is an error.
pub(crate) fn cgroup_usable(
    id: &str,
    resources: Option<&LinuxResources>,
    warn: &mut dyn FnMut(String),
) -> Result<bool> {
    let layout = husk_cgroups::probe_layout().map_err(|e| Error::Cgroup(e.to_string()))?;
    if layout == husk_cgroups::Layout::V2 {
        return Ok(true);
    }
    if let Some(limit) = resources.and_then(first_limit) {
        return Err(Error::InvalidConfig(format!(
            "rootless container {id}: linux.resources.{limit} needs a cgroup, and cgroup v1 \
             cannot be delegated to an unprivileged user (run as root, or on cgroup v2)"
        )));
    }
    warn(format!(
        "rootless container {id} runs without a cgroup (cgroup v1 host)"
    ));
    Ok(false)
}

/// Creating the cgroup failed for a rootless container: without limits that only costs the
/// cgroup (with a warning); with limits it is the error, with what to fix.
pub(crate) fn cgroup_refused(
    id: &str,
    path: &husk_cgroups::CgroupPath,
    resources: Option<&LinuxResources>,
    e: &husk_cgroups::CgroupError,
    warn: &mut dyn FnMut(String),
) -> Result<()> {
    let denied = matches!(e.errno(), Some(libc::EACCES | libc::EPERM | libc::EROFS));
    match resources.and_then(first_limit) {
        None if denied => {
            warn(format!(
                "rootless container {id} runs without a cgroup: {e} (delegate a \
                 cgroup v2 subtree to the user for limits)"
            ));
            Ok(())
        }
        Some(limit) if denied => Err(Error::Cgroup(format!(
            "rootless container {id}: linux.resources.{limit} needs the cgroup {}, and \
             creating it failed: {e} (the user needs a delegated cgroup v2 subtree, e.g. \
             systemd's Delegate=yes)",
            path.path
        ))),
        _ => Err(Error::Cgroup(e.to_string())),
    }
}

/// Which of the two files, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Uid,
    Gid,
}

impl IdKind {
    fn map_file(self) -> &'static str {
        match self {
            IdKind::Uid => "uid_map",
            IdKind::Gid => "gid_map",
        }
    }
    fn helper(self) -> &'static str {
        match self {
            IdKind::Uid => "newuidmap",
            IdKind::Gid => "newgidmap",
        }
    }
    fn sub_file(self) -> &'static str {
        match self {
            IdKind::Uid => "/etc/subuid",
            IdKind::Gid => "/etc/subgid",
        }
    }
}

/// The widest mapping a user may have without root: its own id as 0, then its subordinate
/// ranges from /etc/subuid (or /etc/subgid) one after another from 1. An error, saying what
/// line to add, when the user has none.
pub fn subordinate_mapping(kind: IdKind) -> Result<Vec<LinuxIdMapping>> {
    let (uid, own) = unsafe {
        (
            libc::getuid(),
            match kind {
                IdKind::Uid => libc::getuid(),
                IdKind::Gid => libc::getgid(),
            },
        )
    };
    let user = sys::user_name(uid);
    let file = Path::new(kind.sub_file());
    let ranges = sub_id_ranges(file, &user, uid).map_err(|e| Error::io("reading", file, e))?;
    if ranges.is_empty() {
        return Err(Error::Other(format!(
            "rootless: {user} has no subordinate {}s: add a line to {} such as \
             \"{user}:100000:65536\" (as root), so images with several owners can be unpacked",
            match kind {
                IdKind::Uid => "uid",
                IdKind::Gid => "gid",
            },
            file.display()
        )));
    }
    let mapping = |inside: u32, outside: u32, size: u32| {
        oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(inside)
            .host_id(outside)
            .size(size)
            .build()
            .expect("all fields set")
    };
    let mut maps = vec![mapping(0, own, 1)];
    let mut next = 1u32;
    for r in ranges {
        maps.push(mapping(next, r.start, r.count));
        next = next.saturating_add(r.count);
    }
    Ok(maps)
}

/// Write `/proc/<pid>/{uid,gid}_map` for a child just put in a new user namespace: directly
/// when we may (root, or only our own id), else through newuidmap/newgidmap.
pub fn write_id_maps(pid: i32, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    // Root of the current user namespace may write any map of ids it has itself.
    let privileged = unsafe { libc::geteuid() == 0 };
    let own = |maps: &[LinuxIdMapping], id: u32| matches!(maps, [m] if m.host_id() == id && m.size() == 1);
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if privileged || own(uids, euid) {
        write_map(pid, IdKind::Uid, uids)?;
    } else {
        run_helper(pid, IdKind::Uid, uids)?;
    }
    if privileged {
        write_map(pid, IdKind::Gid, gids)
    } else if own(gids, egid) {
        // The kernel's rule for an unprivileged gid_map: setgroups must be denied first, or
        // the container could drop supplementary groups that guard files on the host.
        let path = format!("/proc/{pid}/setgroups");
        sys::write_file(Path::new(&path), b"deny").map_err(|e| Error::io("writing", path, e))?;
        write_map(pid, IdKind::Gid, gids)
    } else {
        run_helper(pid, IdKind::Gid, gids)
    }
}

fn write_map(pid: i32, kind: IdKind, maps: &[LinuxIdMapping]) -> Result<()> {
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let path = format!("/proc/{pid}/{}", kind.map_file());
    sys::write_file(Path::new(&path), text.as_bytes()).map_err(|e| {
        let hint = if unsafe { libc::geteuid() != 0 } {
            " (without root only your own id can be mapped directly)"
        } else {
            ""
        };
        Error::Other(format!("writing {path}: {e}{hint}"))
    })
}

/// newuidmap/newgidmap: found on PATH, setuid root or with file
/// capabilities, and run with the ranges; their own complaint is passed on with a hint.
fn run_helper(pid: i32, kind: IdKind, maps: &[LinuxIdMapping]) -> Result<()> {
    let helper = find_helper(kind.helper())?;
    let mut args = vec![pid.to_string()];
    for m in maps {
        args.extend([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = std::process::Command::new(&helper)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Other(format!("running {}: {e}", helper.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said.trim().lines().last().unwrap_or("failed").to_string();
    let uid = unsafe { libc::getuid() };
    let user = sys::user_name(uid);
    let file = Path::new(kind.sub_file());
    let hint = match sub_id_ranges(file, &user, uid) {
        Ok(r) if r.is_empty() => format!(
            "{user} has no line in {}: add one such as \"{user}:100000:65536\"",
            file.display()
        ),
        Ok(r) => {
            let r: Vec<String> = r
                .iter()
                .map(|r| format!("{}:{}", r.start, r.count))
                .collect();
            format!(
                "host ids must be yours or in {user}'s ranges in {} ({})",
                file.display(),
                r.join(", ")
            )
        }
        Err(e) => format!("reading {}: {e}", file.display()),
    };
    Err(Error::Other(format!(
        "{} {}: {said} ({hint})",
        helper.display(),
        args.join(" "),
    )))
}

fn find_helper(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Other(format!(
                "{name} not found on PATH: mapping more than your own id needs it (install \
                 the uidmap package)"
            ))
        })?;
    let meta = std::fs::metadata(&found).map_err(|e| Error::io("inspecting", &found, e))?;
    let setuid_root = meta.uid() == 0 && meta.mode() & libc::S_ISUID != 0;
    let has_caps = xattr_present(&found, "security.capability");
    if !setuid_root && !has_caps {
        return Err(Error::Other(format!(
            "{} is neither setuid root nor has file capabilities, so it cannot map \
             subordinate ids (reinstall uidmap, or run chmod u+s {} as root)",
            found.display(),
            found.display()
        )));
    }
    Ok(found)
}

fn xattr_present(path: &Path, name: &str) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(p), Ok(n)) = (
        std::ffi::CString::new(path.as_os_str().as_bytes()),
        std::ffi::CString::new(name),
    ) else {
        return false;
    };
    unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) > 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_ids_match_name_or_id_and_skip_junk() {
        let text = "# comment\nalice:100000:65536\nbob:165536:65536\n1001:300000:10\nalice:x:1\nalice:5:0\n";
        assert_eq!(
            parse_sub_ids(text, "alice", 1001),
            vec![
                SubIdRange {
                    start: 100000,
                    count: 65536
                },
                SubIdRange {
                    start: 300000,
                    count: 10
                }
            ]
        );
        assert!(parse_sub_ids(text, "carol", 1002).is_empty());
    }
}
