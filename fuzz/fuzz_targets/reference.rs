//! Image references, platforms and digests as users and registries give them. Must never
//! panic; an accepted reference prints as a string that parses back to the same reference
//! (images are recorded under that string and looked up by it).
#![no_main]

use husk_image::manifest::Platform;
use husk_image::{Digest, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        let shown = r.to_string();
        match Reference::parse(&shown) {
            Ok(again) => assert_eq!(again, r, "{s:?} printed as {shown:?}"),
            Err(e) => panic!("{s:?} printed as {shown:?}, which does not parse: {e}"),
        }
        let _ = (r.manifest_ref(), r.tagged_name(), r.is_loopback_registry());
    }
    if let Ok(p) = Platform::parse(s) {
        let _ = p.matches(&Platform::host());
    }
    if let Ok(d) = s.parse::<Digest>() {
        assert_eq!(d.to_string(), s);
    }
});
