//! `husk build`, end to end as root: real RUN containers (on the default bridge network,
//! as `husk run`'s, or `--network none|host|NAME`; the default seccomp filter), layers in
//! the store, the cache, reproducible digests, hostile contexts, and what a killed or
//! failed build leaves (nothing: no container, mount, interface, lease or process). The
//! base image is busybox imported from a tar (no registry needed); `ADD URL` and RUN's
//! wget talk to a one-thread HTTP server of the test. Every bridge, veth and server is in
//! the test binary's own network namespace (tests/common: `enter_test_netns`).

mod common;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BASE: &str = "localhost/bb:latest";

/// A store with busybox imported as localhost/bb, and a context directory.
struct B {
    _t: TempDir,
    root: PathBuf,
    ctx: PathBuf,
}

fn setup_build(tag: &str) -> B {
    let t = TempDir::new(tag);
    let root = t.path().join("store");
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let (code, _, err) = out_with_stdin(&root, &["import", "-", BASE], &busybox_base_layer());
    assert_eq!(code, 0, "{err}");
    B { _t: t, root, ctx }
}

impl B {
    fn file(&self, rel: &str, data: &str) {
        let p = self.ctx.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn build(&self, args: &[&str]) -> (i32, String, String) {
        let mut a = vec!["build"];
        a.extend_from_slice(args);
        let ctx = self.ctx.to_str().unwrap();
        a.push(ctx);
        out(&self.root, &a)
    }

    fn build_ok(&self, args: &[&str]) -> String {
        let (code, o, e) = self.build(args);
        assert_eq!(code, 0, "build {args:?} failed: {e}\n{o}");
        o
    }

    fn config(&self, image: &str) -> Value {
        let j = husk_ok(&self.root, &["inspect", "--type", "image", image]);
        serde_json::from_str::<Value>(&j).unwrap()[0].clone()
    }

    fn run(&self, image: &str, cmd: &str) -> String {
        husk_ok(
            &self.root,
            &["run", "--rm", "--network", "none", image, "sh", "-c", cmd],
        )
    }

    /// The store's layer directories.
    fn layer_count(&self) -> usize {
        std::fs::read_dir(self.root.join("layers")).unwrap().count()
    }
}

/// The image id a build printed last.
fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or("").to_string()
}

/// A one-connection-at-a-time HTTP server on loopback answering every GET with `body`.
fn http_server(body: &'static [u8]) -> String {
    format!("http://{}", http_server_at("127.0.0.1", body))
}

/// The same on `ip` of the test's network namespace (`0.0.0.0`: the bridges' gateway
/// addresses too, which a RUN on a bridge network reaches).
fn http_server_at(ip: &str, body: &'static [u8]) -> std::net::SocketAddr {
    let l = TcpListener::bind((ip, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    addr
}

#[test]
fn build_config_instructions_args_and_flags() {
    let b = setup_build("build-config");
    b.file(
        "Containerfile",
        r#"# syntax=docker/dockerfile:1
ARG BASE=localhost/bb
ARG TAG=latest
FROM ${BASE}:${TAG} AS final
ARG TAG
ARG V=default
ENV A=1 B="two words" \
    C=${V}-${TAG}
ENV OLD old style value
LABEL org.test.v=$V "quoted key"=yes
WORKDIR /srv
WORKDIR app
USER app
EXPOSE 80 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD echo ok
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT echo ep
CMD ["x"]
ONBUILD RUN echo triggered
MAINTAINER someone
"#,
    );
    // Dockerfile is only read when there is no Containerfile.
    b.file("Dockerfile", "FROM nothing-here\n");
    let iid = b.ctx.parent().unwrap().join("iid");
    let o = b.build_ok(&[
        "-t",
        "localhost/one",
        "-t",
        "localhost/two:v2",
        "--build-arg",
        "V=given",
        "--label",
        "extra=1",
        "--iidfile",
        iid.to_str().unwrap(),
    ]);
    assert!(o.contains("STEP 1/18: FROM ${BASE}:${TAG} AS final"), "{o}");
    let id = last_line(&o);
    assert_eq!(
        std::fs::read_to_string(&iid).unwrap(),
        format!("sha256:{id}")
    );
    let c = b.config("localhost/two:v2");
    assert_eq!(c["Id"], format!("sha256:{id}"));
    let cfg = &c["Config"];
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"A=1"), "{env:?}");
    assert!(env.contains(&"B=two words"));
    assert!(env.contains(&"C=given-latest"), "{env:?}");
    assert!(env.contains(&"OLD=old style value"));
    // ARGs are not kept in the image.
    assert!(!env
        .iter()
        .any(|e| e.starts_with("V=") || e.starts_with("TAG=")));
    assert_eq!(cfg["Labels"]["org.test.v"], "given");
    assert_eq!(cfg["Labels"]["quoted key"], "yes");
    assert_eq!(cfg["Labels"]["extra"], "1");
    assert_eq!(cfg["WorkingDir"], "/srv/app");
    assert_eq!(cfg["User"], "app");
    assert!(cfg["ExposedPorts"]["80/tcp"].is_object());
    assert!(cfg["ExposedPorts"]["53/udp"].is_object());
    assert!(cfg["Volumes"]["/data"].is_object());
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(
        cfg["Entrypoint"],
        serde_json::json!(["/bin/sh", "-ec", "echo ep"])
    );
    assert_eq!(cfg["Cmd"], serde_json::json!(["x"]));
    // docker's inspect leaves these out: read the config blob through history and save.
    let hist = husk_ok(&b.root, &["history", "--no-trunc", "localhost/one"]);
    assert!(
        hist.contains("ENV A=1 B=two words C=given-latest"),
        "{hist}"
    );
    assert!(hist.contains("HEALTHCHECK --interval=5s"), "{hist}");
    // -q prints only the id; the cache makes the same image again.
    let q = b.build_ok(&["-q", "--build-arg", "V=given", "--label", "extra=1"]);
    assert_eq!(q.trim(), format!("sha256:{id}"));

    // The image's ONBUILD trigger runs in a build FROM it, and is not inherited.
    b.file("Containerfile", "FROM localhost/one\nRUN echo child\n");
    let o = b.build_ok(&["-t", "localhost/child"]);
    assert!(o.contains("triggered"), "{o}");
    let c = b.config("localhost/child");
    assert_eq!(c["Config"]["OnBuild"], Value::Null);
}

#[test]
fn build_run_copy_add_and_stages() {
    let b = setup_build("build-files");
    b.file("file.txt", "hello\n");
    b.file("dir/a", "a\n");
    b.file("dir/sub/b", "b\n");
    b.file("g1.conf", "1\n");
    b.file("g2.conf", "2\n");
    b.file("secret.key", "never\n");
    b.file("logs/x.log", "never\n");
    b.file("logs/keep.log", "kept\n");
    b.file(".containerignore", "*.key\nlogs\n!logs/keep.log\n");
    // A tar for ADD to extract.
    let mut w = husk_image::tar::Writer::new(Vec::new());
    w.dir("pkg", 0o755).unwrap();
    w.file("pkg/inside", 0o644, b"from the tar\n").unwrap();
    std::fs::write(b.ctx.join("pkg.tar"), w.finish().unwrap()).unwrap();
    let url = http_server(b"downloaded\n");
    b.file(
        "Containerfile",
        &format!(
            r#"FROM {BASE} AS build
RUN mkdir -p /out && echo built > /out/artifact
FROM {BASE} AS never
RUN exit 3
FROM build AS other
RUN echo other > /out/other
FROM {BASE}
COPY file.txt /app/
COPY dir /app/dir
COPY g*.conf /app/conf/
COPY --chown=app:wheel --chmod=640 file.txt /app/owned
COPY --from=build /out/artifact /app/
COPY --from=other /out /app/other
COPY logs /app/logs
ADD pkg.tar /app/
ADD {url}/remote.txt /app/
RUN ["/bin/sh", "-c", "echo exec form > /app/exec"]
SHELL ["/bin/sh", "-c"]
RUN <<EOF
echo from heredoc > /app/h
rm /bin/ls
EOF
ARG X=argval
RUN echo "arg $X" > /app/arg
COPY <<EOT /app/doc.txt
doc $X
EOT
"#
        ),
    );
    let o = b.build_ok(&["-t", "localhost/files"]);
    // The stage nothing needs is never built.
    assert!(!o.contains("exit 3"), "{o}");
    let r = b.run(
        "localhost/files",
        "cd /app; for f in file.txt dir/a dir/sub/b conf/g1.conf conf/g2.conf artifact \
         other/other other/artifact pkg/inside remote.txt exec h arg doc.txt logs/keep.log; \
         do printf '%s: ' $f; cat $f; done; stat -c '%u:%g %a' owned remote.txt; \
         ls /bin/ls secret.key logs/x.log 2>&1 | wc -l",
    );
    assert_eq!(
        r,
        "file.txt: hello\ndir/a: a\ndir/sub/b: b\nconf/g1.conf: 1\nconf/g2.conf: 2\n\
         artifact: built\nother/other: other\nother/artifact: built\npkg/inside: from the tar\n\
         remote.txt: downloaded\nexec: exec form\nh: from heredoc\narg: arg argval\n\
         doc.txt: doc argval\nlogs/keep.log: kept\n1000:10 640\n0:0 600\n3\n"
    );
    // History: one entry per step, the RUNs and COPYs with layers.
    let c = b.config("localhost/files");
    let layers = c["RootFS"]["Layers"].as_array().unwrap().len();
    assert_eq!(layers, 1 + 13, "{c}");
    // `history` keeps one row per entry: the heredoc RUN's line breaks are shown escaped.
    let rows = husk_ok(&b.root, &["history", "-q", "localhost/files"])
        .lines()
        .count();
    for args in [&["history"][..], &["history", "--no-trunc"]] {
        let mut a = args.to_vec();
        a.push("localhost/files");
        let t = husk_ok(&b.root, &a);
        assert_eq!(t.lines().count(), 1 + rows, "{t}");
    }
    let t = husk_ok(&b.root, &["history", "--no-trunc", "localhost/files"]);
    assert!(
        t.contains("/bin/sh -c echo from heredoc > /app/h\\nrm /bin/ls\\n "),
        "{t}"
    );

    // --target builds the stage and what it needs only.
    let o = b.build_ok(&["--target", "other", "-t", "localhost/other"]);
    assert!(!o.contains(&format!("FROM {BASE}\n")), "{o}");
    assert_eq!(b.run("localhost/other", "cat /out/other"), "other\n");
    let (code, _, e) = b.build(&["--target", "nope"]);
    assert_eq!(code, 125);
    assert!(e.contains("--target nope: no such stage"), "{e}");

    // -f - reads the Containerfile from stdin.
    let ctx = b.ctx.to_str().unwrap();
    let (code, o, e) = out_with_stdin(
        &b.root,
        &["build", "-q", "-f", "-", "-t", "localhost/stdin", ctx],
        format!("FROM {BASE}\nLABEL from=stdin\n").as_bytes(),
    );
    assert_eq!(code, 0, "{e}");
    assert!(o.trim().starts_with("sha256:"));
    assert_eq!(
        b.config("localhost/stdin")["Config"]["Labels"]["from"],
        "stdin"
    );
}

/// Bases from a registry (by digest, by tag, `COPY --from=IMAGE`), `scratch`, `--pull
/// always|missing|never`, `--platform` with the platform ARGs, `-f` naming a file outside
/// the context's top, and `.dockerignore` when there is no `.containerignore`. No RUN: only
/// the loopback registry runs.
#[test]
fn build_bases_pull_platform_and_dockerignore() {
    let b = setup_build("build-bases");
    let reg = RealRegistry::start(false, false);
    let opts = husk_image::registry::ClientOptions::default();
    let first = busybox_image("amd64");
    push_image(&reg.host(), &opts, "bb", "latest", &first);
    let by_tag = format!("{}/bb:latest", reg.host());
    let by_digest = format!("{}/bb@{}", reg.host(), first.manifest.digest);
    b.file("keep.txt", "kept\n");
    b.file("skip.txt", "skipped\n");
    b.file(".dockerignore", "skip.txt\n");
    b.file(
        "files/Build.file",
        &format!(
            "FROM {by_digest} AS d\n\
             FROM scratch\n\
             COPY --from={by_tag} /bin/busybox /bin/busybox\n\
             COPY --from=d /etc/passwd /etc/passwd\n\
             COPY . /ctx/\n"
        ),
    );
    let f = b.ctx.join("files/Build.file");
    b.build_ok(&["-f", f.to_str().unwrap(), "-t", "localhost/bases"]);
    assert_eq!(
        b.config("localhost/bases")["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let o = husk_ok(
        &b.root,
        &[
            "run", "--rm", "--network", "none", "localhost/bases", "/bin/busybox", "sh", "-c",
            "busybox head -1 /etc/passwd; busybox cat /ctx/keep.txt /ctx/files/Build.file | busybox wc -l; \
             busybox ls /ctx/skip.txt 2>&1 | busybox grep -c 'No such file'",
        ],
    );
    assert_eq!(o, "root:x:0:0:root:/root:/bin/sh\n6\n1\n");

    // --pull: the tag moves to a one-layer image. missing keeps the stored base (the
    // cache answers), always fetches the new one, never then finds it in the store.
    b.file("Containerfile", &format!("FROM {by_tag}\nLABEL x=1\n"));
    let layers = |b: &B, args: &[&str]| {
        let id = last_line(&b.build_ok(args));
        b.config(&id)["RootFS"]["Layers"].as_array().unwrap().len()
    };
    assert_eq!(layers(&b, &["-q"]), 3);
    let moved = build_image(&[(busybox_base_layer(), Comp::Gzip)], "amd64");
    push_image(&reg.host(), &opts, "bb", "latest", &moved);
    assert_eq!(layers(&b, &["-q", "--pull", "missing"]), 3);
    assert_eq!(layers(&b, &["-q", "--pull", "always"]), 1);
    assert_eq!(layers(&b, &["-q", "--pull", "never"]), 1);

    // --platform: the image's, and TARGETARCH for a stage that declares it.
    b.file(
        "Containerfile",
        "FROM scratch\nARG TARGETARCH\nARG TARGETPLATFORM\nLABEL arch=$TARGETARCH platform=$TARGETPLATFORM\nCOPY keep.txt /\n",
    );
    let id = last_line(&b.build_ok(&["-q", "--platform", "linux/arm64"]));
    let c = b.config(&id);
    assert_eq!(c["Architecture"], "arm64", "{c}");
    assert_eq!(c["Config"]["Labels"]["arch"], "arm64");
    assert_eq!(c["Config"]["Labels"]["platform"], "linux/arm64");
}

#[test]
fn build_cache_hits_misses_and_reproducible_digests() {
    let b = setup_build("build-cache");
    for i in 0..4 {
        b.file(&format!("f{i}"), &format!("{i}\n"));
    }
    b.file(
        "Containerfile",
        &format!(
            "FROM {BASE}\nENV A=1\nCOPY f0 /f0\nRUN cat /f0 > /r0\nCOPY f1 /f1\nRUN cat /f1 > /r1\n\
             COPY f2 /f2\nLABEL l=1\nCOPY f3 /f3\nRUN cat /f3 > /r3\n"
        ),
    );
    let first = last_line(&b.build_ok(&["-t", "localhost/c"]));
    let layers = b.layer_count();
    // Nothing changed: every step from the cache, no layer made, well under a second.
    let t = Instant::now();
    let o = b.build_ok(&["-t", "localhost/c"]);
    let took = t.elapsed();
    assert_eq!(last_line(&o), first);
    assert_eq!(o.matches("Using cache").count(), 7, "{o}");
    assert_eq!(b.layer_count(), layers);
    assert!(
        took < Duration::from_millis(900),
        "cached rebuild took {took:?}"
    );
    // One copied file changed: the steps from its COPY on are built again.
    b.file("f2", "changed\n");
    let o = b.build_ok(&["-t", "localhost/c"]);
    assert_eq!(o.matches("Using cache").count(), 4, "{o}");
    assert_ne!(last_line(&o), first);
    // --no-cache: every step again.
    let o = b.build_ok(&["--no-cache"]);
    assert_eq!(o.matches("Using cache").count(), 0, "{o}");
    // The same inputs with --timestamp (or SOURCE_DATE_EPOCH), built twice without the
    // cache: the same image id.
    let a = last_line(&b.build_ok(&["--no-cache", "--timestamp", "1700000000"]));
    std::thread::sleep(Duration::from_millis(1100));
    b.file("f0", "0\n"); // same content, new mtime
    let c = last_line(&b.build_ok(&["--no-cache", "--timestamp", "1700000000"]));
    assert_eq!(a, c);
    let ctx = b.ctx.to_str().unwrap();
    let o = std::process::Command::new(HUSK)
        .args([
            "--root",
            b.root.to_str().unwrap(),
            "build",
            "--no-cache",
            ctx,
        ])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(last_line(&String::from_utf8_lossy(&o.stdout)), a);
    let cfg = b.config(&a);
    assert_eq!(cfg["Created"], "2023-11-14T22:13:20Z");
    // --compression zstd: the new layers' media type.
    let z = last_line(&b.build_ok(&["--no-cache", "--compression", "zstd"]));
    let recs: Vec<Value> = std::fs::read_dir(b.root.join("images"))
        .unwrap()
        .flatten()
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect();
    let rec = recs
        .iter()
        .find(|r| r["config_digest"] == format!("sha256:{z}"))
        .unwrap();
    let mts: Vec<&str> = rec["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["media_type"].as_str().unwrap())
        .collect();
    assert!(mts[1..].iter().all(|m| m.ends_with("+zstd")), "{mts:?}");

    // `system df` counts the cache; `system prune` empties it, and the next build is a miss.
    let df = |b: &B| -> Value {
        let o = husk_ok(&b.root, &["system", "df", "--format", "json"]);
        o.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|r| r["Type"] == "Build Cache")
            .unwrap()
    };
    let before = df(&b);
    assert!(before["TotalCount"].as_u64().unwrap() >= 7, "{before}");
    let o = husk_ok(&b.root, &["system", "prune", "-f"]);
    assert!(o.contains("Deleted build cache objects: "), "{o}");
    assert_eq!(df(&b)["TotalCount"], 0);
    let o = b.build_ok(&["-t", "localhost/c"]);
    assert_eq!(o.matches("Using cache").count(), 0, "{o}");
}

#[test]
fn build_run_mounts_and_network() {
    let b = setup_build("build-mounts");
    let secret = b.ctx.parent().unwrap().join("tok");
    std::fs::write(&secret, "s3cret\n").unwrap();
    b.file("data/in", "bound\n");
    b.file(
        "Containerfile",
        &format!(
            "FROM {BASE}\n\
             RUN --mount=type=secret,id=tok cat /run/secrets/tok > /seen\n\
             RUN --mount=type=cache,target=/cache sh -c 'cat /cache/n 2>/dev/null; echo x >> /cache/n' > /cache-seen\n\
             RUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/t && cat /scratch/t > /tmpfs-seen'\n\
             RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/in > /bind-seen\n\
             RUN --network=none sh -c 'ls /sys/class/net' > /nets\n\
             RUN --network=host readlink /proc/self/ns/net > /host-net\n"
        ),
    );
    let s = format!("id=tok,src={}", secret.display());
    b.build_ok(&["--secret", &s, "-t", "localhost/m1"]);
    let r = b.run(
        "localhost/m1",
        "cat /seen /cache-seen /tmpfs-seen /bind-seen /nets; ls /run/secrets /cache /scratch /mnt 2>&1 | wc -l",
    );
    // Mount points the image did not have are not in it; only loopback in network none.
    assert_eq!(r, "s3cret\nt\nbound\nlo\n4\n");
    // RUN --network=host is in the network namespace the build runs in (this test's own,
    // tests/common; its interfaces come and go with the other tests' bridges).
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(
        b.run("localhost/m1", "cat /host-net"),
        format!("{}\n", ours.display())
    );
    // The cache mount keeps its content for the next build (--no-cache builds again).
    b.build_ok(&["--no-cache", "--secret", &s, "-t", "localhost/m2"]);
    assert_eq!(b.run("localhost/m2", "cat /cache-seen"), "x\n");
    // A secret that is not given: the RUN sees no file.
    let (code, _, e) = b.build(&["--no-cache"]);
    assert_ne!(code, 0);
    assert!(e.contains("RUN --mount=type=secret,id=tok"), "{e}");
}

#[test]
fn build_errors_name_the_line() {
    let b = setup_build("build-errors");
    let cases: &[(&str, &str)] = &[
        (
            "FROM localhost/bb\nRUN true\nCOPPY a b\n",
            "Containerfile:3: unknown instruction: COPPY",
        ),
        (
            "FROM localhost/bb\nCOPY --frm=x a b\n",
            "Containerfile:2: COPY: unknown flag: --frm",
        ),
        (
            "FROM localhost/bb\n\nCOPY missing /x\n",
            "Containerfile:3: COPY missing: no such file or directory",
        ),
        (
            "FROM localhost/bb\nCOPY ../outside /x\n",
            "Containerfile:2: COPY ../outside: outside the build context",
        ),
        ("RUN true\n", "only ARG may come before the first FROM"),
        (
            "FROM localhost/bb\nCOPY --parents a b\n",
            "Containerfile:2: COPY --parents is not supported",
        ),
    ];
    for (file, want) in cases {
        b.file("Containerfile", file);
        let (code, _, e) = b.build(&[]);
        assert_eq!(code, 125, "{file}: {e}");
        assert!(e.contains(want), "{file}: want {want:?} in {e:?}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    // A failing RUN: its step, command and status; the build stops there.
    b.file(
        "Containerfile",
        "FROM localhost/bb\nRUN echo before\nRUN echo out; exit 7\nRUN echo never\n",
    );
    let (code, o, e) = b.build(&["-t", "localhost/failed"]);
    assert_eq!(code, 7, "{e}");
    assert!(e.contains("Containerfile:3: RUN echo out; exit 7"), "{e}");
    assert!(e.contains("exited with status 7"), "{e}");
    assert!(!o.contains("never"), "{o}");
    let (code, _, _) = out(&b.root, &["inspect", "--type", "image", "localhost/failed"]);
    assert_ne!(code, 0, "no image after a failed build");

    // A symlink in the context pointing outside resolves inside it: no host file copied.
    let host_secret = b.ctx.parent().unwrap().join("host-secret");
    std::fs::write(&host_secret, "HOST\n").unwrap();
    std::os::unix::fs::symlink(&host_secret, b.ctx.join("link")).unwrap();
    std::os::unix::fs::symlink("../host-secret", b.ctx.join("rel-link")).unwrap();
    for src in ["link", "rel-link"] {
        b.file(
            "Containerfile",
            &format!("FROM localhost/bb\nCOPY {src} /x\n"),
        );
        let (code, _, e) = b.build(&[]);
        assert_eq!(code, 125, "{src}: {e}");
        assert!(e.contains(&format!("Containerfile:2: COPY {src}")), "{e}");
    }
    // Inside a copied directory a symlink stays a symlink.
    std::fs::create_dir(b.ctx.join("d")).unwrap();
    std::os::unix::fs::symlink(&host_secret, b.ctx.join("d/l")).unwrap();
    b.file("Containerfile", "FROM localhost/bb\nCOPY d /d\n");
    b.build_ok(&["-t", "localhost/links"]);
    assert_eq!(
        b.run(
            "localhost/links",
            "readlink /d/l; cat /d/l 2>&1 | grep -c HOST; true"
        ),
        format!("{}\n0\n", host_secret.display())
    );
    // --pull never: a base image that is not in the store.
    b.file("Containerfile", "FROM localhost/missing\n");
    let (code, _, e) = b.build(&["--pull", "never"]);
    assert_eq!(code, 125);
    assert!(e.contains("Containerfile:1: localhost/missing"), "{e}");
    // No Containerfile at all.
    std::fs::remove_file(b.ctx.join("Containerfile")).unwrap();
    let (code, _, e) = b.build(&[]);
    assert_eq!(code, 125);
    assert!(e.contains("no Containerfile or Dockerfile"), "{e}");
}

/// Our RUN containers in the runtime's state root.
fn build_containers() -> Vec<String> {
    std::fs::read_dir("/run/husk-engine")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("build-"))
                .collect()
        })
        .unwrap_or_default()
}

fn tmp_build_dirs(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("build-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn killed_build_leaves_nothing() {
    // kill -9 and Ctrl-C (SIGINT, which ends husk just as abruptly) while the RUN runs,
    // and kill -9 the moment its state dir appears (likely inside the runtime's create,
    // before state.json exists).
    for (sig, settle) in [
        (libc::SIGKILL, 300),
        (libc::SIGINT, 300),
        (libc::SIGKILL, 0),
    ] {
        killed_build(sig, settle);
    }
}

fn killed_build(sig: i32, settle_ms: u64) {
    let b = setup_build("build-kill");
    b.file(
        "Containerfile",
        "FROM localhost/bb\nRUN echo started > /tmp/s; sleep 1000\n",
    );
    let before = build_containers();
    let mut c = std::process::Command::new(HUSK);
    // SIGINT as Ctrl-C delivers it to a foreground job: a test started from a background
    // job of a non-interactive shell inherits SIGINT ignored, and the build would then
    // run its RUN to the end.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut c = c
        .args([
            "--root",
            b.root.to_str().unwrap(),
            "build",
            "-t",
            "localhost/killed",
        ])
        .arg(&b.ctx)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the RUN's container exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ours = loop {
        let now: Vec<String> = build_containers()
            .into_iter()
            .filter(|n| !before.contains(n))
            .collect();
        if !now.is_empty() {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the RUN container never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(settle_ms));
    unsafe { libc::kill(c.id() as i32, sig) };
    c.wait().unwrap();
    // The guardian removes the container, the step's network and the work dir; the mounts
    // went with the build's own mount namespace. (netavark's teardown waits for the
    // machine-wide netavark lock: seconds when other tests run networks.)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<String> = build_containers()
            .into_iter()
            .filter(|n| ours.contains(n))
            .collect();
        if left.is_empty() && tmp_build_dirs(&b.root).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left after signal {sig}: {left:?} {:?}",
            tmp_build_dirs(&b.root)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        mounts_below(&b.root).is_empty(),
        "{:?}",
        mounts_below(&b.root)
    );
    // The RUN was on the default bridge network: its lease, namespace holder and guardian
    // are gone too (its veth went with the namespace, torn down by netavark).
    let left = network_leftovers_settle(&b.root, None);
    assert!(left.is_empty(), "after signal {sig}: {left:?}");
    let (code, _, _) = out(&b.root, &["inspect", "--type", "image", "localhost/killed"]);
    assert_ne!(code, 0, "no image from a killed build");
    // And nothing in the store that the integrity check would flag.
    let (code, o, e) = out(&b.root, &["image", "verify"]);
    assert_eq!(code, 0, "verify after a build killed by {sig}: {o}{e}");
}

/// What a RUN's network could leave behind for the store at `root`: veths on `bridge` (or
/// the bridge itself when `bridge` is given and gone… then nothing is on it), address
/// leases its builds hold, and processes of its builds (a namespace holder, a guardian:
/// forked from `husk build`, they carry its command line with the store's path).
fn network_leftovers(root: &Path, bridge: Option<&str>) -> Vec<String> {
    let mut left = Vec::new();
    if let Some(br) = bridge {
        let o = std::process::Command::new("ip")
            .args(["-o", "link", "show", "master", br])
            .output()
            .unwrap();
        left.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| format!("veth on {br}: {l}")),
        );
    }
    let root_s = root.to_string_lossy().into_owned();
    let mut stack = vec![PathBuf::from("/run/husk-engine-net/leases")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if std::fs::read_to_string(e.path()).is_ok_and(|h| h.starts_with(&root_s)) {
                left.push(format!("lease {}", e.path().display()));
            }
        }
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&root_s) && cmd.contains(" build ") && !stat.contains(") Z ") {
            left.push(format!(
                "process {}: {cmd}",
                e.file_name().to_string_lossy()
            ));
        }
    }
    left
}

/// [`network_leftovers`] until there are none (a guardian finishes a moment after the
/// build it watched); the ones still there after 30 s.
fn network_leftovers_settle(root: &Path, bridge: Option<&str>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = network_leftovers(root, bridge);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An IPv4 address in a subnet (`a.b.c.d` in `w.x.y.z/n`).
fn in_subnet(ip: &str, subnet: &str) -> bool {
    let v4 = |s: &str| u32::from(s.parse::<std::net::Ipv4Addr>().unwrap());
    let (net, bits) = subnet.split_once('/').unwrap();
    let mask = u32::MAX
        .checked_shl(32 - bits.parse::<u32>().unwrap())
        .unwrap_or(0);
    v4(ip) & mask == v4(net) & mask
}

/// A network's subnet and bridge interface (`network inspect`).
fn subnet_and_bridge(root: &Path, net: &str) -> (String, String) {
    let j: Value = serde_json::from_str(&husk_ok(root, &["network", "inspect", net])).unwrap();
    (
        j[0]["IPAM"]["Config"][0]["Subnet"]
            .as_str()
            .unwrap()
            .to_string(),
        j[0]["Options"]["com.docker.network.bridge.name"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

#[test]
fn build_run_steps_on_bridge_networks() {
    let b = setup_build("build-bridge");
    let port = http_server_at("0.0.0.0", b"from the test namespace\n").port();
    // The default: the `bridge` network, as `husk run`: an eth0 on its subnet, a route to
    // its gateway, where the test's server answers; `RUN --network=none` has only lo.
    b.file(
        "Containerfile",
        &format!(
            "FROM {BASE}\n\
             RUN gw=$(busybox ip route | busybox awk '/^default/ {{print $3}}') && \
                 {{ busybox wget -q -O /got http://$gw:{port}/ || {{ busybox ip addr; busybox ip neigh; busybox ip route; exit 1; }} ; }} && \
                 busybox ip -o -4 addr show eth0 | busybox awk '{{print $4}}' > /addr\n\
             RUN --network=none ls /sys/class/net > /none-nets\n"
        ),
    );
    b.build_ok(&["-t", "localhost/net1"]);
    assert_eq!(
        b.run("localhost/net1", "cat /got /none-nets"),
        "from the test namespace\nlo\n"
    );
    let (subnet, bridge) = subnet_and_bridge(&b.root, "bridge");
    let addr = b.run("localhost/net1", "cat /addr");
    let ip = addr.trim().split('/').next().unwrap();
    assert!(
        in_subnet(ip, &subnet),
        "RUN's eth0 {addr:?} not in {subnet}"
    );
    // No mount point of the network's /etc files in the layers: a RUN that writes nothing
    // makes none.
    b.file("Containerfile", &format!("FROM {BASE}\nRUN true\n"));
    let o = b.build_ok(&["--no-cache"]);
    assert!(o.contains("--> (no changes)"), "{o}");

    // --network none for the whole build.
    b.file(
        "Containerfile",
        &format!("FROM {BASE}\nRUN ls /sys/class/net > /nets\n"),
    );
    b.build_ok(&["--network", "none", "-t", "localhost/net2"]);
    assert_eq!(b.run("localhost/net2", "cat /nets"), "lo\n");

    // A user network by name; a RUN that fails on it (3 only when it is on that network)
    // leaves no veth on its bridge, no lease, no process.
    husk_ok(
        &b.root,
        &["network", "create", "--subnet", "10.97.0.0/24", "bnet"],
    );
    let (_, user_bridge) = subnet_and_bridge(&b.root, "bnet");
    b.file(
        "Containerfile",
        &format!(
            "FROM {BASE}\n\
             RUN busybox ip -o -4 addr show eth0 | busybox grep -q 'inet 10\\.97\\.0\\.' && exit 3\n"
        ),
    );
    let (code, _, e) = b.build(&["--network", "bnet"]);
    assert_eq!(code, 3, "{e}");
    assert!(e.contains("exited with status 3"), "{e}");
    let left = network_leftovers_settle(&b.root, Some(&user_bridge));
    assert!(left.is_empty(), "after a failed RUN: {left:?}");
    // And after the successful builds on the default network.
    let left: Vec<String> = network_leftovers_settle(&b.root, None);
    assert!(left.is_empty(), "{left:?} (bridge {bridge})");
    // A network that does not exist: refused before anything runs.
    let (code, _, e) = b.build(&["--network", "nosuch"]);
    assert_eq!(code, 125, "{e}");
    assert!(e.contains("no such network: nosuch"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn build_run_gets_the_default_seccomp_filter() {
    let b = setup_build("build-seccomp");
    build_probe(&b.ctx);
    // keyctl: refused by husk's default profile (ENOSYS), allowed without a filter.
    b.file(
        "Containerfile",
        &format!(
            "FROM {BASE}\n\
             COPY probe /probe\n\
             RUN /probe keyctl > /k; busybox grep '^Seccomp:' /proc/self/status >> /k\n"
        ),
    );
    b.build_ok(&["-t", "localhost/sc1"]);
    assert_eq!(
        b.run("localhost/sc1", "cat /k"),
        "keyctl=ENOSYS\nSeccomp:\t2\n"
    );
    b.build_ok(&[
        "--security-opt",
        "seccomp=unconfined",
        "-t",
        "localhost/sc2",
    ]);
    assert_eq!(b.run("localhost/sc2", "cat /k"), "keyctl=ok\nSeccomp:\t0\n");
    // A profile file replaces the default one.
    let allow = b.ctx.parent().unwrap().join("allow.json");
    std::fs::write(&allow, r#"{"defaultAction": "SCMP_ACT_LOG"}"#).unwrap();
    let opt = format!("seccomp={}", allow.display());
    b.build_ok(&["--security-opt", &opt, "-t", "localhost/sc3"]);
    assert_eq!(b.run("localhost/sc3", "cat /k"), "keyctl=ok\nSeccomp:\t2\n");
    // A RUN that needs the refused call fails under the default filter.
    b.file(
        "Containerfile",
        &format!("FROM {BASE}\nCOPY probe /probe\nRUN /probe keyctl | busybox grep -q =ok\n"),
    );
    let (code, _, e) = b.build(&[]);
    assert_eq!(code, 1, "{e}");
    assert!(e.contains("Containerfile:3: RUN /probe keyctl"), "{e}");
    b.build_ok(&["--security-opt", "seccomp=unconfined"]);
    // Bad values: one line each.
    for (opt, want) in [
        ("apparmor=x", "use seccomp=unconfined or seccomp=FILE"),
        ("seccomp=/no/such.json", "/no/such.json"),
    ] {
        let (code, _, e) = b.build(&["--security-opt", opt]);
        assert_eq!(code, 125, "{opt}: {e}");
        assert!(e.contains(want), "{opt}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
