//! [`Made`]: what the engine has made for one container (its directory, the rootfs mount
//! and, through the directory, its slirp4netns), undone on drop unless handed on.

use crate::rootfs;
use std::path::PathBuf;

/// Everything made for one container, undone on failure (and on exit, as far as asked).
pub(crate) struct Made {
    pub(crate) dir: PathBuf,
    pub(crate) overlay: Option<rootfs::Overlay>,
    pub(crate) keep_dir: bool,
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
        // Still ours (not handed to a monitor): the container's slirp4netns too.
        if let Some(mut o) = self.overlay.take() {
            crate::network::stop_slirp(&self.dir);
            let _ = o.unmount();
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
