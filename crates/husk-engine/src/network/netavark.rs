//! Running netavark (Debian's, podman's network stack) through its documented interface:
//! `netavark --config DIR --rootless=false --aardvark-binary PATH setup|teardown NETNS`
//! with the network options as one JSON document on stdin, and the result — or
//! `{"error": …}` — as one JSON document on stdout. netavark makes the bridge and the veth
//! pair, assigns the addresses husk picked, writes the firewall and NAT rules (husk writes
//! none) and starts aardvark-dns for networks with DNS; its runtime files (aardvark's
//! configuration, its pid file) live in the directory husk gives it, never podman's.
//!
//! Rootless, netavark runs inside the user's rootless network namespace
//! ([`super::rootless_netns`]), entered before it execs: that namespace is its "host", where
//! the bridge, the rules and aardvark-dns live; `--rootless=true` then, as podman does.

use super::NetworkError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where Debian (and Fedora) install them; then $PATH.
const DIRS: [&str; 2] = ["/usr/lib/podman", "/usr/libexec/podman"];

fn find(name: &str) -> Option<PathBuf> {
    DIRS.iter()
        .map(|d| Path::new(d).join(name))
        .chain(
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(name))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
        .find(|p| p.is_file())
}

pub struct Netavark {
    binary: PathBuf,
    aardvark: Option<PathBuf>,
    config: PathBuf,
    /// The namespace netavark runs in (None: ours).
    host_netns: Option<PathBuf>,
}

impl Netavark {
    /// netavark, keeping its runtime files in `config`.
    pub fn new(config: &Path) -> Result<Netavark, NetworkError> {
        let binary = find("netavark").ok_or(NetworkError::NetavarkMissing)?;
        Ok(Netavark {
            binary,
            aardvark: find("aardvark-dns"),
            config: config.to_path_buf(),
            host_netns: None,
        })
    }

    /// Run netavark inside the network namespace bound on `netns` (rootless: the user's
    /// rootless namespace).
    pub fn inside(mut self, netns: Option<&Path>) -> Netavark {
        self.host_netns = netns.map(Path::to_path_buf);
        self
    }

    fn run(
        &self,
        op: &'static str,
        netns: &Path,
        options: &serde_json::Value,
    ) -> Result<serde_json::Value, NetworkError> {
        std::fs::create_dir_all(&self.config).map_err(|e| NetworkError::Netavark {
            op,
            msg: format!("creating {}: {e}", self.config.display()),
        })?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--config")
            .arg(&self.config)
            .arg(format!("--rootless={}", self.host_netns.is_some()));
        // Opened here (close-on-exec), entered in the child between fork and exec: setns
        // is one system call.
        let ns = self
            .host_netns
            .as_ref()
            .map(|p| {
                std::fs::File::open(p).map_err(|e| NetworkError::Netavark {
                    op,
                    msg: format!("opening {}: {e}", p.display()),
                })
            })
            .transpose()?;
        if let Some(ns) = &ns {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let fd = ns.as_raw_fd();
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        if let Some(a) = &self.aardvark {
            cmd.arg("--aardvark-binary").arg(a);
        }
        // It runs iptables (and sysctl) by name: an ordinary user's PATH often lacks the
        // sbin directories where they are.
        let mut path = std::env::var_os("PATH").unwrap_or_default();
        for d in ["/usr/local/sbin", "/usr/sbin", "/sbin"] {
            if !std::env::split_paths(&path).any(|p| p == Path::new(d)) {
                path.push(format!(":{d}"));
            }
        }
        cmd.env("PATH", path);
        let mut child = cmd
            .arg(op)
            .arg(netns)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NetworkError::Netavark {
                op,
                msg: format!("running {}: {e}", self.binary.display()),
            })?;
        let input = serde_json::to_vec(options).unwrap();
        let _ = child.stdin.take().unwrap().write_all(&input);
        let out = child
            .wait_with_output()
            .map_err(|e| NetworkError::Netavark {
                op,
                msg: e.to_string(),
            })?;
        let v: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
        if out.status.success() {
            return Ok(v.unwrap_or(serde_json::Value::Null));
        }
        // Its error document, else what it said on stderr.
        let msg = v
            .as_ref()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_else(|| {
                let e = String::from_utf8_lossy(&out.stderr);
                let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
                if lines.is_empty() {
                    format!("exited with {}", out.status)
                } else {
                    lines.join("; ")
                }
            });
        Err(NetworkError::Netavark { op, msg })
    }

    /// Configure `netns` as `options` say; netavark's answer (per network: interfaces with
    /// their MAC and addresses, DNS servers and search domains).
    pub fn setup(
        &self,
        netns: &Path,
        options: &serde_json::Value,
    ) -> Result<serde_json::Value, NetworkError> {
        self.run("setup", netns, options)
    }

    /// Undo a [`Netavark::setup`] with the same options.
    pub fn teardown(&self, netns: &Path, options: &serde_json::Value) -> Result<(), NetworkError> {
        self.run("teardown", netns, options).map(|_| ())
    }
}
