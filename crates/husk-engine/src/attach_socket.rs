//! `husk attach` and `husk start -a`: the client of a detached container's attach socket,
//! which its monitor serves (monitor/attach.rs has the protocol): the container's output
//! to our stdout and stderr, our stdin to the container's when it was made with -i, the
//! terminal raw for a tty container, docker's detach keys (ctrl-p ctrl-q) to leave it
//! running, and with --sig-proxy (no tty) our signals forwarded to it.
//!
//! A container run in the foreground has no monitor and so no socket: attaching to it
//! follows what it logs, output only ([`Engine::attach`]).

use crate::engine::Engine;
use crate::error::{ContainerError, During, Result};
use crate::os::{IoContext, IoError};
use crate::record::{find, Record};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How to attach.
#[derive(Clone, Debug)]
pub struct AttachOptions {
    /// Send our stdin (when the container takes input: -i).
    pub stdin: bool,
    /// docker's `--detach-keys` (`ctrl-p,ctrl-q` by default).
    pub detach_keys: Option<String>,
    /// Forward our signals to the container (not with a tty: keys go through it).
    pub sig_proxy: bool,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            stdin: true,
            detach_keys: None,
            sig_proxy: true,
        }
    }
}

/// How an attach ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachEnd {
    /// The container exited with this code.
    Exited(i64),
    /// The detach keys were typed: the container runs on.
    Detached,
}

#[derive(Debug, thiserror::Error)]
pub enum AttachSocketError {
    #[error("--detach-keys {0:?}: use a comma-separated list of keys: a letter, or ctrl-A … ctrl-Z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_")]
    Keys(String),
    #[error("the container's monitor did not open its attach socket")]
    NoSocket,
}

/// docker's detach key list: `ctrl-p,ctrl-q`, `a,b`, `ctrl-\`.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, AttachSocketError> {
    let bad = || AttachSocketError::Keys(s.to_string());
    s.split(',')
        .map(|k| match k.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let c = c.as_bytes()[0].to_ascii_uppercase();
                match c {
                    b'@'..=b'_' => Ok(c - b'@'),
                    _ => Err(bad()),
                }
            }
            None if k.len() == 1 => Ok(k.as_bytes()[0]),
            _ => Err(bad()),
        })
        .collect()
}

/// The input filter for detach keys: bytes to pass on, or the sequence was typed.
struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachKeys {
    /// `input` with the keys taken out; None when the whole sequence was typed. A partial
    /// sequence is held back until the next byte says whether it was one.
    fn filter(&mut self, input: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.keys.get(self.matched) == Some(&b) {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return None;
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if self.keys.first() == Some(&b) {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        Some(out)
    }
}

/// The short path of DIR/attach.sock (a long store path would not fit in sockaddr_un).
fn connect(dir: &Path) -> std::io::Result<UnixStream> {
    let d = std::fs::File::open(dir)?;
    UnixStream::connect(format!("/proc/self/fd/{}/attach.sock", d.as_raw_fd()))
}

/// What the monitor reads at each start: whether the container takes input, and whether
/// a client's end of input closes it (docker's StdinOnce, which `create -i` sets).
pub(crate) fn write_stdin_mode(dir: &Path, interactive: bool, once: bool) -> Result<(), IoError> {
    if !interactive {
        return Ok(());
    }
    let p = dir.join("attach-stdin");
    std::fs::write(&p, if once { "once\n" } else { "open\n" }).ctx("writing", &p)
}

/// Ask the next monitor of the container in `dir` to wait for a client before it starts it.
pub(crate) fn ask_to_wait(dir: &Path) -> Result<(), IoError> {
    let p = dir.join("attach-wait");
    std::fs::write(&p, b"").ctx("writing", &p)
}

/// Connect to the socket the new monitor (spawned, whose ready pipe is `ready`) binds;
/// None when the monitor answered on `ready` first (it failed) or 10 s passed.
pub(crate) fn connect_early(dir: &Path, ready: &impl AsRawFd) -> Option<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(s) = connect(dir) {
            return Some(s);
        }
        let mut p = libc::pollfd {
            fd: ready.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        if unsafe { libc::poll(&mut p, 1, 5) } > 0 {
            return None;
        }
    }
    None
}

impl Engine {
    /// `husk attach`: see the module. Ends when the container exits (its code) or on the
    /// detach keys.
    pub fn attach_to(&self, what: &str, o: &AttachOptions) -> Result<AttachEnd> {
        let r = find(&self.root, what)?;
        let go = || -> Result<AttachEnd> {
            let keys = parse_detach_keys(o.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?;
            match r.status() {
                "running" | "paused" => {}
                s => return Err(ContainerError::NotRunning(s).into()),
            }
            match connect(&r.dir) {
                Ok(sock) => self.session(&r, what, sock, o, keys),
                // Run in the foreground: no monitor, no socket; what it logs.
                Err(_) => Ok(AttachEnd::Exited(self.attach(what, &mut print_line)?)),
            }
        };
        go().during("attach", what)
    }

    /// `husk start -a [-i]`: start the container under a monitor that waits for us to
    /// connect first, so that none of its output is missed.
    pub fn start_attached(&self, what: &str, o: &AttachOptions) -> Result<AttachEnd> {
        let r = find(&self.root, what)?;
        let go = || -> Result<AttachEnd> {
            let keys = parse_detach_keys(o.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?;
            let sock = self.start_again(r, true)?;
            let r = find(&self.root, what)?;
            let sock = sock.ok_or(AttachSocketError::NoSocket)?;
            self.session(&r, what, sock, o, keys)
        };
        go().during("start", what)
    }
}

impl Engine {
    /// [`session`], then the exit code once the output has ended.
    fn session(
        &self,
        r: &Record,
        what: &str,
        sock: UnixStream,
        o: &AttachOptions,
        keys: Vec<u8>,
    ) -> Result<AttachEnd> {
        match session(r, sock, o, keys)? {
            AttachEnd::Exited(_) => Ok(AttachEnd::Exited(self.wait_for(r, what)?)),
            d => Ok(d),
        }
    }
}

fn print_line(l: crate::LogLine) {
    let _ = match l.stream {
        crate::Stream::Stderr => std::io::stderr().write_all(l.text.as_bytes()),
        crate::Stream::Stdout => {
            let mut o = std::io::stdout().lock();
            o.write_all(l.text.as_bytes()).and_then(|_| o.flush())
        }
    };
}

/// Copy both ways until the stream ends (Exited, the code not known yet) or the keys are
/// typed.
fn session(
    r: &Record,
    mut sock: UnixStream,
    o: &AttachOptions,
    keys: Vec<u8>,
) -> Result<AttachEnd> {
    let spec: serde_json::Value = std::fs::read(r.dir.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default();
    let tty = spec["process"]["terminal"] == true;
    let input = o.stdin && r.meta.interactive;
    let on_terminal = tty && input && unsafe { libc::isatty(0) } == 1;
    let _raw = on_terminal.then(husk_container::terminal::RawMode::enter);
    let pty = on_terminal.then(|| container_pty(r)).flatten();
    if let Some(p) = &pty {
        husk_container::terminal::copy_window_size(p);
        watch_window_size();
    }
    if o.sig_proxy && !tty {
        if let Some(c) = r.runtime() {
            crate::attach::forward_signals(c.pid());
        }
    }
    let mut keys = DetachKeys { keys, matched: 0 };
    let mut reading = input;
    let mut frames: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 32 << 10];
    let end = loop {
        let mut fds = vec![libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if reading {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let polled = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if let Some(p) = &pty {
            if WINCH.swap(false, std::sync::atomic::Ordering::SeqCst) {
                husk_container::terminal::copy_window_size(p);
            }
        }
        if polled < 0 {
            continue; // EINTR: a forwarded signal, or SIGWINCH
        }
        if fds.get(1).is_some_and(|f| f.revents != 0) {
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                // End of our input: the monitor closes the container's stdin if it was
                // made so (create -i); the output goes on.
                reading = false;
                let _ = sock.shutdown(std::net::Shutdown::Write);
            } else {
                match keys.filter(&buf[..n as usize]) {
                    None => break AttachEnd::Detached,
                    Some(data) => {
                        if sock.write_all(&data).is_err() {
                            reading = false;
                        }
                    }
                }
            }
        }
        if fds[0].revents != 0 {
            match sock.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => break AttachEnd::Exited(-1),
                Ok(n) => {
                    frames.extend_from_slice(&buf[..n]);
                    write_frames(&mut frames);
                }
            }
        }
    };
    crate::attach::stop_forwarding();
    drop(_raw);
    Ok(end)
}

/// The container's pty, opened through its init's stdin (the pty's slave side): where our
/// window size goes. The monitor holds the master, but the size is the tty's, either side.
fn container_pty(r: &Record) -> Option<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let pid = r.runtime()?.pid();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(format!("/proc/{pid}/fd/0"))
        .ok()?;
    (unsafe { libc::isatty(f.as_raw_fd()) } == 1).then(|| f.into())
}

static WINCH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    WINCH.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// SIGWINCH sets [`WINCH`] and interrupts the session's poll (no SA_RESTART).
fn watch_window_size() {
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_winch as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGWINCH, &sa, std::ptr::null_mut());
    }
}

/// Write the whole frames of `pending` (stream byte, big-endian length, bytes) to our
/// stdout/stderr, keeping a partial one.
fn write_frames(pending: &mut Vec<u8>) {
    let mut at = 0;
    while pending.len() >= at + 5 {
        let len = u32::from_be_bytes(pending[at + 1..at + 5].try_into().unwrap()) as usize;
        if pending.len() < at + 5 + len {
            break;
        }
        let data = &pending[at + 5..at + 5 + len];
        let _ = match pending[at] {
            2 => std::io::stderr().write_all(data),
            _ => {
                let mut o = std::io::stdout().lock();
                o.write_all(data).and_then(|_| o.flush())
            }
        };
        at += 5 + len;
    }
    pending.drain(..at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_as_docker_writes_them() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [0x10, 0x11]);
        assert_eq!(
            parse_detach_keys("ctrl-@,a,ctrl-\\").unwrap(),
            [0, b'a', 0x1c]
        );
        for bad in ["", "ctrl-", "ctrl-1", "ab", "ctrl-p,"] {
            assert!(parse_detach_keys(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn detach_keys_are_taken_out_of_the_input() {
        let mut k = DetachKeys {
            keys: vec![0x10, 0x11],
            matched: 0,
        };
        assert_eq!(k.filter(b"ab\x10").unwrap(), b"ab");
        // Not the sequence after all: the held key goes on.
        assert_eq!(k.filter(b"c").unwrap(), b"\x10c");
        assert_eq!(k.filter(b"\x10\x10").unwrap(), b"\x10");
        assert_eq!(k.filter(b"\x11"), None);
    }
}
