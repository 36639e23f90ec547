//! v1 devices controller: the spec's ordered allow/deny list written to devices.allow /
//! devices.deny, one rule per write, so that later rules override earlier ones.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::V1Manager;
use crate::{fsutil, CgroupError};

/// A device rule normalized from the spec: type 'a', 'b' or 'c'; None = wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub typ: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Subset of "rwm" in that order.
    pub access: String,
}

impl DeviceRule {
    pub fn is_everything(&self) -> bool {
        self.typ == 'a' && self.major.is_none() && self.minor.is_none() && self.access == "rwm"
    }
}

/// Normalize spec rules: missing type = 'a', 'u' = 'c', missing/-1 numbers = wildcard,
/// missing access = "rwm". FIFO ('p') rules are dropped: the device cgroup never governs
/// FIFOs, so such a rule cannot change what is enforced.
pub fn normalize(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>, CgroupError> {
    let mut out = Vec::new();
    for r in rules {
        let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::P => continue,
        };
        let num = |v: Option<i64>, what: &str| -> Result<Option<u32>, CgroupError> {
            match v {
                None | Some(-1) => Ok(None),
                Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                    CgroupError::invalid(format!("device rule {what}"), format!("{n}"))
                }),
            }
        };
        let acc = r.access().clone().unwrap_or_else(|| "rwm".into());
        if acc.is_empty() || acc.chars().any(|c| !"rwm".contains(c)) {
            return Err(CgroupError::invalid(
                "device rule access",
                format!("{acc:?} (must be a non-empty combination of r, w, m)"),
            ));
        }
        let access: String = "rwm".chars().filter(|c| acc.contains(*c)).collect();
        out.push(DeviceRule {
            allow: r.allow(),
            typ,
            major: num(r.major(), "major")?,
            minor: num(r.minor(), "minor")?,
            access,
        });
    }
    Ok(out)
}

/// The lines to write, in order, each with the file it goes to.
pub fn v1_lines(rules: &[DeviceRule]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        if r.is_everything() {
            // "a" switches the default and clears the exception list
            out.push((file, "a".to_string()));
            continue;
        }
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        // the kernel reads any line starting with 'a' as "everything": spell a partial
        // all-types rule as a char and a block rule
        let types: &[char] = if r.typ == 'a' {
            &['c', 'b']
        } else {
            std::slice::from_ref(&r.typ)
        };
        for t in types {
            out.push((
                file,
                format!("{t} {}:{} {}", n(r.major), n(r.minor), r.access),
            ));
        }
    }
    out
}

pub fn apply(m: &V1Manager, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let rules = normalize(rules)?;
    if rules.is_empty() {
        return Ok(());
    }
    let dir = m.require("devices", "device rules")?;
    for (file, line) in v1_lines(&rules) {
        fsutil::write(&dir.join(file), &line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn normalizes_and_renders() {
        let r = normalize(&rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"wr"},
                {"allow":true,"type":"u","major":5,"access":"m"},
                {"allow":false,"type":"a","major":1,"minor":-1,"access":"w"},
                {"allow":true,"type":"p","major":1,"minor":1}]"#,
        ))
        .unwrap();
        assert_eq!(r.len(), 4);
        assert!(r[0].is_everything());
        assert_eq!(r[1].access, "rw");
        assert_eq!(r[2].typ, 'c');
        let lines = v1_lines(&r);
        assert_eq!(
            lines,
            vec![
                ("devices.deny", "a".to_string()),
                ("devices.allow", "c 1:3 rw".to_string()),
                ("devices.allow", "c 5:* m".to_string()),
                ("devices.deny", "c 1:* w".to_string()),
                ("devices.deny", "b 1:* w".to_string()),
            ]
        );
    }

    #[test]
    fn rejects_bad_access() {
        assert!(normalize(&rules(r#"[{"allow":true,"access":"rx"}]"#)).is_err());
        assert!(normalize(&rules(r#"[{"allow":true,"major":-5}]"#)).is_err());
    }
}
