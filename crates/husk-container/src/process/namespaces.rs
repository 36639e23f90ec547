//! Which namespaces a container gets, and how: born in them via clone flags, joined by path
//! with setns, or (cgroup, time) unshared at the point where that gives the right view.

use super::SetupError;
use crate::error::{Error, Result};
use crate::sys;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone)]
pub struct NamespacePlan {
    /// CLONE_NEW* flags for the clone that creates init.
    pub clone_flags: u64,
    /// Namespaces to join, user namespace first.
    pub joins: Vec<(LinuxNamespaceType, PathBuf)>,
    pub new_user: bool,
    /// Unshared by init once it sits in its cgroup, so the cgroup becomes the namespace's root.
    pub new_cgroup: bool,
    /// Unshared by the intermediate process, which writes the offsets before init exists.
    pub new_time: bool,
    pub has: Vec<LinuxNamespaceType>,
    /// The runtime itself runs in a user namespace (rootless podman and docker run it so).
    pub caller_in_userns: bool,
}

impl NamespacePlan {
    pub fn from_spec(spec: &Spec) -> Result<Self> {
        let mut plan = NamespacePlan {
            caller_in_userns: husk_oci::userns::in_nested_userns(),
            ..Default::default()
        };
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for ns in &namespaces {
            let t = ns.typ();
            if plan.has.contains(&t) {
                return Err(Error::InvalidConfig(format!(
                    "namespace {t} is listed twice"
                )));
            }
            plan.has.push(t);
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    if !p.exists() {
                        return Err(Error::InvalidConfig(format!(
                            "namespace {t} path {} does not exist",
                            p.display()
                        )));
                    }
                    plan.joins.push((t, p.clone()))
                }
                _ => match t {
                    LinuxNamespaceType::User => plan.new_user = true,
                    LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
                    LinuxNamespaceType::Time => plan.new_time = true,
                    other => plan.clone_flags |= other as u64,
                },
            }
        }
        if plan.new_user {
            plan.clone_flags |= LinuxNamespaceType::User as u64;
        }
        plan.joins
            .sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
        let linux = spec.linux().as_ref();
        // Without a mount namespace the container runs chrooted in the caller's (see
        // rootfs/mod.rs); as runc, paths that only a private mount table could mask or make
        // read-only are refused rather than done on the caller's mounts.
        let restricts = linux.is_some_and(|l| {
            l.masked_paths().as_ref().is_some_and(|p| !p.is_empty())
                || l.readonly_paths().as_ref().is_some_and(|p| !p.is_empty())
        });
        if !plan.has.contains(&LinuxNamespaceType::Mount) && restricts {
            return Err(Error::InvalidConfig(
                "unable to restrict sys entries without a private MNT namespace \
                 (linux.maskedPaths and linux.readonlyPaths need a mount namespace)"
                    .into(),
            ));
        }
        let has_maps =
            linux.is_some_and(|l| l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()));
        if plan.new_user && !has_maps {
            return Err(Error::InvalidConfig(
                "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
            ));
        }
        if linux.is_some_and(|l| l.time_offsets().is_some()) && !plan.new_time {
            return Err(Error::InvalidConfig(
                "linux.timeOffsets needs a new time namespace".into(),
            ));
        }
        Ok(plan)
    }

    /// Joining namespaces or making a time namespace needs a process in between, because
    /// setns/unshare of pid and time namespaces only take effect for children.
    pub fn needs_intermediate(&self) -> bool {
        !self.joins.is_empty() || self.new_time
    }

    pub fn contains(&self, t: LinuxNamespaceType) -> bool {
        self.has.contains(&t)
    }

    /// Whether init ends up in a user namespace that is not the host's.
    pub fn in_userns(&self) -> bool {
        self.contains(LinuxNamespaceType::User) || self.caller_in_userns
    }
}

/// setns into every namespace the spec gives a path for.
pub fn join_all(joins: &[(LinuxNamespaceType, PathBuf)]) -> Result<(), SetupError> {
    for (t, path) in joins {
        join(*t, path)?;
    }
    Ok(())
}

fn join(t: LinuxNamespaceType, path: &Path) -> Result<(), SetupError> {
    let what = || format!("joining {t} namespace {}", path.display());
    let fd = sys::open(path, libc::O_RDONLY).map_err(|e| SetupError::new(what(), e))?;
    sys::check(unsafe { libc::setns(fd.as_raw_fd(), t as libc::c_int) })
        .map_err(|e| SetupError::new(what(), e))?;
    Ok(())
}

/// Make a new time namespace for children and set its clock offsets.
pub fn unshare_time(spec: &Spec) -> Result<(), SetupError> {
    sys::check(unsafe { libc::unshare(LinuxNamespaceType::Time as libc::c_int) })
        .map_err(|e| SetupError::new("creating the time namespace", e))?;
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().clone())
        .unwrap_or_default();
    let mut text = String::new();
    for (clock, off) in offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    if !text.is_empty() {
        sys::write_file(Path::new("/proc/self/timens_offsets"), text.as_bytes())
            .map_err(|e| SetupError::new("writing /proc/self/timens_offsets", e))?;
    }
    Ok(())
}
