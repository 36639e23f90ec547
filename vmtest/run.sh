#!/bin/sh
# Run test binaries inside a qemu VM whose only cgroup hierarchy is cgroup v2.
#
#   vmtest/run.sh [--] TEST_BINARY...        (binaries built for the host by cargo)
#
# Boots Debian's kernel (downloaded once with apt-get into target/vmtest/) with an initramfs
# holding busybox-static, the test binaries and an /init that mounts cgroup2 at
# /sys/fs/cgroup with every controller enabled, runs each binary and prints
# "VMTEST-RESULT: PASS" or "VMTEST-RESULT: FAIL". Exits 0 only when PASS is seen.
#
# Environment:
#   VMTEST_TIMEOUT    seconds before the VM is killed (default 900)
#   VMTEST_TEST_ARGS  arguments for every test binary (default: none)
#   VMTEST_MEM        guest memory in MiB (default 1024)
#   VMTEST_VERBOSE=1  show kernel messages (drops "quiet")
#   VMTEST_APPEND     extra kernel command line (e.g. "apparmor=1 security=apparmor")
#   VMTEST_ENV        NAME=VALUE words exported to the test binaries
#   VMTEST_FILES      extra host files (absolute paths, space-separated) copied to the same
#                     path in the guest with their shared libraries, e.g. a binary whose path
#                     a test has compiled in (CARGO_BIN_EXE_*)
#   VMTEST_MODULES    kernel modules to load before the tests, in order (space-separated
#                     names from the list kept in the cache below, e.g. "loop ext4")
#   VMTEST_SYSTEMD=1  boot the host's systemd as PID 1 (with dbus-daemon as the system bus)
#                     and run the tests as its vmtest.service
#
# Needs: apt-get/apt-cache/dpkg (Debian), busybox-static, cpio, gzip, qemu-system-x86.
set -eu

die() { echo "vmtest: $*" >&2; exit 2; }

[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || die "usage: $0 TEST_BINARY..."

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache="$repo/target/vmtest"
mkdir -p "$cache"

for tool in apt-cache dpkg cpio gzip qemu-system-x86_64 timeout; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install busybox-static cpio qemu-system-x86)"
done
busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox is missing (apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox is dynamically linked; install busybox-static"
fi

# ---- kernel: Debian's, unpacked once into the cache --------------------------------
kdir="$cache/kernel"
# The modules kept from the package: overlay for the runtime, what the disk-quota test
# needs (a loop device with ext4 and its quota format), and what CRIU's kernel probes need
# (socket diag, nf_tables, tun, veth: vmtest/checkpoint.sh). A cache pruned with fewer is
# renewed.
keep="overlay loop ext4 jbd2 mbcache crc16 crc32c_generic quota_tree quota_v2
	libcrc32c nfnetlink nf_tables unix_diag inet_diag tcp_diag udp_diag netlink_diag
	af_packet_diag tun veth nf_defrag_ipv4 nf_defrag_ipv6 nf_conntrack nf_conntrack_netlink"
if ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
	for m in $keep; do
		find "$kdir/lib/modules" -name "$m.ko*" | grep -q . || { rm -rf "$kdir"; break; }
	done
fi
if ! ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
	[ -n "$pkg" ] || die "apt-cache depends linux-image-amd64 names no kernel package (run apt-get update?)"
	echo "vmtest: downloading $pkg" >&2
	rm -rf "$cache/dl" "$kdir.tmp"
	mkdir -p "$cache/dl"
	(cd "$cache/dl" && apt-get download "$pkg" >&2)
	dpkg -x "$cache"/dl/*.deb "$kdir.tmp"
	# keep the kernel image and the modules we load; drop the other ~400 MB
	names=$(for m in $keep; do printf " ! -name %s.ko*" "$m"; done)
	set -f # the patterns are find's, not the shell's
	# shellcheck disable=SC2086 # $names is a list of find arguments
	find "$kdir.tmp/lib/modules" -type f $names -delete
	set +f
	rm -rf "$kdir" "$cache/dl"
	mv "$kdir.tmp" "$kdir"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n 1)

# ---- initramfs ---------------------------------------------------------------------
# The test binaries are ordinary host builds, dynamically linked against glibc. Rather than
# building them a second time statically (+crt-static is a separate, slow full rebuild on a
# 2-core machine, and proc-macro crates complicate it), we copy the exact shared libraries
# `ldd` reports, including the dynamic loader, into the same paths in the initramfs. The
# guest kernel is only the syscall boundary, so host glibc runs there unchanged.
stage="$cache/initramfs"
rm -rf "$stage"
mkdir -p "$stage"/bin "$stage"/sbin "$stage"/usr/bin "$stage"/usr/sbin "$stage"/proc \
	"$stage"/sys "$stage"/dev "$stage"/tmp "$stage"/tests "$stage"/lib/modules "$stage"/etc
cp "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"

copy_libs() {
	ldd "$1" 2>/dev/null | while read -r a b c _; do
		case "$a" in /*) lib=$a ;; *) [ "$b" = "=>" ] && lib=$c || lib= ;; esac
		case "$lib" in /*) [ -e "$stage$lib" ] || cp -L --parents "$lib" "$stage" ;; esac
	done
}

i=0
for bin in "$@"; do
	[ -x "$bin" ] || die "not an executable: $bin"
	i=$((i + 1))
	name=$(printf '%02d-%s' "$i" "$(basename "$bin")")
	cp "$bin" "$stage/tests/$name"
	copy_libs "$bin"
done

for f in ${VMTEST_FILES:-}; do
	case "$f" in /*) ;; *) die "VMTEST_FILES needs absolute paths: $f" ;; esac
	[ -e "$f" ] || die "VMTEST_FILES: no such file: $f"
	cp -L --parents "$f" "$stage"
	# The mode too: setuid helpers (newuidmap) must stay setuid.
	chmod --reference="$f" "$stage$f"
	copy_libs "$f"
done

# overlay is a module in Debian's kernel; the runtime's tests will want it (and the
# VMTEST_MODULES asked for)
for m in overlay ${VMTEST_MODULES:-}; do
	ko=$(find "$kdir/lib/modules" -name "$m.ko*" 2>/dev/null | head -n 1 || true)
	case "$ko" in
	*.ko) cp "$ko" "$stage/lib/modules/$m.ko" ;;
	*.ko.xz) xz -dc "$ko" >"$stage/lib/modules/$m.ko" ;;
	*.ko.zst) zstd -dc "$ko" >"$stage/lib/modules/$m.ko" ;;
	*) die "no module $m in the kernel package (add it to keep)" ;;
	esac
done

echo "root:x:0:0:root:/tmp:/bin/sh" >"$stage/etc/passwd"
echo "root:x:0:" >"$stage/etc/group"

# What the tests run with, in both boot modes.
cat >"$stage/vmtest.env" <<EOF
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/tmp TMPDIR=/tmp RUST_BACKTRACE=1
${VMTEST_ENV:+export $VMTEST_ENV}
VMTEST_TEST_ARGS="${VMTEST_TEST_ARGS:-}"
VMTEST_SYSTEMD="${VMTEST_SYSTEMD:-0}"
EOF

# Runs every test binary, checks that nothing is left, prints the result and powers off.
cat >"$stage/vmtest-tests.sh" <<'EOF'
#!/bin/busybox sh
. /vmtest.env
# Loopback, for tests that serve an image registry in-process.
ip link set lo up 2>/dev/null || true
echo "vmtest: kernel $(uname -r), overlay: $(grep -q overlay /proc/filesystems && echo yes || echo no), LSMs: $(cat /sys/kernel/security/lsm 2>/dev/null), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
fail=0
for t in /tests/*; do
	echo "vmtest: running $t"
	start=$(date +%s)
	# shellcheck disable=SC2086 # the arguments are a list
	if "$t" $VMTEST_TEST_ARGS; then
		echo "vmtest: $t passed in $(($(date +%s) - start))s"
	else
		echo "vmtest: $t FAILED (exit $?)"
		fail=1
	fi
done
if [ "$VMTEST_SYSTEMD" = 1 ]; then
	# systemd's own cgroups stay; none of husk's may (scopes, slices, /husk-engine).
	leftover=$(find /sys/fs/cgroup -mindepth 1 -type d -name '*husk*')
	units=$(systemctl list-units --all --no-legend --plain 'husk*' 2>&1)
	[ -z "$units" ] || { echo "vmtest: units left behind: $units"; fail=1; }
else
	leftover=$(find /sys/fs/cgroup -mindepth 1 -type d)
fi
if [ -n "$leftover" ]; then
	echo "vmtest: cgroups left behind: $leftover"
	fail=1
fi
if [ $fail = 0 ]; then echo "VMTEST-RESULT: PASS"; else echo "VMTEST-RESULT: FAIL"; fi
sync
poweroff -f
EOF
chmod 755 "$stage/vmtest-tests.sh"

if [ "${VMTEST_SYSTEMD:-0}" = 1 ]; then
	# systemd as PID 1 (the host's installed systemd and dbus-daemon, with their libraries),
	# running only what the tests need: the system bus and one service that runs them.
	for f in /lib/systemd/systemd /bin/systemctl /usr/bin/dbus-daemon \
		/usr/share/dbus-1/system.conf /usr/share/dbus-1/system.d/org.freedesktop.systemd1.conf \
		/lib/systemd/system/machine.slice; do
		[ -e "$f" ] || die "$f is missing (apt-get install systemd dbus)"
		cp -L --parents "$f" "$stage"
		copy_libs "$f"
	done
	echo "messagebus:x:100:101::/nonexistent:/bin/false" >>"$stage/etc/passwd"
	echo "messagebus:x:101:" >>"$stage/etc/group"
	echo "ID=vmtest" >"$stage/etc/os-release"
	# D-Bus clients look for the system bus in /var/run, which is /run on Debian.
	mkdir -p "$stage/var"
	ln -s ../run "$stage/var/run"
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$stage/etc/machine-id"
	u="$stage/etc/systemd/system"
	mkdir -p "$u"
	# DefaultDependencies=no throughout: there is no sysinit.target & co. in this image.
	cat >"$u/vmtest.target" <<'EOF'
[Unit]
Description=husk VM tests
DefaultDependencies=no
Wants=vmtest.service
EOF
	cat >"$u/dbus.socket" <<'EOF'
[Unit]
Description=D-Bus System Message Bus Socket
DefaultDependencies=no
[Socket]
ListenStream=/run/dbus/system_bus_socket
EOF
	cat >"$u/dbus.service" <<'EOF'
[Unit]
Description=D-Bus System Message Bus
DefaultDependencies=no
Requires=dbus.socket
[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --nosyslog
EOF
	# An ordinary user with a systemd user manager, for rootless tests: husk-rootless (uid
	# 1000, subordinate ids as scripts/rootless-user.sh gives them), the setuid id mappers,
	# and user@.service as Debian's (Delegate=pids memory cpu, in user-UID.slice) but
	# without PAM, which this image has not; a test starts it with `systemctl start
	# user@1000.service`. The manager runs the user's bus (dbus-daemon --session on
	# $XDG_RUNTIME_DIR/bus) as Debian's dbus-user-session does.
	for f in /usr/bin/newuidmap /usr/bin/newgidmap /usr/bin/setpriv /usr/bin/systemd-run \
		/usr/share/dbus-1/session.conf; do
		[ -e "$f" ] || die "$f is missing (apt-get install uidmap util-linux systemd dbus)"
		cp -L --parents "$f" "$stage"
		chmod --reference="$f" "$stage$f"
		copy_libs "$f"
	done
	echo "husk-rootless:x:1000:1000::/home/husk-rootless:/bin/sh" >>"$stage/etc/passwd"
	echo "husk-rootless:x:1000:" >>"$stage/etc/group"
	echo "husk-rootless:1000000:65536" >"$stage/etc/subuid"
	echo "husk-rootless:1000000:65536" >"$stage/etc/subgid"
	mkdir -p "$stage/home/husk-rootless"
	chown 1000:1000 "$stage/home/husk-rootless"
	cat >"$u/user@.service" <<'EOF'
[Unit]
Description=User Manager for UID %i
DefaultDependencies=no
Requires=dbus.socket
After=dbus.socket
[Service]
User=%i
Type=notify
ExecStartPre=+/bin/sh -c 'mkdir -p /run/user/%i && chown %i:%i /run/user/%i && chmod 700 /run/user/%i'
ExecStart=/lib/systemd/systemd --user --log-level=warning
Environment=XDG_RUNTIME_DIR=/run/user/%i
Slice=user-%i.slice
KillMode=mixed
Delegate=pids memory cpu
TasksMax=infinity
EOF
	uu="$stage/etc/systemd/user"
	mkdir -p "$uu"
	cat >"$uu/default.target" <<'EOF'
[Unit]
Description=husk VM tests: the user's manager
DefaultDependencies=no
Wants=dbus.socket
EOF
	cat >"$uu/dbus.socket" <<'EOF'
[Unit]
Description=D-Bus User Message Bus Socket
DefaultDependencies=no
[Socket]
ListenStream=%t/bus
EOF
	cat >"$uu/dbus.service" <<'EOF'
[Unit]
Description=D-Bus User Message Bus
DefaultDependencies=no
Requires=dbus.socket
[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/bin/dbus-daemon --session --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only
EOF
	cat >"$u/vmtest.service" <<'EOF'
[Unit]
Description=husk VM tests
DefaultDependencies=no
Requires=dbus.socket
After=dbus.socket
[Service]
Type=oneshot
ExecStart=/vmtest-tests.sh
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0
EOF
fi

cat >"$stage/init" <<EOF
#!/bin/busybox sh
# pivot_root(2) refuses to move the initramfs (rootfs) away, and container runtimes need it:
# copy the initramfs into a tmpfs and make that the root first.
if [ ! -e /.in-tmpfs ]; then
	/bin/busybox mkdir -p /newroot
	/bin/busybox mount -t tmpfs -o mode=755 tmpfs /newroot
	for e in /*; do
		[ "\$e" = /newroot ] || /bin/busybox cp -a "\$e" /newroot/
	done
	/bin/busybox touch /newroot/.in-tmpfs
	exec /bin/busybox switch_root /newroot /init
fi
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
[ -f /lib/modules/overlay.ko ] && insmod /lib/modules/overlay.ko
for m in ${VMTEST_MODULES:-}; do
	insmod /lib/modules/\$m.ko || echo "vmtest: cannot load \$m"
done
if [ "${VMTEST_SYSTEMD:-0}" = 1 ]; then
	# systemd mounts /proc, /sys, /dev, /run and cgroup2 itself, and runs the tests as
	# vmtest.service (the unified hierarchy is systemd 252's default).
	exec /lib/systemd/systemd --unit=vmtest.target --log-level=warning --show-status=false
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# AppArmor's interface (and the LSM list) live in securityfs.
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null || true
# The root is already a tmpfs: no tmpfs over /tmp, which would hide VMTEST_FILES placed
# there (a checkout under /tmp puts the binaries the tests exec there).
chmod 1777 /tmp
mount -t cgroup2 none /sys/fs/cgroup
for c in \$(cat /sys/fs/cgroup/cgroup.controllers); do
	echo "+\$c" > /sys/fs/cgroup/cgroup.subtree_control || echo "vmtest: cannot enable \$c"
done
exec /vmtest-tests.sh
EOF
chmod 755 "$stage/init"

initrd="$cache/initrd.cpio.gz"
(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd"

# ---- boot --------------------------------------------------------------------------
append="console=ttyS0 panic=-1 ${VMTEST_APPEND:-}"
[ "${VMTEST_VERBOSE:-0}" = 1 ] || append="$append quiet"
log="$cache/last-run.log"
echo "vmtest: booting $(basename "$vmlinuz") with $# test binar$([ $# = 1 ] && echo y || echo ies); log in $log" >&2
t0=$(date +%s)
set +e
timeout "${VMTEST_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg -m "${VMTEST_MEM:-1024}" -smp 2 \
	-nographic -no-reboot -nodefaults -serial stdio \
	-kernel "$vmlinuz" -initrd "$initrd" -append "$append" </dev/null 2>&1 | tee "$log"
set -e
echo "vmtest: VM ran for $(($(date +%s) - t0))s" >&2
if grep -a -q '^VMTEST-RESULT: PASS' "$log"; then
	exit 0
fi
if ! grep -a -q '^VMTEST-RESULT:' "$log"; then
	echo "vmtest: no result marker (timeout or crash)" >&2
fi
exit 1
