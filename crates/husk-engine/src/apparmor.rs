//! AppArmor for `husk run`: which profile a container gets, and loading husk's default one.
//!
//! Where the kernel runs AppArmor, a container gets `husk-default` (the profile in
//! `spec_from_image/apparmor_default.profile`, loaded with `apparmor_parser` the first time
//! it is needed), unless `--security-opt apparmor=PROFILE|unconfined` says otherwise or
//! the container is `--privileged` (as docker: privileged containers run unconfined).
//! Where AppArmor is off there is nothing to apply, and a profile asked for by name is
//! refused by the runtime with one line (never silently ignored).

use crate::spec_from_image::flags::AppArmor;
use std::io::Write;
use std::process::{Command, Stdio};

/// Loading husk-default into the kernel failed.
#[derive(Debug, thiserror::Error)]
pub enum AppArmorError {
    #[error(
        "loading the AppArmor profile {DEFAULT_PROFILE}: running apparmor_parser (Debian's \
         apparmor package): {0}"
    )]
    Spawn(std::io::Error),
    /// Writing the profile to apparmor_parser, or waiting for it.
    #[error("loading the AppArmor profile {DEFAULT_PROFILE}: {0}")]
    Io(std::io::Error),
    /// What apparmor_parser said (its stderr, on one line): free text from another program.
    #[error("loading the AppArmor profile {DEFAULT_PROFILE}: {0}")]
    Refused(String),
}

/// The name of husk's default profile.
pub const DEFAULT_PROFILE: &str = "husk-default";

/// husk's default profile, as apparmor_parser reads it.
pub const DEFAULT_PROFILE_TEXT: &str = include_str!("spec_from_image/apparmor_default.profile");

/// What `process.apparmorProfile` becomes: pure, so the rule is unit-tested. `active`:
/// whether the kernel runs AppArmor.
pub fn profile_for(choice: &AppArmor, privileged: bool, active: bool) -> Option<String> {
    match choice {
        AppArmor::Profile(p) => Some(p.clone()),
        AppArmor::Unconfined => None,
        AppArmor::Default if active && !privileged => Some(DEFAULT_PROFILE.to_string()),
        AppArmor::Default => None,
    }
}

/// Whether the running kernel has AppArmor on.
pub fn active() -> bool {
    std::fs::read_to_string(husk_container::lsm::LSM_FILE)
        .is_ok_and(|l| l.split(',').any(|m| m.trim() == "apparmor"))
}

/// The profile for a container, with husk-default loaded into the kernel if it is the one
/// and is not loaded yet.
pub fn prepare(choice: &AppArmor, privileged: bool) -> Result<Option<String>, AppArmorError> {
    let profile = profile_for(choice, privileged, active());
    if profile.as_deref() == Some(DEFAULT_PROFILE) {
        load_default()?;
    }
    Ok(profile)
}

/// Load husk-default unless the kernel already has it (`apparmor_parser -r`, from stdin).
fn load_default() -> Result<(), AppArmorError> {
    let loaded = std::fs::read_to_string(husk_container::lsm::APPARMOR_PROFILES)
        .unwrap_or_default()
        .lines()
        .any(|l| {
            l.rsplit_once(" (")
                .is_some_and(|(n, _)| n == DEFAULT_PROFILE)
        });
    if loaded {
        return Ok(());
    }
    let mut child = Command::new("apparmor_parser")
        .args(["-r", "-K"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(AppArmorError::Spawn)?;
    let written = child
        .stdin
        .take()
        .expect("piped")
        .write_all(DEFAULT_PROFILE_TEXT.as_bytes());
    let out = child.wait_with_output().map_err(AppArmorError::Io)?;
    written.map_err(AppArmorError::Io)?;
    if !out.status.success() {
        return Err(AppArmorError::Refused(
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', "; "),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_only_where_apparmor_runs_and_not_privileged() {
        let named = AppArmor::Profile("mine".into());
        assert_eq!(
            profile_for(&AppArmor::Default, false, true).as_deref(),
            Some(DEFAULT_PROFILE)
        );
        assert_eq!(profile_for(&AppArmor::Default, false, false), None);
        assert_eq!(profile_for(&AppArmor::Default, true, true), None);
        assert_eq!(profile_for(&AppArmor::Unconfined, false, true), None);
        // Named: passed on either way (the runtime refuses it where AppArmor is off).
        assert_eq!(profile_for(&named, true, false).as_deref(), Some("mine"));
    }

    #[test]
    fn the_default_profile_denies_what_docker_s_does() {
        let t = DEFAULT_PROFILE_TEXT;
        assert!(t.contains(&format!("profile {DEFAULT_PROFILE} ")), "named");
        for rule in [
            "deny mount,",
            "deny /proc/sys/** wl,",
            "deny /sys/** wl,",
            "ptrace (trace, read, tracedby, readby) peer=husk-default,",
        ] {
            assert!(t.contains(rule), "{rule}");
        }
        let includes =
            |l: &str| l.trim().starts_with("#include") || l.trim().starts_with("include");
        assert!(!t.lines().any(includes), "self-contained");
    }
}
