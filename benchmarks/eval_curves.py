#!/usr/bin/env python3
"""eval_curves.py: the held-out curves of several runs, averaged over seeds (issue 17).

    /usr/bin/python3 benchmarks/eval_curves.py [--metric off_manifold] [--weights ema|raw] \
        [--baseline NAME] [--png FILE] NAME=GLOB ...

Each NAME=GLOB names a group of run folders (e.g. amd='runs/study/x/runs/amd_steps1600_seed*'); for
every step of their logs' /eval table (eval.every) it prints the mean of the metric over the group's
runs with its 95% t interval, so whether a curve has flattened is read from numbers, not assumed.
--baseline NAME adds, per step, each group's paired difference against that group over the seeds
both have (a run's seed is the `_seed<N>` of its folder name), with the 95% t interval and the
verdict of benchmarks/study.py; --png draws the means and their intervals against the step.
Uses benchmarks/study.py's t quantile (no SciPy)."""
import argparse
import glob
import math
import os
import re
import sys

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from study import DIRECTIONS, mean_interval, paired  # noqa: E402

SEED_RE = re.compile(r"_seed(\d+)$")


def curves(pattern, metric, weights):
    """(number of runs, {step: {seed: value}}) of the runs matching pattern."""
    runs = sorted(glob.glob(pattern))
    if not runs:
        sys.exit(f"eval_curves: no run folder matches '{pattern}'")
    by_step = {}
    for run in runs:
        m = SEED_RE.search(os.path.basename(os.path.normpath(run)))
        seed = int(m.group(1)) if m else run  # the folder itself where its name gives no seed
        with h5py.File(os.path.join(run, "log.h5"), "r", locking=False) as f:
            if "eval" not in f:
                sys.exit(f"eval_curves: '{run}/log.h5' has no /eval table (run it with eval.every=N)")
            e = f["eval"]
            if metric not in e:
                sys.exit(f"eval_curves: '{run}/log.h5' has no /eval/{metric}; it has {', '.join(sorted(e))}")
            keep = e["weights"][:] == (1 if weights == "ema" else 0)
            for s, v in zip(e["step"][:][keep], e[metric][:][keep]):
                by_step.setdefault(int(s), {})[seed] = float(v)
    return len(runs), by_step


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metric", default="off_manifold")
    ap.add_argument("--weights", choices=("ema", "raw"), default="ema")
    ap.add_argument("--baseline", help="a group's NAME: the paired differences against it, per step")
    ap.add_argument("--png", help="draw the curves (means and 95%% intervals) into this PNG")
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
            _, m, lo, hi = mean_interval(list(v.values()))
            cells.append(f"{m:.4f} [{lo:.4f}, {hi:.4f}]" if math.isfinite(lo) else f"{m:.4f}")
        print(f"| {s} | " + " | ".join(cells) + " |")
    if a.baseline:
        if a.baseline not in table:
            sys.exit(f"eval_curves: --baseline {a.baseline!r} is not one of the groups ({', '.join(table)})")
        for n, (_, by) in table.items():
            for v in by.values():
                unnamed = [k for k in v if isinstance(k, str)]
                if unnamed:
                    sys.exit(f"eval_curves: --baseline pairs runs by seed: '{unnamed[0]}' has no _seed<N> at the end "
                             "of its folder name")
        direction = DIRECTIONS.get(a.metric, "lower")
        others = [n for n in table if n != a.baseline]
        base = table[a.baseline][1]
        print(f"\n{a.metric}, {a.weights} weights: paired difference against {a.baseline} "
              f"({direction} is better) [95% t interval], verdict\n")
        print("| step | " + " | ".join(others) + " |")
        print("|---|" + "---|" * len(others))
        for s in steps:
            cells = []
            for n in others:
                k, m, lo, hi, word = paired(table[n][1].get(s, {}), base.get(s, {}), direction)
                cells.append(f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}] {word} ({k} pairs)" if k >= 2 else "")
            print(f"| {s} | " + " | ".join(cells) + " |")
    if a.png:
        plot(table, a.metric, a.weights, a.png)


def plot(table, metric, weights, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, (k, by)) in enumerate(table.items()):
        xs, ms, los, his = [], [], [], []
        for s in sorted(by):
            _, m, lo, hi = mean_interval(list(by[s].values()))
            xs.append(s), ms.append(m)
            los.append(lo if math.isfinite(lo) else m), his.append(hi if math.isfinite(hi) else m)
        ax.plot(xs, ms, "o-", color=f"C{i}", label=f"{name} ({k} runs)", ms=3)
        ax.fill_between(xs, los, his, color=f"C{i}", alpha=0.2)
    ax.set_xlabel("distillation step")
    ax.set_ylabel(f"{metric} ({weights} weights)")
    ax.legend(fontsize=8)
    ax.set_title("held-out curves: means over seeds, 95% t intervals", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
