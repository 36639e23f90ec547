//! husk: the engine people type. Argument parsing (cli.rs) and printing over husk-engine,
//! which does the work.

use clap::{CommandFactory, Parser};
use cli::{
    Cli, Cmd, ContainerCmd, ContainerOp, EventsArgs, HealthcheckCmd, ImageCmd, ImageOp,
    InspectType, ListArgs, NetworkCmd, PsArgs, SystemCmd, VolumeCmd,
};
use format::{print_items, print_rows, Format};
use husk_engine::events::EventQuery;
use husk_engine::exit_status::ENGINE as EXIT_ENGINE;
use husk_engine::views::{self, ContainerFilter, PsOptions};
use husk_engine::{
    ArchiveFormat, ContainerConfig, Credentials, Engine, EngineOptions, LogOptions, Progress,
    PullRequest, RunOutcome, Stream,
};
use husk_image::pull;
use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;
use std::time::Duration;

mod cli;
mod format;
mod kube;
mod options;
mod pod;
mod progress;
mod prompt;

fn main() {
    // A helper of a detached container's monitor: not a command of ours.
    husk_engine::monitor::run_helper_if_asked();
    let args: Vec<_> = std::env::args_os().collect();
    // run and exec keep the codes 1-124 for the container's command: any failure of ours
    // is 125 there (docker's "Exit Status"), and 126/127 say why the command did not run.
    let failed = match cli::subcommand(&args) {
        // `healthcheck run` keeps 1 for a failed check (podman's codes).
        // `kube`/`play kube`: podman's 125 for a manifest it cannot play; checkpoint and
        // restore are podman's own commands: its 125 for every failure.
        Some(
            "run" | "exec" | "create" | "healthcheck" | "build" | "kube" | "play" | "checkpoint"
            | "restore",
        ) => EXIT_ENGINE,
        _ => 1,
    };
    // `husk images | head -1`: a closed stdout ends husk quietly, as it ends any Unix
    // filter, instead of a panic in println!. Not for the commands that proxy a
    // container's I/O: there a reader going away must not kill husk between the
    // container and its record.
    if !matches!(
        cli::subcommand(&args),
        Some("run" | "exec" | "start" | "restart")
    ) {
        // SAFETY: restoring a signal's default disposition, before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    // An ordinary user's commands run as root of the user's namespace (husk_engine::userns);
    // not for help or the version. Asked by what clap makes of the arguments, not by a
    // `-h` anywhere: `run IMAGE httpd -h /www` is the container's `-h`.
    let parsed = Cli::try_parse();
    let shows_help = matches!(&parsed, Err(e) if !e.use_stderr());
    if cli::subcommand(&args).is_some_and(|c| c != "help") && !shows_help {
        if let Err(e) = husk_engine::userns::enter() {
            fail_with(&e.to_string(), failed);
        }
    }
    // CVE-2019-5736: containers are started from a read-only view of this binary (see
    // husk_container::selfexe), so no container can write the host's copy.
    if args.iter().skip(1).any(|a| {
        [
            "run",
            "exec",
            "start",
            "restart",
            "healthcheck",
            "build",
            "play",
            "restore",
        ]
        .iter()
        .any(|c| a.as_os_str() == *c)
    }) {
        if let Err(e) = husk_engine::protect_executable() {
            fail_with(&e.to_string(), failed);
        }
    }
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            // As docker: a usage error is 125 whatever the command; help and version are
            // not errors.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { EXIT_ENGINE } else { 0 })
        }
    };
    if let Cmd::Completion { shell } = cli.cmd {
        let shell = match shell {
            cli::Shell::Bash => clap_complete::Shell::Bash,
            cli::Shell::Zsh => clap_complete::Shell::Zsh,
            cli::Shell::Fish => clap_complete::Shell::Fish,
        };
        clap_complete::generate(shell, &mut Cli::command(), "husk", &mut std::io::stdout());
        return;
    }
    if let Err(e) = run(cli) {
        match e.downcast_ref::<husk_engine::Error>() {
            // A build's failed RUN exits with the command's status (as buildah).
            Some(e) if cli::subcommand(&args) == Some("build") => {
                fail_with(&with_hint(e), e.exit_code())
            }
            Some(e) => fail_with(&with_hint(e), failed),
            None => fail_with(&e.to_string(), failed),
        }
    }
}

/// The engine's error as one line, with what to do about the failures a new user meets
/// first: a registry's CA we do not know, a registry that wants a login.
fn with_hint(e: &husk_engine::Error) -> String {
    let hint = match e.root() {
        husk_engine::Error::Image(husk_image::Error::UntrustedCertificate { registry, .. }) => {
            format!(
                "the registry's certificate is not signed by a CA husk trusts: put the CA \
                 certificate in DIR/{registry}/ca.crt and give --cert-dir DIR (default {})",
                husk_image::settings::default_cert_dir().display()
            )
        }
        husk_engine::Error::Image(husk_image::Error::AuthRequired { registry }) => format!(
            "log in with `husk login {registry}` (or give --creds USER:PASSWORD or --authfile)"
        ),
        _ => return e.to_string(),
    };
    format!("{e}: {hint}")
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

/// docker's default `ps` columns, and the column names of every field a template can use.
const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Pod", "POD ID"),
    ("PodName", "PODNAME"),
];
const DF_TABLE: &str = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
const DF_HEADERS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];
const HISTORY_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
const HISTORY_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];
const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const IMAGES_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedSince", "CREATED"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
];
const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
const STATS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

fn run(cli: Cli) -> Result<(), Failure> {
    let engine = Engine::new(EngineOptions {
        root: cli.root,
        config: cli.config,
        default_registry: cli.default_registry,
        cgroup_manager: match cli.cgroup_manager.as_deref() {
            Some("systemd") => husk_engine::CgroupManager::Systemd,
            Some(_) => husk_engine::CgroupManager::Cgroupfs,
            None => husk_engine::cgroup_place::default_manager(),
        },
    })?;
    let e = &engine;
    // `husk container run` is `husk run`, `husk image pull` is `husk pull`.
    let cmd = match cli.cmd {
        Cmd::Container {
            cmd: ContainerCmd::Op(op),
        } => Cmd::Ctr(op),
        Cmd::Image {
            cmd: ImageCmd::Op(op),
        } => Cmd::Img(op),
        cmd => cmd,
    };
    match cmd {
        Cmd::Ctr(ContainerOp::Run(a)) => {
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
                Err(err) => fail_with(&with_hint(&err), err.exit_code()),
            }
        }
        Cmd::Ctr(ContainerOp::Create(a)) => {
            let image = a.image.clone();
            let progress = pull_progress(a.quiet);
            let config = ContainerConfig::validate(&a.into())
                .map_err(|err| format!("create {image}: {err}"))?;
            println!("{}", e.create(&config, progress)?);
            Ok(())
        }
        Cmd::Ctr(ContainerOp::Wait { containers }) => {
            for c in &containers {
                println!("{}", e.wait(c)?);
            }
            Ok(())
        }
        Cmd::Ctr(ContainerOp::Rename {
            container,
            new_name,
        }) => Ok(e.rename(&container, &new_name)?),
        Cmd::Ctr(ContainerOp::Port { container, port }) => {
            print_ports(e, &container, port.as_deref())
        }
        Cmd::Network { cmd } => network(e, cmd),
        Cmd::Ctr(ContainerOp::Exec(a)) => match e.exec(&a.container, &a.cmd, &a.process.into()) {
            Ok(code) => std::process::exit(code),
            Err(err) => fail_with(&with_hint(&err), err.exit_code()),
        },
        Cmd::Ps(a)
        | Cmd::Container {
            cmd: ContainerCmd::Ls(a),
        } => ps(e, &a),
        Cmd::Ctr(ContainerOp::Attach {
            container,
            no_stdin,
            detach_keys,
            sig_proxy,
        }) => {
            let o = husk_engine::AttachOptions {
                stdin: !no_stdin,
                detach_keys,
                sig_proxy,
            };
            attach_end(e.attach_to(&container, &o)?)
        }
        Cmd::Ctr(ContainerOp::Logs {
            follow,
            tail,
            timestamps,
            container,
        }) => Ok(e.logs(
            &container,
            LogOptions { follow, tail },
            &mut print_log_line(timestamps),
        )?),
        Cmd::Ctr(ContainerOp::Kill { signal, containers }) => {
            each(&containers, |c| e.kill(c, &signal))
        }
        Cmd::Ctr(ContainerOp::Pause { containers }) => each(&containers, |c| e.pause(c)),
        Cmd::Ctr(ContainerOp::Unpause { containers }) => each(&containers, |c| e.unpause(c)),
        Cmd::Inspect {
            format,
            kind,
            targets,
        } => inspect(e, &targets, kind, format.as_deref()),
        Cmd::Container {
            cmd: ContainerCmd::Inspect { format, containers },
        } => inspect(
            e,
            &containers,
            Some(InspectType::Container),
            format.as_deref(),
        ),
        Cmd::Ctr(ContainerOp::Start {
            attach: true,
            interactive,
            detach_keys,
            containers,
        }) => {
            let [c] = &containers[..] else {
                return Err("start -a: one container at a time".into());
            };
            let o = husk_engine::AttachOptions {
                stdin: interactive,
                detach_keys,
                sig_proxy: true,
            };
            attach_end(e.start_attached(c, &o)?)
        }
        Cmd::Ctr(ContainerOp::Start { containers, .. }) => each(&containers, |c| e.start(c)),
        Cmd::Ctr(ContainerOp::Restart { time, containers }) => each(&containers, |c| {
            e.stop(c, Duration::from_secs(time))?;
            e.start(c)
        }),
        Cmd::Container {
            cmd: ContainerCmd::Op(_),
        } => unreachable!("made Cmd::Ctr above"),
        Cmd::Ctr(ContainerOp::Top { container }) => {
            let procs = e.top(&container)?;
            println!("{:>8}  COMMAND", "PID");
            for p in procs {
                println!("{:>8}  {}", p.pid, p.cmdline.join(" "));
            }
            Ok(())
        }
        Cmd::Ctr(ContainerOp::Diff { container }) => {
            let mut o = std::io::stdout().lock();
            for c in e.diff(&container)? {
                if writeln!(o, "{} {}", c.kind, c.path).is_err() {
                    break; // a closed pipe: quietly done
                }
            }
            Ok(())
        }
        Cmd::Ctr(ContainerOp::Commit {
            container,
            reference,
            change,
            message,
            author,
            pause,
            compression,
            timestamp,
        }) => {
            let o = options::commit(
                reference,
                change,
                message,
                author,
                pause,
                &compression,
                timestamp,
            )?;
            println!("{}", e.commit(&container, &o)?);
            Ok(())
        }
        Cmd::Ctr(ContainerOp::Export { container, output }) => match &output {
            Some(p) => {
                // The container first: no empty file for one that is not there.
                e.inspect(std::slice::from_ref(&container))?;
                let f = std::fs::File::create(p)
                    .map_err(|err| format!("export {}: {err}", p.display()))?;
                let mut w = std::io::BufWriter::new(f);
                e.export(&container, &mut w)?;
                w.flush()
                    .map_err(|err| format!("export {}: {err}", p.display()))?;
                Ok(())
            }
            None if std::io::stdout().is_terminal() => {
                Err("export: refusing to write a tarball to a terminal; use -o FILE".into())
            }
            None => {
                let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                e.export(&container, &mut w)?;
                w.flush().map_err(|err| format!("export: {err}"))?;
                Ok(())
            }
        },
        Cmd::Events(a)
        | Cmd::System {
            cmd: SystemCmd::Events(a),
        } => events(e, &a),
        Cmd::System {
            cmd: SystemCmd::Df { format },
        } => Ok(print_rows(
            &e.disk_usage()?,
            &Format::parse(format.as_deref(), DF_TABLE),
            DF_HEADERS,
        )?),
        Cmd::System {
            cmd:
                SystemCmd::Prune {
                    all,
                    volumes,
                    force,
                },
        } => {
            if !force && !confirm_prune(all, volumes) {
                return Ok(());
            }
            let r = e.system_prune(all, volumes)?;
            let mut o = std::io::stdout().lock();
            if !r.containers.is_empty() {
                writeln!(o, "Deleted Containers:\n{}\n", r.containers.join("\n"))?;
            }
            if !r.images.is_empty() {
                writeln!(o, "Deleted Images:\n{}\n", r.images.join("\n"))?;
            }
            if !r.volumes.is_empty() {
                writeln!(o, "Deleted Volumes:\n{}\n", r.volumes.join("\n"))?;
            }
            if r.build_cache > 0 {
                writeln!(o, "Deleted build cache objects: {}\n", r.build_cache)?;
            }
            writeln!(
                o,
                "Total reclaimed space: {}",
                views::human_size(r.reclaimed)
            )?;
            Ok(())
        }
        Cmd::Img(ImageOp::History {
            image,
            human,
            no_trunc,
            quiet,
            format,
        }) => {
            let rows = e.history(&image, no_trunc, human)?;
            if quiet {
                let mut o = std::io::stdout().lock();
                for r in &rows {
                    writeln!(o, "{}", r.id)?;
                }
                return Ok(());
            }
            Ok(print_rows(
                &rows,
                &Format::parse(format.as_deref(), HISTORY_TABLE),
                HISTORY_HEADERS,
            )?)
        }
        Cmd::Img(ImageOp::Build(a)) => {
            let stdin_file = if a.file.as_deref() == Some("-") {
                let mut t = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
                    .map_err(|err| format!("build: reading the Containerfile from stdin: {err}"))?;
                Some(t)
            } else {
                None
            };
            let o = options::build_options(a, stdin_file).map_err(|m| format!("build: {m}"))?;
            let mut out = std::io::stdout();
            let done = e.build(&o, &mut out)?;
            println!(
                "{}",
                if o.quiet {
                    done.id.to_string()
                } else {
                    done.id.hex().to_string()
                }
            );
            Ok(())
        }
        Cmd::Img(ImageOp::Import {
            file,
            reference,
            change,
            message,
        }) => {
            let id = if file == "-" {
                e.import(
                    &mut std::io::stdin().lock(),
                    reference.as_deref(),
                    &change,
                    message.as_deref(),
                )?
            } else {
                let mut f =
                    std::fs::File::open(&file).map_err(|err| format!("import {file}: {err}"))?;
                e.import(&mut f, reference.as_deref(), &change, message.as_deref())?
            };
            println!("{id}");
            Ok(())
        }
        Cmd::Ctr(ContainerOp::Cp { src, dst }) => Ok(e.copy(&src, &dst)?),
        Cmd::Ctr(ContainerOp::Stats {
            no_stream,
            no_trunc,
            format,
            containers,
        }) => {
            let f = Format::parse(format.as_deref(), STATS_TABLE);
            stats(e, &containers, no_stream, no_trunc, &f)
        }
        Cmd::Container {
            cmd: ContainerCmd::Prune,
        } => Ok(e.prune(&mut |id| println!("{id}"))?),
        Cmd::Container {
            cmd:
                ContainerCmd::Checkpoint {
                    export,
                    leave_running,
                    tcp_established,
                    keep,
                    containers,
                },
        } => {
            if export.is_some() && containers.len() > 1 {
                return Err("checkpoint --export: one container at a time".into());
            }
            let o = husk_engine::checkpoint::CheckpointOptions {
                export,
                leave_running,
                tcp_established,
                keep,
            };
            each(&containers, |c| e.checkpoint(c, &o))
        }
        Cmd::Container {
            cmd:
                ContainerCmd::Restore {
                    import,
                    name,
                    tcp_established,
                    keep,
                    containers,
                },
        } => {
            let o = husk_engine::checkpoint::RestoreOptions {
                import,
                name,
                tcp_established,
                keep,
            };
            if o.import.is_some() {
                // podman's: --import names its container itself.
                if !containers.is_empty() {
                    return Err("restore --import: no container names with it".into());
                }
                println!("{}", e.restore(None, &o)?);
                return Ok(());
            }
            if containers.is_empty() {
                return Err("restore: give a container or --import FILE".into());
            }
            for c in &containers {
                println!("{}", e.restore(Some(c), &o)?);
            }
            Ok(())
        }
        Cmd::Ctr(ContainerOp::Stop { time, containers }) => {
            each(&containers, |c| e.stop(c, Duration::from_secs(time)))
        }
        Cmd::Ctr(ContainerOp::Rm {
            force,
            volumes,
            containers,
        }) => each(&containers, |c| e.remove_with_volumes(c, force, volumes)),
        Cmd::Volume { cmd } => volume_cmd(e, cmd),
        Cmd::Img(ImageOp::Pull {
            reference,
            platform,
            quiet,
            jobs,
            reg,
        }) => {
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
        Cmd::Img(ImageOp::Push {
            image,
            dest,
            quiet,
            reg,
        }) => {
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
        Cmd::Img(ImageOp::Tag { image, name }) => Ok(e.tag(&image, &name)?),
        Cmd::Image { cmd } => image_cmd(e, cmd),
        Cmd::Img(ImageOp::Load { input, quiet }) => {
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
        Cmd::Img(ImageOp::Save {
            image,
            output,
            format,
        }) => {
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
            // What is missing is asked on the terminal (stdin may carry the password).
            let asked = |r: Result<String, prompt::PromptError>| {
                r.map_err(|err| format!("login {registry}: {err}"))
            };
            let username = match username {
                Some(u) => u,
                None => asked(prompt::username())?,
            };
            let password = match password {
                Some(p) => p,
                None if password_stdin => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|err| format!("login {registry}: {err}"))?;
                    s.trim_end_matches(['\n', '\r']).to_string()
                }
                None => asked(prompt::password())?,
            };
            let file = e.login(&registry, Credentials { username, password }, &reg.into())?;
            eprintln!("Credentials saved in {}", file.display());
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
        Cmd::Version { format } => Ok(version(&e.version(), format.as_deref())?),
        Cmd::Info { format } => Ok(info(&e.info()?, format.as_deref())?),
        Cmd::Healthcheck {
            cmd: HealthcheckCmd::Run { container },
        } => {
            // podman's: 0 healthy; 1, with the status, when not (yet).
            let status = e.healthcheck_run(&container)?;
            if status != "healthy" {
                println!("{status}");
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Pod { cmd } => pod::run(e, cmd),
        Cmd::Kube { cmd } => kube::run(e, cmd),
        Cmd::Play {
            cmd: cli::PlayCmd::Kube(a),
        } => kube::run(e, cli::KubeCmd::Play(a)),
        Cmd::Completion { .. } => unreachable!("answered before the engine is opened"),
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

/// `husk ps`: docker's columns, or what `--format` asks for.
fn ps(e: &Engine, a: &PsArgs) -> Result<(), Failure> {
    let filter = ContainerFilter::parse(&a.filter).map_err(|err| format!("ps: {err}"))?;
    let rows = e.ps(&PsOptions {
        all: a.all,
        last: if a.latest { Some(1) } else { a.last },
        filter,
        no_trunc: a.no_trunc,
    });
    if a.quiet {
        let mut out = std::io::stdout().lock();
        for r in &rows {
            writeln!(out, "{}", r.id)?;
        }
        return Ok(());
    }
    // --pod: podman's two more columns.
    let table = match a.pod {
        true => format!("{PS_TABLE}\t{{{{.Pod}}}}\t{{{{.PodName}}}}"),
        false => PS_TABLE.to_string(),
    };
    Ok(print_rows(
        &rows,
        &Format::parse(a.format.as_deref(), &table),
        PS_HEADERS,
    )?)
}

/// One `inspect` result: docker prints containers and images in one array.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Inspected {
    Container(Box<husk_engine::ContainerInspect>),
    Image(Box<husk_engine::ImageInspect>),
}

/// `husk inspect`: each target as a container, else as an image (as docker looks them up),
/// unless `--type` says which.
fn inspect(
    e: &Engine,
    targets: &[String],
    kind: Option<InspectType>,
    format: Option<&str>,
) -> Result<(), Failure> {
    let mut items = Vec::new();
    for t in targets {
        let one = std::slice::from_ref(t);
        if kind != Some(InspectType::Image) {
            match e.inspect(one) {
                Ok(mut c) => {
                    items.push(Inspected::Container(Box::new(c.remove(0))));
                    continue;
                }
                Err(err) if kind == Some(InspectType::Container) => return Err(err.into()),
                Err(_) => {}
            }
        }
        match e.inspect_images(one) {
            Ok(mut i) => items.push(Inspected::Image(Box::new(i.remove(0)))),
            Err(_) if kind.is_none() => {
                return Err(format!("inspect: no such container or image: {t}").into())
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(print_items(&items, format)?)
}

/// `husk version`: docker's layout, or a template over it.
fn version(v: &views::VersionView, format: Option<&str>) -> Result<(), Failure> {
    if format.is_some() {
        return Ok(print_items(std::slice::from_ref(v), format)?);
    }
    let mut out = std::io::stdout().lock();
    for (title, p) in [("Client", &v.client), ("Server", &v.server)] {
        writeln!(out, "{title}:")?;
        writeln!(out, " Version:           {}", p.version)?;
        writeln!(out, " API version:       {}", p.api_version)?;
        writeln!(out, " OS/Arch:           {}/{}", p.os, p.arch)?;
        writeln!(out, " Kernel version:    {}", p.kernel_version)?;
    }
    Ok(())
}

/// `husk info`: docker's layout, or a template over it.
fn info(i: &views::InfoView, format: Option<&str>) -> Result<(), Failure> {
    if format.is_some() {
        return Ok(print_items(std::slice::from_ref(i), format)?);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "Containers: {}", i.containers)?;
    writeln!(out, " Running: {}", i.containers_running)?;
    writeln!(out, " Paused: {}", i.containers_paused)?;
    writeln!(out, " Stopped: {}", i.containers_stopped)?;
    writeln!(out, "Images: {}", i.images)?;
    writeln!(out, "Server Version: {}", i.server_version)?;
    writeln!(out, "Storage Driver: {}", i.driver)?;
    writeln!(out, "Cgroup Driver: {}", i.cgroup_driver)?;
    writeln!(out, "Cgroup Version: {}", i.cgroup_version)?;
    writeln!(out, "Kernel Version: {}", i.kernel_version)?;
    writeln!(out, "Operating System: {}", i.operating_system)?;
    writeln!(out, "OSType: {}", i.os_type)?;
    writeln!(out, "Architecture: {}", i.architecture)?;
    writeln!(out, "CPUs: {}", i.ncpu)?;
    writeln!(out, "Total Memory: {}", views::human_size(i.mem_total))?;
    writeln!(out, "Name: {}", i.name)?;
    writeln!(out, "Husk Root Dir: {}", i.docker_root_dir)?;
    // docker's layout: each option's name, then its key=value pairs indented below it.
    writeln!(out, "Security Options:")?;
    for o in &i.security_options {
        let mut parts = o.split(',');
        let name = parts.next().unwrap_or_default();
        writeln!(out, "  {}", name.trim_start_matches("name="))?;
        for kv in parts {
            if let Some((k, v)) = kv.split_once('=') {
                let mut key = k.to_string();
                key[..1].make_ascii_uppercase();
                writeln!(out, "   {key}: {v}")?;
            }
        }
    }
    Ok(())
}

/// `husk stats`: once with `no_stream`, else every second until interrupted.
fn stats(
    e: &Engine,
    what: &[String],
    no_stream: bool,
    no_trunc: bool,
    format: &Format,
) -> Result<(), Failure> {
    // As docker: no names means every running container (those of this moment).
    let running: Vec<String>;
    let what = if what.is_empty() {
        running = e.containers(false).into_iter().map(|c| c.id).collect();
        &running[..]
    } else {
        what
    };
    let mut sampler = e.stats(what)?;
    loop {
        std::thread::sleep(Duration::from_millis(if no_stream { 200 } else { 1000 }));
        let rows: Vec<views::StatsView> = sampler
            .sample()?
            .iter()
            .zip(what)
            .map(|(r, asked)| views::stats_view(r, asked, no_trunc))
            .collect();
        print_rows(&rows, format, STATS_HEADERS)?;
        if no_stream {
            return Ok(());
        }
    }
}

/// What `logs` and `attach` do with each line: to our stdout or stderr as the container
/// wrote it, after its time with `timestamps`.
fn print_log_line(timestamps: bool) -> impl FnMut(husk_engine::LogLine) {
    move |l| {
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
    }
}

/// Exit as an attach ended: with the container's code, or 0 when detached from it.
fn attach_end(end: husk_engine::AttachEnd) -> ! {
    match end {
        husk_engine::AttachEnd::Exited(code) => std::process::exit(code.clamp(0, 255) as i32),
        husk_engine::AttachEnd::Detached => std::process::exit(0),
    }
}

/// `husk port`: docker's `80/tcp -> 0.0.0.0:8080` lines, or for one port its host addresses.
fn print_ports(e: &Engine, container: &str, which: Option<&str>) -> Result<(), Failure> {
    let ports = e.container_ports(container)?;
    let which = which.map(|p| match p.contains('/') {
        true => p.to_string(),
        false => format!("{p}/tcp"),
    });
    let mut out = std::io::stdout().lock();
    let mut found = false;
    for m in &ports {
        let host = match m.host_ip {
            Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", m.host_port),
            Some(ip) => format!("{ip}:{}", m.host_port),
            None => format!("0.0.0.0:{}", m.host_port),
        };
        match &which {
            Some(w) if *w == m.key() => writeln!(out, "{host}")?,
            Some(_) => continue,
            None => writeln!(out, "{} -> {host}", m.key())?,
        }
        found = true;
    }
    if let (Some(w), false) = (&which, found) {
        return Err(format!("port {container}: no public port {w} published").into());
    }
    Ok(())
}

const NETWORKS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
const NETWORKS_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("CreatedAt", "CREATED AT"),
];

/// `husk network …`.
fn network(e: &Engine, cmd: NetworkCmd) -> Result<(), Failure> {
    match cmd {
        NetworkCmd::Create {
            subnet,
            gateway,
            internal,
            ipv6,
            driver,
            name,
        } => {
            if driver != "bridge" {
                return Err(
                    format!("network create {name}: driver {driver:?}: only bridge").into(),
                );
            }
            let d = e.network_create(&husk_engine::NetworkCreateOptions {
                name,
                subnet,
                gateway,
                internal,
                ipv6,
            })?;
            println!("{}", d.id);
        }
        NetworkCmd::Ls { quiet, format } => {
            let rows: Vec<views::NetworkRow> =
                e.network_list()?.iter().map(views::network_row).collect();
            if quiet {
                for r in rows {
                    println!("{}", r.id);
                }
                return Ok(());
            }
            print_rows(
                &rows,
                &Format::parse(format.as_deref(), NETWORKS_TABLE),
                NETWORKS_HEADERS,
            )?;
        }
        NetworkCmd::Inspect { format, networks } => {
            let items = networks
                .iter()
                .map(|n| e.network_inspect(n).map(|i| views::network_inspect(&i)))
                .collect::<Result<Vec<_>, _>>()?;
            print_items(&items, format.as_deref())?;
        }
        NetworkCmd::Rm { networks } => {
            for n in &networks {
                e.network_remove(n)?;
                println!("{n}");
            }
        }
        NetworkCmd::Connect {
            alias,
            ip,
            network,
            container,
        } => {
            let ip = ip
                .map(|i| {
                    i.parse()
                        .map_err(|_| format!("network connect: --ip {i:?}: not an IP address"))
                })
                .transpose()?;
            e.network_connect(&network, &container, &alias, ip)?;
        }
        NetworkCmd::Disconnect {
            network, container, ..
        } => e.network_disconnect(&network, &container)?,
        NetworkCmd::Prune { force } => {
            if !force {
                eprint!(
                    "WARNING! This will remove all custom networks not used by at least one \
                     container.\nAre you sure you want to continue? [y/N] "
                );
                let mut answer = String::new();
                let _ = std::io::stdin().read_line(&mut answer);
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Ok(());
                }
            }
            let removed = e.network_prune()?;
            if !removed.is_empty() {
                println!("Deleted Networks:\n{}", removed.join("\n"));
            }
        }
    }
    Ok(())
}

const VOLUME_TABLE: &str = "table {{.Driver}}\t{{.Name}}";
const VOLUME_HEADERS: &[(&str, &str)] = &[
    ("Driver", "DRIVER"),
    ("Name", "VOLUME NAME"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Scope", "SCOPE"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
];

/// `husk volume …`.
fn volume_cmd(e: &Engine, cmd: VolumeCmd) -> Result<(), Failure> {
    match cmd {
        VolumeCmd::Create {
            driver,
            opt,
            label,
            name,
        } => {
            println!(
                "{}",
                e.volume_create(name.as_deref(), &driver, &opt, &label)?
            );
            Ok(())
        }
        VolumeCmd::Ls {
            quiet,
            filter,
            format,
        } => {
            let rows = e.volumes(&filter)?;
            if quiet {
                let mut o = std::io::stdout().lock();
                for r in &rows {
                    writeln!(o, "{}", r.name)?;
                }
                return Ok(());
            }
            Ok(print_rows(
                &rows,
                &Format::parse(format.as_deref(), VOLUME_TABLE),
                VOLUME_HEADERS,
            )?)
        }
        VolumeCmd::Inspect { format, volumes } => Ok(print_items(
            &e.volume_inspect(&volumes)?,
            format.as_deref(),
        )?),
        VolumeCmd::Rm { force, volumes } => each(&volumes, |v| e.volume_remove(v, force)),
        VolumeCmd::Prune { force } => {
            if !force {
                eprint!(
                    "WARNING! This will remove all local volumes not used by at least one \
                     container.\nAre you sure you want to continue? [y/N] "
                );
                let mut answer = String::new();
                let _ = std::io::stdin().read_line(&mut answer);
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Ok(());
                }
            }
            let (names, bytes) = e.volume_prune()?;
            let mut o = std::io::stdout().lock();
            if !names.is_empty() {
                writeln!(o, "Deleted Volumes:\n{}\n", names.join("\n"))?;
            }
            writeln!(o, "Total reclaimed space: {}", views::human_size(bytes))?;
            Ok(())
        }
    }
}

/// docker's warning before `system prune`, and whether the answer on stdin is yes.
fn confirm_prune(all: bool, volumes: bool) -> bool {
    let images = if all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    let volumes = if volumes {
        "\n  - all volumes not used by at least one container"
    } else {
        ""
    };
    eprint!(
        "WARNING! This will remove:\n  - all stopped containers{volumes}\n  - {images}\n\
         \x20 - all build cache\n\
         Are you sure you want to continue? [y/N] "
    );
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

/// `husk events`: docker's line per event, or each through --format.
fn events(e: &Engine, a: &EventsArgs) -> Result<(), Failure> {
    let q = EventQuery::parse(a.since.as_deref(), a.until.as_deref(), &a.filter)
        .map_err(|err| format!("events: {err}"))?;
    let format = a.format.as_deref().map(|f| Format::parse(Some(f), f));
    let mut failed = None;
    e.events(&q, a.until.is_none(), &mut |ev| {
        let written = match &format {
            None => writeln!(std::io::stdout().lock(), "{ev}").map_err(Failure::from),
            Some(f) => print_rows(std::slice::from_ref(ev), f, &[]).map_err(Failure::from),
        };
        match written {
            Ok(()) => true,
            Err(err) => {
                failed = Some(err);
                false
            }
        }
    })?;
    // A closed pipe ends it quietly; a template that fails is an error.
    match failed {
        Some(err) if !err.to_string().contains("Broken pipe") => Err(err),
        _ => Ok(()),
    }
}

/// `husk images`: docker's columns, or what `--format` asks for.
fn images(e: &Engine, a: &ListArgs) -> Result<(), Failure> {
    let rows = e.image_rows(a.no_trunc)?;
    if a.quiet {
        let mut out = std::io::stdout().lock();
        let mut seen = std::collections::HashSet::new();
        for r in rows.iter().filter(|r| seen.insert(r.id.clone())) {
            writeln!(out, "{}", r.id)?;
        }
        return Ok(());
    }
    Ok(print_rows(
        &rows,
        &Format::parse(a.format.as_deref(), IMAGES_TABLE),
        IMAGES_HEADERS,
    )?)
}

fn image_cmd(e: &Engine, cmd: ImageCmd) -> Result<(), Failure> {
    match cmd {
        ImageCmd::Ls(_) | ImageCmd::Rm { .. } | ImageCmd::Op(_) => {
            unreachable!("handled by caller")
        }
        ImageCmd::Inspect { format, images } => {
            Ok(print_items(&e.inspect_images(&images)?, format.as_deref())?)
        }
        ImageCmd::Prune { all } => {
            let r = e.prune_images(all)?;
            println!(
                "Removed {} images, {} layers, {} blobs",
                r.images, r.layers, r.blobs
            );
            Ok(())
        }
        ImageCmd::Verify { image, repair } => {
            let r = e.verify_images(image.as_deref(), repair)?;
            for p in &r.problems {
                println!("{p}");
            }
            for p in &r.removed {
                println!("Removed {}", p.display());
            }
            println!(
                "Checked {} blobs, {} layers: {} problems",
                r.blobs_checked,
                r.layers_checked,
                r.problems.len()
            );
            if r.problems.is_empty() || repair {
                return Ok(());
            }
            Err("the store has problems: `husk image verify --repair` removes them".into())
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
