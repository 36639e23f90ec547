#!/usr/bin/env bash
# Make a one-layer image of the busybox-static rootfs (scripts/make-bundle.sh's) as a
# docker-archive, the file `docker save` writes, for `husk load` / `podman load`:
#   scripts/make-image.sh OUT.tar [NAME:TAG]   (default localhost/busybox:latest)
# No registry and no network: the demo and the benchmarks run a local image.
set -euo pipefail
out=$(realpath -m "${1:?usage: make-image.sh OUT.tar [NAME:TAG]}")
name=${2:-localhost/busybox:latest}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/make-bundle.sh "$work/bundle" true >/dev/null
tar -C "$work/bundle/rootfs" -cf "$work/layer.tar" .
# One layer, its config, manifest.json (as `docker save` writes them).
python3 - "$work" "$out" "$name" <<'PY'
import hashlib, io, json, os, sys, tarfile
w, out, name = sys.argv[1:]
machine = os.uname().machine
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
diff = hashlib.sha256(open(f"{w}/layer.tar", "rb").read()).hexdigest()
cfg = json.dumps({"architecture": arch, "os": "linux",
                  "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]}}).encode()
cid = hashlib.sha256(cfg).hexdigest()
with tarfile.open(out, "w") as t:
    t.add(f"{w}/layer.tar", "layer/layer.tar")
    for member, data in [(f"{cid}.json", cfg),
                         ("manifest.json", json.dumps([{"Config": f"{cid}.json",
                          "RepoTags": [name], "Layers": ["layer/layer.tar"]}]).encode())]:
        info = tarfile.TarInfo(member); info.size = len(data)
        t.addfile(info, io.BytesIO(data))
PY
