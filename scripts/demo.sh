#!/usr/bin/env bash
# Build and install husk and husk-runtime (binaries, man pages, bash completion), load a
# local busybox image and run a container of it with husk.
#   scripts/demo.sh [CMD...]   (default: print a greeting, the hostname and the user)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (it installs packages and /usr/local/bin/husk; rootless use: docs/rootless.md)" >&2; exit 1; }
scripts/deps.sh
scripts/build-runtime.sh
cargo build --release -q -p husk
install -m 0755 target/release/husk-runtime target/release/husk /usr/local/bin/
# husk's build.rs wrote the man pages (clap_mangen) into its OUT_DIR: the newest is this build's.
man=$(ls -td target/release/build/husk-*/out/man | head -1)
install -d /usr/local/share/man/man1
install -m 0644 "$man"/*.1 /usr/local/share/man/man1/
install -d /usr/share/bash-completion/completions
husk completion bash >/usr/share/bash-completion/completions/husk
# A one-layer image of Debian's busybox-static, loaded from a docker-archive: no registry.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/make-image.sh "$work/busybox.tar" localhost/busybox:latest
husk load -q -i "$work/busybox.tar"
[ $# -gt 0 ] || set -- sh -c 'echo hello from husk; hostname; id'
# --network none: the demo leaves the machine's own network as it is (no bridge, no rules).
husk run --rm --network none localhost/busybox:latest "$@"
