#!/usr/bin/env bash
# Make an OCI bundle whose rootfs is Debian's busybox-static: make-bundle.sh DIR [ARGS...]
# The config is husk-runtime's default spec with terminal off and ARGS as the process.
set -euo pipefail
dir=${1:?usage: make-bundle.sh DIR [ARGS...]}; shift
runtime=${HUSK_RUNTIME:-husk-runtime}
busybox=$(command -v busybox || true)
[ -x /bin/busybox ] && busybox=/bin/busybox
[ -n "$busybox" ] || { echo "make-bundle.sh: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir/rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root}
cp "$busybox" "$dir/rootfs/bin/busybox"
# One symlink per applet, as busybox --install would make them.
for applet in $("$dir/rootfs/bin/busybox" --list); do
  [ -e "$dir/rootfs/bin/$applet" ] || ln -s busybox "$dir/rootfs/bin/$applet"
done
chmod 1777 "$dir/rootfs/tmp"
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> "$dir/rootfs/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$dir/rootfs/etc/group"
"$runtime" spec --bundle "$dir"
if [ $# -gt 0 ]; then
  args=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@")
else
  args='["sh","-c","echo hello from husk; hostname; id"]'
fi
python3 - "$dir/config.json" "$args" <<'PY'
import json, sys
path, args = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
json.dump(c, open(path, "w"), indent=2)
PY
