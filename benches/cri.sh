#!/usr/bin/env bash
# Pod start through containerd's CRI plugin (RunPodSandbox + CreateContainer + StartContainer
# until running), runtime handler husk vs runc, side by side in one run: one private
# containerd in a network namespace of its own, the handlers alternating pod by pod.
#   benches/cri.sh [PODS_PER_HANDLER]        (as root)
# The harness is the CRI test's (crates/husk-cri-tests); the husk-runtime measured is the
# release build (scripts/build-runtime.sh), the client a debug build (it only waits).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
scripts/deps.sh
scripts/build-runtime.sh
cargo build -q -p husk-cri-tests --example cri_bench
exec target/debug/examples/cri_bench "$runs" "$PWD/target/release/husk-runtime"
