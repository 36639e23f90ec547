#!/usr/bin/env bash
# Run every test of husk, as root: unit, integration (real containers, a real registry on
# loopback) on this host's cgroup layout, and the cgroup tests inside a cgroup-v2 VM.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: the tests run real containers and must run as root" >&2; exit 1; }
scripts/deps.sh
export RUST_BACKTRACE=1
cargo build --workspace --all-targets
cargo test --workspace
echo "== cgroup v2 (qemu VM) =="
vmtest/cgroups.sh
if [ -x vmtest/runtime.sh ]; then
  vmtest/runtime.sh
fi
vmtest/quota.sh
vmtest/checkpoint.sh
vmtest/systemd.sh
# Fuzz what husk reads from bundles, registries, layers and its state dir (fuzz/): 20 s per
# target keeps the ten targets within about 4 minutes.
fuzz/run.sh 20
