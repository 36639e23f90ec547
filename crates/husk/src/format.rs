//! docker's `--format`: a Go template per row (`{{.ID}}`, `{{json .}}`), `table TEMPLATE`
//! (a header row, columns aligned as docker's tabwriter does), or `json` (one object per
//! line; inspect's array). The templates run on gotmpl; the rows are husk-engine's views
//! (husk_engine::views), serialized with docker's field names.

use gotmpl::{MissingKey, Template, TemplateError, Value};
use serde::Serialize;
use std::io::Write;

/// What a `--format` asked for.
pub enum Format {
    /// `table TEMPLATE`: a header row, then a row per item, aligned in columns.
    Table(String),
    /// `json`: one JSON object per line.
    Json,
    /// Any other template: its output per item, each followed by a newline.
    Template(String),
}

/// A `--format` that cannot be used: its parse or execution error, or a write error.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("--format: {0}")]
    Template(#[from] TemplateError),
    #[error("writing the output: {0}")]
    Write(#[from] std::io::Error),
}

impl Format {
    /// `--format`'s value, or `default` (a `table …` template) when not given or `table`.
    pub fn parse(given: Option<&str>, default: &str) -> Format {
        match given.map(str::trim) {
            None | Some("" | "table") => Format::parse(Some(default), default),
            Some("json") => Format::Json,
            Some(t) => match t.strip_prefix("table") {
                Some(rest) if rest.starts_with(char::is_whitespace) => {
                    Format::Table(rest.trim_start().to_string())
                }
                _ => Format::Template(t.to_string()),
            },
        }
    }
}

/// The template, with docker's functions (json, join, lower, upper, split, title,
/// truncate, pad) beside Go's own.
fn compile(src: &str) -> Result<Template, TemplateError> {
    // A shell's '…\t…' reaches us as backslash-t: docker reads it as a tab, and so do we.
    let src = src.replace("\\t", "\t").replace("\\n", "\n");
    let text = |a: &[Value], i: usize| a.get(i).map(|v| v.to_string()).unwrap_or_default();
    let string = |s: String| Ok(Value::String(s.into()));
    Template::new("format")
        .missing_key(MissingKey::Error)
        .func("json", |a| {
            let v = a.first().map(to_json).unwrap_or(serde_json::Value::Null);
            Ok(Value::String(v.to_string().into()))
        })
        .func("join", move |a| {
            let items: Vec<String> = match a.first() {
                Some(Value::List(l)) => l.iter().map(|v| v.to_string()).collect(),
                _ => vec![],
            };
            string(items.join(&text(a, 1)))
        })
        .func("lower", move |a| string(text(a, 0).to_lowercase()))
        .func("upper", move |a| string(text(a, 0).to_uppercase()))
        .func("title", move |a| {
            let t = text(a, 0);
            let mut c = t.chars();
            string(
                c.next()
                    .map_or(String::new(), |f| f.to_uppercase().chain(c).collect()),
            )
        })
        .func("split", move |a| {
            let (s, sep) = (text(a, 0), text(a, 1));
            let parts: Vec<Value> = s.split(&sep).map(|p| Value::String(p.into())).collect();
            Ok(Value::List(parts.into()))
        })
        .func("truncate", move |a| {
            let n = a.get(1).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
            string(text(a, 0).chars().take(n).collect())
        })
        .func("pad", move |a| {
            let l = a.get(1).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
            let r = a.get(2).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
            string(format!("{}{}{}", " ".repeat(l), text(a, 0), " ".repeat(r)))
        })
        .parse(&src)
}

/// A template value back as JSON (for `{{json .Field}}`); maps come out key-sorted.
fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Uint(u) => J::from(*u),
        Value::Float(f) => J::from(*f),
        Value::String(s) => J::String(s.to_string()),
        Value::List(l) => J::Array(l.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
        other => J::String(other.to_string()),
    }
}

/// Print `rows` as `format` asks; `headers` names each field's column in a table (a field
/// not listed is headed by its name in capitals).
pub fn print_rows<T: Serialize>(
    rows: &[T],
    format: &Format,
    headers: &[(&str, &str)],
) -> Result<(), FormatError> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            for r in rows {
                writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default())?;
            }
        }
        Format::Template(src) => {
            let t = compile(src)?;
            for r in rows {
                writeln!(out, "{}", t.execute_to_string(&gotmpl::to_value(r)?)?)?;
            }
        }
        Format::Table(src) => {
            let t = compile(src)?;
            let mut lines = vec![t.execute_to_string(&header_row(rows, headers))?];
            for r in rows {
                lines.push(t.execute_to_string(&gotmpl::to_value(r)?)?);
            }
            out.write_all(align(&lines).as_bytes())?;
        }
    }
    Ok(out.flush()?)
}

/// The values the header row is rendered with: each field's column name.
fn header_row<T: Serialize>(rows: &[T], headers: &[(&str, &str)]) -> Value {
    let mut m: std::collections::BTreeMap<std::sync::Arc<str>, Value> = headers
        .iter()
        .map(|(k, h)| (std::sync::Arc::from(*k), Value::String((*h).into())))
        .collect();
    if let Some(Ok(Value::Map(first))) = rows.first().map(gotmpl::to_value) {
        for k in first.keys() {
            m.entry(k.clone())
                .or_insert_with(|| Value::String(k.to_uppercase().into()));
        }
    }
    Value::Map(m.into())
}

/// Columns split on tabs, each as wide as its widest cell plus 3 spaces and at least 10
/// (docker's tabwriter settings); the last cell of a line is not padded.
fn align(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines
        .iter()
        .flat_map(|l| l.split('\n'))
        .map(|l| l.split('\t').collect())
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            let w = (c.chars().count() + 3).max(10);
            if widths.len() <= i {
                widths.push(w);
            } else {
                widths[i] = widths[i].max(w);
            }
        }
    }
    let mut s = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            s.push_str(c);
            if i + 1 < r.len() {
                s.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        s.push('\n');
    }
    s
}

/// `inspect`'s output: the JSON array (indented as docker does), or the template per item.
pub fn print_items<T: Serialize>(items: &[T], format: Option<&str>) -> Result<(), FormatError> {
    let mut out = std::io::stdout().lock();
    match format.map(str::trim) {
        None | Some("" | "json") => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            items.serialize(&mut ser).map_err(std::io::Error::from)?;
            out.write_all(&buf)?;
            writeln!(out)?;
        }
        Some(src) => {
            let t = compile(src)?;
            for i in items {
                writeln!(out, "{}", t.execute_to_string(&gotmpl::to_value(i)?)?)?;
            }
        }
    }
    Ok(out.flush()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Row {
        #[serde(rename = "ID")]
        id: &'static str,
        names: &'static str,
        state: State,
        list: Vec<&'static str>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct State {
        status: &'static str,
    }

    fn render(src: &str) -> String {
        let r = Row {
            id: "abc",
            names: "web",
            state: State { status: "running" },
            list: vec!["a", "b"],
        };
        compile(src)
            .unwrap()
            .execute_to_string(&gotmpl::to_value(&r).unwrap())
            .unwrap()
    }

    #[test]
    fn docker_functions_and_fields() {
        assert_eq!(render("{{.ID}} {{.State.Status}}"), "abc running");
        assert_eq!(render("{{json .State}}"), r#"{"Status":"running"}"#);
        assert_eq!(render("{{join .List \",\"}}"), "a,b");
        assert_eq!(render("{{upper .Names}} {{title .Names}}"), "WEB Web");
        assert_eq!(
            render("{{truncate .Names 2}}|{{pad .ID 1 1}}|"),
            "we| abc |"
        );
        assert!(compile("{{.Nope}}")
            .unwrap()
            .execute_to_string(&gotmpl::to_value(&State { status: "x" }).unwrap())
            .is_err());
    }

    #[test]
    fn table_columns_as_docker_aligns_them() {
        let lines = vec!["CONTAINER ID\tNAMES".to_string(), "abc\tweb".to_string()];
        assert_eq!(align(&lines), "CONTAINER ID   NAMES\nabc            web\n");
        assert_eq!(align(&["A\tB".into()]), "A         B\n");
        assert!(
            matches!(Format::parse(Some("table {{.ID}}"), ""), Format::Table(t) if t == "{{.ID}}")
        );
        assert!(matches!(Format::parse(None, "table {{.X}}"), Format::Table(t) if t == "{{.X}}"));
        assert!(matches!(Format::parse(Some("json"), ""), Format::Json));
        assert!(matches!(
            Format::parse(Some("{{.ID}}"), ""),
            Format::Template(_)
        ));
    }
}
