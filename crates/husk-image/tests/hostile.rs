//! A corpus of hostile layer tarballs, generated here: each must be refused or contained in
//! the layer directory; nothing outside it may change.

use husk_image::tar::{fix_checksum, Header, Kind, Writer, BLOCK};
use husk_image::unpack::{unpack, UnpackOptions, WhiteoutMode};
use husk_image::Error;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

struct Sandbox {
    outer: PathBuf,
    layer: PathBuf,
}

impl Sandbox {
    fn new(tag: &str) -> Sandbox {
        let outer = std::env::temp_dir().join(format!("husk-hostile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&outer);
        let layer = outer.join("layer");
        std::fs::create_dir_all(&layer).unwrap();
        std::fs::write(outer.join("sentinel"), b"host data").unwrap();
        std::fs::create_dir_all(outer.join("hostdir")).unwrap();
        std::fs::write(outer.join("hostdir/keep"), b"keep").unwrap();
        Sandbox { outer, layer }
    }

    /// Nothing outside the layer dir was created, removed or changed.
    fn assert_host_untouched(&self) {
        let mut names: Vec<String> = std::fs::read_dir(&self.outer)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["hostdir", "layer", "sentinel"]);
        assert_eq!(
            std::fs::read(self.outer.join("sentinel")).unwrap(),
            b"host data"
        );
        assert_eq!(
            std::fs::metadata(self.outer.join("sentinel"))
                .unwrap()
                .nlink(),
            1
        );
        assert_eq!(
            std::fs::read(self.outer.join("hostdir/keep")).unwrap(),
            b"keep"
        );
        assert_eq!(
            std::fs::read_dir(self.outer.join("hostdir"))
                .unwrap()
                .count(),
            1
        );
    }

    fn run(&self, tar: &[u8], mode: WhiteoutMode) -> Result<(), Error> {
        let mut opts = UnpackOptions::overlay();
        opts.whiteouts = mode;
        unpack(&mut &tar[..], &self.layer, &opts, "hostile").map(|_| ())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.outer);
    }
}

fn overlay() -> WhiteoutMode {
    WhiteoutMode::Overlay {
        xattr_prefix: "trusted.",
    }
}

fn tar_of(f: impl FnOnce(&mut Writer<Vec<u8>>)) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    f(&mut w);
    w.finish().unwrap()
}

fn abs(p: &Path) -> String {
    p.display().to_string()
}

fn expect_refused(r: Result<(), Error>, what: &str) {
    match r {
        Err(Error::BadLayer { reason, .. }) => assert!(
            reason.contains(what),
            "reason {reason:?} should mention {what:?}"
        ),
        other => panic!("expected a refused layer ({what}), got {other:?}"),
    }
}

#[test]
fn dotdot_paths_are_refused() {
    for mode in [overlay(), WhiteoutMode::Apply] {
        let s = Sandbox::new("dotdot");
        expect_refused(
            s.run(
                &tar_of(|w| w.file("../sentinel", 0o644, b"pwned").unwrap()),
                mode,
            ),
            "..",
        );
        expect_refused(
            s.run(
                &tar_of(|w| w.file("a/../../sentinel", 0o644, b"pwned").unwrap()),
                mode,
            ),
            "..",
        );
        expect_refused(
            s.run(&tar_of(|w| w.hardlink("x", "../sentinel").unwrap()), mode),
            "..",
        );
        expect_refused(
            s.run(&tar_of(|w| w.file("d/.wh...", 0o644, b"").unwrap()), mode),
            "invalid",
        );
        s.assert_host_untouched();
    }
}

#[test]
fn absolute_paths_stay_inside() {
    let s = Sandbox::new("abs");
    let target = format!("{}/sentinel", abs(&s.outer));
    s.run(
        &tar_of(|w| w.file(&target, 0o644, b"pwned").unwrap()),
        overlay(),
    )
    .unwrap();
    s.assert_host_untouched();
    // landed inside the layer under the same relative path
    let inside = s.layer.join(target.trim_start_matches('/'));
    assert_eq!(std::fs::read(inside).unwrap(), b"pwned");
}

#[test]
fn symlink_then_write_through_it_is_contained() {
    for mode in [overlay(), WhiteoutMode::Apply] {
        let s = Sandbox::new("symwrite");
        let outer = abs(&s.outer);
        let r = s.run(
            &tar_of(|w| {
                w.symlink("escape", &outer).unwrap();
                w.file("escape/sentinel", 0o644, b"pwned").unwrap();
                w.symlink("up", "../../../../../../../..").unwrap();
                w.file(&format!("up{outer}/hostdir/new"), 0o644, b"pwned")
                    .unwrap();
            }),
            mode,
        );
        // Either refused or written inside the layer; never outside.
        let _ = r;
        s.assert_host_untouched();
    }
}

#[test]
fn symlink_replaced_by_file_does_not_write_target() {
    let s = Sandbox::new("symrepl");
    let sentinel = format!("{}/sentinel", abs(&s.outer));
    s.run(
        &tar_of(|w| {
            w.symlink("f", &sentinel).unwrap();
            w.file("f", 0o644, b"pwned").unwrap();
            w.symlink("d", &abs(&s.outer.join("hostdir"))).unwrap();
            w.dir("d", 0o755).unwrap();
            w.file("d/keep", 0o644, b"pwned").unwrap();
        }),
        overlay(),
    )
    .unwrap();
    s.assert_host_untouched();
    assert_eq!(std::fs::read(s.layer.join("f")).unwrap(), b"pwned");
    assert!(std::fs::symlink_metadata(s.layer.join("d"))
        .unwrap()
        .is_dir());
}

#[test]
fn hardlinks_to_outside_are_refused() {
    let s = Sandbox::new("hardlink");
    let sentinel = format!("{}/sentinel", abs(&s.outer));
    expect_refused(
        s.run(&tar_of(|w| w.hardlink("h", &sentinel).unwrap()), overlay()),
        "hardlink",
    );
    // through a symlinked directory pointing outside
    expect_refused(
        s.run(
            &tar_of(|w| {
                w.symlink("out", &abs(&s.outer)).unwrap();
                w.hardlink("h2", "out/sentinel").unwrap();
            }),
            overlay(),
        ),
        "hardlink",
    );
    s.assert_host_untouched();
}

#[test]
fn write_through_planted_hardlink_does_not_change_the_original() {
    let s = Sandbox::new("hlswap");
    s.run(
        &tar_of(|w| {
            w.file("a", 0o644, b"original").unwrap();
            w.hardlink("b", "a").unwrap();
            w.file("b", 0o644, b"replaced").unwrap();
        }),
        overlay(),
    )
    .unwrap();
    assert_eq!(std::fs::read(s.layer.join("a")).unwrap(), b"original");
    assert_eq!(std::fs::read(s.layer.join("b")).unwrap(), b"replaced");
    s.assert_host_untouched();
}

#[test]
fn overlay_xattrs_in_a_layer_are_refused() {
    for key in [
        "trusted.overlay.opaque",
        "trusted.overlay.redirect",
        "user.overlay.origin",
    ] {
        let s = Sandbox::new("xattr");
        let mut h = Header::new(Kind::Dir, "d");
        h.xattrs.push((key.into(), b"y".to_vec()));
        expect_refused(
            s.run(
                &tar_of(|w| w.append(&h, &mut std::io::empty()).unwrap()),
                overlay(),
            ),
            "overlay xattrs",
        );
        s.assert_host_untouched();
    }
}

#[test]
fn oversized_and_malformed_headers_are_refused() {
    let s = Sandbox::new("oversized");
    // 2 MiB PAX header
    let mut h = Header::new(Kind::File, "x");
    h.xattrs.push(("user.big".into(), vec![b'a'; 2 << 20]));
    expect_refused(
        s.run(
            &tar_of(|w| w.append(&h, &mut std::io::empty()).unwrap()),
            overlay(),
        ),
        "too large",
    );
    // path longer than PATH_MAX
    let long = "d/".repeat(2100) + "f";
    expect_refused(
        s.run(&tar_of(|w| w.file(&long, 0o644, b"").unwrap()), overlay()),
        "too long",
    );
    // GNU long name claiming 1 TiB
    let mut b = [0u8; BLOCK];
    b[..13].copy_from_slice(b"././@LongLink");
    b[156] = b'L';
    b[124..136].copy_from_slice(b"17777777777\0");
    b[257..263].copy_from_slice(b"ustar ");
    fix_checksum(&mut b);
    let mut t = b.to_vec();
    t.extend_from_slice(&[0u8; 1024]);
    expect_refused(s.run(&t, overlay()), "too large");
    // corrupt checksum
    let mut t = tar_of(|w| w.file("ok", 0o644, b"x").unwrap());
    t[0] = b'X';
    expect_refused(s.run(&t, overlay()), "checksum");
    // truncated data
    let t = tar_of(|w| w.file("trunc", 0o644, &[7u8; 4096]).unwrap());
    expect_refused(s.run(&t[..1024], overlay()), "reading data");
    // uid out of range (base-256)
    let mut h = Header::new(Kind::File, "uid");
    h.uid = u32::MAX as u64 + 5;
    let r = s.run(
        &tar_of(|w| w.append(&h, &mut std::io::empty()).unwrap()),
        overlay(),
    );
    expect_refused(r, "uid");
    s.assert_host_untouched();
}

#[test]
fn whiteouts_in_overlay_format() {
    let s = Sandbox::new("wh");
    s.run(
        &tar_of(|w| {
            w.dir("etc", 0o755).unwrap();
            w.file("etc/.wh.gone", 0o644, b"").unwrap();
            w.file("etc/kept", 0o644, b"k").unwrap();
            w.file("etc/.wh.kept", 0o644, b"").unwrap(); // same-layer file wins
            w.dir("o", 0o755).unwrap();
            w.file("o/.wh..wh..opq", 0o644, b"").unwrap();
            w.file("o/new", 0o644, b"n").unwrap();
        }),
        overlay(),
    )
    .unwrap();
    let m = std::fs::symlink_metadata(s.layer.join("etc/gone")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &m.file_type()
    ));
    assert_eq!((m.rdev(), m.uid(), m.gid()), (0, 0, 0));
    assert_eq!(std::fs::read(s.layer.join("etc/kept")).unwrap(), b"k");
    let mut v = [0u8; 4];
    let p = std::ffi::CString::new(abs(&s.layer.join("o"))).unwrap();
    let n = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            4,
        )
    };
    assert_eq!(n, 1);
    assert_eq!(v[0], b'y');
    assert_eq!(std::fs::read(s.layer.join("o/new")).unwrap(), b"n");
    s.assert_host_untouched();
}

#[test]
fn whiteouts_applied_when_flattening() {
    let s = Sandbox::new("flat");
    let lower = tar_of(|w| {
        w.file("a", 0o644, b"a").unwrap();
        w.file("keep", 0o644, b"k").unwrap();
        w.file("o/x", 0o644, b"x").unwrap();
        w.file("o/y/z", 0o644, b"z").unwrap();
    });
    s.run(&lower, WhiteoutMode::Apply).unwrap();
    let upper = tar_of(|w| {
        w.file(".wh.a", 0o644, b"").unwrap();
        w.file("o/new", 0o644, b"n").unwrap();
        w.file("o/.wh..wh..opq", 0o644, b"").unwrap();
        w.file("o/.wh.new", 0o644, b"").unwrap(); // same layer: must not delete
    });
    s.run(&upper, WhiteoutMode::Apply).unwrap();
    assert!(!s.layer.join("a").exists());
    assert!(s.layer.join("keep").exists());
    let mut o: Vec<String> = std::fs::read_dir(s.layer.join("o"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    o.sort();
    assert_eq!(o, vec!["new"]);
    s.assert_host_untouched();
}

/// The unpacker skips the chown of an entry it created when the header's owner is its own
/// (most of an image is root's): that must hold only where a new entry really gets that
/// owner. In a setgid directory of another group a new entry inherits the directory's
/// group, so the header's 0:0 still needs the chown; elsewhere the owners are the header's.
#[test]
fn owners_are_the_headers_even_where_new_entries_inherit_a_group() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sandbox::new("owners");
    let sgid = s.layer.join("sgid");
    std::fs::create_dir(&sgid).unwrap();
    std::os::unix::fs::chown(&sgid, Some(0), Some(4321)).unwrap();
    std::fs::set_permissions(&sgid, std::fs::Permissions::from_mode(0o2775)).unwrap();
    let entry = |kind: Kind, path: &str, uid: u64, gid: u64| {
        let mut h = Header::new(kind, path);
        (h.uid, h.gid) = (uid, gid);
        if kind == Kind::Symlink {
            h.link = b"target".to_vec();
        }
        h
    };
    let tar = tar_of(|w| {
        for h in [
            entry(Kind::File, "sgid/file", 0, 0),
            entry(Kind::Dir, "sgid/dir", 0, 0),
            entry(Kind::Symlink, "sgid/link", 0, 0),
            entry(Kind::Fifo, "sgid/fifo", 0, 0),
            entry(Kind::Dir, "plain", 0, 0),
            entry(Kind::File, "plain/root", 0, 0),
            entry(Kind::File, "plain/user", 1000, 1001),
            entry(Kind::File, "plain/group", 0, 7),
            entry(Kind::Dir, "plain/dir", 5, 6),
            entry(Kind::File, "plain/dir/inside", 0, 0),
        ] {
            w.append(&h, &mut &b""[..]).unwrap();
        }
    });
    s.run(&tar, overlay()).unwrap();
    for (path, owner) in [
        ("sgid/file", (0, 0)),
        ("sgid/dir", (0, 0)),
        ("sgid/link", (0, 0)),
        ("sgid/fifo", (0, 0)),
        ("plain", (0, 0)),
        ("plain/root", (0, 0)),
        ("plain/user", (1000, 1001)),
        ("plain/group", (0, 7)),
        ("plain/dir", (5, 6)),
        ("plain/dir/inside", (0, 0)),
    ] {
        let m = std::fs::symlink_metadata(s.layer.join(path)).unwrap();
        assert_eq!((m.uid(), m.gid()), owner, "owner of {path}");
    }
    s.assert_host_untouched();
}
