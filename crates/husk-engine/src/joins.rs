//! Namespaces taken from another container: `--network container:X`, `--ipc container:X`,
//! `--pid container:X`, and a pod's members joining its infra container (network, ipc,
//! uts: see [`crate::pod`]). A namespace is joined through the other container's init,
//! `/proc/PID/ns/KIND` in config.json, so that container must be running.
//!
//! container.json keeps what was joined (`"joins": {SPEC KIND: CONTAINER ID}`), because a
//! pid is only good for one run of the other container: [`refresh`] points config.json at
//! its current init again before each `start`.

use crate::error::{Result, RunError};
use crate::os::IoContext;
use crate::record::{find, Record};
use husk_oci::Status;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One namespace of another container, resolved.
pub(crate) struct Joined {
    /// The spec's namespace type: network, ipc, pid, uts.
    pub kind: &'static str,
    /// `/proc/PID/ns/…` of the other container's init.
    pub path: String,
    /// The other container's id and directory (for its /etc files).
    pub id: String,
    pub dir: PathBuf,
}

/// The flag a user names a join of `kind` with (for errors).
fn flag_of(kind: &str) -> &'static str {
    match kind {
        "network" => "--network",
        "ipc" => "--ipc",
        "pid" => "--pid",
        _ => "--uts",
    }
}

/// The /proc/PID/ns file of `kind` of the running container `r`, or the error naming `what`.
fn ns_path(r: &Record, kind: &str, what: &str) -> Result<String> {
    let running = r
        .runtime()
        .filter(|c| matches!(c.status(), Status::Running))
        .ok_or_else(|| RunError::JoinNotRunning {
            flag: flag_of(kind),
            name: what.to_string(),
        })?;
    let proc_kind = if kind == "network" { "net" } else { kind };
    Ok(format!("/proc/{}/ns/{proc_kind}", running.pid()))
}

/// Each (spec kind, container name or id) resolved; every container must be running.
pub(crate) fn resolve(root: &Path, wants: &[(&'static str, String)]) -> Result<Vec<Joined>> {
    wants
        .iter()
        .map(|(kind, what)| {
            let r = find(root, what)?;
            Ok(Joined {
                kind,
                path: ns_path(&r, kind, what)?,
                id: r.id().to_string(),
                dir: r.dir.clone(),
            })
        })
        .collect()
}

/// container.json's `joins`: spec kind → the other container's id.
pub(crate) fn record(joined: &[Joined]) -> BTreeMap<String, String> {
    joined
        .iter()
        .map(|j| (j.kind.to_string(), j.id.clone()))
        .collect()
}

/// Before the container in `dir` starts again: its config.json's joined namespaces set
/// to the other containers' current inits (each must be running).
pub(crate) fn refresh(root: &Path, dir: &Path, joins: &BTreeMap<String, String>) -> Result<()> {
    if joins.is_empty() {
        return Ok(());
    }
    let file = dir.join("config.json");
    let data = std::fs::read(&file).ctx("reading", &file)?;
    let mut spec: Value = serde_json::from_slice(&data).map_err(|source| RunError::SpecFile {
        path: file.clone(),
        source,
    })?;
    for (kind, id) in joins {
        let r = find(root, id).map_err(|_| RunError::JoinNotRunning {
            flag: flag_of(kind),
            name: id.to_string(),
        })?;
        let path = ns_path(&r, kind, r.name())?;
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            for n in ns.iter_mut().filter(|n| n["type"] == kind.as_str()) {
                n["path"] = path.clone().into();
            }
        }
    }
    let tmp = dir.join(".config.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&spec).unwrap())
        .and_then(|()| std::fs::rename(&tmp, &file))
        .ctx("writing", &file)?;
    Ok(())
}

/// The /etc files a container shares with the one whose namespace it joins: hosts and
/// resolv.conf go with the network (the names and nameservers of that network), hostname
/// with the UTS namespace. Copied into `dir` over the container's own.
pub(crate) fn share_etc_files(dir: &Path, joined: &[Joined]) -> Result<()> {
    for j in joined {
        let files: &[&str] = match j.kind {
            "network" => &["hosts", "resolv.conf"],
            "uts" => &["hostname"],
            _ => &[],
        };
        for f in files {
            let (from, to) = (j.dir.join(f), dir.join(f));
            std::fs::copy(&from, &to).ctx("copying", &from)?;
        }
    }
    Ok(())
}
