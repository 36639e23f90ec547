//! Test helpers: a real docker-registry on a loopback port, a tiny scriptable fake registry
//! (bearer tokens, slow bodies, corrupt blobs, Range logging), images built from busybox.
//!
//! Where the tests send traffic: every test binary that uses these helpers runs, as a
//! whole, in a network namespace of its own ([`enter_test_netns`], before `main`): only
//! loopback, with 10.200.53.53 on it as the one nameserver containers are given (husk.json's
//! `dns`, through HUSK_CONFIG). The registries, husk, its default bridge, the networks
//! tests make, netavark's firewall and NAT rules, aardvark-dns and every published port
//! live there, and it has no interface or route off this machine: no packet and no DNS
//! query can leave it, and nothing is added to the host's network namespace. The
//! namespace goes when the binary and the containers it started are gone. The one step
//! that needs the outside (debootstrap, in debian.rs) runs in the host's namespace
//! through [`in_host_netns`].
#![allow(dead_code)]

use husk_image::digest::Digest;
use husk_image::registry::{Body, ClientOptions, Registry};
use husk_image::tar::{Header, Kind, Writer};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The husk binary under test; husk-engine's tests, which share these helpers, have none.
pub const HUSK: &str = match option_env!("CARGO_BIN_EXE_husk") {
    Some(p) => p,
    None => "husk",
};

/// The nameserver containers in the test namespace are given: an address of its loopback
/// where nothing answers, so that a lookup fails at once and stays inside.
pub const TEST_DNS: &str = "10.200.53.53";

/// An fd of the host's network namespace, opened before this binary left it.
static HOST_NETNS: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Runs before `main` (and so before the test harness starts any thread, which would stay
/// behind in the host's namespace): move this process into a new network namespace.
#[used]
#[link_section = ".init_array"]
static ENTER_TEST_NETNS: extern "C" fn() = enter_test_netns;

extern "C" fn enter_test_netns() {
    let host = unsafe {
        libc::open(
            c"/proc/self/ns/net".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if host < 0 || unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        eprintln!(
            "husk tests: cannot make the tests' network namespace ({}): run them as root",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    HOST_NETNS.store(host, Ordering::Relaxed);
    for args in [
        vec!["link", "set", "lo", "up"],
        vec!["addr", "add", &format!("{TEST_DNS}/32"), "dev", "lo"],
    ] {
        let ok = Command::new("ip")
            .args(&args)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("husk tests: ip {args:?} failed in the tests' network namespace");
            std::process::exit(1);
        }
    }
    let cfg = std::env::temp_dir().join(format!("husk-it-config-{}.json", std::process::id()));
    std::fs::write(&cfg, format!("{{\"dns\": [\"{TEST_DNS}\"]}}")).unwrap();
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("HUSK_CONFIG", &cfg) };
}

/// `cmd` run in the host's network namespace (for what must reach outside: debootstrap).
pub fn in_host_netns(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    let fd = HOST_NETNS.load(Ordering::Relaxed);
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("husk-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        // unmount anything a test left mounted below, then remove
        let _ = Command::new("umount")
            .arg("-R")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
pub fn make_tls(dir: &Path) -> TlsFiles {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=husk test CA",
    ]);
    run(&a);
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&a);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.crt",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
    TlsFiles {
        ca: dir.join("ca.crt"),
        cert: dir.join("srv.crt"),
        key: dir.join("srv.key"),
    }
}

/// A real registry (Debian's docker-registry) on 127.0.0.1, killed on drop.
pub struct RealRegistry {
    pub child: Child,
    pub port: u16,
    pub dir: TempDir,
    pub tls: Option<TlsFiles>,
    pub creds: Option<(String, String)>,
}

impl RealRegistry {
    pub fn start(tls: bool, auth: bool) -> RealRegistry {
        let dir = TempDir::new("registry");
        let port = free_port();
        let tlsf = tls.then(|| make_tls(dir.path()));
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(t) = &tlsf {
            cfg.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            ));
        }
        let creds = auth.then(|| ("tester".to_string(), "s3cret pass".to_string()));
        if let Some((u, p)) = &creds {
            let h = bcrypt::hash_with_result(p, 4)
                .unwrap()
                .format_for_version(bcrypt::Version::TwoA);
            std::fs::write(dir.path().join("htpasswd"), format!("{u}:{h}\n")).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: husk-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        RealRegistry {
            child,
            port,
            dir,
            tls: tlsf,
            creds,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Client options that work against this registry (CA + credentials).
    pub fn client_options(&self) -> ClientOptions {
        let mut o = ClientOptions::default();
        if let Some(t) = &self.tls {
            let d = self.dir.path().join("certs");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(&t.ca, d.join("ca.crt")).unwrap();
            o.cert_dir = Some(d);
        }
        if let Some((u, p)) = &self.creds {
            o.credentials = Some(husk_image::auth::Credentials {
                username: u.clone(),
                password: p.clone(),
            });
        }
        o
    }
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

pub fn compress(data: &[u8], c: Comp) -> (Vec<u8>, &'static str) {
    match c {
        Comp::None => (data.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            (
                e.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Comp::Zstd => (
            zstd::encode_all(data, 3).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    }
}

pub struct Blob {
    pub digest: Digest,
    pub data: Vec<u8>,
    pub media_type: String,
}

pub struct Image {
    pub config: Blob,
    pub manifest: Blob,
    pub layers: Vec<Blob>,
}

pub fn config_json(arch: &str, diff_ids: &[Digest]) -> Vec<u8> {
    image_config_json(arch, &busybox_config(), diff_ids)
}

/// The busybox images' run config: Entrypoint sh -c, user app, workdir /srv, …
pub fn busybox_config() -> serde_json::Value {
    serde_json::json!({
        "Env": ["PATH=/bin", "GREETING=hello"],
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo $GREETING"],
        "WorkingDir": "/srv",
        "User": "app",
        "ExposedPorts": {"8080/tcp": {}},
        "Volumes": {"/data": {}},
        "Labels": {"org.example": "yes"}
    })
}

/// An image config blob: `config` is its run config (Env, Cmd, User, …).
pub fn image_config_json(arch: &str, config: &serde_json::Value, diff_ids: &[Digest]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": []
    }))
    .unwrap()
}

/// Build an image from uncompressed layer tars, with the busybox run config.
pub fn build_image(layers: &[(Vec<u8>, Comp)], arch: &str) -> Image {
    build_image_with_config(layers, arch, &busybox_config())
}

/// Build an image from uncompressed layer tars and a run config.
pub fn build_image_with_config(
    layers: &[(Vec<u8>, Comp)],
    arch: &str,
    config: &serde_json::Value,
) -> Image {
    let mut blobs = Vec::new();
    let mut diff_ids = Vec::new();
    for (tar, c) in layers {
        diff_ids.push(Digest::of(tar));
        let (data, mt) = compress(tar, *c);
        blobs.push(Blob {
            digest: Digest::of(&data),
            data,
            media_type: mt.into(),
        });
    }
    let cfg = image_config_json(arch, config, &diff_ids);
    let config = Blob {
        digest: Digest::of(&cfg),
        data: cfg,
        media_type: "application/vnd.oci.image.config.v1+json".into(),
    };
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.data.len()},
        "layers": blobs.iter().map(|b| serde_json::json!({"mediaType": b.media_type, "digest": b.digest, "size": b.data.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let manifest = Blob {
        digest: Digest::of(&m),
        data: m,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
    };
    Image {
        config,
        manifest,
        layers: blobs,
    }
}

pub fn index_json(entries: &[(&Image, &str, Option<&str>)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries.iter().map(|(img, arch, variant)| {
            let mut p = serde_json::json!({"os": "linux", "architecture": arch});
            if let Some(v) = variant { p["variant"] = serde_json::json!(v); }
            serde_json::json!({"mediaType": img.manifest.media_type, "digest": img.manifest.digest, "size": img.manifest.data.len(), "platform": p})
        }).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Push with our own client (blobs, then the manifest under `tag`).
pub fn push_image(host: &str, opts: &ClientOptions, repo: &str, tag: &str, img: &Image) {
    let reg = Registry::new(host, opts).unwrap();
    for b in img.layers.iter().chain(std::iter::once(&img.config)) {
        if !reg.blob_exists(repo, &b.digest).unwrap() {
            reg.upload_blob(repo, &b.digest, Body::Bytes(&b.data))
                .unwrap();
        }
    }
    reg.put_manifest(repo, tag, &img.manifest.media_type, &img.manifest.data)
        .unwrap();
}

pub fn push_index(
    host: &str,
    opts: &ClientOptions,
    repo: &str,
    tag: &str,
    imgs: &[(&Image, &str, Option<&str>)],
) {
    for (img, _, _) in imgs {
        push_image(host, opts, repo, &img.manifest.digest.to_string(), img);
    }
    let reg = Registry::new(host, opts).unwrap();
    reg.put_manifest(
        repo,
        tag,
        "application/vnd.oci.image.index.v1+json",
        &index_json(imgs),
    )
    .unwrap();
}

fn hdr(kind: Kind, path: &str, mode: u32) -> Header {
    let mut h = Header::new(kind, path);
    h.mode = mode;
    h.mtime = 1_600_000_000;
    h
}

/// Layer 1: busybox, a passwd, a hardlink, a file and a dir the next layer hides.
pub fn busybox_base_layer() -> Vec<u8> {
    let bb = std::fs::read("/bin/busybox").expect("/bin/busybox (apt-get install busybox-static)");
    let mut w = Writer::new(Vec::new());
    for d in ["bin", "etc", "opq", "srv", "tmp", "dev", "data"] {
        w.append(&hdr(Kind::Dir, d, 0o755), &mut std::io::empty())
            .unwrap();
    }
    let mut h = hdr(Kind::File, "bin/busybox", 0o755);
    h.size = bb.len() as u64;
    w.append(&h, &mut &bb[..]).unwrap();
    for l in ["sh", "echo", "cat", "ls", "id"] {
        let mut h = hdr(Kind::Symlink, &format!("bin/{l}"), 0o777);
        h.link = b"busybox".to_vec();
        w.append(&h, &mut std::io::empty()).unwrap();
    }
    let mut h = hdr(Kind::HardLink, "bin/busybox-hardlink", 0o755);
    h.link = b"bin/busybox".to_vec();
    w.append(&h, &mut std::io::empty()).unwrap();
    w.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    w.file(
        "etc/group",
        0o644,
        b"root:x:0:\napp:x:1000:\nwheel:x:10:app\n",
    )
    .unwrap();
    w.file("etc/remove-me", 0o644, b"gone in layer 2\n")
        .unwrap();
    w.file("opq/a", 0o644, b"a\n").unwrap();
    w.file("opq/b", 0o644, b"b\n").unwrap();
    w.dir("opq/sub", 0o755).unwrap();
    w.file("opq/sub/deep", 0o644, b"deep\n").unwrap();
    w.file("srv/version", 0o644, b"1\n").unwrap();
    w.finish().unwrap()
}

/// Layer 2: whiteout, opaque dir, device node, fifo, xattr, setuid file owned by 1000.
pub fn busybox_second_layer() -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    w.append(&hdr(Kind::Dir, "etc", 0o755), &mut std::io::empty())
        .unwrap();
    w.file("etc/.wh.remove-me", 0o644, b"").unwrap();
    w.append(&hdr(Kind::Dir, "opq", 0o700), &mut std::io::empty())
        .unwrap();
    w.file("opq/.wh..wh..opq", 0o644, b"").unwrap();
    w.file("opq/c", 0o644, b"c\n").unwrap();
    let mut h = hdr(Kind::Char, "dev/null", 0o666);
    h.devmajor = 1;
    h.devminor = 3;
    w.append(&h, &mut std::io::empty()).unwrap();
    w.append(&hdr(Kind::Fifo, "tmp/fifo", 0o620), &mut std::io::empty())
        .unwrap();
    let mut h = hdr(Kind::File, "srv/tool", 0o4755);
    h.uid = 1000;
    h.gid = 1000;
    h.size = 5;
    h.xattrs
        .push(("user.husk.test".into(), b"xattr-value".to_vec()));
    w.append(&h, &mut &b"tool\n"[..]).unwrap();
    w.finish().unwrap()
}

/// Layer 3: overwrite a file of layer 1 and add one.
pub fn busybox_third_layer() -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    w.file("srv/version", 0o600, b"3\n").unwrap();
    w.file("srv/new", 0o644, b"new\n").unwrap();
    w.finish().unwrap()
}

pub fn busybox_image(arch: &str) -> Image {
    build_image(
        &[
            (busybox_base_layer(), Comp::Gzip),
            (busybox_second_layer(), Comp::Gzip),
            (busybox_third_layer(), Comp::Zstd),
        ],
        arch,
    )
}

pub fn husk(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(HUSK)
        .arg("--root")
        .arg(root)
        .args(args)
        .env("HOME", root)
        .output()
        .unwrap()
}

/// (exit code, stdout, stderr) of `husk --root ROOT ARGS`.
pub fn out(root: &Path, args: &[&str]) -> (i32, String, String) {
    let o = husk(root, args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `husk --root ROOT ARGS` under `script`, which gives it a terminal. SHELL is pinned:
/// script runs `$SHELL -c`, and the test must not depend on the caller's shell.
pub fn on_a_terminal(root: &Path, args: &str) -> std::process::Output {
    Command::new("script")
        .args([
            "-qec",
            &format!("{HUSK} --root {} {args}", root.display()),
            "/dev/null",
        ])
        .env("SHELL", "/bin/sh")
        .env("HOME", root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            // Held open until the end: at EOF on its stdin script types the pty's EOF
            // character, which turns into a NUL byte ("^@" in the output) when it lands
            // just as husk switches the terminal to raw mode.
            let held_open = child.stdin.take();
            let out = child.wait_with_output();
            drop(held_open);
            out
        })
        .unwrap()
}

/// [`out`] with `input` written to husk's stdin (then closed).
pub fn out_with_stdin(root: &Path, args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut c = Command::new(HUSK)
        .arg("--root")
        .arg(root)
        .args(args)
        .env("HOME", root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = c.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A loopback docker-registry holding the busybox image, and an empty store for husk.
pub struct Setup {
    pub reg: RealRegistry,
    pub t: TempDir,
    pub root: PathBuf,
    /// registry/busybox:latest
    pub image: String,
}

pub fn setup(tag: &str) -> Setup {
    let reg = RealRegistry::start(false, false);
    push_image(
        &reg.host(),
        &ClientOptions::default(),
        "busybox",
        "latest",
        &busybox_image("amd64"),
    );
    let t = TempDir::new(tag);
    let root = t.path().join("store");
    let image = format!("{}/busybox:latest", reg.host());
    Setup {
        reg,
        t,
        root,
        image,
    }
}

pub fn husk_ok(root: &Path, args: &[&str]) -> String {
    let out = husk(root, args);
    assert!(
        out.status.success(),
        "husk {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `name` as docker's views show it: the status of its `ps -a --format json` row, and from
/// `inspect` its pid and its exit code once recorded (FinishedAt set), else null. None
/// when `ps -a` does not list it.
pub fn find_container_state(root: &Path, name: &str) -> Option<serde_json::Value> {
    use serde_json::Value;
    let rows = husk_ok(root, &["ps", "-a", "--format", "json"]);
    let row: Value = rows
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["Names"] == name)?;
    let inspect = husk_ok(root, &["inspect", "--type", "container", name]);
    let state = serde_json::from_str::<Value>(&inspect).unwrap()[0]["State"].clone();
    let recorded = state["FinishedAt"] != "0001-01-01T00:00:00Z";
    Some(serde_json::json!({
        "status": row["State"],
        "pid": state["Pid"],
        "exit_code": if recorded { state["ExitCode"].clone() } else { Value::Null },
    }))
}

/// [`find_container_state`] of a container that must be there.
pub fn container_state(root: &Path, name: &str) -> serde_json::Value {
    find_container_state(root, name).unwrap_or_else(|| panic!("{name} not in ps -a"))
}

/// Describe a tree: path → (type, mode, uid, gid, content/link/dev, mtime) for comparison.
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        let mut ents: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        ents.sort();
        for p in ents {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = m.file_type();
            let what = if ft.is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_file() {
                format!("file {}", Digest::of(&std::fs::read(&p).unwrap()))
            } else {
                format!("special {:o} {}", m.mode() & libc::S_IFMT, m.rdev())
            };
            let mtime = if ft.is_dir() { 0 } else { m.mtime() };
            out.insert(
                rel,
                format!(
                    "{what} mode={:o} {}:{} mtime={mtime}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid()
                ),
            );
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

pub fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let cp = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let cn = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        None
    } else {
        buf.truncate(n as usize);
        Some(buf)
    }
}

// ---------------------------------------------------------------------------------------
// What `husk run` may leave on the host: container dirs, mounts, engine cgroups and state.

/// The container dirs in a store.
pub fn containers(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("containers"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

pub fn mounts_below(p: &Path) -> Vec<String> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = p.display().to_string();
    mi.lines()
        .filter(|l| l.contains(&p))
        .map(String::from)
        .collect()
}

/// Kills and removes whatever containers a failed assertion left running.
pub struct RemoveAll<'a>(pub &'a Path);

impl Drop for RemoveAll<'_> {
    fn drop(&mut self) {
        for dir in containers(self.0) {
            let id = dir.file_name().unwrap().to_string_lossy().into_owned();
            let _ = husk(self.0, &["rm", "-f", &id]);
        }
    }
}

/// Removes the pods a failed assertion left (before [`RemoveAll`], which cannot remove an
/// infra container while its pod exists: declare it after that guard).
pub struct RemovePods<'a>(pub &'a Path);

impl Drop for RemovePods<'_> {
    fn drop(&mut self) {
        let ids = husk(self.0, &["pod", "ls", "-q", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = husk(self.0, &["pod", "rm", "-f", id]);
        }
    }
}

/// The whole answer of GET `path` from 127.0.0.1:`port` (retried while it is refused).
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    for _ in 0..50 {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(c, "GET {path} HTTP/1.0\r\n\r\n");
            let mut s = String::new();
            if c.read_to_string(&mut s).is_ok() && !s.is_empty() {
                return s;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("nothing answered on 127.0.0.1:{port}");
}

/// controller/id of every engine container cgroup on the host (v1 hierarchies and v2).
pub fn engine_cgroups() -> Vec<String> {
    let mut out = Vec::new();
    for c in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let mut dirs = vec![c.path().join("husk-engine")];
        if c.file_name() == "husk-engine" {
            dirs = vec![c.path()];
        }
        for d in dirs {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    out.push(format!(
                        "{}/{}",
                        c.file_name().to_string_lossy(),
                        e.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

/// The host path of a container's cgroup for CONTROLLER from its /proc/self/cgroup.
pub fn cgroup_dir(proc_cgroup: &str, controller: &str) -> PathBuf {
    for l in proc_cgroup.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctl, path) = (f.next(), f.next().unwrap(), f.next().unwrap());
        if ctl.split(',').any(|c| c == controller) {
            return Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(&path[1..]);
        }
        if ctl.is_empty() && std::fs::metadata("/sys/fs/cgroup/cgroup.controllers").is_ok() {
            return Path::new("/sys/fs/cgroup").join(&path[1..]);
        }
    }
    panic!("no {controller} cgroup in {proc_cgroup}");
}

pub fn engine_states() -> Vec<String> {
    std::fs::read_dir("/run/husk-engine")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// A tiny fake registry for what the real one can't be made to do on cue.

#[derive(Default)]
pub struct FakeState {
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    pub blobs: HashMap<String, Vec<u8>>,
    /// require "Authorization: Bearer <token>" and serve the token at /token
    pub bearer_token: Option<String>,
    /// bytes/sec cap for blob bodies (0 = unlimited)
    pub throttle: usize,
    pub ignore_range: bool,
    pub log: Vec<String>,
}

pub struct FakeRegistry {
    pub port: u16,
    pub state: Arc<Mutex<FakeState>>,
    stop: Arc<AtomicBool>,
}

impl FakeRegistry {
    pub fn start(state: FakeState) -> FakeRegistry {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (state.clone(), stop.clone());
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !st2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        let s3 = s2.clone();
                        std::thread::spawn(move || {
                            let _ = serve(c, port, s3);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeRegistry { port, state, stop }
    }
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    pub fn add_image(&self, repo: &str, tag: &str, img: &Image) {
        let mut s = self.state.lock().unwrap();
        for b in img.layers.iter().chain(std::iter::once(&img.config)) {
            s.blobs.insert(b.digest.to_string(), b.data.clone());
        }
        let m = (img.manifest.media_type.clone(), img.manifest.data.clone());
        s.manifests.insert(format!("{repo}:{tag}"), m.clone());
        s.manifests
            .insert(format!("{repo}:{}", img.manifest.digest), m);
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(c: TcpStream, port: u16, state: Arc<Mutex<FakeState>>) -> std::io::Result<()> {
    let mut r = BufReader::new(c.try_clone()?);
    let mut w = c;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let (status, ctype, body, extra, throttle) = {
            let mut s = state.lock().unwrap();
            s.log.push(format!(
                "{method} {path} range={}",
                headers.get("range").cloned().unwrap_or_default()
            ));
            route(&mut s, port, &method, &path, &headers)
        };
        let mut head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: {ctype}\r\n",
            body.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        w.write_all(head.as_bytes())?;
        if method != "HEAD" {
            if throttle == 0 {
                w.write_all(&body)?;
            } else {
                for chunk in body.chunks(throttle / 20 + 1) {
                    w.write_all(chunk)?;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        w.flush()?;
    }
}

type Reply = (String, String, Vec<u8>, Vec<(String, String)>, usize);

fn route(
    s: &mut FakeState,
    port: u16,
    _method: &str,
    path: &str,
    headers: &HashMap<String, String>,
) -> Reply {
    let json = "application/json".to_string();
    if path.starts_with("/token") {
        let t = s.bearer_token.clone().unwrap_or_default();
        return (
            "200 OK".into(),
            json,
            format!("{{\"token\":\"{t}\"}}").into_bytes(),
            vec![],
            0,
        );
    }
    if let Some(t) = &s.bearer_token {
        if headers.get("authorization") != Some(&format!("Bearer {t}")) {
            let ch = format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\",scope=\"repository:x:pull\"");
            return (
                "401 Unauthorized".into(),
                json,
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}"#.to_vec(),
                vec![("WWW-Authenticate".into(), ch)],
                0,
            );
        }
    }
    if path == "/v2/" {
        return ("200 OK".into(), json, b"{}".to_vec(), vec![], 0);
    }
    let not_found = |code: &str| -> Reply {
        (
            "404 Not Found".into(),
            "application/json".into(),
            format!(
                "{{\"errors\":[{{\"code\":\"{code}\",\"message\":\"{}\"}}]}}",
                code.to_lowercase().replace('_', " ")
            )
            .into_bytes(),
            vec![],
            0,
        )
    };
    let rest = path.trim_start_matches("/v2/");
    if let Some(i) = rest.find("/manifests/") {
        let key = format!("{}:{}", &rest[..i], &rest[i + 11..]);
        return match s.manifests.get(&key) {
            Some((mt, d)) => ("200 OK".into(), mt.clone(), d.clone(), vec![], 0),
            None => not_found("MANIFEST_UNKNOWN"),
        };
    }
    if let Some(i) = rest.find("/blobs/") {
        let d = &rest[i + 7..];
        let Some(data) = s.blobs.get(d).cloned() else {
            return not_found("BLOB_UNKNOWN");
        };
        if let (Some(r), false) = (headers.get("range"), s.ignore_range) {
            let start: usize = r
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap();
            let cr = format!("bytes {start}-{}/{}", data.len() - 1, data.len());
            return (
                "206 Partial Content".into(),
                "application/octet-stream".into(),
                data[start..].to_vec(),
                vec![("Content-Range".into(), cr)],
                s.throttle,
            );
        }
        return (
            "200 OK".into(),
            "application/octet-stream".into(),
            data,
            vec![],
            s.throttle,
        );
    }
    not_found("NAME_UNKNOWN")
}

/// Read all of a child's stderr.
pub fn stderr_of(c: &mut Child) -> String {
    let mut s = String::new();
    if let Some(e) = c.stderr.as_mut() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// podman (Debian's 4.3) beside husk, for tests that compare the two: its own storage, run
/// and temp roots under `dir`, the cgroupfs manager, file events, runc as its runtime
/// (crun refuses a hybrid cgroup layout) and default ulimits no higher than this
/// machine's hard limits. Images come from `import_busybox`.
pub struct Podman {
    dir: PathBuf,
}

impl Podman {
    pub fn new(dir: &Path) -> Podman {
        for bin in ["/usr/bin/podman", "/usr/sbin/runc"] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is required (scripts/deps.sh installs it)"
            );
        }
        let hard = |res| {
            let mut r = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            unsafe { libc::getrlimit(res, &mut r) };
            r.rlim_max
        };
        let (nofile, nproc) = (
            hard(libc::RLIMIT_NOFILE).min(1024),
            hard(libc::RLIMIT_NPROC).min(4096),
        );
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("containers.conf"),
            format!("[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n"),
        )
        .unwrap();
        Podman { dir: dir.into() }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.args(["120", "podman", "--runtime", "runc"])
            .args(["--cgroup-manager=cgroupfs", "--events-backend=file"])
            .arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"));
        c
    }

    /// `podman ARGS`, which must succeed: its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args).output().unwrap();
        assert!(
            o.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// The busybox base layer as image `name`.
    pub fn import_busybox(&self, name: &str) {
        let mut c = self.cmd(&["import", "-q", "-", name]);
        c.stdin(Stdio::piped()).stdout(Stdio::null());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&busybox_base_layer())
            .unwrap();
        assert!(child.wait().unwrap().success(), "podman import");
    }
}

/// A static udp echo server (C, built here: busybox has no udp server), bind-mounted
/// into a container.
pub fn udp_echo_binary(dir: &Path) -> PathBuf {
    let src = dir.join("udpecho.c");
    std::fs::write(
        &src,
        r#"#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
    for (;;) {
        char b[512];
        struct sockaddr_in p;
        socklen_t l = sizeof p;
        ssize_t n = recvfrom(s, b, sizeof b, 0, (struct sockaddr *)&p, &l);
        if (n >= 0) sendto(s, b, n, 0, (struct sockaddr *)&p, l);
    }
}
"#,
    )
    .unwrap();
    let bin = dir.join("udpecho");
    let o = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    bin
}

/// A udp round trip to 127.0.0.1:`port`, retried while the server starts.
pub fn udp_echo(port: u16) -> String {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 64];
    for _ in 0..30 {
        s.send_to(b"ping over udp", ("127.0.0.1", port)).unwrap();
        if let Ok(n) = s.recv(&mut b) {
            return String::from_utf8_lossy(&b[..n]).into_owned();
        }
    }
    panic!("no udp echo on port {port}");
}

/// The seccomp probe (one system call per argument, `NAME=ok|ERRNO` each), built static
/// from tests/seccomp/probe.c into `dir`.
pub fn build_probe(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seccomp/probe.c");
    let bin = dir.join("probe");
    let o = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("cc (gcc and libc6-dev: scripts/deps.sh installs them)");
    assert!(
        o.status.success(),
        "cc -static probe.c: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    bin
}
