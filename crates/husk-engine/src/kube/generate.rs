//! `kube generate POD|CONTAINER`: a pod written back as a v1 Pod (and the ConfigMaps of
//! its configMap volumes) that `kube play` accepts, made from what the engine recorded:
//! container.json (image, entrypoint/cmd split, binds, volumes, ports, restart policy,
//! capabilities) and config.json (environment, working directory, limits, read-only root).
//! What equals the image's own setting (its Env, Entrypoint, Cmd, WorkingDir) is left out,
//! as podman leaves it out, so the manifest says what was asked. A container outside a pod
//! becomes a pod `NAME-pod` of that one container.

use super::expand::escape;
use super::manifest::{
    Capabilities, ClaimRef, ConfigMap, ConfigMapVolume, Container, ContainerPort, EmptyDir,
    HostPath, KeyToPath, ObjectMeta, Pod, PodSpec, Resources, SecurityContext, Volume, VolumeMount,
};
use super::quantity::Quantity;
use super::KubeError;
use crate::engine::Engine;
use crate::error::{During, Result};
use crate::network::ports::PortMapping;
use crate::record::{self, Record};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The image's defaults a container's settings are compared with.
#[derive(Default)]
struct ImageDefaults {
    env: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    workdir: String,
}

/// An environment entry the container has without having asked for it: husk's own
/// (HOSTNAME, container, TERM with a tty, HOME from the user's passwd entry — so an asked
/// HOME is not written back — and the default PATH) or the image's.
fn added_by_husk(e: &str, tty: bool, image_env: &[String]) -> bool {
    const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    e.starts_with("HOSTNAME=")
        || e.starts_with("HOME=")
        || e == "container=husk"
        || e == DEFAULT_PATH
        || (tty && e == "TERM=xterm")
        || image_env.iter().any(|i| i == e)
}

/// A Kubernetes name (DNS label) from a host path: `/srv/my data` → `srv-my-data`.
fn label_of(path: &str) -> String {
    let s: String = path
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "root".into()
    } else {
        s
    }
}

/// The pod's volumes as they are collected from its containers' mounts.
#[derive(Default)]
struct Volumes {
    list: Vec<Volume>,
    maps: Vec<ConfigMap>,
}

impl Volumes {
    /// The volume named `name` (added by `make` the first time).
    fn add(&mut self, name: &str, make: impl FnOnce() -> Volume) -> String {
        if !self.list.iter().any(|v| v.name == name) {
            self.list.push(make());
        }
        name.to_string()
    }

    /// A name for a hostPath volume of `path`, unique in the pod.
    fn host_path(&mut self, path: &str) -> String {
        if let Some(v) = self
            .list
            .iter()
            .find(|v| v.host_path.as_ref().is_some_and(|h| h.path == path))
        {
            return v.name.clone();
        }
        let base = label_of(path);
        let mut name = base.clone();
        let mut n = 1;
        while self.list.iter().any(|v| v.name == name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        self.add(&name, || Volume {
            name: name.clone(),
            host_path: Some(HostPath {
                path: path.into(),
                kind: None,
            }),
            ..Default::default()
        })
    }
}

/// Every regular file below `dir`: (relative path, content, mode).
fn files_below(dir: &Path) -> Vec<(String, String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                let data = std::fs::read_to_string(e.path()).unwrap_or_default();
                out.push((rel, data, m.permissions().mode() & 0o777));
            }
        }
    }
    out.sort();
    out
}

impl Engine {
    /// `kube generate WHAT`: the YAML of the pod WHAT (a name, id or id prefix), or of the
    /// pod of the container WHAT.
    pub fn kube_generate(&self, what: &str) -> Result<String> {
        self.kube_generate_inner(what).during("kube generate", what)
    }

    fn kube_generate_inner(&self, what: &str) -> Result<String> {
        let pods = self.pods();
        let by_name = pods.iter().find(|p| p.name == what || p.id == what);
        let by_prefix: Vec<_> = pods.iter().filter(|p| p.id.starts_with(what)).collect();
        let pod = match (by_name, by_prefix.as_slice()) {
            (Some(p), _) => Some(p),
            (None, [p]) => Some(*p),
            _ => None,
        };
        let (name, labels, hostname, infra, members) = match pod {
            Some(p) => {
                let infra = record::find(&self.root, &p.infra_id).ok();
                let members: Vec<Record> = p
                    .containers
                    .iter()
                    .filter(|(id, _, _)| *id != p.infra_id)
                    .filter_map(|(id, _, _)| record::find(&self.root, id).ok())
                    .collect();
                let hostname = crate::pod::hostname_of(&self.root, &p.id);
                (p.name.clone(), p.labels.clone(), hostname, infra, members)
            }
            None => {
                let r = record::find(&self.root, what)?;
                if let Some(pod) = &r.meta.pod {
                    return self.kube_generate_inner(pod);
                }
                (
                    format!("{}-pod", r.name()),
                    BTreeMap::new(),
                    None,
                    None,
                    vec![r],
                )
            }
        };
        if members.is_empty() {
            return Err(KubeError::NoContainers { pod: name }.into());
        }
        // The pod's ports and network are its infra's (or the lone container's).
        let net_of = infra.as_ref().unwrap_or(&members[0]);
        let host_network = net_of.meta.network.to_string() == "host";
        let ports = net_of.meta.ports.clone();
        let pod_dir = pod.map(|p| crate::pod::dir_of(&self.root, &p.id));
        let mut vols = Volumes::default();
        let mut containers = Vec::new();
        for (i, r) in members.iter().enumerate() {
            let ports = if i == 0 { &ports[..] } else { &[] };
            containers.push(self.container_of(r, &name, ports, pod_dir.as_deref(), &mut vols));
        }
        let restart_policy = match members[0].meta.restart.to_string().as_str() {
            "no" => "Never",
            s if s.starts_with("on-failure") => "OnFailure",
            _ => "Always",
        };
        let manifest = Pod {
            api_version: "v1".into(),
            kind: "Pod".into(),
            metadata: ObjectMeta {
                name: Some(name),
                labels,
                ..Default::default()
            },
            spec: PodSpec {
                containers,
                restart_policy: Some(restart_policy.into()),
                host_network,
                hostname,
                volumes: vols.list,
                ..Default::default()
            },
        };
        let mut out = String::new();
        for m in &vols.maps {
            out.push_str(&serde_yaml_ng::to_string(m).map_err(KubeError::Write)?);
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(&manifest).map_err(KubeError::Write)?);
        Ok(out)
    }

    fn image_defaults(&self, r: &Record) -> ImageDefaults {
        let cfg = self.store().ok().and_then(|s| {
            let rec = s.resolve(&r.meta.image_id, &self.default_registry).ok()?;
            let blob = s.read_blob(&rec.config_digest).ok()?;
            husk_image::pull::parse_config(&blob).ok()
        });
        let Some(c) = cfg.as_ref().and_then(|c| c.config().clone()) else {
            return ImageDefaults::default();
        };
        ImageDefaults {
            env: c.env().clone().unwrap_or_default(),
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            workdir: c.working_dir().clone().unwrap_or_default(),
        }
    }

    fn container_of(
        &self,
        r: &Record,
        pod: &str,
        ports: &[PortMapping],
        pod_dir: Option<&Path>,
        vols: &mut Volumes,
    ) -> Container {
        let m = &r.meta;
        let img = self.image_defaults(r);
        let spec: Value = std::fs::read(r.dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let name = r
            .name()
            .strip_prefix(&format!("{pod}-"))
            .unwrap_or(r.name())
            .to_string();
        // Written so that play's `$(VAR)` expansion gives them back as they are.
        let esc = |v: &[String]| v.iter().map(|s| escape(s)).collect::<Vec<_>>();
        let (command, args) = if m.entrypoint == img.entrypoint {
            let args = if m.cmd == img.cmd {
                vec![]
            } else {
                esc(&m.cmd)
            };
            (vec![], args)
        } else {
            (esc(&m.entrypoint), esc(&m.cmd))
        };
        let process = &spec["process"];
        let tty = process["terminal"].as_bool().unwrap_or(false);
        // husk's own additions and the image's own entries are not the container's asks.
        let env = process["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|e| !added_by_husk(e, tty, &img.env))
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| super::manifest::EnvVar {
                name: k.into(),
                value: Some(escape(v)),
                value_from: None,
            })
            .collect();
        let cwd = process["cwd"].as_str().unwrap_or("/");
        let image_cwd = if img.workdir.is_empty() {
            "/"
        } else {
            &img.workdir
        };
        let working_dir = (cwd != image_cwd).then(|| cwd.to_string());
        let ports = ports
            .iter()
            .map(|p| ContainerPort {
                container_port: p.container_port,
                host_port: Some(p.host_port),
                protocol: Some(p.protocol.to_string().to_uppercase()),
                host_ip: p.host_ip.map(|ip| ip.to_string()),
                name: None,
            })
            .collect();
        let resources = resources_of(&spec["linux"]["resources"]);
        let user = m.user.as_deref().and_then(|u| {
            let (u, g) = u.split_once(':').map_or((u, None), |(u, g)| (u, Some(g)));
            Some((u.parse::<u32>().ok()?, g.map(|g| g.parse::<u32>().ok())))
        });
        let sc = SecurityContext {
            run_as_user: user.map(|u| u.0),
            run_as_group: user.and_then(|u| u.1.flatten()),
            privileged: m.privileged.then_some(true),
            read_only_root_filesystem: spec["root"]["readonly"].as_bool().filter(|ro| *ro),
            allow_privilege_escalation: m
                .security_opt
                .iter()
                .any(|s| s == "no-new-privileges" || s == "no-new-privileges=true")
                .then_some(false),
            capabilities: (!m.cap_add.is_empty()).then(|| Capabilities {
                add: m.cap_add.clone(),
                drop: vec![],
            }),
        };
        let security_context = (sc != SecurityContext::default()).then_some(sc);
        let mut volume_mounts = Vec::new();
        let kube = pod_dir.map(|d| d.join("kube"));
        for b in &m.binds {
            let mut parts = b.splitn(3, ':');
            let (Some(src), Some(dst)) = (parts.next(), parts.next()) else {
                continue;
            };
            let read_only = parts
                .next()
                .is_some_and(|o| o.split(',').any(|o| o == "ro"));
            let inside = |kind: &str| {
                let k = kube.as_ref()?.join(kind);
                let rest = Path::new(src).strip_prefix(&k).ok()?;
                let mut c = rest.components();
                let vol = c.next()?.as_os_str().to_string_lossy().into_owned();
                let sub = c.as_path().display().to_string();
                Some((k.join(&vol), vol, (!sub.is_empty()).then_some(sub)))
            };
            let (name, sub_path, read_only) = if let Some((_, vol, sub)) = inside("emptydir") {
                let n = vols.add(&vol, || Volume {
                    name: vol.clone(),
                    empty_dir: Some(EmptyDir::default()),
                    ..Default::default()
                });
                (n, sub, read_only)
            } else if let Some((dir, vol, sub)) = inside("configmap") {
                let map_name = format!("{pod}-{vol}");
                let files = files_below(&dir);
                let flat = |p: &str| p.replace('/', "_");
                let plain = files
                    .iter()
                    .all(|(p, _, mode)| flat(p) == *p && *mode == 0o644);
                let n = vols.add(&vol, || Volume {
                    name: vol.clone(),
                    config_map: Some(ConfigMapVolume {
                        name: map_name.clone(),
                        items: match plain {
                            true => vec![],
                            false => files
                                .iter()
                                .map(|(p, _, mode)| KeyToPath {
                                    key: flat(p),
                                    path: p.clone(),
                                    mode: (*mode != 0o644).then_some(*mode),
                                })
                                .collect(),
                        },
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                if !vols
                    .maps
                    .iter()
                    .any(|c| c.metadata.name.as_deref() == Some(&map_name))
                {
                    vols.maps.push(ConfigMap {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        metadata: ObjectMeta {
                            name: Some(map_name),
                            ..Default::default()
                        },
                        data: files.into_iter().map(|(p, d, _)| (flat(&p), d)).collect(),
                    });
                }
                // configMap volumes are read-only whatever the mount says.
                (n, sub, false)
            } else {
                (vols.host_path(src), None, read_only)
            };
            volume_mounts.push(VolumeMount {
                name,
                mount_path: dst.into(),
                read_only,
                sub_path,
            });
        }
        // Anonymous volumes are left out: they are the image's VOLUMEs, which play makes
        // again.
        for v in m.mounts.iter().filter(|v| !v.anonymous) {
            let n = label_of(&v.name);
            let claim = v.name.clone();
            let name = vols.add(&n, || Volume {
                name: n.clone(),
                persistent_volume_claim: Some(ClaimRef {
                    claim_name: claim,
                    read_only: false,
                }),
                ..Default::default()
            });
            volume_mounts.push(VolumeMount {
                name,
                mount_path: v.destination.clone(),
                read_only: !v.rw,
                sub_path: None,
            });
        }
        Container {
            name,
            image: Some(m.image.clone()),
            command,
            args,
            env,
            working_dir,
            ports,
            volume_mounts,
            resources,
            security_context,
            tty,
            ..Default::default()
        }
    }
}

/// limits.memory and limits.cpu from the spec's memory limit and CPU quota/period, and the
/// requests play derives reservation and shares from.
fn resources_of(res: &Value) -> Option<Resources> {
    let mut r = Resources::default();
    if let Some(limit) = res["memory"]["limit"].as_i64().filter(|l| *l > 0) {
        r.limits
            .insert("memory".into(), Quantity::from_bytes(limit as u64));
    }
    if let (Some(quota), Some(period)) = (
        res["cpu"]["quota"].as_i64().filter(|q| *q > 0),
        res["cpu"]["period"].as_u64().filter(|p| *p > 0),
    ) {
        let millis = (quota as u64 * 1000).div_ceil(period);
        r.limits.insert("cpu".into(), Quantity::from_millis(millis));
    }
    if let Some(res) = res["memory"]["reservation"].as_i64().filter(|l| *l > 0) {
        r.requests
            .insert("memory".into(), Quantity::from_bytes(res as u64));
    }
    if let Some(shares) = res["cpu"]["shares"]
        .as_u64()
        .filter(|s| *s > 0 && *s != 1024)
    {
        r.requests.insert(
            "cpu".into(),
            Quantity::from_millis((shares * 1000).div_ceil(1024)),
        );
    }
    (r != Resources::default()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_are_read_back_as_quantities() {
        let r = resources_of(&json!({
            "memory": {"limit": 67108864},
            "cpu": {"quota": 50000, "period": 100000, "shares": 102},
        }))
        .unwrap();
        assert_eq!(r.limits["memory"].to_string(), "64Mi");
        assert_eq!(r.limits["cpu"].to_string(), "500m");
        // 100m → 102 shares (play) → 100m.
        assert_eq!(r.requests["cpu"].to_string(), "100m");
        assert_eq!(resources_of(&json!({})), None);
    }

    #[test]
    fn host_paths_get_kubernetes_names() {
        assert_eq!(label_of("/srv/My Data/"), "srv-my-data");
        assert_eq!(label_of("/"), "root");
        let mut v = Volumes::default();
        assert_eq!(v.host_path("/a/b"), "a-b");
        assert_eq!(v.host_path("/a-b"), "a-b-2");
        assert_eq!(v.host_path("/a/b"), "a-b");
    }
}
