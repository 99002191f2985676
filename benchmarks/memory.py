"""Peak memory of the engine for K = 1000 and K = 10000 runs on the baseline problem.

Each K runs in a fresh subprocess so that its peak resident set is its own; the figure reported
is that peak minus the resident set just before training (torch and the data already loaded).
Usage: .venv/bin/python benchmarks/memory.py [--epochs 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import resource, sys, time, torch
from sgdlab import bench
from sgdlab.experiments import article_start
K, epochs = int(sys.argv[1]), int(sys.argv[2])
ds, w0, theta0 = article_start(20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
bench.engine_runs(ds, theta0, K, epochs)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{(peak - before) / 1024:.1f} {peak / 1024:.1f} {seconds:.2f}")
"""


def measure(K: int, epochs: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(K), str(epochs)], capture_output=True, text=True, check=True)
    added, peak, seconds = map(float, out.stdout.split())
    return {"K": K, "epochs": epochs, "peak_added_mib": added, "peak_rss_mib": peak, "seconds": seconds,
            "ns_per_run_step": seconds / (epochs * 100 * K) * 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(K, args.epochs) for K in (1000, 10000)]
    if args.json:
        print(json.dumps(rows))
        return
    for r in rows:
        print(f"K = {r['K']:>5}, {r['epochs']} epochs: peak RSS {r['peak_rss_mib']:7.1f} MiB "
              f"(+{r['peak_added_mib']:.1f} MiB for training), {r['seconds']:.2f} s, "
              f"{r['ns_per_run_step']:.1f} ns per run-step")


if __name__ == "__main__":
    main()
