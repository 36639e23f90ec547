//! A state dir's state.json (husk-container's record) and the OCI state `state` prints
//! (husk-oci's, which the engine reads back). Must never panic; what husk writes for an
//! accepted state loads again to the same JSON.
#![no_main]

use husk_container::fuzzing::state_json;
use husk_oci::StateOutput;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = state_json(data) {
        let again = state_json(&out).expect("husk's own state.json loads");
        let a: Value = serde_json::from_slice(&out).unwrap();
        let b: Value = serde_json::from_slice(&again).unwrap();
        assert_eq!(a, b, "state.json changed in a round trip");
    }
    if let Ok(s) = serde_json::from_slice::<StateOutput>(data) {
        let out = serde_json::to_vec(&s).expect("serialises");
        let again: StateOutput = serde_json::from_slice(&out).expect("its own output parses");
        let a: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(a, serde_json::to_value(&again).unwrap());
    }
});
