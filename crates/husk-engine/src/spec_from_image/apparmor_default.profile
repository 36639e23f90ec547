# husk-default: the AppArmor profile `husk run` gives a container when AppArmor is on and
# no --security-opt apparmor= says otherwise. Written for husk from AppArmor's policy
# reference and the documented intent of docker's default: let programs do what programs
# do, but keep the container's root from reconfiguring the kernel or reaching processes
# outside the container. Self-contained (no #include): it loads where only the parser is.
profile husk-default flags=(attach_disconnected,mediate_deleted) {
  # Files, sockets and capabilities: the other layers (namespaces, capabilities, the
  # seccomp filter, read-only and masked paths) decide; the rules below take away.
  file,
  network,
  capability,
  unix,
  umount,

  # No mounts of any kind from inside, even with CAP_SYS_ADMIN.
  deny mount,
  deny pivot_root,

  # Kernel tunables and the machine: never written from a container.
  deny /proc/sys/** wl,
  deny /proc/sysrq-trigger rwl,
  deny /proc/kcore rwl,
  deny /proc/kmsg rwl,
  deny /sys/** wl,

  # ptrace and signals only among the container's own processes; signals from outside
  # (the engine's stop and kill) are received.
  ptrace (trace, read, tracedby, readby) peer=husk-default,
  signal (send, receive) peer=husk-default,
  signal (receive) peer=unconfined,
}
