#!/usr/bin/env bash
# The first `-v NAME:/data` mount of a new volume, which copies the image's /data (10,000
# small files in 100 directories, owned by 1000:1000) into it: husk vs podman, side by side
# in one hyperfine run. Before each run the volume is removed (--prepare), so every run is
# a first mount with a full copy-up. The same runs without -v are the baseline, so the
# copy-up's own cost shows.
#   [BENCH_DIR=DIR] benches/volume.sh [RUNS]   (as root; installs podman, hyperfine if missing)
#
# The image is the busybox-static rootfs of scripts/make-bundle.sh plus /data, imported
# into both stores from one tar. podman runs with runc (crun refuses this machine's hybrid
# cgroup layout), the cgroupfs manager, file events and network none, its ulimits capped
# to this machine's hard limits (as benches/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir=$(pwd)/benches
runs=${1:-10}
scripts/deps.sh --bench
cargo build --release -q -p husk
husk=$PWD/target/release/husk
# BENCH_DIR: where both stores (and so the volumes) live; a tmpfs there takes the disk
# out of the measurement (on a shared, busy disk creating 10k files varies tenfold).
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/husk-vol.XXXXXX")
podman_() { "$work/podman.sh" "$@"; }
cleanup() {
  "$husk" --root "$work/husk" volume rm -f v >/dev/null 2>&1 || true
  podman_ volume rm -f v >/dev/null 2>&1 || true
  umount -R "$work/podman/storage/overlay" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work"
cat >"$work/podman.sh" <<SH
#!/bin/sh
CONTAINERS_CONF=$work/containers.conf exec podman --runtime runc --cgroup-manager=cgroupfs \\
  --events-backend=file --root $work/podman/storage --runroot $work/podman/run --tmpdir $work/podman/tmp "\$@"
SH
chmod +x "$work/podman.sh"
python3 "$bench_dir/podman_conf.py" >"$work/containers.conf"

# busybox + /data: 100 dirs of 100 files of 64 bytes, one tar layer for both stores.
scripts/make-bundle.sh "$work/bundle" true >/dev/null
python3 - "$work/bundle/rootfs/data" <<'PY'
import os, sys
root = sys.argv[1]
os.makedirs(root)
for d in range(100):
    p = f"{root}/d{d}"
    os.mkdir(p)
    for f in range(100):
        with open(f"{p}/f{f}", "w") as fh:
            fh.write(f"{d}/{f}".ljust(63) + "\n")
for dirpath, dirs, files in os.walk(root):
    for n in dirs + files:
        os.chown(os.path.join(dirpath, n), 1000, 1000)
os.chown(root, 1000, 1000)
PY
tar -C "$work/bundle/rootfs" -cf "$work/layer.tar" .
"$husk" --root "$work/husk" import -c 'ENV PATH=/bin' "$work/layer.tar" localhost/voldata:latest >/dev/null
podman_ import -q -c 'ENV PATH=/bin' "$work/layer.tar" localhost/voldata:latest >/dev/null

# Both copy the whole directory on the first mount (checked once, not timed).
check='n=0; for d in /data/d*; do set -- $d/*; n=$((n + $#)); done; echo $n $(stat -c %u:%g /data/d0/f0)'
for tool in "$husk --root $work/husk" "$work/podman.sh"; do
  $tool volume rm -f v >/dev/null 2>&1 || true
  got=$($tool run --rm --network none -v v:/data localhost/voldata:latest sh -c "$check")
  [ "$got" = "10000 1000:1000" ] || { echo "copy-up check failed for $tool: $got" >&2; exit 1; }
done

img=localhost/voldata:latest
# hyperfine pairs the i-th --prepare with the i-th command.
hyperfine --warmup 2 --runs "$runs" --export-json "$work/volume.json" \
  --prepare "$husk --root $work/husk volume rm -f v" \
  --prepare "$work/podman.sh volume rm -f v" \
  --prepare true --prepare true \
  -n husk-first-mount "$husk --root $work/husk run --rm --network none -v v:/data $img true" \
  -n podman-first-mount "$work/podman.sh run --rm --network none -v v:/data $img true" \
  -n husk-no-volume "$husk --root $work/husk run --rm --network none $img true" \
  -n podman-no-volume "$work/podman.sh run --rm --network none $img true"

python3 - "$work/volume.json" <<'PY'
import json, sys
r = {x["command"]: sorted(x["times"]) for x in json.load(open(sys.argv[1]))["results"]}
med = {k: v[len(v) // 2] * 1000 for k, v in r.items()}
for k, m in med.items():
    print(f"  {k:20s} median {m:8.1f} ms")
for t in ("husk", "podman"):
    print(f"  {t} copy-up of 10k files: {med[t + '-first-mount'] - med[t + '-no-volume']:.1f} ms")
print(f"  husk / podman, first mount = {med['husk-first-mount'] / med['podman-first-mount']:.3f}")
PY
