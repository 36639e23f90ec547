//! [`Engine`]: the store root, settings and default registry every operation works in. The
//! operations themselves are `impl Engine` blocks in the modules that own them (run.rs,
//! containers.rs, images.rs), so this module depends on none of them.

use husk_image::auth::{self, Credentials};
use husk_image::registry::ClientOptions;
use husk_image::settings::Settings;
use husk_image::store::Store;
use husk_image::Reference;
use std::path::{Path, PathBuf};

/// Opening the store, reading the settings, naming a registry or an image.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Image(#[from] husk_image::Error),
    #[error("--creds must be USER:PASSWORD")]
    Creds,
    #[error("settings: dns {0:?} is not an IP address")]
    SettingsDns(String),
    /// husk-container's selfexe says why in words (it returns them as a string).
    #[error("{0}")]
    ProtectExecutable(String),
}

type Result<T> = std::result::Result<T, EngineError>;

/// Where the engine keeps its images and containers, and how it reaches registries.
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    /// Image store root (default /var/lib/husk, or $XDG_DATA_HOME/husk when not root).
    pub root: Option<PathBuf>,
    /// Configuration file (JSON, husk_image::settings).
    pub config: Option<PathBuf>,
    /// Registry for references without one (default docker.io, or the config's).
    pub default_registry: Option<String>,
    /// Who makes the cgroups of the containers this engine runs (default cgroupfs; a CLI
    /// picks [`crate::cgroup_place::default_manager`] when none is asked for).
    pub cgroup_manager: CgroupManager,
}

/// podman's `--cgroup-manager`: husk writes the cgroup files itself (cgroupfs, containers
/// under /husk-engine/ID), or asks systemd for a transient scope per container (systemd,
/// `machine.slice/husk-ID.scope`, as podman's `machine.slice/libpod-ID.scope`; cgroup v2).
/// Rootless, both go into the user's delegated subtree: [`crate::cgroup_place`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CgroupManager {
    /// The default: it needs no systemd, and runs the same on every host layout.
    #[default]
    Cgroupfs,
    Systemd,
}

impl CgroupManager {
    /// The name recorded with a container (and taken by `--cgroup-manager`).
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupManager::Cgroupfs => "cgroupfs",
            CgroupManager::Systemd => "systemd",
        }
    }
}

/// How to talk to one registry: TLS, CA certificates, credentials.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Allow plain http and skip TLS verification.
    pub insecure: bool,
    /// `Some(false)` is the same as `insecure`.
    pub tls_verify: Option<bool>,
    /// Directory with CA certificates (*.crt), also searched per registry (DIR/HOST:PORT).
    pub cert_dir: Option<PathBuf>,
    /// Credentials file (docker config.json / podman auth.json format).
    pub authfile: Option<PathBuf>,
    /// Credentials as USER:PASSWORD.
    pub creds: Option<String>,
}

/// The engine: one image store and its containers. Cheap to make; holds no open files.
pub struct Engine {
    pub(crate) settings: Settings,
    pub(crate) root: PathBuf,
    pub(crate) default_registry: String,
    pub(crate) cgroup_manager: CgroupManager,
    /// Where the engine says what it did differently from what was asked (default: a
    /// "warning: " line on stderr).
    pub(crate) warn: Box<dyn Fn(&str)>,
}

impl Engine {
    pub fn new(o: EngineOptions) -> Result<Engine> {
        let settings = Settings::load(o.config.as_deref())?;
        let root = o
            .root
            .or_else(|| settings.root.clone())
            .unwrap_or_else(husk_image::store::default_root);
        let default_registry = o
            .default_registry
            .unwrap_or_else(|| settings.default_registry().to_string());
        Ok(Engine {
            settings,
            root,
            default_registry,
            cgroup_manager: o.cgroup_manager,
            warn: Box::new(|msg| {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "warning: {msg}");
            }),
        })
    }

    /// Send the engine's warnings (e.g. a rootfs copied because overlay cannot be mounted)
    /// to `f` instead of stderr.
    pub fn on_warning(&mut self, f: impl Fn(&str) + 'static) {
        self.warn = Box::new(f);
    }

    /// The store root (images, layers, containers/).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn default_registry(&self) -> &str {
        &self.default_registry
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> Result<Store> {
        Ok(Store::open(&self.root)?)
    }

    /// The client options for `registry`: the caller's, else the settings'.
    pub fn client(&self, registry: &str, a: &RegistryOptions) -> Result<ClientOptions> {
        let insecure =
            a.insecure || a.tls_verify == Some(false) || self.settings.is_insecure(registry);
        let credentials = match &a.creds {
            Some(c) => {
                let (u, p) = c.split_once(':').ok_or(EngineError::Creds)?;
                Some(Credentials {
                    username: u.into(),
                    password: p.into(),
                })
            }
            None => None,
        };
        Ok(ClientOptions {
            insecure,
            cert_dir: a
                .cert_dir
                .clone()
                .or_else(|| self.settings.cert_dir.clone())
                .or_else(|| Some(husk_image::settings::default_cert_dir())),
            credentials,
            auth_files: auth::auth_search_path(self.auth_file(a).as_deref()),
        })
    }

    /// The credentials file the caller named, else the settings', else ROOT/auth.json for
    /// a store root that is not the default one: such a root (a test's, a CI job's, another
    /// program's) keeps its logins to itself, out of the user's home, and does not read the
    /// user's. None: the default search (husk's file in the user's config dir, then
    /// podman's and docker's).
    pub(crate) fn auth_file(&self, a: &RegistryOptions) -> Option<PathBuf> {
        a.authfile
            .clone()
            .or_else(|| self.settings.auth_file.clone())
            .or_else(|| {
                (self.root != husk_image::store::default_root())
                    .then(|| self.root.join("auth.json"))
            })
    }

    /// Where `login` stores credentials and `logout` forgets them.
    pub(crate) fn login_file(&self, a: &RegistryOptions) -> PathBuf {
        self.auth_file(a).unwrap_or_else(auth::default_auth_file)
    }

    pub fn parse_ref(&self, s: &str) -> Result<Reference> {
        Ok(Reference::parse_with_default(s, &self.default_registry)?)
    }
}
