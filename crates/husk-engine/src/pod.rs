//! Pods: containers that share a network, IPC and UTS namespace, as podman's (and
//! Kubernetes') pods. `husk pod create` makes a pod's **infra container**: an ordinary
//! engine container of the local image `localhost/husk-pause:HASH` (one layer holding only
//! husk-pause, pause/main.rs, built from the bytes husk embeds the first time a pod is
//! made), which holds the namespaces and does nothing. `husk run --pod P` joins them
//! (through [`crate::joins`], as `--network container:X` does), so the members reach each
//! other on 127.0.0.1 and share the pod's hostname, /etc/hosts and resolv.conf; the pod's
//! network (and its published ports) is the infra's.
//!
//! On disk: ROOT/pods/ID/pod.json (id, name, created, infra id, labels); a container knows
//! its pod from container.json's `pod` (and `infra` for the infra container). The pod's
//! state is its containers' states: nothing of it is stored.
//!
//! Like podman's, a new pod is created, not started: its infra starts with the first
//! member (or `pod start`). Removing the pod removes its containers, members first; the
//! infra container cannot be removed on its own while its pod exists.

use crate::config::{valid_name, ContainerConfig, RunOptions};
use crate::engine::Engine;
use crate::error::{During, Error, Result};
use crate::os::{IoContext, IoError};
use crate::record::Timestamp;
use crate::record::{self, Record};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What a pod is in the wrong state for, or a name that does not fit.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("no such pod: {0}")]
    NotFound(String),
    #[error("{what:?} matches {n} pods: give more of the id")]
    Ambiguous { what: String, n: usize },
    #[error("the pod name {0:?} is already in use")]
    NameInUse(String),
    #[error("--name {0:?}: use letters, digits, '_', '.', '-'")]
    Name(String),
    #[error("the pod has running containers: stop it first or use -f")]
    Running,
    /// podman's words for a member's own network settings.
    #[error("{0}: network cannot be configured when it is shared with a pod")]
    SharedNetwork(&'static str),
    #[error(
        "-p: published or exposed ports must be defined when the pod is created: \
         network cannot be configured when it is shared with a pod"
    )]
    SharedPorts,
    #[error("--hostname: cannot set hostname when joining the pod UTS namespace")]
    SharedHostname,
    #[error(
        "container {container} is the infra container of pod {pod}: remove the pod (husk pod rm)"
    )]
    Infra { container: String, pod: String },
}

/// `husk pod create`'s options, as given.
#[derive(Clone, Debug, Default)]
pub struct PodOptions {
    pub name: Option<String>,
    /// The infra container's `--network` (the pod's); empty: the default.
    pub network: Option<String>,
    /// `KEY[=VALUE]`
    pub labels: Vec<String>,
    /// `-p`: ports published on the pod (its infra container).
    pub publish: Vec<String>,
    /// The hostname its containers share; None: the pod's name (kube play's spec.hostname).
    pub hostname: Option<String>,
}

/// One pod as `pod ls` shows it.
#[derive(Clone, Debug)]
pub struct PodSummary {
    pub id: String,
    pub name: String,
    /// Created, Running, Degraded (some running), Exited.
    pub status: &'static str,
    /// RFC 3339.
    pub created: String,
    pub infra_id: String,
    /// Every container of the pod, the infra first: (id, name, status).
    pub containers: Vec<(String, String, &'static str)>,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The pod a container joins, found for `run --pod`.
pub(crate) struct Membership {
    pub id: String,
    pub name: String,
    /// Its UTS namespace's name: the pod's hostname, else its name.
    pub hostname: String,
    pub infra_id: String,
}

/// pod.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PodMeta {
    id: String,
    #[serde(default)]
    name: String,
    created: Timestamp,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// The infra container's id; None until it is made.
    #[serde(default)]
    infra: Option<String>,
    /// The hostname, when it is not the pod's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
}

/// A pod on disk.
struct PodRecord {
    dir: PathBuf,
    meta: PodMeta,
}

impl PodRecord {
    fn id(&self) -> &str {
        &self.meta.id
    }

    fn name(&self) -> &str {
        &self.meta.name
    }

    fn infra(&self) -> &str {
        self.meta.infra.as_deref().unwrap_or_default()
    }
}

fn pods_dir(root: &Path) -> PathBuf {
    root.join("pods")
}

/// The directory of the pod `id`: removed with the pod, so what lives there (kube play's
/// emptyDir and configMap volumes) goes with it.
pub(crate) fn dir_of(root: &Path, id: &str) -> PathBuf {
    pods_dir(root).join(id)
}

/// DIR/pod.json; None when it is missing or damaged (the pod is then not listed).
fn load(dir: &Path) -> Option<PodRecord> {
    let meta = serde_json::from_slice(&std::fs::read(dir.join("pod.json")).ok()?).ok()?;
    Some(PodRecord {
        dir: dir.to_path_buf(),
        meta,
    })
}

/// Write pod.json atomically.
fn save(p: &PodRecord) -> Result<(), IoError> {
    let f = p.dir.join("pod.json");
    let tmp = p.dir.join(".pod.json.tmp");
    serde_json::to_vec_pretty(&p.meta)
        .map_err(std::io::Error::from)
        .and_then(|data| std::fs::write(&tmp, data))
        .and_then(|()| std::fs::rename(&tmp, &f))
        .ctx("writing", &f)
}

/// Every pod, oldest first.
fn list(root: &Path) -> Vec<PodRecord> {
    let mut v: Vec<PodRecord> = std::fs::read_dir(pods_dir(root))
        .map(|rd| rd.flatten().filter_map(|e| load(&e.path())).collect())
        .unwrap_or_default();
    v.sort_by(|a, b| a.meta.created.cmp(&b.meta.created));
    v
}

/// The pod named `what`, or with that id, or the one whose id starts with it.
fn find(root: &Path, what: &str) -> Result<PodRecord, PodError> {
    let all = list(root);
    if let Some(i) = all.iter().position(|p| p.name() == what || p.id() == what) {
        return Ok(all.into_iter().nth(i).unwrap());
    }
    let mut hits: Vec<PodRecord> = all
        .into_iter()
        .filter(|p| !what.is_empty() && p.id().starts_with(what))
        .collect();
    match hits.len() {
        1 => Ok(hits.pop().unwrap()),
        0 => Err(PodError::NotFound(what.to_string())),
        n => Err(PodError::Ambiguous {
            what: what.to_string(),
            n,
        }),
    }
}

/// The pod's hostname when it is not its name (kube play's spec.hostname).
pub(crate) fn hostname_of(root: &Path, id: &str) -> Option<String> {
    load(&dir_of(root, id))?.meta.hostname
}

/// Whether the pod `id` exists.
fn exists(root: &Path, id: &str) -> bool {
    pods_dir(root).join(id).join("pod.json").exists()
}

/// The pod's containers, the infra first, then the members oldest first.
fn containers_of(root: &Path, p: &PodRecord) -> Vec<Record> {
    let mut v: Vec<Record> = record::list(root)
        .into_iter()
        .filter(|r| r.meta.pod.as_deref() == Some(p.id()))
        .collect();
    v.sort_by_key(|r| r.id() != p.infra());
    v
}

/// Refuse what `run --pod` cannot do: the pod owns the network and the hostname.
pub(crate) fn check_member(o: &RunOptions) -> Result<(), PodError> {
    if o.network != RunOptions::new("").network {
        return Err(PodError::SharedNetwork("--network"));
    }
    if o.hostname.is_some() {
        return Err(PodError::SharedHostname);
    }
    if !o.publish.is_empty() || o.publish_all {
        return Err(PodError::SharedPorts);
    }
    if !o.host.add_hosts.is_empty() {
        return Err(PodError::SharedNetwork("--add-host"));
    }
    Ok(())
}

/// `rm` of an infra container whose pod still exists: refused.
pub(crate) fn check_removable(root: &Path, r: &Record) -> Result<(), PodError> {
    match r.meta.pod.as_deref() {
        Some(pod) if r.meta.infra && exists(root, pod) => Err(PodError::Infra {
            container: r.name().to_string(),
            pod: r.meta.pod_name.as_deref().unwrap_or(pod).to_string(),
        }),
        _ => Ok(()),
    }
}

/// The pod status podman shows, from its containers' statuses.
fn pod_status(statuses: &[&str]) -> &'static str {
    let running = statuses
        .iter()
        .filter(|s| **s == "running" || **s == "paused")
        .count();
    match running {
        _ if statuses.is_empty() || statuses.iter().all(|s| *s == "created") => "Created",
        n if n == statuses.len() => "Running",
        0 => "Exited",
        _ => "Degraded",
    }
}

/// The one-layer tar of the infra image: /pause.
fn pause_layer(pause: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut w = husk_image::tar::Writer::new(Vec::new());
    w.file("pause", 0o755, pause)?;
    w.finish()
}

impl Engine {
    /// The infra image, imported from the embedded husk-pause when the store lacks it.
    fn pause_image(&self, name: &str) -> Result<()> {
        let pause = crate::embedded::pause_binary()?;
        if self.store()?.resolve(name, &self.default_registry).is_err() {
            let layer = pause_layer(pause).ctx("making the layer of", name)?;
            self.import(
                &mut &layer[..],
                Some(name),
                &[r#"ENTRYPOINT ["/pause"]"#.to_string()],
                Some("husk pod infra (husk-pause)"),
            )?;
        }
        Ok(())
    }

    /// Create a pod and its infra container (not started: the first member starts it).
    /// Returns the pod's id.
    pub fn pod_create(&self, o: &PodOptions) -> Result<String> {
        let what = o.name.clone().unwrap_or_default();
        self.pod_create_inner(o).during("pod create", what)
    }

    fn pod_create_inner(&self, o: &PodOptions) -> Result<String> {
        if let Some(n) = &o.name {
            if !valid_name(n) {
                return Err(PodError::Name(n.clone()).into());
            }
        }
        let labels = crate::host_config::HostConfig::validate(
            &crate::host_config::HostOptions {
                labels: o.labels.clone(),
                ..Default::default()
            },
            None,
            false,
        )
        .map_err(crate::config::ConfigError::from)?
        .labels;
        // Tagged with the binary's hash: a changed husk-pause makes a new image.
        let pause = crate::embedded::pause_binary()?;
        let hash = husk_image::digest::Digest::of(pause);
        let image = format!("localhost/husk-pause:{}", &hash.hex()[..12]);
        let pods = pods_dir(&self.root);
        std::fs::create_dir_all(&pods).ctx("creating", &pods)?;
        // Held until pod.json is written: two creates cannot both take one name.
        let _lock = crate::os::lock_file(&pods.with_extension("lock"))?;
        let id = crate::run::new_id()?;
        let name = o.name.clone().unwrap_or_else(|| id[..12].to_string());
        if list(&self.root).iter().any(|p| p.name() == name) {
            return Err(PodError::NameInUse(name).into());
        }
        let mut infra = RunOptions::new(image.clone());
        infra.name = Some(format!("{}-infra", &id[..12]));
        infra.hostname = Some(o.hostname.clone().unwrap_or_else(|| name.clone()));
        infra.detach = true;
        infra.publish = o.publish.clone();
        if let Some(n) = &o.network {
            infra.network = vec![n.clone()];
            // As podman's: on a user-defined network (one with names) the others reach the
            // pod by its name, an alias of the infra container, whose address is the pod's.
            let named = crate::network::Network::parse(n)
                .is_ok_and(|m| m == crate::network::Network::Bridge)
                && n != crate::network::store::DEFAULT;
            if named && valid_name(&name) {
                infra.network_alias = vec![name.clone()];
            }
        }
        let cfg = ContainerConfig::validate(&infra)?;
        self.pause_image(&image)?;
        let dir = pods.join(&id);
        std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
        let mut pod = PodRecord {
            dir: dir.clone(),
            meta: PodMeta {
                id: id.clone(),
                name: name.clone(),
                created: Timestamp::now(),
                labels,
                infra: None,
                hostname: o.hostname.clone(),
            },
        };
        let made = save(&pod).map_err(Error::from).and_then(|()| {
            let infra_id = self.create(&cfg, Arc::new(husk_image::pull::NoProgress))?;
            pod.meta.infra = Some(infra_id.clone());
            let marked = record::find(&self.root, &infra_id)
                .map_err(Error::from)
                .and_then(|mut r| {
                    r.meta.pod = Some(id.clone());
                    r.meta.pod_name = Some(name.clone());
                    r.meta.infra = true;
                    Ok(r.save()?)
                })
                .and_then(|()| Ok(save(&pod)?));
            if marked.is_err() {
                let _ = self.remove(&infra_id, true);
            }
            marked
        });
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(id)
    }

    /// For `run --pod WHAT`: the pod, its infra started if it is not running.
    pub(crate) fn pod_to_join(&self, what: &str) -> Result<Membership> {
        let p = find(&self.root, what)?;
        self.start_infra(&p)?;
        Ok(Membership {
            id: p.id().to_string(),
            name: p.name().to_string(),
            hostname: p
                .meta
                .hostname
                .clone()
                .unwrap_or_else(|| p.name().to_string()),
            infra_id: p.infra().to_string(),
        })
    }

    /// Start the pod's infra container unless it runs.
    fn start_infra(&self, p: &PodRecord) -> Result<()> {
        let infra = record::find(&self.root, p.infra())?;
        if infra.status() != "running" {
            self.start(infra.id())?;
        }
        Ok(())
    }

    /// Before a member of a pod starts (again): its pod's infra, started.
    pub(crate) fn before_member_start(&self, r: &Record) -> Result<()> {
        match r.meta.pod.as_deref() {
            Some(pod) if !r.meta.infra => {
                let p = find(&self.root, pod)?;
                self.start_infra(&p)
            }
            _ => Ok(()),
        }
    }

    /// Every pod, oldest first.
    pub fn pods(&self) -> Vec<PodSummary> {
        list(&self.root)
            .iter()
            .map(|p| self.pod_summary(p))
            .collect()
    }

    fn pod_summary(&self, p: &PodRecord) -> PodSummary {
        let containers: Vec<(String, String, &'static str)> = containers_of(&self.root, p)
            .into_iter()
            .map(|r| {
                // A container whose runner died is settled first, as `ps` does.
                crate::monitor::settle_orphan(&r, None);
                let status = r.status();
                (r.id().to_string(), r.name().to_string(), status)
            })
            .collect();
        let statuses: Vec<&str> = containers.iter().map(|c| c.2).collect();
        PodSummary {
            id: p.id().to_string(),
            name: p.name().to_string(),
            status: pod_status(&statuses),
            created: p.meta.created.to_string(),
            infra_id: p.infra().to_string(),
            containers,
            labels: p.meta.labels.clone(),
        }
    }

    /// `pod inspect`: podman's main fields.
    pub fn pod_inspect(&self, what: &str) -> Result<Value> {
        let p = find(&self.root, what).during("pod inspect", what)?;
        let s = self.pod_summary(&p);
        let infra = record::find(&self.root, &s.infra_id).ok();
        Ok(json!({
            "Id": s.id,
            "Name": s.name,
            "Created": s.created,
            "State": s.status,
            "Hostname": s.name,
            "Labels": s.labels,
            "InfraContainerID": s.infra_id,
            "InfraConfig": {
                "NetworkOptions": infra.as_ref().map(|r| r.meta.network.to_string()),
            },
            "SharedNamespaces": ["ipc", "net", "uts"],
            "NumContainers": s.containers.len(),
            "Containers": s.containers.iter().map(|(id, name, st)| json!({
                "Id": id, "Name": name, "State": st,
            })).collect::<Vec<_>>(),
        }))
    }

    /// `pod start`: the infra, then every member that does not run. Returns the pod's id.
    pub fn pod_start(&self, what: &str) -> Result<String> {
        let p = find(&self.root, what).during("pod start", what)?;
        self.start_infra(&p).during("pod start", what)?;
        for r in containers_of(&self.root, &p) {
            if r.status() != "running" && r.status() != "paused" {
                self.start(r.id()).during("pod start", what)?;
            }
        }
        Ok(p.meta.id)
    }

    /// `pod stop`: every member, then the infra (each as `stop` with `timeout`).
    pub fn pod_stop(&self, what: &str, timeout: Duration) -> Result<String> {
        let p = find(&self.root, what).during("pod stop", what)?;
        for r in containers_of(&self.root, &p).iter().rev() {
            self.stop(r.id(), timeout).during("pod stop", what)?;
        }
        Ok(p.meta.id)
    }

    /// `pod rm`: the pod and its containers (running ones only with `force`, killed).
    pub fn pod_remove(&self, what: &str, force: bool) -> Result<String> {
        self.pod_remove_inner(what, force).during("pod rm", what)
    }

    fn pod_remove_inner(&self, what: &str, force: bool) -> Result<String> {
        let p = find(&self.root, what)?;
        let all = containers_of(&self.root, &p);
        if !force
            && all
                .iter()
                .any(|r| matches!(r.status(), "running" | "paused"))
        {
            return Err(PodError::Running.into());
        }
        // Members first: they hold the infra's namespaces, not the other way round.
        for r in all.iter().filter(|r| r.id() != p.infra()) {
            self.remove(r.id(), force)?;
        }
        // The pod goes before its infra, which may then be removed.
        std::fs::remove_dir_all(&p.dir).ctx("removing", &p.dir)?;
        if record::find(&self.root, p.infra()).is_ok() {
            self.remove(p.infra(), true)?;
        }
        Ok(p.meta.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_status_is_podmans() {
        assert_eq!(pod_status(&[]), "Created");
        assert_eq!(pod_status(&["created", "created"]), "Created");
        assert_eq!(pod_status(&["running", "running"]), "Running");
        assert_eq!(pod_status(&["running", "exited"]), "Degraded");
        assert_eq!(pod_status(&["exited", "created"]), "Exited");
    }

    #[test]
    fn members_cannot_set_the_pods_network_or_hostname() {
        let mut o = RunOptions::new("img");
        assert!(check_member(&o).is_ok());
        o.network = vec!["host".into()];
        assert_eq!(
            check_member(&o).unwrap_err().to_string(),
            "--network: network cannot be configured when it is shared with a pod"
        );
        let mut o = RunOptions::new("img");
        o.hostname = Some("h".into());
        assert!(check_member(&o).is_err());
    }
}
