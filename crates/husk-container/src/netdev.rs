//! `linux.netDevices`: move host network interfaces into the container's network namespace
//! (renamed on the way), with one rtnetlink RTM_NEWLINK request each — no `ip` binary.
//! And the loopback interface of a new network namespace, brought up as runc does.

use crate::sys;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// Stable kernel ABI values (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h).
const NETLINK_ROUTE: libc::c_int = 0;
const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;

/// Check an interface name as the kernel would (IFNAMSIZ, no '/', no spaces).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// Bring up `lo` in the caller's network namespace (a new one starts with it down). runc
/// does this for every new network namespace; engines and programs in the container rely
/// on 127.0.0.1 working (a pod's containers talk over it).
pub fn loopback_up() -> io::Result<()> {
    let fd = sys::check(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    sys::check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    sys::check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// Move host interface `host_name` into the namespace `netns`, named `new_name` there.
pub fn move_into(netns: &OwnedFd, host_name: &str, new_name: &str) -> io::Result<()> {
    let c = sys::cstr(host_name)?;
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    let msg = newlink_request(index as i32, netns.as_raw_fd(), new_name);
    let fd = sys::check(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_ROUTE,
        )
    })?;
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let n = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 1024];
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    ack_errno(&buf[..n as usize])
}

/// nlmsghdr + ifinfomsg{index} + IFLA_NET_NS_FD + IFLA_IFNAME, 4-byte aligned attributes.
fn newlink_request(index: i32, netns_fd: i32, new_name: &str) -> Vec<u8> {
    let mut body = Vec::new();
    // ifinfomsg: family, pad, type, index, flags, change
    body.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    body.extend_from_slice(&0u16.to_ne_bytes());
    body.extend_from_slice(&index.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    push_attr(&mut body, IFLA_NET_NS_FD, &netns_fd.to_ne_bytes());
    let mut name = new_name.as_bytes().to_vec();
    name.push(0);
    push_attr(&mut body, IFLA_IFNAME, &name);
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    msg.extend_from_slice(&body);
    msg
}

fn push_attr(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + (4 - len % 4) % 4, 0);
}

/// The kernel's answer: an NLMSG_ERROR whose error field is 0 (ack) or -errno.
fn ack_errno(reply: &[u8]) -> io::Result<()> {
    if reply.len() < 20 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short netlink reply",
        ));
    }
    let typ = u16::from_ne_bytes([reply[4], reply[5]]);
    if typ != NLMSG_ERROR {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected netlink reply",
        ));
    }
    match i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]) {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let m = newlink_request(7, 9, "eth1");
        // header 16 + ifinfomsg 16 + ns fd attr 8 + name attr (4 + 5 → 12)
        assert_eq!(m.len(), 52);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 52);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        assert_eq!(
            u16::from_ne_bytes(m[34..36].try_into().unwrap()),
            IFLA_NET_NS_FD
        );
        assert_eq!(&m[44..49], b"eth1\0");
        assert!(valid_name("eth0") && !valid_name("a/b") && !valid_name(&"x".repeat(16)));
    }
}
