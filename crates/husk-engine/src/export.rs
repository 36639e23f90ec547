//! `husk export` and `husk import`: a container's filesystem as one tar stream, and a tar
//! stream as a new image of one layer.
//!
//! export walks the container's rootfs — a running container's overlay as mounted, a
//! stopped one's mounted for the export only (copy.rs) — without following a symlink:
//! links are written as links, hard links as hard links, devices and fifos as such. The
//! container's own mounts (/proc, volumes) live in its mount namespace and are not in the
//! tree the engine sees, as docker's export leaves them out.
//!
//! import stores the stream as it came (plain, gzip or zstd) as the layer blob, and writes
//! a config and an OCI manifest for it; `--change` takes the Dockerfile instructions that
//! only set the config, parsed as `commit` parses them (`crate::commit::ConfigChange`).

use crate::engine::Engine;
use crate::error::{During, Result};
use crate::os::IoContext;
use crate::record::find;
use husk_image::digest::{Digest, HashingWriter};
use husk_image::tar::{Header, Kind, Writer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

impl Engine {
    /// Write the container's filesystem to `w` as a tar stream.
    pub fn export(&self, what: &str, w: &mut dyn Write) -> Result<()> {
        let r = find(&self.root, what).during("export", what)?;
        let (root, _mounted) = crate::copy::rootfs_of(self, &r).during("export", what)?;
        // The directory fd keeps the tree reachable; walked through its /proc path.
        let top = std::path::PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&root)
        ));
        let mut tar = Writer::new(w);
        let mut links = HashMap::new();
        walk(&top, b"", &mut tar, &mut links)
            .and_then(|()| tar.finish().map(drop))
            .ctx("writing the tar stream of", r.dir.join("rootfs"))
            .during("export", what)
    }

    /// A new image of one layer from the tar stream `r` (plain, gzip or zstd), named
    /// `name` when given, its config set by `changes` (Dockerfile instructions) and its
    /// history saying `message`. Returns the image id (the config digest).
    pub fn import(
        &self,
        r: &mut dyn Read,
        name: Option<&str>,
        changes: &[String],
        message: Option<&str>,
    ) -> Result<Digest> {
        let what = name.unwrap_or("-");
        let config =
            crate::commit::config_with_changes(&json!({}), changes).during("import", what)?;
        let names = match name {
            Some(n) => vec![self
                .parse_ref(n)
                .during("import", n)?
                .tagged_name()
                .ok_or(crate::error::ImageError::NoTag)
                .during("import", n)?],
            None => vec![],
        };
        self.import_inner(r, config, &names, message)
            .during("import", what)
    }

    fn import_inner(
        &self,
        r: &mut dyn Read,
        config: Value,
        names: &[String],
        message: Option<&str>,
    ) -> Result<Digest> {
        let store = self.store()?;
        let _gc = store.gc_lock(false)?;
        let tmp_dir = store.tmp_dir();
        std::fs::create_dir_all(&tmp_dir).ctx("creating", &tmp_dir)?;
        let tmp = tmp_dir.join(format!("import-{}", std::process::id()));
        let stored = (|| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&tmp)?;
            let mut hw = HashingWriter::new(f);
            io::copy(r, &mut hw)?;
            let (blob, size, _) = hw.finish();
            // What the layer is once decompressed: its diff_id, and how it is compressed.
            let f = io::BufReader::new(std::fs::File::open(&tmp)?);
            let mut head = Vec::new();
            std::fs::File::open(&tmp)?.take(4).read_to_end(&mut head)?;
            let mut dec = husk_image::pull::decompressing_reader(f)?;
            let mut hw = HashingWriter::new(io::sink());
            io::copy(&mut dec, &mut hw)?;
            let (diff_id, _, _) = hw.finish();
            Ok::<_, io::Error>((blob, size, diff_id, head))
        })()
        .ctx("storing the layer", &tmp);
        let (blob, size, diff_id, head) = match stored {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
        };
        if let Err(e) = store.commit_blob_file(&tmp, &blob) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        let media_type = match head[..] {
            [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip",
            [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
            _ => "application/vnd.oci.image.layer.v1.tar",
        };
        let now = husk_oci::time::rfc3339_now();
        let cfg = json!({
            "created": now,
            "architecture": husk_image::manifest::Platform::host().architecture,
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
            // As docker's: no command made the layer; the comment says where it came from.
            "history": [{
                "created": now,
                "comment": message.map_or("Imported from -".to_string(), String::from),
            }],
        });
        let cfg = serde_json::to_vec(&cfg).expect("serializable");
        let manifest = crate::commit::oci_manifest(
            &store,
            &cfg,
            vec![json!({"mediaType": media_type, "digest": blob.to_string(), "size": size})],
        )?;
        let rec = husk_image::archive::import(
            &store,
            &manifest,
            husk_image::registry::MT_OCI_MANIFEST,
            None,
            names,
            self.settings.unpack_limits(),
        )?;
        let id = rec.config_digest.to_string();
        let name = names.first().map_or("", String::as_str);
        crate::events::emit(&self.root, "image", "import", &id, &[("name", name)]);
        Ok(rec.config_digest)
    }
}

/// Append `dir` (its entries named below `prefix`) to `tar`; `links` maps an inode with
/// more than one name to the first name written.
fn walk<W: Write>(
    dir: &Path,
    prefix: &[u8],
    tar: &mut Writer<W>,
    links: &mut HashMap<(u64, u64), Vec<u8>>,
) -> io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for n in names {
        let p = dir.join(&n);
        let m = std::fs::symlink_metadata(&p)?;
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_char_device() {
            Kind::Char
        } else if ft.is_block_device() {
            Kind::Block
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            continue; // a socket: nothing a tar can hold
        };
        let mut h = Header::new(kind, "");
        h.path = [prefix, n.as_bytes()].concat();
        h.mode = m.mode() & 0o7777;
        h.uid = m.uid().into();
        h.gid = m.gid().into();
        h.mtime = m.mtime().max(0) as u64;
        if matches!(kind, Kind::Char | Kind::Block) {
            h.devmajor = libc::major(m.rdev());
            h.devminor = libc::minor(m.rdev());
        }
        if kind == Kind::Symlink {
            h.link = std::fs::read_link(&p)?.as_os_str().as_bytes().to_vec();
        }
        if kind == Kind::File && m.nlink() > 1 {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                h.kind = Kind::HardLink;
                h.link = first.clone();
                tar.append(&h, &mut io::empty())?;
                continue;
            }
            links.insert((m.dev(), m.ino()), h.path.clone());
        }
        match kind {
            Kind::File => {
                // O_NOFOLLOW: the entry was a file a moment ago; a link now is not followed.
                let mut f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&p)?;
                h.size = f.metadata()?.len();
                tar.append(&h, &mut (&mut f).take(h.size))?;
            }
            Kind::Dir => {
                tar.append(&h, &mut io::empty())?;
                walk(&p, &[&h.path[..], b"/"].concat(), tar, links)?;
            }
            _ => tar.append(&h, &mut io::empty())?,
        }
    }
    Ok(())
}
