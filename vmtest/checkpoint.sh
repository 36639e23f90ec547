#!/bin/sh
# Checkpoint/restore through CRIU, in the VM: CRIU 3.17 cannot dump on the dev and CI
# hosts' 6.18 kernel, Debian's 6.1 kernel (vmtest/run.sh) it can. The guest
# (vmtest/checkpoint-guest.sh) runs `criu check`, then a counting container through
# husk-runtime checkpoint/restore (and --leave-running, pre-dump, the failures), and husk's
# container checkpoint --export / restore --import --name beside the original.
#   vmtest/checkpoint.sh
# With CHECKPOINT_BENCH=ROUNDS the guest instead times checkpoint and restore of a
# container holding 100 MB, husk-runtime vs runc (benches/checkpoint.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
profile=${CHECKPOINT_PROFILE:-dev}
cargo build --profile "$profile" -p husk-runtime -p husk >&2
runtime=$(cargo build --profile "$profile" -p husk-runtime --message-format=json 2>/dev/null |
	grep '"kind":\["bin"\]' | grep '"name":"husk-runtime"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
husk=$(cargo build --profile "$profile" -p husk --message-format=json 2>/dev/null |
	grep '"kind":\["bin"\]' | grep '"name":"husk"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
[ -n "$runtime" ] && [ -n "$husk" ] || { echo "vmtest: husk-runtime or husk was not built" >&2; exit 2; }
criu=$(command -v criu || echo /usr/sbin/criu)
[ -x "$criu" ] || { echo "vmtest: criu is missing (apt-get install criu)" >&2; exit 2; }
ip=$(command -v ip) || { echo "vmtest: ip is missing (apt-get install iproute2)" >&2; exit 2; }

# The bundle: Debian's busybox, a writable root, a counter as the process.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Without their debug info (most of a dev build's size): the initramfs is packed, unpacked
# and each binary paged in under emulation, and husk runs some thirty times.
strip -o "$work/husk-runtime" "$runtime" && runtime=$work/husk-runtime
strip -o "$work/husk" "$husk" && husk=$work/husk
HUSK_RUNTIME=$runtime scripts/make-bundle.sh "$work/b" sh -c \
	'i=0; while :; do echo $i; echo $i >>/count; i=$((i+1)); sleep 0.1; done' >/dev/null
python3 - "$work/b/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["root"]["readonly"] = False
json.dump(c, open(p, "w"), indent=2)
PY
mkdir -p "$work/img/bb/bin"
cp /bin/busybox "$work/img/bb/bin/busybox"
for a in sh echo sleep cat; do ln -s busybox "$work/img/bb/bin/$a"; done
tar -C "$work" -cf "$work/bundle.tar" b
tar -C "$work/img/bb" -cf "$work/bb.tar" .
tar=$(command -v tar)
# GNU tar: CRIU dumps and restores tmpfs contents with it (busybox tar lacks its flags).
xt=/usr/sbin/xtables-legacy-multi
[ -x "$xt" ] || { echo "vmtest: $xt is missing (apt-get install iptables)" >&2; exit 2; }
# CRIU saves a dumped network namespace's rules with iptables-save (legacy: no nft needed).
files="$criu $ip $tar $xt $runtime $husk $work/bundle.tar $work/bb.tar"
guest_args="$runtime $work test $husk"
if [ -n "${CHECKPOINT_BENCH:-}" ]; then
	runc=$(command -v runc) || { echo "vmtest: runc is missing (apt-get install runc)" >&2; exit 2; }
	# 100 MB of touched anonymous memory, then sleep: static, so the rootfs needs no libc.
	cat >"$work/hold.c" <<'C'
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
int main(void) {
	size_t n = 100u << 20;
	char *p = malloc(n);
	if (!p) return 1;
	for (size_t i = 0; i < n; i += 4096) p[i] = (char)(i >> 12) | 1;
	int fd = open("/ready", O_CREAT | O_WRONLY, 0644);
	if (fd >= 0) close(fd);
	for (;;) pause();
}
C
	gcc -static -O2 -o "$work/hold" "$work/hold.c"
	# The same bundle for both runtimes: the hold program, no network namespace.
	HUSK_RUNTIME=$runtime scripts/make-bundle.sh "$work/bb" /hold >/dev/null
	cp "$work/hold" "$work/bb/rootfs/hold"
	python3 - "$work/bb/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["root"]["readonly"] = False
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(p, "w"), indent=2)
PY
	tar -C "$work" -cf "$work/bench.tar" bb
	files="$files $runc $work/bench.tar"
	guest_args="$runtime $work bench $runc ${CHECKPOINT_BENCH}"
	export VMTEST_MEM=${VMTEST_MEM:-1536}
fi
# criu's kernel probes: socket diag, nf_tables (its nftables probe fails without it), tun,
# veth; conntrack over netlink for dumping a network namespace.
VMTEST_FILES="$files" VMTEST_MEM=${VMTEST_MEM:-1024} \
	VMTEST_MODULES="crc32c_generic libcrc32c nfnetlink nf_tables unix_diag inet_diag tcp_diag udp_diag netlink_diag af_packet_diag tun veth nf_defrag_ipv4 nf_defrag_ipv6 nf_conntrack nf_conntrack_netlink" \
	VMTEST_TEST_ARGS="$guest_args" "$here/run.sh" "$here/checkpoint-guest.sh"
