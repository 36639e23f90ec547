//! Volumes: directories the engine keeps apart from any container (ROOT/volumes/NAME/_data),
//! mounted into containers by `-v NAME:/path`, `-v /path` (anonymous), an image's VOLUME
//! or `--mount type=volume`. `volume create|ls|inspect|rm|prune` are [`Engine`] methods
//! here; the on-disk store is [`store`], `-v`/`--mount` parsing is [`flags`], and what a
//! run does with them (make them, copy the image's content in, turn them into the spec's
//! mounts) is [`attach`].
//!
//! A volume is in use while any container — running or not — names it in its
//! container.json: such a volume is never removed (`volume rm -f` included, as docker's).
//! The check and the removal happen under the lock `run` holds until the container's
//! record exists (record::lock_names), so no run can start using a volume being removed.

pub mod attach;
pub mod flags;
pub mod store;

use crate::engine::Engine;
use crate::error::{During, Result};
use crate::os::IoError;
use crate::record::{containers_dir, list, lock_names};
use crate::views::{VolumeInspect, VolumeRow};
use std::collections::BTreeMap;
use std::path::Path;
use store::{Volume, VolumeMeta};

/// What a volume operation can run into.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(
        "{0:?} includes invalid characters for a local volume name, only \
         \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed; a host directory needs an absolute path"
    )]
    BadName(String),
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error("parsing {}: {source}", path.display())]
    Parse {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// docker's words, which scripts match.
    #[error("volume is in use - [{}]", .0.join(", "))]
    InUse(Vec<String>),
    #[error("--driver {0:?}: husk has only the local driver")]
    Driver(String),
    #[error("--opt {0:?}: {1}")]
    Opt(String, &'static str),
    #[error("--label {0:?}: expected KEY[=VALUE]")]
    Label(String),
    #[error("--filter {0:?}: use dangling=true|false, name=, driver=, label=KEY[=VALUE]")]
    Filter(String),
    #[error("copying the image's {path} into the volume: {source}")]
    CopyUp {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The local driver's options: `type=tmpfs` (a tmpfs for each container, `o` its mount
/// options), `type=none` with `o=bind` and `device=/host/dir` (that directory). Other
/// file systems (nfs, a block device) are not mounted by husk.
pub(crate) fn check_options(o: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    let bad = |k: &str, why| Err(VolumeError::Opt(format!("{k}={}", o[k]), why));
    for k in o.keys() {
        if !["type", "device", "o"].contains(&k.as_str()) {
            return bad(k, "the local driver takes type, device and o");
        }
    }
    match o.get("type").map(String::as_str) {
        None if o.is_empty() => Ok(()),
        None => Err(VolumeError::Opt(
            o.keys().next().cloned().unwrap_or_default(),
            "needs type=tmpfs or type=none",
        )),
        Some("tmpfs") => Ok(()),
        Some("none") => {
            let binds = o
                .get("o")
                .is_some_and(|x| x.split(',').any(|f| f == "bind" || f == "rbind"));
            match o.get("device") {
                _ if !binds => bad("type", "type=none needs o=bind"),
                Some(d) if d.starts_with('/') && Path::new(d).is_dir() => Ok(()),
                Some(_) => bad("device", "needs an existing host directory"),
                None => bad("type", "type=none needs device=/host/dir"),
            }
        }
        Some(_) => bad(
            "type",
            "the local driver mounts tmpfs and binds (type=none,o=bind) only",
        ),
    }
}

/// `KEY=VALUE` strings as a map; `what` names the flag in errors.
fn key_values(
    items: &[String],
    err: impl Fn(&str) -> VolumeError,
) -> Result<BTreeMap<String, String>, VolumeError> {
    let mut m = BTreeMap::new();
    for i in items {
        match i.split_once('=') {
            Some((k, v)) if !k.is_empty() => m.insert(k.to_string(), v.to_string()),
            None if !i.is_empty() => m.insert(i.clone(), String::new()),
            _ => return Err(err(i)),
        };
    }
    Ok(m)
}

/// Ids of the containers (any state) whose record names volume `name`.
pub(crate) fn users(root: &Path, name: &str) -> Vec<String> {
    list(root)
        .into_iter()
        .filter(|r| {
            r.meta
                .mounts
                .iter()
                .any(|m| m.kind == "volume" && m.name == name)
        })
        .map(|r| r.meta.id)
        .collect()
}

/// Remove the volumes `names` that no container uses any more (a container's anonymous
/// volumes, after the container itself is gone). `lock`: take the names lock (not when the
/// caller already holds it).
pub(crate) fn remove_unused(root: &Path, names: &[String], lock: bool) {
    if names.is_empty() {
        return;
    }
    let _lock = lock.then(|| lock_names(&containers_dir(root)).ok());
    for n in names {
        if let Ok(v) = store::load(root, n) {
            if users(root, n).is_empty() && store::remove(&v).is_ok() {
                crate::events::emit(root, "volume", "destroy", n, &[("driver", "local")]);
            }
        }
    }
}

/// The anonymous volumes among a container's mounts (its record's `mounts`).
pub(crate) fn anonymous_of(mounts: &[attach::VolumeMountRecord]) -> Vec<String> {
    mounts
        .iter()
        .filter(|m| m.kind == "volume" && m.anonymous)
        .map(|m| m.name.clone())
        .collect()
}

fn inspect_view(v: &Volume) -> VolumeInspect {
    VolumeInspect {
        created_at: v.meta.created.clone(),
        driver: v.meta.driver.clone(),
        labels: v.meta.labels.clone(),
        mountpoint: v.data().display().to_string(),
        name: v.meta.name.clone(),
        options: v.meta.options.clone(),
        scope: "local".into(),
    }
}

/// `volume ls --filter`: one KEY=VALUE.
fn matches(root: &Path, v: &Volume, filter: &str) -> Result<bool, VolumeError> {
    let bad = || VolumeError::Filter(filter.to_string());
    let (k, val) = filter.split_once('=').ok_or_else(bad)?;
    Ok(match k {
        "dangling" => match val {
            "true" | "1" => users(root, v.name()).is_empty(),
            "false" | "0" => !users(root, v.name()).is_empty(),
            _ => return Err(bad()),
        },
        "name" => v.name().contains(val),
        "driver" => v.meta.driver == val,
        "label" => match val.split_once('=') {
            Some((lk, lv)) => v.meta.labels.get(lk).is_some_and(|x| x == lv),
            None => v.meta.labels.contains_key(val),
        },
        _ => return Err(bad()),
    })
}

impl Engine {
    /// `volume create [--driver local] [--opt K=V] [--label K[=V]] [NAME]`: the volume's
    /// name (a random one when none is given, as docker's). An existing name is answered
    /// with that name, as docker does.
    pub fn volume_create(
        &self,
        name: Option<&str>,
        driver: &str,
        opts: &[String],
        labels: &[String],
    ) -> Result<String> {
        let what = name.unwrap_or("").to_string();
        (|| -> Result<String, VolumeError> {
            if driver != "local" {
                return Err(VolumeError::Driver(driver.into()));
            }
            let options = key_values(opts, |o| VolumeError::Opt(o.into(), "expected KEY=VALUE"))?;
            check_options(&options)?;
            let labels = key_values(labels, |l| VolumeError::Label(l.into()))?;
            let name = match name {
                Some(n) => n.to_string(),
                None => store::random_name()?,
            };
            let meta = VolumeMeta {
                name,
                driver: "local".into(),
                options,
                labels,
                created: husk_oci::time::rfc3339_now(),
                anonymous: false,
            };
            let (v, made) = store::create(&self.root, &meta)?;
            if made {
                crate::events::emit(
                    &self.root,
                    "volume",
                    "create",
                    v.name(),
                    &[("driver", "local")],
                );
            }
            Ok(v.meta.name)
        })()
        .during("volume create", what)
    }

    /// `volume ls`: every volume that passes every filter, by name.
    pub fn volumes(&self, filters: &[String]) -> Result<Vec<VolumeRow>> {
        let mut out = Vec::new();
        for v in store::list(&self.root) {
            let mut keep = true;
            for f in filters {
                keep &= matches(&self.root, &v, f).during("volume ls", "")?;
            }
            if keep {
                let labels: Vec<String> = v
                    .meta
                    .labels
                    .iter()
                    .map(|(k, x)| format!("{k}={x}"))
                    .collect();
                out.push(VolumeRow {
                    driver: v.meta.driver.clone(),
                    name: v.meta.name.clone(),
                    mountpoint: v.data().display().to_string(),
                    scope: "local".into(),
                    labels: labels.join(","),
                    links: users(&self.root, v.name()).len().to_string(),
                    size: "N/A".into(),
                });
            }
        }
        Ok(out)
    }

    /// `volume inspect`: docker's layout of each volume.
    pub fn volume_inspect(&self, names: &[String]) -> Result<Vec<VolumeInspect>> {
        names
            .iter()
            .map(|n| {
                store::load(&self.root, n)
                    .map(|v| inspect_view(&v))
                    .during("volume inspect", n)
            })
            .collect()
    }

    /// `volume rm [-f]`: a volume no container uses. `force` only makes a missing volume
    /// no error: one in use stays, as with docker.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        (|| -> Result<(), VolumeError> {
            let _lock = lock_names(&containers_dir(&self.root))?;
            let v = match store::load(&self.root, name) {
                Err(VolumeError::NotFound(_)) if force => return Ok(()),
                r => r?,
            };
            let used = users(&self.root, name);
            if !used.is_empty() {
                return Err(VolumeError::InUse(used));
            }
            store::remove(&v)?;
            crate::events::emit(
                &self.root,
                "volume",
                "destroy",
                name,
                &[("driver", "local")],
            );
            Ok(())
        })()
        .during("volume rm", name)
    }

    /// `volume prune`: every volume no container uses (docker 20.10's and podman's rule:
    /// named ones too); the names removed and the bytes their data took.
    pub fn volume_prune(&self) -> Result<(Vec<String>, u64)> {
        let _lock = lock_names(&containers_dir(&self.root)).during("volume prune", "")?;
        let (mut removed, mut bytes) = (Vec::new(), 0);
        for v in store::list(&self.root) {
            if !users(&self.root, v.name()).is_empty() {
                continue;
            }
            let size = crate::system::dir_size(&v.data());
            store::remove(&v).during("volume prune", v.name())?;
            crate::events::emit(
                &self.root,
                "volume",
                "destroy",
                v.name(),
                &[("driver", "local")],
            );
            bytes += size;
            removed.push(v.meta.name);
        }
        Ok((removed, bytes))
    }

    /// Every volume with whether a container uses it and the bytes of its data (`system
    /// df`).
    pub(crate) fn volume_usage(&self) -> Vec<(bool, u64)> {
        store::list(&self.root)
            .iter()
            .map(|v| {
                (
                    !users(&self.root, v.name()).is_empty(),
                    crate::system::dir_size(&v.data()),
                )
            })
            .collect()
    }
}
