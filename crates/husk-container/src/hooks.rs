//! OCI hooks (runtime-spec config.md, "POSIX-platform Hooks"): run each hook's `path` with its
//! `args` (args[0] is argv[0]) and exactly its `env`, the container's state JSON on stdin,
//! honouring `timeout`. Hooks of one kind run in order; the first failure stops the rest.
//!
//! Where each kind runs: prestart and createRuntime in the main process while init waits
//! before pivot_root (`create.rs`); createContainer in init at that point, startContainer in
//! init right before the user's execve (`process/init.rs`); poststart and poststop in
//! `Container::start` and `Container::delete`, whose failures are only warnings. The last
//! two are kept in the state dir (`hooks.json`), as `start` and `delete` run without the bundle.

use crate::error::Result;
use crate::state::{write_atomic, StateDir};
use crate::sys;
use husk_oci::{StateOutput, Status};
use oci_spec::runtime::{Hook, Hooks, Spec};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The poststart/poststop hooks of a container, in its state dir.
pub const HOOKS_FILE: &str = "hooks.json";

/// At most this much of a hook's stderr is kept for the error message.
const STDERR_KEEP: usize = 64 * 1024;

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

/// The state a hook reads on stdin.
pub fn state_json(state: &StateOutput) -> Vec<u8> {
    serde_json::to_vec(state).expect("state serialises")
}

/// `json` (a state made by `state_json`) with another status.
pub fn with_status(json: &[u8], status: Status) -> Vec<u8> {
    match serde_json::from_slice::<StateOutput>(json) {
        Ok(mut s) => {
            s.status = status;
            state_json(&s)
        }
        Err(_) => json.to_vec(),
    }
}

/// In the main process during create: the prestart then createRuntime hooks.
pub fn run_create_runtime(spec: &Spec, state: &[u8]) -> Result<(), String> {
    let Some(h) = spec_hooks(spec) else {
        return Ok(());
    };
    run_all("prestart", list(h.prestart()), state)?;
    run_all("createRuntime", list(h.create_runtime()), state)
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
pub fn run_all(kind: &str, hooks: &[Hook], state: &[u8]) -> Result<(), String> {
    hooks.iter().try_for_each(|h| run_one(kind, h, state))
}

/// Run every hook, turning failures into warnings (poststart, poststop).
pub fn run_all_warn(kind: &str, hooks: &[Hook], state: &[u8], warn: &mut dyn FnMut(String)) {
    for h in hooks {
        if let Err(e) = run_one(kind, h, state) {
            warn(e);
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
pub fn run_one(kind: &str, hook: &Hook, state: &[u8]) -> Result<(), String> {
    let path = hook.path();
    let what = || format!("running {kind} hook {}", path.display());
    let timeout = match hook.timeout() {
        Some(t) if t <= 0 => {
            return Err(format!("{}: timeout must be greater than zero", what()));
        }
        t => t.map(|t| Duration::from_secs(t as u64)),
    };
    let args = hook.args().as_deref().unwrap_or_default();
    let mut cmd = Command::new(path);
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {}", what(), strerror(&e)))?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let io_result = pump(&mut child, state, deadline);
    let stderr = match io_result {
        Ok(Some(stderr)) => stderr,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{kind} hook {} timed out after {}s",
                path.display(),
                timeout.unwrap_or_default().as_secs()
            ));
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{}: {}", what(), strerror(&e)));
        }
    };
    let status = child
        .wait()
        .map_err(|e| format!("{}: waiting: {}", what(), strerror(&e)))?;
    if status.success() {
        return Ok(());
    }
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".to_string(),
    };
    let text = String::from_utf8_lossy(&stderr);
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => Err(format!("{}: {how}: {line}", what())),
        None => Err(format!("{}: {how}", what())),
    }
}

fn set_nonblocking(fd: RawFd) {
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// Feed `state` to the child's stdin and collect its stderr (stdout is read and dropped)
/// until it exits. `Ok(None)` when the deadline passed first.
fn pump(child: &mut Child, state: &[u8], deadline: Option<Instant>) -> io::Result<Option<Vec<u8>>> {
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
    let mut err_buf = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = Vec::with_capacity(4);
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
        let now = Instant::now();
        let mut wait_ms: i32 = match deadline {
            Some(d) if d <= now => return Ok(None),
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
            if let Some(r) = stdout.as_mut() {
                match r.read(&mut buf) {
                    Ok(0) => stdout = None,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => stdout = None,
                }
            }
        }
        if fds[2].revents != 0 {
            if let Some(r) = stderr.as_mut() {
                match r.read(&mut buf) {
                    Ok(0) => stderr = None,
                    Ok(k) => {
                        if err_buf.len() < STDERR_KEEP {
                            err_buf.extend_from_slice(&buf[..k]);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => stderr = None,
                }
            }
        }
        let exited = match &pidfd {
            Some(_) => fds[3].revents != 0,
            None => child.try_wait()?.is_some(),
        };
        if exited {
            // What it wrote before exiting is still in the pipe.
            if let Some(r) = stderr.as_mut() {
                while let Ok(k) = r.read(&mut buf) {
                    if k == 0 || err_buf.len() >= STDERR_KEEP {
                        break;
                    }
                    err_buf.extend_from_slice(&buf[..k]);
                }
            }
            return Ok(Some(err_buf));
        }
    }
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
