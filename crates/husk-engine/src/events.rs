//! `husk events`: what happened to containers and images, from an append-only log the engine
//! writes as it acts — there is no daemon to ask. STORE/events.log holds one JSON object a
//! line in docker's event layout (`Type`, `Action`, `Actor{ID,Attributes}`, `time`,
//! `timeNano`), each written with one O_APPEND write(2), so that lines from concurrent husk
//! processes and monitors never interleave. Writing an event never fails an operation.
//!
//! Actions: container create, start, die (attribute exitCode), stop, kill (signal), pause,
//! unpause, rename (oldName), destroy; image pull, tag, untag, delete, import.

use crate::engine::Engine;
use crate::error::Result;
use crate::os::IoContext;
use crate::record::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One event, as docker's API and `docker events --format '{{json .}}'` give it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    /// Seconds since the epoch.
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

impl std::fmt::Display for Event {
    /// docker's default line: `TIME TYPE ACTION ID (k=v, k=v)`.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let secs = self.time_nano.div_euclid(1_000_000_000);
        let nanos = self.time_nano.rem_euclid(1_000_000_000) as u32;
        let t = husk_oci::time::rfc3339(secs, nanos);
        let attrs: Vec<String> = self
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(
            f,
            "{t} {} {} {} ({})",
            self.kind,
            self.action,
            self.actor.id,
            attrs.join(", ")
        )
    }
}

/// `events` options that cannot be understood.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("--{0} {1:?}: expected a time (RFC 3339 or Unix seconds) or a duration (10m, 1h30m)")]
    Time(&'static str, String),
    #[error("--filter {0:?}: expected type=, event=, container= or image=")]
    Filter(String),
}

/// What `events` shows: the filters (values of one key are alternatives, keys must all
/// match, as docker's) and the time window in nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    pub filters: BTreeMap<String, Vec<String>>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl EventQuery {
    /// From `--since`, `--until` and `--filter KEY=VALUE` as given.
    pub fn parse(
        since: Option<&str>,
        until: Option<&str>,
        filters: &[String],
    ) -> Result<EventQuery, EventsError> {
        let now = now_nanos();
        let time = |flag, v: &str| parse_time(v, now).ok_or(EventsError::Time(flag, v.into()));
        let mut q = EventQuery {
            since: since.map(|s| time("since", s)).transpose()?,
            until: until.map(|u| time("until", u)).transpose()?,
            ..Default::default()
        };
        for f in filters {
            match f.split_once('=') {
                Some((k @ ("type" | "event" | "container" | "image"), v)) if !v.is_empty() => {
                    q.filters.entry(k.into()).or_default().push(v.into())
                }
                _ => return Err(EventsError::Filter(f.clone())),
            }
        }
        Ok(q)
    }

    fn matches(&self, e: &Event) -> bool {
        if self.since.is_some_and(|s| e.time_nano < s)
            || self.until.is_some_and(|u| e.time_nano > u)
        {
            return false;
        }
        let attr = |k: &str| e.actor.attributes.get(k).map(String::as_str);
        self.filters.iter().all(|(k, vals)| {
            vals.iter().any(|v| match k.as_str() {
                "type" => e.kind == *v,
                "event" => e.action == *v,
                "container" => {
                    e.kind == "container"
                        && (attr("name") == Some(v)
                            || (v.len() >= 3 && e.actor.id.starts_with(v.as_str())))
                }
                "image" => match e.kind.as_str() {
                    "container" => attr("image") == Some(v),
                    _ => {
                        attr("name") == Some(v)
                            || e.actor
                                .id
                                .trim_start_matches("sha256:")
                                .starts_with(v.trim_start_matches("sha256:"))
                    }
                },
                _ => false,
            })
        })
    }
}

/// A time as `--since`/`--until` take it: RFC 3339, Unix seconds (with a fraction), or a
/// duration before `now` ("10m", "1h30m", "45s"); in nanoseconds.
fn parse_time(s: &str, now: i64) -> Option<i64> {
    if let Some(t) = husk_oci::time::parse_rfc3339(s) {
        return Some(t * 1_000_000_000);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Some((secs * 1e9) as i64);
    }
    let mut total = 0f64;
    let mut num = String::new();
    for c in s.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'h' | 'm' | 's' => {
                let n: f64 = num.parse().ok()?;
                num.clear();
                total += n * match c {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                };
            }
            _ => return None,
        }
    }
    (num.is_empty() && !s.is_empty()).then(|| now - (total * 1e9) as i64)
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The engine's event log.
pub fn log_path(root: &Path) -> PathBuf {
    root.join("events.log")
}

impl Event {
    /// A local event about `id` at `nanos` since the epoch, with docker's fields.
    fn new(kind: &str, action: &str, id: &str, attrs: &[(&str, &str)], nanos: i64) -> Event {
        Event {
            kind: kind.into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes: attrs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            scope: "local".into(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        }
    }
}

/// Append one event; a failure to write it is ignored (it must not fail what happened).
pub(crate) fn emit(root: &Path, kind: &str, action: &str, id: &str, attrs: &[(&str, &str)]) {
    let e = Event::new(kind, action, id, attrs, now_nanos());
    let mut line = serde_json::to_vec(&e).expect("serializable");
    line.push(b'\n');
    let _ = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log_path(root))
        .and_then(|mut f| f.write_all(&line));
}

/// A container event with docker's attributes (image, name) and `extra` ones.
pub(crate) fn container(root: &Path, r: &Record, action: &str, extra: &[(&str, &str)]) {
    let mut attrs = vec![("image", r.meta.image.as_str()), ("name", r.name())];
    attrs.extend_from_slice(extra);
    emit(root, "container", action, r.id(), &attrs);
}

/// The exit code of container `id`'s last "die" event, if it has one.
pub(crate) fn last_exit_code(root: &Path, id: &str) -> Option<i64> {
    let text = std::fs::read_to_string(log_path(root)).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .find(|e| e.kind == "container" && e.action == "die" && e.actor.id == id)
        .and_then(|e| e.actor.attributes.get("exitCode")?.parse().ok())
}

/// The store root of the container whose directory is `dir` (STORE/containers/ID).
pub(crate) fn root_of(dir: &Path) -> &Path {
    dir.parent().and_then(Path::parent).unwrap_or(dir)
}

impl Engine {
    /// The events `q` selects, oldest first, each to `out`; with `follow`, then the new
    /// ones as they are written, until `q.until` passes (or forever without it), or `out`
    /// returns false.
    pub fn events(
        &self,
        q: &EventQuery,
        follow: bool,
        out: &mut dyn FnMut(&Event) -> bool,
    ) -> Result<()> {
        let path = log_path(&self.root);
        let mut pos = 0u64;
        loop {
            if let Ok(mut f) = std::fs::File::open(&path) {
                f.seek(std::io::SeekFrom::Start(pos))
                    .ctx("reading", &path)?;
                let mut r = std::io::BufReader::new(f);
                let mut line = String::new();
                // Only whole lines: one still being written is read on the next round.
                while r.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
                    pos += line.len() as u64;
                    if let Ok(e) = serde_json::from_str::<Event>(&line) {
                        if q.matches(&e) && !out(&e) {
                            return Ok(());
                        }
                    }
                    line.clear();
                }
            }
            let past_until = q.until.is_some_and(|u| now_nanos() > u);
            if !follow || past_until {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, action: &str, id: &str, attrs: &[(&str, &str)], t: i64) -> Event {
        Event::new(kind, action, id, attrs, t * 1_000_000_000)
    }

    #[test]
    fn times_and_filters_select_as_docker_does() {
        let now = 1_000_000 * 1_000_000_000;
        assert_eq!(parse_time("1000000", now), Some(now));
        assert_eq!(parse_time("10m", now), Some(now - 600 * 1_000_000_000));
        assert_eq!(parse_time("1h30m", now), Some(now - 5400 * 1_000_000_000));
        assert_eq!(
            parse_time("1970-01-01T00:00:10Z", now),
            Some(10_000_000_000)
        );
        assert_eq!(parse_time("soon", now), None);
        assert_eq!(parse_time("10", now), Some(10_000_000_000));

        let q = |f: &[&str]| {
            let f: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            EventQuery::parse(None, None, &f).unwrap()
        };
        let web = ev(
            "container",
            "start",
            "abcdef12",
            &[("name", "web"), ("image", "bb")],
            5,
        );
        let pull = ev("image", "pull", "bb:latest", &[("name", "bb:latest")], 6);
        assert!(q(&["type=container"]).matches(&web) && !q(&["type=container"]).matches(&pull));
        assert!(q(&["event=start", "event=die"]).matches(&web));
        assert!(!q(&["event=start", "type=image"]).matches(&web));
        assert!(q(&["container=web"]).matches(&web) && q(&["container=abc"]).matches(&web));
        assert!(q(&["image=bb"]).matches(&web) && q(&["image=bb:latest"]).matches(&pull));
        assert!(EventQuery::parse(None, None, &["color=red".into()]).is_err());
        let window = EventQuery::parse(Some("5"), Some("5.5"), &[]).unwrap();
        assert!(window.matches(&web) && !window.matches(&pull));
        assert_eq!(
            web.to_string(),
            "1970-01-01T00:00:05.000000000Z container start abcdef12 (image=bb, name=web)"
        );
    }
}
