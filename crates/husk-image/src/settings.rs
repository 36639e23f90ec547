//! husk's own configuration file (JSON): store root, default registry, insecure registries,
//! certificate directory and credentials file; the engine's default bridge subnet and
//! nameservers.
//!
//! Looked up at `$HUSK_CONFIG`, else `/etc/husk/husk.json` for root and
//! `$XDG_CONFIG_HOME/husk/husk.json` (or `~/.config/husk/husk.json`) otherwise.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(default, rename_all = "snake_case")]
pub struct Settings {
    pub root: Option<PathBuf>,
    pub default_registry: Option<String>,
    pub insecure_registries: Vec<String>,
    pub cert_dir: Option<PathBuf>,
    pub auth_file: Option<PathBuf>,
    pub max_concurrent_downloads: Option<usize>,
    /// Most file bytes one layer may unpack to (default 64 GiB).
    pub max_layer_bytes: Option<u64>,
    /// Most entries one layer may hold (default 10 million).
    pub max_layer_entries: Option<u64>,
    /// The engine's default bridge network's subnet (default 172.17.0.0/16, or a free one
    /// when a route of the host overlaps it).
    pub bridge_subnet: Option<String>,
    /// Nameservers for containers instead of the host's (docker's daemon.json `dns`).
    pub dns: Vec<String>,
}

fn config_home() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("/etc"))
}

pub fn default_config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HUSK_CONFIG").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if crate::fsutil::is_root() {
        PathBuf::from("/etc/husk/husk.json")
    } else {
        config_home().join("husk/husk.json")
    }
}

pub fn default_cert_dir() -> PathBuf {
    if crate::fsutil::is_root() {
        PathBuf::from("/etc/husk/certs.d")
    } else {
        config_home().join("husk/certs.d")
    }
}

impl Settings {
    /// Load from `path` (or the default path); a missing file gives defaults.
    pub fn load(path: Option<&Path>) -> Result<Settings> {
        let p = path
            .map(Path::to_path_buf)
            .unwrap_or_else(default_config_path);
        match std::fs::read(&p) {
            Ok(d) => serde_json::from_slice(&d)
                .map_err(|e| Error::invalid(format!("config {}", p.display()), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.is_none() => {
                Ok(Settings::default())
            }
            Err(e) => Err(Error::io("reading config", p, e)),
        }
    }

    pub fn default_registry(&self) -> &str {
        self.default_registry
            .as_deref()
            .unwrap_or(crate::reference::DOCKER_HUB)
    }

    /// The per-layer unpack limits: these settings over the defaults.
    pub fn unpack_limits(&self) -> crate::unpack::UnpackLimits {
        let d = crate::unpack::UnpackLimits::default();
        crate::unpack::UnpackLimits {
            max_bytes: self.max_layer_bytes.unwrap_or(d.max_bytes),
            max_entries: self.max_layer_entries.unwrap_or(d.max_entries),
        }
    }

    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure_registries.iter().any(|r| r == registry)
    }
}
