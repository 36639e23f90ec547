//! `husk build`: images from a Containerfile, as buildah and docker make them.
//!
//! - [`parse`]: the Containerfile's text → instructions (pure), errors "FILE:LINE: …";
//! - [`args`]: variable expansion and the scope rules of ARG and ENV;
//! - [`ignore`]: `.containerignore` / `.dockerignore` patterns, and the glob matcher;
//! - [`stages`]: multi-stage builds, `--target`, the stages a target needs;
//! - [`exec`]: the build itself, one stage after another, one step after another;
//! - [`work`]: a step's overlay (the parent's layers + a fresh upper dir) and its undo;
//! - [`run`]: a RUN step as a container of the runtime library, with its `--mount`s;
//! - [`net`]: a RUN step on a bridge network: its namespace, netavark's setup, the undo;
//! - [`copy`]: COPY and ADD (context, other stages, images, local tars, URLs), every path
//!   resolved inside its root;
//! - [`cache`]: the build cache: a step's key → the image state after it.
//!
//! The filesystem change of a step becomes a layer through [`crate::layer`] (the same code
//! as `husk commit`).

pub mod args;
pub mod cache;
pub mod copy;
pub mod exec;
pub mod ignore;
pub mod layer_bridge;
pub mod net;
pub mod parse;
pub mod run;
pub mod stages;
pub mod work;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use exec::BuildOutcome;

/// Where a RUN step's network comes from (`--network`, `RUN --network=`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RunNetwork {
    /// What `husk run` gives a container by default: root's default bridge network;
    /// rootless, the network rootless `husk run` defaults to (see [`RunNetwork::resolved`]).
    #[default]
    Default,
    /// Its own namespace with only loopback.
    None,
    /// The host's.
    Host,
    /// A bridge network by name (`bridge`: the default one), set up through netavark for
    /// the step and torn down after it ([`net`]).
    Bridge(String),
}

impl RunNetwork {
    /// `none`, `host`, or a network's name (`bridge`, a user network).
    pub fn parse(s: &str) -> Result<RunNetwork, BuildError> {
        match s {
            "none" => Ok(RunNetwork::None),
            "host" => Ok(RunNetwork::Host),
            "default" => Ok(RunNetwork::Default),
            n if crate::network::store::valid_name(n) => Ok(RunNetwork::Bridge(n.into())),
            n => Err(BuildError::RunNetwork(n.to_string())),
        }
    }

    /// [`RunNetwork::Default`] made concrete as `husk run` decides it
    /// ([`crate::config::default_network`]).
    pub fn resolved(&self) -> RunNetwork {
        match self {
            RunNetwork::Default => match crate::config::default_network(false).as_str() {
                "none" => RunNetwork::None,
                "host" => RunNetwork::Host,
                n => RunNetwork::Bridge(n.into()),
            },
            n => n.clone(),
        }
    }
}

/// Everything `husk build` was asked.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// The build context (a directory).
    pub context: PathBuf,
    /// `-f`: the Containerfile (None: CONTEXT/Containerfile, else CONTEXT/Dockerfile).
    pub file: Option<PathBuf>,
    /// The Containerfile's text given directly (`-f -`: read from stdin by the caller).
    pub file_text: Option<String>,
    /// `-t`: names for the image.
    pub tags: Vec<String>,
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: crate::host_config::PullPolicy,
    /// `--platform os/arch[/variant]` of the base images.
    pub platform: Option<String>,
    /// `--label K=V`: on the final image.
    pub labels: Vec<(String, String)>,
    pub network: RunNetwork,
    /// `--security-opt seccomp=unconfined|FILE`: RUN's seccomp filter (default: the one
    /// `husk run` gives a container).
    pub seccomp: crate::spec_from_image::flags::Seccomp,
    /// `--secret id=ID,src=PATH`.
    pub secrets: BTreeMap<String, PathBuf>,
    pub iidfile: Option<PathBuf>,
    /// `-q`: print only the image id.
    pub quiet: bool,
    /// `--timestamp` / SOURCE_DATE_EPOCH: every time in the image (config, history, file
    /// times in new layers) set to this, so that the same inputs give the same digest.
    pub timestamp: Option<i64>,
    /// `--compression zstd` (default gzip).
    pub zstd: bool,
    pub registry: crate::engine::RegistryOptions,
}

/// What can go wrong in a build, each naming where.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] parse::ParseError),
    /// A step that cannot be done: "Containerfile:LINE: why".
    #[error("{file}:{line}: {msg}")]
    Step {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("{file}: {source}")]
    Stages {
        file: String,
        #[source]
        source: stages::StageError,
    },
    #[error("{0}")]
    Ignore(#[from] ignore::IgnoreError),
    /// A RUN whose command failed.
    #[error("{file}:{line}: {step}: {cmd:?} exited with status {code}")]
    RunFailed {
        file: String,
        line: usize,
        step: String,
        cmd: String,
        code: i32,
    },
    #[error("no Containerfile or Dockerfile in {}", .0.display())]
    NoFile(PathBuf),
    #[error("the build context {}: {source}", path.display())]
    Context {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--secret {0:?}: expected id=ID,src=PATH")]
    Secret(String),
    #[error("--network {0:?}: none, host or a network's name")]
    RunNetwork(String),
    /// A RUN's --mount.
    #[error("{file}:{line}: {source}")]
    RunMount {
        file: String,
        line: usize,
        #[source]
        source: run::RunMountError,
    },
    /// A HEALTHCHECK's --interval, --timeout, --start-period or --start-interval.
    #[error("{file}:{line}: HEALTHCHECK --{flag}: {source}")]
    Duration {
        file: String,
        line: usize,
        flag: &'static str,
        #[source]
        source: exec::DurationError,
    },
    /// ADD of a URL.
    #[error("{file}:{line}: ADD {url}: {source}")]
    Download {
        file: String,
        line: usize,
        url: String,
        #[source]
        source: exec::DownloadError,
    },
    #[error("the build was interrupted")]
    Interrupted,
}

impl BuildError {
    /// The exit status of a `husk build` that failed this way: a failed RUN's own (as
    /// buildah), else docker's 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::RunFailed { code, .. } if *code > 0 && *code < 256 => *code,
            _ => crate::exit_status::ENGINE,
        }
    }
}

/// `--secret id=ID,src=PATH` (also `type=file`, `source=`, `env=` not supported).
pub fn parse_secret(s: &str) -> Result<(String, PathBuf), BuildError> {
    let (mut id, mut src) = (None, None);
    for kv in s.split(',') {
        match kv.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("type", "file")) => {}
            _ => return Err(BuildError::Secret(s.into())),
        }
    }
    match (id, src) {
        (Some(i), Some(p)) if !i.is_empty() => Ok((i, p)),
        _ => Err(BuildError::Secret(s.into())),
    }
}
