//! Container id rules (runc's: `^[\w+-\.]+$`, and never `.` or `..`).

/// Why a container id is refused; the text is what the CLI prints after "invalid container id".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("container id cannot be empty")]
    Empty,
    #[error("invalid container id {0:?}")]
    Dots(String),
    #[error("container id is longer than 1024 bytes")]
    TooLong,
    #[error("invalid container id {0:?}: only letters, digits, '_', '+', '-' and '.' are allowed")]
    Characters(String),
}

/// Check a container id.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id == "." || id == ".." {
        return Err(IdError::Dots(id.to_string()));
    }
    if id.len() > 1024 {
        return Err(IdError::TooLong);
    }
    let ok = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if !ok {
        return Err(IdError::Characters(id.to_string()));
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
