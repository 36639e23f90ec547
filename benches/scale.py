#!/usr/bin/env python3
"""Drivers for benches/scale.sh. Every CMD runs via sh -c with {i} replaced by the run's
index; the driver is a child subreaper, so containers left by `create` are reaped (PID 1
here does not reap orphans).
  scale.py concurrent NAME N CMD   start N at once; failures, wall time, p50/p99 latency
  scale.py sequential NAME N CMD   N one after another; p50/p99 of the first and last 100
  scale.py memory NAME PID...      total Pss/Rss of the PIDs (/proc/PID/smaps_rollup)
Latencies are also appended to $SCALE_OUT (NAME, MODE, values: tab-separated) for the summary."""
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

PR_SET_CHILD_SUBREAPER = 36


def subreaper():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # Orphans (containers' inits whose runtime exited) become our children: reap them
    # without touching the Popen objects' own waits (SIGCHLD is not needed for those).
    def reap():
        while True:
            time.sleep(0.5)
            try:
                # Only pids that are not ours to wait for through Popen: P_ALL with WNOWAIT
                # would see them too, so reap by scanning for zombies whose parent is us.
                for pid in zombies():
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
            except Exception:
                pass

    threading.Thread(target=reap, daemon=True).start()


popen_pids = set()


def zombies():
    me = str(os.getpid())
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in popen_pids:
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z" and fields[1] == me:
            yield int(d)


def pct(ts, p):
    ts = sorted(ts)
    return ts[min(len(ts) - 1, int(len(ts) * p / 100))]


def ms(t):
    return f"{t * 1000:8.1f}"


def record(name, mode, values):
    out = os.environ.get("SCALE_OUT")
    if out:
        with open(out, "a") as f:
            f.write(f"{name}\t{mode}\t{' '.join(str(v) for v in values)}\n")


def concurrent(name, n, cmd):
    procs, starts, lat, errors = [], [], [None] * n, []
    t0 = time.perf_counter()
    for i in range(n):
        starts.append(time.perf_counter())
        # stderr to a file, not a pipe: a container's init inherits it and keeps it open.
        err = tempfile.TemporaryFile()
        p = subprocess.Popen(["sh", "-c", cmd.replace("{i}", str(i))],
                             stdout=subprocess.DEVNULL, stderr=err)
        p.err = err
        popen_pids.add(p.pid)
        procs.append(p)
    # Wait in completion order (each latency is start to exit).
    pending = dict(enumerate(procs))
    while pending:
        for i, p in list(pending.items()):
            if p.poll() is not None:
                lat[i] = time.perf_counter() - starts[i]
                p.err.seek(0)
                err = p.err.read().decode(errors="replace").strip()
                p.err.close()
                if p.returncode != 0:
                    errors.append(f"#{i} exit {p.returncode}: {err.splitlines()[-1] if err else ''}")
                del pending[i]
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    print(f"  {name:22s} {n} at once: {len(errors)} failed, wall {wall:6.2f} s, "
          f"p50 {ms(pct(lat, 50))} ms, p99 {ms(pct(lat, 99))} ms, max {ms(max(lat))} ms")
    for e in errors[:5]:
        print(f"    {e}")
    record(name, "concurrent", [len(errors), wall, pct(lat, 50), pct(lat, 99)])
    return len(errors)


def sequential(name, n, cmd):
    lat, errors = [], []
    for i in range(n):
        t = time.perf_counter()
        with tempfile.TemporaryFile() as err:
            r = subprocess.run(["sh", "-c", cmd.replace("{i}", str(i))],
                               stdout=subprocess.DEVNULL, stderr=err)
            lat.append(time.perf_counter() - t)
            if r.returncode != 0:
                err.seek(0)
                errors.append(f"#{i} exit {r.returncode}: {err.read().decode(errors='replace').strip()}")
    k = min(100, n)
    first, last = lat[:k], lat[-k:]
    print(f"  {name:22s} {n} in a row: {len(errors)} failed; first {k}: p50 {ms(pct(first, 50))} "
          f"p99 {ms(pct(first, 99))} ms; last {k}: p50 {ms(pct(last, 50))} p99 {ms(pct(last, 99))} ms")
    for e in errors[:5]:
        print(f"    {e}")
    record(name, "sequential", [len(errors), pct(first, 50), pct(first, 99), pct(last, 50), pct(last, 99)])
    return len(errors)


def rollup(pid):
    vals = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            vals[parts[0].rstrip(":")] = int(parts[1])
    return vals


def memory(name, pids):
    tot = {"Pss": 0, "Rss": 0, "Private_Dirty": 0, "Anonymous": 0}
    for pid in pids:
        v = rollup(pid)
        for k in tot:
            tot[k] += v.get(k, 0)
    n = len(pids)
    print(f"  {name:22s} {n} processes: Pss {tot['Pss']:7d} KiB total ({tot['Pss'] / n:6.0f} each), "
          f"Rss {tot['Rss']:7d} KiB ({tot['Rss'] / n:6.0f} each), anonymous {tot['Anonymous']:6d} KiB")
    record(name, "memory", [n, tot["Pss"], tot["Rss"], tot["Anonymous"]])
    return 0


def main():
    mode, name = sys.argv[1], sys.argv[2]
    if mode == "memory":
        sys.exit(memory(name, [int(p) for p in sys.argv[3:]]))
    subreaper()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    n, cmd = int(sys.argv[3]), sys.argv[4]
    failed = {"concurrent": concurrent, "sequential": sequential}[mode](name, n, cmd)
    sys.exit(1 if failed else 0)


main()
