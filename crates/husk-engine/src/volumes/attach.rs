//! What `run` does with a container's volumes once its rootfs is ready: make the ones
//! that do not exist yet (named ones on first use, anonymous ones for `-v /path` and the
//! image's VOLUME paths nothing else covers), copy the image's content at the destination
//! into an empty volume (`nocopy` skips it), and turn each into a mount of the spec plus
//! the entry docker's inspect shows under `.Mounts`.
//!
//! The copy-up never follows a symlink out of either tree: the image side is opened with
//! the runtime library's `open_in_root` (RESOLVE_IN_ROOT on the container's rootfs), the
//! volume side is ROOT/volumes/NAME/_data opened with O_NOFOLLOW, and everything below is
//! copied fd-relative with O_NOFOLLOW (husk_container::copy_up_dir: symlinks recreated,
//! modes, owners and times kept — so the volume shows the image's ownership, and
//! rootless, where the engine is root of the user's namespace, the mapped owners).

use super::flags::VolumeMount;
use super::store::{self, Volume, VolumeMeta};
use super::VolumeError;
use crate::spec_from_image::flags::Tmpfs;
use crate::spec_from_image::Volume as Bind;
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::path::Path;

/// A run's volumes, ready for its spec and record.
#[derive(Debug, Default)]
pub(crate) struct Attached {
    /// Bind mounts of volume directories.
    pub binds: Vec<Bind>,
    /// tmpfs volumes: a fresh tmpfs per container.
    pub tmpfs: Vec<Tmpfs>,
    /// container.json's "mounts": what `volume rm` checks and `rm -v` removes.
    pub records: Vec<VolumeMountRecord>,
    /// Volumes this run made: removed again if the run fails.
    pub made: Vec<String>,
}

/// A volume mounted into a container, as docker's inspect shows it under `.Mounts`, plus
/// whether the volume is anonymous (container.json's "mounts").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeMountRecord {
    /// Always "volume".
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name.
    pub name: String,
    /// Its data directory on the host (empty for a tmpfs volume).
    #[serde(default)]
    pub source: String,
    pub destination: String,
    #[serde(default)]
    pub driver: String,
    /// "ro" or "z".
    #[serde(default)]
    pub mode: String,
    #[serde(rename = "RW", default = "yes")]
    pub rw: bool,
    #[serde(default)]
    pub propagation: String,
    #[serde(rename = "anonymous", default)]
    pub anonymous: bool,
}

fn yes() -> bool {
    true
}

/// Make or find the volumes `asked` names plus anonymous ones for the image's VOLUME paths
/// (`image_volumes`) that no other mount (`taken`) covers, and copy the image's content
/// from `rootfs` into the empty ones. On error the volumes made so far are removed.
pub(crate) fn attach(
    root: &Path,
    rootfs: &Path,
    asked: &[VolumeMount],
    image_volumes: &[String],
    taken: &[String],
) -> Result<Attached, VolumeError> {
    let mut all: Vec<VolumeMount> = asked.to_vec();
    for p in image_volumes {
        let d = p.trim_end_matches('/');
        if d.is_empty()
            || taken
                .iter()
                .chain(all.iter().map(|v| &v.destination))
                .any(|t| t == d)
        {
            continue;
        }
        all.push(VolumeMount {
            destination: d.to_string(),
            ..Default::default()
        });
    }
    let mut out = Attached::default();
    let r = (|| {
        for m in &all {
            let (v, made) = store::create(
                root,
                &VolumeMeta {
                    name: match &m.name {
                        Some(n) => n.clone(),
                        None => store::random_name()?,
                    },
                    driver: "local".into(),
                    options: m.options.clone(),
                    labels: m.labels.clone(),
                    created: husk_oci::time::rfc3339_now(),
                    anonymous: m.name.is_none(),
                },
            )?;
            if made {
                out.made.push(v.meta.name.clone());
                crate::events::emit(root, "volume", "create", v.name(), &[("driver", "local")]);
            }
            mount_one(rootfs, &v, m, &mut out)?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        super::remove_unused(root, &out.made, false);
        return Err(e);
    }
    Ok(out)
}

fn mount_one(
    rootfs: &Path,
    v: &Volume,
    m: &VolumeMount,
    out: &mut Attached,
) -> Result<(), VolumeError> {
    let source = if v.is_tmpfs() {
        let mut options: Vec<String> = v
            .meta
            .options
            .get("o")
            .map(|o| {
                o.split(',')
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        // The runtime's tmpcopyup: the image's content, copied into each fresh tmpfs.
        if !m.nocopy {
            options.push("tmpcopyup".into());
        }
        if m.readonly {
            options.push("ro".into());
        }
        out.tmpfs.push(Tmpfs {
            destination: m.destination.clone(),
            options,
        });
        String::new()
    } else {
        let data = v.bind_device().unwrap_or_else(|| v.data());
        if !m.nocopy {
            copy_up(v, &data, rootfs, &m.destination)?;
        }
        out.binds.push(Bind {
            source: data.display().to_string(),
            destination: m.destination.clone(),
            readonly: m.readonly,
            propagation: "rprivate".into(),
        });
        data.display().to_string()
    };
    out.records.push(VolumeMountRecord {
        kind: "volume".into(),
        name: v.meta.name.clone(),
        source,
        destination: m.destination.clone(),
        driver: "local".into(),
        mode: if m.readonly { "ro" } else { "z" }.into(),
        rw: !m.readonly,
        propagation: String::new(),
        anonymous: v.meta.anonymous,
    });
    Ok(())
}

fn open_dir(p: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)?;
    Ok(OwnedFd::from(f))
}

/// docker's copy-up: into a volume that is still empty, whatever the image has at `dest`
/// (a directory), with its owners and modes; the volume directory itself takes the
/// image directory's owner and mode. Serialised per volume by a lock file beside _data,
/// so two containers starting on one new volume copy once.
fn copy_up(v: &Volume, data: &Path, rootfs: &Path, dest: &str) -> Result<(), VolumeError> {
    if !store::is_empty(data) {
        return Ok(());
    }
    let _lock = crate::os::lock_file(&v.dir.join("copyup.lock"))?;
    if !store::is_empty(data) {
        return Ok(());
    }
    let fail = |source| VolumeError::CopyUp {
        path: dest.to_string(),
        source,
    };
    let root = open_dir(rootfs).map_err(fail)?;
    let src = match husk_container::open_in_root(
        &root,
        Path::new(dest),
        libc::O_RDONLY | libc::O_DIRECTORY,
    ) {
        Ok(s) => s,
        // Nothing there (or not a directory): nothing to copy; the runtime makes the
        // mount point, or says why it cannot.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    let dst = open_dir(data).map_err(fail)?;
    if let Err(e) = husk_container::copy_up_dir(&src, &dst, Path::new(dest)) {
        // Half a copy would count as content next time: leave the volume empty again.
        if let Ok(rd) = std::fs::read_dir(data) {
            for e in rd.flatten() {
                let p = e.path();
                let _ = match e.file_type() {
                    Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                    _ => std::fs::remove_file(&p),
                };
            }
        }
        return Err(fail(e));
    }
    Ok(())
}
