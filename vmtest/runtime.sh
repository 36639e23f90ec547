#!/bin/sh
# Build husk-runtime and its cgroup integration tests for the host and run the tests in the
# cgroup-v2 VM. The tests exec the binary at the path cargo compiled into them
# (CARGO_BIN_EXE_husk-runtime), so the binary is placed at that same path in the guest.
#   vmtest/runtime.sh [LIBTEST_ARGS...]   (default: --nocapture, to log the measured memory limit)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
artifacts=$(cargo test -p husk-runtime --test cgroups --no-run --message-format=json 2>/dev/null)
tests=$(echo "$artifacts" | grep '"reason":"compiler-artifact"' | grep '"kind":\["test"\]' |
	sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
bin=$(echo "$artifacts" | grep '"reason":"compiler-artifact"' | grep '"kind":\["bin"\]' |
	grep '"name":"husk-runtime"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
[ -n "$tests" ] || { echo "vmtest: the husk-runtime cgroups test binary was not built" >&2; exit 2; }
[ -n "$bin" ] || { echo "vmtest: the husk-runtime binary was not built" >&2; exit 2; }
VMTEST_FILES="$bin" VMTEST_TEST_ARGS="${*:---nocapture}" exec "$here/run.sh" $tests
