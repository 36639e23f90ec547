#!/bin/sh
# Checkpoint and restore time of a container holding 100 MB of memory: husk-runtime vs runc
# (Debian's, copied into the VM with its libraries), side by side in one VM run. CRIU 3.17
# cannot dump on the dev and CI hosts' 6.18 kernel, so this boots Debian's 6.1 under qemu
# (vmtest/checkpoint.sh); under TCG emulation absolute times are several times a real
# machine's, the ratio is what to read.
#   benches/checkpoint.sh [ROUNDS]     (as root; default 3 rounds, alternating runtimes)
# The container runs a tiny static program that touches 100 MB of anonymous memory and
# sleeps; no network namespace (neither runtime then has CRIU dump or lock one).
set -eu
cd "$(dirname "$0")/.."
command -v runc >/dev/null || { echo "benches/checkpoint.sh: runc is missing (apt-get install runc)" >&2; exit 2; }
CHECKPOINT_BENCH=${1:-3} exec vmtest/checkpoint.sh
