#!/usr/bin/env bash
# Rootless `run` of /bin/true: husk-runtime vs crun vs runc --rootless, as the ordinary user
# husk-rootless (scripts/rootless-user.sh), side by side in one hyperfine run.
#   benches/rootless.sh [RUNS]        (as root, which sets up the user; the runs are the user's)
#
# The bundle is `husk-runtime spec --rootless` made by that user (single mapping, no cgroup
# limits). crun refuses this machine's hybrid cgroup layout, so, as in runtime.sh, all three
# run in a private mount namespace without the cgroup2 "unified" mount.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${1:-50}
[ "$(id -u)" = 0 ] || { echo "rootless.sh: run as root (it creates the test user)" >&2; exit 1; }
scripts/deps.sh --bench
scripts/build-runtime.sh
read -r user uid gid < <(scripts/rootless-user.sh | head -n 1)
work=$(mktemp -d /tmp/husk-rl-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
install -m 755 target/release/husk-runtime "$work/husk-runtime"
HUSK_RUNTIME=$work/husk-runtime scripts/make-bundle.sh "$work/bundle" true >/dev/null
rm "$work/bundle/config.json"
chown -R "$uid:$gid" "$work/bundle"
as_user() {
  setpriv --reuid "$uid" --regid "$gid" --init-groups -- \
    env -i PATH="$work:/usr/sbin:/usr/bin:/bin" HOME="/home/$user" XDG_RUNTIME_DIR="/run/user/$uid" "$@"
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
setpriv --reuid $uid --regid $gid --init-groups -- env -i PATH=$work:/usr/sbin:/usr/bin:/bin \
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
