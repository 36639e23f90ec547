//! [`Engine::build`]: the stages a target needs, each from its base (an image, `scratch`,
//! or an earlier stage) through its steps. A step either changes only the image config
//! (ENV, LABEL, CMD… — a history entry with `empty_layer`) or the filesystem (RUN, COPY,
//! ADD: the step's overlay upper dir becomes one layer). Every step first asks the cache
//! ([`super::cache`]) under its key; a hit takes the cached state and makes nothing.

use super::args::{self, expand_text, expand_word, expand_words, Scope};
use super::cache::{self, State};
use super::copy::{self, CopyOptions, Dest, Source, SourceRoot};
use super::ignore::Ignore;
use super::parse::{self, Command, Health, Instruction, Kind};
use super::run::{self, HostMount, Mount};
use super::stages::{self, Plan};
use super::work::{Step, WorkDir};
use super::{BuildError, BuildOptions, RunNetwork};
use crate::engine::Engine;
use crate::host_config::PullPolicy;
use crate::images::PullRequest;
use crate::spec_from_image::flags::{self, Seccomp};
use crate::Error;
use husk_image::digest::Digest;
use husk_image::store::{ImageRecord, LayerRecord, Store};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a build made.
#[derive(Clone, Debug)]
pub struct BuildOutcome {
    /// The image id (its config digest).
    pub id: Digest,
    /// The names it was tagged with.
    pub names: Vec<String>,
    /// Steps taken from the cache, steps that made a new layer.
    pub cached: usize,
    pub layers_made: usize,
}

/// A stage's result, for the stages after it.
struct Built {
    state: State,
    key: Digest,
}

/// One build in progress.
struct Build<'a> {
    engine: &'a Engine,
    o: &'a BuildOptions,
    store: Store,
    file: String,
    escape: char,
    plan: Plan,
    meta: BTreeMap<String, String>,
    work: WorkDir,
    context: SourceRoot,
    built: BTreeMap<usize, Built>,
    out: std::cell::RefCell<&'a mut dyn Write>,
    step_no: usize,
    step_total: usize,
    cached: std::cell::Cell<usize>,
    layers_made: usize,
    platform: String,
    /// RUN's `linux.seccomp` (None: unconfined).
    seccomp: Option<Value>,
    /// Its part of a RUN's cache key: a RUN's result may depend on its filter.
    seccomp_key: String,
}

/// A stage being built.
struct StageRun {
    state: State,
    key: Digest,
    scope: Scope,
    shell: Vec<String>,
    /// CMD set in this stage (a later ENTRYPOINT keeps it).
    cmd_set: bool,
}

fn now_or(ts: Option<i64>) -> String {
    match ts {
        // Whole seconds, as docker writes a fixed time.
        Some(t) => husk_oci::time::rfc3339(t, 0).replace(".000000000Z", "Z"),
        None => husk_oci::time::rfc3339_now(),
    }
}

/// `80`, `80/TCP`, `8000-8001/udp` → docker's `80/tcp` keys.
fn port_keys(p: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match p.split_once('/') {
        Some((n, pr)) => (n, pr.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("EXPOSE {p}: unknown protocol {proto:?}"));
    }
    let bad = || format!("EXPOSE {p}: not a port or range");
    let (a, b) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let a = ports.parse::<u16>().map_err(|_| bad())?;
            (a, a)
        }
    };
    if b < a || b - a > 1000 {
        return Err(bad());
    }
    Ok((a..=b).map(|n| format!("{n}/{proto}")).collect())
}

/// A HEALTHCHECK duration that is not one (the value as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?}: not a duration")]
    NotADuration(String),
    #[error("{0:?}: a duration needs a unit (s, m, h, ms)")]
    NoUnit(String),
    #[error("{0:?}: unknown unit")]
    Unit(String),
}

/// Why an ADD of a URL got nothing.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Get(Box<ureq::Error>),
    #[error(transparent)]
    Io(std::io::Error),
}

/// Go durations as HEALTHCHECK takes them (`30s`, `1m30s`, `500ms`) → nanoseconds.
fn duration_ns(s: &str) -> Result<i64, DurationError> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(DurationError::NotADuration(s.into()));
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| DurationError::NoUnit(s.into()))?;
        let num: f64 = rest[..n]
            .parse()
            .map_err(|_| DurationError::NotADuration(s.into()))?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mul = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(DurationError::Unit(s.into())),
        };
        total += num * mul;
        rest = &rest[u..];
    }
    Ok(total as i64)
}

fn cmd_args(c: &Command, shell: &[String]) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut v = shell.to_vec();
            v.push(s.clone());
            v
        }
    }
}

impl Engine {
    /// Build an image from a Containerfile (see [`BuildOptions`]); progress lines (the
    /// steps, cache hits, RUN output) go to `out`, and RUN's output to stdout/stderr
    /// unless `quiet`.
    ///
    /// The build mounts in a mount namespace of its own: this process leaves the caller's
    /// mount namespace for good (the CLI's process ends with the build).
    pub fn build(&self, o: &BuildOptions, out: &mut dyn Write) -> crate::Result<BuildOutcome> {
        build(self, o, out).map_err(|e| e.during("build", o.context.display().to_string()))
    }
}

fn step_err(file: &str, line: usize, msg: impl std::fmt::Display) -> Error {
    BuildError::Step {
        file: file.into(),
        line,
        msg: msg.to_string(),
    }
    .into()
}

/// The Containerfile's text and the name errors use.
fn containerfile(o: &BuildOptions) -> crate::Result<(String, String, Option<PathBuf>)> {
    if let Some(t) = &o.file_text {
        return Ok((t.clone(), "Containerfile".into(), None));
    }
    let path = match &o.file {
        Some(f) if f.is_absolute() || f.exists() => f.clone(),
        Some(f) => o.context.join(f),
        None => ["Containerfile", "Dockerfile"]
            .iter()
            .map(|n| o.context.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| BuildError::NoFile(o.context.clone()))?,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| crate::os::IoError {
        op: "reading",
        path: path.clone(),
        source: e,
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Containerfile".into());
    Ok((text, name, Some(path)))
}

/// RUN's seccomp filter for the RUN containers (which have the default capabilities):
/// `husk run`'s default profile, none, or a profile file checked as `husk run` checks it.
fn run_seccomp(s: &Seccomp) -> crate::Result<Option<Value>> {
    let caps: Vec<String> = crate::spec_from_image::CAPS
        .iter()
        .map(|c| c.to_string())
        .collect();
    Ok(match s {
        Seccomp::Default => Some(flags::default_seccomp(&caps)),
        Seccomp::Unconfined => None,
        Seccomp::File(f) => {
            Some(crate::config::load_seccomp(f, &caps).map_err(crate::config::ConfigError::from)?)
        }
    })
}

fn build(engine: &Engine, o: &BuildOptions, out: &mut dyn Write) -> crate::Result<BuildOutcome> {
    let (text, file, path) = containerfile(o)?;
    let cf = parse::parse(&text, &file).map_err(BuildError::from)?;
    let plan = stages::plan(&cf).map_err(|source| BuildError::Stages {
        file: file.clone(),
        source,
    })?;
    let ignore = Ignore::load(&o.context, path.as_deref()).map_err(BuildError::from)?;
    let context =
        SourceRoot::open(&o.context, true, ignore).map_err(|source| BuildError::Context {
            path: o.context.clone(),
            source,
        })?;
    let store = engine.store()?;
    // Shared for the whole build: `image prune` (exclusive) must not collect the layers
    // made so far before the image that uses them exists.
    let _gc = store.gc_lock(false)?;
    let host = husk_image::manifest::Platform::host();
    let build_platform = format!("linux/{}", host.architecture);
    let platform = o.platform.clone().unwrap_or_else(|| build_platform.clone());
    // Meta args: the platform ones, then the ARGs before the first FROM.
    let mut meta = args::platform_args(&platform, &build_platform);
    for i in &plan.meta_args {
        if let Kind::Arg(list) = &i.kind {
            for (k, d) in list {
                let v = match o.build_args.get(k) {
                    Some(v) => Some(v.clone()),
                    None => d
                        .as_deref()
                        .map(|d| expand_word(d, cf.escape, &|n| meta.get(n).cloned()))
                        .transpose()
                        .map_err(|e| step_err(&file, i.line, e))?,
                };
                if let Some(v) = v {
                    meta.insert(k.clone(), v);
                }
            }
        }
    }
    let target = plan
        .target(o.target.as_deref())
        .map_err(|source| BuildError::Stages {
            file: file.clone(),
            source,
        })?;
    let needed = plan
        .needed(target, cf.escape, &meta)
        .map_err(|source| BuildError::Stages {
            file: file.clone(),
            source,
        })?;
    let step_total = needed.iter().map(|s| plan.stages[*s].steps.len() + 1).sum();
    let seccomp = run_seccomp(&o.seccomp)?;
    // A network that does not exist is refused before anything is made, as `husk run`.
    if let RunNetwork::Bridge(n) = o.network.resolved() {
        engine.check_networks(&[crate::network::setup::Wanted {
            network: n,
            ..Default::default()
        }])?;
    }
    // What killed builds left (their RUN containers and directories), then our own
    // directory, watched by a guardian that cleans it if we are killed, then mounts in a
    // namespace that dies with us.
    let state_root = crate::record::state_root();
    super::work::sweep(&store.tmp_dir(), &state_root);
    let work = WorkDir::new(&store.tmp_dir())?;
    super::work::guard(&work, &state_root);
    super::work::private_mounts();
    let mut b = Build {
        engine,
        o,
        store,
        file,
        escape: cf.escape,
        plan,
        meta,
        work,
        context,
        built: BTreeMap::new(),
        out: std::cell::RefCell::new(out),
        step_no: 0,
        step_total,
        cached: std::cell::Cell::new(0),
        layers_made: 0,
        platform,
        seccomp_key: match &seccomp {
            Some(v) => format!("seccomp {}", Digest::of(v.to_string().as_bytes())),
            None => "seccomp unconfined".into(),
        },
        seccomp,
    };
    for s in needed {
        let r = b.stage(s)?;
        b.built.insert(s, r);
    }
    let fin = b.built.remove(&target).expect("the target was built");
    b.commit_image(fin.state)
}

impl Build<'_> {
    fn say(&self, s: &str) {
        if !self.o.quiet {
            let mut out = self.out.borrow_mut();
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        }
    }

    fn err(&self, line: usize, msg: impl std::fmt::Display) -> Error {
        step_err(&self.file, line, msg)
    }

    fn pull_policy(&self) -> PullPolicy {
        self.o.pull
    }

    /// An image by name, as `--pull` says.
    fn image(&self, name: &str, line: usize) -> crate::Result<ImageRecord> {
        let req = PullRequest {
            platform: self.o.platform.clone(),
            registry: self.o.registry.clone(),
            progress: Arc::new(husk_image::pull::NoProgress),
            ..Default::default()
        };
        let r = match self.pull_policy() {
            PullPolicy::Always => self.engine.pull(name, &req),
            PullPolicy::Never => self
                .store
                .resolve(name, self.engine.default_registry())
                .map_err(Error::from),
            PullPolicy::Missing => {
                self.engine
                    .image_or_pull(&self.store, name, &self.o.registry, req.progress.clone())
            }
        };
        r.map_err(|e| self.err(line, format!("{name}: {e}")))
    }

    /// The state a FROM starts with, and its key.
    fn base(&mut self, stage: usize) -> crate::Result<(State, Digest)> {
        let from = self.plan.stages[stage].from.clone();
        let Kind::From { image, .. } = &from.kind else {
            unreachable!("a stage starts with FROM")
        };
        let meta = self.meta.clone();
        let name = expand_word(image, self.escape, &|k| meta.get(k).cloned())
            .map_err(|e| self.err(from.line, e))?;
        let zero = Digest::of(b"");
        if let Some(s) = self.plan_stage(&name, stage) {
            let b = &self.built[&s];
            return Ok((b.state.clone(), b.key.clone()));
        }
        if name == "scratch" {
            let cfg = json!({
                "architecture": self.platform.split('/').nth(1).unwrap_or("amd64"),
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            });
            return Ok((
                State {
                    layers: vec![],
                    config: cfg,
                },
                cache::key(&zero, &["scratch", &self.platform]),
            ));
        }
        let rec = self.image(&name, from.line)?;
        let cfg: Value = serde_json::from_slice(&self.store.read_blob(&rec.config_digest)?)
            .map_err(|e| self.err(from.line, format!("{name}: its config: {e}")))?;
        let key = cache::key(&zero, &["image", &rec.config_digest.to_string()]);
        Ok((
            State {
                layers: rec.layers.clone(),
                config: cfg,
            },
            key,
        ))
    }

    /// A stage named `name` (not an index) before `before`.
    fn plan_stage(&self, name: &str, before: usize) -> Option<usize> {
        let n = name.to_ascii_lowercase();
        self.plan.stages[..before]
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(n.as_str()))
            .map(|s| s.index)
    }

    fn stage(&mut self, s: usize) -> crate::Result<Built> {
        let from = self.plan.stages[s].from.clone();
        self.step_no += 1;
        let head = format!("STEP {}/{}: {}", self.step_no, self.step_total, from.text);
        self.say(&head);
        let (mut state, key) = self.base(s)?;
        // The base's ONBUILD triggers run first; the new image does not inherit them.
        let triggers: Vec<String> = state.config["config"]["OnBuild"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(c) = state.config["config"].as_object_mut() {
            c.remove("OnBuild");
        }
        let env = state.config["config"]["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let shell = state.config["config"]["Shell"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .filter(|v: &Vec<String>| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".to_string(), "-c".to_string()]);
        let mut st = StageRun {
            state,
            key,
            scope: Scope {
                args: BTreeMap::new(),
                env: args::env_pairs(&env),
            },
            shell,
            cmd_set: false,
        };
        for t in triggers {
            let i = parse::parse_one(&t, &self.file, from.line).map_err(BuildError::from)?;
            self.step(&mut st, &i, s)?;
        }
        let steps = self.plan.stages[s].steps.clone();
        for i in &steps {
            self.step_no += 1;
            let head = format!("STEP {}/{}: {}", self.step_no, self.step_total, i.text);
            self.say(&head);
            self.step(&mut st, i, s)?;
        }
        Ok(Built {
            state: st.state,
            key: st.key,
        })
    }

    fn expand(&self, st: &StageRun, line: usize, s: &str) -> crate::Result<String> {
        expand_word(s, self.escape, &|k| st.scope.get(k)).map_err(|e| self.err(line, e))
    }

    /// The ARGs in scope as one cache-key part (they change what a RUN sees).
    fn args_part(&self, st: &StageRun) -> String {
        st.scope
            .run_args(&self.o.build_args)
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
    }

    fn step(&mut self, st: &mut StageRun, i: &Instruction, stage: usize) -> crate::Result<()> {
        match &i.kind {
            Kind::Arg(list) => {
                for (k, d) in list {
                    let v = match self.o.build_args.get(k) {
                        Some(v) => Some(v.clone()),
                        None => match d {
                            Some(d) => Some(self.expand(st, i.line, d)?),
                            // Declared again in a stage: the meta arg's value.
                            None => self.meta.get(k).cloned(),
                        },
                    };
                    st.scope.args.insert(k.clone(), v);
                }
                Ok(())
            }
            Kind::Run(_) => self.run_step(st, i, stage),
            Kind::Copy(_) | Kind::Add(_) => self.copy_step(st, i, stage),
            Kind::From { .. } => unreachable!("stages are split at FROM"),
            _ => self.config_step(st, i),
        }
    }

    /// A step that changes only the config.
    fn config_step(&mut self, st: &mut StageRun, i: &Instruction) -> crate::Result<()> {
        let mut c = st.state.config["config"].take();
        if !c.is_object() {
            c = json!({});
        }
        let cm = c.as_object_mut().expect("an object");
        let mut desc = i.text.clone();
        match &i.kind {
            Kind::Env(pairs) => {
                let mut parts = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(st, i.line, k)?;
                    let v = self.expand(st, i.line, v)?;
                    parts.push(format!("{k}={v}"));
                    st.scope.set_env(&k, v);
                }
                let env: Vec<Value> = st
                    .scope
                    .env
                    .iter()
                    .map(|(k, v)| Value::from(format!("{k}={v}")))
                    .collect();
                cm.insert("Env".into(), env.into());
                desc = format!("ENV {}", parts.join(" "));
            }
            Kind::Label(pairs) => {
                let labels = cm.entry("Labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                let mut parts = Vec::new();
                for (k, v) in pairs {
                    let k = expand_word(k, self.escape, &|n| st.scope.get(n))
                        .map_err(|e| self.err(i.line, e))?;
                    let v = expand_word(v, self.escape, &|n| st.scope.get(n))
                        .map_err(|e| self.err(i.line, e))?;
                    parts.push(format!("{k}={v}"));
                    labels[k] = v.into();
                }
                desc = format!("LABEL {}", parts.join(" "));
            }
            Kind::Workdir(p) => {
                let p = self.expand(st, i.line, p)?;
                let cur = cm
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .unwrap_or("/");
                let joined = if p.starts_with('/') {
                    p.clone()
                } else {
                    format!("{cur}/{p}")
                };
                let clean = format!("/{}", copy::relative(&joined).unwrap_or_default());
                cm.insert("WorkingDir".into(), clean.clone().into());
                desc = format!("WORKDIR {clean}");
            }
            Kind::User(u) => {
                let u = self.expand(st, i.line, u)?;
                cm.insert("User".into(), u.clone().into());
                desc = format!("USER {u}");
            }
            Kind::Cmd(c) => {
                cm.insert("Cmd".into(), json!(cmd_args(c, &st.shell)));
                st.cmd_set = true;
            }
            Kind::Entrypoint(c) => {
                let v = cmd_args(c, &st.shell);
                cm.insert("Entrypoint".into(), json!(v));
                // As docker: an ENTRYPOINT drops a CMD inherited from the base image.
                if !st.cmd_set {
                    cm.remove("Cmd");
                }
            }
            Kind::Shell(v) => {
                st.shell = v.clone();
                cm.insert("Shell".into(), json!(v));
            }
            Kind::Expose(s) => {
                let ports = cm.entry("ExposedPorts").or_insert_with(|| json!({}));
                if !ports.is_object() {
                    *ports = json!({});
                }
                for w in expand_words(s, self.escape, &|n| st.scope.get(n))
                    .map_err(|e| self.err(i.line, e))?
                {
                    for k in port_keys(&w).map_err(|e| self.err(i.line, e))? {
                        ports[k] = json!({});
                    }
                }
            }
            Kind::Volume(v) => {
                let vols = cm.entry("Volumes").or_insert_with(|| json!({}));
                if !vols.is_object() {
                    *vols = json!({});
                }
                for p in v {
                    let p = expand_word(p, self.escape, &|n| st.scope.get(n))
                        .map_err(|e| self.err(i.line, e))?;
                    if p.is_empty() {
                        return Err(self.err(i.line, "VOLUME: an empty path"));
                    }
                    vols[p] = json!({});
                }
            }
            Kind::StopSignal(s) => {
                let s = self.expand(st, i.line, s)?;
                crate::spec_from_image::flags::signal(&s)
                    .map_err(|_| self.err(i.line, format!("STOPSIGNAL {s}: unknown signal")))?;
                cm.insert("StopSignal".into(), s.into());
            }
            Kind::Healthcheck(Health::None) => {
                cm.insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
            }
            Kind::Healthcheck(Health::Cmd(c)) => {
                let test = match c {
                    Command::Exec(v) => {
                        let mut t = vec!["CMD".to_string()];
                        t.extend(v.iter().cloned());
                        t
                    }
                    Command::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                };
                let mut h = Map::new();
                h.insert("Test".into(), json!(test));
                for (flag, key) in [
                    ("interval", "Interval"),
                    ("timeout", "Timeout"),
                    ("start-period", "StartPeriod"),
                    ("start-interval", "StartInterval"),
                ] {
                    if let Some(v) = i.flag(flag) {
                        let ns = duration_ns(v).map_err(|source| BuildError::Duration {
                            file: self.file.clone(),
                            line: i.line,
                            flag,
                            source,
                        })?;
                        h.insert(key.into(), ns.into());
                    }
                }
                if let Some(r) = i.flag("retries") {
                    let n: i64 = r.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
                        self.err(i.line, format!("HEALTHCHECK --retries={r}: not a number"))
                    })?;
                    h.insert("Retries".into(), n.into());
                }
                cm.insert("Healthcheck".into(), Value::Object(h));
            }
            Kind::Onbuild(t) => {
                let list = cm.entry("OnBuild").or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                list.as_array_mut().expect("array").push(t.clone().into());
            }
            Kind::Maintainer(m) => {
                st.state.config["author"] = m.clone().into();
            }
            _ => unreachable!("config_step takes config instructions"),
        }
        st.state.config["config"] = c;
        let key = cache::key(&st.key, &[&desc, &self.args_part(st)]);
        // A cached entry keeps the times of the first build (same image digest).
        if let Some(hit) = (!self.o.no_cache)
            .then(|| cache::get(&self.store, &key))
            .flatten()
        {
            st.state.config["history"] = hit.config["history"].clone();
            st.state.config["created"] = hit.config["created"].clone();
        } else {
            self.history(st, &format!("/bin/sh -c #(nop) {desc}"), true);
            cache::put(&self.store, &key, &st.state);
        }
        st.key = key;
        Ok(())
    }

    fn history(&self, st: &mut StageRun, created_by: &str, empty: bool) {
        let created = now_or(self.o.timestamp);
        let mut h = json!({"created": created, "created_by": created_by});
        if empty {
            h["empty_layer"] = true.into();
        }
        let hist = &mut st.state.config["history"];
        if !hist.is_array() {
            *hist = json!([]);
        }
        hist.as_array_mut().expect("array").push(h);
        st.state.config["created"] = created.into();
    }

    /// Take the cached state under `key` if there is one.
    fn cache_hit(&self, st: &mut StageRun, key: &Digest) -> bool {
        if self.o.no_cache {
            return false;
        }
        match cache::get(&self.store, key) {
            Some(s) => {
                st.state = s;
                st.key = key.clone();
                self.cached.set(self.cached.get() + 1);
                let short = key.hex()[..12].to_string();
                self.say(&format!("--> Using cache {short}"));
                true
            }
            None => false,
        }
    }

    fn lowers(&self, layers: &[LayerRecord]) -> Vec<PathBuf> {
        layers
            .iter()
            .rev()
            .map(|l| self.store.layer_dir(&l.chain_id))
            .collect()
    }

    /// The step's change as a new layer on top of the state's, with its history entry.
    fn commit_step(
        &mut self,
        st: &mut StageRun,
        mut step: Step,
        key: Digest,
        created_by: &str,
    ) -> crate::Result<()> {
        step.unmount()?;
        let layer = super::layer_bridge::commit_upper(
            &self.store,
            &step.upper(),
            &st.state.layers,
            self.o.zstd,
            self.o.timestamp,
        )?;
        let Some(layer) = layer else {
            // Nothing changed: a history entry without a layer.
            self.history(st, created_by, true);
            cache::put(&self.store, &key, &st.state);
            st.key = key;
            self.say("--> (no changes)");
            return Ok(());
        };
        st.state.layers.push(layer.clone());
        let diff_ids = &mut st.state.config["rootfs"];
        if !diff_ids.is_object() {
            *diff_ids = json!({"type": "layers", "diff_ids": []});
        }
        match diff_ids["diff_ids"].as_array_mut() {
            Some(l) => l.push(layer.diff_id.to_string().into()),
            None => diff_ids["diff_ids"] = json!([layer.diff_id.to_string()]),
        }
        self.history(st, created_by, false);
        cache::put(&self.store, &key, &st.state);
        st.key = key;
        self.layers_made += 1;
        let short = layer.diff_id.hex()[..12].to_string();
        self.say(&format!("--> {short}"));
        Ok(())
    }

    fn workdir(st: &StageRun) -> String {
        st.state.config["config"]["WorkingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    fn run_step(&mut self, st: &mut StageRun, i: &Instruction, _stage: usize) -> crate::Result<()> {
        let Kind::Run(cmd) = &i.kind else {
            unreachable!()
        };
        // The command: exec form as is; a lone heredoc is the script; otherwise the shell
        // gets the line with its heredocs (the shell reads them itself).
        let args = match cmd {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut text = s.clone();
                let lone = i.heredocs.len() == 1 && {
                    let t = s.trim();
                    t.starts_with("<<") && !t.contains(char::is_whitespace)
                };
                if lone {
                    let h = &i.heredocs[0];
                    text = h.body.clone();
                } else {
                    for h in &i.heredocs {
                        text.push('\n');
                        text.push_str(&h.body);
                        text.push_str(&h.name);
                    }
                }
                let mut v = st.shell.clone();
                v.push(text);
                v
            }
        };
        let workdir = Self::workdir(st);
        let mut mounts = Vec::new();
        for m in i.flags_all("mount") {
            let m = self.expand(st, i.line, m)?;
            mounts.push(
                run::parse_mount(&m, &workdir).map_err(|source| BuildError::RunMount {
                    file: self.file.clone(),
                    line: i.line,
                    source,
                })?,
            );
        }
        if let Some(sec) = i.flag("security").filter(|s| *s != "sandbox") {
            return Err(self.err(i.line, format!("RUN --security={sec} is not supported")));
        }
        // The build's (`--network`, else `husk run`'s default), or the step's own.
        let network = match i.flag("network") {
            None | Some("default") => self.o.network.resolved(),
            Some("none") => RunNetwork::None,
            Some("host") => RunNetwork::Host,
            Some(n) => {
                return Err(self.err(i.line, format!("RUN --network={n}: none, host or default")))
            }
        };
        let created_by = match cmd {
            Command::Exec(v) => format!("RUN {}", serde_json::to_string(v).unwrap_or_default()),
            Command::Shell(_) => {
                let mut s = st.shell.join(" ");
                s.push(' ');
                s.push_str(args.last().map(String::as_str).unwrap_or(""));
                s
            }
        };
        let mut key_parts = vec![
            i.text.clone(),
            self.args_part(st),
            format!("{network:?}"),
            self.seccomp_key.clone(),
        ];
        for h in &i.heredocs {
            key_parts.push(h.body.clone());
        }
        // A bind mount of the context or a stage makes the result depend on it.
        for m in &mounts {
            if let Mount::Bind { from, source, .. } = m {
                match from {
                    None => {
                        let srcs = self
                            .context
                            .resolve(source)
                            .map_err(|e| self.err(i.line, e))?;
                        let d = self
                            .context
                            .digest(&srcs)
                            .map_err(|e| self.err(i.line, e))?;
                        key_parts.push(d.to_string());
                    }
                    Some(f) => key_parts.push(self.source_key(f, i.line)?),
                }
            }
        }
        let parts: Vec<&str> = key_parts.iter().map(String::as_str).collect();
        let key = cache::key(&st.key, &parts);
        if self.cache_hit(st, &key) {
            return Ok(());
        }
        let step = self.work.mount("run", &self.lowers(&st.state.layers))?;
        let mut views = Vec::new();
        let mut fds = Vec::new();
        let mut host = Vec::new();
        for m in &mounts {
            match m {
                Mount::Bind {
                    target,
                    from,
                    source,
                    rw,
                } => {
                    let fd = match from {
                        None => {
                            if *rw {
                                return Err(self.err(
                                    i.line,
                                    "RUN --mount=type=bind,rw of the build context is not supported",
                                ));
                            }
                            self.open_source(&self.context, source, i.line)?
                        }
                        Some(f) => {
                            let v = self.view(f, i.line)?;
                            let root = SourceRoot::open(v.rootfs(), false, Ignore::default())
                                .map_err(|e| self.err(i.line, e))?;
                            let fd = self.open_source(&root, source, i.line)?;
                            views.push(v);
                            fd
                        }
                    };
                    // The path the kernel resolved inside the root (no symlink left in it):
                    // the runtime clones bind sources by path, without following one.
                    let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                        .map_err(|e| self.err(i.line, format!("--mount source {source}: {e}")))?;
                    host.push(HostMount {
                        target: target.clone(),
                        source: Some(real),
                        readonly: !rw || from.is_none(),
                        tmpfs_size: None,
                    });
                    fds.push(fd);
                }
                Mount::Cache {
                    target,
                    id,
                    uid,
                    gid,
                    mode,
                    readonly,
                } => {
                    let name = Digest::of(id.as_bytes());
                    let dir = super::cache::mounts_dir(&self.store).join(name.hex());
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir).map_err(|e| self.err(i.line, e))?;
                        use std::os::unix::fs::PermissionsExt;
                        let _ = std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid));
                        let _ =
                            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(*mode));
                    }
                    host.push(HostMount {
                        target: target.clone(),
                        source: Some(dir),
                        readonly: *readonly,
                        tmpfs_size: None,
                    });
                }
                Mount::Tmpfs { target, size } => host.push(HostMount {
                    target: target.clone(),
                    source: None,
                    readonly: false,
                    tmpfs_size: *size,
                }),
                Mount::Secret {
                    id,
                    target,
                    required,
                    ..
                } => match self.o.secrets.get(id) {
                    Some(src) => host.push(HostMount {
                        target: target.clone(),
                        source: Some(src.clone()),
                        readonly: true,
                        tmpfs_size: None,
                    }),
                    None if *required => {
                        return Err(
                            self.err(i.line, format!("secret {id}: not given with --secret"))
                        )
                    }
                    None => {}
                },
            }
        }
        let id = format!(
            "build-{}",
            &Digest::of(format!("{}{:?}", key, std::time::SystemTime::now()).as_bytes()).hex()
                [..24]
        );
        self.work.note_container(&id);
        // On a bridge network: its namespace, set up before the container joins it and
        // torn down when `net` goes, however the step ends.
        let net = match &network {
            RunNetwork::Bridge(n) => Some(
                super::net::connect(self.engine, &step.dir, &id, n)
                    .map_err(|e| self.err(i.line, format!("RUN --network {n}: {e}")))?,
            ),
            _ => None,
        };
        // The runtime's own mount points count too: a RUN on an image without /proc must
        // not leave an empty /proc in its layer (nor one without /etc/hosts an empty one).
        let mut targets: Vec<&str> = vec!["/proc", "/sys", "/dev"];
        if net.is_some() {
            targets.extend(crate::etc_files::FILES.iter().map(|(_, dest)| *dest));
        }
        targets.extend(host.iter().map(|m| m.target.as_str()));
        let made = run::missing_paths(step.rootfs(), &targets);
        let mut env: Vec<String> = st
            .scope
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !st.scope.env.iter().any(|(k, _)| k == "PATH") {
            env.push(format!("PATH={}", husk_image::config::DEFAULT_PATH));
        }
        for (k, v) in st.scope.run_args(&self.o.build_args) {
            env.push(format!("{k}={v}"));
        }
        crate::run::single_threaded()?;
        let user = st.state.config["config"]["User"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let code = run::run(
            &crate::record::state_root(),
            &run::RunSpec {
                id,
                rootfs: step.rootfs(),
                bundle: &step.dir.join("bundle"),
                args: args.clone(),
                env,
                cwd: workdir,
                user: if user.is_empty() { "0".into() } else { user },
                netns: match (&network, &net) {
                    (_, Some(n)) => run::Netns::Join(&n.netns),
                    (RunNetwork::Host, _) => run::Netns::Host,
                    _ => run::Netns::Own,
                },
                etc_dir: net.as_ref().map(|_| step.dir.as_path()),
                seccomp: self.seccomp.as_ref(),
                mounts: host,
                quiet: self.o.quiet,
            },
        )
        .map_err(|e| self.err(i.line, e))?;
        drop(net);
        drop(fds);
        drop(views);
        if code != 0 {
            return Err(BuildError::RunFailed {
                file: self.file.clone(),
                line: i.line,
                step: i.text.clone(),
                cmd: args.join(" "),
                code,
            }
            .into());
        }
        run::remove_mount_points(&step.upper(), &made, &self.lowers(&st.state.layers));
        self.commit_step(st, step, key, &created_by)
    }

    /// A source in `root` opened (O_PATH), for a bind mount.
    fn open_source(
        &self,
        root: &SourceRoot,
        source: &str,
        line: usize,
    ) -> crate::Result<std::os::fd::OwnedFd> {
        let s = root.resolve(source).map_err(|e| self.err(line, e))?;
        let rel = s.first().map(|s| s.rel.clone()).unwrap_or_default();
        use std::os::fd::AsFd;
        husk_image::fsutil::open_in_root(root.fd.as_fd(), rel.as_bytes(), libc::O_PATH)
            .map_err(|e| self.err(line, format!("{source}: {e}")))
    }

    /// The cache-key part of a stage or image another step reads from.
    fn source_key(&self, from: &str, line: usize) -> crate::Result<String> {
        let cur = self.plan.stages.len();
        match self.plan.find(from, cur) {
            Some(s) => Ok(self
                .built
                .get(&s)
                .map(|b| b.key.to_string())
                .unwrap_or_default()),
            None => Ok(self.image(from, line)?.config_digest.to_string()),
        }
    }

    /// A mounted view of a stage's (or an image's) filesystem.
    fn view(&self, from: &str, line: usize) -> crate::Result<Step> {
        let cur = self.plan.stages.len();
        let layers = match self.plan.find(from, cur) {
            Some(s) => self
                .built
                .get(&s)
                .map(|b| b.state.layers.clone())
                .ok_or_else(|| {
                    self.err(line, format!("--from={from}: the stage is not built yet"))
                })?,
            None => self.image(from, line)?.layers,
        };
        Ok(self.work.mount("view", &self.lowers(&layers))?)
    }

    /// `--chown` as ids, names looked up in the rootfs's /etc/passwd and /etc/group.
    fn owner(&self, rootfs: &Path, spec: &str, line: usize) -> crate::Result<(u32, u32)> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let view = husk_image::config::RootfsView::Dir(rootfs.to_path_buf());
        let uid = match u.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                husk_image::config::resolve_user(&view, u)
                    .map_err(|e| self.err(line, format!("--chown={spec}: {e}")))?
                    .uid
            }
        };
        let gid = match g {
            None => uid,
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    husk_image::config::resolve_user(&view, &format!("0:{g}"))
                        .map_err(|e| self.err(line, format!("--chown={spec}: {e}")))?
                        .gid
                }
            },
        };
        Ok((uid, gid))
    }

    fn copy_step(
        &mut self,
        st: &mut StageRun,
        i: &Instruction,
        _stage: usize,
    ) -> crate::Result<()> {
        let (a, add) = match &i.kind {
            Kind::Copy(a) => (a, false),
            Kind::Add(a) => (a, true),
            _ => unreachable!(),
        };
        let kw = if add { "ADD" } else { "COPY" };
        // Known to docker, not done here: refused rather than silently ignored.
        for f in ["parents", "exclude", "keep-git-dir"] {
            if i.flag(f).is_some() {
                return Err(self.err(i.line, format!("{kw} --{f} is not supported")));
            }
        }
        let exp = |s: &str| -> crate::Result<String> {
            if a.json {
                expand_text(s, self.escape, &|k| st.scope.get(k)).map_err(|e| self.err(i.line, e))
            } else {
                self.expand(st, i.line, s)
            }
        };
        let workdir = Self::workdir(st);
        let mut dest = exp(&a.dest)?;
        if !dest.starts_with('/') {
            dest = if dest == "." || dest == "./" {
                format!("{}/", workdir.trim_end_matches('/'))
            } else {
                format!("{}/{dest}", workdir.trim_end_matches('/'))
            };
        }
        let chown = i
            .flag("chown")
            .map(|c| self.expand(st, i.line, c))
            .transpose()?;
        let chmod = match i.flag("chmod") {
            None => None,
            Some(m) => {
                let m = self.expand(st, i.line, m)?;
                Some(
                    u32::from_str_radix(&m, 8)
                        .ok()
                        .filter(|v| *v <= 0o7777)
                        .ok_or_else(|| {
                            self.err(i.line, format!("{kw} --chmod={m}: expected an octal mode"))
                        })?,
                )
            }
        };
        let from = i
            .flag("from")
            .map(|f| self.expand(st, i.line, f))
            .transpose()?;
        if add && from.is_some() {
            return Err(self.err(i.line, "ADD takes no --from"));
        }
        // The sources: heredocs, URLs (ADD), or paths/globs in the source root.
        let view = from.as_deref().map(|f| self.view(f, i.line)).transpose()?;
        let other_root = match &view {
            Some(v) => Some(
                SourceRoot::open(v.rootfs(), false, Ignore::default())
                    .map_err(|e| self.err(i.line, e))?,
            ),
            None => None,
        };
        let root = other_root.as_ref().unwrap_or(&self.context);
        let mut key_parts = vec![i.text.clone(), dest.clone(), format!("{chown:?} {chmod:?}")];
        if let Some(f) = &from {
            key_parts.push(self.source_key(f, i.line)?);
        }
        enum Item {
            Path(Source),
            Doc {
                name: String,
                body: String,
            },
            Url {
                name: String,
                file: tempfile_path::Tmp,
            },
        }
        let mut items = Vec::new();
        for s in &a.srcs {
            if let Some(name) = s
                .strip_prefix("<<")
                .map(|n| n.trim_start_matches('-').trim_matches(['"', '\'']))
            {
                if let Some(h) = i.heredocs.iter().find(|h| h.name == name) {
                    let body = if h.expand {
                        expand_text(&h.body, self.escape, &|k| st.scope.get(k))
                            .map_err(|e| self.err(i.line, e))?
                    } else {
                        h.body.clone()
                    };
                    key_parts.push(body.clone());
                    items.push(Item::Doc {
                        name: name.to_string(),
                        body,
                    });
                    continue;
                }
            }
            let s = exp(s)?;
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                let file = tempfile_path::Tmp::new(&self.work.path, "url");
                let d = download(&s, &file.0).map_err(|source| BuildError::Download {
                    file: self.file.clone(),
                    line: i.line,
                    url: s.clone(),
                    source,
                })?;
                if let Some(want) = i.flag("checksum") {
                    if want != d.to_string() {
                        return Err(
                            self.err(i.line, format!("ADD {s}: checksum {d} is not {want}"))
                        );
                    }
                }
                key_parts.push(d.to_string());
                let name = s
                    .split(['?', '#'])
                    .next()
                    .and_then(|u| u.rsplit('/').next())
                    .filter(|n| !n.is_empty())
                    .unwrap_or("download")
                    .to_string();
                items.push(Item::Url { name, file });
                continue;
            }
            let found = root
                .resolve(&s)
                .map_err(|e| self.err(i.line, format!("{kw} {e}")))?;
            let d = root
                .digest(&found)
                .map_err(|e| self.err(i.line, format!("{kw} {s}: {e}")))?;
            key_parts.push(d.to_string());
            items.extend(found.into_iter().map(Item::Path));
        }
        let parts: Vec<&str> = key_parts.iter().map(String::as_str).collect();
        let key = cache::key(&st.key, &parts);
        if self.cache_hit(st, &key) {
            return Ok(());
        }
        let step = self.work.mount("copy", &self.lowers(&st.state.layers))?;
        let dst = Dest::open(step.rootfs()).map_err(|e| self.err(i.line, e))?;
        let owner = chown
            .as_deref()
            .map(|c| self.owner(step.rootfs(), c, i.line))
            .transpose()?;
        let o = CopyOptions {
            owner,
            mode: chmod,
            mtime: self.o.timestamp,
        };
        let into_dir = dest.ends_with('/') || items.len() > 1 || dst.is_dir(&dest);
        let in_dir = |name: &str| format!("{}/{name}", dest.trim_end_matches('/'));
        let fail = |e: std::io::Error| self.err(i.line, format!("{kw} to {dest}: {e}"));
        for it in &items {
            match it {
                Item::Doc { name, body } => {
                    let target = if into_dir { in_dir(name) } else { dest.clone() };
                    dst.write_file(&target, &mut body.as_bytes(), 0o644, &o)
                        .map_err(fail)?;
                }
                Item::Url { name, file } => {
                    let target = if into_dir { in_dir(name) } else { dest.clone() };
                    let mut f = std::fs::File::open(&file.0).map_err(fail)?;
                    dst.write_file(&target, &mut f, 0o600, &o).map_err(fail)?;
                }
                Item::Path(src) => {
                    if add && !src.is_dir && from.is_none() {
                        use std::os::fd::AsFd;
                        let fd = husk_image::fsutil::open_in_root(
                            root.fd.as_fd(),
                            src.rel.as_bytes(),
                            libc::O_RDONLY,
                        )
                        .map_err(fail)?;
                        if copy::looks_like_tar(&fd) {
                            let f = std::io::BufReader::new(std::fs::File::from(fd));
                            let mut r = husk_image::pull::decompressing_reader(f).map_err(fail)?;
                            dst.extract(&dest, &mut r)
                                .map_err(|e| self.err(i.line, format!("ADD {}: {e}", src.rel)))?;
                            continue;
                        }
                    }
                    let target = if src.is_dir {
                        dest.clone()
                    } else if into_dir {
                        in_dir(src.rel.rsplit('/').next().unwrap_or(&src.rel))
                    } else {
                        dest.clone()
                    };
                    dst.copy(root, src, &target, &o)
                        .map_err(|e| self.err(i.line, format!("{kw} {}: {e}", src.rel)))?;
                }
            }
        }
        drop(dst);
        drop(view);
        let created_by = format!("/bin/sh -c #(nop) {}", i.text);
        self.commit_step(st, step, key, &created_by)
    }

    /// The final image: the config (with `--label`s) and the stage's layers into the store,
    /// tagged.
    fn commit_image(&mut self, mut state: State) -> crate::Result<BuildOutcome> {
        if !self.o.labels.is_empty() {
            let c = &mut state.config["config"];
            if !c.is_object() {
                *c = json!({});
            }
            let l = c
                .as_object_mut()
                .expect("object")
                .entry("Labels")
                .or_insert_with(|| json!({}));
            if !l.is_object() {
                *l = json!({});
            }
            for (k, v) in &self.o.labels {
                l[k] = v.clone().into();
            }
        }
        if let Some(t) = self.o.timestamp {
            state.config["created"] = now_or(Some(t)).into();
        }
        let mut names = Vec::new();
        for t in &self.o.tags {
            let r = self.engine.parse_ref(t)?;
            names.push(r.tagged_name().ok_or(crate::error::ImageError::NoTag)?);
        }
        let id = super::layer_bridge::write_image(
            &self.store,
            &state,
            &names,
            self.engine.settings().unpack_limits(),
        )?;
        for n in &names {
            self.say(&format!("Successfully tagged {n}"));
            crate::events::emit(
                self.engine.root(),
                "image",
                "tag",
                &id.to_string(),
                &[("name", n)],
            );
        }
        if let Some(p) = &self.o.iidfile {
            std::fs::write(p, id.to_string()).map_err(|e| crate::os::IoError {
                op: "writing the --iidfile",
                path: p.clone(),
                source: e,
            })?;
        }
        Ok(BuildOutcome {
            id,
            names,
            cached: self.cached.get(),
            layers_made: self.layers_made,
        })
    }
}

/// A file in the build's directory, removed when dropped.
mod tempfile_path {
    use std::path::{Path, PathBuf};
    pub struct Tmp(pub PathBuf);
    impl Tmp {
        pub fn new(dir: &Path, what: &str) -> Tmp {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            Tmp(dir.join(format!("{what}-{}", N.fetch_add(1, Ordering::Relaxed))))
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// GET `url` into `path`; the digest of what came.
fn download(url: &str, path: &Path) -> Result<Digest, DownloadError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(300)))
        .build()
        .into();
    let resp = agent
        .get(url)
        .call()
        .map_err(|e| DownloadError::Get(Box::new(e)))?;
    let mut body = resp.into_body();
    let mut r = body.as_reader();
    let f = std::fs::File::create(path).map_err(DownloadError::Io)?;
    let mut hw = husk_image::digest::HashingWriter::new(f);
    std::io::copy(&mut r, &mut hw).map_err(DownloadError::Io)?;
    let (d, _, _) = hw.finish();
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_durations() {
        assert_eq!(port_keys("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(port_keys("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(port_keys("8000-8002/tcp").unwrap().len(), 3);
        assert!(port_keys("x").is_err());
        assert!(port_keys("80/icmp").is_err());
        assert_eq!(duration_ns("30s").unwrap(), 30_000_000_000);
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("500ms").unwrap(), 500_000_000);
        assert!(duration_ns("5").is_err());
    }
}
