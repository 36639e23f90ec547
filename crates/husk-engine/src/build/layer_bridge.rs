//! The two places a build hands over to the image side: a step's upper dir becomes a
//! layer ([`husk_image::layer`], the same code as `husk commit`), and the final state
//! becomes an image in the store (config blob, manifest, record, names).

use super::cache::State;
use husk_image::digest::Digest;
use husk_image::store::{LayerRecord, Store};

/// The upper dir `upper` as a layer on top of `parent`, committed to the store: the blob
/// by [`husk_image::layer::store_layer`], and the upper dir itself (moved) as the layer's
/// directory — it already is in the store's layer-dir form (overlay whiteouts and opaque
/// xattrs), so the next step's overlay uses it without unpacking the blob again. None: the
/// step changed nothing (no layer, an `empty_layer` history entry).
pub fn commit_upper(
    store: &Store,
    upper: &std::path::Path,
    parent: &[LayerRecord],
    zstd: bool,
    timestamp: Option<i64>,
) -> crate::Result<Option<LayerRecord>> {
    use husk_image::layer::{store_layer, LayerOptions};
    use husk_image::manifest::Compression;
    let l = store_layer(
        store,
        upper,
        &LayerOptions {
            compression: if zstd {
                Compression::Zstd
            } else {
                Compression::Gzip
            },
            timestamp,
            ..Default::default()
        },
    )?;
    if l.is_empty() {
        return Ok(None);
    }
    let mut diff_ids: Vec<Digest> = parent.iter().map(|p| p.diff_id.clone()).collect();
    diff_ids.push(l.diff_id.clone());
    let chain_id = husk_image::digest::chain_ids(&diff_ids)
        .pop()
        .expect("one diff_id at least");
    if !store.has_layer(&chain_id) {
        let (mut bytes, mut entries) = (0u64, 0u64);
        let prefix = if husk_image::fsutil::is_root() {
            "trusted."
        } else {
            "user."
        };
        husk_image::layer::walk_upper(upper, &[], prefix, &mut |e| {
            entries += 1;
            if e.stat.st_mode & libc::S_IFMT == libc::S_IFREG {
                bytes += e.stat.st_size as u64;
            }
            Ok(())
        })?;
        let tmp = upper.with_extension("layer");
        std::fs::create_dir_all(&tmp).map_err(|e| crate::os::IoError {
            op: "creating",
            path: tmp.clone(),
            source: e,
        })?;
        std::fs::rename(upper, tmp.join("diff")).map_err(|e| crate::os::IoError {
            op: "moving the layer",
            path: upper.to_path_buf(),
            source: e,
        })?;
        store.commit_layer(
            &tmp,
            &husk_image::store::LayerMeta {
                chain_id: chain_id.clone(),
                diff_id: l.diff_id.clone(),
                digest: l.digest.clone(),
                unpacked_size: bytes,
                entries,
            },
        )?;
    }
    Ok(Some(LayerRecord {
        digest: l.digest,
        media_type: l.media_type,
        size: l.size,
        diff_id: l.diff_id,
        chain_id,
    }))
}

/// Store the image `state` describes, named `names`; its id (the config digest).
pub fn write_image(
    store: &Store,
    state: &State,
    names: &[String],
    limits: husk_image::unpack::UnpackLimits,
) -> crate::Result<Digest> {
    let mut cfg = state.config.clone();
    cfg["rootfs"] = serde_json::json!({
        "type": "layers",
        "diff_ids": state.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
    });
    let cfg = serde_json::to_vec(&cfg).expect("serializable");
    let _gc = store.gc_lock(false)?;
    let layers = crate::commit::layer_descriptors(&state.layers)?;
    let manifest = crate::commit::oci_manifest(store, &cfg, layers)?;
    let rec = husk_image::archive::import(
        store,
        &manifest,
        husk_image::registry::MT_OCI_MANIFEST,
        None,
        names,
        limits,
    )?;
    Ok(rec.config_digest)
}
