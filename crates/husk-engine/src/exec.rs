//! [`Engine::exec`]: another process in a running container, with the container's process
//! settings (env, user, cwd from the image and `run`) changed by the caller's options.

use crate::attach::{self, Tty};
use crate::config::ProcessOptions;
use crate::engine::Engine;
use crate::error::{During, ExecError, Result};
use crate::record::{find, state_root};
use husk_oci::Status;
use std::path::{Path, PathBuf};

impl Engine {
    /// Run `cmd` in the running container `what` (name, id or id prefix) with our stdio
    /// (or a pty with `tty`); Ok(its exit code).
    pub fn exec(&self, what: &str, cmd: &[String], o: &ProcessOptions) -> Result<i32> {
        exec(&self.root, what, cmd, o).during("exec", what)
    }
}

fn exec(root: &Path, what: &str, cmd: &[String], a: &ProcessOptions) -> Result<i32> {
    let r = find(root, what)?;
    let c = r
        .runtime()
        .filter(|c| c.status() == Status::Running)
        .ok_or(ExecError::NotRunning(r.status()))?;
    let mut p = c.config_process()?;
    p.set_args(Some(cmd.to_vec()));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        let key = kv.split('=').next().unwrap_or_default();
        if key.is_empty() {
            return Err(ExecError::Env(kv.clone()).into());
        }
        // docker's `-e KEY`: husk's own value, left out when husk has none.
        let kv = match kv.contains('=') {
            true => kv.clone(),
            false => match std::env::var(key) {
                Ok(v) => format!("{key}={v}"),
                Err(_) => continue,
            },
        };
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv);
    }
    p.set_env(Some(env));
    if let Some(w) = &a.workdir {
        if !w.starts_with('/') {
            return Err(ExecError::Workdir(w.clone()).into());
        }
        p.set_cwd(PathBuf::from(w));
    }
    if let Some(u) = &a.user {
        let view = husk_image::config::RootfsView::Dir(r.dir.join("rootfs"));
        let ru = husk_image::config::resolve_user(&view, u).map_err(|source| ExecError::User {
            user: u.clone(),
            source,
        })?;
        let mut user = p.user().clone();
        user.set_uid(ru.uid);
        user.set_gid(ru.gid);
        user.set_additional_gids((!ru.additional_gids.is_empty()).then_some(ru.additional_gids));
        p.set_user(user);
    }
    if !a.interactive && !a.tty {
        attach::stdin_from_dev_null()?;
    }
    p.set_terminal(Some(a.tty));
    let tty = a.tty.then(Tty::new).transpose()?;
    let mut b = husk_container::ContainerBuilder::new(r.id().to_string()).root_path(state_root());
    if let Some(t) = &tty {
        b = b.console_socket(t.socket());
    }
    let t = b.as_tenant().process(p).build()?;
    match &tty {
        Some(tty) => Ok(tty.attach(t.pid())?),
        None => {
            attach::forward_signals(t.pid());
            Ok(t.wait()?)
        }
    }
}
