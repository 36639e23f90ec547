//! Error and debug output: one line on stderr, and runc's log lines in the --log file
//! (`{"level":"error","msg":"…","time":"…"}` with --log-format json; containerd reads them).

use crate::cli::LogFormat;
use std::fs::File;
use std::io::Write;

pub struct Logger {
    file: Option<File>,
    format: LogFormat,
    debug: bool,
}

impl Logger {
    pub fn new(path: Option<&std::path::Path>, format: LogFormat, debug: bool) -> Logger {
        let file = path.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| stderr(&format!("opening log file {}: {e}", p.display())))
                .ok()
        });
        Logger {
            file,
            format,
            debug,
        }
    }

    pub fn error(&mut self, msg: &str) {
        stderr(msg);
        self.write("error", msg);
    }

    pub fn warn(&mut self, msg: &str) {
        stderr(&format!("warning: {msg}"));
        self.write("warning", msg);
    }

    pub fn debug(&mut self, msg: &str) {
        if self.debug {
            stderr(&format!("debug: {msg}"));
            self.write("debug", msg);
        }
    }

    fn write(&mut self, level: &str, msg: &str) {
        let Some(f) = self.file.as_mut() else { return };
        let time = husk_oci::rfc3339_now();
        let line = match self.format {
            LogFormat::Json => {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            }
            LogFormat::Text => format!(
                "time={time:?} level={level} msg={}",
                serde_json::Value::from(msg)
            ),
        };
        let _ = writeln!(f, "{line}");
    }
}

/// One line on stderr. Unlike `eprintln!`, a closed or broken stderr is ignored: the runtime
/// must finish (or undo) what it started rather than abort halfway through a create or run.
pub fn stderr(msg: &str) {
    let _ = writeln!(std::io::stderr(), "husk-runtime: {msg}");
}
