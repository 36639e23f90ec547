//! runc's command line: the same global flags, subcommands, flags and defaults.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "husk-runtime",
    about = "husk-runtime: a fast, runc-compatible OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for container state [default: /run/husk, rootless: $XDG_RUNTIME_DIR/husk]
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Also write errors (and with --debug, debug lines) to this file
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of the --log file
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug information
    #[arg(long, global = true)]
    pub debug: bool,
    /// Manage cgroups through systemd: cgroupsPath is slice:prefix:name, the cgroup a transient scope (cgroup v2)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (auto: rootless when not run as root)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_enum)]
    pub rootless: Option<Rootless>,
    /// Path to criu, for checkpoint and restore [default: criu in PATH, /usr/sbin/criu]
    #[arg(long, global = true)]
    pub criu: Option<PathBuf>,
    /// Print the version
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rootless {
    True,
    False,
    Auto,
}

impl Rootless {
    /// Whether to run rootless: `auto` (and no flag) means when this process is not root.
    pub fn resolve(mode: Option<Rootless>) -> bool {
        match mode.unwrap_or(Rootless::Auto) {
            Rootless::True => true,
            Rootless::False => false,
            Rootless::Auto => husk_container::rootless::is_unprivileged(),
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `run`: create's arguments and what happens after the start.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return after start instead of waiting for the container to exit
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
    /// Do not become a subreaper for the container's processes
    #[arg(long)]
    pub no_subreaper: bool,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Container id
    pub id: String,
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's init pid to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for roots on ramfs)
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container's process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container; its process waits for `start`
    Create(CreateArgs),
    /// Run the created container's process
    Start { id: String },
    /// Create and start a container
    Run(RunArgs),
    /// Print the state of a container as JSON
    State { id: String },
    /// Send a signal to the container's init (default SIGTERM)
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Send the signal to every process of the container
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Delete a container's state (and, with --force, the running container)
    Delete {
        id: String,
        /// Kill the container first if it is running or paused
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// List containers
    List {
        #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only the ids
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json in the bundle
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// A config that runs as an unprivileged user
        #[arg(long)]
        rootless: bool,
    },
    /// Print the features this runtime implements (runtime-spec features.md)
    Features,
    /// Suspend every process of the container
    Pause { id: String },
    /// Resume a paused container
    Resume { id: String },
    /// List the container's processes
    Ps(crate::cgroup_commands::PsArgs),
    /// Change the container's resource limits
    Update(Box<crate::cgroup_commands::UpdateArgs>),
    /// Print the container's statistics and OOM events as JSON
    Events(crate::cgroup_commands::EventsArgs),
    /// Run a process in a running container
    Exec(Box<crate::exec_command::ExecArgs>),
    /// Checkpoint a running container with CRIU
    Checkpoint(Box<crate::checkpoint_command::CheckpointArgs>),
    /// Restore a container from a CRIU checkpoint
    Restore(Box<crate::checkpoint_command::RestoreArgs>),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}
