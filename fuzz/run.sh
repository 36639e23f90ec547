#!/bin/sh
# Run every fuzz target for SECONDS (default 60) each; fail on any crash, leak or timeout.
# Installs cargo-fuzz (crates.io) when it is missing; needs a nightly toolchain.
#   fuzz/run.sh [SECONDS]
set -eu
secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    start=$(date +%s)
    cargo install cargo-fuzz --locked
    echo "fuzz: cargo-fuzz installed in $(( $(date +%s) - start ))s" >&2
fi

# Build from the committed lock file only: a stale fuzz/Cargo.lock fails here, not silently
# re-resolved (cargo fuzz build has no --locked of its own).
cargo +nightly fetch --locked --target "$(rustc +nightly -vV | sed -n 's/^host: //p')"
targets=$(cargo +nightly fuzz list)
# One build of all targets first, so the timed runs below are fuzzing, not compiling.
cargo +nightly fuzz build
for t in $targets; do
    seeds="$here/corpus/$t"
    work="$here/target/corpus/$t"   # new inputs go here, not into the committed seeds
    mkdir -p "$work"
    echo "fuzz: $t for ${secs}s" >&2
    if ! cargo +nightly fuzz run "$t" "$work" "$seeds" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        echo "fuzz: $t FAILED; the input is under fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "fuzz: all targets ran ${secs}s without a crash" >&2
