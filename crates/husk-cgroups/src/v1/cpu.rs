//! v1 cpu (shares, CFS quota/period/burst, RT, idle), cpuset and cpuacct.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use super::V1Manager;
use crate::stats::{parse_numbers, Cpu};
use crate::{fsutil, CgroupError};

/// Write `a` then `b`; if the first write is refused with EINVAL (the pair would be
/// inconsistent in between, e.g. rt_runtime > rt_period), write them the other way round.
pub(crate) fn write_pair(
    a: (&Path, String),
    b: Option<(&Path, String)>,
) -> Result<(), CgroupError> {
    let Some(b) = b else {
        return fsutil::write(a.0, &a.1);
    };
    match fsutil::write(a.0, &a.1) {
        Ok(()) => fsutil::write(b.0, &b.1),
        Err(e) if e.errno() == Some(libc::EINVAL) => {
            fsutil::write(b.0, &b.1)?;
            fsutil::write(a.0, &a.1)
        }
        Err(e) => Err(e),
    }
}

pub fn apply(m: &V1Manager, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    let wants_cpu = cpu.shares().is_some_and(|s| s != 0)
        || cpu.quota().is_some_and(|q| q != 0)
        || cpu.period().is_some_and(|p| p != 0)
        || cpu.burst().is_some()
        || cpu.realtime_runtime().is_some_and(|r| r != 0)
        || cpu.realtime_period().is_some_and(|p| p != 0)
        || cpu.idle().is_some();
    if wants_cpu {
        let dir = m.require("cpu", "cpu limits")?;
        if let Some(s) = cpu.shares().filter(|s| *s != 0) {
            fsutil::write(&dir.join("cpu.shares"), &s.to_string())?;
        }
        let period_f = dir.join("cpu.cfs_period_us");
        let quota_f = dir.join("cpu.cfs_quota_us");
        let period = cpu.period().filter(|p| *p != 0);
        let quota = cpu.quota().filter(|q| *q != 0);
        if quota.is_some_and(|q| q < -1) {
            return Err(CgroupError::invalid(
                "cpu.quota",
                format!("{:?} (only -1 means unlimited)", quota),
            ));
        }
        match (period, quota) {
            (Some(p), q) => write_pair(
                (&period_f, p.to_string()),
                q.map(|q| (quota_f.as_path(), q.to_string())),
            )?,
            (None, Some(q)) => fsutil::write(&quota_f, &q.to_string())?,
            (None, None) => {}
        }
        if let Some(b) = cpu.burst() {
            fsutil::write_required(&dir.join("cpu.cfs_burst_us"), &b.to_string(), "cpu.burst")?;
        }
        let rt_period = cpu.realtime_period().filter(|p| *p != 0);
        let rt_runtime = cpu.realtime_runtime().filter(|r| *r != 0);
        let rp_f = dir.join("cpu.rt_period_us");
        let rr_f = dir.join("cpu.rt_runtime_us");
        if (rt_period.is_some() || rt_runtime.is_some()) && !rr_f.exists() {
            return Err(CgroupError::unsupported(
                "cpu.realtimeRuntime/realtimePeriod",
                "the kernel has no RT group scheduling (no cpu.rt_runtime_us)",
            ));
        }
        match (rt_period, rt_runtime) {
            (Some(p), r) => write_pair(
                (&rp_f, p.to_string()),
                r.map(|r| (rr_f.as_path(), r.to_string())),
            )?,
            (None, Some(r)) => fsutil::write(&rr_f, &r.to_string())?,
            (None, None) => {}
        }
        if let Some(i) = cpu.idle() {
            fsutil::write_required(&dir.join("cpu.idle"), &i.to_string(), "cpu.idle")?;
        }
    }
    let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
    let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
    if cpus.is_some() || mems.is_some() {
        let dir = m.require("cpuset", "cpu.cpus/cpu.mems")?;
        if let Some(c) = cpus {
            fsutil::write(&dir.join("cpuset.cpus"), c)?;
        }
        if let Some(mm) = mems {
            fsutil::write(&dir.join("cpuset.mems"), mm)?;
        }
    }
    Ok(())
}

/// Nanoseconds per USER_HZ tick, for cpuacct.stat.
fn ns_per_tick() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        1_000_000_000 / hz as u64
    } else {
        10_000_000
    }
}

pub fn cpuacct_stats(dir: &Path, out: &mut Cpu) -> Result<(), CgroupError> {
    out.usage.total = fsutil::read_u64(&dir.join("cpuacct.usage"))?;
    out.usage.percpu = parse_numbers(&fsutil::read(&dir.join("cpuacct.usage_percpu"))?);
    if let Some(s) = fsutil::read_opt(&dir.join("cpuacct.usage_percpu_user"))? {
        out.usage.percpu_user = parse_numbers(&s);
    }
    if let Some(s) = fsutil::read_opt(&dir.join("cpuacct.usage_percpu_sys"))? {
        out.usage.percpu_kernel = parse_numbers(&s);
    }
    let user = dir.join("cpuacct.usage_user");
    if user.exists() {
        out.usage.user = fsutil::read_u64(&user)?;
        out.usage.kernel = fsutil::read_u64(&dir.join("cpuacct.usage_sys"))?;
    } else {
        let st = fsutil::read_flat_keyed(&dir.join("cpuacct.stat"))?;
        let t = ns_per_tick();
        out.usage.user = st.get("user").copied().unwrap_or(0) * t;
        out.usage.kernel = st.get("system").copied().unwrap_or(0) * t;
    }
    Ok(())
}

pub fn throttling_stats(dir: &Path, out: &mut Cpu) -> Result<(), CgroupError> {
    let st = fsutil::read_flat_keyed_opt(&dir.join("cpu.stat"))?;
    out.throttling.periods = st.get("nr_periods").copied().unwrap_or(0);
    out.throttling.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
    out.throttling.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
    Ok(())
}
