//! husk's command line: the clap definitions only (what they become for the engine is in
//! options.rs). build.rs includes this file to write the man pages, so it uses clap alone.

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser)]
// Global options come before the command (`husk --root DIR ps`), as docker's do: listed
// once, in `husk --help`, not repeated in every command's help.
#[command(name = "husk", version, about = "husk container engine")]
pub struct Cli {
    /// Image store root (default /var/lib/husk, or $XDG_DATA_HOME/husk when not root)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Configuration file (JSON)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Registry for references without one (default docker.io)
    #[arg(long, value_name = "HOST[:PORT]")]
    pub default_registry: Option<String>,
    /// Cgroup manager for the containers husk runs: cgroupfs, or systemd (a transient scope
    /// per container, in machine.slice, or rootless in the user's manager; cgroup v2).
    /// Default: systemd for an ordinary user on cgroup v2 with a user bus, else cgroupfs
    #[arg(long, value_name = "MANAGER", value_parser = ["cgroupfs", "systemd"])]
    pub cgroup_manager: Option<String>,
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

// Parsed once per process: boxing the container commands would only obscure main's matches.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Cmd {
    #[command(flatten)]
    Ctr(ContainerOp),
    /// List containers (running ones; -a for all)
    Ps(PsArgs),
    /// Manage containers
    Container {
        #[command(subcommand)]
        cmd: ContainerCmd,
    },
    /// Show containers or images in docker's layout, as a JSON array or through a template
    Inspect {
        /// json (default) or a Go template (`{{.State.Status}}`, `{{json .Config}}`)
        #[arg(short, long)]
        format: Option<String>,
        /// Only look for a container or only for an image of that name
        #[arg(long = "type", value_enum)]
        kind: Option<InspectType>,
        /// Container or image names, ids or id prefixes
        #[arg(required = true)]
        targets: Vec<String>,
    },
    #[command(flatten)]
    Img(ImageOp),
    /// List images
    Images(ListArgs),
    /// Remove images
    Rmi {
        /// Image names, ids or id prefixes
        #[arg(required = true)]
        images: Vec<String>,
        /// Also images exited containers use
        #[arg(short, long)]
        force: bool,
    },
    /// Manage images
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// Store credentials for a registry
    Login {
        /// Registry host[:port]
        registry: String,
        /// User name
        #[arg(short, long)]
        username: Option<String>,
        /// Password (visible to other users in the process list: prefer --password-stdin)
        #[arg(short, long)]
        password: Option<String>,
        /// Read the password from stdin
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Benchmark helper: decompress a layer file, discarding the output
    #[command(hide = true)]
    BenchDecode {
        /// A compressed layer file
        file: PathBuf,
    },
    /// Benchmark helper: unpack a layer file into DIR/diff the way pull does
    #[command(hide = true)]
    BenchUnpack {
        /// A compressed layer file
        file: PathBuf,
        /// Where to unpack it (DIR/diff)
        dir: PathBuf,
    },
    /// Remove stored credentials for a registry
    Logout {
        /// Registry host[:port]
        registry: String,
        /// Credentials file (docker config.json / podman auth.json format)
        #[arg(long)]
        authfile: Option<PathBuf>,
    },
    /// Show what happened to containers and images (the engine's event log); without
    /// --until, keeps following
    Events(EventsArgs),
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        cmd: VolumeCmd,
    },
    /// Manage networks (bridges through netavark)
    Network {
        #[command(subcommand)]
        cmd: NetworkCmd,
    },
    /// Disk use, pruning and events of the whole engine
    System {
        #[command(subcommand)]
        cmd: SystemCmd,
    },
    /// Show the version of husk and of its engine, as docker version does
    Version {
        /// A Go template (`{{.Client.Version}}`) or json
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Manage pods: containers sharing a network, IPC and UTS namespace
    Pod {
        #[command(subcommand)]
        cmd: PodCmd,
    },
    /// Kubernetes manifests: play (run their pods), down, generate
    Kube {
        #[command(subcommand)]
        cmd: KubeCmd,
    },
    /// podman's old `play kube`
    Play {
        #[command(subcommand)]
        cmd: PlayCmd,
    },
    /// Run containers' health checks now
    Healthcheck {
        #[command(subcommand)]
        cmd: HealthcheckCmd,
    },
    /// Show system-wide information: containers, images, storage, cgroups, kernel
    Info {
        /// A Go template (`{{.CgroupVersion}}`) or json
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Print a shell completion script: `source <(husk completion bash)`
    Completion {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Shells `husk completion` writes scripts for.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// What `inspect --type` restricts the lookup to.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InspectType {
    Container,
    Image,
}

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default: running ones)
    #[arg(short, long)]
    pub all: bool,
    /// Only container ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate ids and commands
    #[arg(long)]
    pub no_trunc: bool,
    /// Only matching containers: name=, status=, label=KEY[=VALUE], ancestor=, id= (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// The N containers created last (any state)
    #[arg(short = 'n', long, value_name = "N")]
    pub last: Option<usize>,
    /// The container created last (any state)
    #[arg(short, long)]
    pub latest: bool,
    /// table (default), json, `table TEMPLATE` or a Go template (`{{.ID}}\t{{.Names}}`)
    #[arg(long)]
    pub format: Option<String>,
    /// Also the pod of each container (POD ID and PODNAME columns)
    #[arg(long)]
    pub pod: bool,
}

/// The commands on containers, at the top level (`husk run`) and under `husk container`
/// (`husk container run`): one definition for both.
#[derive(Subcommand)]
pub enum ContainerOp {
    /// Run a command in a new container (foreground, or -d in the background)
    Run(RunArgs),
    /// Create a container as `run -d` would, without starting it (`start` starts it);
    /// prints its id
    Create(RunArgs),
    /// Block until containers exit, then print their exit codes, one a line
    Wait {
        /// Container names, ids or id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List a container's published ports (or the host address of one of them)
    Port {
        /// Container name, id or id prefix
        container: String,
        /// PRIVATE_PORT[/tcp|udp]
        port: Option<String>,
    },
    /// Rename a container
    Rename {
        /// Container name, id or id prefix
        container: String,
        /// Its new name
        new_name: String,
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
        /// Container name, id or id prefix
        container: String,
    },
    /// Stop containers: the stop signal, then SIGKILL after --time seconds
    Stop {
        /// Seconds to wait for the container to exit before SIGKILL
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        /// Container names, ids or id prefixes
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
        /// Container names, ids or id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Freeze every process of containers
    Pause {
        /// Container names, ids or id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw paused containers
    Unpause {
        /// Container names, ids or id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Start created containers, or exited ones again, detached
    Start {
        /// Attach to the container's output (one container), then exit with its code
        #[arg(short, long)]
        attach: bool,
        /// With -a, also send our stdin to the container (made with -i)
        #[arg(short, long)]
        interactive: bool,
        /// With -a: the keys that detach and leave it running (default ctrl-p,ctrl-q)
        #[arg(long, value_name = "KEYS")]
        detach_keys: Option<String>,
        /// Container names, ids or id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop (as `stop`) and start containers
    Restart {
        /// Seconds to wait for the container to exit before SIGKILL
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        /// Container names, ids or id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Resource usage of running containers (every second; --no-stream: once)
    Stats {
        /// One sample, then exit
        #[arg(long)]
        no_stream: bool,
        /// Full container ids
        #[arg(long)]
        no_trunc: bool,
        /// table (default), json, `table TEMPLATE` or a Go template (`{{.CPUPerc}}`)
        #[arg(long)]
        format: Option<String>,
        /// Container names, ids or id prefixes (default: every running container)
        containers: Vec<String>,
    },
    /// Copy files/directories between a container (running or not) and the host: CONTAINER:PATH
    Cp {
        /// Source: a host path, or CONTAINER:PATH
        src: String,
        /// Destination: a host path, or CONTAINER:PATH
        dst: String,
    },
    /// List a container's processes
    Top {
        /// Container name, id or id prefix
        container: String,
    },
    /// Files a container added (A), changed (C) or deleted (D), from its overlay upper dir
    Diff {
        /// Container name, id or id prefix
        container: String,
    },
    /// Make an image of a container's changes (its overlay upper dir as one new layer on
    /// its image); prints the image id
    Commit {
        /// Container name, id or id prefix
        container: String,
        /// Name for the image: [REGISTRY/]REPOSITORY[:TAG]
        reference: Option<String>,
        /// A Dockerfile instruction setting the config: CMD, ENTRYPOINT, ENV, WORKDIR, USER,
        /// LABEL, EXPOSE, VOLUME, STOPSIGNAL, ONBUILD
        #[arg(short, long, value_name = "INSTRUCTION")]
        change: Vec<String>,
        /// The comment of the new history entry
        #[arg(short, long)]
        message: Option<String>,
        /// The image's author
        #[arg(short, long)]
        author: Option<String>,
        /// Freeze a running container while its changes are read (--pause=false: don't)
        #[arg(short, long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
              require_equals = true, action = clap::ArgAction::Set, value_name = "BOOL")]
        pause: bool,
        /// Layer compression: gzip or zstd
        #[arg(long, default_value = "gzip", value_name = "ALGO")]
        compression: String,
        /// Seconds since the epoch for the image's time, clamping the layer's mtimes
        /// (default: $SOURCE_DATE_EPOCH when set, else now): the same changes give the
        /// same image id
        #[arg(long, value_name = "SECONDS")]
        timestamp: Option<i64>,
    },
    /// Attach to a running container: its output from now on, our input to it (made with
    /// -i), until it exits (then its exit code) or the detach keys leave it running
    Attach {
        /// Container name, id or id prefix
        container: String,
        /// Do not send our stdin
        #[arg(long)]
        no_stdin: bool,
        /// The keys that detach (default ctrl-p,ctrl-q; ctrl-X or a letter, comma-separated)
        #[arg(long, value_name = "KEYS")]
        detach_keys: Option<String>,
        /// Forward the signals husk gets to the container (not with a tty)
        #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
        sig_proxy: bool,
    },
    /// Write a container's filesystem (running or not) as a tar stream
    Export {
        /// Container name, id or id prefix
        container: String,
        /// Write to FILE instead of stdout
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Remove containers (-f: also running ones, killing them)
    Rm {
        /// Also running containers: kill them first
        #[arg(short, long)]
        force: bool,
        /// Also the container's anonymous volumes (named ones stay)
        #[arg(short, long)]
        volumes: bool,
        /// Container names, ids or id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

/// `husk container …`: the container commands, and the ones that have another name at the
/// top level (`ps` is `container ls`).
#[allow(clippy::large_enum_variant)] // as Cmd
#[derive(Subcommand)]
pub enum ContainerCmd {
    #[command(flatten)]
    Op(ContainerOp),
    /// List containers (running ones; -a for all)
    #[command(visible_aliases = ["list", "ps"])]
    Ls(PsArgs),
    /// Show containers in docker's layout, as a JSON array or through a template
    Inspect {
        /// json (default) or a Go template (`{{.State.Status}}`, `{{json .Config}}`)
        #[arg(short, long)]
        format: Option<String>,
        /// Container names, ids or id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove every exited or created container
    Prune,
    /// Checkpoint running containers with CRIU: they stop, their state saved for
    /// `container restore` (docs/checkpoint.md)
    Checkpoint {
        /// Also write the checkpoint, the container's writable layer and its config to one
        /// tar FILE, for `container restore --import` here or on another machine
        #[arg(short, long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// Leave the container running after writing the checkpoint
        #[arg(short = 'R', long)]
        leave_running: bool,
        /// Checkpoint a container with established TCP connections
        #[arg(long)]
        tcp_established: bool,
        /// Keep CRIU's log files after a successful checkpoint
        #[arg(short, long)]
        keep: bool,
        /// Container names, ids or id prefixes
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restore checkpointed containers, or a new one from an exported checkpoint; prints
    /// the container's id
    Restore {
        /// Restore from an exported checkpoint (a new container)
        #[arg(short, long, value_name = "FILE")]
        import: Option<PathBuf>,
        /// Name for the container restored from --import (default: the exported one's)
        #[arg(short, long)]
        name: Option<String>,
        /// Restore a container with established TCP connections
        #[arg(long)]
        tcp_established: bool,
        /// Keep the checkpoint after the restore (to restore it again)
        #[arg(short, long)]
        keep: bool,
        /// Container names, ids or id prefixes (none with --import)
        containers: Vec<String>,
    },
}

/// The commands on images, at the top level (`husk pull`) and under `husk image` (`husk
/// image pull`).
#[allow(clippy::large_enum_variant)] // as Cmd: parsed once
#[derive(Subcommand)]
pub enum ImageOp {
    /// Build an image from a Containerfile (or Dockerfile) and a context directory
    Build(BuildArgs),
    /// Show how an image was made: its config's history, newest first
    History {
        /// Image name, id or id prefix
        image: String,
        /// Sizes and times in words (-H=false: bytes and RFC 3339 times)
        #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
        human: bool,
        /// The full image id and commands
        #[arg(long)]
        no_trunc: bool,
        /// Only the ids (`<missing>` for rows without one)
        #[arg(short, long)]
        quiet: bool,
        /// table (default), json, `table TEMPLATE` or a Go template (`{{.CreatedBy}}`)
        #[arg(long)]
        format: Option<String>,
    },
    /// Make an image of one layer from a tarball (plain, gzip or zstd); prints its id
    Import {
        /// The tarball, or - for stdin
        file: String,
        /// Name for the image: [REGISTRY/]REPOSITORY[:TAG]
        reference: Option<String>,
        /// A Dockerfile instruction setting the config: CMD, ENTRYPOINT, ENV, WORKDIR, USER,
        /// LABEL, EXPOSE, VOLUME, STOPSIGNAL, ONBUILD
        #[arg(short, long, value_name = "INSTRUCTION")]
        change: Vec<String>,
        /// The comment of the image's history entry (default: "Imported from -")
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Pull an image from a registry
    Pull {
        /// Image reference: [REGISTRY/]REPOSITORY[:TAG|@DIGEST]
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
        /// Image name, id or id prefix in the store
        image: String,
        /// Destination reference (default: the image's name)
        dest: Option<String>,
        /// No output
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Add a name to an image
    Tag {
        /// Image name, id or id prefix
        image: String,
        /// The new name: [REGISTRY/]REPOSITORY:TAG
        name: String,
    },
    /// Load images from a docker-archive or OCI-layout tarball
    Load {
        /// Read the tarball from FILE instead of stdin
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Do not print the loaded images' names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save an image to a docker-archive or OCI-layout tarball
    Save {
        /// Image name, id or id prefix
        image: String,
        /// Write to FILE instead of stdout
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// docker-archive or oci-archive
        #[arg(long, default_value = "docker-archive")]
        format: String,
    },
}

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Make a bridge network (containers on it resolve each other's names)
    Create {
        /// Its IPv4 subnet (default: a free /16 of 172.18-31, else a /24 of 10.89)
        #[arg(long)]
        subnet: Option<String>,
        /// The bridge's address in the subnet (default: the first)
        #[arg(long)]
        gateway: Option<String>,
        /// No route out of the bridge
        #[arg(long)]
        internal: bool,
        /// An IPv6 subnet (unique-local /64) too
        #[arg(long)]
        ipv6: bool,
        /// bridge (the only driver)
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// The network's name
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only the ids
        #[arg(short, long)]
        quiet: bool,
        /// table (default), json, `table TEMPLATE` or a Go template (`{{.Name}}`)
        #[arg(long)]
        format: Option<String>,
    },
    /// Show networks in docker's layout, with the containers on them
    Inspect {
        /// json (default) or a Go template
        #[arg(short, long)]
        format: Option<String>,
        /// Network names, ids or id prefixes
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks no container is on
    #[command(alias = "remove")]
    Rm {
        /// Network names, ids or id prefixes
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Put a running container on one more network
    Connect {
        /// Another name of the container on that network (repeatable)
        #[arg(long = "alias")]
        alias: Vec<String>,
        /// Its address there
        #[arg(long)]
        ip: Option<String>,
        /// Network name, id or id prefix
        network: String,
        /// Container name, id or id prefix
        container: String,
    },
    /// Take a container off a network
    Disconnect {
        /// Accepted for docker's sake (disconnecting never needs forcing here)
        #[arg(short, long)]
        force: bool,
        /// Network name, id or id prefix
        network: String,
        /// Container name, id or id prefix
        container: String,
    },
    /// Remove every user-defined network no container is on
    Prune {
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum SystemCmd {
    /// Disk use of images, containers, volumes and build cache
    Df {
        /// table (default), json, `table TEMPLATE` or a Go template (`{{.Size}}`)
        #[arg(long)]
        format: Option<String>,
    },
    /// Remove stopped containers, images without a name and unused layers
    Prune {
        /// Also every image no container uses
        #[arg(short, long)]
        all: bool,
        /// Also every volume no container uses
        #[arg(long)]
        volumes: bool,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Show what happened to containers and images (as `husk events`)
    Events(EventsArgs),
}

#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Create a volume (a random name when none is given); prints its name
    Create {
        /// Volume driver: local, the only one
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// Driver option: type=tmpfs|none, o=MOUNT-OPTIONS, device=/HOST/DIR (with o=bind)
        #[arg(short, long = "opt", value_name = "KEY=VALUE")]
        opt: Vec<String>,
        /// Set a label KEY[=VALUE] on the volume
        #[arg(long, value_name = "KEY[=VALUE]")]
        label: Vec<String>,
        /// Volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)
        name: Option<String>,
    },
    /// List volumes
    #[command(visible_alias = "list")]
    Ls {
        /// Only volume names
        #[arg(short, long)]
        quiet: bool,
        /// dangling=true|false, name=SUBSTRING, driver=local, label=KEY[=VALUE] (repeatable)
        #[arg(short, long, value_name = "KEY=VALUE")]
        filter: Vec<String>,
        /// table (default), json, `table TEMPLATE` or a Go template (`{{.Name}}`)
        #[arg(long)]
        format: Option<String>,
    },
    /// Show volumes in docker's layout, as a JSON array or through a template
    Inspect {
        /// json (default) or a Go template (`{{.Mountpoint}}`)
        #[arg(short, long)]
        format: Option<String>,
        /// Volume names
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes no container uses
    #[command(visible_alias = "remove")]
    Rm {
        /// No error for a volume that does not exist (one in use still stays)
        #[arg(short, long)]
        force: bool,
        /// Volume names
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove every volume no container uses
    Prune {
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Args)]
pub struct EventsArgs {
    /// Only events from this time on: RFC 3339, Unix seconds, or a duration ago (10m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events until this time, then exit (same forms as --since)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// type=container|image|volume, event=ACTION, container=NAME|ID, image=NAME (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// json (one object a line) or a Go template (`{{.Action}} {{.Actor.ID}}`)
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args)]
pub struct ListArgs {
    /// table (default), json, `table TEMPLATE` or a Go template (`{{.Repository}}:{{.Tag}}`)
    #[arg(long)]
    pub format: Option<String>,
    /// Only image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Full image ids
    #[arg(long)]
    pub no_trunc: bool,
}

#[allow(clippy::large_enum_variant)] // as Cmd
#[derive(Subcommand)]
pub enum ImageCmd {
    #[command(flatten)]
    Op(ImageOp),
    /// List images
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Show images in docker's layout, as a JSON array or through a template
    Inspect {
        /// json (default) or a Go template (`{{.Id}}`, `{{json .RootFS}}`)
        #[arg(short, long)]
        format: Option<String>,
        /// Image names, ids or id prefixes
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images
    #[command(visible_alias = "remove")]
    Rm {
        /// Image names, ids or id prefixes
        #[arg(required = true)]
        images: Vec<String>,
        /// Also images exited containers use
        #[arg(short, long)]
        force: bool,
    },
    /// Remove unused layers and blobs (and, with --all, images without a name)
    Prune {
        /// Also images without a name
        #[arg(short, long)]
        all: bool,
    },
    /// Re-hash stored blobs and check unpacked layers; --repair removes what is corrupt
    Verify {
        /// Check only this image (name, id or id prefix); default the whole store
        image: Option<String>,
        /// Remove what is corrupt, so that the next pull fetches it again
        #[arg(long)]
        repair: bool,
    },
    /// Write the image's filesystem, flattened, into a directory
    Unpack {
        /// Image name, id or id prefix
        image: String,
        /// The directory to write into
        dir: PathBuf,
    },
    /// Print the image's layer directories (overlay lowerdirs, top first, joined by ':')
    Lowerdirs {
        /// Image name, id or id prefix
        image: String,
    },
    /// Print the process values (args, env, cwd, uid/gid) the image would run with
    Process {
        /// Image name, id or id prefix
        image: String,
        /// Flattened rootfs of the image to resolve the user in (default: resolve from layers)
        #[arg(long)]
        rootfs: Option<PathBuf>,
        /// User to run as: name|uid[:group|gid]
        #[arg(long)]
        user: Option<String>,
        /// Replace the image's entrypoint ("" clears it)
        #[arg(long)]
        entrypoint: Option<String>,
        /// Working directory
        #[arg(long)]
        workdir: Option<String>,
        /// Set an environment variable KEY=VALUE
        #[arg(short, long)]
        env: Vec<String>,
        /// The command and its arguments (default: the image's Cmd)
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
    /// Set an environment variable KEY=VALUE (a bare KEY takes husk's own value)
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
    /// A network's name (repeatable; default for root: `bridge`), none (own namespace,
    /// loopback only; rootless default), host, container:NAME (a running container's),
    /// pasta[:OPTION,...] or slirp4netns[:allow_host_loopback=true] (outbound through
    /// user-mode networking)
    #[arg(long = "network", alias = "net", value_name = "NETWORK")]
    pub network: Vec<String>,
    /// Another name of the container on its user-defined networks (repeatable)
    #[arg(long = "network-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// The container's IPv4 or IPv6 address on its (first, user-defined) network
    #[arg(long)]
    pub ip: Option<String>,
    /// The container's MAC address on its first network
    #[arg(long)]
    pub mac_address: Option<String>,
    /// Publish a port: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp], ranges as N-M
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes, each on a free host port
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Mount /HOST/DIR:DST, a volume NAME:DST (made on first use) or a new anonymous volume
    /// DST; options after a colon: ro|rw, [r]shared|[r]slave|[r]private (binds), nocopy, z, Z
    #[arg(short = 'v', long = "volume", value_name = "[SRC:]DST[:OPTIONS]")]
    pub volume: Vec<String>,
    /// Mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,bind-propagation=…]
    /// [,volume-nocopy][,tmpfs-size=…][,tmpfs-mode=…] (docker's syntax)
    #[arg(long = "mount", value_name = "KEY=VALUE,…")]
    pub mount: Vec<String>,
    /// Mount the container's root read-only
    #[arg(long)]
    pub read_only: bool,
    #[command(flatten)]
    pub more: Box<MoreRunArgs>,
    #[command(flatten)]
    pub host: Box<HostFlags>,
    #[command(flatten)]
    pub health: Box<HealthFlags>,
    #[command(flatten)]
    pub storage: Box<StorageFlags>,
    #[command(flatten)]
    pub reg: Box<RegistryArgs>,
    /// Image name, id or id prefix (pulled when not in the store)
    pub image: String,
    /// The command and its arguments (default: the image's Entrypoint and Cmd)
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
    /// no-new-privileges[=true|false], apparmor=unconfined|PROFILE (default: husk-default where
    /// AppArmor is on), seccomp=unconfined, seccomp=FILE (OCI or Docker form;
    /// without it, husk's built-in profile)
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// User namespace: host (default), auto[:size=N] (root: ids of its own from the husk
    /// user's /etc/subuid and /etc/subgid ranges), keep-id[:uid=N,gid=N] (rootless: your
    /// own uid and gid inside too, the default user)
    #[arg(long, value_name = "MODE", default_value = "host")]
    pub userns: String,
    /// Run a small init as PID 1 that forwards signals and reaps zombies
    #[arg(long)]
    pub init: bool,
    /// Signal that stops the container (name or number; default: the image's, or SIGTERM)
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Join this pod's network, IPC and UTS namespaces (its infra is started if need be)
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
}

/// `husk pod …`, as podman's.
#[derive(Subcommand)]
pub enum PodCmd {
    /// Create a pod (not started: its first container, or `pod start`, starts it); prints its id
    Create {
        /// Name of the pod (default: its short id)
        #[arg(long)]
        name: Option<String>,
        /// The pod's network: none, host, pasta[:OPTIONS] or slirp4netns[:allow_host_loopback=true]
        #[arg(long)]
        network: Option<String>,
        /// Set a label KEY[=VALUE] on the pod
        #[arg(short = 'l', long = "label", value_name = "KEY[=VALUE]")]
        label: Vec<String>,
        /// Publish a port of the pod: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]
        #[arg(short = 'p', long = "publish", value_name = "PORT")]
        publish: Vec<String>,
    },
    /// List pods
    #[command(alias = "list", alias = "ps")]
    Ls {
        /// Only pod ids
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate ids
        #[arg(long)]
        no_trunc: bool,
        /// table (default), json, `table TEMPLATE` or a Go template (`{{.ID}} {{.Name}}`)
        #[arg(long)]
        format: Option<String>,
    },
    /// Show pods as JSON: id, name, state, infra container, containers
    Inspect {
        /// Pod names, ids or id prefixes
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Start pods: the infra container, then every container of the pod
    Start {
        /// Pod names, ids or id prefixes
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Stop pods: every container, the infra last
    Stop {
        /// Seconds to wait for each container to exit before SIGKILL
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        /// Pod names, ids or id prefixes
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove pods with their containers
    Rm {
        /// Also running pods (their containers are killed)
        #[arg(short, long)]
        force: bool,
        /// Pod names, ids or id prefixes
        #[arg(required = true)]
        pods: Vec<String>,
    },
}

/// `husk kube …`, as podman's (crate::kube).
#[derive(Subcommand)]
pub enum KubeCmd {
    /// Run the pods of a Kubernetes manifest (Pod, Deployment, ConfigMap,
    /// PersistentVolumeClaim); prints the pods' ids
    Play(PlayArgs),
    /// Remove the pods a manifest made, with their containers (named volumes stay)
    Down {
        /// The manifest, or - for stdin
        file: String,
    },
    /// Print a pod (or a container, as a pod of its own) as a Kubernetes v1 Pod
    Generate {
        /// Pod or container name, id or id prefix
        what: String,
    },
}

#[derive(Args)]
pub struct PlayArgs {
    /// Remove pods of the same names first
    #[arg(long)]
    pub replace: bool,
    /// The manifest, or - for stdin
    pub file: String,
}

/// `husk play …`: podman's old spelling of `kube play`.
#[derive(Subcommand)]
pub enum PlayCmd {
    /// Same as `husk kube play`
    Kube(PlayArgs),
}

/// docker's HostConfig flags: labels, /etc files, namespaces, devices, limits (boxed as
/// [`MoreRunArgs`]).
#[derive(Args)]
pub struct HostFlags {
    /// Set a label KEY[=VALUE] on the container
    #[arg(short = 'l', long = "label", value_name = "KEY[=VALUE]")]
    pub label: Vec<String>,
    /// Add an OCI annotation KEY=VALUE to the container's spec
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Add a line to the container's /etc/hosts
    #[arg(long, value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Nameserver for the container's /etc/resolv.conf (replaces the host's)
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// Search domain for the container's /etc/resolv.conf ("." for none)
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// Resource limit NAME=SOFT[:HARD] (nofile, nproc, core, stack, memlock, …)
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Give the container a host device: HOST[:CONTAINER][:rwm]
    #[arg(long, value_name = "HOST[:CONTAINER][:rwm]")]
    pub device: Vec<String>,
    /// Set a namespaced kernel parameter NAME=VALUE (net.*, kernel.shm*, kernel.msg*, …)
    #[arg(long, value_name = "NAME=VALUE")]
    pub sysctl: Vec<String>,
    /// Add a supplementary group (name in the image's /etc/group, or id)
    #[arg(long, value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Size of /dev/shm (N[b|k|m|g]; default 64m)
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// Write the container's id to FILE (which must not exist)
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// PID namespace: host, or container:NAME to share another container's
    #[arg(long, value_name = "MODE")]
    pub pid: Option<String>,
    /// IPC namespace: private, shareable, host, or container:NAME
    #[arg(long, value_name = "MODE")]
    pub ipc: Option<String>,
    /// UTS namespace: host to use the host's name
    #[arg(long, value_name = "MODE")]
    pub uts: Option<String>,
    /// Cgroup namespace: private (default: /sys/fs/cgroup shows the container's own
    /// cgroup) or host (the host's cgroup paths)
    #[arg(long, value_name = "MODE")]
    pub cgroupns: Option<String>,
    /// CPUs the container may run on (0-3,5)
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Relative CPU weight (2 to 262144; 1024 is the default share)
    #[arg(long, value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// Memory plus swap limit (N[b|k|m|g]; -1: unlimited swap); needs --memory
    #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit (N[b|k|m|g])
    #[arg(long, value_name = "SIZE")]
    pub memory_reservation: Option<String>,
    /// The container's OOM score adjustment (-1000 to 1000)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub oom_score_adj: Option<i32>,
    /// When to pull the image: always, missing (default), never
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<String>,
    /// Forward the signals husk gets to the container (foreground, without -t)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Log rotation of a detached container: max-size=SIZE, max-file=N (docker's json-file)
    #[arg(long, value_name = "OPT")]
    pub log_opt: Vec<String>,
    /// os/arch[/variant] to pull from a multi-platform image
    #[arg(long)]
    pub platform: Option<String>,
}

/// `husk healthcheck`'s commands.
#[derive(Subcommand)]
pub enum HealthcheckCmd {
    /// Run a container's health check once and record it: exit 0 when healthy, 1 when
    /// not (printing the status), 125 when it cannot run (as podman)
    Run {
        /// Container name, id or id prefix
        container: String,
    },
}

/// Limits of the container's writable layer (boxed as [`MoreRunArgs`]).
#[derive(Args)]
pub struct StorageFlags {
    /// size=SIZE: limit what the container writes to its root filesystem (a project quota:
    /// the store on xfs, or ext4 with project quotas, mounted with prjquota)
    #[arg(long, value_name = "size=SIZE")]
    pub storage_opt: Vec<String>,
    /// Keep the container's writable layer on a tmpfs of SIZE: nothing it writes to its
    /// root filesystem touches the disk (lost when the machine restarts)
    #[arg(long, value_name = "SIZE")]
    pub rootfs_tmpfs: Option<String>,
}

/// Health checks (boxed as [`MoreRunArgs`]).
#[derive(Args)]
pub struct HealthFlags {
    /// Command that checks the container's health (run with /bin/sh -c inside it)
    #[arg(long, value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    /// Time between checks (default 30s)
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Failures in a row that make the container unhealthy (default 3)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub health_retries: Option<i64>,
    /// Time a check may take before it counts as failed (default 30s)
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Time after the start during which failures do not count (default 0s)
    #[arg(long, value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// No health check, not even the image's
    #[arg(long)]
    pub no_healthcheck: bool,
}

/// `husk exec`'s options.
#[derive(clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub process: ProcessFlags,
    /// Container name, id or id prefix
    pub container: String,
    /// The command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
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
        } else if !a.starts_with('-') && a != "container" && a != "image" {
            // `husk container run` is `husk run`.
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
        // The groups are not the command: `husk container run` exits as `husk run` does.
        assert_eq!(
            subcommand(&a(&["husk", "container", "run", "img"])),
            Some("run")
        );
        assert_eq!(subcommand(&a(&["husk", "image", "ls"])), Some("ls"));
    }

    /// Every command's options and arguments have a description; the global options are
    /// listed once, in `husk --help`, not again in each command's.
    #[test]
    fn every_option_and_argument_is_described() {
        use clap::CommandFactory;
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments().filter(|a| !a.is_hide_set()) {
                if a.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("{path} {}", a.get_id()));
                }
                if path != "husk"
                    && ["root", "config", "default_registry"].contains(&a.get_id().as_str())
                {
                    missing.push(format!("{path}: global option {} repeated", a.get_id()));
                }
            }
            for s in c.get_subcommands() {
                walk(s, &format!("{path} {}", s.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "husk", &mut missing);
        assert!(missing.is_empty(), "without a description: {missing:#?}");
        let help = cmd
            .find_subcommand_mut("ps")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!help.contains("--root"), "{help}");
    }
}

/// `husk build`: buildah's and docker's flags.
#[derive(Args)]
pub struct BuildArgs {
    /// The build context: the directory COPY and ADD read from
    pub context: PathBuf,
    /// The Containerfile (default: CONTEXT/Containerfile, else CONTEXT/Dockerfile); - for stdin
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<String>,
    /// Name the image [REGISTRY/]REPOSITORY[:TAG] (repeatable)
    #[arg(short, long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// An ARG's value, KEY=VALUE (KEY alone: from the environment) (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub build_arg: Vec<String>,
    /// Build up to this stage (name or index; default: the last)
    #[arg(long)]
    pub target: Option<String>,
    /// Build every step again, without the cache
    #[arg(long)]
    pub no_cache: bool,
    /// Base images: pull always, when missing (default) or never
    #[arg(long, default_value = "missing", value_name = "POLICY")]
    pub pull: String,
    /// os/arch[/variant] of the base images
    #[arg(long)]
    pub platform: Option<String>,
    /// A label on the image, KEY=VALUE (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// RUN's network: a bridge network's name (default: bridge, as husk run; rootless:
    /// rootless husk run's default), none or host
    #[arg(long)]
    pub network: Option<String>,
    /// RUN's seccomp filter: seccomp=unconfined or seccomp=FILE (default: husk run's)
    #[arg(long, value_name = "seccomp=unconfined|FILE")]
    pub security_opt: Vec<String>,
    /// A secret for RUN --mount=type=secret: id=ID,src=PATH (repeatable)
    #[arg(long, value_name = "id=ID,src=PATH")]
    pub secret: Vec<String>,
    /// Write the image id to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Print only the image id
    #[arg(short, long)]
    pub quiet: bool,
    /// Seconds since the epoch for every time in the image (default: $SOURCE_DATE_EPOCH):
    /// the same inputs then give the same image digest
    #[arg(long, value_name = "SECONDS")]
    pub timestamp: Option<i64>,
    /// Layer compression: gzip (default) or zstd
    #[arg(long, default_value = "gzip")]
    pub compression: String,
    #[command(flatten)]
    pub reg: RegistryArgs,
}
