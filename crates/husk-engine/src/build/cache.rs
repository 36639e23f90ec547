//! The build cache: for each step, a key — the parent step's key, the instruction as
//! expanded, the ARGs in scope, and for COPY/ADD the content digest of the sources — names
//! the image state after the step (its layers and config). A rebuild whose key is known
//! reuses that state and makes no layer.
//!
//! Entries live in STORE/build-cache/KEYHEX.json, written whole (temp + rename) only after
//! the step's layer is committed to the store, so a build killed half-way leaves only
//! complete entries. An entry whose layers the store no longer has is a miss.

use husk_image::digest::Digest;
use husk_image::store::{LayerRecord, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;

/// The state of a stage after a step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub layers: Vec<LayerRecord>,
    /// The full image config (architecture, os, config, rootfs, history).
    pub config: Value,
}

/// A step's key from its parent's and what the step is.
pub fn key(parent: &Digest, parts: &[&str]) -> Digest {
    let mut h = Sha256::new();
    h.update(parent.to_string().as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    Digest::from_sha256_bytes(&h.finalize())
}

fn dir(store: &Store) -> PathBuf {
    store.root().join("build-cache")
}

/// Where `RUN --mount=type=cache` keeps its directories between builds.
pub fn mounts_dir(store: &Store) -> PathBuf {
    store.root().join("build-cache-mounts")
}

/// Every readable entry (complete or not: `system df` counts what is on disk).
pub fn entries(store: &Store) -> Vec<State> {
    let Ok(rd) = std::fs::read_dir(dir(store)) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|d| serde_json::from_slice(&d).ok())
        .collect()
}

/// `system prune`: forget every entry and the cache mounts' directories. Returns how
/// many entries went. The layers that only entries used are then unused, and go with
/// the store's next removal of unused layers.
pub fn clear(store: &Store) -> std::io::Result<usize> {
    let n = std::fs::read_dir(dir(store)).map_or(0, |rd| rd.count());
    for d in [dir(store), mounts_dir(store)] {
        match husk_image::fsutil::remove_tree(&d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(n)
}

/// The state cached under `key`, if complete and its layers are still in the store.
pub fn get(store: &Store, key: &Digest) -> Option<State> {
    let data = std::fs::read(dir(store).join(format!("{}.json", key.hex()))).ok()?;
    let s: State = serde_json::from_slice(&data).ok()?;
    s.layers
        .iter()
        .all(|l| store.has_layer(&l.chain_id) && store.has_blob(&l.digest))
        .then_some(s)
}

/// Remember `state` under `key` (errors only cost a later cache miss).
pub fn put(store: &Store, key: &Digest, state: &State) {
    let d = dir(store);
    let _ = std::fs::create_dir_all(&d);
    let data = serde_json::to_vec(state).expect("serializable");
    let _ = husk_image::fsutil::write_atomic(&d.join(format!("{}.json", key.hex())), &data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_everything() {
        let p = Digest::of(b"parent");
        let a = key(&p, &["RUN echo a"]);
        assert_eq!(a, key(&p, &["RUN echo a"]));
        assert_ne!(a, key(&p, &["RUN echo b"]));
        assert_ne!(a, key(&Digest::of(b"other"), &["RUN echo a"]));
        // Boundaries between parts count.
        assert_ne!(key(&p, &["ab", "c"]), key(&p, &["a", "bc"]));
    }
}
