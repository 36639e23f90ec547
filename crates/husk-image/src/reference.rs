//! Image references: `[registry[:port]/]repo/path[:tag][@sha256:...]`.

use crate::digest::Digest;
use crate::error::{Error, Result};
use std::fmt;

pub const DOCKER_HUB: &str = "docker.io";
/// Longest `registry/repository` (docker's limit).
pub const NAME_MAX: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, e.g. `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    if c.is_empty() || c.len() > 255 {
        return false;
    }
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

fn valid_registry(r: &str) -> bool {
    if r.is_empty() || r.len() > 255 {
        return false;
    }
    // host[:port], host may be an [ipv6] literal
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return false,
        }
    } else {
        match r.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
}

impl Reference {
    /// Parse with `docker.io` as the registry for names without one.
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_with_default(s, DOCKER_HUB)
    }

    pub fn parse_with_default(s: &str, default_registry: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > 1024 {
            return Err(bad("too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>().map_err(|_| bad("bad digest"))?)),
            None => (s, None),
        };
        // Tag: after the last ':' if that ':' is after the last '/'.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(i) if last_slash.is_none_or(|j| i > j) => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad("bad tag"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.starts_with('[') =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (default_registry.to_string(), name.to_string()),
        };
        if !valid_registry(&registry) {
            return Err(bad("bad registry host"));
        }
        if repository.is_empty() || !repository.split('/').all(valid_component) {
            return Err(bad(
                "repository must be lowercase [a-z0-9._-] components separated by /",
            ));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        // Docker's limit on the whole name: it also keeps the printed reference (tag and
        // digest added) under the 1024 accepted above, so a reference prints as one that parses.
        if registry.len() + 1 + repository.len() > NAME_MAX {
            return Err(bad("name longer than 255 characters"));
        }
        let tag = tag.map(str::to_string);
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The tag or digest to ask the registry for (digest wins).
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag` without digest (the name images are recorded under).
    pub fn tagged_name(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{}", self.name(), t))
    }

    /// True when the registry is a loopback address (plain http allowed).
    pub fn is_loopback_registry(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

pub fn is_loopback_host(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(registry)
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .map(|a| a.is_loopback())
            .unwrap_or(false)
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `reference` fuzz target: a 1000-character name was accepted, but with
    /// `docker.io/` and `:latest` added it no longer parsed, so the image was recorded
    /// under a name nothing could look up.
    #[test]
    fn long_names_are_refused_and_accepted_ones_round_trip() {
        let long = format!("{}/x", vec!["a".repeat(200); 5].join("/"));
        let err = Reference::parse(&long).unwrap_err().to_string();
        assert!(err.contains("255"), "{err}");
        let fits = format!("{}/x", vec!["a".repeat(121); 2].join("/"));
        let r = Reference::parse(&format!("{fits}:{}", "t".repeat(128))).unwrap();
        assert_eq!(r.name().len(), NAME_MAX);
        assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
    }

    #[test]
    fn parses_forms() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = Reference::parse("127.0.0.1:5000/a/b:v1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        let d = Digest::of(b"x");
        let r = Reference::parse(&format!("localhost/x:t@{d}")).unwrap();
        assert_eq!(r.registry, "localhost");
        assert_eq!(r.digest.as_ref(), Some(&d));
        assert_eq!(r.manifest_ref(), d.to_string());
        let r = Reference::parse_with_default("x/y", "127.0.0.1:5000").unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/x/y:latest");
        let r = Reference::parse("[::1]:5000/x").unwrap();
        assert!(r.is_loopback_registry());
        assert!(Reference::parse("127.0.0.1:5000/x")
            .unwrap()
            .is_loopback_registry());
        assert!(!Reference::parse("example.com/x")
            .unwrap()
            .is_loopback_registry());
    }

    #[test]
    fn rejects_bad() {
        for s in [
            "",
            "UPPER",
            "a/../b",
            "a//b",
            "a:bad tag",
            "a@sha256:xyz",
            "a:-tag",
            "host:port:bad/x",
            "-a",
            "a_",
        ] {
            assert!(Reference::parse(s).is_err(), "{s} should fail");
        }
    }
}
