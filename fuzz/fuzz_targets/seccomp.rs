//! linux.seccomp JSON → BPF for this host. Compiling must never panic, and every program
//! it produces must pass the kernel's basic checks (length, opcodes, jumps in range).
#![no_main]

use husk_container::validate::{check_bpf, seccomp_program};
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = serde_json::from_slice::<LinuxSeccomp>(data) else {
        return;
    };
    if let Ok(prog) = seccomp_program(&s) {
        if let Err(e) = check_bpf(&prog) {
            panic!("compiled seccomp program fails the kernel's checks: {e}");
        }
    }
});
