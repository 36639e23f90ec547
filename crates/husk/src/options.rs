//! The parsed command line as the engine's options (kept out of cli.rs so that the clap
//! definitions build without the engine: build.rs makes the man pages from them).

use crate::cli::{HealthFlags, HostFlags, ProcessFlags, RegistryArgs, RunArgs};
use husk_engine::{
    HealthOptions, HostOptions, ProcessOptions, RegistryOptions, RunOptions, StorageOptions,
};

impl From<RegistryArgs> for RegistryOptions {
    fn from(a: RegistryArgs) -> RegistryOptions {
        RegistryOptions {
            insecure: a.insecure,
            tls_verify: a.tls_verify,
            cert_dir: a.cert_dir,
            authfile: a.authfile,
            creds: a.creds,
        }
    }
}

impl From<ProcessFlags> for ProcessOptions {
    fn from(p: ProcessFlags) -> ProcessOptions {
        ProcessOptions {
            tty: p.tty,
            interactive: p.interactive,
            env: p.env,
            workdir: p.workdir,
            user: p.user,
        }
    }
}

impl From<RunArgs> for RunOptions {
    fn from(a: RunArgs) -> RunOptions {
        let m = *a.more;
        RunOptions {
            image: a.image,
            cmd: a.cmd,
            detach: a.detach,
            process: a.process.into(),
            restart: a.restart,
            remove: a.rm,
            name: a.name,
            entrypoint: a.entrypoint,
            hostname: a.hostname,
            network: a.network,
            network_alias: a.network_alias,
            ip: a.ip,
            mac_address: a.mac_address,
            publish: a.publish,
            publish_all: a.publish_all,
            volumes: a.volume,
            mounts: a.mount,
            read_only: a.read_only,
            memory: m.memory,
            pids_limit: m.pids_limit,
            env_files: m.env_file,
            tmpfs: m.tmpfs,
            cpus: m.cpus,
            cap_add: m.cap_add,
            cap_drop: m.cap_drop,
            privileged: m.privileged,
            security_opt: m.security_opt,
            init: m.init,
            stop_signal: m.stop_signal,
            pod: m.pod,
            registry: (*a.reg).into(),
            host: (*a.host).into(),
            health: (*a.health).into(),
            storage: StorageOptions {
                storage_opts: a.storage.storage_opt,
                rootfs_tmpfs: a.storage.rootfs_tmpfs,
            },
            userns: m.userns,
        }
    }
}

impl From<HealthFlags> for HealthOptions {
    fn from(h: HealthFlags) -> HealthOptions {
        HealthOptions {
            cmd: h.health_cmd,
            interval: h.health_interval,
            timeout: h.health_timeout,
            start_period: h.health_start_period,
            retries: h.health_retries,
            disable: h.no_healthcheck,
        }
    }
}

impl From<HostFlags> for HostOptions {
    fn from(h: HostFlags) -> HostOptions {
        HostOptions {
            labels: h.label,
            annotations: h.annotation,
            add_hosts: h.add_host,
            dns: h.dns,
            dns_search: h.dns_search,
            ulimits: h.ulimit,
            devices: h.device,
            sysctls: h.sysctl,
            group_add: h.group_add,
            shm_size: h.shm_size,
            cidfile: h.cidfile,
            pid: h.pid,
            ipc: h.ipc,
            uts: h.uts,
            cgroupns: h.cgroupns,
            cpuset_cpus: h.cpuset_cpus,
            cpu_shares: h.cpu_shares,
            memory_swap: h.memory_swap,
            memory_reservation: h.memory_reservation,
            oom_score_adj: h.oom_score_adj,
            pull: h.pull,
            platform: h.platform,
            no_sig_proxy: !h.sig_proxy,
            log_opts: h.log_opt,
        }
    }
}

/// `husk commit`'s flags as the engine's options; `SOURCE_DATE_EPOCH` stands in for a
/// missing `--timestamp`, as build tools read it.
pub fn commit(
    name: Option<String>,
    changes: Vec<String>,
    message: Option<String>,
    author: Option<String>,
    pause: bool,
    compression: &str,
    timestamp: Option<i64>,
) -> Result<husk_engine::commit::CommitOptions, String> {
    use husk_engine::commit::Compression;
    let compression = match compression {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        c => return Err(format!("commit: --compression {c:?}: gzip or zstd")),
    };
    let timestamp = match timestamp {
        Some(t) => Some(t),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.is_empty() => Some(v.trim().parse::<i64>().map_err(|_| {
                format!("commit: SOURCE_DATE_EPOCH={v:?}: expected seconds since the epoch")
            })?),
            _ => None,
        },
    };
    Ok(husk_engine::commit::CommitOptions {
        name,
        changes,
        message,
        author,
        pause,
        compression,
        timestamp,
    })
}

/// `husk build --security-opt`: RUN's seccomp filter (the last one given counts).
fn build_seccomp(opts: &[String]) -> Result<husk_engine::spec_from_image::flags::Seccomp, String> {
    use husk_engine::spec_from_image::flags::Seccomp;
    let mut s = Seccomp::Default;
    for o in opts {
        s = match o.split_once(['=', ':']) {
            Some(("seccomp", "unconfined")) => Seccomp::Unconfined,
            Some(("seccomp", f)) if !f.is_empty() => Seccomp::File(f.into()),
            _ => {
                return Err(format!(
                    "--security-opt {o:?}: use seccomp=unconfined or seccomp=FILE"
                ))
            }
        };
    }
    Ok(s)
}

/// `husk build`'s flags as the engine's [`husk_engine::build::BuildOptions`]; a bad value
/// is one line naming the flag. `stdin_file`: the Containerfile read from stdin (`-f -`).
pub fn build_options(
    a: crate::cli::BuildArgs,
    stdin_file: Option<String>,
) -> Result<husk_engine::build::BuildOptions, String> {
    use husk_engine::build::{parse_secret, BuildOptions, RunNetwork};
    use husk_engine::PullPolicy;
    let mut build_args = std::collections::BTreeMap::new();
    for b in &a.build_arg {
        match b.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            // KEY alone: the environment's value, or nothing when it is unset (as docker).
            None => {
                if let Ok(v) = std::env::var(b) {
                    build_args.insert(b.clone(), v);
                }
            }
        }
    }
    let mut labels = Vec::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            return Err(format!("--label {l:?}: expected KEY=VALUE"));
        }
        labels.push((k.to_string(), v.to_string()));
    }
    let mut secrets = std::collections::BTreeMap::new();
    for s in &a.secret {
        let (id, src) = parse_secret(s).map_err(|e| e.to_string())?;
        secrets.insert(id, src);
    }
    let timestamp = match a.timestamp {
        Some(t) => Some(t),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.is_empty() => Some(
                v.parse()
                    .map_err(|_| format!("SOURCE_DATE_EPOCH={v:?}: not a number of seconds"))?,
            ),
            _ => None,
        },
    };
    Ok(BuildOptions {
        context: a.context,
        file: a.file.filter(|f| f != "-").map(Into::into),
        file_text: stdin_file,
        tags: a.tags,
        build_args,
        target: a.target,
        no_cache: a.no_cache,
        pull: match a.pull.as_str() {
            "always" | "true" => PullPolicy::Always,
            "missing" => PullPolicy::Missing,
            "never" | "false" => PullPolicy::Never,
            p => return Err(format!("--pull {p:?}: always, missing or never")),
        },
        platform: a.platform,
        labels,
        network: match a.network.as_deref() {
            None => RunNetwork::Default,
            Some(n) => RunNetwork::parse(n).map_err(|e| e.to_string())?,
        },
        seccomp: build_seccomp(&a.security_opt)?,
        secrets,
        iidfile: a.iidfile,
        quiet: a.quiet,
        timestamp,
        zstd: match a.compression.as_str() {
            "gzip" => false,
            "zstd" => true,
            c => return Err(format!("--compression {c:?}: gzip or zstd")),
        },
        registry: a.reg.into(),
    })
}
