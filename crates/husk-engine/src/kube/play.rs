//! `kube play`: a manifest's pods as husk pods; `kube down`: those pods removed.
//!
//! Two phases, as `husk run` has: [`plan`] reads the manifest into pods of `RunOptions`
//! and checks every one with [`ContainerConfig::validate`] (pure but for looking at the
//! hostPaths it names), so a bad quantity, a missing image or a mount of an undefined
//! volume is one error before anything exists. Then each pod is made with the engine's
//! own pieces: `pod create` (the infra container, the ports, the hostname), its volumes'
//! directories in the pod's directory (so `pod rm` takes them), its init containers run
//! to completion one after another (and removed), then its containers started detached
//! in the pod. A failure at any step removes every pod and volume this play made.
//!
//! Names are podman's: a Pod's pod is its name, a Deployment's `NAME-pod` (with replicas,
//! `NAME-pod-0`, `NAME-pod-1` …), a container `POD-CONTAINER`.
//!
//! Volumes: `emptyDir` is a directory of the pod (shared by its containers, gone with the
//! pod); `configMap` the map's keys written as files (read-only in the container);
//! `hostPath` a bind mount (its `type` checked, `…OrCreate` made); a
//! `persistentVolumeClaim` the named volume of the claim's name (made when missing, left by
//! `down`, as podman leaves it).

use super::expand::expand;
use super::manifest::{ConfigMap, Container, Manifest, PodSpec, VolumeMount};
use super::KubeError;
use crate::config::{ContainerConfig, RunOptions};
use crate::engine::Engine;
use crate::error::{During, Result};
use crate::os::IoContext;
use crate::pod::PodOptions;
use crate::run::RunOutcome;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// `kube play`'s flags.
#[derive(Clone, Debug, Default)]
pub struct PlayOptions {
    /// Remove pods of the same names first (`--replace`).
    pub replace: bool,
}

/// Where a pod's volume comes from.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    EmptyDir,
    HostPath {
        path: PathBuf,
        kind: HostPathKind,
    },
    /// Files (relative path, content, mode) of a ConfigMap's keys.
    ConfigMap {
        files: Vec<(String, String, u32)>,
    },
    Claim {
        name: String,
        read_only: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum HostPathKind {
    Any,
    DirectoryOrCreate,
    Directory,
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

/// One container of a planned pod: its options without the pod and the volumes' binds.
#[derive(Clone, Debug)]
struct CtrPlan {
    opts: RunOptions,
    mounts: Vec<VolumeMount>,
}

/// One pod to make.
#[derive(Clone, Debug)]
struct PodPlan {
    name: String,
    labels: BTreeMap<String, String>,
    hostname: Option<String>,
    host_network: bool,
    publish: Vec<String>,
    volumes: BTreeMap<String, Source>,
    init: Vec<CtrPlan>,
    containers: Vec<CtrPlan>,
}

/// The pod directory's subdirectory holding its emptyDir and configMap volumes.
fn kube_dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("kube")
}

fn emptydir_path(base: &Path, vol: &str) -> PathBuf {
    base.join("emptydir").join(vol)
}

fn configmap_path(base: &Path, vol: &str) -> PathBuf {
    base.join("configmap").join(vol)
}

/// A path made of normal components only (subPath, configMap item paths): never absolute,
/// never `..`, so it stays inside its volume.
fn relative_inside(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// The names of the pods a manifest makes, in order.
fn pod_names(m: &Manifest) -> Vec<String> {
    let mut v: Vec<String> = m
        .pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    for d in &m.deployments {
        let name = d.metadata.name.clone().unwrap_or_default();
        match d.spec.replicas.unwrap_or(1) {
            1 => v.push(format!("{name}-pod")),
            n => v.extend((0..n).map(|i| format!("{name}-pod-{i}"))),
        }
    }
    v
}

/// Everything the manifest asks, checked; `warn` gets what is accepted but not done.
fn plan(m: &Manifest, warn: &dyn Fn(&str)) -> Result<Vec<PodPlan>, KubeError> {
    let maps: BTreeMap<&str, &ConfigMap> = m
        .config_maps
        .iter()
        .map(|c| (c.metadata.name.as_deref().unwrap_or_default(), c))
        .collect();
    let mut out = Vec::new();
    for p in &m.pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        if p.metadata.namespace.is_some() {
            warn(&format!(
                "pod {name}: metadata.namespace: husk has no namespaces, ignored"
            ));
        }
        out.push(plan_pod(
            &name,
            &p.metadata.labels,
            &p.metadata.annotations,
            &p.spec,
            &maps,
            warn,
        )?);
    }
    for d in &m.deployments {
        let dname = d.metadata.name.clone().unwrap_or_default();
        let replicas = d.spec.replicas.unwrap_or(1);
        let t = &d.spec.template;
        if let Some(port) = t
            .spec
            .containers
            .iter()
            .flat_map(|c| &c.ports)
            .find_map(|p| p.host_port)
            .filter(|_| replicas > 1 && !t.spec.host_network)
        {
            return Err(KubeError::ReplicaPorts {
                name: dname,
                replicas,
                port,
            });
        }
        let mut labels = d.metadata.labels.clone();
        labels.extend(t.metadata.labels.clone());
        let mut annotations = d.metadata.annotations.clone();
        annotations.extend(t.metadata.annotations.clone());
        for name in pod_names(&Manifest {
            deployments: vec![d.clone()],
            ..Default::default()
        }) {
            out.push(plan_pod(
                &name,
                &labels,
                &annotations,
                &t.spec,
                &maps,
                warn,
            )?);
        }
    }
    Ok(out)
}

fn plan_pod(
    name: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    spec: &PodSpec,
    maps: &BTreeMap<&str, &ConfigMap>,
    warn: &dyn Fn(&str),
) -> Result<PodPlan, KubeError> {
    if spec.containers.is_empty() {
        return Err(KubeError::NoContainers { pod: name.into() });
    }
    let restart = match spec.restart_policy.as_deref() {
        None | Some("Always") => "always",
        Some("OnFailure") => "on-failure",
        Some("Never") => "no",
        Some(other) => {
            return Err(KubeError::RestartPolicy {
                pod: name.into(),
                policy: other.into(),
            })
        }
    };
    let mut volumes = BTreeMap::new();
    for v in &spec.volumes {
        let src = volume_source(name, v, maps, warn)?;
        volumes.insert(v.name.clone(), src);
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in spec.init_containers.iter().chain(&spec.containers) {
        if c.name.is_empty() {
            return Err(KubeError::NoContainerName { pod: name.into() });
        }
        if !seen.insert(c.name.as_str()) {
            return Err(KubeError::DuplicateContainer {
                pod: name.into(),
                container: c.name.clone(),
            });
        }
    }
    let mut publish = Vec::new();
    for c in &spec.containers {
        for p in &c.ports {
            let proto = match p.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => "tcp",
                "UDP" => "udp",
                other => {
                    return Err(KubeError::Protocol {
                        container: c.name.clone(),
                        port: p.container_port,
                        protocol: other.into(),
                    })
                }
            };
            match (p.host_port, spec.host_network) {
                (Some(h), false) => {
                    let ip = p
                        .host_ip
                        .as_deref()
                        .map(|ip| format!("{ip}:"))
                        .unwrap_or_default();
                    publish.push(format!("{ip}{h}:{}/{proto}", p.container_port));
                }
                (Some(h), true) if h != p.container_port => warn(&format!(
                    "container {}: hostPort {h}: with hostNetwork the port is the container's own ({})",
                    c.name, p.container_port
                )),
                _ => {}
            }
        }
    }
    let ctr = |c: &Container, restart: &str| -> Result<CtrPlan, KubeError> {
        let full = format!("{name}-{}", c.name);
        // The pod's runAsUser/runAsGroup, where the container does not set its own.
        let mut c = c.clone();
        if let Some(pod_sc) = &spec.security_context {
            let sc = c.security_context.get_or_insert_with(Default::default);
            sc.run_as_user = sc.run_as_user.or(pod_sc.run_as_user);
            sc.run_as_group = sc.run_as_group.or(pod_sc.run_as_group);
        }
        let p = container_options(&full, &c, restart, annotations, maps, warn)?;
        for m in &p.mounts {
            match volumes.get(&m.name) {
                None => {
                    return Err(KubeError::NoVolume {
                        container: full,
                        volume: m.name.clone(),
                    })
                }
                Some(Source::Claim { .. }) if m.sub_path.is_some() => {
                    return Err(KubeError::SubPathOnClaim {
                        container: full,
                        volume: m.name.clone(),
                    })
                }
                Some(_) => {}
            }
            if let Some(sub) = &m.sub_path {
                if !relative_inside(sub) {
                    return Err(KubeError::VolumePath {
                        pod: name.into(),
                        volume: m.name.clone(),
                        path: sub.clone(),
                        why: "subPath must be relative, without '..'",
                    });
                }
            }
            // Binds are handed on as `-v SRC:DST[:ro]`.
            if let Some(path) = [&m.mount_path]
                .into_iter()
                .chain(m.sub_path.as_ref())
                .find(|p| p.contains(':') || p.contains(','))
            {
                return Err(KubeError::VolumePath {
                    pod: name.into(),
                    volume: m.name.clone(),
                    path: path.clone(),
                    why: "a ':' or ',' in a mount path is not supported",
                });
            }
        }
        // Checked as `husk run` would check it; the volume sources are made later, so
        // each is an existing directory here.
        let mut check = p.opts.clone();
        check.pod = Some(name.into());
        check.volumes = binds(&p.mounts, &volumes, None);
        ContainerConfig::validate(&check).map_err(|source| KubeError::Config {
            container: full.clone(),
            source: Box::new(source),
        })?;
        Ok(p)
    };
    // Init containers run once, to completion: they are never restarted.
    let init = spec
        .init_containers
        .iter()
        .map(|c| ctr(c, "no"))
        .collect::<Result<Vec<_>, _>>()?;
    let containers = spec
        .containers
        .iter()
        .map(|c| ctr(c, restart))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PodPlan {
        name: name.into(),
        labels: labels.clone(),
        hostname: spec.hostname.clone(),
        host_network: spec.host_network,
        publish,
        volumes,
        init,
        containers,
    })
}

fn volume_source(
    pod: &str,
    v: &super::manifest::Volume,
    maps: &BTreeMap<&str, &ConfigMap>,
    warn: &dyn Fn(&str),
) -> Result<Source, KubeError> {
    let path_err = |path: &str, why| KubeError::VolumePath {
        pod: pod.into(),
        volume: v.name.clone(),
        path: path.into(),
        why,
    };
    let given = [
        v.empty_dir.is_some(),
        v.host_path.is_some(),
        v.config_map.is_some(),
        v.persistent_volume_claim.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(KubeError::VolumeSource {
            pod: pod.into(),
            volume: v.name.clone(),
        });
    }
    if let Some(e) = &v.empty_dir {
        if e.medium.as_deref().is_some_and(|m| !m.is_empty()) {
            warn(&format!(
                "pod {pod}: volume {}: emptyDir medium {:?}: the directory is on disk",
                v.name,
                e.medium.as_deref().unwrap_or_default()
            ));
        }
        if e.size_limit.is_some() {
            warn(&format!(
                "pod {pod}: volume {}: emptyDir sizeLimit is not enforced",
                v.name
            ));
        }
        return Ok(Source::EmptyDir);
    }
    if let Some(h) = &v.host_path {
        use HostPathKind::*;
        let kind = match h.kind.as_deref().unwrap_or("") {
            "" => Any,
            "DirectoryOrCreate" => DirectoryOrCreate,
            "Directory" => Directory,
            "FileOrCreate" => FileOrCreate,
            "File" => File,
            "Socket" => Socket,
            "CharDevice" => CharDevice,
            "BlockDevice" => BlockDevice,
            other => {
                return Err(KubeError::HostPathType {
                    pod: pod.into(),
                    volume: v.name.clone(),
                    kind: other.into(),
                })
            }
        };
        if !h.path.starts_with('/') {
            return Err(path_err(&h.path, "hostPath must be absolute"));
        }
        let meta = std::fs::metadata(&h.path);
        use std::os::unix::fs::FileTypeExt;
        let ok = match (&meta, kind) {
            (Err(_), DirectoryOrCreate | FileOrCreate) => true,
            (Err(_), _) => return Err(path_err(&h.path, "does not exist")),
            (Ok(_), Any) => true,
            (Ok(m), Directory | DirectoryOrCreate) => m.is_dir(),
            (Ok(m), File | FileOrCreate) => m.is_file(),
            (Ok(m), Socket) => m.file_type().is_socket(),
            (Ok(m), CharDevice) => m.file_type().is_char_device(),
            (Ok(m), BlockDevice) => m.file_type().is_block_device(),
        };
        if !ok {
            return Err(path_err(&h.path, "is not of the hostPath's type"));
        }
        return Ok(Source::HostPath {
            path: PathBuf::from(&h.path),
            kind,
        });
    }
    if let Some(c) = &v.config_map {
        let Some(map) = maps.get(c.name.as_str()) else {
            if c.optional {
                return Ok(Source::ConfigMap { files: Vec::new() });
            }
            return Err(KubeError::NoConfigMap {
                container: format!("{pod} (volume {})", v.name),
                name: c.name.clone(),
            });
        };
        let mode = c.default_mode.unwrap_or(0o644) & 0o777;
        let mut files = Vec::new();
        if c.items.is_empty() {
            for (k, val) in &map.data {
                files.push((k.clone(), val.clone(), mode));
            }
        }
        for item in &c.items {
            let Some(val) = map.data.get(&item.key) else {
                return Err(KubeError::NoConfigMapKey {
                    container: format!("{pod} (volume {})", v.name),
                    name: c.name.clone(),
                    key: item.key.clone(),
                });
            };
            files.push((
                item.path.clone(),
                val.clone(),
                item.mode.unwrap_or(mode) & 0o777,
            ));
        }
        if let Some((p, _, _)) = files.iter().find(|(p, _, _)| !relative_inside(p)) {
            return Err(path_err(
                p,
                "a configMap file must be a relative path without '..'",
            ));
        }
        return Ok(Source::ConfigMap { files });
    }
    let c = v.persistent_volume_claim.as_ref().unwrap();
    crate::volumes::store::check_name(&c.claim_name)
        .map_err(|_| path_err(&c.claim_name, "not a volume name"))?;
    Ok(Source::Claim {
        name: c.claim_name.clone(),
        read_only: c.read_only,
    })
}

/// A container's `RunOptions` (without pod and volumes) and its mounts.
fn container_options(
    full: &str,
    c: &Container,
    restart: &str,
    annotations: &BTreeMap<String, String>,
    maps: &BTreeMap<&str, &ConfigMap>,
    warn: &dyn Fn(&str),
) -> Result<CtrPlan, KubeError> {
    let image = c
        .image
        .clone()
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| KubeError::NoImage {
            container: full.into(),
        })?;
    let mut o = RunOptions::new(image);
    o.name = Some(full.into());
    o.detach = true;
    o.restart = restart.into();
    o.process.workdir = c.working_dir.clone();
    o.process.tty = c.tty;
    o.host.pull = match c.image_pull_policy.as_deref() {
        None => None,
        Some("Always") => Some("always".into()),
        Some("IfNotPresent") => Some("missing".into()),
        Some("Never") => Some("never".into()),
        Some(other) => {
            return Err(KubeError::PullPolicy {
                container: full.into(),
                policy: other.into(),
            })
        }
    };
    o.host.annotations = annotations
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // envFrom first: env's own entries win, as in Kubernetes.
    let map = |name: &str, optional: bool| -> Result<Option<&ConfigMap>, KubeError> {
        match maps.get(name) {
            Some(m) => Ok(Some(m)),
            None if optional => Ok(None),
            None => Err(KubeError::NoConfigMap {
                container: full.into(),
                name: name.into(),
            }),
        }
    };
    // The container's variables so far, for `$(VAR)` references.
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for ef in &c.env_from {
        let Some(r) = &ef.config_map_ref else {
            return Err(KubeError::EnvSource {
                container: full.into(),
                var: "envFrom".into(),
            });
        };
        if let Some(m) = map(&r.name, r.optional)? {
            let prefix = ef.prefix.as_deref().unwrap_or("");
            for (k, v) in &m.data {
                vars.insert(format!("{prefix}{k}"), v.clone());
                o.process.env.push(format!("{prefix}{k}={v}"));
            }
        }
    }
    for e in &c.env {
        let value = match (&e.value, &e.value_from) {
            (_, Some(from)) => {
                let Some(r) = &from.config_map_key_ref else {
                    return Err(KubeError::EnvSource {
                        container: full.into(),
                        var: e.name.clone(),
                    });
                };
                let found = map(&r.name, r.optional)?.and_then(|m| m.data.get(&r.key));
                match found {
                    Some(v) => v.clone(),
                    None if r.optional => continue,
                    None => {
                        return Err(KubeError::NoConfigMapKey {
                            container: full.into(),
                            name: r.name.clone(),
                            key: r.key.clone(),
                        })
                    }
                }
            }
            (v, None) => expand(v.as_deref().unwrap_or_default(), &|n| vars.get(n).cloned()),
        };
        vars.insert(e.name.clone(), value.clone());
        o.process.env.push(format!("{}={value}", e.name));
    }
    // command replaces the entrypoint (its first word; the rest leads the args), args the
    // cmd; both may refer to the container's variables.
    let var = |n: &str| vars.get(n).cloned();
    let command: Vec<String> = c.command.iter().map(|s| expand(s, &var)).collect();
    let args: Vec<String> = c.args.iter().map(|s| expand(s, &var)).collect();
    if let Some((first, rest)) = command.split_first() {
        o.entrypoint = Some(first.clone());
        o.cmd = rest.iter().chain(&args).cloned().collect();
    } else {
        o.cmd = args;
    }
    if let Some(r) = &c.resources {
        let q = |key: &str, q: &super::Quantity, milli: bool| {
            let v = if milli { q.millis() } else { q.bytes() };
            v.map_err(|source| KubeError::Quantity {
                container: full.into(),
                key: key.into(),
                source,
            })
        };
        for (k, v) in &r.limits {
            match k.as_str() {
                "memory" => o.memory = Some(q("limits.memory", v, false)?.to_string()),
                "cpu" => {
                    let m = q("limits.cpu", v, true)?;
                    o.cpus = Some(format!("{}.{:03}", m / 1000, m % 1000));
                }
                other => warn(&format!(
                    "container {full}: resources.limits.{other}: not supported, ignored"
                )),
            }
        }
        for (k, v) in &r.requests {
            match k.as_str() {
                // A request is what the container is guaranteed: the nearest cgroup knobs
                // are a soft memory limit and a CPU weight (the kubelet's shares formula).
                "memory" => {
                    o.host.memory_reservation = Some(q("requests.memory", v, false)?.to_string())
                }
                "cpu" => {
                    let m = q("requests.cpu", v, true)?;
                    o.host.cpu_shares = Some((m * 1024 / 1000).max(2));
                }
                other => warn(&format!(
                    "container {full}: resources.requests.{other}: not supported, ignored"
                )),
            }
        }
    }
    if let Some(s) = &c.security_context {
        o.process.user = match (s.run_as_user, s.run_as_group) {
            (Some(u), Some(g)) => Some(format!("{u}:{g}")),
            (Some(u), None) => Some(u.to_string()),
            (None, Some(_)) => {
                return Err(KubeError::GroupWithoutUser {
                    container: full.into(),
                })
            }
            (None, None) => None,
        };
        o.privileged = s.privileged.unwrap_or(false);
        o.read_only = s.read_only_root_filesystem.unwrap_or(false);
        if s.allow_privilege_escalation == Some(false) {
            o.security_opt.push("no-new-privileges".into());
        }
        if let Some(caps) = &s.capabilities {
            o.cap_add = caps.add.clone();
            o.cap_drop = caps.drop.clone();
        }
    }
    Ok(CtrPlan {
        opts: o,
        mounts: c.volume_mounts.clone(),
    })
}

/// `-v` binds of `mounts`; `base` is the pod's kube directory (None while checking: every
/// source is then `/`, a directory that exists).
fn binds(
    mounts: &[VolumeMount],
    vols: &BTreeMap<String, Source>,
    base: Option<&Path>,
) -> Vec<String> {
    let mut out = Vec::new();
    for m in mounts {
        let Some(src) = vols.get(&m.name) else {
            continue;
        };
        let sub = |p: PathBuf| match &m.sub_path {
            Some(s) => p.join(s),
            None => p,
        };
        let (source, ro) = match (src, base) {
            (Source::Claim { name, read_only }, _) => (name.clone(), *read_only),
            (_, None) => ("/".to_string(), false),
            (Source::EmptyDir, Some(b)) => {
                (sub(emptydir_path(b, &m.name)).display().to_string(), false)
            }
            (Source::ConfigMap { .. }, Some(b)) => {
                (sub(configmap_path(b, &m.name)).display().to_string(), true)
            }
            (Source::HostPath { path, .. }, Some(_)) => {
                (sub(path.clone()).display().to_string(), false)
            }
        };
        let ro = if ro || m.read_only { ":ro" } else { "" };
        out.push(format!("{source}:{}{ro}", m.mount_path));
    }
    out
}

/// What one play made, for the undo.
#[derive(Default)]
struct Made {
    pods: Vec<String>,
    volumes: Vec<String>,
}

impl Engine {
    /// `kube play`: make the pods of the manifest `yaml` (from `file`, for messages) and
    /// start their containers; returns the pods' ids. Nothing stays when it fails.
    pub fn kube_play(&self, file: &str, yaml: &str, o: &PlayOptions) -> Result<Vec<String>> {
        self.kube_play_inner(yaml, o).during("kube play", file)
    }

    fn kube_play_inner(&self, yaml: &str, o: &PlayOptions) -> Result<Vec<String>> {
        let m = Manifest::parse(yaml).map_err(KubeError::from)?;
        for w in &m.warnings {
            (self.warn)(w);
        }
        let plans = plan(&m, &*self.warn)?;
        if o.replace {
            let existing: Vec<String> = self.pods().into_iter().map(|p| p.name).collect();
            for p in plans.iter().filter(|p| existing.contains(&p.name)) {
                self.pod_remove(&p.name, true)?;
            }
        }
        let mut made = Made::default();
        let played = (|| -> Result<Vec<String>> {
            // Claims first: a PersistentVolumeClaim document is a volume even when no pod
            // mounts it.
            let claims = m
                .claims
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .chain(plans.iter().flat_map(|p| {
                    p.volumes.values().filter_map(|s| match s {
                        Source::Claim { name, .. } => Some(name.clone()),
                        _ => None,
                    })
                }));
            for name in claims {
                if crate::volumes::store::load(&self.root, &name).is_err() {
                    self.volume_create(Some(&name), "local", &[], &[])?;
                    made.volumes.push(name);
                }
            }
            plans.iter().map(|p| self.play_pod(p, &mut made)).collect()
        })();
        if played.is_err() {
            for id in made.pods.iter().rev() {
                let _ = self.pod_remove(id, true);
            }
            for v in &made.volumes {
                let _ = self.volume_remove(v, true);
            }
        }
        played
    }

    fn play_pod(&self, p: &PodPlan, made: &mut Made) -> Result<String> {
        let id = self.pod_create(&PodOptions {
            name: Some(p.name.clone()),
            network: p.host_network.then(|| "host".to_string()),
            labels: p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            publish: p.publish.clone(),
            hostname: p.hostname.clone(),
        })?;
        made.pods.push(id.clone());
        let base = kube_dir(&crate::pod::dir_of(&self.root, &id));
        self.make_volumes(p, &base)?;
        let run = |c: &CtrPlan| -> Result<String> {
            let mut o = c.opts.clone();
            o.pod = Some(id.clone());
            o.volumes = binds(&c.mounts, &p.volumes, Some(&base));
            let cfg = ContainerConfig::validate(&o).map_err(|source| KubeError::Config {
                container: o.name.clone().unwrap_or_default(),
                source: Box::new(source),
            })?;
            match self.run(&cfg)? {
                RunOutcome::Started { id } | RunOutcome::Exited { id, .. } => Ok(id),
            }
        };
        for c in &p.init {
            let cid = run(c)?;
            let code = self.wait(&cid);
            let _ = self.remove(&cid, true);
            let code = code?;
            if code != 0 {
                return Err(KubeError::InitFailed {
                    container: c.opts.name.clone().unwrap_or_default(),
                    code,
                }
                .into());
            }
        }
        for c in &p.containers {
            run(c)?;
        }
        Ok(id)
    }

    /// The pod's emptyDir and configMap directories (below `base`, in the pod's
    /// directory), the hostPaths that are to be made, and the subPaths of them all.
    fn make_volumes(&self, p: &PodPlan, base: &Path) -> Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        for (name, src) in &p.volumes {
            match src {
                Source::EmptyDir => {
                    let d = emptydir_path(base, name);
                    std::fs::create_dir_all(&d).ctx("creating", &d)?;
                    // Kubernetes' emptyDir: writable by any user of the pod.
                    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777))
                        .ctx("chmod", &d)?;
                }
                Source::ConfigMap { files } => {
                    let d = configmap_path(base, name);
                    std::fs::create_dir_all(&d).ctx("creating", &d)?;
                    for (rel, data, mode) in files {
                        let f = d.join(rel);
                        if let Some(parent) = f.parent() {
                            std::fs::create_dir_all(parent).ctx("creating", parent)?;
                        }
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(*mode)
                            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                            .open(&f)
                            .and_then(|mut fh| std::io::Write::write_all(&mut fh, data.as_bytes()))
                            .ctx("writing", &f)?;
                        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(*mode))
                            .ctx("chmod", &f)?;
                    }
                }
                Source::HostPath { path, kind } if !path.exists() => match kind {
                    HostPathKind::DirectoryOrCreate => {
                        std::fs::create_dir_all(path).ctx("creating", path)?
                    }
                    HostPathKind::FileOrCreate => {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create(true)
                            .mode(0o644)
                            .custom_flags(libc::O_CLOEXEC)
                            .open(path)
                            .ctx("creating", path)?;
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        // A subPath in an emptyDir is made, as the kubelet makes it.
        for c in p.init.iter().chain(&p.containers) {
            for m in &c.mounts {
                if let (Some(sub), Some(Source::EmptyDir)) = (&m.sub_path, p.volumes.get(&m.name)) {
                    let d = emptydir_path(base, &m.name).join(sub);
                    std::fs::create_dir_all(&d).ctx("creating", &d)?;
                }
            }
        }
        Ok(())
    }

    /// `kube down`: remove the pods the manifest makes (their containers, emptyDir and
    /// configMap directories); named volumes stay. Returns the removed pods' ids.
    pub fn kube_down(&self, file: &str, yaml: &str) -> Result<Vec<String>> {
        (|| -> Result<Vec<String>> {
            let m = Manifest::parse(yaml).map_err(KubeError::from)?;
            let existing: Vec<String> = self.pods().into_iter().map(|p| p.name).collect();
            let names = pod_names(&m);
            if !names.iter().any(|n| existing.contains(n)) {
                return Err(KubeError::NotPlayed(names.join(", ")).into());
            }
            let mut ids = Vec::new();
            for n in names.iter().filter(|n| existing.contains(n)) {
                ids.push(self.pod_remove(n, true)?);
            }
            Ok(ids)
        })()
        .during("kube down", file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(yaml: &str) -> Result<Vec<PodPlan>, KubeError> {
        plan(&Manifest::parse(yaml)?, &|_| {})
    }

    const BASE: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n";

    #[test]
    fn a_pod_becomes_run_options() {
        let p = plan_of(&format!(
            "{BASE}  restartPolicy: OnFailure
  volumes: [{{name: d, emptyDir: {{}}}}, {{name: c, persistentVolumeClaim: {{claimName: data}}}}]
  containers:
  - name: web
    image: busybox
    command: [sh, -c]
    args: [echo hi]
    workingDir: /tmp
    ports: [{{containerPort: 80, hostPort: 8080, hostIP: 127.0.0.1, protocol: UDP}}]
    resources: {{limits: {{memory: 64Mi, cpu: 250m}}, requests: {{cpu: 100m}}}}
    securityContext: {{runAsUser: 1000, runAsGroup: 100, capabilities: {{drop: [ALL]}}}}
    volumeMounts: [{{name: d, mountPath: /d, subPath: x/y}}, {{name: c, mountPath: /c, readOnly: true}}]
  - {{name: other, image: busybox}}
  securityContext: {{runAsUser: 7, runAsGroup: 8}}
"
        ))
        .unwrap();
        let c = &p[0].containers[0];
        assert_eq!(c.opts.name.as_deref(), Some("p-web"));
        assert_eq!(p[0].containers[1].opts.process.user.as_deref(), Some("7:8"));
        assert_eq!(c.opts.entrypoint.as_deref(), Some("sh"));
        assert_eq!(c.opts.cmd, ["-c", "echo hi"]);
        assert_eq!(c.opts.restart, "on-failure");
        assert_eq!(c.opts.memory.as_deref(), Some("67108864"));
        assert_eq!(c.opts.cpus.as_deref(), Some("0.250"));
        assert_eq!(c.opts.host.cpu_shares, Some(102));
        assert_eq!(c.opts.process.user.as_deref(), Some("1000:100"));
        assert_eq!(c.opts.cap_drop, ["ALL"]);
        assert_eq!(p[0].publish, ["127.0.0.1:8080:80/udp"]);
        assert_eq!(
            binds(&c.mounts, &p[0].volumes, Some(Path::new("/k"))),
            ["/k/emptydir/d/x/y:/d", "data:/c:ro"]
        );
    }

    #[test]
    fn env_comes_from_config_maps_and_env_wins() {
        let p = plan_of(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: m}}\ndata: {{A: from-map, B: b}}\n---\n{BASE}  containers:
  - name: c
    image: i
    envFrom: [{{configMapRef: {{name: m}}, prefix: P_}}]
    env:
    - {{name: A, valueFrom: {{configMapKeyRef: {{name: m, key: A}}}}}}
    - {{name: Z, value: 'z-$(P_B)-$(NONE)'}}
    command: [echo, '$(Z)', '$$(Z)']
"
        ))
        .unwrap();
        let o = &p[0].containers[0].opts;
        assert_eq!(
            o.process.env,
            ["P_A=from-map", "P_B=b", "A=from-map", "Z=z-b-$(NONE)"]
        );
        assert_eq!(o.cmd, ["z-b-$(NONE)", "$(Z)"]);
    }

    #[test]
    fn what_cannot_run_is_refused_before_anything_is_made() {
        let e = |spec: &str| plan_of(&format!("{BASE}{spec}")).unwrap_err().to_string();
        assert_eq!(e("  containers: [{name: c}]\n"), "container p-c: no image");
        assert_eq!(e("  containers: []\n"), "pod p: no containers");
        assert_eq!(
            e("  containers: [{name: c, image: i, volumeMounts: [{name: v, mountPath: /v}]}]\n"),
            "container p-c: volumeMounts: no volume \"v\" in the pod"
        );
        assert_eq!(
            e("  volumes: [{name: s, secret: {secretName: x}}]\n  containers: [{name: c, image: i}]\n"),
            "pod p: volume \"s\": no source husk supports (use emptyDir, hostPath, configMap or persistentVolumeClaim)"
        );
        assert_eq!(
            e("  containers: [{name: c, image: i, env: [{name: X, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]}]\n"),
            "container p-c: env X: valueFrom supports only configMapKeyRef"
        );
        assert_eq!(
            e("  containers: [{name: c, image: i, envFrom: [{configMapRef: {name: nope}}]}]\n"),
            "container p-c: no ConfigMap \"nope\" in the manifest"
        );
        assert_eq!(
            e("  volumes: [{name: h, hostPath: {path: /nonexistent-kube-test, type: Directory}}]\n  containers: [{name: c, image: i}]\n"),
            "pod p: volume \"h\": \"/nonexistent-kube-test\": does not exist"
        );
        assert_eq!(
            e("  volumes: [{name: d, emptyDir: {}}]\n  containers: [{name: c, image: i, volumeMounts: [{name: d, mountPath: /d, subPath: ../x}]}]\n"),
            "pod p: volume \"d\": \"../x\": subPath must be relative, without '..'"
        );
        assert_eq!(
            e("  restartPolicy: Sometimes\n  containers: [{name: c, image: i}]\n"),
            "pod p: restartPolicy \"Sometimes\": use Always, OnFailure or Never"
        );
        assert_eq!(
            e("  containers: [{name: c, image: i}, {name: c, image: j}]\n"),
            "pod p: two containers named \"c\""
        );
        assert!(
            e("  containers: [{name: c, image: i, resources: {limits: {memory: 1Ki}}}]\n")
                .starts_with("container p-c: --memory 1024: Minimum memory limit")
        );
    }

    #[test]
    fn deployments_make_replicas_pods() {
        let d = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: REPL\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers: [{name: c, image: i PORTS}]\n";
        let one = plan_of(&d.replace("REPL", "1").replace(" PORTS", "")).unwrap();
        assert_eq!(one[0].name, "d-pod");
        assert_eq!(one[0].labels["app"], "x");
        let three = plan_of(&d.replace("REPL", "3").replace(" PORTS", "")).unwrap();
        let names: Vec<&str> = three.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["d-pod-0", "d-pod-1", "d-pod-2"]);
        let e = plan_of(
            &d.replace("REPL", "2")
                .replace(" PORTS", ", ports: [{containerPort: 80, hostPort: 8080}]"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Deployment d: 2 replicas would publish hostPort 8080 more than once"
        );
    }
}
