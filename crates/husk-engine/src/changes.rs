//! `husk diff`: what a container changed in its filesystem, read from its overlay upper dir
//! (no mount needed) and compared with the image's layer dirs: `A` added, `C` changed, `D`
//! deleted (an overlay whiteout), as docker prints them.
//!
//! The mount points the runtime makes in every container (/proc, /sys, /dev…, the files
//! bound over /etc) are left out, as docker leaves out its "init" layer, and so is a
//! directory whose only change is to hold one of them.

use crate::engine::Engine;
use crate::error::{During, Result};
use crate::record::find;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A change that `diff` can find, as docker's letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            ChangeKind::Added => "A",
            ChangeKind::Changed => "C",
            ChangeKind::Deleted => "D",
        })
    }
}

/// One path of the container (absolute, as inside it) and how it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: String,
}

/// `diff` of a container without an upper dir.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error(
        "its rootfs is a flattened copy of the image (no overlay): there is no layer to compare"
    )]
    NoUpper,
}

/// What the runtime or the engine makes in every container, never the user.
pub const MOUNT_POINTS: &[&str] = &[
    "/dev",
    "/dev/console",
    "/dev/mqueue",
    "/dev/pts",
    "/dev/shm",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/proc",
    "/run/.containerenv",
    "/sys",
    "/sys/fs/cgroup",
];

impl Engine {
    /// The container's changes to its image's filesystem, sorted by path.
    pub fn diff(&self, what: &str) -> Result<Vec<Change>> {
        self.diff_inner(what).during("diff", what)
    }

    fn diff_inner(&self, what: &str) -> Result<Vec<Change>> {
        let r = find(&self.root, what)?;
        let upper = r.dir.join("upper");
        if !upper.is_dir() {
            return Err(ChangesError::NoUpper.into());
        }
        let store = self.store()?;
        let rec = self.image_of(&store, &r)?;
        let lowers = crate::rootfs::layer_dirs(&store, &rec);
        let mut changes = Vec::new();
        walk(&upper, &lowers, &mut changes)?;
        Ok(without_mount_points(changes))
    }
}

/// An overlay whiteout in a lower layer dir: a character device 0:0.
fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Whether `rel` is in the image: in the topmost lower that has it, and not as a whiteout.
fn in_image(lowers: &[PathBuf], rel: &Path) -> bool {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    lowers
        .iter()
        .find_map(|l| std::fs::symlink_metadata(l.join(rel)).ok())
        .is_some_and(|m| !is_whiteout(&m))
}

/// The upper dir's changes, read with the layer writer's walk (`husk_image::layer`), so
/// that `diff` shows what `commit` would write: whiteouts `D`, the rest `A` or `C` by
/// whether the image has the path; what the image has in a directory made opaque (deleted
/// and made again) and the upper dir does not is `D` too.
fn walk(upper: &Path, lowers: &[PathBuf], out: &mut Vec<Change>) -> Result<()> {
    use husk_image::layer::{overlay_xattr_prefix, walk_upper, UpperKind};
    let abs = |rel: &[u8]| Path::new("/").join(std::ffi::OsStr::from_bytes(rel));
    walk_upper(upper, &[], overlay_xattr_prefix(), &mut |e| {
        let path = abs(e.path);
        let kind = match e.kind {
            UpperKind::Whiteout => ChangeKind::Deleted,
            _ if in_image(lowers, &path) => ChangeKind::Changed,
            _ => ChangeKind::Added,
        };
        out.push(Change {
            kind,
            path: path.display().to_string(),
        });
        if let UpperKind::Dir { opaque: true } = e.kind {
            out.extend(hidden_by_opaque(upper, lowers, &path));
        }
        Ok(())
    })?;
    Ok(())
}

/// `D` for what the image has in `dir` that the upper dir, opaque there, does not.
fn hidden_by_opaque(upper: &Path, lowers: &[PathBuf], dir: &Path) -> Vec<Change> {
    let rel = dir.strip_prefix("/").unwrap_or(dir);
    let names = |d: &Path| -> std::collections::BTreeSet<std::ffi::OsString> {
        std::fs::read_dir(d)
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default()
    };
    let kept = names(&upper.join(rel));
    let mut below = std::collections::BTreeSet::new();
    for l in lowers {
        below.extend(names(&l.join(rel)));
        // an opaque dir in a layer hides the layers below it
        if husk_image::layer::is_opaque_dir(&l.join(rel), husk_image::layer::overlay_xattr_prefix())
        {
            break;
        }
    }
    below
        .into_iter()
        .filter(|n| !kept.contains(n) && in_image(lowers, &dir.join(n)))
        .map(|n| Change {
            kind: ChangeKind::Deleted,
            path: dir.join(n).display().to_string(),
        })
        .collect()
}

/// `changes` less the runtime's mount points, and less the directories changed only to
/// hold one of them (nothing else changed below them).
fn without_mount_points(changes: Vec<Change>) -> Vec<Change> {
    let kept: Vec<Change> = changes
        .into_iter()
        .filter(|c| !MOUNT_POINTS.contains(&c.path.as_str()))
        .collect();
    let holds_a_mount_point = |dir: &str| {
        MOUNT_POINTS.iter().any(|m| {
            m.strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
        })
    };
    let has_change_below = |dir: &str| {
        kept.iter().any(|c| {
            c.path
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
        })
    };
    kept.iter()
        .filter(|c| {
            c.kind != ChangeKind::Changed
                || !holds_a_mount_point(&c.path)
                || has_change_below(&c.path)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(kind: ChangeKind, path: &str) -> Change {
        Change {
            kind,
            path: path.into(),
        }
    }

    #[test]
    fn mount_points_and_dirs_changed_only_for_them_are_left_out() {
        use ChangeKind::*;
        let all = vec![
            ch(Changed, "/etc"),
            ch(Added, "/etc/hosts"),
            ch(Added, "/proc"),
            ch(Changed, "/srv"),
            ch(Added, "/srv/x"),
            ch(Changed, "/dev"),
            ch(Added, "/dev/shm"),
            ch(Added, "/dev/mine"),
        ];
        assert_eq!(
            without_mount_points(all),
            vec![
                ch(Changed, "/srv"),
                ch(Added, "/srv/x"),
                ch(Added, "/dev/mine")
            ]
        );
    }
}
