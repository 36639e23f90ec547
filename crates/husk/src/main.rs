//! husk: the engine people type. Argument parsing (cli.rs) and printing over husk-engine,
//! which does the work.

use clap::Parser;
use cli::{Cli, Cmd, ContainerCmd, ImageCmd, ListArgs};
use husk_engine::exit_status::ENGINE as EXIT_ENGINE;
use husk_engine::{
    ArchiveFormat, ContainerConfig, Credentials, Engine, EngineOptions, LogOptions, Progress,
    PullRequest, RunOutcome, Stream,
};
use husk_image::pull;
use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;
use std::time::Duration;

mod cli;
mod progress;

fn main() {
    // A helper of a detached container's monitor: not a command of ours.
    husk_engine::monitor::run_helper_if_asked();
    let args: Vec<_> = std::env::args_os().collect();
    // run and exec keep the codes 1-124 for the container's command: any failure of ours
    // is 125 there (docker's "Exit Status"), and 126/127 say why the command did not run.
    let failed = match cli::subcommand(&args) {
        Some("run" | "exec" | "create") => EXIT_ENGINE,
        _ => 1,
    };
    // An ordinary user's commands run as root of the user's namespace (husk_engine::userns);
    // not for help or the version.
    if cli::subcommand(&args)
        .is_some_and(|c| c != "help" && !args.iter().any(|a| a == "--help" || a == "-h"))
    {
        if let Err(e) = husk_engine::userns::enter() {
            fail_with(&e.to_string(), failed);
        }
    }
    // CVE-2019-5736: containers are started from a read-only view of this binary (see
    // husk_container::selfexe), so no container can write the host's copy.
    if args
        .iter()
        .skip(1)
        .any(|a| a == "run" || a == "exec" || a == "start" || a == "restart")
    {
        if let Err(e) = husk_engine::protect_executable() {
            fail_with(&e.to_string(), failed);
        }
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // As docker: a usage error is 125 whatever the command; help and version are
            // not errors.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { EXIT_ENGINE } else { 0 })
        }
    };
    if let Err(e) = run(cli) {
        fail_with(&e.to_string(), failed);
    }
}

/// The one error line and exit `code`; a broken stderr must not turn that into an abort.
fn fail_with(msg: &str, code: i32) -> ! {
    let _ = writeln!(std::io::stderr(), "husk: {msg}");
    std::process::exit(code)
}

/// What a command failed with: the engine's error or the CLI's own words; printed as one line.
type Failure = Box<dyn std::error::Error>;

/// Each of `containers` through `op`, printing its name once done (as docker does).
fn each(
    containers: &[String],
    mut op: impl FnMut(&str) -> husk_engine::Result<()>,
) -> Result<(), Failure> {
    for c in containers {
        op(c)?;
        println!("{c}");
    }
    Ok(())
}

fn json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap());
}

fn run(cli: Cli) -> Result<(), Failure> {
    let engine = Engine::new(EngineOptions {
        root: cli.root,
        config: cli.config,
        default_registry: cli.default_registry,
    })?;
    let e = &engine;
    match cli.cmd {
        Cmd::Run(a) => {
            let image = a.image.clone();
            let progress = pull_progress(a.quiet);
            let config = ContainerConfig::validate(&a.into())
                .map_err(|err| format!("run {image}: {err}"))?;
            match e.run_with_progress(&config, progress) {
                Ok(RunOutcome::Started { id }) => {
                    println!("{id}");
                    std::process::exit(0)
                }
                Ok(RunOutcome::Exited { code, .. }) => std::process::exit(code),
                Err(err) => fail_with(&err.to_string(), err.exit_code()),
            }
        }
        Cmd::Create(a) => {
            let image = a.image.clone();
            let progress = pull_progress(a.quiet);
            let config = ContainerConfig::validate(&a.into())
                .map_err(|err| format!("create {image}: {err}"))?;
            println!("{}", e.create(&config, progress)?);
            Ok(())
        }
        Cmd::Wait { containers } => {
            for c in &containers {
                println!("{}", e.wait(c)?);
            }
            Ok(())
        }
        Cmd::Rename {
            container,
            new_name,
        } => Ok(e.rename(&container, &new_name)?),
        Cmd::Exec(a) => match e.exec(&a.container, &a.cmd, &a.process.into()) {
            Ok(code) => std::process::exit(code),
            Err(err) => fail_with(&err.to_string(), err.exit_code()),
        },
        Cmd::Ps { all, format } => match format.as_str() {
            "table" | "json" => {
                ps(e, all, format == "json");
                Ok(())
            }
            f => Err(format!("ps: --format {f:?}: use table or json").into()),
        },
        Cmd::Logs {
            follow,
            tail,
            timestamps,
            container,
        } => Ok(e.logs(&container, LogOptions { follow, tail }, &mut |l| {
            let prefix = if timestamps {
                format!("{} ", l.time)
            } else {
                String::new()
            };
            let _ = if l.stream == Stream::Stderr {
                write!(std::io::stderr(), "{prefix}{}", l.text)
            } else {
                let mut o = std::io::stdout().lock();
                write!(o, "{prefix}{}", l.text).and_then(|_| o.flush())
            };
        })?),
        Cmd::Kill { signal, containers } => each(&containers, |c| e.kill(c, &signal)),
        Cmd::Pause { containers } => each(&containers, |c| e.pause(c)),
        Cmd::Unpause { containers } => each(&containers, |c| e.unpause(c)),
        Cmd::Inspect { format, containers } => match format.as_str() {
            "json" => {
                json(&e.inspect(&containers)?);
                Ok(())
            }
            f => Err(format!("inspect: --format {f:?}: only json is supported").into()),
        },
        Cmd::Start { containers } => each(&containers, |c| e.start(c)),
        Cmd::Restart { time, containers } => each(&containers, |c| {
            e.stop(c, Duration::from_secs(time))?;
            e.start(c)
        }),
        Cmd::Top { container } => {
            let procs = e.top(&container)?;
            println!("{:>8}  COMMAND", "PID");
            for p in procs {
                println!("{:>8}  {}", p.pid, p.cmdline.join(" "));
            }
            Ok(())
        }
        Cmd::Cp { src, dst } => Ok(e.copy(&src, &dst)?),
        Cmd::Stats {
            no_stream,
            format,
            containers,
        } => match format.as_str() {
            "table" | "json" => stats(e, &containers, no_stream, format == "json"),
            f => Err(format!("stats: --format {f:?}: use table or json").into()),
        },
        Cmd::Container {
            cmd: ContainerCmd::Prune,
        } => Ok(e.prune(&mut |id| println!("{id}"))?),
        Cmd::Stop { time, containers } => {
            each(&containers, |c| e.stop(c, Duration::from_secs(time)))
        }
        Cmd::Rm { force, containers } => each(&containers, |c| e.remove(c, force)),
        Cmd::Pull {
            reference,
            platform,
            quiet,
            jobs,
            reg,
        } => {
            let progress = pull_progress(quiet);
            let rec = e.pull(
                &reference,
                &PullRequest {
                    platform,
                    jobs,
                    registry: reg.into(),
                    progress,
                },
            )?;
            println!("{}", rec.config_digest.hex());
            Ok(())
        }
        Cmd::Push {
            image,
            dest,
            quiet,
            reg,
        } => {
            let d = e.push(&image, dest.as_deref(), &reg.into())?;
            if !quiet {
                eprintln!("Pushed {d}");
            }
            Ok(())
        }
        Cmd::Images(a)
        | Cmd::Image {
            cmd: ImageCmd::Ls(a),
        } => images(e, &a),
        Cmd::Rmi { images, force }
        | Cmd::Image {
            cmd: ImageCmd::Rm { images, force },
        } => {
            let mut failed = 0;
            for i in &images {
                match e.remove_image(i, force) {
                    Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
                    Err(err) if images.len() == 1 => return Err(format!("rmi {i}: {err}").into()),
                    Err(err) => {
                        eprintln!("husk: rmi {i}: {err}");
                        failed += 1;
                    }
                }
            }
            e.remove_unused_layers()
                .map_err(|err| format!("rmi: {err}"))?;
            let failed = (failed > 0)
                .then(|| format!("rmi: {failed} of {} images not removed", images.len()));
            failed.map_or(Ok(()), |f| Err(f.into()))
        }
        Cmd::Tag { image, name } => Ok(e.tag(&image, &name)?),
        Cmd::Image { cmd } => image_cmd(e, cmd),
        Cmd::Load { input, quiet } => {
            let what = input
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "stdin".into());
            let loaded = match &input {
                Some(p) => {
                    let f = std::fs::File::open(p).map_err(|err| format!("load {what}: {err}"))?;
                    e.load(f)
                }
                None => e.load(std::io::stdin().lock()),
            }
            .map_err(|err| format!("load {what}: {err}"))?;
            for (name, rec) in loaded {
                if !quiet {
                    println!(
                        "Loaded image: {}",
                        name.unwrap_or_else(|| rec.config_digest.to_string())
                    );
                }
            }
            Ok(())
        }
        Cmd::Save {
            image,
            output,
            format,
        } => {
            let fmt = ArchiveFormat::parse(&format)?;
            match &output {
                Some(p) => {
                    // The image first: no empty file for an image that is not there.
                    e.resolve_image(&image)
                        .map_err(|err| format!("save {image}: {err}"))?;
                    let f = std::fs::File::create(p)
                        .map_err(|err| format!("save {}: {err}", p.display()))?;
                    Ok(e.save(&image, fmt, std::io::BufWriter::new(f))?)
                }
                None => {
                    if std::io::stdout().is_terminal() {
                        return Err(
                            "save: refusing to write a tarball to a terminal; use -o FILE".into(),
                        );
                    }
                    Ok(e.save(&image, fmt, std::io::stdout().lock())?)
                }
            }
        }
        Cmd::Login {
            registry,
            username,
            password,
            password_stdin,
            reg,
        } => {
            let username = match username {
                Some(u) => u,
                None => return Err(format!("login {registry}: --username is required").into()),
            };
            let password = if password_stdin {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|err| format!("login {registry}: {err}"))?;
                s.trim_end_matches(['\n', '\r']).to_string()
            } else {
                password.ok_or_else(|| {
                    format!("login {registry}: --password or --password-stdin is required")
                })?
            };
            e.login(&registry, Credentials { username, password }, &reg.into())?;
            println!("Login Succeeded!");
            Ok(())
        }
        Cmd::BenchDecode { file } => {
            let n = pull::decode_layer_file(&file).map_err(|err| format!("bench-decode: {err}"))?;
            println!("{n}");
            Ok(())
        }
        Cmd::BenchUnpack { file, dir } => {
            let (diff, st) = pull::unpack_layer_file(&file, &dir)
                .map_err(|err| format!("bench-unpack: {err}"))?;
            println!("{diff} {} entries {} bytes", st.entries, st.bytes);
            Ok(())
        }
        Cmd::Logout { registry, authfile } => {
            if e.logout(&registry, authfile)? {
                println!("Removed login credentials for {registry}");
                Ok(())
            } else {
                Err(format!("logout {registry}: not logged in").into())
            }
        }
    }
}

/// What a pull shows: bars on a terminal, nothing with -q or when stderr is not one.
fn pull_progress(quiet: bool) -> Arc<dyn Progress> {
    if !quiet && std::io::stderr().is_terminal() {
        Arc::new(progress::Bars::new())
    } else {
        Arc::new(pull::NoProgress)
    }
}

/// `husk ps`: a table or JSON.
fn ps(e: &Engine, all: bool, as_json: bool) {
    let rows = e.containers(all);
    if as_json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "name": r.name,
                    "image": r.image,
                    "created": r.created,
                    "status": r.status,
                    "exit_code": r.exit_code,
                    "pid": r.pid,
                })
            })
            .collect();
        json(&v);
        return;
    }
    println!(
        "{:<12}  {:<30}  {:<12}  {:<30}  NAME",
        "CONTAINER ID", "IMAGE", "STATUS", "CREATED"
    );
    for r in rows {
        let status = match (r.status, r.exit_code) {
            ("exited", Some(c)) => format!("exited ({c})"),
            (s, _) => s.to_string(),
        };
        println!(
            "{:<12}  {:<30}  {:<12}  {:<30}  {}",
            &r.id[..r.id.len().min(12)],
            r.image,
            status,
            r.created,
            r.name
        );
    }
}

/// `husk stats`: once with `no_stream`, else every second until interrupted; `json` prints
/// the cgroup statistics themselves, one JSON object per line.
fn stats(e: &Engine, what: &[String], no_stream: bool, as_json: bool) -> Result<(), Failure> {
    let mut sampler = e.stats(what)?;
    loop {
        std::thread::sleep(Duration::from_millis(if no_stream { 200 } else { 1000 }));
        let rows = sampler.sample()?;
        if !as_json {
            println!(
                "{:<12}  {:<20}  {:>7}  {:>21}  {:>5}",
                "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "PIDS"
            );
        }
        for r in rows {
            if as_json {
                let mut v = r.raw;
                v["id"] = r.id.into();
                v["name"] = r.name.into();
                v["cpu_percent"] = r.cpu_percent.into();
                println!("{v}");
                continue;
            }
            let mib = |b: u64| format!("{:.1}MiB", b as f64 / (1u64 << 20) as f64);
            let limit = r.memory_limit.map_or("-".to_string(), mib);
            println!(
                "{:<12}  {:<20}  {:>6.2}%  {:>21}  {:>5}",
                &r.id[..12.min(r.id.len())],
                r.name,
                r.cpu_percent,
                format!("{} / {limit}", mib(r.memory_usage)),
                r.pids
            );
        }
        if no_stream {
            return Ok(());
        }
    }
}

fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.3} {}", units[i]).replace(".000", "")
    }
}

/// `husk images`.
fn images(e: &Engine, a: &ListArgs) -> Result<(), Failure> {
    let imgs = e.images()?;
    if a.quiet {
        for i in &imgs {
            println!("{}", &i.id[..12]);
        }
        return Ok(());
    }
    match a.format.as_str() {
        "json" => {
            let v: Vec<serde_json::Value> = imgs
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "id": i.id,
                        "names": i.names,
                        "digest": i.digest,
                        "created": i.created,
                        "size": i.size,
                        "compressed_size": i.compressed_size,
                        "platform": i.platform,
                    })
                })
                .collect();
            json(&v);
        }
        "table" => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{:<40} {:<16} {:<14} {:<21} SIZE",
                "REPOSITORY", "TAG", "IMAGE ID", "CREATED"
            );
            for i in &imgs {
                let size = human(i.size);
                let created = i
                    .created
                    .as_deref()
                    .map(|c| c.chars().take(19).collect::<String>().replace('T', " "))
                    .unwrap_or_default();
                let id = &i.id[..12];
                let rows: Vec<(String, String)> = if i.names.is_empty() {
                    vec![("<none>".into(), "<none>".into())]
                } else {
                    i.names
                        .iter()
                        .map(|n| match n.rsplit_once(':') {
                            Some((repo, tag)) if !tag.contains('/') => {
                                (repo.to_string(), tag.to_string())
                            }
                            _ => (n.clone(), "<none>".into()),
                        })
                        .collect()
                };
                for (repo, tag) in rows {
                    let _ = writeln!(out, "{repo:<40} {tag:<16} {id:<14} {created:<21} {size}");
                }
            }
        }
        f => return Err(format!("images: unknown format {f:?} (table, json)").into()),
    }
    Ok(())
}

fn image_cmd(e: &Engine, cmd: ImageCmd) -> Result<(), Failure> {
    match cmd {
        ImageCmd::Ls(_) | ImageCmd::Rm { .. } => unreachable!("handled by caller"),
        ImageCmd::Inspect { images } => {
            json(&e.inspect_images(&images)?);
            Ok(())
        }
        ImageCmd::Prune { all } => {
            let r = e.prune_images(all)?;
            println!(
                "Removed {} images, {} layers, {} blobs",
                r.images, r.layers, r.blobs
            );
            Ok(())
        }
        ImageCmd::Unpack { image, dir } => Ok(e.unpack_image(&image, &dir)?),
        ImageCmd::Lowerdirs { image } => {
            let dirs: Vec<String> = e
                .image_layer_dirs(&image)?
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            println!("{}", dirs.join(":"));
            Ok(())
        }
        ImageCmd::Process {
            image,
            rootfs,
            user,
            entrypoint,
            workdir,
            env,
            args,
        } => {
            let ov = husk_image::config::Overrides {
                user,
                entrypoint: entrypoint.map(|e| if e.is_empty() { vec![] } else { vec![e] }),
                cmd: if args.is_empty() { None } else { Some(args) },
                env,
                workdir,
            };
            json(&e.image_process(&image, rootfs, &ov)?);
            Ok(())
        }
    }
}
