//! The unprivileged users rootless tests run as, made by scripts/rootless-user.sh (as root)
//! once per test binary, and commands run as them through setpriv with a clean environment.
//! Shared with husk's tests (`#[path]`).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The first subordinate id of husk-rootless (65536 of them).
pub const SUB_START: u32 = 1_000_000;

/// (husk-rootless with subordinate ids, husk-nosubid without).
pub fn users() -> &'static (User, User) {
    static USERS: OnceLock<(User, User)> = OnceLock::new();
    USERS.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rootless-user.sh");
        let out = Command::new(&script).output().unwrap();
        assert!(
            out.status.success(),
            "rootless-user.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut users = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                User {
                    name: f[0].to_string(),
                    uid: f[1].parse().unwrap(),
                    gid: f[2].parse().unwrap(),
                }
            })
            .collect::<Vec<_>>()
            .into_iter();
        (users.next().unwrap(), users.next().unwrap())
    })
}

impl User {
    pub fn xdg_runtime_dir(&self) -> String {
        format!("/run/user/{}", self.uid)
    }

    /// `env -i PATH=path HOME=… XDG_RUNTIME_DIR=… EXTRA… PROGRAM` as this user; stdin closed.
    pub fn command(&self, path: &str, extra_env: &[String], program: &str) -> Command {
        // util-linux's, also where busybox's (without --reuid) comes first in PATH (the VM).
        let mut c = Command::new("/usr/bin/setpriv");
        c.args(["--reuid", &self.uid.to_string()])
            .args(["--regid", &self.gid.to_string(), "--init-groups", "--"])
            .args(["env", "-i", &format!("PATH={path}")])
            .arg(format!("HOME=/home/{}", self.name))
            .arg(format!("XDG_RUNTIME_DIR={}", self.xdg_runtime_dir()))
            .args(extra_env)
            .arg(program)
            .stdin(Stdio::null());
        c
    }
}
