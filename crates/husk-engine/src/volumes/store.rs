//! Volumes on disk: ROOT/volumes/NAME/_data (what containers see) and
//! ROOT/volumes/NAME/volume.json (driver, options, labels, creation time, whether it is
//! anonymous). A volume appears whole or not at all: it is made in a temporary directory
//! and renamed into place. Names are docker's ([a-zA-Z0-9][a-zA-Z0-9_.-]*), so a name can
//! never leave ROOT/volumes.

use super::VolumeError;
use crate::os::IoContext;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// volume.json: what `volume inspect` shows besides the mount point.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VolumeMeta {
    pub name: String,
    /// Always "local": the one driver husk has.
    pub driver: String,
    /// The local driver's `--opt`s: type, device, o.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339.
    pub created: String,
    /// Made for `-v /path` or an image's VOLUME (removed with its container by `rm -v`
    /// and `--rm`), not named by the user.
    #[serde(default)]
    pub anonymous: bool,
}

/// One volume in the store.
#[derive(Clone, Debug)]
pub struct Volume {
    pub meta: VolumeMeta,
    /// ROOT/volumes/NAME
    pub dir: PathBuf,
}

impl Volume {
    /// ROOT/volumes/NAME/_data: the directory containers mount (docker's Mountpoint).
    pub fn data(&self) -> PathBuf {
        self.dir.join("_data")
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// `--opt type=tmpfs`: a fresh tmpfs per container instead of the _data directory.
    pub fn is_tmpfs(&self) -> bool {
        self.meta.options.get("type").is_some_and(|t| t == "tmpfs")
    }

    /// `--opt type=none,o=bind,device=PATH`: the host directory PATH instead of _data.
    pub fn bind_device(&self) -> Option<PathBuf> {
        let t = self.meta.options.get("type")?;
        (t == "none").then(|| self.meta.options.get("device").map(PathBuf::from))?
    }
}

pub fn volumes_dir(root: &Path) -> PathBuf {
    root.join("volumes")
}

/// docker's rule for local volume names.
pub fn check_name(name: &str) -> Result<(), VolumeError> {
    match crate::config::valid_name(name) {
        true => Ok(()),
        false => Err(VolumeError::BadName(name.to_string())),
    }
}

/// The volume `name`.
pub fn load(root: &Path, name: &str) -> Result<Volume, VolumeError> {
    check_name(name)?;
    let dir = volumes_dir(root).join(name);
    let f = dir.join("volume.json");
    let data = match std::fs::read(&f) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VolumeError::NotFound(name.to_string()))
        }
        Err(source) => {
            return Err(crate::os::IoError {
                op: "reading",
                path: f,
                source,
            }
            .into())
        }
    };
    let meta: VolumeMeta =
        serde_json::from_slice(&data).map_err(|source| VolumeError::Parse { path: f, source })?;
    Ok(Volume { meta, dir })
}

/// Every volume, by name.
pub fn list(root: &Path) -> Vec<Volume> {
    let mut v: Vec<Volume> = std::fs::read_dir(volumes_dir(root))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .filter_map(|n| load(root, &n).ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    v
}

/// Make the volume `meta.name` (an empty _data, mode 0755 as docker's). Whether it was
/// made: false when it already existed (docker's `volume create` of an existing name
/// answers with the name).
pub fn create(root: &Path, meta: &VolumeMeta) -> Result<(Volume, bool), VolumeError> {
    check_name(&meta.name)?;
    let parent = volumes_dir(root);
    let dir = parent.join(&meta.name);
    if dir.join("volume.json").exists() {
        return Ok((load(root, &meta.name)?, false));
    }
    std::fs::create_dir_all(&parent).ctx("creating", &parent)?;
    let tmp = parent.join(format!(".new-{}-{}", meta.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let made = (|| {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .ctx("creating", &tmp)?;
        let data = tmp.join("_data");
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&data)
            .ctx("creating", &data)?;
        let f = tmp.join("volume.json");
        std::fs::write(&f, serde_json::to_vec_pretty(meta).unwrap()).ctx("writing", &f)?;
        std::fs::rename(&tmp, &dir).ctx("renaming into place", &dir)
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        // Made by someone else meanwhile: theirs.
        if dir.join("volume.json").exists() {
            return Ok((load(root, &meta.name)?, false));
        }
        return Err(e.into());
    }
    Ok((
        Volume {
            meta: meta.clone(),
            dir,
        },
        true,
    ))
}

/// Remove the volume's directory: first renamed away (so that it disappears at once and
/// a half-removed volume is never seen), then deleted.
pub fn remove(v: &Volume) -> Result<(), VolumeError> {
    let gone = v
        .dir
        .with_file_name(format!(".gone-{}-{}", v.meta.name, std::process::id()));
    std::fs::rename(&v.dir, &gone).ctx("removing", &v.dir)?;
    std::fs::remove_dir_all(&gone).ctx("removing", &gone)?;
    Ok(())
}

/// A new random name, as docker's for anonymous volumes and `volume create` without one:
/// 64 hex digits.
pub fn random_name() -> Result<String, VolumeError> {
    let mut b = [0u8; 32];
    let f = Path::new("/dev/urandom");
    std::io::Read::read_exact(&mut std::fs::File::open(f).ctx("opening", f)?, &mut b)
        .ctx("reading", f)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Whether the directory `dir` has no entries (a missing one counts as empty).
pub fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut rd| rd.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_load_list_remove() {
        let root = std::env::temp_dir().join(format!("husk-vol-store-{}", std::process::id()));
        let meta = VolumeMeta {
            name: "data.1".into(),
            driver: "local".into(),
            created: "2024-01-01T00:00:00Z".into(),
            ..Default::default()
        };
        let (v, made) = create(&root, &meta).unwrap();
        assert!(made && v.data().is_dir() && is_empty(&v.data()));
        let (again, made) = create(&root, &meta).unwrap();
        assert!(!made && again.meta == meta);
        assert_eq!(load(&root, "data.1").unwrap().meta, meta);
        assert_eq!(list(&root).len(), 1);
        for bad in ["../x", "-x", "", "a/b", ".x"] {
            assert!(
                matches!(load(&root, bad), Err(VolumeError::BadName(_))),
                "{bad}"
            );
        }
        remove(&v).unwrap();
        assert!(matches!(
            load(&root, "data.1"),
            Err(VolumeError::NotFound(_))
        ));
        assert!(list(&root).is_empty());
        assert_eq!(random_name().unwrap().len(), 64);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
