#!/usr/bin/env bash
# `run` of /bin/true: husk-runtime vs runc vs crun vs the bare floor, side by side in one run;
# then peak RSS (GNU time's maximum RSS of the runtime and its reaped children) and sizes.
#   benches/runtime.sh [RUNS]        (as root; installs runc, crun, hyperfine if missing)
#
# The floor is what any runtime must at least do: the same namespaces and a chroot,
#   unshare --fork --pid --mount --uts --ipc --net chroot rootfs /bin/true
# crun refuses this machine's hybrid cgroup layout, so the shared comparison runs in a
# private mount namespace without the cgroup2 "unified" mount (all three see pure v1 there).
# Every runtime's state root is on a tmpfs made in that namespace, as /run is on systemd
# hosts: on these VMs /tmp and /run are the root disk, where other jobs' writes sometimes
# hold one unlink in ext4's journal for 100-300 ms (noise for all runtimes, none for the
# floor). A second run compares husk and runc on the real hybrid layout.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${1:-50}
scripts/deps.sh --bench
scripts/build-runtime.sh
husk=$PWD/target/release/husk-runtime
work=$(mktemp -d /tmp/husk-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
HUSK_RUNTIME=$husk scripts/make-bundle.sh "$work/bundle" true >/dev/null
mkdir -p "$work/state"
cd "$work/bundle"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"

# hyperfine runs commands without a shell (-N: no shell's start-up in the numbers), so one
# id serves every run (each run deletes its container). interleave.py runs them through
# sh -c, where $$ gives each run an id of its own.
state=$work/state
cmd() { echo "${1/@RT@/$husk} --root $state/$2 run ${3:-b$2}"; }
cmd_husk=$(cmd @RT@ husk); cmd_runc=$(cmd runc runc); cmd_crun=$(cmd crun crun)
sh_husk=$(cmd @RT@ husk 'b$$'); sh_runc=$(cmd runc runc 'b$$'); sh_crun=$(cmd crun crun 'b$$')
cmd_floor="unshare --fork --pid --mount --uts --ipc --net chroot rootfs /bin/true"

# Run in a private mount namespace with the state roots on a tmpfs; without the cgroup2
# mount unless asked to keep the host's hybrid layout.
private() {
  local unified="umount -l /sys/fs/cgroup/unified;"
  [ "${2:-}" = hybrid ] && unified=""
  unshare -m --propagation private sh -c "set -e; $unified mount -t tmpfs tmpfs $state; mkdir -p $state/husk $state/runc $state/crun; $1"
}

echo "== husk vs runc vs crun vs floor (hyperfine; private mount ns, cgroup v1 only) =="
private "hyperfine -N --warmup 5 --runs $runs --export-json $work/all.json \
  -n husk '$cmd_husk' -n runc '$cmd_runc' -n crun '$cmd_crun' -n floor '$cmd_floor'"
echo "== husk vs runc (host hybrid layout) =="
private "hyperfine -N --warmup 5 --runs $runs --export-json $work/hybrid.json \
  -n husk '$cmd_husk' -n runc '$cmd_runc'" hybrid

echo "== interleaved (husk, runc, crun, floor alternate run by run; private mount ns) =="
private "python3 $repo/benches/interleave.py $runs 5 husk='$sh_husk' runc='$sh_runc' \
  crun='$sh_crun' floor='$cmd_floor'"

echo "== hyperfine summaries =="
python3 - "$work/all.json" "$work/hybrid.json" <<'PY'
import json, sys
for path in sys.argv[1:]:
    res = {r["command"]: r for r in json.load(open(path))["results"]}
    print(f"\n{path.split('/')[-1]}: medians")
    for name, r in res.items():
        print(f"  {name:5s} median {r['median']*1000:7.2f} ms  mean {r['mean']*1000:7.2f} ms ± {r['stddev']*1000:5.2f}")
    h = res["husk"]["median"]
    for other in ("runc", "crun", "floor"):
        if other in res:
            print(f"  husk / {other} = {h / res[other]['median']:.3f}")
PY

echo "== peak RSS of run (GNU time, KiB, median of 9; private mount ns) =="
private "for n in husk runc crun; do
  for i in 1 2 3 4 5 6 7 8 9; do
    case \$n in husk) c='$husk';; *) c=\$n;; esac
    /usr/bin/time -f %M \$c --root $state/\$n run rss\$i 2>&1 >/dev/null | tail -1
  done | sort -n | sed -n 5p | sed \"s/^/  \$n /\"
done"
echo "== binary sizes (bytes) =="
for b in "$husk" "$(command -v runc)" "$(command -v crun)"; do
  echo "  $(stat -c %s "$b") $b"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
