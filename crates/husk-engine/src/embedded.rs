//! The small executables the engine embeds (built by build.rs from init/, monitor/ and
//! pause/), the store's copies of them that containers and monitors run from, and the
//! bytes of husk-pause for the pod infra image (src/pod.rs).

use crate::os::{IoContext, IoError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "--init: this husk was built without husk-init (linking it statically failed; \
         install libc6-dev and rebuild)"
    )]
    NoInit,
    #[error("--init: {0}")]
    InitCopy(IoError),
    #[error(
        "pods: this husk was built without husk-pause (linking it statically failed; \
         install libc6-dev and rebuild)"
    )]
    NoPause,
    #[error("this husk was built without husk-monitor (see the build's warning)")]
    NoMonitor,
    #[error(transparent)]
    MonitorCopy(IoError),
}

/// husk-init (init/main.rs), linked statically by build.rs; empty if that was impossible.
static HUSK_INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/husk-init"));

/// The store's copy of husk-init: the source of --init's read-only bind mount. Only a
/// --privileged container could remount it writable.
pub(crate) fn init_binary(root: &Path) -> Result<PathBuf, EmbeddedError> {
    if HUSK_INIT.is_empty() {
        return Err(EmbeddedError::NoInit);
    }
    store_copy(root, "husk-init", HUSK_INIT).map_err(EmbeddedError::InitCopy)
}

/// husk-pause (pause/main.rs), linked statically by build.rs; empty if that was impossible.
static HUSK_PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/husk-pause"));

/// husk-pause's bytes: the one file of the pod infra image (also the pause image of the
/// CRI test, crates/husk-cri-tests).
pub fn pause_binary() -> Result<&'static [u8], EmbeddedError> {
    match HUSK_PAUSE.is_empty() {
        true => Err(EmbeddedError::NoPause),
        false => Ok(HUSK_PAUSE),
    }
}

/// The store's copy of husk-monitor, which `run -d` and `start` execute.
pub(crate) fn monitor_binary(root: &Path) -> Result<PathBuf, EmbeddedError> {
    if HUSK_MONITOR.is_empty() {
        return Err(EmbeddedError::NoMonitor);
    }
    store_copy(root, "husk-monitor", HUSK_MONITOR).map_err(EmbeddedError::MonitorCopy)
}

/// ROOT/NAME, a copy of an executable the engine embeds (husk-init, husk-monitor), (re)written
/// when missing or not this husk's: one copy for all containers of the store, which only
/// root can write (mode 0555, replaced by a rename).
fn store_copy(root: &Path, name: &str, data: &[u8]) -> Result<PathBuf, IoError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = root.join(name);
    let current = || {
        std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o7777 == 0o555)
            && std::fs::read(&path).is_ok_and(|d| d == data)
    };
    if current() {
        return Ok(path);
    }
    // One writer at a time, and the others use its copy: with a copy each, concurrent
    // first runs of a store left their monitors running from replaced (deleted) files,
    // whose pages no other monitor shares (~1.2 MB each instead of ~10 KB).
    let _lock = crate::os::lock_file(&root.join(format!(".{name}.lock")))?;
    if current() {
        return Ok(path);
    }
    let tmp = root.join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o555)
            .open(&tmp)?;
        std::io::Write::write_all(&mut f, data)?;
        f.sync_all()?;
        // Closed before it gets its name: a file open for writing cannot be executed
        // (ETXTBSY), and another husk may execute it as soon as it is renamed (concurrent
        // first `run -d`s of a store; benches/scale.sh).
        drop(f);
        std::fs::rename(&tmp, &path)
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .ctx("writing", &path)?;
    Ok(path)
}

/// husk-monitor (monitor/main.rs), built by build.rs; empty if that was impossible.
static HUSK_MONITOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/husk-monitor"));
