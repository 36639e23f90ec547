//! `husk run -d`: a small monitor process per container (no daemon), what conmon is to podman.
//!
//! The monitor is husk-monitor (monitor/main.rs): a small executable of its own, which
//! build.rs links statically and the engine embeds and writes into the store, as it does
//! husk-init.
//! It is small because it only does what has to last as long as the container: it holds the
//! container's stdout/stderr (or pty master), writes them to DIR/ctr.log as JSON lines
//! (`{"log","stream","time"}`, Docker's json-file format) and, as a child subreaper, waits
//! for the container's init. Everything else runs in husk — or whichever program uses the
//! engine and calls [`crate::init`] — executed again by the monitor as a short-lived helper
//! (`PROGRAM __monitor start|exited …`, [`run_helper_if_asked`] here): creating and
//! starting the container, and after each exit deleting its runtime state, applying the
//! restart policy and recording the exit code in container.json (or, with --rm, removing
//! the container's directory).
//!
//! Measured as benches/run.sh does (VmRSS of the monitor of `husk run -d IMAGE sleep …`):
//! a fork of `husk run`, as the monitor was, kept 4.8 MB resident; husk executed afresh
//! with forked helpers for the library's work still 4.2 MB (pages of the husk binary and of
//! the shared C library); husk-monitor, statically linked, 1.3 MB — conmon's is 2.0 MB.
//!
//! `husk run -d` executes husk-monitor in a session of its own with two fds: 3, a pipe on
//! which the monitor says "ok" once the container runs or why it does not, and 4, husk's
//! own (read-only, see husk_container::selfexe) executable, for the helpers.

use crate::attach::AttachError;
use crate::config::Restart;
use crate::embedded::{self, EmbeddedError};
use crate::made::Made;
use crate::network::Network;
use crate::os::{IoContext, IoError, SysError};
use crate::record::{state_root, Record, Runner, Timestamp};
use husk_container::{Container, ContainerBuilder};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `argv[1]` of the program (husk, or another one using the engine) run as the monitor's
/// helper: the monitor executes the program that started it again with it.
pub const ARG: &str = "__monitor";

/// Handing a container to its monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("starting {}: {source}", path.display())]
    Spawn {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the monitor process died")]
    Died,
    /// Why the container did not start, as the monitor's helper reported it, with the
    /// exit status that failure has ([`Error::exit_code`]).
    #[error("{msg}")]
    Start { status: i32, msg: String },
}

/// Why the helper could not start the container: sent to the monitor as text
/// ("-STATUS ERROR", STATUS from [`crate::exit_status`]).
type HelperError = Box<dyn std::error::Error>;

/// A duplicate of `fd` numbered 10 or more (close-on-exec): out of the way of fds 0-4.
fn dup_high(fd: &impl AsRawFd) -> Result<OwnedFd, SysError> {
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if r < 0 {
        return Err(SysError::last("fcntl"));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Start the container under a monitor; returns once it runs. Until then `made` stays
/// ours: if the container does not start, dropping it cleans up.
pub(crate) fn detach(root: &Path, id: &str, made: Made, rm: bool) -> Result<(), MonitorError> {
    detach_attached(root, id, made, rm, false).map(drop)
}

/// [`detach`]; with `attach`, connected to the monitor's attach socket before it starts
/// the container (it waits for that: DIR/attach-wait): the connection.
pub(crate) fn detach_attached(
    root: &Path,
    id: &str,
    made: Made,
    rm: bool,
    attach: bool,
) -> Result<Option<std::os::unix::net::UnixStream>, MonitorError> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let abs = |p: &Path| std::path::absolute(p).ctx("resolving", p);
    let monitor = abs(&embedded::monitor_binary(root)?)?;
    let dir = abs(&made.dir)?;
    let husk = dup_high(&File::open("/proc/self/exe").ctx("opening", "/proc/self/exe")?)?;
    let (ready_r, w) = crate::os::pipe()?;
    let ready_w = dup_high(&w)?;
    drop(w);
    let (w, h) = (ready_w.as_raw_fd(), husk.as_raw_fd());
    let mut cmd = Command::new(&monitor);
    cmd.arg0("husk-monitor")
        .arg(&dir)
        .arg(id)
        .arg(if rm { "rm" } else { "keep" })
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    unsafe {
        cmd.pre_exec(move || {
            // The two fds passed on (dup2 clears close-on-exec on the copies).
            if libc::dup2(w, 3) < 0 || libc::dup2(h, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::setsid();
            Ok(())
        });
    }
    // Not waited for: it outlives us (we exit and it is reparented).
    cmd.spawn().map_err(|source| MonitorError::Spawn {
        path: monitor.clone(),
        source,
    })?;
    drop((ready_w, husk));
    let sock = attach
        .then(|| crate::attach_socket::connect_early(&dir, &ready_r))
        .flatten();
    let mut msg = String::new();
    let _ = File::from(ready_r).read_to_string(&mut msg);
    if attach {
        // Normally taken by the monitor; not left for the next start after a failure.
        let _ = std::fs::remove_file(dir.join("attach-wait"));
    }
    match msg.strip_prefix("ok") {
        Some(_) => {
            made.disarm(); // the monitor owns the overlay and the directory now
            Ok(sock)
        }
        None if msg.is_empty() => Err(MonitorError::Died),
        None => {
            let (status, msg) = status_and_message(msg.trim_end());
            Err(MonitorError::Start {
                status,
                msg: msg.to_string(),
            })
        }
    }
}

/// When this process was started as a monitor's helper (`argv[1]` is [`ARG`]): do that job
/// and exit. Otherwise return at once.
pub fn run_helper_if_asked() {
    if std::env::args_os().nth(1).is_some_and(|a| a == ARG) {
        // As every process that starts containers: from a read-only copy of the program.
        // The view is kept (crate::release_exe_view): closed at exit, after the answer.
        if let Err(e) = crate::protect_executable() {
            let _ = writeln!(std::io::stderr(), "{e}");
            std::process::exit(1);
        }
        helper(&std::env::args_os().skip(2).collect::<Vec<_>>())
    }
}

/// The program as the monitor's helper: `args` are those after [`ARG`] (see
/// monitor/main.rs for the fds). Never returns.
fn helper(args: &[OsString]) -> ! {
    // fd 3: where the answer goes; not to be inherited by the container.
    if unsafe { libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        std::process::exit(2);
    }
    let answer = unsafe { OwnedFd::from_raw_fd(3) };
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match &args[..] {
        ["start", dir, id] => {
            let (text, master) = match start(Path::new(dir), id) {
                Ok((pid, master)) => (format!("+{pid}"), master),
                // With its exit status, which the text alone no longer carries.
                Err(e) => {
                    let status = e
                        .downcast_ref::<husk_container::Error>()
                        .map_or(crate::exit_status::ENGINE, crate::exit_status::of_runtime);
                    (format!("-{status} {e}"), None)
                }
            };
            let _ = send(&answer, text.as_bytes(), master.as_ref());
        }
        ["health", dir, _id] => {
            // The check's result goes to DIR/health.json; the monitor only keeps time.
            if let Ok(r) = Record::load(Path::new(dir)) {
                let _ = crate::health::check(&r);
            }
        }
        ["exited", dir, id, code, restarts, rm, error @ ..] => {
            let again = exited(
                Path::new(dir),
                id,
                code.parse().unwrap_or(-1),
                restarts.parse().unwrap_or(0),
                *rm == "rm",
                error.first().map(|e| status_and_message(e).1.to_string()),
            );
            let _ = File::from(answer).write_all(if again { b"again" } else { b"done" });
        }
        _ => std::process::exit(2),
    }
    std::process::exit(0)
}

/// Create and start the container (init inherits our fds 0-2); its pid, and with -t the
/// pty master the library sent to our console socket.
fn start(dir: &Path, id: &str) -> Result<(i32, Option<OwnedFd>), HelperError> {
    let console = husk_container::terminal::wants_terminal(&dir.join("config.json"), true)
        .then(husk_container::terminal::ConsoleListener::new)
        .transpose()
        .map_err(AttachError::Terminal)?;
    let mut b = ContainerBuilder::new(id.to_string()).root_path(state_root());
    if let Some(l) = &console {
        b = b.console_socket(l.path());
    }
    // Rootless on a v1 host means no cgroup (limits asked for are an error): not worth a
    // warning on every start.
    let record = Record::load(dir);
    // The driver the container was made with (`husk --cgroup-manager`), which its
    // config.json's cgroupsPath is written for.
    b = b.systemd_cgroup(record.as_ref().is_ok_and(|r| r.meta.systemd_cgroup));
    let network = record
        .as_ref()
        .map(|r| r.meta.network.clone())
        .map_err(|e| HelperError::from(e.to_string()));
    // pasta's namespace exists before the container, which joins it by path.
    if let Ok(Network::Pasta(opts)) = &network {
        crate::network::pasta::connect(dir, &crate::network::pasta::forwards_of(dir), opts)?;
    }
    // `container restore` asked for this start: CRIU's restore instead of a create.
    let restoring = crate::checkpoint::restore_asked(dir);
    let systemd = record.as_ref().is_ok_and(|r| r.meta.systemd_cgroup);
    let built = match &restoring {
        Some(ask) => crate::checkpoint::restore_in(dir, id, ask, systemd),
        None => b.as_init(dir).build_with_warnings(&mut |_| {}),
    };
    let mut c = match built {
        Ok(c) => c,
        Err(e) => {
            crate::network::stop_slirp(dir);
            return Err(e.into());
        }
    };
    let master = console
        .as_ref()
        .map(|l| l.receive_master())
        .transpose()
        .map_err(|e| HelperError::from(AttachError::Terminal(e)));
    let started = master
        .and_then(|m| match network? {
            Network::Slirp { host_loopback } => {
                crate::network::start_slirp(dir, c.pid(), host_loopback)?;
                Ok(m)
            }
            _ => Ok(m),
        })
        .and_then(|m| match restoring {
            // Restored running.
            Some(_) => Ok(m),
            None => c.start().map(|()| m).map_err(HelperError::from),
        });
    let master = match started {
        Ok(m) => m,
        Err(e) => {
            let _ = c.kill(libc::SIGKILL, true);
            let _ = c.wait();
            let _ = c.delete(true);
            return Err(e);
        }
    };
    if let Ok(mut r) = Record::load(dir) {
        r.meta.pid = Some(c.pid());
        let monitor = unsafe { libc::getppid() };
        r.meta.monitor_pid = Some(monitor);
        r.meta.runner = Some(Runner::of(monitor));
        r.meta.started = Some(Timestamp::now());
        r.meta.oom_killed = false;
        crate::checkpoint::mark_started(&mut r, restoring.is_some());
        let _ = r.save();
        crate::health::reset(dir, &r);
        crate::events::container(crate::events::root_of(dir), &r, "start", &[]);
    }
    Ok((c.pid(), master))
}

/// The start helper's "STATUS MESSAGE" (what it answers after "-"), as the monitor passes
/// it on; a text without a status is the monitor's own failure (125).
fn status_and_message(text: &str) -> (i32, &str) {
    text.split_once(' ')
        .and_then(|(s, m)| Some((s.parse().ok()?, m)))
        .unwrap_or((crate::exit_status::ENGINE, text))
}

/// One message on a SOCK_SEQPACKET socket, with `fd` attached (SCM_RIGHTS).
fn send(sock: &OwnedFd, data: &[u8], fd: Option<&OwnedFd>) -> std::io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // Room for one cmsghdr carrying one fd, aligned as a cmsghdr must be.
    let mut control = [0u64; 4];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
        assert!(space <= std::mem::size_of_val(&control));
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd.as_raw_fd());
        }
    }
    if unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// After the container exited with `code` (-1 with `error`: it did not start again):
/// delete its runtime state, then either decide to start it again (true) or clean up and
/// record the end.
fn exited(dir: &Path, id: &str, code: i32, restarts: u32, rm: bool, error: Option<String>) -> bool {
    // A checkpoint, not an end: no exit code, restart or --rm (checkpoint/mod.rs).
    if crate::checkpoint::monitor_saw_checkpoint(dir) {
        return false;
    }
    // Read before release deletes the cgroup that counts it.
    let oom = Container::load(&state_root(), id).is_ok_and(|c| oom_killed(&c));
    let deleted = release(dir, id);
    if error.is_none() {
        died(dir, code, oom);
    }
    // `husk stop` marks the container so that its policy does not bring it back.
    let stopping = || Record::load(dir).map_or(true, |r| r.meta.stopping);
    let restart = Record::load(dir).map_or(Restart::No, |r| r.meta.restart);
    if error.is_none() && !stopping() && restart.again(code, restarts) {
        if let Ok(mut r) = Record::load(dir) {
            r.meta.restart_count = restarts + 1;
            let _ = r.save();
        }
        // 200 ms, doubling up to 3.2 s, so that a crash loop does not spin.
        std::thread::sleep(std::time::Duration::from_millis(
            100 << (restarts + 1).min(5),
        ));
        if !stopping() {
            return true;
        }
    }
    // The record keeps the reason as text (inspect's State.Error).
    record_end(
        dir,
        code,
        rm,
        error.or(deleted.err().map(|e| e.to_string())),
    );
    false
}

/// Whether the kernel's OOM killer killed a process of the container (its memory
/// cgroup's oom_kill counter, read before the cgroup goes): docker's State.OOMKilled. Any
/// process counts, not only init, as in docker (which learns it from the OOM event).
pub(crate) fn oom_killed(c: &Container) -> bool {
    c.cgroup_path()
        .and_then(|p| husk_cgroups::manager(p).ok())
        .and_then(|m| m.stats().ok())
        .is_some_and(|s| s.memory.oom_kill > 0)
}

/// The end of a run as events and State: "oom" (when `oom`, which the record keeps for
/// inspect's OOMKilled), then "die" with `code`, for the container in `dir`.
fn died(dir: &Path, code: i32, oom: bool) {
    if let Ok(mut r) = Record::load(dir) {
        if oom {
            r.meta.oom_killed = true;
            let _ = r.save();
            crate::events::container(crate::events::root_of(dir), &r, "oom", &[]);
        }
        let code = code.to_string();
        crate::events::container(
            crate::events::root_of(dir),
            &r,
            "die",
            &[("exitCode", &code)],
        );
    }
}

/// After the container's init exited: stop its slirp4netns and delete its runtime state
/// (cgroups, state dir, whatever still runs in it).
pub(crate) fn release(dir: &Path, id: &str) -> Result<(), husk_container::Error> {
    crate::network::stop_slirp(dir);
    // A start that failed has deleted what it made: no state is nothing to delete.
    match Container::load(&state_root(), id) {
        Ok(c) => c.delete(true),
        Err(_) => Ok(()),
    }
}

/// The end of a container, once [`release`]d: its rootfs unmounted, its networks torn
/// down, and its exit recorded
/// (or, with `rm`, its directory removed).
pub(crate) fn record_end(dir: &Path, code: i32, rm: bool, error: Option<String>) {
    let _ = crate::rootfs::unmount_leftover(dir);
    // Kept across restarts of the policy (the namespace stays the container's); its end
    // releases it.
    let torn = crate::network::setup::teardown(dir)
        .err()
        .map(|e| e.to_string());
    let error = error.or(torn);
    if rm {
        let r = Record::load(dir);
        crate::writable::release(dir);
        let _ = std::fs::remove_dir_all(dir);
        if let Ok(r) = r {
            let root = crate::events::root_of(dir);
            // After the directory, as rm: its --userns=auto range is free again.
            let _ = crate::userns::release(root, r.id());
            crate::events::container(root, &r, "destroy", &[]);
            // --rm takes the container's anonymous volumes with it, as docker's.
            crate::volumes::remove_unused(
                root,
                &crate::volumes::anonymous_of(&r.meta.mounts),
                true,
            );
        }
        return;
    }
    let _ = std::fs::remove_dir(dir.join("rootfs"));
    if let Ok(mut r) = Record::load(dir) {
        r.meta.exit_code = Some(code.into());
        r.meta.finished = Some(Timestamp::now());
        if let Some(e) = error {
            r.meta.error = Some(e);
        }
        let _ = r.save();
    }
}

/// When the container's runner (record::Runner: its monitor, or the foreground `husk
/// run`) died before it — killed, crashed — and the container has exited since, do what the
/// runner would have done: [`release`], [`record_end`] with init's status if nobody reaped
/// it, else 128 + `signalled` (the signal that stopped it, when the caller sent one), else
/// -1 with the reason. Whether it did that; false while the runner lives, the container
/// runs, or its end is already recorded.
pub(crate) fn settle_orphan(r: &Record, signalled: Option<i32>) -> bool {
    let Ok(r) = Record::load(&r.dir) else {
        return false;
    };
    if r.exit_code().is_some() || r.runner_alive() {
        return false;
    }
    let c = r.runtime();
    if c.as_ref()
        .is_some_and(|c| c.status() != husk_oci::Status::Stopped)
    {
        return false;
    }
    let code = c
        .as_ref()
        .and_then(Container::unreaped_exit_code)
        .or(signalled.map(|s| 128 + s));
    let oom = c.as_ref().is_some_and(oom_killed);
    let released = release(&r.dir, r.id());
    let unknown = "its monitor died before it: the exit status is unknown".to_string();
    let error = match code {
        Some(_) => released.err().map(|e| e.to_string()),
        None => Some(unknown),
    };
    died(&r.dir, code.unwrap_or(-1), oom);
    record_end(&r.dir, code.unwrap_or(-1), r.meta.remove, error);
    true
}

/// husk-monitor's own code, compiled here too so that its log records can be checked
/// against serde_json and husk_oci (and linted with the rest).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../monitor/main.rs"]
mod monitor_bin;

#[cfg(test)]
mod tests {
    use super::monitor_bin;
    use std::io::Write;

    #[test]
    fn log_records_are_what_serde_json_writes() {
        let lines: [&[u8]; 5] = [
            b"plain\n",
            b"quote \" backslash \\ tab\t cr\r bs\x08 ff\x0c nul\0 esc\x1b del\x7f\n",
            "\u{e9} \u{6f22} \u{1f600}\n".as_bytes(),
            b"not utf-8: \xff\xfe end",
            b"",
        ];
        for (secs, nanos) in [(0, 0), (951_782_400, 5), (1_795_440_661, 999_999_999)] {
            for line in lines {
                let got = monitor_bin::record_at(line, "stderr", secs, nanos);
                let mut want = serde_json::to_vec(&serde_json::json!({
                    "log": String::from_utf8_lossy(line),
                    "stream": "stderr",
                    "time": husk_oci::time::rfc3339(secs, nanos),
                }))
                .unwrap();
                want.push(b'\n');
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want)
                );
            }
        }
    }

    #[test]
    fn output_is_logged_per_line_and_long_lines_in_pieces() {
        let (r, w) = crate::os::pipe().unwrap();
        let log_path =
            std::env::temp_dir().join(format!("husk-monitor-log-{}", std::process::id()));
        let mut log = std::fs::File::create(&log_path).unwrap();
        let writer = std::thread::spawn(move || {
            let mut w = std::fs::File::from(w);
            w.write_all(b"one\ntwo").unwrap();
            w.write_all(&[b'x'; 40_000]).unwrap();
            w.write_all(b"\nlast without newline").unwrap();
        });
        monitor_bin::copy_to_log(
            vec![(std::fs::File::from(r), "stdout")],
            &mut log,
            &mut || -1,
            None,
        );
        writer.join().unwrap();
        let text = std::fs::read_to_string(&log_path).unwrap();
        let _ = std::fs::remove_file(&log_path);
        let logs: Vec<String> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["stream"], "stdout");
                v["log"].as_str().unwrap().to_string()
            })
            .collect();
        let lens: Vec<usize> = logs.iter().map(String::len).collect();
        assert_eq!(
            lens,
            [4, 16 << 10, 16 << 10, 3 + 40_000 + 1 - (32 << 10), 20]
        );
        assert_eq!(logs[0], "one\n");
        assert_eq!(
            logs.concat(),
            format!("one\ntwo{}\nlast without newline", "x".repeat(40_000))
        );
    }
}
