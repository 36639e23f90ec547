//! New images from layers: what `husk build` and `husk commit` share.
//!
//! An image is made in two calls:
//!
//! 1. [`Engine::store_layer`] once per filesystem-changing step: the step's overlay upper
//!    dir becomes a layer blob in the store (format: `husk_image::layer`; gzip by default,
//!    zstd or none with [`LayerOptions::compression`]; mtimes clamped to
//!    [`LayerOptions::timestamp`]). A dir without changes gives an empty layer and no
//!    blob. Give `skip: runtime_mount_points()` for the upper dir of a container that ran
//!    (the mount points the runtime made there are not the user's changes), and
//!    `unpack: true` to have the layer dir made from the same stream (else `commit_image`
//!    unpacks it from the blob).
//! 2. [`Engine::commit_image`] with a [`NewImage`]: the parent (an image of the store, or
//!    `None` for `scratch`), the [`Step`]s in order — each a history entry (`created_by`,
//!    `comment`) with at most one layer (an empty layer, or none, makes the entry
//!    `empty_layer`) — the [`ConfigChange`]s applied to the parent's config in order, the
//!    names to tag, the author, and the time (`created`: seconds since the epoch; fixed,
//!    e.g. SOURCE_DATE_EPOCH, it makes the config and manifest — so the image id and
//!    digest — the same for the same inputs; `None`: now).
//!
//! The image written: an OCI image config (architecture/os/variant from the parent, else
//! this host; `config` from the parent's with the changes; `rootfs.diff_ids` and `history`
//! the parent's plus the steps'), an OCI manifest (the parent's layer descriptors — docker
//! media types turned into their OCI names, same bytes — plus the new ones), stored and
//! registered as any loaded image (`husk_image::archive::import`). The new layers'
//! dirs, which `store_layer` unpacked from the same tar stream, move into the store's
//! `layers/` under their chain ids (a layer whose dir is gone is unpacked from its blob),
//! so containers of the new image run on overlay like any other.
//!
//! Between the two calls a garbage collection (`image prune`) could remove a blob no image
//! uses yet: a caller making several layers holds the store's lock across
//! (`engine.store()?.gc_lock(false)`, shared, so other builds and pulls go on).
//!
//! ```no_run
//! # fn f(engine: &husk_engine::Engine, upper: &std::path::Path) -> husk_engine::Result<()> {
//! use husk_engine::commit::{runtime_mount_points, ConfigChange, NewImage, Step};
//! use husk_image::layer::LayerOptions;
//! let parent = engine.resolve_image("busybox")?;
//! let layer = engine.store_layer(upper, &LayerOptions {
//!     timestamp: Some(0),
//!     skip: runtime_mount_points(),
//!     unpack: true,
//!     ..Default::default()
//! })?;
//! let done = engine.commit_image(&NewImage {
//!     parent: Some(parent),
//!     steps: vec![Step::new("RUN /bin/sh -c make", Some(layer))],
//!     changes: vec![ConfigChange::Cmd(vec!["/app".into()])],
//!     names: vec!["localhost/app:1".into()],
//!     created: Some(0),
//!     ..Default::default()
//! })?;
//! println!("{}", done.id);
//! # Ok(()) }
//! ```
//!
//! `husk commit` ([`Engine::commit`]) is those two calls on a container's upper dir (paused
//! while it is read, unless asked not to), with docker's `--change` instructions parsed by
//! [`ConfigChange::parse`] (which `husk import` uses too).

use crate::engine::Engine;
use crate::error::{During, Result};
use crate::record::find;
use husk_image::digest::Digest;
use husk_image::layer::{LayerOptions, NewLayer};
use husk_image::store::ImageRecord;
use serde_json::{json, Map, Value};
use std::path::Path;

pub use husk_image::manifest::Compression;

/// A `--change` (`-c`) instruction that cannot be applied.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("--change {0:?}: only CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL and ONBUILD")]
    Unsupported(String),
    #[error("--change {0:?}: expected {1}")]
    Malformed(String, &'static str),
}

/// What `commit` cannot do.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("its rootfs is a flattened copy of the image (no overlay upper dir): there is no layer to commit")]
    NoUpper,
    #[error("layer {0} of the parent image has media type {1}, which an OCI manifest cannot hold")]
    ForeignLayer(Digest, String),
    #[error(
        "layer blob {0} is not in the store (removed by a garbage collection since it was made?)"
    )]
    MissingBlob(Digest),
}

/// A docker HEALTHCHECK, as the image config holds it (durations in nanoseconds, 0 for
/// the default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["CMD", arg…]`, `["CMD-SHELL", line]`, or `["NONE"]` (disable the parent's).
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub retries: i64,
}

/// One change to the image config's `config` object, as a Dockerfile instruction makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    /// Set (or replace) variables.
    Env(Vec<(String, String)>),
    /// The command; empty: none (the parent's is dropped).
    Cmd(Vec<String>),
    /// The entrypoint; empty: none. Unlike a Dockerfile's ENTRYPOINT this leaves Cmd alone:
    /// a builder that wants docker's rule (an inherited CMD is reset) adds `Cmd(vec![])`.
    Entrypoint(Vec<String>),
    Labels(Vec<(String, String)>),
    /// `80/tcp`, `53/udp` (a bare port is tcp).
    Expose(Vec<String>),
    Volumes(Vec<String>),
    User(String),
    /// Relative paths are resolved against the current working dir, as WORKDIR does.
    Workdir(String),
    StopSignal(String),
    /// SHELL (docker's config keeps it; OCI's ignores it).
    Shell(Vec<String>),
    OnBuild(String),
    Healthcheck(Healthcheck),
}

impl ConfigChange {
    /// A Dockerfile instruction that only sets the config, as `docker commit --change` and
    /// `docker import --change` take it: CMD, ENTRYPOINT (exec form as a JSON array, else
    /// `/bin/sh -c` of the rest), ENV/LABEL `K=V` or `K V`, EXPOSE, VOLUME (a JSON array or
    /// words), WORKDIR, USER, STOPSIGNAL, ONBUILD.
    pub fn parse(ch: &str) -> Result<ConfigChange, ChangeError> {
        let (inst, arg) = ch.trim().split_once([' ', '\t']).unwrap_or((ch.trim(), ""));
        let arg = arg.trim();
        let bad = |what| ChangeError::Malformed(ch.to_string(), what);
        let command = || match serde_json::from_str::<Vec<String>>(arg) {
            Ok(v) => Ok(v),
            Err(_) if arg.starts_with('[') => Err(bad("a JSON array of strings")),
            Err(_) if arg.is_empty() => Err(bad("a command")),
            Err(_) => Ok(vec!["/bin/sh".into(), "-c".into(), arg.into()]),
        };
        let key_value = || {
            arg.split_once('=')
                .or_else(|| arg.split_once(' '))
                .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| bad("KEY=VALUE"))
        };
        let words = || match serde_json::from_str::<Vec<String>>(arg) {
            Ok(v) => v,
            Err(_) => arg.split_whitespace().map(String::from).collect(),
        };
        Ok(match inst.to_ascii_uppercase().as_str() {
            "CMD" => ConfigChange::Cmd(command()?),
            "ENTRYPOINT" => ConfigChange::Entrypoint(command()?),
            "ENV" => ConfigChange::Env(vec![key_value()?]),
            "LABEL" => ConfigChange::Labels(vec![key_value()?]),
            "EXPOSE" if !arg.is_empty() => ConfigChange::Expose(words()),
            "VOLUME" if !arg.is_empty() => ConfigChange::Volumes(words()),
            "WORKDIR" if arg.starts_with('/') => ConfigChange::Workdir(arg.into()),
            "USER" if !arg.is_empty() => ConfigChange::User(arg.into()),
            "STOPSIGNAL" if !arg.is_empty() => ConfigChange::StopSignal(arg.into()),
            "ONBUILD" if !arg.is_empty() => ConfigChange::OnBuild(arg.into()),
            "EXPOSE" | "VOLUME" | "USER" | "STOPSIGNAL" | "ONBUILD" => return Err(bad("a value")),
            "WORKDIR" => return Err(bad("an absolute path")),
            _ => return Err(ChangeError::Unsupported(ch.to_string())),
        })
    }

    /// Apply to an image config's `config` object (docker's key names).
    pub fn apply(&self, c: &mut Map<String, Value>) {
        let list = |v: &[String]| match v.is_empty() {
            true => Value::Null,
            false => json!(v),
        };
        let set_in = |c: &mut Map<String, Value>, key: &str, k: &str, v: Value| {
            let m = c.entry(key).or_insert_with(|| json!({}));
            if !m.is_object() {
                *m = json!({});
            }
            m[k] = v;
        };
        match self {
            ConfigChange::Env(vars) => {
                let env = c.entry("Env").or_insert_with(|| json!([]));
                if !env.is_array() {
                    *env = json!([]);
                }
                let list = env.as_array_mut().expect("Env is a list");
                for (k, v) in vars {
                    let line = Value::from(format!("{k}={v}"));
                    let same = |e: &Value| {
                        e.as_str()
                            .map(|e| e.split_once('=').map_or(e, |x| x.0) == k)
                            .unwrap_or(false)
                    };
                    match list.iter_mut().find(|e| same(e)) {
                        Some(e) => *e = line,
                        None => list.push(line),
                    }
                }
            }
            ConfigChange::Cmd(v) => {
                c.insert("Cmd".into(), list(v));
            }
            ConfigChange::Entrypoint(v) => {
                c.insert("Entrypoint".into(), list(v));
            }
            ConfigChange::Labels(l) => {
                for (k, v) in l {
                    set_in(c, "Labels", k, v.clone().into());
                }
            }
            ConfigChange::Expose(ports) => {
                for p in ports {
                    let p = match p.contains('/') {
                        true => p.clone(),
                        false => format!("{p}/tcp"),
                    };
                    set_in(c, "ExposedPorts", &p, json!({}));
                }
            }
            ConfigChange::Volumes(v) => {
                for p in v {
                    set_in(c, "Volumes", p, json!({}));
                }
            }
            ConfigChange::User(u) => {
                c.insert("User".into(), u.clone().into());
            }
            ConfigChange::Workdir(w) => {
                let cur = c.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
                let joined = match w.starts_with('/') {
                    true => w.clone(),
                    false => format!("{}/{w}", cur.trim_end_matches('/')),
                };
                c.insert("WorkingDir".into(), clean_path(&joined).into());
            }
            ConfigChange::StopSignal(s) => {
                c.insert("StopSignal".into(), s.clone().into());
            }
            ConfigChange::Shell(s) => {
                c.insert("Shell".into(), list(s));
            }
            ConfigChange::OnBuild(s) => {
                let ob = c.entry("OnBuild").or_insert_with(|| json!([]));
                if !ob.is_array() {
                    *ob = json!([]);
                }
                ob.as_array_mut().expect("a list").push(s.clone().into());
            }
            ConfigChange::Healthcheck(h) => {
                let mut v = json!({"Test": h.test});
                for (k, n) in [
                    ("Interval", h.interval),
                    ("Timeout", h.timeout),
                    ("StartPeriod", h.start_period),
                    ("Retries", h.retries),
                ] {
                    if n != 0 {
                        v[k] = n.into();
                    }
                }
                c.insert("Healthcheck".into(), v);
            }
        }
    }
}

/// `/a/./b/../c/` → `/a/c` (lexically; `..` stops at `/`).
fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// `--change` instructions as [`ConfigChange`]s; an ENTRYPOINT without a CMD among them
/// also drops the inherited command (`Cmd(vec![])` before it), as docker does.
pub fn parse_changes(changes: &[String]) -> Result<Vec<ConfigChange>, ChangeError> {
    let parsed = changes
        .iter()
        .map(|c| ConfigChange::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    let sets_cmd = parsed.iter().any(|c| matches!(c, ConfigChange::Cmd(_)));
    let mut out = Vec::new();
    for ch in parsed {
        if matches!(ch, ConfigChange::Entrypoint(_)) && !sets_cmd {
            out.push(ConfigChange::Cmd(Vec::new()));
        }
        out.push(ch);
    }
    Ok(out)
}

/// The `config` object from `--change` instructions applied to `base` in order.
pub fn config_with_changes(base: &Value, changes: &[String]) -> Result<Value, ChangeError> {
    let mut c = base.as_object().cloned().unwrap_or_default();
    for ch in parse_changes(changes)? {
        ch.apply(&mut c);
    }
    Ok(Value::Object(c))
}

/// One step of a new image: its history entry, and the layer it made (if any).
#[derive(Clone, Debug, Default)]
pub struct Step {
    /// The instruction, as `docker history` shows it (`RUN /bin/sh -c make`).
    pub created_by: String,
    pub comment: Option<String>,
    /// `None` or an empty layer: the step changed only the config (`empty_layer`).
    pub layer: Option<NewLayer>,
}

impl Step {
    pub fn new(created_by: impl Into<String>, layer: Option<NewLayer>) -> Step {
        Step {
            created_by: created_by.into(),
            comment: None,
            layer,
        }
    }
}

/// What [`Engine::commit_image`] makes.
#[derive(Clone, Debug, Default)]
pub struct NewImage {
    /// `None`: from scratch (no layers, an empty config).
    pub parent: Option<ImageRecord>,
    pub steps: Vec<Step>,
    pub changes: Vec<ConfigChange>,
    /// Names to tag (`NAME[:TAG]`, completed as `husk tag` does).
    pub names: Vec<String>,
    /// The config's `author`.
    pub author: Option<String>,
    /// Seconds since the epoch for `created` and the new history entries; `None`: now.
    pub created: Option<i64>,
}

/// The image [`Engine::commit_image`] made.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The image id: the config's digest.
    pub id: Digest,
    /// The OCI manifest's digest (what a registry calls the image by).
    pub manifest: Digest,
    pub record: ImageRecord,
    pub names: Vec<String>,
}

/// `husk commit`'s options.
#[derive(Clone, Debug)]
pub struct CommitOptions {
    /// `NAME[:TAG]`; none: an untagged image.
    pub name: Option<String>,
    /// `--change` instructions.
    pub changes: Vec<String>,
    pub message: Option<String>,
    pub author: Option<String>,
    /// Freeze a running container while its upper dir is read (docker's default).
    pub pause: bool,
    pub compression: Compression,
    /// Seconds since the epoch: the image's time, and the clamp of the layer's mtimes.
    pub timestamp: Option<i64>,
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions {
            name: None,
            changes: Vec::new(),
            message: None,
            author: None,
            pause: true,
            compression: Compression::Gzip,
            timestamp: None,
        }
    }
}

/// The mount points the runtime and the engine make in every container (`/proc`,
/// `/etc/hosts`…), as [`LayerOptions::skip`] paths: in a container's upper dir they are
/// the engine's, not the user's changes, and stay out of a committed layer (as docker
/// keeps them in its "init" layer).
pub fn runtime_mount_points() -> Vec<Vec<u8>> {
    crate::changes::MOUNT_POINTS
        .iter()
        .map(|p| p.trim_start_matches('/').as_bytes().to_vec())
        .collect()
}

/// The manifest descriptors of `layers`: docker's media types under their OCI names (the
/// same bytes); a foreign (non-distributable) layer refused.
pub(crate) fn layer_descriptors(
    layers: &[husk_image::store::LayerRecord],
) -> Result<Vec<Value>, CommitError> {
    layers
        .iter()
        .map(|l| {
            Ok(json!({
                "mediaType": oci_media_type(l)?,
                "digest": l.digest.to_string(),
                "size": l.size,
            }))
        })
        .collect()
}

/// Store `config` (an image config's bytes) as a blob; the bytes of the OCI image manifest
/// that names it and `layers` (descriptors). Commit, import and build all make their
/// images through this and then `husk_image::archive::import`.
pub(crate) fn oci_manifest(
    store: &husk_image::store::Store,
    config: &[u8],
    layers: Vec<Value>,
) -> husk_image::Result<Vec<u8>> {
    let digest = store.write_blob(config, None)?;
    Ok(serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": husk_image::registry::MT_OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest.to_string(),
            "size": config.len(),
        },
        "layers": layers,
    }))
    .expect("serializable"))
}

/// Docker's layer media types as their OCI names (same bytes), for an OCI manifest.
fn oci_media_type(l: &husk_image::store::LayerRecord) -> Result<String, CommitError> {
    Ok(match l.media_type.as_str() {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => husk_image::layer::MT_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar" => husk_image::layer::MT_LAYER_TAR,
        m if m.starts_with("application/vnd.oci.image.layer.v1.tar")
            && !m.contains("nondistributable") =>
        {
            m
        }
        m => return Err(CommitError::ForeignLayer(l.digest.clone(), m.to_string())),
    }
    .to_string())
}

impl Engine {
    /// Write the changes in `upper` (an overlay upper dir) as a layer blob in the store.
    /// See the module comment.
    pub fn store_layer(&self, upper: &Path, opts: &LayerOptions) -> Result<NewLayer> {
        let store = self.store()?;
        Ok(husk_image::layer::store_layer(&store, upper, opts)?)
    }

    /// Make and register a new image (see the module comment).
    pub fn commit_image(&self, img: &NewImage) -> Result<Committed> {
        let what = img.names.first().map_or("image", String::as_str);
        self.commit_image_inner(img).during("commit", what)
    }

    fn commit_image_inner(&self, img: &NewImage) -> Result<Committed> {
        let store = self.store()?;
        let _gc = store.gc_lock(false)?;
        let names = img
            .names
            .iter()
            .map(|n| {
                self.parse_ref(n)?
                    .tagged_name()
                    .ok_or_else(|| crate::error::ImageError::NoTag.into())
            })
            .collect::<Result<Vec<String>>>()?;
        let parent_cfg: Value =
            match &img.parent {
                Some(p) => serde_json::from_slice(&store.read_blob(&p.config_digest)?).map_err(
                    |source| crate::error::ImageError::Parse {
                        what: "config",
                        source,
                    },
                )?,
                None => json!({}),
            };
        let created = husk_oci::time::rfc3339(img.created.unwrap_or_else(now_secs), 0);
        let host = husk_image::manifest::Platform::host();
        let mut cfg = Map::new();
        cfg.insert("created".into(), created.clone().into());
        if let Some(a) = &img.author {
            cfg.insert("author".into(), a.clone().into());
        }
        for k in ["architecture", "os", "variant", "os.version", "os.features"] {
            if let Some(v) = parent_cfg.get(k).filter(|v| !v.is_null()) {
                cfg.insert(k.into(), v.clone());
            }
        }
        cfg.entry("architecture")
            .or_insert_with(|| host.architecture.clone().into());
        cfg.entry("os").or_insert_with(|| "linux".into());
        let mut config = parent_cfg["config"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for ch in &img.changes {
            ch.apply(&mut config);
        }
        cfg.insert("config".into(), Value::Object(config));

        // The parent's layers and history; a history shorter than the layers (images
        // made without one) is padded, so that every layer keeps its own entry.
        let parent_layers: &[husk_image::store::LayerRecord] =
            img.parent.as_ref().map_or(&[], |p| &p.layers);
        let mut history: Vec<Value> = parent_cfg["history"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let with_layer = history.iter().filter(|h| h["empty_layer"] != true).count();
        for _ in with_layer..parent_layers.len() {
            history.push(json!({"created": parent_cfg["created"]}));
        }
        let mut diff_ids: Vec<Value> = parent_layers
            .iter()
            .map(|l| l.diff_id.to_string().into())
            .collect();
        let mut layers = layer_descriptors(parent_layers)?;
        let mut new_layers: Vec<&NewLayer> = Vec::new();
        for s in &img.steps {
            let mut h = Map::new();
            h.insert("created".into(), created.clone().into());
            h.insert("created_by".into(), s.created_by.clone().into());
            if let Some(a) = &img.author {
                h.insert("author".into(), a.clone().into());
            }
            if let Some(c) = &s.comment {
                h.insert("comment".into(), c.clone().into());
            }
            match s.layer.as_ref().filter(|l| !l.is_empty()) {
                Some(l) => {
                    if !store.has_blob(&l.digest) {
                        return Err(CommitError::MissingBlob(l.digest.clone()).into());
                    }
                    diff_ids.push(l.diff_id.to_string().into());
                    new_layers.push(l);
                    layers.push(json!({
                        "mediaType": l.media_type,
                        "digest": l.digest.to_string(),
                        "size": l.size,
                    }));
                }
                None => {
                    h.insert("empty_layer".into(), true.into());
                }
            }
            history.push(Value::Object(h));
        }
        cfg.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        cfg.insert("history".into(), history.into());
        let cfg = serde_json::to_vec(&Value::Object(cfg)).expect("serializable");
        let manifest = oci_manifest(&store, &cfg, layers)?;
        // The layers store_layer unpacked on the way go into place under their chain ids;
        // import unpacks the others (and any whose unpacked dir is gone) from their blobs.
        let all_diff_ids: Vec<Digest> = parent_layers
            .iter()
            .map(|l| l.diff_id.clone())
            .chain(new_layers.iter().map(|l| l.diff_id.clone()))
            .collect();
        let chains = husk_image::digest::chain_ids(&all_diff_ids);
        let adopted = new_layers
            .iter()
            .zip(&chains[parent_layers.len()..])
            .try_for_each(|(l, chain)| {
                husk_image::layer::adopt_unpacked(&store, l, chain).map(drop)
            });
        let record = adopted.and_then(|()| {
            husk_image::archive::import(
                &store,
                &manifest,
                husk_image::registry::MT_OCI_MANIFEST,
                None,
                &names,
                self.settings.unpack_limits(),
            )
        });
        if record.is_err() {
            new_layers
                .iter()
                .for_each(|l| husk_image::layer::discard_unpacked(l));
        }
        let record = record?;
        for n in &names {
            crate::events::emit(
                &self.root,
                "image",
                "tag",
                &record.config_digest.to_string(),
                &[("name", n)],
            );
        }
        Ok(Committed {
            id: record.config_digest.clone(),
            manifest: record.manifest_digest.clone(),
            record,
            names,
        })
    }

    /// `husk commit`: a new image from a container's changes (see the module comment).
    /// Returns the new image's id.
    pub fn commit(&self, container: &str, o: &CommitOptions) -> Result<Digest> {
        self.commit_inner(container, o).during("commit", container)
    }

    fn commit_inner(&self, container: &str, o: &CommitOptions) -> Result<Digest> {
        let r = find(&self.root, container)?;
        let upper = r.dir.join("upper");
        if !upper.is_dir() {
            return Err(CommitError::NoUpper.into());
        }
        let store = self.store()?;
        let parent = self.image_of(&store, &r)?;
        let changes = parse_changes(&o.changes)?;
        let _gc = store.gc_lock(false)?;
        let layer = {
            let _frozen = match o.pause && r.status() == "running" {
                true => Some(Frozen::new(self, r.id())?),
                false => None,
            };
            self.store_layer(
                &upper,
                &LayerOptions {
                    compression: o.compression,
                    timestamp: o.timestamp,
                    skip: runtime_mount_points(),
                    unpack: true,
                    ..Default::default()
                },
            )?
        };
        // docker's created_by for a commit: the container's command.
        let cmd = &r.meta.cmd;
        let done = self.commit_image_inner(&NewImage {
            parent: Some(parent),
            steps: vec![Step {
                created_by: cmd.join(" "),
                comment: o.message.clone(),
                layer: Some(layer),
            }],
            changes,
            names: o.name.iter().cloned().collect(),
            author: o.author.clone(),
            created: o.timestamp,
        });
        let done = done?;
        crate::events::emit(
            &self.root,
            "container",
            "commit",
            r.id(),
            &[("name", r.name()), ("image", &done.id.to_string())],
        );
        Ok(done.id)
    }
}

/// A running container frozen for as long as this lives.
struct Frozen<'a> {
    engine: &'a Engine,
    id: String,
}

impl<'a> Frozen<'a> {
    fn new(engine: &'a Engine, id: &str) -> Result<Frozen<'a>> {
        engine.pause(id)?;
        Ok(Frozen {
            engine,
            id: id.to_string(),
        })
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.engine.unpause(&self.id) {
            (self.engine.warn)(&format!("unpausing {} after the commit: {e}", self.id));
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(c: &[&str]) -> Result<Value, ChangeError> {
        let c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
        config_with_changes(&json!({}), &c)
    }

    #[test]
    fn changes_become_the_config() {
        assert_eq!(
            changes(&[
                r#"CMD ["cat", "/x"]"#,
                "ENTRYPOINT /bin/run it",
                "ENV A=1",
                "ENV B 2",
                "ENV A=3",
                "WORKDIR /srv",
                "USER app",
                "LABEL org.x=\"y z\"",
                "EXPOSE 80",
                "expose 53/udp",
                "STOPSIGNAL SIGINT",
                "VOLUME [\"/data\"]",
            ]),
            Ok(json!({
                "Cmd": ["cat", "/x"],
                "Entrypoint": ["/bin/sh", "-c", "/bin/run it"],
                "Env": ["A=3", "B=2"],
                "WorkingDir": "/srv",
                "User": "app",
                "Labels": {"org.x": "y z"},
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                "StopSignal": "SIGINT",
                "Volumes": {"/data": {}},
            }))
        );
        assert_eq!(changes(&[]), Ok(json!({})));
        assert_eq!(
            changes(&["RUN true"]),
            Err(ChangeError::Unsupported("RUN true".into()))
        );
        assert_eq!(
            changes(&["RUN true"]).unwrap_err().to_string(),
            "--change \"RUN true\": only CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL and ONBUILD"
        );
        assert_eq!(
            changes(&["CMD [\"a\""]).unwrap_err().to_string(),
            "--change \"CMD [\\\"a\\\"\": expected a JSON array of strings"
        );
        assert_eq!(
            changes(&["WORKDIR rel"]),
            Err(ChangeError::Malformed(
                "WORKDIR rel".into(),
                "an absolute path"
            ))
        );
        assert_eq!(
            changes(&["ENV"]).unwrap_err().to_string(),
            "--change \"ENV\": expected KEY=VALUE"
        );
    }

    #[test]
    fn entrypoint_drops_an_inherited_cmd_and_workdir_is_relative() {
        let base = json!({"Cmd": ["sh"], "WorkingDir": "/a"});
        let c = config_with_changes(&base, &["ENTRYPOINT [\"x\"]".into()]).unwrap();
        assert_eq!(c["Cmd"], Value::Null);
        let mut m = base.as_object().cloned().unwrap();
        ConfigChange::Workdir("b/../c".into()).apply(&mut m);
        assert_eq!(m["WorkingDir"], "/a/c");
        ConfigChange::Cmd(vec![]).apply(&mut m);
        assert_eq!(m["Cmd"], Value::Null);
    }
}
