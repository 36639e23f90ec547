//! OCI hooks (runtime-spec config.md, "POSIX-platform Hooks"): run each hook's `path` with its
//! `args` (args[0] is argv[0]), the container's state JSON on stdin, honouring `timeout`.
//! Hooks of one kind run in order; the first failure stops the rest.
//!
//! Where each kind runs: prestart and createRuntime in the main process while init waits
//! before pivot_root (`create.rs`); createContainer in init at that point, startContainer in
//! init right before the user's execve (`process/init.rs`); poststart and poststop in
//! `Container::start` and `Container::delete`, whose failures are only warnings. The last
//! two are kept in the state dir (`hooks.json`), as `start` and `delete` run without the bundle.
//!
//! What a hook sees is runc's (1.1), which hook authors test against: a hook's `env`, when
//! given, is its whole environment (an empty list an empty one); without `env` it inherits the
//! environment of whoever runs it — the runtime's for the runtime's hooks, the container
//! process's for createContainer and startContainer. The runtime's hooks run in the bundle
//! directory, createContainer in the rootfs ([`HookContext`]). The state on stdin is the
//! runtime-spec's state object ([`state_json`]); a failure reports the hook's stdout and stderr.

use crate::error::Result;
use crate::state::{write_atomic, StateDir};
use crate::sys;
use husk_oci::{StateOutput, Status};
use oci_spec::runtime::{Hook, Hooks, Spec};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The poststart/poststop hooks of a container, in its state dir.
pub const HOOKS_FILE: &str = "hooks.json";

/// At most this much of each of a hook's stdout and stderr is kept for the error message.
const OUTPUT_KEEP: usize = 64 * 1024;

fn list(hooks: &Option<Vec<Hook>>) -> &[Hook] {
    hooks.as_deref().unwrap_or_default()
}

fn spec_hooks(spec: &Spec) -> Option<&Hooks> {
    spec.hooks().as_ref()
}

/// Whether init must stop before pivot_root for the runtime's hooks (prestart, createRuntime)
/// or needs the state for its own (createContainer, startContainer).
pub fn init_needs_state(spec: &Spec) -> bool {
    spec_hooks(spec).is_some_and(|h| {
        !list(h.prestart()).is_empty()
            || !list(h.create_runtime()).is_empty()
            || !list(h.create_container()).is_empty()
            || !list(h.start_container()).is_empty()
    })
}

/// The createContainer hooks of `spec`.
pub fn create_container(spec: &Spec) -> &[Hook] {
    spec_hooks(spec).map_or(&[], |h| list(h.create_container()))
}

/// The startContainer hooks of `spec`.
pub fn start_container(spec: &Spec) -> &[Hook] {
    spec_hooks(spec).map_or(&[], |h| list(h.start_container()))
}

/// The runtime-spec's state object (runtime.md, "State"), as runc hands it to hooks: no
/// rootfs, created or owner (those belong to `runc state`), `pid` only while there is one,
/// `annotations` only when there are some.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecState {
    oci_version: String,
    id: String,
    status: Status,
    #[serde(default, skip_serializing_if = "is_zero")]
    pid: i32,
    bundle: std::path::PathBuf,
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    annotations: std::collections::HashMap<String, String>,
}

fn is_zero(pid: &i32) -> bool {
    *pid == 0
}

/// The state a hook reads on stdin (also the `state` a seccomp listener gets).
pub fn state_json(state: &StateOutput) -> Vec<u8> {
    serde_json::to_vec(&SpecState {
        oci_version: state.oci_version.clone(),
        id: state.id.clone(),
        status: state.status,
        pid: state.pid,
        bundle: state.bundle.clone(),
        annotations: state.annotations.clone(),
    })
    .expect("state serialises")
}

/// `json` (a state made by `state_json`) as a hook run by init sees it: with `status`, and
/// init's pid as init itself sees it (1 in a new pid namespace), as runc gives it — the host's
/// pid would name nothing, or another process, in the namespace such a hook runs in.
pub fn as_seen_by_init(json: &[u8], status: Status) -> Vec<u8> {
    match serde_json::from_slice::<SpecState>(json) {
        Ok(mut s) => {
            s.status = status;
            s.pid = std::process::id() as i32;
            serde_json::to_vec(&s).expect("state serialises")
        }
        Err(_) => json.to_vec(),
    }
}

/// Where a hook runs and what it inherits when it has no `env` of its own.
#[derive(Clone, Copy, Default)]
pub struct HookContext<'a> {
    /// Working directory; `None` keeps the caller's (runc: the bundle for the runtime's
    /// hooks, the rootfs for createContainer, the process's cwd for startContainer).
    pub cwd: Option<&'a Path>,
    /// Environment of a hook without `env`; `None` inherits the runtime's own.
    pub env: Option<&'a [String]>,
    /// A signalfd (see `interrupt.rs`): when it becomes readable the hook is killed and
    /// the run fails (the runtime's caller gave up).
    pub interrupt: Option<RawFd>,
}

impl<'a> HookContext<'a> {
    /// The runtime's hooks of a container whose bundle is `bundle`: they run there (runc
    /// changes into the bundle before it runs any). A bundle that is gone (engines remove it
    /// before `delete`) leaves the caller's directory.
    pub fn in_bundle(bundle: &'a Path) -> Self {
        HookContext {
            cwd: Some(bundle).filter(|b| b.is_dir()),
            env: None,
            interrupt: None,
        }
    }
}

/// In the main process during create: the prestart then createRuntime hooks.
pub fn run_create_runtime(
    spec: &Spec,
    state: &[u8],
    bundle: &Path,
    interrupt: Option<RawFd>,
) -> Result<(), HookError> {
    let Some(h) = spec_hooks(spec) else {
        return Ok(());
    };
    let ctx = HookContext {
        interrupt,
        ..HookContext::in_bundle(bundle)
    };
    run_all("prestart", list(h.prestart()), state, ctx)?;
    run_all("createRuntime", list(h.create_runtime()), state, ctx)
}

/// Keep the poststart and poststop hooks for `start` and `delete` (nothing when there are none).
pub fn save(dir: &StateDir, spec: &Spec) -> Result<()> {
    let Some(h) = spec_hooks(spec) else {
        return Ok(());
    };
    if list(h.poststart()).is_empty() && list(h.poststop()).is_empty() {
        return Ok(());
    }
    let mut keep = Hooks::default();
    keep.set_poststart(h.poststart().clone());
    keep.set_poststop(h.poststop().clone());
    let path = dir.path.join(HOOKS_FILE);
    let text = serde_json::to_vec(&keep).expect("hooks serialise");
    write_atomic(&path, &text)
}

/// The hooks `save` kept; none when there is no file (or it cannot be read: `delete` must
/// still work on a damaged state dir).
pub fn load(dir: &StateDir) -> Hooks {
    std::fs::read(dir.path.join(HOOKS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Run `hooks` of `kind` in order; the first failure is the error.
pub fn run_all(
    kind: &str,
    hooks: &[Hook],
    state: &[u8],
    ctx: HookContext,
) -> Result<(), HookError> {
    hooks.iter().try_for_each(|h| run_one(kind, h, state, ctx))
}

/// Run every hook, turning failures into warnings (poststart, poststop).
pub fn run_all_warn(
    kind: &str,
    hooks: &[Hook],
    state: &[u8],
    ctx: HookContext,
    warn: &mut dyn FnMut(String),
) {
    for h in hooks {
        if let Err(e) = run_one(kind, h, state, ctx) {
            warn(e.to_string());
        }
    }
}

fn strerror(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let s = io::Error::from_raw_os_error(n).to_string();
            s.split(" (os error").next().unwrap_or(&s).to_string()
        }
        None => e.to_string(),
    }
}

/// Run one hook to completion.
pub fn run_one(kind: &str, hook: &Hook, state: &[u8], ctx: HookContext) -> Result<(), HookError> {
    let path = hook.path();
    let fail = |failure| HookError {
        kind: kind.to_string(),
        path: path.clone(),
        failure,
    };
    let timeout = match hook.timeout() {
        Some(t) if t <= 0 => return Err(fail(HookFailure::BadTimeout)),
        t => t.map(|t| Duration::from_secs(t as u64)),
    };
    let args = hook.args().as_deref().unwrap_or_default();
    let mut cmd = Command::new(path);
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    if let Some(env) = hook.env().as_deref().or(ctx.env) {
        cmd.env_clear();
        for kv in env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            cmd.env(k, v);
        }
    }
    if let Some(dir) = ctx.cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(HookFailure::Spawn(strerror(&e))))?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let io_result = pump(&mut child, state, deadline, ctx.interrupt);
    let (stdout, stderr) = match io_result {
        Ok(Pumped::Done(output)) => output,
        Ok(Pumped::Interrupted) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(HookFailure::Interrupted));
        }
        Ok(Pumped::TimedOut) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(HookFailure::TimedOut(
                timeout.unwrap_or_default().as_secs(),
            )));
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(HookFailure::Io(strerror(&e))));
        }
    };
    let status = child
        .wait()
        .map_err(|e| fail(HookFailure::Wait(strerror(&e))))?;
    if status.success() {
        return Ok(());
    }
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".to_string(),
    };
    // Both streams, as runc reports them, on one line.
    Err(fail(HookFailure::Failed {
        how,
        stdout: one_line(&stdout),
        stderr: one_line(&stderr),
    }))
}

/// A hook that failed: which one, and how.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(kind, path, failure))]
pub struct HookError {
    pub kind: String,
    pub path: PathBuf,
    pub failure: HookFailure,
}

/// How a hook failed.
#[derive(Debug)]
pub enum HookFailure {
    BadTimeout,
    Spawn(String),
    Interrupted,
    TimedOut(u64),
    /// Feeding it the state or reading its output.
    Io(String),
    Wait(String),
    /// It ran and exited non-zero or was killed; `how` says which.
    Failed {
        how: String,
        stdout: String,
        stderr: String,
    },
}

/// runc's wording: "running KIND hook PATH: …", except for a timeout.
fn describe(kind: &str, path: &Path, failure: &HookFailure) -> String {
    let what = format!("running {kind} hook {}", path.display());
    match failure {
        HookFailure::BadTimeout => format!("{what}: timeout must be greater than zero"),
        HookFailure::Spawn(e) | HookFailure::Io(e) => format!("{what}: {e}"),
        HookFailure::Interrupted => format!("{what}: interrupted by a signal"),
        HookFailure::TimedOut(secs) => {
            format!("{kind} hook {} timed out after {secs}s", path.display())
        }
        HookFailure::Wait(e) => format!("{what}: waiting: {e}"),
        HookFailure::Failed {
            how,
            stdout,
            stderr,
        } => format!("{what}: {how}, stdout: {stdout}, stderr: {stderr}"),
    }
}

/// A hook's output for a one-line message: trailing blanks dropped, newlines as `\n`.
fn one_line(output: &[u8]) -> String {
    String::from_utf8_lossy(output)
        .trim_end()
        .replace('\r', "")
        .replace('\n', "\\n")
}

fn set_nonblocking(fd: RawFd) {
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// What a hook wrote: (stdout, stderr), each cut at `OUTPUT_KEEP`.
type Output = (Vec<u8>, Vec<u8>);

/// How a hook's run ended.
enum Pumped {
    Done(Output),
    TimedOut,
    /// The runtime's caller gave up (the interrupt fd became readable).
    Interrupted,
}

/// Feed `state` to the child's stdin and collect its stdout and stderr until it exits, the
/// deadline passes or `interrupt` (a signalfd, see `interrupt.rs`) becomes readable.
fn pump(
    child: &mut Child,
    state: &[u8],
    deadline: Option<Instant>,
    interrupt: Option<RawFd>,
) -> io::Result<Pumped> {
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    for fd in [
        stdin.as_ref().map(|f| f.as_raw_fd()),
        stdout.as_ref().map(|f| f.as_raw_fd()),
        stderr.as_ref().map(|f| f.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd);
    }
    if state.is_empty() {
        stdin = None;
    }
    // The pidfd tells us the hook exited even when something it started keeps the pipes open.
    let pidfd = sys::pidfd_open(child.id() as i32).ok();
    let mut written = 0;
    let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
    loop {
        let mut fds = Vec::with_capacity(5);
        let mut push = |fd: RawFd, events: libc::c_short| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            })
        };
        push(stdin.as_ref().map_or(-1, |f| f.as_raw_fd()), libc::POLLOUT);
        push(stdout.as_ref().map_or(-1, |f| f.as_raw_fd()), libc::POLLIN);
        push(stderr.as_ref().map_or(-1, |f| f.as_raw_fd()), libc::POLLIN);
        push(pidfd.as_ref().map_or(-1, |f| f.as_raw_fd()), libc::POLLIN);
        push(interrupt.unwrap_or(-1), libc::POLLIN);
        let now = Instant::now();
        let mut wait_ms: i32 = match deadline {
            Some(d) if d <= now => return Ok(Pumped::TimedOut),
            Some(d) => (d - now).as_millis().min(i32::MAX as u128) as i32 + 1,
            None => -1,
        };
        if pidfd.is_none() {
            // No pidfd: look at the child every 10 ms.
            wait_ms = if wait_ms < 0 { 10 } else { wait_ms.min(10) };
        }
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[0].revents != 0 {
            if let Some(w) = stdin.as_mut() {
                match w.write(&state[written..]) {
                    Ok(k) => written += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The hook closed its stdin (EPIPE): it does not want the state.
                    Err(_) => written = state.len(),
                }
                if written >= state.len() {
                    stdin = None;
                }
            }
        }
        if fds[1].revents != 0 {
            read_some(&mut stdout, &mut out_buf);
        }
        if fds[2].revents != 0 {
            read_some(&mut stderr, &mut err_buf);
        }
        let exited = match &pidfd {
            Some(_) => fds[3].revents != 0,
            None => child.try_wait()?.is_some(),
        };
        if exited {
            // What it wrote before exiting is still in the pipes.
            while stdout.is_some() && read_some(&mut stdout, &mut out_buf) {}
            while stderr.is_some() && read_some(&mut stderr, &mut err_buf) {}
            return Ok(Pumped::Done((out_buf, err_buf)));
        }
        if fds[4].revents != 0 {
            return Ok(Pumped::Interrupted);
        }
    }
}

/// One non-blocking read from `pipe` into `keep` (up to `OUTPUT_KEEP`); the pipe is dropped
/// at EOF or on an error. True when something was read.
fn read_some<R: Read>(pipe: &mut Option<R>, keep: &mut Vec<u8>) -> bool {
    let Some(r) = pipe.as_mut() else {
        return false;
    };
    let mut buf = [0u8; 4096];
    match r.read(&mut buf) {
        Ok(0) => *pipe = None,
        Ok(k) => {
            let room = OUTPUT_KEEP.saturating_sub(keep.len());
            keep.extend_from_slice(&buf[..k.min(room)]);
            return true;
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(_) => *pipe = None,
    }
    false
}

/// The state of a container being created, for prestart/createRuntime/createContainer hooks.
pub fn creating_state(spec: &Spec, id: &str, pid: i32, bundle: &Path, rootfs: &Path) -> Vec<u8> {
    state_json(&StateOutput {
        oci_version: spec.version().clone(),
        id: id.to_string(),
        pid,
        status: Status::Creating,
        bundle: bundle.to_path_buf(),
        rootfs: rootfs.to_path_buf(),
        created: husk_oci::rfc3339_now(),
        owner: String::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
    })
}

/// Warn on stderr: what the library does with hook failures when the caller gives no sink.
pub fn warn_stderr(msg: String) {
    let _ = writeln!(io::stderr(), "warning: {msg}");
}
