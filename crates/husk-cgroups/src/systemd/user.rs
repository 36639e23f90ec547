//! The user's systemd manager, for a rootless caller ([`super::Bus::User`]): where its bus
//! is and where its cgroups live. Pure lookups of the environment and /proc, so the D-Bus
//! client (whichever implements the calls) and the engine share one answer.
//!
//! A rootless engine runs as uid 0 of a user namespace of its own: the user is the *host*
//! uid ([`husk_oci::userns::host_euid`]), which is the identity to give the bus (SASL
//! EXTERNAL compares it with the socket's credentials, which the kernel translates to the
//! bus daemon's namespace) and the uid in the manager's unit name.

use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use super::dbus::address::{parse as parse_address, Target};
use crate::CgroupError;

/// The cgroup (below the hierarchy's root) of user `uid`'s manager, where systemd puts it:
/// `/user.slice/user-UID.slice/user@UID.service`. Its slices and scopes are below it.
pub fn manager_cgroup(uid: u32) -> String {
    format!("/user.slice/user-{uid}.slice/user@{uid}.service")
}

/// The uid the user's bus knows us as (the host's view of our effective uid).
pub fn bus_uid() -> u32 {
    husk_oci::userns::host_euid()
}

/// The socket of the user's bus: `DBUS_SESSION_BUS_ADDRESS` (its first `unix:path=`), else
/// `$XDG_RUNTIME_DIR/bus`, where systemd's `dbus.socket` user unit listens.
pub fn bus_socket() -> Result<PathBuf, CgroupError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    socket_from(
        env("DBUS_SESSION_BUS_ADDRESS").as_deref(),
        env("XDG_RUNTIME_DIR").as_deref(),
    )
}

/// Whether the user's bus socket exists: the engine's test for "a user bus is reachable"
/// (it then defaults to the systemd cgroup manager, as rootless podman does).
pub fn bus_present() -> bool {
    bus_socket()
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .is_some_and(|m| m.file_type().is_socket())
}

/// The pure part of [`bus_socket`].
fn socket_from(address: Option<&str>, runtime_dir: Option<&str>) -> Result<PathBuf, CgroupError> {
    if let Some(a) = address {
        // "unix:path=/run/user/1000/bus,guid=…;other:…": the first socket path (a path, as
        // the engine checks that it exists).
        let first_path = parse_address(a).ok().and_then(|targets| {
            targets.into_iter().find_map(|t| match t {
                Target::Path(p) => Some(p),
                Target::Abstract(_) => None,
            })
        });
        return first_path.ok_or_else(|| {
            CgroupError::invalid(
                format!("DBUS_SESSION_BUS_ADDRESS {a:?}"),
                "it names no unix:path= socket",
            )
        });
    }
    match runtime_dir {
        Some(d) => Ok(PathBuf::from(d).join("bus")),
        None => Err(CgroupError::invalid(
            "the user's D-Bus",
            "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_managers_cgroup() {
        assert_eq!(
            manager_cgroup(1000),
            "/user.slice/user-1000.slice/user@1000.service"
        );
    }

    #[test]
    fn the_bus_socket_from_the_environment() {
        let p = |a, d| {
            socket_from(a, d)
                .map(|p| p.display().to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(p(None, Some("/run/user/7")).unwrap(), "/run/user/7/bus");
        assert_eq!(
            p(Some("unix:path=/run/user/7/bus"), Some("/x")).unwrap(),
            "/run/user/7/bus"
        );
        assert_eq!(
            p(Some("tcp:host=h;unix:guid=1,path=/a%2db%20c"), None).unwrap(),
            "/a-b c"
        );
        let e = p(Some("unix:abstract=/tmp/x"), None).unwrap_err();
        assert!(e.contains("DBUS_SESSION_BUS_ADDRESS"), "{e}");
        let e = p(None, None).unwrap_err();
        assert!(e.contains("XDG_RUNTIME_DIR"), "{e}");
    }
}
