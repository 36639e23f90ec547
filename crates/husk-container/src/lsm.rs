//! AppArmor and SELinux labels (`process.apparmorProfile`, `process.selinuxLabel`,
//! `linux.mountLabel`).
//!
//! A label that cannot be applied must fail `create`: running the container unconfined
//! while its config asks for confinement is a silent security downgrade. What would be
//! written is computed by pure functions (`exec_label_writes`, `mount_label_option`) so unit
//! tests check it exactly; applying is one write per entry, done by the caller.

use std::path::Path;

/// The LSMs the running kernel has active (`/sys/kernel/security/lsm`; empty when
/// securityfs is missing).
pub fn active(lsm_file: &Path) -> Vec<String> {
    std::fs::read_to_string(lsm_file)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The labels a spec asks for.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub apparmor: Option<String>,
    pub selinux: Option<String>,
    pub mount: Option<String>,
}

impl Labels {
    pub fn from_spec(spec: &oci_spec::runtime::Spec) -> Labels {
        let p = spec.process().as_ref();
        let nonempty = |s: Option<&String>| s.filter(|s| !s.is_empty()).cloned();
        Labels {
            apparmor: nonempty(p.and_then(|p| p.apparmor_profile().as_ref())),
            selinux: nonempty(p.and_then(|p| p.selinux_label().as_ref())),
            mount: nonempty(spec.linux().as_ref().and_then(|l| l.mount_label().as_ref())),
        }
    }
}

/// Refuse labels the host cannot enforce, as one line naming the field.
pub fn check(labels: &Labels, active: &[String]) -> Result<(), String> {
    let has = |n: &str| active.iter().any(|a| a == n);
    for (field, set, lsm) in [
        (
            "process.apparmorProfile",
            labels.apparmor.is_some(),
            "apparmor",
        ),
        ("process.selinuxLabel", labels.selinux.is_some(), "selinux"),
        ("linux.mountLabel", labels.mount.is_some(), "selinux"),
    ] {
        if set && !has(lsm) {
            return Err(format!(
                "{field} is set but {lsm} is not an active LSM on this host"
            ));
        }
    }
    Ok(())
}

/// The (file, contents) writes that label the next execve of the calling thread.
/// AppArmor prefers its own attr directory (stacked LSMs), else the shared one.
pub fn exec_label_writes(labels: &Labels, apparmor_dir_exists: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Some(p) = &labels.apparmor {
        let file = if apparmor_dir_exists {
            "/proc/thread-self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        out.push((file.to_string(), format!("exec {p}").into_bytes()));
    }
    if let Some(l) = &labels.selinux {
        out.push((
            "/proc/thread-self/attr/exec".to_string(),
            l.as_bytes().to_vec(),
        ));
    }
    out
}

/// The mount data option carrying `linux.mountLabel` (appended to a mount's data).
pub fn mount_label_option(label: &str) -> String {
    format!("context=\"{label}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels {
            apparmor: Some("husk-default".into()),
            selinux: Some("system_u:system_r:container_t:s0:c1,c2".into()),
            mount: Some("system_u:object_r:container_file_t:s0".into()),
        }
    }

    #[test]
    fn refused_without_the_lsm() {
        let e = check(&labels(), &[]).unwrap_err();
        assert!(e.contains("process.apparmorProfile"), "{e}");
        let only_aa = vec!["capability".to_string(), "apparmor".to_string()];
        let e = check(&labels(), &only_aa).unwrap_err();
        assert!(e.contains("process.selinuxLabel"), "{e}");
        let both = vec!["apparmor".to_string(), "selinux".to_string()];
        assert!(check(&labels(), &both).is_ok());
        assert!(check(&Labels::default(), &[]).is_ok());
    }

    #[test]
    fn writes_are_exact() {
        let w = exec_label_writes(&labels(), true);
        assert_eq!(w[0].0, "/proc/thread-self/attr/apparmor/exec");
        assert_eq!(w[0].1, b"exec husk-default");
        assert_eq!(w[1].0, "/proc/thread-self/attr/exec");
        assert_eq!(w[1].1, b"system_u:system_r:container_t:s0:c1,c2");
        let w = exec_label_writes(&labels(), false);
        assert_eq!(w[0].0, "/proc/self/attr/exec");
        assert_eq!(
            mount_label_option("system_u:object_r:container_file_t:s0"),
            "context=\"system_u:object_r:container_file_t:s0\""
        );
    }

    #[test]
    fn active_list_parses() {
        let d = std::env::temp_dir().join(format!("husk-lsm-{}", std::process::id()));
        std::fs::write(&d, "lockdown,capability,apparmor\n").unwrap();
        assert_eq!(active(&d), vec!["lockdown", "capability", "apparmor"]);
        std::fs::remove_file(&d).unwrap();
        assert!(active(Path::new("/nonexistent/lsm")).is_empty());
    }
}
