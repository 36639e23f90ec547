//! `husk run -d`: a small monitor process per container (no daemon). It is forked from
//! `husk run`, leaves the caller's session, owns the container's stdout/stderr pipes and
//! writes them to DIR/ctr.log as JSON lines (`{"log","stream","time"}`, Docker's json-file
//! format), waits for the container, records its exit code in container.json and cleans up
//! (runtime state, overlay, and with --rm the container's directory). `husk run -d` returns
//! once the container has started, or with the error that stopped it.

use crate::containers::Record;
use crate::run::{state_root, Made};
use husk_container::ContainerBuilder;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub const LOG_FILE: &str = "ctr.log";

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn dup2(from: &impl AsRawFd, to: i32) -> Result<(), String> {
    if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
        return Err(format!("dup2: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Start the container under a monitor; returns in the caller once it runs.
pub fn detach(id: &str, made: Made, rm: bool, restart: Restart) -> Result<(), String> {
    let (ready_r, ready_w) = pipe()?;
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(ready_r);
            let code = match monitor(id, made, rm, restart, ready_w) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            // No destructors of the caller's stack: exit now.
            unsafe { libc::_exit(code) }
        }
        _ => {
            drop(ready_w);
            made.disarm(); // the monitor owns the overlay and the directory now
            let mut msg = String::new();
            let _ = File::from(ready_r).read_to_string(&mut msg);
            match msg.strip_prefix("ok") {
                Some(_) => Ok(()),
                None if msg.is_empty() => Err("the monitor process died".into()),
                None => Err(msg.trim_end().to_string()),
            }
        }
    }
}

/// The monitor: everything after the fork. An error before the container runs goes to the
/// caller through `ready` — after `made` has cleaned up, so the caller sees nothing left.
fn monitor(id: &str, made: Made, rm: bool, restart: Restart, ready: OwnedFd) -> Result<(), String> {
    let mut ready = Some(File::from(ready));
    let r = supervise(id, made, rm, restart, &mut ready);
    if let (Err(e), Some(mut f)) = (&r, ready.take()) {
        let _ = f.write_all(e.as_bytes());
    }
    r
}

/// `--restart`: whether the monitor starts the container again after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    No,
    Always,
    /// On a non-zero exit, at most N times (unlimited without N).
    OnFailure(Option<u32>),
}

impl Restart {
    pub fn parse(s: &str) -> Result<Restart, String> {
        match s.split_once(':') {
            None if s == "no" => Ok(Restart::No),
            None if s == "always" || s == "unless-stopped" => Ok(Restart::Always),
            None if s == "on-failure" => Ok(Restart::OnFailure(None)),
            Some(("on-failure", n)) => n
                .parse()
                .map(|n| Restart::OnFailure(Some(n)))
                .map_err(|_| format!("--restart {s:?}: the retry count must be a number")),
            _ => Err(format!(
                "--restart {s:?}: use no, always, unless-stopped or on-failure[:N]"
            )),
        }
    }

    fn again(self, code: i32, restarts: u32) -> bool {
        match self {
            Restart::No => false,
            Restart::Always => true,
            Restart::OnFailure(max) => code != 0 && max.is_none_or(|m| restarts < m),
        }
    }
}

fn supervise(
    id: &str,
    mut made: Made,
    rm: bool,
    restart: Restart,
    ready: &mut Option<File>,
) -> Result<(), String> {
    unsafe {
        libc::setsid();
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let dir = made.dir.clone();
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join(LOG_FILE))
        .map_err(|e| format!("creating {LOG_FILE}: {e}"))?;
    let log = Arc::new(Mutex::new(log));
    let mut restarts = 0u32;
    let outcome = loop {
        let run = run_once(id, &dir, &null, &log, ready);
        if ready.is_some() {
            return run.map(|_| ()); // never started: `made` cleans up, the caller is told
        }
        let code = match &run {
            Ok((code, _)) => *code,
            Err(_) => break run,
        };
        // `husk stop` marks the container so that its policy does not bring it back.
        let stopping = Record::load(&dir).map_or(true, |r| r.meta["stopping"] == true);
        if stopping || !restart.again(code, restarts) {
            break run;
        }
        restarts += 1;
        if let Ok(mut r) = Record::load(&dir) {
            r.meta["restart_count"] = restarts.into();
            let _ = r.save();
        }
        // 100 ms, doubling up to 3.2 s, so a crash loop does not spin.
        std::thread::sleep(std::time::Duration::from_millis(100 << restarts.min(5)));
        if Record::load(&dir).map_or(true, |r| r.meta["stopping"] == true) {
            break run;
        }
    };
    if let Some(mut o) = made.overlay.take() {
        let _ = o.unmount();
    }
    if rm {
        return Ok(()); // `made` removes the directory
    }
    made.keep_dir = true;
    let mut r = Record::load(&dir)?;
    let (code, error) = match outcome {
        Ok((code, deleted)) => (code, deleted.err()),
        Err(e) => (-1, Some(e)),
    };
    r.meta["exit_code"] = code.into();
    r.meta["finished"] = husk_oci::time::rfc3339_now().into();
    if let Some(e) = error {
        r.meta["error"] = e.into();
    }
    r.save()
}

/// Create and start the container once with its output going to the log, and wait for it:
/// (exit code, result of deleting it). `ready` is told "ok" (and taken) once it runs.
fn run_once(
    id: &str,
    dir: &Path,
    null: &File,
    log: &Arc<Mutex<File>>,
    ready: &mut Option<File>,
) -> Result<(i32, Result<(), String>), String> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // The container's init inherits fds 0-2: /dev/null and the two pipes.
    dup2(null, 0)
        .and_then(|_| dup2(&out_w, 1))
        .and_then(|_| dup2(&err_w, 2))?;
    drop((out_w, err_w));
    // -t: the library sends the pty master to our console socket; its output is logged
    // as stdout (the pipes then see EOF at once: the pty replaced them).
    let console = husk_container::terminal::wants_terminal(&dir.join("config.json"), true)
        .then(husk_container::terminal::ConsoleListener::new)
        .transpose()?;
    let mut b = ContainerBuilder::new(id.to_string()).root_path(state_root());
    if let Some(l) = &console {
        b = b.console_socket(l.path());
    }
    let built = b.as_init(dir).build();
    // From here on only the container holds the pipes' write ends: EOF means it is gone.
    let _ = dup2(null, 1).and_then(|_| dup2(null, 2));
    let mut c = built.map_err(|e| e.to_string())?;
    let master = console.as_ref().map(|l| l.receive_master()).transpose();
    let started = master.and_then(|m| c.start().map(|()| m).map_err(|e| e.to_string()));
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
        r.meta["pid"] = c.pid().into();
        r.meta["monitor_pid"] = std::process::id().into();
        let _ = r.save();
    }
    if let Some(mut f) = ready.take() {
        let _ = f.write_all(b"ok");
    }
    let mut sources = vec![(out_r, "stdout"), (err_r, "stderr")];
    sources.extend(master.map(|m| (m, "stdout")));
    let readers: Vec<_> = sources
        .into_iter()
        .map(|(fd, stream)| {
            let log = log.clone();
            std::thread::spawn(move || copy_to_log(File::from(fd), stream, &log))
        })
        .collect();
    let code = c.wait().map_err(|e| e.to_string());
    for r in readers {
        let _ = r.join();
    }
    let deleted = c.delete(true).map_err(|e| e.to_string());
    Ok((code?, deleted))
}

/// One log record per line of `src` (a last line without "\n" is written at EOF).
fn copy_to_log(mut src: File, stream: &str, log: &Mutex<File>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut out = Vec::new();
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            out.extend(record(&line, stream));
        }
        if !out.is_empty() {
            let _ = log.lock().unwrap().write_all(&out);
        }
    }
    if !pending.is_empty() {
        let _ = log.lock().unwrap().write_all(&record(&pending, stream));
    }
}

fn record(line: &[u8], stream: &str) -> Vec<u8> {
    let mut v = serde_json::to_vec(&serde_json::json!({
        "log": String::from_utf8_lossy(line),
        "stream": stream,
        "time": husk_oci::time::rfc3339_now(),
    }))
    .unwrap();
    v.push(b'\n');
    v
}

/// `husk logs`: the container's output, on our stdout/stderr as it was written; with
/// `follow`, keep reading until the container has exited.
pub fn logs(dir: &Path, follow: bool, tail: Option<usize>, timestamps: bool) -> Result<(), String> {
    let path = dir.join(LOG_FILE);
    let mut f = File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    // Only whole lines; a partial last line is read again with the rest of it.
    let mut consumed = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let lines: Vec<&str> = text[..consumed].lines().collect();
    let skip = tail.map(|n| lines.len().saturating_sub(n)).unwrap_or(0);
    for l in &lines[skip..] {
        print_record(l, timestamps);
    }
    if !follow {
        return Ok(());
    }
    let mut rest = text[consumed..].to_string();
    loop {
        // Read the exit record first, then drain: nothing written before the exit is missed.
        let done = Record::load(dir).map_or(true, |r| r.exit_code().is_some());
        let mut more = String::new();
        let _ = f.read_to_string(&mut more);
        rest.push_str(&more);
        consumed = rest.rfind('\n').map(|i| i + 1).unwrap_or(0);
        for l in rest[..consumed].lines() {
            print_record(l, timestamps);
        }
        rest.drain(..consumed);
        if done {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn print_record(line: &str, timestamps: bool) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return;
    };
    let text = v["log"].as_str().unwrap_or_default();
    let prefix = if timestamps {
        format!("{} ", v["time"].as_str().unwrap_or_default())
    } else {
        String::new()
    };
    let _ = if v["stream"] == "stderr" {
        write!(std::io::stderr(), "{prefix}{text}")
    } else {
        let mut o = std::io::stdout().lock();
        write!(o, "{prefix}{text}").and_then(|_| o.flush())
    };
}
