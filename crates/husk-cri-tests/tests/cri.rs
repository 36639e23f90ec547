//! husk-runtime under Kubernetes' path to a runtime: containerd's CRI plugin → the runc v2
//! shim → `BinaryName`, driven through the CRI (runtime.v1) as kubelet drives it, with
//! runtime handler `husk`, and the same sequence with Debian's runc as the control.
//!
//! Each test starts its own containerd (tests/harness) in the test binary's network
//! namespace: a bridge pod (CNI bridge + host-local + loopback) with two containers that
//! talk over localhost, ExecSync, CRI logs, UpdateContainerResources, ListContainerStats,
//! Stop/Remove; then a hostNetwork pod; after each RemovePodSandbox nothing is left.
//!
//! Streaming Exec and Attach go through containerd's streaming server over websocket
//! (harness/stream.rs).

// The loopback registry, images and the test network namespace, shared with husk's tests.
#[path = "../../husk/tests/common/mod.rs"]
mod common;
mod harness;

use common::free_port;
use harness::stream::{self, Session};
use harness::Cri;
use k8s_cri::v1::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn cri_pod_lifecycle_husk() {
    pod_lifecycle("husk", 1);
}

#[test]
fn cri_pod_lifecycle_runc_control() {
    pod_lifecycle("runc", 2);
}

/// GET http://ADDR/PATH with a plain TCP client; the body.
fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

/// Retries `f` for up to 30 s (a server in a container that just started may not listen yet).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn pod_lifecycle(handler: &str, n: u8) {
    let cri = Cri::start(handler, n);
    let mut rs = cri.rs();
    let v = cri.ok("Version", async move {
        rs.version(VersionRequest {
            version: "v1".into(),
        })
        .await
    });
    assert_eq!(v.runtime_name, "containerd");
    assert_eq!(v.runtime_api_version, "v1");
    let image_ref = cri.pull_busybox();
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");

    bridge_pod(&cri, handler);
    cri.assert_nothing_left(handler);
    host_network_pod(&cri, handler);
    cri.assert_nothing_left(handler);
}

/// The pod's HTTP server, and its client's request on the pod's localhost.
const WEB: &[&str] = &[
    "/bin/sh",
    "-c",
    "echo web-started; echo web-stderr >&2; exec /bin/busybox httpd -f -p 8080 -h /srv",
];
const WGET: &[&str] = &[
    "/bin/busybox",
    "wget",
    "-q",
    "-O",
    "-",
    "http://127.0.0.1:8080/new",
];

/// A pod on the CNI bridge: two containers, one serving HTTP on the pod's localhost.
fn bridge_pod(cri: &Cri, handler: &str) {
    let config = cri.pod_config(&format!("web-{handler}"), false);
    // The sandbox image (husk-pause, from the loopback registry) is pulled here.
    let pod = cri.run_pod(&config, handler);
    let status = cri.pod_status(&pod);
    assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(status.runtime_handler, handler);
    let ip = status.network.expect("pod network status").ip;
    let prefix = cri.subnet.trim_end_matches("0/24");
    assert!(ip.starts_with(prefix), "pod ip {ip} not in {}", cri.subnet);
    assert_eq!(
        cri.bridge_ports().lines().count(),
        1,
        "the pod's veth on the bridge"
    );
    // The handler's runtime holds the sandbox (the runc v2 shim ran BinaryName).
    assert_eq!(cri.runtime_state(handler, &pod).as_deref(), Some("running"));

    let web = cri.create_container(&pod, &config, "web", WEB);
    let client = cri.create_container(&pod, &config, "client", &["/bin/busybox", "sleep", "1000"]);
    let created = cri.container_status(&web, false).status.unwrap();
    assert_eq!(created.state, ContainerState::ContainerCreated as i32);
    // (containerd makes the runtime's container at StartContainer: create and start in one.)
    cri.start_container(&web);
    cri.start_container(&client);
    for id in [&web, &client] {
        let st = cri.container_status(id, false).status.unwrap();
        assert_eq!(st.state, ContainerState::ContainerRunning as i32, "{st:?}");
        assert!(st.started_at > 0);
        assert_eq!(cri.runtime_state(handler, id).as_deref(), Some("running"));
    }

    // The two containers share the pod's network namespace: localhost reaches the server.
    let body = eventually("client → web on localhost", || {
        let (out, err, code) = cri.exec_sync(&client, WGET);
        (code == 0)
            .then_some(out)
            .ok_or(format!("exit {code}: {err}"))
    });
    assert_eq!(body, "new\n");
    // The pod's address on the CNI bridge, from the test's namespace.
    let body = eventually("test → pod ip", || {
        http_get(&format!("{ip}:8080"), "/new").map_err(|e| e.to_string())
    });
    assert_eq!(body, "new\n");

    // ExecSync: output streams apart, the exit code, the image's user and workdir.
    let (out, err, code) = cri.exec_sync(
        &client,
        &["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!((out.as_str(), err.as_str(), code), ("out\n", "err\n", 3));
    let (out, _, code) = cri.exec_sync(&client, &["/bin/sh", "-c", "id -u; pwd; hostname"]);
    assert_eq!(code, 0);
    assert_eq!(out, format!("1000\n/srv\nweb-{handler}\n"));

    // Streaming Exec (websocket, harness/stream.rs): output channels, exit code, stdin,
    // and a terminal (the shim hands the runtime a console socket). With a terminal,
    // stdin is open as with `kubectl exec -it`: containerd 1.6 loses a terminal exec's
    // output when it has no stdin, with runc as well.
    let out = Session::open(&cri.exec_url(
        &client,
        &["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
        false,
        false,
    ))
    .read_to_end();
    assert_eq!(
        (out.stdout().as_str(), out.stderr().as_str()),
        ("out\n", "err\n")
    );
    assert_eq!(out.exit_code(), Some(3), "{out:?}");
    let mut s =
        Session::open(&cri.exec_url(&client, &["/bin/busybox", "head", "-n", "1"], true, false));
    s.send(stream::STDIN, b"line one\nline two\n");
    let out = s.read_to_end();
    assert_eq!(out.stdout(), "line one\n");
    assert_eq!(out.exit_code(), Some(0), "{out:?}");
    let out =
        Session::open(&cri.exec_url(&client, &["/bin/sh", "-c", "tty"], true, true)).read_to_end();
    assert!(out.stdout().starts_with("/dev/pts/"), "{out:?}");
    assert_eq!(out.exit_code(), Some(0), "{out:?}");

    // Attach to a container's stdin and stdout (the shim's pipes, through the runtime).
    let echoer = cri.create_container_with(
        &pod,
        &config,
        "echoer",
        &["/bin/sh", "-c", "while read l; do echo \"got $l\"; done"],
        |c| c.stdin = true,
    );
    cri.start_container(&echoer);
    let mut s = Session::open(&cri.attach_url(&echoer));
    s.send(stream::STDIN, b"ping\n");
    let mut out = stream::Output::default();
    s.read_until("got ping\n", &mut out);
    assert_eq!(out.stdout(), "got ping\n");
    s.close();
    let echo_log = std::path::Path::new(&config.log_directory).join("echoer.log");
    eventually("attached output in the CRI log", || {
        let log = std::fs::read_to_string(&echo_log).map_err(|e| e.to_string())?;
        log.contains(" stdout F got ping").then_some(()).ok_or(log)
    });

    // Logs at the CRI log path: LOGDIR/LOG_PATH, lines "TIME STREAM F TEXT".
    let log_path = std::path::Path::new(&config.log_directory).join("web.log");
    let log = eventually("the container's CRI log", || {
        let log = std::fs::read_to_string(&log_path).map_err(|e| e.to_string())?;
        (log.lines().count() >= 2).then_some(log.clone()).ok_or(log)
    });
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.splitn(4, ' ').collect()).collect();
    assert!(
        lines
            .iter()
            .any(|l| l[1..] == ["stdout", "F", "web-started"]),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l[1..] == ["stderr", "F", "web-stderr"]),
        "{log}"
    );
    let st = cri.container_status(&web, false).status.unwrap();
    assert_eq!(std::path::Path::new(&st.log_path), log_path);

    // UpdateContainerResources reaches the container's cgroup (the runtime's `update`).
    let mut rs = cri.rs();
    let container_id = client.clone();
    cri.ok("UpdateContainerResources", async move {
        rs.update_container_resources(UpdateContainerResourcesRequest {
            container_id,
            linux: Some(LinuxContainerResources {
                cpu_shares: 512,
                cpu_period: 100_000,
                cpu_quota: 50_000,
                memory_limit_in_bytes: 64 << 20,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
    });
    let pid = container_pid(cri, &client);
    assert_eq!(
        cgroup_file(pid, "memory", "memory.limit_in_bytes"),
        (64 << 20).to_string()
    );
    assert_eq!(cgroup_file(pid, "cpu", "cpu.shares"), "512");
    assert_eq!(cgroup_file(pid, "cpu", "cpu.cfs_quota_us"), "50000");
    // … and below the pod's cgroup parent.
    let mem = cgroup_of(pid, "memory");
    assert!(
        mem.starts_with(&cri.cgroup_parent),
        "{mem} not below {}",
        cri.cgroup_parent
    );

    // ListContainerStats: the three containers, with CPU and memory use.
    let mut rs = cri.rs();
    let pod_sandbox_id = pod.clone();
    let stats = cri.ok("ListContainerStats", async move {
        rs.list_container_stats(ListContainerStatsRequest {
            filter: Some(ContainerStatsFilter {
                pod_sandbox_id,
                ..Default::default()
            }),
        })
        .await
    });
    assert_eq!(stats.stats.len(), 3, "{stats:?}");
    for s in &stats.stats {
        let cpu = s
            .cpu
            .as_ref()
            .and_then(|c| c.usage_core_nano_seconds.as_ref());
        assert!(cpu.is_some_and(|v| v.value > 0), "{s:?}");
        let mem = s.memory.as_ref().and_then(|m| m.working_set_bytes.as_ref());
        assert!(mem.is_some_and(|v| v.value > 0), "{s:?}");
    }

    // StopContainer: httpd, PID 1 of its namespace, ignores SIGTERM; after the timeout the
    // shim kills it.
    let mut rs = cri.rs();
    let container_id = web.clone();
    cri.ok("StopContainer", async move {
        rs.stop_container(StopContainerRequest {
            container_id,
            timeout: 1,
        })
        .await
    });
    let st = cri.container_status(&web, false).status.unwrap();
    assert_eq!(st.state, ContainerState::ContainerExited as i32, "{st:?}");
    assert_eq!(st.exit_code, 137, "{st:?}");
    assert!(st.finished_at >= st.started_at);
    cri.wait_until_none(30, || {
        cri.runtime_state(handler, &web)
            .map(|s| format!("{handler} still has the stopped container: {s}"))
    });
    // kubelet's restart: RemoveContainer, then the same container again (attempt 1) in
    // the same sandbox, serving on the pod's localhost as before.
    let mut rs = cri.rs();
    let container_id = web.clone();
    cri.ok("RemoveContainer", async move {
        rs.remove_container(RemoveContainerRequest { container_id })
            .await
    });
    let web = cri.create_container_with(&pod, &config, "web", WEB, |c| {
        c.metadata.as_mut().unwrap().attempt = 1;
        c.log_path = "web-1.log".into();
    });
    cri.start_container(&web);
    let body = eventually("client → restarted web on localhost", || {
        let (out, err, code) = cri.exec_sync(&client, WGET);
        (code == 0)
            .then_some(out)
            .ok_or(format!("exit {code}: {err}"))
    });
    assert_eq!(body, "new\n");

    cri.stop_pod(&pod);
    assert_eq!(
        cri.pod_status(&pod).state,
        PodSandboxState::SandboxNotready as i32
    );
    let st = cri.container_status(&client, false).status.unwrap();
    assert_eq!(st.state, ContainerState::ContainerExited as i32, "{st:?}");
    cri.remove_pod(&pod);
}

/// A hostNetwork pod: its container serves on the test namespace's own loopback.
fn host_network_pod(cri: &Cri, handler: &str) {
    let config = cri.pod_config(&format!("host-{handler}"), true);
    let pod = cri.run_pod(&config, handler);
    let status = cri.pod_status(&pod);
    assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
    let port = free_port().to_string();
    let web = cri.create_container(
        &pod,
        &config,
        "hostweb",
        &[
            "/bin/busybox",
            "httpd",
            "-f",
            "-p",
            &format!("127.0.0.1:{port}"),
            "-h",
            "/srv",
        ],
    );
    cri.start_container(&web);
    let body = eventually("test → hostNetwork pod on 127.0.0.1", || {
        http_get(&format!("127.0.0.1:{port}"), "/new").map_err(|e| e.to_string())
    });
    assert_eq!(body, "new\n");
    // The pod has no veth: the namespace it sees is the test's.
    let (out, _, code) = cri.exec_sync(&web, &["/bin/busybox", "ip", "-o", "link"]);
    assert_eq!(code, 0);
    assert!(out.contains(&cri.bridge), "{out}");
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
}

/// The container's init pid, from ContainerStatus's verbose info (containerd's `info`).
fn container_pid(cri: &Cri, id: &str) -> i32 {
    let r = cri.container_status(id, true);
    let info: serde_json::Value = serde_json::from_str(&r.info["info"]).unwrap();
    info["pid"].as_i64().expect("pid in ContainerStatus info") as i32
}

/// The process's cgroup path in a v1 hierarchy (`controller` among its controllers).
fn cgroup_of(pid: i32, controller: &str) -> String {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    cg.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} cgroup in {cg}"))
}

fn cgroup_file(pid: i32, controller: &str, file: &str) -> String {
    let dir = format!("/sys/fs/cgroup/{controller}{}", cgroup_of(pid, controller));
    std::fs::read_to_string(format!("{dir}/{file}"))
        .unwrap_or_else(|e| panic!("{dir}/{file}: {e}"))
        .trim()
        .to_string()
}
