//! Where a container's cgroup goes (the spec's `linux.cgroupsPath`), per cgroup manager and
//! privilege:
//!
//! | | cgroupfs | systemd |
//! |---|---|---|
//! | root | `/husk-engine/ID` | `machine.slice/husk-ID.scope` (system manager) |
//! | rootless | below the cgroup v2 subtree delegated to the user, else `/husk-engine/ID` | `user.slice/husk-ID.scope` of the user's manager (`user@UID.service`) |
//!
//! An ordinary user can make cgroups only where one was delegated to them. With systemd
//! the user's own manager makes the scope in its subtree (as rootless podman asks it); with
//! cgroupfs the engine finds the delegated subtree its own cgroup is in
//! (husk_cgroups::v2::delegate). Without either (cgroup v1, or no delegation) the path
//! stays `/husk-engine/ID`, which the runtime cannot create: the container then runs
//! without a cgroup, and limits are refused with what to fix (husk_container::rootless).

use crate::CgroupManager;

/// podman's default manager: systemd for an ordinary user on cgroup v2 whose user bus is
/// there (its manager owns the user's delegated subtree), cgroupfs otherwise — also for
/// root, whose containers have always been under /husk-engine.
pub fn default_manager() -> CgroupManager {
    if on_v2()
        && husk_container::rootless::is_unprivileged()
        && husk_cgroups::systemd::user::bus_present()
    {
        CgroupManager::Systemd
    } else {
        CgroupManager::Cgroupfs
    }
}

/// Whether the host has only the unified hierarchy (cgroup v2).
pub(crate) fn on_v2() -> bool {
    husk_cgroups::probe_layout().is_ok_and(|l| l == husk_cgroups::Layout::V2)
}

/// The `linux.cgroupsPath` of container `id`. For a rootless cgroupfs container this may
/// prepare the delegated subtree (a parent with its controllers enabled; see
/// husk_cgroups::v2::delegate); what fails there is a warning, and the container goes where
/// the runtime reports what is missing.
pub(crate) fn cgroups_path(manager: CgroupManager, id: &str, warn: &dyn Fn(&str)) -> String {
    let rootless = husk_container::rootless::is_unprivileged();
    match (manager, rootless) {
        (CgroupManager::Systemd, false) => format!("machine.slice:husk:{id}"),
        (CgroupManager::Systemd, true) => format!("user.slice:husk:{id}"),
        (CgroupManager::Cgroupfs, true) => match delegated_parent() {
            Ok(Some(parent)) => format!("{parent}/{id}"),
            Ok(None) => format!("/husk-engine/{id}"),
            Err(e) => {
                warn(&format!("cannot use the delegated cgroup subtree: {e}"));
                format!("/husk-engine/{id}")
            }
        },
        (CgroupManager::Cgroupfs, false) => format!("/husk-engine/{id}"),
    }
}

/// The parent of a rootless user's container cgroups in their delegated v2 subtree, made
/// ready; None on v1/hybrid hosts or without a delegated subtree.
fn delegated_parent() -> Result<Option<String>, husk_cgroups::CgroupError> {
    let mounts = husk_cgroups::layout::Mounts::probe()?;
    if mounts.layout()? != husk_cgroups::Layout::V2 {
        return Ok(None);
    }
    let Some(unified) = &mounts.unified else {
        return Ok(None);
    };
    match husk_cgroups::v2::delegate::delegated_root(unified) {
        Some(root) => husk_cgroups::v2::delegate::prepare_parent(unified, &root).map(Some),
        None => Ok(None),
    }
}
