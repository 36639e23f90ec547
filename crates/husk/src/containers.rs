//! The engine's containers on disk: <store root>/containers/<id>/container.json (name, image,
//! exit code, ...), found by name, id or unique id prefix; their live status comes from the
//! runtime library's state (never from a stored "running" flag), and `ps`, `stop`, `rm` on top.

use crate::run::state_root;
use husk_container::Container;
use husk_oci::Status;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One container of the engine.
pub struct Record {
    pub id: String,
    pub dir: PathBuf,
    pub meta: Value,
}

impl Record {
    pub fn load(dir: &Path) -> Result<Record, String> {
        let f = dir.join("container.json");
        let data = std::fs::read(&f).map_err(|e| format!("reading {}: {e}", f.display()))?;
        let meta: Value =
            serde_json::from_slice(&data).map_err(|e| format!("parsing {}: {e}", f.display()))?;
        let id = meta["id"].as_str().unwrap_or_default().to_string();
        Ok(Record {
            id,
            dir: dir.to_path_buf(),
            meta,
        })
    }

    pub fn name(&self) -> &str {
        self.meta["name"].as_str().unwrap_or_default()
    }

    /// Write container.json atomically (a reader never sees half a file).
    pub fn save(&self) -> Result<(), String> {
        let f = self.dir.join("container.json");
        let tmp = self.dir.join(".container.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.meta).unwrap())
            .and_then(|_| std::fs::rename(&tmp, &f))
            .map_err(|e| format!("writing {}: {e}", f.display()))
    }

    /// The runtime library's view of the container, while its state exists.
    pub fn runtime(&self) -> Option<Container> {
        Container::load(&state_root(), &self.id).ok()
    }

    /// "running", "paused", "created", "exited" (exit code recorded, or the process is gone).
    pub fn status(&self) -> &'static str {
        status_of(self.runtime().as_ref())
    }

    pub fn exit_code(&self) -> Option<i64> {
        self.meta["exit_code"].as_i64()
    }

    /// Whoever ran the container (foreground `husk run` or the monitor) has recorded its end,
    /// or removed it (--rm).
    fn finished(&self) -> bool {
        match Record::load(&self.dir) {
            Ok(r) => r.exit_code().is_some(),
            Err(_) => !self.dir.exists(),
        }
    }

    /// Wait until [`Record::finished`], up to `timeout`.
    fn wait_finished(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.finished() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// [`Record::status`] from a runtime handle already loaded.
fn status_of(c: Option<&Container>) -> &'static str {
    match c.map(|c| c.status()) {
        Some(Status::Running) => "running",
        Some(Status::Paused) => "paused",
        Some(Status::Created | Status::Creating) => "created",
        Some(Status::Stopped) | None => "exited",
    }
}

pub fn containers_dir(root: &Path) -> PathBuf {
    root.join("containers")
}

/// Every container, oldest first.
pub fn list(root: &Path) -> Vec<Record> {
    let mut v: Vec<Record> = std::fs::read_dir(containers_dir(root))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| Record::load(&e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.meta["created"].as_str().cmp(&b.meta["created"].as_str()));
    v
}

/// The container named `what`, or with that id, or the one whose id starts with it.
pub fn find(root: &Path, what: &str) -> Result<Record, String> {
    let all = list(root);
    if let Some(i) = all.iter().position(|r| r.name() == what || r.id == what) {
        return Ok(all.into_iter().nth(i).unwrap());
    }
    let mut hits: Vec<Record> = all
        .into_iter()
        .filter(|r| !what.is_empty() && r.id.starts_with(what))
        .collect();
    match hits.len() {
        1 => Ok(hits.pop().unwrap()),
        0 => Err(format!("no such container: {what}")),
        n => Err(format!(
            "{what:?} matches {n} containers: give more of the id"
        )),
    }
}

/// `husk ps`: running containers (all with `all`), as a table or JSON.
pub fn ps(root: &Path, all: bool, json: bool) -> Result<(), String> {
    // One state load per container for both the status and the pid.
    let rows: Vec<(Record, &'static str, Option<i32>)> = list(root)
        .into_iter()
        .map(|r| {
            let c = r.runtime();
            let s = status_of(c.as_ref());
            let pid = c.map(|c| c.pid()).filter(|_| s != "exited");
            (r, s, pid)
        })
        .filter(|(_, s, _)| all || *s != "exited")
        .collect();
    if json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(r, s, pid)| {
                serde_json::json!({
                    "id": r.id,
                    "name": r.name(),
                    "image": r.meta["image"],
                    "created": r.meta["created"],
                    "status": s,
                    "exit_code": r.meta["exit_code"],
                    "pid": pid,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        return Ok(());
    }
    println!(
        "{:<12}  {:<30}  {:<12}  {:<30}  NAME",
        "CONTAINER ID", "IMAGE", "STATUS", "CREATED"
    );
    for (r, s, _) in rows {
        let status = match (s, r.exit_code()) {
            ("exited", Some(c)) => format!("exited ({c})"),
            (s, _) => s.to_string(),
        };
        println!(
            "{:<12}  {:<30}  {:<12}  {:<30}  {}",
            &r.id[..r.id.len().min(12)],
            r.meta["image"].as_str().unwrap_or_default(),
            status,
            r.meta["created"].as_str().unwrap_or_default(),
            r.name()
        );
    }
    Ok(())
}

/// The signal `stop` sends first: the container's --stop-signal, else SIGTERM.
fn stop_signal(r: &Record) -> i32 {
    r.meta["stop_signal"]
        .as_i64()
        .map(|s| s as i32)
        .unwrap_or(libc::SIGTERM)
}

/// `husk stop`: the stop signal, then SIGKILL after `timeout`; returns once whoever runs the
/// container has recorded its exit.
pub fn stop(root: &Path, what: &str, timeout: Duration) -> Result<(), String> {
    let r = find(root, what)?;
    let Some(c) = r.runtime().filter(|c| c.status() != Status::Stopped) else {
        if r.exit_code().is_none() {
            mark_stopping(&r); // between two runs of a restart policy: no next run
        }
        return Ok(()); // already stopped: nothing to do, as podman
    };
    if c.status() == Status::Paused {
        return Err(format!(
            "stop {what}: the container is paused: unpause it first"
        ));
    }
    mark_stopping(&r);
    c.kill(stop_signal(&r), false)
        .map_err(|e| format!("stop {what}: {e}"))?;
    if r.wait_finished(timeout) {
        return Ok(());
    }
    kill_and_wait(&r, &c).map_err(|e| format!("stop {what}: {e}"))
}

/// Tell the monitor that this exit is wanted: no restart, whatever the policy.
fn mark_stopping(r: &Record) {
    if let Ok(mut fresh) = Record::load(&r.dir) {
        fresh.meta["stopping"] = true.into();
        let _ = fresh.save();
    }
}

fn kill_and_wait(r: &Record, c: &Container) -> Result<(), String> {
    mark_stopping(r);
    // --all: also processes that `husk exec` started; the cgroup holds them all.
    let _ = c.kill(libc::SIGKILL, true);
    if r.wait_finished(Duration::from_secs(10)) {
        Ok(())
    } else {
        Err("the container did not exit after SIGKILL".into())
    }
}

/// `husk rm`: remove a stopped container (a running one only with `force`, killing it).
pub fn rm(root: &Path, what: &str, force: bool) -> Result<(), String> {
    let r = find(root, what)?;
    if let Some(c) = r.runtime() {
        if c.status() != Status::Stopped {
            if !force {
                return Err(format!(
                    "rm {what}: the container is {}: stop it first or use -f",
                    r.status()
                ));
            }
            kill_and_wait(&r, &c).map_err(|e| format!("rm {what}: {e}"))?;
        }
    }
    // Whoever ran it normally cleans up; after a crash of that process, do it here.
    if let Some(c) = r.runtime() {
        c.delete(true).map_err(|e| format!("rm {what}: {e}"))?;
    }
    crate::network::stop_slirp(&r.dir);
    crate::rootfs_overlay::unmount_leftover(&r.dir)?;
    match std::fs::remove_dir_all(&r.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("rm {what}: removing {}: {e}", r.dir.display())),
    }
}

/// `husk exec`'s options.
#[derive(clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    process: crate::run::ProcessFlags,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

/// `husk exec`: run CMD in the running container with its process settings (env, user,
/// cwd from the image and `run`), changed by the options; Ok(its exit code).
pub fn exec(root: &Path, a: ExecArgs) -> Result<i32, String> {
    let what = a.container.clone();
    exec_inner(root, a).map_err(|e| format!("exec {what}: {e}"))
}

fn exec_inner(root: &Path, a: ExecArgs) -> Result<i32, String> {
    let r = find(root, &a.container)?;
    let c = r
        .runtime()
        .filter(|c| c.status() == Status::Running)
        .ok_or_else(|| format!("the container is {}, not running", r.status()))?;
    let mut p = c.config_process().map_err(|e| e.to_string())?;
    p.set_args(Some(a.cmd.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.process.env {
        let key = kv.split('=').next().unwrap_or_default();
        if key.is_empty() || !kv.contains('=') {
            return Err(format!("-e {kv:?}: expected KEY=VALUE"));
        }
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(w) = &a.process.workdir {
        if !w.starts_with('/') {
            return Err(format!("-w {w:?}: must be an absolute path"));
        }
        p.set_cwd(PathBuf::from(w));
    }
    if let Some(u) = &a.process.user {
        let view = husk_image::config::RootfsView::Dir(r.dir.join("rootfs"));
        let ru = husk_image::config::resolve_user(&view, u).map_err(|e| format!("-u {u}: {e}"))?;
        let mut user = p.user().clone();
        user.set_uid(ru.uid);
        user.set_gid(ru.gid);
        user.set_additional_gids((!ru.additional_gids.is_empty()).then_some(ru.additional_gids));
        p.set_user(user);
    }
    if !a.process.interactive && !a.process.tty {
        crate::run::stdin_from_dev_null()?;
    }
    p.set_terminal(Some(a.process.tty));
    let tty = a.process.tty.then(crate::run::Tty::new).transpose()?;
    let mut b = husk_container::ContainerBuilder::new(r.id.clone()).root_path(state_root());
    if let Some(t) = &tty {
        b = b.console_socket(t.socket());
    }
    let t = b
        .as_tenant()
        .process(p)
        .build()
        .map_err(|e| e.to_string())?;
    match &tty {
        Some(tty) => tty.attach(t.pid()),
        None => {
            crate::run::forward_signals(t.pid());
            t.wait().map_err(|e| e.to_string())
        }
    }
}

/// The running (or paused) container's runtime handle, or why there is none.
fn live(r: &Record) -> Result<Container, String> {
    r.runtime()
        .filter(|c| c.status() != Status::Stopped)
        .ok_or_else(|| format!("the container is {}, not running", r.status()))
}

/// `husk kill`: send `signal` to the container's main process.
pub fn kill(root: &Path, what: &str, signal: &str) -> Result<(), String> {
    let sig = husk_oci::signal::parse_signal(signal).map_err(|e| format!("kill {what}: {e}"))?;
    let r = find(root, what)?;
    live(&r)
        .and_then(|c| c.kill(sig, false).map_err(|e| e.to_string()))
        .map_err(|e| format!("kill {what}: {e}"))
}

/// `husk pause` (`resume` false) / `husk unpause` (`resume` true): freeze or thaw the cgroup.
pub fn pause(root: &Path, what: &str, resume: bool) -> Result<(), String> {
    let r = find(root, what)?;
    let op = if resume { "unpause" } else { "pause" };
    live(&r)
        .and_then(|c| {
            match (c.status(), resume) {
                (Status::Paused, false) => return Err("the container is already paused".into()),
                (Status::Running, true) => return Err("the container is not paused".into()),
                _ => {}
            }
            if resume { c.resume() } else { c.pause() }.map_err(|e| e.to_string())
        })
        .map_err(|e| format!("{op} {what}: {e}"))
}

/// `husk inspect`: container.json with the live status and the runtime's state.
pub fn inspect(root: &Path, what: &[String]) -> Result<(), String> {
    let mut all = Vec::new();
    for w in what {
        let r = find(root, w)?;
        let mut v = r.meta.clone();
        v["status"] = r.status().into();
        v["dir"] = r.dir.display().to_string().into();
        if let Some(c) = r.runtime() {
            v["state"] = serde_json::to_value(c.state()).unwrap_or_default();
        }
        all.push(v);
    }
    println!("{}", serde_json::to_string_pretty(&all).unwrap());
    Ok(())
}

/// An image may go while no container uses it; with `force`, while none of them runs (the
/// layers of a running container's overlay must stay).
pub fn check_image_unused(root: &Path, image_id: &str, force: bool) -> Result<(), String> {
    for r in list(root) {
        if r.meta["image_id"] != image_id {
            continue;
        }
        let running = r.runtime().is_some_and(|c| c.status() != Status::Stopped);
        if running {
            return Err(format!(
                "the image is in use by running container {}",
                r.name()
            ));
        }
        if !force {
            return Err(format!(
                "the image is in use by container {} (remove it first, or use -f)",
                r.name()
            ));
        }
    }
    Ok(())
}

/// `husk start`: run an exited container again, detached (its filesystem — the upper dir —
/// kept from before), under a new monitor with the restart policy it was created with.
pub fn start(ctx: &crate::Ctx, what: &str) -> Result<(), String> {
    let fail = |e: String| format!("start {what}: {e}");
    let mut r = find(&ctx.root, what)?;
    if r.runtime().is_some_and(|c| c.status() != Status::Stopped) {
        return Err(fail(format!("the container is {}", r.status())));
    }
    let store = ctx.store()?;
    let image_id = r.meta["image_id"].as_str().unwrap_or_default().to_string();
    let rec = store
        .resolve(&image_id, &ctx.default_registry)
        .map_err(|e| fail(format!("its image {image_id}: {e}")))?;
    // The monitor's helper reads the restart policy from the record; check it now.
    crate::monitor::Restart::parse(r.meta["restart"].as_str().unwrap_or("no")).map_err(fail)?;
    // A monitor that died may have left the runtime state and the overlay behind.
    if let Some(c) = r.runtime() {
        c.delete(true).map_err(|e| fail(e.to_string()))?;
    }
    crate::rootfs_overlay::unmount_leftover(&r.dir).map_err(fail)?;
    for k in ["exit_code", "finished", "stopping", "error"] {
        r.meta[k] = Value::Null;
    }
    r.save().map_err(fail)?;
    let overlay = crate::rootfs_overlay::prepare(&r.dir, &store, &rec).map_err(fail)?;
    let made = crate::run::Made {
        dir: r.dir.clone(),
        overlay: Some(overlay),
        keep_dir: true,
    };
    crate::monitor::detach(&ctx.root, &r.id, made, false).map_err(fail)
}

/// `husk top`: the container's processes (pid and command line, as the host sees them).
pub fn top(root: &Path, what: &str) -> Result<(), String> {
    let r = find(root, what)?;
    let pids = live(&r)
        .and_then(|c| c.processes().map_err(|e| e.to_string()))
        .map_err(|e| format!("top {what}: {e}"))?;
    println!("{:>8}  COMMAND", "PID");
    for pid in pids {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd: Vec<String> = cmd
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        println!("{pid:>8}  {}", cmd.join(" "));
    }
    Ok(())
}

/// `husk container prune`: remove every exited container; prints their ids.
pub fn prune(root: &Path) -> Result<(), String> {
    for r in list(root) {
        if r.status() == "exited" && r.exit_code().is_some() {
            rm(root, &r.id, false)?;
            println!("{}", r.id);
        }
    }
    Ok(())
}

/// `husk stats`: CPU (% of one CPU over the sampling interval), memory usage / limit and
/// pids per running container; once with `no_stream`, else every second until interrupted.
/// `--format json` prints the cgroup statistics themselves, one JSON object per line.
pub fn stats(root: &Path, what: &[String], no_stream: bool, json: bool) -> Result<(), String> {
    let records: Vec<Record> = what
        .iter()
        .map(|w| find(root, w))
        .collect::<Result<_, _>>()?;
    let sample = |r: &Record| {
        live(r)
            .and_then(|c| c.stats().map_err(|e| e.to_string()))
            .map_err(|e| format!("stats {}: {e}", r.name()))
    };
    let mut before: Vec<(u64, Instant)> = Vec::new();
    for r in &records {
        before.push((sample(r)?.cpu.usage.total, Instant::now()));
    }
    loop {
        std::thread::sleep(Duration::from_millis(if no_stream { 200 } else { 1000 }));
        if !json {
            println!(
                "{:<12}  {:<20}  {:>7}  {:>21}  {:>5}",
                "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "PIDS"
            );
        }
        for (r, prev) in records.iter().zip(before.iter_mut()) {
            let s = sample(r)?;
            let now = Instant::now();
            let cpu_ns = s.cpu.usage.total.saturating_sub(prev.0) as f64;
            let pct = 100.0 * cpu_ns / now.duration_since(prev.1).as_nanos().max(1) as f64;
            *prev = (s.cpu.usage.total, now);
            if json {
                let mut v = serde_json::to_value(&s).unwrap_or_default();
                v["id"] = r.id.clone().into();
                v["name"] = r.name().into();
                v["cpu_percent"] = pct.into();
                println!("{v}");
                continue;
            }
            let mib = |b: u64| format!("{:.1}MiB", b as f64 / (1u64 << 20) as f64);
            let limit = match s.memory.usage.limit {
                0 | u64::MAX => "-".to_string(),
                l if l >= 1 << 62 => "-".to_string(),
                l => mib(l),
            };
            println!(
                "{:<12}  {:<20}  {:>6.2}%  {:>21}  {:>5}",
                &r.id[..12.min(r.id.len())],
                r.name(),
                pct,
                format!("{} / {limit}", mib(s.memory.usage.usage)),
                s.pids.current
            );
        }
        if no_stream {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_by_name_id_or_unique_id_prefix() {
        let root = std::env::temp_dir().join(format!("husk-find-{}", std::process::id()));
        for (id, name) in [("abc123", "web"), ("abd456", "db"), ("ffe789", "abc")] {
            let dir = containers_dir(&root).join(id);
            std::fs::create_dir_all(&dir).unwrap();
            let meta = serde_json::json!({"id": id, "name": name, "created": id});
            let r = Record {
                id: id.into(),
                dir,
                meta,
            };
            r.save().unwrap();
        }
        let found = |w: &str| find(&root, w).map(|r| r.id);
        assert_eq!(found("web"), Ok("abc123".into()));
        assert_eq!(found("abd456"), Ok("abd456".into()));
        assert_eq!(found("abd"), Ok("abd456".into()));
        assert_eq!(
            found("ab"),
            Err("\"ab\" matches 2 containers: give more of the id".into())
        );
        // A name (or a whole id) wins over id prefixes.
        assert_eq!(found("abc"), Ok("ffe789".into()));
        assert_eq!(found("zz"), Err("no such container: zz".into()));
        assert_eq!(found(""), Err("no such container: ".into()));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
