#!/usr/bin/env bash
# Make the unprivileged users the rootless tests and benchmarks run as (idempotent, as root):
#   husk-rootless  with 65536 subordinate uids and gids (from 1000000) in /etc/subuid, subgid
#   husk-nosubid   with none, for the "no subuid entry" error
# each with a private XDG_RUNTIME_DIR at /run/user/UID, and /dev/net/tun usable by users
# (slirp4netns). Prints "NAME UID GID" per user.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "rootless-user.sh: must run as root" >&2; exit 1; }
exec 9>/run/husk-rootless-user.lock
flock 9
ensure_user() {
  id -u "$1" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$1"
  # Our lines only: drop whatever useradd or an earlier run wrote for this user.
  for f in /etc/subuid /etc/subgid; do
    touch "$f"
    grep -v "^$1:" "$f" > "$f.husk-tmp" || true
    cat "$f.husk-tmp" > "$f" && rm -f "$f.husk-tmp"
  done
  local uid; uid=$(id -u "$1")
  install -d -m 700 -o "$1" -g "$(id -g "$1")" "/run/user/$uid"
  echo "$1 $uid $(id -g "$1")"
}
ensure_user husk-rootless
echo "husk-rootless:1000000:65536" >> /etc/subuid
echo "husk-rootless:1000000:65536" >> /etc/subgid
ensure_user husk-nosubid
# slirp4netns (rootless --network slirp4netns) opens /dev/net/tun as the user; Debian's udev
# makes it 0666, some machines leave it 0600.
if [ -c /dev/net/tun ]; then chmod 0666 /dev/net/tun; fi
