#!/bin/sh
# Run inside the VM by vmtest/checkpoint.sh: $1 husk-runtime, $2 the host's work dir (the
# bundle and image tars), $3 "test" or "bench", $4 husk (test: its container checkpoint and
# restore are section 5) or runc (bench).
set -u
runtime=$1 work=$2 mode=$3 other=$4
fail() { echo "checkpoint-guest: FAIL: $*"; [ -n "${log:-}" ] && [ -f "$log" ] && grep -a -B3 "Error (" "$log" | tail -n 30; exit 1; }
ok() { echo "checkpoint-guest: ok: $* [$(cut -d" " -f1 /proc/uptime)]"; }
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

# ---- 5. husk's container checkpoint/restore: same machine, then an export elsewhere ------
# (few husk commands: each is a large binary started under emulation)
H="$other --root /tmp/hroot"
log=
$H import "$work/bb.tar" localhost/bb >/dev/null || fail "husk import of the busybox tar"
# AppArmor is on in this kernel, without apparmor_parser to load husk's profile.
$H run -d --name ctr --network none --security-opt apparmor=unconfined localhost/bb sh -c \
	'i=0; while :; do echo $i; echo $i >>/count; i=$((i+1)); sleep 0.1; done' >/tmp/ctr.id ||
	fail "husk run -d ctr"
dir=/tmp/hroot/containers/$(cat /tmp/ctr.id)
# Status, Checkpointed, Restored, Pid.
state_of() { $H inspect -f '{{.State.Status}} {{.State.Checkpointed}} {{.State.Restored}} {{.State.Pid}}' "$1"; }
# Every number once, in order, from 0: the counter went on from where it was.
in_order() { awk 'NR - 1 != $1 { print "line " NR ": " $1; exit 1 }' "$1"; }
wait_past "$dir/upper/count" 5
log=$dir/checkpoint/dump.log
$H container checkpoint --keep ctr >/dev/null || fail "husk container checkpoint ctr"
at=$(last "$dir/upper/count")
case $(state_of ctr) in "exited true false 0") ;; *) fail "checkpointed ctr: $(state_of ctr)" ;; esac
$H ps -a --format '{{.Names}} {{.Status}}' | grep -q '^ctr Exited (0)' || fail "ps: $($H ps -a)"
[ "$(last "$dir/upper/count")" = "$at" ] || fail "ctr counted on after its checkpoint"
log=$dir/checkpoint/restore.log
$H container restore ctr >/dev/null || fail "husk container restore ctr"
case $(state_of ctr) in "running false true "*) ;; *) fail "restored ctr: $(state_of ctr)" ;; esac
wait_past "$dir/upper/count" $((at + 2))
in_order "$dir/upper/count" || fail "restored ctr did not count on from $at"
# Its output goes on in the same log: every number once, in order.
$H logs ctr >/tmp/ctr.log1
in_order /tmp/ctr.log1 || fail "husk logs ctr after the restore: $(head -c 300 /tmp/ctr.log1)"
ok "husk container checkpoint/restore: ctr counts on from $at, in the same log"

log=
$H container checkpoint --export /tmp/ctr.tar ctr >/dev/null || fail "husk container checkpoint --export ctr"
at=$(last "$dir/upper/count")
$H rm ctr >/dev/null || fail "husk rm of the checkpointed ctr"
[ ! -e "$dir" ] || fail "rm left $dir"
$H container restore --import /tmp/ctr.tar >/tmp/ctr.id 2>/tmp/ctr.err || fail "restore --import: $(cat /tmp/ctr.err)"
dir=/tmp/hroot/containers/$(cat /tmp/ctr.id)
$H container restore --import /tmp/ctr.tar --name copy2 >/tmp/copy2.id 2>/tmp/ctr.err ||
	fail "restore --import --name copy2: $(cat /tmp/ctr.err)"
dir2=/tmp/hroot/containers/$(cat /tmp/copy2.id)
wait_past "$dir/upper/count" $((at + 2))
wait_past "$dir2/upper/count" $((at + 2))
in_order "$dir/upper/count" || fail "imported ctr did not count on from $at"
in_order "$dir2/upper/count" || fail "copy2 did not count on from $at"
s1=$(state_of ctr) s2=$(state_of copy2)
case "$s1" in "running false true "*) ;; *) fail "imported ctr: $s1" ;; esac
case "$s2" in "running false true "*) ;; *) fail "copy2: $s2" ;; esac
[ "$s1" != "$s2" ] || fail "ctr and copy2 share a pid: $s1"
ok "restore --import: ctr counts on from $at after its rm, copy2 beside it"

$H rm -f ctr copy2 >/dev/null || fail "husk rm -f ctr copy2"
[ -z "$($H ps -aq)" ] || fail "containers left: $($H ps -a)"
[ -z "$(grep /tmp/hroot /proc/self/mountinfo)" ] || fail "mounts left: $(grep /tmp/hroot /proc/self/mountinfo)"
[ -z "$(ls /run/husk-engine 2>/dev/null)" ] || fail "engine states left: $(ls /run/husk-engine)"
rmdir /sys/fs/cgroup/husk-engine 2>/dev/null
nothing_left "after husk's containers"
ok "husk: nothing left"

echo "checkpoint-guest: all ok"
