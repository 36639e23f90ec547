//! `--network pasta[:OPTION,…]`: user-mode networking through pasta (Debian's `passt`
//! package), podman 5's rootless default. pasta copies the host's addresses and routes
//! into the container's network namespace (`--config-net`), carries its traffic through
//! ordinary sockets of the caller (no privilege: an ordinary user's outbound connections),
//! and forwards published ports (`-p`) from the host into it (`-t`/`-u`), which is what
//! rootless `-p` needs: slirp4netns can only forward through its API socket, one port at a
//! time, after it started.
//!
//! pasta joins the container's namespace by a file (the persistent namespace file the
//! engine makes before the container, `--netns FILE`), not by the container's pid: it
//! drops its capabilities before joining, and the kernel lets a process without them open
//! /proc/PID/ns/* of a process that has more only with CAP_SYS_PTRACE (that is also how
//! podman runs it). Started without `--foreground`, pasta forks into the background once
//! the namespace is configured and its ports are bound, and its first process exits: 0
//! then means ready, anything else is a failure (a port in use, no usable interface) that
//! its log (DIR/pasta.log) explains.
//!
//! What husk always gives it: no port forwarding but the published ports (`-t none -u none`
//! unless `-p`), nothing forwarded from the container to the host's own ports (`-T none
//! -U none`), and the gateway address not mapped to the host's loopback (`--no-map-gw`): as
//! with slirp4netns, the host's loopback services stay out of the container's reach. DNS
//! goes to [`DNS`], which pasta maps to the host's resolver (`--dns-forward`). OPTIONS
//! after `pasta:` are passed on as they are (podman's form: `pasta:--mtu,1500`).
//!
//! UDP ports are not given to pasta but relayed by husk's forwarder ([`super::forward`],
//! from the host into the namespace's loopback): Debian's pasta (2023-03) forwards a UDP
//! port only where the host and container ports are the same (`-p 5353:53/udp` gets no
//! answer, measured), a limit of that version's UDP splicing.
//!
//! Its pid and start time go into DIR/pasta.pid, and whoever cleans up after the
//! container ends it with the namespace file, where slirp4netns is ended
//! ([`super::stop_slirp`] calls [`stop`]).

use crate::os::{IoContext, IoError};
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The container's network namespace, bound on a file in its directory while it is
/// connected (the spec joins it by this path).
pub const NETNS_FILE: &str = "pasta.netns";
/// The container's nameserver: pasta answers it with the host's first resolver (podman's
/// address), so a host whose resolver is on its loopback (systemd-resolved) works too.
pub const DNS: &str = "169.254.1.1";
/// The pid file of the container's pasta (with its start time, crate::os::write_pid_file).
pub const PID_FILE: &str = "pasta.pid";
/// What pasta itself writes (a bare pid), read once and replaced by [`PID_FILE`].
const RAW_PID_FILE: &str = "pasta.rawpid";
const LOG_FILE: &str = "pasta.log";

/// Starting pasta for a container.
#[derive(Debug, thiserror::Error)]
pub enum PastaError {
    #[error("--network pasta: pasta not found on PATH (install the passt package)")]
    Missing,
    #[error("running pasta: {0}")]
    Spawn(std::io::Error),
    /// What pasta said on its way out.
    #[error("pasta did not configure the network: {0}")]
    Failed(String),
    #[error("a network namespace for pasta: {0}")]
    Netns(std::io::Error),
    #[error(transparent)]
    Io(#[from] IoError),
}

/// One port pasta forwards from the host to the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    pub udp: bool,
    /// The host address to bind (None: every address).
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
}

/// The ports the container in `dir` publishes (container.json's `ports`), as pasta
/// forwards them. A host port of 0 (`-p 80`, `-P`) becomes a free one, picked here and
/// written back, since pasta binds exactly the ports it is given.
pub fn forwards_of(dir: &Path) -> Vec<Forward> {
    use super::ports::Proto;
    let Ok(mut r) = crate::record::Record::load(dir) else {
        return Vec::new();
    };
    let mut picked = false;
    for p in r.meta.ports.iter_mut().filter(|p| p.host_port == 0) {
        let ip = p.host_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let free = match p.protocol {
            Proto::Tcp => std::net::TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()),
            Proto::Udp => std::net::UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr()),
        };
        if let Ok(a) = free {
            p.host_port = a.port();
            picked = true;
        }
    }
    if picked {
        let _ = r.save();
    }
    r.meta
        .ports
        .iter()
        .map(|p| Forward {
            udp: p.protocol == Proto::Udp,
            host_ip: p.host_ip,
            host_port: p.host_port,
            container_port: p.container_port,
        })
        .collect()
}

/// `--network pasta[:OPTION,…]`'s options (None: not pasta).
pub fn parse(s: &str) -> Option<Vec<String>> {
    match s {
        "pasta" => Some(Vec::new()),
        _ => s.strip_prefix("pasta:").map(|o| {
            o.split(',')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        }),
    }
}

/// pasta's `-t`/`-u` spec of one forward: `[ADDRESS/]HOST_PORT[:CONTAINER_PORT]`.
fn spec(f: &Forward) -> String {
    let mut s = match f.host_ip {
        Some(ip) => format!("{ip}/{}", f.host_port),
        None => f.host_port.to_string(),
    };
    if f.container_port != f.host_port {
        s.push_str(&format!(":{}", f.container_port));
    }
    s
}

/// pasta's command line (after the program name).
pub fn args(netns: &Path, pid_file: &Path, forwards: &[Forward], extra: &[String]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--config-net".into(),
        "--quiet".into(),
        "--no-map-gw".into(),
        "--dns-forward".into(),
        DNS.into(),
        "-T".into(),
        "none".into(),
        "-U".into(),
        "none".into(),
    ];
    for (flag, udp) in [("-t", false), ("-u", true)] {
        let specs: Vec<String> = forwards.iter().filter(|f| f.udp == udp).map(spec).collect();
        a.push(flag.into());
        a.push(match specs.is_empty() {
            true => "none".into(),
            false => specs.join(","),
        });
    }
    a.extend(extra.iter().cloned());
    a.push("--pid".into());
    a.push(pid_file.display().to_string());
    a.push("--netns".into());
    a.push(netns.display().to_string());
    a
}

/// The namespace file of the container in `dir` (what its spec joins).
pub fn netns_file(dir: &Path) -> std::path::PathBuf {
    dir.join(NETNS_FILE)
}

/// Before the container is created: a new network namespace bound on its
/// [`netns_file`], connected through pasta, forwarding `forwards` (tcp by pasta, udp by
/// [`super::forward`]); returns once it is configured (pasta's pid in DIR/pasta.pid). On
/// failure nothing is left ([`stop`]).
pub fn connect(dir: &Path, forwards: &[Forward], extra: &[String]) -> Result<(), ConnectError> {
    let netns = netns_file(dir);
    super::netns::bind_new(&netns).map_err(PastaError::Netns)?;
    let (udp, tcp): (Vec<Forward>, Vec<Forward>) = forwards.iter().cloned().partition(|f| f.udp);
    let udp: Vec<super::ports::PortMapping> = udp
        .iter()
        .map(|f| super::ports::PortMapping {
            host_ip: f.host_ip,
            host_port: f.host_port,
            container_port: f.container_port,
            protocol: super::ports::Proto::Udp,
        })
        .collect();
    start(dir, &netns, &tcp, extra)
        .map_err(ConnectError::from)
        .and_then(|()| {
            super::forward::start(dir, &netns, &udp, IpAddr::from([127, 0, 0, 1]))
                .map_err(|e| ConnectError::Forward(Box::new(e)))
        })
        .inspect_err(|_| stop(dir))
}

/// Connecting a namespace through pasta: pasta's failure, or the udp relay's.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Pasta(#[from] PastaError),
    #[error(transparent)]
    Forward(Box<super::NetworkError>),
}

/// End the container's pasta, if it has one (and it is still that process), and remove its
/// namespace file.
pub fn stop(dir: &Path) {
    super::forward::stop(dir);
    crate::os::stop_pid_file(&dir.join(PID_FILE), libc::SIGTERM);
    super::netns::remove(&netns_file(dir));
}

/// Connect the network namespace bound on `netns` through pasta, forwarding `forwards`;
/// returns once it is configured (its pid in DIR/pasta.pid).
fn start(
    dir: &Path,
    netns: &Path,
    forwards: &[Forward],
    extra: &[String],
) -> Result<(), PastaError> {
    let log = dir.join(LOG_FILE);
    let log_file = std::fs::File::create(&log).ctx("creating", &log)?;
    let raw = dir.join(RAW_PID_FILE);
    let _ = std::fs::remove_file(&raw);
    let mut cmd = std::process::Command::new("pasta");
    cmd.args(args(netns, &raw, forwards, extra))
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().ctx("duplicating the fd of", &log)?)
        .stderr(log_file);
    unsafe {
        use std::os::unix::process::CommandExt;
        // Its own session: a terminal's signals to `husk run` are not for it.
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PastaError::Missing,
        _ => PastaError::Spawn(e),
    })?;
    // Its first process exits once the background one is ready.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => break None,
        }
    };
    let pid = std::fs::read_to_string(&raw)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let _ = std::fs::remove_file(&raw);
    match (status, pid) {
        (Some(s), Some(pid)) if s.success() => {
            crate::os::write_pid_file(&dir.join(PID_FILE), pid)?;
            Ok(())
        }
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(pid) = pid {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let mut said = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut said));
            // Its notices ("Don't run as root…", "Template interface…") are not the reason.
            let said: Vec<&str> = said
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("Failed to send")
                        && !l.starts_with("Don't run as root")
                })
                .collect();
            Err(PastaError::Failed(match said.is_empty() {
                true => "no output".to_string(),
                false => said.join("; "),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_after_the_colon_are_passed_on() {
        assert_eq!(parse("pasta"), Some(vec![]));
        assert_eq!(
            parse("pasta:--mtu,1500,-4"),
            Some(vec!["--mtu".into(), "1500".into(), "-4".into()])
        );
        assert_eq!(parse("slirp4netns"), None);
        assert_eq!(parse("pastafarian"), None);
    }

    #[test]
    fn only_published_ports_are_forwarded() {
        let a = args(Path::new("/ns"), Path::new("/p"), &[], &[]);
        assert_eq!(
            a.join(" "),
            "--config-net --quiet --no-map-gw --dns-forward 169.254.1.1 -T none -U none -t none -u none --pid /p --netns /ns"
        );
        let f = |udp, ip: Option<&str>, h, c| Forward {
            udp,
            host_ip: ip.map(|i| i.parse().unwrap()),
            host_port: h,
            container_port: c,
        };
        let a = args(
            Path::new("/ns"),
            Path::new("/p"),
            &[
                f(false, None, 8080, 80),
                f(false, Some("127.0.0.1"), 9000, 9000),
                f(true, Some("::1"), 5353, 53),
            ],
            &["--mtu".into(), "1500".into()],
        );
        assert_eq!(
            a.join(" "),
            "--config-net --quiet --no-map-gw --dns-forward 169.254.1.1 -T none -U none -t 8080:80,127.0.0.1/9000 \
             -u ::1/5353:53 --mtu 1500 --pid /p --netns /ns"
        );
    }
}
