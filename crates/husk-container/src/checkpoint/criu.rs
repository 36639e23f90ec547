//! Running CRIU's command line: finding the binary, the flags every run shares, and turning a
//! failure into one line that points at CRIU's log.
//!
//! The CLI rather than CRIU's RPC (`criu swrk`): every option a runtime needs (external
//! mounts and namespaces, inherited fds, cgroup mode, pidfile, detached restore as a sibling)
//! is a command-line flag, and the RPC would need a protobuf encoder in a binary that is
//! otherwise free of one. What only the RPC offers — the `orphan-pts-master` callback that
//! hands a restored container's pty master back — is why terminal containers are refused
//! on restore (see restore.rs).

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The criu binary: `explicit` (runc's global `--criu`), else `criu` on PATH, else
/// /usr/sbin/criu (Debian's, which an ordinary PATH may lack).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        return Err(Error::Other(format!(
            "criu not found at {} (--criu): checkpoint/restore needs CRIU",
            p.display()
        )));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("criu"))
        .chain([PathBuf::from("/usr/sbin/criu")])
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Other(
                "criu not found in PATH or /usr/sbin: checkpoint/restore needs CRIU \
                 (apt-get install criu)"
                    .into(),
            )
        })
}

/// One criu invocation being built.
pub struct Invocation {
    pub criu: PathBuf,
    /// "dump", "pre-dump" or "restore".
    pub action: &'static str,
    pub args: Vec<OsString>,
    /// fds the child keeps, at the same number (`--inherit-fd fd[N]:…`).
    pub keep_fds: Vec<RawFd>,
    /// fds the child writes "0" to before exec: cgroup membership files, so that criu —
    /// and every task it restores — starts inside the container's cgroup.
    pub join_fds: Vec<RawFd>,
    pub log: PathBuf,
}

impl Invocation {
    /// `criu ACTION --images-dir IMAGES --work-dir WORK --log-file LOG -v4`, the log
    /// being `WORK/ACTION.log` (criu writes it relative to the work dir).
    pub fn new(criu: PathBuf, action: &'static str, images: &Path, work: &Path) -> Invocation {
        let log_name = format!("{action}.log");
        let mut inv = Invocation {
            criu,
            action,
            args: Vec::new(),
            keep_fds: Vec::new(),
            join_fds: Vec::new(),
            log: work.join(&log_name),
        };
        inv.arg(action)
            .arg("--images-dir")
            .arg(images)
            .arg("--work-dir")
            .arg(work)
            .arg("--log-file")
            .arg(log_name)
            .arg("-v4");
        inv
    }

    pub fn arg(&mut self, a: impl Into<OsString>) -> &mut Invocation {
        self.args.push(a.into());
        self
    }

    pub fn arg_path(&mut self, a: &Path) -> &mut Invocation {
        self.args.push(a.as_os_str().to_owned());
        self
    }

    pub fn flag(&mut self, on: bool, name: &str) -> &mut Invocation {
        if on {
            self.arg(name);
        }
        self
    }

    /// Run criu to its end. A non-zero exit is [`Error::Criu`] with the log's first error
    /// line, so the one line printed says why, and where the rest is.
    pub fn run(&self) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(&self.criu);
        cmd.args(&self.args);
        let keep = self.keep_fds.clone();
        let join = self.join_fds.clone();
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &join {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for &fd in &keep {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        // criu keeps our stdio: on restore, fds 0-2 are what `--inherit-fd` hands to the
        // restored init. Its messages go to the log.
        let status = cmd
            .status()
            .map_err(|e| Error::io("running", &self.criu, e))?;
        if status.success() {
            return Ok(());
        }
        let reason = cause(&self.log).unwrap_or_else(|| format!("{status}"));
        Err(Error::Criu {
            action: self.action,
            reason,
            log: self.log.clone(),
        })
    }
}

/// The cause in a criu log, without the timestamp: the first "Error (file:line): …" line
/// after the banner that starts the real work (before it, criu probes the kernel and tools
/// it can do without), skipping the echoes that only say a helper or a step failed.
fn cause(log: &Path) -> Option<String> {
    const ECHOES: [&str; 4] = [
        "FAILED",
        "exited, status=",
        "Can't wait or bad status",
        "finished with error",
    ];
    let text = std::fs::read_to_string(log).ok()?;
    let work = match text.find("=====") {
        Some(i) => &text[i..],
        None => &text[..],
    };
    let errors = || work.lines().filter(|l| l.contains("Error ("));
    errors()
        .find(|l| !ECHOES.iter().any(|e| l.contains(e)))
        .or_else(|| errors().next_back())
        .map(|l| match l.find("Error (") {
            Some(i) => l[i..].trim().to_string(),
            None => l.trim().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_line_is_found_without_the_timestamp() {
        let dir = std::env::temp_dir().join(format!("husk-criu-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("dump.log");
        std::fs::write(
            &log,
            "(00.001) Version: 3.17\n(00.002) Error (criu/sockets.c:1): probe\n\
             (00.003) ========\n(00.004) Dumping processes\n\
             (00.010) Error (criu/util.c:1): exited, status=1\n\
             (00.015) Error (criu/mount.c:3): mnt: the cause\n\
             (00.016) Error (criu/mount.c:4): mnt: a consequence\n\
             (00.020) Error (criu/cr-dump.c:2): Dumping FAILED.\n(00.030) Unlock network\n",
        )
        .unwrap();
        assert_eq!(
            cause(&log).as_deref(),
            Some("Error (criu/mount.c:3): mnt: the cause")
        );
        assert_eq!(cause(&dir.join("none")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_explicit_missing_criu_is_named() {
        let e = locate(Some(Path::new("/nonexistent/criu"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/criu"), "{e}");
    }
}
