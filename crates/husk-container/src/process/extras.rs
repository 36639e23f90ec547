//! Process attributes beyond identity, shared by init and tenant processes:
//! `process.scheduler` (sched_setattr), `process.ioPriority` (ioprio_set),
//! `process.execCPUAffinity` (sched_setaffinity: `initial` before the identity switch,
//! `final` as the last step before execve) and `linux.personality` (personality(2)).
//!
//! The spec types are read through their JSON form: the field names and enum spellings
//! there are the runtime-spec's own, so this stays independent of how oci-spec models them.

use super::SetupError;
use crate::sys;
use oci_spec::runtime::{Linux, Process};
use serde_json::Value;

/// Before the identity switch (some of these need privileges the process gives up).
pub fn apply_before_identity(process: &Process) -> Result<(), SetupError> {
    if let Some(list) = affinity(process, "initial") {
        set_affinity(&list, "initial")?;
    }
    if let Some(s) = process.scheduler() {
        set_scheduler(&json(s))?;
    }
    if let Some(p) = process.io_priority() {
        set_io_priority(&json(p))?;
    }
    Ok(())
}

/// The last step before execve: the final CPU affinity.
pub fn apply_final(process: &Process) -> Result<(), SetupError> {
    if let Some(list) = affinity(process, "final") {
        set_affinity(&list, "final")?;
    }
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn affinity(process: &Process, which: &str) -> Option<String> {
    let a = json(process.exec_cpu_affinity().as_ref()?);
    a[which].as_str().map(str::to_string)
}

/// "0-3,7" → the CPU set; then sched_setaffinity on ourselves.
fn set_affinity(list: &str, which: &str) -> Result<(), SetupError> {
    let what = || format!("process.execCPUAffinity.{which} {list:?}");
    let cpus = parse_cpu_list(list).map_err(|e| SetupError::msg(format!("{}: {e}", what())))?;
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(SetupError::msg(format!(
                "{}: CPU {cpu} is too large",
                what()
            )));
        }
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    sys::check(unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) })
        .map_err(|e| SetupError::new(format!("setting {}", what()), e))?;
    Ok(())
}

pub(crate) fn parse_cpu_list(list: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?} is not a CPU number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("range {part:?} is backwards"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    if out.is_empty() {
        return Err("no CPUs listed".into());
    }
    Ok(out)
}

/// The kernel's struct sched_attr (SCHED_ATTR_SIZE_VER0 plus nothing more).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

fn set_scheduler(s: &Value) -> Result<(), SetupError> {
    let bad = |m: String| SetupError::msg(format!("process.scheduler: {m}"));
    let policy = s["policy"].as_str().unwrap_or("SCHED_OTHER");
    let policy_num = match policy {
        "SCHED_OTHER" => 0,
        "SCHED_FIFO" => 1,
        "SCHED_RR" => 2,
        "SCHED_BATCH" => 3,
        "SCHED_ISO" => 4,
        "SCHED_IDLE" => 5,
        "SCHED_DEADLINE" => 6,
        p => return Err(bad(format!("unknown policy {p:?}"))),
    };
    let mut flags = 0u64;
    for f in s["flags"].as_array().into_iter().flatten() {
        let name = f.as_str().unwrap_or_default();
        flags |= match name {
            "SCHED_FLAG_RESET_ON_FORK" => 0x01,
            "SCHED_FLAG_RECLAIM" => 0x02,
            "SCHED_FLAG_DL_OVERRUN" => 0x04,
            "SCHED_FLAG_KEEP_POLICY" => 0x08,
            "SCHED_FLAG_KEEP_PARAMS" => 0x10,
            "SCHED_FLAG_UTIL_CLAMP_MIN" => 0x20,
            "SCHED_FLAG_UTIL_CLAMP_MAX" => 0x40,
            _ => return Err(bad(format!("unknown flag {name:?}"))),
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy_num,
        flags,
        nice: s["nice"].as_i64().unwrap_or(0) as i32,
        priority: s["priority"].as_i64().unwrap_or(0) as u32,
        runtime: s["runtime"].as_u64().unwrap_or(0),
        deadline: s["deadline"].as_u64().unwrap_or(0),
        period: s["period"].as_u64().unwrap_or(0),
    };
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    sys::check(r as i32)
        .map_err(|e| SetupError::new(format!("setting process.scheduler ({policy})"), e))?;
    Ok(())
}

fn set_io_priority(p: &Value) -> Result<(), SetupError> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    let class = p["class"].as_str().unwrap_or("IOPRIO_CLASS_BE");
    let class_num: i64 = match class {
        "IOPRIO_CLASS_RT" => 1,
        "IOPRIO_CLASS_BE" => 2,
        "IOPRIO_CLASS_IDLE" => 3,
        c => {
            return Err(SetupError::msg(format!(
                "process.ioPriority: unknown class {c:?}"
            )))
        }
    };
    let prio = p["priority"].as_i64().unwrap_or(0);
    if !(0..8).contains(&prio) {
        return Err(SetupError::msg(format!(
            "process.ioPriority: priority {prio} is outside 0..7"
        )));
    }
    let value = (class_num << 13) | prio;
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    sys::check(r as i32)
        .map_err(|e| SetupError::new(format!("setting process.ioPriority ({class} {prio})"), e))?;
    Ok(())
}

/// The container-wide extras of init: linux.personality, and a clear refusal of the ones
/// husk does not implement (rather than silently running without them).
pub fn apply_linux(linux: Option<&Linux>) -> Result<(), SetupError> {
    let Some(linux) = linux else { return Ok(()) };
    if let Some(policy) = linux.memory_policy() {
        set_memory_policy(&json(policy))?;
    }
    set_personality(linux)
}

/// linux.memoryPolicy: set_mempolicy(2) for init, inherited by the user's process across
/// execve (the NUMA policy survives exec).
fn set_memory_policy(v: &serde_json::Value) -> Result<(), SetupError> {
    let mode_name = v["mode"].as_str().unwrap_or("");
    let mode: libc::c_int = match mode_name {
        "MPOL_DEFAULT" => 0,
        "MPOL_PREFERRED" => 1,
        "MPOL_BIND" => 2,
        "MPOL_INTERLEAVE" => 3,
        "MPOL_LOCAL" => 4,
        "MPOL_PREFERRED_MANY" => 5,
        "MPOL_WEIGHTED_INTERLEAVE" => 6,
        m => {
            return Err(SetupError::msg(format!(
                "linux.memoryPolicy: unknown mode {m:?}"
            )))
        }
    };
    let mut flags: libc::c_int = 0;
    for f in v["flags"].as_array().into_iter().flatten() {
        flags |= match f.as_str().unwrap_or("") {
            "MPOL_F_NUMA_BALANCING" => 1 << 13,
            "MPOL_F_RELATIVE_NODES" => 1 << 14,
            "MPOL_F_STATIC_NODES" => 1 << 15,
            other => {
                return Err(SetupError::msg(format!(
                    "linux.memoryPolicy: unknown flag {other:?}"
                )))
            }
        };
    }
    // Node lists are written like CPU lists ("0-3,7"); MPOL_LOCAL/DEFAULT take none.
    let nodes = match v["nodes"].as_str().unwrap_or("").trim() {
        "" => Vec::new(),
        list => parse_cpu_list(list)
            .map_err(|e| SetupError::msg(format!("linux.memoryPolicy: nodes: {e}")))?,
    };
    let mut mask = vec![0u64; nodes.iter().max().map_or(0, |m| *m / 64 + 1)];
    for n in &nodes {
        mask[*n / 64] |= 1 << (n % 64);
    }
    // The kernel reads maxnode-1 bits (a historical off-by-one), hence the +1.
    let maxnode = if mask.is_empty() {
        0
    } else {
        mask.len() as u64 * 64 + 1
    };
    let ptr = if mask.is_empty() {
        std::ptr::null()
    } else {
        mask.as_ptr()
    };
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode | flags, ptr, maxnode) };
    sys::check(r as i32).map_err(|e| {
        SetupError::new(
            format!("setting linux.memoryPolicy {mode_name} nodes {nodes:?}"),
            e,
        )
    })?;
    Ok(())
}

/// linux.personality: the execution domain (LINUX or LINUX32) and its flags.
fn set_personality(linux: &Linux) -> Result<(), SetupError> {
    let Some(p) = linux.personality() else {
        return Ok(());
    };
    let v = json(p);
    let domain = v["domain"].as_str().unwrap_or("LINUX");
    let mut persona: libc::c_ulong = match domain {
        "LINUX" => 0x0000,
        "LINUX32" => 0x0008,
        d => {
            return Err(SetupError::msg(format!(
                "linux.personality: unknown domain {d:?}"
            )))
        }
    };
    for f in v["flags"].as_array().into_iter().flatten() {
        let name = f.as_str().unwrap_or_default();
        persona |= match name {
            "UNAME26" => 0x0020000,
            "ADDR_NO_RANDOMIZE" => 0x0040000,
            "FDPIC_FUNCPTRS" => 0x0080000,
            "MMAP_PAGE_ZERO" => 0x0100000,
            "ADDR_COMPAT_LAYOUT" => 0x0200000,
            "READ_IMPLIES_EXEC" => 0x0400000,
            "ADDR_LIMIT_32BIT" => 0x0800000,
            "SHORT_INODE" => 0x1000000,
            "WHOLE_SECONDS" => 0x2000000,
            "STICKY_TIMEOUTS" => 0x4000000,
            "ADDR_LIMIT_3GB" => 0x8000000,
            _ => {
                return Err(SetupError::msg(format!(
                    "linux.personality: unknown flag {name:?}"
                )))
            }
        };
    }
    if unsafe { libc::personality(persona) } < 0 {
        return Err(SetupError::new(
            format!("setting linux.personality {domain}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_list;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), [0, 1, 2, 5]);
        assert_eq!(parse_cpu_list("1").unwrap(), [1]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }
}
