//! [`Engine::run`]: a validated [`ContainerConfig`] executed: pull if needed, the rootfs
//! (overlay of the image's layers, or a copy), the bundle's config.json and the record,
//! then the container under a monitor (detached) or in the foreground through
//! husk-container. Each step's undo is [`Made`]: a failure leaves nothing behind.

use crate::attach::{self, Tty};
use crate::config::ContainerConfig;
use crate::engine::Engine;
use crate::error::{During, Error, Result, RunError};
use crate::made::Made;
use crate::network::Network;
use crate::os::{IoContext, IoError};
use crate::record::{lock_names, name_taken, state_root};
use crate::spec_from_image::{self, flags};
use crate::{embedded, rootfs};
use husk_container::ContainerBuilder;
use husk_image::config::{Overrides, RootfsView};
use husk_image::pull;
use std::io::Read;
use std::sync::Arc;

fn new_id() -> Result<String, IoError> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .ctx("reading", "/dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// husk-container's build must run single-threaded (its children continue on copies of
/// this stack). The pull's download threads are joined through a scope, which returns a
/// moment before the OS threads are gone: wait for them to disappear.
fn single_threaded() -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let n = std::fs::read_dir("/proc/self/task")
            .map(|rd| rd.count())
            .ctx("reading", "/proc/self/task")?;
        if n <= 1 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(RunError::Threads(n).into());
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// How [`Engine::run`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Detached: the container runs under its monitor.
    Started { id: String },
    /// Foreground: the container's process exited with `code`.
    Exited { id: String, code: i32 },
}

impl Engine {
    /// Run a container: pull its image if it is not in the store, prepare the rootfs, write
    /// the bundle and the record, then start it under a monitor (`detach`) or run it in
    /// the foreground with our stdio until it exits.
    pub fn run(&self, c: &ContainerConfig) -> Result<RunOutcome> {
        self.run_with_progress(c, Arc::new(pull::NoProgress))
    }

    /// [`Engine::run`], telling `progress` about the image's pull when it is not in the
    /// store (what `husk pull` shows).
    pub fn run_with_progress(
        &self,
        c: &ContainerConfig,
        progress: Arc<dyn pull::Progress>,
    ) -> Result<RunOutcome> {
        self.run_inner(c, progress, false).during("run", &c.image)
    }

    /// `create`: everything `run` does but start the container; returns its id. Its rootfs
    /// is unmounted again until [`Engine::start`] (nothing stays mounted for a container
    /// that does not run), and it has no runner until then. `progress` as for
    /// [`Engine::run_with_progress`].
    pub fn create(&self, c: &ContainerConfig, progress: Arc<dyn pull::Progress>) -> Result<String> {
        match self
            .run_inner(c, progress, true)
            .during("create", &c.image)?
        {
            RunOutcome::Started { id } | RunOutcome::Exited { id, .. } => Ok(id),
        }
    }

    fn run_inner(
        &self,
        a: &ContainerConfig,
        progress: Arc<dyn pull::Progress>,
        create_only: bool,
    ) -> Result<RunOutcome> {
        let store = self.store()?;
        let init = a
            .init
            .then(|| embedded::init_binary(&self.root))
            .transpose()?;
        let rec = self.image_or_pull(&store, &a.image, &a.registry, progress)?;
        let cfgb = store.read_blob(&rec.config_digest)?;
        let cfg = pull::parse_config(&cfgb)?;

        let containers = crate::record::containers_dir(&self.root);
        // Held until container.json is written: two runs cannot both take one name.
        let names_lock = lock_names(&containers)?;
        if let Some(n) = &a.name {
            if name_taken(&containers, n) {
                return Err(RunError::NameInUse(n.clone()).into());
            }
        }
        let id = new_id()?;
        let short = id[..12].to_string();
        let name = a.name.clone().unwrap_or_else(|| short.clone());
        let dir = containers.join(&id);
        std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
        let mut made = Made {
            dir: dir.clone(),
            overlay: None,
            keep_dir: false,
        };
        let ov = rootfs::prepare(&dir, &store, &rec, &*self.warn)?;
        let rootfs = ov.rootfs.clone();
        made.overlay = Some(ov);

        let overrides = Overrides {
            user: a.process.user.clone(),
            entrypoint: a
                .entrypoint
                .clone()
                .map(|e| if e.is_empty() { vec![] } else { vec![e] }),
            cmd: (!a.cmd.is_empty()).then(|| a.cmd.clone()),
            env: a.process.env.clone(),
            workdir: a.process.workdir.clone(),
        };
        let pv =
            husk_image::config::process_from_config(&cfg, &RootfsView::Dir(rootfs), &overrides)?;
        // The image's entrypoint or --entrypoint's: the first args of the process.
        let entrypoint_len = match &overrides.entrypoint {
            Some(e) => e.len(),
            None => cfg
                .config()
                .as_ref()
                .and_then(|c| c.entrypoint().as_ref())
                .map_or(0, |e| e.len()),
        }
        .min(pv.args.len());
        let spec = spec_from_image::spec(
            &pv,
            &spec_from_image::Options {
                hostname: a.hostname.clone().unwrap_or_else(|| name.clone()),
                host_network: !a.network.own_namespace(),
                volumes: a.volumes.clone(),
                read_only: a.read_only,
                memory: a.memory,
                pids_limit: a.pids_limit,
                cgroups_path: format!("/husk-engine/{id}"),
                tmpfs: a.tmpfs.clone(),
                cpu_quota: a.cpu_quota,
                caps: a.caps.clone(),
                added_caps: a.added_caps.clone(),
                privileged: a.privileged,
                // husk run sets no_new_privs unless asked not to (Docker and podman leave it
                // off); --privileged turns it off unless it is asked for.
                no_new_privileges: a.no_new_privileges,
                seccomp: a.seccomp.clone(),
                init,
                terminal: a.process.tty,
            },
        );
        // What `husk stop` sends (a number): --stop-signal, else the image's StopSignal,
        // else SIGTERM.
        let stop_signal = a
            .stop_signal
            .or_else(|| {
                pv.stop_signal
                    .as_deref()
                    .and_then(|s| flags::signal(s).ok())
            })
            .unwrap_or(libc::SIGTERM);
        let write = |file: &str, v: &serde_json::Value| {
            std::fs::write(dir.join(file), serde_json::to_vec_pretty(v).unwrap())
                .ctx("writing", dir.join(file))
        };
        write("config.json", &spec)?;
        let mut meta = serde_json::json!({
            "id": id,
            "name": name,
            "image": a.image,
            "image_id": rec.config_digest.hex(),
            "created": husk_oci::time::rfc3339_now(),
            "exit_code": null,
            "stop_signal": stop_signal,
            "restart": a.restart.to_string(),
            "network": a.network.to_string(),
            "remove": a.remove,
            // Us until the container is handed to a monitor (see record::runner).
            "runner": crate::record::runner(std::process::id() as i32),
            // What inspect shows as docker's Config and HostConfig beyond the spec: the
            // entrypoint/cmd split of the process's args, the options as given.
            "entrypoint": pv.args[..entrypoint_len].to_vec(),
            "cmd": pv.args[entrypoint_len..].to_vec(),
            "user": a.process.user.clone().or_else(|| {
                cfg.config().as_ref().and_then(|c| c.user().clone())
            }),
            "interactive": a.process.interactive,
            "labels": pv.labels,
            "binds": a.volumes.iter().map(|v| {
                format!("{}:{}{}", v.source, v.destination, if v.readonly { ":ro" } else { "" })
            }).collect::<Vec<_>>(),
            "privileged": a.privileged,
            "init": a.init,
            "cap_add": a.added_caps,
        });
        if create_only {
            // No runner to die: nothing for settle_orphan to settle until `start`.
            meta["runner"] = serde_json::Value::Null;
            meta[crate::record::NEVER_STARTED] = true.into();
        }
        write("container.json", &meta)?;
        drop(names_lock);
        let attrs = [("image", a.image.as_str()), ("name", name.as_str())];
        crate::events::emit(&self.root, "container", "create", &id, &attrs);
        if create_only {
            if let Some(mut o) = made.overlay.take() {
                o.unmount()?;
            }
            made.keep_dir = true;
            return Ok(RunOutcome::Started { id });
        }

        single_threaded()?;
        if a.detach {
            crate::monitor::detach(&self.root, &id, made, a.remove)?;
            return Ok(RunOutcome::Started { id });
        }
        if !a.process.interactive && !a.process.tty {
            attach::stdin_from_dev_null()?;
        }
        let tty = a.process.tty.then(Tty::new).transpose()?;
        let mut builder = ContainerBuilder::new(id.clone()).root_path(state_root());
        if let Some(t) = &tty {
            builder = builder.console_socket(t.socket());
        }
        // Rootless on a v1 host means no cgroup (limits asked for are an error): not worth a
        // warning on every run.
        let mut c = builder.as_init(&dir).build_with_warnings(&mut |_| {})?;
        // For `ps` and for settling the container should we die first (record::runner).
        meta["pid"] = c.pid().into();
        let _ = write("container.json", &meta);
        if tty.is_none() {
            attach::forward_signals(c.pid());
        }
        let started = match a.network {
            Network::Slirp { host_loopback } => {
                crate::network::start_slirp(&dir, c.pid(), host_loopback).map_err(Error::from)
            }
            _ => Ok(()),
        }
        .and_then(|()| Ok(c.start()?));
        if let Err(e) = started {
            let _ = c.kill(libc::SIGKILL, true);
            let _ = c.wait();
            let _ = c.delete(true);
            return Err(e);
        }
        crate::events::emit(&self.root, "container", "start", &id, &attrs);
        let waited = match &tty {
            Some(t) => t.attach(c.pid()).map_err(Error::from),
            None => c.wait().map_err(Error::from),
        };
        attach::stop_forwarding();
        let deleted = c.delete(true);
        crate::network::stop_slirp(&dir);
        let code = waited?;
        let exit = code.to_string();
        let died = [attrs[0], attrs[1], ("exitCode", exit.as_str())];
        crate::events::emit(&self.root, "container", "die", &id, &died);
        deleted.map_err(RunError::Delete)?;
        if let Some(mut o) = made.overlay.take() {
            o.unmount()?;
        }
        if !a.remove {
            meta["exit_code"] = code.into();
            meta["finished"] = husk_oci::time::rfc3339_now().into();
            write("container.json", &meta)?;
            made.keep_dir = true;
        } else {
            crate::events::emit(&self.root, "container", "destroy", &id, &attrs);
        }
        Ok(RunOutcome::Exited { id, code })
    }
}
