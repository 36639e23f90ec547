//! husk-monitor: the process that stays with a detached container (`husk run -d`), what
//! conmon is to podman. husk-engine writes this executable into its store and starts one per
//! container; src/monitor.rs is the other half, and explains the whole.
//!
//!   husk-monitor DIR ID rm|keep      fd 3: the ready pipe, fd 4: husk's executable (read-only)
//!
//! It does only what has to last as long as the container, so that it stays small (no
//! crates, no shared C library when linked statically, a few libc functions declared here):
//! - it holds the container's stdout and stderr pipes (with -t, the pty master) and writes
//!   what comes out to DIR/ctr.log as JSON lines, Docker's json-file format, rotated as
//!   `--log-opt max-size=…,max-file=…` asked (DIR/log-opts: "MAX_SIZE MAX_FILE");
//! - it is a child subreaper: the container's init, made by a helper, becomes its child;
//! - everything else is husk's, run as short-lived helpers (fd 4, executed again for each):
//!   `husk __monitor start DIR ID` creates and starts the container; its fds 0-2 become
//!   init's, and it answers on fd 3 (a SOCK_SEQPACKET socket) "+PID", with the pty master
//!   attached for -t, or "-STATUS ERROR" (STATUS: docker's exit status for it, 125-127).
//!   `husk __monitor exited DIR ID CODE RESTARTS rm|keep [ERROR]` deletes the runtime state, applies the restart policy and records the exit;
//!   it answers "again" or "done" on fd 3 (a pipe).
//!   `husk __monitor health DIR ID` runs the container's health check once and records it:
//!   the monitor only keeps the time (DIR/health-interval: milliseconds), one check at a
//!   time, the first one interval after the start and each next one interval after the
//!   previous one ended (docker's rhythm).
//!
//! - it serves DIR/attach.sock while the container runs (attach.rs): its output to
//!   attached clients, their input to its stdin (-i).
//!
//! The first start's outcome goes to the `husk run -d` that started us, on the ready pipe:
//! "ok", or the error (the caller then cleans up, and we exit).

mod attach;

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::{c_int, c_long, c_uint, c_ulong, c_void};
use std::os::unix::process::CommandExt;
use std::process::Command;

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64"
)))]
compile_error!("husk-monitor: the constants below are those of x86, arm and riscv");

const READY_FD: c_int = 3;
const HUSK: &str = "/proc/self/fd/4";
/// A line longer than this is logged in pieces of this size (as Docker's json-file does), so
/// that a container which never writes "\n" cannot grow the monitor.
const MAX_RECORD: usize = 16 << 10;

const F_SETFD: c_int = 2;
const FD_CLOEXEC: c_int = 1;
const SIGHUP: c_int = 1;
const SIGINT: c_int = 2;
const SIGPIPE: c_int = 13;
const SIG_DFL: usize = 0;
const SIG_IGN: usize = 1;
const PR_SET_CHILD_SUBREAPER: c_int = 36;
const AF_UNIX: c_int = 1;
const SOCK_SEQPACKET: c_int = 5;
const SOCK_CLOEXEC: c_int = 0o2000000;
const O_CLOEXEC: c_int = 0o2000000;
const MSG_CMSG_CLOEXEC: c_int = 0x4000_0000;
const SOL_SOCKET: c_int = 1;
const SCM_RIGHTS: c_int = 1;
const POLLIN: i16 = 1;
/// close_range(2): one number on every architecture (added after they were unified).
const SYS_CLOSE_RANGE: c_long = 436;

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: i16,
    revents: i16,
}

#[repr(C)]
struct IoVec {
    base: *mut c_void,
    len: usize,
}

#[repr(C)]
struct MsgHdr {
    name: *mut c_void,
    namelen: u32,
    iov: *mut IoVec,
    iovlen: usize,
    control: *mut c_void,
    controllen: usize,
    flags: c_int,
}

/// struct cmsghdr; its data follows at the next multiple of size_t, which its size already is.
#[repr(C)]
struct CmsgHdr {
    len: usize,
    level: c_int,
    kind: c_int,
}

extern "C" {
    fn syscall(number: c_long, ...) -> c_long;
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
    fn dup2(from: c_int, to: c_int) -> c_int;
    fn signal(sig: c_int, handler: usize) -> usize;
    fn prctl(option: c_int, ...) -> c_int;
    fn pipe2(fds: *mut c_int, flags: c_int) -> c_int;
    fn socketpair(domain: c_int, kind: c_int, protocol: c_int, fds: *mut c_int) -> c_int;
    fn recvmsg(fd: c_int, msg: *mut MsgHdr, flags: c_int) -> isize;
    fn poll(fds: *mut PollFd, n: c_ulong, timeout: c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn interrupted() -> bool {
    std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    if unsafe { pipe2(fds.as_mut_ptr(), O_CLOEXEC) } != 0 {
        return Err(os_error("pipe"));
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let [dir, id, rm] = &args[..] else {
        eprintln!("usage: husk-monitor DIR ID rm|keep (started by husk run -d)");
        std::process::exit(2)
    };
    // The two fds passed to us: close-on-exec from now on, as every other fd of ours. Any
    // other our caller left open is not ours to keep (a pipe someone waits on to close).
    for fd in [READY_FD, 4] {
        if unsafe { fcntl(fd, F_SETFD, FD_CLOEXEC) } != 0 {
            std::process::exit(2);
        }
    }
    unsafe { syscall(SYS_CLOSE_RANGE, 5, c_uint::MAX, 0) };
    let mut ready = Some(unsafe { File::from_raw_fd(READY_FD) });
    let m = Monitor {
        dir: dir.clone(),
        id: id.clone(),
        rm: rm == "rm",
    };
    std::process::exit(match m.run(&mut ready) {
        Ok(()) => 0,
        Err(e) => {
            // Before the container ran: the caller reports it and cleans up.
            if let Some(mut f) = ready.take() {
                let _ = f.write_all(e.as_bytes());
            }
            1
        }
    })
}

struct Monitor {
    dir: OsString,
    id: OsString,
    rm: bool,
}

impl Monitor {
    fn run(&self, ready: &mut Option<File>) -> Result<(), String> {
        unsafe {
            signal(SIGHUP, SIG_IGN);
            signal(SIGINT, SIG_IGN);
            signal(SIGPIPE, SIG_IGN);
            if prctl(PR_SET_CHILD_SUBREAPER, 1 as c_ulong) != 0 {
                return Err(os_error("becoming a subreaper"));
            }
        }
        let null = File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| format!("/dev/null: {e}"))?;
        let mut log = RotatingLog::open(std::path::Path::new(&self.dir))
            .map_err(|e| format!("creating ctr.log: {e}"))?;
        let mut restarts = 0u32;
        loop {
            let (code, error) = match self.run_once(&null, &mut log, ready) {
                Ok(code) => (code, None),
                Err(e) if ready.is_some() => return Err(e),
                Err(e) => (-1, Some(e)),
            };
            if !self.exited(&null, code, restarts, error)? {
                return Ok(());
            }
            restarts += 1;
        }
    }

    /// Start the container (a `start` helper), log its output and wait for it: its exit
    /// code. `ready` is told "ok" (and taken) once it runs.
    fn run_once(
        &self,
        null: &File,
        log: &mut RotatingLog,
        ready: &mut Option<File>,
    ) -> Result<i32, String> {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let dir = std::path::Path::new(&self.dir);
        // -i: init reads a pipe whose write end attached clients feed (without a tty).
        let stdin_mode = attach::stdin_mode(dir);
        let (in_r, in_w) = match stdin_mode {
            Some(_) => {
                let (r, w) = pipe()?;
                (Some(r), Some(w))
            }
            None => (None, None),
        };
        // Bound before the start, so that `start -a` sees the container's first output;
        // without it the container still runs (only attaching is impossible).
        let mut att = attach::Attach::open(dir, stdin_mode == Some(true)).ok();
        if let Some(a) = &mut att {
            a.wait_first(dir);
        }
        let mut sv = [0; 2];
        if unsafe { socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv.as_mut_ptr()) } != 0 {
            return Err(os_error("socketpair"));
        }
        let (answer, theirs) =
            unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
        let fds = [
            in_r.as_ref().map_or(null.as_raw_fd(), |r| r.as_raw_fd()),
            out_w.as_raw_fd(),
            err_w.as_raw_fd(),
            theirs.as_raw_fd(),
        ];
        let mut helper = self.helper("start", &[], fds)?;
        // From here on only the container holds the pipes' write ends: EOF means it is gone.
        drop((out_w, err_w, theirs, in_r));
        let got = receive(&answer);
        drop(answer);
        let _ = helper.wait();
        let (text, master) = got?;
        let pid: c_int = match text.split_at_checked(1) {
            Some(("+", pid)) => pid
                .parse()
                .map_err(|_| format!("the start helper answered {text:?}"))?,
            Some((_, e)) => return Err(e.to_string()),
            None => return Err("husk's start helper died".into()),
        };
        if let Some(mut f) = ready.take() {
            let _ = f.write_all(b"ok");
        }
        let master = master.map(File::from);
        if let Some(a) = &mut att {
            // With a tty, input goes to the pty (-i only); else to the stdin pipe.
            let tty_in = master.as_ref().filter(|_| stdin_mode.is_some());
            a.set_stdin(match tty_in {
                Some(m) => m.try_clone().ok(),
                None => in_w.map(File::from),
            });
        }
        let mut sources = vec![(File::from(out_r), "stdout"), (File::from(err_r), "stderr")];
        sources.extend(master.map(|m| (m, "stdout")));
        let mut health = HealthTimer::read(dir);
        copy_to_log(
            sources,
            log,
            &mut || match &mut health {
                Some(h) => h.tick(self, null),
                None => -1,
            },
            att.as_mut(),
        );
        // Clients see the end of the stream; the exit code is in the record soon after.
        drop(att);
        wait_for(pid)
    }

    /// The `exited` helper: runtime state deleted, restart policy applied, exit recorded.
    /// Whether to start the container again.
    fn exited(
        &self,
        null: &File,
        code: i32,
        restarts: u32,
        error: Option<String>,
    ) -> Result<bool, String> {
        let (r, w) = pipe()?;
        let (code, restarts) = (code.to_string(), restarts.to_string());
        let mut args = vec![
            code.as_str(),
            restarts.as_str(),
            if self.rm { "rm" } else { "keep" },
        ];
        args.extend(error.as_deref());
        let fds = [
            null.as_raw_fd(),
            null.as_raw_fd(),
            null.as_raw_fd(),
            w.as_raw_fd(),
        ];
        let mut helper = self.helper("exited", &args, fds)?;
        drop(w);
        let mut answer = String::new();
        let _ = File::from(r).read_to_string(&mut answer);
        let _ = helper.wait();
        Ok(answer == "again")
    }

    /// `husk __monitor WHAT DIR ID ARGS…` with `fds` as its fds 0-3.
    fn helper(
        &self,
        what: &str,
        args: &[&str],
        fds: [RawFd; 4],
    ) -> Result<std::process::Child, String> {
        let mut c = Command::new(HUSK);
        c.arg0("husk")
            .args(["__monitor", what])
            .arg(&self.dir)
            .arg(&self.id)
            .args(args);
        unsafe {
            c.pre_exec(move || {
                for (to, from) in fds.into_iter().enumerate() {
                    if dup2(from, to as c_int) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                signal(SIGHUP, SIG_DFL);
                signal(SIGINT, SIG_DFL);
                Ok(())
            });
        }
        c.spawn()
            .map_err(|e| format!("running husk's {what} helper: {e}"))
    }
}

/// When the health check runs next, and the one running now.
struct HealthTimer {
    interval: std::time::Duration,
    next: std::time::Instant,
    running: Option<std::process::Child>,
}

impl HealthTimer {
    /// The timer of the container in `dir`, if it has a health check.
    fn read(dir: &std::path::Path) -> Option<HealthTimer> {
        let ms: u64 = std::fs::read_to_string(dir.join("health-interval"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let interval = std::time::Duration::from_millis(ms.max(1));
        Some(HealthTimer {
            interval,
            next: std::time::Instant::now() + interval,
            running: None,
        })
    }

    /// Start the check when it is due: how long the monitor may sleep (ms) before the next
    /// call. While a check runs it is looked at every 100 ms.
    fn tick(&mut self, m: &Monitor, null: &File) -> c_int {
        let now = std::time::Instant::now();
        if let Some(c) = &mut self.running {
            if let Ok(None) = c.try_wait() {
                return 100;
            }
            self.running = None;
            self.next = now + self.interval;
        }
        if now < self.next {
            return (self.next - now).as_millis().min(c_int::MAX as u128) as c_int + 1;
        }
        let fd = null.as_raw_fd();
        match m.helper("health", &[], [fd; 4]) {
            Ok(c) => {
                self.running = Some(c);
                100
            }
            Err(_) => {
                self.next = now + self.interval;
                self.interval.as_millis().min(c_int::MAX as u128) as c_int
            }
        }
    }
}

/// One message of the start helper, and the fd that came with it.
fn receive(sock: &OwnedFd) -> Result<(String, Option<OwnedFd>), String> {
    let mut buf = vec![0u8; 8 << 10];
    // Room for a cmsghdr and one fd, size_t-aligned.
    let mut control = [0usize; 4];
    let mut iov = IoVec {
        base: buf.as_mut_ptr().cast(),
        len: buf.len(),
    };
    let mut msg = MsgHdr {
        name: std::ptr::null_mut(),
        namelen: 0,
        iov: &mut iov,
        iovlen: 1,
        control: control.as_mut_ptr().cast(),
        controllen: std::mem::size_of_val(&control),
        flags: 0,
    };
    let n = loop {
        let n = unsafe { recvmsg(sock.as_raw_fd(), &mut msg, MSG_CMSG_CLOEXEC) };
        if n >= 0 || !interrupted() {
            break n;
        }
    };
    if n < 0 {
        return Err(os_error("reading the start helper's answer"));
    }
    let mut fd = None;
    let hdr = std::mem::size_of::<CmsgHdr>();
    if msg.controllen >= hdr {
        let c = unsafe { &*(control.as_ptr() as *const CmsgHdr) };
        if c.level == SOL_SOCKET && c.kind == SCM_RIGHTS && c.len >= hdr + 4 {
            let raw = unsafe { *(control.as_ptr().cast::<u8>().add(hdr) as *const c_int) };
            fd = Some(unsafe { OwnedFd::from_raw_fd(raw) });
        }
    }
    buf.truncate(n as usize);
    Ok((String::from_utf8_lossy(&buf).into_owned(), fd))
}

/// Reap children (adopted ones too) until `pid` is among them: its exit code, 128+N when
/// signal N killed it.
fn wait_for(pid: c_int) -> Result<i32, String> {
    loop {
        let mut status: c_int = 0;
        let r = unsafe { waitpid(-1, &mut status, 0) };
        if r == pid {
            let sig = status & 0x7f;
            return Ok(if sig == 0 {
                (status >> 8) & 0xff
            } else {
                128 + sig
            });
        }
        if r < 0 && !interrupted() {
            return Err(os_error(&format!(
                "waiting for the container's init ({pid})"
            )));
        }
    }
}

/// DIR/ctr.log, rotated as docker's json-file driver does: before a write would take it
/// past max-size, ctr.log.N-1 … ctr.log.1 move up one (the oldest, ctr.log.MAX_FILE-1, is
/// overwritten) and ctr.log becomes ctr.log.1 (with max-file 1 it is simply emptied).
pub(crate) struct RotatingLog {
    path: std::path::PathBuf,
    file: File,
    size: u64,
    /// (max-size, max-file) from DIR/log-opts; None: it grows without limit.
    limit: Option<(u64, u32)>,
}

impl RotatingLog {
    pub(crate) fn open(dir: &std::path::Path) -> std::io::Result<RotatingLog> {
        let limit = std::fs::read_to_string(dir.join("log-opts"))
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(|w| w.parse::<u64>().ok());
                Some((it.next()??, it.next()?? as u32))
            })
            .filter(|(size, files)| *size > 0 && *files > 0);
        let path = dir.join("ctr.log");
        let file = File::options().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            path,
            file,
            size,
            limit,
        })
    }

    fn rotated(&self, n: u32) -> std::path::PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self, files: u32) -> std::io::Result<()> {
        for n in (1..files.saturating_sub(1)).rev() {
            let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        if files > 1 {
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        self.file = File::options()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    /// Whole records only (copy_to_log writes records, never parts of one), so that no
    /// record is split between two files.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some((max, files)) = self.limit {
            if self.size > 0 && self.size + buf.len() as u64 > max {
                self.rotate(files)?;
            }
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log what the container writes until every source is at its end (all write ends of a pipe
/// closed; the pty's slave side gone, EIO): one record per line, or per [`MAX_RECORD`] bytes
/// of a longer one; a last line without "\n" is written at the end. `tick` is called on
/// every wake-up and says how long (ms, -1: forever) to wait for output before the next.
pub(crate) fn copy_to_log(
    sources: Vec<(File, &'static str)>,
    log: &mut impl Write,
    tick: &mut dyn FnMut() -> c_int,
    mut attach: Option<&mut attach::Attach>,
) {
    let mut open: Vec<(File, &str, Vec<u8>)> = sources
        .into_iter()
        .map(|(f, stream)| (f, stream, Vec::new()))
        .collect();
    let mut buf = vec![0u8; MAX_RECORD];
    while !open.is_empty() {
        let extra = attach.as_ref().map(|a| a.fds()).unwrap_or_default();
        let mut polled: Vec<PollFd> = open
            .iter()
            .map(|(f, _, _)| f.as_raw_fd())
            .chain(extra.iter().copied())
            .map(|fd| PollFd {
                fd,
                events: POLLIN,
                revents: 0,
            })
            .collect();
        let timeout = tick();
        if unsafe { poll(polled.as_mut_ptr(), polled.len() as c_ulong, timeout) } < 0 {
            if interrupted() {
                continue;
            }
            return;
        }
        let (polled, extra) = polled.split_at(open.len());
        if let Some(a) = attach.as_mut() {
            for p in extra.iter().filter(|p| p.revents != 0) {
                a.ready(p.fd, p.revents);
            }
        }
        // Backwards: a source at its end goes without moving those still to be looked at.
        for (i, p) in polled.iter().enumerate().rev() {
            if p.revents == 0 {
                continue;
            }
            let (src, stream, pending) = &mut open[i];
            let n = match src.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => {
                    if !pending.is_empty() {
                        let _ = log.write_all(&record(pending, stream));
                    }
                    open.remove(i);
                    continue;
                }
                Ok(n) => n,
            };
            if let Some(a) = attach.as_mut() {
                a.output(stream, &buf[..n]);
            }
            pending.extend_from_slice(&buf[..n]);
            loop {
                let end = match pending.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1).min(MAX_RECORD),
                    None if pending.len() >= MAX_RECORD => MAX_RECORD,
                    None => break,
                };
                // One write per record: the log rotates between records, never inside one.
                let _ = log.write_all(&record(&pending[..end], stream));
                pending.drain(..end);
            }
        }
    }
}

/// `{"log":LINE,"stream":STREAM,"time":NOW}` and a newline, as serde_json writes it (invalid
/// UTF-8 becomes U+FFFD).
fn record(line: &[u8], stream: &str) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    record_at(line, stream, now.as_secs() as i64, now.subsec_nanos())
}

pub(crate) fn record_at(line: &[u8], stream: &str, secs: i64, nanos: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(line.len() + 80);
    v.extend_from_slice(b"{\"log\":\"");
    let mut utf8 = [0u8; 4];
    for c in String::from_utf8_lossy(line).chars() {
        match c {
            '"' => v.extend_from_slice(b"\\\""),
            '\\' => v.extend_from_slice(b"\\\\"),
            '\n' => v.extend_from_slice(b"\\n"),
            '\r' => v.extend_from_slice(b"\\r"),
            '\t' => v.extend_from_slice(b"\\t"),
            '\u{8}' => v.extend_from_slice(b"\\b"),
            '\u{c}' => v.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(v, "\\u{:04x}", c as u32);
            }
            c => v.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes()),
        }
    }
    let _ = writeln!(
        v,
        "\",\"stream\":\"{stream}\",\"time\":\"{}\"}}",
        rfc3339(secs, nanos)
    );
    v
}

/// Seconds and nanoseconds since the epoch as `2026-11-23T11:31:01.123456789Z`.
fn rfc3339(secs: i64, nanos: u32) -> String {
    // Days → civil date: Howard Hinnant's public-domain algorithm.
    let z = secs.div_euclid(86_400) + 719_468;
    let rem = secs.rem_euclid(86_400);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}
