//! A container's output as its monitor logged it: DIR/ctr.log, one JSON object per line in
//! Docker's json-file format (`{"log","stream","time"}`), read back as [`LogLine`]s.

use crate::engine::Engine;
use crate::error::{During, Result};
use crate::monitor::settle_orphan;
use crate::os::{IoContext, IoError};
use crate::record::{find, Record};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The file, in the container's directory, the monitor writes.
pub const LOG_FILE: &str = "ctr.log";

/// Which of the container's outputs a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One logged piece of output (a line with its "\n", or a part of a long line).
#[derive(Clone, Debug)]
pub struct LogLine {
    pub stream: Stream,
    /// RFC 3339, as logged.
    pub time: String,
    pub text: String,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct LogOptions {
    /// Keep reading until the container has exited.
    pub follow: bool,
    /// Only the last N lines (of those logged so far).
    pub tail: Option<usize>,
}

impl Engine {
    /// The output of container `what`, line by line to `out`, as it was written.
    pub fn logs(&self, what: &str, o: LogOptions, out: &mut dyn FnMut(LogLine)) -> Result<()> {
        let r = find(&self.root, what)?;
        read(&r.dir, o, out).during("logs", what)
    }

    /// `attach`: the running container's output from now on, line by line to `out`, until
    /// it exits; then its exit code. Output only: the monitor holds the container's stdin
    /// and pty and serves no socket to reach them, so what attach shows is what the monitor
    /// logs (a tty container's pty output too).
    pub fn attach(&self, what: &str, out: &mut dyn FnMut(LogLine)) -> Result<i64> {
        let r = find(&self.root, what)?;
        match r.status() {
            "running" | "paused" => {}
            s => {
                let e = crate::error::ContainerError::NotRunning(s);
                return Err(crate::Error::from(e).during("attach", what));
            }
        }
        let follow = LogOptions {
            follow: true,
            tail: Some(0),
        };
        read(&r.dir, follow, out).during("attach", what)?;
        self.wait_for(&r, what)
    }
}

fn read(dir: &Path, o: LogOptions, out: &mut dyn FnMut(LogLine)) -> Result<(), IoError> {
    let path = dir.join(LOG_FILE);
    let mut f = match File::open(&path) {
        Ok(f) => f,
        // A container run in the foreground: its output went to `husk run`'s own.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("opening", &path),
    };
    // What rotation (--log-opt) moved aside comes first: ctr.log.N (oldest) … ctr.log.1.
    let mut text = String::new();
    for n in (1..=rotated_count(dir)).rev() {
        let p = rotated(dir, n);
        if let Ok(mut old) = File::open(&p) {
            old.read_to_string(&mut text).ctx("reading", &p)?;
        }
    }
    f.read_to_string(&mut text).ctx("reading", &path)?;
    // Only whole lines; a partial last line is read again with the rest of it.
    let mut consumed = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let lines: Vec<&str> = text[..consumed].lines().collect();
    let skip = o.tail.map(|n| lines.len().saturating_sub(n)).unwrap_or(0);
    lines[skip..]
        .iter()
        .filter_map(|l| parse(l))
        .for_each(&mut *out);
    if !o.follow {
        return Ok(());
    }
    let mut rest = text[consumed..].to_string();
    loop {
        // Read the exit record first, then drain: nothing written before the exit is missed.
        // (Or by us, when the monitor that should have died before the container.)
        let done =
            Record::load(dir).map_or(true, |r| r.exit_code().is_some() || settle_orphan(&r, None));
        let mut more = String::new();
        let _ = f.read_to_string(&mut more);
        // Rotated since: the rest of the old file was read just now; go on with the new one.
        if let (Ok(held), Ok(now)) = (f.metadata(), std::fs::metadata(&path)) {
            use std::os::unix::fs::MetadataExt;
            if held.ino() != now.ino() {
                if let Ok(new) = File::open(&path) {
                    f = new;
                    let _ = f.read_to_string(&mut more);
                }
            }
        }
        rest.push_str(&more);
        consumed = rest.rfind('\n').map(|i| i + 1).unwrap_or(0);
        rest[..consumed]
            .lines()
            .filter_map(parse)
            .for_each(&mut *out);
        rest.drain(..consumed);
        if done {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn rotated(dir: &Path, n: u32) -> std::path::PathBuf {
    dir.join(format!("{LOG_FILE}.{n}"))
}

/// How many rotated files there are (ctr.log.1, ctr.log.2, … without a gap).
fn rotated_count(dir: &Path) -> u32 {
    (1..).take_while(|n| rotated(dir, *n).exists()).count() as u32
}

/// One record of the log; None for a line that is not one (never written by the monitor).
fn parse(line: &str) -> Option<LogLine> {
    let v = serde_json::from_str::<serde_json::Value>(line).ok()?;
    Some(LogLine {
        stream: if v["stream"] == "stderr" {
            Stream::Stderr
        } else {
            Stream::Stdout
        },
        time: v["time"].as_str().unwrap_or_default().to_string(),
        text: v["log"].as_str().unwrap_or_default().to_string(),
    })
}
