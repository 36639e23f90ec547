//! Layer bytes → the unpacker, into a fresh root each run. Must never panic and never touch
//! anything outside the root: beside the root sits a directory (files, a subdirectory, a
//! symlink) whose every entry, with its ctime (which moves on any write, chmod, chown,
//! xattr or new hard link), must be unchanged afterwards. The first byte picks the whiteout
//! mode: overlay whiteouts, or applied to what earlier entries made (flattening).
#![no_main]

use husk_image::unpack::{unpack, UnpackLimits, UnpackOptions, WhiteoutMode};
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static BASE: OnceLock<PathBuf> = OnceLock::new();

/// libFuzzer ends the process with exit(): remove the base dir then (a crash keeps it, to look at).
extern "C" fn remove_base() {
    if let Some(b) = BASE.get() {
        let _ = fs::remove_dir_all(b);
    }
}

/// `<tmp>/husk-fuzz-unpack-<pid>/{root,outside}`: made once, `root` emptied after each run.
fn base() -> &'static PathBuf {
    BASE.get_or_init(|| {
        let b = std::env::temp_dir().join(format!("husk-fuzz-unpack-{}", std::process::id()));
        let _ = fs::remove_dir_all(&b);
        unsafe { libc::atexit(remove_base) };
        let out = b.join("outside");
        fs::create_dir_all(out.join("dir")).unwrap();
        fs::write(out.join("file"), b"outside the root").unwrap();
        fs::write(out.join("dir/file"), b"deeper outside").unwrap();
        std::os::unix::fs::symlink("file", out.join("link")).unwrap();
        b
    })
}

/// Every entry under `dir` (and `dir` itself): path, type, mode, owner, size, links, times,
/// content or link target.
fn snapshot(dir: &Path, out: &mut Vec<String>) {
    let m = fs::symlink_metadata(dir).unwrap();
    let extra = if m.file_type().is_symlink() {
        fs::read_link(dir).unwrap().display().to_string()
    } else if m.is_file() {
        String::from_utf8_lossy(&fs::read(dir).unwrap()).into_owned()
    } else {
        String::new()
    };
    out.push(format!(
        "{} {:o} {}:{} {} {} {}.{} {}.{} {extra}",
        dir.display(),
        m.mode(),
        m.uid(),
        m.gid(),
        m.size(),
        m.nlink(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ));
    if m.is_dir() {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for n in names {
            snapshot(&n, out);
        }
    }
}

/// What is beside the root: the names in the base dir and everything in `outside`.
fn outside_state(base: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "root")
        .collect();
    names.sort();
    snapshot(&base.join("outside"), &mut names);
    names
}

/// Remove the root even where the layer left directories without write permission
/// (when not running as root).
fn remove_root(root: &Path) {
    if fs::remove_dir_all(root).is_ok() || !root.exists() {
        return;
    }
    fn open_up(d: &Path) {
        let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(root);
    fs::remove_dir_all(root).expect("removing the unpack root");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, layer)) = data.split_first() else {
        return;
    };
    let base = base();
    let before = outside_state(base);
    let root = base.join("root");
    fs::create_dir(&root).unwrap();
    let opts = UnpackOptions {
        whiteouts: if mode & 1 == 0 {
            WhiteoutMode::Overlay {
                xattr_prefix: "user.",
            }
        } else {
            WhiteoutMode::Apply
        },
        // Ownership and device nodes are the kernel's checks, not the unpacker's: leave
        // them out so no run makes a device node on the host.
        chown: false,
        devices: false,
        limits: UnpackLimits::default(),
    };
    let _ = unpack(&mut &layer[..], &root, &opts, "fuzz");
    let after = outside_state(base);
    remove_root(&root);
    assert_eq!(
        before, after,
        "the unpacker changed something outside its root"
    );
});
