#!/usr/bin/env python3
"""Time commands interleaved (A B C A B C ...) so slow drifts of the machine (e.g. the kernel's
deferred network-namespace cleanup after many containers) hit every command alike; print
medians and each command's median relative to the first. Usage:
  interleave.py RUNS WARMUP NAME=CMD [NAME=CMD ...]     (each CMD runs via sh -c; $$ is unique)
"""
import statistics
import subprocess
import sys
import time

runs, warmup = int(sys.argv[1]), int(sys.argv[2])
cmds = [a.split("=", 1) for a in sys.argv[3:]]
times = {name: [] for name, _ in cmds}
for i in range(warmup + runs):
    for name, cmd in cmds:
        t = time.perf_counter()
        r = subprocess.run(["sh", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t
        if r.returncode != 0:
            sys.exit(f"{name} failed: {r.stderr.decode().strip()}")
        if i >= warmup:
            times[name].append(dt)
first = cmds[0][0]
base = statistics.median(times[first])
for name, _ in cmds:
    ts = sorted(times[name])
    med = statistics.median(ts)
    p10, p90 = ts[len(ts) // 10], ts[len(ts) * 9 // 10]
    print(f"  {name:5s} median {med*1000:7.2f} ms  p10 {p10*1000:6.2f}  p90 {p90*1000:6.2f}  ({len(ts)} runs)")
for name, _ in cmds[1:]:
    print(f"  {first} / {name} = {base / statistics.median(times[name]):.3f}")
