//! runc's systemd form of `linux.cgroupsPath`, `slice:prefix:name`, and where systemd puts
//! the unit it names. Pure string work, so every rule is unit-tested without systemd.
//!
//! - `slice` is the parent slice; empty means `system.slice` (the system manager's default
//!   for services and scopes).
//! - the unit is `prefix-name.scope` (`name.scope` with an empty prefix), or, when `name`
//!   ends in `.slice`, the slice `name` itself (which must then be a child of `slice`).
//! - an empty `cgroupsPath` means `system.slice:husk:<container id>`, as runc's default is
//!   `system.slice:runc:<id>`.
//!
//! systemd nests a slice by the dashes in its name: `a-b-c.slice` lives in
//! `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.

use crate::CgroupError;

/// The slice a unit goes to when `cgroupsPath` names none.
pub const DEFAULT_SLICE: &str = "system.slice";
/// The unit prefix when `cgroupsPath` is empty.
pub const DEFAULT_PREFIX: &str = "husk";

/// A parsed `slice:prefix:name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    /// The parent slice, e.g. "machine.slice".
    pub slice: String,
    /// The unit to create: "husk-c1.scope", or a slice such as "machine-c1.slice".
    pub unit: String,
    /// Its cgroup path in the unified hierarchy, e.g. "/machine.slice/husk-c1.scope".
    pub cgroup: String,
}

impl UnitSpec {
    /// Whether the unit is a slice (no processes of its own at start: they are moved in).
    pub fn is_slice(&self) -> bool {
        self.unit.ends_with(".slice")
    }
}

/// Parse `cgroupsPath` for the systemd driver (see the module doc).
pub fn parse(cgroups_path: Option<&str>, container_id: &str) -> Result<UnitSpec, CgroupError> {
    let given = cgroups_path.filter(|p| !p.is_empty());
    let (slice, prefix, name) = match given {
        None => (DEFAULT_SLICE, DEFAULT_PREFIX, container_id),
        Some(p) => {
            let parts: Vec<&str> = p.split(':').collect();
            match parts[..] {
                [slice, prefix, name] => (slice, prefix, name),
                _ => {
                    return Err(CgroupError::invalid(
                        format!("cgroupsPath {p:?}"),
                        "the systemd cgroup driver expects \"slice:prefix:name\"",
                    ))
                }
            }
        }
    };
    let what = || format!("cgroupsPath {:?}", given.unwrap_or(container_id));
    let slice = if slice.is_empty() {
        DEFAULT_SLICE
    } else {
        slice
    };
    let slice_dir = expand_slice(slice).map_err(|why| CgroupError::invalid(what(), why))?;
    if name.is_empty() {
        return Err(CgroupError::invalid(what(), "the unit name is empty"));
    }
    if name.ends_with(".slice") {
        let dir = expand_slice(name).map_err(|why| CgroupError::invalid(what(), why))?;
        let parent = dir.rsplit_once('/').map_or("", |(p, _)| p);
        if parent != slice_dir.trim_end_matches('/') {
            return Err(CgroupError::invalid(
                what(),
                format!("the slice {name} is not a child of {slice}"),
            ));
        }
        return Ok(UnitSpec {
            slice: slice.to_string(),
            unit: name.to_string(),
            cgroup: dir,
        });
    }
    let unit = match prefix {
        "" => format!("{name}.scope"),
        p => format!("{p}-{name}.scope"),
    };
    check_unit_chars(&unit).map_err(|why| CgroupError::invalid(what(), why))?;
    let cgroup = format!("{}/{unit}", slice_dir.trim_end_matches('/'));
    Ok(UnitSpec {
        slice: slice.to_string(),
        unit,
        cgroup,
    })
}

/// The cgroup directory (below the hierarchy root) of slice `slice`; "/" for `-.slice`.
pub fn expand_slice(slice: &str) -> Result<String, String> {
    let Some(base) = slice.strip_suffix(".slice") else {
        return Err(format!("{slice:?} is not a slice (no .slice suffix)"));
    };
    check_unit_chars(slice)?;
    if base == "-" {
        return Ok("/".into());
    }
    if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
        return Err(format!("{slice:?} is not a valid slice name"));
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    Ok(out)
}

/// systemd's unit names: ASCII letters, digits and ":-_.\@", at most 255 bytes.
fn check_unit_chars(unit: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    if unit.len() > 255 || !unit.chars().all(ok) {
        return Err(format!("{unit:?} is not a valid systemd unit name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_as_runc_names_them() {
        let u = parse(Some("machine.slice:husk:c1"), "x").unwrap();
        assert_eq!(u.unit, "husk-c1.scope");
        assert_eq!(u.slice, "machine.slice");
        assert_eq!(u.cgroup, "/machine.slice/husk-c1.scope");
        assert!(!u.is_slice());
        let u = parse(Some(":cri-containerd:abc"), "x").unwrap();
        assert_eq!(u.cgroup, "/system.slice/cri-containerd-abc.scope");
        let u = parse(None, "c2").unwrap();
        assert_eq!(u.cgroup, "/system.slice/husk-c2.scope");
        let u = parse(Some("kubepods-besteffort-pod1.slice:cri:c"), "x").unwrap();
        assert_eq!(
            u.cgroup,
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-c.scope"
        );
        let u = parse(Some("-.slice::c"), "x").unwrap();
        assert_eq!(
            (u.unit.as_str(), u.cgroup.as_str()),
            ("c.scope", "/c.scope")
        );
    }

    #[test]
    fn a_slice_as_the_unit() {
        let u = parse(Some("machine.slice:x:machine-c1.slice"), "id").unwrap();
        assert!(u.is_slice());
        assert_eq!(u.unit, "machine-c1.slice");
        assert_eq!(u.cgroup, "/machine.slice/machine-c1.slice");
        let e = parse(Some("machine.slice:x:other.slice"), "id").unwrap_err();
        assert!(e.to_string().contains("not a child"), "{e}");
    }

    #[test]
    fn bad_paths_are_one_clear_error() {
        for bad in [
            "/abs/path",
            "a:b",
            "a:b:c:d",
            "system:husk:c1",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "a/b.slice:p:n",
            "machine.slice:husk:",
            "machine.slice:husk:a/b",
            "machine.slice:hu sk:c",
        ] {
            let e = parse(Some(bad), "id").unwrap_err().to_string();
            assert!(e.contains("cgroupsPath"), "{bad}: {e}");
        }
    }
}
