//! Store integrity: re-hash blobs, check that the layers images use are unpacked, and
//! (with `repair`) remove what is corrupt so that the next pull fetches it again.
//!
//! What is not checked: the content of unpacked layer directories (it was verified
//! against the layer's diff_id when unpacked; re-hashing it would mean re-tarring it), and
//! files under `tmp/` (partial downloads and unpacks, which a pull resumes or replaces).

use crate::digest::{Digest, HashingReader};
use crate::error::{IoContext, Result};
use crate::store::{ImageRecord, LayerMeta, Store};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One thing wrong in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// A blob whose content does not hash to its name.
    CorruptBlob { digest: Digest },
    /// A blob an image uses is not in the store.
    MissingBlob { digest: Digest, image: Digest },
    /// A layer an image uses is not (completely) unpacked.
    MissingLayer { chain_id: Digest, image: Digest },
    /// A layer directory without its metadata or content, that no image uses.
    IncompleteLayer { dir: PathBuf },
    /// An image record that cannot be read.
    BadRecord { path: PathBuf, reason: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Problem::CorruptBlob { digest } => write!(f, "blob {digest}: content does not match"),
            Problem::MissingBlob { digest, image } => {
                write!(f, "blob {digest}: missing (image {image})")
            }
            Problem::MissingLayer { chain_id, image } => {
                write!(f, "layer {chain_id}: not unpacked (image {image})")
            }
            Problem::IncompleteLayer { dir } => {
                write!(f, "layer dir {}: incomplete", dir.display())
            }
            Problem::BadRecord { path, reason } => {
                write!(f, "image record {}: {reason}", path.display())
            }
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    pub blobs_checked: u64,
    pub layers_checked: u64,
    pub problems: Vec<Problem>,
    /// What `repair` removed (store paths).
    pub removed: Vec<PathBuf>,
}

/// The sha256 of a file's content.
fn hash_file(p: &Path) -> Result<Digest> {
    let f = File::open(p).ctx("opening", p)?;
    let mut hr = HashingReader::new(f);
    std::io::copy(&mut hr, &mut std::io::sink()).ctx("reading", p)?;
    Ok(hr.finish().0)
}

fn hex_name(name: &str) -> Option<Digest> {
    if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("sha256:{name}").parse().ok()
    } else {
        None
    }
}

/// A layer directory is complete when it has its metadata (for its chain id) and `diff/`.
fn layer_complete(store: &Store, chain: &Digest) -> bool {
    let root = store.layer_root(chain);
    let meta = std::fs::read(root.join("layer.json"))
        .ok()
        .and_then(|d| serde_json::from_slice::<LayerMeta>(&d).ok());
    meta.is_some_and(|m| m.chain_id == *chain) && store.layer_dir(chain).is_dir()
}

impl Store {
    /// Check the whole store (`image` None) or one image's blobs and layers. Holds the
    /// store's exclusive lock, so it waits for pulls in progress and they for it.
    pub fn verify(&self, image: Option<&ImageRecord>, repair: bool) -> Result<VerifyReport> {
        let _g = self.gc_lock(true)?;
        let mut rep = VerifyReport::default();
        let records = match image {
            Some(r) => vec![r.clone()],
            None => self.all_records(&mut rep)?,
        };
        // blob -> the image that uses it; layer blob -> the chain ids unpacked from it
        let mut used_blobs: BTreeMap<Digest, Digest> = BTreeMap::new();
        let mut chains_of_blob: BTreeMap<Digest, BTreeSet<Digest>> = BTreeMap::new();
        let mut used_layers: BTreeMap<Digest, Digest> = BTreeMap::new();
        for r in &records {
            let img = r.manifest_digest.clone();
            for d in [Some(&r.manifest_digest), Some(&r.config_digest)]
                .into_iter()
                .chain([r.index_digest.as_ref()])
                .flatten()
            {
                used_blobs.entry(d.clone()).or_insert_with(|| img.clone());
            }
            for l in &r.layers {
                used_blobs
                    .entry(l.digest.clone())
                    .or_insert_with(|| img.clone());
                chains_of_blob
                    .entry(l.digest.clone())
                    .or_default()
                    .insert(l.chain_id.clone());
                used_layers
                    .entry(l.chain_id.clone())
                    .or_insert_with(|| img.clone());
            }
        }

        // Blobs: every one in the store, or the image's.
        let to_hash: Vec<Digest> = match image {
            Some(_) => used_blobs.keys().cloned().collect(),
            None => self.blob_names()?,
        };
        let mut bad_blobs = BTreeSet::new();
        for d in &to_hash {
            let p = self.blob_path(d);
            if !p.is_file() {
                continue; // reported as missing below when an image uses it
            }
            rep.blobs_checked += 1;
            if hash_file(&p)? != *d {
                rep.problems
                    .push(Problem::CorruptBlob { digest: d.clone() });
                bad_blobs.insert(d.clone());
            }
        }
        for (d, img) in &used_blobs {
            if !self.has_blob(d) {
                rep.problems.push(Problem::MissingBlob {
                    digest: d.clone(),
                    image: img.clone(),
                });
                bad_blobs.insert(d.clone());
            }
        }

        // Layers the images use, then (whole store) directories no image uses.
        let mut bad_layers = BTreeSet::new();
        for (chain, img) in &used_layers {
            rep.layers_checked += 1;
            if !layer_complete(self, chain) {
                rep.problems.push(Problem::MissingLayer {
                    chain_id: chain.clone(),
                    image: img.clone(),
                });
                bad_layers.insert(self.layer_root(chain));
            }
        }
        if image.is_none() {
            let ldir = self.root().join("layers");
            for e in std::fs::read_dir(&ldir).ctx("listing", &ldir)? {
                let e = e.ctx("listing", &ldir)?;
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(chain) = hex_name(&name) else {
                    continue;
                };
                if used_layers.contains_key(&chain) {
                    continue;
                }
                rep.layers_checked += 1;
                if !layer_complete(self, &chain) {
                    rep.problems
                        .push(Problem::IncompleteLayer { dir: e.path() });
                    bad_layers.insert(e.path());
                }
            }
        }

        if repair {
            self.repair(
                &rep.problems,
                &bad_blobs,
                &chains_of_blob,
                bad_layers,
                &mut rep.removed,
            )?;
        }
        Ok(rep)
    }

    /// Remove what is corrupt: bad blobs, the layers unpacked from a bad layer blob (so the
    /// next pull fetches both again), incomplete layers and unreadable records.
    fn repair(
        &self,
        problems: &[Problem],
        bad_blobs: &BTreeSet<Digest>,
        chains_of_blob: &BTreeMap<Digest, BTreeSet<Digest>>,
        mut bad_layers: BTreeSet<PathBuf>,
        removed: &mut Vec<PathBuf>,
    ) -> Result<()> {
        for d in bad_blobs {
            let p = self.blob_path(d);
            if p.is_file() {
                std::fs::remove_file(&p).ctx("removing", &p)?;
                removed.push(p);
            }
            for c in chains_of_blob.get(d).into_iter().flatten() {
                bad_layers.insert(self.layer_root(c));
            }
        }
        for dir in bad_layers {
            if dir.exists() {
                self.remove_layer_dir(&dir)?;
                removed.push(dir);
            }
        }
        for p in problems {
            if let Problem::BadRecord { path, .. } = p {
                std::fs::remove_file(path).ctx("removing", path)?;
                removed.push(path.clone());
            }
        }
        Ok(())
    }

    /// Every image record, the unreadable ones reported.
    fn all_records(&self, rep: &mut VerifyReport) -> Result<Vec<ImageRecord>> {
        let dir = self.root().join("images");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).ctx("listing", &dir)? {
            let e = e.ctx("listing", &dir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(d) = name.strip_suffix(".json").and_then(hex_name) else {
                continue; // a temp file of an interrupted write_atomic
            };
            match self.record(&d) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(err) => rep.problems.push(Problem::BadRecord {
                    path: e.path(),
                    reason: err.to_string(),
                }),
            }
        }
        Ok(out)
    }

    /// The blobs in the store, by name (temp files of interrupted writes left out).
    fn blob_names(&self) -> Result<Vec<Digest>> {
        let dir = self.root().join("blobs/sha256");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).ctx("listing", &dir)? {
            let e = e.ctx("listing", &dir)?;
            if let Some(d) = hex_name(&e.file_name().to_string_lossy()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }
}
