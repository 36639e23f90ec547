#!/bin/sh
# Run inside the VM by vmtest/checkpoint.sh: $1 husk-runtime, $2 the host's work dir (the
# bundle and image tars), $3 "test" or "bench", $4 husk (test) or runc (bench).
set -u
runtime=$1 work=$2 mode=$3 other=$4
fail() { echo "checkpoint-guest: FAIL: $*"; [ -n "${log:-}" ] && [ -f "$log" ] && grep -a -B3 "Error (" "$log" | tail -n 30; exit 1; }
ok() { echo "checkpoint-guest: ok: $*"; }
# CRIU runs `tar` (tmpfs contents) and `ip` (addresses, routes): the real ones, copied in
# at the host's paths, not busybox's applets that come first on PATH.
for t in tar ip; do
	for d in /usr/bin /usr/sbin /bin /sbin; do
		if [ -f "$d/$t" ] && [ ! -L "$d/$t" ]; then
			[ "$d" = /bin ] || ln -sf "$d/$t" "/bin/$t"
			break
		fi
	done
done
for t in iptables-save iptables-restore ip6tables-save ip6tables-restore; do
	ln -sf /usr/sbin/xtables-legacy-multi "/bin/$t"
done
# CRIU mounts a tmpfs on /run while it restores a network namespace.
mkdir -p /run
# CRIU opens /dev/ptmx (criu check, and terminals): a devpts instance of our own.
mkdir -p /dev/pts
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts && ln -sf pts/ptmx /dev/ptmx
# No iptables in this guest: CRIU locks the network of the dumped namespace with nftables
# (CRIU reads this file on every run, as it would an administrator's setting).
mkdir -p /etc/criu
echo "network-lock nftables" >/etc/criu/default.conf
out=$(criu check 2>&1)
echo "$out" | tail -n 3
echo "$out" | grep -q "Looks good" || fail "criu check: the kernel lacks what CRIU needs"

R="$runtime --root /tmp/state"
# The last number a counter wrote to FILE.
last() { tail -n 1 "$1" 2>/dev/null; }
# Wait until FILE's counter passes $2 (or fail after ~10 s).
wait_past() {
	n=0
	while [ "$(last "$1" || echo -1)" -le "$2" ] 2>/dev/null || [ -z "$(last "$1")" ]; do
		n=$((n + 1)); [ $n -gt 100 ] && fail "$1 stays at $(last "$1") (waiting past $2)"
		sleep 0.1
	done
}
pid_of() { $R state "$1" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }
status_of() { $R state "$1" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p'; }
nothing_left() {
	[ -z "$($R list -q)" ] || fail "$1: containers left: $($R list -q)"
	left=$(find /sys/fs/cgroup -mindepth 1 -type d)
	[ -z "$left" ] || fail "$1: cgroups left: $left"
}
bundle() { # a fresh copy of the counter bundle at $1
	rm -rf "$1"; mkdir -p "$1"; tar -C "$1" -xf "$work/bundle.tar" --strip-components=1
}

# ---- benchmark: checkpoint and restore of 100 MB, husk-runtime vs runc ----------------------
if [ "$mode" = bench ]; then
	runc=$other rounds=${5:-3}
	ms() { read -r up _ </proc/uptime; echo "${up%.*}${up#*.}0"; } # /proc/uptime in ms (10 ms steps)
	rm -rf /tmp/bb; mkdir -p /tmp/bb; tar -C /tmp/bb -xf "$work/bench.tar" --strip-components=1
	bench_one() { # NAME BINARY ROUND
		name=$1 bin="$2 --root /tmp/bench-$1" id="b$1$3"
		rm -f /tmp/bb/rootfs/ready
		cd /tmp/bb
		$bin run -d "$id" </dev/null >/dev/null 2>&1 || fail "$name run"
		n=0; while [ ! -e /tmp/bb/rootfs/ready ]; do n=$((n+1)); [ $n -gt 300 ] && fail "$name: hold never ready"; sleep 0.1; done
		rss=$(grep VmRSS /proc/"$($bin state "$id" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')"/status | tr -s ' ')
		img=/tmp/bench-img-$id
		rm -rf "$img"
		t0=$(ms)
		$bin checkpoint --image-path "$img" "$id" || { log=$img/dump.log; fail "$name checkpoint"; }
		t1=$(ms)
		$bin restore -d --image-path "$img" "$id" </dev/null >/dev/null 2>&1 || { log=$img/restore.log; fail "$name restore"; }
		t2=$(ms)
		[ "$($bin state "$id" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')" = running ] || fail "$name: restored $id not running"
		echo "bench: $name round $3: checkpoint $((t1 - t0)) ms, restore $((t2 - t1)) ms, images $(du -sm "$img" | cut -f1) MB, init $rss"
		echo $((t1 - t0)) >>/tmp/bench-$name.ckpt
		echo $((t2 - t1)) >>/tmp/bench-$name.rest
		$bin delete -f "$id" >/dev/null 2>&1
		rm -rf "$img"
	}
	r=1
	while [ $r -le "$rounds" ]; do
		bench_one husk "$runtime" $r
		bench_one runc "$runc" $r
		r=$((r + 1))
	done
	median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
	for name in husk runc; do
		echo "bench: $name median of $rounds: checkpoint $(median /tmp/bench-$name.ckpt) ms, restore $(median /tmp/bench-$name.rest) ms"
	done
	exit 0
fi
[ "$mode" = test ] || fail "unknown mode $mode"

# ---- 1. checkpoint, restore: the counter goes on from where it was ----------------------
bundle /tmp/b1
cd /tmp/b1
# stdio: a pipe to a reader outside the container (as a shim or monitor gives it).
mkfifo /tmp/c1.fifo
cat /tmp/c1.fifo >/tmp/c1.out &
$R run -d c1 </dev/null >/tmp/c1.fifo 2>&1 || fail "run c1"
wait_past /tmp/b1/rootfs/count 5
log=/tmp/img1/dump.log
$R checkpoint --image-path /tmp/img1 c1 || fail "checkpoint c1"
at=$(last /tmp/b1/rootfs/count)
[ "$(status_of c1 2>/dev/null)" = "" ] || fail "c1 still listed after checkpoint: $($R list)"
[ ! -d /sys/fs/cgroup/c1 ] || fail "c1's cgroup left after checkpoint"
sleep 0.5
[ "$(last /tmp/b1/rootfs/count)" = "$at" ] || fail "the counter went on after the checkpoint"
ok "checkpoint stopped c1 at $at"
log=/tmp/img1/restore.log
cat /tmp/c1.fifo >/tmp/c1.restored.out &
# stderr apart: CRIU gives the restored fds 1 and 2, one pipe at dump, our fd 1.
$R restore -d --image-path /tmp/img1 --pid-file /tmp/c1.pid c1 </dev/null >/tmp/c1.fifo 2>/tmp/c1.err ||
	fail "restore c1: $(cat /tmp/c1.err)"
[ "$(status_of c1)" = running ] || fail "restored c1 is $(status_of c1)"
[ "$(cat /tmp/c1.pid)" = "$(pid_of c1)" ] || fail "--pid-file $(cat /tmp/c1.pid) is not state's pid $(pid_of c1)"
wait_past /tmp/b1/rootfs/count $((at + 3))
grep -qx 0 /tmp/b1/rootfs/count || fail "the count file lost its start"
# Counting on from where it was: every number once, in order.
awk -v at="$at" 'NR - 1 != $1 { print "line " NR ": " $1; exit 1 }' /tmp/b1/rootfs/count ||
	fail "the restored counter did not go on from $at"
pid=$(pid_of c1)
grep -q "^0::/c1\$" /proc/"$pid"/cgroup || fail "restored init is in $(cat /proc/$pid/cgroup), not c1's cgroup"
$R exec c1 sh -c 'echo exec-ok' | grep -q exec-ok || fail "exec into the restored c1"
sleep 0.3
grep -q . /tmp/c1.restored.out || fail "the restored counter's stdout did not reach the new pipe"
ok "restored c1 counts on from $at (now $(last /tmp/b1/rootfs/count)), stdout in the new pipe"
$R delete -f c1 || fail "delete restored c1"
nothing_left "after c1"

# ---- 2. --leave-running, then a copy restored beside it under a new name -----------------
bundle /tmp/b2
cd /tmp/b2
$R run -d c2 </dev/null >/dev/null 2>&1 || fail "run c2"
wait_past /tmp/b2/rootfs/count 3
log=/tmp/img2/dump.log
$R checkpoint --leave-running --image-path /tmp/img2 c2 || fail "checkpoint --leave-running c2"
[ "$(status_of c2)" = running ] || fail "c2 is $(status_of c2) after --leave-running"
at=$(last /tmp/b2/rootfs/count)
wait_past /tmp/b2/rootfs/count $((at + 2))
ok "c2 kept running after checkpoint --leave-running"
$R delete -f c2
nothing_left "after c2"

# ---- 3. pre-dump, then a dump on top of it ------------------------------------------------
bundle /tmp/b3
cd /tmp/b3
$R run -d c3 </dev/null >/dev/null 2>&1 || fail "run c3"
wait_past /tmp/b3/rootfs/count 3
log=/tmp/img3/pre/pre-dump.log
$R checkpoint --pre-dump --image-path /tmp/img3/pre c3 || fail "checkpoint --pre-dump c3"
[ "$(status_of c3)" = running ] || fail "c3 is $(status_of c3) after --pre-dump"
log=/tmp/img3/final/dump.log
$R checkpoint --parent-path ../pre --image-path /tmp/img3/final c3 || fail "checkpoint --parent-path c3"
at=$(last /tmp/b3/rootfs/count)
log=/tmp/img3/final/restore.log
$R restore -d --image-path /tmp/img3/final c3 </dev/null >/dev/null 2>&1 || fail "restore c3 from a dump with a parent"
wait_past /tmp/b3/rootfs/count $((at + 2))
ok "pre-dump + dump with --parent-path restores"
$R delete -f c3
nothing_left "after c3"
log=

# ---- 4. bad input: one clear line, nothing left -------------------------------------------
err=$($R checkpoint --image-path /tmp/img4 nosuch 2>&1) && fail "checkpoint of a missing container succeeded"
echo "$err" | grep -q "checkpoint nosuch: container does not exist" || fail "missing container: $err"
cd /tmp/b3
$R create c4 </dev/null >/dev/null 2>&1 || fail "create c4"
err=$($R checkpoint --image-path /tmp/img4 c4 2>&1) && fail "checkpoint of a created container succeeded"
echo "$err" | grep -q "checkpoint c4: container not running" || fail "created container: $err"
$R delete -f c4
err=$($R restore -d --image-path /tmp/nowhere c5 2>&1) && fail "restore from no images succeeded"
echo "$err" | grep -q "restore c5: .*holds no checkpoint" || fail "restore without images: $err"
err=$($R --criu /nonexistent/criu restore -d --image-path /tmp/img1 c5 2>&1) && fail "restore without criu succeeded"
echo "$err" | grep -q "criu not found" || fail "missing criu: $err"
# A criu failure: restore the images of c1 into a bundle whose rootfs lacks the counter's
# files (criu cannot find the binary it mapped).
bundle /tmp/b5
rm -f /tmp/b5/rootfs/bin/busybox
cd /tmp/b5
err=$($R restore -d --image-path /tmp/img1 --work-path /tmp/work5 c5 </dev/null 2>&1) && fail "restore into a broken rootfs succeeded"
echo "$err"
echo "$err" | grep -q "restore c5: criu restore failed: .*(log: /tmp/work5/restore.log)" || fail "criu failure: $err"
[ "$(echo "$err" | wc -l)" = 1 ] || fail "criu failure is not one line: $err"
nothing_left "after the failures"
[ -z "$(ls /tmp/state 2>/dev/null)" ] || fail "state dirs left: $(ls /tmp/state)"
ok "bad input: one line each, nothing left"

echo "checkpoint-guest: all ok"
