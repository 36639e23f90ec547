//! `save` / `load`: docker-archive and OCI-layout tarballs.
//!
//! `save` writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`, layers
//! as stored, i.e. compressed); the docker-archive format adds docker's `manifest.json`
//! pointing at the same blobs (as `docker save` does since docker 25), so one tarball is
//! readable as both. `load` accepts either, including classic docker archives with
//! uncompressed `<id>/layer.tar` files.

use crate::digest::{chain_ids, Digest};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::manifest::{self, Descriptor, Platform};
use crate::pull::{self, PullOptions};
use crate::registry::{MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST};
use crate::store::{ImageRecord, LayerRecord, Store};
use crate::tar;
use crate::unpack::{self, UnpackOptions, WhiteoutMode};
use std::io::{Read, Write};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    DockerArchive,
    OciArchive,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub fn save<W: Write>(
    store: &Store,
    rec: &ImageRecord,
    names: &[String],
    fmt: Format,
    w: W,
) -> Result<()> {
    let mut t = tar::Writer::new(w);
    let io = |e: std::io::Error| Error::io("writing archive", "-", e);
    t.file("oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(io)?;
    let mut blobs = vec![rec.config_digest.clone(), rec.manifest_digest.clone()];
    blobs.extend(rec.layers.iter().map(|l| l.digest.clone()));
    t.dir("blobs", 0o755).map_err(io)?;
    t.dir("blobs/sha256", 0o755).map_err(io)?;
    let mut seen = std::collections::BTreeSet::new();
    for d in &blobs {
        if !seen.insert(d.clone()) {
            continue;
        }
        let p = store.blob_path(d);
        let f = std::fs::File::open(&p).ctx("opening blob", &p)?;
        let len = f.metadata().ctx("stat", &p)?.len();
        let mut h = tar::Header::new(tar::Kind::File, &format!("blobs/sha256/{}", d.hex()));
        h.size = len;
        t.append(&h, &mut std::io::BufReader::new(f)).map_err(io)?;
    }
    let mdata = store.read_blob(&rec.manifest_digest)?;
    let mk = |name: Option<&String>| {
        let mut d = serde_json::json!({
            "mediaType": rec.manifest_media_type,
            "digest": rec.manifest_digest,
            "size": mdata.len(),
        });
        if let Some(n) = name {
            d["annotations"] = serde_json::json!({ REF_NAME: n, "io.containerd.image.name": n });
        }
        d
    };
    let manifests: Vec<serde_json::Value> = if names.is_empty() {
        vec![mk(None)]
    } else {
        names.iter().map(|n| mk(Some(n))).collect()
    };
    let index =
        serde_json::json!({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": manifests});
    t.file("index.json", 0o644, &serde_json::to_vec(&index).unwrap())
        .map_err(io)?;
    if fmt == Format::DockerArchive {
        let dm = serde_json::json!([{
            "Config": format!("blobs/sha256/{}", rec.config_digest.hex()),
            "RepoTags": names,
            "Layers": rec.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
        }]);
        t.file("manifest.json", 0o644, &serde_json::to_vec(&dm).unwrap())
            .map_err(io)?;
    }
    t.finish().map_err(io)?;
    Ok(())
}

/// Load every image of an archive. Returns (name, record) per image. `limits` bound both
/// the archive's extraction and each layer's unpack, as they bound a pull's.
pub fn load<R: Read>(
    store: &Store,
    r: R,
    limits: unpack::UnpackLimits,
) -> Result<Vec<(Option<String>, ImageRecord)>> {
    let _gc = store.gc_lock(false)?;
    let tmp = store.tmp_dir().join(format!("load-{}", std::process::id()));
    fsutil::remove_tree(&tmp).ctx("removing", &tmp)?;
    std::fs::create_dir_all(&tmp).ctx("creating", &tmp)?;
    let res = load_inner(store, r, &tmp, limits);
    let _ = fsutil::remove_tree(&tmp);
    res
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, rel: &str) -> Result<Option<T>> {
    let p = dir.join(rel);
    match std::fs::read(&p) {
        Ok(d) => {
            Ok(Some(serde_json::from_slice(&d).map_err(|e| {
                Error::invalid(rel.to_string(), e.to_string())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", p, e)),
    }
}

/// Open a member of the extracted archive safely (in-root resolution).
fn open_member(dir: &Path, rel: &str) -> Result<std::fs::File> {
    let root = fsutil::open_dir(dir).ctx("opening", dir)?;
    let clean = unpack::normalize(rel.as_bytes())
        .map_err(|e| Error::invalid(format!("archive member {rel:?}"), e))?;
    use std::os::fd::AsFd;
    let fd = fsutil::open_in_root(root.as_fd(), &clean, libc::O_RDONLY)
        .ctx("opening archive member", dir.join(rel))?;
    Ok(std::fs::File::from(fd))
}

fn load_inner<R: Read>(
    store: &Store,
    mut r: R,
    tmp: &Path,
    limits: unpack::UnpackLimits,
) -> Result<Vec<(Option<String>, ImageRecord)>> {
    // Extract (safely: same unpacker as layers, no ownership/devices).
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Apply,
        chown: false,
        devices: false,
        limits,
    };
    unpack::unpack(&mut r, tmp, &opts, "archive")?;
    let mut out = Vec::new();
    #[derive(serde::Deserialize)]
    struct DockerEntry {
        #[serde(rename = "Config")]
        config: String,
        #[serde(rename = "RepoTags", default)]
        repo_tags: Option<Vec<String>>,
        #[serde(rename = "Layers")]
        layers: Vec<String>,
    }
    if let Some(entries) = read_json::<Vec<DockerEntry>>(tmp, "manifest.json")? {
        for e in entries {
            let mut cf = open_member(tmp, &e.config)?;
            let mut config = Vec::new();
            cf.read_to_end(&mut config).ctx("reading", &e.config)?;
            let cfg_digest = store.write_blob(&config, None)?;
            let mut layers = Vec::new();
            for l in &e.layers {
                let mut f = open_member(tmp, l)?;
                let mut hr = crate::digest::HashingReader::new(&mut f);
                let mut head = [0u8; 4];
                let n = hr.read(&mut head).ctx("reading", l)?;
                std::io::copy(&mut hr, &mut std::io::sink()).ctx("reading", l)?;
                let (d, size, _) = hr.finish();
                let mt = if head[..n].starts_with(&[0x1f, 0x8b]) {
                    "application/vnd.docker.image.rootfs.diff.tar.gzip"
                } else if head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                    "application/vnd.oci.image.layer.v1.tar+zstd"
                } else {
                    "application/vnd.docker.image.rootfs.diff.tar"
                };
                let mut f = open_member(tmp, l)?;
                store.ingest_blob(&mut f, &d, Some(size))?;
                layers.push(Descriptor {
                    media_type: mt.into(),
                    digest: d,
                    size,
                    platform: None,
                    urls: None,
                    annotations: None,
                });
            }
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MT_DOCKER_MANIFEST,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cfg_digest, "size": config.len()},
                "layers": layers,
            });
            let mdata = serde_json::to_vec(&manifest).unwrap();
            let names = e.repo_tags.unwrap_or_default();
            let rec = import(store, &mdata, MT_DOCKER_MANIFEST, None, &names, limits)?;
            out.push((names.first().cloned(), rec));
        }
        return Ok(out);
    }
    let index: manifest::Index = read_json(tmp, "index.json")?
        .ok_or_else(|| Error::invalid("archive", "neither manifest.json nor index.json found"))?;
    // OCI layout: copy every blob in (verified), then import each manifest.
    let blobs = tmp.join("blobs/sha256");
    if let Ok(rd) = std::fs::read_dir(&blobs) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(d) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            let mut f = open_member(tmp, &format!("blobs/sha256/{name}"))?;
            store.ingest_blob(&mut f, &d, None)?;
        }
    }
    for d in &index.manifests {
        let name = d
            .annotations
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .cloned();
        let (mdesc, index_digest) = if manifest::is_index(&d.media_type) {
            let idx = manifest::parse_index(&store.read_blob(&d.digest)?)?;
            (
                manifest::select_platform(&idx, &Platform::host())?.clone(),
                Some(d.digest.clone()),
            )
        } else {
            (d.clone(), None)
        };
        let mdata = store.read_blob(&mdesc.digest)?;
        let mt = manifest::media_type_of(&mdata, &mdesc.media_type);
        // a bare tag as ref name (skopeo's oci: transport) is not a full image name
        let names: Vec<String> = name
            .iter()
            .filter(|n| n.contains('/') || n.contains(':'))
            .filter_map(|n| {
                crate::reference::Reference::parse(n)
                    .ok()
                    .and_then(|r| r.tagged_name())
            })
            .collect();
        let rec = import(store, &mdata, &mt, index_digest, &names, limits)?;
        out.push((names.first().cloned(), rec));
    }
    Ok(out)
}

/// Register an image whose blobs are all in the store: unpack its layers (within
/// `limits`) and record it.
pub fn import(
    store: &Store,
    mdata: &[u8],
    mt: &str,
    index_digest: Option<Digest>,
    names: &[String],
    limits: unpack::UnpackLimits,
) -> Result<ImageRecord> {
    let mdigest = store.write_blob(mdata, None)?;
    let m = manifest::parse_manifest(mdata)?;
    let cfg = pull::parse_config(&store.read_blob(&m.config.digest)?)?;
    let diff_ids = pull::diff_ids_of(&cfg)?;
    if diff_ids.len() != m.layers.len() {
        return Err(Error::invalid(
            "image",
            "layer count differs from the config's diff_ids",
        ));
    }
    let chains = chain_ids(&diff_ids);
    let opts = PullOptions {
        limits,
        ..PullOptions::default()
    };
    let mut layers = Vec::new();
    for ((l, di), c) in m.layers.iter().zip(&diff_ids).zip(&chains) {
        pull::fetch_layer(store, None, "", l, di, c, &opts)?;
        layers.push(LayerRecord {
            digest: l.digest.clone(),
            media_type: l.media_type.clone(),
            size: l.size,
            diff_id: di.clone(),
            chain_id: c.clone(),
        });
    }
    let rec = ImageRecord {
        manifest_digest: mdigest,
        manifest_media_type: if mt.is_empty() {
            MT_OCI_MANIFEST.into()
        } else {
            mt.into()
        },
        index_digest,
        config_digest: m.config.digest.clone(),
        platform: Some(Platform {
            architecture: cfg.architecture().to_string(),
            os: cfg.os().to_string(),
            variant: cfg.variant().clone(),
            os_version: None,
        }),
        layers,
        created: cfg.created().clone(),
        stored_at: 0,
    };
    store.put_image(&rec, names)?;
    Ok(rec)
}
