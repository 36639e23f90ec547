//! Published ports of a rootless container on a bridge network: a small forwarding process
//! per container (what podman's rootlessport is to rootless podman, docker-proxy to docker).
//!
//! Why a process of our own: rootless, the bridge lives in the user's rootless network
//! namespace ([`super::rootless_netns`]), behind pasta, and netavark's DNAT rules there never
//! see a connection made to the host's port; pasta forwards only the ports it was started
//! with, and the rootless namespace's pasta outlives any one container. So husk binds the
//! host ports itself — in the caller's network namespace, where `-p` means them — and
//! relays each TCP connection and UDP flow to the container's address on the bridge.
//!
//! How: the listening sockets are bound by the engine (a port in use is the run's error,
//! before anything runs), then a child is forked that keeps them, closes every other fd
//! (locks included), enters the rootless namespace (setns: sockets it makes from then on
//! live there, the inherited listeners stay on the host) and relays, a thread per TCP
//! connection and per UDP peer (a UDP flow idle for [`UDP_IDLE`] is dropped). The engine is
//! single-threaded when it forks (networks.rs waits for that before a rootless bridge
//! setup with ports; pasta's are set up after `run` checks it, or in the monitor's fresh
//! helper), so the child may run any code. Its pid and start time are in DIR/portfwd.pid; [`stop`] ends it, called
//! by the network teardown that every cleaner runs.

use super::ports::{PortMapping, Proto};
use super::NetworkError;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PID_FILE: &str = "portfwd.pid";
/// How long a UDP flow without traffic either way keeps its socket.
const UDP_IDLE: Duration = Duration::from_secs(60);

enum Listener {
    Tcp(TcpListener, u16),
    Udp(UdpSocket, u16),
}

impl Listener {
    fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l, _) => l.as_raw_fd(),
            Listener::Udp(s, _) => s.as_raw_fd(),
        }
    }
}

/// Bind the host side of `ports` here and relay them, from the network namespace bound on
/// `netns`, to `target` (the container's address there). Returns once the relay runs.
pub fn start(
    dir: &Path,
    netns: &Path,
    ports: &[PortMapping],
    target: IpAddr,
) -> Result<(), NetworkError> {
    if ports.is_empty() {
        return Ok(());
    }
    let mut listeners = Vec::new();
    for m in ports {
        let ip = m.host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let addr = SocketAddr::new(ip, m.host_port);
        let in_use = |e: std::io::Error| NetworkError::PortInUse {
            port: format!(
                "{}{}/{}",
                m.host_ip.map(|i| format!("{i}:")).unwrap_or_default(),
                m.host_port,
                m.protocol
            ),
            why: e.to_string(),
        };
        listeners.push(match m.protocol {
            Proto::Tcp => Listener::Tcp(TcpListener::bind(addr).map_err(in_use)?, m.container_port),
            Proto::Udp => Listener::Udp(UdpSocket::bind(addr).map_err(in_use)?, m.container_port),
        });
    }
    let ns = std::fs::File::open(netns).map_err(NetworkError::Netns)?;
    let (ready_r, ready_w) = crate::os::pipe()?;
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(NetworkError::Netns(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(ready_r);
        let code = child(ns.as_fd().as_raw_fd(), ready_w, listeners, target);
        unsafe { libc::_exit(code) };
    }
    drop(ready_w);
    drop(listeners);
    // One byte once it is in the namespace and relaying; EOF if it failed.
    let mut b = [0u8; 1];
    let ok = std::fs::File::from(ready_r).read(&mut b).ok() == Some(1);
    if !ok {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(NetworkError::Netns(std::io::Error::other(
            "the port forwarder could not enter the rootless network namespace",
        )));
    }
    crate::os::write_pid_file(&dir.join(PID_FILE), pid)?;
    Ok(())
}

/// End the container's forwarder, if it has one (and it is still that process).
pub fn stop(dir: &Path) {
    crate::os::stop_pid_file(&dir.join(PID_FILE), libc::SIGKILL);
}

/// The forked child: never returns into the engine.
fn child(ns: RawFd, ready: OwnedFd, listeners: Vec<Listener>, target: IpAddr) -> i32 {
    // Our own session, stdio on /dev/null (a caller reading our parent's output must see
    // its end), and no fd but ours: an inherited lock would be held as long as we live.
    unsafe {
        libc::setsid();
        // Its name in ps (comm): what it is, not the command that started it.
        libc::prctl(libc::PR_SET_NAME, c"husk-portfwd".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
    }
    let mut keep: Vec<RawFd> = listeners.iter().map(Listener::fd).collect();
    keep.extend([ns, ready.as_raw_fd()]);
    close_all_but(&keep);
    if unsafe { libc::setns(ns, libc::CLONE_NEWNET) } != 0 {
        return 1;
    }
    unsafe { libc::close(ns) };
    let mut threads = Vec::new();
    for l in listeners {
        threads.push(std::thread::spawn(move || match l {
            Listener::Tcp(l, port) => relay_tcp(l, SocketAddr::new(target, port)),
            Listener::Udp(s, port) => relay_udp(s, SocketAddr::new(target, port)),
        }));
    }
    let _ = std::fs::File::from(ready).write_all(b"1");
    for t in threads {
        let _ = t.join();
    }
    0
}

/// Close every fd ≥ 3 not in `keep` (read from /proc/self/fd; allocating is fine: the
/// parent was single-threaded when it forked).
fn close_all_but(keep: &[RawFd]) {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        unsafe { libc::close(fd) };
    }
}

fn relay_tcp(l: TcpListener, to: SocketAddr) {
    for c in l.incoming() {
        let Ok(c) = c else {
            // Out of fds or memory: give the connections we have a moment to end.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        std::thread::spawn(move || {
            let Ok(s) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
                return;
            };
            let (Ok(c2), Ok(s2)) = (c.try_clone(), s.try_clone()) else {
                return;
            };
            let up = std::thread::spawn(move || pipe(c2, s2));
            pipe(s, c);
            let _ = up.join();
        });
    }
}

/// Copy until EOF, then pass the EOF on (half-close), as a TCP proxy must.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn relay_udp(host: UdpSocket, to: SocketAddr) {
    let host = Arc::new(host);
    // Peer → its socket toward the container (made in the rootless namespace).
    let flows: Arc<Mutex<std::collections::HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = host.recv_from(&mut buf) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let known = flows.lock().unwrap().get(&peer).cloned();
        let flow = match known {
            Some(f) => f,
            None => {
                let any: SocketAddr = match to {
                    SocketAddr::V4(_) => (IpAddr::from([0u8; 4]), 0).into(),
                    SocketAddr::V6(_) => (IpAddr::from([0u16; 8]), 0).into(),
                };
                let Ok(s) = UdpSocket::bind(any) else {
                    continue;
                };
                if s.connect(to).is_err() || s.set_read_timeout(Some(UDP_IDLE)).is_err() {
                    continue;
                }
                let s = Arc::new(s);
                flows.lock().unwrap().insert(peer, s.clone());
                let (s2, host2, flows2) = (s.clone(), host.clone(), flows.clone());
                std::thread::spawn(move || {
                    let mut b = vec![0u8; 65536];
                    // Replies go back to the peer from the published port, until idle.
                    while let Ok(n) = s2.recv(&mut b) {
                        let _ = host2.send_to(&b[..n], peer);
                    }
                    flows2.lock().unwrap().remove(&peer);
                });
                s
            }
        };
        let _ = flow.send(&buf[..n]);
    }
}
