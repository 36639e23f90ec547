#!/bin/sh
# The systemd cgroup driver in the cgroup-v2 VM booted with systemd as PID 1 (the host's
# systemd 252 and dbus-daemon, see VMTEST_SYSTEMD in run.sh): husk-runtime's
# `systemd_cgroup` tests and husk's `systemd_run` test, with HUSK_REQUIRE_SYSTEMD=1 so that
# a VM without systemd fails them. The binaries sit at their host paths in the guest (the
# tests exec the paths cargo compiled in).
#   vmtest/systemd.sh [LIBTEST_ARGS...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
exe() { # the executables of kind $1 ("test" or "bin") named $2 in cargo's JSON messages
	grep '"reason":"compiler-artifact"' | grep "\"kind\":\[\"$1\"\]" | grep "\"name\":\"$2\"" |
		sed -n 's/.*"executable":"\([^"]*\)".*/\1/p'
}
rt=$(cargo test -p husk-runtime --test systemd_cgroup --no-run --message-format=json 2>/dev/null)
husk=$(cargo test -p husk --test systemd_run --no-run --message-format=json 2>/dev/null)
rt_test=$(echo "$rt" | exe test systemd_cgroup)
rt_bin=$(echo "$rt" | exe bin husk-runtime)
husk_test=$(echo "$husk" | exe test systemd_run)
husk_bin=$(echo "$husk" | exe bin husk)
for v in "$rt_test" "$rt_bin" "$husk_test" "$husk_bin"; do
	[ -n "$v" ] || { echo "vmtest: a systemd test or binary was not built" >&2; exit 2; }
done
# AppArmor off: Debian's kernel enables it, husk run would then want apparmor_parser, and
# AppArmor is runtime.sh's subject, not this one's.
export VMTEST_SYSTEMD=1 VMTEST_ENV="HUSK_REQUIRE_SYSTEMD=1 SYSTEMD_PAGER=cat" VMTEST_APPEND="apparmor=0"
VMTEST_FILES="$rt_bin $husk_bin" VMTEST_TEST_ARGS="$*" exec "$here/run.sh" "$rt_test" "$husk_test"
