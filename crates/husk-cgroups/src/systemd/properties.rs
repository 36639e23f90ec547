//! The part of `linux.resources` that systemd owns, as unit properties.
//!
//! systemd rewrites a unit's cgroup files from its properties whenever it re-applies them
//! (daemon-reload, another SetUnitProperties, a sibling's change), so a limit written only
//! to a file would silently revert. The limits systemd has a property for are therefore
//! given as properties (cgroup v2 names); the driver still writes every limit to the files
//! as the cgroupfs driver does, so the exact values (and what systemd has no property for:
//! devices, io, hugetlb, rdma, other unified keys) are in place. Pure: unit-tested.

use oci_spec::runtime::LinuxResources;

use crate::path::shares_to_weight;
use crate::v2::resources::swap_to_v2;
use crate::CgroupError;

/// systemd's "infinity" for the u64 limits.
pub const INFINITY: u64 = u64::MAX;

/// A property value, in the D-Bus types systemd declares for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `b`
    Bool(bool),
    /// `s`
    Str(String),
    /// `t`
    U64(u64),
    /// `au`
    U32s(Vec<u32>),
    /// `ay`: a bitmask, bit N of byte N/8 for CPU or node N
    Bytes(Vec<u8>),
}

/// One unit property.
pub type Property = (&'static str, Value);

/// The properties a new transient unit starts with: what it is, where it goes, and its
/// limits. A scope gets `pids` and Delegate=yes (the container may make sub-cgroups, and
/// systemd then leaves the subtree to it); a slice gets neither (systemd 252 refuses both),
/// its processes are moved in through cgroup.procs afterwards.
pub fn for_new_unit(
    slice: &str,
    is_slice: bool,
    description: &str,
    pids: &[u32],
    r: Option<&LinuxResources>,
) -> Result<Vec<Property>, CgroupError> {
    let mut p: Vec<Property> = vec![("Description", Value::Str(description.to_string()))];
    if is_slice {
        p.push(("Wants", Value::Str(slice.to_string())));
    } else {
        p.push(("Slice", Value::Str(slice.to_string())));
        p.push(("Delegate", Value::Bool(true)));
        p.push(("PIDs", Value::U32s(pids.to_vec())));
    }
    // No ordering against shutdown.target & co.: a container is stopped by its engine.
    p.push(("DefaultDependencies", Value::Bool(false)));
    for a in [
        "MemoryAccounting",
        "CPUAccounting",
        "TasksAccounting",
        "IOAccounting",
    ] {
        p.push((a, Value::Bool(true)));
    }
    if let Some(r) = r {
        p.extend(limits(r, true)?);
    }
    Ok(p)
}

/// The limits in `r` that systemd has a property for. `at_create`: a pids limit of 0 means
/// unlimited (in an update, 0 is "not given").
pub fn limits(r: &LinuxResources, at_create: bool) -> Result<Vec<Property>, CgroupError> {
    let mut p: Vec<Property> = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            p.push(("MemoryMax", Value::U64(limit_value("memory.limit", l)?)));
        }
        if let Some(l) = m.reservation().filter(|l| *l != 0) {
            p.push((
                "MemoryLow",
                Value::U64(limit_value("memory.reservation", l)?),
            ));
        }
        if let Some(s) = swap_to_v2(m.limit(), m.swap())? {
            let v = match s.as_str() {
                "max" => INFINITY,
                n => n.parse().map_err(|_| {
                    CgroupError::invalid("memory.swap", format!("{n} is not a number"))
                })?,
            };
            p.push(("MemorySwapMax", Value::U64(v)));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            p.push(("CPUWeight", Value::U64(shares_to_weight(s)?)));
        }
        let quota = c.quota().filter(|q| *q != 0);
        let period = c.period().filter(|p| *p != 0);
        if let Some(per) = period {
            p.push(("CPUQuotaPeriodUSec", Value::U64(per)));
        }
        if let Some(q) = quota {
            p.push(("CPUQuotaPerSecUSec", Value::U64(quota_per_sec(q, period)?)));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            p.push(("AllowedCPUs", Value::Bytes(bitmask("cpuset.cpus", cpus)?)));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            p.push((
                "AllowedMemoryNodes",
                Value::Bytes(bitmask("cpuset.mems", mems)?),
            ));
        }
    }
    if let Some(pids) = r.pids() {
        match pids.limit() {
            0 if !at_create => {}
            n if n <= 0 => p.push(("TasksMax", Value::U64(INFINITY))),
            n => p.push(("TasksMax", Value::U64(n as u64))),
        }
    }
    if let Some(u) = r.unified() {
        // The unified keys systemd also owns: given there, they would be reverted too.
        for (key, prop) in [
            ("memory.high", "MemoryHigh"),
            ("memory.max", "MemoryMax"),
            ("memory.low", "MemoryLow"),
            ("memory.min", "MemoryMin"),
            ("memory.swap.max", "MemorySwapMax"),
            ("pids.max", "TasksMax"),
        ] {
            if let Some(v) = u.get(key) {
                let n = match v.trim() {
                    "max" => INFINITY,
                    n => n.parse().map_err(|_| {
                        CgroupError::invalid(format!("unified {key:?}"), format!("{v:?}"))
                    })?,
                };
                p.retain(|(name, _)| *name != prop);
                p.push((prop, Value::U64(n)));
            }
        }
    }
    Ok(p)
}

fn limit_value(what: &str, v: i64) -> Result<u64, CgroupError> {
    match v {
        -1 => Ok(INFINITY),
        v if v > 0 => Ok(v as u64),
        v => Err(CgroupError::invalid(
            what,
            format!("{v} (only -1 means unlimited)"),
        )),
    }
}

/// systemd keeps a CPU quota as time per second and turns it back into cpu.max with the
/// unit's period; it stores it in whole percent, so a quota that is not a whole percent is
/// rounded up to the next 10 ms per second, never below what was asked for. The driver
/// then writes the exact cpu.max itself.
fn quota_per_sec(quota: i64, period: Option<u64>) -> Result<u64, CgroupError> {
    if quota == -1 {
        return Ok(INFINITY);
    }
    if quota < 0 {
        return Err(CgroupError::invalid(
            "cpu.quota",
            format!("{quota} (only -1 means unlimited)"),
        ));
    }
    let period = period.unwrap_or(100_000);
    let per_sec = (quota as u128 * 1_000_000).div_ceil(period as u128);
    let rounded = per_sec.div_ceil(10_000) * 10_000;
    u64::try_from(rounded).map_err(|_| CgroupError::invalid("cpu.quota", "too large"))
}

/// A cpuset list ("0-2,4") as systemd's bitmask bytes.
pub fn bitmask(what: &str, list: &str) -> Result<Vec<u8>, CgroupError> {
    let bad = || CgroupError::invalid(what, format!("{list:?} is not a list like \"0-2,4\""));
    let mut out: Vec<u8> = Vec::new();
    for part in list.trim().split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part.trim(), part.trim()),
        };
        let a: usize = a.parse().map_err(|_| bad())?;
        let b: usize = b.parse().map_err(|_| bad())?;
        if a > b || b >= 8192 {
            return Err(bad());
        }
        for n in a..=b {
            if out.len() <= n / 8 {
                out.resize(n / 8 + 1, 0);
            }
            out[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn get<'a>(p: &'a [Property], name: &str) -> Option<&'a Value> {
        p.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    #[test]
    fn limits_become_properties() {
        let r = res(
            r#"{"memory":{"limit":67108864,"reservation":33554432,"swap":134217728},
            "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-1,9","mems":"0"},
            "pids":{"limit":40}}"#,
        );
        let p = limits(&r, true).unwrap();
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(67108864)));
        assert_eq!(get(&p, "MemoryLow"), Some(&Value::U64(33554432)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(67108864)));
        assert_eq!(get(&p, "CPUWeight"), Some(&Value::U64(39)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(
            get(&p, "AllowedCPUs"),
            Some(&Value::Bytes(vec![0b11, 0b10]))
        );
        assert_eq!(get(&p, "AllowedMemoryNodes"), Some(&Value::Bytes(vec![1])));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(40)));
    }

    #[test]
    fn unlimited_and_rounding() {
        let r = res(r#"{"memory":{"limit":-1},"cpu":{"quota":-1},"pids":{"limit":0}}"#);
        let p = limits(&r, true).unwrap();
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(INFINITY)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(INFINITY)));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(INFINITY)));
        // pids 0 in an update is "not given"
        assert_eq!(get(&limits(&r, false).unwrap(), "TasksMax"), None);
        // 12345 us per 100 ms = 123450 us/s, kept by systemd in whole percent: 130 ms
        assert_eq!(quota_per_sec(12345, Some(100_000)).unwrap(), 130_000);
        assert_eq!(quota_per_sec(25_000, Some(50_000)).unwrap(), 500_000);
        assert!(limits(&res(r#"{"memory":{"limit":-5}}"#), true).is_err());
        assert!(bitmask("cpus", "3-1").is_err());
        assert!(bitmask("cpus", "x").is_err());
    }

    #[test]
    fn unified_keys_systemd_owns() {
        let r = res(
            r#"{"memory":{"limit":1000000},"unified":{"memory.high":"500000","memory.max":"max","io.weight":"10"}}"#,
        );
        let p = limits(&r, true).unwrap();
        assert_eq!(get(&p, "MemoryHigh"), Some(&Value::U64(500000)));
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(INFINITY)));
        assert_eq!(p.iter().filter(|(n, _)| *n == "MemoryMax").count(), 1);
    }

    #[test]
    fn a_new_scope_is_delegated_with_its_pids() {
        let p = for_new_unit("machine.slice", false, "husk container c1", &[42], None).unwrap();
        assert_eq!(get(&p, "Slice"), Some(&Value::Str("machine.slice".into())));
        assert_eq!(get(&p, "Delegate"), Some(&Value::Bool(true)));
        assert_eq!(get(&p, "PIDs"), Some(&Value::U32s(vec![42])));
        let p = for_new_unit("machine.slice", true, "d", &[42], None).unwrap();
        assert_eq!(get(&p, "PIDs"), None);
        assert_eq!(get(&p, "Wants"), Some(&Value::Str("machine.slice".into())));
    }
}
