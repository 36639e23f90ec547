//! A RUN step: the command as a container of the runtime library (husk-container), on the
//! step's overlay, with the image's env (plus the ARGs in scope), user and workdir, the
//! seccomp filter `husk run` gives (or `--security-opt`'s), in a network namespace of its
//! own (`none`), the host's (`host`) or one on a bridge network ([`super::net`]), and its
//! `--mount`s:
//! `type=bind` (the context, read-only unless `rw`, or another stage), `type=cache` (a
//! directory kept in the store across builds), `type=tmpfs`, `type=secret` (a
//! `--secret` file, read-only at /run/secrets/ID). Mount points that the image did not have
//! are removed from the step's upper dir again: no mount leaves a trace in the layer.

use crate::spec_from_image;
use husk_container::ContainerBuilder;
use husk_image::config::{ProcessValues, RootfsView};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A RUN container's hostname (docker's builder's).
pub const HOSTNAME: &str = "buildkitsandbox";

/// The network namespace of a RUN.
#[derive(Clone, Copy, Debug)]
pub enum Netns<'a> {
    /// A new one, with only loopback.
    Own,
    Host,
    /// This one (a bridge network's, [`super::net`]).
    Join(&'a Path),
}

/// One `--mount` of a RUN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mount {
    Bind {
        target: String,
        /// A stage or image name; None: the build context.
        from: Option<String>,
        source: String,
        rw: bool,
    },
    Cache {
        target: String,
        id: String,
        /// Owner of the cache directory when it is made.
        uid: u32,
        gid: u32,
        mode: u32,
        /// `sharing=`: only `shared` and `locked` exist here (a lock is taken either way).
        readonly: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
    Secret {
        id: String,
        target: String,
        required: bool,
        mode: u32,
    },
}

impl Mount {
    pub fn target(&self) -> &str {
        match self {
            Mount::Bind { target, .. }
            | Mount::Cache { target, .. }
            | Mount::Tmpfs { target, .. }
            | Mount::Secret { target, .. } => target,
        }
    }
}

/// A RUN `--mount` that was refused: the value and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--mount {spec}: {problem}")]
pub struct RunMountError {
    pub spec: String,
    pub problem: RunMountProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunMountProblem {
    #[error("mode={0} is not octal")]
    Mode(String),
    /// uid= or gid=.
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("target= is needed")]
    NoTarget,
    #[error("size= must be a number of bytes")]
    Size,
    #[error("id= is needed")]
    NoId,
    #[error("type=ssh is not supported")]
    Ssh,
    #[error("unknown type {0:?}")]
    Type(String),
}

/// `type=…,target=…,…` (already expanded). `workdir` makes a relative target absolute.
pub fn parse_mount(s: &str, workdir: &str) -> Result<Mount, RunMountError> {
    mount(s, workdir).map_err(|problem| RunMountError {
        spec: s.to_string(),
        problem,
    })
}

fn mount(s: &str, workdir: &str) -> Result<Mount, RunMountProblem> {
    let mut kv = std::collections::BTreeMap::new();
    let mut flags = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((k, v)) => {
                kv.insert(k.to_string(), v.to_string());
            }
            None => flags.push(part.to_string()),
        }
    }
    let ty = kv.remove("type").unwrap_or_else(|| "bind".into());
    let target = kv
        .remove("target")
        .or_else(|| kv.remove("dst"))
        .or_else(|| kv.remove("destination"));
    let abs = |t: String| {
        if t.starts_with('/') {
            t
        } else {
            format!("{}/{t}", workdir.trim_end_matches('/'))
        }
    };
    let flag = |kv: &std::collections::BTreeMap<String, String>, name: &str| {
        flags.iter().any(|f| f == name)
            || kv
                .get(name)
                .is_some_and(|v| matches!(v.as_str(), "true" | "1"))
    };
    let octal = |v: Option<&String>, d: u32| -> Result<u32, RunMountProblem> {
        match v {
            None => Ok(d),
            Some(m) => u32::from_str_radix(m, 8).map_err(|_| RunMountProblem::Mode(m.clone())),
        }
    };
    let num = |v: Option<&String>| -> Result<u32, RunMountProblem> {
        v.map_or(Ok(0), |x| {
            x.parse()
                .map_err(|_| RunMountProblem::NotANumber(x.clone()))
        })
    };
    let m = match ty.as_str() {
        "bind" => Mount::Bind {
            target: abs(target.ok_or(RunMountProblem::NoTarget)?),
            from: kv.get("from").cloned(),
            source: kv
                .get("source")
                .or_else(|| kv.get("src"))
                .cloned()
                .unwrap_or_else(|| "/".into()),
            rw: flag(&kv, "rw") || flag(&kv, "readwrite"),
        },
        "cache" => {
            let target = abs(target.ok_or(RunMountProblem::NoTarget)?);
            Mount::Cache {
                id: kv.get("id").cloned().unwrap_or_else(|| target.clone()),
                uid: num(kv.get("uid"))?,
                gid: num(kv.get("gid"))?,
                mode: octal(kv.get("mode"), 0o755)?,
                readonly: flag(&kv, "ro") || flag(&kv, "readonly"),
                target,
            }
        }
        "tmpfs" => Mount::Tmpfs {
            target: abs(target.ok_or(RunMountProblem::NoTarget)?),
            size: kv
                .get("size")
                .map(|v| v.parse())
                .transpose()
                .map_err(|_| RunMountProblem::Size)?,
        },
        "secret" => {
            let id = kv
                .get("id")
                .cloned()
                .or_else(|| {
                    target
                        .as_deref()
                        .and_then(|t| t.rsplit('/').next())
                        .map(str::to_string)
                })
                .ok_or(RunMountProblem::NoId)?;
            Mount::Secret {
                target: target
                    .map(abs)
                    .unwrap_or_else(|| format!("/run/secrets/{id}")),
                required: flag(&kv, "required"),
                mode: octal(kv.get("mode"), 0o400)?,
                id,
            }
        }
        "ssh" => return Err(RunMountProblem::Ssh),
        t => return Err(RunMountProblem::Type(t.to_string())),
    };
    Ok(m)
}

/// A RUN's mount made concrete: a host path (or tmpfs) for the spec.
pub struct HostMount {
    pub target: String,
    /// None: a tmpfs.
    pub source: Option<PathBuf>,
    pub readonly: bool,
    pub tmpfs_size: Option<u64>,
}

/// What a RUN needs to run.
pub struct RunSpec<'a> {
    pub id: String,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub netns: Netns<'a>,
    /// Where the step's hostname, hosts and resolv.conf are (bridge networks).
    pub etc_dir: Option<&'a Path>,
    /// `linux.seccomp`; None: unconfined.
    pub seccomp: Option<&'a Value>,
    pub mounts: Vec<HostMount>,
    pub quiet: bool,
}

/// Paths (absolute, in the rootfs) that do not exist yet: mount points the RUN will make.
pub fn missing_paths(rootfs: &Path, targets: &[&str]) -> Vec<String> {
    let Ok(root) = husk_image::fsutil::open_dir(rootfs) else {
        return Vec::new();
    };
    use std::os::fd::AsFd;
    let mut out = Vec::new();
    for t in targets {
        // Each component from the top: the first missing one and everything below it.
        let mut prefix = String::new();
        for comp in t.split('/').filter(|c| !c.is_empty()) {
            prefix.push('/');
            prefix.push_str(comp);
            let rel = prefix.trim_start_matches('/');
            if husk_image::fsutil::open_in_root(root.as_fd(), rel.as_bytes(), libc::O_PATH).is_err()
            {
                out.push(prefix.clone());
                break;
            }
        }
    }
    out
}

/// Remove `paths` (made as mount points) from the step's upper dir: each a tree that the
/// image did not have, so nothing of it belongs in the layer. A directory above one that
/// overlay copied up only to hold it goes too (`/etc` for `/etc/hosts`): one left empty,
/// not opaque, and with the mode and owner of the first of `lowers` (top first) that has it.
pub fn remove_mount_points(upper: &Path, paths: &[String], lowers: &[PathBuf]) {
    use std::os::unix::fs::MetadataExt;
    for p in paths {
        let rel = p.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c == "..") {
            continue;
        }
        let _ = husk_image::fsutil::remove_tree(&upper.join(rel));
        let mut parent = Path::new(rel).parent();
        while let Some(d) = parent.filter(|d| !d.as_os_str().is_empty()) {
            let up = upper.join(d);
            let Ok(m) = std::fs::symlink_metadata(&up) else {
                break;
            };
            let empty = std::fs::read_dir(&up).is_ok_and(|mut r| r.next().is_none());
            let opaque = ["trusted.overlay.opaque", "user.overlay.opaque"]
                .iter()
                .any(|x| has_xattr(&up, x));
            let below = lowers
                .iter()
                .find_map(|l| std::fs::symlink_metadata(l.join(d)).ok());
            let same = below.is_some_and(|b| {
                b.is_dir() && b.mode() == m.mode() && b.uid() == m.uid() && b.gid() == m.gid()
            });
            if !(m.is_dir() && empty && !opaque && same) || std::fs::remove_dir(&up).is_err() {
                break;
            }
            parent = d.parent();
        }
    }
}

fn has_xattr(p: &Path, name: &str) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(path), Ok(name)) = (
        husk_image::fsutil::cstr(p.as_os_str().as_bytes()),
        husk_image::fsutil::cstr(name.as_bytes()),
    ) else {
        return false;
    };
    unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

/// Run the command; its exit status.
pub fn run(state_root: &Path, r: &RunSpec) -> Result<i32, crate::Error> {
    let rootfs_view = RootfsView::Dir(r.rootfs.to_path_buf());
    let u = husk_image::config::resolve_user(&rootfs_view, &r.user)?;
    let pv = ProcessValues {
        args: r.args.clone(),
        env: r.env.clone(),
        cwd: r.cwd.clone(),
        uid: u.uid,
        gid: u.gid,
        additional_gids: u.additional_gids,
        exposed_ports: vec![],
        volumes: vec![],
        labels: Default::default(),
        stop_signal: None,
    };
    let mut spec = spec_from_image::spec(
        &pv,
        &spec_from_image::Options {
            hostname: HOSTNAME.into(),
            host_network: matches!(r.netns, Netns::Host),
            cgroups_path: format!("/husk-engine/{}", r.id),
            // As docker's builder: a RUN may setuid, chown, bind ports.
            no_new_privileges: false,
            seccomp: r.seccomp.cloned(),
            etc_dir: r.etc_dir.map(Path::to_path_buf),
            ..Default::default()
        },
    );
    if let Netns::Join(ns) = r.netns {
        crate::network::join_netns(&mut spec, ns);
        // The runtime's init is then our grandchild: only a subreaper can wait for it.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    // The bundle holds config.json; the rootfs is the step's overlay.
    spec["root"] = json!({"path": r.rootfs, "readonly": false});
    let mounts = spec["mounts"].as_array_mut().expect("spec has mounts");
    for m in &r.mounts {
        mounts.push(match &m.source {
            Some(src) => json!({
                "destination": m.target, "type": "bind", "source": src,
                "options": ["rbind", if m.readonly { "ro" } else { "rw" }, "nosuid", "nodev"],
            }),
            None => {
                let mut o = vec![
                    Value::from("nosuid"),
                    Value::from("nodev"),
                    Value::from("mode=1777"),
                ];
                if let Some(s) = m.tmpfs_size {
                    o.push(format!("size={s}").into());
                }
                json!({"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": o})
            }
        });
    }
    std::fs::create_dir_all(r.bundle).map_err(|e| crate::os::IoError {
        op: "creating",
        path: r.bundle.into(),
        source: e,
    })?;
    let cfg = r.bundle.join("config.json");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&spec).expect("json")).map_err(|e| {
        crate::os::IoError {
            op: "writing",
            path: cfg.clone(),
            source: e,
        }
    })?;
    let quiet = r.quiet.then(Silence::new);
    let built = ContainerBuilder::new(r.id.clone())
        .root_path(state_root)
        .as_init(r.bundle)
        .build_with_warnings(&mut |_| {});
    let code = built.map_err(crate::Error::from).and_then(|mut c| {
        let started = c.start();
        let waited = match started {
            Ok(()) => c.wait().map_err(crate::Error::from),
            Err(e) => {
                let _ = c.kill(libc::SIGKILL, true);
                let _ = c.wait();
                Err(e.into())
            }
        };
        let deleted = c.delete(true);
        let code = waited?;
        deleted?;
        Ok(code)
    });
    drop(quiet);
    code
}

/// Remove a RUN container a killed build left (kill, delete); errors ignored. The build
/// may have died inside `create`, before state.json existed: that half is removed from
/// the cgroup the runtime noted first.
pub fn remove_container(state_root: &Path, id: &str) {
    use husk_container::Container;
    match Container::load(state_root, id) {
        Ok(c) => {
            let _ = c.kill(libc::SIGKILL, true);
            let _ = c.delete(true);
        }
        Err(_) => {
            if let Ok(false) = Container::delete_unloadable(state_root, id) {
                // Completed meanwhile: an ordinary one after all.
                if let Ok(c) = Container::load(state_root, id) {
                    let _ = c.kill(libc::SIGKILL, true);
                    let _ = c.delete(true);
                }
            }
        }
    }
}

/// stdout and stderr on /dev/null while it lives (`-q`: a RUN's output is not shown).
struct Silence {
    saved: [i32; 2],
}

impl Silence {
    fn new() -> Silence {
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            let saved = [
                libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3),
                libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3),
            ];
            if null >= 0 {
                libc::dup2(null, 1);
                libc::dup2(null, 2);
                libc::close(null);
            }
            Silence { saved }
        }
    }
}

impl Drop for Silence {
    fn drop(&mut self) {
        unsafe {
            for (fd, s) in [1, 2].into_iter().zip(self.saved) {
                if s >= 0 {
                    libc::dup2(s, fd);
                    libc::close(s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts() {
        assert_eq!(
            parse_mount("type=cache,target=/root/.cache", "/").unwrap(),
            Mount::Cache {
                target: "/root/.cache".into(),
                id: "/root/.cache".into(),
                uid: 0,
                gid: 0,
                mode: 0o755,
                readonly: false
            }
        );
        assert_eq!(
            parse_mount("type=secret,id=tok", "/").unwrap(),
            Mount::Secret {
                id: "tok".into(),
                target: "/run/secrets/tok".into(),
                required: false,
                mode: 0o400
            }
        );
        assert_eq!(
            parse_mount("target=src,from=build,source=/out,rw", "/app").unwrap(),
            Mount::Bind {
                target: "/app/src".into(),
                from: Some("build".into()),
                source: "/out".into(),
                rw: true
            }
        );
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,size=1000", "/").unwrap(),
            Mount::Tmpfs {
                target: "/t".into(),
                size: Some(1000)
            }
        );
        let problem = |s| parse_mount(s, "/").unwrap_err().problem;
        assert_eq!(problem("type=bind"), RunMountProblem::NoTarget);
        assert_eq!(
            problem("type=nfs,target=/x"),
            RunMountProblem::Type("nfs".into())
        );
        assert_eq!(
            problem("type=cache,target=/x,mode=9"),
            RunMountProblem::Mode("9".into())
        );
        assert_eq!(
            parse_mount("type=bind", "/").unwrap_err().to_string(),
            "--mount type=bind: target= is needed"
        );
    }
}
