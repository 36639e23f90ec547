//! Terminals: a pty from the container's own devpts, its master handed to the caller over
//! the `--console-socket` (SCM_RIGHTS, as containerd-shim and conmon expect).

use crate::process::SetupError;
use crate::rootfs::resolve::open_in_root;
use crate::sys;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Open a pty pair on the devpts instance mounted at `<root>/dev/pts`.
pub fn open_pty(root: &OwnedFd) -> Result<(OwnedFd, OwnedFd), SetupError> {
    let fail = |e| SetupError::new("opening /dev/pts/ptmx in the container", e);
    let master = open_in_root(
        root,
        Path::new("/dev/pts/ptmx"),
        libc::O_RDWR | libc::O_NOCTTY,
    )
    .map_err(fail)?;
    let mut unlock: libc::c_int = 0;
    sys::check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) })
        .map_err(fail)?;
    // TIOCGPTPEER opens the slave through the master: no path lookup that could be raced.
    let slave = sys::check(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })
    .map_err(fail)?;
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

pub fn set_size(tty: &OwnedFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    sys::check(unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// Control-message room for one fd (SCM_RIGHTS).
fn one_fd_space() -> Vec<u8> {
    vec![0u8; unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize]
}

/// A msghdr of one data buffer and room for one fd, for sendmsg and recvmsg alike.
fn one_fd_msg(iov: &mut libc::iovec, cbuf: &mut [u8]) -> libc::msghdr {
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.len();
    msg
}

/// Receive one fd sent with SCM_RIGHTS (as [`send_fd`] sends it) on socket `sock`, CLOEXEC.
pub fn recv_fd(sock: i32) -> io::Result<OwnedFd> {
    let mut data = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = one_fd_space();
    let mut msg = one_fd_msg(&mut iov, &mut cbuf);
    let n = loop {
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0
            || cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the container sent no file descriptor",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Send `fd` over the connected unix socket `socket`, with the payload runc uses.
pub fn send_fd(socket: &OwnedFd, fd: &OwnedFd) -> io::Result<()> {
    send_fd_named(socket, fd, b"/dev/ptmx")
}

/// Send `fd` over the connected unix socket `socket` (SCM_RIGHTS) with `payload` as data.
pub fn send_fd_named(socket: &OwnedFd, fd: &OwnedFd, payload: &[u8]) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let mut cbuf = one_fd_space();
    let msg = one_fd_msg(&mut iov, &mut cbuf);
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
    }
    sys::retry(|| {
        let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    })
}

/// Make the pty slave the controlling terminal and stdio of this (init) process.
pub fn make_controlling_stdio(slave: &OwnedFd) -> Result<(), SetupError> {
    let fail = |what: &'static str| move |e| SetupError::new(what, e);
    sys::check(unsafe { libc::setsid() }).map_err(fail("creating a session for the terminal"))?;
    sys::check(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) })
        .map_err(fail("making the pty the controlling terminal"))?;
    for target in 0..3 {
        sys::check(unsafe { libc::dup3(slave.as_raw_fd(), target, 0) })
            .map_err(fail("attaching stdio to the pty"))?;
    }
    Ok(())
}

/// How long a connect to, or a send over, a caller's socket may wait: a listener that
/// stopped accepting (full backlog) or reading must not hold create, start or exec forever.
pub const SOCKET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connect to a caller's unix socket (--console-socket, listenerPath, --pidfd-socket).
/// Both the connect and later sends give up after [`SOCKET_TIMEOUT`] (SO_SNDTIMEO, which
/// the kernel also applies to a unix connect waiting for room in the backlog).
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    let fd = sys::check(unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
    })?;
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: SOCKET_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    sys::check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    let r = sys::retry(|| {
        sys::check(unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len as libc::socklen_t,
            )
        })
    });
    match r {
        Ok(_) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "nothing accepted the connection within {}s",
                SOCKET_TIMEOUT.as_secs()
            ),
        )),
        Err(e) => Err(e),
    }
}
