//! Image config → the values a runtime spec's `process` needs (args, env, cwd, user), plus
//! what the engine records (exposed ports, volumes, labels, stop signal).
//!
//! The user is resolved in the image's own /etc/passwd and /etc/group, read either from a
//! rootfs directory (openat2 RESOLVE_IN_ROOT: an absolute symlink resolves inside the rootfs)
//! or straight from the unpacked overlay layers (whiteouts, opaque dirs and symlinks handled
//! lexically, clamped to the image root). Host files are never read.

use crate::error::{Error, Result};
use crate::fsutil;
use oci_spec::image::ImageConfiguration;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MAX_DB: u64 = 4 << 20;

#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `name|uid[:group|gid]`
    pub user: Option<String>,
    /// Replaces the image's Entrypoint (and drops its Cmd unless `cmd` is given too).
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` (or `KEY` alone: unset... kept as given), applied over the image's Env.
    pub env: Vec<String>,
    pub workdir: Option<String>,
}

/// Where the image's files are.
#[derive(Clone, Debug)]
pub enum RootfsView {
    /// A flattened rootfs directory (or a mounted overlay).
    Dir(PathBuf),
    /// Unpacked overlay layer dirs, top layer first.
    Layers(Vec<PathBuf>),
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProcessValues {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for e in over {
        let key = e.split('=').next().unwrap_or(e);
        if let Some(slot) = out.iter_mut().find(|x| x.split('=').next() == Some(key)) {
            *slot = e.clone();
        } else {
            out.push(e.clone());
        }
    }
    out
}

pub fn process_from_config(
    cfg: &ImageConfiguration,
    root: &RootfsView,
    ov: &Overrides,
) -> Result<ProcessValues> {
    let c = cfg.config().clone().unwrap_or_default();
    let entrypoint = ov
        .entrypoint
        .clone()
        .unwrap_or_else(|| c.entrypoint().clone().unwrap_or_default());
    let cmd = match (&ov.cmd, &ov.entrypoint) {
        (Some(cmd), _) => cmd.clone(),
        (None, Some(_)) => vec![],
        (None, None) => c.cmd().clone().unwrap_or_default(),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::invalid(
            "image config",
            "no command: the image has no Entrypoint or Cmd and none was given",
        ));
    }
    let cwd = ov
        .workdir
        .clone()
        .or_else(|| c.working_dir().clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(Error::invalid(
            "working directory",
            format!("{cwd:?} is not absolute"),
        ));
    }
    let user = ov
        .user
        .clone()
        .or_else(|| c.user().clone())
        .unwrap_or_default();
    let u = resolve_user(root, &user)?;
    let mut env = merge_env(&c.env().clone().unwrap_or_default(), &ov.env);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", u.home));
    }
    let mut exposed_ports = c.exposed_ports().clone().unwrap_or_default();
    exposed_ports.sort();
    let mut volumes = c.volumes().clone().unwrap_or_default();
    volumes.sort();
    Ok(ProcessValues {
        args,
        env,
        cwd,
        uid: u.uid,
        gid: u.gid,
        additional_gids: u.additional_gids,
        exposed_ports,
        volumes,
        labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
        stop_signal: c.stop_signal().clone(),
    })
}

#[derive(Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PwEnt {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn parse_passwd(data: &str) -> Vec<PwEnt> {
    data.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PwEnt {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(data: &str) -> Vec<(String, u32, Vec<String>)> {
    data.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let members = f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            Some((f[0].to_string(), f[2].parse().ok()?, members))
        })
        .collect()
}

/// Resolve `name|uid[:group|gid]` in the image.
pub fn resolve_user(root: &RootfsView, spec: &str) -> Result<ResolvedUser> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_image_file(root, "/etc/passwd")?.unwrap_or_default();
    let pw = parse_passwd(&passwd);
    let bad = |r: String| Error::invalid(format!("user {spec:?}"), r);
    let (uid, mut gid, home, name) = if u.is_empty() {
        let e = pw.iter().find(|e| e.uid == 0);
        (
            0,
            0,
            e.map(|e| e.home.clone()).unwrap_or_else(|| "/".into()),
            e.map(|e| e.name.clone()),
        )
    } else if let Ok(n) = u.parse::<u32>() {
        match pw.iter().find(|e| e.uid == n) {
            Some(e) => (n, e.gid, e.home.clone(), Some(e.name.clone())),
            None => (n, 0, "/".into(), None),
        }
    } else {
        let e = pw
            .iter()
            .find(|e| e.name == u)
            .ok_or_else(|| bad(format!("no user {u:?} in the image's /etc/passwd")))?;
        (e.uid, e.gid, e.home.clone(), Some(e.name.clone()))
    };
    let needs_group =
        g.is_some_and(|g| g.parse::<u32>().is_err()) || (g.is_none() && name.is_some());
    let groups = if needs_group {
        parse_group(&read_image_file(root, "/etc/group")?.unwrap_or_default())
    } else {
        Vec::new()
    };
    let mut additional = Vec::new();
    match g {
        Some(g) if !g.is_empty() => {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => groups
                    .iter()
                    .find(|(n, _, _)| n == g)
                    .map(|(_, id, _)| *id)
                    .ok_or_else(|| bad(format!("no group {g:?} in the image's /etc/group")))?,
            }
        }
        _ => {
            if let Some(n) = &name {
                for (_, id, members) in &groups {
                    if members.iter().any(|m| m == n) && *id != gid && !additional.contains(id) {
                        additional.push(*id);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// Clean a path inside the image root: `..` stops at the root, like RESOLVE_IN_ROOT.
fn clean(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

fn read_limited_fd(fd: OwnedFd, what: &str) -> Result<Option<String>> {
    let st = fsutil::fstat(fd.as_fd()).map_err(|e| Error::io("stat", what, e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(None);
    }
    let mut f = std::fs::File::from(fd);
    let mut buf = Vec::new();
    (&mut f)
        .take(MAX_DB)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("reading", what, e))?;
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Read a small text file of the image; None when it does not exist.
pub fn read_image_file(root: &RootfsView, path: &str) -> Result<Option<String>> {
    match root {
        RootfsView::Dir(dir) => {
            let rfd = fsutil::open_dir(dir).map_err(|e| Error::io("opening rootfs", dir, e))?;
            let rel = clean(path).join("/");
            // O_NONBLOCK: an image's /etc/passwd may be a FIFO, whose open would wait for a
            // writer forever; it is then not a regular file, and ignored.
            let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
            match fsutil::open_in_root(rfd.as_fd(), rel.as_bytes(), flags) {
                Ok(fd) => read_limited_fd(fd, path),
                Err(e)
                    if e.raw_os_error() == Some(libc::ENOENT)
                        || e.raw_os_error() == Some(libc::ENOTDIR) =>
                {
                    Ok(None)
                }
                Err(e) => Err(Error::io("opening", dir.join(rel), e)),
            }
        }
        RootfsView::Layers(layers) => read_from_layers(layers, clean(path), 0),
    }
}

enum Step {
    Missing,
    WhiteedOut,
    Symlink(Vec<String>),
    File(OwnedFd),
    NotFile,
}

fn read_from_layers(layers: &[PathBuf], comps: Vec<String>, hops: u32) -> Result<Option<String>> {
    if hops > 40 {
        return Err(Error::invalid(
            format!("/{}", comps.join("/")),
            "too many levels of symbolic links",
        ));
    }
    if comps.is_empty() {
        return Ok(None);
    }
    for layer in layers {
        let (step, opaque) = walk_layer(layer, &comps)?;
        match step {
            Step::Missing if opaque => return Ok(None),
            Step::Missing => continue,
            Step::WhiteedOut | Step::NotFile => return Ok(None),
            Step::Symlink(next) => return read_from_layers(layers, next, hops + 1),
            Step::File(fd) => return read_limited_fd(fd, &comps.join("/")),
        }
    }
    Ok(None)
}

/// Look `comps` up in one layer dir without following anything. Returns what was found and
/// whether an opaque dir on the way hides lower layers.
fn walk_layer(layer: &std::path::Path, comps: &[String]) -> Result<(Step, bool)> {
    let mut cur = match fsutil::open_dir(layer) {
        Ok(fd) => fd,
        Err(e) => return Err(Error::io("opening layer", layer, e)),
    };
    let mut opaque = false;
    for (i, c) in comps.iter().enumerate() {
        let name = CString::new(c.as_bytes()).map_err(|_| Error::invalid("path", "NUL"))?;
        let st = match fsutil::stat_at(cur.as_fd(), &name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok((Step::Missing, opaque)),
            Err(e) => return Err(Error::io("stat", layer.join(c), e)),
        };
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt == libc::S_IFCHR && st.st_rdev == 0 {
            return Ok((Step::WhiteedOut, opaque));
        }
        let last = i + 1 == comps.len();
        if fmt == libc::S_IFLNK {
            let mut buf = vec![0u8; 4096];
            let n = unsafe {
                libc::readlinkat(
                    cur.as_raw_fd(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n < 0 {
                return Err(Error::io(
                    "readlink",
                    layer.join(c),
                    std::io::Error::last_os_error(),
                ));
            }
            let target = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
            let base = if target.starts_with('/') {
                String::new()
            } else {
                comps[..i].join("/")
            };
            let mut next = clean(&format!("{base}/{target}"));
            next.extend(comps[i + 1..].iter().cloned());
            return Ok((Step::Symlink(clean(&next.join("/"))), opaque));
        }
        if last {
            if fmt != libc::S_IFREG {
                return Ok((Step::NotFile, opaque));
            }
            let fd = unsafe {
                libc::openat(
                    cur.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(Error::io(
                    "opening",
                    layer.join(c),
                    std::io::Error::last_os_error(),
                ));
            }
            return Ok((Step::File(unsafe { OwnedFd::from_raw_fd(fd) }), opaque));
        }
        if fmt != libc::S_IFDIR {
            return Ok((Step::NotFile, opaque));
        }
        let fd = unsafe {
            libc::openat(
                cur.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(Error::io(
                "opening",
                layer.join(c),
                std::io::Error::last_os_error(),
            ));
        }
        cur = unsafe { OwnedFd::from_raw_fd(fd) };
        for k in [c"trusted.overlay.opaque", c"user.overlay.opaque"] {
            let mut v = [0u8; 2];
            let r = unsafe {
                libc::fgetxattr(cur.as_raw_fd(), k.as_ptr(), v.as_mut_ptr().cast(), v.len())
            };
            if r == 1 && v[0] == b'y' {
                opaque = true;
            }
        }
    }
    Ok((Step::NotFile, opaque))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("husk-cfg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("etc")).unwrap();
        d
    }

    fn cfg(json: &str) -> ImageConfiguration {
        serde_json::from_str(json).unwrap()
    }

    const BASE: &str = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
        "config":{"User":"app","Env":["PATH=/bin","A=1"],"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],
        "WorkingDir":"/srv","ExposedPorts":{"80/tcp":{},"53/udp":{}},"Volumes":{"/data":{}},
        "Labels":{"k":"v"},"StopSignal":"SIGTERM"}}"#;

    #[test]
    fn a_fifo_is_no_passwd_and_does_not_block() {
        let d = tmpdir("fifo");
        let p = std::ffi::CString::new(d.join("etc/passwd").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o644) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let view = RootfsView::Dir(d.clone());
        std::thread::spawn(move || {
            let _ = tx.send(read_image_file(&view, "/etc/passwd").map_err(|e| e.to_string()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("reading a FIFO /etc/passwd blocked");
        assert_eq!(got, Ok(None));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn process_values_from_dir() {
        let d = tmpdir("dir");
        std::fs::write(
            d.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\n",
        )
        .unwrap();
        let p = process_from_config(
            &cfg(BASE),
            &RootfsView::Dir(d.clone()),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(p.args, vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(p.env, vec!["PATH=/bin", "A=1", "HOME=/home/app"]);
        assert_eq!(
            (p.uid, p.gid, p.additional_gids.clone()),
            (1000, 1000, vec![10])
        );
        assert_eq!(p.cwd, "/srv");
        assert_eq!(p.exposed_ports, vec!["53/udp", "80/tcp"]);
        assert_eq!(p.volumes, vec!["/data"]);
        assert_eq!(p.labels.get("k").map(String::as_str), Some("v"));

        let ov = Overrides {
            user: Some("0:wheel".into()),
            entrypoint: Some(vec!["/bin/true".into()]),
            env: vec!["A=2".into(), "B=3".into()],
            workdir: Some("/tmp".into()),
            ..Default::default()
        };
        let p = process_from_config(&cfg(BASE), &RootfsView::Dir(d.clone()), &ov).unwrap();
        assert_eq!(p.args, vec!["/bin/true"]);
        assert_eq!(p.env, vec!["PATH=/bin", "A=2", "B=3", "HOME=/root"]);
        assert_eq!((p.uid, p.gid), (0, 10));
        assert_eq!(p.cwd, "/tmp");
        let ov = Overrides {
            user: Some("nobody".into()),
            ..Default::default()
        };
        assert!(process_from_config(&cfg(BASE), &RootfsView::Dir(d.clone()), &ov).is_err());
        let ov = Overrides {
            user: Some("4242:4343".into()),
            ..Default::default()
        };
        let p = process_from_config(&cfg(BASE), &RootfsView::Dir(d.clone()), &ov).unwrap();
        assert_eq!(
            (p.uid, p.gid, p.env.last().unwrap().as_str()),
            (4242, 4343, "HOME=/")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn symlinked_passwd_stays_inside() {
        let d = tmpdir("sym");
        // /etc/passwd -> /etc/../../../../etc/shadow-ish: must resolve inside d
        std::fs::create_dir_all(d.join("real")).unwrap();
        std::fs::write(d.join("real/pw"), "svc:x:77:88::/svc:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/../../../real/pw", d.join("etc/passwd")).unwrap();
        let u = resolve_user(&RootfsView::Dir(d.clone()), "svc").unwrap();
        assert_eq!((u.uid, u.gid), (77, 88));
        // pointing at the host's real /etc/passwd (absolute): resolves inside the rootfs → missing
        std::fs::remove_file(d.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join("etc/passwd")).unwrap();
        assert!(resolve_user(&RootfsView::Dir(d.clone()), "root").is_err());
        // same through layers
        let u = resolve_user(&RootfsView::Layers(vec![d.clone()]), "0").unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert!(resolve_user(&RootfsView::Layers(vec![d.clone()]), "root").is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn layers_lookup_whiteout_and_symlink() {
        let lower = tmpdir("lower");
        let upper = tmpdir("upper");
        std::fs::write(lower.join("etc/passwd"), "a:x:1:1::/a:/bin/sh\n").unwrap();
        std::fs::write(lower.join("etc/group"), "g:x:5:a\n").unwrap();
        // upper: /etc/passwd is a relative symlink to ../real/passwd, which lives in lower
        std::fs::create_dir_all(lower.join("real")).unwrap();
        std::fs::write(lower.join("real/passwd"), "b:x:2:2::/b:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("../real/passwd", upper.join("etc/passwd")).unwrap();
        let view = RootfsView::Layers(vec![upper.clone(), lower.clone()]);
        let u = resolve_user(&view, "b").unwrap();
        assert_eq!((u.uid, u.gid), (2, 2));
        assert!(resolve_user(&view, "a").is_err());
        let u = resolve_user(&RootfsView::Layers(vec![lower.clone()]), "a").unwrap();
        assert_eq!(u.additional_gids, vec![5]);
        std::fs::remove_dir_all(&lower).unwrap();
        std::fs::remove_dir_all(&upper).unwrap();
    }
}
