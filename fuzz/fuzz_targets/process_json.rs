//! process.json bytes (`exec --process`) → Process → the exec-side checks. Must never panic.
#![no_main]

use husk_container::validate::validate_process;
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::Process;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = serde_json::from_slice::<Process>(data) {
        let _ = validate_process(&p);
    }
});
