//! A registry's `WWW-Authenticate` header → (scheme, params). Must never panic; the scheme
//! and the parameter names come back lowercase, names trimmed and without '='.
#![no_main]

use husk_image::registry::parse_challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(h) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((scheme, params)) = parse_challenge(h) {
        assert_eq!(scheme, scheme.to_ascii_lowercase());
        for k in params.keys() {
            assert_eq!(k, &k.to_ascii_lowercase());
            assert_eq!(k, k.trim());
            assert!(!k.contains('='), "parameter name {k:?}");
        }
    }
});
