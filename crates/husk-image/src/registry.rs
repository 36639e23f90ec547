//! Registry client (OCI distribution spec), blocking, over ureq + rustls.
//!
//! Auth: anonymous or credentialed bearer tokens from a `WWW-Authenticate: Bearer` challenge,
//! or HTTP basic. Plain http only for loopback registries or when `insecure` is set.

use crate::auth::Credentials;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ureq::http;

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest or config we accept into memory.
pub const MAX_MANIFEST_SIZE: u64 = 8 << 20;

#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Allow plain http and skip TLS verification (like podman's `--tls-verify=false`).
    pub insecure: bool,
    /// Directory of extra CA certificates: `DIR/*.crt`, and `DIR/<registry>/*.crt`.
    pub cert_dir: Option<PathBuf>,
    /// Explicit credentials (override the credential files).
    pub credentials: Option<Credentials>,
    /// Credential files searched when `credentials` is None.
    pub auth_files: Vec<PathBuf>,
}

/// One registry host.
pub struct Registry {
    host: String,
    endpoint: String,
    agent: ureq::Agent,
    http_allowed: bool,
    scheme: Mutex<Option<&'static str>>,
    creds: Option<Credentials>,
    /// Authorization header per scope (bearer) or for all (basic, key "").
    auth: Mutex<HashMap<String, String>>,
}

pub type Response = http::Response<ureq::Body>;

pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path),
}

fn load_certs(dir: &Path, out: &mut Vec<ureq::tls::Certificate<'static>>) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("reading cert dir", dir, e)),
    };
    let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    for p in names {
        let is_ca = p.extension().is_some_and(|e| e == "crt" || e == "pem");
        if !is_ca || !p.is_file() {
            continue;
        }
        let data = std::fs::read(&p).ctx("reading certificate", &p)?;
        for item in ureq::tls::parse_pem(&data) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => out.push(c),
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::invalid(
                        format!("certificate {}", p.display()),
                        e.to_string(),
                    ))
                }
            }
        }
    }
    Ok(())
}

fn percent_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Parse `Scheme k="v", k2=v2` into (scheme, params).
pub fn parse_challenge(h: &str) -> Option<(String, HashMap<String, String>)> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key = rest[ks..i].trim().to_ascii_lowercase();
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i] as char);
                i += 1;
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = rest[vs..i].trim().to_string();
        }
        params.insert(key, val);
    }
    Some((scheme.to_ascii_lowercase(), params))
}

fn registry_error(status: u16, mut resp: Response) -> Error {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Es {
        errors: Vec<E>,
    }
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .unwrap_or_default();
    if let Ok(es) = serde_json::from_slice::<Es>(&body) {
        if let Some(e) = es.errors.into_iter().next() {
            let message = if e.message.is_empty() {
                e.code.to_lowercase().replace('_', " ")
            } else {
                e.message
            };
            return Error::Registry {
                status,
                code: e.code,
                message,
            };
        }
    }
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error");
    Error::Registry {
        status,
        code: String::new(),
        message: format!("registry answered {status} {}", reason.to_lowercase()),
    }
}

impl Registry {
    pub fn new(host: &str, opts: &ClientOptions) -> Result<Arc<Self>> {
        let mut certs = Vec::new();
        if let Some(dir) = &opts.cert_dir {
            load_certs(dir, &mut certs)?;
            load_certs(&dir.join(host), &mut certs)?;
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if !certs.is_empty() {
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        if opts.insecure {
            tls = tls.disable_verification(true);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .max_redirects(5)
            .user_agent(concat!("husk/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let creds = match &opts.credentials {
            Some(c) => Some(c.clone()),
            None => crate::auth::lookup(host, &opts.auth_files)?,
        };
        let endpoint = if host == crate::reference::DOCKER_HUB {
            "registry-1.docker.io".to_string()
        } else {
            host.to_string()
        };
        Ok(Arc::new(Registry {
            host: host.to_string(),
            endpoint,
            agent,
            http_allowed: opts.insecure || crate::reference::is_loopback_host(host),
            scheme: Mutex::new(None),
            creds,
            auth: Mutex::new(HashMap::new()),
        }))
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_string();
        }
        format!("{scheme}://{}{path}", self.endpoint)
    }

    fn send_once(
        &self,
        method: &http::Method,
        url: &str,
        headers: &[(&str, &str)],
        auth: Option<&str>,
        body: &Body,
    ) -> std::result::Result<Response, ureq::Error> {
        let mut b = http::Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        let map = |e: http::Error| ureq::Error::BadUri(e.to_string());
        match body {
            Body::Empty => self.agent.run(b.body(()).map_err(map)?),
            Body::Bytes(d) => self.agent.run(b.body(*d).map_err(map)?),
            Body::File(p) => {
                let f = std::fs::File::open(p).map_err(ureq::Error::Io)?;
                let len = f.metadata().map_err(ureq::Error::Io)?.len();
                b = b.header("Content-Length", len.to_string());
                self.agent.run(b.body(f).map_err(map)?)
            }
        }
    }

    /// Send with scheme fallback (https → http for loopback/insecure).
    fn send(
        &self,
        method: &http::Method,
        path: &str,
        headers: &[(&str, &str)],
        auth: Option<&str>,
        body: &Body,
    ) -> Result<Response> {
        let known = *self.scheme.lock().unwrap();
        let schemes: &[&'static str] = match known {
            Some(s) => {
                if s == "https" {
                    &["https"]
                } else {
                    &["http"]
                }
            }
            None if self.http_allowed => &["https", "http"],
            None => &["https"],
        };
        let mut last = None;
        for &scheme in schemes {
            let url = self.url(scheme, path);
            match self.send_once(method, &url, headers, auth, body) {
                Ok(r) => {
                    if !path.starts_with("http") {
                        *self.scheme.lock().unwrap() = Some(scheme);
                    }
                    return Ok(r);
                }
                Err(e) => {
                    let message = e.to_string();
                    // A registry that speaks TLS with a certificate we don't trust is an
                    // error, never a reason to retry in plain http.
                    if bad_certificate(&e) {
                        last = Some(Error::UntrustedCertificate {
                            registry: self.host.clone(),
                            url,
                            message,
                        });
                        break;
                    }
                    last = Some(Error::Transport { url, message });
                }
            }
        }
        Err(last.expect("at least one scheme"))
    }

    fn fetch_token(&self, params: &HashMap<String, String>, scope: &str) -> Result<String> {
        let realm = params
            .get("realm")
            .ok_or_else(|| Error::invalid("auth challenge", "bearer challenge without realm"))?;
        let mut url = realm.clone();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(svc) = params.get("service") {
            url.push_str(&format!("{sep}service={}", percent_encode(svc)));
            sep = '&';
        }
        let scope = params.get("scope").map(String::as_str).unwrap_or(scope);
        if !scope.is_empty() {
            url.push_str(&format!("{sep}scope={}", percent_encode(scope)));
        }
        let basic = self.creds.as_ref().map(|c| c.basic_header());
        let mut resp = self
            .send_once(
                &http::Method::GET,
                &url,
                &[],
                basic.as_deref(),
                &Body::Empty,
            )
            .map_err(|e| Error::Transport {
                url: realm.clone(),
                message: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(match status {
                401 | 403 => Error::Registry {
                    status,
                    code: "UNAUTHORIZED".into(),
                    message: "authentication required or credentials rejected".into(),
                },
                _ => registry_error(status, resp),
            });
        }
        #[derive(serde::Deserialize)]
        struct Tok {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = read_limited(resp.body_mut(), 1 << 20, realm)?;
        let t: Tok = serde_json::from_slice(&body)
            .map_err(|e| Error::invalid("token response", e.to_string()))?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| Error::invalid("token response", "no token"))
    }

    /// Send a request, answering an auth challenge once. Returns any status; callers check.
    pub fn request(
        &self,
        method: http::Method,
        path: &str,
        scope: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Response> {
        let cached = {
            let a = self.auth.lock().unwrap();
            a.get(scope).or_else(|| a.get("")).cloned()
        };
        let resp = self.send(&method, path, headers, cached.as_deref(), &body)?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let header = match challenge {
            Some((s, params)) if s == "bearer" => {
                let h = self.fetch_token(&params, scope)?;
                self.auth
                    .lock()
                    .unwrap()
                    .insert(scope.to_string(), h.clone());
                h
            }
            Some((s, _)) if s == "basic" && self.creds.is_some() && cached.is_none() => {
                let h = self.creds.as_ref().unwrap().basic_header();
                self.auth.lock().unwrap().insert(String::new(), h.clone());
                h
            }
            _ => return Err(self.unauthorized()),
        };
        let resp = self.send(&method, path, headers, Some(&header), &body)?;
        if resp.status().as_u16() == 401 {
            return Err(self.unauthorized());
        }
        Ok(resp)
    }

    /// A 401 after what we could offer: credentials rejected, or none to give.
    fn unauthorized(&self) -> Error {
        match self.creds {
            Some(_) => Error::Registry {
                status: 401,
                code: "UNAUTHORIZED".into(),
                message: "credentials rejected".into(),
            },
            None => Error::AuthRequired {
                registry: self.host.clone(),
            },
        }
    }

    /// `GET /v2/` — checks reachability and credentials (used by login).
    pub fn ping(&self) -> Result<()> {
        let resp = self.request(http::Method::GET, "/v2/", "", &[], Body::Empty)?;
        let st = resp.status().as_u16();
        if st == 200 {
            Ok(())
        } else {
            Err(registry_error(st, resp))
        }
    }

    fn pull_scope(repo: &str) -> String {
        format!("repository:{repo}:pull")
    }
    fn push_scope(repo: &str) -> String {
        format!("repository:{repo}:pull,push")
    }

    /// Fetch a manifest or index; verifies its digest when `reference` is a digest.
    /// Returns (bytes, media type, digest).
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<(Vec<u8>, String, Digest)> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let mut resp = self.request(
            http::Method::GET,
            &path,
            &Self::pull_scope(repo),
            &[("Accept", MANIFEST_ACCEPT)],
            Body::Empty,
        )?;
        let st = resp.status().as_u16();
        if st != 200 {
            return Err(registry_error(st, resp));
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let data = read_limited(resp.body_mut(), MAX_MANIFEST_SIZE, &path)?;
        let digest = Digest::of(&data);
        if let Ok(want) = reference.parse::<Digest>() {
            crate::digest::verify(&format!("manifest {reference}"), &want, None, &digest, 0)?;
        }
        let mt = crate::manifest::media_type_of(&data, &ct);
        Ok((data, mt, digest))
    }

    /// Fetch a small blob (config) fully into memory, verified.
    pub fn get_small_blob(&self, repo: &str, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        if size > MAX_MANIFEST_SIZE {
            return Err(Error::invalid(format!("blob {digest}"), "too large"));
        }
        let (mut resp, _) = self.get_blob(repo, digest, 0)?;
        let data = read_limited(resp.body_mut(), size.max(1), &digest.to_string())?;
        crate::digest::verify(
            &format!("blob {digest}"),
            digest,
            Some(size),
            &Digest::of(&data),
            data.len() as u64,
        )?;
        Ok(data)
    }

    /// Start a blob download at `offset`. Returns the response and whether the registry
    /// honoured the range (206). Error for any other status.
    pub fn get_blob(&self, repo: &str, digest: &Digest, offset: u64) -> Result<(Response, bool)> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let range = format!("bytes={offset}-");
        let headers: Vec<(&str, &str)> = if offset > 0 {
            vec![("Range", range.as_str())]
        } else {
            vec![]
        };
        let resp = self.request(
            http::Method::GET,
            &path,
            &Self::pull_scope(repo),
            &headers,
            Body::Empty,
        )?;
        match resp.status().as_u16() {
            200 => Ok((resp, false)),
            206 if offset > 0 => Ok((resp, true)),
            st => Err(registry_error(st, resp)),
        }
    }

    pub fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let resp = self.request(
            http::Method::HEAD,
            &path,
            &Self::push_scope(repo),
            &[],
            Body::Empty,
        )?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            st => Err(registry_error(st, resp)),
        }
    }

    /// Monolithic upload: POST to open a session, PUT the content with `?digest=`.
    pub fn upload_blob(&self, repo: &str, digest: &Digest, body: Body) -> Result<()> {
        let scope = Self::push_scope(repo);
        let path = format!("/v2/{repo}/blobs/uploads/");
        let resp = self.request(
            http::Method::POST,
            &path,
            &scope,
            &[("Content-Length", "0")],
            Body::Empty,
        )?;
        let st = resp.status().as_u16();
        if st != 202 {
            return Err(registry_error(st, resp));
        }
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::invalid("upload session", "no Location header"))?
            .to_string();
        let loc = if loc.starts_with('/') || loc.starts_with("http") {
            loc
        } else {
            format!("/{loc}")
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!("{loc}{sep}digest={}", percent_encode(&digest.to_string()));
        let put = if put.starts_with("http") {
            // keep our scheme decision; the registry may report its own idea of the host
            match put.split_once("://").and_then(|(_, r)| r.split_once('/')) {
                Some((_, p)) => format!("/{p}"),
                None => put,
            }
        } else {
            put
        };
        let resp = self.request(
            http::Method::PUT,
            &put,
            &scope,
            &[("Content-Type", "application/octet-stream")],
            body,
        )?;
        match resp.status().as_u16() {
            201 | 204 => Ok(()),
            st => Err(registry_error(st, resp)),
        }
    }

    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        data: &[u8],
    ) -> Result<()> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let resp = self.request(
            http::Method::PUT,
            &path,
            &Self::push_scope(repo),
            &[("Content-Type", media_type)],
            Body::Bytes(data),
        )?;
        match resp.status().as_u16() {
            200 | 201 | 204 => Ok(()),
            st => Err(registry_error(st, resp)),
        }
    }
}

fn read_limited(body: &mut ureq::Body, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    body.as_reader()
        .take(limit + 1)
        .read_to_end(&mut v)
        .ctx("reading response", what)?;
    if v.len() as u64 > limit {
        return Err(Error::invalid(what.to_string(), "response too large"));
    }
    Ok(v)
}

/// Whether TLS failed on the server's certificate (rustls says so by type, reported either
/// directly or inside the I/O error of the stream).
fn bad_certificate(e: &ureq::Error) -> bool {
    let tls = match e {
        ureq::Error::Rustls(t) => Some(t),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    matches!(
        tls,
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(s, "basic");
        assert_eq!(p["realm"], "Registry Realm");
    }

    #[test]
    fn encoding() {
        assert_eq!(
            percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
