//! v1 memory controller: memory.limit_in_bytes, memory.memsw.limit_in_bytes (the spec's
//! `swap` is memory+swap on v1), soft limit, kmem, swappiness, oom_control.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use super::{limit_value, V1Manager};
use crate::stats::{Memory, MemoryEntry};
use crate::{fsutil, CgroupError};

/// Zero means "not set" for the byte limits, as in the spec.
fn set_value(v: Option<i64>) -> Option<i64> {
    v.filter(|v| *v != 0)
}

pub fn apply(m: &V1Manager, mem: &LinuxMemory) -> Result<(), CgroupError> {
    let dir = m.require("memory", "memory limits")?;
    let limit_f = dir.join("memory.limit_in_bytes");
    let memsw_f = dir.join("memory.memsw.limit_in_bytes");
    let limit = set_value(mem.limit());
    let mut swap = set_value(mem.swap());

    if let (Some(l), Some(true)) = (limit, mem.check_before_update()) {
        if l > 0 {
            let usage = fsutil::read_u64(&dir.join("memory.usage_in_bytes"))?;
            if (l as u64) < usage {
                return Err(CgroupError::BelowUsage {
                    what: "memory limit".into(),
                    path: limit_f,
                    limit: l,
                    usage,
                });
            }
        }
    }

    // Lifting the memory limit must lift memory+swap too, or the kernel refuses
    // (memsw must stay >= limit).
    if limit == Some(-1) && swap.is_none() && memsw_f.exists() {
        swap = Some(-1);
    }
    if swap.is_some() && !memsw_f.exists() {
        return Err(CgroupError::unsupported(
            "memory.swap",
            format!(
                "{} does not exist (swap accounting is off)",
                memsw_f.display()
            ),
        ));
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let lv = limit_value("memory.limit", l)?;
            let sv = limit_value("memory.swap", s)?;
            let as_u64 = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
            if s != -1 && l != -1 && s < l {
                return Err(CgroupError::invalid(
                    "memory.swap",
                    format!("memory+swap {s} must not be below the memory limit {l}"),
                ));
            }
            let cur_memsw = fsutil::read_u64(&memsw_f)?;
            if as_u64(l) > cur_memsw || as_u64(s) > cur_memsw {
                // growing: raise memsw first so limit <= memsw holds at every step
                fsutil::write(&memsw_f, &sv)?;
                fsutil::write(&limit_f, &lv)?;
            } else {
                fsutil::write(&limit_f, &lv)?;
                fsutil::write(&memsw_f, &sv)?;
            }
        }
        (Some(l), None) => fsutil::write(&limit_f, &limit_value("memory.limit", l)?)?,
        (None, Some(s)) => fsutil::write(&memsw_f, &limit_value("memory.swap", s)?)?,
        (None, None) => {}
    }

    if let Some(r) = set_value(mem.reservation()) {
        fsutil::write(
            &dir.join("memory.soft_limit_in_bytes"),
            &limit_value("memory.reservation", r)?,
        )?;
    }
    if let Some(k) = set_value(mem.kernel()) {
        fsutil::write_required(
            &dir.join("memory.kmem.limit_in_bytes"),
            &limit_value("memory.kernel", k)?,
            "memory.kernel",
        )?;
    }
    if let Some(k) = set_value(mem.kernel_tcp()) {
        fsutil::write_required(
            &dir.join("memory.kmem.tcp.limit_in_bytes"),
            &limit_value("memory.kernelTCP", k)?,
            "memory.kernelTCP",
        )?;
    }
    if let Some(s) = mem.swappiness() {
        if s > 100 {
            return Err(CgroupError::invalid(
                "memory.swappiness",
                format!("{s} is above 100"),
            ));
        }
        fsutil::write_required(
            &dir.join("memory.swappiness"),
            &s.to_string(),
            "memory.swappiness",
        )?;
    }
    if let Some(d) = mem.disable_oom_killer() {
        fsutil::write_required(
            &dir.join("memory.oom_control"),
            if d { "1" } else { "0" },
            "memory.disableOOMKiller",
        )?;
    }
    if let Some(h) = mem.use_hierarchy() {
        fsutil::write_required(
            &dir.join("memory.use_hierarchy"),
            if h { "1" } else { "0" },
            "memory.useHierarchy",
        )?;
    }
    Ok(())
}

fn entry(dir: &Path, prefix: &str) -> Result<MemoryEntry, CgroupError> {
    let f = |n: &str| dir.join(format!("{prefix}.{n}"));
    if !f("usage_in_bytes").exists() {
        return Ok(MemoryEntry::default());
    }
    Ok(MemoryEntry {
        limit: fsutil::read_u64_or_zero(&f("limit_in_bytes"))?,
        usage: fsutil::read_u64_or_zero(&f("usage_in_bytes"))?,
        max: fsutil::read_u64_or_zero(&f("max_usage_in_bytes"))?,
        failcnt: fsutil::read_u64_or_zero(&f("failcnt"))?,
    })
}

pub fn stats(dir: &Path, out: &mut Memory) -> Result<(), CgroupError> {
    out.usage = entry(dir, "memory")?;
    out.swap = entry(dir, "memory.memsw")?;
    out.kernel = entry(dir, "memory.kmem")?;
    out.kernel_tcp = entry(dir, "memory.kmem.tcp")?;
    out.raw = fsutil::read_flat_keyed(&dir.join("memory.stat"))?;
    out.cache = out
        .raw
        .get("total_cache")
        .or_else(|| out.raw.get("cache"))
        .copied()
        .unwrap_or(0);
    out.oom_kill = fsutil::read_flat_keyed_opt(&dir.join("memory.oom_control"))?
        .get("oom_kill")
        .copied()
        .unwrap_or(0);
    Ok(())
}
