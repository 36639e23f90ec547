//! [`Engine::run`]: a validated [`ContainerConfig`] executed: pull if needed, the rootfs
//! (overlay of the image's layers, or a copy), the bundle's config.json and the record,
//! then the container under a monitor (detached) or in the foreground through
//! husk-container. Each step's undo is [`Made`]: a failure leaves nothing behind.

use crate::attach::{self, Tty};
use crate::config::ContainerConfig;
use crate::engine::Engine;
use crate::error::{During, Error, Result, RunError};
use crate::host_config::{self, NsMode, PullPolicy};
use crate::images::PullRequest;
use crate::joins;
use crate::made::Made;
use crate::network::Network;
use crate::os::{IoContext, IoError};
use crate::pod::Membership;
use crate::record::{lock_names, name_taken, state_root, ContainerMeta, Record, Runner, Timestamp};
use crate::spec_from_image::{self, flags, flags::Userns};
use crate::{embedded, rootfs};
use husk_container::ContainerBuilder;
use husk_image::config::{Overrides, RootfsView};
use husk_image::pull;
use husk_image::store::{ImageRecord, Store};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

pub(crate) fn new_id() -> Result<String, IoError> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .ctx("reading", "/dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// husk-container's build must run single-threaded (its children continue on copies of
/// this stack). The pull's download threads are joined through a scope, which returns a
/// moment before the OS threads are gone: wait for them to disappear.
pub(crate) fn single_threaded() -> Result<()> {
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

/// `--cidfile`: the id written once the container exists, removed again when the run
/// fails before the container started (nothing is left behind).
struct CidFile(Option<std::path::PathBuf>);

impl CidFile {
    fn write(path: Option<&Path>, id: &str) -> Result<CidFile, crate::os::IoError> {
        if let Some(p) = path {
            // create_new: another run that raced us to the same file keeps it.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .and_then(|mut f| std::io::Write::write_all(&mut f, id.as_bytes()))
                .ctx("writing the --cidfile", p)?;
        }
        Ok(CidFile(path.map(Path::to_path_buf)))
    }

    fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `--pid|--ipc|--network container:X` and a pod's namespaces: what to take from which
/// container.
fn joins_asked(a: &ContainerConfig, pod: Option<&Membership>) -> Vec<(&'static str, String)> {
    let mut wants = Vec::new();
    if let Some(p) = pod {
        for kind in ["network", "ipc", "uts"] {
            wants.push((kind, p.infra_id.clone()));
        }
    }
    for (kind, mode) in [("pid", &a.host.pid), ("ipc", &a.host.ipc)] {
        if let NsMode::Container(name) = mode {
            wants.push((kind, name.clone()));
        }
    }
    if let Network::Container(name) = &a.network {
        wants.push(("network", name.clone()));
    }
    wants
}

/// `--group-add`'s groups as ids: numbers as they are, names from the image's /etc/group.
fn group_ids(root: &RootfsView, groups: &[String]) -> Result<Vec<u32>> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let text = husk_image::config::read_image_file(root, "/etc/group")?.unwrap_or_default();
    groups
        .iter()
        .map(|g| {
            g.parse::<u32>()
                .ok()
                .or_else(|| {
                    text.lines().find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 3 && f[0] == g)
                            .then(|| f[2].parse().ok())
                            .flatten()
                    })
                })
                .ok_or_else(|| RunError::NoGroup(g.clone()).into())
        })
        .collect()
}

/// A bind as docker's HostConfig.Binds shows it: `SRC:DST[:ro][,PROPAGATION]`, the
/// propagation only when it is not the default rprivate.
fn bind_string(v: &spec_from_image::Volume) -> String {
    let mut opts = Vec::new();
    if v.readonly {
        opts.push("ro");
    }
    if v.propagation != "rprivate" {
        opts.push(&v.propagation);
    }
    match opts.is_empty() {
        true => format!("{}:{}", v.source, v.destination),
        false => format!("{}:{}:{}", v.source, v.destination, opts.join(",")),
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
    /// The image `run` uses, as `--pull` says: the store's (pulled when missing), the
    /// registry's always, or the store's only.
    fn image_for_run(
        &self,
        store: &Store,
        a: &ContainerConfig,
        progress: Arc<dyn pull::Progress>,
    ) -> Result<ImageRecord> {
        let pull = || {
            self.pull(
                &a.image,
                &PullRequest {
                    platform: a.host.platform.clone(),
                    registry: a.registry.clone(),
                    progress: progress.clone(),
                    ..Default::default()
                },
            )
        };
        match a.host.pull {
            PullPolicy::Always => pull(),
            PullPolicy::Never => store
                .resolve(&a.image, &self.default_registry)
                .map_err(|e| RunError::NotLocal(e).into()),
            PullPolicy::Missing if a.host.platform.is_some() => {
                match store.resolve(&a.image, &self.default_registry) {
                    Ok(r) => Ok(r),
                    Err(_) => pull(),
                }
            }
            PullPolicy::Missing => self.image_or_pull(store, &a.image, &a.registry, progress),
        }
    }

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
        let rec = self.image_for_run(&store, a, progress)?;
        let cfgb = store.read_blob(&rec.config_digest)?;
        let cfg = pull::parse_config(&cfgb)?;

        // The pod's infra runs before its namespaces are looked up.
        let pod = a.pod.as_deref().map(|p| self.pod_to_join(p)).transpose()?;
        let containers = crate::record::containers_dir(&self.root);
        // Held until container.json is written: two runs cannot both take one name.
        let names_lock = lock_names(&containers)?;
        if let Some(n) = &a.name {
            if name_taken(&containers, n) {
                return Err(RunError::NameInUse(n.clone()).into());
            }
        }
        // Networks that do not exist are refused at create too, before anything is made.
        if a.network == Network::Bridge {
            self.check_networks(&a.networks)?;
        }
        let joined = joins::resolve(&self.root, &joins_asked(a, pod.as_ref()))?;
        // A namespace joined by path (another container's, pasta's or the bridge network's
        // netns file) makes init the runtime's grandchild.
        let joins = !joined.is_empty()
            || matches!(a.network, Network::Pasta(_))
            || a.network == Network::Bridge;
        let id = new_id()?;
        let short = id[..12].to_string();
        let name = a.name.clone().unwrap_or_else(|| short.clone());
        // The host's own name when its UTS namespace is shared (as docker).
        let hostname = match a.host.uts {
            // A pod's: its name (the infra's hostname).
            NsMode::Private if pod.is_some() => pod.as_ref().unwrap().hostname.clone(),
            NsMode::Private => a.hostname.clone().unwrap_or_else(|| name.clone()),
            _ => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
        };
        let dir = containers.join(&id);
        std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
        let mut made = Made {
            dir: dir.clone(),
            overlay: None,
            keep_dir: false,
            volumes: Vec::new(),
        };
        crate::writable::prepare(&dir, &id, a.writable)?;
        // --userns=auto: the container's own ids, and the layers seen through them (a user
        // namespace holding the map, for idmapped mounts). keep-id: the user's own ids
        // inside its rootless namespace, the layers copied (see keep_id.rs).
        let (idmap, keep_id) = match a.userns {
            Userns::Auto { size } => (
                Some(crate::userns::allocate(&self.root, &id, size)?.into()),
                None,
            ),
            Userns::Host => (None, None),
            Userns::KeepId { uid, gid } => {
                let k = crate::keep_id::keep_id(uid, gid)?;
                (Some(k.mapping.clone()), Some(k))
            }
        };
        let ns = match (&idmap, &keep_id) {
            (Some(m), None) => Some(
                crate::userns::namespace_fd(m)
                    .map(|fd| (m.clone(), fd))
                    .map_err(crate::userns::UsernsError::from)?,
            ),
            _ => None,
        };
        let mapped = match &keep_id {
            Some(k) => Some(rootfs::Idmapped {
                map: k.mapping.clone(),
                userns: None,
            }),
            None => rootfs::Idmapped::of(&ns),
        };
        // --rm's writable layer dies with the run (not `create`'s: mounted again at start).
        let transient = a.remove && !create_only;
        let ov = rootfs::prepare(&dir, &store, &rec, mapped.as_ref(), &*self.warn, transient)?;
        let rootfs = ov.rootfs.clone();
        made.overlay = Some(ov);
        if let Some(k) = &keep_id {
            let image_workdir = cfg.config().as_ref().and_then(|c| c.working_dir().clone());
            crate::keep_id::add_user_for(&rootfs, k, a, image_workdir.as_deref())?;
        }
        // -u, else keep-id's own ids, else the image's USER.
        let user = a
            .process
            .user
            .clone()
            .or_else(|| keep_id.as_ref().map(|k| k.user()));
        let etc = crate::networks::EtcRequest {
            hostname: hostname.clone(),
            name: name.clone(),
            extra_hosts: a.host.extra_hosts.clone(),
            dns: a.host.dns.clone(),
            dns_search: a.host.dns_search.clone(),
        };
        // -p's ports, and with -P those the image exposes.
        let mut ports = a.ports.clone();
        if a.publish_all {
            let exposed = cfg
                .config()
                .as_ref()
                .and_then(|c| c.exposed_ports().clone())
                .unwrap_or_default();
            let more = crate::network::ports::exposed(&exposed, &ports);
            ports.extend(more);
        }
        // The network namespace, addresses and ports before the container: its spec joins
        // the namespace by path. `create` leaves that to `start`.
        if create_only {
            self.write_etc(&dir, &a.network, &etc, None)?;
        } else {
            self.connect_container(&dir, &id, &a.network, &a.networks, &ports, &etc)?;
        }
        joins::share_etc_files(&dir, &joined)?;
        let group_ids = group_ids(&RootfsView::Dir(rootfs.clone()), &a.host.group_add)?;
        // docker's: HOSTNAME, TERM with a terminal, and podman's `container` (what systemd
        // and others read to know they run in a container); -e and the image may change them.
        let mut env = vec![format!("HOSTNAME={hostname}"), "container=husk".to_string()];
        if a.process.tty {
            env.push("TERM=xterm".into());
        }
        env.extend(a.process.env.iter().cloned());

        let overrides = Overrides {
            user: user.clone(),
            entrypoint: a
                .entrypoint
                .clone()
                .map(|e| if e.is_empty() { vec![] } else { vec![e] }),
            cmd: (!a.cmd.is_empty()).then(|| a.cmd.clone()),
            env,
            workdir: a.process.workdir.clone(),
        };
        let pv = husk_image::config::process_from_config(
            &cfg,
            &RootfsView::Dir(rootfs.clone()),
            &overrides,
        )?;
        // Volumes, named and anonymous (the image's VOLUME paths no other mount covers),
        // filled from the image: the rootfs is mounted, the names lock is held.
        let taken: Vec<String> = a
            .volumes
            .iter()
            .map(|v| v.destination.clone())
            .chain(a.tmpfs.iter().map(|t| t.destination.clone()))
            .collect();
        let attached = crate::volumes::attach::attach(
            &self.root,
            &rootfs,
            &a.volume_mounts,
            &pv.volumes,
            &taken,
        )?;
        // Until the container starts, a failure removes every volume this run made.
        made.volumes = attached.made.clone();
        let anonymous = crate::volumes::anonymous_of(&attached.records);
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
        let apparmor_profile = crate::apparmor::prepare(&a.apparmor, a.privileged)?;
        let mut spec = spec_from_image::spec(
            &pv,
            &spec_from_image::Options {
                hostname: hostname.clone(),
                host_network: !a.network.own_namespace(),
                volumes: a.volumes.iter().chain(&attached.binds).cloned().collect(),
                read_only: a.read_only,
                memory: a.memory,
                pids_limit: a.pids_limit,
                cgroups_path: crate::cgroup_place::cgroups_path(
                    self.cgroup_manager,
                    &id,
                    &*self.warn,
                ),
                tmpfs: a.tmpfs.iter().chain(&attached.tmpfs).cloned().collect(),
                cpu_quota: a.cpu_quota,
                caps: a.caps.clone(),
                added_caps: a.added_caps.clone(),
                privileged: a.privileged,
                // husk run sets no_new_privs unless asked not to (Docker and podman leave it
                // off); --privileged turns it off unless it is asked for.
                no_new_privileges: a.no_new_privileges,
                seccomp: a.seccomp.clone(),
                apparmor_profile,
                init,
                terminal: a.process.tty,
                // A rootless user cannot mount cgroup v1 hierarchies, nor has it a cgroup of
                // its own on v1: the host's view stays there. On v2 its cgroup (or the
                // engine's, without delegation) is the namespace's root, as for root.
                cgroupns: a.host.cgroupns == NsMode::Private
                    && (!husk_container::rootless::is_unprivileged()
                        || crate::cgroup_place::on_v2()),
                etc_dir: Some(dir.clone()),
                idmap,
            },
        );
        let mut devices = a.host.devices.clone();
        if a.privileged {
            devices.extend(host_config::host_devices());
        }
        spec_from_image::host::apply(
            &mut spec,
            &a.host,
            &spec_from_image::host::Resolved {
                joined: joined
                    .iter()
                    .map(|j| (j.kind, j.path.clone()))
                    .chain(matches!(a.network, Network::Pasta(_)).then(|| {
                        let ns = crate::network::pasta::netns_file(&dir);
                        ("network", ns.display().to_string())
                    }))
                    .collect(),
                group_ids,
                devices,
            },
        );
        if a.network == Network::Bridge {
            crate::network::join_netns(&mut spec, &crate::network::setup::netns_path(&id));
        }
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
        let healthcheck = crate::health::Healthcheck::merged(
            crate::health::Healthcheck::from_image_config(&cfgb),
            &a.health,
        );
        crate::health::write_monitor_file(&dir, healthcheck.as_ref())?;
        crate::attach_socket::write_stdin_mode(&dir, a.process.interactive, create_only)?;
        if let Some((size, files)) = a.host.log_rotate {
            // Read by the monitor (monitor/main.rs: RotatingLog).
            let p = dir.join("log-opts");
            std::fs::write(&p, format!("{size} {files}\n")).ctx("writing", &p)?;
        }
        let mut record = Record {
            dir: dir.clone(),
            meta: ContainerMeta {
                id: id.clone(),
                name: name.clone(),
                image: a.image.clone(),
                image_id: rec.config_digest.hex().to_string(),
                created: Timestamp::now(),
                started: None,
                finished: None,
                exit_code: None,
                error: None,
                oom_killed: false,
                restart_count: 0,
                stop_signal,
                restart: a.restart,
                remove: a.remove,
                stopping: false,
                // No runner to die: nothing for settle_orphan to settle until `start`.
                never_started: create_only,
                // Us until the container is handed to a monitor.
                runner: (!create_only).then(Runner::me),
                pid: None,
                monitor_pid: None,
                // container:ID, not the name the user gave: the other container may be
                // renamed.
                network: match joined.iter().find(|j| j.kind == "network") {
                    Some(j) => Network::Container(j.id.clone()),
                    None => a.network.clone(),
                },
                joins: joins::record(&joined),
                pod: pod.as_ref().map(|p| p.id.clone()),
                pod_name: pod.as_ref().map(|p| p.name.clone()),
                // Set by `pod create` on its infra container.
                infra: false,
                networks: a.networks.clone(),
                ports,
                etc,
                entrypoint: pv.args[..entrypoint_len].to_vec(),
                cmd: pv.args[entrypoint_len..].to_vec(),
                user: user
                    .clone()
                    .or_else(|| cfg.config().as_ref().and_then(|c| c.user().clone())),
                interactive: a.process.interactive,
                labels: pv
                    .labels
                    .iter()
                    .chain(&a.host.labels)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                binds: a.volumes.iter().map(bind_string).collect(),
                mounts: attached.records,
                privileged: a.privileged,
                init: a.init,
                cap_add: a.added_caps.clone(),
                healthcheck,
                writable: a.writable,
                userns: a.userns.to_string(),
                security_opt: a.security_opt.clone(),
                systemd_cgroup: self.cgroup_manager == crate::CgroupManager::Systemd,
                checkpoint: Default::default(),
            },
        };
        record.save()?;
        drop(names_lock);
        // docker writes it at create, so `create --cidfile` has it too.
        let mut cidfile = CidFile::write(a.host.cidfile.as_deref(), &id)?;
        let attrs = [("image", a.image.as_str()), ("name", name.as_str())];
        crate::events::emit(&self.root, "container", "create", &id, &attrs);
        if create_only {
            if let Some(mut o) = made.overlay.take() {
                o.unmount()?;
            }
            made.keep_dir = true;
            cidfile.keep();
            return Ok(RunOutcome::Started { id });
        }

        single_threaded()?;
        if a.detach {
            crate::monitor::detach(&self.root, &id, made, a.remove)?;
            cidfile.keep();
            return Ok(RunOutcome::Started { id });
        }
        if !a.process.interactive && !a.process.tty {
            attach::stdin_from_dev_null()?;
        }
        if joins {
            // Joining another container's namespace, init is our grandchild (through the
            // runtime's intermediate process): only as a subreaper can we wait for it.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        }
        let tty = a.process.tty.then(Tty::new).transpose()?;
        let mut builder = ContainerBuilder::new(id.clone())
            .root_path(state_root())
            .systemd_cgroup(self.cgroup_manager == crate::CgroupManager::Systemd);
        if let Some(t) = &tty {
            builder = builder.console_socket(t.socket());
        }
        // Rootless on a v1 host means no cgroup (limits asked for are an error): not worth a
        // warning on every run.
        if let Network::Pasta(opts) = &a.network {
            // Undone by `made` (stop_slirp) should anything below fail.
            crate::network::pasta::connect(&dir, &crate::network::pasta::forwards_of(&dir), opts)?;
        }
        let mut c = builder.as_init(&dir).build_with_warnings(&mut |_| {})?;
        // For `ps` and for settling the container should we die first (record::Runner).
        record.meta.pid = Some(c.pid());
        let _ = record.save();
        if tty.is_none() && a.host.sig_proxy {
            attach::forward_signals(c.pid());
        }
        let started = match a.network {
            Network::Slirp { host_loopback } => {
                crate::network::start_slirp(&dir, c.pid(), host_loopback).map_err(Error::from)
            }
            _ => Ok(()),
        }
        .and_then(|()| Ok(c.start()?));
        if started.is_ok() {
            cidfile.keep();
            // It ran: named volumes it made stay; --rm takes only the anonymous ones.
            made.volumes = anonymous;
        }
        if let Err(e) = started {
            let _ = c.kill(libc::SIGKILL, true);
            let _ = c.wait();
            let _ = c.delete(true);
            return Err(e);
        }
        crate::events::emit(&self.root, "container", "start", &id, &attrs);
        // Its grace period now overlaps the container's run.
        crate::release_exe_view();
        let waited = match &tty {
            Some(t) => t.attach(c.pid()).map_err(Error::from),
            None => c.wait().map_err(Error::from),
        };
        attach::stop_forwarding();
        let oom = crate::monitor::oom_killed(&c);
        if oom {
            record.meta.oom_killed = true;
            crate::events::emit(&self.root, "container", "oom", &id, &attrs);
        }
        let deleted = c.delete(true);
        crate::network::stop_slirp(&dir);
        let torn = crate::network::setup::teardown(&dir);
        let code = waited?;
        let exit = code.to_string();
        let died = [attrs[0], attrs[1], ("exitCode", exit.as_str())];
        crate::events::emit(&self.root, "container", "die", &id, &died);
        deleted.map_err(RunError::Delete)?;
        torn?;
        if let Some(mut o) = made.overlay.take() {
            o.unmount()?;
        }
        if !a.remove {
            record.meta.exit_code = Some(code.into());
            record.meta.finished = Some(Timestamp::now());
            record.save()?;
            made.keep_dir = true;
        } else {
            crate::events::emit(&self.root, "container", "destroy", &id, &attrs);
        }
        Ok(RunOutcome::Exited { id, code })
    }
}
