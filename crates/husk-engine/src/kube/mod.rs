//! `husk kube play|down|generate`: Kubernetes manifests as husk pods, as podman's
//! `kube play`.
//!
//! - [`manifest`]: the typed subset of the Kubernetes API that is understood, and the
//!   multi-document YAML reader (unknown kinds refused, unknown fields warned about).
//! - [`expand`]: `$(VAR)` references in command, args and env values.
//! - [`quantity`]: resource quantities ("64Mi", "500m") read exactly as Kubernetes does.
//! - [`play`]: a manifest checked into a plan of pods and containers (pure: every error a
//!   manifest can have is found before anything is made), then run as husk pods through the
//!   engine's own `pod create` and `run --pod`, undone as a whole when a step fails;
//!   `down` removes the pods a manifest names.
//! - [`generate`]: a pod (or a container) written back as a v1 Pod that play accepts.

pub mod expand;
pub mod generate;
pub mod manifest;
pub mod play;
pub mod quantity;

pub use manifest::{Manifest, ManifestError};
pub use play::PlayOptions;
pub use quantity::{Quantity, QuantityError};

/// A manifest husk cannot run as asked, or a step of playing it that failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("pod {pod}: no containers")]
    NoContainers { pod: String },
    #[error("pod {pod}: a container without a name")]
    NoContainerName { pod: String },
    #[error("pod {pod}: two containers named {container:?}")]
    DuplicateContainer { pod: String, container: String },
    #[error("container {container}: no image")]
    NoImage { container: String },
    #[error("container {container}: resources.{key}: {source}")]
    Quantity {
        container: String,
        key: String,
        #[source]
        source: QuantityError,
    },
    #[error("pod {pod}: restartPolicy {policy:?}: use Always, OnFailure or Never")]
    RestartPolicy { pod: String, policy: String },
    #[error(
        "container {container}: imagePullPolicy {policy:?}: use Always, IfNotPresent or Never"
    )]
    PullPolicy { container: String, policy: String },
    #[error("container {container}: port {port}: protocol {protocol:?}: use TCP or UDP")]
    Protocol {
        container: String,
        port: u16,
        protocol: String,
    },
    #[error("container {container}: env {var}: valueFrom supports only configMapKeyRef")]
    EnvSource { container: String, var: String },
    #[error("container {container}: no ConfigMap {name:?} in the manifest")]
    NoConfigMap { container: String, name: String },
    #[error("container {container}: ConfigMap {name:?} has no key {key:?}")]
    NoConfigMapKey {
        container: String,
        name: String,
        key: String,
    },
    #[error("container {container}: securityContext.runAsGroup needs runAsUser here")]
    GroupWithoutUser { container: String },
    #[error("container {container}: volumeMounts: no volume {volume:?} in the pod")]
    NoVolume { container: String, volume: String },
    #[error(
        "pod {pod}: volume {volume:?}: no source husk supports (use emptyDir, hostPath, configMap or persistentVolumeClaim)"
    )]
    VolumeSource { pod: String, volume: String },
    #[error("pod {pod}: volume {volume:?}: {path:?}: {why}")]
    VolumePath {
        pod: String,
        volume: String,
        path: String,
        why: &'static str,
    },
    #[error("pod {pod}: volume {volume:?}: hostPath type {kind:?} is not a Kubernetes one")]
    HostPathType {
        pod: String,
        volume: String,
        kind: String,
    },
    #[error("container {container}: volumeMounts {volume:?}: subPath is not supported on a persistentVolumeClaim")]
    SubPathOnClaim { container: String, volume: String },
    #[error("Deployment {name}: {replicas} replicas would publish hostPort {port} more than once")]
    ReplicaPorts {
        name: String,
        replicas: u32,
        port: u16,
    },
    #[error("container {container}: {source}")]
    Config {
        container: String,
        #[source]
        source: Box<crate::config::ConfigError>,
    },
    #[error("init container {container} exited with {code}")]
    InitFailed { container: String, code: i64 },
    #[error("no pod {0:?} (from the manifest) to remove")]
    NotPlayed(String),
    #[error("container {0} belongs to no pod and cannot be written as one")]
    Generate(String),
    /// `kube generate`: writing the manifest as YAML.
    #[error(transparent)]
    Write(serde_yaml_ng::Error),
}

impl From<KubeError> for crate::error::Error {
    fn from(e: KubeError) -> Self {
        crate::error::Error::Kube(Box::new(e))
    }
}
