//! `checkpoint` and `restore`: runc's flags over husk_container::checkpoint (CRIU).

use crate::log::Logger;
use crate::Failure;
use husk_container::checkpoint::{
    self, CgroupMode, CheckpointOptions, CriuOptions, RestoreOptions,
};
use husk_container::Container;
use std::path::{Path, PathBuf};

/// The CRIU flags `checkpoint` and `restore` share.
#[derive(clap::Args, Debug)]
pub struct CriuArgs {
    /// Directory for CRIU's image files [default: ./checkpoint]
    #[arg(long)]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's logs and work files [default: the image path]
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// Allow established TCP connections
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long)]
    pub shell_job: bool,
    /// Handle file locks
    #[arg(long)]
    pub file_locks: bool,
    /// What CRIU does with cgroups: soft, full, strict or ignore
    #[arg(long, default_value = "soft")]
    pub manage_cgroups_mode: String,
    /// Serve memory pages on demand (refused: husk runs no page server)
    #[arg(long)]
    pub lazy_pages: bool,
}

#[derive(clap::Args, Debug)]
pub struct CheckpointArgs {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// A previous pre-dump's images, relative to the image path
    #[arg(long)]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint
    #[arg(long)]
    pub leave_running: bool,
    /// Only dump memory, for a later checkpoint with --parent-path
    #[arg(long)]
    pub pre_dump: bool,
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Return once restored instead of waiting for the container to exit
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the restored init's pid to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket for the pty master (refused: see docs)
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Do not become a subreaper for the container's processes
    #[arg(long)]
    pub no_subreaper: bool,
    /// Accepted for runc's callers; CRIU's command line always pivots into the root
    #[arg(long)]
    pub no_pivot: bool,
}

fn criu_options(a: &CriuArgs, criu: Option<&Path>) -> Result<CriuOptions, String> {
    let image_path = match &a.image_path {
        Some(p) => p.clone(),
        None => std::env::current_dir()
            .map_err(|e| format!("current directory: {e}"))?
            .join("checkpoint"),
    };
    let manage_cgroups = a
        .manage_cgroups_mode
        .parse::<CgroupMode>()
        .map_err(|e| e.to_string())?;
    Ok(CriuOptions {
        criu: criu.map(Path::to_path_buf),
        image_path,
        work_path: a.work_path.clone(),
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        manage_cgroups,
        lazy_pages: a.lazy_pages,
    })
}

pub fn checkpoint(
    root: &Path,
    criu: Option<&Path>,
    a: &CheckpointArgs,
    log: &mut Logger,
) -> Result<i32, Failure> {
    let id = &a.id;
    let fail = |e: String| Failure::from(format!("checkpoint {id}: {e}"));
    let opts = CheckpointOptions {
        criu: criu_options(&a.criu, criu).map_err(fail)?,
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        parent_path: a.parent_path.clone(),
    };
    let c = Container::load(root, id).map_err(|e| fail(e.to_string()))?;
    log.debug(&format!(
        "checkpoint {id}: images in {}",
        opts.criu.image_path.display()
    ));
    c.checkpoint(&opts).map_err(|e| fail(e.to_string()))?;
    Ok(0)
}

pub fn restore(
    root: &Path,
    rootless: bool,
    systemd_cgroup: bool,
    criu: Option<&Path>,
    a: &RestoreArgs,
    log: &mut Logger,
) -> Result<i32, Failure> {
    let id = &a.id;
    let fail = |e: String| Failure::from(format!("restore {id}: {e}"));
    if a.console_socket.is_some() {
        // Checked again against the config in the library; said here for the flag itself.
        log.debug(&format!("restore {id}: --console-socket given"));
    }
    let opts = RestoreOptions {
        criu: criu_options(&a.criu, criu).map_err(fail)?,
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        rootless,
        systemd_cgroup,
    };
    if !a.detach && !a.no_subreaper {
        // What the restored init starts and leaves behind comes to us, as with `run`.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let all = (!a.detach).then(husk_container::supervise::block_signals);
    let c = checkpoint::restore(root, id, &a.bundle, &opts).map_err(|e| fail(e.to_string()))?;
    log.debug(&format!("restore {id}: init pid {}", c.pid()));
    let Some(all) = all else { return Ok(0) };
    let pid = c.pid();
    let code =
        husk_container::supervise::forward_signals_until_exit(pid, &all, &mut |sig| unsafe {
            libc::kill(pid, sig);
        });
    log.debug(&format!("container {id} exited with {code}"));
    if let Ok(c) = Container::load(root, id) {
        c.delete_with_warnings(true, &mut |w| log.warn(&format!("restore {id}: {w}")))
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(code)
}
