//! The exec gate: how a created container waits for `start` with no husk process alive.
//!
//! `create` binds a listening unix socket `exec.sock` in the container's state dir; init
//! inherits it and, once set up, blocks in accept(). `start` connects and sends one byte;
//! init execs the user's process, which closes the (close-on-exec) connection: `start` sees
//! EOF on success, or init's error text if execve failed.

use crate::sys;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

pub const SOCKET_NAME: &str = "exec.sock";

/// Init → `start`: all that could fail before execve went well, and execve may wait on a
/// seccomp listener: stop waiting for EOF. (Error texts never start with a NUL.)
pub const EXEC_PENDING: u8 = 0;

fn sockaddr(dir_fd: RawFd) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // Through the state dir's fd, so that long --root paths never exceed sun_path's 108 bytes.
    let path = format!("/proc/self/fd/{dir_fd}/{SOCKET_NAME}");
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= addr.sun_path.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(path.bytes()) {
        *d = s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + path.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

fn socket() -> io::Result<OwnedFd> {
    let fd = sys::check(unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Bind and listen on `exec.sock` inside the directory `dir_fd`.
pub fn listen(dir_fd: &OwnedFd) -> io::Result<OwnedFd> {
    let sock = socket()?;
    let (addr, len) = sockaddr(dir_fd.as_raw_fd())?;
    sys::check(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    sys::check(unsafe { libc::listen(sock.as_raw_fd(), 1) })?;
    Ok(sock)
}

/// In init: block until `start` connects and asks to go; returns the connection, which the
/// exec will close (or which carries the exec error back).
pub fn wait_for_start(listener: &OwnedFd) -> io::Result<UnixStream> {
    loop {
        let fd = sys::retry(|| {
            sys::check(unsafe {
                libc::accept4(
                    listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            })
        })?;
        let mut conn = unsafe { UnixStream::from_raw_fd(fd) };
        let mut b = [0u8; 1];
        // A connection that closes without the byte (e.g. a `state` probe) is not a start.
        if matches!(conn.read(&mut b), Ok(1)) {
            return Ok(conn);
        }
    }
}

/// In `start`: release the init waiting in the state dir `dir_fd`. Returns init's error text
/// when its exec failed.
pub fn start(dir_fd: &OwnedFd) -> io::Result<Result<(), String>> {
    let sock = socket()?;
    let (addr, len) = sockaddr(dir_fd.as_raw_fd())?;
    sys::retry(|| {
        sys::check(unsafe {
            libc::connect(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        })
    })?;
    // Connected, the gate is used up: unlink it before init is released, so that a caller
    // killed after that (the user's process already running, its output already out) never
    // leaves a running container whose state says "created" (the socket's presence).
    let name = std::ffi::CString::new(SOCKET_NAME).expect("no NUL in the socket name");
    unsafe { libc::unlinkat(dir_fd.as_raw_fd(), name.as_ptr(), 0) };
    let mut conn = UnixStream::from(sock);
    conn.write_all(b"s")?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = sys::retry(|| conn.read(&mut buf))?;
        if n == 0 || (reply.is_empty() && buf[0] == EXEC_PENDING) {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Ok(match reply.is_empty() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&reply).into_owned()),
    })
}
