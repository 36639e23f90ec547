//! `-v` and `--mount` as typed mounts: a bind of a host path, a volume (named, or
//! anonymous: made for this container), or a tmpfs. Pure apart from reading what the
//! flags name (a bind source must exist; a shared or slave propagation needs a source on
//! a mount that can propagate, as docker checks), so every mistake is found before
//! anything is made.

use super::store::check_name;
use super::VolumeError;
use crate::spec_from_image::flags::Tmpfs;
use crate::spec_from_image::Volume;
use std::collections::BTreeMap;
use std::path::Path;

/// A `-v` or `--mount` that was refused: the value as given and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum MountFlagError {
    #[error("-v {0:?}: expected SRC:DST[:OPTIONS]")]
    VolumeForm(String),
    #[error("{flag} {spec:?}: {problem}")]
    Destination {
        flag: &'static str,
        spec: String,
        problem: DestinationError,
    },
    #[error(
        "-v {spec:?}: unknown option {option:?} (use ro, rw, z, Z, nocopy, [r]shared, \
         [r]slave, [r]private)"
    )]
    VolumeOption { spec: String, option: String },
    #[error("-v {spec:?}: {option:?} conflicts with an earlier option")]
    VolumeConflict { spec: String, option: String },
    #[error("-v {spec:?}: {propagation} is a bind mount's option (a volume's mount is private)")]
    VolumePropagation { spec: String, propagation: String },
    #[error("-v {spec:?}: {source}")]
    VolumeName { spec: String, source: VolumeError },
    #[error("--mount {spec:?}: {problem}")]
    Mount { spec: String, problem: MountError },
    /// docker's check (see [`check_propagation`]); `need` is "a shared mount" or "a shared
    /// or slave mount".
    #[error(
        "{flag} {}:{}:{}: path {} is mounted on {mount_point} but it is not {need} \
         (mount --make-shared {mount_point})",
        .bind.source, .bind.destination, .bind.propagation, .bind.source
    )]
    Propagation {
        flag: &'static str,
        bind: Box<Volume>,
        mount_point: String,
        need: &'static str,
    },
}

/// What is wrong with a mount's destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("the destination {0:?} must be an absolute path")]
    Relative(String),
    #[error("the destination must not contain . or ..")]
    DotDot,
    #[error("the destination cannot be /")]
    Root,
}

/// What is wrong with a `--mount` value.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{key}={value:?}: expected true or false")]
    Boolean { key: String, value: String },
    #[error("{0} needs a value ({0}=…)")]
    NeedsValue(String),
    #[error("bind-propagation={0:?}: use [r]shared, [r]slave or [r]private")]
    Propagation(String),
    #[error("{0} must be {0}=KEY=VALUE")]
    KeyValue(String),
    #[error("husk has only the local volume driver")]
    Driver,
    #[error("tmpfs-size={0:?}: expected a size like 64m")]
    TmpfsSize(String),
    #[error("tmpfs-mode={0:?}: expected octal like 1777")]
    TmpfsMode(String),
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    #[error("{key} does not apply to type={kind}")]
    NotForType { key: &'static str, kind: String },
    #[error("target (or dst, destination) is required")]
    NoTarget,
    #[error("a bind needs a source")]
    NoSource,
    #[error("the bind source {0:?} must be an absolute path")]
    RelativeSource(String),
    #[error("bind source path does not exist: {0}")]
    NoSuchSource(String),
    /// A volume's name or options.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("a tmpfs has no source")]
    TmpfsSource,
    #[error("type={0:?}: use bind, volume or tmpfs")]
    Type(String),
}

/// A volume to mount, as `-v NAME:/DST`, `-v /DST` or `--mount type=volume` ask for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeMount {
    /// None: a new anonymous volume.
    pub name: Option<String>,
    pub destination: String,
    pub readonly: bool,
    /// Do not copy the image's content at the destination into an empty volume.
    pub nocopy: bool,
    /// `--mount volume-opt=` / `volume-label=`: for a volume made by this mount.
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// What one `-v` or `--mount` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountRequest {
    Bind(Volume),
    Volume(VolumeMount),
    Tmpfs(Tmpfs),
}

const PROPAGATIONS: &[&str] = &[
    "shared", "slave", "private", "rshared", "rslave", "rprivate",
];

/// A destination in the container: absolute, not `/`, no `.` or `..` (the runtime resolves
/// it inside the rootfs anyway; refusing them keeps two spellings of one path apart).
fn check_destination(flag: &'static str, spec: &str, dst: &str) -> Result<String, MountFlagError> {
    let bad = |problem| MountFlagError::Destination {
        flag,
        spec: spec.to_string(),
        problem,
    };
    if !dst.starts_with('/') {
        return Err(bad(DestinationError::Relative(dst.to_string())));
    }
    if dst.split('/').any(|c| c == "." || c == "..") {
        return Err(bad(DestinationError::DotDot));
    }
    let d = dst.trim_end_matches('/');
    if d.is_empty() {
        return Err(bad(DestinationError::Root));
    }
    Ok(d.to_string())
}

/// `-v SRC:DST[:OPTIONS]`, `-v NAME:DST[:OPTIONS]` or `-v DST`. SRC absolute: a bind of
/// that host path; NAME: the named volume (made on first use); DST alone: a new anonymous
/// volume. OPTIONS is a comma list of `ro|rw`, a propagation (`[r]shared|[r]slave|
/// [r]private`, binds only), `nocopy` (volumes: leave the image's content out) and docker's
/// `z`/`Z` (SELinux relabelling: accepted, and nothing to do where no SELinux is active,
/// as on every machine husk runs on; docker does the same then).
pub fn parse_volume(s: &str) -> Result<MountRequest, MountFlagError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(MountFlagError::VolumeForm(s.to_string())),
    };
    let destination = check_destination("-v", s, dst)?;
    let (mut rw, mut propagation, mut nocopy) = (None, None, false);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let slot = match o {
            "ro" | "rw" => &mut rw,
            p if PROPAGATIONS.contains(&p) => &mut propagation,
            "nocopy" => {
                nocopy = true;
                continue;
            }
            "z" | "Z" => continue,
            _ => {
                return Err(MountFlagError::VolumeOption {
                    spec: s.to_string(),
                    option: o.to_string(),
                })
            }
        };
        if slot.replace(o).is_some() {
            return Err(MountFlagError::VolumeConflict {
                spec: s.to_string(),
                option: o.to_string(),
            });
        }
    }
    let readonly = rw == Some("ro");
    if src.starts_with('/') {
        return Ok(MountRequest::Bind(Volume {
            source: src.into(),
            destination,
            readonly,
            propagation: propagation.unwrap_or("rprivate").to_string(),
        }));
    }
    if let Some(p) = propagation {
        return Err(MountFlagError::VolumePropagation {
            spec: s.to_string(),
            propagation: p.to_string(),
        });
    }
    let name = match src {
        "" => None,
        n => {
            check_name(n).map_err(|source| MountFlagError::VolumeName {
                spec: s.to_string(),
                source,
            })?;
            Some(n.to_string())
        }
    };
    Ok(MountRequest::Volume(VolumeMount {
        name,
        destination,
        readonly,
        nocopy,
        ..Default::default()
    }))
}

/// A `--mount` boolean: the key alone is true, else true|false|1|0.
fn boolean(key: &str, v: Option<&str>) -> Result<bool, MountError> {
    match v {
        None | Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(v) => Err(MountError::Boolean {
            key: key.to_string(),
            value: v.to_string(),
        }),
    }
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…,…` (docker's keys: `src`, `dst` and
/// `destination` too, `readonly`/`ro`, `bind-propagation`, `volume-nocopy`, `volume-opt`,
/// `volume-label`, `volume-driver=local`, `tmpfs-size`, `tmpfs-mode`). Type defaults to
/// volume, as docker's; a key that does not belong to the type is an error.
pub fn parse_mount(spec: &str) -> Result<MountRequest, MountFlagError> {
    parse_mount_fields(spec).map_err(|problem| match problem {
        Problem::Mount(problem) => MountFlagError::Mount {
            spec: spec.to_string(),
            problem,
        },
        Problem::Flag(e) => e,
    })
}

/// [`parse_mount`]'s own mistakes, or one of a check shared with `-v`.
enum Problem {
    Mount(MountError),
    Flag(MountFlagError),
}

impl<E: Into<MountError>> From<E> for Problem {
    fn from(e: E) -> Problem {
        Problem::Mount(e.into())
    }
}

fn parse_mount_fields(spec: &str) -> Result<MountRequest, Problem> {
    let mut kind = "volume";
    let (mut src, mut dst, mut readonly) = (None::<String>, None::<String>, false);
    let (mut propagation, mut nocopy) = (None::<String>, false);
    let (mut options, mut labels) = (BTreeMap::new(), BTreeMap::new());
    let (mut size, mut mode) = (None::<i64>, None::<u32>);
    // Which type-specific keys were given, to refuse them on another type.
    let mut specific: Vec<&str> = Vec::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (field.trim(), None),
        };
        let value = || v.ok_or_else(|| MountError::NeedsValue(k.to_string()));
        match k {
            "type" => kind = value()?,
            "source" | "src" => src = Some(value()?.to_string()),
            "target" | "destination" | "dst" => dst = Some(value()?.to_string()),
            "readonly" | "ro" => readonly = boolean(k, v)?,
            "bind-propagation" => {
                let p = value()?;
                if !PROPAGATIONS.contains(&p) {
                    return Err(MountError::Propagation(p.to_string()).into());
                }
                propagation = Some(p.to_string());
                specific.push("bind-propagation");
            }
            "volume-nocopy" => {
                nocopy = boolean(k, v)?;
                specific.push("volume-nocopy");
            }
            "volume-opt" | "volume-label" => {
                let (ok, ov) = value()?
                    .split_once('=')
                    .ok_or_else(|| MountError::KeyValue(k.to_string()))?;
                let map = if k == "volume-opt" {
                    &mut options
                } else {
                    &mut labels
                };
                map.insert(ok.to_string(), ov.to_string());
                specific.push("volume-opt");
            }
            "volume-driver" => {
                if value()? != "local" {
                    return Err(MountError::Driver.into());
                }
                specific.push("volume-driver");
            }
            "tmpfs-size" => {
                let v = value()?;
                let n = crate::spec_from_image::parse_size("tmpfs-size", v)
                    .map_err(|_| MountError::TmpfsSize(v.to_string()))?;
                size = Some(n);
                specific.push("tmpfs-size");
            }
            "tmpfs-mode" => {
                let m = value()?;
                let n = u32::from_str_radix(m.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|n| *n <= 0o7777)
                    .ok_or_else(|| MountError::TmpfsMode(m.to_string()))?;
                mode = Some(n);
                specific.push("tmpfs-mode");
            }
            // docker's hint for Docker Desktop's file sharing: meaningless here, as there.
            "consistency" => {}
            _ => return Err(MountError::UnknownKey(k.to_string()).into()),
        }
    }
    let belongs = |key: &str| match kind {
        "bind" => key.starts_with("bind-"),
        "volume" => key.starts_with("volume-"),
        _ => key.starts_with("tmpfs-"),
    };
    if let Some(k) = specific.iter().find(|k| !belongs(k)) {
        return Err(MountError::NotForType {
            key: k,
            kind: kind.to_string(),
        }
        .into());
    }
    let dst = dst.ok_or(MountError::NoTarget)?;
    let destination = check_destination("--mount", spec, &dst).map_err(Problem::Flag)?;
    match kind {
        "bind" => {
            let src = src.ok_or(MountError::NoSource)?;
            if !src.starts_with('/') {
                return Err(MountError::RelativeSource(src).into());
            }
            if !Path::new(&src).exists() {
                return Err(MountError::NoSuchSource(src).into());
            }
            Ok(MountRequest::Bind(Volume {
                source: src,
                destination,
                readonly,
                propagation: propagation.unwrap_or_else(|| "rprivate".into()),
            }))
        }
        "volume" => {
            let name = match src {
                Some(n) if !n.is_empty() => {
                    check_name(&n)?;
                    Some(n)
                }
                _ => None,
            };
            super::check_options(&options)?;
            Ok(MountRequest::Volume(VolumeMount {
                name,
                destination,
                readonly,
                nocopy,
                options,
                labels,
            }))
        }
        "tmpfs" => {
            if src.is_some() {
                return Err(MountError::TmpfsSource.into());
            }
            let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
            if let Some(s) = size {
                options.push(format!("size={s}"));
            }
            if let Some(m) = mode {
                options.push(format!("mode={m:o}"));
            }
            if readonly {
                options.push("ro".into());
            }
            Ok(MountRequest::Tmpfs(Tmpfs {
                destination,
                options,
            }))
        }
        other => Err(MountError::Type(other.to_string()).into()),
    }
}

/// The propagation of the mount `path` is on, from /proc/self/mountinfo: (mount point,
/// shared, slave).
fn mount_propagation(path: &Path) -> Option<(String, bool, bool)> {
    let path = std::fs::canonicalize(path).ok()?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(String, bool, bool)> = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(end) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let Some(mp) = f.get(4).map(|m| unescape(m)) else {
            continue;
        };
        if !path.starts_with(&mp) {
            continue;
        }
        let opt = &f[6.min(end)..end];
        let shared = opt.iter().any(|o| o.starts_with("shared:"));
        let slave = opt.iter().any(|o| o.starts_with("master:"));
        // The longest mount point holding the path; the later line (mounted on top) wins.
        if best.as_ref().is_none_or(|b| mp.len() >= b.0.len()) {
            best = Some((mp, shared, slave));
        }
    }
    best
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let digits = b.get(i + 1..i + 4);
        if b[i] == b'\\' && digits.is_some_and(|d| d.iter().all(|c| (b'0'..=b'7').contains(c))) {
            let d = digits.unwrap();
            let n = |c: u8| u32::from(c - b'0');
            out.push((n(d[0]) * 64 + n(d[1]) * 8 + n(d[2])) as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// docker's check for a bind that asks for shared or slave propagation: events can only
/// reach the container from a source on a shared mount (or, for a slave, a slave one);
/// otherwise the option would silently do nothing.
pub fn check_propagation(flag: &'static str, b: &Volume) -> Result<(), MountFlagError> {
    let p = b.propagation.trim_start_matches('r');
    if p == "private" {
        return Ok(());
    }
    let Some((mp, shared, slave)) = mount_propagation(Path::new(&b.source)) else {
        return Ok(());
    };
    let ok = match p {
        "shared" => shared,
        _ => shared || slave,
    };
    if ok {
        return Ok(());
    }
    let need = if p == "shared" {
        "a shared mount"
    } else {
        "a shared or slave mount"
    };
    Err(MountFlagError::Propagation {
        flag,
        bind: Box::new(b.clone()),
        mount_point: mp,
        need,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(r: MountRequest) -> VolumeMount {
        match r {
            MountRequest::Volume(v) => v,
            r => panic!("not a volume: {r:?}"),
        }
    }

    #[test]
    fn volume_flag_forms() {
        let MountRequest::Bind(b) = parse_volume("/a:/b:ro,Z,rshared,nocopy").unwrap() else {
            panic!()
        };
        assert_eq!((b.readonly, b.propagation.as_str()), (true, "rshared"));
        let MountRequest::Bind(b) = parse_volume("/a:/b/").unwrap() else {
            panic!()
        };
        assert_eq!((b.destination.as_str(), b.readonly), ("/b", false));
        assert_eq!(b.propagation, "rprivate");
        let v = vol(parse_volume("data:/d:ro,nocopy").unwrap());
        assert_eq!(v.name.as_deref(), Some("data"));
        assert!(v.readonly && v.nocopy);
        let v = vol(parse_volume("/anon").unwrap());
        assert_eq!((v.name, v.destination.as_str()), (None, "/anon"));
        for bad in [
            "/a:/b:rx",
            "/a:/b:ro,rw",
            "/a:/b:shared,rslave",
            "bad name:/x",
            "-x:/y",
            "a/b:/x",
            "data:/d:rshared",
            "data:relative",
            "/",
            "data:/",
            "/a:/b/../c",
            "a:b:c:d",
        ] {
            let e = parse_volume(bad).expect_err(bad).to_string();
            assert!(e.starts_with("-v "), "{bad}: {e}");
        }
    }

    #[test]
    fn mount_flag_forms() {
        let MountRequest::Bind(b) =
            parse_mount("type=bind,source=/,target=/h,readonly,bind-propagation=rslave").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (b.source.as_str(), b.destination.as_str(), b.readonly),
            ("/", "/h", true)
        );
        assert_eq!(b.propagation, "rslave");
        let v = vol(parse_mount("src=data,dst=/d,volume-nocopy,ro=false").unwrap());
        assert_eq!(v.name.as_deref(), Some("data"));
        assert!(v.nocopy && !v.readonly);
        let v = vol(parse_mount(
            "type=volume,destination=/d,volume-opt=type=tmpfs,volume-label=a=b",
        )
        .unwrap());
        assert_eq!(v.name, None);
        assert_eq!(v.options["type"], "tmpfs");
        assert_eq!(v.labels["a"], "b");
        let MountRequest::Tmpfs(t) =
            parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770").unwrap()
        else {
            panic!()
        };
        assert_eq!(t.destination, "/t");
        assert_eq!(t.options, ["nosuid", "nodev", "size=1048576", "mode=1770"]);
        for (bad, says) in [
            ("type=bind,target=/x", "source"),
            ("type=bind,source=/no/such/dir,target=/x", "does not exist"),
            ("type=bind,source=rel,target=/x", "absolute"),
            ("type=volume,source=v", "target"),
            ("type=tmpfs,source=x,target=/t", "no source"),
            ("type=nfs,target=/t", "type=\"nfs\""),
            (
                "type=volume,target=/t,bind-propagation=rshared",
                "bind-propagation",
            ),
            (
                "type=bind,source=/,target=/t,volume-nocopy",
                "volume-nocopy",
            ),
            ("type=volume,target=/t,tmpfs-size=1m", "tmpfs-size"),
            (
                "type=bind,source=/,target=/t,bind-propagation=sideways",
                "sideways",
            ),
            ("type=tmpfs,target=/t,tmpfs-mode=999", "tmpfs-mode"),
            ("type=tmpfs,target=/t,tmpfs-size=lots", "tmpfs-size"),
            ("target=/t,readonly=maybe", "maybe"),
            ("target=/t,colour=red", "colour"),
            ("target=/t,volume-driver=nfs", "local"),
            ("target=/t,volume-opt=type=nfs", "nfs"),
            ("src=bad name,target=/t", "bad name"),
        ] {
            let e = parse_mount(bad).expect_err(bad).to_string();
            assert!(e.starts_with("--mount "), "{bad}: {e}");
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn mistakes_are_typed() {
        let e = parse_volume("/a:/b:ro,rw").unwrap_err();
        assert!(
            matches!(&e, MountFlagError::VolumeConflict { option, .. } if option == "rw"),
            "{e:?}"
        );
        let e = parse_mount("type=tmpfs,target=/t,tmpfs-size=lots").unwrap_err();
        assert!(
            matches!(&e, MountFlagError::Mount { problem: MountError::TmpfsSize(v), .. } if v == "lots"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "--mount \"type=tmpfs,target=/t,tmpfs-size=lots\": tmpfs-size=\"lots\": expected a \
             size like 64m"
        );
        assert!(matches!(
            parse_mount("type=volume,source=v"),
            Err(MountFlagError::Mount {
                problem: MountError::NoTarget,
                ..
            })
        ));
        assert!(matches!(
            parse_mount("type=bind,source=/,target=/a/../b"),
            Err(MountFlagError::Destination {
                flag: "--mount",
                problem: DestinationError::DotDot,
                ..
            })
        ));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/end\"), r"/end\");
    }
}
