#!/usr/bin/env bash
# Unpack throughput of one large layer, gzip and zstd, before (zlib-rs streaming) and now
# (libdeflate on the whole blob), in MB/s of uncompressed data, with the load average.
# The layer is a tar of /usr/share parts (or LAYER=path/to/layer.tar), compressed here.
#
# Needs (Debian): hyperfine gzip zstd python3. Root (the unpacker chowns).
# Usage: benches/unpack.sh [RUNS]   (default 5)
set -euo pipefail

RUNS=${1:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
for t in hyperfine gzip zstd python3; do
	command -v "$t" >/dev/null || { echo "unpack.sh: $t is missing (apt-get install hyperfine gzip zstd)" >&2; exit 1; }
done

cargo build --release -q -p husk --manifest-path "$HERE/Cargo.toml"
HUSK="$HERE/target/release/husk"

WORK=$(mktemp -d /var/tmp/husk-unpack.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if [ -n "${LAYER:-}" ]; then
	cp "$LAYER" "$WORK/layer.tar"
else
	tar -C / -cf "$WORK/layer.tar" usr/share/doc usr/share/locale usr/share/man usr/share/perl usr/share/i18n 2>/dev/null || true
fi
gzip -6 -c "$WORK/layer.tar" >"$WORK/layer.tar.gz"
zstd -q -3 -c "$WORK/layer.tar" -o "$WORK/layer.tar.zst"
RAW=$(stat -c %s "$WORK/layer.tar")
echo "== layer: $((RAW / 1000000)) MB uncompressed, gzip $(($(stat -c %s "$WORK/layer.tar.gz") / 1000000)) MB, zstd $(($(stat -c %s "$WORK/layer.tar.zst") / 1000000)) MB"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

G="$WORK/layer.tar.gz"
Z="$WORK/layer.tar.zst"
hyperfine --style basic --runs "$RUNS" --export-json "$WORK/r.json" \
	-n "decode gzip zlib-rs" "$HUSK bench-decode --streaming $G" \
	-n "decode gzip libdeflate" "$HUSK bench-decode $G" \
	-n "decode zstd" "$HUSK bench-decode $Z" \
	-n "unpack gzip zlib-rs (before)" --prepare "rm -rf $WORK/u" "$HUSK bench-unpack --streaming $G $WORK/u" \
	-n "unpack gzip libdeflate (now)" --prepare "rm -rf $WORK/u" "$HUSK bench-unpack $G $WORK/u" \
	-n "unpack zstd" --prepare "rm -rf $WORK/u" "$HUSK bench-unpack $Z $WORK/u"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK/r.json" "$RAW" <<'PY'
import json, sys
raw = int(sys.argv[2])
print("\n== results (median wall time; MB/s of uncompressed data)")
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"  {r['command']:30s} {r['median']:7.3f} s  {raw / r['median'] / 1e6:7.1f} MB/s")
PY
