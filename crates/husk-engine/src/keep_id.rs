//! `--userns=keep-id[:uid=N,gid=N]` for rootless husk (podman's keep-id): the container gets
//! a user namespace of its own inside the user's rootless one (where 0 is the user and
//! 1.. its subordinate ids, see [`crate::userns`]), in which the user's own uid and gid —
//! or `uid=`/`gid=` — are the user again, and the subordinate ids fill the rest, so that
//! container root and every other id still exist:
//!
//! ```text
//! container 0..U-1  ->  rootless 1..U      (subordinate ids)
//! container U       ->  rootless 0         (the user, on the host)
//! container U+1..   ->  rootless U+1..     (the remaining subordinate ids)
//! ```
//!
//! What the container's process writes as U into a bind-mounted host directory is therefore
//! the user's on the host. The process runs as U:G unless `--user` says otherwise, and the
//! container's /etc/passwd and /etc/group gain an entry for the user when the image has none
//! for those ids (written into the container's own rootfs, never into a layer); its home is
//! the user's when the container has that directory, else the working directory.
//!
//! The image's files must look the same inside as without keep-id (root's still root's), so
//! their owners are moved through the map. An idmapped mount would do that for free, but the
//! kernel lets only a file system's owner idmap it, and the user's store lies on the host's:
//! the rootfs is a flattened copy with shifted owners ([`crate::rootfs`]), as for
//! `--userns=auto` where idmapped mounts are refused.

use crate::config::ContainerConfig;
use crate::userns::{IdMapping, IdRange};
use husk_image::config::RootfsView;
use husk_image::fsutil;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Setting up keep-id failed.
#[derive(Debug, thiserror::Error)]
pub enum KeepIdError {
    #[error("--userns keep-id: this process is not in the user's rootless namespace ({file} maps no id 0)")]
    NoNamespace { file: &'static str },
    #[error("--userns keep-id: adding the user to the container's /{file}: {source}")]
    Etc {
        file: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("--userns keep-id: reading the container's /{file}: {source}")]
    Read {
        file: &'static str,
        #[source]
        source: husk_image::Error,
    },
}

/// What keep-id gives one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepId {
    pub mapping: IdMapping,
    /// The container's uid and gid that are the user's own.
    pub uid: u32,
    pub gid: u32,
    /// The user's passwd and group entries on the host: name, full name, home, group name.
    pub name: String,
    pub gecos: String,
    pub home: String,
    pub group: String,
}

impl KeepId {
    /// `--user`'s default: the user's own ids.
    pub fn user(&self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }
}

/// keep-id for the calling user, who runs as root of its rootless namespace; `uid`/`gid`
/// are the ids the user has inside (default: its own on the host).
pub fn keep_id(uid: Option<u32>, gid: Option<u32>) -> Result<KeepId, KeepIdError> {
    let (host_uid, uids) = own_map("/proc/self/uid_map")?;
    let (host_gid, gids) = own_map("/proc/self/gid_map")?;
    let (uid, gid) = (uid.unwrap_or(host_uid), gid.unwrap_or(host_gid));
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let entry = |db: &str, id: u32| -> Option<Vec<String>> {
        db.lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && f[2].parse() == Ok(id))
    };
    let pw = entry(&passwd, host_uid).filter(|f| f.len() >= 7);
    let name = pw
        .as_ref()
        .map(|f| f[0].clone())
        .unwrap_or_else(|| format!("user{host_uid}"));
    Ok(KeepId {
        mapping: IdMapping {
            uids: ranges(uid, uids),
            gids: ranges(gid, gids),
        },
        uid,
        gid,
        gecos: pw.as_ref().map(|f| f[4].clone()).unwrap_or_default(),
        home: pw
            .as_ref()
            .map(|f| f[5].clone())
            .filter(|h| h.starts_with('/'))
            .unwrap_or_else(|| "/".into()),
        group: entry(&group, host_gid)
            .map(|f| f[0].clone())
            .unwrap_or_else(|| name.clone()),
        name,
    })
}

/// The host id that is 0 in our namespace (the user's own) and how many ids the namespace
/// has (1 + its subordinate ids), from our uid_map or gid_map.
fn own_map(file: &'static str) -> Result<(u32, u32), KeepIdError> {
    let map = husk_oci::userns::parse_map(&std::fs::read_to_string(file).unwrap_or_default());
    let own = map
        .iter()
        .find(|r| r.inside == 0 && r.count > 0)
        .ok_or(KeepIdError::NoNamespace { file })?;
    let size = map
        .iter()
        .map(|r| r.inside.saturating_add(r.count))
        .max()
        .unwrap_or(1);
    Ok((own.outside, size))
}

/// The container's map when `own` is to be the user (0 of a rootless namespace of `size`
/// ids): 0.. take the subordinate ids until `own`, `own` is 0, the rest stay where they are.
fn ranges(own: u32, size: u32) -> Vec<IdRange> {
    let r = |inside, outside, count| IdRange {
        inside,
        outside,
        count,
    };
    let mut v = Vec::new();
    let below = own.min(size.saturating_sub(1));
    if below > 0 {
        v.push(r(0, 1, below));
    }
    v.push(r(own, 0, 1));
    if let Some(next) = own.checked_add(1).filter(|n| *n < size) {
        v.push(r(next, next, size - next));
    }
    v
}

/// The user's entries in the container `c` whose (mapped) rootfs is `rootfs`, with the home
/// [`home`] picks from its mounts and working dir (`-w`, else the image's `image_workdir`,
/// else /).
pub fn add_user_for(
    rootfs: &Path,
    k: &KeepId,
    c: &ContainerConfig,
    image_workdir: Option<&str>,
) -> Result<(), KeepIdError> {
    let workdir = c
        .process
        .workdir
        .as_deref()
        .or(image_workdir)
        .filter(|w| !w.is_empty())
        .unwrap_or("/");
    let binds = c.volumes.iter().map(|v| Mounted {
        destination: &v.destination,
        bind_source: Some(Path::new(&v.source)),
    });
    let others = (c.volume_mounts.iter().map(|v| &v.destination))
        .chain(c.tmpfs.iter().map(|t| &t.destination))
        .map(|d| Mounted {
            destination: d,
            bind_source: None,
        });
    let mounts: Vec<Mounted> = binds.chain(others).collect();
    add_user(rootfs, k, &home(k, rootfs, &mounts, workdir))
}

/// A mount the container will have: its destination, and for a bind its host source.
pub struct Mounted<'a> {
    pub destination: &'a str,
    pub bind_source: Option<&'a Path>,
}

/// The home directory of the user's entry, as podman chooses it: the user's own home when
/// the container will have that directory — in the image, or from a mount on it, or from a
/// bind above it whose host directory holds it — else the container's working directory
/// `workdir` (HOME is then a directory that exists).
pub fn home(k: &KeepId, rootfs: &Path, mounts: &[Mounted], workdir: &str) -> String {
    let clean = |p: &str| -> String {
        let parts: Vec<&str> = p
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        format!("/{}", parts.join("/"))
    };
    let home = clean(&k.home);
    if home.split('/').any(|c| c == "..") {
        return workdir.to_string();
    }
    let in_image = fsutil::open_dir(rootfs).is_ok_and(|r| {
        fsutil::open_in_root(
            r.as_fd(),
            home.trim_start_matches('/').as_bytes(),
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .is_ok()
    });
    let mounted = mounts.iter().any(|m| {
        let dest = clean(m.destination);
        if dest == home {
            return true;
        }
        let below = match home.strip_prefix(&dest) {
            Some(rest) if dest == "/" => rest,
            Some(rest) if rest.starts_with('/') => &rest[1..],
            _ => return false,
        };
        m.bind_source.is_some_and(|s| s.join(below).is_dir())
    });
    if in_image || mounted {
        home
    } else {
        workdir.to_string()
    }
}

/// Give the container whose rootfs (already mapped) is `rootfs` an /etc/passwd and
/// /etc/group entry for the user (with `home`), unless the image has one for those ids.
/// Paths resolve inside the rootfs; a file made anew belongs to the container's root.
pub fn add_user(rootfs: &Path, k: &KeepId, home: &str) -> Result<(), KeepIdError> {
    let view = RootfsView::Dir(rootfs.to_path_buf());
    let passwd = format!(
        "{}:*:{}:{}:{}:{home}:/bin/sh\n",
        k.name, k.uid, k.gid, k.gecos
    );
    let group = format!("{}:x:{}:\n", k.group, k.gid);
    let root = (
        k.mapping.outside_uid(0).unwrap_or(0),
        k.mapping.outside_gid(0).unwrap_or(0),
    );
    for (file, id, line) in [("etc/passwd", k.uid, passwd), ("etc/group", k.gid, group)] {
        let old = husk_image::config::read_image_file(&view, file)
            .map_err(|source| KeepIdError::Read { file, source })?
            .unwrap_or_default();
        let has = old
            .lines()
            .any(|l| l.split(':').nth(2).and_then(|n| n.parse().ok()) == Some(id));
        if has {
            continue;
        }
        let sep = if old.is_empty() || old.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        append(rootfs, file, &format!("{sep}{line}"), root)
            .map_err(|source| KeepIdError::Etc { file, source })?;
    }
    Ok(())
}

/// Append `text` to `rel` (etc/NAME) inside `rootfs`, making etc/ and the file (owned by
/// `owner`) when missing. Only a regular file is written to.
fn append(rootfs: &Path, rel: &str, text: &str, owner: (u32, u32)) -> io::Result<()> {
    let rfd = fsutil::open_dir(rootfs)?;
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_NONBLOCK | libc::O_NOCTTY;
    let fd = match fsutil::open_in_root(rfd.as_fd(), rel.as_bytes(), flags) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => create(rfd.as_fd(), rel, owner)?,
        Err(e) => return Err(e),
    };
    let st = fsutil::fstat(fd.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    std::fs::File::from(fd).write_all(text.as_bytes())
}

/// Make etc/ (if missing) and the file `rel` in it, both owned by `owner`.
fn create(root: BorrowedFd, rel: &str, owner: (u32, u32)) -> io::Result<OwnedFd> {
    let (dir, name) = rel.split_once('/').expect("etc/NAME");
    let had_dir = fsutil::open_in_root(root, dir.as_bytes(), libc::O_PATH).is_ok();
    let dfd = fsutil::mkdir_all_in_root(root, dir.as_bytes())?;
    let chown = |fd: BorrowedFd| {
        let rc = unsafe {
            libc::fchownat(
                fd.as_raw_fd(),
                c"".as_ptr(),
                owner.0,
                owner.1,
                libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    if !had_dir {
        chown(dfd.as_fd())?;
    }
    let c = fsutil::cstr(name.as_bytes())?;
    let fd = unsafe {
        libc::openat(
            dfd.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    chown(fd.as_fd())?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(inside: u32, outside: u32, count: u32) -> IdRange {
        IdRange {
            inside,
            outside,
            count,
        }
    }

    #[test]
    fn the_user_is_own_and_the_rest_fill_around() {
        // podman's example for keep-id:uid=11 in a namespace of 1 + 65536 ids.
        assert_eq!(
            ranges(11, 65537),
            [r(0, 1, 11), r(11, 0, 1), r(12, 12, 65525)]
        );
        assert_eq!(ranges(0, 65537), [r(0, 0, 1), r(1, 1, 65536)]);
        assert_eq!(ranges(65536, 65537), [r(0, 1, 65536), r(65536, 0, 1)]);
        // beyond the namespace: every subordinate id below it, nothing above
        assert_eq!(ranges(100000, 65537), [r(0, 1, 65536), r(100000, 0, 1)]);
        assert_eq!(ranges(u32::MAX - 1, 3), [r(0, 1, 2), r(u32::MAX - 1, 0, 1)]);
        assert_eq!(ranges(5, 1), [r(5, 0, 1)]);
        let m = IdMapping {
            uids: ranges(1001, 65537),
            gids: ranges(7, 65537),
        };
        assert_eq!(m.outside_uid(0), Some(1));
        assert_eq!(m.outside_uid(1001), Some(0));
        assert_eq!(m.outside_uid(1000), Some(1001));
        assert_eq!(m.outside_uid(1002), Some(1002));
        assert_eq!(m.outside_uid(65537), None);
        assert_eq!(m.outside_gid(7), Some(0));
    }

    #[test]
    fn entries_are_added_once_inside_the_root() {
        let t = std::env::temp_dir().join(format!("husk-keepid-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("etc")).unwrap();
        std::fs::write(t.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh").unwrap();
        // An absolute symlink resolves inside the root, never to the host's /etc/group.
        std::os::unix::fs::symlink("/etc/group.real", t.join("etc/group")).unwrap();
        std::fs::write(t.join("etc/group.real"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let k = KeepId {
            mapping: IdMapping {
                uids: vec![r(0, uid, 1)],
                gids: vec![r(0, gid, 1)],
            },
            uid: 1001,
            gid: 50,
            name: "alice".into(),
            gecos: "Alice".into(),
            home: "/home/alice".into(),
            group: "alice".into(),
        };
        add_user(&t, &k, "/home/alice").unwrap();
        add_user(&t, &k, "/home/alice").unwrap();
        assert_eq!(
            std::fs::read_to_string(t.join("etc/passwd")).unwrap(),
            "root:x:0:0:root:/root:/bin/sh\nalice:*:1001:50:Alice:/home/alice:/bin/sh\n"
        );
        // gid 50 is the image's staff already
        assert_eq!(
            std::fs::read_to_string(t.join("etc/group.real")).unwrap(),
            "root:x:0:\nstaff:x:50:\n"
        );
        // The home: the user's where the container has it, else the working dir.
        let m = |destination, bind_source| Mounted {
            destination,
            bind_source,
        };
        assert_eq!(home(&k, &t, &[], "/srv"), "/srv");
        assert_eq!(home(&k, &t, &[m("/home/alice/", None)], "/"), "/home/alice");
        assert_eq!(home(&k, &t, &[m("/home", None)], "/"), "/");
        let host = t.join("hosthome");
        std::fs::create_dir_all(host.join("alice")).unwrap();
        assert_eq!(home(&k, &t, &[m("/home", Some(&host))], "/"), "/home/alice");
        assert_eq!(home(&k, &t, &[m("/ho", Some(&host))], "/"), "/");
        std::fs::create_dir_all(t.join("home/alice")).unwrap();
        assert_eq!(home(&k, &t, &[], "/srv"), "/home/alice");
        // No /etc at all: made, with the files.
        std::fs::remove_dir_all(t.join("etc")).unwrap();
        add_user(&t, &KeepId { gid: 1001, ..k }, "/").unwrap();
        assert_eq!(
            std::fs::read_to_string(t.join("etc/group")).unwrap(),
            "alice:x:1001:\n"
        );
        std::fs::remove_dir_all(&t).unwrap();
    }
}
