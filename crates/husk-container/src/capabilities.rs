//! The five capability sets of `process.capabilities`.

use crate::process::SetupError;
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

/// runc 1.1's rule for capability names: exactly `CAP_` and a capability this kernel has.
/// Removes the others from every set of `process.capabilities` (a JSON `process` object) and
/// returns runc's warning naming them; `None` when every name is known.
pub fn drop_unknown(process: &mut serde_json::Value) -> Option<String> {
    let sets = process.get_mut("capabilities")?.as_object_mut()?;
    let supported = caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all());
    let known = |name: &str| {
        name.parse::<Capability>()
            .is_ok_and(|c| supported.contains(&c))
            && serde_json::from_value::<oci_spec::runtime::Capability>(name.into()).is_ok()
    };
    let mut unknown = std::collections::BTreeSet::new();
    for list in sets.values_mut().filter_map(|v| v.as_array_mut()) {
        list.retain(|v| match v.as_str() {
            Some(name) if !known(name) => {
                unknown.insert(name.to_string());
                false
            }
            // Not a string: left for the parser to reject.
            _ => true,
        });
    }
    (!unknown.is_empty()).then(|| {
        let names: Vec<String> = unknown.into_iter().collect();
        format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            names.join(" ")
        )
    })
}

fn to_caps(set: &Option<Capabilities>) -> CapsHashSet {
    set.iter()
        .flatten()
        // Names the running kernel's `caps` table does not know are skipped, as runc does
        // (`drop_unknown` has already warned about them when the spec was read).
        .filter_map(|c| format!("CAP_{c}").parse::<Capability>().ok())
        .collect()
}

/// Drop everything outside the bounding set. Needs CAP_SETPCAP: call before changing uid.
pub fn drop_bounding(c: &LinuxCapabilities) -> Result<(), SetupError> {
    let keep = to_caps(c.bounding());
    // One prctl per capability the kernel knows; dropping one already gone is a no-op.
    let known = caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all());
    for cap in known.into_iter().filter(|cap| !keep.contains(cap)) {
        let r =
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap.index() as libc::c_ulong, 0, 0, 0) };
        let e = std::io::Error::last_os_error();
        // EINVAL: a capability newer than this kernel.
        if r < 0 && e.raw_os_error() != Some(libc::EINVAL) {
            return Err(SetupError::new(
                format!("dropping {cap} from the bounding set"),
                e,
            ));
        }
    }
    Ok(())
}

/// Set effective, permitted, inheritable and ambient. Call after the uid change (with
/// PR_SET_KEEPCAPS so that the permitted set survived it).
pub fn apply_sets(c: &LinuxCapabilities) -> Result<(), SetupError> {
    let fail = |what: &str, e: caps::errors::CapsError| {
        SetupError::msg(format!("setting {what} capabilities: {e}"))
    };
    let permitted = to_caps(c.permitted());
    let effective = to_caps(c.effective());
    let inheritable = to_caps(c.inheritable());
    // Order matters. Inheritable first: without CAP_SETPCAP in effective (cleared by the uid
    // change) the kernel allows only inheritable caps that are still permitted, and the spec
    // may ask for inheritable ones it does not permit (runc sets all three in one capset,
    // while permitted is still full). Then the effective set must stay a subset of permitted
    // at every step.
    caps::set(None, CapSet::Inheritable, &inheritable).map_err(|e| fail("inheritable", e))?;
    caps::set(
        None,
        CapSet::Effective,
        &effective
            .intersection(&current_permitted())
            .cloned()
            .collect(),
    )
    .map_err(|e| fail("effective", e))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(|e| fail("permitted", e))?;
    caps::set(None, CapSet::Effective, &effective).map_err(|e| fail("effective", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e))?;
    // The kernel only allows ambient capabilities that are both permitted and inheritable;
    // others are skipped (runc warns and goes on too).
    for cap in to_caps(c.ambient())
        .into_iter()
        .filter(|cap| permitted.contains(cap) && inheritable.contains(cap))
    {
        caps::raise(None, CapSet::Ambient, cap).map_err(|e| fail("ambient", e))?;
    }
    Ok(())
}

fn current_permitted() -> CapsHashSet {
    caps::read(None, CapSet::Permitted).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_names_are_dropped_with_one_warning() {
        let mut p = json!({"capabilities": {
            "bounding": ["CAP_KILL", "CAP_FOO", "SYS_ADMIN"],
            "effective": ["cap_kill", "CAP_FOO"],
            "permitted": ["CAP_KILL"]
        }});
        let w = drop_unknown(&mut p).unwrap();
        assert_eq!(
            w,
            "ignoring unknown or unavailable capabilities: [CAP_FOO SYS_ADMIN cap_kill]"
        );
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_KILL"]));
        assert_eq!(p["capabilities"]["effective"], json!([]));
        assert_eq!(drop_unknown(&mut p), None);
        assert_eq!(drop_unknown(&mut json!({"args": ["true"]})), None);
    }
}
