#!/usr/bin/env bash
# `run` of /bin/true: husk-runtime vs runc vs crun, side by side in one hyperfine run.
#   benches/runtime.sh [RUNS]        (as root; installs runc, crun, hyperfine if missing)
#
# crun refuses this machine's hybrid cgroup layout, so the shared comparison runs in a
# private mount namespace without the cgroup2 "unified" mount (all three see pure v1 there).
# A second run compares husk and runc on the real hybrid layout.
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
mkdir -p "$work"/{husk,runc,crun}
cd "$work/bundle"

# $$ is the per-run shell's pid: a fresh container id each run.
cmd_husk="$husk --root $work/husk run b\$\$"
cmd_runc="runc --root $work/runc run b\$\$"
cmd_crun="crun --root $work/crun run b\$\$"

cat > "$work/compare.sh" <<SH
set -e
umount -l /sys/fs/cgroup/unified
hyperfine -N 2>/dev/null >/dev/null || true
hyperfine --warmup 5 --runs $runs --export-json $work/all.json \
  -n husk "$cmd_husk" -n runc "$cmd_runc" -n crun "$cmd_crun"
SH
echo "== husk vs runc vs crun (private mount ns, cgroup v1 only) =="
unshare -m --propagation private sh "$work/compare.sh"
echo "== husk vs runc (host hybrid layout) =="
hyperfine --warmup 5 --runs "$runs" --export-json "$work/hybrid.json" -n husk "$cmd_husk" -n runc "$cmd_runc"

echo "== interleaved (husk, runc, crun alternate run by run; private mount ns, v1 only) =="
cat > "$work/interleave.sh" <<SH
set -e
umount -l /sys/fs/cgroup/unified
python3 $repo/benches/interleave.py $runs 5 husk="$cmd_husk" runc="$cmd_runc" crun="$cmd_crun"
SH
unshare -m --propagation private sh "$work/interleave.sh"
echo "== hyperfine summaries =="
python3 - "$work/all.json" "$work/hybrid.json" <<'PY'
import json, sys
for path in sys.argv[1:]:
    res = {r["command"]: r for r in json.load(open(path))["results"]}
    print(f"\n{path.split('/')[-1]}: medians")
    for name, r in res.items():
        print(f"  {name:5s} median {r['median']*1000:7.2f} ms  mean {r['mean']*1000:7.2f} ms ± {r['stddev']*1000:5.2f}")
    h = res["husk"]["median"]
    for other in ("runc", "crun"):
        if other in res:
            print(f"  husk / {other} = {h / res[other]['median']:.3f}")
PY
