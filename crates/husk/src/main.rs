//! husk: the engine people type. Image commands: pull, push, images, rmi, image inspect/prune/
//! unpack, load, save, tag, login, logout.

use clap::{Args, Parser, Subcommand};
use husk_image::auth::{self, Credentials};
use husk_image::manifest::Platform;
use husk_image::pull::{self, Progress, PullOptions};
use husk_image::registry::ClientOptions;
use husk_image::settings::Settings;
use husk_image::store::Store;
use husk_image::{Digest, Reference};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

mod containers;
mod copy;
mod monitor;
mod network;
mod os;
mod progress;
mod rootfs_overlay;
mod run;
mod spec_from_image;
mod userns;

#[derive(Parser)]
#[command(name = "husk", version, about = "husk container engine")]
struct Cli {
    /// Image store root (default /var/lib/husk, or $XDG_DATA_HOME/husk when not root)
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Configuration file (JSON)
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Registry for references without one (default docker.io)
    #[arg(long, global = true)]
    default_registry: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone, Default)]
struct RegistryArgs {
    /// Allow plain http and skip TLS verification for the registry
    #[arg(long)]
    insecure: bool,
    /// Verify TLS certificates (--tls-verify=false is the same as --insecure)
    #[arg(long, value_name = "BOOL")]
    tls_verify: Option<bool>,
    /// Directory with CA certificates (*.crt), also searched per registry (DIR/HOST:PORT/*.crt)
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// Credentials file (docker config.json / podman auth.json format)
    #[arg(long)]
    authfile: Option<PathBuf>,
    /// Credentials USER:PASSWORD
    #[arg(long)]
    creds: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a command in a new container (foreground, or -d in the background)
    Run(run::RunArgs),
    /// List containers (running ones; -a for all)
    Ps {
        #[arg(short, long)]
        all: bool,
        /// table (default) or json
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show a container's output (as logged by its monitor)
    Logs {
        /// Keep following the output until the container exits
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines
        #[arg(long)]
        tail: Option<usize>,
        /// Prefix each line with its time
        #[arg(short, long)]
        timestamps: bool,
        container: String,
    },
    /// Stop containers: the stop signal, then SIGKILL after --time seconds
    Stop {
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    Exec(containers::ExecArgs),
    /// Send a signal to containers' main process
    Kill {
        /// Signal name or number
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Freeze every process of containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw paused containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Start exited containers again, detached
    Start {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop (as `stop`) and start containers
    Restart {
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Resource usage of running containers (every second; --no-stream: once)
    Stats {
        #[arg(long)]
        no_stream: bool,
        /// table (default) or json (the cgroup statistics, one object per line)
        #[arg(long, default_value = "table")]
        format: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Copy files/directories between a running container and the host: CONTAINER:PATH
    Cp { src: String, dst: String },
    /// List a container's processes
    Top { container: String },
    /// Manage containers
    Container {
        #[command(subcommand)]
        cmd: ContainerCmd,
    },
    /// Show containers' records and runtime state as JSON
    Inspect {
        /// json (the only format, as the default)
        #[arg(long, default_value = "json")]
        format: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers (-f: also running ones, killing them)
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Pull an image from a registry
    Pull {
        reference: String,
        /// os/arch[/variant] to pull from a multi-platform image
        #[arg(long)]
        platform: Option<String>,
        /// No progress output
        #[arg(short, long)]
        quiet: bool,
        /// Layers downloaded at once
        #[arg(long, default_value_t = 3)]
        jobs: usize,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Push an image to a registry
    Push {
        image: String,
        /// Destination reference (default: the image's name)
        dest: Option<String>,
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// List images
    Images(ListArgs),
    /// Remove images
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
        #[arg(short, long)]
        force: bool,
    },
    /// Add a name to an image
    Tag { image: String, name: String },
    /// Manage images
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// Load images from a docker-archive or OCI-layout tarball
    Load {
        #[arg(short, long)]
        input: Option<PathBuf>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save an image to a docker-archive or OCI-layout tarball
    Save {
        image: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// docker-archive or oci-archive
        #[arg(long, default_value = "docker-archive")]
        format: String,
    },
    /// Store credentials for a registry
    Login {
        registry: String,
        #[arg(short, long)]
        username: Option<String>,
        #[arg(short, long)]
        password: Option<String>,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Benchmark helper: decompress a layer file, discarding the output
    #[command(hide = true)]
    BenchDecode { file: PathBuf },
    /// Benchmark helper: unpack a layer file into DIR/diff the way pull does
    #[command(hide = true)]
    BenchUnpack { file: PathBuf, dir: PathBuf },
    /// Remove stored credentials for a registry
    Logout {
        registry: String,
        #[arg(long)]
        authfile: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ContainerCmd {
    /// Remove every exited container
    Prune,
}

#[derive(Args)]
struct ListArgs {
    /// table (default) or json
    #[arg(long, default_value = "table")]
    format: String,
    /// Only IDs
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Subcommand)]
enum ImageCmd {
    /// List images
    Ls(ListArgs),
    /// Show an image's record, manifest and config as JSON
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
        #[arg(short, long)]
        force: bool,
    },
    /// Remove unused layers and blobs (and, with --all, images without a name)
    Prune {
        #[arg(short, long)]
        all: bool,
    },
    /// Write the image's filesystem, flattened, into a directory
    Unpack { image: String, dir: PathBuf },
    /// Print the image's layer directories (overlay lowerdirs, top first, joined by ':')
    Lowerdirs { image: String },
    /// Print the process values (args, env, cwd, uid/gid) the image would run with
    Process {
        image: String,
        /// Flattened rootfs of the image to resolve the user in (default: resolve from layers)
        #[arg(long)]
        rootfs: Option<PathBuf>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        entrypoint: Option<String>,
        #[arg(long)]
        workdir: Option<String>,
        #[arg(short, long)]
        env: Vec<String>,
        args: Vec<String>,
    },
}

struct Ctx {
    settings: Settings,
    root: PathBuf,
    default_registry: String,
}

impl Ctx {
    fn store(&self) -> Result<Store, String> {
        Store::open(&self.root).map_err(|e| e.to_string())
    }

    fn client(&self, registry: &str, a: &RegistryArgs) -> Result<ClientOptions, String> {
        let insecure =
            a.insecure || a.tls_verify == Some(false) || self.settings.is_insecure(registry);
        let credentials = match &a.creds {
            Some(c) => {
                let (u, p) = c.split_once(':').ok_or("--creds must be USER:PASSWORD")?;
                Some(Credentials {
                    username: u.into(),
                    password: p.into(),
                })
            }
            None => None,
        };
        let authfile = a
            .authfile
            .clone()
            .or_else(|| self.settings.auth_file.clone());
        Ok(ClientOptions {
            insecure,
            cert_dir: a
                .cert_dir
                .clone()
                .or_else(|| self.settings.cert_dir.clone())
                .or_else(|| Some(husk_image::settings::default_cert_dir())),
            credentials,
            auth_files: auth::auth_search_path(authfile.as_deref()),
        })
    }

    fn parse_ref(&self, s: &str) -> Result<Reference, String> {
        Reference::parse_with_default(s, &self.default_registry).map_err(|e| e.to_string())
    }
}

fn main() {
    // An ordinary user's commands run as root of the user's namespace (userns.rs).
    userns::enter_if_needed(&std::env::args_os().collect::<Vec<_>>());
    // CVE-2019-5736: containers are started from a read-only view of this binary (see
    // husk_container::selfexe), so no container can write the host's copy.
    if std::env::args_os()
        .skip(1)
        .any(|a| a == "run" || a == "exec" || a == "start" || a == "restart" || a == monitor::ARG)
    {
        if let Err(msg) = husk_container::selfexe::reexec_protected() {
            fail(&msg);
        }
    }
    // A helper of a detached container's monitor (see monitor.rs): not a command of ours.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == monitor::ARG)
    {
        monitor::helper(&std::env::args_os().skip(2).collect::<Vec<_>>())
    }
    let cli = Cli::parse();
    if let Err(msg) = run(cli) {
        fail(&msg);
    }
}

/// The one error line and exit 1; a broken stderr must not turn that into an abort.
fn fail(msg: &str) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "husk: {msg}");
    std::process::exit(1)
}

fn run(cli: Cli) -> Result<(), String> {
    let settings = Settings::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    let root = cli
        .root
        .clone()
        .or_else(|| settings.root.clone())
        .unwrap_or_else(husk_image::store::default_root);
    let default_registry = cli
        .default_registry
        .clone()
        .unwrap_or_else(|| settings.default_registry().to_string());
    let ctx = Ctx {
        settings,
        root,
        default_registry,
    };
    match cli.cmd {
        Cmd::Run(a) => {
            let code = run::run(&ctx, a)?;
            std::process::exit(code)
        }
        Cmd::Exec(a) => {
            let code = containers::exec(&ctx.root, a)?;
            std::process::exit(code)
        }
        Cmd::Ps { all, format } => match format.as_str() {
            "table" | "json" => containers::ps(&ctx.root, all, format == "json"),
            f => Err(format!("ps: --format {f:?}: use table or json")),
        },
        Cmd::Logs {
            follow,
            tail,
            timestamps,
            container,
        } => {
            let r = containers::find(&ctx.root, &container)?;
            monitor::logs(&r.dir, follow, tail, timestamps)
                .map_err(|e| format!("logs {container}: {e}"))
        }
        Cmd::Kill { signal, containers } => {
            for c in &containers {
                containers::kill(&ctx.root, c, &signal)?;
                println!("{c}");
            }
            Ok(())
        }
        Cmd::Pause { containers } => {
            for c in &containers {
                containers::pause(&ctx.root, c, false)?;
                println!("{c}");
            }
            Ok(())
        }
        Cmd::Unpause { containers } => {
            for c in &containers {
                containers::pause(&ctx.root, c, true)?;
                println!("{c}");
            }
            Ok(())
        }
        Cmd::Inspect { format, containers } => match format.as_str() {
            "json" => containers::inspect(&ctx.root, &containers),
            f => Err(format!("inspect: --format {f:?}: only json is supported")),
        },
        Cmd::Start { containers } => {
            for c in &containers {
                containers::start(&ctx, c)?;
                println!("{c}");
            }
            Ok(())
        }
        Cmd::Restart { time, containers } => {
            for c in &containers {
                containers::stop(&ctx.root, c, std::time::Duration::from_secs(time))?;
                containers::start(&ctx, c)?;
                println!("{c}");
            }
            Ok(())
        }
        Cmd::Top { container } => containers::top(&ctx.root, &container),
        Cmd::Cp { src, dst } => copy::cp(&ctx.root, &src, &dst),
        Cmd::Stats {
            no_stream,
            format,
            containers,
        } => match format.as_str() {
            "table" | "json" => {
                containers::stats(&ctx.root, &containers, no_stream, format == "json")
            }
            f => Err(format!("stats: --format {f:?}: use table or json")),
        },
        Cmd::Container {
            cmd: ContainerCmd::Prune,
        } => containers::prune(&ctx.root),
        Cmd::Stop { time, containers } => {
            for c in &containers {
                containers::stop(&ctx.root, c, std::time::Duration::from_secs(time))?;
                println!("{c}");
            }
            Ok(())
        }
        Cmd::Rm { force, containers } => {
            for c in &containers {
                containers::rm(&ctx.root, c, force)?;
                println!("{c}");
            }
            Ok(())
        }
        Cmd::Pull {
            reference,
            platform,
            quiet,
            jobs,
            reg,
        } => {
            let r = ctx.parse_ref(&reference)?;
            let what = |e: husk_image::Error| format!("pull {r}: {e}");
            let platform = platform
                .map(|p| Platform::parse(&p))
                .transpose()
                .map_err(what)?;
            let store = ctx.store()?;
            let show = !quiet && std::io::stderr().is_terminal();
            let prog: Arc<dyn Progress> = if show {
                Arc::new(progress::Bars::new())
            } else {
                Arc::new(pull::NoProgress)
            };
            let opts = PullOptions {
                platform,
                client: ctx.client(&r.registry, &reg)?,
                parallel: ctx.settings.max_concurrent_downloads.unwrap_or(jobs).max(1),
                progress: prog,
                ..Default::default()
            };
            let rec = pull::pull(&store, &r, &opts).map_err(what)?;
            println!("{}", rec.config_digest.hex());
            Ok(())
        }
        Cmd::Push {
            image,
            dest,
            quiet,
            reg,
        } => {
            let store = ctx.store()?;
            let rec = store
                .resolve(&image, &ctx.default_registry)
                .map_err(|e| format!("push {image}: {e}"))?;
            let dest_s = dest.unwrap_or_else(|| image.clone());
            let d = ctx.parse_ref(&dest_s)?;
            let opts = ctx.client(&d.registry, &reg)?;
            husk_image::push::push(&store, &rec, &d, &opts)
                .map_err(|e| format!("push {d}: {e}"))?;
            if !quiet {
                eprintln!("Pushed {d}");
            }
            Ok(())
        }
        Cmd::Images(a)
        | Cmd::Image {
            cmd: ImageCmd::Ls(a),
        } => list(&ctx, &a),
        Cmd::Rmi { images, force }
        | Cmd::Image {
            cmd: ImageCmd::Rm { images, force },
        } => {
            let store = ctx.store()?;
            let mut failed = 0;
            for i in &images {
                let in_use = store
                    .resolve(i, &ctx.default_registry)
                    .map_err(|e| e.to_string())
                    .and_then(|rec| {
                        containers::check_image_unused(&ctx.root, rec.config_digest.hex(), force)
                    });
                match in_use.and_then(|()| {
                    store
                        .remove(i, &ctx.default_registry, force)
                        .map_err(|e| e.to_string())
                }) {
                    Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
                    Err(e) if images.len() == 1 => return Err(format!("rmi {i}: {e}")),
                    Err(e) => {
                        eprintln!("husk: rmi {i}: {e}");
                        failed += 1;
                    }
                }
            }
            store
                .gc(false, false)
                .map_err(|e| format!("rmi: collecting unused layers: {e}"))?;
            let failed = (failed > 0)
                .then(|| format!("rmi: {failed} of {} images not removed", images.len()));
            failed.map_or(Ok(()), Err)
        }
        Cmd::Tag { image, name } => {
            let store = ctx.store()?;
            let rec = store
                .resolve(&image, &ctx.default_registry)
                .map_err(|e| format!("tag {image}: {e}"))?;
            let n = ctx.parse_ref(&name)?;
            let tn = n
                .tagged_name()
                .ok_or_else(|| format!("tag {name}: a tag is needed"))?;
            store
                .tag(&rec.manifest_digest, &tn)
                .map_err(|e| format!("tag {image}: {e}"))
        }
        Cmd::Image { cmd } => image_cmd(&ctx, cmd),
        Cmd::Load { input, quiet } => {
            let store = ctx.store()?;
            let what = input
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "stdin".into());
            let loaded = match &input {
                Some(p) => {
                    let f = std::fs::File::open(p).map_err(|e| format!("load {what}: {e}"))?;
                    husk_image::archive::load(&store, f)
                }
                None => husk_image::archive::load(&store, std::io::stdin().lock()),
            }
            .map_err(|e| format!("load {what}: {e}"))?;
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
            let store = ctx.store()?;
            let rec = store
                .resolve(&image, &ctx.default_registry)
                .map_err(|e| format!("save {image}: {e}"))?;
            let names: Vec<String> = store
                .list()
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|(r, _)| r.manifest_digest == rec.manifest_digest)
                .map(|(_, n)| n)
                .unwrap_or_default();
            let fmt = match format.as_str() {
                "docker-archive" => husk_image::archive::Format::DockerArchive,
                "oci-archive" | "oci" => husk_image::archive::Format::OciArchive,
                f => {
                    return Err(format!(
                        "save: unknown format {f:?} (docker-archive, oci-archive)"
                    ))
                }
            };
            let res = match &output {
                Some(p) => {
                    let f = std::fs::File::create(p)
                        .map_err(|e| format!("save {}: {e}", p.display()))?;
                    husk_image::archive::save(&store, &rec, &names, fmt, std::io::BufWriter::new(f))
                }
                None => {
                    if std::io::stdout().is_terminal() {
                        return Err(
                            "save: refusing to write a tarball to a terminal; use -o FILE".into(),
                        );
                    }
                    husk_image::archive::save(&store, &rec, &names, fmt, std::io::stdout().lock())
                }
            };
            res.map_err(|e| format!("save {image}: {e}"))
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
                None => return Err(format!("login {registry}: --username is required")),
            };
            let password = if password_stdin {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| format!("login {registry}: {e}"))?;
                s.trim_end_matches(['\n', '\r']).to_string()
            } else {
                password.ok_or_else(|| {
                    format!("login {registry}: --password or --password-stdin is required")
                })?
            };
            let creds = Credentials { username, password };
            let mut opts = ctx.client(&registry, &reg)?;
            opts.credentials = Some(creds.clone());
            let r = husk_image::registry::Registry::new(&registry, &opts)
                .map_err(|e| format!("login {registry}: {e}"))?;
            r.ping().map_err(|e| format!("login {registry}: {e}"))?;
            let file = reg
                .authfile
                .clone()
                .or_else(|| ctx.settings.auth_file.clone())
                .unwrap_or_else(auth::default_auth_file);
            auth::store(&file, &registry, &creds).map_err(|e| format!("login {registry}: {e}"))?;
            println!("Login Succeeded!");
            Ok(())
        }
        Cmd::BenchDecode { file } => {
            let n = pull::decode_layer_file(&file).map_err(|e| format!("bench-decode: {e}"))?;
            println!("{n}");
            Ok(())
        }
        Cmd::BenchUnpack { file, dir } => {
            let (diff, st) =
                pull::unpack_layer_file(&file, &dir).map_err(|e| format!("bench-unpack: {e}"))?;
            println!("{diff} {} entries {} bytes", st.entries, st.bytes);
            Ok(())
        }
        Cmd::Logout { registry, authfile } => {
            let file = authfile
                .or_else(|| ctx.settings.auth_file.clone())
                .unwrap_or_else(auth::default_auth_file);
            if auth::remove(&file, &registry).map_err(|e| format!("logout {registry}: {e}"))? {
                println!("Removed login credentials for {registry}");
                Ok(())
            } else {
                Err(format!("logout {registry}: not logged in"))
            }
        }
    }
}

fn layer_sizes(store: &Store, rec: &husk_image::store::ImageRecord) -> u64 {
    rec.layers
        .iter()
        .map(|l| {
            std::fs::read(store.layer_root(&l.chain_id).join("layer.json"))
                .ok()
                .and_then(|d| serde_json::from_slice::<husk_image::store::LayerMeta>(&d).ok())
                .map(|m| m.unpacked_size)
                .unwrap_or(0)
        })
        .sum()
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

fn list(ctx: &Ctx, a: &ListArgs) -> Result<(), String> {
    let store = ctx.store()?;
    let imgs = store.list().map_err(|e| format!("images: {e}"))?;
    if a.quiet {
        for (r, _) in &imgs {
            println!("{}", &r.config_digest.hex()[..12]);
        }
        return Ok(());
    }
    match a.format.as_str() {
        "json" => {
            let v: Vec<serde_json::Value> = imgs
                .iter()
                .map(|(r, names)| {
                    serde_json::json!({
                        "id": r.config_digest.hex(),
                        "names": names,
                        "digest": r.manifest_digest,
                        "created": r.created,
                        "size": layer_sizes(&store, r),
                        "compressed_size": r.compressed_size(),
                        "platform": r.platform.as_ref().map(|p| p.to_string()),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v).unwrap());
        }
        "table" => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{:<40} {:<16} {:<14} {:<21} SIZE",
                "REPOSITORY", "TAG", "IMAGE ID", "CREATED"
            );
            for (r, names) in &imgs {
                let size = human(layer_sizes(&store, r));
                let created = r
                    .created
                    .as_deref()
                    .map(|c| c.chars().take(19).collect::<String>().replace('T', " "))
                    .unwrap_or_default();
                let id = &r.config_digest.hex()[..12];
                let rows: Vec<(String, String)> = if names.is_empty() {
                    vec![("<none>".into(), "<none>".into())]
                } else {
                    names
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
        f => return Err(format!("images: unknown format {f:?} (table, json)")),
    }
    Ok(())
}

fn image_cmd(ctx: &Ctx, cmd: ImageCmd) -> Result<(), String> {
    let store = ctx.store()?;
    match cmd {
        ImageCmd::Ls(_) | ImageCmd::Rm { .. } => unreachable!("handled by caller"),
        ImageCmd::Inspect { images } => {
            let mut all = Vec::new();
            let names = store.list().map_err(|e| e.to_string())?;
            for i in &images {
                let rec = store
                    .resolve(i, &ctx.default_registry)
                    .map_err(|e| format!("image inspect {i}: {e}"))?;
                let blob = |d: &Digest| -> Result<serde_json::Value, String> {
                    let b = store
                        .read_blob(d)
                        .map_err(|e| format!("image inspect {i}: {e}"))?;
                    serde_json::from_slice(&b).map_err(|e| format!("image inspect {i}: {e}"))
                };
                let n: Vec<String> = names
                    .iter()
                    .find(|(r, _)| r.manifest_digest == rec.manifest_digest)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_default();
                all.push(serde_json::json!({
                    "Id": rec.config_digest.hex(),
                    "Digest": rec.manifest_digest,
                    "RepoTags": n,
                    "Created": rec.created,
                    "Platform": rec.platform.as_ref().map(|p| p.to_string()),
                    "Size": layer_sizes(&store, &rec),
                    "Layers": rec.layers,
                    "LayerDirs": rec.layers.iter().map(|l| store.layer_dir(&l.chain_id)).collect::<Vec<_>>(),
                    "Manifest": blob(&rec.manifest_digest)?,
                    "Config": blob(&rec.config_digest)?,
                }));
            }
            println!("{}", serde_json::to_string_pretty(&all).unwrap());
            Ok(())
        }
        ImageCmd::Prune { all } => {
            let r = store
                .gc(all, true)
                .map_err(|e| format!("image prune: {e}"))?;
            println!(
                "Removed {} images, {} layers, {} blobs",
                r.images, r.layers, r.blobs
            );
            Ok(())
        }
        ImageCmd::Unpack { image, dir } => {
            let rec = store
                .resolve(&image, &ctx.default_registry)
                .map_err(|e| format!("image unpack {image}: {e}"))?;
            pull::flatten(&store, &rec, &dir).map_err(|e| format!("image unpack {image}: {e}"))
        }
        ImageCmd::Lowerdirs { image } => {
            let rec = store
                .resolve(&image, &ctx.default_registry)
                .map_err(|e| format!("image lowerdirs {image}: {e}"))?;
            let dirs: Vec<String> = rec
                .layers
                .iter()
                .rev()
                .map(|l| store.layer_dir(&l.chain_id).display().to_string())
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
            let rec = store
                .resolve(&image, &ctx.default_registry)
                .map_err(|e| format!("image process {image}: {e}"))?;
            let cfgb = store
                .read_blob(&rec.config_digest)
                .map_err(|e| e.to_string())?;
            let cfg =
                pull::parse_config(&cfgb).map_err(|e| format!("image process {image}: {e}"))?;
            let ov = husk_image::config::Overrides {
                user,
                entrypoint: entrypoint.map(|e| if e.is_empty() { vec![] } else { vec![e] }),
                cmd: if args.is_empty() { None } else { Some(args) },
                env,
                workdir,
            };
            let root = match rootfs {
                Some(r) => husk_image::config::RootfsView::Dir(r),
                None => husk_image::config::RootfsView::Layers(
                    rec.layers
                        .iter()
                        .rev()
                        .map(|l| store.layer_dir(&l.chain_id))
                        .collect(),
                ),
            };
            let p = husk_image::config::process_from_config(&cfg, &root, &ov)
                .map_err(|e| format!("image process {image}: {e}"))?;
            println!("{}", serde_json::to_string_pretty(&p).unwrap());
            Ok(())
        }
    }
}
