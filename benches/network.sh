#!/usr/bin/env bash
# Bridge networking: `run --rm IMAGE true` on husk's default bridge vs on --network none vs
# `podman run --rm --network bridge` (netavark, the same stack underneath), side by side in
# one hyperfine run; then the time from `run -d -p PORT:80 IMAGE httpd` to the first
# successful request through the published port, husk vs podman.
#   benches/network.sh [RUNS]   (as root; installs podman, hyperfine if missing)
#
# Everything runs in a network namespace this script makes (it re-executes itself under
# `unshare --net`): the bridges, the iptables rules and the published ports of both
# engines live there and go with it, and the host's network is never touched. podman runs
# as in benches/run.sh (cgroupfs manager, file events, its own storage and run dirs, its
# ulimits capped to this machine's hard limits) and keeps its network files in the work
# dir (--network-config-dir).
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir=$(pwd)/benches
if [ -z "${HUSK_BENCH_NETNS:-}" ]; then
  scripts/deps.sh --bench
  cargo build --release -q -p husk
  scripts/build-runtime.sh
  exec unshare --net env HUSK_BENCH_NETNS=1 "$0" "$@"
fi
ip link set lo up
runs=${1:-20}
husk=$PWD/target/release/husk
runtime=$PWD/target/release/husk-runtime
work=$(mktemp -d /var/tmp/husk-bench-net.XXXXXX)
podman_() { "$work/podman.sh" "$@"; }
cleanup() {
  "$husk" --root "$work/husk" rm -f web >/dev/null 2>&1 || true
  podman_ rm -f -t 0 web >/dev/null 2>&1 || true
  umount -R "$work/podman/storage/overlay" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/podman/networks"
cat >"$work/podman.sh" <<SH
#!/bin/sh
CONTAINERS_CONF=$work/containers.conf exec podman --cgroup-manager=cgroupfs --events-backend=file \\
  --root $work/podman/storage --runroot $work/podman/run --tmpdir $work/podman/tmp \\
  --network-config-dir $work/podman/networks "\$@"
SH
chmod +x "$work/podman.sh"
python3 "$bench_dir/podman_conf.py" >"$work/containers.conf"

HUSK_RUNTIME=$runtime scripts/make-image.sh "$work/image.tar" localhost/bench:latest
"$husk" --root "$work/husk" load -q -i "$work/image.tar" >/dev/null
podman_ load -q -i "$work/image.tar" >/dev/null

echo "== run --rm IMAGE true: default bridge vs none vs podman's bridge (in a private netns) =="
img=localhost/bench:latest
hyperfine --warmup 3 --runs "$runs" --export-json "$work/run.json" \
  -n husk-bridge "$husk --root $work/husk run --rm $img true" \
  -n husk-none "$husk --root $work/husk run --rm --network none $img true" \
  -n podman-bridge "$work/podman.sh --runtime runc run --rm --network bridge $img true" \
  -n podman-husk-bridge "$work/podman.sh --runtime $runtime run --rm --network bridge $img true"

# The time from `run -d -p` to the first answer through the published port, N times each.
first_request() { # ENGINE-COMMAND...: milliseconds, one line per run
  local port=18080
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" run -d --name web -p "$port:80" "$img" busybox httpd -f -p 80 -h /etc >/dev/null
    until curl -sf -o /dev/null "http://127.0.0.1:$port/hostname"; do :; done
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000))
    "$@" rm -f web >/dev/null 2>&1
  done
}
echo "== run -d -p PORT:80 httpd until the first request succeeds =="
first_request "$husk" --root "$work/husk" >"$work/first-husk"
first_request "$work/podman.sh" --runtime runc >"$work/first-podman"

python3 - "$work/run.json" "$work/first-husk" "$work/first-podman" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
med = {k: sorted(v["times"])[len(v["times"]) // 2] * 1000 for k, v in r.items()}
for k, m in med.items():
    print(f"  {k:20s} median {m:8.2f} ms")
print(f"  husk-bridge / husk-none          = {med['husk-bridge'] / med['husk-none']:.3f}")
print(f"  husk-bridge / podman-bridge      = {med['husk-bridge'] / med['podman-bridge']:.3f}")
print(f"  husk-bridge / podman-husk-bridge = {med['husk-bridge'] / med['podman-husk-bridge']:.3f}")
def median(path):
    v = sorted(int(l) / 1000 for l in open(path) if l.strip())
    return v[len(v) // 2]
h, p = median(sys.argv[2]), median(sys.argv[3])
print(f"  first request after run -d -p: husk median {h:.1f} ms, podman median {p:.1f} ms, "
      f"husk / podman = {h / p:.3f}")
PY
