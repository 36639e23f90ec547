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
