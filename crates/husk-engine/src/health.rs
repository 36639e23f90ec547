//! Health checks, as docker's: the image's `Healthcheck` (CMD, CMD-SHELL, NONE) or
//! `--health-cmd/--health-interval/--health-timeout/--health-retries/--health-start-period`
//! (`--no-healthcheck` turns the image's off), run inside the container every interval.
//!
//! Who runs what: the container's monitor (monitor/main.rs) only keeps time — it reads
//! the interval from DIR/health-interval and, that long after the start and after each
//! check, executes `PROGRAM __monitor health DIR ID`, which runs the check here ([`check`])
//! through the runtime library's exec path (a tenant process with the container's user,
//! env and cwd, its output captured, killed at the timeout) and records the result. So the
//! monitor stays small, and `husk healthcheck run` is the very same code.
//!
//! The state — docker's `State.Health{Status, FailingStreak, Log}` — is DIR/health.json,
//! not container.json: checks write it while other commands rewrite container.json (stop
//! marks it "stopping"), and a read-modify-write of one file by both would lose updates.
//! A change of status is an event (`health_status: healthy`), as docker's.

use crate::os::{IoContext, IoError, SysError};
use crate::record::{state_root, Record};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// docker's defaults: 30 s interval and timeout, 3 retries, no start period.
const DEFAULT_INTERVAL: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT: i64 = 30_000_000_000;
const DEFAULT_RETRIES: i64 = 3;
/// docker keeps the last 5 results and 4 KiB of each one's output.
const MAX_LOG: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// The health flags of `run`/`create`, as given.
#[derive(Clone, Debug, Default)]
pub struct HealthOptions {
    /// --health-cmd: a shell command (CMD-SHELL).
    pub cmd: Option<String>,
    /// Go durations (`500ms`, `1m30s`).
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<i64>,
    /// --no-healthcheck: none, not even the image's.
    pub disable: bool,
}

/// A user error in the health flags.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HealthFlagError {
    #[error("{flag} {value:?}: a duration such as 500ms, 10s or 1m30s")]
    Duration { flag: &'static str, value: String },
    #[error("{flag} {value:?}: must be at least 1ms")]
    TooShort { flag: &'static str, value: String },
    #[error("--health-retries {0}: must not be negative")]
    Retries(i64),
    #[error("--no-healthcheck conflicts with the --health-* options")]
    Conflict,
}

/// The validated health flags: what replaces the image's healthcheck, field by field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthOverrides {
    pub test: Option<Vec<String>>,
    /// Nanoseconds.
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub start_period: Option<i64>,
    pub retries: Option<i64>,
    pub disable: bool,
}

impl HealthOverrides {
    pub fn validate(o: &HealthOptions) -> Result<HealthOverrides, HealthFlagError> {
        let dur = |flag: &'static str, v: &Option<String>, zero_ok: bool| {
            v.as_deref()
                .map(|s| {
                    let n = parse_duration(s).ok_or_else(|| HealthFlagError::Duration {
                        flag,
                        value: s.into(),
                    })?;
                    match n < 1_000_000 && !(zero_ok && n == 0) {
                        true => Err(HealthFlagError::TooShort {
                            flag,
                            value: s.into(),
                        }),
                        false => Ok(n),
                    }
                })
                .transpose()
        };
        let h = HealthOverrides {
            test: o
                .cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".to_string(), c.clone()]),
            interval: dur("--health-interval", &o.interval, false)?,
            timeout: dur("--health-timeout", &o.timeout, false)?,
            start_period: dur("--health-start-period", &o.start_period, true)?,
            retries: o.retries,
            disable: o.disable,
        };
        if let Some(r) = h.retries.filter(|r| *r < 0) {
            return Err(HealthFlagError::Retries(r));
        }
        let any = h.test.is_some()
            || h.interval.is_some()
            || h.timeout.is_some()
            || h.start_period.is_some()
            || h.retries.is_some();
        if h.disable && any {
            return Err(HealthFlagError::Conflict);
        }
        Ok(h)
    }
}

/// docker's `Config.Healthcheck` (durations in nanoseconds; 0: the default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Healthcheck {
    /// The image config's `config.Healthcheck`, if it has one (a raw config blob: the OCI
    /// image spec has no such field, docker's images do).
    pub fn from_image_config(config: &[u8]) -> Option<Healthcheck> {
        let v: serde_json::Value = serde_json::from_slice(config).ok()?;
        serde_json::from_value(v["config"]["Healthcheck"].clone()).ok()
    }

    /// The image's healthcheck with the flags' values over it (docker's merge: a flag
    /// replaces its field, an empty Test inherits). None: no check runs.
    pub fn merged(image: Option<Healthcheck>, o: &HealthOverrides) -> Option<Healthcheck> {
        if o.disable {
            return Some(Healthcheck {
                test: vec!["NONE".into()],
                ..Default::default()
            });
        }
        let mut h = image.unwrap_or_default();
        if let Some(t) = &o.test {
            h.test = t.clone();
        }
        h.interval = o.interval.unwrap_or(h.interval);
        h.timeout = o.timeout.unwrap_or(h.timeout);
        h.start_period = o.start_period.unwrap_or(h.start_period);
        h.retries = o.retries.unwrap_or(h.retries);
        (!h.test.is_empty()).then_some(h)
    }

    /// The process to run: CMD's arguments, or CMD-SHELL's command under /bin/sh -c.
    /// None for NONE (and anything else docker does not run).
    pub fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first()? {
            (k, args) if k == "CMD" && !args.is_empty() => Some(args.to_vec()),
            (k, [cmd]) if k == "CMD-SHELL" => {
                Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()])
            }
            _ => None,
        }
    }

    fn or_default(v: i64, d: i64) -> i64 {
        if v > 0 {
            v
        } else {
            d
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_nanos(Self::or_default(self.interval, DEFAULT_INTERVAL) as u64)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(Self::or_default(self.timeout, DEFAULT_TIMEOUT) as u64)
    }

    fn retries(&self) -> i64 {
        Self::or_default(self.retries, DEFAULT_RETRIES)
    }
}

/// Seconds, minutes… of a Go duration (`1h2m3.5s`, `250ms`, `0`) in nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    (total < i64::MAX as f64).then_some(total as i64)
}

/// docker's `State.Health`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthState {
    /// starting, healthy, unhealthy.
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<Probe>,
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    /// -1 when it timed out or could not run.
    pub exit_code: i64,
    pub output: String,
}

/// A container's health check failed to run at all (not: the check failed).
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("the container has no healthcheck defined")]
    None,
    #[error("the container is {0}, not running")]
    NotRunning(&'static str),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Sys(#[from] SysError),
}

/// Why a probe could not run; its text becomes the probe's output in the health log (as
/// docker's), so only `run_probe` sees it typed.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error(transparent)]
    Runtime(#[from] husk_container::Error),
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("/dev/null: {0}")]
    DevNull(std::io::Error),
}

const STATE: &str = "health.json";
/// The interval in milliseconds, for the monitor (which parses no JSON).
pub(crate) const INTERVAL_FILE: &str = "health-interval";

/// The container's healthcheck as `run` recorded it (container.json "healthcheck").
pub fn of_record(r: &Record) -> Option<Healthcheck> {
    r.meta.healthcheck.clone()
}

/// At create: what the monitor reads. Nothing when no check is to run.
pub(crate) fn write_monitor_file(dir: &Path, h: Option<&Healthcheck>) -> Result<(), IoError> {
    let Some(h) = h.filter(|h| h.command().is_some()) else {
        return Ok(());
    };
    let p = dir.join(INTERVAL_FILE);
    std::fs::write(&p, format!("{}\n", h.interval().as_millis().max(1))).ctx("writing", &p)
}

/// The health state of the container in `dir` (None: it has no check, or none ran yet
/// since it was made).
pub fn state(dir: &Path) -> Option<HealthState> {
    serde_json::from_slice(&std::fs::read(dir.join(STATE)).ok()?).ok()
}

/// At each start: back to "starting", with the log kept (docker resets the status only).
pub(crate) fn reset(dir: &Path, r: &Record) {
    if of_record(r).and_then(|h| h.command()).is_none() {
        return;
    }
    let _lock = crate::os::lock_file(&dir.join("health.lock"));
    let mut s = state(dir).unwrap_or_default();
    s.status = "starting".into();
    s.failing_streak = 0;
    let _ = save(dir, &s);
}

fn save(dir: &Path, s: &HealthState) -> Result<(), IoError> {
    let tmp = dir.join(".health.json.tmp");
    let f = dir.join(STATE);
    std::fs::write(&tmp, serde_json::to_vec_pretty(s).unwrap())
        .and_then(|_| std::fs::rename(&tmp, &f))
        .ctx("writing", &f)
}

impl crate::Engine {
    /// `healthcheck run`: the container's check, once, recorded as the monitor's are.
    /// What this check says, as podman's: healthy (it passed), unhealthy (it failed), or
    /// starting (it failed in the start period of a container not healthy yet).
    pub fn healthcheck_run(&self, what: &str) -> crate::Result<&'static str> {
        use crate::error::During;
        let run = || -> crate::Result<&'static str> {
            let r = crate::record::find(&self.root, what)?;
            let o = check(&r)?;
            Ok(match (o.passed, o.status.as_str()) {
                (true, _) => "healthy",
                (false, "starting") => "starting",
                (false, _) => "unhealthy",
            })
        };
        run().during("healthcheck run", what)
    }
}

/// What one check did.
pub struct Outcome {
    /// It exited 0 in time.
    pub passed: bool,
    /// The container's status after it.
    pub status: String,
}

/// Run the container's check once and record the result.
pub fn check(r: &Record) -> Result<Outcome, HealthError> {
    let h = of_record(r).ok_or(HealthError::None)?;
    let cmd = h.command().ok_or(HealthError::None)?;
    let c = r
        .runtime()
        .filter(|c| c.status() == husk_oci::Status::Running)
        .ok_or(HealthError::NotRunning(r.status()))?;
    let start = husk_oci::time::rfc3339_now();
    let (exit_code, output) = match run_probe(&c, r, cmd, h.timeout()) {
        Ok(x) => x,
        Err(e) => (-1, e.to_string()),
    };
    let probe = Probe {
        start,
        end: husk_oci::time::rfc3339_now(),
        exit_code,
        output,
    };
    let _lock = crate::os::lock_file(&r.dir.join("health.lock"))?;
    let mut s = state(&r.dir).unwrap_or_else(|| HealthState {
        status: "starting".into(),
        ..Default::default()
    });
    let before = s.status.clone();
    let in_start_period = h.start_period > 0
        && r.meta
            .started
            .as_ref()
            .is_some_and(|t| (crate::views::now() - t.secs()) * 1_000_000_000 < h.start_period);
    let passed = probe.exit_code == 0;
    apply(&mut s, probe, h.retries(), in_start_period);
    save(&r.dir, &s)?;
    if s.status != before {
        let action = format!("health_status: {}", s.status);
        crate::events::container(crate::events::root_of(&r.dir), r, &action, &[]);
    }
    Ok(Outcome {
        passed,
        status: s.status,
    })
}

/// docker's rules: a success makes it healthy (and ends the start period); a failure
/// counts unless in the start period, and `retries` of them in a row make it unhealthy.
fn apply(s: &mut HealthState, p: Probe, retries: i64, in_start_period: bool) {
    if p.exit_code == 0 {
        s.status = "healthy".into();
        s.failing_streak = 0;
    } else if !in_start_period || s.status != "starting" {
        s.failing_streak += 1;
        if s.failing_streak >= retries {
            s.status = "unhealthy".into();
        }
    }
    s.log.push(p);
    let n = s.log.len();
    if n > MAX_LOG {
        s.log.drain(..n - MAX_LOG);
    }
}

/// Run `cmd` in the container as its process runs (user, env, cwd), stdout and stderr
/// together captured (the first [`MAX_OUTPUT`] bytes), killed after `timeout`: its exit
/// code and output, or why it could not run.
fn run_probe(
    c: &husk_container::Container,
    r: &Record,
    cmd: Vec<String>,
    timeout: Duration,
) -> Result<(i64, String), ProbeError> {
    let mut p = c.config_process()?;
    p.set_args(Some(cmd));
    p.set_terminal(Some(false));
    let (out_r, out_w) = crate::os::pipe()?;
    let null = std::fs::File::open("/dev/null").map_err(ProbeError::DevNull)?;
    let deadline = Instant::now() + timeout;
    // The tenant inherits our fds 0-2: point them at /dev/null and the pipe meanwhile.
    let built = with_stdio(&null, &out_w, || {
        husk_container::ContainerBuilder::new(r.id().to_string())
            .root_path(state_root())
            .as_tenant()
            .process(p)
            .build()
    })?;
    drop(out_w);
    let t = built?;
    let mut output = Vec::new();
    let timed_out = read_until_exit(&out_r, t.pidfd(), deadline, &mut output);
    if timed_out {
        let _ = t.signal(libc::SIGKILL);
    }
    let code = t.wait()?;
    if timed_out {
        return Ok((
            -1,
            format!("Health check exceeded timeout ({})", go_duration(timeout)),
        ));
    }
    output.truncate(MAX_OUTPUT);
    Ok((
        i64::from(code),
        String::from_utf8_lossy(&output).into_owned(),
    ))
}

/// `f` run with our fds 0, 1 and 2 on `stdin`, `out` and `out`; restored after.
fn with_stdio<T>(
    stdin: &impl AsRawFd,
    out: &impl AsRawFd,
    f: impl FnOnce() -> T,
) -> Result<T, SysError> {
    let mut saved = Vec::new();
    for fd in 0..3 {
        let s = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        if s < 0 {
            return Err(SysError::last("fcntl"));
        }
        saved.push(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(s) });
    }
    for (to, from) in [
        (0, stdin.as_raw_fd()),
        (1, out.as_raw_fd()),
        (2, out.as_raw_fd()),
    ] {
        unsafe { libc::dup2(from, to) };
    }
    let v = f();
    for (to, from) in saved.iter().enumerate() {
        unsafe { libc::dup2(from.as_raw_fd(), to as i32) };
    }
    Ok(v)
}

/// Read `pipe` into `out` until the process (its pidfd) exits — what is still in the pipe
/// then is read too, but not what a process it left behind writes later — or `deadline`
/// passes: whether it timed out.
fn read_until_exit(
    pipe: &OwnedFd,
    pidfd: Option<&OwnedFd>,
    deadline: Instant,
    out: &mut Vec<u8>,
) -> bool {
    unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut buf = [0u8; 4096];
    let mut pipe_open = true;
    let mut read_some = |out: &mut Vec<u8>| -> bool {
        loop {
            let n = unsafe { libc::read(pipe.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            match n {
                0 => return false,
                n if n > 0 => {
                    if out.len() < MAX_OUTPUT {
                        out.extend_from_slice(&buf[..n as usize]);
                    }
                }
                _ => match std::io::Error::last_os_error().kind() {
                    std::io::ErrorKind::Interrupted => continue,
                    std::io::ErrorKind::WouldBlock => return true,
                    _ => return false,
                },
            }
        }
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        let mut fds = vec![];
        if pipe_open {
            fds.push(libc::pollfd {
                fd: pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(p) = pidfd {
            fds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // Without a pidfd (old kernels) the pipe's end is the process's end.
        if fds.is_empty() {
            return false;
        }
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms.max(1)) };
        if n <= 0 {
            continue;
        }
        let exited = pidfd.is_some() && fds.last().is_some_and(|f| f.revents != 0);
        if pipe_open && fds[0].revents != 0 {
            pipe_open = read_some(out);
        }
        if exited {
            if pipe_open {
                read_some(out);
            }
            return false;
        }
    }
}

/// A duration as Go prints it (`30s`, `1.5s`, `500ms`), for docker's timeout message.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_parses_them() {
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("2h"), Some(7_200_000_000_000));
        for bad in ["", "10", "1x", "s", "1s2"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }

    fn opts(f: impl FnOnce(&mut HealthOptions)) -> Result<HealthOverrides, HealthFlagError> {
        let mut o = HealthOptions::default();
        f(&mut o);
        HealthOverrides::validate(&o)
    }

    #[test]
    fn flags_are_checked() {
        assert_eq!(
            opts(|o| o.interval = Some("soon".into()))
                .unwrap_err()
                .to_string(),
            "--health-interval \"soon\": a duration such as 500ms, 10s or 1m30s"
        );
        assert!(matches!(
            opts(|o| o.timeout = Some("0".into())),
            Err(HealthFlagError::TooShort { .. })
        ));
        assert_eq!(
            opts(|o| o.start_period = Some("0".into()))
                .unwrap()
                .start_period,
            Some(0)
        );
        assert_eq!(
            opts(|o| o.retries = Some(-1)),
            Err(HealthFlagError::Retries(-1))
        );
        assert_eq!(
            opts(|o| {
                o.disable = true;
                o.cmd = Some("true".into());
            }),
            Err(HealthFlagError::Conflict)
        );
    }

    #[test]
    fn flags_override_the_image_field_by_field() {
        let image = Healthcheck {
            test: vec!["CMD".into(), "/bin/check".into(), "-q".into()],
            interval: 5_000_000_000,
            timeout: 0,
            start_period: 0,
            retries: 7,
        };
        let o = opts(|o| o.interval = Some("1s".into())).unwrap();
        let m = Healthcheck::merged(Some(image.clone()), &o).unwrap();
        assert_eq!(m.test, image.test);
        assert_eq!((m.interval, m.retries), (1_000_000_000, 7));
        assert_eq!(m.command().unwrap(), ["/bin/check", "-q"]);
        assert_eq!(m.timeout(), Duration::from_secs(30));

        let o = opts(|o| o.cmd = Some("test -e /ok".into())).unwrap();
        let m = Healthcheck::merged(None, &o).unwrap();
        assert_eq!(m.command().unwrap(), ["/bin/sh", "-c", "test -e /ok"]);
        assert_eq!(m.retries(), 3);

        let off = opts(|o| o.disable = true).unwrap();
        let m = Healthcheck::merged(Some(image), &off).unwrap();
        assert_eq!(
            (m.test.as_slice(), m.command()),
            (&["NONE".to_string()][..], None)
        );
        assert_eq!(Healthcheck::merged(None, &HealthOverrides::default()), None);
    }

    #[test]
    fn image_config_healthcheck_is_read() {
        let cfg = br#"{"config":{"Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Retries":2}}}"#;
        let h = Healthcheck::from_image_config(cfg).unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!((h.interval, h.retries, h.timeout), (1_000_000_000, 2, 0));
        assert_eq!(Healthcheck::from_image_config(br#"{"config":{}}"#), None);
    }

    fn probe(code: i64) -> Probe {
        Probe {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: code.to_string(),
        }
    }

    #[test]
    fn status_follows_dockers_rules() {
        let mut s = HealthState {
            status: "starting".into(),
            ..Default::default()
        };
        // In the start period, failures do not count while it is starting.
        apply(&mut s, probe(1), 2, true);
        assert_eq!((s.status.as_str(), s.failing_streak), ("starting", 0));
        apply(&mut s, probe(0), 2, true);
        assert_eq!((s.status.as_str(), s.failing_streak), ("healthy", 0));
        apply(&mut s, probe(1), 2, true);
        assert_eq!((s.status.as_str(), s.failing_streak), ("healthy", 1));
        apply(&mut s, probe(-1), 2, false);
        assert_eq!((s.status.as_str(), s.failing_streak), ("unhealthy", 2));
        for c in 0..5 {
            apply(&mut s, probe(10 + c), 2, false);
        }
        let kept: Vec<i64> = s.log.iter().map(|p| p.exit_code).collect();
        assert_eq!(kept, [10, 11, 12, 13, 14]);
    }
}
