//! The Containerfile parser: text in, a list of [`Instruction`]s out, or one error that
//! names the file and the line. Pure (no I/O), so every rule is unit-tested here.
//!
//! What it does, in the order docker's reference gives it: parser directives at the very
//! top (`# escape=`, `# syntax=`, the latter ignored), comments, line continuations (the
//! escape character at the end of a line; comment and empty lines inside a continued
//! instruction are dropped), the keyword (any case), leading `--flag[=value]` words
//! (checked against what each instruction takes), heredocs (`<<EOF`, `<<-EOF`, quoted
//! delimiters) for RUN, COPY and ADD, and exec form (a JSON array) vs shell form.
//!
//! Arguments stay unexpanded: `$VAR` and quotes are resolved per step at build time by
//! [`super::args`], with the variables in scope at that step.

use std::fmt;

/// A parse error: "FILE:LINE: what". The location is typed; `msg` stays text: it is a
/// syntax diagnostic for the person editing the Containerfile (docker's wording, ~20 kinds
/// with the offending token), not something a program decides on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {msg}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub msg: String,
}

/// The parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    /// The escape character (`\` unless `# escape=` says `` ` ``).
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line of its keyword.
    pub line: usize,
    /// `--name[=value]` flags, in order.
    pub flags: Vec<Flag>,
    /// The instruction as written (continuations joined, heredoc bodies left out): the
    /// build cache's key and the image history's `created_by`.
    pub text: String,
    pub heredocs: Vec<Heredoc>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
}

/// A `<<NAME` document: the lines up to the one that is exactly NAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    /// The body, each line ending in "\n" (leading tabs removed for `<<-`).
    pub body: String,
    /// An unquoted delimiter: variables in the body are expanded.
    pub expand: bool,
    /// `<<-`.
    pub strip_tabs: bool,
}

/// A command in exec form (`["a", "b"]`) or shell form (a string for the SHELL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

/// Sources and destination of COPY or ADD, unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyArgs {
    pub srcs: Vec<String>,
    pub dest: String,
    /// Written as a JSON array: no variable expansion applies to quotes inside.
    pub json: bool,
}

/// Healthcheck: `NONE`, or a command with its flags (in [`Instruction::flags`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    None,
    Cmd(Command),
}

/// Key/value words as written (quotes kept, for [`super::args`]).
pub type Pairs = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    From {
        image: String,
        alias: Option<String>,
    },
    Run(Command),
    Copy(CopyArgs),
    Add(CopyArgs),
    Env(Pairs),
    Arg(Vec<(String, Option<String>)>),
    Label(Pairs),
    Workdir(String),
    User(String),
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    /// Unexpanded words: `80`, `80/tcp`, `8000-8010/udp`.
    Expose(String),
    /// Paths, from a JSON array or words.
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Health),
    /// The trigger instruction as written (stored in the image, run by a later FROM).
    Onbuild(String),
    Maintainer(String),
}

impl Kind {
    /// The keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::From { .. } => "FROM",
            Kind::Run(_) => "RUN",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Label(_) => "LABEL",
            Kind::Workdir(_) => "WORKDIR",
            Kind::User(_) => "USER",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Shell(_) => "SHELL",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }
}

impl Instruction {
    /// The last value of `--name` (a flag given twice: the last wins, as docker's).
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or("true"))
    }

    /// Every value of a repeatable flag (`--mount`), in order.
    pub fn flags_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.flags
            .iter()
            .filter(move |f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or(""))
    }

    /// A boolean flag (`--link`, `--link=true`).
    pub fn bool_flag(&self, name: &str) -> bool {
        matches!(self.flag(name), Some("true" | "1" | ""))
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Exec(v) => write!(f, "{}", serde_json::to_string(v).unwrap_or_default()),
            Command::Shell(s) => f.write_str(s),
        }
    }
}

/// The flags each instruction takes; `(name, takes a value)`. A boolean flag may still be
/// written `--link=true`.
fn allowed_flags(keyword: &str) -> &'static [(&'static str, bool)] {
    match keyword {
        "FROM" => &[("platform", true)],
        "RUN" => &[("mount", true), ("network", true), ("security", true)],
        "COPY" => &[
            ("from", true),
            ("chown", true),
            ("chmod", true),
            ("link", false),
            ("parents", false),
            ("exclude", true),
        ],
        "ADD" => &[
            ("chown", true),
            ("chmod", true),
            ("link", false),
            ("checksum", true),
            ("keep-git-dir", false),
            ("exclude", true),
        ],
        "HEALTHCHECK" => &[
            ("interval", true),
            ("timeout", true),
            ("start-period", true),
            ("start-interval", true),
            ("retries", true),
        ],
        _ => &[],
    }
}

const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "LABEL",
    "WORKDIR",
    "USER",
    "CMD",
    "ENTRYPOINT",
    "SHELL",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "ONBUILD",
    "MAINTAINER",
];

/// Parse `text`, the contents of the file called `file` (used in errors).
pub fn parse(text: &str, file: &str) -> Result<Containerfile, ParseError> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let err = |line: usize, msg: String| ParseError {
        file: file.to_string(),
        line,
        msg,
    };
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: only before any comment, blank line or instruction.
    let mut seen = Vec::new();
    while i < lines.len() {
        let Some((k, v)) = directive(lines[i]) else {
            break;
        };
        if seen.contains(&k) {
            return Err(err(
                i + 1,
                format!("only one {k} parser directive can be used"),
            ));
        }
        if k == "escape" {
            escape = match v.as_str() {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(err(
                        i + 1,
                        format!("invalid escape token {v:?}: it must be ` or \\"),
                    ))
                }
            };
        }
        seen.push(k);
        i += 1;
    }
    let mut out = Vec::new();
    while i < lines.len() {
        let first = lines[i].trim_start();
        if first.is_empty() || first.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut joined = String::new();
        loop {
            let l = lines[i];
            i += 1;
            let t = l.trim_start();
            if !joined.is_empty() && (t.is_empty() || t.starts_with('#')) {
                if i >= lines.len() {
                    break;
                }
                continue;
            }
            match continued(l, escape) {
                Some(part) => {
                    joined.push_str(part);
                    if i >= lines.len() {
                        break;
                    }
                }
                None => {
                    joined.push_str(l);
                    break;
                }
            }
        }
        let (inst, next) =
            instruction(joined.trim(), start, &lines, i, escape).map_err(|m| err(start, m))?;
        i = next;
        out.push(inst);
    }
    Ok(Containerfile {
        escape,
        instructions: out,
    })
}

/// Parse one instruction written on a single line (an ONBUILD trigger).
pub fn parse_one(text: &str, file: &str, line: usize) -> Result<Instruction, ParseError> {
    instruction(text.trim(), line, &[], 0, '\\')
        .map(|(i, _)| i)
        .map_err(|msg| ParseError {
            file: file.into(),
            line,
            msg,
        })
}

/// `# key=value` with a known key (escape, syntax), else None.
fn directive(line: &str) -> Option<(&'static str, String)> {
    let rest = line.trim().strip_prefix('#')?;
    let (k, v) = rest.split_once('=')?;
    let k = k.trim().to_ascii_lowercase();
    let key = match k.as_str() {
        "escape" => "escape",
        "syntax" => "syntax",
        // check= and other directives buildkit knows: accepted, ignored.
        "check" => "check",
        _ => return None,
    };
    Some((key, v.trim().to_string()))
}

/// The line without its trailing escape character (and the blanks after it), when it
/// continues on the next line.
fn continued(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end_matches([' ', '\t']);
    t.strip_suffix(escape)
}

/// Split a shell-form string into words, honouring quotes and the escape character;
/// quotes and escapes are kept (they are removed by the expansion at build time).
pub fn split_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            in_word = true;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            None => {}
        }
        cur.push(c);
        in_word = true;
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Leading `--name[=value]` words of `rest`: the flags and what follows them.
fn take_flags(rest: &str) -> (Vec<Flag>, &str) {
    let mut flags = Vec::new();
    let mut s = rest.trim_start();
    while let Some(after) = s.strip_prefix("--") {
        if after.is_empty() || after.starts_with(char::is_whitespace) {
            break;
        }
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let word = &after[..end];
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (word, None),
        };
        flags.push(Flag {
            name: name.to_string(),
            value,
        });
        s = after[end..].trim_start();
    }
    (flags, s)
}

/// `["a", "b"]` as a list of strings; None when it is not such a JSON array.
fn json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn command(rest: &str) -> Command {
    match json_array(rest) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(rest.to_string()),
    }
}

/// Heredoc markers in a RUN/COPY/ADD line: (name, quoted, strip tabs), in order.
fn heredoc_markers(s: &str) -> Vec<(String, bool, bool)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'<'
                && b.get(i + 1) == Some(&b'<')
                && b.get(i + 2) != Some(&b'<')
                && (i == 0 || b[i - 1] != b'<') =>
            {
                let mut j = i + 2;
                let strip = b.get(j) == Some(&b'-');
                if strip {
                    j += 1;
                }
                let q = match b.get(j) {
                    Some(&q @ (b'\'' | b'"')) => {
                        j += 1;
                        Some(q)
                    }
                    _ => None,
                };
                let st = j;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j > st {
                    let name = s[st..j].to_string();
                    if let Some(q) = q {
                        if b.get(j) == Some(&q) {
                            j += 1;
                        }
                    }
                    out.push((name, q.is_some(), strip));
                    i = j;
                    continue;
                }
            }
            None => {}
        }
        i += 1;
    }
    out
}

/// Build one instruction from its joined text; heredoc bodies are read from `lines[next..]`.
/// Returns the instruction and the index of the first line after it.
fn instruction(
    text: &str,
    line: usize,
    lines: &[&str],
    mut next: usize,
    escape: char,
) -> Result<(Instruction, usize), String> {
    let (kw, rest) = match text.find(char::is_whitespace) {
        Some(p) => (&text[..p], text[p..].trim_start()),
        None => (text, ""),
    };
    let keyword = kw.to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(format!("unknown instruction: {kw}"));
    }
    let (flags, args) = if keyword == "ONBUILD" {
        (Vec::new(), rest)
    } else {
        take_flags(rest)
    };
    let allowed = allowed_flags(&keyword);
    for f in &flags {
        match allowed.iter().find(|(n, _)| *n == f.name) {
            None => return Err(format!("{keyword}: unknown flag: --{}", f.name)),
            Some((_, true)) if f.value.as_deref().unwrap_or("").is_empty() => {
                return Err(format!("{keyword}: --{} needs a value", f.name))
            }
            Some((_, false)) => {
                if let Some(v) = &f.value {
                    if !matches!(v.as_str(), "true" | "false" | "1" | "0") {
                        return Err(format!(
                            "{keyword}: --{}={v}: expected true or false",
                            f.name
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    let mut heredocs = Vec::new();
    if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") && json_array(args).is_none() {
        for (name, quoted, strip) in heredoc_markers(args) {
            let mut body = String::new();
            loop {
                let Some(l) = lines.get(next) else {
                    return Err(format!("heredoc <<{name}: no line {name:?} ends it"));
                };
                next += 1;
                let l = if strip { l.trim_start_matches('\t') } else { l };
                if l == name {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            heredocs.push(Heredoc {
                name,
                body,
                expand: !quoted,
                strip_tabs: strip,
            });
        }
    }
    let need = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("{keyword} {what}"))
        }
    };
    let kind = match keyword.as_str() {
        "FROM" => {
            let w: Vec<&str> = args.split_whitespace().collect();
            match w.as_slice() {
                [image] => Kind::From {
                    image: image.to_string(),
                    alias: None,
                },
                [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    if !valid_stage_name(name) {
                        return Err(format!("FROM: invalid stage name {name:?}"));
                    }
                    Kind::From {
                        image: image.to_string(),
                        alias: Some(name.to_ascii_lowercase()),
                    }
                }
                _ => return Err("FROM takes IMAGE [AS NAME]".into()),
            }
        }
        "RUN" => {
            need(!args.is_empty(), "needs a command")?;
            Kind::Run(command(args))
        }
        "CMD" => Kind::Cmd(command(args)),
        "ENTRYPOINT" => Kind::Entrypoint(command(args)),
        "SHELL" => match json_array(args) {
            Some(v) if !v.is_empty() => Kind::Shell(v),
            _ => return Err("SHELL takes a JSON array, e.g. [\"/bin/sh\", \"-c\"]".into()),
        },
        "COPY" | "ADD" => {
            let (words, json) = match json_array(args) {
                Some(v) => (v, true),
                None => (split_words(args, escape), false),
            };
            need(
                words.len() >= 2,
                "takes at least one source and a destination",
            )?;
            let mut srcs = words;
            let dest = srcs.pop().unwrap_or_default();
            let a = CopyArgs { srcs, dest, json };
            if keyword == "COPY" {
                Kind::Copy(a)
            } else {
                Kind::Add(a)
            }
        }
        "ENV" | "LABEL" => {
            let pairs = pairs(args, escape, &keyword)?;
            if keyword == "ENV" {
                Kind::Env(pairs)
            } else {
                Kind::Label(pairs)
            }
        }
        "ARG" => {
            let words = split_words(args, escape);
            need(!words.is_empty(), "needs a name")?;
            let mut v = Vec::new();
            for w in words {
                let (k, d) = match w.split_once('=') {
                    Some((k, d)) => (k.to_string(), Some(d.to_string())),
                    None => (w, None),
                };
                if !valid_var_name(&k) {
                    return Err(format!("ARG: invalid name {k:?}"));
                }
                v.push((k, d));
            }
            Kind::Arg(v)
        }
        "WORKDIR" => {
            need(!args.is_empty(), "needs a path")?;
            Kind::Workdir(args.to_string())
        }
        "USER" => {
            need(!args.is_empty(), "needs a user")?;
            Kind::User(args.to_string())
        }
        "EXPOSE" => {
            need(!args.is_empty(), "needs a port")?;
            Kind::Expose(args.to_string())
        }
        "VOLUME" => {
            let v = match json_array(args) {
                Some(v) => v,
                None => split_words(args, escape),
            };
            need(!v.is_empty(), "needs a path")?;
            Kind::Volume(v)
        }
        "STOPSIGNAL" => {
            need(!args.is_empty(), "needs a signal")?;
            Kind::StopSignal(args.to_string())
        }
        "MAINTAINER" => Kind::Maintainer(args.to_string()),
        "HEALTHCHECK" => {
            let (first, rest) = match args.find(char::is_whitespace) {
                Some(p) => (&args[..p], args[p..].trim_start()),
                None => (args, ""),
            };
            if first.eq_ignore_ascii_case("NONE") {
                if !rest.is_empty() || !flags.is_empty() {
                    return Err("HEALTHCHECK NONE takes no arguments".into());
                }
                Kind::Healthcheck(Health::None)
            } else if first.eq_ignore_ascii_case("CMD") && !rest.is_empty() {
                Kind::Healthcheck(Health::Cmd(command(rest)))
            } else {
                return Err("HEALTHCHECK takes NONE or [OPTIONS] CMD command".into());
            }
        }
        "ONBUILD" => {
            let inner = args.split_whitespace().next().unwrap_or("");
            match inner.to_ascii_uppercase().as_str() {
                "" => return Err("ONBUILD needs an instruction".into()),
                "ONBUILD" => {
                    return Err("chaining ONBUILD via ONBUILD ONBUILD is not allowed".into())
                }
                "FROM" | "MAINTAINER" => {
                    return Err(format!("{inner} is not allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            // Checked now, so that a typo fails this build and not the one using the image.
            instruction(args, line, &[], 0, escape)?;
            Kind::Onbuild(args.to_string())
        }
        _ => unreachable!("KEYWORDS and this match agree"),
    };
    Ok((
        Instruction {
            line,
            flags,
            text: text.to_string(),
            heredocs,
            kind,
        },
        next,
    ))
}

/// ENV/LABEL: `K=V K2="v 2"`, or the old `K value with spaces` (one pair).
fn pairs(args: &str, escape: char, keyword: &str) -> Result<Pairs, String> {
    let words = split_words(args, escape);
    if words.is_empty() {
        return Err(format!("{keyword} needs at least one KEY=VALUE"));
    }
    if !words[0].contains('=') {
        // Old form: the name, then the rest of the line as the value.
        if keyword == "ENV" && words.len() < 2 {
            return Err(format!("ENV {}: needs a value", words[0]));
        }
        let name = words[0].clone();
        let value = args.trim_start()[name.len()..].trim_start().to_string();
        if keyword == "ENV" && !valid_var_name(&name) {
            return Err(format!("ENV: invalid name {name:?}"));
        }
        return Ok(vec![(name, value)]);
    }
    let mut out = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            _ => return Err(format!("{keyword}: {w:?} is not KEY=VALUE")),
        }
    }
    Ok(out)
}

fn valid_var_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// docker's stage names: a letter, then letters, digits, `_`, `-`, `.`.
fn valid_stage_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic())
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<Instruction> {
        parse(s, "Containerfile").unwrap().instructions
    }

    fn kinds(s: &str) -> Vec<Kind> {
        p(s).into_iter().map(|i| i.kind).collect()
    }

    fn e(s: &str) -> String {
        parse(s, "Containerfile").unwrap_err().to_string()
    }

    #[test]
    fn basic_instructions_and_case() {
        let k = kinds("from busybox AS Build\nrun echo hi\nWorkDir /app\n");
        assert_eq!(
            k,
            vec![
                Kind::From {
                    image: "busybox".into(),
                    alias: Some("build".into())
                },
                Kind::Run(Command::Shell("echo hi".into())),
                Kind::Workdir("/app".into()),
            ]
        );
    }

    #[test]
    fn continuations_comments_and_lines() {
        let i = p("# c\n\nFROM a\nRUN echo a \\\n  # inner comment\n\n  b\nUSER x\n");
        assert_eq!(i[1].line, 4);
        assert_eq!(i[1].kind, Kind::Run(Command::Shell("echo a   b".into())));
        assert_eq!(i[2].line, 8);
        // A continuation at the end of the file just ends.
        assert_eq!(
            kinds("FROM a\nRUN x \\")[1],
            Kind::Run(Command::Shell("x".into()))
        );
    }

    #[test]
    fn escape_directive() {
        let f = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  d\n", "F").unwrap();
        assert_eq!(f.escape, '`');
        assert_eq!(
            f.instructions[1].kind,
            Kind::Run(Command::Shell("dir c:\\   d".into()))
        );
        // Only at the top: after a comment it is a comment.
        let f = parse("# hello\n# escape=`\nFROM a\n", "F").unwrap();
        assert_eq!(f.escape, '\\');
        assert!(e("# escape=x\nFROM a").contains("Containerfile:1: invalid escape"));
        assert!(e("# escape=`\n# escape=\\\nFROM a").contains(":2: only one escape"));
        // syntax= is accepted and ignored.
        assert_eq!(kinds("# syntax=docker/dockerfile:1\nFROM a").len(), 1);
    }

    #[test]
    fn exec_and_shell_forms() {
        let k = kinds("FROM a\nCMD [\"sh\", \"-c\", \"x\"]\nENTRYPOINT echo [a]\nRUN [not json\n");
        assert_eq!(
            k[1],
            Kind::Cmd(Command::Exec(vec!["sh".into(), "-c".into(), "x".into()]))
        );
        assert_eq!(k[2], Kind::Entrypoint(Command::Shell("echo [a]".into())));
        assert_eq!(k[3], Kind::Run(Command::Shell("[not json".into())));
        assert!(e("FROM a\nSHELL sh -c").contains(":2: SHELL takes a JSON array"));
        assert_eq!(
            kinds("FROM a\nSHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]")[1],
            Kind::Shell(vec![
                "/bin/ash".into(),
                "-eo".into(),
                "pipefail".into(),
                "-c".into()
            ])
        );
    }

    #[test]
    fn flags() {
        let i = p("FROM --platform=linux/amd64 a\nCOPY --from=build --chown=1:2 --chmod=640 --link a b/\nRUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none echo\n");
        assert_eq!(i[0].flag("platform"), Some("linux/amd64"));
        assert_eq!(i[1].flag("from"), Some("build"));
        assert_eq!(i[1].flag("chown"), Some("1:2"));
        assert!(i[1].bool_flag("link"));
        assert_eq!(
            i[1].kind,
            Kind::Copy(CopyArgs {
                srcs: vec!["a".into()],
                dest: "b/".into(),
                json: false
            })
        );
        assert_eq!(
            i[2].flags_all("mount").collect::<Vec<_>>(),
            vec!["type=cache,target=/c", "type=tmpfs,target=/t"]
        );
        assert_eq!(i[2].flag("network"), Some("none"));
        assert_eq!(i[2].kind, Kind::Run(Command::Shell("echo".into())));
        assert_eq!(
            e("FROM a\n\nCOPY --frm=x a b"),
            "Containerfile:3: COPY: unknown flag: --frm"
        );
        assert_eq!(
            e("FROM a\nCOPY --from a b"),
            "Containerfile:2: COPY: --from needs a value"
        );
        assert!(e("FROM a\nCOPY --link=maybe a b").contains("expected true or false"));
        assert!(e("FROM a\nWORKDIR --x /a").contains("WORKDIR: unknown flag: --x"));
    }

    #[test]
    fn unknown_instruction_names_line() {
        assert_eq!(
            e("FROM a\nRUN x\nCOPPY a b\n"),
            "Containerfile:3: unknown instruction: COPPY"
        );
    }

    #[test]
    fn heredocs() {
        let i = p("FROM a\nRUN <<EOF\necho one\n  echo two\nEOF\nCOPY <<-\"END\" /x\n\thello $X\n\tEND\nUSER u\n");
        assert_eq!(i[1].heredocs.len(), 1);
        assert_eq!(i[1].heredocs[0].body, "echo one\n  echo two\n");
        assert!(i[1].heredocs[0].expand);
        assert_eq!(i[2].heredocs[0].name, "END");
        assert_eq!(i[2].heredocs[0].body, "hello $X\n");
        assert!(!i[2].heredocs[0].expand);
        assert!(i[2].heredocs[0].strip_tabs);
        assert_eq!(i[3].kind, Kind::User("u".into()));
        assert_eq!(i[3].line, 9);
        // Two documents on one line, read in order.
        let i = p("FROM a\nRUN cat <<A <<B\na\nA\nb\nB\n");
        assert_eq!(i[1].heredocs[0].body, "a\n");
        assert_eq!(i[1].heredocs[1].body, "b\n");
        // `<<<` is a here-string, and quoted `<<` is text.
        assert!(p("FROM a\nRUN cat <<<x\n")[1].heredocs.is_empty());
        assert!(p("FROM a\nRUN echo '<<X'\n")[1].heredocs.is_empty());
        assert!(e("FROM a\nRUN <<EOF\nx\n").contains(":2: heredoc <<EOF"));
    }

    #[test]
    fn env_label_arg_forms() {
        let k = kinds("FROM a\nENV A=1 B=\"two words\" C=x\\ y\nENV OLD some value\nLABEL \"my key\"=v x=1\nARG V\nARG W=3 Z");
        assert_eq!(
            k[1],
            Kind::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"two words\"".into()),
                ("C".into(), "x\\ y".into())
            ])
        );
        assert_eq!(k[2], Kind::Env(vec![("OLD".into(), "some value".into())]));
        assert_eq!(
            k[3],
            Kind::Label(vec![
                ("\"my key\"".into(), "v".into()),
                ("x".into(), "1".into())
            ])
        );
        assert_eq!(k[4], Kind::Arg(vec![("V".into(), None)]));
        assert_eq!(
            k[5],
            Kind::Arg(vec![("W".into(), Some("3".into())), ("Z".into(), None)])
        );
        assert!(e("FROM a\nENV A=1 B").contains(":2: ENV: \"B\" is not KEY=VALUE"));
        assert!(e("FROM a\nENV X").contains("needs a value"));
        assert!(e("FROM a\nARG 1x").contains("invalid name"));
    }

    #[test]
    fn from_forms() {
        assert!(e("FROM a b").contains("FROM takes IMAGE [AS NAME]"));
        assert!(e("FROM a AS 1x").contains("invalid stage name"));
        assert!(e("FROM").contains("FROM takes"));
    }

    #[test]
    fn copy_json_and_volume() {
        let k = kinds(
            "FROM a\nCOPY [\"a b\", \"c\", \"/d/\"]\nVOLUME [\"/v\", \"/w\"]\nVOLUME /x /y\n",
        );
        assert_eq!(
            k[1],
            Kind::Copy(CopyArgs {
                srcs: vec!["a b".into(), "c".into()],
                dest: "/d/".into(),
                json: true
            })
        );
        assert_eq!(k[2], Kind::Volume(vec!["/v".into(), "/w".into()]));
        assert_eq!(k[3], Kind::Volume(vec!["/x".into(), "/y".into()]));
        assert!(e("FROM a\nCOPY onlyone").contains("COPY takes at least one source"));
    }

    #[test]
    fn healthcheck_and_onbuild() {
        let i = p("FROM a\nHEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost\nHEALTHCHECK NONE\nONBUILD RUN echo hi\n");
        assert_eq!(i[1].flag("interval"), Some("5s"));
        assert_eq!(
            i[1].kind,
            Kind::Healthcheck(Health::Cmd(Command::Shell("wget -q localhost".into())))
        );
        assert_eq!(i[2].kind, Kind::Healthcheck(Health::None));
        assert_eq!(i[3].kind, Kind::Onbuild("RUN echo hi".into()));
        assert!(e("FROM a\nONBUILD ONBUILD RUN x").contains("chaining ONBUILD"));
        assert!(e("FROM a\nONBUILD FROM x").contains("not allowed"));
        assert!(e("FROM a\nONBUILD COPPY x").contains(":2: unknown instruction: COPPY"));
        assert!(e("FROM a\nHEALTHCHECK wget").contains("HEALTHCHECK takes"));
    }

    #[test]
    fn split_words_keeps_quotes() {
        assert_eq!(
            split_words(r#"a "b c" 'd e' f\ g"#, '\\'),
            vec!["a", "\"b c\"", "'d e'", "f\\ g"]
        );
    }

    #[test]
    fn text_is_the_joined_line() {
        let i = p("FROM a\nRUN echo \\\n x\n");
        assert_eq!(i[1].text, "RUN echo  x");
    }
}
