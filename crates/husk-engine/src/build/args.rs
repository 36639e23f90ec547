//! Variables in a Containerfile: the expansion of `$VAR`, `${VAR}`, `${VAR:-x}`,
//! `${VAR-x}`, `${VAR:+x}`, `${VAR+x}`, `${VAR:?msg}`, `${VAR?msg}` with quote removal
//! (single quotes literal, double quotes expanding, the escape character quoting one
//! character), and the scope rules of ARG and ENV:
//!
//! - ARGs before the first FROM ("meta" args) are seen only by FROM lines; a stage sees
//!   one only after declaring it again (`ARG NAME`, which takes the meta value);
//! - a declared ARG takes `--build-arg`'s value over its default, is seen by later steps of
//!   its stage (and by RUN's environment), and is not written into the image;
//! - ENV wins over an ARG of the same name;
//! - the predefined proxy args may be given with `--build-arg` without a declaration
//!   (RUN sees them); the platform args (TARGETPLATFORM, BUILDARCH…) are meta args.

use std::collections::BTreeMap;

/// An expansion that cannot be done (`${X:?msg}` on an unset X, an unclosed `${`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpandError(pub String);

/// Expand one word: variables replaced, quotes and escapes removed.
pub fn expand_word(
    s: &str,
    escape: char,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut v = Lexer::new(s, escape, get).run(false)?;
    Ok(v.pop().unwrap_or_default())
}

/// Expand a string of words: split on unquoted blanks, then as [`expand_word`].
pub fn expand_words(
    s: &str,
    escape: char,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ExpandError> {
    Lexer::new(s, escape, get).run(true)
}

/// Only the variables of `s`, no quote removal (a heredoc body, which is text, not words).
pub fn expand_text(
    s: &str,
    escape: char,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut lx = Lexer::new(s, escape, get);
    lx.raw = true;
    let mut v = lx.run(false)?;
    Ok(v.pop().unwrap_or_default())
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    get: &'a dyn Fn(&str) -> Option<String>,
    /// Keep quotes and escapes (text, not words).
    raw: bool,
}

impl<'a> Lexer<'a> {
    fn new(s: &str, escape: char, get: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Lexer {
            chars: s.chars().collect(),
            pos: 0,
            escape,
            get,
            raw: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn run(&mut self, split: bool) -> Result<Vec<String>, ExpandError> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        while let Some(c) = self.peek() {
            self.pos += 1;
            if self.raw {
                if c == self.escape && self.peek() == Some('$') {
                    self.pos += 1;
                    cur.push('$');
                } else if c == '$' {
                    cur.push_str(&self.variable()?);
                } else {
                    cur.push(c);
                }
                continue;
            }
            if split && c.is_whitespace() {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            in_word = true;
            if c == self.escape {
                if let Some(n) = self.peek() {
                    self.pos += 1;
                    cur.push(n);
                } else {
                    cur.push(c);
                }
            } else if c == '\'' {
                loop {
                    match self.peek() {
                        None => return Err(ExpandError("unterminated single quote".into())),
                        Some('\'') => {
                            self.pos += 1;
                            break;
                        }
                        Some(x) => {
                            self.pos += 1;
                            cur.push(x);
                        }
                    }
                }
            } else if c == '"' {
                loop {
                    match self.peek() {
                        None => return Err(ExpandError("unterminated double quote".into())),
                        Some('"') => {
                            self.pos += 1;
                            break;
                        }
                        Some('$') => {
                            self.pos += 1;
                            cur.push_str(&self.variable()?);
                        }
                        Some(x) if x == self.escape => {
                            self.pos += 1;
                            match self.peek() {
                                Some(n) if n == '"' || n == '$' || n == self.escape => {
                                    self.pos += 1;
                                    cur.push(n);
                                }
                                _ => cur.push(x),
                            }
                        }
                        Some(x) => {
                            self.pos += 1;
                            cur.push(x);
                        }
                    }
                }
            } else if c == '$' {
                cur.push_str(&self.variable()?);
            } else {
                cur.push(c);
            }
        }
        if in_word || (!split && !cur.is_empty()) || (!split && words.is_empty()) {
            words.push(cur);
        }
        Ok(words)
    }

    /// After a `$`: the variable's value (a lone `$` stays itself).
    fn variable(&mut self) -> Result<String, ExpandError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok((self.get)(&name).unwrap_or_default())
            }
            // $1, $@ and friends: nothing here sets them.
            Some(c) if c.is_ascii_digit() || matches!(c, '@' | '*' | '#' | '?' | '$' | '!') => {
                self.pos += 1;
                Ok(String::new())
            }
            _ => Ok("$".into()),
        }
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    /// `${…}` after the `{`.
    fn braced(&mut self) -> Result<String, ExpandError> {
        let name = self.name();
        if name.is_empty() {
            return Err(ExpandError("bad substitution: ${ without a name".into()));
        }
        let value = (self.get)(&name);
        match self.peek() {
            Some('}') => {
                self.pos += 1;
                return Ok(value.unwrap_or_default());
            }
            None => return Err(ExpandError(format!("missing '}}' after ${{{name}"))),
            _ => {}
        }
        let colon = self.peek() == Some(':');
        if colon {
            self.pos += 1;
        }
        let op = self
            .peek()
            .ok_or_else(|| ExpandError(format!("missing '}}' after ${{{name}")))?;
        if !matches!(op, '-' | '+' | '?') {
            return Err(ExpandError(format!(
                "unsupported modifier {op:?} in ${{{name}}}"
            )));
        }
        self.pos += 1;
        // The word up to the matching `}` (nested ${…} allowed), itself expanded.
        let start = self.pos;
        let mut depth = 1;
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == self.escape {
                self.pos += 1;
            } else if c == '{' {
                depth += 1;
            } else if c == '}' {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
        }
        if depth != 0 {
            return Err(ExpandError(format!("missing '}}' after ${{{name}")));
        }
        let word: String = self.chars[start..self.pos - 1].iter().collect();
        let set = match &value {
            Some(v) => !colon || !v.is_empty(),
            None => false,
        };
        let sub = |w: &str| {
            let mut lx = Lexer::new(w, self.escape, self.get);
            lx.raw = self.raw;
            lx.run(false).map(|mut v| v.pop().unwrap_or_default())
        };
        match op {
            '-' if set => Ok(value.unwrap_or_default()),
            '-' => sub(&word),
            '+' if set => sub(&word),
            '+' => Ok(String::new()),
            _ if set => Ok(value.unwrap_or_default()),
            _ => {
                let msg = sub(&word)?;
                Err(ExpandError(if msg.is_empty() {
                    format!("{name}: parameter null or not set")
                } else {
                    format!("{name}: {msg}")
                }))
            }
        }
    }
}

/// The args docker predefines: usable with `--build-arg` without an `ARG`, passed to RUN,
/// never kept in the image or its history.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The automatic platform args of a build for `platform` ("os/arch[/variant]") on this
/// host: TARGET* and BUILD* (PLATFORM, OS, ARCH, VARIANT).
pub fn platform_args(target: &str, build: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        let mut parts = p.splitn(3, '/');
        let os = parts.next().unwrap_or("linux");
        let arch = parts.next().unwrap_or("");
        let variant = parts.next().unwrap_or("");
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), os.to_string());
        m.insert(format!("{prefix}ARCH"), arch.to_string());
        m.insert(format!("{prefix}VARIANT"), variant.to_string());
    }
    m
}

/// The variables one stage sees while it is built: its ARGs (declared so far) and the
/// image's ENV, ENV winning.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Declared ARGs with their values (None: declared without value or build-arg).
    pub args: BTreeMap<String, Option<String>>,
    /// The image config's Env as it is now, in order.
    pub env: Vec<(String, String)>,
}

impl Scope {
    /// A variable's value for expansion: ENV first, then a declared ARG.
    pub fn get(&self, k: &str) -> Option<String> {
        if let Some((_, v)) = self.env.iter().rev().find(|(n, _)| n == k) {
            return Some(v.clone());
        }
        self.args.get(k).cloned().flatten()
    }

    /// Set an ENV value, replacing an earlier one of the same name in place.
    pub fn set_env(&mut self, k: &str, v: String) {
        match self.env.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v,
            None => self.env.push((k.to_string(), v)),
        }
    }

    /// The args a RUN sees in its environment (declared, with a value, not shadowed by
    /// ENV), plus the proxy args given with --build-arg.
    pub fn run_args(&self, build_args: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .args
            .iter()
            .filter(|(k, _)| !self.env.iter().any(|(n, _)| n == *k))
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for p in PROXY_ARGS {
            if let Some(v) = build_args.get(*p) {
                if !out.iter().any(|(k, _)| k == p) {
                    out.push((p.to_string(), v.clone()));
                }
            }
        }
        out
    }
}

/// `KEY=VALUE` strings (an image's Env) as pairs.
pub fn env_pairs(env: &[String]) -> Vec<(String, String)> {
    env.iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("alpha".into()),
            "E" => Some(String::new()),
            "S" => Some("two words".into()),
            _ => None,
        }
    }

    fn w(s: &str) -> String {
        expand_word(s, '\\', &env).unwrap()
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(w("$A"), "alpha");
        assert_eq!(w("${A}x"), "alphax");
        assert_eq!(w("$Ax"), "");
        assert_eq!(w("pre-$A-post"), "pre-alpha-post");
        assert_eq!(w("$NOPE"), "");
        assert_eq!(w("a$"), "a$");
        assert_eq!(w("$1x"), "x");
    }

    #[test]
    fn modifiers() {
        assert_eq!(w("${NOPE:-def}"), "def");
        assert_eq!(w("${E:-def}"), "def");
        assert_eq!(w("${E-def}"), "");
        assert_eq!(w("${NOPE-def}"), "def");
        assert_eq!(w("${A:-def}"), "alpha");
        assert_eq!(w("${A:+set}"), "set");
        assert_eq!(w("${E:+set}"), "");
        assert_eq!(w("${E+set}"), "set");
        assert_eq!(w("${NOPE:+set}"), "");
        assert_eq!(w("${NOPE:-${A}}"), "alpha");
        assert_eq!(w("${NOPE:-a b}"), "a b");
        assert_eq!(
            expand_word("${NOPE:?is needed}", '\\', &env).unwrap_err().0,
            "NOPE: is needed"
        );
        assert_eq!(w("${A:?x}"), "alpha");
        assert!(expand_word("${A", '\\', &env).is_err());
        assert!(expand_word("${A:%x}", '\\', &env).is_err());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A b\""), "alpha b");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("\"\\$A\""), "$A");
        assert_eq!(w("\"a\\\"b\""), "a\"b");
        assert_eq!(w("\"a\\nb\""), "a\\nb");
        assert_eq!(w("x\\ y"), "x y");
        assert_eq!(expand_word("`$A", '`', &env).unwrap(), "$A");
        assert_eq!(expand_word("c:\\dir", '`', &env).unwrap(), "c:\\dir");
        assert!(expand_word("'open", '\\', &env).is_err());
    }

    #[test]
    fn words() {
        assert_eq!(
            expand_words("80/tcp  $A \"x y\" '$S'", '\\', &env).unwrap(),
            vec!["80/tcp", "alpha", "x y", "$S"]
        );
        // A variable's value is not split again.
        assert_eq!(expand_words("$S", '\\', &env).unwrap(), vec!["two words"]);
        assert_eq!(expand_words("", '\\', &env).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn text_keeps_quotes() {
        assert_eq!(
            expand_text("echo '$A' \"x\" \\$A\n", '\\', &env).unwrap(),
            "echo 'alpha' \"x\" $A\n"
        );
    }

    #[test]
    fn scope_env_wins_over_arg() {
        let mut s = Scope::default();
        s.args.insert("V".into(), Some("arg".into()));
        s.args.insert("U".into(), None);
        assert_eq!(s.get("V").as_deref(), Some("arg"));
        assert_eq!(s.get("U"), None);
        s.set_env("V", "env".into());
        assert_eq!(s.get("V").as_deref(), Some("env"));
        let mut ba = BTreeMap::new();
        ba.insert("http_proxy".to_string(), "http://p".to_string());
        ba.insert("OTHER".to_string(), "x".to_string());
        assert_eq!(
            s.run_args(&ba),
            vec![("http_proxy".to_string(), "http://p".to_string())]
        );
    }

    #[test]
    fn platform() {
        let m = platform_args("linux/arm64/v8", "linux/amd64");
        assert_eq!(m["TARGETARCH"], "arm64");
        assert_eq!(m["TARGETVARIANT"], "v8");
        assert_eq!(m["BUILDPLATFORM"], "linux/amd64");
        assert_eq!(m["BUILDVARIANT"], "");
    }
}
