//! Content-addressed image store.
//!
//! ```text
//! ROOT/gc.lock                  shared while pulling/loading, exclusive while collecting garbage
//! ROOT/meta.lock                exclusive while changing names.json / image records
//! ROOT/blobs/sha256/HEX         verified blobs (manifests, configs, compressed layers)
//! ROOT/layers/CHAINHEX/diff/    an unpacked layer (overlayfs lowerdir), shared between images
//! ROOT/layers/CHAINHEX/layer.json
//! ROOT/images/MANIFESTHEX.json  image records
//! ROOT/names.json               "registry/repo:tag" → manifest digest
//! ROOT/tmp/                     partial downloads (HEX.partial) and unpacks in progress
//! ```
//! Everything becomes visible by rename after it has been verified, so a killed process
//! leaves at worst files in tmp/, which the next user of the same digest cleans up or resumes.

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::manifest::Platform;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub diff_id: Digest,
    pub chain_id: Digest,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRecord {
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    pub config_digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    pub layers: Vec<LayerRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// seconds since the epoch when this record was written
    pub stored_at: u64,
}

impl ImageRecord {
    /// The image ID (like docker and podman: the config digest).
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }
    pub fn compressed_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerMeta {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub digest: Digest,
    pub unpacked_size: u64,
    pub entries: u64,
}

pub struct Store {
    root: PathBuf,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The default store root: /var/lib/husk for root, $XDG_DATA_HOME/husk otherwise.
pub fn default_root() -> PathBuf {
    if let Some(p) = std::env::var_os("HUSK_ROOT").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if fsutil::is_root() {
        return PathBuf::from("/var/lib/husk");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    data.join("husk")
}

impl Store {
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for d in ["blobs/sha256", "layers", "images", "tmp"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).ctx("creating store directory", &p)?;
        }
        use std::os::unix::fs::PermissionsExt;
        // Private, but search permission stays where the engine granted it: a container
        // with a user namespace of its own (--userns=auto) reaches its rootfs through here.
        let search = std::fs::metadata(&root).map_or(0, |m| m.permissions().mode() & 0o011);
        let _ = std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700 | search));
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }
    pub fn layer_root(&self, chain: &Digest) -> PathBuf {
        self.root.join("layers").join(chain.hex())
    }
    /// The unpacked layer directory (overlay lowerdir).
    pub fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.layer_root(chain).join("diff")
    }
    pub fn has_layer(&self, chain: &Digest) -> bool {
        self.layer_root(chain).join("layer.json").is_file()
    }

    /// Shared (pull/load) or exclusive (gc) store lock.
    pub fn gc_lock(&self, exclusive: bool) -> Result<File> {
        let p = self.root.join("gc.lock");
        fsutil::lock_file(&p, exclusive).ctx("locking", p)
    }
    fn meta_lock(&self) -> Result<File> {
        let p = self.root.join("meta.lock");
        fsutil::lock_file(&p, true).ctx("locking", p)
    }
    pub fn tmp_lock(&self, name: &str) -> Result<File> {
        let p = self.tmp_dir().join(format!("{name}.lock"));
        fsutil::lock_file(&p, true).ctx("locking", p)
    }

    /// Store bytes as a blob (verified against `expected` when given).
    pub fn write_blob(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let d = Digest::of(data);
        if let Some(e) = expected {
            crate::digest::verify("blob", e, None, &d, data.len() as u64)?;
        }
        let p = self.blob_path(&d);
        if !p.is_file() {
            fsutil::write_atomic(&p, data).ctx("writing blob", &p)?;
        }
        Ok(d)
    }

    /// Move a fully written and verified temp file into the blob store.
    pub fn commit_blob_file(&self, tmp: &Path, d: &Digest) -> Result<()> {
        let f = File::open(tmp).ctx("opening", tmp)?;
        f.sync_all().ctx("syncing", tmp)?;
        let p = self.blob_path(d);
        std::fs::rename(tmp, &p).ctx("committing blob", &p)?;
        fsutil::fsync_dir(p.parent().unwrap()).ctx("syncing", p.parent().unwrap())?;
        Ok(())
    }

    /// Copy a stream into the blob store, verifying digest and size.
    pub fn ingest_blob(&self, r: &mut dyn Read, d: &Digest, size: Option<u64>) -> Result<()> {
        if self.has_blob(d) {
            return Ok(());
        }
        let _l = self.tmp_lock(d.hex())?;
        let tmp = self.tmp_dir().join(format!("{}.ingest", d.hex()));
        let mut f = File::create(&tmp).ctx("creating", &tmp)?;
        let mut hr = HashingReader::new(r);
        std::io::copy(&mut hr, &mut f).ctx("writing", &tmp)?;
        let (got, n, _) = hr.finish();
        if let Err(e) = crate::digest::verify(&format!("blob {d}"), d, size, &got, n) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        drop(f);
        self.commit_blob_file(&tmp, d)
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        std::fs::read(&p).ctx("reading blob", p)
    }

    /// Commit an unpacked layer directory (containing `diff/`) under its chain id.
    pub fn commit_layer(&self, tmpdir: &Path, meta: &LayerMeta) -> Result<()> {
        let j = serde_json::to_vec_pretty(meta).expect("serializable");
        let mp = tmpdir.join("layer.json");
        std::fs::write(&mp, j).ctx("writing", &mp)?;
        let dst = self.layer_root(&meta.chain_id);
        if dst.exists() {
            // a half-removed or stale entry without layer.json: replace it
            self.remove_layer_dir(&dst)?;
        }
        std::fs::rename(tmpdir, &dst).ctx("committing layer", &dst)?;
        fsutil::fsync_dir(&self.root.join("layers")).ctx("syncing", self.root.join("layers"))?;
        Ok(())
    }

    /// Remove a layer directory so that no kill leaves half of it under `layers/`: it
    /// leaves `layers/` by one rename into `tmp/` (which `image prune` clears of what a
    /// kill left there), then goes.
    pub(crate) fn remove_layer_dir(&self, dir: &Path) -> Result<()> {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let doomed = self
            .tmp_dir()
            .join(format!("removing-{name}-{}", std::process::id()));
        let _ = fsutil::remove_tree(&doomed); // of a killed earlier process of this pid
        std::fs::rename(dir, &doomed).ctx("removing", dir)?;
        fsutil::remove_tree(&doomed).ctx("removing", &doomed)
    }

    fn names_path(&self) -> PathBuf {
        self.root.join("names.json")
    }

    pub fn names(&self) -> Result<BTreeMap<String, Digest>> {
        let p = self.names_path();
        match std::fs::read(&p) {
            Ok(d) => serde_json::from_slice(&d)
                .map_err(|e| Error::invalid(p.display().to_string(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("reading", p, e)),
        }
    }

    fn write_names(&self, n: &BTreeMap<String, Digest>) -> Result<()> {
        let p = self.names_path();
        fsutil::write_atomic(&p, &serde_json::to_vec_pretty(n).unwrap()).ctx("writing", p)
    }

    fn record_path(&self, manifest: &Digest) -> PathBuf {
        self.root
            .join("images")
            .join(format!("{}.json", manifest.hex()))
    }

    pub fn record(&self, manifest: &Digest) -> Result<Option<ImageRecord>> {
        let p = self.record_path(manifest);
        match std::fs::read(&p) {
            Ok(d) => Ok(Some(serde_json::from_slice(&d).map_err(|e| {
                Error::invalid(p.display().to_string(), e.to_string())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", p, e)),
        }
    }

    /// Write an image record and point `names` at it.
    pub fn put_image(&self, rec: &ImageRecord, names: &[String]) -> Result<()> {
        let _l = self.meta_lock()?;
        let p = self.record_path(&rec.manifest_digest);
        let mut rec = rec.clone();
        rec.stored_at = now();
        fsutil::write_atomic(&p, &serde_json::to_vec_pretty(&rec).unwrap()).ctx("writing", &p)?;
        if !names.is_empty() {
            let mut n = self.names()?;
            for name in names {
                n.insert(name.clone(), rec.manifest_digest.clone());
            }
            self.write_names(&n)?;
        }
        Ok(())
    }

    pub fn tag(&self, manifest: &Digest, name: &str) -> Result<()> {
        let _l = self.meta_lock()?;
        let mut n = self.names()?;
        n.insert(name.to_string(), manifest.clone());
        self.write_names(&n)
    }

    /// All image records with their names.
    pub fn list(&self) -> Result<Vec<(ImageRecord, Vec<String>)>> {
        let names = self.names()?;
        let mut out = Vec::new();
        let dir = self.root.join("images");
        let rd = std::fs::read_dir(&dir).ctx("listing", &dir)?;
        for e in rd {
            let e = e.ctx("listing", &dir)?;
            let fname = e.file_name().to_string_lossy().into_owned();
            let Some(hex) = fname.strip_suffix(".json") else {
                continue;
            };
            let Ok(d) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            if let Some(r) = self.record(&d)? {
                let n: Vec<String> = names
                    .iter()
                    .filter(|(_, v)| **v == d)
                    .map(|(k, _)| k.clone())
                    .collect();
                out.push((r, n));
            }
        }
        out.sort_by(|a, b| b.0.stored_at.cmp(&a.0.stored_at).then(a.1.cmp(&b.1)));
        Ok(out)
    }

    /// Find an image by name (`registry/repo:tag`, normalised with `default_registry`),
    /// `name@digest`, full or short image ID (config digest), or manifest digest.
    pub fn resolve(&self, what: &str, default_registry: &str) -> Result<ImageRecord> {
        let names = self.names()?;
        if let Ok(r) = crate::reference::Reference::parse_with_default(what, default_registry) {
            if let Some(d) = &r.digest {
                if let Some(rec) = self.record(d)? {
                    return Ok(rec);
                }
            } else if let Some(n) = r.tagged_name() {
                if let Some(d) = names.get(&n) {
                    if let Some(rec) = self.record(d)? {
                        return Ok(rec);
                    }
                }
            }
        }
        let hex = what.strip_prefix("sha256:").unwrap_or(what);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<ImageRecord> = self
                .list()?
                .into_iter()
                .map(|(r, _)| r)
                .filter(|r| {
                    r.config_digest.hex().starts_with(hex)
                        || r.manifest_digest.hex().starts_with(hex)
                })
                .collect();
            // Several manifests (say an OCI one and a Docker one) of one config are one
            // image: its ID is the config's. The newest record serves (list's order).
            let one_image = matches
                .iter()
                .all(|r| r.config_digest == matches[0].config_digest);
            if let (Some(first), true) = (matches.first(), one_image) {
                return Ok(first.clone());
            }
            if matches.len() > 1 {
                return Err(Error::invalid(format!("image ID {what}"), "ambiguous"));
            }
        }
        Err(Error::ImageNotKnown(what.to_string()))
    }

    /// The names of the image whose config is `config`, over every manifest of it.
    pub fn image_names(&self, config: &Digest) -> Result<Vec<String>> {
        Ok(self.plan(config, None)?.names)
    }

    /// Whether [`Store::remove`] of `what` would delete the image (not only untag a name).
    pub fn removes_image(&self, what: &str, default_registry: &str) -> Result<bool> {
        let rec = self.resolve(what, default_registry)?;
        let plan = self.plan(&rec.config_digest, Some((what, default_registry)))?;
        Ok(!plan.untag_only())
    }

    /// The records and names of the image with config `config`, and the one of those names
    /// `what` is (when it is one).
    fn plan(&self, config: &Digest, what: Option<(&str, &str)>) -> Result<Removal> {
        let manifests: BTreeSet<Digest> = self
            .list()?
            .into_iter()
            .filter(|(r, _)| r.config_digest == *config)
            .map(|(r, _)| r.manifest_digest)
            .collect();
        let names: Vec<String> = self
            .names()?
            .into_iter()
            .filter(|(_, d)| manifests.contains(d))
            .map(|(n, _)| n)
            .collect();
        let by_name = what
            .and_then(|(w, reg)| crate::reference::Reference::parse_with_default(w, reg).ok())
            .and_then(|r| r.tagged_name())
            .filter(|n| names.contains(n));
        Ok(Removal {
            manifests,
            names,
            by_name,
        })
    }

    /// Remove a name; when `what` is an ID or the last name of an image, the image goes
    /// too — every manifest record of its config (unless other names still use it and
    /// `force` is false). Returns what was untagged/deleted. Storage is reclaimed by `gc`.
    pub fn remove(&self, what: &str, default_registry: &str, force: bool) -> Result<Vec<String>> {
        let rec = self.resolve(what, default_registry)?;
        let plan = self.plan(&rec.config_digest, Some((what, default_registry)))?;
        let _l = self.meta_lock()?;
        let mut names = self.names()?;
        let mut out = Vec::new();
        let mut drop_records = Vec::new();
        match &plan.by_name {
            Some(n) if plan.untag_only() => {
                // The image stays under its other names; a manifest record no name points
                // at any more goes with this one.
                if let Some(d) = names.remove(n) {
                    if !names.values().any(|v| *v == d) {
                        drop_records.push(d);
                    }
                }
                out.push(format!("Untagged: {n}"));
            }
            _ => {
                if plan.names.len() > 1 && !force {
                    return Err(Error::invalid(
                        format!("image {what}"),
                        format!(
                            "is referenced by several names ({}); remove by name or use --force",
                            plan.names.join(", ")
                        ),
                    ));
                }
                for n in &plan.names {
                    names.remove(n);
                    out.push(format!("Untagged: {n}"));
                }
                drop_records.extend(plan.manifests.iter().cloned());
                out.push(format!("Deleted: {}", rec.config_digest));
            }
        }
        self.write_names(&names)?;
        for d in drop_records {
            let p = self.record_path(&d);
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("removing", p, e))
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Remove image records without names (`all`: every record), then every layer and blob
    /// no remaining record uses, and stale temp files. Returns bytes-ish count of removed items.
    pub fn gc(&self, remove_untagged: bool, clean_tmp: bool) -> Result<GcReport> {
        let _g = self.gc_lock(true)?;
        let mut report = GcReport::default();
        let names = self.names()?;
        let used_manifests: BTreeSet<&Digest> = names.values().collect();
        let mut keep_layers = BTreeSet::new();
        let mut keep_blobs = BTreeSet::new();
        for (rec, _) in self.list()? {
            if remove_untagged && !used_manifests.contains(&rec.manifest_digest) {
                let p = self.record_path(&rec.manifest_digest);
                std::fs::remove_file(&p).ctx("removing", &p)?;
                report.images += 1;
                continue;
            }
            keep_blobs.insert(rec.manifest_digest.hex().to_string());
            keep_blobs.insert(rec.config_digest.hex().to_string());
            if let Some(i) = &rec.index_digest {
                keep_blobs.insert(i.hex().to_string());
            }
            for l in &rec.layers {
                keep_blobs.insert(l.digest.hex().to_string());
                keep_layers.insert(l.chain_id.hex().to_string());
            }
        }
        let ldir = self.root.join("layers");
        for e in std::fs::read_dir(&ldir).ctx("listing", &ldir)? {
            let e = e.ctx("listing", &ldir)?;
            let n = e.file_name().to_string_lossy().into_owned();
            if !keep_layers.contains(&n) {
                self.remove_layer_dir(&e.path())?;
                report.layers += 1;
            }
        }
        let bdir = self.root.join("blobs/sha256");
        for e in std::fs::read_dir(&bdir).ctx("listing", &bdir)? {
            let e = e.ctx("listing", &bdir)?;
            let n = e.file_name().to_string_lossy().into_owned();
            if !keep_blobs.contains(&n) {
                std::fs::remove_file(e.path()).ctx("removing", e.path())?;
                report.blobs += 1;
            }
        }
        if !clean_tmp {
            return Ok(report);
        }
        // temp files (incl. partial downloads): nobody pulls while we hold the gc lock
        let tdir = self.tmp_dir();
        for e in std::fs::read_dir(&tdir).ctx("listing", &tdir)? {
            let e = e.ctx("listing", &tdir)?;
            fsutil::remove_tree(&e.path()).ctx("removing", e.path())?;
        }
        Ok(report)
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct GcReport {
    pub images: u64,
    pub layers: u64,
    pub blobs: u64,
}

/// Write helper used by save/export.
pub fn copy_file_to(w: &mut dyn Write, p: &Path) -> Result<u64> {
    let mut f = File::open(p).ctx("opening", p)?;
    std::io::copy(&mut f, w).ctx("copying", p)
}

/// What removing an image (or one of its names) concerns: the manifest records of its
/// config, all their names, and the name asked for.
struct Removal {
    manifests: BTreeSet<Digest>,
    names: Vec<String>,
    by_name: Option<String>,
}

impl Removal {
    /// Removing by one name of several only untags it.
    fn untag_only(&self) -> bool {
        self.by_name.is_some() && self.names.len() > 1
    }
}
