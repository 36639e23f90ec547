//! Small wrappers over cgroupfs file operations that turn every failure into a
//! [`CgroupError`] naming the operation and the path.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::CgroupError;

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|e| CgroupError::io("reading", path, e))
}

/// Read a file if it exists.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CgroupError::io("reading", path, e)),
    }
}

/// Write `value` in one write(2) call, as cgroupfs expects.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let op = || format!("writing {value} to");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| CgroupError::io(op(), path, e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| CgroupError::io(op(), path, e))
}

/// Write a file that must exist on this host to enforce `what`.
pub(crate) fn write_required(path: &Path, value: &str, what: &str) -> Result<(), CgroupError> {
    if !path.exists() {
        return Err(CgroupError::unsupported(
            what,
            format!("{} does not exist", path.display()),
        ));
    }
    write(path, value)
}

pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64, CgroupError> {
    let s = s.trim();
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse::<u64>().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("expected an unsigned number, got {s:?}"),
    })
}

pub(crate) fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    parse_u64(path, &read(path)?)
}

/// 0 when the file does not exist (a statistic this kernel does not keep).
pub(crate) fn read_u64_or_zero(path: &Path) -> Result<u64, CgroupError> {
    match read_opt(path)? {
        Some(s) => parse_u64(path, &s),
        None => Ok(0),
    }
}

/// Parse "key value" lines (memory.stat, cpu.stat, memory.events, …).
pub(crate) fn parse_flat_keyed(s: &str) -> BTreeMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse::<u64>().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

pub(crate) fn read_flat_keyed(path: &Path) -> Result<BTreeMap<String, u64>, CgroupError> {
    Ok(parse_flat_keyed(&read(path)?))
}

pub(crate) fn read_flat_keyed_opt(path: &Path) -> Result<BTreeMap<String, u64>, CgroupError> {
    Ok(read_opt(path)?
        .map(|s| parse_flat_keyed(&s))
        .unwrap_or_default())
}

/// `mkdir -p` of `dir` below the existing directory `base` (a hierarchy's mount point).
/// Returns the directories it created, outermost first. A parent removed concurrently
/// (ENOENT while creating a child) is recreated.
pub(crate) fn mkdir_below(base: &Path, dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let rel = dir.strip_prefix(base).map_err(|_| {
        CgroupError::invalid(
            "cgroup directory",
            format!("{} is not below {}", dir.display(), base.display()),
        )
    })?;
    let mut created = Vec::new();
    for _attempt in 0..10 {
        let mut cur = base.to_path_buf();
        let mut lost_parent = false;
        for comp in rel.components() {
            cur.push(comp);
            match std::fs::create_dir(&cur) {
                Ok(()) => created.push(cur.clone()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    lost_parent = true;
                    break;
                }
                Err(e) => return Err(CgroupError::io("creating directory", &cur, e)),
            }
        }
        if !lost_parent {
            return Ok(created);
        }
    }
    Err(CgroupError::io(
        "creating directory",
        dir,
        std::io::Error::from_raw_os_error(libc::ENOENT),
    ))
}

/// Remove `dir` and every cgroup below it, deepest first. EBUSY (processes still exiting)
/// is retried for up to a second. A missing directory is fine.
pub(crate) fn rmdir_tree(dir: &Path) -> Result<(), CgroupError> {
    // The usual case, a leaf whose processes are gone, in one syscall; sub-cgroups or
    // processes still leaving (EBUSY) take the long way.
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CgroupError::io("listing", dir, e)),
    };
    for ent in entries {
        let ent = ent.map_err(|e| CgroupError::io("listing", dir, e))?;
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            rmdir_tree(&ent.path())?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut delay = Duration::from_millis(2);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(CgroupError::io("removing directory", dir, e)),
        }
    }
}

/// The pids listed in `dir/cgroup.procs` and in every sub-cgroup of `dir`.
pub(crate) fn procs_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    match read_opt(&procs)? {
        Some(s) => {
            for l in s.lines() {
                let l = l.trim();
                if l.is_empty() {
                    continue;
                }
                let pid = l.parse::<i32>().map_err(|_| CgroupError::Parse {
                    path: procs.clone(),
                    reason: format!("bad pid {l:?}"),
                })?;
                out.push(pid);
            }
        }
        None => return Ok(()),
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CgroupError::io("listing", dir, e)),
    };
    for ent in entries.flatten() {
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            procs_recursive(&ent.path(), out)?;
        }
    }
    Ok(())
}

/// Poll `check` until it returns true or `timeout` passes.
pub(crate) fn wait_until(
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(1);
    loop {
        if check()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

/// Kill every pid (ESRCH: already gone, fine).
pub(crate) fn signal_all(pids: &[i32], signal: i32) -> Result<(), CgroupError> {
    for &pid in pids {
        // SAFETY: kill(2) has no memory-safety preconditions.
        let r = unsafe { libc::kill(pid, signal) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(CgroupError::Io {
                    op: format!("sending signal {signal} to pid"),
                    path: PathBuf::from(pid.to_string()),
                    source: e,
                });
            }
        }
    }
    Ok(())
}
