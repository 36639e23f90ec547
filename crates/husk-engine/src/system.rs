//! `husk system df` and `husk system prune`: the store's disk use as docker reports it, and
//! removing at once what no container needs.
//!
//! Images' sizes count each layer once however many images share it; an image is active
//! while a container (of any state) was made from it. A container's size is what it wrote:
//! its overlay upper dir (or its flattened copy). A volume's size is its data directory's
//! (a tmpfs volume has none on disk); it is active while a container names it. The build
//! cache is its entries' layers that no image has, plus the `RUN --mount=type=cache`
//! directories: never active, all reclaimable, as docker counts dangling build cache.

use crate::engine::Engine;
use crate::error::Result;
use crate::images::layer_size;
use crate::os::IoContext;
use crate::record::list;
use crate::views::human_size;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One row of `docker system df` (its `--format` field names).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsageRow {
    /// Images, Containers, Local Volumes, Build Cache.
    #[serde(rename = "Type")]
    pub kind: String,
    pub total_count: usize,
    pub active: usize,
    /// "16.43MB".
    pub size: String,
    /// "11.63MB (70%)".
    pub reclaimable: String,
    /// The same in bytes, for programs.
    #[serde(skip)]
    pub size_bytes: u64,
    #[serde(skip)]
    pub reclaimable_bytes: u64,
}

/// What `system prune` removed.
#[derive(Clone, Debug, Default)]
pub struct PruneReport {
    pub containers: Vec<String>,
    /// "untagged: NAME" and "deleted: sha256:…" lines, as docker prints them.
    pub images: Vec<String>,
    /// Names of the volumes removed (`--volumes`).
    pub volumes: Vec<String>,
    /// How many build cache entries went.
    pub build_cache: usize,
    /// Bytes: the disk use before less after.
    pub reclaimed: u64,
}

fn row(kind: &str, total: usize, active: usize, size: u64, reclaimable: u64) -> DiskUsageRow {
    let pct = match size {
        0 => 0,
        s => (reclaimable as f64 * 100.0 / s as f64).round() as u64,
    };
    DiskUsageRow {
        kind: kind.into(),
        total_count: total,
        active,
        size: human_size(size),
        reclaimable: format!("{} ({pct}%)", human_size(reclaimable)),
        size_bytes: size,
        reclaimable_bytes: reclaimable,
    }
}

/// Bytes of the regular files below `dir` (links and directories not counted, nothing
/// followed).
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

impl Engine {
    /// `system df`: images, containers, local volumes, build cache.
    pub fn disk_usage(&self) -> Result<Vec<DiskUsageRow>> {
        let store = self.store()?;
        let containers = list(&self.root);
        let used: BTreeSet<String> = containers.iter().map(|r| r.meta.image_id.clone()).collect();
        // Each layer once, by chain id: its size, and whether an active image has it.
        let mut layers: BTreeMap<String, (u64, bool)> = BTreeMap::new();
        let images = store.list()?;
        let mut active_images = 0;
        for (rec, _) in &images {
            let active = used.contains(rec.config_digest.hex());
            active_images += usize::from(active);
            for l in &rec.layers {
                let e = layers
                    .entry(l.chain_id.to_string())
                    .or_insert_with(|| (layer_size(&store, l), false));
                e.1 |= active;
            }
        }
        let size: u64 = layers.values().map(|l| l.0).sum();
        let unused: u64 = layers.values().filter(|l| !l.1).map(|l| l.0).sum();
        let (mut c_size, mut c_idle, mut running) = (0, 0, 0);
        for r in &containers {
            let written = dir_size(&r.dir.join("upper")) + dir_size(&r.dir.join("rootfs"));
            c_size += written;
            match r.status() {
                "running" | "paused" => running += 1,
                _ => c_idle += written,
            }
        }
        let volumes = self.volume_usage();
        let v_active = volumes.iter().filter(|v| v.0).count();
        let v_size: u64 = volumes.iter().map(|v| v.1).sum();
        let v_idle: u64 = volumes.iter().filter(|v| !v.0).map(|v| v.1).sum();
        let cache = crate::build::cache::entries(&store);
        let mut cache_layers: BTreeMap<String, u64> = BTreeMap::new();
        for l in cache.iter().flat_map(|s| &s.layers) {
            if !layers.contains_key(&l.chain_id.to_string()) {
                cache_layers
                    .entry(l.chain_id.to_string())
                    .or_insert_with(|| layer_size(&store, l));
            }
        }
        let cache_size =
            cache_layers.values().sum::<u64>() + dir_size(&crate::build::cache::mounts_dir(&store));
        Ok(vec![
            row("Images", images.len(), active_images, size, unused),
            row("Containers", containers.len(), running, c_size, c_idle),
            row("Local Volumes", volumes.len(), v_active, v_size, v_idle),
            row("Build Cache", cache.len(), 0, cache_size, cache_size),
        ])
    }

    /// `system prune`: every stopped container, then images without a name (with `all`:
    /// every image no container uses), the build cache, then unused layers and blobs (the
    /// cache's among them); with `volumes`, every volume no container uses (after the
    /// containers went: theirs are unused then).
    pub fn system_prune(&self, all: bool, volumes: bool) -> Result<PruneReport> {
        let before: u64 = self.disk_usage()?.iter().map(|r| r.size_bytes).sum();
        let mut report = PruneReport::default();
        self.prune(&mut |id| report.containers.push(id.to_string()))?;
        if all {
            let used: BTreeSet<String> = list(&self.root)
                .iter()
                .map(|r| r.meta.image_id.clone())
                .collect();
            for i in self.images()? {
                if used.contains(&i.id) {
                    continue;
                }
                // By id: every name goes with the image.
                for l in self.remove_image(&i.id, false)? {
                    report.images.push(match l.split_once(": ") {
                        Some((what, rest)) => format!("{}: {rest}", what.to_lowercase()),
                        None => l,
                    });
                }
            }
        }
        let store = self.store()?;
        report.build_cache =
            crate::build::cache::clear(&store).ctx("removing the build cache in", store.root())?;
        self.prune_images(true)?;
        if volumes {
            report.volumes = self.volume_prune()?.0;
        }
        let after: u64 = self.disk_usage()?.iter().map(|r| r.size_bytes).sum();
        report.reclaimed = before.saturating_sub(after);
        Ok(report)
    }
}
