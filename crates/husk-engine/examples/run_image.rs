//! Embedding husk: pull an image and run it, detached and in the foreground, from a Rust
//! program (as root, or as a user with subordinate ids: see docs/embedding.md).
//!
//!     cargo run -p husk-engine --example run_image -- REGISTRY/IMAGE[:TAG] [STORE_ROOT]
use husk_engine::{ContainerConfig, Engine, EngineOptions, PullRequest, RunOptions, RunOutcome};
use std::time::Duration;

fn main() {
    if let Err(e) = run() {
        eprintln!("run_image: {e}"); // one line: the operation and the step that failed
        std::process::exit(1);
    }
}

fn run() -> husk_engine::Result<()> {
    // First thing: serves the container monitor when it runs this program again, enters the
    // rootless namespaces of an ordinary user, re-executes from a read-only copy of itself.
    husk_engine::init()?;
    let mut args = std::env::args().skip(1);
    let image = args.next().expect("usage: run_image IMAGE [STORE_ROOT]");
    let root = args.next().map(Into::into);
    let engine = Engine::new(EngineOptions {
        root,
        ..Default::default()
    })?;
    let pulled = engine.pull(&image, &PullRequest::default())?;
    println!("pulled {}", pulled.config_digest);

    // Detached: a monitor process keeps it (and its log); stop and remove it. husk-init as
    // PID 1 passes the stop signal on (a shell as PID 1 would ignore it).
    let mut opts = RunOptions::new(&image);
    // Loopback only: root's default is the `bridge` network, with NAT to the host's
    // interfaces; this example needs no network (and its test must not touch the host's).
    opts.network = vec!["none".into()];
    opts.detach = true;
    opts.init = true;
    opts.entrypoint = Some(String::new()); // none: run the command as given
    opts.cmd = vec!["sh".into(), "-c".into(), "sleep 60".into()];
    if let RunOutcome::Started { id } = engine.run(&ContainerConfig::validate(&opts)?)? {
        let running = engine.containers(false).iter().any(|c| c.id == id);
        println!("started {id} (running: {running})");
        engine.stop(&id, Duration::from_secs(5))?;
        engine.remove(&id, false)?;
    }

    // Foreground: our stdin/stdout/stderr, its exit code; removed when it exits.
    let mut opts = RunOptions::new(&image);
    opts.network = vec!["none".into()];
    opts.remove = true;
    opts.entrypoint = Some(String::new());
    opts.cmd = vec![
        "sh".into(),
        "-c".into(),
        "echo hello from $(hostname); exit 3".into(),
    ];
    if let RunOutcome::Exited { code, .. } = engine.run(&ContainerConfig::validate(&opts)?)? {
        println!("exited {code}");
    }
    Ok(())
}
