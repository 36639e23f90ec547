#!/usr/bin/env bash
# Build the release husk-runtime as a static-pie binary (target/release/husk-runtime).
#   scripts/build-runtime.sh
# Static because the runtime is exec'd twice per container operation (once by the caller,
# once for the CVE-2019-5736 read-only re-exec): without ld.so's relocations and symbol
# lookups `run` of /bin/true is ~20% faster and `exec` ~17% (docs/architecture.md).
# crt-static is given to the final link only (cargo rustc), so proc-macros still build as
# host dylibs. husk-runtime uses no NSS (getpwnam, getaddrinfo), so static glibc is safe.
# Small, because its mapped pages are most of a `run`'s peak RSS: the `runtime` profile
# (release, optimized for size) and packed relative relocations (DT_RELR: 4 KB instead of
# 270 KB of relocations, every one of them read at each start).
# Built in target/runtime/ and copied to target/release/, where every script looks.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo rustc --profile runtime -q -p husk-runtime --bin husk-runtime -- \
  -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs
mkdir -p target/release
install -m 0755 target/runtime/husk-runtime target/release/husk-runtime
