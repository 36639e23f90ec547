//! `husk history IMAGE`: the image config's history, newest first, as `docker history`
//! shows it — each entry that made a layer with that layer's unpacked size, the others
//! (`empty_layer`: ENV, CMD…) with 0B; only the top row carries the image id, the rows
//! below say `<missing>` as docker's do for pulled images. A command is shown on one line
//! (a heredoc RUN's line breaks escaped).

use crate::engine::Engine;
use crate::error::{During, Result};
use crate::images::layer_size;
use crate::views::{human_duration, human_size, now};
use serde::Serialize;

/// One row of `docker history` (its `--format` field names).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryRow {
    /// The image id (`sha256:HEX`, or its 12 hex digits) on the top row, else `<missing>`.
    #[serde(rename = "ID")]
    pub id: String,
    /// RFC 3339, as the config says.
    pub created_at: String,
    /// "3 hours ago".
    pub created_since: String,
    pub created_by: String,
    /// "4.26MB", or bytes when not `human`.
    pub size: String,
    pub comment: String,
}

/// The entry of the image config's `history` (OCI and Docker use the same names).
#[derive(Debug, Default, serde::Deserialize)]
struct Entry {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    empty_layer: bool,
}

impl Engine {
    /// The image's history, newest first. `no_trunc`: the full id and command; `human`:
    /// sizes and times in words (docker's -H, the default).
    pub fn history(&self, image: &str, no_trunc: bool, human: bool) -> Result<Vec<HistoryRow>> {
        self.history_inner(image, no_trunc, human)
            .during("history", image)
    }

    fn history_inner(&self, image: &str, no_trunc: bool, human: bool) -> Result<Vec<HistoryRow>> {
        let store = self.store()?;
        let rec = store.resolve(image, &self.default_registry)?;
        let cfg: serde_json::Value = serde_json::from_slice(&store.read_blob(&rec.config_digest)?)
            .map_err(|source| crate::error::ImageError::Parse {
                what: "config",
                source,
            })?;
        let mut entries: Vec<Entry> = cfg["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|e| serde_json::from_value(e.clone()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        // No history at all: a row per layer, as docker shows.
        if entries.is_empty() {
            entries = rec.layers.iter().map(|_| Entry::default()).collect();
        }
        let mut layers = rec.layers.iter();
        let now = now();
        let mut rows: Vec<HistoryRow> = entries
            .into_iter()
            .map(|e| {
                let size = match e.empty_layer {
                    true => 0,
                    false => layers.next().map_or(0, |l| layer_size(&store, l)),
                };
                let created = e.created.unwrap_or_default();
                let created_by = one_line(&e.created_by.unwrap_or_default());
                HistoryRow {
                    id: "<missing>".into(),
                    created_since: match husk_oci::time::parse_rfc3339(&created) {
                        Some(t) if human => format!("{} ago", human_duration(now - t)),
                        Some(_) => created.clone(),
                        None => "N/A".into(),
                    },
                    created_at: created,
                    created_by: match no_trunc {
                        true => created_by,
                        false => ellipsis(&created_by, 45),
                    },
                    size: match human {
                        true => human_size(size),
                        false => size.to_string(),
                    },
                    comment: e.comment.unwrap_or_default(),
                }
            })
            .collect();
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top.id = match no_trunc {
                true => rec.config_digest.to_string(),
                false => rec.config_digest.hex()[..12].to_string(),
            };
        }
        Ok(rows)
    }
}

/// A command on one line, so a table row stays one row: tabs become spaces (as docker's
/// CREATED BY), line breaks — a heredoc RUN's body — are shown escaped, `\n`.
fn one_line(s: &str) -> String {
    s.replace("\r\n", "\\n")
        .replace(['\n', '\r'], "\\n")
        .replace('\t', " ")
}

/// `s` cut to `max` characters, the last one `…`, as docker's CREATED BY column.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_commands_end_in_an_ellipsis() {
        assert_eq!(super::ellipsis("short", 45), "short");
        let long = "/bin/sh -c #(nop) ADD file:0123456789abcdef0123 in / ";
        let cut = super::ellipsis(long, 45);
        assert_eq!(cut.chars().count(), 45);
        assert_eq!(cut, "/bin/sh -c #(nop) ADD file:0123456789abcdef0…");
    }

    #[test]
    fn commands_stay_on_one_line() {
        assert_eq!(
            super::one_line("RUN <<EOF\r\na\tb\nc\rEOF\n"),
            "RUN <<EOF\\na b\\nc\\nEOF\\n"
        );
    }
}
