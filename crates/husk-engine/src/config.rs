//! A container's configuration, validated: [`RunOptions`] are the values as a user gives
//! them (flag strings), [`ContainerConfig::validate`] turns them into typed values or says
//! which one is wrong. Validation is pure apart from reading the files the options name
//! (--env-file, seccomp=FILE) and checking that volume sources exist, so that every user
//! error is found before anything is pulled, mounted or started.

use crate::engine::RegistryOptions;
use crate::health::{HealthFlagError, HealthOptions, HealthOverrides};
use crate::host_config::HostFlagError;
use crate::host_config::{HostConfig, HostOptions};
use crate::network::ports::{self, PortMapping};
use crate::network::setup::Wanted;
use crate::network::{store, Network, NetworkFlagError};
use crate::pod::PodError;
use crate::spec_from_image;
use crate::spec_from_image::flags::{self, FlagError, Seccomp, Tmpfs, Userns};
use crate::spec_from_image::SizeError;
use crate::volumes::flags::{self as mount_flags, MountFlagError, MountRequest, VolumeMount};
use crate::writable::{StorageOptError, StorageOptions, WritableLayer};
use std::fmt;
use std::path::{Path, PathBuf};

/// The process options `run` and `exec` share.
#[derive(Clone, Debug, Default)]
pub struct ProcessOptions {
    /// A pty for the process (proxied to ours in the foreground, logged when detached).
    pub tty: bool,
    /// Attach stdin (without it, and without a tty, the process reads /dev/null).
    pub interactive: bool,
    /// KEY=VALUE environment variables.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// name|uid[:group|gid], resolved in the container's /etc/passwd.
    pub user: Option<String>,
}

/// What `husk run` is asked, as given: strings are parsed by [`ContainerConfig::validate`].
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub image: String,
    /// Replaces the image's Cmd when not empty.
    pub cmd: Vec<String>,
    pub detach: bool,
    pub process: ProcessOptions,
    /// `no`, `always`, `unless-stopped`, `on-failure[:N]`
    pub restart: String,
    /// Remove the container when it exits.
    pub remove: bool,
    pub name: Option<String>,
    /// Replaces the image's entrypoint ("" clears it).
    pub entrypoint: Option<String>,
    pub hostname: Option<String>,
    /// `--network`, repeatable: network names, or one of none, host,
    /// slirp4netns[:allow_host_loopback=true|false]. Empty: the default (root: the
    /// `bridge` network; rootless: none).
    pub network: Vec<String>,
    /// `--network-alias`: more names on the user-defined networks.
    pub network_alias: Vec<String>,
    /// `--ip`, `--mac-address`: on the first network.
    pub ip: Option<String>,
    pub mac_address: Option<String>,
    /// `-p [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]`
    pub publish: Vec<String>,
    /// `-P`: every port the image exposes, on free host ports.
    pub publish_all: bool,
    /// `-v`: /SRC:DST, NAME:DST or DST, with `:OPTIONS` (crate::volumes::flags).
    pub volumes: Vec<String>,
    /// `--mount type=bind|volume|tmpfs,…` (docker's syntax).
    pub mounts: Vec<String>,
    pub read_only: bool,
    /// N[b|k|m|g]
    pub memory: Option<String>,
    pub pids_limit: Option<i64>,
    pub env_files: Vec<PathBuf>,
    /// `DST[:OPTIONS]`
    pub tmpfs: Vec<String>,
    /// N.NN CPUs
    pub cpus: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// no-new-privileges[=true|false], seccomp=unconfined|FILE, apparmor=unconfined|PROFILE
    pub security_opt: Vec<String>,
    pub init: bool,
    pub stop_signal: Option<String>,
    pub registry: RegistryOptions,
    /// Labels, /etc files, namespaces, devices, limits: docker's HostConfig flags.
    pub host: HostOptions,
    /// --health-* and --no-healthcheck (health.rs).
    pub health: HealthOptions,
    /// `--pod`: join this pod's network, IPC and UTS namespaces (crate::pod).
    pub pod: Option<String>,
    /// --storage-opt, --rootfs-tmpfs (writable.rs).
    pub storage: StorageOptions,
    /// `host` (or empty), `auto[:size=N]`, `keep-id[:uid=N,gid=N]`
    pub userns: String,
}

impl RunOptions {
    /// `image` with every option at its default (as `husk run IMAGE`).
    pub fn new(image: impl Into<String>) -> RunOptions {
        RunOptions {
            image: image.into(),
            cmd: Vec::new(),
            detach: false,
            process: ProcessOptions::default(),
            restart: "no".into(),
            remove: false,
            name: None,
            entrypoint: None,
            hostname: None,
            network: Vec::new(),
            network_alias: Vec::new(),
            ip: None,
            mac_address: None,
            publish: Vec::new(),
            publish_all: false,
            volumes: Vec::new(),
            mounts: Vec::new(),
            read_only: false,
            memory: None,
            pids_limit: None,
            env_files: Vec::new(),
            tmpfs: Vec::new(),
            cpus: None,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            privileged: false,
            security_opt: Vec::new(),
            init: false,
            stop_signal: None,
            registry: RegistryOptions::default(),
            host: HostOptions::default(),
            health: HealthOptions::default(),
            pod: None,
            storage: StorageOptions::default(),
            userns: String::new(),
        }
    }
}

/// The smallest `--memory` a container may have: docker's (6 MiB).
pub const MIN_MEMORY: i64 = 6 << 20;

/// A user error in [`RunOptions`]: the option and what is wrong with it. A value its
/// flag's parser refused is that parser's own error (each names the flag and the value).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// --memory.
    #[error(transparent)]
    Size(#[from] SizeError),
    /// --cap-add/--cap-drop, --env-file, --tmpfs, --cpus, --security-opt, --userns,
    /// --stop-signal.
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// docker's HostConfig flags (--ulimit, --device, --sysctl, --memory-swap…).
    #[error(transparent)]
    Host(#[from] HostFlagError),
    /// -v, --mount.
    #[error(transparent)]
    Mount(#[from] MountFlagError),
    /// --network, -p, --ip, --mac-address, --network-alias.
    #[error(transparent)]
    Network(#[from] NetworkFlagError),
    /// --storage-opt, --rootfs-tmpfs.
    #[error(transparent)]
    Storage(#[from] StorageOptError),
    /// --pod with an option the pod owns.
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error("--restart: only a detached (-d) container has a monitor to restart it")]
    RestartNeedsDetach,
    #[error("--restart and --rm exclude each other")]
    RestartWithRemove,
    #[error("--pids-limit must be positive")]
    PidsLimit,
    /// Docker's floor, and its words: below it the container's init cannot even start
    /// (the kernel kills it during setup), which says nothing to the user.
    #[error("--memory {0}: Minimum memory limit allowed is 6MB")]
    MemoryTooSmall(String),
    #[error("--name {0:?}: use letters, digits, '_', '.', '-'")]
    Name(String),
    #[error("-v: {0} does not exist")]
    VolumeSource(String),
    #[error("--tmpfs {0}: {0} is already a mount destination")]
    TmpfsTaken(String),
    #[error("--init: a volume on /dev would hide husk-init (it lives in /dev)")]
    InitHidden,
    #[error(transparent)]
    Health(#[from] HealthFlagError),
    #[error(transparent)]
    Restart(#[from] RestartError),
    /// docker's words.
    #[error("duplicate mount point: {0}")]
    DuplicateMount(String),
    /// keep-id's rootfs is a copy of the image (keep_id.rs): no overlay writable layer
    /// to put on a tmpfs or under a quota.
    #[error("--userns keep-id: its rootfs is a copy of the image, with no writable layer for {0}")]
    KeepIdWritable(&'static str),
}

/// A `--restart` value that is not a policy (also a damaged record's `restart`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RestartError {
    #[error("--restart {0:?}: the retry count must be a number")]
    RetryCount(String),
    #[error("--restart {0:?}: use no, always, unless-stopped or on-failure[:N]")]
    Unknown(String),
}

/// `--restart`: whether the monitor starts the container again after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    No,
    Always,
    /// As `Always` (husk has no daemon to restart containers at boot, where docker's differ).
    UnlessStopped,
    /// On a non-zero exit, at most N times (unlimited without N).
    OnFailure(Option<u32>),
}

impl Restart {
    pub fn parse(s: &str) -> Result<Restart, RestartError> {
        match s.split_once(':') {
            None if s == "no" => Ok(Restart::No),
            None if s == "always" => Ok(Restart::Always),
            None if s == "unless-stopped" => Ok(Restart::UnlessStopped),
            None if s == "on-failure" => Ok(Restart::OnFailure(None)),
            Some(("on-failure", n)) => n
                .parse()
                .map(|n| Restart::OnFailure(Some(n)))
                .map_err(|_| RestartError::RetryCount(s.to_string())),
            _ => Err(RestartError::Unknown(s.to_string())),
        }
    }

    /// Whether a container that exited with `code` after `restarts` restarts runs again.
    pub fn again(self, code: i32, restarts: u32) -> bool {
        match self {
            Restart::No => false,
            Restart::Always | Restart::UnlessStopped => true,
            Restart::OnFailure(max) => code != 0 && max.is_none_or(|m| restarts < m),
        }
    }
}

/// The form [`Restart::parse`] reads (container.json keeps it so).
impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Restart::No => f.write_str("no"),
            Restart::Always => f.write_str("always"),
            Restart::UnlessStopped => f.write_str("unless-stopped"),
            Restart::OnFailure(None) => f.write_str("on-failure"),
            Restart::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
        }
    }
}

/// A container to run, every value checked: the input of [`crate::Engine::run`].
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    pub image: String,
    pub cmd: Vec<String>,
    pub entrypoint: Option<String>,
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub detach: bool,
    pub remove: bool,
    pub restart: Restart,
    pub network: Network,
    /// With [`Network::Bridge`]: the networks, the first one's interface eth0.
    pub networks: Vec<Wanted>,
    /// `-p`'s ports (host port 0: a free one).
    pub ports: Vec<PortMapping>,
    /// `-P`: also the image's exposed ports.
    pub publish_all: bool,
    /// -t, -i, -w, -u, and the environment: --env-file's lines, then -e's.
    pub process: ProcessOptions,
    /// Bind mounts (`-v /SRC:DST`, `--mount type=bind`).
    pub volumes: Vec<spec_from_image::Volume>,
    /// Volumes (`-v NAME:DST`, `-v DST`, `--mount type=volume`), made or found at run.
    pub volume_mounts: Vec<VolumeMount>,
    /// `--tmpfs`, then `--mount type=tmpfs`.
    pub tmpfs: Vec<Tmpfs>,
    pub read_only: bool,
    /// Bytes.
    pub memory: Option<i64>,
    pub pids_limit: Option<i64>,
    /// Microseconds per [`flags::CPU_PERIOD`].
    pub cpu_quota: Option<i64>,
    /// The capability set, and those of it that were asked for beyond the default.
    pub caps: Vec<String>,
    pub added_caps: Vec<String>,
    pub privileged: bool,
    pub no_new_privileges: bool,
    /// linux.seccomp of a seccomp=FILE profile, already checked as `create` would.
    pub seccomp: Option<serde_json::Value>,
    /// `--security-opt` as docker records it (`HostConfig.SecurityOpt`): as given, but a
    /// seccomp profile file by its content (compact JSON), not its path.
    pub security_opt: Vec<String>,
    /// `--security-opt apparmor=…`; which profile that means is decided at run time, where
    /// the kernel's LSMs are known (`crate::apparmor`).
    pub apparmor: flags::AppArmor,
    pub init: bool,
    /// A signal number; None: the image's StopSignal, else SIGTERM.
    pub stop_signal: Option<i32>,
    pub registry: RegistryOptions,
    pub host: HostConfig,
    /// What replaces the image's healthcheck.
    pub health: HealthOverrides,
    /// The pod to join (name, id or id prefix).
    pub pod: Option<String>,
    /// Where the container's writes go: a size-limited layer, or a tmpfs.
    pub writable: WritableLayer,
    /// --userns: the engine's own (default), a range of the husk user's subordinate ids, or
    /// (rootless) keep-id.
    pub userns: Userns,
}

impl ContainerConfig {
    /// Check every option; the first one that is wrong is the error.
    pub fn validate(o: &RunOptions) -> Result<ContainerConfig, ConfigError> {
        Self::validate_with(o, flags::host_cpus(), &|k| std::env::var(k).ok())
    }

    /// [`ContainerConfig::validate`] with the host's CPU count (for --cpus) and environment
    /// (for an env file's bare KEY) given.
    pub fn validate_with(
        o: &RunOptions,
        host_cpus: usize,
        host_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ContainerConfig, ConfigError> {
        let restart = Restart::parse(&o.restart)?;
        if restart != Restart::No {
            if !o.detach {
                return Err(ConfigError::RestartNeedsDetach);
            }
            if o.remove {
                return Err(ConfigError::RestartWithRemove);
            }
        }
        if o.pod.is_some() {
            crate::pod::check_member(o)?;
        }
        // A pod's member has no network of its own: it joins its infra's (run.rs).
        let (network, networks) = match o.pod {
            Some(_) => (Network::None, Vec::new()),
            None => networks(o)?,
        };
        let mut ports = Vec::new();
        for p in &o.publish {
            ports.extend(ports::parse(p).map_err(NetworkFlagError::from)?);
        }
        // pasta forwards them too (rootless -p).
        let publishes = matches!(network, Network::Bridge | Network::Pasta(_));
        if !publishes && (!ports.is_empty() || o.publish_all) {
            let flag = if o.publish_all { "-P" } else { "-p" };
            return Err(NetworkFlagError::NoPublishing {
                flag,
                network: network.to_string(),
            }
            .into());
        }
        let (mut volumes, mut volume_mounts, mut mount_tmpfs) =
            (Vec::new(), Vec::new(), Vec::new());
        let requests = o
            .volumes
            .iter()
            .map(|v| mount_flags::parse_volume(v).map(|r| ("-v", r)))
            .chain(
                o.mounts
                    .iter()
                    .map(|m| mount_flags::parse_mount(m).map(|r| ("--mount", r))),
            );
        for r in requests {
            match r? {
                (flag, MountRequest::Bind(b)) => {
                    if !Path::new(&b.source).exists() {
                        return Err(ConfigError::VolumeSource(b.source.clone()));
                    }
                    mount_flags::check_propagation(flag, &b)?;
                    volumes.push(b);
                }
                (_, MountRequest::Volume(v)) => volume_mounts.push(v),
                (_, MountRequest::Tmpfs(t)) => mount_tmpfs.push(t),
            }
        }
        let mut destinations: Vec<&str> = Vec::new();
        for d in volumes
            .iter()
            .map(|v| v.destination.as_str())
            .chain(volume_mounts.iter().map(|v| v.destination.as_str()))
        {
            if destinations.contains(&d) {
                return Err(ConfigError::DuplicateMount(d.to_string()));
            }
            destinations.push(d);
        }
        let memory = o
            .memory
            .as_deref()
            .map(|m| spec_from_image::parse_size("--memory", m))
            .transpose()?;
        if memory.is_some_and(|m| m < MIN_MEMORY) {
            return Err(ConfigError::MemoryTooSmall(
                o.memory.clone().unwrap_or_default(),
            ));
        }
        if o.pids_limit.is_some_and(|n| n <= 0) {
            return Err(ConfigError::PidsLimit);
        }
        if let Some(n) = &o.name {
            if !valid_name(n) {
                return Err(ConfigError::Name(n.clone()));
            }
        }
        let mut env = Vec::new();
        for f in &o.env_files {
            env.extend(flags::env_file(f, host_env)?);
        }
        // docker's `-e KEY`: husk's own value of KEY, left out when husk has none.
        env.extend(o.process.env.iter().filter_map(|e| match e.contains('=') {
            true => Some(e.clone()),
            false => host_env(e).map(|v| format!("{e}={v}")),
        }));
        let mut tmpfs = o
            .tmpfs
            .iter()
            .map(|t| Tmpfs::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        tmpfs.extend(mount_tmpfs);
        for (i, t) in tmpfs.iter().enumerate() {
            let dst = &t.destination;
            if tmpfs[..i].iter().any(|o| &o.destination == dst)
                || destinations.contains(&dst.as_str())
            {
                return Err(ConfigError::TmpfsTaken(dst.clone()));
            }
        }
        if o.init && destinations.contains(&"/dev") {
            return Err(ConfigError::InitHidden);
        }
        let cpu_quota = o
            .cpus
            .as_deref()
            .map(|c| flags::cpu_quota(c, host_cpus))
            .transpose()?;
        let (caps, added_caps) =
            flags::capabilities(spec_from_image::CAPS, o.privileged, &o.cap_add, &o.cap_drop)?;
        let security = flags::Security::parse(&o.security_opt)?;
        let seccomp = match &security.seccomp {
            Seccomp::File(f) => Some(load_seccomp(f, &caps)?),
            // As docker: --privileged runs unconfined unless a profile is named.
            Seccomp::Default if o.privileged => None,
            Seccomp::Default => Some(flags::default_seccomp(&caps)),
            Seccomp::Unconfined => None,
        };
        let host = HostConfig::validate(&o.host, memory, network == Network::Host)?;
        let userns = Userns::parse(&o.userns, husk_container::rootless::is_unprivileged())?;
        let writable = WritableLayer::validate(&o.storage)?;
        match (userns, writable) {
            (Userns::KeepId { .. }, WritableLayer::Tmpfs(_)) => {
                return Err(ConfigError::KeepIdWritable("--rootfs-tmpfs"))
            }
            (Userns::KeepId { .. }, WritableLayer::Quota(_)) => {
                return Err(ConfigError::KeepIdWritable("--storage-opt size"))
            }
            _ => {}
        }
        let stop_signal = o
            .stop_signal
            .as_deref()
            .map(|s| {
                flags::signal(s).map_err(|problem| FlagError::StopSignal {
                    value: s.to_string(),
                    problem,
                })
            })
            .transpose()?;
        Ok(ContainerConfig {
            image: o.image.clone(),
            cmd: o.cmd.clone(),
            entrypoint: o.entrypoint.clone(),
            name: o.name.clone(),
            hostname: o.hostname.clone(),
            detach: o.detach,
            remove: o.remove,
            restart,
            network,
            networks,
            ports,
            publish_all: o.publish_all,
            process: ProcessOptions {
                env,
                ..o.process.clone()
            },
            volumes,
            volume_mounts,
            tmpfs,
            read_only: o.read_only,
            memory,
            pids_limit: o.pids_limit,
            cpu_quota,
            caps,
            added_caps,
            privileged: o.privileged,
            // husk run sets no_new_privs unless asked not to (Docker and podman leave it
            // off); --privileged turns it off unless it is asked for.
            no_new_privileges: security.no_new_privileges.unwrap_or(!o.privileged),
            seccomp,
            security_opt: o
                .security_opt
                .iter()
                .map(|opt| docker_security_opt(opt, &security.seccomp))
                .collect(),
            apparmor: security.apparmor.clone(),
            init: o.init,
            stop_signal,
            registry: o.registry.clone(),
            host,
            userns,
            health: HealthOverrides::validate(&o.health)?,
            pod: o.pod.clone(),
            writable,
        })
    }
}

/// The network a container gets without `--network` (also a build's RUN steps): root,
/// docker's default bridge; rootless, no bridge of its own (docs/rootless.md): pasta when
/// it `publishes` ports, else none.
pub fn default_network(publishes: bool) -> String {
    match husk_container::rootless::is_unprivileged() {
        true if publishes => "pasta".to_string(),
        true => "none".to_string(),
        false => store::DEFAULT.to_string(),
    }
}

/// `--network` (repeated), `--network-alias`, `--ip`, `--mac-address`: the mode, and the
/// networks with what each is asked for.
fn networks(o: &RunOptions) -> Result<(Network, Vec<Wanted>), ConfigError> {
    if o.pod.is_some() && o.network.is_empty() {
        // The pod's network (its infra container's namespace, joined through crate::joins).
        for (flag, given) in [
            ("-p", !o.publish.is_empty() || o.publish_all),
            ("--network-alias", !o.network_alias.is_empty()),
            ("--ip", o.ip.is_some()),
            ("--mac-address", o.mac_address.is_some()),
        ] {
            if given {
                return Err(PodError::SharedNetwork(flag).into());
            }
        }
        return Ok((Network::None, Vec::new()));
    }
    let given: Vec<String> = if o.network.is_empty() {
        vec![default_network(!o.publish.is_empty() || o.publish_all)]
    } else {
        o.network.clone()
    };
    let modes = given
        .iter()
        .map(|n| Network::parse(n))
        .collect::<Result<Vec<_>, _>>()?;
    let mode = modes[0].clone();
    if modes.len() > 1 && modes.iter().any(|m| *m != Network::Bridge) {
        return Err(NetworkFlagError::Combined(given.join(" --network ")).into());
    }
    let ip =
        o.ip.as_deref()
            .map(|i| {
                i.parse::<std::net::IpAddr>()
                    .map_err(|_| NetworkFlagError::Ip(i.to_string()))
            })
            .transpose()?;
    if let Some(m) = &o.mac_address {
        let b: Vec<&str> = m.split(':').collect();
        let ok = b.len() == 6
            && b.iter()
                .all(|x| x.len() == 2 && u8::from_str_radix(x, 16).is_ok());
        if !ok || u8::from_str_radix(b[0], 16).unwrap() & 1 == 1 {
            return Err(NetworkFlagError::Mac(m.clone()).into());
        }
    }
    if mode != Network::Bridge {
        for (flag, given) in [
            ("--network-alias", !o.network_alias.is_empty()),
            ("--ip", ip.is_some()),
            ("--mac-address", o.mac_address.is_some()),
        ] {
            if given {
                return Err(NetworkFlagError::NeedsBridge {
                    flag,
                    network: mode.to_string(),
                }
                .into());
            }
        }
        return Ok((mode, Vec::new()));
    }
    let mut wanted: Vec<Wanted> = Vec::new();
    for n in &given {
        if wanted.iter().any(|w| &w.network == n) {
            return Err(NetworkFlagError::Twice(n.clone()).into());
        }
        let user_defined = n != store::DEFAULT;
        wanted.push(Wanted {
            network: n.clone(),
            // As docker: names are served on user-defined networks only.
            aliases: if user_defined {
                o.network_alias.clone()
            } else {
                Vec::new()
            },
            ip: None,
            mac: None,
        });
    }
    if !o.network_alias.is_empty() && wanted.iter().all(|w| w.network == store::DEFAULT) {
        return Err(NetworkFlagError::AliasOnDefault.into());
    }
    for a in &o.network_alias {
        if !valid_name(a) {
            return Err(NetworkFlagError::Alias(a.clone()).into());
        }
    }
    if ip.is_some() && wanted[0].network == store::DEFAULT {
        return Err(NetworkFlagError::IpOnDefault.into());
    }
    wanted[0].ip = ip;
    wanted[0].mac = o.mac_address.clone();
    Ok((Network::Bridge, wanted))
}

pub(crate) fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || "_.-".contains(x))
}

/// `--security-opt seccomp=FILE` → linux.seccomp, checked as create would check it.
/// One `--security-opt` as docker's inspect shows it: `seccomp=FILE` becomes
/// `seccomp=` and the file's JSON, compacted (the profile as it was when the container was
/// made); everything else stays as given.
fn docker_security_opt(opt: &str, seccomp: &Seccomp) -> String {
    let profile = match (opt.split_once(['=', ':']), seccomp) {
        (Some(("seccomp", _)), Seccomp::File(f)) => std::fs::read_to_string(f)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()),
        _ => None,
    };
    match profile {
        Some(p) => format!("seccomp={p}"),
        None => opt.to_string(),
    }
}

pub(crate) fn load_seccomp(file: &Path, caps: &[String]) -> Result<serde_json::Value, FlagError> {
    use flags::SeccompError;
    let bad = |problem| FlagError::Seccomp {
        file: file.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(file).map_err(|e| bad(SeccompError::Read(e)))?;
    let profile = flags::seccomp_profile(&text, caps).map_err(bad)?;
    let probe = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"seccomp": profile, "namespaces": [{"type": "mount"}, {"type": "pid"}]}
    });
    let spec: oci_spec::runtime::Spec =
        serde_json::from_value(probe).map_err(|e| bad(SeccompError::Spec(e)))?;
    husk_container::validate::validate_spec(&spec).map_err(|e| bad(SeccompError::Refused(e)))?;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        let p = |s: &str| Restart::parse(s);
        assert_eq!(p("no"), Ok(Restart::No));
        assert_eq!(p("always"), Ok(Restart::Always));
        assert_eq!(p("unless-stopped"), Ok(Restart::UnlessStopped));
        assert_eq!(p("on-failure"), Ok(Restart::OnFailure(None)));
        assert_eq!(p("on-failure:3"), Ok(Restart::OnFailure(Some(3))));
        for bad in ["sometimes", "always:2", ""] {
            assert_eq!(p(bad), Err(RestartError::Unknown(bad.into())));
        }
        let e = p("on-failure:x").unwrap_err();
        assert_eq!(e, RestartError::RetryCount("on-failure:x".into()));
        assert_eq!(
            ConfigError::from(e).to_string(),
            "--restart \"on-failure:x\": the retry count must be a number"
        );
        assert_eq!(
            p("sometimes").unwrap_err().to_string(),
            "--restart \"sometimes\": use no, always, unless-stopped or on-failure[:N]"
        );
        assert!(!Restart::No.again(1, 0));
        assert!(Restart::Always.again(0, 100));
        assert!(!Restart::OnFailure(None).again(0, 0));
        assert!(Restart::OnFailure(None).again(2, 100));
        assert!(Restart::OnFailure(Some(2)).again(2, 1));
        assert!(!Restart::OnFailure(Some(2)).again(2, 2));
    }

    /// Options for `image` with `f` applied.
    fn with(f: impl FnOnce(&mut RunOptions)) -> RunOptions {
        let mut o = RunOptions::new("img");
        f(&mut o);
        o
    }

    /// Validated on a 4-CPU host whose environment has only FROM_HOST=h.
    fn check(o: &RunOptions) -> Result<ContainerConfig, ConfigError> {
        ContainerConfig::validate_with(o, 4, &|k| (k == "FROM_HOST").then(|| "h".to_string()))
    }

    fn err(f: impl FnOnce(&mut RunOptions)) -> ConfigError {
        check(&with(f)).expect_err("invalid options accepted")
    }

    /// A file in a directory of this test's own, removed on drop.
    struct TempFile(std::path::PathBuf);
    impl TempFile {
        fn new(name: &str, text: &str) -> TempFile {
            let dir = std::env::temp_dir().join(format!("husk-config-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            TempFile(p)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn defaults_are_docker_like_and_locked_down() {
        let c = check(&RunOptions::new("img")).unwrap();
        assert_eq!(c.image, "img");
        assert_eq!(c.restart, Restart::No);
        // root's default: the `bridge` network
        assert_eq!(c.network, Network::Bridge);
        assert_eq!(c.networks.len(), 1);
        assert_eq!(c.networks[0].network, "bridge");
        assert!(!c.detach && !c.remove && !c.init && !c.privileged);
        assert!(c.no_new_privileges, "husk sets no_new_privs by default");
        let mut default_caps: Vec<String> = spec_from_image::CAPS
            .iter()
            .map(|c| c.to_string())
            .collect();
        default_caps.sort();
        let mut caps = c.caps.clone();
        caps.sort();
        assert_eq!(caps, default_caps);
        assert!(c.added_caps.is_empty());
        assert_eq!((c.memory, c.cpu_quota, c.pids_limit), (None, None, None));
        assert_eq!(c.stop_signal, None);
        let seccomp = c.seccomp.expect("the default seccomp profile");
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
        // --privileged and seccomp=unconfined: no filter
        assert!(check(&with(|o| o.privileged = true))
            .unwrap()
            .seccomp
            .is_none());
        let c = check(&with(|o| {
            o.security_opt = vec!["seccomp=unconfined".into()]
        }))
        .unwrap();
        assert!(c.seccomp.is_none());
    }

    #[test]
    fn values_become_typed() {
        let c = check(&with(|o| {
            o.detach = true;
            o.restart = "on-failure:2".into();
            o.network = vec!["slirp4netns:allow_host_loopback=true".into()];
            o.memory = Some("64m".into());
            o.cpus = Some("1.5".into());
            o.pids_limit = Some(10);
            o.tmpfs = vec!["/scratch:size=1m".into()];
            o.volumes = vec!["/:/host:ro".into()];
            o.cap_add = vec!["NET_ADMIN".into()];
            o.cap_drop = vec!["CHOWN".into()];
            o.stop_signal = Some("SIGUSR1".into());
            o.name = Some("web.1".into());
        }))
        .unwrap();
        assert_eq!(c.restart, Restart::OnFailure(Some(2)));
        assert_eq!(c.restart.to_string(), "on-failure:2");
        assert_eq!(
            c.network,
            Network::Slirp {
                host_loopback: true
            }
        );
        assert_eq!(
            Network::parse(&c.network.to_string()),
            Ok(c.network.clone())
        );
        assert_eq!(c.memory, Some(64 << 20));
        assert_eq!(c.cpu_quota, Some(150_000));
        assert_eq!(c.pids_limit, Some(10));
        assert_eq!(c.tmpfs[0].destination, "/scratch");
        assert_eq!(
            (c.volumes[0].destination.as_str(), c.volumes[0].readonly),
            ("/host", true)
        );
        assert!(c.caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.caps.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(c.added_caps, ["CAP_NET_ADMIN"]);
        assert_eq!(c.stop_signal, Some(libc::SIGUSR1));
    }

    #[test]
    fn env_files_come_first_and_bare_keys_take_the_hosts_value() {
        let f = TempFile::new("env", "# comment\nA=1\nFROM_HOST\nNOT_SET\nB=from-file\n");
        let c = check(&with(|o| {
            o.env_files = vec![f.0.clone()];
            o.process.env = vec!["B=from-flag".into()];
        }))
        .unwrap();
        assert_eq!(
            c.process.env,
            ["A=1", "FROM_HOST=h", "B=from-file", "B=from-flag"]
        );
        let missing = err(|o| o.env_files = vec!["/no/such/env-file".into()]);
        assert!(
            missing.to_string().contains("/no/such/env-file"),
            "{missing}"
        );
    }

    #[test]
    fn privileged_turns_no_new_privileges_off_unless_asked() {
        let c = check(&with(|o| o.privileged = true)).unwrap();
        assert!(!c.no_new_privileges);
        let c = check(&with(|o| {
            o.privileged = true;
            o.security_opt = vec!["no-new-privileges".into()];
        }))
        .unwrap();
        assert!(c.no_new_privileges);
        let c = check(&with(|o| {
            o.security_opt = vec!["no-new-privileges=false".into()]
        }))
        .unwrap();
        assert!(!c.no_new_privileges);
    }

    #[test]
    fn every_user_error_is_found_before_anything_runs() {
        use ConfigError::*;
        assert!(matches!(
            err(|o| o.restart = "always".into()),
            RestartNeedsDetach
        ));
        assert!(matches!(
            err(|o| {
                o.detach = true;
                o.remove = true;
                o.restart = "always".into();
            }),
            RestartWithRemove
        ));
        assert!(matches!(err(|o| o.pids_limit = Some(0)), PidsLimit));
        assert!(matches!(err(|o| o.name = Some("-x".into())), Name(n) if n == "-x"));
        assert!(matches!(
            err(|o| o.volumes = vec!["/no/such/source:/data".into()]),
            VolumeSource(s) if s == "/no/such/source"
        ));
        assert!(matches!(
            err(|o| {
                o.volumes = vec!["/:/data/".into()];
                o.tmpfs = vec!["/data".into()];
            }),
            TmpfsTaken(t) if t == "/data"
        ));
        assert!(matches!(
            err(|o| {
                o.init = true;
                o.volumes = vec!["/:/dev".into()];
            }),
            InitHidden
        ));
        assert!(matches!(
            err(|o| o.memory = Some("1k".into())),
            MemoryTooSmall(m) if m == "1k"
        ));
        // Values their parsers refuse: each its parser's typed error, whose message names
        // the flag.
        type Change = fn(&mut RunOptions);
        type Is = fn(&ConfigError) -> bool;
        let cases: [(&str, Change, Is); 14] = [
            (
                "--mount",
                |o| o.mounts = vec!["type=bind,target=/x".into()],
                |e| {
                    matches!(
                        e,
                        Mount(MountFlagError::Mount {
                            problem: mount_flags::MountError::NoSource,
                            ..
                        })
                    )
                },
            ),
            (
                "--restart",
                |o| o.restart = "sometimes".into(),
                |e| matches!(e, Restart(RestartError::Unknown(p)) if p == "sometimes"),
            ),
            (
                "--network",
                |o| o.network = vec!["a:b".into()],
                |e| matches!(e, Network(NetworkFlagError::Mode(m)) if m == "a:b"),
            ),
            (
                "-v",
                |o| o.volumes = vec!["rel/ative:/x".into()],
                |e| matches!(e, Mount(MountFlagError::VolumeName { .. })),
            ),
            (
                "--memory",
                |o| o.memory = Some("lots".into()),
                |e| matches!(e, Size(SizeError { flag: "--memory", value }) if value == "lots"),
            ),
            (
                "--cpus",
                |o| o.cpus = Some("8".into()),
                |e| {
                    matches!(
                        e,
                        Flag(FlagError::Cpus {
                            problem: flags::CpusError::OutOfRange,
                            host_cpus: 4,
                            ..
                        })
                    )
                },
            ),
            (
                "--cap-add",
                |o| o.cap_add = vec!["NOT_A_CAP".into()],
                |e| {
                    matches!(
                        e,
                        Flag(FlagError::UnknownCapability {
                            flag: "--cap-add",
                            ..
                        })
                    )
                },
            ),
            (
                "--security-opt",
                |o| o.security_opt = vec!["label=x".into()],
                |e| matches!(e, Flag(FlagError::SecurityOpt(v)) if v == "label=x"),
            ),
            (
                "--stop-signal",
                |o| o.stop_signal = Some("SIGNOPE".into()),
                |e| {
                    matches!(
                        e,
                        Flag(FlagError::StopSignal {
                            problem: flags::SignalError::Parse(_),
                            ..
                        })
                    )
                },
            ),
            (
                "--tmpfs",
                |o| o.tmpfs = vec!["relative".into()],
                |e| {
                    matches!(
                        e,
                        Flag(FlagError::Tmpfs {
                            problem: flags::TmpfsError::Relative,
                            ..
                        })
                    )
                },
            ),
            (
                "seccomp",
                |o| o.security_opt = vec!["seccomp=/no/such/profile.json".into()],
                |e| {
                    matches!(
                        e,
                        Flag(FlagError::Seccomp {
                            problem: flags::SeccompError::Read(_),
                            ..
                        })
                    )
                },
            ),
            (
                "--ulimit",
                |o| o.host.ulimits = vec!["nofile=2:1".into()],
                |e| matches!(e, Host(HostFlagError::Ulimit { .. })),
            ),
            (
                "--storage-opt",
                |o| o.storage.storage_opts = vec!["inodes=1".into()],
                |e| matches!(e, Storage(StorageOptError::Unknown(_))),
            ),
            (
                "-p",
                |o| o.publish = vec!["80/sctp".into()],
                |e| {
                    matches!(
                        e,
                        Network(NetworkFlagError::Publish(ports::PublishError {
                            problem: ports::PortError::Protocol(p),
                            ..
                        })) if p == "sctp"
                    )
                },
            ),
        ];
        for (flag, f, is) in cases {
            let e = err(f);
            assert!(is(&e), "{flag}: {e:?}");
            assert!(e.to_string().contains(flag), "{flag}: {e}");
        }
    }

    #[test]
    fn networks_ports_aliases_and_addresses() {
        let c = check(&with(|o| {
            o.network = vec!["front".into(), "back".into()];
            o.network_alias = vec!["www".into()];
            o.ip = Some("10.5.0.9".into());
            o.mac_address = Some("02:42:ac:11:00:09".into());
            o.publish = vec!["8080:80".into(), "53:53/udp".into()];
        }))
        .unwrap();
        assert_eq!(c.network, Network::Bridge);
        let names: Vec<&str> = c.networks.iter().map(|w| w.network.as_str()).collect();
        assert_eq!(names, ["front", "back"]);
        assert_eq!(c.networks[0].ip, Some("10.5.0.9".parse().unwrap()));
        assert_eq!(c.networks[1].ip, None);
        assert_eq!(c.networks[1].aliases, ["www"]);
        assert_eq!(c.ports.len(), 2);
        for (f, needle) in [
            (
                (|o: &mut RunOptions| o.publish = vec!["80".into()]) as fn(&mut RunOptions),
                "-p",
            ),
            (|o| o.publish_all = true, "-P"),
            (|o| o.network_alias = vec!["a".into()], "user-defined"),
            (|o| o.ip = Some("10.0.0.2".into()), "user-defined"),
            (
                |o| o.mac_address = Some("01:00:00:00:00:01".into()),
                "unicast",
            ),
            (|o| o.network = vec!["n".into(), "n".into()], "twice"),
            (|o| o.network = vec!["n".into(), "host".into()], "combined"),
        ] {
            let mut o = RunOptions::new("img");
            f(&mut o);
            if needle == "-p" || needle == "-P" {
                o.network = vec!["none".into()];
            }
            let e = check(&o).expect_err(needle).to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let e = err(|o| o.network = vec!["n".into(), "host".into()]);
        assert!(
            matches!(&e, ConfigError::Network(NetworkFlagError::Combined(g)) if g == "n --network host"),
            "{e:?}"
        );
        let e = err(|o| {
            o.pod = Some("p".into());
            o.publish = vec!["80".into()];
        });
        assert!(
            matches!(e, ConfigError::Pod(PodError::SharedPorts)),
            "{e:?}"
        );
    }
}
