//! Registry and archive JSON → image manifest, index and config, then what pull does with
//! each (media type, layer compression, platform choice, diff ids, the process values).
//! Must never panic; an accepted manifest or index, written back, parses to the same JSON.
#![no_main]

use husk_image::config::{process_from_config, Overrides, RootfsView};
use husk_image::manifest::{
    layer_compression, media_type_of, parse_index, parse_manifest, select_platform, Platform,
};
use husk_image::pull::{diff_ids_of, parse_config};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn same_json<T: serde::Serialize>(what: &str, v: &T, reparse: impl Fn(&[u8]) -> Option<T>) {
    let out = serde_json::to_vec(v).expect("serialises");
    let again = reparse(&out).unwrap_or_else(|| panic!("{what} written back does not parse"));
    let a: Value = serde_json::from_slice(&out).unwrap();
    let b: Value = serde_json::to_value(&again).unwrap();
    assert_eq!(a, b, "{what} changed in a round trip");
}

fuzz_target!(|data: &[u8]| {
    let _ = media_type_of(data, "application/octet-stream");
    if let Ok(m) = parse_manifest(data) {
        for l in &m.layers {
            let _ = layer_compression(&l.media_type);
        }
        same_json("manifest", &m, |b| parse_manifest(b).ok());
    }
    if let Ok(i) = parse_index(data) {
        let _ = select_platform(&i, &Platform::host());
        same_json("index", &i, |b| parse_index(b).ok());
    }
    if let Ok(cfg) = parse_config(data) {
        let _ = diff_ids_of(&cfg);
        // No layers: the user is resolved from its numeric form only, no file is read.
        let _ = process_from_config(&cfg, &RootfsView::Layers(Vec::new()), &Overrides::default());
    }
});
