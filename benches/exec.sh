#!/usr/bin/env bash
# `exec` of /bin/true into a running container: husk-runtime vs crun, side by side in one
# hyperfine run.   benches/exec.sh [RUNS]   (as root; installs crun, hyperfine if missing)
#
# crun refuses this machine's hybrid cgroup layout, so everything runs in a private mount
# namespace without the cgroup2 "unified" mount; each runtime execs into its own container.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
scripts/deps.sh --bench
scripts/build-runtime.sh
husk=$PWD/target/release/husk-runtime
work=$(mktemp -d /tmp/husk-bench-exec.XXXXXX)
trap 'rm -rf "$work"' EXIT
HUSK_RUNTIME=$husk scripts/make-bundle.sh "$work/bundle" sleep 1000000 >/dev/null
mkdir -p "$work"/{husk,crun}

cat > "$work/compare.sh" <<SH
set -e
umount -l /sys/fs/cgroup/unified
cd $work/bundle
$husk --root $work/husk run -d bench-exec-husk </dev/null >/dev/null 2>&1
crun --root $work/crun run -d bench-exec-crun </dev/null >/dev/null 2>&1
trap '$husk --root $work/husk delete -f bench-exec-husk; crun --root $work/crun delete -f bench-exec-crun' EXIT
hyperfine -N --warmup 10 --runs $runs --export-json $work/exec.json \\
  -n husk "$husk --root $work/husk exec bench-exec-husk /bin/true" \\
  -n crun "crun --root $work/crun exec bench-exec-crun /bin/true"
SH
unshare -m --propagation private sh "$work/compare.sh"

python3 - "$work/exec.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
for name, r in res.items():
    print(f"  {name:5s} median {r['median']*1000:7.2f} ms  mean {r['mean']*1000:7.2f} ms ± {r['stddev']*1000:5.2f}")
print(f"  husk / crun = {res['husk']['median'] / res['crun']['median']:.3f}  (target <= 0.9)")
PY
