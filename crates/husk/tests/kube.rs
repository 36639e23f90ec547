//! `husk kube play|down|generate`: Kubernetes manifests written for these tests, run as
//! husk pods with real containers.
//!
//! Where traffic goes: the pods are on husk's default bridge inside this test binary's own
//! network namespace (tests/common); a hostPort is published on 127.0.0.1 there and
//! reached from the test, and the pod's containers reach each other on the pod's loopback.
//! Nothing leaves the namespace.
//!
//! Against a real docker-registry on 127.0.0.1 with the busybox image. Run as root.

mod common;
use common::*;
use std::path::Path;

/// A pod of an init container and two containers: the init writes into an emptyDir that
/// the server serves; the client fetches from the server on localhost into the same
/// emptyDir; env and files from a ConfigMap, a hostPath, a claim, limits.
fn manifest(image: &str, port: u16, host_dir: &Path) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  greeting: hi-from-map
  app.conf: |
    port=8080
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: kube-claim
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: web}}
spec:
  restartPolicy: Always
  volumes:
  - name: work
    emptyDir: {{}}
  - name: config
    configMap: {{name: cfg, items: [{{key: app.conf, path: conf/app.conf}}]}}
  - name: host
    hostPath: {{path: {host}, type: Directory}}
  - name: claim
    persistentVolumeClaim: {{claimName: kube-claim}}
  initContainers:
  - name: init
    image: {image}
    command: [sh, -c, "echo from-init > /work/init.txt"]
    securityContext: {{runAsUser: 0}}
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: srv
    image: {image}
    # What the init wrote is there before this container starts.
    args: ["cat /www/init.txt > /www/at-start.txt; exec httpd -f -p 8080 -h /www"]
    ports: [{{containerPort: 8080, hostPort: {port}, hostIP: 127.0.0.1}}]
    envFrom: [{{configMapRef: {{name: cfg}}, prefix: CFG_}}]
    env:
    - name: GREETING2
      valueFrom: {{configMapKeyRef: {{name: cfg, key: greeting}}}}
    - {{name: PLAIN, value: plain-value}}
    - {{name: REF, value: "$(PLAIN)-ref $$(PLAIN)"}}
    resources: {{limits: {{memory: 64Mi, cpu: 500m}}}}
    securityContext: {{runAsUser: 0}}
    volumeMounts:
    - {{name: work, mountPath: /www}}
    - {{name: config, mountPath: /etc/app, readOnly: true}}
    - {{name: host, mountPath: /host}}
    - {{name: claim, mountPath: /claim}}
  - name: client
    image: {image}
    command: [sh, -c]
    args: ["until wget -q -O /work/f.tmp http://127.0.0.1:8080/init.txt; do sleep 0.2; done; mv /work/f.tmp /work/fetched; exec sleep 1000"]
    securityContext: {{runAsUser: 0}}
    volumeMounts: [{{name: work, mountPath: /work}}]
"#,
        host = host_dir.display()
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    f.display().to_string()
}

/// `cmd` run in the container `name` (through sh -c).
fn exec(root: &Path, name: &str, cmd: &str) -> String {
    husk_ok(root, &["exec", name, "sh", "-c", cmd])
}

/// `cmd` in `name`, retried until it succeeds (a container's first step may still run).
fn exec_until(root: &Path, name: &str, cmd: &str) -> String {
    for _ in 0..50 {
        let (code, o, _) = out(root, &["exec", name, "sh", "-c", cmd]);
        if code == 0 {
            return o;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("{cmd:?} never succeeded in {name}");
}

/// The memory limit of the container's cgroup, as the host sees it (v1 or v2).
fn memory_limit(root: &Path, name: &str) -> String {
    let pid = husk_ok(root, &["inspect", "-f", "{{.State.Pid}}", name]);
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    let dir = cgroup_dir(&cg, "memory");
    std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(dir.join("memory.max")))
        .unwrap()
        .trim()
        .to_string()
}

fn pod_names(root: &Path) -> String {
    husk_ok(
        root,
        &[
            "pod",
            "ls",
            "--format",
            "{{.Name}} {{.Status}} {{.NumberOfContainers}}",
        ],
    )
}

/// What play may leave: containers, pods, mounts below the store.
fn assert_nothing_left(root: &Path) {
    assert!(
        containers(root).is_empty(),
        "containers left: {:?}",
        containers(root)
    );
    assert_eq!(pod_names(root), "");
    let pods: Vec<_> = std::fs::read_dir(root.join("pods"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(pods.is_empty(), "pod dirs left: {pods:?}");
    assert_eq!(mounts_below(root), Vec::<String>::new());
}

#[test]
fn a_pod_plays_goes_down_and_comes_back_from_what_generate_wrote() {
    let s = setup("kube-play");
    let _rm = RemoveAll(&s.root);
    let _pods = RemovePods(&s.root);
    let host_dir = s.t.path().join("host");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), "host-file\n").unwrap();
    let port = free_port();
    let yaml = write(s.t.path(), "pod.yaml", &manifest(&s.image, port, &host_dir));

    let ids = husk_ok(&s.root, &["kube", "play", &yaml]);
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(ids[0].len(), 64);
    // The infra and the two containers; the init container ran and was removed.
    assert_eq!(pod_names(&s.root), "web Running 3\n");

    // The init's output was there before srv started; srv serves it on the hostPort.
    assert!(http_get(port, "/at-start.txt").ends_with("\r\n\r\nfrom-init\n"));
    // The client reached srv on the pod's localhost, into the emptyDir both mount.
    assert_eq!(
        exec_until(&s.root, "web-srv", "cat /www/fetched"),
        "from-init\n"
    );
    // Env from the ConfigMap (envFrom with a prefix, and one key), and plain env.
    assert_eq!(
        exec(
            &s.root,
            "web-srv",
            "echo $CFG_greeting $GREETING2 $PLAIN; echo \"$REF\""
        ),
        "hi-from-map hi-from-map plain-value\nplain-value-ref $(PLAIN)\n"
    );
    // The configMap volume's file at its item path, read-only.
    assert_eq!(
        exec(&s.root, "web-srv", "cat /etc/app/conf/app.conf"),
        "port=8080\n"
    );
    let (code, _, _) = out(
        &s.root,
        &["exec", "web-srv", "sh", "-c", "echo x > /etc/app/new"],
    );
    assert_ne!(code, 0, "a configMap volume is writable");
    // hostPath both ways; the claim is a named volume.
    assert_eq!(
        exec(&s.root, "web-srv", "cat /host/from-host"),
        "host-file\n"
    );
    exec(
        &s.root,
        "web-srv",
        "echo from-ctr > /host/from-ctr; echo kept > /claim/kept",
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("from-ctr")).unwrap(),
        "from-ctr\n"
    );
    assert!(husk_ok(&s.root, &["volume", "ls", "-q"]).contains("kube-claim"));
    // resources.limits.memory in the container's memory cgroup.
    assert_eq!(memory_limit(&s.root, "web-srv"), (64u64 << 20).to_string());

    // generate writes the pod back; the init container is gone from it (it ran once).
    let generated = husk_ok(&s.root, &["kube", "generate", "web"]);
    assert!(generated.contains("kind: Pod"), "{generated}");
    assert!(!generated.contains("name: init"), "{generated}");
    let gen_file = write(s.t.path(), "generated.yaml", &generated);
    // From a container too: its pod.
    assert_eq!(
        husk_ok(&s.root, &["kube", "generate", "web-client"]),
        generated
    );

    // A second play of the same names is refused (nothing made); --replace replaces.
    let (code, _, err) = out(&s.root, &["kube", "play", &yaml]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("already in use"), "{err}");
    assert_eq!(pod_names(&s.root), "web Running 3\n");

    // down: the pod and its containers go, the emptyDir and configMap dirs with them; the
    // named volume stays, as podman leaves it.
    let down = husk_ok(&s.root, &["kube", "down", &yaml]);
    assert_eq!(down.trim(), ids[0]);
    assert_nothing_left(&s.root);
    assert!(husk_ok(&s.root, &["volume", "ls", "-q"]).contains("kube-claim"));
    assert!(host_dir.join("from-ctr").exists());

    // What generate wrote plays back into the same pod, and generates the same again.
    let ids2 = husk_ok(&s.root, &["kube", "play", &gen_file]);
    assert_eq!(ids2.lines().count(), 1);
    assert_eq!(pod_names(&s.root), "web Running 3\n");
    assert_eq!(husk_ok(&s.root, &["kube", "generate", "web"]), generated);
    assert_eq!(
        exec(
            &s.root,
            "web-srv",
            "echo $CFG_greeting $GREETING2 \"$REF\"; cat /etc/app/conf/app.conf /claim/kept"
        ),
        "hi-from-map hi-from-map plain-value-ref $(PLAIN)\nport=8080\nkept\n"
    );
    assert_eq!(memory_limit(&s.root, "web-srv"), (64u64 << 20).to_string());
    assert!(http_get(port, "/at-start.txt").contains("\r\n\r\n"));
    husk_ok(&s.root, &["kube", "down", &gen_file]);
    assert_nothing_left(&s.root);
}

#[test]
fn bad_manifests_are_one_error_and_leave_nothing() {
    let s = setup("kube-bad");
    let _rm = RemoveAll(&s.root);
    let _pods = RemovePods(&s.root);
    husk_ok(&s.root, &["pull", "-q", &s.image]);
    let pod =
        |spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: bad}}\nspec:\n{spec}");
    let image = &s.image;
    let claim = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: bad-claim}\n---\n";
    for (yaml, want) in [
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n".to_string(),
            "document 1: kind \"Service\" is not supported",
        ),
        (
            pod(&format!(
                "  containers: [{{name: c, image: {image}, resources: {{limits: {{memory: 64MB}}}}}}]\n"
            )),
            "spec.containers[0].resources.limits.memory: quantity \"64MB\": unknown suffix \"MB\"",
        ),
        (pod("  containers: [{name: c}]\n"), "container bad-c: no image"),
        // Failures once things exist: the pod, its claim's new volume and the containers
        // made so far are all removed.
        (
            format!(
                "{claim}{}",
                pod(&format!(
                    "  volumes: [{{name: v, persistentVolumeClaim: {{claimName: bad-claim}}}}]
  initContainers: [{{name: init, image: {image}, args: [\"exit 3\"]}}]
  containers: [{{name: c, image: {image}, args: [\"sleep 100\"]}}]\n"
                ))
            ),
            "init container bad-init exited with 3",
        ),
        (
            pod(&format!(
                "  containers:
  - {{name: c, image: {image}, args: [\"sleep 100\"]}}
  - {{name: d, image: {}/missing:latest, imagePullPolicy: Never}}\n",
                s.reg.host()
            )),
            "missing:latest",
        ),
    ] {
        let f = write(s.t.path(), "bad.yaml", &yaml);
        let (code, stdout, err) = out(&s.root, &["kube", "play", &f]);
        assert_eq!(code, 125, "{yaml}\n{err}");
        assert_eq!(stdout, "", "{yaml}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&format!("husk: kube play {f}: ")), "{err}");
        assert!(err.contains(want), "{err} lacks {want}");
        assert_nothing_left(&s.root);
        assert!(
            !husk_ok(&s.root, &["volume", "ls", "-q"]).contains("bad-claim"),
            "the claim's volume made by the failed play stayed"
        );
    }
    // A manifest from stdin; unknown fields are warned about, not silently dropped.
    let (code, stdout, err) = out_with_stdin(
        &s.root,
        &["kube", "play", "-"],
        pod(&format!(
            "  containers: [{{name: c, image: {image}, args: [\"sleep 100\"], livenessProbe: {{}}}}]\n"
        ))
        .as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.trim().len(), 64);
    assert!(
        err.contains("spec.containers[0].livenessProbe: not supported, ignored"),
        "{err}"
    );
    let (code, _, err) = out(
        &s.root,
        &[
            "kube",
            "down",
            &write(
                s.t.path(),
                "none.yaml",
                &pod("  containers: [{name: x, image: i}]\n").replace("bad", "other"),
            ),
        ],
    );
    assert_eq!(code, 125);
    assert!(err.contains("no pod \"other\""), "{err}");
    husk_ok(&s.root, &["pod", "rm", "-f", "bad"]);
    assert_nothing_left(&s.root);
}

#[test]
fn a_deployments_replicas_are_pods_and_play_replace_remakes_them() {
    let s = setup("kube-deploy");
    let _rm = RemoveAll(&s.root);
    let _pods = RemovePods(&s.root);
    let yaml = write(
        s.t.path(),
        "deploy.yaml",
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: app, labels: {{tier: x}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: a}}}}
  template:
    metadata: {{labels: {{app: a}}}}
    spec:
      hostname: custom-host
      containers:
      - name: main
        image: {}
        args: [\"exec sleep 1000\"]
",
            s.image
        ),
    );
    let ids = husk_ok(&s.root, &["kube", "play", &yaml]);
    assert_eq!(ids.lines().count(), 2);
    assert_eq!(
        pod_names(&s.root),
        "app-pod-0 Running 2\napp-pod-1 Running 2\n"
    );
    assert_eq!(
        exec_until(&s.root, "app-pod-1-main", "hostname"),
        "custom-host\n"
    );
    let labels = husk_ok(&s.root, &["pod", "ls", "--format", "{{.Labels}}"]);
    assert_eq!(labels, "app=a,tier=x\napp=a,tier=x\n");
    // --replace: the old pods go, new ones come.
    let again = husk_ok(&s.root, &["play", "kube", "--replace", &yaml]);
    assert_eq!(again.lines().count(), 2);
    assert!(again.lines().all(|id| !ids.contains(id)));
    assert_eq!(containers(&s.root).len(), 4);
    husk_ok(&s.root, &["kube", "down", &yaml]);
    assert_nothing_left(&s.root);

    // A container outside a pod is generated as a pod of its own, which plays.
    husk_ok(
        &s.root,
        &[
            "run",
            "-d",
            "--name",
            "solo",
            "-e",
            "ASKED=yes",
            "--memory",
            "32m",
            &s.image,
            "exec sleep 1000",
        ],
    );
    let solo = husk_ok(&s.root, &["kube", "generate", "solo"]);
    for want in [
        "name: solo-pod\n",
        "- name: solo\n",
        "name: ASKED\n",
        "memory: 32Mi\n",
    ] {
        assert!(solo.contains(want), "{want:?} not in {solo}");
    }
    husk_ok(&s.root, &["rm", "-f", "solo"]);
    let solo = write(s.t.path(), "solo.yaml", &solo);
    husk_ok(&s.root, &["kube", "play", &solo]);
    assert_eq!(exec(&s.root, "solo-pod-solo", "echo $ASKED"), "yes\n");
    husk_ok(&s.root, &["kube", "down", &solo]);
    assert_nothing_left(&s.root);
}
