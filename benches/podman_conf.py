"""The containers.conf the benches give podman: default ulimits capped at what this
session may set (podman's defaults exceed the hard limits of some CI shells)."""
import resource


def cap(r, m):
    hard = resource.getrlimit(r)[1]
    return m if hard == resource.RLIM_INFINITY else min(hard, m)


n, p = cap(resource.RLIMIT_NOFILE, 1024), cap(resource.RLIMIT_NPROC, 4096)
print(f'[containers]\ndefault_ulimits = ["nofile={n}:{n}", "nproc={p}:{p}"]')
