//! Error, warning and debug lines as runc prints them (its logrus setup), because callers
//! read them: containerd's shim takes the last `level=error` line of the `--log` file (JSON
//! with `--log-format json`), and scripts grep stderr for "error".
//!
//! - stderr, not a terminal: `time="2026-01-02T03:04:05Z" level=error msg="kill c1: …"`
//! - stderr, a terminal: `ERRO[0000] kill c1: …` (seconds since start; no colours)
//! - `--log FILE`: the same lines in the file, in text or JSON form.
//!
//! Where they go follows runc: without `--log`, everything goes to stderr; with it,
//! warnings and debug lines go to the file only. Errors go to both — where runc then prints
//! the bare message on stderr, husk keeps the `level=error` form there too, so that every
//! error line says "error".

use crate::cli::LogFormat;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Logger {
    file: Option<File>,
    format: LogFormat,
    debug: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Debug,
    Warning,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    /// logrus's four-letter form on a terminal.
    fn short(self) -> &'static str {
        match self {
            Level::Debug => "DEBU",
            Level::Warning => "WARN",
            Level::Error => "ERRO",
        }
    }
}

impl Logger {
    /// A log file that cannot be opened is an error, as in runc: the caller (containerd)
    /// would otherwise look there for an error that never comes.
    pub fn new(
        path: Option<&std::path::Path>,
        format: LogFormat,
        debug: bool,
    ) -> Result<Logger, String> {
        let file = path
            .map(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("opening log file {}: {e}", p.display()))
            })
            .transpose()?;
        Ok(Logger {
            file,
            format,
            debug,
        })
    }

    pub fn error(&mut self, msg: &str) {
        write_stderr(Level::Error, msg);
        self.write_file(Level::Error, msg);
    }

    pub fn warn(&mut self, msg: &str) {
        self.emit(Level::Warning, msg);
    }

    /// A warning the caller must see even with `--log` (runc's `list` writes its "load
    /// container" lines straight to stderr): on stderr, and in the log file too.
    pub fn warn_stderr(&mut self, msg: &str) {
        write_stderr(Level::Warning, msg);
        self.write_file(Level::Warning, msg);
    }

    pub fn debugging(&self) -> bool {
        self.debug
    }

    /// `--debug`: when each phase of a create or run ended, counted from the start of this
    /// process (after the read-only re-exec), and how long it took (docs/architecture.md,
    /// "Where the time of `run` goes").
    pub fn timeline(&mut self, marks: &[(String, u64)]) {
        let t0 = *START_NS.get_or_init(husk_container::timeline::now_ns);
        let mut prev = t0;
        let ms = |ns: u64| ns as f64 / 1e6;
        for (what, t) in marks {
            self.debug(&format!(
                "timeline: {:8.3} ms {:+7.3} {what}",
                ms(t.saturating_sub(t0)),
                ms(t.saturating_sub(prev))
            ));
            prev = *t;
        }
    }

    pub fn debug(&mut self, msg: &str) {
        if self.debug {
            self.emit(Level::Debug, msg);
        }
    }

    /// To the --log file when there is one, else to stderr (runc's logrus output).
    fn emit(&mut self, level: Level, msg: &str) {
        if self.file.is_some() {
            self.write_file(level, msg);
        } else {
            write_stderr(level, msg);
        }
    }

    fn write_file(&mut self, level: Level, msg: &str) {
        let format = self.format;
        let Some(f) = self.file.as_mut() else { return };
        let line = match format {
            LogFormat::Json => {
                serde_json::json!({"level": level.name(), "msg": msg, "time": now()}).to_string()
            }
            LogFormat::Text => text_line(level, msg),
        };
        let _ = writeln!(f, "{line}");
    }
}

/// One error line on stderr, for failures before (or while) the logger exists.
pub fn stderr(msg: &str) {
    write_stderr(Level::Error, msg);
}

/// Unlike `eprintln!`, a closed or broken stderr is ignored: the runtime must finish (or
/// undo) what it started rather than abort halfway through a create or run.
fn write_stderr(level: Level, msg: &str) {
    let mut err = std::io::stderr().lock();
    let line = if err.is_terminal() {
        format!(
            "{}[{:04}] {msg}",
            level.short(),
            started().elapsed().as_secs()
        )
    } else {
        text_line(level, msg)
    };
    let _ = writeln!(err, "{line}");
}

/// When this process started, for the terminal form's `[0000]`.
fn started() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// The start of this process on CLOCK_MONOTONIC, the clock of the timeline's marks.
static START_NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Call early so that the terminal form and the timeline count from the start of the process.
pub fn mark_start() {
    started();
    START_NS.get_or_init(husk_container::timeline::now_ns);
}

/// logrus's text form: `time="…" level=… msg=…`.
fn text_line(level: Level, msg: &str) -> String {
    format!(
        "time={} level={} msg={}",
        quote_if_needed(&now()),
        level.name(),
        quote_if_needed(msg)
    )
}

/// RFC 3339 in seconds, as runc's logger writes it ("2026-01-02T03:04:05Z").
fn now() -> String {
    let full = husk_oci::rfc3339_now();
    match full.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => full,
    }
}

/// logrus quotes a value unless every character is a letter, digit or one of `-._/@^+`;
/// quoting is Go's %q (printable Unicode kept, control characters escaped).
fn quote_if_needed(s: &str) -> String {
    let plain = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_as_logrus_does() {
        assert_eq!(quote_if_needed("debug"), "debug");
        assert_eq!(quote_if_needed("a/b-c_d.e@f^+"), "a/b-c_d.e@f^+");
        assert_eq!(quote_if_needed("a:b"), "\"a:b\"");
        assert_eq!(
            quote_if_needed("kill c1: container \"x\"\n"),
            "\"kill c1: container \\\"x\\\"\\n\""
        );
        assert_eq!(quote_if_needed("tab\there\x01"), "\"tab\\there\\x01\"");
        assert_eq!(quote_if_needed("bell\x07"), "\"bell\\a\"");
        assert_eq!(quote_if_needed(""), "");
    }

    #[test]
    fn text_lines_have_runcs_shape() {
        let line = text_line(Level::Error, "container not running");
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(
            time.starts_with("time=\"") && time.ends_with("Z\""),
            "{line}"
        );
        assert_eq!(time.len(), "time=\"2026-01-02T03:04:05Z\"".len());
        assert_eq!(rest, "level=error msg=\"container not running\"");
    }
}
