//! `husk run` flags that need more than a copy into the spec: parsed and checked here,
//! before anything is pulled or mounted, each error one line naming the flag and value.
//! Semantics are Docker's and podman's where they agree (noted where they differ).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A `run` flag of this module's that was refused: which flag, its value, and why, each
/// a variant an embedder can match on; `Display` is the one line `husk` prints.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("{flag} {name:?}: unknown capability")]
    UnknownCapability { flag: &'static str, name: String },
    #[error(
        "--cap-add {0}: husk itself runs without it (or this kernel has no such \
         capability), so no container can have it"
    )]
    CapabilityUnavailable(String),
    #[error("--env-file {}: {problem}", path.display())]
    EnvFile {
        path: PathBuf,
        problem: EnvFileError,
    },
    #[error("--tmpfs {value:?}: {problem}")]
    Tmpfs { value: String, problem: TmpfsError },
    #[error("--cpus {value:?}: {problem}; use 0.01 to {host_cpus} (this host's CPUs)")]
    Cpus {
        value: String,
        problem: CpusError,
        host_cpus: usize,
    },
    #[error(
        "--security-opt {0:?}: use no-new-privileges[=true|false], seccomp=unconfined, \
         seccomp=FILE, apparmor=unconfined or apparmor=PROFILE"
    )]
    SecurityOpt(String),
    #[error("--security-opt seccomp={}: {problem}", file.display())]
    Seccomp {
        file: PathBuf,
        problem: SeccompError,
    },
    #[error("--userns {value:?}: {problem}")]
    Userns { value: String, problem: UsernsError },
    #[error("--stop-signal {value:?}: {problem}")]
    StopSignal { value: String, problem: SignalError },
}

/// What is wrong with an `--env-file`.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("not UTF-8 text")]
    NotUtf8,
    #[error("line {0}: no variable name")]
    NoName(usize),
    #[error("line {line}: variable {key:?} contains whitespace")]
    Whitespace { line: usize, key: String },
}

/// What is wrong with a `--tmpfs DST[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TmpfsError {
    #[error("the destination must be an absolute path")]
    Relative,
    #[error("cannot mount over /")]
    Root,
    #[error("the destination must not contain . or ..")]
    DotDot,
    #[error("unknown or invalid option {0:?}")]
    Option(String),
}

/// What is wrong with a `--cpus` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CpusError {
    #[error("not a number")]
    NotANumber,
    #[error("out of range")]
    OutOfRange,
    /// Below the kernel's smallest quota (1 ms per 100 ms).
    #[error("too small")]
    TooSmall,
}

/// A seccomp profile file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("not JSON ({0})")]
    NotJson(serde_json::Error),
    #[error("not a seccomp profile (a JSON object with defaultAction)")]
    NotObject,
    #[error("not a seccomp profile: defaultAction is missing")]
    NoDefaultAction,
    #[error("archMap is not a list")]
    ArchMap,
    #[error("both architectures and archMap are given; use one")]
    ArchBoth,
    /// The field (`syscalls[3].includes.caps`).
    #[error("{0}: not a string list")]
    NotStringList(String),
    #[error("minKernel {0:?}: not a version")]
    MinKernel(String),
    #[error("syscalls[{0}] is not an object")]
    RuleNotObject(usize),
    #[error("syscalls[{0}].name: both name and names are given")]
    NameAndNames(usize),
    /// The profile as `linux.seccomp` of a spec that does not deserialize.
    #[error("{0}")]
    Spec(serde_json::Error),
    /// What the runtime's own check (`create`'s) refused.
    #[error(transparent)]
    Refused(husk_container::validate::InvalidSpec),
}

/// What is wrong with a `--userns` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernsError {
    #[error("keep-id is for rootless husk (root has no id of its own to keep)")]
    KeepIdAsRoot,
    #[error("keep-id takes uid=N and gid=N")]
    KeepIdOption,
    /// The option (`uid=5`).
    #[error("{0} given twice")]
    Twice(String),
    #[error("{0}: not a uid or gid number")]
    NotAnId(String),
    #[error("auto is for root (rootless containers already share the user's namespace)")]
    AutoRootless,
    #[error("size must be a positive number of ids")]
    Size,
    #[error("use host, auto, auto:size=N or keep-id[:uid=N,gid=N]")]
    Unknown,
}

/// A signal name or number that is not one of this system's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error(transparent)]
    Parse(#[from] husk_oci::signal::SignalError),
    #[error("no such signal {0:?}")]
    NoSuch(String),
}

/// Every capability name, at its number (`CAP_LAST_CAP` = 40 on Linux 5.9+).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities husk can hand on — in both its bounding and permitted sets, so known
/// to the kernel too — in number order: "all" for --privileged and `ALL` (podman's rule:
/// a husk that runs without some capability cannot give it).
pub fn available_caps() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let set = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    let mask = match (set("CapBnd:"), set("CapPrm:")) {
        (Some(b), Some(p)) => b & p,
        _ => u64::MAX,
    };
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| *i <= last && mask & (1 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// `net_admin`, `CAP_NET_ADMIN`, `Net_Admin` → `CAP_NET_ADMIN`; `all` → `ALL`.
fn cap_name(flag: &'static str, s: &str) -> Result<String, FlagError> {
    let up = s.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(FlagError::UnknownCapability {
            flag,
            name: s.to_string(),
        })
    }
}

/// Names from repeated flags, each possibly a comma-separated list (podman's form).
fn cap_names(flag: &'static str, values: &[String]) -> Result<Vec<String>, FlagError> {
    let mut out = Vec::new();
    for v in values {
        for s in v.split(',') {
            out.push(cap_name(flag, s)?);
        }
    }
    Ok(out)
}

/// The container's capabilities, and those of them named by --cap-add (what a non-root
/// user gets in its effective/permitted/ambient sets, as podman does). Docker's rules:
/// --privileged is everything; `--cap-add ALL` is everything but the drops; `--cap-drop
/// ALL` keeps only the adds; otherwise the defaults minus the drops plus the adds.
pub fn capabilities(
    defaults: &[&str],
    privileged: bool,
    add: &[String],
    drop: &[String],
) -> Result<(Vec<String>, Vec<String>), FlagError> {
    let add = cap_names("--cap-add", add)?;
    let drop = cap_names("--cap-drop", drop)?;
    let all = available_caps();
    if let Some(c) = add
        .iter()
        .find(|c| *c != "ALL" && !all.contains(&c.as_str()))
    {
        return Err(FlagError::CapabilityUnavailable(c.clone()));
    }
    let has = |v: &Vec<String>, c: &str| v.iter().any(|x| x == c);
    let keep = |c: &str| -> bool {
        if privileged {
            true
        } else if has(&add, "ALL") {
            !has(&drop, c)
        } else if has(&drop, "ALL") {
            has(&add, c)
        } else {
            (defaults.contains(&c) && !has(&drop, c)) || has(&add, c)
        }
    };
    // Defaults husk lacks (in a restricted sandbox) are left out rather than failing.
    let caps: Vec<String> = all
        .iter()
        .filter(|c| keep(c))
        .map(|c| c.to_string())
        .collect();
    let added = caps
        .iter()
        .filter(|c| has(&add, "ALL") || has(&add, c))
        .cloned()
        .collect();
    Ok((caps, added))
}

/// `KEY=VALUE` lines (the value verbatim, quotes included, as Docker reads it), `#`
/// comments and blank lines skipped, a bare `KEY` takes husk's own value (or is left out
/// when husk has none).
pub fn env_file(
    path: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, FlagError> {
    let bad = |problem| FlagError::EnvFile {
        path: path.to_path_buf(),
        problem,
    };
    let data = std::fs::read(path).map_err(|e| bad(EnvFileError::Read(e)))?;
    let text = String::from_utf8(data).map_err(|_| bad(EnvFileError::NotUtf8))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line.trim_end(), None),
        };
        if key.is_empty() {
            return Err(bad(EnvFileError::NoName(n + 1)));
        }
        if key.chars().any(char::is_whitespace) {
            return Err(bad(EnvFileError::Whitespace {
                line: n + 1,
                key: key.to_string(),
            }));
        }
        match value {
            Some(v) => out.push(format!("{key}={v}")),
            None => {
                if let Some(v) = lookup(key) {
                    out.push(format!("{key}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// `--tmpfs DST[:OPTIONS]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tmpfs {
    pub destination: String,
    /// nosuid,nodev, then the user's (later ones win: `exec`, `suid`, … undo defaults).
    pub options: Vec<String>,
}

/// tmpfs's own options (passed to the kernel as data) and the generic mount flags.
const TMPFS_DATA: &[&str] = &[
    "size",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "mpol",
    "huge",
];
const TMPFS_FLAGS: &[&str] = &[
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "noatime",
    "atime",
    "nodiratime",
    "diratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "inode32",
    "inode64",
    "noswap",
    "tmpcopyup",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

impl Tmpfs {
    pub fn parse(s: &str) -> Result<Tmpfs, FlagError> {
        let bad = |problem| FlagError::Tmpfs {
            value: s.to_string(),
            problem,
        };
        let (dst, opts) = match s.split_once(':') {
            Some((d, o)) => (d, o),
            None => (s, ""),
        };
        if !dst.starts_with('/') {
            return Err(bad(TmpfsError::Relative));
        }
        if Path::new(dst).components().count() < 2 {
            return Err(bad(TmpfsError::Root));
        }
        if dst.split('/').any(|c| c == "." || c == "..") {
            return Err(bad(TmpfsError::DotDot));
        }
        let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            let ok = match o.split_once('=') {
                Some((k, v)) => {
                    TMPFS_DATA.contains(&k)
                        && !v.is_empty()
                        && (k != "mode" || u32::from_str_radix(v, 8).is_ok_and(|m| m <= 0o7777))
                }
                None => TMPFS_FLAGS.contains(&o),
            };
            if !ok {
                return Err(bad(TmpfsError::Option(o.to_string())));
            }
            options.push(o.to_string());
        }
        Ok(Tmpfs {
            destination: dst.trim_end_matches('/').to_string(),
            options,
        })
    }
}

/// CPUs this process may run on (what Docker's limit check counts).
pub fn host_cpus() -> usize {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let n = if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } == 0 {
        unsafe { libc::CPU_COUNT(&set) as usize }
    } else {
        0
    };
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

pub const CPU_PERIOD: u64 = 100_000;

/// `--cpus N.NN` → the CFS quota for a 100 ms period.
pub fn cpu_quota(s: &str, host_cpus: usize) -> Result<i64, FlagError> {
    let bad = |problem| FlagError::Cpus {
        value: s.to_string(),
        problem,
        host_cpus,
    };
    let n: f64 = s
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .ok_or_else(|| bad(CpusError::NotANumber))?;
    if n <= 0.0 || n > host_cpus as f64 {
        return Err(bad(CpusError::OutOfRange));
    }
    let quota = (n * CPU_PERIOD as f64).round() as i64;
    // The kernel's smallest quota is 1 ms.
    if quota < 1000 {
        return Err(bad(CpusError::TooSmall));
    }
    Ok(quota)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// No option: husk's default profile ([`DEFAULT_SECCOMP_PROFILE`]), none when privileged.
    #[default]
    Default,
    Unconfined,
    File(PathBuf),
}

/// `--security-opt apparmor=…` (see `crate::apparmor`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AppArmor {
    /// No option: husk-default where AppArmor is on (not for --privileged).
    #[default]
    Default,
    Unconfined,
    Profile(String),
}

/// `--security-opt` values.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Security {
    /// `no-new-privileges[=true|false]` (also Docker's `:` form); None when not given.
    pub no_new_privileges: Option<bool>,
    pub seccomp: Seccomp,
    pub apparmor: AppArmor,
}

impl Security {
    pub fn parse(values: &[String]) -> Result<Security, FlagError> {
        let mut s = Security::default();
        for v in values {
            let (key, val) = match v.split_once(['=', ':']) {
                Some((k, v)) => (k, Some(v)),
                None => (v.as_str(), None),
            };
            match (key, val) {
                ("no-new-privileges", None | Some("true")) => s.no_new_privileges = Some(true),
                ("no-new-privileges", Some("false")) => s.no_new_privileges = Some(false),
                ("seccomp", Some("unconfined")) => s.seccomp = Seccomp::Unconfined,
                ("seccomp", Some(f)) if !f.is_empty() => s.seccomp = Seccomp::File(f.into()),
                ("apparmor", Some("unconfined")) => s.apparmor = AppArmor::Unconfined,
                ("apparmor", Some(p)) if !p.is_empty() => {
                    s.apparmor = AppArmor::Profile(p.to_string())
                }
                _ => return Err(FlagError::SecurityOpt(v.clone())),
            }
        }
        Ok(s)
    }
}

/// The arch names of Docker profiles' includes/excludes (Go's GOARCH, 386 as x86), and the
/// SCMP_ARCH_ of this host.
fn host_arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
        "x86" => ("x86", "SCMP_ARCH_X86"),
        "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
        "arm" => ("arm", "SCMP_ARCH_ARM"),
        "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
        "powerpc64" => ("ppc64le", "SCMP_ARCH_PPC64LE"),
        "s390x" => ("s390x", "SCMP_ARCH_S390X"),
        other => (other, ""),
    }
}

/// `(major, minor)` of a kernel release such as `6.1.0-18-amd64` or `4.8`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>());
    Some((it.next()?.ok()?, it.next()?.ok()?))
}

fn running_kernel() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    kernel_version(release.trim())
}

/// A seccomp profile file → `linux.seccomp`. Both the OCI form and Docker's profile form
/// are read: Docker's `archMap` becomes the host's architectures, rules are kept or left
/// out by their `includes`/`excludes` (arches, caps — checked against `bounding` — and
/// minKernel) exactly as dockerd does, and a rule's `name` becomes `names`. An OCI-form
/// profile has none of those and passes through unchanged.
pub fn seccomp_profile(text: &str, bounding: &[String]) -> Result<Value, SeccompError> {
    let mut p: Value = serde_json::from_str(text).map_err(SeccompError::NotJson)?;
    let obj = p.as_object_mut().ok_or(SeccompError::NotObject)?;
    if !obj.get("defaultAction").is_some_and(Value::is_string) {
        return Err(SeccompError::NoDefaultAction);
    }
    let (arch, scmp_arch) = host_arch();
    if let Some(map) = obj.remove("archMap") {
        let map = map.as_array().ok_or(SeccompError::ArchMap)?;
        let listed = obj.get("architectures").and_then(Value::as_array);
        if !map.is_empty() && listed.is_some_and(|a| !a.is_empty()) {
            return Err(SeccompError::ArchBoth);
        }
        if !map.is_empty() {
            let mut arches = Vec::new();
            if let Some(m) = map.iter().find(|m| m["architecture"] == scmp_arch) {
                arches.push(m["architecture"].clone());
                arches.extend(
                    m["subArchitectures"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            obj.insert("architectures".into(), Value::Array(arches));
        }
    }
    let strs = |v: &Value, what: String| -> Result<Vec<String>, SeccompError> {
        match v {
            Value::Null => Ok(vec![]),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(String::from))
                .collect::<Option<_>>()
                .ok_or(SeccompError::NotStringList(what)),
            _ => Err(SeccompError::NotStringList(what)),
        }
    };
    let kernel = running_kernel();
    let min_kernel = |f: &Value| -> Result<Option<bool>, SeccompError> {
        match f["minKernel"].as_str() {
            None => Ok(None),
            Some(v) => {
                let want =
                    kernel_version(v).ok_or_else(|| SeccompError::MinKernel(v.to_string()))?;
                Ok(Some(kernel.is_some_and(|k| k >= want)))
            }
        }
    };
    let mut rules = Vec::new();
    for (i, r) in obj
        .get("syscalls")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let Value::Object(mut r) = r else {
            return Err(SeccompError::RuleNotObject(i));
        };
        let what = |k: &str| format!("syscalls[{i}].{k}");
        if let Some(ex) = r.remove("excludes") {
            let arches = strs(&ex["arches"], what("excludes.arches"))?;
            let caps = strs(&ex["caps"], what("excludes.caps"))?;
            if arches.iter().any(|a| a == arch)
                || caps.iter().any(|c| bounding.contains(c))
                || min_kernel(&ex)? == Some(true)
            {
                continue;
            }
        }
        if let Some(inc) = r.remove("includes") {
            let arches = strs(&inc["arches"], what("includes.arches"))?;
            let caps = strs(&inc["caps"], what("includes.caps"))?;
            if (!arches.is_empty() && !arches.iter().any(|a| a == arch))
                || !caps.iter().all(|c| bounding.contains(c))
                || min_kernel(&inc)? == Some(false)
            {
                continue;
            }
        }
        r.remove("comment");
        if let Some(name) = r.remove("name") {
            if r.get("names").is_some() {
                return Err(SeccompError::NameAndNames(i));
            }
            r.insert("names".into(), json!([name]));
        }
        rules.push(Value::Object(r));
    }
    if obj.contains_key("syscalls") {
        obj.insert("syscalls".into(), Value::Array(rules));
    }
    Ok(p)
}

/// husk's default seccomp profile, in Docker's profile form (rules gated on capabilities
/// with `includes`/`excludes`), written from the kernel's syscall tables: what it allows,
/// gates and refuses, and why, is in the file's comments and in docs/security.md. One file,
/// compiled into the binary; `husk info` names it as `builtin`.
pub const DEFAULT_SECCOMP_PROFILE: &str = include_str!("seccomp_default.json");

/// The default profile as `linux.seccomp` for a container whose bounding set is `bounding`.
pub fn default_seccomp(bounding: &[String]) -> Value {
    seccomp_profile(DEFAULT_SECCOMP_PROFILE, bounding)
        .expect("the built-in seccomp profile is valid (unit-tested)")
}

/// `--userns`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Userns {
    /// The engine's own: root's for root, the user's rootless namespace otherwise.
    #[default]
    Host,
    /// A user namespace of its own with `size` of the husk user's subordinate ids (root).
    Auto { size: u32 },
    /// Rootless: the user's own uid and gid inside too, or `uid`/`gid` when given
    /// (podman's `keep-id[:uid=N,gid=N]`).
    KeepId { uid: Option<u32>, gid: Option<u32> },
}

impl Userns {
    pub fn parse(s: &str, rootless: bool) -> Result<Userns, FlagError> {
        let bad = |problem| FlagError::Userns {
            value: s.to_string(),
            problem,
        };
        match s {
            "" | "host" => Ok(Userns::Host),
            _ if s == "keep-id" || s.starts_with("keep-id:") => {
                if !rootless {
                    return Err(bad(UsernsError::KeepIdAsRoot));
                }
                let (mut uid, mut gid) = (None, None);
                let opts = s.strip_prefix("keep-id:").map(|o| o.split(','));
                for opt in opts.into_iter().flatten() {
                    let (slot, value) = match opt.split_once('=') {
                        Some(("uid", v)) => (&mut uid, v),
                        Some(("gid", v)) => (&mut gid, v),
                        _ => return Err(bad(UsernsError::KeepIdOption)),
                    };
                    // The kernel's largest id is 2^32-2 ((uid_t)-1 means "no id").
                    match value.parse::<u32>() {
                        Ok(n) if n < u32::MAX && slot.is_none() => *slot = Some(n),
                        Ok(n) if n < u32::MAX => return Err(bad(UsernsError::Twice(opt.into()))),
                        _ => return Err(bad(UsernsError::NotAnId(opt.into()))),
                    }
                }
                Ok(Userns::KeepId { uid, gid })
            }
            _ if rootless && s.starts_with("auto") => Err(bad(UsernsError::AutoRootless)),
            "auto" => Ok(Userns::Auto {
                size: crate::userns::AUTO_SIZE,
            }),
            _ => match s.strip_prefix("auto:size=").map(str::parse::<u32>) {
                Some(Ok(size)) if size > 0 => Ok(Userns::Auto { size }),
                Some(_) => Err(bad(UsernsError::Size)),
                None => Err(bad(UsernsError::Unknown)),
            },
        }
    }
}

/// What `inspect` shows as `HostConfig.UsernsMode`: "" for the engine's own namespace (as
/// docker shows its default), else the mode in `--userns`'s own words.
impl std::fmt::Display for Userns {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Userns::Host => Ok(()),
            Userns::Auto { size } if *size == crate::userns::AUTO_SIZE => f.write_str("auto"),
            Userns::Auto { size } => write!(f, "auto:size={size}"),
            Userns::KeepId { uid, gid } => {
                f.write_str("keep-id")?;
                let opts: Vec<String> = [("uid", uid), ("gid", gid)]
                    .iter()
                    .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
                    .collect();
                if !opts.is_empty() {
                    write!(f, ":{}", opts.join(","))?;
                }
                Ok(())
            }
        }
    }
}

/// A signal by name (`TERM`, `SIGTERM`, `sigterm`, `RTMIN+3`) or number, as `kill`
/// takes it (husk-oci's parser), and one this system has.
pub fn signal(s: &str) -> Result<i32, SignalError> {
    let n = husk_oci::signal::parse_signal(s).map_err(SignalError::Parse)?;
    if (1..=libc::SIGRTMAX()).contains(&n) {
        Ok(n)
    } else {
        Err(SignalError::NoSuch(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn caps_follow_docker_rules() {
        let d = ["CAP_CHOWN", "CAP_KILL"];
        let (c, a) = capabilities(&d, false, &v(&["net_admin"]), &v(&["CAP_CHOWN"])).unwrap();
        assert_eq!(c, v(&["CAP_KILL", "CAP_NET_ADMIN"]));
        assert_eq!(a, v(&["CAP_NET_ADMIN"]));
        // add wins over drop of the same cap; comma lists; any case
        let (c, _) = capabilities(&d, false, &v(&["Chown,sys_time"]), &v(&["chown"])).unwrap();
        assert_eq!(c, v(&["CAP_CHOWN", "CAP_KILL", "CAP_SYS_TIME"]));
        let (c, a) = capabilities(&d, false, &v(&["kill"]), &v(&["ALL"])).unwrap();
        assert_eq!((c, a), (v(&["CAP_KILL"]), v(&["CAP_KILL"])));
        let all = available_caps();
        assert!(all.len() >= 14 && all.len() <= ALL_CAPS.len());
        let (c, a) = capabilities(&d, false, &v(&["all"]), &v(&["kill"])).unwrap();
        assert_eq!(c.len(), all.len() - 1);
        assert_eq!(a, c);
        let (c, a) = capabilities(&d, true, &[], &v(&["kill"])).unwrap();
        assert_eq!((c.len(), a.len()), (all.len(), 0));
        let e = capabilities(&d, false, &v(&["CAP_FOO"]), &[]).unwrap_err();
        assert!(
            matches!(&e, FlagError::UnknownCapability { flag: "--cap-add", name } if name == "CAP_FOO"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "--cap-add \"CAP_FOO\": unknown capability");
        assert!(capabilities(&d, false, &[], &v(&["net_admin,"])).is_err());
        assert_eq!(ALL_CAPS[21], "CAP_SYS_ADMIN");
        assert_eq!(ALL_CAPS.len(), 41);
    }

    #[test]
    fn env_files() {
        let d = std::env::temp_dir().join(format!("husk-envfile-{}", std::process::id()));
        std::fs::write(
            &d,
            "\u{feff}# comment\n\nA=1\n  B = x \nC=\"q\"\nFROMHOST\nNOTSET\nE=a=b\n",
        )
        .unwrap();
        let lookup = |k: &str| (k == "FROMHOST").then(|| "h".to_string());
        let e = env_file(&d, lookup).unwrap_err();
        assert!(
            matches!(&e, FlagError::EnvFile { problem: EnvFileError::Whitespace { line: 4, key }, .. } if key == "B "),
            "{e:?}"
        );
        std::fs::write(&d, "# c\n\n  A=1\nC=\"q\" \nFROMHOST\nNOTSET\nE=a=b\nF=\n").unwrap();
        assert_eq!(
            env_file(&d, lookup).unwrap(),
            v(&["A=1", "C=\"q\" ", "FROMHOST=h", "E=a=b", "F="])
        );
        std::fs::write(&d, "=x\n").unwrap();
        assert!(matches!(
            env_file(&d, lookup).unwrap_err(),
            FlagError::EnvFile {
                problem: EnvFileError::NoName(1),
                ..
            }
        ));
        std::fs::remove_file(&d).unwrap();
        let e = env_file(&d, lookup).unwrap_err();
        assert!(
            matches!(&e, FlagError::EnvFile { problem: EnvFileError::Read(_), path } if *path == d),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("--env-file /"), "{e}");
    }

    #[test]
    fn tmpfs_cpus_security_signals() {
        let t = Tmpfs::parse("/run/x/:size=64m,mode=1777,noexec").unwrap();
        assert_eq!(t.destination, "/run/x");
        assert_eq!(
            t.options,
            v(&["nosuid", "nodev", "size=64m", "mode=1777", "noexec"])
        );
        assert_eq!(Tmpfs::parse("/t").unwrap().options, v(&["nosuid", "nodev"]));
        for bad in [
            "rel",
            "/",
            "//",
            "/a/../b",
            "/t:bogus",
            "/t:mode=999",
            "/t:size=",
        ] {
            assert!(Tmpfs::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(cpu_quota("1.5", 2).unwrap(), 150_000);
        assert_eq!(cpu_quota("0.01", 2).unwrap(), 1000);
        assert!(matches!(
            cpu_quota("0.001", 2),
            Err(FlagError::Cpus {
                problem: CpusError::TooSmall,
                host_cpus: 2,
                ..
            })
        ));
        assert_eq!(
            cpu_quota("3", 2).unwrap_err().to_string(),
            "--cpus \"3\": out of range; use 0.01 to 2 (this host's CPUs)"
        );
        for bad in ["0", "-1", "3", "nan", "inf", "x", "", "0.001"] {
            assert!(cpu_quota(bad, 2).is_err(), "{bad}");
        }
        assert!(host_cpus() >= 1);
        let s = Security::parse(&v(&["no-new-privileges", "seccomp=/p.json"])).unwrap();
        assert_eq!(s.no_new_privileges, Some(true));
        assert_eq!(s.seccomp, Seccomp::File("/p.json".into()));
        let s = Security::parse(&v(&["no-new-privileges:false", "seccomp=unconfined"])).unwrap();
        assert_eq!(
            (s.no_new_privileges, s.seccomp),
            (Some(false), Seccomp::Unconfined)
        );
        let s = Security::parse(&v(&["apparmor=unconfined"])).unwrap();
        assert_eq!(s.apparmor, AppArmor::Unconfined);
        let s = Security::parse(&v(&["apparmor:my-profile"])).unwrap();
        assert_eq!(s.apparmor, AppArmor::Profile("my-profile".into()));
        assert_eq!(Security::parse(&[]).unwrap().apparmor, AppArmor::Default);
        for bad in [
            "label=disable",
            "seccomp=",
            "no-new-privileges=maybe",
            "apparmor=",
        ] {
            assert!(Security::parse(&v(&[bad])).is_err(), "{bad}");
        }
        let userns = |s, rootless| Userns::parse(s, rootless).unwrap();
        assert_eq!(userns("", false), Userns::Host);
        assert_eq!(userns("host", true), Userns::Host);
        assert_eq!(userns("auto", false), Userns::Auto { size: 65536 });
        assert_eq!(userns("auto:size=1000", false), Userns::Auto { size: 1000 });
        let keep = |uid, gid| Userns::KeepId { uid, gid };
        assert_eq!(userns("keep-id", true), keep(None, None));
        assert_eq!(userns("keep-id:uid=11", true), keep(Some(11), None));
        assert_eq!(userns("keep-id:gid=7,uid=0", true), keep(Some(0), Some(7)));
        for (s, shown) in [
            ("", ""),
            ("host", ""),
            ("auto", "auto"),
            ("auto:size=10", "auto:size=10"),
            ("keep-id", "keep-id"),
            ("keep-id:gid=7,uid=0", "keep-id:uid=0,gid=7"),
        ] {
            let rootless = s.starts_with("keep");
            assert_eq!(Userns::parse(s, rootless).unwrap().to_string(), shown);
        }
        let e = Userns::parse("keep-id:uid=x", true).unwrap_err();
        assert!(
            matches!(&e, FlagError::Userns { problem: UsernsError::NotAnId(o), .. } if o == "uid=x"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "--userns \"keep-id:uid=x\": uid=x: not a uid or gid number"
        );
        for (bad, rootless) in [
            ("keep-id", false),
            ("keep-id:uid=1", false),
            ("keep-id:", true),
            ("keep-id:uid=", true),
            ("keep-id:uid=-1", true),
            ("keep-id:uid=4294967295", true),
            ("keep-id:uid=1,uid=2", true),
            ("keep-id:size=5", true),
            ("keep-idx", true),
            ("auto", true),
            ("auto:size=0", false),
            ("auto:size=x", false),
            ("private", false),
        ] {
            assert!(Userns::parse(bad, rootless).is_err(), "{bad}");
        }
        assert_eq!(signal("term"), Ok(libc::SIGTERM));
        assert_eq!(signal("SIGUSR1"), Ok(libc::SIGUSR1));
        assert_eq!(signal("9"), Ok(9));
        assert_eq!(signal("RTMIN+2"), Ok(libc::SIGRTMIN() + 2));
        assert_eq!(
            signal("RTMIN+40"),
            Err(SignalError::NoSuch("RTMIN+40".into()))
        );
        for bad in ["0", "65", "SIGFOO", "RTMIN+40", ""] {
            assert!(signal(bad).is_err(), "{bad}");
        }
    }

    /// What the default profile does with `name` (first argument `arg0`) for a container
    /// with `caps`: the action of the first rule that names it and whose conditions hold
    /// (the compiler's order: conditional rules first), else the default.
    fn default_action(caps: &[&str], name: &str, arg0: u64) -> (String, i64) {
        let p = default_seccomp(&v(caps));
        let rules = p["syscalls"].as_array().unwrap();
        let named: Vec<&Value> = rules
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
            .collect();
        let holds = |r: &&&Value| {
            r["args"].as_array().is_some_and(|a| {
                a.iter().all(|c| {
                    let val = c["value"].as_u64().unwrap();
                    match c["op"].as_str().unwrap() {
                        "SCMP_CMP_EQ" => arg0 == val,
                        "SCMP_CMP_MASKED_EQ" => arg0 & val == c["valueTwo"].as_u64().unwrap(),
                        op => panic!("{op}"),
                    }
                })
            })
        };
        let hit = named
            .iter()
            .find(holds)
            .or_else(|| named.iter().find(|r| r.get("args").is_none()));
        match hit {
            Some(r) => (
                r["action"].as_str().unwrap().to_string(),
                r["errnoRet"].as_i64().unwrap_or(0),
            ),
            None => ("default".into(), p["defaultErrnoRet"].as_i64().unwrap()),
        }
    }

    #[test]
    fn default_seccomp_profile_gates_on_capabilities() {
        let allow = ("SCMP_ACT_ALLOW".to_string(), 0);
        let eperm = ("SCMP_ACT_ERRNO".to_string(), 1);
        let enosys = ("default".to_string(), 38);
        let base = crate::spec_from_image::CAPS;
        let with = |c: &str| {
            let mut v = base.to_vec();
            v.push(Box::leak(c.to_string().into_boxed_str()));
            v
        };
        assert_eq!(default_action(base, "read", 0), allow);
        assert_eq!(default_action(base, "ptrace", 0), eperm);
        assert_eq!(default_action(&with("CAP_SYS_PTRACE"), "ptrace", 0), allow);
        assert_eq!(default_action(base, "mount", 0), eperm);
        assert_eq!(default_action(&with("CAP_SYS_ADMIN"), "mount", 0), allow);
        assert_eq!(default_action(base, "keyctl", 0), enosys);
        assert_eq!(default_action(base, "io_uring_setup", 0), enosys);
        assert_eq!(default_action(base, "personality", 0x40000), enosys);
        assert_eq!(default_action(base, "personality", 0xffff_ffff), allow);
        // unshare/clone: a user namespace yes, other namespaces only with CAP_SYS_ADMIN
        let (newns, newuser) = (libc::CLONE_NEWNS as u64, libc::CLONE_NEWUSER as u64);
        assert_eq!(default_action(base, "unshare", newns), eperm);
        assert_eq!(default_action(base, "unshare", newuser), allow);
        assert_eq!(default_action(base, "unshare", newuser | newns), allow);
        assert_eq!(default_action(base, "clone", libc::SIGCHLD as u64), allow);
        assert_eq!(
            default_action(&with("CAP_SYS_ADMIN"), "unshare", newns),
            allow
        );
        assert_eq!(
            default_action(base, "clone3", 0),
            ("SCMP_ACT_ERRNO".into(), 38)
        );
        assert_eq!(default_action(base, "reboot", 0), eperm);
        assert_eq!(default_action(&with("CAP_SYS_BOOT"), "reboot", 0), allow);
        // no name is both allowed outright and gated
        let p = default_seccomp(&v(base));
        let plain = &p["syscalls"][0]["names"];
        for r in p["syscalls"].as_array().unwrap()[1..].iter() {
            for n in r["names"].as_array().unwrap() {
                assert!(!plain.as_array().unwrap().contains(n), "{n} twice");
            }
        }
        // and it is a profile create accepts, for every capability set
        for caps in [v(base), v(ALL_CAPS), vec![]] {
            let spec: oci_spec::runtime::Spec = serde_json::from_value(json!({
                "ociVersion": "1.0.2",
                "root": {"path": "rootfs"},
                "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                "linux": {"seccomp": default_seccomp(&caps),
                          "namespaces": [{"type": "mount"}, {"type": "pid"}]}
            }))
            .unwrap();
            husk_container::validate::validate_spec(&spec).unwrap();
        }
    }

    #[test]
    fn docker_profiles_become_oci() {
        let (arch, scmp) = host_arch();
        let p = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": scmp, "subArchitectures": ["SCMP_ARCH_X86"]},
                        {"architecture": "SCMP_ARCH_S390X", "subArchitectures": []}],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "c"},
                {"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["kexec_load"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
                {"names": ["archonly"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": [arch]}},
                {"names": ["notarch"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": [arch]}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]
        });
        let names = |o: &Value| -> Vec<String> {
            o["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["names"][0].as_str().unwrap().to_string())
                .collect()
        };
        let o = seccomp_profile(&p.to_string(), &[]).unwrap();
        assert_eq!(o["architectures"], json!([scmp, "SCMP_ARCH_X86"]));
        assert!(o.get("archMap").is_none());
        assert_eq!(names(&o), v(&["read", "ptrace", "archonly", "clone"]));
        assert!(o["syscalls"][0].get("comment").is_none());
        let o = seccomp_profile(&p.to_string(), &v(&["CAP_SYS_ADMIN"])).unwrap();
        assert_eq!(names(&o), v(&["read", "mount", "ptrace", "archonly"]));
        // the OCI form passes unchanged
        let oci = json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1,
                         "architectures": ["SCMP_ARCH_X86_64"],
                         "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]});
        assert_eq!(seccomp_profile(&oci.to_string(), &[]).unwrap(), oci);
        assert!(seccomp_profile("[]", &[]).is_err());
        assert!(seccomp_profile("{\"syscalls\": []}", &[]).is_err());
        assert!(seccomp_profile("{", &[]).is_err());
        assert_eq!(kernel_version("6.1.0-18-amd64"), Some((6, 1)));
    }
}
