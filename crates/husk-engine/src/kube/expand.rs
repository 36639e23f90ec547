//! Kubernetes' `$(VAR)` references in a container's `command`, `args` and `env` values:
//! `$(NAME)` is the value of the container's variable NAME (for an env value, one defined
//! before it), left as written when there is none; `$$` is one `$`, so `$$(NAME)` is the
//! text `$(NAME)`. [`escape`] is the inverse, for what `kube generate` writes.

/// `s` with its references expanded through `var`.
pub fn expand(s: &str, var: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after
            .strip_prefix('(')
            .and_then(|a| a.find(')').map(|j| (&a[..j], &a[j + 1..])))
        {
            match var(name) {
                Some(v) => out.push_str(&v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `s` written so that [`expand`] gives it back unchanged: a `$` before `$` or `(` doubled.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('$' | '(')) {
            out.push('$');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        (name == "A").then(|| "x".to_string())
    }

    #[test]
    fn references_expand_as_kubernetes_expands_them() {
        assert_eq!(expand("$(A)-$(A)", &vars), "x-x");
        assert_eq!(expand("$(B) stays", &vars), "$(B) stays");
        assert_eq!(expand("$$(A) $$ $HOME $", &vars), "$(A) $ $HOME $");
        assert_eq!(expand("$(A unclosed", &vars), "$(A unclosed");
        assert_eq!(expand("no refs", &vars), "no refs");
    }

    #[test]
    fn escaped_text_expands_to_itself() {
        for s in [
            "$(A)",
            "$$",
            "a $$(A) b",
            "echo $GREETING",
            "$",
            "$$$(",
            "plain",
        ] {
            assert_eq!(expand(&escape(s), &vars), s, "{s:?}");
        }
        assert_eq!(escape("echo $GREETING"), "echo $GREETING");
    }
}
