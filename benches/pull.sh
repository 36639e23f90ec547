#!/usr/bin/env bash
# Pull + unpack benchmark: husk vs `skopeo copy` + `umoci unpack` (and `podman pull` when
# installed), from a docker-registry on 127.0.0.1, side by side with hyperfine; then the
# unpack throughput of one large layer, gzip and zstd, against the decode speed alone.
# The machine's load average is printed before and after: on a shared machine wall times
# move with it, so compare only figures from one run.
#
# Needs (Debian): docker-registry skopeo umoci hyperfine python3 (podman optional). Root.
# Usage: benches/pull.sh [RUNS]   (default 5)
#        HUSK_BASELINE=/path/to/an/older/husk benches/pull.sh   adds its rows, for A/B
#        HUSK=/path/to/husk benches/pull.sh                      that binary, no build
set -euo pipefail

RUNS=${1:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
for t in docker-registry skopeo umoci hyperfine python3 zstd; do
	command -v "$t" >/dev/null || { echo "pull.sh: $t is missing (apt-get install docker-registry skopeo umoci hyperfine zstd)" >&2; exit 1; }
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# HUSK=/path/to/husk uses that binary as it is (no build)
if [ -z "${HUSK:-}" ]; then
	cargo build --release -q -p husk --manifest-path "$HERE/Cargo.toml"
	HUSK="$HERE/target/release/husk"
fi

WORK=$(mktemp -d /var/tmp/husk-bench.XXXXXX)
REG_PID=
cleanup() {
	[ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
REG="127.0.0.1:$PORT"
cat >"$WORK/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REG
YML
docker-registry serve "$WORK/registry.yml" >/dev/null 2>"$WORK/registry.log" &
REG_PID=$!
for _ in $(seq 100); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))" 2>/dev/null && break
	sleep 0.1
done

echo "== building a 4-layer image (>= 100 MB uncompressed, gzip) in an OCI layout"
python3 - "$WORK" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile, time
work = sys.argv[1]
layout = os.path.join(work, "layout")
blobs = os.path.join(layout, "blobs", "sha256")
os.makedirs(blobs)
rng = random.Random(42)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(4000)]

def text(n):
    out = bytearray()
    while len(out) < n:
        out += b" ".join(rng.choice(words) for _ in range(16)) + b"\n"
    return bytes(out[:n])

def blob(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return d

layers, diff_ids = [], []
for li in range(4):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        total = 0
        i = 0
        while total < 30 * 1000 * 1000:
            # many small files (like /usr), some large ones; mostly text, some binary
            size = rng.choice([200, 1500, 4000, 12000, 60000, 300000, 2000000])
            data = text(size) if rng.random() < 0.8 else os.urandom(size)
            ti = tarfile.TarInfo(f"layer{li}/dir{i % 50}/file{i}")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1600000000
            tf.addfile(ti, io.BytesIO(data))
            total += size
            i += 1
    raw = buf.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    gz = gzip.compress(raw, 6, mtime=0)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + blob(gz), "size": len(gz)})
    print(f"  layer {li}: {len(raw)/1e6:.1f} MB -> {len(gz)/1e6:.1f} MB gzip", flush=True)
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + blob(cfg), "size": len(cfg)},
                "layers": layers}).encode()
md = blob(m)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + md,
           "size": len(m), "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, open(os.path.join(layout, "index.json"), "w"))
open(os.path.join(layout, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
# the largest layer, for the unpack-throughput part
big = max(layers, key=lambda l: l["size"])["digest"].split(":")[1]
os.link(os.path.join(blobs, big), os.path.join(work, "big-layer.tar.gz"))
PY
skopeo copy -q --insecure-policy --dest-tls-verify=false "oci:$WORK/layout:bench" "docker://$REG/bench:latest"
IMG="$REG/bench:latest"

echo "== pull + unpack from $REG ($RUNS runs each)"
CMDS=(
	-n husk --prepare "rm -rf $WORK/husk-store" "$HUSK --root $WORK/husk-store pull -q $IMG"
	-n "skopeo+umoci" --prepare "rm -rf $WORK/oci $WORK/bundle"
	"skopeo copy -q --insecure-policy --src-tls-verify=false docker://$IMG oci:$WORK/oci:bench && umoci unpack --image $WORK/oci:bench $WORK/bundle"
)
if [ -n "${HUSK_BASELINE:-}" ]; then
	CMDS+=(-n husk-baseline --prepare "rm -rf $WORK/husk-store" "$HUSK_BASELINE --root $WORK/husk-store pull -q $IMG")
fi
if command -v podman >/dev/null; then
	P="podman --root $WORK/podman-root --runroot $WORK/podman-run --storage-driver overlay --cgroup-manager=cgroupfs --events-backend=file"
	CMDS+=(-n podman --prepare "$P rmi -af >/dev/null 2>&1 || true" "$P pull -q --tls-verify=false $IMG")
else
	echo "   (podman not installed: skipped)"
fi
hyperfine --style basic --runs "$RUNS" --export-json "$WORK/pull.json" "${CMDS[@]}"

gzip -dc "$WORK/big-layer.tar.gz" | zstd -q -3 -o "$WORK/big-layer.tar.zst"
echo "== unpack throughput of one layer, gzip and zstd ($(du -m "$WORK/big-layer.tar.gz" | cut -f1) MB gzip)"
# Each unpack into a fresh directory; the previous one is removed (and synced, so its
# writeback is not charged to the next run) in --prepare, outside the timing.
UNPACK=(
	-n decode-gzip --prepare true "$HUSK bench-decode $WORK/big-layer.tar.gz"
	-n unpack-gzip --prepare "rm -rf $WORK/unpack; sync" "$HUSK bench-unpack $WORK/big-layer.tar.gz $WORK/unpack"
	-n decode-zstd --prepare true "$HUSK bench-decode $WORK/big-layer.tar.zst"
	-n unpack-zstd --prepare "rm -rf $WORK/unpack; sync" "$HUSK bench-unpack $WORK/big-layer.tar.zst $WORK/unpack"
)
if [ -n "${HUSK_BASELINE:-}" ]; then
	UNPACK+=(-n unpack-gzip-baseline --prepare "rm -rf $WORK/unpack; sync" "$HUSK_BASELINE bench-unpack $WORK/big-layer.tar.gz $WORK/unpack")
fi
hyperfine --style basic --runs "$RUNS" --export-json "$WORK/unpack.json" "${UNPACK[@]}"
RAW=$("$HUSK" bench-decode "$WORK/big-layer.tar.gz")

python3 - "$WORK/pull.json" "$WORK/unpack.json" "$RAW" "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
pull_r = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
unp_r = {r["command"]: r for r in json.load(open(sys.argv[2]))["results"]}
pull = {k: r["median"] for k, r in pull_r.items()}
unp = {k: r["median"] for k, r in unp_r.items()}
# CPU seconds (user + system, mean): steadier than wall time on a loaded machine
cpu = {k: r["user"] + r["system"] for k, r in {**pull_r, **unp_r}.items()}
raw = int(sys.argv[3])
h = pull["husk"]
print(f"\n== results (median wall time; load average {sys.argv[4]} before, {sys.argv[5]} after, {__import__('os').cpu_count()} CPUs)")
for k, v in pull.items():
    print(f"  pull {k:14s} {v:7.3f} s  ({cpu[k]:6.3f} CPU-s)   husk/{k} = {h / v:.2f}x wall, {cpu['husk'] / cpu[k]:.2f}x CPU")
if "podman" in pull:
    print(f"  target: husk <= 0.15x podman -> {'met' if h <= 0.15 * pull['podman'] else 'NOT met'}")
for c in ("gzip", "zstd"):
    d, u = unp["decode-" + c], unp["unpack-" + c]
    print(f"  {c}: decode only {raw / d / 1e6:6.1f} MB/s, unpack {raw / u / 1e6:6.1f} MB/s (uncompressed bytes / wall time)"
          f" = {d / u * 100:.0f}% of its decode speed; target >= 500 MB/s -> {'met' if raw / u >= 500e6 else 'NOT met'}"
          f"; {cpu['unpack-' + c]:.3f} CPU-s")
if "unpack-gzip-baseline" in unp:
    print(f"  gzip unpack, baseline husk: {raw / unp['unpack-gzip-baseline'] / 1e6:6.1f} MB/s; {cpu['unpack-gzip-baseline']:.3f} CPU-s")
PY
