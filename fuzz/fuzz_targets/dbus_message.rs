//! D-Bus messages as a bus sends them to the systemd driver's client (husk-cgroups'
//! own). Must never panic on any bytes; an accepted message, written back, parses and
//! writes back to the same bytes.
#![no_main]

use husk_cgroups::systemd::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzzing::message(data));
