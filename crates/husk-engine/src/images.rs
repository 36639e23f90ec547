//! The image operations of the engine over husk-image's store and registry client: pull,
//! push, list, tag, remove (refused while a container uses the image), inspect, prune,
//! load/save archives, login/logout, and the views of an image the engine itself uses.

use crate::engine::{Engine, RegistryOptions};
use crate::error::{During, ImageError, Result};
use crate::record::check_image_unused;
use crate::rootfs::layer_dirs;
use husk_image::auth::{self, Credentials};
use husk_image::config::{Overrides, ProcessValues, RootfsView};
use husk_image::manifest::Platform;
use husk_image::pull::{self, Progress, PullOptions};
use husk_image::store::{GcReport, ImageRecord, LayerMeta, Store};
use husk_image::verify::VerifyReport;
use husk_image::{Digest, Reference};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One image as `images` lists it.
#[derive(Clone, Debug)]
pub struct ImageSummary {
    /// The config digest's hex: the image id.
    pub id: String,
    /// Its tags (REPOSITORY:TAG).
    pub names: Vec<String>,
    pub digest: Digest,
    pub created: Option<String>,
    /// Unpacked size of its layers.
    pub size: u64,
    pub compressed_size: u64,
    pub platform: Option<String>,
}

/// How to pull.
#[derive(Clone)]
pub struct PullRequest {
    /// os/arch[/variant] from a multi-platform image.
    pub platform: Option<String>,
    /// Layers downloaded at once (the settings' max_concurrent_downloads wins).
    pub jobs: usize,
    pub registry: RegistryOptions,
    pub progress: Arc<dyn Progress>,
}

impl Default for PullRequest {
    fn default() -> PullRequest {
        PullRequest {
            platform: None,
            jobs: 3,
            registry: RegistryOptions::default(),
            progress: Arc::new(pull::NoProgress),
        }
    }
}

/// Archive formats of `save`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    DockerArchive,
    OciArchive,
}

impl ArchiveFormat {
    pub fn parse(s: &str) -> Result<ArchiveFormat, ImageError> {
        match s {
            "docker-archive" => Ok(ArchiveFormat::DockerArchive),
            "oci-archive" | "oci" => Ok(ArchiveFormat::OciArchive),
            f => Err(ImageError::Format(f.to_string())),
        }
    }
}

/// The unpacked size of the image's layers (as recorded when they were unpacked).
pub(crate) fn layer_sizes(store: &Store, rec: &ImageRecord) -> u64 {
    rec.layers.iter().map(|l| layer_size(store, l)).sum()
}

/// The unpacked size of one layer (0 when unknown).
pub(crate) fn layer_size(store: &Store, l: &husk_image::store::LayerRecord) -> u64 {
    std::fs::read(store.layer_root(&l.chain_id).join("layer.json"))
        .ok()
        .and_then(|d| serde_json::from_slice::<LayerMeta>(&d).ok())
        .map_or(0, |m| m.unpacked_size)
}

/// The tags of the image `rec`: of every manifest of its config.
pub(crate) fn names_of(store: &Store, rec: &ImageRecord) -> Result<Vec<String>> {
    Ok(store.image_names(&rec.config_digest)?)
}

impl Engine {
    /// The image named by `image` (reference, id or id prefix) in the store.
    pub fn resolve_image(&self, image: &str) -> Result<ImageRecord> {
        Ok(self.store()?.resolve(image, &self.default_registry)?)
    }

    /// Pull `reference` into the store.
    pub fn pull(&self, reference: &str, o: &PullRequest) -> Result<ImageRecord> {
        let r = self.parse_ref(reference)?;
        let platform = o
            .platform
            .as_deref()
            .map(Platform::parse)
            .transpose()
            .during("pull", r.to_string())?;
        let store = self.store()?;
        let opts = PullOptions {
            platform,
            client: self.client(&r.registry, &o.registry)?,
            parallel: self
                .settings
                .max_concurrent_downloads
                .unwrap_or(o.jobs)
                .max(1),
            progress: o.progress.clone(),
            limits: self.settings.unpack_limits(),
            ..Default::default()
        };
        let rec = pull::pull(&store, &r, &opts).during("pull", r.to_string())?;
        let name = r.to_string();
        crate::events::emit(&self.root, "image", "pull", &name, &[("name", &name)]);
        Ok(rec)
    }

    /// The image from the store, pulled first when it is not there.
    /// `progress` hears docker's "Unable to find image" line and the pull's progress.
    pub(crate) fn image_or_pull(
        &self,
        store: &Store,
        image: &str,
        reg: &RegistryOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<ImageRecord> {
        match store.resolve(image, &self.default_registry) {
            Ok(r) => Ok(r),
            // Only what is not there is pulled (an ambiguous ID is not a reference).
            Err(husk_image::Error::ImageNotKnown(_)) => {
                progress.message(&format!("Unable to find image '{image}' locally"));
                self.pull(
                    image,
                    &PullRequest {
                        registry: reg.clone(),
                        progress,
                        ..Default::default()
                    },
                )
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Push `image` to `dest` (default: the image's own name); the reference pushed to.
    pub fn push(
        &self,
        image: &str,
        dest: Option<&str>,
        reg: &RegistryOptions,
    ) -> Result<Reference> {
        let store = self.store()?;
        let rec = store
            .resolve(image, &self.default_registry)
            .during("push", image)?;
        let d = self.parse_ref(dest.unwrap_or(image))?;
        let opts = self.client(&d.registry, reg)?;
        husk_image::push::push(&store, &rec, &d, &opts).during("push", d.to_string())?;
        Ok(d)
    }

    /// Every image of the store.
    pub fn images(&self) -> Result<Vec<ImageSummary>> {
        let store = self.store()?;
        let imgs = store.list().map_err(ImageError::List)?;
        Ok(imgs
            .into_iter()
            .map(|(r, names)| ImageSummary {
                id: r.config_digest.hex().to_string(),
                size: layer_sizes(&store, &r),
                compressed_size: r.compressed_size(),
                platform: r.platform.as_ref().map(|p| p.to_string()),
                digest: r.manifest_digest.clone(),
                created: r.created.clone(),
                names,
            })
            .collect())
    }

    /// Remove the image (a tag, or with an id the image and its tags), refused while a
    /// container uses it (with `force`: while a running one does); what was untagged and
    /// deleted, one line each. Its layers stay until [`Engine::remove_unused_layers`].
    pub fn remove_image(&self, image: &str, force: bool) -> Result<Vec<String>> {
        let store = self.store()?;
        let rec = store.resolve(image, &self.default_registry)?;
        // Untagging one name of several leaves the image to its containers (as podman).
        if store.removes_image(image, &self.default_registry)? {
            check_image_unused(&self.root, rec.config_digest.hex(), force)?;
        }
        let lines = store.remove(image, &self.default_registry, force)?;
        for l in &lines {
            if let Some(name) = l.strip_prefix("Untagged: ") {
                let id = rec.config_digest.to_string();
                crate::events::emit(&self.root, "image", "untag", &id, &[("name", name)]);
            } else if let Some(id) = l.strip_prefix("Deleted: ") {
                crate::events::emit(&self.root, "image", "delete", id, &[]);
            }
        }
        Ok(lines)
    }

    /// Remove layers and blobs no image uses any more.
    pub fn remove_unused_layers(&self) -> Result<GcReport> {
        Ok(self
            .store()?
            .gc(false, false)
            .map_err(ImageError::Collect)?)
    }

    /// Remove unused layers and blobs (and, with `all`, images without a name).
    pub fn prune_images(&self, all: bool) -> Result<GcReport> {
        Ok(self.store()?.gc(all, true).map_err(ImageError::Prune)?)
    }

    /// Re-hash the store's blobs (or `image`'s) and check that its layers are unpacked;
    /// `repair` removes what is corrupt, so that pulling the image again fetches it.
    pub fn verify_images(&self, image: Option<&str>, repair: bool) -> Result<VerifyReport> {
        let store = self.store()?;
        let rec = image
            .map(|i| store.resolve(i, &self.default_registry))
            .transpose()?;
        Ok(store
            .verify(rec.as_ref(), repair)
            .map_err(ImageError::Verify)?)
    }

    /// Add the name `name` (with a tag) to `image`.
    pub fn tag(&self, image: &str, name: &str) -> Result<()> {
        let store = self.store()?;
        let rec = store
            .resolve(image, &self.default_registry)
            .during("tag", image)?;
        let n = self.parse_ref(name)?;
        let tn = n
            .tagged_name()
            .ok_or(ImageError::NoTag)
            .during("tag", name)?;
        store.tag(&rec.manifest_digest, &tn).during("tag", image)?;
        let id = rec.config_digest.to_string();
        crate::events::emit(&self.root, "image", "tag", &id, &[("name", &tn)]);
        Ok(())
    }

    /// Write the image's filesystem, flattened, into `dir`.
    pub fn unpack_image(&self, image: &str, dir: &Path) -> Result<()> {
        let store = self.store()?;
        store
            .resolve(image, &self.default_registry)
            .and_then(|rec| pull::flatten(&store, &rec, dir))
            .during("image unpack", image)
    }

    /// The image's layer directories, top first (overlay lowerdirs).
    pub fn image_layer_dirs(&self, image: &str) -> Result<Vec<PathBuf>> {
        let store = self.store()?;
        let rec = store
            .resolve(image, &self.default_registry)
            .during("image lowerdirs", image)?;
        Ok(layer_dirs(&store, &rec))
    }

    /// The process values (args, env, cwd, uid/gid) the image runs with, changed by `ov`;
    /// the user is resolved in `rootfs` (a flattened copy) or else in the layers.
    pub fn image_process(
        &self,
        image: &str,
        rootfs: Option<PathBuf>,
        ov: &Overrides,
    ) -> Result<ProcessValues> {
        let store = self.store()?;
        let rec = store
            .resolve(image, &self.default_registry)
            .during("image process", image)?;
        let cfgb = store.read_blob(&rec.config_digest)?;
        let cfg = pull::parse_config(&cfgb).during("image process", image)?;
        let root = match rootfs {
            Some(r) => RootfsView::Dir(r),
            None => RootfsView::Layers(layer_dirs(&store, &rec)),
        };
        husk_image::config::process_from_config(&cfg, &root, ov).during("image process", image)
    }

    /// Load images from a docker-archive or OCI-layout tarball; each with its name, if any.
    pub fn load(&self, r: impl Read) -> Result<Vec<(Option<String>, ImageRecord)>> {
        Ok(husk_image::archive::load(
            &self.store()?,
            r,
            self.settings.unpack_limits(),
        )?)
    }

    /// Write `image` as a tarball to `w`: with the name it was asked for by, or with all
    /// its names when asked for by ID.
    pub fn save(&self, image: &str, format: ArchiveFormat, w: impl Write) -> Result<()> {
        let store = self.store()?;
        let rec = store
            .resolve(image, &self.default_registry)
            .during("save", image)?;
        // Asked for by name: that name only (as docker); by ID: all of the image's names.
        let names = match self.parse_ref(image).ok().and_then(|r| r.tagged_name()) {
            Some(n) if names_of(&store, &rec)?.contains(&n) => vec![n],
            _ => names_of(&store, &rec)?,
        };
        let fmt = match format {
            ArchiveFormat::DockerArchive => husk_image::archive::Format::DockerArchive,
            ArchiveFormat::OciArchive => husk_image::archive::Format::OciArchive,
        };
        husk_image::archive::save(&store, &rec, &names, fmt, w).during("save", image)
    }

    /// Check `creds` against `registry` and store them; the credentials file written
    /// (see `Engine::auth_file` for where).
    pub fn login(
        &self,
        registry: &str,
        creds: Credentials,
        reg: &RegistryOptions,
    ) -> Result<PathBuf> {
        let mut opts = self.client(registry, reg)?;
        opts.credentials = Some(creds.clone());
        let file = self.login_file(reg);
        husk_image::registry::Registry::new(registry, &opts)
            .and_then(|r| r.ping())
            .and_then(|()| auth::store(&file, registry, &creds))
            .during("login", registry)?;
        Ok(file)
    }

    /// Forget the stored credentials for `registry`; false when there were none.
    pub fn logout(&self, registry: &str, authfile: Option<PathBuf>) -> Result<bool> {
        let file = self.login_file(&RegistryOptions {
            authfile,
            ..Default::default()
        });
        auth::remove(&file, registry).during("logout", registry)
    }
}
