//! Container id rules (runc's: `^[\w+-\.]+$`, and never `.` or `..`).

/// Check a container id; the error text is what the CLI prints after "invalid container id".
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("container id cannot be empty".into());
    }
    if id == "." || id == ".." {
        return Err(format!("invalid container id {id:?}"));
    }
    if id.len() > 1024 {
        return Err("container id is longer than 1024 bytes".into());
    }
    let ok = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if !ok {
        return Err(format!(
            "invalid container id {id:?}: only letters, digits, '_', '+', '-' and '.' are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_runc_style_ids() {
        for id in ["a", "c1", "abc_DEF-1.2+x", &"f".repeat(64)] {
            assert!(validate_id(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn rejects_paths_and_dots() {
        for id in ["", ".", "..", "a/b", "../x", "a b", "a\0b", "é"] {
            assert!(validate_id(id).is_err(), "{id:?}");
        }
    }
}
