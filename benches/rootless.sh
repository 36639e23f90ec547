#!/usr/bin/env bash
# Rootless, as the ordinary user husk-rootless (scripts/rootless-user.sh), side by side in
# one hyperfine run each:
#   1. `run` of /bin/true: husk-runtime vs crun vs runc --rootless;
#   2. `run --rm IMAGE true` from the local store: husk vs rootless podman (with crun, runc).
#   benches/rootless.sh [RUNS]        (as root, which sets up the user; the runs are the user's)
#
# The bundle is `husk-runtime spec --rootless` made by that user (single mapping, no cgroup
# limits). crun refuses this machine's hybrid cgroup layout, so, as in runtime.sh, all three
# run in a private mount namespace without the cgroup2 "unified" mount.
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir=$(pwd)/benches
repo=$PWD
runs=${1:-50}
[ "$(id -u)" = 0 ] || { echo "rootless.sh: run as root (it creates the test user)" >&2; exit 1; }
scripts/deps.sh --bench
scripts/build-runtime.sh
cargo build --release -q -p husk
read -r user uid gid < <(scripts/rootless-user.sh | head -n 1)
work=$(mktemp -d /tmp/husk-rl-bench.XXXXXX)
cleanup() {
  # The user's namespace holders (husk's and podman's pause processes) go with the bench;
  # the user exists for tests and benchmarks only.
  pkill -KILL -u "$uid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
install -d -m 755 "$work/bin"
install -m 755 target/release/husk-runtime target/release/husk "$work/bin/"
HUSK_RUNTIME=$work/bin/husk-runtime scripts/make-bundle.sh "$work/bundle" true >/dev/null
rm "$work/bundle/config.json"
chown -R "$uid:$gid" "$work/bundle"
as_user() {
  setpriv --reuid "$uid" --regid "$gid" --init-groups -- \
    env -i PATH="$work/bin:/usr/sbin:/usr/bin:/bin" HOME="/home/$user" XDG_RUNTIME_DIR="/run/user/$uid" "$@"
}
(cd "$work/bundle" && as_user husk-runtime spec --rootless)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
mkdir -p "$work"/{husk,runc,crun}
chown "$uid:$gid" "$work"/{husk,runc,crun}

# $$ is the per-run shell's pid: a fresh container id each run. husk warns once per run that
# a v1 host gives rootless containers no cgroup; that line goes to /dev/null with the rest.
cat > "$work/compare.sh" <<SH
set -e
umount -l /sys/fs/cgroup/unified 2>/dev/null || true
cd $work/bundle
setpriv --reuid $uid --regid $gid --init-groups -- env -i PATH=$work/bin:/usr/sbin:/usr/bin:/bin \
  HOME=/home/$user XDG_RUNTIME_DIR=/run/user/$uid \
  hyperfine --warmup 5 --runs $runs --export-json $work/husk/all.json \
  -n husk "husk-runtime --root $work/husk run b\\\$\\\$" \
  -n crun "crun --root $work/crun run b\\\$\\\$" \
  -n runc "runc --rootless true --root $work/runc run b\\\$\\\$"
SH
echo "== rootless: husk vs crun vs runc (user $user, private mount ns, cgroup v1 only) =="
unshare -m --propagation private sh "$work/compare.sh"
python3 - "$work/husk/all.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
for name, r in res.items():
    print(f"  {name:5s} median {r['median']*1000:7.2f} ms  mean {r['mean']*1000:7.2f} ms ± {r['stddev']*1000:5.2f}")
h = res["husk"]["median"]
for other in ("crun", "runc"):
    print(f"  husk / {other} = {h / res[other]['median']:.3f}")
PY

echo "== rootless: husk run --rm IMAGE true vs podman run --rm (user $user, store on disk) =="
# The image: the bundle's busybox rootfs as a one-layer docker-archive, loaded into both.
tar -C "$work/bundle/rootfs" -cf "$work/layer.tar" .
python3 - "$work" <<'PY'
import hashlib, io, json, sys, tarfile
w = sys.argv[1]
diff = hashlib.sha256(open(f"{w}/layer.tar", "rb").read()).hexdigest()
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]}}).encode()
cid = hashlib.sha256(cfg).hexdigest()
with tarfile.open(f"{w}/image.tar", "w") as t:
    t.add(f"{w}/layer.tar", "layer/layer.tar")
    for name, data in [(f"{cid}.json", cfg), ("manifest.json", json.dumps([{"Config": f"{cid}.json",
                        "RepoTags": ["localhost/bench:latest"], "Layers": ["layer/layer.tar"]}]).encode())]:
        info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
PY
chmod 644 "$work/image.tar"
mkdir -p "$work/home/run"
chown "$uid:$gid" "$work/home" "$work/home/run"
chmod 700 "$work/home/run"
python3 "$bench_dir/podman_conf.py" > "$work/home/containers.conf"
podman="podman --cgroup-manager=cgroupfs --events-backend=file --root $work/home/podman --runroot $work/home/podman-run"
# crun refuses the hybrid layout here as well: the same private mount namespace as above.
cat > "$work/engine.sh" <<SH
set -e
umount -l /sys/fs/cgroup/unified 2>/dev/null || true
cd $work/home
run() {
  setpriv --reuid $uid --regid $gid --init-groups -- env -i PATH=$work/bin:/usr/sbin:/usr/bin:/bin \\
    HOME=/home/$user XDG_RUNTIME_DIR=$work/home/run XDG_DATA_HOME=$work/home/data \\
    XDG_CONFIG_HOME=$work/home/config CONTAINERS_CONF=$work/home/containers.conf "\$@"
}
run husk load -q -i $work/image.tar >/dev/null
run $podman load -q -i $work/image.tar >/dev/null 2>&1
run hyperfine --warmup 3 --runs $runs --export-json $work/home/engine.json \\
  -n husk "husk run --rm localhost/bench:latest true" \\
  -n podman-crun "$podman --runtime crun run --rm --network none localhost/bench:latest true" \\
  -n podman-runc "$podman --runtime runc run --rm --network none localhost/bench:latest true"
SH
unshare -m --propagation private sh "$work/engine.sh"
python3 - "$work/home/engine.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
for name, r in res.items():
    print(f"  {name:12s} median {r['median']*1000:7.2f} ms")
h = res["husk"]["median"]
for other in ("podman-crun", "podman-runc"):
    print(f"  husk / {other} = {h / res[other]['median']:.3f}")
PY
