#!/usr/bin/env bash
# Build benchmark: `husk build` vs `buildah bud --layers` (Debian's buildah) on the same
# Containerfiles, side by side with hyperfine, then the ratios husk / buildah (means):
#   cold     every step built (--no-cache)
#   cached   nothing changed: every step from the cache
#   changed  one copied file changed: the steps from its COPY on built again
# Two Containerfiles:
#   busybox  10 steps (4 COPYs, 4 RUNs) on a busybox-static base image
#   debian   12 steps (3 COPYs, 5 RUNs: dpkg -l, useradd, removing docs, checksums…) on a
#            Debian minbase image debootstrapped locally (scripts/debian-rootfs.sh, cached in
#            target/tmp/debian-rootfs, as tests/debian.rs does); no RUN needs the internet
# Both tools use their own store in a temp dir and RUN steps without network (husk and
# buildah alike: `--network none`, so that nothing is set up in this machine's network
# namespace), and the same base images (imported into husk, pulled into buildah from
# husk's docker-archive). Targets (issue 15): cold <= 0.5, cached <= 0.2.
#
# Needs (Debian): buildah runc busybox-static hyperfine debootstrap python3. Root.
# Usage: [HUSK=PATH] benches/build.sh [RUNS] [busybox|debian|all]   (default 5 all)
set -euo pipefail

RUNS=${1:-5}
WHICH=${2:-all}
HERE=$(cd "$(dirname "$0")/.." && pwd)
for t in buildah hyperfine python3; do
	command -v "$t" >/dev/null || { echo "build.sh: $t is missing (apt-get install buildah hyperfine python3)" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "build.sh: /bin/busybox is missing (apt-get install busybox-static)" >&2; exit 1; }

# HUSK=PATH: that husk binary instead of this checkout's release build.
if [ -z "${HUSK:-}" ]; then
	cargo build --release -q -p husk --manifest-path "$HERE/Cargo.toml"
	HUSK="$HERE/target/release/husk"
fi

WORK=$(mktemp -d /var/tmp/husk-bench-build.XXXXXX)
cleanup() {
	buildah --root "$WORK/bah" --runroot "$WORK/bah-run" rm --all >/dev/null 2>&1 || true
	umount -R "$WORK/bah" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
H="$HUSK --root $WORK/husk"
B="buildah --root $WORK/bah --runroot $WORK/bah-run --storage-driver overlay"
RUNC=$(command -v runc)

# A base image from a root filesystem tar: into husk, and into buildah through husk's
# docker-archive.
base_image() { # NAME TAR
	$H import "$2" "$1" >/dev/null
	$H save -o "$WORK/archive.tar" "$1"
	$B pull -q "docker-archive:$WORK/archive.tar" >/dev/null
	rm -f "$WORK/archive.tar"
}

husk_build() { $H build -q --network none "$@" "$CTX" >/dev/null; }
# crun refuses this machine's hybrid cgroup layout: buildah runs RUN steps with runc.
bah_build() { $B bud -q --runtime "$RUNC" --layers --network none --pull-never "$@" -f "$CTX/Containerfile" "$CTX" >/dev/null 2>&1; }
export -f husk_build bah_build
export H B RUNC

# hyperfine's JSON → "husk MEAN s, buildah MEAN s, husk/buildah RATIO"
ratio() { # JSON LABEL TARGET
	python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
h, b = r["husk"], r["buildah"]
q = h["mean"] / b["mean"]
target = float(sys.argv[3]) if sys.argv[3] else None
verdict = "" if target is None else ("  (target <= %.1f: %s)" % (target, "met" if q <= target else "MISSED"))
print("%-16s husk %8.3f s ± %.3f   buildah %8.3f s ± %.3f   husk/buildah %.3f%s" % (
    sys.argv[2], h["mean"], h["stddev"] or 0, b["mean"], b["stddev"] or 0, q, verdict))
EOF
}

# The three measurements for the Containerfile in $CTX; $CTX/changing is the file one
# rebuild changes.
bench() { # NAME
	local n=$1
	export CTX
	echo "== $n: cold (--no-cache)"
	hyperfine -N --style basic -w 1 -r "$RUNS" --export-json "$WORK/$n-cold.json" \
		-n husk "bash -c 'husk_build --no-cache'" \
		-n buildah "bash -c 'bah_build --no-cache'"
	echo "== $n: cached (nothing changed)"
	husk_build
	bah_build
	hyperfine -N --style basic -w 1 -r "$RUNS" --export-json "$WORK/$n-cached.json" \
		-n husk "bash -c husk_build" \
		-n buildah "bash -c bah_build"
	echo "== $n: one copied file changed"
	hyperfine -N --style basic -w 1 -r "$RUNS" --export-json "$WORK/$n-changed.json" \
		--prepare "bash -c 'date +%s%N > $CTX/changing'" \
		-n husk "bash -c husk_build" \
		-n buildah "bash -c bah_build"
	SUMMARY+="$(ratio "$WORK/$n-cold.json" "$n cold" 0.5)"$'\n'
	SUMMARY+="$(ratio "$WORK/$n-cached.json" "$n cached" 0.2)"$'\n'
	SUMMARY+="$(ratio "$WORK/$n-changed.json" "$n changed" "")"$'\n'
}
SUMMARY=

if [ "$WHICH" = all ] || [ "$WHICH" = busybox ]; then
	echo "== base image: busybox"
	mkdir -p "$WORK/rfs/bin" "$WORK/rfs/etc" "$WORK/rfs/tmp"
	cp /bin/busybox "$WORK/rfs/bin/"
	for l in sh echo cat ls mkdir cp sha256sum wc; do ln -s busybox "$WORK/rfs/bin/$l"; done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$WORK/rfs/etc/passwd"
	echo 'root:x:0:' >"$WORK/rfs/etc/group"
	tar -C "$WORK/rfs" -cf "$WORK/base.tar" .
	base_image localhost/bench-base:latest "$WORK/base.tar"
	rm -rf "$WORK/rfs" "$WORK/base.tar"

	echo "== busybox context: 10 steps, 4 COPYs, 4 RUNs"
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
	bench busybox
fi

if [ "$WHICH" = all ] || [ "$WHICH" = debian ]; then
	echo "== base image: Debian minbase (scripts/debian-rootfs.sh)"
	DEB="$HERE/target/tmp/debian-rootfs"
	"$HERE/scripts/debian-rootfs.sh" "$DEB"
	# What debootstrap leaves that an image would not ship.
	tar -C "$DEB" --exclude=./debootstrap --exclude=./.debian-rootfs-done -cf "$WORK/debian.tar" .
	base_image localhost/bench-debian:latest "$WORK/debian.tar"
	rm -f "$WORK/debian.tar"

	echo "== debian context: 12 steps, 3 COPYs, 5 RUNs"
	CTX="$WORK/ctx-debian"
	mkdir -p "$CTX/src"
	for i in $(seq 1 200); do head -c 10000 /dev/urandom >"$CTX/src/f$i"; done
	printf 'name=bench\n' >"$CTX/app.conf"
	echo 1 >"$CTX/changing"
	cat >"$CTX/Containerfile" <<'EOF'
FROM localhost/bench-debian:latest
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN dpkg -l > /var/lib/dpkg-list && dpkg -l | wc -l > /var/lib/dpkg-count
RUN rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* && find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
RUN useradd --create-home --uid 1000 app && mkdir -p /opt/app && chown app:app /opt/app
COPY --chown=app:app src /opt/app/src
RUN cd /opt/app && sha256sum src/* > sums && du -sh src > size
COPY app.conf /etc/app.conf
COPY changing /opt/app/changing
RUN wc -c /opt/app/changing > /opt/app/changing.size && date -u +%F > /opt/app/built
WORKDIR /opt/app
USER app
CMD ["bash"]
EOF
	bench debian
fi

echo
echo "== husk / buildah (means; $RUNS runs each, release build)"
printf '%s' "$SUMMARY"
