//! `push`: upload an image's blobs (skipping those the registry has) and its manifest.

use crate::error::Result;
use crate::reference::Reference;
use crate::registry::{Body, ClientOptions, Registry};
use crate::store::{ImageRecord, Store};

pub fn push(
    store: &Store,
    rec: &ImageRecord,
    dest: &Reference,
    opts: &ClientOptions,
) -> Result<()> {
    let reg = Registry::new(&dest.registry, opts)?;
    let repo = &dest.repository;
    for l in &rec.layers {
        if !reg.blob_exists(repo, &l.digest)? {
            let p = store.blob_path(&l.digest);
            reg.upload_blob(repo, &l.digest, Body::File(&p))?;
        }
    }
    if !reg.blob_exists(repo, &rec.config_digest)? {
        let c = store.read_blob(&rec.config_digest)?;
        reg.upload_blob(repo, &rec.config_digest, Body::Bytes(&c))?;
    }
    let m = store.read_blob(&rec.manifest_digest)?;
    let reference = dest
        .tag
        .clone()
        .unwrap_or_else(|| rec.manifest_digest.to_string());
    reg.put_manifest(repo, &reference, &rec.manifest_media_type, &m)
}
