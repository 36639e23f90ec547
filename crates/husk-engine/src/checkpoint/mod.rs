//! `husk container checkpoint` and `restore`: a running container saved by CRIU (through
//! husk-container's checkpoint module, as `husk-runtime checkpoint` does) and brought back
//! later — on this machine, or on another one with the same image through an export
//! ([`archive`]).
//!
//! The container's monitor waits on its init, so a checkpoint — which ends init — must not
//! look like a death to it: before the dump, the engine leaves a marker in the container's
//! directory (`checkpointing`); the monitor's `exited` helper finds it first and, instead
//! of recording an exit code, applying the restart policy or removing a `--rm` container,
//! records the container as exited *and checkpointed* ([`monitor_saw_checkpoint`]), and
//! the monitor ends. The CRIU images stay in DIR/checkpoint.
//!
//! `restore` starts the container again under a new monitor, as `start` does (the rootfs
//! overlay mounted again on the same upper dir, the networks set up again), with another
//! marker (`restore`): the monitor's `start` helper then runs CRIU's restore into a new
//! cgroup instead of creating the container ([`restore_in`]); the restored init writes to
//! the new monitor's pipes (CRIU's inherited fds), so its output goes on in the same
//! ctr.log.

pub mod archive;

use crate::engine::Engine;
use crate::error::{ContainerError, During, Result};
use crate::os::{IoContext, IoError};
use crate::record::{find, state_root, CheckpointState, Record, RecordError, Timestamp};
use husk_container::checkpoint::CriuOptions;
use husk_container::Container;
use husk_oci::Status;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// DIR/checkpoint: CRIU's images (and its logs) of the container's last checkpoint.
pub(crate) const IMAGES: &str = "checkpoint";
/// DIR/checkpointing: the exit the monitor is about to see is a checkpoint.
const CHECKPOINTING: &str = "checkpointing";
/// DIR/restore: the monitor's start helper restores instead of creating. Its content:
/// CRIU options, one a line (`tcp-established`).
const RESTORE: &str = "restore";

/// What `container checkpoint` and `restore` refuse.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the container was run with --rm: checkpoint it with --export (it is removed after)")]
    RemoveWithoutExport,
    #[error("the container is {0}, not checkpointed")]
    NotCheckpointed(&'static str),
    #[error("its checkpoint is gone ({} holds no inventory.img)", .0.display())]
    NoImages(PathBuf),
    #[error(
        "its rootfs is a flattened copy of the image (no overlay upper dir): --export needs one"
    )]
    NoUpper,
    #[error("its monitor did not record the checkpoint within {0} s")]
    NotRecorded(u64),
    #[error("--name is only for --import (a restored container keeps its name)")]
    NameWithoutImport,
    #[error("give a container or --import FILE")]
    NothingToRestore,
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
}

/// `container checkpoint`'s options (podman's flags of the same names).
#[derive(Clone, Debug, Default)]
pub struct CheckpointOptions {
    /// Also write the checkpoint, the container's writable layer and its record to this
    /// tar file, for `restore --import`.
    pub export: Option<PathBuf>,
    /// Keep the container running after the dump.
    pub leave_running: bool,
    pub tcp_established: bool,
    /// Keep CRIU's log (DIR/checkpoint/dump.log) after a successful checkpoint.
    pub keep: bool,
}

/// `container restore`'s options.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Restore from an export (a new container) instead of a checkpointed container.
    pub import: Option<PathBuf>,
    /// The imported container's name (default: the exported one's).
    pub name: Option<String>,
    pub tcp_established: bool,
    /// Keep the checkpoint images after a successful restore (restore again later).
    pub keep: bool,
}

impl Engine {
    /// Checkpoint the running container `what` with CRIU. Unless it is left running, it
    /// ends checkpointed: `ps` shows it exited, `inspect` Checkpointed, and
    /// [`Engine::restore`] brings it back.
    pub fn checkpoint(&self, what: &str, o: &CheckpointOptions) -> Result<()> {
        self.checkpoint_inner(what, o).during("checkpoint", what)
    }

    fn checkpoint_inner(&self, what: &str, o: &CheckpointOptions) -> Result<()> {
        let r = find(&self.root, what)?;
        let c = r
            .runtime()
            .filter(|c| c.status() != Status::Stopped)
            .ok_or(ContainerError::NotRunning(r.status()))?;
        if c.status() == Status::Paused {
            return Err(ContainerError::Paused.into());
        }
        if r.meta.remove && o.export.is_none() && !o.leave_running {
            return Err(CheckpointError::RemoveWithoutExport.into());
        }
        if let Some(file) = &o.export {
            if !r.dir.join("upper").is_dir() {
                return Err(CheckpointError::NoUpper.into());
            }
            // Found out before the dump, not after it has stopped the container.
            let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
            let parent = parent.unwrap_or(Path::new("."));
            std::fs::read_dir(parent).ctx("--export: reading the directory", parent)?;
        }
        let images = r.dir.join(IMAGES);
        remove_dir(&images)?;
        let mut fresh = Record::load(&r.dir)?;
        fresh.meta.checkpoint = CheckpointState::default();
        fresh.save()?;
        let marker = r.dir.join(CHECKPOINTING);
        if !o.leave_running {
            std::fs::write(&marker, b"").ctx("writing", &marker)?;
        }
        let opts = husk_container::checkpoint::CheckpointOptions {
            criu: CriuOptions {
                image_path: images.clone(),
                tcp_established: o.tcp_established,
                ..Default::default()
            },
            leave_running: o.leave_running,
            ..Default::default()
        };
        if let Err(e) = c.checkpoint(&opts) {
            // CRIU lets the container run on after a failed dump.
            let _ = std::fs::remove_file(&marker);
            return Err(e.into());
        }
        if !o.leave_running {
            wait_recorded(&r)?;
        }
        crate::events::container(&self.root, &r, "checkpoint", &[]);
        if let Some(file) = &o.export {
            archive::export(&Record::load(&r.dir)?, file).map_err(CheckpointError::from)?;
        }
        if !o.keep {
            let _ = std::fs::remove_file(images.join("dump.log"));
        }
        // --rm: what remains of it is in the export.
        if r.meta.remove && !o.leave_running {
            self.remove(r.id(), false)?;
        }
        Ok(())
    }

    /// Restore a checkpointed container (`what`), or with [`RestoreOptions::import`] a new
    /// container from an export; it runs detached under a new monitor. Its id.
    pub fn restore(&self, what: Option<&str>, o: &RestoreOptions) -> Result<String> {
        match (&o.import, what) {
            (Some(file), _) => self
                .import_checkpoint(file, o)
                .during("restore", file.display().to_string()),
            (None, Some(what)) => self.restore_inner(what, o).during("restore", what),
            (None, None) => Err(CheckpointError::NothingToRestore).during("restore", ""),
        }
    }

    fn restore_inner(&self, what: &str, o: &RestoreOptions) -> Result<String> {
        if o.name.is_some() {
            return Err(CheckpointError::NameWithoutImport.into());
        }
        let r = find(&self.root, what)?;
        self.restore_record(r, o)
    }

    /// Start the checkpointed container `r` again from its images (see the module comment).
    pub(crate) fn restore_record(&self, r: Record, o: &RestoreOptions) -> Result<String> {
        crate::monitor::settle_orphan(&r, None);
        let r = Record::load(&r.dir)?;
        if r.runtime().is_some_and(|c| c.status() != Status::Stopped)
            || !r.meta.checkpoint.checkpointed
        {
            return Err(CheckpointError::NotCheckpointed(r.status()).into());
        }
        let images = r.dir.join(IMAGES);
        if !images.join("inventory.img").is_file() {
            return Err(CheckpointError::NoImages(images).into());
        }
        let marker = r.dir.join(RESTORE);
        let ask = if o.tcp_established {
            "tcp-established\n"
        } else {
            ""
        };
        std::fs::write(&marker, ask).ctx("writing", &marker)?;
        let id = r.id().to_string();
        let started = self.start_again(r.clone(), false);
        // Normally taken by the start helper; never left for a later start.
        let _ = std::fs::remove_file(&marker);
        if let Err(e) = started {
            // Checkpointed as before (start_again had made it look started): `restore`
            // can be tried again, and inspect's State.Error says why it failed.
            let mut back = r.clone();
            back.meta.error = Some(e.to_string());
            let _ = back.save();
            return Err(e);
        }
        if !o.keep {
            remove_dir(&images)?;
        }
        crate::events::container(&self.root, &r, "restore", &[]);
        Ok(id)
    }
}

/// Remove `dir` and all in it; missing is fine.
fn remove_dir(dir: &Path) -> Result<(), IoError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).ctx("removing", dir),
        _ => Ok(()),
    }
}

/// Wait until the container's monitor has recorded the checkpoint (its init ended with
/// the dump); a monitor that died meanwhile is done for.
fn wait_recorded(r: &Record) -> Result<(), CheckpointError> {
    const LIMIT: u64 = 30;
    let deadline = Instant::now() + Duration::from_secs(LIMIT);
    loop {
        let fresh = Record::load(&r.dir)?;
        if fresh.meta.checkpoint.checkpointed && fresh.exit_code().is_some() {
            return Ok(());
        }
        if !fresh.runner_alive() {
            monitor_saw_checkpoint(&r.dir);
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CheckpointError::NotRecorded(LIMIT));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The monitor's `exited` helper, first of all: when the exit it saw is a checkpoint,
/// record the container as exited and checkpointed — its rootfs unmounted and networks
/// torn down as after any end, but no exit of its own (no `die` event, no restart, no
/// --rm removal: the engine's checkpoint exports it first) — and say so (true).
pub(crate) fn monitor_saw_checkpoint(dir: &Path) -> bool {
    let marker = dir.join(CHECKPOINTING);
    if !marker.exists() {
        return false;
    }
    // The runtime state is the dumping side's to delete (husk-container's checkpoint).
    crate::network::stop_slirp(dir);
    crate::monitor::record_end(dir, 0, false, None);
    if let Ok(mut r) = Record::load(dir) {
        r.meta.checkpoint = CheckpointState {
            checkpointed: true,
            checkpointed_at: r.meta.finished.clone(),
            restored: false,
            restored_at: None,
        };
        r.meta.pid = None;
        let _ = r.save();
    }
    let _ = std::fs::remove_file(&marker);
    true
}

/// What the engine asked the start helper to restore with, if it asked (the marker is
/// taken: a later start of the container creates it afresh).
pub(crate) struct RestoreAsk {
    tcp_established: bool,
}

/// [`RestoreAsk`] of the container in `dir`, when `restore` asked for one.
pub(crate) fn restore_asked(dir: &Path) -> Option<RestoreAsk> {
    let marker = dir.join(RESTORE);
    let text = std::fs::read_to_string(&marker).ok()?;
    let _ = std::fs::remove_file(&marker);
    Some(RestoreAsk {
        tcp_established: text.lines().any(|l| l == "tcp-established"),
    })
}

/// The start helper's restore: container `id` from the bundle `dir` (config.json and the
/// mounted rootfs) and the images in DIR/checkpoint, init restored as our child (the
/// monitor, our parent and a subreaper, inherits it as it would a created init), into
/// the cgroup the container was made with (`systemd`: a systemd scope).
pub(crate) fn restore_in(
    dir: &Path,
    id: &str,
    ask: &RestoreAsk,
    systemd: bool,
) -> husk_container::Result<Container> {
    let opts = husk_container::checkpoint::RestoreOptions {
        criu: CriuOptions {
            image_path: dir.join(IMAGES),
            tcp_established: ask.tcp_established,
            ..Default::default()
        },
        rootless: husk_container::rootless::is_unprivileged(),
        systemd_cgroup: systemd,
        ..Default::default()
    };
    husk_container::checkpoint::restore(&state_root(), id, dir, &opts)
}

/// After the start helper started the container — `restored` from its checkpoint, or
/// afresh (whose old images a later `restore` must not bring back) — the record says so;
/// when it was last checkpointed stays, as podman's CheckpointedAt.
pub(crate) fn mark_started(r: &mut Record, restored: bool) {
    r.meta.checkpoint.checkpointed = false;
    r.meta.checkpoint.restored = restored;
    r.meta.checkpoint.restored_at = restored.then(Timestamp::now);
}
