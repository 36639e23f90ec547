#!/bin/sh
# `husk run --storage-opt size=N` enforced, in the VM: the dev and CI hosts' kernel has no
# quota support (no CONFIG_QUOTA, no CONFIG_XFS_QUOTA), Debian's has. The guest makes a
# loop-mounted ext4 with project quotas, puts a husk store on it and checks from inside a
# container that a write within the limit works and one past it fails, while the file system
# itself still takes writes (vmtest/quota-guest.sh).
#   vmtest/quota.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
cargo build -p husk >&2
husk=$(cargo build -p husk --message-format=json 2>/dev/null | grep '"reason":"compiler-artifact"' |
	grep '"kind":\["bin"\]' | grep '"name":"husk"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
[ -n "$husk" ] || { echo "vmtest: the husk binary was not built" >&2; exit 2; }
mkfs=$(command -v mkfs.ext4) || { echo "vmtest: mkfs.ext4 is missing (apt-get install e2fsprogs)" >&2; exit 2; }
files="$husk $mkfs"
[ -e /etc/mke2fs.conf ] && files="$files /etc/mke2fs.conf"
VMTEST_FILES="$files" VMTEST_MODULES="crc16 mbcache jbd2 ext4 crc32c_generic quota_tree quota_v2 loop" \
	VMTEST_TEST_ARGS="$husk" exec "$here/run.sh" "$here/quota-guest.sh"
