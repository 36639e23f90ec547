//! The subcommands that work on a container's cgroup: `pause`, `resume`, `ps`, `update`,
//! `events`, with runc's flags and output formats (containerd's shim parses them).

use clap::{Args, ValueEnum};
use husk_container::Container;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use serde_json::json;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Container id
    pub id: String,
    /// Output format
    #[arg(short = 'f', long, value_enum, default_value_t = PsFormat::Table)]
    pub format: PsFormat,
    /// Options for ps(1) (default: -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Container id
    pub id: String,
    /// Print the container's statistics once and exit
    #[arg(long)]
    pub stats: bool,
    /// Interval between statistics (a Go duration: 5s, 500ms, 1m)
    #[arg(long, default_value = "5s")]
    pub interval: String,
}

/// runc's `update` flags. With `--resources` the other flags are ignored, as in runc.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Container id
    pub id: String,
    /// Path to a JSON file of runtime-spec linux.resources, or "-" for stdin
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    /// Block IO weight (10 to 1000)
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// CFS period in microseconds (0: the system default)
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CFS quota in microseconds per period (-1: unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share", visible_alias = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// Realtime period in microseconds
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds per period
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs the container may use (e.g. 0-1)
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (e.g. 0)
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// CPU idle (cgroup v2 only; 1 makes the cgroup SCHED_IDLE)
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_idle: Option<i64>,
    /// Kernel memory limit (deprecated by the kernel)
    #[arg(long, allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP buffer memory limit
    #[arg(long, allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit (bytes or with a unit: 64m, 1g; -1: unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids (-1: unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported)
    #[arg(long)]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported)
    #[arg(long)]
    pub mem_bw_schema: Option<String>,
}

pub fn pause(root: &Path, id: &str) -> Result<i32, String> {
    let c = load(root, id, "pause")?;
    c.pause().map_err(|e| format!("pause {id}: {e}"))?;
    Ok(0)
}

pub fn resume(root: &Path, id: &str) -> Result<i32, String> {
    let c = load(root, id, "resume")?;
    c.resume().map_err(|e| format!("resume {id}: {e}"))?;
    Ok(0)
}

/// `ps`: the pids as a JSON array, or ps(1)'s table cut down to the container's processes.
pub fn ps(root: &Path, a: &PsArgs) -> Result<i32, String> {
    let id = &a.id;
    let fail = |e: String| format!("ps {id}: {e}");
    let c = load(root, id, "ps")?;
    let pids = c.processes().map_err(|e| fail(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    if a.format == PsFormat::Json {
        if !a.ps_args.is_empty() {
            return Err(fail(
                "ps options cannot be combined with --format json".into(),
            ));
        }
        let _ = writeln!(out, "{}", json!(pids));
        return Ok(0);
    }
    let args: Vec<&str> = if a.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        a.ps_args.iter().map(String::as_str).collect()
    };
    let res = std::process::Command::new("ps")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| fail(format!("running ps: {e}")))?;
    if !res.status.success() {
        let err = String::from_utf8_lossy(&res.stderr);
        return Err(fail(format!(
            "ps {} failed: {}",
            args.join(" "),
            err.trim().replace('\n', "; ")
        )));
    }
    let text = String::from_utf8_lossy(&res.stdout);
    let table = filter_ps_table(&text, &pids).map_err(fail)?;
    let _ = out.write_all(table.as_bytes());
    Ok(0)
}

/// The header plus the lines whose PID column names one of `pids`.
fn filter_ps_table(text: &str, pids: &[i32]) -> Result<String, String> {
    let mut lines = text.lines();
    let header = lines.next().ok_or("ps printed nothing")?;
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or("ps output has no PID column (add -o pid or use -ef)")?;
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

pub fn update(root: &Path, a: &UpdateArgs) -> Result<i32, String> {
    let id = &a.id;
    let fail = |e: String| format!("update {id}: {e}");
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        return Err(fail(
            "--l3-cache-schema/--mem-bw-schema: Intel RDT is not supported".into(),
        ));
    }
    let r = match a.resources.as_deref() {
        Some(src) => read_resources(src).map_err(fail)?,
        None => resources_from_flags(a).map_err(fail)?,
    };
    let c = load(root, id, "update")?;
    c.update(&r).map_err(|e| fail(e.to_string()))?;
    Ok(0)
}

fn read_resources(src: &str) -> Result<LinuxResources, String> {
    let mut text = Vec::new();
    if src == "-" {
        std::io::stdin()
            .read_to_end(&mut text)
            .map_err(|e| format!("reading resources from stdin: {e}"))?;
    } else {
        text = std::fs::read(src).map_err(|e| format!("reading {src}: {e}"))?;
    }
    serde_json::from_slice(&text).map_err(|e| format!("parsing resources JSON from {src}: {e}"))
}

fn resources_from_flags(a: &UpdateArgs) -> Result<LinuxResources, String> {
    let mut r = LinuxResources::default();
    let bytes = |flag: &str, v: &Option<String>| -> Result<Option<i64>, String> {
        v.as_deref()
            .map(|s| parse_bytes(s).map_err(|e| format!("--{flag} {s:?}: {e}")))
            .transpose()
    };
    let (limit, swap, reservation, kernel, kernel_tcp) = (
        bytes("memory", &a.memory)?,
        bytes("memory-swap", &a.memory_swap)?,
        bytes("memory-reservation", &a.memory_reservation)?,
        bytes("kernel-memory", &a.kernel_memory)?,
        bytes("kernel-memory-tcp", &a.kernel_memory_tcp)?,
    );
    if limit.is_some()
        || swap.is_some()
        || reservation.is_some()
        || kernel.is_some()
        || kernel_tcp.is_some()
    {
        let mut m = LinuxMemory::default();
        m.set_limit(limit)
            .set_swap(swap)
            .set_reservation(reservation)
            .set_kernel(kernel)
            .set_kernel_tcp(kernel_tcp);
        r.set_memory(Some(m));
    }
    let cpu_given = a.cpu_shares.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_period.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some()
        || a.cpu_idle.is_some();
    if cpu_given {
        let mut c = LinuxCpu::default();
        c.set_shares(a.cpu_shares)
            .set_quota(a.cpu_quota)
            .set_period(a.cpu_period)
            .set_realtime_period(a.cpu_rt_period)
            .set_realtime_runtime(a.cpu_rt_runtime)
            .set_cpus(a.cpuset_cpus.clone())
            .set_mems(a.cpuset_mems.clone())
            .set_idle(a.cpu_idle);
        r.set_cpu(Some(c));
    }
    if let Some(l) = a.pids_limit {
        let mut p = LinuxPids::default();
        // runc: -1 (or any non-positive value) lifts the limit.
        p.set_limit(if l <= 0 { -1 } else { l });
        r.set_pids(Some(p));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

/// A size like docker's: "1048576", "64m", "64MB", "1.5g", "512KiB" (powers of 1024);
/// "-1" means unlimited.
fn parse_bytes(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| "not a size".to_string())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("unknown unit {unit:?}")),
    };
    let v = n * mult;
    if !v.is_finite() || v > i64::MAX as f64 {
        return Err("too large".into());
    }
    Ok(v as i64)
}

/// A Go duration ("5s", "1m30s", "250ms", "1.5h"). Go accepts these in `--interval`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(split);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// `events`: one stats event with `--stats`; otherwise stats every interval and an OOM event
/// whenever the kernel OOM-kills in the container, until the container stops.
pub fn events(root: &Path, a: &EventsArgs) -> Result<i32, String> {
    let id = &a.id;
    let fail = |e: String| format!("events {id}: {e}");
    let c = load(root, id, "events")?;
    let mut out = std::io::stdout().lock();
    // A closed reader (containerd gone) ends the stream quietly.
    let mut emit = |line: String| writeln!(out, "{line}").and_then(|_| out.flush()).is_ok();
    let stats_event = |c: &Container| {
        c.stats()
            .map(|s| event("stats", id, Some(json!(s))))
            .map_err(|e| fail(e.to_string()))
    };
    if a.stats {
        emit(stats_event(&c)?);
        return Ok(0);
    }
    let interval = parse_duration(&a.interval).map_err(fail)?;
    if interval.is_zero() {
        return Err(fail("--interval must be greater than 0".into()));
    }
    let mut oom = c.oom_watcher().map_err(|e| fail(e.to_string()))?;
    let mut kills = oom.oom_kill_count().unwrap_or(0);
    let mut next_stats = Instant::now() + interval;
    loop {
        let left = next_stats.saturating_duration_since(Instant::now());
        // Any wake-up (OOM, cgroup removal, timeout) is followed by reading the kill counter:
        // on v1 the eventfd can fire before the kernel has counted the kill.
        let waited = oom.wait(Some(left.min(Duration::from_millis(500))));
        let stopped = c.status() == husk_container::Status::Stopped;
        if stopped {
            // Let a kill that stopped the container reach the counter.
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(n) = oom.oom_kill_count() {
            for _ in kills..n {
                if !emit(event("oom", id, None)) {
                    return Ok(0);
                }
            }
            kills = kills.max(n);
        }
        if stopped {
            return Ok(0);
        }
        waited.map_err(|e| fail(e.to_string()))?;
        if Instant::now() >= next_stats {
            next_stats += interval;
            match stats_event(&c) {
                Ok(ev) => {
                    if !emit(ev) {
                        return Ok(0);
                    }
                }
                Err(_) if c.status() == husk_container::Status::Stopped => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }
}

/// One event line with runc's key order (type, id, data), which serde_json's map would sort.
fn event(kind: &str, id: &str, data: Option<serde_json::Value>) -> String {
    let head = format!("{{\"type\":{},\"id\":{}", json!(kind), json!(id));
    match data {
        Some(d) => format!("{head},\"data\":{d}}}"),
        None => format!("{head}}}"),
    }
}

fn load(root: &Path, id: &str, op: &str) -> Result<Container, String> {
    Container::load(root, id).map_err(|e| format!("{op} {id}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("64MB"), Ok(64 << 20));
        assert_eq!(parse_bytes("1.5g"), Ok(3 << 29));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("-1"), Ok(-1));
        assert!(parse_bytes("12x").is_err());
        assert!(parse_bytes("m").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1x").is_err());
    }

    #[test]
    fn ps_table_is_filtered_by_pid_column() {
        let text = "UID PID PPID C STIME TTY TIME CMD\n\
                    root 1 0 0 10:00 ? 00:00:01 init\n\
                    root 42 1 0 10:00 ? 00:00:00 sleep 1000\n\
                    root 43 42 0 10:00 ? 00:00:00 sh\n";
        let t = filter_ps_table(text, &[42, 43]).unwrap();
        assert_eq!(t.lines().count(), 3);
        assert!(!t.contains("init"));
        assert!(filter_ps_table("USER COMMAND\nroot x\n", &[1]).is_err());
    }
}
