//! `container checkpoint --export FILE` and `container restore --import FILE`: one tar
//! that holds what a container needs to be restored on another machine with the same
//! image.
//!
//! # The format (version [`VERSION`])
//!
//! A plain tar (ustar/PAX, as husk_image::tar writes it) of regular files, in this order:
//!
//! * `manifest.json`, first: [`Manifest`] — the format's version, the container's
//!   directory where it was exported (its config.json names paths in it) and its record
//!   (container.json) as it was;
//! * `config.json`: the container's OCI spec;
//! * `checkpoint/NAME`: CRIU's images and husk-container's notes beside them (its
//!   `husk-*.json`), CRIU's logs left out;
//! * `rootfs-diff.tar`: the container's writable layer — its overlay upper dir as an OCI
//!   layer tar (husk_image::layer::write_tar, the format `husk commit` writes: whiteouts as
//!   `.wh.` files), the runtime's mount points included (CRIU mounts onto them again).
//!
//! # Import trusts nothing in the file
//!
//! The manifest must come first and carry this version, else nothing is written. Only the
//! names above are taken (a `checkpoint/` name is one plain component); every other entry,
//! every link, device or directory of another name, a name twice, an entry larger than
//! its limit or than the free space, and a truncated archive fail the import. Files are
//! created afresh (O_EXCL, never following a link) in directories the import makes; the
//! writable layer goes through the image unpacker, which resolves every path inside the
//! upper dir. The config must keep the rootfs at `rootfs` and have no hooks (commands the
//! engine would run on the host). On any failure the new container's directory — and
//! whatever was mounted or set up for it — is removed again: one error, nothing left.

use super::{CheckpointError, RestoreOptions, IMAGES};
use crate::engine::Engine;
use crate::error::{Result, RunError};
use crate::os::{IoContext, IoError};
use crate::record::{containers_dir, lock_names, name_taken, ContainerMeta, Record, Timestamp};
use husk_image::tar::{self, Header, Kind};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The export format this husk writes and reads.
pub const VERSION: u64 = 1;
const MANIFEST: &str = "manifest.json";
const CONFIG: &str = "config.json";
const ROOTFS_DIFF: &str = "rootfs-diff.tar";
/// Limits for the small entries (the big ones are bounded by the free space).
const MAX_MANIFEST: u64 = 1 << 20;
const MAX_CONFIG: u64 = 8 << 20;
const MAX_IMAGES: usize = 100_000;

/// An export that cannot be written, or an archive that is not one.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("reading the archive: {0}")]
    Read(io::Error),
    #[error("not a tar archive, or a damaged one: {0}")]
    Tar(String),
    #[error("no manifest.json at its start: not a checkpoint exported by husk")]
    NoManifest,
    #[error("checkpoint format version {0} (this husk reads version {VERSION})")]
    Version(String),
    #[error("manifest.json: {0}")]
    Manifest(String),
    #[error("entry {path:?}: {why}")]
    Entry { path: String, why: String },
    #[error("the archive has no {0}")]
    Missing(&'static str),
    #[error("config.json: {0}")]
    Config(String),
    #[error("the writable layer ({ROOTFS_DIFF}): {0}")]
    Layer(husk_image::Error),
    #[error("its image {image} is not in the store (pull it first): {source}")]
    Image {
        image: String,
        #[source]
        source: husk_image::Error,
    },
    #[error("{0}")]
    Refused(&'static str),
}

/// manifest.json.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// [`VERSION`].
    pub version: u64,
    /// The container's directory on the exporting machine: the paths its config.json
    /// names there are rewritten to the new container's.
    pub dir: PathBuf,
    /// Whether `rootfs-diff.tar` follows.
    pub rootfs_diff: bool,
    /// Its container.json as it was exported.
    pub record: ContainerMeta,
}

/// Write the checkpointed container `r` (its images in DIR/checkpoint) to `file`: whole
/// or not at all (a temporary file beside it, renamed at the end).
pub(crate) fn export(r: &Record, file: &Path) -> Result<(), ArchiveError> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = file.with_file_name(format!(".{name}.husk-{}", std::process::id()));
    let diff = tmp.with_extension("diff");
    let done = write_export(r, &tmp, &diff).and_then(|()| {
        std::fs::rename(&tmp, file)
            .ctx("renaming to", file)
            .map_err(ArchiveError::from)
    });
    let _ = std::fs::remove_file(&diff);
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

fn write_export(r: &Record, tmp: &Path, diff: &Path) -> Result<(), ArchiveError> {
    let images = r.dir.join(IMAGES);
    let mut names: Vec<String> = std::fs::read_dir(&images)
        .ctx("reading", &images)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".log") && image_name_ok(n))
        .collect();
    names.sort();
    let upper = r.dir.join("upper");
    {
        let mut w = BufWriter::new(File::create(diff).ctx("creating", diff)?);
        let opts = husk_image::layer::LayerOptions::default();
        husk_image::layer::write_tar(&upper, &mut w, &opts).map_err(ArchiveError::Layer)?;
        w.flush().ctx("writing", diff)?;
    }
    let manifest = Manifest {
        version: VERSION,
        dir: std::path::absolute(&r.dir).ctx("resolving", &r.dir)?,
        rootfs_diff: true,
        record: r.meta.clone(),
    };
    let out = File::create(tmp).ctx("creating", tmp)?;
    let mut tw = tar::Writer::new(BufWriter::new(out));
    let werr = |source: io::Error| {
        ArchiveError::Io(IoError {
            op: "writing",
            path: tmp.to_path_buf(),
            source,
        })
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let add = |tw: &mut tar::Writer<_>, path: &str, size: u64, data: &mut dyn Read| {
        let mut h = Header::new(Kind::File, path);
        h.size = size;
        h.mode = 0o600;
        h.mtime = now;
        tw.append(&h, data).map_err(werr)
    };
    let m = serde_json::to_vec_pretty(&manifest).expect("serializable");
    add(&mut tw, MANIFEST, m.len() as u64, &mut &m[..])?;
    let config = r.dir.join(CONFIG);
    let c = std::fs::read(&config).ctx("reading", &config)?;
    add(&mut tw, CONFIG, c.len() as u64, &mut &c[..])?;
    tw.dir(&format!("{IMAGES}/"), 0o700).map_err(werr)?;
    for n in &names {
        let p = images.join(n);
        let f = File::open(&p).ctx("opening", &p)?;
        let size = f.metadata().ctx("reading", &p)?.len();
        add(
            &mut tw,
            &format!("{IMAGES}/{n}"),
            size,
            &mut BufReader::new(f),
        )?;
    }
    let f = File::open(diff).ctx("opening", diff)?;
    let size = f.metadata().ctx("reading", diff)?.len();
    add(&mut tw, ROOTFS_DIFF, size, &mut BufReader::new(f))?;
    let mut w = tw.finish().map_err(werr)?;
    w.flush().map_err(werr)?;
    w.into_inner()
        .map_err(|e| werr(e.into_error()))?
        .sync_all()
        .map_err(werr)
}

/// A CRIU image's name as an export may carry it: one plain component.
fn image_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && !n.starts_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The current entry's data, as a reader.
struct Data<'a, R: Read>(&'a mut tar::Reader<R>);

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_data(buf)
    }
}

/// The manifest (before anything is written), then the other entries into the new
/// container's directory `dir`: `prepare` runs between the two (the writable layer's
/// directories are made from the record). The config.json's bytes.
fn read_into(
    file: &Path,
    dir: &Path,
    prepare: &mut dyn FnMut(&Manifest) -> Result<()>,
) -> Result<(Manifest, Vec<u8>)> {
    let f = File::open(file).ctx("opening", file)?;
    let mut tr = tar::Reader::new(BufReader::new(f));
    let next = |tr: &mut tar::Reader<_>| {
        tr.next_entry()
            .map_err(|e| ArchiveError::Tar(e.to_string()))
    };
    let first = next(&mut tr)?.ok_or(ArchiveError::NoManifest)?;
    if first.kind != Kind::File || entry_path(&first) != MANIFEST {
        return Err(ArchiveError::NoManifest.into());
    }
    let m = parse_manifest(&read_small(&mut tr, &first, MAX_MANIFEST)?)?;
    prepare(&m)?;
    let images = dir.join(IMAGES);
    mkdir(&images)?;
    let upper = dir.join("upper");
    let mut config = None;
    let mut diff = false;
    let mut count = 0;
    while let Some(e) = next(&mut tr)? {
        let path = entry_path(&e);
        let bad = |why: &str| ArchiveError::Entry {
            path: path.clone(),
            why: why.to_string(),
        };
        if e.kind == Kind::Dir && path.trim_end_matches('/') == IMAGES {
            continue;
        }
        if e.kind != Kind::File {
            return Err(bad(&format!(
                "a {}: an export holds only regular files",
                kind_name(e.kind)
            ))
            .into());
        }
        if e.size > free_space(dir)? {
            return Err(bad(&format!("{} bytes do not fit on the disk", e.size)).into());
        }
        if path == CONFIG {
            if config.is_some() {
                return Err(bad("in the archive twice").into());
            }
            config = Some(read_small(&mut tr, &e, MAX_CONFIG)?);
        } else if path == ROOTFS_DIFF {
            if diff || !m.rootfs_diff {
                return Err(bad("not announced by the manifest, or twice").into());
            }
            diff = true;
            std::fs::create_dir_all(&upper).ctx("creating", &upper)?;
            let opts = husk_image::unpack::UnpackOptions::overlay();
            husk_image::unpack::unpack(&mut Data(&mut tr), &upper, &opts, ROOTFS_DIFF)
                .map_err(ArchiveError::Layer)?;
        } else if let Some(name) = path.strip_prefix(&format!("{IMAGES}/")) {
            if !image_name_ok(name) {
                return Err(bad("not a plain file name under checkpoint/").into());
            }
            count += 1;
            if count > MAX_IMAGES {
                return Err(bad(&format!("more than {MAX_IMAGES} checkpoint files")).into());
            }
            write_new(&images.join(name), &mut Data(&mut tr)).map_err(|e| match e {
                e if e.kind() == io::ErrorKind::AlreadyExists => bad("in the archive twice"),
                e => bad(&e.to_string()),
            })?;
        } else {
            return Err(bad("not part of a checkpoint export").into());
        }
    }
    let config = config.ok_or(ArchiveError::Missing(CONFIG))?;
    if m.rootfs_diff && !diff {
        return Err(ArchiveError::Missing(ROOTFS_DIFF).into());
    }
    if !images.join("inventory.img").is_file() {
        return Err(ArchiveError::Missing("checkpoint/inventory.img").into());
    }
    Ok((m, config))
}

fn entry_path(e: &tar::Entry) -> String {
    let p = String::from_utf8_lossy(&e.path);
    p.strip_prefix("./").unwrap_or(&p).to_string()
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::HardLink => "hard link",
        Kind::Symlink => "symlink",
        Kind::Char => "character device",
        Kind::Block => "block device",
        Kind::Dir => "directory",
        Kind::Fifo => "fifo",
    }
}

/// The entry's data, at most `limit` bytes.
fn read_small<R: Read>(
    tr: &mut tar::Reader<R>,
    e: &tar::Entry,
    limit: u64,
) -> Result<Vec<u8>, ArchiveError> {
    if e.size > limit {
        return Err(ArchiveError::Entry {
            path: entry_path(e),
            why: format!("{} bytes, more than the {limit} allowed", e.size),
        });
    }
    let mut v = Vec::with_capacity(e.size as usize);
    Data(tr).read_to_end(&mut v).map_err(ArchiveError::Read)?;
    Ok(v)
}

/// The manifest, checked: its version first (a newer format fails as such, not as a
/// field it does not know), then every field.
fn parse_manifest(data: &[u8]) -> Result<Manifest, ArchiveError> {
    let v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| ArchiveError::Manifest(e.to_string()))?;
    match v.get("version") {
        Some(n) if n.as_u64() == Some(VERSION) => {}
        Some(n) => return Err(ArchiveError::Version(n.to_string())),
        None => return Err(ArchiveError::Manifest("no version".into())),
    }
    let m: Manifest =
        serde_json::from_value(v).map_err(|e| ArchiveError::Manifest(e.to_string()))?;
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex64(&m.record.id) {
        return Err(ArchiveError::Manifest(
            "record.id is not 64 hex digits".into(),
        ));
    }
    if !hex64(&m.record.image_id) {
        return Err(ArchiveError::Manifest(
            "record.image_id is not 64 hex digits".into(),
        ));
    }
    let dir = m.dir.to_string_lossy();
    if !m.dir.is_absolute() || dir.contains("/..") || dir.len() < 2 || dir.contains('"') {
        return Err(ArchiveError::Manifest(format!(
            "dir {dir:?} is not a plain absolute path"
        )));
    }
    Ok(m)
}

fn mkdir(p: &Path) -> Result<(), IoError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(p)
        .ctx("creating", p)
}

/// A new file at `p` (never an existing one, never through a link) with `r`'s bytes.
fn write_new(p: &Path, r: &mut dyn Read) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)?;
    io::copy(r, &mut f)?;
    Ok(())
}

/// Bytes free for us on the file system of `dir`.
fn free_space(dir: &Path) -> Result<u64, IoError> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(io::Error::from)
        .ctx("reading the free space of", dir)?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(io::Error::last_os_error()).ctx("reading the free space of", dir);
    }
    Ok((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}

/// The exported config.json as the new container's: the old directory's paths and the
/// old id (its cgroup, its network namespace) made the new ones; checked as a spec whose
/// rootfs is the container's own and that runs nothing on the host.
fn rewrite_config(
    config: &[u8],
    m: &Manifest,
    dir: &Path,
    id: &str,
) -> Result<Vec<u8>, ArchiveError> {
    let bad = |why: String| ArchiveError::Config(why);
    let text = std::str::from_utf8(config).map_err(|e| bad(e.to_string()))?;
    let old_dir = m.dir.to_string_lossy();
    let text = text
        .replace(old_dir.as_ref(), &dir.to_string_lossy())
        .replace(&m.record.id, id);
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if v["root"]["path"] != "rootfs" {
        return Err(bad("root.path is not the container's own \"rootfs\"".into()));
    }
    if v.get("hooks")
        .is_some_and(|h| !h.is_null() && h != &serde_json::json!({}))
    {
        return Err(bad("it has hooks, which would run on this host".into()));
    }
    serde_json::from_value::<oci_spec::runtime::Spec>(v.clone()).map_err(|e| bad(e.to_string()))?;
    Ok(serde_json::to_vec_pretty(&v).expect("serializable"))
}

/// The new container's directory until its restore succeeded: removed again (and its
/// writable layer's tmpfs unmounted) when dropped armed.
struct NewDir(Option<PathBuf>);

impl Drop for NewDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = crate::rootfs::unmount_leftover(&dir);
            crate::writable::release(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

impl Engine {
    /// `restore --import FILE`: a new container (new id; the exported name or `o.name`)
    /// from an export, restored (see the module comment). Its id.
    pub(crate) fn import_checkpoint(&self, file: &Path, o: &RestoreOptions) -> Result<String> {
        if let Some(n) = &o.name {
            if !crate::config::valid_name(n) {
                return Err(crate::config::ConfigError::Name(n.clone()).into());
            }
        }
        let store = self.store()?;
        let containers = containers_dir(&self.root);
        // Held until container.json is written, as `run` does: names are given out once.
        let names_lock = lock_names(&containers)?;
        let id = crate::run::new_id()?;
        let dir = containers.join(&id);
        std::fs::create_dir(&dir).ctx("creating", &dir)?;
        let mut made = NewDir(Some(dir.clone()));
        let mut name = String::new();
        let (m, config) = read_into(file, &dir, &mut |m| {
            let r = &m.record;
            let joins = matches!(r.network, crate::network::Network::Container(_));
            if r.pod.is_some() || r.infra || !r.joins.is_empty() || joins {
                return Err(ArchiveError::Refused(
                    "a pod's container, or one that joins another's namespaces, cannot be imported",
                )
                .into());
            }
            if r.userns.starts_with("auto") {
                return Err(ArchiveError::Refused(
                    "a container with --userns=auto cannot be imported (its id range is this machine's)",
                )
                .into());
            }
            name = o.name.clone().unwrap_or_else(|| r.name.clone());
            if !crate::config::valid_name(&name) {
                return Err(crate::config::ConfigError::Name(name.clone()).into());
            }
            if name_taken(&containers, &name) {
                return Err(RunError::NameInUse(name.clone()).into());
            }
            store
                .resolve(&r.image_id, &self.default_registry)
                .map_err(|source| ArchiveError::Image {
                    image: r.image.clone(),
                    source,
                })?;
            if r.network == crate::network::Network::Bridge {
                self.check_networks(&r.networks)?;
            }
            crate::writable::prepare(&dir, &id, r.writable)?;
            Ok(())
        })?;
        let config = rewrite_config(&config, &m, &dir, &id)?;
        let p = dir.join(CONFIG);
        std::fs::write(&p, config).ctx("writing", &p)?;
        let mut meta = m.record;
        meta.id = id.clone();
        meta.name = name.clone();
        meta.created = Timestamp::now();
        meta.started = None;
        meta.exit_code = Some(0);
        meta.error = None;
        meta.restart_count = 0;
        meta.stopping = false;
        meta.never_started = false;
        meta.runner = None;
        meta.pid = None;
        meta.monitor_pid = None;
        meta.checkpoint.checkpointed = true;
        meta.etc.name = name.clone();
        self.write_etc(&dir, &meta.network, &meta.etc, None)?;
        crate::health::write_monitor_file(&dir, meta.healthcheck.as_ref())?;
        crate::attach_socket::write_stdin_mode(&dir, meta.interactive, false)?;
        let r = Record {
            dir: dir.clone(),
            meta,
        };
        r.save()?;
        drop(names_lock);
        crate::events::container(&self.root, &r, "create", &[]);
        let restored = self.restore_record(
            r,
            &RestoreOptions {
                keep: o.keep,
                tcp_established: o.tcp_established,
                ..Default::default()
            },
        );
        if let Err(e) = restored {
            // Its networks and overlay are undone by the failed start; the directory here.
            crate::events::emit(&self.root, "container", "destroy", &id, &[("name", &name)]);
            return Err(e);
        }
        made.0 = None;
        Ok(id)
    }
}

impl From<ArchiveError> for crate::Error {
    fn from(e: ArchiveError) -> Self {
        CheckpointError::Archive(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_one_plain_component() {
        for ok in ["inventory.img", "pages-1.img", "husk-stdio.json", "a_b"] {
            assert!(image_name_ok(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "x\ny", "a b"] {
            assert!(!image_name_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_manifest_of_another_version_fails_as_such() {
        let e = parse_manifest(br#"{"version": 2, "other": 1}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "checkpoint format version 2 (this husk reads version 1)"
        );
        let e = parse_manifest(br#"{"dir": "/x"}"#).unwrap_err();
        assert_eq!(e.to_string(), "manifest.json: no version");
    }
}
