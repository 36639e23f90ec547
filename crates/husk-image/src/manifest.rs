//! Manifests and indexes (OCI and Docker schema2), and platform selection.
//!
//! Our own small serde types: OCI and Docker media types share one shape, and keeping
//! media types as strings lets us accept both without conversions.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::registry::{MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// The platform this binary runs on.
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            architecture: arch.to_string(),
            os: std::env::consts::OS.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(Error::invalid(
                format!("platform {s:?}"),
                "expected os/arch[/variant]",
            ));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
            os_version: None,
        })
    }

    /// Does an index entry's platform satisfy this wanted platform?
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        match (&self.variant, &candidate.variant) {
            (Some(w), Some(c)) => w == c,
            // arm64 images are often labelled v8; treat "no variant wanted" as "any".
            (None, _) => true,
            // we want e.g. arm/v7 and the entry doesn't say: accept only for arm64/v8
            (Some(w), None) => self.architecture == "arm64" && w == "v8",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Work out a manifest's media type from the Content-Type header, its `mediaType` field,
/// or its shape.
pub fn media_type_of(data: &[u8], content_type: &str) -> String {
    let known = [
        MT_OCI_MANIFEST,
        MT_OCI_INDEX,
        MT_DOCKER_MANIFEST,
        MT_DOCKER_LIST,
    ];
    if known.contains(&content_type) {
        return content_type.to_string();
    }
    #[derive(Deserialize)]
    struct Peek {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
    }
    match serde_json::from_slice::<Peek>(data) {
        Ok(p) => {
            if let Some(mt) = p.media_type {
                return mt;
            }
            if p.schema_version == Some(1) {
                return "application/vnd.docker.distribution.manifest.v1+json".into();
            }
            if p.manifests.is_some() {
                MT_OCI_INDEX.into()
            } else if p.layers.is_some() {
                MT_OCI_MANIFEST.into()
            } else {
                content_type.to_string()
            }
        }
        Err(_) => content_type.to_string(),
    }
}

pub fn is_index(mt: &str) -> bool {
    mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST
}

pub fn is_manifest(mt: &str) -> bool {
    mt == MT_OCI_MANIFEST || mt == MT_DOCKER_MANIFEST
}

pub fn parse_manifest(data: &[u8]) -> Result<Manifest> {
    let m: Manifest = serde_json::from_slice(data)
        .map_err(|e| Error::invalid("image manifest", e.to_string()))?;
    if m.schema_version != 2 {
        return Err(Error::invalid(
            "image manifest",
            format!("schemaVersion {} not supported", m.schema_version),
        ));
    }
    Ok(m)
}

pub fn parse_index(data: &[u8]) -> Result<Index> {
    let i: Index =
        serde_json::from_slice(data).map_err(|e| Error::invalid("image index", e.to_string()))?;
    if i.schema_version != 2 {
        return Err(Error::invalid(
            "image index",
            format!("schemaVersion {} not supported", i.schema_version),
        ));
    }
    Ok(i)
}

/// Choose the manifest for `wanted` from an index; the error lists what is available.
pub fn select_platform<'a>(index: &'a Index, wanted: &Platform) -> Result<&'a Descriptor> {
    let candidates = index
        .manifests
        .iter()
        .filter(|d| is_manifest(&d.media_type) || d.media_type.is_empty());
    let mut available = Vec::new();
    let mut fallback = None;
    for d in candidates {
        let Some(p) = &d.platform else { continue };
        if p.os == "unknown" {
            continue; // attestation manifests
        }
        available.push(p.to_string());
        if wanted.matches(p) {
            // exact variant match wins over "any variant"
            if wanted.variant.is_some() || p.variant.is_none() || fallback.is_some() {
                return Ok(d);
            }
            fallback = Some(d);
        }
    }
    if let Some(d) = fallback {
        return Ok(d);
    }
    Err(Error::NoMatchingPlatform {
        wanted: wanted.to_string(),
        available,
    })
}

/// Layer compression, by media type (the content is sniffed too when unpacking).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn layer_compression(media_type: &str) -> Result<Compression> {
    if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
        Ok(Compression::Gzip)
    } else if media_type.ends_with("+zstd") {
        Ok(Compression::Zstd)
    } else if media_type.ends_with(".tar") || media_type.ends_with("layer.v1.tar") {
        Ok(Compression::None)
    } else {
        Err(Error::UnsupportedMediaType(media_type.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(p: &str) -> Descriptor {
        let pl = Platform::parse(p).unwrap();
        Descriptor {
            media_type: MT_OCI_MANIFEST.into(),
            digest: Digest::of(p.as_bytes()),
            size: 1,
            platform: Some(pl),
            urls: None,
            annotations: None,
        }
    }

    #[test]
    fn platform_selection() {
        let idx = Index {
            schema_version: 2,
            media_type: None,
            manifests: vec![
                desc("linux/arm/v6"),
                desc("linux/arm/v7"),
                desc("linux/arm64/v8"),
                desc("linux/amd64"),
            ],
            annotations: None,
        };
        let got = select_platform(&idx, &Platform::parse("linux/arm/v7").unwrap()).unwrap();
        assert_eq!(got.digest, Digest::of(b"linux/arm/v7"));
        let got = select_platform(&idx, &Platform::parse("linux/arm64").unwrap()).unwrap();
        assert_eq!(got.digest, Digest::of(b"linux/arm64/v8"));
        let got = select_platform(&idx, &Platform::parse("linux/amd64").unwrap()).unwrap();
        assert_eq!(got.digest, Digest::of(b"linux/amd64"));
        let err = select_platform(&idx, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("linux/s390x"), "{msg}");
        assert!(
            msg.contains("linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/amd64"),
            "{msg}"
        );
    }

    #[test]
    fn media_types() {
        assert_eq!(
            media_type_of(br#"{"manifests":[]}"#, "text/plain"),
            MT_OCI_INDEX
        );
        assert_eq!(media_type_of(br#"{"layers":[]}"#, ""), MT_OCI_MANIFEST);
        assert_eq!(media_type_of(b"{}", MT_DOCKER_LIST), MT_DOCKER_LIST);
        assert_eq!(
            layer_compression("application/vnd.docker.image.rootfs.diff.tar.gzip").unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            layer_compression("application/vnd.oci.image.layer.v1.tar+zstd").unwrap(),
            Compression::Zstd
        );
        assert_eq!(
            layer_compression("application/vnd.oci.image.layer.v1.tar").unwrap(),
            Compression::None
        );
        assert!(layer_compression("application/json").is_err());
    }
}
