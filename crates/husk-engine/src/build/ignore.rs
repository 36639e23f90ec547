//! `.containerignore` / `.dockerignore`: which paths of the build context COPY and ADD may
//! not see, with docker's rules: one pattern a line, `#` comments, blanks trimmed, Go
//! `filepath.Match` patterns per path segment (`*`, `?`, `[a-z]`, `[!x]`, `\` escapes) plus
//! `**` for any number of segments, a leading `/` and `./` ignored, `!` re-including what an
//! earlier pattern excluded; the last pattern that matches decides. A pattern that matches a
//! directory excludes everything below it.
//!
//! The same segment matcher ([`fnmatch`]) serves COPY's source globs.

use std::path::{Path, PathBuf};

/// One line of an ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segments: Vec<String>,
    exclude: bool,
}

/// The parsed ignore file (empty: nothing ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// A pattern that cannot be matched (an unclosed `[`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: bad pattern {pattern:?}")]
pub struct IgnoreError {
    pub file: String,
    pub pattern: String,
}

/// `..`/`.` resolved lexically, duplicate slashes removed, no leading `/` (Go's
/// filepath.Clean, relative to the context).
pub fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in p.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

impl Ignore {
    pub fn parse(text: &str, file: &str) -> Result<Ignore, IgnoreError> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exclude, p) = match l.strip_prefix('!') {
                Some(p) => (false, p.trim()),
                None => (true, l),
            };
            let c = clean(p);
            if c.is_empty() {
                continue;
            }
            let segments: Vec<String> = c.split('/').map(str::to_string).collect();
            for s in &segments {
                if fnmatch(s, "").is_none() {
                    return Err(IgnoreError {
                        file: file.into(),
                        pattern: l.into(),
                    });
                }
            }
            patterns.push(Pattern { segments, exclude });
        }
        Ok(Ignore { patterns })
    }

    /// The ignore file for a build: `FILE.containerignore` / `FILE.dockerignore` beside the
    /// Containerfile, else CONTEXT/.containerignore, else CONTEXT/.dockerignore (buildah's
    /// order); none is an empty list.
    pub fn load(context: &Path, containerfile: Option<&Path>) -> Result<Ignore, IgnoreError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(f) = containerfile {
            for ext in ["containerignore", "dockerignore"] {
                let mut s = f.as_os_str().to_owned();
                s.push(format!(".{ext}"));
                candidates.push(PathBuf::from(s));
            }
        }
        candidates.push(context.join(".containerignore"));
        candidates.push(context.join(".dockerignore"));
        for c in candidates {
            if let Ok(text) = std::fs::read_to_string(&c) {
                let name = c.file_name().map(|n| n.to_string_lossy().into_owned());
                return Ignore::parse(&text, &name.unwrap_or_default());
            }
        }
        Ok(Ignore::default())
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let c = clean(path);
        if c.is_empty() {
            return false;
        }
        let segs: Vec<&str> = c.split('/').collect();
        let mut out = false;
        for p in &self.patterns {
            // The path itself or one of its parent directories.
            let hit = (1..=segs.len()).any(|n| match_segments(&p.segments, &segs[..n]));
            if hit {
                out = p.exclude;
            }
        }
        out
    }

    /// Whether a directory may hold something an exception re-includes (so a walk must
    /// descend into an excluded directory).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| !p.exclude)
    }
}

/// Pattern segments against path segments; `**` matches any number of segments.
pub fn match_segments(pat: &[String], path: &[&str]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|n| match_segments(&pat[1..], &path[n..])),
        Some(p) => match path.first() {
            Some(s) => fnmatch(p, s).unwrap_or(false) && match_segments(&pat[1..], &path[1..]),
            None => false,
        },
    }
}

/// Go's `filepath.Match` on one segment (no `/` in `name`): `*`, `?`, `[...]` with ranges and
/// `^`/`!` negation, `\` escapes. None for a malformed pattern.
pub fn fnmatch(pat: &str, name: &str) -> Option<bool> {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Validate the whole pattern first, so that an error does not depend on the name.
    check(&p)?;
    Some(fm(&p, &n))
}

fn check(p: &[char]) -> Option<()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => i += 2,
            '[' => i = class_end(p, i)?,
            _ => i += 1,
        }
    }
    (i <= p.len()).then_some(())
}

/// Index after the `]` closing the class that starts at `i`.
fn class_end(p: &[char], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if matches!(p.get(j), Some('^' | '!')) {
        j += 1;
    }
    let first = j;
    while j < p.len() {
        match p[j] {
            ']' if j > first => return Some(j + 1),
            '\\' => j += 2,
            _ => j += 1,
        }
    }
    None
}

fn fm(p: &[char], n: &[char]) -> bool {
    let Some(&c) = p.first() else {
        return n.is_empty();
    };
    match c {
        '*' => (0..=n.len()).any(|k| fm(&p[1..], &n[k..])),
        '?' => !n.is_empty() && fm(&p[1..], &n[1..]),
        '[' => {
            let Some(end) = class_end(p, 0) else {
                return false;
            };
            let Some(&ch) = n.first() else {
                return false;
            };
            let mut j = 1;
            let negate = matches!(p.get(1), Some('^' | '!'));
            if negate {
                j += 1;
            }
            let mut hit = false;
            while j < end - 1 {
                let mut lo = p[j];
                if lo == '\\' {
                    j += 1;
                    lo = p[j];
                }
                j += 1;
                let mut hi = lo;
                if p.get(j) == Some(&'-') && j + 1 < end - 1 {
                    hi = p[j + 1];
                    if hi == '\\' {
                        hi = p[j + 2];
                        j += 1;
                    }
                    j += 2;
                }
                if lo <= ch && ch <= hi {
                    hit = true;
                }
            }
            hit != negate && fm(&p[end..], &n[1..])
        }
        '\\' if p.len() > 1 => n.first() == Some(&p[1]) && fm(&p[2..], &n[1..]),
        c => n.first() == Some(&c) && fm(&p[1..], &n[1..]),
    }
}

/// Whether `s` has glob metacharacters (a COPY source to expand, not a path).
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(s: &str) -> Ignore {
        Ignore::parse(s, ".containerignore").unwrap()
    }

    #[test]
    fn segment_matching() {
        assert!(fnmatch("*.txt", "a.txt").unwrap());
        assert!(!fnmatch("*.txt", "a.txt.bak").unwrap());
        assert!(fnmatch("a?c", "abc").unwrap());
        assert!(fnmatch("[a-c]x", "bx").unwrap());
        assert!(!fnmatch("[!a-c]x", "bx").unwrap());
        assert!(fnmatch("[^a-c]x", "dx").unwrap());
        assert!(fnmatch("\\*", "*").unwrap());
        assert!(!fnmatch("\\*", "a").unwrap());
        assert!(fnmatch("[]]", "]").unwrap());
        assert!(fnmatch("[", "x").is_none());
    }

    #[test]
    fn ignore_rules() {
        let i = ig("# comment\n\n*.log\n/build\n!important.log\nsecret/**\n**/cache\n  tmp/*  \n");
        assert!(i.excluded("a.log"));
        assert!(!i.excluded("important.log"));
        assert!(!i.excluded("dir/a.log"), "* does not cross /");
        assert!(i.excluded("build"));
        assert!(i.excluded("build/x/y"), "below an excluded dir");
        assert!(i.excluded("secret/a/b"));
        assert!(i.excluded("cache"));
        assert!(i.excluded("x/y/cache/z"));
        assert!(i.excluded("tmp/a"));
        assert!(!i.excluded("tmp"));
        assert!(!i.excluded("src/main.rs"));
        assert!(i.has_exceptions());
    }

    #[test]
    fn last_match_wins() {
        let i = ig("docs\n!docs/keep.md\n");
        assert!(i.excluded("docs/a.md"));
        assert!(!i.excluded("docs/keep.md"));
        let i = ig("!a\na\n");
        assert!(i.excluded("a"));
        let i = ig("*\n!src\n");
        assert!(!i.excluded("src/x"));
        assert!(i.excluded("other"));
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean("./a//b/../c/"), "a/c");
        assert_eq!(clean("/x"), "x");
        let i = ig("./a/../b\n");
        assert!(i.excluded("b"));
        assert!(Ignore::parse("[x\n", "f").is_err());
    }
}
