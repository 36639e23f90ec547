//! The user's rootless network namespace: where a rootless husk's bridge networks live, as
//! rootless podman's do. An ordinary user cannot make a bridge or veth pairs in the host's
//! namespace, but is root of its own user namespace, and so of a network namespace made
//! there: netavark runs inside that one (`--rootless=true`), making the bridges, the veths
//! to each container's namespace, the rules, and aardvark-dns for names. The namespace
//! reaches the outside through pasta, as a rootless `--network pasta` container does
//! (`pasta --config-net`, no ports: published ports are relayed by [`super::forward`]).
//!
//! One per user (in the user's run dir, `RUN/rootless-netns/`: `pasta.netns` bound in the
//! user's mount namespace, `pasta.pid`, a `users/ID` file per container attached). The
//! first container set up on a bridge network makes it; the teardown of the last one ends
//! aardvark-dns and pasta and unbinds it, so that nothing lives on while no container
//! does. Made and ended under `RUN/rootless-netns/lock`.

use super::pasta::{self, ConnectError};
use super::{netns, NetworkError};
use crate::os::IoContext;
use std::path::{Path, PathBuf};

/// Making the user's rootless network namespace.
#[derive(Debug, thiserror::Error)]
#[error("the rootless network namespace: {0}")]
pub struct RootlessNetnsError(#[from] ConnectError);

fn dir() -> PathBuf {
    super::setup::run_dir().join("rootless-netns")
}

fn users_dir() -> PathBuf {
    dir().join("users")
}

/// The namespace's file (netavark's "host" namespace for rootless containers).
pub fn path() -> PathBuf {
    pasta::netns_file(&dir())
}

/// The rootless namespace for container `id` (whose directory is `owner`), made and
/// connected on first use; its path.
pub fn acquire(id: &str, owner: &Path) -> Result<PathBuf, NetworkError> {
    let d = dir();
    let users = users_dir();
    std::fs::create_dir_all(&users).ctx("creating", &users)?;
    let _lock = crate::os::lock_file(&d.join("lock"))?;
    let ns = path();
    let up = netns::is_bound(&ns);
    let pasta_up = crate::os::live_pid(&d.join(pasta::PID_FILE)).is_some();
    // A namespace whose pasta died keeps serving the containers still in it (only their
    // way out is gone); one nobody uses is made afresh.
    if !(up && (pasta_up || !live_users().is_empty())) {
        shut(&d);
        pasta::connect(&d, &[], &[]).map_err(RootlessNetnsError::from)?;
    }
    let lease = users.join(id);
    std::fs::write(&lease, owner.as_os_str().as_encoded_bytes()).ctx("writing", &lease)?;
    Ok(ns)
}

/// Container `id` leaves the rootless namespace; the last one ends it.
pub fn release(id: &str) {
    let d = dir();
    if !d.exists() {
        return;
    }
    let Ok(_lock) = crate::os::lock_file(&d.join("lock")) else {
        return;
    };
    let _ = std::fs::remove_file(users_dir().join(id));
    if live_users().is_empty() {
        shut(&d);
    }
}

/// The containers attached (a container whose network record is gone left without its
/// teardown: its file is removed).
fn live_users() -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(users_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
        if Path::new(&owner).join("network.json").exists() {
            v.push(e.file_name().to_string_lossy().into_owned());
        } else {
            let _ = std::fs::remove_file(e.path());
        }
    }
    v
}

/// End what runs for the namespace — aardvark-dns (netavark stops it with the last
/// container of a network; this is for a teardown that failed) and pasta — and unbind it.
fn shut(d: &Path) {
    let configs = super::setup::run_dir().join("netavark");
    for c in std::fs::read_dir(&configs).into_iter().flatten().flatten() {
        let aardvark = c.path().join("aardvark-dns");
        if let Some(pid) = std::fs::read_to_string(aardvark.join("aardvark.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if pid > 1 && comm.starts_with("aardvark") {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&aardvark);
    }
    pasta::stop(d);
}
