//! Pod start through the CRI, `runtime_handler: husk` vs `runc`, in one run against one
//! containerd: RunPodSandbox + CreateContainer + StartContainer, timed until ContainerStatus
//! says running. The handlers alternate pod by pod so both see the same machine; each pod is
//! stopped and removed (untimed) before the next. benches/cri.sh runs it.
//!
//!   cri_bench [PODS_PER_HANDLER [HUSK_RUNTIME]]

// The loopback registry, images and the network namespace the run lives in (entered
// before main), and the private containerd with its CRI client: the test's own.
#[path = "../../husk/tests/common/mod.rs"]
mod common;
#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::Cri;
use k8s_cri::v1::ContainerState;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One pod with one container, from RunPodSandbox until the container runs; then removed.
fn pod_start(cri: &Cri, handler: &str, i: usize) -> Duration {
    let config = cri.pod_config(&format!("bench-{handler}-{i}"), false);
    let t = Instant::now();
    let pod = cri.run_pod(&config, handler);
    let c = cri.create_container(&pod, &config, "sleeper", &["/bin/busybox", "sleep", "1000"]);
    cri.start_container(&c);
    while cri.container_status(&c, false).status.unwrap().state
        != ContainerState::ContainerRunning as i32
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = t.elapsed();
    cri.stop_pod(&pod);
    cri.remove_pod(&pod);
    took
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .get(1)
        .map_or(10, |a| a.parse().expect("PODS_PER_HANDLER"));
    let husk = args
        .get(2)
        .map_or_else(harness::husk_runtime, PathBuf::from);
    println!("husk-runtime: {}", husk.display());
    let cri = Cri::start_with("bench", 3, husk);
    cri.pull_busybox();
    let handlers = ["husk", "runc"];
    // Warm-up, untimed: the sandbox image is pulled and unpacked by the first pod.
    for h in handlers {
        pod_start(&cri, h, 0);
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); 2];
    for i in 1..=runs {
        // Alternate which handler goes first.
        for k in 0..2 {
            let h = (i + k) % 2;
            times[h].push(pod_start(&cri, handlers[h], i));
        }
    }
    let mut medians = Vec::new();
    for (h, t) in handlers.iter().zip(times.iter_mut()) {
        let m = median(t);
        println!(
            "{h:5} pod start: median {:7.1} ms  min {:7.1} ms  max {:7.1} ms  ({runs} pods)",
            m.as_secs_f64() * 1e3,
            t[0].as_secs_f64() * 1e3,
            t[t.len() - 1].as_secs_f64() * 1e3,
        );
        medians.push(m);
    }
    println!(
        "husk / runc = {:.3}",
        medians[0].as_secs_f64() / medians[1].as_secs_f64()
    );
}
