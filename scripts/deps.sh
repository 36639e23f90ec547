#!/usr/bin/env bash
# Install the Debian packages husk's demo and tests need (idempotent; skips what is there).
#   scripts/deps.sh            the set for building, the demo and the tests
#   scripts/deps.sh --bench    also the runtimes and tools the benchmarks compare against
set -euo pipefail
pkgs=(busybox-static gcc libc6-dev runc cpio debootstrap qemu-system-x86 docker-registry skopeo openssl ca-certificates podman docker.io containerd iproute2 uidmap slirp4netns rootlesskit netavark aardvark-dns passt buildah containernetworking-plugins protobuf-compiler criu iptables systemd dbus)
[ "${1:-}" = --bench ] && pkgs+=(crun hyperfine umoci)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
