//! config.json bytes → Spec → every check `create` makes before anything is created.
//! Must never panic; the seccomp program of an accepted spec must pass the BPF checks.
#![no_main]

use husk_container::validate::{check_bpf, seccomp_program, validate_spec};
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::Spec;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<Spec>(data) else {
        return;
    };
    if validate_spec(&spec).is_err() {
        return;
    }
    if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        let prog = seccomp_program(s).expect("a validated profile compiles");
        if let Err(e) = check_bpf(&prog) {
            panic!("compiled seccomp program fails the kernel's checks: {e}");
        }
    }
});
