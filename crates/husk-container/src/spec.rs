//! Loading and checking a bundle's config.json.

use crate::error::{Error, IoContext, Result};
use oci_spec::runtime::{Process, Spec};
use std::path::{Path, PathBuf};

pub struct Bundle {
    /// Absolute bundle directory.
    pub path: PathBuf,
    pub spec: Spec,
    /// Absolute, symlink-free host path of the rootfs.
    pub rootfs: PathBuf,
    /// What loading it ignored (unknown capability names), for the caller to warn about.
    pub warnings: Vec<String>,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        let path = std::fs::canonicalize(dir).ctx("opening bundle", dir)?;
        let config = path.join("config.json");
        let data = std::fs::read(&config).ctx("reading", &config)?;
        // Unknown properties are ignored, as the runtime spec requires; malformed ones are not.
        let (spec, warnings) = parse_spec(&data).map_err(|e| Error::Spec {
            path: config.clone(),
            msg: e.to_string(),
        })?;
        let rootfs = validate(&spec, &path)?;
        Ok(Bundle {
            path,
            spec,
            rootfs,
            warnings: warnings.into_iter().collect(),
        })
    }
}

/// A config.json, read as runc reads it: capability names it does not know are dropped,
/// with the warning to give (see `capabilities::drop_unknown`).
pub fn parse_spec(data: &[u8]) -> serde_json::Result<(Spec, Option<String>)> {
    parse_lenient(data, "/process")
}

/// A `process` object (`exec --process`), read as [`parse_spec`] reads a config.json.
pub fn parse_process(data: &[u8]) -> serde_json::Result<(Process, Option<String>)> {
    parse_lenient(data, "")
}

fn parse_lenient<T: serde::de::DeserializeOwned>(
    data: &[u8],
    process_at: &str,
) -> serde_json::Result<(T, Option<String>)> {
    let mut value: serde_json::Value = serde_json::from_slice(data)?;
    let warning = value
        .pointer_mut(process_at)
        .and_then(crate::capabilities::drop_unknown);
    // A malformed document is reported from the text, with its line and column.
    serde_json::from_value(value)
        .or_else(|_| serde_json::from_slice(data))
        .map(|parsed| (parsed, warning))
}

fn validate(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let bad = |m: String| Err(Error::InvalidConfig(m));
    if !spec.version().starts_with("1.") {
        return bad(format!(
            "unsupported ociVersion {:?} (this runtime implements 1.x)",
            spec.version()
        ));
    }
    let Some(root) = spec.root() else {
        return bad("root.path is missing".into());
    };
    let rootfs = bundle.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs).ctx("opening rootfs", &rootfs)?;
    if !rootfs.is_dir() {
        return bad(format!("rootfs {} is not a directory", rootfs.display()));
    }
    let Some(process) = spec.process() else {
        return bad("process is missing".into());
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return bad("process.args must not be empty".into());
    }
    if !process.cwd().is_absolute() {
        return bad(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd()
        ));
    }
    if spec.linux().is_none() {
        return bad("linux is missing: this runtime runs Linux containers".into());
    }
    if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        crate::seccomp::validate(s)?;
    }
    Ok(rootfs)
}
