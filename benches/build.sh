#!/usr/bin/env bash
# Build benchmark: `husk build` vs `buildah bud --layers` (Debian's buildah) on the same
# 10-step busybox Containerfile (COPYs and RUNs), side by side with hyperfine:
#   cold     every step built (--no-cache)
#   cached   nothing changed: every step from the cache
#   changed  one copied file changed: the steps from its COPY on built again
# Both use their own store in a temp dir, RUN steps without network, the same base image
# (busybox-static, imported into husk and pulled into buildah from husk's docker-archive).
#
# Needs (Debian): buildah runc busybox-static hyperfine. Root.
# Usage: benches/build.sh [RUNS]   (default 5)
set -euo pipefail

RUNS=${1:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
for t in buildah hyperfine; do
	command -v "$t" >/dev/null || { echo "build.sh: $t is missing (apt-get install buildah hyperfine)" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "build.sh: /bin/busybox is missing (apt-get install busybox-static)" >&2; exit 1; }

cargo build --release -q -p husk --manifest-path "$HERE/Cargo.toml"
HUSK="$HERE/target/release/husk"

WORK=$(mktemp -d /var/tmp/husk-bench-build.XXXXXX)
cleanup() {
	buildah --root "$WORK/bah" --runroot "$WORK/bah-run" rm --all >/dev/null 2>&1 || true
	umount -R "$WORK/bah" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
H="$HUSK --root $WORK/husk"
B="buildah --root $WORK/bah --runroot $WORK/bah-run --storage-driver overlay"

echo "== base image: busybox"
mkdir -p "$WORK/rfs/bin" "$WORK/rfs/etc" "$WORK/rfs/tmp"
cp /bin/busybox "$WORK/rfs/bin/"
for l in sh echo cat ls mkdir cp sha256sum wc; do ln -s busybox "$WORK/rfs/bin/$l"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$WORK/rfs/etc/passwd"
echo 'root:x:0:' >"$WORK/rfs/etc/group"
tar -C "$WORK/rfs" -cf "$WORK/base.tar" .
$H import "$WORK/base.tar" localhost/bench-base:latest >/dev/null
$H save -o "$WORK/base-archive.tar" localhost/bench-base:latest
$B pull -q "docker-archive:$WORK/base-archive.tar" >/dev/null

echo "== context: 10 steps, 4 COPYs, 4 RUNs"
CTX="$WORK/ctx"
mkdir -p "$CTX/src"
for i in $(seq 1 50); do head -c 20000 /dev/urandom >"$CTX/src/f$i"; done
echo 1 >"$CTX/conf"
echo 1 >"$CTX/changing"
cat >"$CTX/Containerfile" <<'EOF'
FROM localhost/bench-base:latest
ENV APP=/app
COPY src /app/src
RUN cat /app/src/* | sha256sum > /app/sum
COPY conf /app/conf
RUN mkdir -p /app/out && cp /app/conf /app/out/
COPY changing /app/changing
RUN wc -c /app/changing > /app/size
LABEL bench=husk
RUN ls /app > /app/list
EOF

husk_build() { $H build -q "$@" "$CTX" >/dev/null; }
# crun refuses this machine's hybrid cgroup layout: buildah runs RUN steps with runc.
bah_build() { $B bud -q --runtime "$RUNC" --layers --network none --pull-never "$@" -f "$CTX/Containerfile" "$CTX" >/dev/null 2>&1; }
export -f husk_build bah_build
RUNC=$(command -v runc)
export H B CTX RUNC

echo "== cold (--no-cache)"
hyperfine -N --style basic -w 1 -r "$RUNS" \
	-n husk "bash -c 'husk_build --no-cache'" \
	-n buildah "bash -c 'bah_build --no-cache'"
echo "== cached (nothing changed)"
husk_build; bah_build
hyperfine -N --style basic -w 1 -r "$RUNS" \
	-n husk "bash -c husk_build" \
	-n buildah "bash -c bah_build"
echo "== one copied file changed"
hyperfine -N --style basic -w 1 -r "$RUNS" \
	--prepare "bash -c 'date +%s%N > $CTX/changing'" \
	-n husk "bash -c husk_build" \
	-n buildah "bash -c bah_build"
