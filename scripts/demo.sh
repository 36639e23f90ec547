#!/usr/bin/env bash
# Build and install husk-runtime, then run a container from a busybox-static bundle.
#   scripts/demo.sh [ARGS...]   (default: print a greeting, the hostname and the user)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (it installs packages and /usr/local/bin/husk-runtime; rootless use: docs/rootless.md)" >&2; exit 1; }
scripts/deps.sh
scripts/build-runtime.sh
install -m 0755 target/release/husk-runtime /usr/local/bin/husk-runtime
bundle=$(mktemp -d)/bundle
scripts/make-bundle.sh "$bundle" "$@"
cd "$bundle"
exec husk-runtime run "demo-$$"
