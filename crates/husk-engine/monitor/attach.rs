//! The monitor's attach socket, DIR/attach.sock (a stream socket, bound through
//! /proc/self/fd/N/ so that a long store path does not matter): what `husk attach` and
//! `husk start -a` connect to.
//!
//! To each client, the container's output as it comes, in frames: one byte for the stream
//! (1 stdout, 2 stderr; a pty's output is 1), the length (4 bytes, big-endian), the bytes.
//! From a client, raw bytes for the container's stdin — only when it was made with -i
//! (DIR/attach-stdin: "open", or "once" to close the container's stdin when a client's
//! input ends, docker's StdinOnce of `create -i`). A client's input ends when it shuts down
//! its write side and goes on reading; one that closes altogether (the detach keys) leaves
//! the container's stdin open. Input the container does not read is
//! dropped once its pipe (or pty) is full: the monitor never blocks on a container.
//! Detach keys and signals are the client's business; the monitor never interprets input.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::raw::{c_int, c_ulong};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

const POLLOUT: i16 = 4;
const POLLHUP: i16 = 0x10;

pub(crate) struct Attach {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    /// Where clients' input goes: the write end of init's stdin pipe, or the pty master.
    stdin: Option<File>,
    once: bool,
}

struct Client {
    sock: UnixStream,
    /// Its input has not ended yet.
    reading: bool,
}

/// Whether the container takes input (-i), and whether it is closed when an attached
/// client's input ends.
pub(crate) fn stdin_mode(dir: &Path) -> Option<bool> {
    let mode = std::fs::read_to_string(dir.join("attach-stdin")).ok()?;
    Some(mode.trim() == "once")
}

impl Attach {
    /// Listen on DIR/attach.sock (replacing a stale one).
    pub(crate) fn open(dir: &Path, once: bool) -> Result<Attach, String> {
        let d = File::open(dir).map_err(|e| format!("opening {}: {e}", dir.display()))?;
        let path = dir.join("attach.sock");
        let _ = std::fs::remove_file(&path);
        let short = format!("/proc/self/fd/{}/attach.sock", d.as_raw_fd());
        let listener =
            UnixListener::bind(&short).map_err(|e| format!("binding {}: {e}", path.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("attach socket: {e}"))?;
        Ok(Attach {
            listener,
            path,
            clients: Vec::new(),
            stdin: None,
            once,
        })
    }

    pub(crate) fn set_stdin(&mut self, f: Option<File>) {
        self.stdin = f;
    }

    /// `husk start -a` (DIR/attach-wait) connects before the container starts, so that it
    /// sees all of its output: wait for that client, at most 10 s.
    pub(crate) fn wait_first(&mut self, dir: &Path) {
        if std::fs::remove_file(dir.join("attach-wait")).is_err() {
            return;
        }
        let mut p = super::PollFd {
            fd: self.listener.as_raw_fd(),
            events: super::POLLIN,
            revents: 0,
        };
        if unsafe { super::poll(&mut p, 1, 10_000) } > 0 {
            self.accept();
        }
    }

    fn accept(&mut self) {
        while let Ok((sock, _)) = self.listener.accept() {
            // A client that stops reading is dropped, never waited for.
            let ok = sock.set_nonblocking(false).is_ok()
                && sock
                    .set_write_timeout(Some(std::time::Duration::from_secs(2)))
                    .is_ok();
            if ok {
                self.clients.push(Client {
                    sock,
                    reading: true,
                });
            }
        }
    }

    /// The fds to poll for input: the listener and the clients whose input goes on.
    pub(crate) fn fds(&self) -> Vec<RawFd> {
        let mut v = vec![self.listener.as_raw_fd()];
        v.extend(
            self.clients
                .iter()
                .filter(|c| c.reading)
                .map(|c| c.sock.as_raw_fd()),
        );
        v
    }

    /// `fd` (one of [`Attach::fds`]) is readable (poll's `revents`).
    pub(crate) fn ready(&mut self, fd: RawFd, revents: i16) {
        if fd == self.listener.as_raw_fd() {
            return self.accept();
        }
        let Some(i) = self.clients.iter().position(|c| c.sock.as_raw_fd() == fd) else {
            return;
        };
        let mut buf = [0u8; 4096];
        match self.clients[i].sock.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Gone altogether (detached, or died): the container's stdin stays open.
            Ok(0) if revents & POLLHUP != 0 => {
                self.clients.remove(i);
            }
            // Its input ended (shutdown of its write side), it still reads our output.
            Ok(0) => {
                self.clients[i].reading = false;
                if self.once {
                    self.stdin = None;
                }
            }
            Err(_) => {
                self.clients.remove(i);
            }
            Ok(n) => {
                if let Some(s) = &self.stdin {
                    write_nowait(s, &buf[..n]);
                }
            }
        }
    }

    /// Output of the container: to every client, framed.
    pub(crate) fn output(&mut self, stream: &str, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let mut frame = Vec::with_capacity(data.len() + 5);
        frame.push(if stream == "stderr" { 2 } else { 1 });
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        frame.extend_from_slice(data);
        self.clients
            .retain_mut(|c| c.sock.write_all(&frame).is_ok());
    }
}

impl Drop for Attach {
    /// The container's output has ended: clients see the end of the stream.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Write what `f` takes without waiting, in pieces small enough that a pipe (or pty)
/// reported writable takes each whole; the rest is dropped.
fn write_nowait(mut f: &File, data: &[u8]) {
    for piece in data.chunks(512) {
        let mut p = super::PollFd {
            fd: f.as_raw_fd(),
            events: POLLOUT,
            revents: 0,
        };
        if unsafe { super::poll(&mut p, 1 as c_ulong, 0 as c_int) } <= 0 || p.revents & POLLOUT == 0
        {
            return;
        }
        if f.write_all(piece).is_err() {
            return;
        }
    }
}
