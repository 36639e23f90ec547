//! The last steps before the user's execve, shared by a container's init and by tenant
//! processes (`exec`): cwd, identity and capabilities, and the `$PATH` lookup of args[0].

use super::SetupError;
use crate::{capabilities, identity, sys};
use oci_spec::runtime::{LinuxCapabilities, Process};
use std::ffi::CString;
use std::io;
use std::path::Path;

/// What execve gets, all resolved and checked before the process is released.
pub struct Prepared {
    pub path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// The environment as text, for the startContainer hooks that inherit it.
    pub env: Vec<String>,
}

impl Prepared {
    /// execve; returns only on failure.
    pub fn execve(&self) -> io::Error {
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        io::Error::last_os_error()
    }
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// chdir to the process's cwd (we are already in the container's root) and check that the
/// result is inside it.
pub fn enter_cwd(cwd: &Path) -> Result<(), SetupError> {
    let ccwd = sys::cstr(cwd).map_err(|e| SetupError::new("cwd", e))?;
    sys::check(unsafe { libc::chdir(ccwd.as_ptr()) })
        .map_err(|e| SetupError::new(format!("changing to cwd {}", cwd.display()), e))?;
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(SetupError::msg(format!(
            "cwd {} is outside the container",
            cwd.display()
        ))),
    }
}

/// The process's environment with HOME added as runc adds it: when the spec's env has no
/// HOME (or an empty one), the home of the process's uid in the container's /etc/passwd,
/// `/` when it lists no such uid. Call inside the container's root, before the uid changes.
pub fn env_with_home(process: &Process) -> Vec<String> {
    let mut env = process.env().clone().unwrap_or_default();
    let slot = env.iter().position(|e| e.starts_with("HOME="));
    if slot.is_some_and(|i| env[i] != "HOME=") {
        return env;
    }
    let home = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| home_of(&text, process.user().uid()))
        .unwrap_or_else(|| "/".to_string());
    let entry = format!("HOME={home}");
    match slot {
        Some(i) => env[i] = entry,
        None => env.push(entry),
    }
    env
}

/// The home directory of `uid` in passwd(5) text: the first line for that uid.
fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 7 && f[2].trim().parse() == Ok(uid)).then(|| f[5].to_string())
    })
}

/// Give stdio (fds 0-2) to `uid`, as runc does, so that the process can reopen them
/// (/dev/stdout, /proc/self/fd/1, /dev/tty); the group stays (devpts's tty group for a pty).
///
/// Which fds: the pty we made (`terminal`), and pipes, FIFOs and sockets — what engines hand
/// a container (conmon's pipes, containerd's FIFOs). Unlike runc, never the caller's own
/// terminal or a regular file: runc gives those away only when detached (in the foreground it
/// interposes pipes of its own), and husk passes the caller's stdio straight through, so
/// chowning them would hand a host user the caller's terminal or file. /dev/null is left
/// alone, and an fd whose owner the container's user namespace cannot map (EPERM, EINVAL)
/// stays as it is.
pub fn own_stdio(uid: u32, terminal: bool) -> Result<(), SetupError> {
    for fd in 0..3 {
        let Ok(st) = sys::fstat(fd) else {
            continue; // closed: nothing to own
        };
        let ours = match st.st_mode & libc::S_IFMT {
            libc::S_IFIFO | libc::S_IFSOCK => true,
            libc::S_IFCHR => terminal && unsafe { libc::isatty(fd) } == 1,
            _ => false,
        };
        if !ours || st.st_uid == uid {
            continue;
        }
        if unsafe { libc::fchown(fd, uid, u32::MAX) } < 0 {
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) {
                return Err(SetupError::new(format!("giving fd {fd} to uid {uid}"), e));
            }
        }
    }
    Ok(())
}

/// Scheduler, I/O priority, initial affinity → bounding set → user and groups → the other
/// capability sets, then no_new_privs, umask and the final CPU affinity.
/// `set_groups` is false where setgroups is denied (a user namespace joined by path).
pub fn apply_identity(process: &Process, set_groups: bool) -> Result<(), SetupError> {
    let empty = LinuxCapabilities::default();
    let caps = process.capabilities().as_ref().unwrap_or(&empty);
    super::extras::apply_before_identity(process)?;
    own_stdio(process.user().uid(), process.terminal().unwrap_or(false))?;
    capabilities::drop_bounding(caps)?;
    identity::switch_user(process.user(), set_groups)?;
    capabilities::apply_sets(caps)?;
    if process.no_new_privileges().unwrap_or(false) {
        sys::check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
            .map_err(|e| SetupError::new("setting no_new_privs", e))?;
    }
    unsafe { libc::umask(process.user().umask().unwrap_or(0o022) as libc::mode_t) };
    super::extras::apply_final(process)
}

pub fn prepare_exec(args: &[String], env: &[String]) -> Result<Prepared, SetupError> {
    let arg0 = args
        .first()
        .ok_or_else(|| SetupError::msg("process.args must not be empty"))?;
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let path = find_executable(arg0, path_var)?;
    let cs = |v: &[String], what: &str| -> Result<Vec<CString>, SetupError> {
        v.iter()
            .map(|s| {
                CString::new(s.as_bytes())
                    .map_err(|_| SetupError::msg(format!("{what} {s:?} contains a NUL byte")))
            })
            .collect()
    };
    Ok(Prepared {
        path: CString::new(path)
            .map_err(|_| SetupError::msg("executable path contains a NUL byte"))?,
        argv: cs(args, "argument")?,
        envp: cs(env, "environment variable")?,
        env: env.to_vec(),
    })
}

/// `$PATH` lookup inside the container (we are already in its root, as its user).
fn find_executable(arg0: &str, path_var: &str) -> Result<String, SetupError> {
    let check = |p: &str| -> io::Result<()> {
        let meta = std::fs::metadata(p)?;
        if !meta.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        let c = sys::cstr(p)?;
        sys::check(unsafe { libc::access(c.as_ptr(), libc::X_OK) }).map(drop)
    };
    if arg0.contains('/') {
        return check(arg0)
            .map(|_| arg0.to_string())
            .map_err(|e| SetupError::exec(arg0, e));
    }
    let mut denied = None;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{dir}/{arg0}");
        match check(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => denied = Some(e),
            Err(_) => {}
        }
    }
    Err(match denied {
        Some(e) => SetupError::exec(arg0, e),
        None => SetupError::exec_not_in_path(arg0),
    })
}
