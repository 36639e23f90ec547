//! AppArmor and SELinux labels (`process.apparmorProfile`, `process.selinuxLabel`,
//! `linux.mountLabel`).
//!
//! A label that cannot be applied must fail `create`: running the container unconfined
//! while its config asks for confinement is a silent security downgrade. So the main
//! process refuses, before anything is made, a label of an LSM the kernel does not run and
//! an AppArmor profile the kernel has not loaded ([`check_process`]); init (and an `exec`'s
//! process) then writes the label for its execve as root, before it drops privileges and
//! installs its seccomp filter, as runc does ([`apply_exec_labels`]). What is written is
//! computed by pure functions (`exec_label_writes`, `mount_label_option`) so unit tests
//! check it exactly; the AppArmor part is tested for real in the VM (vmtest/, with
//! `apparmor=1`).

use std::path::Path;

/// Where the kernel lists its active LSMs.
pub const LSM_FILE: &str = "/sys/kernel/security/lsm";
/// Every AppArmor profile the kernel has loaded, one `NAME (MODE)` a line.
pub const APPARMOR_PROFILES: &str = "/sys/kernel/security/apparmor/profiles";

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

fn nonempty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty()).cloned()
}

impl Labels {
    pub fn from_spec(spec: &oci_spec::runtime::Spec) -> Labels {
        let p = spec.process().as_ref();
        Labels {
            mount: nonempty(spec.linux().as_ref().and_then(|l| l.mount_label().as_ref())),
            ..p.map(Labels::of_process).unwrap_or_default()
        }
    }

    /// The labels of one process (no mount label: that belongs to the container).
    pub fn of_process(p: &oci_spec::runtime::Process) -> Labels {
        Labels {
            apparmor: nonempty(p.apparmor_profile().as_ref()),
            selinux: nonempty(p.selinux_label().as_ref()),
            mount: None,
        }
    }
}

/// A label this host cannot apply, refused before anything is made.
#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("{field} is set but {lsm} is not an active LSM on this host")]
    Inactive {
        field: &'static str,
        lsm: &'static str,
    },
    #[error(
        "process.apparmorProfile {0:?} is not loaded in the kernel \
         (load it with apparmor_parser; {APPARMOR_PROFILES} lists what is)"
    )]
    ProfileNotLoaded(String),
    #[error("reading {APPARMOR_PROFILES}: {0}")]
    ReadingProfiles(#[source] std::io::Error),
}

/// Refuse an AppArmor profile that is not loaded (`profiles`: the kernel's list, see
/// [`APPARMOR_PROFILES`]); "unconfined" always exists.
pub fn check_apparmor_profile(profile: &str, profiles: &str) -> Result<(), LsmError> {
    let loaded = profiles
        .lines()
        .filter_map(|l| l.rsplit_once(" ("))
        .any(|(name, _)| name == profile);
    if profile == "unconfined" || loaded {
        return Ok(());
    }
    Err(LsmError::ProfileNotLoaded(profile.to_string()))
}

/// Everything [`check`] refuses on this host, and an AppArmor profile it has not loaded.
pub fn check_process(labels: &Labels) -> Result<(), LsmError> {
    check(labels, &active(Path::new(LSM_FILE)))?;
    if let Some(p) = &labels.apparmor {
        let profiles =
            std::fs::read_to_string(APPARMOR_PROFILES).map_err(LsmError::ReadingProfiles)?;
        check_apparmor_profile(p, &profiles)?;
    }
    Ok(())
}

/// Label the next execve of the calling thread (in init or an exec's process, through the
/// container's /proc, while still root). The AppArmor profile comes into force at execve,
/// so the runtime's own remaining steps are not confined by it.
pub fn apply_exec_labels(labels: &Labels) -> Result<(), crate::process::SetupError> {
    let stacked = Path::new("/proc/thread-self/attr/apparmor").exists();
    for (file, data) in exec_label_writes(labels, stacked) {
        crate::sys::write_file(Path::new(&file), &data).map_err(|e| {
            crate::process::SetupError::new(
                format!(
                    "applying the label {:?} ({file})",
                    String::from_utf8_lossy(&data)
                ),
                e,
            )
        })?;
    }
    Ok(())
}

/// Refuse labels the host cannot enforce, as one line naming the field.
pub fn check(labels: &Labels, active: &[String]) -> Result<(), LsmError> {
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
            return Err(LsmError::Inactive { field, lsm });
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
        assert!(matches!(
            e,
            LsmError::Inactive {
                field: "process.apparmorProfile",
                lsm: "apparmor"
            }
        ));
        assert!(e.to_string().contains("process.apparmorProfile"), "{e}");
        let only_aa = vec!["capability".to_string(), "apparmor".to_string()];
        let e = check(&labels(), &only_aa).unwrap_err().to_string();
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
    fn only_loaded_profiles_pass() {
        let profiles = "husk-default (enforce)\n/usr/bin/man (complain)\nmy profile (enforce)\n";
        assert!(check_apparmor_profile("husk-default", profiles).is_ok());
        assert!(check_apparmor_profile("/usr/bin/man", profiles).is_ok());
        assert!(check_apparmor_profile("my profile", profiles).is_ok());
        assert!(check_apparmor_profile("unconfined", "").is_ok());
        let e = check_apparmor_profile("husk", profiles)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"husk\" is not loaded"), "{e}");
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
