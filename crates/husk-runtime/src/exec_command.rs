//! `exec`: run a process in a running container, with runc's flags. Without `--process`,
//! the process is the container's own (config.json in its bundle) with the command and the
//! flags applied on top, as runc does. Like runc's, a failed exec exits 255 (a wrong
//! command line, 1), so that a caller can tell it from the process's own exit code.

use crate::log::Logger;
use crate::Failure;
use husk_container::{Container, ContainerBuilder};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Unix socket that receives the pty master (with --tty)
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the new process
    #[arg(long)]
    pub pidfd_socket: Option<PathBuf>,
    /// Current working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE; repeatable)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// UID[:GID] to run as
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// An additional group id (repeatable)
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Path to a process.json; the command and process flags are then not used
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Return once the process has started
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process's pid to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// SELinux label of the process
    #[arg(long)]
    pub process_label: Option<String>,
    /// AppArmor profile of the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability (repeatable)
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Pass N extra fds (3..3+N) to the process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Run in a sub-cgroup of the container: PATH, or (v1) CONTROLLER[,CONTROLLER]:PATH
    /// (repeatable, one per set of controllers)
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Allow exec into a paused container
    #[arg(long)]
    pub ignore_paused: bool,
    /// Container id
    pub id: String,
    /// Command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Runs `exec`; `Ok` is the exit code (the process's, in the foreground).
pub fn exec(root: &Path, a: &ExecArgs, log: &mut Logger) -> Result<i32, Failure> {
    let id = &a.id;
    // A command line runc's own argument checks refuse: exit 1.
    let usage = |e: &str| Failure::from(format!("exec {id}: {e}"));
    if a.process.is_some() && !a.command.is_empty() {
        return Err(usage("give either --process or a command, not both"));
    }
    if a.process.is_none() && a.command.is_empty() {
        return Err(usage("no command given (or use --process)"));
    }
    let fail = |e: String| Failure {
        msg: format!("exec {id}: {e}"),
        code: 255,
    };
    let subs = parse_cgroup_flags(&a.cgroup).map_err(fail)?;
    let mut b = ContainerBuilder::new(id.clone())
        .root_path(root)
        .preserve_fds(a.preserve_fds);
    if let Some(p) = &a.pid_file {
        b = b.pid_file(p);
    }
    // --process is read once, here: it may be a pipe (`-p /dev/fd/N`), not a file.
    let given = match a.process.as_deref().map(read_process).transpose() {
        Ok(given) => given.map(|(p, warning)| {
            if let Some(w) = warning {
                log.warn(&format!("exec {id}: {w}"));
            }
            p
        }),
        Err(e) => return Err(fail(e)),
    };
    let c = Container::load(root, id).map_err(|e| fail(e.to_string()))?;
    let mut proc_ = match given {
        Some(p) => p,
        None => {
            let base = c.config_process().map_err(|e| fail(e.to_string()))?;
            let (p, warning) = command_process(base, a).map_err(fail)?;
            if let Some(w) = warning {
                log.warn(&format!("exec {id}: {w}"));
            }
            p
        }
    };
    // runc: the flags override the process's labels, given by -p or taken from config.json.
    // A label the host cannot apply is refused by the library, before anything starts.
    if let Some(p) = &a.apparmor {
        proc_.set_apparmor_profile(Some(p.clone()));
    }
    if let Some(l) = &a.process_label {
        proc_.set_selinux_label(Some(l.clone()));
    }
    // A terminal without --console-socket, in the foreground: we are the terminal's other end.
    let tty = proc_.terminal().unwrap_or(false);
    let console = (tty && !a.detach && a.console_socket.is_none())
        .then(husk_container::terminal::ConsoleListener::new)
        .transpose()
        .map_err(fail)?;
    if let Some(p) = a
        .console_socket
        .as_deref()
        .or(console.as_ref().map(|l| l.path()))
    {
        b = b.console_socket(p);
    }
    if console.is_some() {
        // Our own pty gets our window size before the process runs.
        with_our_window_size(&mut proc_);
    }
    let mut t = b
        .as_tenant()
        .detach(a.detach)
        .ignore_paused(a.ignore_paused)
        .sub_cgroups(subs)
        // Detached, a caller that gives up gets no process; in the foreground what is sent
        // meanwhile is forwarded to the process once it runs, as runc does.
        .interruptible(a.detach)
        .process(proc_);
    if let Some(p) = &a.pidfd_socket {
        t = t.pidfd_socket(p);
    }

    // Blocked before the clone, so that nothing sent to us meanwhile is lost.
    let set = (!a.detach).then(husk_container::supervise::block_signals);
    let tenant = t.build().map_err(|e| match e {
        husk_container::Error::Interrupted(sig) => Failure {
            msg: format!("exec {id}: {e}"),
            code: 128 + sig,
        },
        e => fail(e.to_string()),
    })?;
    log.debug(&format!("exec {id}: process pid {}", tenant.pid()));
    let Some(set) = set else { return Ok(0) };
    let Some(console) = console else {
        return Ok(husk_container::supervise::forward_signals_until_exit(
            tenant.pid(),
            &set,
            &mut |sig| {
                let _ = tenant.signal(sig);
            },
        ));
    };
    let master = match console.receive_master() {
        Ok(m) => m,
        Err(e) => {
            let _ = tenant.signal(libc::SIGKILL);
            let _ = tenant.wait();
            return Err(fail(e));
        }
    };
    husk_container::terminal::copy_window_size(&master);
    let raw = husk_container::terminal::RawMode::enter();
    let code = husk_container::terminal::proxy(
        &master,
        &set,
        &mut || {
            let mut status = 0;
            (unsafe { libc::waitpid(tenant.pid(), &mut status, libc::WNOHANG) } == tenant.pid())
                .then(|| {
                    if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    }
                })
        },
        &mut |sig| drop(tenant.signal(sig)),
    );
    drop(raw);
    code.map_err(fail)
}

/// The process of `--process FILE`, read in one go (FILE may be a pipe), as runc reads it:
/// with the warning about capability names it ignores.
fn read_process(path: &Path) -> Result<(Process, Option<String>), String> {
    let data = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    husk_container::parse_process(&data).map_err(|e| format!("loading {}: {e}", path.display()))
}

/// runc's `--cgroup` values: one PATH for every controller, or CONTROLLER[,CONTROLLER]:PATH
/// per set of controllers (v1); the two forms do not mix.
fn parse_cgroup_flags(values: &[String]) -> Result<husk_container::SubCgroups, String> {
    let mut subs = husk_container::SubCgroups::new();
    for v in values {
        match v.split_once(':') {
            None if values.len() == 1 => {
                subs.insert(String::new(), v.clone());
            }
            None => {
                return Err(format!(
                    "invalid --cgroup argument: {v} (missing <controller>: prefix)"
                ))
            }
            Some((controllers, path)) => {
                for c in controllers.split(',') {
                    if c.is_empty() {
                        return Err(format!("invalid --cgroup argument: {v} (empty controller)"));
                    }
                    if subs.insert(c.to_string(), path.to_string()).is_some() {
                        return Err(format!(
                            "invalid --cgroup argument: {v} (controller {c} given twice)"
                        ));
                    }
                }
            }
        }
    }
    Ok(subs)
}

/// process.consoleSize from our stdin's terminal (unless the process sets one).
fn with_our_window_size(p: &mut Process) {
    if p.console_size().is_some() {
        return;
    }
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } != 0 || ws.ws_row == 0 {
        return;
    }
    let size = serde_json::json!({"height": ws.ws_row, "width": ws.ws_col});
    p.set_console_size(serde_json::from_value(size).ok());
}

/// The container's process with the command line's changes.
/// The container's process with the command line's changes, and runc's warning when `--cap`
/// names capabilities it does not know (runc ignores those; it is not an error).
fn command_process(mut p: Process, a: &ExecArgs) -> Result<(Process, Option<String>), String> {
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for kv in &a.env {
            let key = kv.split('=').next().unwrap_or(kv);
            match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
                Some(e) => *e = kv.clone(),
                None => env.push(kv.clone()),
            }
        }
        p.set_env(Some(env));
    }
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let bad = || format!("--user {u:?}: expected UID[:GID], numeric");
        let (uid, gid) = match u.split_once(':') {
            Some((uid, gid)) => (uid, Some(gid)),
            None => (u.as_str(), None),
        };
        user.set_uid(uid.parse().map_err(|_| bad())?);
        if let Some(gid) = gid {
            user.set_gid(gid.parse().map_err(|_| bad())?);
        }
    }
    if !a.additional_gids.is_empty() {
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&a.additional_gids);
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    let mut unknown = Vec::new();
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_else(empty_caps);
        let mut add: HashSet<Capability> = HashSet::new();
        for name in &a.cap {
            match parse_cap(name) {
                Some(c) => drop(add.insert(c)),
                None => unknown.push(name.as_str()),
            }
        }
        // Never into the inheritable set (CVE-2022-29162); ambient needs inheritable.
        let grow = |set: &Option<HashSet<Capability>>| {
            Some(
                set.clone()
                    .unwrap_or_default()
                    .union(&add)
                    .cloned()
                    .collect(),
            )
        };
        caps.set_bounding(grow(caps.bounding()));
        caps.set_effective(grow(caps.effective()));
        caps.set_permitted(grow(caps.permitted()));
        p.set_capabilities(Some(caps));
    }
    unknown.sort_unstable();
    unknown.dedup();
    let warning = (!unknown.is_empty()).then(|| {
        format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            unknown.join(" ")
        )
    });
    Ok((p, warning))
}

fn empty_caps() -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    for set in [
        LinuxCapabilities::set_bounding,
        LinuxCapabilities::set_effective,
        LinuxCapabilities::set_permitted,
        LinuxCapabilities::set_inheritable,
        LinuxCapabilities::set_ambient,
    ] {
        set(&mut c, None);
    }
    c
}

/// A `--cap` name, with or without `CAP_`, any case (a convenience runc does not offer: it
/// takes only the exact `CAP_…` form); `None` for a capability no one knows.
fn parse_cap(name: &str) -> Option<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full)).ok()
}
