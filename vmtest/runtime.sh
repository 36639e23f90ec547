#!/bin/sh
# Build husk-runtime and its cgroup, AppArmor and killed-create integration tests for the host and run the
# tests in the cgroup-v2 VM, booted with AppArmor on and Debian's apparmor_parser (from the
# `apparmor` package, downloaded once into target/vmtest/apparmor; it needs only libc).
# The tests exec the binary at the path cargo compiled into them
# (CARGO_BIN_EXE_husk-runtime), so the binary is placed at that same path in the guest.
#   vmtest/runtime.sh [LIBTEST_ARGS...]   (default: --nocapture, to log the measured memory limit)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
artifacts=$(cargo test -p husk-runtime --test cgroups --test apparmor --test create_killed --no-run --message-format=json 2>/dev/null)
tests=$(echo "$artifacts" | grep '"reason":"compiler-artifact"' | grep '"kind":\["test"\]' |
	sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
bin=$(echo "$artifacts" | grep '"reason":"compiler-artifact"' | grep '"kind":\["bin"\]' |
	grep '"name":"husk-runtime"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
[ -n "$tests" ] || { echo "vmtest: the husk-runtime cgroups test binary was not built" >&2; exit 2; }
[ -n "$bin" ] || { echo "vmtest: the husk-runtime binary was not built" >&2; exit 2; }
# husk run under AppArmor: the engine's own test, with the husk binary it runs.
husk_artifacts=$(cargo test -p husk --test apparmor_run --no-run --message-format=json 2>/dev/null)
husk_test=$(echo "$husk_artifacts" | grep '"reason":"compiler-artifact"' | grep '"kind":\["test"\]' |
	grep apparmor_run | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
husk_bin=$(echo "$husk_artifacts" | grep '"reason":"compiler-artifact"' | grep '"kind":\["bin"\]' |
	grep '"name":"husk"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
[ -n "$husk_test" ] && [ -n "$husk_bin" ] || { echo "vmtest: husk's apparmor_run test was not built" >&2; exit 2; }
aa="$PWD/target/vmtest/apparmor"
if [ ! -x "$aa/sbin/apparmor_parser" ]; then
	rm -rf "$aa.dl" "$aa"
	mkdir -p "$aa.dl"
	(cd "$aa.dl" && apt-get download apparmor >&2)
	dpkg -x "$aa.dl"/apparmor_*.deb "$aa.dl/x"
	mkdir -p "$aa/sbin"
	cp "$aa.dl/x/sbin/apparmor_parser" "$aa/sbin/"
	rm -rf "$aa.dl"
fi
export VMTEST_APPEND="apparmor=1 security=apparmor"
# create_killed: a few dozen kills on cgroup v2 (each round is slow under emulation).
export VMTEST_ENV="HUSK_REQUIRE_APPARMOR=1 HUSK_APPARMOR_PARSER=$aa/sbin/apparmor_parser HUSK_KILL_ROUNDS=8 PATH=/bin:/sbin:/usr/bin:/usr/sbin:$aa/sbin"
VMTEST_FILES="$bin $husk_bin $aa/sbin/apparmor_parser" VMTEST_TEST_ARGS="${*:---nocapture}" exec "$here/run.sh" $tests $husk_test
