//! An image is its config: one config under two manifests (an OCI one and a Docker schema2
//! one, two tags) is one image ID. Before, that ID was "ambiguous" (start, restart and image
//! inspect by ID failed, `run ID` went to a registry) and `rmi` of one tag printed
//! "Deleted" while the other tag still used it. Also: rmi of one tag of several while an
//! exited container uses the image untags it (as podman), and `save IMG:TAG` writes that tag
//! only. Against a real docker-registry on 127.0.0.1; run as root.

mod common;
use common::*;
use husk_image::registry::ClientOptions;
use serde_json::Value;
use std::path::Path;

/// The busybox image again, under a Docker schema2 manifest: the same config and layers.
fn as_docker_schema2(img: &Image) -> Blob {
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": img.config.digest,
            "size": img.config.data.len(),
        },
        "layers": img.layers.iter().map(|b| serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "digest": b.digest,
            "size": b.data.len(),
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    Blob {
        digest: husk_image::Digest::of(&m),
        data: m,
        media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
    }
}

/// `husk --default-registry (nowhere) ARGS`: a bare ID must never be pulled.
fn h(root: &Path, args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["--default-registry", "127.0.0.1:1"];
    a.extend_from_slice(args);
    out(root, &a)
}

fn ok(root: &Path, args: &[&str]) -> String {
    let (code, o, e) = h(root, args);
    assert_eq!(code, 0, "{args:?}: {e}");
    o
}

#[test]
fn one_config_under_two_manifests_is_one_image() {
    let s = setup("image-ids");
    let root = &s.root;
    let _cleanup = RemoveAll(root);
    let img = busybox_image("amd64");
    let docker = as_docker_schema2(&img);
    let reg =
        husk_image::registry::Registry::new(&s.reg.host(), &ClientOptions::default()).unwrap();
    reg.put_manifest("busybox", "docker", &docker.media_type, &docker.data)
        .unwrap();
    let (oci, dkr) = (s.image.clone(), format!("{}/busybox:docker", s.reg.host()));
    ok(root, &["pull", &oci]);
    ok(root, &["pull", &dkr]);
    let id = img.config.digest.hex().to_string();

    // By ID: inspect, run (from the store, not a registry), start and restart.
    let v: Value = serde_json::from_str(&ok(root, &["image", "inspect", &id])).unwrap();
    assert_eq!(v[0]["Id"], format!("sha256:{id}"), "{v}");
    let mut tags: Vec<&str> = v[0]["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, [dkr.as_str(), oci.as_str()]);
    assert_eq!(ok(root, &["run", "--rm", &id, "echo by id"]), "by id\n");
    assert_eq!(
        ok(root, &["run", "--rm", &id[..12], "echo short"]),
        "short\n"
    );
    ok(root, &["run", "-d", "--name", "c1", &id, "sleep 1000"]);
    ok(root, &["stop", "-t", "0", "c1"]);
    ok(root, &["start", "c1"]);
    ok(root, &["restart", "-t", "0", "c1"]);
    ok(root, &["rm", "-f", "c1"]);

    // save by name: that name only.
    ok(root, &["tag", &oci, "other:1"]);
    let tar = s.t.path().join("one.tar");
    ok(root, &["save", "-o", tar.to_str().unwrap(), &oci]);
    let m = std::process::Command::new("tar")
        .args(["-xOf", tar.to_str().unwrap(), "manifest.json"])
        .output()
        .unwrap();
    let m: Value = serde_json::from_slice(&m.stdout).unwrap();
    assert_eq!(m[0]["RepoTags"], serde_json::json!([oci]), "{m}");

    // An exited container uses the image: its other names can go, only untagged.
    ok(root, &["run", "--name", "ex", &oci, "true"]);
    assert_eq!(
        ok(root, &["rmi", &dkr]),
        format!("Untagged: {dkr}\n"),
        "the image is still {oci}'s"
    );
    assert_eq!(
        ok(root, &["rmi", "other:1"]),
        format!("Untagged: {}/other:1\n", "127.0.0.1:1")
    );
    assert!(ok(root, &["images"]).contains(&id[..12]));
    // Its last name is the image: refused while the container exists.
    let (code, _, e) = h(root, &["rmi", &oci]);
    assert_eq!(code, 1, "{e}");
    assert!(e.contains("in use by container ex"), "{e}");
    ok(root, &["rm", "ex"]);
    assert_eq!(
        ok(root, &["rmi", &oci]),
        format!("Untagged: {oci}\nDeleted: {}\n", img.config.digest)
    );
    assert_eq!(ok(root, &["images", "-q"]), "");
}
