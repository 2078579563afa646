#!/usr/bin/env python3
"""eval_curves.py: the held-out curves of several runs, averaged over seeds (issue 17).

    /usr/bin/python3 benchmarks/eval_curves.py [--metric off_manifold] [--weights ema|raw] NAME=GLOB ...

Each NAME=GLOB names a group of run folders (e.g. amd='runs/study/x/runs/amd_steps1600_seed*'); for
every step of their logs' /eval table (eval.every) it prints the mean of the metric over the group's
runs with its 95% t interval, so whether a curve has flattened is read from numbers, not assumed.
Uses benchmarks/study.py's t quantile (no SciPy)."""
import argparse
import glob
import math
import os
import sys

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from study import mean_interval  # noqa: E402


def curves(pattern, metric, weights):
    """{step: [value of each run]} of the runs matching pattern."""
    runs = sorted(glob.glob(pattern))
    if not runs:
        sys.exit(f"eval_curves: no run folder matches '{pattern}'")
    by_step = {}
    for run in runs:
        with h5py.File(os.path.join(run, "log.h5"), "r", locking=False) as f:
            if "eval" not in f:
                sys.exit(f"eval_curves: '{run}/log.h5' has no /eval table (run it with eval.every=N)")
            e = f["eval"]
            if metric not in e:
                sys.exit(f"eval_curves: '{run}/log.h5' has no /eval/{metric}; it has {', '.join(sorted(e))}")
            keep = e["weights"][:] == (1 if weights == "ema" else 0)
            for s, v in zip(e["step"][:][keep], e[metric][:][keep]):
                by_step.setdefault(int(s), []).append(float(v))
    return len(runs), by_step


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metric", default="off_manifold")
    ap.add_argument("--weights", choices=("ema", "raw"), default="ema")
    ap.add_argument("groups", nargs="+", metavar="NAME=GLOB")
    a = ap.parse_args()
    table = {}
    for g in a.groups:
        if "=" not in g:
            sys.exit(f"eval_curves: '{g}' is not NAME=GLOB")
        name, pattern = g.split("=", 1)
        table[name] = curves(pattern, a.metric, a.weights)
    steps = sorted(set(s for _, by in table.values() for s in by))
    print(f"{a.metric}, {a.weights} weights: mean over runs [95% t interval]\n")
    print("| step | " + " | ".join(f"{n} ({k} runs)" for n, (k, _) in table.items()) + " |")
    print("|---|" + "---|" * len(table))
    for s in steps:
        cells = []
        for _, by in table.values():
            v = by.get(s)
            if not v:
                cells.append("")
                continue
            _, m, lo, hi = mean_interval(v)
            cells.append(f"{m:.4f} [{lo:.4f}, {hi:.4f}]" if math.isfinite(lo) else f"{m:.4f}")
        print(f"| {s} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
