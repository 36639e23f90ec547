//! Health checks (`--health-*`, the image's Healthcheck, `husk healthcheck run`): run by
//! each detached container's monitor through the exec path, shown by `ps` and `inspect`,
//! logged as events. Intervals are short so that the test stays fast. Run as root.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn inspect(root: &Path, name: &str) -> Value {
    let text = husk_ok(root, &["inspect", "--type", "container", name]);
    serde_json::from_str::<Value>(&text).unwrap()[0].clone()
}

fn health(root: &Path, name: &str) -> Value {
    inspect(root, name)["State"]["Health"].clone()
}

fn ps_status(root: &Path, name: &str) -> String {
    husk_ok(
        root,
        &[
            "ps",
            "-a",
            "--filter",
            &format!("name={name}"),
            "--format",
            "{{.Status}}",
        ],
    )
    .trim()
    .to_string()
}

fn ps_names(root: &Path, filter: &str) -> String {
    husk_ok(root, &["ps", "--filter", filter, "--format", "{{.Names}}"])
}

#[test]
fn health_checks_run_by_the_monitor_and_on_demand() {
    let s = setup("health");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    // An image of its own with a healthcheck in its config (CMD form, 200 ms).
    let mut cfg = busybox_config();
    cfg["Healthcheck"] = serde_json::json!({
        "Test": ["CMD", "/bin/cat", "/srv/version"],
        "Interval": 200_000_000,
        "Retries": 1
    });
    let hc_image = build_image_with_config(&[(busybox_base_layer(), Comp::Gzip)], "amd64", &cfg);
    push_image(
        &s.reg.host(),
        &Default::default(),
        "busybox-hc",
        "latest",
        &hc_image,
    );
    let hc_image = format!("{}/busybox-hc:latest", s.reg.host());

    // Bad flags are refused before anything is made.
    let (code, _, err) = out(
        root,
        &[
            "run",
            "--network",
            "none",
            "--health-interval",
            "soon",
            &image,
            "true",
        ],
    );
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--health-interval \"soon\""), "{err}");
    let (code, _, err) = out(
        root,
        &[
            "run",
            "--network",
            "none",
            "--no-healthcheck",
            "--health-cmd",
            "true",
            &image,
            "true",
        ],
    );
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--no-healthcheck conflicts"), "{err}");

    // --health-cmd: failing at first (no /tmp/ok), "starting" until `retries` failures in
    // a row, then unhealthy.
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "h1",
            "-u",
            "0",
            "--health-cmd",
            "cat /tmp/ok",
            "--health-interval",
            "300ms",
            "--health-retries",
            "2",
            &image,
            "sleep 1000",
        ],
    );
    let status = ps_status(root, "h1");
    assert!(status.ends_with("(health: starting)"), "{status}");
    assert!(ps_names(root, "health=starting").contains("h1"));
    eventually("h1 unhealthy", || {
        health(root, "h1")["Status"] == "unhealthy"
    });
    let h = health(root, "h1");
    assert!(h["FailingStreak"].as_i64().unwrap() >= 2, "{h}");
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], 1, "{h}");
    assert!(last["Output"].as_str().unwrap().contains("/tmp/ok"), "{h}");
    assert!(last["Start"].as_str().unwrap() <= last["End"].as_str().unwrap());
    assert!(ps_status(root, "h1").ends_with("(unhealthy)"));
    assert!(ps_names(root, "health=unhealthy").contains("h1"));
    let config = inspect(root, "h1")["Config"]["Healthcheck"].clone();
    assert_eq!(
        config["Test"],
        serde_json::json!(["CMD-SHELL", "cat /tmp/ok"])
    );
    assert_eq!(
        (config["Interval"].clone(), config["Retries"].clone()),
        (300_000_000.into(), 2.into())
    );

    // Fixed from inside: healthy at the next check, with the check's output logged.
    husk_ok(root, &["exec", "h1", "sh", "-c", "echo fine > /tmp/ok"]);
    eventually("h1 healthy", || health(root, "h1")["Status"] == "healthy");
    let h = health(root, "h1");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["ExitCode"].clone(), last["Output"].clone()),
        (0.into(), "fine\n".into())
    );
    // Docker's last 5 results.
    eventually("5 results kept", || {
        health(root, "h1")["Log"].as_array().unwrap().len() == 5
    });
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(health(root, "h1")["Log"].as_array().unwrap().len(), 5);
    assert!(ps_status(root, "h1").ends_with("(healthy)"));

    // healthcheck run: 0 and silent when it passes; 1 and the status when it fails.
    let (code, o, e) = out(root, &["healthcheck", "run", "h1"]);
    assert_eq!((code, o.as_str()), (0, ""), "{e}");
    husk_ok(root, &["exec", "h1", "sh", "-c", "rm /tmp/ok"]);
    let (code, o, _) = out(root, &["healthcheck", "run", "h1"]);
    assert_eq!((code, o.as_str()), (1, "unhealthy\n"));

    // The status changes are events, docker's words.
    let events = husk_ok(
        root,
        &[
            "events",
            "--until",
            "0s",
            "--filter",
            "container=h1",
            "--format",
            "{{.Action}}",
        ],
    );
    assert!(events.contains("health_status: unhealthy\n"), "{events}");
    assert!(events.contains("health_status: healthy\n"), "{events}");

    // A check that outlives its timeout is killed and fails with docker's message.
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "h2",
            "--health-cmd",
            "sleep 10",
            "--health-timeout",
            "200ms",
            "--health-interval",
            "1h",
            &image,
            "sleep 1000",
        ],
    );
    let t = Instant::now();
    let (code, o, _) = out(root, &["healthcheck", "run", "h2"]);
    assert_eq!((code, o.as_str()), (1, "starting\n"));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let last = health(root, "h2")["Log"][0].clone();
    assert_eq!(last["ExitCode"], -1, "{last}");
    assert_eq!(last["Output"], "Health check exceeded timeout (200ms)");

    // The image's Healthcheck runs unless --no-healthcheck turns it off.
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "h3",
            &hc_image,
            "sleep 1000",
        ],
    );
    husk_ok(
        root,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "h4",
            "--no-healthcheck",
            &hc_image,
            "sleep 1000",
        ],
    );
    eventually("h3 healthy", || health(root, "h3")["Status"] == "healthy");
    assert_eq!(health(root, "h3")["Log"][0]["Output"], "1\n");
    assert!(health(root, "h4").is_null());
    assert_eq!(
        inspect(root, "h4")["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    assert!(ps_names(root, "health=none").contains("h4"));
    assert!(!ps_names(root, "health=none").contains("h3"));
    let (code, _, err) = out(root, &["healthcheck", "run", "h4"]);
    assert_eq!(code, 125);
    assert!(err.contains("no healthcheck"), "{err}");
    let (code, _, err) = out(root, &["ps", "--filter", "health=sick"]);
    assert_ne!(code, 0);
    assert!(err.contains("health=sick"), "{err}");

    husk_ok(root, &["rm", "-f", "h1", "h2", "h3", "h4"]);
    assert!(containers(root).is_empty());
}

/// A container whose memory cgroup OOM-kills a process shows OOMKilled and an "oom"
/// event, foreground or detached; one that did not, not.
#[test]
fn oom_kills_are_reported() {
    let s = setup("oom");
    let (root, image) = (s.root.as_path(), s.image.clone());
    let _cleanup = RemoveAll(root);
    // The shell keeps 100 MB in a variable: far past the 10 MiB limit (no swap here, and
    // --memory-swap keeps it so elsewhere).
    let hog = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived";
    let limits = [
        "--network",
        "none",
        "-u",
        "0",
        "--memory",
        "10m",
        "--memory-swap",
        "10m",
    ];
    let args = [
        &["run", "--name", "fg"][..],
        &limits,
        &[image.as_str(), hog],
    ]
    .concat();
    let (code, o, err) = out(root, &args);
    assert_eq!((code, o.as_str()), (137, ""), "{err}");
    assert_eq!(inspect(root, "fg")["State"]["OOMKilled"], true);

    let args = [
        &["run", "-d", "--name", "bg"][..],
        &limits,
        &[image.as_str(), hog],
    ]
    .concat();
    husk_ok(root, &args);
    assert_eq!(husk_ok(root, &["wait", "bg"]).trim(), "137");
    assert_eq!(inspect(root, "bg")["State"]["OOMKilled"], true);

    husk_ok(
        root,
        &["run", "--name", "ok", "--network", "none", &image, "true"],
    );
    assert_eq!(inspect(root, "ok")["State"]["OOMKilled"], false);

    let events = husk_ok(
        root,
        &[
            "events",
            "--until",
            "0s",
            "--filter",
            "event=oom",
            "--format",
            "{{.Actor.Attributes.name}}",
        ],
    );
    assert_eq!(events, "fg\nbg\n");
    husk_ok(root, &["rm", "fg", "bg", "ok"]);
}
