#!/usr/bin/env bash
# Build the release husk-runtime as a static-pie binary (target/release/husk-runtime).
#   scripts/build-runtime.sh
# Static because the runtime is exec'd twice per container operation (once by the caller,
# once for the CVE-2019-5736 read-only re-exec): without ld.so's relocations and symbol
# lookups `run` of /bin/true is ~20% faster and `exec` ~17% (docs/architecture.md).
# crt-static is given to the final link only (cargo rustc), so proc-macros still build as
# host dylibs. husk-runtime uses no NSS (getpwnam, getaddrinfo), so static glibc is safe.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo rustc --release -q -p husk-runtime --bin husk-runtime -- -C target-feature=+crt-static
