#!/bin/sh
# Run inside the VM by vmtest/quota.sh: $1 is the husk binary. Exits non-zero on failure.
set -eu
husk=$1
fail() { echo "quota-guest: $*"; exit 1; }
dd if=/dev/zero of=/tmp/q.img bs=1M count=0 seek=96 2>/dev/null
mkfs.ext4 -q -F -O quota,project /tmp/q.img
mkdir -p /q
mount -o loop,prjquota /tmp/q.img /q || fail "mounting ext4 with prjquota"
trap 'umount /q 2>/dev/null; rm -f /tmp/q.img' EXIT
# An image of busybox alone, imported from a tar.
mkdir -p /tmp/bb/bin /tmp/bb/tmp
cp /bin/busybox /tmp/bb/bin/busybox
for a in sh dd echo; do ln -s busybox "/tmp/bb/bin/$a"; done
tar -C /tmp/bb -cf /tmp/bb.tar .
h() { "$husk" --root /q/store "$@"; }
h import /tmp/bb.tar localhost/bb:latest >/dev/null
# No apparmor_parser in this guest: unconfined (AppArmor is not what is tested here).
run() { h run --rm --network none --security-opt apparmor=unconfined --storage-opt size=8m localhost/bb /bin/sh -c "$1"; }
out=$(h run --name q1 --network none --security-opt apparmor=unconfined --storage-opt size=8m localhost/bb /bin/sh -c \
	'dd if=/dev/zero of=/within bs=1M count=4 2>&1 && echo within-ok') || fail "within the limit: $out"
echo "$out" | grep -q within-ok || fail "within the limit: $out"
opt=$(h inspect -f '{{json .HostConfig.StorageOpt}}' q1)
[ "$opt" = '{"size":"8388608"}' ] || fail "inspect's StorageOpt: $opt"
h rm q1
out=$(run 'dd if=/dev/zero of=/past bs=1M count=32 2>&1; echo "dd exit $?"') || fail "past the limit: $out"
echo "$out"
echo "$out" | grep -q "dd exit 1" || fail "a 32 MiB write under an 8 MiB limit did not fail"
echo "$out" | grep -Eq "Disk quota exceeded|No space left on device" || fail "not EDQUOT/ENOSPC: $out"
# The file system itself is not full: the host writes 32 MiB to it.
dd if=/dev/zero of=/q/host-file bs=1M count=32 2>/dev/null || fail "the host could not write to /q"
rm /q/host-file
# Nothing left: the containers are gone (--rm), and so are their cgroups.
[ -z "$(ls /q/store/containers 2>/dev/null)" ] || fail "containers left: $(ls /q/store/containers)"
rmdir /sys/fs/cgroup/husk-engine 2>/dev/null || true
echo "quota-guest: ok"
