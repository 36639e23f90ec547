//! husk's command line: the clap definitions, and what they become for the engine.

use clap::{Args, Parser, Subcommand};
use husk_engine::{ProcessOptions, RegistryOptions, RunOptions};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "husk", version, about = "husk container engine")]
pub struct Cli {
    /// Image store root (default /var/lib/husk, or $XDG_DATA_HOME/husk when not root)
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Configuration file (JSON)
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Registry for references without one (default docker.io)
    #[arg(long, global = true)]
    pub default_registry: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Args, Clone, Default)]
pub struct RegistryArgs {
    /// Allow plain http and skip TLS verification for the registry
    #[arg(long)]
    pub insecure: bool,
    /// Verify TLS certificates (--tls-verify=false is the same as --insecure)
    #[arg(long, value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Directory with CA certificates (*.crt), also searched per registry (DIR/HOST:PORT/*.crt)
    #[arg(long)]
    pub cert_dir: Option<PathBuf>,
    /// Credentials file (docker config.json / podman auth.json format)
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// Credentials USER:PASSWORD
    #[arg(long)]
    pub creds: Option<String>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run a command in a new container (foreground, or -d in the background)
    Run(RunArgs),
    /// Create a container as `run -d` would, without starting it (`start` starts it);
    /// prints its id
    Create(RunArgs),
    /// Block until containers exit, then print their exit codes, one a line
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container
    Rename { container: String, new_name: String },
    /// List containers (running ones; -a for all)
    Ps {
        #[arg(short, long)]
        all: bool,
        /// table (default) or json
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show a container's output (as logged by its monitor)
    Logs {
        /// Keep following the output until the container exits
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines
        #[arg(long)]
        tail: Option<usize>,
        /// Prefix each line with its time
        #[arg(short, long)]
        timestamps: bool,
        container: String,
    },
    /// Stop containers: the stop signal, then SIGKILL after --time seconds
    Stop {
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Send a signal to containers' main process
    Kill {
        /// Signal name or number
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Freeze every process of containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw paused containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Start created containers, or exited ones again, detached
    Start {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop (as `stop`) and start containers
    Restart {
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Resource usage of running containers (every second; --no-stream: once)
    Stats {
        #[arg(long)]
        no_stream: bool,
        /// table (default) or json (the cgroup statistics, one object per line)
        #[arg(long, default_value = "table")]
        format: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Copy files/directories between a running container and the host: CONTAINER:PATH
    Cp { src: String, dst: String },
    /// List a container's processes
    Top { container: String },
    /// Manage containers
    Container {
        #[command(subcommand)]
        cmd: ContainerCmd,
    },
    /// Show containers' records and runtime state as JSON
    Inspect {
        /// json (the only format, as the default)
        #[arg(long, default_value = "json")]
        format: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers (-f: also running ones, killing them)
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Pull an image from a registry
    Pull {
        reference: String,
        /// os/arch[/variant] to pull from a multi-platform image
        #[arg(long)]
        platform: Option<String>,
        /// No progress output
        #[arg(short, long)]
        quiet: bool,
        /// Layers downloaded at once
        #[arg(long, default_value_t = 3)]
        jobs: usize,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Push an image to a registry
    Push {
        image: String,
        /// Destination reference (default: the image's name)
        dest: Option<String>,
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// List images
    Images(ListArgs),
    /// Remove images
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
        #[arg(short, long)]
        force: bool,
    },
    /// Add a name to an image
    Tag { image: String, name: String },
    /// Manage images
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// Load images from a docker-archive or OCI-layout tarball
    Load {
        #[arg(short, long)]
        input: Option<PathBuf>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save an image to a docker-archive or OCI-layout tarball
    Save {
        image: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// docker-archive or oci-archive
        #[arg(long, default_value = "docker-archive")]
        format: String,
    },
    /// Store credentials for a registry
    Login {
        registry: String,
        #[arg(short, long)]
        username: Option<String>,
        #[arg(short, long)]
        password: Option<String>,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Benchmark helper: decompress a layer file, discarding the output
    #[command(hide = true)]
    BenchDecode { file: PathBuf },
    /// Benchmark helper: unpack a layer file into DIR/diff the way pull does
    #[command(hide = true)]
    BenchUnpack { file: PathBuf, dir: PathBuf },
    /// Remove stored credentials for a registry
    Logout {
        registry: String,
        #[arg(long)]
        authfile: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ContainerCmd {
    /// Remove every exited container
    Prune,
}

#[derive(Args)]
pub struct ListArgs {
    /// table (default) or json
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Subcommand)]
pub enum ImageCmd {
    /// List images
    Ls(ListArgs),
    /// Show an image's record, manifest and config as JSON
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
        #[arg(short, long)]
        force: bool,
    },
    /// Remove unused layers and blobs (and, with --all, images without a name)
    Prune {
        #[arg(short, long)]
        all: bool,
    },
    /// Write the image's filesystem, flattened, into a directory
    Unpack { image: String, dir: PathBuf },
    /// Print the image's layer directories (overlay lowerdirs, top first, joined by ':')
    Lowerdirs { image: String },
    /// Print the process values (args, env, cwd, uid/gid) the image would run with
    Process {
        image: String,
        /// Flattened rootfs of the image to resolve the user in (default: resolve from layers)
        #[arg(long)]
        rootfs: Option<PathBuf>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        entrypoint: Option<String>,
        #[arg(long)]
        workdir: Option<String>,
        #[arg(short, long)]
        env: Vec<String>,
        args: Vec<String>,
    },
}

/// The process options `run` and `exec` share.
#[derive(Args)]
pub struct ProcessFlags {
    /// Give the process a terminal: a pty proxied to ours (raw mode, window size; stdin is
    /// attached too), or with run -d one whose output the monitor logs
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Attach stdin (without it, and without -t, the process reads /dev/null)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Set an environment variable KEY=VALUE
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory in the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User to run as: name|uid[:group|gid], resolved in the container's /etc/passwd
    #[arg(short = 'u', long)]
    pub user: Option<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// Run in the background: print the container id once it has started
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub process: ProcessFlags,
    /// Restart policy of a detached container: no, always, unless-stopped, on-failure[:N]
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Remove the container (state and filesystem) when it exits
    #[arg(long)]
    pub rm: bool,
    /// Suppress the pull output (shown only on a terminal anyway)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Name of the container (default: its short id)
    #[arg(long)]
    pub name: Option<String>,
    /// Replace the image's entrypoint ("" clears it)
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name (default: the name, or the short id)
    #[arg(long)]
    pub hostname: Option<String>,
    /// none (own namespace, loopback only), host, or slirp4netns[:allow_host_loopback=true]
    /// (outbound through user-mode networking)
    #[arg(long, default_value = "none")]
    pub network: String,
    /// Bind mount SRC:DST[:ro|rw]
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Mount the container's root read-only
    #[arg(long)]
    pub read_only: bool,
    #[command(flatten)]
    pub more: Box<MoreRunArgs>,
    #[command(flatten)]
    pub reg: RegistryArgs,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// Limits, env files, tmpfs, capabilities, security options, init, stop signal: boxed so
/// that `RunArgs` stays small inside `Cmd` (clippy's large_enum_variant).
#[derive(Args)]
pub struct MoreRunArgs {
    /// Memory limit (N[b|k|m|g])
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Maximum number of processes
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Read KEY=VALUE lines (# comments; a bare KEY takes husk's value); -e wins
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Mount a tmpfs: DST[:OPTIONS] (default nosuid,nodev; e.g. size=64m,mode=1777)
    #[arg(long, value_name = "DST[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// CPU limit: N.NN CPUs' worth of time per 100 ms
    #[arg(long, allow_negative_numbers = true)]
    pub cpus: Option<String>,
    /// Add a capability (NET_ADMIN, CAP_NET_ADMIN, ALL)
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (or ALL)
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// All capabilities, no masked or read-only paths, all devices allowed, no seccomp
    #[arg(long)]
    pub privileged: bool,
    /// no-new-privileges[=true|false], seccomp=unconfined, seccomp=FILE (OCI or Docker form)
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Run a small init as PID 1 that forwards signals and reaps zombies
    #[arg(long)]
    pub init: bool,
    /// Signal that stops the container (name or number; default: the image's, or SIGTERM)
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
}

/// `husk exec`'s options.
#[derive(clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub process: ProcessFlags,
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

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
            volumes: a.volume,
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
            registry: a.reg.into(),
        }
    }
}

/// Global options of `husk` that take a value as the next argument.
const VALUED: &[&str] = &["--root", "--config", "--default-registry"];
/// The first argument that is not a global option or its value.
pub fn subcommand(args: &[OsString]) -> Option<&str> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_str()?;
        if VALUED.contains(&a) {
            it.next();
        } else if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_subcommand_past_global_options() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(subcommand(&a(&["husk", "run", "img"])), Some("run"));
        assert_eq!(subcommand(&a(&["husk", "--root", "/x", "ps"])), Some("ps"));
        assert_eq!(
            subcommand(&a(&["husk", "--root=/x", "pull", "a"])),
            Some("pull")
        );
        assert_eq!(subcommand(&a(&["husk", "--version"])), None);
    }
}
