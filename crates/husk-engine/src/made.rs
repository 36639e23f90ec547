//! [`Made`]: what the engine has made for one container (its directory, the rootfs mount,
//! its anonymous volumes and, through the directory, its slirp4netns or bridge networks),
//! undone on drop unless handed on.

use crate::rootfs;
use std::path::PathBuf;

/// Everything made for one container, undone on failure (and on exit, as far as asked).
pub(crate) struct Made {
    pub(crate) dir: PathBuf,
    pub(crate) overlay: Option<rootfs::Overlay>,
    pub(crate) keep_dir: bool,
    /// Volumes removed with the directory: the container's anonymous ones (`--rm`, or a
    /// failed run), and until the container's record exists, the named ones it made.
    pub(crate) volumes: Vec<String>,
}

impl Made {
    /// Leave everything as it is: another process (the monitor) owns it now.
    pub(crate) fn disarm(mut self) {
        if let Some(o) = self.overlay.take() {
            o.disarm();
        }
        self.keep_dir = true;
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        // Still ours (not handed to a monitor): the container's slirp4netns and networks too.
        if let Some(mut o) = self.overlay.take() {
            crate::network::stop_slirp(&self.dir);
            let _ = crate::network::setup::teardown(&self.dir);
            let _ = o.unmount();
        }
        if !self.keep_dir {
            crate::writable::release(&self.dir);
            let _ = std::fs::remove_dir_all(&self.dir);
            // The caller may hold the names lock (a run failing before its record is
            // written): volume removal here does not take it again.
            let root = crate::events::root_of(&self.dir);
            crate::volumes::remove_unused(root, &self.volumes, false);
            // ROOT/containers/ID: its --userns=auto range goes with it.
            if let (Some(id), Some(root)) = (
                self.dir.file_name().and_then(|n| n.to_str()),
                self.dir.parent().and_then(|p| p.parent()),
            ) {
                let _ = crate::userns::release(root, id);
            }
        }
    }
}
