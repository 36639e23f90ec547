//! Which of the container's mounts CRIU must be told are external, and where each comes
//! from on restore.
//!
//! CRIU dumps a mount by remounting its file system, or by binding it from another mount of
//! the same file system in the container. A mount whose source lives outside the container —
//! a bind of a host directory, the host's /dev/null over a masked path, a device node bound
//! in — can be neither: it must be named at dump (`--external mnt[PATH]:KEY`) and given a
//! host path at restore (`--external mnt[KEY]:SOURCE`). The key is the mount point in the
//! container, so the restore side finds the source in the (possibly new) config.json.

use crate::error::{Error, Result};
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

/// One line of /proc/PID/mountinfo, the fields used here.
#[derive(Debug, PartialEq)]
struct MountInfo {
    dev: String,
    /// The path inside its file system that is mounted.
    root: String,
    /// Where, as the process sees it.
    point: String,
}

fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some(MountInfo {
                dev: f.get(2)?.to_string(),
                root: unescape(f.get(3)?),
                point: unescape(f.get(4)?),
            })
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn under(root: &str, path: &str) -> bool {
    root == "/"
        || path == root
        || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

/// The bind-mount destinations of a spec.
fn bind_destinations(spec: &Spec) -> Vec<String> {
    spec.mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|m| is_bind(m))
        .map(|m| m.destination().to_string_lossy().into_owned())
        .collect()
}

fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

/// The external mount points (container paths) of the container whose init has `mountinfo`.
pub fn externals(mountinfo: &str, spec: &Spec) -> Vec<String> {
    let all = parse_mountinfo(mountinfo);
    let binds = bind_destinations(spec);
    let mut out = Vec::new();
    for (i, m) in all.iter().enumerate() {
        if m.point == "/" {
            continue; // the root is criu's --root
        }
        // CRIU can bind it from another mount of the same file system only if that one
        // is the file system's own (root "/", mounted afresh) or the container's root;
        // two masks of the host's /dev/null do not make each other internal.
        let internal_source = |j: usize, n: &MountInfo| {
            j != i
                && n.dev == m.dev
                && (n.root == "/" || n.point == "/")
                && !binds.contains(&n.point)
                && under(&n.root, &m.root)
        };
        let external = binds.contains(&m.point)
            || (m.root != "/" && !all.iter().enumerate().any(|(j, n)| internal_source(j, n)));
        if external && !out.contains(&m.point) {
            out.push(m.point.clone());
        }
    }
    out
}

/// Where the external mount `key` (a container path) comes from on restore, by the
/// config.json it restores with: a bind mount's source, /dev/null for a masked path, the
/// host's node for a device, and for the cgroup file system (seen from outside the
/// container's cgroup namespace, it is a bind of the container's cgroup) the new
/// container's cgroup, `cgroup` (e.g. "/c1") under the host's /sys/fs/cgroup.
pub fn source_for(key: &str, spec: &Spec, bundle: &Path, cgroup: &str) -> Result<PathBuf> {
    for m in spec.mounts().as_deref().unwrap_or_default() {
        if is_bind(m) && m.destination() == Path::new(key) {
            let src = m.source().clone().unwrap_or_default();
            return Ok(if src.is_absolute() {
                src
            } else {
                bundle.join(src)
            });
        }
    }
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let dest = m.destination().to_string_lossy();
        if matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) && under(&dest, key) {
            let below = key[dest.len()..].trim_start_matches('/');
            let mut host = PathBuf::from("/sys/fs/cgroup");
            if !below.is_empty() {
                host.push(below);
            }
            host.push(cgroup.trim_start_matches('/'));
            return Ok(host);
        }
    }
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    if masked.iter().any(|p| p == key) {
        return Ok(PathBuf::from("/dev/null"));
    }
    if key.starts_with("/dev/") {
        return Ok(PathBuf::from(key));
    }
    Err(Error::InvalidConfig(format!(
        "the checkpoint has an external mount at {key}, which config.json does not bind-mount"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
100 90 0:40 /b/rootfs / rw - tmpfs tmpfs rw
101 100 0:41 / /proc rw - proc proc rw
102 100 0:42 / /dev rw - tmpfs tmpfs rw
103 101 0:5 /null /proc/kcore rw - devtmpfs udev rw
109 101 0:5 /null /proc/keys rw - devtmpfs udev rw
104 101 0:41 /sys /proc/sys ro - proc proc rw
105 100 8:1 /srv/data /data rw - ext4 /dev/sda1 rw
106 100 0:40 /b/rootfs/etc /etc2 rw - tmpfs tmpfs rw
107 100 0:43 / /sys/fs/cgroup ro - cgroup2 cgroup2 rw
108 100 8:1 /srv/my\\040dir /x rw - ext4 /dev/sda1 rw
";

    fn spec_with_bind(dest: &str) -> Spec {
        let mut spec = Spec::default();
        let mut m = oci_spec::runtime::Mount::default();
        m.set_destination(PathBuf::from(dest))
            .set_typ(Some("bind".into()))
            .set_source(Some(PathBuf::from("/srv/data")))
            .set_options(Some(vec!["rbind".into()]));
        let mut cg = oci_spec::runtime::Mount::default();
        cg.set_destination(PathBuf::from("/sys/fs/cgroup"))
            .set_typ(Some("cgroup".into()));
        spec.set_mounts(Some(vec![m, cg]));
        spec
    }

    #[test]
    fn the_cgroup_mount_is_the_new_containers_cgroup() {
        let spec = spec_with_bind("/data");
        let b = Path::new("/bundle");
        let src = |k| source_for(k, &spec, b, "/c2").unwrap();
        assert_eq!(src("/sys/fs/cgroup"), Path::new("/sys/fs/cgroup/c2"));
        assert_eq!(
            src("/sys/fs/cgroup/memory"),
            Path::new("/sys/fs/cgroup/memory/c2")
        );
    }

    #[test]
    fn host_binds_and_masks_are_external_the_rest_is_not() {
        let spec = spec_with_bind("/data");
        assert_eq!(
            externals(INFO, &spec),
            vec!["/proc/kcore", "/proc/keys", "/data", "/x"],
            "the rootfs, fresh mounts, proc's own sub-binds and binds within the rootfs are criu's"
        );
    }

    #[test]
    fn sources_come_from_the_restoring_config() {
        let spec = spec_with_bind("/data");
        let b = Path::new("/bundle");
        let src = |k| source_for(k, &spec, b, "/c1");
        assert_eq!(src("/data").unwrap(), Path::new("/srv/data"));
        assert_eq!(src("/dev/fuse").unwrap(), Path::new("/dev/fuse"));
        let e = src("/elsewhere").unwrap_err().to_string();
        assert!(e.contains("/elsewhere"), "{e}");
    }

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
