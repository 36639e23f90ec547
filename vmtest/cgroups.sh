#!/bin/sh
# Build the husk-cgroups integration tests for the host and run them in the cgroup-v2 VM.
#   vmtest/cgroups.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
# the executables of the integration-test targets (kind "test") of husk-cgroups
bins=$(cargo test -p husk-cgroups --tests --no-run --message-format=json 2>/dev/null |
	grep '"reason":"compiler-artifact"' |
	grep '"kind":\["test"\]' |
	grep 'husk-cgroups' |
	sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
[ -n "$bins" ] || { echo "vmtest: no husk-cgroups integration test binary was built" >&2; exit 2; }
# shellcheck disable=SC2086 # one path per word, none contains spaces (cargo target dir)
exec "$here/run.sh" $bins
