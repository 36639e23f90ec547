//! The part of the Kubernetes API `kube play` understands, as typed serde structs, and the
//! multi-document YAML reader that fills them.
//!
//! Kinds: `v1` Pod, ConfigMap and PersistentVolumeClaim, `apps/v1` Deployment. Another
//! kind or apiVersion is an error: playing part of a manifest would be a silent misrun.
//! A field these structs do not have is read past with a warning naming its path
//! (`spec.containers[0].livenessProbe: not supported, ignored`), except the ones that
//! only describe a live object (`status`, `metadata.creationTimestamp`, …), which
//! generated manifests carry. Where an unsupported field would change what runs (a
//! `secret` volume, an env `fieldRef`), the struct it lands in lacks what it needs and
//! play refuses it with its own error (`play.rs`).
//!
//! The same structs are written back by `kube generate` (so what generate writes, play
//! reads); empty fields are left out of its YAML.

use super::quantity::Quantity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A manifest that cannot be read or names what husk cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {doc}: {source}")]
    Yaml {
        doc: usize,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("document {doc}: expected a mapping with apiVersion and kind")]
    NotAnObject { doc: usize },
    #[error(
        "document {doc}: kind {kind:?} is not supported (use Pod, Deployment, ConfigMap or PersistentVolumeClaim)"
    )]
    UnknownKind { doc: usize, kind: String },
    #[error("document {doc}: {kind} of apiVersion {api_version:?} is not supported (use {want})")]
    ApiVersion {
        doc: usize,
        kind: String,
        api_version: String,
        want: &'static str,
    },
    #[error("document {doc} ({kind}): {path}: {message}")]
    Field {
        doc: usize,
        kind: String,
        path: String,
        message: String,
    },
    #[error("document {doc} ({kind}): metadata.name is missing")]
    NoName { doc: usize, kind: String },
    #[error("no Pod or Deployment in the manifest")]
    NoPods,
}

/// metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Accepted: husk has no namespaces, so a warning says it is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `v1` Pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
}

/// `apps/v1` Deployment: `replicas` pods of `template`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: DeploymentSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    #[serde(default)]
    pub replicas: Option<u32>,
    /// Matches the template's labels in Kubernetes; nothing to select here.
    #[serde(default)]
    pub selector: Option<serde_yaml_ng::Value>,
    /// Rollout settings: there is no rollout, one play makes the pods.
    #[serde(default)]
    pub strategy: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub template: PodTemplate,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
}

/// `v1` ConfigMap: files for `configMap` volumes, values for `envFrom` / `valueFrom`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

/// `v1` PersistentVolumeClaim: a named volume of its name (its size and access modes
/// describe storage husk's local volumes do not limit).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaim {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<serde_yaml_ng::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    /// Always (the default), OnFailure, Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_network: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// The pod's defaults for its containers' securityContext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
}

/// The part of a pod's securityContext that is a default of its containers' own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Always, IfNotPresent, Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Replaces the image's cmd.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub tty: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Only `configMapKeyRef`: a `secretKeyRef` or `fieldRef` leaves it empty, and play says so.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    pub name: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFromSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<NameRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub container_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// TCP (the default) or UDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// memory, cpu.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Quantity>,
    /// memory (a soft limit: memory reservation), cpu (CPU shares, as the kubelet sets them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// One of the sources below; another kind (secret, nfs, …) leaves them all empty, and
/// play refuses the volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDir>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<ClaimRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDir {
    /// "" (disk) or Memory (accepted with a warning: the directory is on disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<Quantity>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPath {
    pub path: String,
    /// "", DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapVolume {
    pub name: String,
    /// Only these keys, at these paths; empty: every key, at its own name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRef {
    pub claim_name: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A manifest's objects, in document order, and the warnings reading it gave.
#[derive(Debug, Default)]
pub struct Manifest {
    pub pods: Vec<Pod>,
    pub deployments: Vec<Deployment>,
    pub config_maps: Vec<ConfigMap>,
    pub claims: Vec<PersistentVolumeClaim>,
    pub warnings: Vec<String>,
}

/// Fields that describe a live object, not what to run: read past without a warning.
fn is_live_state(path: &str) -> bool {
    path == "status"
        || path.ends_with("metadata.creationTimestamp")
        || path.ends_with("metadata.uid")
        || path.ends_with("metadata.resourceVersion")
        || path.ends_with("metadata.generation")
        || path.ends_with("metadata.managedFields")
        || path.ends_with("terminationMessagePath")
        || path.ends_with("terminationMessagePolicy")
        || path.ends_with("spec.dnsPolicy")
        || path.ends_with("spec.schedulerName")
        || path.ends_with("spec.terminationGracePeriodSeconds")
        || path.ends_with("spec.enableServiceLinks")
}

/// serde_ignored's `containers.0.x` as serde_path_to_error (and kubectl) write it:
/// `containers[0].x`.
fn indexed(path: &str) -> String {
    let mut out = String::new();
    for seg in path.split('.') {
        match seg.parse::<usize>() {
            Ok(n) => out.push_str(&format!("[{n}]")),
            Err(_) if out.is_empty() => out.push_str(seg),
            Err(_) => {
                out.push('.');
                out.push_str(seg);
            }
        }
    }
    out
}

/// `value` as a `T`, the unknown fields it had added to `warnings` as `kind`'s paths.
fn typed<T: serde::de::DeserializeOwned>(
    doc: usize,
    kind: &str,
    value: serde_yaml_ng::Value,
    warnings: &mut Vec<String>,
) -> Result<T, ManifestError> {
    let mut ignored = Vec::new();
    let mut note = |p: serde_ignored::Path<'_>| ignored.push(indexed(&p.to_string()));
    let de = serde_ignored::Deserializer::new(value, &mut note);
    let t = serde_path_to_error::deserialize(de).map_err(|e| ManifestError::Field {
        doc,
        kind: kind.to_string(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    for p in ignored.into_iter().filter(|p| !is_live_state(p)) {
        warnings.push(format!(
            "document {doc} ({kind}): {p}: not supported, ignored"
        ));
    }
    Ok(t)
}

impl Manifest {
    /// Every document of `text` (`---`-separated; empty ones skipped).
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        use serde_yaml_ng::Value;
        let mut m = Manifest::default();
        for (i, d) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let doc = i + 1;
            let value =
                Value::deserialize(d).map_err(|source| ManifestError::Yaml { doc, source })?;
            if value.is_null() {
                continue;
            }
            let field = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
            let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
                return Err(ManifestError::NotAnObject { doc });
            };
            let want = match kind.as_str() {
                "Pod" | "ConfigMap" | "PersistentVolumeClaim" => "v1",
                "Deployment" => "apps/v1",
                _ => return Err(ManifestError::UnknownKind { doc, kind }),
            };
            if api_version != want {
                return Err(ManifestError::ApiVersion {
                    doc,
                    kind,
                    api_version,
                    want,
                });
            }
            let has_name = value
                .get("metadata")
                .and_then(|md| md.get("name"))
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !has_name {
                return Err(ManifestError::NoName { doc, kind });
            }
            let w = &mut m.warnings;
            match kind.as_str() {
                "Pod" => m.pods.push(typed(doc, &kind, value, w)?),
                "Deployment" => m.deployments.push(typed(doc, &kind, value, w)?),
                "ConfigMap" => m.config_maps.push(typed(doc, &kind, value, w)?),
                _ => m.claims.push(typed(doc, &kind, value, w)?),
            }
        }
        if m.pods.is_empty() && m.deployments.is_empty() {
            return Err(ManifestError::NoPods);
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  greeting: hello
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
  creationTimestamp: null
spec:
  restartPolicy: Never
  containers:
  - name: srv
    image: busybox
    command: [httpd, -f]
    args: [-p, "8080"]
    env:
    - {name: A, value: "1"}
    - name: B
      valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}
    ports: [{containerPort: 8080, hostPort: 9090, hostIP: 127.0.0.1}]
    resources: {limits: {memory: 64Mi, cpu: 500m}}
    livenessProbe: {exec: {command: ["true"]}}
    volumeMounts: [{name: data, mountPath: /data, readOnly: true}]
  volumes:
  - name: data
    hostPath: {path: /srv, type: Directory}
status: {}
"#;

    #[test]
    fn reads_pods_and_config_maps_and_warns_of_what_it_ignores() {
        let m = Manifest::parse(POD).unwrap();
        assert_eq!(m.config_maps[0].data["greeting"], "hello");
        let p = &m.pods[0];
        assert_eq!(p.metadata.name.as_deref(), Some("web"));
        let c = &p.spec.containers[0];
        assert_eq!(c.command, ["httpd", "-f"]);
        assert_eq!(c.ports[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            c.resources.as_ref().unwrap().limits["memory"].bytes(),
            Ok(64 << 20)
        );
        assert_eq!(
            c.env[1].value_from.as_ref().unwrap().config_map_key_ref,
            Some(KeyRef {
                name: "cfg".into(),
                key: "greeting".into(),
                optional: false
            })
        );
        assert_eq!(
            p.spec.volumes[0]
                .host_path
                .as_ref()
                .unwrap()
                .kind
                .as_deref(),
            Some("Directory")
        );
        // livenessProbe warned about; status and creationTimestamp are a live object's.
        assert_eq!(
            m.warnings,
            ["document 2 (Pod): spec.containers[0].livenessProbe: not supported, ignored"]
        );
    }

    #[test]
    fn what_it_cannot_run_is_one_error_naming_the_document() {
        let e = |s: &str| Manifest::parse(s).unwrap_err().to_string();
        assert_eq!(
            e("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"),
            "document 1: kind \"Service\" is not supported (use Pod, Deployment, ConfigMap or PersistentVolumeClaim)"
        );
        assert_eq!(
            e("apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: d}\n"),
            "document 1: Deployment of apiVersion \"apps/v1beta1\" is not supported (use apps/v1)"
        );
        assert_eq!(
            e("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    resources: {limits: {memory: 64MB}}\n"),
            "document 1 (Pod): spec.containers[0].resources.limits.memory: quantity \"64MB\": unknown suffix \"MB\" (use Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent e3)"
        );
        assert_eq!(
            e("apiVersion: v1\nkind: Pod\nspec: {}\n"),
            "document 1 (Pod): metadata.name is missing"
        );
        assert!(e("a: [").starts_with("document 1: "));
        assert_eq!(
            e("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"),
            "no Pod or Deployment in the manifest"
        );
        assert_eq!(
            e("- 1\n"),
            "document 1: expected a mapping with apiVersion and kind"
        );
    }

    #[test]
    fn a_pod_written_back_reads_the_same() {
        let m = Manifest::parse(POD).unwrap();
        let text = serde_yaml_ng::to_string(&m.pods[0]).unwrap();
        let again = Manifest::parse(&text).unwrap();
        // The ignored livenessProbe is not written back.
        assert!(again.warnings.is_empty(), "{:?}", again.warnings);
        assert_eq!(again.pods[0], m.pods[0]);
    }
}
