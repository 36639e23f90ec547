//! A private containerd with its CRI plugin on, and a CRI (runtime.v1) client for it, as
//! kubelet would talk to it: shared by the end-to-end test (tests/cri.rs) and the pod-start
//! benchmark (examples/cri_bench.rs).
//!
//! Everything containerd needs lives in one temp dir: its config, root, state, gRPC socket,
//! the runtimes' state roots (the runc v2 shim's `Root` option), the CNI config and the
//! host-local IPAM data, the pods' logs; pod network namespaces are mounted under its state
//! dir (`netns_mounts_under_state_dir`). Images come from a loopback docker-registry
//! (tests/common), configured as a plain-http mirror for that one host:port. The caller runs
//! in a network namespace of its own (tests/common's `enter_test_netns`, before `main`), and
//! containerd with it: the CNI bridge, its veths and the pods' subnet exist only there.
#![allow(dead_code)]

pub mod stream;

use crate::common::*;
use husk_image::registry::ClientOptions;
use husk_image::tar::Writer;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint, Uri};

/// Where cargo put husk-runtime: target/<profile>/husk-runtime, beside the deps/ (tests) or
/// examples/ dir this binary runs from. It is another package's binary, which cargo builds
/// with the workspace (`cargo build --workspace`, as scripts/test.sh does first).
pub fn husk_runtime() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("husk-runtime");
    assert!(
        path.exists(),
        "{} is missing: `cargo build -p husk-runtime` first",
        path.display()
    );
    path
}

/// Debian's runc: the control handler's runtime.
pub const RUNC: &str = "/usr/sbin/runc";

/// A layer holding only /pause: husk's own static pause program (husk-engine embeds it).
fn pause_layer() -> Vec<u8> {
    let pause = husk_engine::embedded::pause_binary()
        .expect("husk-engine was built without husk-pause (libc6-dev missing?)");
    let mut w = Writer::new(Vec::new());
    w.file("pause", 0o755, pause).unwrap();
    w.finish().unwrap()
}

pub struct Cri {
    pub dir: TempDir,
    daemon: Daemon,
    rt: tokio::runtime::Runtime,
    rs: RuntimeServiceClient<Channel>,
    is: ImageServiceClient<Channel>,
    pub reg: RealRegistry,
    /// REGISTRY/busybox:latest (tests/common's busybox image: user app, workdir /srv, …).
    pub image: String,
    /// The pods' cgroup parent (kubelet's is /kubepods/…/podUID): below the root of every
    /// hierarchy, removed on drop.
    pub cgroup_parent: String,
    /// The pods' subnet, 10.201.N.0/24: an address range of the test's namespace only.
    pub subnet: String,
    pub bridge: String,
    pub net_name: String,
    /// The husk handler's BinaryName.
    pub husk: PathBuf,
}

impl Cri {
    /// Start containerd with the CRI plugin; `n` (1..=250) keeps the bridge, subnet and
    /// cgroup parent of concurrent instances apart.
    pub fn start(tag: &str, n: u8) -> Cri {
        Cri::start_with(tag, n, husk_runtime())
    }

    /// [`Cri::start`] with `husk` as the husk handler's binary (the benchmark's release build).
    pub fn start_with(tag: &str, n: u8, husk: PathBuf) -> Cri {
        for bin in ["/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2"] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is required (scripts/deps.sh installs containerd)"
            );
        }
        for plugin in ["bridge", "host-local", "loopback"] {
            assert!(
                Path::new("/usr/lib/cni").join(plugin).exists(),
                "/usr/lib/cni/{plugin} is required (scripts/deps.sh installs containernetworking-plugins)"
            );
        }
        let reg = RealRegistry::start(false, false);
        let opts = ClientOptions::default();
        push_image(
            &reg.host(),
            &opts,
            "busybox",
            "latest",
            &busybox_image("amd64"),
        );
        let pause = build_image_with_config(
            &[(pause_layer(), Comp::Gzip)],
            "amd64",
            &serde_json::json!({"Entrypoint": ["/pause"]}),
        );
        push_image(&reg.host(), &opts, "pause", "husk", &pause);

        let dir = TempDir::new(&format!("cri-{tag}"));
        let d = dir.path().display().to_string();
        let net_name = format!("husk-cri-{n}-{}", std::process::id());
        let bridge = format!("hcri{n}");
        let subnet = format!("10.201.{n}.0/24");
        std::fs::create_dir_all(dir.path().join("cni")).unwrap();
        // The loopback plugin is not listed: containerd's CRI brings lo up in every pod
        // itself, through /usr/lib/cni/loopback.
        std::fs::write(
            dir.path().join("cni/10-husk.conflist"),
            serde_json::to_vec_pretty(&serde_json::json!({
                "cniVersion": "1.0.0",
                "name": net_name,
                "plugins": [{
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": subnet}]],
                        "dataDir": format!("{d}/ipam"),
                    },
                }],
            }))
            .unwrap(),
        )
        .unwrap();
        let host = reg.host();
        let mut runtimes = String::new();
        for (handler, bin) in [("husk", husk.as_path()), ("runc", Path::new(RUNC))] {
            runtimes.push_str(&format!(
                "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{handler}]\n\
                 runtime_type = \"io.containerd.runc.v2\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{handler}.options]\n\
                 BinaryName = \"{}\"\n\
                 Root = \"{d}/runtime-{handler}\"\n",
                bin.display()
            ));
        }
        let config = format!(
            "version = 2\n\
             root = \"{d}/root\"\n\
             state = \"{d}/state\"\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n\
             sandbox_image = \"{host}/pause:husk\"\n\
             stream_server_address = \"127.0.0.1\"\n\
             stream_server_port = \"0\"\n\
             netns_mounts_under_state_dir = true\n\
             restrict_oom_score_adj = true\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
             snapshotter = \"overlayfs\"\n\
             default_runtime_name = \"runc\"\n\
             {runtimes}\
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
             bin_dir = \"/usr/lib/cni\"\n\
             conf_dir = \"{d}/cni\"\n\
             max_conf_num = 1\n\
             [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{host}\"]\n\
             endpoint = [\"http://{host}\"]\n"
        );
        // restrict_oom_score_adj: kubelet's -998 for sandboxes is below what root may set
        // without CAP_SYS_RESOURCE, which root lacks on these machines
        // (see docs/kubernetes.md); containerd then raises it to its own score.
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let mut daemon = Daemon(Some(
            Command::new("containerd")
                .arg("--config")
                .arg(dir.path().join("config.toml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        ));

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sock = dir.path().join("containerd.sock");
        let deadline = Instant::now() + Duration::from_secs(60);
        let channel = loop {
            let s = sock.clone();
            let endpoint = Endpoint::try_from("http://[::]:0").unwrap();
            let connect = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
                let s = s.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(s).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }));
            let exited = daemon.0.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "containerd exited ({status}): {}",
                    std::fs::read_to_string(dir.path().join("containerd.log")).unwrap_or_default()
                );
            }
            match rt.block_on(connect) {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!(
                    "containerd did not start ({e}): {}",
                    std::fs::read_to_string(dir.path().join("containerd.log")).unwrap_or_default()
                ),
            }
        };
        let cri = Cri {
            rs: RuntimeServiceClient::new(channel.clone()),
            is: ImageServiceClient::new(channel),
            dir,
            daemon,
            rt,
            image: format!("{}/busybox:latest", reg.host()),
            reg,
            cgroup_parent: format!("/husk-cri-{}-{n}", std::process::id()),
            subnet,
            bridge,
            net_name,
            husk,
        };
        // The socket is there before the CRI plugin is ready to serve.
        loop {
            let mut rs = cri.rs.clone();
            let r = cri.call(async move {
                rs.version(VersionRequest {
                    version: "v1".into(),
                })
                .await
            });
            match r {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!("CRI Version: {e:?}\n{}", cri.log_tail()),
            }
        }
        cri
    }

    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// One CRI call, bounded in time.
    pub fn call<T>(
        &self,
        f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(120), f).await })
        {
            Ok(r) => r.map(|r| r.into_inner()),
            Err(_) => Err(tonic::Status::deadline_exceeded("no answer in 120 s")),
        }
    }

    /// One CRI call that must succeed; the failure names the call and shows containerd's log.
    pub fn ok<T>(
        &self,
        what: &str,
        f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        self.call(f).unwrap_or_else(|s| {
            panic!(
                "CRI {what}: {:?}: {}\n--- containerd.log ---\n{}",
                s.code(),
                s.message(),
                self.log_tail()
            )
        })
    }

    pub fn rs(&self) -> RuntimeServiceClient<Channel> {
        self.rs.clone()
    }
    pub fn is(&self) -> ImageServiceClient<Channel> {
        self.is.clone()
    }

    /// PullImage of the busybox image; its image ref.
    pub fn pull_busybox(&self) -> String {
        let mut is = self.is();
        let image = self.image.clone();
        self.ok("PullImage", async move {
            is.pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
        })
        .image_ref
    }

    /// A pod's config as kubelet makes one: its own log dir, the test's nameserver, a
    /// cgroup parent, the container PID namespace mode kubelet defaults to.
    pub fn pod_config(&self, name: &str, host_network: bool) -> PodSandboxConfig {
        let uid = format!("uid-{name}-{}", std::process::id());
        let log_directory = self.dir.path().join("logs").join(&uid);
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid,
                namespace: "husk-test".into(),
                attempt: 0,
            }),
            // kubelet gives a hostNetwork pod no hostname: it keeps the node's UTS namespace.
            hostname: if host_network {
                String::new()
            } else {
                name.into()
            },
            log_directory: log_directory.display().to_string(),
            dns_config: Some(DnsConfig {
                servers: vec![TEST_DNS.into()],
                ..Default::default()
            }),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: if host_network {
                            NamespaceMode::Node
                        } else {
                            NamespaceMode::Pod
                        } as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn run_pod(&self, config: &PodSandboxConfig, handler: &str) -> String {
        let mut rs = self.rs();
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        };
        self.ok(
            "RunPodSandbox",
            async move { rs.run_pod_sandbox(req).await },
        )
        .pod_sandbox_id
    }

    /// CreateContainer of the busybox image running `command` in the pod; its id.
    pub fn create_container(
        &self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        name: &str,
        command: &[&str],
    ) -> String {
        self.create_container_with(pod, pod_config, name, command, |_| {})
    }

    /// [`Cri::create_container`], with `edit` changing the config first.
    pub fn create_container_with(
        &self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        name: &str,
        command: &[&str],
        edit: impl FnOnce(&mut ContainerConfig),
    ) -> String {
        let mut rs = self.rs();
        let mut req = CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: name.into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: self.image.clone(),
                    ..Default::default()
                }),
                command: command.iter().map(|s| s.to_string()).collect(),
                log_path: format!("{name}.log"),
                linux: Some(LinuxContainerConfig {
                    resources: Some(LinuxContainerResources {
                        cpu_shares: 256,
                        ..Default::default()
                    }),
                    security_context: Some(LinuxContainerSecurityContext {
                        namespace_options: pod_config
                            .linux
                            .as_ref()
                            .and_then(|l| l.security_context.as_ref())
                            .and_then(|s| s.namespace_options.clone()),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            sandbox_config: Some(pod_config.clone()),
        };
        edit(req.config.as_mut().unwrap());
        self.ok(
            "CreateContainer",
            async move { rs.create_container(req).await },
        )
        .container_id
    }

    pub fn start_container(&self, id: &str) {
        let mut rs = self.rs();
        let container_id = id.to_string();
        self.ok("StartContainer", async move {
            rs.start_container(StartContainerRequest { container_id })
                .await
        });
    }

    pub fn container_status(&self, id: &str, verbose: bool) -> ContainerStatusResponse {
        let mut rs = self.rs();
        let container_id = id.to_string();
        self.ok("ContainerStatus", async move {
            rs.container_status(ContainerStatusRequest {
                container_id,
                verbose,
            })
            .await
        })
    }

    pub fn pod_status(&self, id: &str) -> PodSandboxStatus {
        let mut rs = self.rs();
        let pod_sandbox_id = id.to_string();
        self.ok("PodSandboxStatus", async move {
            rs.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id,
                verbose: false,
            })
            .await
        })
        .status
        .expect("PodSandboxStatus without a status")
    }

    /// ExecSync: (stdout, stderr, exit code).
    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> (String, String, i32) {
        let mut rs = self.rs();
        let req = ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 30,
        };
        let r = self.ok("ExecSync", async move { rs.exec_sync(req).await });
        (
            String::from_utf8_lossy(&r.stdout).into_owned(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
            r.exit_code,
        )
    }

    /// Exec: the streaming URL for `cmd` in the container.
    pub fn exec_url(&self, id: &str, cmd: &[&str], stdin: bool, tty: bool) -> String {
        let mut rs = self.rs();
        let req = ExecRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        };
        self.ok("Exec", async move { rs.exec(req).await }).url
    }

    /// Attach: the streaming URL for the container's stdio.
    pub fn attach_url(&self, id: &str) -> String {
        let mut rs = self.rs();
        let req = AttachRequest {
            container_id: id.into(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        };
        self.ok("Attach", async move { rs.attach(req).await }).url
    }

    pub fn stop_pod(&self, id: &str) {
        let mut rs = self.rs();
        let pod_sandbox_id = id.to_string();
        self.ok("StopPodSandbox", async move {
            rs.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id })
                .await
        });
    }

    pub fn remove_pod(&self, id: &str) {
        let mut rs = self.rs();
        let pod_sandbox_id = id.to_string();
        self.ok("RemovePodSandbox", async move {
            rs.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id })
                .await
        });
    }

    pub fn list_pods(&self) -> Vec<PodSandbox> {
        let mut rs = self.rs();
        self.ok("ListPodSandbox", async move {
            rs.list_pod_sandbox(ListPodSandboxRequest { filter: None })
                .await
        })
        .items
    }

    pub fn list_containers(&self) -> Vec<Container> {
        let mut rs = self.rs();
        self.ok("ListContainers", async move {
            rs.list_containers(ListContainersRequest { filter: None })
                .await
        })
        .containers
    }

    /// The state root the shim gives a handler's runtime (`--root`): ROOT/k8s.io.
    pub fn runtime_root(&self, handler: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("runtime-{handler}"))
            .join("k8s.io")
    }

    /// The runtime's own view of a container: `RUNTIME --root R state ID`'s status, None
    /// when the runtime does not know it (containerd deletes it from the runtime as soon
    /// as it has exited).
    pub fn runtime_state(&self, handler: &str, id: &str) -> Option<String> {
        let bin = match handler {
            "husk" => self.husk.as_path(),
            _ => Path::new(RUNC),
        };
        let o = Command::new(bin)
            .arg("--root")
            .arg(self.runtime_root(handler))
            .args(["state", id])
            .output()
            .unwrap();
        if !o.status.success() {
            let err = text_of(&o);
            assert!(
                err.contains("does not exist"),
                "{handler} state {id}: {err}"
            );
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        Some(v["status"].as_str().unwrap_or("").to_string())
    }

    /// The pod cgroup parent's directory in each hierarchy it exists in.
    pub fn cgroup_parent_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let p = h.path().join(self.cgroup_parent.trim_start_matches('/'));
            if p.is_dir() {
                dirs.push(p);
            }
        }
        dirs
    }

    /// Polls `what` for up to `secs` seconds until it returns None; panics with its last
    /// complaint.
    pub fn wait_until_none(&self, secs: u64, mut what: impl FnMut() -> Option<String>) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            match what() {
                None => return,
                Some(e) if Instant::now() > deadline => panic!("{e}\n{}", self.log_tail()),
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// After RemovePodSandbox of every pod: nothing of them is left. No pod or container in
    /// containerd; no state dir of the runtime; no process started for them (shims and
    /// containers); no mount below containerd's dirs (rootfs, shm, netns); no cgroup below
    /// the pods' parent; no veth, network namespace or IP lease.
    pub fn assert_nothing_left(&self, handler: &str) {
        assert!(
            self.list_pods().is_empty(),
            "pods left: {:?}",
            self.list_pods()
        );
        assert!(
            self.list_containers().is_empty(),
            "containers left: {:?}",
            self.list_containers()
        );
        let root = self.runtime_root(handler);
        self.wait_until_none(30, || {
            let left: Vec<_> = std::fs::read_dir(&root)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            (!left.is_empty()).then(|| format!("{handler}'s state dirs left: {left:?}"))
        });
        let d = self.dir.path().display().to_string();
        let me = self.daemon.0.as_ref().map(|c| c.id()).unwrap_or(0);
        self.wait_until_none(30, || {
            let left = processes_mentioning(&d, me);
            (!left.is_empty()).then(|| format!("processes left: {left:?}"))
        });
        self.wait_until_none(30, || {
            let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&d)).collect();
            (!left.is_empty()).then(|| format!("mounts left: {left:#?}"))
        });
        for p in self.cgroup_parent_dirs() {
            let children: Vec<_> = std::fs::read_dir(&p)
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name())
                .collect();
            assert!(
                children.is_empty(),
                "cgroups left in {}: {children:?}",
                p.display()
            );
        }
        let veths = self.bridge_ports();
        assert!(veths.is_empty(), "veths left: {veths}");
        let netns_dir = self.dir.path().join("state/netns");
        let left: Vec<_> = std::fs::read_dir(&netns_dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "network namespaces left: {left:?}");
        let leases: Vec<_> = std::fs::read_dir(self.dir.path().join("ipam").join(&self.net_name))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(leases.is_empty(), "IP leases left: {leases:?}");
    }

    /// The links on this containerd's CNI bridge: the pods' veths (another test's bridge
    /// may share the namespace).
    pub fn bridge_ports(&self) -> String {
        let o = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Remove whatever pods a failed test left, through the CRI.
    fn remove_all_pods(&self) {
        let mut rs = self.rs();
        let Ok(pods) = self.call(async move {
            rs.list_pod_sandbox(ListPodSandboxRequest { filter: None })
                .await
        }) else {
            return;
        };
        for p in pods.items {
            let mut rs = self.rs();
            let id = p.id.clone();
            let _ = self.call(async move {
                rs.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id })
                    .await
            });
            let mut rs = self.rs();
            let _ = self.call(async move {
                rs.remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: p.id,
                })
                .await
            });
        }
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        self.remove_all_pods();
        self.daemon.stop();
        // Shims of pods a failure left behind outlive containerd: end them by pid.
        for pid in processes_mentioning(&self.dir.path().display().to_string(), 0) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // Containers a failure left in a runtime's state: `delete --force` kills and
        // removes them (process, cgroup, state dir), as the shim would have.
        for (handler, bin) in [("husk", self.husk.as_path()), ("runc", Path::new(RUNC))] {
            let root = self.runtime_root(handler);
            for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let _ = Command::new(bin)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force"])
                    .arg(e.file_name())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        // The pods' parent with whatever empty cgroups are still below it, deepest first.
        for p in self.cgroup_parent_dirs() {
            remove_cgroup_tree(&p);
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        // self.dir (TempDir) unmounts what is left below it and removes it.
    }
}

/// The containerd process: stopped (SIGTERM, then reaped) by [`Cri`]'s drop, or on its own
/// drop when [`Cri::start`] fails half-way.
struct Daemon(Option<Child>);

impl Daemon {
    fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// rmdir `dir` and the cgroups below it, children first (a cgroup dir holds no files
/// that rmdir would refuse).
fn remove_cgroup_tree(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            remove_cgroup_tree(&e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Pids (other than `except`) whose command line names `needle`: the shims (`-address
/// DIR/containerd.sock`) and anything else started with a path of ours.
pub fn processes_mentioning(needle: &str, except: u32) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid as u32 == except || pid as u32 == std::process::id() {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

pub fn text_of(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
