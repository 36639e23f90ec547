//! Registry credentials: docker's `config.json`, podman's `auth.json` and husk's own file
//! (same `{"auths": {"host": {"auth": base64("user:pass")}}}` format), and `login`/`logout`.

use crate::error::{Error, IoContext, Result};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}:***)", self.username)
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// husk's own credentials file (written by `husk login`).
pub fn default_auth_file() -> PathBuf {
    if let Some(p) = env_path("HUSK_AUTH_FILE") {
        return p;
    }
    let cfg = env_path("XDG_CONFIG_HOME")
        .or_else(|| env_path("HOME").map(|h| h.join(".config")))
        .unwrap_or_else(|| PathBuf::from("/root/.config"));
    cfg.join("husk/auth.json")
}

/// Every file credentials are looked up in, first match wins.
pub fn auth_search_path(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = explicit {
        v.push(p.to_path_buf());
        return v;
    }
    v.push(default_auth_file());
    if let Some(p) = env_path("REGISTRY_AUTH_FILE") {
        v.push(p);
    }
    if let Some(r) = env_path("XDG_RUNTIME_DIR") {
        v.push(r.join("containers/auth.json"));
    }
    let home = env_path("HOME");
    if let Some(h) = &home {
        v.push(h.join(".config/containers/auth.json"));
    }
    if let Some(d) = env_path("DOCKER_CONFIG") {
        v.push(d.join("config.json"));
    } else if let Some(h) = &home {
        v.push(h.join(".docker/config.json"));
    }
    v
}

fn registry_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == "docker.io" {
        keys.push("https://index.docker.io/v1/".to_string());
        keys.push("registry-1.docker.io".to_string());
    }
    keys
}

fn read_auth_file(path: &Path) -> Result<Option<AuthFile>> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).map(Some).map_err(|e| {
            Error::invalid(
                format!("credentials file {}", path.display()),
                e.to_string(),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading credentials", path, e)),
    }
}

fn decode_entry(e: &AuthEntry) -> Option<Credentials> {
    if let Some(a) = &e.auth {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        return Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        });
    }
    match (&e.username, &e.password) {
        (Some(u), Some(p)) => Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        }),
        _ => None,
    }
}

/// Look up credentials for a registry host in the given files (first match wins).
pub fn lookup(registry: &str, files: &[PathBuf]) -> Result<Option<Credentials>> {
    let keys = registry_keys(registry);
    for f in files {
        let Some(af) = read_auth_file(f)? else {
            continue;
        };
        for k in &keys {
            if let Some(c) = af.auths.get(k).and_then(decode_entry) {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

/// Store credentials for a registry (atomically, mode 0600).
pub fn store(path: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    let mut af = read_auth_file(path)?.unwrap_or_default();
    let raw = format!("{}:{}", creds.username, creds.password);
    af.auths.insert(
        registry.to_string(),
        AuthEntry {
            auth: Some(base64::engine::general_purpose::STANDARD.encode(raw)),
            ..Default::default()
        },
    );
    write_auth_file(path, &af)
}

/// Remove credentials; returns whether there were any.
pub fn remove(path: &Path, registry: &str) -> Result<bool> {
    let Some(mut af) = read_auth_file(path)? else {
        return Ok(false);
    };
    let mut removed = false;
    for k in registry_keys(registry) {
        removed |= af.auths.remove(&k).is_some();
    }
    if removed {
        write_auth_file(path, &af)?;
    }
    Ok(removed)
}

fn write_auth_file(path: &Path, af: &AuthFile) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx("creating directory", dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let data = serde_json::to_vec_pretty(af).expect("serializable");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .ctx("creating", &tmp)?;
    f.write_all(&data).ctx("writing", &tmp)?;
    f.sync_all().ctx("syncing", &tmp)?;
    std::fs::rename(&tmp, path).ctx("renaming", path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_lookup_remove() {
        let dir = std::env::temp_dir().join(format!("husk-auth-test-{}", std::process::id()));
        let f = dir.join("auth.json");
        let c = Credentials {
            username: "u".into(),
            password: "p:w".into(),
        };
        store(&f, "127.0.0.1:5000", &c).unwrap();
        assert_eq!(
            lookup("127.0.0.1:5000", std::slice::from_ref(&f)).unwrap(),
            Some(c)
        );
        assert_eq!(
            lookup("127.0.0.1:5001", std::slice::from_ref(&f)).unwrap(),
            None
        );
        assert!(remove(&f, "127.0.0.1:5000").unwrap());
        assert_eq!(
            lookup("127.0.0.1:5000", std::slice::from_ref(&f)).unwrap(),
            None
        );
        // docker's format with other keys is preserved and read
        std::fs::write(
            &f,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"YTpi"}},"credsStore":"x"}"#,
        )
        .unwrap();
        let got = lookup("docker.io", std::slice::from_ref(&f))
            .unwrap()
            .unwrap();
        assert_eq!((got.username.as_str(), got.password.as_str()), ("a", "b"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
