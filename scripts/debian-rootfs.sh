#!/usr/bin/env bash
# Build a minimal Debian root filesystem of this host's own release in DIR, for the image tests.
#   scripts/debian-rootfs.sh DIR
# debootstrap --variant=minbase from the first Debian mirror apt is configured with (and apt's
# proxy, if any). Runs as root. Idempotent: a finished DIR carries a marker and is reused at
# once; the build happens in DIR.tmp and is renamed into place only when it succeeded, so an
# interrupted or failed run leaves nothing half-built behind (its log stays in DIR.log).
set -euo pipefail
me=debian-rootfs.sh
die() { echo "$me: $*" >&2; exit 1; }

[ $# -eq 1 ] && [ -n "$1" ] || die "usage: $me DIR"
dir=$(realpath -m -- "$1")
[ "$dir" != / ] || die "refusing to build into /"
marker=.debian-rootfs-done
[ -f "$dir/$marker" ] && exit 0

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap creates devices and chroots)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/deps.sh installs it)"

codename=$(. /etc/os-release && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}") || true
[ -n "$codename" ] || die "/etc/os-release names no Debian VERSION_CODENAME"

# The first URI apt fetches CODENAME from: sources.list, then sources.list.d in apt's order
# (one-line .list files and deb822 .sources stanzas alike). Only schemes debootstrap fetches.
first_mirror() {
  local f m
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do
    [ -f "$f" ] || continue
    m=$(case $f in
      *.list)
        # deb [opts] URI SUITE COMPONENT...
        awk -v s="$codename" '
          { sub(/#.*/, "") }
          $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i+1) == s && $i ~ /^(https?|ftp|file):/) { print $i; exit }
          }' "$f" ;;
      *.sources)
        # stanzas of "Field: value" separated by blank lines; field names are case-insensitive
        awk -v s="$codename" '
          function flush(  n, u, k) {
            gsub(/[ \t]+/, " ", suites); gsub(/[ \t]+/, " ", uris)
            if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && tolower(enabled) != "no") {
              n = split(uris, u, " ")
              for (k = 1; k <= n; k++) if (u[k] ~ /^(https?|ftp|file):/) { print u[k]; found = 1; return }
            }
            types = uris = suites = enabled = ""
          }
          /^[ \t]*#/ { next }
          /^[ \t]*$/ { flush(); if (found) exit; next }
          /^[ \t]/ { if (last == "uris") uris = uris " " $0; else if (last == "suites") suites = suites " " $0; next }
          {
            k = tolower($0); sub(/:.*/, "", k); v = $0; sub(/^[^:]*:[ \t]*/, "", v); last = k
            if (k == "types") types = v; else if (k == "uris") uris = v
            else if (k == "suites") suites = v; else if (k == "enabled") enabled = v
          }
          END { if (!found) flush() }' "$f" ;;
    esac) || die "cannot read $f"
    if [ -n "$m" ]; then echo "$m"; return; fi
  done
}
mirror=$(first_mirror)
[ -n "$mirror" ] || die "no Debian mirror for $codename in /etc/apt/sources.list or /etc/apt/sources.list.d"

# apt's proxy, for debootstrap's wget ("DIRECT"/"false" mean none)
proxies=$(apt-config shell hp Acquire::http::Proxy sp Acquire::https::Proxy) || die "apt-config failed"
hp='' sp=''
eval "$proxies"
case $hp in ''|DIRECT|false) ;; *) export http_proxy=$hp ;; esac
case $sp in ''|DIRECT|false) ;; *) export https_proxy=$sp ;; esac

parent=$(dirname -- "$dir")
mkdir -p -- "$parent" || die "cannot create $parent"
# one build at a time in PARENT; a second caller for the same DIR waits, then finds the marker
exec 9<"$parent" || die "cannot open $parent"
flock 9 || die "cannot lock $parent"
[ -f "$dir/$marker" ] && exit 0
[ ! -e "$dir" ] || die "$dir exists but is not a finished rootfs (no $marker): remove it"

tmp=$dir.tmp
log=$dir.log
# Undo a build: unmount whatever debootstrap left mounted below it (proc, sys, …), deepest
# first, then remove it without crossing into any mount that would not go.
scrap() {
  local m
  if [ -n "${bpid:-}" ]; then kill -TERM -- "-$bpid" 2>/dev/null || true; wait "$bpid" || true; fi
  [ -e "$tmp" ] || return 0
  awk -v t="$tmp" '{ gsub(/\\040/, " ", $5) } $5 == t || index($5, t "/") == 1 { print $5 }' \
    /proc/self/mountinfo | sort -r | while IFS= read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" || true
    done
  rm -rf --one-file-system -- "$tmp"
}
done_ok=
trap '[ -n "$done_ok" ] || scrap' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
scrap   # a run killed before it could clean up

start=$SECONDS
# in its own process group, waited for in the background so that a signal to this script
# stops all of it (wget, dpkg in the chroot) before the scrap
setsid debootstrap --variant=minbase "$codename" "$tmp" "$mirror" >"$log" 2>&1 </dev/null &
bpid=$!
rc=0
wait "$bpid" || rc=$?
bpid=
if [ "$rc" != 0 ]; then
  why=$(grep -E '^(E|W): ' "$log" | tail -n1 || true)
  die "debootstrap --variant=minbase $codename from $mirror failed with exit $rc${why:+: $why} (log: $log)"
fi
echo "$codename" >"$tmp/$marker" || die "cannot write $tmp/$marker"
mv -T -- "$tmp" "$dir" || die "cannot rename $tmp to $dir"
done_ok=1
rm -f -- "$log"
echo "$me: built $codename in $dir in $((SECONDS - start)) s" >&2
