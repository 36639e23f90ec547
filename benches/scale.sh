#!/usr/bin/env bash
# Scale, side by side in one run:
#   (a) N (200) containers created at once, then started at once, then deleted at once:
#       husk-runtime vs runc vs crun (each with its own --root);
#   (b) N `create`, then N `run -d`, at once through the engine: husk vs podman;
#   (c) EXECS (1000) `exec /bin/true` in a row into one container: husk-runtime vs runc vs
#       crun, and `husk exec` vs `podman exec` (p50/p99 of the first and the last 100);
#   (d) the memory of MONITORS (100) detached containers' monitors: husk-monitor vs conmon
#       (total Pss and Rss from /proc/PID/smaps_rollup).
#   benches/scale.sh     (as root; N=, EXECS=, MONITORS= override the counts)
# Then it checks that nothing is left: no state dir, cgroup, mount or process of any of them.
#
# As in benches/runtime.sh, the runtimes run in a private mount namespace without the
# cgroup2 "unified" mount (crun refuses this machine's hybrid layout) with their state roots
# on a tmpfs; podman runs with runc (crun fails here), the cgroupfs manager, file events and
# network none, in stores of its own (benches/run.sh); husk in a store of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir=$(pwd)/benches
repo=$PWD
N=${N:-200}
EXECS=${EXECS:-1000}
MONITORS=${MONITORS:-100}
scripts/deps.sh --bench
cargo build --release -q -p husk
scripts/build-runtime.sh
husk=$PWD/target/release/husk
runtime=$PWD/target/release/husk-runtime
work=$(mktemp -d /var/tmp/husk-bench-scale.XXXXXX)
tag=scale$$
export SCALE_OUT=$work/results
drive() { python3 "$repo/benches/scale.py" "$@" || true; }
podman_() { "$work/podman.sh" "$@"; }
husk_() { "$husk" --root "$work/husk" "$@"; }
load() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"; }

# The engines' containers, noted before they are removed, for the leak check at the end.
note_ids() {
  ls "$work/husk/containers" 2>/dev/null >>"$work/husk-ids" || true
  podman_ ps -aq --no-trunc 2>/dev/null >>"$work/podman-ids" || true
}
remove_all() {
  note_ids
  husk_ ps -aq 2>/dev/null | xargs -r "$husk" --root "$work/husk" rm -f >/dev/null 2>&1 || true
  podman_ rm -a -f -t 0 >/dev/null 2>&1 || true
}
cleanup() {
  set +e
  remove_all
  umount -R "$work/podman/storage/overlay" 2>/dev/null
  umount -R "$work/husk" 2>/dev/null
  # Checked after everything is removed: whatever is left of ours is a leak.
  leaks=$(
    for id in $(sort -u "$work/husk-ids" "$work/podman-ids" 2>/dev/null); do
      ls -d /run/husk-engine/"$id" /sys/fs/cgroup/*/husk-engine/"$id" \
        /sys/fs/cgroup/*/libpod_parent/libpod-"$id" 2>/dev/null
    done
    ls -d /sys/fs/cgroup/*/"$tag"* /sys/fs/cgroup/*/*/"$tag"* 2>/dev/null
    grep -F "$work" /proc/self/mountinfo | cut -d' ' -f5
    pgrep -af -- "$work" | grep -v pgrep
  )
  rm -rf "$work"
  if [ -n "$leaks" ]; then
    echo "== LEFT BEHIND ==" && echo "$leaks"
  else
    echo "== nothing left behind (state dirs, cgroups, mounts, processes) =="
  fi
}
trap cleanup EXIT

mkdir -p "$work/state"
HUSK_RUNTIME=$runtime scripts/make-bundle.sh "$work/bundle" sleep 1000 >/dev/null
load | tee "$work/load-before"

# (a) and (c), runtimes: in a private mount namespace, state roots on a tmpfs.
cat >"$work/runtimes.sh" <<SH
set -e
umount -l /sys/fs/cgroup/unified
mount -t tmpfs tmpfs $work/state
cd $work/bundle
drive() { python3 $repo/benches/scale.py "\$@" || true; }
rt() { case \$1 in husk) echo $runtime;; *) echo \$1;; esac; }
label() { case \$1 in husk) echo husk-runtime;; *) echo \$1;; esac; }
echo "== (a) $N containers at once: create, then start, then delete -f =="
for r in husk runc crun; do
  c="\$(rt \$r) --root $work/state/\$r"
  drive concurrent "\$(label \$r) create" $N "\$c create --bundle $work/bundle $tag-\$r-{i}"
  drive concurrent "\$(label \$r) start" $N "\$c start $tag-\$r-{i}"
  drive concurrent "\$(label \$r) delete -f" $N "\$c delete -f $tag-\$r-{i}"
  left=\$(ls $work/state/\$r | wc -l)
  [ "\$left" = 0 ] || echo "  \$r: \$left state dirs left"
done
echo "== (c) $EXECS exec /bin/true in a row into one container =="
for r in husk runc crun; do
  c="\$(rt \$r) --root $work/state/\$r"
  \$c run -d $tag-\$r-exec </dev/null >/dev/null 2>&1
  drive sequential "\$(label \$r) exec" $EXECS "\$c exec $tag-\$r-exec /bin/true"
  \$c delete -f $tag-\$r-exec
done
SH
unshare -m --propagation private sh "$work/runtimes.sh"
load

# (b), (c) and (d), engines.
cat >"$work/podman.sh" <<SH
#!/bin/sh
CONTAINERS_CONF=$work/containers.conf exec podman --runtime runc --cgroup-manager=cgroupfs \\
  --events-backend=file --root $work/podman/storage --runroot $work/podman/run \\
  --tmpdir $work/podman/tmp "\$@"
SH
chmod +x "$work/podman.sh"
python3 "$bench_dir/podman_conf.py" >"$work/containers.conf"
HUSK_RUNTIME=$runtime scripts/make-image.sh "$work/image.tar" localhost/bench:latest
husk_ load -q -i "$work/image.tar" >/dev/null
podman_ load -q -i "$work/image.tar" >/dev/null
img="--network none localhost/bench:latest"

echo "== (b) $N containers at once through the engine =="
drive concurrent "husk create" "$N" "$husk --root $work/husk create --name $tag-c{i} $img sleep 1000"
drive concurrent "podman create" "$N" "$work/podman.sh create --name $tag-c{i} $img sleep 1000"
remove_all
drive concurrent "husk run -d" "$N" "$husk --root $work/husk run -d --name $tag-r{i} $img sleep 1000"
drive concurrent "podman run -d" "$N" "$work/podman.sh run -d --name $tag-r{i} $img sleep 1000"
echo "  running: husk $(husk_ ps -q | wc -l), podman $(podman_ ps -q | wc -l)"
remove_all
load

echo "== (c) $EXECS exec true in a row through the engine =="
husk_ run -d --name "$tag-exec" $img sleep 1000 >/dev/null
podman_ run -d --name "$tag-exec" $img sleep 1000 >/dev/null
drive sequential "husk exec" "$EXECS" "$husk --root $work/husk exec $tag-exec true"
drive sequential "podman exec" "$EXECS" "$work/podman.sh exec $tag-exec true"
remove_all
load

echo "== (d) the monitors of $MONITORS detached containers =="
drive sequential "husk run -d" "$MONITORS" "$husk --root $work/husk run -d --name $tag-m{i} $img sleep 1000"
drive sequential "podman run -d" "$MONITORS" "$work/podman.sh run -d --name $tag-m{i} $img sleep 1000"
mons=$(python3 -c 'import json,sys,glob
print(" ".join(str(json.load(open(f))["monitor_pid"]) for f in glob.glob(sys.argv[1] + "/containers/*/container.json")))' "$work/husk")
conmons=$(podman_ ps -q | xargs "$work/podman.sh" inspect -f '{{.State.ConmonPid}}' | tr '\n' ' ')
drive memory "husk-monitor" $mons
drive memory "conmon" $conmons
remove_all
load | tee "$work/load-after"

echo "== summary: husk / peer (medians and p99; lower is better) =="
python3 - "$SCALE_OUT" <<'PY'
import sys
res = {}
for line in open(sys.argv[1]):
    name, mode, v = line.rstrip("\n").split("\t")
    res[(name, mode)] = [float(x) for x in v.split()]
pairs = [("husk-runtime create", "runc create"), ("husk-runtime create", "crun create"),
         ("husk-runtime start", "runc start"), ("husk-runtime start", "crun start"),
         ("husk-runtime delete -f", "runc delete -f"), ("husk-runtime delete -f", "crun delete -f"),
         ("husk create", "podman create"), ("husk run -d", "podman run -d"),
         ("husk-runtime exec", "runc exec"), ("husk-runtime exec", "crun exec"), ("husk exec", "podman exec"),
         ("husk-monitor", "conmon")]
for a, b in pairs:
    for mode in ("concurrent", "sequential", "memory"):
        x, y = res.get((a, mode)), res.get((b, mode))
        if not x or not y:
            continue
        if mode == "concurrent":
            print(f"  {a:22s} / {b:15s} {mode}: wall {x[1] / y[1]:.2f}  p50 {x[2] / y[2]:.2f}  p99 {x[3] / y[3]:.2f}  failures {x[0]:.0f} vs {y[0]:.0f}")
        elif mode == "sequential":
            print(f"  {a:22s} / {b:15s} {mode}: p50 first {x[1] / y[1]:.2f} last {x[3] / y[3]:.2f}  p99 first {x[2] / y[2]:.2f} last {x[4] / y[4]:.2f}")
        else:
            print(f"  {a:22s} / {b:15s} memory: Pss {x[1] / y[1]:.2f}  Rss {x[2] / y[2]:.2f}")
PY
