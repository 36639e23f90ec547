//! The store guards the disk: a registry that sends too much, or a layer that expands too
//! much, stops the pull with an error naming the blob or layer, and leaves nothing behind.
//!
//! The registry is a few lines of HTTP on 127.0.0.1 written here, so a test can make it
//! misbehave (an endless body) in ways a real registry would not.

use husk_image::pull::{pull, PullOptions};
use husk_image::store::Store;
use husk_image::tar::Writer;
use husk_image::unpack::UnpackLimits;
use husk_image::{Digest, Error, Reference};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How the layer blob is served.
#[derive(Clone, Copy)]
enum LayerBody {
    /// exactly its bytes
    Honest,
    /// zeros without a Content-Length until the client hangs up (or 256 MiB, so that a
    /// husk without the guard fails this test instead of filling the disk)
    Endless,
}

struct Image {
    manifest: Vec<u8>,
    config: Vec<u8>,
    config_digest: Digest,
    layer: Vec<u8>,
    layer_digest: Digest,
}

/// An image of one layer; `declared_size` is what the manifest says the layer's size is.
fn image(layer: Vec<u8>, diff_id: &Digest, declared_size: u64) -> Image {
    let config = format!(
        r#"{{"architecture":"{}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#,
        husk_image::manifest::Platform::host().architecture
    )
    .into_bytes();
    let config_digest = Digest::of(&config);
    let layer_digest = Digest::of(&layer);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{declared_size}}}]}}"#,
        config.len()
    )
    .into_bytes();
    Image {
        manifest,
        config,
        config_digest,
        layer,
        layer_digest,
    }
}

fn respond(mut s: TcpStream, img: &Image, body: LayerBody) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut first = String::new();
    if r.read_line(&mut first).is_err() || !first.starts_with("GET ") {
        return; // a TLS hello (https is tried first) or garbage: hang up
    }
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
            break;
        }
    }
    let path = first.split(' ').nth(1).unwrap_or("");
    let ok = |s: &mut TcpStream, ct: &str, b: &[u8]| {
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            b.len()
        );
        let _ = s.write_all(b);
    };
    if path == "/v2/" {
        ok(&mut s, "application/json", b"{}");
    } else if path.ends_with("/manifests/latest") {
        ok(
            &mut s,
            "application/vnd.oci.image.manifest.v1+json",
            &img.manifest,
        );
    } else if path.ends_with(&format!("/blobs/{}", img.config_digest)) {
        ok(&mut s, "application/octet-stream", &img.config);
    } else if path.ends_with(&format!("/blobs/{}", img.layer_digest)) {
        match body {
            LayerBody::Honest => ok(&mut s, "application/octet-stream", &img.layer),
            LayerBody::Endless => {
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
                );
                let zeros = vec![0u8; 64 << 10];
                for _ in 0..(256 << 20) / zeros.len() {
                    if s.write_all(&zeros).is_err() {
                        break;
                    }
                }
            }
        }
    } else {
        let _ = write!(
            s,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
}

/// Serve `img` on 127.0.0.1 (a thread per connection, for the life of the test process).
fn serve(img: Image, body: LayerBody) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let img = std::sync::Arc::new(img);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let img = img.clone();
            std::thread::spawn(move || respond(s, &img, body));
        }
    });
    format!("127.0.0.1:{}/guards/test:latest", addr.port())
}

struct TempStore(PathBuf);
impl TempStore {
    fn new(tag: &str) -> TempStore {
        let p = std::env::temp_dir().join(format!("husk-guards-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempStore(p)
    }
}
impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// No layer, no layer blob, no partial download or unpack dir (lock files may stay).
fn assert_nothing_left(root: &Path, img_layer: &Digest) {
    assert!(
        names_in(&root.join("layers")).is_empty(),
        "a layer was left"
    );
    assert!(!names_in(&root.join("blobs/sha256")).contains(&img_layer.hex().to_string()));
    let tmp: Vec<String> = names_in(&root.join("tmp"))
        .into_iter()
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(tmp.is_empty(), "left in tmp: {tmp:?}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn an_endless_body_stops_at_the_declared_size() {
    let layer = vec![0u8; 1 << 20];
    let img = image(layer.clone(), &Digest::of(&layer), layer.len() as u64);
    let layer_digest = img.layer_digest.clone();
    let reference = serve(img, LayerBody::Endless);
    let ts = TempStore::new("endless");
    let store = Store::open(&ts.0).unwrap();
    let start = Instant::now();
    let r = pull(
        &store,
        &Reference::parse(&reference).unwrap(),
        &PullOptions::default(),
    );
    match r {
        Err(Error::BlobTooLong { digest, declared }) => {
            assert_eq!(digest, layer_digest.to_string());
            assert_eq!(declared, 1 << 20);
        }
        other => panic!("expected BlobTooLong, got {:?}", other.map(|_| ())),
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the pull took {:?}",
        start.elapsed()
    );
    assert_nothing_left(&ts.0, &layer_digest);
}

#[test]
fn a_gzip_bomb_stops_at_the_byte_limit() {
    let tar = {
        let mut w = Writer::new(Vec::new());
        w.file("zeros", 0o644, &vec![0u8; 8 << 20]).unwrap();
        w.finish().unwrap()
    };
    let layer = gzip(&tar);
    assert!(layer.len() < 64 << 10, "not a bomb: {} bytes", layer.len());
    let img = image(layer.clone(), &Digest::of(&tar), layer.len() as u64);
    let layer_digest = img.layer_digest.clone();
    let reference = serve(img, LayerBody::Honest);
    let ts = TempStore::new("bomb");
    let store = Store::open(&ts.0).unwrap();
    let opts = PullOptions {
        limits: UnpackLimits {
            max_bytes: 1 << 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let r = pull(&store, &Reference::parse(&reference).unwrap(), &opts);
    match r {
        Err(e @ Error::UnpackLimit { .. }) => {
            let m = e.to_string();
            assert!(m.contains(&layer_digest.to_string()), "{m}");
            assert!(m.contains("1048576 bytes"), "{m}");
        }
        other => panic!("expected UnpackLimit, got {:?}", other.map(|_| ())),
    }
    assert_nothing_left(&ts.0, &layer_digest);
    // The same image within the default limits pulls.
    pull(
        &store,
        &Reference::parse(&reference).unwrap(),
        &PullOptions::default(),
    )
    .unwrap();
}

#[test]
fn too_many_entries_stop_at_the_entry_limit() {
    let tar = {
        let mut w = Writer::new(Vec::new());
        for i in 0..50 {
            w.file(&format!("f{i}"), 0o644, b"").unwrap();
        }
        w.finish().unwrap()
    };
    let layer = gzip(&tar);
    let img = image(layer.clone(), &Digest::of(&tar), layer.len() as u64);
    let layer_digest = img.layer_digest.clone();
    let reference = serve(img, LayerBody::Honest);
    let ts = TempStore::new("entries");
    let store = Store::open(&ts.0).unwrap();
    let opts = PullOptions {
        limits: UnpackLimits {
            max_entries: 10,
            ..Default::default()
        },
        ..Default::default()
    };
    match pull(&store, &Reference::parse(&reference).unwrap(), &opts) {
        Err(e @ Error::UnpackLimit { .. }) => {
            assert!(e.to_string().contains("10 entries"), "{e}")
        }
        other => panic!("expected UnpackLimit, got {:?}", other.map(|_| ())),
    }
    assert_nothing_left(&ts.0, &layer_digest);
}

/// A store on a 1 MiB tmpfs: pulling a 1 MiB layer is refused before anything is fetched,
/// with the space needed and available.
#[test]
fn a_pull_the_disk_cannot_hold_is_refused_up_front() {
    assert!(husk_image::fsutil::is_root(), "this test mounts a tmpfs");
    let layer = vec![0u8; 1 << 20];
    let img = image(layer.clone(), &Digest::of(&layer), layer.len() as u64);
    let layer_digest = img.layer_digest.clone();
    let reference = serve(img, LayerBody::Honest);
    let ts = TempStore::new("space");
    std::fs::create_dir_all(&ts.0).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "husk-guards"])
        .arg(&ts.0)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a tmpfs failed");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(&ts.0);
    let store = Store::open(&ts.0).unwrap();
    match pull(
        &store,
        &Reference::parse(&reference).unwrap(),
        &PullOptions::default(),
    ) {
        Err(e @ Error::NoSpace { .. }) => {
            let m = e.to_string();
            assert!(m.contains(&format!("{} bytes needed", 2u64 << 20)), "{m}");
        }
        other => panic!("expected NoSpace, got {:?}", other.map(|_| ())),
    }
    assert_nothing_left(&ts.0, &layer_digest);
}

/// `verify` finds a corrupted blob and a half-gone layer; `repair` removes them and the
/// next pull fetches them again, after which the store verifies clean.
#[test]
fn verify_reports_and_repair_removes_what_is_corrupt() {
    use husk_image::verify::Problem;
    let tar = {
        let mut w = Writer::new(Vec::new());
        w.file("etc/hello", 0o644, b"hello\n").unwrap();
        w.finish().unwrap()
    };
    let layer = gzip(&tar);
    let img = image(layer.clone(), &Digest::of(&tar), layer.len() as u64);
    let (layer_digest, config_digest) = (img.layer_digest.clone(), img.config_digest.clone());
    let reference = Reference::parse(&serve(img, LayerBody::Honest)).unwrap();
    let ts = TempStore::new("verify");
    let store = Store::open(&ts.0).unwrap();
    let rec = pull(&store, &reference, &PullOptions::default()).unwrap();
    let chain = rec.layers[0].chain_id.clone();
    let clean = store.verify(None, false).unwrap();
    assert_eq!(clean.problems, vec![]);
    assert_eq!((clean.blobs_checked, clean.layers_checked), (3, 1));

    // one flipped byte in the layer blob; the config blob gone
    let lp = store.blob_path(&layer_digest);
    let mut data = std::fs::read(&lp).unwrap();
    data[20] ^= 1;
    std::fs::write(&lp, data).unwrap();
    std::fs::remove_file(store.blob_path(&config_digest)).unwrap();
    let r = store.verify(Some(&rec), false).unwrap();
    assert_eq!(
        r.problems,
        vec![
            Problem::CorruptBlob {
                digest: layer_digest.clone()
            },
            Problem::MissingBlob {
                digest: config_digest.clone(),
                image: rec.manifest_digest.clone()
            },
        ]
    );
    assert!(
        r.removed.is_empty() && lp.exists(),
        "no repair without asking"
    );

    let r = store.verify(None, true).unwrap();
    assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
    // the bad blob and the layer unpacked from it are gone, so a pull fetches both
    assert!(!lp.exists());
    assert!(!store.has_layer(&chain));
    let r = store.verify(None, false).unwrap();
    assert!(
        r.problems.contains(&Problem::MissingLayer {
            chain_id: chain.clone(),
            image: rec.manifest_digest.clone()
        }),
        "{:?}",
        r.problems
    );
    pull(&store, &reference, &PullOptions::default()).unwrap();
    assert_eq!(store.verify(None, false).unwrap().problems, vec![]);

    // a layer dir half removed (its content gone, as by a kill in the middle of a removal)
    std::fs::remove_dir_all(store.layer_dir(&chain)).unwrap();
    let r = store.verify(None, true).unwrap();
    assert_eq!(
        r.problems,
        vec![Problem::MissingLayer {
            chain_id: chain.clone(),
            image: rec.manifest_digest.clone()
        }]
    );
    assert!(!store.layer_root(&chain).exists());
}
