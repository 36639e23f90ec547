//! husk-runtime: runc's command line over the husk-container library.

mod cgroup_commands;
mod checkpoint_command;
mod cli;
mod exec_command;
mod features;
mod log;
mod spec_template;

use clap::Parser;
use cli::{Cli, Command, CreateArgs, ListFormat, RunArgs};
use husk_container::{Container, ContainerBuilder, Listed, Status};
use std::io::Write;
use std::path::{Path, PathBuf};

fn main() {
    log::mark_start();
    // CVE-2019-5736: what starts container processes runs from a read-only view of this
    // binary (husk_container::selfexe), so no container can write the host's copy. Done
    // before parsing, so the first image pays for nothing else; a container id spelled like
    // a command only costs an extra exec. `view` is the detached mount we now run from:
    // closing it waits for an RCU grace period, so `run` closes it while the container runs.
    let mut view = None;
    if std::env::args_os()
        .skip(1)
        .any(|a| a == "create" || a == "run" || a == "exec" || a == "restore")
    {
        match husk_container::selfexe::reexec_protected() {
            Ok(v) => view = v,
            Err(msg) => {
                log::stderr(&msg);
                std::process::exit(1);
            }
        }
    }
    let cli = Cli::parse();
    let mut log = match log::Logger::new(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(l) => l,
        Err(msg) => {
            log::stderr(&msg);
            std::process::exit(1);
        }
    };
    if cli.version {
        print_version();
        return;
    }
    let Some(command) = cli.command else {
        log::stderr("no command given; see husk-runtime --help");
        std::process::exit(1);
    };
    let rootless = cli::Rootless::resolve(cli.rootless);
    let criu = cli.criu.as_deref();
    let code = match run(
        cli.root,
        rootless,
        cli.systemd_cgroup,
        criu,
        command,
        &mut log,
        view,
    ) {
        Ok(code) => code,
        Err(f) => {
            log.error(&f.msg);
            f.code
        }
    };
    std::process::exit(code);
}

fn print_version() {
    println!("husk-runtime version {}", env!("CARGO_PKG_VERSION"));
    println!(
        "commit: {}",
        option_env!("HUSK_COMMIT").unwrap_or("unknown")
    );
    println!("spec: {}", oci_spec::runtime::VERSION);
}

/// A failed command: the one line to report and the exit code (1, as runc, except where
/// runc uses another: `exec` fails with 255).
pub struct Failure {
    pub msg: String,
    pub code: i32,
}

impl From<String> for Failure {
    fn from(msg: String) -> Failure {
        Failure { msg, code: 1 }
    }
}

/// Runs one subcommand; `Err` is the line to report, `Ok` the exit code.
fn run(
    root: Option<PathBuf>,
    rootless: bool,
    systemd: bool,
    criu: Option<&Path>,
    command: Command,
    log: &mut log::Logger,
    view: Option<std::os::fd::OwnedFd>,
) -> Result<i32, Failure> {
    let root = match (&command, root) {
        // These two never touch state.
        (Command::Spec { .. } | Command::Features, _) => PathBuf::new(),
        (_, Some(root)) => root,
        (_, None) => {
            husk_container::rootless::default_state_root(rootless).map_err(|e| e.to_string())?
        }
    };
    let root = root.as_path();
    log.debug(&format!("state root {}", root.display()));
    let mode = CreateMode {
        rootless,
        systemd_cgroup: systemd,
    };
    match command {
        Command::Create(args) => {
            let id = args.id.clone();
            log.debug(&format!("create {id}: bundle {}", args.bundle.display()));
            let c = builder(root, mode, &args, None, log.debugging())
                .build_with_warnings(&mut |w| log.warn(&format!("create {id}: {w}")))
                .map_err(|e| create_failure(format!("create {id}"), e))?;
            log.debug(&created(&c));
            log.timeline(c.timeline());
            Ok(0)
        }
        Command::Start { id } => {
            let mut c = load(root, &id, "start")?;
            c.start_with_warnings(&mut |w| log.warn(&format!("start {id}: {w}")))
                .map_err(|e| format!("start {id}: {e}"))?;
            log.debug(&format!("start {id}: released init (pid {})", c.pid()));
            Ok(0)
        }
        Command::Run(args) => Ok(run_container(root, mode, &args, log, view)?),
        Command::State { id } => {
            let c = load(root, &id, "state")?;
            println!(
                "{}",
                serde_json::to_string_pretty(&c.state()).expect("state serialises")
            );
            Ok(0)
        }
        Command::Kill { id, signal, all } => {
            // Signal 0 checks that the container is alive, as kill(2) does (runc accepts it).
            let sig = match signal.as_str() {
                "0" => 0,
                _ => husk_oci::signal::parse_signal(&signal)
                    .map_err(|e| format!("kill {id}: {e}"))?,
            };
            let c = load(root, &id, "kill")?;
            let whom = if all { "every process" } else { "init" };
            log.debug(&format!("kill {id}: signal {sig} to {whom}"));
            c.kill(sig, all).map_err(|e| format!("kill {id}: {e}"))?;
            Ok(0)
        }
        Command::Delete { id, force } => {
            delete(root, &id, force, log).map_err(|e| format!("delete {id}: {e}"))?;
            log.debug(&format!("delete {id}: removed"));
            Ok(0)
        }
        Command::List { format, quiet } => Ok(list(root, format, quiet, log)?),
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(format!("spec: {} exists; remove it first", path.display()).into());
            }
            let text = serde_json::to_string_pretty(&spec_template::default_spec(rootless))
                .expect("spec serialises");
            std::fs::write(&path, text + "\n")
                .map_err(|e| format!("spec: writing {}: {e}", path.display()))?;
            Ok(0)
        }
        Command::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&features::features()).expect("features serialise")
            );
            Ok(0)
        }
        Command::Pause { id } => Ok(cgroup_commands::pause(root, &id)?),
        Command::Resume { id } => Ok(cgroup_commands::resume(root, &id)?),
        Command::Ps(args) => Ok(cgroup_commands::ps(root, &args)?),
        Command::Update(args) => Ok(cgroup_commands::update(root, &args)?),
        Command::Events(args) => Ok(cgroup_commands::events(root, &args)?),
        Command::Exec(args) => exec_command::exec(root, &args, log),
        Command::Checkpoint(args) => checkpoint_command::checkpoint(root, criu, &args, log),
        Command::Restore(args) => {
            checkpoint_command::restore(root, rootless, systemd, criu, &args, log)
        }
    }
}

/// The debug line after a create: init's pid and where its cgroup is.
fn created(c: &Container) -> String {
    let cgroup = c
        .cgroup_path()
        .map_or_else(|| "none".to_string(), |p| p.to_string());
    format!("create {}: init pid {}, cgroup {cgroup}", c.id(), c.pid())
}

/// `delete [--force] ID`. runc: deleting a missing container is fine with --force; husk
/// also removes what cannot be loaded (a create killed half-way, an unreadable state.json).
fn delete(
    root: &Path,
    id: &str,
    force: bool,
    log: &mut log::Logger,
) -> Result<(), husk_container::Error> {
    // A create that finishes while we wait for its lock turns into a complete container:
    // then it is deleted as one.
    for _ in 0..3 {
        match Container::load(root, id) {
            Ok(c) => {
                return c
                    .delete_with_warnings(force, &mut |w| log.warn(&format!("delete {id}: {w}")))
            }
            Err(husk_container::Error::NotFound(_) | husk_container::Error::Unreadable { .. })
                if force =>
            {
                if Container::delete_unloadable(root, id)? {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(husk_container::Error::Other(
        "the container kept changing while being deleted".into(),
    ))
}

/// A failed create: exit 128 + the signal when a caller's signal interrupted it (what a
/// process killed by it shows), else 1.
fn create_failure(what: String, e: husk_container::Error) -> Failure {
    let code = match e {
        husk_container::Error::Interrupted(sig) => 128 + sig,
        _ => 1,
    };
    Failure {
        msg: format!("{what}: {e}"),
        code,
    }
}

fn load(root: &Path, id: &str, op: &str) -> Result<Container, String> {
    Container::load(root, id).map_err(|e| format!("{op} {id}: {e}"))
}

/// The global flags that shape a new container.
#[derive(Clone, Copy)]
struct CreateMode {
    rootless: bool,
    /// `--systemd-cgroup`: later commands find the driver in state.json (the cgroup path
    /// names the unit), so only create and run need it.
    systemd_cgroup: bool,
}

fn builder(
    root: &Path,
    mode: CreateMode,
    a: &CreateArgs,
    console: Option<&Path>,
    timeline: bool,
) -> husk_container::InitContainerBuilder {
    let mut b = ContainerBuilder::new(a.id.clone())
        .root_path(root)
        .rootless(mode.rootless)
        .systemd_cgroup(mode.systemd_cgroup)
        .preserve_fds(a.preserve_fds)
        .no_pivot(a.no_pivot)
        .no_new_keyring(a.no_new_keyring)
        .listen_fds(listen_fds())
        // A caller that gives up (timeout, Ctrl-C) gets everything undone, as with runc.
        .interruptible(true)
        .timeline(timeline);
    if let Some(sock) = std::env::var_os("NOTIFY_SOCKET") {
        b = b.notify_socket(sock);
    }
    if let Some(p) = &a.pid_file {
        b = b.pid_file(p);
    }
    if let Some(p) = a.console_socket.as_deref().or(console) {
        b = b.console_socket(p);
    }
    b.as_init(&a.bundle)
}

/// systemd socket activation aimed at us: LISTEN_FDS counts fds from 3, LISTEN_PID must be
/// this process (otherwise the variables were meant for someone else).
fn listen_fds() -> u32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `run`: create + start; in the foreground, forward signals to init and return its exit code.
fn run_container(
    root: &Path,
    mode: CreateMode,
    run: &RunArgs,
    log: &mut log::Logger,
    view: Option<std::os::fd::OwnedFd>,
) -> Result<i32, Failure> {
    let (args, detach, keep, no_subreaper) = (&run.create, run.detach, run.keep, run.no_subreaper);
    let id = &args.id;
    if !detach && !no_subreaper {
        // Orphans of the container (and init itself when cloned via an intermediate) come to us.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    // A terminal without --console-socket, in the foreground: we are the terminal's other end.
    let console = (!detach
        && args.console_socket.is_none()
        && husk_container::terminal::wants_terminal(&args.bundle.join("config.json"), true))
    .then(husk_container::terminal::ConsoleListener::new)
    .transpose()
    .map_err(|e| format!("run {id}: {e}"))?;
    let all = if detach {
        None
    } else {
        Some(husk_container::supervise::block_signals())
    };
    let console_path = console.as_ref().map(|l| l.path());
    let mut c = builder(root, mode, args, console_path, log.debugging())
        .build_with_warnings(&mut |w| log.warn(&format!("run {id}: {w}")))
        .map_err(|e| create_failure(format!("run {id}"), e))?;
    log.debug(&created(&c));
    let master = match &console {
        Some(l) => match l.receive_master() {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = Container::load(root, id).map(|c| c.delete(true));
                return Err(format!("run {id}: {e}").into());
            }
        },
        None => None,
    };
    let raw = master.as_ref().map(|m| {
        husk_container::terminal::copy_window_size(m);
        husk_container::terminal::RawMode::enter()
    });
    if let Err(e) = c.start_with_warnings(&mut |w| log.warn(&format!("run {id}: {w}"))) {
        drop(raw);
        let _ = Container::load(root, id).map(|c| c.delete(true));
        return Err(format!("run {id}: {e}").into());
    }
    log.debug(&format!("run {id}: started"));
    let mut marks = c.timeline().to_vec();
    let timing = log.debugging();
    let mut mark = |what: &str| {
        if timing {
            marks.push((what.to_string(), husk_container::timeline::now_ns()));
        }
    };
    mark("run: started (init exec'd)");
    // Its grace period now overlaps the container's run (see `main`).
    drop(view);
    let Some(all) = all else {
        log.timeline(&marks);
        return Ok(0);
    };
    let code = match &master {
        Some(m) => {
            let pid = c.pid();
            let code = husk_container::terminal::proxy(
                m,
                &all,
                &mut || husk_container::supervise::reap(pid),
                &mut |sig| unsafe {
                    libc::kill(pid, sig);
                },
            );
            drop(raw);
            code.map_err(|e| format!("run {id}: {e}"))?
        }
        None => husk_container::supervise::forward_signals_until_exit(
            c.pid(),
            &all,
            &mut |sig| unsafe {
                libc::kill(c.pid(), sig);
            },
        ),
    };
    mark("run: container exited");
    log.debug(&format!("container {id} exited with {code}"));
    if !keep {
        if let Ok(c) = Container::load(root, id) {
            c.delete_with_warnings(true, &mut |w| log.warn(&format!("run {id}: {w}")))
                .map_err(|e| format!("run {id}: {e}"))?;
        }
        mark("run: deleted");
    }
    log.timeline(&marks);
    Ok(code)
}

fn list(
    root: &Path,
    format: ListFormat,
    quiet: bool,
    log: &mut log::Logger,
) -> Result<i32, String> {
    let all = Container::list(root).map_err(|e| format!("list: {e}"))?;
    // A container whose state cannot be read is shown, not hidden: it may still hold
    // processes and cgroups. One warning line each says why and what removes it.
    let states: Vec<husk_container::StateOutput> = all
        .iter()
        .map(|l| match l {
            Listed::Container(c) => c.state(),
            Listed::Unknown { id, reason } => {
                log.warn_stderr(&format!(
                    "list: container {id}: status unknown: {reason}; `delete --force {id}` removes it"
                ));
                unknown_state(id)
            }
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in &states {
            let _ = writeln!(out, "{}", s.id);
        }
        return Ok(0);
    }
    match format {
        ListFormat::Json => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(&states).expect("states serialise")
            );
        }
        ListFormat::Table => {
            let _ = writeln!(
                out,
                "{:<12} {:<10} {:<10} {:<40} {:<31} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for s in &states {
                let owner = if s.owner.is_empty() { "root" } else { &s.owner };
                let pid = match s.status {
                    Status::Stopped | Status::Unknown => 0,
                    _ => s.pid,
                };
                let _ = writeln!(
                    out,
                    "{:<12} {:<10} {:<10} {:<40} {:<31} {owner}",
                    s.id,
                    pid,
                    s.status,
                    s.bundle.display(),
                    s.created
                );
            }
        }
    }
    Ok(0)
}

/// What `list` shows for a container whose state.json cannot be read: its id and `unknown`.
fn unknown_state(id: &str) -> husk_container::StateOutput {
    husk_container::StateOutput {
        oci_version: String::new(),
        id: id.to_string(),
        pid: 0,
        status: Status::Unknown,
        bundle: PathBuf::new(),
        rootfs: PathBuf::new(),
        created: String::new(),
        owner: String::new(),
        annotations: Default::default(),
    }
}
