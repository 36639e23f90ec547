//! Writing linux.resources to cgroup2 files, and reading them back as statistics.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxResources, LinuxThrottleDevice,
};

use super::V2Manager;
use crate::path::{blkio_weight_to_io_weight, shares_to_weight};
use crate::stats::{parse_io_stat_v2, Blkio, Cpu, Hugetlb, Memory, MemoryEntry, Pids};
use crate::v1::misc::{check_page_size, pids_value, rdma_lines};
use crate::{fsutil, CgroupError};

/// Apply everything; a resource this cgroup cannot enforce is an error.
pub fn apply_all(m: &V2Manager, r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(mem) = r.memory() {
        apply_memory(m, mem)?;
    }
    if let Some(cpu) = r.cpu() {
        apply_cpu(m, cpu)?;
    }
    if let Some(p) = r.pids() {
        m.require("pids", "pids.limit")?;
        fsutil::write(&m.dir().join("pids.max"), &pids_value(p.limit()))?;
    }
    if let Some(b) = r.block_io() {
        apply_io(m, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        apply_hugetlb(m, h)?;
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(CgroupError::unsupported(
                "network.classID/priorities",
                "cgroup v2 has no net_cls/net_prio controllers",
            ));
        }
    }
    if let Some(d) = r.devices() {
        apply_devices(m, d)?;
    }
    if let Some(rdma) = r.rdma() {
        let lines = rdma_lines(rdma)?;
        if !lines.is_empty() {
            m.require("rdma", "rdma limits")?;
            for l in lines {
                fsutil::write(&m.dir().join("rdma.max"), &l)?;
            }
        }
    }
    if let Some(u) = r.unified() {
        apply_unified(m.dir(), u)?;
    }
    Ok(())
}

/// "max" for -1, the number for other non-negative values.
pub(crate) fn max_value(what: &str, v: i64) -> Result<String, CgroupError> {
    match v {
        -1 => Ok("max".into()),
        v if v >= 0 => Ok(v.to_string()),
        v => Err(CgroupError::invalid(
            what,
            format!("{v} (only -1 means unlimited)"),
        )),
    }
}

/// The spec's `swap` is memory+swap (v1 semantics); memory.swap.max is swap alone.
/// Returns the value for memory.swap.max, or None when nothing is to be written.
pub fn swap_to_v2(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>, CgroupError> {
    let limit = limit.filter(|l| *l != 0);
    let swap = swap.filter(|s| *s != 0);
    match (limit, swap) {
        (Some(-1), None) | (_, Some(-1)) => Ok(Some("max".into())),
        (_, None) => Ok(None),
        (None | Some(-1), Some(_)) => Err(CgroupError::invalid(
            "memory.swap",
            "a swap limit needs a memory limit on cgroup v2",
        )),
        (Some(l), Some(s)) if s < l => Err(CgroupError::invalid(
            "memory.swap",
            format!("memory+swap {s} must not be below the memory limit {l}"),
        )),
        (Some(l), Some(_)) if l < 0 => Err(CgroupError::invalid(
            "memory.limit",
            format!("{l} (only -1 means unlimited)"),
        )),
        (Some(l), Some(s)) => Ok(Some((s - l).to_string())),
    }
}

fn apply_memory(m: &V2Manager, mem: &LinuxMemory) -> Result<(), CgroupError> {
    let d = m.dir();
    let limit = mem.limit().filter(|l| *l != 0);
    let swap = swap_to_v2(mem.limit(), mem.swap())?;
    let reservation = mem.reservation().filter(|r| *r != 0);
    for (v, what) in [
        (mem.kernel(), "memory.kernel"),
        (mem.kernel_tcp(), "memory.kernelTCP"),
    ] {
        if v.is_some_and(|v| v != 0 && v != -1) {
            return Err(CgroupError::unsupported(
                what,
                "cgroup v2 has no separate kernel memory limit",
            ));
        }
    }
    if mem.swappiness().is_some() {
        return Err(CgroupError::unsupported(
            "memory.swappiness",
            "cgroup v2 has no per-cgroup swappiness",
        ));
    }
    if mem.disable_oom_killer() == Some(true) {
        return Err(CgroupError::unsupported(
            "memory.disableOOMKiller",
            "cgroup v2 cannot disable the OOM killer",
        ));
    }
    if mem.use_hierarchy() == Some(false) {
        return Err(CgroupError::unsupported(
            "memory.useHierarchy=false",
            "cgroup v2 is always hierarchical",
        ));
    }
    if limit.is_none() && swap.is_none() && reservation.is_none() {
        return Ok(());
    }
    m.require("memory", "memory limits")?;
    if let (Some(l), Some(true)) = (limit, mem.check_before_update()) {
        let usage = fsutil::read_u64(&d.join("memory.current"))?;
        if l > 0 && (l as u64) < usage {
            return Err(CgroupError::BelowUsage {
                what: "memory limit".into(),
                path: d.join("memory.max"),
                limit: l,
                usage,
            });
        }
    }
    if let Some(s) = swap {
        fsutil::write_required(&d.join("memory.swap.max"), &s, "memory.swap")?;
    }
    if let Some(l) = limit {
        fsutil::write(&d.join("memory.max"), &max_value("memory.limit", l)?)?;
    }
    if let Some(r) = reservation {
        fsutil::write(&d.join("memory.low"), &max_value("memory.reservation", r)?)?;
    }
    Ok(())
}

/// The value for cpu.max, given the current content (needed when only the period changes).
pub fn cpu_max_value(quota: Option<i64>, period: Option<u64>, current: &str) -> Option<String> {
    let q = |q: i64| {
        if q < 0 {
            "max".to_string()
        } else {
            q.to_string()
        }
    };
    match (quota.filter(|q| *q != 0), period.filter(|p| *p != 0)) {
        (Some(qv), Some(p)) => Some(format!("{} {p}", q(qv))),
        (Some(qv), None) => Some(q(qv)),
        (None, Some(p)) => {
            let cur = current.split_whitespace().next().unwrap_or("max");
            Some(format!("{cur} {p}"))
        }
        (None, None) => None,
    }
}

fn apply_cpu(m: &V2Manager, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    let d = m.dir();
    if cpu.realtime_runtime().is_some_and(|r| r != 0)
        || cpu.realtime_period().is_some_and(|p| p != 0)
    {
        return Err(CgroupError::unsupported(
            "cpu.realtimeRuntime/realtimePeriod",
            "cgroup v2 has no RT group scheduling",
        ));
    }
    let shares = cpu.shares().filter(|s| *s != 0);
    let needs_cpu = shares.is_some()
        || cpu.quota().is_some_and(|q| q != 0)
        || cpu.period().is_some_and(|p| p != 0)
        || cpu.burst().is_some()
        || cpu.idle().is_some();
    if needs_cpu {
        m.require("cpu", "cpu limits")?;
        if let Some(s) = shares {
            fsutil::write(&d.join("cpu.weight"), &shares_to_weight(s)?.to_string())?;
        }
        if cpu.quota().is_some_and(|q| q < -1) {
            return Err(CgroupError::invalid(
                "cpu.quota",
                format!("{:?} (only -1 means unlimited)", cpu.quota()),
            ));
        }
        let f = d.join("cpu.max");
        let current = if cpu.quota().is_none() && cpu.period().is_some() {
            fsutil::read(&f)?
        } else {
            String::new()
        };
        if let Some(v) = cpu_max_value(cpu.quota(), cpu.period(), &current) {
            fsutil::write(&f, &v)?;
        }
        if let Some(b) = cpu.burst() {
            fsutil::write_required(&d.join("cpu.max.burst"), &b.to_string(), "cpu.burst")?;
        }
        if let Some(i) = cpu.idle() {
            fsutil::write_required(&d.join("cpu.idle"), &i.to_string(), "cpu.idle")?;
        }
    }
    let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
    let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
    if cpus.is_some() || mems.is_some() {
        m.require("cpuset", "cpu.cpus/cpu.mems")?;
        if let Some(c) = cpus {
            fsutil::write(&d.join("cpuset.cpus"), c)?;
        }
        if let Some(mm) = mems {
            fsutil::write(&d.join("cpuset.mems"), mm)?;
        }
    }
    Ok(())
}

fn apply_io(m: &V2Manager, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let d = m.dir();
    let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str); 4] = [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ];
    let weights = b.weight_device().as_deref().unwrap_or_default();
    let any = crate::v1::blkio::nonzero(b.weight()).is_some()
        || !weights.is_empty()
        || throttles
            .iter()
            .any(|(t, _)| t.as_ref().is_some_and(|v| !v.is_empty()));
    if crate::v1::blkio::nonzero(b.leaf_weight()).is_some()
        || weights.iter().any(|w| w.leaf_weight().is_some())
    {
        return Err(CgroupError::unsupported(
            "blockIO.leafWeight",
            "cgroup v2 has no leaf weights",
        ));
    }
    if !any {
        return Ok(());
    }
    m.require("io", "blockIO limits")?;
    // io.weight (1..10000, converted) when the kernel has it, else BFQ's io.bfq.weight (1..1000)
    let weight_file =
        |dev: Option<(i64, i64)>, w: u16| -> Result<(std::path::PathBuf, String), CgroupError> {
            let iow = d.join("io.weight");
            let target = match dev {
                Some((ma, mi)) => format!("{ma}:{mi}"),
                None => "default".to_string(),
            };
            if iow.exists() {
                Ok((iow, format!("{target} {}", blkio_weight_to_io_weight(w)?)))
            } else {
                let bfq = d.join("io.bfq.weight");
                if !bfq.exists() {
                    return Err(CgroupError::unsupported(
                        "blockIO.weight",
                        format!(
                            "neither io.weight nor io.bfq.weight exists in {}",
                            d.display()
                        ),
                    ));
                }
                Ok((bfq, format!("{target} {w}")))
            }
        };
    if let Some(w) = crate::v1::blkio::nonzero(b.weight()) {
        let (f, v) = weight_file(None, w)?;
        fsutil::write(&f, &v)?;
    }
    for wd in weights {
        if let Some(w) = wd.weight() {
            let (f, v) = weight_file(Some((wd.major(), wd.minor())), w)?;
            fsutil::write(&f, &v)?;
        }
    }
    for (list, key) in throttles {
        for t in list.iter().flatten() {
            let rate = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            fsutil::write(
                &d.join("io.max"),
                &format!("{}:{} {key}={rate}", t.major(), t.minor()),
            )?;
        }
    }
    Ok(())
}

pub(crate) fn apply_hugetlb(
    m: &V2Manager,
    limits: &[LinuxHugepageLimit],
) -> Result<(), CgroupError> {
    if limits.is_empty() {
        return Ok(());
    }
    m.require("hugetlb", "hugepageLimits")?;
    for l in limits {
        check_page_size(l.page_size())?;
        let what = format!("hugepageLimits {}", l.page_size());
        fsutil::write_required(
            &m.dir().join(format!("hugetlb.{}.max", l.page_size())),
            &max_value(&what, l.limit())?,
            &what,
        )?;
    }
    Ok(())
}

fn apply_devices(
    m: &V2Manager,
    rules: &[oci_spec::runtime::LinuxDeviceCgroup],
) -> Result<(), CgroupError> {
    let rules = crate::v1::devices::normalize(rules)?;
    if rules.is_empty() {
        return Ok(());
    }
    let prog = super::devices_ebpf::build_program(&rules);
    let dirfd = crate::CgroupManager::v2_dir_fd(m)
        .ok_or_else(|| CgroupError::io("opening", m.dir(), std::io::Error::last_os_error()))?;
    super::bpf::replace_device_program(&dirfd, &prog, m.dir())
}

/// Write `unified` keys as files of the cgroup. A key must name an existing file directly
/// in the cgroup directory.
pub(crate) fn apply_unified(dir: &Path, u: &HashMap<String, String>) -> Result<(), CgroupError> {
    let mut keys: Vec<_> = u.iter().collect();
    keys.sort();
    for (k, v) in keys {
        if k.is_empty() || k.contains('/') || k == "." || k == ".." {
            return Err(CgroupError::invalid(
                "unified key",
                format!("{k:?} must be a file name without '/'"),
            ));
        }
        let f = dir.join(k);
        if !f.exists() {
            return Err(CgroupError::unsupported(
                format!("unified key {k:?}"),
                format!("{} does not exist (controller not enabled?)", f.display()),
            ));
        }
        fsutil::write(&f, v)?;
    }
    Ok(())
}

pub fn cpu_stats(d: &Path, out: &mut Cpu) -> Result<(), CgroupError> {
    let st = fsutil::read_flat_keyed_opt(&d.join("cpu.stat"))?;
    let g = |k: &str| st.get(k).copied().unwrap_or(0);
    out.usage.total = g("usage_usec") * 1000;
    out.usage.user = g("user_usec") * 1000;
    out.usage.kernel = g("system_usec") * 1000;
    out.throttling.periods = g("nr_periods");
    out.throttling.throttled_periods = g("nr_throttled");
    out.throttling.throttled_time = g("throttled_usec") * 1000;
    Ok(())
}

pub fn memory_stats(d: &Path, out: &mut Memory) -> Result<(), CgroupError> {
    if !d.join("memory.current").exists() {
        return Ok(());
    }
    let events = fsutil::read_flat_keyed_opt(&d.join("memory.events"))?;
    out.usage = MemoryEntry {
        limit: fsutil::read_u64(&d.join("memory.max"))?,
        usage: fsutil::read_u64(&d.join("memory.current"))?,
        max: fsutil::read_u64_or_zero(&d.join("memory.peak"))?,
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    if d.join("memory.swap.current").exists() {
        let sev = fsutil::read_flat_keyed_opt(&d.join("memory.swap.events"))?;
        out.swap = MemoryEntry {
            limit: fsutil::read_u64(&d.join("memory.swap.max"))?,
            usage: fsutil::read_u64(&d.join("memory.swap.current"))?,
            max: fsutil::read_u64_or_zero(&d.join("memory.swap.peak"))?,
            failcnt: sev.get("max").copied().unwrap_or(0),
        };
    }
    out.raw = fsutil::read_flat_keyed(&d.join("memory.stat"))?;
    out.cache = out.raw.get("file").copied().unwrap_or(0);
    out.oom_kill = events.get("oom_kill").copied().unwrap_or(0);
    Ok(())
}

pub fn pids_stats(d: &Path, out: &mut Pids) -> Result<(), CgroupError> {
    if !d.join("pids.current").exists() {
        return Ok(());
    }
    out.current = fsutil::read_u64(&d.join("pids.current"))?;
    let max = fsutil::read_u64(&d.join("pids.max"))?;
    out.limit = if max == u64::MAX { 0 } else { max };
    Ok(())
}

pub fn io_stats(d: &Path, out: &mut Blkio) -> Result<(), CgroupError> {
    if let Some(s) = fsutil::read_opt(&d.join("io.stat"))? {
        let (b, i) = parse_io_stat_v2(&s);
        out.io_service_bytes_recursive = b;
        out.io_serviced_recursive = i;
    }
    Ok(())
}

pub fn hugetlb_stats(d: &Path, out: &mut BTreeMap<String, Hugetlb>) -> Result<(), CgroupError> {
    let entries = std::fs::read_dir(d).map_err(|e| CgroupError::io("listing", d, e))?;
    for ent in entries.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|n| n.strip_suffix(".current"))
        else {
            continue;
        };
        if size.contains('.') {
            continue; // hugetlb.2MB.rsvd.current
        }
        let f = |n: &str| d.join(format!("hugetlb.{size}.{n}"));
        let ev = fsutil::read_flat_keyed_opt(&f("events"))?;
        out.insert(
            size.to_string(),
            Hugetlb {
                usage: fsutil::read_u64(&f("current"))?,
                max: fsutil::read_u64_or_zero(&f("max"))?,
                failcnt: ev.get("max").copied().unwrap_or(0),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_conversion() {
        assert_eq!(
            swap_to_v2(Some(100), Some(300)).unwrap().as_deref(),
            Some("200")
        );
        assert_eq!(
            swap_to_v2(Some(100), Some(100)).unwrap().as_deref(),
            Some("0")
        );
        assert_eq!(
            swap_to_v2(Some(100), Some(-1)).unwrap().as_deref(),
            Some("max")
        );
        assert_eq!(swap_to_v2(Some(-1), None).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_to_v2(Some(100), None).unwrap(), None);
        assert_eq!(swap_to_v2(None, None).unwrap(), None);
        assert_eq!(swap_to_v2(Some(100), Some(0)).unwrap(), None);
        assert!(swap_to_v2(Some(300), Some(100)).is_err());
        assert!(swap_to_v2(None, Some(100)).is_err());
        assert!(swap_to_v2(Some(-1), Some(100)).is_err());
    }

    #[test]
    fn cpu_max() {
        assert_eq!(
            cpu_max_value(Some(50000), Some(100000), "").as_deref(),
            Some("50000 100000")
        );
        assert_eq!(
            cpu_max_value(Some(-1), Some(100000), "").as_deref(),
            Some("max 100000")
        );
        assert_eq!(
            cpu_max_value(Some(20000), None, "").as_deref(),
            Some("20000")
        );
        assert_eq!(
            cpu_max_value(None, Some(50000), "30000 100000\n").as_deref(),
            Some("30000 50000")
        );
        assert_eq!(cpu_max_value(None, None, ""), None);
        assert_eq!(max_value("x", -1).unwrap(), "max");
        assert!(max_value("x", -2).is_err());
    }

    #[test]
    fn unified_keys_are_checked() {
        let d = std::env::temp_dir();
        let mut m = HashMap::new();
        m.insert("../etc/passwd".to_string(), "x".to_string());
        assert!(apply_unified(&d, &m)
            .unwrap_err()
            .to_string()
            .contains("without '/'"));
        let mut m = HashMap::new();
        m.insert("memory.nonexistent_file".to_string(), "1".to_string());
        let e = apply_unified(&d, &m).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
