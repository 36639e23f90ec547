//! `pull`: manifest → platform → config → layers (parallel, streamed, verified, resumable).

use crate::digest::{chain_ids, Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::manifest::{self, Descriptor, Platform};
use crate::reference::Reference;
use crate::registry::{ClientOptions, Registry};
use crate::store::{ImageRecord, LayerMeta, LayerRecord, Store};
use crate::unpack::{self, UnpackOptions};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// Progress callbacks (the CLI draws bars; the library default draws nothing).
pub trait Progress: Send + Sync {
    fn message(&self, _msg: &str) {}
    fn layer_start(&self, _digest: &Digest, _size: u64, _resumed_from: u64) {}
    fn layer_advance(&self, _digest: &Digest, _bytes: u64) {}
    fn layer_done(&self, _digest: &Digest, _status: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Clone)]
pub struct PullOptions {
    pub platform: Option<Platform>,
    pub client: ClientOptions,
    /// How many layers download at once.
    pub parallel: usize,
    pub progress: Arc<dyn Progress>,
    /// Set to abandon the pull (checked between chunks).
    pub cancel: Arc<AtomicBool>,
    /// What one layer may write when unpacked.
    pub limits: unpack::UnpackLimits,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            client: ClientOptions::default(),
            parallel: 3,
            progress: Arc::new(NoProgress),
            cancel: Arc::new(AtomicBool::new(false)),
            limits: unpack::UnpackLimits::default(),
        }
    }
}

const CHUNK: usize = 1 << 20;

/// Pull `reference` into `store`; returns the stored image record.
pub fn pull(store: &Store, reference: &Reference, opts: &PullOptions) -> Result<ImageRecord> {
    let _gc = store.gc_lock(false)?;
    let reg = Registry::new(&reference.registry, &opts.client)?;
    let repo = &reference.repository;
    let (data, mt, digest) = reg.get_manifest(repo, &reference.manifest_ref())?;
    let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
    let (mdata, mmt, mdigest, index_digest, platform) = if manifest::is_index(&mt) {
        let idx = manifest::parse_index(&data)?;
        let d = manifest::select_platform(&idx, &wanted)?;
        let (md, mt2, dg) = reg.get_manifest(repo, &d.digest.to_string())?;
        store.write_blob(&data, Some(&digest))?;
        (md, mt2, dg, Some(digest), d.platform.clone())
    } else if manifest::is_manifest(&mt) {
        (data, mt, digest, None, None)
    } else {
        return Err(Error::UnsupportedMediaType(mt));
    };
    if !manifest::is_manifest(&mmt) {
        return Err(Error::UnsupportedMediaType(mmt));
    }
    let m = manifest::parse_manifest(&mdata)?;
    // config
    let config = if store.has_blob(&m.config.digest) {
        store.read_blob(&m.config.digest)?
    } else {
        let c = reg.get_small_blob(repo, &m.config.digest, m.config.size)?;
        store.write_blob(&c, Some(&m.config.digest))?;
        c
    };
    let cfg = parse_config(&config)?;
    check_platform(&cfg, &wanted, index_digest.is_some())?;
    let diff_ids = diff_ids_of(&cfg)?;
    if diff_ids.len() != m.layers.len() {
        return Err(Error::invalid(
            format!("image {reference}"),
            format!(
                "manifest has {} layers but config has {} diff_ids",
                m.layers.len(),
                diff_ids.len()
            ),
        ));
    }
    let chains = chain_ids(&diff_ids);
    let jobs: Vec<(Descriptor, Digest, Digest)> = m
        .layers
        .iter()
        .cloned()
        .zip(diff_ids.iter().cloned())
        .zip(chains.iter().cloned())
        .map(|((d, di), c)| (d, di, c))
        .collect();
    for (d, _, _) in &jobs {
        manifest::layer_compression(&d.media_type)?;
    }
    check_space(store, &jobs)?;
    run_parallel(&jobs, opts.parallel, &opts.cancel, |(desc, diff, chain)| {
        fetch_layer(store, Some(&reg), repo, desc, diff, chain, opts)
    })?;
    store.write_blob(&mdata, Some(&mdigest))?;
    let rec = ImageRecord {
        manifest_digest: mdigest,
        manifest_media_type: mmt,
        index_digest,
        config_digest: m.config.digest.clone(),
        platform: platform.or_else(|| platform_of(&cfg)),
        layers: jobs
            .iter()
            .map(|(d, di, c)| LayerRecord {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                size: d.size,
                diff_id: di.clone(),
                chain_id: c.clone(),
            })
            .collect(),
        created: cfg.created().clone(),
        stored_at: 0,
    };
    let mut names = Vec::new();
    if let Some(n) = reference.tagged_name() {
        names.push(n);
    }
    store.put_image(&rec, &names)?;
    Ok(rec)
}

/// Refuse a pull the store's filesystem clearly cannot hold. Registries declare only the
/// compressed size of a layer (neither the OCI nor the Docker format has a standard field
/// for the unpacked size), so the check is a lower bound: each missing layer's compressed
/// blob, kept in the store, plus as much again for its unpacked files (a layer rarely
/// unpacks to less than it compresses to). A pull that passes may still run out of space
/// while unpacking; that fails naming the layer and leaves nothing half-unpacked, and the
/// unpack limits bound what one layer may write.
fn check_space(store: &Store, jobs: &[(Descriptor, Digest, Digest)]) -> Result<()> {
    let needed: u64 = jobs
        .iter()
        .filter(|(_, _, chain)| !store.has_layer(chain))
        .map(|(d, _, _)| {
            let blob = if store.has_blob(&d.digest) { 0 } else { d.size };
            blob.saturating_add(d.size)
        })
        .fold(0u64, u64::saturating_add);
    if needed == 0 {
        return Ok(());
    }
    let available = fsutil::free_space(store.root()).ctx("statvfs", store.root())?;
    if available < needed {
        return Err(Error::NoSpace {
            path: store.root().to_path_buf(),
            needed,
            available,
        });
    }
    Ok(())
}

pub fn parse_config(data: &[u8]) -> Result<oci_spec::image::ImageConfiguration> {
    serde_json::from_slice(data).map_err(|e| Error::invalid("image config", e.to_string()))
}

pub fn diff_ids_of(cfg: &oci_spec::image::ImageConfiguration) -> Result<Vec<Digest>> {
    cfg.rootfs()
        .diff_ids()
        .iter()
        .map(|s| s.parse::<Digest>())
        .collect()
}

fn platform_of(cfg: &oci_spec::image::ImageConfiguration) -> Option<Platform> {
    Some(Platform {
        architecture: cfg.architecture().to_string(),
        os: cfg.os().to_string(),
        variant: cfg.variant().clone(),
        os_version: None,
    })
}

fn check_platform(
    cfg: &oci_spec::image::ImageConfiguration,
    wanted: &Platform,
    from_index: bool,
) -> Result<()> {
    // A single-platform image for another platform: refuse clearly (podman warns; running
    // it would fail later with an exec format error).
    if from_index {
        return Ok(());
    }
    let have = platform_of(cfg).unwrap();
    if have.os != wanted.os || have.architecture != wanted.architecture {
        return Err(Error::NoMatchingPlatform {
            wanted: wanted.to_string(),
            available: vec![have.to_string()],
        });
    }
    Ok(())
}

/// Run `f` over `items` on up to `n` threads; the first error wins and cancels the rest.
pub fn run_parallel<T: Sync, F>(items: &[T], n: usize, cancel: &Arc<AtomicBool>, f: F) -> Result<()>
where
    F: Fn(&T) -> Result<()> + Sync,
{
    let next = AtomicUsize::new(0);
    let first_err: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    let workers = n.max(1).min(items.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { return };
                if let Err(e) = f(item) {
                    let mut g = first_err.lock().unwrap();
                    if g.is_none() {
                        *g = Some(e);
                    }
                    cancel.store(true, Ordering::Relaxed);
                    return;
                }
            });
        }
    });
    match first_err.into_inner().unwrap() {
        Some(e) => Err(e),
        None if cancel.load(Ordering::Relaxed) => Err(Error::Interrupted),
        None => Ok(()),
    }
}

/// Reads decompressed chunks produced by another thread.
pub(crate) struct ChunkReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    pub(crate) fn new(rx: Receiver<io::Result<Vec<u8>>>) -> Self {
        ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The compressed byte source: what is already in the partial file, then the network
/// (appended to the partial file as it arrives).
struct Source<'a> {
    local: Option<File>,
    net: Option<Box<dyn Read + Send + 'a>>,
    sink: Option<File>,
    progress: &'a dyn Progress,
    digest: &'a Digest,
    cancel: &'a AtomicBool,
    /// bytes yielded so far (local and network)
    pos: u64,
    /// the size the descriptor declares: a byte past it is an error, so an endless or
    /// over-long body never fills the disk (None: a local file of unknown size)
    limit: Option<u64>,
}

/// The io::Error payload for "the body went past the declared size" (told apart from
/// other read errors when the producer's error is mapped to a typed one).
#[derive(Debug)]
struct PastDeclaredSize;
impl std::fmt::Display for PastDeclaredSize {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("body longer than declared")
    }
}
impl std::error::Error for PastDeclaredSize {}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        // At the declared size, read one more byte only to tell EOF from an over-long body.
        let buf = match self.limit {
            Some(l) => {
                let room = l.saturating_sub(self.pos).max(1);
                let n = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                &mut buf[..n]
            }
            None => buf,
        };
        let n = self.read_inner(buf)?;
        self.pos += n as u64;
        if self.limit.is_some_and(|l| self.pos > l) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, PastDeclaredSize));
        }
        Ok(n)
    }
}

impl Source<'_> {
    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(l) = &mut self.local {
            let n = l.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.local = None;
        }
        let Some(net) = &mut self.net else {
            return Ok(0);
        };
        let n = loop {
            match net.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        if self.limit.is_some_and(|l| self.pos + n as u64 > l) {
            // not one byte past the declared size reaches the disk
            return Ok(n);
        }
        if let Some(s) = &mut self.sink {
            s.write_all(&buf[..n])?;
        }
        self.progress.layer_advance(self.digest, n as u64);
        Ok(n)
    }
}

struct Produced {
    digest: Digest,
    size: u64,
    /// decompression failed or the unpacker stopped early (the source was still read to
    /// its end so the digest classifies the failure)
    error: Option<io::Error>,
}

/// Decompress `src` (gzip/zstd/plain, sniffed) and send chunks to the unpacker. The
/// compressed source is always read to its end (unless reading it fails) so that its
/// digest can be checked even when its content turned out undecodable.
fn produce(
    src: Source,
    tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
) -> io::Result<Produced> {
    let mut hr = BufReader::with_capacity(CHUNK, HashingReader::new(src));
    let head = hr.fill_buf()?.to_vec();
    let mut error = None;
    {
        let mut dec: Box<dyn Read + '_> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::bufread::MultiGzDecoder::new(&mut hr))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(zstd::stream::read::Decoder::with_buffer(&mut hr)?)
        } else {
            Box::new(&mut hr)
        };
        'outer: loop {
            let mut chunk = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match dec.read(&mut chunk[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        error = Some(e);
                        break 'outer;
                    }
                }
            }
            if filled == 0 {
                break;
            }
            chunk.truncate(filled);
            if tx.send(Ok(chunk)).is_err() {
                error = Some(io::Error::other("unpacker stopped"));
                break;
            }
        }
    }
    drop(tx);
    // hash whatever follows (or was not decoded), too; a failure here is a source failure.
    // Not io::copy: it retries ErrorKind::Interrupted, which is how Source says the pull
    // was cancelled, and would spin on it forever.
    loop {
        let n = hr.fill_buf()?.len();
        if n == 0 {
            break;
        }
        hr.consume(n);
    }
    let (digest, size, _) = hr.into_inner().finish();
    Ok(Produced {
        digest,
        size,
        error,
    })
}

/// Unpack a (compressed) layer stream into `dir/diff` on two threads, return
/// (compressed digest, compressed size, diff_id, stats).
fn stream_unpack(
    src: Source,
    dir: &Path,
    layer: &str,
    expected: Option<(&Digest, u64)>,
    limits: unpack::UnpackLimits,
) -> Result<(Digest, u64, Digest, u64, unpack::UnpackStats)> {
    let diff = dir.join("diff");
    std::fs::create_dir_all(&diff).ctx("creating", &diff)?;
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(8);
    std::thread::scope(|s| {
        let prod = s.spawn(move || produce(src, tx));
        let mut hr = HashingReader::new(ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        });
        let uopts = UnpackOptions {
            limits,
            ..UnpackOptions::overlay()
        };
        let res = unpack::unpack(&mut hr, &diff, &uopts, layer);
        let (diff_id, usize_, chunks) = hr.finish();
        drop(chunks); // let the producer see a closed channel if we stopped early
        let pres = prod.join().expect("producer thread panicked");
        match pres {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(Error::Interrupted),
            Err(e) if e.get_ref().is_some_and(|i| i.is::<PastDeclaredSize>()) => {
                Err(Error::BlobTooLong {
                    digest: layer.to_string(),
                    declared: expected.map(|(_, n)| n).unwrap_or(0),
                })
            }
            Err(e) => Err(Error::Transport {
                url: format!("layer {layer}"),
                message: e.to_string(),
            }),
            Ok(p) => {
                // wrong bytes explain every later failure: report them first
                if let Some((d, n)) = expected {
                    crate::digest::verify(
                        &format!("layer {layer}"),
                        d,
                        Some(n),
                        &p.digest,
                        p.size,
                    )?;
                }
                let st = res?;
                if let Some(e) = p.error {
                    return Err(Error::BadLayer {
                        layer: layer.to_string(),
                        entry: String::new(),
                        reason: format!("decompressing: {e}"),
                    });
                }
                Ok((p.digest, p.size, diff_id, usize_, st))
            }
        }
    })
}

pub(crate) fn fetch_layer(
    store: &Store,
    reg: Option<&Registry>,
    repo: &str,
    desc: &Descriptor,
    diff_id: &Digest,
    chain: &Digest,
    opts: &PullOptions,
) -> Result<()> {
    let progress = &*opts.progress;
    let _chain_lock = store.tmp_lock(&format!("layer-{}", chain.hex()))?;
    if store.has_layer(chain) {
        progress.layer_done(&desc.digest, "Already exists");
        return Ok(());
    }
    let tmpdir = store.tmp_dir().join(format!("unpack-{}", chain.hex()));
    let layer_name = desc.digest.to_string();
    // Up to two attempts: a resumed download whose digest does not match starts over.
    for attempt in 0..2 {
        fsutil::remove_tree(&tmpdir).ctx("removing", &tmpdir)?;
        std::fs::create_dir_all(&tmpdir).ctx("creating", &tmpdir)?;
        let _blob_lock = store.tmp_lock(&format!("blob-{}", desc.digest.hex()))?;
        let have_blob = store.has_blob(&desc.digest);
        let partial = store
            .tmp_dir()
            .join(format!("{}.partial", desc.digest.hex()));
        let mut resumed_from = 0;
        let (local, net, sink): (Option<File>, Option<Box<dyn Read + Send>>, Option<File>) =
            if have_blob {
                let p = store.blob_path(&desc.digest);
                (Some(File::open(&p).ctx("opening", &p)?), None, None)
            } else {
                let mut sink = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&partial)
                    .ctx("opening", &partial)?;
                let have = sink.metadata().ctx("stat", &partial)?.len();
                let have = if have > desc.size { 0 } else { have };
                if have == desc.size && have > 0 {
                    // downloaded completely before (killed before commit): verify from disk
                    resumed_from = have;
                    (
                        Some(File::open(&partial).ctx("opening", &partial)?),
                        None,
                        None,
                    )
                } else {
                    let reg = reg.ok_or_else(|| {
                        Error::invalid(format!("blob {}", desc.digest), "not in the store")
                    })?;
                    let (resp, ranged) = reg.get_blob(repo, &desc.digest, have)?;
                    let local = if ranged {
                        if !content_range_starts_at(&resp, have) {
                            return Err(Error::invalid(
                                format!("blob {}", desc.digest),
                                "registry sent a Content-Range that does not match the request",
                            ));
                        }
                        resumed_from = have;
                        sink.seek(SeekFrom::Start(have)).ctx("seeking", &partial)?;
                        Some(File::open(&partial).ctx("opening", &partial)?)
                    } else {
                        sink.set_len(0).ctx("truncating", &partial)?;
                        sink.seek(SeekFrom::Start(0)).ctx("seeking", &partial)?;
                        None
                    };
                    let body: Box<dyn Read + Send> = Box::new(resp.into_body().into_reader());
                    (local, Some(body), Some(sink))
                }
            };
        progress.layer_start(
            &desc.digest,
            desc.size,
            if have_blob { desc.size } else { resumed_from },
        );
        let src = Source {
            local,
            net,
            sink,
            progress,
            digest: &desc.digest,
            cancel: &opts.cancel,
            pos: 0,
            limit: Some(desc.size),
        };
        let r = finish_layer(
            store,
            src,
            &tmpdir,
            &layer_name,
            desc,
            diff_id,
            chain,
            if have_blob { None } else { Some(&partial) },
            opts.limits,
        );
        match r {
            Err(Error::DigestMismatch { .. }) | Err(Error::SizeMismatch { .. })
                if attempt == 0 && resumed_from > 0 =>
            {
                let _ = std::fs::remove_file(&partial);
                continue;
            }
            Err(e) => {
                // Wrong bytes, or a layer refused for its size, are not worth resuming.
                if matches!(
                    e,
                    Error::DigestMismatch { .. }
                        | Error::SizeMismatch { .. }
                        | Error::BlobTooLong { .. }
                        | Error::UnpackLimit { .. }
                ) {
                    let _ = std::fs::remove_file(&partial);
                }
                let _ = fsutil::remove_tree(&tmpdir);
                return Err(e);
            }
            Ok(()) => {
                progress.layer_done(
                    &desc.digest,
                    if resumed_from > 0 {
                        "Resumed, done"
                    } else {
                        "Done"
                    },
                );
                return Ok(());
            }
        }
    }
    Err(Error::invalid(
        format!("blob {}", desc.digest),
        "download did not verify",
    ))
}

fn content_range_starts_at(resp: &crate::registry::Response, have: u64) -> bool {
    let Some(cr) = resp
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    // "bytes START-END/TOTAL"
    cr.trim()
        .strip_prefix("bytes ")
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.trim().parse::<u64>().ok())
        == Some(have)
}

#[allow(clippy::too_many_arguments)]
fn finish_layer(
    store: &Store,
    src: Source,
    tmpdir: &Path,
    layer_name: &str,
    desc: &Descriptor,
    diff_id: &Digest,
    chain: &Digest,
    partial: Option<&Path>,
    limits: unpack::UnpackLimits,
) -> Result<()> {
    let (got, size, got_diff, usize_, st) = stream_unpack(
        src,
        tmpdir,
        layer_name,
        Some((&desc.digest, desc.size)),
        limits,
    )?;
    crate::digest::verify(
        &format!("layer {}", desc.digest),
        &desc.digest,
        Some(desc.size),
        &got,
        size,
    )?;
    crate::digest::verify(
        &format!("layer {} diff_id", desc.digest),
        diff_id,
        None,
        &got_diff,
        usize_,
    )?;
    if let Some(p) = partial {
        store.commit_blob_file(p, &desc.digest)?;
    }
    store.commit_layer(
        tmpdir,
        &LayerMeta {
            chain_id: chain.clone(),
            diff_id: diff_id.clone(),
            digest: desc.digest.clone(),
            unpacked_size: st.bytes,
            entries: st.entries,
        },
    )
}

/// Unpack the image's layers, flattened (whiteouts applied), into `dest` — for where
/// overlayfs is not available. Uses the stored compressed blobs.
pub fn flatten(store: &Store, rec: &ImageRecord, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).ctx("creating", dest)?;
    for l in &rec.layers {
        let p = store.blob_path(&l.digest);
        let f = File::open(&p).ctx("opening", &p)?;
        let mut r = decompressing_reader(BufReader::with_capacity(CHUNK, f)).ctx("reading", &p)?;
        unpack::unpack(&mut r, dest, &UnpackOptions::flat(), &l.digest.to_string())?;
    }
    Ok(())
}

/// Sniff gzip/zstd/plain and return a decompressing reader.
pub fn decompressing_reader<R: BufRead + 'static>(mut r: R) -> io::Result<Box<dyn Read>> {
    let head = r.fill_buf()?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r)?)
    } else {
        Box::new(r)
    })
}

/// Unpack one (compressed) layer file into `dir/diff` with the same two-thread pipeline
/// as `pull` (decompress + digest | diff_id digest + unpack). Returns the diff_id and the
/// stats. Used by benchmarks and tools.
pub fn unpack_layer_file(path: &Path, dir: &Path) -> Result<(Digest, unpack::UnpackStats)> {
    let f = File::open(path).ctx("opening", path)?;
    let cancel = AtomicBool::new(false);
    let d = Digest::of(b"");
    let src = Source {
        local: Some(f),
        net: None,
        sink: None,
        progress: &NoProgress,
        digest: &d,
        cancel: &cancel,
        pos: 0,
        limit: None,
    };
    let limits = unpack::UnpackLimits::default();
    let (_, _, diff, _, st) = stream_unpack(src, dir, &path.display().to_string(), None, limits)?;
    Ok((diff, st))
}

/// Decompress a layer file and discard the output: the decode-speed ceiling for unpacking.
pub fn decode_layer_file(path: &Path) -> Result<u64> {
    let f = File::open(path).ctx("opening", path)?;
    let mut r = decompressing_reader(BufReader::with_capacity(CHUNK, f)).ctx("reading", path)?;
    io::copy(&mut r, &mut io::sink()).ctx("decompressing", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pull is cancelled (another layer failed) while this layer streams: the producer
    /// must stop with Interrupted, not spin (std's io::copy retries that kind forever).
    #[test]
    fn produce_stops_when_the_pull_is_cancelled_mid_layer() {
        static CANCEL: AtomicBool = AtomicBool::new(false);
        static DATA: [u8; 100_000] = [b'x'; 100_000];
        struct CancelAfterFirstRead(&'static [u8]);
        impl Read for CancelAfterFirstRead {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(4096);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                CANCEL.store(true, Ordering::Relaxed);
                Ok(n)
            }
        }
        let digest: &'static Digest = Box::leak(Box::new(Digest::of(b"")));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let src = Source {
                local: None,
                net: Some(Box::new(CancelAfterFirstRead(&DATA))),
                sink: None,
                progress: &NoProgress,
                digest,
                cancel: &CANCEL,
                pos: 0,
                limit: None,
            };
            let (tx, rx) = sync_channel(8);
            let r = produce(src, tx).map(|_| ());
            drop(rx);
            let _ = done_tx.send(r);
        });
        let r = done_rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("produce() did not return after the pull was cancelled");
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::Interrupted);
    }
}
